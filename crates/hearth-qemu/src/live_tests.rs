//! Tests against a real `qemu-system-x86_64` under TCG: the QMP client drives a paused
//! machine, and QEMU accepts the command lines [`crate::build`] makes. Every QEMU is started
//! with `-S` in its own temporary directory and killed by a guard if a test fails.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hearth_core::guest::{GuestConfig, Section};
use hearth_core::storage::Format;
use hearth_core::{GuestKind, Vmid};

use crate::cmdline::{OVMF_CODE, OVMF_VARS_TEMPLATE, PROGRAM};
use crate::{Qmp, Resolved, ResolvedDrive, RunPaths, build};

/// A daemonized QEMU, killed on drop unless it already exited.
struct RunningQemu {
    pid: u32,
    /// A path only this QEMU's command line contains, so a recycled pid is never killed.
    marker: String,
}

impl RunningQemu {
    /// Runs a daemonizing QEMU command and reads its pidfile.
    fn start(mut command: Command, pidfile: &Path, marker: &Path) -> RunningQemu {
        let output = command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).output();
        let output = match output {
            Ok(output) => output,
            Err(e) => panic!("cannot run {PROGRAM} ({e}): install the Debian package qemu-system-x86"),
        };
        assert!(output.status.success(), "QEMU refused to start: {}", String::from_utf8_lossy(&output.stderr));
        let pid = fs::read_to_string(pidfile).expect("QEMU wrote its pidfile");
        let pid = pid.trim().parse().expect("the pidfile holds a pid");
        RunningQemu { pid, marker: marker.display().to_string() }
    }

    /// Whether the process is still there (a zombie counts as gone).
    fn alive(&self) -> bool {
        let Ok(stat) = fs::read_to_string(format!("/proc/{}/stat", self.pid)) else { return false };
        let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
        state != Some('Z') && self.ours()
    }

    fn ours(&self) -> bool {
        fs::read(format!("/proc/{}/cmdline", self.pid))
            .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(&self.marker))
    }

    fn wait_exit(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !self.alive() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for RunningQemu {
    fn drop(&mut self) {
        if self.alive() {
            let _ = Command::new("kill").arg("-KILL").arg(self.pid.to_string()).status();
        }
    }
}

fn vmid() -> Vmid {
    Vmid::new(100).expect("100 is a valid vmid")
}

#[test]
fn qmp_client_drives_a_real_qemu() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("qmp.sock");
    let pidfile = dir.path().join("qemu.pid");
    let mut command = Command::new(PROGRAM);
    command.args(["-accel", "tcg", "-M", "q35", "-m", "64", "-nodefaults", "-display", "none", "-S", "-daemonize"]);
    command.arg("-pidfile").arg(&pidfile);
    command.arg("-chardev").arg(format!("socket,id=qmp,path={},server=on,wait=off", socket.display()));
    command.args(["-mon", "chardev=qmp,mode=control"]);
    let qemu = RunningQemu::start(command, &pidfile, &socket);

    let mut qmp = Qmp::connect(&socket).expect("QMP answers");
    assert!(qmp.greeting().version.major >= 7, "{:?}", qmp.greeting());
    let status = qmp.query_status().expect("query-status");
    assert_eq!((status.status.as_str(), status.running), ("prelaunch", false));

    qmp.cont().expect("cont");
    let status = qmp.query_status().expect("query-status");
    assert_eq!((status.status.as_str(), status.running), ("running", true));
    qmp.wait_event("RESUME", Duration::from_secs(5)).expect("RESUME event");

    qmp.stop().expect("stop");
    let status = qmp.query_status().expect("query-status");
    assert_eq!((status.status.as_str(), status.running), ("paused", false));
    qmp.wait_event("STOP", Duration::from_secs(5)).expect("STOP event");

    let version = qmp.human_monitor_command("info version").expect("human monitor");
    assert!(!version.trim().is_empty());
    assert_eq!(qmp.query_cpus_fast().expect("query-cpus-fast").len(), 1);
    let err = qmp.execute("no-such-command", None).expect_err("unknown command");
    assert!(err.to_string().starts_with("no-such-command failed: CommandNotFound: "), "{err}");

    qmp.quit().expect("quit");
    assert!(qemu.wait_exit(Duration::from_secs(10)), "QEMU still runs after quit");
}

