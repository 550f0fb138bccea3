//! `cargo xtask bench cli`: whole-process wall time of the CLIs against a node with 1000 guests,
//! and hearthd's idle memory, printed next to the design goals.
//!
//! The guests are created through hearth-client on one connection (faster than 1000 CLI
//! processes, and it exercises the same requests). The timed commands are the release binaries
//! that `cargo build --release` reports, run with `HEARTH_ROOT` pointing at the node.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hearth_client::Client;
use hearth_core::Vmid;
use hearth_proto::{CreateGuest, CtRequest, Payload, Request, TaskState, VmRequest};

use crate::node::Node;
use crate::{Profile, build_binaries, display_command};

const VMS: u32 = 500;
const CONTAINERS: u32 = 500;
const FIRST_VMID: u32 = 1000;
const WARMUP_RUNS: usize = 20;
const TIMED_RUNS: usize = 200;
/// Design goals (DESIGN.md, "Performance goals").
const GOAL_P50_MS: f64 = 5.0;
const GOAL_IDLE_RSS_MIB: f64 = 15.0;

pub fn run_cli(root: &Path) -> anyhow::Result<()> {
    let binaries = build_binaries(root, Profile::Release)?;
    let node = Node::start(&binaries["hearthd"], "bench")?;
    let result = measure(&binaries, &node);
    if result.is_err() {
        eprintln!("hearthd's log:\n{}", node.log_text());
    }
    let report = result?;
    node.stop()?;
    print!("{report}");
    Ok(())
}

/// Fills the node, times each command and reads hearthd's memory; returns the printed report.
fn measure(binaries: &BTreeMap<String, PathBuf>, node: &Node) -> anyhow::Result<String> {
    let started = Instant::now();
    create_guests(node.root())?;
    eprintln!("created {VMS} VMs and {CONTAINERS} containers in {:.1} s", started.elapsed().as_secs_f64());

    let config_vmid = (FIRST_VMID + VMS / 2).to_string();
    let cases: [(&str, Vec<&str>); 4] = [
        ("vmctl", vec!["list"]),
        ("vmctl", vec!["list", "--output-format", "json"]),
        ("vmctl", vec!["config", &config_vmid]),
        ("ctctl", vec!["list"]),
    ];
    let mut rows = Vec::new();
    for (program, args) in &cases {
        let binary = binaries.get(*program).with_context(|| format!("{program} was not built"))?;
        let label = display_command(program, args);
        eprintln!("timing `{label}`: {WARMUP_RUNS} warm-up runs, {TIMED_RUNS} timed runs");
        let samples = time_command(binary, args, node.root(), &label)?;
        rows.push((label, Stats::of(samples)));
    }

    // Idle memory: after the runs, once hearthd has had a moment to settle.
    sleep(Duration::from_secs(1));
    let rss_mib = rss_kib(node.pid()?)? as f64 / 1024.0;
    Ok(report(&rows, rss_mib))
}

/// Creates [`VMS`] VMs and [`CONTAINERS`] containers, waiting for each create task.
fn create_guests(root: &Path) -> anyhow::Result<()> {
    let mut client = Client::connect(root, "xtask-bench").context("cannot connect to hearthd")?;
    for i in 0..VMS + CONTAINERS {
        let vmid = Vmid::new(FIRST_VMID + i).context("benchmark ids are in range")?;
        let request = if i < VMS {
            Request::Vm(VmRequest::Create(CreateGuest {
                vmid,
                options: options(&[
                    ("name", &format!("bench-vm{i}")),
                    ("memory", "2048"),
                    ("cores", "2"),
                    ("net0", "virtio,bridge=vmbr0,firewall=1"),
                    ("ostype", "l26"),
                    ("tags", "bench"),
                ]),
                ct: None,
            }))
        } else {
            Request::Ct(CtRequest::Create(CreateGuest {
                vmid,
                options: options(&[
                    ("hostname", &format!("bench-ct{i}")),
                    ("memory", "512"),
                    ("net0", "name=eth0,bridge=vmbr0,ip=dhcp"),
                    ("tags", "bench"),
                ]),
                ct: None,
            }))
        };
        let upid = match client.call(&request).with_context(|| format!("creating guest {vmid}"))? {
            Payload::Task(upid) => upid,
            other => bail!("creating guest {vmid}: expected a task, hearthd answered {other:?}"),
        };
        let info = client.follow(&upid, |_| {}).with_context(|| format!("following the task {upid}"))?;
        if !matches!(info.state, TaskState::Ok | TaskState::Warnings { .. }) {
            bail!("creating guest {vmid}: task {upid} ended with {}", info.state.status_text());
        }
    }
    Ok(())
}

