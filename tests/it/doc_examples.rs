//! Proxmox VE's documented command lines, typed as its documentation prints them with only the
//! tool's name replaced, against a real hearthd.
//!
//! Every example cites the pve-docs file and line it comes from (pve-docs 9.1). The tool names
//! map as Hearth's README says:
//!
//! | Proxmox | Hearth |
//! |---|---|
//! | `qm` | `vmctl` |
//! | `qmrestore` | `vmctl restore` (which takes qmrestore's `ARCHIVE VMID` order too) |
//! | `pct` | `ctctl` |
//! | `pvesm` | `storectl` |
//! | `vzdump` | `storectl vzdump` |
//! | `pveum` | `userctl` |
//! | `pvenode` | `clusterctl node` |
//!
//! Besides the tool name, an example changes only where the documentation leaves something to
//! the reader: a placeholder such as `<vmid>` or `STORAGEID` gets a value (given beside the
//! example), and host paths are moved into the test's scratch directory (`/var/lib/vz`, the
//! `local` storage's directory on Proxmox, is `var/lib/hearth` under the node's root on
//! Hearth; `/mnt/backup`, `/path/to` and `/mnt/bindmounts` live in the scratch directory).
//! Between examples, setup steps (plain Hearth commands, not counted) put the node into the
//! state the documentation assumes, and checks assert what each example did.
//!
//! Documented examples not run here, and why:
//! - need another part of Hearth first: `qm migrate`, `pct migrate`, `pvenode migrateall`
//!   (migration), `pvesm add nfs|lvm|iscsi` (remote storage types), `pveum realm sync`
//!   (an LDAP or AD directory), `qm set -virtiofsN` (directory mappings), `qm set -hostpciN|-usbN
//!   <name>` (resource mappings), `pvenode acme …` (an ACME CA), `pvenode wakeonlan <node>`
//!   (another node of a cluster: a node does not wake itself), `vzdump
//!   --pbs-change-detection-mode` (a Proxmox Backup Server storage);
//! - need hardware this host lacks: `qm set -amd-sev` (AMD SEV);
//! - are syntax summaries rather than command lines (`pvesm add <TYPE> <STORAGE_ID>
//!   <OPTIONS>`, `pvesm alloc … [--format <raw|qcow2>]`, `pvesm list <STORAGE_ID> [--vmid
//!   <VMID>]`, `pvesm set <STORAGE_ID> <OPTIONS>`);
//! - need an interactive terminal: `pct console 100`;
//! - are refused by Proxmox itself: `pveum role add PVE_Power-only` (the `PVE` prefix is reserved
//!   for built-in roles); Hearth refuses it too, and the test checks that.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hearth_test::HearthdProcess;

use crate::vm::{Console, boot_args};

/// The documented tool names and what replaces them.
const TOOLS: &[(&str, &str)] = &[
    ("qm", "vmctl"),
    ("qmrestore", "vmctl restore"),
    ("pct", "ctctl"),
    ("pvesm", "storectl"),
    ("vzdump", "storectl vzdump"),
    ("pveum", "userctl"),
    ("pvenode", "clusterctl node"),
];

