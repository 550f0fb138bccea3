//! The firewall model of pve-firewall: cluster, host and guest configurations with their
//! `[OPTIONS]`, `[RULES]`, `[ALIASES]`, `[IPSET name]` and security groups, stored as TOML under
//! `etc/hearth/firewall/` (`cluster.toml`, `host.toml`, `<vmid>.toml`), and Proxmox's `.fw` text
//! form for import and export.

pub mod addr;
pub mod fwfile;
pub mod macros;
pub mod port;
pub mod rule;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use addr::{AddrItem, AddrSpec, IpNet, RefScope};
pub use port::PortSpec;
pub use rule::{ParsedRule, Rule, RuleType, Verdict};

/// Log levels of `-log` and the `log_level_*` options.
pub const LOG_LEVELS: &[&str] = &["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug", "nolog"];

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FirewallError {
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
    #[error("line {line}: {source}")]
    Line { line: usize, source: Box<FirewallError> },
    #[error("{what}: {message}")]
    Toml { what: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> FirewallError {
    FirewallError::Invalid { key: key.to_string(), message: message.into() }
}

/// Which configuration a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// `cluster.fw`: datacenter options, rules for every host, aliases, IP sets, groups.
    Cluster,
    /// `host.fw`: this node's options and rules.
    Host,
    /// `<vmid>.fw`: one guest's options, rules, aliases and IP sets.
    Guest,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Cluster => "cluster",
            Level::Host => "host",
            Level::Guest => "guest",
        }
    }
}

