//! Turning one [`NodePlan`] into another on the host, all or nothing: VNet bridges with their
//! gateway addresses and VXLAN or VLAN ports, IPv4 forwarding, the SNAT table `inet hearth-sdn`
//! (one `nft -f -` transaction that touches no other table), and one dnsmasq per DHCP zone.
//!
//! Every step that changed something pushes its undo; when a step fails, the undos run in
//! reverse and the error names the step. Only what differs between the plans is touched: an
//! unchanged VNet bridge keeps its guest ports and never flaps.
//!
//! Links are made through hearth-net (netlink); `nft` and `dnsmasq` are run as programs, looked
//! up in the system directories only and given separate argv entries (no shell).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hearth_core::sdn::{self, DhcpZone, IpamEntry, NodePlan, VnetBridge};
use hearth_net::{BridgeOptions, IpCidr, NetError, Netlink, VlanProtocol, VlanRange, VxlanOptions};

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
    /// A bridge to make again, with the guest ports it had.
    CreateBridge(VnetBridge, Vec<String>),
    /// From, to.
    UpdateBridge(VnetBridge, VnetBridge),
    Forwarding(String),
    Nft(String),
    StopDnsmasq(String),
    StartDnsmasq {
        zone: String,
        conf: Option<Vec<u8>>,
        ethers: Option<Vec<u8>>,
    },
    /// The files of a zone that had no dnsmasq before.
    RemoveZoneFiles(String),
}