/// Starts the command line built for `config`, paused, and answers the guard and a QMP
/// connection.
fn start_built(run_dir: &Path, config: &Section, mut resolved: Resolved) -> (RunningQemu, Qmp) {
    fs::create_dir_all(run_dir).expect("run dir");
    resolved.extra.push("-S".into());
    let command = build(vmid(), config, &resolved).expect("builds");
    let paths = RunPaths::new(run_dir, vmid());
    let qemu = RunningQemu::start(command.command(), &paths.pidfile(), &paths.qmp());
    let qmp = Qmp::connect(&paths.qmp()).expect("QMP answers on the built socket");
    (qemu, qmp)
}

fn config(toml: &str) -> Section {
    GuestConfig::parse(GuestKind::Vm, toml).expect("test configuration is valid").merged()
}

#[test]
fn qemu_accepts_the_command_line_of_a_diskless_vm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run_dir = dir.path().join("run/hearth/qemu");
    let config = config("name = \"live\"\nkvm = false\nmemory = 64");
    let (qemu, mut qmp) = start_built(&run_dir, &config, Resolved::new(&run_dir, false));
    let status = qmp.query_status().expect("query-status");
    assert_eq!(status.status, "prelaunch");
    assert!(run_dir.join("100.vnc").exists(), "VNC listens on its socket");
    qmp.quit().expect("quit");
    assert!(qemu.wait_exit(Duration::from_secs(10)), "QEMU still runs after quit");
}

fn image(dir: &Path, name: &str, format: Format) -> ResolvedDrive {
    let path = dir.join(name);
    let status = Command::new("qemu-img")
        .args(["create", "-q", "-f", format.as_str()])
        .arg(&path)
        .arg("16M")
        .status()
        .expect("qemu-img runs (Debian package qemu-utils)");
    assert!(status.success(), "qemu-img create {}", path.display());
    ResolvedDrive::file(path, format)
}

