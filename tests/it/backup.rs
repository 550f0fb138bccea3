//! Backups end to end: vzdump-style archives of a running VM (snapshot mode, through QEMU's
//! copy-before-write job) and of a container, restored and compared; refusals; prune through
//! `storectl backup prune` against a plain reference of Proxmox's rules over random histories;
//! backup jobs whose `run-due` runs a due job once even when two calls overlap.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use hearth_test::HearthdProcess;

use crate::{json, ok, run};

pub(crate) fn refused(daemon: &HearthdProcess, program: &str, args: &[&str]) -> String {
    let (code, stdout, stderr) = run(daemon, program, args);
    assert_eq!(code, 1, "{program} {args:?} should fail: {stdout}{stderr}");
    format!("{stdout}{stderr}")
}

pub(crate) fn path_of(daemon: &HearthdProcess, volid: &str) -> PathBuf {
    PathBuf::from(ok(daemon, "storectl", &["path", volid]).trim())
}

/// The archive volume id from a backup's log (`<vmid>: ok <volid>`).
pub(crate) fn archive_of(output: &str, vmid: &str) -> String {
    let prefix = format!("{vmid}: ok ");
    output
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no archive in the output:\n{output}"))
        .to_owned()
}

fn dump_dir(daemon: &HearthdProcess) -> PathBuf {
    daemon.root().join("var/lib/hearth/dump")
}

/// A small deterministic generator, so failures reproduce.
pub(crate) struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

pub(crate) fn same_disk(got: &[u8], want: &[u8]) {
    assert_eq!(got.len(), want.len(), "disk size");
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    assert_eq!(first, None, "the restored disk differs from byte {first:?} on");
}