/// Replaces the tool name at every command position of a shell line: its start and after
/// `&&`, `||`, `|` and `;`.
fn typed(documented: &str) -> String {
    let mut out = Vec::new();
    let mut command_position = true;
    for word in documented.split(' ') {
        let replaced = match TOOLS.iter().find(|(tool, _)| *tool == word) {
            Some((_, hearth)) if command_position => hearth,
            _ => word,
        };
        out.push(replaced.to_owned());
        command_position = matches!(word, "&&" | "||" | "|" | ";") || (command_position && word.is_empty());
    }
    out.join(" ")
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A node and a scratch directory; runs examples and collects what failed.
struct Docs {
    daemon: HearthdProcess,
    scratch: tempfile::TempDir,
    ran: Vec<&'static str>,
    failed: Vec<String>,
}

impl Docs {
    fn new() -> Docs {
        hearth_test::require_root("the examples create storages, containers and VMs as root@pam");
        let daemon = HearthdProcess::start();
        let scratch = hearth_test::temp_root();
        let docs = Docs { daemon, scratch, ran: Vec::new(), failed: Vec::new() };
        std::fs::create_dir_all(docs.scratch().join("home/.ssh")).expect("scratch home");
        docs
    }

    fn root(&self) -> &Path {
        self.daemon.root()
    }

    fn scratch(&self) -> PathBuf {
        self.scratch.path().to_owned()
    }

    /// Host paths of the documentation, moved into the scratch directory and the node root.
    fn relocate(&self, line: &str) -> String {
        let local = self.root().join("var/lib/hearth");
        let scratch = self.scratch();
        line.replace("/var/lib/vz", &local.display().to_string())
            .replace("/mnt/backup", &scratch.join("backup").display().to_string())
            .replace("/mnt/bindmounts", &scratch.join("bindmounts").display().to_string())
            .replace("/path/to", &scratch.join("path/to").display().to_string())
    }

    fn shell(&self, line: &str, stdin: &str) -> Outcome {
        let path = format!("{}:{}", hearth_test::bin_dir().display(), std::env::var("PATH").unwrap_or_default());
        let mut child = Command::new("bash")
            .args(["-o", "pipefail", "-c", line])
            .current_dir(self.scratch())
            .env("PATH", path)
            .env("HOME", self.scratch().join("home"))
            .env("HEARTH_ROOT", self.root())
            .env("SCRATCH", self.scratch())
            .env("NODE_ROOT", self.root())
            .env("TEMPLATE", hearth_test::fixtures::busybox_template())
            .env("BOOT_ARGS", boot_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("bash runs");
        {
            use std::io::Write;
            let mut input = child.stdin.take().expect("stdin");
            let _ = input.write_all(stdin.as_bytes());
        }
        let out = child.wait_with_output().expect("bash ends");
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// A plain Hearth command line that puts the node into the state an example assumes; it
    /// must succeed. A failure is recorded and the run goes on, so one report lists everything.
    fn setup(&mut self, line: &str) -> String {
        let out = self.shell(line, "");
        if out.code != 0 {
            self.failed.push(format!("setup `{line}` exited {}:\n{}{}", out.code, out.stdout, out.stderr));
        }
        out.stdout
    }

    /// Runs a documented example as typed (tool name replaced, placeholders filled, paths
    /// relocated); it must exit 0. Answers what it printed.
    fn example(&mut self, at: &'static str, documented: &str, fill: &[(&str, &str)]) -> String {
        self.example_with_input(at, documented, fill, "")
    }

    fn example_with_input(&mut self, at: &'static str, documented: &str, fill: &[(&str, &str)], stdin: &str) -> String {
        let mut line = typed(documented);
        for (placeholder, value) in fill {
            assert!(line.contains(placeholder), "{at}: placeholder {placeholder} is not in `{documented}`");
            line = line.replace(placeholder, value);
        }
        let line = self.relocate(&line);
        self.ran.push(at);
        let out = self.shell(&line, stdin);
        if out.code != 0 {
            self.failed.push(format!("{at}: `{line}` exited {}:\n{}{}", out.code, out.stdout, out.stderr));
        }
        out.stdout
    }

    /// A JSON answer of a Hearth CLI, for checks; `null` when the command failed (the check
    /// that reads it fails then).
    fn json(&self, program: &str, args: &[&str]) -> serde_json::Value {
        let out = self.daemon.cli(program, &[args, &["--output-format", "json"]].concat());
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// A guest's configuration as a JSON object; a missing key reads as `null`.
    fn config(&self, program: &str, vmid: &str) -> serde_json::Value {
        self.json(program, &["config", vmid])
    }

    /// Records a failed check of an example without stopping the run.
    fn check(&mut self, at: &str, ok: bool, what: impl std::fmt::Display) {
        if !ok {
            self.failed.push(format!("{at}: check failed: {what}"));
        }
    }

    fn finish(self) {
        let distinct: std::collections::BTreeSet<_> = self.ran.iter().collect();
        eprintln!("{} documented examples ran, {} failed", distinct.len(), self.failed.len());
        assert!(
            self.failed.is_empty(),
            "{} of {} examples failed:\n{}",
            self.failed.len(),
            distinct.len(),
            self.failed.join("\n")
        );
        assert!(distinct.len() >= 80, "only {} documented examples ran; at least 80 should", distinct.len());
    }
}

#[test]
fn the_tool_name_is_replaced_at_command_positions_only() {
    assert_eq!(typed("qm shutdown 300 && qm wait 300"), "vmctl shutdown 300 && vmctl wait 300");
    assert_eq!(
        typed("vzdump 101 --stdout | pct restore --rootfs 4 300 -"),
        "storectl vzdump 101 --stdout | ctctl restore --rootfs 4 300 -"
    );
    assert_eq!(
        typed("qmrestore /mnt/backup/vzdump-qemu-888.vma 601"),
        "vmctl restore /mnt/backup/vzdump-qemu-888.vma 601"
    );
    assert_eq!(typed("pveum user add qm@pve"), "userctl user add qm@pve");
}

/// pvesm.adoc and pve-storage-dir.adoc: storages and volumes.
fn storage(d: &mut Docs) {
    d.setup("mkdir -p $SCRATCH/nas $SCRATCH/other-storage $SCRATCH/local-lvm $SCRATCH/thin1 $SCRATCH/pvedir");
    let nas = [("<STORAGE_ID>", "nas"), ("<PATH>", "$SCRATCH/nas")];
    d.example("pvesm.adoc:332", "pvesm add dir <STORAGE_ID> --path <PATH>", &nas);
    d.example("pvesm.adoc:339", "pvesm set <STORAGE_ID> --disable 1", &nas[..1]);
    let status = d.json("storectl", &["status", "--storage", "nas"]);
    d.check("pvesm.adoc:339", status[0]["status"] == "disabled", format!("nas is disabled: {status}"));
    d.example("pvesm.adoc:343", "pvesm set <STORAGE_ID> --disable 0", &nas[..1]);
    let status = d.json("storectl", &["status", "--storage", "nas"]);
    d.check("pvesm.adoc:343", status[0]["status"] == "active", format!("nas is enabled: {status}"));
    d.example("pvesm.adoc:348", "pvesm set <STORAGE_ID> --shared 1", &nas[..1]);
    d.example("pvesm.adoc:350", "pvesm set <STORAGE_ID> --content iso", &nas[..1]);
    let config = d.json("storectl", &["config", "nas"]);
    d.check("pvesm.adoc:350", config.to_string().contains("\"iso\""), format!("nas holds ISOs: {config}"));
    d.example("pvesm.adoc:356", "pvesm remove <STORAGE_ID>", &nas[..1]);
    let gone = d.shell("storectl config nas", "");
    d.check("pvesm.adoc:356", gone.code == 1, format!("nas is removed: {}", gone.stdout));

    // The storages the other examples name.
    for id in ["other-storage", "local-lvm", "thin1", "pvedir"] {
        d.setup(&format!("storectl add dir {id} --path $SCRATCH/{id} --content images,rootdir"));
    }
    d.example("pvesm.adoc:349", "pvesm set local --format qcow2", &[]);
    let volid = d.example("pvesm.adoc:365", "pvesm alloc local <VMID> '' 4G", &[("<VMID>", "100")]);
    // pvesm's wording: successfully created 'local:100/vm-100-disk-0.qcow2'
    let volid = volid.split('\'').nth(1).unwrap_or_default().to_owned();
    d.check("pvesm.adoc:365", volid == "local:100/vm-100-disk-0.qcow2", format!("the name is generated: {volid}"));
    d.example(
        "pvesm.adoc:383",
        "pvesm list <STORAGE_ID> --vmid <VMID>",
        &[("<STORAGE_ID>", "local"), ("<VMID>", "100")],
    );
    let path = d.example("pvesm.adoc:395", "pvesm path <VOLUME_ID>", &[("<VOLUME_ID>", &volid)]);
    d.check("pvesm.adoc:395", Path::new(path.trim()).is_file(), format!("the path is the image: {path}"));
    d.example("pvesm.adoc:297", "pvesm path <VOLUME_ID>", &[("<VOLUME_ID>", &volid)]);
    d.example("pvesm.adoc:369", "pvesm free <VOLUME_ID>", &[("<VOLUME_ID>", &volid)]);
    d.check("pvesm.adoc:369", !Path::new(path.trim()).exists(), "the image is gone");

    d.example("pve-storage-dir.adoc:132", "pvesm alloc local 100 vm-100-disk10.raw 4G", &[]);
    let path = d.example("pve-storage-dir.adoc:140", "pvesm path local:100/vm-100-disk10.raw", &[]);
    d.check("pve-storage-dir.adoc:140", path.trim().ends_with("images/100/vm-100-disk10.raw"), &path);
    d.example("pve-storage-dir.adoc:145", "pvesm free local:100/vm-100-disk10.raw", &[]);

    d.setup("head -c 1048576 /dev/zero > $SCRATCH/proxmox-mailgateway_2.1.iso && storectl upload local $SCRATCH/proxmox-mailgateway_2.1.iso --content iso");
    d.example("pvesm.adoc:375", "pvesm status", &[]);
    let isos = d.example("pvesm.adoc:387", "pvesm list <STORAGE_ID> --content iso", &[("<STORAGE_ID>", "local")]);
    d.check("pvesm.adoc:387", isos.contains("local:iso/proxmox-mailgateway_2.1.iso"), &isos);
    d.setup("zstd -dc < $TEMPLATE | gzip > $NODE_ROOT/var/lib/hearth/template/cache/debian-10.0-standard_10.0-1_amd64.tar.gz");
    let templates =
        d.example("pvesm.adoc:391", "pvesm list <STORAGE_ID> --content vztmpl", &[("<STORAGE_ID>", "local")]);
    d.check("pvesm.adoc:391", templates.contains("local:vztmpl/debian-10.0-standard_10.0-1_amd64.tar.gz"), &templates);

    d.setup("vmctl create 103 --scsi0 local:1");
    d.example("pvesm.adoc:403", "pvesm export local:103/vm-103-disk-0.qcow2 qcow2+size target --with-snapshots 1", &[]);
    d.check(
        "pvesm.adoc:403",
        d.scratch().join("target").metadata().is_ok_and(|m| m.len() > 0),
        "the stream is in ./target",
    );
    d.setup("vmctl destroy 103");
    d.example(
        "vzdump.adoc:506",
        "pvesm set STORAGEID --bwlimit restore=KIBs",
        &[("STORAGEID", "local"), ("KIBs", "102400")],
    );
    let config = d.json("storectl", &["config", "local"]);
    d.check("vzdump.adoc:506", config.to_string().contains("restore=102400"), format!("the limit is kept: {config}"));
}

/// pveum.adoc: users, groups, roles, ACLs, tokens, pools, realms.
fn access(d: &mut Docs) {
    let help = d.example("pveum.adoc:1069", "pveum help user add", &[]);
    d.check("pveum.adoc:1069", help.contains("--comment"), &help);
    d.example("pveum.adoc:1076", "pveum user add testuser@pve -comment \"Just a test\"", &[]);
    d.example_with_input("pveum.adoc:1083", "pveum passwd testuser@pve", &[], "Sup3r-secret\nSup3r-secret\n");
    d.example("pveum.adoc:1090", "pveum user modify testuser@pve -enable 0", &[]);
    d.example("pveum.adoc:1097", "pveum group add testgroup", &[]);
    // pveum.adoc:1104 creates `PVE_Power-only`, which Proxmox VE 8 and 9 refuse themselves: the
    // PVE prefix is reserved for built-in roles (pveum.adoc:859). Hearth refuses it the same way.
    let refused = d.shell(&typed("pveum role add PVE_Power-only -privs \"VM.PowerMgmt VM.Console\""), "");
    d.check(
        "pveum.adoc:1104",
        refused.code == 1 && refused.stderr.contains("PVE"),
        format!("refused: {}", refused.stderr),
    );
    d.example("pveum.adoc:855", "pveum role add VM_Power-only --privs \"VM.PowerMgmt VM.Console\"", &[]);
    d.example("pveum.adoc:856", "pveum role add Sys_Power-only --privs \"Sys.PowerMgmt Sys.Console\"", &[]);
    let roles = d.json("userctl", &["role", "list"]);
    let power = roles.as_array().into_iter().flatten().find(|r| r["roleid"] == "VM_Power-only");
    d.check(
        "pveum.adoc:855",
        power.is_some_and(|r| {
            r["privs"].to_string().contains("VM.Console") && r["privs"].to_string().contains("VM.PowerMgmt")
        }),
        format!("the role has both privileges: {roles}"),
    );
    d.example("pveum.adoc:1122", "pveum group add admin -comment \"System Administrators\"", &[]);
    d.example("pveum.adoc:1129", "pveum acl modify / -group admin -role Administrator", &[]);
    d.example("pveum.adoc:1136", "pveum user modify testuser@pve -group admin", &[]);
    let users = d.json("userctl", &["user", "list"]);
    let testuser = users.as_array().into_iter().flatten().find(|u| u["userid"] == "testuser@pve");
    d.check(
        "pveum.adoc:1136",
        testuser
            .is_some_and(|u| u["groups"].to_string().contains("admin") && (u["enable"] == 0 || u["enable"] == false)),
        format!("testuser@pve is disabled and in admin: {users}"),
    );
    d.setup("userctl user add joe@pve");
    d.example("pveum.adoc:1150", "pveum acl modify / -user joe@pve -role PVEAuditor", &[]);
    d.example("pveum.adoc:1157", "pveum acl modify /vms -user joe@pve -role PVEAuditor", &[]);
    d.example("pveum.adoc:1169", "pveum acl modify /access -user joe@pve -role PVEUserAdmin", &[]);
    d.setup("userctl group add customers");
    d.example("pveum.adoc:1180", "pveum acl modify /access/realm/pve -user joe@pve -role PVEUserAdmin", &[]);
    d.example("pveum.adoc:1181", "pveum acl modify /access/groups/customers -user joe@pve -role PVEUserAdmin", &[]);
    d.example("pveum.adoc:1200", "pveum acl modify /vms -user joe@pve -role PVEVMAdmin", &[]);
    let secret = d.example("pveum.adoc:1208", "pveum user token add joe@pve monitoring -privsep 1", &[]);
    d.check("pveum.adoc:1208", secret.contains("joe@pve!monitoring"), &secret);
    d.example("pveum.adoc:1209", "pveum acl modify /vms -token 'joe@pve!monitoring' -role PVEAuditor", &[]);
    let perms = d.example("pveum.adoc:1216", "pveum user permissions joe@pve", &[]);
    d.check("pveum.adoc:1216", perms.contains("VM.Allocate") && perms.contains("/vms"), &perms);
    let perms = d.example("pveum.adoc:1217", "pveum user token permissions joe@pve monitoring", &[]);
    d.check("pveum.adoc:1217", perms.contains("VM.Audit") && !perms.contains("VM.Allocate"), &perms);
    d.example("pveum.adoc:660", "pveum user tfa unlock joe@pve", &[]);
    d.example("pveum.adoc:1230", "pveum group add developers -comment \"Our software developers\"", &[]);
    d.example_with_input(
        "pveum.adoc:1237",
        "pveum user add developer1@pve -group developers -password",
        &[],
        "Dev-passw0rd\nDev-passw0rd\n",
    );
    d.example("pveum.adoc:1246", "pveum pool add dev-pool --comment \"IT development pool\"", &[]);
    d.example("pveum.adoc:1253", "pveum acl modify /pool/dev-pool/ -group developers -role PVEAdmin", &[]);
    let acl = d.json("userctl", &["acl", "list"]);
    d.check(
        "pveum.adoc:1253",
        acl.to_string().contains("/pool/dev-pool") && acl.to_string().contains("PVEAdmin"),
        &acl,
    );
    d.example(
        "pveum.adoc:538",
        "pveum realm add myrealm1 --type openid --issuer-url  https://accounts.google.com --client-id XXXX --client-key YYYY --username-claim email",
        &[],
    );
    d.example(
        "pveum.adoc:550",
        "pveum realm add myrealm2 --type openid --issuer-url  https://your.server:8080/realms/your-realm --client-id XXX --username-claim username",
        &[],
    );
    let realms = d.json("userctl", &["realm", "list"]);
    d.check("pveum.adoc:550", realms.to_string().contains("myrealm2") && !realms.to_string().contains("YYYY"), &realms);
}

fn vm_status(d: &Docs, vmid: &str) -> String {
    d.json("vmctl", &["status", vmid])["status"].as_str().unwrap_or_default().to_owned()
}

/// Starts VM 300 with the fixture kernel and waits until its shell answers, so ACPI shutdown
/// requests reach a guest that handles them.
fn boot_300(d: &mut Docs) {
    d.setup("vmctl start 300");
    wait_ready(d, "300");
}

fn wait_ready(d: &Docs, vmid: &str) {
    if vm_status(d, vmid) == "running" {
        Console::open(&d.daemon, vmid).ready();
    }
}

/// qm.adoc: virtual machines.
fn vms(d: &mut Docs) {
    d.example(
        "qm.adoc:2232",
        "qm create 300 -ide0 local-lvm:4 -net0 e1000 -cdrom local:iso/proxmox-mailgateway_2.1.iso",
        &[],
    );
    let config = d.config("vmctl", "300");
    d.check("qm.adoc:2232", config["ide2"] == "local:iso/proxmox-mailgateway_2.1.iso,media=cdrom", config.to_string());
    d.check(
        "qm.adoc:2232",
        config["ide0"].as_str().is_some_and(|v| v.starts_with("local-lvm:300/vm-300-disk-0")),
        config.to_string(),
    );
    d.check("qm.adoc:2232", config["net0"].as_str().is_some_and(|v| v.starts_with("e1000=")), config.to_string());
    // The guest: the fixture kernel on a serial console, under TCG.
    d.setup("vmctl set 300 --memory 256 --kvm 0 --serial0 socket --args \"$BOOT_ARGS\"");
    d.example("qm.adoc:2238", "qm start 300", &[]);
    d.check("qm.adoc:2238", vm_status(d, "300") == "running", "VM 300 runs");
    wait_ready(d, "300");
    d.example("qm.adoc:2244", "qm shutdown 300 && qm wait 300", &[]);
    d.check("qm.adoc:2244", vm_status(d, "300") == "stopped", "VM 300 is off");
    boot_300(d);
    d.example("qm.adoc:2250", "qm shutdown 300 && qm wait 300 -timeout 40", &[]);
    d.check("qm.adoc:2250", vm_status(d, "300") == "stopped", "VM 300 is off");
    d.setup("vmctl start 300");
    d.example("qm.adoc:2257", "qm stop 300 -overrule-shutdown 1", &[]);
    d.check("qm.adoc:2257", vm_status(d, "300") == "stopped", "VM 300 is off");
    d.example("qm.adoc:1464", "qm set <vmid> -onboot 1", &[("<vmid>", "300")]);
    d.check("qm.adoc:1464", d.config("vmctl", "300")["onboot"] == 1, "onboot is set");

    d.setup("vmctl set 300 --scsi0 local-lvm:1 --scsi1 local-lvm:1 && vmctl create 400");
    d.example("qm.adoc:2275", "qm move-disk 300 scsi0 other-storage", &[]);
    let config = d.config("vmctl", "300");
    d.check(
        "qm.adoc:2275",
        config["scsi0"].as_str().is_some_and(|v| v.starts_with("other-storage:")),
        config.to_string(),
    );
    d.example("qm.adoc:2283", "qm move-disk 300 scsi1 --target-vmid 400 --target-disk scsi3", &[]);
    let (source, target) = (d.config("vmctl", "300"), d.config("vmctl", "400"));
    d.check("qm.adoc:2283", source.get("scsi1").is_none(), source.to_string());
    d.check("qm.adoc:2283", target["scsi3"].as_str().is_some_and(|v| v.contains("vm-400-disk")), target.to_string());

    // Hardware and options.
    d.example(
        "qm.adoc:1019",
        "qm set <vmid> -vga <displaytype>,clipboard=vnc",
        &[("<vmid>", "400"), ("<displaytype>", "std")],
    );
    d.example(
        "qm.adoc:1108",
        "qm set <vmid> -efidisk0 <storage>:1,format=<format>,efitype=4m,pre-enrolled-keys=1",
        &[("<vmid>", "400"), ("<storage>", "local-lvm"), ("<format>", "qcow2")],
    );
    d.check(
        "qm.adoc:1108",
        d.config("vmctl", "400")["efidisk0"].as_str().is_some_and(|v| v.contains("efitype=4m")),
        "efidisk0 exists",
    );
    d.example(
        "qm.adoc:1211",
        "qm set <vmid> -tpmstate0 <storage>:1,version=<version>",
        &[("<vmid>", "400"), ("<storage>", "local-lvm"), ("<version>", "v2.0")],
    );
    d.example("qm.adoc:1237", "qm set <vmid> -ivshmem size=32,name=foo", &[("<vmid>", "400")]);
    d.example(
        "qm.adoc:1258",
        "qm set <vmid> -audio0 device=<device>",
        &[("<vmid>", "400"), ("<device>", "ich9-intel-hda")],
    );
    d.example(
        "qm.adoc:1293",
        "qm set <vmid> -rng0 source=<source>[,max_bytes=X,period=Y]",
        &[("<vmid>", "400"), ("<source>", "/dev/urandom"), ("[,max_bytes=X,period=Y]", ",max_bytes=1024,period=1000")],
    );
    d.example(
        "qm.adoc:1621",
        "qm set <vmid> -spice_enhancements foldersharing=1,videostreaming=all",
        &[("<vmid>", "400")],
    );
    d.example("qm.adoc:1870", "qm set VMID -vmgenid 1", &[("VMID", "400")]);
    let generated = d.config("vmctl", "400")["vmgenid"].as_str().unwrap_or_default().to_owned();
    d.check("qm.adoc:1870", generated.len() == 36 && generated != "1", format!("a UUID is generated: {generated}"));
    d.example("qm.adoc:1871", "qm set VMID -vmgenid 00000000-0000-0000-0000-000000000000", &[("VMID", "400")]);
    d.example("qm.adoc:1883", "qm set VMID -delete vmgenid", &[("VMID", "400")]);
    d.check("qm.adoc:1883", d.config("vmctl", "400").get("vmgenid").is_none(), "vmgenid is gone");
    // QEMU's audio needs a backend: qm's default, SPICE, is not Hearth's.
    d.setup("vmctl set 400 --audio0 device=ich9-intel-hda,driver=none");
    let cmdline = d.setup("vmctl showcmd 400");
    d.check("qm.adoc:1293", cmdline.contains("virtio-rng"), &cmdline);

    d.setup("printf '#!/bin/sh\\necho \"$1 $2\" >> %s/hook.log\\n' \"$SCRATCH\" > $NODE_ROOT/var/lib/hearth/snippets/hookscript.pl && chmod 755 $NODE_ROOT/var/lib/hearth/snippets/hookscript.pl && vmctl create 100 --memory 64 --kvm 0");
    d.example("qm.adoc:2077", "qm set 100 --hookscript local:snippets/hookscript.pl", &[]);
    d.setup("vmctl start 100 && vmctl stop 100");
    let log = std::fs::read_to_string(d.scratch().join("hook.log")).unwrap_or_default();
    d.check("qm.adoc:2077", log.contains("100 pre-start") && log.contains("100 post-stop"), &log);
    d.setup("vmctl destroy 100 && rm $SCRATCH/hook.log");

    boot_300(d);
    d.example("qm.adoc:2091", "qm suspend ID --todisk", &[("ID", "300")]);
    let config = d.config("vmctl", "300");
    d.check("qm.adoc:2091", vm_status(d, "300") == "stopped" && config.get("vmstate").is_some(), config.to_string());
    d.setup("vmctl start 300 && vmctl stop 300");
    d.example("qm.adoc:2386", "qm unlock <vmid>", &[("<vmid>", "300")]);
    d.example("qm.adoc:2269", "qm destroy 300 --purge", &[]);
    d.check("qm.adoc:2269", d.shell("vmctl config 300", "").code == 1, "VM 300 is gone");

    // An OVF appliance next to its disk.
    d.setup("qemu-img create -q -f vmdk $SCRATCH/WinDev1709Eval-disk1.vmdk 64M");
    std::fs::write(d.scratch().join("WinDev1709Eval.ovf"), OVF).expect("writing the OVF");
    d.example("qm.adoc:2028", "qm importovf 999 WinDev1709Eval.ovf local-lvm", &[]);
    let config = d.config("vmctl", "999");
    d.check(
        "qm.adoc:2028",
        config["memory"] == 1024
            && config
                .as_object()
                .into_iter()
                .flatten()
                .any(|(k, _)| k.starts_with("sata") || k.starts_with("scsi") || k.starts_with("ide")),
        config.to_string(),
    );

    // A raw image imported while the VM is created.
    d.setup("mkdir -p $SCRATCH/path/to/dir && qemu-img create -q -f raw $SCRATCH/path/to/dir/vm600.raw 64M");
    d.example(
        "qm.adoc:2055",
        "qm create 600 --net0 virtio,bridge=vmbr0 --name vm600 --serial0 socket --boot order=scsi0 --scsihw virtio-scsi-pci --ostype l26 --scsi0 pvedir:0,import-from=/path/to/dir/vm600.raw",
        &[],
    );
    let config = d.config("vmctl", "600");
    d.check(
        "qm.adoc:2055",
        config["scsi0"].as_str().is_some_and(|v| v.starts_with("pvedir:600/vm-600-disk-0")),
        config.to_string(),
    );
    // The ids the container examples use next.
    d.setup("vmctl destroy 600 && vmctl destroy 999");
}

/// A minimal OVF manifest of one VM with one disk, as exported by VMware and VirtualBox.
const OVF: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData">
  <References>
    <File ovf:href="WinDev1709Eval-disk1.vmdk" ovf:id="file1"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="64" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <VirtualSystem ovf:id="WinDev1709Eval">
    <Info>A virtual machine</Info>
    <Name>WinDev1709Eval</Name>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:ElementName>2 virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>2</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:ElementName>1024MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>1024</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:ElementName>SATA Controller</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>AHCI</rasd:ResourceSubType>
        <rasd:ResourceType>20</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>disk1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#;

/// qm-cloud-init.adoc: a cloud-init template and its clones.
fn cloud_init(d: &mut Docs) {
    d.setup("mkdir -p $SCRATCH/path/to && qemu-img create -q -f qcow2 $SCRATCH/path/to/bionic-server-cloudimg-amd64.img 64M");
    d.setup("ssh-keygen -q -t ed25519 -N '' -C doc@example -f $HOME/.ssh/id_rsa");
    d.example(
        "qm-cloud-init.adoc:66",
        "qm create 9000 --memory 2048 --net0 virtio,bridge=vmbr0 --scsihw virtio-scsi-pci",
        &[],
    );
    d.example(
        "qm-cloud-init.adoc:69",
        "qm set 9000 --scsi0 local-lvm:0,import-from=/path/to/bionic-server-cloudimg-amd64.img",
        &[],
    );
    d.example("qm-cloud-init.adoc:83", "qm set 9000 --ide2 local-lvm:cloudinit", &[]);
    let config = d.config("vmctl", "9000");
    d.check(
        "qm-cloud-init.adoc:69",
        config["scsi0"].as_str().is_some_and(|v| v.starts_with("local-lvm:9000/vm-9000-disk-0")),
        config.to_string(),
    );
    d.check(
        "qm-cloud-init.adoc:83",
        config["ide2"].as_str().is_some_and(|v| v.contains("cloudinit")),
        config.to_string(),
    );
    d.example("qm-cloud-init.adoc:91", "qm set 9000 --boot order=scsi0", &[]);
    d.example("qm-cloud-init.adoc:99", "qm set 9000 --serial0 socket --vga serial0", &[]);
    d.setup("printf '#cloud-config\\npackages: [htop]\\n' > $NODE_ROOT/var/lib/hearth/snippets/userconfig.yaml");
    d.setup("printf 'version: 1\\n' > $NODE_ROOT/var/lib/hearth/snippets/network.yaml && printf 'instance-id: doc\\n' > $NODE_ROOT/var/lib/hearth/snippets/meta.yaml");
    d.example(
        "qm-cloud-init.adoc:144",
        "qm set 9000 --cicustom \"user=<volume>,network=<volume>,meta=<volume>\"",
        &[
            ("user=<volume>", "user=local:snippets/userconfig.yaml"),
            ("network=<volume>", "network=local:snippets/network.yaml"),
            ("meta=<volume>", "meta=local:snippets/meta.yaml"),
        ],
    );
    d.example("qm-cloud-init.adoc:153", "qm set 9000 --cicustom \"user=local:snippets/userconfig.yaml\"", &[]);
    let user = d.example("qm-cloud-init.adoc:166", "qm cloudinit dump 9000 user", &[]);
    // As qm, dump shows the generated configuration, the base for a custom one.
    d.check("qm-cloud-init.adoc:166", user.starts_with("#cloud-config") && user.contains("hostname:"), &user);
    d.setup("vmctl set 9000 --delete cicustom");
    d.example("qm-cloud-init.adoc:107", "qm template 9000", &[]);
    d.example("qm-cloud-init.adoc:119", "qm clone 9000 123 --name ubuntu2", &[]);
    d.example("qm-cloud-init.adoc:126", "qm set 123 --sshkey ~/.ssh/id_rsa.pub", &[]);
    d.example("qm-cloud-init.adoc:127", "qm set 123 --ipconfig0 ip=10.0.10.123/24,gw=10.0.10.1", &[]);
    let user = d.setup("vmctl cloudinit dump 123 user");
    d.check("qm-cloud-init.adoc:126", user.contains("doc@example"), format!("the key is in user-data: {user}"));
    let network = d.setup("vmctl cloudinit dump 123 network");
    d.check("qm-cloud-init.adoc:127", network.contains("10.0.10.123") && network.contains("10.0.10.1"), &network);

    // The Windows variant, on a new template.
    d.setup("vmctl destroy 123 && vmctl destroy 9000 && vmctl create 9000 --memory 2048 --scsi0 local-lvm:1");
    d.example("qm-cloud-init.adoc:229", "qm set 9000 --ide2 local-lvm:cloudinit", &[]);
    d.example("qm-cloud-init.adoc:230", "qm template 9000", &[]);
    d.example("qm-cloud-init.adoc:236", "qm clone 9000 123 --name windows123", &[]);
    d.example("qm-cloud-init.adoc:242", "qm set 123 --cipassword <password>", &[("<password>", "Cl0ud-secret")]);
    d.example("qm-cloud-init.adoc:243", "qm set 123 --ipconfig0 ip=10.0.10.123/24,gw=10.0.10.1", &[]);
    d.example("qm-cloud-init.adoc:244", "qm set 123 --sshkey ~/.ssh/id_rsa.pub", &[]);
    let shown = d.setup("vmctl config 123");
    d.check("qm-cloud-init.adoc:242", !shown.contains("Cl0ud-secret"), format!("the password is not shown: {shown}"));
    d.setup("vmctl destroy 123 && vmctl destroy 9000");
}

/// pct.adoc: containers.
fn containers(d: &mut Docs) {
    d.example("pct.adoc:341", "pct create 999 local:vztmpl/debian-10.0-standard_10.0-1_amd64.tar.gz", &[]);
    d.example(
        "pct.adoc:1035",
        "pct create 100 /var/lib/vz/template/cache/debian-10.0-standard_10.0-1_amd64.tar.gz",
        &[],
    );
    let config = d.example("pct.adoc:1059", "pct config 100", &[]);
    d.check("pct.adoc:1059", config.contains("rootfs: local:100/vm-100-disk-0"), &config);
    d.example("pct.adoc:1066", "pct set 100 -net0 name=eth0,bridge=vmbr0,ip=192.168.15.147/24,gw=192.168.15.1", &[]);
    d.example("pct.adoc:1072", "pct set 100 -memory 512", &[]);
    let config = d.config("ctctl", "100");
    d.check(
        "pct.adoc:1072",
        config["memory"] == 512 && config["net0"].as_str().is_some_and(|v| v.contains("ip=192.168.15.147/24")),
        config.to_string(),
    );
    // No bridge vmbr0 exists on the test host: the container starts without its NIC.
    d.setup("ctctl set 100 --delete net0");
    d.example("pct.adoc:525", "pct set 100 -mp0 thin1:10,mp=/path/in/container", &[]);
    d.check(
        "pct.adoc:525",
        d.config("ctctl", "100")["mp0"]
            .as_str()
            .is_some_and(|v| v.starts_with("thin1:100/vm-100-disk-") && v.contains("size=10G")),
        "mp0 on thin1",
    );
    d.example("pct.adoc:1090", "pct move-volume 100 mp0 other-storage", &[]);
    d.check(
        "pct.adoc:1090",
        d.config("ctctl", "100")["mp0"].as_str().is_some_and(|v| v.starts_with("other-storage:")),
        "mp0 moved",
    );
    d.setup("mkdir -p $SCRATCH/bindmounts/shared && echo shared-file > $SCRATCH/bindmounts/shared/hello");
    d.example("pct.adoc:569", "pct set 100 -mp0 /mnt/bindmounts/shared,mp=/shared", &[]);
    d.example("pct.adoc:651", "pct set 100 -hookscript local:snippets/hookscript.pl", &[]);
    d.example("pct.adoc:612", "pct set CTID -onboot 1", &[("CTID", "100")]);
    d.example("pct.adoc:1041", "pct start 100", &[]);
    let seen = d.example_with_input("pct.adoc:1053", "pct enter 100", &[], "cat /shared/hello\nexit\n");
    d.check("pct.adoc:1053", seen.contains("shared-file"), format!("the bind mount is inside: {seen}"));
    let cpusets = d.example("pct.adoc:436", "pct cpusets", &[]);
    d.check("pct.adoc:436", cpusets.contains("100:"), &cpusets);
    d.setup("ctctl stop 100");
    let log = std::fs::read_to_string(d.scratch().join("hook.log")).unwrap_or_default();
    d.check("pct.adoc:651", log.contains("100 pre-start") && log.contains("100 post-start"), &log);
    d.example("pct.adoc:1110", "pct start CTID --debug", &[("CTID", "100")]);
    d.setup("ctctl stop 100");
    d.example("pct.adoc:1267", "pct unlock <CTID>", &[("<CTID>", "100")]);
    d.example("pct.adoc:1084", "pct destroy 100 --purge", &[]);
    d.check("pct.adoc:1084", d.shell("ctctl config 100", "").code == 1, "CT 100 is gone");
}

/// vzdump.adoc: backups and restores.
fn backups(d: &mut Docs) {
    d.setup("ctctl create 777 local:vztmpl/debian-10.0-standard_10.0-1_amd64.tar.gz && mkdir -p $SCRATCH/backup");
    for vmid in ["101", "102", "103", "123", "888"] {
        d.setup(&format!("vmctl create {vmid} --memory 64 --kvm 0 --scsi0 local-lvm:0.0625"));
    }
    d.example("vzdump.adoc:645", "vzdump 777", &[]);
    d.example("vzdump.adoc:649", "vzdump 777 --mode suspend", &[]);
    d.setup("storectl vzdump 777");
    d.example("vzdump.adoc:358", "vzdump 777 --prune-backups keep-last=3,keep-daily=13,keep-yearly=9", &[]);
    let kept = d.json("storectl", &["backup", "list", "--vmid", "777"]);
    d.check(
        "vzdump.adoc:358",
        kept.as_array().is_some_and(|b| b.len() == 3),
        format!("of four backups today keep-last=3 keeps three (keep-daily and keep-yearly add none): {kept}"),
    );
    d.example("vzdump.adoc:616", "vzdump 777 --exclude-path /tmp/ --exclude-path '/var/foo*'", &[]);
    d.example("vzdump.adoc:630", "vzdump 777 --exclude-path bar", &[]);
    d.example("vzdump.adoc:660", "vzdump 777 --dumpdir /mnt/backup --mode snapshot", &[]);
    d.setup("cd $SCRATCH/backup && mv vzdump-lxc-777-*.tar* vzdump-lxc-777.tar.zst && zstd -q -d --rm vzdump-lxc-777.tar.zst");
    d.example("vzdump.adoc:672", "pct restore 600 /mnt/backup/vzdump-lxc-777.tar", &[]);
    d.check("vzdump.adoc:672", d.config("ctctl", "600").get("rootfs").is_some(), "CT 600 is restored");
    d.example("vzdump.adoc:664", "vzdump 101 102 103 --mailto root", &[]);
    let listed = d.json("storectl", &["backup", "list"]);
    for vmid in [101, 102, 103] {
        d.check(
            "vzdump.adoc:664",
            listed.as_array().is_some_and(|b| b.iter().any(|e| e["vmid"] == vmid)),
            format!("{vmid} is backed up"),
        );
    }
    d.example("vzdump.adoc:159", "vzdump 123 --fleecing enabled=1,storage=local-lvm", &[]);
    d.example("vzdump.adoc:668", "vzdump --mode suspend --exclude 101,102", &[]);
    d.example("vzdump.adoc:656", "vzdump --all --mode suspend --mailto root --mailto admin", &[]);
    d.setup("storectl vzdump 888 --dumpdir $SCRATCH/backup && cd $SCRATCH/backup && mv vzdump-qemu-888-*.vma* vzdump-qemu-888.vma.zst && zstd -q -d --rm vzdump-qemu-888.vma.zst");
    d.example("vzdump.adoc:676", "qmrestore /mnt/backup/vzdump-qemu-888.vma 601", &[]);
    d.check(
        "vzdump.adoc:676",
        d.config("vmctl", "601")["scsi0"].as_str().is_some_and(|v| v.contains("vm-601-disk")),
        "VM 601 is restored",
    );
    // Here 101 is a container, as the documentation's pipeline assumes.
    d.setup("vmctl destroy 101 && ctctl create 101 local:vztmpl/debian-10.0-standard_10.0-1_amd64.tar.gz");
    d.example("vzdump.adoc:681", "vzdump 101 --stdout | pct restore --rootfs 4 300 -", &[]);
    let config = d.config("ctctl", "300");
    d.check("vzdump.adoc:681", config["rootfs"].as_str().is_some_and(|v| v.contains("size=4G")), config.to_string());
}

/// pvenode.adoc: the node's tasks, guests and settings.
fn node(d: &mut Docs) {
    // The ids the node examples use for containers.
    d.setup("vmctl destroy 102 && vmctl destroy 103");
    d.example(
        "pvenode.adoc:87",
        "pvenode config set -wakeonlan XX:XX:XX:XX:XX:XX",
        &[("XX:XX:XX:XX:XX:XX", "52:54:00:12:34:56")],
    );
    d.example(
        "pvenode.adoc:95",
        "pvenode config set -wakeonlan XX:XX:XX:XX:XX:XX,bind-interface=<iface-name>",
        &[("XX:XX:XX:XX:XX:XX", "52:54:00:12:34:56"), ("<iface-name>", "lo")],
    );
    d.example(
        "pvenode.adoc:103",
        "pvenode config set -wakeonlan XX:XX:XX:XX:XX:XX,broadcast-address=<broadcast-address>",
        &[("XX:XX:XX:XX:XX:XX", "52:54:00:12:34:56"), ("<broadcast-address>", "127.255.255.255")],
    );
    d.example("pvenode.adoc:205", "pvenode config set --ballooning-target 90", &[]);
    let config = d.setup("clusterctl node config get");
    d.check(
        "pvenode.adoc:205",
        config.contains("ballooning-target: 90") && config.contains("52:54:00:12:34:56"),
        &config,
    );
    for ctid in ["100", "102"] {
        d.setup(&format!("ctctl create {ctid} local:vztmpl/debian-10.0-standard_10.0-1_amd64.tar.gz"));
    }
    d.example("pvenode.adoc:144", "pvenode startall --vms 100,101,102 --force", &[]);
    for ctid in ["100", "101", "102"] {
        let status = d.json("ctctl", &["status", ctid])["status"].clone();
        d.check("pvenode.adoc:144", status == "running", format!("CT {ctid}: {status}"));
    }
    d.example("pvenode.adoc:151", "pvenode stopall", &[]);
    for ctid in ["100", "101", "102"] {
        let status = d.json("ctctl", &["status", ctid])["status"].clone();
        d.check("pvenode.adoc:151", status == "stopped", format!("CT {ctid}: {status}"));
    }
    d.example("pvenode.adoc:174", "pvenode config set --startall-onboot-delay 10", &[]);
    // A start that fails: a hookscript refusing pre-start.
    d.setup("printf '#!/bin/sh\\ntest \"$2\" != pre-start\\n' > $NODE_ROOT/var/lib/hearth/snippets/refuse.sh && chmod 755 $NODE_ROOT/var/lib/hearth/snippets/refuse.sh");
    d.setup("ctctl set 100 --hookscript local:snippets/refuse.sh && ! ctctl start 100");
    d.example("pvenode.adoc:118", "pvenode task list --errors --vmid 100", &[]);
    let tasks = d.json("clusterctl", &["node", "task", "list", "--errors", "--vmid", "100"]);
    let listed = tasks.as_array().cloned().unwrap_or_default();
    d.check(
        "pvenode.adoc:118",
        !listed.is_empty() && listed.iter().all(|t| t["status"] != "OK" && t["id"] == "100"),
        format!("only CT 100's failed tasks: {tasks}"),
    );
    let upid = d.json("clusterctl", &["task", "list"])[0]["upid"].as_str().unwrap_or_default().to_owned();
    d.example(
        "pvenode.adoc:124",
        "pvenode task log UPID:pve1:00010D94:001CA6EA:6124E1B9:vzdump:100:root@pam:",
        &[("UPID:pve1:00010D94:001CA6EA:6124E1B9:vzdump:100:root@pam:", &upid)],
    );
}

#[test]
fn documented_examples_work_as_typed() {
    let mut d = Docs::new();
    storage(&mut d);
    access(&mut d);
    vms(&mut d);
    cloud_init(&mut d);
    containers(&mut d);
    backups(&mut d);
    node(&mut d);
    d.finish();
}
