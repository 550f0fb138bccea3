//! Turning one [`NodePlan`] into another on the host, all or nothing: VNet bridges with their
//! gateway addresses and VXLAN or VLAN ports, IPv4 forwarding, the SNAT table `inet hearth-sdn`
//! (one `nft -f -` transaction that touches no other table), and one dnsmasq per DHCP zone.
//!
//! Every step that changed something pushes its undo; when a step fails, the undos run in
//! reverse and the error names the step. Only what differs between the plans is touched: an
//! unchanged VNet bridge keeps its guest ports and never flaps.
//!
//! Links are made with iproute2 (`ip`, `bridge`), looked up in the system directories only and
//! given separate argv entries (no shell), like the container NIC code does.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hearth_core::sdn::{self, DhcpZone, IpamEntry, NodePlan, VnetBridge};

fn tool(name: &str) -> Result<PathBuf, String> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .ok_or_else(|| format!("{name} not found in /usr/sbin, /sbin, /usr/bin or /bin"))
}

/// Runs a tool; its stdout, or its stderr as the error.
pub(super) fn run(name: &str, args: &[&str]) -> Result<String, String> {
    run_with_input(name, args, None)
}

fn run_with_input(name: &str, args: &[&str], input: Option<&str>) -> Result<String, String> {
    let path = tool(name)?;
    let mut child = Command::new(&path)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {name}: {e}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes()).map_err(|e| format!("writing to {name}: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("waiting for {name}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        Err(format!("{name} {}: {}", args.join(" "), if err.is_empty() { out.status.to_string() } else { err }))
    }
}

/// What undoes one step that succeeded.
enum Undo {
    DeleteBridge(VnetBridge),
    CreateBridge(VnetBridge),
    Forwarding(String),
    Nft(String),
    StopDnsmasq(String),
    StartDnsmasq { zone: String, conf: Option<Vec<u8>>, ethers: Option<Vec<u8>> },
}

fn undo(root: &Path, step: Undo) {
    let result = match &step {
        Undo::DeleteBridge(b) => {
            delete_bridge(b);
            Ok(())
        }
        Undo::CreateBridge(b) => create_bridge(b),
        Undo::Forwarding(old) => std::fs::write(FORWARD, old).map_err(|e| e.to_string()),
        Undo::Nft(script) => run_with_input("nft", &["-f", "-"], Some(script)).map(|_| ()),
        Undo::StopDnsmasq(zone) => {
            stop_dnsmasq(root, zone);
            Ok(())
        }
        Undo::StartDnsmasq { zone, conf, ethers } => {
            let dir = zone_dir(root, zone);
            if let Some(conf) = conf {
                let _ = std::fs::write(dir.join("dnsmasq.conf"), conf);
            }
            if let Some(ethers) = ethers {
                let _ = std::fs::write(dir.join("ethers"), ethers);
            }
            start_dnsmasq(root, zone)
        }
    };
    if let Err(e) = result {
        tracing::error!("undoing an SDN step failed: {e}");
    }
}

const FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// Changes the host from `old` to `new`; on failure everything changed is undone.
pub(super) fn transition(root: &Path, old: &NodePlan, new: &NodePlan, ipam: &[IpamEntry]) -> Result<(), String> {
    let mut done: Vec<Undo> = Vec::new();
    let result = steps(root, old, new, ipam, &mut done);
    if result.is_err() {
        for step in done.into_iter().rev() {
            undo(root, step);
        }
    }
    result
}

