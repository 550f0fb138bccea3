//! A VM's disks one at a time, as `qm disk` handles them: moving a disk to another storage or
//! format, importing an image file as a new unused disk, unlinking disks from the
//! configuration; and `cleanup` after a QEMU that is gone.
//!
//! VMs have no `disk` lock (qm takes no configuration lock for these either), so a move or an
//! import holds the VM's run lock, which keeps a start out, and checks when it writes the
//! configuration that the disk is still the one it copied. A move or import that fails frees
//! the volume it made, so no orphan is left on the storage.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;
use std::sync::Arc;

use hearth_core::storage::{Content, Format, ImagePrefix, StorageConfig, VolName};
use hearth_core::{GuestConfig, GuestKind, Lock, Value, Vmid, size};
use hearth_proto::{ErrorKind, ErrorReply, ImportDisk, MoveDisk, Payload};
use hearth_storage::{NewImage, qemu_img};

use crate::Daemon;
use crate::access::Caller;
use crate::snapshots;
use crate::storage::{self, to_reply};

const VM: GuestKind = GuestKind::Vm;

fn err(kind: ErrorKind, message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(kind, message)
}

fn check_unlocked(vmid: Vmid, config: &GuestConfig) -> Result<(), ErrorReply> {
    match config.lock {
        Some(lock) => Err(err(ErrorKind::Locked, format!("VM {vmid} is locked ({lock})"))),
        None => Ok(()),
    }
}

/// The lowest `unusedN` key the configuration does not use.
fn free_unused_key(config: &GuestConfig) -> Result<String, ErrorReply> {
    (0..=255)
        .map(|i| format!("unused{i}"))
        .find(|k| !config.current.contains_key(k))
        .ok_or_else(|| err(ErrorKind::Conflict, "no free unusedN key left (unused0 to unused255 are taken)"))
}

/// Keeps `volume` as the lowest free `unusedN`; answers the key.
pub(crate) fn keep_unused(config: &mut GuestConfig, volume: &str) -> Result<String, ErrorReply> {
    let key = free_unused_key(config)?;
    config.current.insert(key.clone(), Value::Str(volume.to_owned()));
    Ok(key)
}

/// The snapshots whose configuration names `volume`.
fn snapshots_using(config: &GuestConfig, volume: &str) -> Vec<String> {
    config
        .volume_refs()
        .into_iter()
        .filter(|(section, _, v)| v == volume && section != "current" && section != "pending")
        .map(|(section, _, _)| section)
        .collect()
}

/// Whether `volume` is an image the VM owns itself: not a template's base image, not another
/// guest's volume. Only those are ever freed here.
fn owned_image(vmid: Vmid, vol: &VolName) -> bool {
    matches!(vol, VolName::Image { image, .. } if image.vmid == vmid && image.prefix == ImagePrefix::Vm)
}

/// A disk value pointing at `volid` in `format`, its other properties kept.
fn replace_volume(kind: GuestKind, key: &str, value: &Value, volid: &str, format: Format) -> Result<Value, ErrorReply> {
    let replaced = snapshots::with_volume(kind, key, value, volid, None).map_err(|m| err(ErrorKind::Internal, m))?;
    // A `format=` naming the old volume's format would now be wrong.
    let def = kind.schema().lookup(key).ok_or_else(|| err(ErrorKind::Internal, format!("{key}: not a disk key")))?;
    if let hearth_core::schema::Kind::Prop(schema) = def.kind {
        if let Some(mut props) = kind.schema().property(key, &replaced) {
            if props.get("format").is_some() {
                props.insert(schema, "format", format.as_str().to_owned());
                return Ok(Value::Str(props.to_string()));
            }
        }
    }
    Ok(replaced)
}

/// Refuses storages that do not hold VM disks.
pub(crate) fn check_images(config: &StorageConfig) -> Result<(), ErrorReply> {
    if config.has_content(Content::Images) {
        return Ok(());
    }
    Err(err(
        ErrorKind::Invalid,
        format!(
            "storage '{}' does not hold content 'images' (it holds: {})",
            config.id,
            config.content.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
        ),
    ))
}

