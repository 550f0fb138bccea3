//! `ctctl unlock`: remove a stale lock, as `pct unlock`.

use anyhow::Context;
use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{CtRequest, Payload, Request};

pub fn command() -> Command {
    Command::new("unlock")
        .about("Remove the lock of a container")
        .long_about(
            "Remove the lock key (backup, mounted, snapshot, ...) from a container's \
             configuration, as pct unlock does. Use it only for locks left behind by a task \
             that crashed: check `clusterctl task list --vmid <ctid> --running` first. Prints \
             nothing on success.",
        )
        .arg(cli::vmid_arg("ctid", "The container to unlock"))
}

pub fn run(matches: &ArgMatches, _format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "ctid")?;
    let mut client = cli::connect(crate::BIN)?;
    match client.call(&Request::Ct(CtRequest::Unlock { vmid })).with_context(|| format!("unlocking CT {vmid}"))? {
        Payload::Empty => Ok(()),
        other => Err(cli::unexpected(&other)),
    }
}