fn steps(root: &Path, old: &NodePlan, new: &NodePlan, ipam: &[IpamEntry], done: &mut Vec<Undo>) -> Result<(), String> {
    let removed: Vec<&VnetBridge> = old.bridges.iter().filter(|b| !new.bridges.contains(b)).collect();
    let added: Vec<&VnetBridge> = new.bridges.iter().filter(|b| !old.bridges.contains(b)).collect();
    let touched = |zone: &DhcpZone| zone.vnets.iter().any(|v| removed.iter().chain(&added).any(|b| b.name == *v));
    let dhcp_changed = |zone: &DhcpZone, other: &[DhcpZone]| !other.contains(zone) || touched(zone);
    // DHCP servers of zones that change stop first: they bind to the bridges.
    for zone in old.dhcp.iter().filter(|z| dhcp_changed(z, &new.dhcp)) {
        let dir = zone_dir(root, &zone.zone);
        let conf = std::fs::read(dir.join("dnsmasq.conf")).ok();
        let ethers = std::fs::read(dir.join("ethers")).ok();
        stop_dnsmasq(root, &zone.zone);
        done.push(Undo::StartDnsmasq { zone: zone.zone.clone(), conf, ethers });
    }
    for bridge in &removed {
        delete_bridge(bridge);
        done.push(Undo::CreateBridge((*bridge).clone()));
    }
    for bridge in &added {
        create_bridge(bridge).map_err(|e| format!("creating VNet {}: {e}", bridge.name))?;
        done.push(Undo::DeleteBridge((*bridge).clone()));
    }
    if new.forward {
        let before = std::fs::read_to_string(FORWARD).map_err(|e| format!("reading {FORWARD}: {e}"))?;
        if before.trim() != "1" {
            std::fs::write(FORWARD, "1").map_err(|e| format!("turning on IPv4 forwarding: {e}"))?;
            done.push(Undo::Forwarding(before));
        }
    }
    if old.snat != new.snat {
        run_with_input("nft", &["-f", "-"], Some(&sdn::nft_ruleset(&new.snat)))
            .map_err(|e| format!("loading the SNAT rules: {e}"))?;
        done.push(Undo::Nft(sdn::nft_ruleset(&old.snat)));
    }
    for zone in new.dhcp.iter().filter(|z| dhcp_changed(z, &old.dhcp)) {
        write_dnsmasq_files(root, zone, ipam)?;
        start_dnsmasq(root, &zone.zone).map_err(|e| format!("starting dnsmasq of zone {}: {e}", zone.zone))?;
        done.push(Undo::StopDnsmasq(zone.zone.clone()));
    }
    // Zones without DHCP now: their files go.
    for zone in old.dhcp.iter().filter(|z| !new.dhcp.iter().any(|n| n.zone == z.zone)) {
        let _ = std::fs::remove_dir_all(zone_dir(root, &zone.zone));
    }
    Ok(())
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

fn create_bridge(b: &VnetBridge) -> Result<(), String> {
    if link_exists(&b.name) {
        return Err(format!("interface {} already exists", b.name));
    }
    let result = build_bridge(b);
    if result.is_err() {
        delete_bridge(b);
    }
    result
}

fn build_bridge(b: &VnetBridge) -> Result<(), String> {
    let name = b.name.as_str();
    let mut add = vec!["link", "add", "name", name, "type", "bridge"];
    if b.vlanaware {
        add.extend(["vlan_filtering", "1"]);
    }
    run("ip", &add).map_err(|e| {
        if b.vlanaware && e.contains("not supported") {
            format!("{e} (this kernel lacks 802.1Q bridge VLAN filtering)")
        } else {
            e
        }
    })?;
    if let Some(vx) = &b.vxlan {
        let vni = vx.vni.to_string();
        let local = vx.local.to_string();
        let port = vx.port.to_string();
        let mtu = vx.mtu.to_string();
        run(
            "ip",
            &["link", "add", &vx.name, "type", "vxlan", "id", &vni, "local", &local, "dstport", &port, "nolearning"],
        )?;
        run("ip", &["link", "set", &vx.name, "mtu", &mtu])?;
        // Head-end replication: broadcast and unknown unicast go to every peer.
        for remote in &vx.remotes {
            let dst = remote.to_string();
            run("bridge", &["fdb", "append", "00:00:00:00:00:00", "dev", &vx.name, "dst", &dst])?;
        }
        run("ip", &["link", "set", &vx.name, "master", name])?;
        run("ip", &["link", "set", &vx.name, "up"])?;
    }
    if let Some(vlan) = &b.vlan {
        let tag = vlan.tag.to_string();
        run("ip", &["link", "add", "link", &vlan.bridge, "name", &vlan.name, "type", "vlan", "id", &tag]).map_err(
            |e| {
                if e.contains("Unknown device type") {
                    format!("{e} (this kernel lacks 802.1Q VLAN devices)")
                } else {
                    e
                }
            },
        )?;
        run("ip", &["link", "set", &vlan.name, "master", name])?;
        run("ip", &["link", "set", &vlan.name, "up"])?;
    }
    if let Some(mtu) = b.mtu {
        run("ip", &["link", "set", name, "mtu", &mtu.to_string()])?;
    }
    for (ip, prefix) in &b.addresses {
        run("ip", &["addr", "add", &format!("{ip}/{prefix}"), "dev", name])?;
    }
    run("ip", &["link", "set", name, "up"])?;
    Ok(())
}

/// Removes a VNet bridge and the ports SDN made for it; what is already gone is no error.
fn delete_bridge(b: &VnetBridge) {
    let ports = b.vxlan.as_ref().map(|v| v.name.clone()).into_iter().chain(b.vlan.as_ref().map(|v| v.name.clone()));
    for link in ports.chain(std::iter::once(b.name.clone())) {
        if link_exists(&link)
            && let Err(e) = run("ip", &["link", "del", &link])
        {
            tracing::warn!("removing {link}: {e}");
        }
    }
}

fn zone_dir(root: &Path, zone: &str) -> PathBuf {
    super::state_dir(root).join("dnsmasq").join(zone)
}

fn write_dnsmasq_files(root: &Path, zone: &DhcpZone, ipam: &[IpamEntry]) -> Result<(), String> {
    let dir = zone_dir(root, &zone.zone);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let write = |name: &str, text: String| {
        crate::store::write_atomic(&dir.join(name), text.as_bytes()).map_err(|e| e.to_string())
    };
    write("dnsmasq.conf", sdn::dnsmasq_conf(zone, &dir))?;
    write("ethers", sdn::dnsmasq_ethers(&zone.zone, ipam))
}

fn dnsmasq_pid(root: &Path, zone: &str) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(zone_dir(root, zone).join("dnsmasq.pid")).ok()?.trim().parse().ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == "dnsmasq").then_some(pid)
}

