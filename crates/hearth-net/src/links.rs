//! Links, addresses, routes, bridge VLANs and the VXLAN FDB through NETLINK_ROUTE.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

use netlink_packet_core::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    AfSpecBridge, BridgeFlag, BridgeStpState, BridgeVlanInfo, BridgeVlanInfoFlags, InfoBond, InfoBridge,
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth, InfoVlan, InfoVxlan, LinkAttribute,
    LinkExtentMask, LinkFlags, LinkInfo, LinkMessage, State,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::types::{
    Address, BondInfo, BondMode, BridgeInfo, BridgePortInfo, IpCidr, Link, LinkKind, MacAddr, Route, VlanInfo,
    VlanProtocol, VlanRange, VxlanInfo, XmitHashPolicy, check_ifname,
};
use crate::{NetError, Netlink};

/// How a bridge is created (`bridge-vlan-aware`, `bridge-stp`, `bridge-fd`, default PVID).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BridgeOptions {
    pub vlan_filtering: bool,
    pub stp: bool,
    /// Forward delay in seconds (`bridge-fd`); the kernel's default (15) when `None`.
    pub forward_delay: Option<u32>,
    /// The untagged PVID of new ports on a VLAN-aware bridge (kernel default 1).
    pub vlan_default_pvid: Option<u16>,
}

/// How a bond is created (`bond-mode`, `bond-miimon`, `bond-xmit-hash-policy`,
/// `bond-primary`). Slaves join with [`Netlink::set_master`] while down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BondOptions {
    pub mode: BondMode,
    pub miimon: Option<u32>,
    pub xmit_hash_policy: Option<XmitHashPolicy>,
    /// A slave's name; it must exist.
    pub primary: Option<String>,
}

/// How a VXLAN is created (SDN VXLAN zones: learning off, peers as FDB entries).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VxlanOptions {
    pub vni: u32,
    pub local: Option<IpAddr>,
    /// UDP destination port; 4789 when `None`.
    pub dstport: Option<u16>,
    /// Underlay device.
    pub dev: Option<String>,
    pub learning: bool,
}

/// Where the peer of a veth pair is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerNetns {
    /// The network namespace of a process (a container's init).
    Pid(u32),
    /// A namespace file (`/run/netns/NAME`, `/proc/<pid>/ns/net`).
    Path(PathBuf),
}

/// The peer end of a veth pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VethPeer {
    pub name: String,
    /// `None`: the peer stays in the handle's namespace.
    pub netns: Option<PeerNetns>,
    pub mtu: Option<u32>,
    pub mac: Option<MacAddr>,
}

/// VLANs on a bridge port, as [`Netlink::bridge_vlans`] reads them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortVlan {
    pub vlans: VlanRange,
    /// The port's untagged PVID (ingress untagged frames go to this VLAN).
    pub pvid: bool,
    /// Egresses untagged.
    pub untagged: bool,
}

/// Bridge port flags to change; `None` leaves a flag as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortFlags {
    pub learning: Option<bool>,
    pub unicast_flood: Option<bool>,
    pub isolated: Option<bool>,
}

fn link_by_index(index: u32) -> LinkMessage {
    let mut message = LinkMessage::default();
    message.header.index = index;
    message
}

fn kind_of(info: &[LinkInfo]) -> LinkKind {
    for item in info {
        if let LinkInfo::Kind(kind) = item {
            return match kind {
                InfoKind::Bridge => LinkKind::Bridge,
                InfoKind::Bond => LinkKind::Bond,
                InfoKind::Vlan => LinkKind::Vlan,
                InfoKind::Vxlan => LinkKind::Vxlan,
                InfoKind::Veth => LinkKind::Veth,
                InfoKind::Tun => LinkKind::Tun,
                other => LinkKind::Other(other.to_string()),
            };
        }
    }
    LinkKind::Device
}

/// A link as parsed, with indexes not yet turned into names.
struct RawLink {
    link: Link,
    master: Option<u32>,
    parent: Option<u32>,
    vxlan_dev: Option<u32>,
    bond_primary: Option<u32>,
}