/// Checks that a disk may move now; answers its volume. Runs before the task, and again in it
/// under the run lock.
fn check_move(daemon: &Daemon, kind: GuestKind, req: &MoveDisk, config: &GuestConfig) -> Result<String, ErrorReply> {
    let (vmid, disk) = (req.vmid, req.disk.as_str());
    let noun = kind.noun();
    if let Some(lock) = config.lock {
        return Err(err(ErrorKind::Locked, format!("{noun} {vmid} is locked ({lock})")));
    }
    if config.current.get("template") == Some(&Value::Bool(true)) {
        return Err(err(
            ErrorKind::Invalid,
            format!("{noun} {vmid} is a template; its disks are base images of linked clones and cannot move"),
        ));
    }
    if daemon.guest_running(kind, vmid) {
        let why = match kind {
            GuestKind::Vm => "moving the disk of a running VM needs live mirroring, which is not supported yet",
            GuestKind::Ct => "a running container's volume cannot move",
        };
        return Err(err(ErrorKind::Conflict, format!("{noun} {vmid} is running; {why}; stop it first")));
    }
    let disks = snapshots::disks(kind, &config.current);
    let Some((_, volume)) = disks.iter().find(|(k, _)| k == disk) else {
        let names: Vec<&str> = disks.iter().map(|(k, _)| k.as_str()).collect();
        let known = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
        let what = if kind == VM { "disk" } else { "volume" };
        return Err(err(ErrorKind::Invalid, format!("{disk}: no such {what} in {noun} {vmid} (its {what}s: {known})")));
    };
    let in_snapshots = snapshots_using(config, volume);
    if !in_snapshots.is_empty() {
        return Err(err(
            ErrorKind::Conflict,
            format!(
                "{disk}: '{volume}' is part of snapshot {}; a moved copy would lose them; delete them first \
                 (vmctl delsnapshot)",
                in_snapshots.join(", ")
            ),
        ));
    }
    let (backend, vol) = daemon.storages.volume(volume).map_err(|e| err(e.kind, format!("{disk}: {}", e.message)))?;
    let owned = owned_image(vmid, &vol)
        || (kind == GuestKind::Ct
            && matches!(&vol, VolName::Image { image, .. } if image.vmid == vmid && image.prefix == ImagePrefix::Subvol));
    if !owned {
        return Err(err(ErrorKind::Invalid, format!("{disk}: '{volume}' is not a volume of {noun} {vmid}")));
    }
    let internal = backend.snapshots(&vol).map_err(to_reply)?;
    if !internal.is_empty() {
        return Err(err(
            ErrorKind::Conflict,
            format!(
                "{disk}: '{volume}' has snapshots ({}) that a moved copy would lose; delete them first",
                internal.join(", ")
            ),
        ));
    }
    Ok(volume.clone())
}

/// The format of the moved disk: the one asked for, else the disk's own if the target holds
/// it, else the target's default (as qm chooses).
fn target_format(target: &StorageConfig, asked: Option<&str>, source: Format) -> Result<Format, ErrorReply> {
    match asked {
        Some(_) => storage::image_format(target, asked),
        None if target.storage_type.formats().contains(&source) => Ok(source),
        None => Ok(target.default_image_format()),
    }
}

pub fn move_disk(daemon: &Arc<Daemon>, caller: &Caller, req: MoveDisk) -> Result<Payload, ErrorReply> {
    if let Some(target) = req.target_vmid {
        return reassign(daemon, caller, req, target);
    }
    move_volume(daemon, caller, VM, req)
}

/// The content a guest kind's volumes need on a storage.
fn check_guest_content(kind: GuestKind, config: &StorageConfig) -> Result<(), ErrorReply> {
    match kind {
        GuestKind::Vm => check_images(config),
        GuestKind::Ct if config.has_content(Content::Rootdir) => Ok(()),
        GuestKind::Ct => {
            Err(err(ErrorKind::Invalid, format!("storage '{}' does not hold content 'rootdir'", config.id)))
        }
    }
}

