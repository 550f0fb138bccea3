//! Restoring: images from fixed indexes (in parallel, sparse on files), streams from dynamic
//! indexes as `Read + Seek`, and blobs. Every chunk is checked against its digest.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use sha2::{Digest as _, Sha256};

use crate::error::{Error, IoContext};
use crate::index::{DynamicIndex, FixedIndex};
use crate::key::{CryptConfig, KeyFile, chunk_digest};
use crate::snapshot::{Manifest, SnapshotRef, load_manifest};
use crate::{ChunkStore, Digest, blob, hex};

/// The key configuration a snapshot needs: `Ok(None)` for a plain snapshot; an error when an
/// encrypted one is opened without its key or with another key.
pub fn crypt_for(manifest: &Manifest, snap: &SnapshotRef, key: Option<&KeyFile>) -> Result<Option<CryptConfig>, Error> {
    let Some(expected) = &manifest.key_fingerprint else { return Ok(None) };
    let key = key.ok_or_else(|| Error::KeyRequired(snap.to_string()))?;
    let crypt = CryptConfig::new(key);
    let given = crypt.fingerprint();
    if &given != expected {
        return Err(Error::WrongKey { snapshot: snap.to_string(), given, expected: expected.clone() });
    }
    Ok(Some(crypt))
}

/// Reads a file of a finished snapshot, checking it against the manifest.
pub(crate) fn read_checked(
    store: &ChunkStore,
    snap: &SnapshotRef,
    manifest: &Manifest,
    file: &str,
) -> Result<Vec<u8>, Error> {
    let path = snap.path(store).join(file);
    let entry = manifest.file(file).ok_or_else(|| Error::Invalid(format!("snapshot {snap} has no file {file}")))?;
    let bytes = fs::read(&path).at(&path)?;
    if hex(&Sha256::digest(&bytes)) != entry.csum {
        return Err(Error::corrupt(&path, "checksum does not match the manifest"));
    }
    Ok(bytes)
}

/// Loads and decodes a chunk, checking its digest.
pub fn load_chunk(store: &ChunkStore, crypt: Option<&CryptConfig>, digest: &Digest) -> Result<Vec<u8>, Error> {
    let stored = store.read_chunk(digest)?;
    let path = store.chunk_path(digest);
    let data = blob::decode(&stored, crypt).map_err(|e| Error::corrupt(&path, e.to_string()))?;
    if chunk_digest(crypt, &data) != *digest {
        return Err(Error::corrupt(&path, "chunk data does not match its digest"));
    }
    Ok(data)
}

/// Reads a blob (`<name>.blob`) of a snapshot.
pub fn read_blob(store: &ChunkStore, snap: &SnapshotRef, name: &str, key: Option<&KeyFile>) -> Result<Vec<u8>, Error> {
    let manifest = load_manifest(store, snap)?;
    let crypt = crypt_for(&manifest, snap, key)?;
    let file = format!("{name}.blob");
    let stored = read_checked(store, snap, &manifest, &file)?;
    blob::decode(&stored, crypt.as_ref()).map_err(|e| Error::corrupt(snap.path(store).join(file), e.to_string()))
}

/// What a restore did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreStats {
    pub size: u64,
    pub chunks: usize,
    /// Chunks that were all zero and left as holes.
    pub sparse_chunks: usize,
}

fn load_fixed(
    store: &ChunkStore,
    snap: &SnapshotRef,
    name: &str,
    key: Option<&KeyFile>,
) -> Result<(FixedIndex, Option<CryptConfig>), Error> {
    let manifest = load_manifest(store, snap)?;
    let crypt = crypt_for(&manifest, snap, key)?;
    let file = format!("{name}.img.fidx");
    read_checked(store, snap, &manifest, &file)?;
    Ok((FixedIndex::load(&snap.path(store).join(file))?, crypt))
}

/// Restores image `name` of a snapshot to `target`. A regular file (created if missing) is
/// truncated to the image size and all-zero chunks are skipped, leaving holes; a block device
/// gets every byte. Chunks are fetched and decoded by one thread per CPU. The key is checked
/// before the target is touched.
pub fn restore_image(
    store: &ChunkStore,
    snap: &SnapshotRef,
    name: &str,
    key: Option<&KeyFile>,
    target: &Path,
) -> Result<RestoreStats, Error> {
    restore_image_with(store, snap, name, key, target, crate::meter::no_hook())
}

