//! `cargo xtask bench vm`: time from `vmctl start` to QEMU running, against the same QEMU
//! command line (from `vmctl showcmd`) started by hand and resumed over QMP, in one sitting;
//! and hearthd's memory with 20 VMs defined and 5 running.

use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hearth_client::Client;
use hearth_core::Vmid;
use hearth_proto::{CreateGuest, Payload, Request, TaskState, VmRequest};
use hearth_qemu::Qmp;

use crate::node::Node;
use crate::{Profile, build_binaries};

const DEFINED: u32 = 20;
const RUNNING: u32 = 5;
const RUNS: usize = 15;
const FIRST: u32 = 2000;
const GOAL_OVERHEAD_MS: f64 = 20.0;

fn median(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1000.0
}

fn vmctl(binary: &Path, root: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(binary).args(args).env("HEARTH_ROOT", root).stdin(Stdio::null()).output()?;
    if !out.status.success() {
        bail!("vmctl {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn create(root: &Path) -> anyhow::Result<()> {
    let mut client = Client::connect(root, "xtask-bench").context("cannot connect to hearthd")?;
    for i in 0..DEFINED {
        let vmid = Vmid::new(FIRST + i).context("benchmark ids are in range")?;
        let options = [("memory", "64"), ("kvm", "0"), ("serial0", "socket"), ("name", "bench")];
        let options = options.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let Payload::Task(upid) =
            client.call(&Request::Vm(VmRequest::Create(CreateGuest { vmid, options, ct: None })))?
        else {
            bail!("create answers with a task");
        };
        let info = client.follow(&upid, |_| {})?;
        if info.state != TaskState::Ok {
            bail!("creating {vmid}: {}", info.state.status_text());
        }
    }
    Ok(())
}

/// Starts the command line by hand, as a script would: QEMU daemonizes paused, then QMP
/// resumes it; answers the time until QEMU reports running.
fn start_by_hand(line: &str, qmp_socket: &Path) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let status = Command::new("sh").arg("-c").arg(line).stdin(Stdio::null()).status()?;
    if !status.success() {
        bail!("QEMU did not start: {line}");
    }
    let mut qmp = loop {
        match Qmp::connect(qmp_socket) {
            Ok(q) => break q,
            Err(_) if started.elapsed() < Duration::from_secs(10) => sleep(Duration::from_millis(1)),
            Err(e) => bail!("QMP does not answer: {e}"),
        }
    };
    qmp.cont()?;
    while !qmp.query_status()?.running {}
    let elapsed = started.elapsed();
    qmp.quit()?;
    Ok(elapsed)
}

fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")?;
    Ok(kib / 1024.0)
}

pub fn run(root: &Path) -> anyhow::Result<()> {
    let binaries = build_binaries(root, Profile::Release)?;
    let node = Node::start(&binaries["hearthd"], "bench")?;
    let result = measure(&binaries["vmctl"], &node);
    for i in 0..DEFINED {
        let _ = vmctl(&binaries["vmctl"], node.root(), &["stop", &(FIRST + i).to_string()]);
    }
    let report = result?;
    node.stop()?;
    print!("{report}");
    Ok(())
}

fn measure(vmctl_bin: &Path, node: &Node) -> anyhow::Result<String> {
    let root = node.root();
    create(root)?;
    let first = FIRST.to_string();
    let line = vmctl(vmctl_bin, root, &["showcmd", &first])?;
    let qmp_socket = std::fs::canonicalize(root)?.join(format!("run/hearth/qemu/{first}.qmp"));
    eprintln!("timing {RUNS} starts through vmctl and {RUNS} by hand, alternating");
    let (mut ours, mut hand) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let started = Instant::now();
        vmctl(vmctl_bin, root, &["start", &first])?;
        ours.push(started.elapsed());
        vmctl(vmctl_bin, root, &["stop", &first])?;
        hand.push(start_by_hand(line.trim(), &qmp_socket)?);
        sleep(Duration::from_millis(100));
    }
    for i in 0..RUNNING {
        vmctl(vmctl_bin, root, &["start", &(FIRST + i).to_string()])?;
    }
    sleep(Duration::from_secs(1));
    let rss = rss_mib(node.pid()?)?;
    let (ours, hand) = (median(ours), median(hand));
    let overhead = ours - hand;
    Ok(format!(
        "\nHearth VM start benchmark: QEMU under TCG, 64 MiB, no disks, release build, medians of {RUNS} runs, {} CPU(s)\n\n\
         vmctl start → running (whole process, task followed)   {ours:>8.1} ms\n\
         same command line by hand → running (sh + QMP cont)     {hand:>8.1} ms\n\
         Hearth's overhead                                       {overhead:>8.1} ms   goal ≤ {GOAL_OVERHEAD_MS} ms: {}\n\n\
         hearthd RSS with {DEFINED} VMs defined, {RUNNING} running: {rss:.1} MiB\n",
        std::thread::available_parallelism().map_or(0, usize::from),
        if overhead <= GOAL_OVERHEAD_MS { "met" } else { "MISSED" },
    ))
}
