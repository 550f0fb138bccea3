//! What only VMs have, over the QEMU engine (hearth-qemu): their status report, the human
//! monitor, the serial console and `showcmd`. Starting, stopping and the rest of the lifecycle
//! are engine-agnostic and live in `lifecycle`.

use hearth_core::runtime::StartOptions;
use hearth_core::{GuestKind, Value, Vmid};
use hearth_proto::{ErrorKind, ErrorReply, Payload, VmStatusReport};

use crate::Daemon;
use crate::lifecycle::{resolve, runtime_reply};

fn err(kind: ErrorKind, message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(kind, message)
}

/// `vmctl showcmd`: the command line a start would run, one line or one option per line
/// (root only, by the table: it shows host paths).
pub fn show_command(daemon: &Daemon, vmid: Vmid, pretty: bool) -> Result<Payload, ErrorReply> {
    let config = daemon.store.load(GuestKind::Vm, vmid)?.config;
    let resources = resolve(daemon, vmid, &config).map_err(|e| err(ErrorKind::Invalid, e.message))?;
    let launch = daemon
        .runtime(GuestKind::Vm)
        .prepare(resources, &StartOptions::default())
        .map_err(|e| err(ErrorKind::Invalid, e.message))?;
    Ok(Payload::Text(launch.describe(pretty)))
}

fn require_running(daemon: &Daemon, vmid: Vmid) -> Result<(), ErrorReply> {
    if daemon.guest_running(GuestKind::Vm, vmid) {
        Ok(())
    } else {
        Err(runtime_reply(hearth_core::runtime::RuntimeError::not_running(GuestKind::Vm, vmid)))
    }
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
    let run = daemon.runtime(GuestKind::Vm).status(vmid, verbose);
    if let Some(pid) = run.pid {
        report.status = "running".into();
        report.pid = Some(pid);
        report.uptime = run.uptime;
        report.qmpstatus = run.state;
        report.mem = run.mem;
        report.diskread = run.diskread;
        report.diskwrite = run.diskwrite;
        report.netin = run.netin;
        report.netout = run.netout;
    }
    Ok(Payload::VmStatus(report))
}

/// Runs a human-monitor command (root only, as qm monitor, by the table).
pub fn monitor(daemon: &Daemon, vmid: Vmid, command: &str) -> Result<Payload, ErrorReply> {
    daemon.store.load(GuestKind::Vm, vmid)?;
    require_running(daemon, vmid)?;
    let mut qmp = daemon.qemu.qmp(vmid).map_err(runtime_reply)?;
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
    require_running(daemon, vmid)?;
    std::os::unix::net::UnixStream::connect(daemon.qemu.paths(vmid).serial(index))
        .map_err(|e| err(ErrorKind::Unavailable, format!("cannot open {key} of VM {vmid}: {e}")))
}

/// Refuses a locked VM unless `skiplock` (root's, by the table), as qm's `check_lock`.
fn check_unlocked(daemon: &Daemon, vmid: Vmid, skiplock: bool) -> Result<(), ErrorReply> {
    let config = daemon.store.load(GuestKind::Vm, vmid)?.config;
    match config.lock {
        Some(lock) if !skiplock => Err(err(ErrorKind::Locked, format!("VM {vmid} is locked ({lock})"))),
        _ => Ok(()),
    }
}

/// `vmctl reset`: the reset button (QMP `system_reset`), as a `qmreset` task.
pub fn reset(
    daemon: &std::sync::Arc<Daemon>,
    caller: &crate::Caller,
    vmid: Vmid,
    skiplock: bool,
) -> Result<Payload, ErrorReply> {
    check_unlocked(daemon, vmid, skiplock)?;
    require_running(daemon, vmid)?;
    let worker = std::sync::Arc::clone(daemon);
    let upid = daemon.tasks.spawn("qmreset", &vmid.to_string(), &caller.userid, move |ctx| {
        let mut qmp = worker.qemu.qmp(vmid).map_err(|e| e.message)?;
        qmp.system_reset().map_err(|e| e.to_string())?;
        ctx.log(format!("VM {vmid} reset"));
        Ok(())
    })?;
    Ok(Payload::Task(upid))
}

