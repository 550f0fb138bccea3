//! Requests about guest configurations, shared by VMs and containers: create, set, config,
//! pending, list, destroy, nextid, unlock.

use std::sync::Arc;

use hearth_core::guest::{ApplyMode, ConfigEdit, Section};
use hearth_core::schema::check;
use hearth_core::{GuestConfig, GuestKind, Lock, Value, Vmid, size};
use hearth_proto::{
    CreateGuest, DestroyGuest, ErrorKind, ErrorReply, GetConfig, GuestConfigView, GuestSummary, Payload, PendingItem,
    SetGuest,
};

use crate::Daemon;
use crate::access::Caller;
use crate::referenced;
use crate::storage;
use crate::store::StoreError;
use hearth_core::access::AclPath;

fn invalid(e: impl ToString) -> ErrorReply {
    ErrorReply::new(ErrorKind::Invalid, e.to_string())
}

pub(crate) fn random_mac_bytes() -> [u8; 3] {
    let mut bytes = [0u8; 3];
    // Without the kernel's randomness a MAC would repeat; fall back to time-derived bytes.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        bytes = [(nanos >> 16) as u8, (nanos >> 8) as u8, nanos as u8];
    }
    bytes
}

/// Refuses changes to a guest that an operation holds.
fn check_unlocked(kind: GuestKind, vmid: Vmid, config: &GuestConfig) -> Result<(), ErrorReply> {
    match config.lock {
        Some(lock) => Err(ErrorReply::new(ErrorKind::Locked, format!("{} {vmid} is locked ({lock})", kind.noun()))),
        None => Ok(()),
    }
}

/// The volume a disk-like key names: `file` of VM drives, `volume` of container mounts,
/// the value of `unusedN`.
fn volume_of(kind: GuestKind, key: &str, value: &Value) -> Option<String> {
    referenced::volume_of(kind, key, value).map(|(volume, _)| volume)
}

/// Values of the form `STORAGE:SIZE` ask for a new volume.
fn allocations(kind: GuestKind, values: &[(String, Value)]) -> Vec<storage::Allocation> {
    values
        .iter()
        .filter_map(|(key, value)| {
            let volume = volume_of(kind, key, value)?;
            let (storage, size) = check::allocation(&volume)?;
            // `local:0.001` is not a whole number of sectors; QEMU needs them (4 KiB, for disks
            // with 4 KiB logical blocks under O_DIRECT).
            let size = size.div_ceil(4096) * 4096;
            let format = kind.schema().property(key, value).and_then(|p| p.get("format").map(str::to_owned));
            Some(storage::Allocation { key: key.clone(), storage: storage.to_owned(), size, format })
        })
        .collect()
}

/// Existing volumes named by a change must exist, and images must belong to this guest (a
/// linked clone's base may belong to its template).
fn check_volumes(daemon: &Daemon, kind: GuestKind, vmid: Vmid, values: &[(String, Value)]) -> Result<(), ErrorReply> {
    for (key, value) in values {
        let Some(volume) = volume_of(kind, key, value) else { continue };
        if check::allocation(&volume).is_some() || volume.starts_with('/') || !volume.contains(':') {
            continue;
        }
        let (backend, vol) =
            daemon.storages.volume(&volume).map_err(|e| ErrorReply::new(e.kind, format!("{key}: {}", e.message)))?;
        match &vol {
            hearth_core::storage::VolName::Image { image, .. } if image.vmid != vmid => {
                return Err(invalid(format!("{key}: volume '{volume}' belongs to guest {}, not {vmid}", image.vmid)));
            }
            // A container mounts its volumes: only its own images, never an uploaded file.
            hearth_core::storage::VolName::File { .. } if kind == GuestKind::Ct => {
                return Err(invalid(format!("{key}: '{volume}' is not a container volume")));
            }
            _ => {}
        }
        let exists = backend.path(&vol).is_ok_and(|p| p.symlink_metadata().is_ok());
        if !exists {
            return Err(ErrorReply::new(ErrorKind::NotFound, format!("{key}: volume '{volume}' does not exist")));
        }
    }
    Ok(())
}

