//! From the model to the intermediate ruleset: validation of every configuration, IP sets
//! (with their `nomatch` twins and the per-NIC `ipfilter-netN` sets), macro expansion per IP
//! version, security groups inlined where they are used, guest option rules (DHCP, NDP, RA,
//! ipfilter) and policies.

use std::net::{IpAddr, Ipv6Addr};

use hearth_core::firewall::{
    AddrItem, AddrSpec, FirewallConfig, FirewallError, IpNet, Level, PortSpec, RefScope, Rule, RuleType, Verdict,
    macros, port,
};

use crate::ir::{Action, Chain, Family, IrRule, Match, PortBinding, Ruleset, SetDef};
use crate::{FirewallInput, GuestFirewall};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("{what}: {source}")]
    Config { what: String, source: FirewallError },
    #[error("too many firewalled guest ports ({0}, at most 32767)")]
    TooManyPorts(usize),
}

/// Management ports the host always accepts from the `management` IP set (as Proxmox does):
/// SSH, SPICE proxy, VNC websockets, the API.
pub const MANAGEMENT_PORTS: &[(u16, u16)] = &[(22, 22), (3128, 3128), (5900, 5999), (8006, 8006)];

/// Firewalled guest ports one ruleset can hold: a port's id takes 15 bits of the packet mark.
pub const MAX_PORTS: usize = 0x7fff;

/// Whose configuration a rule or set belongs to.
#[derive(Clone, Copy, Debug)]
struct Owner<'a> {
    level: Level,
    vmid: u32,
    config: &'a FirewallConfig,
    dc: &'a FirewallConfig,
}

impl Owner<'_> {
    fn set_prefix(&self, level: Level, name: &str) -> String {
        match level {
            Level::Guest => format!("g{}-{name}", self.vmid),
            _ => format!("dc-{name}"),
        }
    }

    fn what(&self) -> String {
        match self.level {
            Level::Cluster => "cluster".to_string(),
            Level::Host => "host".to_string(),
            Level::Guest => format!("guest {}", self.vmid),
        }
    }
}

/// Matches of ICMP (or ICMPv6) types, one per contiguous run of `kinds` (sorted): a run prints
/// as a range, where a list would cost the kernel an anonymous set per rule.
fn icmp_runs(f: Family, kinds: &[u8]) -> Vec<Vec<Match>> {
    let proto = if f == Family::V4 { 1 } else { 58 };
    let mut runs: Vec<Vec<u8>> = Vec::new();
    for &k in kinds {
        match runs.last_mut() {
            Some(run) if run.last().is_some_and(|l| l + 1 == k) => run.push(k),
            _ => runs.push(vec![k]),
        }
    }
    runs.into_iter()
        .map(|kinds| vec![Match::Family(f), Match::L4Proto(proto), Match::IcmpAny { family: f, kinds }])
        .collect()
}

/// Sets at most this big that only one guest uses are written into its rules.
const INLINE_SET: usize = 32;

