//! The apply engine: observes the kernel through hearth-net, plans the fewest steps from what
//! runs to what is configured, and runs them with an undo journal written before each step.
//!
//! Only interfaces of the configuration (and those a new configuration drops) are touched;
//! an unchanged bridge keeps its ifindex and its ports. Guest ports (`tap*`, `veth*`, `fwpr*`,
//! `fwln*`) on a bridge are never detached, and are plugged again when a bridge must be
//! recreated. Every step is recorded with its undo in `var/lib/hearth/network/journal.json`
//! before it runs: a failing step, a missing confirmation or a hearthd killed half-way (found
//! at the next start) undoes the recorded steps in reverse.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use hearth_core::network::{Iface, IfaceType, NetworkConfig, vlan_parts};
use hearth_net::{BondOptions, BridgeOptions, IpCidr, Link, LinkKind, Netlink, VlanProtocol, VlanRange};
use serde::{Deserialize, Serialize};

/// One change of the kernel, small enough to undo exactly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    CreateBridge {
        name: String,
        vlan_filtering: bool,
        stp: bool,
        forward_delay: Option<u32>,
    },
    SetBridge {
        name: String,
        vlan_filtering: bool,
        stp: bool,
        forward_delay: Option<u32>,
    },
    CreateBond {
        name: String,
        mode: String,
        miimon: Option<u32>,
        xmit_hash_policy: Option<String>,
        #[serde(default)]
        primary: Option<String>,
    },
    CreateVlan {
        name: String,
        parent: String,
        id: u16,
    },
    Delete {
        name: String,
    },
    Master {
        name: String,
        master: Option<String>,
    },
    Mtu {
        name: String,
        mtu: u32,
    },
    Up {
        name: String,
        up: bool,
    },
    AddAddress {
        name: String,
        cidr: String,
    },
    DelAddress {
        name: String,
        cidr: String,
    },
    AddDefault {
        dev: String,
        gateway: String,
    },
    DelDefault {
        dev: String,
        gateway: String,
    },
    VlanAdd {
        port: String,
        vids: String,
    },
    VlanDel {
        port: String,
        vids: String,
    },
}

impl Op {
    /// What the step does, as errors and logs name it.
    pub fn describe(&self) -> String {
        match self {
            Op::CreateBridge { name, .. } => format!("create bridge {name}"),
            Op::SetBridge { name, vlan_filtering, stp, .. } => {
                format!("set bridge {name} vlan-aware {} stp {}", u8::from(*vlan_filtering), u8::from(*stp))
            }
            Op::CreateBond { name, mode, .. } => format!("create bond {name} ({mode})"),
            Op::CreateVlan { name, parent, id } => format!("create VLAN {name} ({parent} id {id})"),
            Op::Delete { name } => format!("delete {name}"),
            Op::Master { name, master: Some(m) } => format!("attach {name} to {m}"),
            Op::Master { name, master: None } => format!("detach {name}"),
            Op::Mtu { name, mtu } => format!("set MTU of {name} to {mtu}"),
            Op::Up { name, up } => format!("set {name} {}", if *up { "up" } else { "down" }),
            Op::AddAddress { name, cidr } => format!("add address {cidr} to {name}"),
            Op::DelAddress { name, cidr } => format!("remove address {cidr} from {name}"),
            Op::AddDefault { dev, gateway } => format!("add default route via {gateway} on {dev}"),
            Op::DelDefault { dev, gateway } => format!("remove default route via {gateway} on {dev}"),
            Op::VlanAdd { port, vids } => format!("add VLANs {vids} to port {port}"),
            Op::VlanDel { port, vids } => format!("remove VLANs {vids} from port {port}"),
        }
    }

