//! Running containers, as pct runs them: hearthd turns a container's configuration into a
//! [`ContainerSpec`] and starts `hearth-ctmon`, which clones the container and stays its parent
//! (hearth-ct). hearthd watches every monitor: when one ends, however it ends, what it could
//! not undo (cgroups, a veth) is removed.
//!
//! **Invariants:** a container is running exactly when `run/hearth/lxc/<ctid>/monitor.pid`
//! names a live hearth-ctmon and `init.pid` a live init, so hearthd can restart at any time
//! without touching containers and find them again. Start, stop and clean-up of one container
//! are serialised by one lock.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_core::storage::VolName;
use hearth_core::{GuestConfig, GuestKind, Value, Vmid};
use hearth_ct::attach::{AttachMode, AttachSpec};
use hearth_ct::cgroup::{Cgroups, Layout};
use hearth_ct::monitor::{self, Report};
use hearth_ct::spec::{ContainerSpec, Features, IdMap, Limits, MountSpec, NetSpec, RootFs};
use hearth_proto::{CtStatusReport, DfEntry, ErrorKind, ErrorReply, ExecInCt, Payload};

use crate::storage::to_reply;
use crate::{Caller, Daemon};

/// `ctctl shutdown` waits this long by default, as lxc-stop does.
pub const DEFAULT_SHUTDOWN_TIMEOUT: u64 = 60;
/// How long a monitor may take to report that init runs.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How many `netN` keys a container can have.
const MAX_NETS: u32 = 10;

fn err(kind: ErrorKind, message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(kind, message)
}

/// The containers of this node.
#[derive(Debug)]
pub struct CtRuntime {
    /// `run/hearth/lxc`.
    pub(crate) run_dir: PathBuf,
    /// `var/log/hearth/lxc`.
    log_dir: PathBuf,
    /// The cgroup directory holding this node's containers: `hearth`, or `hearth-<hash>` for
    /// a node root other than `/` (test nodes), so two nodes on one host never meet.
    cgroup_base: String,
    ctmon: PathBuf,
    ops: Mutex<HashMap<Vmid, Arc<Mutex<()>>>>,
}

/// Where hearth-ctmon is: `$HEARTH_CTMON`, else where `cargo xtask install` puts it
/// (`PREFIX/lib/hearth`, next to hearthd's `PREFIX/sbin`), else next to hearthd (or one level
/// up, for test binaries under `target/<profile>/deps`).
fn find_ctmon() -> PathBuf {
    if let Some(path) = std::env::var_os("HEARTH_CTMON") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_owned).unwrap_or_default();
    let up = dir.parent().map(Path::to_owned).unwrap_or_default();
    for candidate in [up.join("lib/hearth/hearth-ctmon"), dir.join("hearth-ctmon"), up.join("hearth-ctmon")] {
        if candidate.exists() {
            return candidate;
        }
    }
    PathBuf::from("/usr/lib/hearth/hearth-ctmon")
}

impl CtRuntime {
    pub fn open(root: &Path) -> std::io::Result<CtRuntime> {
        let root = std::fs::canonicalize(root)?;
        let run_dir = root.join("run/hearth/lxc");
        std::fs::create_dir_all(&run_dir)?;
        // Traversable by container roots (their rootfs mount lies below), not listable.
        std::fs::set_permissions(&run_dir, std::os::unix::fs::PermissionsExt::from_mode(0o711))?;
        let log_dir = root.join("var/log/hearth/lxc");
        std::fs::create_dir_all(&log_dir)?;
        let cgroup_base = cgroup_base(&root)?;
        Ok(CtRuntime { run_dir, log_dir, cgroup_base, ctmon: find_ctmon(), ops: Mutex::new(HashMap::new()) })
    }

    pub fn ct_dir(&self, vmid: Vmid) -> PathBuf {
        self.run_dir.join(vmid.to_string())
    }

    pub(crate) fn cgroup(&self, vmid: Vmid) -> String {
        format!("{}/{vmid}", self.cgroup_base)
    }

    pub(crate) fn op_lock(&self, vmid: Vmid) -> Arc<Mutex<()>> {
        let mut ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(ops.entry(vmid).or_default())
    }

    /// The monitor's pid, if it runs.
    pub fn monitor_pid(&self, vmid: Vmid) -> Option<i32> {
        let pid: i32 =
            std::fs::read_to_string(monitor::monitor_pid_file(&self.ct_dir(vmid))).ok()?.trim().parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let first = cmdline.split(|b| *b == 0).next()?;
        Path::new(std::str::from_utf8(first).ok()?).file_name().is_some_and(|n| n == "hearth-ctmon").then_some(pid)
    }

    /// Init's pid, if the container runs.
    pub fn init_pid(&self, vmid: Vmid) -> Option<i32> {
        let monitor = self.monitor_pid(vmid)?;
        let pid: i32 = std::fs::read_to_string(monitor::init_pid_file(&self.ct_dir(vmid))).ok()?.trim().parse().ok()?;
        // Only the monitor's own child is the init: a recycled pid belongs to someone else.
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let parent = status.lines().find_map(|l| l.strip_prefix("PPid:"))?.trim().parse::<i32>().ok()?;
        (parent == monitor).then_some(pid)
    }

