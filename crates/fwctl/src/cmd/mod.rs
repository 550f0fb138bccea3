//! One module per `fwctl` subcommand group, with the helpers they share.

pub mod file;
pub mod group;
pub mod rules;
pub mod scope;
pub mod simulate;
pub mod state;

use clap::{Arg, ArgMatches};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{FirewallRequest, Payload, Request};

/// A required positional argument.
pub fn positional(name: &'static str, value_name: &'static str, help: &'static str) -> Arg {
    Arg::new(name).value_name(value_name).required(true).help(help)
}

/// An option taking one value.
pub fn option(name: &'static str, value_name: &'static str, help: &'static str) -> Arg {
    Arg::new(name).long(name).value_name(value_name).help(help)
}

/// A flag.
pub fn flag(name: &'static str, help: &'static str) -> Arg {
    cli::flag_arg(name, help)
}

pub fn optional(matches: &ArgMatches, name: &str) -> Option<String> {
    matches.try_get_one::<String>(name).ok().flatten().cloned()
}

pub fn string(matches: &ArgMatches, name: &str) -> String {
    optional(matches, name).unwrap_or_default()
}

/// Sends one firewall request.
pub fn call(request: FirewallRequest) -> anyhow::Result<Payload> {
    Ok(cli::connect(crate::BIN)?.call(&Request::Firewall(request))?)
}

/// The text a request answers with.
pub fn text(request: FirewallRequest) -> anyhow::Result<String> {
    match call(request)? {
        Payload::Text(t) => Ok(t),
        other => Err(cli::unexpected(&other)),
    }
}

/// Sends a change; prints nothing in text form, the answer in JSON.
pub fn change(request: FirewallRequest, format: OutputFormat) -> anyhow::Result<()> {
    let payload = call(request)?;
    if format.is_json() { cli::print_json(&payload, format) } else { Ok(()) }
}

/// Prints text as is, or as a JSON string.
pub fn print(text: &str, format: OutputFormat) -> anyhow::Result<()> {
    if format.is_json() { cli::print_json(text, format) } else { cli::print_text(text) }
}
