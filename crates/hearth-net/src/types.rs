//! The typed view of links, addresses and routes, and the Proxmox/ifupdown2 names of their
//! settings.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::NetError;

/// A kernel interface name: 1..=15 bytes, no `/`, `:`, whitespace or NUL, not `.`/`..`, not
/// starting with `-`.
pub fn check_ifname(name: &str) -> Result<(), NetError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name.starts_with('-')
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
    if ok {
        Ok(())
    } else {
        Err(NetError::Invalid { what: "interface name (1 to 15 bytes, no '/', ':' or spaces)", value: name.to_owned() })
    }
}

/// An Ethernet MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for MacAddr {
    type Err = NetError;
    fn from_str(s: &str) -> Result<MacAddr, NetError> {
        let bad = || NetError::Invalid { what: "MAC address (xx:xx:xx:xx:xx:xx)", value: s.to_owned() };
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for octet in &mut out {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

/// An address with its prefix length (`10.0.0.1/24`, `fd00::1/64`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpCidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpCidr {
    /// Whether `ip` is inside this address's subnet.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(g)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) };
                u32::from(a) & mask == u32::from(g) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(g)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.prefix)) };
                u128::from(a) & mask == u128::from(g) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for IpCidr {
    type Err = NetError;
    fn from_str(s: &str) -> Result<IpCidr, NetError> {
        let bad = || NetError::Invalid { what: "address in CIDR form (ADDRESS/PREFIX)", value: s.to_owned() };
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > if addr.is_ipv6() { 128 } else { 32 } {
            return Err(bad());
        }
        Ok(IpCidr { addr, prefix })
    }
}

/// A VLAN id range `start..=end` (1..=4094); a single VLAN has `start == end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VlanRange {
    pub start: u16,
    pub end: u16,
}

impl VlanRange {
    /// A checked range.
    pub fn new(start: u16, end: u16) -> Result<VlanRange, NetError> {
        if !(1..=4094).contains(&start) || !(1..=4094).contains(&end) || start > end {
            return Err(NetError::Invalid { what: "VLAN id or range (1 to 4094)", value: format!("{start}-{end}") });
        }
        Ok(VlanRange { start, end })
    }

    /// One VLAN.
    pub fn single(vid: u16) -> Result<VlanRange, NetError> {
        VlanRange::new(vid, vid)
    }
}

impl fmt::Display for VlanRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end { write!(f, "{}", self.start) } else { write!(f, "{}-{}", self.start, self.end) }
    }
}

impl FromStr for VlanRange {
    type Err = NetError;
    fn from_str(s: &str) -> Result<VlanRange, NetError> {
        let bad = || NetError::Invalid { what: "VLAN id or range (1 to 4094)", value: s.to_owned() };
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        VlanRange::new(a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?).map_err(|_| bad())
    }
}

/// Proxmox's `trunks=` list: VLAN ids and ranges separated by `;` (`10;20-30`).
pub fn parse_trunks(text: &str) -> Result<Vec<VlanRange>, NetError> {
    text.split(';').filter(|s| !s.trim().is_empty()).map(str::parse).collect()
}

/// The VLAN protocol of a VLAN interface (`vlan-protocol` in ifupdown2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum VlanProtocol {
    #[default]
    Dot1Q,
    Dot1Ad,
}

impl VlanProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            VlanProtocol::Dot1Q => "802.1q",
            VlanProtocol::Dot1Ad => "802.1ad",
        }
    }
}

impl FromStr for VlanProtocol {
    type Err = NetError;
    fn from_str(s: &str) -> Result<VlanProtocol, NetError> {
        match s.to_ascii_lowercase().as_str() {
            "802.1q" => Ok(VlanProtocol::Dot1Q),
            "802.1ad" => Ok(VlanProtocol::Dot1Ad),
            _ => Err(NetError::Invalid { what: "VLAN protocol (802.1q or 802.1ad)", value: s.to_owned() }),
        }
    }
}

