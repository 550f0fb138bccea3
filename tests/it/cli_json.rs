//! Every command of every CLI with `--output-format json`, against a real hearthd: what it
//! prints must parse as JSON, or be nothing at all for the commands listed in [`QUIET`]. The
//! commands come from the CLIs' own clap trees, so a new subcommand fails this test until the
//! scenario below runs it or [`NOT_RUN`] says why it cannot.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::Stdio;

use hearth_test::HearthdProcess;
use serde_json::Value;

use crate::ct::ctid;
use crate::template;

/// Commands that print nothing when they succeed: the exit status is their whole answer.
const QUIET: &[&str] = &[
    "ctctl pull",
    "ctctl push",
    "ctctl unlock",
    "ctctl unmount",
    "clusterctl node config set",
    "storectl backup extract",
    "storectl backup job add",
    "storectl backup job remove",
    // Prints the outcome of each job it started, one JSON document per line; here none is due.
    "storectl backup job run-due",
    "storectl backup job set",
    "storectl backup protect",
    "vmctl cleanup",
    "vmctl cloudinit update",
    "vmctl unlock",
    // Returns at once for a stopped VM; it says what it waits for only on a terminal's text.
    "vmctl wait",
];

/// Commands the scenario does not run, and why.
const NOT_RUN: &[(&str, &str)] = &[
    // Interactive: they hand the caller a terminal, and print what the guest prints.
    ("ctctl console", "attaches to the container's console"),
    ("ctctl enter", "runs a login shell in the container"),
    ("ctctl exec", "prints the program's own output"),
    ("vmctl terminal", "attaches to the VM's serial port"),
    // They need a running VM, which needs a booted guest (tests/it/vm.rs runs them).
    ("vmctl start", "boots QEMU"),
    ("vmctl stop", "needs a running VM"),
    ("vmctl shutdown", "needs a running VM whose guest answers ACPI"),
    ("vmctl reboot", "needs a running VM whose guest answers ACPI"),
    ("vmctl suspend", "needs a running VM"),
    ("vmctl resume", "needs a suspended VM"),
    ("vmctl monitor", "needs a running VM's QEMU monitor"),
    ("clusterctl task stop", "needs a task that is still running"),
    ("userctl realm sync", "always refused: Hearth syncs from no directory server (tests/it/pveum.rs checks why)"),
    ("clusterctl node task stop", "needs a task that is still running"),
    ("vmctl reset", "needs a running VM"),
    ("vmctl sendkey", "needs a running VM"),
    // The guest agent answers only in a booted guest (tests/it/vm_extras.rs runs them).
    ("vmctl guest cmd", "needs a guest agent"),
    ("vmctl guest exec", "needs a guest agent"),
    ("vmctl guest exec-status", "needs a guest agent"),
    ("vmctl guest passwd", "needs a guest agent"),
    // What the host lacks here (tests/it/storage_scan.rs checks their errors).
    ("storectl scan lvmthin", "needs a volume group"),
    ("storectl scan zfs", "needs ZFS"),
    ("storectl scan nfs", "not supported yet"),
    ("storectl scan cifs", "not supported yet"),
    ("storectl scan iscsi", "not supported yet"),
    ("storectl scan pbs", "not supported yet"),
];

/// Every leaf command of `command`, as `program sub sub`.
fn leaves(command: &clap::Command, prefix: &str, out: &mut BTreeSet<String>) {
    let name = format!("{prefix}{}", command.get_name());
    let subcommands: Vec<&clap::Command> = command.get_subcommands().filter(|c| c.get_name() != "help").collect();
    if subcommands.is_empty() {
        out.insert(name.clone());
    }
    for sub in subcommands {
        leaves(sub, &format!("{name} "), out);
    }
}

/// Runs commands against one hearthd and remembers which it ran.
struct Scenario<'a> {
    daemon: &'a HearthdProcess,
    ran: BTreeSet<String>,
    /// Commands whose output was not what it should be, reported together at the end.
    wrong: Vec<String>,
}

