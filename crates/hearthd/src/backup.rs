//! Backups as vzdump makes them: one guest (`vmctl backup`, `ctctl backup`) or many
//! (`storectl backup run`) into `vzdump-{qemu|lxc}-<vmid>-<time>.{vma|tar}.zst` archives on a
//! storage holding `backup` content, written by hearth-backup under a temporary name and renamed
//! when complete, with `.log` and `.notes` beside them; and restores of those archives.
//!
//! Modes, as vzdump's:
//! - `stop`: a running guest is shut down, backed up, and started again;
//! - `suspend`: a VM is paused through QMP (QEMU flushes its disks when it stops) and its
//!   images read; a container's cgroup is frozen while its tree is archived;
//! - `snapshot`: a running VM keeps running while QEMU copies each disk as it was at the
//!   start (`blockdev-backup` sync=full in one QMP transaction, copy-before-write) into
//!   temporary images that are then archived; a running container whose volumes are all btrfs
//!   subvolumes is backed up from read-only snapshots (`<subvolume>@vzdump`, deleted
//!   afterwards) and never frozen; other containers fall back to `suspend` with a line in the
//!   log.
//!
//! A container's archive holds its rootfs and, under their paths, the mount points (`mpN`)
//! with `backup=1`, as vzdump; a restore allocates new volumes for those. Reading reports byte
//! progress to the task and is throttled to `bwlimit` KiB/s (a token bucket).
//!
//! The guest carries the `backup` lock for the whole backup; a guest locked by anything else
//! is skipped with the reason. Whatever happens, the guest is resumed (or started again) and
//! unlocked, and a partial archive is removed; a full storage is named in the error.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hearth_backup::vzdump::{self, ArchiveOptions};
use hearth_core::access::Privilege;
use hearth_core::storage::{Content, Format, StorageConfig, StorageType, VolName};
use hearth_core::{GuestConfig, GuestKind, Lock, Value, Vmid};
use hearth_proto::{BackupEntry, BackupGuest, BackupOptions, BackupRun, ErrorKind, ErrorReply, Payload, RestoreGuest};
use serde_json::json;

use crate::access::{Caller, Need, authorize_also};
use crate::storage::to_reply;
use crate::{Daemon, containers, lifecycle, snapshots};
use hearth_core::runtime::StartOptions;

fn err(kind: ErrorKind, message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(kind, message)
}

pub(crate) fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The time a guest's new backup is named after: now, but never the second of this guest's
/// previous backup. Archive names have a resolution of one second, so a second backup of the
/// same guest within the same second waits for the next one instead of failing on the name.
fn backup_time(vmid: Vmid) -> i64 {
    static LAST: std::sync::Mutex<std::collections::BTreeMap<u32, i64>> =
        std::sync::Mutex::new(std::collections::BTreeMap::new());
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    let mut time = now();
    if let Some(&previous) = last.get(&vmid.get()) {
        while time <= previous {
            std::thread::sleep(Duration::from_millis(50));
            time = now();
        }
    }
    last.insert(vmid.get(), time);
    time
}

/// How long a guest may take to shut down in stop mode (vzdump's `stopwait`, 10 minutes).
const STOP_WAIT: u64 = 600;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Snapshot,
    Suspend,
    Stop,
}

fn parse_mode(mode: Option<&str>) -> Result<Mode, ErrorReply> {
    match mode.unwrap_or("snapshot") {
        "snapshot" => Ok(Mode::Snapshot),
        "suspend" => Ok(Mode::Suspend),
        "stop" => Ok(Mode::Stop),
        other => Err(err(ErrorKind::Invalid, format!("mode: '{other}' is not one of snapshot, suspend, stop"))),
    }
}

fn check_options(options: &BackupOptions) -> Result<Mode, ErrorReply> {
    if let Some(c) = options.compress.as_deref().filter(|c| !matches!(*c, "zstd" | "1")) {
        return Err(err(ErrorKind::Invalid, format!("compress: '{c}' is not supported (only zstd)")));
    }
    if let Some(n) = options.mailnotification.as_deref().filter(|n| !matches!(*n, "always" | "failure")) {
        return Err(err(ErrorKind::Invalid, format!("mailnotification: '{n}' is not one of always, failure")));
    }
    if let Some(fleecing) = &options.fleecing {
        fleecing_storage(fleecing).map_err(|e| err(ErrorKind::Invalid, e))?;
    }
    if options.stdout && options.dumpdir.is_some() {
        return Err(err(ErrorKind::Invalid, "stdout: cannot be combined with dumpdir"));
    }
    if options.dumpdir.as_deref().is_some_and(|d| !d.starts_with('/')) {
        return Err(err(ErrorKind::Invalid, "dumpdir: must be an absolute path"));
    }
    if let Some(keep) = &options.prune_backups {
        hearth_core::prune::KeepOptions::parse(keep).map_err(|e| err(ErrorKind::Invalid, e.to_string()))?;
    }
    parse_mode(options.mode.as_deref())
}

/// The storage a backup goes to: the one named, else the first active storage of the node
/// holding `backup` content.
fn target_storage(daemon: &Daemon, storage: Option<&str>) -> Result<StorageConfig, ErrorReply> {
    let config = match storage {
        Some(id) => daemon.storages.config(id)?,
        None => {
            let (table, _) = daemon.storages.load()?;
            table
                .all()
                .into_iter()
                .find(|c| !c.disable && c.on_node(&daemon.node) && c.has_content(Content::Backup))
                .ok_or_else(|| err(ErrorKind::Invalid, "no storage holds backups; name one with --storage"))?
        }
    };
    if !config.has_content(Content::Backup) {
        return Err(err(ErrorKind::Invalid, format!("storage '{}' does not hold content 'backup'", config.id)));
    }
    Ok(config)
}

/// `<storage path>/dump`, activated.
fn dump_dir(daemon: &Daemon, storage: &str) -> Result<PathBuf, ErrorReply> {
    let backend = daemon.storages.backend(storage)?;
    backend.activate().map_err(to_reply)?;
    Ok(hearth_storage::content_path(backend.config(), Content::Backup, ""))
}

/// `--fleecing enabled=1,storage=S`: the storage, or `None` when fleecing is off.
pub(crate) fn fleecing_storage(value: &str) -> Result<Option<String>, String> {
    let mut enabled = false;
    let mut storage = None;
    for part in value.split(',').filter(|p| !p.is_empty()) {
        // `enabled` is the default key: `--fleecing 1,storage=local`.
        let (key, v) = part.split_once('=').unwrap_or(("enabled", part));
        match key {
            "enabled" => {
                enabled = match v {
                    "1" | "yes" | "true" | "on" => true,
                    "0" | "no" | "false" | "off" => false,
                    other => return Err(format!("fleecing: enabled: '{other}' is not 0 or 1")),
                }
            }
            "storage" => {
                storage = Some(hearth_core::schema::check::storage_id(v).map_err(|e| format!("fleecing: {e}"))?)
            }
            _ => return Err(format!("fleecing: unknown property '{key}' (allowed: enabled, storage)")),
        }
    }
    match (enabled, storage) {
        (false, _) => Ok(None),
        (true, Some(storage)) => Ok(Some(storage)),
        (true, None) => Err("fleecing: enabled=1 needs storage=<storage>".into()),
    }
}

/// Where a backup run writes: a storage, a host directory (`--dumpdir`), or the caller's
/// stream (`--stdout`).
pub(crate) enum Target {
    Storage(String),
    Dir(PathBuf),
    Stream(std::fs::File),
}

impl Target {
    fn describe(&self) -> String {
        match self {
            Target::Storage(id) => format!("storage '{id}'"),
            Target::Dir(dir) => format!("directory {}", dir.display()),
            Target::Stream(_) => "standard output".into(),
        }
    }
}

/// `vmctl backup`, `ctctl backup`: one guest in one task.
pub fn backup(daemon: &Arc<Daemon>, caller: &Caller, kind: GuestKind, req: BackupGuest) -> Result<Payload, ErrorReply> {
    check_options(&req.options)?;
    if req.options.stdout || req.options.dumpdir.is_some() {
        return Err(err(ErrorKind::Invalid, "stdout and dumpdir are options of `storectl vzdump`"));
    }
    daemon.store.load(kind, req.vmid)?;
    let storage = target_storage(daemon, req.options.storage.as_deref())?;
    authorize_also(&daemon.access, caller, format!("/storage/{}", storage.id), Privilege::DatastoreAllocateSpace)?;
    let worker = Arc::clone(daemon);
    let upid = daemon.tasks.spawn("vzdump", &req.vmid.to_string(), &caller.userid, move |ctx| {
        let log = |line: String| ctx.log(line);
        let progress = |done, total| ctx.progress(done, total);
        let target = Target::Storage(storage.id.clone());
        let archive = backup_guest(&worker, kind, req.vmid, &target, &req.options, &log, &progress)?;
        ctx.log(format!("{}: ok {archive}", req.vmid));
        Ok(())
    })?;
    Ok(Payload::Task(upid))
}

/// `storectl backup run`: every selected guest, one after the other, in one task. One summary
/// line per guest; the task fails when any guest failed or was skipped.
pub fn run(
    daemon: &Arc<Daemon>,
    caller: &Caller,
    req: BackupRun,
    stream: Option<std::fs::File>,
) -> Result<Payload, ErrorReply> {
    let upid = start_run_to(daemon, &caller.userid, Some(caller), req, "", stream)?;
    Ok(Payload::Task(upid))
}

/// The guests a selection names, with their kinds, sorted by id.
fn select(daemon: &Daemon, req: &BackupRun) -> Result<Vec<(Vmid, Option<GuestKind>)>, ErrorReply> {
    if let Some(pool) = &req.pool {
        let model = daemon.access.model();
        let members = model
            .pools
            .iter()
            .find(|(name, _)| name.as_str() == pool)
            .map(|(_, p)| p.vms.clone())
            .ok_or_else(|| err(ErrorKind::NotFound, format!("pool: no pool '{pool}'")))?;
        let mut guests: Vec<(Vmid, Option<GuestKind>)> = members
            .into_iter()
            .chain(req.vmids.iter().copied())
            .filter(|v| !req.exclude.contains(v))
            .map(|v| (v, daemon.store.locate(v).map(|(_, k)| k)))
            .collect();
        guests.sort_by_key(|(v, _)| *v);
        guests.dedup_by_key(|(v, _)| *v);
        return Ok(guests);
    }
    if req.all || !req.exclude.is_empty() {
        let mut all = Vec::new();
        for kind in [GuestKind::Vm, GuestKind::Ct] {
            for listed in daemon.store.list(kind)? {
                if !req.exclude.contains(&listed.vmid) {
                    all.push((listed.vmid, Some(kind)));
                }
            }
        }
        all.sort_by_key(|(v, _)| *v);
        return Ok(all);
    }
    if req.vmids.is_empty() {
        return Err(err(ErrorKind::Invalid, "name the guests (--vmid 100,101) or --all"));
    }
    Ok(req.vmids.iter().map(|v| (*v, daemon.store.locate(*v).map(|(_, k)| k))).collect())
}

