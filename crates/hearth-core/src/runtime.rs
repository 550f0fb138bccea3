//! The guest runtime interface every engine implements: start a guest from resolved resources,
//! stop it, shut it down, reboot, pause and resume it, report whether and how it runs, hold its
//! operation lock, and find it again after hearthd restarts. hearthd's guest handlers speak only
//! this interface, so they do not know which engine runs a guest (QEMU for VMs, hearth-ct for
//! containers, later hearth-vmm).
//!
//! **Architecture invariant:** the interface is plain data and a trait; it does no I/O. hearthd
//! loads and validates a configuration once per operation and resolves its volumes through the
//! storage backends into [`Resources`]; an engine never reads configuration files or touches
//! storage, it turns resources into a [`Launch`] and runs it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::guest::{GuestKind, Section};
use crate::storage::Format;
use crate::vmid::Vmid;

/// A guest configuration, loaded and validated once, with every volume it names resolved to
/// something on the host.
#[derive(Clone, Debug)]
pub struct Resources {
    pub vmid: Vmid,
    /// The current settings the guest starts with.
    pub config: Section,
    /// Resolved volumes by configuration key (`scsi0`, `efidisk0`, `rootfs`, `mp0`); keys
    /// without a volume (a CD-ROM `none`) are absent.
    pub volumes: BTreeMap<String, ResolvedVolume>,
}

/// What a volume of the configuration is on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolvedVolume {
    /// An absolute host path the configuration names directly (root only).
    HostPath(PathBuf),
    /// A volume of a storage: its path, and its format when it is an image file.
    Storage { path: PathBuf, format: Format, directory: bool },
}

impl ResolvedVolume {
    pub fn path(&self) -> &std::path::Path {
        match self {
            ResolvedVolume::HostPath(path) | ResolvedVolume::Storage { path, .. } => path,
        }
    }
}

/// How to start, beyond the configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StartOptions {
    /// How long the engine may wait for the guest to come up; the engine's own default if unset.
    pub timeout: Option<Duration>,
    /// A saved state to resume from (a snapshot taken with its RAM).
    pub resume_state: Option<String>,
    /// A file holding the RAM state a suspend to disk saved, to resume from.
    pub incoming: Option<PathBuf>,
    /// Log what the engine will run, in full (`ctctl start --debug`).
    pub debug: bool,
}

/// Why a runtime operation failed; the message is complete and names the guest.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RuntimeError {
    pub kind: RuntimeErrorKind,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeErrorKind {
    /// The operation needs a running guest.
    NotRunning,
    /// A start found the guest running.
    AlreadyRunning,
    /// The configuration cannot run here (host limits, a missing bridge, a bad `args:`).
    Invalid,
    /// The guest's monitor does not answer.
    Unavailable,
    /// A shutdown did not end the guest in time; it still runs.
    TimedOut,
    /// Anything else: a process that would not start or stop.
    Failed,
}

impl RuntimeError {
    pub fn new(kind: RuntimeErrorKind, message: impl Into<String>) -> RuntimeError {
        RuntimeError { kind, message: message.into() }
    }

    pub fn failed(message: impl Into<String>) -> RuntimeError {
        RuntimeError::new(RuntimeErrorKind::Failed, message)
    }

    pub fn invalid(message: impl Into<String>) -> RuntimeError {
        RuntimeError::new(RuntimeErrorKind::Invalid, message)
    }

    pub fn not_running(kind: GuestKind, vmid: Vmid) -> RuntimeError {
        RuntimeError::new(RuntimeErrorKind::NotRunning, format!("{} {vmid} is not running", kind.noun()))
    }

    pub fn already_running(kind: GuestKind, vmid: Vmid) -> RuntimeError {
        RuntimeError::new(RuntimeErrorKind::AlreadyRunning, format!("{} {vmid} already running", kind.noun()))
    }
}

impl From<RuntimeError> for String {
    fn from(e: RuntimeError) -> String {
        e.message
    }
}

/// What a running guest looks like from the host; fields an engine cannot tell stay empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimeStatus {
    /// The guest's main process: QEMU, or a container's init.
    pub pid: Option<u32>,
    /// A supervising process apart from `pid` (a container's monitor).
    pub monitor_pid: Option<u32>,
    pub uptime: Option<u64>,
    /// The engine's own word for the state (QEMU's `running`, `paused`).
    pub state: Option<String>,
    pub mem: Option<u64>,
    pub cputime: Option<u64>,
    pub pids: Option<u64>,
    pub diskread: u64,
    pub diskwrite: u64,
    pub netin: u64,
    pub netout: u64,
    /// How the last run ended, for a stopped guest, if the engine records it.
    pub last_exit: Option<String>,
}