/// Simplifies the compiled rules without changing a single decision: matches against empty
/// sets go (a rule that needs a member of an empty set can never match), small guest-owned
/// sets are written inline, unused sets are dropped, and a rule compiled once per IP version
/// with nothing version-specific becomes one rule.
fn optimize(rs: &mut Ruleset) {
    let sets = rs.sets.clone();
    for chain in rs.chains.values_mut() {
        let mut rules = Vec::with_capacity(chain.rules.len());
        'rule: for mut r in std::mem::take(&mut chain.rules) {
            let mut out = Vec::with_capacity(r.matches.len());
            for m in r.matches {
                match m {
                    Match::Set { source, family, name, negate } => {
                        let elements = sets.get(&name).map(|s| s.elements.clone()).unwrap_or_default();
                        if elements.is_empty() {
                            if !negate {
                                continue 'rule;
                            }
                            out.push(Match::Family(family));
                        } else if name.starts_with('g') && elements.len() <= INLINE_SET {
                            out.push(if negate {
                                Match::NotAddr { source, family, items: elements }
                            } else {
                                Match::Addr { source, family, items: elements }
                            });
                        } else {
                            out.push(Match::Set { source, family, name, negate });
                        }
                    }
                    m => out.push(m),
                }
            }
            out.dedup();
            r.matches = out;
            rules.push(r);
        }
        // One rule for both IP versions where only the version differs.
        let mut merged: Vec<IrRule> = Vec::with_capacity(rules.len());
        for r in rules {
            let specific = |r: &IrRule| {
                r.matches.iter().any(|m| {
                    matches!(
                        m,
                        Match::Addr { .. }
                            | Match::NotAddr { .. }
                            | Match::Set { .. }
                            | Match::Icmp { .. }
                            | Match::IcmpAny { .. }
                    )
                })
            };
            let without = |r: &IrRule| -> Vec<Match> {
                r.matches.iter().filter(|m| !matches!(m, Match::Family(_))).cloned().collect()
            };
            if let Some(prev) = merged.last_mut()
                && prev.matches.contains(&Match::Family(Family::V4))
                && r.matches.contains(&Match::Family(Family::V6))
                && !specific(prev)
                && !specific(&r)
                && prev.action == r.action
                && prev.log == r.log
                && prev.origin == r.origin
                && without(prev) == without(&r)
            {
                prev.matches = without(&r);
                continue;
            }
            merged.push(r);
        }
        chain.rules = merged;
    }
    let used: std::collections::BTreeSet<String> = rs
        .chains
        .values()
        .flat_map(|c| c.rules.iter())
        .flat_map(|r| r.matches.iter())
        .filter_map(|m| if let Match::Set { name, .. } = m { Some(name.clone()) } else { None })
        .collect();
    rs.sets.retain(|name, _| used.contains(name));
}

fn ip_family(ip: &IpAddr) -> Family {
    if ip.is_ipv6() { Family::V6 } else { Family::V4 }
}

/// The EUI-64 link-local address of a MAC (`fe80::…`), an implicit ipfilter member.
pub fn link_local(mac: &str) -> Option<IpNet> {
    let b: Vec<u8> = mac.split(':').map(|x| u8::from_str_radix(x, 16)).collect::<Result<_, _>>().ok()?;
    if b.len() != 6 {
        return None;
    }
    let seg = |hi: u8, lo: u8| (u16::from(hi) << 8) | u16::from(lo);
    let addr = Ipv6Addr::new(0xfe80, 0, 0, 0, seg(b[0] ^ 2, b[1]), seg(b[2], 0xff), seg(0xfe, b[3]), seg(b[4], b[5]));
    Some(IpNet { addr: IpAddr::V6(addr), prefix: 128 })
}

struct Compiler<'a> {
    input: &'a FirewallInput,
    rs: Ruleset,
}

impl<'a> Compiler<'a> {
    fn add_set(&mut self, prefix: &str, entries: &[(AddrItem, bool)]) {
        for f in [Family::V4, Family::V6] {
            let sfx = if f == Family::V4 { "v4" } else { "v6" };
            let pick = |nomatch: bool| -> Vec<AddrItem> {
                entries
                    .iter()
                    .filter(|(i, n)| *n == nomatch && i.is_v6() == (f == Family::V6))
                    .map(|(i, _)| *i)
                    .collect()
            };
            self.rs.sets.insert(format!("{prefix}-{sfx}"), SetDef { family: f, elements: pick(false) });
            self.rs.sets.insert(format!("{prefix}-{sfx}-nomatch"), SetDef { family: f, elements: pick(true) });
        }
    }

    fn ipset_entries(
        owner: &Owner<'_>,
        name: &str,
        set: &hearth_core::firewall::IpSet,
    ) -> Result<Vec<(AddrItem, bool)>, FirewallError> {
        let mut out = Vec::new();
        for e in &set.entries {
            let net = match IpNet::parse(&e.cidr) {
                Some(n) => n,
                None => {
                    let alias = owner
                        .config
                        .find_alias_scoped(Some(owner.dc), RefScope::Any, &e.cidr.to_ascii_lowercase())
                        .ok_or_else(|| FirewallError::Invalid {
                            key: format!("ipset {name}"),
                            message: format!("alias '{}' does not exist", e.cidr),
                        })?;
                    IpNet::parse(&alias.cidr).ok_or_else(|| FirewallError::Invalid {
                        key: format!("alias {}", e.cidr),
                        message: format!("invalid address '{}'", alias.cidr),
                    })?
                }
            };
            out.push((AddrItem::Net(net), e.nomatch));
        }
        Ok(out)
    }

