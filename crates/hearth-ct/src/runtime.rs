//! The container engine's runtime, as pct runs containers: a [`ContainerSpec`] built from the
//! [`Resources`] hearthd resolved, `hearth-ctmon` started to clone the container and stay its
//! parent, every monitor watched so that when one ends, however it ends, what it could not undo
//! (cgroups, a veth) is removed; monitors found again after hearthd restarts. It implements
//! [`GuestRuntime`](hearth_core::runtime::GuestRuntime).
//!
//! **Invariants:** a container is running exactly when `run/hearth/lxc/<ctid>/monitor.pid`
//! names a live hearth-ctmon and `init.pid` a live init, so hearthd can restart at any time
//! without touching containers and find them again. Start, stop and clean-up of one container
//! are serialised by one lock. Nothing here touches storage: volumes arrive resolved.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_core::guest::Section;
use hearth_core::propstr::PropertyString;
use hearth_core::runtime::{
    GuestRuntime, HotplugChange, Hotplugged, Launch, ResolvedVolume, Resources, RuntimeError, RuntimeErrorKind,
    RuntimeStatus, StartOptions,
};
use hearth_core::{GuestKind, Value, Vmid};

use crate::cgroup::{Cgroups, Layout};
use crate::monitor::{self, Report};
use crate::spec::{ContainerSpec, Features, IdMap, Limits, MountSpec, NetSpec, RootFs};

/// `ctctl shutdown` waits this long by default, as lxc-stop does.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a monitor may take to report that init runs.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How many `netN` keys a container can have.
pub const MAX_NETS: u32 = 10;

/// The containers of this node. Cheap to clone: watchers hold a copy.
#[derive(Clone, Debug)]
pub struct CtRuntime {
    /// `run/hearth/lxc`.
    run_dir: PathBuf,
    /// `var/log/hearth/lxc`.
    log_dir: PathBuf,
    /// The cgroup directory holding this node's containers: `hearth`, or `hearth-<hash>` for
    /// a node root other than `/` (test nodes), so two nodes on one host never meet.
    cgroup_base: String,
    ctmon: PathBuf,
    ops: Arc<Mutex<HashMap<Vmid, Arc<Mutex<()>>>>>,
    /// The containers this runtime watches (init and monitor), for listings: added at start or
    /// adoption, dropped when either process exits (at once, through their pidfds).
    running: Arc<hearth_sys::running::RunningSet<Vmid>>,
}

/// Where hearth-ctmon is: `$HEARTH_CTMON`, else where `cargo xtask install` puts it
/// (`PREFIX/lib/hearth`, next to hearthd's `PREFIX/sbin`), else next to the running program (or
/// one level up, for test binaries under `target/<profile>/deps`).
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

/// A `devN` passthrough from its properties and the host's node: it must exist and be a
/// character or block device.
fn device_spec(key: &str, p: &PropertyString) -> Result<crate::spec::DeviceSpec, RuntimeError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let path = p.get("path").ok_or_else(|| RuntimeError::invalid(format!("{key}: no path")))?;
    let meta = std::fs::metadata(path)
        .map_err(|e| RuntimeError::invalid(format!("{key}: {path} is not there on this host: {e}")))?;
    let block = meta.file_type().is_block_device();
    if !block && !meta.file_type().is_char_device() {
        return Err(RuntimeError::invalid(format!("{key}: {path} is not a device node")));
    }
    let rdev = meta.rdev();
    let number = |p: Option<&str>| p.and_then(|v| v.parse::<u32>().ok());
    Ok(crate::spec::DeviceSpec {
        name: path.trim_start_matches("/dev/").to_owned(),
        block,
        major: nix::sys::stat::major(rdev) as u32,
        minor: nix::sys::stat::minor(rdev) as u32,
        mode: p.get("mode").and_then(|m| u32::from_str_radix(m, 8).ok()).unwrap_or(meta.mode() & 0o777),
        uid: number(p.get("uid")).unwrap_or(0),
        gid: number(p.get("gid")).unwrap_or(0),
        readonly: p.get("deny-write") == Some("1"),
    })
}

/// `veth<ctid>i<N>`, as Proxmox names the host end.
pub fn veth_name(vmid: Vmid, index: u32) -> String {
    format!("veth{vmid}i{index}")
}

