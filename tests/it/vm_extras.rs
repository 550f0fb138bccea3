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
    let started = exec_json(&daemon, &["guest", "exec", "480", "--synchronous", "0", "--", "sh", "-c", "sleep 1; echo late"]);
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
    let (code, stdout, stderr) = run(&daemon, "vmctl", &["guest", "exec", "480", "--timeout", "1", "--", "sleep", "30"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stderr.contains("is still running") && stdout.contains("\"exited\": 0"), "{stdout}{stderr}");

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