/// Allocates every requested volume; on failure frees those already made. Answers the new
/// values, with the volume id and size in place of `STORAGE:SIZE`.
fn allocate_all(
    daemon: &Daemon,
    kind: GuestKind,
    vmid: Vmid,
    config: &GuestConfig,
    wanted: &[storage::Allocation],
    log: &dyn Fn(String),
) -> Result<Vec<(String, Value)>, ErrorReply> {
    let unprivileged = kind == GuestKind::Ct && config.current.get("unprivileged") != Some(&Value::Bool(false));
    let root_owner = if unprivileged { (100_000, 100_000) } else { (0, 0) };
    let mut made: Vec<String> = Vec::new();
    let mut values = Vec::new();
    for allocation in wanted {
        let result = storage::allocate_for_guest(daemon, kind, vmid, allocation, root_owner)
            .map_err(|e| {
                let message = if e.message.starts_with(&format!("{}:", allocation.key)) {
                    e.message
                } else {
                    format!("{}: {}", allocation.key, e.message)
                };
                ErrorReply::new(e.kind, message)
            })
            .and_then(|volid| {
                made.push(volid.clone());
                log(format!("{}: allocated {volid} ({})", allocation.key, size::format_size(allocation.size)));
                let value = config
                    .merged()
                    .get(&allocation.key)
                    .cloned()
                    .or_else(|| config.pending.values.get(&allocation.key).cloned());
                let value = value
                    .ok_or_else(|| ErrorReply::new(ErrorKind::Internal, format!("{} vanished", allocation.key)))?;
                crate::snapshots::with_volume(kind, &allocation.key, &value, &volid, Some(allocation.size))
                    .map_err(invalid)
            });
        match result {
            Ok(value) => values.push((allocation.key.clone(), value)),
            Err(e) => {
                free_all(daemon, &made, log);
                return Err(e);
            }
        }
    }
    Ok(values)
}

fn free_all(daemon: &Daemon, volids: &[String], log: &dyn Fn(String)) {
    for volid in volids {
        match storage::free_volume(daemon, volid) {
            Ok(()) => log(format!("freed {volid}")),
            Err(e) => log(format!("cannot free {volid}: {}", e.message)),
        }
    }
}

/// A wrong-kind id gets a hint: `vmctl config 200` when 200 is a container.
fn not_found(daemon: &Daemon, kind: GuestKind, vmid: Vmid, e: StoreError) -> ErrorReply {
    if let StoreError::NotFound { .. } = e {
        if let Some((node, other)) = daemon.store.locate(vmid) {
            let what = if other == kind { format!("on node '{node}'") } else { format!("is a {}", other.noun()) };
            return ErrorReply::new(
                ErrorKind::NotFound,
                format!("{} {vmid} does not exist here ({vmid} {what})", kind.noun()),
            );
        }
    }
    e.into()
}

