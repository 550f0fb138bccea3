//! `vmctl start`, `ctctl start`: start a guest, as `qm start` and `pct start`.

use clap::{ArgMatches, Command};
use hearth_core::GuestKind;
use hearth_proto::{CtRequest, VmRequest};

use crate::cli::{self, OutputFormat};

pub fn command(kind: GuestKind) -> Command {
    let n = super::names(kind);
    let command = Command::new("start")
        .about(format!("Start a {}", n.noun))
        .arg(super::id_arg(kind, format!("The {} to start", n.guest)));
    match kind {
        GuestKind::Vm => command
            .long_about(
                "Start a virtual machine, as qm start does. Needs VM.PowerMgmt on /vms/<vmid>.\n\n\
                 hearthd resolves the VM's volumes, starts QEMU paused, puts its network devices \
                 into their bridges and then lets it run; pending configuration changes take effect \
                 now. It refuses a VM that is locked, a template, already running, or that asks for \
                 more memory or CPUs than the host has. On any failure nothing of the VM stays \
                 behind. Runs as a task (type qmstart) whose log vmctl prints; the exit status is \
                 the task's.",
            )
            .arg(super::timeout_arg("Seconds to wait for QEMU to come up (default 30)")),
        GuestKind::Ct => {
            command.arg(cli::flag_arg("debug", "Log the container's whole start specification in the task")).long_about(
                "Start a container, as pct start does; ctctl asks hearthd, which needs VM.PowerMgmt \
             on /vms/<ctid> from the caller.\n\n\
             hearthd mounts the container's volumes, sets up its network and starts its init; \
             pending configuration changes take effect now. It refuses a container that is \
             locked (mounted by `ctctl mount`, for instance), a template, or already running. \
             If hearthd runs the start as a task (type vzstart), ctctl prints its log; the exit \
             status is 0 once the container's init runs, 1 if it could not be started. With \
             --debug the task log also shows everything the start sets up (volumes and mounts, \
             id mappings, network, cgroup limits, capabilities), as pct start --debug does.",
            )
        }
    }
}

pub fn run(kind: GuestKind, bin: &str, matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = super::id(kind, matches)?;
    let timeout = super::timeout(matches);
    let request = super::request(
        kind,
        vmid,
        |vmid| VmRequest::Start { vmid, timeout },
        |vmid| CtRequest::Start { vmid, debug: cli::flag(matches, "debug") },
    );
    cli::run_request(bin, &request, format, || format!("starting {} {vmid}", kind.noun()))
}
