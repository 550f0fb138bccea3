//! One module per group of `netctl` subcommands.

pub mod apply;
pub mod file;
pub mod iface;

use clap::{Arg, ArgMatches};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{NetworkRequest, Payload, Request};

/// A required positional argument.
pub fn positional(name: &'static str, value_name: &'static str, help: &'static str) -> Arg {
    Arg::new(name).value_name(value_name).required(true).help(help)
}

/// An option taking one value.
pub fn option(name: &'static str, value_name: &'static str, help: &'static str) -> Arg {
    Arg::new(name).long(name).value_name(value_name).help(help)
}

/// The value of an argument, empty when absent.
pub fn string(matches: &ArgMatches, name: &str) -> String {
    optional(matches, name).unwrap_or_default()
}

pub fn optional(matches: &ArgMatches, name: &str) -> Option<String> {
    matches.try_get_one::<String>(name).ok().flatten().cloned()
}

/// Sends one network request.
pub fn call(request: NetworkRequest) -> anyhow::Result<Payload> {
    Ok(cli::connect(crate::BIN)?.call(&Request::Network(request))?)
}

/// Sends a change; prints nothing in text form (as pvesh), the answer in JSON.
pub fn change(request: NetworkRequest, format: OutputFormat) -> anyhow::Result<()> {
    let payload = call(request)?;
    if format.is_json() { cli::print_json(&payload, format) } else { Ok(()) }
}