fn undo(root: &Path, step: Undo) {
    let result = match &step {
        Undo::DeleteBridge(b) => {
            delete_bridge(b);
            Ok(())
        }
        Undo::CreateBridge(b, ports) => create_bridge(b).map(|()| replug(&b.name, ports)),
        Undo::UpdateBridge(from, to) => update_bridge(from, to),
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
        Undo::RemoveZoneFiles(zone) => match std::fs::remove_dir_all(zone_dir(root, zone)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
            _ => Ok(()),
        },
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

/// After an interrupted apply: removes everything any of `seen` made (bridges and their ports,
/// dnsmasq instances, the SNAT table), then builds `target` from nothing.
pub(super) fn rebuild(root: &Path, seen: &[&NodePlan], target: &NodePlan, ipam: &[IpamEntry]) -> Result<(), String> {
    // Guests' ports go back into the bridges of the same name that are made again.
    let mut plugged: Vec<(String, Vec<String>)> = Vec::new();
    for plan in seen {
        for zone in &plan.dhcp {
            stop_dnsmasq(root, &zone.zone);
        }
        for bridge in &plan.bridges {
            let ports = guest_ports(bridge);
            if !ports.is_empty() {
                plugged.push((bridge.name.clone(), ports));
            }
            delete_bridge(bridge);
        }
    }
    run_with_input("nft", &["-f", "-"], Some(&sdn::nft_ruleset(&[])))
        .map_err(|e| format!("removing the SNAT table: {e}"))?;
    transition(root, &NodePlan::default(), target, ipam)?;
    for (bridge, ports) in &plugged {
        if target.bridges.iter().any(|b| b.name == *bridge) {
            replug(bridge, ports);
        }
    }
    Ok(())
}

fn steps(root: &Path, old: &NodePlan, new: &NodePlan, ipam: &[IpamEntry], done: &mut Vec<Undo>) -> Result<(), String> {
    // A bridge whose ports stay the same changes in place (addresses, MTU): its guests never
    // notice. Others are made again, and the guest ports they had are plugged back.
    let updated: Vec<(&VnetBridge, &VnetBridge)> = old
        .bridges
        .iter()
        .filter_map(|o| new.bridges.iter().find(|n| n.name == o.name && *n != o && in_place(o, n)).map(|n| (o, n)))
        .collect();
    let is_updated = |b: &VnetBridge| updated.iter().any(|(o, _)| o.name == b.name);
    let removed: Vec<&VnetBridge> = old.bridges.iter().filter(|b| !new.bridges.contains(b) && !is_updated(b)).collect();
    let added: Vec<&VnetBridge> = new.bridges.iter().filter(|b| !old.bridges.contains(b) && !is_updated(b)).collect();
    let touched = |zone: &DhcpZone| {
        zone.vnets
            .iter()
            .any(|v| removed.iter().chain(&added).any(|b| b.name == *v) || updated.iter().any(|(o, _)| o.name == *v))
    };
    let dhcp_changed = |zone: &DhcpZone, other: &[DhcpZone]| !other.contains(zone) || touched(zone);
    // DHCP servers of zones that change stop first: they bind to the bridges.
    for zone in old.dhcp.iter().filter(|z| dhcp_changed(z, &new.dhcp)) {
        let dir = zone_dir(root, &zone.zone);
        let conf = std::fs::read(dir.join("dnsmasq.conf")).ok();
        let ethers = std::fs::read(dir.join("ethers")).ok();
        stop_dnsmasq(root, &zone.zone);
        done.push(Undo::StartDnsmasq { zone: zone.zone.clone(), conf, ethers });
    }
    let mut plugged: Vec<(String, Vec<String>)> = Vec::new();
    for bridge in &removed {
        let ports = guest_ports(bridge);
        delete_bridge(bridge);
        done.push(Undo::CreateBridge((*bridge).clone(), ports.clone()));
        plugged.push((bridge.name.clone(), ports));
    }
    for (from, to) in &updated {
        update_bridge(from, to).map_err(|e| format!("changing VNet {}: {e}", to.name))?;
        done.push(Undo::UpdateBridge((*to).clone(), (*from).clone()));
    }
    for bridge in &added {
        create_bridge(bridge).map_err(|e| format!("creating VNet {}: {e}", bridge.name))?;
        done.push(Undo::DeleteBridge((*bridge).clone()));
        if let Some((_, ports)) = plugged.iter().find(|(name, _)| *name == bridge.name) {
            replug(&bridge.name, ports);
        }
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
        if !old.dhcp.iter().any(|o| o.zone == zone.zone) {
            done.push(Undo::RemoveZoneFiles(zone.zone.clone()));
        }
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

fn netlink() -> Result<Netlink, String> {
    Netlink::open().map_err(|e| e.to_string())
}

fn create_bridge(b: &VnetBridge) -> Result<(), String> {
    let mut nl = netlink()?;
    // Every name SDN would make, checked first: an interface it did not make is neither taken
    // over nor, on the way back from a failure, removed.
    let names =
        std::iter::once(&b.name).chain(b.vxlan.as_ref().map(|v| &v.name)).chain(b.vlan.as_ref().map(|v| &v.name));
    for name in names {
        if nl.exists(name).map_err(|e| e.to_string())? {
            return Err(format!("interface {name} already exists"));
        }
    }
    let result = build_bridge(&mut nl, b).map_err(|e| match e {
        NetError::Kernel { ref ifname, errno, .. } if errno == libc::EOPNOTSUPP => {
            if b.vlan.as_ref().is_some_and(|v| v.name == *ifname) {
                format!("{e} (this kernel lacks 802.1Q VLAN devices)")
            } else if b.vlanaware {
                format!("{e} (this kernel lacks 802.1Q bridge VLAN filtering)")
            } else {
                e.to_string()
            }
        }
        other => other.to_string(),
    });
    if result.is_err() {
        delete_bridge(b);
    }
    result
}

fn build_bridge(nl: &mut Netlink, b: &VnetBridge) -> Result<(), NetError> {
    let name = b.name.as_str();
    let options = BridgeOptions { vlan_filtering: b.vlanaware, forward_delay: Some(0), ..BridgeOptions::default() };
    nl.create_bridge(name, &options)?;
    if let Some(vx) = &b.vxlan {
        let options = VxlanOptions {
            vni: vx.vni,
            local: Some(vx.local.into()),
            dstport: Some(vx.port),
            dev: None,
            learning: false,
        };
        nl.create_vxlan(&vx.name, &options)?;
        nl.set_mtu(&vx.name, vx.mtu)?;
        // Head-end replication: broadcast and unknown unicast go to every peer.
        for remote in &vx.remotes {
            nl.fdb_append(&vx.name, (*remote).into())?;
        }
        nl.set_master(&vx.name, Some(name))?;
        vlanaware_port(nl, b, &vx.name)?;
        nl.set_up(&vx.name, true)?;
    }
    if let Some(vlan) = &b.vlan {
        let tag =
            u16::try_from(vlan.tag).map_err(|_| NetError::Invalid { what: "VLAN tag", value: vlan.tag.to_string() })?;
        nl.create_vlan(&vlan.name, &vlan.bridge, tag, VlanProtocol::Dot1Q)?;
        // On a VLAN-aware bridge the tagged frames of `<bridge>.<tag>` pass the bridge's own
        // port, which filters them like any port: the tag joins it, as ifupdown2 does it.
        if vlan_filtering(nl, &vlan.bridge) {
            nl.bridge_self_vlan_add(&vlan.bridge, &[VlanRange::single(tag)?])?;
        }
        nl.set_master(&vlan.name, Some(name))?;
        vlanaware_port(nl, b, &vlan.name)?;
        nl.set_up(&vlan.name, true)?;
    }
    if let Some(mtu) = b.mtu {
        nl.set_mtu(name, mtu)?;
    }
    for (ip, prefix) in &b.addresses {
        nl.add_address(name, IpCidr { addr: (*ip).into(), prefix: *prefix })?;
    }
    nl.set_up(name, true)
}

/// The SDN port of a VLAN-aware VNet carries the guests' own VLANs, tagged inside the VNet's
/// (`bridge-vids 2-4094`, as Proxmox writes it for a `vlanaware` VNet).
fn vlanaware_port(nl: &mut Netlink, b: &VnetBridge, port: &str) -> Result<(), NetError> {
    if b.vlanaware {
        nl.bridge_vlan_add(port, &[VlanRange::new(2, 4094)?], false)?;
    }
    Ok(())
}

/// Whether `bridge` is a bridge with VLAN filtering on.
fn vlan_filtering(nl: &mut Netlink, bridge: &str) -> bool {
    nl.find_link(bridge).ok().flatten().and_then(|l| l.bridge).is_some_and(|b| b.vlan_filtering)
}

/// Whether `a` can become `b` without making the bridge again: the same SDN ports and VLAN mode.
fn in_place(a: &VnetBridge, b: &VnetBridge) -> bool {
    a.vxlan == b.vxlan && a.vlan == b.vlan && a.vlanaware == b.vlanaware
}

/// Changes a bridge's addresses and MTU from `from`'s to `to`'s.
fn update_bridge(from: &VnetBridge, to: &VnetBridge) -> Result<(), String> {
    let mut nl = netlink()?;
    let cidr = |(ip, prefix): &(std::net::Ipv4Addr, u8)| IpCidr { addr: (*ip).into(), prefix: *prefix };
    for gone in from.addresses.iter().filter(|a| !to.addresses.contains(a)) {
        nl.del_address(&to.name, cidr(gone)).map_err(|e| e.to_string())?;
    }
    for new in to.addresses.iter().filter(|a| !from.addresses.contains(a)) {
        nl.add_address(&to.name, cidr(new)).map_err(|e| e.to_string())?;
    }
    if let Some(mtu) = to.mtu.filter(|m| Some(*m) != from.mtu) {
        nl.set_mtu(&to.name, mtu).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The ports of a VNet bridge that SDN did not make: guests' taps and veths.
fn guest_ports(b: &VnetBridge) -> Vec<String> {
    let ours: Vec<&str> =
        b.vxlan.iter().map(|v| v.name.as_str()).chain(b.vlan.iter().map(|v| v.name.as_str())).collect();
    let Ok(mut nl) = netlink() else { return Vec::new() };
    nl.links()
        .unwrap_or_default()
        .into_iter()
        .filter(|l| l.master.as_deref() == Some(b.name.as_str()) && !ours.contains(&l.name.as_str()))
        .map(|l| l.name)
        .collect()
}

/// Plugs guest ports back into a bridge that was made again.
fn replug(bridge: &str, ports: &[String]) {
    let Ok(mut nl) = netlink() else { return };
    for port in ports {
        if let Err(e) = nl.set_master(port, Some(bridge)) {
            tracing::warn!("plugging {port} back into {bridge}: {e}");
        }
    }
}

/// Removes a VNet bridge and the ports SDN made for it; what is already gone is no error.
fn delete_bridge(b: &VnetBridge) {
    let Ok(mut nl) = netlink() else { return };
    if let Some(vlan) = &b.vlan
        && nl.exists(&vlan.name).unwrap_or(false)
        && vlan_filtering(&mut nl, &vlan.bridge)
        && let Some(tag) = u16::try_from(vlan.tag).ok().and_then(|t| VlanRange::single(t).ok())
        && let Err(e) = nl.bridge_self_vlan_del(&vlan.bridge, &[tag])
    {
        tracing::warn!("removing VLAN {} from {}: {e}", vlan.tag, vlan.bridge);
    }
    let ports = b.vxlan.as_ref().map(|v| v.name.clone()).into_iter().chain(b.vlan.as_ref().map(|v| v.name.clone()));
    for link in ports.chain(std::iter::once(b.name.clone())) {
        if nl.exists(&link).unwrap_or(false)
            && let Err(e) = nl.delete_link(&link)
        {
            tracing::warn!("removing {link}: {e}");
        }
    }
}

/// Isolates a guest port from the other isolated ports of its bridge.
pub(super) fn isolate_port(port: &str) -> Result<(), String> {
    let flags = hearth_net::PortFlags { isolated: Some(true), ..hearth_net::PortFlags::default() };
    netlink()?.set_port_flags(port, &flags).map_err(|e| e.to_string())
}

/// This node's IPv4 addresses with the MTU of the link holding each, for VXLAN.
pub(super) fn underlay() -> sdn::Underlay {
    let mut addresses = Vec::new();
    let Ok(mut nl) = netlink() else { return sdn::Underlay { addresses } };
    for link in nl.links().unwrap_or_default() {
        for address in nl.addresses(&link.name).unwrap_or_default() {
            if let std::net::IpAddr::V4(ip) = address.cidr.addr {
                addresses.push((ip, link.mtu));
            }
        }
    }
    sdn::Underlay { addresses }
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
    // `<pid> (<comm>) <state> …`: a dnsmasq that exited but was not reaped yet is gone.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (comm, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
    (comm == "dnsmasq" && !rest.starts_with('Z')).then_some(pid)
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