    pub fn run(&self, nl: &mut Netlink) -> Result<(), String> {
        let cidr = |c: &str| c.parse::<IpCidr>().map_err(|e| e.to_string());
        let gw = |g: &str| g.parse::<IpAddr>().map_err(|e| format!("gateway '{g}': {e}"));
        let vids = |v: &str| -> Result<Vec<VlanRange>, String> {
            v.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(|item| {
                    let (a, b) = item.split_once('-').unwrap_or((item, item));
                    let a: u16 = a.parse().map_err(|_| format!("VLAN '{item}'"))?;
                    let b: u16 = b.parse().map_err(|_| format!("VLAN '{item}'"))?;
                    VlanRange::new(a, b).map_err(|e| e.to_string())
                })
                .collect()
        };
        let result = match self {
            Op::CreateBridge { name, vlan_filtering, stp, forward_delay } => nl.create_bridge(
                name,
                &BridgeOptions {
                    vlan_filtering: *vlan_filtering,
                    stp: *stp,
                    forward_delay: *forward_delay,
                    vlan_default_pvid: None,
                },
            ),
            Op::SetBridge { name, vlan_filtering, stp, forward_delay } => nl.set_bridge(
                name,
                &BridgeOptions {
                    vlan_filtering: *vlan_filtering,
                    stp: *stp,
                    forward_delay: *forward_delay,
                    vlan_default_pvid: None,
                },
            ),
            Op::CreateBond { name, mode, miimon, xmit_hash_policy, primary } => {
                let options = BondOptions {
                    mode: mode.parse().map_err(|e: hearth_net::NetError| e.to_string())?,
                    miimon: *miimon,
                    xmit_hash_policy: xmit_hash_policy
                        .as_deref()
                        .map(str::parse)
                        .transpose()
                        .map_err(|e: hearth_net::NetError| e.to_string())?,
                    primary: primary.clone(),
                };
                nl.create_bond(name, &options)
            }
            Op::CreateVlan { name, parent, id } => nl.create_vlan(name, parent, *id, VlanProtocol::Dot1Q),
            Op::Delete { name } => nl.delete_link(name),
            Op::Master { name, master } => nl.set_master(name, master.as_deref()),
            Op::Mtu { name, mtu } => nl.set_mtu(name, *mtu),
            Op::Up { name, up } => nl.set_up(name, *up),
            Op::AddAddress { name, cidr: c } => nl.add_address(name, cidr(c)?),
            Op::DelAddress { name, cidr: c } => nl.del_address(name, cidr(c)?),
            Op::AddDefault { dev, gateway } => nl.add_route(None, Some(gw(gateway)?), dev),
            Op::DelDefault { dev, gateway } => nl.del_route(None, Some(gw(gateway)?), dev),
            Op::VlanAdd { port, vids: v } => nl.bridge_vlan_add(port, &vids(v)?, false),
            Op::VlanDel { port, vids: v } => nl.bridge_vlan_del(port, &vids(v)?),
        };
        result.map_err(|e| e.to_string())
    }
}

/// A planned step and how to undo it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub op: Op,
    /// Run in order to undo the step, also when it failed half-way (errors are then ignored).
    pub undo: Vec<Op>,
}

/// Ports of guests: left on their bridge, plugged again after a bridge is recreated.
pub fn is_guest_port(name: &str) -> bool {
    ["tap", "veth", "fwpr", "fwln"].iter().any(|p| name.starts_with(p))
}

/// What the kernel runs, as far as the plan needs it.
pub struct Kernel {
    pub links: BTreeMap<String, Link>,
    pub addresses: BTreeMap<String, Vec<String>>,
    /// Default routes: (device, gateway).
    pub defaults: Vec<(String, String)>,
}

fn is_link_local(cidr: &IpCidr) -> bool {
    match cidr.addr {
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
        IpAddr::V4(a) => a.is_link_local(),
    }
}

impl Kernel {
    pub fn observe(nl: &mut Netlink) -> Result<Kernel, String> {
        let links: BTreeMap<String, Link> =
            nl.links().map_err(|e| e.to_string())?.into_iter().map(|l| (l.name.clone(), l)).collect();
        let mut addresses = BTreeMap::new();
        for name in links.keys() {
            let list = nl.addresses(name).map_err(|e| e.to_string())?;
            addresses.insert(
                name.clone(),
                list.into_iter().filter(|a| !is_link_local(&a.cidr)).map(|a| a.cidr.to_string()).collect(),
            );
        }
        let defaults = nl
            .routes()
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|r| r.is_default())
            .filter_map(|r| Some((r.dev?, r.gateway?.to_string())))
            .collect();
        Ok(Kernel { links, addresses, defaults })
    }

    /// Links whose master is `name`.
    pub fn ports_of(&self, name: &str) -> Vec<String> {
        self.links.values().filter(|l| l.master.as_deref() == Some(name)).map(|l| l.name.clone()).collect()
    }
}

fn managed(i: &Iface) -> bool {
    matches!(i.kind, IfaceType::Bridge | IfaceType::Bond | IfaceType::Vlan | IfaceType::Eth)
}

fn expected_kind(kind: IfaceType) -> Option<LinkKind> {
    match kind {
        IfaceType::Bridge => Some(LinkKind::Bridge),
        IfaceType::Bond => Some(LinkKind::Bond),
        IfaceType::Vlan => Some(LinkKind::Vlan),
        _ => None,
    }
}