/// Security group names: as IP set names, but at most 18 characters.
pub fn valid_group_name(name: &str) -> bool {
    addr::valid_object_name(name) && name.len() <= 18
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alias {
    pub cidr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpSetEntry {
    /// An address, a CIDR or an alias name.
    pub cidr: String,
    /// An exception: addresses matching it are not members even if another entry covers them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nomatch: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpSet {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default)]
    pub entries: Vec<IpSetEntry>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// One firewall configuration file's content.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirewallConfig {
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub aliases: BTreeMap<String, Alias>,
    #[serde(default)]
    pub ipsets: BTreeMap<String, IpSet>,
    #[serde(default)]
    pub groups: BTreeMap<String, Group>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OptKind {
    Bool,
    Policy,
    PolicyForward,
    LogLevel,
    Int(u64),
    Text,
}

fn option_kind(level: Level, key: &str) -> Option<OptKind> {
    use OptKind::*;
    let k = match (level, key) {
        (_, "enable") => Bool,
        (Level::Cluster | Level::Guest, "policy_in" | "policy_out") => Policy,
        (Level::Cluster, "policy_forward") => PolicyForward,
        (Level::Cluster, "ebtables") => Bool,
        (Level::Cluster, "log_ratelimit") => Text,
        (Level::Host | Level::Guest, "log_level_in" | "log_level_out") => LogLevel,
        (Level::Host, "log_level_forward" | "smurf_log_level" | "tcp_flags_log_level") => LogLevel,
        (
            Level::Host,
            "ndp"
            | "nosmurfs"
            | "tcpflags"
            | "nftables"
            | "nf_conntrack_allow_invalid"
            | "log_nf_conntrack"
            | "protection_synflood",
        ) => Bool,
        (Level::Host, "nf_conntrack_max") => Int(32768),
        (Level::Host, "nf_conntrack_tcp_timeout_established") => Int(7875),
        (Level::Host, "nf_conntrack_tcp_timeout_syn_recv") => Int(30),
        (Level::Host, "protection_synflood_rate" | "protection_synflood_burst") => Int(1),
        (Level::Host, "nf_conntrack_helpers") => Text,
        (Level::Guest, "dhcp" | "ndp" | "radv" | "macfilter" | "ipfilter" | "ips") => Bool,
        (Level::Guest, "ips_queues") => Text,
        _ => return None,
    };
    Some(k)
}

/// Option keys valid at a level, for error messages and completion.
pub fn option_keys(level: Level) -> Vec<&'static str> {
    const ALL: &[&str] = &[
        "enable",
        "policy_in",
        "policy_out",
        "policy_forward",
        "ebtables",
        "log_ratelimit",
        "log_level_in",
        "log_level_out",
        "log_level_forward",
        "smurf_log_level",
        "tcp_flags_log_level",
        "ndp",
        "nosmurfs",
        "tcpflags",
        "nftables",
        "nf_conntrack_allow_invalid",
        "log_nf_conntrack",
        "protection_synflood",
        "nf_conntrack_max",
        "nf_conntrack_tcp_timeout_established",
        "nf_conntrack_tcp_timeout_syn_recv",
        "protection_synflood_rate",
        "protection_synflood_burst",
        "nf_conntrack_helpers",
        "dhcp",
        "radv",
        "macfilter",
        "ipfilter",
        "ips",
        "ips_queues",
    ];
    ALL.iter().copied().filter(|k| option_kind(level, k).is_some()).collect()
}

/// Checks one option; returns the canonical value.
pub fn check_option(level: Level, key: &str, value: &str) -> Result<String, FirewallError> {
    let kind = option_kind(level, key).ok_or_else(|| {
        invalid(key, format!("unknown {} option (allowed: {})", level.as_str(), option_keys(level).join(", ")))
    })?;
    let ok = match kind {
        OptKind::Bool => matches!(value, "0" | "1"),
        OptKind::Policy => matches!(value, "ACCEPT" | "DROP" | "REJECT"),
        OptKind::PolicyForward => matches!(value, "ACCEPT" | "DROP"),
        OptKind::LogLevel => LOG_LEVELS.contains(&value),
        OptKind::Int(min) => value.parse::<u64>().is_ok_and(|n| n >= min),
        OptKind::Text => !value.is_empty() && !value.contains(['\n', '#']),
    };
    if !ok {
        let allowed = match kind {
            OptKind::Bool => "0 or 1".to_string(),
            OptKind::Policy => "ACCEPT, DROP or REJECT".to_string(),
            OptKind::PolicyForward => "ACCEPT or DROP".to_string(),
            OptKind::LogLevel => LOG_LEVELS.join(", "),
            OptKind::Int(min) => format!("an integer >= {min}"),
            OptKind::Text => "a non-empty value on one line".to_string(),
        };
        return Err(invalid(key, format!("invalid value '{value}' (allowed: {allowed})")));
    }
    Ok(value.to_string())
}

/// The default of an option at a level, as Proxmox's schemas define it.
pub fn option_default(level: Level, key: &str) -> Option<&'static str> {
    Some(match (level, key) {
        (Level::Cluster, "enable") => "0",
        (Level::Host, "enable") => "1",
        (Level::Guest, "enable") => "0",
        (_, "policy_in") => "DROP",
        (_, "policy_out") => "ACCEPT",
        (_, "policy_forward") => "ACCEPT",
        (_, "macfilter") => "1",
        (_, "ndp") => "1",
        (_, "dhcp" | "radv" | "ipfilter" | "nosmurfs" | "tcpflags") => "0",
        (_, k) if k.starts_with("log_level") => "nolog",
        _ => return None,
    })
}

impl FirewallConfig {
    /// An option's value, or its default at this level.
    pub fn option(&self, level: Level, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str).or_else(|| option_default(level, key))
    }

    pub fn flag(&self, level: Level, key: &str) -> bool {
        self.option(level, key) == Some("1")
    }

    pub fn from_toml(text: &str) -> Result<FirewallConfig, FirewallError> {
        toml::from_str(text).map_err(|e| FirewallError::Toml {
            what: "firewall configuration".into(),
            message: e.message().to_string(),
        })
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("firewall configurations serialize: string keys and plain values only")
    }

    /// Checks the whole configuration: options, names, entries, every rule, and that every
    /// IP set, alias and security group a rule names exists (in this file or, for guests and the
    /// host, in `dc`, the cluster configuration).
    pub fn validate(&self, level: Level, dc: Option<&FirewallConfig>) -> Result<(), FirewallError> {
        for (k, v) in &self.options {
            check_option(level, k, v)?;
        }
        if level == Level::Host && (!self.aliases.is_empty() || !self.ipsets.is_empty()) {
            return Err(invalid("host", "host.fw holds only [OPTIONS] and [RULES]"));
        }
        if level != Level::Cluster && !self.groups.is_empty() {
            return Err(invalid("group", "security groups are defined in the cluster configuration only"));
        }
        for (name, a) in &self.aliases {
            if !addr::valid_object_name(name) {
                return Err(invalid("alias", format!("invalid alias name '{name}'")));
            }
            addr::parse_cidr(&format!("alias {name}"), &a.cidr)?;
        }
        for (name, set) in &self.ipsets {
            if !addr::valid_object_name(name) {
                return Err(invalid("ipset", format!("invalid ipset name '{name}'")));
            }
            for e in &set.entries {
                if IpNet::parse(&e.cidr).is_none() && self.find_alias(dc, &e.cidr).is_none() {
                    return Err(invalid(
                        &format!("ipset {name}"),
                        format!("'{}' is neither an address, a CIDR nor a defined alias", e.cidr),
                    ));
                }
            }
        }
        let groups = if level == Level::Cluster { Some(self) } else { dc };
        for (name, g) in &self.groups {
            if !valid_group_name(name) {
                return Err(invalid("group", format!("invalid security group name '{name}' (at most 18 characters)")));
            }
            for (i, r) in g.rules.iter().enumerate() {
                self.check_rule(level, dc, None, r).map_err(|e| FirewallError::Invalid {
                    key: format!("group {name} rule {i}"),
                    message: e.to_string(),
                })?;
                if r.kind == RuleType::Group {
                    return Err(invalid(&format!("group {name}"), "a security group cannot contain GROUP rules"));
                }
            }
        }
        for (i, r) in self.rules.iter().enumerate() {
            self.check_rule(level, dc, groups, r)
                .map_err(|e| FirewallError::Invalid { key: format!("rule {i}"), message: e.to_string() })?;
        }
        Ok(())
    }

    fn check_rule(
        &self,
        level: Level,
        dc: Option<&FirewallConfig>,
        groups: Option<&FirewallConfig>,
        r: &Rule,
    ) -> Result<(), FirewallError> {
        let parsed = r.validate()?;
        if level == Level::Guest && r.kind == RuleType::Forward {
            return Err(invalid("type", "guest rules are IN, OUT or GROUP"));
        }
        if level == Level::Guest
            && let Some(i) = &r.iface
            && !(i.starts_with("net") && i.len() > 3 && i[3..].bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(invalid("iface", format!("invalid guest interface '{i}' (expected netN)")));
        }
        if r.kind == RuleType::Group
            && let Some(g) = groups
            && !g.groups.contains_key(&r.action.to_ascii_lowercase())
        {
            return Err(invalid("action", format!("security group '{}' does not exist", r.action)));
        }
        for (key, spec) in [("source", &parsed.source), ("dest", &parsed.dest)] {
            match spec {
                Some(AddrSpec::IpSet { scope, name }) if self.find_ipset(level, dc, *scope, name).is_none() => {
                    return Err(invalid(key, format!("ipset '{name}' does not exist")));
                }
                Some(AddrSpec::Alias { scope, name }) if self.find_alias_scoped(dc, *scope, name).is_none() => {
                    return Err(invalid(key, format!("alias '{name}' does not exist")));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn find_alias<'a>(&'a self, dc: Option<&'a FirewallConfig>, name: &str) -> Option<&'a Alias> {
        self.find_alias_scoped(dc, RefScope::Any, &name.to_ascii_lowercase())
    }

    /// Resolves an alias: guest first, then datacenter (or only the scope named).
    pub fn find_alias_scoped<'a>(
        &'a self,
        dc: Option<&'a FirewallConfig>,
        scope: RefScope,
        name: &str,
    ) -> Option<&'a Alias> {
        let own = || self.aliases.get(name);
        let cluster = || dc.unwrap_or(self).aliases.get(name);
        match scope {
            RefScope::Any => own().or_else(cluster),
            RefScope::Guest => own(),
            RefScope::Dc => cluster(),
        }
    }

    /// Resolves an IP set: guest first, then datacenter (or only the scope named).
    pub fn find_ipset<'a>(
        &'a self,
        level: Level,
        dc: Option<&'a FirewallConfig>,
        scope: RefScope,
        name: &str,
    ) -> Option<(Level, &'a IpSet)> {
        let own = || self.ipsets.get(name).map(|s| (level, s));
        let cluster = || dc.unwrap_or(self).ipsets.get(name).map(|s| (Level::Cluster, s));
        match scope {
            RefScope::Any => own().or_else(cluster),
            RefScope::Guest => own(),
            RefScope::Dc => cluster(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip_and_references() {
        let dc = fwfile::parse(
            "[OPTIONS]\nenable: 1\n[ALIASES]\nweb 10.0.0.5\n[IPSET mgmt]\n10.0.0.0/24\n!10.0.0.9\n[group webserver]\nIN ACCEPT -p tcp -dport 80\n[RULES]\nGROUP webserver\nIN ACCEPT -source +mgmt -dest web\n",
        )
        .unwrap();
        dc.validate(Level::Cluster, None).unwrap();
        let back = FirewallConfig::from_toml(&dc.to_toml()).unwrap();
        assert_eq!(back, dc);

        let guest = fwfile::parse("[RULES]\nIN ACCEPT -source +nope\n").unwrap();
        assert!(
            guest.validate(Level::Guest, Some(&dc)).unwrap_err().to_string().contains("ipset 'nope' does not exist")
        );
        let guest = fwfile::parse("[RULES]\nGROUP missing\n").unwrap();
        assert!(guest.validate(Level::Guest, Some(&dc)).unwrap_err().to_string().contains("security group 'missing'"));
        let guest = fwfile::parse("[RULES]\nIN ACCEPT -dest nowhere\n").unwrap();
        assert!(guest.validate(Level::Guest, Some(&dc)).unwrap_err().to_string().contains("alias 'nowhere'"));
        let guest = fwfile::parse("[RULES]\nIN ACCEPT -source +mgmt -dest dc/web\n").unwrap();
        guest.validate(Level::Guest, Some(&dc)).unwrap();
        assert!(check_option(Level::Guest, "policy_in", "MAYBE").is_err());
        assert!(check_option(Level::Guest, "nftables", "1").is_err());
        assert!(check_option(Level::Host, "nf_conntrack_max", "100").is_err());
    }
}
