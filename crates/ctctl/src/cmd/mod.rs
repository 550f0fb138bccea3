//! One module per `ctctl` subcommand of its own, each with its `command()` and `run()`; the
//! subcommands vmctl has too live in `hearth_client::guest`.

pub mod console;
pub mod cpusets;
pub mod create;
pub mod df;
pub mod enter;
pub mod exec;
pub mod mount;
pub mod move_volume;
pub mod pull;
pub mod push;
pub mod unmount;

use anyhow::Context;
use clap::{Arg, ArgMatches};

/// A required positional string argument.
fn positional(name: &'static str, value_name: &'static str, help: &'static str) -> Arg {
    Arg::new(name).value_name(value_name).required(true).help(help)
}

/// The value of a [`positional`], which clap makes sure is there.
fn string(matches: &ArgMatches, name: &str) -> anyhow::Result<String> {
    matches.try_get_one::<String>(name).ok().flatten().cloned().with_context(|| format!("missing <{name}>"))
}
