//! `vmctl rollback`: return a VM to a snapshot, as `qm rollback`.

use anyhow::Context;
use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Request, VmRequest};

pub fn command() -> Command {
    Command::new("rollback")
        .about("Roll a virtual machine back to a snapshot")
        .long_about(
            "Return a virtual machine's disks and configuration to a snapshot, as qm rollback \
             does. Needs VM.Snapshot.Rollback on /vms/<vmid>.\n\n\
             Everything written to the disks and changed in the configuration since the \
             snapshot is lost, pending changes included; the snapshot becomes the parent of the \
             current state and the other snapshots stay. Snapshots hold no memory, so where qm \
             stops a running VM itself, hearthd refuses: stop or shut the VM down first, and \
             start it again afterwards. Runs as a task (type qmrollback) whose log vmctl prints; \
             the exit status is the task's.",
        )
        .arg(cli::vmid_arg("vmid", "The VM to roll back"))
        .arg(super::snapname_arg("The snapshot to return to"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let name = super::snapname(matches)?;
    let mut client = cli::connect(crate::BIN)?;
    let request = Request::Vm(VmRequest::Rollback { vmid, name: name.clone() });
    cli::run_task(&mut client, &request, format)
        .with_context(|| format!("rolling VM {vmid} back to snapshot '{name}'"))?;
    Ok(())
}
