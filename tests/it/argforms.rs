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

/// An executable snippet that appends `<vmid> <phase>` to `calls` and fails its pre-start
/// while `refuse` exists.
fn recording_hook(daemon: &HearthdProcess, name: &str) -> (String, PathBuf, PathBuf) {
    let snippets = daemon.root().join("var/lib/hearth/snippets");
    std::fs::create_dir_all(&snippets).expect("mkdir");
    let calls = daemon.root().join(format!("{name}.calls"));
    let refuse = daemon.root().join(format!("{name}.refuse"));
    let script = snippets.join(name);
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$1 $2\" >> {calls}\necho \"hook output $2\"\n\
             if [ \"$2\" = pre-start ] && [ -e {refuse} ]; then echo refused >&2; exit 3; fi\nexit 0\n",
            calls = calls.display(),
            refuse = refuse.display()
        ),
    )
    .expect("script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (format!("local:snippets/{name}"), calls, refuse)
}

fn calls_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
}

#[test]
fn hook_scripts_run_at_each_phase_for_a_vm_and_a_container() {
    let daemon = HearthdProcess::start();
    // A VM: `qm set 100 --hookscript local:snippets/hookscript.pl`.
    let (hook, calls, refuse) = recording_hook(&daemon, "vmhook.sh");
    ok(&daemon, "vmctl", &["create", "920", "--memory", "64", "--kvm", "0"]);
    ok(&daemon, "vmctl", &["set", "920", "--hookscript", &hook]);
    assert_eq!(json(&daemon, "vmctl", &["config", "920"])["hookscript"], hook.as_str());
    let out = ok(&daemon, "vmctl", &["start", "920"]);
    assert!(out.contains("hook output pre-start") && out.contains("hook output post-start"), "{out}");
    let out = ok(&daemon, "vmctl", &["stop", "920"]);
    assert!(out.contains("hook output pre-stop") && out.contains("hook output post-stop"), "{out}");
    assert_eq!(calls_of(&calls), ["920 pre-start", "920 post-start", "920 pre-stop", "920 post-stop"]);
    // A failing pre-start aborts the start, with the script's output in the log.
    std::fs::write(&refuse, b"").expect("refuse");
    let (code, stdout, stderr) = run(&daemon, "vmctl", &["start", "920"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("refused") && stderr.contains("pre-start"), "{stdout}{stderr}");
    assert_eq!(json(&daemon, "vmctl", &["status", "920"])["status"], "stopped");
    assert_eq!(calls_of(&calls).len(), 5, "no post-start after a refused pre-start");

    // A container, in pct's one-dash spelling.
    let (hook, calls, _) = recording_hook(&daemon, "cthook.sh");
    let ct = ctid(1);
    small_ct(&daemon, &ct);
    ok(&daemon, "ctctl", &["set", &ct, "-hookscript", &hook]);
    ok(&daemon, "ctctl", &["start", &ct]);
    ok(&daemon, "ctctl", &["shutdown", &ct, "--timeout", "10", "--forceStop", "1"]);
    let phases: Vec<String> = calls_of(&calls);
    assert_eq!(
        phases,
        ["pre-start", "post-start", "pre-stop", "post-stop"].map(|p| format!("{ct} {p}")),
        "container hook calls"
    );

    // Refused values change nothing: not executable, not a snippet, missing, not a volume.
    let snippets = daemon.root().join("var/lib/hearth/snippets");
    std::fs::write(snippets.join("plain.sh"), b"#!/bin/sh\n").expect("plain");
    let before = json(&daemon, "ctctl", &["config", &ct]);
    for (value, why) in [
        ("local:snippets/plain.sh", "not an executable file"),
        ("local:snippets/missing.sh", "does not exist"),
        ("local:iso/x.iso", "snippet volume"),
        ("/usr/bin/true", "snippet volume"),
    ] {
        let text = refused(&daemon, "ctctl", &["set", &ct, "--hookscript", value]);
        assert!(text.contains("hookscript") && text.contains(why), "{value}: {text}");
    }
    assert_eq!(json(&daemon, "ctctl", &["config", &ct]), before);
    // Setting a hook script is root's: it runs as root on the host.
    let admin = administrator(&daemon, "ah");
    let denied = admin.run(&daemon, "vmctl", &["set", "920", "--hookscript", "local:snippets/cthook.sh"]);
    assert_eq!(denied.status.code(), Some(1), "{}", output_text(&denied));
    assert!(output_text(&denied).contains("root@pam"), "{}", output_text(&denied));
    ok(&daemon, "ctctl", &["destroy", &ct]);
}

/// Waits for the next second: archive names have a one-second resolution.
fn next_second() {
    std::thread::sleep(std::time::Duration::from_millis(1100));
}

/// The members of a container archive (`zstd -dc | tar -t`), without `./`.
fn members(archive: &Path) -> Vec<String> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("zstd -dc '{}' | tar -t", archive.display()))
        .output()
        .expect("zstd | tar");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim_start_matches("./").to_owned()).collect()
}

