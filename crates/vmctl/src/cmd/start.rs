//! `vmctl start`: start a VM's QEMU, as `qm start`.

use anyhow::Context;
use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Request, VmRequest};

pub fn command() -> Command {
    Command::new("start")
        .about("Start a virtual machine")
        .long_about(
            "Start a virtual machine, as qm start does. Needs VM.PowerMgmt on /vms/<vmid>.\n\n\
             hearthd resolves the VM's volumes, starts QEMU paused, puts its network devices \
             into their bridges and then lets it run; pending configuration changes take effect \
             now. It refuses a VM that is locked, a template, already running, or that asks for \
             more memory or CPUs than the host has. On any failure nothing of the VM stays \
             behind. Runs as a task (type qmstart) whose log vmctl prints; the exit status is \
             the task's.",
        )
        .arg(cli::vmid_arg("vmid", "The VM to start"))
        .arg(super::timeout_arg("Seconds to wait for QEMU to come up (default 30)"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let mut client = cli::connect(crate::BIN)?;
    let request = Request::Vm(VmRequest::Start { vmid, timeout: super::timeout(matches) });
    cli::run_task(&mut client, &request, format).with_context(|| format!("starting VM {vmid}"))?;
    Ok(())
}