#[test]
fn a_running_vm_backed_up_in_snapshot_mode_restores_bit_identical() {
    let daemon = HearthdProcess::start();
    ok(
        &daemon,
        "vmctl",
        &["create", "700", "--name", "web", "--memory", "64", "--kvm", "0", "--scsi0", "local:0.0625,format=raw"],
    );
    let volid = json(&daemon, "vmctl", &["config", "700"])["scsi0"]
        .as_str()
        .expect("scsi0")
        .split(',')
        .next()
        .expect("volid")
        .to_owned();
    let disk = path_of(&daemon, &volid);
    // Random data in places, zeros elsewhere (the archive leaves zero clusters out).
    let mut rng = Lcg(7);
    let mut content = vec![0u8; 64 << 20];
    for (offset, len) in [(0usize, 3usize << 20), (20 << 20, 65_536), (63 << 20, 1 << 20)] {
        for b in &mut content[offset..offset + len] {
            *b = rng.next() as u8;
        }
    }
    std::fs::write(&disk, &content).expect("writing the disk");
    ok(&daemon, "vmctl", &["start", "700"]);

    let out = ok(
        &daemon,
        "vmctl",
        &["backup", "700", "--storage", "local", "--mode", "snapshot", "--notes-template", "{{guestname}} nightly"],
    );
    assert!(out.contains("copy-before-write"), "{out}");
    let archive = archive_of(&out, "700");
    assert!(archive.starts_with("local:backup/vzdump-qemu-700-") && archive.ends_with(".vma.zst"), "{archive}");
    assert_eq!(json(&daemon, "vmctl", &["status", "700"])["status"], "running", "the VM ran on");
    assert!(json(&daemon, "vmctl", &["status", "700"]).get("lock").is_none(), "unlocked");
    let archive_path = path_of(&daemon, &archive);
    let base = archive_path.to_string_lossy().trim_end_matches(".vma.zst").to_owned();
    assert!(Path::new(&format!("{base}.log")).exists(), "the log is beside the archive");
    assert_eq!(std::fs::read_to_string(format!("{base}.vma.zst.notes")).expect("notes"), "web nightly");
    let leftovers: Vec<_> = std::fs::read_dir(dump_dir(&daemon))
        .expect("dump dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') || n.ends_with(".dat"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Refusals: an existing VM without --force, a running one even with it.
    let stderr = refused(&daemon, "vmctl", &["restore", "700", &archive]);
    assert!(stderr.contains("already exists") && stderr.contains("--force"), "{stderr}");
    let stderr = refused(&daemon, "vmctl", &["restore", "700", &archive, "--force"]);
    assert!(stderr.contains("is running"), "{stderr}");

    // A new id gets the disk as it was when the backup started, and the configuration.
    ok(&daemon, "vmctl", &["restore", "701", &archive]);
    let config = json(&daemon, "vmctl", &["config", "701"]);
    assert_eq!(config["name"], "web");
    let restored = config["scsi0"].as_str().expect("scsi0").split(',').next().expect("volid").to_owned();
    assert!(restored.starts_with("local:701/vm-701-disk-"), "{restored}");
    same_disk(&std::fs::read(path_of(&daemon, &restored)).expect("restored disk"), &content);

    // With --force over the stopped VM: its old disk is freed, the restored one matches.
    ok(&daemon, "vmctl", &["stop", "700"]);
    std::fs::write(&disk, vec![0x55u8; 1 << 20]).expect("scribbling on the disk");
    ok(&daemon, "vmctl", &["restore", "700", &archive, "--force"]);
    let again = json(&daemon, "vmctl", &["config", "700"])["scsi0"]
        .as_str()
        .expect("scsi0")
        .split(',')
        .next()
        .expect("v")
        .to_owned();
    same_disk(&std::fs::read(path_of(&daemon, &again)).expect("restored disk"), &content);
    if again != volid {
        assert!(!disk.exists(), "the overwritten VM's old disk is freed");
    }

    // A guest locked by another operation is skipped with the reason; the others go on.
    let file = daemon.root().join("etc/hearth/nodes/test/qemu/701.toml");
    let text = std::fs::read_to_string(&file).expect("config");
    std::fs::write(&file, format!("lock = \"snapshot\"\n{text}")).expect("config");
    let (code, stdout, _) =
        run(&daemon, "storectl", &["backup", "run", "--vmid", "700,701", "--storage", "local", "--mode", "stop"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("701: skipped: VM 701 is locked (snapshot)"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("700: ok local:backup/vzdump-qemu-700-")), "{stdout}");
    assert_eq!(json(&daemon, "vmctl", &["status", "701"])["lock"], "snapshot", "the other lock is left alone");
    std::fs::write(&file, text).expect("config");

    let listed = json(&daemon, "storectl", &["backup", "list", "--vmid", "700"]);
    assert_eq!(listed.as_array().expect("list").len(), 2, "{listed}");
    ok(&daemon, "vmctl", &["destroy", "700"]);
    ok(&daemon, "vmctl", &["destroy", "701"]);
}

/// `storectl list <storage> --content backup` holds the archives and nothing else: the task
/// log, the notes and the protection marker beside an archive are not volumes.
#[test]
fn a_backup_listing_holds_the_archive_and_none_of_its_side_files() {
    let daemon = HearthdProcess::start();
    ok(&daemon, "vmctl", &["create", "702", "--memory", "64", "--scsi0", "local:0.004"]);
    let out = ok(&daemon, "vmctl", &["backup", "702", "--storage", "local", "--notes-template", "nightly"]);
    let archive = archive_of(&out, "702");
    ok(&daemon, "storectl", &["backup", "protect", &archive]);
    let beside: BTreeSet<String> = std::fs::read_dir(dump_dir(&daemon))
        .expect("dump directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    for side in [".log", ".notes", ".protected"] {
        assert!(beside.iter().any(|name| name.ends_with(side)), "no {side} file beside the archive: {beside:?}");
    }

    let listed = json(&daemon, "storectl", &["list", "local", "--content", "backup"]);
    let volids: Vec<&str> = listed.as_array().expect("a list").iter().filter_map(|v| v["volid"].as_str()).collect();
    assert_eq!(volids, [archive.as_str()], "{listed}");
    let everything = json(&daemon, "storectl", &["list", "local"]);
    let backups = everything.as_array().expect("a list").iter().filter(|v| v["content"] == "backup").count();
    assert_eq!(backups, 1, "{everything}");
    ok(&daemon, "storectl", &["backup", "protect", &archive, "--off"]);
    ok(&daemon, "vmctl", &["destroy", "702"]);
}

/// Container ids unique to this test process, so cgroups of parallel tests differ.
pub(crate) fn ctid(n: u32) -> String {
    crate::ct::ctid(70 + n)
}

/// Everything about a file the archive must keep, keyed by its path in the tree.
pub(crate) fn walk(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, String> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).expect("metadata");
        let rel = path.strip_prefix(root).expect("inside").to_string_lossy().into_owned();
        let mut xattrs: Vec<String> = xattr::list(&path)
            .map(|names| {
                names
                    .map(|n| {
                        let v = xattr::get(&path, &n).ok().flatten().unwrap_or_default();
                        format!("{}={}", n.to_string_lossy(), String::from_utf8_lossy(&v))
                    })
                    .collect()
            })
            .unwrap_or_default();
        xattrs.sort();
        let kind = if meta.file_type().is_symlink() {
            format!("link->{}", std::fs::read_link(&path).expect("link").display())
        } else if meta.is_dir() {
            "dir".to_owned()
        } else if meta.is_file() {
            let bytes = std::fs::read(&path).expect("file");
            format!(
                "file {} {:x}",
                bytes.len(),
                bytes.iter().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(*b)))
            )
        } else {
            format!("special {:o} {}", meta.mode() & 0o170000, meta.rdev())
        };
        let hardlink = if meta.is_file() && meta.nlink() > 1 {
            let first = inodes.entry(meta.ino()).or_insert_with(|| rel.clone());
            format!(" linked-to {first}")
        } else {
            String::new()
        };
        let mtime = if meta.is_dir() { 0 } else { meta.mtime() };
        out.insert(
            rel,
            format!(
                "{kind} {:o} {}:{} mtime {mtime} {xattrs:?}{hardlink}",
                meta.mode() & 0o7777,
                meta.uid(),
                meta.gid()
            ),
        );
        if meta.is_dir() {
            let mut children: Vec<PathBuf> =
                std::fs::read_dir(&path).expect("dir").map(|e| e.expect("entry").path()).collect();
            children.sort();
            children.reverse();
            stack.extend(children);
        }
    }
    out
}

