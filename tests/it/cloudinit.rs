//! Cloud-init, as Proxmox's template workflow uses it: a VM with `--ide2 local:cloudinit` and
//! the cloud-init keys boots under TCG and reads its drive (an ISO9660 image labelled
//! `cidata`) from the guest; `vmctl cloudinit dump|pending|update`; the configdrive2 layout;
//! `import-from=` making disks from images; and what is refused with nothing made.

use std::path::{Path, PathBuf};

use hearth_test::{HearthdProcess, require_tool};

use crate::vm::{Bridge, Console, boot_args};
use crate::{UnixUser, json, ok, run};

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHearthCloudInitTestKeyAAAAAAAAAAAAAAAAAAAA alice@example";

/// A file in the test's own temporary directory.
fn temp_file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("writing a test file");
    path
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// The text of a file inside the guest, between two markers the typed line cannot show.
fn guest_file(console: &mut Console, path: &str, done: &str) -> String {
    let printed = console.run(&format!("echo BEGIN-$((40+2)); cat {path}; echo END-$((40+2))"), done);
    let begin = printed.rfind("BEGIN-42").map(|at| at + "BEGIN-42".len()).expect("begin marker");
    let end = printed[begin..].find("END-42").map(|at| at + begin).expect("end marker");
    printed[begin..end].replace('\r', "").trim_start_matches('\n').to_owned()
}

