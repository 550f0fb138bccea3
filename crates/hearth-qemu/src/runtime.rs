//! The QEMU engine's runtime, as qm runs VMs: the command line from [`Resources`] hearthd
//! resolved, QEMU started paused and daemonized, its taps put into their bridges, then let go;
//! stopped, shut down, paused and resumed through QMP; watched so a guest that powers off or
//! dies is cleaned up; found again after hearthd restarts. It implements
//! [`GuestRuntime`](hearth_core::runtime::GuestRuntime).
//!
//! **Invariants:** a VM is running exactly when the pidfile in `run/hearth/qemu/` names a live
//! QEMU process whose command line carries this VM's QMP socket, so hearthd can restart at any
//! time and find its VMs again without touching them. Taps are created by QEMU itself and vanish
//! with its process, so no tap outlives its VM; their names are chosen here only. Nothing here
//! touches storage: volumes arrive resolved.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_core::guest::Section;
use hearth_core::runtime::{
    GuestRuntime, HotplugChange, Hotplugged, Launch, ResolvedVolume, Resources, RuntimeError, RuntimeErrorKind,
    RuntimeStatus, StartOptions,
};
use hearth_core::storage::Format;
use hearth_core::{GuestKind, Value, Vmid};

use crate::cmdline::{QemuCommand, Resolved, ResolvedDrive, RunPaths, tap_name};
use crate::qmp::Qmp;

mod hotplug;

/// How long QEMU gets to answer on its monitor after it daemonized.
const QMP_READY: Duration = Duration::from_secs(10);
/// How long a start waits for QEMU when the caller names no time.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// `vmctl shutdown` waits this long by default, as qm does.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(180);

/// The QEMU processes of this node. Cheap to clone: watchers hold a copy.
#[derive(Clone, Debug)]
pub struct QemuRuntime {
    run_dir: PathBuf,
    /// `var/lib/hearth/efivars`: each OVMF VM's EFI variables, kept across starts.
    efivars_dir: PathBuf,
    kvm: bool,
    /// The cgroup directory VMs with `cpulimit`/`cpuunits` get theirs under: `hearth` for the
    /// host's root, `hearth-<hash of the root>` for a test node's.
    cgroup_base: String,
    /// One lock per VM, held while it is started or stopped.
    ops: Arc<Mutex<HashMap<Vmid, Arc<Mutex<()>>>>>,
    /// The VMs this runtime watches, for listings: added when a watch starts, dropped when
    /// QEMU exits (at once, through its pidfd, however it ended).
    running: Arc<hearth_sys::running::RunningSet<Vmid>>,
}

