//! `ctctl snapshot`: snapshot a container's volumes and configuration, as `pct snapshot`.

use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{CtRequest, Request};

pub fn command() -> Command {
    Command::new("snapshot")
        .about("Take a snapshot of a container")
        .long_about(
            "Take a snapshot of a container's volumes and configuration, as pct snapshot does. \
             ctctl asks hearthd, which needs VM.Snapshot on /vms/<ctid> from the caller.\n\n\
             Snapshot names follow [a-z][a-z0-9_-]+ with at most 40 characters; current, \
             pending and vzdump are reserved. Every volume must be on a storage that can \
             snapshot it (bind and device mount points are left out). A running container's \
             file systems are frozen for the instant the snapshots are taken; there is no \
             memory state (no --vmstate), so a rollback starts from a stopped container. The \
             new snapshot becomes the parent of the current state (see `ctctl listsnapshot`). \
             Runs as a task (type vzsnapshot) whose log ctctl prints; the exit status is the \
             task's.",
        )
        .arg(cli::vmid_arg("ctid", "The container to snapshot"))
        .arg(super::new_snapname_arg("The name of the new snapshot"))
        .arg(Arg::new("description").long("description").value_name("TEXT").help("A description of the snapshot"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "ctid")?;
    let name = super::snapname(matches)?;
    let description = matches.get_one::<String>("description").cloned();
    let request = Request::Ct(CtRequest::Snapshot { vmid, name: name.clone(), description });
    super::run_request(&request, format, || format!("taking snapshot '{name}' of CT {vmid}"))
}
