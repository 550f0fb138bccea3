//! The configuration store: one TOML file per guest under `etc/hearth/nodes/<node>/{qemu,lxc}/`.
//!
//! Every write goes temp file → fsync → rename → fsync of the directory, so a crash leaves either
//! the old or the new file, never a torn one. Every change runs under the guest's lock and may
//! carry the digest it was based on; a stale digest is a conflict. Creating a guest and reserving
//! ids run under one id lock, which keeps VMIDs unique across VMs and containers.
//!
//! hearthd is the only writer of these files, so it keeps every guest's parsed configuration
//! in memory ([`GuestTable`]): its own writes update the table, and an inotify watch on each
//! kind's directory tells it which files someone changed behind its back. The kernel queues
//! inotify events inside the syscall that changed the file, so draining the queue (one
//! non-blocking `read`) before answering sees every change that finished before the request.
//! A listing therefore costs no syscall per guest, and `load` reads a file only when it
//! changed. Without inotify (or after the queue overflowed) the table is rebuilt by a
//! directory read and a stat per file, as a cache keyed by inode, size and times.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use hearth_core::guest::{FileError, digest};
use hearth_core::{GuestConfig, GuestKind, Vmid};
use hearth_proto::{ErrorKind, ErrorReply, GuestSummary};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

/// How long a change waits for another change of the same guest, as Proxmox's config lock.
pub const LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long `nextid` keeps an id for its caller.
pub const RESERVATION_SECONDS: u64 = 600;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {vmid} does not exist")]
    NotFound { kind: &'static str, vmid: Vmid },
    #[error("{existing} {vmid} already exists")]
    Exists { existing: &'static str, vmid: Vmid },
    #[error("configuration of {kind} {vmid} was changed since it was read (digest mismatch); read it again and retry")]
    Stale { kind: &'static str, vmid: Vmid },
    #[error("{}: {source}", path.display())]
    Unreadable { path: PathBuf, source: FileError },
    #[error("guest {vmid} is busy with another change; try again")]
    LockTimeout { vmid: Vmid },
    #[error("no free VMID left")]
    Exhausted,
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

impl From<StoreError> for ErrorReply {
    fn from(e: StoreError) -> ErrorReply {
        let kind = match &e {
            StoreError::NotFound { .. } => ErrorKind::NotFound,
            StoreError::Exists { .. } | StoreError::Stale { .. } => ErrorKind::Conflict,
            StoreError::Unreadable { .. } => ErrorKind::Unavailable,
            StoreError::Exhausted => ErrorKind::Unavailable,
            StoreError::LockTimeout { .. } => ErrorKind::Busy,
            StoreError::Io { .. } => ErrorKind::Internal,
        };
        ErrorReply::new(kind, e.to_string())
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_owned(), source }
}

/// A configuration as read, with the digest of the bytes it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: GuestConfig,
    pub digest: String,
}

/// What identifies one version of a file: inode, size, mtime and ctime (seconds and ns).
type Stamp = (u64, u64, i64, i64, i64, i64);

fn stamp_of(meta: &fs::Metadata) -> Stamp {
    (meta.ino(), meta.size(), meta.mtime(), meta.mtime_nsec(), meta.ctime(), meta.ctime_nsec())
}

/// One guest's file as hearthd last saw it.
#[derive(Debug)]
struct Entry {
    stamp: Stamp,
    parsed: Arc<Result<GuestConfig, FileError>>,
    digest: String,
    summary: Arc<OnceLock<GuestSummary>>,
}

impl Entry {
    /// Reads and parses a file; `None` when it does not exist.
    fn read(kind: GuestKind, path: &Path) -> Result<Option<Entry>, StoreError> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(path)(e)),
        };
        // The stamp is taken after the read: a change in between makes the next look read again.
        let stamp = match fs::metadata(path) {
            Ok(meta) => stamp_of(&meta),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(path)(e)),
        };
        let parsed = match std::str::from_utf8(&bytes) {
            Ok(text) => GuestConfig::parse(kind, text),
            Err(e) => Err(FileError { line: None, message: format!("not valid UTF-8 at byte {}", e.valid_up_to()) }),
        };
        Ok(Some(Entry { stamp, parsed: Arc::new(parsed), digest: digest(&bytes), summary: Arc::default() }))
    }
}

