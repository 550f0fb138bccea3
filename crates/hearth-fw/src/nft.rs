//! Printing a [`Ruleset`] as one nft script: a single transaction that (re)creates Hearth's
//! `inet` and `bridge` tables and touches nothing else in the ruleset.

use std::fmt::Write;

use hearth_core::firewall::AddrItem;

use crate::TABLE;
use crate::ir::{Action, Family, IrRule, Match, Ruleset};

fn addr_expr(items: &[AddrItem]) -> String {
    if items.len() == 1 {
        items[0].to_string()
    } else {
        format!("{{ {} }}", items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
    }
}

fn ipkw(f: Family) -> &'static str {
    match f {
        Family::V4 => "ip",
        Family::V6 => "ip6",
    }
}

/// The dynamic set of [`Match::RateOver`] meters.
fn meter_set(f: Family) -> &'static str {
    match f {
        Family::V4 => "synflood-v4",
        Family::V6 => "synflood-v6",
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace(['"', '\\'], ""))
}

fn rule_text(r: &IrRule, log_group: u16) -> String {
    let mut s = String::new();
    // Address and ICMP matches imply their IP version (and ICMP its protocol): the family and
    // protocol matches they make redundant are left out of the text.
    let implies_family = r.matches.iter().any(|m| {
        matches!(
            m,
            Match::Addr { .. }
                | Match::NotAddr { .. }
                | Match::Set { .. }
                | Match::Icmp { .. }
                | Match::IcmpAny { .. }
                | Match::RateOver { .. }
        )
    });
    let implies_icmp = r.matches.iter().any(|m| matches!(m, Match::Icmp { .. } | Match::IcmpAny { .. }));
    for m in &r.matches {
        let part = match m {
            Match::Family(_) if implies_family => continue,
            Match::L4Proto(1 | 58) if implies_icmp => continue,
            Match::Family(Family::V4) => "meta nfproto ipv4".to_string(),
            Match::Family(Family::V6) => "meta nfproto ipv6".to_string(),
            Match::NotAddr { source, family, items } => {
                format!("{} {} != {}", ipkw(*family), if *source { "saddr" } else { "daddr" }, addr_expr(items))
            }
            Match::IcmpAny { family, kinds } => {
                let kw = if *family == Family::V4 { "icmp" } else { "icmpv6" };
                match (kinds.first(), kinds.last()) {
                    (Some(a), Some(b)) if a != b => format!("{kw} type {a}-{b}"),
                    (Some(a), _) => format!("{kw} type {a}"),
                    _ => continue,
                }
            }
            Match::Addr { source, family, items } => {
                format!("{} {} {}", ipkw(*family), if *source { "saddr" } else { "daddr" }, addr_expr(items))
            }
            Match::Set { source, family, name, negate } => format!(
                "{} {} {}@{}",
                ipkw(*family),
                if *source { "saddr" } else { "daddr" },
                if *negate { "!= " } else { "" },
                name
            ),
            Match::L4Proto(p) => format!("meta l4proto {p}"),
            Match::DPort(p) => format!("th dport {}", p.to_nft()),
            Match::SPort(p) => format!("th sport {}", p.to_nft()),
            Match::Icmp { family, kind, code } => {
                let kw = if *family == Family::V4 { "icmp" } else { "icmpv6" };
                match code {
                    Some(c) => format!("{kw} type {kind} {kw} code {c}"),
                    None => format!("{kw} type {kind}"),
                }
            }
            Match::TcpFlags { mask, value } => format!("tcp flags & 0x{mask:02x} == 0x{value:02x}"),
            Match::SourceBroadcast => "fib saddr type broadcast".to_string(),
            Match::RateOver { family, rate, burst } => format!(
                "update @{} {{ {} saddr limit rate over {rate}/second burst {burst} packets }}",
                meter_set(*family),
                ipkw(*family)
            ),
            Match::InIface(i) => format!("iifname {}", quote(i)),
            Match::OutIface(i) => format!("oifname {}", quote(i)),
        };
        s.push_str(&part);
        s.push(' ');
    }
    if let Some(prefix) = &r.log {
        let _ = write!(s, "log prefix {} group {log_group} ", quote(prefix));
    }
    s.push_str(&match &r.action {
        Action::Accept => "accept".to_string(),
        Action::Drop => "drop".to_string(),
        Action::Reject => "jump do-reject".to_string(),
        Action::Return => "return".to_string(),
        Action::Jump(c) => format!("jump {c}"),
    });
    s
}

