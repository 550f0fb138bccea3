//! `fwctl cluster|host|vm ID|ct ID rules|options|ipset|alias …`: one configuration's parts.

use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_core::Vmid;
use hearth_core::firewall::{Level, option_keys};
use hearth_proto::{FirewallRequest, FirewallScope};

use super::{change, flag, option, optional, positional, print, string, text};

fn options_command(level: Level) -> Command {
    let mut set = Command::new("set")
        .about("Set options; --delete clears them")
        .arg(option("delete", "KEYS", "Options to reset to their defaults, separated by commas"))
        .arg(flag("force", "Apply even when the management ports (SSH 22, API 8006) would be dropped"));
    for key in option_keys(level) {
        set = set.arg(Arg::new(key).long(key).value_name("VALUE").help(format!("Option {key}")));
    }
    Command::new("options")
        .about("Show or change options")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommands([
            Command::new("get").about("Show the options that are set").arg(flag("defaults", "Also show defaults")),
            set,
        ])
}

fn ipset_command() -> Command {
    let name = || positional("name", "NAME", "IP set name");
    Command::new("ipset").about("Manage IP sets").subcommand_required(true).arg_required_else_help(true).subcommands([
        Command::new("list").about("List IP sets and their entries"),
        Command::new("create").about("Create an IP set").arg(name()).arg(option("comment", "TEXT", "Comment")),
        Command::new("delete").about("Delete an IP set no rule uses").arg(name()),
        Command::new("add")
            .about("Add an address, CIDR or alias to an IP set")
            .arg(name())
            .arg(positional("cidr", "CIDR", "Address, CIDR or alias; a leading ! makes it an exception"))
            .arg(flag("nomatch", "An exception: matching addresses are not members"))
            .arg(option("comment", "TEXT", "Comment")),
        Command::new("remove").about("Remove an entry").arg(name()).arg(positional("cidr", "CIDR", "The entry")),
    ])
}

fn alias_command() -> Command {
    let name = || positional("name", "NAME", "Alias name");
    Command::new("alias").about("Manage IP aliases").subcommand_required(true).arg_required_else_help(true).subcommands(
        [
            Command::new("list").about("List aliases"),
            Command::new("set")
                .about("Create or change an alias")
                .arg(name())
                .arg(positional("cidr", "CIDR", "Address or CIDR"))
                .arg(option("comment", "TEXT", "Comment")),
            Command::new("delete").about("Delete an alias").arg(name()),
        ],
    )
}

fn areas(cmd: Command, level: Level) -> Command {
    let cmd = cmd.subcommand_required(true).arg_required_else_help(true).subcommand(super::rules::command());
    let cmd = cmd.subcommand(options_command(level));
    if level == Level::Host { cmd } else { cmd.subcommand(ipset_command()).subcommand(alias_command()) }
}

fn vmid_arg() -> Arg {
    positional("vmid", "VMID", "The guest").value_parser(|s: &str| s.parse::<Vmid>())
}

pub fn cluster() -> Command {
    areas(Command::new("cluster").about("The cluster configuration (cluster.fw)"), Level::Cluster)
}

pub fn host() -> Command {
    areas(Command::new("host").about("This node's configuration (host.fw)"), Level::Host)
}

pub fn vm() -> Command {
    areas(Command::new("vm").about("A VM's configuration (<vmid>.fw)").arg(vmid_arg()), Level::Guest)
}

pub fn ct() -> Command {
    areas(Command::new("ct").about("A container's configuration (<vmid>.fw)").arg(vmid_arg()), Level::Guest)
}

pub fn run_cluster(m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    run(FirewallScope::Cluster, m, format)
}

pub fn run_host(m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    run(FirewallScope::Host, m, format)
}

pub fn run_guest(m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = *m.get_one::<Vmid>("vmid").expect("vmid is required");
    run(FirewallScope::Guest(vmid), m, format)
}

fn run(scope: FirewallScope, m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let Some((area, args)) = m.subcommand() else { anyhow::bail!("no command given") };
    match area {
        "rules" => super::rules::run(scope, None, args, format),
        "options" => options(scope, args, format),
        "ipset" => ipset(scope, args, format),
        "alias" => alias(scope, args, format),
        other => anyhow::bail!("unknown command '{other}'"),
    }
}

fn options(scope: FirewallScope, m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let Some((action, args)) = m.subcommand() else { anyhow::bail!("no options command given") };
    match action {
        "get" => {
            let t = text(FirewallRequest::OptionsGet { scope, defaults: cli::flag(args, "defaults") })?;
            if format.is_json() {
                let map: serde_json::Map<String, serde_json::Value> = t
                    .lines()
                    .filter_map(|l| l.split_once(": "))
                    .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
                    .collect();
                return cli::print_json(&map, format);
            }
            cli::print_text(&t)
        }
        _ => {
            let level = match scope {
                FirewallScope::Cluster => Level::Cluster,
                FirewallScope::Host => Level::Host,
                FirewallScope::Guest(_) => Level::Guest,
            };
            let options: Vec<(String, String)> =
                option_keys(level).into_iter().filter_map(|k| optional(args, k).map(|v| (k.to_string(), v))).collect();
            let delete = cli::key_list(args, "delete");
            if options.is_empty() && delete.is_empty() {
                anyhow::bail!("nothing to change: give options to set or --delete");
            }
            change(FirewallRequest::OptionsSet { scope, options, delete, force: cli::flag(args, "force") }, format)
        }
    }
}

fn ipset(scope: FirewallScope, m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let Some((action, a)) = m.subcommand() else { anyhow::bail!("no ipset command given") };
    let name = string(a, "name");
    match action {
        "list" => print(&text(FirewallRequest::IpSetList { scope })?, format),
        "create" => change(FirewallRequest::IpSetCreate { scope, name, comment: optional(a, "comment") }, format),
        "delete" => change(FirewallRequest::IpSetDelete { scope, name }, format),
        "add" => change(
            FirewallRequest::IpSetAdd {
                scope,
                name,
                cidr: string(a, "cidr"),
                nomatch: cli::flag(a, "nomatch"),
                comment: optional(a, "comment"),
            },
            format,
        ),
        _ => change(FirewallRequest::IpSetRemove { scope, name, cidr: string(a, "cidr") }, format),
    }
}

fn alias(scope: FirewallScope, m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let Some((action, a)) = m.subcommand() else { anyhow::bail!("no alias command given") };
    let name = string(a, "name");
    match action {
        "list" => print(&text(FirewallRequest::AliasList { scope })?, format),
        "set" => change(
            FirewallRequest::AliasSet { scope, name, cidr: string(a, "cidr"), comment: optional(a, "comment") },
            format,
        ),
        _ => change(FirewallRequest::AliasDelete { scope, name }, format),
    }
}
