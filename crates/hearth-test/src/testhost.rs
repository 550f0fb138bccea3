//! The kernel-complete test host: Debian's own kernel booted under QEMU TCG by virtme-ng,
//! with this machine's root file system shared read-only over 9p and a tmpfs overlay on top,
//! running one script as root and powering off.
//!
//! The development and CI machines' kernel lacks 802.1Q VLANs, bridge VLAN filtering, bonding,
//! dummy links, device-mapper, the NFS and CIFS clients and softdog; Debian's kernel has them
//! all as modules, and `modprobe` works inside because the kernel's module tree (unpacked and
//! indexed by depmod once, by `cargo xtask fixtures`, under `target/fixtures/testhost/<kernel
//! version>/`) is linked to `/lib/modules/<version>` in the guest.
//!
//! Inside, every path of this machine reads as here, so the workspace's built binaries run as
//! they are; `/etc`, `/lib`, `/home`, `/opt`, `/srv`, `/usr`, `/var` and `/tmp` are writable
//! overlays whose changes vanish at power-off (so a hearthd on a temporary root under `/tmp`
//! works, and `/etc/network/interfaces` can be rewritten), and everything else is read-only
//! unless [`TestHost::writable`] names it. The script's standard output and error and its exit
//! status come back through a directory shared read-write with the host, not through the
//! console, so kernel messages never mix with them.
//!
//! A boot, a short script and the power-off take 40 to 60 s of TCG on the shared development
//! machines, so a test puts several checks into one script. A test that needs the test host
//! fails, saying what to install, when virtme-ng, kmod, QEMU or the unpacked kernel is
//! missing; it never passes without having run.

use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::fixtures;

/// The virtme-ng release `cargo xtask test` installs (from PyPI, into
/// `target/tools/virtme-ng-<version>/`).
pub const VIRTME_NG_VERSION: &str = "1.42";

/// What a script run in the test host left behind.
#[derive(Debug, Clone)]
pub struct TestHostOutput {
    /// The script's exit status (a signal that killed it counts as 128 + its number, as the
    /// shell reports it).
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
    /// The guest's console: kernel messages and virtme-ng's own, for diagnosing a boot that
    /// went wrong.
    pub console: String,
    /// Boot, script and power-off, as the host saw them.
    pub elapsed: Duration,
}

impl TestHostOutput {
    /// Whether the script exited with status 0.
    pub fn success(&self) -> bool {
        self.status == 0
    }

    /// Fails the test, showing the script's output, unless the script exited with status 0.
    #[track_caller]
    pub fn assert_success(&self) -> &TestHostOutput {
        assert!(self.success(), "the script in the test host failed:\n{}", self.describe());
        self
    }

    /// The lines of standard output that start with `prefix`, the prefix removed: how a script
    /// that runs several checks reports each one.
    pub fn lines_with(&self, prefix: &str) -> Vec<&str> {
        self.stdout.lines().filter_map(|l| l.strip_prefix(prefix)).collect()
    }

    /// Status, output and error, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "exit status {} after {:.1} s\n--- stdout\n{}\n--- stderr\n{}",
            self.status,
            self.elapsed.as_secs_f64(),
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// A test host to run one script in: memory, environment, a timeout and what to make
/// writable. [`in_test_host`] runs one with the defaults.
#[derive(Debug, Clone)]
pub struct TestHost {
    memory_mib: u32,
    cpus: u32,
    env: Vec<(String, String)>,
    timeout: Duration,
    writable: Vec<PathBuf>,
}

impl Default for TestHost {
    fn default() -> Self {
        TestHost { memory_mib: 1024, cpus: 2, env: Vec::new(), timeout: Duration::from_secs(300), writable: Vec::new() }
    }
}

/// Runs `script` (bash) as root in a test host with the default settings.
pub fn in_test_host(script: &str) -> TestHostOutput {
    TestHost::new().run(script)
}

impl TestHost {
    pub fn new() -> TestHost {
        TestHost::default()
    }

