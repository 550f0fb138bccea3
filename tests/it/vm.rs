//! Virtual machines on real QEMU (TCG): Debian's kernel with the busybox initramfs from
//! `cargo xtask fixtures` boots, talks on serial0 through `vmctl terminal`, writes to its
//! virtio disk, and is stopped, started, shut down through ACPI and refused where qm refuses.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use hearth_test::{HearthdProcess, fixtures};

use crate::{json, ok, run};

/// How long a TCG boot may take on a busy machine.
pub(crate) const BOOT: Duration = Duration::from_secs(120);

/// `vmctl create` options for a VM that boots the fixture kernel from `args`.
pub(crate) fn boot_args() -> String {
    format!(
        "-kernel {} -initrd {} -append '{}'",
        fixtures::vmlinux().display(),
        fixtures::initramfs().display(),
        fixtures::KERNEL_CMDLINE
    )
}

/// Creates a VM that boots the fixture kernel under TCG with serial0 on a socket and a 64 MiB
/// virtio disk of `disk` (e.g. `local:0.0625` or `local:0.0625,format=raw`).
pub(crate) fn create_booting_vm(daemon: &HearthdProcess, vmid: &str, disk: &str) {
    let args = boot_args();
    let create = ["create", vmid, "--memory", "256", "--kvm", "0", "--serial0", "socket", "--virtio0", disk, "--args"];
    let mut create = create.to_vec();
    create.push(&args);
    ok(daemon, "vmctl", &create);
}

/// A `vmctl terminal` session: what the guest prints arrives on a channel.
pub(crate) struct Console {
    child: Child,
    input: ChildStdin,
    output: Receiver<Vec<u8>>,
    seen: String,
}

impl Console {
    pub(crate) fn open(daemon: &HearthdProcess, vmid: &str) -> Console {
        let mut child = daemon
            .command("vmctl")
            .args(["terminal", vmid])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("vmctl terminal starts");
        let input = child.stdin.take().expect("stdin");
        let mut stdout = child.stdout.take().expect("stdout");
        let (tx, output) = channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Console { child, input, output, seen: String::new() }
    }

    /// Waits until `needle` has appeared in the output since the last call that found one;
    /// answers what came before it.
    pub(crate) fn expect(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = self.seen.find(needle) {
                let before: String = self.seen.drain(..at + needle.len()).collect();
                return before[..at].to_owned();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(bytes) => self.seen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => panic!("'{needle}' did not appear on the console; it printed:\n{}", self.seen),
            }
        }
    }

    /// Waits until the guest's shell answers. Output sent while no console was attached is
    /// lost (the serial socket drops it), so the marker of the boot may have gone by: a probe
    /// line is typed every few seconds until the shell's answer comes back.
    pub(crate) fn ready(&mut self) {
        let deadline = Instant::now() + BOOT;
        while Instant::now() < deadline {
            writeln!(self.input, "echo hearth-console-$((6*7))").expect("typing");
            self.input.flush().expect("flush");
            let until = Instant::now() + Duration::from_secs(3);
            while Instant::now() < until {
                if let Some(at) = self.seen.find("hearth-console-42") {
                    self.seen.drain(..at + "hearth-console-42".len());
                    return;
                }
                if let Ok(bytes) = self.output.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
        }
        panic!("the guest's shell never answered; the console printed:\n{}", self.seen);
    }

    /// Types a command line and answers what it printed. The guest echoes `<done>-ok` after
    /// it; the echo of the typed line itself shows `<done>-$ok`, so only the command's
    /// completion matches.
    pub(crate) fn run(&mut self, command: &str, done: &str) -> String {
        writeln!(self.input, "{command}; ok=ok; echo {done}-$ok").expect("typing");
        self.input.flush().expect("flush");
        self.expect(&format!("{done}-ok"), BOOT)
    }
}

