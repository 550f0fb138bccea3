//! The compiled form: named chains of rules over a small match language, named address sets,
//! and the guest ports with their chains. Both the nft printer and the simulator read it, so
//! what `fwctl simulate` says is what the kernel is given.

use std::collections::BTreeMap;

use hearth_core::firewall::{AddrItem, PortSpec};

/// IP version of a match or set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    Family(Family),
    /// Source (`true`) or destination address in a list.
    Addr {
        source: bool,
        family: Family,
        items: Vec<AddrItem>,
    },
    /// Source or destination address in (or, negated, not in) a named set.
    Set {
        source: bool,
        family: Family,
        name: String,
        negate: bool,
    },
    L4Proto(u8),
    DPort(PortSpec),
    SPort(PortSpec),
    /// Source or destination address not in a list.
    NotAddr {
        source: bool,
        family: Family,
        items: Vec<AddrItem>,
    },
    /// ICMP or ICMPv6 of any of these types.
    IcmpAny {
        family: Family,
        kinds: Vec<u8>,
    },
    /// ICMP (`family` V4) or ICMPv6 type and optional code.
    Icmp {
        family: Family,
        kind: u8,
        code: Option<u8>,
    },
    /// TCP flags: `flags & mask == value` (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10,
    /// URG 0x20).
    TcpFlags {
        mask: u8,
        value: u8,
    },
    /// The source has sent more than `rate` packets a second (after a `burst`) that reached
    /// this match: a per-source meter in a dynamic set whose entries expire after 60 s.
    RateOver {
        family: Family,
        rate: u32,
        burst: u32,
    },
    /// The source address is a broadcast address of this node (`fib saddr type broadcast`).
    SourceBroadcast,
    /// Input interface (host rules `-i` in IN direction).
    InIface(String),
    /// Output interface (host rules `-i` in OUT direction).
    OutIface(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Accept,
    Drop,
    /// TCP reset for TCP, ICMP unreachable otherwise.
    Reject,
    /// Leave this chain; the caller goes on (a guest's outbound ACCEPT, so the destination's
    /// inbound chain still decides).
    Return,
    Jump(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IrRule {
    pub matches: Vec<Match>,
    pub action: Action,
    /// nflog prefix when the rule logs.
    pub log: Option<String>,
    /// Where it came from (`guest 100 rule 2: IN ACCEPT -p tcp -dport 22`), for explanations.
    pub origin: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chain {
    pub rules: Vec<IrRule>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetDef {
    pub family: Family,
    pub elements: Vec<AddrItem>,
}

/// A firewalled guest port: its mark id and the chains its traffic goes through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortBinding {
    pub vmid: u32,
    pub index: u32,
    pub port: String,
    /// 1-based, at most 32767; bits 16–31 of the mark for frames from the port, bits 0–14 for
    /// frames to it (bit 15 marks a bridged frame).
    pub id: u32,
    /// Source MAC the guest must use (`macfilter`), if any.
    pub mac: Option<String>,
    pub out_chain: String,
    pub in_chain: String,
}

/// The whole compiled firewall.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// `enable` in the cluster options: when off, applying removes Hearth's tables.
    pub enabled: bool,
    /// Host zone filtering (cluster and host `enable`).
    pub host_enabled: bool,
    pub chains: BTreeMap<String, Chain>,
    pub sets: BTreeMap<String, SetDef>,
    pub ports: Vec<PortBinding>,
    /// nflog group the log statements use.
    pub log_group: u16,
}
