//! Backups in `chunkstore` storages (hearth-backup's deduplicating [`ChunkStore`]).
//!
//! Volume ids: `<storage>:backup/<vm|ct>/<vmid>/<RFC 3339 UTC time>`, e.g.
//! `pbs:backup/vm/100/2026-11-22T10:00:00Z` — the snapshot's directory inside the store. A VM
//! backup holds `qemu-server.conf.blob` (the configuration) and one fixed index per disk
//! (`scsi0.img.fidx`); a container backup holds `pct.conf.blob` and the root file system as a
//! tar stream (`root.didx`) with its catalog (`root.catalog.blob`), which file-level restore
//! (`storectl backup ls|extract`) reads.
//!
//! The store is created inside the storage's path on first use (the path itself must exist).
//! With `keyfile`, chunks and blobs are encrypted; a backup with a key other than the one the
//! store's backups were written with is refused before anything is written.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hearth_backup::chunk_store::SyncLevel;
use hearth_backup::snapshot::{self, SnapshotInfo};
use hearth_backup::{BackupType, ChunkStore, KeyFile, SnapshotRef};
use hearth_core::storage::{StorageConfig, StorageType};
use hearth_core::{Value, Vmid};
use hearth_proto::{BackupEntry, BackupFile, ErrorKind, ErrorReply, Payload, PruneEntry};

use crate::Daemon;
use crate::access::Caller;
use crate::storage::to_reply;

/// The configuration blob of a VM backup.
pub const VM_CONFIG: &str = "qemu-server.conf";
/// The configuration blob of a container backup.
pub const CT_CONFIG: &str = "pct.conf";
/// The container root file system archive.
pub const CT_ROOT: &str = "root";

fn err(kind: ErrorKind, message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(kind, message)
}

fn backup_err(e: hearth_backup::Error) -> ErrorReply {
    let kind = match &e {
        hearth_backup::Error::Invalid(_) => ErrorKind::Invalid,
        hearth_backup::Error::Busy { .. } => ErrorKind::Conflict,
        hearth_backup::Error::KeyRequired(_) | hearth_backup::Error::WrongKey { .. } => ErrorKind::Invalid,
        hearth_backup::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        _ => ErrorKind::Internal,
    };
    err(kind, e.to_string())
}

pub fn guest_type(t: BackupType) -> &'static str {
    match t {
        BackupType::Vm => "qemu",
        BackupType::Ct => "lxc",
    }
}

/// An open chunk store storage with its key.
pub struct Store {
    pub storage: String,
    pub store: ChunkStore,
    pub key: Option<KeyFile>,
}

impl Store {
    pub fn volid(&self, snap: &SnapshotRef) -> String {
        format!("{}:backup/{snap}", self.storage)
    }
}

/// Whether a storage is a chunk store.
pub fn is_chunkstore(daemon: &Daemon, storage: &str) -> bool {
    daemon.storages.config(storage).is_ok_and(|c| c.storage_type == StorageType::Chunkstore)
}

/// Opens (creating on first use) the chunk store of a storage, with its key.
pub fn open(daemon: &Daemon, storage: &str) -> Result<Store, ErrorReply> {
    let config = daemon.storages.config(storage)?;
    open_config(daemon, &config)
}

/// Opens the store without loading its key: for listing, pruning and protection, which never
/// read chunks (a missing key file must not hide the backups).
fn open_keyless(daemon: &Daemon, storage: &str) -> Result<Store, ErrorReply> {
    let mut config = daemon.storages.config(storage)?;
    config.section.remove("keyfile");
    open_config(daemon, &config)
}

fn open_config(daemon: &Daemon, config: &StorageConfig) -> Result<Store, ErrorReply> {
    if config.storage_type != StorageType::Chunkstore {
        return Err(err(ErrorKind::Invalid, format!("storage '{}' is not a chunkstore", config.id)));
    }
    daemon.storages.backend(&config.id)?.activate().map_err(to_reply)?;
    let root = Path::new(&config.path);
    let mut store = match ChunkStore::open(root) {
        Ok(store) => store,
        Err(hearth_backup::Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            ChunkStore::create(root).map_err(backup_err)?
        }
        Err(e) => return Err(backup_err(e)),
    };
    // PBS's datastore tuning: when writes reach the disk (the schema allows only these values).
    if let Some(level) = config.section.get("sync-level").and_then(Value::as_str).and_then(SyncLevel::parse) {
        store.set_sync_level(level);
    }
    let key = match config.section.get("keyfile") {
        Some(Value::Str(path)) => Some(KeyFile::load(Path::new(path)).map_err(|e| {
            err(ErrorKind::Invalid, format!("storage '{}': cannot load the key file {path}: {e}", config.id))
        })?),
        _ => None,
    };
    Ok(Store { storage: config.id.clone(), store, key })
}

