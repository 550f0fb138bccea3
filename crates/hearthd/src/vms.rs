//! Running VMs on QEMU, as qm runs them: resolve the configuration's volumes, build the command
//! line (hearth-qemu), start QEMU paused and daemonized, put its taps into their bridges, then
//! let it run; stop, shut down, suspend and resume it through QMP; watch it so a guest that
//! powers off or dies is cleaned up; and answer status.
//!
//! **Invariants:** a VM is running exactly when the pidfile in `run/hearth/qemu/` names a live
//! QEMU process whose command line carries this VM's QMP socket, so hearthd can restart at any
//! time and find its VMs again without touching them. Taps are created by QEMU itself and vanish
//! with its process, so no tap outlives its VM. Start and stop of one VM are serialised; of two
//! starts at the same instant exactly one wins.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_core::storage::{Format, VolName};
use hearth_core::{GuestConfig, GuestKind, Value, Vmid};
use hearth_proto::{ErrorKind, ErrorReply, Payload, VmStatusReport};
use hearth_qemu::{Qmp, Resolved, ResolvedDrive, RunPaths};

use crate::Daemon;
use crate::access::Caller;
use crate::storage::to_reply;

/// How long QEMU gets to answer on its monitor after it daemonized.
const QMP_READY: Duration = Duration::from_secs(10);
/// `vmctl shutdown` waits this long by default, as qm does.
pub const DEFAULT_SHUTDOWN_TIMEOUT: u64 = 180;

fn err(kind: ErrorKind, message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(kind, message)
}

/// The QEMU processes of this node.
#[derive(Debug)]
pub struct QemuRuntime {
    run_dir: PathBuf,
    /// `var/lib/hearth/efivars`: each OVMF VM's EFI variables, kept across starts.
    efivars_dir: PathBuf,
    kvm: bool,
    /// One lock per VM, held while it is started or stopped.
    ops: Mutex<HashMap<Vmid, Arc<Mutex<()>>>>,
}

impl QemuRuntime {
    /// Prepares `run/hearth/qemu` and notes whether KVM can run guests here (not with the
    /// software-only kvm_pvm module, whose guests cannot boot a stock kernel).
    pub fn open(root: &Path) -> std::io::Result<QemuRuntime> {
        let root = std::fs::canonicalize(root)?;
        let run_dir = root.join("run/hearth/qemu");
        std::fs::create_dir_all(&run_dir)?;
        // QMP, VNC and serial sockets give full control of a guest: root only, whatever the umask.
        std::fs::set_permissions(&run_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let efivars_dir = root.join("var/lib/hearth/efivars");
        let kvm = Path::new("/dev/kvm").exists() && !Path::new("/sys/module/kvm_pvm").exists();
        Ok(QemuRuntime { run_dir, efivars_dir, kvm, ops: Mutex::new(HashMap::new()) })
    }

    pub fn paths(&self, vmid: Vmid) -> RunPaths {
        RunPaths::new(&self.run_dir, vmid)
    }

    fn events_socket(&self, vmid: Vmid) -> PathBuf {
        self.run_dir.join(format!("{vmid}.qmp-event"))
    }

    pub(crate) fn op_lock(&self, vmid: Vmid) -> Arc<Mutex<()>> {
        let mut ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(ops.entry(vmid).or_default())
    }

    /// The pid of the VM's QEMU, if it runs.
    pub fn pid(&self, vmid: Vmid) -> Option<u32> {
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
            let template = Path::new(hearth_qemu::cmdline::OVMF_VARS_TEMPLATE);
            let temp = self.efivars_dir.join(format!(".{vmid}.fd.tmp"));
            std::fs::copy(template, &temp)
                .and_then(|_| std::fs::rename(&temp, &path))
                .map_err(|e| format!("cannot copy {} (install ovmf): {e}", template.display()))?;
        }
        Ok(path)
    }

    /// Forgets a destroyed VM's EFI variables.
    pub(crate) fn forget(&self, vmid: Vmid) {
        let _ = std::fs::remove_file(self.efivars_dir.join(format!("{vmid}.fd")));
    }

