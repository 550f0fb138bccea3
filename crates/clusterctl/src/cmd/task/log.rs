//! `clusterctl task log`: print a task's log, as `pvenode task log`.

use clap::{Arg, ArgMatches, Command, value_parser};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Payload, Request, TaskRequest};

pub fn command() -> Command {
    Command::new("log")
        .about("Print the log of a task")
        .long_about(
            "Print the log of a task, one line per line, as pvenode task log does. A finished \
             task's last line is its status: TASK OK, TASK WARNINGS: <n> or TASK ERROR: \
             <message>. --start skips that many lines, so a script can poll a running task for \
             new lines. JSON output is an array of the lines.",
        )
        .arg(cli::upid_arg("upid", "The task"))
        .arg(
            Arg::new("start")
                .long("start")
                .value_name("N")
                .value_parser(value_parser!(usize))
                .default_value("0")
                .help("Skip the first N lines"),
        )
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let upid = cli::get_upid(matches, "upid")?;
    let start = matches.get_one::<usize>("start").copied().unwrap_or(0);
    let mut client = cli::connect(crate::BIN)?;
    match client.call(&Request::Task(TaskRequest::Log { upid, start }))? {
        Payload::TaskLog(lines) if format.is_json() => cli::print_json(&lines, format),
        Payload::TaskLog(lines) => cli::print_text(&lines.iter().map(|l| format!("{l}\n")).collect::<String>()),
        other => Err(cli::unexpected(&other)),
    }
}
