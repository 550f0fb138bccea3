//! Proxmox's firewall macros (pve-firewall's table, itself converted from Shorewall's): each
//! expands to one rule per entry with the macro's protocol and ports and the rule's own action
//! and addresses. IPv6 variants replace an entry set where Proxmox defines one.

/// One expansion: protocol, destination ports (for ICMP the type name), source ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacroEntry {
    pub proto: &'static str,
    pub dport: Option<&'static str>,
    pub sport: Option<&'static str>,
}

#[derive(Clone, Copy, Debug)]
pub struct Macro {
    pub name: &'static str,
    pub description: &'static str,
    pub entries: &'static [MacroEntry],
    /// Entries used for IPv6 traffic instead of `entries` (Ping, Trcrt), or `None`.
    pub v6_entries: Option<&'static [MacroEntry]>,
    /// 6 when the macro applies to IPv6 only (DHCPv6, NeighborDiscovery), else 0.
    pub ip_version: u8,
}

const fn e(proto: &'static str, dport: &'static str) -> MacroEntry {
    MacroEntry { proto, dport: Some(dport), sport: None }
}
const fn es(proto: &'static str, dport: &'static str, sport: &'static str) -> MacroEntry {
    MacroEntry { proto, dport: Some(dport), sport: Some(sport) }
}
const fn p(proto: &'static str) -> MacroEntry {
    MacroEntry { proto, dport: None, sport: None }
}

macro_rules! m {
    ($name:literal, $descr:literal, [$($e:expr),* $(,)?]) => {
        Macro { name: $name, description: $descr, entries: &[$($e),*], v6_entries: None, ip_version: 0 }
    };
    ($name:literal, $descr:literal, [$($e:expr),* $(,)?], v6 [$($e6:expr),* $(,)?]) => {
        Macro { name: $name, description: $descr, entries: &[$($e),*], v6_entries: Some(&[$($e6),*]), ip_version: 0 }
    };
    ($name:literal, $descr:literal, v6only [$($e:expr),* $(,)?]) => {
        Macro { name: $name, description: $descr, entries: &[$($e),*], v6_entries: None, ip_version: 6 }
    };
}

