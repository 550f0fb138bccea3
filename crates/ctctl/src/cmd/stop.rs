//! `ctctl stop`: kill a container at once, as `pct stop`.

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{CtRequest, Request};

pub fn command() -> Command {
    Command::new("stop")
        .about("Stop a container at once")
        .long_about(
            "Stop a container at once, as pct stop does: every process in it is killed, with no \
             chance to shut down cleanly; use `ctctl shutdown` for that. ctctl asks hearthd, \
             which needs VM.PowerMgmt on /vms/<ctid> from the caller.\n\n\
             Refused if the container is not running. If hearthd runs the stop as a task (type \
             vzstop), ctctl prints its log; the exit status is 0 once the container is stopped.",
        )
        .arg(cli::vmid_arg("ctid", "The container to stop"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "ctid")?;
    super::run_request(&Request::Ct(CtRequest::Stop { vmid }), format, || format!("stopping CT {vmid}"))
}