impl Ruleset {
    /// The nft script that makes the kernel's Hearth tables exactly this ruleset. Each table is
    /// first declared (so the delete cannot fail when it is absent), deleted and recreated, all
    /// in the one transaction `nft -f` runs: the kernel switches atomically, with no moment
    /// without rules, and other tables are never touched.
    pub fn to_nft(&self) -> String {
        let mut s = String::new();
        for fam in ["inet", "bridge"] {
            let _ = writeln!(s, "table {fam} {TABLE}\ndelete table {fam} {TABLE}");
        }
        if !self.enabled {
            return s;
        }
        // Bridge table: port marks and MAC anti-spoofing.
        let _ = writeln!(s, "table bridge {TABLE} {{");
        let _ = writeln!(s, "\tmap port-in {{\n\t\ttype ifname : verdict");
        if !self.ports.is_empty() {
            let el: Vec<String> =
                self.ports.iter().map(|p| format!("{} : jump port{}-in", quote(&p.port), p.id)).collect();
            let _ = writeln!(s, "\t\telements = {{ {} }}", el.join(", "));
        }
        let _ = writeln!(s, "\t}}\n\tmap port-out {{\n\t\ttype ifname : verdict");
        if !self.ports.is_empty() {
            let el: Vec<String> =
                self.ports.iter().map(|p| format!("{} : jump port{}-out", quote(&p.port), p.id)).collect();
            let _ = writeln!(s, "\t\telements = {{ {} }}", el.join(", "));
        }
        let _ = writeln!(s, "\t}}");
        let _ = writeln!(
            s,
            "\tchain prerouting {{\n\t\ttype filter hook prerouting priority -200; policy accept;\n\t\tmeta mark set meta mark & 0x00007fff\n\t\tiifname vmap @port-in\n\t}}"
        );
        let _ = writeln!(
            s,
            "\tchain forward {{\n\t\ttype filter hook forward priority -10; policy accept;\n\t\tmeta mark set meta mark & 0xffff0000 | 0x00008000\n\t\toifname vmap @port-out\n\t}}"
        );
        for p in &self.ports {
            let _ = writeln!(s, "\tchain port{}-in {{", p.id);
            if let Some(mac) = &p.mac {
                let _ = writeln!(s, "\t\tether saddr != {mac} drop");
                let _ = writeln!(s, "\t\tether type arp arp saddr ether != {mac} drop");
            }
            let _ = writeln!(s, "\t\tmeta mark set meta mark | 0x{:08x}\n\t}}", p.id << 16);
            let _ = writeln!(s, "\tchain port{}-out {{\n\t\tmeta mark set meta mark | 0x{:08x}\n\t}}", p.id, p.id);
        }
        let _ = writeln!(s, "}}");

        // inet table: conntrack, host zone, guest chains.
        let _ = writeln!(s, "table inet {TABLE} {{");
        for (name, set) in &self.sets {
            let ty = if set.family == Family::V4 { "ipv4_addr" } else { "ipv6_addr" };
            let _ = writeln!(s, "\tset {name} {{\n\t\ttype {ty}\n\t\tflags interval\n\t\tauto-merge");
            if !set.elements.is_empty() {
                let el: Vec<String> = set.elements.iter().map(ToString::to_string).collect();
                let _ = writeln!(s, "\t\telements = {{ {} }}", el.join(", "));
            }
            let _ = writeln!(s, "\t}}");
        }
        let meters = self
            .chains
            .values()
            .flat_map(|c| c.rules.iter())
            .any(|r| r.matches.iter().any(|m| matches!(m, Match::RateOver { .. })));
        if meters {
            for (f, ty) in [(Family::V4, "ipv4_addr"), (Family::V6, "ipv6_addr")] {
                let _ = writeln!(
                    s,
                    "\tset {} {{\n\t\ttype {ty}\n\t\tflags dynamic,timeout\n\t\ttimeout 60s\n\t\tsize 65535\n\t}}",
                    meter_set(f)
                );
            }
        }
        let _ = writeln!(s, "\tmap guest-out {{\n\t\ttype mark : verdict");
        if !self.ports.is_empty() {
            let el: Vec<String> =
                self.ports.iter().map(|p| format!("0x{:08x} : jump {}", p.id << 16, p.out_chain)).collect();
            let _ = writeln!(s, "\t\telements = {{ {} }}", el.join(", "));
        }
        let _ = writeln!(s, "\t}}\n\tmap guest-in {{\n\t\ttype mark : verdict");
        if !self.ports.is_empty() {
            let el: Vec<String> = self.ports.iter().map(|p| format!("0x{:08x} : jump {}", p.id, p.in_chain)).collect();
            let _ = writeln!(s, "\t\telements = {{ {} }}", el.join(", "));
        }
        let _ = writeln!(s, "\t}}");
        let _ = writeln!(
            s,
            "\tchain do-reject {{\n\t\tmeta l4proto tcp reject with tcp reset\n\t\tmeta l4proto udp reject with icmpx type port-unreachable\n\t\treject with icmpx type host-unreachable\n\t}}"
        );
        let host_in = if self.host_enabled { "\t\tjump host-zone-in\n" } else { "" };
        let host_out = if self.host_enabled { "\t\tjump host-zone-out\n" } else { "" };
        let _ = write!(
            s,
            "\tchain input {{\n\t\ttype filter hook input priority filter; policy accept;\n\t\tiif lo accept\n\t\tct state established,related accept\n\t\tct state invalid drop\n\t\tmeta mark & 0xffff0000 vmap @guest-out\n{host_in}\t}}\n"
        );
        let _ = write!(
            s,
            "\tchain output {{\n\t\ttype filter hook output priority filter; policy accept;\n\t\toif lo accept\n\t\tct state established,related accept\n{host_out}\t}}\n"
        );
        // Bit 15 marks bridged frames: routed traffic (bit clear) goes through the host zone's
        // FORWARD rules, bridged traffic through the guest chains only.
        let host_fwd =
            if self.host_enabled { "\t\tmeta mark & 0x00008000 == 0x00000000 jump host-zone-forward\n" } else { "" };
        let _ = writeln!(
            s,
            "\tchain forward {{\n\t\ttype filter hook forward priority filter; policy accept;\n\t\tct state established,related accept\n\t\tct state invalid drop\n\t\tmeta mark & 0xffff0000 vmap @guest-out\n{host_fwd}\t\tmeta mark & 0x00007fff vmap @guest-in\n\t}}"
        );
        for (name, chain) in &self.chains {
            let _ = writeln!(s, "\tchain {name} {{");
            for r in &chain.rules {
                let _ = writeln!(s, "\t\t{}", rule_text(r, self.log_group));
            }
            let _ = writeln!(s, "\t}}");
        }
        let _ = writeln!(s, "}}");
        s
    }
}

