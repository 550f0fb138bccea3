//! `vmctl shutdown`, `ctctl shutdown`: power a guest off cleanly (ACPI for a VM, a signal to a
//! container's init), as `qm shutdown` and `pct shutdown`.

use clap::{ArgMatches, Command};
use hearth_core::GuestKind;
use hearth_proto::{CtRequest, VmRequest};

use crate::cli::{self, OutputFormat};

pub fn command(kind: GuestKind) -> Command {
    let n = super::names(kind);
    let (long_about, timeout, force_stop) = match kind {
        GuestKind::Vm => (
            "Shut a virtual machine down cleanly, as qm shutdown does: hearthd presses the \
             ACPI power button and waits until the guest has powered off. Needs VM.PowerMgmt \
             on /vms/<vmid>.\n\n\
             A guest that does not react (no ACPI support, hung) is left running and the task \
             fails after --timeout seconds (default 180), unless --forceStop 1 is given: then \
             the VM is stopped as `vmctl stop` does. Refused if the VM is not running. Runs as a \
             task (type qmshutdown) whose log vmctl prints; the exit status is the task's.",
            "Seconds to wait for the guest to power off (default 180)",
            "Stop the VM if it has not powered off when the timeout ends (also --force-stop)",
        ),
        GuestKind::Ct => (
            "Shut a container down cleanly, as pct shutdown does: hearthd asks the container's \
             init to power off (SIGRTMIN+3 for systemd, SIGPWR otherwise) and waits until it \
             has. ctctl asks hearthd, which needs VM.PowerMgmt on /vms/<ctid> from the \
             caller.\n\n\
             A container that has not stopped after --timeout seconds (default 60) is left \
             running and the command fails, unless --forceStop 1 is given: then it is killed as \
             `ctctl stop` does. Refused if the container is not running. If hearthd runs the \
             shutdown as a task (type vzshutdown), ctctl prints its log.",
            "Seconds to wait for the container to stop (default 60)",
            "Kill the container if it has not stopped when the timeout ends (also --force-stop)",
        ),
    };
    Command::new("shutdown")
        .about(format!("Shut a {} down cleanly", n.noun))
        .long_about(long_about)
        .arg(super::id_arg(kind, format!("The {} to shut down", n.guest)))
        .arg(super::timeout_arg(timeout))
        .arg(cli::flag_arg("forceStop", force_stop).alias("force-stop"))
}

pub fn run(kind: GuestKind, bin: &str, matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = super::id(kind, matches)?;
    let timeout = super::timeout(matches);
    let force_stop = matches.try_get_one::<bool>("forceStop").ok().flatten().copied().unwrap_or(false);
    let request = super::request(
        kind,
        vmid,
        |vmid| VmRequest::Shutdown { vmid, timeout, force_stop },
        |vmid| CtRequest::Shutdown { vmid, timeout, force_stop },
    );
    cli::run_request(bin, &request, format, || format!("shutting down {} {vmid}", kind.noun()))
}
