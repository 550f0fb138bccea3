//! `vmctl snapshot`, `ctctl snapshot`: snapshot a guest's volumes and configuration, as
//! `qm snapshot` and `pct snapshot`.

use clap::{Arg, ArgMatches, Command};
use hearth_core::GuestKind;
use hearth_proto::{CtRequest, VmRequest};

use crate::cli::{self, OutputFormat};

pub fn command(kind: GuestKind) -> Command {
    let n = super::names(kind);
    let command = Command::new("snapshot")
        .about(format!("Take a snapshot of a {}", n.noun))
        .arg(super::id_arg(kind, format!("The {} to snapshot", n.guest)))
        .arg(super::new_snapname_arg("The name of the new snapshot"))
        .arg(Arg::new("description").long("description").value_name("TEXT").help("A description of the snapshot"));
    match kind {
        GuestKind::Vm => command
            .long_about(
                "Take a snapshot of a virtual machine's disks and configuration, as qm snapshot does. \
                 Needs VM.Snapshot on /vms/<vmid>.\n\n\
                 Snapshot names follow [a-z][a-z0-9_-]+ with at most 40 characters; current, \
                 pending and vzdump are reserved. Every disk (CD-ROMs and unused volumes aside) must \
                 be a qcow2 image on a dir storage or an image on btrfs. The snapshot holds disk \
                 state unless --vmstate is given: a running VM is paused for the instant its disks \
                 are snapshotted, so they agree with each other and the snapshot is crash-consistent, \
                 like the disks after a power cut; rolling back to it means booting the guest again. \
                 With --vmstate (running VMs whose disks are all qcow2) QEMU also saves the memory \
                 inside the images, and a rollback resumes the guest exactly where it was, even \
                 while it runs. If a disk fails, the snapshots \
                 already taken of the others are removed again. The new snapshot becomes the parent \
                 of the current state (see `vmctl listsnapshot`). Runs as a task (type qmsnapshot) \
                 whose log vmctl prints; the exit status is the task's.",
            )
            .arg(
                Arg::new("vmstate")
                    .long("vmstate")
                    .num_args(0..=1)
                    .default_missing_value("1")
                    .value_parser(clap::builder::BoolishValueParser::new())
                    .value_name("0|1")
                    .help("Also save the memory of the running VM"),
            ),
        GuestKind::Ct => command.long_about(
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
        ),
    }
}

pub fn run(kind: GuestKind, bin: &str, matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = super::id(kind, matches)?;
    let name = super::snapname(matches)?;
    let description = matches.get_one::<String>("description").cloned();
    // Only a VM has memory to save; containers have no --vmstate.
    let vmstate = matches.try_get_one::<bool>("vmstate").ok().flatten().copied().unwrap_or(false);
    let request = super::request(
        kind,
        (name.clone(), description),
        |(name, description)| VmRequest::Snapshot { vmid, name, description, vmstate },
        |(name, description)| CtRequest::Snapshot { vmid, name, description },
    );
    cli::run_request(bin, &request, format, || format!("taking snapshot '{name}' of {} {vmid}", kind.noun()))
}
