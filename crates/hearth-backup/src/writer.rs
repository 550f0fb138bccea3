//! Writing a backup: the snapshot directory, the ingest pipelines for images (fixed 4 MiB
//! slots) and streams (FastCDC), blobs, and the manifest written last.
//!
//! Each pipeline is a producer thread (reading the image, or chunking the stream) feeding a
//! bounded channel that worker threads share; a worker hashes a chunk, touches it in the store
//! when it exists (dedupe) or compresses, encrypts and inserts it; the calling thread collects
//! digests in order. With the default of one worker per CPU the producer's I/O overlaps the
//! workers' hashing and compression.
//!
//! A chunk is hashed, compressed and written once however many workers meet it at the same
//! time: a worker whose bytes another worker is hashing (found by a sample key, then compared in
//! full) takes that digest, and the first worker to claim a digest stores it while the others
//! wait for that and count the chunk as existing. The counts a backup reports are therefore what the store gained: `new_chunks`
//! chunk files created by this backup and `stored_bytes` their size.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;

use fastcdc::v2020::StreamCDC;
use nix::fcntl::Flock;
use sha2::{Digest as _, Sha256};

use crate::blob::BlobEncoder;
use crate::chunk_store::WriterGuard;
use crate::error::{Error, IoContext};
use crate::index::{DynamicIndex, FIXED_CHUNK_SIZE, FixedIndex};
use crate::key::{CryptConfig, KeyFile, chunk_digest};
use crate::snapshot::{
    self, BackupType, CryptMode, MANIFEST, Manifest, ManifestFile, SnapshotRef, check_archive_name, lock_dir,
};
use crate::{ChunkStore, Digest, hex};

/// FastCDC bounds for streams: PBS-like 1/4/16 MiB (mean chunk ≈ 5 MiB).
pub const CDC_MIN: usize = 1 << 20;
pub const CDC_AVG: usize = 4 << 20;
pub const CDC_MAX: usize = 16 << 20;

/// Which 4 MiB slots of an image changed since the previous backup (a QEMU dirty bitmap at
/// chunk granularity). Clean slots reuse the previous snapshot's digests without being read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirtyMap {
    dirty: Vec<bool>,
}

impl DirtyMap {
    /// A map of `slots` slots, all clean.
    pub fn clean(slots: usize) -> DirtyMap {
        DirtyMap { dirty: vec![false; slots] }
    }

    pub fn set_dirty(&mut self, slot: usize) {
        if let Some(s) = self.dirty.get_mut(slot) {
            *s = true;
        }
    }

    /// Marks every slot touched by the byte range `[offset, offset + len)`.
    pub fn set_range(&mut self, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        let first = offset / FIXED_CHUNK_SIZE;
        let last = (offset + len - 1) / FIXED_CHUNK_SIZE;
        for slot in first..=last {
            self.set_dirty(slot as usize);
        }
    }

    pub fn is_dirty(&self, slot: usize) -> bool {
        self.dirty.get(slot).copied().unwrap_or(true)
    }

    pub fn len(&self) -> usize {
        self.dirty.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dirty.is_empty()
    }
}

/// What one archive of a backup cost.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArchiveStats {
    /// Bytes the archive represents (image size or stream length).
    pub size: u64,
    pub chunks: usize,
    /// Chunks written to the store by this backup.
    pub new_chunks: usize,
    /// Chunks that were already in the store.
    pub existing_chunks: usize,
    /// Slots taken from the previous snapshot without reading them (dirty map).
    pub clean_slots: usize,
    pub zero_chunks: usize,
    pub bytes_read: u64,
    /// Bytes of chunk files written (compressed, encrypted).
    pub stored_bytes: u64,
}

/// What a finished backup holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupStats {
    pub snapshot: SnapshotRef,
    /// The snapshot this one was incremental to, if any.
    pub base: Option<SnapshotRef>,
    pub archives: Vec<(String, ArchiveStats)>,
}

impl BackupStats {
    pub fn new_chunks(&self) -> usize {
        self.archives.iter().map(|(_, a)| a.new_chunks).sum()
    }