    fn owner_sets(&mut self, owner: Owner<'_>) -> Result<(), FirewallError> {
        for (name, set) in &owner.config.ipsets {
            if owner.level == Level::Guest && name.starts_with("ipfilter-net") {
                continue;
            }
            let entries = Self::ipset_entries(&owner, name, set)?;
            self.add_set(&owner.set_prefix(owner.level, name), &entries);
        }
        Ok(())
    }

    /// Address matches for one family, or `None` when the spec cannot match that family.
    fn addr_matches(owner: &Owner<'_>, spec: &AddrSpec, source: bool, f: Family) -> Option<Vec<Match>> {
        match spec {
            AddrSpec::List(items) => {
                let v: Vec<AddrItem> = items.iter().copied().filter(|i| i.is_v6() == (f == Family::V6)).collect();
                if v.is_empty() {
                    return None;
                }
                Some(vec![Match::Addr { source, family: f, items: v }])
            }
            AddrSpec::Alias { scope, name } => {
                let alias = owner.config.find_alias_scoped(Some(owner.dc), *scope, name)?;
                let net = IpNet::parse(&alias.cidr)?;
                if ip_family(&net.addr) != f {
                    return None;
                }
                Some(vec![Match::Addr { source, family: f, items: vec![AddrItem::Net(net)] }])
            }
            AddrSpec::IpSet { scope, name } => {
                let (level, _) = owner.config.find_ipset(owner.level, Some(owner.dc), *scope, name)?;
                let base = owner.set_prefix(level, name);
                let sfx = if f == Family::V4 { "v4" } else { "v6" };
                Some(vec![
                    Match::Set { source, family: f, name: format!("{base}-{sfx}"), negate: false },
                    Match::Set { source, family: f, name: format!("{base}-{sfx}-nomatch"), negate: true },
                ])
            }
        }
    }

    /// One model rule to its IR rules (one per IP version and macro entry).
    fn rule_to_ir(
        owner: &Owner<'_>,
        rule: &Rule,
        idx: usize,
        chain: &str,
        iface: Option<Match>,
        accept: Action,
        log_group_prefix: &str,
    ) -> Result<Vec<IrRule>, FirewallError> {
        let parsed = rule.validate()?;
        let verdict = rule.verdict().expect("group rules are expanded before this");
        let action = match verdict {
            Verdict::Accept => accept,
            Verdict::Drop => Action::Drop,
            Verdict::Reject => Action::Reject,
        };
        let origin = format!("{} rule {idx}: {}", owner.what(), rule.to_line());
        let log = rule
            .log
            .as_deref()
            .filter(|l| *l != "nolog")
            .map(|_| format!("{log_group_prefix} {idx} {chain} {}: ", verdict.as_str()));
        let mac = rule.macro_name.as_deref().and_then(macros::find);
        let mut out = Vec::new();
        for f in [Family::V4, Family::V6] {
            if mac.is_some_and(|m| m.ip_version == 6) && f == Family::V4 {
                continue;
            }
            let entries: Vec<(Option<u8>, Option<String>, Option<String>)> = match mac {
                Some(m) => {
                    let list = if f == Family::V6 { m.v6_entries.unwrap_or(m.entries) } else { m.entries };
                    list.iter()
                        .map(|e| {
                            (
                                port::protocol_number(e.proto),
                                e.dport.map(str::to_string).or_else(|| rule.dport.clone()),
                                e.sport.map(str::to_string).or_else(|| rule.sport.clone()),
                            )
                        })
                        .collect()
                }
                None => vec![(parsed.proto, rule.dport.clone(), rule.sport.clone())],
            };
            let mut base = vec![Match::Family(f)];
            if let Some(i) = &iface {
                base.push(i.clone());
            }
            let mut ok = true;
            for (src, spec) in [(true, &parsed.source), (false, &parsed.dest)] {
                if let Some(spec) = spec {
                    match Self::addr_matches(owner, spec, src, f) {
                        Some(m) => base.extend(m),
                        None => ok = false,
                    }
                }
            }
            if !ok {
                continue;
            }
            for (proto, dport, sport) in entries {
                let mut m = base.clone();
                match proto {
                    Some(1) if f == Family::V6 => continue,
                    Some(58) if f == Family::V4 => continue,
                    _ => {}
                }
                if let Some(p) = proto {
                    m.push(Match::L4Proto(p));
                }
                let icmp_proto = matches!(proto, Some(1 | 58));
                if icmp_proto {
                    let t = match (&parsed.icmp, &dport) {
                        (Some(t), _) if mac.is_none() => Some(*t),
                        (_, Some(name)) if mac.is_some() => {
                            if f == Family::V4 {
                                port::icmp_type(name)
                            } else {
                                port::icmpv6_type(name)
                            }
                        }
                        _ => None,
                    };
                    if let Some((kind, code)) = t
                        && kind != 255
                    {
                        m.push(Match::Icmp { family: f, kind, code });
                    }
                } else {
                    if let Some(d) = &sport {
                        m.push(Match::SPort(PortSpec::parse("sport", d)?));
                    }
                    if let Some(d) = &dport {
                        m.push(Match::DPort(PortSpec::parse("dport", d)?));
                    }
                }
                out.push(IrRule { matches: m, action: action.clone(), log: log.clone(), origin: origin.clone() });
            }
        }
        Ok(out)
    }