/// Starts the task of a backup run; `caller` (when a person asked) is checked for VM.Backup
/// on each guest. Jobs run as `root@pam`.
pub(crate) fn start_run(
    daemon: &Arc<Daemon>,
    user: &str,
    caller: Option<&Caller>,
    req: BackupRun,
    job: &str,
) -> Result<hearth_core::Upid, ErrorReply> {
    start_run_to(daemon, user, caller, req, job, None)
}

/// [`start_run`], writing into `stream` when the run asks for `stdout`.
fn start_run_to(
    daemon: &Arc<Daemon>,
    user: &str,
    caller: Option<&Caller>,
    req: BackupRun,
    job: &str,
    stream: Option<std::fs::File>,
) -> Result<hearth_core::Upid, ErrorReply> {
    check_options(&req.options)?;
    let target = match (&req.options.dumpdir, stream) {
        (_, Some(file)) if req.options.stdout => Target::Stream(file),
        (Some(dir), _) => {
            let dir = PathBuf::from(dir);
            if !dir.is_dir() {
                return Err(err(ErrorKind::Invalid, format!("dumpdir: {} is not a directory", dir.display())));
            }
            Target::Dir(dir)
        }
        _ if req.options.stdout => return Err(err(ErrorKind::Protocol, "stdout: the request carries no stream")),
        _ => Target::Storage(target_storage(daemon, req.options.storage.as_deref())?.id),
    };
    if let Some(storage) = req.options.fleecing.as_deref().map(fleecing_storage).transpose().ok().flatten().flatten() {
        daemon.storages.config(&storage).map_err(|e| err(e.kind, format!("fleecing: {}", e.message)))?;
    }
    let guests = select(daemon, &req)?;
    if matches!(target, Target::Stream(_)) && guests.len() != 1 {
        return Err(err(ErrorKind::Invalid, "stdout: name exactly one guest"));
    }
    if let Some(caller) = caller {
        for (vmid, _) in &guests {
            authorize_also(&daemon.access, caller, format!("/vms/{vmid}"), Privilege::VmBackup)?;
        }
    }
    let worker = Arc::clone(daemon);
    let id = match (job, &guests[..]) {
        ("", [(vmid, _)]) => vmid.to_string(),
        _ => job.to_owned(),
    };
    let job = job.to_owned();
    daemon.tasks.spawn("vzdump", &id, user, move |ctx| {
        // Every line also goes into the mail, when one is asked for.
        let mailed = std::sync::Mutex::new(Vec::new());
        let say = |line: String| {
            mailed.lock().unwrap_or_else(|p| p.into_inner()).push(line.clone());
            ctx.log(line);
        };
        if !job.is_empty() {
            say(format!("backup job '{job}'"));
        }
        say(format!("{} guests to back up to {}", guests.len(), target.describe()));
        let mut failed = 0;
        let result = (|| {
            for (vmid, kind) in &guests {
                ctx.check_stop()?;
                let Some(kind) = kind else {
                    failed += 1;
                    say(format!("{vmid}: failed: no VM or container {vmid} on this node"));
                    continue;
                };
                let started = Instant::now();
                let guest_log = |line: String| say(format!("{vmid}: {line}"));
                let mut options = req.options.clone();
                if let Target::Storage(id) = &target {
                    options.storage = Some(id.clone());
                }
                let progress = |done, total| ctx.progress(done, total);
                match backup_guest(&worker, *kind, *vmid, &target, &options, &guest_log, &progress) {
                    Ok(archive) => say(format!("{vmid}: ok {archive} ({} s)", started.elapsed().as_secs())),
                    Err(e) => {
                        failed += 1;
                        let word = if e.contains("is locked") { "skipped" } else { "failed" };
                        say(format!("{vmid}: {word}: {e}"));
                    }
                }
            }
            if failed > 0 {
                return Err(format!("{failed} of {} guests failed", guests.len()));
            }
            Ok(())
        })();
        if !req.options.mailto.is_empty() {
            let lines = std::mem::take(&mut *mailed.lock().unwrap_or_else(|p| p.into_inner()));
            crate::mail::backup_log(&worker, &req.options, result.is_ok(), &lines, &|l| ctx.log(l));
        }
        result
    })
}

/// The configuration that travels in the archive: the current settings only.
fn config_text(config: &GuestConfig) -> String {
    let mut c = GuestConfig::new(config.kind);
    c.current = config.current.clone();
    c.to_toml()
}

fn notes(template: &str, daemon: &Daemon, vmid: Vmid, config: &GuestConfig) -> String {
    let name = match config.current.get("name").or_else(|| config.current.get("hostname")) {
        Some(Value::Str(s)) => s.clone(),
        _ => String::new(),
    };
    template
        .replace("{{guestname}}", &name)
        .replace("{{vmid}}", &vmid.to_string())
        .replace("{{node}}", &daemon.node)
        .replace("{{cluster}}", &daemon.node)
        .replace("\\n", "\n")
        .replace("\\\\", "\\")
}

/// Says which storage is full when the archive did not fit.
fn name_full_storage(storage: &str, e: String) -> String {
    if e.contains("No space left on device") || e.contains("os error 28") {
        format!("storage '{storage}' is full: {e}")
    } else {
        e
    }
}

/// Where a backup goes: a vzdump archive in a dump directory, or a snapshot in a chunk store.
enum Sink<'t> {
    Dump {
        dir: PathBuf,
        options: ArchiveOptions,
    },
    Chunks {
        store: crate::chunks::Store,
        time: i64,
        notes: Option<String>,
        protected: bool,
        exclude: Vec<String>,
    },
    /// `--stdout`: one zstd stream into the caller's file; temporary files go to `temp`.
    Stream {
        out: &'t std::fs::File,
        temp: PathBuf,
        options: ArchiveOptions,
    },
}

/// A finished backup: its volume id and what the log says about it.
struct Written {
    volid: String,
    summary: String,
}

impl Sink<'_> {
    /// Where temporary images go.
    fn temp_root(&self) -> PathBuf {
        match self {
            Sink::Dump { dir, .. } => dir.clone(),
            Sink::Chunks { store, .. } => crate::chunks::temp_dir(store),
            Sink::Stream { temp, .. } => temp.clone(),
        }
    }

    fn stream_written(size: u64) -> Written {
        Written { volid: "-".into(), summary: format!("archive written to standard output ({size} bytes)") }
    }

    fn dump_written(archive: vzdump::VzdumpArchive) -> Written {
        let file = archive.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Written { volid: file, summary: format!("archive {} ({} bytes)", archive.path.display(), archive.size) }
    }

    fn chunk_writer(
        store: &crate::chunks::Store,
        t: hearth_backup::BackupType,
        vmid: Vmid,
        time: i64,
    ) -> Result<hearth_backup::BackupWriter, String> {
        crate::chunks::check_key(store)?;
        hearth_backup::BackupWriter::start(&store.store, t, &vmid.to_string(), time, store.key.as_ref())
            .map_err(|e| e.to_string())
    }

    fn chunk_finish(
        store: &crate::chunks::Store,
        writer: hearth_backup::BackupWriter,
        notes: Option<&str>,
        protected: bool,
    ) -> Result<Written, String> {
        let stats = writer.finish(notes).map_err(|e| e.to_string())?;
        if protected {
            hearth_backup::snapshot::set_protected(&store.store, &stats.snapshot, true).map_err(|e| e.to_string())?;
        }
        let size: u64 = stats.archives.iter().map(|(_, a)| a.size).sum();
        let stored: u64 = stats.archives.iter().map(|(_, a)| a.stored_bytes).sum();
        let base = stats.base.as_ref().map(|b| format!(", incremental to {b}")).unwrap_or_default();
        Ok(Written {
            volid: store.volid(&stats.snapshot),
            summary: format!(
                "backup {}: {size} bytes in {} chunks, {} new ({stored} bytes stored){base}",
                stats.snapshot,
                stats.chunks(),
                stats.new_chunks()
            ),
        })
    }

    fn vm(&self, vmid: Vmid, config: &str, disks: &[(String, PathBuf)], meter: &Meter) -> Result<Written, String> {
        let hook = |n| meter.read(n);
        match self {
            Sink::Dump { dir, options } => {
                let refs: Vec<(&str, &Path)> = disks.iter().map(|(k, p)| (k.as_str(), p.as_path())).collect();
                let archive = vzdump::write_vma_with(dir, vmid.get(), config, &refs, options, &hook)
                    .map_err(|e| e.to_string())?;
                Ok(Self::dump_written(archive))
            }
            Sink::Stream { out, options, .. } => {
                let refs: Vec<(&str, &Path)> = disks.iter().map(|(k, p)| (k.as_str(), p.as_path())).collect();
                let mut out: &std::fs::File = out;
                let name = Path::new("standard output");
                vzdump::stream_vma_with(&mut out, name, vmid.get(), config, &refs, options, &hook)
                    .map(Self::stream_written)
                    .map_err(|e| e.to_string())
            }
            Sink::Chunks { store, time, notes, protected, .. } => {
                let mut writer = Self::chunk_writer(store, hearth_backup::BackupType::Vm, vmid, *time)?;
                writer.add_blob(crate::chunks::VM_CONFIG, config.as_bytes()).map_err(|e| e.to_string())?;
                for (key, path) in disks {
                    // No dirty bitmap: unchanged chunks are deduplicated by digest.
                    writer.add_image_with(key, path, None, &hook).map_err(|e| format!("{key}: {e}"))?;
                }
                Self::chunk_finish(store, writer, notes.as_deref(), *protected)
            }
        }
    }

    fn ct(
        &self,
        vmid: Vmid,
        config: &str,
        root: &Path,
        mounts: &[(String, PathBuf)],
        meter: &Meter,
    ) -> Result<Written, String> {
        let hook = |n| meter.read(n);
        let mounts: Vec<(&str, &Path)> = mounts.iter().map(|(m, p)| (m.as_str(), p.as_path())).collect();
        meter.set_total(tree_size(root) + mounts.iter().map(|(_, p)| tree_size(p)).sum::<u64>());
        match self {
            Sink::Dump { dir, options } => {
                let archive = vzdump::write_lxc_with(dir, vmid.get(), config, root, &mounts, options, &hook)
                    .map_err(|e| e.to_string())?;
                Ok(Self::dump_written(archive))
            }
            Sink::Stream { out, temp, options } => {
                let mut out: &std::fs::File = out;
                let name = Path::new("standard output");
                vzdump::stream_lxc_with(&mut out, name, temp, config, root, &mounts, options, &hook)
                    .map(Self::stream_written)
                    .map_err(|e| e.to_string())
            }
            Sink::Chunks { store, time, notes, protected, exclude } => {
                let mut writer = Self::chunk_writer(store, hearth_backup::BackupType::Ct, vmid, *time)?;
                writer.add_blob(crate::chunks::CT_CONFIG, config.as_bytes()).map_err(|e| e.to_string())?;
                let name = crate::chunks::CT_ROOT;
                hearth_backup::tree::add_tree_excluding(&mut writer, name, root, &mounts, exclude, &hook)
                    .map_err(|e| e.to_string())?;
                Self::chunk_finish(store, writer, notes.as_deref(), *protected)
            }
        }
    }
}

