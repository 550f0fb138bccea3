//! `vmctl resume`: let a paused VM run again, as `qm resume`.

use anyhow::Context;
use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Request, VmRequest};

pub fn command() -> Command {
    Command::new("resume")
        .about("Resume a paused virtual machine")
        .long_about(
            "Let a virtual machine paused by `vmctl suspend` run again, as qm resume does. \
             Resuming a VM that runs already does nothing. Needs VM.PowerMgmt on \
             /vms/<vmid>.\n\n\
             Refused if QEMU is not running. Runs as a task (type qmresume) whose log vmctl \
             prints; the exit status is the task's.",
        )
        .arg(cli::vmid_arg("vmid", "The VM to resume"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let mut client = cli::connect(crate::BIN)?;
    let request = Request::Vm(VmRequest::Resume { vmid });
    cli::run_task(&mut client, &request, format).with_context(|| format!("resuming VM {vmid}"))?;
    Ok(())
}
