//! hearth-testnet: hearth-net's link operations from a shell script, for the network tests
//! that run in the kernel-complete test host (VLAN interfaces, VLAN-aware bridges, bonds),
//! where a test is one script. Never installed.
//!
//! ```text
//! hearth-testnet bridge NAME [vlan-aware]
//! hearth-testnet vlan NAME PARENT ID
//! hearth-testnet bond NAME MODE SLAVE... [primary=SLAVE] [miimon=MS]
//! hearth-testnet plug PORT BRIDGE [tag=N] [trunks=A;B-C]
//! hearth-testnet show NAME
//! ```
//!
//! Every link is created and brought up through hearth-net (netlink); `plug` is the same
//! `plug_port` the guest start paths use. An error is printed as hearth-net words it and the
//! exit status is 1.

use hearth_net::{BondMode, BondOptions, BridgeOptions, NetError, Netlink, PortPlug, VlanProtocol, parse_trunks};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("hearth-testnet: {e}");
        std::process::exit(1);
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let mut nl = Netlink::open().map_err(|e| e.to_string())?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["bridge", name, rest @ ..] => {
            let vlan_filtering = match rest {
                [] => false,
                ["vlan-aware"] => true,
                _ => return Err(usage()),
            };
            nl.create_bridge(name, &BridgeOptions { vlan_filtering, ..BridgeOptions::default() }).map_err(text)?;
            nl.set_up(name, true).map_err(text)
        }
        ["vlan", name, parent, id] => {
            let id: u16 = id.parse().map_err(|_| format!("invalid VLAN id '{id}'"))?;
            nl.create_vlan(name, parent, id, VlanProtocol::Dot1Q).map_err(text)?;
            nl.set_up(name, true).map_err(text)
        }
        ["bond", name, mode, rest @ ..] => {
            let mode: BondMode = mode.parse().map_err(text)?;
            let mut options = BondOptions { mode, miimon: Some(100), xmit_hash_policy: None, primary: None };
            let mut slaves = Vec::new();
            for arg in rest {
                if let Some(primary) = arg.strip_prefix("primary=") {
                    options.primary = Some(primary.to_owned());
                } else if let Some(ms) = arg.strip_prefix("miimon=") {
                    options.miimon = Some(ms.parse().map_err(|_| format!("invalid miimon '{ms}'"))?);
                } else {
                    slaves.push(*arg);
                }
            }
            if slaves.is_empty() {
                return Err("a bond needs at least one slave".into());
            }
            // The primary must be a slave already when it is set: create, enslave, then set.
            let primary = options.primary.take();
            nl.create_bond(name, &options).map_err(text)?;
            for slave in &slaves {
                nl.set_up(slave, false).map_err(text)?;
                nl.set_master(slave, Some(name)).map_err(text)?;
                nl.set_up(slave, true).map_err(text)?;
            }
            if let Some(primary) = primary {
                std::fs::write(format!("/sys/class/net/{name}/bonding/primary"), &primary)
                    .map_err(|e| format!("{name}: set primary {primary}: {e}"))?;
            }
            nl.set_up(name, true).map_err(text)
        }
        ["plug", port, bridge, rest @ ..] => {
            let mut plug = PortPlug::new(*port, *bridge);
            for arg in rest {
                if let Some(tag) = arg.strip_prefix("tag=") {
                    plug.tag = Some(tag.parse().map_err(|_| format!("invalid tag '{tag}'"))?);
                } else if let Some(trunks) = arg.strip_prefix("trunks=") {
                    plug.trunks = parse_trunks(trunks).map_err(text)?;
                } else {
                    return Err(usage());
                }
            }
            let report = hearth_net::plug_port(&mut nl, &plug).map_err(text)?;
            for warning in report.warnings {
                eprintln!("hearth-testnet: {warning}");
            }
            Ok(())
        }
        ["show", name] => {
            println!("{:?}", nl.link(name).map_err(text)?);
            Ok(())
        }
        _ => Err(usage()),
    }
}

fn text(e: NetError) -> String {
    e.to_string()
}

fn usage() -> String {
    "usage: hearth-testnet bridge NAME [vlan-aware] | vlan NAME PARENT ID | \
     bond NAME MODE SLAVE... [primary=SLAVE] [miimon=MS] | plug PORT BRIDGE [tag=N] [trunks=LIST] | show NAME"
        .into()
}
