//! Access control through the real socket as real Unix users: nobody but root holds anything
//! until access.toml grants it; a PVEVMUser on one VM may run and watch that VM, not change it,
//! and does not see the others; a broken access.toml stops hearthd.

use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use hearth_test::HearthdProcess;
use nix::sys::signal::Signal;

use crate::{UnixUser, ok};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn listed(out: &Output) -> Vec<u64> {
    assert!(out.status.success(), "{}", stderr(out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    list.as_array().expect("a list").iter().map(|g| g["vmid"].as_u64().expect("vmid")).collect()
}

/// Writes access.toml and restarts hearthd so it loads it.
fn grant(daemon: &mut HearthdProcess, text: &str) {
    std::fs::write(daemon.root().join("etc/hearth/access.toml"), text).expect("access.toml");
    daemon.signal(Signal::SIGTERM);
    daemon.restart();
}

#[test]
fn a_vm_user_runs_their_vm_and_sees_nothing_else() {
    let mut daemon = HearthdProcess::start();
    for vmid in ["100", "101"] {
        ok(&daemon, "vmctl", &["create", vmid, "--memory", "64", "--kvm", "0", "--serial0", "socket"]);
    }
    let user = UnixUser::new("vu");

    // Secure default: without an ACL the user gets nothing, not even a list.
    let out = user.run(&daemon, "vmctl", &["list", "--output-format", "json"]);
    assert_eq!(listed(&out), Vec::<u64>::new());
    let out = user.run(&daemon, "vmctl", &["start", "100"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("permission denied"), "{}", stderr(&out));

    grant(
        &mut daemon,
        &format!(
            "[users.\"{id}\"]\n\n[[acl]]\npath = \"/vms/100\"\nuser = \"{id}\"\nrole = \"PVEVMUser\"\n",
            id = user.userid()
        ),
    );
    let out = user.run(&daemon, "vmctl", &["list", "--output-format", "json"]);
    assert_eq!(listed(&out), [100], "only the VM the ACL covers");

    let out = user.run(&daemon, "vmctl", &["start", "100"]);
    assert!(out.status.success(), "VM.PowerMgmt allows start: {}", stderr(&out));
    let out = user.run(&daemon, "vmctl", &["status", "100"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("status: running"), "{}", stderr(&out));

    // The console: VM.Console allows it; the session stays open until it is ended.
    let mut console = Command::new(hearth_test::bin("vmctl"))
        .args(["terminal", "100"])
        .env("HEARTH_ROOT", daemon.root())
        .uid(user.uid)
        .gid(user.gid)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vmctl terminal");
    std::thread::sleep(Duration::from_millis(500));
    assert!(console.try_wait().expect("poll").is_none(), "the console was refused");
    let _ = console.kill();
    let _ = console.wait();

    // Configuration, other VMs and the monitor are out of reach, and the denial is audited.
    for (args, what) in [
        (&["set", "100", "--memory", "128"][..], "VM.Config"),
        (&["config", "101"], "VM.Audit"),
        (&["start", "101"], "VM.PowerMgmt"),
        (&["destroy", "100"], "VM.Allocate"),
    ] {
        let out = user.run(&daemon, "vmctl", args);
        assert_eq!(out.status.code(), Some(1), "{args:?} was allowed");
        assert!(
            stderr(&out).contains("permission denied") && stderr(&out).contains(what),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let audit = std::fs::read_to_string(daemon.root().join("var/log/hearth/audit.log")).expect("audit log");
    assert!(audit.contains(&format!("{} denied", user.userid())), "{audit}");

    let out = user.run(&daemon, "vmctl", &["stop", "100"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = user.run(&daemon, "storectl", &["alloc", "local", "100", "", "1G"]);
    assert_eq!(out.status.code(), Some(1), "no storage rights");
    let out = user.run(&daemon, "storectl", &["status", "--output-format", "json"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]", "no storage to see: {}", stderr(&out));
}

#[test]
fn a_broken_access_file_stops_hearthd() {
    let root = hearth_test::temp_root();
    std::fs::create_dir_all(root.path().join("etc/hearth")).expect("etc");
    std::fs::write(
        root.path().join("etc/hearth/access.toml"),
        "[[acl]]\npath = \"/vms/100\"\nuser = \"nobody@pam\"\nrole = \"NoSuchRole\"\n",
    )
    .expect("access.toml");
    let out = Command::new(hearth_test::bin("hearthd"))
        .arg("--root")
        .arg(root.path())
        .stdin(Stdio::null())
        .output()
        .expect("hearthd");
    assert!(!out.status.success(), "hearthd must not run with a broken access.toml");
    let text = stderr(&out);
    assert!(text.contains("access.toml") && text.contains("line"), "{text}");
    assert!(!root.path().join("run/hearth/hearthd.sock").exists());
}

#[test]
fn an_api_token_acts_with_its_own_rights() {
    let daemon = HearthdProcess::start();
    for vmid in ["100", "101"] {
        ok(&daemon, "vmctl", &["create", vmid, "--memory", "64"]);
    }
    ok(&daemon, "userctl", &["user", "add", "ci@pve"]);
    ok(&daemon, "userctl", &["acl", "modify", "/vms/100", "--roles", "PVEVMUser", "--users", "ci@pve"]);
    let made = crate::json(&daemon, "userctl", &["token", "add", "ci@pve", "deploy", "--privsep", "0"]);
    let secret = made["value"].as_str().expect("the secret is shown once").to_owned();
    let as_token = |token: &str, args: &[&str]| {
        daemon.command("vmctl").args(args).env("HEARTH_TOKEN", token).stdin(Stdio::null()).output().expect("vmctl")
    };
    // Even when root runs the client, the token's rights apply.
    let out = as_token(&format!("ci@pve!deploy={secret}"), &["list", "--output-format", "json"]);
    assert_eq!(listed(&out), [100]);
    // The same through --token on the command line.
    let token = format!("ci@pve!deploy={secret}");
    let out =
        daemon.command("vmctl").args(["list", "--output-format", "json", "--token", &token]).output().expect("vmctl");
    assert_eq!(listed(&out), [100]);
    let out = as_token(&format!("ci@pve!deploy={secret}"), &["set", "100", "--memory", "128"]);
    assert_eq!(out.status.code(), Some(1), "PVEVMUser cannot configure");
    let perms = crate::json(&daemon, "userctl", &["token", "permissions", "ci@pve", "deploy", "--path", "/vms/100"]);
    assert!(
        perms.to_string().contains("VM.PowerMgmt"),
        "without privilege separation the token has its user's rights: {perms}"
    );
    // With privilege separation a token holds only what its own ACL entries grant: nothing yet.
    ok(&daemon, "userctl", &["token", "modify", "ci@pve", "deploy", "--privsep", "1"]);
    let out = as_token(&token, &["list", "--output-format", "json"]);
    assert_eq!(listed(&out), Vec::<u64>::new());
    ok(&daemon, "userctl", &["acl", "modify", "/vms/100", "--roles", "PVEAuditor", "--tokens", "ci@pve!deploy"]);
    let out = as_token(&token, &["list", "--output-format", "json"]);
    assert_eq!(listed(&out), [100], "the token's own PVEAuditor entry, within its user's rights");
    let out = as_token("ci@pve!deploy=0000", &["list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("invalid API token"), "{}", stderr(&out));
    let secrets = std::fs::read_to_string(daemon.root().join("etc/hearth/priv/tokens.toml")).expect("token store");
    assert!(!secrets.contains(&secret), "only a digest of the secret is kept");
    let audit = std::fs::read_to_string(daemon.root().join("var/log/hearth/audit.log")).expect("audit log");
    assert!(!audit.contains(&secret), "secrets are never logged");
}

#[test]
fn user_and_vm_admins_cannot_reach_root() {
    let mut daemon = HearthdProcess::start();
    ok(&daemon, "vmctl", &["create", "100", "--memory", "64"]);
    let user = UnixUser::new("ua");
    let id = user.userid();
    grant(
        &mut daemon,
        &format!(
            "[users.\"{id}\"]\n\n[groups.admins]\n\n[[acl]]\npath = \"/\"\ngroup = \"admins\"\nrole = \"Administrator\"\n\n\
             [[acl]]\npath = \"/access\"\nuser = \"{id}\"\nrole = \"PVEUserAdmin\"\n\n\
             [[acl]]\npath = \"/vms/100\"\nuser = \"{id}\"\nrole = \"PVEVMAdmin\"\n"
        ),
    );
    for (program, args) in [
        // A token for root@pam would carry root's rights.
        ("userctl", vec!["token", "add", "root@pam", "mine", "--privsep", "0"]),
        // Joining a group is taking its roles.
        ("userctl", vec!["user", "modify", id.as_str(), "--groups", "admins", "--append"]),
        // A VM's serial port on a host device reaches the host.
        ("vmctl", vec!["set", "100", "--serial0", "/dev/sda"]),
        ("vmctl", vec!["set", "100", "--args", "-drive file=/etc/shadow"]),
        ("vmctl", vec!["unlock", "100"]),
    ] {
        let out = user.run(&daemon, program, &args);
        assert_eq!(out.status.code(), Some(1), "{program} {args:?} was allowed");
        let text = stderr(&out);
        assert!(text.contains("root@pam") || text.contains("permission denied"), "{program} {args:?}: {text}");
    }
    let config = crate::json(&daemon, "vmctl", &["config", "100"]);
    assert!(config.get("serial0").is_none() && config.get("args").is_none(), "{config}");
    // What PVEVMAdmin may do still works.
    let out = user.run(&daemon, "vmctl", &["set", "100", "--memory", "96"]);
    assert!(out.status.success(), "{}", stderr(&out));
}