#[test]
fn vzdump_takes_ids_as_arguments_and_exclude_paths_with_proxmox_anchoring() {
    hearth_test::require_tool("zstd", "zstd");
    let daemon = HearthdProcess::start();
    let (a, b) = (ctid(1), ctid(2));
    small_ct(&daemon, &a);
    small_ct(&daemon, &b);
    let root = crate::backup::rootfs_path(&daemon, &a);
    for file in [
        "srv/keep.txt",
        "srv/skip.tmp",
        "srv/deep/er/also.tmp",
        "var/log/old.gz",
        "data/var/log/kept.gz",
        "tmp/scratch",
    ] {
        let path = root.join(file);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, file).expect("write");
    }
    // vzdump.adoc: `vzdump 777 --exclude-path /tmp/ --exclude-path '/var/foo*'`, here with both kinds.
    let out = ok(
        &daemon,
        "storectl",
        &["vzdump", &a, &b, "--storage", "local", "--exclude-path", "/var/log/*.gz", "--exclude-path", "*.tmp"],
    );
    let archive_a = archive_of(&out, &a);
    archive_of(&out, &b);
    let listed = members(&path_of(&daemon, &archive_a));
    for kept in ["srv/keep.txt", "data/var/log/kept.gz", "etc/vzdump/pct.conf", "tmp/"] {
        assert!(listed.iter().any(|m| m == kept), "{kept} is in the archive: {listed:?}");
    }
    for left_out in ["srv/skip.tmp", "srv/deep/er/also.tmp", "var/log/old.gz", "tmp/scratch"] {
        assert!(!listed.iter().any(|m| m == left_out), "{left_out} is left out: {listed:?}");
    }
    // --stdexcludes 0 keeps /tmp's files. (Archive names have a one-second resolution.)
    next_second();
    let out = ok(&daemon, "storectl", &["vzdump", &a, "--stdexcludes", "0", "--storage", "local"]);
    assert!(members(&path_of(&daemon, &archive_of(&out, &a))).iter().any(|m| m == "tmp/scratch"));
    // --pool: every guest of the pool.
    ok(&daemon, "userctl", &["pool", "add", "team", "--vms", &b]);
    next_second();
    let out = ok(&daemon, "storectl", &["vzdump", "--pool", "team", "--storage", "local"]);
    assert!(out.contains("1 guests to back up") && out.contains(&format!("{b}: ok ")), "{out}");
    // Options of Proxmox's vzdump that Hearth cannot honour are refused by name.
    for option in [["--ionice", "5"], ["--script", "/x.pl"], ["--tmpdir", "/tmp"]] {
        let text = refused(&daemon, "storectl", &["vzdump", &a, option[0], option[1]]);
        assert!(text.contains(&option[0][2..]) && text.contains("does not support"), "{text}");
    }
    let (code, _, text) = run(&daemon, "storectl", &["vzdump", &a, "--compress", "gzip"]);
    assert_eq!(code, 2, "a usage error: {text}");
    assert!(text.contains("gzip") && text.contains("zstd"), "{text}");
}