    /// Removes what a QEMU that is gone left in the run directory.
    pub(crate) fn clean_up(&self, vmid: Vmid) {
        let paths = self.paths(vmid);
        let mut files = vec![paths.pidfile(), paths.qmp(), paths.vnc(), paths.qga(), self.events_socket(vmid)];
        files.extend((0..4).map(|i| paths.serial(i)));
        for file in files {
            let _ = std::fs::remove_file(file);
        }
        // The kernel removes a tap when QEMU's descriptor closes, but not always at once; a
        // tap left over would block the next start with "Device or resource busy".
        let prefix = format!("tap{vmid}i");
        if let Ok(links) = std::fs::read_dir("/sys/class/net") {
            for link in links.flatten() {
                let name = link.file_name().to_string_lossy().into_owned();
                let ours =
                    name.strip_prefix(&prefix).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                if ours {
                    let _ = iproute("ip", &["link", "del", "dev", &name]);
                }
            }
        }
    }

    /// Watches a running VM through its event monitor: a guest that powers off is quit (QEMU
    /// runs with -no-shutdown), and when the process is gone its files are removed.
    pub(crate) fn supervise(self: &Arc<Self>, vmid: Vmid) {
        let runtime = Arc::clone(self);
        let spawned = std::thread::Builder::new().name(format!("qemu-{vmid}")).spawn(move || {
            let watched = runtime.pid(vmid);
            let socket = runtime.events_socket(vmid);
            let Ok(mut qmp) = Qmp::connect(&socket) else {
                if runtime.pid(vmid).is_none() {
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
                    Err(hearth_qemu::QmpError::Timeout { .. }) => {}
                    Err(_) => break,
                }
            }
            // The monitor closed: QEMU exited. Wait for the pid to go before cleaning up.
            let deadline = Instant::now() + Duration::from_secs(10);
            while runtime.pid(vmid) == watched && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            // Under the run lock, and only if no new QEMU of this VM has started meanwhile: its
            // files and taps are not this watcher's to remove.
            let lock = runtime.op_lock(vmid);
            let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
            if runtime.pid(vmid).is_none() {
                runtime.clean_up(vmid);
                tracing::info!(%vmid, "VM stopped");
            }
        });
        if let Err(e) = spawned {
            tracing::error!(%vmid, error = %e, "cannot watch the VM");
        }
    }

    /// Finds the VMs that run from before hearthd started and watches them again; removes the
    /// leftovers of those that are gone.
    pub fn adopt(self: &Arc<Self>) {
        let Ok(entries) = std::fs::read_dir(&self.run_dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(vmid) = name.to_str().and_then(|n| n.strip_suffix(".pid")).and_then(|n| n.parse::<Vmid>().ok())
            else {
                continue;
            };
            if self.pid(vmid).is_some() {
                tracing::info!(%vmid, "VM is running; watching it again");
                self.supervise(vmid);
            } else {
                self.clean_up(vmid);
            }
        }
    }

    pub(crate) fn qmp(&self, vmid: Vmid) -> Result<Qmp, ErrorReply> {
        Qmp::connect(&self.paths(vmid).qmp())
            .map_err(|e| err(ErrorKind::Unavailable, format!("VM {vmid}: cannot reach QEMU's monitor: {e}")))
    }

    fn require_running(&self, vmid: Vmid) -> Result<u32, ErrorReply> {
        self.pid(vmid).ok_or_else(|| err(ErrorKind::Conflict, format!("VM {vmid} is not running")))
    }

    /// Waits until the VM's QEMU is gone.
    fn wait_exit(&self, vmid: Vmid, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.pid(vmid).is_some() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }

    /// Ends QEMU: `quit` on the monitor, then SIGKILL if it does not go.
    pub(crate) fn kill(&self, vmid: Vmid) -> Result<(), String> {
        if let Ok(mut qmp) = Qmp::connect_with_timeout(&self.paths(vmid).qmp(), Duration::from_secs(3)) {
            let _ = qmp.quit();
        }
        if !self.wait_exit(vmid, Duration::from_secs(10)) {
            if let Some(pid) = self.pid(vmid) {
                let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).map_err(|e| e.to_string())?);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
            if !self.wait_exit(vmid, Duration::from_secs(5)) {
                return Err(format!("QEMU of VM {vmid} does not exit"));
            }
        }
        self.clean_up(vmid);
        Ok(())
    }
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
fn check_host_limits(vmid: Vmid, config: &hearth_core::guest::Section) -> Result<(), ErrorReply> {
    let int = |k: &str, default: i64| config.get(k).and_then(Value::as_int).unwrap_or(default);
    let memory_mib = u64::try_from(int("memory", 512)).unwrap_or(0);
    let host_mib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find_map(|l| l.strip_prefix("MemTotal:").map(str::to_owned)))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(u64::MAX, |kib| kib / 1024);
    if memory_mib > host_mib {
        return Err(err(
            ErrorKind::Invalid,
            format!("VM {vmid}: memory {memory_mib} MiB exceeds the host's {host_mib} MiB"),
        ));
    }
    let cpus = int("sockets", 1) * int("cores", 1);
    let host_cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    if cpus > host_cpus {
        return Err(err(
            ErrorKind::Invalid,
            format!("VM {vmid}: {cpus} vCPUs (sockets × cores) exceed the host's {host_cpus} CPUs"),
        ));
    }
    Ok(())
}

