//! One module per `userctl` subcommand group, each with its actions (`add`, `modify`, …).

pub mod acl;
pub mod group;
pub mod passwd;
pub mod pool;
pub mod realm;
pub mod role;
pub mod tfa;
pub mod token;
pub mod user;

use clap::{Arg, ArgAction, ArgMatches};
use hearth_client::cli::{self, Align, OutputFormat, Table};
use hearth_proto::{AccessRequest, Payload, Request};

/// A required positional argument.
pub fn positional(name: &'static str, value_name: &'static str, help: &'static str) -> Arg {
    Arg::new(name).value_name(value_name).required(true).help(help)
}

/// An option taking one value.
pub fn option(name: &'static str, value_name: &'static str, help: &'static str) -> Arg {
    Arg::new(name).long(name).value_name(value_name).help(help)
}

/// A `0|1` option, as Proxmox spells booleans; alone it means 1.
pub fn bool_option(name: &'static str, help: &'static str) -> Arg {
    Arg::new(name)
        .long(name)
        .value_name("0|1")
        .value_parser(["0", "1"])
        .num_args(0..=1)
        .default_missing_value("1")
        .help(help)
}

/// A comma-separated list option, repeatable.
pub fn list_option(name: &'static str, value_name: &'static str, help: &'static str) -> Arg {
    Arg::new(name).long(name).value_name(value_name).action(ArgAction::Append).help(help)
}

/// A flag.
pub fn flag(name: &'static str, help: &'static str) -> Arg {
    cli::flag_arg(name, help)
}

/// The value of an argument, empty when absent.
pub fn string(matches: &ArgMatches, name: &str) -> String {
    optional(matches, name).unwrap_or_default()
}

pub fn optional(matches: &ArgMatches, name: &str) -> Option<String> {
    matches.try_get_one::<String>(name).ok().flatten().cloned()
}

/// A `0|1` option: `None` when absent.
pub fn bool_value(matches: &ArgMatches, name: &str) -> Option<bool> {
    optional(matches, name).map(|v| v == "1")
}

/// The items of a [`list_option`], split at commas.
pub fn list(matches: &ArgMatches, name: &str) -> Vec<String> {
    cli::key_list(matches, name)
}

/// Sends one access request.
pub fn call(request: AccessRequest) -> anyhow::Result<Payload> {
    Ok(cli::connect(crate::BIN)?.call(&Request::Access(request))?)
}

/// Sends a change; prints nothing in text form (as pveum), the answer in JSON.
pub fn change(request: AccessRequest, format: OutputFormat) -> anyhow::Result<()> {
    let payload = call(request)?;
    if format.is_json() { cli::print_json(&payload, format) } else { Ok(()) }
}

/// `0`/`1` as Proxmox prints booleans.
pub fn bit(b: bool) -> String {
    if b { "1".into() } else { "0".into() }
}

/// The text of an optional field, empty when absent.
pub fn or_empty(value: &Option<String>) -> String {
    value.clone().unwrap_or_default()
}

/// Asks for a user's or token's permissions and prints them: a path and its privileges per
/// line, or JSON.
pub fn print_permissions(request: AccessRequest, format: OutputFormat) -> anyhow::Result<()> {
    let perms = match call(request)? {
        Payload::Permissions(perms) => perms,
        other => return Err(cli::unexpected(&other)),
    };
    if format.is_json() {
        return cli::print_json(&perms, format);
    }
    let mut table = Table::new(&[("path", Align::Left), ("privileges", Align::Left)]);
    for p in &perms {
        table.row(vec![p.path.clone(), p.privs.join(",")]);
    }
    table.print()
}
