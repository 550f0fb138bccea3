//! The chunk store: one blob file per chunk under `.chunks/XXXX/<64 hex digest>`, written
//! once through a temporary name and a rename, plus the registry of running writers that
//! garbage collection respects.
//!
//! Chunk directories are created lazily, on the first insert that misses one: creating all
//! 65,536 up front costs seconds on a new store for no gain on Linux file systems.
//!
//! Existence checks *touch* the chunk (atime = now, mtime untouched). A writer therefore
//! leaves every chunk it references with an atime after its own start, which is what lets
//! [`crate::gc`] run concurrently with backups: GC deletes only chunks whose atime is before
//! `min(GC start, oldest running writer start) − margin`, and it deletes through a rename and
//! a second look, so a touch that races with the deletion is seen (see `gc.rs`).

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{AT_FDCWD, Flock, FlockArg, RenameFlags, renameat2};
use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext};
use crate::{Digest, hex};

const MARKER: &str = ".hearth-chunkstore";
const FORMAT: &str = "hearth-chunkstore-v1";

#[derive(Serialize, Deserialize)]
struct StoreMarker {
    format: String,
}

/// When the store's writes are made durable (PBS's `sync-level` datastore tuning).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncLevel {
    /// Nothing is synced explicitly: the kernel's writeback decides (about 30 s).
    None,
    /// One `syncfs(2)` of the store's file system before a backup is reported done.
    #[default]
    Filesystem,
    /// Every chunk file is fsynced before its rename and its directory after; index files and
    /// blobs likewise. Slow on disks without a power-loss-protected cache.
    File,
}

impl SyncLevel {
    /// Parses the storage option's value: `none`, `filesystem` or `file`.
    pub fn parse(text: &str) -> Option<SyncLevel> {
        match text {
            "none" => Some(SyncLevel::None),
            "filesystem" => Some(SyncLevel::Filesystem),
            "file" => Some(SyncLevel::File),
            _ => None,
        }
    }
}

