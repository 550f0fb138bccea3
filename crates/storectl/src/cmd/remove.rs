//! `storectl remove <storage>`: drop a storage definition; the data stays.

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Request, StorageRequest};

pub fn command() -> Command {
    Command::new("remove")
        .about("Remove a storage definition")
        .long_about(
            "Remove a storage from storage.toml, as pvesm remove. No data is touched and nothing is \
             unmounted. Refused while a guest's configuration names a volume on the storage; the \
             error lists those guests and keys.",
        )
        .arg(super::storage_arg())
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let request = Request::Storage(StorageRequest::Remove { storage: super::string(matches, "storage") });
    let payload = cli::connect(crate::BIN)?.call(&request)?;
    if format.is_json() { cli::print_json(&payload, format) } else { Ok(()) }
}
