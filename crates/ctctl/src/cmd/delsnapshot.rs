//! `ctctl delsnapshot`: delete a snapshot of a container, as `pct delsnapshot`.

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{CtRequest, Request};

pub fn command() -> Command {
    Command::new("delsnapshot")
        .about("Delete a snapshot of a container")
        .long_about(
            "Delete a snapshot of a container, as pct delsnapshot does. ctctl asks hearthd, \
             which needs VM.Snapshot on /vms/<ctid> from the caller.\n\n\
             The snapshot of every volume is removed, then the snapshot's section of the \
             configuration; snapshots taken from it hang off its parent from then on. The \
             current state of the container is not touched. There is no --force: if a volume's \
             snapshot cannot be removed, the task fails and the snapshot stays in the \
             configuration. Runs as a task (type vzdelsnapshot) whose log ctctl prints; the \
             exit status is the task's.",
        )
        .arg(cli::vmid_arg("ctid", "The container whose snapshot to delete"))
        .arg(super::snapname_arg("The snapshot to delete"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "ctid")?;
    let name = super::snapname(matches)?;
    let request = Request::Ct(CtRequest::DelSnapshot { vmid, name: name.clone() });
    super::run_request(&request, format, || format!("deleting snapshot '{name}' of CT {vmid}"))
}
