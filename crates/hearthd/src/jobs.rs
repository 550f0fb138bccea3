//! Scheduled backup jobs, as Proxmox's `jobs.cfg` and pvescheduler: definitions in
//! `etc/hearth/jobs.toml` (`[vzdump.<id>]` tables), per-job state in
//! `var/lib/hearth/jobs/vzdump-<id>.json` (last run, last task), and `run-due`, which cron
//! calls every minute.
//!
//! **Exactly once:** `run-due` decides about a job only while holding an exclusive, non-blocking
//! `flock` on `var/lib/hearth/jobs/vzdump-<id>.lock`, and records the run (atomically: temp file,
//! fsync, rename) before it lets go. A second `run-due` at the same moment either finds the lock
//! taken and leaves the job alone, or reads the new state and finds the job not due. A job whose
//! last task still runs is not started again.
//!
//! Schedules are calendar events (hearth_core::calendar) read in local time. A run missed while
//! the host was down is caught up at the next `run-due` when `repeat-missed` is set; otherwise
//! it is skipped and logged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hearth_core::Vmid;
use hearth_core::calendar::CalendarEvent;
use hearth_proto::{BackupJob, BackupJobInfo, BackupOptions, BackupRun, ErrorKind, ErrorReply, Payload, TaskState};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::Daemon;
use crate::backup::now;
use crate::store::write_atomic;

/// How late cron may call `run-due` and still catch a scheduled time without `repeat-missed`.
const GRACE: i64 = 60;

fn err(kind: ErrorKind, message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(kind, message)
}

/// One job as `jobs.toml` keeps it (the file format, apart from the wire type).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct JobEntry {
    schedule: String,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    repeat_missed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    vmid: Vec<u32>,
    #[serde(default, skip_serializing_if = "is_false")]
    all: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    exclude: Vec<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    storage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    compress: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prune_backups: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    notes_template: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    protected: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bwlimit: Option<u64>,
}