pub fn create(daemon: &Arc<Daemon>, caller: &Caller, kind: GuestKind, req: CreateGuest) -> Result<Payload, ErrorReply> {
    let vmid = req.vmid;
    let edit = ConfigEdit::parse(kind, &req.options, &[], &[]).map_err(invalid)?;
    let ct = if kind == GuestKind::Ct { req.ct } else { None };
    // As pct: a container made from a template without --rootfs gets 4 GiB on `local`.
    let edit = if ct.is_some() && !req.options.iter().any(|(k, _)| k == "rootfs") {
        let mut options = req.options.clone();
        options.push(("rootfs".into(), "local:4".into()));
        ConfigEdit::parse(kind, &options, &[], &[]).map_err(invalid)?
    } else {
        edit
    };
    referenced::check_content(daemon, kind, &edit.set)?;
    let mut config = GuestConfig::new(kind);
    config.apply(&edit, ApplyMode::Direct).map_err(invalid)?;
    config.apply_create_defaults();
    config.assign_macs(random_mac_bytes);
    check_volumes(daemon, kind, vmid, &edit.set)?;
    let wanted = allocations(kind, &edit.set);
    for a in &wanted {
        daemon
            .storages
            .backend(&a.storage)
            .map_err(|e| ErrorReply::new(e.kind, format!("{}: {}", a.key, e.message)))?;
    }
    // The file exists from here on, locked, so the id is taken before the task runs.
    config.lock = Some(Lock::Create);
    daemon.store.create(kind, vmid, &config)?;
    let worker = Arc::clone(daemon);
    let upid = daemon.tasks.spawn(&kind.task_type("create"), &vmid.to_string(), &caller.userid, move |ctx| {
        ctx.log(format!("creating {} {vmid}", kind.noun()));
        let log = |line: String| ctx.log(line);
        let created = worker
            .store
            .load(kind, vmid)
            .map_err(ErrorReply::from)
            .and_then(|loaded| allocate_all(&worker, kind, vmid, &loaded.config, &wanted, &log));
        // A container gets its template and first-boot settings before it is unlocked.
        let created = created.and_then(|mut values| {
            let Some(ct) = &ct else { return Ok(values) };
            match crate::containers::populate(&worker, vmid, &values, ct, &log) {
                Ok(ostype) => {
                    if let Some(ostype) = ostype.filter(|_| !values.iter().any(|(k, _)| k == "ostype")) {
                        values.push(("ostype".into(), Value::Str(ostype)));
                    }
                    Ok(values)
                }
                Err(message) => {
                    let volids: Vec<String> = values.iter().filter_map(|(k, v)| volume_of(kind, k, v)).collect();
                    free_all(&worker, &volids, &log);
                    Err(ErrorReply::new(ErrorKind::Invalid, message))
                }
            }
        });
        let unlocked = created.and_then(|values| {
            let volids: Vec<String> = values.iter().filter_map(|(k, v)| volume_of(kind, k, v)).collect();
            let updated = worker.store.update(kind, vmid, None, |c| {
                for (key, value) in &values {
                    c.current.insert(key.clone(), value.clone());
                }
                c.lock = None;
                Ok(())
            });
            if updated.is_err() {
                free_all(&worker, &volids, &log);
            }
            updated
        });
        match unlocked {
            Ok(_) => {
                ctx.log(format!("{} {vmid} created", kind.noun()));
                if ct.as_ref().is_some_and(|c| c.start) {
                    let options = hearth_core::runtime::StartOptions::default();
                    crate::lifecycle::start_now(&worker, kind, vmid, &options, &log)?;
                }
                Ok(())
            }
            Err(e) => {
                // No half-created guest: the file goes again if the task cannot finish it.
                let _ = worker.store.remove(kind, vmid, |_| Ok(()));
                Err(e.message)
            }
        }
    });
    match upid {
        Ok(upid) => Ok(Payload::Task(upid)),
        Err(e) => {
            let _ = daemon.store.remove(kind, vmid, |_| Ok(()));
            Err(e)
        }
    }
}