impl QemuRuntime {
    /// Prepares `run/hearth/qemu` under the node root and notes whether KVM can run guests
    /// here (not with the software-only kvm_pvm module, whose guests cannot boot a stock kernel).
    pub fn open(root: &Path) -> std::io::Result<QemuRuntime> {
        let root = std::fs::canonicalize(root)?;
        let run_dir = root.join("run/hearth/qemu");
        std::fs::create_dir_all(&run_dir)?;
        // QMP, VNC and serial sockets give full control of a guest: root only, whatever the umask.
        std::fs::set_permissions(&run_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let efivars_dir = root.join("var/lib/hearth/efivars");
        let kvm = Path::new("/dev/kvm").exists() && !Path::new("/sys/module/kvm_pvm").exists();
        let cgroup_base = if root == Path::new("/") {
            "hearth".to_owned()
        } else {
            // FNV-1a of the root: stable, and distinct for each test node's root.
            let hash = root
                .as_os_str()
                .as_encoded_bytes()
                .iter()
                .fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193));
            format!("hearth-q{hash:08x}")
        };
        Ok(QemuRuntime { run_dir, efivars_dir, kvm, cgroup_base, ops: Arc::default(), running: Arc::default() })
    }

    pub fn paths(&self, vmid: Vmid) -> RunPaths {
        RunPaths::new(&self.run_dir, vmid)
    }

    /// The VM's cgroup below a hierarchy's mount, for `cpulimit` and `cpuunits`.
    fn cgroup_dir(&self, mount: &Path, vmid: Vmid) -> PathBuf {
        mount.join(&self.cgroup_base).join(format!("qemu-{vmid}"))
    }

    fn events_socket(&self, vmid: Vmid) -> PathBuf {
        self.run_dir.join(format!("{vmid}.qmp-event"))
    }

    fn lock(&self, vmid: Vmid) -> Arc<Mutex<()>> {
        let mut ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(ops.entry(vmid).or_default())
    }

    /// The pid of the VM's QEMU, if it runs.
    pub fn qemu_pid(&self, vmid: Vmid) -> Option<u32> {
        let paths = self.paths(vmid);
        let pid: u32 = std::fs::read_to_string(paths.pidfile()).ok()?.trim().parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let qmp = paths.qmp();
        let needle = qmp.to_string_lossy();
        // A recycled pid belongs to another process; only our QEMU names our QMP socket.
        let ours = cmdline.split(|b| *b == 0).any(|arg| String::from_utf8_lossy(arg).contains(needle.as_ref()));
        ours.then_some(pid)
    }

    /// The VM's own copy of OVMF's variable store, made from the template at first use.
    fn efivars(&self, vmid: Vmid) -> Result<PathBuf, String> {
        let path = self.efivars_dir.join(format!("{vmid}.fd"));
        if !path.exists() {
            std::fs::create_dir_all(&self.efivars_dir).map_err(|e| e.to_string())?;
            let template = Path::new(crate::cmdline::OVMF_VARS_TEMPLATE);
            let temp = self.efivars_dir.join(format!(".{vmid}.fd.tmp"));
            std::fs::copy(template, &temp)
                .and_then(|_| std::fs::rename(&temp, &path))
                .map_err(|e| format!("cannot copy {} (install ovmf): {e}", template.display()))?;
        }
        Ok(path)
    }

    /// Forgets a destroyed VM's EFI variables.
    pub fn forget(&self, vmid: Vmid) {
        let _ = std::fs::remove_file(self.efivars_dir.join(format!("{vmid}.fd")));
    }

    /// Removes what a QEMU that is gone left in the run directory, and its taps.
    pub fn clean_up(&self, vmid: Vmid) {
        let paths = self.paths(vmid);
        stop_swtpm(&paths);
        let mut files = vec![
            paths.pidfile(),
            paths.qmp(),
            paths.vnc(),
            paths.qga(),
            self.events_socket(vmid),
            paths.swtpm(),
            paths.swtpm_pidfile(),
        ];
        files.extend((0..4).map(|i| paths.serial(i)));
        for file in files {
            let _ = std::fs::remove_file(file);
        }
        for mount in [Path::new("/sys/fs/cgroup/cpu"), Path::new("/sys/fs/cgroup")] {
            let _ = std::fs::remove_dir(self.cgroup_dir(mount, vmid));
        }
        // The kernel removes a tap when QEMU's descriptor closes, but not always at once; a
        // tap left over would block the next start with "Device or resource busy".
        for tap in taps_of(vmid) {
            delete_tap(&tap);
        }
    }

    /// Watches a running VM through its event monitor: a guest that powers off is quit (QEMU
    /// runs with -no-shutdown), and when the process is gone its files are removed.
    fn supervise(&self, vmid: Vmid) {
        let runtime = self.clone();
        // Recorded before this returns, so a listing right after a start shows the VM running.
        let watched = self.qemu_pid(vmid);
        if let Some(pid) = watched {
            self.running.insert(vmid, &[pid]);
        }
        let spawned = std::thread::Builder::new().name(format!("qemu-{vmid}")).spawn(move || {
            let forget = |runtime: &QemuRuntime| {
                if let Some(pid) = watched {
                    runtime.running.remove(vmid, pid);
                }
            };
            let socket = runtime.events_socket(vmid);
            let Ok(mut qmp) = Qmp::connect(&socket) else {
                if runtime.qemu_pid(vmid).is_none() {
                    forget(&runtime);
                    runtime.clean_up(vmid);
                }
                return;
            };
            loop {
                match qmp.wait_event("SHUTDOWN", Duration::from_secs(3600)) {
                    Ok(event) => {
                        tracing::info!(%vmid, data = %event.data, "guest shut down; quitting QEMU");
                        let _ = qmp.quit();
                    }
                    Err(crate::QmpError::Timeout { .. }) => {}
                    Err(_) => break,
                }
            }
            // The monitor closed: QEMU exited. Wait for the pid to go before cleaning up.
            let deadline = Instant::now() + Duration::from_secs(10);
            while runtime.qemu_pid(vmid) == watched && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            forget(&runtime);
            // Under the run lock, and only if no new QEMU of this VM has started meanwhile: its
            // files and taps are not this watcher's to remove.
            let lock = runtime.lock(vmid);
            let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
            if runtime.qemu_pid(vmid).is_none() {
                runtime.clean_up(vmid);
                tracing::info!(%vmid, "VM stopped");
            }
        });
        if let Err(e) = spawned {
            tracing::error!(%vmid, error = %e, "cannot watch the VM");
        }
    }

    /// A QMP connection to the running VM's monitor.
    pub fn qmp(&self, vmid: Vmid) -> Result<Qmp, RuntimeError> {
        Qmp::connect(&self.paths(vmid).qmp()).map_err(|e| {
            RuntimeError::new(RuntimeErrorKind::Unavailable, format!("VM {vmid}: cannot reach QEMU's monitor: {e}"))
        })
    }

    fn require_running(&self, vmid: Vmid) -> Result<u32, RuntimeError> {
        self.qemu_pid(vmid).ok_or_else(|| RuntimeError::not_running(GuestKind::Vm, vmid))
    }

    /// Waits until the VM's QEMU is gone.
    fn wait_exit(&self, vmid: Vmid, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.qemu_pid(vmid).is_some() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }

    /// Ends QEMU: `quit` on the monitor, then SIGKILL if it does not go.
    fn kill(&self, vmid: Vmid) -> Result<(), RuntimeError> {
        if let Ok(mut qmp) = Qmp::connect_with_timeout(&self.paths(vmid).qmp(), Duration::from_secs(3)) {
            let _ = qmp.quit();
        }
        if !self.wait_exit(vmid, Duration::from_secs(10)) {
            if let Some(pid) = self.qemu_pid(vmid) {
                let pid = i32::try_from(pid).map_err(|e| RuntimeError::failed(e.to_string()))?;
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            if !self.wait_exit(vmid, Duration::from_secs(5)) {
                return Err(RuntimeError::failed(format!("QEMU of VM {vmid} does not exit")));
            }
        }
        self.clean_up(vmid);
        Ok(())
    }

    /// The QEMU command line for the resources: started paused (`-S`), with a second monitor
    /// for the watcher, and the `args:` the root user configured.
    fn command(&self, resources: &Resources, options: &StartOptions) -> Result<(QemuCommand, Vec<TapPlug>), String> {
        let vmid = resources.vmid;
        let config = &resources.config;
        let mut resolved = Resolved::new(&self.run_dir, self.kvm);
        for (key, volume) in &resources.volumes {
            let drive = match volume {
                ResolvedVolume::HostPath(path) => ResolvedDrive::file(path, Format::Raw),
                ResolvedVolume::Storage { path, format, .. } => ResolvedDrive::file(path, *format),
            };
            resolved.drives.insert(key.clone(), drive);
        }
        let taps = tap_plugs(vmid, config)?;
        for plug in &taps {
            resolved.taps.insert(plug.key.clone(), plug.tap.clone());
        }
        let events = self.events_socket(vmid);
        resolved.extra = vec![
            "-S".into(),
            "-chardev".into(),
            format!("socket,id=qmp-event,path={},server=on,wait=off", events.display()),
            "-mon".into(),
            "chardev=qmp-event,mode=control".into(),
        ];
        if let Some(args) = config.get("args").and_then(Value::as_str) {
            resolved.extra.extend(split_args(args)?);
        }
        if config.get("bios").and_then(Value::as_str) == Some("ovmf") {
            resolved.efivars = Some(ResolvedDrive::file(self.efivars(vmid)?, Format::Raw));
        }
        if let Some(ResolvedVolume::Storage { format, .. }) = resources.volumes.get("tpmstate0")
            && *format != Format::Raw
        {
            return Err(format!("tpmstate0: swtpm keeps its state in a raw volume, not {format}"));
        }
        let mut command = crate::build(vmid, config, &resolved).map_err(|e| e.to_string())?;
        if let Some(state) = &options.resume_state {
            command.args.extend(["-loadvm".to_owned(), state.clone()]);
        }
        if let Some(state) = &options.incoming {
            // QEMU 7.2 has no file: migration URI; cat streams the saved state in.
            let path = state.to_str().filter(|p| !p.contains('\'')).ok_or_else(|| {
                format!("vmstate: the state file {} has a name QEMU cannot be given", state.display())
            })?;
            command.args.extend(["-incoming".to_owned(), format!("exec:cat '{path}'")]);
        }
        Ok((command, taps))
    }
}