impl Scenario<'_> {
    /// Runs `path args… --output-format json` with `stdin` as its input; answers its stdout,
    /// failing on a non-zero exit.
    fn run(&mut self, path: &str, args: &[&str], stdin: Option<&str>) -> String {
        let mut words = path.split(' ');
        let program = words.next().expect("a program");
        let mut command = self.daemon.command(program);
        command.args(words).args(args).args(["--output-format", "json"]);
        command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("running the CLI");
        if let Some(input) = stdin {
            child.stdin.take().expect("piped").write_all(input.as_bytes()).expect("writing stdin");
        }
        let out = child.wait_with_output().expect("waiting for the CLI");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{path} {args:?} failed ({}): {}{stdout}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        self.ran.insert(path.to_owned());
        stdout
    }

    /// A command that prints JSON; answers it parsed (`null` when it was not JSON).
    fn json(&mut self, path: &str, args: &[&str]) -> Value {
        assert!(!QUIET.contains(&path), "{path} is listed as quiet");
        let stdout = self.run(path, args, None);
        self.parse(path, args, &stdout)
    }

    /// `stdout` of `path args…` parsed (`null` when it was not JSON).
    fn parse(&mut self, path: &str, args: &[&str], stdout: &str) -> Value {
        serde_json::from_str(stdout).unwrap_or_else(|e| {
            self.wrong.push(format!("{path} {args:?} printed no JSON ({e}): {stdout:?}"));
            Value::Null
        })
    }

    /// A command of [`QUIET`].
    fn quiet(&mut self, path: &str, args: &[&str]) {
        assert!(QUIET.contains(&path), "{path} is not listed as quiet");
        let stdout = self.run(path, args, None);
        if !stdout.is_empty() {
            self.wrong.push(format!("{path} {args:?} is listed as quiet but printed {stdout:?}"));
        }
    }
}

/// The volume id of the newest backup of `vmid` on `storage`.
fn backup_of(scenario: &mut Scenario<'_>, storage: &str, vmid: &str) -> String {
    let list = scenario.json("storectl backup list", &["--storage", storage, "--vmid", vmid]);
    let entries = list.as_array().expect("a list of backups");
    let entry = entries.last().unwrap_or_else(|| panic!("no backup of {vmid} on {storage}: {list}"));
    entry["volid"].as_str().expect("volid").to_owned()
}