    /// Freezes or thaws every process of a running container (its cgroup's freezer).
    pub fn freeze(&self, vmid: Vmid, frozen: bool) -> Result<(), String> {
        let layout = Layout::detect().map_err(|e| e.to_string())?;
        Cgroups::new(layout, &self.cgroup(vmid)).freeze(frozen).map_err(|e| e.to_string())
    }

    pub fn running(&self, vmid: Vmid) -> bool {
        self.init_pid(vmid).is_some()
    }

    fn require_running(&self, vmid: Vmid) -> Result<i32, ErrorReply> {
        self.init_pid(vmid).ok_or_else(|| err(ErrorKind::Conflict, format!("CT {vmid} is not running")))
    }

    /// Removes what a monitor that is gone left: cgroups, veths, run files. Holds the run
    /// lock, and does nothing if a monitor runs again by then.
    pub fn clean_up(&self, vmid: Vmid) {
        let lock = self.op_lock(vmid);
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        self.clean_up_locked(vmid);
    }

    fn clean_up_locked(&self, vmid: Vmid) {
        if self.monitor_pid(vmid).is_some() {
            return;
        }
        if let Ok(layout) = Layout::detect() {
            for left in Cgroups::new(layout, &self.cgroup(vmid)).remove_all() {
                tracing::warn!(%vmid, cgroup = %left.display(), "cgroup could not be removed");
            }
        }
        for index in 0..MAX_NETS {
            let host = veth_name(vmid, index);
            if Path::new("/sys/class/net").join(&host).exists() {
                let _ = Command::new("ip").args(["link", "del", &host]).stderr(Stdio::null()).status();
            }
        }
        let dir = self.ct_dir(vmid);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let _ = std::fs::remove_file(&path).or_else(|_| std::fs::remove_dir(&path));
            }
        }
        let _ = std::fs::remove_dir(&dir);
    }

    /// Watches a monitor until it exits, then cleans up.
    fn watch(self: &Arc<Self>, vmid: Vmid, mut child: Option<std::process::Child>, pid: i32) {
        let runtime = Arc::clone(self);
        std::thread::spawn(move || {
            match child.as_mut() {
                Some(child) => {
                    let _ = child.wait();
                }
                None => {
                    if let Ok(pidfd) = hearth_sys::process::pidfd_open(pid) {
                        let mut fds = [nix::poll::PollFd::new(pidfd.as_fd(), nix::poll::PollFlags::POLLIN)];
                        while let Err(nix::errno::Errno::EINTR) =
                            nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE)
                        {}
                    }
                }
            }
            runtime.clean_up(vmid);
        });
    }

    /// After a restart of hearthd: watch the monitors still running, clean up after the
    /// ones that are gone.
    pub fn adopt(self: &Arc<Self>) {
        let Ok(entries) = std::fs::read_dir(&self.run_dir) else { return };
        for entry in entries.flatten() {
            // A create that hearthd did not live to finish leaves its staging mount.
            if entry.file_name().to_string_lossy().ends_with(".create") {
                let _ = Command::new("umount").arg(entry.path()).stderr(Stdio::null()).status();
                let _ = std::fs::remove_dir(entry.path());
                continue;
            }
            let Some(vmid) = entry.file_name().to_str().and_then(|n| n.parse::<Vmid>().ok()) else { continue };
            match self.monitor_pid(vmid) {
                Some(pid) => self.watch(vmid, None, pid),
                None => self.clean_up(vmid),
            }
        }
    }

    /// Waits up to `timeout` for the monitor to end; true if it did.
    fn wait_stopped(&self, vmid: Vmid, timeout: Duration) -> bool {
        let Some(pid) = self.monitor_pid(vmid) else { return true };
        let Ok(pidfd) = hearth_sys::process::pidfd_open(pid) else { return true };
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = u16::try_from(left.as_millis().min(60_000)).unwrap_or(60_000);
            let mut fds = [nix::poll::PollFd::new(pidfd.as_fd(), nix::poll::PollFlags::POLLIN)];
            match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)) {
                Ok(n) if n > 0 => return true,
                _ if left.is_zero() => return false,
                _ => {}
            }
        }
    }
}

