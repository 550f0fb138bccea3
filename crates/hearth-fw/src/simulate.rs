//! Walking the compiled ruleset for one new connection's first packet: which chains it passes,
//! which rule decides and why. The walk follows the base chains of [`Ruleset::to_nft`]: a
//! guest's outbound chain, then the destination guest's inbound chain, the host zone's inbound
//! chain, or for routed traffic its forward chain.

use std::net::IpAddr;

use hearth_core::firewall::Verdict;

use crate::ir::{Action, Family, Match, Ruleset};

/// Where a packet comes from or goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// This node itself.
    Host,
    /// Anything on the guests' bridge beyond the node (another bridge port, the uplink).
    Outside,
    /// Another network the node routes to or from (the packet is forwarded by the host's IP
    /// stack, not bridged): the host zone's FORWARD rules apply.
    Routed,
    /// A guest NIC: VMID and NIC index.
    Guest { vmid: u32, index: u32 },
}

impl Endpoint {
    /// `host`, `outside`, `routed`, `vm100`, `ct100`, `100`, optionally with `/netN` (default net0).
    pub fn parse(s: &str) -> Option<Endpoint> {
        match s {
            "host" => return Some(Endpoint::Host),
            "outside" => return Some(Endpoint::Outside),
            "routed" => return Some(Endpoint::Routed),
            _ => {}
        }
        let (id, nic) = match s.split_once('/') {
            Some((a, b)) => (a, b.strip_prefix("net")?.parse().ok()?),
            None => (s, 0),
        };
        let id = id.strip_prefix("vm").or_else(|| id.strip_prefix("ct")).unwrap_or(id);
        Some(Endpoint::Guest { vmid: id.parse().ok()?, index: nic })
    }
}

/// The first packet of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub from: Endpoint,
    pub to: Endpoint,
    pub source: IpAddr,
    pub dest: IpAddr,
    pub proto: u8,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// ICMP type and code.
    pub icmp: Option<(u8, u8)>,
    /// The host interface (for host rules with `-i`).
    pub iface: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// The rule or policy that decided.
    pub decided_by: String,
    /// Chains entered and rules matched, in order.
    pub trace: Vec<String>,
}

enum Outcome {
    Final(Verdict, String),
    /// Fell off the end or returned.
    Continue,
}

fn family(ip: &IpAddr) -> Family {
    if ip.is_ipv6() { Family::V6 } else { Family::V4 }
}

fn matches(rs: &Ruleset, m: &Match, p: &Packet) -> bool {
    let fam = family(&p.source);
    match m {
        Match::Family(f) => *f == fam,
        Match::Addr { source, family: f, items } => {
            let ip = if *source { p.source } else { p.dest };
            *f == fam && items.iter().any(|i| i.contains(ip))
        }
        Match::NotAddr { source, family: f, items } => {
            let ip = if *source { p.source } else { p.dest };
            *f == fam && !items.iter().any(|i| i.contains(ip))
        }
        Match::IcmpAny { family: f, kinds } => {
            let proto = if *f == Family::V4 { 1 } else { 58 };
            *f == fam
                && p.proto == proto
                && p.icmp.is_some_and(|(t, _)| {
                    kinds.first().is_some_and(|a| *a <= t) && kinds.last().is_some_and(|b| t <= *b)
                })
        }
        Match::Set { source, family: f, name, negate } => {
            if *f != fam {
                return false;
            }
            let ip = if *source { p.source } else { p.dest };
            let member = rs.sets.get(name).is_some_and(|s| s.elements.iter().any(|i| i.contains(ip)));
            member != *negate
        }
        Match::L4Proto(x) => *x == p.proto,
        Match::DPort(spec) => matches!(p.proto, 6 | 17 | 33 | 132 | 136) && p.dport.is_some_and(|d| spec.contains(d)),
        Match::SPort(spec) => matches!(p.proto, 6 | 17 | 33 | 132 | 136) && p.sport.is_some_and(|d| spec.contains(d)),
        Match::Icmp { family: f, kind, code } => {
            let proto = if *f == Family::V4 { 1 } else { 58 };
            *f == fam && p.proto == proto && p.icmp.is_some_and(|(t, c)| t == *kind && code.is_none_or(|x| x == c))
        }
        // The first packet of a TCP connection is a plain SYN.
        Match::TcpFlags { mask, value } => p.proto == 6 && 0x02 & mask == *value,
        // The first packet of a connection is within any rate.
        Match::RateOver { .. } => false,
        // Only the limited broadcast address: the simulator does not know the node's subnets.
        Match::SourceBroadcast => p.source == IpAddr::from([255, 255, 255, 255]),
        Match::InIface(i) | Match::OutIface(i) => p.iface.as_deref() == Some(i.as_str()),
    }
}

