//! `vmctl snapshot`: snapshot a VM's disks and configuration, as `qm snapshot`.

use anyhow::Context;
use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_core::guest::check_snapshot_name;
use hearth_proto::{Request, VmRequest};

pub fn command() -> Command {
    Command::new("snapshot")
        .about("Take a snapshot of a virtual machine")
        .long_about(
            "Take a snapshot of a virtual machine's disks and configuration, as qm snapshot does. \
             Needs VM.Snapshot on /vms/<vmid>.\n\n\
             Snapshot names follow [a-z][a-z0-9_-]+ with at most 40 characters; current, \
             pending and vzdump are reserved. Every disk (CD-ROMs and unused volumes aside) must \
             be a qcow2 image on a dir storage or an image on btrfs. The snapshot holds disk \
             state unless --vmstate is given: a running VM is paused for the instant its disks \
             are snapshotted, so they agree with each other and the snapshot is crash-consistent, \
             like the disks after a power cut; rolling back to it means booting the guest again. \
             With --vmstate (running VMs whose disks are all qcow2) QEMU also saves the memory \
             inside the images, and a rollback resumes the guest exactly where it was, even \
             while it runs. If a disk fails, the snapshots \
             already taken of the others are removed again. The new snapshot becomes the parent \
             of the current state (see `vmctl listsnapshot`). Runs as a task (type qmsnapshot) \
             whose log vmctl prints; the exit status is the task's.",
        )
        .arg(cli::vmid_arg("vmid", "The VM to snapshot"))
        .arg(
            super::snapname_arg("The name of the new snapshot")
                .value_parser(|s: &str| check_snapshot_name(s).map(|()| s.to_owned()).map_err(|e| e.message)),
        )
        .arg(Arg::new("description").long("description").value_name("TEXT").help("A description of the snapshot"))
        .arg(
            Arg::new("vmstate")
                .long("vmstate")
                .num_args(0..=1)
                .default_missing_value("1")
                .value_parser(clap::builder::BoolishValueParser::new())
                .value_name("0|1")
                .help("Also save the memory of the running VM"),
        )
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let name = super::snapname(matches)?;
    let description = matches.get_one::<String>("description").cloned();
    let mut client = cli::connect(crate::BIN)?;
    let vmstate = matches.get_one::<bool>("vmstate").copied().unwrap_or(false);
    let request = Request::Vm(VmRequest::Snapshot { vmid, name: name.clone(), description, vmstate });
    cli::run_task(&mut client, &request, format).with_context(|| format!("taking snapshot '{name}' of VM {vmid}"))?;
    Ok(())
}
