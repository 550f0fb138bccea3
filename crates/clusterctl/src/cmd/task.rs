//! `clusterctl task`: the node's worker tasks, as `pvenode task`.

mod list;
mod log;
mod status;
mod stop;

use anyhow::bail;
use clap::{ArgMatches, Command};

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
        .subcommands([list::command(), log::command(), status::command(), stop::command()])
}

pub fn run(matches: &ArgMatches) -> anyhow::Result<()> {
    let Some((name, sub)) = matches.subcommand() else { bail!("no task command given; see `clusterctl task --help`") };
    let format = crate::leaf_format(sub);
    match name {
        "list" => list::run(sub, format),
        "log" => log::run(sub, format),
        "status" => status::run(sub, format),
        "stop" => stop::run(sub, format),
        other => bail!("unknown task command '{other}'"),
    }
}
