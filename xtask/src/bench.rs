//! `cargo xtask bench cli`: whole-process wall time of the CLIs against nodes full of guests,
//! each next to its anchor measured in the same run, and hearthd's idle memory.
//!
//! Three nodes, each its own hearthd on its own root: one with 1000 VMs, one with 1000
//! containers, one with 10 000 VMs (sizes can be lowered for a quick check). The guests are
//! created through hearth-client on one connection (faster than thousands of CLI processes, and
//! the same requests); then hearthd is restarted, so its memory is read before it served any
//! request, and read again after all runs.
//!
//! A suite is one node's commands. It runs `runs` times (at least 3); each run times every
//! command and its anchor `samples` times, alternating, after a warm-up, and keeps their p50s
//! and the ratio. The report gives, per command, the median over the runs of those p50s and
//! ratios, and says how many runs it took the median of. Anchors: `ls -l` of the guests'
//! configuration folder for listings, `cat` of one configuration file for `config` and `status`.

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

const FIRST_VMID: u32 = 1000;
const NODE_NAME: &str = "bench";
/// Design goals (DESIGN.md, "Performance goals").
const GOAL_LIST_MS: f64 = 5.0;
const GOAL_LIST_BIG_MS: f64 = 25.0;
const GOAL_CONFIG_MS: f64 = 2.0;
const GOAL_IDLE_RSS_MIB: f64 = 15.0;

/// How much `cargo xtask bench cli` does.
#[derive(Clone, Copy, Debug)]
pub struct CliBench {
    /// VMs on the first node.
    pub vms: u32,
    /// Containers on the second node.
    pub cts: u32,
    /// VMs on the third node (0: no third node).
    pub many_vms: u32,
    /// Runs per suite; the report gives medians over them (at least 3).
    pub runs: usize,
    /// Timed samples of each command and anchor per run.
    pub samples: usize,
    /// Untimed runs of each command before a run's samples.
    pub warmup: usize,
}

impl Default for CliBench {
    fn default() -> Self {
        CliBench { vms: 1000, cts: 1000, many_vms: 10_000, runs: 5, samples: 50, warmup: 5 }
    }
}

pub fn run_cli(root: &Path, bench: CliBench) -> anyhow::Result<()> {
    if bench.runs < 3 {
        bail!("--runs must be at least 3: the report gives medians over runs");
    }
    if bench.samples == 0 || bench.vms == 0 || bench.cts == 0 {
        bail!("--samples, --vms and --cts must be at least 1");
    }
    let binaries = build_binaries(root, Profile::Release)?;
    let mut suites = vec![("VMs", GuestSet::Vms(bench.vms)), ("containers", GuestSet::Cts(bench.cts))];
    if bench.many_vms > 0 {
        suites.push(("VMs", GuestSet::Vms(bench.many_vms)));
    }
    let mut report = header(&bench);
    for (_, guests) in suites {
        report.push_str(&suite(&binaries, guests, &bench)?);
    }
    print!("{report}");
    Ok(())
}

/// What one node holds.
#[derive(Clone, Copy, Debug)]
enum GuestSet {
    Vms(u32),
    Cts(u32),
}

impl GuestSet {
    fn count(self) -> u32 {
        match self {
            GuestSet::Vms(n) | GuestSet::Cts(n) => n,
        }
    }

    fn describe(self) -> String {
        match self {
            GuestSet::Vms(n) => format!("{n} VMs"),
            GuestSet::Cts(n) => format!("{n} containers"),
        }
    }

    fn config_dir(self) -> &'static str {
        match self {
            GuestSet::Vms(_) => "qemu",
            GuestSet::Cts(_) => "lxc",
        }
    }
}

/// A timed command and the anchor it is compared with.
struct Case {
    label: String,
    program: PathBuf,
    args: Vec<String>,
    anchor_label: String,
    anchor: Vec<String>,
    goal_ms: Option<f64>,
}

/// One run's result for a case.
#[derive(Clone, Copy, Debug)]
struct RunResult {
    p50_ms: f64,
    anchor_p50_ms: f64,
}

/// Builds a node, restarts its hearthd, reads its memory, runs the cases `runs` times and
/// reads its memory again; answers the suite's part of the report.
fn suite(binaries: &BTreeMap<String, PathBuf>, guests: GuestSet, bench: &CliBench) -> anyhow::Result<String> {
    let hearthd = binaries.get("hearthd").context("hearthd was not built")?;
    let mut node = Node::start(hearthd, NODE_NAME)?;
    let result = (|| -> anyhow::Result<String> {
        let started = Instant::now();
        create_guests(node.root(), guests)?;
        eprintln!("created {} in {:.1} s", guests.describe(), started.elapsed().as_secs_f64());
        node.restart()?;
        // Idle: started, guests defined, no request served yet.
        sleep(Duration::from_millis(500));
        let rss_before = rss_kib(node.pid()?)? as f64 / 1024.0;
        let cases = cases(binaries, node.root(), guests)?;
        let mut results: Vec<Vec<RunResult>> = vec![Vec::new(); cases.len()];
        for run in 1..=bench.runs {
            eprintln!("{}: run {run} of {}", guests.describe(), bench.runs);
            for (case, results) in cases.iter().zip(&mut results) {
                results.push(time_case(case, node.root(), bench)?);
            }
        }
        sleep(Duration::from_secs(1));
        let rss_after = rss_kib(node.pid()?)? as f64 / 1024.0;
        Ok(suite_report(guests, bench, &cases, &results, rss_before, rss_after))
    })();
    if result.is_err() {
        eprintln!("hearthd's log:\n{}", node.log_text());
    }
    let report = result?;
    node.stop()?;
    Ok(report)
}