impl CtRuntime {
    /// Prepares `run/hearth/lxc` and `var/log/hearth/lxc` under the node root.
    pub fn open(root: &Path) -> std::io::Result<CtRuntime> {
        let root = std::fs::canonicalize(root)?;
        let run_dir = root.join("run/hearth/lxc");
        std::fs::create_dir_all(&run_dir)?;
        // Traversable by container roots (their rootfs mount lies below), not listable.
        std::fs::set_permissions(&run_dir, std::os::unix::fs::PermissionsExt::from_mode(0o711))?;
        let log_dir = root.join("var/log/hearth/lxc");
        std::fs::create_dir_all(&log_dir)?;
        let cgroup_base = cgroup_base(&root)?;
        Ok(CtRuntime {
            run_dir,
            log_dir,
            cgroup_base,
            ctmon: find_ctmon(),
            ops: Arc::default(),
            running: Arc::default(),
        })
    }

    /// `run/hearth/lxc`: each running container's directory, and staging mounts.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The hearth-ctmon program.
    pub fn ctmon(&self) -> &Path {
        &self.ctmon
    }

    pub fn ct_dir(&self, vmid: Vmid) -> PathBuf {
        self.run_dir.join(vmid.to_string())
    }

    pub fn cgroup(&self, vmid: Vmid) -> String {
        format!("{}/{vmid}", self.cgroup_base)
    }