pub(crate) fn rootfs_path(daemon: &HearthdProcess, id: &str) -> PathBuf {
    let rootfs = json(daemon, "ctctl", &["config", id])["rootfs"].as_str().expect("rootfs").to_owned();
    path_of(daemon, rootfs.split(',').next().expect("volume"))
}

#[test]
fn a_container_backup_restores_every_file_owner_mode_xattr_and_hard_link() {
    let daemon = HearthdProcess::start();
    let template = {
        let file = hearth_test::fixtures::busybox_template();
        ok(&daemon, "storectl", &["upload", "local", file.to_str().expect("utf-8"), "--content", "vztmpl"]);
        "local:vztmpl/busybox-template.tar.zst"
    };
    let (a, b) = (ctid(1), ctid(2));
    ok(
        &daemon,
        "ctctl",
        &["create", &a, template, "--rootfs", "local:0", "--hostname", "box", "--memory", "64", "--swap", "0"],
    );
    let root = rootfs_path(&daemon, &a);
    // Files of every kind the archive must carry, owned by users of the container.
    let data = root.join("srv/data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(data.join("plain"), b"hello").expect("write");
    std::fs::write(data.join("setuid"), b"#!/bin/sh\n").expect("write");
    std::fs::hard_link(data.join("plain"), data.join("plain-link")).expect("hard link");
    std::os::unix::fs::symlink("plain", data.join("symlink")).expect("symlink");
    let sparse = std::fs::File::create(data.join("sparse")).expect("sparse");
    sparse.set_len(32 << 20).expect("sparse size");
    use std::os::unix::fs::FileExt;
    sparse.write_all_at(b"tail", (32 << 20) - 4).expect("sparse tail");
    xattr::set(data.join("plain"), "user.origin", b"hearth").expect("xattr (the test root needs user xattrs)");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(data.join("setuid"), std::fs::Permissions::from_mode(0o4755)).expect("chmod");
    std::os::unix::fs::lchown(data.join("setuid"), Some(101_000), Some(101_001)).expect("chown");
    std::os::unix::fs::lchown(&data, Some(100_033), Some(100_033)).expect("chown");
    std::os::unix::fs::lchown(data.join("symlink"), Some(100_007), Some(100_007)).expect("chown");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o1750)).expect("chmod");
    std::fs::set_permissions(data.join("setuid"), std::fs::Permissions::from_mode(0o4755)).expect("chmod");
    let before = walk(&root);

    // Running: suspend mode freezes the container's cgroup while its tree is read.
    ok(&daemon, "ctctl", &["start", &a]);
    let out = ok(&daemon, "ctctl", &["backup", &a, "--storage", "local", "--mode", "snapshot"]);
    assert!(out.contains("suspending the container instead") && out.contains("thawed"), "{out}");
    let archive = archive_of(&out, &a);
    assert!(archive.ends_with(".tar.zst") && archive.contains(&format!("vzdump-lxc-{a}-")), "{archive}");
    assert_eq!(json(&daemon, "ctctl", &["status", &a])["status"], "running");

    let stderr = refused(&daemon, "ctctl", &["restore", &a, &archive, "--force"]);
    assert!(stderr.contains("is running"), "{stderr}");
    ok(&daemon, "ctctl", &["restore", &b, &archive]);
    assert_eq!(json(&daemon, "ctctl", &["config", &b])["hostname"], "box");
    let after = walk(&rootfs_path(&daemon, &b));
    let differences: Vec<_> = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: {v} ≠ {:?}", after.get(k)))
        .chain(after.keys().filter(|k| !before.contains_key(*k)).map(|k| format!("{k}: extra")))
        .collect();
    assert!(differences.is_empty(), "{differences:#?}");
    let sparse_used =
        std::fs::metadata(rootfs_path(&daemon, &b).join("srv/data/sparse")).expect("sparse").blocks() * 512;
    assert!(sparse_used < 1 << 20, "sparse files stay sparse ({sparse_used} bytes used)");

    ok(&daemon, "ctctl", &["stop", &a]);
    ok(&daemon, "ctctl", &["destroy", &a]);
    ok(&daemon, "ctctl", &["destroy", &b]);
}

