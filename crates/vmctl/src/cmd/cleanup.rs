//! `vmctl cleanup`: remove what a QEMU that is gone left behind, as qmeventd's `qm cleanup`.

use anyhow::Context;
use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Payload, Request, VmRequest};

pub fn command() -> Command {
    Command::new("cleanup")
        .about("Clean up after a virtual machine whose QEMU is gone")
        .long_about(
            "Remove what a QEMU process that ended left behind: its pidfile and sockets under \
             run/hearth/qemu/, and a suspended or suspending lock that no longer holds. hearthd \
             does this by itself when it sees a VM stop; use it after QEMU was killed while \
             hearthd was not watching. Refused while the VM runs. Other locks stay (see `vmctl \
             unlock`). Needs VM.PowerMgmt on /vms/<vmid>. Prints nothing on success.",
        )
        .arg(cli::vmid_arg("vmid", "The VM to clean up after"))
}

pub fn run(matches: &ArgMatches, _format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let mut client = cli::connect(crate::BIN)?;
    match client.call(&Request::Vm(VmRequest::Cleanup { vmid })).with_context(|| format!("cleaning up VM {vmid}"))? {
        Payload::Empty => Ok(()),
        other => Err(cli::unexpected(&other)),
    }
}
