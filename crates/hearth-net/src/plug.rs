//! Plugging a guest's port (a VM's tap, a container's host-side veth) into its bridge, as
//! Proxmox's `PVE::Network::tap_plug` does, and its `rate=` limit.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::types::{LinkKind, VlanRange, check_ifname};
use crate::{NetError, Netlink, PortFlags};

/// A guest NIC's port and how it is plugged (the bridge-side keys of `netN`).
#[derive(Clone, Debug, PartialEq)]
pub struct PortPlug {
    /// The port: `tap<vmid>i<n>` or `veth<ctid>i<n>`.
    pub ifname: String,
    pub bridge: String,
    /// `tag=`: the port's untagged VLAN (needs a VLAN-aware bridge).
    pub tag: Option<u16>,
    /// `trunks=`: tagged VLANs the port carries (needs a VLAN-aware bridge).
    pub trunks: Vec<VlanRange>,
    /// `mtu=`; the bridge's when `None`. Larger than the bridge's is refused.
    pub mtu: Option<u32>,
    /// `rate=` in MB/s.
    pub rate: Option<f64>,
    /// `link_down=1`: plugged but left down.
    pub link_down: bool,
    /// Port isolation (SDN VNet `isolate-ports`).
    pub isolated: bool,
    /// MAC learning and unicast flooding; off for SDN VNets with learning disabled.
    pub learning: bool,
}

impl PortPlug {
    /// A plain port: no VLANs, the bridge's MTU, no limit, up, learning.
    pub fn new(ifname: impl Into<String>, bridge: impl Into<String>) -> PortPlug {
        PortPlug {
            ifname: ifname.into(),
            bridge: bridge.into(),
            tag: None,
            trunks: Vec::new(),
            mtu: None,
            rate: None,
            link_down: false,
            isolated: false,
            learning: true,
        }
    }
}

/// What [`plug_port`] did not manage to do but did not fail on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlugReport {
    pub warnings: Vec<String>,
}

/// Plugs `plug.ifname` into `plug.bridge` (Proxmox's `tap_plug`):
/// 1. the MTU: the configured one or the bridge's; one above the bridge's is refused;
/// 2. IPv6 off on the port (`disable_ipv6` = 1): the host has no business on a guest's port;
/// 3. the bridge as master;
/// 4. on a VLAN-aware bridge: VLANs 1–4094 removed, then the trunks (or, untagged ports,
///    2–4094) added tagged and the tag (or 1) as untagged PVID; a tag or trunks on a bridge
///    without VLAN filtering is refused;
/// 5. learning/unicast flooding off when `learning` is false, isolation when `isolated`;
/// 6. the `rate=` limit ([`set_rate`]);
/// 7. up, unless `link_down`.
///
/// Everything is checked before the first change. On an error the port may be half-plugged:
/// the caller deletes it (a veth) or drops it with its guest (a tap).
pub fn plug_port(nl: &mut Netlink, plug: &PortPlug) -> Result<PlugReport, NetError> {
    let port = plug.ifname.as_str();
    check_ifname(port)?;
    check_ifname(&plug.bridge)?;
    let bridge = nl.find_link(&plug.bridge)?.ok_or_else(|| NetError::NotFound(plug.bridge.clone()))?;
    let Some(bridge_info) = bridge.bridge.clone().filter(|_| bridge.kind == LinkKind::Bridge) else {
        return Err(NetError::NotABridge(plug.bridge.clone()));
    };
    let current = nl.link(port)?;
    let mtu = plug.mtu.unwrap_or(bridge.mtu);
    if mtu > bridge.mtu {
        return Err(NetError::MtuAboveBridge {
            ifname: port.to_owned(),
            mtu,
            bridge: plug.bridge.clone(),
            bridge_mtu: bridge.mtu,
        });
    }
    if mtu < 68 {
        return Err(NetError::Invalid { what: "MTU (68 or more)", value: mtu.to_string() });
    }
    if let Some(tag) = plug.tag {
        VlanRange::single(tag)?;
    }
    let vlans = plug.tag.is_some() || !plug.trunks.is_empty();
    if vlans && !bridge_info.vlan_filtering {
        return Err(NetError::NoVlanFiltering { ifname: port.to_owned(), bridge: plug.bridge.clone() });
    }
    if let Some(rate) = plug.rate {
        check_rate(rate)?;
    }

    let mut report = PlugReport::default();
    if current.mtu != mtu {
        nl.set_mtu(port, mtu)?;
    }
    match nl.set_disable_ipv6(port, true) {
        // No IPv6 in this kernel or namespace: nothing to disable.
        Err(NetError::Kernel { errno: libc::ENOENT, .. }) => {}
        other => other?,
    }
    nl.set_master(port, Some(&plug.bridge))?;
    if bridge_info.vlan_filtering {
        nl.bridge_vlan_del(port, &[VlanRange { start: 1, end: 4094 }])?;
        if !plug.trunks.is_empty() {
            nl.bridge_vlan_add(port, &plug.trunks, false)?;
        } else if plug.tag.is_none() {
            nl.bridge_vlan_add(port, &[VlanRange { start: 2, end: 4094 }], false)?;
        }
        let pvid = plug.tag.unwrap_or(1);
        nl.bridge_vlan_add(port, &[VlanRange { start: pvid, end: pvid }], true)?;
    }
    let flags = PortFlags {
        learning: (!plug.learning).then_some(false),
        unicast_flood: (!plug.learning).then_some(false),
        isolated: plug.isolated.then_some(true),
    };
    nl.set_port_flags(port, &flags)?;
    if let Some(rate) = plug.rate {
        report.warnings.extend(set_rate(nl, port, Some(rate))?);
    }
    if !plug.link_down {
        nl.set_up(port, true)?;
    }
    Ok(report)
}

