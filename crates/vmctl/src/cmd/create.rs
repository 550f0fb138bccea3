//! `vmctl create`: a new VM from `--<key> <value>` options, as `qm create`.

use anyhow::Context;
use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_core::GuestKind;
use hearth_proto::{CreateGuest, Request, VmRequest};

pub fn command() -> Command {
    Command::new("create")
        .about("Create a virtual machine")
        .long_about(
            "Create a virtual machine with the given id and configuration, as qm create does.\n\n\
             Every configuration key is an option: --memory 2048 --cores 2 --net0 \
             virtio,bridge=vmbr0 --scsi0 local:100/vm-100-disk-0.qcow2. NICs without a MAC \
             address get one under the prefix BC:24:11. A disk given as STORAGE:SIZE (in GiB) \
             asks for a new volume and is refused while the node has no storage configured. \
             hearthd validates all values and runs the creation as a \
             task (type qmcreate); vmctl prints the task log and fails if the task fails.",
        )
        .arg(cli::vmid_arg("vmid", "The id of the new VM (100 to 999999999; see `vmctl nextid`)"))
        .args(cli::guest_config_args(GuestKind::Vm))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let options = cli::read_vm_option_files(cli::guest_config_options(GuestKind::Vm, matches))?;
    let mut client = cli::connect(crate::BIN)?;
    let request = Request::Vm(VmRequest::Create(CreateGuest { vmid, options, ct: None }));
    cli::run_task(&mut client, &request, format).with_context(|| format!("creating VM {vmid}"))?;
    Ok(())
}
