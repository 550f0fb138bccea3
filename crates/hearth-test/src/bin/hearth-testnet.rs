//! hearth-testnet: hearth-net's guest port plugging, and the traffic and counters to check it,
//! from a shell script, for the network tests that run in the kernel-complete test host
//! (VLAN-aware bridges, VLAN interfaces, bonds), where a test is one script. Never installed.
//!
//! ```text
//! hearth-testnet [-n NETNS] COMMAND...
//! hearth-testnet plug PORT BRIDGE [tag=N] [trunks=A;B-C]
//! hearth-testnet show NAME
//! hearth-testnet listen ADDRESS PORT           (answers every connection with "hearth\n")
//! hearth-testnet connect ADDRESS PORT SECONDS  (retries until the greeting or the deadline)
//! hearth-testnet stat NAME rx|tx               (packets received or sent)
//! ```
//!
//! `plug` is the same `plug_port` the guest start paths use (what `netctl` does not do: a
//! guest's port). `-n` runs the command in the named namespace
//! (`/run/netns/NETNS`) without a second process: starting processes is what costs most in the
//! test host. An error is printed as hearth-net words it and the exit status is 1.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use hearth_net::{NetError, Netlink, PortPlug, parse_trunks};

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
    for mut stream in listener.incoming().flatten() {
        let _ = stream.write_all(b"hearth\n");
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
    "usage: hearth-testnet plug PORT BRIDGE [tag=N] [trunks=LIST] | show NAME | \
     listen ADDRESS PORT | connect ADDRESS PORT SECONDS | stat NAME rx|tx (each after an optional -n NETNS)"
        .into()
}