fn check_rate(rate: f64) -> Result<(), NetError> {
    if rate.is_finite() && rate > 0.0 && rate <= 1e6 {
        Ok(())
    } else {
        Err(NetError::Invalid { what: "rate in MB/s (more than 0)", value: rate.to_string() })
    }
}

const TC: [&str; 2] = ["/usr/sbin/tc", "/sbin/tc"];

fn tc(nl: &Netlink, port: &str, args: &[&str]) -> Result<(), String> {
    let program =
        TC.iter().find(|p| Path::new(p).is_file()).ok_or("tc not found in /usr/sbin or /sbin (install iproute2)")?;
    let output = nl
        .run_in_netns(|| Command::new(program).args(args).env_clear().env("LC_ALL", "C").stdin(Stdio::null()).output())
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    let _ = port;
    Err(if stderr.is_empty() { output.status.to_string() } else { stderr })
}

/// Limits `port` to `rate` MB/s (qm/pct `rate=`), or (`None`) removes a limit. Traffic toward
/// the guest (the port's egress) is shaped by an HTB root qdisc with a 1 MiB burst; traffic from
/// the guest (the port's ingress) is policed by a `basic` filter with a `police` action, as
/// Proxmox does. A kernel without `cls_basic`/`act_police` gets the first only: that is
/// returned as a warning, not an error.
///
/// This is the one step done by a program, `/usr/sbin/tc` from iproute2, run in the handle's
/// namespace: `netlink-packet-route` has no HTB or police messages.
pub fn set_rate(nl: &mut Netlink, port: &str, rate: Option<f64>) -> Result<Vec<String>, NetError> {
    check_ifname(port)?;
    nl.index_of(port)?;
    let fail = |step: &str, message: String| NetError::Tool { ifname: port.to_owned(), step: step.to_owned(), message };
    // Old limits go first; "no such qdisc" is fine.
    let _ = tc(nl, port, &["qdisc", "del", "dev", port, "root"]);
    let _ = tc(nl, port, &["qdisc", "del", "dev", port, "ingress"]);
    let Some(rate) = rate else { return Ok(Vec::new()) };
    check_rate(rate)?;
    let bytes = (rate * 1024.0 * 1024.0).round() as u64;
    let (rate_arg, burst_arg) = (format!("{bytes}bps"), "1048576b".to_owned());
    tc(nl, port, &["qdisc", "add", "dev", port, "root", "handle", "1:", "htb", "default", "1"])
        .map_err(|m| fail("add HTB qdisc", m))?;
    tc(
        nl,
        port,
        &["class", "add", "dev", port, "parent", "1:", "classid", "1:1", "htb", "rate", &rate_arg, "burst", &burst_arg],
    )
    .map_err(|m| fail(&format!("add HTB class rate {rate_arg}"), m))?;
    let mut warnings = Vec::new();
    tc(nl, port, &["qdisc", "add", "dev", port, "handle", "ffff:", "ingress"])
        .map_err(|m| fail("add ingress qdisc", m))?;
    let police = [
        "filter", "add", "dev", port, "parent", "ffff:", "prio", "50", "basic", "police", "rate", &rate_arg, "burst",
        &burst_arg, "mtu", "64kb", "drop",
    ];
    if let Err(message) = tc(nl, port, &police) {
        let _ = tc(nl, port, &["qdisc", "del", "dev", port, "ingress"]);
        warnings.push(format!(
            "{port}: rate limits traffic to the guest only; the kernel cannot police traffic from it ({message})"
        ));
    }
    Ok(warnings)
}