pub fn set(daemon: &Daemon, kind: GuestKind, req: SetGuest) -> Result<Payload, ErrorReply> {
    let edit = ConfigEdit::parse(kind, &req.options, &req.delete, &req.revert).map_err(invalid)?;
    if edit.is_empty() {
        return Err(invalid("nothing to change: give at least one option, --delete or --revert"));
    }
    if kind == GuestKind::Ct && edit.set.iter().map(|(k, _)| k).chain(&edit.delete).any(|k| k == "unprivileged") {
        return Err(invalid(
            "unprivileged: cannot be changed after creation; file ownership would have to be shifted (back up and restore instead)",
        ));
    }
    let vmid = req.vmid;
    referenced::check_content(daemon, kind, &edit.set)?;
    check_volumes(daemon, kind, vmid, &edit.set)?;
    let wanted = allocations(kind, &edit.set);
    let mut made = Vec::new();
    let result = daemon.store.update(kind, vmid, req.digest.as_deref(), |config| {
        check_unlocked(kind, vmid, config)?;
        // Only the guest's own images are kept when replaced: an ISO or another guest's volume
        // was never this guest's to keep (or to free later through `unusedN`).
        let displaced: Vec<String> = edit
            .set
            .iter()
            .filter_map(|(key, _)| config.current.get(key).and_then(|old| volume_of(kind, key, old)))
            .filter(|v| !v.starts_with('/') && v.contains(':') && check::allocation(v).is_none())
            .filter(|v| {
                daemon.storages.volume(v).is_ok_and(
                    |(_, vol)| matches!(vol, hearth_core::storage::VolName::Image { image, .. } if image.vmid == vmid),
                )
            })
            .collect();
        // No engine runs guests yet, so every change applies at once; once guests can run,
        // changes that cannot be hot-plugged go to [pending].
        config.apply(&edit, ApplyMode::Direct).map_err(invalid)?;
        config.assign_macs(random_mac_bytes);
        let values = allocate_all(daemon, kind, vmid, config, &wanted, &|_| ())?;
        for (key, value) in values {
            made.extend(volume_of(kind, &key, &value));
            config.current.insert(key, value);
        }
        // A replaced disk is kept as unusedN, as qm does, so no data is lost by a typo.
        for volume in displaced {
            if config.volume_refs().iter().any(|(_, _, v)| *v == volume) {
                continue;
            }
            let free = (0..=255).map(|i| format!("unused{i}")).find(|k| !config.current.contains_key(k));
            let slot = free.ok_or_else(|| invalid("no free unusedN key left for the replaced volume"))?;
            config.current.insert(slot, Value::Str(volume));
        }
        Ok(())
    });
    if result.is_err() {
        free_all(daemon, &made, &|_| ());
    }
    match result {
        Ok(((), digest)) => Ok(Payload::Digest(digest)),
        // Only a missing guest file gets the "does not exist here" hint; a missing storage or
        // volume keeps its own message.
        Err(e) if e.kind == ErrorKind::NotFound && !daemon.store.path(kind, vmid).exists() => {
            Err(not_found(daemon, kind, vmid, StoreError::NotFound { kind: kind.noun(), vmid }))
        }
        Err(e) => Err(e),
    }
}

fn to_json(value: &Value) -> serde_json::Value {
    match value {
        // Booleans travel as 0/1, as Proxmox's API returns them.
        Value::Bool(b) => serde_json::Value::from(u8::from(*b)),
        Value::Int(n) => serde_json::Value::from(*n),
        Value::Float(x) => serde_json::Value::from(*x),
        Value::Str(s) => serde_json::Value::from(s.as_str()),
    }
}

fn section_json(section: &Section) -> std::collections::BTreeMap<String, serde_json::Value> {
    section.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()
}

pub fn config(daemon: &Daemon, kind: GuestKind, req: GetConfig) -> Result<Payload, ErrorReply> {
    let vmid = req.vmid;
    let loaded = daemon.store.load(kind, vmid).map_err(|e| not_found(daemon, kind, vmid, e))?;
    let mut view = match &req.snapshot {
        Some(name) => section_json(loaded.config.snapshots.get(name).ok_or_else(|| {
            ErrorReply::new(ErrorKind::NotFound, format!("snapshot '{name}' of {} {vmid} does not exist", kind.noun()))
        })?),
        None if req.current => section_json(&loaded.config.current),
        None => section_json(&loaded.config.merged()),
    };
    if let (Some(lock), None) = (loaded.config.lock, &req.snapshot) {
        view.insert("lock".into(), lock.as_str().into());
    }
    Ok(Payload::Config(GuestConfigView { vmid, digest: loaded.digest, config: view }))
}

pub fn pending(daemon: &Daemon, kind: GuestKind, vmid: Vmid) -> Result<Payload, ErrorReply> {
    let loaded = daemon.store.load(kind, vmid).map_err(|e| not_found(daemon, kind, vmid, e))?;
    let items = loaded
        .config
        .pending_entries()
        .into_iter()
        .map(|e| PendingItem {
            key: e.key,
            value: e.current.as_ref().map(to_json),
            pending: e.pending.as_ref().map(to_json),
            delete: e.delete,
        })
        .collect();
    Ok(Payload::Pending(items))
}