/// A bond mode by its ifupdown2/Proxmox name (`bond-mode`); the numbers 0–6 are accepted too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BondMode {
    BalanceRr,
    ActiveBackup,
    BalanceXor,
    Broadcast,
    Lacp,
    BalanceTlb,
    BalanceAlb,
}

impl BondMode {
    pub const ALL: [BondMode; 7] = [
        BondMode::BalanceRr,
        BondMode::ActiveBackup,
        BondMode::BalanceXor,
        BondMode::Broadcast,
        BondMode::Lacp,
        BondMode::BalanceTlb,
        BondMode::BalanceAlb,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BondMode::BalanceRr => "balance-rr",
            BondMode::ActiveBackup => "active-backup",
            BondMode::BalanceXor => "balance-xor",
            BondMode::Broadcast => "broadcast",
            BondMode::Lacp => "802.3ad",
            BondMode::BalanceTlb => "balance-tlb",
            BondMode::BalanceAlb => "balance-alb",
        }
    }

    pub(crate) fn number(self) -> u8 {
        BondMode::ALL.iter().position(|m| *m == self).unwrap_or(0) as u8
    }
}

impl fmt::Display for BondMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BondMode {
    type Err = NetError;
    fn from_str(s: &str) -> Result<BondMode, NetError> {
        BondMode::ALL
            .into_iter()
            .enumerate()
            .find(|(n, m)| m.as_str() == s || n.to_string() == s)
            .map(|(_, m)| m)
            .ok_or_else(|| NetError::Invalid {
                what: "bond mode (balance-rr, active-backup, balance-xor, broadcast, 802.3ad, balance-tlb, balance-alb)",
                value: s.to_owned(),
            })
    }
}

/// `bond-xmit-hash-policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XmitHashPolicy {
    Layer2,
    Layer2Plus3,
    Layer3Plus4,
    Encap2Plus3,
    Encap3Plus4,
    VlanSrcMac,
}

impl XmitHashPolicy {
    pub const ALL: [XmitHashPolicy; 6] = [
        XmitHashPolicy::Layer2,
        XmitHashPolicy::Layer2Plus3,
        XmitHashPolicy::Layer3Plus4,
        XmitHashPolicy::Encap2Plus3,
        XmitHashPolicy::Encap3Plus4,
        XmitHashPolicy::VlanSrcMac,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            XmitHashPolicy::Layer2 => "layer2",
            XmitHashPolicy::Layer2Plus3 => "layer2+3",
            XmitHashPolicy::Layer3Plus4 => "layer3+4",
            XmitHashPolicy::Encap2Plus3 => "encap2+3",
            XmitHashPolicy::Encap3Plus4 => "encap3+4",
            XmitHashPolicy::VlanSrcMac => "vlan+srcmac",
        }
    }
}

impl FromStr for XmitHashPolicy {
    type Err = NetError;
    fn from_str(s: &str) -> Result<XmitHashPolicy, NetError> {
        XmitHashPolicy::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| NetError::Invalid {
            what: "bond xmit hash policy (layer2, layer2+3, layer3+4, encap2+3, encap3+4, vlan+srcmac)",
            value: s.to_owned(),
        })
    }
}

/// What kind of interface a link is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LinkKind {
    Bridge,
    Bond,
    Vlan,
    Vxlan,
    Veth,
    Tun,
    /// Physical NICs and loopback (no `IFLA_INFO_KIND`).
    Device,
    /// Any other kind, by the kernel's name.
    Other(String),
}

/// Bridge settings (`bridge-vlan-aware`, `bridge-stp`, `bridge-fd`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BridgeInfo {
    pub vlan_filtering: bool,
    pub stp: bool,
    /// Forward delay in seconds.
    pub forward_delay: u32,
    /// The VLAN new ports get as untagged PVID (1 unless changed); `None` without VLAN support.
    pub default_pvid: Option<u16>,
}