/// The cgroup directory holding a node's containers: `hearth` for the node root `/`, else
/// `hearth-<hash of the root>`, so two nodes on one host (tests) never meet.
pub fn cgroup_base(root: &Path) -> std::io::Result<String> {
    let root = std::fs::canonicalize(root)?;
    if root == Path::new("/") {
        return Ok("hearth".to_owned());
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(root.as_os_str().as_encoded_bytes());
    Ok(format!("hearth-{}", hearth_core::hex::encode(&digest[..4])))
}

/// `veth<ctid>i<N>`, as Proxmox names the host end.
pub fn veth_name(vmid: Vmid, index: u32) -> String {
    format!("veth{vmid}i{index}")
}

fn props(key: &str, value: &Value) -> Result<hearth_core::propstr::PropertyString, ErrorReply> {
    GuestKind::Ct
        .schema()
        .property(key, value)
        .ok_or_else(|| err(ErrorKind::Invalid, format!("{key}: cannot be parsed")))
}

fn flag(config: &GuestConfig, key: &str, default: bool) -> bool {
    match config.current.get(key) {
        Some(Value::Bool(b)) => *b,
        _ => default,
    }
}

fn int(config: &GuestConfig, key: &str) -> Option<i64> {
    match config.current.get(key) {
        Some(Value::Int(i)) => Some(*i),
        _ => None,
    }
}

/// Resolves a volume of the container to what the runtime mounts.
pub(crate) fn volume_source(daemon: &Daemon, vmid: Vmid, key: &str, volume: &str) -> Result<RootFs, ErrorReply> {
    if volume.starts_with('/') {
        return Ok(RootFs::Dir { path: PathBuf::from(volume) });
    }
    let (backend, vol) = daemon.storages.volume(volume).map_err(|e| err(e.kind, format!("{key}: {}", e.message)))?;
    if let VolName::Image { image, .. } = &vol
        && image.vmid != vmid
    {
        return Err(err(
            ErrorKind::Invalid,
            format!("{key}: volume '{volume}' belongs to guest {}, not {vmid}", image.vmid),
        ));
    }
    let path = backend.path(&vol).map_err(to_reply)?;
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_dir() => Ok(RootFs::Dir { path }),
        Ok(_) => Ok(RootFs::Image { path, fstype: "ext4".into() }),
        Err(_) => Err(err(ErrorKind::NotFound, format!("{key}: volume '{volume}' does not exist"))),
    }
}

fn host_memory_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("MemTotal:")).map(str::to_owned))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(u64::MAX, |kib| kib / 1024)
}

/// The runtime's view of a container's configuration; refuses what the host cannot give.
pub(crate) fn spec_for(daemon: &Daemon, vmid: Vmid, config: &GuestConfig) -> Result<ContainerSpec, ErrorReply> {
    let runtime = &daemon.ct;
    let rootfs =
        config.current.get("rootfs").ok_or_else(|| err(ErrorKind::Invalid, format!("CT {vmid} has no rootfs")))?;
    let rootfs = props("rootfs", rootfs)?;
    let rootfs = volume_source(daemon, vmid, "rootfs", rootfs.get("volume").unwrap_or_default())?;
    let mut mounts = Vec::new();
    for (key, value) in config.current.iter().filter(|(k, _)| k.starts_with("mp")) {
        let p = props(key, value)?;
        mounts.push(MountSpec {
            source: volume_source(daemon, vmid, key, p.get("volume").unwrap_or_default())?,
            target: p.get("mp").unwrap_or("/").to_owned(),
            readonly: p.get("ro") == Some("1"),
        });
    }
    let memory = int(config, "memory").unwrap_or(512) as u64;
    let swap = int(config, "swap").unwrap_or(512) as u64;
    let host_mib = host_memory_mib();
    if memory > host_mib {
        return Err(err(ErrorKind::Invalid, format!("memory: {memory} MiB asked, the host has {host_mib} MiB")));
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let cores = int(config, "cores").map(|c| c as u32);
    if let Some(cores) = cores
        && u64::from(cores) > cpus
    {
        return Err(err(ErrorKind::Invalid, format!("cores: {cores} asked, the host has {cpus} CPUs")));
    }
    let cpulimit = match config.current.get("cpulimit") {
        Some(Value::Float(f)) => Some(*f),
        Some(Value::Int(i)) => Some(*i as f64),
        _ => None,
    };
    if let Some(limit) = cpulimit
        && limit > cpus as f64
    {
        return Err(err(ErrorKind::Invalid, format!("cpulimit: {limit} asked, the host has {cpus} CPUs")));
    }
    let limits = Limits {
        memory: Some(memory << 20),
        swap: Some(swap << 20),
        cpulimit: cpulimit.filter(|l| *l > 0.0),
        cpuunits: int(config, "cpuunits").map(|u| u as u64),
        cores,
        pids: None,
    };
    let mut nets = Vec::new();
    let guest_configures_network = !hearth_ct::setup::needs_host_network_config(ostype(config).as_deref());
    for (key, value) in config.current.iter().filter(|(k, _)| k.starts_with("net")) {
        let index: u32 = key.trim_start_matches("net").parse().unwrap_or(0);
        let p = props(key, value)?;
        let bridge = p.get("bridge").map(str::to_owned);
        if let Some(bridge) = &bridge {
            hearth_ct::net::check_bridge(bridge).map_err(|e| err(ErrorKind::Invalid, format!("{key}: {e}")))?;
        }
        let cidr = |ip: Option<&str>| ip.filter(|v| v.contains('/')).map(str::to_owned);
        let host_ipv4 = if guest_configures_network {
            None
        } else {
            cidr(p.get("ip")).map(|c| (c, p.get("gw").map(str::to_owned)))
        };
        let host_ipv6 = if guest_configures_network {
            None
        } else {
            cidr(p.get("ip6")).map(|c| (c, p.get("gw6").map(str::to_owned)))
        };
        nets.push(NetSpec {
            index,
            name: p.get("name").unwrap_or("eth0").to_owned(),
            host_name: veth_name(vmid, index),
            bridge,
            hwaddr: p.get("hwaddr").map(str::to_owned),
            mtu: p.get("mtu").and_then(|m| m.parse().ok()),
            tag: p.get("tag").and_then(|t| t.parse().ok()),
            trunks: p.get("trunks").map(parse_trunks).unwrap_or_default(),
            host_ipv4,
            host_ipv6,
            link_down: p.get("link_down") == Some("1"),
        });
    }
    let features = match config.current.get("features") {
        Some(value) => {
            let p = props("features", value)?;
            Features {
                nesting: p.get("nesting") == Some("1"),
                keyctl: p.get("keyctl") == Some("1"),
                fuse: p.get("fuse") == Some("1"),
                mknod: p.get("mknod") == Some("1"),
            }
        }
        None => Features::default(),
    };
    let hostname = match config.current.get("hostname") {
        Some(Value::Str(h)) => h.clone(),
        _ => format!("CT{vmid}"),
    };
    let unprivileged = flag(config, "unprivileged", true);
    Ok(ContainerSpec {
        ctid: vmid.get(),
        hostname,
        run_dir: runtime.ct_dir(vmid),
        log: runtime.log_dir.join(format!("{vmid}.log")),
        rootfs,
        mounts,
        idmap: unprivileged.then(IdMap::unprivileged_default),
        cgroup: runtime.cgroup(vmid),
        limits,
        nets,
        features,
        ttys: int(config, "tty").unwrap_or(2) as u32,
        console: flag(config, "console", true),
        init: "/sbin/init".into(),
        env: Vec::new(),
    })
}

fn ostype(config: &GuestConfig) -> Option<String> {
    match config.current.get("ostype") {
        Some(Value::Str(s)) => Some(s.clone()),
        _ => None,
    }
}

fn parse_trunks(list: &str) -> Vec<(u16, u16)> {
    list.split(';')
        .filter_map(|r| match r.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => r.parse().ok().map(|v| (v, v)),
        })
        .collect()
}

