//! `storectl add <type> <storage> --path … [--content …]`: define a storage.

use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{AddStorage, Request, StorageRequest};

pub fn command() -> Command {
    Command::new("add")
        .about("Define a storage")
        .long_about(
            "Define a storage, as pvesm add. Types: dir (any directory), btrfs (a directory on \
             a btrfs file system; volumes are subvolumes, so snapshots and clones are instant) and \
             chunkstore (a deduplicating backup store in the directory, content backup only, \
             optionally encrypted with --keyfile, a key file only root may name). \
             The path must exist already and, with --is_mountpoint, be mounted: Hearth never \
             creates a storage path, so an unmounted disk cannot silently fill the root file \
             system. Default content: images,rootdir.",
        )
        .arg(
            Arg::new("type")
                .value_name("TYPE")
                .required(true)
                .value_parser(["dir", "btrfs", "chunkstore"])
                .help("Storage type"),
        )
        .arg(super::storage_arg())
        .args(cli::schema_args(&hearth_core::storage::SCHEMA).into_iter().filter(|a| a.get_id() != "type"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let request = Request::Storage(StorageRequest::Add(AddStorage {
        storage: super::string(matches, "storage"),
        storage_type: super::string(matches, "type"),
        // The positional <type> shares its id with the schema's `type` key.
        options: cli::schema_options(&hearth_core::storage::SCHEMA, matches)
            .into_iter()
            .filter(|(k, _)| k != "type")
            .collect(),
    }));
    let payload = cli::connect(crate::BIN)?.call(&request)?;
    if format.is_json() { cli::print_json(&payload, format) } else { Ok(()) }
}
