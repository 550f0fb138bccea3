//! `cargo xtask demo`: starts hearthd on a temporary root and walks through the CLIs, printing
//! each command line before its output like a shell transcript.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context, bail};

use crate::node::Node;
use crate::{Profile, build_binaries, display_command};

/// The node name of the demo's hearthd.
const NODE: &str = "demo";

pub fn run(root: &Path) -> anyhow::Result<()> {
    // The demo boots a guest (Debian's kernel with the test initramfs) and a busybox container.
    crate::fixtures::run()?;
    let binaries = build_binaries(root, Profile::Debug)?;
    let node = Node::start(&binaries["hearthd"], NODE)?;
    let session = Session { binaries: &binaries, node: &node };
    println!("$ hearthd --root {} --node {NODE} &", node.root().display());
    println!("$ export HEARTH_ROOT={}", node.root().display());
    match session.walk_through() {
        Ok(()) => {
            let status = node.stop()?;
            println!("\nhearthd stopped after SIGTERM ({status}); the temporary root is removed");
            Ok(())
        }
        Err(e) => {
            eprintln!("\nhearthd's log so far:\n{}", node.log_text());
            Err(e)
        }
    }
}

/// The demo's clients, all pointed at one node.
struct Session<'a> {
    binaries: &'a BTreeMap<String, PathBuf>,
    node: &'a Node,
}

impl Session<'_> {
    fn walk_through(&self) -> anyhow::Result<()> {
        let nextid = self.show("vmctl", &["nextid"])?;
        let web: u32 =
            nextid.trim().parse().with_context(|| format!("`vmctl nextid` printed {:?}, not a VMID", nextid.trim()))?;
        let (web, db, proxy, busybox) =
            (web.to_string(), (web + 1).to_string(), (web + 2).to_string(), (web + 3).to_string());

        self.show(
            "vmctl",
            &[
                "create",
                &web,
                "--name",
                "web01",
                "--memory",
                "2048",
                "--cores",
                "2",
                "--net0",
                "virtio,bridge=vmbr0,firewall=1",
                "--ostype",
                "l26",
                "--tags",
                "prod;web",
            ],
        )?;
        self.show("vmctl", &["create", &db, "--name", "db01", "--memory", "4096"])?;
        // Containers are made from a template on a storage: the busybox fixture.
        let template = hearth_test::fixtures::busybox_template();
        let file = template.to_str().context("the fixtures path is UTF-8")?;
        self.show("storectl", &["upload", "local", file, "--content", "vztmpl"])?;
        let volid = format!("local:vztmpl/{}", hearth_test::fixtures::BUSYBOX_TEMPLATE);
        self.show(
            "ctctl",
            &[
                "create",
                &proxy,
                &volid,
                "--rootfs",
                "local:0",
                "--hostname",
                "proxy",
                "--memory",
                "512",
                "--net0",
                "name=eth0,bridge=vmbr0,ip=10.0.0.5/24,gw=10.0.0.1",
            ],
        )?;
        self.show("vmctl", &["list"])?;
        self.show("ctctl", &["list"])?;
        self.show("vmctl", &["set", &web, "--memory", "4096", "--delete", "tags"])?;
        self.show("vmctl", &["config", &web])?;
        self.show("vmctl", &["config", &web, "--output-format", "json-pretty"])?;
        self.show("clusterctl", &["task", "list"])?;
        let upid = self.create_task_of(&web)?;
        self.show("clusterctl", &["task", "log", &upid])?;
        self.show("vmctl", &["destroy", &db])?;
        self.show("vmctl", &["list"])?;
        self.run_a_container(&busybox, &volid)?;
        self.boot_a_guest(&db)
    }

    /// Creates a container from the template `volid` (no network), starts it, runs commands in
    /// it, stops and destroys it. A container left running would outlive hearthd, so a failure
    /// after the start stops it before reporting.
    fn run_a_container(&self, ctid: &str, volid: &str) -> anyhow::Result<()> {
        self.show("ctctl", &["create", ctid, volid, "--rootfs", "local:0", "--hostname", "box", "--memory", "64"])?;
        self.show("ctctl", &["start", ctid])?;
        let running = (|| {
            self.show("ctctl", &["status", ctid])?;
            self.show("ctctl", &["exec", ctid, "--", "uname", "-a"])?;
            self.show("ctctl", &["exec", ctid, "--", "sh", "-c", "hostname; id; ls /"])?;
            self.show("ctctl", &["stop", ctid])
        })();
        if let Err(e) = running {
            let _ = self.quiet("ctctl", &["stop", ctid]);
            return Err(e);
        }
        self.show("ctctl", &["destroy", ctid])?;
        self.show("ctctl", &["list"])?;
        Ok(())
    }

    /// Creates a VM with a disk on `local`, boots Debian's kernel in it under TCG, talks to it
    /// on its serial console, and powers it off through ACPI.
    fn boot_a_guest(&self, vmid: &str) -> anyhow::Result<()> {
        let fixtures = crate::project_root().join("target/fixtures");
        let args = format!(
            "-kernel {} -initrd {} -append 'console=ttyS0 panic=-1 quiet'",
            fixtures.join("vmlinux").display(),
            fixtures.join("initramfs.cpio").display()
        );
        self.show(
            "vmctl",
            &[
                "create",
                vmid,
                "--name",
                "tiny",
                "--memory",
                "256",
                "--kvm",
                "0",
                "--serial0",
                "socket",
                "--virtio0",
                "local:0.0625",
                "--args",
                &args,
            ],
        )?;
        self.show("vmctl", &["start", vmid])?;
        self.show("vmctl", &["status", vmid, "--verbose"])?;
        let typed = "uname -sr; cat /sys/block/vda/size; echo demo-$((1+1))-done";
        println!("\n$ printf '{typed}\\n' | vmctl terminal {vmid}");
        let serial = self.serial_session(vmid, &format!("{typed}\n"), "demo-2-done")?;
        print!("{serial}");
        self.show("vmctl", &["shutdown", vmid, "--timeout", "60", "--forceStop", "1"])?;
        self.show("vmctl", &["list"])?;
        Ok(())
    }

    /// Types `input` on the VM's serial console once it is ready and returns what it printed
    /// up to `until`.
    fn serial_session(&self, vmid: &str, input: &str, until: &str) -> anyhow::Result<String> {
        use std::io::Read;
        let path = self.binaries.get("vmctl").context("vmctl was not built")?;
        let mut child = Command::new(path)
            .args(["terminal", vmid])
            .env("HEARTH_ROOT", self.node.root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot run vmctl terminal")?;
        let mut stdin = child.stdin.take().context("no stdin")?;
        let mut stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
        let mut seen = String::new();
        let mut typed = false;
        let mut probed = std::time::Instant::now() - std::time::Duration::from_secs(10);
        let result = loop {
            // What the guest printed before the console was attached is lost, the boot marker
            // too; a probe line every few seconds finds out when its shell answers.
            if !typed && probed.elapsed() >= std::time::Duration::from_secs(3) {
                stdin.write_all(b"echo hearth-console-$((6*7))\n").context("typing on the console")?;
                probed = std::time::Instant::now();
            }
            if !typed && seen.contains("hearth-console-42") {
                stdin.write_all(input.as_bytes()).context("typing on the console")?;
                typed = true;
            }
            // The typed line echoes `$((1+1))`; only the guest's answer holds `until`.
            if typed && seen.contains(until) {
                // The transcript starts after the probe's answer.
                let start = seen.rfind("hearth-console-42").map_or(0, |at| at + "hearth-console-42".len());
                break Ok(seen[start..].trim_start_matches(['\r', '\n']).to_owned());
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left.min(std::time::Duration::from_secs(1))) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) if !left.is_zero() => {}
                Ok(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => break Err(anyhow::anyhow!("the guest did not answer on its console:\n{seen}")),
            }
        };
        let _ = child.kill();
        let _ = child.wait();
        // Terminal control sequences of the guest's shell are not for the transcript.
        result.map(|text| text.replace("\u{1b}[6n", "").replace('\r', ""))
    }

    /// Runs a client and returns its output without printing it.
    fn quiet(&self, program: &str, args: &[&str]) -> anyhow::Result<String> {
        let output = self.output(program, args)?;
        if !output.status.success() {
            bail!(
                "`{}` failed ({}):\n{}",
                display_command(program, args),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        String::from_utf8(output.stdout)
            .with_context(|| format!("`{}` printed invalid UTF-8", display_command(program, args)))
    }

    /// Prints the command line, runs it, prints what it printed and returns its standard output.
    fn show(&self, program: &str, args: &[&str]) -> anyhow::Result<String> {
        println!("\n$ {}", display_command(program, args));
        let output = self.output(program, args)?;
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&output.stdout).context("cannot write to stdout")?;
        stdout.flush().context("cannot write to stdout")?;
        drop(stdout);
        std::io::stderr().write_all(&output.stderr).context("cannot write to stderr")?;
        if !output.status.success() {
            bail!("`{}` failed ({})", display_command(program, args), output.status);
        }
        String::from_utf8(output.stdout)
            .with_context(|| format!("`{}` printed invalid UTF-8", display_command(program, args)))
    }

    fn output(&self, program: &str, args: &[&str]) -> anyhow::Result<Output> {
        let path = self.binaries.get(program).with_context(|| format!("{program} was not built"))?;
        Command::new(path)
            .args(args)
            .env("HEARTH_ROOT", self.node.root())
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", path.display()))
    }

    /// The UPID of the task that created guest `vmid`, from `clusterctl task list`'s JSON.
    fn create_task_of(&self, vmid: &str) -> anyhow::Result<String> {
        let json = self.quiet("clusterctl", &["task", "list", "--output-format", "json"])?;
        let tasks: serde_json::Value =
            serde_json::from_str(&json).context("`clusterctl task list --output-format json` printed invalid JSON")?;
        find_upid(&tasks, &format!(":qmcreate:{vmid}:"))
            .with_context(|| format!("no qmcreate task for {vmid} in `clusterctl task list --output-format json`"))
    }
}