/// The QMP `send-key` keys of qm's key string: names joined by `-` (`ctrl-alt-delete`), each
/// a QEMU key code name or a hex scancode (`0x1c`).
pub fn parse_keys(key: &str) -> Result<Vec<serde_json::Value>, ErrorReply> {
    let bad = |why: &str| {
        err(ErrorKind::Invalid, format!("key: '{key}' {why}; give key names joined by '-', such as ctrl-alt-delete"))
    };
    if key.is_empty() || key.len() > 256 {
        return Err(bad("is empty or too long"));
    }
    key.split('-')
        .map(|part| {
            if let Some(hex) = part.strip_prefix("0x") {
                let code = u32::from_str_radix(hex, 16).map_err(|_| bad(&format!("has a bad scancode '{part}'")))?;
                return Ok(serde_json::json!({"type": "number", "data": code}));
            }
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                return Err(bad(&format!("has a bad key name '{part}'")));
            }
            Ok(serde_json::json!({"type": "qcode", "data": part}))
        })
        .collect()
}

/// `vmctl sendkey`: presses the keys together and lets them go, as qm sendkey.
pub fn send_key(daemon: &Daemon, vmid: Vmid, key: &str, skiplock: bool) -> Result<Payload, ErrorReply> {
    let keys = parse_keys(key)?;
    check_unlocked(daemon, vmid, skiplock)?;
    require_running(daemon, vmid)?;
    let mut qmp = daemon.qemu.qmp(vmid).map_err(runtime_reply)?;
    qmp.execute("send-key", Some(serde_json::json!({"keys": keys})))
        .map_err(|e| err(ErrorKind::Invalid, format!("key: QEMU refused '{key}': {e}")))?;
    Ok(Payload::Empty)
}

/// The storage a suspend to disk writes the RAM state to: the one asked for, else the VM's
/// `vmstatestorage`, else that of its first disk, else `local`.
fn state_storage(config: &hearth_core::GuestConfig, asked: Option<&str>) -> String {
    if let Some(storage) = asked {
        return storage.to_owned();
    }
    if let Some(storage) = config.current.get("vmstatestorage").and_then(Value::as_str) {
        return storage.to_owned();
    }
    let schema = GuestKind::Vm.schema();
    for (key, value) in &config.current {
        if key.starts_with("unused") || key == "vmstate" {
            continue;
        }
        let Some(props) = schema.property(key, value) else { continue };
        if props.get("media") == Some("cdrom") {
            continue;
        }
        if let Some((storage, _)) = props.get("file").and_then(|f| f.split_once(':')) {
            return storage.to_owned();
        }
    }
    "local".to_owned()
}