    pub fn chunks(&self) -> usize {
        self.archives.iter().map(|(_, a)| a.chunks).sum()
    }
}

struct Base {
    snapshot: SnapshotRef,
    manifest: Manifest,
    _lock: Flock<File>,
}

/// A backup being written. Dropping it unfinished removes the snapshot directory.
pub struct BackupWriter {
    store: ChunkStore,
    crypt: Option<Arc<CryptConfig>>,
    snapshot: SnapshotRef,
    dir: PathBuf,
    lock: Option<Flock<File>>,
    base: Option<Base>,
    _registration: WriterGuard,
    files: Vec<ManifestFile>,
    archives: Vec<(String, ArchiveStats)>,
    finished: bool,
    workers: usize,
}

impl std::fmt::Debug for BackupWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupWriter").field("snapshot", &self.snapshot).field("dir", &self.dir).finish()
    }
}

/// One unit of work: a chunk's sequence number (slot or stream position) and data.
struct Job {
    seq: usize,
    end: u64,
    data: Vec<u8>,
}

/// A processed chunk.
struct Done {
    seq: usize,
    end: u64,
    digest: Digest,
    new: bool,
    zero: bool,
    stored: u64,
    len: u64,
}

fn zero_block() -> &'static [u8] {
    static ZERO: OnceLock<Vec<u8>> = OnceLock::new();
    ZERO.get_or_init(|| vec![0u8; FIXED_CHUNK_SIZE as usize])
}