/// Parses `<storage>:backup/<vm|ct>/<id>/<time>` of a chunk store storage.
pub fn parse_volid(daemon: &Daemon, volid: &str) -> Option<(String, SnapshotRef)> {
    let (storage, rest) = volid.split_once(':')?;
    if !is_chunkstore(daemon, storage) {
        return None;
    }
    Some((storage.to_owned(), parse_snapshot(rest)?))
}

fn parse_snapshot(rest: &str) -> Option<SnapshotRef> {
    let mut parts = rest.strip_prefix("backup/")?.split('/');
    let backup_type = BackupType::parse(parts.next()?)?;
    let id = parts.next()?;
    let time = hearth_backup::time::parse_rfc3339(parts.next()?)?;
    if parts.next().is_some() || id.is_empty() || id.starts_with('.') || id.contains("..") {
        return None;
    }
    Some(SnapshotRef::new(backup_type, id, time))
}

/// Opens the store of a chunk store volume id and checks the snapshot is complete.
pub fn open_volid(daemon: &Daemon, volid: &str) -> Result<(Store, SnapshotRef), ErrorReply> {
    let (storage, snap) = parse_volid(daemon, volid).ok_or_else(|| {
        err(ErrorKind::Invalid, format!("'{volid}' is not a chunk store backup (storage:backup/vm|ct/<vmid>/<time>)"))
    })?;
    let store = open(daemon, &storage)?;
    if snapshot::load_manifest(&store.store, &snap).is_err() {
        return Err(err(ErrorKind::NotFound, format!("backup '{volid}' does not exist or is incomplete")));
    }
    Ok((store, snap))
}

