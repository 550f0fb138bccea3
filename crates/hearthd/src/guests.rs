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

/// How long `set` waits for a start, stop or shutdown of the guest to finish.
const SET_LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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

/// 16 random bytes for a generated UUID (`vmgenid`, the `smbios1` UUID).
pub(crate) fn random_uuid_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    // Without the kernel's randomness, the time and a counter still keep the ids apart.
    if getrandom::fill(&mut bytes).is_err() {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        bytes[..8].copy_from_slice(&(nanos as u64).to_le_bytes());
        bytes[8..].copy_from_slice(&count.to_le_bytes());
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

/// A new volume a change asks for.
enum NewVolume {
    /// `STORAGE:SIZE`.
    Sized(storage::Allocation),
    /// `STORAGE:cloudinit`: the VM's cloud-init drive.
    CloudInit { key: String, storage: String, format: Option<String> },
    /// `STORAGE:0,import-from=<source>`, the source already checked.
    Import { key: String, storage: String, format: Option<String>, source: crate::imports::Source },
}

impl NewVolume {
    fn key(&self) -> &str {
        match self {
            NewVolume::Sized(a) => &a.key,
            NewVolume::CloudInit { key, .. } | NewVolume::Import { key, .. } => key,
        }
    }

    fn storage(&self) -> &str {
        match self {
            NewVolume::Sized(a) => &a.storage,
            NewVolume::CloudInit { storage, .. } | NewVolume::Import { storage, .. } => storage,
        }
    }
}

/// The new volumes `values` ask for: `STORAGE:SIZE`, `STORAGE:cloudinit` (VMs), and
/// `STORAGE:0,import-from=<source>` (VMs; each source is checked here, before anything is made).
fn allocations(daemon: &Daemon, kind: GuestKind, values: &[(String, Value)]) -> Result<Vec<NewVolume>, ErrorReply> {
    let mut wanted = Vec::new();
    for (key, value) in values {
        let Some(volume) = volume_of(kind, key, value) else { continue };
        let format = kind.schema().property(key, value).and_then(|p| p.get("format").map(str::to_owned));
        if kind == GuestKind::Vm {
            if let Some(source) = crate::imports::check(daemon, key, value)? {
                let storage = check::allocation(&volume).map(|(s, _)| s.to_owned()).unwrap_or_default();
                wanted.push(NewVolume::Import { key: key.clone(), storage, format, source });
                continue;
            }
            if let Some(storage) = hearth_core::cloudinit::new_drive(&volume) {
                wanted.push(NewVolume::CloudInit { key: key.clone(), storage: storage.to_owned(), format });
                continue;
            }
        }
        let Some((storage, size)) = check::allocation(&volume) else { continue };
        // `local:0.001` is not a whole number of sectors; QEMU needs them (4 KiB, for disks
        // with 4 KiB logical blocks under O_DIRECT).
        let size = size.div_ceil(4096) * 4096;
        let props = kind.schema().property(key, value);
        // As qm: the size of an EFI disk is its variable store's, a TPM state is 4 MiB.
        let size = match (kind, key.as_str()) {
            (GuestKind::Vm, "efidisk0") => props.as_ref().map_or(size, |p| efi_vars_template(p).1),
            (GuestKind::Vm, "tpmstate0") => TPM_STATE_SIZE,
            _ => size,
        };
        // swtpm keeps its state in a plain file: a TPM state is always raw, as in qm.
        let format = match (kind, key.as_str()) {
            (GuestKind::Vm, "tpmstate0") => Some("raw".to_owned()),
            _ => format,
        };
        wanted.push(NewVolume::Sized(storage::Allocation {
            key: key.clone(),
            storage: storage.to_owned(),
            size,
            format,
        }));
    }
    Ok(wanted)
}

/// The keys of `wanted` that make a cloud-init drive.
fn new_cloudinit_keys(wanted: &[NewVolume]) -> Vec<String> {
    wanted.iter().filter(|w| matches!(w, NewVolume::CloudInit { .. })).map(|w| w.key().to_owned()).collect()
}

/// Makes one new volume; answers its volume id and the key's new value.
fn make_volume(
    daemon: &Daemon,
    kind: GuestKind,
    vmid: Vmid,
    new: &NewVolume,
    value: &Value,
    root_owner: (u32, u32),
    log: &dyn Fn(String),
) -> Result<(String, Value), ErrorReply> {
    let key = new.key();
    let prefixed = |e: ErrorReply| {
        if e.message.starts_with(&format!("{key}:")) {
            e
        } else {
            ErrorReply::new(e.kind, format!("{key}: {}", e.message))
        }
    };
    match new {
        NewVolume::Sized(allocation) => {
            let volid = storage::allocate_for_guest(daemon, kind, vmid, allocation, root_owner).map_err(prefixed)?;
            if kind == GuestKind::Vm && key == "efidisk0" {
                init_efidisk(daemon, value, &volid)
                    .inspect_err(|_| free_all(daemon, std::slice::from_ref(&volid), log))?;
            }
            log(format!("{key}: allocated {volid} ({})", size::format_size(allocation.size)));
            let value = crate::snapshots::with_volume(kind, key, value, &volid, Some(allocation.size)).map_err(invalid);
            value.map(|v| (volid.clone(), v)).inspect_err(|_| free_all(daemon, &[volid], log))
        }
        NewVolume::CloudInit { storage, format, .. } => {
            let volid = crate::cloudinit::allocate_drive(daemon, vmid, storage, format.as_deref()).map_err(prefixed)?;
            log(format!("{key}: allocated cloud-init drive {volid}"));
            let value = crate::cloudinit::drive_value(key, value, &volid);
            value.map(|v| (volid.clone(), v)).inspect_err(|_| free_all(daemon, &[volid], log))
        }
        NewVolume::Import { storage, format, source, .. } => {
            let (volid, bytes) = crate::imports::import(daemon, vmid, key, storage, format.as_deref(), source, log)?;
            log(format!("{key}: imported {} as {volid}", source.name));
            let value = crate::imports::imported_value(key, value, &volid, bytes);
            value.map(|v| (volid.clone(), v)).inspect_err(|_| free_all(daemon, &[volid], log))
        }
    }
}

/// The size qm gives a TPM state volume.
const TPM_STATE_SIZE: u64 = 4 << 20;

/// The OVMF variable store an `efidisk0` starts from, and its size (0 when it is missing, which
/// [`init_efidisk`] then reports).
fn efi_vars_template(props: &hearth_core::propstr::PropertyString) -> (&'static str, u64) {
    let template = hearth_qemu::ovmf_vars_template(props.get("efitype"), props.flag("pre-enrolled-keys") == Some(true));
    (template, std::fs::metadata(template).map_or(0, |m| m.len()))
}

/// Writes OVMF's variable store template into a new `efidisk0` volume, as qm does.
fn init_efidisk(daemon: &Daemon, value: &Value, volid: &str) -> Result<(), ErrorReply> {
    let props = GuestKind::Vm
        .schema()
        .property("efidisk0", value)
        .ok_or_else(|| ErrorReply::new(ErrorKind::Internal, "efidisk0 vanished"))?;
    let (template, size) = efi_vars_template(&props);
    if size == 0 {
        return Err(invalid(format!("efidisk0: the OVMF variable store {template} is missing (install ovmf)")));
    }
    let (backend, vol) = daemon.storages.volume(volid)?;
    let path = backend.path(&vol).map_err(storage::to_reply)?;
    let (format, _) = backend.image_info(&vol).map_err(storage::to_reply)?;
    hearth_storage::qemu_img::convert(std::path::Path::new(template), hearth_core::storage::Format::Raw, &path, format)
        .map_err(|e| ErrorReply::new(ErrorKind::Internal, format!("efidisk0: cannot copy {template}: {e}")))
}

/// Existing volumes named by a change must exist, and images must belong to this guest (a
/// linked clone's base may belong to its template).
fn check_volumes(daemon: &Daemon, kind: GuestKind, vmid: Vmid, values: &[(String, Value)]) -> Result<(), ErrorReply> {
    for (key, value) in values {
        let Some(volume) = volume_of(kind, key, value) else { continue };
        if check::allocation(&volume).is_some()
            || volume.starts_with('/')
            || !volume.contains(':')
            || (kind == GuestKind::Vm && hearth_core::cloudinit::new_drive(&volume).is_some())
        {
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

/// Makes every requested volume; on failure frees those already made. Answers the new
/// values, with the volume id and size in place of `STORAGE:SIZE`.
fn allocate_all(
    daemon: &Daemon,
    kind: GuestKind,
    vmid: Vmid,
    config: &GuestConfig,
    wanted: &[NewVolume],
    log: &dyn Fn(String),
) -> Result<Vec<(String, Value)>, ErrorReply> {
    let unprivileged = kind == GuestKind::Ct && config.current.get("unprivileged") != Some(&Value::Bool(false));
    let root_owner = if unprivileged { (100_000, 100_000) } else { (0, 0) };
    let mut made: Vec<String> = Vec::new();
    let mut values = Vec::new();
    for new in wanted {
        let key = new.key();
        let value = config.merged().get(key).cloned().or_else(|| config.pending.values.get(key).cloned());
        let result = value
            .ok_or_else(|| ErrorReply::new(ErrorKind::Internal, format!("{key} vanished")))
            .and_then(|value| make_volume(daemon, kind, vmid, new, &value, root_owner, log));
        match result {
            Ok((volid, value)) => {
                made.push(volid);
                values.push((key.to_owned(), value));
            }
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
    let mut edit = edit;
    if kind == GuestKind::Vm {
        crate::cloudinit::prepare_values(daemon, &mut edit.set)?;
    }
    referenced::check_content(daemon, kind, &edit.set)?;
    crate::hookscript::check(daemon, &edit.set)?;
    let mut config = GuestConfig::new(kind);
    config.apply(&edit, ApplyMode::Direct).map_err(invalid)?;
    config.apply_create_defaults();
    config.assign_macs(random_mac_bytes);
    config.assign_generated_ids(true, random_uuid_bytes);
    check_volumes(daemon, kind, vmid, &edit.set)?;
    let wanted = allocations(daemon, kind, &edit.set)?;
    crate::cloudinit::check_single_drive(&Section::new(), vmid, &new_cloudinit_keys(&wanted))?;
    for a in &wanted {
        daemon
            .storages
            .backend(a.storage())
            .map_err(|e| ErrorReply::new(e.kind, format!("{}: {}", a.key(), e.message)))?;
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
                crate::sdn::guest_nics_changed(&worker, kind, vmid);
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
    let req_touches_nics =
        req.options.iter().map(|(k, _)| k).chain(&req.delete).chain(&req.revert).any(|k| k.starts_with("net"));
    let mut edit = edit;
    if kind == GuestKind::Vm {
        crate::cloudinit::prepare_values(daemon, &mut edit.set)?;
    }
    referenced::check_content(daemon, kind, &edit.set)?;
    crate::hookscript::check(daemon, &edit.set)?;
    check_volumes(daemon, kind, vmid, &edit.set)?;
    let wanted = allocations(daemon, kind, &edit.set)?;
    let new_drives = new_cloudinit_keys(&wanted);
    let mut made = Vec::new();
    let mut dropped_drives = Vec::new();
    // A running guest keeps running while its configuration changes: start and stop wait. As
    // Proxmox's config lock, waiting for a long operation (a shutdown) ends after a while.
    let run_lock = daemon.run_lock(kind, vmid);
    let deadline = std::time::Instant::now() + SET_LOCK_TIMEOUT;
    let _held = loop {
        match run_lock.try_lock() {
            Ok(held) => break held,
            Err(std::sync::TryLockError::Poisoned(p)) => break p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(std::sync::TryLockError::WouldBlock) => {
                return Err(ErrorReply::new(
                    ErrorKind::Busy,
                    format!(
                        "{} {vmid} is busy: another operation (start, stop, shutdown) holds it; try again",
                        kind.noun()
                    ),
                ));
            }
        }
    };
    let running = daemon.guest_running(kind, vmid);
    let result = daemon.store.update(kind, vmid, req.digest.as_deref(), |config| {
        check_unlocked(kind, vmid, config)?;
        if kind == GuestKind::Vm {
            crate::cloudinit::check_single_drive(&config.current, vmid, &new_drives)?;
        }
        // A pending disk that is reverted, replaced or deleted is kept as unusedN too.
        let touched: Vec<String> = edit
            .set
            .iter()
            .map(|(k, _)| k.clone())
            .chain(edit.delete.iter().cloned())
            .chain(edit.revert.iter().cloned())
            .collect();
        let reverted = crate::pending::reverted(daemon, kind, vmid, config, &touched);
        if !running {
            // A cloud-init drive holds nothing but generated files: removed, it is freed, as
            // qm does.
            if kind == GuestKind::Vm {
                dropped_drives = hearth_core::cloudinit::drives(&config.current, vmid)
                    .into_iter()
                    .filter(|(key, _)| edit.delete.contains(key))
                    .map(|(_, volume)| volume)
                    .collect();
            }
            let keys: Vec<String> = edit.set.iter().map(|(k, _)| k.clone()).collect();
            let mut displaced = crate::pending::displaced(daemon, kind, vmid, config, &keys);
            displaced.extend(reverted);
            config.apply(&edit, ApplyMode::Direct).map_err(invalid)?;
            let refs = config.volume_refs();
            dropped_drives.retain(|volume| !refs.iter().any(|(_, _, v)| v == volume));
            config.assign_macs(random_mac_bytes);
            config.assign_generated_ids(false, random_uuid_bytes);
            let values = allocate_all(daemon, kind, vmid, config, &wanted, &|_| ())?;
            for (key, value) in values {
                made.extend(volume_of(kind, &key, &value));
                config.current.insert(key, value);
            }
            return crate::pending::keep_unused(config, displaced);
        }
        // A running guest: every change pends first, as in Proxmox; what only describes the
        // guest applies at once, and the engine tries the rest live below.
        config.apply(&edit, ApplyMode::Pending).map_err(invalid)?;
        config.assign_macs(random_mac_bytes);
        config.assign_generated_ids(false, random_uuid_bytes);
        let values = allocate_all(daemon, kind, vmid, config, &wanted, &|_| ())?;
        for (key, value) in values {
            made.extend(volume_of(kind, &key, &value));
            config.pending.values.insert(key, value);
        }
        let fast = config.commit_fast_plug();
        let mut displaced = crate::pending::displaced(daemon, kind, vmid, config, &fast);
        displaced.extend(reverted);
        crate::pending::keep_unused(config, displaced)
    });
    let result = match result {
        Ok(((), digest)) if running => {
            let keys: Vec<String> =
                edit.set.iter().map(|(k, _)| k.clone()).chain(edit.delete.iter().cloned()).collect();
            let (plugged, failures) = crate::pending::hotplug(daemon, kind, vmid, &keys)?;
            if !failures.is_empty() {
                return Err(ErrorReply::new(ErrorKind::Unavailable, failures.join("\n")));
            }
            Ok(((), plugged.unwrap_or(digest)))
        }
        other => other,
    };
    if result.is_err() {
        free_all(daemon, &made, &|_| ());
    } else {
        free_all(daemon, &dropped_drives, &|line| tracing::info!("{line}"));
    }
    if result.is_ok() && req_touches_nics {
        crate::sdn::guest_nics_changed(daemon, kind, vmid);
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
    // The (hashed) cloud-init password is never shown, as Proxmox's config.
    if let Some(password) = view.get_mut("cipassword") {
        *password = hearth_core::cloudinit::MASK.into();
    }
    Ok(Payload::Config(GuestConfigView { vmid, digest: loaded.digest, config: view }))
}

pub fn pending(daemon: &Daemon, kind: GuestKind, vmid: Vmid) -> Result<Payload, ErrorReply> {
    let loaded = daemon.store.load(kind, vmid).map_err(|e| not_found(daemon, kind, vmid, e))?;
    let items = loaded
        .config
        .pending_entries()
        .into_iter()
        .map(|e| {
            let masked = |v: &Value| {
                if e.key == "cipassword" { hearth_core::cloudinit::MASK.into() } else { to_json(v) }
            };
            PendingItem {
                value: e.current.as_ref().map(masked),
                pending: e.pending.as_ref().map(masked),
                key: e.key,
                delete: e.delete,
            }
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
    // `--skiplock` (root@pam's, checked by the table) destroys a locked guest too.
    let skiplock = req.skiplock;
    let refuse = move |config: &GuestConfig| -> Result<(), ErrorReply> {
        if !skiplock {
            check_unlocked(kind, vmid, config)?;
        }
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
    // Volumes named for the guest that its configuration does not reference: with
    // `--destroy-unreferenced-disks 1` (Proxmox's default 0), or with `--purge` unless that
    // says 0.
    let unreferenced = req.destroy_unreferenced_disks.unwrap_or(req.purge);
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
        if unreferenced {
            for volume in storage::owned_volumes(&worker, vmid) {
                if !owned.contains(&volume) {
                    ctx.log(format!("{volume} is not referenced by the configuration"));
                    owned.push(volume);
                }
            }
        }
        if kind == GuestKind::Vm {
            worker.qemu.forget(vmid);
            crate::cloudinit::forget(&worker, vmid);
        }
        crate::sdn::guest_destroyed(&worker, vmid);
        // The request's own refresh ran before this task removed the configuration.
        crate::firewall::guests_changed(&worker);
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