    fn lock(&self, vmid: Vmid) -> Arc<Mutex<()>> {
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

    /// The host CPUs a running container's cpuset allows; `None` when it is not running or
    /// the host has no cpuset controller.
    pub fn cpu_list(&self, vmid: Vmid) -> Option<Vec<u32>> {
        self.init_pid(vmid)?;
        let layout = Layout::detect().ok()?;
        Cgroups::new(layout, &self.cgroup(vmid)).cpu_list()
    }

    fn require_running(&self, vmid: Vmid) -> Result<i32, RuntimeError> {
        self.init_pid(vmid).ok_or_else(|| RuntimeError::not_running(GuestKind::Ct, vmid))
    }

    /// Removes what a monitor that is gone left: cgroups, veths, run files. Holds the run
    /// lock, and does nothing if a monitor runs again by then.
    pub fn clean_up(&self, vmid: Vmid) {
        let lock = self.lock(vmid);
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
            if Path::new("/sys/class/net").join(&host).exists()
                && let Ok(mut nl) = hearth_net::Netlink::open()
            {
                let _ = nl.delete_link(&host);
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
    fn watch(&self, vmid: Vmid, mut child: Option<std::process::Child>, pid: i32, init: Option<i32>) {
        let runtime = self.clone();
        // Recorded before this returns, so a listing right after a start shows it running.
        let init = init.and_then(|p| u32::try_from(p).ok());
        let monitor = u32::try_from(pid).ok();
        if let (Some(init), Some(monitor)) = (init, monitor) {
            self.running.insert(vmid, &[init, monitor]);
        }
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
            if let Some(init) = init {
                runtime.running.remove(vmid, init);
            }
            runtime.clean_up(vmid);
        });
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

    fn signal_init(&self, vmid: Vmid, signal: i32) -> Result<(), RuntimeError> {
        let Some(pid) = self.init_pid(vmid) else { return Ok(()) };
        let pidfd = hearth_sys::process::pidfd_open(pid).map_err(|e| RuntimeError::failed(e.to_string()))?;
        hearth_sys::process::pidfd_send_signal(pidfd.as_fd(), signal).map_err(|e| RuntimeError::failed(e.to_string()))
    }

    /// Kills the container and waits for its monitor to finish tearing down.
    fn kill(&self, vmid: Vmid) -> Result<(), RuntimeError> {
        self.signal_init(vmid, libc::SIGKILL)?;
        if !self.wait_stopped(vmid, Duration::from_secs(30)) {
            return Err(RuntimeError::failed(format!("CT {vmid} did not stop within 30 s")));
        }
        self.clean_up_locked(vmid);
        Ok(())
    }

    /// The runtime's view of a container's configuration; refuses what the host cannot give.
    pub fn spec(&self, resources: &Resources) -> Result<ContainerSpec, RuntimeError> {
        let vmid = resources.vmid;
        let config = &resources.config;
        let volume = |key: &str| -> Result<RootFs, RuntimeError> {
            match resources.volumes.get(key) {
                Some(volume) => Ok(root_fs(volume)),
                None => Err(RuntimeError::invalid(format!("{key}: no volume"))),
            }
        };
        if !config.contains_key("rootfs") {
            return Err(RuntimeError::invalid(format!("CT {vmid} has no rootfs")));
        }
        let rootfs = volume("rootfs")?;
        let mut mounts = Vec::new();
        for (key, value) in config.iter().filter(|(k, _)| k.starts_with("mp")) {
            let p = props(key, value)?;
            mounts.push(MountSpec {
                source: volume(key)?,
                target: p.get("mp").unwrap_or("/").to_owned(),
                readonly: p.get("ro") == Some("1"),
            });
        }
        let memory = int(config, "memory").unwrap_or(512) as u64;
        let swap = int(config, "swap").unwrap_or(512) as u64;
        let host_mib = host_memory_mib();
        if memory > host_mib {
            return Err(RuntimeError::invalid(format!("memory: {memory} MiB asked, the host has {host_mib} MiB")));
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        let cores = int(config, "cores").map(|c| c as u32);
        if let Some(cores) = cores
            && u64::from(cores) > cpus
        {
            return Err(RuntimeError::invalid(format!("cores: {cores} asked, the host has {cpus} CPUs")));
        }
        let cpulimit = match config.get("cpulimit") {
            Some(Value::Float(f)) => Some(*f),
            Some(Value::Int(i)) => Some(*i as f64),
            _ => None,
        };
        if let Some(limit) = cpulimit
            && limit > cpus as f64
        {
            return Err(RuntimeError::invalid(format!("cpulimit: {limit} asked, the host has {cpus} CPUs")));
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
        for (key, value) in config.iter().filter(|(k, _)| k.starts_with("net")) {
            nets.push(net_spec(vmid, config, key, value)?);
        }
        let features = match config.get("features") {
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
        let mut devices = Vec::new();
        for (key, value) in config
            .iter()
            .filter(|(k, _)| k.starts_with("dev") && k.len() > 3 && k[3..].bytes().all(|b| b.is_ascii_digit()))
        {
            devices.push(device_spec(key, &props(key, value)?)?);
        }
        let entrypoint = config.get("entrypoint").and_then(Value::as_str).unwrap_or("/sbin/init");
        let mut words = entrypoint.split_whitespace().map(str::to_owned);
        let init = words.next().unwrap_or_else(|| "/sbin/init".to_owned());
        let init_args: Vec<String> = words.collect();
        let hostname = match config.get("hostname") {
            Some(Value::Str(h)) => h.clone(),
            _ => format!("CT{vmid}"),
        };
        Ok(ContainerSpec {
            ctid: vmid.get(),
            hostname,
            run_dir: self.ct_dir(vmid),
            log: self.log_dir.join(format!("{vmid}.log")),
            rootfs,
            mounts,
            idmap: flag(config, "unprivileged", true).then(IdMap::unprivileged_default),
            cgroup: self.cgroup(vmid),
            limits,
            nets,
            features,
            ttys: int(config, "tty").unwrap_or(2) as u32,
            console: flag(config, "console", true),
            init,
            init_args,
            devices,
            env: config.get("env").and_then(Value::as_str).map(hearth_core::ct::env_entries).unwrap_or_default(),
        })
    }

    /// Starts the container from its spec and returns once its init runs.
    fn start(&self, vmid: Vmid, spec: &ContainerSpec, log: &dyn Fn(String)) -> Result<u32, RuntimeError> {
        self.clean_up_locked(vmid);
        let json = serde_json::to_string(spec).map_err(|e| RuntimeError::failed(e.to_string()))?;
        let logfile = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .map_err(|e| RuntimeError::failed(e.to_string()))?;
        let mut child = Command::new(&self.ctmon)
            .arg("monitor")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(logfile))
            .spawn()
            .map_err(|e| RuntimeError::failed(format!("cannot run {}: {e}", self.ctmon.display())))?;
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
                self.watch(vmid, Some(child), monitor_pid, Some(init_pid));
                Ok(u32::try_from(init_pid).unwrap_or(0))
            }
            Ok(Report::Error(message)) => {
                let _ = child.wait();
                self.clean_up_locked(vmid);
                Err(RuntimeError::failed(format!("CT {vmid}: {message}")))
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                self.clean_up_locked(vmid);
                Err(RuntimeError::failed(format!(
                    "CT {vmid}: hearth-ctmon ended without a report (see {})",
                    spec.log.display()
                )))
            }
        }
    }
}

impl CtRuntime {
    /// A NIC into or out of a running container; a changed NIC moves to its new bridge when
    /// nothing the container sees (name, MAC, addresses, MTU) changes, else it waits.
    fn hotplug_nic(
        &self,
        vmid: Vmid,
        init: i32,
        change: &HotplugChange,
        merged: &Section,
        log: &dyn Fn(String),
    ) -> Result<Hotplugged, RuntimeError> {
        let key = change.key.as_str();
        let net_error = |e: crate::net::NetError| RuntimeError::failed(format!("{key}: {e}"));
        match (&change.current, &change.wanted) {
            (None, Some(value)) => {
                let net = net_spec(vmid, merged, key, value)?;
                crate::net::attach(&net, init).map_err(net_error)?;
                log(format!("{key}: {} plugged", net.host_name));
            }
            (Some(value), None) => {
                let net = net_spec(vmid, &change.config, key, value)?;
                crate::net::detach(&net).map_err(net_error)?;
                log(format!("{key}: {} unplugged", net.host_name));
            }
            (Some(old), Some(new)) => {
                let (old_p, new_p) = (props(key, old)?, props(key, new)?);
                let same = |p: &str| old_p.get(p) == new_p.get(p);
                let wiring_only =
                    ["name", "hwaddr", "ip", "gw", "ip6", "gw6", "mtu", "link_down", "type"].iter().all(|p| same(p));
                if !wiring_only {
                    return Ok(Hotplugged::Pending);
                }
                if !["bridge", "tag", "trunks", "rate"].iter().all(|p| same(p)) {
                    let net = net_spec(vmid, merged, key, new)?;
                    crate::net::replug(&net).map_err(net_error)?;
                    log(format!(
                        "{key}: {} plugged into bridge {}",
                        net.host_name,
                        net.bridge.as_deref().unwrap_or("")
                    ));
                }
            }
            (None, None) => {}
        }
        Ok(Hotplugged::Live)
    }
}

/// The veth of NIC `key` (`netN`) as the configuration describes it; refuses a missing bridge.
pub fn net_spec(vmid: Vmid, config: &Section, key: &str, value: &Value) -> Result<NetSpec, RuntimeError> {
    let guest_configures_network = !crate::setup::needs_host_network_config(ostype(config).as_deref());
    let index: u32 = key.trim_start_matches("net").parse().unwrap_or(0);
    let p = props(key, value)?;
    let bridge = p.get("bridge").map(str::to_owned);
    if let Some(bridge) = &bridge {
        crate::net::check_bridge(bridge).map_err(|e| RuntimeError::invalid(format!("{key}: {e}")))?;
    }
    let cidr = |ip: Option<&str>| ip.filter(|v| v.contains('/')).map(str::to_owned);
    let host_ipv4 =
        if guest_configures_network { None } else { cidr(p.get("ip")).map(|c| (c, p.get("gw").map(str::to_owned))) };
    let host_ipv6 =
        if guest_configures_network { None } else { cidr(p.get("ip6")).map(|c| (c, p.get("gw6").map(str::to_owned))) };
    Ok(NetSpec {
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
        rate: p.get("rate").and_then(|r| r.parse().ok()),
    })
}

/// What the runtime mounts for a resolved volume.
pub fn root_fs(volume: &ResolvedVolume) -> RootFs {
    match volume {
        ResolvedVolume::HostPath(path) => RootFs::Dir { path: path.clone() },
        ResolvedVolume::Storage { path, directory: true, .. } => RootFs::Dir { path: path.clone() },
        ResolvedVolume::Storage { path, .. } => RootFs::Image { path: path.clone(), fstype: "ext4".into() },
    }
}

fn props(key: &str, value: &Value) -> Result<PropertyString, RuntimeError> {
    GuestKind::Ct.schema().property(key, value).ok_or_else(|| RuntimeError::invalid(format!("{key}: cannot be parsed")))
}

fn flag(config: &Section, key: &str, default: bool) -> bool {
    match config.get(key) {
        Some(Value::Bool(b)) => *b,
        _ => default,
    }
}

fn int(config: &Section, key: &str) -> Option<i64> {
    match config.get(key) {
        Some(Value::Int(i)) => Some(*i),
        _ => None,
    }
}

/// The configured `ostype`, if any.
pub fn ostype(config: &Section) -> Option<String> {
    match config.get("ostype") {
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

fn host_memory_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("MemTotal:")).map(str::to_owned))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(u64::MAX, |kib| kib / 1024)
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

fn uptime(path: &Path) -> Option<u64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(modified.elapsed().ok()?.as_secs())
}

fn read_counter(path: PathBuf) -> u64 {
    std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// A container start, prepared: its spec.
#[derive(Debug)]
pub struct CtLaunch {
    runtime: CtRuntime,
    spec: ContainerSpec,
    vmid: Vmid,
}

impl Launch for CtLaunch {
    fn vmid(&self) -> Vmid {
        self.vmid
    }

    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }

    fn describe(&self, pretty: bool) -> String {
        let json = if pretty { serde_json::to_string_pretty(&self.spec) } else { serde_json::to_string(&self.spec) };
        json.unwrap_or_default()
    }

    fn run(self: Box<Self>, log: &dyn Fn(String)) -> Result<u32, RuntimeError> {
        if self.runtime.monitor_pid(self.vmid).is_some() {
            return Err(RuntimeError::already_running(GuestKind::Ct, self.vmid));
        }
        self.runtime.start(self.vmid, &self.spec, log)
    }
}

impl GuestRuntime for CtRuntime {
    fn kind(&self) -> GuestKind {
        GuestKind::Ct
    }

