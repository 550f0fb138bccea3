//! The configuration store: one TOML file per guest under `etc/hearth/nodes/<node>/{qemu,lxc}/`.
//!
//! Every write goes temp file → fsync → rename → fsync of the directory, so a crash leaves either
//! the old or the new file, never a torn one. Every change runs under the guest's lock and may
//! carry the digest it was based on; a stale digest is a conflict. Creating a guest and reserving
//! ids run under one id lock, which keeps VMIDs unique across VMs and containers.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use hearth_core::guest::{FileError, digest};
use hearth_core::{GuestConfig, GuestKind, Vmid};
use hearth_proto::{ErrorKind, ErrorReply};

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

/// A parsed file, remembered until the file changes (inode, size and mtime differ).
#[derive(Debug)]
struct Cached {
    stamp: (u64, u64, i64, i64),
    parsed: Arc<Result<GuestConfig, FileError>>,
}

/// One guest in a listing.
#[derive(Debug)]
pub struct Listed {
    pub vmid: Vmid,
    pub path: PathBuf,
    pub config: Arc<Result<GuestConfig, FileError>>,
}

#[derive(Debug)]
pub struct ConfigStore {
    nodes_dir: PathBuf,
    node: String,
    reservations_path: PathBuf,
    id_lock: Mutex<()>,
    guest_locks: GuestLocks,
    cache: Mutex<HashMap<PathBuf, Cached>>,
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
            cache: Mutex::new(HashMap::new()),
            loads: AtomicU64::new(0),
        };
        for kind in [GuestKind::Vm, GuestKind::Ct] {
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
        Ok(store)
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

    /// Reads and checks one guest's file.
    pub fn load(&self, kind: GuestKind, vmid: Vmid) -> Result<Loaded, StoreError> {
        self.loads.fetch_add(1, Ordering::Relaxed);
        let path = self.path(kind, vmid);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound { kind: kind.noun(), vmid });
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let text = match std::str::from_utf8(&bytes) {
            Ok(text) => text,
            Err(e) => {
                let source = FileError { line: None, message: format!("not valid UTF-8 at byte {}", e.valid_up_to()) };
                return Err(StoreError::Unreadable { path, source });
            }
        };
        let config = GuestConfig::parse(kind, text).map_err(|source| StoreError::Unreadable { path, source })?;
        Ok(Loaded { config, digest: digest(&bytes) })
    }

    fn write(&self, kind: GuestKind, vmid: Vmid, config: &GuestConfig) -> Result<String, StoreError> {
        let text = config.to_toml();
        write_atomic(&self.path(kind, vmid), text.as_bytes())?;
        Ok(digest(text.as_bytes()))
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
        let dir = self.dir(kind);
        File::open(&dir).and_then(|d| d.sync_all()).map_err(io_err(&dir))?;
        Ok(())
    }

    /// Every guest of one kind on this node, sorted by id. Unchanged files come from a cache so
    /// listing a thousand guests costs a directory read and a stat per file.
    pub fn list(&self, kind: GuestKind) -> Result<Vec<Listed>, StoreError> {
        let dir = self.dir(kind);
        let mut found = BTreeMap::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))?.flatten() {
            let name = entry.file_name();
            let Some(vmid) = name.to_str().and_then(|n| n.strip_suffix(".toml")).and_then(|n| n.parse::<Vmid>().ok())
            else {
                continue;
            };
            found.insert(vmid, entry.path());
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let mut listed = Vec::with_capacity(found.len());
        for (vmid, path) in found {
            let Ok(meta) = fs::metadata(&path) else { continue };
            let stamp = (meta.ino(), meta.size(), meta.mtime(), meta.mtime_nsec());
            let parsed = match cache.get(&path) {
                Some(c) if c.stamp == stamp => Arc::clone(&c.parsed),
                _ => {
                    let Ok(bytes) = fs::read(&path) else { continue };
                    let parsed = Arc::new(match std::str::from_utf8(&bytes) {
                        Ok(text) => GuestConfig::parse(kind, text),
                        Err(e) => Err(FileError {
                            line: None,
                            message: format!("not valid UTF-8 at byte {}", e.valid_up_to()),
                        }),
                    });
                    cache.insert(path.clone(), Cached { stamp, parsed: Arc::clone(&parsed) });
                    parsed
                }
            };
            listed.push(Listed { vmid, path, config: parsed });
        }
        Ok(listed)
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
                    broken.push(format!("{}: {e}", listed.path.display()));
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
