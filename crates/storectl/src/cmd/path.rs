//! `storectl path <volid>`: the file system path of a volume.

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Payload, Request, StorageRequest};

pub fn command() -> Command {
    Command::new("path").about("Print the file system path of a volume").arg(super::volid_arg("The volume"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let request = Request::Storage(StorageRequest::Path { volid: super::string(matches, "volid") });
    match cli::connect(crate::BIN)?.call(&request)? {
        Payload::Path(path) if format.is_json() => cli::print_json(&serde_json::json!({ "path": path }), format),
        Payload::Path(path) => cli::print_text(&format!("{path}\n")),
        other => Err(cli::unexpected(&other)),
    }
}