fn check_startable(daemon: &Daemon, vmid: Vmid) -> Result<GuestConfig, ErrorReply> {
    let config = daemon.store.load(GuestKind::Ct, vmid)?.config;
    if let Some(lock) = config.lock {
        return Err(err(ErrorKind::Locked, format!("CT {vmid} is locked ({lock})")));
    }
    if flag(&config, "template", false) {
        return Err(err(ErrorKind::Invalid, format!("CT {vmid} is a template and cannot be started; clone it first")));
    }
    if daemon.ct.monitor_pid(vmid).is_some() {
        return Err(err(ErrorKind::Conflict, format!("CT {vmid} already running")));
    }
    Ok(config)
}

/// Starts the container and returns once its init runs (or with the reason it could not).
pub(crate) fn start_now(daemon: &Daemon, vmid: Vmid, log: &dyn Fn(String)) -> Result<i32, String> {
    let config = check_startable(daemon, vmid).map_err(|e| e.message)?;
    let spec = spec_for(daemon, vmid, &config).map_err(|e| e.message)?;
    let runtime = &daemon.ct;
    runtime.clean_up_locked(vmid);
    let json = serde_json::to_string(&spec).map_err(|e| e.to_string())?;
    let logfile = std::fs::OpenOptions::new().create(true).append(true).open(&spec.log).map_err(|e| e.to_string())?;
    let mut child = Command::new(&runtime.ctmon)
        .arg("monitor")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(logfile))
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", runtime.ctmon.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = writeln!(stdin, "{json}");
    }
    // The report comes once init runs; a monitor that never answers is killed.
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
    }
    let line = rx.recv_timeout(START_TIMEOUT).unwrap_or_default();
    match serde_json::from_str::<Report>(line.trim()) {
        Ok(Report::Started { init_pid, monitor_pid }) => {
            log(format!("CT {vmid} started: init {init_pid}, monitor {monitor_pid}"));
            let runtime = Arc::clone(&daemon.ct);
            runtime.watch(vmid, Some(child), monitor_pid);
            Ok(init_pid)
        }
        Ok(Report::Error(message)) => {
            let _ = child.wait();
            runtime.clean_up_locked(vmid);
            Err(format!("CT {vmid}: {message}"))
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            runtime.clean_up_locked(vmid);
            Err(format!("CT {vmid}: hearth-ctmon ended without a report (see {})", spec.log.display()))
        }
    }
}

pub fn start(daemon: &Arc<Daemon>, caller: &Caller, vmid: Vmid) -> Result<Payload, ErrorReply> {
    let config = check_startable(daemon, vmid)?;
    // Refuse what cannot work before a task is spent on it.
    spec_for(daemon, vmid, &config)?;
    let worker = Arc::clone(daemon);
    let upid = daemon.tasks.spawn("vzstart", &vmid.to_string(), &caller.userid, move |ctx| {
        let lock = worker.ct.op_lock(vmid);
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        start_now(&worker, vmid, &|line| ctx.log(line)).map(|_| ())
    })?;
    Ok(Payload::Task(upid))
}