/// Days since 1970-01-01 → (year, month, day).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Proxmox's prune_mark_backup_group, written plainly (UTC; the test host runs UTC).
fn reference(times: &[(String, i64, bool)], keep: &[(&str, usize)]) -> BTreeMap<String, &'static str> {
    let mut list: Vec<(String, i64, Option<&'static str>)> = Vec::new();
    let mut marks = BTreeMap::new();
    for (id, t, protected) in times {
        if *protected {
            marks.insert(id.clone(), "protected");
        } else {
            list.push((id.clone(), *t, None));
        }
    }
    list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let period = |rule: &str, t: i64| -> String {
        let days = t.div_euclid(86_400);
        let (y, m, d) = civil(days);
        let h = t.rem_euclid(86_400) / 3600;
        match rule {
            "keep-last" => t.to_string(),
            "keep-hourly" => format!("{y}/{m}/{d}/{h}"),
            "keep-daily" => format!("{y}/{m}/{d}"),
            "keep-weekly" => {
                let weekday = (days + 3).rem_euclid(7);
                let thursday = days - weekday + 3;
                let (iso_year, _, _) = civil(thursday);
                let jan1 = (0..).map(|k| thursday - k).find(|d| civil(*d).0 != iso_year).expect("a previous year") + 1;
                format!("{iso_year}/{}", (thursday - jan1) / 7 + 1)
            }
            "keep-monthly" => format!("{y}/{m}"),
            _ => format!("{y}"),
        }
    };
    for (rule, count) in keep {
        if *count == 0 {
            continue;
        }
        let already: BTreeSet<String> =
            list.iter().filter(|e| e.2 == Some("keep")).map(|e| period(rule, e.1)).collect();
        let mut newly = BTreeSet::new();
        for entry in &mut list {
            let id = period(rule, entry.1);
            if entry.2.is_some() || already.contains(&id) {
                continue;
            }
            if !newly.contains(&id) {
                if newly.len() >= *count {
                    break;
                }
                newly.insert(id);
                entry.2 = Some("keep");
            } else {
                entry.2 = Some("remove");
            }
        }
    }
    for (id, _, mark) in list {
        marks.insert(id, mark.unwrap_or("remove"));
    }
    marks
}

