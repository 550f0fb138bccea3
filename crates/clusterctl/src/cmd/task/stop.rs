//! `clusterctl task stop`: ask a running task to stop, as `pvenode task stop`.

use anyhow::Context;
use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Payload, Request, TaskRequest};

pub fn command() -> Command {
    Command::new("stop")
        .about("Stop a running task")
        .long_about(
            "Ask a running task to stop, as pvenode task stop does. The task cleans up and ends \
             with an error status; `clusterctl task status` shows when it has. Users may stop \
             their own tasks; Sys.Modify on /nodes/<node> allows stopping anyone's. Prints \
             nothing on success.",
        )
        .arg(cli::upid_arg("upid", "The task to stop"))
}

pub fn run(matches: &ArgMatches, _format: OutputFormat) -> anyhow::Result<()> {
    let upid = cli::get_upid(matches, "upid")?;
    let mut client = cli::connect(crate::BIN)?;
    let request = Request::Task(TaskRequest::Stop { upid: upid.clone() });
    match client.call(&request).with_context(|| format!("stopping task {upid}"))? {
        Payload::Empty => Ok(()),
        other => Err(cli::unexpected(&other)),
    }
}
