//! `vmctl move-disk`: copy a VM's disk to another storage or format, as `qm disk move`.

use anyhow::Context;
use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_core::schema::check;
use hearth_proto::{MoveDisk, Request, VmRequest};

/// `vmctl move-disk`, also spelled `move_disk` as in qm.
pub fn command() -> Command {
    build("move-disk").visible_alias("move_disk")
}

/// The same command as `vmctl disk move`.
pub fn disk_command() -> Command {
    build("move")
}

fn build(name: &'static str) -> Command {
    Command::new(name)
        .about("Move a disk of a virtual machine to another storage")
        .long_about(
            "Copy a disk of a stopped virtual machine to <storage> and use the copy from then on, \
             as qm disk move (qm move-disk) does. Needs VM.Config.Disk on /vms/<vmid>.\n\n\
             The copy is a new volume of the VM on <storage>, in --format if given, else in the \
             disk's own format if <storage> holds it, else in the storage's default; moving \
             within one storage changes the format. The disk keeps its other properties (cache=, \
             discard=, ...). The old volume is kept as the lowest free unusedN, or freed with \
             --delete. Refused while the VM runs (live mirroring is not supported yet), is locked \
             or is a template, and for a disk with snapshots, which the copy would lose (delete \
             them first). If the copy fails, the new volume is freed and nothing changes. Runs as \
             a task (type qmmove) whose log vmctl prints; the exit status is the task's.\n\n\
             With --target-vmid (and optionally --target-disk, default the same key) the disk \
             is instead reassigned to another VM, as `qm disk move 300 scsi1 --target-vmid 400 \
             --target-disk scsi3`: the volume is renamed to its new owner on the same storage \
             and leaves the first VM's configuration; it needs VM.Config.Disk on both VMs, both \
             stopped. --bwlimit (KiB/s) caps the copy, default the storages' bwlimit move=.",
        )
        .arg(cli::vmid_arg("vmid", "The VM whose disk to move"))
        .arg(Arg::new("disk").value_name("DISK").required(true).help("The disk key: scsi0, virtio1, sata0, ide0, ..."))
        .arg(
            Arg::new("storage")
                .value_name("STORAGE")
                .required_unless_present("target-vmid")
                .value_parser(check::storage_id)
                .help("The storage to move the disk to"),
        )
        .arg(
            cli::vmid_arg("target-vmid", "Reassign the disk to this VM instead")
                .long("target-vmid")
                .required(false)
                .conflicts_with("storage"),
        )
        .arg(
            Arg::new("target-disk")
                .long("target-disk")
                .value_name("DISK")
                .requires("target-vmid")
                .help("The key the disk gets on the target VM (default: the same)"),
        )
        .arg(
            Arg::new("bwlimit")
                .long("bwlimit")
                .value_name("KiB/s")
                .value_parser(clap::value_parser!(u64))
                .help("Copy at most this fast (default: the storages' bwlimit move=; 0: no limit)"),
        )
        .arg(
            Arg::new("format")
                .long("format")
                .value_name("FORMAT")
                .value_parser(["raw", "qcow2", "vmdk"])
                .help("Format of the copy (default: the disk's own if the storage holds it)"),
        )
        .arg(cli::flag_arg("delete", "Free the old volume instead of keeping it as unusedN"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let disk = matches.get_one::<String>("disk").cloned().context("missing <disk>")?;
    let storage = matches.get_one::<String>("storage").cloned().unwrap_or_default();
    let target_vmid = cli::get_vmid(matches, "target-vmid");
    let request = Request::Vm(VmRequest::MoveDisk(MoveDisk {
        vmid,
        disk: disk.clone(),
        storage: storage.clone(),
        format: matches.get_one::<String>("format").cloned(),
        delete: matches.try_get_one::<bool>("delete").ok().flatten().copied().unwrap_or(false),
        target_vmid,
        target_disk: matches.get_one::<String>("target-disk").cloned(),
        bwlimit: matches.get_one::<u64>("bwlimit").copied(),
    }));
    let mut client = cli::connect(crate::BIN)?;
    let what = match target_vmid {
        Some(target) => format!("VM {target}"),
        None => format!("storage '{storage}'"),
    };
    cli::run_task(&mut client, &request, format).with_context(|| format!("moving {disk} of VM {vmid} to {what}"))?;
    Ok(())
}
