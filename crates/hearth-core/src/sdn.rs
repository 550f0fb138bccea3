//! Software-defined networking as Proxmox's SDN models it: zones (`simple`, `vlan`, `vxlan`),
//! VNets (a bridge of that name on every node of the zone) and subnets (gateway, SNAT, DHCP
//! ranges), the rules that keep a configuration sound, what one node must build from it
//! ([`NodePlan`]), the nftables and dnsmasq text for that plan, and the built-in `pve` IPAM.
//!
//! The configuration is TOML (`etc/hearth/sdn/sdn.toml` holds the edited, pending state,
//! `etc/hearth/sdn/.running-config.toml` the applied one, as Proxmox keeps its `*.cfg` files and
//! `.running-config`):
//!
//! ```toml
//! [zones.zsimple]
//! type = "simple"
//! dhcp = "dnsmasq"
//! ipam = "pve"
//!
//! [vnets.vnet0]
//! zone = "zsimple"
//!
//! [subnets."zsimple-10.0.0.0-24"]
//! vnet = "vnet0"
//! gateway = "10.0.0.1"
//! snat = true
//! dhcp-range = ["start-address=10.0.0.100,end-address=10.0.0.199"]
//! ```
//!
//! Only IPv4 subnets are modelled so far.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

mod ipam;
mod render;
#[cfg(test)]
mod tests;

pub use ipam::{Ipam, IpamEntry};
pub use render::{NFT_TABLE, dnsmasq_conf, dnsmasq_ethers, nft_ruleset};

/// The UDP port VXLAN uses unless a zone sets `vxlan-port` (IANA's).
pub const VXLAN_PORT: u16 = 4789;
/// What VXLAN encapsulation costs on an IPv4 underlay: outer Ethernet, IP, UDP and VXLAN headers.
pub const VXLAN_OVERHEAD: u32 = 50;

/// Why an SDN edit or configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SdnError {
    /// A value or a combination of values is not allowed; `key` names what.
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
    #[error("{kind} '{id}' does not exist")]
    NotFound { kind: SdnKind, id: String },
    #[error("{kind} '{id}' already exists")]
    Exists { kind: SdnKind, id: String },
    /// The object is still used by others, named in the message.
    #[error("{kind} '{id}' is still used by {users}")]
    InUse { kind: SdnKind, id: String, users: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> SdnError {
    SdnError::Invalid { key: key.into(), message: message.into() }
}

/// The three kinds of SDN object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SdnKind {
    Zone,
    Vnet,
    Subnet,
}

impl fmt::Display for SdnKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SdnKind::Zone => "zone",
            SdnKind::Vnet => "vnet",
            SdnKind::Subnet => "subnet",
        })
    }
}

/// The isolation technology of a zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZoneType {
    /// A host-local bridge per VNet, routed and optionally SNATed by the host.
    Simple,
    /// A VLAN tag on an existing VLAN-aware bridge.
    Vlan,
    /// A VXLAN tunnel per VNet to every peer (unicast head-end replication).
    Vxlan,
}

impl ZoneType {
    pub const NAMES: &'static str = "simple, vlan, vxlan";

    fn parse(v: &str) -> Result<ZoneType, SdnError> {
        match v {
            "simple" => Ok(ZoneType::Simple),
            "vlan" => Ok(ZoneType::Vlan),
            "vxlan" => Ok(ZoneType::Vxlan),
            _ => Err(invalid("type", format!("unknown zone type '{v}' (allowed: {})", ZoneType::NAMES))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ZoneType::Simple => "simple",
            ZoneType::Vlan => "vlan",
            ZoneType::Vxlan => "vxlan",
        }
    }
}

/// A zone: `[zones.<id>]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Zone {
    #[serde(rename = "type")]
    pub kind: ZoneType,
    /// The nodes the zone exists on; empty: every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// The IPAM that allocates guest addresses (`pve`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The DHCP server of the zone (`dnsmasq`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp: Option<String>,
    /// `vlan`: the VLAN-aware bridge the tags are taken on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    /// `vxlan`: the underlay addresses of every node of the zone, this one included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxlan_port: Option<u16>,
}

/// A VNet: `[vnets.<id>]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Vnet {
    pub zone: String,
    /// The VLAN id (`vlan` zones) or VXLAN network identifier (`vxlan` zones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub vlanaware: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub isolate_ports: bool,
}

/// A subnet: `[subnets."<zone>-<net>-<prefixlen>"]`; the id carries the network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Subnet {
    pub vnet: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub snat: bool,
    /// `start-address=A,end-address=B`, as Proxmox writes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dhcp_range: Vec<DhcpRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp_dns_server: Option<Ipv4Addr>,
}

