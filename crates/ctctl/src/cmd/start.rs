//! `ctctl start`: start a container, as `pct start`.

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{CtRequest, Request};

pub fn command() -> Command {
    Command::new("start")
        .about("Start a container")
        .long_about(
            "Start a container, as pct start does; ctctl asks hearthd, which needs VM.PowerMgmt \
             on /vms/<ctid> from the caller.\n\n\
             hearthd mounts the container's volumes, sets up its network and starts its init; \
             pending configuration changes take effect now. It refuses a container that is \
             locked (mounted by `ctctl mount`, for instance), a template, or already running. \
             If hearthd runs the start as a task (type vzstart), ctctl prints its log; the exit \
             status is 0 once the container's init runs, 1 if it could not be started.",
        )
        .arg(cli::vmid_arg("ctid", "The container to start"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "ctid")?;
    super::run_request(&Request::Ct(CtRequest::Start { vmid }), format, || format!("starting CT {vmid}"))
}
