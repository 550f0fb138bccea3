//! `cargo xtask`: Hearth's development tasks — generated files, install, test, demo and bench.
//!
//! Run through the alias in `.cargo/config.toml`: `cargo xtask gen`, `cargo xtask test`, …
//! Everything a contributor or CI needs goes through here so that the README can promise a
//! handful of commands that work on a fresh Debian machine.

mod bench;
mod bench_backup;
mod bench_ct;
mod bench_fw;
mod bench_net;
mod bench_net_apply;
mod bench_storage;
mod bench_vm;
mod demo;
mod fixtures;
mod r#gen;
mod install;
mod node;
mod test;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, bail};
use clap::{Arg, ArgAction};

/// Where an installed binary goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinDir {
    /// `PREFIX/bin`: commands for everyone.
    Bin,
    /// `PREFIX/sbin`: the daemon.
    Sbin,
}

/// A binary Hearth ships: its name, where it is installed and the clap command its man pages
/// and completions are generated from.
#[derive(Debug)]
pub struct Binary {
    pub name: &'static str,
    /// The cargo package that builds it.
    pub package: &'static str,
    pub dir: BinDir,
    /// Manual section: 1 for commands, 8 for the daemon.
    pub man_section: &'static str,
    pub command: fn() -> clap::Command,
}

/// Every binary Hearth installs, in the order they are listed to users.
pub const BINARIES: &[Binary] = &[
    Binary { name: "vmctl", package: "vmctl", dir: BinDir::Bin, man_section: "1", command: vmctl::command },
    Binary { name: "ctctl", package: "ctctl", dir: BinDir::Bin, man_section: "1", command: ctctl::command },
    Binary {
        name: "clusterctl",
        package: "clusterctl",
        dir: BinDir::Bin,
        man_section: "1",
        command: clusterctl::command,
    },
    Binary { name: "storectl", package: "storectl", dir: BinDir::Bin, man_section: "1", command: storectl::command },
    Binary { name: "userctl", package: "userctl", dir: BinDir::Bin, man_section: "1", command: userctl::command },
    Binary { name: "netctl", package: "netctl", dir: BinDir::Bin, man_section: "1", command: netctl::command },
    Binary { name: "fwctl", package: "fwctl", dir: BinDir::Bin, man_section: "1", command: fwctl::command },
    Binary { name: "hearthd", package: "hearthd", dir: BinDir::Sbin, man_section: "8", command: hearthd::command },
];

/// Packages whose binaries are not commands but helpers hearthd runs: `hearth-ctmon`, the
/// per-container monitor, which hearthd looks for next to its own executable.
pub const HELPER_PACKAGES: &[(&str, &str)] = &[("hearth-ct", "hearth-ctmon")];

