//! `storectl import <volid> <format> <file|->`: create a volume from a stream.

use clap::{Arg, ArgAction, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{ImportVolume, Payload, Request, StorageRequest};

use crate::transfer;

pub fn command() -> Command {
    Command::new("import")
        .about("Create a volume from an import stream")
        .long_about(
            "Create a volume from a stream written by storectl export, as pvesm import. Formats: \
             raw+size, qcow2+size, vmdk+size (an 8-byte little-endian length, then the image \
             file; qcow2 keeps its snapshots), tar+size (a container directory) and btrfs (a \
             btrfs volume with its snapshots). The stream is read from FILE or, with -, from \
             standard input. Images that reach outside the storage (qcow2 backing or data files, \
             vmdk extents) are refused, and a failed import leaves nothing behind.",
        )
        .arg(super::volid_arg("The volume to create, e.g. local:100/vm-100-disk-0.raw"))
        .arg(
            Arg::new("format")
                .value_name("FORMAT")
                .required(true)
                .value_parser(["raw+size", "qcow2+size", "vmdk+size", "tar+size", "btrfs"])
                .help("Stream format"),
        )
        .arg(Arg::new("file").value_name("FILE").required(true).help("Where to read the stream; - for standard input"))
        .arg(
            Arg::new("allow-rename")
                .long("allow-rename")
                .action(ArgAction::SetTrue)
                .help("Take the next free disk name if VOLID exists"),
        )
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let request = Request::Storage(StorageRequest::Import(ImportVolume {
        volid: super::string(matches, "volid"),
        format: super::string(matches, "format"),
        allow_rename: matches.get_flag("allow-rename"),
    }));
    let (source, size) = transfer::open_source(&super::string(matches, "file"))?;
    let mut client = cli::connect(crate::BIN)?;
    let progress = transfer::wants_progress(format.is_json()).then_some("importing");
    match transfer::send(&mut client, &request, source, size, progress)? {
        Payload::Volume(volid) => super::print_volume(&volid, "imported", format),
        other => Err(cli::unexpected(&other)),
    }
}