/// Every macro.
pub const MACROS: &[Macro] = &[
    m!("Amanda", "Amanda Backup", [e("udp", "10080"), e("tcp", "10080")]),
    m!("Auth", "Auth (identd) traffic", [e("tcp", "113")]),
    m!("BGP", "Border Gateway Protocol traffic", [e("tcp", "179")]),
    m!("BitTorrent", "BitTorrent traffic for BitTorrent 3.1 and earlier", [e("tcp", "6881:6889"), e("udp", "6881")]),
    m!("BitTorrent32", "BitTorrent traffic for BitTorrent 3.2 and later", [e("tcp", "6881:6999"), e("udp", "6881")]),
    m!("CVS", "Concurrent Versions System pserver traffic", [e("tcp", "2401")]),
    m!(
        "Ceph",
        "Ceph Storage Cluster traffic (Ceph Monitors, OSD & MDS Daemons)",
        [e("tcp", "6789"), e("tcp", "3300"), e("tcp", "6800:7300")]
    ),
    m!("Citrix", "Citrix/ICA traffic (ICA, ICA Browser, CGP)", [e("tcp", "1494"), e("udp", "1604"), e("tcp", "2598")]),
    m!(
        "DAAP",
        "Digital Audio Access Protocol traffic (iTunes, Rythmbox daemons)",
        [e("tcp", "3689"), e("udp", "3689")]
    ),
    m!("DCC", "Distributed Checksum Clearinghouse spam filtering mechanism", [e("tcp", "6277")]),
    m!("DHCPfwd", "Forwarded DHCP traffic", [es("udp", "67:68", "67:68")]),
    m!("DHCPv6", "DHCPv6 traffic", v6only[es("udp", "546:547", "546:547")]),
    m!("DNS", "Domain Name System traffic (upd and tcp)", [e("udp", "53"), e("tcp", "53")]),
    m!("Distcc", "Distributed Compiler service", [e("tcp", "3632")]),
    m!("FTP", "File Transfer Protocol", [e("tcp", "21")]),
    m!("Finger", "Finger protocol (RFC 742)", [e("tcp", "79")]),
    m!(
        "GNUnet",
        "GNUnet secure peer-to-peer networking traffic",
        [e("tcp", "2086"), e("udp", "2086"), e("tcp", "1080"), e("udp", "1080")]
    ),
    m!("GRE", "Generic Routing Encapsulation tunneling protocol", [p("47")]),
    m!("Git", "Git distributed revision control traffic", [e("tcp", "9418")]),
    m!("HKP", "OpenPGP HTTP key server protocol traffic", [e("tcp", "11371")]),
    m!("HTTP", "Hypertext Transfer Protocol (WWW)", [e("tcp", "80")]),
    m!("HTTPS", "Hypertext Transfer Protocol (WWW) over SSL", [e("tcp", "443")]),
    m!("ICPV2", "Internet Cache Protocol V2 (Squid) traffic", [e("udp", "3130")]),
    m!("ICQ", "AOL Instant Messenger traffic", [e("tcp", "5190")]),
    m!("IMAP", "Internet Message Access Protocol", [e("tcp", "143")]),
    m!("IMAPS", "Internet Message Access Protocol over SSL", [e("tcp", "993")]),
    m!("IPIP", "IPIP capsulation traffic", [p("94")]),
    m!("IPsec", "IPsec traffic", [es("udp", "500", "500"), p("50")]),
    m!("IPsecah", "IPsec authentication (AH) traffic", [es("udp", "500", "500"), p("51")]),
    m!("IPsecnat", "IPsec traffic and Nat-Traversal", [e("udp", "500"), e("udp", "4500"), p("50")]),
    m!("IRC", "Internet Relay Chat traffic", [e("tcp", "6667")]),
    m!("Jetdirect", "HP Jetdirect printing", [e("tcp", "9100")]),
    m!("L2TP", "Layer 2 Tunneling Protocol traffic", [e("udp", "1701")]),
    m!("LDAP", "Lightweight Directory Access Protocol traffic", [e("tcp", "389")]),
    m!("LDAPS", "Secure Lightweight Directory Access Protocol traffic", [e("tcp", "636")]),
    m!("MDNS", "Multicast DNS", [e("udp", "5353")]),
    m!("MSNP", "Microsoft Notification Protocol", [e("tcp", "1863")]),
    m!("MSSQL", "Microsoft SQL Server", [e("tcp", "1433")]),
    m!("Mail", "Mail traffic (SMTP, SMTPS, Submission)", [e("tcp", "25"), e("tcp", "465"), e("tcp", "587")]),
    m!("Munin", "Munin networked resource monitoring traffic", [e("tcp", "4949")]),
    m!("MySQL", "MySQL server", [e("tcp", "3306")]),
    m!("NNTP", "NNTP traffic (Usenet).", [e("tcp", "119")]),
    m!("NNTPS", "Encrypted NNTP traffic (Usenet)", [e("tcp", "563")]),
    m!("NTP", "Network Time Protocol (ntpd)", [e("udp", "123")]),
    m!("NeighborDiscovery", "IPv6 neighbor solicitation, neighbor and router advertisement", v6only [
        e("icmpv6", "router-solicitation"), e("icmpv6", "router-advertisement"),
        e("icmpv6", "neighbor-solicitation"), e("icmpv6", "neighbor-advertisement"),
    ]),
    m!("OSPF", "OSPF multicast traffic", [p("89")]),
    m!("OpenVPN", "OpenVPN traffic", [e("udp", "1194")]),
    m!("PCA", "Symantec PCAnywere (tm)", [e("udp", "5632"), e("tcp", "5631")]),
    m!("PMG", "Proxmox Mail Gateway web interface", [e("tcp", "8006")]),
    m!("POP3", "POP3 traffic", [e("tcp", "110")]),
    m!("POP3S", "Encrypted POP3 traffic", [e("tcp", "995")]),
    m!("PPtP", "Point-to-Point Tunneling Protocol", [p("47"), e("tcp", "1723")]),
    m!("Ping", "ICMP echo request", [e("icmp", "echo-request")], v6[e("icmpv6", "echo-request")]),
    m!("PostgreSQL", "PostgreSQL server", [e("tcp", "5432")]),
    m!("Printer", "Line Printer protocol printing", [e("tcp", "515")]),
    m!("RDP", "Microsoft Remote Desktop Protocol traffic", [e("tcp", "3389")]),
    m!("RIP", "Routing Information Protocol (bidirectional)", [e("udp", "520")]),
    m!("RNDC", "BIND remote management protocol", [e("tcp", "953")]),
    m!("Razor", "Razor Antispam System", [e("tcp", "2703")]),
    m!("Rdate", "Remote time retrieval (rdate)", [e("tcp", "37")]),
    m!("Rsync", "Rsync server", [e("tcp", "873")]),
    m!("SANE", "SANE network scanning", [e("tcp", "6566")]),
    m!(
        "SMB",
        "Microsoft SMB traffic",
        [e("udp", "135,445"), e("udp", "137:139"), es("udp", "1024:65535", "137"), e("tcp", "135,139,445")]
    ),
    m!("SMBswat", "Samba Web Administration Tool", [e("tcp", "901")]),
    m!("SMTP", "Simple Mail Transfer Protocol", [e("tcp", "25")]),
    m!("SMTPS", "Encrypted Simple Mail Transfer Protocol", [e("tcp", "465")]),
    m!("SNMP", "Simple Network Management Protocol", [e("udp", "161:162"), e("tcp", "161")]),
    m!("SPAMD", "Spam Assassin SPAMD traffic", [e("tcp", "783")]),
    m!("SPICEproxy", "Proxmox VE SPICE display proxy traffic", [e("tcp", "3128")]),
    m!("SSH", "Secure shell traffic", [e("tcp", "22")]),
    m!("SVN", "Subversion server (svnserve)", [e("tcp", "3690")]),
    m!(
        "SixXS",
        "SixXS IPv6 Deployment and Tunnel Broker",
        [e("tcp", "3874"), e("udp", "3740"), p("41"), e("udp", "5072,8374")]
    ),
    m!("Squid", "Squid web proxy traffic", [e("tcp", "3128")]),
    m!("Submission", "Mail message submission traffic", [e("tcp", "587")]),
    m!("Syslog", "Syslog protocol (RFC 5424) traffic", [e("udp", "514"), e("tcp", "514")]),
    m!("TFTP", "Trivial File Transfer Protocol traffic", [e("udp", "69")]),
    m!("Telnet", "Telnet traffic", [e("tcp", "23")]),
    m!("Telnets", "Telnet over SSL", [e("tcp", "992")]),
    m!("Time", "RFC 868 Time protocol", [e("tcp", "37")]),
    m!("Trcrt", "Traceroute (for up to 30 hops) traffic", [e("udp", "33434:33524"), e("icmp", "echo-request")], v6 [e("udp", "33434:33524"), e("icmpv6", "echo-request")]),
    m!("VNC", "VNC traffic for VNC display's 0 - 99", [e("tcp", "5900:5999")]),
    m!("VNCL", "VNC traffic from Vncservers to Vncviewers in listen mode", [e("tcp", "5500")]),
    m!("Web", "WWW traffic (HTTP and HTTPS)", [e("tcp", "80"), e("tcp", "443")]),
    m!("Webcache", "Web Cache/Proxy traffic (port 8080)", [e("tcp", "8080")]),
    m!("Webmin", "Webmin traffic", [e("tcp", "10000")]),
    m!("Whois", "Whois (nicname, RFC 3912) traffic", [e("tcp", "43")]),
];

/// Looks a macro up case-insensitively, as Proxmox does (`ssh(ACCEPT)` is `SSH(ACCEPT)`).
pub fn find(name: &str) -> Option<&'static Macro> {
    MACROS.iter().find(|m| m.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;
    use crate::firewall::port::{PortSpec, icmp_type, icmpv6_type, protocol_number};

    #[test]
    fn every_macro_entry_is_valid_and_names_are_unique() {
        assert_eq!(MACROS.len(), 86);
        let mut names: Vec<String> = MACROS.iter().map(|m| m.name.to_ascii_lowercase()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), MACROS.len());
        for m in MACROS {
            for en in m.entries.iter().chain(m.v6_entries.unwrap_or(&[])) {
                assert!(protocol_number(en.proto).is_some(), "{}", m.name);
                if let Some(d) = en.dport {
                    match en.proto {
                        "icmp" => assert!(icmp_type(d).is_some()),
                        "icmpv6" => assert!(icmpv6_type(d).is_some()),
                        _ => assert!(PortSpec::parse("dport", d).is_ok()),
                    }
                }
            }
        }
        assert_eq!(find("ssh").map(|m| m.name), Some("SSH"));
    }
}
