//! `clusterctl node`: the node as a whole, as `pvenode`: start and stop all guests, its
//! settings (`config get|set`), Wake-on-LAN for another node, and its tasks (`node task`, the
//! same commands as `clusterctl task`).

use anyhow::bail;
use clap::{Arg, ArgMatches, Command, value_parser};
use hearth_client::cli::{self, OutputFormat, Subcommand};
use hearth_core::Vmid;
use hearth_proto::{NodeRequest, Payload, Request};
use serde_json::Value;

/// The node subcommands, in the order of the help.
pub(crate) const COMMANDS: &[Subcommand] = &[
    Subcommand::new("startall", startall_command, startall_run),
    Subcommand::new("stopall", stopall_command, stopall_run),
    Subcommand::new("config", config_command, config_run),
    Subcommand::new("wakeonlan", wakeonlan_command, wakeonlan_run),
    Subcommand::new("task", super::task::command, super::task::run),
];

pub fn command() -> Command {
    Command::new("node")
        .about("Manage this node: its guests as a whole, its settings and tasks")
        .long_about(
            "Manage this node as pvenode does: start or stop all of its guests, show and change \
             its settings, wake another node over the LAN, and list its tasks (`node task` is \
             `clusterctl task`).",
        )
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommands(cli::subcommands(COMMANDS))
}

pub fn run(matches: &ArgMatches, _format: OutputFormat) -> anyhow::Result<()> {
    cli::dispatch(COMMANDS, "clusterctl node", matches)
}

/// `--vms 100,101,102`: only these guests.
fn vms_arg() -> Arg {
    Arg::new("vms")
        .long("vms")
        .value_name("VMIDS")
        .value_parser(|s: &str| -> Result<Vec<Vmid>, String> {
            s.split([',', ';', ' '])
                .filter(|p| !p.is_empty())
                .map(|p| p.parse::<Vmid>().map_err(|e| e.to_string()))
                .collect()
        })
        .help("Only these guests: a list of VMIDs such as 100,101,102")
}

fn vms(matches: &ArgMatches) -> Option<Vec<Vmid>> {
    matches.get_one::<Vec<Vmid>>("vms").cloned()
}

fn startall_command() -> Command {
    Command::new("startall")
        .about("Start the guests marked onboot")
        .long_about(
            "Start every guest with onboot: 1, in the order of startup: order=N (ascending; guests \
             without an order last), waiting up=SECONDS after each, as pvenode startall does at \
             boot; the node setting startall-onboot-delay makes it wait that long first. \
             --force also starts guests without onboot: 1; --vms limits it to the guests given. \
             A guest that fails to start is reported as a warning and the others still start. \
             Needs VM.PowerMgmt on /. Runs as a task (type startall).",
        )
        .arg(cli::flag_arg("force", "Also start guests without onboot: 1"))
        .arg(vms_arg())
}

fn startall_run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let request = NodeRequest::StartAll { force: cli::flag(matches, "force"), vms: vms(matches) };
    let mut client = cli::connect(crate::BIN)?;
    cli::run_task(&mut client, &Request::Node(request), format)?;
    Ok(())
}

fn stopall_command() -> Command {
    Command::new("stopall")
        .about("Shut down all running guests")
        .long_about(
            "Shut down every running guest in reverse start order, each within its startup: \
             down=SECONDS (default 180, or --timeout), stopping those that do not power off in \
             time, as pvenode stopall does at shutdown; --vms limits it to the guests given. \
             Runs as a task (type stopall).",
        )
        .arg(
            Arg::new("timeout")
                .long("timeout")
                .value_name("SECONDS")
                .value_parser(value_parser!(u64))
                .help("Time each guest gets to power off [default: its down=, else 180]"),
        )
        .arg(vms_arg())
}

fn stopall_run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let request = NodeRequest::StopAll { timeout: matches.get_one::<u64>("timeout").copied(), vms: vms(matches) };
    let mut client = cli::connect(crate::BIN)?;
    cli::run_task(&mut client, &Request::Node(request), format)?;
    Ok(())
}

