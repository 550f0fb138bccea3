//! A VM's disks one at a time: move-disk between storages (data kept, old volume unused or
//! freed), disk import of image files (and refusal of images that reach other files), unlink
//! with and without --force, and cleanup. No guest boots; QEMU only runs to check refusals.

use std::path::Path;

use hearth_test::HearthdProcess;

use crate::vm::qemu_io;
use crate::{json, ok, run};

/// Adds a dir storage `second` in a directory of its own; answers the directory.
fn second_storage(daemon: &HearthdProcess) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a directory for the second storage");
    let path = dir.path().to_str().expect("temporary paths are UTF-8");
    ok(daemon, "storectl", &["add", "dir", "second", "--path", path, "--content", "images,iso"]);
    dir
}

fn config(daemon: &HearthdProcess, vmid: &str) -> serde_json::Value {
    json(daemon, "vmctl", &["config", vmid])
}

fn path_of(daemon: &HearthdProcess, volid: &str) -> String {
    ok(daemon, "storectl", &["path", volid]).trim().to_owned()
}

/// The volume ids of a guest on a storage.
fn volumes(daemon: &HearthdProcess, storage: &str, vmid: &str) -> Vec<String> {
    let listed = json(daemon, "storectl", &["list", storage, "--vmid", vmid]);
    let mut ids: Vec<String> =
        listed.as_array().expect("a list").iter().map(|v| v["volid"].as_str().expect("volid").to_owned()).collect();
    ids.sort();
    ids
}

/// Runs a CLI that must fail with exit code 1; answers its stderr.
fn refused(daemon: &HearthdProcess, program: &str, args: &[&str]) -> String {
    let (code, stdout, stderr) = run(daemon, program, args);
    assert_eq!(code, 1, "{program} {args:?} should fail: {stdout}{stderr}");
    stderr
}

fn read_at(path: &str, offset: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len];
    std::fs::File::open(path).expect("the image").read_exact_at(&mut buf, offset).expect("reading the image");
    buf
}

fn write_at(path: &str, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(path).expect("the image");
    file.write_all_at(bytes, offset).expect("writing the image");
}

