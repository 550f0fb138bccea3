//! `clusterctl task status`: whether a task runs and how it ended, as `pvenode task status`.

use std::fmt::Write as _;

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Payload, Request, TaskInfo, TaskRequest};

pub fn command() -> Command {
    Command::new("status")
        .about("Print the status of a task")
        .long_about(
            "Print the status of a task as key: value lines, as pvenode task status does: \
             upid, node, pid, type, id, user, starttime (Unix seconds), status (running or \
             stopped) and, once stopped, exitstatus (OK, WARNINGS: <n>, an error message, or \
             'unexpected status' if the task ended without one). The command itself succeeds \
             whatever the task's outcome.",
        )
        .arg(cli::upid_arg("upid", "The task"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let upid = cli::get_upid(matches, "upid")?;
    let mut client = cli::connect(crate::BIN)?;
    match client.call(&Request::Task(TaskRequest::Status { upid }))? {
        Payload::TaskStatus(info) if format.is_json() => cli::print_json(&info, format),
        Payload::TaskStatus(info) => cli::print_text(&render(&info)),
        other => Err(cli::unexpected(&other)),
    }
}

fn render(info: &TaskInfo) -> String {
    let upid = &info.upid;
    let running = info.state.is_running();
    let mut out = format!(
        "upid: {upid}\nnode: {}\npid: {}\ntype: {}\nid: {}\nuser: {}\nstarttime: {}\nstatus: {}\n",
        upid.node,
        upid.pid,
        info.worker_type,
        info.id,
        info.user,
        info.starttime,
        if running { "running" } else { "stopped" },
    );
    if !running {
        let exit = match &info.state {
            hearth_proto::TaskState::Error { message } => message.clone(),
            other => other.status_text(),
        };
        let _ = writeln!(out, "exitstatus: {exit}");
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;
    use hearth_proto::TaskState;

    #[test]
    fn key_value_lines() {
        let mut info = TaskInfo {
            upid: "UPID:pve1:000A1B2C:0012D687:6650A1F0:qmcreate:100:root@pam:".parse().unwrap(),
            worker_type: "qmcreate".into(),
            id: "100".into(),
            user: "root@pam".into(),
            starttime: 0x6650_A1F0,
            endtime: Some(0x6650_A1F5),
            state: TaskState::Ok,
        };
        let text = render(&info);
        assert!(text.ends_with("starttime: 1716560368\nstatus: stopped\nexitstatus: OK\n"), "{text}");
        info.state = TaskState::Running;
        assert!(render(&info).ends_with("status: running\n"));
    }
}
