//! hearth-backup on its own, without hearthd: the chunk store, snapshots, verify, prune, GC,
//! trees and vzdump archives, on real files in temporary directories.

#![allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use hearth_backup::gc::{GcOptions, gc};
use hearth_backup::snapshot::{list_snapshots, set_protected};
use hearth_backup::writer::DirtyMap;
use hearth_backup::{BackupType, BackupWriter, ChunkStore, Error, KeyFile, SnapshotRef, restore, tree, verify, vzdump};
use hearth_core::prune::KeepOptions;

const MIB: u64 = 1 << 20;
const T0: i64 = 1_725_796_801;

/// A small deterministic generator (xorshift) for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        self.fill(&mut v);
        v
    }
}

/// An image of `mib` MiB: random data with zero regions and some text.
fn make_image(path: &Path, mib: u64, seed: u64) {
    let file = File::create(path).unwrap();
    file.set_len(mib * MIB).unwrap();
    let mut rng = Rng(seed);
    for i in 0..mib {
        match (i, i % 3) {
            (12..16 | 32..36, _) | (_, 2) => {} // zero
            (_, 0) => file.write_all_at(&rng.bytes(MIB as usize), i * MIB).unwrap(),
            _ => file.write_all_at(&b"structured text line 1234\n".repeat(41_000)[..MIB as usize], i * MIB).unwrap(),
        }
    }
}

fn store(dir: &Path) -> ChunkStore {
    ChunkStore::create(&dir.join("store")).unwrap()
}

fn backup_image(
    store: &ChunkStore,
    id: &str,
    time: i64,
    image: &Path,
    key: Option<&KeyFile>,
    dirty: Option<&DirtyMap>,
) -> hearth_backup::BackupStats {
    let mut w = BackupWriter::start(store, BackupType::Vm, id, time, key).unwrap();
    w.add_image("drive-scsi0", image, dirty).unwrap();
    w.add_blob("qemu-server.conf", b"memory: 512\n").unwrap();
    w.finish(Some("nightly")).unwrap()
}

fn chunk_files(store: &ChunkStore) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in fs::read_dir(store.root().join(".chunks")).unwrap() {
        for f in fs::read_dir(dir.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out.sort();
    out
}

#[test]
fn image_round_trip_is_bit_identical_and_sparse() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.raw");
    make_image(&image, 40, 1);
    let store = store(dir.path());
    let key = KeyFile::generate(T0).unwrap();
    for (i, key) in [None, Some(&key)].into_iter().enumerate() {
        let id = format!("10{i}");
        let stats = backup_image(&store, &id, T0, &image, key, None);
        assert_eq!(stats.archives[0].1.size, 40 * MIB);
        assert_eq!(stats.archives[0].1.zero_chunks, 2, "slots 3..4 MiB-aligned zero: 12-16, 32-36 MiB");
        let snap = stats.snapshot;
        let target = dir.path().join(format!("restored{i}.raw"));
        let r = restore::restore_image(&store, &snap, "drive-scsi0", key, &target).unwrap();
        assert_eq!(fs::read(&target).unwrap(), fs::read(&image).unwrap());
        assert_eq!(r.sparse_chunks, 2);
        let meta = fs::metadata(&target).unwrap();
        // 32 MiB of data; the file system may add a block or two of extent tree on top, while
        // writing the two zero chunks would make it 40 MiB.
        assert!(meta.blocks() * 512 <= 33 * MIB, "zero chunks are holes: {} bytes allocated", meta.blocks() * 512);
        let mut streamed = Vec::new();
        restore::restore_image_to(&store, &snap, "drive-scsi0", key, &mut streamed).unwrap();
        assert_eq!(streamed, fs::read(&image).unwrap());
        assert_eq!(restore::read_blob(&store, &snap, "qemu-server.conf", key).unwrap(), b"memory: 512\n");
        assert_eq!(hearth_backup::snapshot::notes(&store, &snap).unwrap().as_deref(), Some("nightly"));
    }
    // Encrypted chunks are named by keyed digests: nothing is shared with the plain backup.
    let listed = list_snapshots(&store, BackupType::Vm, "101").unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].manifest.as_ref().unwrap().key_fingerprint.is_some());
}