    /// The IR rules of a rule list in one direction, with GROUP rules inlined.
    fn rules_for(
        &self,
        owner: &Owner<'_>,
        rules: &[Rule],
        dir: RuleType,
        chain: &str,
        nic: Option<u32>,
        accept: Action,
    ) -> Result<Vec<IrRule>, FirewallError> {
        let mut out = Vec::new();
        let log_id = owner.vmid.to_string();
        for (idx, rule) in rules.iter().enumerate() {
            if !rule.enable {
                continue;
            }
            // Guests: `-i netN` limits the rule to that NIC's chains. Host: an interface match.
            let mut iface = None;
            if let Some(i) = &rule.iface {
                match nic {
                    Some(n) => {
                        if *i != format!("net{n}") {
                            continue;
                        }
                    }
                    None => {
                        iface = Some(if dir == RuleType::Out {
                            Match::OutIface(i.clone())
                        } else {
                            Match::InIface(i.clone())
                        })
                    }
                }
            }
            if rule.kind == RuleType::Group {
                let g =
                    owner.dc.groups.get(&rule.action.to_ascii_lowercase()).ok_or_else(|| FirewallError::Invalid {
                        key: "action".into(),
                        message: format!("security group '{}' does not exist", rule.action),
                    })?;
                let gowner = Owner { level: Level::Cluster, vmid: owner.vmid, config: owner.dc, dc: owner.dc };
                for (gi, gr) in g.rules.iter().enumerate() {
                    if !gr.enable || gr.kind != dir {
                        continue;
                    }
                    let mut ir = Self::rule_to_ir(&gowner, gr, gi, chain, iface.clone(), accept.clone(), &log_id)?;
                    for r in &mut ir {
                        r.origin =
                            format!("{} rule {idx} → group {} rule {gi}: {}", owner.what(), rule.action, gr.to_line());
                    }
                    out.extend(ir);
                }
                continue;
            }
            if rule.kind != dir {
                continue;
            }
            out.extend(Self::rule_to_ir(owner, rule, idx, chain, iface, accept.clone(), &log_id)?);
        }
        Ok(out)
    }

    fn policy_rule(verdict: &str, accept: Action, chain: &str, vmid: u32, log_level: Option<&str>) -> IrRule {
        let action = match verdict {
            "DROP" => Action::Drop,
            "REJECT" => Action::Reject,
            _ => accept,
        };
        IrRule {
            matches: Vec::new(),
            action,
            log: log_level.filter(|l| *l != "nolog").map(|_| format!("{vmid} policy {chain} {verdict}: ")),
            origin: format!("{chain} policy {verdict}"),
        }
    }