    fn default_shutdown_timeout(&self) -> Duration {
        DEFAULT_SHUTDOWN_TIMEOUT
    }

    fn op_lock(&self, vmid: Vmid) -> Arc<Mutex<()>> {
        self.lock(vmid)
    }

    fn pid(&self, vmid: Vmid) -> Option<u32> {
        self.init_pid(vmid).and_then(|p| u32::try_from(p).ok())
    }

    fn running_guests(&self) -> Option<std::collections::BTreeMap<Vmid, u32>> {
        use hearth_sys::running::Recheck;
        // A reboot inside the container replaces its init under the same monitor.
        Some(self.running.running_rechecked(|vmid| match self.monitor_pid(vmid) {
            None => Recheck::Gone,
            Some(monitor) => match self.init_pid(vmid) {
                Some(init) => Recheck::Running(vec![init as u32, monitor as u32]),
                None => Recheck::NotNow,
            },
        }))
    }

    fn prepare(&self, resources: Resources, _options: &StartOptions) -> Result<Box<dyn Launch>, RuntimeError> {
        let spec = self.spec(&resources)?;
        Ok(Box::new(CtLaunch { runtime: self.clone(), spec, vmid: resources.vmid }))
    }

    fn stop(&self, vmid: Vmid) -> Result<(), RuntimeError> {
        self.require_running(vmid)?;
        self.kill(vmid)
    }