fn signal_init(daemon: &Daemon, vmid: Vmid, signal: i32) -> Result<(), String> {
    let Some(pid) = daemon.ct.init_pid(vmid) else { return Ok(()) };
    let pidfd = hearth_sys::process::pidfd_open(pid).map_err(|e| e.to_string())?;
    hearth_sys::process::pidfd_send_signal(pidfd.as_fd(), signal).map_err(|e| e.to_string())
}

/// Kills the container and waits for its monitor to finish tearing down.
pub(crate) fn kill_now(daemon: &Daemon, vmid: Vmid) -> Result<(), String> {
    signal_init(daemon, vmid, libc::SIGKILL)?;
    if !daemon.ct.wait_stopped(vmid, Duration::from_secs(30)) {
        return Err(format!("CT {vmid} did not stop within 30 s"));
    }
    daemon.ct.clean_up_locked(vmid);
    Ok(())
}

fn on_running(
    daemon: &Arc<Daemon>,
    caller: &Caller,
    vmid: Vmid,
    task: &str,
    work: impl FnOnce(&Daemon, &dyn Fn(String)) -> Result<(), String> + Send + 'static,
) -> Result<Payload, ErrorReply> {
    daemon.store.load(GuestKind::Ct, vmid)?;
    daemon.ct.require_running(vmid)?;
    let worker = Arc::clone(daemon);
    let upid = daemon.tasks.spawn(task, &vmid.to_string(), &caller.userid, move |ctx| {
        let lock = worker.ct.op_lock(vmid);
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        work(&worker, &|line| ctx.log(line))
    })?;
    Ok(Payload::Task(upid))
}

pub fn stop(daemon: &Arc<Daemon>, caller: &Caller, vmid: Vmid) -> Result<Payload, ErrorReply> {
    on_running(daemon, caller, vmid, "vzstop", move |d, log| {
        kill_now(d, vmid)?;
        log(format!("CT {vmid} stopped"));
        Ok(())
    })
}

/// The signal that asks init to power off, as LXC chooses it: SIGRTMIN+3 when init blocks it
/// (systemd), else SIGPWR.
fn halt_signal(init_pid: i32) -> i32 {
    let rtmin3 = hearth_sys::process::sigrtmin_plus(3);
    let blocked = std::fs::read_to_string(format!("/proc/{init_pid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("SigBlk:")).map(|v| v.trim().to_owned()))
        .and_then(|hex| u64::from_str_radix(&hex, 16).ok())
        .unwrap_or(0);
    if blocked & (1u64 << (rtmin3 - 1)) != 0 { rtmin3 } else { libc::SIGPWR }
}

pub(crate) fn shutdown_now(
    daemon: &Daemon,
    vmid: Vmid,
    timeout: u64,
    force: bool,
    log: &dyn Fn(String),
) -> Result<(), String> {
    let Some(init) = daemon.ct.init_pid(vmid) else { return Ok(()) };
    let signal = halt_signal(init);
    log(format!("asking init to power off (signal {signal})"));
    signal_init(daemon, vmid, signal)?;
    if daemon.ct.wait_stopped(vmid, Duration::from_secs(timeout)) {
        daemon.ct.clean_up_locked(vmid);
        log(format!("CT {vmid} shut down"));
        return Ok(());
    }
    if !force {
        return Err(format!("CT {vmid} did not shut down within {timeout} s (use --forceStop to kill it)"));
    }
    log(format!("CT {vmid} did not shut down within {timeout} s; killing it"));
    kill_now(daemon, vmid)
}

pub fn shutdown(
    daemon: &Arc<Daemon>,
    caller: &Caller,
    vmid: Vmid,
    timeout: Option<u64>,
    force: bool,
) -> Result<Payload, ErrorReply> {
    let timeout = timeout.unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT);
    on_running(daemon, caller, vmid, "vzshutdown", move |d, log| shutdown_now(d, vmid, timeout, force, log))
}

pub fn reboot(daemon: &Arc<Daemon>, caller: &Caller, vmid: Vmid, timeout: Option<u64>) -> Result<Payload, ErrorReply> {
    let timeout = timeout.unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT);
    on_running(daemon, caller, vmid, "vzreboot", move |d, log| {
        shutdown_now(d, vmid, timeout, true, log)?;
        start_now(d, vmid, log).map(|_| ())
    })
}

fn uptime(path: &Path) -> Option<u64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(modified.elapsed().ok()?.as_secs())
}

