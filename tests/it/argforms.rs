//! The argument forms of Proxmox's documentation, typed with the tool name substituted:
//! qmrestore's `ARCHIVE VMID`, archives and templates as file paths (a storage's file is its
//! volume, any other host path root@pam's), a backup streamed through standard input, `ctctl
//! create --storage`, `ctctl restore --rootfs`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use hearth_test::HearthdProcess;

use crate::backup::{archive_of, ctid, path_of, refused};
use crate::{UnixUser, json, ok, run, template};

/// A Unix user holding Administrator on `/`: everything but what only root@pam may do.
pub(crate) fn administrator(daemon: &HearthdProcess, tag: &str) -> UnixUser {
    let user = UnixUser::new(tag);
    ok(daemon, "userctl", &["user", "add", &user.userid()]);
    ok(daemon, "userctl", &["acl", "modify", "/", "--roles", "Administrator", "--users", &user.userid()]);
    user
}

pub(crate) fn output_text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A directory outside every storage, removed with the daemon's root.
fn outside(daemon: &HearthdProcess, name: &str) -> PathBuf {
    let dir = daemon.root().join("mnt").join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

fn small_ct(daemon: &HearthdProcess, id: &str) {
    let template = template(daemon);
    ok(daemon, "ctctl", &["create", id, &template, "--rootfs", "local:0", "--hostname", "src", "--memory", "64"]);
}

#[test]
fn restores_take_paths_in_either_order_and_streams_from_standard_input() {
    let daemon = HearthdProcess::start();
    let (a, b, c, d) = (ctid(1), ctid(2), ctid(3), ctid(4));
    small_ct(&daemon, &a);
    std::fs::write(crate::backup::rootfs_path(&daemon, &a).join("marker"), b"from a").expect("marker");
    let out = ok(&daemon, "ctctl", &["backup", &a, "--storage", "local"]);
    let archive = archive_of(&out, &a);
    let in_storage = path_of(&daemon, &archive);

    // A copy outside every storage, named as in vzdump.adoc: only root@pam may read host paths.
    let copy = outside(&daemon, "backup").join("vzdump-lxc-777.tar");
    std::fs::copy(&in_storage, &copy).expect("copy");
    let admin = administrator(&daemon, "ar");
    let denied = admin.run(&daemon, "ctctl", &["restore", &b, copy.to_str().expect("utf-8")]);
    assert_eq!(denied.status.code(), Some(1), "{}", output_text(&denied));
    assert!(output_text(&denied).contains("root@pam"), "{}", output_text(&denied));
    assert!(!daemon.root().join(format!("etc/hearth/nodes/{}/lxc/{b}.toml", daemon_node(&daemon))).exists());
    // The archive's path inside the storage is its volume id, which the administrator may use.
    let allowed = admin.run(&daemon, "ctctl", &["restore", &b, in_storage.to_str().expect("utf-8")]);
    assert_eq!(allowed.status.code(), Some(0), "{}", output_text(&allowed));
    assert_eq!(std::fs::read(crate::backup::rootfs_path(&daemon, &b).join("marker")).expect("marker"), b"from a");
    // Root restores the outside copy, the archive first as qmrestore has it.
    ok(&daemon, "ctctl", &["restore", copy.to_str().expect("utf-8"), &c]);
    assert_eq!(json(&daemon, "ctctl", &["config", &c])["hostname"], "src");

    // `-` reads the backup from standard input, with a new root file system of 1 GiB.
    let mut child = daemon
        .command("ctctl")
        .args(["restore", "--rootfs", "1", "--storage", "local", &d, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ctctl restore -");
    let bytes = std::fs::read(&in_storage).expect("archive");
    child.stdin.take().expect("stdin").write_all(&bytes).expect("feeding the archive");
    let out = child.wait_with_output().expect("ctctl");
    assert!(out.status.success(), "{}", output_text(&out));
    let rootfs = json(&daemon, "ctctl", &["config", &d])["rootfs"].as_str().expect("rootfs").to_owned();
    assert!(rootfs.starts_with("local:") && rootfs.contains("size=1G"), "{rootfs}");
    // A sized root file system is an image: mounted to look inside.
    ok(&daemon, "ctctl", &["mount", &d]);
    let mounted = daemon.root().join(format!("var/lib/hearth/lxc/{d}/rootfs/marker"));
    let marker = std::fs::read(&mounted);
    ok(&daemon, "ctctl", &["unmount", &d]);
    assert_eq!(marker.expect("marker"), b"from a");
    let spool = daemon.root().join("var/lib/hearth/restore");
    assert!(std::fs::read_dir(&spool).map_or(true, |mut d| d.next().is_none()), "the spool is removed");

    // Two ids, or two archives, are refused before anything is asked.
    let (code, _, stderr) = run(&daemon, "ctctl", &["restore", "601", "602"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("in either order"), "{stderr}");
    let bad_rootfs = refused(&daemon, "ctctl", &["restore", &ctid(5), &archive, "--rootfs", "local:x"]);
    assert!(bad_rootfs.contains("rootfs"), "{bad_rootfs}");
    for id in [&a, &b, &c, &d] {
        ok(&daemon, "ctctl", &["destroy", id]);
    }
}

fn daemon_node(daemon: &HearthdProcess) -> String {
    let nodes = daemon.root().join("etc/hearth/nodes");
    let entry = std::fs::read_dir(&nodes).expect("nodes").next().expect("a node").expect("entry");
    entry.file_name().to_string_lossy().into_owned()
}

#[test]
fn a_vm_archive_restores_from_a_path_given_first_as_qmrestore_takes_it() {
    let daemon = HearthdProcess::start();
    ok(&daemon, "vmctl", &["create", "888", "--memory", "64", "--kvm", "0", "--scsi0", "local:0.01,format=raw"]);
    let volid = json(&daemon, "vmctl", &["config", "888"])["scsi0"].as_str().expect("scsi0").to_owned();
    let disk = path_of(&daemon, volid.split(',').next().expect("volid"));
    std::fs::write(&disk, vec![0x5a_u8; 10 << 20]).expect("disk");
    let out = ok(&daemon, "vmctl", &["backup", "888", "--storage", "local", "--mode", "stop"]);
    let archive = archive_of(&out, "888");
    let copy = outside(&daemon, "backup").join("vzdump-qemu-888.vma");
    std::fs::copy(path_of(&daemon, &archive), &copy).expect("copy");
    ok(&daemon, "vmctl", &["restore", copy.to_str().expect("utf-8"), "601", "--storage", "local"]);
    let restored = json(&daemon, "vmctl", &["config", "601"])["scsi0"].as_str().expect("scsi0").to_owned();
    let restored = std::fs::read(path_of(&daemon, restored.split(',').next().expect("volid"))).expect("disk");
    assert!(restored.len() == 10 << 20 && restored.iter().all(|b| *b == 0x5a), "the disk came back");
    // And in Hearth's own order, from the volume id.
    ok(&daemon, "vmctl", &["restore", "602", &archive]);
    let missing = refused(&daemon, "vmctl", &["restore", "/nonexistent/vzdump-qemu-1.vma", "603"]);
    assert!(missing.contains("does not exist"), "{missing}");
}

#[test]
fn ctctl_create_takes_a_template_path_and_a_storage_for_a_bare_rootfs_size() {
    let daemon = HearthdProcess::start();
    template(&daemon);
    let cache = daemon.root().join("var/lib/hearth/template/cache/busybox-template.tar.zst");
    let (a, b, c) = (ctid(1), ctid(2), ctid(3));
    // pct.adoc: `pct create 100 /var/lib/vz/template/cache/x.tar.zst`; the file is local's volume.
    let admin = administrator(&daemon, "ac");
    let created = admin.run(
        &daemon,
        "ctctl",
        &["create", &a, cache.to_str().expect("utf-8"), "--rootfs", "0", "--storage", "local", "--memory", "64"],
    );
    assert_eq!(created.status.code(), Some(0), "{}", output_text(&created));
    let rootfs = json(&daemon, "ctctl", &["config", &a])["rootfs"].as_str().expect("rootfs").to_owned();
    assert!(rootfs.starts_with("local:"), "{rootfs}");
    // A template outside every storage is root's alone.
    let copy = outside(&daemon, "templates").join("x.tar.zst");
    std::fs::copy(&cache, &copy).expect("copy");
    let denied = admin.run(&daemon, "ctctl", &["create", &b, copy.to_str().expect("utf-8"), "--rootfs", "local:0"]);
    assert_eq!(denied.status.code(), Some(1), "{}", output_text(&denied));
    assert!(output_text(&denied).contains("root@pam"), "{}", output_text(&denied));
    ok(&daemon, "ctctl", &["create", &c, copy.to_str().expect("utf-8"), "--rootfs", "local:0", "--memory", "64"]);
    assert!(crate::backup::rootfs_path(&daemon, &c).join("bin/busybox").exists());
    let _ = Path::new("");
}
