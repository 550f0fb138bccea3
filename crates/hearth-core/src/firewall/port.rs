//! Ports, protocols and ICMP types as rules name them: numbers, `a:b` ranges, comma lists and
//! the service and protocol names of Debian's `/etc/services` and `/etc/protocols` that rules
//! commonly use (built in, so the model does no I/O and compiles the same on every host).

use super::FirewallError;

/// Service names accepted in `-dport`/`-sport` (TCP and UDP share the number).
pub const SERVICES: &[(&str, u16)] = &[
    ("ftp-data", 20),
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("time", 37),
    ("whois", 43),
    ("domain", 53),
    ("bootps", 67),
    ("bootpc", 68),
    ("tftp", 69),
    ("gopher", 70),
    ("finger", 79),
    ("http", 80),
    ("kerberos", 88),
    ("pop3", 110),
    ("sunrpc", 111),
    ("auth", 113),
    ("nntp", 119),
    ("ntp", 123),
    ("epmap", 135),
    ("netbios-ns", 137),
    ("netbios-dgm", 138),
    ("netbios-ssn", 139),
    ("imap2", 143),
    ("snmp", 161),
    ("snmp-trap", 162),
    ("bgp", 179),
    ("irc", 194),
    ("ldap", 389),
    ("https", 443),
    ("microsoft-ds", 445),
    ("submissions", 465),
    ("isakmp", 500),
    ("syslog", 514),
    ("printer", 515),
    ("submission", 587),
    ("ldaps", 636),
    ("rsync", 873),
    ("imaps", 993),
    ("pop3s", 995),
    ("socks", 1080),
    ("openvpn", 1194),
    ("ms-sql-s", 1433),
    ("l2tp", 1701),
    ("pptp", 1723),
    ("nfs", 2049),
    ("mysql", 3306),
    ("rdp", 3389),
    ("ms-wbt-server", 3389),
    ("postgresql", 5432),
    ("x11", 6000),
    ("http-alt", 8080),
    ("webmin", 10000),
];

/// Protocol names accepted in `-proto`, with their numbers.
pub const PROTOCOLS: &[(&str, u8)] = &[
    ("ip", 0),
    ("icmp", 1),
    ("igmp", 2),
    ("ipencap", 4),
    ("tcp", 6),
    ("egp", 8),
    ("udp", 17),
    ("dccp", 33),
    ("ipv6", 41),
    ("rsvp", 46),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("icmpv6", 58),
    ("ipv6-icmp", 58),
    ("ospf", 89),
    ("ipip", 94),
    ("pim", 103),
    ("vrrp", 112),
    ("l2tp", 115),
    ("sctp", 132),
    ("udplite", 136),
];

/// ICMP type names (iptables' spelling) with type and optional code.
pub const ICMP_TYPES: &[(&str, u8, Option<u8>)] = &[
    ("any", 255, None),
    ("echo-reply", 0, None),
    ("destination-unreachable", 3, None),
    ("network-unreachable", 3, Some(0)),
    ("host-unreachable", 3, Some(1)),
    ("protocol-unreachable", 3, Some(2)),
    ("port-unreachable", 3, Some(3)),
    ("fragmentation-needed", 3, Some(4)),
    ("source-route-failed", 3, Some(5)),
    ("network-unknown", 3, Some(6)),
    ("host-unknown", 3, Some(7)),
    ("network-prohibited", 3, Some(9)),
    ("host-prohibited", 3, Some(10)),
    ("TOS-network-unreachable", 3, Some(11)),
    ("TOS-host-unreachable", 3, Some(12)),
    ("communication-prohibited", 3, Some(13)),
    ("host-precedence-violation", 3, Some(14)),
    ("precedence-cutoff", 3, Some(15)),
    ("source-quench", 4, None),
    ("redirect", 5, None),
    ("network-redirect", 5, Some(0)),
    ("host-redirect", 5, Some(1)),
    ("TOS-network-redirect", 5, Some(2)),
    ("TOS-host-redirect", 5, Some(3)),
    ("echo-request", 8, None),
    ("router-advertisement", 9, None),
    ("router-solicitation", 10, None),
    ("time-exceeded", 11, None),
    ("ttl-zero-during-transit", 11, Some(0)),
    ("ttl-zero-during-reassembly", 11, Some(1)),
    ("parameter-problem", 12, None),
    ("ip-header-bad", 12, Some(0)),
    ("required-option-missing", 12, Some(1)),
    ("timestamp-request", 13, None),
    ("timestamp-reply", 14, None),
    ("address-mask-request", 17, None),
    ("address-mask-reply", 18, None),
];

