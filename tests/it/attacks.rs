//! Attacks by users with narrow grants, each reproduced as it was reported and each refused:
//! a restore that makes a privileged container or brings in root-only keys and another guest's
//! data, CD-ROM media that read any ISO or backup, disks allocated without a storage grant, and
//! crafted archives. After every refusal nothing has changed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hearth_test::HearthdProcess;
use nix::sys::signal::Signal;

use crate::{UnixUser, json, ok};

/// Container ids unique to this test process.
fn ctid(n: u32) -> String {
    crate::ct::ctid(85 + n)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a CLI as `user` that must be refused; answers what it printed.
fn refused(user: &UnixUser, daemon: &HearthdProcess, program: &str, args: &[&str]) -> String {
    let out = user.run(daemon, program, args);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{program} {args:?} by {} was allowed: {text}", user.name);
    text
}

/// Runs a CLI as `user` that must succeed.
fn allowed(user: &UnixUser, daemon: &HearthdProcess, program: &str, args: &[&str]) -> String {
    let out = user.run(daemon, program, args);
    assert!(out.status.success(), "{program} {args:?} by {} was refused: {}", user.name, stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes access.toml with the user and `(path, role)` grants, and restarts hearthd to load it.
fn grant(daemon: &mut HearthdProcess, user: &UnixUser, acls: &[(&str, &str)]) {
    let id = user.userid();
    let mut text = format!("[users.\"{id}\"]\n");
    for (path, role) in acls {
        text.push_str(&format!("\n[[acl]]\npath = \"{path}\"\nuser = \"{id}\"\nrole = \"{role}\"\n"));
    }
    std::fs::write(daemon.root().join("etc/hearth/access.toml"), text).expect("access.toml");
    daemon.signal(Signal::SIGTERM);
    daemon.restart();
}

fn upload_template(daemon: &HearthdProcess) -> &'static str {
    let file = hearth_test::fixtures::busybox_template();
    ok(daemon, "storectl", &["upload", "local", file.to_str().expect("utf-8"), "--content", "vztmpl"]);
    "local:vztmpl/busybox-template.tar.zst"
}

/// The volume ids on `local` but backups, to prove a refusal allocated nothing.
fn volumes(daemon: &HearthdProcess) -> Vec<String> {
    let listed = json(daemon, "storectl", &["list", "local"]);
    let mut ids: Vec<String> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|v| v["volid"].as_str().expect("volid").to_owned())
        .filter(|v| !v.starts_with("local:backup/"))
        .collect();
    ids.sort();
    ids
}

fn exists(daemon: &HearthdProcess, program: &str, id: &str) -> bool {
    daemon.cli(program, &["config", id]).status.success()
}

/// The archive a backup made, from the newest entry of `storectl backup list`.
fn newest_backup(daemon: &HearthdProcess, vmid: &str) -> String {
    let listed = json(daemon, "storectl", &["backup", "list", "--vmid", vmid]);
    let mut entries: Vec<(i64, String)> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| (e["ctime"].as_i64().expect("ctime"), e["volid"].as_str().expect("volid").to_owned()))
        .collect();
    entries.sort();
    entries.pop().unwrap_or_else(|| panic!("no backup of {vmid}")).1
}

fn dump_dir(daemon: &HearthdProcess) -> PathBuf {
    daemon.root().join("var/lib/hearth/dump")
}

