//! `vmctl stop`, `ctctl stop`: end a guest at once, as `qm stop` and `pct stop`.

use clap::{ArgMatches, Command};
use hearth_core::GuestKind;
use hearth_proto::{CtRequest, VmRequest};

use crate::cli::{self, OutputFormat};

pub fn command(kind: GuestKind) -> Command {
    let n = super::names(kind);
    let long_about = match kind {
        GuestKind::Vm => {
            "Stop a virtual machine at once, as qm stop does: like pulling the plug, the guest \
             gets no chance to shut down and loses whatever it had not written. Use `vmctl \
             shutdown` for a clean power-off. Needs VM.PowerMgmt on /vms/<vmid>.\n\n\
             hearthd asks QEMU to quit and kills it if it does not go. Refused if the VM is \
             not running, or locked (unless --skiplock). With --overrule-shutdown 1 a running \
             shutdown task of the VM (vmctl shutdown waiting for the guest) is aborted first, \
             as qm does. --skiplock and --keepActive are root@pam's; --keepActive is accepted \
             for qm's scripts and changes nothing, as Hearth's storages need no deactivation. \
             Runs as a task (type qmstop) whose log vmctl prints; the exit status is the task's."
        }
        GuestKind::Ct => {
            "Stop a container at once, as pct stop does: every process in it is killed, with no \
             chance to shut down cleanly; use `ctctl shutdown` for that. ctctl asks hearthd, \
             which needs VM.PowerMgmt on /vms/<ctid> from the caller.\n\n\
             Refused if the container is not running. If hearthd runs the stop as a task (type \
             vzstop), ctctl prints its log; the exit status is 0 once the container is stopped."
        }
    };
    let command = Command::new("stop")
        .about(format!("Stop a {} at once", n.noun))
        .long_about(long_about)
        .arg(super::id_arg(kind, format!("The {} to stop", n.guest)));
    match kind {
        GuestKind::Vm => command
            .arg(cli::flag_arg("overrule-shutdown", "Abort a running shutdown task of the VM first"))
            .arg(cli::flag_arg("skiplock", "Ignore the VM's lock (root@pam only)"))
            .arg(cli::flag_arg("keepActive", "Do not deactivate the VM's volumes (root@pam only; no effect)")),
        GuestKind::Ct => command,
    }
}

pub fn run(kind: GuestKind, bin: &str, matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = super::id(kind, matches)?;
    let request = super::request(
        kind,
        vmid,
        |vmid| VmRequest::Stop {
            vmid,
            overrule_shutdown: cli::flag(matches, "overrule-shutdown"),
            skiplock: cli::flag(matches, "skiplock"),
            keep_active: cli::flag(matches, "keepActive"),
        },
        |vmid| CtRequest::Stop { vmid },
    );
    cli::run_request(bin, &request, format, || format!("stopping {} {vmid}", kind.noun()))
}