#[test]
fn vma_archive_round_trip_is_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.raw"), dir.path().join("b.raw"));
    make_image(&a, 13, 2);
    File::create(&b).unwrap().set_len(3 * MIB + 4097).unwrap();
    File::options().write(true).open(&b).unwrap().write_all_at(b"tail", 3 * MIB + 4000).unwrap();
    let out = dir.path().join("dump");
    fs::create_dir(&out).unwrap();
    let options = vzdump::ArchiveOptions {
        time: T0,
        utc_offset: 7200,
        notes: Some("before upgrade".into()),
        protected: true,
        zstd_threads: 2,
        ..Default::default()
    };
    let archive = vzdump::write_vma(&out, 100, "memory: 512\n", &[("scsi0", &a), ("scsi1", &b)], &options).unwrap();
    assert_eq!(archive.path.file_name().unwrap(), "vzdump-qemu-100-2024_09_08-14_00_01.vma.zst");
    let parsed = hearth_core::storage::parse_backup_name(archive.path.file_name().unwrap().to_str().unwrap()).unwrap();
    assert_eq!(parsed.vmid.to_string(), "100");
    assert!(archive.log.exists() && out.join("vzdump-qemu-100-2024_09_08-14_00_01.vma.zst.notes").exists());
    assert!(out.join("vzdump-qemu-100-2024_09_08-14_00_01.vma.zst.protected").exists());
    let header = vzdump::read_vma_header(&archive.path).unwrap();
    assert_eq!(header.config, "memory: 512\n");
    let restored = dir.path().join("restored");
    fs::create_dir(&restored).unwrap();
    vzdump::extract_vma(&archive.path, |name| restored.join(format!("{name}.raw"))).unwrap();
    assert_eq!(fs::read(restored.join("scsi0.raw")).unwrap(), fs::read(&a).unwrap());
    assert_eq!(fs::read(restored.join("scsi1.raw")).unwrap(), fs::read(&b).unwrap());
    assert!(fs::metadata(restored.join("scsi1.raw")).unwrap().blocks() * 512 < MIB, "zero regions stay holes");
    // A truncated archive is refused.
    let bytes = fs::read(&archive.path).unwrap();
    let cut = dir.path().join("cut.vma.zst");
    fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert!(vzdump::extract_vma(&cut, |name| restored.join(format!("{name}.cut"))).is_err());
}

/// Everything a walker sees of a tree, keyed by relative path.
fn walk(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes: HashMap<u64, String> = HashMap::new();
    fn visit(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>, inodes: &mut HashMap<u64, String>) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let m = fs::symlink_metadata(&path).unwrap();
            let mut xattrs: Vec<String> = xattr::list(&path)
                .map(|names| {
                    names
                        .filter(|n| n.to_string_lossy().starts_with("user."))
                        .map(|n| format!("{}={:?}", n.to_string_lossy(), xattr::get(&path, &n).unwrap()))
                        .collect()
                })
                .unwrap_or_default();
            xattrs.sort();
            let link = if m.nlink() > 1 && m.is_file() {
                // Hard links: name the first path of the inode, so both trees agree on groups.
                inodes.entry(m.ino()).or_insert_with(|| rel.clone()).clone()
            } else {
                String::new()
            };
            let content = if m.file_type().is_symlink() {
                fs::read_link(&path).unwrap().to_string_lossy().into_owned()
            } else if m.is_file() {
                format!("{:x}", hash(&fs::read(&path).unwrap()))
            } else {
                String::new()
            };
            let sparse = m.is_file() && m.blocks() * 512 < m.size();
            let mtime = if m.file_type().is_symlink() { 0 } else { m.mtime() };
            out.insert(
                rel,
                format!(
                    "mode={:o} uid={} gid={} size={} mtime={} rdev={} nlink={} link={link} sparse={sparse} xattrs={xattrs:?} content={content}",
                    m.mode(), m.uid(), m.gid(), if m.is_dir() { 0 } else { m.size() }, mtime, m.rdev(), m.nlink()
                ),
            );
            if m.is_dir() {
                visit(root, &path, out, inodes);
            }
        }
    }
    visit(root, root, &mut out, &mut inodes);
    out
}

