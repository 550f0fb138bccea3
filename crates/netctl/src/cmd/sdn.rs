//! `netctl sdn`: Proxmox's SDN from the shell. Zones, VNets and subnets are edited as pending
//! changes (`zone|vnet|subnet add|set|delete|list`), shown with `pending`, made real with
//! `apply` (rolled back unless `confirm` follows in time) and dropped with `revert`; `ipam list`
//! shows which guest NIC holds which address.

use clap::{Arg, ArgAction, ArgMatches, Command};
use hearth_client::cli::{self, Align, OutputFormat, Subcommand, Table};
use hearth_proto::{Payload, Request, SdnObjectKind, SdnRequest};

const COMMANDS: &[Subcommand] = &[
    Subcommand::new("zone", zone_command, zone_run),
    Subcommand::new("vnet", vnet_command, vnet_run),
    Subcommand::new("subnet", subnet_command, subnet_run),
    Subcommand::new("pending", pending_command, pending),
    Subcommand::new("apply", apply_command, apply),
    Subcommand::new("confirm", confirm_command, confirm),
    Subcommand::new("revert", revert_command, revert),
    Subcommand::new("ipam", ipam_command, ipam_run),
];

pub fn command() -> Command {
    Command::new("sdn")
        .about("Software-defined networks: zones, VNets, subnets, DHCP and IPAM")
        .long_about(
            "Manage the node's SDN as Proxmox VE's SDN panel does. A zone is an isolation \
             technology (simple: a host-local routed bridge with SNAT and DHCP; vlan: a tag on a \
             VLAN-aware bridge; vxlan: tunnels to a list of peers), a VNet a bridge of that name \
             that guest NICs join with bridge=<vnet>, a subnet a network on a VNet with its gateway, \
             SNAT and DHCP ranges. Edits are pending (etc/hearth/sdn/sdn.toml) until `netctl sdn \
             apply` makes them the running configuration; unless `netctl sdn confirm` follows \
             within --confirm-timeout seconds (default 60) the previous state comes back.\n\n\
             Reading needs SDN.Audit, changes SDN.Allocate on /sdn/zones/<zone>[/<vnet>], apply \
             SDN.Allocate on /sdn; a guest NIC on a VNet needs SDN.Use on /sdn/zones/<zone>/<vnet>.",
        )
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommands(cli::subcommands(COMMANDS))
}

pub fn run(matches: &ArgMatches, _format: OutputFormat) -> anyhow::Result<()> {
    cli::dispatch(COMMANDS, "netctl sdn", matches)
}

fn call(request: SdnRequest) -> anyhow::Result<Payload> {
    Ok(cli::connect(crate::BIN)?.call(&Request::Sdn(request))?)
}

/// Prints a change's answer: the id in text (what `add` named a subnet), the payload in JSON.
fn print_answer(payload: Payload, format: OutputFormat) -> anyhow::Result<()> {
    if format.is_json() {
        return cli::print_json(&payload, format);
    }
    match payload {
        Payload::Text(text) => cli::print_text(&format!("{text}\n")),
        _ => Ok(()),
    }
}

/// A key option of an object kind: (option name, help, is a flag, may repeat).
type KeyOption = (&'static str, &'static str, bool, bool);

const ZONE_KEYS: &[KeyOption] = &[
    ("type", "Zone type: simple, vlan or vxlan (add only)", false, false),
    ("nodes", "Nodes the zone exists on (comma-separated; default all)", false, false),
    ("ipam", "IPAM that allocates guest addresses: pve", false, false),
    ("mtu", "MTU of the zone's VNets (vxlan default: underlay MTU - 50)", false, false),
    ("dhcp", "DHCP server for the zone's subnets: dnsmasq (simple zones)", false, false),
    ("bridge", "vlan: the VLAN-aware bridge to tag on", false, false),
    ("peers", "vxlan: underlay addresses of every node, this one included (comma-separated)", false, false),
    ("vxlan-port", "vxlan: UDP port (default 4789)", false, false),
];