    /// The guest's memory (1024 MiB unless set).
    pub fn memory_mib(mut self, mib: u32) -> TestHost {
        self.memory_mib = mib;
        self
    }

    /// The guest's virtual CPUs (2 unless set).
    pub fn cpus(mut self, cpus: u32) -> TestHost {
        self.cpus = cpus.max(1);
        self
    }

    /// Sets an environment variable for the script.
    pub fn env(mut self, name: &str, value: &str) -> TestHost {
        assert!(
            !name.is_empty() && name.chars().all(|c| c == '_' || c.is_ascii_alphanumeric()),
            "environment variable names are letters, digits and `_`: {name:?}"
        );
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// How long boot, script and power-off may take together (300 s unless set); past it the
    /// guest is killed and the test fails.
    pub fn timeout(mut self, timeout: Duration) -> TestHost {
        self.timeout = timeout;
        self
    }

    /// Makes a directory of this machine writable inside the guest, through an overlay: the
    /// guest's changes stay in its memory and never reach the host.
    pub fn writable(mut self, dir: impl Into<PathBuf>) -> TestHost {
        self.writable.push(dir.into());
        self
    }

    /// Boots the test host, runs `script` with bash as root, and powers off. Fails the test if
    /// a part is missing, the boot fails or the timeout passes; the script's own failure is
    /// reported in [`TestHostOutput::status`].
    pub fn run(&self, script: &str) -> TestHostOutput {
        self.try_run(script).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`TestHost::run`], with what went wrong (a missing part, a failed boot, the
    /// timeout) as an error instead of a panic: for tools such as `cargo xtask bench`.
    pub fn try_run(&self, script: &str) -> Result<TestHostOutput, String> {
        // A boot that ends without the script having recorded its status is the emulator's or
        // virtme-ng's failure, not the script's: it is booted once more, saying so. The
        // script's own failure, and a timeout, are never retried.
        match self.boot(script) {
            Err(Boot::NoStatus(first)) => {
                eprintln!("test host: {first}\ntest host: booting once more");
                self.boot(script).map_err(Boot::into_message)
            }
            other => other.map_err(Boot::into_message),
        }
    }

    fn boot(&self, script: &str) -> Result<TestHostOutput, Boot> {
        if !nix::unistd::geteuid().is_root() {
            return Err(Boot::Other(
                "the test host needs root: it boots a kernel under QEMU with this machine's root file system \
                 (run `cargo xtask test` as root)"
                    .into(),
            ));
        }
        let vng = vng()?;
        for (program, package) in [("qemu-system-x86_64", "qemu-system-x86"), ("depmod", "kmod")] {
            if !on_path(program) {
                return Err(Boot::Other(format!(
                    "the test host needs {program}: install {package} (`cargo xtask test` installs it)"
                )));
            }
        }
        let kernel = find_kernel(&kernel_root()).map_err(|e| {
            format!("the test host's kernel is missing ({e}): run `cargo xtask fixtures` (cargo xtask test does)")
        })?;

        // The exchange directory: shared read-write, under target/ (not under /tmp, which the
        // guest overlays).
        let runs = fixtures::dir().parent().expect("fixtures live in target/").join("testhost-runs");
        std::fs::create_dir_all(&runs).map_err(|e| format!("creating {}: {e}", runs.display()))?;
        let exchange = tempfile::Builder::new()
            .prefix("run-")
            .tempdir_in(&runs)
            .map_err(|e| format!("creating a run directory in {}: {e}", runs.display()))?;
        let dir = exchange.path();
        let write = |name: &str, text: &str| {
            std::fs::write(dir.join(name), text).map_err(|e| format!("writing {}/{name}: {e}", dir.display()))
        };
        write("script", script)?;
        write("wrapper", &self.wrapper(dir))?;

        let mut cmd = Command::new(&vng);
        cmd.arg("--run")
            .arg(&kernel)
            .args(["--disable-kvm", "--force-9p", "--verbose"])
            .arg(format!("--memory={}M", self.memory_mib))
            .arg(format!("--cpus={}", self.cpus))
            .arg(format!("--rwdir={}", dir.display()));
        for path in &self.writable {
            cmd.arg(format!("--overlay-rwdir={}", path.display()));
        }
        cmd.arg("--").arg(format!("bash {}/wrapper", dir.display()));
        let console_path = dir.join("console");
        let console = std::fs::File::create(&console_path).map_err(|e| format!("creating the console log: {e}"))?;
        let console_err = console.try_clone().map_err(|e| format!("duplicating a file handle: {e}"))?;
        cmd.current_dir("/")
            .stdin(Stdio::null())
            .stdout(console)
            .stderr(console_err)
            // Its own process group, so a timeout kills QEMU along with vng.
            .process_group(0);
        let started = Instant::now();
        let mut child = cmd.spawn().map_err(|e| format!("cannot run {}: {e}", vng.display()))?;
        let pgid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pids fit in i32"));
        let vng_status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(e) => return Err(Boot::Other(format!("waiting for vng: {e}"))),
            }
            if started.elapsed() > self.timeout {
                let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                return Err(Boot::Other(format!(
                    "the test host did not finish within {} s; console:\n{}",
                    self.timeout.as_secs(),
                    tail(&std::fs::read_to_string(&console_path).unwrap_or_default(), 60)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // Whatever the guest started and left behind in the group.
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let elapsed = started.elapsed();
        let console = std::fs::read_to_string(&console_path).unwrap_or_default();
        let read =
            |name: &str| String::from_utf8_lossy(&std::fs::read(dir.join(name)).unwrap_or_default()).into_owned();
        let Ok(status) = read("status").trim().parse::<i32>() else {
            return Err(Boot::NoStatus(format!(
                "the test host ended ({vng_status}) without the script's exit status; the boot or the \
                 script runner failed. Console:\n{}\n--- script stdout\n{}\n--- script stderr\n{}",
                tail(&console, 80),
                read("stdout"),
                read("stderr")
            )));
        };
        Ok(TestHostOutput { status, stdout: read("stdout"), stderr: read("stderr"), console, elapsed })
    }

    /// The script virtme-ng runs: sets up the environment, runs the test's script with its
    /// output going to the exchange directory, then records its status.
    fn wrapper(&self, dir: &Path) -> String {
        let dir = shell_quote(&dir.to_string_lossy());
        let mut text = String::from("export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n");
        text.push_str("export HOME=/root TMPDIR=/tmp LC_ALL=C.UTF-8\n");
        for (name, value) in &self.env {
            writeln!(text, "export {name}={}", shell_quote(value)).expect("writing to a string");
        }
        writeln!(text, "cd /tmp").expect("writing to a string");
        writeln!(text, "bash {dir}/script </dev/null >{dir}/stdout 2>{dir}/stderr").expect("writing to a string");
        writeln!(text, "echo $? >{dir}/status.new && mv {dir}/status.new {dir}/status").expect("writing to a string");
        text.push_str("sync\n");
        text
    }
}

/// Why a boot gave no [`TestHostOutput`].
enum Boot {
    /// The guest ended without the script's status: worth one more boot.
    NoStatus(String),
    /// A missing part, the timeout, a host error.
    Other(String),
}

impl Boot {
    fn into_message(self) -> String {
        match self {
            Boot::NoStatus(message) | Boot::Other(message) => message,
        }
    }
}

impl From<String> for Boot {
    fn from(message: String) -> Boot {
        Boot::Other(message)
    }
}

/// `value` as one shell word.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// virtme-ng's `vng`: the one `cargo xtask test` installed under `target/tools/`, or else one
/// on the `PATH`.
pub fn vng() -> Result<PathBuf, String> {
    let installed = virtme_ng_dir().join("bin/vng");
    if installed.is_file() {
        return Ok(installed);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|dir| dir.join("vng")).find(|p| p.is_file()).ok_or_else(|| {
        format!(
            "the test host needs virtme-ng: run `cargo xtask fixtures` (cargo xtask test does; it installs \
             virtme-ng {VIRTME_NG_VERSION} from PyPI into {}), or `pip install virtme-ng=={VIRTME_NG_VERSION}`",
            virtme_ng_dir().display()
        )
    })
}

fn on_path(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path).any(|dir| dir.join(program).is_file())
}

/// Where `cargo xtask test` installs virtme-ng: a Python virtual environment of its own,
/// `target/tools/virtme-ng-<version>`.
pub fn virtme_ng_dir() -> PathBuf {
    fixtures::dir()
        .parent()
        .expect("fixtures live in target/")
        .join("tools")
        .join(format!("virtme-ng-{VIRTME_NG_VERSION}"))
}

/// `target/fixtures/testhost`: one directory per kernel version, each an unpacked kernel
/// package (`boot/vmlinuz-<version>`, `lib/modules/<version>/` indexed by depmod).
pub fn kernel_root() -> PathBuf {
    fixtures::dir().join("testhost")
}

/// The test host's kernel image, its modules beside it.
pub fn kernel() -> PathBuf {
    find_kernel(&kernel_root()).unwrap_or_else(|e| {
        panic!("the test host's kernel is missing ({e}): run `cargo xtask fixtures` (cargo xtask test does)")
    })
}

/// The single `<version>/boot/vmlinuz-<version>` under `root` whose modules were indexed.
pub fn find_kernel(root: &Path) -> Result<PathBuf, String> {
    let entries = std::fs::read_dir(root).map_err(|e| format!("{}: {e}", root.display()))?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(version) = entry.file_name().to_str().map(str::to_owned) else { continue };
        if version.starts_with('.') {
            continue;
        }
        let image = entry.path().join("boot").join(format!("vmlinuz-{version}"));
        let index = entry.path().join("lib/modules").join(&version).join("modules.dep");
        if image.is_file() && index.is_file() {
            found.push(image);
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(format!("no unpacked kernel with indexed modules under {}", root.display())),
        n => Err(format!("{n} kernels under {}, expected one", root.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapper_quotes_the_environment_and_records_the_status() {
        let host = TestHost::new().env("GREETING", "it's here");
        let text = host.wrapper(Path::new("/x/run-1"));
        assert!(text.contains("export GREETING='it'\\''s here'\n"), "{text}");
        assert!(text.contains("bash '/x/run-1'/script </dev/null >'/x/run-1'/stdout 2>'/x/run-1'/stderr\n"), "{text}");
        assert!(text.contains("echo $? >'/x/run-1'/status.new"), "{text}");
    }

    #[test]
    fn bad_environment_names_are_refused() {
        for bad in ["A B", "", "X=1", "A;B"] {
            let refused = std::panic::catch_unwind(|| TestHost::new().env(bad, "1")).expect_err(bad);
            let message = refused.downcast_ref::<String>().cloned().unwrap_or_default();
            assert!(message.contains("environment variable names"), "{bad:?}: {message}");
        }
        assert_eq!(TestHost::new().env("HEARTH_X1", "1").env, [("HEARTH_X1".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn finds_one_indexed_kernel_only() {
        let root = tempfile::tempdir().expect("a temporary directory");
        assert!(find_kernel(root.path()).is_err());
        let version = root.path().join("6.1.0-9-amd64");
        std::fs::create_dir_all(version.join("boot")).unwrap();
        std::fs::write(version.join("boot/vmlinuz-6.1.0-9-amd64"), b"").unwrap();
        assert!(find_kernel(root.path()).is_err(), "modules not indexed yet");
        std::fs::create_dir_all(version.join("lib/modules/6.1.0-9-amd64")).unwrap();
        std::fs::write(version.join("lib/modules/6.1.0-9-amd64/modules.dep"), b"").unwrap();
        assert_eq!(find_kernel(root.path()).unwrap(), version.join("boot/vmlinuz-6.1.0-9-amd64"));
    }
}
