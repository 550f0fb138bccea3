//! `vmctl stop`: end a VM's QEMU at once, as `qm stop`.

use anyhow::Context;
use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Request, VmRequest};

pub fn command() -> Command {
    Command::new("stop")
        .about("Stop a virtual machine at once")
        .long_about(
            "Stop a virtual machine at once, as qm stop does: like pulling the plug, the guest \
             gets no chance to shut down and loses whatever it had not written. Use `vmctl \
             shutdown` for a clean power-off. Needs VM.PowerMgmt on /vms/<vmid>.\n\n\
             hearthd asks QEMU to quit and kills it if it does not go. Refused if the VM is \
             not running. Runs as a task (type qmstop) whose log vmctl prints; the exit status \
             is the task's.",
        )
        .arg(cli::vmid_arg("vmid", "The VM to stop"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let mut client = cli::connect(crate::BIN)?;
    let request = Request::Vm(VmRequest::Stop { vmid });
    cli::run_task(&mut client, &request, format).with_context(|| format!("stopping VM {vmid}"))?;
    Ok(())
}
