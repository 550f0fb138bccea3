//! `netctl list|show|create|set|delete`: interfaces of the staged configuration, as Proxmox's
//! `/nodes/{node}/network` API.

use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, Align, OutputFormat, Table};
use hearth_core::network::{BOND_MODES, BOND_XMIT_HASH_POLICIES, IfaceType};
use hearth_proto::{NetworkInterface, NetworkRequest, Payload};

use super::{change, option, optional, positional};

fn iface() -> Arg {
    positional("iface", "IFACE", "Interface name (at most 15 bytes; bridges vmbrN or a letter and up to 9 more)")
}

/// A key of an interface: whether it is a switch (`0|1`), its value name and help.
struct Key {
    name: &'static str,
    switch: bool,
    value: &'static str,
    help: &'static str,
}

const fn key(name: &'static str, value: &'static str, help: &'static str) -> Key {
    Key { name, switch: false, value, help }
}

const fn switch(name: &'static str, help: &'static str) -> Key {
    Key { name, switch: true, value: "0|1", help }
}

/// The keys `create` and `set` take, under the network API's names.
const KEYS: &[Key] = &[
    switch("autostart", "Bring the interface up at boot and on apply (`auto IFACE`)"),
    key("cidr", "CIDR", "IPv4 address with prefix length, 192.168.10.2/24"),
    key("gateway", "IPv4", "Default IPv4 gateway; inside cidr's subnet, one per node"),
    key("cidr6", "CIDR6", "IPv6 address with prefix length"),
    key("gateway6", "IPv6", "Default IPv6 gateway; inside cidr6's subnet, one per node"),
    key("mtu", "1280-65520", "MTU; not above the parent's (bridge port, bond, VLAN raw device)"),
    key("bridge_ports", "IFACES", "Ports of a bridge, separated by spaces or commas"),
    switch("bridge_vlan_aware", "Make the bridge VLAN aware"),
    key("bridge_vids", "VIDS", "VLANs a VLAN-aware bridge carries: '2 4 100-200' (default 2-4094)"),
    switch("bridge_stp", "Spanning tree on the bridge"),
    key("bridge_fd", "SECONDS", "Bridge forward delay"),
    key("slaves", "IFACES", "Slaves of a bond, separated by spaces or commas"),
    key("bond_mode", "MODE", "Bond mode"),
    key("bond_miimon", "MS", "Link monitoring interval of a bond in milliseconds"),
    key("bond-primary", "IFACE", "Primary slave of an active-backup bond"),
    key("bond_xmit_hash_policy", "POLICY", "Transmit hash policy of a bond"),
    key("vlan-raw-device", "IFACE", "Parent of a VLAN interface"),
    key("vlan-id", "1-4094", "VLAN id of a VLAN interface"),
    key("comments", "TEXT", "Comment (IPv4 stanza)"),
    key("comments6", "TEXT", "Comment (IPv6 stanza)"),
];

fn key_args() -> Vec<Arg> {
    KEYS.iter()
        .map(|k| {
            let arg = if k.switch { cli::flag_arg(k.name, k.help) } else { option(k.name, k.value, k.help) };
            match k.name {
                "bond_mode" => arg.value_parser(BOND_MODES.to_vec()),
                "bond_xmit_hash_policy" => arg.value_parser(BOND_XMIT_HASH_POLICIES.to_vec()),
                _ => arg,
            }
        })
        .collect()
}

/// The keys given on the command line, switches as `0`/`1`, in table order.
fn key_values(m: &ArgMatches) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for k in KEYS {
        let value = if k.switch {
            cli::flag_value(m, k.name).map(|b| if b { "1".to_owned() } else { "0".to_owned() })
        } else {
            optional(m, k.name)
        };
        if let Some(value) = value {
            out.push((k.name.to_owned(), value));
        }
    }
    out
}

fn type_arg(required: bool) -> Arg {
    let arg = option("type", "TYPE", "Interface type").required(required);
    if required {
        arg.value_parser(IfaceType::CREATABLE.to_vec())
    } else {
        arg.value_parser(["bridge", "bond", "vlan", "eth", "loopback", "unknown", "any_bridge"])
    }
}

pub fn list_command() -> Command {
    Command::new("list")
        .about("List the node's network interfaces")
        .long_about(
            "List the interfaces of the staged configuration (the running one when nothing is \
             staged), with whether each exists in the kernel and is up.",
        )
        .arg(type_arg(false).help("Only interfaces of this type (any_bridge: bridges)"))
}

pub fn show_command() -> Command {
    Command::new("show").about("Show one interface's configuration").arg(iface())
}

pub fn create_command() -> Command {
    Command::new("create")
        .about("Add an interface to the staged configuration")
        .arg(iface())
        .arg(type_arg(true))
        .args(key_args())
}

pub fn set_command() -> Command {
    Command::new("set")
        .about("Change an interface in the staged configuration")
        .arg(iface())
        .args(key_args())
        .arg(cli::key_list_arg("delete", "Keys to remove"))
}

pub fn delete_command() -> Command {
    Command::new("delete")
        .about("Remove an interface from the staged configuration")
        .long_about("Remove an interface from the staged configuration; a bridge that a guest NIC names is refused.")
        .arg(iface())
}

fn interfaces(request: NetworkRequest) -> anyhow::Result<Vec<NetworkInterface>> {
    match super::call(request)? {
        Payload::NetworkInterfaces(list) => Ok(list),
        other => Err(cli::unexpected(&other)),
    }
}

fn join(items: &[String]) -> String {
    items.join(" ")
}

fn bit(b: bool) -> String {
    if b { "1".into() } else { "0".into() }
}

pub fn list(m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let list = interfaces(NetworkRequest::List { kind: optional(m, "type") })?;
    if format.is_json() {
        return cli::print_json(&list, format);
    }
    let mut table = Table::new(&[
        ("iface", Align::Left),
        ("type", Align::Left),
        ("active", Align::Right),
        ("autostart", Align::Right),
        ("cidr", Align::Left),
        ("gateway", Align::Left),
        ("ports/slaves", Align::Left),
        ("comments", Align::Left),
    ]);
    for i in &list {
        let c = &i.config;
        let ports = if c.bridge_ports.is_empty() { join(&c.slaves) } else { join(&c.bridge_ports) };
        table.row(vec![
            c.iface.clone(),
            c.kind.as_str().to_owned(),
            bit(i.active),
            bit(c.autostart),
            c.cidr.clone().unwrap_or_default(),
            c.gateway.clone().unwrap_or_default(),
            ports,
            c.comments.clone().unwrap_or_default().trim_end().replace('\n', " "),
        ]);
    }
    table.print()
}

pub fn show(m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let list = interfaces(NetworkRequest::Show { iface: super::string(m, "iface") })?;
    if format.is_json() {
        return match list.first() {
            Some(one) => cli::print_json(one, format),
            None => cli::print_json(&list, format),
        };
    }
    let mut out = String::new();
    for i in &list {
        out.push_str(&cli::render_fields(i)?);
    }
    cli::print_text(&out)
}

pub fn create(m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let mut options = vec![("type".to_owned(), super::string(m, "type"))];
    options.extend(key_values(m));
    change(NetworkRequest::Create { iface: super::string(m, "iface"), options }, format)
}

pub fn set(m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let request = NetworkRequest::Set {
        iface: super::string(m, "iface"),
        options: key_values(m),
        delete: cli::key_list(m, "delete"),
    };
    change(request, format)
}

pub fn delete(m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    change(NetworkRequest::Delete { iface: super::string(m, "iface") }, format)
}
