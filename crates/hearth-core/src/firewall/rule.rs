//! One firewall rule: the fields of Proxmox's firewall API (`type action macro iface source dest
//! proto dport sport icmp-type log enable comment`), its `.fw` line form and its validation.

use serde::{Deserialize, Serialize};

use super::addr::AddrSpec;
use super::port::{PortSpec, icmp_type, icmpv6_type, protocol_number};
use super::{FirewallError, LOG_LEVELS, macros};

/// The rule's direction, or `group` for a security group reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleType {
    In,
    Out,
    Forward,
    Group,
}

impl RuleType {
    pub fn parse(s: &str) -> Option<RuleType> {
        match s.to_ascii_lowercase().as_str() {
            "in" => Some(RuleType::In),
            "out" => Some(RuleType::Out),
            "forward" => Some(RuleType::Forward),
            "group" => Some(RuleType::Group),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RuleType::In => "in",
            RuleType::Out => "out",
            RuleType::Forward => "forward",
            RuleType::Group => "group",
        }
    }
}

/// A verdict of a rule or policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    Accept,
    Drop,
    Reject,
}

impl Verdict {
    pub fn parse(s: &str) -> Option<Verdict> {
        match s {
            "ACCEPT" => Some(Verdict::Accept),
            "DROP" => Some(Verdict::Drop),
            "REJECT" => Some(Verdict::Reject),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accept => "ACCEPT",
            Verdict::Drop => "DROP",
            Verdict::Reject => "REJECT",
        }
    }
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// A rule as stored (TOML) and exchanged: validated strings, parsed again where compiled.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(rename = "type")]
    pub kind: RuleType,
    /// `ACCEPT`, `DROP`, `REJECT`, or for `group` rules the security group's name.
    pub action: String,
    #[serde(default, rename = "macro", skip_serializing_if = "Option::is_none")]
    pub macro_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dport: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sport: Option<String>,
    #[serde(default, rename = "icmp-type", skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// The parts of a rule the compiler and simulator use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedRule {
    pub source: Option<AddrSpec>,
    pub dest: Option<AddrSpec>,
    pub proto: Option<u8>,
    pub dport: Option<PortSpec>,
    pub sport: Option<PortSpec>,
    /// ICMP type/code from `-icmp-type` (for proto icmp or icmpv6).
    pub icmp: Option<(u8, Option<u8>)>,
}

fn invalid(key: &str, message: impl Into<String>) -> FirewallError {
    FirewallError::Invalid { key: key.to_string(), message: message.into() }
}

impl Rule {
    pub fn new(kind: RuleType, action: &str) -> Rule {
        Rule {
            kind,
            action: action.to_string(),
            macro_name: None,
            iface: None,
            source: None,
            dest: None,
            proto: None,
            dport: None,
            sport: None,
            icmp_type: None,
            log: None,
            enable: true,
            comment: None,
        }
    }