/// Removes what an interrupted backup of this guest left in the dump directory.
fn clean_leftovers(dump: &Path, guest_type: &str, vmid: Vmid, log: &dyn Fn(String)) {
    let prefix = format!("vzdump-{guest_type}-{vmid}-");
    let temp = format!(".tmp-vzdump-{guest_type}-{vmid}-");
    let Ok(entries) = std::fs::read_dir(dump) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let partial = name.starts_with(&prefix) && name.ends_with(".dat");
        let staging = name.starts_with(&temp) || (name.starts_with(&format!(".{prefix}")) && name.ends_with(".tmp"));
        if partial || staging {
            log(format!("removing {name}, left by an interrupted backup"));
            let path = entry.path();
            let _ = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        }
    }
}

/// Backs up one guest; answers the archive's volume id.
pub(crate) fn backup_guest(
    daemon: &Arc<Daemon>,
    kind: GuestKind,
    vmid: Vmid,
    target: &Target,
    options: &BackupOptions,
    log: &dyn Fn(String),
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<String, String> {
    let mode = check_options(options).map_err(|e| e.message)?;
    let storage = match target {
        Target::Storage(id) => id.as_str(),
        Target::Dir(_) | Target::Stream(_) => "",
    };
    let chunk_store = if !storage.is_empty() && crate::chunks::is_chunkstore(daemon, storage) {
        Some(crate::chunks::open(daemon, storage).map_err(|e| e.message)?)
    } else {
        None
    };
    let dump = match (&chunk_store, target) {
        (Some(_), _) | (None, Target::Stream(_)) => None,
        (None, Target::Dir(dir)) => Some(dir.clone()),
        (None, Target::Storage(_)) => Some(dump_dir(daemon, storage).map_err(|e| e.message)?),
    };
    let fleecing = match options.fleecing.as_deref().map(fleecing_storage).transpose()?.flatten() {
        Some(storage) => Some(fleecing_dir(daemon, &storage, vmid)?),
        None => None,
    };
    let guest_type = match kind {
        GuestKind::Vm => "qemu",
        GuestKind::Ct => "lxc",
    };
    let backup_type = match kind {
        GuestKind::Vm => hearth_backup::BackupType::Vm,
        GuestKind::Ct => hearth_backup::BackupType::Ct,
    };
    let mut restart = false;
    let mut chunk_store = chunk_store;
    let result = snapshots::with_lock(daemon, kind, vmid, Lock::Backup, || {
        let config = daemon.store.load(kind, vmid).map_err(|e| e.to_string())?.config;
        let time = backup_time(vmid);
        let notes = options.notes_template.as_deref().map(|t| notes(t, daemon, vmid, &config));
        let archive_options = ArchiveOptions {
            time,
            utc_offset: hearth_sys::time::utc_offset(time),
            notes: notes.clone(),
            protected: options.protected,
            zstd_threads: zstd_threads(options.zstd),
            exclude: options.exclude_path.clone(),
        };
        let sink = match (&dump, chunk_store.take(), target) {
            (None, None, Target::Stream(file)) => {
                let temp = daemon.root.join("var/lib/hearth/vzdump-tmp");
                std::fs::create_dir_all(&temp).map_err(|e| format!("{}: {e}", temp.display()))?;
                Sink::Stream { out: file, temp, options: archive_options }
            }
            (Some(dump), _, _) => {
                clean_leftovers(dump, guest_type, vmid, log);
                Sink::Dump { dir: dump.clone(), options: archive_options }
            }
            (None, Some(store), _) => {
                crate::chunks::clean_leftovers(&store, backup_type, vmid, log);
                clean_leftovers(store.store.root(), guest_type, vmid, log);
                let time = crate::chunks::next_time(&store.store, backup_type, &vmid.to_string(), time);
                Sink::Chunks { store, time, notes, protected: options.protected, exclude: options.exclude_path.clone() }
            }
            (None, None, _) => return Err("no backup target".to_owned()),
        };
        log(format!("starting backup of {} {vmid} ({:?} mode) to {}", kind.noun(), mode, target.describe()));
        // As vzdump's, exclude-path applies to containers only.
        if kind == GuestKind::Ct && !options.exclude_path.is_empty() {
            log(format!("excluding {}", options.exclude_path.join(" ")));
        }
        if let Some(limit) = options.bwlimit.filter(|&l| l > 0) {
            log(format!("bandwidth limit: {limit} KiB/s"));
        }
        let meter = Meter::new(progress, options.bwlimit);
        let stop_wait = options.stopwait.map_or(STOP_WAIT, |minutes| minutes * 60);
        let vm = VmBackup { mode, stop_wait, fleecing: fleecing.as_ref() };
        let written = match kind {
            GuestKind::Vm => backup_vm(daemon, vmid, &config, &vm, &sink, &mut restart, &meter, log),
            GuestKind::Ct => backup_ct(daemon, vmid, &config, mode, &sink, &mut restart, &meter, log),
        }
        .map_err(|e| name_full_storage(storage, e))?;
        meter.finish();
        log(written.summary.clone());
        Ok(written)
    });
    if restart {
        log(format!("starting {} {vmid} again", kind.noun()));
        if let Err(e) = lifecycle::start_now(daemon, kind, vmid, &StartOptions::default(), log) {
            log(format!("cannot start {} {vmid} again: {e}", kind.noun()));
        }
    }
    let written = result?;
    let volid = match target {
        Target::Storage(_) if dump.is_some() => format!("{storage}:backup/{}", written.volid),
        Target::Storage(_) => written.volid,
        Target::Dir(dir) => dir.join(&written.volid).display().to_string(),
        Target::Stream(_) => "-".to_owned(),
    };
    // vzdump's `remove` (default 1) prunes by `--prune-backups`, else by the storage's
    // `prune-backups`; `remove 0` never prunes.
    let storage_keep = match target {
        Target::Storage(_) if options.prune_backups.is_none() => daemon
            .storages
            .config(storage)
            .ok()
            .and_then(|c| c.section.get("prune-backups").and_then(Value::as_str).map(str::to_owned)),
        _ => None,
    };
    match (options.prune_backups.as_ref().or(storage_keep.as_ref()), options.remove, target) {
        (Some(_), Some(false), _) => log("not pruning: remove is 0".into()),
        (Some(keep), _, Target::Storage(_)) => {
            let pruned = prune(daemon, storage, Some(vmid), Some(guest_type), keep, false).map_err(|e| e.message)?;
            for entry in pruned.iter().filter(|p| p.mark == "remove") {
                log(format!("pruned {}", entry.volid));
            }
        }
        (Some(_), _, _) => log("not pruning: the backup is not on a storage".into()),
        (None, _, _) => {}
    }
    Ok(volid)
}

/// zstd worker threads for vzdump's `zstd` option: 0 is half the cores, as vzdump's.
fn zstd_threads(zstd: Option<u32>) -> u32 {
    match zstd {
        None | Some(1) => 0,
        Some(0) => std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1) as u32),
        Some(n) => n,
    }
}

/// The directory on the fleecing storage that takes a VM's copy-before-write images.
fn fleecing_dir(daemon: &Daemon, storage: &str, vmid: Vmid) -> Result<PathBuf, String> {
    let backend = daemon.storages.backend(storage).map_err(|e| format!("fleecing: {}", e.message))?;
    if backend.config().storage_type == StorageType::Chunkstore {
        return Err(format!("fleecing: storage '{storage}' holds no images"));
    }
    backend.activate().map_err(|e| format!("fleecing: {e}"))?;
    Ok(hearth_storage::content_path(backend.config(), Content::Images, &vmid.to_string()))
}

/// How a VM is backed up: its mode, how long stop mode waits for the shutdown, and where the
/// copy-before-write images go in snapshot mode (`--fleecing`; else beside the archive).
struct VmBackup<'a> {
    mode: Mode,
    stop_wait: u64,
    fleecing: Option<&'a PathBuf>,
}

/// A VM's disks: (key, volume id, path, format, size).
type VmDisk = (String, String, PathBuf, Format, u64);

fn vm_disks(daemon: &Daemon, config: &GuestConfig) -> Result<Vec<VmDisk>, String> {
    let mut found = Vec::new();
    for (key, volid) in snapshots::disks(GuestKind::Vm, &config.current) {
        let (backend, vol) = daemon.storages.volume(&volid).map_err(|e| format!("{key}: {}", e.message))?;
        let (format, size) = backend.image_info(&vol).map_err(|e| format!("{key}: {e}"))?;
        let path = backend.path(&vol).map_err(|e| format!("{key}: {e}"))?;
        found.push((key, volid, path, format, size));
    }
    Ok(found)
}