    fn simple(matches: Vec<Match>, action: Action, origin: &str) -> IrRule {
        IrRule { matches, action, log: None, origin: origin.to_string() }
    }

    fn shared_in_chain(&mut self, name: &str, ndp: bool) {
        if self.rs.chains.contains_key(name) {
            return;
        }
        let mut rules = Vec::new();
        for m in icmp_runs(Family::V4, &[3, 4, 11]) {
            rules.push(Self::simple(m, Action::Accept, "essential ICMP"));
        }
        for m in icmp_runs(Family::V6, &[1, 2, 3, 4]) {
            rules.push(Self::simple(m, Action::Accept, "essential ICMPv6"));
        }
        if ndp {
            for m in icmp_runs(Family::V6, &[133, 134, 135, 136, 137]) {
                rules.push(Self::simple(m, Action::Accept, "option ndp"));
            }
        }
        self.rs.chains.insert(name.to_string(), Chain { rules });
    }

    fn host(&mut self) -> Result<(), CompileError> {
        let dc = &self.input.cluster;
        let host = &self.input.host;
        fn wrap(what: &'static str) -> impl Fn(FirewallError) -> CompileError {
            move |source| CompileError::Config { what: what.to_string(), source }
        }
        let cowner = Owner { level: Level::Cluster, vmid: 0, config: dc, dc };
        let howner = Owner { level: Level::Host, vmid: 0, config: host, dc };
        for (name, dir) in [("in", RuleType::In), ("out", RuleType::Out), ("forward", RuleType::Forward)] {
            let accept = Action::Accept;
            let c = self
                .rules_for(&cowner, &dc.rules, dir, &format!("cluster-{name}"), None, accept.clone())
                .map_err(wrap("cluster"))?;
            let h = self
                .rules_for(&howner, &host.rules, dir, &format!("host-{name}"), None, accept)
                .map_err(wrap("host"))?;
            self.rs.chains.insert(format!("cluster-{name}"), Chain { rules: c });
            self.rs.chains.insert(format!("host-{name}"), Chain { rules: h });
        }
        // The host zone: defaults, host rules (which win), cluster rules, policy.
        let mut zin = Vec::new();
        if dc.ipsets.contains_key("blacklist") {
            for f in [Family::V4, Family::V6] {
                let sfx = if f == Family::V4 { "v4" } else { "v6" };
                zin.push(Self::simple(
                    vec![
                        Match::Set { source: true, family: f, name: format!("dc-blacklist-{sfx}"), negate: false },
                        Match::Set {
                            source: true,
                            family: f,
                            name: format!("dc-blacklist-{sfx}-nomatch"),
                            negate: true,
                        },
                    ],
                    Action::Drop,
                    "ipset blacklist",
                ));
            }
        }
        for m in icmp_runs(Family::V4, &[3, 4, 11]) {
            zin.push(Self::simple(m, Action::Accept, "essential ICMP"));
        }
        for m in icmp_runs(Family::V6, &[1, 2, 3, 4, 133, 134, 135, 136]) {
            zin.push(Self::simple(m, Action::Accept, "essential ICMPv6"));
        }
        zin.push(Self::simple(vec![Match::L4Proto(2)], Action::Accept, "IGMP"));
        if dc.ipsets.contains_key("management") {
            for f in [Family::V4, Family::V6] {
                let sfx = if f == Family::V4 { "v4" } else { "v6" };
                zin.push(Self::simple(
                    vec![
                        Match::Set { source: true, family: f, name: format!("dc-management-{sfx}"), negate: false },
                        Match::Set {
                            source: true,
                            family: f,
                            name: format!("dc-management-{sfx}-nomatch"),
                            negate: true,
                        },
                        Match::L4Proto(6),
                        Match::DPort(PortSpec(MANAGEMENT_PORTS.to_vec())),
                    ],
                    Action::Accept,
                    "ipset management: management ports",
                ));
            }
        }
        // Host options, as pve-firewall's option chains: smurfs (broadcast or multicast sources)
        // and TCP flag combinations no connection uses, before the host's own rules.
        if host.flag(Level::Host, "nosmurfs") {
            let log = host
                .option(Level::Host, "smurf_log_level")
                .filter(|l| *l != "nolog")
                .map(|_| "0 smurfs block-smurfs DROP: ".to_string());
            let v4 = |m: Vec<Match>| [vec![Match::Family(Family::V4)], m].concat();
            let any = AddrItem::Net(IpNet { addr: IpAddr::from([0, 0, 0, 0]), prefix: 32 });
            let multicast = AddrItem::Net(IpNet { addr: IpAddr::from([224, 0, 0, 0]), prefix: 4 });
            let smurfs = vec![
                Self::simple(
                    v4(vec![Match::Addr { source: true, family: Family::V4, items: vec![any] }]),
                    Action::Return,
                    "nosmurfs: unspecified source (DHCP)",
                ),
                IrRule {
                    log: log.clone(),
                    ..Self::simple(v4(vec![Match::SourceBroadcast]), Action::Drop, "nosmurfs: broadcast source")
                },
                IrRule {
                    log,
                    ..Self::simple(
                        v4(vec![Match::Addr { source: true, family: Family::V4, items: vec![multicast] }]),
                        Action::Drop,
                        "nosmurfs: multicast source",
                    )
                },
            ];
            self.rs.chains.insert("block-smurfs".into(), Chain { rules: smurfs });
            zin.push(Self::simple(vec![Match::Family(Family::V4)], Action::Jump("block-smurfs".into()), "nosmurfs"));
        }
        if host.flag(Level::Host, "tcpflags") {
            let log = host
                .option(Level::Host, "tcp_flags_log_level")
                .filter(|l| *l != "nolog")
                .map(|_| "0 tcpflags block-invalid-tcp DROP: ".to_string());
            let rule = |extra: Vec<Match>, mask: u8, value: u8, why: &str| IrRule {
                log: log.clone(),
                ..Self::simple(
                    [vec![Match::L4Proto(6)], extra, vec![Match::TcpFlags { mask, value }]].concat(),
                    Action::Drop,
                    &format!("tcpflags: {why}"),
                )
            };
            let invalid = vec![
                rule(Vec::new(), 0x3f, 0x29, "FIN,PSH,URG"),
                rule(Vec::new(), 0x3f, 0x00, "no flags"),
                rule(Vec::new(), 0x06, 0x06, "SYN,RST"),
                rule(Vec::new(), 0x03, 0x03, "SYN,FIN"),
                rule(vec![Match::SPort(PortSpec(vec![(0, 0)]))], 0x17, 0x02, "SYN from source port 0"),
            ];
            self.rs.chains.insert("block-invalid-tcp".into(), Chain { rules: invalid });
            zin.push(Self::simple(vec![Match::L4Proto(6)], Action::Jump("block-invalid-tcp".into()), "tcpflags"));
        }
        if host.flag(Level::Host, "protection_synflood") {
            let num = |k: &str, d: u32| host.option(Level::Host, k).and_then(|v| v.parse().ok()).unwrap_or(d);
            let (rate, burst) = (num("protection_synflood_rate", 200), num("protection_synflood_burst", 1000));
            let rules = [Family::V4, Family::V6]
                .into_iter()
                .map(|f| {
                    Self::simple(
                        vec![Match::Family(f), Match::RateOver { family: f, rate, burst }],
                        Action::Drop,
                        "protection_synflood: new connections from this source over the rate",
                    )
                })
                .collect();
            self.rs.chains.insert("block-synflood".into(), Chain { rules });
            zin.push(Self::simple(
                vec![Match::L4Proto(6), Match::TcpFlags { mask: 0x17, value: 0x02 }],
                Action::Jump("block-synflood".into()),
                "protection_synflood",
            ));
        }
        // Each direction ends the same way: host rules, cluster rules, then the cluster's
        // policy. FORWARD is traffic the node routes (not bridged); its policy is ACCEPT or DROP.
        for (dir, chain, mut rules, default) in [
            ("in", "host-zone-in", zin, "DROP"),
            ("out", "host-zone-out", Vec::new(), "ACCEPT"),
            ("forward", "host-zone-forward", Vec::new(), "ACCEPT"),
        ] {
            rules.push(Self::simple(Vec::new(), Action::Jump(format!("host-{dir}")), "host rules"));
            rules.push(Self::simple(Vec::new(), Action::Jump(format!("cluster-{dir}")), "cluster rules"));
            rules.push(Self::policy_rule(
                dc.option(Level::Cluster, &format!("policy_{dir}")).unwrap_or(default),
                Action::Accept,
                chain,
                0,
                host.option(Level::Host, &format!("log_level_{dir}")),
            ));
            self.rs.chains.insert(chain.into(), Chain { rules });
        }
        Ok(())
    }