    /// Parses one `[RULES]` line: `[|]TYPE ACTION|MACRO(ACTION)|GROUPNAME [-opt value]… [# comment]`.
    pub fn parse_line(line: &str) -> Result<Rule, FirewallError> {
        let (body, comment) = match line.split_once('#') {
            Some((b, c)) => (b, Some(c.trim().to_string()).filter(|c| !c.is_empty())),
            None => (line, None),
        };
        let mut body = body.trim();
        let mut enable = true;
        if let Some(rest) = body.strip_prefix('|') {
            enable = false;
            body = rest.trim_start();
        }
        let mut words = body.split_whitespace();
        let t = words.next().ok_or_else(|| invalid("type", "empty rule"))?;
        let kind = RuleType::parse(t)
            .ok_or_else(|| invalid("type", format!("unknown rule type '{t}' (allowed: IN, OUT, FORWARD, GROUP)")))?;
        let a = words.next().ok_or_else(|| invalid("action", "missing action"))?;
        let mut rule = Rule::new(kind, a);
        rule.enable = enable;
        rule.comment = comment;
        if kind != RuleType::Group
            && let Some(open) = a.find('(')
        {
            let inner = a[open + 1..]
                .strip_suffix(')')
                .ok_or_else(|| invalid("action", format!("unable to parse action '{a}'")))?;
            rule.macro_name = Some(a[..open].to_string());
            rule.action = inner.to_string();
        }
        while let Some(opt) = words.next() {
            let name = opt.trim_start_matches('-');
            if name.len() == opt.len() || opt.len() - name.len() > 2 {
                return Err(invalid("rule", format!("unable to parse rule parameters: '{opt}'")));
            }
            let value =
                words.next().ok_or_else(|| invalid(name, format!("missing value for option '{opt}'")))?.to_string();
            let slot = match name {
                "i" | "iface" => &mut rule.iface,
                "p" | "proto" => &mut rule.proto,
                "dport" => &mut rule.dport,
                "sport" => &mut rule.sport,
                "source" => &mut rule.source,
                "dest" => &mut rule.dest,
                "log" => &mut rule.log,
                "icmp-type" => &mut rule.icmp_type,
                _ => return Err(invalid("rule", format!("unable to parse rule parameters: '{opt}'"))),
            };
            if kind == RuleType::Group && !matches!(name, "i" | "iface") {
                return Err(invalid(name, "only -i is allowed after GROUP"));
            }
            *slot = Some(value);
        }
        rule.validate()?;
        Ok(rule)
    }

    /// The `.fw` line, in the option order Proxmox writes.
    pub fn to_line(&self) -> String {
        let mut s = String::new();
        if !self.enable {
            s.push('|');
        }
        s.push_str(&self.kind.as_str().to_ascii_uppercase());
        s.push(' ');
        match &self.macro_name {
            Some(m) => s.push_str(&format!("{m}({})", self.action)),
            None => s.push_str(&self.action),
        }
        let opts: [(&str, &Option<String>); 8] = [
            ("-i", &self.iface),
            ("-source", &self.source),
            ("-dest", &self.dest),
            ("-p", &self.proto),
            ("-icmp-type", &self.icmp_type),
            ("-dport", &self.dport),
            ("-sport", &self.sport),
            ("-log", &self.log),
        ];
        for (k, v) in opts {
            if let Some(v) = v {
                s.push_str(&format!(" {k} {v}"));
            }
        }
        if let Some(c) = &self.comment {
            s.push_str(" # ");
            s.push_str(c);
        }
        s
    }

    /// The verdict of a non-group rule.
    pub fn verdict(&self) -> Option<Verdict> {
        if self.kind == RuleType::Group { None } else { Verdict::parse(&self.action) }
    }