#[test]
fn every_command_prints_json_or_nothing() {
    let mut commands = BTreeSet::new();
    for command in [vmctl::command(), ctctl::command(), storectl::command(), userctl::command(), clusterctl::command()]
    {
        leaves(&command, "", &mut commands);
    }
    let not_run: BTreeSet<String> = NOT_RUN.iter().map(|(path, _)| (*path).to_owned()).collect();
    let listed: BTreeSet<String> = QUIET.iter().map(|p| (*p).to_owned()).chain(not_run.iter().cloned()).collect();
    let unknown: Vec<&String> = listed.difference(&commands).collect();
    assert!(unknown.is_empty(), "QUIET and NOT_RUN name commands the CLIs do not have: {unknown:?}");

    let btrfs = hearth_test::BtrfsLoop::new(2 << 30).expect("a btrfs loop mount (install btrfs-progs)");
    let files = tempfile::tempdir().expect("tempdir");
    let chunks = files.path().join("chunks");
    for dir in [&chunks, &files.path().join("spare")] {
        std::fs::create_dir(dir).expect("a storage directory");
    }
    let daemon = HearthdProcess::start();
    let mut s = Scenario { daemon: &daemon, ran: BTreeSet::new(), wrong: Vec::new() };
    let file = |name: &str| files.path().join(name).to_str().expect("UTF-8 path").to_owned();

    // Storages: btrfs for snapshots, a chunk store for file-level backups, one to remove.
    let fast = btrfs.path().to_str().expect("UTF-8 path");
    s.json("storectl add", &["btrfs", "fast", "--path", fast, "--content", "images,rootdir"]);
    s.json("storectl add", &["chunkstore", "pbs", "--path", chunks.to_str().expect("UTF-8 path")]);
    s.json("storectl add", &["dir", "spare", "--path", &file("spare"), "--content", "images"]);
    s.json("storectl set", &["spare", "--comment", "to be removed"]);
    s.json("storectl config", &[]);
    s.json("storectl config", &["spare"]);
    s.json("storectl status", &[]);
    std::fs::write(file("small.iso"), b"not really an ISO image").expect("write");
    s.json("storectl upload", &["local", &file("small.iso"), "--content", "iso"]);
    s.json("storectl list", &["local"]);

    // Virtual machines, never started.
    s.json("vmctl nextid", &[]);
    s.json("vmctl create", &["100", "--name", "web", "--memory", "256", "--scsi0", "fast:1"]);
    s.json("vmctl list", &[]);
    s.json("vmctl config", &["100"]);
    s.json("vmctl set", &["100", "--memory", "512"]);
    s.json("vmctl pending", &["100"]);
    s.json("vmctl status", &["100"]);
    s.json("vmctl showcmd", &["100"]);
    s.json("vmctl resize", &["100", "scsi0", "+1M"]);
    s.json("vmctl disk resize", &["100", "scsi0", "+1M"]);
    s.json("vmctl snapshot", &["100", "first"]);
    s.json("vmctl listsnapshot", &["100"]);
    s.json("vmctl rollback", &["100", "first"]);
    s.json("vmctl delsnapshot", &["100", "first"]);
    s.json("vmctl disk move", &["100", "scsi0", "local"]);
    s.json("vmctl move-disk", &["100", "scsi0", "fast"]);
    std::fs::write(file("disk.raw"), vec![0u8; 1 << 20]).expect("write");
    s.json("vmctl disk import", &["100", &file("disk.raw"), "local"]);
    s.json("vmctl importdisk", &["100", &file("disk.raw"), "local"]);
    s.json("vmctl disk unlink", &["100", "--idlist", "unused0"]);
    s.json("vmctl unlink", &["100", "--idlist", "unused1"]);
    s.json("vmctl disk rescan", &["--vmid", "100", "--dryrun"]);
    s.json("vmctl rescan", &["--vmid", "100", "--dryrun"]);
    s.quiet("vmctl wait", &["100"]);
    let ovf = "<Envelope xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\"><References><File id=\"f\" href=\"disk.raw\"/>\
               </References><DiskSection><Disk diskId=\"d\" fileRef=\"f\"/></DiskSection><VirtualSystem id=\"x\">\
               <VirtualHardwareSection><Item><HostResource>ovf:/disk/d</HostResource><ResourceType>17</ResourceType>\
               </Item></VirtualHardwareSection></VirtualSystem></Envelope>";
    std::fs::write(file("x.ovf"), ovf).expect("write");
    s.json("vmctl importovf", &["103", &file("x.ovf"), "local", "--dryrun"]);
    s.quiet("vmctl cleanup", &["100"]);
    s.quiet("vmctl unlock", &["100"]);
    s.json("storectl alloc", &["local", "100", "vm-100-disk-9.raw", "1M", "--format", "raw"]);
    s.json("storectl path", &["local:100/vm-100-disk-9.raw"]);
    s.json("storectl export", &["local:100/vm-100-disk-9.raw", "raw+size", &file("export.raw")]);
    s.json("storectl import", &["spare:100/vm-100-disk-8.raw", "raw+size", &file("export.raw")]);
    s.json("storectl free", &["spare:100/vm-100-disk-8.raw"]);
    s.json("storectl remove", &["spare"]);
    s.json("vmctl clone", &["100", "101", "--full", "--name", "copy"]);
    s.json("vmctl template", &["101"]);
    s.json("vmctl backup", &["100", "--storage", "local"]);
    let vm_backup = backup_of(&mut s, "local", "100");
    s.json("storectl extractconfig", &[&vm_backup]);
    s.json("vmctl restore", &["102", &vm_backup, "--storage", "fast"]);
    s.json("vmctl destroy", &["102"]);
    s.json("vmctl create", &["103", "--memory", "64", "--ide2", "local:cloudinit", "--ciuser", "web"]);
    s.json("vmctl cloudinit dump", &["103", "user"]);
    s.json("vmctl cloudinit pending", &["103"]);
    s.quiet("vmctl cloudinit update", &["103"]);
    s.json("vmctl destroy", &["103"]);

    // A container through its life.
    let ct = ctid(30);
    let template = template(&daemon);
    s.json(
        "ctctl create",
        &[&ct, &template, "--rootfs", "fast:1", "--hostname", "box", "--memory", "64", "--swap", "0"],
    );
    s.json("ctctl list", &[]);
    s.json("ctctl config", &[&ct]);
    s.json("ctctl set", &[&ct, "--memory", "96"]);
    s.json("ctctl pending", &[&ct]);
    s.json("ctctl resize", &[&ct, "rootfs", "+16M"]);
    s.json("ctctl mount", &[&ct]);
    s.quiet("ctctl unmount", &[&ct]);
    s.json("ctctl start", &[&ct]);
    s.json("ctctl status", &[&ct, "--verbose"]);
    s.json("ctctl df", &[&ct]);
    std::fs::write(file("pushed"), b"pushed\n").expect("write");
    s.quiet("ctctl push", &[&ct, &file("pushed"), "/root/pushed"]);
    s.quiet("ctctl pull", &[&ct, "/root/pushed", &file("pulled")]);
    s.json("ctctl reboot", &[&ct]);
    s.json("ctctl shutdown", &[&ct, "--timeout", "20"]);
    s.json("ctctl start", &[&ct]);
    s.json("ctctl cpusets", &[]);
    s.json("ctctl stop", &[&ct]);
    s.json("ctctl move-volume", &[&ct, "rootfs", "local"]);
    s.json("ctctl move-volume", &[&ct, "rootfs", "fast", "--delete"]);
    s.json("ctctl snapshot", &[&ct, "first"]);
    s.json("ctctl listsnapshot", &[&ct]);
    s.json("ctctl rollback", &[&ct, "first"]);
    s.json("ctctl delsnapshot", &[&ct, "first"]);
    s.quiet("ctctl unlock", &[&ct]);
    s.json("ctctl backup", &[&ct, "--storage", "pbs"]);
    let ct_backup = backup_of(&mut s, "pbs", &ct);
    let restored = ctid(31);
    s.json("ctctl restore", &[&restored, &ct_backup, "--storage", "fast"]);
    s.json("ctctl destroy", &[&restored]);
    let copy = ctid(32);
    s.json("ctctl clone", &[&ct, &copy, "--full", "--hostname", "copy"]);
    // Container subvolumes on btrfs cannot become base images; a raw image on dir can.
    let base = ctid(33);
    s.json("ctctl create", &[&base, &template, "--rootfs", "local:1", "--hostname", "base", "--memory", "64"]);
    s.json("ctctl template", &[&base]);

    // Backups.
    s.json("storectl backup run", &["--vmid", &ct, "--storage", "pbs"]);
    s.json("storectl vzdump", &[&ct, "--storage", "pbs"]);
    s.json("storectl backup list", &[]);
    s.json("storectl backup ls", &[&ct_backup, "/etc"]);
    s.quiet("storectl backup extract", &[&ct_backup, "/etc/hostname", "--to", &file("extracted")]);
    s.quiet("storectl backup protect", &[&ct_backup]);
    s.quiet("storectl backup protect", &[&ct_backup, "--off"]);
    s.json("storectl backup verify", &["pbs"]);
    s.json("storectl backup prune", &["pbs", "--keep-last", "1", "--dry-run"]);
    s.json("storectl backup gc", &["pbs"]);
    s.quiet("storectl backup job add", &["nightly", "--schedule", "02:00", "--vmid", &ct, "--storage", "pbs"]);
    s.quiet("storectl backup job set", &["nightly", "--schedule", "03:00", "--vmid", &ct, "--storage", "pbs"]);
    s.json("storectl backup job list", &[]);
    s.json("storectl backup job run", &["nightly"]);
    s.quiet("storectl backup job run-due", &[]);
    s.quiet("storectl backup job remove", &["nightly"]);

    // The node and its tasks.
    s.json("clusterctl node startall", &[]);
    s.json("clusterctl node stopall", &["--timeout", "20"]);
    let tasks = s.json("clusterctl task list", &[]);
    let upid = tasks[0]["upid"].as_str().unwrap_or_else(|| panic!("a task: {tasks}")).to_owned();
    s.json("clusterctl task status", &[&upid]);
    s.json("clusterctl task log", &[&upid]);
    s.json("clusterctl node task list", &["--limit", "2"]);
    s.json("clusterctl node task status", &[&upid]);
    s.json("clusterctl node task log", &[&upid]);
    s.quiet("clusterctl node config set", &["--startall-onboot-delay", "0", "--description", "test node"]);
    s.json("clusterctl node config get", &[]);
    // Another node's settings, as a cluster holds them; the packet goes to loopback.
    let peer = daemon.root().join("etc/hearth/nodes/peer");
    std::fs::create_dir_all(&peer).expect("mkdir");
    std::fs::write(peer.join("config.toml"), "wakeonlan = \"52:54:00:00:00:01,broadcast-address=127.0.0.1\"\n")
        .expect("write");
    s.json("clusterctl node wakeonlan", &["peer"]);
    s.json("storectl scan lvm", &[]);

    // Users and permissions.
    s.json("userctl group add", &["ops", "--comment", "operators"]);
    s.json("userctl group modify", &["ops", "--comment", "the operators"]);
    s.json("userctl group list", &[]);
    s.json("userctl user add", &["alice@pve", "--groups", "ops", "--email", "alice@example.invalid"]);
    s.json("userctl user modify", &["alice@pve", "--firstname", "Alice"]);
    s.json("userctl user list", &[]);
    let password = s.run("userctl passwd", &["alice@pve"], Some("correct horse battery staple\n"));
    s.parse("userctl passwd", &[], &password);
    s.json("userctl role add", &["Watcher", "--privs", "VM.Audit"]);
    s.json("userctl role modify", &["Watcher", "--privs", "Datastore.Audit", "--append"]);
    s.json("userctl role list", &[]);
    s.json("userctl acl modify", &["/vms/100", "--roles", "Watcher", "--groups", "ops"]);
    s.json("userctl acl list", &[]);
    s.json("userctl user permissions", &["alice@pve"]);
    s.json("userctl pool add", &["web", "--vms", "100", "--comment", "web servers"]);
    s.json("userctl pool modify", &["web", "--storage", "local"]);
    s.json("userctl pool list", &[]);
    s.json("userctl token add", &["alice@pve", "ci", "--comment", "deployments"]);
    s.json("userctl token modify", &["alice@pve", "ci", "--privsep", "0"]);
    s.json("userctl token list", &["alice@pve"]);
    s.json("userctl token permissions", &["alice@pve", "ci"]);
    s.json("userctl token remove", &["alice@pve", "ci"]);
    s.json("userctl tfa add", &["alice@pve", "--type", "recovery"]);
    s.json("userctl tfa list", &["alice@pve"]);
    s.json("userctl tfa delete", &["alice@pve", "recovery"]);
    // The same under `user`, as pveum has them, and pveum's one-word aliases.
    s.json("userctl user token add", &["alice@pve", "cd", "--privsep", "1"]);
    s.json("userctl user token modify", &["alice@pve", "cd", "--comment", "delivery"]);
    s.json("userctl user token list", &["alice@pve"]);
    s.json("userctl user token permissions", &["alice@pve", "cd"]);
    s.json("userctl user token remove", &["alice@pve", "cd"]);
    s.json("userctl user tfa add", &["alice@pve", "--type", "totp"]);
    s.json("userctl user tfa list", &["alice@pve"]);
    s.json("userctl user tfa unlock", &["alice@pve"]);
    s.json("userctl tfa unlock", &["alice@pve"]);
    s.json("userctl user tfa delete", &["alice@pve"]);
    s.json("userctl useradd", &["bob@pve", "--comment", "old style"]);
    s.json("userctl usermod", &["bob@pve", "--comment", "still old style"]);
    s.json("userctl groupadd", &["devs"]);
    s.json("userctl groupmod", &["devs", "--comment", "developers"]);
    s.json("userctl roleadd", &["Starter", "--privs", "VM.PowerMgmt VM.Console"]);
    s.json("userctl rolemod", &["Starter", "--privs", "VM.Audit", "--append"]);
    s.json("userctl aclmod", &["/vms/100", "--roles", "Starter", "--groups", "devs"]);
    s.json("userctl acldel", &["/vms/100", "--roles", "Starter", "--groups", "devs"]);
    s.json("userctl acl modify", &["/vms", "--roles", "Starter", "--users", "bob@pve"]);
    s.json("userctl acl delete", &["/vms", "--roles", "Starter", "--users", "bob@pve"]);
    s.json("userctl roledel", &["Starter"]);
    s.json("userctl groupdel", &["devs"]);
    s.json("userctl userdel", &["bob@pve"]);
    s.json(
        "userctl realm add",
        &[
            "corp",
            "--type",
            "openid",
            "--issuer-url",
            "https://id.example",
            "--client-id",
            "hearth",
            "--client-key",
            "k",
        ],
    );
    s.json("userctl realm modify", &["corp", "--comment", "Corporate", "--delete", "client-key"]);
    s.json("userctl realm list", &[]);
    s.json("userctl realm delete", &["corp"]);
    s.json("userctl pool modify", &["web", "--vms", "100", "--storage", "local", "--delete"]);
    s.json("userctl pool delete", &["web"]);
    s.json("userctl acl modify", &["/vms/100", "--roles", "Watcher", "--groups", "ops", "--delete"]);
    s.json("userctl role delete", &["Watcher"]);
    s.json("userctl user delete", &["alice@pve"]);
    s.json("userctl group delete", &["ops"]);

    // Last, what removes the rest.
    s.json("ctctl destroy", &[&base]);
    s.json("ctctl destroy", &[&copy]);
    s.json("ctctl destroy", &[&ct]);
    s.json("vmctl destroy", &["101"]);
    s.json("vmctl destroy", &["100"]);

    assert!(s.wrong.is_empty(), "wrong output with --output-format json:\n{}", s.wrong.join("\n"));
    let missing: Vec<&String> = commands.iter().filter(|c| !s.ran.contains(*c) && !not_run.contains(*c)).collect();
    assert!(
        missing.is_empty(),
        "commands without a JSON case in tests/it/cli_json.rs (run them or list them in NOT_RUN): {missing:?}"
    );
}