/// The format of a moved volume: a container's keeps its own (an image stays an image, a
/// directory a directory); a VM disk's as [`target_format`] chooses.
fn moved_format(
    kind: GuestKind,
    target: &StorageConfig,
    asked: Option<&str>,
    source: Format,
) -> Result<Format, ErrorReply> {
    match kind {
        GuestKind::Vm => target_format(target, asked, source),
        GuestKind::Ct if target.storage_type.formats().contains(&source) => Ok(source),
        GuestKind::Ct => Err(err(
            ErrorKind::Invalid,
            format!("storage '{}' ({}) cannot hold the container's {source} volume", target.id, target.storage_type),
        )),
    }
}

/// `vmctl move-disk` and `ctctl move-volume`: copies a stopped guest's volume to another
/// storage and points the configuration at the copy.
pub fn move_volume(
    daemon: &Arc<Daemon>,
    caller: &Caller,
    kind: GuestKind,
    req: MoveDisk,
) -> Result<Payload, ErrorReply> {
    let vmid = req.vmid;
    let config = daemon.store.load(kind, vmid)?.config;
    let volume = check_move(daemon, kind, &req, &config)?;
    let (source, vol) = daemon.storages.volume(&volume)?;
    let target = daemon.storages.backend(&req.storage)?;
    check_guest_content(kind, target.config())?;
    let (source_format, _) = source.image_info(&vol).map_err(to_reply)?;
    let format = moved_format(kind, target.config(), req.format.as_deref(), source_format)?;
    let storages = [source.config().id.as_str(), req.storage.as_str()];
    let needs = storage::bandwidth_override_needs(daemon, "move", &storages, req.bwlimit);
    crate::access::authorize(&daemon.access, caller, &needs)?;
    if source.config().id == target.config().id && format == source_format {
        return Err(err(
            ErrorKind::Invalid,
            format!("{}: already on storage '{}' as {format}; give another storage or --format", req.disk, req.storage),
        ));
    }
    let worker = Arc::clone(daemon);
    let task_type = match kind {
        GuestKind::Vm => "qmmove".to_owned(),
        GuestKind::Ct => "move_volume".to_owned(),
    };
    let upid = daemon.tasks.spawn(&task_type, &vmid.to_string(), &caller.userid, move |ctx| {
        let run_lock = worker.run_lock(kind, vmid);
        let _held = run_lock.lock().unwrap_or_else(|p| p.into_inner());
        let disk = req.disk.as_str();
        let config = worker.store.load(kind, vmid).map_err(|e| e.to_string())?.config;
        let volume = check_move(&worker, kind, &req, &config).map_err(|e| e.message)?;
        let (source, vol) = worker.storages.volume(&volume).map_err(|e| e.message)?;
        let target = worker.storages.backend(&req.storage).map_err(|e| e.message)?;
        let (source_format, bytes) = source.image_info(&vol).map_err(|e| format!("{disk}: {e}"))?;
        let format =
            moved_format(kind, target.config(), req.format.as_deref(), source_format).map_err(|e| e.message)?;
        ctx.log(format!(
            "{disk}: copying {volume} ({source_format}, {}) to storage '{}' as {format}",
            size::format_size(bytes),
            req.storage
        ));
        let from = source.config().id.clone();
        let limit = storage::bandwidth_limit(&worker, "move", &[&from, &req.storage], req.bwlimit);
        if let Some(kib) = limit {
            ctx.log(format!("{disk}: bandwidth limit {kib} KiB/s"));
        }
        // Under the target's lock, as every allocation: the new name is chosen and taken in it.
        let new = worker
            .storages
            .locked(&req.storage, || {
                hearth_storage::clone_full_limited(source.as_ref(), &vol, target.as_ref(), vmid, Some(format), limit)
            })
            .map_err(|e| format!("{disk}: {e}"))?;
        let new_volid = storage::volid_of(target.as_ref(), &new);
        ctx.log(format!("{disk}: copied to {new_volid}"));
        let swapped = worker.store.update(kind, vmid, None, |c| {
            if let Some(lock) = c.lock {
                return Err(err(ErrorKind::Locked, format!("{} {vmid} is locked ({lock})", kind.noun())));
            }
            let unchanged = snapshots::disks(kind, &c.current).iter().any(|(k, v)| k == disk && *v == volume);
            let value = c.current.get(disk).cloned().filter(|_| unchanged).ok_or_else(|| {
                err(ErrorKind::Conflict, format!("{disk} changed while it was copied; the copy is discarded"))
            })?;
            if !snapshots_using(c, &volume).is_empty() {
                return Err(err(
                    ErrorKind::Conflict,
                    format!("a snapshot of {disk} was taken while it was copied; the copy is discarded"),
                ));
            }
            c.current.insert(disk.to_owned(), replace_volume(kind, disk, &value, &new_volid, format)?);
            if req.delete { Ok(None) } else { keep_unused(c, &volume).map(Some) }
        });
        match swapped {
            Err(e) => {
                if let Err(freed) = storage::free_volume(&worker, &new_volid) {
                    ctx.warn(format!("cannot free the copy {new_volid}: {}", freed.message));
                }
                return Err(e.message);
            }
            Ok((Some(key), _)) => ctx.log(format!("{disk}: now {new_volid}; {volume} is kept as {key}")),
            Ok((None, _)) => {
                ctx.log(format!("{disk}: now {new_volid}"));
                match storage::free(&worker, &volume) {
                    Ok(_) => ctx.log(format!("freed {volume}")),
                    Err(e) => {
                        // Not lost: it stays in the configuration for a later unlink.
                        let kept = worker.store.update(kind, vmid, None, |c| keep_unused(c, &volume));
                        let place = kept.map_or_else(|_| "it is orphaned".to_owned(), |(k, _)| format!("kept as {k}"));
                        ctx.warn(format!("cannot free {volume} ({place}): {}", e.message));
                    }
                }
            }
        }
        Ok(())
    })?;
    Ok(Payload::Task(upid))
}