    fn guest(&mut self, g: &GuestFirewall) -> Result<(), CompileError> {
        let dc = &self.input.cluster;
        let what = format!("guest {}", g.vmid);
        let wrap = |source| CompileError::Config { what: what.clone(), source };
        let owner = Owner { level: Level::Guest, vmid: g.vmid, config: &g.config, dc };
        self.owner_sets(owner).map_err(wrap)?;
        if !g.config.flag(Level::Guest, "enable") {
            return Ok(());
        }
        let opt = |k: &str| g.config.flag(Level::Guest, k);
        for nic in g.nics.iter().filter(|n| n.firewall) {
            let out_name = format!("guest{}-net{}-out", g.vmid, nic.index);
            let in_name = format!("guest{}-net{}-in", g.vmid, nic.index);
            let mut out = Vec::new();
            let mut inn = Vec::new();
            if dc.ipsets.contains_key("blacklist") {
                for f in [Family::V4, Family::V6] {
                    let sfx = if f == Family::V4 { "v4" } else { "v6" };
                    inn.push(Self::simple(
                        vec![
                            Match::Set { source: true, family: f, name: format!("dc-blacklist-{sfx}"), negate: false },
                            Match::Set {
                                source: true,
                                family: f,
                                name: format!("dc-blacklist-{sfx}-nomatch"),
                                negate: true,
                            },
                        ],
                        Action::Drop,
                        "ipset blacklist",
                    ));
                }
            }
            // Essential ICMP, and with `ndp` the neighbour discovery messages, are the same
            // for every guest: one shared chain each way, jumped to (its ACCEPTs are final).
            let base = if opt("ndp") { "guest-in-base-ndp" } else { "guest-in-base" };
            self.shared_in_chain(base, opt("ndp"));
            inn.push(Self::simple(Vec::new(), Action::Jump(base.to_string()), "essential ICMP"));
            if opt("dhcp") {
                let udp = |sp: u16, dp: u16, f: Family| {
                    vec![
                        Match::Family(f),
                        Match::L4Proto(17),
                        Match::SPort(PortSpec(vec![(sp, sp)])),
                        Match::DPort(PortSpec(vec![(dp, dp)])),
                    ]
                };
                out.push(Self::simple(udp(68, 67, Family::V4), Action::Return, "option dhcp"));
                out.push(Self::simple(udp(546, 547, Family::V6), Action::Return, "option dhcp"));
                inn.push(Self::simple(udp(67, 68, Family::V4), Action::Accept, "option dhcp"));
                inn.push(Self::simple(udp(547, 546, Family::V6), Action::Accept, "option dhcp"));
            }
            if opt("ndp") {
                for m in icmp_runs(Family::V6, &[133, 135, 136]) {
                    out.push(Self::simple(m, Action::Return, "option ndp"));
                }
            }
            let radv = if opt("radv") { Action::Return } else { Action::Drop };
            for m in icmp_runs(Family::V6, &[134, 137]) {
                out.push(Self::simple(m, radv.clone(), "option radv"));
            }
            // Anti-spoofing by source address: the NIC's ipfilter set, explicit or implied.
            let set_name = format!("ipfilter-net{}", nic.index);
            let explicit = g.config.ipsets.get(&set_name);
            if explicit.is_some() || opt("ipfilter") {
                let mut entries = match explicit {
                    Some(s) => Self::ipset_entries(&owner, &set_name, s).map_err(wrap)?,
                    None => Vec::new(),
                };
                entries.extend(nic.ips.iter().map(|n| (AddrItem::Net(*n), false)));
                if let Some(ll) = nic.mac.as_deref().and_then(link_local) {
                    entries.push((AddrItem::Net(ll), false));
                }
                let prefix = format!("g{}-{set_name}", g.vmid);
                self.add_set(&prefix, &entries);
                for f in [Family::V4, Family::V6] {
                    let sfx = if f == Family::V4 { "v4" } else { "v6" };
                    out.push(Self::simple(
                        vec![Match::Set { source: true, family: f, name: format!("{prefix}-{sfx}"), negate: true }],
                        Action::Drop,
                        "ipfilter: source not in the NIC's set",
                    ));
                    out.push(Self::simple(
                        vec![Match::Set {
                            source: true,
                            family: f,
                            name: format!("{prefix}-{sfx}-nomatch"),
                            negate: false,
                        }],
                        Action::Drop,
                        "ipfilter: source excluded (nomatch)",
                    ));
                }
            }
            out.extend(
                self.rules_for(&owner, &g.config.rules, RuleType::Out, &out_name, Some(nic.index), Action::Return)
                    .map_err(wrap)?,
            );
            inn.extend(
                self.rules_for(&owner, &g.config.rules, RuleType::In, &in_name, Some(nic.index), Action::Accept)
                    .map_err(wrap)?,
            );
            out.push(Self::policy_rule(
                g.config.option(Level::Guest, "policy_out").unwrap_or("ACCEPT"),
                Action::Return,
                &out_name,
                g.vmid,
                g.config.option(Level::Guest, "log_level_out"),
            ));
            inn.push(Self::policy_rule(
                g.config.option(Level::Guest, "policy_in").unwrap_or("DROP"),
                Action::Accept,
                &in_name,
                g.vmid,
                g.config.option(Level::Guest, "log_level_in"),
            ));
            self.rs.chains.insert(out_name.clone(), Chain { rules: out });
            self.rs.chains.insert(in_name.clone(), Chain { rules: inn });
            let mac = if opt("macfilter") { nic.mac.clone() } else { None };
            let id = self.rs.ports.len() as u32 + 1;
            self.rs.ports.push(PortBinding {
                vmid: g.vmid,
                index: nic.index,
                port: nic.port.clone(),
                id,
                mac,
                out_chain: out_name,
                in_chain: in_name,
            });
        }
        Ok(())
    }
}

