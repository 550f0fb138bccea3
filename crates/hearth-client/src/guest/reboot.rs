//! `vmctl reboot`, `ctctl reboot`: shut a guest down and start it again, as `qm reboot` and
//! `pct reboot`.

use clap::{ArgMatches, Command};
use hearth_core::GuestKind;
use hearth_proto::{CtRequest, VmRequest};

use crate::cli::{self, OutputFormat};

pub fn command(kind: GuestKind) -> Command {
    let n = super::names(kind);
    let (long_about, timeout) = match kind {
        GuestKind::Vm => (
            "Reboot a virtual machine, as qm reboot does: a clean ACPI shutdown as `vmctl \
             shutdown` does, then a fresh start of QEMU, so pending configuration changes take \
             effect (a reboot inside the guest does not apply them). Needs VM.PowerMgmt on \
             /vms/<vmid>.\n\n\
             If the guest has not powered off after --timeout seconds (default 180) the task \
             fails and the VM keeps running. Refused if the VM is not running. Runs as a task \
             (type qmreboot) whose log vmctl prints; the exit status is the task's.",
            "Seconds to wait for the guest to power off (default 180)",
        ),
        GuestKind::Ct => (
            "Reboot a container, as pct reboot does: a clean shutdown as `ctctl shutdown` does, \
             then a fresh start, so pending configuration changes take effect. ctctl asks \
             hearthd, which needs VM.PowerMgmt on /vms/<ctid> from the caller.\n\n\
             If the container has not stopped after --timeout seconds (default 60) the command \
             fails and the container keeps running. Refused if the container is not running. \
             If hearthd runs the reboot as a task (type vzreboot), ctctl prints its log.",
            "Seconds to wait for the container to stop (default 60)",
        ),
    };
    Command::new("reboot")
        .about(format!("Reboot a {}, applying pending changes", n.noun))
        .long_about(long_about)
        .arg(super::id_arg(kind, format!("The {} to reboot", n.guest)))
        .arg(super::timeout_arg(timeout))
}

pub fn run(kind: GuestKind, bin: &str, matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = super::id(kind, matches)?;
    let timeout = super::timeout(matches);
    let request = super::request(
        kind,
        vmid,
        |vmid| VmRequest::Reboot { vmid, timeout },
        |vmid| CtRequest::Reboot { vmid, timeout },
    );
    cli::run_request(bin, &request, format, || format!("rebooting {} {vmid}", kind.noun()))
}
