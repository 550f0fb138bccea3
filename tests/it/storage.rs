//! Storages and volumes on the dir backend end to end: every storectl command against a real
//! hearthd, export/import round trips checked with qemu-img and qemu-io, snapshots and clones
//! through hearth-storage, hostile input that must fail without leaving anything behind, and
//! the volumes guests allocate and free.

use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hearth_core::storage::{Format, StorageTable};
use hearth_proto::{AllocVolume, ErrorKind, ImportVolume, Request, StorageRequest, UploadFile};
use hearth_storage::{NewImage, StorageError};
use hearth_test::HearthdProcess;
use serde_json::Value;

use crate::{json, ok, run, template, vmid};

/// Runs a CLI that must be refused (exit 1); answers its stderr.
fn refused(daemon: &HearthdProcess, program: &str, args: &[&str]) -> String {
    let (code, stdout, stderr) = run(daemon, program, args);
    assert_eq!(code, 1, "{program} {args:?} was not refused: {stdout}{stderr}");
    stderr
}

/// Runs a CLI that must be refused with a message containing every one of `needles`.
fn refused_with(daemon: &HearthdProcess, program: &str, args: &[&str], needles: &[&str]) {
    let stderr = refused(daemon, program, args);
    for needle in needles {
        assert!(stderr.contains(needle), "{program} {args:?}: expected '{needle}' in: {stderr}");
    }
}

/// The volume id `storectl alloc` reports.
fn alloc(daemon: &HearthdProcess, args: &[&str]) -> String {
    let mut full = vec!["alloc"];
    full.extend(args);
    json(daemon, "storectl", &full)["volid"].as_str().expect("alloc answers the volid").to_owned()
}

fn volume_path(daemon: &HearthdProcess, volid: &str) -> PathBuf {
    PathBuf::from(ok(daemon, "storectl", &["path", volid]).trim_end())
}

fn digest(daemon: &HearthdProcess) -> String {
    json(daemon, "storectl", &["config"])["digest"].as_str().expect("config carries a digest").to_owned()
}

/// The volume ids `storectl list` shows for a guest.
fn volids(daemon: &HearthdProcess, storage: &str, id: &str) -> Vec<String> {
    let listed = json(daemon, "storectl", &["list", storage, "--vmid", id]);
    let entries = listed.as_array().expect("list answers an array");
    entries.iter().map(|v| v["volid"].as_str().expect("volid").to_owned()).collect()
}

/// Runs an external tool; a missing tool fails saying what to install.
fn tool(program: &str, args: &[&str], path: &Path) -> Output {
    Command::new(program)
        .args(args)
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): install qemu-utils and e2fsprogs"))
}

