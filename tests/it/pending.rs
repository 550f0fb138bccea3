//! Pending changes and hot-plug on running guests, as Proxmox applies them: one TCG VM gets a
//! NIC, a disk, a vCPU and a balloon target while it runs and loses the NIC and disk again;
//! what cannot change live waits in `[pending]` until its reboot. A running container's memory
//! and CPU limits change in its cgroups, a NIC comes and goes in its namespace, and the rest
//! waits for its next start.

use std::path::Path;

use hearth_test::HearthdProcess;

use crate::ct::{cgroup_dirs, ctid, exec, wait_until};
use crate::vm::{Bridge, Console, boot_args};
use crate::{json, ok, run};

/// `vmctl`/`ctctl pending` as text.
fn pending_text(daemon: &HearthdProcess, program: &str, id: &str) -> String {
    ok(daemon, program, &["pending", id])
}

/// The current settings (`config --current`) and the merged ones (`config`).
fn configs(daemon: &HearthdProcess, program: &str, id: &str) -> (serde_json::Value, serde_json::Value) {
    (json(daemon, program, &["config", id, "--current"]), json(daemon, program, &["config", id]))
}

/// Polls inside the guest (up to a minute) until `test` holds, then prints `<marker>-42`; the
/// typed line shows `<marker>-$((40+2))`, so only the guest's answer matches. On failure the
/// guest's PCI devices and last kernel messages are shown.
fn guest_until(console: &mut Console, test: &str, marker: &str) {
    let command = format!(
        "i=0; while [ $i -lt 60 ] && ! {test}; do sleep 1; i=$((i+1)); done; {test} && echo {marker}-$((40+2))"
    );
    if !console.run(&command, &format!("{marker}-done")).contains(&format!("{marker}-42")) {
        let shown = console.run("ls /sys/bus/pci/devices /sys/class/net /sys/block; dmesg | tail -n 30", "shown");
        panic!("'{test}' never held in the guest:\n{shown}");
    }
}

fn qemu_cmdline(daemon: &HearthdProcess, id: &str) -> Vec<String> {
    let pid = json(daemon, "vmctl", &["status", id])["pid"].as_u64().expect("a running VM has a pid");
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).expect("QEMU's command line");
    raw.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
}