#[test]
fn move_disk_copies_to_another_storage_and_keeps_or_frees_the_old_volume() {
    let daemon = HearthdProcess::start();
    let _second = second_storage(&daemon);
    ok(
        &daemon,
        "vmctl",
        &["create", "500", "--scsi0", "local:0.0625,format=raw,cache=writeback", "--virtio1", "local:0.0625"],
    );
    let raw = path_of(&daemon, "local:500/vm-500-disk-0.raw");
    write_at(&raw, 0, b"hearth-move-raw");
    write_at(&raw, 40 << 20, b"far into the disk");
    let qcow2 = path_of(&daemon, "local:500/vm-500-disk-1.qcow2");
    assert!(qemu_io(&qcow2, "write -P 0x5a 0 64k"));

    // Without --format the raw disk stays raw; the old volume is kept as unused0.
    let out = ok(&daemon, "vmctl", &["move-disk", "500", "scsi0", "second"]);
    assert!(out.contains("TASK OK"), "{out}");
    let conf = config(&daemon, "500");
    assert_eq!(conf["scsi0"], "second:500/vm-500-disk-0.raw,size=64M,format=raw,cache=writeback", "{conf}");
    assert_eq!(conf["unused0"], "local:500/vm-500-disk-0.raw", "{conf}");
    let moved = path_of(&daemon, "second:500/vm-500-disk-0.raw");
    assert_eq!(read_at(&moved, 0, 15), b"hearth-move-raw");
    assert_eq!(read_at(&moved, 40 << 20, 17), b"far into the disk");
    assert_eq!(std::fs::metadata(&moved).expect("moved").len(), 64 << 20);

    // To raw with --delete: the qcow2 data arrives, the old volume is gone.
    ok(&daemon, "vmctl", &["move-disk", "500", "virtio1", "second", "--format", "raw", "--delete"]);
    let conf = config(&daemon, "500");
    assert_eq!(conf["virtio1"], "second:500/vm-500-disk-1.raw,size=64M", "{conf}");
    assert!(conf.get("unused1").is_none(), "{conf}");
    assert_eq!(volumes(&daemon, "local", "500"), ["local:500/vm-500-disk-0.raw"]);
    let moved = path_of(&daemon, "second:500/vm-500-disk-1.raw");
    assert!(read_at(&moved, 0, 64 << 10).iter().all(|b| *b == 0x5a));
    assert!(read_at(&moved, 64 << 10, 4096).iter().all(|b| *b == 0));

    // Within one storage to qcow2: disk names are unique whatever the format, so disk-2.
    ok(&daemon, "vmctl", &["disk", "move", "500", "virtio1", "second", "--format", "qcow2", "--delete", "1"]);
    let conf = config(&daemon, "500");
    assert_eq!(conf["virtio1"], "second:500/vm-500-disk-2.qcow2,size=64M", "{conf}");
    assert!(qemu_io(&path_of(&daemon, "second:500/vm-500-disk-2.qcow2"), "read -P 0x5a 0 64k"));

    // Refusals, each leaving the storages as they were.
    let before = (volumes(&daemon, "local", "500"), volumes(&daemon, "second", "500"));
    let stderr = refused(&daemon, "vmctl", &["move-disk", "500", "scsi0", "second"]);
    assert!(stderr.contains("already on storage 'second' as raw"), "{stderr}");
    let stderr = refused(&daemon, "vmctl", &["move-disk", "500", "scsi7", "local"]);
    assert!(stderr.contains("scsi7: no such disk in VM 500 (its disks: scsi0, virtio1)"), "{stderr}");
    let stderr = refused(&daemon, "vmctl", &["move-disk", "500", "scsi0", "nosuch"]);
    assert!(stderr.contains("storage 'nosuch' does not exist"), "{stderr}");
    assert_eq!((volumes(&daemon, "local", "500"), volumes(&daemon, "second", "500")), before);

    // Snapshots would be lost: those of the configuration, and qcow2 snapshots of the image.
    ok(&daemon, "vmctl", &["create", "502", "--virtio0", "local:0.0625"]);
    ok(&daemon, "vmctl", &["snapshot", "502", "before"]);
    let stderr = refused(&daemon, "vmctl", &["move-disk", "502", "virtio0", "second"]);
    assert!(stderr.contains("part of snapshot before") && stderr.contains("delete them first"), "{stderr}");
    ok(&daemon, "vmctl", &["delsnapshot", "502", "before"]);
    let image = path_of(&daemon, "local:502/vm-502-disk-0.qcow2");
    qemu_img(Path::new("/"), &["snapshot", "-c", "hidden", &image]);
    let stderr = refused(&daemon, "vmctl", &["move-disk", "502", "virtio0", "second"]);
    assert!(stderr.contains("has snapshots (hidden)"), "{stderr}");
    qemu_img(Path::new("/"), &["snapshot", "-d", "hidden", &image]);
    ok(&daemon, "vmctl", &["move-disk", "502", "virtio0", "second", "--delete"]);
    assert_eq!(volumes(&daemon, "local", "502"), Vec::<String>::new());
    assert_eq!(volumes(&daemon, "second", "502"), ["second:502/vm-502-disk-0.qcow2"]);
    ok(&daemon, "vmctl", &["destroy", "502"]);

    // A linked clone's disk becomes a full, independent copy; the template's base stays.
    ok(&daemon, "vmctl", &["create", "503", "--virtio0", "local:0.0625"]);
    assert!(qemu_io(&path_of(&daemon, "local:503/vm-503-disk-0.qcow2"), "write -P 0x61 1M 64k"));
    ok(&daemon, "vmctl", &["template", "503"]);
    ok(&daemon, "vmctl", &["clone", "503", "504"]);
    let linked = "local:503/base-503-disk-0.qcow2/504/vm-504-disk-0.qcow2";
    assert!(config(&daemon, "504")["virtio0"].as_str().is_some_and(|v| v.starts_with(linked)));
    ok(&daemon, "vmctl", &["move-disk", "504", "virtio0", "second", "--delete"]);
    let copy = path_of(&daemon, "second:504/vm-504-disk-0.qcow2");
    assert!(qemu_io(&copy, "read -P 0x61 1M 64k"));
    let info = std::process::Command::new("qemu-img").args(["info", "--output=json", &copy]).output().expect("info");
    assert!(!String::from_utf8_lossy(&info.stdout).contains("backing"), "the copy stands alone");
    assert_eq!(volumes(&daemon, "local", "504"), Vec::<String>::new());
    assert_eq!(volumes(&daemon, "local", "503"), ["local:503/base-503-disk-0.qcow2"]);
    ok(&daemon, "vmctl", &["destroy", "504"]);
    ok(&daemon, "vmctl", &["destroy", "503"]);

    // A running VM is refused with the reason; so are cleanup and unlinking an attached disk.
    ok(&daemon, "vmctl", &["create", "501", "--memory", "64", "--kvm", "0", "--scsi0", "local:0.0625,format=raw"]);
    ok(&daemon, "vmctl", &["start", "501"]);
    let stderr = refused(&daemon, "vmctl", &["move-disk", "501", "scsi0", "second"]);
    assert!(stderr.contains("VM 501 is running") && stderr.contains("live mirroring"), "{stderr}");
    let stderr = refused(&daemon, "vmctl", &["unlink", "501", "--idlist", "scsi0"]);
    assert!(stderr.contains("hot-unplug is not supported yet"), "{stderr}");
    let stderr = refused(&daemon, "vmctl", &["cleanup", "501"]);
    assert!(stderr.contains("VM 501 is running"), "{stderr}");
    ok(&daemon, "vmctl", &["stop", "501"]);
    assert_eq!(volumes(&daemon, "second", "501"), Vec::<String>::new());

    // A template's disks are base images and stay where they are.
    ok(&daemon, "vmctl", &["template", "501"]);
    let stderr = refused(&daemon, "vmctl", &["move-disk", "501", "scsi0", "second"]);
    assert!(stderr.contains("is a template"), "{stderr}");
    ok(&daemon, "vmctl", &["destroy", "500"]);
    ok(&daemon, "vmctl", &["destroy", "501"]);
}

