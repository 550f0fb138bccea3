//! `fwctl simulate`: which rule decides a new connection, and why.

use clap::{ArgMatches, Command};
use hearth_client::cli::OutputFormat;
use hearth_proto::FirewallRequest;

use super::{option, optional, print, string, text};

pub fn command() -> Command {
    Command::new("simulate")
        .about("Show which rule decides a connection")
        .long_about(
            "Walk the compiled ruleset for the first packet of a new connection, as pve-firewall simulate \
             does: which chains it passes and which rule or policy decides. Endpoints are host, outside, \
             routed (another network the node routes to or from: the host's FORWARD rules), vmN or \
             ctN (optionally /netN for another NIC than net0).",
        )
        .arg(option("from", "ENDPOINT", "Where the packet comes from").required(true))
        .arg(option("to", "ENDPOINT", "Where it goes").required(true))
        .arg(option("source", "IP", "Source address").required(true))
        .arg(option("dest", "IP", "Destination address").required(true))
        .arg(option("proto", "PROTO", "Protocol (default tcp)"))
        .arg(option("dport", "PORT", "Destination port").value_parser(clap::value_parser!(u16)))
        .arg(option("sport", "PORT", "Source port").value_parser(clap::value_parser!(u16)))
        .arg(option("iface", "IFACE", "The host interface it arrives on"))
}

pub fn run(m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let t = text(FirewallRequest::Simulate {
        from: string(m, "from"),
        to: string(m, "to"),
        source: string(m, "source"),
        dest: string(m, "dest"),
        proto: optional(m, "proto").unwrap_or_else(|| "tcp".into()),
        dport: m.try_get_one::<u16>("dport").ok().flatten().copied(),
        sport: m.try_get_one::<u16>("sport").ok().flatten().copied(),
        iface: optional(m, "iface"),
    })?;
    print(&t, format)
}