/// A raw view of an image for reading: the file itself when raw, else a raw copy in `temp`.
fn raw_view(disk: &VmDisk, temp: &Path) -> Result<PathBuf, String> {
    let (key, _, path, format, _) = disk;
    if *format == Format::Raw {
        return Ok(path.clone());
    }
    let out = temp.join(format!("{key}.raw"));
    // -U: a suspended QEMU still holds the image's lock; its data is flushed and stable.
    let status = Command::new("qemu-img")
        .args(["convert", "-U", "-f", format.as_str(), "-O", "raw"])
        .arg(path)
        .arg(&out)
        .output()
        .map_err(|e| format!("cannot run qemu-img (install qemu-utils): {e}"))?;
    if !status.status.success() {
        return Err(format!("{key}: qemu-img convert: {}", String::from_utf8_lossy(&status.stderr).trim()));
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn backup_vm(
    daemon: &Daemon,
    vmid: Vmid,
    config: &GuestConfig,
    how: &VmBackup<'_>,
    sink: &Sink,
    restart: &mut bool,
    meter: &Meter,
    log: &dyn Fn(String),
) -> Result<Written, String> {
    let disks = vm_disks(daemon, config)?;
    meter.set_total(disks.iter().map(|d| d.4).sum());
    let mode = how.mode;
    let running = daemon.guest_running(GuestKind::Vm, vmid);
    let temp_root = match how.fleecing {
        Some(dir) if mode == Mode::Snapshot && running => {
            log(format!(
                "fleecing: the copy-before-write images go to {} (Hearth copies each disk whole \
                 there before archiving it)",
                dir.display()
            ));
            dir.clone()
        }
        Some(_) => {
            log("fleecing: only used for a running VM in snapshot mode; not needed here".into());
            sink.temp_root()
        }
        None => sink.temp_root(),
    };
    let temp = temp_root.join(format!(".tmp-vzdump-qemu-{vmid}-{}", std::process::id()));
    std::fs::create_dir_all(&temp).map_err(|e| format!("{}: {e}", temp.display()))?;
    let text = config_text(config);
    let result = (|| {
        let write = |sources: Vec<(String, PathBuf)>| sink.vm(vmid, &text, &sources, meter);
        let offline = |disks: &[VmDisk]| -> Result<Vec<(String, PathBuf)>, String> {
            disks.iter().map(|d| Ok((d.0.clone(), raw_view(d, &temp)?))).collect()
        };
        match (mode, running) {
            (_, false) => write(offline(&disks)?),
            (Mode::Stop, true) => {
                log(format!("shutting down VM {vmid} (waiting up to {} s)", how.stop_wait));
                let lock = daemon.run_lock(GuestKind::Vm, vmid);
                let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
                let wait = Duration::from_secs(how.stop_wait);
                lifecycle::shutdown_locked(daemon, GuestKind::Vm, vmid, wait, false, log)?;
                *restart = true;
                write(offline(&disks)?)
            }
            (Mode::Suspend, true) => {
                let mut qmp = daemon.qemu.qmp(vmid).map_err(|e| e.message)?;
                let was_running = qmp.query_status().map_err(|e| e.to_string())?.running;
                if was_running {
                    qmp.stop().map_err(|e| e.to_string())?;
                    log(format!("suspended VM {vmid}"));
                }
                // QEMU serves one monitor client at a time: let go before reconnecting below.
                drop(qmp);
                let result = offline(&disks).and_then(&write);
                if was_running {
                    // Reconnect: the archive may have taken longer than the monitor's timeout.
                    match daemon
                        .qemu
                        .qmp(vmid)
                        .map_err(|e| e.message)
                        .and_then(|mut q| q.cont().map_err(|e| e.to_string()))
                    {
                        Ok(()) => log(format!("resumed VM {vmid}")),
                        Err(e) => log(format!("cannot resume VM {vmid}: {e}")),
                    }
                }
                result
            }
            (Mode::Snapshot, true) => {
                let sources = copy_before_write(daemon, vmid, &disks, &temp, log)?;
                write(sources)
            }
        }
    })();
    let _ = std::fs::remove_dir_all(&temp);
    result
}

/// Copies every disk of the running VM as it is now into raw images under `temp`, while the
/// guest runs on: one QMP transaction starts a `blockdev-backup` (sync=full) job per disk, so
/// all disks are copied as of the same instant; QEMU copies a block to the target before the
/// guest overwrites it.
fn copy_before_write(
    daemon: &Daemon,
    vmid: Vmid,
    disks: &[VmDisk],
    temp: &Path,
    log: &dyn Fn(String),
) -> Result<Vec<(String, PathBuf)>, String> {
    let mut qmp = daemon.qemu.qmp(vmid).map_err(|e| e.message)?;
    qmp.set_timeout(Duration::from_secs(3600)).map_err(|e| e.to_string())?;
    let mut added = Vec::new();
    let result = (|| {
        let mut actions = Vec::new();
        let mut sources = Vec::new();
        for (key, _, _, _, size) in disks {
            let target = temp.join(format!("{key}.raw"));
            let file = std::fs::File::create(&target).map_err(|e| format!("{}: {e}", target.display()))?;
            file.set_len(*size).map_err(|e| format!("{}: {e}", target.display()))?;
            let node = format!("vzdump-{key}");
            qmp.execute(
                "blockdev-add",
                Some(json!({"driver": "raw", "node-name": node,
                    "file": {"driver": "file", "filename": target.display().to_string()}})),
            )
            .map_err(|e| format!("{key}: adding the backup target: {e}"))?;
            added.push(node.clone());
            actions.push(json!({"type": "blockdev-backup", "data": {
                "job-id": node, "device": format!("drive-{key}"), "target": node, "sync": "full"}}));
            sources.push((key.clone(), target));
        }
        qmp.take_events();
        qmp.execute("transaction", Some(json!({ "actions": actions })))
            .map_err(|e| format!("starting the backup jobs: {e}"))?;
        log(format!("copy-before-write backup of {} disks started", disks.len()));
        let mut pending: Vec<String> = added.clone();
        let deadline = Instant::now() + Duration::from_secs(24 * 3600);
        while !pending.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = qmp.wait_event("BLOCK_JOB_COMPLETED", left).map_err(|e| e.to_string())?;
            let device = event.data.get("device").and_then(|d| d.as_str()).unwrap_or_default().to_owned();
            if let Some(error) = event.data.get("error").and_then(|e| e.as_str()) {
                return Err(format!("backup job {device}: {error}"));
            }
            pending.retain(|p| *p != device);
        }
        log("point-in-time copies complete".into());
        Ok(sources)
    })();
    for node in added.iter().rev() {
        // A job that failed part way is cancelled before its target goes.
        let _ = qmp.execute("block-job-cancel", Some(json!({"device": node, "force": true})));
        let _ = qmp.execute("blockdev-del", Some(json!({"node-name": node})));
    }
    result
}

/// Counts what a backup reads: reports byte progress to the task (at most every percent) and
/// throttles reading to `bwlimit` KiB/s with a token bucket.
pub(crate) struct Meter<'a> {
    progress: &'a (dyn Fn(u64, u64) + Sync),
    state: std::sync::Mutex<MeterState>,
}

struct MeterState {
    done: u64,
    total: u64,
    reported: u64,
    bucket: Option<hearth_backup::meter::TokenBucket>,
}