/// The first `upid` string anywhere in `value` that contains `needle`. UPIDs name the task type
/// and id (`UPID:node:pid:pstart:start:qmcreate:100:root@pam:`), so this does not depend on
/// how the list is wrapped.
fn find_upid(value: &serde_json::Value, needle: &str) -> Option<String> {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(upid) = map.get("upid").and_then(|u| u.as_str()).filter(|u| u.contains(needle)) {
                return Some(upid.to_owned());
            }
            map.values().find_map(|v| find_upid(v, needle))
        }
        serde_json::Value::Array(items) => items.iter().find_map(|v| find_upid(v, needle)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_create_task() {
        let list = serde_json::json!([
            {"upid": "UPID:demo:0000002A:00000001:65000002:qmdestroy:101:root@pam:", "type": "qmdestroy"},
            {"upid": "UPID:demo:0000002A:00000001:65000001:qmcreate:101:root@pam:", "type": "qmcreate"},
            {"upid": "UPID:demo:0000002A:00000001:65000000:qmcreate:100:root@pam:", "type": "qmcreate"},
        ]);
        assert_eq!(
            find_upid(&list, ":qmcreate:100:").as_deref(),
            Some("UPID:demo:0000002A:00000001:65000000:qmcreate:100:root@pam:")
        );
        assert_eq!(find_upid(&list, ":qmcreate:102:"), None);
    }
}
