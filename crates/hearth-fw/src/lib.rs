//! The firewall compiler. [`compile`] turns the cluster, host and guest configurations and the
//! guests' NICs into a [`Ruleset`]: an intermediate form of chains, sets and port bindings that
//! [`Ruleset::to_nft`] prints as one nftables script (a single transaction that replaces only
//! Hearth's own tables) and that [`simulate`] walks to say which rule decides a packet.
//!
//! Structure (see ARCHITECTURE.md): a `bridge hearth` table marks each frame with the guest
//! ports it enters from and leaves by (bits 16–31 and 0–15 of the packet mark) and does MAC
//! anti-spoofing; an `inet hearth` table, which sees bridged traffic through br_netfilter and so
//! has conntrack, dispatches by those marks through verdict maps into per-NIC guest chains.

mod apply;
mod compile;
mod ir;
mod nflog;
mod nft;
mod simulate;

pub use apply::{ApplyError, Nft};
pub use compile::{CompileError, MANAGEMENT_PORTS, compile, link_local};
pub use ir::{Action, Chain, IrRule, Match, PortBinding, Ruleset, SetDef};
pub use nflog::{LogRecord, NflogListener};
pub use simulate::{Decision, Endpoint, Packet, simulate};

use hearth_core::firewall::{FirewallConfig, IpNet};

/// The nftables table name Hearth owns in both the `inet` and the `bridge` family.
pub const TABLE: &str = "hearth";

/// One guest NIC as the firewall sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestNic {
    /// The NIC's index: 0 for `net0`.
    pub index: u32,
    /// The host side port: `tap<vmid>i<n>` for VMs, `veth<ctid>i<n>` for containers.
    pub port: String,
    /// `aa:bb:cc:dd:ee:ff`, lowercase.
    pub mac: Option<String>,
    /// Addresses configured for the NIC (container `ip=`/`ip6=`): implicit ipfilter members.
    pub ips: Vec<IpNet>,
    /// `firewall=1` on the NIC.
    pub firewall: bool,
}

/// One guest's firewall configuration and NICs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestFirewall {
    pub vmid: u32,
    pub config: FirewallConfig,
    pub nics: Vec<GuestNic>,
}

/// Everything the compiler reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FirewallInput {
    pub cluster: FirewallConfig,
    pub host: FirewallConfig,
    pub guests: Vec<GuestFirewall>,
}