/// `vmctl suspend --todisk`: saves the VM's RAM into a new `vm-<vmid>-state-suspend-<date>`
/// volume (QEMU migrates into it), stops QEMU and leaves the VM locked `suspended` with
/// `vmstate` naming the volume; the next start resumes from it. Datastore.AllocateSpace on the
/// state's storage is checked here, where the storage is known.
pub fn suspend_to_disk(
    daemon: &std::sync::Arc<Daemon>,
    caller: &crate::Caller,
    vmid: Vmid,
    statestorage: Option<&str>,
) -> Result<Payload, ErrorReply> {
    use hearth_core::guest::Lock;
    use hearth_core::storage::Format;
    use hearth_storage::NewImage;
    let config = daemon.store.load(GuestKind::Vm, vmid)?.config;
    if let Some(lock) = config.lock {
        return Err(err(ErrorKind::Locked, format!("VM {vmid} is locked ({lock})")));
    }
    require_running(daemon, vmid)?;
    let storage = state_storage(&config, statestorage);
    crate::access::authorize_also(
        &daemon.access,
        caller,
        format!("/storage/{storage}"),
        hearth_core::access::Privilege::DatastoreAllocateSpace,
    )?;
    let backend = daemon.storages.backend(&storage)?;
    if !backend.config().has_content(hearth_core::storage::Content::Images) {
        return Err(err(
            ErrorKind::Invalid,
            format!("statestorage: storage '{storage}' does not hold content 'images'"),
        ));
    }
    let memory = config.current.get("memory").and_then(Value::as_int).unwrap_or(512).max(1) as u64;
    let worker = std::sync::Arc::clone(daemon);
    let upid = daemon.tasks.spawn("qmsuspend", &vmid.to_string(), &caller.userid, move |ctx| {
        let run_lock = worker.run_lock(GuestKind::Vm, vmid);
        let _held = run_lock.lock().unwrap_or_else(|p| p.into_inner());
        worker
            .store
            .update(GuestKind::Vm, vmid, None, |c| match c.lock {
                Some(held) => Err(err(ErrorKind::Locked, format!("VM {vmid} is locked ({held})"))),
                None => {
                    c.lock = Some(Lock::Suspending);
                    Ok(())
                }
            })
            .map_err(|e| e.message)?;
        let unlock = |w: &Daemon| {
            let _ = w.store.update(GuestKind::Vm, vmid, None, |c| {
                c.lock = None;
                Ok(())
            });
        };
        let (year, month, day) = hearth_core::time::civil_from_days(crate::backup::now().div_euclid(86_400));
        let name = format!("vm-{vmid}-state-suspend-{year:04}-{month:02}-{day:02}.raw");
        // The file grows as QEMU writes; its size here is only the first allocation.
        let new = NewImage { vmid, name: Some(name), format: Format::Raw, size: 1 << 20 };
        let allocated = worker.storages.locked(&storage, || backend.alloc(&new)).map_err(|e| e.to_string());
        let vol = match allocated {
            Ok(vol) => vol,
            Err(e) => {
                unlock(&worker);
                return Err(format!("cannot allocate the state volume on '{storage}': {e}"));
            }
        };
        let volid = crate::storage::volid_of(backend.as_ref(), &vol);
        let saved = save_state(&worker, vmid, &backend.path(&vol).map_err(|e| e.to_string())?, memory, &|l| ctx.log(l));
        if let Err(e) = saved {
            let _ = crate::storage::free_volume(&worker, &volid);
            unlock(&worker);
            return Err(e);
        }
        ctx.log(format!("RAM state saved to {volid}"));
        let stopped = worker.runtime(GuestKind::Vm).stop(vmid).map_err(|e| e.message);
        worker
            .store
            .update(GuestKind::Vm, vmid, None, |c| {
                c.lock = Some(Lock::Suspended);
                c.current.insert("vmstate".into(), Value::Str(volid.clone()));
                Ok(())
            })
            .map_err(|e| e.message)?;
        stopped?;
        ctx.log(format!("VM {vmid} suspended to disk"));
        Ok(())
    })?;
    Ok(Payload::Task(upid))
}