    /// Checks every field on its own (references to IP sets, aliases and groups are checked
    /// against the configuration by [`super::FirewallConfig::validate`]).
    pub fn validate(&self) -> Result<ParsedRule, FirewallError> {
        if self.kind == RuleType::Group {
            if !super::valid_group_name(&self.action) {
                return Err(invalid("action", format!("invalid security group name '{}'", self.action)));
            }
            for (k, v) in [
                ("macro", &self.macro_name),
                ("source", &self.source),
                ("dest", &self.dest),
                ("proto", &self.proto),
                ("dport", &self.dport),
                ("sport", &self.sport),
                ("icmp-type", &self.icmp_type),
                ("log", &self.log),
            ] {
                if v.is_some() {
                    return Err(invalid(k, "not allowed in a group rule (only iface)"));
                }
            }
        } else if Verdict::parse(&self.action).is_none() {
            return Err(invalid("action", format!("unknown action '{}' (allowed: ACCEPT, DROP, REJECT)", self.action)));
        }
        if let Some(m) = &self.macro_name
            && macros::find(m).is_none()
        {
            return Err(invalid("macro", format!("unknown macro '{m}'")));
        }
        if let Some(i) = &self.iface
            && (i.is_empty() || i.len() > 15 || !i.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)))
        {
            return Err(invalid("iface", format!("invalid interface name '{i}'")));
        }
        if let Some(l) = &self.log
            && !LOG_LEVELS.contains(&l.as_str())
        {
            return Err(invalid("log", format!("invalid log level '{l}' (allowed: {})", LOG_LEVELS.join(", "))));
        }
        let source = self.source.as_deref().map(|s| AddrSpec::parse("source", s)).transpose()?;
        let dest = self.dest.as_deref().map(|s| AddrSpec::parse("dest", s)).transpose()?;
        if let (Some(AddrSpec::List(a)), Some(AddrSpec::List(b))) = (&source, &dest)
            && a[0].is_v6() != b[0].is_v6()
        {
            return Err(invalid("dest", "source and dest mix IPv4 and IPv6"));
        }
        let proto = match &self.proto {
            Some(p) => Some(protocol_number(p).ok_or_else(|| invalid("proto", format!("unknown protocol '{p}'")))?),
            None => None,
        };
        let ports_ok = matches!(proto, Some(6 | 17 | 33 | 132 | 136));
        if (self.dport.is_some() || self.sport.is_some()) && self.macro_name.is_none() && !ports_ok {
            let k = if self.dport.is_some() { "dport" } else { "sport" };
            return Err(invalid(k, "ports need -p tcp, udp, dccp, sctp or udplite"));
        }
        let dport = self.dport.as_deref().map(|s| PortSpec::parse("dport", s)).transpose()?;
        let sport = self.sport.as_deref().map(|s| PortSpec::parse("sport", s)).transpose()?;
        let icmp = match &self.icmp_type {
            Some(t) => {
                let by_name = match proto {
                    Some(1) => icmp_type(t),
                    Some(58) => icmpv6_type(t),
                    _ => return Err(invalid("icmp-type", "needs -p icmp or -p icmpv6")),
                };
                let v = if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
                    t.parse::<u8>().ok().map(|n| (n, None))
                } else {
                    by_name
                };
                Some(v.ok_or_else(|| invalid("icmp-type", format!("unknown icmp-type '{t}'")))?)
            }
            None => None,
        };
        Ok(ParsedRule { source, dest, proto, dport, sport, icmp })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;

    #[test]
    fn rule_lines_round_trip() {
        for line in [
            "IN SSH(ACCEPT) -i net0",
            "IN SSH(ACCEPT) -i net0 # a comment",
            "IN SSH(ACCEPT) -i net0 -source 10.0.0.1-10.0.0.10",
            "|IN SSH(ACCEPT) -i net0 # disabled rule",
            "IN ACCEPT -source +mgmt -p tcp -dport 80,443,8000:8010",
            "OUT DROP -dest 10.0.0.1-10.0.0.10",
            "IN REJECT -p icmp -icmp-type echo-request",
            "GROUP webserver -i net0",
            "FORWARD ACCEPT -dest 10.0.0.1 -p tcp -dport 80 -log info",
        ] {
            let r = Rule::parse_line(line).unwrap();
            assert_eq!(r.to_line(), line);
        }
        let r = Rule::parse_line("in  ACCEPT --proto tcp --dport 22 -log nolog #x").unwrap();
        assert_eq!(r.to_line(), "IN ACCEPT -p tcp -dport 22 -log nolog # x");
    }

    #[test]
    fn bad_rules_name_the_key() {
        let err = |l: &str| Rule::parse_line(l).unwrap_err().to_string();
        assert!(err("IN NOPE(ACCEPT)").contains("unknown macro 'NOPE'"));
        assert!(err("IN ACCEPT -source 10.0.0.300").contains("source"));
        assert!(err("IN ACCEPT -p tcp -dport 9:1").contains("backwards"));
        assert!(err("IN ACCEPT -dport 22").contains("dport"));
        assert!(err("IN ACCEPT -p tcp -bogus 1").contains("unable to parse rule parameters"));
        assert!(err("SIDEWAYS ACCEPT").contains("type"));
        assert!(err("IN MAYBE").contains("action"));
        assert!(err("GROUP g1 -p tcp").contains("only -i"));
    }
}
