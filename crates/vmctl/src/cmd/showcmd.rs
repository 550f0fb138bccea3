//! `vmctl showcmd`: the QEMU command line a start would run, as `qm showcmd`.

use anyhow::Context;
use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Payload, Request, VmRequest};

pub fn command() -> Command {
    Command::new("showcmd")
        .about("Show the QEMU command line of a virtual machine (root only)")
        .long_about(
            "Print the QEMU command line that `vmctl start` would run for a virtual machine, as \
             qm showcmd does: shell-quoted on one line, or with --pretty one option and its \
             value per line, continued with backslashes. Only root@pam may use it: the command line \
             shows host paths.\n\n\
             hearthd resolves the volumes and network devices as a start would, but starts \
             nothing and changes nothing. The line is the one hearthd runs, with -S (QEMU \
             starts paused until hearthd has plugged the NICs in) and the second monitor \
             through which hearthd watches the VM. JSON output is the text as one JSON string.",
        )
        .arg(cli::vmid_arg("vmid", "The VM to show"))
        .arg(cli::flag_arg("pretty", "One option per line, continued with backslashes"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let request = Request::Vm(VmRequest::ShowCmd { vmid, pretty: cli::flag(matches, "pretty") });
    let mut client = cli::connect(crate::BIN)?;
    match client.call(&request).with_context(|| format!("building the command line of VM {vmid}"))? {
        Payload::Text(text) if format.is_json() => cli::print_json(&text, format),
        Payload::Text(mut text) => {
            if !text.ends_with('\n') {
                text.push('\n');
            }
            cli::print_text(&text)
        }
        other => Err(cli::unexpected(&other)),
    }
}