const VNET_KEYS: &[KeyOption] = &[
    ("zone", "Zone of the VNet", false, false),
    ("tag", "VLAN id (1-4094) or VXLAN id (1-16777215)", false, false),
    ("alias", "Description", false, false),
    ("vlanaware", "Make the VNet bridge VLAN-aware", true, false),
    ("isolate-ports", "Isolate guest ports from each other", true, false),
];

const SUBNET_KEYS: &[KeyOption] = &[
    ("vnet", "VNet of the subnet", false, false),
    ("gateway", "Gateway address (on the VNet bridge)", false, false),
    ("snat", "Masquerade traffic leaving the subnet", true, false),
    ("dhcp-range", "start-address=A,end-address=B (repeatable)", false, true),
    ("dhcp-dns-server", "DNS server handed out by DHCP", false, false),
];

fn keys_of(kind: SdnObjectKind) -> &'static [KeyOption] {
    match kind {
        SdnObjectKind::Zone => ZONE_KEYS,
        SdnObjectKind::Vnet => VNET_KEYS,
        SdnObjectKind::Subnet => SUBNET_KEYS,
    }
}

fn noun(kind: SdnObjectKind) -> &'static str {
    match kind {
        SdnObjectKind::Zone => "zone",
        SdnObjectKind::Vnet => "vnet",
        SdnObjectKind::Subnet => "subnet",
    }
}

fn key_args(kind: SdnObjectKind) -> Vec<Arg> {
    keys_of(kind)
        .iter()
        .map(|(name, help, is_flag, repeat)| {
            if *is_flag {
                cli::flag_arg(name, *help)
            } else {
                let arg = Arg::new(*name).long(*name).value_name("VALUE").help(*help);
                if *repeat { arg.action(ArgAction::Append) } else { arg }
            }
        })
        .collect()
}

/// The key options given, as `(key, value)` pairs.
fn options(kind: SdnObjectKind, m: &ArgMatches) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, _, is_flag, _) in keys_of(kind) {
        if *is_flag {
            if let Some(v) = cli::flag_value(m, name) {
                out.push(((*name).to_owned(), if v { "1" } else { "0" }.to_owned()));
            }
        } else if let Ok(Some(values)) = m.try_get_many::<String>(name) {
            out.extend(values.map(|v| ((*name).to_owned(), v.clone())));
        }
    }
    out
}

fn id_arg(kind: SdnObjectKind) -> Arg {
    let help = match kind {
        SdnObjectKind::Zone => "Zone id (1-8 of a-z 0-9)",
        SdnObjectKind::Vnet => "VNet id (1-8 of a-z 0-9)",
        SdnObjectKind::Subnet => "Subnet: its CIDR (10.0.0.0/24) or id (<zone>-10.0.0.0-24)",
    };
    Arg::new("id").value_name("ID").required(true).help(help)
}

fn group(kind: SdnObjectKind) -> Command {
    let n = noun(kind);
    Command::new(n)
        .about(format!("Add, change, delete and list SDN {n}s"))
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(
            Command::new("add")
                .about(format!("Add a {n} (pending until apply)"))
                .arg(id_arg(kind))
                .args(key_args(kind)),
        )
        .subcommand(
            Command::new("set")
                .about(format!("Change keys of a {n} (pending until apply)"))
                .arg(id_arg(kind))
                .args(key_args(kind))
                .arg(cli::key_list_arg("delete", "Keys to clear")),
        )
        .subcommand(Command::new("delete").about(format!("Delete a {n} (pending until apply)")).arg(id_arg(kind)))
        .subcommand(
            Command::new("list")
                .about(format!("List the {n}s of the pending configuration"))
                .arg(cli::flag_arg("running", "List the running (applied) configuration instead")),
        )
}

