//! `vmctl reboot`: shut a VM down and start it again, as `qm reboot`.

use anyhow::Context;
use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Request, VmRequest};

pub fn command() -> Command {
    Command::new("reboot")
        .about("Reboot a virtual machine, applying pending changes")
        .long_about(
            "Reboot a virtual machine, as qm reboot does: a clean ACPI shutdown as `vmctl \
             shutdown` does, then a fresh start of QEMU, so pending configuration changes take \
             effect (a reboot inside the guest does not apply them). Needs VM.PowerMgmt on \
             /vms/<vmid>.\n\n\
             If the guest has not powered off after --timeout seconds (default 180) the task \
             fails and the VM keeps running. Refused if the VM is not running. Runs as a task \
             (type qmreboot) whose log vmctl prints; the exit status is the task's.",
        )
        .arg(cli::vmid_arg("vmid", "The VM to reboot"))
        .arg(super::timeout_arg("Seconds to wait for the guest to power off (default 180)"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let mut client = cli::connect(crate::BIN)?;
    let request = Request::Vm(VmRequest::Reboot { vmid, timeout: super::timeout(matches) });
    cli::run_task(&mut client, &request, format).with_context(|| format!("rebooting VM {vmid}"))?;
    Ok(())
}