fn cli() -> clap::Command {
    clap::Command::new("xtask")
        .bin_name("cargo xtask")
        .about("Hearth's development tasks")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(
            clap::Command::new("gen")
                .about("Generate man pages into man/, completions into completions/ and docs/permissions.md").arg(
                Arg::new("check")
                    .long("check")
                    .action(ArgAction::SetTrue)
                    .help("Write nothing; fail if the checked-in files differ from what would be generated"),
            ),
        )
        .subcommand(
            clap::Command::new("install")
                .about("Build release binaries and install them with man pages, completions and the systemd unit")
                .arg(
                    Arg::new("prefix")
                        .long("prefix")
                        .value_name("DIR")
                        .default_value("/usr/local")
                        .value_parser(clap::value_parser!(PathBuf))
                        .help("Installation prefix; the systemd unit's ExecStart points into it"),
                )
                .arg(
                    Arg::new("destdir")
                        .long("destdir")
                        .value_name("DIR")
                        .value_parser(clap::value_parser!(PathBuf))
                        .help("Stage the installation under DIR (for packaging); paths inside files still use PREFIX"),
                ),
        )
        .subcommand(
            clap::Command::new("test").about(
                "Install the Debian packages tests need, then run fmt, clippy, gen --check, build, every test and a short fuzz run",
            ),
        )
        .subcommand(clap::Command::new("fuzz").about(
            "Install cargo-fuzz if needed and run each fuzz target in fuzz/ for a bounded time (part of `test`)",
        ))
        .subcommand(
            clap::Command::new("fixtures")
                .about(
                    "Build what tests boot into target/fixtures: Debian's kernel, a busybox initramfs, a busybox container template",
                )
                .arg(
                    Arg::new("debian")
                        .long("debian")
                        .action(ArgAction::SetTrue)
                        .help("Also build a Debian 12 container template with debootstrap (slow; needs Debian's archive)"),
                ),
        )
        .subcommand(clap::Command::new("demo").about("Run hearthd on a temporary root and walk through the CLIs"))
        .subcommand(
            clap::Command::new("bench")
                .about("Benchmarks, reported next to the design goals")
                .subcommand_required(true)
                .subcommand(
                    clap::Command::new("cli")
                        .about(
                            "Whole-process time of vmctl list/config/status and ctctl list on nodes of 1000 VMs, 1000 \
                             containers and 10 000 VMs against ls -l and cat, and hearthd's idle memory",
                        )
                        .arg(count_arg("runs", "5", "Runs per suite, at least 3; medians over the runs are reported"))
                        .arg(count_arg("samples", "50", "Timed samples of each command and anchor per run"))
                        .arg(count_arg("warmup", "5", "Untimed runs of each command and anchor before a run's samples"))
                        .arg(count_arg("vms", "1000", "VMs on the first node"))
                        .arg(count_arg("cts", "1000", "Containers on the second node"))
                        .arg(count_arg("many-vms", "10000", "VMs on the third node (0: no third node)")),
                )
                .subcommand(clap::Command::new("vm").about(
                    "Time from vmctl start to running against the same QEMU command line by hand; hearthd's memory with VMs",
                ))
                .subcommand(
                    clap::Command::new("net")
                        .about(
                            "NIC plumbing per guest start: 50 ports through hearth-net against iproute2, a process per step; \
                             netctl apply of 50 bridges against ifupdown2's ifreload -a, in the test host",
                        )
                        .arg(count_arg("runs", "5", "Runs of each path, at least 3; medians are reported")),
                )
                .subcommand(
                    clap::Command::new("fw")
                        .about("Firewall compile + apply of 1000 guests × 10 rules; iperf3 throughput with the firewall off and on")
                        .arg(count_arg("runs", "3", "Runs per measurement, at least 3; medians are reported")),
                )
                .subcommand(clap::Command::new("storage").about(
                    "Linked clones on dir and btrfs, full-clone throughput against cp, storectl list over 5000 volumes",
                ))
                .subcommand(
                    clap::Command::new("ct")
                        .about(
                            "Container start (busybox, privileged and unprivileged), monitor memory and Debian boot against LXC",
                        )
                        .arg(
                            Arg::new("runs")
                                .long("runs")
                                .value_parser(clap::value_parser!(usize))
                                .default_value("20")
                                .help("Starts per variant and tool, alternating; medians and p10/p90 are reported"),
                        ),
                )
                .subcommand(
                    clap::Command::new("backup")
                        .about("Chunk store ingest, incremental and restore throughput against restic and borg")
                        .arg(
                            Arg::new("runs")
                                .long("runs")
                                .value_parser(clap::value_parser!(usize))
                                .default_value("3")
                                .help("Runs per tool; medians are reported"),
                        ),
                ),
        )
}

/// A `--NAME N` option taking a count.
fn count_arg(name: &'static str, default: &'static str, help: &'static str) -> Arg {
    Arg::new(name).long(name).value_parser(clap::value_parser!(usize)).default_value(default).help(help)
}