/// The commands of a suite: listings on every node, `config` and `status` on the VM nodes.
fn cases(binaries: &BTreeMap<String, PathBuf>, root: &Path, guests: GuestSet) -> anyhow::Result<Vec<Case>> {
    let dir = root.join("etc/hearth/nodes").join(NODE_NAME).join(guests.config_dir());
    let dir = dir.to_str().context("the node root is UTF-8")?.to_owned();
    let middle = (FIRST_VMID + guests.count() / 2).to_string();
    let file = format!("{dir}/{middle}.toml");
    let binary = |program: &str| binaries.get(program).cloned().with_context(|| format!("{program} was not built"));
    let big = guests.count() > 1000;
    let list_goal = Some(if big { GOAL_LIST_BIG_MS } else { GOAL_LIST_MS });
    let ls = vec!["ls".to_owned(), "-l".to_owned(), dir.clone()];
    let cat = vec!["cat".to_owned(), file.clone()];
    let case = |program: &str, args: &[&str], anchor: &[String], goal_ms: Option<f64>| -> anyhow::Result<Case> {
        Ok(Case {
            label: display_command(program, args),
            program: binary(program)?,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            anchor_label: anchor_label(anchor),
            anchor: anchor.to_vec(),
            goal_ms,
        })
    };
    Ok(match guests {
        GuestSet::Vms(_) => {
            let mut cases = vec![
                case("vmctl", &["list"], &ls, list_goal)?,
                case("vmctl", &["list", "--output-format", "json"], &ls, list_goal)?,
            ];
            if !big {
                cases.push(case("vmctl", &["config", &middle], &cat, Some(GOAL_CONFIG_MS))?);
                cases.push(case("vmctl", &["status", &middle], &cat, None)?);
            }
            cases
        }
        GuestSet::Cts(_) => vec![case("ctctl", &["list"], &ls, list_goal)?],
    })
}