/// [`restore_image`], calling `hook` with every slot's length once it is restored.
pub fn restore_image_with(
    store: &ChunkStore,
    snap: &SnapshotRef,
    name: &str,
    key: Option<&KeyFile>,
    target: &Path,
    hook: crate::meter::ReadHook<'_>,
) -> Result<RestoreStats, Error> {
    let (index, crypt) = load_fixed(store, snap, name, key)?;
    let is_device = fs::metadata(target).map(|m| m.file_type().is_block_device()).unwrap_or(false);
    let file = OpenOptions::new().write(true).create(!is_device).truncate(!is_device).open(target).at(target)?;
    if !is_device {
        file.set_len(index.size).at(target)?;
    }
    let next = AtomicUsize::new(0);
    let sparse = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    // Twice the CPUs: a worker waiting for the page cache to take its chunk (dirty-page
    // throttling) leaves its CPU to one that decodes.
    let workers = 2 * thread::available_parallelism().map_or(2, usize::from);
    // Full all-zero slots are known by their digest: a file keeps them as holes without
    // reading or decompressing anything.
    let zero_digest = chunk_digest(crypt.as_ref(), &vec![0u8; index.chunk_size as usize]);
    let results: Vec<Result<(), Error>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<(), Error> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= index.digests.len() || failed.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        let result = (|| {
                            let (start, end) = index.slot_range(i);
                            if !is_device && index.digests[i] == zero_digest && end - start == index.chunk_size {
                                sparse.fetch_add(1, Ordering::Relaxed);
                                hook(end - start);
                                return Ok(());
                            }
                            let data = load_chunk(store, crypt.as_ref(), &index.digests[i])?;
                            if data.len() as u64 != end - start {
                                return Err(Error::corrupt(
                                    store.chunk_path(&index.digests[i]),
                                    "chunk size does not match its slot",
                                ));
                            }
                            if !is_device && is_zero(&data) {
                                sparse.fetch_add(1, Ordering::Relaxed);
                                hook(end - start);
                                return Ok(());
                            }
                            file.write_all_at(&data, start).at(target)?;
                            // Write-back of this slot starts now, beside the decoding of the
                            // next ones, so the final fdatasync finds little left to write.
                            // Only a hint: where the kernel refuses it, fdatasync does it all.
                            let _ = hearth_sys::writeback::start_writeback(&file, start, end - start);
                            hook(end - start);
                            Ok(())
                        })();
                        if result.is_err() {
                            failed.store(true, Ordering::Relaxed);
                            return result;
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("restore workers do not panic")).collect()
    });
    results.into_iter().collect::<Result<Vec<()>, Error>>()?;
    // The data of this one file, not the whole file system; its size was set above and is
    // metadata fdatasync covers.
    file.sync_data().at(target)?;
    Ok(RestoreStats { size: index.size, chunks: index.digests.len(), sparse_chunks: sparse.into_inner() })
}

pub(crate) fn is_zero(data: &[u8]) -> bool {
    let words = data.chunks_exact(16);
    words.remainder().iter().all(|&b| b == 0)
        && words.into_iter().all(|w| u128::from_ne_bytes(w.try_into().expect("16 bytes")) == 0)
}

/// Where chunk boundaries lie in an archive.
#[derive(Debug)]
enum Layout {
    Fixed(FixedIndex),
    Dynamic(DynamicIndex),
}

impl Layout {
    fn len(&self) -> u64 {
        match self {
            Layout::Fixed(f) => f.size,
            Layout::Dynamic(d) => d.size(),
        }
    }

    /// The digest of chunk `i`, if there is one.
    fn digest(&self, i: usize) -> Option<Digest> {
        match self {
            Layout::Fixed(f) => f.digests.get(i).copied(),
            Layout::Dynamic(d) => d.entries.get(i).map(|e| e.1),
        }
    }

    /// The chunk holding `offset`: its number, start and digest.
    fn chunk_at(&self, offset: u64) -> Option<(usize, u64, Digest)> {
        match self {
            Layout::Fixed(f) => {
                let i = (offset / f.chunk_size) as usize;
                (offset < f.size).then(|| (i, f.slot_range(i).0, f.digests[i]))
            }
            Layout::Dynamic(d) => {
                let i = d.chunk_at(offset)?;
                Some((i, d.chunk_range(i).0, d.entries[i].1))
            }
        }
    }
}

