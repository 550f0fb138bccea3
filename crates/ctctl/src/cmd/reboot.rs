//! `ctctl reboot`: shut a container down and start it again, as `pct reboot`.

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{CtRequest, Request};

pub fn command() -> Command {
    Command::new("reboot")
        .about("Reboot a container, applying pending changes")
        .long_about(
            "Reboot a container, as pct reboot does: a clean shutdown as `ctctl shutdown` does, \
             then a fresh start, so pending configuration changes take effect. ctctl asks \
             hearthd, which needs VM.PowerMgmt on /vms/<ctid> from the caller.\n\n\
             If the container has not stopped after --timeout seconds (default 60) the command \
             fails and the container keeps running. Refused if the container is not running. \
             If hearthd runs the reboot as a task (type vzreboot), ctctl prints its log.",
        )
        .arg(cli::vmid_arg("ctid", "The container to reboot"))
        .arg(super::timeout_arg("Seconds to wait for the container to stop (default 60)"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "ctid")?;
    let request = Request::Ct(CtRequest::Reboot { vmid, timeout: super::timeout(matches) });
    super::run_request(&request, format, || format!("rebooting CT {vmid}"))
}