/// Migrates the running VM's state into `path` and waits until QEMU says it is complete (the
/// guest is paused from then on).
fn save_state(
    daemon: &Daemon,
    vmid: Vmid,
    path: &std::path::Path,
    memory_mib: u64,
    log: &dyn Fn(String),
) -> Result<(), String> {
    let path = path.to_str().filter(|p| !p.contains('\'')).ok_or("the state volume's path cannot be given to QEMU")?;
    let mut qmp = daemon.qemu.qmp(vmid).map_err(|e| e.message)?;
    log(format!("saving {memory_mib} MiB of RAM state"));
    qmp.execute("migrate", Some(serde_json::json!({"uri": format!("exec:cat > '{path}'")})))
        .map_err(|e| format!("QEMU refused to save the state: {e}"))?;
    // Generous: a large VM on a slow disk takes minutes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600 + memory_mib / 10);
    loop {
        let info = qmp.execute("query-migrate", None).map_err(|e| e.to_string())?;
        match info.get("status").and_then(serde_json::Value::as_str) {
            Some("completed") => return Ok(()),
            Some("failed" | "cancelled") => {
                let why = info.get("error-desc").and_then(serde_json::Value::as_str).unwrap_or("no reason given");
                let _ = qmp.cont();
                return Err(format!("saving the RAM state failed: {why}"));
            }
            _ if std::time::Instant::now() >= deadline => {
                let _ = qmp.execute("migrate_cancel", None);
                let _ = qmp.cont();
                return Err("saving the RAM state took too long; cancelled".to_owned());
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
}

/// The host path of the RAM state a VM suspended to disk resumes from: `Some` when it is
/// locked `suspended` and `vmstate` names a volume.
pub(crate) fn saved_state(
    daemon: &Daemon,
    kind: GuestKind,
    vmid: Vmid,
    config: &hearth_core::GuestConfig,
) -> Result<Option<std::path::PathBuf>, ErrorReply> {
    if kind != GuestKind::Vm || config.lock != Some(hearth_core::guest::Lock::Suspended) {
        return Ok(None);
    }
    let Some(volid) = config.current.get("vmstate").and_then(Value::as_str) else { return Ok(None) };
    let (backend, vol) =
        daemon.storages.volume(volid).map_err(|e| err(e.kind, format!("vmstate of VM {vmid}: {}", e.message)))?;
    let path = backend.path(&vol).map_err(crate::storage::to_reply)?;
    if !path.exists() {
        return Err(err(ErrorKind::NotFound, format!("vmstate of VM {vmid}: volume '{volid}' does not exist")));
    }
    Ok(Some(path))
}

/// After a resume from disk: the lock and `vmstate` go, and so does the state volume.
pub(crate) fn forget_saved_state(daemon: &Daemon, kind: GuestKind, vmid: Vmid, log: &dyn Fn(String)) {
    if kind != GuestKind::Vm {
        return;
    }
    let taken = daemon.store.update(GuestKind::Vm, vmid, None, |c| {
        if c.lock != Some(hearth_core::guest::Lock::Suspended) {
            return Ok(None);
        }
        c.lock = None;
        Ok(c.current.remove("vmstate").and_then(|v| v.as_str().map(str::to_owned)))
    });
    if let Ok((Some(volid), _)) = taken {
        match crate::storage::free_volume(daemon, &volid) {
            Ok(()) => log(format!("removed the state volume {volid}")),
            Err(e) => log(format!("WARN: cannot remove the state volume {volid}: {}", e.message)),
        }
    }
}

/// Whether the VM is stopped, suspended to disk.
pub(crate) fn suspended_to_disk(daemon: &Daemon, vmid: Vmid) -> bool {
    !daemon.guest_running(GuestKind::Vm, vmid)
        && daemon.store.load(GuestKind::Vm, vmid).is_ok_and(|l| {
            l.config.lock == Some(hearth_core::guest::Lock::Suspended) && l.config.current.contains_key("vmstate")
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;

    #[test]
    fn sendkey_takes_qm_key_strings() {
        let keys = parse_keys("ctrl-alt-delete").unwrap();
        assert_eq!(keys.len(), 3);
        assert_eq!(keys[2], serde_json::json!({"type": "qcode", "data": "delete"}));
        assert_eq!(parse_keys("0x1c").unwrap()[0], serde_json::json!({"type": "number", "data": 28}));
        assert_eq!(parse_keys("shift-a").unwrap().len(), 2);
        for bad in ["", "ctrl--alt", "Ctrl", "a b", "0xzz", "-", "ctrl-"] {
            assert!(parse_keys(bad).is_err(), "{bad:?}");
        }
    }
}
