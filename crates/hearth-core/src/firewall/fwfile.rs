//! Proxmox's `.fw` text format (`cluster.fw`, `host.fw`, `<vmid>.fw`): reading it into a
//! [`FirewallConfig`] and writing one back in the layout pve-firewall itself writes.

use super::{Alias, FirewallConfig, FirewallError, Group, IpSet, IpSetEntry, Rule, addr};

enum Section {
    None,
    Options,
    Rules,
    Aliases,
    IpSet(String),
    Group(String),
}

fn split_comment(line: &str) -> (&str, Option<String>) {
    match line.split_once('#') {
        Some((b, c)) => (b.trim(), Some(c.trim().to_string()).filter(|c| !c.is_empty())),
        None => (line.trim(), None),
    }
}

fn at(line: usize, e: FirewallError) -> FirewallError {
    FirewallError::Line { line, source: Box::new(e) }
}

fn bad(line: usize, key: &str, message: String) -> FirewallError {
    at(line, FirewallError::Invalid { key: key.to_string(), message })
}

/// Parses a `.fw` file. Unlike pve-firewall, which logs and skips a broken line, any error
/// refuses the whole file (with its line number), so an import never half-applies.
pub fn parse(text: &str) -> Result<FirewallConfig, FirewallError> {
    let mut cfg = FirewallConfig::default();
    let mut section = Section::None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            let (head, comment) = split_comment(line);
            let inner = head
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .ok_or_else(|| bad(n, "section", format!("malformed section header '{head}'")))?
                .trim();
            let (kind, name) = match inner.split_once(char::is_whitespace) {
                Some((k, v)) => (k, Some(v.trim().to_ascii_lowercase())),
                None => (inner, None),
            };
            section = match (kind.to_ascii_lowercase().as_str(), name) {
                ("options", None) => Section::Options,
                ("rules", None) => Section::Rules,
                ("aliases", None) => Section::Aliases,
                ("ipset", Some(name)) => {
                    if !addr::valid_object_name(&name) {
                        return Err(bad(n, "ipset", format!("invalid ipset name '{name}'")));
                    }
                    cfg.ipsets.entry(name.clone()).or_insert_with(|| IpSet { comment, entries: Vec::new() });
                    Section::IpSet(name)
                }
                ("group", Some(name)) => {
                    if !super::valid_group_name(&name) {
                        return Err(bad(n, "group", format!("invalid security group name '{name}'")));
                    }
                    cfg.groups.entry(name.clone()).or_insert_with(|| Group { comment, rules: Vec::new() });
                    Section::Group(name)
                }
                _ => return Err(bad(n, "section", format!("unknown section '[{inner}]'"))),
            };
            continue;
        }
        match &section {
            Section::None => return Err(bad(n, "section", "line outside any section".to_string())),
            Section::Options => {
                let (k, v) = line
                    .split_once(':')
                    .ok_or_else(|| bad(n, "options", format!("expected 'key: value', got '{line}'")))?;
                let k = k.trim();
                cfg.options.insert(k.to_string(), v.trim().to_string());
            }
            Section::Rules => cfg.rules.push(Rule::parse_line(line).map_err(|e| at(n, e))?),
            Section::Group(g) => {
                let rule = Rule::parse_line(line).map_err(|e| at(n, e))?;
                cfg.groups.get_mut(g).expect("group section created at its header").rules.push(rule);
            }
            Section::Aliases => {
                let (body, comment) = split_comment(line);
                let mut w = body.split_whitespace();
                let (Some(name), Some(cidr), None) = (w.next(), w.next(), w.next()) else {
                    return Err(bad(n, "alias", format!("expected 'name address', got '{body}'")));
                };
                let name = name.to_ascii_lowercase();
                if !addr::valid_object_name(&name) {
                    return Err(bad(n, "alias", format!("invalid alias name '{name}'")));
                }
                addr::parse_cidr(&format!("alias {name}"), cidr).map_err(|e| at(n, e))?;
                cfg.aliases.insert(name, Alias { cidr: cidr.to_string(), comment });
            }
            Section::IpSet(s) => {
                let (body, comment) = split_comment(line);
                let (nomatch, cidr) = match body.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, body),
                };
                if cidr.split_whitespace().count() != 1 {
                    return Err(bad(n, &format!("ipset {s}"), format!("expected one address per line, got '{body}'")));
                }
                if addr::IpNet::parse(cidr).is_none() && !addr::valid_object_name(cidr) {
                    return Err(bad(n, &format!("ipset {s}"), format!("invalid IP address or alias '{cidr}'")));
                }
                let entry = IpSetEntry { cidr: cidr.to_string(), nomatch, comment };
                cfg.ipsets.get_mut(s).expect("ipset section created at its header").entries.push(entry);
            }
        }
    }
    Ok(cfg)
}

fn comment_suffix(c: &Option<String>) -> String {
    c.as_deref().map(|c| format!(" # {c}")).unwrap_or_default()
}

