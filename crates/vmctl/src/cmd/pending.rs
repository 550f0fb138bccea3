//! `vmctl pending`: print configuration changes waiting for the next start, as `qm pending`.

use anyhow::Context;
use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Payload, Request, VmRequest};

pub fn command() -> Command {
    Command::new("pending")
        .about("Print the pending configuration changes of a virtual machine")
        .long_about(
            "Print the configuration of a virtual machine together with its pending changes, \
             as qm pending does: 'cur key: value' for the value in effect, 'new key: value' for \
             a value that applies at the next start and 'del key: value' for a key that will be \
             removed. `vmctl set --revert <keys>` drops pending changes.",
        )
        .arg(cli::vmid_arg("vmid", "The VM to show"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let mut client = cli::connect(crate::BIN)?;
    let request = Request::Vm(VmRequest::Pending { vmid });
    match client.call(&request).with_context(|| format!("reading the pending changes of VM {vmid}"))? {
        Payload::Pending(items) => cli::print_pending(&items, format),
        other => Err(cli::unexpected(&other)),
    }
}
