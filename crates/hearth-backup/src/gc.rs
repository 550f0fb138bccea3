//! Garbage collection: mark every chunk any index references (atime = now), then sweep chunks
//! whose atime is older than `min(GC start, oldest running writer start) − safety margin`.
//!
//! Runs concurrently with backups. A writer registers before it touches anything and touches
//! every chunk it references (existing chunks included), so all its chunks carry an atime after
//! its start, which is after the cutoff. A touch can still race with the sweep between the
//! sweep's `stat` and its deletion, so the sweep deletes in two steps: rename the chunk to a
//! private name, look at its atime again (a touch before the rename shows there) and either
//! rename it back (never over a chunk inserted meanwhile) or unlink it. A touch after the
//! rename finds no chunk, and the writer inserts it again. Only one GC runs at a time
//! (`.gc.lock`).

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use nix::fcntl::{AT_FDCWD, Flock, FlockArg, RenameFlags, renameat2};
use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;
use serde::Serialize;

use crate::chunk_store::{atime_ns, is_chunk_name, temp_suffix};
use crate::error::{Error, IoContext};
use crate::index::referenced_digests;
use crate::{ChunkStore, Digest};

/// GC settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcOptions {
    /// How much older than the cutoff a chunk must be. PBS uses 24 h 5 min, which also covers
    /// file systems with lazy atime; tests use less. One second is always added for the
    /// coarse kernel clock behind atimes.
    pub safety_margin: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions { safety_margin: Duration::from_secs(24 * 3600 + 300) }
    }
}

/// What a GC run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GcStats {
    pub index_files: usize,
    pub referenced_chunks: usize,
    pub missing_chunks: usize,
    pub removed_chunks: usize,
    pub removed_bytes: u64,
    pub removed_bad: usize,
    pub removed_temp: usize,
    pub kept_chunks: usize,
    pub kept_bytes: u64,
}

/// Runs one garbage collection. Fails with [`Error::Busy`] when another GC runs.
pub fn gc(store: &ChunkStore, options: &GcOptions) -> Result<GcStats, Error> {
    let lock_path = store.root().join(".gc.lock");
    let lock_file = File::options().create(true).truncate(false).write(true).open(&lock_path).at(&lock_path)?;
    let _lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock)
        .map_err(|_| Error::Busy { what: format!("garbage collection of {}", store.root().display()) })?;
    // GC start on the kernel's clock, the one atimes use.
    utimensat(AT_FDCWD, &lock_path, &TimeSpec::UTIME_NOW, &TimeSpec::UTIME_NOW, UtimensatFlags::FollowSymlink)
        .map_err(|e| Error::io(&lock_path, e.into()))?;
    let meta = fs::metadata(&lock_path).at(&lock_path)?;
    let start_ns = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
    let oldest_writer = store.oldest_writer()?;
    let mut stats = GcStats::default();

    let mut marked: HashSet<Digest> = HashSet::new();
    for index in index_files(store)? {
        // An index may vanish under a concurrent prune; what it referenced is garbage then.
        let digests = match referenced_digests(&index) {
            Ok(d) => d,
            Err(Error::Io { source, .. }) if source.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        stats.index_files += 1;
        for digest in digests {
            if marked.insert(digest) && !store.touch_chunk(&digest)? {
                tracing::warn!("missing chunk {} referenced by {}", crate::hex(&digest), index.display());
                stats.missing_chunks += 1;
            }
        }
    }
    stats.referenced_chunks = marked.len();

    let margin = options.safety_margin.as_nanos() as i128 + 1_000_000_000;
    let cutoff = oldest_writer.map_or(start_ns, |w| w.min(start_ns)) - margin;
    sweep(store, cutoff, &mut stats)?;
    let status = store.root().join(".gc-status");
    fs::write(&status, serde_json::to_vec_pretty(&stats).expect("stats serialize")).at(&status)?;
    Ok(stats)
}

/// Every `.fidx`/`.didx` under the store's `vm/` and `ct/` trees, finished or not.
fn index_files(store: &ChunkStore) -> Result<Vec<std::path::PathBuf>, Error> {
    let mut out = Vec::new();
    for top in ["vm", "ct"] {
        collect_indexes(&store.root().join(top), 0, &mut out)?;
    }
    Ok(out)
}

fn collect_indexes(dir: &Path, depth: usize, out: &mut Vec<std::path::PathBuf>) -> Result<(), Error> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in entries {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if depth < 2 && entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_indexes(&path, depth + 1, out)?;
        } else if depth == 2 && (name.ends_with(".fidx") || name.ends_with(".didx")) {
            out.push(path);
        }
    }
    Ok(())
}

fn sweep(store: &ChunkStore, cutoff: i128, stats: &mut GcStats) -> Result<(), Error> {
    let chunks = store.chunks_dir();
    let mut dirs: Vec<_> = fs::read_dir(chunks).at(chunks)?.filter_map(Result::ok).map(|e| e.path()).collect();
    dirs.sort();
    for dir in dirs {
        for entry in fs::read_dir(&dir).at(&dir)? {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let Ok(meta) = fs::symlink_metadata(&path) else { continue };
            if is_chunk_name(&name) {
                if atime_ns(&meta) >= cutoff {
                    stats.kept_chunks += 1;
                    stats.kept_bytes += meta.len();
                } else if remove_unless_touched(&path, cutoff)? {
                    stats.removed_chunks += 1;
                    stats.removed_bytes += meta.len();
                } else {
                    stats.kept_chunks += 1;
                    stats.kept_bytes += meta.len();
                }
            } else if name.ends_with(".bad") {
                // A bad copy goes once a good one exists, or when it is as old as garbage.
                let good = dir.join(&name[..name.len().min(64)]);
                if good.exists() || atime_ns(&meta) < cutoff {
                    fs::remove_file(&path).at(&path)?;
                    stats.removed_bad += 1;
                }
            } else if (name.contains(".tmp_") || name.contains(".gc-"))
                && i128::from(meta.mtime()) * 1_000_000_000 < cutoff
            {
                let _ = fs::remove_file(&path);
                stats.removed_temp += 1;
            }
        }
    }
    Ok(())
}

/// Deletes an old chunk unless a writer touched it meanwhile. Returns whether it was deleted.
fn remove_unless_touched(path: &Path, cutoff: i128) -> Result<bool, Error> {
    let aside = path.with_extension(format!("gc-{}", temp_suffix()));
    match fs::rename(path, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(path, e)),
    }
    let meta = fs::symlink_metadata(&aside).at(&aside)?;
    if atime_ns(&meta) < cutoff {
        fs::remove_file(&aside).at(&aside)?;
        return Ok(true);
    }
    match renameat2(AT_FDCWD, &aside, AT_FDCWD, path, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(false),
        // A writer inserted the chunk again meanwhile; ours is a duplicate.
        Err(nix::errno::Errno::EEXIST) => {
            fs::remove_file(&aside).at(&aside)?;
            Ok(false)
        }
        Err(e) => Err(Error::io(path, e.into())),
    }
}