/// The images directory of `vmid` on `local`.
fn images(daemon: &HearthdProcess, vmid: &str) -> Vec<String> {
    let dir = daemon.root().join("var/lib/hearth/images").join(vmid);
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_vm_reads_its_cloudinit_drive_and_it_follows_the_configuration() {
    require_tool("genisoimage", "genisoimage");
    let daemon = HearthdProcess::start();
    let bridge = Bridge::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = temp_file(&dir, "id_ed25519.pub", &format!("{KEY}\n"));
    let args = boot_args();
    let net0 = format!("virtio=BC:24:11:C1:00:01,bridge={}", bridge.0);
    ok(
        &daemon,
        "vmctl",
        &[
            "create",
            "500",
            "--name",
            "ci500",
            "--memory",
            "256",
            "--kvm",
            "0",
            "--serial0",
            "socket",
            "--net0",
            &net0,
            "--ide2",
            "local:cloudinit",
            "--ciuser",
            "alice",
            "--cipassword",
            "s3cret-pw",
            "--sshkey",
            path_str(&key_file),
            "--ipconfig0",
            "ip=10.0.10.123/24,gw=10.0.10.1",
            "--nameserver",
            "10.0.10.53",
            "--searchdomain",
            "example.test",
            "--args",
            &args,
        ],
    );
    // The drive as Proxmox names it, shown as CD-ROM media; the password stored hashed and
    // never shown; the keys URL-encoded.
    let config = json(&daemon, "vmctl", &["config", "500"]);
    assert_eq!(config["ide2"], "local:500/vm-500-cloudinit.qcow2,media=cdrom", "{config}");
    assert_eq!(config["cipassword"], "**********");
    assert_eq!(config["sshkeys"], hearth_core::cloudinit::uri_escape(&format!("{KEY}\n")));
    let stored = std::fs::read_to_string(
        daemon.root().join("etc/hearth/nodes").join(daemon_node(&daemon)).join("qemu/500.toml"),
    )
    .expect("the VM's file");
    assert!(!stored.contains("s3cret-pw") && stored.contains("cipassword = \"$6$"), "{stored}");
    assert!(images(&daemon, "500").contains(&"vm-500-cloudinit.qcow2".to_owned()));
    // Before the first start every cloud-init key is pending.
    let pending = ok(&daemon, "vmctl", &["cloudinit", "pending", "500"]);
    assert!(pending.contains("new ciuser: alice") && pending.contains("new cipassword: **********"), "{pending}");

    ok(&daemon, "vmctl", &["start", "500"]);
    let mut console = Console::open(&daemon, "500");
    console.ready();
    console.run("mkdir -p /mnt/ci && mount -t iso9660 -o ro /dev/sr0 /mnt/ci", "mounted");
    let label = console.run("dd if=/dev/sr0 bs=1 skip=32808 count=6 2>/dev/null; echo", "label");
    assert!(label.contains("cidata"), "the drive's label: {label}");
    let listing = console.run("ls /mnt/ci", "listed");
    for name in ["meta-data", "network-config", "user-data", "vendor-data"] {
        assert!(listing.contains(name), "{name} is on the drive: {listing}");
    }
    let user = guest_file(&mut console, "/mnt/ci/user-data", "user");
    let network = guest_file(&mut console, "/mnt/ci/network-config", "network");
    let meta = guest_file(&mut console, "/mnt/ci/meta-data", "meta");
    assert!(user.starts_with("#cloud-config\nhostname: ci500\n"), "{user}");
    assert!(user.contains("fqdn: ci500.example.test\n") && user.contains("user: alice\n"), "{user}");
    assert!(user.contains(&format!("ssh_authorized_keys:\n  - {KEY}\n")), "{user}");
    let hash = user.lines().find_map(|l| l.strip_prefix("password: ")).expect("a password line");
    assert!(hash.starts_with("$6$") && !user.contains("s3cret-pw"), "{user}");
    for line in [
        "  name: eth0",
        "  mac_address: 'bc:24:11:c1:00:01'",
        "    address: '10.0.10.123'",
        "    netmask: '255.255.255.0'",
        "    gateway: '10.0.10.1'",
        "- type: nameserver",
        "  - '10.0.10.53'",
        "  - 'example.test'",
    ] {
        assert!(network.contains(line), "network-config has {line:?}:\n{network}");
    }
    // `dump` prints exactly what the guest read (root sees the hash).
    assert_eq!(ok(&daemon, "vmctl", &["cloudinit", "dump", "500", "user"]), user);
    assert_eq!(ok(&daemon, "vmctl", &["cloudinit", "dump", "500", "network"]), network);
    assert_eq!(ok(&daemon, "vmctl", &["cloudinit", "dump", "500", "meta"]), meta);
    assert!(meta.starts_with("instance-id: "), "{meta}");

    // A change is pending until the drive is written again; a running VM gets it only live,
    // with cloudinit in its hotplug.
    ok(&daemon, "vmctl", &["set", "500", "--ciuser", "bob"]);
    let pending = ok(&daemon, "vmctl", &["cloudinit", "pending", "500"]);
    assert!(pending.contains("cur ciuser: alice") && pending.contains("new ciuser: bob"), "{pending}");
    assert!(pending.contains("cur ipconfig0: ip=10.0.10.123/24,gw=10.0.10.1"), "{pending}");
    let (code, _, stderr) = run(&daemon, "vmctl", &["cloudinit", "update", "500"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("hotplug does not include cloudinit"), "{stderr}");
    ok(&daemon, "vmctl", &["set", "500", "--hotplug", "network,disk,usb,cloudinit"]);
    ok(&daemon, "vmctl", &["cloudinit", "update", "500"]);
    let pending = ok(&daemon, "vmctl", &["cloudinit", "pending", "500"]);
    assert!(pending.contains("cur ciuser: bob") && !pending.contains("new "), "{pending}");
    console.run("umount /mnt/ci; mount -t iso9660 -o ro /dev/sr0 /mnt/ci", "remounted");
    let user = guest_file(&mut console, "/mnt/ci/user-data", "user2");
    assert!(user.contains("user: bob\n"), "the guest sees the new drive: {user}");
    drop(console);

    ok(&daemon, "vmctl", &["stop", "500"]);
    ok(&daemon, "vmctl", &["destroy", "500"]);
    assert!(images(&daemon, "500").is_empty(), "{:?}", images(&daemon, "500"));
    assert!(!daemon.root().join("var/lib/hearth/cloudinit/500.json").exists());
}

/// The node name the daemon runs as (the one directory under etc/hearth/nodes).
fn daemon_node(daemon: &HearthdProcess) -> String {
    let nodes = daemon.root().join("etc/hearth/nodes");
    let entry = std::fs::read_dir(&nodes).expect("nodes").next().expect("one node").expect("entry");
    entry.file_name().to_string_lossy().into_owned()
}

/// The cloud-init drive of `vmid` as a raw ISO file in `dir`.
fn drive_iso(daemon: &HearthdProcess, vmid: &str, dir: &tempfile::TempDir) -> PathBuf {
    let qcow2 = daemon.root().join(format!("var/lib/hearth/images/{vmid}/vm-{vmid}-cloudinit.qcow2"));
    let iso = dir.path().join(format!("{vmid}.iso"));
    let status = std::process::Command::new("qemu-img")
        .args(["convert", "-f", "qcow2", "-O", "raw"])
        .arg(&qcow2)
        .arg(&iso)
        .status()
        .expect("qemu-img (install qemu-utils)");
    assert!(status.success());
    iso
}

fn isoinfo(args: &[&str], iso: &Path) -> String {
    let out = std::process::Command::new("isoinfo").args(args).arg("-i").arg(iso).output().expect("isoinfo");
    assert!(out.status.success(), "isoinfo {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn configdrive2_import_from_and_refusals() {
    require_tool("genisoimage", "genisoimage");
    require_tool("isoinfo", "genisoimage");
    let daemon = HearthdProcess::start();
    let dir = tempfile::tempdir().expect("tempdir");

    // configdrive2: an ISO labelled config-2 with OpenStack's layout, written on update.
    ok(
        &daemon,
        "vmctl",
        &[
            "create",
            "510",
            "--memory",
            "64",
            "--kvm",
            "0",
            "--net0",
            "virtio=BC:24:11:C1:00:10",
            "--sata1",
            "local:cloudinit",
            "--citype",
            "configdrive2",
            "--ciuser",
            "carol",
            "--ipconfig0",
            "ip=dhcp",
            "--nameserver",
            "192.0.2.53",
        ],
    );
    ok(&daemon, "vmctl", &["cloudinit", "update", "510"]);
    let iso = drive_iso(&daemon, "510", &dir);
    assert!(isoinfo(&["-d"], &iso).contains("Volume id: config-2"));
    let files = isoinfo(&["-R", "-f"], &iso);
    for name in [
        "/openstack/latest/user_data",
        "/openstack/latest/meta_data.json",
        "/openstack/latest/vendor_data.json",
        "/openstack/content/0000",
    ] {
        assert!(files.lines().any(|l| l == name), "{name} in:\n{files}");
    }
    let user = isoinfo(&["-R", "-x", "/openstack/latest/user_data"], &iso);
    assert!(user.contains("user: carol\n"), "{user}");
    let network = isoinfo(&["-R", "-x", "/openstack/content/0000"], &iso);
    assert!(network.contains("dns_nameservers 192.0.2.53") && network.contains("iface eth0 inet dhcp"), "{network}");
    assert_eq!(network, ok(&daemon, "vmctl", &["cloudinit", "dump", "510", "network"]));
    // One drive per VM.
    let (code, _, stderr) = run(&daemon, "vmctl", &["set", "510", "--ide2", "local:cloudinit"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("ide2: a cloud-init drive is already attached at 'sata1'"), "{stderr}");

    // import-from: a new disk from an image in one step, in create and in set.
    let image = dir.path().join("source.qcow2");
    let qemu_img = |args: &[&str]| {
        let status = std::process::Command::new("qemu-img").args(args).status().expect("qemu-img");
        assert!(status.success(), "qemu-img {args:?}");
    };
    qemu_img(&["create", "-q", "-f", "qcow2", path_str(&image), "8M"]);
    assert!(crate::vm::qemu_io(path_str(&image), "write -P 0x5a 0 64k"));
    let from = format!("local:0,import-from={}", path_str(&image));
    ok(&daemon, "vmctl", &["create", "511", "--memory", "64", "--scsi0", &from]);
    let config = json(&daemon, "vmctl", &["config", "511"]);
    assert_eq!(config["scsi0"], "local:511/vm-511-disk-0.qcow2,size=8M", "{config}");
    let disk0 = daemon.root().join("var/lib/hearth/images/511/vm-511-disk-0.qcow2");
    assert!(crate::vm::qemu_io(path_str(&disk0), "read -P 0x5a 0 64k"));
    ok(&daemon, "vmctl", &["set", "511", "--virtio1", "local:0,import-from=local:511/vm-511-disk-0.qcow2,format=raw"]);
    let config = json(&daemon, "vmctl", &["config", "511"]);
    assert_eq!(config["virtio1"], "local:511/vm-511-disk-1.raw,size=8M,format=raw", "{config}");

    // Bad sources and snippets are refused, and nothing is made.
    let backed = dir.path().join("backed.qcow2");
    qemu_img(&["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", path_str(&image), path_str(&backed)]);
    let empty = temp_file(&dir, "empty.img", "");
    for (source, message) in [
        (dir.path().join("missing.qcow2"), "cannot read it"),
        (dir.path().to_owned(), "not an image file"),
        (empty.clone(), "the image is empty"),
        (backed.clone(), "backing file"),
    ] {
        let from = format!("local:0,import-from={}", path_str(&source));
        let (code, _, stderr) = run(&daemon, "vmctl", &["create", "512", "--memory", "64", "--scsi0", &from]);
        assert_eq!(code, 1, "{source:?}");
        assert!(stderr.contains("scsi0: import-from") && stderr.contains(message), "{source:?}: {stderr}");
        let (code, _, _) = run(&daemon, "vmctl", &["config", "512"]);
        assert_ne!(code, 0, "no VM 512 after {source:?}");
        assert!(images(&daemon, "512").is_empty());
        let (code, _, stderr) = run(&daemon, "vmctl", &["set", "511", "--scsi2", &from]);
        assert_eq!(code, 1, "{stderr}");
    }
    let (code, _, stderr) =
        run(&daemon, "vmctl", &["set", "511", "--scsi2", &format!("local:4,import-from={}", path_str(&image))]);
    assert_eq!(code, 1);
    assert!(stderr.contains("use <storage ID>:0,import-from=<source>"), "{stderr}");
    let (code, _, stderr) = run(&daemon, "vmctl", &["set", "510", "--cicustom", "user=local:snippets/missing.yaml"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("cicustom: user: snippet 'local:snippets/missing.yaml' does not exist"), "{stderr}");
    assert_eq!(images(&daemon, "511"), ["vm-511-disk-0.qcow2", "vm-511-disk-1.raw"]);
    assert!(json(&daemon, "vmctl", &["config", "510"]).get("cicustom").is_none());

    // A snippet replaces the generated user-data.
    let snippets = daemon.root().join("var/lib/hearth/snippets");
    std::fs::create_dir_all(&snippets).expect("snippets dir");
    std::fs::write(snippets.join("user.yaml"), "#cloud-config\nuser: from-snippet\n").expect("snippet");
    ok(&daemon, "vmctl", &["set", "510", "--cicustom", "user=local:snippets/user.yaml"]);
    ok(&daemon, "vmctl", &["cloudinit", "update", "510"]);
    let iso = drive_iso(&daemon, "510", &dir);
    assert_eq!(isoinfo(&["-R", "-x", "/openstack/latest/user_data"], &iso), "#cloud-config\nuser: from-snippet\n");

    // The template workflow: a clone gets a cloud-init drive of its own.
    ok(&daemon, "vmctl", &["template", "510"]);
    ok(&daemon, "vmctl", &["clone", "510", "515", "--name", "clone515"]);
    let config = json(&daemon, "vmctl", &["config", "515"]);
    assert_eq!(config["sata1"], "local:515/vm-515-cloudinit.qcow2,media=cdrom", "{config}");
    assert_eq!(json(&daemon, "vmctl", &["config", "510"])["sata1"], "local:510/vm-510-cloudinit.qcow2,media=cdrom");
    let key_file = temp_file(&dir, "id.pub", &format!("{KEY}\n"));
    ok(
        &daemon,
        "vmctl",
        &["set", "515", "--sshkey", path_str(&key_file), "--cicustom", "meta=local:snippets/user.yaml"],
    );
    ok(&daemon, "vmctl", &["cloudinit", "update", "515"]);
    let iso = drive_iso(&daemon, "515", &dir);
    assert!(isoinfo(&["-R", "-x", "/openstack/latest/user_data"], &iso).contains(&format!("  - {KEY}\n")));
    // A backup leaves the drive out; a restore gives the VM a drive of its own, and keeps it
    // when it restores over the VM.
    ok(&daemon, "vmctl", &["backup", "515", "--storage", "local"]);
    let dump = daemon.root().join("var/lib/hearth/dump");
    let archive = std::fs::read_dir(&dump)
        .expect("dump dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("vzdump-qemu-515-") && n.ends_with(".vma.zst"))
        .expect("the backup archive");
    let archive = format!("local:backup/{archive}");
    ok(&daemon, "vmctl", &["restore", "516", &archive]);
    assert_eq!(json(&daemon, "vmctl", &["config", "516"])["sata1"], "local:516/vm-516-cloudinit.qcow2,media=cdrom");
    ok(&daemon, "vmctl", &["restore", "515", &archive, "--force"]);
    assert_eq!(json(&daemon, "vmctl", &["config", "515"])["sata1"], "local:515/vm-515-cloudinit.qcow2,media=cdrom");
    assert_eq!(images(&daemon, "515"), ["vm-515-cloudinit.qcow2"]);
    ok(&daemon, "vmctl", &["destroy", "516"]);
    assert!(images(&daemon, "516").is_empty());

    // Removed, the drive is freed.
    ok(&daemon, "vmctl", &["set", "515", "--delete", "sata1"]);
    assert!(images(&daemon, "515").is_empty(), "{:?}", images(&daemon, "515"));
    ok(&daemon, "vmctl", &["destroy", "515"]);

    // A user who may change cloud-init settings still needs the snippet's storage, and a host
    // path to import from is root's.
    let user = UnixUser::new("ci");
    ok(&daemon, "userctl", &["user", "add", &user.userid()]);
    ok(&daemon, "userctl", &["role", "add", "CloudInit", "--privs", "VM.Audit,VM.Config.Cloudinit,VM.Config.Disk"]);
    ok(&daemon, "userctl", &["acl", "modify", "/vms/511", "--roles", "CloudInit", "--users", &user.userid()]);
    ok(&daemon, "userctl", &["role", "add", "Space", "--privs", "Datastore.AllocateSpace,Datastore.Audit"]);
    ok(&daemon, "userctl", &["acl", "modify", "/storage/local", "--roles", "Space", "--users", &user.userid()]);
    let out = user.run(&daemon, "vmctl", &["set", "511", "--ciuser", "dave"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = user.run(&daemon, "vmctl", &["set", "511", "--cicustom", "user=local:snippets/user.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("permission denied") && stderr.contains("/storage/local"), "{stderr}");
    let out = user.run(&daemon, "vmctl", &["set", "511", "--scsi3", &from]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("permission denied") && stderr.contains("root@pam"), "{stderr}");
    // An image of the storage's import content is theirs to read.
    std::fs::create_dir_all(daemon.root().join("var/lib/hearth/import")).expect("import dir");
    std::fs::copy(&image, daemon.root().join("var/lib/hearth/import/source.qcow2")).expect("import image");
    ok(&daemon, "storectl", &["set", "local", "--content", "images,rootdir,iso,vztmpl,backup,snippets,import"]);
    let out = user.run(&daemon, "vmctl", &["set", "511", "--scsi3", "local:0,import-from=local:import/source.qcow2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json(&daemon, "vmctl", &["config", "511"])["scsi3"], "local:511/vm-511-disk-2.qcow2,size=8M");
    let out = user.run(&daemon, "vmctl", &["cloudinit", "dump", "511", "user"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("user: dave"));
    assert!(json(&daemon, "vmctl", &["config", "511"]).get("cicustom").is_none());
}