fn stamp(t: i64) -> String {
    let (y, m, d) = civil(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!("{y:04}_{m:02}_{d:02}-{:02}_{:02}_{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[test]
fn prune_keeps_exactly_what_proxmox_rules_keep_over_random_histories() {
    let daemon = HearthdProcess::start();
    let dump = dump_dir(&daemon);
    std::fs::create_dir_all(&dump).expect("dump dir");
    let rules = ["keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly"];
    let mut rng = Lcg(42);
    for round in 0..12 {
        for entry in std::fs::read_dir(&dump).expect("dump") {
            std::fs::remove_file(entry.expect("entry").path()).expect("clean");
        }
        let start = 1_600_000_000 + (rng.next() % 100_000_000) as i64;
        let span = [3 * 3600, 3 * 86_400, 40 * 86_400, 800 * 86_400][(rng.next() % 4) as usize];
        let mut history = Vec::new();
        for _ in 0..(5 + rng.next() % 25) {
            let t = start + (rng.next() % span) as i64;
            let file = format!("vzdump-qemu-100-{}.vma.zst", stamp(t));
            let protected = rng.next().is_multiple_of(10);
            std::fs::write(dump.join(&file), b"x").expect("archive");
            if protected {
                std::fs::write(dump.join(format!("{file}.protected")), b"").expect("protected");
            }
            history.push((format!("local:backup/{file}"), t, protected));
        }
        history.sort();
        history.dedup_by(|a, b| a.0 == b.0);
        let keep: Vec<(&str, usize)> =
            rules.iter().map(|r| (*r, (rng.next() % 4) as usize)).filter(|(_, n)| *n > 0 || round == 0).collect();
        let mut args = vec!["backup".to_owned(), "prune".into(), "local".into(), "--vmid".into(), "100".into()];
        for (rule, n) in &keep {
            args.push(format!("--{rule}"));
            args.push(n.to_string());
        }
        let dry_run = round % 2 == 0;
        if dry_run {
            args.push("--dry-run".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let marked = json(&daemon, "storectl", &args);
        let got: BTreeMap<String, &str> = marked
            .as_array()
            .expect("a list")
            .iter()
            .map(|e| (e["volid"].as_str().expect("volid").to_owned(), e["mark"].as_str().expect("mark")))
            .collect();
        let want = reference(&history, &keep);
        assert_eq!(got, want, "round {round}, keep {keep:?}, history {history:?}");
        for (volid, mark) in &want {
            let file = dump.join(volid.trim_start_matches("local:backup/"));
            assert_eq!(file.exists(), dry_run || *mark != "remove", "{volid} ({mark}, dry run {dry_run})");
        }
    }
    // Protection through the CLI: a protected backup survives keep-last=0 style pruning.
    let left: Vec<String> = json(&daemon, "storectl", &["backup", "list", "--storage", "local"])
        .as_array()
        .expect("list")
        .iter()
        .map(|e| e["volid"].as_str().expect("volid").to_owned())
        .collect();
    let first = left.first().expect("something is left").clone();
    ok(&daemon, "storectl", &["backup", "protect", &first]);
    let marked = json(&daemon, "storectl", &["backup", "prune", "local", "--keep-last", "1", "--dry-run"]);
    assert!(marked.as_array().expect("list").iter().any(|e| e["volid"] == first.as_str() && e["mark"] == "protected"));
    ok(&daemon, "storectl", &["backup", "protect", &first, "--off"]);
    let stderr = refused(&daemon, "storectl", &["backup", "prune", "local", "--keep-all", "--keep-last", "2"]);
    assert!(stderr.contains("keep-all"), "{stderr}");
}

#[test]
fn two_overlapping_run_due_calls_run_a_due_job_once() {
    let daemon = HearthdProcess::start();
    ok(&daemon, "vmctl", &["create", "720", "--memory", "64", "--scsi0", "local:0.01,format=raw"]);
    ok(
        &daemon,
        "storectl",
        &[
            "backup",
            "job",
            "add",
            "nightly",
            "--schedule",
            "*/1",
            "--vmid",
            "720",
            "--storage",
            "local",
            "--repeat-missed",
            "1",
            "--bwlimit",
            "1000000",
        ],
    );
    let jobs = json(&daemon, "storectl", &["backup", "job", "list"]);
    assert_eq!(jobs[0]["job"]["id"], "nightly", "{jobs}");
    assert_eq!(jobs[0]["job"]["selection"]["options"]["bwlimit"], 1_000_000, "{jobs}");
    assert!(daemon.root().join("etc/hearth/jobs.toml").exists());
    // Nothing is due right after adding (a new job counts from now) but within a minute.
    // Pretend the last run was five minutes ago: the job is overdue, and repeat-missed catches up.
    let state = daemon.root().join("var/lib/hearth/jobs/vzdump-nightly.json");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs() as i64;
    std::fs::write(&state, format!("{{\"last_run\": {}}}", now - 300)).expect("state");

    let spawn = || daemon.command("storectl").args(["backup", "job", "run-due"]).output();
    let (one, two) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join().expect("thread").expect("run-due"), b.join().expect("thread").expect("run-due"))
    });
    assert!(one.status.success() && two.status.success(), "{one:?} {two:?}");
    let archives: Vec<String> = std::fs::read_dir(dump_dir(&daemon))
        .expect("dump")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("vzdump-qemu-720-") && n.ends_with(".vma.zst"))
        .collect();
    assert_eq!(archives.len(), 1, "{archives:?}");
    let printed = format!("{}{}", String::from_utf8_lossy(&one.stdout), String::from_utf8_lossy(&two.stdout));
    assert_eq!(printed.matches("720: ok ").count(), 1, "{printed}");
    assert!(printed.contains("720: bandwidth limit: 1000000 KiB/s"), "the job's bwlimit applies: {printed}");

    // Not due again until the next minute; a third call starts nothing.
    let out = ok(&daemon, "storectl", &["backup", "job", "run-due"]);
    assert!(!out.contains("720: ok"), "{out}");
    ok(&daemon, "storectl", &["backup", "job", "remove", "nightly"]);
    assert!(!state.exists());
    ok(&daemon, "vmctl", &["destroy", "720"]);
}

/// Backs a guest up through the client library; answers the task's events.
fn backup_events(
    daemon: &HearthdProcess,
    kind: hearth_core::GuestKind,
    id: u32,
    options: hearth_proto::BackupOptions,
) -> Vec<hearth_proto::TaskEvent> {
    use hearth_proto::{BackupGuest, CtRequest, Payload, Request, VmRequest};
    let mut client = daemon.client();
    let req = BackupGuest { vmid: crate::vmid(id), options };
    let request = match kind {
        hearth_core::GuestKind::Vm => Request::Vm(VmRequest::Backup(req)),
        hearth_core::GuestKind::Ct => Request::Ct(CtRequest::Backup(req)),
    };
    let Payload::Task(upid) = client.call(&request).expect("backup is accepted") else { panic!("a task") };
    let mut events = Vec::new();
    let info = client.follow(&upid, |e| events.push(e.clone())).expect("follow");
    assert_eq!(info.state, hearth_proto::TaskState::Ok, "{events:?}");
    events
}

fn progress_of(events: &[hearth_proto::TaskEvent]) -> Vec<(u64, u64)> {
    events
        .iter()
        .filter_map(|e| match e {
            hearth_proto::TaskEvent::Progress { done, total } => Some((*done, *total)),
            _ => None,
        })
        .collect()
}

fn log_of(events: &[hearth_proto::TaskEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            hearth_proto::TaskEvent::Log(l) => Some(format!("{l}\n")),
            _ => None,
        })
        .collect()
}