fn tool_ok(program: &str, args: &[&str], path: &Path) -> String {
    let out = tool(program, args, path);
    assert!(out.status.success(), "{program} {args:?} {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `qemu-io -f qcow2 -c <command>`; answers whether it succeeded (a `read -P` whose pattern
/// does not match fails).
fn qemu_io(path: &Path, command: &str) -> bool {
    let out = tool("qemu-io", &["-f", "qcow2", "-c", command], path);
    let text = String::from_utf8_lossy(&out.stdout);
    out.status.success() && !text.contains("Pattern verification failed")
}

fn qemu_img_info(path: &Path) -> Value {
    let text = tool_ok("qemu-img", &["info", "-U", "--output=json"], path);
    serde_json::from_str(&text).expect("qemu-img info prints JSON")
}

/// A `*+size` stream as pvesm frames it: the length as u64 little-endian, then the bytes.
fn size_stream(bytes: &[u8]) -> Vec<u8> {
    let mut stream = (bytes.len() as u64).to_le_bytes().to_vec();
    stream.extend_from_slice(bytes);
    stream
}

/// Every path under `dir`, relative, directories marked with a trailing `/`, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.expect("a directory entry");
            let path = entry.path();
            let rel = path.strip_prefix(base).expect("inside the base").to_string_lossy().into_owned();
            if entry.file_type().expect("file type").is_dir() {
                out.push(format!("{rel}/"));
                walk(base, &path, out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Nothing appeared, vanished or was left half-made under `dir` since `before` was taken.
fn assert_no_trace(dir: &Path, before: &[String], what: &str) {
    let after = tree(dir);
    assert_eq!(after, before, "{what} changed the storage directory");
    assert!(!after.iter().any(|p| p.contains(".tmp-")), "{what} left a temporary: {after:?}");
}

/// Adds a dir storage at `<root>/<id>` (created here) and answers its path.
fn add_dir_storage(daemon: &HearthdProcess, id: &str, content: &str) -> PathBuf {
    let path = daemon.root().join(id);
    fs::create_dir(&path).expect("creating the storage directory");
    let path_str = path.to_str().expect("temporary paths are UTF-8");
    ok(daemon, "storectl", &["add", "dir", id, "--path", path_str, "--content", content]);
    path
}

/// A scratch directory for files the test hands to the CLIs.
fn work_dir(daemon: &HearthdProcess) -> PathBuf {
    let dir = daemon.root().join("work");
    fs::create_dir_all(&dir).expect("creating the work directory");
    dir
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

#[test]
fn storectl_commands_on_a_dir_storage() {
    let daemon = HearthdProcess::start();
    let work = work_dir(&daemon);
    let initial = digest(&daemon);
    let store = add_dir_storage(&daemon, "st1", "images,rootdir,iso,vztmpl");

    // config: the new definition, as given, under a new digest.
    let config = json(&daemon, "storectl", &["config", "st1"]);
    let def = &config["storages"][0];
    assert_eq!(def["storage"], "st1");
    assert_eq!(def["config"]["type"], "dir");
    assert_eq!(def["config"]["path"], path_str(&store));
    assert_eq!(def["config"]["content"], "images,rootdir,iso,vztmpl");
    let added = config["digest"].as_str().expect("digest").to_owned();
    assert_ne!(added, initial, "adding a storage changes storage.toml");
    assert_eq!(added, digest(&daemon), "one digest for the whole table");
    let (_, text, _) = run(&daemon, "storectl", &["config"]);
    assert!(text.contains("dir: st1\n") && text.contains(&format!("digest: {added}\n")), "{text}");

    // status: active with the file system's sizes.
    let status = json(&daemon, "storectl", &["status", "--storage", "st1"]);
    let row = &status[0];
    assert_eq!((row["storage"].as_str(), row["status"].as_str()), (Some("st1"), Some("active")), "{status}");
    let total = row["total"].as_u64().expect("total");
    let used = row["used"].as_u64().expect("used");
    let available = row["available"].as_u64().expect("available");
    assert!(total > 0 && used <= total && available <= total, "{row}");
    let df = Command::new("df").args(["-B1", "--output=size"]).arg(&store).output().expect("df");
    let df_total: u64 = String::from_utf8_lossy(&df.stdout).lines().nth(1).expect("df row").trim().parse().expect("n");
    assert_eq!(total, df_total, "total is the file system's size");
    let (_, table, _) = run(&daemon, "storectl", &["status"]);
    assert!(table.lines().any(|l| l.starts_with("st1 ") && l.contains(" active ")), "{table}");

    // set --disable: status says so and volume operations name it; --disable 0 undoes it.
    ok(&daemon, "storectl", &["set", "st1", "--disable", "1"]);
    assert_eq!(json(&daemon, "storectl", &["status", "--storage", "st1"])[0]["status"], "disabled");
    refused_with(&daemon, "storectl", &["alloc", "st1", "700", "", "1M"], &["storage 'st1' is disabled"]);
    let disabled = digest(&daemon);
    refused_with(&daemon, "storectl", &["set", "st1", "--disable", "0", "--digest", &added], &["digest mismatch"]);
    ok(&daemon, "storectl", &["set", "st1", "--disable", "0", "--digest", &disabled]);
    assert_eq!(json(&daemon, "storectl", &["status", "--storage", "st1"])[0]["status"], "active");

    // alloc '' takes the lowest free disk-N of the guest, whatever the format.
    let d0 = alloc(&daemon, &["st1", "700", "", "4M"]);
    assert_eq!(d0, "st1:700/vm-700-disk-0.qcow2", "qcow2 is the dir default");
    let d1 = alloc(&daemon, &["st1", "700", "", "4M", "--format", "raw"]);
    assert_eq!(d1, "st1:700/vm-700-disk-1.raw");
    let (_, text, _) = run(&daemon, "storectl", &["free", &d0]);
    assert_eq!(text, format!("successfully removed '{d0}'\n"));
    assert!(!store.join("images/700/vm-700-disk-0.qcow2").exists(), "free removes the file");
    let (_, text, _) = run(&daemon, "storectl", &["alloc", "st1", "700", "", "4M", "--format", "qcow2"]);
    assert_eq!(text, "successfully created 'st1:700/vm-700-disk-0.qcow2'\n", "disk-0 is free again");
    let d2 = alloc(&daemon, &["st1", "700", "", "0", "--format", "subvol"]);
    assert_eq!(d2, "st1:700/subvol-700-disk-2.subvol", "0 is an unlimited subvol");
    let named = alloc(&daemon, &["st1", "700", "vm-700-data.raw", "1M", "--format", "raw"]);
    assert_eq!(named, "st1:700/vm-700-data.raw");
    refused_with(
        &daemon,
        "storectl",
        &["alloc", "st1", "700", "vm-700-disk-1.qcow2", "1M", "--format", "qcow2"],
        &["disk-1 of VMID 700 already exists"],
    );

    // path: the file of each format, as the format says.
    let qcow2 = volume_path(&daemon, "st1:700/vm-700-disk-0.qcow2");
    assert_eq!(qcow2, store.join("images/700/vm-700-disk-0.qcow2"));
    let info = qemu_img_info(&qcow2);
    assert_eq!((info["format"].as_str(), info["virtual-size"].as_u64()), (Some("qcow2"), Some(4 << 20)), "{info}");
    let raw = volume_path(&daemon, &d1);
    assert_eq!(fs::metadata(&raw).expect("raw file").len(), 4 << 20);
    assert!(volume_path(&daemon, &d2).is_dir(), "a subvol is a directory");

    // list --content images --vmid: images of the guest with their virtual sizes.
    let listed = json(&daemon, "storectl", &["list", "st1", "--content", "images", "--vmid", "700"]);
    let rows: Vec<(String, String, u64, u64)> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|v| {
            (
                v["volid"].as_str().expect("volid").to_owned(),
                v["format"].as_str().expect("format").to_owned(),
                v["size"].as_u64().expect("size"),
                v["vmid"].as_u64().expect("vmid"),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("st1:700/vm-700-disk-0.qcow2".to_owned(), "qcow2".to_owned(), 4 << 20, 700),
            ("st1:700/vm-700-data.raw".to_owned(), "raw".to_owned(), 1 << 20, 700),
            ("st1:700/vm-700-disk-1.raw".to_owned(), "raw".to_owned(), 4 << 20, 700),
        ],
        "{listed}"
    );
    let rootdir = json(&daemon, "storectl", &["list", "st1", "--content", "rootdir", "--vmid", "700"]);
    assert!(rootdir.as_array().expect("array").iter().any(|v| v["volid"] == d2.as_str()), "{rootdir}");
    assert_eq!(json(&daemon, "storectl", &["list", "st1", "--vmid", "701"]), serde_json::json!([]));

    // upload: an ISO lands in template/iso/; a wrong name, a taken name and content the
    // storage does not hold are refused.
    let iso = work.join("install.iso");
    fs::write(&iso, b"an ISO image\n".repeat(1000)).expect("writing the ISO");
    let (_, text, _) = run(&daemon, "storectl", &["upload", "st1", path_str(&iso), "--content", "iso"]);
    assert_eq!(text, "successfully uploaded 'st1:iso/install.iso'\n");
    assert_eq!(fs::read(store.join("template/iso/install.iso")).expect("uploaded"), fs::read(&iso).expect("iso"));
    assert_eq!(volume_path(&daemon, "st1:iso/install.iso"), store.join("template/iso/install.iso"));
    let isos = json(&daemon, "storectl", &["list", "st1", "--content", "iso"]);
    assert_eq!(isos[0]["volid"], "st1:iso/install.iso");
    assert_eq!(isos[0]["size"], 13_000);
    let txt = work.join("notes.txt");
    fs::write(&txt, "text").expect("writing");
    refused_with(
        &daemon,
        "storectl",
        &["upload", "st1", path_str(&txt), "--content", "iso"],
        &["invalid iso file name 'notes.txt'"],
    );
    refused_with(&daemon, "storectl", &["upload", "st1", path_str(&iso), "--content", "iso"], &["already exists"]);
    refused_with(
        &daemon,
        "storectl",
        &["upload", "st1", path_str(&iso), "--content", "snippets"],
        &["does not hold content 'snippets'"],
    );
    let template = work.join("alpine-3.20-default_20240908_amd64.tar.xz");
    fs::write(&template, "not really xz").expect("writing");
    let uploaded = json(&daemon, "storectl", &["upload", "st1", path_str(&template), "--content", "vztmpl"]);
    assert_eq!(uploaded["volid"], "st1:vztmpl/alpine-3.20-default_20240908_amd64.tar.xz");
    ok(&daemon, "storectl", &["free", "st1:vztmpl/alpine-3.20-default_20240908_amd64.tar.xz"]);
    assert!(!store.join("template/cache/alpine-3.20-default_20240908_amd64.tar.xz").exists());

    // remove: the definition goes, the data stays.
    let before = digest(&daemon);
    ok(&daemon, "storectl", &["remove", "st1"]);
    assert_ne!(digest(&daemon), before);
    let config = json(&daemon, "storectl", &["config"]);
    assert!(!config["storages"].as_array().expect("array").iter().any(|d| d["storage"] == "st1"), "{config}");
    refused_with(&daemon, "storectl", &["alloc", "st1", "700", "", "1M"], &["storage 'st1' does not exist"]);
    assert!(qcow2.exists() && raw.exists(), "remove touches no data");
}

#[test]
fn export_import_round_trips() {
    let daemon = HearthdProcess::start();
    let work = work_dir(&daemon);
    add_dir_storage(&daemon, "st1", "images,rootdir");

    // raw+size: the stream is the length and the bytes; the import is the same file.
    let raw = alloc(&daemon, &["st1", "710", "", "2M", "--format", "raw"]);
    let raw_path = volume_path(&daemon, &raw);
    let file = fs::OpenOptions::new().write(true).open(&raw_path).expect("opening the raw image");
    for (offset, byte) in [(0u64, 0x11u8), (4096, 0x22), ((2 << 20) - 512, 0x33)] {
        file.write_all_at(&[byte; 512], offset).expect("writing a pattern");
    }
    drop(file);
    let stream = work.join("raw.stream");
    ok(&daemon, "storectl", &["export", &raw, "raw+size", path_str(&stream)]);
    let original = fs::read(&raw_path).expect("reading the raw image");
    assert_eq!(fs::read(&stream).expect("stream"), size_stream(&original));
    let (_, text, _) =
        run(&daemon, "storectl", &["import", "st1:711/vm-711-disk-0.raw", "raw+size", path_str(&stream)]);
    assert_eq!(text, "successfully imported 'st1:711/vm-711-disk-0.raw'\n");
    assert_eq!(fs::read(volume_path(&daemon, "st1:711/vm-711-disk-0.raw")).expect("copy"), original);
    // An existing volume is never overwritten; --allow-rename takes the next free name.
    refused_with(
        &daemon,
        "storectl",
        &["import", "st1:711/vm-711-disk-0.raw", "raw+size", path_str(&stream)],
        &["already exists"],
    );
    let renamed = json(
        &daemon,
        "storectl",
        &["import", "st1:711/vm-711-disk-0.raw", "raw+size", path_str(&stream), "--allow-rename"],
    );
    assert_eq!(renamed["volid"], "st1:711/vm-711-disk-1.raw");
    // A stream of one format does not become a volume of another.
    refused_with(
        &daemon,
        "storectl",
        &["import", "st1:711/vm-711-disk-5.qcow2", "raw+size", path_str(&stream)],
        &["cannot become the qcow2 volume"],
    );
    refused_with(&daemon, "storectl", &["export", &raw, "qcow2+size", path_str(&work.join("x"))], &["exports as"]);
    assert!(!work.join("x").exists(), "a failed export removes its file");

    // qcow2+size carries internal snapshots.
    let qcow2 = alloc(&daemon, &["st1", "710", "", "8M", "--format", "qcow2"]);
    let qcow2_path = volume_path(&daemon, &qcow2);
    assert!(qemu_io(&qcow2_path, "write -P 0x5a 0 64k"));
    tool_ok("qemu-img", &["snapshot", "-c", "s1"], &qcow2_path);
    assert!(qemu_io(&qcow2_path, "write -P 0x11 0 64k"));
    let stream = work.join("qcow2.stream");
    ok(&daemon, "storectl", &["export", &qcow2, "qcow2+size", path_str(&stream)]);
    assert_eq!(fs::read(&stream).expect("stream"), size_stream(&fs::read(&qcow2_path).expect("image")));
    ok(&daemon, "storectl", &["import", "st1:712/vm-712-disk-0.qcow2", "qcow2+size", path_str(&stream)]);
    let copy = volume_path(&daemon, "st1:712/vm-712-disk-0.qcow2");
    assert!(qemu_io(&copy, "read -P 0x11 0 64k"), "the copy holds the current data");
    assert!(tool_ok("qemu-img", &["snapshot", "-l"], &copy).contains("s1"), "the snapshot came along");
    tool_ok("qemu-img", &["snapshot", "-a", "s1"], &copy);
    assert!(qemu_io(&copy, "read -P 0x5a 0 64k"), "rolling the copy back gives the snapshot's data");
    assert!(!qemu_io(&copy, "read -P 0x11 0 64k"), "the pattern check can fail");
    assert!(qemu_io(&qcow2_path, "read -P 0x11 0 64k"), "the original is untouched");
    let listed = json(&daemon, "storectl", &["list", "st1", "--vmid", "712"]);
    assert_eq!((listed[0]["format"].as_str(), listed[0]["size"].as_u64()), (Some("qcow2"), Some(8 << 20)));

    // tar+size: a container directory with owners, modes, links and times.
    let subvol = alloc(&daemon, &["st1", "710", "", "0", "--format", "subvol"]);
    let dir = volume_path(&daemon, &subvol);
    fs::create_dir_all(dir.join("etc/ssh")).expect("mkdir");
    fs::create_dir(dir.join("tmp")).expect("mkdir");
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777)).expect("chmod");
    fs::write(dir.join("etc/hostname"), "ct710\n").expect("write");
    fs::write(dir.join("etc/ssh/ssh_host_key"), "secret").expect("write");
    fs::set_permissions(dir.join("etc/ssh/ssh_host_key"), fs::Permissions::from_mode(0o600)).expect("chmod");
    std::os::unix::fs::chown(dir.join("etc/ssh/ssh_host_key"), Some(100_033), Some(100_044)).expect("chown");
    std::os::unix::fs::chown(dir.join("etc"), Some(100_000), Some(100_000)).expect("chown");
    fs::write(dir.join("suid"), "#!/bin/sh\n").expect("write");
    fs::set_permissions(dir.join("suid"), fs::Permissions::from_mode(0o4755)).expect("chmod");
    std::os::unix::fs::symlink("/etc/hostname", dir.join("link")).expect("symlink");
    fs::hard_link(dir.join("etc/hostname"), dir.join("hardlink")).expect("link");
    let stream = work.join("tar.stream");
    ok(&daemon, "storectl", &["export", &subvol, "tar+size", path_str(&stream)]);
    ok(&daemon, "storectl", &["import", "st1:713/subvol-713-disk-0.subvol", "tar+size", path_str(&stream)]);
    let copy = volume_path(&daemon, "st1:713/subvol-713-disk-0.subvol");
    assert_eq!(tree(&copy), tree(&dir));
    for rel in tree(&dir) {
        let rel = rel.trim_end_matches('/');
        let (a, b) = (dir.join(rel), copy.join(rel));
        let (ma, mb) = (fs::symlink_metadata(&a).expect("source"), fs::symlink_metadata(&b).expect("copy"));
        assert_eq!((ma.mode(), ma.uid(), ma.gid()), (mb.mode(), mb.uid(), mb.gid()), "{rel}");
        if ma.is_file() {
            assert_eq!(fs::read(&a).expect("source"), fs::read(&b).expect("copy"), "{rel}");
            assert_eq!(ma.mtime(), mb.mtime(), "{rel}");
        }
    }
    assert_eq!(fs::read_link(copy.join("link")).expect("symlink"), Path::new("/etc/hostname"));
    let (hostname, hardlink) = (copy.join("etc/hostname"), copy.join("hardlink"));
    assert_eq!(fs::metadata(hostname).expect("a").ino(), fs::metadata(hardlink).expect("b").ino(), "hard links");
    assert_eq!(fs::metadata(copy.join("etc/ssh/ssh_host_key")).expect("key").mode() & 0o7777, 0o600);
}

#[test]
fn snapshots_and_clones_keep_data() {
    let dir = hearth_test::temp_root();
    let config = StorageTable::fresh(path_str(dir.path())).get("local").expect("the fresh table has local");
    let backend = hearth_storage::open(&config);
    backend.activate().expect("the storage directory exists");
    let new = |id: u32| NewImage { vmid: vmid(id), name: None, format: Format::Qcow2, size: 16 << 20 };

    // Snapshot and rollback.
    let disk = backend.alloc(&new(720)).expect("alloc");
    let path = backend.path(&disk).expect("path");
    assert!(qemu_io(&path, "write -P 0xa1 0 64k") && qemu_io(&path, "write -P 0xa2 1M 64k"));
    backend.snapshot(&disk, "before").expect("snapshot");
    assert_eq!(backend.snapshots(&disk).expect("snapshots"), ["before"]);
    assert!(matches!(backend.snapshot(&disk, "before"), Err(StorageError::Conflict(_))), "names are unique");
    assert!(qemu_io(&path, "write -P 0xb1 0 64k") && qemu_io(&path, "write -P 0xb2 8M 64k"));
    assert!(qemu_io(&path, "read -P 0xb1 0 64k"));
    backend.rollback(&disk, "before").expect("rollback");
    assert!(qemu_io(&path, "read -P 0xa1 0 64k") && qemu_io(&path, "read -P 0xa2 1M 64k"), "pattern A is back");
    assert!(qemu_io(&path, "read -P 0 8M 64k"), "what was written after the snapshot is gone");
    assert!(matches!(backend.rollback(&disk, "nope"), Err(StorageError::NotFound(_))));
    backend.delete_snapshot(&disk, "before").expect("delete the snapshot");
    assert!(backend.snapshots(&disk).expect("snapshots").is_empty());
    let raw = backend.alloc(&NewImage { format: Format::Raw, ..new(720) }).expect("alloc raw");
    assert!(matches!(backend.snapshot(&raw, "s"), Err(StorageError::Unsupported(_))), "raw files have none");

    // Linked clones of a base image.
    let base = backend.create_base(&disk).expect("create_base");
    assert_eq!(base.render(config.storage_type), "720/base-720-disk-0.qcow2");
    assert!(!path.exists(), "the vm- image became the base");
    let base_path = backend.path(&base).expect("path");
    assert_eq!(fs::metadata(&base_path).expect("base").mode() & 0o777, 0o444, "the base is read-only");
    let first = backend.clone_linked(&base, vmid(721)).expect("first clone");
    let second = backend.clone_linked(&base, vmid(721)).expect("second clone");
    assert_eq!(first.render(config.storage_type), "720/base-720-disk-0.qcow2/721/vm-721-disk-0.qcow2");
    assert_eq!(second.render(config.storage_type), "720/base-720-disk-0.qcow2/721/vm-721-disk-1.qcow2");
    let (first_path, second_path) = (backend.path(&first).expect("path"), backend.path(&second).expect("path"));
    assert!(qemu_io(&first_path, "write -P 0xc1 0 64k"), "a clone is writable");
    assert!(qemu_io(&second_path, "read -P 0xa1 0 64k"), "clones do not see each other's writes");
    assert!(qemu_io(&base_path, "read -P 0xa1 0 64k"), "nor does the base");
    backend.free(&first).expect("free the first clone");
    assert!(qemu_io(&second_path, "read -P 0xa1 0 64k") && qemu_io(&second_path, "read -P 0xa2 1M 64k"));
    let info = qemu_img_info(&second_path);
    assert_eq!(info["backing-filename"], "../720/base-720-disk-0.qcow2", "{info}");
    assert_eq!(info["virtual-size"], 16 << 20);
    let listed = backend.list(None, Some(vmid(721))).expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].volname, second, "the listing finds the base from the backing file");
    let e = backend.free(&base).expect_err("the base is still used");
    assert!(matches!(e, StorageError::Conflict(_)), "{e}");
    assert!(e.to_string().contains("local:720/base-720-disk-0.qcow2/721/vm-721-disk-1.qcow2"), "{e}");
    assert!(base_path.exists());

    // A full clone is independent of its source, and of the source's base.
    let full =
        hearth_storage::clone_full(backend.as_ref(), &second, backend.as_ref(), vmid(722), None).expect("clone_full");
    assert_eq!(full.render(config.storage_type), "722/vm-722-disk-0.qcow2");
    let full_path = backend.path(&full).expect("path");
    assert!(qemu_io(&full_path, "read -P 0xa1 0 64k") && qemu_io(&full_path, "read -P 0xa2 1M 64k"));
    assert_eq!(qemu_img_info(&full_path)["backing-filename"], Value::Null, "no backing file");
    assert!(qemu_io(&full_path, "write -P 0xd1 0 64k"));
    assert!(qemu_io(&second_path, "read -P 0xa1 0 64k"), "writes to the copy stay in the copy");
    backend.free(&second).expect("free the second clone");
    backend.free(&base).expect("the base is free once no clone uses it");
    assert!(qemu_io(&full_path, "read -P 0xd1 0 64k") && qemu_io(&full_path, "read -P 0xa2 1M 64k"));
    backend.free(&full).expect("free");
    backend.free(&raw).expect("free");
    let left = tree(&dir.path().join("images"));
    assert!(left.is_empty(), "freeing every volume leaves nothing: {left:?}");
}

/// Sends a request straight to hearthd and expects it refused as invalid.
fn protocol_refused(daemon: &HearthdProcess, request: &Request, file: Option<&Path>) -> String {
    let mut client = daemon.client();
    let result = match file {
        Some(path) => client.call_with_file(request, fs::File::open(path).expect("open").into()),
        None => client.call(request),
    };
    let e = result.expect_err("hostile input is refused");
    assert_eq!(e.kind(), Some(ErrorKind::Invalid), "{e}");
    e.to_string()
}

#[test]
fn bad_input_is_refused_without_a_trace() {
    let daemon = HearthdProcess::start();
    let work = work_dir(&daemon);
    let store = add_dir_storage(&daemon, "st1", "images,rootdir,iso");
    // The guest owns a volume already, so its directory is part of the picture before.
    alloc(&daemon, &["st1", "730", "", "1M", "--format", "raw"]);
    let iso = work.join("x.iso");
    fs::write(&iso, "iso").expect("write");
    let before = tree(&store);

    // Names that try to leave the storage or reach a shell.
    for name in ["..", "../vm-730-disk-9.raw", "vm-730-a/b.raw", "/etc/vm-730-x.raw", "vm-730-$(x).raw"] {
        refused_with(&daemon, "storectl", &["alloc", "st1", "730", name, "1M", "--format", "raw"], &["invalid"]);
    }
    for (name, needle) in
        [("vm-730-a;b.raw", "';'"), ("vm-730-`x`.raw", "'`'"), ("vm-730-a b.raw", "' '"), ("vm-730-$x.raw", "'$'")]
    {
        let args = ["alloc", "st1", "730", name, "1M", "--format", "raw"];
        refused_with(&daemon, "storectl", &args, &["is not allowed", needle]);
    }
    for volid in ["st1:730/../../../etc/passwd", "st1:../st1/730/vm-730-disk-0.raw", "st1:/etc/passwd"] {
        refused_with(&daemon, "storectl", &["path", volid], &["invalid volume"]);
        refused_with(&daemon, "storectl", &["free", volid], &["invalid volume"]);
        refused_with(&daemon, "storectl", &["import", volid, "raw+size", path_str(&iso)], &["invalid volume"]);
    }
    for volid in ["st1:iso/$(reboot).iso", "st1:iso/a;b.iso", "st1:iso/`x`.iso", "st1:iso/a b.iso"] {
        refused_with(&daemon, "storectl", &["path", volid], &["is not allowed"]);
    }
    for name in ["../x.iso", "a/b.iso", "$(x).iso", "a;b.iso", "`x`.iso", "a b.iso", "-rf.iso"] {
        let filename = format!("--filename={name}");
        let args = ["upload", "st1", path_str(&iso), "--content", "iso", &filename];
        refused_with(&daemon, "storectl", &args, &["invalid"]);
    }
    // NUL cannot travel in argv; the protocol carries it.
    let request = Request::Storage(StorageRequest::Alloc(AllocVolume {
        storage: "st1".into(),
        vmid: vmid(730),
        name: "vm-730-a\0b.raw".into(),
        size: "1M".into(),
        format: Some("raw".into()),
    }));
    assert!(protocol_refused(&daemon, &request, None).contains("is not allowed"));
    let request = Request::Storage(StorageRequest::Path { volid: "st1:iso/a\0b.iso".into() });
    assert!(protocol_refused(&daemon, &request, None).contains("is not allowed"));
    let request = Request::Storage(StorageRequest::Upload(UploadFile {
        storage: "st1".into(),
        content: "iso".into(),
        filename: "a\0b.iso".into(),
    }));
    assert!(protocol_refused(&daemon, &request, Some(&iso)).contains("is not allowed"));
    let request = Request::Storage(StorageRequest::Import(ImportVolume {
        volid: "st1:730/vm-730-disk-\0.raw".into(),
        format: "raw+size".into(),
        allow_rename: false,
    }));
    assert!(protocol_refused(&daemon, &request, Some(&iso)).contains("is not allowed"));
    assert_no_trace(&store, &before, "hostile names");

    // Sizes: zero, negative, not a size, more than the storage has.
    refused_with(&daemon, "storectl", &["alloc", "st1", "730", "", "0"], &["must be greater than zero"]);
    refused_with(&daemon, "storectl", &["alloc", "st1", "730", "", "-1G"], &["must be greater than zero"]);
    refused_with(&daemon, "storectl", &["alloc", "st1", "730", "", "-1", "--format", "raw"], &["greater than zero"]);
    refused_with(&daemon, "storectl", &["alloc", "st1", "730", "", "lots"], &["size"]);
    for format in ["raw", "qcow2", "subvol"] {
        let args = ["alloc", "st1", "730", "", "1000T", "--format", format];
        refused_with(&daemon, "storectl", &args, &["exceeds", "available on storage 'st1'"]);
    }
    assert_no_trace(&store, &before, "bad sizes");

    // Content the storage does not hold, storages that do not exist.
    let images_only = add_dir_storage(&daemon, "img", "images");
    let images_before = tree(&images_only);
    refused_with(
        &daemon,
        "storectl",
        &["upload", "img", path_str(&iso), "--content", "iso"],
        &["storage 'img' does not hold content 'iso'"],
    );
    refused_with(&daemon, "storectl", &["list", "img", "--content", "iso"], &["does not hold content 'iso'"]);
    assert_no_trace(&images_only, &images_before, "an upload of content the storage does not hold");
    refused_with(&daemon, "storectl", &["alloc", "nosuch", "730", "", "1M"], &["storage 'nosuch' does not exist"]);
    refused_with(&daemon, "storectl", &["path", "nosuch:730/vm-730-disk-0.raw"], &["'nosuch' does not exist"]);
    refused_with(&daemon, "storectl", &["upload", "nosuch", path_str(&iso), "--content", "iso"], &["does not exist"]);
    refused_with(&daemon, "storectl", &["list", "nosuch"], &["does not exist"]);
    refused_with(&daemon, "storectl", &["set", "nosuch", "--disable", "1"], &["does not exist"]);
    refused_with(&daemon, "storectl", &["remove", "nosuch"], &["does not exist"]);

    // A disabled storage refuses every volume operation by name.
    ok(&daemon, "storectl", &["set", "st1", "--disable", "1"]);
    let volume = "st1:730/vm-730-disk-0.raw";
    for args in [
        &["alloc", "st1", "730", "", "1M"][..],
        &["list", "st1"],
        &["path", volume],
        &["free", volume],
        &["export", volume, "raw+size", path_str(&work.join("out"))],
        &["import", "st1:730/vm-730-disk-1.raw", "raw+size", path_str(&iso)],
        &["upload", "st1", path_str(&iso), "--content", "iso"],
    ] {
        refused_with(&daemon, "storectl", args, &["storage 'st1' is disabled"]);
    }
    assert!(!work.join("out").exists());
    ok(&daemon, "storectl", &["set", "st1", "--disable", "0"]);
    assert_no_trace(&store, &before, "operations on a disabled storage");

    // A storage path that does not exist, or is relative, is refused and storage.toml stays.
    let table = fs::read(daemon.root().join("etc/hearth/storage.toml")).expect("storage.toml");
    let digest_before = digest(&daemon);
    let missing = daemon.root().join("nonexistent/storage");
    refused_with(
        &daemon,
        "storectl",
        &["add", "dir", "gone", "--path", path_str(&missing)],
        &["does not exist", "Hearth never creates a storage path"],
    );
    refused_with(&daemon, "storectl", &["add", "dir", "rel", "--path", "relative/dir"], &["path"]);
    refused_with(&daemon, "storectl", &["add", "dir", "st1", "--path", path_str(&store)], &["already exists"]);
    assert!(!missing.exists() && !daemon.root().join("nonexistent").exists(), "the path was not created");
    assert_eq!(digest(&daemon), digest_before);
    assert_eq!(fs::read(daemon.root().join("etc/hearth/storage.toml")).expect("storage.toml"), table);

    // is_mountpoint on a plain directory: refused at add, inactive when forced in, and
    // nothing is ever written into the unmounted path.
    let plain = daemon.root().join("plain");
    fs::create_dir(&plain).expect("mkdir");
    let mp_args = ["add", "dir", "mp", "--path", path_str(&plain), "--is_mountpoint", "1", "--content", "images,iso"];
    refused_with(&daemon, "storectl", &mp_args, &["is not mounted"]);
    assert_eq!(digest(&daemon), digest_before);
    let mut disabled_args = mp_args.to_vec();
    disabled_args.extend(["--disable", "1"]);
    ok(&daemon, "storectl", &disabled_args);
    ok(&daemon, "storectl", &["set", "mp", "--disable", "0"]);
    let status = json(&daemon, "storectl", &["status", "--storage", "mp"]);
    assert_eq!(status[0]["status"], "inactive", "{status}");
    let reason = status[0]["error"].as_str().expect("an inactive storage says why");
    assert!(reason.contains(&format!("{} is not mounted", plain.display())), "{reason}");
    assert_eq!(status[0]["total"], Value::Null);
    let enabled = json(&daemon, "storectl", &["status", "--enabled"]);
    assert!(!enabled.as_array().expect("array").iter().any(|r| r["storage"] == "mp"), "{enabled}");
    refused_with(
        &daemon,
        "storectl",
        &["alloc", "mp", "730", "", "1M"],
        &[&format!("{} is not mounted", plain.display()), "is_mountpoint"],
    );
    refused_with(&daemon, "storectl", &["upload", "mp", path_str(&iso), "--content", "iso"], &["is not mounted"]);
    assert!(tree(&plain).is_empty(), "nothing was created in the unmounted path: {:?}", tree(&plain));
    ok(&daemon, "storectl", &["remove", "mp"]);

    // A storage whose volumes guests use cannot be removed; the error names them.
    ok(&daemon, "vmctl", &["create", "731", "--scsi0", "st1:1"]);
    ok(&daemon, "vmctl", &["set", "731", "--scsi0", "st1:2"]);
    ok(&daemon, "ctctl", &["create", "732", &template(&daemon), "--rootfs", "st1:0"]);
    let digest_before = digest(&daemon);
    refused_with(
        &daemon,
        "storectl",
        &["remove", "st1"],
        &["storage 'st1' is still used by", "VM 731 (scsi0, unused0)", "CT 732 (rootfs)"],
    );
    assert_eq!(digest(&daemon), digest_before, "the refused remove left storage.toml alone");
    refused_with(&daemon, "storectl", &["free", "st1:731/vm-731-disk-0.qcow2"], &["used by VM 731 (unused0)"]);
    ok(&daemon, "vmctl", &["destroy", "731"]);
    ok(&daemon, "ctctl", &["destroy", "732"]);
    let before = tree(&store);

    // Imports that must not become volumes: a qcow2 whose backing file lies outside the
    // storage (absolute or through ..), a stream cut short, a stream without its header.
    let mut streams = Vec::new();
    for (i, backing) in ["/etc/hostname", "../../../../../../../../etc/hostname"].into_iter().enumerate() {
        let image = work.join(format!("evil{i}.qcow2"));
        tool_ok("qemu-img", &["create", "-q", "-f", "qcow2", "-b", backing, "-F", "raw"], &image);
        let stream = work.join(format!("evil{i}.stream"));
        fs::write(&stream, size_stream(&fs::read(&image).expect("image"))).expect("write");
        streams.push((stream, "qcow2+size", "st1:730/vm-730-disk-1.qcow2", "outside the storage"));
    }
    let mut cut = size_stream(&vec![0x42; 1 << 20]);
    cut.truncate(8 + 5000);
    fs::write(work.join("cut.stream"), cut).expect("write");
    streams.push((work.join("cut.stream"), "raw+size", "st1:730/vm-730-disk-1.raw", "ended after 5000 of 1048576"));
    fs::write(work.join("headless.stream"), [1, 2, 3]).expect("write");
    streams.push((work.join("headless.stream"), "raw+size", "st1:730/vm-730-disk-1.raw", "8-byte size header"));
    let tar = work.join("bad.tar.stream");
    fs::write(&tar, size_stream(b"this is not a tar archive")).expect("write");
    streams.push((tar, "tar+size", "st1:730/subvol-730-disk-1.subvol", "cannot be extracted"));
    for (stream, format, volid, needle) in &streams {
        refused_with(&daemon, "storectl", &["import", volid, format, path_str(stream)], &[needle]);
        assert_no_trace(&store, &before, &format!("importing {}", stream.display()));
    }
}

#[test]
fn guests_allocate_and_free_their_volumes() {
    let daemon = HearthdProcess::start();
    add_dir_storage(&daemon, "st1", "images,rootdir");

    // A VM disk: a real qcow2 file, named in the configuration with its size.
    let log = ok(&daemon, "vmctl", &["create", "740", "--scsi0", "st1:1"]);
    assert!(log.contains("scsi0: allocated st1:740/vm-740-disk-0.qcow2 (1G)") && log.ends_with("TASK OK\n"), "{log}");
    let config = json(&daemon, "vmctl", &["config", "740"]);
    assert_eq!(config["scsi0"], "st1:740/vm-740-disk-0.qcow2,size=1G", "{config}");
    let disk0 = volume_path(&daemon, "st1:740/vm-740-disk-0.qcow2");
    assert_eq!(qemu_img_info(&disk0)["virtual-size"], 1u64 << 30);

    // Replacing the disk keeps the old one as unused0.
    ok(&daemon, "vmctl", &["set", "740", "--scsi0", "st1:2"]);
    let config = json(&daemon, "vmctl", &["config", "740"]);
    assert_eq!(config["scsi0"], "st1:740/vm-740-disk-1.qcow2,size=2G", "{config}");
    assert_eq!(config["unused0"], "st1:740/vm-740-disk-0.qcow2", "{config}");
    assert!(disk0.exists(), "the replaced disk keeps its data");
    let disk1 = volume_path(&daemon, "st1:740/vm-740-disk-1.qcow2");
    assert_eq!(qemu_img_info(&disk1)["virtual-size"], 2u64 << 30);

    // A container root file system: an ext4 image owned by the unprivileged root.
    ok(&daemon, "ctctl", &["create", "741", &template(&daemon), "--rootfs", "st1:1"]);
    let config = json(&daemon, "ctctl", &["config", "741"]);
    assert_eq!(config["rootfs"], "st1:741/vm-741-disk-0.raw,size=1G", "{config}");
    let rootfs = volume_path(&daemon, "st1:741/vm-741-disk-0.raw");
    assert_eq!(fs::metadata(&rootfs).expect("rootfs").len(), 1 << 30);
    let mut magic = [0u8; 2];
    fs::File::open(&rootfs).expect("open").read_exact_at(&mut magic, 1080).expect("read the superblock");
    assert_eq!(u16::from_le_bytes(magic), 0xEF53, "an ext4 superblock");
    let superblock = tool_ok("dumpe2fs", &["-h"], &rootfs);
    assert!(superblock.contains("Filesystem state:         clean"), "{superblock}");
    let root_inode = tool_ok("debugfs", &["-R", "stat /"], &rootfs);
    assert!(root_inode.contains("User: 100000   Group: 100000"), "{root_inode}");

    // destroy frees everything the configuration names; an unreferenced volume stays
    // unless --purge is given.
    let stray = alloc(&daemon, &["st1", "740", "", "1M", "--format", "raw"]);
    assert_eq!(stray, "st1:740/vm-740-disk-2.raw");
    let log = ok(&daemon, "vmctl", &["destroy", "740"]);
    assert!(log.contains("removed volume st1:740/vm-740-disk-1.qcow2"), "{log}");
    assert!(log.contains("removed volume st1:740/vm-740-disk-0.qcow2"), "unused0 goes too: {log}");
    assert_eq!(volids(&daemon, "st1", "740"), [stray.as_str()]);
    ok(&daemon, "storectl", &["free", &stray]);
    assert!(volids(&daemon, "st1", "740").is_empty());
    assert!(!disk0.parent().expect("the guest's directory").exists(), "the guest's directory goes with its volumes");

    ok(&daemon, "ctctl", &["destroy", "741"]);
    assert!(volids(&daemon, "st1", "741").is_empty());
    assert!(!rootfs.exists());

    ok(&daemon, "vmctl", &["create", "742", "--scsi0", "st1:1", "--scsi1", "st1:1"]);
    let stray = alloc(&daemon, &["st1", "742", "", "1M", "--format", "raw"]);
    assert_eq!(volids(&daemon, "st1", "742").len(), 3);
    let log = ok(&daemon, "vmctl", &["destroy", "742", "--purge"]);
    assert!(log.contains(&format!("removed volume {stray}")), "{log}");
    assert!(volids(&daemon, "st1", "742").is_empty());
    refused_with(&daemon, "vmctl", &["config", "742"], &["does not exist"]);
}
