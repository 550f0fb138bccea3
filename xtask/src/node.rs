//! A throwaway Hearth node for `demo` and `bench`: hearthd serving a temporary root, stopped
//! with SIGTERM and its root removed when the guard drops, on success and on failure alike.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

/// How long hearthd may take to open its socket, and to exit after SIGTERM.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// A running hearthd on a temporary root.
///
/// The temporary directory holds `root/` (the node root: `etc/hearth`, `run/hearth`, …) and
/// `hearthd.log` (the daemon's stderr) beside it, so the log never appears inside the node.
#[derive(Debug)]
pub struct Node {
    daemon: Option<Child>,
    hearthd: PathBuf,
    node_name: String,
    root: PathBuf,
    log: PathBuf,
    // Dropped last, after the daemon is stopped: removes everything.
    _dir: TempDir,
}

impl Node {
    /// Starts `hearthd --root <temp>/root --node <name>` and waits until it answers a Hello.
    pub fn start(hearthd: &Path, node_name: &str) -> anyhow::Result<Node> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("hearth-{node_name}-"))
            .tempdir()
            .context("cannot create a temporary directory for the node root")?;
        let root = dir.path().join("root");
        fs::create_dir(&root).with_context(|| format!("cannot create {}", root.display()))?;
        let log = dir.path().join("hearthd.log");
        let mut node =
            Node { daemon: None, hearthd: hearthd.to_owned(), node_name: node_name.to_owned(), root, log, _dir: dir };
        node.spawn()?;
        Ok(node)
    }

    /// Starts hearthd on the node's root (its log appended to) and waits until it answers.
    fn spawn(&mut self) -> anyhow::Result<()> {
        let log_file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("cannot open {}", self.log.display()))?;
        let stdout = log_file.try_clone().with_context(|| format!("cannot reopen {}", self.log.display()))?;
        let daemon = Command::new(&self.hearthd)
            .arg("--root")
            .arg(&self.root)
            .args(["--node", &self.node_name])
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot start {}", self.hearthd.display()))?;
        self.daemon = Some(daemon);
        self.wait_until_ready()
    }

    /// Stops hearthd and starts a new one on the same root: a daemon that has served nothing
    /// yet but its startup (and the readiness Hello).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let daemon = self.daemon.take().context("hearthd is not running")?;
        let status = terminate(daemon)?;
        if !status.success() {
            bail!("hearthd exited with {status} after SIGTERM; its log:\n{}", self.log_text());
        }
        self.spawn()
    }

    fn wait_until_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let daemon = self.daemon.as_mut().expect("the daemon runs until stop");
            if let Some(status) = daemon.try_wait().context("cannot check on hearthd")? {
                self.daemon = None;
                bail!("hearthd exited during startup ({status}); its log:\n{}", self.log_text());
            }
            let last_error = match hearth_client::Client::connect(&self.root, "xtask") {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() > deadline {
                bail!(
                    "hearthd did not answer on {} within {} s: {last_error:#}; its log:\n{}",
                    self.socket().display(),
                    STARTUP_TIMEOUT.as_secs(),
                    self.log_text()
                );
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// The node root, for `HEARTH_ROOT`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn socket(&self) -> PathBuf {
        hearth_client::socket_path(&self.root)
    }

    /// hearthd's process id.
    pub fn pid(&self) -> anyhow::Result<u32> {
        match &self.daemon {
            Some(child) => Ok(child.id()),
            None => bail!("hearthd is not running"),
        }
    }

    /// What hearthd logged so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log.display()))
    }

    /// Sends SIGTERM and waits for hearthd to exit; fails if it does not exit cleanly in time.
    pub fn stop(mut self) -> anyhow::Result<ExitStatus> {
        let daemon = self.daemon.take().context("hearthd is not running")?;
        let status = terminate(daemon)?;
        if !status.success() {
            bail!("hearthd exited with {status} after SIGTERM; its log:\n{}", self.log_text());
        }
        Ok(status)
    }
}

/// SIGTERM, then SIGKILL if the process outlives [`SHUTDOWN_TIMEOUT`].
fn terminate(mut daemon: Child) -> anyhow::Result<ExitStatus> {
    let pid = Pid::from_raw(i32::try_from(daemon.id()).context("process id out of range")?);
    if daemon.try_wait().context("cannot check on hearthd")?.is_none() {
        kill(pid, Signal::SIGTERM).context("cannot send SIGTERM to hearthd")?;
    }
    let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
    loop {
        if let Some(status) = daemon.try_wait().context("cannot wait for hearthd")? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            // Best effort: the error below is what matters.
            let _ = daemon.kill();
            let _ = daemon.wait();
            bail!("hearthd did not exit within {} s of SIGTERM; killed it", SHUTDOWN_TIMEOUT.as_secs());
        }
        sleep(Duration::from_millis(10));
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(daemon) = self.daemon.take()
            && let Err(e) = terminate(daemon)
        {
            eprintln!("warning: {e:#}");
        }
    }
}