fn options(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Wall time of whole processes, spawn to exit, output collected through pipes as a script
/// would. Every run must succeed.
fn time_command(binary: &Path, args: &[&str], root: &Path, label: &str) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(TIMED_RUNS);
    for run in 0..WARMUP_RUNS + TIMED_RUNS {
        let started = Instant::now();
        let output = Command::new(binary)
            .args(args)
            .env("HEARTH_ROOT", root)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        let elapsed = started.elapsed();
        if !output.status.success() {
            bail!("`{label}` failed ({}):\n{}", output.status, String::from_utf8_lossy(&output.stderr));
        }
        if run >= WARMUP_RUNS {
            samples.push(elapsed);
        }
    }
    Ok(samples)
}

/// Resident memory of a process in KiB, from `/proc/<pid>/status`.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_vm_rss(&status).with_context(|| format!("no VmRSS line in {path}"))
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    line.trim().strip_suffix("kB")?.trim().parse().ok()
}

/// Summary of timed runs, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stats {
    min: f64,
    p50: f64,
    p90: f64,
    max: f64,
}

impl Stats {
    fn of(mut samples: Vec<Duration>) -> Stats {
        samples.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        // Nearest-rank percentiles: the smallest sample with at least p of the runs at or below it.
        let pct = |p: f64| {
            let rank = (p * samples.len() as f64).ceil() as usize;
            ms(samples[rank.clamp(1, samples.len()) - 1])
        };
        Stats { min: ms(samples[0]), p50: pct(0.5), p90: pct(0.9), max: ms(samples[samples.len() - 1]) }
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

fn report(rows: &[(String, Stats)], rss_mib: f64) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "\nHearth CLI benchmark: {} guests on the node ({VMS} VMs, {CONTAINERS} containers), release build,\n\
         whole-process wall time of {TIMED_RUNS} runs after {WARMUP_RUNS} warm-up runs, {} CPU(s)\n\n",
        VMS + CONTAINERS,
        std::thread::available_parallelism().map_or(0, usize::from),
    ));
    let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    out.push_str(&format!(
        "{:<width$}  {:>8}  {:>8}  {:>8}  {:>8}   goal\n",
        "command", "min ms", "p50 ms", "p90 ms", "max ms"
    ));
    for (label, s) in rows {
        out.push_str(&format!(
            "{label:<width$}  {:>8.2}  {:>8.2}  {:>8.2}  {:>8.2}   p50 ≤ {GOAL_P50_MS} ms: {}\n",
            s.min,
            s.p50,
            s.p90,
            s.max,
            verdict(s.p50 <= GOAL_P50_MS)
        ));
    }
    out.push_str(&format!(
        "\nhearthd idle RSS (1 s after the runs): {rss_mib:.1} MiB   goal ≤ {GOAL_IDLE_RSS_MIB} MiB: {}\n",
        verdict(rss_mib <= GOAL_IDLE_RSS_MIB)
    ));
    out.push_str(
        "\nanchor: Proxmox VE's `qm list` / `qm config` — a Perl process that takes hundreds of ms per call.\n\
         It cannot be installed on this machine (it needs a Proxmox VE host), so it is not measured side by side.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=10).rev().map(Duration::from_millis).collect();
        let s = Stats::of(samples);
        assert_eq!((s.min, s.p50, s.p90, s.max), (1.0, 5.0, 9.0, 10.0));
        let one = Stats::of(vec![Duration::from_millis(3)]);
        assert_eq!((one.min, one.p50, one.p90, one.max), (3.0, 3.0, 3.0, 3.0));
    }

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\thearthd\nVmPeak:\t  20000 kB\nVmRSS:\t    7168 kB\nThreads:\t2\n";
        assert_eq!(parse_vm_rss(status), Some(7168));
        assert_eq!(parse_vm_rss("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn report_names_goals_and_anchor() {
        let stats = Stats { min: 1.0, p50: 2.0, p90: 3.0, max: 9.0 };
        let text = report(&[("vmctl list".into(), stats)], 20.0);
        assert!(text.contains("p50 ≤ 5 ms: met"), "{text}");
        assert!(text.contains("≤ 15 MiB: MISSED"), "{text}");
        assert!(text.contains("qm"), "{text}");
    }
}