fn hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3))
}

fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("etc/sub")).unwrap();
    fs::create_dir_all(root.join("dev")).unwrap();
    fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    fs::write(root.join("etc/sub/big"), Rng(9).bytes(3 << 20)).unwrap();
    fs::hard_link(root.join("etc/passwd"), root.join("etc/passwd.link")).unwrap();
    std::os::unix::fs::symlink("../etc/passwd", root.join("dev/pw")).unwrap();
    std::os::unix::fs::chown(root.join("etc/passwd"), Some(1234), Some(5678)).unwrap();
    fs::set_permissions(root.join("etc/sub/big"), std::os::unix::fs::PermissionsExt::from_mode(0o4751)).unwrap();
    xattr::set(root.join("etc/sub/big"), "user.comment", b"hello").unwrap();
    let sparse = File::create(root.join("etc/sparse")).unwrap();
    sparse.set_len(64 * MIB).unwrap();
    sparse.write_all_at(b"middle", 32 * MIB).unwrap();
    hearth_test::require_root("mknod of a device node");
    let status = Command::new("mknod").arg(root.join("dev/null0")).args(["c", "1", "3"]).status().unwrap();
    assert!(status.success(), "mknod needs root");
    Command::new("touch").args(["-h", "-d", "2020-01-02 03:04:05"]).arg(root.join("dev/pw")).status().unwrap();
    for p in ["etc/passwd", "etc", ""] {
        Command::new("touch").args(["-d", "2021-05-06 07:08:09"]).arg(root.join(p)).status().unwrap();
    }
}

#[test]
fn tree_round_trip_keeps_metadata_and_file_restore_works() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("rootfs");
    make_tree(&src);
    let store = store(dir.path());
    let mut w = BackupWriter::start(&store, BackupType::Ct, "200", T0, None).unwrap();
    tree::add_tree(&mut w, "root.tar", &src).unwrap();
    let snap = w.finish(None).unwrap().snapshot;

    let dest = dir.path().join("restored");
    tree::restore_tree(&store, &snap, "root.tar", None, &dest).unwrap();
    assert_eq!(walk(&dest), walk(&src));

    let listed: Vec<String> =
        tree::list(&store, &snap, "root.tar", None, "/etc").unwrap().into_iter().map(|e| e.path).collect();
    assert_eq!(listed, ["etc/passwd", "etc/passwd.link", "etc/sparse", "etc/sub"]);
    let catalog = tree::catalog(&store, &snap, "root.tar", None).unwrap();
    let sparse = catalog.iter().find(|e| e.path == "etc/sparse").unwrap();
    assert_eq!(sparse.size, 64 * MIB);
    let passwd = catalog.iter().find(|e| e.path == "etc/passwd").unwrap();
    assert_eq!((passwd.uid, passwd.gid), (1234, 5678));

    let partial = dir.path().join("partial");
    tree::extract(&store, &snap, "root.tar", None, &["etc/passwd.link", "etc/sub"], &partial).unwrap();
    assert_eq!(fs::read(partial.join("etc/passwd.link")).unwrap(), fs::read(src.join("etc/passwd")).unwrap());
    assert_eq!(fs::read(partial.join("etc/sub/big")).unwrap(), fs::read(src.join("etc/sub/big")).unwrap());
    assert_eq!(xattr::get(partial.join("etc/sub/big"), "user.comment").unwrap().unwrap(), b"hello");
    assert!(!partial.join("etc/sparse").exists() && !partial.join("dev").exists());

    // The same tree as a vzdump container archive.
    let out = dir.path().join("dump");
    fs::create_dir(&out).unwrap();
    let options = vzdump::ArchiveOptions { time: T0, ..Default::default() };
    let archive = vzdump::write_lxc(&out, 200, "hostname: ct200\n", &src, &options).unwrap();
    assert!(archive.path.to_string_lossy().ends_with("vzdump-lxc-200-2024_09_08-12_00_01.tar.zst"));
    let from_archive = dir.path().join("from-archive");
    assert_eq!(vzdump::extract_lxc(&archive.path, &from_archive).unwrap(), "hostname: ct200\n");
    assert_eq!(walk(&from_archive), walk(&src));
}