/// The ops that bring back a link as the kernel has it now, after it was deleted: itself, its
/// MTU, addresses, ports (guests' too), state and default route.
fn recreate_ops(kernel: &Kernel, link: &Link) -> Vec<Op> {
    let name = link.name.clone();
    let mut ops = Vec::new();
    match link.kind {
        LinkKind::Bridge => {
            let info = link.bridge.clone().unwrap_or_default();
            ops.push(Op::CreateBridge {
                name: name.clone(),
                vlan_filtering: info.vlan_filtering,
                stp: info.stp,
                forward_delay: Some(info.forward_delay),
            });
        }
        LinkKind::Bond => {
            let info = link.bond.clone();
            ops.push(Op::CreateBond {
                name: name.clone(),
                mode: info.as_ref().and_then(|b| b.mode).map_or("balance-rr".into(), |m| m.as_str().to_owned()),
                miimon: info.as_ref().and_then(|b| b.miimon),
                xmit_hash_policy: info.as_ref().and_then(|b| b.xmit_hash_policy).map(|p| p.as_str().to_owned()),
                primary: info.as_ref().and_then(|b| b.primary.clone()),
            });
        }
        LinkKind::Vlan => {
            let info = link.vlan.clone();
            ops.push(Op::CreateVlan {
                name: name.clone(),
                parent: info.as_ref().and_then(|v| v.raw_device.clone()).unwrap_or_default(),
                id: info.map_or(1, |v| v.id),
            });
        }
        _ => return ops,
    }
    ops.push(Op::Mtu { name: name.clone(), mtu: link.mtu });
    for port in kernel.ports_of(&name) {
        ops.push(Op::Master { name: port, master: Some(name.clone()) });
    }
    for cidr in kernel.addresses.get(&name).into_iter().flatten() {
        ops.push(Op::AddAddress { name: name.clone(), cidr: cidr.clone() });
    }
    if link.up {
        ops.push(Op::Up { name: name.clone(), up: true });
    }
    for (dev, gateway) in &kernel.defaults {
        if *dev == name {
            ops.push(Op::AddDefault { dev: dev.clone(), gateway: gateway.clone() });
        }
    }
    ops
}

/// Orders interfaces so that each comes after the ones it is built on.
fn topo_order(config: &NetworkConfig) -> Vec<&Iface> {
    fn depth(config: &NetworkConfig, name: &str, seen: &mut BTreeSet<String>) -> usize {
        if !seen.insert(name.to_owned()) {
            return 0;
        }
        let d = config
            .ifaces
            .get(name)
            .map(|i| i.lower().iter().map(|l| 1 + depth(config, l, seen)).max().unwrap_or(0))
            .unwrap_or(0);
        seen.remove(name);
        d
    }
    let mut list: Vec<&Iface> = config.ifaces.values().filter(|i| managed(i)).collect();
    list.sort_by_key(|i| (depth(config, &i.iface, &mut BTreeSet::new()), i.iface.clone()));
    list
}

