//! storectl on a real btrfs file system (on a loop device): every command, data surviving
//! export and import with snapshots, guests allocating subvolumes, and the refusals.

use std::path::Path;

use crate::{json, ok, run, template};
use hearth_test::{BtrfsLoop, HearthdProcess};
use serde_json::Value;

/// Entries of a directory, sorted, so a refused operation can be shown to leave no trace.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(e) => e.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// Writes `data` at the start of an image without changing its size.
fn overwrite(path: &Path, data: &[u8]) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().write(true).open(path).expect("open the image");
    file.write_all(data).expect("write");
}

fn head(path: &Path, len: usize) -> Vec<u8> {
    std::fs::read(path).expect("read")[..len].to_vec()
}

fn volids(listing: &Value) -> Vec<String> {
    listing.as_array().expect("a list").iter().map(|v| v["volid"].as_str().expect("volid").to_owned()).collect()
}

#[test]
fn storectl_on_btrfs() {
    let fs = BtrfsLoop::new(2 << 30).expect("a btrfs loop mount (install btrfs-progs)");
    let daemon = HearthdProcess::start();
    let path = fs.path().to_str().expect("UTF-8 path");
    ok(&daemon, "storectl", &["add", "btrfs", "fast", "--path", path, "--content", "images,rootdir,iso,vztmpl"]);

    let status = json(&daemon, "storectl", &["status", "--storage", "fast"]);
    assert_eq!(status[0]["status"], "active", "{status}");
    assert_eq!(status[0]["type"], "btrfs");
    assert!(status[0]["total"].as_u64().expect("total") > 1 << 30);

    // Images are flat names; the lowest free disk number is taken.
    let created = ok(&daemon, "storectl", &["alloc", "fast", "300", "", "64M"]);
    assert_eq!(created, "successfully created 'fast:vm-300-disk-0'\n");
    ok(&daemon, "storectl", &["alloc", "fast", "300", "", "0", "--format", "subvol"]);
    let listing = json(&daemon, "storectl", &["list", "fast", "--vmid", "300"]);
    assert_eq!(volids(&listing), ["fast:vm-300-disk-0", "fast:subvol-300-disk-1"]);
    assert_eq!(listing[0]["size"], 64 << 20);

    // Data written into the disk survives an export and import in the btrfs format, with its
    // snapshots; the import can roll back to the snapshot's data.
    let disk = ok(&daemon, "storectl", &["path", "fast:vm-300-disk-0"]);
    let disk = Path::new(disk.trim());
    assert_eq!(disk, fs.path().join("images/300/vm-300-disk-0/disk.raw"));
    overwrite(disk, b"first!");
    let config = hearth_core::storage::StorageTable::parse(
        &std::fs::read_to_string(daemon.root().join("etc/hearth/storage.toml")).expect("storage.toml"),
    )
    .expect("valid");
    let backend = hearth_storage::open(&config.get("fast").expect("fast"));
    let vol = backend.parse("vm-300-disk-0").expect("name");
    backend.snapshot(&vol, "before").expect("snapshot");
    overwrite(disk, b"second");
    let stream = fs.work_dir().join("disk.btrfs");
    let stream = stream.to_str().expect("UTF-8");
    ok(&daemon, "storectl", &["export", "fast:vm-300-disk-0", "btrfs", stream]);
    let imported = ok(&daemon, "storectl", &["import", "fast:vm-301-disk-0", "btrfs", stream]);
    assert_eq!(imported, "successfully imported 'fast:vm-301-disk-0'\n");
    let copy = backend.parse("vm-301-disk-0").expect("name");
    let copy_path = backend.path(&copy).expect("path");
    assert_eq!(head(&copy_path, 6), b"second");
    assert_eq!(std::fs::metadata(&copy_path).expect("stat").len(), 64 << 20);
    assert_eq!(backend.snapshots(&copy).expect("snapshots"), ["before"]);
    backend.rollback(&copy, "before").expect("rollback");
    assert_eq!(head(&copy_path, 6), b"first!");

    // raw+size through standard input and output.
    let raw = fs.work_dir().join("disk.raw+size");
    let out = daemon
        .command("storectl")
        .args(["export", "fast:vm-300-disk-0", "raw+size", "-"])
        .output()
        .expect("storectl export");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout.len(), 8 + (64 << 20));
    std::fs::write(&raw, &out.stdout).expect("write stream");
    ok(&daemon, "storectl", &["import", "fast:vm-302-disk-0", "raw+size", raw.to_str().expect("UTF-8")]);

    // Uploads land in the content directory; content the storage lacks is refused.
    let iso = fs.work_dir().join("tiny.iso");
    std::fs::write(&iso, vec![7u8; 4096]).expect("iso");
    let iso = iso.to_str().expect("UTF-8");
    ok(&daemon, "storectl", &["upload", "fast", iso, "--content", "iso"]);
    let isos = json(&daemon, "storectl", &["list", "fast", "--content", "iso"]);
    assert_eq!(volids(&isos), ["fast:iso/tiny.iso"]);
    let (code, _, stderr) = run(&daemon, "storectl", &["upload", "fast", iso, "--content", "snippets"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("does not hold content 'snippets'"), "{stderr}");

    // Refusals leave the storage as it was.
    let before = entries(&fs.path().join("images/300"));
    for (args, needle) in [
        (&["alloc", "fast", "300", "", "0"][..], "greater than zero"),
        (&["alloc", "fast", "300", "", "-1G"], "greater than zero"),
        (&["alloc", "fast", "300", "", "100T"], "exceeds"),
        (&["alloc", "fast", "300", "", "1G", "--format", "qcow2"], "btrfs storages cannot hold qcow2"),
        (&["alloc", "fast", "300", "vm-300-disk-9.raw", "1G"], "invalid image name"),
        (&["alloc", "fast", "300", "../x", "1G"], "invalid volume name"),
        (&["alloc", "fast", "300", "vm-301-disk-5", "1G"], "does not belong to VMID 300"),
        (&["alloc", "nowhere", "300", "", "1G"], "storage 'nowhere' does not exist"),
    ] {
        let (code, _, stderr) = run(&daemon, "storectl", args);
        assert_eq!(code, 1, "{args:?} succeeded");
        assert!(stderr.contains(needle), "{args:?}: {stderr} lacks {needle}");
        assert_eq!(entries(&fs.path().join("images/300")), before, "{args:?} left something behind");
    }
    let truncated = fs.work_dir().join("short");
    std::fs::write(&truncated, &out.stdout[..4096]).expect("write");
    let (code, _, stderr) =
        run(&daemon, "storectl", &["import", "fast:vm-303-disk-0", "raw+size", truncated.to_str().expect("UTF-8")]);
    assert_eq!(code, 1);
    assert!(stderr.contains("ended after"), "{stderr}");
    assert!(entries(&fs.path().join("images/303")).is_empty(), "a failed import leaves nothing");

    // Containers get subvolumes; the storage cannot go while a guest uses it.
    ok(&daemon, "ctctl", &["create", "310", &template(&daemon), "--rootfs", "fast:1"]);
    let ct = json(&daemon, "ctctl", &["config", "310"]);
    assert_eq!(ct["rootfs"], "fast:subvol-310-disk-0,size=1G");
    assert!(hearth_sys::btrfs::is_subvolume(&fs.path().join("images/310/subvol-310-disk-0")).expect("stat"));
    let (code, _, stderr) = run(&daemon, "storectl", &["remove", "fast"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("still used by: CT 310 (rootfs)"), "{stderr}");
    ok(&daemon, "ctctl", &["destroy", "310"]);
    assert!(entries(&fs.path().join("images/310")).is_empty(), "destroy frees the subvolume");

    // Disabled storages refuse work until enabled again.
    ok(&daemon, "storectl", &["set", "fast", "--disable", "1"]);
    let (code, _, stderr) = run(&daemon, "storectl", &["alloc", "fast", "300", "", "1G"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("storage 'fast' is disabled"), "{stderr}");
    ok(&daemon, "storectl", &["set", "fast", "--delete", "disable"]);

    for volid in [
        "fast:vm-300-disk-0",
        "fast:subvol-300-disk-1",
        "fast:vm-301-disk-0",
        "fast:vm-302-disk-0",
        "fast:iso/tiny.iso",
    ] {
        ok(&daemon, "storectl", &["free", volid]);
    }
    assert!(volids(&json(&daemon, "storectl", &["list", "fast"])).is_empty());
    ok(&daemon, "storectl", &["remove", "fast"]);
    let (code, _, stderr) = run(&daemon, "storectl", &["list", "fast"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("storage 'fast' does not exist"), "{stderr}");
}

#[test]
fn btrfs_storage_must_be_btrfs() {
    let daemon = HearthdProcess::start();
    let plain = tempfile::tempdir().expect("tempdir");
    let path = plain.path().to_str().expect("UTF-8");
    let before = std::fs::read(daemon.root().join("etc/hearth/storage.toml")).expect("storage.toml");
    let (code, _, stderr) = run(&daemon, "storectl", &["add", "btrfs", "notbtrfs", "--path", path]);
    assert_eq!(code, 1);
    assert!(stderr.contains("is not on a btrfs filesystem"), "{stderr}");
    assert_eq!(std::fs::read(daemon.root().join("etc/hearth/storage.toml")).expect("storage.toml"), before);
    assert!(entries(plain.path()).is_empty(), "nothing is created in a path that is refused");
}