impl<'a> Meter<'a> {
    pub(crate) fn new(progress: &'a (dyn Fn(u64, u64) + Sync), bwlimit: Option<u64>) -> Meter<'a> {
        let bucket = bwlimit.filter(|&l| l > 0).map(hearth_backup::meter::TokenBucket::kib_per_sec);
        Meter { progress, state: std::sync::Mutex::new(MeterState { done: 0, total: 0, reported: 0, bucket }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MeterState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the backup is expected to read in all.
    pub(crate) fn set_total(&self, total: u64) {
        let mut state = self.lock();
        state.total = total;
        (self.progress)(state.done.min(total), total);
    }

    /// `n` more bytes read; sleeps as long as the bandwidth limit asks.
    pub(crate) fn read(&self, n: u64) {
        let wait = {
            let mut state = self.lock();
            state.done += n;
            let total = state.total.max(state.done);
            let step = (total / 100).max(1);
            if state.done - state.reported >= step {
                state.reported = state.done;
                // A tree's total is an estimate: never report more done than expected until the end.
                (self.progress)(state.done.min(state.total).min(total), total);
            }
            state.bucket.as_mut().map(|b| b.take(n, Instant::now())).unwrap_or_default()
        };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }

    /// Everything read: done is the total.
    pub(crate) fn finish(&self) {
        // A tree's total was an estimate; what was read is the truth.
        let state = self.lock();
        let total = if state.done > 0 { state.done } else { state.total };
        (self.progress)(total, total);
    }
}

/// About how many bytes tar makes of a tree: file contents in 512-byte blocks plus a header
/// and an extended header per entry; stays on one file system as tar does.
fn tree_size(root: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(top) = std::fs::symlink_metadata(root) else { return 0 };
    let mut total = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            total += 1536;
            if meta.is_file() {
                total += meta.len().div_ceil(512) * 512;
            } else if meta.is_dir() && meta.dev() == top.dev() {
                stack.push(entry.path());
            }
        }
    }
    total
}

/// Whether a property says yes.
fn yes(value: Option<&str>) -> bool {
    matches!(value, Some("1" | "true" | "yes" | "on"))
}

/// A container's mount points in backups, as vzdump: `(key, path inside, volume)` of every
/// `mpN` with `backup=1`; the others are named in the log and left out.
fn backed_up_mounts(config: &GuestConfig, log: &dyn Fn(String)) -> Result<Vec<(String, String, String)>, String> {
    let mut mounts = Vec::new();
    for (key, value) in &config.current {
        let Some(n) = key.strip_prefix("mp") else { continue };
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let props = GuestKind::Ct.schema().property(key, value).ok_or(format!("{key}: cannot be parsed"))?;
        let (Some(volume), Some(path)) = (props.get("volume"), props.get("mp")) else {
            return Err(format!("{key}: no volume or mount path"));
        };
        if yes(props.get("backup")) {
            mounts.push((key.clone(), path.to_owned(), volume.to_owned()));
        } else {
            log(format!("excluding {key} ({path}) from the backup: backup=1 is not set"));
        }
    }
    Ok(mounts)
}

/// Runs `f` on a directory holding the volume's files: the directory itself, or the image
/// mounted at `staging` meanwhile.
fn with_volume_dir<T>(
    daemon: &Daemon,
    vmid: Vmid,
    key: &str,
    volume: &str,
    staging: &Path,
    f: impl FnOnce(&Path) -> Result<T, String>,
) -> Result<T, String> {
    let source = containers::volume_source(daemon, vmid, key, volume).map_err(|e| e.message)?;
    match &source {
        hearth_ct::spec::RootFs::Dir { path } => f(path),
        hearth_ct::spec::RootFs::Image { .. } => {
            containers::mount_volume(&source, staging).map_err(|e| e.message)?;
            let result = f(staging);
            let _ = Command::new("umount").arg(staging).status();
            let _ = std::fs::remove_dir(staging);
            result
        }
    }
}

/// The btrfs subvolumes `(key, path inside, subvolume)` of every volume, when all are
/// subvolumes on btrfs (a btrfs storage's `subvol` volumes); else none.
fn btrfs_subvolumes(
    daemon: &Daemon,
    vmid: Vmid,
    volumes: &[(String, String, String)],
) -> Option<Vec<(String, String, PathBuf)>> {
    volumes
        .iter()
        .map(|(key, path, volume)| match containers::volume_source(daemon, vmid, key, volume).ok()? {
            hearth_ct::spec::RootFs::Dir { path: dir } => {
                hearth_sys::btrfs::is_subvolume(&dir).unwrap_or(false).then(|| (key.clone(), path.clone(), dir))
            }
            hearth_ct::spec::RootFs::Image { .. } => None,
        })
        .collect()
}

/// Snapshot mode on btrfs: a read-only snapshot `<subvolume>@vzdump` of every volume, taken
/// one after the other while the container runs on (never frozen), archived, and deleted.
fn backup_ct_from_snapshots(
    vmid: Vmid,
    text: &str,
    subvolumes: &[(String, String, PathBuf)],
    sink: &Sink,
    meter: &Meter,
    log: &dyn Fn(String),
) -> Result<Written, String> {
    let mut taken: Vec<(String, PathBuf)> = Vec::new();
    let result = (|| {
        for (key, path, subvolume) in subvolumes {
            let mut name = subvolume.file_name().unwrap_or_default().to_os_string();
            name.push("@vzdump");
            let snap = subvolume.with_file_name(name);
            if snap.exists() {
                log(format!("removing {}, left by an interrupted backup", snap.display()));
                hearth_sys::btrfs::delete_subvolume(&snap).map_err(|e| format!("{}: {e}", snap.display()))?;
            }
            hearth_sys::btrfs::snapshot(subvolume, &snap, true)
                .map_err(|e| format!("{key}: snapshotting {}: {e}", subvolume.display()))?;
            log(format!("{key}: read-only btrfs snapshot {}", snap.display()));
            taken.push((path.clone(), snap));
        }
        let (root, rest) = taken.split_first().expect("the rootfs comes first");
        sink.ct(vmid, text, &root.1, rest, meter)
    })();
    for (_, snap) in taken.iter().rev() {
        match hearth_sys::btrfs::delete_subvolume(snap) {
            Ok(()) => log(format!("removed snapshot {}", snap.display())),
            Err(e) => log(format!("cannot remove snapshot {}: {e}", snap.display())),
        }
    }
    result
}

/// Writes a container's archive from its volumes' directories `(path inside, directory)`,
/// the rootfs first.
type WriteTrees<'a> = dyn FnMut(&[(String, PathBuf)]) -> Result<Written, String> + 'a;

#[allow(clippy::too_many_arguments)]
fn backup_ct(
    daemon: &Daemon,
    vmid: Vmid,
    config: &GuestConfig,
    mode: Mode,
    sink: &Sink,
    restart: &mut bool,
    meter: &Meter,
    log: &dyn Fn(String),
) -> Result<Written, String> {
    let text = config_text(config);
    let rootfs = match config.current.get("rootfs") {
        Some(value) => GuestKind::Ct
            .schema()
            .property("rootfs", value)
            .and_then(|p| p.get("volume").map(str::to_owned))
            .ok_or("rootfs: cannot be parsed")?,
        None => return Err(format!("CT {vmid} has no rootfs")),
    };
    let mounts = backed_up_mounts(config, log)?;
    for (key, path, volume) in &mounts {
        log(format!("including {key} ({volume}) at {path}"));
    }
    let running = daemon.guest_running(GuestKind::Ct, vmid);
    if running && mode == Mode::Snapshot {
        let mut volumes = vec![("rootfs".to_owned(), "/".to_owned(), rootfs.clone())];
        volumes.extend(mounts.iter().cloned());
        if let Some(subvolumes) = btrfs_subvolumes(daemon, vmid, &volumes) {
            return backup_ct_from_snapshots(vmid, &text, &subvolumes, sink, meter, log);
        }
    }
    let mode = if running && mode == Mode::Snapshot {
        log(format!(
            "snapshot mode: no storage snapshot for the root file system ({rootfs}); suspending the container instead"
        ));
        Mode::Suspend
    } else {
        mode
    };
    let offline = |log: &dyn Fn(String)| -> Result<Written, String> {
        // Each volume is a directory, or an image mounted for the time of the backup.
        fn nest(
            daemon: &Daemon,
            vmid: Vmid,
            volumes: &[(String, String, String)],
            dirs: &mut Vec<(String, PathBuf)>,
            f: &mut WriteTrees,
        ) -> Result<Written, String> {
            let Some(((key, path, volume), rest)) = volumes.split_first() else { return f(dirs) };
            let staging = daemon.ct.run_dir().join(format!("{vmid}.backup-{key}"));
            with_volume_dir(daemon, vmid, key, volume, &staging, |dir| {
                dirs.push((path.clone(), dir.to_path_buf()));
                let result = nest(daemon, vmid, rest, dirs, f);
                dirs.pop();
                result
            })
        }
        let mut volumes = vec![("rootfs".to_owned(), "/".to_owned(), rootfs.clone())];
        volumes.extend(mounts.iter().cloned());
        let mut write = |dirs: &[(String, PathBuf)]| {
            let (root, rest) = dirs.split_first().expect("the rootfs comes first");
            log(format!("archiving {}", root.1.display()));
            sink.ct(vmid, &text, &root.1, rest, meter)
        };
        nest(daemon, vmid, &volumes, &mut Vec::new(), &mut write)
    };
    match (mode, running) {
        (_, false) => offline(log),
        (Mode::Stop, true) => {
            log(format!("shutting down CT {vmid}"));
            {
                let lock = daemon.run_lock(GuestKind::Ct, vmid);
                let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
                lifecycle::shutdown_locked(daemon, GuestKind::Ct, vmid, Duration::from_secs(STOP_WAIT), true, log)?;
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while daemon.guest_running(GuestKind::Ct, vmid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            *restart = true;
            offline(log)
        }
        (_, true) => {
            let monitor = daemon.ct.monitor_pid(vmid).ok_or(format!("CT {vmid} stopped during the backup"))?;
            let mounted = hearth_ct::monitor::rootfs_mount(&daemon.ct.ct_dir(vmid));
            let through =
                PathBuf::from(format!("/proc/{monitor}/root")).join(mounted.strip_prefix("/").unwrap_or(&mounted));
            // Mount points are mounted inside the rootfs in the container's namespace.
            let inside: Vec<(String, PathBuf)> =
                mounts.iter().map(|(_, path, _)| (path.clone(), through.join(path.trim_start_matches('/')))).collect();
            let layout = hearth_ct::cgroup::Layout::detect().map_err(|e| format!("reading cgroup mounts: {e}"))?;
            let cgroups = hearth_ct::cgroup::Cgroups::new(layout, &daemon.ct.cgroup(vmid));
            cgroups.freeze(true).map_err(|e| format!("freezing CT {vmid}: {e}"))?;
            log(format!("froze CT {vmid}"));
            let result = sink.ct(vmid, &text, &through, &inside, meter);
            match cgroups.freeze(false) {
                Ok(()) => log(format!("thawed CT {vmid}")),
                Err(e) => log(format!("cannot thaw CT {vmid}: {e}")),
            }
            result
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Listing, protection, pruning

/// Backup archives on the storages the caller may audit (or the one named).
pub fn list(
    daemon: &Daemon,
    caller: &Caller,
    storage: Option<&str>,
    vmid: Option<Vmid>,
) -> Result<Payload, ErrorReply> {
    let (table, _) = daemon.storages.load()?;
    let mut entries = Vec::new();
    for config in table.all() {
        if storage.is_some_and(|s| s != config.id) || config.disable || !config.has_content(Content::Backup) {
            continue;
        }
        if storage.is_none()
            && authorize_also(&daemon.access, caller, format!("/storage/{}", config.id), Privilege::DatastoreAudit)
                .is_err()
        {
            continue;
        }
        entries.extend(backups_on(daemon, &config.id, vmid)?);
    }
    Ok(Payload::Backups(entries))
}

fn backups_on(daemon: &Daemon, storage: &str, vmid: Option<Vmid>) -> Result<Vec<BackupEntry>, ErrorReply> {
    if crate::chunks::is_chunkstore(daemon, storage) {
        return crate::chunks::backups_on(daemon, storage, vmid);
    }
    let backend = daemon.storages.backend(storage)?;
    if backend.activate().is_err() {
        return Ok(Vec::new());
    }
    let dump = hearth_storage::content_path(backend.config(), Content::Backup, "");
    let volumes = backend.list(Some(Content::Backup), vmid).map_err(to_reply)?;
    let mut entries = Vec::new();
    for v in volumes {
        // The backend lists archives only (`hearth_core::storage::is_backup_archive`), never
        // the side files beside them.
        let VolName::File { file, .. } = &v.volname else { continue };
        let guest_type = hearth_core::storage::parse_backup_name(file).map(|b| b.guest_type).unwrap_or_default();
        let notes = std::fs::read_to_string(dump.join(format!("{file}.notes"))).ok();
        entries.push(BackupEntry {
            volid: v.volid.to_string(),
            vmid: v.vmid,
            guest_type,
            format: v.format,
            size: v.size,
            ctime: v.ctime,
            protected: dump.join(format!("{file}.protected")).exists(),
            notes,
            damaged: None,
        });
    }
    Ok(entries)
}

/// The archive file of a backup volume id, checked to be a backup.
fn archive_path(daemon: &Daemon, volid: &str) -> Result<(String, String, PathBuf), ErrorReply> {
    let (backend, vol) = daemon.storages.volume(volid)?;
    let VolName::File { content: Content::Backup, file } = &vol else {
        return Err(err(ErrorKind::Invalid, format!("'{volid}' is not a backup volume (storage:backup/vzdump-…)")));
    };
    let path = backend.path(&vol).map_err(to_reply)?;
    if !path.is_file() {
        return Err(err(ErrorKind::NotFound, format!("backup '{volid}' does not exist")));
    }
    Ok((backend.config().id.clone(), file.clone(), path))
}

pub fn protect(daemon: &Daemon, volid: &str, protected: bool) -> Result<Payload, ErrorReply> {
    if crate::chunks::parse_volid(daemon, volid).is_some() {
        return crate::chunks::protect(daemon, volid, protected);
    }
    let (_, _, path) = archive_path(daemon, volid)?;
    let mut sentinel = path.into_os_string();
    sentinel.push(".protected");
    let sentinel = PathBuf::from(sentinel);
    let result = if protected {
        std::fs::write(&sentinel, b"")
    } else {
        match std::fs::remove_file(&sentinel) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    };
    result.map_err(|e| err(ErrorKind::Internal, format!("{}: {e}", sentinel.display())))?;
    Ok(Payload::Empty)
}

pub fn prune_request(daemon: &Daemon, req: hearth_proto::PruneBackups) -> Result<Payload, ErrorReply> {
    let keep = if req.keep.is_empty() {
        let config = daemon.storages.config(&req.storage)?;
        match config.section.get("prune-backups") {
            Some(Value::Str(s)) => s.clone(),
            _ => "keep-all=1".to_owned(),
        }
    } else {
        req.keep.clone()
    };
    if let Some(t) = req.guest_type.as_deref().filter(|t| !matches!(*t, "qemu" | "lxc")) {
        return Err(err(ErrorKind::Invalid, format!("type: '{t}' is not qemu or lxc")));
    }
    prune(daemon, &req.storage, req.vmid, req.guest_type.as_deref(), &keep, req.dry_run).map(Payload::Pruned)
}

/// Marks the backups on `storage` by `keep` (hearth_core::prune) and removes those marked
/// `remove` unless `dry_run`. Protected backups are never removed.
pub(crate) fn prune(
    daemon: &Daemon,
    storage: &str,
    vmid: Option<Vmid>,
    guest_type: Option<&str>,
    keep: &str,
    dry_run: bool,
) -> Result<Vec<hearth_proto::PruneEntry>, ErrorReply> {
    let keep = hearth_core::prune::KeepOptions::parse(keep).map_err(|e| err(ErrorKind::Invalid, e.to_string()))?;
    if crate::chunks::is_chunkstore(daemon, storage) {
        return crate::chunks::prune(daemon, storage, vmid, guest_type, &keep, dry_run);
    }
    let entries = backups_on(daemon, storage, vmid)?;
    let mut backups = Vec::new();
    for e in entries.iter().filter(|e| guest_type.is_none_or(|t| t == e.guest_type)) {
        let file = e.volid.split_once(":backup/").map(|(_, f)| f).unwrap_or(&e.volid);
        let guest = format!("{}/{}", e.guest_type, e.vmid.map(|v| v.to_string()).unwrap_or_default());
        let mut b = hearth_core::prune::Backup::from_file_name(file, &guest, e.ctime, e.protected, |t| {
            hearth_sys::time::utc_offset(t)
        });
        b.id = e.volid.clone();
        backups.push(b);
    }
    let groups = hearth_core::prune::mark(&backups, &keep, hearth_sys::time::utc_offset);
    let mut out = Vec::new();
    for group in groups {
        for b in group.backups {
            if b.mark == hearth_core::prune::Mark::Remove && !dry_run {
                let (backend, vol) = daemon.storages.volume(&b.id)?;
                daemon.storages.locked(storage, || backend.free(&vol)).map_err(to_reply)?;
                if let Ok(path) = backend.path(&vol) {
                    let base = path.to_string_lossy().into_owned();
                    let _ = std::fs::remove_file(format!("{base}.notes"));
                    if let Some(stem) = base.strip_suffix(".vma.zst").or_else(|| base.strip_suffix(".tar.zst")) {
                        let _ = std::fs::remove_file(format!("{stem}.log"));
                    }
                }
            }
            out.push(hearth_proto::PruneEntry {
                volid: b.id,
                guest: group.guest.clone(),
                ctime: b.time,
                mark: b.mark.as_str().to_owned(),
            });
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Restore

/// `vmctl restore`, `ctctl restore`.
pub fn restore(
    daemon: &Arc<Daemon>,
    caller: &Caller,
    kind: GuestKind,
    req: RestoreGuest,
    stream: Option<std::fs::File>,
) -> Result<Payload, ErrorReply> {
    // `-`: the archive arrives on the request's file; it is spooled first, because a restore
    // reads the configuration (to authorize it) before the data.
    let stream = match stream {
        Some(file) => Some(Spool::fill(daemon, req.vmid, file)?),
        None => None,
    };
    let expected = match kind {
        GuestKind::Vm => "qemu",
        GuestKind::Ct => "lxc",
    };
    // The table checked the archive (Datastore.AllocateSpace on its storage and VM.Backup on its
    // guest, or Datastore.Allocate) and --storage.
    let source = if crate::chunks::parse_volid(daemon, &req.archive).is_some() {
        let (store, snap) = crate::chunks::open_volid(daemon, &req.archive)?;
        if crate::chunks::guest_type(snap.backup_type) != expected {
            return Err(err(ErrorKind::Invalid, format!("'{}' is not a {} backup", req.archive, kind.noun())));
        }
        Source::Chunks(store, snap)
    } else {
        let (file, path) = match &stream {
            Some(spooled) => (String::new(), spooled.path.clone()),
            // A host path (root@pam's: a storage's file arrives as its volume id).
            None if req.archive.starts_with('/') => {
                let path = PathBuf::from(&req.archive);
                if !path.is_file() {
                    return Err(err(ErrorKind::NotFound, format!("archive '{}' does not exist", req.archive)));
                }
                let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                (file, path)
            }
            None => {
                let (_, file, path) = archive_path(daemon, &req.archive)?;
                (file, path)
            }
        };
        let name = hearth_core::storage::parse_backup_name(&file);
        if name.as_ref().is_some_and(|n| n.guest_type != expected) {
            return Err(err(ErrorKind::Invalid, format!("'{}' is not a {} backup", req.archive, kind.noun())));
        }
        Source::Archive(path)
    };
    if let Some(rootfs) = &req.rootfs {
        if kind != GuestKind::Ct {
            return Err(err(ErrorKind::Invalid, "rootfs: only containers have one"));
        }
        rootfs_override(rootfs).map_err(|e| err(ErrorKind::Invalid, e))?;
    }
    if let Some(storage) = &req.storage {
        daemon.storages.config(storage)?;
    }
    // The configuration is read once, here, and checked before anything is written: what it
    // brings in is the caller's to set, as if each key were given to `set`.
    let restored = Restored::read(kind, &req, &source).map_err(|e| err(ErrorKind::Invalid, e))?;
    restored.authorize(daemon, caller, kind, &req)?;
    let vmid = req.vmid;
    let existing = daemon.store.locate(vmid);
    if let Some((_, other)) = existing {
        if other != kind {
            return Err(err(ErrorKind::Conflict, format!("{vmid} is a {}, not a {}", other.noun(), kind.noun())));
        }
        if !req.force {
            return Err(err(
                ErrorKind::Conflict,
                format!("{} {vmid} already exists; use --force to overwrite it", kind.noun()),
            ));
        }
        if daemon.guest_running(kind, vmid) {
            return Err(err(ErrorKind::Conflict, format!("{} {vmid} is running; stop it first", kind.noun())));
        }
        if let Some(lock) = daemon.store.load(kind, vmid)?.config.lock {
            return Err(err(ErrorKind::Locked, format!("{} {vmid} is locked ({lock})", kind.noun())));
        }
    }
    let worker = Arc::clone(daemon);
    let task = match kind {
        GuestKind::Vm => "qmrestore",
        GuestKind::Ct => "vzrestore",
    };
    let upid = daemon.tasks.spawn(task, &vmid.to_string(), &caller.userid, move |ctx| {
        let log = |line: String| ctx.log(line);
        if stream.is_some() {
            log("reading the archive from standard input".into());
        }
        let result =
            restore_task(&worker, kind, &req, &source, restored, existing.is_some(), &log, &|d, t| ctx.progress(d, t));
        drop(stream);
        result
    })?;
    Ok(Payload::Task(upid))
}

/// An archive streamed with the request (`-`), copied into a file that is removed when the
/// spool is dropped.
struct Spool {
    path: PathBuf,
}

impl Spool {
    fn fill(daemon: &Daemon, vmid: Vmid, mut input: std::fs::File) -> Result<Spool, ErrorReply> {
        let dir = daemon.root.join("var/lib/hearth/restore");
        std::fs::create_dir_all(&dir).map_err(|e| err(ErrorKind::Internal, format!("{}: {e}", dir.display())))?;
        // Unique per request: two streams to the same id never share a spool.
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let path = dir.join(format!("{vmid}-{}-{nanos}.spool", std::process::id()));
        let spool = Spool { path };
        let copied =
            std::os::unix::fs::OpenOptionsExt::mode(std::fs::OpenOptions::new().write(true).create_new(true), 0o600)
                .open(&spool.path)
                .and_then(|mut out| {
                    std::io::copy(&mut input, &mut out)?;
                    out.sync_all()
                });
        copied.map_err(|e| err(ErrorKind::Invalid, format!("reading the archive from standard input: {e}")))?;
        Ok(spool)
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A restore's `--rootfs`: `(storage, size in bytes)` from `storage:size` or a size in GiB.
fn rootfs_override(value: &str) -> Result<(Option<String>, u64), String> {
    let (storage, size) = match value.split_once(':') {
        Some((storage, size)) => {
            hearth_core::schema::check::storage_id(storage).map_err(|e| format!("rootfs: {e}"))?;
            (Some(storage.to_owned()), size)
        }
        None => (None, value),
    };
    let gib: f64 = size
        .parse()
        .ok()
        .filter(|g: &f64| *g >= 0.0 && g.is_finite())
        .ok_or_else(|| format!("rootfs: '{value}' is not STORAGE:SIZE or SIZE (in GiB)"))?;
    Ok((storage, (gib * (1u64 << 30) as f64) as u64))
}

/// What a restore reads: a vzdump archive, or a snapshot in a chunk store.
enum Source {
    Archive(PathBuf),
    Chunks(crate::chunks::Store, hearth_backup::SnapshotRef),
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::Archive(path) => path.display().to_string(),
            Source::Chunks(store, snap) => store.volid(snap),
        }
    }

    fn config_text(&self, name: &str) -> Result<String, String> {
        let Source::Chunks(store, snap) = self else { unreachable!("only chunk store backups hold blobs") };
        let bytes = hearth_backup::restore::read_blob(&store.store, snap, name, store.key.as_ref())
            .map_err(|e| format!("reading the configuration: {e}"))?;
        String::from_utf8(bytes).map_err(|_| "the backup's configuration is not UTF-8".into())
    }
}

/// The keys of a restore that get new volumes, with the volume each had in the backup.
type NewVolumes = Vec<(String, String)>;

/// The configuration a restore brings in, read from the archive before the task starts.
struct Restored {
    /// The current settings only, with `--unprivileged` applied; no pending changes, snapshots
    /// or lock travel.
    config: GuestConfig,
    /// Whether the container's files in the archive belong to an unprivileged container.
    was_unprivileged: bool,
    /// The disks a VM archive holds.
    disks: Vec<vzdump::VmaDisk>,
}

fn unprivileged(config: &GuestConfig) -> bool {
    !matches!(config.current.get("unprivileged"), Some(Value::Bool(false)))
}

impl Restored {
    fn read(kind: GuestKind, req: &RestoreGuest, source: &Source) -> Result<Restored, String> {
        let (text, disks) = match (kind, source) {
            (GuestKind::Vm, Source::Archive(archive)) => {
                let header = vzdump::read_vma_header(archive).map_err(|e| e.to_string())?;
                (header.config, header.disks)
            }
            (GuestKind::Vm, Source::Chunks(store, snap)) => {
                let manifest = hearth_backup::snapshot::load_manifest(&store.store, snap).map_err(|e| e.to_string())?;
                let mut disks = Vec::new();
                for f in &manifest.files {
                    if let Some(name) = f.filename.strip_suffix(".img.fidx") {
                        let index = hearth_backup::index::FixedIndex::load(&snap.path(&store.store).join(&f.filename))
                            .map_err(|e| e.to_string())?;
                        disks.push(vzdump::VmaDisk { name: name.to_owned(), size: index.size });
                    }
                }
                (source.config_text(crate::chunks::VM_CONFIG)?, disks)
            }
            (GuestKind::Ct, Source::Archive(archive)) => (vzdump_config_of_lxc(archive)?, Vec::new()),
            (GuestKind::Ct, Source::Chunks(..)) => (source.config_text(crate::chunks::CT_CONFIG)?, Vec::new()),
        };
        let parsed = GuestConfig::parse(kind, &text).map_err(|e| format!("the backup's configuration: {e}"))?;
        let mut config = GuestConfig::new(kind);
        config.current = parsed.current;
        let was_unprivileged = unprivileged(&config);
        if let (GuestKind::Ct, Some(u)) = (kind, req.unprivileged) {
            config.current.insert("unprivileged".into(), Value::Bool(u));
        }
        Ok(Restored { config, was_unprivileged, disks })
    }

    /// The keys that get new volumes, and those the restore drops (`unusedN`, container mount
    /// points without `backup=1`): neither names an existing volume afterwards.
    fn new_and_dropped(&self, kind: GuestKind) -> Result<(NewVolumes, Vec<String>), String> {
        let current = &self.config.current;
        let unused = current.keys().filter(|k| k.starts_with("unused")).cloned();
        match kind {
            GuestKind::Vm => Ok((snapshots::disks(GuestKind::Vm, current), unused.collect())),
            GuestKind::Ct => {
                let mounts = backed_up_mounts(&self.config, &|_| {})?;
                let dropped = current
                    .keys()
                    .filter(|k| k.starts_with("mp") && !mounts.iter().any(|m| &m.0 == *k))
                    .cloned()
                    .chain(unused)
                    .collect();
                let mut new: Vec<(String, String)> = mounts.into_iter().map(|(k, _, v)| (k, v)).collect();
                let rootfs = current.get("rootfs").ok_or("rootfs: not in the archive's configuration")?;
                let props = GuestKind::Ct.schema().property("rootfs", rootfs).ok_or("rootfs: cannot be parsed")?;
                new.push(("rootfs".into(), props.get("volume").unwrap_or_default().to_owned()));
                Ok((new, dropped))
            }
        }
    }

    /// Refuses the restore unless the caller may set every key it brings in (root-only keys,
    /// a privileged container, each key's privilege on the guest), may allocate on each storage
    /// a volume is restored to, and may use whatever else the configuration names (ISOs,
    /// bridges).
    fn authorize(
        &self,
        daemon: &Daemon,
        caller: &Caller,
        kind: GuestKind,
        req: &RestoreGuest,
    ) -> Result<(), ErrorReply> {
        let (new, dropped) = self.new_and_dropped(kind).map_err(|e| err(ErrorKind::Invalid, e))?;
        let values: Vec<(String, Value)> = self
            .config
            .current
            .iter()
            .filter(|(k, _)| !dropped.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // Root-only keys refuse the restore even where the restore would drop them: an archive
        // holding them is not the user's to bring in.
        let mut needs: Vec<Need> = self
            .config
            .current
            .iter()
            .flat_map(|(k, v)| crate::referenced::value_needs(kind, req.vmid, k, v))
            .filter(|n| matches!(n, Need::Root { .. }))
            .collect();
        let skip: Vec<String> = new.iter().map(|(k, _)| k.clone()).collect();
        needs.extend(crate::referenced::values_needs(kind, req.vmid, &values, &skip));
        let mut storages = Vec::new();
        for (key, volid) in &new {
            let given = match (key.as_str(), &req.rootfs) {
                ("rootfs", Some(value)) => rootfs_override(value).map_err(|e| err(ErrorKind::Invalid, e))?.0,
                _ => None,
            };
            let storage = match given {
                Some(storage) => storage,
                None => restore_storage(daemon, req, key, volid).map_err(|e| err(ErrorKind::Invalid, e))?,
            };
            needs.push(crate::access::on(format!("/storage/{storage}"), Privilege::DatastoreAllocateSpace));
            storages.push(storage);
        }
        let ids: Vec<&str> = storages.iter().map(String::as_str).collect();
        needs.extend(crate::storage::bandwidth_override_needs(daemon, "restore", &ids, req.bwlimit));
        crate::access::authorize(&daemon.access, caller, &needs)
            .map_err(|e| ErrorReply::new(e.kind, format!("{} (in the backup's configuration)", e.message)))?;
        let kept: Vec<(String, Value)> = values.into_iter().filter(|(k, _)| !skip.contains(k)).collect();
        crate::referenced::check_content(daemon, kind, &kept)
    }
}

#[allow(clippy::too_many_arguments)] // One restore's whole context; a struct would only rename it.
fn restore_task(
    daemon: &Daemon,
    kind: GuestKind,
    req: &RestoreGuest,
    archive: &Source,
    restored: Restored,
    overwrite: bool,
    log: &dyn Fn(String),
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<(), String> {
    let vmid = req.vmid;
    // The guest is locked `create` while it is rebuilt: nothing starts or changes it meanwhile.
    if overwrite {
        daemon
            .store
            .update(kind, vmid, None, |c| match c.lock {
                Some(l) => Err(err(ErrorKind::Locked, format!("{} {vmid} is locked ({l})", kind.noun()))),
                None => {
                    c.lock = Some(Lock::Create);
                    Ok(())
                }
            })
            .map_err(|e| e.message)?;
    } else {
        let mut placeholder = GuestConfig::new(kind);
        placeholder.lock = Some(Lock::Create);
        daemon.store.create(kind, vmid, &placeholder).map_err(|e| e.to_string())?;
    }
    let mut allocated: Vec<String> = Vec::new();
    let result = (|| {
        log(format!("restoring {} to {} {vmid}", archive.describe(), kind.noun()));
        let config = match kind {
            GuestKind::Vm => restore_vm(daemon, req, archive, restored, &mut allocated, log, progress)?,
            GuestKind::Ct => restore_ct(daemon, req, archive, restored, &mut allocated, log, progress)?,
        };
        // What the restored configuration names is never freed as the old guest's.
        let kept: Vec<String> = config.volume_refs().into_iter().map(|(_, _, v)| v).collect();
        let old = daemon
            .store
            .update(kind, vmid, None, |c| {
                let old = c.clone();
                *c = config;
                c.lock = None;
                Ok(old)
            })
            .map_err(|e| e.message)?
            .0;
        if overwrite {
            for (_, _, volid) in old.volume_refs() {
                if !allocated.contains(&volid) && !kept.contains(&volid) && owned_by(daemon, &volid, vmid) {
                    match crate::storage::free_volume(daemon, &volid) {
                        Ok(()) => log(format!("freed {volid} of the overwritten {}", kind.noun())),
                        Err(e) => log(format!("cannot free {volid}: {}", e.message)),
                    }
                }
            }
        }
        Ok(())
    })();
    if result.is_err() {
        for volid in &allocated {
            let _ = crate::storage::free_volume(daemon, volid);
        }
        if overwrite {
            let _ = daemon.store.update(kind, vmid, None, |c| {
                c.lock = None;
                Ok(())
            });
        } else {
            let _ = daemon.store.remove(kind, vmid, |_| Ok(()));
        }
    }
    result
}

fn owned_by(daemon: &Daemon, volid: &str, vmid: Vmid) -> bool {
    daemon
        .storages
        .volume(volid)
        .is_ok_and(|(_, vol)| matches!(vol, VolName::Image { image, .. } if image.vmid == vmid))
}

/// The storage a restored volume goes to: `--storage`, else the one it came from when this
/// node has it.
fn restore_storage(daemon: &Daemon, req: &RestoreGuest, key: &str, volid: &str) -> Result<String, String> {
    if let Some(s) = &req.storage {
        return Ok(s.clone());
    }
    let original = volid.split_once(':').map(|(s, _)| s).unwrap_or_default();
    daemon
        .storages
        .config(original)
        .map(|c| c.id)
        .map_err(|_| format!("{key}: storage '{original}' of the backup does not exist here; name one with --storage"))
}

/// Where a disk of the archive goes: (key, file extracted to, and for non-raw images the image
/// the extracted raw file is converted into).
type RestoreTarget = (String, PathBuf, Option<(PathBuf, Format)>);

fn restore_vm(
    daemon: &Daemon,
    req: &RestoreGuest,
    source: &Source,
    restored: Restored,
    allocated: &mut Vec<String>,
    log: &dyn Fn(String),
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<GuestConfig, String> {
    let vmid = req.vmid;
    let Restored { mut config, disks, .. } = restored;
    let total: u64 = disks.iter().map(|d| d.size).sum();
    let mut targets: Vec<RestoreTarget> = Vec::new();
    let mut storages: Vec<String> = Vec::new();
    let temp_dir = std::env::temp_dir();
    for (key, volid) in snapshots::disks(GuestKind::Vm, &config.current) {
        let disk = disks.iter().find(|d| d.name == key).ok_or(format!("{key}: not in the archive"))?;
        let storage = restore_storage(daemon, req, &key, &volid)?;
        storages.push(storage.clone());
        // The disk keeps its format where the target storage has formats (dir).
        let format = ["raw", "qcow2", "vmdk"]
            .into_iter()
            .find(|f| volid.ends_with(&format!(".{f}")))
            .map(str::to_owned)
            .or_else(|| Some("raw".to_owned()));
        let backend = daemon.storages.backend(&storage).map_err(|e| e.message)?;
        let format = format.filter(|_| backend.config().storage_type == StorageType::Dir);
        let allocation =
            crate::storage::Allocation { key: key.clone(), storage: storage.clone(), size: disk.size, format };
        let new = crate::storage::allocate_for_guest(daemon, GuestKind::Vm, vmid, &allocation, (0, 0))
            .map_err(|e| e.message)?;
        allocated.push(new.clone());
        let (backend, vol) = daemon.storages.volume(&new).map_err(|e| e.message)?;
        let (fmt, _) = backend.image_info(&vol).map_err(|e| e.to_string())?;
        let path = backend.path(&vol).map_err(|e| e.to_string())?;
        log(format!("{key}: {} bytes to {new}", disk.size));
        let value = config.current.get(&key).cloned().ok_or(format!("{key}: missing"))?;
        let replaced = snapshots::with_volume(GuestKind::Vm, &key, &value, &new, None)?;
        config.current.insert(key.clone(), replaced);
        if fmt == Format::Raw {
            targets.push((key, path, None));
        } else {
            let raw = temp_dir.join(format!("hearth-restore-{vmid}-{key}-{}.raw", std::process::id()));
            targets.push((key, raw, Some((path, fmt))));
        }
    }
    // The cloud-init drive is not in the archive (it holds only generated files): the restored
    // VM gets a new one, written at its next start.
    let drives: Vec<(String, String)> = config
        .current
        .iter()
        .filter_map(|(key, value)| {
            Some((key.clone(), GuestKind::Vm.schema().property(key, value)?.get("file")?.to_owned()))
        })
        .filter(|(_, file)| hearth_core::cloudinit::is_any_drive(file))
        .collect();
    // Over an existing VM its own drive is kept when it is on the same storage.
    let existing = daemon
        .store
        .load(GuestKind::Vm, vmid)
        .map(|l| hearth_core::cloudinit::drives(&l.config.current, vmid))
        .unwrap_or_default();
    for (key, volid) in drives {
        let storage = restore_storage(daemon, req, &key, &volid)?;
        let reused = existing.iter().map(|(_, v)| v).find(|v| v.split_once(':').is_some_and(|(s, _)| s == storage));
        let new = match reused {
            Some(volume) => volume.clone(),
            None => {
                let new = crate::cloudinit::allocate_drive(daemon, vmid, &storage, None)
                    .map_err(|e| format!("{key}: {}", e.message))?;
                allocated.push(new.clone());
                new
            }
        };
        log(format!("{key}: cloud-init drive {new}"));
        let value = config.current.get(&key).cloned().ok_or(format!("{key}: missing"))?;
        let value = crate::cloudinit::drive_value(&key, &value, &new).map_err(|e| e.message)?;
        config.current.insert(key, value);
    }
    for (key, value) in config.current.clone().iter() {
        if key.starts_with("unused") {
            log(format!("{key}: not in the archive; dropped ({value:?})"));
            config.current.remove(key);
        }
    }
    // Progress per byte written, as each extent or chunk lands.
    let meter = Meter::new(progress, restore_limit(daemon, req, &storages, log));
    meter.set_total(total);
    let hook = |n| meter.read(n);
    let extracted = match source {
        Source::Archive(archive) => vzdump::extract_vma_with(
            archive,
            |name| {
                targets
                    .iter()
                    .find(|t| t.0 == name)
                    .map(|t| t.1.clone())
                    .unwrap_or_else(|| temp_dir.join("hearth-unused"))
            },
            &hook,
        )
        .map(|_| ())
        .map_err(|e| e.to_string()),
        Source::Chunks(store, snap) => targets.iter().try_for_each(|(key, path, _)| {
            hearth_backup::restore::restore_image_with(&store.store, snap, key, store.key.as_ref(), path, &hook)
                .map(|_| ())
                .map_err(|e| format!("{key}: {e}"))
        }),
    };
    let mut result = extracted;
    for (key, raw, convert) in &targets {
        if let (Ok(()), Some((path, fmt))) = (&result, convert) {
            let out = Command::new("qemu-img")
                .args(["convert", "-n", "-f", "raw", "-O", fmt.as_str()])
                .arg(raw)
                .arg(path)
                .output()
                .map_err(|e| format!("cannot run qemu-img (install qemu-utils): {e}"));
            result = match out {
                Ok(o) if o.status.success() => Ok(()),
                Ok(o) => Err(format!("{key}: qemu-img convert: {}", String::from_utf8_lossy(&o.stderr).trim())),
                Err(e) => Err(e),
            };
        }
        if convert.is_some() {
            let _ = std::fs::remove_file(raw);
        }
    }
    result?;
    progress(total, total);
    log(format!("restored {} disks, {total} bytes", targets.len()));
    // As qmrestore: a restored VM is a new generation of its guest, so a set generation id is
    // replaced (the all-zero one, which turns the device off, is kept).
    if let Some(Value::Str(id)) = config.current.get("vmgenid")
        && id != hearth_core::vm::NO_VMGENID
    {
        let id = hearth_core::vm::uuid_v4(crate::guests::random_uuid_bytes());
        config.current.insert("vmgenid".into(), Value::Str(id));
    }
    Ok(config)
}

fn restore_ct(
    daemon: &Daemon,
    req: &RestoreGuest,
    source: &Source,
    restored: Restored,
    allocated: &mut Vec<String>,
    log: &dyn Fn(String),
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<GuestConfig, String> {
    let vmid = req.vmid;
    let Restored { mut config, was_unprivileged, .. } = restored;
    let now_unprivileged = unprivileged(&config);
    let value = config.current.get("rootfs").cloned().ok_or("rootfs: not in the archive's configuration")?;
    let props = GuestKind::Ct.schema().property("rootfs", &value).ok_or("rootfs: cannot be parsed")?;
    let volid = props.get("volume").unwrap_or_default().to_owned();
    let mut size = props.get("size").and_then(|s| hearth_core::size::parse_size(s, 1).ok()).unwrap_or(0);
    let mut storage = restore_storage(daemon, req, "rootfs", &volid)?;
    if let Some(value) = &req.rootfs {
        let (given, bytes) = rootfs_override(value)?;
        storage = given.unwrap_or(storage);
        size = bytes;
        log(format!("rootfs: a new volume of {bytes} bytes on '{storage}' (--rootfs {value})"));
    }
    let owner = if now_unprivileged { (100_000, 100_000) } else { (0, 0) };
    let mut storages = vec![storage.clone()];
    let allocation = crate::storage::Allocation { key: "rootfs".into(), storage, size, format: None };
    let new =
        crate::storage::allocate_for_guest(daemon, GuestKind::Ct, vmid, &allocation, owner).map_err(|e| e.message)?;
    allocated.push(new.clone());
    log(format!("rootfs: {new}"));
    let resized = req.rootfs.as_ref().map(|_| size);
    let replaced = snapshots::with_volume(GuestKind::Ct, "rootfs", &value, &new, resized)?;
    config.current.insert("rootfs".into(), replaced);
    // Mount points with backup=1 are in the archive under their path: each gets a new volume.
    let in_archive = backed_up_mounts(&config, &|_| {})?;
    let mut mounts = Vec::new();
    for (key, path, volid) in &in_archive {
        let value = config.current.get(key).cloned().ok_or(format!("{key}: missing"))?;
        let props = GuestKind::Ct.schema().property(key, &value).ok_or(format!("{key}: cannot be parsed"))?;
        let size = props.get("size").and_then(|s| hearth_core::size::parse_size(s, 1).ok()).unwrap_or(0);
        let storage = restore_storage(daemon, req, key, volid)?;
        storages.push(storage.clone());
        let allocation = crate::storage::Allocation { key: key.clone(), storage, size, format: None };
        let new = crate::storage::allocate_for_guest(daemon, GuestKind::Ct, vmid, &allocation, owner)
            .map_err(|e| e.message)?;
        allocated.push(new.clone());
        log(format!("{key}: {new} at {path}"));
        let replaced = snapshots::with_volume(GuestKind::Ct, key, &value, &new, None)?;
        config.current.insert(key.clone(), replaced);
        mounts.push((key.clone(), path.clone(), new));
    }
    for key in config
        .current
        .keys()
        .filter(|k| (k.starts_with("mp") && !mounts.iter().any(|m| &m.0 == *k)) || k.starts_with("unused"))
        .cloned()
        .collect::<Vec<_>>()
    {
        log(format!("{key}: not in the archive; dropped"));
        config.current.remove(&key);
    }
    let volume = containers::volume_source(daemon, vmid, "rootfs", &new).map_err(|e| e.message)?;
    let (target, mounted) = match &volume {
        hearth_ct::spec::RootFs::Dir { path } => (path.clone(), None),
        hearth_ct::spec::RootFs::Image { .. } => {
            let staging = daemon.ct.run_dir().join(format!("{vmid}.restore"));
            containers::mount_volume(&volume, &staging).map_err(|e| e.message)?;
            (staging.clone(), Some(staging))
        }
    };
    // Progress over the stream extracted: the archive file, or the tree stream in the store.
    let meter = Meter::new(progress, restore_limit(daemon, req, &storages, log));
    let hook = |n| meter.read(n);
    let extracted = match source {
        Source::Archive(archive) => {
            meter.set_total(std::fs::metadata(archive).map(|m| m.len()).unwrap_or(0));
            vzdump::extract_lxc_with(archive, &target, &hook).map(|_| ())
        }
        Source::Chunks(store, snap) => hearth_backup::tree::restore_tree_with(
            &store.store,
            snap,
            crate::chunks::CT_ROOT,
            store.key.as_ref(),
            &target,
            &mut |size| meter.set_total(size),
            &hook,
        ),
    };
    if extracted.is_ok() {
        meter.finish();
    }
    let result = extracted.map_err(|e| e.to_string()).and_then(|_| {
        if was_unprivileged != now_unprivileged {
            let delta: i64 = if now_unprivileged { 100_000 } else { -100_000 };
            log(format!(
                "shifting owners by {delta} for the {} container",
                if now_unprivileged { "unprivileged" } else { "privileged" }
            ));
            shift_owners(&target, delta)
        } else {
            Ok(())
        }
    });
    // The mount points' files move from under their path in the rootfs onto their volumes.
    let result = result.and_then(|()| {
        for (key, path, volume) in &mounts {
            let from = target.join(path.trim_start_matches('/'));
            if !from.is_dir() {
                continue;
            }
            let staging = daemon.ct.run_dir().join(format!("{vmid}.restore-{key}"));
            with_volume_dir(daemon, vmid, key, volume, &staging, |dir| move_contents(&from, dir))?;
            log(format!("restored {key} ({path})"));
        }
        Ok(())
    });
    if let Some(staging) = mounted {
        let _ = Command::new("umount").arg(&staging).status();
        let _ = std::fs::remove_dir(&staging);
    }
    result?;
    log("restored the root file system".into());
    Ok(config)
}

/// A restore's bandwidth limit: `--bwlimit`, else the target storages' `bwlimit restore=`.
fn restore_limit(daemon: &Daemon, req: &RestoreGuest, storages: &[String], log: &dyn Fn(String)) -> Option<u64> {
    let ids: Vec<&str> = storages.iter().map(String::as_str).collect();
    let limit = crate::storage::bandwidth_limit(daemon, "restore", &ids, req.bwlimit);
    if let Some(kib) = limit {
        log(format!("bandwidth limit: {kib} KiB/s"));
    }
    limit
}

/// Moves everything under `from` into `to` (keeping owners, modes, links, xattrs), leaving
/// `from` empty: it stays as the mount point.
fn move_contents(from: &Path, to: &Path) -> Result<(), String> {
    let out = Command::new("cp")
        .args(["-a", "--reflink=auto", "--"])
        .arg(from.join("."))
        .arg(to)
        .output()
        .map_err(|e| format!("running cp: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "copying {} to {}: {}",
            from.display(),
            to.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    for entry in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let removed = if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// The configuration inside a container archive, zstd-compressed or not (`zstd -f` passes an
/// uncompressed archive through).
fn vzdump_config_of_lxc(archive: &Path) -> Result<String, String> {
    let output = Command::new("sh")
        .arg("-c")
        .arg("zstd -dcf -- \"$1\" | tar -xOf - ./etc/vzdump/pct.conf")
        .arg("sh")
        .arg(archive)
        .output()
        .map_err(|e| format!("cannot run zstd and tar: {e}"))?;
    if output.stdout.is_empty() {
        return Err(format!(
            "{}: no ./etc/vzdump/pct.conf in the archive: {}",
            archive.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    String::from_utf8(output.stdout).map_err(|_| "the archive's configuration is not UTF-8".into())
}

/// Moves every file's owner and group by `delta` (privileged ↔ unprivileged), never following
/// symbolic links.
fn shift_owners(root: &Path, delta: i64) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let shift = |id: u32| -> u32 { (i64::from(id) + delta).clamp(0, i64::from(u32::MAX)) as u32 };
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        std::os::unix::fs::lchown(&path, Some(shift(meta.uid())), Some(shift(meta.gid())))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        // chown clears set-user-ID and set-group-ID bits; put the mode back.
        if !meta.file_type().is_symlink() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(|e| format!("{}: {e}", path.display()))? {
                stack.push(entry.map_err(|e| e.to_string())?.path());
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// extractconfig

/// `storectl extractconfig <volid>`: the guest configuration a backup holds, in Proxmox's
/// `key: value` form (the description as leading `#` lines), as `pvesm extractconfig` prints
/// it. The table checked the backup as `check_volume_access` does.
pub fn extract_config(daemon: &Daemon, volid: &str) -> Result<Payload, ErrorReply> {
    let (kind, source) = if crate::chunks::parse_volid(daemon, volid).is_some() {
        let (store, snap) = crate::chunks::open_volid(daemon, volid)?;
        let kind = if crate::chunks::guest_type(snap.backup_type) == "lxc" { GuestKind::Ct } else { GuestKind::Vm };
        (kind, Source::Chunks(store, snap))
    } else {
        let (_, file, path) = archive_path(daemon, volid)?;
        let kind = match hearth_core::storage::parse_backup_name(&file) {
            Some(name) if name.guest_type == "lxc" => GuestKind::Ct,
            Some(_) => GuestKind::Vm,
            None => return Err(err(ErrorKind::Invalid, format!("'{volid}' is not a vzdump archive of a guest"))),
        };
        (kind, Source::Archive(path))
    };
    let text = match (kind, &source) {
        (GuestKind::Vm, Source::Archive(archive)) => {
            vzdump::read_vma_header(archive).map(|h| h.config).map_err(|e| e.to_string())
        }
        (GuestKind::Ct, Source::Archive(archive)) => vzdump_config_of_lxc(archive),
        (GuestKind::Vm, Source::Chunks(..)) => source.config_text(crate::chunks::VM_CONFIG),
        (GuestKind::Ct, Source::Chunks(..)) => source.config_text(crate::chunks::CT_CONFIG),
    }
    .map_err(|e| err(ErrorKind::Invalid, format!("{volid}: {e}")))?;
    let config = GuestConfig::parse(kind, &text)
        .map_err(|e| err(ErrorKind::Invalid, format!("{volid}: the backup's configuration: {e}")))?;
    let mut out = String::new();
    if let Some(description) = config.current.get("description") {
        for line in description.to_string().lines() {
            out.push_str(&format!("#{line}\n"));
        }
    }
    for (key, value) in config.current.iter().filter(|(k, _)| *k != "description") {
        out.push_str(&format!("{key}: {value}\n"));
    }
    Ok(Payload::Text(out))
}