/// The steps from what the kernel runs to `new`; `old` is the configuration that was running,
/// whose interfaces `new` no longer has are removed. A plan that cannot work (a port that does
/// not exist) is refused before anything changes.
pub fn plan(kernel: &Kernel, old: &NetworkConfig, new: &NetworkConfig) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let mut step = |op: Op, undo: Vec<Op>| steps.push(Step { op, undo });
    // What exists and who is whose master as the plan goes on.
    let mut present: BTreeSet<String> = kernel.links.keys().cloned().collect();
    let mut master: BTreeMap<String, Option<String>> =
        kernel.links.values().map(|l| (l.name.clone(), l.master.clone())).collect();

    // What comes up: `auto` interfaces and, as ifupdown2 brings up what they stand on, the
    // bridge ports and VLAN raw devices below them that the configuration has. A bond's slaves
    // are not among them: they must be down to be enslaved, and the bond brings them up.
    let mut up_wanted: BTreeSet<String> =
        new.ifaces.values().filter(|i| i.autostart).map(|i| i.iface.clone()).collect();
    loop {
        let below: Vec<String> = new
            .ifaces
            .values()
            .filter(|i| up_wanted.contains(&i.iface))
            .flat_map(|i| i.bridge_ports.iter().cloned().chain(vlan_parts(i).map(|(dev, _)| dev)))
            .filter(|name| new.ifaces.contains_key(name) && !up_wanted.contains(name))
            .collect();
        if below.is_empty() {
            break;
        }
        up_wanted.extend(below);
    }

    // Interfaces the new configuration drops.
    for (name, i) in &old.ifaces {
        if new.ifaces.contains_key(name) || !managed(i) {
            continue;
        }
        let Some(link) = kernel.links.get(name) else { continue };
        if expected_kind(i.kind).is_some_and(|k| k == link.kind) {
            step(Op::Delete { name: name.clone() }, recreate_ops(kernel, link));
            present.remove(name);
            for port in kernel.ports_of(name) {
                master.insert(port, None);
            }
        } else {
            for cidr in [&i.cidr, &i.cidr6].into_iter().flatten() {
                if kernel.addresses.get(name).is_some_and(|a| a.contains(cidr)) {
                    step(
                        Op::DelAddress { name: name.clone(), cidr: cidr.clone() },
                        vec![Op::AddAddress { name: name.clone(), cidr: cidr.clone() }],
                    );
                }
            }
        }
    }

    for i in topo_order(new) {
        let name = &i.iface;
        let link = kernel.links.get(name).filter(|_| present.contains(name));
        let mut created = false;
        if let Some(kind) = expected_kind(i.kind) {
            let vlan = vlan_parts(i);
            let wrong = link.is_some_and(|l| {
                l.kind != kind
                    || (i.kind == IfaceType::Vlan
                        && l.vlan.as_ref().map(|v| (v.raw_device.clone().unwrap_or_default(), v.id)) != vlan.clone())
                    || (i.kind == IfaceType::Bond && {
                        let info = l.bond.as_ref();
                        info.and_then(|b| b.mode).map(|m| m.as_str().to_owned())
                            != Some(i.bond_mode.clone().unwrap_or_else(|| "balance-rr".into()))
                            || i.bond_miimon.is_some_and(|m| info.and_then(|b| b.miimon) != Some(m))
                            || i.bond_xmit_hash_policy.as_ref().is_some_and(|p| {
                                info.and_then(|b| b.xmit_hash_policy).map(|x| x.as_str()) != Some(p.as_str())
                            })
                    })
            });
            let mut guests = Vec::new();
            if let (true, Some(l)) = (wrong, link) {
                guests = kernel.ports_of(name).into_iter().filter(|p| is_guest_port(p)).collect();
                step(Op::Delete { name: name.clone() }, recreate_ops(kernel, l));
                for port in kernel.ports_of(name) {
                    master.insert(port, None);
                }
            }
            if link.is_none() || wrong {
                let op = match i.kind {
                    IfaceType::Bridge => Op::CreateBridge {
                        name: name.clone(),
                        vlan_filtering: i.bridge_vlan_aware,
                        stp: i.bridge_stp.unwrap_or(false),
                        forward_delay: i.bridge_fd,
                    },
                    IfaceType::Bond => Op::CreateBond {
                        name: name.clone(),
                        mode: i.bond_mode.clone().unwrap_or_else(|| "balance-rr".into()),
                        miimon: i.bond_miimon,
                        xmit_hash_policy: i.bond_xmit_hash_policy.clone(),
                        primary: i.bond_primary.clone(),
                    },
                    _ => {
                        let (parent, id) = vlan.clone().ok_or_else(|| format!("{name}: no VLAN raw device and id"))?;
                        if !present.contains(&parent) {
                            return Err(format!("vlan-raw-device: {parent} of {name} does not exist"));
                        }
                        Op::CreateVlan { name: name.clone(), parent, id }
                    }
                };
                step(op, vec![Op::Delete { name: name.clone() }]);
                present.insert(name.clone());
                created = true;
                for g in guests {
                    step(
                        Op::Master { name: g.clone(), master: Some(name.clone()) },
                        vec![Op::Master { name: g.clone(), master: None }],
                    );
                    master.insert(g, Some(name.clone()));
                }
            }
        } else if link.is_none() {
            return Err(format!("{name}: no such network device on this node (type eth needs an existing NIC)"));
        }
        let live = if created { None } else { link };

        // Bridge settings.
        if let (IfaceType::Bridge, Some(l)) = (i.kind, live) {
            let info = l.bridge.clone().unwrap_or_default();
            let want_stp = i.bridge_stp.unwrap_or(false);
            let want_fd = i.bridge_fd.unwrap_or(info.forward_delay);
            if info.vlan_filtering != i.bridge_vlan_aware || info.stp != want_stp || info.forward_delay != want_fd {
                step(
                    Op::SetBridge {
                        name: name.clone(),
                        vlan_filtering: i.bridge_vlan_aware,
                        stp: want_stp,
                        forward_delay: i.bridge_fd,
                    },
                    vec![Op::SetBridge {
                        name: name.clone(),
                        vlan_filtering: info.vlan_filtering,
                        stp: info.stp,
                        forward_delay: Some(info.forward_delay),
                    }],
                );
            }
        }

        // MTU.
        if let Some(mtu) = i.mtu {
            let current = live.map(|l| l.mtu);
            if current != Some(mtu) {
                let undo = current.map(|m| vec![Op::Mtu { name: name.clone(), mtu: m }]).unwrap_or_default();
                step(Op::Mtu { name: name.clone(), mtu }, undo);
            }
        }

        // Ports and slaves.
        if matches!(i.kind, IfaceType::Bridge | IfaceType::Bond) {
            let key = if i.kind == IfaceType::Bond { "slaves" } else { "bridge_ports" };
            for port in i.lower() {
                if !present.contains(&port) {
                    return Err(format!("{key}: {port} of {name} does not exist"));
                }
                let old_master = master.get(&port).cloned().flatten();
                if old_master.as_deref() == Some(name) {
                    // Still a port: its VLANs follow a changed `bridge_vids` or VLAN awareness.
                    let before = old.ifaces.get(name).filter(|o| o.bridge_vlan_aware && o.lower().contains(&port));
                    let vids_before = before.map(|o| o.bridge_vids.clone().unwrap_or_else(|| "2-4094".into()));
                    let vids_now = (i.kind == IfaceType::Bridge && i.bridge_vlan_aware)
                        .then(|| i.bridge_vids.clone().unwrap_or_else(|| "2-4094".into()));
                    if vids_before != vids_now && !created {
                        if let Some(v) = vids_before
                            .filter(|_| live.is_some_and(|l| l.bridge.as_ref().is_some_and(|b| b.vlan_filtering)))
                        {
                            step(
                                Op::VlanDel { port: port.clone(), vids: v.clone() },
                                vec![Op::VlanAdd { port: port.clone(), vids: v }],
                            );
                        }
                        if let Some(v) = vids_now {
                            step(
                                Op::VlanAdd { port: port.clone(), vids: v.clone() },
                                vec![Op::VlanDel { port: port.clone(), vids: v }],
                            );
                        }
                    }
                    continue;
                }
                if i.kind == IfaceType::Bond && kernel.links.get(&port).is_some_and(|l| l.up) {
                    step(Op::Up { name: port.clone(), up: false }, vec![Op::Up { name: port.clone(), up: true }]);
                }
                step(
                    Op::Master { name: port.clone(), master: Some(name.clone()) },
                    vec![Op::Master { name: port.clone(), master: old_master }],
                );
                master.insert(port.clone(), Some(name.clone()));
                if i.kind == IfaceType::Bridge && i.bridge_vlan_aware {
                    let vids = i.bridge_vids.clone().unwrap_or_else(|| "2-4094".into());
                    step(
                        Op::VlanAdd { port: port.clone(), vids: vids.clone() },
                        vec![Op::VlanDel { port: port.clone(), vids }],
                    );
                }
            }
            let lower = i.lower();
            let attached: Vec<String> =
                master.iter().filter(|(_, m)| m.as_deref() == Some(name)).map(|(p, _)| p.clone()).collect();
            for port in attached {
                if lower.contains(&port) || is_guest_port(&port) {
                    continue;
                }
                step(
                    Op::Master { name: port.clone(), master: None },
                    vec![Op::Master { name: port.clone(), master: Some(name.clone()) }],
                );
                master.insert(port, None);
            }
        }

        // Addresses: those the old configuration gave are replaced; others the host set by
        // other means are left alone.
        let current: Vec<String> = live.and_then(|_| kernel.addresses.get(name)).cloned().unwrap_or_default();
        let wanted: Vec<String> = [&i.cidr, &i.cidr6].into_iter().flatten().cloned().collect();
        let ours: Vec<String> = old
            .ifaces
            .get(name)
            .map(|o| [&o.cidr, &o.cidr6].into_iter().flatten().cloned().collect())
            .unwrap_or_default();
        for cidr in current.iter().filter(|c| !wanted.contains(c) && ours.contains(c)) {
            step(
                Op::DelAddress { name: name.clone(), cidr: cidr.clone() },
                vec![Op::AddAddress { name: name.clone(), cidr: cidr.clone() }],
            );
        }
        for cidr in wanted.iter().filter(|c| !current.contains(c)) {
            step(
                Op::AddAddress { name: name.clone(), cidr: cidr.clone() },
                vec![Op::DelAddress { name: name.clone(), cidr: cidr.clone() }],
            );
        }

        // Up.
        if up_wanted.contains(name) && !live.is_some_and(|l| l.up) {
            step(Op::Up { name: name.clone(), up: true }, vec![Op::Up { name: name.clone(), up: false }]);
        }
    }

    // Default routes of managed interfaces.
    let managed_names: BTreeSet<&String> =
        old.ifaces.values().chain(new.ifaces.values()).filter(|i| managed(i)).map(|i| &i.iface).collect();
    let wanted: Vec<(String, String)> = new
        .ifaces
        .values()
        .filter(|i| managed(i))
        .flat_map(|i| [&i.gateway, &i.gateway6].into_iter().flatten().map(|g| (i.iface.clone(), g.clone())))
        .collect();
    for (dev, gateway) in &kernel.defaults {
        if managed_names.contains(dev) && present.contains(dev) && !wanted.contains(&(dev.clone(), gateway.clone())) {
            step(
                Op::DelDefault { dev: dev.clone(), gateway: gateway.clone() },
                vec![Op::AddDefault { dev: dev.clone(), gateway: gateway.clone() }],
            );
        }
    }
    for (dev, gateway) in wanted {
        if !kernel.defaults.contains(&(dev.clone(), gateway.clone())) || !kernel.links.contains_key(&dev) {
            step(Op::AddDefault { dev: dev.clone(), gateway: gateway.clone() }, vec![Op::DelDefault { dev, gateway }]);
        }
    }
    Ok(steps)
}

