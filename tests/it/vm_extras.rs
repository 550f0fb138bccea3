//! qm's everyday extras on real QEMU (TCG) guests: `vmctl guest` through Debian's qemu-ga in
//! the fixture initramfs, `reset`, `sendkey`, `suspend --todisk` and the resume from the saved
//! state, `wait`, and `stop --overrule-shutdown`.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use hearth_test::HearthdProcess;
use serde_json::Value;

use crate::vm::{Console, create_booting_vm, status};
use crate::{json, ok, run};

/// Waits until the guest agent answers a ping (qemu-ga starts in the guest's /init).
fn agent_ready(daemon: &HearthdProcess, vmid: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (code, _, stderr) = run(daemon, "vmctl", &["guest", "cmd", vmid, "ping"]);
        if code == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the guest agent never answered: {stderr}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `vmctl guest exec` with JSON output: the option goes before the `--` that ends vmctl's own.
fn exec_json(daemon: &HearthdProcess, args: &[&str]) -> Value {
    let mut argv = vec!["--output-format", "json"];
    argv.extend(args);
    serde_json::from_str(&ok(daemon, "vmctl", &argv)).expect("JSON output")
}

#[test]
fn the_guest_agent_answers_and_runs_programs() {
    let daemon = HearthdProcess::start();
    create_booting_vm(&daemon, "480", "local:0.0625,format=raw");
    ok(&daemon, "vmctl", &["set", "480", "--agent", "1"]);
    ok(&daemon, "vmctl", &["start", "480"]);
    agent_ready(&daemon, "480");

    let info = json(&daemon, "vmctl", &["guest", "cmd", "480", "info"]);
    assert!(info["version"].as_str().is_some_and(|v| !v.is_empty()), "{info}");
    assert!(info["supported_commands"].as_array().is_some_and(|c| !c.is_empty()), "{info}");
    let time = json(&daemon, "vmctl", &["guest", "cmd", "480", "get-time"]);
    assert!(time.as_i64().is_some_and(|ns| ns > 0), "get-time answers nanoseconds: {time}");

    // Synchronous exec: the output and exit code come back decoded.
    let done = exec_json(&daemon, &["guest", "exec", "480", "--", "echo", "hi"]);
    assert_eq!(done["exited"], 1, "{done}");
    assert_eq!(done["exitcode"], 0, "{done}");
    assert_eq!(done["out-data"], "hi\n", "{done}");
    // Text output is qm's indented JSON.
    let text = ok(&daemon, "vmctl", &["guest", "exec", "480", "--", "sh", "-c", "echo err >&2; exit 3"]);
    let parsed: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(parsed["exitcode"], 3, "{text}");
    assert_eq!(parsed["err-data"], "err\n", "{text}");
    assert!(text.contains("\n  \""), "indented: {text}");

    // Asynchronous exec, then exec-status until it has ended.
    let started =
        exec_json(&daemon, &["guest", "exec", "480", "--synchronous", "0", "--", "sh", "-c", "sleep 1; echo late"]);
    let pid = started["pid"].as_i64().expect("a pid").to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let status = json(&daemon, "vmctl", &["guest", "exec-status", "480", &pid]);
        if status["exited"] == 1 {
            break status;
        }
        assert!(Instant::now() < deadline, "the program never ended: {status}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(status["out-data"], "late\n", "{status}");

    // --pass-stdin hands the caller's input to the program.
    let mut child = daemon
        .command("vmctl")
        .args(["guest", "exec", "480", "--pass-stdin", "1", "--output-format", "json", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("vmctl guest exec");
    child.stdin.take().expect("stdin").write_all(b"from the host\n").expect("writing");
    let output = child.wait_with_output().expect("wait");
    let piped: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(piped["out-data"], "from the host\n", "{piped}");

    // A program that outlives --timeout: what is known is printed, and vmctl fails.
    let (code, stdout, stderr) =
        run(&daemon, "vmctl", &["guest", "exec", "480", "--timeout", "1", "--", "sleep", "30"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stderr.contains("is still running") && stdout.contains("\"exited\": 0"), "{stdout}{stderr}");

    // passwd reaches the agent, which runs the guest's chpasswd; the fixture's busybox has
    // none, and the agent's own error comes back.
    let mut child = daemon
        .command("vmctl")
        .args(["guest", "passwd", "480", "root"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vmctl guest passwd");
    child.stdin.take().expect("stdin").write_all(b"hearth-s3cret\n").expect("writing");
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("guest agent command 'set-user-password' failed: cannot find"), "{stderr}");
    let (code, _, stderr) = run(&daemon, "vmctl", &["guest", "passwd", "480", "root"]);
    assert_eq!(code, 1, "no password on standard input");
    assert!(stderr.contains("no password"), "{stderr}");

    // Bad input is refused before the agent is asked.
    let (code, _, stderr) = run(&daemon, "vmctl", &["guest", "cmd", "480", "rm-rf"]);
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = run(&daemon, "vmctl", &["guest", "exec", "480"]);
    assert_eq!(code, 2, "{stderr}");
    ok(&daemon, "vmctl", &["stop", "480"]);
}

#[test]
fn guest_agent_errors_name_what_is_missing() {
    let daemon = HearthdProcess::start();
    // No agent configured: said at once.
    ok(&daemon, "vmctl", &["create", "482", "--memory", "64", "--kvm", "0"]);
    ok(&daemon, "vmctl", &["start", "482"]);
    let (code, _, stderr) = run(&daemon, "vmctl", &["guest", "cmd", "482", "ping"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no QEMU guest agent configured for VM 482"), "{stderr}");
    ok(&daemon, "vmctl", &["stop", "482"]);
    // Configured, but nothing runs in the guest (no operating system): a timeout.
    ok(&daemon, "vmctl", &["create", "483", "--memory", "64", "--kvm", "0", "--agent", "1"]);
    let (code, _, stderr) = run(&daemon, "vmctl", &["guest", "cmd", "483", "ping"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("VM 483 is not running"), "{stderr}");
    ok(&daemon, "vmctl", &["start", "483"]);
    let started = Instant::now();
    let (code, _, stderr) = run(&daemon, "vmctl", &["guest", "exec", "483", "--", "true"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("QEMU guest agent is not running in VM 483"), "{stderr}");
    assert!(started.elapsed() >= Duration::from_secs(9), "it waited for the agent first");
    ok(&daemon, "vmctl", &["stop", "483"]);
}

#[test]
fn reset_sendkey_and_suspend_to_disk_act_on_the_guest() {
    let daemon = HearthdProcess::start();
    create_booting_vm(&daemon, "484", "local:0.0625,format=raw");
    ok(&daemon, "vmctl", &["start", "484"]);
    let mut console = Console::open(&daemon, "484");
    console.ready();

    // Suspended to disk: QEMU is gone, the RAM is in a state volume, the VM locked.
    console.run("MARK=saved", "s1");
    let out = ok(&daemon, "vmctl", &["suspend", "484", "--todisk"]);
    assert!(out.contains("RAM state saved to local:484/vm-484-state-suspend-"), "{out}");
    drop(console);
    assert_eq!(status(&daemon, "484"), "stopped");
    let config = json(&daemon, "vmctl", &["config", "484"]);
    assert_eq!(config["lock"], "suspended", "{config}");
    let vmstate = config["vmstate"].as_str().expect("vmstate names the volume").to_owned();
    assert!(vmstate.starts_with("local:484/vm-484-state-suspend-") && vmstate.ends_with(".raw"), "{vmstate}");
    let path = ok(&daemon, "storectl", &["path", &vmstate]);
    assert!(std::fs::metadata(path.trim()).expect("the state volume").len() > 1 << 20, "RAM was written");
    // Resumed: the shell is where it was, the volume and the lock are gone.
    let out = ok(&daemon, "vmctl", &["resume", "484"]);
    assert!(out.contains("RAM state loaded") && out.contains("removed the state volume"), "{out}");
    assert_eq!(status(&daemon, "484"), "running");
    let mut console = Console::open(&daemon, "484");
    let printed = console.run("echo mark-$MARK", "s2");
    assert!(printed.contains("mark-saved"), "the guest resumed where it was: {printed}");
    let config = json(&daemon, "vmctl", &["config", "484"]);
    assert!(config.get("lock").is_none() && config.get("vmstate").is_none(), "{config}");
    assert!(!std::path::Path::new(path.trim()).exists(), "the state volume was freed");

    // Reset: the guest starts over, its shell variables gone.
    let out = ok(&daemon, "vmctl", &["reset", "484"]);
    assert!(out.contains("VM 484 reset"), "{out}");
    console.ready();
    let printed = console.run("echo mark-$MARK.", "r1");
    assert!(printed.contains("mark-."), "the guest booted again: {printed}");

    // Ctrl+Alt+Del on the keyboard: busybox init reboots the guest.
    console.run("MARK=keys", "k1");
    ok(&daemon, "vmctl", &["sendkey", "484", "ctrl-alt-delete"]);
    console.expect("reboot", Duration::from_secs(120));
    console.ready();
    let printed = console.run("echo mark-$MARK.", "k2");
    assert!(printed.contains("mark-."), "ctrl-alt-delete rebooted the guest: {printed}");
    drop(console);
    for (bad, why) in [("ctrl alt", "bad key name"), ("ctrl--alt", "bad key name"), ("", "is empty")] {
        let (code, _, stderr) = run(&daemon, "vmctl", &["sendkey", "484", bad]);
        assert_eq!(code, 1, "{bad:?}");
        assert!(stderr.contains("key: ") && stderr.contains(why), "{bad:?}: {stderr}");
    }
    let (code, _, stderr) = run(&daemon, "vmctl", &["sendkey", "484", "nosuchkey"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("QEMU refused 'nosuchkey'"), "{stderr}");
    ok(&daemon, "vmctl", &["stop", "484"]);
    let (code, _, stderr) = run(&daemon, "vmctl", &["reset", "484"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("VM 484 is not running"), "{stderr}");
}

#[test]
fn wait_returns_when_the_vm_stops_and_stop_overrules_a_shutdown() {
    let daemon = HearthdProcess::start();
    // Without an operating system nothing answers the power button: a shutdown waits.
    ok(&daemon, "vmctl", &["create", "486", "--memory", "64", "--kvm", "0"]);
    ok(&daemon, "vmctl", &["wait", "486"]);
    ok(&daemon, "vmctl", &["start", "486"]);
    let (code, stdout, stderr) = run(&daemon, "vmctl", &["wait", "486", "--timeout", "1"]);
    assert_eq!(code, 1);
    assert!(stdout.contains("waiting until VM 486 stops (PID "), "{stdout}");
    assert!(stderr.contains("wait failed - got timeout"), "{stderr}");

    let shutdown = daemon
        .command("vmctl")
        .args(["shutdown", "486", "--timeout", "300"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vmctl shutdown");
    let waiter = daemon.command("vmctl").args(["wait", "486"]).stdout(Stdio::null()).spawn().expect("vmctl wait");
    // The shutdown task is running before the stop overrules it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok(&daemon, "clusterctl", &["node", "task", "list", "--vmid", "486"]).contains("qmshutdown") {
        assert!(Instant::now() < deadline, "the shutdown task never appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let out = ok(&daemon, "vmctl", &["stop", "486", "--overrule-shutdown", "1"]);
    assert!(out.contains("overruling the shutdown task UPID:"), "{out}");
    let shutdown = shutdown.wait_with_output().expect("shutdown ends");
    assert_eq!(shutdown.status.code(), Some(1), "the overruled shutdown fails");
    let said = String::from_utf8_lossy(&shutdown.stdout).into_owned() + &String::from_utf8_lossy(&shutdown.stderr);
    assert!(said.contains("interrupted by signal"), "{said}");
    let waited = waiter.wait_with_output().expect("wait ends");
    assert!(waited.status.success(), "vmctl wait returns once the VM stopped");
    assert_eq!(status(&daemon, "486"), "stopped");

    // Errors: clusterctl node task lists the failed shutdown, as pvenode task list --errors.
    let errors = ok(&daemon, "clusterctl", &["node", "task", "list", "--errors", "--vmid", "486"]);
    assert!(errors.contains("qmshutdown") && !errors.contains("qmstop"), "{errors}");
    // --skiplock and --keepActive are root's: an ordinary user is refused before anything.
    let user = crate::UnixUser::new("stopper");
    let out = user.run(&daemon, "vmctl", &["stop", "486", "--skiplock"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("root@pam"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn disk_rescan_adopts_unreferenced_volumes() {
    let daemon = HearthdProcess::start();
    ok(&daemon, "vmctl", &["create", "495", "--memory", "64", "--kvm", "0", "--virtio0", "local:0.0625"]);
    ok(&daemon, "storectl", &["alloc", "local", "495", "vm-495-disk-7.qcow2", "1M"]);
    let stray = "local:495/vm-495-disk-7.qcow2";
    let before = ok(&daemon, "vmctl", &["config", "495"]);
    let out = ok(&daemon, "vmctl", &["disk", "rescan", "--vmid", "495", "--dryrun"]);
    assert!(out.contains(&format!("VM 495 add unreferenced volume '{stray}' as 'unused0' to config")), "{out}");
    assert_eq!(ok(&daemon, "vmctl", &["config", "495"]), before, "a dry run changes nothing");
    let out = ok(&daemon, "vmctl", &["rescan"]);
    assert!(out.contains("as 'unused0'"), "{out}");
    let config = json(&daemon, "vmctl", &["config", "495"]);
    assert_eq!(config["unused0"], stray, "{config}");
    assert!(!ok(&daemon, "vmctl", &["disk", "rescan", "--vmid", "495"]).contains("unused"), "nothing left to adopt");
    // A disk grown behind the configuration's back gets its size= back in line.
    let disk = ok(&daemon, "storectl", &["path", "local:495/vm-495-disk-0.qcow2"]);
    qemu_img(&["resize", "-q", disk.trim(), "128M"]);
    let out = ok(&daemon, "vmctl", &["disk", "rescan", "--vmid", "495"]);
    assert!(
        out.contains("VM 495 (virtio0): size of disk 'local:495/vm-495-disk-0.qcow2' updated from 64M to 128M"),
        "{out}"
    );
    let config = json(&daemon, "vmctl", &["config", "495"]);
    assert_eq!(config["virtio0"], "local:495/vm-495-disk-0.qcow2,size=128M", "{config}");
    // Every VM at once is root's.
    let user = crate::UnixUser::new("rescanner");
    let out = user.run(&daemon, "vmctl", &["disk", "rescan"]);
    assert_eq!(out.status.code(), Some(1));
}

/// An OVF manifest naming `disk1.vmdk` on SCSI and `data.qcow2` on IDE.
const OVF: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References><File ovf:id="file1" ovf:href="disk1.vmdk"/><File ovf:id="file2" ovf:href="data.qcow2"/></References>
  <DiskSection><Disk ovf:diskId="vmdisk1" ovf:fileRef="file1"/><Disk ovf:diskId="vmdisk2" ovf:fileRef="file2"/></DiskSection>
  <VirtualSystem ovf:id="appliance">
    <Name>Appliance 1</Name>
    <VirtualHardwareSection>
      <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>96</rasd:VirtualQuantity></Item>
      <Item><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:InstanceID>4</rasd:InstanceID><rasd:ResourceType>5</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>5</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>1</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/vmdisk2</rasd:HostResource><rasd:InstanceID>6</rasd:InstanceID><rasd:Parent>4</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#;

fn qemu_img(args: &[&str]) {
    let status = std::process::Command::new("qemu-img").args(args).status().expect("qemu-img (package qemu-utils)");
    assert!(status.success(), "qemu-img {args:?}");
}

#[test]
fn importovf_creates_the_vm_and_imports_its_disks() {
    let daemon = HearthdProcess::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let vmdk = dir.path().join("disk1.vmdk");
    qemu_img(&["create", "-q", "-f", "vmdk", vmdk.to_str().expect("path"), "2M"]);
    let status = std::process::Command::new("qemu-io")
        .args(["-f", "vmdk", "-c", "write -P 0x5a 0 4k"])
        .arg(&vmdk)
        .stdout(Stdio::null())
        .status()
        .expect("qemu-io");
    assert!(status.success());
    qemu_img(&["create", "-q", "-f", "qcow2", dir.path().join("data.qcow2").to_str().expect("path"), "1M"]);
    let manifest = dir.path().join("appliance.ovf");
    std::fs::write(&manifest, OVF).expect("manifest");
    let manifest = manifest.to_str().expect("path");

    let parsed = json(&daemon, "vmctl", &["importovf", "496", manifest, "local", "--dryrun"]);
    assert_eq!(parsed["qm"], serde_json::json!({"name": "Appliance-1", "memory": "96", "cores": "2"}), "{parsed}");
    assert_eq!(parsed["disks"][0]["disk_address"], "scsi0");
    assert_eq!(parsed["disks"][0]["backing_file"], vmdk.to_str().expect("path"));
    assert_eq!(parsed["disks"][0]["virtual_size"], 2 << 20);
    assert_eq!(parsed["disks"][1]["disk_address"], "ide1");
    let (code, _, _) = run(&daemon, "vmctl", &["config", "496"]);
    assert_eq!(code, 1, "a dry run creates nothing");

    let out = ok(&daemon, "vmctl", &["importovf", "496", manifest, "local"]);
    assert!(out.contains("TASK OK"), "{out}");
    let config = json(&daemon, "vmctl", &["config", "496"]);
    assert_eq!(
        (config["name"].as_str(), config["memory"].as_i64(), config["cores"].as_i64()),
        (Some("Appliance-1"), Some(96), Some(2))
    );
    assert_eq!(config["scsi0"], "local:496/vm-496-disk-0.qcow2", "{config}");
    assert_eq!(config["ide1"], "local:496/vm-496-disk-1.qcow2", "{config}");
    let disk = ok(&daemon, "storectl", &["path", "local:496/vm-496-disk-0.qcow2"]);
    assert!(crate::vm::qemu_io(disk.trim(), "read -P 0x5a 0 4k"), "the vmdk's data was imported");

    // A manifest whose disk lies elsewhere is refused and leaves no VM.
    std::fs::write(dir.path().join("escape.ovf"), OVF.replace("disk1.vmdk", "../disk1.vmdk")).expect("manifest");
    let escape = dir.path().join("escape.ovf");
    let (code, _, stderr) = run(&daemon, "vmctl", &["importovf", "497", escape.to_str().expect("path"), "local"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("must be a plain file name beside the manifest"), "{stderr}");
    assert_eq!(run(&daemon, "vmctl", &["config", "497"]).0, 1);
    // Host paths are root's.
    let user = crate::UnixUser::new("ovfuser");
    let out = user.run(&daemon, "vmctl", &["importovf", "497", manifest, "local", "--dryrun"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("root@pam"));
}
