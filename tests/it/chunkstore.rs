//! Backups in a `chunkstore` storage end to end: a running VM in snapshot mode and a container
//! restored identical, incremental backups storing few new chunks, prune/protect/list,
//! file-level ls/extract, a corrupted chunk found by verify and healed by the next backup, a
//! wrong or missing key refused before anything is written, and leftovers of a hearthd killed
//! during a backup cleaned by the next one.

use std::path::{Path, PathBuf};

use hearth_test::HearthdProcess;

use crate::backup::{Lcg, archive_of, ctid, path_of, refused, rootfs_path, same_disk, walk};
use crate::{json, ok, run};

/// A chunkstore storage `pbs` in a directory of the test root; answers the directory.
fn add_store(daemon: &HearthdProcess, keyfile: Option<&Path>) -> PathBuf {
    let dir = daemon.root().join("pbs");
    std::fs::create_dir_all(&dir).expect("store dir");
    let mut args = vec!["add", "chunkstore", "pbs", "--path", dir.to_str().expect("utf-8")];
    let key;
    if let Some(k) = keyfile {
        key = k.to_str().expect("utf-8").to_owned();
        args.extend(["--keyfile", &key]);
    }
    ok(daemon, "storectl", &args);
    dir
}

/// Chunk files in the store.
fn chunk_count(store: &Path) -> usize {
    let mut n = 0;
    for dir in std::fs::read_dir(store.join(".chunks")).expect("chunks").flatten() {
        n += std::fs::read_dir(dir.path()).expect("chunk dir").flatten().filter(|e| e.file_name().len() == 64).count();
    }
    n
}

fn chunk_files(store: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(store.join(".chunks")).expect("chunks").flatten() {
        out.extend(std::fs::read_dir(dir.path()).expect("dir").flatten().map(|e| e.path()));
    }
    out.sort();
    out
}

fn snapshots_of(store: &Path, kind: &str, id: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store.join(kind).join(id))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn scsi0(daemon: &HearthdProcess, vmid: &str) -> String {
    json(daemon, "vmctl", &["config", vmid])["scsi0"]
        .as_str()
        .expect("scsi0")
        .split(',')
        .next()
        .expect("volid")
        .to_owned()
}

