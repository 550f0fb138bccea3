//! `vmctl rollback`, `ctctl rollback`: return a guest to a snapshot, as `qm rollback` and
//! `pct rollback`.

use clap::{ArgMatches, Command};
use hearth_core::GuestKind;
use hearth_proto::{CtRequest, VmRequest};

use crate::cli::{self, OutputFormat};

pub fn command(kind: GuestKind) -> Command {
    let n = super::names(kind);
    let long_about = match kind {
        GuestKind::Vm => {
            "Return a virtual machine's disks and configuration to a snapshot, as qm rollback \
             does. Needs VM.Snapshot.Rollback on /vms/<vmid>.\n\n\
             Everything written to the disks and changed in the configuration since the \
             snapshot is lost, pending changes included; the snapshot becomes the parent of the \
             current state and the other snapshots stay. Snapshots hold no memory, so where qm \
             stops a running VM itself, hearthd refuses: stop or shut the VM down first, and \
             start it again afterwards. Runs as a task (type qmrollback) whose log vmctl prints; \
             the exit status is the task's."
        }
        GuestKind::Ct => {
            "Return a container's volumes and configuration to a snapshot, as pct rollback \
             does. ctctl asks hearthd, which needs VM.Snapshot.Rollback on /vms/<ctid> from \
             the caller.\n\n\
             Everything written and changed in the configuration since the snapshot is lost, \
             pending changes included; the snapshot becomes the parent of the current state and \
             the other snapshots stay. Stop the container first; start it again afterwards \
             (pct's --start is not supported). Runs as a task (type vzrollback) whose log ctctl \
             prints; the exit status is the task's."
        }
    };
    Command::new("rollback")
        .about(format!("Roll a {} back to a snapshot", n.noun))
        .long_about(long_about)
        .arg(super::id_arg(kind, format!("The {} to roll back", n.guest)))
        .arg(super::snapname_arg("The snapshot to return to"))
}

pub fn run(kind: GuestKind, bin: &str, matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = super::id(kind, matches)?;
    let name = super::snapname(matches)?;
    let request = super::request(
        kind,
        name.clone(),
        |name| VmRequest::Rollback { vmid, name },
        |name| CtRequest::Rollback { vmid, name },
    );
    cli::run_request(bin, &request, format, || format!("rolling {} {vmid} back to snapshot '{name}'", kind.noun()))
}
