//! `cargo xtask bench fw`: the firewall compiler and the kernel path, in one sitting.
//!
//! 1. Compile + apply of 1000 guests × 10 rules (one firewalled NIC each): hearth-fw's
//!    compile and one `nft -f` transaction into a private network namespace; median of runs.
//! 2. TCP throughput (iperf3, 3 s) between two namespaces bridged in a third, with the
//!    firewall off and on (a guest port with conntrack, rules and policy); medians of runs,
//!    alternating, and the ratio.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hearth_core::firewall::{FirewallConfig, fwfile};
use hearth_fw::{FirewallInput, GuestFirewall, GuestNic, Nft, compile};

const GUESTS: u32 = 1000;
const RULES: usize = 10;
/// Goal from the design: compile + apply of 1000 guests × 10 rules.
const GOAL_APPLY_MS: f64 = 200.0;
const GOAL_RATIO: f64 = 0.9;

fn sh(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(args[0]).args(&args[1..]).output().with_context(|| format!("running {}", args[0]))?;
    if !out.status.success() {
        bail!("{args:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Network namespaces removed on drop.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn many_guests() -> anyhow::Result<FirewallInput> {
    let cluster = fwfile::parse(
        "[OPTIONS]\nenable: 1\n[IPSET mgmt]\n10.0.0.0/24\n!10.0.0.9\n[group web]\nIN ACCEPT -p tcp -dport 80\nIN HTTPS(ACCEPT)\n",
    )?;
    let mut guests = Vec::new();
    for i in 0..GUESTS {
        let vmid = 100 + i;
        let mut text = String::from("[OPTIONS]\nenable: 1\nipfilter: 1\n[RULES]\n");
        let lines = [
            "GROUP web".to_string(),
            "IN SSH(ACCEPT) -source +mgmt".to_string(),
            format!("IN ACCEPT -p tcp -dport {}", 1000 + i % 500),
            "IN ACCEPT -p udp -dport 53 -source 10.1.0.0/16".to_string(),
            "IN REJECT -p tcp -dport 23".to_string(),
            format!("IN ACCEPT -source 10.2.{}.0/24 -p tcp -dport 5000:5100", i % 250),
            "IN Ping(ACCEPT)".to_string(),
            "OUT DROP -p tcp -dport 25".to_string(),
            "OUT ACCEPT -dest 10.3.0.0/16".to_string(),
            "IN DROP -p udp -dport 137:139 -log info".to_string(),
        ];
        debug_assert_eq!(lines.len(), RULES);
        text.push_str(&lines.join("\n"));
        text.push('\n');
        guests.push(GuestFirewall {
            vmid,
            config: fwfile::parse(&text)?,
            nics: vec![GuestNic {
                index: 0,
                port: format!("tap{vmid}i0"),
                mac: Some(format!("bc:24:11:00:{:02x}:{:02x}", i / 256, i % 256)),
                ips: vec![],
                firewall: true,
            }],
        });
    }
    Ok(FirewallInput { cluster, host: FirewallConfig::default(), guests })
}

/// Compile + apply of a rule edit on one guest of the thousand, as hearthd applies it: the
/// whole configuration compiled, only the changed chain written.
fn bench_edit(nft: &Nft, input: &FirewallInput, runs: usize) -> anyhow::Result<f64> {
    let mut old = compile(input).map_err(|e| anyhow::anyhow!("{e}"))?;
    nft.apply(&old.to_nft())?;
    let mut times = Vec::new();
    for run in 0..runs {
        let mut edited = input.clone();
        let line = format!("IN ACCEPT -p tcp -dport {}", 2000 + run);
        edited.guests[500]
            .config
            .rules
            .insert(0, hearth_core::firewall::Rule::parse_line(&line).map_err(|e| anyhow::anyhow!("{e}"))?);
        let t = Instant::now();
        let rs = compile(&edited).map_err(|e| anyhow::anyhow!("{e}"))?;
        let delta = rs.delta_nft(&old).context("a rule edit is a delta")?;
        nft.apply(&delta)?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        old = rs;
    }
    Ok(median(times))
}

fn bench_apply(runs: usize) -> anyhow::Result<(f64, f64, usize, f64)> {
    let ns = format!("hfb{:04x}", std::process::id() & 0xffff);
    sh(&["ip", "netns", "add", &ns])?;
    let _guard = Namespaces(vec![ns.clone()]);
    let nft = Nft::in_netns(&PathBuf::from(format!("/run/netns/{ns}")));
    let input = many_guests()?;
    let (mut compile_ms, mut total_ms) = (Vec::new(), Vec::new());
    let mut size = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let rs = compile(&input).map_err(|e| anyhow::anyhow!("{e}"))?;
        let script = rs.to_nft();
        compile_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        nft.apply(&script)?;
        total_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        size = script.len();
    }
    let edit_ms = bench_edit(&nft, &input, runs)?;
    Ok((median(compile_ms), median(total_ms), size, edit_ms))
}

struct Pair {
    host: String,
    a: String,
    b: String,
    _ns: Namespaces,
}

fn pair() -> anyhow::Result<Pair> {
    let sfx = format!("{:04x}", (std::process::id() + 1) & 0xffff);
    let (host, a, b) = (format!("hfbh{sfx}"), format!("hfba{sfx}"), format!("hfbb{sfx}"));
    for ns in [&host, &a, &b] {
        sh(&["ip", "netns", "add", ns])?;
    }
    let guard = Namespaces(vec![host.clone(), a.clone(), b.clone()]);
    sh(&["ip", "-n", &host, "link", "add", "br0", "type", "bridge"])?;
    sh(&["ip", "-n", &host, "link", "add", "vout", "type", "veth", "peer", "name", "eth0", "netns", &a])?;
    sh(&["ip", "-n", &host, "link", "add", "tap100i0", "type", "veth", "peer", "name", "eth0", "netns", &b])?;
    for d in ["br0", "vout", "tap100i0"] {
        sh(&["ip", "-n", &host, "link", "set", d, "up"])?;
    }
    sh(&["ip", "-n", &host, "link", "set", "vout", "master", "br0"])?;
    sh(&["ip", "-n", &host, "link", "set", "tap100i0", "master", "br0"])?;
    for (ns, addr) in [(&a, "10.8.0.1/24"), (&b, "10.8.0.2/24")] {
        sh(&["ip", "-n", ns, "addr", "add", addr, "dev", "eth0"])?;
        sh(&["ip", "-n", ns, "link", "set", "eth0", "up"])?;
        sh(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
    }
    sh(&["ip", "-n", &b, "link", "set", "eth0", "address", "bc:24:11:00:00:01"])?;
    Ok(Pair { host, a, b, _ns: guard })
}

fn iperf(p: &Pair) -> anyhow::Result<f64> {
    let out = Command::new("ip")
        .args(["netns", "exec", &p.a, "iperf3", "-c", "10.8.0.2", "-t", "3", "-J"])
        .output()
        .context("running iperf3 (apt-get install iperf3)")?;
    if !out.status.success() {
        bail!("iperf3: {}", String::from_utf8_lossy(&out.stdout).chars().take(400).collect::<String>());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    v["end"]["sum_received"]["bits_per_second"].as_f64().map(|b| b / 1e9).context("iperf3 reported no throughput")
}

fn bench_throughput(runs: usize) -> anyhow::Result<(f64, f64)> {
    let p = pair()?;
    let mut server: Child = Command::new("ip")
        .args(["netns", "exec", &p.b, "iperf3", "-s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("running iperf3 (apt-get install iperf3)")?;
    std::thread::sleep(Duration::from_millis(300));
    let nft = Nft::in_netns(&PathBuf::from(format!("/run/netns/{}", p.host)));
    let input = FirewallInput {
        cluster: fwfile::parse("[OPTIONS]\nenable: 1\n")?,
        host: FirewallConfig::default(),
        guests: vec![GuestFirewall {
            vmid: 100,
            config: fwfile::parse(
                "[OPTIONS]\nenable: 1\nipfilter: 1\n[IPSET ipfilter-net0]\n10.8.0.2\n[RULES]\nIN SSH(ACCEPT)\nIN ACCEPT -p tcp -dport 5201 -source 10.8.0.0/24\nIN REJECT -p tcp -dport 23\n",
            )?,
            nics: vec![GuestNic {
                index: 0,
                port: "tap100i0".into(),
                mac: Some("bc:24:11:00:00:01".into()),
                ips: vec![],
                firewall: true,
            }],
        }],
    };
    let on = compile(&input).map_err(|e| anyhow::anyhow!("{e}"))?.to_nft();
    let result = (|| {
        let (mut off_v, mut on_v) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            nft.remove()?;
            off_v.push(iperf(&p)?);
            nft.apply(&on)?;
            on_v.push(iperf(&p)?);
        }
        Ok((median(off_v), median(on_v)))
    })();
    let _ = server.kill();
    let _ = server.wait();
    result
}

pub fn run(runs: usize) -> anyhow::Result<()> {
    if runs < 3 {
        bail!("--runs: at least 3");
    }
    let (compile_ms, total_ms, size, edit_ms) = bench_apply(runs)?;
    println!(
        "firewall compile + apply, {GUESTS} guests × {RULES} rules ({} KiB of nft): compile {compile_ms:.1} ms, compile + apply {total_ms:.1} ms (median of {runs}; goal ≤ {GOAL_APPLY_MS} ms)",
        size / 1024
    );
    println!(
        "firewall rule edit on one guest of {GUESTS}: compile + apply of the changed chain {edit_ms:.1} ms (median of {runs}; goal ≤ {GOAL_APPLY_MS} ms)"
    );
    let (off, on) = bench_throughput(runs)?;
    println!(
        "throughput between two namespaces through a bridge (iperf3, 3 s): firewall off {off:.2} Gbit/s, on {on:.2} Gbit/s, ratio {:.2} (median of {runs}; goal ≥ {GOAL_RATIO})",
        on / off
    );
    Ok(())
}