/// Issue defect 1: PVEVMAdmin on a new id, PVEVMUser on an unprivileged container and PVEDatastoreUser
/// on `local` back the container up and restore it as a privileged one (host root).
#[test]
fn a_user_cannot_restore_a_container_as_privileged() {
    let mut daemon = HearthdProcess::start();
    let template = upload_template(&daemon);
    let (source, target, privileged) = (ctid(1), ctid(2), ctid(3));
    ok(&daemon, "ctctl", &["create", &source, template, "--rootfs", "local:0", "--memory", "64"]);
    ok(&daemon, "ctctl", &["create", &privileged, template, "--rootfs", "local:0", "--unprivileged", "0"]);
    ok(&daemon, "ctctl", &["backup", &privileged, "--storage", "local"]);
    let privileged_archive = newest_backup(&daemon, &privileged);
    let user = UnixUser::new("rp");
    let (on_target, on_source, on_privileged) =
        (format!("/vms/{target}"), format!("/vms/{source}"), format!("/vms/{privileged}"));
    grant(
        &mut daemon,
        &user,
        &[
            (&on_target, "PVEVMAdmin"),
            (&on_source, "PVEVMUser"),
            (&on_privileged, "PVEVMUser"),
            ("/storage/local", "PVEDatastoreUser"),
        ],
    );
    allowed(&user, &daemon, "ctctl", &["backup", &source, "--storage", "local"]);
    let archive = newest_backup(&daemon, &source);
    let before = volumes(&daemon);

    let text = refused(&user, &daemon, "ctctl", &["restore", &target, &archive, "--unprivileged", "0"]);
    assert!(text.contains("unprivileged") && text.contains("root@pam"), "{text}");
    // A privileged container's own backup brings `unprivileged: 0` with it.
    let text = refused(&user, &daemon, "ctctl", &["restore", &target, &privileged_archive]);
    assert!(text.contains("unprivileged") && text.contains("root@pam"), "{text}");
    assert!(!exists(&daemon, "ctctl", &target), "a refused restore leaves no container");
    assert_eq!(volumes(&daemon), before, "a refused restore allocates nothing");

    // The same restore, unprivileged, is the user's to make.
    allowed(&user, &daemon, "ctctl", &["restore", &target, &archive]);
    let config = json(&daemon, "ctctl", &["config", &target]);
    assert_ne!(config["unprivileged"], serde_json::json!(false), "{config}");
}

/// Issue defect 2: a user with PVEVMAdmin on VM 100 restores root's backup of VM 101 (with a
/// root-only `args` line) over VM 100.
#[test]
fn a_restore_needs_the_backups_guest_and_brings_no_root_only_key() {
    let mut daemon = HearthdProcess::start();
    ok(&daemon, "vmctl", &["create", "100", "--memory", "64"]);
    ok(&daemon, "vmctl", &["create", "101", "--memory", "64", "--scsi0", "local:0.004"]);
    ok(&daemon, "vmctl", &["set", "101", "--args", "-drive file=/etc/shadow,if=none"]);
    ok(&daemon, "vmctl", &["backup", "101", "--storage", "local"]);
    let archive = newest_backup(&daemon, "101");
    let user = UnixUser::new("rv");
    grant(&mut daemon, &user, &[("/vms/100", "PVEVMAdmin"), ("/storage/local", "PVEDatastoreUser")]);
    let before =
        std::fs::read_to_string(daemon.root().join("etc/hearth/nodes").join(node(&daemon)).join("qemu/100.toml"))
            .expect("config of 100");
    let volumes_before = volumes(&daemon);

    // Nothing on VM 101: its backup is not the user's to read.
    let text = refused(&user, &daemon, "vmctl", &["restore", "100", &archive, "--force", "1"]);
    assert!(text.contains("VM.Backup") && text.contains("/vms/101"), "{text}");
    // With VM.Backup on 101 the backup may be read, but its `args` are root's alone.
    grant(
        &mut daemon,
        &user,
        &[("/vms/100", "PVEVMAdmin"), ("/vms/101", "PVEVMUser"), ("/storage/local", "PVEDatastoreUser")],
    );
    let text = refused(&user, &daemon, "vmctl", &["restore", "100", &archive, "--force", "1"]);
    assert!(text.contains("args") && text.contains("root@pam"), "{text}");
    let after =
        std::fs::read_to_string(daemon.root().join("etc/hearth/nodes").join(node(&daemon)).join("qemu/100.toml"))
            .expect("config of 100");
    assert_eq!(after, before, "VM 100 is unchanged");
    assert_eq!(volumes(&daemon), volumes_before, "nothing was allocated");

    // Without the root-only key the restore is the user's to make.
    ok(&daemon, "vmctl", &["set", "101", "--delete", "args"]);
    // Archive names have one-second resolution.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    ok(&daemon, "vmctl", &["backup", "101", "--storage", "local"]);
    let clean = newest_backup(&daemon, "101");
    allowed(&user, &daemon, "vmctl", &["restore", "100", &clean, "--force", "1"]);
    let config = json(&daemon, "vmctl", &["config", "100"]);
    assert!(config.get("args").is_none() && config.get("scsi0").is_some(), "{config}");
}

/// The node's name: the one directory under etc/hearth/nodes.
fn node(daemon: &HearthdProcess) -> String {
    let mut names = std::fs::read_dir(daemon.root().join("etc/hearth/nodes")).expect("nodes");
    names.next().expect("one node").expect("entry").file_name().to_string_lossy().into_owned()
}