/// The taps of the VM that exist on the host now.
fn taps_of(vmid: Vmid) -> Vec<String> {
    let prefix = format!("tap{vmid}i");
    let Ok(links) = std::fs::read_dir("/sys/class/net") else { return Vec::new() };
    links
        .flatten()
        .map(|link| link.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            name.strip_prefix(&prefix).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect()
}

/// One NIC's tap and how it is plugged.
#[derive(Clone, Debug, PartialEq)]
struct TapPlug {
    key: String,
    tap: String,
    bridge: Option<String>,
    tag: Option<u16>,
    trunks: Vec<hearth_net::VlanRange>,
    mtu: Option<u32>,
    /// `rate=` in MB/s.
    rate: Option<f64>,
    /// `link_down=1`: the NIC's link is set down through QMP once QEMU is up.
    link_down: bool,
}

/// The taps of the configuration's NICs; refuses a bridge the host does not have, and a VLAN
/// tag, trunks or an MTU the bridge cannot take, before anything starts.
fn tap_plugs(vmid: Vmid, config: &Section) -> Result<Vec<TapPlug>, String> {
    let schema = GuestKind::Vm.schema();
    let mut plugs = Vec::new();
    let mut netlink = None;
    for (key, value) in config.iter().filter(|(k, _)| k.starts_with("net")) {
        let Some(props) = schema.property(key, value) else { continue };
        let bridge = props.get("bridge").map(str::to_owned);
        let number = |prop: &str| -> Result<Option<u32>, String> {
            props.get(prop).map(|v| v.parse().map_err(|_| format!("{key}: invalid {prop} '{v}'"))).transpose()
        };
        let tag = number("tag")?
            .map(|t| {
                u16::try_from(t).ok().filter(|t| (1..=4094).contains(t)).ok_or(format!("{key}: invalid tag '{t}'"))
            })
            .transpose()?;
        let trunks = match props.get("trunks") {
            Some(text) => hearth_net::parse_trunks(text).map_err(|e| format!("{key}: trunks: {e}"))?,
            None => Vec::new(),
        };
        // mtu=1: the bridge's MTU, which is what a port gets anyway.
        let mtu = number("mtu")?.filter(|m| *m != 1);
        let rate = props
            .get("rate")
            .map(|v| {
                v.parse::<f64>().ok().filter(|r| r.is_finite() && *r >= 0.0).ok_or(format!("{key}: invalid rate '{v}'"))
            })
            .transpose()?
            .filter(|r| *r > 0.0);
        if let Some(bridge) = &bridge {
            if netlink.is_none() {
                netlink = Some(hearth_net::Netlink::open().map_err(|e| e.to_string())?);
            }
            let nl = netlink.as_mut().ok_or("netlink")?;
            let found = nl.find_link(bridge).map_err(|e| format!("{key}: {e}"))?;
            let Some(info) = found.as_ref().and_then(|l| l.bridge.as_ref()) else {
                return Err(format!("{key}: bridge '{bridge}' does not exist"));
            };
            if (tag.is_some() || !trunks.is_empty()) && !info.vlan_filtering {
                return Err(format!(
                    "{key}: VLAN tag or trunks need VLAN filtering on bridge {bridge} (bridge-vlan-aware yes)"
                ));
            }
            let bridge_mtu = found.as_ref().map_or(0, |l| l.mtu);
            if let Some(mtu) = mtu.filter(|m| *m > bridge_mtu) {
                return Err(format!("{key}: MTU {mtu} is larger than the MTU {bridge_mtu} of bridge {bridge}"));
            }
        }
        let index: u32 = key.trim_start_matches("net").parse().unwrap_or(0);
        plugs.push(TapPlug {
            key: key.clone(),
            tap: tap_name(vmid, index),
            bridge,
            tag,
            trunks,
            mtu,
            rate,
            link_down: props.get("link_down") == Some("1"),
        });
    }
    Ok(plugs)
}

/// Splits `args:` like a shell: words, '…' and "…" quoting, backslash escapes.
fn split_args(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("args: unterminated ' quote".into()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => w.extend(chars.next()),
                        Some(c) => w.push(c),
                        None => return Err("args: unterminated \" quote".into()),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).extend(chars.next()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

/// Host limits a configuration must fit in.
fn check_host_limits(vmid: Vmid, config: &Section) -> Result<(), RuntimeError> {
    let int = |k: &str, default: i64| config.get(k).and_then(Value::as_int).unwrap_or(default);
    let memory_mib = u64::try_from(int("memory", 512)).unwrap_or(0);
    let host_mib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find_map(|l| l.strip_prefix("MemTotal:").map(str::to_owned)))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(u64::MAX, |kib| kib / 1024);
    if memory_mib > host_mib {
        return Err(RuntimeError::invalid(format!(
            "VM {vmid}: memory {memory_mib} MiB exceeds the host's {host_mib} MiB"
        )));
    }
    let cpus = int("sockets", 1) * int("cores", 1);
    let host_cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    if cpus > host_cpus {
        return Err(RuntimeError::invalid(format!(
            "VM {vmid}: {cpus} vCPUs (sockets × cores) exceed the host's {host_cpus} CPUs"
        )));
    }
    Ok(())
}

/// Puts each tap QEMU created into its bridge through hearth-net (MTU, IPv6 off, VLANs, rate,
/// up), as Proxmox's `tap_plug` does; a tap without a bridge only gets its MTU and goes up.
fn plug_taps(plugs: &[TapPlug], log: &dyn Fn(String)) -> Result<(), String> {
    if plugs.is_empty() {
        return Ok(());
    }
    let mut nl = hearth_net::Netlink::open().map_err(|e| e.to_string())?;
    for plug in plugs {
        let TapPlug { key, tap, bridge, .. } = plug;
        match bridge {
            Some(bridge) => {
                let port = hearth_net::PortPlug {
                    tag: plug.tag,
                    trunks: plug.trunks.clone(),
                    mtu: plug.mtu,
                    rate: plug.rate,
                    ..hearth_net::PortPlug::new(tap, bridge)
                };
                let report = hearth_net::plug_port(&mut nl, &port).map_err(|e| format!("{key}: {e}"))?;
                for warning in report.warnings {
                    log(format!("{key}: {warning}"));
                }
                log(format!("{key}: {tap} in bridge {bridge}"));
            }
            None => {
                if let Some(mtu) = plug.mtu {
                    nl.set_mtu(tap, mtu).map_err(|e| format!("{key}: {e}"))?;
                }
                if let Some(rate) = plug.rate {
                    for warning in hearth_net::set_rate(&mut nl, tap, Some(rate)).map_err(|e| format!("{key}: {e}"))? {
                        log(format!("{key}: {warning}"));
                    }
                }
                nl.set_up(tap, true).map_err(|e| format!("{key}: {e}"))?;
            }
        }
    }
    Ok(())
}

/// Deletes a tap if it still exists (the kernel usually removes it with QEMU's descriptor).
fn delete_tap(tap: &str) {
    if let Ok(mut nl) = hearth_net::Netlink::open() {
        let _ = nl.delete_link(tap);
    }
}

/// Waits until an incoming migration (a saved RAM state) has been read: QEMU leaves the
/// `inmigrate` state for `paused` (it runs with -S), or fails.
fn wait_incoming(qmp: &mut Qmp, deadline: Instant) -> Result<(), String> {
    loop {
        let status = qmp.query_status().map_err(|e| e.to_string())?;
        match status.status.as_str() {
            "inmigrate" if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            "inmigrate" => return Err("QEMU did not finish loading the saved RAM state in time".to_owned()),
            "paused" | "prelaunch" | "running" => return Ok(()),
            other => return Err(format!("loading the saved RAM state failed (QEMU reports '{other}')")),
        }
    }
}

/// A VM start, prepared: the command line and the taps to plug.
#[derive(Debug)]
pub struct QemuLaunch {
    runtime: QemuRuntime,
    vmid: Vmid,
    command: QemuCommand,
    taps: Vec<TapPlug>,
    timeout: Duration,
    /// Started with `-incoming`: the state must be in before the CPUs run.
    incoming: bool,
    /// `affinity`: QEMU runs under `taskset --cpu-list`, so every thread inherits it.
    affinity: Option<String>,
    /// `tpmstate0`: the swtpm to start before QEMU.
    tpm: Option<TpmState>,
    /// `freeze: 1`: the guest stays paused after start.
    frozen: bool,
    cpu: CpuLimits,
}

/// The emulated TPM of `tpmstate0`.
#[derive(Debug)]
struct TpmState {
    /// The raw state volume swtpm keeps its state in.
    path: PathBuf,
    tpm2: bool,
}

/// `cpulimit` and `cpuunits`, applied through a cgroup of the VM's own.
#[derive(Debug, Default)]
struct CpuLimits {
    limit: Option<f64>,
    units: Option<i64>,
}

impl QemuLaunch {
    pub fn command(&self) -> &QemuCommand {
        &self.command
    }

    fn start(&self, log: &dyn Fn(String)) -> Result<(), RuntimeError> {
        let (runtime, vmid) = (&self.runtime, self.vmid);
        runtime.clean_up(vmid);
        if let Some(tpm) = &self.tpm {
            start_swtpm(&runtime.paths(vmid), tpm, log).map_err(RuntimeError::failed)?;
        }
        let mut command = match &self.affinity {
            Some(cpus) => {
                let mut taskset = Command::new("taskset");
                taskset.args(["--cpu-list", cpus, &self.command.program]).args(&self.command.args);
                taskset
            }
            None => self.command.command(),
        };
        let output =
            command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).output().map_err(|e| {
                RuntimeError::failed(format!("cannot run {} (install qemu-system-x86): {e}", crate::cmdline::PROGRAM))
            })?;
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        if !output.status.success() {
            runtime.clean_up(vmid);
            return Err(RuntimeError::failed(format!("QEMU exited at start ({}): {stderr}", output.status)));
        }
        if !stderr.is_empty() {
            log(format!("QEMU: {stderr}"));
        }
        let started = (|| -> Result<(), String> {
            let deadline = Instant::now() + self.timeout.max(QMP_READY);
            let mut qmp = loop {
                match Qmp::connect(&runtime.paths(vmid).qmp()) {
                    Ok(q) => break q,
                    Err(e) if Instant::now() >= deadline => {
                        return Err(format!("QEMU's monitor does not answer: {e}"));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            };
            plug_taps(&self.taps, log)?;
            for plug in self.taps.iter().filter(|p| p.link_down) {
                qmp.set_link(&plug.key, false).map_err(|e| format!("{}: set link down: {e}", plug.key))?;
                log(format!("{}: link down", plug.key));
            }
            if self.incoming {
                wait_incoming(&mut qmp, deadline)?;
                log("RAM state loaded".to_owned());
            }
            if let Some(pid) = runtime.qemu_pid(vmid) {
                apply_cpu_limits(runtime, vmid, pid, &self.cpu, log)?;
            }
            if self.frozen {
                log("freeze: the guest stays paused; resume it with vmctl resume".into());
                return Ok(());
            }
            qmp.cont().map_err(|e| e.to_string())?;
            let status = qmp.query_status().map_err(|e| e.to_string())?;
            if !status.running {
                return Err(format!("QEMU reports '{}' instead of running", status.status));
            }
            Ok(())
        })();
        if let Err(e) = started {
            let _ = runtime.kill(vmid);
            return Err(RuntimeError::failed(e));
        }
        Ok(())
    }
}

impl Launch for QemuLaunch {
    fn vmid(&self) -> Vmid {
        self.vmid
    }

    fn warnings(&self) -> Vec<String> {
        self.command.warnings.clone()
    }

    fn describe(&self, pretty: bool) -> String {
        if pretty { self.command.pretty() } else { self.command.to_string() }
    }

    fn run(self: Box<Self>, log: &dyn Fn(String)) -> Result<u32, RuntimeError> {
        if self.runtime.qemu_pid(self.vmid).is_some() {
            return Err(RuntimeError::already_running(GuestKind::Vm, self.vmid));
        }
        self.start(log)?;
        self.runtime.supervise(self.vmid);
        Ok(self.runtime.qemu_pid(self.vmid).unwrap_or(0))
    }
}

/// Starts the VM's swtpm on its control socket, its state in the `tpmstate0` volume; it ends
/// by itself when QEMU disconnects. A new, empty volume is set up first with swtpm_setup, as qm
/// does.
fn start_swtpm(paths: &RunPaths, tpm: &TpmState, log: &dyn Fn(String)) -> Result<(), String> {
    let state = format!("file://{}", tpm.path.display());
    let run = |program: &str, args: &[String]| -> Result<(), String> {
        let out = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("tpmstate0: cannot run {program} (install swtpm and swtpm-tools): {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            let detail = [out.stderr, out.stdout].concat();
            Err(format!("tpmstate0: {program} failed: {}", String::from_utf8_lossy(&detail).trim()))
        }
    };
    let version = if tpm.tpm2 { vec!["--tpm2".to_owned()] } else { Vec::new() };
    let blank = std::fs::read(&tpm.path).map(|b| b.iter().all(|x| *x == 0)).unwrap_or(false);
    if blank {
        let mut setup = vec!["--tpmstate".to_owned(), state.clone(), "--createek".into(), "--not-overwrite".into()];
        setup.extend(version.iter().cloned());
        run("swtpm_setup", &setup)?;
        log(format!("tpmstate0: initialised a new {} state", if tpm.tpm2 { "TPM 2.0" } else { "TPM 1.2" }));
    }
    let mut args = vec![
        "socket".to_owned(),
        "--tpmstate".into(),
        format!("backend-uri={state},mode=0600"),
        "--ctrl".into(),
        format!("type=unixio,path={},mode=0600", paths.swtpm().display()),
        "--pid".into(),
        format!("file={}", paths.swtpm_pidfile().display()),
        "--terminate".into(),
        "--daemon".into(),
    ];
    args.extend(version);
    run("swtpm", &args)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !paths.swtpm().exists() {
        if Instant::now() >= deadline {
            return Err("tpmstate0: swtpm did not open its socket".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Ends a swtpm left over from an earlier start of the VM.
fn stop_swtpm(paths: &RunPaths) {
    let Some(pid) = std::fs::read_to_string(paths.swtpm_pidfile()).ok().and_then(|p| p.trim().parse::<i32>().ok())
    else {
        return;
    };
    let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&*paths.swtpm().to_string_lossy()));
    if ours {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
    }
}

/// `cpulimit` and `cpuunits` as qm applies them: CPU bandwidth and weight of a cgroup holding
/// the VM's QEMU (`<base>/qemu-<vmid>` in the cpu hierarchy, v1 or v2).
fn apply_cpu_limits(
    runtime: &QemuRuntime,
    vmid: Vmid,
    pid: u32,
    cpu: &CpuLimits,
    log: &dyn Fn(String),
) -> Result<(), String> {
    let limit = cpu.limit.filter(|l| *l > 0.0);
    if limit.is_none() && cpu.units.is_none() {
        return Ok(());
    }
    let v1 = Path::new("/sys/fs/cgroup/cpu");
    let v2 = Path::new("/sys/fs/cgroup");
    let write = |path: PathBuf, value: String| {
        std::fs::write(&path, &value).map_err(|e| format!("cannot write {value} to {}: {e}", path.display()))
    };
    const PERIOD: u64 = 100_000;
    if v1.join("cpu.cfs_quota_us").exists() {
        let dir = runtime.cgroup_dir(v1, vmid);
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        write(dir.join("cpu.cfs_period_us"), PERIOD.to_string())?;
        let quota = limit.map_or(-1, |l| (l * PERIOD as f64) as i64);
        write(dir.join("cpu.cfs_quota_us"), quota.to_string())?;
        // qm maps cgroup v2 weights (default 100) to v1 shares (default 1024).
        let shares = cpu.units.map_or(1024, |u| (u * 1024 / 100).max(2));
        write(dir.join("cpu.shares"), shares.to_string())?;
        write(dir.join("cgroup.procs"), pid.to_string())?;
    } else if v2.join("cgroup.controllers").exists() {
        let dir = runtime.cgroup_dir(v2, vmid);
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let _ = std::fs::write(v2.join("cgroup.subtree_control"), "+cpu");
        let _ = std::fs::write(v2.join(&runtime.cgroup_base).join("cgroup.subtree_control"), "+cpu");
        let quota = limit.map_or_else(|| "max".to_owned(), |l| ((l * PERIOD as f64) as u64).to_string());
        write(dir.join("cpu.max"), format!("{quota} {PERIOD}"))?;
        write(dir.join("cpu.weight"), cpu.units.unwrap_or(100).clamp(1, 10_000).to_string())?;
        write(dir.join("cgroup.procs"), pid.to_string())?;
    } else {
        return Err("cpulimit/cpuunits: no cgroup cpu controller found under /sys/fs/cgroup".into());
    }
    log(format!(
        "cpu: limit {}, weight {}",
        limit.map_or_else(|| "none".to_owned(), |l| format!("{l} CPUs")),
        cpu.units.unwrap_or(100)
    ));
    Ok(())
}

fn read_u64(path: impl AsRef<Path>) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

impl GuestRuntime for QemuRuntime {
    fn kind(&self) -> GuestKind {
        GuestKind::Vm
    }

    fn default_shutdown_timeout(&self) -> Duration {
        DEFAULT_SHUTDOWN_TIMEOUT
    }

    fn op_lock(&self, vmid: Vmid) -> Arc<Mutex<()>> {
        self.lock(vmid)
    }

    fn pid(&self, vmid: Vmid) -> Option<u32> {
        self.qemu_pid(vmid)
    }

    fn running_guests(&self) -> Option<std::collections::BTreeMap<Vmid, u32>> {
        Some(self.running.running())
    }

    fn prepare(&self, resources: Resources, options: &StartOptions) -> Result<Box<dyn Launch>, RuntimeError> {
        let vmid = resources.vmid;
        check_host_limits(vmid, &resources.config)?;
        let (command, taps) = self.command(&resources, options).map_err(RuntimeError::invalid)?;
        let config = &resources.config;
        let text = |key: &str| config.get(key).and_then(Value::as_str).map(str::to_owned);
        if let Some(size) = text("hugepages") {
            let dir =
                Path::new(crate::cmdline::HUGEPAGES_DIR).join(if size == "1024" { "1048576kB" } else { "2048kB" });
            if !dir.is_dir() {
                return Err(RuntimeError::invalid(format!(
                    "hugepages: {} is missing; mount hugetlbfs there (mount -t hugetlbfs -o pagesize={} none {}) and \
                     reserve pages in /proc/sys/vm/nr_hugepages",
                    dir.display(),
                    if size == "1024" { "1G" } else { "2M" },
                    dir.display()
                )));
            }
        }
        let affinity = text("affinity");
        if let Some(list) = &affinity {
            let host_cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
            if let Some(cpu) = hearth_core::vm::cpu_list_members(list).into_iter().find(|c| *c >= host_cpus) {
                return Err(RuntimeError::invalid(format!(
                    "affinity: CPU {cpu} does not exist on this host (it has CPUs 0 to {})",
                    host_cpus - 1
                )));
            }
        }
        let tpm = match (resources.volumes.get("tpmstate0"), config.get("tpmstate0")) {
            (Some(ResolvedVolume::Storage { path, .. } | ResolvedVolume::HostPath(path)), Some(value)) => {
                let version = GuestKind::Vm
                    .schema()
                    .property("tpmstate0", value)
                    .and_then(|p| p.get("version").map(str::to_owned));
                Some(TpmState { path: path.clone(), tpm2: version.as_deref() != Some("v1.2") })
            }
            _ => None,
        };
        let cpu = CpuLimits {
            limit: config.get("cpulimit").and_then(|v| match v {
                Value::Float(f) => Some(*f),
                Value::Int(n) => Some(*n as f64),
                _ => None,
            }),
            units: config.get("cpuunits").and_then(Value::as_int),
        };
        Ok(Box::new(QemuLaunch {
            runtime: self.clone(),
            vmid,
            command,
            taps,
            timeout: options.timeout.unwrap_or(START_TIMEOUT),
            incoming: options.incoming.is_some(),
            affinity,
            tpm,
            frozen: config.get("freeze") == Some(&Value::Bool(true)),
            cpu,
        }))
    }

    fn stop(&self, vmid: Vmid) -> Result<(), RuntimeError> {
        self.require_running(vmid)?;
        self.kill(vmid)
    }

    fn shutdown(&self, vmid: Vmid, timeout: Duration, log: &dyn Fn(String)) -> Result<(), RuntimeError> {
        let mut qmp = self.qmp(vmid)?;
        qmp.system_powerdown().map_err(|e| RuntimeError::failed(e.to_string()))?;
        let secs = timeout.as_secs();
        log(format!("sent the ACPI power button to VM {vmid}; waiting up to {secs} s"));
        drop(qmp);
        if self.wait_exit(vmid, timeout) {
            self.clean_up(vmid);
            log(format!("VM {vmid} powered off"));
            return Ok(());
        }
        Err(RuntimeError::new(RuntimeErrorKind::TimedOut, format!("VM {vmid} did not power off within {secs} s")))
    }

    fn pause(&self, vmid: Vmid) -> Result<(), RuntimeError> {
        self.require_running(vmid)?;
        self.qmp(vmid)?.stop().map_err(|e| RuntimeError::failed(e.to_string()))
    }

    fn resume(&self, vmid: Vmid) -> Result<(), RuntimeError> {
        self.require_running(vmid)?;
        self.qmp(vmid)?.cont().map_err(|e| RuntimeError::failed(e.to_string()))
    }

    fn status(&self, vmid: Vmid, verbose: bool) -> RuntimeStatus {
        let mut status = RuntimeStatus::default();
        let Some(pid) = self.qemu_pid(vmid) else { return status };
        status.pid = Some(pid);
        if let Ok(meta) = std::fs::metadata(self.paths(vmid).pidfile()) {
            status.uptime = meta.modified().ok().and_then(|t| t.elapsed().ok()).map(|d| d.as_secs());
        }
        if let Ok(mut qmp) = self.qmp(vmid) {
            if let Ok(s) = qmp.query_status() {
                status.state = Some(s.status);
            }
            if verbose {
                if let Ok(stats) = qmp.query_blockstats() {
                    for s in stats {
                        status.diskread += s.stats.rd_bytes;
                        status.diskwrite += s.stats.wr_bytes;
                    }
                }
            }
        }
        if verbose {
            let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            status.mem = proc_status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|kib| kib * 1024);
            for tap in taps_of(vmid) {
                let stats = Path::new("/sys/class/net").join(tap).join("statistics");
                // The tap's receive side is what the guest sent.
                status.netout += read_u64(stats.join("rx_bytes")).unwrap_or(0);
                status.netin += read_u64(stats.join("tx_bytes")).unwrap_or(0);
            }
        }
        status
    }

    fn hotplug(&self, vmid: Vmid, change: &HotplugChange, log: &dyn Fn(String)) -> Result<Hotplugged, RuntimeError> {
        self.require_running(vmid)?;
        self.hotplug_change(vmid, change, log)
    }

    fn adopt(&self) -> Vec<Vmid> {
        let mut running = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.run_dir) else { return running };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(vmid) = name.to_str().and_then(|n| n.strip_suffix(".pid")).and_then(|n| n.parse::<Vmid>().ok())
            else {
                continue;
            };
            if self.qemu_pid(vmid).is_some() {
                tracing::info!(%vmid, "VM is running; watching it again");
                self.supervise(vmid);
                running.push(vmid);
            } else {
                self.clean_up(vmid);
            }
        }
        running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_split_like_a_shell() {
        assert_eq!(
            split_args(r#"-kernel /k -append 'console=ttyS0 quiet' -name "a b" x\ y"#).unwrap(),
            ["-kernel", "/k", "-append", "console=ttyS0 quiet", "-name", "a b", "x y"]
        );
        assert!(split_args("-append 'open").is_err());
        assert!(split_args("").unwrap().is_empty());
    }
}
