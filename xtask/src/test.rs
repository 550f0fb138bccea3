//! `cargo xtask test`: everything CI checks, in the order that fails fastest — the Debian
//! packages tests need, the fixtures they boot, formatting, clippy, generated files, the build,
//! every test, then a bounded run of each fuzz target.
//!
//! It is what `.ci/run` runs on a fresh machine, so it installs what it needs itself and never
//! reads standard input.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

use crate::{cargo, display_command, fixtures, r#gen};

/// Debian packages the tests use. Extend this list when a test starts needing a tool; a test
/// that lacks one fails saying what to install.
pub const DEBIAN_PACKAGES: &[&str] = &[
    "procps",
    "util-linux",
    "iproute2",
    "qemu-utils",
    "btrfs-progs",
    "e2fsprogs",
    "tar",
    "ovmf",
    // Cloud-init drives are ISO images made by genisoimage, as Proxmox makes them.
    "genisoimage",
    // `tpmstate0`: a swtpm per VM, its state set up by swtpm_setup.
    "swtpm",
    "swtpm-tools",
    // The fixtures' own packages (`fixtures::DEBIAN_PACKAGES`): building them and booting them.
    "busybox-static",
    "xz-utils",
    "zstd",
    "qemu-system-x86",
    "qemu-guest-agent",
    "kmod",
    "python3-venv",
    "file",
    // storectl scan lvm|lvmthin lists what the host's LVM tools see.
    "lvm2",
    // SDN: dnsmasq serves DHCP per zone. nft loads the SDN SNAT table and the firewall's
    // rulesets; iperf3 measures throughput through them (bench fw).
    "dnsmasq",
    "nftables",
    "iperf3",
];

pub fn run(root: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    step("Debian packages", || ensure_debian_packages(DEBIAN_PACKAGES))?;
    step("cargo xtask fixtures", fixtures::run)?;
    // The slow container test boots a Debian 12 system container with systemd.
    step("cargo xtask fixtures --debian", fixtures::run_debian)?;
    cargo_step(root, &["fmt", "--all", "--", "--check"])?;
    cargo_step(root, &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    // The xtask running this was built from the current tree, so checking in-process is the
    // same as running `cargo xtask gen --check`, without another cargo invocation.
    step("cargo xtask gen --check", || r#gen::check(root))?;
    cargo_step(root, &["build", "--workspace", "--bins"])?;
    // From here on every outcome is counted, and the run ends with the plain total, failed or not.
    let mut total = Tally::default();
    let result = (|| {
        if has_nextest(root) {
            counted_step(root, &["nextest", "run", "--workspace", "--no-fail-fast"], &mut total)?;
            // nextest does not run doctests.
            counted_step(root, &["test", "--workspace", "--doc"], &mut total)?;
        } else {
            eprintln!("note: cargo-nextest is not installed; running the tests with cargo test");
            counted_step(root, &["test", "--workspace", "--no-fail-fast"], &mut total)?;
        }
        fuzz(root, &mut total)
    })();
    match &result {
        Ok(()) => eprintln!("\n==> all checks passed in {:.0} s", started.elapsed().as_secs_f64()),
        Err(e) => eprintln!("\n==> failed after {:.0} s: {e:#}", started.elapsed().as_secs_f64()),
    }
    eprintln!("{} passed, {} failed", total.passed, total.failed);
    if result.is_err() {
        std::process::exit(1);
    }
    Ok(())
}

/// Tests passed and failed over every suite (each fuzz target counts as one).
#[derive(Debug, Default)]
pub struct Tally {
    pub passed: u64,
    pub failed: u64,
}

impl Tally {
    /// Adds what one line of a test runner's summary reports: nextest's `Summary [..] N tests
    /// run: P passed, F failed, ..` or libtest's `test result: ok. P passed; F failed; ..`.
    fn add_summary(&mut self, line: &str) {
        let rest = if let Some((_, rest)) = line.split_once("tests run:") {
            rest
        } else if let Some(rest) = line.trim_start().strip_prefix("test result:") {
            rest
        } else {
            return;
        };
        let count = |word: &str| -> u64 {
            let words: Vec<&str> = rest.split(|c: char| c == ',' || c == ';' || c.is_whitespace()).collect();
            words.windows(2).find(|w| w[1] == word).and_then(|w| w[0].parse().ok()).unwrap_or(0)
        };
        self.passed += count("passed");
        self.failed += count("failed");
    }
}

/// A cargo test command whose output streams to the terminal while its summaries are counted.
fn counted_step(root: &Path, args: &[&str], total: &mut Tally) -> anyhow::Result<()> {
    use std::io::BufRead;
    let name = display_command("cargo", args);
    step(&name, || {
        let mut child = cargo(root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {name}"))?;
        let stderr = child.stderr.take().context("the test runner's stderr")?;
        // nextest writes its summary to stderr, libtest to stdout: read both as they come.
        let relay = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                lines.push(line);
            }
            lines
        });
        let stdout = child.stdout.take().context("the test runner's stdout")?;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            total.add_summary(&line);
        }
        for line in relay.join().unwrap_or_default() {
            total.add_summary(&line);
        }
        let status = child.wait().with_context(|| format!("waiting for {name}"))?;
        if !status.success() {
            bail!("{status}");
        }
        Ok(())
    })
}