/// An IPv4 network: address and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    /// `10.0.0.0/24`; the address must be the network's own (no host bits).
    pub fn parse(v: &str) -> Result<Cidr, String> {
        let (addr, prefix) = v.split_once('/').ok_or_else(|| format!("'{v}' is not a CIDR (a.b.c.d/len)"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| format!("'{v}' is not an IPv4 CIDR (a.b.c.d/len)"))?;
        let prefix: u8 =
            prefix.parse().ok().filter(|p| *p <= 32).ok_or_else(|| format!("bad prefix length in '{v}'"))?;
        let cidr = Cidr { addr, prefix };
        if cidr.network() != addr {
            return Err(format!("'{v}' has host bits set (the network is {}/{prefix})", cidr.network()));
        }
        Ok(cidr)
    }

    fn mask(self) -> u32 {
        if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) }
    }

    pub fn netmask(self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask())
    }

    pub fn network(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    pub fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }

    /// A usable host address: inside, neither the network nor (below /31) the broadcast address.
    pub fn is_host(self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && (self.prefix >= 31 || (ip != self.network() && ip != self.broadcast()))
    }

    pub fn overlaps(self, other: Cidr) -> bool {
        self.contains(other.network()) || other.contains(self.network())
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// One DHCP range of a subnet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DhcpRange {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
}

impl DhcpRange {
    /// `start-address=A,end-address=B` (either order).
    pub fn parse(v: &str) -> Result<DhcpRange, String> {
        let (mut start, mut end) = (None, None);
        for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(|| format!("'{part}' is not key=value"))?;
            let ip: Ipv4Addr = value.parse().map_err(|_| format!("{key}: '{value}' is not an IPv4 address"))?;
            match key {
                "start-address" => start = Some(ip),
                "end-address" => end = Some(ip),
                _ => return Err(format!("unknown key '{key}' (allowed: start-address, end-address)")),
            }
        }
        match (start, end) {
            (Some(start), Some(end)) if u32::from(start) <= u32::from(end) => Ok(DhcpRange { start, end }),
            (Some(start), Some(end)) => Err(format!("start-address {start} is above end-address {end}")),
            _ => Err(format!("'{v}' needs start-address=A,end-address=B")),
        }
    }

    pub fn contains(self, ip: Ipv4Addr) -> bool {
        (u32::from(self.start)..=u32::from(self.end)).contains(&u32::from(ip))
    }
}

impl fmt::Display for DhcpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "start-address={},end-address={}", self.start, self.end)
    }
}

impl Serialize for DhcpRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DhcpRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<DhcpRange, D::Error> {
        let text = String::deserialize(d)?;
        DhcpRange::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A whole SDN configuration (the pending one or the running one).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SdnConfig {
    #[serde(default)]
    pub zones: BTreeMap<String, Zone>,
    #[serde(default)]
    pub vnets: BTreeMap<String, Vnet>,
    #[serde(default)]
    pub subnets: BTreeMap<String, Subnet>,
}

/// An object's keys as `key=value` pairs, in the order `list` prints them.
pub type Properties = Vec<(&'static str, String)>;

/// Guest NICs on VNets: (vnet, guest as "CT 200 net0"), from the guests' configurations.
pub type VnetUsers<'a> = &'a [(String, String)];

fn flag(key: &str, v: &str) -> Result<bool, SdnError> {
    match v {
        "1" | "yes" | "true" | "on" => Ok(true),
        "0" | "no" | "false" | "off" => Ok(false),
        _ => Err(invalid(key, format!("'{v}' is not a boolean (0 or 1)"))),
    }
}

fn number<T: std::str::FromStr>(key: &str, v: &str, what: &str) -> Result<T, SdnError> {
    v.parse().map_err(|_| invalid(key, format!("'{v}' is not {what}")))
}

fn ipv4(key: &str, v: &str) -> Result<Ipv4Addr, SdnError> {
    v.parse().map_err(|_| invalid(key, format!("'{v}' is not an IPv4 address")))
}

fn list(v: &str) -> impl Iterator<Item = &str> {
    v.split([',', ' ', ';']).map(str::trim).filter(|s| !s.is_empty())
}

/// Checks an SDN object id: zones and VNets are `[a-z][a-z0-9]*`, at most 8 characters, as in
/// Proxmox (a VNet becomes an interface name, and `vxlan_<vnet>` must fit 15 bytes).
pub fn check_id(kind: SdnKind, id: &str) -> Result<(), SdnError> {
    let ok = id.len() <= 8
        && id.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(invalid(kind.to_string(), format!("invalid id '{id}': 1 to 8 of a-z 0-9, starting with a letter")))
    }
}

impl Zone {
    fn new(kind: ZoneType) -> Zone {
        Zone {
            kind,
            nodes: Vec::new(),
            ipam: None,
            mtu: None,
            dhcp: None,
            bridge: None,
            peers: Vec::new(),
            vxlan_port: None,
        }
    }