fn yes() -> bool {
    true
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct JobsFile {
    #[serde(default)]
    vzdump: BTreeMap<String, JobEntry>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct JobState {
    last_run: Option<i64>,
    #[serde(default)]
    upid: Option<String>,
}

fn ids(list: &[Vmid]) -> Vec<u32> {
    list.iter().map(|v| v.get()).collect()
}

fn vmids(list: &[u32]) -> Vec<Vmid> {
    list.iter().filter_map(|v| Vmid::new(*v).ok()).collect()
}

impl JobEntry {
    fn from_wire(job: &BackupJob) -> JobEntry {
        let s = &job.selection;
        let o = &s.options;
        JobEntry {
            schedule: job.schedule.clone(),
            enabled: job.enabled,
            repeat_missed: job.repeat_missed,
            comment: job.comment.clone(),
            vmid: ids(&s.vmids),
            all: s.all,
            exclude: ids(&s.exclude),
            storage: o.storage.clone(),
            mode: o.mode.clone(),
            compress: o.compress.clone(),
            prune_backups: o.prune_backups.clone(),
            notes_template: o.notes_template.clone(),
            protected: o.protected,
            bwlimit: o.bwlimit,
        }
    }

    fn to_wire(&self, id: &str) -> BackupJob {
        BackupJob {
            id: id.to_owned(),
            schedule: self.schedule.clone(),
            enabled: self.enabled,
            repeat_missed: self.repeat_missed,
            comment: self.comment.clone(),
            selection: BackupRun {
                vmids: vmids(&self.vmid),
                all: self.all,
                exclude: vmids(&self.exclude),
                options: BackupOptions {
                    storage: self.storage.clone(),
                    mode: self.mode.clone(),
                    compress: self.compress.clone(),
                    notes_template: self.notes_template.clone(),
                    protected: self.protected,
                    prune_backups: self.prune_backups.clone(),
                    bwlimit: self.bwlimit,
                    ..BackupOptions::default()
                },
                pool: None,
            },
        }
    }
}

/// Serialises edits of jobs.toml within hearthd (the only writer).
static EDIT: Mutex<()> = Mutex::new(());

fn jobs_path(root: &Path) -> PathBuf {
    root.join("etc/hearth/jobs.toml")
}

fn state_dir(root: &Path) -> PathBuf {
    root.join("var/lib/hearth/jobs")
}

fn load(root: &Path) -> Result<JobsFile, ErrorReply> {
    let path = jobs_path(root);
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| err(ErrorKind::Internal, format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(JobsFile::default()),
        Err(e) => Err(err(ErrorKind::Internal, format!("{}: {e}", path.display()))),
    }
}

fn save(root: &Path, jobs: &JobsFile) -> Result<(), ErrorReply> {
    let text = toml::to_string(jobs).map_err(|e| err(ErrorKind::Internal, e.to_string()))?;
    let path = jobs_path(root);
    let header = "# Hearth backup jobs (storectl backup job …); written by hearthd.\n";
    write_atomic(&path, format!("{header}{text}").as_bytes()).map_err(|e| err(ErrorKind::Internal, e.to_string()))
}

fn read_state(root: &Path, id: &str) -> JobState {
    std::fs::read(state_dir(root).join(format!("vzdump-{id}.json")))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn write_state(root: &Path, id: &str, state: &JobState) -> Result<(), ErrorReply> {
    let dir = state_dir(root);
    std::fs::create_dir_all(&dir).map_err(|e| err(ErrorKind::Internal, format!("{}: {e}", dir.display())))?;
    let bytes = serde_json::to_vec(state).map_err(|e| err(ErrorKind::Internal, e.to_string()))?;
    write_atomic(&dir.join(format!("vzdump-{id}.json")), &bytes).map_err(|e| err(ErrorKind::Internal, e.to_string()))
}

/// Takes the job's lock without waiting; `None` when another run-due holds it.
fn try_lock(root: &Path, id: &str) -> Result<Option<Flock<std::fs::File>>, ErrorReply> {
    let dir = state_dir(root);
    std::fs::create_dir_all(&dir).map_err(|e| err(ErrorKind::Internal, format!("{}: {e}", dir.display())))?;
    let path = dir.join(format!("vzdump-{id}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| err(ErrorKind::Internal, format!("{}: {e}", path.display())))?;
    Ok(Flock::lock(file, FlockArg::LockExclusiveNonblock).ok())
}

fn check(job: &BackupJob) -> Result<(), ErrorReply> {
    let id = job.id.as_bytes();
    let ok = !id.is_empty()
        && id.len() <= 64
        && id[0].is_ascii_alphabetic()
        && id.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_');
    if !ok {
        return Err(err(
            ErrorKind::Invalid,
            format!("job id '{}': a letter, then letters, digits, '-' or '_' (at most 64)", job.id),
        ));
    }
    CalendarEvent::parse(&job.schedule).map_err(|e| err(ErrorKind::Invalid, format!("schedule: {e}")))?;
    let s = &job.selection;
    if !s.all && s.vmids.is_empty() && s.exclude.is_empty() {
        return Err(err(ErrorKind::Invalid, "a job needs --vmid or --all"));
    }
    if let Some(keep) = &s.options.prune_backups {
        hearth_core::prune::KeepOptions::parse(keep).map_err(|e| err(ErrorKind::Invalid, e.to_string()))?;
    }
    Ok(())
}

pub fn add(daemon: &Daemon, job: BackupJob) -> Result<Payload, ErrorReply> {
    check(&job)?;
    let _edit = EDIT.lock().unwrap_or_else(|p| p.into_inner());
    let mut jobs = load(&daemon.root)?;
    if jobs.vzdump.contains_key(&job.id) {
        return Err(err(ErrorKind::Conflict, format!("backup job '{}' already exists", job.id)));
    }
    jobs.vzdump.insert(job.id.clone(), JobEntry::from_wire(&job));
    save(&daemon.root, &jobs)?;
    // A new job counts from now: times before it existed are not missed runs.
    write_state(&daemon.root, &job.id, &JobState { last_run: Some(now()), upid: None })?;
    Ok(Payload::Empty)
}

pub fn set(daemon: &Daemon, job: BackupJob) -> Result<Payload, ErrorReply> {
    check(&job)?;
    let _edit = EDIT.lock().unwrap_or_else(|p| p.into_inner());
    let mut jobs = load(&daemon.root)?;
    let Some(entry) = jobs.vzdump.get_mut(&job.id) else {
        return Err(err(ErrorKind::NotFound, format!("no backup job '{}'", job.id)));
    };
    *entry = JobEntry::from_wire(&job);
    save(&daemon.root, &jobs)?;
    Ok(Payload::Empty)
}

pub fn remove(daemon: &Daemon, id: &str) -> Result<Payload, ErrorReply> {
    let _edit = EDIT.lock().unwrap_or_else(|p| p.into_inner());
    let mut jobs = load(&daemon.root)?;
    if jobs.vzdump.remove(id).is_none() {
        return Err(err(ErrorKind::NotFound, format!("no backup job '{id}'")));
    }
    save(&daemon.root, &jobs)?;
    let dir = state_dir(&daemon.root);
    let _ = std::fs::remove_file(dir.join(format!("vzdump-{id}.json")));
    let _ = std::fs::remove_file(dir.join(format!("vzdump-{id}.lock")));
    Ok(Payload::Empty)
}

fn next_run(entry: &JobEntry, last: Option<i64>) -> Option<i64> {
    let event = CalendarEvent::parse(&entry.schedule).ok()?;
    let from = last.unwrap_or_else(now);
    event.next_after(from, hearth_sys::time::utc_offset(from))
}

pub fn list(daemon: &Daemon) -> Result<Payload, ErrorReply> {
    let jobs = load(&daemon.root)?;
    let infos = jobs
        .vzdump
        .iter()
        .map(|(id, entry)| {
            let state = read_state(&daemon.root, id);
            BackupJobInfo {
                job: entry.to_wire(id),
                last_run: state.last_run,
                next_run: if entry.enabled { next_run(entry, state.last_run) } else { None },
                last_upid: state.upid,
            }
        })
        .collect();
    Ok(Payload::BackupJobs(infos))
}

fn start(daemon: &Arc<Daemon>, id: &str, entry: &JobEntry) -> Result<hearth_core::Upid, ErrorReply> {
    let job = entry.to_wire(id);
    crate::backup::start_run(daemon, "root@pam", None, job.selection, id)
}

/// Runs a job now, whatever its schedule (the schedule's state is left as it is).
pub fn run(daemon: &Arc<Daemon>, id: &str) -> Result<Payload, ErrorReply> {
    let jobs = load(&daemon.root)?;
    let entry = jobs.vzdump.get(id).ok_or_else(|| err(ErrorKind::NotFound, format!("no backup job '{id}'")))?;
    Ok(Payload::Task(start(daemon, id, entry)?))
}

/// Whether the task of a job's last run still runs.
fn still_running(daemon: &Daemon, upid: Option<&str>) -> bool {
    upid.and_then(|u| u.parse::<hearth_core::Upid>().ok())
        .and_then(|u| daemon.tasks.status(&u).ok())
        .is_some_and(|info| info.state == TaskState::Running)
}

/// Starts every enabled job whose next scheduled time has come; answers the tasks started.
pub fn run_due(daemon: &Arc<Daemon>) -> Result<Payload, ErrorReply> {
    let jobs = load(&daemon.root)?;
    let mut started = Vec::new();
    for (id, entry) in jobs.vzdump.iter().filter(|(_, e)| e.enabled) {
        let Some(_lock) = try_lock(&daemon.root, id)? else {
            tracing::info!(job = %id, "another run-due is deciding about this job");
            continue;
        };
        let mut state = read_state(&daemon.root, id);
        let t = now();
        let Some(last) = state.last_run else {
            // No state (a jobs.toml written by hand): count from now.
            write_state(&daemon.root, id, &JobState { last_run: Some(t), upid: None })?;
            continue;
        };
        let Some(next) = next_run(entry, Some(last)) else { continue };
        if next > t {
            continue;
        }
        if still_running(daemon, state.upid.as_deref()) {
            tracing::warn!(job = %id, "the job's last run is still running; not starting it again");
            continue;
        }
        if !entry.repeat_missed && t - next >= GRACE {
            tracing::warn!(job = %id, missed = next, "a scheduled run was missed; skipped (repeat-missed is off)");
            state.last_run = Some(t);
            write_state(&daemon.root, id, &state)?;
            continue;
        }
        let upid = start(daemon, id, entry)?;
        state.last_run = Some(t);
        state.upid = Some(upid.to_string());
        // Recorded before the lock is released: the next run-due sees the job as done.
        write_state(&daemon.root, id, &state)?;
        started.push(upid);
    }
    Ok(Payload::TasksStarted(started))
}
