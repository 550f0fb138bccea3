//! `vmctl delsnapshot`: delete a snapshot of a VM, as `qm delsnapshot`.

use anyhow::Context;
use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Request, VmRequest};

pub fn command() -> Command {
    Command::new("delsnapshot")
        .about("Delete a snapshot of a virtual machine")
        .long_about(
            "Delete a snapshot of a virtual machine, as qm delsnapshot does. Needs VM.Snapshot \
             on /vms/<vmid>.\n\n\
             The snapshot of every disk is removed (through QEMU for the qcow2 images of a \
             running VM), then the snapshot's section of the configuration; snapshots taken from \
             it hang off its parent from then on. The current state of the VM is not touched. \
             There is no --force: if a disk's snapshot cannot be removed, the task fails and the \
             snapshot stays in the configuration. Runs as a task (type qmdelsnapshot) whose log \
             vmctl prints; the exit status is the task's.",
        )
        .arg(cli::vmid_arg("vmid", "The VM whose snapshot to delete"))
        .arg(super::snapname_arg("The snapshot to delete"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let name = super::snapname(matches)?;
    let mut client = cli::connect(crate::BIN)?;
    let request = Request::Vm(VmRequest::DelSnapshot { vmid, name: name.clone() });
    cli::run_task(&mut client, &request, format).with_context(|| format!("deleting snapshot '{name}' of VM {vmid}"))?;
    Ok(())
}
