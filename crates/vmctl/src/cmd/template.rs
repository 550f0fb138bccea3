//! `vmctl template`: turn a VM into a template for linked clones, as `qm template`.

use anyhow::Context;
use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Request, VmRequest};

pub fn command() -> Command {
    Command::new("template")
        .about("Turn a virtual machine into a template")
        .long_about(
            "Turn a virtual machine into a template, as qm template does. Needs VM.Allocate on \
             /vms/<vmid>.\n\n\
             Every disk becomes a read-only base image (vm-<vmid>-disk-N is renamed \
             base-<vmid>-disk-N) that linked clones share, and the configuration gets \
             template: 1. A template cannot be started, only cloned (see `vmctl clone`). Refused \
             while the VM runs or is locked, if it is a template already, or if it has snapshots \
             (delete them first). Runs as a task (type qmtemplate) whose log vmctl prints; the \
             exit status is the task's.",
        )
        .arg(cli::vmid_arg("vmid", "The VM to turn into a template"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let mut client = cli::connect(crate::BIN)?;
    let request = Request::Vm(VmRequest::Template { vmid });
    cli::run_task(&mut client, &request, format).with_context(|| format!("turning VM {vmid} into a template"))?;
    Ok(())
}
