//! Tests of the btrfs backend on real btrfs loop mounts (root and btrfs-progs needed).

use std::os::unix::fs::FileExt;
use std::process::Command;

use hearth_core::storage::StorageTable;
use hearth_testfs::BtrfsLoop;

use super::*;

/// A btrfs storage `fast` on its own loop mount; the mount goes when the fixture drops.
struct Fixture {
    backend: BtrfsBackend,
    fs: BtrfsLoop,
}

fn fixture(options: &[(&str, &str)]) -> Fixture {
    let fs = BtrfsLoop::new(1 << 30).expect("a btrfs loop mount (needs root and btrfs-progs)");
    let backend = backend_at(fs.path(), options);
    Fixture { backend, fs }
}

fn backend_at(path: &Path, options: &[(&str, &str)]) -> BtrfsBackend {
    let mut table = StorageTable::fresh("/var/lib/hearth");
    let mut keys = vec![
        ("path".to_owned(), path.to_str().unwrap().to_owned()),
        ("content".to_owned(), "images,rootdir,iso".to_owned()),
    ];
    keys.extend(options.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    table.add("fast", StorageType::Btrfs, &keys).unwrap();
    BtrfsBackend::new(table.get("fast").unwrap())
}

fn vmid(n: u32) -> Vmid {
    Vmid::new(n).unwrap()
}

fn raw(vmid_: u32, size: u64) -> NewImage {
    NewImage { vmid: vmid(vmid_), name: None, format: Format::Raw, size }
}

fn subvol(vmid_: u32) -> NewImage {
    NewImage { vmid: vmid(vmid_), name: None, format: Format::Subvol, size: 0 }
}

fn parse(name: &str) -> VolName {
    VolName::parse(StorageType::Btrfs, name).unwrap()
}

/// Writes `data` at the start of a VM disk, or as `etc/hostname` of a container.
fn put(b: &BtrfsBackend, vol: &VolName, data: &str) {
    let path = b.path(vol).unwrap();
    if path.is_dir() {
        fs::create_dir_all(path.join("etc")).unwrap();
        fs::write(path.join("etc/hostname"), data).unwrap();
    } else {
        let file = File::options().write(true).open(&path).unwrap();
        file.write_all_at(format!("{data:<16}").as_bytes(), 0).unwrap();
    }
}

fn get(b: &BtrfsBackend, vol: &VolName) -> String {
    let path = b.path(vol).unwrap();
    if path.is_dir() {
        return fs::read_to_string(path.join("etc/hostname")).unwrap();
    }
    let mut buf = [0u8; 16];
    File::open(&path).unwrap().read_exact_at(&mut buf, 0).unwrap();
    String::from_utf8_lossy(&buf).trim_end().to_owned()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match fs::read_dir(dir) {
        Ok(e) => e.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

fn ids(list: &[VolumeInfo]) -> Vec<String> {
    list.iter().map(|v| v.volid.to_string()).collect()
}

#[test]
fn btrfs_snapshots_roll_back_disks_and_subvolumes() {
    let f = fixture(&[]);
    let b = &f.backend;
    let disk = b.alloc(&raw(100, 4 << 20)).unwrap();
    assert_eq!(disk.render(StorageType::Btrfs), "vm-100-disk-0");
    assert_eq!(b.path(&disk).unwrap(), f.fs.path().join("images/100/vm-100-disk-0/disk.raw"));
    assert!(sys::is_subvolume(&f.fs.path().join("images/100/vm-100-disk-0")).unwrap());
    let ct = b.alloc(&subvol(100)).unwrap();
    assert_eq!(ct.render(StorageType::Btrfs), "subvol-100-disk-1");
    assert_eq!(b.path(&ct).unwrap(), f.fs.path().join("images/100/subvol-100-disk-1"));
    assert_eq!(b.image_info(&disk).unwrap(), (Format::Raw, 4 << 20));
    assert_eq!(b.image_info(&ct).unwrap(), (Format::Subvol, 0));

    for vol in [&disk, &ct] {
        put(b, vol, "first");
        b.snapshot(vol, "s1").unwrap();
        put(b, vol, "second");
        assert_eq!(b.snapshots(vol).unwrap(), vec!["s1"]);
        b.rollback(vol, "s1").unwrap();
        assert_eq!(get(b, vol), "first");
        assert!(sys::is_subvolume(&b.subvolume(b.image(vol).unwrap().0)).unwrap());
    }
    assert!(matches!(b.snapshot(&disk, "s1"), Err(StorageError::Conflict(_))));
    assert!(matches!(b.rollback(&disk, "nope"), Err(StorageError::NotFound(_))));
    assert!(matches!(b.snapshot(&disk, "../x"), Err(StorageError::Invalid(_))));
    assert_eq!(
        entries(&f.fs.path().join("images/100")),
        vec!["subvol-100-disk-1", "subvol-100-disk-1@s1", "vm-100-disk-0", "vm-100-disk-0@s1"],
        "no temporaries left after the rollbacks"
    );
    let listed = b.list(None, None).unwrap();
    assert_eq!(ids(&listed), vec!["fast:vm-100-disk-0", "fast:subvol-100-disk-1"], "snapshots are not volumes");
    assert_eq!((listed[0].format.as_str(), listed[0].size), ("raw", 4 << 20));
    assert_eq!(b.alloc(&raw(100, 1 << 20)).unwrap().render(StorageType::Btrfs), "vm-100-disk-2");

    b.delete_snapshot(&disk, "s1").unwrap();
    assert!(b.snapshots(&disk).unwrap().is_empty());
    assert!(matches!(b.delete_snapshot(&disk, "s1"), Err(StorageError::NotFound(_))));

    let e = b.alloc(&NewImage { format: Format::Qcow2, ..raw(100, 1 << 20) }).unwrap_err();
    assert!(e.to_string().contains("allowed: raw, subvol"), "{e}");
    let e = b.alloc(&NewImage { name: Some("vm-100-disk-7".into()), ..subvol(100) }).unwrap_err();
    assert!(e.to_string().contains("subvol-<vmid>-<name>"), "{e}");

    for vol in b.list(None, Some(vmid(100))).unwrap() {
        b.free(&vol.volname).unwrap();
    }
    assert!(!f.fs.path().join("images/100").exists(), "snapshots went with their volumes");
}

#[test]
fn btrfs_linked_clones_outlive_each_other_and_pin_their_base() {
    let f = fixture(&[]);
    let b = &f.backend;
    let disk = b.alloc(&raw(100, 8 << 20)).unwrap();
    put(b, &disk, "template");
    let e = b.clone_linked(&disk, vmid(101)).unwrap_err();
    assert!(e.to_string().contains("not a base image"), "{e}");
    b.snapshot(&disk, "s1").unwrap();
    assert!(matches!(b.create_base(&disk), Err(StorageError::Conflict(_))));
    b.delete_snapshot(&disk, "s1").unwrap();
    let base = b.create_base(&disk).unwrap();
    assert_eq!(base.render(StorageType::Btrfs), "base-100-disk-0");
    assert!(sys::readonly(&f.fs.path().join("images/100/base-100-disk-0")).unwrap());
    assert!(File::options().write(true).open(b.path(&base).unwrap()).is_err(), "the base is read-only");

    let one = b.clone_linked(&base, vmid(101)).unwrap();
    let two = b.clone_linked(&base, vmid(101)).unwrap();
    assert_eq!(one.render(StorageType::Btrfs), "base-100-disk-0/vm-101-disk-0");
    assert_eq!(two.render(StorageType::Btrfs), "base-100-disk-0/vm-101-disk-1");
    assert_eq!(get(b, &one), "template");
    put(b, &one, "changed");
    assert_eq!(get(b, &base), "template");
    let listed = b.list(None, Some(vmid(101))).unwrap();
    assert_eq!(listed[0].volname, one, "the listing recovers the base");
    assert_eq!(listed[0].parent.as_ref().map(ToString::to_string).as_deref(), Some("fast:base-100-disk-0"));

    let e = b.free(&base).unwrap_err();
    assert!(
        e.to_string().contains(
            "still used by linked clones: fast:base-100-disk-0/vm-101-disk-0, fast:base-100-disk-0/vm-101-disk-1"
        ),
        "{e}"
    );
    b.free(&one).unwrap();
    assert_eq!(get(b, &two), "template", "a clone survives its sibling");
    assert!(matches!(b.free(&base), Err(StorageError::Conflict(_))));
    b.free(&two).unwrap();
    assert!(!f.fs.path().join("images/101").exists(), "sidecars go with their clones");
    b.free(&base).unwrap();
}

#[test]
fn btrfs_rename_moves_snapshots_and_resize_only_grows() {
    let f = fixture(&[]);
    let b = &f.backend;
    let vol = b.alloc(&raw(101, 1 << 20)).unwrap();
    b.alloc(&raw(102, 1 << 20)).unwrap();
    put(b, &vol, "mine");
    b.snapshot(&vol, "s1").unwrap();
    let moved = b.rename(&vol, vmid(102)).unwrap();
    assert_eq!(moved.render(StorageType::Btrfs), "vm-102-disk-1");
    assert_eq!(b.snapshots(&moved).unwrap(), vec!["s1"]);
    assert_eq!(get(b, &moved), "mine");
    assert!(!f.fs.path().join("images/101").exists());

    b.resize(&moved, 2 << 20).unwrap();
    assert_eq!(b.image_info(&moved).unwrap(), (Format::Raw, 2 << 20));
    let e = b.resize(&moved, 1 << 20).unwrap_err();
    assert!(e.to_string().contains("shrinking"), "{e}");
    let ct = b.alloc(&subvol(102)).unwrap();
    b.resize(&ct, 8 << 30).unwrap();

    let base = b.create_base(&b.alloc(&raw(200, 1 << 20)).unwrap()).unwrap();
    assert!(matches!(b.rename(&base, vmid(201)), Err(StorageError::Unsupported(_))));
    let clone = b.clone_linked(&base, vmid(201)).unwrap();
    let renamed = b.rename(&clone, vmid(202)).unwrap();
    assert_eq!(renamed.render(StorageType::Btrfs), "base-200-disk-0/vm-202-disk-0");
    assert_eq!(ids(&b.list(None, Some(vmid(202))).unwrap()), vec!["fast:base-200-disk-0/vm-202-disk-0"]);
    assert!(matches!(b.free(&base), Err(StorageError::Conflict(_))), "the renamed clone still pins its base");
}

#[test]
fn btrfs_streams_round_trip_with_snapshots() {
    let f = fixture(&[]);
    let b = &f.backend;
    let disk = b.alloc(&raw(100, 3 << 20)).unwrap();
    put(b, &disk, "one");
    let mut stream = Vec::new();
    b.export(&disk, StreamFormat::RawSize, &mut stream).unwrap();
    let copy = parse("vm-300-disk-0");
    b.import(&copy, StreamFormat::RawSize, &mut stream.as_slice()).unwrap();
    assert_eq!(b.image_info(&copy).unwrap(), (Format::Raw, 3 << 20));
    assert_eq!(get(b, &copy), "one");
    assert!(matches!(b.import(&copy, StreamFormat::RawSize, &mut stream.as_slice()), Err(StorageError::Conflict(_))));

    let ct = b.alloc(&subvol(100)).unwrap();
    put(b, &ct, "ct");
    let mut stream = Vec::new();
    b.export(&ct, StreamFormat::TarSize, &mut stream).unwrap();
    let ct_copy = parse("subvol-300-disk-1");
    b.import(&ct_copy, StreamFormat::TarSize, &mut stream.as_slice()).unwrap();
    assert_eq!(get(b, &ct_copy), "ct");

    b.snapshot(&disk, "s1").unwrap();
    put(b, &disk, "two");
    b.snapshot(&disk, "s2").unwrap();
    put(b, &disk, "three");
    assert_eq!(b.export_formats(&disk).unwrap(), vec![StreamFormat::Btrfs, StreamFormat::RawSize]);
    let mut stream = Vec::new();
    b.export(&disk, StreamFormat::Btrfs, &mut stream).unwrap();
    assert!(stream.starts_with(b"hearth-btrfs-stream v1 raw\n"));
    let copy = parse("vm-301-disk-0");
    b.import(&copy, StreamFormat::Btrfs, &mut stream.as_slice()).unwrap();
    assert_eq!(b.snapshots(&copy).unwrap(), vec!["s1", "s2"]);
    assert_eq!(get(b, &copy), "three");
    put(b, &copy, "four");
    b.rollback(&copy, "s1").unwrap();
    assert_eq!(get(b, &copy), "one");
    b.rollback(&copy, "s2").unwrap();
    assert_eq!(get(b, &copy), "two");
    assert_eq!(entries(&f.fs.path().join("images/301")), vec!["vm-301-disk-0", "vm-301-disk-0@s1", "vm-301-disk-0@s2"]);

    b.snapshot(&ct, "before").unwrap();
    let mut stream = Vec::new();
    b.export(&ct, StreamFormat::Btrfs, &mut stream).unwrap();
    let e = b.import(&parse("vm-302-disk-0"), StreamFormat::Btrfs, &mut stream.as_slice()).unwrap_err();
    assert!(e.to_string().contains("holds a subvol volume"), "{e}");
    let ct_copy = parse("subvol-302-disk-0");
    b.import(&ct_copy, StreamFormat::Btrfs, &mut stream.as_slice()).unwrap();
    assert_eq!((get(b, &ct_copy), b.snapshots(&ct_copy).unwrap()), ("ct".to_owned(), vec!["before".to_owned()]));

    let base = b.create_base(&b.alloc(&raw(400, 1 << 20)).unwrap()).unwrap();
    let clone = b.clone_linked(&base, vmid(401)).unwrap();
    let mut stream = Vec::new();
    b.export(&clone, StreamFormat::RawSize, &mut stream).unwrap();
    assert_eq!(stream.len(), 8 + (1 << 20), "a linked clone exports all its data");
}

#[test]
fn btrfs_failed_imports_leave_nothing() {
    let f = fixture(&[]);
    let b = &f.backend;
    let disk = b.alloc(&raw(100, 2 << 20)).unwrap();
    put(b, &disk, "one");
    b.snapshot(&disk, "s1").unwrap();
    put(b, &disk, "two");
    let mut btrfs = Vec::new();
    b.export(&disk, StreamFormat::Btrfs, &mut btrfs).unwrap();
    let mut raw_stream = Vec::new();
    b.export(&disk, StreamFormat::RawSize, &mut raw_stream).unwrap();
    let target = parse("vm-500-disk-0");
    let cases: Vec<(StreamFormat, &[u8])> = vec![
        (StreamFormat::Btrfs, &btrfs[..10]),
        (StreamFormat::Btrfs, &btrfs[..btrfs.len() / 3]),
        (StreamFormat::Btrfs, &btrfs[..btrfs.len() - 8]),
        (StreamFormat::Btrfs, b"hearth-btrfs-stream v1 raw\n\x02\0\0\0s1\x05\0\0\0\0\0\0\0junk!\0\0\0\0\0\0\0\0"),
        (StreamFormat::RawSize, &raw_stream[..raw_stream.len() / 2]),
        (StreamFormat::TarSize, b"\0\0\0\0\0\0\0\0not a tar archive"),
    ];
    for (format, bytes) in cases {
        let e = b.import(&target, format, &mut &bytes[..]).unwrap_err();
        assert!(matches!(e, StorageError::Invalid(_)), "{format} of {} bytes: {e:?}", bytes.len());
        assert_eq!(entries(&f.fs.path().join("images/500")), Vec::<String>::new(), "{format}: {e}");
    }
    assert!(b.list(None, Some(vmid(500))).unwrap().is_empty());
    b.import(&target, StreamFormat::Btrfs, &mut btrfs.as_slice()).unwrap();
    assert_eq!(get(b, &target), "two", "the storage is still usable");
}

#[test]
fn btrfs_nocow_disks() {
    let f = fixture(&[("nocow", "1")]);
    let disk = f.backend.alloc(&raw(100, 1 << 20)).unwrap();
    let path = f.backend.path(&disk).unwrap();
    let output = Command::new("lsattr").arg(&path).output().expect("lsattr (e2fsprogs) is installed");
    let attrs = String::from_utf8_lossy(&output.stdout);
    assert!(attrs.split_whitespace().next().unwrap_or_default().contains('C'), "{attrs}");
}

#[test]
fn btrfs_storage_is_inactive_elsewhere() {
    let dir = tempfile::tempdir_in("/dev/shm").unwrap();
    let b = backend_at(dir.path(), &[]);
    let e = b.activate().unwrap_err();
    assert!(matches!(e, StorageError::Unavailable(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!("storage 'fast' is not active: {} is not on a btrfs filesystem", dir.path().display())
    );
    assert!(entries(dir.path()).is_empty(), "nothing was created on the wrong filesystem");
    assert!(matches!(b.alloc(&raw(100, 1 << 20)), Err(StorageError::Unavailable(_))));
}