fn group_run(kind: SdnObjectKind, matches: &ArgMatches) -> anyhow::Result<()> {
    let Some((name, m)) = matches.subcommand() else {
        anyhow::bail!("no command given; see `netctl sdn {} --help`", noun(kind))
    };
    let format = OutputFormat::from_matches(m);
    let id = || m.get_one::<String>("id").cloned().unwrap_or_default();
    match name {
        "add" => print_answer(call(SdnRequest::Add { kind, id: id(), options: options(kind, m) })?, format),
        "set" => print_answer(
            call(SdnRequest::Set { kind, id: id(), options: options(kind, m), delete: cli::key_list(m, "delete") })?,
            format,
        ),
        "delete" => print_answer(call(SdnRequest::Delete { kind, id: id() })?, format),
        "list" => list(kind, cli::flag(m, "running"), format),
        other => anyhow::bail!("unknown command '{other}'; see `netctl sdn {} --help`", noun(kind)),
    }
}

fn list(kind: SdnObjectKind, running: bool, format: OutputFormat) -> anyhow::Result<()> {
    let objects = match call(SdnRequest::List { kind, running })? {
        Payload::SdnObjects(objects) => objects,
        other => return Err(cli::unexpected(&other)),
    };
    if format.is_json() {
        return cli::print_json(&objects, format);
    }
    let mut table = Table::new(&[(noun(kind), Align::Left), ("state", Align::Left), ("keys", Align::Left)]);
    for o in objects {
        let keys: Vec<String> = o.properties.iter().map(|(k, v)| format!("{k}={v}")).collect();
        table.row(vec![o.id, o.state.unwrap_or_else(|| "-".into()), keys.join(" ")]);
    }
    table.print()
}

fn zone_command() -> Command {
    group(SdnObjectKind::Zone)
}
fn zone_run(m: &ArgMatches, _f: OutputFormat) -> anyhow::Result<()> {
    group_run(SdnObjectKind::Zone, m)
}
fn vnet_command() -> Command {
    group(SdnObjectKind::Vnet)
}
fn vnet_run(m: &ArgMatches, _f: OutputFormat) -> anyhow::Result<()> {
    group_run(SdnObjectKind::Vnet, m)
}
fn subnet_command() -> Command {
    group(SdnObjectKind::Subnet)
}
fn subnet_run(m: &ArgMatches, _f: OutputFormat) -> anyhow::Result<()> {
    group_run(SdnObjectKind::Subnet, m)
}

fn pending_command() -> Command {
    Command::new("pending").about("Show what apply would change: new (+), deleted (-) and changed (~) objects")
}

fn pending(_m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let changes = match call(SdnRequest::Pending)? {
        Payload::SdnChanges(changes) => changes,
        other => return Err(cli::unexpected(&other)),
    };
    if format.is_json() {
        return cli::print_json(&changes, format);
    }
    let mut out = String::new();
    for c in changes {
        let sign = match c.state.as_str() {
            "new" => '+',
            "deleted" => '-',
            _ => '~',
        };
        out.push_str(&format!("{sign} {} {}\n", noun(c.kind), c.id));
        for line in c.running.iter().filter(|l| !c.pending.contains(l)) {
            out.push_str(&format!("    - {line}\n"));
        }
        for line in c.pending.iter().filter(|l| !c.running.contains(l)) {
            out.push_str(&format!("    + {line}\n"));
        }
    }
    cli::print_text(&out)
}

fn apply_command() -> Command {
    Command::new("apply")
        .about("Apply the pending SDN configuration to this node")
        .long_about(
            "Make the pending SDN configuration the running one: VNet bridges, gateway addresses, \
             VXLAN tunnels, SNAT (nftables table inet hearth-sdn) and one dnsmasq per DHCP zone, \
             touching only what changed. A failing step rolls everything back and names the step. \
             Unless `netctl sdn confirm` follows within --confirm-timeout seconds, the previous \
             configuration is restored.",
        )
        .arg(
            Arg::new("confirm-timeout")
                .long("confirm-timeout")
                .value_name("SECONDS")
                .value_parser(clap::value_parser!(u64))
                .help("Seconds to wait for `netctl sdn confirm` before rolling back (default 60; 0: no confirmation)"),
        )
}