fn read_counter(path: PathBuf) -> u64 {
    std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

pub fn status(daemon: &Daemon, vmid: Vmid, verbose: bool) -> Result<Payload, ErrorReply> {
    let config = daemon.store.load(GuestKind::Ct, vmid)?.config;
    let runtime = &daemon.ct;
    let init = runtime.init_pid(vmid);
    let dir = runtime.ct_dir(vmid);
    // The cgroup layout is read only when its counters are asked for.
    let cgroups = (verbose && init.is_some())
        .then(|| Layout::detect().ok().map(|l| Cgroups::new(l, &runtime.cgroup(vmid))))
        .flatten();
    let (mut netin, mut netout) = (0, 0);
    if init.is_some() {
        for index in 0..MAX_NETS {
            let stats = Path::new("/sys/class/net").join(veth_name(vmid, index)).join("statistics");
            // The host end's receive is what the container sent.
            netout += read_counter(stats.join("rx_bytes"));
            netin += read_counter(stats.join("tx_bytes"));
        }
    }
    let last_exit = if init.is_none() {
        std::fs::read_to_string(monitor::exit_record(&dir)).ok().map(|s| s.trim().to_owned())
    } else {
        None
    };
    let running_and = |f: &dyn Fn(&Cgroups) -> Option<u64>| cgroups.as_ref().and_then(f);
    Ok(Payload::CtStatus(CtStatusReport {
        vmid,
        status: if init.is_some() { "running" } else { "stopped" }.into(),
        name: match config.current.get("hostname") {
            Some(Value::Str(h)) => Some(h.clone()),
            _ => None,
        },
        lock: config.lock.map(|l| l.to_string()),
        pid: init.map(|p| p as u32),
        monitor_pid: init.and(runtime.monitor_pid(vmid)).map(|p| p as u32),
        uptime: init.and_then(|_| uptime(&monitor::init_pid_file(&dir))),
        cpus: int(&config, "cores").unwrap_or(0) as u64,
        maxmem: (int(&config, "memory").unwrap_or(512) as u64) << 20,
        maxswap: (int(&config, "swap").unwrap_or(512) as u64) << 20,
        mem: running_and(&Cgroups::memory_usage),
        pids: running_and(&Cgroups::pids_current),
        cputime: running_and(&Cgroups::cpu_time),
        netin,
        netout,
        last_exit,
    }))
}

fn run_attach(daemon: &Daemon, vmid: Vmid, mode: AttachMode, stdio: [Stdio; 3]) -> Result<(i32, String), ErrorReply> {
    daemon.store.load(GuestKind::Ct, vmid)?;
    let init_pid = daemon.ct.require_running(vmid)?;
    // What the container runs with is what it was started with, not today's configuration.
    let running: ContainerSpec = std::fs::read_to_string(monitor::spec_file(&daemon.ct.ct_dir(vmid)))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .ok_or_else(|| err(ErrorKind::Internal, format!("CT {vmid}: the running container's spec is missing")))?;
    let spec = AttachSpec {
        init_pid,
        cgroup: running.cgroup.clone(),
        privileged: running.idmap.is_none(),
        features: running.features,
        mode,
    };
    let json = serde_json::to_string(&spec).map_err(|e| err(ErrorKind::Internal, e.to_string()))?;
    let [stdin, stdout, stderr] = stdio;
    let child = Command::new(&daemon.ct.ctmon)
        .arg("exec")
        .arg(json)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| err(ErrorKind::Internal, format!("cannot run {}: {e}", daemon.ct.ctmon.display())))?;
    let output = child.wait_with_output().map_err(|e| err(ErrorKind::Internal, e.to_string()))?;
    use std::os::unix::process::ExitStatusExt;
    let code = output.status.code().unwrap_or_else(|| 128 + output.status.signal().unwrap_or(9));
    Ok((code, String::from_utf8_lossy(&output.stderr).trim().to_owned()))
}

pub fn exec(daemon: &Daemon, req: ExecInCt, stdio: [File; 3]) -> Result<Payload, ErrorReply> {
    let [stdin, stdout, stderr] = stdio;
    let mode = AttachMode::Exec { command: req.command, env: req.env, term: req.term, winsize: req.winsize };
    let (code, _) = run_attach(daemon, req.vmid, mode, [stdin.into(), stdout.into(), stderr.into()])?;
    Ok(Payload::ExitStatus(code))
}

/// A numeric id or a name from the container's files is resolved inside the container; here
/// only numbers are taken (names would need the container's /etc/passwd).
fn numeric_id(what: &str, value: Option<String>) -> Result<u32, ErrorReply> {
    match value {
        None => Ok(0),
        Some(v) => v.parse().map_err(|_| err(ErrorKind::Invalid, format!("{what}: '{v}' is not a numeric id"))),
    }
}

fn absolute(path: &str) -> Result<(), ErrorReply> {
    if !path.starts_with('/') || path.contains('\0') {
        return Err(err(ErrorKind::Invalid, format!("'{path}': a path inside the container must be absolute")));
    }
    Ok(())
}

pub fn push(
    daemon: &Daemon,
    vmid: Vmid,
    path: &str,
    user: Option<String>,
    group: Option<String>,
    perms: Option<String>,
    file: File,
) -> Result<Payload, ErrorReply> {
    absolute(path)?;
    let uid = numeric_id("user", user)?;
    let gid = numeric_id("group", group)?;
    let mode = match perms {
        None => 0o644,
        Some(p) => u32::from_str_radix(&p, 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| err(ErrorKind::Invalid, format!("perms: '{p}' is not an octal mode")))?,
    };
    let mode = AttachMode::Push { path: path.to_owned(), uid, gid, mode };
    let (code, message) = run_attach(daemon, vmid, mode, [file.into(), Stdio::null(), Stdio::piped()])?;
    if code != 0 {
        return Err(err(ErrorKind::Invalid, format!("push to CT {vmid} failed: {message}")));
    }
    Ok(Payload::Empty)
}