/// Progress grows without going back and ends with everything done.
fn grows_to_total(progress: &[(u64, u64)], total: Option<u64>) {
    let last = *progress.last().unwrap_or_else(|| panic!("no progress reported"));
    assert_eq!(last.0, last.1, "ends with done == total: {progress:?}");
    if let Some(total) = total {
        assert_eq!(last.1, total, "{progress:?}");
    }
    assert!(progress.windows(2).all(|w| w[0].0 <= w[1].0), "done never goes back: {progress:?}");
    assert!(progress.iter().all(|(d, t)| d <= t), "{progress:?}");
}

#[test]
fn a_backup_reports_byte_progress_and_names_its_bandwidth_limit() {
    let daemon = HearthdProcess::start();
    // 16 MiB: four 4 MiB blocks read at 16 MiB/s, so progress comes in steps a follower sees.
    ok(&daemon, "vmctl", &["create", "710", "--memory", "64", "--kvm", "0", "--scsi0", "local:0.015625,format=raw"]);
    let volid = json(&daemon, "vmctl", &["config", "710"])["scsi0"]
        .as_str()
        .expect("scsi0")
        .split(',')
        .next()
        .expect("volid")
        .to_owned();
    std::fs::write(path_of(&daemon, &volid), vec![0x5au8; 16 << 20]).expect("disk");
    let options =
        hearth_proto::BackupOptions { storage: Some("local".into()), bwlimit: Some(16 * 1024), ..Default::default() };
    let events = backup_events(&daemon, hearth_core::GuestKind::Vm, 710, options);
    let log = log_of(&events);
    assert!(log.contains("bandwidth limit: 16384 KiB/s"), "{log}");
    let progress = progress_of(&events);
    grows_to_total(&progress, Some(16 << 20));
    assert!(progress.iter().any(|(d, t)| *d > 0 && d < t), "progress in between: {progress:?}");

    // Without a limit, no such line; the CLI takes --bwlimit too and prints no progress lines.
    let events = backup_events(
        &daemon,
        hearth_core::GuestKind::Vm,
        710,
        hearth_proto::BackupOptions { storage: Some("local".into()), ..Default::default() },
    );
    assert!(!log_of(&events).contains("bandwidth limit"));
    grows_to_total(&progress_of(&events), Some(16 << 20));
    // Archives are named to the second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = ok(&daemon, "vmctl", &["backup", "710", "--storage", "local", "--bwlimit", "65536"]);
    assert!(out.contains("bandwidth limit: 65536 KiB/s"), "{out}");
    assert!(!out.contains('%'), "no progress without a terminal: {out}");
    let archive = archive_of(&out, "710");

    // A restore reports the bytes written.
    let events = restore_events(&daemon, hearth_core::GuestKind::Vm, 711, &archive);
    grows_to_total(&progress_of(&events), Some(16 << 20));

    // To a chunk store: the same, both ways.
    let store = daemon.root().join("pbs");
    std::fs::create_dir_all(&store).expect("store dir");
    ok(&daemon, "storectl", &["add", "chunkstore", "pbs", "--path", store.to_str().expect("utf-8")]);
    let events = backup_events(
        &daemon,
        hearth_core::GuestKind::Vm,
        710,
        hearth_proto::BackupOptions { storage: Some("pbs".into()), bwlimit: Some(32 * 1024), ..Default::default() },
    );
    let log = log_of(&events);
    assert!(log.contains("bandwidth limit: 32768 KiB/s"), "{log}");
    grows_to_total(&progress_of(&events), Some(16 << 20));
    let events = restore_events(&daemon, hearth_core::GuestKind::Vm, 712, &archive_of(&log, "710"));
    grows_to_total(&progress_of(&events), Some(16 << 20));
}