#[test]
fn vm_backups_in_a_chunk_store_restore_bit_identical_and_are_incremental() {
    let mut daemon = HearthdProcess::start();
    let store = add_store(&daemon, None);
    // Only backup content; volumes are refused.
    let stderr = refused(
        &daemon,
        "storectl",
        &["add", "chunkstore", "pbs2", "--path", store.to_str().expect("utf-8"), "--content", "images"],
    );
    assert!(stderr.contains("only backup"), "{stderr}");
    ok(
        &daemon,
        "vmctl",
        &["create", "710", "--name", "db", "--memory", "64", "--kvm", "0", "--scsi0", "local:0.0625,format=raw"],
    );
    let disk = path_of(&daemon, &scsi0(&daemon, "710"));
    let mut rng = Lcg(11);
    let mut content = vec![0u8; 64 << 20];
    for b in &mut content[..24 << 20] {
        *b = rng.next() as u8;
    }
    std::fs::write(&disk, &content).expect("disk");
    ok(&daemon, "vmctl", &["start", "710"]);

    let out = ok(&daemon, "vmctl", &["backup", "710", "--storage", "pbs", "--mode", "snapshot"]);
    assert!(out.contains("copy-before-write"), "{out}");
    let first = archive_of(&out, "710");
    assert!(first.starts_with("pbs:backup/vm/710/") && first.ends_with('Z'), "{first}");
    assert_eq!(json(&daemon, "vmctl", &["status", "710"])["status"], "running");
    let after_first = chunk_count(&store);
    // 6 random chunks + 1 zero chunk.
    assert_eq!(after_first, 7, "distinct 4 MiB chunks");
    assert!(
        !std::fs::read_dir(&store)
            .expect("store")
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(".tmp-vzdump"))
    );

    // A small change: one chunk differs, the second backup stores one new chunk.
    ok(&daemon, "vmctl", &["stop", "710"]);
    let mut changed = content.clone();
    changed[5 << 20] ^= 0xff;
    std::fs::write(&disk, &changed).expect("disk");
    let out = ok(&daemon, "vmctl", &["backup", "710", "--storage", "pbs", "--mode", "stop"]);
    assert!(out.contains("1 new"), "{out}");
    let second = archive_of(&out, "710");
    assert_eq!(chunk_count(&store), after_first + 1);

    let listed = json(&daemon, "storectl", &["backup", "list", "--storage", "pbs"]);
    let volids: Vec<&str> =
        listed.as_array().expect("list").iter().map(|e| e["volid"].as_str().expect("volid")).collect();
    assert_eq!(volids, [first.as_str(), second.as_str()], "{listed}");
    assert_eq!(listed[0]["size"], 64 << 20);

    // Restore of the first backup: the disk as it was when the backup started.
    ok(&daemon, "vmctl", &["restore", "711", &first, "--storage", "local"]);
    assert_eq!(json(&daemon, "vmctl", &["config", "711"])["name"], "db");
    same_disk(&std::fs::read(path_of(&daemon, &scsi0(&daemon, "711"))).expect("disk"), &content);
    let stderr = refused(&daemon, "ctctl", &["restore", "712", &first]);
    assert!(stderr.contains("is not a CT backup"), "{stderr}");

    // Protect the first, prune to the last one: the protected one stays.
    ok(&daemon, "storectl", &["backup", "protect", &first]);
    let pruned = json(&daemon, "storectl", &["backup", "prune", "pbs", "--keep-last", "1"]);
    let marks: Vec<(&str, &str)> = pruned
        .as_array()
        .expect("pruned")
        .iter()
        .map(|e| (e["volid"].as_str().expect("volid"), e["mark"].as_str().expect("mark")))
        .collect();
    assert!(marks.contains(&(first.as_str(), "protected")) && marks.contains(&(second.as_str(), "keep")), "{marks:?}");
    ok(&daemon, "storectl", &["backup", "protect", &first, "--off"]);
    let out = ok(&daemon, "storectl", &["backup", "verify", "pbs"]);
    assert!(out.contains("2 backups verified"), "{out}");

    // kill -9 of hearthd during a backup: the lock stays, `vmctl unlock` clears it, and the
    // next backup removes the incomplete snapshot.
    let slow = daemon.command("vmctl").args(["backup", "710", "--storage", "pbs", "--mode", "stop"]).spawn();
    let mut slow = slow.expect("backup");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let incomplete = snapshots_of(&store, "vm", "710").len() > 2;
        if incomplete || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    daemon.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = slow.wait();
    daemon.restart();
    let leftover = snapshots_of(&store, "vm", "710");
    if leftover.len() > 2 {
        assert_eq!(json(&daemon, "vmctl", &["status", "710"])["lock"], "backup", "the lock survives the crash");
        let stderr = refused(&daemon, "vmctl", &["backup", "710", "--storage", "pbs"]);
        assert!(stderr.contains("locked"), "{stderr}");
        ok(&daemon, "vmctl", &["unlock", "710"]);
        let out = ok(&daemon, "vmctl", &["backup", "710", "--storage", "pbs", "--mode", "stop"]);
        assert!(out.contains("removed the incomplete backup"), "{out}");
    } else {
        // The backup finished before the kill landed: nothing to clean.
        let _ = run(&daemon, "vmctl", &["unlock", "710"]);
    }
    let complete = json(&daemon, "storectl", &["backup", "list", "--storage", "pbs", "--vmid", "710"]);
    assert_eq!(
        complete.as_array().expect("list").len(),
        snapshots_of(&store, "vm", "710").len(),
        "no incomplete snapshot is left"
    );

    ok(&daemon, "vmctl", &["destroy", "710"]);
    ok(&daemon, "vmctl", &["destroy", "711"]);
}