/// The guests of one kind on this node.
#[derive(Debug, Default)]
struct KindTable {
    /// Whether `guests` holds every file of the directory (false until the first scan, and
    /// after the watch lost events).
    complete: bool,
    guests: BTreeMap<Vmid, Entry>,
    /// Files the watch reported changed since they were last looked at.
    dirty: BTreeSet<Vmid>,
}

/// The inotify watch on the guest directories.
#[derive(Debug)]
struct Watch {
    inotify: Inotify,
    /// The watch descriptor of each kind's directory, if it is watched.
    dirs: [Option<WatchDescriptor>; 2],
}

/// Every guest configuration of this node, parsed, and how current each entry is.
#[derive(Debug)]
struct GuestTable {
    watch: Option<Watch>,
    kinds: [KindTable; 2],
}

fn slot(kind: GuestKind) -> usize {
    match kind {
        GuestKind::Vm => 0,
        GuestKind::Ct => 1,
    }
}

const KINDS: [GuestKind; 2] = [GuestKind::Vm, GuestKind::Ct];

/// `<vmid>.toml` → the id; temporary files and anything else → `None`.
fn vmid_of(name: &std::ffi::OsStr) -> Option<Vmid> {
    name.to_str().and_then(|n| n.strip_suffix(".toml")).and_then(|n| n.parse::<Vmid>().ok())
}

/// One guest in a listing.
#[derive(Debug)]
pub struct Listed {
    pub vmid: Vmid,
    pub config: Arc<Result<GuestConfig, FileError>>,
    /// The listing row this version of the file gives, worked out by the first listing that
    /// needs it and kept until the file changes.
    pub summary: Arc<OnceLock<GuestSummary>>,
}

#[derive(Debug)]
pub struct ConfigStore {
    nodes_dir: PathBuf,
    node: String,
    reservations_path: PathBuf,
    id_lock: Mutex<()>,
    guest_locks: GuestLocks,
    table: Mutex<GuestTable>,
    /// How many guest files [`ConfigStore::load`] has read, so tests can hold operations to
    /// one load each.
    loads: AtomicU64,
}

