//! `vmctl delsnapshot`, `ctctl delsnapshot`: delete a snapshot of a guest, as `qm delsnapshot`
//! and `pct delsnapshot`.

use clap::{ArgMatches, Command};
use hearth_core::GuestKind;
use hearth_proto::{CtRequest, VmRequest};

use crate::cli::{self, OutputFormat};

pub fn command(kind: GuestKind) -> Command {
    let n = super::names(kind);
    let long_about = match kind {
        GuestKind::Vm => {
            "Delete a snapshot of a virtual machine, as qm delsnapshot does. Needs VM.Snapshot \
             on /vms/<vmid>.\n\n\
             The snapshot of every disk is removed (through QEMU for the qcow2 images of a \
             running VM), then the snapshot's section of the configuration; snapshots taken from \
             it hang off its parent from then on. The current state of the VM is not touched. \
             There is no --force: if a disk's snapshot cannot be removed, the task fails and the \
             snapshot stays in the configuration. Runs as a task (type qmdelsnapshot) whose log \
             vmctl prints; the exit status is the task's."
        }
        GuestKind::Ct => {
            "Delete a snapshot of a container, as pct delsnapshot does. ctctl asks hearthd, \
             which needs VM.Snapshot on /vms/<ctid> from the caller.\n\n\
             The snapshot of every volume is removed, then the snapshot's section of the \
             configuration; snapshots taken from it hang off its parent from then on. The \
             current state of the container is not touched. There is no --force: if a volume's \
             snapshot cannot be removed, the task fails and the snapshot stays in the \
             configuration. Runs as a task (type vzdelsnapshot) whose log ctctl prints; the \
             exit status is the task's."
        }
    };
    Command::new("delsnapshot")
        .about(format!("Delete a snapshot of a {}", n.noun))
        .long_about(long_about)
        .arg(super::id_arg(kind, format!("The {} whose snapshot to delete", n.guest)))
        .arg(super::snapname_arg("The snapshot to delete"))
}

pub fn run(kind: GuestKind, bin: &str, matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = super::id(kind, matches)?;
    let name = super::snapname(matches)?;
    let request = super::request(
        kind,
        name.clone(),
        |name| VmRequest::DelSnapshot { vmid, name },
        |name| CtRequest::DelSnapshot { vmid, name },
    );
    cli::run_request(bin, &request, format, || format!("deleting snapshot '{name}' of {} {vmid}", kind.noun()))
}
