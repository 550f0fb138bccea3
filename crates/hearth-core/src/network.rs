//! The node's network configuration: bridges, bonds, VLAN interfaces and NICs, as Proxmox's
//! network panel and `/etc/network/interfaces` (ifupdown2) describe them. hearthd keeps the
//! running copy in `etc/hearth/network.toml` and pending edits in `network.new.toml` (Proxmox's
//! `interfaces.new`); this module validates, parses and prints them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What kind of interface a stanza describes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IfaceType {
    /// A physical NIC (or any existing link that the configuration only addresses).
    #[default]
    Eth,
    Bridge,
    Bond,
    Vlan,
    /// `lo`: kept as read, never changed.
    Loopback,
    /// A kind Hearth does not manage (OVS, vxlan, …): kept as read.
    Unknown,
}

impl IfaceType {
    pub fn as_str(self) -> &'static str {
        match self {
            IfaceType::Eth => "eth",
            IfaceType::Bridge => "bridge",
            IfaceType::Bond => "bond",
            IfaceType::Vlan => "vlan",
            IfaceType::Loopback => "loopback",
            IfaceType::Unknown => "unknown",
        }
    }

    /// The types `netctl create --type` accepts.
    pub const CREATABLE: &'static [&'static str] = &["bridge", "bond", "vlan", "eth"];

    pub fn parse(text: &str) -> Option<IfaceType> {
        Some(match text {
            "eth" => IfaceType::Eth,
            "bridge" => IfaceType::Bridge,
            "bond" => IfaceType::Bond,
            "vlan" => IfaceType::Vlan,
            "loopback" => IfaceType::Loopback,
            "unknown" => IfaceType::Unknown,
            _ => return None,
        })
    }
}

/// The bonding modes of ifupdown2 (and the Linux bonding driver).
pub const BOND_MODES: &[&str] =
    &["balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb", "balance-alb"];

/// Transmit hash policies a bond accepts.
pub const BOND_XMIT_HASH_POLICIES: &[&str] = &["layer2", "layer2+3", "layer3+4"];

/// One interface of the node's configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Iface {
    pub iface: String,
    #[serde(rename = "type")]
    pub kind: IfaceType,
    /// `auto IFACE`: brought up at boot and by apply.
    #[serde(default)]
    pub autostart: bool,
    /// IPv4 method: `static`, `manual`, `dhcp` (`loopback` for lo); derived from `cidr` unless
    /// read as `dhcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method6: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr6: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bridge_ports: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bridge_vlan_aware: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge_vids: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge_stp: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge_fd: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slaves: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bond_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bond_miimon: Option<u32>,
    #[serde(default, rename = "bond-primary", skip_serializing_if = "Option::is_none")]
    pub bond_primary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bond_xmit_hash_policy: Option<String>,
    #[serde(default, rename = "vlan-raw-device", skip_serializing_if = "Option::is_none")]
    pub vlan_raw_device: Option<String>,
    #[serde(default, rename = "vlan-id", skip_serializing_if = "Option::is_none")]
    pub vlan_id: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comments: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comments6: Option<String>,
    /// Lines of the `inet` stanza Hearth does not interpret (`post-up …`), kept verbatim.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// The same for the `inet6` stanza.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options6: Vec<String>,
    /// Position in the imported file; orders unknown kinds and ties on export.
    #[serde(default)]
    pub priority: u32,
}

/// The whole configuration: interfaces by name, and the top-level lines (`source …`) that are
/// kept at their position.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top: Vec<TopLine>,
    #[serde(default, rename = "iface")]
    pub ifaces: BTreeMap<String, Iface>,
}

/// A top-level line that is not a stanza (`source /etc/network/interfaces.d/*`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopLine {
    pub priority: u32,
    pub line: String,
}

/// How one interface differs between the running kernel (or running config) and the staged
/// configuration, as `netctl pending` lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IfaceChange {
    pub iface: String,
    /// `create`, `delete` or `change`.
    pub action: String,
    /// Keys that differ: key, current value (absent: unset), staged value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<KeyChange>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyChange {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged: Option<String>,
}

/// A configuration error: names the key (or interface) and what is allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NetError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, NetError> {
    Err(NetError(message.into()))
}

/// An address with its prefix length, as `cidr` and `cidr6` hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = text.split_once('/')?;
        let addr: std::net::IpAddr = addr.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    fn bits(addr: std::net::IpAddr) -> (u128, u8) {
        match addr {
            std::net::IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
            std::net::IpAddr::V6(a) => (u128::from(a), 128),
        }
    }

    fn mask(prefix: u8, width: u8) -> u128 {
        if prefix == 0 {
            0
        } else {
            let all = if width == 128 { u128::MAX } else { (1u128 << width) - 1 };
            all & !((1u128 << (width - prefix)) - 1)
        }
    }

    /// Whether `addr` lies in this address's subnet.
    pub fn contains(&self, addr: std::net::IpAddr) -> bool {
        let (net, width) = Cidr::bits(self.addr);
        let (other, other_width) = Cidr::bits(addr);
        width == other_width && (net & Cidr::mask(self.prefix, width)) == (other & Cidr::mask(self.prefix, width))
    }

    /// Whether the two subnets share an address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        let (a, wa) = Cidr::bits(self.addr);
        let (b, wb) = Cidr::bits(other.addr);
        if wa != wb {
            return false;
        }
        let mask = Cidr::mask(self.prefix.min(other.prefix), wa);
        (a & mask) == (b & mask)
    }
}

/// Splits a list of interface names given with spaces or commas.
pub fn split_list(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|s| !s.is_empty() && *s != "none")
        .map(str::to_owned)
        .collect()
}

/// Checks `bridge_vids`: `2 4 100-200`, each id in 1–4094.
pub fn check_vids(text: &str) -> Result<(), NetError> {
    let bad =
        || NetError(format!("bridge_vids: '{text}' is not a list of VLAN ids or ranges in 1-4094 ('2 4 100-200')"));
    let items: Vec<&str> =
        text.split(|c: char| c == ',' || c == ';' || c.is_whitespace()).filter(|s| !s.is_empty()).collect();
    if items.is_empty() {
        return Err(bad());
    }
    for item in items {
        let (lo, hi) = item.split_once('-').unwrap_or((item, item));
        let lo: u16 = lo.parse().map_err(|_| bad())?;
        let hi: u16 = hi.parse().map_err(|_| bad())?;
        if !(1..=4094).contains(&lo) || !(1..=4094).contains(&hi) || lo > hi {
            return Err(bad());
        }
    }
    Ok(())
}

