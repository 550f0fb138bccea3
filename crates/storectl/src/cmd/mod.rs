//! One module per `storectl` subcommand.

pub mod add;
pub mod alloc;
pub mod backup;
pub mod backup_job;
pub mod config;
pub mod export;
pub mod extractconfig;
pub mod free;
pub mod import;
pub mod list;
pub mod path;
pub mod remove;
pub mod scan;
pub mod set;
pub mod status;
pub mod upload;
pub mod vzdump;

use clap::Arg;

/// A positional storage id.
pub fn storage_arg() -> Arg {
    Arg::new("storage").value_name("STORAGE").required(true).help("Storage id, e.g. local")
}

/// A positional volume id.
pub fn volid_arg(help: &'static str) -> Arg {
    Arg::new("volid").value_name("VOLID").required(true).help(help)
}

/// The value of a required string argument.
pub fn string(matches: &clap::ArgMatches, name: &str) -> String {
    matches.get_one::<String>(name).cloned().unwrap_or_default()
}

/// Prints a volume id the way pvesm does, or as JSON.
pub fn print_volume(volid: &str, verb: &str, format: hearth_client::cli::OutputFormat) -> anyhow::Result<()> {
    if format.is_json() {
        hearth_client::cli::print_json(&serde_json::json!({ "volid": volid }), format)
    } else {
        hearth_client::cli::print_text(&format!("successfully {verb} '{volid}'\n"))
    }
}
