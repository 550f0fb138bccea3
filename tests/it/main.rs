//! Integration tests: a module per area. Most start a real hearthd on a temporary root and talk
//! to it through its socket, with the client library or the real CLI binaries; `backup_store`
//! and `ctmon` test hearth-backup and hearth-ctmon on their own.

mod access;
mod argforms;
mod attacks;
mod backup;
mod backup_store;
mod chunkstore;
mod cli;
mod cli_json;
mod cloudinit;
mod concurrency;
mod config;
mod crash;
mod ct;
mod ct_extras;
mod ct_privileged;
mod ctmon;
mod doc_examples;
mod firewall;
mod hostile;
mod listing;
mod net_links;
mod netctl;
mod node;
mod pending;
mod permissions;
mod protocol;
mod pveum;
mod sdn;
mod storage;
mod storage_btrfs;
mod storage_scan;
mod tasks;
mod testhost;
mod userctl;
mod vm;
mod vm_disks;
mod vm_extras;
mod vm_keys;
mod wire;

use std::os::unix::process::CommandExt;

use hearth_client::Client;
use hearth_core::Vmid;
use hearth_proto::{CreateGuest, CtRequest, Payload, Request, VmRequest};
use hearth_test::HearthdProcess;

/// Uploads the busybox container template (`cargo xtask fixtures`) to the node's `local`
/// storage, once, and answers its volume id: the `<ostemplate>` of `ctctl create`.
pub fn template(daemon: &HearthdProcess) -> String {
    let file = hearth_test::fixtures::busybox_template();
    if !daemon.root().join("var/lib/hearth/template/cache/busybox-template.tar.zst").exists() {
        ok(daemon, "storectl", &["upload", "local", file.to_str().expect("utf-8 path"), "--content", "vztmpl"]);
    }
    "local:vztmpl/busybox-template.tar.zst".to_owned()
}

pub fn vmid(id: u32) -> Vmid {
    Vmid::new(id).expect("test ids are in range")
}

pub fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Creates a VM and waits for its task.
pub fn create_vm(client: &mut Client, id: u32, options: &[(&str, &str)]) {
    let request = Request::Vm(VmRequest::Create(CreateGuest { vmid: vmid(id), options: opts(options), ct: None }));
    let Payload::Task(upid) = client.call(&request).expect("create is accepted") else {
        panic!("create answers with a task")
    };
    let info = client.follow(&upid, |_| {}).expect("following the task");
    assert_eq!(info.state, hearth_proto::TaskState::Ok, "{upid}");
}

/// Creates a container and waits for its task.
pub fn create_ct(client: &mut Client, id: u32, options: &[(&str, &str)]) {
    let request = Request::Ct(CtRequest::Create(CreateGuest { vmid: vmid(id), options: opts(options), ct: None }));
    let Payload::Task(upid) = client.call(&request).expect("create is accepted") else {
        panic!("create answers with a task")
    };
    let info = client.follow(&upid, |_| {}).expect("following the task");
    assert_eq!(info.state, hearth_proto::TaskState::Ok, "{upid}");
}

/// A CLI's exit code, stdout and stderr.
pub fn run(daemon: &HearthdProcess, program: &str, args: &[&str]) -> (i32, String, String) {
    let out = daemon.cli(program, args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a CLI that must succeed; answers its stdout.
pub fn ok(daemon: &HearthdProcess, program: &str, args: &[&str]) -> String {
    let (code, stdout, stderr) = run(daemon, program, args);
    assert_eq!(code, 0, "{program} {args:?} failed: {stderr}");
    stdout
}

/// Runs a CLI with `--output-format json` that must succeed; answers the parsed output.
pub fn json(daemon: &HearthdProcess, program: &str, args: &[&str]) -> serde_json::Value {
    let mut args = args.to_vec();
    args.extend(["--output-format", "json"]);
    let stdout = ok(daemon, program, &args);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{program} {args:?} printed no JSON ({e}): {stdout}"))
}

/// A Unix user of the test's own, removed when the test ends however it ends.
#[derive(Debug)]
pub struct UnixUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl UnixUser {
    pub fn new(tag: &str) -> UnixUser {
        let name = format!("h{tag}{}", std::process::id() % 100_000);
        let status = std::process::Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", &name])
            .status()
            .expect("useradd (package passwd)");
        assert!(status.success(), "useradd {name}");
        // From here on the user is removed on drop, even if the lookup fails.
        let mut user = UnixUser { name, uid: 0, gid: 0 };
        let found = nix::unistd::User::from_name(&user.name).expect("lookup").expect("the new user exists");
        user.uid = found.uid.as_raw();
        user.gid = found.gid.as_raw();
        assert_ne!(user.uid, 0);
        user
    }

    pub fn userid(&self) -> String {
        format!("{}@pam", self.name)
    }

    /// Runs a Hearth CLI under this user's uid and gid.
    pub fn run(&self, daemon: &HearthdProcess, program: &str, args: &[&str]) -> std::process::Output {
        std::process::Command::new(hearth_test::bin(program))
            .args(args)
            .env("HEARTH_ROOT", daemon.root())
            .uid(self.uid)
            .gid(self.gid)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("running the CLI as the test user")
    }
}

impl Drop for UnixUser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("userdel").arg(&self.name).status();
    }
}