#[test]
fn second_backup_after_changing_five_percent_writes_five_percent() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.raw");
    let file = File::create(&image).unwrap();
    file.write_all_at(&Rng(3).bytes(160 * MIB as usize), 0).unwrap();
    let store = store(dir.path());
    let first = backup_image(&store, "100", T0, &image, None, None);
    assert_eq!((first.chunks(), first.new_chunks()), (40, 40));
    // Change 2 of 40 slots (5 %).
    let mut dirty = DirtyMap::clean(40);
    for slot in [7u64, 31] {
        file.write_all_at(&Rng(slot).bytes(4096), slot * 4 * MIB + 100).unwrap();
        dirty.set_range(slot * 4 * MIB + 100, 4096);
    }
    let second = backup_image(&store, "100", T0 + 3600, &image, None, None);
    assert_eq!(second.base.as_ref().map(|s| s.time), Some(T0));
    assert_eq!((second.chunks(), second.new_chunks()), (40, 2));
    assert_eq!(second.archives[0].1.existing_chunks, 38);
    // With a dirty map only the dirty slots are read.
    file.write_all_at(b"again", 7 * 4 * MIB).unwrap();
    let mut dirty = DirtyMap::clean(40);
    dirty.set_range(7 * 4 * MIB, 5);
    let third = backup_image(&store, "100", T0 + 7200, &image, None, Some(&dirty));
    let a = &third.archives[0].1;
    assert_eq!((a.clean_slots, a.bytes_read, a.new_chunks), (39, 4 * MIB, 1));
    let target = dir.path().join("r.raw");
    restore::restore_image(&store, &third.snapshot, "drive-scsi0", None, &target).unwrap();
    assert_eq!(fs::read(&target).unwrap(), fs::read(&image).unwrap());

    // Streams: FastCDC re-synchronises after an insertion.
    let mut data = Rng(4).bytes(96 * MIB as usize);
    let mut w = BackupWriter::start(&store, BackupType::Ct, "300", T0, None).unwrap();
    let s1 = w.add_stream("root.tar", &data[..]).unwrap();
    w.finish(None).unwrap();
    let insert = Rng(5).bytes(5 * MIB as usize / 2);
    data.splice(40 * MIB as usize..40 * MIB as usize, insert);
    let mut w = BackupWriter::start(&store, BackupType::Ct, "300", T0 + 60, None).unwrap();
    let s2 = w.add_stream("root.tar", &data[..]).unwrap();
    let snap = w.finish(None).unwrap().snapshot;
    assert!(s1.chunks >= 10);
    assert!(s2.new_chunks <= 3, "{} of {} chunks new", s2.new_chunks, s2.chunks);
    let mut back = Vec::new();
    restore::ArchiveReader::open_stream(&store, &snap, "root.tar", None).unwrap().read_to_end(&mut back).unwrap();
    assert!(back == data);
}

