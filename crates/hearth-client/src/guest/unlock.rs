//! `vmctl unlock`, `ctctl unlock`: remove a stale lock, as `qm unlock` and `pct unlock`.

use anyhow::Context;
use clap::{ArgMatches, Command};
use hearth_core::GuestKind;
use hearth_proto::{CtRequest, Payload, VmRequest};

use crate::cli::{self, OutputFormat};

pub fn command(kind: GuestKind) -> Command {
    let n = super::names(kind);
    // Examples of locks this kind of guest takes.
    let locks = match kind {
        GuestKind::Vm => "backup, migrate, snapshot, ...",
        GuestKind::Ct => "backup, mounted, snapshot, ...",
    };
    let owner = match kind {
        GuestKind::Vm => "a virtual machine's",
        GuestKind::Ct => "a container's",
    };
    Command::new("unlock")
        .about(format!("Remove the lock of a {}", n.noun))
        .long_about(format!(
            "Remove the lock key ({locks}) from {owner} configuration, as {} unlock does. Use \
             it only for locks left behind by a task that crashed: check `clusterctl task list \
             --vmid <{}> --running` first. Prints nothing on success.",
            n.tool, n.id
        ))
        .arg(super::id_arg(kind, format!("The {} to unlock", n.guest)))
}

pub fn run(kind: GuestKind, bin: &str, matches: &ArgMatches, _format: OutputFormat) -> anyhow::Result<()> {
    let vmid = super::id(kind, matches)?;
    let request = super::request(kind, vmid, |vmid| VmRequest::Unlock { vmid }, |vmid| CtRequest::Unlock { vmid });
    let mut client = cli::connect(bin)?;
    match client.call(&request).with_context(|| format!("unlocking {} {vmid}", kind.noun()))? {
        Payload::Empty => Ok(()),
        other => Err(cli::unexpected(&other)),
    }
}