fn restore_events(
    daemon: &HearthdProcess,
    kind: hearth_core::GuestKind,
    id: u32,
    archive: &str,
) -> Vec<hearth_proto::TaskEvent> {
    use hearth_proto::{CtRequest, Payload, Request, RestoreGuest, VmRequest};
    let mut client = daemon.client();
    let req = RestoreGuest {
        vmid: crate::vmid(id),
        archive: archive.to_owned(),
        storage: Some("local".into()),
        force: false,
        unprivileged: None,
        rootfs: None,
        bwlimit: None,
    };
    let request = match kind {
        hearth_core::GuestKind::Vm => Request::Vm(VmRequest::Restore(req)),
        hearth_core::GuestKind::Ct => Request::Ct(CtRequest::Restore(req)),
    };
    let Payload::Task(upid) = client.call(&request).expect("restore is accepted") else { panic!("a task") };
    let mut events = Vec::new();
    let info = client.follow(&upid, |e| events.push(e.clone())).expect("follow");
    assert_eq!(info.state, hearth_proto::TaskState::Ok, "{events:?}");
    events
}

#[test]
fn a_container_mount_point_with_backup_1_survives_backup_and_restore() {
    let daemon = HearthdProcess::start();
    let template = crate::template(&daemon);
    let (a, b) = (ctid(3), ctid(4));
    ok(
        &daemon,
        "ctctl",
        &[
            "create",
            &a,
            &template,
            "--rootfs",
            "local:0",
            "--memory",
            "64",
            "--swap",
            "0",
            "--mp0",
            "local:0,mp=/data,backup=1",
            "--mp1",
            "local:0,mp=/scratch",
        ],
    );
    let config = json(&daemon, "ctctl", &["config", &a]);
    let mp = |c: &serde_json::Value, key: &str| {
        path_of(&daemon, c[key].as_str().unwrap_or_else(|| panic!("{key}: {c}")).split(',').next().expect("volume"))
    };
    std::fs::write(mp(&config, "mp0").join("kept"), b"in the mount point").expect("write");
    std::fs::create_dir_all(mp(&config, "mp0").join("sub/dir")).expect("mkdir");
    std::fs::write(mp(&config, "mp0").join("sub/dir/deep"), b"deep").expect("write");
    std::fs::write(mp(&config, "mp1").join("left-out"), b"no backup=1").expect("write");

    let events = backup_events(
        &daemon,
        hearth_core::GuestKind::Ct,
        a.parse().expect("id"),
        hearth_proto::BackupOptions { storage: Some("local".into()), ..Default::default() },
    );
    let log = log_of(&events);
    assert!(log.contains("including mp0") && log.contains("excluding mp1"), "{log}");
    grows_to_total(&progress_of(&events), None);
    let archive = archive_of(&log, &a);

    let events = restore_events(&daemon, hearth_core::GuestKind::Ct, b.parse().expect("id"), &archive);
    grows_to_total(&progress_of(&events), None);
    let out = log_of(&events);
    assert!(out.contains("restored mp0"), "{out}");
    let restored = json(&daemon, "ctctl", &["config", &b]);
    assert!(restored.get("mp1").is_none(), "mp1 was not backed up: {restored}");
    let mp0 = restored["mp0"].as_str().expect("mp0");
    assert!(mp0.contains("mp=/data") && mp0.contains(&format!("local:{b}/")), "a new volume: {mp0}");
    let dir = mp(&restored, "mp0");
    assert_eq!(std::fs::read(dir.join("kept")).expect("kept"), b"in the mount point");
    assert_eq!(std::fs::read(dir.join("sub/dir/deep")).expect("deep"), b"deep");
    let root = rootfs_path(&daemon, &b);
    assert!(root.join("data").is_dir(), "the mount point stays in the rootfs");
    assert!(std::fs::read_dir(root.join("data")).expect("data").next().is_none(), "and is empty");
    assert!(!root.join("scratch/left-out").exists());

    ok(&daemon, "ctctl", &["destroy", &a]);
    ok(&daemon, "ctctl", &["destroy", &b]);
}