    fn set(&mut self, key: &str, v: &str) -> Result<(), SdnError> {
        match key {
            "type" => {
                if ZoneType::parse(v)? != self.kind {
                    return Err(invalid("type", "the type of an existing zone cannot change"));
                }
            }
            "nodes" => {
                self.nodes = list(v)
                    .map(|n| crate::schema::check::dns_name(n).map_err(|e| invalid("nodes", e)))
                    .collect::<Result<_, _>>()?;
            }
            "ipam" if v == "pve" => self.ipam = Some(v.to_owned()),
            "ipam" => return Err(invalid("ipam", format!("unknown IPAM '{v}' (allowed: pve)"))),
            "mtu" => {
                let mtu: u32 = number(key, v, "a number")?;
                if !(1280..=65520).contains(&mtu) {
                    return Err(invalid("mtu", format!("{mtu} is outside 1280..65520")));
                }
                self.mtu = Some(mtu);
            }
            "dhcp" if v == "dnsmasq" => self.dhcp = Some(v.to_owned()),
            "dhcp" => return Err(invalid("dhcp", format!("unknown DHCP server '{v}' (allowed: dnsmasq)"))),
            "bridge" => {
                self.bridge = Some(crate::schema::check::iface_name(v).map_err(|e| invalid("bridge", e))?);
            }
            "peers" => {
                self.peers = list(v).map(|p| ipv4("peers", p)).collect::<Result<_, _>>()?;
            }
            "vxlan-port" => {
                let port: u16 = number(key, v, "a port number")?;
                if port == 0 {
                    return Err(invalid(key, "0 is not a port"));
                }
                self.vxlan_port = Some(port);
            }
            _ => return Err(unknown_key(key, ZONE_KEYS)),
        }
        Ok(())
    }

    fn clear(&mut self, key: &str) -> Result<(), SdnError> {
        match key {
            "nodes" => self.nodes.clear(),
            "ipam" => self.ipam = None,
            "mtu" => self.mtu = None,
            "dhcp" => self.dhcp = None,
            "bridge" => self.bridge = None,
            "peers" => self.peers.clear(),
            "vxlan-port" => self.vxlan_port = None,
            _ => return Err(unknown_key(key, ZONE_KEYS)),
        }
        Ok(())
    }

    /// Whether the zone exists on `node`.
    pub fn on_node(&self, node: &str) -> bool {
        self.nodes.is_empty() || self.nodes.iter().any(|n| n == node)
    }

