//! `clusterctl task`: the node's worker tasks, as `pvenode task`.

mod list;
mod log;
mod status;
mod stop;

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat, Subcommand};

/// The task subcommands, in the order of the help.
pub(crate) const COMMANDS: &[Subcommand] = &[
    Subcommand::new("list", list::command, list::run),
    Subcommand::new("log", log::command, log::run),
    Subcommand::new("status", status::command, status::run),
    Subcommand::new("stop", stop::command, stop::run),
];

pub fn command() -> Command {
    Command::new("task")
        .about("List, inspect and stop worker tasks")
        .long_about(
            "List, inspect and stop the worker tasks of this node, as pvenode task does. Every \
             long operation runs as a task with an id of the form \
             UPID:node:pid:pstart:starttime:type:id:user: that the commands below take.",
        )
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommands(cli::subcommands(COMMANDS))
}

pub fn run(matches: &ArgMatches, _format: OutputFormat) -> anyhow::Result<()> {
    cli::dispatch(COMMANDS, "clusterctl task", matches)
}