/// A chunk store rooted at a directory.
#[derive(Clone, Debug)]
pub struct ChunkStore {
    root: PathBuf,
    chunks: PathBuf,
    sync_level: SyncLevel,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique suffix for temporary names within this process.
pub(crate) fn temp_suffix() -> String {
    format!("{}-{}", std::process::id(), TEMP_COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Whether a file name is a chunk's: 64 lowercase hex digits.
pub(crate) fn is_chunk_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The atime of a file in nanoseconds since the epoch.
pub(crate) fn atime_ns(meta: &fs::Metadata) -> i128 {
    i128::from(meta.atime()) * 1_000_000_000 + i128::from(meta.atime_nsec())
}

impl ChunkStore {
    /// Creates a new store at `root` (the directory may exist but must not hold a store).
    pub fn create(root: &Path) -> Result<ChunkStore, Error> {
        fs::create_dir_all(root).at(root)?;
        let marker = root.join(MARKER);
        if marker.exists() {
            return Err(Error::Invalid(format!("{} already holds a chunk store", root.display())));
        }
        let store =
            ChunkStore { root: root.to_owned(), chunks: root.join(".chunks"), sync_level: SyncLevel::default() };
        for dir in [&store.chunks, &store.writers_dir()] {
            fs::create_dir_all(dir).at(dir)?;
        }
        let text = serde_json::to_string(&StoreMarker { format: FORMAT.into() }).expect("marker serializes");
        fs::write(&marker, text).at(&marker)?;
        Ok(store)
    }

    /// Opens an existing store.
    pub fn open(root: &Path) -> Result<ChunkStore, Error> {
        let marker = root.join(MARKER);
        let text = fs::read(&marker).at(&marker)?;
        let parsed: StoreMarker = serde_json::from_slice(&text)
            .map_err(|e| Error::corrupt(&marker, format!("not a chunk store marker: {e}")))?;
        if parsed.format != FORMAT {
            return Err(Error::corrupt(&marker, format!("unknown store format {:?}", parsed.format)));
        }
        Ok(ChunkStore { root: root.to_owned(), chunks: root.join(".chunks"), sync_level: SyncLevel::default() })
    }

    /// Sets when writes are made durable (default [`SyncLevel::Filesystem`]).
    pub fn set_sync_level(&mut self, level: SyncLevel) {
        self.sync_level = level;
    }

    pub fn sync_level(&self) -> SyncLevel {
        self.sync_level
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn chunks_dir(&self) -> &Path {
        &self.chunks
    }

    fn writers_dir(&self) -> PathBuf {
        self.root.join(".writers")
    }

    /// `.chunks/XXXX/<hex>` for a digest.
    pub fn chunk_path(&self, digest: &Digest) -> PathBuf {
        let name = hex(digest);
        self.chunks.join(&name[..4]).join(name)
    }

    /// Marks a chunk as in use (atime = now). `Ok(false)` when it does not exist.
    pub fn touch_chunk(&self, digest: &Digest) -> Result<bool, Error> {
        let path = self.chunk_path(digest);
        touch(&path)
    }

    /// Stores an encoded chunk unless a chunk with this digest exists (which is touched
    /// instead). Returns whether this call created the chunk file: the rename refuses to
    /// replace a chunk another writer put there meanwhile, so two writers of one chunk never
    /// both count it. A crash leaves at most a temporary file, never a torn chunk.
    pub fn insert_chunk(&self, digest: &Digest, stored: &[u8]) -> Result<bool, Error> {
        let path = self.chunk_path(digest);
        if touch(&path)? {
            return Ok(false);
        }
        let dir = path.parent().expect("chunk paths have a directory");
        let temp = dir.join(format!("{}.tmp_{}", hex(&digest[..4]), temp_suffix()));
        let mut file = match File::create_new(&temp) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                fs::create_dir_all(dir).at(dir)?;
                File::create_new(&temp).at(&temp)?
            }
            Err(e) => return Err(Error::io(&temp, e)),
        };
        let mut written = file.write_all(stored);
        if self.sync_level == SyncLevel::File {
            written = written.and_then(|()| file.sync_data());
        }
        drop(file);
        let created = written.and_then(|()| rename_new(&temp, &path));
        match created {
            Ok(true) => {
                if self.sync_level == SyncLevel::File {
                    File::open(dir).and_then(|d| d.sync_all()).at(dir)?;
                }
                Ok(true)
            }
            Ok(false) => {
                let _ = fs::remove_file(&temp);
                touch(&path)?;
                Ok(false)
            }
            Err(e) => {
                let _ = fs::remove_file(&temp);
                Err(Error::io(&temp, e))
            }
        }
    }

    /// Makes a file written into the store durable when the sync level asks for it per file.
    pub(crate) fn sync_file(&self, file: &File, path: &Path) -> Result<(), Error> {
        if self.sync_level == SyncLevel::File { file.sync_all().at(path) } else { Ok(()) }
    }

    /// The stored (encoded) bytes of a chunk.
    pub fn read_chunk(&self, digest: &Digest) -> Result<Vec<u8>, Error> {
        let path = self.chunk_path(digest);
        fs::read(&path).at(&path)
    }

    /// Flushes the store's file system (`syncfs`), the durability point of a finished backup,
    /// at [`SyncLevel::Filesystem`]; at the other levels there is nothing left to do here.
    pub fn sync(&self) -> Result<(), Error> {
        if self.sync_level != SyncLevel::Filesystem {
            return Ok(());
        }
        let dir = File::open(&self.root).at(&self.root)?;
        nix::unistd::syncfs(&dir).map_err(|e| Error::io(&self.root, e.into()))
    }

    /// Registers a running writer until the guard is dropped. Its start time (the kernel's
    /// clock, as atimes use) bounds what a concurrent GC may delete.
    pub fn register_writer(&self) -> Result<WriterGuard, Error> {
        let dir = self.writers_dir();
        let suffix = temp_suffix();
        let temp = dir.join(format!(".tmp-{suffix}"));
        let file = File::create_new(&temp).at(&temp)?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| Error::io(&temp, e.into()))?;
        let start = fs::metadata(&temp).at(&temp)?;
        let start_ns = i128::from(start.mtime()) * 1_000_000_000 + i128::from(start.mtime_nsec());
        let path = dir.join(format!("{start_ns}-{suffix}"));
        fs::rename(&temp, &path).at(&path)?;
        Ok(WriterGuard { _lock: lock, path, start_ns })
    }

    /// The start (ns since the epoch) of the oldest live writer; markers of dead processes are
    /// removed on the way.
    pub(crate) fn oldest_writer(&self) -> Result<Option<i128>, Error> {
        let dir = self.writers_dir();
        let mut oldest: Option<i128> = None;
        for entry in fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let Some(start) = name.split('-').next().and_then(|s| s.parse::<i128>().ok()) else {
                continue;
            };
            let path = entry.path();
            let Ok(file) = File::open(&path) else { continue };
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                // Nobody holds it: the writer died without cleaning up.
                Ok(_stale) => {
                    tracing::warn!("removing the marker of a dead writer {}", path.display());
                    let _ = fs::remove_file(&path);
                }
                Err(_) => oldest = Some(oldest.map_or(start, |o| o.min(start))),
            }
        }
        Ok(oldest)
    }
}

/// Renames `from` to `to` unless `to` exists: `Ok(false)` then. File systems without
/// `RENAME_NOREPLACE` get a hard link and an unlink, which is just as exclusive.
fn rename_new(from: &Path, to: &Path) -> std::io::Result<bool> {
    match renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::EEXIST) => Ok(false),
        Err(nix::errno::Errno::EINVAL) => match fs::hard_link(from, to) {
            Ok(()) => fs::remove_file(from).map(|()| true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        },
        Err(e) => Err(e.into()),
    }
}

/// Sets a file's atime to now; `Ok(false)` when it does not exist.
pub(crate) fn touch(path: &Path) -> Result<bool, Error> {
    match utimensat(AT_FDCWD, path, &TimeSpec::UTIME_NOW, &TimeSpec::UTIME_OMIT, UtimensatFlags::NoFollowSymlink) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::ENOENT) => Ok(false),
        Err(e) => Err(Error::io(path, e.into())),
    }
}

/// A running writer's registration; dropping it unregisters.
#[derive(Debug)]
pub struct WriterGuard {
    _lock: Flock<File>,
    path: PathBuf,
    start_ns: i128,
}

impl WriterGuard {
    pub fn start_ns(&self) -> i128 {
        self.start_ns
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}