/// Issue defect 3: VM.Config.CDROM alone attached any ISO and another guest's backup.
#[test]
fn cdrom_media_need_the_storage_and_must_be_isos() {
    let mut daemon = HearthdProcess::start();
    ok(&daemon, "vmctl", &["create", "100", "--memory", "64"]);
    ok(&daemon, "vmctl", &["create", "101", "--memory", "64"]);
    ok(&daemon, "vmctl", &["backup", "101", "--storage", "local"]);
    let backup = newest_backup(&daemon, "101");
    let iso = daemon.root().join("secret.iso");
    std::fs::write(&iso, vec![0u8; 64 << 10]).expect("iso");
    ok(&daemon, "storectl", &["upload", "local", iso.to_str().expect("utf-8"), "--content", "iso"]);
    let user = UnixUser::new("cd");
    grant(&mut daemon, &user, &[("/vms/100", "PVEVMUser")]);
    let before = json(&daemon, "vmctl", &["config", "100"]);

    let text = refused(&user, &daemon, "vmctl", &["set", "100", "--ide2", &format!("{backup},media=cdrom")]);
    assert!(text.contains("VM.Backup") && text.contains("/vms/101"), "another guest's backup: {text}");
    let text = refused(&user, &daemon, "vmctl", &["set", "100", "--ide2", "local:iso/secret.iso,media=cdrom"]);
    assert!(text.contains("Datastore.Audit") && text.contains("/storage/local"), "{text}");
    assert_eq!(json(&daemon, "vmctl", &["config", "100"]), before);
    // Root is refused a backup as a medium too: the content is wrong whoever asks.
    let out = daemon.cli("vmctl", &["set", "100", "--ide2", &format!("{backup},media=cdrom")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("needs 'iso'"), "{}", stderr(&out));

    // Read access to the storage makes its ISOs usable; a replaced medium is not the VM's to keep.
    grant(&mut daemon, &user, &[("/vms/100", "PVEVMUser"), ("/storage/local", "PVEDatastoreUser")]);
    allowed(&user, &daemon, "vmctl", &["set", "100", "--ide2", "local:iso/secret.iso,media=cdrom"]);
    allowed(&user, &daemon, "vmctl", &["set", "100", "--ide2", "none,media=cdrom"]);
    let config = json(&daemon, "vmctl", &["config", "100"]);
    assert!(config.get("unused0").is_none(), "the ISO did not become unused0: {config}");
    assert!(daemon.root().join("var/lib/hearth/template/iso/secret.iso").exists());
}

/// Issue defect 4: disks were allocated with no privilege on the storage; every path that
/// spends space needs Datastore.AllocateSpace there.
#[test]
fn every_allocation_needs_space_on_its_storage() {
    let mut daemon = HearthdProcess::start();
    ok(&daemon, "vmctl", &["create", "100", "--memory", "64", "--scsi0", "local:0.004"]);
    let user = UnixUser::new("al");
    grant(&mut daemon, &user, &[("/vms/100", "PVEVMAdmin"), ("/vms/102", "PVEVMAdmin")]);
    let before = volumes(&daemon);
    for args in [
        vec!["set", "100", "--virtio1", "local:0.01"],
        vec!["resize", "100", "scsi0", "+4M"],
        vec!["clone", "100", "102", "--full", "1"],
        vec!["create", "102", "--memory", "64", "--scsi0", "local:0.004"],
        vec!["move-disk", "100", "scsi0", "local", "--format", "qcow2"],
    ] {
        let text = refused(&user, &daemon, "vmctl", &args);
        assert!(text.contains("Datastore.AllocateSpace") && text.contains("/storage/local"), "{args:?}: {text}");
    }
    assert_eq!(volumes(&daemon), before, "nothing was allocated");
    assert!(!exists(&daemon, "vmctl", "102"));

    grant(
        &mut daemon,
        &user,
        &[("/vms/100", "PVEVMAdmin"), ("/vms/102", "PVEVMAdmin"), ("/storage/local", "PVEDatastoreUser")],
    );
    allowed(&user, &daemon, "vmctl", &["set", "100", "--virtio1", "local:0.01"]);
    allowed(&user, &daemon, "vmctl", &["resize", "100", "scsi0", "+4M"]);
    assert_eq!(volumes(&daemon).len(), before.len() + 1);
}

/// A container archive crafted by hand: the real backup of `source` with lines added to its
/// configuration, stored under `source`'s name so the user's VM.Backup on it applies.
fn crafted(daemon: &HearthdProcess, source: &str, archive: &str, extra: &str, stamp: &str) -> String {
    let path = dump_dir(daemon).join(archive.trim_start_matches("local:backup/"));
    let work = daemon.root().join(format!("craft-{stamp}"));
    std::fs::create_dir_all(&work).expect("work dir");
    let tar = work.join("a.tar");
    let status = Command::new("zstd").args(["-dqf", "-o"]).arg(&tar).arg(&path).status().expect("zstd");
    assert!(status.success());
    let conf = extract_config(&tar, &work);
    std::fs::write(&conf, format!("{}{extra}", std::fs::read_to_string(&conf).expect("pct.conf"))).expect("pct.conf");
    let status =
        Command::new("tar").args(["--delete", "-f"]).arg(&tar).arg("./etc/vzdump/pct.conf").status().expect("tar");
    assert!(status.success());
    // The configuration goes first again, as restores read it.
    let stage = work.join("stage.tar");
    let status = Command::new("tar")
        .args(["--numeric-owner", "-cf"])
        .arg(&stage)
        .arg("-C")
        .arg(&work)
        .arg("./etc/vzdump/pct.conf")
        .status()
        .expect("tar");
    assert!(status.success());
    let status = Command::new("tar").args(["-Af"]).arg(&stage).arg(&tar).status().expect("tar -A");
    assert!(status.success());
    let name = format!("vzdump-lxc-{source}-2026_01_0{stamp}-00_00_00.tar.zst");
    let status =
        Command::new("zstd").args(["-qf", "-o"]).arg(dump_dir(daemon).join(&name)).arg(&stage).status().expect("zstd");
    assert!(status.success());
    std::fs::remove_dir_all(&work).expect("clean up");
    format!("local:backup/{name}")
}

fn extract_config(tar: &Path, work: &Path) -> PathBuf {
    let status =
        Command::new("tar").arg("-xf").arg(tar).arg("-C").arg(work).arg("./etc/vzdump/pct.conf").status().expect("tar");
    assert!(status.success());
    work.join("etc/vzdump/pct.conf")
}

/// Crafted archives restored by a user who may restore the real one: a host path as a mount
/// point, a feature beyond nesting, a bridge the user may not use, another guest's volume as
/// a mount point left out of the backup — each refused or dropped, nothing created.
#[test]
fn a_crafted_container_archive_brings_nothing_the_user_could_not_set() {
    let mut daemon = HearthdProcess::start();
    let template = upload_template(&daemon);
    let (source, target, other) = (ctid(4), ctid(5), ctid(6));
    ok(&daemon, "ctctl", &["create", &source, template, "--rootfs", "local:0", "--memory", "64"]);
    ok(&daemon, "ctctl", &["create", &other, template, "--rootfs", "local:0.01"]);
    ok(&daemon, "ctctl", &["backup", &source, "--storage", "local"]);
    let archive = newest_backup(&daemon, &source);
    let other_rootfs = json(&daemon, "ctctl", &["config", &other])["rootfs"]
        .as_str()
        .expect("rootfs")
        .split(',')
        .next()
        .expect("volume")
        .to_owned();
    let user = UnixUser::new("cr");
    let (on_target, on_source) = (format!("/vms/{target}"), format!("/vms/{source}"));
    grant(
        &mut daemon,
        &user,
        &[(&on_target, "PVEVMAdmin"), (&on_source, "PVEVMUser"), ("/storage/local", "PVEDatastoreUser")],
    );
    let before = volumes(&daemon);
    for (n, (extra, expect)) in [
        ("mp0 = \"/etc,mp=/mnt/host-etc\"\n", "root@pam"),
        ("features = \"keyctl=1,nesting=1\"\n", "root@pam"),
        ("net0 = \"name=eth0,bridge=vmbr9\"\n", "SDN.Use"),
    ]
    .into_iter()
    .enumerate()
    {
        let crafted = crafted(&daemon, &source, &archive, extra, &(n + 1).to_string());
        let text = refused(&user, &daemon, "ctctl", &["restore", &target, &crafted]);
        assert!(text.contains(expect), "{extra}: {text}");
        assert!(!exists(&daemon, "ctctl", &target), "{extra}: no container is left");
    }
    assert_eq!(volumes(&daemon), before, "nothing was allocated");
    // Another guest's volume as a mount point outside the backup is dropped, not attached.
    let crafted = crafted(&daemon, &source, &archive, &format!("mp1 = \"{other_rootfs},mp=/mnt/other\"\n"), "9");
    allowed(&user, &daemon, "ctctl", &["restore", &target, &crafted]);
    let config = json(&daemon, "ctctl", &["config", &target]);
    assert!(config.get("mp1").is_none(), "{config}");
}