    /// The zone as `key=value` pairs, in the order `list` prints them.
    pub fn properties(&self) -> Properties {
        let mut out = vec![("type", self.kind.name().to_owned())];
        let join = |l: &[String]| l.join(",");
        if !self.nodes.is_empty() {
            out.push(("nodes", join(&self.nodes)));
        }
        if let Some(v) = &self.ipam {
            out.push(("ipam", v.clone()));
        }
        if let Some(v) = self.mtu {
            out.push(("mtu", v.to_string()));
        }
        if let Some(v) = &self.dhcp {
            out.push(("dhcp", v.clone()));
        }
        if let Some(v) = &self.bridge {
            out.push(("bridge", v.clone()));
        }
        if !self.peers.is_empty() {
            out.push(("peers", self.peers.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")));
        }
        if let Some(v) = self.vxlan_port {
            out.push(("vxlan-port", v.to_string()));
        }
        out
    }
}

const ZONE_KEYS: &str = "type, nodes, ipam, mtu, dhcp, bridge, peers, vxlan-port";
const VNET_KEYS: &str = "zone, tag, alias, vlanaware, isolate-ports";
const SUBNET_KEYS: &str = "vnet, gateway, snat, dhcp-range, dhcp-dns-server";

fn unknown_key(key: &str, allowed: &str) -> SdnError {
    invalid(key, format!("unknown key (allowed: {allowed})"))
}

/// Refuses a key given more than once in one edit (`dhcp-range` excepted, a list): the
/// permission check goes by the first `zone` or `vnet`, so a second may not decide instead.
fn no_repeated_keys(options: &[(String, String)]) -> Result<(), SdnError> {
    let mut seen = BTreeSet::new();
    for (key, _) in options {
        if key != "dhcp-range" && !seen.insert(key.as_str()) {
            return Err(invalid(key.as_str(), "given more than once"));
        }
    }
    Ok(())
}

impl Vnet {
    fn set(&mut self, key: &str, v: &str) -> Result<(), SdnError> {
        match key {
            "zone" => {
                check_id(SdnKind::Zone, v).map_err(|_| invalid("zone", format!("invalid zone id '{v}'")))?;
                self.zone = v.to_owned();
            }
            "tag" => self.tag = Some(number(key, v, "a number")?),
            "alias" => {
                if v.len() > 256 || v.chars().any(char::is_control) {
                    return Err(invalid("alias", "at most 256 printable characters"));
                }
                self.alias = Some(v.to_owned());
            }
            "vlanaware" => self.vlanaware = flag(key, v)?,
            "isolate-ports" => self.isolate_ports = flag(key, v)?,
            _ => return Err(unknown_key(key, VNET_KEYS)),
        }
        Ok(())
    }

    fn clear(&mut self, key: &str) -> Result<(), SdnError> {
        match key {
            "tag" => self.tag = None,
            "alias" => self.alias = None,
            "vlanaware" => self.vlanaware = false,
            "isolate-ports" => self.isolate_ports = false,
            "zone" => return Err(invalid("zone", "a VNet needs a zone")),
            _ => return Err(unknown_key(key, VNET_KEYS)),
        }
        Ok(())
    }

    pub fn properties(&self) -> Properties {
        let mut out = vec![("zone", self.zone.clone())];
        if let Some(v) = self.tag {
            out.push(("tag", v.to_string()));
        }
        if let Some(v) = &self.alias {
            out.push(("alias", v.clone()));
        }
        if self.vlanaware {
            out.push(("vlanaware", "1".into()));
        }
        if self.isolate_ports {
            out.push(("isolate-ports", "1".into()));
        }
        out
    }
}

impl Subnet {
    fn set(&mut self, key: &str, v: &str, ranges: &mut Option<Vec<DhcpRange>>) -> Result<(), SdnError> {
        match key {
            "vnet" => {
                check_id(SdnKind::Vnet, v).map_err(|_| invalid("vnet", format!("invalid VNet id '{v}'")))?;
                self.vnet = v.to_owned();
            }
            "gateway" => self.gateway = Some(ipv4(key, v)?),
            "snat" => self.snat = flag(key, v)?,
            // Repeatable: the ranges given in one edit replace the old list together.
            "dhcp-range" => {
                ranges.get_or_insert_with(Vec::new).push(DhcpRange::parse(v).map_err(|e| invalid(key, e))?);
            }
            "dhcp-dns-server" => self.dhcp_dns_server = Some(ipv4(key, v)?),
            _ => return Err(unknown_key(key, SUBNET_KEYS)),
        }
        Ok(())
    }

    fn clear(&mut self, key: &str) -> Result<(), SdnError> {
        match key {
            "gateway" => self.gateway = None,
            "snat" => self.snat = false,
            "dhcp-range" => self.dhcp_range.clear(),
            "dhcp-dns-server" => self.dhcp_dns_server = None,
            "vnet" => return Err(invalid("vnet", "a subnet needs a VNet")),
            _ => return Err(unknown_key(key, SUBNET_KEYS)),
        }
        Ok(())
    }

    pub fn properties(&self) -> Properties {
        let mut out = vec![("vnet", self.vnet.clone())];
        if let Some(v) = self.gateway {
            out.push(("gateway", v.to_string()));
        }
        if self.snat {
            out.push(("snat", "1".into()));
        }
        for r in &self.dhcp_range {
            out.push(("dhcp-range", r.to_string()));
        }
        if let Some(v) = self.dhcp_dns_server {
            out.push(("dhcp-dns-server", v.to_string()));
        }
        out
    }
}

/// The id of a subnet: `<zone>-<net>-<prefixlen>`.
pub fn subnet_id(zone: &str, cidr: Cidr) -> String {
    format!("{zone}-{}-{}", cidr.addr, cidr.prefix)
}

/// The network a subnet id names, and its zone.
pub fn parse_subnet_id(id: &str) -> Result<(String, Cidr), SdnError> {
    let bad = || invalid("subnet", format!("invalid subnet id '{id}' (expected <zone>-<network>-<prefixlen>)"));
    let (rest, prefix) = id.rsplit_once('-').ok_or_else(bad)?;
    let (zone, net) = rest.rsplit_once('-').ok_or_else(bad)?;
    let cidr = Cidr::parse(&format!("{net}/{prefix}")).map_err(|e| invalid("subnet", e))?;
    Ok((zone.to_owned(), cidr))
}

impl SdnConfig {
    /// Parses a stored configuration and checks it.
    pub fn from_toml(text: &str) -> Result<SdnConfig, String> {
        let config: SdnConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate(&[]).map_err(|e| e.to_string())?;
        Ok(config)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("an SDN configuration always serializes")
    }

    /// The subnet id `name` stands for: an id, or a CIDR of an existing subnet.
    pub fn resolve_subnet(&self, name: &str) -> Result<String, SdnError> {
        if self.subnets.contains_key(name) {
            return Ok(name.to_owned());
        }
        if let Ok(cidr) = Cidr::parse(name) {
            let suffix = format!("-{}-{}", cidr.addr, cidr.prefix);
            if let Some(id) = self.subnets.keys().find(|id| id.ends_with(&suffix)) {
                return Ok(id.clone());
            }
        }
        Err(SdnError::NotFound { kind: SdnKind::Subnet, id: name.to_owned() })
    }

    /// Adds an object. A subnet is named by its CIDR (or full id); `vnet` must be among the
    /// options and decides the zone part of its id. Returns the id the object got.
    pub fn add(&mut self, kind: SdnKind, id: &str, options: &[(String, String)]) -> Result<String, SdnError> {
        no_repeated_keys(options)?;
        match kind {
            SdnKind::Zone => {
                check_id(kind, id)?;
                if self.zones.contains_key(id) {
                    return Err(SdnError::Exists { kind, id: id.to_owned() });
                }
                let ty = options
                    .iter()
                    .find(|(k, _)| k == "type")
                    .ok_or_else(|| invalid("type", format!("a zone needs a type ({})", ZoneType::NAMES)))?;
                let mut zone = Zone::new(ZoneType::parse(&ty.1)?);
                for (k, v) in options {
                    zone.set(k, v)?;
                }
                self.zones.insert(id.to_owned(), zone);
                Ok(id.to_owned())
            }
            SdnKind::Vnet => {
                check_id(kind, id)?;
                if self.vnets.contains_key(id) {
                    return Err(SdnError::Exists { kind, id: id.to_owned() });
                }
                let zone =
                    options.iter().find(|(k, _)| k == "zone").ok_or_else(|| invalid("zone", "a VNet needs a zone"))?;
                let mut vnet =
                    Vnet { zone: zone.1.clone(), tag: None, alias: None, vlanaware: false, isolate_ports: false };
                for (k, v) in options {
                    vnet.set(k, v)?;
                }
                self.vnets.insert(id.to_owned(), vnet);
                Ok(id.to_owned())
            }
            SdnKind::Subnet => {
                let cidr = match Cidr::parse(id) {
                    Ok(cidr) => cidr,
                    Err(_) => parse_subnet_id(id)?.1,
                };
                let vnet_id = options
                    .iter()
                    .find(|(k, _)| k == "vnet")
                    .ok_or_else(|| invalid("vnet", "a subnet needs a VNet"))?;
                let mut subnet = Subnet {
                    vnet: vnet_id.1.clone(),
                    gateway: None,
                    snat: false,
                    dhcp_range: Vec::new(),
                    dhcp_dns_server: None,
                };
                let mut ranges = None;
                for (k, v) in options {
                    subnet.set(k, v, &mut ranges)?;
                }
                subnet.dhcp_range = ranges.unwrap_or_default();
                let vnet = self
                    .vnets
                    .get(&subnet.vnet)
                    .ok_or_else(|| SdnError::NotFound { kind: SdnKind::Vnet, id: subnet.vnet.clone() })?;
                let full = subnet_id(&vnet.zone, cidr);
                if self.subnets.contains_key(&full) {
                    return Err(SdnError::Exists { kind, id: full });
                }
                self.subnets.insert(full.clone(), subnet);
                Ok(full)
            }
        }
    }

    /// Changes keys of an object and clears those in `delete`.
    pub fn set(
        &mut self,
        kind: SdnKind,
        id: &str,
        options: &[(String, String)],
        delete: &[String],
    ) -> Result<String, SdnError> {
        no_repeated_keys(options)?;
        let missing = || SdnError::NotFound { kind, id: id.to_owned() };
        match kind {
            SdnKind::Zone => {
                let zone = self.zones.get_mut(id).ok_or_else(missing)?;
                for key in delete {
                    zone.clear(key)?;
                }
                for (k, v) in options {
                    zone.set(k, v)?;
                }
                Ok(id.to_owned())
            }
            SdnKind::Vnet => {
                let vnet = self.vnets.get_mut(id).ok_or_else(missing)?;
                for key in delete {
                    vnet.clear(key)?;
                }
                for (k, v) in options {
                    if k == "zone" && *v != vnet.zone {
                        return Err(invalid("zone", "the zone of an existing VNet cannot change"));
                    }
                    vnet.set(k, v)?;
                }
                Ok(id.to_owned())
            }
            SdnKind::Subnet => {
                let full = self.resolve_subnet(id)?;
                let subnet = self.subnets.get_mut(&full).expect("resolved above");
                for key in delete {
                    subnet.clear(key)?;
                }
                let mut ranges = None;
                for (k, v) in options {
                    if k == "vnet" && *v != subnet.vnet {
                        return Err(invalid("vnet", "the VNet of an existing subnet cannot change"));
                    }
                    subnet.set(k, v, &mut ranges)?;
                }
                if let Some(ranges) = ranges {
                    subnet.dhcp_range = ranges;
                }
                Ok(full)
            }
        }
    }

    /// Removes an object that nothing uses any more: a zone without VNets, a VNet without
    /// subnets and guest NICs (`users`), any subnet.
    pub fn delete(&mut self, kind: SdnKind, id: &str, users: VnetUsers<'_>) -> Result<String, SdnError> {
        let missing = || SdnError::NotFound { kind, id: id.to_owned() };
        let in_use = |users: Vec<String>| SdnError::InUse { kind, id: id.to_owned(), users: users.join(", ") };
        match kind {
            SdnKind::Zone => {
                if !self.zones.contains_key(id) {
                    return Err(missing());
                }
                let vnets: Vec<String> =
                    self.vnets.iter().filter(|(_, v)| v.zone == id).map(|(n, _)| format!("vnet {n}")).collect();
                if !vnets.is_empty() {
                    return Err(in_use(vnets));
                }
                self.zones.remove(id);
                Ok(id.to_owned())
            }
            SdnKind::Vnet => {
                if !self.vnets.contains_key(id) {
                    return Err(missing());
                }
                let mut found: Vec<String> =
                    self.subnets.iter().filter(|(_, s)| s.vnet == id).map(|(n, _)| format!("subnet {n}")).collect();
                found.extend(users.iter().filter(|(v, _)| v == id).map(|(_, g)| g.clone()));
                if !found.is_empty() {
                    return Err(in_use(found));
                }
                self.vnets.remove(id);
                Ok(id.to_owned())
            }
            SdnKind::Subnet => {
                let full = self.resolve_subnet(id)?;
                self.subnets.remove(&full);
                Ok(full)
            }
        }
    }

    /// Checks the whole configuration. `host_ifaces` are interface names on this host that SDN
    /// did not create: a VNet may not take one of their names.
    pub fn validate(&self, host_ifaces: &[String]) -> Result<(), SdnError> {
        for (id, zone) in &self.zones {
            check_id(SdnKind::Zone, id)?;
            let key = |k: &str| format!("zone {id}: {k}");
            match zone.kind {
                ZoneType::Simple => {
                    if zone.bridge.is_some() || !zone.peers.is_empty() || zone.vxlan_port.is_some() {
                        return Err(invalid(key("type"), "a simple zone takes no bridge, peers or vxlan-port"));
                    }
                }
                ZoneType::Vlan => {
                    if zone.bridge.is_none() {
                        return Err(invalid(key("bridge"), "a vlan zone needs the VLAN-aware bridge to tag on"));
                    }
                    if !zone.peers.is_empty() || zone.vxlan_port.is_some() {
                        return Err(invalid(key("type"), "a vlan zone takes no peers or vxlan-port"));
                    }
                }
                ZoneType::Vxlan => {
                    if zone.peers.is_empty() {
                        return Err(invalid(key("peers"), "a vxlan zone needs the list of its nodes' addresses"));
                    }
                    if zone.bridge.is_some() {
                        return Err(invalid(key("bridge"), "a vxlan zone takes no bridge"));
                    }
                }
            }
            if zone.dhcp.is_some() && zone.kind != ZoneType::Simple {
                return Err(invalid(key("dhcp"), "automatic DHCP is available in simple zones only"));
            }
        }
        let mut tags: BTreeMap<(&str, u32), &str> = BTreeMap::new();
        let host: BTreeSet<&str> = host_ifaces.iter().map(String::as_str).collect();
        for (id, vnet) in &self.vnets {
            check_id(SdnKind::Vnet, id)?;
            let key = |k: &str| format!("vnet {id}: {k}");
            let zone = self
                .zones
                .get(&vnet.zone)
                .ok_or_else(|| invalid(key("zone"), format!("zone '{}' does not exist", vnet.zone)))?;
            if host.contains(id.as_str()) {
                return Err(invalid(key("id"), format!("'{id}' is already an interface of this host")));
            }
            match (zone.kind, vnet.tag) {
                (ZoneType::Simple, Some(_)) => {
                    return Err(invalid(key("tag"), "VNets of a simple zone take no tag"));
                }
                (ZoneType::Vlan, Some(tag)) if !(1..=4094).contains(&tag) => {
                    return Err(invalid(key("tag"), format!("VLAN {tag} is outside 1..4094")));
                }
                (ZoneType::Vxlan, Some(tag)) if !(1..=16_777_215).contains(&tag) => {
                    return Err(invalid(key("tag"), format!("VXLAN id {tag} is outside 1..16777215")));
                }
                (ZoneType::Vlan | ZoneType::Vxlan, None) => {
                    return Err(invalid(key("tag"), format!("VNets of a {} zone need a tag", zone.kind.name())));
                }
                (_, Some(tag)) => {
                    if let (ZoneType::Vlan, Some(bridge)) = (zone.kind, &zone.bridge) {
                        let port = format!("{bridge}.{tag}");
                        if port.len() > 15 {
                            return Err(invalid(
                                key("tag"),
                                format!(
                                    "the VLAN port {port} would be longer than 15 bytes (use a shorter zone bridge)"
                                ),
                            ));
                        }
                    }
                    if let Some(other) = tags.insert((vnet.zone.as_str(), tag), id) {
                        return Err(invalid(
                            key("tag"),
                            format!("tag {tag} is already used by vnet {other} in zone {}", vnet.zone),
                        ));
                    }
                }
                (ZoneType::Simple, None) => {}
            }
        }
        let mut nets: Vec<(&str, Cidr)> = Vec::new();
        for (id, subnet) in &self.subnets {
            let (zone, cidr) = parse_subnet_id(id)?;
            let key = |k: &str| format!("subnet {id}: {k}");
            let vnet = self
                .vnets
                .get(&subnet.vnet)
                .ok_or_else(|| invalid(key("vnet"), format!("vnet '{}' does not exist", subnet.vnet)))?;
            if vnet.zone != zone {
                return Err(invalid(key("vnet"), format!("vnet {} is in zone {}, not {zone}", subnet.vnet, vnet.zone)));
            }
            if let Some(gw) = subnet.gateway
                && !cidr.is_host(gw)
            {
                return Err(invalid(key("gateway"), format!("{gw} is not a host address of {cidr}")));
            }
            for range in &subnet.dhcp_range {
                if !cidr.is_host(range.start) || !cidr.is_host(range.end) {
                    return Err(invalid(key("dhcp-range"), format!("{range} is not inside {cidr}")));
                }
                if subnet.gateway.is_some_and(|gw| range.contains(gw)) {
                    return Err(invalid(key("dhcp-range"), format!("{range} contains the gateway")));
                }
            }
            if !subnet.dhcp_range.is_empty() && subnet.gateway.is_none() {
                return Err(invalid(key("gateway"), "DHCP ranges need a gateway"));
            }
            if subnet.snat && subnet.gateway.is_none() {
                return Err(invalid(key("snat"), "SNAT needs a gateway"));
            }
            if let Some((other, _)) = nets.iter().find(|(_, c)| c.overlaps(cidr)) {
                return Err(invalid(key("cidr"), format!("{cidr} overlaps subnet {other}")));
            }
            nets.push((id, cidr));
        }
        Ok(())
    }

    /// The subnets of a VNet with their networks.
    pub fn subnets_of<'a>(&'a self, vnet: &'a str) -> impl Iterator<Item = (&'a str, Cidr, &'a Subnet)> + 'a {
        self.subnets
            .iter()
            .filter(move |(_, s)| s.vnet == vnet)
            .filter_map(|(id, s)| parse_subnet_id(id).ok().map(|(_, cidr)| (id.as_str(), cidr, s)))
    }

    /// Every object as `(kind, id, properties)`, for listings and diffs.
    pub fn objects(&self) -> Vec<(SdnKind, String, Properties)> {
        let mut out = Vec::new();
        out.extend(self.zones.iter().map(|(id, z)| (SdnKind::Zone, id.clone(), z.properties())));
        out.extend(self.vnets.iter().map(|(id, v)| (SdnKind::Vnet, id.clone(), v.properties())));
        out.extend(self.subnets.iter().map(|(id, s)| (SdnKind::Subnet, id.clone(), s.properties())));
        out
    }

    /// The zone an object belongs to (itself for a zone), for its ACL path.
    pub fn zone_of(&self, kind: SdnKind, id: &str) -> Option<String> {
        match kind {
            SdnKind::Zone => Some(id.to_owned()),
            SdnKind::Vnet => self.vnets.get(id).map(|v| v.zone.clone()),
            SdnKind::Subnet => self.subnets.get(id).and_then(|s| self.vnets.get(&s.vnet)).map(|v| v.zone.clone()),
        }
    }
}

/// One difference between the running and the pending configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SdnChange {
    pub kind: SdnKind,
    pub id: String,
    /// `new`, `deleted` or `changed`.
    pub state: String,
    /// `key=value` lines of the running object, if any.
    pub running: Vec<String>,
    /// `key=value` lines of the pending object, if any.
    pub pending: Vec<String>,
}

/// What applying `pending` over `running` would change, object by object.
pub fn diff(running: &SdnConfig, pending: &SdnConfig) -> Vec<SdnChange> {
    let lines = |props: Properties| props.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    let old: BTreeMap<(SdnKind, String), Vec<String>> =
        running.objects().into_iter().map(|(k, id, p)| ((k, id), lines(p))).collect();
    let new: BTreeMap<(SdnKind, String), Vec<String>> =
        pending.objects().into_iter().map(|(k, id, p)| ((k, id), lines(p))).collect();
    let keys: BTreeSet<&(SdnKind, String)> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let (r, p) = (old.get(key), new.get(key));
            let state = match (r, p) {
                (None, Some(_)) => "new",
                (Some(_), None) => "deleted",
                (Some(a), Some(b)) if a != b => "changed",
                _ => return None,
            };
            Some(SdnChange {
                kind: key.0,
                id: key.1.clone(),
                state: state.to_owned(),
                running: r.cloned().unwrap_or_default(),
                pending: p.cloned().unwrap_or_default(),
            })
        })
        .collect()
}

