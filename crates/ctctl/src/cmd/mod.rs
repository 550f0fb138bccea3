//! One module per `ctctl` subcommand, each with its `command()` and `run()`.

pub mod backup;
pub mod clone;
pub mod config;
pub mod console;
pub mod create;
pub mod delsnapshot;
pub mod destroy;
pub mod df;
pub mod enter;
pub mod exec;
pub mod list;
pub mod listsnapshot;
pub mod mount;
pub mod pending;
pub mod pull;
pub mod push;
pub mod reboot;
pub mod resize;
pub mod restore;
pub mod rollback;
pub mod set;
pub mod shutdown;
pub mod snapshot;
pub mod start;
pub mod status;
pub mod stop;
pub mod template;
pub mod unlock;
pub mod unmount;

use anyhow::Context;
use clap::{Arg, ArgMatches};
use hearth_client::cli::{self, OutputFormat};
use hearth_core::guest::check_snapshot_name;
use hearth_proto::{Payload, Request};

/// `--timeout <SECONDS>`, shared by the power commands that wait for the container's init.
fn timeout_arg(help: &'static str) -> Arg {
    Arg::new("timeout").long("timeout").value_name("SECONDS").value_parser(clap::value_parser!(u64)).help(help)
}

/// The seconds given to a [`timeout_arg`]; `None` lets hearthd pick its default.
fn timeout(matches: &ArgMatches) -> Option<u64> {
    matches.try_get_one::<u64>("timeout").ok().flatten().copied()
}

/// The positional `<snapname>` of the snapshot commands, passed on as typed.
fn snapname_arg(help: &'static str) -> Arg {
    Arg::new("snapname").value_name("SNAPNAME").required(true).help(help)
}

/// A [`snapname_arg`] for a new snapshot, whose name is checked while parsing.
fn new_snapname_arg(help: &'static str) -> Arg {
    snapname_arg(help).value_parser(|s: &str| check_snapshot_name(s).map(|()| s.to_owned()).map_err(|e| e.message))
}

/// The name given to a [`snapname_arg`], which clap makes sure is there.
fn snapname(matches: &ArgMatches) -> anyhow::Result<String> {
    matches.try_get_one::<String>("snapname").ok().flatten().cloned().context("missing <snapname>")
}

/// A required positional string argument.
fn positional(name: &'static str, value_name: &'static str, help: &'static str) -> Arg {
    Arg::new(name).value_name(value_name).required(true).help(help)
}

/// The value of a [`positional`], which clap makes sure is there.
fn string(matches: &ArgMatches, name: &str) -> anyhow::Result<String> {
    matches.try_get_one::<String>(name).ok().flatten().cloned().with_context(|| format!("missing <{name}>"))
}

/// Sends a request that runs as a task, or that hearthd does at once, and waits for the end:
/// a task's log is printed as it arrives (JSON: its final status); an immediate answer prints
/// nothing. `what` names the operation in errors ("starting CT 200").
fn run_request(request: &Request, format: OutputFormat, what: impl Fn() -> String) -> anyhow::Result<()> {
    let mut client = cli::connect(crate::BIN)?;
    match client.call(request).with_context(&what)? {
        Payload::Task(upid) => cli::follow_task(&mut client, &upid, format).with_context(what).map(drop),
        Payload::Empty => Ok(()),
        other => Err(cli::unexpected(&other)),
    }
}