/// The journal of an apply: what ran before (to restore), what was applied, and each step
/// with its undo, recorded before the step runs. On disk: a first line with everything but the
/// steps, then one line per step, appended.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Journal {
    /// `applying` while steps run, `confirm` while waiting for `netctl confirm`.
    pub state: String,
    /// Tells one apply's confirmation timer from another's.
    pub id: u64,
    /// Unix time after which an unconfirmed apply is rolled back.
    #[serde(default)]
    pub deadline: Option<u64>,
    pub previous: NetworkConfig,
    pub applied: NetworkConfig,
    /// The kernel the steps ran on ([`kernel_identity`]); steps recorded on another (after a
    /// reboot, in another network namespace) are not undone there.
    #[serde(default)]
    pub kernel: Option<String>,
    #[serde(skip)]
    pub steps: Vec<Step>,
}

/// This boot and network namespace: `/proc/sys/kernel/random/boot_id` and the namespace of
/// `/proc/self/ns/net`. `None` when either cannot be read.
pub fn kernel_identity() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let netns = std::fs::read_link("/proc/self/ns/net").ok()?;
    Some(format!("{} {}", boot.trim(), netns.display()))
}

pub fn journal_path(root: &Path) -> PathBuf {
    root.join("var/lib/hearth/network/journal.json")
}

