//! `vmctl disk import`: turn an image file into a new unused disk of a VM, as `qm disk import`.

use std::fs::File;

use anyhow::Context;
use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_core::schema::check;
use hearth_proto::{ImportDisk, Payload, Request, VmRequest};

pub fn command() -> Command {
    Command::new("import")
        .about("Import an image file as a new disk of a virtual machine")
        .long_about(
            "Copy the disk image <file> into a new volume of the virtual machine on <storage> and \
             add it to the configuration as the lowest free unusedN, as qm disk import (qm \
             importdisk) does; attach it afterwards with `vmctl set <vmid> --scsi1 <volume>`. \
             Needs VM.Config.Disk on /vms/<vmid>.\n\n\
             vmctl opens <file> with your own access and hands the open file to hearthd, so only \
             files you can read can be imported. Its format (raw, qcow2 or vmdk) is detected; the \
             new volume has the image's size, in --format if given, else in the storage's \
             default. Images that reach other files are refused: backing files of any kind, qcow2 \
             external data files, vmdk extents other than the file itself (flatten them with \
             qemu-img convert first). <file> must be a regular file or a block device and must \
             not change while it is copied. If the import fails, the new volume is freed. Runs \
             as a task (type qmimport) whose log vmctl prints; the exit status is the task's.",
        )
        .arg(cli::vmid_arg("vmid", "The VM that gets the disk"))
        .arg(Arg::new("file").value_name("FILE").required(true).help("The image to import: raw, qcow2 or vmdk"))
        .arg(
            Arg::new("storage")
                .value_name("STORAGE")
                .required(true)
                .value_parser(check::storage_id)
                .help("The storage for the new volume"),
        )
        .arg(
            Arg::new("format")
                .long("format")
                .value_name("FORMAT")
                .value_parser(["raw", "qcow2", "vmdk"])
                .help("Format of the new volume (default: the storage's)"),
        )
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let path = matches.get_one::<String>("file").cloned().context("missing <file>")?;
    let storage = matches.get_one::<String>("storage").cloned().context("missing <storage>")?;
    let file = File::open(&path).with_context(|| format!("cannot open {path}"))?;
    let request = Request::Vm(VmRequest::ImportDisk(ImportDisk {
        vmid,
        storage,
        format: matches.get_one::<String>("format").cloned(),
        source: path.clone(),
    }));
    let mut client = cli::connect(crate::BIN)?;
    let context = || format!("importing {path} into VM {vmid}");
    match client.call_with_file(&request, file.into()).with_context(context)? {
        Payload::Task(upid) => cli::follow_task(&mut client, &upid, format).with_context(context).map(|_| ()),
        other => Err(cli::unexpected(&other)),
    }
}