/// Disks on every bus, CD-ROMs, iothreads, limits, OVMF, NICs on taps, serial and agent
/// sockets: QEMU takes the nodes and devices, and the disks can be snapshotted through QMP.
#[test]
fn qemu_accepts_disks_on_every_bus_and_ovmf() {
    assert!(Path::new(OVMF_CODE).exists(), "{OVMF_CODE} is missing: install the Debian package ovmf");
    let dir = tempfile::tempdir().expect("temp dir");
    let images = dir.path().join("images");
    fs::create_dir_all(&images).expect("images dir");
    let cases = [
        r#"
        machine = "q35"
        bios = "ovmf"
        kvm = false
        memory = 128
        cores = 2
        agent = "1"
        serial0 = "socket"
        scsihw = "virtio-scsi-single"
        virtio0 = "local:100/vm-100-disk-0.qcow2,iothread=1,discard=on"
        scsi0 = "local:100/vm-100-disk-1.raw,iothread=1,mbps=50,cache=writeback"
        sata0 = "local:100/vm-100-disk-2.raw,ssd=1"
        ide0 = "none,media=cdrom"
        ide1 = "local:iso/boot.iso,media=cdrom"
        net0 = "virtio=BC:24:11:00:00:01,bridge=vmbr0"
        boot = "order=ide1;virtio0;net0"
        "#,
        r#"
        kvm = false
        memory = 64
        vga = "none"
        scsihw = "lsi"
        ide2 = "local:iso/boot.iso,media=cdrom"
        ide3 = "none,media=cdrom"
        scsi3 = "local:100/vm-100-disk-1.raw,ro=1,iops=100"
        scsi9 = "local:100/vm-100-disk-0.qcow2,ssd=1"
        net3 = "e1000=BC:24:11:00:00:02,queues=2"
        "#,
    ];
    for toml in cases {
        let run_dir = dir.path().join("run/hearth/qemu");
        let config = config(toml);
        let mut resolved = Resolved::new(&run_dir, false);
        resolved.drives.insert("virtio0".into(), image(&images, "vm-100-disk-0.qcow2", Format::Qcow2));
        resolved.drives.insert("scsi9".into(), resolved.drives["virtio0"].clone());
        resolved.drives.insert("scsi0".into(), image(&images, "vm-100-disk-1.raw", Format::Raw));
        resolved.drives.insert("scsi3".into(), resolved.drives["scsi0"].clone());
        resolved.drives.insert("sata0".into(), image(&images, "vm-100-disk-2.raw", Format::Raw));
        resolved.drives.insert("ide1".into(), image(&images, "boot.iso", Format::Raw));
        resolved.drives.insert("ide2".into(), resolved.drives["ide1"].clone());
        let vars = dir.path().join("efivars.fd");
        fs::copy(OVMF_VARS_TEMPLATE, &vars).expect("copy the EFI variables template");
        resolved.efivars = Some(ResolvedDrive::file(vars, Format::Raw));
        // QEMU (as root) creates a tap it is given by name and removes it when it exits; the
        // pid keeps names unique across test processes.
        for nic in ["net0", "net3"] {
            resolved.taps.insert(nic.into(), format!("hqt{}{nic}", std::process::id()));
        }

        let (qemu, mut qmp) = start_built(&run_dir, &config, resolved);
        let blocks = qmp.query_block().expect("query-block");
        let mut devices: Vec<String> = blocks
            .iter()
            .filter_map(|b| b.qdev.as_deref())
            .filter(|q| !q.starts_with("/machine/system.flash"))
            // A device with an id is named by it, a virtio one by its backend's path.
            .map(|q| q.trim_start_matches("/machine/peripheral/").trim_end_matches("/virtio-backend").to_owned())
            .collect();
        devices.sort();
        let configured: Vec<&str> = ["ide0", "ide1", "ide2", "ide3", "sata0", "scsi0", "scsi3", "scsi9", "virtio0"]
            .into_iter()
            .filter(|k| config.contains_key(*k))
            .collect();
        assert_eq!(devices, configured, "block devices of {toml}");
        let empty = blocks.iter().filter(|b| b.inserted.is_none()).count();
        assert_eq!(empty, 1, "one empty CD-ROM");

        let qcow2 = if config.contains_key("virtio0") { "drive-virtio0" } else { "drive-scsi9" };
        qmp.blockdev_snapshot_internal_sync(qcow2, "before").expect("internal snapshot");
        let blocks = qmp.query_block().expect("query-block");
        let snapshots: Vec<String> = blocks
            .iter()
            .filter_map(|b| b.inserted.as_ref()?.image.as_ref())
            .flat_map(|image| image.snapshots.iter().map(|s| s.name.clone()))
            .collect();
        assert_eq!(snapshots, ["before"]);
        qmp.blockdev_snapshot_delete_internal_sync(qcow2, "before").expect("snapshot deleted");
        let stats = qmp.query_blockstats().expect("query-blockstats");
        let device = qcow2.trim_start_matches("drive-");
        assert!(stats.iter().any(|s| s.qdev.as_deref().is_some_and(|q| q.contains(device))), "{stats:?}");
        let nic = if config.contains_key("net0") { "net0" } else { "net3" };
        qmp.set_link(nic, false).expect("set_link on the configured NIC");
        if config.contains_key("serial0") {
            assert!(run_dir.join("100.serial0").exists() && run_dir.join("100.qga").exists());
        }
        qmp.quit().expect("quit");
        assert!(qemu.wait_exit(Duration::from_secs(10)), "QEMU still runs after quit");
        fs::remove_dir_all(&run_dir).expect("clean run dir");
    }
}