/// An archive (image or stream) of a snapshot, readable and seekable; chunks are fetched on
/// demand, one cached, and the next one is read and decoded ahead on another thread while the
/// caller consumes the current one (restores read archives front to back).
#[derive(Debug)]
pub struct ArchiveReader {
    store: ChunkStore,
    crypt: Option<Arc<CryptConfig>>,
    layout: Layout,
    pos: u64,
    cached: Option<(usize, u64, Vec<u8>)>,
    ahead: Option<(usize, ChunkAhead)>,
}

/// A chunk being read and decoded on another thread.
type ChunkAhead = thread::JoinHandle<Result<Vec<u8>, Error>>;

impl ArchiveReader {
    /// Opens `<name>.didx` (a stream) of a snapshot.
    pub fn open_stream(
        store: &ChunkStore,
        snap: &SnapshotRef,
        name: &str,
        key: Option<&KeyFile>,
    ) -> Result<ArchiveReader, Error> {
        let manifest = load_manifest(store, snap)?;
        let crypt = crypt_for(&manifest, snap, key)?;
        let file = format!("{name}.didx");
        read_checked(store, snap, &manifest, &file)?;
        let layout = Layout::Dynamic(DynamicIndex::load(&snap.path(store).join(file))?);
        Ok(ArchiveReader::new(store, crypt, layout))
    }

    /// Opens `<name>.img.fidx` (an image) of a snapshot for reading.
    pub fn open_image(
        store: &ChunkStore,
        snap: &SnapshotRef,
        name: &str,
        key: Option<&KeyFile>,
    ) -> Result<ArchiveReader, Error> {
        let (index, crypt) = load_fixed(store, snap, name, key)?;
        Ok(ArchiveReader::new(store, crypt, Layout::Fixed(index)))
    }

    fn new(store: &ChunkStore, crypt: Option<CryptConfig>, layout: Layout) -> ArchiveReader {
        ArchiveReader { store: store.clone(), crypt: crypt.map(Arc::new), layout, pos: 0, cached: None, ahead: None }
    }

    /// Chunk `i`: taken from the read-ahead when it is the one fetched, else read now. Then
    /// the chunk after it is fetched ahead.
    fn load(&mut self, i: usize, digest: &Digest) -> Result<Vec<u8>, Error> {
        let data = match self.ahead.take() {
            Some((j, handle)) if j == i => handle.join().expect("read-ahead does not panic")?,
            // A seek elsewhere: the read-ahead is dropped (its thread ends on its own).
            _ => load_chunk(&self.store, self.crypt.as_deref(), digest)?,
        };
        if let Some(next) = self.layout.digest(i + 1) {
            let (store, crypt) = (self.store.clone(), self.crypt.clone());
            let spawned = thread::Builder::new()
                .name("restore-ahead".into())
                .spawn(move || load_chunk(&store, crypt.as_deref(), &next));
            // Without a thread, the next chunk is simply read when it is asked for.
            self.ahead = spawned.ok().map(|handle| (i + 1, handle));
        }
        Ok(data)
    }

    pub fn len(&self) -> u64 {
        self.layout.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Read for ArchiveReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some((i, start, digest)) = self.layout.chunk_at(self.pos) else { return Ok(0) };
        if self.cached.as_ref().is_none_or(|c| c.0 != i) {
            let data = self.load(i, &digest).map_err(io::Error::other)?;
            self.cached = Some((i, start, data));
        }
        let (_, start, data) = self.cached.as_ref().expect("just filled");
        let within = (self.pos - start) as usize;
        let n = buf.len().min(data.len().saturating_sub(within));
        if n == 0 {
            return Err(io::Error::other("chunk shorter than its index entry"));
        }
        buf[..n].copy_from_slice(&data[within..within + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for ArchiveReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

/// Copies an image of a snapshot into any writer, zeros included.
pub fn restore_image_to(
    store: &ChunkStore,
    snap: &SnapshotRef,
    name: &str,
    key: Option<&KeyFile>,
    out: &mut impl Write,
) -> Result<u64, Error> {
    let mut reader = ArchiveReader::open_image(store, snap, name, key)?;
    io::copy(&mut reader, out).map_err(|e| Error::io(snap.path(store).join(name), e))
}

/// Opens a plain file for restoring into, failing if it exists (helper for callers).
pub fn create_target(path: &Path) -> Result<File, Error> {
    OpenOptions::new().write(true).create_new(true).open(path).at(path)
}
