//! `cargo xtask bench net`: host networking figures, one function per measurement so more can
//! be added beside them.
//!
//! **NIC plumbing per guest start**: for N ports, each created (a veth pair) and plugged into a
//! bridge with its MTU and brought up, through hearth-net (what the VM and container start
//! paths run: `plug_port`, which also turns IPv6 off on the port) against the iproute2 path the
//! start paths ran before, one `ip` process per step (`ip link add … type veth peer …`, then
//! `ip link set dev P master BR`, `ip link set dev P mtu M`, `ip link set dev P up`). Every run
//! happens in a fresh private network namespace (a thread that unshared its own), so nothing on
//! the host is touched; medians over the runs.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hearth_net::{BridgeOptions, Netlink, PortPlug, VethPeer};

/// Ports per run of the plumbing measurement.
pub const PORTS: usize = 50;
const BRIDGE: &str = "benchbr0";
const MTU: u32 = 1450;

/// One measured figure: its label, the median over the runs and the runs' samples.
#[derive(Debug)]
pub struct Figure {
    pub label: String,
    pub samples: Vec<Duration>,
}

impl Figure {
    pub fn median_ms(&self) -> f64 {
        let mut samples = self.samples.clone();
        samples.sort();
        samples.get(samples.len() / 2).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    }
}

/// Runs `f` on a thread in a new, private network namespace (freed when the thread ends).
fn in_private_netns<T: Send>(f: impl FnOnce() -> anyhow::Result<T> + Send) -> anyhow::Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                    .context("unshare a network namespace (run as root)")?;
                f()
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the benchmark thread panicked"))?
    })
}

fn port_name(n: usize) -> (String, String) {
    (format!("bvh{n}"), format!("bvp{n}"))
}

/// Creates the bridge of a run through netlink (not timed).
fn bridge(nl: &mut Netlink) -> anyhow::Result<()> {
    nl.create_bridge(BRIDGE, &BridgeOptions::default())?;
    nl.set_up(BRIDGE, true)?;
    Ok(())
}

/// Checks that every port ended up in the bridge, up, with the MTU (not timed).
fn verify(nl: &mut Netlink, ports: usize) -> anyhow::Result<()> {
    for n in 0..ports {
        let link = nl.link(&port_name(n).0)?;
        if link.master.as_deref() != Some(BRIDGE) || !link.up || link.mtu != MTU {
            bail!("{} was not plugged: {link:?}", link.name);
        }
    }
    Ok(())
}

/// One run of the hearth-net path: `ports` veths created and plugged.
pub fn plumbing_netlink(ports: usize) -> anyhow::Result<Duration> {
    in_private_netns(|| {
        let mut nl = Netlink::open()?;
        bridge(&mut nl)?;
        nl.set_mtu(BRIDGE, 1500)?;
        let started = Instant::now();
        for n in 0..ports {
            let (host, peer) = port_name(n);
            nl.create_veth(&host, None, &VethPeer { name: peer, netns: None, mtu: None, mac: None })?;
            let plug = PortPlug { mtu: Some(MTU), ..PortPlug::new(&host, BRIDGE) };
            hearth_net::plug_port(&mut nl, &plug)?;
        }
        let elapsed = started.elapsed();
        verify(&mut nl, ports)?;
        Ok(elapsed)
    })
}

/// Runs one `ip` process (the anchor's way: a process per step).
fn ip(args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("/usr/sbin/ip")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .context("run /usr/sbin/ip (install iproute2)")?;
    if !status.success() {
        bail!("ip {} failed: {status}", args.join(" "));
    }
    Ok(())
}

/// One run of the previous iproute2 path: the same ports, one `ip` process per step.
pub fn plumbing_iproute2(ports: usize) -> anyhow::Result<Duration> {
    in_private_netns(|| {
        let mut nl = Netlink::open()?;
        bridge(&mut nl)?;
        let mtu = MTU.to_string();
        let started = Instant::now();
        for n in 0..ports {
            let (host, peer) = port_name(n);
            ip(&["link", "add", "name", &host, "type", "veth", "peer", "name", &peer])?;
            ip(&["link", "set", "dev", &host, "master", BRIDGE])?;
            ip(&["link", "set", "dev", &host, "mtu", &mtu])?;
            ip(&["link", "set", "dev", &host, "up"])?;
        }
        let elapsed = started.elapsed();
        verify(&mut nl, ports)?;
        Ok(elapsed)
    })
}

/// NIC plumbing: both paths, alternating, `runs` times each.
pub fn nic_plumbing(runs: usize) -> anyhow::Result<(Figure, Figure)> {
    let mut netlink = Figure { label: format!("hearth-net: {PORTS} veths created and plugged"), samples: Vec::new() };
    let mut iproute2 = Figure { label: format!("iproute2, a process per step: the same {PORTS}"), samples: Vec::new() };
    for _ in 0..runs {
        netlink.samples.push(plumbing_netlink(PORTS)?);
        iproute2.samples.push(plumbing_iproute2(PORTS)?);
    }
    Ok((netlink, iproute2))
}

/// `cargo xtask bench net`.
pub fn run(root: &Path, runs: usize) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("bench net creates network namespaces and links: run it as root");
    }
    if runs < 3 {
        bail!("--runs must be at least 3");
    }
    eprintln!("NIC plumbing: {PORTS} ports per run, {runs} runs of each path, each in a private network namespace");
    let (netlink, iproute2) = nic_plumbing(runs)?;
    println!("{}", report(&netlink, &iproute2, runs));
    let binaries = crate::build_binaries(root, crate::Profile::Release)?;
    let hearthd = binaries.get("hearthd").context("no hearthd binary")?;
    println!("{}", crate::bench_net_apply::run(hearthd, binaries.get("netctl"), runs)?);
    Ok(())
}

fn report(netlink: &Figure, iproute2: &Figure, runs: usize) -> String {
    let (a, b) = (netlink.median_ms(), iproute2.median_ms());
    let per = |ms: f64| ms / PORTS as f64;
    format!(
        "NIC plumbing per guest start (medians of {runs} runs)\n\
         {:<52} {a:>9.1} ms  ({:.2} ms per port)\n\
         {:<52} {b:>9.1} ms  ({:.2} ms per port)\n\
         ratio iproute2 / hearth-net: {:.1}x",
        netlink.label,
        per(a),
        iproute2.label,
        per(b),
        b / a
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_report() {
        let ms = Duration::from_millis;
        let a = Figure { label: "a".into(), samples: vec![ms(30), ms(10), ms(20)] };
        let b = Figure { label: "b".into(), samples: vec![ms(200), ms(100), ms(300)] };
        assert_eq!(a.median_ms(), 20.0);
        let text = report(&a, &b, 3);
        assert!(text.contains("ratio iproute2 / hearth-net: 10.0x"), "{text}");
        assert!(text.contains("medians of 3 runs"), "{text}");
    }
}