/// What identifies the content of a file: a write changes its ctime, which nobody but the
/// kernel sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// Refuses a descriptor that does not prove the caller could read the file. qemu-img opens it
/// again through `/proc`, with hearthd's rights; only a descriptor opened for reading shows
/// that the caller had them too (an `O_PATH` or write-only one does not).
fn check_readable(file: &File) -> Result<(), ErrorReply> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = fcntl(file, FcntlArg::F_GETFL)
        .map_err(|e| err(ErrorKind::Invalid, format!("cannot read the attached file's flags: {e}")))?;
    let flags = OFlag::from_bits_truncate(flags);
    let mode = flags & OFlag::O_ACCMODE;
    if flags.contains(OFlag::O_PATH) || !(mode == OFlag::O_RDONLY || mode == OFlag::O_RDWR) {
        return Err(err(ErrorKind::Invalid, "the attached file was not opened for reading"));
    }
    Ok(())
}

impl FileStamp {
    fn of(file: &File) -> Result<FileStamp, ErrorReply> {
        let meta = file
            .metadata()
            .map_err(|e| err(ErrorKind::Invalid, format!("cannot read the attached file's status: {e}")))?;
        let kind = meta.file_type();
        if !(kind.is_file() || kind.is_block_device()) {
            return Err(err(
                ErrorKind::Invalid,
                "the image must be a regular file or a block device (qemu-img needs to seek in it), not a pipe",
            ));
        }
        Ok(FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        })
    }
}

