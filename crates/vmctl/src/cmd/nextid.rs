//! `vmctl nextid`: reserve and print the lowest free guest id.

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Payload, Request, VmRequest};

pub fn command() -> Command {
    Command::new("nextid").about("Reserve and print the next free VMID").long_about(
        "Print the lowest id that no VM or container uses. Unlike Proxmox's nextid, hearthd \
             reserves the id for a short while, so parallel `vmctl create $(vmctl nextid)` calls \
             do not collide. JSON output is the bare number.",
    )
}

pub fn run(_matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let mut client = cli::connect(crate::BIN)?;
    match client.call(&Request::Vm(VmRequest::NextId))? {
        Payload::NextId(vmid) if format.is_json() => cli::print_json(&vmid, format),
        Payload::NextId(vmid) => cli::print_text(&format!("{vmid}\n")),
        other => Err(cli::unexpected(&other)),
    }
}