#[test]
fn verify_detects_a_corrupted_chunk_and_the_next_backup_heals_it() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.raw");
    make_image(&image, 20, 6);
    let store = store(dir.path());
    let snap = backup_image(&store, "100", T0, &image, None, None).snapshot;
    assert!(verify::verify_snapshot(&store, &snap, None, T0).unwrap().ok());
    let victim = chunk_files(&store).into_iter().next().unwrap();
    let mut bytes = fs::read(&victim).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    fs::write(&victim, bytes).unwrap();
    let report = verify::verify_snapshot(&store, &snap, None, T0).unwrap();
    assert_eq!(report.bad_chunks.len(), 1);
    assert!(!victim.exists());
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();
    assert!(victim.with_file_name(format!("{name}.0.bad")).exists());
    let info = &list_snapshots(&store, BackupType::Vm, "100").unwrap()[0];
    assert!(!info.verify.as_ref().unwrap().ok);
    // The next backup does not build on the failed snapshot, and writes the chunk again.
    let next = backup_image(&store, "100", T0 + 60, &image, None, None);
    assert_eq!(next.base, None);
    assert_eq!(next.new_chunks(), 1);
    assert!(victim.exists());
    assert!(verify::verify_snapshot(&store, &snap, None, T0 + 120).unwrap().ok());
    // GC drops the bad copy now that a good one exists.
    let stats = gc(&store, &GcOptions { safety_margin: Duration::ZERO }).unwrap();
    assert_eq!(stats.removed_bad, 1);
}

#[test]
fn wrong_or_missing_key_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.raw");
    make_image(&image, 8, 7);
    let store = store(dir.path());
    let key_path = dir.path().join("key.json");
    let key = KeyFile::generate(T0).unwrap();
    key.save(&key_path).unwrap();
    assert_eq!(fs::metadata(&key_path).unwrap().mode() & 0o777, 0o600);
    let key = KeyFile::load(&key_path).unwrap();
    let snap = backup_image(&store, "100", T0, &image, Some(&key), None).snapshot;
    let other = KeyFile::generate(T0).unwrap();
    let target = dir.path().join("target.raw");
    let err = restore::restore_image(&store, &snap, "drive-scsi0", Some(&other), &target).unwrap_err();
    assert!(matches!(err, Error::WrongKey { .. }), "{err}");
    let err = restore::restore_image(&store, &snap, "drive-scsi0", None, &target).unwrap_err();
    assert!(matches!(err, Error::KeyRequired(_)), "{err}");
    assert!(!target.exists(), "nothing written");
    assert!(restore::read_blob(&store, &snap, "qemu-server.conf", Some(&other)).is_err());
    fs::write(
        dir.path().join("bad.json"),
        b"{\"format\":\"hearth-backup-key-v1\",\"created\":0,\"key\":\"zz\",\"fingerprint\":\"\"}",
    )
    .unwrap();
    assert!(KeyFile::load(&dir.path().join("bad.json")).is_err());
    // Verify without the key checks CRCs; with the wrong key it refuses.
    assert!(verify::verify_snapshot(&store, &snap, None, T0).unwrap().ok());
    assert!(verify::verify_snapshot(&store, &snap, Some(&other), T0).is_err());
}

/// A reader that hands out `first` bytes, then waits for a signal before the rest.
struct GatedReader {
    data: Vec<u8>,
    pos: usize,
    first: usize,
    reached: Option<mpsc::Sender<()>>,
    gate: mpsc::Receiver<()>,
}

