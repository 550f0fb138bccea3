//! `storectl alloc <storage> <vmid> <name> <size> [--format]`: a new image for a guest.

use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{AllocVolume, Payload, Request, StorageRequest};

pub fn command() -> Command {
    Command::new("alloc")
        .about("Allocate a disk image")
        .long_about(
            "Allocate an image for a guest, as pvesm alloc. An empty name ('') takes the lowest \
             free vm-<vmid>-disk-N; a given name must follow the rules (vm-<vmid>-<name>.<format> \
             on dir, vm-<vmid>-<name> on btrfs). The size is in KiB unless suffixed K, M, G or T; \
             it must be above zero and fit in the available space (format subvol takes 0 for \
             unlimited). Formats: raw, qcow2, vmdk, subvol on dir (default qcow2); raw, subvol on \
             btrfs (default raw). Prints: successfully created '<volid>'.",
        )
        .arg(super::storage_arg())
        .arg(cli::vmid_arg("vmid", "The guest that owns the volume"))
        .arg(Arg::new("name").value_name("NAME").required(true).help("Volume name, or '' for the next free disk"))
        .arg(
            Arg::new("size")
                .value_name("SIZE")
                .required(true)
                .allow_hyphen_values(true)
                .help("Size: KiB, or with K/M/G/T"),
        )
        .arg(
            Arg::new("format")
                .long("format")
                .value_name("FORMAT")
                .value_parser(["raw", "qcow2", "vmdk", "subvol"])
                .help("Image format"),
        )
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let request = Request::Storage(StorageRequest::Alloc(AllocVolume {
        storage: super::string(matches, "storage"),
        vmid: cli::required_vmid(matches, "vmid")?,
        name: super::string(matches, "name"),
        size: super::string(matches, "size"),
        format: matches.get_one::<String>("format").cloned(),
    }));
    match cli::connect(crate::BIN)?.call(&request)? {
        Payload::Volume(volid) => super::print_volume(&volid, "created", format),
        other => Err(cli::unexpected(&other)),
    }
}
