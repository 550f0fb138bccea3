//! The CLIs end to end against a real hearthd: text and JSON output, exit codes, task following.

use crate::{json, run, template};
use hearth_test::HearthdProcess;

#[test]
fn vmctl_and_ctctl_round_trip() {
    let daemon = HearthdProcess::start();
    let (code, stdout, _) = run(&daemon, "vmctl", &["nextid"]);
    assert_eq!((code, stdout.trim()), (0, "100"));
    let (code, stdout, stderr) =
        run(&daemon, "vmctl", &["create", "100", "--name", "web01", "--memory", "2048", "--scsi0", "local:1"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.ends_with("TASK OK\n"), "the task log is followed: {stdout}");
    let (code, _, stderr) =
        run(&daemon, "ctctl", &["create", "200", &template(&daemon), "--hostname", "proxy", "--memory", "256"]);
    assert_eq!(code, 0, "{stderr}");

    let (_, list, _) = run(&daemon, "vmctl", &["list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["VMID", "NAME", "STATUS", "MEM(MB)", "BOOTDISK(GB)", "PID"]);
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row, ["100", "web01", "stopped", "2048", "1.00", "0"]);
    let listed = json(&daemon, "ctctl", &["list"]);
    assert_eq!(listed[0]["vmid"], 200);
    assert_eq!(listed[0]["name"], "proxy");

    let config = json(&daemon, "vmctl", &["config", "100"]);
    assert_eq!(config["memory"], 2048);
    let digest = config["digest"].as_str().expect("config carries its digest").to_owned();
    let (code, _, stderr) = run(&daemon, "vmctl", &["set", "100", "--cores", "2", "--digest", &digest]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = run(&daemon, "vmctl", &["set", "100", "--cores", "4", "--digest", &digest]);
    assert_eq!(code, 1, "a stale digest fails the command");
    assert!(stderr.contains("digest mismatch"), "{stderr}");
    let (_, text, _) = run(&daemon, "vmctl", &["config", "100"]);
    // As qm create: the new VM got a generation id and an SMBIOS UUID.
    assert!(text.contains("\nsmbios1: uuid=") && text.contains("\nvmgenid: "), "{text}");
    let (code, _, _) = run(&daemon, "vmctl", &["set", "100", "--delete", "cores,name,smbios1,vmgenid"]);
    assert_eq!(code, 0);
    let (_, text, _) = run(&daemon, "vmctl", &["config", "100"]);
    assert_eq!(text, "memory: 2048\nscsi0: local:100/vm-100-disk-0.qcow2,size=1G\n");

    let tasks = json(&daemon, "clusterctl", &["task", "list"]);
    let upid = tasks[0]["upid"].as_str().expect("upid").to_owned();
    assert_eq!(tasks[0]["type"], "vzcreate");
    let (code, log, _) = run(&daemon, "clusterctl", &["task", "log", &upid]);
    assert_eq!(code, 0);
    assert!(log.starts_with("creating CT 200\nrootfs: allocated local:200/vm-200-disk-0.raw (4G)\n"), "{log}");
    assert!(log.contains("extracting local:vztmpl/busybox-template.tar.zst\n"), "{log}");
    assert!(log.ends_with("CT 200 created\nTASK OK\n"), "{log}");
    let (_, status, _) = run(&daemon, "clusterctl", &["task", "status", &upid]);
    assert!(status.contains("status: stopped") && status.contains("exitstatus: OK"), "{status}");

    let (code, _, stderr) = run(&daemon, "vmctl", &["destroy", "100"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = run(&daemon, "vmctl", &["list"]);
    assert_eq!((code, stdout.as_str()), (0, ""));
}

#[test]
fn exit_codes_say_what_went_wrong() {
    let daemon = HearthdProcess::start();
    // Usage errors exit 2 and never reach hearthd.
    for args in [&["create", "99"][..], &["create", "100", "--memroy", "5"], &["frobnicate"], &["set"]] {
        let (code, _, stderr) = run(&daemon, "vmctl", args);
        assert_eq!(code, 2, "vmctl {args:?}: {stderr}");
    }
    // Refused operations exit 1 with hearthd's message naming the key.
    let (code, _, stderr) = run(&daemon, "vmctl", &["create", "100", "--net0", "virtio,tag=9999"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("net0: tag: value 9999 is above the maximum 4094"), "{stderr}");
    let (code, _, stderr) = run(&daemon, "ctctl", &["config", "100"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("CT 100 does not exist"), "{stderr}");
    // No daemon: a clear message, exit 1.
    let out = std::process::Command::new(hearth_test::bin("vmctl"))
        .arg("list")
        .env("HEARTH_ROOT", "/nonexistent-hearth-root")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect to hearthd"), "{out:?}");
}

/// With `--output-format json` a failure is one JSON object on stderr naming its kind, and the
/// exit codes stay those of text mode: 1 for a refused operation, 2 for a usage error.
#[test]
fn errors_are_json_documents_when_json_was_asked_for() {
    let daemon = HearthdProcess::start();
    let document = |stderr: &str| -> serde_json::Value {
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line of JSON on stderr: {stderr}");
        serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("not JSON ({e}): {stderr}"))
    };
    let (code, stdout, stderr) = run(&daemon, "ctctl", &["config", "100", "--output-format", "json"]);
    assert_eq!((code, stdout.as_str()), (1, ""), "{stderr}");
    let error = document(&stderr);
    assert_eq!(error["error"]["kind"], "not_found", "{error}");
    assert!(error["error"]["message"].as_str().expect("message").contains("CT 100 does not exist"), "{error}");

    let (code, _, stderr) = run(&daemon, "storectl", &["list", "nowhere", "--output-format", "json"]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(document(&stderr)["error"]["kind"], "not_found", "{stderr}");

    let (code, _, stderr) = run(&daemon, "vmctl", &["create", "100", "--memroy", "5", "--output-format", "json"]);
    assert_eq!(code, 2, "{stderr}");
    let error = document(&stderr);
    assert_eq!(error["error"]["kind"], "usage", "{error}");
    assert!(error["error"]["message"].as_str().expect("message").contains("--memroy"), "{error}");

    // json-pretty indents the same document; text mode is unchanged.
    let (code, _, stderr) = run(&daemon, "ctctl", &["config", "100", "--output-format", "json-pretty"]);
    assert_eq!(code, 1);
    let error: serde_json::Value = serde_json::from_str(&stderr).expect("indented JSON");
    assert_eq!(error["error"]["kind"], "not_found", "{error}");
    let (code, _, stderr) = run(&daemon, "ctctl", &["config", "100"]);
    assert_eq!(code, 1);
    assert!(stderr.starts_with("ctctl: ") && stderr.contains("CT 100 does not exist"), "{stderr}");
}