/// Runs one named step, timing it and naming it if it fails.
fn step(name: &str, body: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    eprintln!("\n==> {name}");
    let started = Instant::now();
    body().with_context(|| format!("step `{name}` failed"))?;
    eprintln!("==> {name}: ok ({:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

/// A cargo command whose output streams to the terminal.
fn cargo_step(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    let name = display_command("cargo", args);
    step(&name, || {
        let status =
            cargo(root).args(args).stdin(Stdio::null()).status().with_context(|| format!("cannot run {name}"))?;
        if !status.success() {
            bail!("{status}");
        }
        Ok(())
    })
}

/// The cargo-fuzz targets in `fuzz/`: what a hostile local client controls.
const FUZZ_TARGETS: &[&str] = &["frame", "request"];

/// How long each fuzz target runs here: long enough to catch a parser that panics on a short
/// input, short enough to run on every test run. Longer runs are `cargo fuzz run` by hand; the
/// corpus under `fuzz/corpus/` grows from run to run either way.
const FUZZ_SECONDS: u32 = 20;

/// cargo-fuzz needs nightly flags; this lets the stable toolchain accept them.
const FUZZ_ENV: (&str, &str) = ("RUSTC_BOOTSTRAP", "1");

/// Installs cargo-fuzz if needed, builds the fuzz targets and runs each for [`FUZZ_SECONDS`];
/// a crash fails the step, naming the input that caused it.
pub fn fuzz(root: &Path, total: &mut Tally) -> anyhow::Result<()> {
    step("cargo-fuzz", || {
        if cargo_succeeds(root, &["fuzz", "--version"]) {
            eprintln!("already installed");
            return Ok(());
        }
        run_cargo(root, &["install", "--locked", "cargo-fuzz"])
    })?;
    step("cargo fuzz build", || run_cargo(root, &["fuzz", "build"]))?;
    let dictionary = root.join("fuzz/request.dict");
    let dictionary = format!("-dict={}", dictionary.display());
    let max_time = format!("-max_total_time={FUZZ_SECONDS}");
    for target in FUZZ_TARGETS {
        let ran = step(&format!("cargo fuzz run {target} ({FUZZ_SECONDS} s)"), || {
            run_cargo(root, &["fuzz", "run", target, "--", &max_time, &dictionary]).with_context(|| {
                format!(
                    "fuzz target `{target}` found a crash: the input is under fuzz/artifacts/{target}/; \
                     replay it with `RUSTC_BOOTSTRAP=1 cargo fuzz run {target} fuzz/artifacts/{target}/<file>`"
                )
            })
        });
        match ran {
            Ok(()) => total.passed += 1,
            Err(e) => {
                total.failed += 1;
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Runs cargo (with [`FUZZ_ENV`]), its output streaming to the terminal.
fn run_cargo(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    let name = display_command("cargo", args);
    let status = cargo(root)
        .args(args)
        .env(FUZZ_ENV.0, FUZZ_ENV.1)
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {name}"))?;
    if !status.success() {
        bail!("{name}: {status}");
    }
    Ok(())
}

fn cargo_succeeds(root: &Path, args: &[&str]) -> bool {
    cargo(root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn has_nextest(root: &Path) -> bool {
    cargo_succeeds(root, &["nextest", "--version"])
}

/// Installs whatever of `packages` is missing, with apt, non-interactively.
pub fn ensure_debian_packages(packages: &[&str]) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    for package in packages {
        if !is_installed(package)? {
            missing.push(*package);
        }
    }
    if missing.is_empty() {
        eprintln!("already installed: {}", packages.join(" "));
        return Ok(());
    }
    let install_args: Vec<&str> =
        ["install", "-y", "--no-install-recommends"].into_iter().chain(missing.iter().copied()).collect();
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "the tests need these Debian packages, which are not installed: {}\n\
             install them with `sudo apt-get update && sudo {}`, or run `cargo xtask test` as root",
            missing.join(" "),
            display_command("apt-get", &install_args)
        );
    }
    apt_get(&["update"])?;
    apt_get(&install_args)?;
    // An install can remove a package that was there before: qemu-system-x86 from Debian's
    // archive displaces a newer qemu-utils installed from elsewhere. Put back what went.
    let removed: Vec<&str> = packages.iter().copied().filter(|p| !is_installed(p).unwrap_or(false)).collect();
    if !removed.is_empty() {
        let again: Vec<&str> =
            ["install", "-y", "--no-install-recommends"].into_iter().chain(removed.iter().copied()).collect();
        apt_get(&again)?;
    }
    let still_missing: Vec<&str> = packages.iter().copied().filter(|p| !is_installed(p).unwrap_or(false)).collect();
    if !still_missing.is_empty() {
        bail!("apt-get finished but these packages are still not installed: {}", still_missing.join(" "));
    }
    Ok(())
}

pub fn apt_get(args: &[&str]) -> anyhow::Result<()> {
    let name = display_command("apt-get", args);
    eprintln!("$ {name}");
    let status = Command::new("apt-get")
        // Wait for another apt or dpkg run to finish instead of failing at once.
        .args(["-o", "DPkg::Lock::Timeout=600"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {name}; is this a Debian system?"))?;
    if !status.success() {
        bail!("{name} exited with {status}");
    }
    Ok(())
}

/// Whether dpkg reports `package` as installed (not merely known or half-configured).
fn is_installed(package: &str) -> anyhow::Result<bool> {
    let output = Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}", package])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .context("cannot run dpkg-query; `cargo xtask test` needs a Debian system")?;
    Ok(output.status.success() && String::from_utf8_lossy(&output.stdout).trim_end().ends_with(" installed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_of_both_runners_are_counted() {
        let mut t = Tally::default();
        t.add_summary("     Summary [  61.234s] 412 tests run: 410 passed, 2 failed, 3 skipped");
        t.add_summary("test result: ok. 7 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s");
        t.add_summary("test result: FAILED. 1 passed; 4 failed; 0 ignored");
        t.add_summary("running 12 tests");
        assert_eq!((t.passed, t.failed), (418, 6));
    }

    #[test]
    fn dpkg_knows_installed_and_absent_packages() {
        // dpkg itself is always installed on the Debian machines Hearth supports.
        assert!(is_installed("dpkg").expect("dpkg-query runs"));
        assert!(!is_installed("hearth-no-such-package").expect("dpkg-query runs"));
    }
}