pub fn pull(daemon: &Daemon, vmid: Vmid, path: &str, file: File) -> Result<Payload, ErrorReply> {
    absolute(path)?;
    let mode = AttachMode::Pull { path: path.to_owned() };
    let (code, message) = run_attach(daemon, vmid, mode, [Stdio::null(), file.into(), Stdio::piped()])?;
    if code != 0 {
        return Err(err(ErrorKind::NotFound, format!("pull from CT {vmid} failed: {message}")));
    }
    Ok(Payload::Empty)
}

fn mount_dir(daemon: &Daemon, vmid: Vmid) -> PathBuf {
    daemon.root.join("var/lib/hearth/lxc").join(vmid.to_string()).join("rootfs")
}

pub(crate) fn mount_volume(source: &RootFs, target: &Path) -> Result<(), ErrorReply> {
    std::fs::create_dir_all(target).map_err(|e| err(ErrorKind::Internal, format!("{}: {e}", target.display())))?;
    let (options, path) = match source {
        RootFs::Dir { path } => ("bind,nodev,nosuid", path),
        RootFs::Image { path, .. } => ("loop,nodev,nosuid", path),
    };
    let out = Command::new("mount")
        .args(["-o", options])
        .arg(path)
        .arg(target)
        .output()
        .map_err(|e| err(ErrorKind::Internal, format!("running mount: {e}")))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir(target);
        return Err(err(
            ErrorKind::Internal,
            format!("mounting {}: {}", path.display(), String::from_utf8_lossy(&out.stderr).trim()),
        ));
    }
    Ok(())
}

/// `pct mount`: the stopped container's rootfs on the host, locked `mounted` (root only, as the
/// table says).
pub fn mount(daemon: &Daemon, vmid: Vmid) -> Result<Payload, ErrorReply> {
    let config = check_startable(daemon, vmid)?;
    let spec = spec_for(daemon, vmid, &config)?;
    let target = mount_dir(daemon, vmid);
    let lock = daemon.ct.op_lock(vmid);
    let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
    daemon.store.update(GuestKind::Ct, vmid, None, |c| {
        if let Some(lock) = c.lock {
            return Err(err(ErrorKind::Locked, format!("CT {vmid} is locked ({lock})")));
        }
        c.lock = Some(hearth_core::Lock::Mounted);
        Ok(())
    })?;
    if let Err(e) = mount_volume(&spec.rootfs, &target) {
        let _ = daemon.store.update(GuestKind::Ct, vmid, None, |c| {
            c.lock = None;
            Ok(())
        });
        return Err(e);
    }
    Ok(Payload::Path(target.display().to_string()))
}

pub fn unmount(daemon: &Daemon, vmid: Vmid) -> Result<Payload, ErrorReply> {
    let config = daemon.store.load(GuestKind::Ct, vmid)?.config;
    if config.lock != Some(hearth_core::Lock::Mounted) {
        return Err(err(ErrorKind::Conflict, format!("CT {vmid} is not mounted")));
    }
    let target = mount_dir(daemon, vmid);
    let out = Command::new("umount").arg(&target).output().map_err(|e| err(ErrorKind::Internal, e.to_string()))?;
    if !out.status.success() && Path::new("/proc/self/mountinfo").exists() {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        if mounts.contains(&format!(" {} ", target.display())) {
            return Err(err(
                ErrorKind::Busy,
                format!("unmounting {}: {}", target.display(), String::from_utf8_lossy(&out.stderr).trim()),
            ));
        }
    }
    let _ = std::fs::remove_dir(&target);
    daemon.store.update(GuestKind::Ct, vmid, None, |c| {
        c.lock = None;
        Ok(())
    })?;
    Ok(Payload::Empty)
}

pub fn df(daemon: &Daemon, vmid: Vmid) -> Result<Payload, ErrorReply> {
    let config = daemon.store.load(GuestKind::Ct, vmid)?.config;
    daemon.ct.require_running(vmid)?;
    let monitor =
        daemon.ct.monitor_pid(vmid).ok_or_else(|| err(ErrorKind::Conflict, format!("CT {vmid} is not running")))?;
    // The volumes are mounted in the monitor's mount namespace; reach them through its root.
    let through =
        |path: &Path| PathBuf::from(format!("/proc/{monitor}/root")).join(path.strip_prefix("/").unwrap_or(path));
    let dir = daemon.ct.ct_dir(vmid);
    let mut entries = Vec::new();
    let mut add = |key: &str, volume: &str, inside: &str, mounted: PathBuf| {
        if let Ok(st) = nix::sys::statvfs::statvfs(&through(&mounted)) {
            let block = st.fragment_size();
            let total = st.blocks() * block;
            let avail = st.blocks_available() * block;
            let used = total.saturating_sub(st.blocks_free() * block);
            entries.push(DfEntry { key: key.into(), volume: volume.into(), path: inside.into(), total, used, avail });
        }
    };
    if let Some(value) = config.current.get("rootfs") {
        let p = props("rootfs", value)?;
        add("rootfs", p.get("volume").unwrap_or_default(), "/", monitor::rootfs_mount(&dir));
    }
    for (i, (key, value)) in config.current.iter().filter(|(k, _)| k.starts_with("mp")).enumerate() {
        let p = props(key, value)?;
        add(key, p.get("volume").unwrap_or_default(), p.get("mp").unwrap_or("/"), dir.join(format!("mp{i}")));
    }
    Ok(Payload::Df(entries))
}