/// A VLAN interface's id, raw device and protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VlanInfo {
    pub id: u16,
    pub raw_device: Option<String>,
    pub protocol: VlanProtocol,
}

/// A bond's mode and slaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BondInfo {
    pub mode: Option<BondMode>,
    pub slaves: Vec<String>,
    pub miimon: Option<u32>,
    pub xmit_hash_policy: Option<XmitHashPolicy>,
    pub primary: Option<String>,
}

/// A VXLAN's VNI, local address, UDP port and underlay device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VxlanInfo {
    pub vni: u32,
    pub local: Option<IpAddr>,
    pub port: u16,
    pub dev: Option<String>,
    pub learning: bool,
}

/// The port flags of a link that is a bridge port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgePortInfo {
    pub learning: bool,
    pub unicast_flood: bool,
    pub isolated: bool,
}

/// One link as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub kind: LinkKind,
    /// The bridge or bond this link is a port of.
    pub master: Option<String>,
    pub mtu: u32,
    pub mac: Option<MacAddr>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// The operational state is up (carrier and all).
    pub running: bool,
    pub bridge: Option<BridgeInfo>,
    pub vlan: Option<VlanInfo>,
    pub bond: Option<BondInfo>,
    pub vxlan: Option<VxlanInfo>,
    /// Set when the link is a bridge port.
    pub port: Option<BridgePortInfo>,
}

/// An address on a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub ifname: String,
    pub cidr: IpCidr,
}

/// A route of the main table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// `None` for a default route.
    pub destination: Option<IpCidr>,
    pub gateway: Option<IpAddr>,
    pub dev: Option<String>,
    /// Scope link: reachable directly on `dev`.
    pub on_link: bool,
}

impl Route {
    pub fn is_default(&self) -> bool {
        self.destination.is_none()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values() {
        for good in ["eth0", "veth100i0", "vmbr0.100", "a", "abcdefghijklmno"] {
            check_ifname(good).unwrap();
        }
        for bad in ["", "abcdefghijklmnop", "a/b", "a b", "..", "-x", "a:1"] {
            assert!(check_ifname(bad).is_err(), "{bad}");
        }
        assert_eq!("BC:24:11:00:00:01".parse::<MacAddr>().unwrap().to_string(), "bc:24:11:00:00:01");
        assert!("bc:24:11:00:00".parse::<MacAddr>().is_err());
        assert!("bc:24:11:00:00:01:02".parse::<MacAddr>().is_err());
        let cidr: IpCidr = "10.0.0.1/24".parse().unwrap();
        assert!(cidr.contains("10.0.0.254".parse().unwrap()));
        assert!(!cidr.contains("10.0.1.1".parse().unwrap()));
        assert!("10.0.0.1/33".parse::<IpCidr>().is_err());
        assert!("fd00::1/64".parse::<IpCidr>().is_ok());
        assert_eq!(
            parse_trunks("10;20-30").unwrap(),
            vec![VlanRange { start: 10, end: 10 }, VlanRange { start: 20, end: 30 }]
        );
        assert!(parse_trunks("0").is_err());
        assert!(parse_trunks("4095").is_err());
        assert!(parse_trunks("30-20").is_err());
        assert_eq!("802.3ad".parse::<BondMode>().unwrap(), BondMode::Lacp);
        assert_eq!("1".parse::<BondMode>().unwrap(), BondMode::ActiveBackup);
        assert_eq!(BondMode::BalanceAlb.number(), 6);
        assert!("fast".parse::<BondMode>().is_err());
        assert_eq!("layer3+4".parse::<XmitHashPolicy>().unwrap(), XmitHashPolicy::Layer3Plus4);
        assert_eq!("802.1ad".parse::<VlanProtocol>().unwrap(), VlanProtocol::Dot1Ad);
    }
}
