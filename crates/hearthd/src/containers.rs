//! What only containers have, over the container engine (hearth-ct): their status report,
//! exec, push and pull through `hearth-ctmon exec`, `mount`/`unmount` of a stopped container's
//! rootfs, `df`, the consoles, and filling a new container's rootfs from its template.
//! Starting, stopping and the rest of the lifecycle are engine-agnostic and live in `lifecycle`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hearth_core::runtime::RuntimeError;
use hearth_core::storage::VolName;
use hearth_core::{GuestConfig, GuestKind, Value, Vmid};
use hearth_ct::attach::{AttachMode, AttachSpec};
use hearth_ct::monitor;
use hearth_ct::spec::{ContainerSpec, IdMap, RootFs};
use hearth_proto::{CtStatusReport, DfEntry, ErrorKind, ErrorReply, ExecInCt, Payload};

use crate::Daemon;
use crate::lifecycle::{resolve_volume, runtime_reply};

pub use hearth_ct::runtime::cgroup_base;

fn err(kind: ErrorKind, message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(kind, message)
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
    match resolve_volume(daemon, vmid, key, volume)? {
        Some(resolved) => Ok(hearth_ct::runtime::root_fs(&resolved)),
        None => Err(err(ErrorKind::Invalid, format!("{key}: '{volume}' is not a volume"))),
    }
}

/// The init's pid of a running container, or why not.
fn require_running(daemon: &Daemon, vmid: Vmid) -> Result<i32, ErrorReply> {
    daemon.ct.init_pid(vmid).ok_or_else(|| runtime_reply(RuntimeError::not_running(GuestKind::Ct, vmid)))
}

fn ostype(config: &GuestConfig) -> Option<String> {
    hearth_ct::runtime::ostype(&config.current)
}

pub fn status(daemon: &Daemon, vmid: Vmid, verbose: bool) -> Result<Payload, ErrorReply> {
    let config = daemon.store.load(GuestKind::Ct, vmid)?.config;
    let run = daemon.runtime(GuestKind::Ct).status(vmid, verbose);
    Ok(Payload::CtStatus(CtStatusReport {
        vmid,
        status: if run.pid.is_some() { "running" } else { "stopped" }.into(),
        name: match config.current.get("hostname") {
            Some(Value::Str(h)) => Some(h.clone()),
            _ => None,
        },
        lock: config.lock.map(|l| l.to_string()),
        pid: run.pid,
        monitor_pid: run.monitor_pid,
        uptime: run.uptime,
        cpus: int(&config, "cores").unwrap_or(0) as u64,
        maxmem: (int(&config, "memory").unwrap_or(512) as u64) << 20,
        maxswap: (int(&config, "swap").unwrap_or(512) as u64) << 20,
        mem: run.mem,
        pids: run.pids,
        cputime: run.cputime,
        netin: run.netin,
        netout: run.netout,
        last_exit: run.last_exit,
    }))
}

fn run_attach(daemon: &Daemon, vmid: Vmid, mode: AttachMode, stdio: [Stdio; 3]) -> Result<(i32, String), ErrorReply> {
    daemon.store.load(GuestKind::Ct, vmid)?;
    let init_pid = require_running(daemon, vmid)?;
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
    let child = Command::new(daemon.ct.ctmon())
        .arg("exec")
        .arg(json)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| err(ErrorKind::Internal, format!("cannot run {}: {e}", daemon.ct.ctmon().display())))?;
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

