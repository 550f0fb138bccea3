//! `ctctl rollback`: return a container to a snapshot, as `pct rollback`.

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{CtRequest, Request};

pub fn command() -> Command {
    Command::new("rollback")
        .about("Roll a container back to a snapshot")
        .long_about(
            "Return a container's volumes and configuration to a snapshot, as pct rollback \
             does. ctctl asks hearthd, which needs VM.Snapshot.Rollback on /vms/<ctid> from \
             the caller.\n\n\
             Everything written and changed in the configuration since the snapshot is lost, \
             pending changes included; the snapshot becomes the parent of the current state and \
             the other snapshots stay. Stop the container first; start it again afterwards \
             (pct's --start is not supported). Runs as a task (type vzrollback) whose log ctctl \
             prints; the exit status is the task's.",
        )
        .arg(cli::vmid_arg("ctid", "The container to roll back"))
        .arg(super::snapname_arg("The snapshot to return to"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "ctid")?;
    let name = super::snapname(matches)?;
    let request = Request::Ct(CtRequest::Rollback { vmid, name: name.clone() });
    super::run_request(&request, format, || format!("rolling CT {vmid} back to snapshot '{name}'"))
}
