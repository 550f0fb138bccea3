//! The text hearthd feeds to the tools that run a [`NodePlan`](super::NodePlan): one nftables
//! transaction for SNAT, and a dnsmasq configuration per DHCP zone with its MAC↔IP hosts file.

use std::fmt::Write as _;
use std::path::Path;

use super::{DhcpZone, IpamEntry, SnatRule};

/// The nftables table SDN owns; nothing else in the ruleset is touched.
pub const NFT_TABLE: &str = "inet hearth-sdn";

/// One atomic `nft -f -` transaction that replaces Hearth's SDN table with `rules` (and only
/// that table): `add` makes the `delete` safe when the table does not exist yet. Without rules
/// the table is removed.
pub fn nft_ruleset(rules: &[SnatRule]) -> String {
    let mut out = format!("add table {NFT_TABLE}\ndelete table {NFT_TABLE}\n");
    if rules.is_empty() {
        return out;
    }
    let _ = writeln!(out, "table {NFT_TABLE} {{");
    out.push_str("\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n");
    for rule in rules {
        let _ = writeln!(
            out,
            "\t\tip saddr {} oifname != \"{}\" masquerade comment \"snat {}\"",
            rule.cidr, rule.bridge, rule.bridge
        );
    }
    out.push_str("\t}\n}\n");
    out
}

/// The dnsmasq configuration of one zone, its files under `dir`: bound to the zone's VNet
/// bridges only, DHCP only (no DNS), leases in `dir/dnsmasq.leases`, IPAM's fixed addresses in
/// `dir/ethers` (re-read on SIGHUP).
pub fn dnsmasq_conf(zone: &DhcpZone, dir: &Path) -> String {
    let dir = dir.display();
    let mut out = format!(
        "# dnsmasq of SDN zone {zone}, written by hearthd; changes are overwritten on apply.\n\
         pid-file={dir}/dnsmasq.pid\n\
         dhcp-leasefile={dir}/dnsmasq.leases\n\
         dhcp-hostsfile={dir}/ethers\n\
         port=0\n\
         bind-interfaces\n\
         except-interface=lo\n\
         no-resolv\n\
         no-hosts\n\
         dhcp-authoritative\n",
        zone = zone.zone
    );
    for vnet in &zone.vnets {
        let _ = writeln!(out, "interface={vnet}");
    }
    for (n, serve) in zone.ranges.iter().enumerate() {
        let tag = format!("{}-{n}", serve.subnet);
        let _ =
            writeln!(out, "dhcp-range=set:{tag},{},{},{},1h", serve.range.start, serve.range.end, serve.cidr.netmask());
        let _ = writeln!(out, "dhcp-option=tag:{tag},option:router,{}", serve.gateway);
        if let Some(dns) = serve.dns {
            let _ = writeln!(out, "dhcp-option=tag:{tag},option:dns-server,{dns}");
        }
    }
    out
}

/// The hosts file of a zone's dnsmasq: `MAC,IP` per IPAM entry of the zone.
pub fn dnsmasq_ethers(zone: &str, entries: &[IpamEntry]) -> String {
    entries.iter().filter(|e| e.zone == zone).map(|e| format!("{},{}\n", e.mac, e.ip)).collect()
}
