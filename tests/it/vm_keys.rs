//! The configuration keys beyond disks and NICs, through the real CLIs and a real hearthd:
//! validated with Proxmox's formats, stored, shown by `config`, turned into QEMU options
//! (`showcmd`) and, for what acts on the host (EFI and TPM volumes with swtpm, CPU affinity,
//! the CPU limit's cgroup, freeze), seen on a started VM. Container mount points as pct's
//! documentation types them, and the container's entrypoint and environment.

use std::io::Write;

use hearth_test::HearthdProcess;

use crate::{UnixUser, json, ok, run};

fn config(daemon: &HearthdProcess, vmid: &str) -> serde_json::Value {
    json(daemon, "vmctl", &["config", vmid])
}

fn is_uuid(v: &serde_json::Value) -> bool {
    v.as_str().is_some_and(|s| hearth_core::vm::uuid(s).is_ok())
}

#[test]
fn new_vm_keys_are_validated_stored_shown_and_passed_to_qemu() {
    let mut daemon = HearthdProcess::start();
    let iso = daemon.root().join("small.iso");
    std::fs::write(&iso, b"not really an ISO image").expect("write");
    ok(&daemon, "storectl", &["upload", "local", iso.to_str().expect("UTF-8"), "--content", "iso"]);
    ok(
        &daemon,
        "vmctl",
        &[
            "create",
            "480",
            "-memory",
            "128",
            "-kvm",
            "0",
            "-cdrom",
            "local:iso/small.iso",
            "-rng0",
            "source=/dev/urandom,max_bytes=2048",
            "-watchdog",
            "model=i6300esb,action=reset",
            "-vga",
            "std,memory=32",
            "-keyboard",
            "de",
            "-startdate",
            "2006-06-17",
            "-audio0",
            "device=AC97,driver=none",
            "-cpulimit",
            "0.5",
            "-cpuunits",
            "200",
            "-shares",
            "500",
            "-affinity",
            "0",
            "-reboot",
            "0",
            "-ivshmem",
            "size=1",
        ],
    );
    let c = config(&daemon, "480");
    assert_eq!(c["ide2"], "local:iso/small.iso,media=cdrom", "-cdrom is ide2 as a CD-ROM: {c}");
    assert_eq!(c["rng0"], "source=/dev/urandom,max_bytes=2048");
    assert_eq!(c["vga"], "std,memory=32");
    assert_eq!(c["cpulimit"], 0.5);
    assert_eq!(c["shares"], 500);
    // As qm create: a generation id and an SMBIOS UUID of its own.
    assert!(is_uuid(&c["vmgenid"]), "{c}");
    let smbios = c["smbios1"].as_str().expect("smbios1").to_owned();
    assert!(smbios.strip_prefix("uuid=").is_some_and(|u| hearth_core::vm::uuid(u).is_ok()), "{smbios}");

    let cmd = ok(&daemon, "vmctl", &["showcmd", "480", "--pretty"]);
    for wanted in [
        &format!("-device vmgenid,guid={},id=vmgenid0", c["vmgenid"].as_str().unwrap_or_default()),
        &format!("-smbios type=1,{smbios}"),
        "-device virtio-rng-pci,rng=rng0,id=rng0,max-bytes=2048,period=1000",
        "-device i6300esb,id=watchdog0",
        "-watchdog-action reset",
        "-device VGA,id=vga,vgamem_mb=32",
        "-k de",
        "-rtc base=2006-06-17",
        "-device AC97,id=audiodev0,audiodev=audiodev0-backend",
        "-no-reboot",
        "mem-path=/dev/shm/pve-shm-480,size=1M",
        "-device ide-cd,bus=ide.1,unit=0,id=ide2",
    ] {
        assert!(cmd.contains(wanted), "showcmd lacks '{wanted}':\n{cmd}");
    }

    // -cdrom on set, as on create: the medium of ide2.
    ok(&daemon, "vmctl", &["set", "480", "-cdrom", "none"]);
    assert_eq!(config(&daemon, "480")["ide2"], "none,media=cdrom");
    ok(&daemon, "vmctl", &["set", "480", "-cdrom", "local:iso/small.iso"]);

    // vmgenid as qm.adoc shows it: 1 makes a new one, all zeros turns it off, delete removes it.
    let before = config(&daemon, "480")["vmgenid"].clone();
    ok(&daemon, "vmctl", &["set", "480", "-vmgenid", "1"]);
    let after = config(&daemon, "480")["vmgenid"].clone();
    assert!(is_uuid(&after) && after != before, "{before} -> {after}");
    ok(&daemon, "vmctl", &["set", "480", "-vmgenid", "00000000-0000-0000-0000-000000000000"]);
    assert!(!ok(&daemon, "vmctl", &["showcmd", "480"]).contains("vmgenid"), "the all-zero id has no device");
    ok(&daemon, "vmctl", &["set", "480", "-delete", "vmgenid"]);
    assert!(config(&daemon, "480").get("vmgenid").is_none());

    // Bad values: one error naming the key and what is allowed; nothing changes.
    let digest = config(&daemon, "480")["digest"].clone();
    for (key, value, message) in [
        (
            "--rng0",
            "source=/dev/zero",
            "rng0: source: invalid value '/dev/zero' (allowed: /dev/urandom, /dev/random, /dev/hwrng)",
        ),
        ("--vga", "matrox", "vga: type: invalid value 'matrox' (allowed: std, cirrus"),
        ("--watchdog", "model=softdog", "watchdog: model: invalid value 'softdog' (allowed: i6300esb, ib700)"),
        ("--affinity", "2-1", "affinity: invalid CPU list '2-1'"),
        ("--vmgenid", "yes", "vmgenid: invalid value 'yes': expected 1 (generate one) or a UUID"),
        ("--tpmstate0", "local:1,version=v3", "tpmstate0: version: invalid value 'v3' (allowed: v1.2, v2.0)"),
    ] {
        let (code, _, stderr) = run(&daemon, "vmctl", &["set", "480", key, value, "--memory", "256"]);
        assert_ne!(code, 0, "{key} {value} was accepted");
        assert!(stderr.contains(message), "{key} {value}: {stderr}");
    }
    let c = config(&daemon, "480");
    assert_eq!(c["digest"], digest, "a refused change changed the configuration");
    assert_eq!(c["memory"], 128);

    // Host devices are root's, whatever the ACL grants; a VM's own settings are not.
    let user = UnixUser::new("vk");
    std::fs::write(
        daemon.root().join("etc/hearth/access.toml"),
        format!(
            "[users.\"{id}\"]\n\n[[acl]]\npath = \"/vms/480\"\nuser = \"{id}\"\nrole = \"PVEVMAdmin\"\n",
            id = user.userid()
        ),
    )
    .expect("access.toml");
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    daemon.restart();
    let out =
        user.run(&daemon, "vmctl", &["set", "480", "--rng0", "/dev/random", "--cpulimit", "1", "--hugepages", "2"]);
    assert!(out.status.success(), "PVEVMAdmin configures the VM: {}", String::from_utf8_lossy(&out.stderr));
    for (key, value) in [
        ("--usb0", "host=1234:abcd"),
        ("--hostpci0", "01:00.0"),
        ("--parallel0", "/dev/parport0"),
        ("--rng0", "/dev/hwrng"),
        ("--ivshmem", "size=1,name=other"),
    ] {
        let out = user.run(&daemon, "vmctl", &["set", "480", key, value]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains("permission denied"), "{key} {value}: {stderr}");
    }
    // Huge pages come from a hugetlbfs the administrator mounts, as on Proxmox; without it the
    // start (and showcmd, which shows what a start runs) says what to do.
    let (code, _, stderr) = run(&daemon, "vmctl", &["showcmd", "480"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("hugepages: /run/hugepages/kvm/2048kB is missing; mount hugetlbfs there"), "{stderr}");
    ok(&daemon, "vmctl", &["set", "480", "--delete", "hugepages"]);
    ok(
        &daemon,
        "vmctl",
        &["set", "480", "--usb0", "host=1234:abcd", "--hostpci0", "01:00.0", "--parallel0", "/dev/parport0"],
    );
    let cmd = ok(&daemon, "vmctl", &["showcmd", "480"]);
    assert!(cmd.contains("-device usb-host,bus=xhci-host.0,vendorid=0x1234,productid=0xabcd,id=usb0"), "{cmd}");
    assert!(cmd.contains("-device vfio-pci,host=0000:01:00.0,id=hostpci0.0"), "{cmd}");
    assert!(cmd.contains("-chardev parallel,id=parallel0,path=/dev/parport0"), "{cmd}");

    // Keys Hearth stores but cannot run say so at start, and nothing is left running.
    ok(&daemon, "vmctl", &["set", "480", "--delete", "usb0,hostpci0,parallel0", "--virtiofs0", "share1"]);
    let (code, _, stderr) = run(&daemon, "vmctl", &["start", "480"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("virtiofs0: virtiofs needs directory mappings"), "{stderr}");
    assert_eq!(json(&daemon, "vmctl", &["status", "480"])["status"], "stopped");

    // A restored VM is a new generation: a new vmgenid, the same SMBIOS identity (qmrestore).
    ok(&daemon, "vmctl", &["set", "480", "--delete", "virtiofs0", "--vmgenid", "1"]);
    let original = config(&daemon, "480");
    ok(&daemon, "vmctl", &["backup", "480", "--storage", "local"]);
    let list = json(&daemon, "storectl", &["backup", "list", "--storage", "local", "--vmid", "480"]);
    let archive = list[0]["volid"].as_str().expect("a backup of 480").to_owned();
    ok(&daemon, "vmctl", &["restore", "483", &archive]);
    let restored = config(&daemon, "483");
    assert!(is_uuid(&restored["vmgenid"]) && restored["vmgenid"] != original["vmgenid"], "{restored}");
    assert_eq!(restored["smbios1"], original["smbios1"]);
    assert_eq!(restored["rng0"], original["rng0"]);
}

#[test]
fn efi_and_tpm_volumes_affinity_cpu_limit_and_freeze_on_a_started_vm() {
    hearth_test::require_tool("swtpm", "swtpm");
    hearth_test::require_tool("swtpm_setup", "swtpm-tools");
    let daemon = HearthdProcess::start();
    ok(
        &daemon,
        "vmctl",
        &[
            "create",
            "481",
            "--memory",
            "128",
            "--kvm",
            "0",
            "--bios",
            "ovmf",
            "--machine",
            "q35",
            "--efidisk0",
            "local:1,format=raw,efitype=4m,pre-enrolled-keys=1",
            "--tpmstate0",
            "local:1,version=v2.0",
            "--affinity",
            "1",
            "--cpulimit",
            "0.5",
            "--freeze",
            "1",
        ],
    );
    let c = config(&daemon, "481");
    let efidisk = c["efidisk0"].as_str().expect("efidisk0").to_owned();
    assert!(efidisk.starts_with("local:481/vm-481-disk-"), "{efidisk}");
    assert!(efidisk.contains("efitype=4m") && efidisk.contains("pre-enrolled-keys=1"), "{efidisk}");
    let tpm = c["tpmstate0"].as_str().expect("tpmstate0").to_owned();
    assert!(tpm.contains("version=v2.0"), "{tpm}");
    let path = |value: &str| {
        let volid = value.split(',').next().expect("volume");
        ok(&daemon, "storectl", &["path", volid]).trim().to_owned()
    };
    let efi_path = path(&efidisk);
    // The variable store starts as Debian's template with the Secure Boot keys enrolled.
    let template = std::fs::read("/usr/share/OVMF/OVMF_VARS_4M.ms.fd").expect("ovmf is installed");
    let vars = std::fs::read(&efi_path).expect("the EFI volume");
    assert!(vars == template, "the EFI volume is not a copy of OVMF_VARS_4M.ms.fd");
    let tpm_path = path(&tpm);
    assert_eq!(std::fs::metadata(&tpm_path).expect("the TPM volume").len(), 4 << 20);

    let (code, _, stderr) = run(&daemon, "vmctl", &["resize", "481", "efidisk0", "+1M"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("efidisk0: cannot be resized"), "{stderr}");

    ok(&daemon, "vmctl", &["start", "481"]);
    let status = json(&daemon, "vmctl", &["status", "481", "--verbose"]);
    assert_eq!(status["qmpstatus"], "prelaunch", "freeze: 1 keeps the guest from running: {status}");
    let pid = status["pid"].as_u64().expect("pid");
    let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("QEMU's status");
    assert!(proc_status.contains("Cpus_allowed_list:\t1\n"), "affinity 1:\n{proc_status}");
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("QEMU's cgroups");
    let cpu_cgroup = cgroups
        .lines()
        .find_map(|l| l.split_once(":cpu,cpuacct:").or_else(|| l.split_once(":cpu:")).map(|(_, p)| p.to_owned()))
        .or_else(|| cgroups.lines().find_map(|l| l.strip_prefix("0::").map(str::to_owned)))
        .expect("QEMU's cpu cgroup");
    assert!(cpu_cgroup.ends_with("/qemu-481"), "{cgroups}");
    let v1 = format!("/sys/fs/cgroup/cpu{cpu_cgroup}/cpu.cfs_quota_us");
    if std::path::Path::new(&v1).exists() {
        assert_eq!(std::fs::read_to_string(&v1).expect("quota").trim(), "50000");
    } else {
        let max = std::fs::read_to_string(format!("/sys/fs/cgroup{cpu_cgroup}/cpu.max")).expect("cpu.max");
        assert_eq!(max.trim(), "50000 100000");
    }
    // The TPM is there for the guest: QEMU talks to a swtpm that holds the state volume.
    let swtpm = daemon.root().join("run/hearth/qemu/481.swtpm.pid");
    let swtpm_pid = std::fs::read_to_string(&swtpm).expect("swtpm's pidfile");
    let swtpm_cmd = std::fs::read(format!("/proc/{}/cmdline", swtpm_pid.trim())).expect("swtpm runs");
    assert!(String::from_utf8_lossy(&swtpm_cmd).contains(&tpm_path), "swtpm keeps its state in the volume");
    let mut monitor = daemon
        .command("vmctl")
        .args(["monitor", "481"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("vmctl monitor");
    monitor.stdin.take().expect("stdin").write_all(b"info tpm\n").expect("typing");
    let out = monitor.wait_with_output().expect("vmctl monitor ends");
    let tpm_info = String::from_utf8_lossy(&out.stdout);
    assert!(tpm_info.contains("emulator"), "{tpm_info}");
    ok(&daemon, "vmctl", &["resume", "481"]);
    assert_eq!(json(&daemon, "vmctl", &["status", "481", "--verbose"])["qmpstatus"], "running");
    ok(&daemon, "vmctl", &["stop", "481"]);
    let swtpm_gone = || {
        std::fs::read_to_string(format!("/proc/{}/stat", swtpm_pid.trim()))
            .map_or(true, |stat| stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')))
    };
    crate::ct::wait_until("swtpm to end with QEMU", swtpm_gone);
    ok(&daemon, "vmctl", &["destroy", "481"]);
    assert!(!std::path::Path::new(&efi_path).exists() && !std::path::Path::new(&tpm_path).exists());
}

#[test]
fn container_mount_points_as_pct_types_them_and_entrypoint_and_env() {
    let daemon = HearthdProcess::start();
    let thin = daemon.root().join("thin1");
    std::fs::create_dir(&thin).expect("storage dir");
    ok(
        &daemon,
        "storectl",
        &["add", "dir", "thin1", "--path", thin.to_str().expect("UTF-8"), "--content", "rootdir,images"],
    );
    let id = crate::ct::ctid(7);
    crate::ct::create(&daemon, &id, &["--entrypoint", "sleep 1000", "--env", "GREETING=hello\\0MODE=test"]);
    // pct.adoc: `pct set 100 -mp0 thin1:10,mp=/path/in/container` allocates 10 GiB on thin1.
    ok(&daemon, "ctctl", &["set", &id, "-mp0", "thin1:10,mp=/path/in/container"]);
    let c = json(&daemon, "ctctl", &["config", &id]);
    let mp0 = c["mp0"].as_str().expect("mp0");
    assert!(mp0.starts_with(&format!("thin1:{id}/vm-{id}-disk-")) && mp0.contains("mp=/path/in/container"), "{mp0}");
    assert!(mp0.contains("size=10G"), "{mp0}");
    // A host bind mount, root only.
    let shared = daemon.root().join("shared");
    std::fs::create_dir(&shared).expect("bind source");
    let bind = format!("{},mp=/shared", shared.display());
    let user = UnixUser::new("mk");
    assert!(!user.run(&daemon, "ctctl", &["set", &id, "-mp1", &bind]).status.success());
    ok(&daemon, "ctctl", &["set", &id, "-mp1", &bind]);
    assert_eq!(json(&daemon, "ctctl", &["config", &id])["mp1"], bind);
    assert_eq!(c["env"], "GREETING=hello\\0MODE=test");
    assert_eq!(c["entrypoint"], "sleep 1000");
    // The entrypoint runs as PID 1 (a bare name found in PATH) with its arguments and the
    // environment.
    ok(&daemon, "ctctl", &["start", &id]);
    let (code, cmdline, stderr) = crate::ct::exec(&daemon, &id, &["cat", "/proc/1/cmdline"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(cmdline, "sleep\u{0}1000\u{0}");
    // Both mount points are there: the new 10 GiB ext4 volume and the host directory.
    std::fs::write(shared.join("hello"), "from the host").expect("write");
    let (code, df, stderr) = crate::ct::exec(&daemon, &id, &["df", "-k", "/path/in/container"]);
    assert_eq!(code, 0, "{stderr}");
    let blocks: u64 =
        df.lines().nth(1).and_then(|l| l.split_whitespace().nth(1)).and_then(|b| b.parse().ok()).unwrap_or(0);
    assert!(blocks > 9 << 20, "a 10 GiB file system: {df}");
    let (_, hello, _) = crate::ct::exec(&daemon, &id, &["cat", "/shared/hello"]);
    assert_eq!(hello, "from the host");
    let (_, environ, _) = crate::ct::exec(&daemon, &id, &["cat", "/proc/1/environ"]);
    assert!(environ.split('\0').any(|e| e == "GREETING=hello"), "{environ:?}");
    assert!(environ.split('\0').any(|e| e == "MODE=test"), "{environ:?}");
    ok(&daemon, "ctctl", &["stop", &id]);

    // A bad env entry is refused naming the key.
    let (code, _, stderr) = run(&daemon, "ctctl", &["set", &id, "--env", "1X=y"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("env: invalid entry '1X=y'"), "{stderr}");
    // Device passthrough takes device nodes only, and is root's.
    let (code, _, stderr) = run(&daemon, "ctctl", &["set", &id, "--dev0", "/etc/passwd"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("dev0: path: invalid device '/etc/passwd'"), "{stderr}");
    assert!(!user.run(&daemon, "ctctl", &["set", &id, "--dev0", "/dev/null"]).status.success());

    // A loop device of the test's, passed through read-only with the owner and mode pct.adoc
    // shows: the container reads it, cannot write it, and the host's node is left as it was.
    let image = daemon.root().join("passthrough.img");
    let mut data = b"hearth-passthrough".to_vec();
    data.resize(1 << 20, 0);
    std::fs::write(&image, &data).expect("image");
    let out = std::process::Command::new("losetup")
        .args(["--find", "--show"])
        .arg(&image)
        .output()
        .expect("losetup (install mount)");
    assert!(out.status.success(), "losetup: {}", String::from_utf8_lossy(&out.stderr));
    let loop_dev = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    struct Detach(String);
    impl Drop for Detach {
        fn drop(&mut self) {
            let _ = std::process::Command::new("losetup").args(["-d", &self.0]).status();
        }
    }
    let _detach = Detach(loop_dev.clone());
    let host_mode = std::fs::metadata(&loop_dev).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
    ok(&daemon, "ctctl", &["set", &id, "--dev0", &format!("{loop_dev},mode=0640,uid=0,gid=6,deny-write=1")]);
    ok(&daemon, "ctctl", &["start", &id]);
    let (code, head, stderr) = crate::ct::exec(&daemon, &id, &["head", "-c", "18", &loop_dev]);
    assert_eq!((code, head.as_str()), (0, "hearth-passthrough"), "{stderr}");
    let (_, listing, _) = crate::ct::exec(&daemon, &id, &["ls", "-ln", &loop_dev]);
    assert!(listing.starts_with("brw-r-----") && listing.split_whitespace().nth(2) == Some("0"), "{listing}");
    assert_eq!(listing.split_whitespace().nth(3), Some("6"), "{listing}");
    let (code, _, _) = crate::ct::exec(&daemon, &id, &["sh", "-c", &format!("echo x > {loop_dev}")]);
    assert_ne!(code, 0, "deny-write=1 lets the container write the device");
    ok(&daemon, "ctctl", &["stop", &id]);
    assert_eq!(std::fs::read(&image).expect("image")[..18], data[..18]);
    let after = std::fs::metadata(&loop_dev).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
    assert_eq!(host_mode.ok(), after.ok(), "the host's node keeps its mode");
}

/// What the guest itself sees, in one TCG boot of the fixture kernel: the SMBIOS table, the
/// clock's start date, the RNG and watchdog devices on its PCI bus, the generation id's ACPI
/// device, a TPM 2.0 through swtpm; and `reboot: 0` turns a guest reboot into a stop.
#[test]
fn a_booted_guest_sees_smbios_startdate_rng_watchdog_vmgenid_and_tpm() {
    hearth_test::require_tool("swtpm", "swtpm");
    let daemon = HearthdProcess::start();
    // The bzImage through SeaBIOS, not the PVH entry: the guest gets ACPI tables, where the
    // generation id and the TPM are described.
    let args = format!(
        "-kernel {} -initrd {} -append '{}'",
        hearth_test::fixtures::kernel().display(),
        hearth_test::fixtures::initramfs().display(),
        hearth_test::fixtures::KERNEL_CMDLINE
    );
    ok(
        &daemon,
        "vmctl",
        &[
            "create",
            "482",
            "--memory",
            "256",
            "--kvm",
            "0",
            "--serial0",
            "socket",
            "--args",
            &args,
            // "Hearth Labs" and "Test Bench" in base64, as the GUI writes them.
            "--smbios1",
            "base64=1,manufacturer=SGVhcnRoIExhYnM=,product=VGVzdCBCZW5jaA==,uuid=6a1f3b2c-4d5e-4f60-8a7b-9c0d1e2f3a4b",
            "--startdate",
            "2006-06-17",
            "--rng0",
            "source=/dev/urandom",
            "--watchdog",
            "model=i6300esb",
            "--tpmstate0",
            "local:1,version=v2.0",
            "--reboot",
            "0",
        ],
    );
    ok(&daemon, "vmctl", &["start", "482"]);
    let mut console = crate::vm::Console::open(&daemon, "482");
    console.ready();
    let dmi = console
        .run("cat /sys/class/dmi/id/sys_vendor /sys/class/dmi/id/product_name /sys/class/dmi/id/product_uuid", "dmi");
    assert!(dmi.contains("Hearth Labs\r\nTest Bench\r\n6a1f3b2c-4d5e-4f60-8a7b-9c0d1e2f3a4b"), "{dmi:?}");
    let year = console.run("date +year-%Y", "date");
    assert!(year.contains("year-2006"), "startdate: {year:?}");
    let pci = console.run("cat /sys/bus/pci/devices/*/vendor /sys/bus/pci/devices/*/device | tr '\\n' ' '", "pci");
    // virtio-rng (transitional 0x1005), the i6300esb (0x25ab).
    assert!(pci.contains("0x1005") && pci.contains("0x25ab"), "PCI ids: {pci}");
    let acpi = console.run("ls /sys/bus/acpi/devices/", "acpi");
    assert!(acpi.contains("QEMUVGID"), "vmgenid's ACPI device: {acpi}");
    let tpm = console.run("cat /sys/class/tpm/tpm0/tpm_version_major", "tpm");
    assert!(tpm.trim_end().ends_with('2'), "a TPM 2.0: {tpm:?}");
    // reboot: 0 — the guest's reboot ends the VM instead.
    writeln!(console.input(), "reboot -f").expect("typing");
    console.input().flush().expect("flush");
    // The console forwards what was typed before it goes.
    std::thread::sleep(std::time::Duration::from_secs(2));
    drop(console);
    crate::ct::wait_until("the VM to stop after the guest's reboot", || {
        json(&daemon, "vmctl", &["status", "482"])["status"] == "stopped"
    });
    ok(&daemon, "vmctl", &["destroy", "482"]);
}
