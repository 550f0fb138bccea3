//! `storectl set <storage> --key value… [--delete keys] [--digest D]`.

use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Request, SetStorage, StorageRequest};

pub fn command() -> Command {
    Command::new("set")
        .about("Change a storage's options")
        .long_about(
            "Change the options of a storage, as pvesm set. type and path are fixed at creation. \
             --delete removes keys (back to their defaults); --digest refuses the change if \
             storage.toml changed since its digest was read (storectl config shows it).",
        )
        .arg(super::storage_arg())
        .args(
            cli::schema_args(&hearth_core::storage::SCHEMA)
                .into_iter()
                .filter(|a| !["type", "path"].contains(&a.get_id().as_str())),
        )
        .arg(cli::key_list_arg("delete", "Keys to remove (comma-separated)"))
        .arg(
            Arg::new("digest")
                .long("digest")
                .value_name("DIGEST")
                .help("Refuse the change unless storage.toml still has this digest"),
        )
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let request = Request::Storage(StorageRequest::Set(SetStorage {
        storage: super::string(matches, "storage"),
        options: cli::schema_options(&hearth_core::storage::SCHEMA, matches),
        delete: cli::key_list(matches, "delete"),
        digest: matches.get_one::<String>("digest").cloned(),
    }));
    let payload = cli::connect(crate::BIN)?.call(&request)?;
    if format.is_json() { cli::print_json(&payload, format) } else { Ok(()) }
}