pub fn import(daemon: &Arc<Daemon>, caller: &Caller, req: ImportDisk, file: File) -> Result<Payload, ErrorReply> {
    let vmid = req.vmid;
    let config = daemon.store.load(VM, vmid)?.config;
    check_unlocked(vmid, &config)?;
    free_unused_key(&config)?;
    let backend = daemon.storages.backend(&req.storage)?;
    check_images(backend.config())?;
    let format = storage::image_format(backend.config(), req.format.as_deref())?;
    // qemu-img reads the caller's file through hearthd's descriptor, never by a name the
    // caller chose, so it sees exactly the file the caller could open.
    check_readable(&file)?;
    let stamp = FileStamp::of(&file)?;
    let path = PathBuf::from(format!("/proc/{}/fd/{}", std::process::id(), file.as_raw_fd()));
    let (source_format, info) = qemu_img::probe_foreign_image(&path).map_err(to_reply)?;
    if info.virtual_size == 0 {
        return Err(err(ErrorKind::Invalid, "the image is empty"));
    }
    let bytes = info.virtual_size.div_ceil(512) * 512;
    let source = if req.source.is_empty() { "the attached file".to_owned() } else { req.source.clone() };
    let worker = Arc::clone(daemon);
    let upid = daemon.tasks.spawn(&VM.task_type("import"), &vmid.to_string(), &caller.userid, move |ctx| {
        ctx.log(format!(
            "importing {source} ({source_format}, {}) to storage '{}' as {format}",
            size::format_size(bytes),
            req.storage
        ));
        let new = NewImage { vmid, name: None, format, size: bytes };
        let vol = worker.storages.locked(&req.storage, || backend.alloc(&new)).map_err(|e| e.to_string())?;
        let volid = storage::volid_of(backend.as_ref(), &vol);
        ctx.log(format!("allocated {volid}"));
        let imported = (|| -> Result<String, String> {
            let target = backend.path(&vol).map_err(|e| e.to_string())?;
            qemu_img::convert(&path, source_format, &target, format).map_err(|e| e.to_string())?;
            // The file must not have changed since it was probed: what was checked is what
            // was copied.
            if FileStamp::of(&file).map_err(|e| e.message)? != stamp {
                return Err(format!("{source} changed while it was imported; the copy is discarded"));
            }
            let (key, _) = worker
                .store
                .update(VM, vmid, None, |c| {
                    check_unlocked(vmid, c)?;
                    keep_unused(c, &volid)
                })
                .map_err(|e| e.message)?;
            Ok(key)
        })();
        match imported {
            Ok(key) => {
                ctx.log(format!("{source} imported as {key}: {volid}"));
                Ok(())
            }
            Err(e) => {
                if let Err(freed) = storage::free_volume(&worker, &volid) {
                    ctx.warn(format!("cannot free {volid}: {}", freed.message));
                }
                Err(e)
            }
        }
    })?;
    Ok(Payload::Task(upid))
}

/// What unlinking does with one key's volume.
enum Detached {
    /// Not a volume (CD-ROM, ISO file, host path), or still used elsewhere: only the key goes.
    Dropped,
    Unused(String),
    Free(String),
}

/// Decides the fate of a volume whose key was removed from `config`.
fn detach(
    daemon: &Daemon,
    vmid: Vmid,
    config: &GuestConfig,
    key: &str,
    volume: &str,
    destroy: bool,
) -> Result<Detached, ErrorReply> {
    if volume.starts_with('/') || !volume.contains(':') {
        return Ok(Detached::Dropped);
    }
    // Still named elsewhere (a snapshot, another key): it must stay.
    if config.volume_refs().iter().any(|(_, _, v)| v == volume) {
        return Ok(Detached::Dropped);
    }
    let vol = match daemon.storages.volume(volume) {
        Ok((_, vol)) => vol,
        Err(_) if !destroy => return Ok(Detached::Unused(volume.to_owned())),
        Err(e) => return Err(err(e.kind, format!("{key}: cannot free '{volume}': {}", e.message))),
    };
    Ok(match vol {
        VolName::File { .. } => Detached::Dropped,
        ref image if destroy && owned_image(vmid, image) => Detached::Free(volume.to_owned()),
        // Someone else's volume (a template's base, another guest's image) is never freed.
        _ if destroy => Detached::Dropped,
        _ => Detached::Unused(volume.to_owned()),
    })
}