impl Read for GatedReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.first {
            if let Some(reached) = self.reached.take() {
                reached.send(()).unwrap();
                self.gate.recv().unwrap();
            }
        }
        let end = if self.pos < self.first { self.first } else { self.data.len() };
        let n = buf.len().min(end - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn age_all_chunks(store: &ChunkStore) {
    for path in chunk_files(store) {
        Command::new("touch").args(["-a", "-d", "2 hours ago"]).arg(&path).status().unwrap();
    }
}

#[test]
fn gc_concurrent_with_a_writer_keeps_the_writers_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let data = Rng(8).bytes(64 * MIB as usize);
    // A first backup of the data, then pruned away: its chunks are garbage, and old.
    let mut w = BackupWriter::start(&store, BackupType::Ct, "400", T0, None).unwrap();
    let first = w.add_stream("root.tar", &data[..]).unwrap();
    let snap = w.finish(None).unwrap().snapshot;
    hearth_backup::snapshot::remove_snapshot(&store, &snap).unwrap();
    age_all_chunks(&store);

    // A second backup of the same data runs; GC runs while it is half-way.
    let (reached_tx, reached_rx) = mpsc::channel();
    let (gate_tx, gate_rx) = mpsc::channel();
    let reader =
        GatedReader { data: data.clone(), pos: 0, first: 32 * MIB as usize, reached: Some(reached_tx), gate: gate_rx };
    let writer_store = store.clone();
    let writer = std::thread::spawn(move || {
        let mut w = BackupWriter::start(&writer_store, BackupType::Ct, "400", T0 + 60, None).unwrap();
        w.set_workers(1);
        let stats = w.add_stream("root.tar", reader).unwrap();
        (w.finish(None).unwrap(), stats)
    });
    reached_rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(300)); // let the workers store what was chunked
    let stats = gc(&store, &GcOptions { safety_margin: Duration::ZERO }).unwrap();
    gate_tx.send(()).unwrap();
    let (done, second) = writer.join().unwrap();
    assert!(stats.removed_chunks > 0, "GC removed the chunks nobody had touched yet: {stats:?}");
    assert!(stats.removed_chunks < first.chunks, "but not the ones the writer touched: {stats:?}");
    assert_eq!(second.new_chunks, stats.removed_chunks, "the writer re-inserted exactly what GC removed");
    assert!(verify::verify_snapshot(&store, &done.snapshot, None, T0).unwrap().ok());
    // A GC now keeps everything: all chunks are referenced.
    age_all_chunks(&store);
    let after = gc(&store, &GcOptions { safety_margin: Duration::ZERO }).unwrap();
    assert_eq!(after.removed_chunks, 0);
    assert!(verify::verify_snapshot(&store, &done.snapshot, None, T0).unwrap().ok());
    // A registered writer holds back the cutoff even for unreferenced old chunks.
    hearth_backup::snapshot::remove_snapshot(&store, &done.snapshot).unwrap();
    age_all_chunks(&store);
    let guard = store.register_writer().unwrap();
    let held = gc(&store, &GcOptions { safety_margin: Duration::from_secs(3 * 3600) }).unwrap();
    assert_eq!(held.removed_chunks, 0);
    drop(guard);
    let swept = gc(&store, &GcOptions { safety_margin: Duration::ZERO }).unwrap();
    assert_eq!(swept.removed_chunks, first.chunks);
}