impl BackupWriter {
    /// Starts a backup of guest `id` at unix time `time` (newer than the group's last
    /// snapshot). With `key`, chunks and blobs are encrypted and digests are keyed.
    pub fn start(
        store: &ChunkStore,
        backup_type: BackupType,
        id: &str,
        time: i64,
        key: Option<&KeyFile>,
    ) -> Result<BackupWriter, Error> {
        snapshot::check_id(id)?;
        // Register before looking at any chunk, so a concurrent GC spares what we touch.
        let registration = store.register_writer()?;
        let crypt = key.map(|k| Arc::new(CryptConfig::new(k)));
        let fingerprint = crypt.as_ref().map(|c| c.fingerprint());
        let snapshot = SnapshotRef::new(backup_type, id, time);
        let group = snapshot.group_path(store);
        std::fs::create_dir_all(&group).at(&group)?;
        let last = snapshot::last_complete(store, backup_type, id)?;
        if let Some(last) = &last {
            if last.snapshot.time >= time {
                return Err(Error::Invalid(format!(
                    "backup time {} is not newer than the last snapshot {}",
                    crate::time::rfc3339(time),
                    last.snapshot
                )));
            }
        }
        // The previous snapshot is a base only if it verified fine (or was never verified) and
        // was written with the same key; otherwise everything is read and re-checked.
        let base = last.and_then(|info| {
            let manifest = info.manifest?;
            let verified_ok = info.verify.as_ref().is_none_or(|v| v.ok);
            if !verified_ok || manifest.key_fingerprint != fingerprint {
                return None;
            }
            let lock = lock_dir(&info.snapshot.path(store), false).ok()?;
            Some(Base { snapshot: info.snapshot, manifest, _lock: lock })
        });
        let dir = snapshot.path(store);
        std::fs::create_dir(&dir).map_err(|e| {
            if e.kind() == ErrorKind::AlreadyExists {
                Error::Invalid(format!("snapshot {snapshot} already exists"))
            } else {
                Error::io(&dir, e)
            }
        })?;
        let lock = match lock_dir(&dir, true) {
            Ok(lock) => lock,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        Ok(BackupWriter {
            store: store.clone(),
            crypt,
            snapshot,
            dir,
            lock: Some(lock),
            base,
            _registration: registration,
            files: Vec::new(),
            archives: Vec::new(),
            finished: false,
            workers: thread::available_parallelism().map_or(2, usize::from),
        })
    }

    pub fn snapshot(&self) -> &SnapshotRef {
        &self.snapshot
    }

    /// The previous snapshot used as base for incremental archives.
    pub fn base(&self) -> Option<&SnapshotRef> {
        self.base.as_ref().map(|b| &b.snapshot)
    }

    /// Sets the number of hashing/compressing worker threads (default: one per CPU).
    pub fn set_workers(&mut self, workers: usize) {
        self.workers = workers.max(1);
    }

    fn crypt_mode(&self) -> CryptMode {
        if self.crypt.is_some() { CryptMode::Encrypt } else { CryptMode::None }
    }

    fn record_file(&mut self, filename: String, bytes: &[u8]) {
        let csum = hex(&Sha256::digest(bytes));
        self.files.retain(|f| f.filename != filename);
        self.files.push(ManifestFile { filename, size: bytes.len() as u64, csum, crypt_mode: self.crypt_mode() });
    }

    fn write_file(&mut self, filename: String, bytes: &[u8]) -> Result<(), Error> {
        let path = self.dir.join(&filename);
        let mut file = File::create(&path).at(&path)?;
        std::io::Write::write_all(&mut file, bytes).at(&path)?;
        self.store.sync_file(&file, &path)?;
        self.record_file(filename, bytes);
        Ok(())
    }

    /// Stores a small file (guest configuration, log, catalog) as `<name>.blob`.
    pub fn add_blob(&mut self, name: &str, data: &[u8]) -> Result<(), Error> {
        check_archive_name(name)?;
        let stored = BlobEncoder::new().encode(data, self.crypt.as_deref())?;
        self.write_file(format!("{name}.blob"), &stored)
    }

    /// The previous snapshot's fixed index of this archive, if it can serve as a base.
    fn base_fixed(&self, filename: &str) -> Option<FixedIndex> {
        let base = self.base.as_ref()?;
        base.manifest.file(filename)?;
        FixedIndex::load(&base.snapshot.path(&self.store).join(filename)).ok()
    }

    /// Backs up a disk image (regular file or block device) as `<name>.img.fidx` in 4 MiB
    /// slots. With `dirty` and a previous snapshot of the same size, clean slots reuse the
    /// previous digests without being read.
    pub fn add_image(&mut self, name: &str, source: &Path, dirty: Option<&DirtyMap>) -> Result<ArchiveStats, Error> {
        self.add_image_with(name, source, dirty, crate::meter::no_hook())
    }

    /// [`add_image`](Self::add_image), calling `hook` with every slot read.
    pub fn add_image_with(
        &mut self,
        name: &str,
        source: &Path,
        dirty: Option<&DirtyMap>,
        hook: crate::meter::ReadHook<'_>,
    ) -> Result<ArchiveStats, Error> {
        check_archive_name(name)?;
        let filename = format!("{name}.img.fidx");
        let mut file = File::open(source).at(source)?;
        let size = file.seek(SeekFrom::End(0)).at(source)?;
        let slots = FixedIndex::chunk_count(size, FIXED_CHUNK_SIZE);
        let base = self.base_fixed(&filename).filter(|b| b.size == size && b.chunk_size == FIXED_CHUNK_SIZE);
        let mut stats = ArchiveStats { size, chunks: slots, ..ArchiveStats::default() };
        let mut digests = vec![[0u8; 32]; slots];
        let mut to_read = Vec::with_capacity(slots);
        match (dirty, &base) {
            (Some(dirty), Some(base)) => {
                for (slot, digest) in digests.iter_mut().enumerate() {
                    // A clean slot whose chunk vanished (verify moved it away, or GC) is read.
                    if !dirty.is_dirty(slot) && self.store.touch_chunk(&base.digests[slot])? {
                        *digest = base.digests[slot];
                        stats.clean_slots += 1;
                    } else {
                        to_read.push(slot);
                    }
                }
                tracing::info!("{filename}: {} of {slots} slots dirty or unknown", to_read.len());
            }
            (Some(_), None) => {
                tracing::info!("{filename}: dirty map ignored, no usable previous index: reading everything");
                to_read.extend(0..slots);
            }
            (None, _) => to_read.extend(0..slots),
        }

        let pool: (Sender<Vec<u8>>, Receiver<Vec<u8>>) = channel();
        let (pool_tx, pool_rx) = pool;
        let producer = move |jobs: SyncSender<Job>, abort: &AtomicBool| -> Result<(), Error> {
            for &slot in &to_read {
                if abort.load(Ordering::Relaxed) {
                    break;
                }
                let offset = slot as u64 * FIXED_CHUNK_SIZE;
                let len = (size - offset).min(FIXED_CHUNK_SIZE) as usize;
                let mut data = pool_rx.try_recv().unwrap_or_default();
                data.resize(len, 0);
                file.read_exact_at(&mut data, offset).at(source)?;
                hook(len as u64);
                if jobs.send(Job { seq: slot, end: offset + len as u64, data }).is_err() {
                    break;
                }
            }
            Ok(())
        };
        self.run_pipeline(producer, Some(pool_tx), |done| {
            digests[done.seq] = done.digest;
            stats.bytes_read += done.len;
            stats.zero_chunks += usize::from(done.zero);
            count(&mut stats, &done);
        })?;
        let index = FixedIndex { ctime: self.snapshot.time, size, chunk_size: FIXED_CHUNK_SIZE, digests };
        self.write_file(filename.clone(), &index.to_bytes())?;
        self.archives.push((filename, stats.clone()));
        Ok(stats)
    }

    /// Backs up a byte stream (such as a container's tar stream) as `<name>.didx`, cut by
    /// FastCDC.
    pub fn add_stream(&mut self, name: &str, reader: impl Read + Send) -> Result<ArchiveStats, Error> {
        check_archive_name(name)?;
        let filename = format!("{name}.didx");
        let mut stats = ArchiveStats::default();
        let mut entries: Vec<(u64, Digest)> = Vec::new();
        let source = PathBuf::from(format!("<{name} stream>"));
        let producer = |jobs: SyncSender<Job>, abort: &AtomicBool| -> Result<(), Error> {
            for (seq, chunk) in StreamCDC::new(reader, CDC_MIN, CDC_AVG, CDC_MAX).enumerate() {
                if abort.load(Ordering::Relaxed) {
                    break;
                }
                let chunk = chunk.map_err(|e| match e {
                    fastcdc::v2020::Error::IoError(e) => Error::io(&source, e),
                    other => Error::io(&source, std::io::Error::other(other.to_string())),
                })?;
                let end = chunk.offset + chunk.length as u64;
                if jobs.send(Job { seq, end, data: chunk.data }).is_err() {
                    break;
                }
            }
            Ok(())
        };
        let mut pending: Vec<Option<(u64, Digest)>> = Vec::new();
        self.run_pipeline(producer, None, |done| {
            if pending.len() <= done.seq {
                pending.resize(done.seq + 1, None);
            }
            pending[done.seq] = Some((done.end, done.digest));
            stats.bytes_read += done.len;
            count(&mut stats, &done);
        })?;
        for entry in pending {
            entries.push(entry.expect("every chunk sent was processed"));
        }
        stats.chunks = entries.len();
        stats.size = entries.last().map_or(0, |e| e.0);
        let index = DynamicIndex { ctime: self.snapshot.time, entries };
        self.write_file(filename.clone(), &index.to_bytes())?;
        self.archives.push((filename, stats.clone()));
        Ok(stats)
    }

    /// Runs `producer` on its own thread and `self.workers` workers that hash and store each
    /// chunk; `collect` sees every processed chunk on the calling thread.
    fn run_pipeline(
        &self,
        producer: impl FnOnce(SyncSender<Job>, &AtomicBool) -> Result<(), Error> + Send,
        recycle: Option<Sender<Vec<u8>>>,
        mut collect: impl FnMut(Done),
    ) -> Result<(), Error> {
        let abort = AtomicBool::new(false);
        let (job_tx, job_rx) = sync_channel::<Job>(self.workers + 2);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (done_tx, done_rx) = channel::<Result<Done, Error>>();
        let store = &self.store;
        let crypt = self.crypt.as_deref();
        let zero_digest = OnceLock::new();
        let in_flight = InFlight::default();
        thread::scope(|scope| {
            let abort = &abort;
            let producer_thread = scope.spawn(move || {
                let result = producer(job_tx, abort);
                if result.is_err() {
                    abort.store(true, Ordering::Relaxed);
                }
                result
            });
            for _ in 0..self.workers {
                let job_rx = Arc::clone(&job_rx);
                let done_tx = done_tx.clone();
                let recycle = recycle.clone();
                let zero_digest = &zero_digest;
                let in_flight = &in_flight;
                scope.spawn(move || {
                    let mut encoder = BlobEncoder::new();
                    loop {
                        let job = job_rx.lock().expect("no worker panics holding the lock").recv();
                        let Ok(job) = job else { break };
                        if abort.load(Ordering::Relaxed) {
                            break;
                        }
                        let mut job = job;
                        let result = process_chunk(store, crypt, &mut encoder, zero_digest, in_flight, &mut job);
                        let failed = result.is_err();
                        if failed {
                            abort.store(true, Ordering::Relaxed);
                        }
                        let _ = done_tx.send(result);
                        if let Some(recycle) = &recycle {
                            let _ = recycle.send(job.data);
                        }
                        if failed {
                            break;
                        }
                    }
                });
            }
            // Only workers may hold the job queue, so a producer blocked on a full queue wakes
            // up (its send fails) once the workers stopped after an error.
            drop(job_rx);
            drop(done_tx);
            let mut first_error = None;
            for result in done_rx {
                match result {
                    Ok(done) => collect(done),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            let produced = producer_thread.join().expect("the producer does not panic");
            match (first_error, produced) {
                (Some(e), _) | (None, Err(e)) => Err(e),
                (None, Ok(())) => Ok(()),
            }
        })
    }

    /// Commits the backup: syncs the store's file system, writes the manifest (the commit
    /// record), then the notes.
    pub fn finish(mut self, notes: Option<&str>) -> Result<BackupStats, Error> {
        if self.files.is_empty() {
            return Err(Error::Invalid(format!("backup {} holds no archive", self.snapshot)));
        }
        self.store.sync()?;
        let manifest = Manifest {
            backup_type: self.snapshot.backup_type,
            backup_id: self.snapshot.id.clone(),
            backup_time: self.snapshot.time,
            files: self.files.clone(),
            key_fingerprint: self.crypt.as_ref().map(|c| c.fingerprint()),
        };
        let text = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
        snapshot::write_atomic(&self.dir, MANIFEST, &text)?;
        self.finished = true;
        if let Some(notes) = notes {
            snapshot::set_notes(&self.store, &self.snapshot, notes)?;
        }
        self.lock = None;
        Ok(BackupStats {
            snapshot: self.snapshot.clone(),
            base: self.base.as_ref().map(|b| b.snapshot.clone()),
            archives: std::mem::take(&mut self.archives),
        })
    }
}

fn count(stats: &mut ArchiveStats, done: &Done) {
    if done.new {
        stats.new_chunks += 1;
        stats.stored_bytes += done.stored;
    } else {
        stats.existing_chunks += 1;
    }
}

/// The chunks workers of one pipeline are hashing and storing now.
#[derive(Default)]
struct InFlight {
    hashing: Hashing,
    chunks: Mutex<HashMap<Digest, Arc<Claim>>>,
}

/// One worker's claim on a digest: settled with whether the chunk is in the store now.
#[derive(Default)]
struct Claim {
    settled: Mutex<Option<bool>>,
    changed: Condvar,
}

impl InFlight {
    /// Makes sure the chunk is in the store, encoding and writing it only if no other worker
    /// does so now and the store lacks it. Answers whether this call created the chunk file
    /// and how many bytes it wrote.
    fn store_once(
        &self,
        store: &ChunkStore,
        digest: &Digest,
        encode: impl FnOnce() -> Result<Vec<u8>, Error>,
    ) -> Result<(bool, u64), Error> {
        let mut encode = Some(encode);
        loop {
            let claim = match self.chunks.lock().expect("no worker panics holding the lock").entry(*digest) {
                Entry::Occupied(theirs) => Err(Arc::clone(theirs.get())),
                Entry::Vacant(free) => Ok(Arc::clone(free.insert(Arc::default()))),
            };
            match claim {
                Err(theirs) => {
                    let mut settled = theirs.settled.lock().expect("no worker panics holding the lock");
                    while settled.is_none() {
                        settled = theirs.changed.wait(settled).expect("no worker panics holding the lock");
                    }
                    if *settled == Some(true) {
                        return Ok((false, 0));
                    }
                    // The other worker failed; this one tries (and likely reports the error).
                }
                Ok(ours) => {
                    let encode = encode.take().expect("a worker claims a digest once");
                    let result = (|| {
                        if store.touch_chunk(digest)? {
                            return Ok((false, 0));
                        }
                        let encoded = encode()?;
                        let new = store.insert_chunk(digest, &encoded)?;
                        Ok((new, if new { encoded.len() as u64 } else { 0 }))
                    })();
                    *ours.settled.lock().expect("no worker panics holding the lock") = Some(result.is_ok());
                    ours.changed.notify_all();
                    self.chunks.lock().expect("no worker panics holding the lock").remove(digest);
                    return result;
                }
            }
        }
    }
}

/// Chunks being hashed now, found by their content: a worker whose chunk is byte for byte one
/// another worker is hashing waits for that digest instead of hashing the same bytes again.
#[derive(Default)]
struct Hashing {
    chunks: Mutex<HashMap<u64, Vec<Arc<Hashed>>>>,
}

/// A chunk one worker is hashing; settled with its digest.
struct Hashed {
    data: Arc<Vec<u8>>,
    digest: Mutex<Option<Digest>>,
    changed: Condvar,
}

/// A cheap key for finding equal chunks: the length and a few samples of the bytes. Equal
/// keys are then compared in full.
fn sample_key(data: &[u8]) -> u64 {
    const SAMPLE: usize = 64;
    let mid = data.len() / 2;
    let parts = [
        &data[..data.len().min(SAMPLE)],
        &data[mid..data.len().min(mid + SAMPLE)],
        &data[data.len().saturating_sub(SAMPLE)..],
    ];
    // FNV-1a over the samples, seeded with the length.
    let mut hash = 0xcbf2_9ce4_8422_2325_u64 ^ data.len() as u64;
    for byte in parts.iter().flat_map(|p| p.iter()) {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

impl Hashing {
    /// The digest of `data`: computed by `hash` unless another worker is hashing the same
    /// bytes now, whose digest is then taken.
    fn digest_once(&self, data: &Arc<Vec<u8>>, hash: impl FnOnce() -> Digest) -> Digest {
        let key = sample_key(data);
        let claim = {
            let mut chunks = self.chunks.lock().expect("no worker panics holding the lock");
            let same = chunks.entry(key).or_default();
            match same.iter().find(|h| h.data[..] == data[..]) {
                Some(theirs) => Err(Arc::clone(theirs)),
                None => {
                    let ours =
                        Arc::new(Hashed { data: Arc::clone(data), digest: Mutex::new(None), changed: Condvar::new() });
                    same.push(Arc::clone(&ours));
                    Ok(ours)
                }
            }
        };
        match claim {
            Err(theirs) => {
                let mut digest = theirs.digest.lock().expect("no worker panics holding the lock");
                loop {
                    if let Some(digest) = *digest {
                        return digest;
                    }
                    digest = theirs.changed.wait(digest).expect("no worker panics holding the lock");
                }
            }
            Ok(ours) => {
                let digest = hash();
                *ours.digest.lock().expect("no worker panics holding the lock") = Some(digest);
                ours.changed.notify_all();
                let mut chunks = self.chunks.lock().expect("no worker panics holding the lock");
                if let Some(same) = chunks.get_mut(&key) {
                    same.retain(|h| !Arc::ptr_eq(h, &ours));
                    if same.is_empty() {
                        chunks.remove(&key);
                    }
                }
                digest
            }
        }
    }
}

/// Hashes one chunk and stores it unless the store has it or another worker is storing it; a
/// chunk another worker is hashing at the same time is not hashed again.
fn process_chunk(
    store: &ChunkStore,
    crypt: Option<&CryptConfig>,
    encoder: &mut BlobEncoder,
    zero_digest: &OnceLock<Digest>,
    in_flight: &InFlight,
    job: &mut Job,
) -> Result<Done, Error> {
    let len = job.data.len() as u64;
    let zero = job.data.len() == FIXED_CHUNK_SIZE as usize && job.data[..] == *zero_block();
    if zero {
        let data = &job.data;
        let digest = *zero_digest.get_or_init(|| chunk_digest(crypt, data));
        let (new, stored) = in_flight.store_once(store, &digest, || encoder.encode(data, crypt))?;
        return Ok(Done { seq: job.seq, end: job.end, digest, new, zero, stored, len });
    }
    // Shared while other workers may compare against it; taken back for reuse afterwards.
    let data = Arc::new(std::mem::take(&mut job.data));
    let digest = in_flight.hashing.digest_once(&data, || chunk_digest(crypt, &data));
    let stored = in_flight.store_once(store, &digest, || encoder.encode(&data, crypt));
    job.data = Arc::try_unwrap(data).unwrap_or_default();
    let (new, stored) = stored?;
    Ok(Done { seq: job.seq, end: job.end, digest, new, zero, stored, len })
}

impl Drop for BackupWriter {
    fn drop(&mut self) {
        if !self.finished {
            // An unfinished snapshot is garbage: its chunks wait for GC, its directory goes now.
            if let Err(e) = std::fs::remove_dir_all(&self.dir) {
                tracing::warn!("cannot remove the unfinished snapshot {}: {e}", self.dir.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[test]
    fn equal_chunks_in_flight_are_hashed_once() {
        let hashing = Hashing::default();
        let data = Arc::new(vec![7u8; 1 << 20]);
        let same = Arc::new(vec![7u8; 1 << 20]);
        let mut other_bytes = vec![7u8; 1 << 20];
        other_bytes[1000] = 8; // Same sample key, different bytes.
        let other = Arc::new(other_bytes);
        assert_eq!(sample_key(&data), sample_key(&other));
        let hashes = AtomicUsize::new(0);
        let (started_tx, started_rx) = channel();
        thread::scope(|scope| {
            let first = scope.spawn(|| {
                hashing.digest_once(&data, || {
                    started_tx.send(()).expect("the test waits");
                    hashes.fetch_add(1, Ordering::SeqCst);
                    // Until the second worker holds this chunk (map, owner and waiter hold it).
                    let deadline = std::time::Instant::now() + Duration::from_secs(20);
                    while !hashing.chunks.lock().expect("lock").values().flatten().any(|h| Arc::strong_count(h) >= 3) {
                        assert!(std::time::Instant::now() < deadline, "the second worker never waited");
                        thread::sleep(Duration::from_millis(1));
                    }
                    [1; 32]
                })
            });
            started_rx.recv().expect("the first worker hashes");
            let second = scope.spawn(|| {
                hashing.digest_once(&same, || {
                    hashes.fetch_add(1, Ordering::SeqCst);
                    [2; 32]
                })
            });
            let third = scope.spawn(|| {
                hashing.digest_once(&other, || {
                    hashes.fetch_add(1, Ordering::SeqCst);
                    [3; 32]
                })
            });
            assert_eq!(first.join().expect("joins"), [1; 32]);
            assert_eq!(second.join().expect("joins"), [1; 32], "equal bytes take the digest in flight");
            assert_eq!(third.join().expect("joins"), [3; 32], "other bytes are hashed on their own");
        });
        assert_eq!(hashes.load(Ordering::SeqCst), 2);
        assert!(hashing.chunks.lock().expect("lock").is_empty(), "nothing left in flight");
        // Not in flight any more: hashed again.
        assert_eq!(hashing.digest_once(&same, || [4; 32]), [4; 32]);
    }
}