fn line(value: &impl Serialize) -> Result<Vec<u8>, String> {
    let mut text = serde_json::to_vec(value).map_err(|e| e.to_string())?;
    text.push(b'\n');
    Ok(text)
}

/// Writes the whole journal, replacing the file by rename: a killed hearthd leaves the old or
/// the new one, never half of one. Not synced (nor are appended steps): what it guards (links,
/// addresses) does not outlive a power loss either, and a sync per step would make applying 50
/// bridges take seconds.
pub fn write_journal(root: &Path, journal: &Journal) -> Result<(), String> {
    let path = journal_path(root);
    let dir = path.parent().expect("the journal has a directory");
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut text = line(journal)?;
    for step in &journal.steps {
        text.extend(line(step)?);
    }
    let tmp = dir.join(".journal.json.tmp");
    std::fs::write(&tmp, &text).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("renaming {}: {e}", path.display()))
}

/// Records one more step: one `write(2)` of one line in append mode, whole or not at all for
/// a killed process.
fn append_step(root: &Path, step: &Step) -> Result<(), String> {
    use std::io::Write;
    let path = journal_path(root);
    let mut file =
        std::fs::OpenOptions::new().append(true).open(&path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    file.write_all(&line(step)?).map_err(|e| format!("writing {}: {e}", path.display()))
}

pub fn read_journal(root: &Path) -> Option<Journal> {
    let text = std::fs::read_to_string(journal_path(root)).ok()?;
    let mut lines = text.lines();
    let mut journal: Journal = serde_json::from_str(lines.next()?).ok()?;
    // A line cut short can only be the last; it is a step that never ran.
    journal.steps = lines.map_while(|l| serde_json::from_str(l).ok()).collect();
    Some(journal)
}

/// Undoes the journalled steps in reverse; errors are logged and skipped (a step that failed
/// half-way has parts of its undo already true). Answers what could not be undone.
pub fn undo(nl: &mut Netlink, steps: &[Step]) -> Vec<String> {
    let mut failed = Vec::new();
    for step in steps.iter().rev() {
        for op in &step.undo {
            if let Err(e) = op.run(nl) {
                tracing::debug!(step = %op.describe(), error = %e, "undo step");
                failed.push(format!("{}: {e}", op.describe()));
            }
        }
    }
    failed
}

/// Test hooks: fail step N (`HEARTH_TEST_NET_FAIL_STEP`), or stop for a minute before step N
/// (`HEARTH_TEST_NET_PAUSE_STEP`) so a test can kill hearthd half-way.
fn test_hook(n: usize) -> Result<(), String> {
    let at = |var: &str| std::env::var(var).ok().and_then(|v| v.parse::<usize>().ok()) == Some(n);
    if at("HEARTH_TEST_NET_PAUSE_STEP") {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
    if at("HEARTH_TEST_NET_FAIL_STEP") {
        return Err("failure injected by HEARTH_TEST_NET_FAIL_STEP".into());
    }
    Ok(())
}

/// Runs the planned steps, journalling each first. On a failing step everything done is
/// undone and the error names the step.
pub fn run(root: &Path, nl: &mut Netlink, journal: &mut Journal, steps: Vec<Step>) -> Result<(), String> {
    write_journal(root, journal)?;
    for (n, step) in steps.into_iter().enumerate() {
        append_step(root, &step)?;
        journal.steps.push(step.clone());
        let result = test_hook(n + 1).and_then(|()| step.op.run(nl));
        if let Err(e) = result {
            let leftovers = undo(nl, &journal.steps);
            let mut message =
                format!("step {} ({}) failed: {e}; all changes were rolled back", n + 1, step.op.describe());
            if !leftovers.is_empty() {
                tracing::warn!(?leftovers, "undo steps that failed");
            }
            message.push_str(if leftovers.is_empty() { "" } else { " (some undo steps reported errors, see the log)" });
            return Err(message);
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;

    fn link(index: u32, name: &str, kind: LinkKind, master: Option<&str>) -> Link {
        Link {
            index,
            name: name.into(),
            kind,
            master: master.map(str::to_owned),
            mtu: 1500,
            mac: None,
            up: true,
            running: true,
            bridge: None,
            vlan: None,
            bond: None,
            vxlan: None,
            port: None,
        }
    }

    fn kernel(links: Vec<Link>) -> Kernel {
        Kernel {
            links: links.into_iter().map(|l| (l.name.clone(), l)).collect(),
            addresses: BTreeMap::new(),
            defaults: Vec::new(),
        }
    }

    fn config(text: &str) -> NetworkConfig {
        hearth_core::network::parse_interfaces(text).unwrap()
    }

    fn ops(steps: &[Step]) -> Vec<String> {
        steps.iter().map(|s| s.op.describe()).collect()
    }

    #[test]
    fn bonds_vlans_and_bridges_are_built_bottom_up() {
        let k = kernel(vec![link(2, "eno1", LinkKind::Device, None), link(3, "eno2", LinkKind::Device, None)]);
        let new = config(
            "auto vmbr0.5\niface vmbr0.5 inet static\n\taddress 10.0.5.2/24\n\n\
             auto vmbr0\niface vmbr0 inet manual\n\tbridge-ports bond0\n\tbridge-stp off\n\tbridge-fd 0\n\n\
             auto bond0\niface bond0 inet manual\n\tbond-slaves eno1 eno2\n\tbond-mode active-backup\n\tbond-primary eno2\n\tbond-miimon 100\n",
        );
        let steps = plan(&k, &NetworkConfig::default(), &new).unwrap();
        assert_eq!(
            ops(&steps),
            [
                "create bond bond0 (active-backup)",
                "set eno1 down",
                "attach eno1 to bond0",
                "set eno2 down",
                "attach eno2 to bond0",
                "set bond0 up",
                "create bridge vmbr0",
                "attach bond0 to vmbr0",
                "set vmbr0 up",
                "create VLAN vmbr0.5 (vmbr0 id 5)",
                "add address 10.0.5.2/24 to vmbr0.5",
                "set vmbr0.5 up",
            ]
        );
        assert!(matches!(&steps[0].op, Op::CreateBond { primary: Some(p), miimon: Some(100), .. } if p == "eno2"));
        // Each step's undo puts back what was there.
        assert_eq!(steps[2].undo, [Op::Master { name: "eno1".into(), master: None }]);
        assert_eq!(steps[1].undo, [Op::Up { name: "eno1".into(), up: true }]);
        // Applying the same again plans nothing once the kernel has it.
        let mut bridge = link(5, "vmbr0", LinkKind::Bridge, None);
        bridge.bridge =
            Some(hearth_net::BridgeInfo { vlan_filtering: false, stp: false, forward_delay: 0, default_pvid: None });
        let mut bond = link(4, "bond0", LinkKind::Bond, Some("vmbr0"));
        bond.bond = Some(hearth_net::BondInfo {
            mode: Some(hearth_net::BondMode::ActiveBackup),
            slaves: vec!["eno1".into(), "eno2".into()],
            miimon: Some(100),
            xmit_hash_policy: None,
            primary: Some("eno2".into()),
        });
        let mut vlan = link(6, "vmbr0.5", LinkKind::Vlan, None);
        vlan.vlan =
            Some(hearth_net::VlanInfo { id: 5, raw_device: Some("vmbr0".into()), protocol: VlanProtocol::Dot1Q });
        let mut k = kernel(vec![
            link(2, "eno1", LinkKind::Device, Some("bond0")),
            link(3, "eno2", LinkKind::Device, Some("bond0")),
            bond,
            bridge,
            vlan,
        ]);
        k.addresses.insert("vmbr0.5".into(), vec!["10.0.5.2/24".into()]);
        assert_eq!(ops(&plan(&k, &new, &new).unwrap()), Vec::<String>::new());
    }

    #[test]
    fn changed_vids_move_the_ports_vlans_and_foreign_addresses_stay() {
        let mut bridge = link(5, "vmbr0", LinkKind::Bridge, None);
        bridge.bridge =
            Some(hearth_net::BridgeInfo { vlan_filtering: true, stp: false, forward_delay: 0, default_pvid: Some(1) });
        let mut k = kernel(vec![link(2, "eno1", LinkKind::Device, Some("vmbr0")), bridge]);
        k.addresses.insert("vmbr0".into(), vec!["10.0.0.2/24".into(), "192.0.2.9/24".into()]);
        let old = config(
            "auto vmbr0\niface vmbr0 inet static\n\taddress 10.0.0.2/24\n\tbridge-ports eno1\n\tbridge-stp off\n\tbridge-fd 0\n\tbridge-vlan-aware yes\n\tbridge-vids 2-100\n",
        );
        let new = config(
            "auto vmbr0\niface vmbr0 inet static\n\taddress 10.0.1.2/24\n\tbridge-ports eno1\n\tbridge-stp off\n\tbridge-fd 0\n\tbridge-vlan-aware yes\n\tbridge-vids 2-200\n",
        );
        assert_eq!(
            ops(&plan(&k, &old, &new).unwrap()),
            [
                "remove VLANs 2-100 from port eno1",
                "add VLANs 2-200 to port eno1",
                "remove address 10.0.0.2/24 from vmbr0",
                "add address 10.0.1.2/24 to vmbr0",
            ]
        );
    }

    #[test]
    fn a_recreated_bridge_gets_its_guest_ports_back_and_others_are_left_alone() {
        // vmbr1 exists as a VLAN device (the wrong kind): it is recreated as a bridge and the
        // guest's tap is plugged again; a bridge outside the configuration is not touched.
        let mut wrong = link(7, "vmbr1", LinkKind::Vlan, None);
        wrong.vlan =
            Some(hearth_net::VlanInfo { id: 9, raw_device: Some("eno1".into()), protocol: VlanProtocol::Dot1Q });
        let k = kernel(vec![
            link(2, "eno1", LinkKind::Device, None),
            wrong,
            link(8, "tap100i0", LinkKind::Tun, Some("vmbr1")),
            link(9, "br-other", LinkKind::Bridge, None),
        ]);
        let new = config("auto vmbr1\niface vmbr1 inet manual\n\tbridge-ports none\n");
        let steps = plan(&k, &NetworkConfig::default(), &new).unwrap();
        assert_eq!(ops(&steps), ["delete vmbr1", "create bridge vmbr1", "attach tap100i0 to vmbr1", "set vmbr1 up"]);
        assert!(steps[0].undo.contains(&Op::CreateVlan { name: "vmbr1".into(), parent: "eno1".into(), id: 9 }));
        assert!(steps[0].undo.contains(&Op::Master { name: "tap100i0".into(), master: Some("vmbr1".into()) }));
    }

    #[test]
    fn the_ports_of_an_auto_bridge_come_up_with_it() {
        // eno1 has a stanza but no `auto` line, as Proxmox writes a bridge's NIC: it comes up
        // because the bridge stands on it; eno2, configured but used by nothing, stays down.
        let mut eno1 = link(2, "eno1", LinkKind::Device, None);
        eno1.up = false;
        let mut eno2 = link(3, "eno2", LinkKind::Device, None);
        eno2.up = false;
        let k = kernel(vec![eno1, eno2]);
        let new = config(
            "iface eno1 inet manual\n\niface eno2 inet manual\n\n\
             auto vmbr0\niface vmbr0 inet manual\n\tbridge-ports eno1\n\tbridge-stp off\n\tbridge-fd 0\n",
        );
        let steps = plan(&k, &NetworkConfig::default(), &new).unwrap();
        let planned = ops(&steps);
        assert!(planned.contains(&"set eno1 up".to_owned()), "{planned:?}");
        assert!(!planned.iter().any(|o| o.contains("eno2")), "{planned:?}");
        // A bond's slaves with stanzas of their own stay down until the bond takes them.
        let mut eno1 = link(2, "eno1", LinkKind::Device, None);
        eno1.up = false;
        let k = kernel(vec![eno1]);
        let new = config(
            "iface eno1 inet manual\n\n\
             auto bond0\niface bond0 inet manual\n\tbond-slaves eno1\n\tbond-mode active-backup\n\tbond-miimon 100\n",
        );
        assert_eq!(
            ops(&plan(&k, &NetworkConfig::default(), &new).unwrap()),
            ["create bond bond0 (active-backup)", "attach eno1 to bond0", "set bond0 up"]
        );
    }
}