/// A start an engine has fully prepared from [`Resources`]: everything that can be refused
/// has been, and running it only starts processes.
pub trait Launch: Send {
    fn vmid(&self) -> Vmid;
    /// Settings the engine ignores or adjusts, for the task log.
    fn warnings(&self) -> Vec<String>;
    /// What will run, for `showcmd`: one line, or one option per line when `pretty`.
    fn describe(&self, pretty: bool) -> String;
    /// Starts the guest and watches it until it ends; on failure nothing of it remains.
    /// Returns the pid of its main process. The caller holds the operation lock.
    fn run(self: Box<Self>, log: &dyn Fn(String)) -> Result<u32, RuntimeError>;
}

/// One engine's guests on this node. Every method that changes a guest expects the caller to
/// hold [`GuestRuntime::op_lock`] for it.
pub trait GuestRuntime: Send + Sync + std::fmt::Debug {
    /// The kind of guest this engine runs.
    fn kind(&self) -> GuestKind;
    /// How long a shutdown waits when the caller names no time (qm: 180 s, lxc-stop: 60 s).
    fn default_shutdown_timeout(&self) -> Duration;
    /// The lock that serialises starting, stopping and changing one guest's disks.
    fn op_lock(&self, vmid: Vmid) -> Arc<Mutex<()>>;
    /// The guest's main process, if it runs.
    fn pid(&self, vmid: Vmid) -> Option<u32>;
    fn running(&self, vmid: Vmid) -> bool {
        self.pid(vmid).is_some()
    }
    /// Every guest of this engine that runs now, with its main process, from what the engine
    /// keeps in memory (no look at pid files per guest); `None` when the engine keeps no such
    /// table, and callers ask [`GuestRuntime::pid`] per guest.
    fn running_guests(&self) -> Option<BTreeMap<Vmid, u32>> {
        None
    }
    /// Checks the resources against the engine and the host and builds the start.
    fn prepare(&self, resources: Resources, options: &StartOptions) -> Result<Box<dyn Launch>, RuntimeError>;
    /// Ends the guest at once and removes what it left.
    fn stop(&self, vmid: Vmid) -> Result<(), RuntimeError>;
    /// Asks the guest to power off and waits up to `timeout`; `TimedOut` if it still runs.
    fn shutdown(&self, vmid: Vmid, timeout: Duration, log: &dyn Fn(String)) -> Result<(), RuntimeError>;
    /// A clean shutdown, then a start of `launch` (prepared from today's configuration).
    fn reboot(
        &self,
        vmid: Vmid,
        timeout: Duration,
        launch: Box<dyn Launch>,
        log: &dyn Fn(String),
    ) -> Result<u32, RuntimeError> {
        self.shutdown(vmid, timeout, log)?;
        launch.run(log)
    }
    /// Freezes the running guest; [`GuestRuntime::resume`] lets it go on.
    fn pause(&self, vmid: Vmid) -> Result<(), RuntimeError>;
    fn resume(&self, vmid: Vmid) -> Result<(), RuntimeError>;
    /// How the guest runs now; `verbose` adds counters that cost more to read.
    fn status(&self, vmid: Vmid, verbose: bool) -> RuntimeStatus;
    /// After hearthd started: watches the guests still running again and removes what those
    /// that are gone left behind. Returns the guests found running.
    fn adopt(&self) -> Vec<Vmid>;
    /// Applies one change to the running guest, if the engine can: `Live` when it took effect,
    /// `Pending` when it has to wait for the next start. An error means the attempt failed and
    /// left the guest as it was; the change stays pending. The caller holds the operation lock.
    fn hotplug(&self, vmid: Vmid, change: &HotplugChange, log: &dyn Fn(String)) -> Result<Hotplugged, RuntimeError> {
        let _ = (vmid, change, log);
        Ok(Hotplugged::Pending)
    }
}

/// One key's change to a running guest.
#[derive(Clone, Debug)]
pub struct HotplugChange {
    pub key: String,
    /// The value in effect, `None` when the key is not set.
    pub current: Option<crate::schema::Value>,
    /// The value wanted, `None` to remove the key.
    pub wanted: Option<crate::schema::Value>,
    /// The guest's current settings (its `hotplug` features, controllers, memory).
    pub config: Section,
    /// The wanted value's volume, resolved, for a disk or mount point.
    pub volume: Option<ResolvedVolume>,
}

/// What became of a change to a running guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hotplugged {
    /// In effect now.
    Live,
    /// Not possible on the running guest; it applies at the next start.
    Pending,
}
