//! Test support: a temporary node root with a real hearthd serving it, either as its own
//! process (for crash and restart tests, and for running the CLIs against it) or inside the
//! test process (to reach the daemon's library API, e.g. to start a task).
//!
//! [`BtrfsLoop`] (from hearth-testfs, re-exported) gives storage tests a throwaway btrfs
//! filesystem on a loop device.
//!
//! [`in_test_host`] runs a script in the kernel-complete test host: Debian's kernel under QEMU
//! TCG over this machine's root file system, for what this machine's kernel lacks (VLANs,
//! bonding, device-mapper, softdog; see [`testhost`]).
//!
//! Binaries are taken from the workspace's target directory; `cargo xtask test` builds them
//! first. A missing binary fails the test with the command that builds it.

pub mod fixtures;
pub mod testhost;

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_client::Client;
use hearthd::Daemon;

pub use hearth_testfs::BtrfsLoop;
pub use testhost::{TestHost, TestHostOutput, in_test_host};

/// The directory holding the workspace's binaries for the current profile.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    // target/<profile>/deps/<test-binary>
    let dir = exe.parent().and_then(Path::parent).expect("test binaries live in target/<profile>/deps");
    dir.to_owned()
}

/// The path of a workspace binary, built beforehand.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` (cargo xtask test does)",
        path.display()
    );
    path
}

/// Fails unless the test runs as root; `why` names what root is needed for. Tests never pass
/// without having run: `cargo xtask test` runs them as root.
pub fn require_root(why: &str) {
    assert!(nix::unistd::geteuid().is_root(), "needs root ({why}): run `cargo xtask test` as root");
}

/// Fails unless `program` is on the `PATH`; `package` is the Debian package that has it.
pub fn require_tool(program: &str, package: &str) {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    let found = std::env::split_paths(&path).any(|dir| dir.join(program).is_file());
    assert!(found, "needs {program}: install {package} (`cargo xtask test` installs it)");
}

/// A fresh node root in a temporary directory, traversable by every user so tests can also
/// connect as an unprivileged uid.
pub fn temp_root() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("hearth-test-").tempdir().expect("creating a temporary directory");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod of the test root");
    dir
}

fn wait_for_socket(root: &Path, alive: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if Client::connect(root, "hearth-test").is_ok() {
            return;
        }
        assert!(alive(), "hearthd exited during start-up");
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("hearthd did not open its socket under {} within 20 s", root.display());
}

/// A hearthd process serving a temporary root, killed when dropped.
#[derive(Debug)]
pub struct HearthdProcess {
    root: tempfile::TempDir,
    child: Option<Child>,
    pub node: String,
    /// The network namespace hearthd runs in (`ip netns exec`), if not the test's own.
    netns: Option<String>,
    /// Further arguments and environment for every start (`--netns`, test hooks).
    extra_args: Vec<String>,
    extra_env: Vec<(String, String)>,
}

impl HearthdProcess {
    /// Starts hearthd for node `test` on a new root and waits until it answers.
    pub fn start() -> HearthdProcess {
        HearthdProcess::start_with(&[], &[])
    }

    /// Starts hearthd for node `node` inside the named network namespace (`ip netns exec`, which
    /// also gives it that namespace's /sys/class/net), so what it does to links stays there.
    pub fn start_in_netns(netns: &str, node: &str) -> HearthdProcess {
        let mut daemon = HearthdProcess {
            root: temp_root(),
            child: None,
            node: node.into(),
            netns: Some(netns.to_owned()),
            extra_args: Vec::new(),
            extra_env: Vec::new(),
        };
        daemon.spawn();
        daemon
    }

    /// Starts hearthd with further arguments (`--netns /run/netns/X`) and environment.
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> HearthdProcess {
        let mut daemon = HearthdProcess {
            root: temp_root(),
            child: None,
            node: "test".into(),
            netns: None,
            extra_args: args.iter().map(|a| (*a).to_owned()).collect(),
            extra_env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        };
        daemon.spawn();
        daemon
    }

    /// Changes the environment of the next start ([`HearthdProcess::restart`]).
    pub fn set_env(&mut self, env: &[(&str, &str)]) {
        self.extra_env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    }

    /// Changes the further arguments of the next start (another `--netns`).
    pub fn set_args(&mut self, args: &[&str]) {
        self.extra_args = args.iter().map(|a| (*a).to_owned()).collect();
    }

    fn spawn(&mut self) {
        let mut command = match &self.netns {
            Some(netns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", netns]).arg(bin("hearthd"));
                c
            }
            None => Command::new(bin("hearthd")),
        };
        let child = command
            .arg("--root")
            .arg(self.root.path())
            .arg("--node")
            .arg(&self.node)
            .args(&self.extra_args)
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .env("HEARTH_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawning hearthd");
        let pid = child.id();
        self.child = Some(child);
        wait_for_socket(self.root.path(), || Path::new(&format!("/proc/{pid}")).exists());
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A connected, handshaken client.
    pub fn client(&self) -> Client {
        Client::connect(self.root(), "hearth-test").expect("connecting to hearthd")
    }

    /// A command for one of the CLIs, pointed at this node.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(bin(program));
        cmd.env("HEARTH_ROOT", self.root()).stdin(Stdio::null());
        cmd
    }

