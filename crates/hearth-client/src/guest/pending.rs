//! `vmctl pending`, `ctctl pending`: print configuration changes waiting for the next start,
//! as `qm pending` and `pct pending`.

use anyhow::Context;
use clap::{ArgMatches, Command};
use hearth_core::GuestKind;
use hearth_proto::{CtRequest, Payload, VmRequest};

use crate::cli::{self, OutputFormat};

pub fn command(kind: GuestKind) -> Command {
    let n = super::names(kind);
    Command::new("pending")
        .about(format!("Print the pending configuration changes of a {}", n.noun))
        .long_about(format!(
            "Print the configuration of a {} together with its pending changes, as {} pending \
             does: 'cur key: value' for the value in effect, 'new key: value' for a value that \
             applies at the next start and 'del key: value' for a key that will be removed. \
             `{} set --revert <keys>` drops pending changes.",
            n.noun, n.tool, n.bin
        ))
        .arg(super::id_arg(kind, format!("The {} to show", n.guest)))
}

pub fn run(kind: GuestKind, bin: &str, matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = super::id(kind, matches)?;
    let request = super::request(kind, vmid, |vmid| VmRequest::Pending { vmid }, |vmid| CtRequest::Pending { vmid });
    let mut client = cli::connect(bin)?;
    match client.call(&request).with_context(|| format!("reading the pending changes of {} {vmid}", kind.noun()))? {
        Payload::Pending(items) => cli::print_pending(&items, format),
        other => Err(cli::unexpected(&other)),
    }
}