/// What this node knows about its underlay when it plans VXLAN tunnels.
#[derive(Clone, Debug, Default)]
pub struct Underlay {
    /// The node's IPv4 addresses with the MTU of the interface holding each.
    pub addresses: Vec<(Ipv4Addr, u32)>,
}

/// A VXLAN port of a VNet bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VxlanPort {
    /// `vxlan_<vnet>`.
    pub name: String,
    pub vni: u32,
    pub local: Ipv4Addr,
    pub remotes: Vec<Ipv4Addr>,
    pub port: u16,
    pub mtu: u32,
}

/// A VLAN port of a VNet bridge: `<bridge>.<tag>` on a VLAN-aware bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VlanPort {
    pub name: String,
    pub bridge: String,
    pub tag: u32,
}

/// The bridge of one VNet on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VnetBridge {
    pub name: String,
    pub zone: String,
    pub mtu: Option<u32>,
    /// Gateway addresses with the subnet's prefix length.
    pub addresses: Vec<(Ipv4Addr, u8)>,
    pub vxlan: Option<VxlanPort>,
    pub vlan: Option<VlanPort>,
    pub vlanaware: bool,
    pub isolate_ports: bool,
}

/// One SNAT rule: traffic from `cidr` leaving through anything but its VNet bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnatRule {
    pub cidr: Cidr,
    pub bridge: String,
}