/// Proxmox's prune rules restated plainly: newest first; keep-last, then hourly, daily,
/// weekly, monthly, yearly in turn; each keeps the newest snapshot of up to N periods not yet
/// covered by a kept snapshot; protected ones are never removed nor counted.
fn expected_kept(times: &[(i64, bool)], keep: [u64; 6]) -> Vec<i64> {
    let mut sorted: Vec<(i64, bool)> = times.to_vec();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.0));
    let period = |rule: usize, t: i64| -> String {
        let f = |fmt: &str| {
            let out = Command::new("date").args(["-u", "-d", &format!("@{t}"), &format!("+{fmt}")]).output().unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        match rule {
            0 => t.to_string(),
            1 => f("%Y/%m/%d/%H"),
            2 => f("%Y/%m/%d"),
            3 => f("%G/%V"),
            4 => f("%Y/%m"),
            _ => f("%Y"),
        }
    };
    let mut state: Vec<Option<bool>> = sorted.iter().map(|(_, p)| p.then_some(true)).collect();
    let mut kept_periods: Vec<std::collections::HashSet<String>> = vec![Default::default(); 6];
    for (rule, &n) in keep.iter().enumerate() {
        let covered: std::collections::HashSet<String> = sorted
            .iter()
            .zip(&state)
            .filter(|(s, st)| **st == Some(true) && !s.1)
            .map(|(s, _)| period(rule, s.0))
            .collect();
        let mut new = std::collections::HashSet::new();
        for (i, s) in sorted.iter().enumerate() {
            if state[i].is_some() || n == 0 {
                continue;
            }
            let p = period(rule, s.0);
            if covered.contains(&p) {
                continue;
            }
            if new.contains(&p) {
                state[i] = Some(false);
            } else if (new.len() as u64) < n {
                new.insert(p);
                state[i] = Some(true);
            } else {
                break;
            }
        }
        kept_periods[rule] = new;
    }
    let mut kept: Vec<i64> =
        sorted.iter().zip(&state).filter(|(s, st)| **st == Some(true) && !s.1).map(|(s, _)| s.0).collect();
    kept.sort();
    kept
}

#[test]
fn prune_over_random_histories_matches_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.raw");
    fs::write(&image, b"tiny image").unwrap();
    let store = store(dir.path());
    let mut rng = Rng(11);
    for round in 0..12 {
        let id = format!("{}", 500 + round);
        let mut t = T0 - 400 * 86_400;
        let mut history = Vec::new();
        for _ in 0..(10 + rng.next() % 25) {
            t += (rng.next() % (20 * 86_400)) as i64 + 1;
            let protected = rng.next().is_multiple_of(9);
            let snap = backup_image(&store, &id, t, &image, None, None).snapshot;
            if protected {
                set_protected(&store, &snap, true).unwrap();
            }
            history.push((t, protected));
        }
        let keep = [rng.next() % 3, rng.next() % 3, rng.next() % 4, rng.next() % 3, rng.next() % 4, rng.next() % 2];
        let options = KeepOptions {
            all: false,
            last: Some(keep[0]),
            hourly: Some(keep[1]),
            daily: Some(keep[2]),
            weekly: Some(keep[3]),
            monthly: Some(keep[4]),
            yearly: Some(keep[5]),
        };
        if options.keeps_everything() {
            continue;
        }
        let result = hearth_backup::prune::prune_group(&store, BackupType::Vm, &id, &options, |_| 0, false).unwrap();
        let mut remaining: Vec<i64> =
            list_snapshots(&store, BackupType::Vm, &id).unwrap().iter().map(|s| s.snapshot.time).collect();
        remaining.sort();
        let mut expected = expected_kept(&history, keep);
        expected.extend(history.iter().filter(|h| h.1).map(|h| h.0));
        expected.sort();
        assert_eq!(remaining, expected, "round {round} keep {keep:?}");
        assert_eq!(result.removed.len() + remaining.len(), history.len());
        assert!(result.protected.iter().all(|s| remaining.contains(&s.time)));
    }
}

