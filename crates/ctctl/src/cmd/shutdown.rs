//! `ctctl shutdown`: ask a container's init to power off, as `pct shutdown`.

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{CtRequest, Request};

pub fn command() -> Command {
    Command::new("shutdown")
        .about("Shut a container down cleanly")
        .long_about(
            "Shut a container down cleanly, as pct shutdown does: hearthd asks the container's \
             init to power off (SIGRTMIN+3 for systemd, SIGPWR otherwise) and waits until it \
             has. ctctl asks hearthd, which needs VM.PowerMgmt on /vms/<ctid> from the \
             caller.\n\n\
             A container that has not stopped after --timeout seconds (default 60) is left \
             running and the command fails, unless --forceStop 1 is given: then it is killed as \
             `ctctl stop` does. Refused if the container is not running. If hearthd runs the \
             shutdown as a task (type vzshutdown), ctctl prints its log.",
        )
        .arg(cli::vmid_arg("ctid", "The container to shut down"))
        .arg(super::timeout_arg("Seconds to wait for the container to stop (default 60)"))
        .arg(
            cli::flag_arg(
                "forceStop",
                "Kill the container if it has not stopped when the timeout ends (also --force-stop)",
            )
            .alias("force-stop"),
        )
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "ctid")?;
    let force_stop = matches.try_get_one::<bool>("forceStop").ok().flatten().copied().unwrap_or(false);
    let request = Request::Ct(CtRequest::Shutdown { vmid, timeout: super::timeout(matches), force_stop });
    super::run_request(&request, format, || format!("shutting down CT {vmid}"))
}
