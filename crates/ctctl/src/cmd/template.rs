//! `ctctl template`: turn a container into a template for linked clones, as `pct template`.

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{CtRequest, Request};

pub fn command() -> Command {
    Command::new("template")
        .about("Turn a container into a template")
        .long_about(
            "Turn a stopped container into a template, as pct template does. ctctl asks \
             hearthd, which needs VM.Allocate on /vms/<ctid> from the caller.\n\n\
             Every volume becomes a read-only base volume that linked clones share, and the \
             configuration gets template: 1. A template cannot be started, only cloned (see \
             `ctctl clone`). Refused while the container runs or is locked, or if it is a \
             template already. Runs as a task (type vztemplate) whose log ctctl prints; the \
             exit status is the task's.",
        )
        .arg(cli::vmid_arg("ctid", "The container to turn into a template"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "ctid")?;
    super::run_request(&Request::Ct(CtRequest::Template { vmid }), format, || {
        format!("turning CT {vmid} into a template")
    })
}