/// The node settings `config set` takes, with their help.
const SETTINGS: &[(&str, &str)] = &[
    ("description", "Description shown in the node's summary"),
    ("startall-onboot-delay", "Seconds startall waits before starting the onboot guests (0-300)"),
    ("wakeonlan", "MAC address for Wake-on-LAN: MAC[,bind-interface=IFACE][,broadcast-address=IPv4]"),
    ("ballooning-target", "RAM usage target for ballooning, in percent (0-100)"),
    ("acme", "ACME settings: [account=NAME][,domains=DOMAIN;DOMAIN...]"),
    ("acmedomain0", "ACME domain: [domain=]DOMAIN[,alias=DOMAIN][,plugin=NAME]"),
    ("acmedomain1", "ACME domain"),
    ("acmedomain2", "ACME domain"),
    ("acmedomain3", "ACME domain"),
    ("acmedomain4", "ACME domain"),
    ("acmedomain5", "ACME domain"),
];

fn config_command() -> Command {
    let set = Command::new("set")
        .about("Change the node's settings")
        .long_about(
            "Change settings of this node, as pvenode config set does; --delete removes settings. \
             Every value is checked before anything is written (etc/hearth/nodes/<node>/config.toml). \
             Needs Sys.Modify on /nodes/<node>.",
        )
        .args(SETTINGS.iter().map(|(key, help)| Arg::new(*key).long(*key).value_name("VALUE").help(*help)))
        .arg(cli::key_list_arg("delete", "Settings to remove"));
    let get = Command::new("get")
        .about("Show the node's settings")
        .long_about(
            "Show the settings of this node as key: value lines, as pvenode config get does. \
             Needs Sys.Audit on /nodes/<node>.",
        )
        .arg(
            Arg::new("property")
                .long("property")
                .value_name("KEY")
                .value_parser(clap::builder::PossibleValuesParser::new(["acme", "wakeonlan"]))
                .help("Only this setting"),
        );
    Command::new("config")
        .about("Show or change the node's settings")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(get)
        .subcommand(set)
}

fn config_run(matches: &ArgMatches, _format: OutputFormat) -> anyhow::Result<()> {
    let Some((name, sub)) = matches.subcommand() else { bail!("no config command given") };
    let format = OutputFormat::from_matches(sub);
    let mut client = cli::connect(crate::BIN)?;
    match name {
        "get" => {
            let Payload::Text(text) = client.call(&Request::Node(NodeRequest::ConfigGet))? else {
                bail!("unexpected answer from hearthd");
            };
            let mut config: serde_json::Map<String, Value> = serde_json::from_str(&text)?;
            if let Some(property) = sub.get_one::<String>("property") {
                config.retain(|k, _| k == property || (property == "acme" && k.starts_with("acmedomain")));
            }
            if format.is_json() {
                return cli::print_json(&config, format);
            }
            let mut out = String::new();
            for (key, value) in &config {
                let value = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
                out.push_str(&format!("{key}: {value}\n"));
            }
            cli::print_text(&out)
        }
        "set" => {
            let options: Vec<(String, String)> = SETTINGS
                .iter()
                .filter_map(|(key, _)| sub.get_one::<String>(key).map(|v| ((*key).to_owned(), v.clone())))
                .collect();
            let delete = cli::key_list(sub, "delete");
            client.call(&Request::Node(NodeRequest::ConfigSet { options, delete }))?;
            Ok(())
        }
        other => bail!("unknown config command '{other}'"),
    }
}

fn wakeonlan_command() -> Command {
    Command::new("wakeonlan")
        .about("Wake another node over the LAN")
        .long_about(
            "Send a Wake-on-LAN magic packet for <node>, as pvenode wakeonlan does: to UDP port 9 \
             of the broadcast address in the node's wakeonlan setting (default \
             255.255.255.255), from its bind-interface if set. Prints the MAC address woken. \
             Needs Sys.PowerMgmt on /nodes/<node>.",
        )
        .arg(Arg::new("node").value_name("NODE").required(true).help("The node to wake"))
}

fn wakeonlan_run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let node = matches.get_one::<String>("node").cloned().unwrap_or_default();
    let mut client = cli::connect(crate::BIN)?;
    let Payload::Text(mac) = client.call(&Request::Node(NodeRequest::WakeOnLan { node }))? else {
        bail!("unexpected answer from hearthd");
    };
    if format.is_json() { cli::print_json(&mac, format) } else { cli::print_text(&format!("{mac}\n")) }
}