#[test]
fn container_backups_in_a_chunk_store_restore_identical_and_restore_single_files() {
    let daemon = HearthdProcess::start();
    let store = add_store(&daemon, None);
    let template = {
        let file = hearth_test::fixtures::busybox_template();
        ok(&daemon, "storectl", &["upload", "local", file.to_str().expect("utf-8"), "--content", "vztmpl"]);
        "local:vztmpl/busybox-template.tar.zst"
    };
    let (a, b) = (ctid(5), ctid(6));
    ok(
        &daemon,
        "ctctl",
        &["create", &a, template, "--rootfs", "local:0", "--hostname", "box", "--memory", "64", "--swap", "0"],
    );
    let root = rootfs_path(&daemon, &a);
    let data = root.join("srv/data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(data.join("plain"), b"hello").expect("write");
    std::fs::hard_link(data.join("plain"), data.join("plain-link")).expect("hard link");
    std::os::unix::fs::symlink("plain", data.join("symlink")).expect("symlink");
    xattr::set(data.join("plain"), "user.origin", b"hearth").expect("xattr");
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(data.join("setuid"), b"#!/bin/sh\n").expect("write");
    std::os::unix::fs::lchown(data.join("setuid"), Some(101_000), Some(101_001)).expect("chown");
    std::fs::set_permissions(data.join("setuid"), std::fs::Permissions::from_mode(0o4755)).expect("chmod");
    std::os::unix::fs::lchown(&data, Some(100_033), Some(100_033)).expect("chown");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o1750)).expect("chmod");
    let mut rng = Lcg(3);
    let big: Vec<u8> = (0..(12 << 20)).map(|_| rng.next() as u8).collect();
    std::fs::write(data.join("big"), &big).expect("big");
    let before = walk(&root);

    ok(&daemon, "ctctl", &["start", &a]);
    let out = ok(&daemon, "ctctl", &["backup", &a, "--storage", "pbs", "--mode", "snapshot"]);
    let first = archive_of(&out, &a);
    assert!(first.starts_with(&format!("pbs:backup/ct/{a}/")), "{first}");
    assert_eq!(json(&daemon, "ctctl", &["status", &a])["status"], "running");
    let after_first = chunk_count(&store);

    // File-level restore: list, a tar on stdout, and --to DIR unpacked by the caller.
    let listed = json(&daemon, "storectl", &["backup", "ls", &first, "/srv/data"]);
    let names: Vec<&str> = listed.as_array().expect("ls").iter().map(|e| e["path"].as_str().expect("path")).collect();
    assert!(names.contains(&"/srv/data/plain") && names.contains(&"/srv/data/big"), "{names:?}");
    let out = daemon.cli("storectl", &["backup", "extract", &first, "/srv/data/plain"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.windows(5).any(|w| w == b"hello") && out.stdout.len().is_multiple_of(512), "a tar stream");
    let dest = daemon.root().join("extracted");
    ok(&daemon, "storectl", &["backup", "extract", &first, "/srv/data", "--to", dest.to_str().expect("utf-8")]);
    assert_eq!(std::fs::read(dest.join("srv/data/plain")).expect("extracted"), b"hello");
    assert_eq!(std::fs::read(dest.join("srv/data/big")).expect("extracted"), big);
    assert_eq!(xattr::get(dest.join("srv/data/plain"), "user.origin").expect("xattr"), Some(b"hearth".to_vec()));

    // A small change stores few new chunks.
    std::fs::write(root.join("srv/data/new-file"), b"small change").expect("write");
    let out = ok(&daemon, "ctctl", &["backup", &a, "--storage", "pbs", "--mode", "suspend"]);
    let second = archive_of(&out, &a);
    let new = chunk_count(&store) - after_first;
    assert!(new <= 3, "{new} new chunks after a small change (of {after_first})");

    // The first backup restores every file, owner, mode, xattr and hard link.
    ok(&daemon, "ctctl", &["restore", &b, &first]);
    assert_eq!(json(&daemon, "ctctl", &["config", &b])["hostname"], "box");
    let after = walk(&rootfs_path(&daemon, &b));
    let differences: Vec<_> = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: {v} ≠ {:?}", after.get(k)))
        .chain(after.keys().filter(|k| !before.contains_key(*k)).map(|k| format!("{k}: extra")))
        .collect();
    assert!(differences.is_empty(), "{differences:#?}");

    // A corrupted chunk: verify reports the backups holding it and fails; the next backup
    // writes the chunk again and verify passes.
    let victim =
        chunk_files(&store).into_iter().max_by_key(|p| std::fs::metadata(p).map_or(0, |m| m.len())).expect("a chunk");
    let mut bytes = std::fs::read(&victim).expect("chunk");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&victim, bytes).expect("corrupting");
    let (code, stdout, stderr) = run(&daemon, "storectl", &["backup", "verify", "pbs"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let failed: Vec<&str> =
        stdout.lines().filter_map(|l| l.split(": FAILED").next().filter(|_| l.contains(": FAILED"))).collect();
    assert!(!failed.is_empty() && failed.iter().all(|v| *v == first || *v == second), "{stdout}");
    assert!(stderr.contains("failed verification"), "{stderr}");
    ok(&daemon, "ctctl", &["backup", &a, "--storage", "pbs", "--mode", "suspend"]);
    assert!(victim.exists(), "the next backup healed the chunk");
    ok(&daemon, "storectl", &["backup", "verify", &first]);
    let out = ok(&daemon, "storectl", &["backup", "verify", "pbs"]);
    assert!(out.contains("3 backups verified"), "{out}");
    // GC keeps every referenced chunk (and, within its safety margin, every other one).
    let chunks = chunk_count(&store);
    let out = ok(&daemon, "storectl", &["backup", "gc", "pbs"]);
    assert!(out.contains("removed 0 chunks"), "{out}");
    assert_eq!(chunk_count(&store), chunks);
    ok(&daemon, "storectl", &["backup", "verify", "pbs"]);

    ok(&daemon, "ctctl", &["stop", &a]);
    ok(&daemon, "ctctl", &["destroy", &a]);
    ok(&daemon, "ctctl", &["destroy", &b]);
}

#[test]
fn a_wrong_or_missing_key_is_refused_before_anything_is_written() {
    let daemon = HearthdProcess::start();
    let keys = daemon.root().join("keys");
    std::fs::create_dir_all(&keys).expect("keys");
    let key = keys.join("pbs.key");
    // A raw 32-byte key.
    std::fs::write(&key, [7u8; 32]).expect("key");
    let store = add_store(&daemon, Some(&key));
    ok(&daemon, "vmctl", &["create", "720", "--memory", "64", "--kvm", "0", "--scsi0", "local:0.0625,format=raw"]);
    std::fs::write(path_of(&daemon, &scsi0(&daemon, "720")), vec![0x42u8; 64 << 20]).expect("disk");
    let out = ok(&daemon, "vmctl", &["backup", "720", "--storage", "pbs"]);
    let first = archive_of(&out, "720");
    let chunks = chunk_count(&store);

    // Another key: refused, nothing written, the VM unlocked.
    std::fs::write(&key, [8u8; 32]).expect("key");
    let stderr = refused(&daemon, "vmctl", &["backup", "720", "--storage", "pbs"]);
    assert!(stderr.contains("wrong key"), "{stderr}");
    assert_eq!(snapshots_of(&store, "vm", "720").len(), 1);
    assert_eq!(chunk_count(&store), chunks);
    assert!(json(&daemon, "vmctl", &["status", "720"]).get("lock").is_none());
    let stderr = refused(&daemon, "vmctl", &["restore", "721", &first]);
    assert!(stderr.contains("does not match"), "{stderr}");

    // No key file at all.
    std::fs::remove_file(&key).expect("rm key");
    let stderr = refused(&daemon, "vmctl", &["backup", "720", "--storage", "pbs"]);
    assert!(stderr.contains("key file"), "{stderr}");
    assert_eq!(snapshots_of(&store, "vm", "720").len(), 1);

    // Listing and protection need no key.
    let listed = json(&daemon, "storectl", &["backup", "list", "--storage", "pbs"]);
    assert_eq!(listed.as_array().expect("list").len(), 1, "{listed}");
    ok(&daemon, "storectl", &["backup", "protect", &first]);

    // The right key restores.
    std::fs::write(&key, [7u8; 32]).expect("key");
    ok(&daemon, "vmctl", &["restore", "721", &first]);
    same_disk(&std::fs::read(path_of(&daemon, &scsi0(&daemon, "721"))).expect("disk"), &vec![0x42u8; 64 << 20]);
    ok(&daemon, "vmctl", &["destroy", "720"]);
    ok(&daemon, "vmctl", &["destroy", "721"]);
}

/// A tmpfs mounted for a test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&path).expect("mount point");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("mount");
        assert!(status.success(), "mounting a tmpfs at {}", path.display());
        Tmpfs(path)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_storage_fails_the_backup_naming_it_and_leaves_no_partial_archive() {
    let daemon = HearthdProcess::start();
    let full = Tmpfs::mount(daemon.root().join("full"), "8m");
    ok(&daemon, "storectl", &["add", "dir", "full", "--path", full.0.to_str().expect("utf-8"), "--content", "backup"]);
    ok(&daemon, "vmctl", &["create", "730", "--memory", "64", "--kvm", "0", "--scsi0", "local:0.0625,format=raw"]);
    // Random data: zstd cannot squeeze 64 MiB into 8.
    let mut rng = Lcg(5);
    let content: Vec<u8> = (0..(64 << 20)).map(|_| rng.next() as u8).collect();
    std::fs::write(path_of(&daemon, &scsi0(&daemon, "730")), &content).expect("disk");
    ok(&daemon, "vmctl", &["start", "730"]);
    let stderr = refused(&daemon, "vmctl", &["backup", "730", "--storage", "full", "--mode", "suspend"]);
    assert!(stderr.contains("storage 'full' is full"), "{stderr}");
    let left: Vec<String> = std::fs::read_dir(full.0.join("dump"))
        .expect("dump")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".log"))
        .collect();
    assert!(left.is_empty(), "no partial archive: {left:?}");
    let status = json(&daemon, "vmctl", &["status", "730"]);
    assert_eq!(status["status"], "running", "{status}");
    assert_eq!(status["qmpstatus"], "running", "resumed: {status}");
    assert!(status.get("lock").is_none(), "unlocked: {status}");
    ok(&daemon, "vmctl", &["stop", "730"]);
    ok(&daemon, "vmctl", &["destroy", "730"]);
    drop(full);
}