/// ICMPv6 type names (ip6tables' spelling) with type and optional code.
pub const ICMPV6_TYPES: &[(&str, u8, Option<u8>)] = &[
    ("destination-unreachable", 1, None),
    ("no-route", 1, Some(0)),
    ("communication-prohibited", 1, Some(1)),
    ("beyond-scope", 1, Some(2)),
    ("address-unreachable", 1, Some(3)),
    ("port-unreachable", 1, Some(4)),
    ("failed-policy", 1, Some(5)),
    ("reject-route", 1, Some(6)),
    ("packet-too-big", 2, None),
    ("time-exceeded", 3, None),
    ("ttl-zero-during-transit", 3, Some(0)),
    ("ttl-zero-during-reassembly", 3, Some(1)),
    ("parameter-problem", 4, None),
    ("bad-header", 4, Some(0)),
    ("unknown-header-type", 4, Some(1)),
    ("unknown-option", 4, Some(2)),
    ("echo-request", 128, None),
    ("echo-reply", 129, None),
    ("router-solicitation", 133, None),
    ("router-advertisement", 134, None),
    ("neighbor-solicitation", 135, None),
    ("neighbour-solicitation", 135, None),
    ("neighbor-advertisement", 136, None),
    ("neighbour-advertisement", 136, None),
    ("redirect", 137, None),
];

pub fn service_port(name: &str) -> Option<u16> {
    SERVICES.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
}

/// A protocol name or number to its number.
pub fn protocol_number(s: &str) -> Option<u8> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    PROTOCOLS.iter().find(|(n, _)| *n == s).map(|(_, p)| *p)
}

pub fn icmp_type(name: &str) -> Option<(u8, Option<u8>)> {
    ICMP_TYPES.iter().find(|(n, _, _)| *n == name).map(|(_, t, c)| (*t, *c))
}

pub fn icmpv6_type(name: &str) -> Option<(u8, Option<u8>)> {
    ICMPV6_TYPES.iter().find(|(n, _, _)| *n == name).map(|(_, t, c)| (*t, *c))
}

/// A list of inclusive port ranges.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PortSpec(pub Vec<(u16, u16)>);

impl PortSpec {
    /// Parses `22`, `ssh`, `8000:8010`, `80,443` (at most 15 numbers, a range counting two, as
    /// iptables' multiport allowed); `key` names the option in errors.
    pub fn parse(key: &str, s: &str) -> Result<PortSpec, FirewallError> {
        let bad = |m: String| FirewallError::Invalid { key: key.to_string(), message: m };
        let parts: Vec<&str> = s.split(',').collect();
        if s.is_empty() || parts.iter().any(|p| p.is_empty()) {
            return Err(bad(format!("extraneous commas in list '{s}'")));
        }
        let num = |p: &str| -> Result<u16, FirewallError> {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                p.parse::<u32>()
                    .ok()
                    .filter(|n| *n <= 65535)
                    .map(|n| n as u16)
                    .ok_or_else(|| bad(format!("invalid port '{p}'")))
            } else {
                service_port(p).ok_or_else(|| bad(format!("invalid port '{p}': not a number or known service name")))
            }
        };
        let mut out = Vec::new();
        let mut count = 0;
        for p in parts {
            if let Some((a, b)) = p.split_once(':') {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(bad(format!("backwards range '{a}:{b}' not allowed, did you mean '{b}:{a}'?")));
                }
                count += 2;
                out.push((a, b));
            } else {
                count += 1;
                let n = num(p)?;
                out.push((n, n));
            }
        }
        if count > 15 {
            return Err(bad("too many entries in port list (> 15 numbers)".to_string()));
        }
        Ok(PortSpec(out))
    }

    pub fn contains(&self, port: u16) -> bool {
        self.0.iter().any(|(a, b)| *a <= port && port <= *b)
    }

    /// nft's spelling: `22`, `8000-8010`, `{ 80, 443 }`.
    pub fn to_nft(&self) -> String {
        let one = |(a, b): &(u16, u16)| if a == b { a.to_string() } else { format!("{a}-{b}") };
        if self.0.len() == 1 {
            one(&self.0[0])
        } else {
            format!("{{ {} }}", self.0.iter().map(one).collect::<Vec<_>>().join(", "))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(PortSpec::parse("dport", "80,443,8000:8010").unwrap().0, vec![(80, 80), (443, 443), (8000, 8010)]);
        assert_eq!(PortSpec::parse("dport", "ssh").unwrap().0, vec![(22, 22)]);
        assert!(PortSpec::parse("dport", "70000").is_err());
        assert!(PortSpec::parse("dport", "10:5").unwrap_err().to_string().contains("backwards"));
        assert!(PortSpec::parse("dport", "nosuchservice").is_err());
        assert!(PortSpec::parse("dport", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16").is_err());
        assert_eq!(protocol_number("tcp"), Some(6));
        assert_eq!(protocol_number("47"), Some(47));
        assert_eq!(protocol_number("tcpx"), None);
    }
}
