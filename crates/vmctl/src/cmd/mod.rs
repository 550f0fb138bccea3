//! One module per `vmctl` subcommand, each with its `command()` and `run()`.

pub mod backup;
pub mod cleanup;
pub mod clone;
pub mod config;
pub mod create;
pub mod delsnapshot;
pub mod destroy;
pub mod disk;
pub mod list;
pub mod listsnapshot;
pub mod monitor;
pub mod move_disk;
pub mod nextid;
pub mod pending;
pub mod reboot;
pub mod resize;
pub mod restore;
pub mod resume;
pub mod rollback;
pub mod set;
pub mod showcmd;
pub mod shutdown;
pub mod snapshot;
pub mod start;
pub mod status;
pub mod stop;
pub mod suspend;
pub mod template;
pub mod terminal;
pub mod unlink;
pub mod unlock;

use anyhow::Context;
use clap::{Arg, ArgMatches};

/// `--timeout <SECONDS>`, shared by the power commands that wait for QEMU or the guest.
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

/// The name given to a [`snapname_arg`], which clap makes sure is there.
fn snapname(matches: &ArgMatches) -> anyhow::Result<String> {
    matches.try_get_one::<String>("snapname").ok().flatten().cloned().context("missing <snapname>")
}