/// One DHCP range served on a VNet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhcpServe {
    pub vnet: String,
    pub subnet: String,
    pub cidr: Cidr,
    pub range: DhcpRange,
    pub gateway: Ipv4Addr,
    pub dns: Option<Ipv4Addr>,
}

/// The dnsmasq instance of one zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhcpZone {
    pub zone: String,
    pub vnets: Vec<String>,
    pub ranges: Vec<DhcpServe>,
}

/// Everything one node builds for a configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodePlan {
    pub bridges: Vec<VnetBridge>,
    pub snat: Vec<SnatRule>,
    /// IPv4 forwarding is needed (a subnet has a gateway).
    pub forward: bool,
    pub dhcp: Vec<DhcpZone>,
}

/// What `node` must build for `config`.
pub fn node_plan(config: &SdnConfig, node: &str, underlay: &Underlay) -> Result<NodePlan, SdnError> {
    let mut plan = NodePlan::default();
    for (zone_id, zone) in config.zones.iter().filter(|(_, z)| z.on_node(node)) {
        let mut dhcp = DhcpZone { zone: zone_id.clone(), vnets: Vec::new(), ranges: Vec::new() };
        for (vnet_id, vnet) in config.vnets.iter().filter(|(_, v)| v.zone == *zone_id) {
            let mut bridge = VnetBridge {
                name: vnet_id.clone(),
                zone: zone_id.clone(),
                mtu: zone.mtu,
                addresses: Vec::new(),
                vxlan: None,
                vlan: None,
                vlanaware: vnet.vlanaware,
                isolate_ports: vnet.isolate_ports,
            };
            match zone.kind {
                ZoneType::Simple => {
                    for (sid, cidr, subnet) in config.subnets_of(vnet_id) {
                        let Some(gw) = subnet.gateway else { continue };
                        bridge.addresses.push((gw, cidr.prefix));
                        plan.forward = true;
                        if subnet.snat {
                            plan.snat.push(SnatRule { cidr, bridge: vnet_id.clone() });
                        }
                        if zone.dhcp.is_some() {
                            for range in &subnet.dhcp_range {
                                dhcp.ranges.push(DhcpServe {
                                    vnet: vnet_id.clone(),
                                    subnet: sid.to_owned(),
                                    cidr,
                                    range: *range,
                                    gateway: gw,
                                    dns: subnet.dhcp_dns_server,
                                });
                            }
                        }
                    }
                    if dhcp.ranges.iter().any(|r| r.vnet == *vnet_id) {
                        dhcp.vnets.push(vnet_id.clone());
                    }
                }
                ZoneType::Vlan => {
                    let parent = zone.bridge.clone().expect("validated: vlan zones have a bridge");
                    let tag = vnet.tag.expect("validated: vlan VNets have a tag");
                    bridge.vlan = Some(VlanPort { name: format!("{parent}.{tag}"), bridge: parent, tag });
                }
                ZoneType::Vxlan => {
                    let local = underlay.addresses.iter().find(|(a, _)| zone.peers.contains(a)).ok_or_else(|| {
                        invalid(
                            format!("zone {zone_id}: peers"),
                            format!("none of the peers is an address of node {node}"),
                        )
                    })?;
                    let mtu = zone.mtu.unwrap_or(local.1.saturating_sub(VXLAN_OVERHEAD));
                    bridge.mtu = Some(mtu);
                    bridge.vxlan = Some(VxlanPort {
                        name: format!("vxlan_{vnet_id}"),
                        vni: vnet.tag.expect("validated: vxlan VNets have a tag"),
                        local: local.0,
                        remotes: zone.peers.iter().copied().filter(|p| *p != local.0).collect(),
                        port: zone.vxlan_port.unwrap_or(VXLAN_PORT),
                        mtu,
                    });
                }
            }
            plan.bridges.push(bridge);
        }
        if !dhcp.ranges.is_empty() {
            plan.dhcp.push(dhcp);
        }
    }
    Ok(plan)
}