/// Every disk of the configuration resolved to a path and format; CD-ROMs `none`/`cdrom` need
/// nothing. Volumes must exist and belong to this VM (or be a base image or an ISO).
fn resolve(daemon: &Daemon, vmid: Vmid, config: &GuestConfig, resolved: &mut Resolved) -> Result<(), ErrorReply> {
    let schema = GuestKind::Vm.schema();
    for (key, value) in &config.current {
        if key.starts_with("unused") {
            continue;
        }
        let Some(props) = schema.property(key, value) else { continue };
        if let Some(volume) = props.get("file") {
            if volume == "none" || volume == "cdrom" {
                continue;
            }
            if volume.starts_with('/') {
                resolved.drives.insert(key.clone(), ResolvedDrive::file(volume, Format::Raw));
                continue;
            }
            let (backend, vol) =
                daemon.storages.volume(volume).map_err(|e| err(e.kind, format!("{key}: {}", e.message)))?;
            if let VolName::Image { image, .. } = &vol {
                if image.vmid != vmid {
                    return Err(err(
                        ErrorKind::Invalid,
                        format!("{key}: volume '{volume}' belongs to guest {}, not {vmid}", image.vmid),
                    ));
                }
            }
            let path = backend.path(&vol).map_err(to_reply)?;
            let format = match &vol {
                VolName::Image { .. } => backend.image_info(&vol).map_err(to_reply)?.0,
                VolName::File { .. } => Format::Raw,
            };
            if !path.exists() {
                return Err(err(ErrorKind::NotFound, format!("{key}: volume '{volume}' does not exist")));
            }
            resolved.drives.insert(key.clone(), ResolvedDrive::file(path, format));
        }
        if key.starts_with("net") {
            if let Some(bridge) = props.get("bridge") {
                if !Path::new("/sys/class/net").join(bridge).join("bridge").exists() {
                    return Err(err(ErrorKind::Invalid, format!("{key}: bridge '{bridge}' does not exist")));
                }
            }
            let index: u32 = key.trim_start_matches("net").parse().unwrap_or(0);
            resolved.taps.insert(key.clone(), hearth_qemu::tap_name(vmid, index));
        }
    }
    Ok(())
}