    fn shutdown(&self, vmid: Vmid, timeout: Duration, log: &dyn Fn(String)) -> Result<(), RuntimeError> {
        let Some(init) = self.init_pid(vmid) else { return Ok(()) };
        let signal = halt_signal(init);
        log(format!("asking init to power off (signal {signal})"));
        self.signal_init(vmid, signal)?;
        if self.wait_stopped(vmid, timeout) {
            self.clean_up_locked(vmid);
            log(format!("CT {vmid} shut down"));
            return Ok(());
        }
        Err(RuntimeError::new(
            RuntimeErrorKind::TimedOut,
            format!("CT {vmid} did not shut down within {} s", timeout.as_secs()),
        ))
    }

    /// As pct: a shutdown that kills the container when the time is up, then a start.
    fn reboot(
        &self,
        vmid: Vmid,
        timeout: Duration,
        launch: Box<dyn Launch>,
        log: &dyn Fn(String),
    ) -> Result<u32, RuntimeError> {
        match self.shutdown(vmid, timeout, log) {
            Err(e) if e.kind == RuntimeErrorKind::TimedOut => {
                log(format!("{e}; killing it"));
                self.kill(vmid)?;
            }
            other => other?,
        }
        launch.run(log)
    }

    fn pause(&self, vmid: Vmid) -> Result<(), RuntimeError> {
        self.require_running(vmid)?;
        self.freeze(vmid, true).map_err(RuntimeError::failed)
    }

    fn resume(&self, vmid: Vmid) -> Result<(), RuntimeError> {
        self.require_running(vmid)?;
        self.freeze(vmid, false).map_err(RuntimeError::failed)
    }