fn apply(m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let confirm_timeout = m.try_get_one::<u64>("confirm-timeout").ok().flatten().copied();
    print_answer(call(SdnRequest::Apply { confirm_timeout })?, format)
}

fn confirm_command() -> Command {
    Command::new("confirm").about("Keep the SDN configuration applied last")
}

fn confirm(_m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    print_answer(call(SdnRequest::Confirm)?, format)
}

fn revert_command() -> Command {
    Command::new("revert").about("Drop the pending SDN edits (and roll back an apply that waits for confirmation)")
}

fn revert(_m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    print_answer(call(SdnRequest::Revert)?, format)
}

fn ipam_command() -> Command {
    Command::new("ipam")
        .about("The pve IPAM's addresses")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(Command::new("list").about("List guest NICs with their MAC and IP address"))
}

fn ipam_run(matches: &ArgMatches, _f: OutputFormat) -> anyhow::Result<()> {
    let Some(("list", m)) = matches.subcommand() else {
        anyhow::bail!("no command given; see `netctl sdn ipam --help`")
    };
    let format = OutputFormat::from_matches(m);
    let entries = match call(SdnRequest::IpamList)? {
        Payload::Ipam(entries) => entries,
        other => return Err(cli::unexpected(&other)),
    };
    if format.is_json() {
        return cli::print_json(&entries, format);
    }
    let mut table = Table::new(&[
        ("vmid", Align::Right),
        ("nic", Align::Left),
        ("mac", Align::Left),
        ("ip", Align::Left),
        ("vnet", Align::Left),
        ("zone", Align::Left),
        ("subnet", Align::Left),
    ]);
    for e in entries {
        table.row(vec![e.vmid.to_string(), e.nic, e.mac, e.ip, e.vnet, e.zone, e.subnet]);
    }
    table.print()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;

    #[test]
    fn parses_sdn_command_lines() {
        let parse = |args: &[&str]| crate::command().try_get_matches_from(args);
        for ok in [
            &["netctl", "sdn", "zone", "add", "zs", "--type", "simple", "--dhcp", "dnsmasq", "--ipam", "pve"][..],
            &["netctl", "sdn", "zone", "add", "zx", "--type", "vxlan", "--peers", "192.0.2.1,192.0.2.2"],
            &["netctl", "sdn", "vnet", "add", "vnet0", "--zone", "zs", "--isolate-ports"],
            &[
                "netctl",
                "sdn",
                "subnet",
                "add",
                "10.0.0.0/24",
                "--vnet",
                "vnet0",
                "--gateway",
                "10.0.0.1",
                "--snat",
                "--dhcp-range",
                "start-address=10.0.0.100,end-address=10.0.0.150",
                "--dhcp-range",
                "start-address=10.0.0.200,end-address=10.0.0.210",
            ],
            &["netctl", "sdn", "subnet", "set", "zs-10.0.0.0-24", "--delete", "snat"],
            &["netctl", "sdn", "zone", "list", "--running", "--output-format", "json"],
            &["netctl", "sdn", "pending"],
            &["netctl", "sdn", "apply", "--confirm-timeout", "0"],
            &["netctl", "sdn", "ipam", "list"],
        ] {
            parse(ok).unwrap();
        }
        for bad in [&["netctl", "sdn", "zone", "add"][..], &["netctl", "sdn", "vnet", "add", "v", "--color", "red"]] {
            assert_eq!(parse(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
        let m = parse(&[
            "netctl",
            "sdn",
            "subnet",
            "add",
            "10.0.0.0/24",
            "--vnet",
            "v",
            "--snat",
            "--dhcp-range",
            "a",
            "--dhcp-range",
            "b",
        ])
        .unwrap();
        let m = m.subcommand().unwrap().1.subcommand().unwrap().1.subcommand().unwrap().1;
        assert_eq!(
            options(SdnObjectKind::Subnet, m),
            [("vnet", "v"), ("snat", "1"), ("dhcp-range", "a"), ("dhcp-range", "b")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }
}
