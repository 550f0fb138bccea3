//! `vmctl suspend`: pause a VM's CPUs, as `qm suspend` without `--todisk`.

use anyhow::Context;
use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Request, VmRequest};

pub fn command() -> Command {
    Command::new("suspend")
        .about("Pause a virtual machine")
        .long_about(
            "Pause a running virtual machine, as qm suspend does without --todisk: its CPUs stop \
             and its memory stays in QEMU, so `vmctl resume` continues exactly where it was. \
             `vmctl status --verbose` shows qmpstatus: paused meanwhile. Suspending to disk is \
             not supported. Needs VM.PowerMgmt on /vms/<vmid>.\n\n\
             Refused if the VM is not running. Runs as a task (type qmsuspend) whose log vmctl \
             prints; the exit status is the task's.",
        )
        .arg(cli::vmid_arg("vmid", "The VM to pause"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let mut client = cli::connect(crate::BIN)?;
    let request = Request::Vm(VmRequest::Suspend { vmid });
    cli::run_task(&mut client, &request, format).with_context(|| format!("suspending VM {vmid}"))?;
    Ok(())
}