#[test]
fn vzdump_streams_to_standard_output_into_a_restore_and_writes_to_a_dumpdir() {
    let daemon = HearthdProcess::start();
    let (a, c) = (ctid(1), ctid(3));
    small_ct(&daemon, &a);
    std::fs::write(crate::backup::rootfs_path(&daemon, &a).join("marker"), b"streamed").expect("marker");
    // vzdump.adoc: `vzdump 101 --stdout | pct restore --rootfs 4 300 -`.
    let pipeline = format!(
        "'{}' vzdump {a} --stdout | '{}' restore --rootfs 1 {c} -",
        hearth_test::bin("storectl").display(),
        hearth_test::bin("ctctl").display()
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&pipeline)
        .env("HEARTH_ROOT", daemon.root())
        .output()
        .expect("sh");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{}{stderr}", String::from_utf8_lossy(&out.stdout));
    assert!(stderr.contains("archive written to standard output"), "the log goes to stderr: {stderr}");
    assert!(json(&daemon, "ctctl", &["config", &c])["rootfs"].as_str().expect("rootfs").contains("size=1G"));
    ok(&daemon, "ctctl", &["mount", &c]);
    let marker = std::fs::read(daemon.root().join(format!("var/lib/hearth/lxc/{c}/rootfs/marker")));
    ok(&daemon, "ctctl", &["unmount", &c]);
    assert_eq!(marker.expect("marker"), b"streamed");
    // One guest only.
    let text = refused(&daemon, "storectl", &["vzdump", &a, &c, "--stdout"]);
    assert!(text.contains("exactly one guest"), "{text}");

    // --dumpdir: a host directory, root@pam's alone.
    let dir = outside(&daemon, "dumps");
    next_second();
    let out = ok(&daemon, "storectl", &["vzdump", &a, "--dumpdir", dir.to_str().expect("utf-8")]);
    let written = archive_of(&out, &a);
    assert!(written.starts_with(dir.to_str().expect("utf-8")) && Path::new(&written).is_file(), "{written}");
    ok(&daemon, "ctctl", &["restore", &written, &ctid(4)]);
    let admin = administrator(&daemon, "ad");
    let denied = admin.run(&daemon, "storectl", &["vzdump", &a, "--dumpdir", dir.to_str().expect("utf-8")]);
    assert_eq!(denied.status.code(), Some(1), "{}", output_text(&denied));
    assert!(output_text(&denied).contains("root@pam"), "{}", output_text(&denied));
    next_second();
    let admin_ok = admin.run(&daemon, "storectl", &["vzdump", &a, "--storage", "local"]);
    assert_eq!(admin_ok.status.code(), Some(0), "{}", output_text(&admin_ok));
}