impl Console {
    /// What the guest reads from its console.
    pub(crate) fn input(&mut self) -> &mut ChildStdin {
        &mut self.input
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn status(daemon: &HearthdProcess, vmid: &str) -> String {
    json(daemon, "vmctl", &["status", vmid])["status"].as_str().expect("status").to_owned()
}

#[test]
fn a_vm_boots_keeps_its_disk_and_powers_off() {
    let daemon = HearthdProcess::start();
    create_booting_vm(&daemon, "400", "local:0.0625,format=raw");
    assert_eq!(status(&daemon, "400"), "stopped");
    let out = ok(&daemon, "vmctl", &["start", "400"]);
    assert!(out.contains("TASK OK"), "{out}");
    let report = json(&daemon, "vmctl", &["status", "400", "--verbose"]);
    assert_eq!(report["status"], "running", "{report}");
    assert_eq!(report["qmpstatus"], "running", "{report}");
    let listed = json(&daemon, "vmctl", &["list"]);
    assert_eq!(listed[0]["status"], "running");

    // Refusals while it runs.
    let (code, _, stderr) = run(&daemon, "vmctl", &["start", "400"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("VM 400 already running"), "{stderr}");
    let (code, _, stderr) = run(&daemon, "vmctl", &["destroy", "400"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("is running"), "{stderr}");

    // The guest writes to its disk through virtio; the data is in the volume after a stop.
    let mut console = Console::open(&daemon, "400");
    console.ready();
    console.run("echo hearth-disk-data | dd of=/dev/vda bs=512 count=1 conv=sync 2>/dev/null; sync", "written");
    drop(console);
    let out = ok(&daemon, "vmctl", &["stop", "400"]);
    assert!(out.contains("TASK OK"), "{out}");
    assert_eq!(status(&daemon, "400"), "stopped");
    let disk = ok(&daemon, "storectl", &["path", "local:400/vm-400-disk-0.raw"]);
    let bytes = std::fs::read(disk.trim()).expect("the disk image");
    assert!(bytes.starts_with(b"hearth-disk-data\n"), "the guest's write reached the volume");
    let run_dir = daemon.root().join("run/hearth/qemu");
    assert!(!run_dir.join("400.pid").exists() && !run_dir.join("400.qmp").exists(), "a stopped VM leaves no files");

    // Started again, it reads its data back; then it powers off through ACPI.
    ok(&daemon, "vmctl", &["start", "400"]);
    let mut console = Console::open(&daemon, "400");
    console.ready();
    let printed = console.run("head -c 16 /dev/vda; echo", "read");
    assert!(printed.contains("hearth-disk-data"), "the guest reads its data back: {printed}");
    drop(console);
    let out = ok(&daemon, "vmctl", &["shutdown", "400", "--timeout", "120"]);
    assert!(out.contains("TASK OK"), "{out}");
    assert_eq!(status(&daemon, "400"), "stopped");
    ok(&daemon, "vmctl", &["destroy", "400"]);
}

#[test]
fn bad_starts_leave_nothing_behind() {
    let daemon = HearthdProcess::start();
    // QEMU refuses an argument: its stderr reaches the caller and nothing stays.
    ok(&daemon, "vmctl", &["create", "410", "--memory", "64", "--kvm", "0", "--args", "-no-such-option"]);
    let (code, _, stderr) = run(&daemon, "vmctl", &["start", "410"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("QEMU exited at start") && stderr.contains("no-such-option"), "{stderr}");
    assert_eq!(status(&daemon, "410"), "stopped");
    let leftovers: Vec<_> = std::fs::read_dir(daemon.root().join("run/hearth/qemu"))
        .expect("run dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A bridge that does not exist, and more memory or CPUs than the host has.
    ok(&daemon, "vmctl", &["create", "411", "--memory", "64", "--kvm", "0", "--net0", "virtio,bridge=nobr0"]);
    let (code, _, stderr) = run(&daemon, "vmctl", &["start", "411"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("bridge 'nobr0' does not exist"), "{stderr}");
    ok(&daemon, "vmctl", &["create", "412", "--memory", "4194304", "--kvm", "0"]);
    let (code, _, stderr) = run(&daemon, "vmctl", &["start", "412"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("exceeds the host's"), "{stderr}");
    ok(&daemon, "vmctl", &["create", "413", "--cores", "512", "--kvm", "0"]);
    let (code, _, stderr) = run(&daemon, "vmctl", &["start", "413"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("exceed the host's"), "{stderr}");
    let (code, _, stderr) = run(&daemon, "vmctl", &["stop", "413"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("VM 413 is not running"), "{stderr}");

    // Two starts at the same instant: exactly one wins.
    ok(&daemon, "vmctl", &["create", "414", "--memory", "64", "--kvm", "0"]);
    let starts: Vec<Child> = (0..2)
        .map(|_| {
            daemon
                .command("vmctl")
                .args(["start", "414"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("vmctl start")
        })
        .collect();
    let codes: Vec<i32> =
        starts.into_iter().map(|c| c.wait_with_output().expect("wait").status.code().unwrap_or(-1)).collect();
    let mut sorted = codes.clone();
    sorted.sort();
    assert_eq!(sorted, [0, 1], "one start wins, the other is refused: {codes:?}");
    assert_eq!(status(&daemon, "414"), "running");
    // hearthd restarts without touching it and still reports it running.
    let mut daemon = daemon;
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    daemon.restart();
    assert_eq!(status(&daemon, "414"), "running");
    ok(&daemon, "vmctl", &["stop", "414"]);
}

/// Sends a request that starts a task and waits for it; answers the final state.
fn task(daemon: &HearthdProcess, request: hearth_proto::Request) -> hearth_proto::TaskState {
    let mut client = daemon.client();
    let hearth_proto::Payload::Task(upid) = client.call(&request).expect("the request is accepted") else {
        panic!("a task was expected")
    };
    client.follow(&upid, |_| {}).expect("following the task").state
}

/// Runs a qemu-io command on a qcow2 image; false if it fails or a pattern does not match.
pub(crate) fn qemu_io(path: &str, command: &str) -> bool {
    std::process::Command::new("qemu-io").args(["-f", "qcow2", "-c", command, path]).output().is_ok_and(|o| {
        o.status.success() && !String::from_utf8_lossy(&o.stdout).contains("Pattern verification failed")
    })
}

#[test]
fn snapshots_roll_back_and_linked_clones_boot() {
    use hearth_proto::{CloneGuest, Request, TaskState, VmRequest};
    let daemon = HearthdProcess::start();
    create_booting_vm(&daemon, "420", "local:0.0625");
    let disk = ok(&daemon, "storectl", &["path", "local:420/vm-420-disk-0.qcow2"]);
    let disk = disk.trim();
    let id = crate::vmid(420);
    assert!(qemu_io(disk, "write -P 0x11 0 4k"));
    let snap = |name: &str| {
        Request::Vm(VmRequest::Snapshot { vmid: id, name: name.into(), description: None, vmstate: false })
    };
    assert_eq!(task(&daemon, snap("first")), TaskState::Ok);
    assert!(qemu_io(disk, "write -P 0x22 0 4k"));
    assert!(!qemu_io(disk, "read -P 0x11 0 4k"), "the change is visible before the rollback");
    assert_eq!(task(&daemon, Request::Vm(VmRequest::Rollback { vmid: id, name: "first".into() })), TaskState::Ok);
    assert!(qemu_io(disk, "read -P 0x11 0 4k"), "the rollback restores the snapshot's data");
    let config = json(&daemon, "vmctl", &["config", "420"]);
    assert_eq!(config["parent"], "first", "{config}");

    // A snapshot of a running VM goes through QEMU; rollback while it runs is refused.
    ok(&daemon, "vmctl", &["start", "420"]);
    assert_eq!(task(&daemon, snap("second")), TaskState::Ok);
    let mut client = daemon.client();
    let refused = client.call(&Request::Vm(VmRequest::Rollback { vmid: id, name: "first".into() }));
    assert!(refused.expect_err("running").to_string().contains("stop it first"));
    ok(&daemon, "vmctl", &["stop", "420"]);
    assert_eq!(task(&daemon, Request::Vm(VmRequest::DelSnapshot { vmid: id, name: "second".into() })), TaskState::Ok);
    assert_eq!(task(&daemon, Request::Vm(VmRequest::DelSnapshot { vmid: id, name: "first".into() })), TaskState::Ok);
    let config = json(&daemon, "vmctl", &["config", "420"]);
    assert!(config.get("parent").is_none(), "{config}");

    // A template's linked clone shares its base and boots.
    assert_eq!(task(&daemon, Request::Vm(VmRequest::Template { vmid: id })), TaskState::Ok);
    let clone = Request::Vm(VmRequest::Clone(CloneGuest {
        vmid: id,
        newid: crate::vmid(421),
        full: None,
        name: Some("linked".into()),
        target: None,
        bwlimit: None,
    }));
    assert_eq!(task(&daemon, clone), TaskState::Ok);
    let config = json(&daemon, "vmctl", &["config", "421"]);
    let virtio0 = config["virtio0"].as_str().expect("virtio0");
    assert!(virtio0.starts_with("local:420/base-420-disk-0.qcow2/421/vm-421-disk-0.qcow2"), "{virtio0}");
    ok(&daemon, "vmctl", &["start", "421"]);
    let mut console = Console::open(&daemon, "421");
    console.ready();
    drop(console);
    ok(&daemon, "vmctl", &["stop", "421"]);
    let (code, _, stderr) = run(&daemon, "storectl", &["free", "local:420/base-420-disk-0.qcow2"]);
    assert_eq!(code, 1, "the base is in use by the template and its clone: {stderr}");
    ok(&daemon, "vmctl", &["destroy", "421"]);
    ok(&daemon, "vmctl", &["destroy", "420"]);
}

/// A Linux bridge of the test's own, removed when the test ends however it ends.
pub(crate) struct Bridge(pub(crate) String);

impl Bridge {
    pub(crate) fn new() -> Bridge {
        Bridge::tagged("")
    }

    /// A bridge whose name also carries `tag`, for tests that run beside others with bridges.
    pub(crate) fn tagged(tag: &str) -> Bridge {
        // Unique per test too: tests of one process run in parallel.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("hbr{tag}{}x{n}", std::process::id() % 100_000);
        let ip = |args: &[&str]| {
            let status = std::process::Command::new("ip").args(args).status().expect("ip (install iproute2)");
            assert!(status.success(), "ip {args:?}");
        };
        ip(&["link", "add", &name, "type", "bridge"]);
        let bridge = Bridge(name);
        ip(&["link", "set", &bridge.0, "up"]);
        bridge
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

#[test]
fn two_vms_on_one_bridge_reach_each_other() {
    let daemon = HearthdProcess::start();
    let bridge = Bridge::new();
    for (vmid, address) in [("430", "10.99.0.1/24"), ("431", "10.99.0.2/24")] {
        let args = format!(
            "-kernel {} -initrd {} -append '{} hearth.ip={address}'",
            fixtures::vmlinux().display(),
            fixtures::initramfs().display(),
            fixtures::KERNEL_CMDLINE
        );
        let net0 = format!("virtio,bridge={}", bridge.0);
        ok(
            &daemon,
            "vmctl",
            &["create", vmid, "--memory", "256", "--kvm", "0", "--serial0", "socket", "--net0", &net0, "--args", &args],
        );
        ok(&daemon, "vmctl", &["start", vmid]);
    }
    let master = std::fs::read_link("/sys/class/net/tap430i0/master").expect("the tap is in a bridge");
    assert!(master.ends_with(&bridge.0), "{master:?}");
    let mut other = Console::open(&daemon, "431");
    other.ready();
    let mut console = Console::open(&daemon, "430");
    console.ready();
    // Emulated guests on a loaded machine can be slow to answer their first ARP request; a
    // few rounds give them time without making the test depend on a timing.
    let mut transcript = String::new();
    let answered = (0..5).any(|round| {
        let printed = console.run("ping -c 2 -W 5 10.99.0.2", &format!("pinged{round}"));
        transcript.push_str(&printed);
        printed.contains("bytes from 10.99.0.2")
    });
    if !answered {
        let theirs = other.run("ip addr show eth0; ip link show eth0", "shown");
        panic!("no answer from the other VM:\n{transcript}\nits eth0:\n{theirs}");
    }
    drop((console, other));
    for vmid in ["430", "431"] {
        ok(&daemon, "vmctl", &["stop", vmid]);
    }
    assert!(!std::path::Path::new("/sys/class/net/tap430i0").exists(), "the tap goes with its VM");
}

#[test]
fn onboot_guests_start_in_order_and_stop_together() {
    let daemon = HearthdProcess::start();
    for (vmid, extra) in [
        ("440", &["--onboot", "1", "--startup", "order=2"][..]),
        ("441", &["--onboot", "1", "--startup", "order=1"]),
        ("442", &[]),
    ] {
        let mut args = vec!["create", vmid, "--memory", "64", "--kvm", "0"];
        args.extend(extra);
        ok(&daemon, "vmctl", &args);
    }
    let out = ok(&daemon, "clusterctl", &["node", "startall"]);
    let (first, second) =
        (out.find("VM 441 started").expect("441 starts"), out.find("VM 440 started").expect("440 starts"));
    assert!(first < second, "order=1 starts before order=2: {out}");
    assert_eq!(status(&daemon, "440"), "running");
    assert_eq!(status(&daemon, "441"), "running");
    assert_eq!(status(&daemon, "442"), "stopped", "without onboot it stays off");
    // Without an operating system nothing answers ACPI; stopall stops them after the timeout.
    let out = ok(&daemon, "clusterctl", &["node", "stopall", "--timeout", "1"]);
    assert!(out.contains("TASK OK"), "{out}");
    for vmid in ["440", "441", "442"] {
        assert_eq!(status(&daemon, vmid), "stopped");
    }
}

#[test]
fn a_vm_killed_from_outside_is_reported_stopped() {
    let daemon = HearthdProcess::start();
    let bridge = Bridge::new();
    let net0 = format!("virtio,bridge={}", bridge.0);
    ok(&daemon, "vmctl", &["create", "450", "--memory", "64", "--kvm", "0", "--net0", &net0]);
    ok(&daemon, "vmctl", &["start", "450"]);
    assert!(std::path::Path::new("/sys/class/net/tap450i0").exists());
    let pid = json(&daemon, "vmctl", &["status", "450"])["pid"].as_i64().expect("a running VM has a pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL).expect("kill");
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(&daemon, "450") != "stopped" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(status(&daemon, "450"), "stopped");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new("/sys/class/net/tap450i0").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!std::path::Path::new("/sys/class/net/tap450i0").exists(), "its tap went with it");
    let deadline = Instant::now() + Duration::from_secs(10);
    let qmp = daemon.root().join("run/hearth/qemu/450.qmp");
    while qmp.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!qmp.exists(), "the watcher removed the dead VM's sockets");
    // It starts again normally.
    ok(&daemon, "vmctl", &["start", "450"]);
    ok(&daemon, "vmctl", &["stop", "450"]);
}

#[test]
fn a_snapshot_with_ram_state_resumes_the_guest_where_it_was() {
    let daemon = HearthdProcess::start();
    create_booting_vm(&daemon, "460", "local:0.0625");
    ok(&daemon, "vmctl", &["start", "460"]);
    let mut console = Console::open(&daemon, "460");
    console.ready();
    console.run("MARK=before", "m1");
    let out = ok(&daemon, "vmctl", &["snapshot", "460", "live", "--vmstate"]);
    assert!(out.contains("RAM state"), "{out}");
    console.run("MARK=after", "m2");
    drop(console);
    let out = ok(&daemon, "vmctl", &["rollback", "460", "live"]);
    assert!(out.contains("resumed from the state saved in 'live'"), "{out}");
    assert_eq!(status(&daemon, "460"), "running");
    let mut console = Console::open(&daemon, "460");
    let printed = console.run("echo mark-$MARK", "m3");
    assert!(printed.contains("mark-before"), "the shell is back where the snapshot left it: {printed}");
    drop(console);
    // Without RAM state, a running VM cannot roll back.
    ok(&daemon, "vmctl", &["snapshot", "460", "disksonly"]);
    let (code, _, stderr) = run(&daemon, "vmctl", &["rollback", "460", "disksonly"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("has no RAM state; stop it first"), "{stderr}");
    ok(&daemon, "vmctl", &["stop", "460"]);
    let tree = ok(&daemon, "vmctl", &["listsnapshot", "460"]);
    assert!(tree.contains("live") && tree.contains("disksonly") && tree.contains("You are here!"), "{tree}");
}

#[test]
fn uefi_vms_keep_their_efi_variables() {
    let daemon = HearthdProcess::start();
    ok(&daemon, "vmctl", &["create", "470", "--memory", "128", "--kvm", "0", "--bios", "ovmf", "--machine", "q35"]);
    ok(&daemon, "vmctl", &["start", "470"]);
    assert_eq!(status(&daemon, "470"), "running");
    let vars = daemon.root().join("var/lib/hearth/efivars/470.fd");
    assert!(vars.exists(), "the VM has its own EFI variable store");
    ok(&daemon, "vmctl", &["stop", "470"]);
    assert!(vars.exists(), "it outlives a stop");
    ok(&daemon, "vmctl", &["destroy", "470"]);
    assert!(!vars.exists(), "and goes with the VM");
}