/// Writes `bytes` to `path` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    // Unique within this process; a leftover with the same name can only come from a dead
    // process that had our pid, so overwriting it is safe.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = path.parent().expect("configuration paths have a parent directory");
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp.{}.{counter}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).map_err(io_err(&tmp))?;
        file.write_all(bytes).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
        fs::rename(&tmp, path).map_err(io_err(path))?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl ConfigStore {
    /// Opens the store under `root` for `node`, creating its directories and removing
    /// temporary files a crash may have left.
    pub fn open(root: &Path, node: &str) -> Result<ConfigStore, StoreError> {
        let nodes_dir = root.join("etc/hearth/nodes");
        let store = ConfigStore {
            reservations_path: root.join("var/lib/hearth/reserved-ids.toml"),
            nodes_dir,
            node: node.to_owned(),
            id_lock: Mutex::new(()),
            guest_locks: GuestLocks::default(),
            table: Mutex::new(GuestTable { watch: None, kinds: Default::default() }),
            loads: AtomicU64::new(0),
        };
        for kind in KINDS {
            let dir = store.dir(kind);
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            for entry in fs::read_dir(&dir).map_err(io_err(&dir))?.flatten() {
                if entry.file_name().to_string_lossy().contains(".tmp.") {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        let state = store.reservations_path.parent().expect("has a parent");
        fs::create_dir_all(state).map_err(io_err(state))?;
        store.table().watch = store.watch();
        Ok(store)
    }

    /// Starts watching both guest directories; `None` (with a warning) when inotify is not
    /// available, and the table is then checked against the directory on every look.
    fn watch(&self) -> Option<Watch> {
        let inotify = match Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) {
            Ok(inotify) => inotify,
            Err(e) => {
                tracing::warn!(error = %e, "no inotify: guest listings read every configuration file's metadata");
                return None;
            }
        };
        let mut watch = Watch { inotify, dirs: [None, None] };
        for kind in KINDS {
            watch.dirs[slot(kind)] = self.add_watch(&watch.inotify, kind);
        }
        Some(watch)
    }

    fn add_watch(&self, inotify: &Inotify, kind: GuestKind) -> Option<WatchDescriptor> {
        let dir = self.dir(kind);
        let flags = AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_ATTRIB
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF
            | AddWatchFlags::IN_ONLYDIR;
        match inotify.add_watch(&dir, flags) {
            Ok(wd) => Some(wd),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the guest directory");
                None
            }
        }
    }

    fn table(&self) -> MutexGuard<'_, GuestTable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies what the watch reported since the last look: changed files become dirty; a lost
    /// event or a replaced directory makes the kind's table incomplete (rebuilt on next use).
    fn drain_events(&self, table: &mut GuestTable) {
        let Some(watch) = table.watch.as_mut() else {
            for kind in &mut table.kinds {
                kind.complete = false;
            }
            return;
        };
        loop {
            let events = match watch.inotify.read_events() {
                Ok(events) if !events.is_empty() => events,
                Ok(_) | Err(nix::errno::Errno::EAGAIN) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the guest directory watch failed; rescanning");
                    for kind in &mut table.kinds {
                        kind.complete = false;
                    }
                    break;
                }
            };
            for event in events {
                if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    for kind in &mut table.kinds {
                        kind.complete = false;
                    }
                    continue;
                }
                let Some(kind) = KINDS.into_iter().find(|k| watch.dirs[slot(*k)] == Some(event.wd)) else { continue };
                let lost = AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF | AddWatchFlags::IN_IGNORED;
                if event.mask.intersects(lost) {
                    // The watch follows the old directory's inode: drop it and watch the path.
                    table.kinds[slot(kind)].complete = false;
                    let _ = watch.inotify.rm_watch(event.wd);
                    watch.dirs[slot(kind)] = None;
                    continue;
                }
                if let Some(vmid) = event.name.as_deref().and_then(vmid_of) {
                    table.kinds[slot(kind)].dirty.insert(vmid);
                }
            }
        }
        // A directory whose watch went away (removed and made again) is watched anew before
        // the rescan, so nothing that changes after the scan is missed.
        for kind in KINDS {
            if watch.dirs[slot(kind)].is_none() {
                watch.dirs[slot(kind)] = self.add_watch(&watch.inotify, kind);
                table.kinds[slot(kind)].complete = false;
            }
        }
    }

    /// Brings one kind's table up to date: a full scan when it is incomplete (or unwatched),
    /// otherwise a look at each file reported changed.
    fn refresh(&self, table: &mut GuestTable, kind: GuestKind) -> Result<(), StoreError> {
        self.drain_events(table);
        let watched = table.watch.as_ref().is_some_and(|w| w.dirs[slot(kind)].is_some());
        let entries = &mut table.kinds[slot(kind)];
        if !entries.complete || !watched {
            let dir = self.dir(kind);
            let mut seen = BTreeSet::new();
            for entry in fs::read_dir(&dir).map_err(io_err(&dir))?.flatten() {
                if let Some(vmid) = vmid_of(&entry.file_name()) {
                    seen.insert(vmid);
                }
            }
            entries.guests.retain(|vmid, _| seen.contains(vmid));
            entries.dirty = seen;
            entries.complete = watched;
        }
        for vmid in std::mem::take(&mut entries.dirty) {
            let path = self.path(kind, vmid);
            match fs::metadata(&path) {
                Ok(meta) if entries.guests.get(&vmid).is_some_and(|e| e.stamp == stamp_of(&meta)) => {}
                Ok(_) => match Entry::read(kind, &path) {
                    Ok(Some(entry)) => {
                        entries.guests.insert(vmid, entry);
                    }
                    Ok(None) => {
                        entries.guests.remove(&vmid);
                    }
                    Err(e) => {
                        // Unreadable now (permissions, I/O): looked at again next time.
                        entries.guests.remove(&vmid);
                        entries.dirty.insert(vmid);
                        tracing::warn!(%vmid, error = %e, "cannot read a guest configuration");
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    entries.guests.remove(&vmid);
                }
                Err(e) => {
                    entries.guests.remove(&vmid);
                    entries.dirty.insert(vmid);
                    tracing::warn!(%vmid, error = %e, "cannot read a guest configuration");
                }
            }
        }
        Ok(())
    }

    /// Records a file hearthd itself just wrote, so nobody reads it back.
    fn remember(&self, kind: GuestKind, vmid: Vmid, config: &GuestConfig, digest: &str) {
        let path = self.path(kind, vmid);
        let mut table = self.table();
        let entries = &mut table.kinds[slot(kind)];
        match fs::metadata(&path) {
            Ok(meta) => {
                let entry = Entry {
                    stamp: stamp_of(&meta),
                    parsed: Arc::new(Ok(config.clone())),
                    digest: digest.to_owned(),
                    summary: Arc::default(),
                };
                entries.guests.insert(vmid, entry);
            }
            // Gone already (removed behind our back): the next look finds out.
            Err(_) => {
                entries.dirty.insert(vmid);
            }
        }
    }

    /// Forgets a file hearthd itself just removed.
    fn forget(&self, kind: GuestKind, vmid: Vmid) {
        self.table().kinds[slot(kind)].guests.remove(&vmid);
    }

    fn dir(&self, kind: GuestKind) -> PathBuf {
        self.nodes_dir.join(&self.node).join(kind.config_dir())
    }

    pub fn path(&self, kind: GuestKind, vmid: Vmid) -> PathBuf {
        self.dir(kind).join(format!("{vmid}.toml"))
    }

    /// Waits for and holds the lock of one guest; every change to its file happens under it.
    /// Gives up after [`LOCK_TIMEOUT`] so a stuck holder cannot tie up every worker thread.
    pub fn lock_guest(&self, vmid: Vmid) -> Result<GuestGuard<'_>, StoreError> {
        let locks = &self.guest_locks;
        let deadline = std::time::Instant::now() + LOCK_TIMEOUT;
        let mut held = locks.held.lock().unwrap_or_else(|e| e.into_inner());
        while held.contains(&vmid) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(StoreError::LockTimeout { vmid });
            }
            held = locks.released.wait_timeout(held, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        held.insert(vmid);
        Ok(GuestGuard { locks, vmid })
    }

    fn lock_ids(&self) -> MutexGuard<'_, ()> {
        self.id_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where a guest with this id lives, on any node, as either kind.
    pub fn locate(&self, vmid: Vmid) -> Option<(String, GuestKind)> {
        let nodes = fs::read_dir(&self.nodes_dir).ok()?;
        let mut nodes: Vec<String> = nodes.flatten().filter_map(|e| e.file_name().into_string().ok()).collect();
        // The local node first: it is where almost every lookup ends.
        nodes.sort_by_key(|n| n != &self.node);
        for node in nodes {
            for kind in [GuestKind::Vm, GuestKind::Ct] {
                let path = self.nodes_dir.join(&node).join(kind.config_dir()).join(format!("{vmid}.toml"));
                if path.exists() {
                    return Some((node, kind));
                }
            }
        }
        None
    }

    /// Reads and checks one guest's file: from the table when the watch reported no change
    /// of it, otherwise from the disk (and the table learns it).
    pub fn load(&self, kind: GuestKind, vmid: Vmid) -> Result<Loaded, StoreError> {
        self.loads.fetch_add(1, Ordering::Relaxed);
        let mut table = self.table();
        self.drain_events(&mut table);
        let watched = table.watch.as_ref().is_some_and(|w| w.dirs[slot(kind)].is_some());
        let entries = &mut table.kinds[slot(kind)];
        let current = watched && entries.complete && !entries.dirty.contains(&vmid);
        if !current {
            let path = self.path(kind, vmid);
            match Entry::read(kind, &path)? {
                Some(entry) => {
                    entries.guests.insert(vmid, entry);
                }
                None => {
                    entries.guests.remove(&vmid);
                }
            }
            entries.dirty.remove(&vmid);
        }
        let entry = entries.guests.get(&vmid).ok_or(StoreError::NotFound { kind: kind.noun(), vmid })?;
        match entry.parsed.as_ref() {
            Ok(config) => Ok(Loaded { config: config.clone(), digest: entry.digest.clone() }),
            Err(source) => Err(StoreError::Unreadable { path: self.path(kind, vmid), source: source.clone() }),
        }
    }

    fn write(&self, kind: GuestKind, vmid: Vmid, config: &GuestConfig) -> Result<String, StoreError> {
        let text = config.to_toml();
        write_atomic(&self.path(kind, vmid), text.as_bytes())?;
        let digest = digest(text.as_bytes());
        self.remember(kind, vmid, config, &digest);
        Ok(digest)
    }

    /// How many guest files have been loaded since the store opened.
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    /// Writes a new guest's file; refused when the id is used by any guest on any node.
    pub fn create(&self, kind: GuestKind, vmid: Vmid, config: &GuestConfig) -> Result<String, StoreError> {
        let _ids = self.lock_ids();
        let _guest = self.lock_guest(vmid)?;
        if let Some((_, existing)) = self.locate(vmid) {
            return Err(StoreError::Exists { existing: existing.noun(), vmid });
        }
        let digest = self.write(kind, vmid, config)?;
        // The id is taken now; its reservation, if any, has served its purpose. A reservation
        // that cannot be dropped expires on its own, so a failure here is only logged.
        let mut reservations = self.read_reservations();
        if reservations.remove(&vmid).is_some() {
            if let Err(e) = self.write_reservations(&reservations) {
                tracing::warn!(%vmid, error = %e, "cannot drop the id reservation");
            }
        }
        Ok(digest)
    }

    /// Loads, changes and writes a guest's file under its lock. `expected` is the digest the
    /// caller's change was based on.
    pub fn update<T>(
        &self,
        kind: GuestKind,
        vmid: Vmid,
        expected: Option<&str>,
        change: impl FnOnce(&mut GuestConfig) -> Result<T, ErrorReply>,
    ) -> Result<(T, String), ErrorReply> {
        let _guard = self.lock_guest(vmid)?;
        let Loaded { mut config, digest } = self.load(kind, vmid)?;
        if expected.is_some_and(|d| d != digest) {
            return Err(StoreError::Stale { kind: kind.noun(), vmid }.into());
        }
        let before = config.clone();
        let value = change(&mut config)?;
        if config == before {
            // Nothing changed: keep the file, and with it every reader's digest.
            return Ok((value, digest));
        }
        let digest = self.write(kind, vmid, &config)?;
        Ok((value, digest))
    }

    /// Removes a guest's file under its lock after `check` approved the configuration.
    pub fn remove(
        &self,
        kind: GuestKind,
        vmid: Vmid,
        check: impl FnOnce(&GuestConfig) -> Result<(), ErrorReply>,
    ) -> Result<(), ErrorReply> {
        let _guard = self.lock_guest(vmid)?;
        let loaded = self.load(kind, vmid)?;
        check(&loaded.config)?;
        let path = self.path(kind, vmid);
        fs::remove_file(&path).map_err(io_err(&path))?;
        self.forget(kind, vmid);
        let dir = self.dir(kind);
        File::open(&dir).and_then(|d| d.sync_all()).map_err(io_err(&dir))?;
        Ok(())
    }

    /// Every guest of one kind on this node, sorted by id, from the table: no syscall per
    /// guest unless its file changed.
    pub fn list(&self, kind: GuestKind) -> Result<Vec<Listed>, StoreError> {
        let mut table = self.table();
        self.refresh(&mut table, kind)?;
        Ok(table.kinds[slot(kind)]
            .guests
            .iter()
            .map(|(vmid, entry)| Listed {
                vmid: *vmid,
                config: Arc::clone(&entry.parsed),
                summary: Arc::clone(&entry.summary),
            })
            .collect())
    }

    fn read_reservations(&self) -> BTreeMap<Vmid, u64> {
        let now = now();
        let Ok(text) = fs::read_to_string(&self.reservations_path) else { return BTreeMap::new() };
        let Ok(table) = toml::from_str::<toml::Table>(&text) else { return BTreeMap::new() };
        table
            .iter()
            .filter_map(|(id, until)| Some((id.parse::<Vmid>().ok()?, u64::try_from(until.as_integer()?).ok()?)))
            .filter(|(_, until)| *until > now)
            .collect()
    }

    fn write_reservations(&self, reservations: &BTreeMap<Vmid, u64>) -> Result<(), StoreError> {
        let table: toml::Table = reservations
            .iter()
            .map(|(id, until)| (id.to_string(), toml::Value::Integer(i64::try_from(*until).unwrap_or(i64::MAX))))
            .collect();
        let text = toml::to_string(&table).expect("a table of integers always serialises");
        write_atomic(&self.reservations_path, text.as_bytes())
    }

    /// Returns the lowest id that no guest uses and nobody reserved, and reserves it for
    /// [`RESERVATION_SECONDS`], so concurrent callers never get the same id.
    pub fn reserve_next_id(&self) -> Result<Vmid, StoreError> {
        let _ids = self.lock_ids();
        let mut taken = BTreeSet::new();
        if let Ok(nodes) = fs::read_dir(&self.nodes_dir) {
            for node in nodes.flatten() {
                for kind in [GuestKind::Vm, GuestKind::Ct] {
                    let Ok(entries) = fs::read_dir(node.path().join(kind.config_dir())) else { continue };
                    for entry in entries.flatten() {
                        let name = entry.file_name();
                        if let Some(id) =
                            name.to_str().and_then(|n| n.strip_suffix(".toml")).and_then(|n| n.parse::<u32>().ok())
                        {
                            taken.insert(id);
                        }
                    }
                }
            }
        }
        let mut reservations = self.read_reservations();
        let free = (Vmid::MIN..=Vmid::MAX)
            .find(|id| !taken.contains(id) && Vmid::new(*id).is_ok_and(|v| !reservations.contains_key(&v)))
            .ok_or(StoreError::Exhausted)?;
        let vmid = Vmid::new(free).map_err(|_| StoreError::Exhausted)?;
        reservations.insert(vmid, now() + RESERVATION_SECONDS);
        self.write_reservations(&reservations)?;
        Ok(vmid)
    }

    /// Reports every file that cannot be read, so an operator sees them at start-up.
    pub fn broken_files(&self) -> Vec<String> {
        let mut broken = Vec::new();
        for kind in [GuestKind::Vm, GuestKind::Ct] {
            for listed in self.list(kind).unwrap_or_default() {
                if let Err(e) = listed.config.as_ref() {
                    broken.push(format!("{}: {e}", self.path(kind, listed.vmid).display()));
                }
            }
        }
        broken
    }
}

