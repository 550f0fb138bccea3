//! One module per `vmctl` subcommand, each with its `command()` and `run()`.

pub mod config;
pub mod create;
pub mod destroy;
pub mod list;
pub mod monitor;
pub mod nextid;
pub mod pending;
pub mod reboot;
pub mod resume;
pub mod set;
pub mod shutdown;
pub mod start;
pub mod status;
pub mod stop;
pub mod suspend;
pub mod terminal;
pub mod unlock;

use clap::{Arg, ArgMatches};

/// `--timeout <SECONDS>`, shared by the power commands that wait for QEMU or the guest.
fn timeout_arg(help: &'static str) -> Arg {
    Arg::new("timeout").long("timeout").value_name("SECONDS").value_parser(clap::value_parser!(u64)).help(help)
}

/// The seconds given to a [`timeout_arg`]; `None` lets hearthd pick its default.
fn timeout(matches: &ArgMatches) -> Option<u64> {
    matches.try_get_one::<u64>("timeout").ok().flatten().copied()
}