/// `ls -l …/qemu` with the node root shortened, for the report.
fn anchor_label(anchor: &[String]) -> String {
    anchor
        .iter()
        .map(|a| match a.find("/etc/hearth/") {
            Some(at) => format!("<root>{}", &a[at..]),
            None => a.clone(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Creates the node's guests, waiting for each create task.
fn create_guests(root: &Path, guests: GuestSet) -> anyhow::Result<()> {
    let mut client = Client::connect(root, "xtask-bench").context("cannot connect to hearthd")?;
    for i in 0..guests.count() {
        let vmid = Vmid::new(FIRST_VMID + i).context("benchmark ids are in range")?;
        let request = match guests {
            GuestSet::Vms(_) => Request::Vm(VmRequest::Create(CreateGuest {
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
            })),
            GuestSet::Cts(_) => Request::Ct(CtRequest::Create(CreateGuest {
                vmid,
                options: options(&[
                    ("hostname", &format!("bench-ct{i}")),
                    ("memory", "512"),
                    ("net0", "name=eth0,bridge=vmbr0,ip=dhcp"),
                    ("tags", "bench"),
                ]),
                ct: None,
            })),
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

/// One run of a case: warm-up, then `samples` timings of the command and of its anchor,
/// alternating so both see the same machine.
fn time_case(case: &Case, root: &Path, bench: &CliBench) -> anyhow::Result<RunResult> {
    let mut ours = Vec::with_capacity(bench.samples);
    let mut anchor = Vec::with_capacity(bench.samples);
    for _ in 0..bench.warmup {
        time_process(&case.program, &case.args, root, &case.label)?;
        time_process(Path::new(&case.anchor[0]), &case.anchor[1..], root, &case.anchor_label)?;
    }
    for _ in 0..bench.samples {
        ours.push(time_process(&case.program, &case.args, root, &case.label)?);
        anchor.push(time_process(Path::new(&case.anchor[0]), &case.anchor[1..], root, &case.anchor_label)?);
    }
    Ok(RunResult { p50_ms: Stats::of(ours).p50, anchor_p50_ms: Stats::of(anchor).p50 })
}

/// Wall time of one whole process, spawn to exit, output collected through pipes as a script
/// would. It must succeed.
fn time_process(program: &Path, args: &[String], root: &Path, label: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let output = Command::new(program)
        .args(args)
        .env("HEARTH_ROOT", root)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", program.display()))?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        bail!("`{label}` failed ({}):\n{}", output.status, String::from_utf8_lossy(&output.stderr));
    }
    Ok(elapsed)
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

/// Summary of timed samples, in milliseconds.
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

/// The median of values (the mean of the middle two for an even count).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

fn header(bench: &CliBench) -> String {
    format!(
        "\nHearth CLI benchmark: release build, whole-process wall time, {} CPU(s).\n\
         Each suite is {} runs; a run times each command and its anchor {} times, alternating, after {} warm-up\n\
         runs of each, and keeps their p50s. Reported: the median over the runs of those p50s and of the ratios,\n\
         and the spread (lowest–highest) of the runs' p50s.\n",
        std::thread::available_parallelism().map_or(0, usize::from),
        bench.runs,
        bench.samples,
        bench.warmup,
    )
}

fn suite_report(
    guests: GuestSet,
    bench: &CliBench,
    cases: &[Case],
    results: &[Vec<RunResult>],
    rss_before: f64,
    rss_after: f64,
) -> String {
    let mut out = format!("\n== {} on one node: median of {} runs ==\n", guests.describe(), bench.runs);
    let width = cases.iter().flat_map(|c| [c.label.len(), c.anchor_label.len() + 9]).max().unwrap_or(0);
    out.push_str(&format!("{:<width$}  {:>8}  {:>15}  {:>7}   goal\n", "command", "p50 ms", "runs' p50 ms", "ratio"));
    for (case, runs) in cases.iter().zip(results) {
        let ours: Vec<f64> = runs.iter().map(|r| r.p50_ms).collect();
        let anchors: Vec<f64> = runs.iter().map(|r| r.anchor_p50_ms).collect();
        let ratios: Vec<f64> = runs.iter().map(|r| r.p50_ms / r.anchor_p50_ms).collect();
        let spread = |v: &[f64]| {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(0.0, f64::max);
            format!("{lo:.2}–{hi:.2}")
        };
        let p50 = median(&ours);
        let goal = case.goal_ms.map_or_else(String::new, |g| format!("p50 ≤ {g} ms: {}", verdict(p50 <= g)));
        out.push_str(&format!(
            "{:<width$}  {p50:>8.2}  {:>15}  {:>6.2}×   {goal}\n",
            case.label,
            spread(&ours),
            median(&ratios)
        ));
        out.push_str(&format!(
            "{:<width$}  {:>8.2}  {:>15}\n",
            format!("  anchor: {}", case.anchor_label),
            median(&anchors),
            spread(&anchors)
        ));
    }
    let goal = if guests.count() <= 1000 {
        format!("   goal ≤ {GOAL_IDLE_RSS_MIB} MiB: {}", verdict(rss_before.max(rss_after) <= GOAL_IDLE_RSS_MIB))
    } else {
        String::new()
    };
    out.push_str(&format!(
        "hearthd RSS: {rss_before:.1} MiB idle before any request, {rss_after:.1} MiB 1 s after the runs{goal}\n"
    ));
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
    fn medians_are_of_the_middle() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        // Not the best run: the middle one.
        assert_eq!(median(&[10.0, 50.0, 12.0]), 12.0);
    }

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\thearthd\nVmPeak:\t  20000 kB\nVmRSS:\t    7168 kB\nThreads:\t2\n";
        assert_eq!(parse_vm_rss(status), Some(7168));
        assert_eq!(parse_vm_rss("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn report_names_goals_anchors_and_runs() {
        let bench = CliBench { runs: 3, ..CliBench::default() };
        let case = Case {
            label: "vmctl list".into(),
            program: PathBuf::from("vmctl"),
            args: vec!["list".into()],
            anchor_label: anchor_label(&["ls".into(), "-l".into(), "/tmp/x/root/etc/hearth/nodes/bench/qemu".into()]),
            anchor: vec![],
            goal_ms: Some(GOAL_LIST_MS),
        };
        let runs = vec![
            RunResult { p50_ms: 4.0, anchor_p50_ms: 2.0 },
            RunResult { p50_ms: 9.0, anchor_p50_ms: 3.0 },
            RunResult { p50_ms: 3.0, anchor_p50_ms: 3.0 },
        ];
        let text = suite_report(GuestSet::Vms(1000), &bench, &[case], &[runs], 9.0, 20.0);
        assert!(text.contains("median of 3 runs"), "{text}");
        assert!(text.contains("p50 ≤ 5 ms: met"), "{text}");
        assert!(text.contains("anchor: ls -l <root>/etc/hearth/nodes/bench/qemu"), "{text}");
        assert!(text.contains("3.00–9.00"), "{text}");
        assert!(text.contains("2.00×"), "{text}");
        assert!(text.contains("before any request"), "{text}");
        assert!(text.contains("≤ 15 MiB: MISSED"), "{text}");
    }
}
