//! `clusterctl node startall|stopall`: the node's guests as a whole, as pvenode startall and
//! stopall (what Proxmox's pve-guests service runs at boot and shutdown).

use clap::{Arg, ArgMatches, Command, value_parser};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{NodeRequest, Request};

pub fn command() -> Command {
    Command::new("node")
        .about("Start or stop all guests of this node")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(
            Command::new("startall")
                .about("Start the guests marked onboot")
                .long_about(
                    "Start every VM with onboot: 1, in the order of startup: order=N (ascending; guests \
                     without an order last), waiting up=SECONDS after each, as pvenode startall does at \
                     boot. A guest that fails to start is reported as a warning and the others still \
                     start. Needs VM.PowerMgmt on /. Runs as a task (type startall).",
                )
                .arg(cli::flag_arg("force", "Also start guests without onboot: 1")),
        )
        .subcommand(
            Command::new("stopall")
                .about("Shut down all running guests")
                .long_about(
                    "Shut down every running VM through ACPI in reverse start order, each within its \
                     startup: down=SECONDS (default 180, or --timeout), stopping those that do not \
                     power off in time, as pvenode stopall does at shutdown. Runs as a task (type \
                     stopall).",
                )
                .arg(
                    Arg::new("timeout")
                        .long("timeout")
                        .value_name("SECONDS")
                        .value_parser(value_parser!(u64))
                        .help("Time each guest gets to power off [default: its down=, else 180]"),
                ),
        )
}

pub fn run(matches: &ArgMatches, _format: OutputFormat) -> anyhow::Result<()> {
    let Some((name, sub)) = matches.subcommand() else { anyhow::bail!("no node command given") };
    let format: OutputFormat = crate::leaf_format(sub);
    let request = match name {
        "startall" => NodeRequest::StartAll { force: cli::flag(sub, "force") },
        "stopall" => NodeRequest::StopAll { timeout: sub.get_one::<u64>("timeout").copied() },
        other => anyhow::bail!("unknown node command '{other}'"),
    };
    let mut client = cli::connect(crate::BIN)?;
    cli::run_task(&mut client, &Request::Node(request), format)?;
    Ok(())
}