/// Runs qemu-img in `dir`; it must succeed.
fn qemu_img(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("qemu-img")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("qemu-img (install qemu-utils)");
    assert!(out.status.success(), "qemu-img {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn disk_import_adds_an_unused_volume_and_refuses_images_that_reach_other_files() {
    let daemon = HearthdProcess::start();
    let _second = second_storage(&daemon);
    let work = tempfile::tempdir().expect("a work directory");
    let dir = work.path();
    ok(&daemon, "vmctl", &["create", "510", "--memory", "64"]);
    qemu_img(dir, &["create", "-q", "-f", "qcow2", "image.qcow2", "32M"]);
    let image = dir.join("image.qcow2");
    let image = image.to_str().expect("UTF-8");
    assert!(qemu_io(image, "write -P 0x33 0 64k"));
    assert!(qemu_io(image, "write -P 0x44 16M 4k"));

    // Into the storage's default format (qcow2 on dir).
    let out = ok(&daemon, "vmctl", &["disk", "import", "510", image, "local"]);
    assert!(out.contains("TASK OK") && out.contains("imported as unused0"), "{out}");
    let conf = config(&daemon, "510");
    assert_eq!(conf["unused0"], "local:510/vm-510-disk-0.qcow2", "{conf}");
    let new = path_of(&daemon, "local:510/vm-510-disk-0.qcow2");
    assert!(qemu_io(&new, "read -P 0x33 0 64k") && qemu_io(&new, "read -P 0x44 16M 4k"));
    let listed = json(&daemon, "storectl", &["list", "local", "--vmid", "510"]);
    assert_eq!(listed[0]["size"], 32 << 20, "{listed}");

    // Into raw on another storage, from a vmdk: the next unused key.
    qemu_img(dir, &["convert", "-f", "qcow2", "-O", "vmdk", "image.qcow2", "image.vmdk"]);
    let vmdk = dir.join("image.vmdk");
    ok(&daemon, "vmctl", &["importdisk", "510", vmdk.to_str().expect("UTF-8"), "second", "--format", "raw"]);
    let conf = config(&daemon, "510");
    assert_eq!(conf["unused1"], "second:510/vm-510-disk-0.raw", "{conf}");
    let raw = path_of(&daemon, "second:510/vm-510-disk-0.raw");
    assert!(read_at(&raw, 0, 64 << 10).iter().all(|b| *b == 0x33));
    assert!(read_at(&raw, 16 << 20, 4096).iter().all(|b| *b == 0x44));

    // Images that reach other files are refused before anything is allocated.
    let before = (volumes(&daemon, "local", "510"), volumes(&daemon, "second", "510"), config(&daemon, "510"));
    qemu_img(dir, &["create", "-q", "-f", "qcow2", "-b", "/etc/hostname", "-F", "raw", "evil.qcow2", "1M"]);
    let evil = dir.join("evil.qcow2");
    let stderr = refused(&daemon, "vmctl", &["disk", "import", "510", evil.to_str().expect("UTF-8"), "local"]);
    assert!(stderr.contains("backing file '/etc/hostname'"), "{stderr}");
    qemu_img(dir, &["create", "-q", "-f", "qcow2", "-o", "data_file=data.raw", "external.qcow2", "1M"]);
    let external = dir.join("external.qcow2");
    let stderr = refused(&daemon, "vmctl", &["disk", "import", "510", external.to_str().expect("UTF-8"), "local"]);
    assert!(stderr.contains("external data file"), "{stderr}");
    let stderr = refused(&daemon, "vmctl", &["disk", "import", "510", "/dev/null", "local"]);
    assert!(stderr.contains("regular file or a block device"), "{stderr}");
    // Nobody but root holds VM.Config.Disk (or VM.PowerMgmt) until an ACL grants it; the file
    // a refused caller sent does not upset the connection.
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(image, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let nobody = 65534;
    for args in [
        &["disk", "import", "510", image, "local"][..],
        &["move-disk", "510", "scsi0", "local"],
        &["unlink", "510", "--idlist", "unused0"],
        &["cleanup", "510"],
    ] {
        let out = daemon.command("vmctl").args(args).uid(nobody).gid(nobody).output().expect("vmctl as nobody");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "vmctl {args:?}: {stderr}");
        assert!(stderr.contains("permission denied: nobody@pam lacks VM."), "vmctl {args:?}: {stderr}");
    }
    // A descriptor that was not opened for reading proves nothing: O_PATH needs no read access
    // to the file, and hearthd must not read it for the caller.
    for flags in [nix::fcntl::OFlag::O_PATH, nix::fcntl::OFlag::O_WRONLY] {
        let fd = nix::fcntl::open(image, flags, nix::sys::stat::Mode::empty()).expect("opening the image");
        let request = hearth_proto::Request::Vm(hearth_proto::VmRequest::ImportDisk(hearth_proto::ImportDisk {
            vmid: crate::vmid(510),
            storage: "local".into(),
            format: None,
            source: image.into(),
        }));
        let e = daemon.client().call_with_file(&request, fd).expect_err("refused");
        assert!(e.to_string().contains("not opened for reading"), "{flags:?}: {e}");
    }
    let after = (volumes(&daemon, "local", "510"), volumes(&daemon, "second", "510"), config(&daemon, "510"));
    assert_eq!(after, before, "a refused import leaves nothing");
    ok(&daemon, "vmctl", &["destroy", "510"]);
}

#[test]
fn unlink_keeps_volumes_as_unused_or_frees_them_with_force() {
    let daemon = HearthdProcess::start();
    ok(
        &daemon,
        "vmctl",
        &[
            "create",
            "520",
            "--scsi0",
            "local:0.0625",
            "--scsi1",
            "local:0.0625,format=raw",
            "--virtio0",
            "local:0.0625,format=raw",
            "--ide2",
            "none,media=cdrom",
        ],
    );
    let all = volumes(&daemon, "local", "520");
    assert_eq!(all.len(), 3, "{all:?}");

    // Without --force the volume stays, as unused0.
    let digest = json(&daemon, "vmctl", &["unlink", "520", "--idlist", "scsi1"]);
    let conf = config(&daemon, "520");
    assert_eq!(digest["digest"], conf["digest"], "unlink answers the new digest");
    assert!(conf.get("scsi1").is_none(), "{conf}");
    assert_eq!(conf["unused0"], "local:520/vm-520-disk-1.raw", "{conf}");
    assert_eq!(volumes(&daemon, "local", "520"), all);

    // An unusedN that is unlinked is freed; so is a disk with --force. A CD-ROM just goes.
    ok(&daemon, "vmctl", &["unlink", "520", "--idlist", "unused0"]);
    ok(&daemon, "vmctl", &["unlink", "520", "--idlist", "virtio0,ide2", "--force"]);
    let conf = config(&daemon, "520");
    for gone in ["unused0", "unused1", "virtio0", "ide2"] {
        assert!(conf.get(gone).is_none(), "{gone}: {conf}");
    }
    assert_eq!(volumes(&daemon, "local", "520"), ["local:520/vm-520-disk-0.qcow2"]);

    // Refusals change nothing.
    let stderr = refused(&daemon, "vmctl", &["unlink", "520", "--idlist", "scsi0,scsi9"]);
    assert!(stderr.contains("scsi9: VM 520 has no such key"), "{stderr}");
    ok(&daemon, "vmctl", &["set", "520", "--memory", "256"]);
    let stderr = refused(&daemon, "vmctl", &["unlink", "520", "--idlist", "memory"]);
    assert!(stderr.contains("memory: not a disk"), "{stderr}");
    let conf = config(&daemon, "520");
    assert_eq!(conf["scsi0"], "local:520/vm-520-disk-0.qcow2,size=64M", "{conf}");

    // A volume a snapshot still uses loses its key only, even with --force.
    ok(&daemon, "vmctl", &["snapshot", "520", "keep"]);
    ok(&daemon, "vmctl", &["unlink", "520", "--idlist", "scsi0", "--force"]);
    let conf = config(&daemon, "520");
    assert!(conf.get("scsi0").is_none() && conf.get("unused0").is_none(), "{conf}");
    assert_eq!(volumes(&daemon, "local", "520"), ["local:520/vm-520-disk-0.qcow2"]);
    ok(&daemon, "vmctl", &["destroy", "520"]);
    assert_eq!(volumes(&daemon, "local", "520"), Vec::<String>::new());
}

#[test]
fn cleanup_removes_what_a_gone_qemu_left_and_a_stale_suspended_lock() {
    let daemon = HearthdProcess::start();
    ok(&daemon, "vmctl", &["create", "530", "--memory", "64"]);
    let run_dir = daemon.root().join("run/hearth/qemu");
    // A pid that is not a QEMU of ours, as after a crash and a reboot.
    std::fs::write(run_dir.join("530.pid"), "1\n").expect("pidfile");
    for leftover in ["530.qmp", "530.serial0", "530.qmp-event"] {
        std::fs::write(run_dir.join(leftover), "").expect("leftover");
    }
    std::fs::write(run_dir.join("531.qmp"), "").expect("another VM's file");
    let file = daemon.root().join("etc/hearth/nodes/test/qemu/530.toml");
    let text = std::fs::read_to_string(&file).expect("config");
    std::fs::write(&file, format!("lock = \"suspended\"\n{text}")).expect("config");
    assert_eq!(json(&daemon, "vmctl", &["status", "530"])["lock"], "suspended");

    let out = ok(&daemon, "vmctl", &["cleanup", "530"]);
    assert!(out.is_empty(), "{out}");
    let left: Vec<String> = std::fs::read_dir(&run_dir)
        .expect("run dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["531.qmp"], "only VM 530's files go");
    let status = json(&daemon, "vmctl", &["status", "530"]);
    assert!(status.get("lock").is_none(), "{status}");

    // Other locks are not cleanup's business.
    let text = std::fs::read_to_string(&file).expect("config");
    std::fs::write(&file, format!("lock = \"backup\"\n{text}")).expect("config");
    ok(&daemon, "vmctl", &["cleanup", "530"]);
    assert_eq!(json(&daemon, "vmctl", &["status", "530"])["lock"], "backup");
    let stderr = refused(&daemon, "vmctl", &["cleanup", "539"]);
    assert!(stderr.contains("does not exist"), "{stderr}");
}
