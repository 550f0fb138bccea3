//! A guest's disks as a whole, as qm and pct handle them: snapshots (taken, listed as a tree,
//! rolled back, deleted), templates, linked and full clones, and growing a disk.
//!
//! Every operation holds the guest's lock (`snapshot`, `rollback`, `snapshot-delete`, `clone`,
//! `disk`) while it runs and clears it however it ends, and undoes the volume changes it made
//! when it fails part way, so no half-snapshotted or half-cloned guest remains.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hearth_core::access::Privilege;
use hearth_core::guest::Section;
use hearth_core::runtime::StartOptions;
use hearth_core::storage::{Format, VolName};
use hearth_core::{GuestConfig, GuestKind, Lock, Value, Vmid, size};
use hearth_proto::{CloneGuest, ErrorKind, ErrorReply, Payload, SnapshotInfo};

use crate::Daemon;
use crate::access::Caller;
use crate::storage::to_reply;

fn err(kind: ErrorKind, message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(kind, message)
}

/// Keys that belong to the guest rather than to a point in its history.
fn is_unsnapshotted(key: &str) -> bool {
    key == "description" || key.starts_with("unused")
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The disks of a section that snapshots and clones cover: (key, volume id). CD-ROMs, ISO
/// files, `unusedN` and absolute paths are not part of them.
pub(crate) fn disks(kind: GuestKind, section: &Section) -> Vec<(String, String)> {
    let schema = kind.schema();
    section
        .iter()
        .filter(|(key, _)| !key.starts_with("unused"))
        .filter_map(|(key, value)| {
            let props = schema.property(key, value)?;
            if props.get("media") == Some("cdrom") {
                return None;
            }
            let volume = props.get("file").or_else(|| props.get("volume"))?;
            (volume.contains(':') && !volume.starts_with('/')).then(|| (key.clone(), volume.to_owned()))
        })
        .collect()
}

/// Sets `lock` for the length of `work`, then clears it whatever happened.
pub(crate) fn with_lock<T>(
    daemon: &Daemon,
    kind: GuestKind,
    vmid: Vmid,
    lock: Lock,
    work: impl FnOnce() -> Result<T, String>,
) -> Result<T, String> {
    daemon
        .store
        .update(kind, vmid, None, |config| match config.lock {
            Some(held) => Err(err(ErrorKind::Locked, format!("{} {vmid} is locked ({held})", kind.noun()))),
            None => {
                config.lock = Some(lock);
                Ok(())
            }
        })
        .map_err(|e| e.message)?;
    let result = work();
    let cleared = daemon.store.update(kind, vmid, None, |config| {
        config.lock = None;
        Ok(())
    });
    if let Err(e) = cleared {
        tracing::error!(%vmid, error = %e.message, "cannot clear the lock");
    }
    result
}

fn running(daemon: &Daemon, kind: GuestKind, vmid: Vmid) -> bool {
    daemon.guest_running(kind, vmid)
}

/// Whether QEMU itself must take the snapshot: a running VM's qcow2 image is QEMU's to write.
fn qemu_owns(daemon: &Daemon, kind: GuestKind, vmid: Vmid, volume: &str) -> bool {
    running(daemon, kind, vmid)
        && daemon
            .storages
            .volume(volume)
            .ok()
            .and_then(|(b, v)| b.image_info(&v).ok())
            .is_some_and(|(format, _)| format == Format::Qcow2)
}

/// Snapshots or deletes the snapshot `name` of one disk, through QEMU for a running VM's
/// qcow2 image and through the storage otherwise.
fn disk_snapshot(
    daemon: &Daemon,
    kind: GuestKind,
    vmid: Vmid,
    key: &str,
    volume: &str,
    name: &str,
    delete: bool,
) -> Result<(), String> {
    if qemu_owns(daemon, kind, vmid, volume) {
        let mut qmp = daemon.qemu.qmp(vmid).map_err(|e| e.message)?;
        // Internal snapshots of large images take their time.
        qmp.set_timeout(Duration::from_secs(600)).map_err(|e| e.to_string())?;
        let node = format!("drive-{key}");
        let result = if delete {
            qmp.blockdev_snapshot_delete_internal_sync(&node, name)
        } else {
            qmp.blockdev_snapshot_internal_sync(&node, name)
        };
        return result.map_err(|e| format!("{key}: {e}"));
    }
    let (backend, vol) = daemon.storages.volume(volume).map_err(|e| format!("{key}: {}", e.message))?;
    let result = if delete { backend.delete_snapshot(&vol, name) } else { backend.snapshot(&vol, name) };
    result.map_err(|e| format!("{key}: {e}"))
}

pub fn snapshot(
    daemon: &Arc<Daemon>,
    caller: &Caller,
    kind: GuestKind,
    vmid: Vmid,
    name: String,
    description: Option<String>,
    vmstate: bool,
) -> Result<Payload, ErrorReply> {
    hearth_core::guest::check_snapshot_name(&name).map_err(|e| err(ErrorKind::Invalid, e.to_string()))?;
    let loaded = daemon.store.load(kind, vmid)?;
    // The RAM state goes inside the qcow2 images (QEMU's savevm), so every disk must be one.
    let save_ram = vmstate && running(daemon, kind, vmid);
    if save_ram {
        if let Some((key, volume)) =
            disks(kind, &loaded.config.current).into_iter().find(|(_, v)| !qemu_owns(daemon, kind, vmid, v))
        {
            return Err(err(
                ErrorKind::Invalid,
                format!("--vmstate needs every disk in qcow2; {key} ({volume}) is not (take the snapshot without it)"),
            ));
        }
    }
    if loaded.config.current.get("template") == Some(&Value::Bool(true)) {
        return Err(err(
            ErrorKind::Invalid,
            format!("{} {vmid} is a template; templates take no snapshots", kind.noun()),
        ));
    }
    if loaded.config.snapshots.contains_key(&name) {
        return Err(err(ErrorKind::Conflict, format!("snapshot '{name}' of {} {vmid} already exists", kind.noun())));
    }
    let worker = Arc::clone(daemon);
    let upid = daemon.tasks.spawn(&kind.task_type("snapshot"), &vmid.to_string(), &caller.userid, move |ctx| {
        with_lock(&worker, kind, vmid, Lock::Snapshot, || {
            let config = worker.store.load(kind, vmid).map_err(|e| e.to_string())?.config;
            let disks = disks(kind, &config.current);
            if save_ram {
                // savevm pauses the guest, snapshots every image and stores the RAM state in them.
                let mut qmp = worker.qemu.qmp(vmid).map_err(|e| e.message)?;
                // Saving gigabytes of RAM takes long; the default monitor timeout would give up
                // while QEMU carries on.
                qmp.set_timeout(Duration::from_secs(3600)).map_err(|e| e.to_string())?;
                let output = qmp.human_monitor_command(&format!("savevm {name}")).map_err(|e| e.to_string())?;
                if !output.trim().is_empty() {
                    return Err(format!("saving the VM state failed: {}", output.trim()));
                }
                ctx.log(format!("saved the disks and the RAM state of VM {vmid} as '{name}'"));
                return record_snapshot(&worker, kind, vmid, &name, description.as_deref(), true);
            }
            if vmstate {
                ctx.log(format!("{} {vmid} is not running; no RAM state to save", kind.noun()));
            }
            let live = running(&worker, kind, vmid);
            // A running VM is paused for the moment its disks are snapshotted, so they agree.
            // A suspended VM stays suspended; a running one runs on afterwards.
            // A running container is frozen for that moment likewise.
            let mut resume = false;
            if live && kind == GuestKind::Vm {
                let mut qmp = worker.qemu.qmp(vmid).map_err(|e| e.message)?;
                resume = qmp.query_status().map_err(|e| e.to_string())?.running;
                if resume {
                    qmp.stop().map_err(|e| e.to_string())?;
                }
            }
            let frozen = live && kind == GuestKind::Ct;
            if frozen {
                worker.ct.freeze(vmid, true)?;
            }
            let mut taken: Vec<(String, String)> = Vec::new();
            let mut result = Ok(());
            for (key, volume) in &disks {
                match disk_snapshot(&worker, kind, vmid, key, volume, &name, false) {
                    Ok(()) => {
                        ctx.log(format!("{key}: snapshot of {volume}"));
                        taken.push((key.clone(), volume.clone()));
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            if result.is_err() {
                for (key, volume) in &taken {
                    let _ = disk_snapshot(&worker, kind, vmid, key, volume, &name, true);
                }
            }
            if resume {
                if let Ok(mut q) = worker.qemu.qmp(vmid) {
                    let _ = q.cont();
                }
            }
            if frozen {
                worker.ct.freeze(vmid, false)?;
            }
            result?;
            record_snapshot(&worker, kind, vmid, &name, description.as_deref(), false)?;
            ctx.log(format!("snapshot '{name}' of {} {vmid} taken", kind.noun()));
            Ok(())
        })
    })?;
    Ok(Payload::Task(upid))
}

/// Writes the snapshot's section: the configuration of now, without the guest's own
/// description and unused volumes (as qm), plus time, description and where the RAM state is.
fn record_snapshot(
    daemon: &Daemon,
    kind: GuestKind,
    vmid: Vmid,
    name: &str,
    description: Option<&str>,
    with_ram: bool,
) -> Result<(), String> {
    daemon
        .store
        .update(kind, vmid, None, |c| {
            let mut section: Section =
                c.current.iter().filter(|(k, _)| !is_unsnapshotted(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
            section.insert("snaptime".into(), Value::Int(now()));
            if let Some(d) = description {
                section.insert("description".into(), Value::Str(d.to_owned()));
            }
            if with_ram {
                section.insert("vmstate".into(), Value::Str("internal".into()));
            }
            c.snapshots.insert(name.to_owned(), section);
            c.current.insert("parent".into(), Value::Str(name.to_owned()));
            Ok(())
        })
        .map(drop)
        .map_err(|e| e.message)
}

pub fn list(daemon: &Daemon, kind: GuestKind, vmid: Vmid) -> Result<Payload, ErrorReply> {
    let config = daemon.store.load(kind, vmid)?.config;
    let parent_of = |s: &Section| s.get("parent").and_then(Value::as_str).map(str::to_owned);
    let mut list: Vec<SnapshotInfo> = config
        .snapshots
        .iter()
        .map(|(name, s)| SnapshotInfo {
            name: name.clone(),
            parent: parent_of(s),
            snaptime: s.get("snaptime").and_then(Value::as_int),
            description: s.get("description").and_then(Value::as_str).map(str::to_owned),
        })
        .collect();
    list.sort_by_key(|s| s.snaptime);
    list.push(SnapshotInfo {
        name: "current".into(),
        parent: parent_of(&config.current),
        snaptime: None,
        description: Some("You are here!".into()),
    });
    Ok(Payload::Snapshots(list))
}

fn require_snapshot<'a>(
    config: &'a GuestConfig,
    kind: GuestKind,
    vmid: Vmid,
    name: &str,
) -> Result<&'a Section, ErrorReply> {
    config
        .snapshots
        .get(name)
        .ok_or_else(|| err(ErrorKind::NotFound, format!("snapshot '{name}' of {} {vmid} does not exist", kind.noun())))
}

pub fn rollback(
    daemon: &Arc<Daemon>,
    caller: &Caller,
    kind: GuestKind,
    vmid: Vmid,
    name: String,
) -> Result<Payload, ErrorReply> {
    let config = daemon.store.load(kind, vmid)?.config;
    let with_ram = require_snapshot(&config, kind, vmid, &name)?.contains_key("vmstate");
    if running(daemon, kind, vmid) && !with_ram {
        return Err(err(
            ErrorKind::Conflict,
            format!("{} {vmid} is running and snapshot '{name}' has no RAM state; stop it first", kind.noun()),
        ));
    }
    let worker = Arc::clone(daemon);
    let upid = daemon.tasks.spawn(&kind.task_type("rollback"), &vmid.to_string(), &caller.userid, move |ctx| {
        // Held from the rollback through the start from the saved state, so no other start
        // can boot the rolled-back disks in between.
        let run_lock = worker.run_lock(kind, vmid);
        let _held = run_lock.lock().unwrap_or_else(|p| p.into_inner());
        with_lock(&worker, kind, vmid, Lock::Rollback, || {
            let config = worker.store.load(kind, vmid).map_err(|e| e.to_string())?.config;
            let section = require_snapshot(&config, kind, vmid, &name).map_err(|e| e.message)?.clone();
            if with_ram && running(&worker, kind, vmid) {
                // The saved state replaces the running one: the VM stops, then resumes from it.
                worker.runtime(kind).stop(vmid)?;
                ctx.log(format!("stopped VM {vmid} to load the saved state"));
            }
            for (key, volume) in disks(kind, &section) {
                let (backend, vol) = worker.storages.volume(&volume).map_err(|e| format!("{key}: {}", e.message))?;
                backend.rollback(&vol, &name).map_err(|e| format!("{key}: {e}"))?;
                ctx.log(format!("{key}: {volume} rolled back"));
            }
            worker
                .store
                .update(kind, vmid, None, |c| {
                    let mut current: Section = section
                        .iter()
                        .filter(|(k, _)| !is_unsnapshotted(k) && *k != "snaptime" && *k != "vmstate")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    // The description and unused volumes of now stay: they are not in snapshots.
                    current.extend(
                        c.current.iter().filter(|(k, _)| is_unsnapshotted(k)).map(|(k, v)| (k.clone(), v.clone())),
                    );
                    current.insert("parent".into(), Value::Str(name.clone()));
                    c.current = current;
                    c.pending = Default::default();
                    Ok(())
                })
                .map_err(|e| e.message)?;
            ctx.log(format!("{} {vmid} rolled back to '{name}'", kind.noun()));
            Ok(())
        })?;
        if with_ram {
            // Started once the rollback lock is gone, from the saved state.
            let log = |line: String| ctx.log(line);
            let options = StartOptions { resume_state: Some(name.clone()), ..StartOptions::default() };
            crate::lifecycle::start_locked(&worker, kind, vmid, &options, &log)?;
            ctx.log(format!("VM {vmid} resumed from the state saved in '{name}'"));
        }
        Ok(())
    })?;
    Ok(Payload::Task(upid))
}

pub fn delete(
    daemon: &Arc<Daemon>,
    caller: &Caller,
    kind: GuestKind,
    vmid: Vmid,
    name: String,
) -> Result<Payload, ErrorReply> {
    let config = daemon.store.load(kind, vmid)?.config;
    require_snapshot(&config, kind, vmid, &name)?;
    let worker = Arc::clone(daemon);
    let upid = daemon.tasks.spawn(&kind.task_type("delsnapshot"), &vmid.to_string(), &caller.userid, move |ctx| {
        with_lock(&worker, kind, vmid, Lock::SnapshotDelete, || {
            let config = worker.store.load(kind, vmid).map_err(|e| e.to_string())?.config;
            let section = require_snapshot(&config, kind, vmid, &name).map_err(|e| e.message)?.clone();
            for (key, volume) in disks(kind, &section) {
                // A snapshot already gone (an earlier attempt that failed part way) is fine, so
                // a retry can finish the job.
                let gone = !qemu_owns(&worker, kind, vmid, &volume)
                    && worker
                        .storages
                        .volume(&volume)
                        .ok()
                        .and_then(|(b, v)| b.snapshots(&v).ok())
                        .is_some_and(|snaps| !snaps.contains(&name));
                if gone {
                    ctx.log(format!("{key}: snapshot of {volume} is already gone"));
                    continue;
                }
                disk_snapshot(&worker, kind, vmid, &key, &volume, &name, true)?;
                ctx.log(format!("{key}: snapshot of {volume} deleted"));
            }
            worker
                .store
                .update(kind, vmid, None, |c| {
                    // Children of the deleted snapshot now hang off its parent.
                    let grandparent = c.snapshots.remove(&name).and_then(|s| s.get("parent").cloned());
                    let sections = c.snapshots.values_mut().chain(std::iter::once(&mut c.current));
                    for s in sections {
                        if s.get("parent").and_then(Value::as_str) == Some(name.as_str()) {
                            match &grandparent {
                                Some(p) => s.insert("parent".into(), p.clone()),
                                None => s.remove("parent"),
                            };
                        }
                    }
                    Ok(())
                })
                .map_err(|e| e.message)?;
            Ok(())
        })
    })?;
    Ok(Payload::Task(upid))
}

/// Replaces the volume of a disk value, keeping its other properties; `size` (bytes, when
/// given and not 0) replaces the size property.
pub(crate) fn with_volume(
    kind: GuestKind,
    key: &str,
    value: &Value,
    volid: &str,
    size: Option<u64>,
) -> Result<Value, String> {
    let def = kind.schema().lookup(key).ok_or_else(|| format!("{key}: not a disk key"))?;
    let hearth_core::schema::Kind::Prop(schema) = def.kind else { return Ok(Value::Str(volid.to_owned())) };
    let mut props = kind.schema().property(key, value).ok_or_else(|| format!("{key}: cannot be parsed"))?;
    let prop = if schema.props.iter().any(|p| p.name == "file") { "file" } else { "volume" };
    props.insert(schema, prop, volid.to_owned());
    if let Some(bytes) = size.filter(|b| *b > 0) {
        props.insert(schema, "size", size::format_size(bytes));
    }
    Ok(Value::Str(props.to_string()))
}

pub fn template(daemon: &Arc<Daemon>, caller: &Caller, kind: GuestKind, vmid: Vmid) -> Result<Payload, ErrorReply> {
    let config = daemon.store.load(kind, vmid)?.config;
    if running(daemon, kind, vmid) {
        return Err(err(ErrorKind::Conflict, format!("VM {vmid} is running; stop it first")));
    }
    if config.current.get("template") == Some(&Value::Bool(true)) {
        return Err(err(ErrorKind::Conflict, format!("{} {vmid} is already a template", kind.noun())));
    }
    if !config.snapshots.is_empty() {
        return Err(err(ErrorKind::Conflict, format!("{} {vmid} has snapshots; delete them first", kind.noun())));
    }
    let worker = Arc::clone(daemon);
    let upid = daemon.tasks.spawn(&kind.task_type("template"), &vmid.to_string(), &caller.userid, move |ctx| {
        // qm holds no configuration lock for this; the run lock keeps a start out meanwhile.
        let run_lock = worker.run_lock(kind, vmid);
        let _held = run_lock.lock().unwrap_or_else(|p| p.into_inner());
        (|| -> Result<(), String> {
            let config = worker.store.load(kind, vmid).map_err(|e| e.to_string())?.config;
            if let Some(lock) = config.lock {
                return Err(format!("{} {vmid} is locked ({lock})", kind.noun()));
            }
            if running(&worker, kind, vmid) {
                return Err(format!("VM {vmid} is running; stop it first"));
            }
            let mut values = Vec::new();
            for (key, volume) in disks(kind, &config.current) {
                let (backend, vol) = worker.storages.volume(&volume).map_err(|e| format!("{key}: {}", e.message))?;
                let base = backend.create_base(&vol).map_err(|e| format!("{key}: {e}"))?;
                let volid = format!("{}:{}", backend.config().id, base.render(backend.config().storage_type));
                ctx.log(format!("{key}: {volume} is now the base image {volid}"));
                let value = config.current.get(&key).ok_or("disk vanished")?;
                values.push((key.clone(), with_volume(kind, &key, value, &volid, None)?));
            }
            worker
                .store
                .update(kind, vmid, None, |c| {
                    c.current.extend(values.clone());
                    c.current.insert("template".into(), Value::Bool(true));
                    Ok(())
                })
                .map_err(|e| e.message)?;
            Ok(())
        })()
    })?;
    Ok(Payload::Task(upid))
}

/// A NIC value without its MAC address, so the clone gets a new one.
fn without_mac(value: &Value) -> Value {
    let Some(text) = value.as_str() else { return value.clone() };
    let parts: Vec<String> = text
        .split(',')
        .enumerate()
        .filter(|(_, p)| !p.starts_with("macaddr="))
        .map(|(i, p)| if i == 0 { p.split('=').next().unwrap_or(p).to_owned() } else { p.to_owned() })
        .collect();
    Value::Str(parts.join(","))
}

pub fn clone(daemon: &Arc<Daemon>, caller: &Caller, kind: GuestKind, req: CloneGuest) -> Result<Payload, ErrorReply> {
    let (vmid, newid) = (req.vmid, req.newid);
    let source = daemon.store.load(kind, vmid)?.config;
    // As Proxmox: every disk copied or linked spends space on its storage (the target's for a
    // full clone; the table checks that one and VM.Allocate on the new id).
    // The clone gets a cloud-init drive of its own too.
    let cloudinit_drives = match kind {
        GuestKind::Vm => hearth_core::cloudinit::drives(&source.current, vmid),
        GuestKind::Ct => Vec::new(),
    };
    for (key, volume) in disks(kind, &source.current).into_iter().chain(cloudinit_drives) {
        let from = volume.split_once(':').map_or(volume.as_str(), |(s, _)| s);
        let storage = req.target.as_deref().unwrap_or(from);
        crate::access::authorize_also(
            &daemon.access,
            caller,
            format!("/storage/{storage}"),
            Privilege::DatastoreAllocateSpace,
        )
        .map_err(|e| ErrorReply::new(e.kind, format!("{key}: {}", e.message)))?;
    }
    // A privileged container's root is host root: only root makes another one.
    if kind == GuestKind::Ct && source.current.get("unprivileged") == Some(&Value::Bool(false)) && !caller.is_root() {
        return Err(err(ErrorKind::PermissionDenied, "only root@pam may clone a privileged container"));
    }
    let is_template = source.current.get("template") == Some(&Value::Bool(true));
    let full = req.full.unwrap_or(!is_template);
    if !full && !is_template {
        return Err(err(ErrorKind::Invalid, format!("linked clones need a template; {vmid} is not one (use --full)")));
    }
    if full && running(daemon, kind, vmid) {
        return Err(err(
            ErrorKind::Conflict,
            format!("{} {vmid} is running; stop it before a full clone", kind.noun()),
        ));
    }
    if let Some(target) = &req.target {
        daemon.storages.backend(target)?;
        if !full {
            return Err(err(ErrorKind::Invalid, "--target needs --full: a linked clone stays on its base's storage"));
        }
    }
    // The new id is taken now, locked, so nobody else can have it while the disks are copied.
    let mut placeholder = GuestConfig::new(kind);
    placeholder.lock = Some(Lock::Clone);
    daemon.store.create(kind, newid, &placeholder)?;
    let worker = Arc::clone(daemon);
    let spawned = daemon.tasks.spawn(&kind.task_type("clone"), &vmid.to_string(), &caller.userid, move |ctx| {
        let mut made: Vec<String> = Vec::new();
        let result = with_lock(&worker, kind, vmid, Lock::Clone, || {
            let source = worker.store.load(kind, vmid).map_err(|e| e.to_string())?.config;
            // Unused volumes stay with the source, as with qm.
            let mut current: Section = source
                .current
                .iter()
                .filter(|(k, _)| !k.starts_with("unused"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            current.remove("template");
            current.remove("parent");
            let name_key = if kind == GuestKind::Vm { "name" } else { "hostname" };
            match &req.name {
                Some(n) => current.insert(name_key.into(), Value::Str(n.clone())),
                None => current.remove(name_key),
            };
            for (key, volume) in disks(kind, &source.current) {
                let (backend, vol) = worker.storages.volume(&volume).map_err(|e| format!("{key}: {}", e.message))?;
                let (new, target_id, target_type) = if full {
                    let target = match &req.target {
                        Some(t) => worker.storages.backend(t).map_err(|e| e.message)?,
                        None => worker.storages.backend(&backend.config().id).map_err(|e| e.message)?,
                    };
                    ctx.log(format!("{key}: copying {volume} to storage '{}'", target.config().id));
                    let (from, to) = (backend.config().id.clone(), target.config().id.clone());
                    let limit = crate::storage::bandwidth_limit(&worker, "clone", &[&from, &to], req.bwlimit);
                    if let Some(kib) = limit {
                        ctx.log(format!("{key}: bandwidth limit {kib} KiB/s"));
                    }
                    // A container's image holds a file system: it stays raw (or a directory).
                    let ct_format = match backend.image_info(&vol) {
                        Ok((f, _)) if kind == GuestKind::Ct && f != Format::Subvol => Some(Format::Raw),
                        _ => None,
                    };
                    let new = hearth_storage::clone_full_limited(
                        backend.as_ref(),
                        &vol,
                        target.as_ref(),
                        newid,
                        ct_format,
                        limit,
                    )
                    .map_err(|e| format!("{key}: {e}"))?;
                    (new, target.config().id.clone(), target.config().storage_type)
                } else {
                    let new = backend.clone_linked(&vol, newid).map_err(|e| format!("{key}: {e}"))?;
                    (new, backend.config().id.clone(), backend.config().storage_type)
                };
                let volid = format!("{target_id}:{}", new.render(target_type));
                ctx.log(format!("{key}: {volid}"));
                made.push(volid.clone());
                let value = source.current.get(&key).ok_or("disk vanished")?;
                current.insert(key.clone(), with_volume(kind, &key, value, &volid, None)?);
            }
            if kind == GuestKind::Vm {
                // As qm: the clone's cloud-init drive is new (`vm-<newid>-cloudinit`), written
                // from the clone's own settings when it starts.
                for (key, volume) in hearth_core::cloudinit::drives(&source.current, vmid) {
                    let from = volume.split_once(':').map_or(volume.as_str(), |(s, _)| s);
                    let storage = req.target.as_deref().filter(|_| full).unwrap_or(from);
                    let volid = crate::cloudinit::allocate_drive(&worker, newid, storage, None)
                        .map_err(|e| format!("{key}: {}", e.message))?;
                    ctx.log(format!("{key}: cloud-init drive {volid}"));
                    made.push(volid.clone());
                    let value = source.current.get(&key).ok_or("drive vanished")?;
                    current.insert(
                        key.clone(),
                        crate::cloudinit::drive_value(&key, value, &volid).map_err(|e| e.message)?,
                    );
                }
            }
            for (key, value) in source.current.iter().filter(|(k, _)| k.starts_with("net")) {
                current.insert(key.clone(), without_mac(value));
            }
            if kind == GuestKind::Vm {
                hearth_core::vm::regenerate_ids(&mut current, crate::guests::random_uuid_bytes);
            }
            worker
                .store
                .update(kind, newid, None, |c| {
                    c.current = current.clone();
                    c.assign_macs(crate::guests::random_mac_bytes);
                    c.lock = None;
                    Ok(())
                })
                .map_err(|e| e.message)?;
            Ok(())
        });
        if let Err(e) = &result {
            for volid in &made {
                let _ = crate::storage::free_volume(&worker, volid);
            }
            let _ = worker.store.remove(kind, newid, |_| Ok(()));
            ctx.log(format!("clone failed, nothing of {newid} was kept: {e}"));
        }
        result
    });
    match spawned {
        Ok(upid) => Ok(Payload::Task(upid)),
        Err(e) => {
            let _ = daemon.store.remove(kind, newid, |_| Ok(()));
            Err(e)
        }
    }
}

pub fn resize(
    daemon: &Arc<Daemon>,
    caller: &Caller,
    kind: GuestKind,
    vmid: Vmid,
    disk: &str,
    size: &str,
) -> Result<Payload, ErrorReply> {
    // No start or stop while the disk grows.
    let run_lock = daemon.run_lock(kind, vmid);
    let _held = run_lock.lock().unwrap_or_else(|p| p.into_inner());
    let config = daemon.store.load(kind, vmid)?.config;
    if let Some(lock) = config.lock {
        return Err(err(ErrorKind::Locked, format!("{} {vmid} is locked ({lock})", kind.noun())));
    }
    if config.current.get("template") == Some(&Value::Bool(true)) {
        return Err(err(
            ErrorKind::Invalid,
            format!("{} {vmid} is a template; its base images cannot grow", kind.noun()),
        ));
    }
    // The firmware and the TPM expect their stores at the size they were made (qm refuses too).
    if kind == GuestKind::Vm && (disk == "efidisk0" || disk == "tpmstate0") {
        return Err(err(ErrorKind::Invalid, format!("{disk}: cannot be resized; its size is fixed by its format")));
    }
    let (_, volume) = disks(kind, &config.current)
        .into_iter()
        .find(|(k, _)| k == disk)
        .ok_or_else(|| err(ErrorKind::Invalid, format!("{disk}: no such disk in {} {vmid}", kind.noun())))?;
    // Growing a disk spends space on its storage, as qm resize checks.
    let storage = volume.split_once(':').map_or(volume.as_str(), |(s, _)| s);
    crate::access::authorize_also(
        &daemon.access,
        caller,
        format!("/storage/{storage}"),
        Privilege::DatastoreAllocateSpace,
    )?;
    let (backend, vol) = daemon.storages.volume(&volume)?;
    let (_, current) = backend.image_info(&vol).map_err(to_reply)?;
    let (relative, amount) = match size.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, size),
    };
    // As qm: a bare number is bytes.
    let bytes = size::parse_size(amount, 1).map_err(|m| err(ErrorKind::Invalid, format!("size: {m}")))?;
    let target = if relative { current + bytes } else { bytes };
    if target < current {
        return Err(err(
            ErrorKind::Invalid,
            format!(
                "{disk}: shrinking from {} to {} is not supported",
                size::format_size(current),
                size::format_size(target)
            ),
        ));
    }
    if matches!(vol, VolName::Image { .. }) && kind == GuestKind::Vm && daemon.guest_running(GuestKind::Vm, vmid) {
        let mut qmp = daemon.qemu.qmp(vmid).map_err(crate::lifecycle::runtime_reply)?;
        qmp.execute("block_resize", Some(serde_json::json!({"node-name": format!("drive-{disk}"), "size": target})))
            .map_err(|e| err(ErrorKind::Internal, format!("{disk}: {e}")))?;
    } else {
        let image = backend.path(&vol).map_err(to_reply)?;
        let filesystem_image = kind == GuestKind::Ct && image.is_file();
        if filesystem_image && daemon.guest_running(GuestKind::Ct, vmid) {
            return Err(err(
                ErrorKind::Conflict,
                format!("{disk}: CT {vmid} is running; stop it to grow its file system image"),
            ));
        }
        backend.resize(&vol, target).map_err(to_reply)?;
        // A container's raw volume holds ext4: the file system grows with its image.
        if filesystem_image {
            grow_ext4(&image).map_err(|m| err(ErrorKind::Internal, format!("{disk}: {m}")))?;
        }
    }
    let digest = daemon.store.update(kind, vmid, None, |c| {
        let value = c.current.get(disk).cloned().ok_or_else(|| err(ErrorKind::Conflict, format!("{disk} vanished")))?;
        let def = kind.schema().lookup(disk).ok_or_else(|| err(ErrorKind::Internal, "not a disk key"))?;
        if let hearth_core::schema::Kind::Prop(schema) = def.kind {
            if let Some(mut props) = kind.schema().property(disk, &value) {
                props.insert(schema, "size", size::format_size(target));
                c.current.insert(disk.to_owned(), Value::Str(props.to_string()));
            }
        }
        Ok(())
    });
    digest.map(|(_, d)| Payload::Digest(d))
}

/// Checks and grows the ext4 file system in a container's raw image to fill the image.
fn grow_ext4(image: &std::path::Path) -> Result<(), String> {
    let run = |program: &str, args: &[&str]| -> Result<std::process::Output, String> {
        std::process::Command::new(program)
            .args(args)
            .arg(image)
            .output()
            .map_err(|e| format!("cannot run {program} (install e2fsprogs): {e}"))
    };
    // e2fsck exits 0 (clean) or 1 (errors corrected); resize2fs wants a fresh check first.
    let check = run("e2fsck", &["-f", "-p"])?;
    if !matches!(check.status.code(), Some(0 | 1)) {
        return Err(format!("e2fsck: {}", String::from_utf8_lossy(&check.stdout).trim()));
    }
    let grow = run("resize2fs", &[])?;
    if !grow.status.success() {
        return Err(format!("resize2fs: {}", String::from_utf8_lossy(&grow.stderr).trim()));
    }
    Ok(())
}