/// Checks an interface name for its type: at most 15 bytes of letters, digits, `-_.`;
/// bridges `vmbrN` (N up to 4094) or a letter and up to 9 more letters or digits.
pub fn check_name(name: &str, kind: IfaceType) -> Result<(), NetError> {
    if name.is_empty() || name.len() > 15 {
        return err(format!("iface: '{name}' must be 1 to 15 bytes long"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        || !name.as_bytes()[0].is_ascii_alphanumeric()
    {
        return err(format!(
            "iface: '{name}' may hold only letters, digits, '-', '_' and '.', starting with a letter or digit"
        ));
    }
    if kind == IfaceType::Bridge {
        let vmbr = name.strip_prefix("vmbr").and_then(|n| n.parse::<u16>().ok()).is_some_and(|n| n <= 4094);
        let plain = name.len() <= 10
            && name.as_bytes()[0].is_ascii_alphabetic()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !vmbr && !plain {
            return err(format!(
                "iface: '{name}' is not a bridge name; use vmbrN (N 0-4094) or a letter followed by up to 9 letters, digits or '_'"
            ));
        }
    }
    if kind == IfaceType::Bond && !(name.starts_with("bond") && name[4..].parse::<u32>().is_ok()) {
        return err(format!("iface: '{name}' is not a bond name; use bondN"));
    }
    Ok(())
}

/// The raw device and VLAN id of a VLAN interface: its keys, or `PARENT.VID` in its name.
pub fn vlan_parts(iface: &Iface) -> Option<(String, u16)> {
    if let (Some(dev), Some(id)) = (&iface.vlan_raw_device, iface.vlan_id) {
        return Some((dev.clone(), id));
    }
    let (dev, id) = iface.iface.rsplit_once('.')?;
    let id: u16 = id.parse().ok()?;
    Some((iface.vlan_raw_device.clone().unwrap_or_else(|| dev.to_owned()), iface.vlan_id.unwrap_or(id)))
}

/// The keys `netctl create` and `set` take, and the types each belongs to (empty: every type).
pub const KEYS: &[(&str, &[IfaceType])] = &[
    ("autostart", &[]),
    ("cidr", &[]),
    ("gateway", &[]),
    ("cidr6", &[]),
    ("gateway6", &[]),
    ("mtu", &[]),
    ("comments", &[]),
    ("comments6", &[]),
    ("bridge_ports", &[IfaceType::Bridge]),
    ("bridge_vlan_aware", &[IfaceType::Bridge]),
    ("bridge_vids", &[IfaceType::Bridge]),
    ("bridge_stp", &[IfaceType::Bridge]),
    ("bridge_fd", &[IfaceType::Bridge]),
    ("slaves", &[IfaceType::Bond]),
    ("bond_mode", &[IfaceType::Bond]),
    ("bond_miimon", &[IfaceType::Bond]),
    ("bond-primary", &[IfaceType::Bond]),
    ("bond_xmit_hash_policy", &[IfaceType::Bond]),
    ("vlan-raw-device", &[IfaceType::Vlan]),
    ("vlan-id", &[IfaceType::Vlan]),
];

fn normalize_key(key: &str) -> String {
    match key {
        "bond_primary" => "bond-primary".into(),
        "vlan_raw_device" => "vlan-raw-device".into(),
        "vlan_id" => "vlan-id".into(),
        "bridge-ports"
        | "bridge-vlan-aware"
        | "bridge-vids"
        | "bridge-stp"
        | "bridge-fd"
        | "bond-mode"
        | "bond-miimon"
        | "bond-xmit-hash-policy"
        | "bond-slaves"
        | "bond_slaves" => {
            let k = key.replace('-', "_");
            if k == "bond_slaves" { "slaves".into() } else { k }
        }
        other => other.to_owned(),
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, NetError> {
    match value {
        "1" | "yes" | "on" | "true" => Ok(true),
        "0" | "no" | "off" | "false" => Ok(false),
        _ => err(format!("{key}: '{value}' is not a boolean; use 0 or 1")),
    }
}

fn parse_num<T: std::str::FromStr>(key: &str, value: &str, what: &str) -> Result<T, NetError> {
    value.parse().map_err(|_| NetError(format!("{key}: '{value}' is not {what}")))
}

/// Checks a value that names another interface (a port, a slave, a raw device): the characters
/// of [`check_name`], so that it cannot carry a line or a comment into the exported file.
fn check_ref(key: &str, name: &str) -> Result<(), NetError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        err(format!("{key}: '{name}' is not an interface name (1 to 15 letters, digits, '-', '_' or '.')"))
    }
}

/// Checks a comment: lines of text, no other control characters (a carriage return would end
/// the `#` line for readers that take it as a line break).
fn check_comment(key: &str, text: &str) -> Result<(), NetError> {
    if text.chars().any(|c| (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{2028}' | '\u{2029}')) {
        return err(format!("{key}: control characters other than newline and tab are not allowed"));
    }
    Ok(())
}

fn opt(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

impl Iface {
    pub fn new(name: &str, kind: IfaceType) -> Iface {
        Iface { iface: name.to_owned(), kind, ..Iface::default() }
    }

    /// Sets keys given as `key=value` pairs and removes the keys in `delete`; every key and
    /// value is checked on its own (the whole configuration is checked by [`validate`]).
    pub fn apply_options(&mut self, options: &[(String, String)], delete: &[String]) -> Result<(), NetError> {
        let known = || KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ");
        let check = |key: &str, this: &Iface| -> Result<(), NetError> {
            let Some((_, kinds)) = KEYS.iter().find(|(k, _)| *k == key) else {
                return err(format!("{key}: unknown key; known keys are {}", known()));
            };
            if !kinds.is_empty() && !kinds.contains(&this.kind) {
                let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
                return err(format!(
                    "{key}: only for interfaces of type {}, not {} ({})",
                    names.join("|"),
                    this.kind.as_str(),
                    this.iface
                ));
            }
            Ok(())
        };
        for key in delete {
            let key = normalize_key(key);
            check(&key, self)?;
            self.set_key(&key, None)?;
        }
        for (key, value) in options {
            let key = normalize_key(key);
            if key == "type" {
                continue;
            }
            check(&key, self)?;
            if delete.iter().any(|d| normalize_key(d) == key) {
                return err(format!("{key}: both set and deleted"));
            }
            self.set_key(&key, Some(value))?;
        }
        Ok(())
    }

    fn set_key(&mut self, key: &str, value: Option<&str>) -> Result<(), NetError> {
        let v = value.unwrap_or("");
        match key {
            "autostart" => self.autostart = value.map(|v| parse_bool(key, v)).transpose()?.unwrap_or(false),
            "cidr" | "cidr6" => {
                let v6 = key == "cidr6";
                if let Some(value) = value.filter(|v| !v.is_empty()) {
                    match Cidr::parse(value) {
                        Some(c) if c.addr.is_ipv6() == v6 => {}
                        _ => {
                            let family = if v6 { "an IPv6" } else { "an IPv4" };
                            return err(format!(
                                "{key}: '{value}' is not {family} address with prefix length (ADDRESS/PREFIX)"
                            ));
                        }
                    }
                }
                if v6 { self.cidr6 = opt(v) } else { self.cidr = opt(v) }
            }
            "gateway" | "gateway6" => {
                let v6 = key == "gateway6";
                if let Some(value) = value.filter(|v| !v.is_empty()) {
                    match value.parse::<std::net::IpAddr>() {
                        Ok(a) if a.is_ipv6() == v6 => {}
                        _ => {
                            let family = if v6 { "an IPv6" } else { "an IPv4" };
                            return err(format!("{key}: '{value}' is not {family} address"));
                        }
                    }
                }
                if v6 { self.gateway6 = opt(v) } else { self.gateway = opt(v) }
            }
            "mtu" => {
                self.mtu = match value.filter(|v| !v.is_empty()) {
                    None => None,
                    Some(v) => {
                        let mtu: u32 = parse_num(key, v, "a number in 1280-65520")?;
                        if !(1280..=65520).contains(&mtu) {
                            return err(format!("mtu: {mtu} is outside 1280-65520"));
                        }
                        Some(mtu)
                    }
                }
            }
            "comments" | "comments6" => {
                check_comment(key, v)?;
                if key == "comments" { self.comments = opt(v) } else { self.comments6 = opt(v) }
            }
            "bridge_ports" => {
                let ports = split_list(v);
                ports.iter().try_for_each(|p| check_ref(key, p))?;
                self.bridge_ports = ports;
            }
            "bridge_vlan_aware" => {
                self.bridge_vlan_aware = value.map(|v| parse_bool(key, v)).transpose()?.unwrap_or(false)
            }
            "bridge_vids" => {
                if !v.is_empty() {
                    check_vids(v)?;
                }
                self.bridge_vids = opt(v)
            }
            "bridge_stp" => self.bridge_stp = value.map(|v| parse_bool(key, v)).transpose()?,
            "bridge_fd" => {
                self.bridge_fd =
                    value.filter(|v| !v.is_empty()).map(|v| parse_num(key, v, "a number of seconds")).transpose()?
            }
            "slaves" => {
                let slaves = split_list(v);
                slaves.iter().try_for_each(|p| check_ref(key, p))?;
                self.slaves = slaves;
            }
            "bond_mode" => {
                if !v.is_empty() && !BOND_MODES.contains(&v) {
                    return err(format!("bond_mode: '{v}' is not one of {}", BOND_MODES.join(", ")));
                }
                self.bond_mode = opt(v)
            }
            "bond_miimon" => {
                self.bond_miimon = value
                    .filter(|v| !v.is_empty())
                    .map(|v| parse_num(key, v, "a number of milliseconds"))
                    .transpose()?
            }
            "bond-primary" => {
                if !v.is_empty() {
                    check_ref(key, v)?;
                }
                self.bond_primary = opt(v)
            }
            "bond_xmit_hash_policy" => {
                if !v.is_empty() && !BOND_XMIT_HASH_POLICIES.contains(&v) {
                    return err(format!(
                        "bond_xmit_hash_policy: '{v}' is not one of {}",
                        BOND_XMIT_HASH_POLICIES.join(", ")
                    ));
                }
                self.bond_xmit_hash_policy = opt(v)
            }
            "vlan-raw-device" => {
                if !v.is_empty() {
                    check_ref(key, v)?;
                }
                self.vlan_raw_device = opt(v)
            }
            "vlan-id" => {
                self.vlan_id = match value.filter(|v| !v.is_empty()) {
                    None => None,
                    Some(v) => {
                        let id: u32 = parse_num(key, v, "a VLAN id in 1-4094")?;
                        if !(1..=4094).contains(&id) {
                            return err(format!("vlan-id: {id} is outside 1-4094"));
                        }
                        Some(u16::try_from(id).unwrap_or(0))
                    }
                }
            }
            other => return err(format!("{other}: unknown key")),
        }
        Ok(())
    }

    /// The IPv4 method the stanza gets: `static` with an address, else as read (`dhcp`) or
    /// `manual`.
    pub fn method4(&self) -> &str {
        if self.kind == IfaceType::Loopback {
            "loopback"
        } else if self.cidr.is_some() {
            "static"
        } else {
            match self.method.as_deref() {
                Some("dhcp") => "dhcp",
                Some("auto") => "auto",
                _ => "manual",
            }
        }
    }

    pub fn method6_str(&self) -> Option<&str> {
        if self.cidr6.is_some() {
            Some("static")
        } else {
            self.method6.as_deref().or(
                if self.gateway6.is_some() || !self.options6.is_empty() || self.comments6.is_some() {
                    Some("manual")
                } else {
                    None
                },
            )
        }
    }

    /// The interfaces this one is built on: ports, slaves, the VLAN raw device.
    pub fn lower(&self) -> Vec<String> {
        match self.kind {
            IfaceType::Bridge => self.bridge_ports.clone(),
            IfaceType::Bond => self.slaves.clone(),
            IfaceType::Vlan => vlan_parts(self).map(|(d, _)| vec![d]).unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Every key with its value as text, for listings and diffs.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut out =
            vec![("type", self.kind.as_str().to_owned()), ("autostart", u8::from(self.autostart).to_string())];
        let mut push = |k: &'static str, v: Option<String>| {
            if let Some(v) = v {
                out.push((k, v));
            }
        };
        push("cidr", self.cidr.clone());
        push("gateway", self.gateway.clone());
        push("cidr6", self.cidr6.clone());
        push("gateway6", self.gateway6.clone());
        push("mtu", self.mtu.map(|m| m.to_string()));
        push("bridge_ports", (!self.bridge_ports.is_empty()).then(|| self.bridge_ports.join(" ")));
        push("bridge_vlan_aware", self.bridge_vlan_aware.then(|| "1".to_owned()));
        push("bridge_vids", self.bridge_vids.clone());
        push("bridge_stp", self.bridge_stp.map(|b| if b { "on".into() } else { "off".into() }));
        push("bridge_fd", self.bridge_fd.map(|m| m.to_string()));
        push("slaves", (!self.slaves.is_empty()).then(|| self.slaves.join(" ")));
        push("bond_mode", self.bond_mode.clone());
        push("bond_miimon", self.bond_miimon.map(|m| m.to_string()));
        push("bond-primary", self.bond_primary.clone());
        push("bond_xmit_hash_policy", self.bond_xmit_hash_policy.clone());
        push("vlan-raw-device", self.vlan_raw_device.clone());
        push("vlan-id", self.vlan_id.map(|m| m.to_string()));
        push("comments", self.comments.clone());
        push("comments6", self.comments6.clone());
        out
    }
}

/// Checks a whole configuration as Proxmox does before writing `interfaces.new`: names,
/// ports used twice, VLAN ids, bonds, gateways and their subnets, overlapping subnets, MTUs
/// of children and parents, `bridge_vids` without VLAN awareness.
pub fn validate(config: &NetworkConfig) -> Result<(), NetError> {
    let mut used: BTreeMap<String, String> = BTreeMap::new();
    let mut gateway: Option<&str> = None;
    let mut gateway6: Option<&str> = None;
    let mut subnets: Vec<(&str, &str, Cidr)> = Vec::new();
    for (name, i) in &config.ifaces {
        if name != &i.iface {
            return err(format!("iface: the entry '{name}' names '{}'", i.iface));
        }
        if matches!(i.kind, IfaceType::Loopback | IfaceType::Unknown) {
            // Kept as read.
        } else {
            check_name(name, i.kind)?;
        }
        let list_key = if i.kind == IfaceType::Bond { "slaves" } else { "bridge_ports" };
        if matches!(i.kind, IfaceType::Bridge | IfaceType::Bond) {
            for port in i.lower() {
                if port == *name {
                    return err(format!("{list_key}: {name} cannot be its own port"));
                }
                if let Some(other) = used.insert(port.clone(), name.clone()) {
                    return err(format!("{list_key}: {port} is already used on interface {other}"));
                }
                if let Some(p) = config.ifaces.get(&port) {
                    if matches!(p.kind, IfaceType::Loopback) {
                        return err(format!("{list_key}: {port} is the loopback interface"));
                    }
                    if let (Some(cmtu), Some(pmtu)) = (i.mtu, p.mtu) {
                        if i.kind == IfaceType::Bridge && cmtu > pmtu {
                            return err(format!("mtu: {name}'s MTU {cmtu} is above its port {port}'s MTU {pmtu}"));
                        }
                        if i.kind == IfaceType::Bond && pmtu < cmtu {
                            return err(format!("mtu: {name}'s MTU {cmtu} is above its slave {port}'s MTU {pmtu}"));
                        }
                    }
                }
            }
        }
        match i.kind {
            IfaceType::Bond => {
                if i.slaves.is_empty() {
                    return err(format!("slaves: bond {name} needs at least one slave"));
                }
                if let Some(primary) = &i.bond_primary {
                    if !i.slaves.contains(primary) {
                        return err(format!(
                            "bond-primary: {primary} is not a slave of {name} ({})",
                            i.slaves.join(" ")
                        ));
                    }
                    if i.bond_mode.as_deref() != Some("active-backup") {
                        return err("bond-primary: only for bond_mode active-backup");
                    }
                }
            }
            IfaceType::Vlan => {
                let Some((dev, id)) = vlan_parts(i) else {
                    return err(format!(
                        "vlan-raw-device: VLAN interface {name} needs vlan-raw-device and vlan-id, or a name PARENT.VID"
                    ));
                };
                if !(1..=4094).contains(&id) {
                    return err(format!("vlan-id: {id} is outside 1-4094"));
                }
                if dev == *name {
                    return err(format!("vlan-raw-device: {name} cannot be its own raw device"));
                }
                if let (Some(cmtu), Some(pmtu)) = (i.mtu, config.ifaces.get(&dev).and_then(|p| p.mtu)) {
                    if cmtu > pmtu {
                        return err(format!("mtu: {name}'s MTU {cmtu} is above its raw device {dev}'s MTU {pmtu}"));
                    }
                }
            }
            _ => {}
        }
        if (i.kind != IfaceType::Bridge || !i.bridge_vlan_aware) && i.bridge_vids.is_some() {
            return err(format!("bridge_vids: only with bridge_vlan_aware ({name})"));
        }
        for (cidr_key, gw_key, cidr, gw, seen) in [
            ("cidr", "gateway", &i.cidr, &i.gateway, &mut gateway),
            ("cidr6", "gateway6", &i.cidr6, &i.gateway6, &mut gateway6),
        ] {
            let parsed = match cidr {
                Some(c) => {
                    Some(Cidr::parse(c).ok_or_else(|| NetError(format!("{cidr_key}: '{c}' is not ADDRESS/PREFIX")))?)
                }
                None => None,
            };
            if let Some(c) = parsed {
                for (other, other_text, o) in &subnets {
                    if o.overlaps(&c) {
                        return err(format!(
                            "{cidr_key}: {} of {name} overlaps {other_text} of {other}",
                            cidr.as_deref().unwrap_or_default()
                        ));
                    }
                }
                subnets.push((name, cidr.as_deref().unwrap_or_default(), c));
            }
            if let Some(g) = gw {
                let addr: std::net::IpAddr =
                    g.parse().map_err(|_| NetError(format!("{gw_key}: '{g}' is not an address")))?;
                match parsed {
                    None => return err(format!("{gw_key}: {name} needs {cidr_key} for a gateway")),
                    Some(c) if !c.contains(addr) => {
                        return err(format!(
                            "{gw_key}: {g} is outside {name}'s subnet {}",
                            cidr.as_deref().unwrap_or_default()
                        ));
                    }
                    Some(_) => {}
                }
                if let Some(other) = seen.replace(name) {
                    return err(format!(
                        "{gw_key}: only one interface may hold the default {gw_key}; {other} has one already"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The header Proxmox writes on top of `/etc/network/interfaces`.
pub const INTERFACES_HEADER: &str = "\
# network interface settings; autogenerated
# Please do NOT modify this file directly, unless you know what
# you're doing.
#
# If you want to manage parts of the network configuration manually,
# please utilize the 'source' or 'source-directory' directives to do
# so.
# PVE will preserve these directives, but will NOT read its network
# configuration from sourced files, so do not attempt to move any of
# the PVE managed interfaces into external files!
";

/// Whether a name looks like a physical NIC (`eth0`, `eno1`, `enp3s0f1`, `ens18`, …).
fn is_physical(name: &str) -> bool {
    let rest = name.strip_prefix("eth").or_else(|| name.strip_prefix("en"));
    rest.is_some_and(|r| {
        !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') && !name.contains('.')
    })
}

/// What a stanza read so far holds beyond [`Iface`]'s fields: which kind its lines suggest.
#[derive(Default)]
struct Seen {
    bridge: bool,
    bond: bool,
    vlan: bool,
    netmask: Option<String>,
    netmask6: Option<String>,
}

fn netmask_prefix(mask: &str) -> Option<u8> {
    if let Ok(n) = mask.parse::<u8>() {
        return Some(n);
    }
    let a: std::net::Ipv4Addr = mask.parse().ok()?;
    let bits = u32::from(a);
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then(|| u8::try_from(ones).unwrap_or(32))
}

/// Reads a Proxmox `/etc/network/interfaces`: `auto`/`allow-hotplug` lines, `iface` stanzas
/// of both families with the keys Proxmox knows, `#` comments inside stanzas, unknown lines
/// (kept verbatim) and top-level `source` lines (kept at their position).
pub fn parse_interfaces(text: &str) -> Result<NetworkConfig, NetError> {
    let mut config = NetworkConfig::default();
    let mut auto: Vec<String> = Vec::new();
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    // The stanza lines are being read into: interface and whether it is the inet6 one.
    let mut current: Option<(String, bool)> = None;
    let mut pending_comments: Vec<String> = Vec::new();
    let mut priority = 0u32;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let lineno = n + 1;
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        let rest: Vec<&str> = words.collect();
        let at_column0 = !raw.starts_with([' ', '\t']);
        match first {
            "auto" | "allow-auto" | "allow-hotplug" if at_column0 => {
                current = None;
                auto.extend(rest.iter().map(|s| (*s).to_owned()));
            }
            "source" | "source-directory" | "mapping" | "allow-ovs" if at_column0 => {
                current = None;
                priority += 1;
                config.top.push(TopLine { priority, line: line.to_owned() });
            }
            "iface" if at_column0 => {
                let [name, family, method] = rest[..] else {
                    return err(format!("line {lineno}: expected 'iface NAME inet|inet6 METHOD', got '{line}'"));
                };
                let v6 = match family {
                    "inet" => false,
                    "inet6" => true,
                    _ => return err(format!("line {lineno}: address family '{family}' is not inet or inet6")),
                };
                if !["static", "manual", "dhcp", "loopback", "auto"].contains(&method) {
                    return err(format!(
                        "line {lineno}: method '{method}' is not static, manual, dhcp, loopback or auto"
                    ));
                }
                priority += 1;
                let entry = config
                    .ifaces
                    .entry(name.to_owned())
                    .or_insert_with(|| Iface { priority, ..Iface::new(name, IfaceType::Unknown) });
                seen.entry(name.to_owned()).or_default();
                if v6 {
                    entry.method6 = Some(method.to_owned());
                } else {
                    entry.method = Some(method.to_owned());
                }
                if !pending_comments.is_empty() {
                    let slot = if v6 { &mut entry.comments6 } else { &mut entry.comments };
                    let mut text = slot.take().unwrap_or_default();
                    for c in pending_comments.drain(..) {
                        text.push_str(&c);
                        text.push('\n');
                    }
                    *slot = Some(text);
                }
                current = Some((name.to_owned(), v6));
            }
            _ if line.starts_with('#') => {
                let comment = line.trim_start_matches('#').to_owned();
                match &current {
                    Some((name, v6)) => {
                        let entry = config.ifaces.get_mut(name).expect("the current stanza's interface exists");
                        let slot = if *v6 { &mut entry.comments6 } else { &mut entry.comments };
                        let mut text = slot.take().unwrap_or_default();
                        text.push_str(&comment);
                        text.push('\n');
                        *slot = Some(text);
                    }
                    // Comments before the first stanza are the header; between stanzas they
                    // belong to the next `iface` (`auto eno1`, `#real IP`, `iface eno1 …`).
                    None if config.ifaces.is_empty() && auto.is_empty() => {}
                    None => pending_comments.push(comment),
                }
            }
            _ => {
                let Some((name, v6)) = &current else {
                    return err(format!("line {lineno}: '{line}' is outside any iface stanza"));
                };
                let entry = config.ifaces.get_mut(name).expect("the current stanza's interface exists");
                let s = seen.get_mut(name).expect("seen for every stanza");
                let value = rest.join(" ");
                parse_stanza_line(entry, s, *v6, first, &value, line)
                    .map_err(|e| NetError(format!("line {lineno}: {e}")))?;
            }
        }
    }
    for (name, entry) in &mut config.ifaces {
        let s = seen.remove(name).unwrap_or_default();
        if let Some(mask) = s.netmask {
            if let Some(addr) = entry.cidr.as_mut().filter(|a| !a.contains('/')) {
                let prefix =
                    netmask_prefix(&mask).ok_or_else(|| NetError(format!("{name}: netmask '{mask}' is not valid")))?;
                *addr = format!("{addr}/{prefix}");
            }
        }
        if let Some(mask) = s.netmask6 {
            if let Some(addr) = entry.cidr6.as_mut().filter(|a| !a.contains('/')) {
                *addr = format!("{addr}/{mask}");
            }
        }
        for (key, cidr) in [("address", &entry.cidr), ("address6", &entry.cidr6)] {
            if let Some(c) = cidr {
                if Cidr::parse(c).is_none() {
                    return err(format!("{name}: {key} '{c}' has no prefix length (add /PREFIX or a netmask line)"));
                }
            }
        }
        entry.kind = if entry.method.as_deref() == Some("loopback") || name == "lo" {
            IfaceType::Loopback
        } else if s.bridge {
            IfaceType::Bridge
        } else if s.bond {
            IfaceType::Bond
        } else if s.vlan || vlan_parts(entry).is_some() && !is_physical(name) || name.contains('.') {
            IfaceType::Vlan
        } else if is_physical(name) {
            IfaceType::Eth
        } else {
            IfaceType::Unknown
        };
        entry.autostart = auto.iter().any(|a| a == name);
        // The method is implied by the address unless it says more (dhcp, auto).
        if matches!(entry.method.as_deref(), Some("static" | "manual" | "loopback")) {
            entry.method = None;
        }
        if matches!(entry.method6.as_deref(), Some("static")) && entry.cidr6.is_some() {
            entry.method6 = None;
        }
    }
    Ok(config)
}

fn parse_stanza_line(
    entry: &mut Iface,
    s: &mut Seen,
    v6: bool,
    key: &str,
    value: &str,
    line: &str,
) -> Result<(), NetError> {
    let bool_word = |v: &str| parse_bool(key, v);
    match (key, v6) {
        ("address", false) => entry.cidr = Some(value.to_owned()),
        ("address", true) => entry.cidr6 = Some(value.to_owned()),
        ("netmask", false) => s.netmask = Some(value.to_owned()),
        ("netmask", true) => s.netmask6 = Some(value.to_owned()),
        ("gateway", false) => entry.gateway = Some(value.to_owned()),
        ("gateway", true) => entry.gateway6 = Some(value.to_owned()),
        ("mtu" | "ovs_mtu", _) => entry.mtu = Some(parse_num("mtu", value, "a number")?),
        ("bridge-ports" | "bridge_ports", _) => {
            s.bridge = true;
            entry.bridge_ports = split_list(value);
        }
        ("bridge-stp" | "bridge_stp", _) => {
            s.bridge = true;
            entry.bridge_stp = Some(bool_word(value)?);
        }
        ("bridge-fd" | "bridge_fd", _) => {
            s.bridge = true;
            entry.bridge_fd = Some(parse_num("bridge-fd", value, "a number")?);
        }
        ("bridge-vlan-aware" | "bridge_vlan_aware", _) => {
            s.bridge = true;
            entry.bridge_vlan_aware = bool_word(value)?;
        }
        ("bridge-vids" | "bridge_vids", _) => {
            s.bridge = true;
            entry.bridge_vids = Some(value.to_owned());
        }
        ("bond-slaves" | "bond_slaves" | "slaves", _) => {
            s.bond = true;
            entry.slaves = split_list(value);
        }
        ("bond-mode" | "bond_mode", _) => {
            s.bond = true;
            entry.bond_mode = Some(value.to_owned());
        }
        ("bond-miimon" | "bond_miimon", _) => {
            s.bond = true;
            entry.bond_miimon = Some(parse_num("bond-miimon", value, "a number")?);
        }
        ("bond-primary" | "bond_primary", _) => {
            s.bond = true;
            entry.bond_primary = Some(value.to_owned());
        }
        ("bond-xmit-hash-policy" | "bond_xmit_hash_policy", _) => {
            s.bond = true;
            entry.bond_xmit_hash_policy = Some(value.to_owned());
        }
        ("vlan-raw-device" | "vlan_raw_device", _) => {
            s.vlan = true;
            entry.vlan_raw_device = Some(value.to_owned());
        }
        ("vlan-id" | "vlan_id", _) => {
            s.vlan = true;
            entry.vlan_id = Some(parse_num("vlan-id", value, "a VLAN id")?);
        }
        (_, false) => entry.options.push(line.to_owned()),
        (_, true) => entry.options6.push(line.to_owned()),
    }
    Ok(())
}

/// Where an interface goes in the written file: Proxmox's rank of its type, one more per
/// `.`/`:` level, then its position.
fn order_key(i: &Iface) -> (u32, u32) {
    let rank = match i.kind {
        IfaceType::Loopback => 100_000,
        IfaceType::Eth => 200_000,
        IfaceType::Bond => 400_000,
        IfaceType::Bridge => 500_000,
        IfaceType::Vlan => 600_000,
        IfaceType::Unknown => 700_000,
    };
    let levels = u32::try_from(i.iface.matches(['.', ':']).count()).unwrap_or(0);
    (rank + levels, i.priority)
}

fn push_comments(out: &mut String, comments: &Option<String>) {
    if let Some(c) = comments {
        // A carriage return (kept from an imported file) starts a line of its own, a comment too.
        for line in c.lines().flat_map(|l| l.split('\r')) {
            out.push('#');
            out.push_str(line);
            out.push('\n');
        }
    }
}

/// Writes the configuration as Proxmox writes `/etc/network/interfaces`: its header, the
/// stanzas in its order, and the kept top-level lines at the end.
pub fn write_interfaces(config: &NetworkConfig) -> String {
    let mut out = String::from(INTERFACES_HEADER);
    let mut ifaces: Vec<&Iface> = config.ifaces.values().collect();
    ifaces.sort_by_key(|i| (order_key(i), i.iface.clone()));
    for i in ifaces {
        out.push('\n');
        if i.autostart {
            out.push_str(&format!("auto {}\n", i.iface));
        }
        out.push_str(&format!("iface {} inet {}\n", i.iface, i.method4()));
        let mut line = |k: &str, v: String| out.push_str(&format!("\t{k} {v}\n"));
        if let Some(c) = &i.cidr {
            line("address", c.clone());
        }
        if let Some(g) = &i.gateway {
            line("gateway", g.clone());
        }
        if let Some(m) = i.mtu {
            line("mtu", m.to_string());
        }
        if i.kind == IfaceType::Bridge {
            line("bridge-ports", if i.bridge_ports.is_empty() { "none".into() } else { i.bridge_ports.join(" ") });
            line("bridge-stp", if i.bridge_stp.unwrap_or(false) { "on".into() } else { "off".into() });
            line("bridge-fd", i.bridge_fd.unwrap_or(0).to_string());
            if i.bridge_vlan_aware {
                line("bridge-vlan-aware", "yes".into());
                line("bridge-vids", i.bridge_vids.clone().unwrap_or_else(|| "2-4094".into()));
            }
        }
        if i.kind == IfaceType::Bond {
            line("bond-slaves", if i.slaves.is_empty() { "none".into() } else { i.slaves.join(" ") });
            if let Some(v) = i.bond_miimon {
                line("bond-miimon", v.to_string());
            }
            if let Some(v) = &i.bond_mode {
                line("bond-mode", v.clone());
            }
            if let Some(v) = &i.bond_xmit_hash_policy {
                line("bond-xmit-hash-policy", v.clone());
            }
            if let Some(v) = &i.bond_primary {
                line("bond-primary", v.clone());
            }
        }
        if i.kind == IfaceType::Vlan {
            if let Some(v) = i.vlan_id {
                line("vlan-id", v.to_string());
            }
            if let Some(v) = &i.vlan_raw_device {
                line("vlan-raw-device", v.clone());
            }
        }
        for o in &i.options {
            out.push('\t');
            out.push_str(o);
            out.push('\n');
        }
        push_comments(&mut out, &i.comments);
        if let Some(method6) = i.method6_str() {
            out.push_str(&format!("\niface {} inet6 {method6}\n", i.iface));
            if let Some(c) = &i.cidr6 {
                out.push_str(&format!("\taddress {c}\n"));
            }
            if let Some(g) = &i.gateway6 {
                out.push_str(&format!("\tgateway {g}\n"));
            }
            for o in &i.options6 {
                out.push('\t');
                out.push_str(o);
                out.push('\n');
            }
            push_comments(&mut out, &i.comments6);
        }
    }
    if !config.top.is_empty() {
        out.push('\n');
        for t in &config.top {
            out.push_str(&t.line);
            out.push('\n');
        }
    }
    out
}

/// The difference between two configurations, per interface: what `netctl pending` shows
/// when `current` is what the kernel runs.
pub fn diff(current: &NetworkConfig, staged: &NetworkConfig) -> Vec<IfaceChange> {
    let mut out = Vec::new();
    let names: std::collections::BTreeSet<&String> = current.ifaces.keys().chain(staged.ifaces.keys()).collect();
    for name in names {
        let (action, a, b) = match (current.ifaces.get(name), staged.ifaces.get(name)) {
            (None, Some(b)) => ("create", Vec::new(), b.fields()),
            (Some(a), None) => ("delete", a.fields(), Vec::new()),
            (Some(a), Some(b)) => ("change", a.fields(), b.fields()),
            (None, None) => continue,
        };
        let keys: std::collections::BTreeSet<&str> = a.iter().chain(b.iter()).map(|(k, _)| *k).collect();
        let get = |list: &[(&'static str, String)], k: &str| list.iter().find(|(x, _)| *x == k).map(|(_, v)| v.clone());
        let mut changes: Vec<KeyChange> = keys
            .into_iter()
            .filter_map(|k| {
                let (c, s) = (get(&a, k), get(&b, k));
                (c != s).then(|| KeyChange { key: k.to_owned(), current: c, staged: s })
            })
            .collect();
        // `type` first, then the keys in the order of the API.
        changes.sort_by_key(|c| KEYS.iter().position(|(k, _)| *k == c.key).map_or(0, |p| p + 1));
        if action != "change" || !changes.is_empty() {
            out.push(IfaceChange { iface: name.clone(), action: action.to_owned(), changes });
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;

    fn config(text: &str) -> NetworkConfig {
        parse_interfaces(text).unwrap()
    }

    const DEFAULT: &str = "auto lo\niface lo inet loopback\n\niface eno1 inet manual\n\nauto vmbr0\niface vmbr0 inet static\n        address 192.168.10.2/24\n        gateway 192.168.10.1\n        bridge-ports eno1\n        bridge-stp off\n        bridge-fd 0\n";

    const VLAN_AWARE_BOND: &str = "auto lo\niface lo inet loopback\n\niface eno1 inet manual\n\niface eno2 inet manual\n\nauto bond0\niface bond0 inet manual\n      bond-slaves eno1 eno2\n      bond-miimon 100\n      bond-mode 802.3ad\n      bond-xmit-hash-policy layer2+3\n\nauto vmbr0.5\niface vmbr0.5 inet static\n        address  10.10.10.2/24\n        gateway  10.10.10.1\n\nauto vmbr0\niface vmbr0 inet manual\n        bridge-ports bond0\n        bridge-stp off\n        bridge-fd 0\n        bridge-vlan-aware yes\n        bridge-vids 2-4094\n\nsource /etc/network/interfaces.d/*\n";

    const MASQUERADE: &str = "auto lo\niface lo inet loopback\n\nauto eno1\n#real IP address\niface eno1 inet static\n        address  198.51.100.5\n        netmask  255.255.255.0\n        gateway  198.51.100.1\n\nauto vmbr0\n#private sub network\niface vmbr0 inet static\n        address  10.10.10.1/24\n        bridge-ports none\n        bridge-stp off\n        bridge-fd 0\n\n        post-up   echo 1 > /proc/sys/net/ipv4/ip_forward\n        post-up   iptables -t nat -A POSTROUTING -s '10.10.10.0/24' -o eno1 -j MASQUERADE\n\niface vmbr0 inet6 static\n\taddress fd00::1/64\n";

    const TRADITIONAL_VLAN: &str = "auto lo\niface lo inet loopback\niface eno1 inet manual\niface eno1.5 inet manual\nauto vmbr0v5\niface vmbr0v5 inet static\n        address  10.10.10.2/24\n        gateway  10.10.10.1\n        bridge-ports eno1.5\n        bridge-stp off\n        bridge-fd 0\nauto vmbr0\niface vmbr0 inet manual\n        bridge-ports eno1\n        bridge-stp off\n        bridge-fd 0\niface v7 inet dhcp\n\tvlan-raw-device eno1\n\tvlan-id 7\n";

    #[test]
    fn reads_the_canonical_layouts() {
        let c = config(DEFAULT);
        let vmbr0 = &c.ifaces["vmbr0"];
        assert_eq!(vmbr0.kind, IfaceType::Bridge);
        assert!(vmbr0.autostart);
        assert_eq!(vmbr0.cidr.as_deref(), Some("192.168.10.2/24"));
        assert_eq!(vmbr0.bridge_ports, ["eno1"]);
        assert_eq!(vmbr0.bridge_stp, Some(false));
        assert_eq!(c.ifaces["eno1"].kind, IfaceType::Eth);
        assert_eq!(c.ifaces["lo"].kind, IfaceType::Loopback);
        validate(&c).unwrap();

        let c = config(VLAN_AWARE_BOND);
        assert_eq!(c.ifaces["bond0"].kind, IfaceType::Bond);
        assert_eq!(c.ifaces["bond0"].slaves, ["eno1", "eno2"]);
        assert_eq!(c.ifaces["bond0"].bond_mode.as_deref(), Some("802.3ad"));
        assert_eq!(c.ifaces["bond0"].bond_xmit_hash_policy.as_deref(), Some("layer2+3"));
        assert_eq!(c.ifaces["vmbr0.5"].kind, IfaceType::Vlan);
        assert_eq!(vlan_parts(&c.ifaces["vmbr0.5"]), Some(("vmbr0".into(), 5)));
        assert!(c.ifaces["vmbr0"].bridge_vlan_aware);
        assert_eq!(c.top[0].line, "source /etc/network/interfaces.d/*");
        validate(&c).unwrap();

        let c = config(MASQUERADE);
        assert_eq!(c.ifaces["eno1"].cidr.as_deref(), Some("198.51.100.5/24"));
        assert_eq!(c.ifaces["eno1"].comments.as_deref(), Some("real IP address\n"));
        assert_eq!(c.ifaces["vmbr0"].comments.as_deref(), Some("private sub network\n"));
        assert!(c.ifaces["vmbr0"].bridge_ports.is_empty());
        assert_eq!(c.ifaces["vmbr0"].options.len(), 2);
        assert_eq!(c.ifaces["vmbr0"].cidr6.as_deref(), Some("fd00::1/64"));
        validate(&c).unwrap();

        let c = config(TRADITIONAL_VLAN);
        assert_eq!(c.ifaces["eno1.5"].kind, IfaceType::Vlan);
        assert_eq!(c.ifaces["v7"].kind, IfaceType::Vlan);
        assert_eq!(c.ifaces["v7"].method.as_deref(), Some("dhcp"));
        validate(&c).unwrap();
    }

    #[test]
    fn export_round_trips() {
        for text in [DEFAULT, VLAN_AWARE_BOND, MASQUERADE, TRADITIONAL_VLAN] {
            let first = config(text);
            let written = write_interfaces(&first);
            assert!(written.starts_with(INTERFACES_HEADER));
            let again = config(&written);
            // Positions differ (the writer orders by type); everything else survives.
            let strip = |c: &NetworkConfig| {
                let mut c = c.clone();
                c.ifaces.values_mut().for_each(|i| i.priority = 0);
                c.top.iter_mut().for_each(|t| t.priority = 0);
                c
            };
            assert_eq!(strip(&first), strip(&again), "{written}");
            assert_eq!(write_interfaces(&again), written);
        }
        let written = write_interfaces(&config(DEFAULT));
        let body = written.strip_prefix(INTERFACES_HEADER).unwrap();
        assert_eq!(
            body,
            "\nauto lo\niface lo inet loopback\n\niface eno1 inet manual\n\nauto vmbr0\niface vmbr0 inet static\n\taddress 192.168.10.2/24\n\tgateway 192.168.10.1\n\tbridge-ports eno1\n\tbridge-stp off\n\tbridge-fd 0\n"
        );
        // A carriage return in a comment (as an imported file may hold one) stays in comments.
        let mut c = config(DEFAULT);
        c.ifaces.get_mut("eno1").unwrap().comments = Some("one\rpost-up touch /tmp/x\n".into());
        let written = write_interfaces(&c);
        assert!(written.contains("\n#one\n#post-up touch /tmp/x\n"), "{written}");
        assert!(!written.contains('\r'), "{written}");
    }

    /// An interface to add: name, type and options.
    type Extra<'a> = (&'a str, IfaceType, &'a [(&'a str, &'a str)]);

    fn with(extra: &[Extra<'_>]) -> Result<NetworkConfig, NetError> {
        let mut c = config(DEFAULT);
        for (name, kind, opts) in extra {
            let mut i = Iface::new(name, *kind);
            let opts: Vec<(String, String)> = opts.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            i.apply_options(&opts, &[])?;
            c.ifaces.insert((*name).to_owned(), i);
        }
        validate(&c).map(|()| c)
    }

    #[test]
    fn refuses_bad_configurations_naming_the_key() {
        use IfaceType::*;
        let cases: &[(&[Extra<'_>], &str)] = &[
            (&[("vmbr1", Bridge, &[("cidr", "192.168.10.9/16")])], "cidr: 192.168.10.9/16 of vmbr1 overlaps"),
            (&[("vmbr1", Bridge, &[("bridge_ports", "eno1")])], "eno1 is already used on interface vmbr0"),
            (&[("bond0", Bond, &[("slaves", "eno1")])], "eno1 is already used on interface"),
            (&[("v1", Vlan, &[("vlan-raw-device", "eno1"), ("vlan-id", "4095")])], "vlan-id: 4095 is outside 1-4094"),
            (&[("v1", Vlan, &[("vlan-raw-device", "eno1"), ("vlan-id", "0")])], "vlan-id: 0 is outside 1-4094"),
            (&[("bond1", Bond, &[])], "slaves: bond bond1 needs at least one slave"),
            (
                &[("bond1", Bond, &[("slaves", "eno7"), ("bond_mode", "active-backup"), ("bond-primary", "eno8")])],
                "bond-primary: eno8 is not a slave",
            ),
            (
                &[("vmbr1", Bridge, &[("cidr", "10.1.0.2/24"), ("gateway", "10.2.0.1")])],
                "gateway: 10.2.0.1 is outside vmbr1's subnet",
            ),
            (
                &[("vmbr1", Bridge, &[("cidr", "10.1.0.2/24"), ("gateway", "10.1.0.1")])],
                "only one interface may hold the default gateway",
            ),
            (&[("averyveryverylongname", Eth, &[])], "iface: 'averyveryverylongname' must be 1 to 15 bytes"),
            (&[("bridgename11", Bridge, &[])], "is not a bridge name"),
            (&[("vmbr1", Bridge, &[("bridge_vids", "2-10")])], "bridge_vids: only with bridge_vlan_aware"),
            (
                &[("eno9", Eth, &[("mtu", "1500")]), ("vmbr1", Bridge, &[("bridge_ports", "eno9"), ("mtu", "9000")])],
                "mtu: vmbr1's MTU 9000 is above its port eno9's MTU 1500",
            ),
            (&[("vmbr1", Bridge, &[("bond_mode", "802.3ad")])], "bond_mode: only for interfaces of type bond"),
            (&[("vmbr1", Bridge, &[("mtu", "100")])], "mtu: 100 is outside 1280-65520"),
            (&[("vmbr1", Bridge, &[("bridge_vlan_aware", "1"), ("bridge_vids", "2-5000")])], "bridge_vids: '2-5000'"),
            (&[("vmbr1", Bridge, &[("cidr", "10.0.0.1")])], "cidr: '10.0.0.1' is not an IPv4 address with prefix"),
            (&[("vmbr1", Bridge, &[("colour", "red")])], "colour: unknown key"),
            // Nothing given to a key may add a line to the exported interfaces file.
            (
                &[("v1", Vlan, &[("vlan-raw-device", "eno1\n\tpost-up touch /tmp/x"), ("vlan-id", "5")])],
                "vlan-raw-device: 'eno1\n\tpost-up touch /tmp/x' is not an interface name",
            ),
            (&[("vmbr1", Bridge, &[("comments", "a\rpost-up touch /tmp/x")])], "comments: control characters"),
            (&[("vmbr1", Bridge, &[("comments6", "a\0b")])], "comments6: control characters"),
            (&[("vmbr1", Bridge, &[("bridge_ports", "eno1\\")])], "bridge_ports: 'eno1\\' is not an interface name"),
            (&[("bond1", Bond, &[("slaves", "eno7 x#y")])], "slaves: 'x#y' is not an interface name"),
        ];
        for (extra, wanted) in cases {
            let e = with(extra).unwrap_err().0;
            assert!(e.contains(wanted), "{extra:?}: {e}");
        }
        with(&[(
            "vmbr1",
            Bridge,
            &[("cidr", "10.1.0.2/24"), ("bridge_vlan_aware", "1"), ("bridge_vids", "2 4 100-200")],
        )])
        .unwrap();
        with(&[("bond1", Bond, &[("slaves", "eno7 eno8"), ("bond_mode", "active-backup"), ("bond-primary", "eno8")])])
            .unwrap();
    }

    #[test]
    fn diff_names_changed_keys() {
        let a = config(DEFAULT);
        let mut b = a.clone();
        b.ifaces.get_mut("vmbr0").unwrap().mtu = Some(9000);
        b.ifaces.insert("vmbr1".into(), Iface::new("vmbr1", IfaceType::Bridge));
        b.ifaces.remove("eno1");
        let d = diff(&a, &b);
        assert_eq!(
            d.iter().map(|c| (c.iface.as_str(), c.action.as_str())).collect::<Vec<_>>(),
            [("eno1", "delete"), ("vmbr0", "change"), ("vmbr1", "create")]
        );
        assert_eq!(d[1].changes, [KeyChange { key: "mtu".into(), current: None, staged: Some("9000".into()) }]);
    }

    #[test]
    fn subnets() {
        let a = Cidr::parse("10.0.0.1/24").unwrap();
        assert!(a.contains("10.0.0.200".parse().unwrap()));
        assert!(!a.contains("10.0.1.1".parse().unwrap()));
        assert!(a.overlaps(&Cidr::parse("10.0.0.0/8").unwrap()));
        assert!(!a.overlaps(&Cidr::parse("10.0.1.0/24").unwrap()));
        assert!(Cidr::parse("fd00::1/64").unwrap().contains("fd00::ffff".parse().unwrap()));
    }
}