/// `pct mount`: the stopped container's rootfs on the host, locked `mounted` (root only, by
/// the table).
pub fn mount(daemon: &Daemon, vmid: Vmid) -> Result<Payload, ErrorReply> {
    let config = daemon.store.load(GuestKind::Ct, vmid)?.config;
    if let Some(lock) = config.lock {
        return Err(err(ErrorKind::Locked, format!("CT {vmid} is locked ({lock})")));
    }
    if flag(&config, "template", false) {
        return Err(err(ErrorKind::Invalid, format!("CT {vmid} is a template and cannot be started; clone it first")));
    }
    if daemon.guest_running(GuestKind::Ct, vmid) {
        return Err(runtime_reply(RuntimeError::already_running(GuestKind::Ct, vmid)));
    }
    let rootfs =
        config.current.get("rootfs").ok_or_else(|| err(ErrorKind::Invalid, format!("CT {vmid} has no rootfs")))?;
    let rootfs = props("rootfs", rootfs)?;
    let rootfs = volume_source(daemon, vmid, "rootfs", rootfs.get("volume").unwrap_or_default())?;
    let target = mount_dir(daemon, vmid);
    let lock = daemon.run_lock(GuestKind::Ct, vmid);
    let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
    daemon.store.update(GuestKind::Ct, vmid, None, |c| {
        if let Some(lock) = c.lock {
            return Err(err(ErrorKind::Locked, format!("CT {vmid} is locked ({lock})")));
        }
        c.lock = Some(hearth_core::Lock::Mounted);
        Ok(())
    })?;
    if let Err(e) = mount_volume(&rootfs, &target) {
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
    require_running(daemon, vmid)?;
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
    require_running(daemon, vmid)?;
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
    let archive = template_path(daemon, &ct.ostemplate)?;
    if !archive.is_file() {
        return Err(format!("ostemplate: '{}' does not exist", ct.ostemplate));
    }
    let rootfs = config.current.get("rootfs").ok_or("rootfs: a container needs one")?;
    let rootfs = props("rootfs", rootfs).map_err(|e| e.message)?;
    let source =
        volume_source(daemon, vmid, "rootfs", rootfs.get("volume").unwrap_or_default()).map_err(|e| e.message)?;
    let idmap = flag(&config, "unprivileged", true).then(IdMap::unprivileged_default);
    let staging = daemon.ct.run_dir().join(format!("{vmid}.create"));
    let (target, mounted) = match &source {
        RootFs::Dir { path } => (path.clone(), false),
        RootFs::Image { .. } => {
            mount_volume(&source, &staging).map_err(|e| e.message)?;
            (staging.clone(), true)
        }
    };
    let result = (|| {
        log(format!("extracting {}", ct.ostemplate));
        let info = hearth_ct::template::extract(daemon.ct.ctmon(), &archive, &target, idmap.as_ref())
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
        hearth_ct::setup::apply(daemon.ct.ctmon(), &target, idmap.as_ref(), &setup).map_err(|e| e.to_string())?;
        Ok(ostype)
    })();
    if mounted {
        let _ = Command::new("umount").arg(&staging).status();
        let _ = std::fs::remove_dir(&staging);
    }
    result
}

/// `ctctl cpusets`: the host CPUs each running container's cpuset allows, as JSON text
/// `{"<ctid>": [cpus]}`; only containers the caller may audit.
pub fn cpusets(daemon: &Daemon, caller: &crate::Caller) -> Result<Payload, ErrorReply> {
    let audit = hearth_core::access::Privilege::VmAudit;
    let mut sets = serde_json::Map::new();
    for listed in daemon.store.list(GuestKind::Ct)? {
        let path = hearth_core::access::AclPath::vm(listed.vmid);
        if !caller.is_root() && !daemon.access.privileges(caller, &path).contains(audit) {
            continue;
        }
        if let Some(cpus) = daemon.ct.cpu_list(listed.vmid) {
            sets.insert(listed.vmid.to_string(), serde_json::json!(cpus));
        }
    }
    Ok(Payload::Text(serde_json::Value::Object(sets).to_string()))
}

/// The file of a template: a vztmpl volume's, or a host path (which only root@pam may name; a
/// path inside a storage arrives here as its volume id).
fn template_path(daemon: &Daemon, ostemplate: &str) -> Result<PathBuf, String> {
    if ostemplate.starts_with('/') {
        return Ok(PathBuf::from(ostemplate));
    }
    let (backend, vol) = daemon.storages.volume(ostemplate).map_err(|e| format!("ostemplate: {}", e.message))?;
    let is_template =
        matches!(&vol, VolName::File { content, .. } if *content == hearth_core::storage::Content::Vztmpl);
    if !is_template {
        return Err(format!("ostemplate: '{ostemplate}' is not a container template (vztmpl) volume"));
    }
    backend.path(&vol).map_err(|e| format!("ostemplate: {e}"))
}