fn parse_link(message: &LinkMessage) -> RawLink {
    let mut link = Link {
        index: message.header.index,
        name: String::new(),
        kind: LinkKind::Device,
        master: None,
        mtu: 0,
        mac: None,
        up: message.header.flags.contains(LinkFlags::Up),
        running: false,
        bridge: None,
        vlan: None,
        bond: None,
        vxlan: None,
        port: None,
    };
    let (mut master, mut parent, mut vxlan_dev, mut bond_primary) = (None, None, None, None);
    for attr in &message.attributes {
        match attr {
            LinkAttribute::IfName(name) => link.name = name.clone(),
            LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
            LinkAttribute::Address(bytes) if bytes.len() == 6 => {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(bytes);
                link.mac = Some(MacAddr(mac));
            }
            LinkAttribute::Controller(index) => master = Some(*index),
            LinkAttribute::Link(index) => parent = Some(*index),
            LinkAttribute::OperState(state) => link.running = matches!(state, State::Up | State::Unknown),
            LinkAttribute::LinkInfo(info) => {
                link.kind = kind_of(info);
                for item in info {
                    match item {
                        LinkInfo::Data(InfoData::Bridge(opts)) => {
                            let mut bridge = BridgeInfo::default();
                            for o in opts {
                                match o {
                                    InfoBridge::VlanFiltering(on) => bridge.vlan_filtering = *on,
                                    InfoBridge::StpState(state) => {
                                        bridge.stp = !matches!(state, BridgeStpState::Disabled)
                                    }
                                    InfoBridge::ForwardDelay(cs) => bridge.forward_delay = cs / 100,
                                    InfoBridge::VlanDefaultPvid(pvid) => bridge.default_pvid = Some(*pvid),
                                    _ => {}
                                }
                            }
                            link.bridge = Some(bridge);
                        }
                        LinkInfo::Data(InfoData::Vlan(opts)) => {
                            let mut vlan = VlanInfo { id: 0, raw_device: None, protocol: VlanProtocol::Dot1Q };
                            for o in opts {
                                match o {
                                    InfoVlan::Id(id) => vlan.id = *id,
                                    InfoVlan::Protocol(p) => {
                                        vlan.protocol = match p {
                                            netlink_packet_route::link::VlanProtocol::Ieee8021Ad => {
                                                VlanProtocol::Dot1Ad
                                            }
                                            _ => VlanProtocol::Dot1Q,
                                        }
                                    }
                                    _ => {}
                                }
                            }
                            link.vlan = Some(vlan);
                        }
                        LinkInfo::Data(InfoData::Bond(opts)) => {
                            let mut bond = BondInfo {
                                mode: None,
                                slaves: Vec::new(),
                                miimon: None,
                                xmit_hash_policy: None,
                                primary: None,
                            };
                            for o in opts {
                                match o {
                                    InfoBond::Mode(mode) => bond.mode = bond_mode_from(*mode),
                                    InfoBond::MiiMon(ms) => bond.miimon = Some(*ms),
                                    InfoBond::XmitHashPolicy(p) => bond.xmit_hash_policy = hash_policy_from(*p),
                                    InfoBond::Primary(index) => bond_primary = Some(*index),
                                    _ => {}
                                }
                            }
                            link.bond = Some(bond);
                        }
                        LinkInfo::Data(InfoData::Vxlan(opts)) => {
                            let mut vxlan = VxlanInfo { vni: 0, local: None, port: 4789, dev: None, learning: true };
                            for o in opts {
                                match o {
                                    InfoVxlan::Id(vni) => vxlan.vni = *vni,
                                    InfoVxlan::Local(a) => vxlan.local = Some(IpAddr::V4(*a)),
                                    InfoVxlan::Local6(a) => vxlan.local = Some(IpAddr::V6(*a)),
                                    InfoVxlan::Port(p) => vxlan.port = *p,
                                    InfoVxlan::Link(index) => vxlan_dev = Some(*index),
                                    InfoVxlan::Learning(on) => vxlan.learning = *on,
                                    _ => {}
                                }
                            }
                            link.vxlan = Some(vxlan);
                        }
                        LinkInfo::PortData(InfoPortData::BridgePort(opts)) => {
                            let mut port = BridgePortInfo { learning: true, unicast_flood: true, isolated: false };
                            for o in opts {
                                match o {
                                    InfoBridgePort::Learning(on) => port.learning = *on,
                                    InfoBridgePort::UnicastFlood(on) => port.unicast_flood = *on,
                                    InfoBridgePort::Isolated(on) => port.isolated = *on,
                                    _ => {}
                                }
                            }
                            link.port = Some(port);
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    RawLink { link, master, parent, vxlan_dev, bond_primary }
}

fn bond_mode_from(mode: netlink_packet_route::link::BondMode) -> Option<BondMode> {
    use netlink_packet_route::link::BondMode as K;
    Some(match mode {
        K::BalanceRr => BondMode::BalanceRr,
        K::ActiveBackup => BondMode::ActiveBackup,
        K::BalanceXor => BondMode::BalanceXor,
        K::Broadcast => BondMode::Broadcast,
        K::Ieee8023Ad => BondMode::Lacp,
        K::BalanceTlb => BondMode::BalanceTlb,
        K::BalanceAlb => BondMode::BalanceAlb,
        _ => return None,
    })
}

fn hash_policy_from(policy: netlink_packet_route::link::BondXmitHashPolicy) -> Option<XmitHashPolicy> {
    use netlink_packet_route::link::BondXmitHashPolicy as K;
    Some(match policy {
        K::Layer2 => XmitHashPolicy::Layer2,
        K::Layer23 => XmitHashPolicy::Layer2Plus3,
        K::Layer34 => XmitHashPolicy::Layer3Plus4,
        K::Encap23 => XmitHashPolicy::Encap2Plus3,
        K::Encap34 => XmitHashPolicy::Encap3Plus4,
        K::VlanSrcMac => XmitHashPolicy::VlanSrcMac,
        _ => return None,
    })
}

fn hash_policy_to(policy: XmitHashPolicy) -> netlink_packet_route::link::BondXmitHashPolicy {
    use netlink_packet_route::link::BondXmitHashPolicy as K;
    match policy {
        XmitHashPolicy::Layer2 => K::Layer2,
        XmitHashPolicy::Layer2Plus3 => K::Layer23,
        XmitHashPolicy::Layer3Plus4 => K::Layer34,
        XmitHashPolicy::Encap2Plus3 => K::Encap23,
        XmitHashPolicy::Encap3Plus4 => K::Encap34,
        XmitHashPolicy::VlanSrcMac => K::VlanSrcMac,
    }
}

fn resolve_names(raw: Vec<RawLink>) -> Vec<Link> {
    let names: HashMap<u32, String> = raw.iter().map(|r| (r.link.index, r.link.name.clone())).collect();
    let name = |index: Option<u32>| index.and_then(|i| names.get(&i).cloned());
    let slaves: HashMap<u32, Vec<String>> = raw.iter().fold(HashMap::new(), |mut acc, r| {
        if let Some(m) = r.master {
            acc.entry(m).or_default().push(r.link.name.clone());
        }
        acc
    });
    raw.into_iter()
        .map(|r| {
            let mut link = r.link;
            link.master = name(r.master);
            if let Some(vlan) = &mut link.vlan {
                vlan.raw_device = name(r.parent);
            }
            if let Some(vxlan) = &mut link.vxlan {
                vxlan.dev = name(r.vxlan_dev);
            }
            if let Some(bond) = &mut link.bond {
                bond.slaves = slaves.get(&link.index).cloned().unwrap_or_default();
                bond.primary = name(r.bond_primary);
            }
            link
        })
        .collect()
}

impl Netlink {
    // ---- query -------------------------------------------------------------------------

    /// Every link of the namespace, sorted by index.
    pub fn links(&mut self) -> Result<Vec<Link>, NetError> {
        let answers = self
            .query(RouteNetlinkMessage::GetLink(LinkMessage::default()), true)
            .map_err(|errno| NetError::kernel("*", "list links", errno))?;
        let mut raw: Vec<RawLink> = answers
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(link) => Some(parse_link(link)),
                _ => None,
            })
            .collect();
        raw.sort_by_key(|r| r.link.index);
        Ok(resolve_names(raw))
    }

    /// The link called `name`, or `None`. One GETLINK by name (plus one per index it names:
    /// master, raw device), no dump unless it is a bond (whose slaves need one).
    pub fn find_link(&mut self, name: &str) -> Result<Option<Link>, NetError> {
        check_ifname(name)?;
        let mut message = LinkMessage::default();
        message.attributes.push(LinkAttribute::IfName(name.to_owned()));
        let Some(raw) = self.get_link(message, name)? else { return Ok(None) };
        if raw.link.kind == LinkKind::Bond {
            return Ok(self.links()?.into_iter().find(|l| l.name == name));
        }
        let mut names = HashMap::new();
        for index in [raw.master, raw.parent, raw.vxlan_dev, raw.bond_primary].into_iter().flatten() {
            if let std::collections::hash_map::Entry::Vacant(slot) = names.entry(index) {
                if let Some(other) = self.get_link(link_by_index(index), name)? {
                    slot.insert(other.link.name);
                }
            }
        }
        let lookup = |index: Option<u32>| index.and_then(|i| names.get(&i).cloned());
        let mut link = raw.link;
        link.master = lookup(raw.master);
        if let Some(vlan) = &mut link.vlan {
            vlan.raw_device = lookup(raw.parent);
        }
        if let Some(vxlan) = &mut link.vxlan {
            vxlan.dev = lookup(raw.vxlan_dev);
        }
        Ok(Some(link))
    }

    fn get_link(&mut self, message: LinkMessage, name: &str) -> Result<Option<RawLink>, NetError> {
        match self.query(RouteNetlinkMessage::GetLink(message), false) {
            Ok(answers) => Ok(answers.iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(link) => Some(parse_link(link)),
                _ => None,
            })),
            Err(libc::ENODEV) => Ok(None),
            Err(errno) => Err(NetError::kernel(name, "look up", errno)),
        }
    }

    /// The link called `name`; [`NetError::NotFound`] if there is none.
    pub fn link(&mut self, name: &str) -> Result<Link, NetError> {
        self.find_link(name)?.ok_or_else(|| NetError::NotFound(name.to_owned()))
    }

    /// The index of `name` (one GETLINK by name, no dump).
    pub fn index_of(&mut self, name: &str) -> Result<u32, NetError> {
        check_ifname(name)?;
        let mut message = LinkMessage::default();
        message.attributes.push(LinkAttribute::IfName(name.to_owned()));
        match self.query(RouteNetlinkMessage::GetLink(message), false) {
            Ok(answers) => answers
                .iter()
                .find_map(|m| match m {
                    RouteNetlinkMessage::NewLink(link) => Some(link.header.index),
                    _ => None,
                })
                .ok_or_else(|| NetError::NotFound(name.to_owned())),
            Err(libc::ENODEV) => Err(NetError::NotFound(name.to_owned())),
            Err(errno) => Err(NetError::kernel(name, "look up", errno)),
        }
    }

    /// Whether a link called `name` exists.
    pub fn exists(&mut self, name: &str) -> Result<bool, NetError> {
        match self.index_of(name) {
            Ok(_) => Ok(true),
            Err(NetError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The addresses on `name` (IPv4 and IPv6).
    pub fn addresses(&mut self, name: &str) -> Result<Vec<Address>, NetError> {
        let index = self.index_of(name)?;
        let answers = self
            .query(RouteNetlinkMessage::GetAddress(AddressMessage::default()), true)
            .map_err(|errno| NetError::kernel(name, "list addresses", errno))?;
        let mut out = Vec::new();
        for m in answers {
            let RouteNetlinkMessage::NewAddress(a) = m else { continue };
            if a.header.index != index {
                continue;
            }
            let local = a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let address = a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            });
            if let Some(addr) = local.or(address) {
                out.push(Address { ifname: name.to_owned(), cidr: IpCidr { addr, prefix: a.header.prefix_len } });
            }
        }
        Ok(out)
    }

    /// The routes of the main table, IPv4 then IPv6 (default and on-link routes among them).
    pub fn routes(&mut self) -> Result<Vec<Route>, NetError> {
        let names: HashMap<u32, String> = self.links()?.into_iter().map(|l| (l.index, l.name)).collect();
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut request = RouteMessage::default();
            request.header.address_family = family;
            let answers = self
                .query(RouteNetlinkMessage::GetRoute(request), true)
                .map_err(|errno| NetError::kernel("*", "list routes", errno))?;
            for m in answers {
                let RouteNetlinkMessage::NewRoute(r) = m else { continue };
                let mut table = u32::from(r.header.table);
                let mut route = Route { destination: None, gateway: None, dev: None, on_link: false };
                route.on_link = r.header.scope == RouteScope::Link;
                if r.header.kind != RouteType::Unicast {
                    continue;
                }
                for attr in &r.attributes {
                    match attr {
                        RouteAttribute::Table(t) => table = *t,
                        RouteAttribute::Destination(d) => {
                            if let Some(addr) = route_ip(d) {
                                route.destination = Some(IpCidr { addr, prefix: r.header.destination_prefix_length });
                            }
                        }
                        RouteAttribute::Gateway(g) => route.gateway = route_ip(g),
                        RouteAttribute::Oif(index) => route.dev = names.get(index).cloned(),
                        _ => {}
                    }
                }
                if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
                    continue;
                }
                if route.destination.is_none() && r.header.destination_prefix_length != 0 {
                    continue;
                }
                out.push(route);
            }
        }
        Ok(out)
    }

    // ---- create / delete ---------------------------------------------------------------

    fn create(&mut self, name: &str, what: &str, mut message: LinkMessage) -> Result<(), NetError> {
        check_ifname(name)?;
        message.attributes.insert(0, LinkAttribute::IfName(name.to_owned()));
        let result = self.request(RouteNetlinkMessage::NewLink(message), NLM_F_CREATE | NLM_F_EXCL);
        self.step(result, name, || format!("create {what}"))
    }

    /// Creates a bridge (down).
    pub fn create_bridge(&mut self, name: &str, options: &BridgeOptions) -> Result<(), NetError> {
        let mut data = Vec::new();
        // Only what differs from the kernel's defaults: a kernel without VLAN filtering
        // refuses even `vlan_filtering 0`.
        if options.vlan_filtering {
            data.push(InfoBridge::VlanFiltering(true));
        }
        if let Some(pvid) = options.vlan_default_pvid {
            data.push(InfoBridge::VlanDefaultPvid(pvid));
        }
        if options.stp {
            data.push(InfoBridge::StpState(BridgeStpState::KernelStp));
        }
        if let Some(fd) = options.forward_delay {
            data.push(InfoBridge::ForwardDelay(fd.saturating_mul(100)));
        }
        let mut info = vec![LinkInfo::Kind(InfoKind::Bridge)];
        if !data.is_empty() {
            info.push(LinkInfo::Data(InfoData::Bridge(data)));
        }
        let mut message = LinkMessage::default();
        message.attributes.push(LinkAttribute::LinkInfo(info));
        self.create(name, "bridge", message)
    }

    /// Changes a bridge's VLAN filtering, STP and forward delay.
    pub fn set_bridge(&mut self, name: &str, options: &BridgeOptions) -> Result<(), NetError> {
        let index = self.index_of(name)?;
        let mut data =
            vec![InfoBridge::StpState(if options.stp { BridgeStpState::KernelStp } else { BridgeStpState::Disabled })];
        let current = self.link(name)?.bridge.ok_or_else(|| NetError::NotABridge(name.to_owned()))?;
        if options.vlan_filtering != current.vlan_filtering {
            data.push(InfoBridge::VlanFiltering(options.vlan_filtering));
        }
        if let Some(pvid) = options.vlan_default_pvid.filter(|p| Some(*p) != current.default_pvid) {
            data.push(InfoBridge::VlanDefaultPvid(pvid));
        }
        if let Some(fd) = options.forward_delay {
            data.push(InfoBridge::ForwardDelay(fd.saturating_mul(100)));
        }
        let mut message = link_by_index(index);
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Bridge),
            LinkInfo::Data(InfoData::Bridge(data)),
        ]));
        let result = self.request(RouteNetlinkMessage::NewLink(message), 0);
        self.step(result, name, || "set bridge options".to_owned())
    }

    /// Creates a VLAN interface `name` on `parent` with `id` (1–4094).
    pub fn create_vlan(&mut self, name: &str, parent: &str, id: u16, protocol: VlanProtocol) -> Result<(), NetError> {
        VlanRange::single(id)?;
        let parent_index = self.index_of(parent)?;
        self.create(name, &format!("VLAN {id} on {parent}"), vlan_message(parent_index, id, protocol))
    }

    /// Creates a bond (no slaves yet).
    pub fn create_bond(&mut self, name: &str, options: &BondOptions) -> Result<(), NetError> {
        let primary = options.primary.as_deref().map(|p| self.index_of(p)).transpose()?;
        self.create(name, &format!("bond ({})", options.mode), bond_message(options, primary))
    }

    /// Creates a VXLAN.
    pub fn create_vxlan(&mut self, name: &str, options: &VxlanOptions) -> Result<(), NetError> {
        if options.vni == 0 || options.vni > 0x00ff_ffff {
            return Err(NetError::Invalid { what: "VXLAN id (1 to 16777215)", value: options.vni.to_string() });
        }
        let mut data = vec![
            InfoVxlan::Id(options.vni),
            InfoVxlan::Port(options.dstport.unwrap_or(4789)),
            InfoVxlan::Learning(options.learning),
        ];
        match options.local {
            Some(IpAddr::V4(a)) => data.push(InfoVxlan::Local(a)),
            Some(IpAddr::V6(a)) => data.push(InfoVxlan::Local6(a)),
            None => {}
        }
        if let Some(dev) = &options.dev {
            data.push(InfoVxlan::Link(self.index_of(dev)?));
        }
        let mut message = LinkMessage::default();
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vxlan),
            LinkInfo::Data(InfoData::Vxlan(data)),
        ]));
        self.create(name, &format!("VXLAN {}", options.vni), message)
    }

    /// Creates a veth pair `name` ↔ `peer.name`, the peer optionally straight in another
    /// namespace (its name then never exists in this one). `mtu` applies to this end; the
    /// peer's MTU and MAC are its own.
    pub fn create_veth(&mut self, name: &str, mtu: Option<u32>, peer: &VethPeer) -> Result<(), NetError> {
        check_ifname(&peer.name)?;
        let mut peer_message = LinkMessage::default();
        peer_message.attributes.push(LinkAttribute::IfName(peer.name.clone()));
        // Held open until the request is sent.
        let mut _netns_file = None;
        match &peer.netns {
            Some(PeerNetns::Pid(pid)) => peer_message.attributes.push(LinkAttribute::NetNsPid(*pid)),
            Some(PeerNetns::Path(path)) => {
                let file = std::fs::File::open(path)
                    .map_err(|e| NetError::io(format!("open network namespace {}", path.display()), e))?;
                peer_message.attributes.push(LinkAttribute::NetNsFd(std::os::fd::AsRawFd::as_raw_fd(&file)));
                _netns_file = Some(file);
            }
            None => {}
        }
        if let Some(mtu) = peer.mtu {
            peer_message.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = peer.mac {
            peer_message.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
        }
        let mut message = LinkMessage::default();
        if let Some(mtu) = mtu {
            message.attributes.push(LinkAttribute::Mtu(mtu));
        }
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_message))),
        ]));
        self.create(name, &format!("veth pair with {}", peer.name), message)
    }

    /// Deletes a link (a veth's peer goes with it).
    pub fn delete_link(&mut self, name: &str) -> Result<(), NetError> {
        let index = self.index_of(name)?;
        let result = self.request(RouteNetlinkMessage::DelLink(link_by_index(index)), 0);
        self.step(result, name, || "delete".to_owned())
    }

    // ---- modify ------------------------------------------------------------------------

    fn set(
        &mut self,
        name: &str,
        what: impl FnOnce() -> String,
        fill: impl FnOnce(&mut LinkMessage),
    ) -> Result<(), NetError> {
        let index = self.index_of(name)?;
        let mut message = link_by_index(index);
        fill(&mut message);
        let result = self.request(RouteNetlinkMessage::SetLink(message), 0);
        self.step(result, name, what)
    }

    /// Brings a link up or down.
    pub fn set_up(&mut self, name: &str, up: bool) -> Result<(), NetError> {
        self.set(
            name,
            || if up { "set up" } else { "set down" }.to_owned(),
            |m| {
                m.header.change_mask = LinkFlags::Up;
                if up {
                    m.header.flags = LinkFlags::Up;
                }
            },
        )
    }

    /// Sets a link's MTU.
    pub fn set_mtu(&mut self, name: &str, mtu: u32) -> Result<(), NetError> {
        self.set(name, || format!("set mtu {mtu}"), |m| m.attributes.push(LinkAttribute::Mtu(mtu)))
    }

    /// Sets a link's MAC address.
    pub fn set_mac(&mut self, name: &str, mac: MacAddr) -> Result<(), NetError> {
        self.set(name, || format!("set address {mac}"), |m| m.attributes.push(LinkAttribute::Address(mac.0.to_vec())))
    }

    /// Makes `name` a port of the bridge or bond `master`, or (`None`) of none.
    pub fn set_master(&mut self, name: &str, master: Option<&str>) -> Result<(), NetError> {
        let master_index = match master {
            Some(m) => self.index_of(m)?,
            None => 0,
        };
        let what = || match master {
            Some(m) => format!("set master {m}"),
            None => "clear master".to_owned(),
        };
        self.set(name, what, |m| m.attributes.push(LinkAttribute::Controller(master_index)))
    }

    /// Renames a link (it must be down).
    pub fn rename(&mut self, name: &str, new_name: &str) -> Result<(), NetError> {
        check_ifname(new_name)?;
        self.set(
            name,
            || format!("rename to {new_name}"),
            |m| m.attributes.push(LinkAttribute::IfName(new_name.to_owned())),
        )
    }

    fn address_message(index: u32, cidr: IpCidr) -> AddressMessage {
        let mut message = AddressMessage::default();
        message.header.family = if cidr.addr.is_ipv6() { AddressFamily::Inet6 } else { AddressFamily::Inet };
        message.header.prefix_len = cidr.prefix;
        message.header.index = index;
        if cidr.addr.is_ipv4() {
            message.attributes.push(AddressAttribute::Local(cidr.addr));
        }
        message.attributes.push(AddressAttribute::Address(cidr.addr));
        message
    }

    /// Adds an address (`10.0.0.1/24`, `fd00::1/64`).
    pub fn add_address(&mut self, name: &str, cidr: IpCidr) -> Result<(), NetError> {
        let index = self.index_of(name)?;
        let result = self
            .request(RouteNetlinkMessage::NewAddress(Self::address_message(index, cidr)), NLM_F_CREATE | NLM_F_EXCL);
        self.step(result, name, || format!("add address {cidr}"))
    }

    /// Removes an address.
    pub fn del_address(&mut self, name: &str, cidr: IpCidr) -> Result<(), NetError> {
        let index = self.index_of(name)?;
        let result = self.request(RouteNetlinkMessage::DelAddress(Self::address_message(index, cidr)), 0);
        self.step(result, name, || format!("delete address {cidr}"))
    }

    fn route_message(
        &mut self,
        destination: Option<IpCidr>,
        gateway: Option<IpAddr>,
        dev: &str,
    ) -> Result<RouteMessage, NetError> {
        let index = self.index_of(dev)?;
        let v6 = destination.map(|d| d.addr.is_ipv6()).or(gateway.map(|g| g.is_ipv6())).unwrap_or(false);
        let mut message = RouteMessage::default();
        message.header.address_family = if v6 { AddressFamily::Inet6 } else { AddressFamily::Inet };
        message.header.table = RouteHeader::RT_TABLE_MAIN;
        message.header.protocol = RouteProtocol::Boot;
        message.header.kind = RouteType::Unicast;
        message.header.scope = if gateway.is_some() { RouteScope::Universe } else { RouteScope::Link };
        if let Some(d) = destination {
            message.header.destination_prefix_length = d.prefix;
            message.attributes.push(RouteAttribute::Destination(RouteAddress::from(d.addr)));
        }
        if let Some(g) = gateway {
            message.attributes.push(RouteAttribute::Gateway(RouteAddress::from(g)));
        }
        message.attributes.push(RouteAttribute::Oif(index));
        Ok(message)
    }

    /// Adds a route of the main table: `destination` (`None` = default) via `gateway` or, with
    /// no gateway, directly on `dev`.
    pub fn add_route(
        &mut self,
        destination: Option<IpCidr>,
        gateway: Option<IpAddr>,
        dev: &str,
    ) -> Result<(), NetError> {
        let message = self.route_message(destination, gateway, dev)?;
        let result = self.request(RouteNetlinkMessage::NewRoute(message), NLM_F_CREATE | NLM_F_EXCL);
        self.step(result, dev, || route_text("add", destination, gateway))
    }

    /// Deletes a route added with [`Netlink::add_route`].
    pub fn del_route(
        &mut self,
        destination: Option<IpCidr>,
        gateway: Option<IpAddr>,
        dev: &str,
    ) -> Result<(), NetError> {
        let mut message = self.route_message(destination, gateway, dev)?;
        message.header.protocol = RouteProtocol::Unspec;
        message.header.scope = RouteScope::NoWhere;
        let result = self.request(RouteNetlinkMessage::DelRoute(message), 0);
        self.step(result, dev, || route_text("delete", destination, gateway))
    }

    /// Changes bridge port flags of `name` (learning, unicast flood, isolated).
    pub fn set_port_flags(&mut self, name: &str, flags: &PortFlags) -> Result<(), NetError> {
        let mut data = Vec::new();
        if let Some(on) = flags.learning {
            data.push(InfoBridgePort::Learning(on));
        }
        if let Some(on) = flags.unicast_flood {
            data.push(InfoBridgePort::UnicastFlood(on));
        }
        if let Some(on) = flags.isolated {
            data.push(InfoBridgePort::Isolated(on));
        }
        if data.is_empty() {
            return Ok(());
        }
        let index = self.index_of(name)?;
        let mut message = link_by_index(index);
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(data)),
        ]));
        let result = self.request(RouteNetlinkMessage::NewLink(message), 0);
        self.step(result, name, || "set bridge port flags".to_owned())
    }

    /// Adds VLANs to the bridge port `port` (`bridge vlan add dev PORT vid A-B [pvid untagged]`).
    /// `pvid_untagged` makes each (single) VLAN the port's untagged PVID.
    pub fn bridge_vlan_add(&mut self, port: &str, vlans: &[VlanRange], pvid_untagged: bool) -> Result<(), NetError> {
        self.bridge_vlan(port, vlans, pvid_untagged, true, false)
    }

    /// Removes VLANs from the bridge port `port` (`bridge vlan del dev PORT vid A-B`).
    pub fn bridge_vlan_del(&mut self, port: &str, vlans: &[VlanRange]) -> Result<(), NetError> {
        self.bridge_vlan(port, vlans, false, false, false)
    }

    /// Adds VLANs, tagged, to a VLAN-aware bridge's own port, the one its upper devices (such
    /// as a VLAN device `BRIDGE.TAG`) send and receive through (`bridge vlan add dev BRIDGE vid
    /// A-B self`).
    pub fn bridge_self_vlan_add(&mut self, bridge: &str, vlans: &[VlanRange]) -> Result<(), NetError> {
        self.bridge_vlan(bridge, vlans, false, true, true)
    }

    /// Removes VLANs from a bridge's own port (`bridge vlan del dev BRIDGE vid A-B self`).
    pub fn bridge_self_vlan_del(&mut self, bridge: &str, vlans: &[VlanRange]) -> Result<(), NetError> {
        self.bridge_vlan(bridge, vlans, false, false, true)
    }

    fn bridge_vlan(
        &mut self,
        port: &str,
        vlans: &[VlanRange],
        pvid_untagged: bool,
        add: bool,
        on_self: bool,
    ) -> Result<(), NetError> {
        if vlans.is_empty() {
            return Ok(());
        }
        let index = self.index_of(port)?;
        let mut message = bridge_vlan_message(index, vlans, pvid_untagged);
        if on_self {
            // IFLA_BRIDGE_FLAGS = BRIDGE_FLAGS_SELF: the bridge device's own VLANs, not those
            // of a port of its master.
            for attr in &mut message.attributes {
                if let LinkAttribute::AfSpecBridge(spec) = attr {
                    spec.insert(0, AfSpecBridge::Flags(BridgeFlag::LowerDev));
                }
            }
        }
        let result = if add {
            self.request(RouteNetlinkMessage::SetLink(message), 0)
        } else {
            self.request(RouteNetlinkMessage::DelLink(message), 0)
        };
        let list = vlans.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
        self.step(result, port, || {
            format!(
                "{} VLAN {list}{}",
                if add { "add" } else { "delete" },
                if pvid_untagged {
                    " pvid untagged"
                } else if on_self {
                    " self"
                } else {
                    ""
                }
            )
        })
    }

    /// The VLANs of a bridge port (or, with `name` a bridge, of the bridge itself): each
    /// range with whether it is the PVID and egresses untagged. Empty on a bridge without VLAN
    /// filtering.
    pub fn bridge_vlans(&mut self, name: &str) -> Result<Vec<PortVlan>, NetError> {
        let index = self.index_of(name)?;
        let mut request = LinkMessage::default();
        request.header.interface_family = AddressFamily::Bridge;
        request.attributes.push(LinkAttribute::ExtMask(vec![LinkExtentMask::BrvlanCompressed]));
        let answers = self
            .query(RouteNetlinkMessage::GetLink(request), true)
            .map_err(|errno| NetError::kernel(name, "list bridge VLANs", errno))?;
        let mut out = Vec::new();
        for m in answers {
            let RouteNetlinkMessage::NewLink(link) = m else { continue };
            if link.header.index != index {
                continue;
            }
            let mut begin = None;
            for attr in &link.attributes {
                let LinkAttribute::AfSpecBridge(spec) = attr else { continue };
                for item in spec {
                    let AfSpecBridge::VlanInfo(info) = item else { continue };
                    if info.flags.contains(BridgeVlanInfoFlags::RangeBegin) {
                        begin = Some(info.vid);
                        continue;
                    }
                    let start = begin.take().unwrap_or(info.vid);
                    out.push(PortVlan {
                        vlans: VlanRange { start, end: info.vid },
                        pvid: info.flags.contains(BridgeVlanInfoFlags::Pvid),
                        untagged: info.flags.contains(BridgeVlanInfoFlags::Untagged),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Adds a head-end replication entry to a VXLAN's FDB: broadcast and unknown traffic is
    /// sent to `peer` as well (`bridge fdb append 00:00:00:00:00:00 dev VXLAN dst PEER`).
    pub fn fdb_append(&mut self, vxlan: &str, peer: IpAddr) -> Result<(), NetError> {
        let index = self.index_of(vxlan)?;
        let result =
            self.request(RouteNetlinkMessage::NewNeighbour(fdb_message(index, peer)), NLM_F_CREATE | NLM_F_APPEND);
        self.step(result, vxlan, || format!("append FDB entry 00:00:00:00:00:00 dst {peer}"))
    }

    /// Removes a head-end replication entry added by [`Netlink::fdb_append`].
    pub fn fdb_del(&mut self, vxlan: &str, peer: IpAddr) -> Result<(), NetError> {
        let index = self.index_of(vxlan)?;
        let result = self.request(RouteNetlinkMessage::DelNeighbour(fdb_message(index, peer)), 0);
        self.step(result, vxlan, || format!("delete FDB entry 00:00:00:00:00:00 dst {peer}"))
    }

    /// The head-end replication peers of a VXLAN.
    pub fn fdb_peers(&mut self, vxlan: &str) -> Result<Vec<IpAddr>, NetError> {
        let index = self.index_of(vxlan)?;
        let mut request = NeighbourMessage::default();
        request.header.family = AddressFamily::Bridge;
        let answers = self
            .query(RouteNetlinkMessage::GetNeighbour(request), true)
            .map_err(|errno| NetError::kernel(vxlan, "list FDB", errno))?;
        let mut out = Vec::new();
        for m in answers {
            let RouteNetlinkMessage::NewNeighbour(n) = m else { continue };
            if n.header.ifindex != index {
                continue;
            }
            let zero = n
                .attributes
                .iter()
                .any(|a| matches!(a, NeighbourAttribute::LinkLayerAddress(mac) if mac.iter().all(|b| *b == 0)));
            for a in &n.attributes {
                if let NeighbourAttribute::Destination(d) = a {
                    match d {
                        NeighbourAddress::Inet(ip) if zero => out.push(IpAddr::V4(*ip)),
                        NeighbourAddress::Inet6(ip) if zero => out.push(IpAddr::V6(*ip)),
                        // AF_BRIDGE entries carry the raw address bytes.
                        NeighbourAddress::Other(bytes) if zero => {
                            if let Ok(v4) = <[u8; 4]>::try_from(bytes.as_slice()) {
                                out.push(IpAddr::from(v4));
                            } else if let Ok(v6) = <[u8; 16]>::try_from(bytes.as_slice()) {
                                out.push(IpAddr::from(v6));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(out)
    }

    /// Writes `/proc/sys/net/ipv6/conf/<name>/disable_ipv6` in the handle's namespace.
    pub fn set_disable_ipv6(&mut self, name: &str, disable: bool) -> Result<(), NetError> {
        self.write_sysctl(name, "ipv6", "disable_ipv6", disable)
    }

    /// Writes `/proc/sys/net/{ipv4,ipv6}/conf/<name>/forwarding` in the handle's namespace.
    pub fn set_forwarding(&mut self, name: &str, ipv6: bool, on: bool) -> Result<(), NetError> {
        self.write_sysctl(name, if ipv6 { "ipv6" } else { "ipv4" }, "forwarding", on)
    }

    fn write_sysctl(&mut self, name: &str, family: &str, key: &str, on: bool) -> Result<(), NetError> {
        check_ifname(name)?;
        let path = format!("/proc/sys/net/{family}/conf/{name}/{key}");
        let value = if on { "1" } else { "0" };
        self.run_in_netns(|| std::fs::write(&path, value))?.map_err(|e| match e.raw_os_error() {
            Some(errno) => NetError::kernel(name, format!("write {value} to {path}"), errno),
            None => NetError::io(format!("{name}: write {value} to {path}"), e),
        })
    }
}

fn route_text(verb: &str, destination: Option<IpCidr>, gateway: Option<IpAddr>) -> String {
    let dest = destination.map_or_else(|| "default".to_owned(), |d| d.to_string());
    match gateway {
        Some(g) => format!("{verb} route {dest} via {g}"),
        None => format!("{verb} route {dest}"),
    }
}

fn route_ip(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

/// The NEWLINK body of a VLAN interface on the link `parent_index`.
pub(crate) fn vlan_message(parent_index: u32, id: u16, protocol: VlanProtocol) -> LinkMessage {
    let protocol = match protocol {
        VlanProtocol::Dot1Q => netlink_packet_route::link::VlanProtocol::Ieee8021Q,
        VlanProtocol::Dot1Ad => netlink_packet_route::link::VlanProtocol::Ieee8021Ad,
    };
    let mut message = LinkMessage::default();
    message.attributes.push(LinkAttribute::Link(parent_index));
    message.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Vlan),
        LinkInfo::Data(InfoData::Vlan(vec![InfoVlan::Id(id), InfoVlan::Protocol(protocol)])),
    ]));
    message
}

/// The NEWLINK body of a bond; `primary` is the primary slave's index.
pub(crate) fn bond_message(options: &BondOptions, primary: Option<u32>) -> LinkMessage {
    let mut data = vec![InfoBond::Mode(netlink_packet_route::link::BondMode::from(options.mode.number()))];
    if let Some(ms) = options.miimon {
        data.push(InfoBond::MiiMon(ms));
    }
    if let Some(policy) = options.xmit_hash_policy {
        data.push(InfoBond::XmitHashPolicy(hash_policy_to(policy)));
    }
    if let Some(index) = primary {
        data.push(InfoBond::Primary(index));
    }
    let mut message = LinkMessage::default();
    message
        .attributes
        .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bond), LinkInfo::Data(InfoData::Bond(data))]));
    message
}

/// The `AF_BRIDGE` SETLINK/DELLINK body for VLANs on a port: one `IFLA_BRIDGE_VLAN_INFO` per
/// single VLAN, a RANGE_BEGIN/RANGE_END pair per range.
pub(crate) fn bridge_vlan_message(index: u32, vlans: &[VlanRange], pvid_untagged: bool) -> LinkMessage {
    let mut message = link_by_index(index);
    message.header.interface_family = AddressFamily::Bridge;
    let mut spec = Vec::new();
    for range in vlans {
        let base = if pvid_untagged {
            BridgeVlanInfoFlags::Pvid | BridgeVlanInfoFlags::Untagged
        } else {
            BridgeVlanInfoFlags::empty()
        };
        if range.start == range.end {
            spec.push(AfSpecBridge::VlanInfo(BridgeVlanInfo { flags: base, vid: range.start }));
        } else {
            spec.push(AfSpecBridge::VlanInfo(BridgeVlanInfo {
                flags: base | BridgeVlanInfoFlags::RangeBegin,
                vid: range.start,
            }));
            spec.push(AfSpecBridge::VlanInfo(BridgeVlanInfo {
                flags: base | BridgeVlanInfoFlags::RangeEnd,
                vid: range.end,
            }));
        }
    }
    message.attributes.push(LinkAttribute::AfSpecBridge(spec));
    message
}

fn fdb_message(index: u32, peer: IpAddr) -> NeighbourMessage {
    let mut message = NeighbourMessage::default();
    message.header.family = AddressFamily::Bridge;
    message.header.ifindex = index;
    message.header.state = NeighbourState::Permanent;
    message.header.flags = NeighbourFlags::Own;
    message.attributes.push(NeighbourAttribute::LinkLayerAddress(vec![0; 6]));
    message.attributes.push(NeighbourAttribute::Destination(match peer {
        IpAddr::V4(a) => NeighbourAddress::Inet(a),
        IpAddr::V6(a) => NeighbourAddress::Inet6(a),
    }));
    message
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use netlink_packet_core::Emitable;

    use super::*;

    #[test]
    fn vlan_ranges_become_begin_end_pairs() {
        let message =
            bridge_vlan_message(7, &[VlanRange::new(2, 4094).unwrap(), VlanRange::single(10).unwrap()], false);
        assert_eq!(message.header.interface_family, AddressFamily::Bridge);
        let LinkAttribute::AfSpecBridge(spec) = &message.attributes[0] else { panic!() };
        assert_eq!(spec.len(), 3);
        assert!(
            matches!(spec[0], AfSpecBridge::VlanInfo(BridgeVlanInfo { vid: 2, flags }) if flags == BridgeVlanInfoFlags::RangeBegin)
        );
        assert!(
            matches!(spec[1], AfSpecBridge::VlanInfo(BridgeVlanInfo { vid: 4094, flags }) if flags == BridgeVlanInfoFlags::RangeEnd)
        );
        let pvid = bridge_vlan_message(7, &[VlanRange::single(5).unwrap()], true);
        let LinkAttribute::AfSpecBridge(spec) = &pvid.attributes[0] else { panic!() };
        assert!(matches!(spec[0], AfSpecBridge::VlanInfo(BridgeVlanInfo { vid: 5, flags })
            if flags == BridgeVlanInfoFlags::Pvid | BridgeVlanInfoFlags::Untagged));
        // The body encodes: ifinfomsg (16 bytes) + IFLA_AF_SPEC nest with 4-byte VLAN infos.
        assert_eq!(pvid.buffer_len(), 16 + 4 + 8);
    }

    /// Emits `message` and parses it back as the kernel's answer would be parsed.
    fn round_trip(message: &LinkMessage) -> Link {
        use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
        let mut packet = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::from(RouteNetlinkMessage::NewLink(message.clone())),
        );
        packet.finalize();
        let mut bytes = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut bytes);
        let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes).unwrap();
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) = parsed.payload else { panic!() };
        parse_link(&link).link
    }

    #[test]
    fn vlan_and_bond_requests_carry_their_settings() {
        let vlan = round_trip(&vlan_message(4, 100, VlanProtocol::Dot1Ad));
        assert_eq!(vlan.kind, LinkKind::Vlan);
        let info = vlan.vlan.unwrap();
        assert_eq!((info.id, info.protocol), (100, VlanProtocol::Dot1Ad));
        for mode in BondMode::ALL {
            let options = BondOptions {
                mode,
                miimon: Some(100),
                xmit_hash_policy: Some(XmitHashPolicy::Layer3Plus4),
                primary: None,
            };
            let bond = round_trip(&bond_message(&options, Some(9))).bond.unwrap();
            assert_eq!(bond.mode, Some(mode));
            assert_eq!(bond.miimon, Some(100));
            assert_eq!(bond.xmit_hash_policy, Some(XmitHashPolicy::Layer3Plus4));
        }
    }

    #[test]
    fn fdb_entries_are_all_zero_mac_with_a_destination() {
        let message = fdb_message(3, "192.0.2.1".parse().unwrap());
        assert_eq!(message.header.family, AddressFamily::Bridge);
        assert_eq!(message.header.flags, NeighbourFlags::Own);
        assert!(message.attributes.contains(&NeighbourAttribute::LinkLayerAddress(vec![0; 6])));
    }
}
