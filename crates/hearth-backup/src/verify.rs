//! Verification: every file of a snapshot against its manifest checksum, and every chunk it
//! references re-read, CRC-checked, decoded and re-hashed. A bad chunk is moved aside to
//! `<digest>.<n>.bad`, so the next backup of the same data writes it again (healing), and the
//! snapshot's verify state records the failure, so the next backup does not build on it.

use std::collections::BTreeSet;
use std::fs;
use std::io::ErrorKind;
use std::sync::Mutex;
use std::thread;

use crate::error::Error;
use crate::index::referenced_digests;
use crate::key::{CryptConfig, KeyFile, chunk_digest};
use crate::restore::{crypt_for, read_checked};
use crate::snapshot::{MANIFEST, SnapshotRef, VERIFY_STATE, VerifyState, load_manifest, write_atomic};
use crate::{ChunkStore, Digest, blob, hex};

/// What verification found in one snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub chunks: usize,
    /// Chunks that failed their check and were renamed to `*.bad`.
    pub bad_chunks: Vec<Digest>,
    pub missing_chunks: Vec<Digest>,
    /// Snapshot files whose checksum does not match the manifest.
    pub bad_files: Vec<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.bad_chunks.is_empty() && self.missing_chunks.is_empty() && self.bad_files.is_empty()
    }
}

enum ChunkCheck {
    Good,
    Bad(String),
    Missing,
}

fn check_chunk(store: &ChunkStore, crypt: Option<&CryptConfig>, digest: &Digest) -> Result<ChunkCheck, Error> {
    let path = store.chunk_path(digest);
    let stored = match fs::read(&path) {
        Ok(stored) => stored,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(ChunkCheck::Missing),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let kind = match blob::check(&stored) {
        Ok(kind) => kind,
        Err(message) => return Ok(ChunkCheck::Bad(message)),
    };
    // Without the key an encrypted chunk can only be CRC-checked.
    if kind.encrypted && crypt.is_none() {
        return Ok(ChunkCheck::Good);
    }
    match blob::decode(&stored, crypt) {
        Ok(data) if chunk_digest(crypt, &data) == *digest => Ok(ChunkCheck::Good),
        Ok(_) => Ok(ChunkCheck::Bad("digest mismatch".into())),
        Err(e) => Ok(ChunkCheck::Bad(e.to_string())),
    }
}

/// Moves a bad chunk to the first free `<digest>.<n>.bad` (n < 10; beyond, it is deleted).
fn quarantine(store: &ChunkStore, digest: &Digest) -> Result<(), Error> {
    let path = store.chunk_path(digest);
    for n in 0..10 {
        let bad = path.with_file_name(format!("{}.{n}.bad", hex(digest)));
        if !bad.exists() {
            return fs::rename(&path, &bad).map_err(|e| Error::io(&path, e));
        }
    }
    fs::remove_file(&path).map_err(|e| Error::io(&path, e))
}

/// Verifies one finished snapshot and records the result in its `verify.json`. Without the
/// key, encrypted chunks are CRC-checked only; a wrong key is an error.
pub fn verify_snapshot(
    store: &ChunkStore,
    snap: &SnapshotRef,
    key: Option<&KeyFile>,
    now: i64,
) -> Result<VerifyReport, Error> {
    let manifest = load_manifest(store, snap)?;
    let crypt = match crypt_for(&manifest, snap, key) {
        Err(Error::KeyRequired(_)) => None,
        other => other?,
    };
    let mut report = VerifyReport::default();
    let mut digests = BTreeSet::new();
    for file in &manifest.files {
        if read_checked(store, snap, &manifest, &file.filename).is_err() {
            report.bad_files.push(file.filename.clone());
            continue;
        }
        if file.filename.ends_with(".fidx") || file.filename.ends_with(".didx") {
            digests.extend(referenced_digests(&snap.path(store).join(&file.filename))?);
        }
    }
    let digests: Vec<Digest> = digests.into_iter().collect();
    report.chunks = digests.len();
    let next = Mutex::new(digests.iter());
    let found = Mutex::new((Vec::new(), Vec::new()));
    let workers = thread::available_parallelism().map_or(2, usize::from);
    thread::scope(|scope| -> Result<(), Error> {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<(), Error> {
                    loop {
                        let Some(digest) = next.lock().expect("no panics under the lock").next() else { return Ok(()) };
                        match check_chunk(store, crypt.as_ref(), digest)? {
                            ChunkCheck::Good => {}
                            ChunkCheck::Missing => found.lock().expect("no panics under the lock").1.push(*digest),
                            ChunkCheck::Bad(why) => {
                                tracing::error!("chunk {} of {snap} is bad: {why}", hex(digest));
                                quarantine(store, digest)?;
                                found.lock().expect("no panics under the lock").0.push(*digest);
                            }
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().expect("verify workers do not panic"))
    })?;
    let (mut bad, mut missing) = found.into_inner().expect("workers are done");
    bad.sort();
    missing.sort();
    report.bad_chunks = bad;
    report.missing_chunks = missing;
    let state =
        VerifyState { ok: report.ok(), time: now, bad_chunks: report.bad_chunks.len() + report.missing_chunks.len() };
    let text = serde_json::to_vec(&state).expect("a verify state serializes");
    let dir = snap.path(store);
    debug_assert!(dir.join(MANIFEST).exists());
    write_atomic(&dir, VERIFY_STATE, &text)?;
    Ok(report)
}