impl Ruleset {
    /// The script that turns the kernel's tables from `old` (applied before) into this ruleset
    /// by rewriting only the chains and sets that differ — one `flush` and the new contents each,
    /// in one transaction — or `None` when more than that changed (other chains, sets or ports,
    /// the switches) and the whole ruleset must be loaded again. An empty script means nothing
    /// changed. A rule edit on one guest of a thousand so costs the kernel one chain.
    pub fn delta_nft(&self, old: &Ruleset) -> Option<String> {
        let same_shape = self.enabled == old.enabled
            && self.host_enabled == old.host_enabled
            && self.log_group == old.log_group
            && self.ports == old.ports
            && self.chains.keys().eq(old.chains.keys())
            && self.sets.len() == old.sets.len()
            && self.sets.iter().zip(&old.sets).all(|((a, x), (b, y))| a == b && x.family == y.family);
        if !same_shape {
            return None;
        }
        if !self.enabled {
            return Some(String::new());
        }
        let mut s = String::new();
        for (name, set) in &self.sets {
            if old.sets.get(name) != Some(set) {
                let _ = writeln!(s, "flush set inet {TABLE} {name}");
                if !set.elements.is_empty() {
                    let el: Vec<String> = set.elements.iter().map(ToString::to_string).collect();
                    let _ = writeln!(s, "add element inet {TABLE} {name} {{ {} }}", el.join(", "));
                }
            }
        }
        for (name, chain) in &self.chains {
            if old.chains.get(name) != Some(chain) {
                let _ = writeln!(s, "flush chain inet {TABLE} {name}");
                for r in &chain.rules {
                    let _ = writeln!(s, "add rule inet {TABLE} {name} {}", rule_text(r, self.log_group));
                }
            }
        }
        Some(s)
    }
}