/// A tmpfs mounted on a temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn new(size: &str) -> Tmpfs {
        hearth_test::require_root("mounting a tmpfs");
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mount -t tmpfs failed");
        Tmpfs { dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn disk_full_names_the_storage_and_leaves_nothing_partial() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.raw");
    File::create(&image).unwrap().write_all_at(&Rng(12).bytes(32 * MIB as usize), 0).unwrap();
    let tmpfs = Tmpfs::new("8m");
    let store = ChunkStore::create(&tmpfs.dir.path().join("store")).unwrap();
    let mut w = BackupWriter::start(&store, BackupType::Vm, "100", T0, None).unwrap();
    let err = w.add_image("drive-scsi0", &image, None).unwrap_err();
    drop(w);
    assert!(err.to_string().contains(&store.root().display().to_string()), "{err}");
    assert!(err.to_string().contains("No space left"), "{err}");
    assert!(list_snapshots(&store, BackupType::Vm, "100").unwrap().is_empty());
    let leftovers: Vec<_> = chunk_files(&store).into_iter().filter(|p| p.to_string_lossy().contains(".tmp_")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let out = tmpfs.dir.path().join("dump");
    fs::create_dir(&out).unwrap();
    let options = vzdump::ArchiveOptions { time: T0, ..Default::default() };
    let err = vzdump::write_vma(&out, 100, "", &[("scsi0", &image)], &options).unwrap_err();
    assert!(err.to_string().contains(&out.display().to_string()), "{err}");
    assert_eq!(fs::read_dir(&out).unwrap().count(), 0, "no partial archive");
    let _ = SnapshotRef::new(BackupType::Vm, "100", T0);
}

/// Chunk files and their total size in the store.
fn chunk_usage(store: &ChunkStore) -> (usize, u64) {
    let files = chunk_files(store);
    let bytes = files.iter().map(|f| fs::metadata(f).unwrap().len()).sum();
    (files.len(), bytes)
}

#[test]
fn reported_new_chunks_and_stored_bytes_are_what_the_store_gained() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    // 12 slots of 4 MiB holding 4 distinct chunks, each twice in a row and once more later,
    // so workers meet the same chunk at the same time.
    let slot = 4 * MIB as usize;
    let patterns: Vec<Vec<u8>> = (0..4).map(|i| Rng(0x9e37_79b9 + i).bytes(slot)).collect();
    let layout: Vec<usize> = (0..4).flat_map(|i| [i, i]).chain([3, 2, 1, 0]).collect();
    let image = dir.path().join("dup.raw");
    let file = File::create(&image).unwrap();
    for (n, pattern) in layout.iter().enumerate() {
        file.write_all_at(&patterns[*pattern], (n * slot) as u64).unwrap();
    }
    let before_any = chunk_usage(&store);
    for (round, workers) in [(0, 2), (1, 4)] {
        let before = chunk_usage(&store);
        let mut w = BackupWriter::start(&store, BackupType::Vm, "700", T0 + round, None).unwrap();
        w.set_workers(workers);
        let stats = w.add_image("drive-scsi0", &image, None).unwrap();
        w.finish(None).unwrap();
        let after = chunk_usage(&store);
        assert_eq!(stats.chunks, layout.len());
        assert_eq!(stats.new_chunks + stats.existing_chunks, layout.len(), "{stats:?}");
        assert_eq!(stats.new_chunks, after.0 - before.0, "round {round}: new chunks = chunk files gained: {stats:?}");
        assert_eq!(stats.stored_bytes, after.1 - before.1, "round {round}: stored bytes = bytes gained: {stats:?}");
        if round == 0 {
            assert_eq!(stats.new_chunks, 4, "each distinct chunk written once: {stats:?}");
        } else {
            assert_eq!((stats.new_chunks, stats.stored_bytes), (0, 0), "nothing new the second time: {stats:?}");
        }
    }
    assert_eq!(chunk_usage(&store).0 - before_any.0, 4);
    // The same chunks as a stream, cut by FastCDC, into a fresh store: equal again.
    let other = ChunkStore::create(&dir.path().join("store2")).unwrap();
    // The four patterns twice over: FastCDC finds the same cut points in the second copy.
    let block: Vec<u8> = patterns.concat();
    let stream = [&block[..], &block[..]].concat();
    let mut w = BackupWriter::start(&other, BackupType::Ct, "701", T0, None).unwrap();
    w.set_workers(2);
    let stats = w.add_stream("root", &stream[..]).unwrap();
    w.finish(None).unwrap();
    let (files, bytes) = chunk_usage(&other);
    assert_eq!((stats.new_chunks, stats.stored_bytes), (files, bytes), "{stats:?}");
    assert!(stats.existing_chunks > 0, "the stream repeats itself: {stats:?}");
}