fn size_of(kind: GuestKind, key: &str, config: &Section) -> u64 {
    config
        .get(key)
        .and_then(|v| kind.schema().property(key, v))
        .and_then(|p| p.get("size").and_then(|s| size::parse_size(s, 1).ok()))
        .unwrap_or(0)
}

/// The disk a VM boots from: the first disk in `boot: order=`, else the first of
/// scsi0/virtio0/sata0/ide0 that is not a CD-ROM.
fn boot_disk(config: &Section) -> Option<String> {
    let schema = GuestKind::Vm.schema();
    let is_disk = |key: &str| {
        config.get(key).and_then(|v| schema.property(key, v)).is_some_and(|p| p.get("media") != Some("cdrom"))
    };
    let ordered = config
        .get("boot")
        .and_then(|v| schema.property("boot", v))
        .and_then(|p| p.get("order").map(|o| o.split(';').map(str::to_owned).collect::<Vec<_>>()))
        .unwrap_or_default();
    ordered
        .into_iter()
        .chain(["scsi0", "virtio0", "sata0", "ide0"].map(String::from))
        .find(|k| !k.starts_with("net") && is_disk(k))
}

/// A guest's listing row as its configuration gives it, stopped (the caller adds run state).
fn summarize(daemon: &Daemon, kind: GuestKind, listed: &crate::store::Listed) -> GuestSummary {
    let guest_type = match kind {
        GuestKind::Vm => "qemu",
        GuestKind::Ct => "lxc",
    };
    let mut summary = GuestSummary {
        vmid: listed.vmid,
        guest_type: guest_type.into(),
        name: String::new(),
        status: "stopped".into(),
        lock: None,
        maxmem_mib: 512,
        maxdisk: 0,
        pid: None,
        tags: String::new(),
        template: false,
        error: None,
    };
    match listed.config.as_ref() {
        Err(e) => summary.error = Some(format!("{}: {e}", daemon.store.path(kind, listed.vmid).display())),
        Ok(config) => {
            let merged = &config.current;
            let name_key = if kind == GuestKind::Vm { "name" } else { "hostname" };
            summary.name = merged.get(name_key).and_then(Value::as_str).map_or_else(
                || if kind == GuestKind::Vm { format!("VM {}", listed.vmid) } else { format!("CT{}", listed.vmid) },
                str::to_owned,
            );
            summary.lock = config.lock.map(|l| l.as_str().to_owned());
            summary.maxmem_mib =
                merged.get("memory").and_then(Value::as_int).and_then(|m| u64::try_from(m).ok()).unwrap_or(512);
            summary.maxdisk = match kind {
                GuestKind::Vm => boot_disk(merged).map_or(0, |k| size_of(kind, &k, merged)),
                GuestKind::Ct => size_of(kind, "rootfs", merged),
            };
            summary.tags = merged.get("tags").and_then(Value::as_str).unwrap_or_default().to_owned();
            summary.template = merged.get("template") == Some(&Value::Bool(true));
        }
    }
    summary
}

/// The guests of one kind that `caller` may audit (VM.Audit on `/vms/<vmid>`).
pub fn list(daemon: &Daemon, caller: &Caller, kind: GuestKind) -> Result<Payload, ErrorReply> {
    let mut guests = Vec::new();
    let audit = hearth_core::access::Privilege::VmAudit;
    // Run state from the engine's table when it keeps one: no pid file read per guest.
    let running = daemon.runtime(kind).running_guests();
    for listed in daemon.store.list(kind)? {
        if !caller.is_root() && !daemon.access.privileges(caller, &AclPath::vm(listed.vmid)).contains(audit) {
            continue;
        }
        // What the configuration says is worked out once per version of the file.
        let mut summary = listed.summary.get_or_init(|| summarize(daemon, kind, &listed)).clone();
        let pid = match &running {
            Some(running) => running.get(&listed.vmid).copied(),
            None => daemon.runtime(kind).pid(listed.vmid),
        };
        if let Some(pid) = pid {
            summary.status = "running".into();
            summary.pid = Some(pid);
        }
        guests.push(summary);
    }
    Ok(Payload::Guests(guests))
}

