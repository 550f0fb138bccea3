//! `storectl backup job add|set|remove|list|run|run-due`: scheduled backups, as Proxmox's
//! backup jobs (`jobs.cfg`) run by pvescheduler; here cron calls `run-due` every minute.

use anyhow::{Context, bail};
use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, Align, OutputFormat, Table};
use hearth_proto::{BackupJob, Payload, Request, StorageRequest};

fn id_arg() -> Arg {
    Arg::new("id").value_name("ID").required(true).help("Job id: a letter, then letters, digits, '-', '_'")
}

fn definition(name: &'static str, about: &'static str) -> Command {
    Command::new(name)
        .about(about)
        .arg(id_arg())
        .arg(
            Arg::new("schedule")
                .long("schedule")
                .value_name("EVENT")
                .required(true)
                .help("Calendar event: daily, 'mon..fri 02:00', '*/15', 'sat 03:00'"),
        )
        .arg(cli::flag_arg("enabled", "Whether the job runs (default 1)"))
        .arg(cli::flag_arg("repeat-missed", "Catch up a run missed while the host was down"))
        .arg(Arg::new("comment").long("comment").value_name("TEXT").help("A comment"))
        .args(super::backup::selection_args())
}

pub fn command() -> Command {
    Command::new("job")
        .about("Scheduled backup jobs")
        .long_about(
            "Scheduled backups, kept in $HEARTH_ROOT/etc/hearth/jobs.toml. `run-due` starts every job \
             whose scheduled time has come; call it from cron every minute:\n\n    \
             * * * * * root storectl backup job run-due\n\n\
             Each due job runs exactly once even when two run-due calls overlap. A run missed while \
             the host was down is caught up when the job has --repeat-missed 1, else skipped.",
        )
        .subcommand_required(true)
        .subcommands([
            definition("add", "Add a backup job"),
            definition("set", "Replace a backup job's settings"),
            Command::new("remove").about("Remove a backup job").arg(id_arg()),
            Command::new("list").about("List backup jobs with their last and next run"),
            Command::new("run").about("Run a backup job now").arg(id_arg()),
            Command::new("run-due").about("Run every job that is due (for cron, every minute)"),
        ])
}

fn job(matches: &ArgMatches) -> BackupJob {
    BackupJob {
        id: super::string(matches, "id"),
        schedule: super::string(matches, "schedule"),
        enabled: matches.try_get_one::<bool>("enabled").ok().flatten().copied().unwrap_or(true),
        repeat_missed: matches.try_get_one::<bool>("repeat-missed").ok().flatten().copied().unwrap_or(false),
        comment: matches.get_one::<String>("comment").cloned(),
        selection: super::backup::selection(matches),
    }
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let Some((name, sub)) = matches.subcommand() else { bail!("no job command given") };
    let mut client = cli::connect(crate::BIN)?;
    let request = match name {
        "add" => StorageRequest::BackupJobAdd(job(sub)),
        "set" => StorageRequest::BackupJobSet(job(sub)),
        "remove" => StorageRequest::BackupJobRemove { id: super::string(sub, "id") },
        "run" => {
            let request = Request::Storage(StorageRequest::BackupJobRun { id: super::string(sub, "id") });
            cli::run_task(&mut client, &request, format)?;
            return Ok(());
        }
        "list" => {
            let jobs = match client.call(&Request::Storage(StorageRequest::BackupJobList))? {
                Payload::BackupJobs(j) => j,
                other => return Err(cli::unexpected(&other)),
            };
            if format.is_json() {
                return cli::print_json(&jobs, format);
            }
            let mut table = Table::new(&[
                ("ID", Align::Left),
                ("Schedule", Align::Left),
                ("Enabled", Align::Left),
                ("Storage", Align::Left),
                ("Last run", Align::Left),
                ("Next run", Align::Left),
            ]);
            for j in &jobs {
                table.row(vec![
                    j.job.id.clone(),
                    j.job.schedule.clone(),
                    if j.job.enabled { "1".into() } else { "0".into() },
                    j.job.selection.options.storage.clone().unwrap_or_default(),
                    j.last_run.map(cli::format_utc).unwrap_or_default(),
                    j.next_run.map(cli::format_utc).unwrap_or_default(),
                ]);
            }
            return table.print();
        }
        "run-due" => {
            let started = match client.call(&Request::Storage(StorageRequest::BackupJobRunDue))? {
                Payload::TasksStarted(t) => t,
                other => return Err(cli::unexpected(&other)),
            };
            // Each started job is followed to its end, so cron mails its summary lines and the
            // exit status says whether every guest was backed up.
            let mut failed = 0;
            for upid in &started {
                let info = cli::follow_task(&mut client, upid, format);
                match info {
                    Ok(info) if !super::backup::failed(&info.state) => {}
                    _ => failed += 1,
                }
            }
            if failed > 0 {
                bail!("{failed} of {} backup jobs failed", started.len());
            }
            return Ok(());
        }
        other => bail!("unknown job command '{other}'"),
    };
    let id = super::string(sub, "id");
    client.call(&Request::Storage(request)).with_context(|| format!("backup job '{id}'"))?;
    Ok(())
}