/// Connects to the monitor's console socket (`tty` 0 is /dev/console).
pub fn open_console(daemon: &Daemon, vmid: Vmid, tty: u32) -> Result<std::os::unix::net::UnixStream, ErrorReply> {
    daemon.store.load(GuestKind::Ct, vmid)?;
    daemon.ct.require_running(vmid)?;
    let socket = monitor::console_socket(&daemon.ct.ct_dir(vmid), tty);
    std::os::unix::net::UnixStream::connect(&socket).map_err(|e| {
        let what = if tty == 0 { "console".to_owned() } else { format!("tty{tty}") };
        err(ErrorKind::NotFound, format!("CT {vmid} has no {what}: {e}"))
    })
}

/// Fills a new container's root file system from its template and writes the first-boot
/// settings (hostname, network, DNS, root password, ssh keys), both inside the container's
/// user namespace. Returns the detected distribution.
pub(crate) fn populate(
    daemon: &Daemon,
    vmid: Vmid,
    values: &[(String, Value)],
    ct: &hearth_proto::CtCreate,
    log: &dyn Fn(String),
) -> Result<Option<String>, String> {
    let mut config = daemon.store.load(GuestKind::Ct, vmid).map_err(|e| e.to_string())?.config;
    for (key, value) in values {
        config.current.insert(key.clone(), value.clone());
    }
    let (backend, vol) = daemon.storages.volume(&ct.ostemplate).map_err(|e| format!("ostemplate: {}", e.message))?;
    let is_template =
        matches!(&vol, VolName::File { content, .. } if *content == hearth_core::storage::Content::Vztmpl);
    if !is_template {
        return Err(format!("ostemplate: '{}' is not a container template (vztmpl) volume", ct.ostemplate));
    }
    let archive = backend.path(&vol).map_err(|e| format!("ostemplate: {e}"))?;
    if !archive.is_file() {
        return Err(format!("ostemplate: '{}' does not exist", ct.ostemplate));
    }
    let rootfs = config.current.get("rootfs").ok_or("rootfs: a container needs one")?;
    let rootfs = props("rootfs", rootfs).map_err(|e| e.message)?;
    let source =
        volume_source(daemon, vmid, "rootfs", rootfs.get("volume").unwrap_or_default()).map_err(|e| e.message)?;
    let idmap = flag(&config, "unprivileged", true).then(IdMap::unprivileged_default);
    let staging = daemon.ct.run_dir.join(format!("{vmid}.create"));
    let (target, mounted) = match &source {
        RootFs::Dir { path } => (path.clone(), false),
        RootFs::Image { .. } => {
            mount_volume(&source, &staging).map_err(|e| e.message)?;
            (staging.clone(), true)
        }
    };
    let result = (|| {
        log(format!("extracting {}", ct.ostemplate));
        let info = hearth_ct::template::extract(&daemon.ct.ctmon, &archive, &target, idmap.as_ref())
            .map_err(|e| format!("ostemplate: {e}"))?;
        log(format!("{} entries, {} bytes", info.entries, info.bytes));
        let ostype = ostype(&config).or(info.ostype.clone());
        let text = |key: &str| match config.current.get(key) {
            Some(Value::Str(s)) => Some(s.clone()),
            _ => None,
        };
        let mut nets = Vec::new();
        for (key, value) in config.current.iter().filter(|(k, _)| k.starts_with("net")) {
            let p = props(key, value).map_err(|e| e.message)?;
            let get = |k: &str| p.get(k).map(str::to_owned);
            nets.push(hearth_ct::setup::GuestNet {
                name: get("name").unwrap_or_else(|| "eth0".into()),
                ip: get("ip"),
                gw: get("gw"),
                ip6: get("ip6"),
                gw6: get("gw6"),
            });
        }
        let setup = hearth_ct::setup::GuestSetup {
            hostname: text("hostname").unwrap_or_else(|| format!("CT{vmid}")),
            ostype: ostype.clone(),
            nets,
            nameserver: text("nameserver"),
            searchdomain: text("searchdomain"),
            root_password_hash: ct.password.as_ref().map(|p| hearth_ct::setup::hash_password(p.expose())),
            ssh_public_keys: ct.ssh_public_keys.clone(),
            timezone: None,
        };
        hearth_ct::setup::apply(&daemon.ct.ctmon, &target, idmap.as_ref(), &setup).map_err(|e| e.to_string())?;
        Ok(ostype)
    })();
    if mounted {
        let _ = Command::new("umount").arg(&staging).status();
        let _ = std::fs::remove_dir(&staging);
    }
    result
}
