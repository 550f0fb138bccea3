//! Worker tasks: long operations with a UPID, a log file, progress events and a stop request.
//!
//! Layout under `var/log/hearth/tasks/`, as Proxmox keeps it: `<X>/<UPID>` is a task's log (X =
//! the last hex digit of its start time) ending in `TASK OK`, `TASK WARNINGS: n` or
//! `TASK ERROR: message`; `index` holds one line per finished task (`UPID endtime status`);
//! `active` names the tasks running now. A task that was running when hearthd died is found in
//! `active` at the next start and recorded with an unknown status.
//!
//! A task runs on its own thread; its UPID carries that thread's kernel id and start time, so
//! pid and pstart name the task exactly as they name a Proxmox worker process.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use hearth_core::Upid;
use hearth_proto::{ErrorKind, ErrorReply, TaskFilter, TaskInfo, TaskState};
use tokio::sync::watch;

/// The index is rotated to `index.1` beyond this size.
const INDEX_ROTATE_BYTES: u64 = 512 * 1024;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now() -> u32 {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// The calling thread's start time in clock ticks since boot (field 22 of its stat file).
fn thread_start_ticks() -> u64 {
    let stat = fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(19))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// What a running task's worker uses to report.
#[derive(Debug)]
pub struct TaskContext {
    task: Arc<RunningTask>,
}

impl TaskContext {
    /// Appends a line to the task log.
    pub fn log(&self, line: impl AsRef<str>) {
        self.task.append(line.as_ref());
    }

    /// Logs a warning; a task with warnings ends as `TASK WARNINGS: n`.
    pub fn warn(&self, line: impl AsRef<str>) {
        self.task.warnings.fetch_add(1, Ordering::Relaxed);
        self.task.append(&format!("WARN: {}", line.as_ref()));
    }

    /// Reports work done so far.
    pub fn progress(&self, done: u64, total: u64) {
        *lock(&self.task.progress) = Some((done, total));
        self.task.changed.send_modify(|n| *n += 1);
    }

    /// Whether someone asked the task to stop.
    pub fn stop_requested(&self) -> bool {
        self.task.stop.load(Ordering::Relaxed)
    }

    /// Fails with "interrupted" once someone asked the task to stop; call between steps.
    pub fn check_stop(&self) -> Result<(), String> {
        if self.stop_requested() { Err("interrupted by signal".into()) } else { Ok(()) }
    }

    pub fn upid(&self) -> &Upid {
        &self.task.upid
    }
}

/// A task that has not finished, shared by its worker, the manager and followers.
#[derive(Debug)]
pub struct RunningTask {
    pub upid: Upid,
    info: Mutex<TaskInfo>,
    log: Mutex<(Option<File>, Vec<String>)>,
    progress: Mutex<Option<(u64, u64)>>,
    stop: AtomicBool,
    warnings: AtomicU32,
    changed: watch::Sender<u64>,
}

impl RunningTask {
    fn append(&self, line: &str) {
        let mut log = lock(&self.log);
        for line in line.lines() {
            if let Some(file) = log.0.as_mut() {
                // A log that cannot be written must not stop the operation itself.
                let _ = writeln!(file, "{line}");
            }
            log.1.push(line.to_owned());
        }
        drop(log);
        self.changed.send_modify(|n| *n += 1);
    }

    /// Log lines from `from` on, and the latest progress.
    pub fn lines_since(&self, from: usize) -> Vec<String> {
        lock(&self.log).1.get(from..).map(<[String]>::to_vec).unwrap_or_default()
    }

    pub fn progress(&self) -> Option<(u64, u64)> {
        *lock(&self.progress)
    }

    pub fn info(&self) -> TaskInfo {
        lock(&self.info).clone()
    }

    /// A receiver that wakes on every new line, progress report and the end.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

#[derive(Debug)]
pub struct TaskManager {
    dir: PathBuf,
    node: String,
    running: Mutex<HashMap<String, Arc<RunningTask>>>,
    /// Serialises writes of `index` and `active`.
    files: Mutex<()>,
}

fn io_reply(path: &Path, e: io::Error) -> ErrorReply {
    ErrorReply::new(ErrorKind::Internal, format!("{}: {e}", path.display()))
}

fn parse_status(status: &str) -> TaskState {
    match status {
        "OK" => TaskState::Ok,
        s if s.starts_with("WARNINGS: ") => TaskState::Warnings { count: s[10..].trim().parse().unwrap_or(0) },
        s if s.starts_with("ERROR: ") => TaskState::Error { message: s[7..].to_owned() },
        _ => TaskState::Unknown,
    }
}

fn info_from(upid: Upid, endtime: Option<u32>, state: TaskState) -> TaskInfo {
    TaskInfo {
        worker_type: upid.worker_type.clone(),
        id: upid.id.clone(),
        user: upid.user.clone(),
        starttime: upid.starttime,
        endtime,
        state,
        upid,
    }
}

impl TaskManager {
    /// Opens the task directory and settles tasks a previous hearthd left running.
    pub fn open(root: &Path, node: &str) -> Result<TaskManager, ErrorReply> {
        let dir = root.join("var/log/hearth/tasks");
        fs::create_dir_all(&dir).map_err(|e| io_reply(&dir, e))?;
        let manager =
            TaskManager { dir, node: node.to_owned(), running: Mutex::new(HashMap::new()), files: Mutex::new(()) };
        let active = manager.dir.join("active");
        if let Ok(text) = fs::read_to_string(&active) {
            for upid in text.lines().filter_map(|l| l.trim().parse::<Upid>().ok()) {
                if manager.find_in_index(&upid).is_none() {
                    tracing::warn!(%upid, "task was running when hearthd stopped; recording its status as unknown");
                    manager.append_index(&upid, now(), &TaskState::Unknown)?;
                }
            }
        }
        manager.write_active()?;
        Ok(manager)
    }

    fn log_path(&self, upid: &Upid) -> PathBuf {
        self.dir.join(upid.bucket().to_string()).join(upid.to_string())
    }

    /// Starts `work` as a task and returns its UPID at once.
    pub fn spawn(
        self: &Arc<Self>,
        worker_type: &str,
        id: &str,
        user: &str,
        work: impl FnOnce(&TaskContext) -> Result<(), String> + Send + 'static,
    ) -> Result<Upid, ErrorReply> {
        let (ident_tx, ident_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<Option<Arc<RunningTask>>>();
        let manager = Arc::clone(self);
        std::thread::Builder::new()
            .name(format!("task {worker_type}"))
            .spawn(move || {
                let tid = u32::try_from(nix::unistd::gettid().as_raw()).unwrap_or(0);
                let _ = ident_tx.send((tid, thread_start_ticks()));
                if let Ok(Some(task)) = go_rx.recv() {
                    manager.run(task, work);
                }
            })
            .map_err(|e| ErrorReply::new(ErrorKind::Internal, format!("cannot start a task thread: {e}")))?;
        let (tid, pstart) =
            ident_rx.recv().map_err(|_| ErrorReply::new(ErrorKind::Internal, "task thread ended before it started"))?;
        let registered = self.register(worker_type, id, user, tid, pstart);
        let _ = go_tx.send(registered.as_ref().ok().cloned());
        registered.map(|task| task.upid.clone())
    }

    fn register(
        &self,
        worker_type: &str,
        id: &str,
        user: &str,
        tid: u32,
        pstart: u64,
    ) -> Result<Arc<RunningTask>, ErrorReply> {
        let upid = Upid::new(&self.node, tid, pstart, now(), worker_type, id, user)
            .map_err(|e| ErrorReply::new(ErrorKind::Invalid, e.to_string()))?;
        let path = self.log_path(&upid);
        let parent = path.parent().expect("log paths have a bucket directory");
        fs::create_dir_all(parent).map_err(|e| io_reply(parent, e))?;
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| io_reply(&path, e))?;
        let task = Arc::new(RunningTask {
            info: Mutex::new(info_from(upid.clone(), None, TaskState::Running)),
            upid,
            log: Mutex::new((Some(file), Vec::new())),
            progress: Mutex::new(None),
            stop: AtomicBool::new(false),
            warnings: AtomicU32::new(0),
            changed: watch::channel(0).0,
        });
        lock(&self.running).insert(task.upid.to_string(), Arc::clone(&task));
        if let Err(e) = self.write_active() {
            lock(&self.running).remove(&task.upid.to_string());
            return Err(e);
        }
        tracing::info!(upid = %task.upid, "task started");
        Ok(task)
    }

    fn run(&self, task: Arc<RunningTask>, work: impl FnOnce(&TaskContext) -> Result<(), String>) {
        let ctx = TaskContext { task: Arc::clone(&task) };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&ctx)))
            .unwrap_or_else(|_| Err("internal error: the task panicked".into()));
        let state = match outcome {
            Err(message) => TaskState::Error { message: message.replace('\n', " ") },
            Ok(()) => match task.warnings.load(Ordering::Relaxed) {
                0 => TaskState::Ok,
                count => TaskState::Warnings { count },
            },
        };
        task.append(&format!("TASK {}", state.status_text()));
        if let TaskState::Error { message } = &state {
            tracing::error!(upid = %task.upid, %message, "task failed");
        } else {
            tracing::info!(upid = %task.upid, "task finished");
        }
        let end = now();
        // Followers learn the end at once; the records are made durable right after, on this
        // thread. A crash in between leaves the task in `active`, so the next start records it
        // as ended unknown — never as still running.
        *lock(&task.info) = info_from(task.upid.clone(), Some(end), state.clone());
        task.changed.send_modify(|n| *n += 1);
        if let Some(file) = lock(&task.log).0.take() {
            let _ = file.sync_all();
        }
        if let Err(e) = self.append_index(&task.upid, end, &state) {
            tracing::error!(upid = %task.upid, error = %e, "cannot record the task in the index");
        }
        lock(&self.running).remove(&task.upid.to_string());
        if let Err(e) = self.write_active() {
            tracing::error!(error = %e, "cannot update the active task list");
        }
    }

    fn write_active(&self) -> Result<(), ErrorReply> {
        let _files = lock(&self.files);
        let text: String = lock(&self.running).keys().map(|u| format!("{u}\n")).collect();
        let path = self.dir.join("active");
        crate::store::write_atomic(&path, text.as_bytes())
            .map_err(|e| ErrorReply::new(ErrorKind::Internal, e.to_string()))
    }

    fn append_index(&self, upid: &Upid, endtime: u32, state: &TaskState) -> Result<(), ErrorReply> {
        let _files = lock(&self.files);
        let path = self.dir.join("index");
        if fs::metadata(&path).is_ok_and(|m| m.len() > INDEX_ROTATE_BYTES) {
            fs::rename(&path, self.dir.join("index.1")).map_err(|e| io_reply(&path, e))?;
        }
        let mut file = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| io_reply(&path, e))?;
        writeln!(file, "{upid} {endtime:08X} {}", state.status_text()).map_err(|e| io_reply(&path, e))?;
        file.sync_all().map_err(|e| io_reply(&path, e))
    }

    /// Finished tasks, oldest first.
    fn read_index(&self) -> Vec<TaskInfo> {
        // Under the files lock, so a rotation never hides a file from the reader.
        let _files = lock(&self.files);
        let mut tasks = Vec::new();
        for name in ["index.1", "index"] {
            let Ok(file) = File::open(self.dir.join(name)) else { continue };
            for line in BufReader::new(file).lines().map_while(Result::ok) {
                let mut parts = line.splitn(3, ' ');
                let (Some(upid), Some(end), status) = (parts.next(), parts.next(), parts.next().unwrap_or("")) else {
                    continue;
                };
                let (Ok(upid), Ok(end)) = (upid.parse::<Upid>(), u32::from_str_radix(end, 16)) else { continue };
                tasks.push(info_from(upid, Some(end), parse_status(status)));
            }
        }
        tasks
    }

    fn find_in_index(&self, upid: &Upid) -> Option<TaskInfo> {
        self.read_index().into_iter().rev().find(|t| &t.upid == upid)
    }

    /// A running task, for following it.
    pub fn running(&self, upid: &Upid) -> Option<Arc<RunningTask>> {
        lock(&self.running).get(&upid.to_string()).cloned()
    }

    /// Tasks newest first, filtered.
    pub fn list(&self, filter: &TaskFilter) -> Vec<TaskInfo> {
        let mut running: Vec<TaskInfo> = lock(&self.running).values().map(|t| t.info()).collect();
        running.retain(|t| !filter.running || t.state.is_running());
        running.sort_by_key(|t| std::cmp::Reverse(t.starttime));
        let mut finished = if filter.running { Vec::new() } else { self.read_index() };
        // A task that just ended is in the index a moment before it leaves the running set.
        finished.retain(|t| !running.iter().any(|r| r.upid == t.upid));
        let vmid = filter.vmid.map(|v| v.to_string());
        running
            .into_iter()
            .chain(finished.into_iter().rev())
            .filter(|t| filter.typefilter.as_ref().is_none_or(|f| &t.worker_type == f))
            .filter(|t| vmid.as_ref().is_none_or(|v| &t.id == v))
            .filter(|t| !filter.errors || matches!(t.state, TaskState::Error { .. } | TaskState::Unknown))
            .take(filter.limit.unwrap_or(50))
            .collect()
    }

    /// The state of one task.
    pub fn status(&self, upid: &Upid) -> Result<TaskInfo, ErrorReply> {
        if let Some(task) = self.running(upid) {
            return Ok(task.info());
        }
        if let Some(info) = self.find_in_index(upid) {
            return Ok(info);
        }
        Err(ErrorReply::new(ErrorKind::NotFound, format!("no task {upid}")))
    }

    /// Log lines from `start` on.
    pub fn log(&self, upid: &Upid, start: usize) -> Result<Vec<String>, ErrorReply> {
        let path = self.log_path(upid);
        let file = File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ErrorReply::new(ErrorKind::NotFound, format!("no task {upid}")),
            _ => io_reply(&path, e),
        })?;
        Ok(BufReader::new(file).lines().map_while(Result::ok).skip(start).collect())
    }

    /// Asks a running task to stop; it ends with an error at its next check.
    pub fn stop(&self, upid: &Upid) -> Result<(), ErrorReply> {
        // A task that has just ended stays in the running set while its records are written.
        let Some(task) = self.running(upid).filter(|t| t.info().state.is_running()) else {
            self.status(upid)?;
            return Err(ErrorReply::new(ErrorKind::Conflict, format!("task {upid} is not running")));
        };
        task.stop.store(true, Ordering::Relaxed);
        task.append("received a stop request");
        Ok(())
    }

    /// Whether any task is running.
    pub fn any_running(&self) -> bool {
        !lock(&self.running).is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_left_running_by_a_dead_daemon_end_unknown() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("var/log/hearth/tasks");
        fs::create_dir_all(&dir).unwrap();
        let orphan = "UPID:n1:00000010:00000020:6B000000:qmstart:100:root@pam:";
        fs::write(dir.join("active"), format!("{orphan}\n")).unwrap();
        let manager = TaskManager::open(root.path(), "n1").unwrap();
        let upid: Upid = orphan.parse().unwrap();
        assert_eq!(manager.status(&upid).unwrap().state, TaskState::Unknown);
        assert_eq!(fs::read_to_string(dir.join("active")).unwrap(), "");
        // Opening again does not record it twice.
        drop(manager);
        let manager = TaskManager::open(root.path(), "n1").unwrap();
        assert_eq!(manager.list(&TaskFilter::default()).len(), 1);
    }

    #[test]
    fn warnings_and_errors_end_the_log() {
        let root = tempfile::tempdir().unwrap();
        let manager = Arc::new(TaskManager::open(root.path(), "n1").unwrap());
        let warned = manager
            .spawn("vzdump", "", "root@pam", |ctx| {
                ctx.warn("disk skipped");
                Ok(())
            })
            .unwrap();
        let failed = manager.spawn("qmstart", "100", "root@pam", |_| Err("no such bridge\nvmbr9".into())).unwrap();
        while manager.any_running() {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert_eq!(manager.status(&warned).unwrap().state, TaskState::Warnings { count: 1 });
        assert_eq!(manager.log(&warned, 0).unwrap(), ["WARN: disk skipped", "TASK WARNINGS: 1"]);
        assert_eq!(manager.status(&failed).unwrap().state, TaskState::Error { message: "no such bridge vmbr9".into() });
        assert_eq!(manager.log(&failed, 0).unwrap().last().unwrap(), "TASK ERROR: no such bridge vmbr9");
        let errors = manager.list(&TaskFilter { errors: true, ..TaskFilter::default() });
        assert_eq!(errors.iter().map(|t| &t.upid).collect::<Vec<_>>(), [&failed]);
    }
}