/// Runs `ip`/`bridge` from iproute2.
fn iproute(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program} (install iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{program} {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Puts each tap QEMU created into its bridge, with MTU and VLAN tag, and brings it up.
fn plug_taps(vmid: Vmid, config: &GuestConfig, log: &dyn Fn(String)) -> Result<(), String> {
    let schema = GuestKind::Vm.schema();
    for (key, value) in config.current.iter().filter(|(k, _)| k.starts_with("net")) {
        let Some(props) = schema.property(key, value) else { continue };
        let index: u32 = key.trim_start_matches("net").parse().unwrap_or(0);
        let tap = hearth_qemu::tap_name(vmid, index);
        if let Some(bridge) = props.get("bridge") {
            iproute("ip", &["link", "set", "dev", &tap, "master", bridge])?;
            if let Some(tag) = props.get("tag") {
                iproute("bridge", &["vlan", "del", "dev", &tap, "vid", "1"])?;
                iproute("bridge", &["vlan", "add", "dev", &tap, "vid", tag, "pvid", "untagged"])?;
            }
            log(format!("{key}: {tap} in bridge {bridge}"));
        }
        if let Some(mtu) = props.get("mtu").filter(|m| *m != "1") {
            iproute("ip", &["link", "set", "dev", &tap, "mtu", mtu])?;
        }
        iproute("ip", &["link", "set", "dev", &tap, "up"])?;
    }
    Ok(())
}

/// Checks that a VM may start at all, before a task is spent on it.
fn check_startable(daemon: &Daemon, vmid: Vmid) -> Result<GuestConfig, ErrorReply> {
    let loaded = daemon.store.load(GuestKind::Vm, vmid)?;
    let config = loaded.config;
    if let Some(lock) = config.lock {
        return Err(err(ErrorKind::Locked, format!("VM {vmid} is locked ({lock})")));
    }
    if config.current.get("template") == Some(&Value::Bool(true)) {
        return Err(err(ErrorKind::Invalid, format!("VM {vmid} is a template and cannot be started; clone it first")));
    }
    if daemon.qemu.pid(vmid).is_some() {
        return Err(err(ErrorKind::Conflict, format!("VM {vmid} already running")));
    }
    check_host_limits(vmid, &config.current)?;
    Ok(config)
}

/// The QEMU command line hearthd runs for the VM: started paused (`-S`), with a second
/// monitor for the watcher, and the `args:` the root user configured.
fn command_for(daemon: &Daemon, vmid: Vmid, config: &GuestConfig) -> Result<hearth_qemu::QemuCommand, String> {
    let runtime = &daemon.qemu;
    let mut resolved = Resolved::new(&runtime.run_dir, runtime.kvm);
    resolve(daemon, vmid, config, &mut resolved).map_err(|e| e.message)?;
    let events = runtime.events_socket(vmid);
    resolved.extra = vec![
        "-S".into(),
        "-chardev".into(),
        format!("socket,id=qmp-event,path={},server=on,wait=off", events.display()),
        "-mon".into(),
        "chardev=qmp-event,mode=control".into(),
    ];
    if let Some(args) = config.current.get("args").and_then(Value::as_str) {
        resolved.extra.extend(split_args(args)?);
    }
    if config.current.get("bios").and_then(Value::as_str) == Some("ovmf") {
        resolved.efivars = Some(ResolvedDrive::file(runtime.efivars(vmid)?, Format::Raw));
    }
    hearth_qemu::build(vmid, &config.current, &resolved).map_err(|e| e.to_string())
}

/// `vmctl showcmd`: the command line a start would run, one line or one option per line. Root
/// only (the table says so): it shows host paths.
pub fn show_command(daemon: &Daemon, vmid: Vmid, pretty: bool) -> Result<Payload, ErrorReply> {
    let config = daemon.store.load(GuestKind::Vm, vmid)?.config;
    let command = command_for(daemon, vmid, &config).map_err(|m| err(ErrorKind::Invalid, m))?;
    Ok(Payload::Text(if pretty { command.pretty() } else { command.to_string() }))
}

/// Starts QEMU for the VM; on any failure nothing of it remains.
pub(crate) fn start_now(daemon: &Daemon, vmid: Vmid, timeout: Duration, log: &dyn Fn(String)) -> Result<(), String> {
    start_with(daemon, vmid, timeout, log, &[])
}

/// Starts QEMU with `extra` arguments (`-loadvm <snapshot>` to resume a saved state).
pub(crate) fn start_with(
    daemon: &Daemon,
    vmid: Vmid,
    timeout: Duration,
    log: &dyn Fn(String),
    extra: &[String],
) -> Result<(), String> {
    let runtime = &daemon.qemu;
    let config = check_startable(daemon, vmid).map_err(|e| e.message)?;
    let mut command = command_for(daemon, vmid, &config)?;
    command.args.extend(extra.iter().cloned());
    for warning in &command.warnings {
        log(format!("WARN: {warning}"));
    }
    runtime.clean_up(vmid);
    let output = command
        .command()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run {} (install qemu-system-x86): {e}", hearth_qemu::cmdline::PROGRAM))?;
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if !output.status.success() {
        runtime.clean_up(vmid);
        return Err(format!("QEMU exited at start ({}): {stderr}", output.status));
    }
    if !stderr.is_empty() {
        log(format!("QEMU: {stderr}"));
    }
    let started = (|| -> Result<(), String> {
        let deadline = Instant::now() + timeout.max(QMP_READY);
        let mut qmp = loop {
            match Qmp::connect(&runtime.paths(vmid).qmp()) {
                Ok(q) => break q,
                Err(e) if Instant::now() >= deadline => return Err(format!("QEMU's monitor does not answer: {e}")),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        plug_taps(vmid, &config, log)?;
        qmp.cont().map_err(|e| e.to_string())?;
        let status = qmp.query_status().map_err(|e| e.to_string())?;
        if !status.running {
            return Err(format!("QEMU reports '{}' instead of running", status.status));
        }
        Ok(())
    })();
    if let Err(e) = started {
        let _ = runtime.kill(vmid);
        return Err(e);
    }
    Ok(())
}

pub fn start(daemon: &Arc<Daemon>, caller: &Caller, vmid: Vmid, timeout: Option<u64>) -> Result<Payload, ErrorReply> {
    check_startable(daemon, vmid)?;
    let worker = Arc::clone(daemon);
    let timeout = Duration::from_secs(timeout.unwrap_or(30));
    let upid = daemon.tasks.spawn("qmstart", &vmid.to_string(), &caller.userid, move |ctx| {
        let lock = worker.qemu.op_lock(vmid);
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        let log = |line: String| ctx.log(line);
        start_now(&worker, vmid, timeout, &log)?;
        Arc::clone(&worker.qemu).supervise(vmid);
        ctx.log(format!("VM {vmid} started (pid {})", worker.qemu.pid(vmid).unwrap_or(0)));
        Ok(())
    })?;
    Ok(Payload::Task(upid))
}

/// Runs a task on a running VM, holding its operation lock.
fn on_running(
    daemon: &Arc<Daemon>,
    caller: &Caller,
    vmid: Vmid,
    task: &str,
    work: impl FnOnce(&Daemon, &dyn Fn(String)) -> Result<(), String> + Send + 'static,
) -> Result<Payload, ErrorReply> {
    daemon.store.load(GuestKind::Vm, vmid)?;
    daemon.qemu.require_running(vmid)?;
    let worker = Arc::clone(daemon);
    let upid = daemon.tasks.spawn(task, &vmid.to_string(), &caller.userid, move |ctx| {
        let lock = worker.qemu.op_lock(vmid);
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        worker.qemu.require_running(vmid).map_err(|e| e.message)?;
        work(&worker, &|line| ctx.log(line))
    })?;
    Ok(Payload::Task(upid))
}

pub fn stop(daemon: &Arc<Daemon>, caller: &Caller, vmid: Vmid) -> Result<Payload, ErrorReply> {
    on_running(daemon, caller, vmid, "qmstop", move |d, log| {
        d.qemu.kill(vmid)?;
        log(format!("VM {vmid} stopped"));
        Ok(())
    })
}

/// Asks the guest to power off and waits; `force` stops it when the time is up.
pub(crate) fn shutdown_now(
    d: &Daemon,
    vmid: Vmid,
    timeout: u64,
    force: bool,
    log: &dyn Fn(String),
) -> Result<(), String> {
    let mut qmp = d.qemu.qmp(vmid).map_err(|e| e.message)?;
    qmp.system_powerdown().map_err(|e| e.to_string())?;
    log(format!("sent the ACPI power button to VM {vmid}; waiting up to {timeout} s"));
    drop(qmp);
    if d.qemu.wait_exit(vmid, Duration::from_secs(timeout)) {
        d.qemu.clean_up(vmid);
        log(format!("VM {vmid} powered off"));
        return Ok(());
    }
    if !force {
        return Err(format!("VM {vmid} did not power off within {timeout} s (use --forceStop 1 to stop it)"));
    }
    log(format!("VM {vmid} did not power off within {timeout} s; stopping it"));
    d.qemu.kill(vmid)
}

pub fn shutdown(
    daemon: &Arc<Daemon>,
    caller: &Caller,
    vmid: Vmid,
    timeout: Option<u64>,
    force_stop: bool,
) -> Result<Payload, ErrorReply> {
    let timeout = timeout.unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT);
    on_running(daemon, caller, vmid, "qmshutdown", move |d, log| shutdown_now(d, vmid, timeout, force_stop, log))
}

pub fn reboot(daemon: &Arc<Daemon>, caller: &Caller, vmid: Vmid, timeout: Option<u64>) -> Result<Payload, ErrorReply> {
    let timeout = timeout.unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT);
    on_running(daemon, caller, vmid, "qmreboot", move |d, log| {
        // As qm: a clean shutdown, then a fresh start that applies pending changes.
        shutdown_now(d, vmid, timeout, false, log)?;
        start_now(d, vmid, Duration::from_secs(30), log)?;
        Arc::clone(&d.qemu).supervise(vmid);
        log(format!("VM {vmid} started again"));
        Ok(())
    })
}

pub fn suspend(daemon: &Arc<Daemon>, caller: &Caller, vmid: Vmid, resume: bool) -> Result<Payload, ErrorReply> {
    let task = if resume { "qmresume" } else { "qmsuspend" };
    on_running(daemon, caller, vmid, task, move |d, log| {
        let mut qmp = d.qemu.qmp(vmid).map_err(|e| e.message)?;
        if resume { qmp.cont() } else { qmp.stop() }.map_err(|e| e.to_string())?;
        log(format!("VM {vmid} {}", if resume { "resumed" } else { "suspended" }));
        Ok(())
    })
}

/// `startup: order=,up=,down=` of a guest, and whether it starts with the node.
#[derive(Clone, Copy, Debug)]
struct Startup {
    kind: GuestKind,
    vmid: Vmid,
    onboot: bool,
    /// Guests without an order come last.
    order: i64,
    /// Seconds to wait after starting it.
    up: u64,
    /// Seconds it gets to shut down.
    down: Option<u64>,
}

/// Guests of this node, VMs and containers together, with their startup settings, in start
/// order (as Proxmox orders them across both kinds).
fn start_order(daemon: &Daemon) -> Result<Vec<Startup>, ErrorReply> {
    let mut guests = Vec::new();
    for kind in [GuestKind::Vm, GuestKind::Ct] {
        guests.extend(daemon.store.list(kind)?.into_iter().filter_map(|listed| {
            let config = listed.config.as_ref().as_ref().ok()?;
            let props = config.current.get("startup").and_then(|v| kind.schema().property("startup", v));
            let get = |k: &str| props.as_ref().and_then(|p| p.get(k)).and_then(|v| v.parse::<i64>().ok());
            Some(Startup {
                kind,
                vmid: listed.vmid,
                onboot: config.current.get("onboot") == Some(&Value::Bool(true)),
                order: get("order").unwrap_or(i64::MAX),
                up: get("up").unwrap_or(0).max(0) as u64,
                down: get("down").map(|d| d.max(0) as u64),
            })
        }));
    }
    guests.sort_by_key(|s| (s.order, s.vmid));
    Ok(guests)
}

/// Starts the node's `onboot` guests in order (all with `force`); one failing does not stop
/// the others, and the task ends with a warning for each.
pub fn start_all(daemon: &Arc<Daemon>, caller: &Caller, force: bool) -> Result<Payload, ErrorReply> {
    let order = start_order(daemon)?;
    let worker = Arc::clone(daemon);
    let upid = daemon.tasks.spawn("startall", "", &caller.userid, move |ctx| {
        for Startup { kind, vmid, onboot, up, .. } in order {
            if !(onboot || force) || worker.guest_running(kind, vmid) {
                continue;
            }
            let lock = worker.run_lock(kind, vmid);
            let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
            let log = |line: String| ctx.log(line);
            let started = match kind {
                GuestKind::Vm => start_now(&worker, vmid, Duration::from_secs(30), &log).map(|()| {
                    Arc::clone(&worker.qemu).supervise(vmid);
                }),
                GuestKind::Ct => crate::containers::start_now(&worker, vmid, &log).map(|_| ()),
            };
            match started {
                Ok(()) => {
                    ctx.log(format!("{} {vmid} started", kind.noun()));
                    if up > 0 {
                        ctx.log(format!("waiting {up} s (startup up=)"));
                        std::thread::sleep(Duration::from_secs(up));
                    }
                }
                Err(e) => ctx.warn(format!("{} {vmid}: {e}", kind.noun())),
            }
            ctx.check_stop()?;
        }
        Ok(())
    })?;
    Ok(Payload::Task(upid))
}

/// Shuts down every running guest in reverse start order.
pub fn stop_all(daemon: &Arc<Daemon>, caller: &Caller, timeout: Option<u64>) -> Result<Payload, ErrorReply> {
    let mut order = start_order(daemon)?;
    order.reverse();
    let worker = Arc::clone(daemon);
    let upid = daemon.tasks.spawn("stopall", "", &caller.userid, move |ctx| {
        for Startup { kind, vmid, down, .. } in order {
            if !worker.guest_running(kind, vmid) {
                continue;
            }
            let lock = worker.run_lock(kind, vmid);
            let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
            let log = |line: String| ctx.log(line);
            let limit = timeout.or(down).unwrap_or(match kind {
                GuestKind::Vm => DEFAULT_SHUTDOWN_TIMEOUT,
                GuestKind::Ct => crate::containers::DEFAULT_SHUTDOWN_TIMEOUT,
            });
            let stopped = match kind {
                GuestKind::Vm => shutdown_now(&worker, vmid, limit, true, &log),
                GuestKind::Ct => crate::containers::shutdown_now(&worker, vmid, limit, true, &log),
            };
            if let Err(e) = stopped {
                ctx.warn(format!("{} {vmid}: {e}", kind.noun()));
            }
        }
        Ok(())
    })?;
    Ok(Payload::Task(upid))
}

fn read_u64(path: impl AsRef<Path>) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

pub fn status(daemon: &Daemon, vmid: Vmid, verbose: bool) -> Result<Payload, ErrorReply> {
    let loaded = daemon.store.load(GuestKind::Vm, vmid)?;
    let config = &loaded.config.current;
    let mut report = VmStatusReport {
        vmid,
        status: "stopped".into(),
        name: config.get("name").and_then(Value::as_str).map(str::to_owned),
        lock: loaded.config.lock.map(|l| l.as_str().to_owned()),
        maxmem: config.get("memory").and_then(Value::as_int).map_or(512, |m| m.max(0) as u64) << 20,
        cpus: (config.get("sockets").and_then(Value::as_int).unwrap_or(1)
            * config.get("cores").and_then(Value::as_int).unwrap_or(1))
        .max(1) as u64,
        qmpstatus: None,
        pid: None,
        uptime: None,
        mem: None,
        diskread: 0,
        diskwrite: 0,
        netin: 0,
        netout: 0,
    };
    let Some(pid) = daemon.qemu.pid(vmid) else { return Ok(Payload::VmStatus(report)) };
    report.status = "running".into();
    report.pid = Some(pid);
    if let Ok(meta) = std::fs::metadata(daemon.qemu.paths(vmid).pidfile()) {
        report.uptime = meta.modified().ok().and_then(|t| t.elapsed().ok()).map(|d| d.as_secs());
    }
    if let Ok(mut qmp) = daemon.qemu.qmp(vmid) {
        if let Ok(s) = qmp.query_status() {
            report.qmpstatus = Some(s.status);
        }
        if verbose {
            if let Ok(stats) = qmp.query_blockstats() {
                for s in stats {
                    report.diskread += s.stats.rd_bytes;
                    report.diskwrite += s.stats.wr_bytes;
                }
            }
        }
    }
    if verbose {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        report.mem = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024);
        for (key, _) in config.iter().filter(|(k, _)| k.starts_with("net")) {
            let index: u32 = key.trim_start_matches("net").parse().unwrap_or(0);
            let stats = Path::new("/sys/class/net").join(hearth_qemu::tap_name(vmid, index)).join("statistics");
            // The tap's receive side is what the guest sent.
            report.netout += read_u64(stats.join("rx_bytes")).unwrap_or(0);
            report.netin += read_u64(stats.join("tx_bytes")).unwrap_or(0);
        }
    }
    Ok(Payload::VmStatus(report))
}

/// Runs a human-monitor command (root only, as qm monitor; the table says so).
pub fn monitor(daemon: &Daemon, vmid: Vmid, command: &str) -> Result<Payload, ErrorReply> {
    daemon.store.load(GuestKind::Vm, vmid)?;
    daemon.qemu.require_running(vmid)?;
    let mut qmp = daemon.qemu.qmp(vmid)?;
    let output = qmp
        .human_monitor_command(command)
        .map_err(|e| err(ErrorKind::Invalid, format!("monitor command failed: {e}")))?;
    Ok(Payload::Text(output))
}

/// Connects to the VM's serial console for `vmctl terminal`; the connection is handed to the
/// caller.
pub fn open_serial(daemon: &Daemon, vmid: Vmid, index: u32) -> Result<std::os::unix::net::UnixStream, ErrorReply> {
    let loaded = daemon.store.load(GuestKind::Vm, vmid)?;
    let key = format!("serial{index}");
    if loaded.config.current.get(&key).and_then(Value::as_str) != Some("socket") {
        return Err(err(
            ErrorKind::Invalid,
            format!("VM {vmid} has no {key}: socket (set it with: vmctl set {vmid} --{key} socket)"),
        ));
    }
    daemon.qemu.require_running(vmid)?;
    std::os::unix::net::UnixStream::connect(daemon.qemu.paths(vmid).serial(index))
        .map_err(|e| err(ErrorKind::Unavailable, format!("cannot open {key} of VM {vmid}: {e}")))
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