/// The set of guests whose files are being changed, and a condition to wait for one.
#[derive(Debug, Default)]
struct GuestLocks {
    held: Mutex<HashSet<Vmid>>,
    released: Condvar,
}

/// Held while a guest's file is being changed; released on drop.
#[derive(Debug)]
pub struct GuestGuard<'a> {
    locks: &'a GuestLocks,
    vmid: Vmid,
}

impl Drop for GuestGuard<'_> {
    fn drop(&mut self) {
        self.locks.held.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.vmid);
        self.locks.released.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vmid(n: u32) -> Vmid {
        Vmid::new(n).expect("test ids are in range")
    }

    fn config(name: &str) -> GuestConfig {
        GuestConfig::parse(GuestKind::Vm, &format!("memory = 512\nname = \"{name}\"\n")).expect("a valid file")
    }

    fn names(store: &ConfigStore) -> Vec<(u32, String)> {
        store
            .list(GuestKind::Vm)
            .expect("list")
            .into_iter()
            .map(|l| {
                let name = match l.config.as_ref() {
                    Ok(c) => c.current.get("name").and_then(|v| v.as_str()).unwrap_or_default().to_owned(),
                    Err(e) => format!("error: {e}"),
                };
                (u32::from(l.vmid), name)
            })
            .collect()
    }

    /// Every change behind the store's back is seen by the next list and load, watched or not.
    fn follows_changes(store: &ConfigStore) {
        store.create(GuestKind::Vm, vmid(100), &config("a")).expect("create");
        store.create(GuestKind::Vm, vmid(101), &config("b")).expect("create");
        assert_eq!(names(store), [(100, "a".into()), (101, "b".into())]);
        let path = store.path(GuestKind::Vm, vmid(100));
        // In place, same length.
        let text = fs::read_to_string(&path).expect("read");
        fs::write(&path, text.replace("\"a\"", "\"c\"")).expect("write");
        assert_eq!(names(store)[0].1, "c");
        let loaded = store.load(GuestKind::Vm, vmid(100)).expect("load");
        assert_eq!(loaded.config.current.get("name").and_then(|v| v.as_str()), Some("c"));
        assert_eq!(loaded.digest, digest(fs::read(&path).expect("read").as_slice()));
        // Removed, added, broken.
        fs::remove_file(store.path(GuestKind::Vm, vmid(101))).expect("remove");
        fs::write(store.path(GuestKind::Vm, vmid(102)), "name = \"d\"\n").expect("write");
        assert_eq!(names(store), [(100, "c".into()), (102, "d".into())]);
        assert!(matches!(store.load(GuestKind::Vm, vmid(101)), Err(StoreError::NotFound { .. })));
        fs::write(store.path(GuestKind::Vm, vmid(102)), "name = [").expect("write");
        assert!(names(store)[1].1.starts_with("error: "), "{:?}", names(store));
        assert!(matches!(store.load(GuestKind::Vm, vmid(102)), Err(StoreError::Unreadable { .. })));
        // Its own writes are listed without reading the file back.
        let (_, digest) = store
            .update(GuestKind::Vm, vmid(100), None, |c| {
                *c = config("e");
                Ok(())
            })
            .expect("update the guest");
        assert_eq!(names(store)[0].1, "e");
        assert_eq!(store.load(GuestKind::Vm, vmid(100)).expect("load").digest, digest);
    }

    #[test]
    fn the_watched_table_follows_changes_behind_its_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ConfigStore::open(dir.path(), "n1").expect("open");
        assert!(store.table().watch.is_some(), "inotify is available here");
        follows_changes(&store);
    }

    #[test]
    fn without_a_watch_the_table_is_checked_on_every_look() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ConfigStore::open(dir.path(), "n1").expect("open");
        store.table().watch = None;
        follows_changes(&store);
    }
}