#[test]
fn only_root_names_a_key_file_and_extract_unpacks_with_the_callers_rights() {
    use std::os::unix::fs::MetadataExt;
    let daemon = HearthdProcess::start();
    let user = crate::UnixUser::new("ck");
    ok(&daemon, "userctl", &["user", "add", &user.userid()]);
    ok(&daemon, "userctl", &["acl", "modify", "/", "--roles", "Administrator", "--users", &user.userid()]);
    let dir = daemon.root().join("pbs-user");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.to_str().expect("utf-8");
    let out = user.run(&daemon, "storectl", &["add", "chunkstore", "upbs", "--path", path, "--keyfile", "/etc/shadow"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only root@pam"), "{out:?}");
    let out = user.run(&daemon, "storectl", &["add", "chunkstore", "upbs", "--path", path]);
    assert!(out.status.success(), "{out:?}");
    let out = user.run(&daemon, "storectl", &["set", "upbs", "--keyfile", "/etc/shadow"]);
    assert!(!out.status.success(), "{out:?}");

    // A container backup, extracted by the user: files end up owned by the user.
    let template = {
        let file = hearth_test::fixtures::busybox_template();
        ok(&daemon, "storectl", &["upload", "local", file.to_str().expect("utf-8"), "--content", "vztmpl"]);
        "local:vztmpl/busybox-template.tar.zst"
    };
    let a = ctid(7);
    ok(&daemon, "ctctl", &["create", &a, template, "--rootfs", "local:0", "--memory", "64", "--swap", "0"]);
    let out = ok(&daemon, "ctctl", &["backup", &a, "--storage", "upbs"]);
    let volid = archive_of(&out, &a);
    let dest = daemon.root().join("user-dest");
    std::fs::create_dir_all(&dest).expect("dest");
    std::os::unix::fs::chown(&dest, Some(user.uid), Some(user.gid)).expect("chown");
    let out =
        user.run(&daemon, "storectl", &["backup", "extract", &volid, "/etc", "--to", dest.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{out:?}");
    let meta = std::fs::metadata(dest.join("etc")).expect("extracted /etc");
    assert_eq!(meta.uid(), user.uid, "unpacked with the caller's rights");
    ok(&daemon, "ctctl", &["destroy", &a]);
}

/// A backup whose index was cut short lists as damaged, with what is wrong, not as a whole
/// backup of size 0; its restore is refused and leaves no guest.
#[test]
fn a_truncated_index_lists_as_damaged() {
    let daemon = HearthdProcess::start();
    let store = add_store(&daemon, None);
    ok(&daemon, "vmctl", &["create", "730", "--memory", "64", "--kvm", "0", "--scsi0", "local:0.0625,format=raw"]);
    std::fs::write(path_of(&daemon, &scsi0(&daemon, "730")), vec![0x24u8; 64 << 20]).expect("disk");
    let out = ok(&daemon, "vmctl", &["backup", "730", "--storage", "pbs"]);
    let archive = archive_of(&out, "730");
    let listed = json(&daemon, "storectl", &["backup", "list", "--storage", "pbs"]);
    assert_eq!(listed[0]["size"], 64 << 20, "{listed}");
    assert!(listed[0].get("damaged").is_none(), "{listed}");

    let snapshot = store.join("vm/730").join(&snapshots_of(&store, "vm", "730")[0]);
    let index = std::fs::read_dir(&snapshot)
        .expect("snapshot")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".img.fidx"))
        .expect("a disk index");
    let len = std::fs::metadata(&index).expect("index").len();
    std::fs::OpenOptions::new().write(true).open(&index).expect("index").set_len(len / 2).expect("truncate");

    let listed = json(&daemon, "storectl", &["backup", "list", "--storage", "pbs"]);
    let damaged = listed[0]["damaged"].as_str().unwrap_or_else(|| panic!("not listed as damaged: {listed}"));
    assert!(damaged.contains("scsi0.img.fidx"), "{damaged}");
    let text = ok(&daemon, "storectl", &["backup", "list", "--storage", "pbs"]);
    assert!(text.contains("DAMAGED: scsi0.img.fidx"), "{text}");
    refused(&daemon, "vmctl", &["restore", "731", &archive]);
    assert!(!daemon.cli("vmctl", &["config", "731"]).status.success(), "no half-restored guest");
}

/// The `N new (B bytes stored)` figures of a chunk store backup's log.
fn logged_new(out: &str) -> (usize, u64) {
    let line = out.lines().find(|l| l.contains(" new (")).unwrap_or_else(|| panic!("no chunk summary in: {out}"));
    let before = line.split(" new (").next().expect("split");
    let new = before.rsplit(' ').next().and_then(|n| n.parse().ok()).expect("new chunks");
    let after = line.split(" new (").nth(1).expect("split");
    let bytes = after.split(' ').next().and_then(|n| n.parse().ok()).expect("stored bytes");
    (new, bytes)
}

/// Chunk files and their total size (none before the store's first use creates it).
fn chunk_usage(store: &Path) -> (usize, u64) {
    if !store.join(".chunks").exists() {
        return (0, 0);
    }
    let files = chunk_files(store);
    (files.len(), files.iter().map(|f| std::fs::metadata(f).expect("stat").len()).sum())
}

#[test]
fn sync_level_is_a_storage_option_and_backups_log_what_the_store_gained() {
    let daemon = HearthdProcess::start();
    let dir = daemon.root().join("pbs");
    std::fs::create_dir_all(&dir).expect("store dir");
    let path = dir.to_str().expect("utf-8");
    // A value PBS does not have is refused, naming the option.
    let (code, _, err) =
        run(&daemon, "storectl", &["add", "chunkstore", "pbs", "--path", path, "--sync-level", "always"]);
    assert_ne!(code, 0);
    assert!(err.contains("sync-level"), "{err}");
    ok(&daemon, "storectl", &["add", "chunkstore", "pbs", "--path", path, "--sync-level", "file"]);
    let storage = std::fs::read_to_string(daemon.root().join("etc/hearth/storage.toml")).expect("storage.toml");
    assert!(storage.contains("sync-level = \"file\""), "{storage}");

    let template = {
        let file = hearth_test::fixtures::busybox_template();
        ok(&daemon, "storectl", &["upload", "local", file.to_str().expect("utf-8"), "--content", "vztmpl"]);
        "local:vztmpl/busybox-template.tar.zst"
    };
    let id = ctid(7);
    ok(&daemon, "ctctl", &["create", &id, template, "--rootfs", "local:0", "--hostname", "box", "--memory", "64"]);
    // Data that repeats at chunk scale, so workers meet equal chunks.
    let mut rng = Lcg(11);
    let block: Vec<u8> = (0..(6 << 20)).map(|_| rng.next() as u8).collect();
    let data = rootfs_path(&daemon, &id).join("srv");
    std::fs::create_dir_all(&data).expect("mkdir");
    for name in ["a", "b", "c"] {
        std::fs::write(data.join(name), &block).expect("write");
    }
    for level in ["file", "none", "filesystem"] {
        ok(&daemon, "storectl", &["set", "pbs", "--sync-level", level]);
        std::fs::write(data.join(format!("changed-{level}")), level.repeat(1 << 16)).expect("write");
        let before = chunk_usage(&dir);
        let out = ok(&daemon, "ctctl", &["backup", &id, "--storage", "pbs"]);
        let after = chunk_usage(&dir);
        assert_eq!(logged_new(&out), (after.0 - before.0, after.1 - before.1), "sync-level {level}: {out}");
    }
}