fn run(rs: &Ruleset, chain: &str, p: &Packet, trace: &mut Vec<String>, depth: usize) -> Outcome {
    trace.push(format!("chain {chain}"));
    let Some(c) = rs.chains.get(chain) else { return Outcome::Continue };
    if depth > 16 {
        return Outcome::Continue;
    }
    for r in &c.rules {
        if !r.matches.iter().all(|m| matches(rs, m, p)) {
            continue;
        }
        let verdict = match &r.action {
            Action::Accept => Verdict::Accept,
            Action::Drop => Verdict::Drop,
            Action::Reject => Verdict::Reject,
            Action::Return => {
                trace.push(format!("  {} → accepted here, next check", r.origin));
                return Outcome::Continue;
            }
            Action::Jump(next) => match run(rs, next, p, trace, depth + 1) {
                Outcome::Final(v, why) => return Outcome::Final(v, why),
                Outcome::Continue => continue,
            },
        };
        trace.push(format!("  {} → {}", r.origin, verdict.as_str()));
        return Outcome::Final(verdict, r.origin.clone());
    }
    Outcome::Continue
}

/// Decides a new connection's first packet against the compiled ruleset.
pub fn simulate(rs: &Ruleset, p: &Packet) -> Decision {
    let mut trace = Vec::new();
    let accept =
        |trace: Vec<String>, why: &str| Decision { verdict: Verdict::Accept, decided_by: why.to_string(), trace };
    if !rs.enabled {
        return accept(trace, "firewall disabled");
    }
    let port = |e: &Endpoint| match e {
        Endpoint::Guest { vmid, index } => rs.ports.iter().find(|b| b.vmid == *vmid && b.index == *index),
        _ => None,
    };
    if p.from == Endpoint::Host {
        if rs.host_enabled
            && let Outcome::Final(v, why) = run(rs, "host-zone-out", p, &mut trace, 0)
        {
            return Decision { verdict: v, decided_by: why, trace };
        }
        return accept(trace, "host output accepted");
    }
    if let Some(b) = port(&p.from)
        && let Outcome::Final(v, why) = run(rs, &b.out_chain, p, &mut trace, 0)
    {
        return Decision { verdict: v, decided_by: why, trace };
    }
    if p.from == Endpoint::Routed || p.to == Endpoint::Routed {
        // Routed: the host zone's FORWARD rules. A guest's inbound chain is not applied to
        // traffic the node routes to it (it leaves through the bridge's local output path).
        if rs.host_enabled
            && let Outcome::Final(v, why) = run(rs, "host-zone-forward", p, &mut trace, 0)
        {
            return Decision { verdict: v, decided_by: why, trace };
        }
        return accept(trace, "routed: forward accepted");
    }
    if p.to == Endpoint::Host {
        if rs.host_enabled
            && let Outcome::Final(v, why) = run(rs, "host-zone-in", p, &mut trace, 0)
        {
            return Decision { verdict: v, decided_by: why, trace };
        }
        return accept(trace, "host input accepted");
    }
    if let Some(b) = port(&p.to)
        && let Outcome::Final(v, why) = run(rs, &b.in_chain, p, &mut trace, 0)
    {
        return Decision { verdict: v, decided_by: why, trace };
    }
    accept(trace, "forwarded: no firewalled port decides")
}
