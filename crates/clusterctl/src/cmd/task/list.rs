//! `clusterctl task list`: recent and running tasks, newest first, as `pvenode task list`.

use clap::{Arg, ArgMatches, Command, value_parser};
use hearth_client::cli::{self, Align, OutputFormat, Table};
use hearth_proto::{Payload, Request, TaskFilter, TaskInfo, TaskRequest};

pub fn command() -> Command {
    Command::new("list")
        .about("List tasks")
        .long_about(
            "List the tasks of this node, newest first: running ones and the most recent \
             finished ones (50 unless --limit says otherwise), as pvenode task list does. \
             Columns: UPID Type ID User Start Status, where Start is the start time in UTC \
             (YYYY-MM-DD HH:MM:SS) and Status is running, OK, WARNINGS: <n> or ERROR: \
             <message>. Users see their own tasks; Sys.Audit on /nodes/<node> shows everyone's.",
        )
        .arg(
            Arg::new("typefilter").long("typefilter").value_name("TYPE").help("Only tasks of this type, e.g. qmcreate"),
        )
        .arg(
            Arg::new("vmid")
                .long("vmid")
                .value_name("VMID")
                .value_parser(|s: &str| s.parse::<hearth_core::Vmid>())
                .help("Only tasks about this guest"),
        )
        .arg(cli::flag_arg("errors", "Only tasks that failed"))
        .arg(cli::flag_arg("running", "Only tasks still running"))
        .arg(
            Arg::new("limit")
                .long("limit")
                .value_name("N")
                .value_parser(value_parser!(usize))
                .help("At most this many tasks [default: 50]"),
        )
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let filter = TaskFilter {
        typefilter: matches.get_one::<String>("typefilter").cloned(),
        vmid: cli::get_vmid(matches, "vmid"),
        errors: cli::flag(matches, "errors"),
        running: cli::flag(matches, "running"),
        limit: matches.get_one::<usize>("limit").copied(),
    };
    let mut client = cli::connect(crate::BIN)?;
    let tasks = match client.call(&Request::Task(TaskRequest::List(filter)))? {
        Payload::Tasks(tasks) => tasks,
        other => return Err(cli::unexpected(&other)),
    };
    if format.is_json() { cli::print_json(&tasks, format) } else { render(&tasks).print() }
}

fn render(tasks: &[TaskInfo]) -> Table {
    let mut table = Table::new(&[
        ("UPID", Align::Left),
        ("Type", Align::Left),
        ("ID", Align::Left),
        ("User", Align::Left),
        ("Start", Align::Left),
        ("Status", Align::Left),
    ]);
    for t in tasks {
        table.row(vec![
            t.upid.to_string(),
            t.worker_type.clone(),
            t.id.clone(),
            t.user.clone(),
            cli::format_utc(i64::from(t.starttime)),
            t.state.status_text(),
        ]);
    }
    table
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;
    use hearth_proto::TaskState;

    #[test]
    fn columns() {
        let task = TaskInfo {
            upid: "UPID:pve1:000A1B2C:0012D687:6650A1F0:qmstart:100:root@pam:".parse().unwrap(),
            worker_type: "qmstart".into(),
            id: "100".into(),
            user: "root@pam".into(),
            starttime: 0x6650_A1F0,
            endtime: None,
            state: TaskState::Running,
        };
        assert_eq!(
            render(&[task]).render(),
            "UPID                                                       Type    ID  User     Start               Status\n\
             UPID:pve1:000A1B2C:0012D687:6650A1F0:qmstart:100:root@pam: qmstart 100 root@pam 2024-05-24 14:19:28 running\n"
        );
    }
}