pub fn destroy(
    daemon: &Arc<Daemon>,
    caller: &Caller,
    kind: GuestKind,
    req: DestroyGuest,
) -> Result<Payload, ErrorReply> {
    let vmid = req.vmid;
    let checker = Arc::clone(daemon);
    let refuse = move |config: &GuestConfig| -> Result<(), ErrorReply> {
        check_unlocked(kind, vmid, config)?;
        if checker.guest_running(kind, vmid) {
            let cli = if kind == GuestKind::Vm { "vmctl" } else { "ctctl" };
            return Err(ErrorReply::new(
                ErrorKind::Conflict,
                format!("{} {vmid} is running; stop it first with: {cli} stop {vmid}", kind.noun()),
            ));
        }
        if config.current.get("protection") == Some(&Value::Bool(true)) {
            return Err(ErrorReply::new(
                ErrorKind::Conflict,
                format!("{} {vmid} is protected; clear it first with: set {vmid} --protection 0", kind.noun()),
            ));
        }
        Ok(())
    };
    // Check before starting the task, so the caller gets the refusal directly.
    let loaded = daemon.store.load(kind, vmid).map_err(|e| not_found(daemon, kind, vmid, e))?;
    refuse(&loaded.config)?;
    let worker = Arc::clone(daemon);
    let purge = req.purge;
    let upid = daemon.tasks.spawn(&kind.task_type("destroy"), &vmid.to_string(), &caller.userid, move |ctx| {
        ctx.log(format!("destroying {} {vmid}", kind.noun()));
        let mut owned: Vec<String> = Vec::new();
        // No start may slip in between the running check and the removal.
        let run_lock = worker.run_lock(kind, vmid);
        let _held = run_lock.lock().unwrap_or_else(|p| p.into_inner());
        worker
            .store
            .remove(kind, vmid, |config| {
                refuse(config)?;
                // The guest's own volumes go with it, as with qm destroy; volumes of other
                // guests (a linked clone's base) stay.
                for (_, _, volume) in config.volume_refs() {
                    let mine = worker.storages.volume(&volume).is_ok_and(|(_, vol)| vol.owner() == Some(vmid));
                    if mine && !owned.contains(&volume) {
                        owned.push(volume);
                    }
                }
                Ok(())
            })
            .map_err(|e| e.message)?;
        if purge {
            // --purge also removes volumes the configuration no longer names.
            for volume in storage::owned_volumes(&worker, vmid) {
                if !owned.contains(&volume) {
                    owned.push(volume);
                }
            }
        }
        if kind == GuestKind::Vm {
            worker.qemu.forget(vmid);
        }
        let mut warnings = 0;
        for volume in &owned {
            match storage::free_volume(&worker, volume) {
                Ok(()) => ctx.log(format!("removed volume {volume}")),
                Err(e) => {
                    warnings += 1;
                    ctx.warn(format!("cannot remove volume {volume}: {}", e.message));
                }
            }
        }
        ctx.log(format!(
            "{} {vmid} destroyed{}",
            kind.noun(),
            if warnings > 0 { " (some volumes remain)" } else { "" }
        ));
        Ok(())
    })?;
    Ok(Payload::Task(upid))
}

pub fn next_id(daemon: &Daemon) -> Result<Payload, ErrorReply> {
    Ok(Payload::NextId(daemon.store.reserve_next_id()?))
}

/// Removes a stale lock; root only (the table says so), as in Proxmox: a lock cleared under a
/// running task would let another operation corrupt its work.
pub fn unlock(daemon: &Daemon, kind: GuestKind, vmid: Vmid) -> Result<Payload, ErrorReply> {
    daemon
        .store
        .update(kind, vmid, None, |config| {
            config.lock = None;
            Ok(())
        })
        .map(|_| Payload::Empty)
        .map_err(|e| {
            if e.kind == ErrorKind::NotFound {
                not_found(daemon, kind, vmid, StoreError::NotFound { kind: kind.noun(), vmid })
            } else {
                e
            }
        })
}
