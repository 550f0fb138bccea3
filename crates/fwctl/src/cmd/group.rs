//! `fwctl group list|create|delete|rules NAME …`: security groups of the cluster.

use clap::{ArgMatches, Command};
use hearth_client::cli::OutputFormat;
use hearth_proto::{FirewallRequest, FirewallScope};

use super::{change, option, optional, positional, print, string, text};

pub fn command() -> Command {
    let name = || positional("name", "NAME", "Security group name (at most 18 characters)");
    Command::new("group")
        .about("Manage security groups")
        .long_about("Manage security groups: named rule lists of the cluster that rules apply with `--type group --action NAME`.")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommands([
            Command::new("list").about("List the groups and their rules"),
            Command::new("create").about("Create a group").arg(name()).arg(option("comment", "TEXT", "Comment")),
            Command::new("delete").about("Delete a group no rule uses").arg(name()),
            super::rules::command().name("rules").about("List and change a group's rules").arg(name()),
        ])
}

pub fn run(m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let Some((action, a)) = m.subcommand() else { anyhow::bail!("no group command given") };
    match action {
        "list" => print(&text(FirewallRequest::GroupList)?, format),
        "create" => {
            change(FirewallRequest::GroupCreate { name: string(a, "name"), comment: optional(a, "comment") }, format)
        }
        "delete" => change(FirewallRequest::GroupDelete { name: string(a, "name") }, format),
        _ => super::rules::run(FirewallScope::Cluster, Some(string(a, "name")), a, format),
    }
}
