//! `storectl scan` against the host's real LVM tools on a loop device, and `storectl
//! extractconfig` of real backups.

use std::process::Command;

use hearth_test::HearthdProcess;

use crate::{json, ok, run};

fn host(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).env("LVM_SUPPRESS_FD_WARNINGS", "1").output().expect(program);
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A volume group on a loop device, removed again when dropped.
struct TestVg {
    name: String,
    loop_dev: String,
    _file: tempfile::NamedTempFile,
}

impl TestVg {
    fn new() -> TestVg {
        hearth_test::require_root("creating a loop device and an LVM volume group");
        hearth_test::require_tool("vgcreate", "lvm2");
        let file = tempfile::NamedTempFile::new().expect("backing file");
        file.as_file().set_len(32 << 20).expect("size");
        let loop_dev = host("losetup", &["-f", "--show", file.path().to_str().expect("utf-8")]);
        let name = format!("hearthscan{}", std::process::id());
        host("pvcreate", &["-q", &loop_dev]);
        host("vgcreate", &["-q", &name, &loop_dev]);
        TestVg { name, loop_dev, _file: file }
    }
}

impl Drop for TestVg {
    fn drop(&mut self) {
        let _ = Command::new("vgremove").args(["-q", "-f", &self.name]).output();
        let _ = Command::new("pvremove").args(["-q", &self.loop_dev]).output();
        let _ = Command::new("losetup").args(["-d", &self.loop_dev]).output();
    }
}

#[test]
fn scan_lists_volume_groups_and_names_what_is_missing() {
    let daemon = HearthdProcess::start();
    let vg = TestVg::new();
    let found = json(&daemon, "storectl", &["scan", "lvm"]);
    let entry = found.as_array().expect("list").iter().find(|e| e["vg"] == vg.name.as_str()).cloned();
    let entry = entry.unwrap_or_else(|| panic!("{} is listed: {found}", vg.name));
    assert!(entry["size"].as_u64().is_some_and(|s| s > 16 << 20), "{entry}");
    let table = ok(&daemon, "storectl", &["scan", "lvm"]);
    assert!(table.starts_with("vg") && table.contains(&vg.name), "{table}");
    // No thin pool in it (and none can be made without device-mapper): an empty list.
    assert_eq!(json(&daemon, "storectl", &["scan", "lvmthin", &vg.name]), serde_json::json!([]));
    let (code, _, stderr) = run(&daemon, "storectl", &["scan", "lvmthin", "-bad"]);
    assert_ne!(code, 0);
    assert!(!stderr.is_empty());
    let (code, _, stderr) = run(&daemon, "storectl", &["scan", "lvmthin", "no/vg"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("vg: 'no/vg' is not a volume group name"), "{stderr}");
    // ZFS: either the tool or the kernel module is missing here, and the error says which.
    if !std::path::Path::new("/dev/zfs").exists() {
        let (code, _, stderr) = run(&daemon, "storectl", &["scan", "zfs"]);
        assert_eq!(code, 1);
        assert!(stderr.contains("install zfsutils-linux") || stderr.contains("/dev/zfs is missing"), "{stderr}");
    }
    let (code, _, stderr) = run(&daemon, "storectl", &["scan", "nfs", "192.0.2.1"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("nfs storages are not supported yet"), "{stderr}");
    // Scanning is a storage administrator's.
    let user = crate::UnixUser::new("scanner");
    let out = user.run(&daemon, "storectl", &["scan", "lvm"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Datastore.Allocate"));
}

#[test]
fn extractconfig_prints_the_backed_up_configuration() {
    let daemon = HearthdProcess::start();
    ok(
        &daemon,
        "vmctl",
        &[
            "create",
            "720",
            "--memory",
            "96",
            "--kvm",
            "0",
            "--name",
            "web",
            "--description",
            "line one\nline two",
            "--virtio0",
            "local:0.0625",
        ],
    );
    ok(&daemon, "vmctl", &["backup", "720", "--storage", "local", "--mode", "stop"]);
    let listed = json(&daemon, "storectl", &["backup", "list", "--vmid", "720"]);
    let volid = listed[0]["volid"].as_str().expect("the backup").to_owned();
    let config = ok(&daemon, "storectl", &["extractconfig", &volid]);
    assert!(config.starts_with("#line one\n#line two\n"), "{config}");
    assert!(config.contains("memory: 96\n") && config.contains("name: web\n"), "{config}");
    assert!(config.contains("virtio0: local:720/vm-720-disk-0.qcow2"), "{config}");
    // Containers too.
    let ctid = crate::ct::ctid(45);
    crate::ct::create(&daemon, &ctid, &["--cores", "1"]);
    ok(&daemon, "ctctl", &["backup", &ctid, "--storage", "local"]);
    let listed = json(&daemon, "storectl", &["backup", "list", "--vmid", &ctid]);
    let volid = listed[0]["volid"].as_str().expect("the backup").to_owned();
    let config = ok(&daemon, "storectl", &["extractconfig", &volid]);
    assert!(config.contains("hostname: box\n") && config.contains("rootfs: "), "{config}");
    // Not a backup, and nobody else's.
    let (code, _, stderr) = run(&daemon, "storectl", &["extractconfig", "local:iso/x.iso"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("is not a backup volume"), "{stderr}");
    let user = crate::UnixUser::new("extractor");
    let out = user.run(&daemon, "storectl", &["extractconfig", &volid]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("VM.Backup"), "{}", String::from_utf8_lossy(&out.stderr));
}