pub fn unlink(daemon: &Daemon, vmid: Vmid, idlist: &[String], force: bool) -> Result<Payload, ErrorReply> {
    let mut keys: Vec<&str> = Vec::new();
    for key in idlist.iter().map(String::as_str) {
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    if keys.is_empty() {
        return Err(err(ErrorKind::Invalid, "idlist: give at least one disk key (scsi1, virtio2, unused0, ...)"));
    }
    let running = daemon.guest_running(VM, vmid);
    let (to_free, digest) = daemon.store.update(VM, vmid, None, |c| {
        check_unlocked(vmid, c)?;
        let mut removed = Vec::new();
        for key in &keys {
            let value = c
                .current
                .remove(*key)
                .ok_or_else(|| err(ErrorKind::Invalid, format!("{key}: VM {vmid} has no such key")))?;
            let unused = key.starts_with("unused");
            let volume = if unused {
                value.as_str().map(str::to_owned)
            } else {
                VM.schema().property(key, &value).and_then(|p| p.get("file").map(str::to_owned))
            };
            let volume = volume.ok_or_else(|| {
                err(
                    ErrorKind::Invalid,
                    format!("{key}: not a disk (unlink takes disk keys: scsi1, virtio2, unused0, ...)"),
                )
            })?;
            if running && !unused {
                return Err(err(
                    ErrorKind::Conflict,
                    format!(
                        "VM {vmid} is running and {key} is attached; hot-unplug is not supported yet, stop the VM first"
                    ),
                ));
            }
            removed.push((*key, volume, unused));
        }
        let mut to_free = Vec::new();
        for (key, volume, unused) in removed {
            // As qm: an unusedN that is unlinked is destroyed.
            match detach(daemon, vmid, c, key, &volume, force || unused)? {
                Detached::Dropped => {}
                Detached::Unused(volume) => {
                    keep_unused(c, &volume)?;
                }
                Detached::Free(volume) => to_free.push(volume),
            }
        }
        Ok(to_free)
    })?;
    // The configuration no longer names them; free them now. One that cannot be freed is
    // recorded as unusedN again, so it is not forgotten.
    let mut digest = digest;
    let mut failed = Vec::new();
    for volume in &to_free {
        if let Err(e) = storage::free(daemon, volume) {
            let kept = daemon.store.update(VM, vmid, None, |c| keep_unused(c, volume));
            let place = match kept {
                Ok((key, d)) => {
                    digest = d;
                    format!("kept as {key}")
                }
                Err(_) => "now orphaned".to_owned(),
            };
            failed.push(format!("cannot free '{volume}' ({place}): {}", e.message));
        }
    }
    if !failed.is_empty() {
        return Err(err(ErrorKind::Internal, format!("the disks were unlinked, but {}", failed.join("; "))));
    }
    Ok(Payload::Digest(digest))
}

pub fn cleanup(daemon: &Daemon, vmid: Vmid) -> Result<Payload, ErrorReply> {
    daemon.store.load(VM, vmid)?;
    // Under the run lock, so a start cannot be half way while its files are removed.
    let run_lock = daemon.run_lock(VM, vmid);
    let _held = run_lock.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(pid) = daemon.runtime(VM).pid(vmid) {
        return Err(err(
            ErrorKind::Conflict,
            format!("VM {vmid} is running (pid {pid}); cleanup is for a QEMU that is gone (stop it first)"),
        ));
    }
    daemon.qemu.clean_up(vmid);
    daemon.store.update(VM, vmid, None, |c| {
        // A suspended VM whose QEMU is gone is not suspended any more.
        if matches!(c.lock, Some(Lock::Suspended | Lock::Suspending)) {
            c.lock = None;
        }
        Ok(())
    })?;
    Ok(Payload::Empty)
}

/// The disk's value as `target_disk` of the target VM, and the key: checked before the task
/// and again in it.
fn check_reassign(
    daemon: &Daemon,
    req: &MoveDisk,
    target: Vmid,
    source: &GuestConfig,
    dest: &GuestConfig,
) -> Result<(String, String, String), ErrorReply> {
    let volume = check_move(daemon, VM, req, source)?;
    let target_disk = req.target_disk.clone().unwrap_or_else(|| req.disk.clone());
    check_unlocked(target, dest)?;
    if dest.current.get("template") == Some(&Value::Bool(true)) {
        return Err(err(ErrorKind::Invalid, format!("target-vmid: VM {target} is a template")));
    }
    if daemon.guest_running(VM, target) {
        return Err(err(ErrorKind::Conflict, format!("target-vmid: VM {target} is running; stop it first")));
    }
    if dest.current.contains_key(&target_disk) || dest.pending.values.contains_key(&target_disk) {
        return Err(err(ErrorKind::Conflict, format!("target-disk: VM {target} already has {target_disk}")));
    }
    let value = source.current.get(&req.disk).and_then(Value::as_str).unwrap_or_default().to_owned();
    let is_disk = ["scsi", "virtio", "sata", "ide"]
        .iter()
        .any(|p| target_disk.strip_prefix(p).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())));
    if !is_disk {
        return Err(err(
            ErrorKind::Invalid,
            format!("target-disk: '{target_disk}' is not a disk key (scsiN, virtioN, sataN, ideN)"),
        ));
    }
    VM.schema().parse_cli(&target_disk, &value).map_err(|e| err(ErrorKind::Invalid, format!("target-disk: {e}")))?;
    Ok((volume, target_disk, value))
}