#[test]
fn a_running_container_on_btrfs_is_backed_up_from_read_only_snapshots_without_freezing() {
    let fs = hearth_test::BtrfsLoop::new(2 << 30).expect("a btrfs loop mount (install btrfs-progs)");
    let daemon = HearthdProcess::start();
    let path = fs.path().to_str().expect("UTF-8 path");
    ok(&daemon, "storectl", &["add", "btrfs", "fast", "--path", path, "--content", "images,rootdir"]);
    let template = crate::template(&daemon);
    let (a, b) = (ctid(5), ctid(6));
    ok(
        &daemon,
        "ctctl",
        &[
            "create",
            &a,
            &template,
            "--rootfs",
            "fast:1",
            "--memory",
            "64",
            "--swap",
            "0",
            "--mp0",
            "fast:1,mp=/data,backup=1",
        ],
    );
    let root = rootfs_path(&daemon, &a);
    std::fs::write(root.join("etc/marker"), b"root file").expect("write");
    let config = json(&daemon, "ctctl", &["config", &a]);
    let mp0 = path_of(&daemon, config["mp0"].as_str().expect("mp0").split(',').next().expect("volume"));
    std::fs::write(mp0.join("kept"), b"on the mount point").expect("write");
    ok(&daemon, "ctctl", &["start", &a]);

    let out = ok(&daemon, "ctctl", &["backup", &a, "--storage", "local", "--mode", "snapshot"]);
    assert!(out.contains("rootfs: read-only btrfs snapshot") && out.contains("mp0: read-only btrfs snapshot"), "{out}");
    assert!(!out.contains("froze") && !out.contains("suspending"), "never frozen: {out}");
    assert!(out.contains("removed snapshot"), "{out}");
    assert_eq!(json(&daemon, "ctctl", &["status", &a])["status"], "running");
    let leftovers: Vec<_> = std::fs::read_dir(fs.path().join(format!("images/{a}")))
        .expect("images")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("@vzdump"))
        .collect();
    assert!(leftovers.is_empty(), "snapshots deleted: {leftovers:?}");

    let archive = archive_of(&out, &a);
    ok(&daemon, "ctctl", &["restore", &b, &archive, "--storage", "fast"]);
    let restored = json(&daemon, "ctctl", &["config", &b]);
    assert_eq!(std::fs::read(rootfs_path(&daemon, &b).join("etc/marker")).expect("marker"), b"root file");
    let mp0 = path_of(&daemon, restored["mp0"].as_str().expect("mp0").split(',').next().expect("volume"));
    assert_eq!(std::fs::read(mp0.join("kept")).expect("kept"), b"on the mount point");

    ok(&daemon, "ctctl", &["stop", &a]);
    ok(&daemon, "ctctl", &["destroy", &a]);
    ok(&daemon, "ctctl", &["destroy", &b]);
}