/// Writes a configuration as pve-firewall does: options, aliases, IP sets, rules, groups,
/// each section followed by a blank line.
pub fn write(cfg: &FirewallConfig) -> String {
    let mut s = String::new();
    if !cfg.options.is_empty() {
        s.push_str("[OPTIONS]\n\n");
        for (k, v) in &cfg.options {
            s.push_str(&format!("{k}: {v}\n"));
        }
        s.push('\n');
    }
    if !cfg.aliases.is_empty() {
        s.push_str("[ALIASES]\n\n");
        for (k, a) in &cfg.aliases {
            s.push_str(&format!("{k} {}{}\n", a.cidr, comment_suffix(&a.comment)));
        }
        s.push('\n');
    }
    for (name, set) in &cfg.ipsets {
        s.push_str(&format!("[IPSET {name}]{}\n\n", comment_suffix(&set.comment)));
        for e in &set.entries {
            let bang = if e.nomatch { "!" } else { "" };
            s.push_str(&format!("{bang}{}{}\n", e.cidr, comment_suffix(&e.comment)));
        }
        s.push('\n');
    }
    if !cfg.rules.is_empty() {
        s.push_str("[RULES]\n\n");
        for r in &cfg.rules {
            s.push_str(&r.to_line());
            s.push('\n');
        }
        s.push('\n');
    }
    for (name, g) in &cfg.groups {
        s.push_str(&format!("[group {name}]{}\n\n", comment_suffix(&g.comment)));
        for r in &g.rules {
            s.push_str(&r.to_line());
            s.push('\n');
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;
    use crate::firewall::Level;

    /// The examples of Proxmox's firewall documentation (pve-firewall.adoc), each a file.
    const DOC_EXAMPLES: &[&str] = &[
        "[OPTIONS]\n# enable firewall (cluster-wide setting, default is disabled)\nenable: 1\n",
        "[RULES]\nIN SSH(ACCEPT) -i net0\nIN SSH(ACCEPT) -i net0 # a comment\nIN SSH(ACCEPT) -i net0 -source 192.168.2.192 # only allow SSH from 192.168.2.192\nIN SSH(ACCEPT) -i net0 -source 10.0.0.1-10.0.0.10 # accept SSH for IP range\nIN SSH(ACCEPT) -i net0 -source 10.0.0.1,10.0.0.2,10.0.0.3 #accept ssh for IP list\nIN SSH(ACCEPT) -i net0 -source +mynetgroup # accept ssh for ipset mynetgroup\nIN SSH(ACCEPT) -i net0 -source myserveralias #accept ssh for alias myserveralias\n\n|IN SSH(ACCEPT) -i net0 # disabled rule\n\nIN  DROP # drop all incoming packages\nOUT ACCEPT # accept all outgoing packages\n",
        "# /etc/pve/firewall/cluster.fw\n\n[group webserver]\nIN  ACCEPT -p tcp -dport 80\nIN  ACCEPT -p tcp -dport 443\n",
        "# /etc/pve/firewall/<VMID>.fw\n\n[RULES]\nGROUP webserver\n",
        "#  /etc/pve/firewall/cluster.fw\n[ALIASES]\nlocal_network 1.2.3.4 # use the single IP address\n",
        "# /etc/pve/firewall/cluster.fw\n\n[IPSET management] \n192.168.2.10\n192.168.2.10/24\n",
        "# /etc/pve/firewall/cluster.fw\n\n[IPSET blacklist] \n77.240.159.182\n213.87.123.0/24\n",
        "/etc/pve/firewall/<VMID>.fw\n\n[IPSET ipfilter-net0] # only allow specified IPs on net0\n192.168.2.10\n",
        "# /etc/pve/firewall/<VMID>.fw\n\n[OPTIONS]\nips: 1\nips_queues: 0\n",
        "[OPTIONS]\n\nnftables: 1\n",
    ];

    #[test]
    fn documentation_examples_round_trip() {
        for (i, ex) in DOC_EXAMPLES.iter().enumerate() {
            // One example starts with a bare path line (a caption in the document); skip it.
            let ex = if ex.starts_with('/') { ex.split_once('\n').map(|x| x.1).unwrap_or("") } else { ex };
            let cfg = parse(ex).unwrap_or_else(|e| panic!("example {i}: {e}"));
            let text = write(&cfg);
            let again = parse(&text).unwrap();
            assert_eq!(again, cfg, "example {i}");
            assert_eq!(write(&again), text, "example {i}");
        }
        let rules = parse(DOC_EXAMPLES[1]).unwrap();
        assert_eq!(rules.rules.len(), 10);
        assert!(!rules.rules[7].enable);
        assert_eq!(rules.rules[4].comment.as_deref(), Some("accept ssh for IP list"));
        let set = parse(DOC_EXAMPLES[7].split_once('\n').unwrap().1).unwrap();
        assert_eq!(set.ipsets["ipfilter-net0"].comment.as_deref(), Some("only allow specified IPs on net0"));
        parse(DOC_EXAMPLES[8]).unwrap().validate(Level::Guest, None).unwrap();
        parse(DOC_EXAMPLES[9]).unwrap().validate(Level::Host, None).unwrap();
    }

    #[test]
    fn writes_proxmox_layout() {
        let cfg = parse("[ipset MGMT] # admins\n!10.0.0.9 # not this one\n10.0.0.0/24\n[options]\nenable: 1\npolicy_in: DROP\n[rules]\nin ACCEPT -p tcp -dport 22\n").unwrap();
        expect_test::expect![[r#"
            [OPTIONS]

            enable: 1
            policy_in: DROP

            [IPSET mgmt] # admins

            !10.0.0.9 # not this one
            10.0.0.0/24

            [RULES]

            IN ACCEPT -p tcp -dport 22

        "#]]
        .assert_eq(&write(&cfg));
    }

    #[test]
    fn errors_carry_line_numbers() {
        let e = parse("[RULES]\nIN ACCEPT\nIN FOO(ACCEPT)\n").unwrap_err().to_string();
        assert_eq!(e, "line 3: macro: unknown macro 'FOO'");
        assert!(parse("[NOPE]\n").is_err());
        assert!(parse("[IPSET x1]\n10.0.0.1 10.0.0.2\n").is_err());
    }
}