/// Whether the zone's dnsmasq runs.
pub(super) fn dnsmasq_running(root: &Path, zone: &str) -> bool {
    dnsmasq_pid(root, zone).is_some()
}

/// Starts the zone's dnsmasq from its written configuration. dnsmasq checks its configuration
/// and binds its sockets before it goes to the background, so a failure (a port taken, an
/// interface missing) comes back here with dnsmasq's own message.
pub(super) fn start_dnsmasq(root: &Path, zone: &str) -> Result<(), String> {
    let dir = zone_dir(root, zone);
    let _ = std::fs::remove_file(dir.join("dnsmasq.pid"));
    let conf = format!("--conf-file={}", dir.join("dnsmasq.conf").display());
    run("dnsmasq", &[&conf])
        .map_err(|e| if e.contains("not found in") { format!("{e} (install the dnsmasq package)") } else { e })?;
    Ok(())
}

fn stop_dnsmasq(root: &Path, zone: &str) {
    let Some(pid) = dnsmasq_pid(root, zone) else { return };
    let pid = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(3);
    while dnsmasq_pid(root, zone).is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if dnsmasq_pid(root, zone).is_some() {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
    let _ = std::fs::remove_file(zone_dir(root, zone).join("dnsmasq.pid"));
}

/// Rewrites the MAC↔IP files of every zone that has a dnsmasq and has it read them again.
pub(super) fn refresh_ethers(root: &Path, ipam: &[IpamEntry]) -> Result<(), String> {
    let base = super::state_dir(root).join("dnsmasq");
    let Ok(zones) = std::fs::read_dir(&base) else { return Ok(()) };
    for zone in zones.filter_map(Result::ok) {
        let Ok(name) = zone.file_name().into_string() else { continue };
        let path = zone.path().join("ethers");
        let text = sdn::dnsmasq_ethers(&name, ipam);
        if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
            continue;
        }
        crate::store::write_atomic(&path, text.as_bytes()).map_err(|e| e.to_string())?;
        if let Some(pid) = dnsmasq_pid(root, &name) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGHUP);
        }
    }
    Ok(())
}
