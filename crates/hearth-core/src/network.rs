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