fn main() -> ExitCode {
    let matches = cli().get_matches();
    let root = project_root();
    let result = match matches.subcommand() {
        Some(("gen", m)) => r#gen::run(&root, m.get_flag("check")),
        Some(("install", m)) => {
            let prefix = m.get_one::<PathBuf>("prefix").expect("prefix has a default value");
            install::run(&root, prefix, m.get_one::<PathBuf>("destdir").map(PathBuf::as_path))
        }
        Some(("test", _)) => test::run(&root),
        Some(("fuzz", _)) => test::fuzz(&root, &mut test::Tally::default()),
        Some(("fixtures", m)) => fixtures::run_with(m.get_flag("debian")),
        Some(("demo", _)) => demo::run(&root),
        Some(("bench", m)) => match m.subcommand() {
            Some(("cli", m)) => {
                let count = |name: &str| *m.get_one::<usize>(name).expect("every count has a default");
                let guests = |name: &str| u32::try_from(count(name)).unwrap_or(u32::MAX);
                bench::run_cli(
                    &root,
                    bench::CliBench {
                        vms: guests("vms"),
                        cts: guests("cts"),
                        many_vms: guests("many-vms"),
                        runs: count("runs"),
                        samples: count("samples"),
                        warmup: count("warmup"),
                    },
                )
            }
            Some(("storage", _)) => bench_storage::run(&root),
            Some(("net", m)) => bench_net::run(&root, *m.get_one::<usize>("runs").expect("runs has a default")),
            Some(("fw", m)) => bench_fw::run(*m.get_one::<usize>("runs").expect("runs has a default")),
            Some(("vm", _)) => bench_vm::run(&root),
            Some(("ct", m)) => bench_ct::run(&root, *m.get_one::<usize>("runs").expect("runs has a default")),
            Some(("backup", m)) => {
                bench_backup::run_bench(&root, *m.get_one::<usize>("runs").expect("runs has a default"))
            }
            _ => unreachable!("clap requires a bench subcommand"),
        },
        _ => unreachable!("clap requires a subcommand"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: xtask lives one level below it.
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives inside the workspace").to_path_buf()
}

/// A `cargo` command run from the workspace root, using the cargo that runs xtask.
pub fn cargo(root: &Path) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root);
    cmd
}

/// Which cargo profile to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

/// Builds every binary in [`BINARIES`] and returns the path of each executable, by name.
///
/// The paths come from cargo's own artifact messages, so `CARGO_TARGET_DIR`, `--target-dir` in
/// a config file and future target layouts are all honoured. Compiler diagnostics still reach
/// the terminal, rendered as usual.
pub fn build_binaries(root: &Path, profile: Profile) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let mut cmd = cargo(root);
    cmd.args(["build", "--bins", "--message-format=json-render-diagnostics"]);
    if profile == Profile::Release {
        cmd.arg("--release");
    }
    for package in BINARIES.iter().map(|b| b.package).chain(HELPER_PACKAGES.iter().map(|(p, _)| *p)) {
        cmd.args(["--package", package]);
    }
    let what = format!("cargo build --bins{}", if profile == Profile::Release { " --release" } else { "" });
    eprintln!("==> {what}");
    let mut child =
        cmd.stdout(Stdio::piped()).stdin(Stdio::null()).spawn().with_context(|| format!("cannot run {what}"))?;
    let stdout = child.stdout.take().expect("stdout was piped");
    let mut executables = BTreeMap::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.with_context(|| format!("reading the output of {what}"))?;
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        if let (Some(name), Some(exe)) = (message["target"]["name"].as_str(), message["executable"].as_str()) {
            executables.insert(name.to_owned(), PathBuf::from(exe));
        }
    }
    let status = child.wait().with_context(|| format!("waiting for {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    for name in BINARIES.iter().map(|b| b.name).chain(HELPER_PACKAGES.iter().map(|(_, n)| *n)) {
        if !executables.contains_key(name) {
            bail!("{what} did not report an executable named {name}");
        }
    }
    Ok(executables)
}

/// Quotes an argument the way a POSIX shell would need it, for transcripts and messages.
pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=,:@%+".contains(&b));
    if plain { arg.to_owned() } else { format!("'{}'", arg.replace('\'', r"'\''")) }
}

/// A command line as a user would type it: program name (without directory) and quoted args.
pub fn display_command(program: &str, args: &[&str]) -> String {
    std::iter::once(program.to_owned()).chain(args.iter().map(|a| shell_quote(a))).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtask_cli_is_well_formed() {
        cli().debug_assert();
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("virtio,bridge=vmbr0,firewall=1"), "virtio,bridge=vmbr0,firewall=1");
        assert_eq!(shell_quote("prod;web"), "'prod;web'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
