//! hearth-testnet: hearth-net's link operations from a shell script, for the network tests
//! that run in the kernel-complete test host (VLAN interfaces, VLAN-aware bridges, bonds),
//! where a test is one script. Never installed.
//!
//! ```text
//! hearth-testnet [-n NETNS] COMMAND...
//! hearth-testnet bridge NAME [vlan-aware]
//! hearth-testnet vlan NAME PARENT ID
//! hearth-testnet bond NAME MODE SLAVE... [primary=SLAVE] [miimon=MS]
//! hearth-testnet plug PORT BRIDGE [tag=N] [trunks=A;B-C]
//! hearth-testnet show NAME
//! hearth-testnet listen ADDRESS PORT           (answers every connection with "hearth\n")
//! hearth-testnet connect ADDRESS PORT SECONDS  (retries until the greeting or the deadline)
//! hearth-testnet stat NAME rx|tx               (packets received or sent)
//! ```
//!
//! Every link is created and brought up through hearth-net (netlink); `plug` is the same
//! `plug_port` the guest start paths use. `-n` runs the command in the named namespace
//! (`/run/netns/NETNS`) without a second process: starting processes is what costs most in the
//! test host. An error is printed as hearth-net words it and the exit status is 1.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use hearth_net::{BondMode, BondOptions, BridgeOptions, NetError, Netlink, PortPlug, VlanProtocol, parse_trunks};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("hearth-testnet: {e}");
        std::process::exit(1);
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    if let ["-n", netns, ..] = args.as_slice() {
        let path = format!("/run/netns/{netns}");
        let file = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| format!("entering {path}: {e}"))?;
        args.drain(..2);
    }
    match args.as_slice() {
        ["listen", address, port] => return listen(address, port),
        ["connect", address, port, seconds] => return connect(address, port, seconds),
        ["stat", name, which] => {
            println!("{}", packets(name, which)?);
            return Ok(());
        }
        _ => {}
    }
    let mut nl = Netlink::open().map_err(|e| e.to_string())?;
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
            // The kernel records a primary that is not enslaved yet and picks it when it is.
            nl.create_bond(name, &options).map_err(text)?;
            for slave in &slaves {
                nl.set_up(slave, false).map_err(text)?;
                nl.set_master(slave, Some(name)).map_err(text)?;
                nl.set_up(slave, true).map_err(text)?;
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

fn socket_address(address: &str, port: &str) -> Result<SocketAddr, String> {
    format!("{address}:{port}").parse().map_err(|_| format!("invalid address '{address}' or port '{port}'"))
}

fn listen(address: &str, port: &str) -> Result<(), String> {
    let address = socket_address(address, port)?;
    let listener = TcpListener::bind(address).map_err(|e| format!("listening on {address}: {e}"))?;
    for stream in listener.incoming() {
        if let Ok(mut stream) = stream {
            let _ = stream.write_all(b"hearth\n");
        }
    }
    Ok(())
}

fn connect(address: &str, port: &str, seconds: &str) -> Result<(), String> {
    let address = socket_address(address, port)?;
    let seconds: f64 = seconds.parse().map_err(|_| format!("invalid number of seconds '{seconds}'"))?;
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    loop {
        let attempt = TcpStream::connect_timeout(&address, Duration::from_secs(1)).and_then(|mut stream| {
            stream.set_read_timeout(Some(Duration::from_secs(2)))?;
            let mut greeting = Vec::new();
            stream.read_to_end(&mut greeting)?;
            Ok(greeting)
        });
        match attempt {
            Ok(greeting) if greeting == b"hearth\n" => return Ok(()),
            Ok(greeting) => return Err(format!("{address} answered {:?}", String::from_utf8_lossy(&greeting))),
            Err(e) if Instant::now() >= deadline => return Err(format!("connecting to {address}: {e}")),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Packets received (`rx`) or sent (`tx`) by `name`, from `/proc/self/net/dev` (which shows
/// the reading process's namespace).
fn packets(name: &str, which: &str) -> Result<u64, String> {
    let column = match which {
        "rx" => 1,
        "tx" => 9,
        _ => return Err(usage()),
    };
    let table = std::fs::read_to_string("/proc/self/net/dev").map_err(|e| format!("/proc/self/net/dev: {e}"))?;
    table
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(dev, _)| dev.trim() == name)
        .and_then(|(_, counters)| counters.split_whitespace().nth(column)?.parse().ok())
        .ok_or_else(|| format!("no counters for {name}"))
}

fn text(e: NetError) -> String {
    e.to_string()
}

fn usage() -> String {
    "usage: hearth-testnet bridge NAME [vlan-aware] | vlan NAME PARENT ID | \
     bond NAME MODE SLAVE... [primary=SLAVE] [miimon=MS] | plug PORT BRIDGE [tag=N] [trunks=LIST] | show NAME | \
     listen ADDRESS PORT | connect ADDRESS PORT SECONDS | stat NAME rx|tx (each after an optional -n NETNS)"
        .into()
}