/// `vmctl move-disk <vmid> <disk> --target-vmid <id> [--target-disk <key>]`: the disk leaves
/// the VM and becomes the target's, its volume renamed to the new owner on the same storage,
/// as Proxmox's disk reassignment. Both VMs are stopped; both run locks are held (in id order)
/// while the volume is renamed and the two configurations change; a failure renames it back.
fn reassign(daemon: &Arc<Daemon>, caller: &Caller, req: MoveDisk, target: Vmid) -> Result<Payload, ErrorReply> {
    let vmid = req.vmid;
    if target == vmid {
        return Err(err(ErrorKind::Invalid, format!("target-vmid: the disk is already VM {vmid}'s")));
    }
    if !req.storage.is_empty() || req.format.is_some() {
        return Err(err(ErrorKind::Invalid, "target-vmid: give no storage or --format; the disk stays where it is"));
    }
    let source = daemon.store.load(VM, vmid)?.config;
    let dest = daemon.store.load(VM, target)?.config;
    check_reassign(daemon, &req, target, &source, &dest)?;
    let worker = Arc::clone(daemon);
    let upid = daemon.tasks.spawn(&VM.task_type("move"), &vmid.to_string(), &caller.userid, move |ctx| {
        let (first, second) = if vmid < target { (vmid, target) } else { (target, vmid) };
        let (lock_a, lock_b) = (worker.run_lock(VM, first), worker.run_lock(VM, second));
        let _a = lock_a.lock().unwrap_or_else(|p| p.into_inner());
        let _b = lock_b.lock().unwrap_or_else(|p| p.into_inner());
        let source = worker.store.load(VM, vmid).map_err(|e| e.to_string())?.config;
        let dest = worker.store.load(VM, target).map_err(|e| e.to_string())?.config;
        let (volume, target_disk, _) = check_reassign(&worker, &req, target, &source, &dest).map_err(|e| e.message)?;
        let disk = req.disk.as_str();
        let (backend, vol) = worker.storages.volume(&volume).map_err(|e| e.message)?;
        let storage_id = backend.config().id.clone();
        let renamed = worker
            .storages
            .locked(&storage_id, || backend.rename(&vol, target))
            .map_err(|e| format!("{disk}: renaming {volume}: {e}"))?;
        let new_volid = storage::volid_of(backend.as_ref(), &renamed);
        ctx.log(format!("{disk}: {volume} renamed to {new_volid}"));
        let undo = |why: String| -> String {
            if let Err(e) = backend.rename(&renamed, vmid) {
                ctx.warn(format!("cannot rename {new_volid} back: {e}"));
            }
            why
        };
        let removed = worker.store.update(VM, vmid, None, |c| {
            check_unlocked(vmid, c)?;
            match c.current.get(disk).and_then(Value::as_str) {
                Some(v) if v.split(',').next() == Some(volume.as_str()) => Ok(c.current.remove(disk)),
                _ => Err(err(ErrorKind::Conflict, format!("{disk} changed meanwhile; nothing was moved"))),
            }
        });
        let old_value = match removed {
            Ok((Some(value), _)) => value,
            Ok((None, _)) => return Err(undo(format!("{disk} vanished meanwhile"))),
            Err(e) => return Err(undo(e.message)),
        };
        let added = worker.store.update(VM, target, None, |c| {
            check_unlocked(target, c)?;
            if c.current.contains_key(&target_disk) {
                return Err(err(ErrorKind::Conflict, format!("VM {target} got a {target_disk} meanwhile")));
            }
            let value = snapshots::with_volume(VM, &req.disk, &old_value, &new_volid, None)
                .map_err(|m| err(ErrorKind::Internal, m))?;
            let value = VM
                .schema()
                .parse_cli(&target_disk, value.as_str().unwrap_or_default())
                .map_err(|e| err(ErrorKind::Invalid, format!("target-disk: {e}")))?;
            c.current.insert(target_disk.clone(), value);
            Ok(())
        });
        if let Err(e) = added {
            // Put the disk back where it was.
            let _ = worker.store.update(VM, vmid, None, |c| {
                c.current.insert(disk.to_owned(), old_value.clone());
                Ok(())
            });
            return Err(undo(e.message));
        }
        ctx.log(format!("{disk} of VM {vmid} is now {target_disk} of VM {target} ({new_volid})"));
        Ok(())
    })?;
    Ok(Payload::Task(upid))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;

    #[test]
    fn a_moved_disk_keeps_its_properties_and_its_format_follows_the_copy() {
        let value = Value::Str("local:100/vm-100-disk-0.raw,size=4G,format=raw,cache=writeback,discard=on".into());
        let moved = replace_volume(VM, "scsi0", &value, "fast:100/vm-100-disk-3.qcow2", Format::Qcow2).unwrap();
        assert_eq!(
            moved,
            Value::Str("fast:100/vm-100-disk-3.qcow2,size=4G,format=qcow2,cache=writeback,discard=on".into())
        );
        // Without format= none is added.
        let value = Value::Str("local:100/vm-100-disk-0.qcow2,iothread=1".into());
        let moved = replace_volume(VM, "virtio0", &value, "fast:vm-100-disk-0", Format::Raw).unwrap();
        assert_eq!(moved, Value::Str("fast:vm-100-disk-0,iothread=1".into()));
    }

    #[test]
    fn only_the_vms_own_images_are_freed() {
        let vmid = Vmid::new(100).unwrap();
        let parse = |name: &str| VolName::parse(hearth_core::storage::StorageType::Dir, name).unwrap();
        assert!(owned_image(vmid, &parse("100/vm-100-disk-0.raw")));
        assert!(owned_image(vmid, &parse("900/base-900-disk-0.qcow2/100/vm-100-disk-1.qcow2")));
        assert!(!owned_image(vmid, &parse("100/base-100-disk-0.qcow2")));
        assert!(!owned_image(vmid, &parse("101/vm-101-disk-0.raw")));
        assert!(!owned_image(vmid, &parse("iso/debian.iso")));
    }
}