    /// Runs a CLI to completion.
    pub fn cli(&self, program: &str, args: &[&str]) -> Output {
        self.command(program).args(args).output().expect("running the CLI")
    }

    /// Sends `signal` and waits for the process to end.
    pub fn signal(&mut self, signal: nix::sys::signal::Signal) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("hearthd is running");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pids fit in i32"));
        nix::sys::signal::kill(pid, signal).expect("signalling hearthd");
        child.wait().expect("waiting for hearthd")
    }

    /// Waits for a process that was signalled from elsewhere to end.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.take().expect("hearthd was started").wait().expect("waiting for hearthd")
    }

    /// Starts hearthd again on the same root.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop hearthd before restarting it");
        self.spawn();
    }
}

impl Drop for HearthdProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        kill_guests(self.root.path());
        kill_containers(self.root.path());
        kill_dnsmasq(self.root.path());
    }
}

/// Kills the dnsmasq instances hearthd started for SDN zones under `root`: they outlive hearthd
/// like guests do.
fn kill_dnsmasq(root: &Path) {
    let Ok(zones) = std::fs::read_dir(root.join("var/lib/hearth/sdn/dnsmasq")) else { return };
    for zone in zones.flatten() {
        let Some(pid) =
            std::fs::read_to_string(zone.path().join("dnsmasq.pid")).ok().and_then(|t| t.trim().parse::<i32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "dnsmasq" {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// Kills the container monitors a test left running under `root` (their containers die with
/// them) and removes the node's cgroups, which the killed hearthd can no longer clean up.
fn kill_containers(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root.join("run/hearth/lxc")) else { return };
    for entry in entries.flatten() {
        let Some(pid) =
            std::fs::read_to_string(entry.path().join("monitor.pid")).ok().and_then(|t| t.trim().parse::<i32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("hearth-ctmon") {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
    // Volumes a failed test left mounted under the root (`ctctl mount`, create's staging).
    let canonical = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_owned());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for point in mounts.lines().filter_map(|l| l.split(' ').nth(4)).filter(|p| Path::new(p).starts_with(&canonical)) {
        let _ = Command::new("umount").args(["-l", point]).status();
    }
    let Ok(base) = hearthd::containers::cgroup_base(root) else { return };
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        let dir = hierarchy.path().join(&base);
        for _ in 0..100 {
            if !dir.exists() || remove_cgroup_tree(&dir).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn remove_cgroup_tree(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_cgroup_tree(&entry.path())?;
        }
    }
    std::fs::remove_dir(dir)
}

/// Kills the QEMU processes a test left running under `root` (a test that failed half way),
/// so no guest outlives its test. Only processes whose command line names `root` are touched.
fn kill_guests(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root.join("run/hearth/qemu")) else { return };
    let root_text = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_owned()).to_string_lossy().into_owned();
    for entry in entries.flatten() {
        if entry.path().extension().is_none_or(|e| e != "pid") {
            continue;
        }
        let Some(pid) = std::fs::read_to_string(entry.path()).ok().and_then(|t| t.trim().parse::<i32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&root_text) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// hearthd running inside the test process on its own runtime thread.
#[derive(Debug)]
pub struct InProcessHearthd {
    pub daemon: Arc<Daemon>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcessHearthd {
    /// Serves `root` for node `test` until stopped or dropped.
    pub fn start(root: &Path) -> io::Result<InProcessHearthd> {
        InProcessHearthd::start_with_limits(root, hearthd::ServeLimits::default())
    }

    /// Like [`InProcessHearthd::start`], with other admission limits and timeouts.
    pub fn start_with_limits(root: &Path, limits: hearthd::ServeLimits) -> io::Result<InProcessHearthd> {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let root = root.to_owned();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(async move {
                let started = hearthd::bind(&root).and_then(|bound| Ok((bound, Daemon::open(&root, "test")?)));
                match started {
                    Ok((bound, daemon)) => {
                        let _ = ready_tx.send(Ok(Arc::clone(&daemon)));
                        hearthd::serve_with_limits(&bound.listener, daemon, limits, async {
                            let _ = stop_rx.await;
                        })
                        .await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(io::Error::other(format!("{e:#}"))));
                    }
                }
            });
        });
        let daemon = ready_rx.recv().map_err(io::Error::other)??;
        Ok(InProcessHearthd { daemon, stop: Some(stop_tx), thread: Some(thread) })
    }

    /// Stops serving and releases the root, as a SIGTERM does.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for InProcessHearthd {
    fn drop(&mut self) {
        self.shutdown();
    }
}