/// Compiles the whole firewall. Every configuration is validated first; any error refuses the
/// whole compile, so a broken edit never reaches the kernel.
pub fn compile(input: &FirewallInput) -> Result<Ruleset, CompileError> {
    let dc = &input.cluster;
    let cfg_err = |what: String| move |source| CompileError::Config { what, source };
    dc.validate(Level::Cluster, None).map_err(cfg_err("cluster".into()))?;
    input.host.validate(Level::Host, Some(dc)).map_err(cfg_err("host".into()))?;
    for g in &input.guests {
        g.config.validate(Level::Guest, Some(dc)).map_err(cfg_err(format!("guest {}", g.vmid)))?;
    }
    let ports: usize = input.guests.iter().map(|g| g.nics.iter().filter(|n| n.firewall).count()).sum();
    if ports > MAX_PORTS {
        return Err(CompileError::TooManyPorts(ports));
    }
    let mut c = Compiler { input, rs: Ruleset::default() };
    c.rs.enabled = dc.flag(Level::Cluster, "enable");
    c.rs.host_enabled = c.rs.enabled && input.host.flag(Level::Host, "enable");
    let cowner = Owner { level: Level::Cluster, vmid: 0, config: dc, dc };
    c.owner_sets(cowner).map_err(cfg_err("cluster".into()))?;
    c.host()?;
    let mut guests: Vec<&GuestFirewall> = input.guests.iter().collect();
    guests.sort_by_key(|g| g.vmid);
    for g in guests {
        c.guest(g)?;
    }
    optimize(&mut c.rs);
    Ok(c.rs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;

    #[test]
    fn link_local_from_mac() {
        assert_eq!(link_local("bc:24:11:00:00:01").unwrap().to_string(), "fe80::be24:11ff:fe00:1");
    }
}