#[test]
fn vzdump_mails_its_log_through_sendmail_or_says_why_not() {
    let daemon = HearthdProcess::start();
    let a = ctid(1);
    small_ct(&daemon, &a);
    let out = ok(&daemon, "storectl", &["vzdump", &a, "--storage", "local", "--mailto", "ops@example.org"]);
    assert!(out.contains("not mailing the log to ops@example.org: no sendmail"), "{out}");
    // A sendmail under the node's root, recording what it is given.
    let sbin = daemon.root().join("usr/sbin");
    std::fs::create_dir_all(&sbin).expect("mkdir");
    let mailbox = daemon.root().join("mailbox");
    std::fs::write(
        sbin.join("sendmail"),
        format!("#!/bin/sh\necho \"ARGS $*\" >> {m}\ncat >> {m}\n", m = mailbox.display()),
    )
    .expect("sendmail");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(sbin.join("sendmail"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    next_second();
    let out = ok(
        &daemon,
        "storectl",
        &[
            "vzdump",
            &a,
            "--storage",
            "local",
            "--mailto",
            "ops@example.org,dev@example.org",
            "--mailto",
            "x@example.org",
        ],
    );
    assert!(out.contains("mailed the log to ops@example.org, dev@example.org, x@example.org"), "{out}");
    let mail = std::fs::read_to_string(&mailbox).expect("a mail was sent");
    assert!(mail.contains("ARGS -f root -- ops@example.org dev@example.org x@example.org"), "{mail}");
    assert!(
        mail.contains("backup successful") && mail.contains(&format!("{a}: ok local:backup/vzdump-lxc-{a}-")),
        "{mail}"
    );
    // --mailnotification failure: a successful run sends nothing, a failed one does.
    std::fs::remove_file(&mailbox).expect("rm");
    next_second();
    ok(
        &daemon,
        "storectl",
        &["vzdump", &a, "--storage", "local", "--mailto", "ops@example.org", "--mailnotification", "failure"],
    );
    assert!(!mailbox.exists(), "no mail for a success");
    let (code, _, _) =
        run(&daemon, "storectl", &["vzdump", "999999", "--mailto", "ops@example.org", "--mailnotification", "failure"]);
    assert_eq!(code, 1);
    let mail = std::fs::read_to_string(&mailbox).expect("a mail for the failure");
    assert!(mail.contains("backup failed") && mail.contains("999999: failed"), "{mail}");
}

#[test]
fn vzdump_fleecing_puts_a_running_vms_copy_before_write_images_on_the_named_storage() {
    let daemon = HearthdProcess::start();
    let fleece = outside(&daemon, "fleece");
    ok(
        &daemon,
        "storectl",
        &["add", "dir", "fleece", "--path", fleece.to_str().expect("utf-8"), "--content", "images"],
    );
    ok(&daemon, "vmctl", &["create", "930", "--memory", "64", "--kvm", "0", "--scsi0", "local:0.01,format=raw"]);
    ok(&daemon, "vmctl", &["start", "930"]);
    let out = ok(
        &daemon,
        "storectl",
        &["vzdump", "930", "--storage", "local", "--mode", "snapshot", "--fleecing", "enabled=1,storage=fleece"],
    );
    let expected = fleece.join("images/930");
    assert!(out.contains(&format!("fleecing: the copy-before-write images go to {}", expected.display())), "{out}");
    assert!(out.contains("copy-before-write backup of 1 disks started"), "{out}");
    archive_of(&out, "930");
    let left: Vec<_> = std::fs::read_dir(&expected).expect("fleecing dir").collect();
    assert!(left.is_empty(), "the fleecing images are removed: {left:?}");
    ok(&daemon, "vmctl", &["stop", "930"]);
    let text = refused(&daemon, "storectl", &["vzdump", "930", "--fleecing", "enabled=1"]);
    assert!(text.contains("fleecing") && text.contains("storage"), "{text}");
    let text = refused(&daemon, "storectl", &["vzdump", "930", "--fleecing", "enabled=1,storage=nosuch"]);
    assert!(text.contains("fleecing") && text.contains("nosuch"), "{text}");
}

fn scsi(daemon: &HearthdProcess, vmid: &str, key: &str) -> Option<String> {
    json(daemon, "vmctl", &["config", vmid])[key].as_str().map(|v| v.split(',').next().expect("volid").to_owned())
}

#[test]
fn storage_bandwidth_limits_are_stored_and_applied_to_restore_move_and_clone() {
    let daemon = HearthdProcess::start();
    // vzdump.adoc: `pvesm set STORAGEID --bwlimit restore=KIBs`.
    ok(&daemon, "storectl", &["set", "local", "--bwlimit", "restore=8192,default=4096"]);
    let config = json(&daemon, "storectl", &["config", "local"]);
    assert!(config.to_string().contains("restore=8192"), "{config}");
    let text = refused(&daemon, "storectl", &["set", "local", "--bwlimit", "restore=fast"]);
    assert!(text.contains("bwlimit"), "{text}");
    let other = outside(&daemon, "other");
    ok(&daemon, "storectl", &["add", "dir", "other", "--path", other.to_str().expect("utf-8"), "--content", "images"]);

    ok(&daemon, "vmctl", &["create", "950", "--memory", "64", "--scsi0", "local:0.01,format=raw"]);
    let out = ok(&daemon, "vmctl", &["backup", "950", "--storage", "local", "--mode", "stop"]);
    let archive = archive_of(&out, "950");
    let out = ok(&daemon, "vmctl", &["restore", "951", &archive]);
    assert!(out.contains("bandwidth limit: 8192 KiB/s"), "the storage's restore= applies: {out}");
    let out = ok(&daemon, "vmctl", &["restore", "952", &archive, "--bwlimit", "0"]);
    assert!(!out.contains("bandwidth limit"), "--bwlimit 0 lifts it: {out}");
    // Lifting or raising a storage's limit is for who may administer the storage.
    let user = UnixUser::new("bw");
    ok(&daemon, "userctl", &["user", "add", &user.userid()]);
    ok(&daemon, "userctl", &["acl", "modify", "/vms", "--roles", "PVEVMAdmin", "--users", &user.userid()]);
    ok(&daemon, "userctl", &["acl", "modify", "/storage", "--roles", "PVEDatastoreUser", "--users", &user.userid()]);
    for limit in ["0", "9000"] {
        let denied = user.run(&daemon, "vmctl", &["restore", "954", &archive, "--bwlimit", limit]);
        assert_eq!(denied.status.code(), Some(1), "{}", output_text(&denied));
        assert!(output_text(&denied).contains("Datastore.Allocate"), "{}", output_text(&denied));
    }
    let slower = user.run(&daemon, "vmctl", &["restore", "954", &archive, "--bwlimit", "4000"]);
    assert_eq!(slower.status.code(), Some(0), "a lower limit is anyone's: {}", output_text(&slower));
    assert!(output_text(&slower).contains("bandwidth limit: 4000 KiB/s"), "{}", output_text(&slower));
    // The copy of move-disk and of a full clone: default= of the storages, or --bwlimit.
    let out = ok(&daemon, "vmctl", &["move-disk", "951", "scsi0", "other"]);
    assert!(out.contains("bandwidth limit 4096 KiB/s"), "{out}");
    assert!(scsi(&daemon, "951", "scsi0").expect("scsi0").starts_with("other:"));
    let out = ok(&daemon, "vmctl", &["clone", "950", "953", "--full", "--bwlimit", "1024"]);
    assert!(out.contains("bandwidth limit 1024 KiB/s"), "{out}");
    ok(&daemon, "storectl", &["set", "local", "--delete", "bwlimit"]);
    let out = ok(&daemon, "vmctl", &["move-disk", "952", "scsi0", "other"]);
    assert!(!out.contains("bandwidth limit"), "{out}");
}

#[test]
fn alloc_takes_the_format_from_the_name_and_export_checks_with_snapshots() {
    let daemon = HearthdProcess::start();
    // pve-storage-dir.adoc: `pvesm alloc local <VMID> '' 4G`, `... vm-100-disk10.raw 4G`.
    let out = ok(&daemon, "storectl", &["alloc", "local", "100", "vm-100-disk10.raw", "4M"]);
    assert!(out.contains("local:100/vm-100-disk10.raw"), "{out}");
    let out = ok(&daemon, "storectl", &["alloc", "local", "100", "vm-100-disk11.qcow2", "4M"]);
    assert!(out.contains("local:100/vm-100-disk11.qcow2"), "{out}");
    let qcow = path_of(&daemon, "local:100/vm-100-disk11.qcow2");
    assert!(std::fs::read(&qcow).expect("image").starts_with(b"QFI\xfb"), "a qcow2 image");
    let text = refused(&daemon, "storectl", &["alloc", "local", "100", "vm-100-disk12.qcow2", "4M", "--format", "raw"]);
    assert!(text.contains("qcow2") && text.contains("--format is raw"), "{text}");
    assert!(!path_of(&daemon, "local:100/vm-100-disk10.raw").with_file_name("vm-100-disk12.qcow2").exists());
    let out = ok(&daemon, "storectl", &["alloc", "local", "100", "", "4M"]);
    assert!(out.contains("local:100/vm-100-disk-0."), "{out}");

    // pvesm.adoc: `pvesm export <volid> <format> <file> --with-snapshots 1`.
    let file = daemon.root().join("export.qcow2");
    ok(
        &daemon,
        "storectl",
        &[
            "export",
            "local:100/vm-100-disk11.qcow2",
            "qcow2+size",
            file.to_str().expect("utf-8"),
            "--with-snapshots",
            "1",
        ],
    );
    assert!(std::fs::metadata(&file).expect("stream").len() > 8);
    let raw = daemon.root().join("export.raw");
    let text = refused(
        &daemon,
        "storectl",
        &["export", "local:100/vm-100-disk10.raw", "raw+size", raw.to_str().expect("utf-8"), "--with-snapshots", "1"],
    );
    assert!(text.contains("with-snapshots") && text.contains("raw+size"), "{text}");
}

#[test]
fn destroy_unreferenced_disks_skiplock_and_reassigning_a_disk_to_another_vm() {
    let daemon = HearthdProcess::start();
    // qm.adoc: `qm disk move 300 scsi1 --target-vmid 400 --target-disk scsi3`.
    let raw = "local:0.01,format=raw";
    ok(&daemon, "vmctl", &["create", "300", "--memory", "64", "--scsi0", raw, "--scsi1", raw]);
    ok(&daemon, "vmctl", &["create", "400", "--memory", "64", "--scsi0", "local:0.01"]);
    let moved = scsi(&daemon, "300", "scsi1").expect("scsi1");
    std::fs::write(path_of(&daemon, &moved), vec![7u8; 10 << 20]).expect("data");
    // VM.Config.Disk on the source alone is not enough.
    let admin = UnixUser::new("am");
    ok(&daemon, "userctl", &["user", "add", &admin.userid()]);
    ok(&daemon, "userctl", &["acl", "modify", "/vms/300", "--roles", "PVEVMAdmin", "--users", &admin.userid()]);
    let denied =
        admin.run(&daemon, "vmctl", &["move-disk", "300", "scsi1", "--target-vmid", "400", "--target-disk", "scsi3"]);
    assert_eq!(denied.status.code(), Some(1), "{}", output_text(&denied));
    assert!(output_text(&denied).contains("/vms/400"), "{}", output_text(&denied));
    ok(&daemon, "vmctl", &["move-disk", "300", "scsi1", "--target-vmid", "400", "--target-disk", "scsi3"]);
    assert_eq!(scsi(&daemon, "300", "scsi1"), None);
    let now = scsi(&daemon, "400", "scsi3").expect("scsi3");
    assert!(now.starts_with("local:400/vm-400-disk-"), "{now}");
    assert_eq!(std::fs::read(path_of(&daemon, &now)).expect("data"), vec![7u8; 10 << 20]);
    assert!(!path_of(&daemon, &now).with_file_name("x").parent().expect("dir").join(&moved).exists());
    let text =
        refused(&daemon, "vmctl", &["move-disk", "300", "scsi0", "--target-vmid", "400", "--target-disk", "scsi3"]);
    assert!(text.contains("already has scsi3"), "{text}");
    assert!(scsi(&daemon, "300", "scsi0").is_some(), "a refused reassignment changes nothing");
    // The old form still moves between storages.
    let other = outside(&daemon, "other");
    ok(&daemon, "storectl", &["add", "dir", "other", "--path", other.to_str().expect("utf-8"), "--content", "images"]);
    ok(&daemon, "vmctl", &["move-disk", "300", "scsi0", "other"]);
    assert!(scsi(&daemon, "300", "scsi0").expect("scsi0").starts_with("other:300/"));

    // Volumes named for the VM that its configuration does not reference.
    let stray = ok(&daemon, "storectl", &["alloc", "local", "300", "", "1M"]);
    let stray = stray.split('\'').nth(1).expect("volid").to_owned();
    ok(&daemon, "vmctl", &["destroy", "300"]);
    assert!(path_of_exists(&daemon, &stray), "kept without --destroy-unreferenced-disks (default 0)");
    ok(&daemon, "vmctl", &["create", "301", "--memory", "64"]);
    let stray2 = ok(&daemon, "storectl", &["alloc", "local", "301", "", "1M"]);
    let stray2 = stray2.split('\'').nth(1).expect("volid").to_owned();
    let out = ok(&daemon, "vmctl", &["destroy", "301", "--destroy-unreferenced-disks", "1"]);
    assert!(out.contains(&format!("removed volume {stray2}")), "{out}");

    // --skiplock: root@pam's alone.
    ok(&daemon, "vmctl", &["create", "302", "--memory", "64"]);
    let file = daemon.root().join(format!("etc/hearth/nodes/{}/qemu/302.toml", daemon_node(&daemon)));
    let text = std::fs::read_to_string(&file).expect("config");
    std::fs::write(&file, format!("lock = \"backup\"\n{text}")).expect("config");
    let text = refused(&daemon, "vmctl", &["destroy", "302"]);
    assert!(text.contains("locked"), "{text}");
    ok(&daemon, "userctl", &["acl", "modify", "/vms/302", "--roles", "PVEVMAdmin", "--users", &admin.userid()]);
    let denied = admin.run(&daemon, "vmctl", &["destroy", "302", "--skiplock"]);
    assert!(output_text(&denied).contains("root@pam"), "{}", output_text(&denied));
    ok(&daemon, "vmctl", &["destroy", "302", "--skiplock", "1"]);
    assert!(!file.exists());
}

fn path_of_exists(daemon: &HearthdProcess, volid: &str) -> bool {
    let (code, stdout, _) = run(daemon, "storectl", &["path", volid]);
    code == 0 && Path::new(stdout.trim()).exists()
}

#[test]
fn vzdump_prunes_by_the_storages_prune_backups_unless_remove_is_0() {
    let daemon = HearthdProcess::start();
    let a = ctid(1);
    small_ct(&daemon, &a);
    ok(&daemon, "storectl", &["set", "local", "--prune-backups", "keep-last=1"]);
    let first = archive_of(&ok(&daemon, "storectl", &["vzdump", &a, "--storage", "local"]), &a);
    next_second();
    let out = ok(&daemon, "storectl", &["vzdump", &a, "--storage", "local", "--remove", "0"]);
    assert!(out.contains("not pruning: remove is 0"), "{out}");
    assert!(path_of_exists(&daemon, &first), "kept with --remove 0");
    next_second();
    let out = ok(&daemon, "storectl", &["vzdump", &a, "--storage", "local"]);
    assert!(out.contains(&format!("pruned {first}")), "the storage's keep-last=1 applies: {out}");
    assert!(!path_of_exists(&daemon, &first));
}