/// Refuses a key that differs from the one the store's newest backups were written with (or a
/// missing key for an encrypted store), before anything is written.
pub fn check_key(store: &Store) -> Result<(), String> {
    let ours = store.key.as_ref().map(KeyFile::fingerprint);
    for (t, id) in snapshot::list_groups(&store.store).map_err(|e| e.to_string())? {
        let Some(last) = snapshot::last_complete(&store.store, t, &id).map_err(|e| e.to_string())? else { continue };
        let Some(manifest) = last.manifest else { continue };
        match (&manifest.key_fingerprint, &ours) {
            (Some(theirs), Some(ours)) if theirs != ours => {
                return Err(format!(
                    "storage '{}': wrong key: the key file's fingerprint {ours} is not {theirs}, the key of backup {}",
                    store.storage, last.snapshot
                ));
            }
            (Some(theirs), None) => {
                return Err(format!(
                    "storage '{}': its backups are encrypted (key {theirs}) but no keyfile is configured",
                    store.storage
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The time of a new snapshot of a group: now, or just after the newest one.
pub fn next_time(store: &ChunkStore, t: BackupType, id: &str, now: i64) -> i64 {
    let last = snapshot::list_snapshots(store, t, id).ok().and_then(|s| s.last().map(|s| s.snapshot.time));
    last.map_or(now, |l| now.max(l + 1))
}

/// Removes what an interrupted backup of this guest left: incomplete snapshots not in use and
/// temporary image directories.
pub fn clean_leftovers(store: &Store, t: BackupType, vmid: Vmid, log: &dyn Fn(String)) {
    if let Ok(snaps) = snapshot::list_snapshots(&store.store, t, &vmid.to_string()) {
        for s in snaps.iter().filter(|s| !s.complete()) {
            if snapshot::remove_snapshot(&store.store, &s.snapshot).is_ok() {
                log(format!(
                    "removed the incomplete backup {}, left by an interrupted backup",
                    store.volid(&s.snapshot)
                ));
            }
        }
    }
}

/// A directory for temporary images inside the store (same file system, and cleaned with it).
pub fn temp_dir(store: &Store) -> PathBuf {
    store.store.root().to_path_buf()
}

fn entry(store: &Store, info: &SnapshotInfo) -> BackupEntry {
    let snap = &info.snapshot;
    let dir = snap.path(&store.store);
    let mut size = 0;
    let mut damaged = Vec::new();
    for f in info.manifest.iter().flat_map(|m| m.files.iter()) {
        let path = dir.join(&f.filename);
        // Blobs (configuration, catalog) are not counted: the size is the guest's data.
        let loaded = if f.filename.ends_with(".img.fidx") {
            hearth_backup::index::FixedIndex::load(&path).map(|i| i.size)
        } else if f.filename.ends_with(".didx") {
            hearth_backup::index::DynamicIndex::load(&path).map(|i| i.size())
        } else {
            Ok(0)
        };
        match loaded {
            Ok(n) => size += n,
            // A truncated or unreadable index is a damaged backup, never one of size 0.
            Err(e) => damaged.push(format!("{}: {e}", f.filename)),
        }
    }
    BackupEntry {
        volid: store.volid(snap),
        vmid: snap.id.parse().ok(),
        guest_type: guest_type(snap.backup_type).to_owned(),
        format: "chunks".into(),
        size,
        ctime: snap.time,
        protected: info.protected,
        notes: snapshot::notes(&store.store, snap).ok().flatten(),
        damaged: (!damaged.is_empty()).then(|| damaged.join("; ")),
    }
}

/// The complete backups of a chunk store storage, optionally of one guest.
pub fn backups_on(daemon: &Daemon, storage: &str, vmid: Option<Vmid>) -> Result<Vec<BackupEntry>, ErrorReply> {
    let Ok(store) = open_keyless(daemon, storage) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for (t, id) in snapshot::list_groups(&store.store).map_err(backup_err)? {
        if vmid.is_some_and(|v| v.to_string() != id) {
            continue;
        }
        for info in snapshot::list_snapshots(&store.store, t, &id).map_err(backup_err)? {
            if info.complete() {
                out.push(entry(&store, &info));
            }
        }
    }
    Ok(out)
}

pub fn protect(daemon: &Daemon, volid: &str, protected: bool) -> Result<Payload, ErrorReply> {
    let (storage, snap) = parse_volid(daemon, volid)
        .ok_or_else(|| err(ErrorKind::Invalid, format!("'{volid}' is not a chunk store backup")))?;
    let store = open_keyless(daemon, &storage)?;
    if snapshot::load_manifest(&store.store, &snap).is_err() {
        return Err(err(ErrorKind::NotFound, format!("backup '{volid}' does not exist or is incomplete")));
    }
    snapshot::set_protected(&store.store, &snap, protected).map_err(backup_err)?;
    Ok(Payload::Empty)
}

/// Prunes the groups of a chunk store storage with hearth-backup's prune.
pub fn prune(
    daemon: &Daemon,
    storage: &str,
    vmid: Option<Vmid>,
    guest: Option<&str>,
    keep: &hearth_core::prune::KeepOptions,
    dry_run: bool,
) -> Result<Vec<PruneEntry>, ErrorReply> {
    let store = open_keyless(daemon, storage)?;
    let mut out = Vec::new();
    for (t, id) in snapshot::list_groups(&store.store).map_err(backup_err)? {
        if vmid.is_some_and(|v| v.to_string() != id) || guest.is_some_and(|g| g != guest_type(t)) {
            continue;
        }
        let result =
            hearth_backup::prune::prune_group(&store.store, t, &id, keep, hearth_sys::time::utc_offset, dry_run)
                .map_err(backup_err)?;
        let group = format!("{}/{id}", guest_type(t));
        let marked = [
            (&result.kept, "keep"),
            (&result.removed, "remove"),
            (&result.protected, "protected"),
            (&result.busy, "keep"),
        ];
        let mut entries: Vec<PruneEntry> = marked
            .into_iter()
            .flat_map(|(snaps, mark)| snaps.iter().map(move |s| (s, mark)))
            .map(|(s, mark)| PruneEntry {
                volid: store.volid(s),
                guest: group.clone(),
                ctime: s.time,
                mark: mark.to_owned(),
            })
            .collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.ctime));
        out.extend(entries);
    }
    Ok(out)
}

/// `storectl backup verify <volid|storage>`: a task that verifies, logging each backup.
pub fn verify(daemon: &Arc<Daemon>, caller: &Caller, target: &str) -> Result<Payload, ErrorReply> {
    let (store, snaps) = if target.contains(':') {
        let (store, snap) = open_volid(daemon, target)?;
        (store, vec![snap])
    } else {
        let store = open(daemon, target)?;
        let mut snaps = Vec::new();
        for (t, id) in snapshot::list_groups(&store.store).map_err(backup_err)? {
            for info in snapshot::list_snapshots(&store.store, t, &id).map_err(backup_err)? {
                if info.complete() {
                    snaps.push(info.snapshot);
                }
            }
        }
        (store, snaps)
    };
    let upid = daemon.tasks.spawn("verify", &store.storage.clone(), &caller.userid, move |ctx| {
        let mut bad = 0;
        for snap in &snaps {
            ctx.check_stop()?;
            let volid = store.volid(snap);
            match hearth_backup::verify::verify_snapshot(&store.store, snap, store.key.as_ref(), crate::backup::now()) {
                Ok(report) if report.ok() => ctx.log(format!("{volid}: ok ({} chunks)", report.chunks)),
                Ok(report) => {
                    bad += 1;
                    ctx.log(format!(
                        "{volid}: FAILED: {} bad chunks, {} missing chunks, {} bad files{}",
                        report.bad_chunks.len(),
                        report.missing_chunks.len(),
                        report.bad_files.len(),
                        if report.bad_files.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", report.bad_files.join(", "))
                        }
                    ));
                }
                Err(e) => {
                    bad += 1;
                    ctx.log(format!("{volid}: FAILED: {e}"));
                }
            }
        }
        if bad > 0 {
            return Err(format!("{bad} of {} backups failed verification", snaps.len()));
        }
        ctx.log(format!("{} backups verified", snaps.len()));
        Ok(())
    })?;
    Ok(Payload::Task(upid))
}

/// `storectl backup gc <storage>`: garbage collection in a task.
pub fn gc(daemon: &Arc<Daemon>, caller: &Caller, storage: &str) -> Result<Payload, ErrorReply> {
    let store = open(daemon, storage)?;
    let mut options = hearth_backup::gc::GcOptions::default();
    // Tests shorten the safety margin (atime granularity and relatime make a short one unsafe
    // on ordinary systems).
    if let Some(secs) = std::env::var("HEARTH_GC_SAFETY_MARGIN").ok().and_then(|s| s.parse().ok()) {
        options.safety_margin = std::time::Duration::from_secs(secs);
    }
    let upid = daemon.tasks.spawn("gc", &store.storage.clone(), &caller.userid, move |ctx| {
        let stats = hearth_backup::gc::gc(&store.store, &options).map_err(|e| e.to_string())?;
        ctx.log(format!(
            "{} index files, {} chunks referenced, {} missing; removed {} chunks ({} bytes), {} bad, {} temporary; {} chunks ({} bytes) kept",
            stats.index_files,
            stats.referenced_chunks,
            stats.missing_chunks,
            stats.removed_chunks,
            stats.removed_bytes,
            stats.removed_bad,
            stats.removed_temp,
            stats.kept_chunks,
            stats.kept_bytes
        ));
        if stats.missing_chunks > 0 {
            return Err(format!("{} referenced chunks are missing; run storectl backup verify", stats.missing_chunks));
        }
        Ok(())
    })?;
    Ok(Payload::Task(upid))
}

fn container_backup(daemon: &Daemon, volid: &str) -> Result<(Store, SnapshotRef), ErrorReply> {
    let (store, snap) = open_volid(daemon, volid)?;
    if snap.backup_type != BackupType::Ct {
        return Err(err(
            ErrorKind::Invalid,
            format!("'{volid}' is a VM backup; file-level restore needs a container backup"),
        ));
    }
    Ok((store, snap))
}

pub fn ls(daemon: &Daemon, volid: &str, path: &str) -> Result<Payload, ErrorReply> {
    let (store, snap) = container_backup(daemon, volid)?;
    let entries =
        hearth_backup::tree::list(&store.store, &snap, CT_ROOT, store.key.as_ref(), path).map_err(backup_err)?;
    Ok(Payload::BackupFiles(
        entries
            .into_iter()
            .map(|e| BackupFile {
                path: format!("/{}", e.path),
                kind: match e.kind {
                    '5' => "d",
                    '2' => "l",
                    '1' => "h",
                    '3' => "c",
                    '4' => "b",
                    '6' => "p",
                    _ => "f",
                }
                .into(),
                size: e.size,
                mode: e.mode,
                uid: e.uid,
                gid: e.gid,
                mtime: e.mtime,
                link: e.link,
            })
            .collect(),
    ))
}

/// Writes the tar stream of the files under `path` to the caller's file (a pipe or stdout).
pub fn extract(daemon: &Daemon, volid: &str, path: &str, file: File) -> Result<Payload, ErrorReply> {
    let (store, snap) = container_backup(daemon, volid)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    hearth_backup::tree::write_tar(&store.store, &snap, CT_ROOT, store.key.as_ref(), &[path], &mut out)
        .map_err(backup_err)?;
    Ok(Payload::Empty)
}
