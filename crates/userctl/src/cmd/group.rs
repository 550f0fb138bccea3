//! `userctl group add|modify|delete|list`: groups, as `pveum group`.

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, Align, OutputFormat, Table};
use hearth_proto::{AccessRequest, Payload};

use super::{change, option, positional};

fn group() -> clap::Arg {
    positional("group", "GROUP", "Group name, [A-Za-z0-9.-_]+")
}

pub fn command() -> Command {
    Command::new("group")
        .about("Manage groups")
        .long_about("Manage groups. Membership is set on the user: `userctl user modify USER --groups G --append`.")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommands([
            Command::new("add").about("Create a group").arg(group()).arg(option("comment", "TEXT", "Comment")),
            Command::new("modify").about("Change a group's comment").arg(group()).arg(option(
                "comment",
                "TEXT",
                "Comment; empty clears it",
            )),
            Command::new("delete").about("Delete a group, its memberships and its ACL entries").arg(group()),
            Command::new("list").about("List groups and their members"),
        ])
}

pub fn run(action: &str, m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let group = super::string(m, "group");
    let comment = super::optional(m, "comment");
    match action {
        "add" => change(AccessRequest::GroupAdd { group, comment }, format),
        "modify" => change(AccessRequest::GroupModify { group, comment }, format),
        "delete" => change(AccessRequest::GroupDelete { group }, format),
        "list" => {
            let groups = match super::call(AccessRequest::GroupList)? {
                Payload::Groups(groups) => groups,
                other => return Err(cli::unexpected(&other)),
            };
            if format.is_json() {
                return cli::print_json(&groups, format);
            }
            let mut table = Table::new(&[("groupid", Align::Left), ("users", Align::Left), ("comment", Align::Left)]);
            for g in &groups {
                table.row(vec![g.group.clone(), g.members.join(","), super::or_empty(&g.comment)]);
            }
            table.print()
        }
        other => anyhow::bail!("unknown group command '{other}'"),
    }
}