#[test]
fn a_running_vm_takes_hotplugged_devices_and_keeps_the_rest_pending() {
    let daemon = HearthdProcess::start();
    let bridge = Bridge::tagged("v");
    let id = "480";
    let args = boot_args();
    ok(
        &daemon,
        "vmctl",
        &[
            "create",
            id,
            "--memory",
            "256",
            "--kvm",
            "0",
            "--serial0",
            "socket",
            "--cores",
            "2",
            "--vcpus",
            "1",
            "--hotplug",
            "network,disk,cpu",
            "--tablet",
            "0",
            "--args",
            &args,
        ],
    );
    ok(&daemon, "vmctl", &["start", id]);
    let mut console = Console::open(&daemon, id);
    console.ready();

    // Metadata applies at once.
    ok(&daemon, "vmctl", &["set", id, "--name", "hotvm", "--tags", "a"]);
    let (current, _) = configs(&daemon, "vmctl", id);
    assert_eq!(current["name"], "hotvm", "{current}");
    assert_eq!(pending_text(&daemon, "vmctl", id).lines().filter(|l| l.starts_with("new")).count(), 0);

    // A NIC: its tap in the bridge, eth0 in the guest.
    let net0 = format!("virtio,bridge={}", bridge.0);
    ok(&daemon, "vmctl", &["set", id, "--net0", &net0]);
    let (current, _) = configs(&daemon, "vmctl", id);
    assert!(current["net0"].as_str().is_some_and(|n| n.contains(&bridge.0)), "{current}");
    let master = std::fs::read_link("/sys/class/net/tap480i0/master").expect("the new tap is in a bridge");
    assert!(master.ends_with(&bridge.0), "{master:?}");
    guest_until(&mut console, "[ -e /sys/class/net/eth0 ]", "nic");

    // A disk, allocated and plugged: vda in the guest.
    ok(&daemon, "vmctl", &["set", id, "--virtio0", "local:0.0625"]);
    let (current, _) = configs(&daemon, "vmctl", id);
    assert!(current["virtio0"].as_str().is_some_and(|d| d.starts_with("local:480/vm-480-disk-0")), "{current}");
    guest_until(&mut console, "[ -e /sys/block/vda ]", "disk");

    // A second vCPU and a balloon target.
    ok(&daemon, "vmctl", &["set", id, "--vcpus", "2", "--balloon", "128"]);
    let (current, _) = configs(&daemon, "vmctl", id);
    assert_eq!(current["vcpus"], 2, "{current}");
    assert_eq!(current["balloon"], 128, "{current}");
    guest_until(&mut console, "[ -e /sys/devices/system/cpu/cpu1 ]", "cpu");
    // Fewer vCPUs wait for the next start.
    ok(&daemon, "vmctl", &["set", id, "--vcpus", "1"]);
    assert_eq!(json(&daemon, "vmctl", &["config", id, "--current"])["vcpus"], 2);

    // A NIC moves to another bridge without leaving the guest.
    let other = Bridge::tagged("w");
    let net0 = json(&daemon, "vmctl", &["config", id])["net0"].as_str().expect("net0").replace(&bridge.0, &other.0);
    ok(&daemon, "vmctl", &["set", id, "--net0", &net0]);
    let master = std::fs::read_link("/sys/class/net/tap480i0/master").expect("the tap is in a bridge");
    assert!(master.ends_with(&other.0), "{master:?}");
    assert_eq!(json(&daemon, "vmctl", &["config", id, "--current"])["net0"], net0.as_str());

    // What cannot change live pends: shown by pending and config, not by config --current.
    ok(&daemon, "vmctl", &["set", id, "--memory", "384", "--localtime", "1", "--delete", "tablet"]);
    let text = pending_text(&daemon, "vmctl", id);
    for line in ["cur memory: 256", "new memory: 384", "new localtime: 1", "del tablet: 0", "new vcpus: 1"] {
        assert!(text.lines().any(|l| l == line), "'{line}' missing from:\n{text}");
    }
    let items = json(&daemon, "vmctl", &["pending", id]);
    let memory = items.as_array().expect("a list").iter().find(|i| i["key"] == "memory").expect("memory listed");
    assert_eq!((memory["value"].clone(), memory["pending"].clone()), (256.into(), 384.into()), "{items}");
    let tablet = items.as_array().expect("a list").iter().find(|i| i["key"] == "tablet").expect("tablet listed");
    assert_eq!(tablet["delete"], 1, "{items}");
    let (current, merged) = configs(&daemon, "vmctl", id);
    assert_eq!((current["memory"].clone(), merged["memory"].clone()), (256.into(), 384.into()));
    assert!(current.get("tablet").is_some() && merged.get("tablet").is_none(), "{current} {merged}");
    // --revert drops a pending change; a pending value equal to the current one disappears.
    ok(&daemon, "vmctl", &["set", id, "--revert", "localtime"]);
    ok(&daemon, "vmctl", &["set", id, "--cores", "1"]);
    ok(&daemon, "vmctl", &["set", id, "--cores", "2"]);
    let text = pending_text(&daemon, "vmctl", id);
    assert!(!text.contains("localtime") && !text.contains("new cores"), "{text}");

    // An IDE disk cannot be hot-plugged: allocated, it waits; reverted, its volume is kept.
    ok(&daemon, "vmctl", &["set", id, "--ide1", "local:0.01"]);
    let text = pending_text(&daemon, "vmctl", id);
    assert!(text.contains("new ide1: local:480/vm-480-disk-1"), "{text}");
    ok(&daemon, "vmctl", &["set", id, "--revert", "ide1"]);
    let (current, _) = configs(&daemon, "vmctl", id);
    assert!(current["unused0"].as_str().is_some_and(|u| u.starts_with("local:480/vm-480-disk-1")), "{current}");

    // A failed hot-plug says so and leaves the change pending, and no tap behind.
    let (code, _, stderr) = run(&daemon, "vmctl", &["set", id, "--net1", "virtio,bridge=nosuchbr0"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("net1") && stderr.contains("pending"), "{stderr}");
    assert!(pending_text(&daemon, "vmctl", id).contains("new net1: virtio="));
    assert!(!Path::new("/sys/class/net/tap480i1").exists());
    ok(&daemon, "vmctl", &["set", id, "--revert", "net1"]);

    // Unplugging: the guest releases the disk and the NIC; the disk is kept as unused1.
    ok(&daemon, "vmctl", &["set", id, "--delete", "virtio0"]);
    guest_until(&mut console, "[ ! -e /sys/block/vda ]", "nodisk");
    let (current, _) = configs(&daemon, "vmctl", id);
    assert!(current.get("virtio0").is_none(), "{current}");
    assert!(current["unused1"].as_str().is_some_and(|u| u.starts_with("local:480/vm-480-disk-0")), "{current}");
    ok(&daemon, "vmctl", &["set", id, "--delete", "net0"]);
    guest_until(&mut console, "[ ! -e /sys/class/net/eth0 ]", "nonic");
    assert!(!Path::new("/sys/class/net/tap480i0").exists(), "the tap goes with its NIC");
    assert!(json(&daemon, "vmctl", &["config", id, "--current"]).get("net0").is_none());
    drop(console);

    // The reboot applies what was pending.
    assert!(!qemu_cmdline(&daemon, id).iter().any(|a| a == "384"));
    ok(&daemon, "vmctl", &["reboot", id, "--timeout", "120"]);
    let (current, _) = configs(&daemon, "vmctl", id);
    assert_eq!(current["memory"], 384, "{current}");
    assert!(current.get("tablet").is_none(), "{current}");
    assert_eq!(pending_text(&daemon, "vmctl", id).lines().filter(|l| !l.starts_with("cur")).count(), 0);
    let cmdline = qemu_cmdline(&daemon, id);
    assert!(cmdline.windows(2).any(|w| w[0] == "-m" && w[1] == "384"), "{cmdline:?}");
    assert!(cmdline.windows(2).any(|w| w[0] == "-smp" && w[1].starts_with("1,")), "{cmdline:?}");
    ok(&daemon, "vmctl", &["stop", id]);
    ok(&daemon, "vmctl", &["destroy", id]);
}

#[test]
fn a_running_container_changes_limits_live_and_pends_the_rest() {
    let daemon = HearthdProcess::start();
    let bridge = Bridge::tagged("c");
    let id = ctid(7);
    crate::ct::create(&daemon, &id, &[]);
    ok(&daemon, "ctctl", &["start", &id]);
    let memory_dir =
        cgroup_dirs(&id).into_iter().find(|d| d.to_string_lossy().contains("/memory/")).expect("memory cgroup");
    let cpu_dir = cgroup_dirs(&id)
        .into_iter()
        .find(|d| {
            let hierarchy = d.parent().and_then(Path::parent).map(|h| h.to_string_lossy().into_owned());
            hierarchy.is_some_and(|h| h.ends_with("/cpu") || h.contains("/cpu,"))
        })
        .expect("cpu cgroup");
    let read = |path: &Path| std::fs::read_to_string(path).expect("cgroup file").trim().to_owned();

    // Limits in the cgroups at once; the hostname is metadata.
    ok(&daemon, "ctctl", &["set", &id, "--memory", "96", "--cpulimit", "1", "--hostname", "box2"]);
    assert_eq!(read(&memory_dir.join("memory.limit_in_bytes")), (96u64 << 20).to_string());
    assert_eq!(read(&cpu_dir.join("cpu.cfs_quota_us")), "100000");
    let (current, _) = configs(&daemon, "ctctl", &id);
    assert_eq!((current["memory"].clone(), current["hostname"].clone()), (96.into(), "box2".into()), "{current}");

    // A NIC into the running container, and out again.
    let net0 = format!("name=eth0,bridge={}", bridge.0);
    ok(&daemon, "ctctl", &["set", &id, "--net0", &net0]);
    let veth = format!("veth{id}i0");
    let master = std::fs::read_link(format!("/sys/class/net/{veth}/master")).expect("the veth is in a bridge");
    assert!(master.ends_with(&bridge.0), "{master:?}");
    let (code, out, err) = exec(&daemon, &id, &["ls", "/sys/class/net"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.split_whitespace().any(|n| n == "eth0"), "{out}");
    // A new bridge moves the veth; the container keeps its eth0.
    let other = Bridge::tagged("d");
    let moved = json(&daemon, "ctctl", &["config", &id])["net0"].as_str().expect("net0").replace(&bridge.0, &other.0);
    ok(&daemon, "ctctl", &["set", &id, "--net0", &moved]);
    let master = std::fs::read_link(format!("/sys/class/net/{veth}/master")).expect("the veth is in a bridge");
    assert!(master.ends_with(&other.0), "{master:?}");
    assert_eq!(json(&daemon, "ctctl", &["config", &id, "--current"])["net0"], moved.as_str());
    ok(&daemon, "ctctl", &["set", &id, "--delete", "net0"]);
    wait_until("the veth to go", || !Path::new("/sys/class/net").join(&veth).exists());
    let (_, out, _) = exec(&daemon, &id, &["ls", "/sys/class/net"]);
    assert!(!out.split_whitespace().any(|n| n == "eth0"), "{out}");

    // The rest waits for the next start.
    ok(&daemon, "ctctl", &["set", &id, "--tty", "3", "--features", "nesting=1"]);
    let text = pending_text(&daemon, "ctctl", &id);
    assert!(text.lines().any(|l| l == "new tty: 3"), "{text}");
    assert!(text.lines().any(|l| l == "new features: nesting=1"), "{text}");
    let (current, merged) = configs(&daemon, "ctctl", &id);
    assert!(current.get("features").is_none() && merged["features"] == "nesting=1", "{current} {merged}");
    ok(&daemon, "ctctl", &["set", &id, "--revert", "tty"]);
    assert!(!pending_text(&daemon, "ctctl", &id).contains("tty"));
    ok(&daemon, "ctctl", &["stop", &id]);
    ok(&daemon, "ctctl", &["start", &id]);
    let (current, _) = configs(&daemon, "ctctl", &id);
    assert_eq!(current["features"], "nesting=1", "{current}");
    assert!(pending_text(&daemon, "ctctl", &id).lines().all(|l| l.starts_with("cur")));
    ok(&daemon, "ctctl", &["stop", &id]);
    ok(&daemon, "ctctl", &["destroy", &id]);
}