    fn status(&self, vmid: Vmid, verbose: bool) -> RuntimeStatus {
        let init = self.init_pid(vmid);
        let dir = self.ct_dir(vmid);
        let mut status = RuntimeStatus::default();
        let Some(init) = init else {
            status.last_exit = std::fs::read_to_string(monitor::exit_record(&dir)).ok().map(|s| s.trim().to_owned());
            return status;
        };
        status.pid = u32::try_from(init).ok();
        status.monitor_pid = self.monitor_pid(vmid).and_then(|p| u32::try_from(p).ok());
        status.uptime = uptime(&monitor::init_pid_file(&dir));
        for index in 0..MAX_NETS {
            let stats = Path::new("/sys/class/net").join(veth_name(vmid, index)).join("statistics");
            // The host end's receive is what the container sent.
            status.netout += read_counter(stats.join("rx_bytes"));
            status.netin += read_counter(stats.join("tx_bytes"));
        }
        // The cgroup layout is read only when its counters are asked for.
        if verbose && let Ok(layout) = Layout::detect() {
            let cgroups = Cgroups::new(layout, &self.cgroup(vmid));
            status.mem = cgroups.memory_usage();
            status.pids = cgroups.pids_current();
            status.cputime = cgroups.cpu_time();
        }
        status
    }

    /// pct's live changes: memory, swap, cores, cpulimit and cpuunits in the cgroups; NICs
    /// plugged into (or out of) the container's network namespace, moved between bridges.
    /// Everything else waits for the next start.
    fn hotplug(&self, vmid: Vmid, change: &HotplugChange, log: &dyn Fn(String)) -> Result<Hotplugged, RuntimeError> {
        let init = self.require_running(vmid)?;
        let key = change.key.as_str();
        let mut merged = change.config.clone();
        match &change.wanted {
            Some(value) => merged.insert(key.to_owned(), value.clone()),
            None => merged.remove(key),
        };
        let cgroups = || -> Result<Cgroups, RuntimeError> {
            let layout = Layout::detect().map_err(|e| RuntimeError::failed(e.to_string()))?;
            Ok(Cgroups::new(layout, &self.cgroup(vmid)))
        };
        let cgroup_error = |e: crate::cgroup::CgroupError| RuntimeError::failed(e.to_string());
        match key {
            "memory" | "swap" => {
                let memory = int(&merged, "memory").unwrap_or(512) as u64;
                let swap = int(&merged, "swap").unwrap_or(512) as u64;
                let host_mib = host_memory_mib();
                if memory > host_mib {
                    return Err(RuntimeError::invalid(format!(
                        "memory: {memory} MiB asked, the host has {host_mib} MiB"
                    )));
                }
                cgroups()?.set_memory(memory << 20, swap << 20).map_err(cgroup_error)?;
                log(format!("memory {memory} MiB, swap {swap} MiB"));
            }
            "cpulimit" => {
                let limit = match merged.get("cpulimit") {
                    Some(Value::Float(f)) => Some(*f),
                    Some(Value::Int(i)) => Some(*i as f64),
                    _ => None,
                };
                cgroups()?.set_cpulimit(limit).map_err(cgroup_error)?;
            }
            "cpuunits" => {
                cgroups()?.set_cpuunits(int(&merged, "cpuunits").map(|u| u as u64)).map_err(cgroup_error)?;
            }
            "cores" => cgroups()?.set_cores(int(&merged, "cores").map(|c| c as u32)).map_err(cgroup_error)?,
            _ if key.starts_with("net") => return self.hotplug_nic(vmid, init, change, &merged, log),
            _ => return Ok(Hotplugged::Pending),
        }
        Ok(Hotplugged::Live)
    }

    fn adopt(&self) -> Vec<Vmid> {
        let mut running = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.run_dir) else { return running };
        for entry in entries.flatten() {
            // A create that hearthd did not live to finish leaves its staging mount.
            if entry.file_name().to_string_lossy().ends_with(".create") {
                let _ = Command::new("umount").arg(entry.path()).stderr(Stdio::null()).status();
                let _ = std::fs::remove_dir(entry.path());
                continue;
            }
            let Some(vmid) = entry.file_name().to_str().and_then(|n| n.parse::<Vmid>().ok()) else { continue };
            match self.monitor_pid(vmid) {
                Some(pid) => {
                    self.watch(vmid, None, pid, self.init_pid(vmid));
                    running.push(vmid);
                }
                None => self.clean_up(vmid),
            }
        }
        running
    }
}
