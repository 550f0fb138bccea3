//! `vmctl unlock`: remove a stale lock, as `qm unlock`.

use anyhow::Context;
use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Payload, Request, VmRequest};

pub fn command() -> Command {
    Command::new("unlock")
        .about("Remove the lock of a virtual machine")
        .long_about(
            "Remove the lock key (backup, migrate, snapshot, ...) from a virtual machine's \
             configuration, as qm unlock does. Use it only for locks left behind by a task \
             that crashed: check `clusterctl task list --vmid <vmid> --running` first. Prints \
             nothing on success.",
        )
        .arg(cli::vmid_arg("vmid", "The VM to unlock"))
}

pub fn run(matches: &ArgMatches, _format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let mut client = cli::connect(crate::BIN)?;
    match client.call(&Request::Vm(VmRequest::Unlock { vmid })).with_context(|| format!("unlocking VM {vmid}"))? {
        Payload::Empty => Ok(()),
        other => Err(cli::unexpected(&other)),
    }
}
