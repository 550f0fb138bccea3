//! Real packets through compiled rulesets: a private "host" network namespace holds a bridge
//! with an outside port and a guest port (`tap100i0`, a veth whose peer is the guest's eth0 in
//! its own namespace); the ruleset is applied inside the host namespace only, so the machine's
//! own nftables are never touched. Needs root, `ip`, `nsenter`, `nft` and python3.

#![allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use hearth_core::firewall::{FirewallConfig, Verdict, fwfile};
use hearth_fw::{Endpoint, FirewallInput, GuestFirewall, GuestNic, Nft, Packet, compile, simulate};

const SERVER: &str = r#"
import socket, sys, threading
def echo(c):
    try:
        while True:
            d = c.recv(100)
            if not d: break
            c.sendall(d)
    except OSError: pass
def tcp(p):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('0.0.0.0', p)); s.listen(128)
    while True:
        c, _ = s.accept(); threading.Thread(target=echo, args=(c,), daemon=True).start()
def udp(p):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', p))
    while True:
        d, a = s.recvfrom(100); s.sendto(d, a)
for p in map(int, sys.argv[1].split(',')):
    threading.Thread(target=tcp, args=(p,), daemon=True).start()
    threading.Thread(target=udp, args=(p,), daemon=True).start()
print('ready', flush=True)
threading.Event().wait()
"#;

const PROBE: &str = r#"
import socket, sys, concurrent.futures as cf
T = float(sys.argv[1])
def probe(item):
    src, proto, dst, port = item.split(','); port = int(port)
    kind = socket.SOCK_STREAM if proto == 'tcp' else socket.SOCK_DGRAM
    s = socket.socket(socket.AF_INET, kind); s.bind((src, 0)); s.settimeout(T)
    try:
        s.connect((dst, port)); s.send(b'x'); s.recv(10); return 'open'
    except ConnectionRefusedError: return 'refused'
    except (socket.timeout, TimeoutError): return 'timeout'
    except OSError as e: return 'error ' + str(e)
    finally: s.close()
with cf.ThreadPoolExecutor(64) as ex:
    for r in ex.map(probe, sys.argv[2:]): print(r)
"#;

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("spawn");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The namespaces of one test; removed on drop, even when the test fails.
struct Topology {
    host: String,
    outside: String,
    guest: String,
    /// A network behind the host that it routes to (`add_routed`).
    far: Option<String>,
    servers: Vec<Child>,
}

const PORTS: &[u16] = &[22, 23, 53, 80, 443, 5000, 5001, 5002, 6000, 7000];

impl Topology {
    fn new() -> Topology {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let sfx = format!("{:04x}", (std::process::id() * 16 + n) & 0xffff);
        let t = Topology {
            host: format!("hfh{sfx}"),
            outside: format!("hfo{sfx}"),
            guest: format!("hfg{sfx}"),
            far: None,
            servers: Vec::new(),
        };
        for ns in [&t.host, &t.outside, &t.guest] {
            sh(&["ip", "netns", "add", ns]);
        }
        let h = t.host.as_str();
        sh(&["ip", "-n", h, "link", "add", "br0", "type", "bridge"]);
        sh(&["ip", "-n", h, "link", "add", "vout", "type", "veth", "peer", "name", "eth0", "netns", &t.outside]);
        sh(&["ip", "-n", h, "link", "add", "tap100i0", "type", "veth", "peer", "name", "eth0", "netns", &t.guest]);
        for d in ["br0", "vout", "tap100i0"] {
            sh(&["ip", "-n", h, "link", "set", d, "up"]);
        }
        sh(&["ip", "-n", h, "link", "set", "vout", "master", "br0"]);
        sh(&["ip", "-n", h, "link", "set", "tap100i0", "master", "br0"]);
        sh(&["ip", "-n", h, "addr", "add", "10.9.0.254/24", "dev", "br0"]);
        for a in ["10.9.0.1/24", "10.9.0.3/24", "10.9.0.4/24", "10.9.0.5/24", "10.9.0.10/24", "10.9.0.11/24"] {
            sh(&["ip", "-n", &t.outside, "addr", "add", a, "dev", "eth0"]);
        }
        sh(&["ip", "-n", &t.guest, "link", "set", "eth0", "address", "bc:24:11:00:00:01"]);
        sh(&["ip", "-n", &t.guest, "addr", "add", "10.9.0.2/24", "dev", "eth0"]);
        sh(&["ip", "-n", &t.guest, "addr", "add", "10.9.0.66/24", "dev", "eth0"]);
        for ns in [&t.outside, &t.guest] {
            sh(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        t
    }

    fn nft(&self) -> Nft {
        Nft::in_netns(&PathBuf::from(format!("/run/netns/{}", self.host)))
    }

    /// Starts echo listeners (TCP and UDP) on every test port in the namespace.
    fn serve(&mut self, ns: &str) {
        let ports: Vec<String> = PORTS.iter().map(|p| p.to_string()).collect();
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-c", SERVER, &ports.join(",")])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 is needed (apt-get install python3)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line).expect("server output");
        assert_eq!(line.trim(), "ready");
        self.servers.push(child);
    }

    /// A fourth namespace, `far` (10.8.0.1/24), that the host routes to through its own link
    /// (`vfar`, 10.8.0.254): traffic between it and the bridge's 10.9.0.0/24 is routed, not
    /// bridged. Returns the namespace's name.
    fn add_routed(&mut self) -> String {
        let far = self.host.replacen("hfh", "hff", 1);
        sh(&["ip", "netns", "add", &far]);
        self.far = Some(far.clone());
        let h = self.host.as_str();
        sh(&["ip", "-n", h, "link", "add", "vfar", "type", "veth", "peer", "name", "eth0", "netns", &far]);
        sh(&["ip", "-n", h, "link", "set", "vfar", "up"]);
        sh(&["ip", "-n", h, "addr", "add", "10.8.0.254/24", "dev", "vfar"]);
        sh(&["ip", "netns", "exec", h, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        sh(&["ip", "-n", &far, "addr", "add", "10.8.0.1/24", "dev", "eth0"]);
        for d in ["eth0", "lo"] {
            sh(&["ip", "-n", &far, "link", "set", d, "up"]);
        }
        sh(&["ip", "-n", &far, "route", "add", "10.9.0.0/24", "via", "10.8.0.254"]);
        for ns in [&self.outside, &self.guest] {
            sh(&["ip", "-n", ns, "route", "add", "10.8.0.0/24", "via", "10.9.0.254"]);
        }
        far
    }

    /// Probes from `ns`: each item `src,proto,dst,port`; answers open, refused or timeout.
    fn probe(&self, ns: &str, items: &[String]) -> Vec<String> {
        let mut args = vec!["netns", "exec", ns, "python3", "-c", PROBE, "0.5"];
        args.extend(items.iter().map(String::as_str));
        let out = Command::new("ip").args(&args).output().expect("spawn probe");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for mut c in self.servers.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [Some(&self.host), Some(&self.outside), Some(&self.guest), self.far.as_ref()].into_iter().flatten() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn input(cluster: &str, guest: &str, ips: Vec<&str>) -> FirewallInput {
    input_with_host(cluster, "", guest, ips)
}

fn input_with_host(cluster: &str, host: &str, guest: &str, ips: Vec<&str>) -> FirewallInput {
    FirewallInput {
        cluster: fwfile::parse(cluster).unwrap(),
        host: if host.is_empty() { FirewallConfig::default() } else { fwfile::parse(host).unwrap() },
        guests: vec![GuestFirewall {
            vmid: 100,
            config: fwfile::parse(guest).unwrap(),
            nics: vec![GuestNic {
                index: 0,
                port: "tap100i0".into(),
                mac: Some("bc:24:11:00:00:01".into()),
                ips: ips.into_iter().map(|s| hearth_core::firewall::IpNet::parse(s).unwrap()).collect(),
                firewall: true,
            }],
        }],
    }
}

fn expect(v: Verdict) -> &'static str {
    match v {
        Verdict::Accept => "open",
        Verdict::Drop => "timeout",
        Verdict::Reject => "refused",
    }
}

const CLUSTER: &str = "[OPTIONS]\nenable: 1\n[ALIASES]\nfriend 10.9.0.4\n[IPSET trusted]\n10.9.0.0/24\n!10.9.0.5\n[group web]\nIN ACCEPT -p tcp -dport 80\n";

#[test]
fn guest_port_allows_drops_rejects_and_tracks_state() {
    let mut t = Topology::new();
    t.serve(&t.guest.clone());
    let guest = "[OPTIONS]\nenable: 1\n[RULES]\nIN SSH(ACCEPT)\nIN REJECT -p tcp -dport 23\nIN REJECT -p udp -dport 53\nIN ACCEPT -p tcp -dport 5000 -source +trusted\nIN ACCEPT -p tcp -dport 5001 -source friend\nGROUP web\nIN DNS(ACCEPT) -source 10.9.0.3\n";
    let rs = compile(&input(CLUSTER, guest, vec![])).unwrap();
    t.nft().apply(&rs.to_nft()).unwrap();
    let cases: &[(&str, &str, u16, &str, &str)] = &[
        ("10.9.0.1", "tcp", 22, "open", "macro SSH"),
        ("10.9.0.1", "tcp", 23, "refused", "REJECT is a TCP reset"),
        ("10.9.0.1", "udp", 53, "refused", "REJECT is ICMP port unreachable"),
        ("10.9.0.1", "tcp", 443, "timeout", "policy_in DROP"),
        ("10.9.0.1", "tcp", 5000, "open", "ipset member"),
        ("10.9.0.5", "tcp", 5000, "timeout", "ipset nomatch entry"),
        ("10.9.0.4", "tcp", 5001, "open", "alias"),
        ("10.9.0.1", "tcp", 5001, "timeout", "not the alias"),
        ("10.9.0.1", "tcp", 80, "open", "security group"),
        ("10.9.0.3", "tcp", 53, "open", "macro DNS (tcp)"),
    ];
    let items: Vec<String> = cases.iter().map(|(s, p, port, _, _)| format!("{s},{p},10.9.0.2,{port}")).collect();
    let got = t.probe(&t.outside, &items);
    for (c, g) in cases.iter().zip(&got) {
        assert_eq!(g, c.3, "{c:?}");
        let sim = simulate(
            &rs,
            &Packet {
                from: Endpoint::Outside,
                to: Endpoint::Guest { vmid: 100, index: 0 },
                source: c.0.parse().unwrap(),
                dest: "10.9.0.2".parse().unwrap(),
                proto: if c.1 == "tcp" { 6 } else { 17 },
                sport: Some(40000),
                dport: Some(c.2),
                icmp: None,
                iface: None,
            },
        );
        assert_eq!(expect(sim.verdict), c.3, "simulate {c:?}: {sim:?}");
    }
}

#[test]
fn return_traffic_passes_and_ipfilter_drops_spoofed_sources() {
    let mut t = Topology::new();
    t.serve(&t.outside.clone());
    // Inbound everything dropped: only conntrack lets the replies of the guest's own
    // connections in. ipfilter allows 10.9.0.2 (set) only, not the guest's second address.
    let guest = "[OPTIONS]\nenable: 1\nipfilter: 1\n[IPSET ipfilter-net0]\n10.9.0.2\n[RULES]\nIN DROP\n";
    let rs = compile(&input(CLUSTER, guest, vec![])).unwrap();
    t.nft().apply(&rs.to_nft()).unwrap();
    let got = t.probe(
        &t.guest,
        &["10.9.0.2,tcp,10.9.0.1,80".into(), "10.9.0.66,tcp,10.9.0.1,80".into(), "10.9.0.2,udp,10.9.0.1,53".into()],
    );
    assert_eq!(got, ["open", "timeout", "open"]);
    // A container's configured address is an implicit member.
    let rs = compile(&input(CLUSTER, guest, vec!["10.9.0.66/24"])).unwrap();
    t.nft().apply(&rs.to_nft()).unwrap();
    assert_eq!(t.probe(&t.guest, &["10.9.0.66,tcp,10.9.0.1,80".into()]), ["open"]);
}

#[test]
fn rule_edit_applies_at_once_and_keeps_connections() {
    let mut t = Topology::new();
    t.serve(&t.guest.clone());
    let rs = compile(&input(CLUSTER, "[OPTIONS]\nenable: 1\n[RULES]\nIN ACCEPT -p tcp -dport 7000\n", vec![])).unwrap();
    t.nft().apply(&rs.to_nft()).unwrap();
    // A long-lived connection, held by a client that echoes a byte on every line we send.
    let client = r#"
import socket, sys
s = socket.create_connection(('10.9.0.2', 7000), timeout=2)
print('connected', flush=True)
for line in sys.stdin:
    s.sendall(b'y'); print('ok' if s.recv(1) == b'y' else 'bad', flush=True)
"#;
    let mut c = Command::new("ip")
        .args(["netns", "exec", &t.outside, "python3", "-c", client])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "connected");
    let started = Instant::now();
    let rs2 = compile(&input(CLUSTER, "[OPTIONS]\nenable: 1\n[RULES]\nIN DROP -p tcp -dport 7000\n", vec![])).unwrap();
    t.nft().apply(&rs2.to_nft()).unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "apply took {took:?}");
    assert_eq!(
        t.probe(&t.outside, &["10.9.0.1,tcp,10.9.0.2,7000".into()]),
        ["timeout"],
        "the edit applies to new connections"
    );
    use std::io::Write;
    writeln!(c.stdin.as_mut().unwrap()).unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ok", "the existing connection survives the edit");
    let _ = c.kill();
    let _ = c.wait();
}

#[test]
fn a_ruleset_nft_refuses_leaves_the_old_one() {
    let t = Topology::new();
    let rs = compile(&input(CLUSTER, "[OPTIONS]\nenable: 1\n", vec![])).unwrap();
    t.nft().apply(&rs.to_nft()).unwrap();
    let before = t.nft().list_own().unwrap();
    let mut broken = rs.to_nft();
    broken.push_str("table inet hearth { chain x { this is not nft } }\n");
    let err = t.nft().apply(&broken).unwrap_err().to_string();
    assert!(err.contains("syntax error"), "{err}");
    assert_eq!(t.nft().list_own().unwrap(), before);
}

/// A small deterministic generator (xorshift), so failures reproduce from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[(self.next() % v.len() as u64) as usize]
    }
}

fn random_rule(r: &mut Rng, dir: &str) -> String {
    let action = *r.pick(&["ACCEPT", "DROP", "REJECT"]);
    let mut line = if r.next().is_multiple_of(5) {
        format!("{dir} {}({action})", r.pick(&["SSH", "HTTP", "Web", "DNS", "Telnet"]))
    } else {
        let mut l = format!("{dir} {action}");
        match r.next() % 3 {
            0 => {}
            _ => {
                l.push_str(&format!(" -p {}", r.pick(&["tcp", "udp"])));
                match r.next() % 4 {
                    0 => l.push_str(&format!(" -dport {}", r.pick(PORTS))),
                    1 => l.push_str(&format!(" -dport {}:{}", r.pick(&[22, 53, 80]), r.pick(&[443, 5001, 7000]))),
                    2 => l.push_str(&format!(" -dport {},{}", r.pick(PORTS), r.pick(PORTS))),
                    _ => {}
                }
            }
        }
        l
    };
    match r.next() % 5 {
        0 => line
            .push_str(&format!(" -source {}", r.pick(&["10.9.0.1", "10.9.0.3", "10.9.0.0/30", "10.9.0.3-10.9.0.10"]))),
        1 => line.push_str(" -source +trusted"),
        2 => line.push_str(" -source friend"),
        _ => {}
    }
    line
}

#[test]
fn simulate_agrees_with_the_kernel_on_random_rulesets() {
    let mut t = Topology::new();
    t.serve(&t.guest.clone());
    let seed = 0x5eed_f00d_u64 ^ u64::from(std::process::id());
    let mut r = Rng(seed);
    let (rulesets, packets) = (50, 5);
    let mut checked = 0;
    for round in 0..rulesets {
        let n = 1 + r.next() % 6;
        let rules: Vec<String> = (0..n).map(|_| random_rule(&mut r, "IN")).collect();
        let policy = r.pick(&["ACCEPT", "DROP", "REJECT"]);
        let guest = format!("[OPTIONS]\nenable: 1\npolicy_in: {policy}\n[RULES]\n{}\n", rules.join("\n"));
        let rs = compile(&input(CLUSTER, &guest, vec![])).unwrap();
        t.nft().apply(&rs.to_nft()).unwrap();
        let pk: Vec<(&str, &str, u16)> = (0..packets)
            .map(|_| {
                (
                    *r.pick(&["10.9.0.1", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.10", "10.9.0.11"]),
                    *r.pick(&["tcp", "udp"]),
                    *r.pick(PORTS),
                )
            })
            .collect();
        let items: Vec<String> = pk.iter().map(|(s, p, d)| format!("{s},{p},10.9.0.2,{d}")).collect();
        let got = t.probe(&t.outside, &items);
        for ((s, p, d), g) in pk.iter().zip(&got) {
            let sim = simulate(
                &rs,
                &Packet {
                    from: Endpoint::Outside,
                    to: Endpoint::Guest { vmid: 100, index: 0 },
                    source: s.parse::<IpAddr>().unwrap(),
                    dest: "10.9.0.2".parse().unwrap(),
                    proto: if *p == "tcp" { 6 } else { 17 },
                    sport: Some(40000),
                    dport: Some(*d),
                    icmp: None,
                    iface: None,
                },
            );
            assert_eq!(
                expect(sim.verdict),
                g,
                "seed {seed:#x} round {round}: {s} {p}/{d} against\n{guest}\nsimulate said {sim:#?}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 200);
}

#[test]
fn log_rules_produce_nflog_records() {
    let mut t = Topology::new();
    t.serve(&t.guest.clone());
    let guest = "[OPTIONS]\nenable: 1\n[RULES]\nIN DROP -p tcp -dport 23 -log info\nIN SSH(ACCEPT) -log info\n";
    let rs = compile(&input(CLUSTER, guest, vec![])).unwrap();
    // The listener's socket must live in the namespace of the rules: bind it on a thread that
    // entered that namespace.
    let ns = std::fs::File::open(format!("/run/netns/{}", t.host)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let l = hearth_fw::NflogListener::bind(rs.log_group).unwrap();
        tx.send(None).unwrap();
        loop {
            for r in l.recv().unwrap() {
                if tx.send(Some(r)).is_err() {
                    return;
                }
            }
        }
    });
    assert_eq!(rx.recv().unwrap(), None);
    let rs = compile(&input(CLUSTER, guest, vec![])).unwrap();
    t.nft().apply(&rs.to_nft()).unwrap();
    assert_eq!(
        t.probe(&t.outside, &["10.9.0.1,tcp,10.9.0.2,23".into(), "10.9.0.1,tcp,10.9.0.2,22".into()]),
        ["timeout", "open"]
    );
    let mut got = Vec::new();
    while let Ok(Some(r)) = rx.recv_timeout(Duration::from_secs(2)) {
        got.push(format!("{} {}", r.prefix, r.packet));
    }
    assert!(
        got.iter().any(|l| l.starts_with("100 0 guest100-net0-in DROP")
            && l.contains("SRC=10.9.0.1 DST=10.9.0.2 PROTO=TCP")
            && l.contains("DPT=23")),
        "{got:#?}"
    );
    assert!(got.iter().any(|l| l.starts_with("100 1 guest100-net0-in ACCEPT") && l.contains("DPT=22")), "{got:#?}");
}

#[test]
fn a_delta_leaves_the_kernel_as_a_full_load_would() {
    let t = Topology::new();
    let old =
        compile(&input(CLUSTER, "[OPTIONS]\nenable: 1\n[RULES]\nIN SSH(ACCEPT)\nIN ACCEPT -source +trusted\n", vec![]))
            .unwrap();
    let new_cluster = CLUSTER.replace("!10.9.0.5", "!10.9.0.6");
    let new = compile(&input(
        &new_cluster,
        "[OPTIONS]\nenable: 1\n[RULES]\nIN HTTP(ACCEPT)\nIN ACCEPT -source +trusted -p tcp\n",
        vec![],
    ))
    .unwrap();
    t.nft().apply(&new.to_nft()).unwrap();
    let full = t.nft().list_own().unwrap();
    t.nft().apply(&old.to_nft()).unwrap();
    let delta = new.delta_nft(&old).expect("only chains and sets changed");
    assert!(
        delta.contains("flush chain inet hearth guest100-net0-in")
            && delta.contains("flush set inet hearth dc-trusted-v4-nomatch"),
        "{delta}"
    );
    assert!(!delta.contains("cluster-in"), "unchanged chains stay: {delta}");
    t.nft().apply(&delta).unwrap();
    assert_eq!(t.nft().list_own().unwrap(), full);
    assert_eq!(new.delta_nft(&new).as_deref(), Some(""));
    let other = compile(&input(CLUSTER, "[OPTIONS]\nenable: 1\nipfilter: 1\n", vec![])).unwrap();
    assert_eq!(other.delta_nft(&old), None, "new sets need a full load");
}

fn routed_packet(source: &str, proto: &str, dport: u16) -> Packet {
    Packet {
        from: Endpoint::Outside,
        to: Endpoint::Routed,
        source: source.parse().unwrap(),
        dest: "10.8.0.1".parse().unwrap(),
        proto: if proto == "tcp" { 6 } else { 17 },
        sport: Some(40000),
        dport: Some(dport),
        icmp: None,
        iface: None,
    }
}

#[test]
fn host_forward_rules_decide_routed_traffic_only() {
    let mut t = Topology::new();
    let far = t.add_routed();
    t.serve(&far);
    t.serve(&t.guest.clone());
    let cluster = format!(
        "{}[RULES]\nFORWARD ACCEPT -p tcp -dport 80\nFORWARD REJECT -p tcp -dport 23\n",
        CLUSTER.replace("enable: 1\n", "enable: 1\npolicy_forward: DROP\n")
    );
    let host =
        "[RULES]\nFORWARD DROP -p tcp -dport 80 -source 10.9.0.3\nFORWARD ACCEPT -p tcp -dport 22 -dest 10.8.0.1\n";
    let guest = "[OPTIONS]\nenable: 1\n[RULES]\nIN ACCEPT -p tcp -dport 443\n";
    let rs = compile(&input_with_host(&cluster, host, guest, vec![])).unwrap();
    t.nft().apply(&rs.to_nft()).unwrap();
    let cases: &[(&str, &str, u16, &str, &str)] = &[
        ("10.9.0.1", "tcp", 80, "open", "cluster FORWARD rule (and its replies)"),
        ("10.9.0.3", "tcp", 80, "timeout", "host FORWARD rule before the cluster's"),
        ("10.9.0.1", "tcp", 23, "refused", "FORWARD REJECT is a TCP reset"),
        ("10.9.0.1", "tcp", 22, "open", "host FORWARD rule with -dest"),
        ("10.9.0.1", "tcp", 443, "timeout", "policy_forward DROP"),
        ("10.9.0.1", "udp", 53, "timeout", "policy_forward DROP (udp)"),
    ];
    let items: Vec<String> = cases.iter().map(|(s, p, port, _, _)| format!("{s},{p},10.8.0.1,{port}")).collect();
    let got = t.probe(&t.outside, &items);
    for (c, g) in cases.iter().zip(&got) {
        assert_eq!(g, c.3, "{c:?}");
        let sim = simulate(&rs, &routed_packet(c.0, c.1, c.2));
        assert_eq!(expect(sim.verdict), c.3, "simulate {c:?}: {sim:#?}");
    }
    // Bridged traffic is not the host's to forward: policy_forward DROP leaves it to the guest.
    assert_eq!(
        t.probe(&t.outside, &["10.9.0.1,tcp,10.9.0.2,443".into(), "10.9.0.1,tcp,10.9.0.2,80".into()]),
        ["open", "timeout"]
    );
    // A guest's routed connection passes its outbound chain, then the host's FORWARD rules.
    assert_eq!(
        t.probe(&t.guest, &["10.9.0.2,tcp,10.8.0.1,80".into(), "10.9.0.2,tcp,10.8.0.1,443".into()]),
        ["open", "timeout"]
    );
    // With the host zone disabled, FORWARD rules and policy no longer apply.
    let host_off = format!("[OPTIONS]\nenable: 0\n{host}");
    let rs = compile(&input_with_host(&cluster, &host_off, guest, vec![])).unwrap();
    t.nft().apply(&rs.to_nft()).unwrap();
    assert_eq!(t.probe(&t.outside, &["10.9.0.1,tcp,10.8.0.1,443".into()]), ["open"]);
    assert_eq!(expect(simulate(&rs, &routed_packet("10.9.0.1", "tcp", 443)).verdict), "open");
}

#[test]
fn simulate_agrees_with_the_kernel_on_random_forward_rules() {
    let mut t = Topology::new();
    let far = t.add_routed();
    t.serve(&far);
    let seed = 0xf0d_5eed_u64 ^ u64::from(std::process::id());
    let mut r = Rng(seed);
    let (rulesets, packets) = (20, 5);
    for round in 0..rulesets {
        let host: Vec<String> = (0..r.next() % 4).map(|_| random_rule(&mut r, "FORWARD")).collect();
        let cl: Vec<String> = (0..r.next() % 4).map(|_| random_rule(&mut r, "FORWARD")).collect();
        let policy = r.pick(&["ACCEPT", "DROP"]);
        let cluster = format!(
            "{}[RULES]\n{}\n",
            CLUSTER.replace("enable: 1\n", &format!("enable: 1\npolicy_forward: {policy}\n")),
            cl.join("\n")
        );
        let host = format!("[RULES]\n{}\n", host.join("\n"));
        let rs = compile(&input_with_host(&cluster, &host, "[OPTIONS]\nenable: 1\n", vec![])).unwrap();
        t.nft().apply(&rs.to_nft()).unwrap();
        let pk: Vec<(&str, &str, u16)> = (0..packets)
            .map(|_| {
                (
                    *r.pick(&["10.9.0.1", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.10", "10.9.0.11"]),
                    *r.pick(&["tcp", "udp"]),
                    *r.pick(PORTS),
                )
            })
            .collect();
        let items: Vec<String> = pk.iter().map(|(s, p, d)| format!("{s},{p},10.8.0.1,{d}")).collect();
        let got = t.probe(&t.outside, &items);
        for ((s, p, d), g) in pk.iter().zip(&got) {
            let sim = simulate(&rs, &routed_packet(s, p, *d));
            assert_eq!(
                expect(sim.verdict),
                g,
                "seed {seed:#x} round {round}: {s} {p}/{d} against\n{cluster}\n{host}\nsimulate said {sim:#?}"
            );
        }
    }
}

/// Sends one hand-made TCP segment (`src dst dport sport flags`) through a raw socket and says
/// how the destination answered: synack, rst or none (within a second).
const RAW_TCP: &str = r#"
import socket, struct, sys, time, select
src, dst, dport, sport, flags = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5], 0)
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
s.bind((src, 0))
hdr = struct.pack('!HHIIBBHHH', sport, dport, 12345, 0, 5 << 4, flags, 64240, 0, 0)
pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack('!BBH', 0, 6, len(hdr))
hdr = hdr[:16] + struct.pack('!H', csum(pseudo + hdr)) + hdr[18:]
s.sendto(hdr, (dst, 0))
end = time.time() + 1.0
while True:
    left = end - time.time()
    if left <= 0 or not select.select([s], [], [], left)[0]:
        print('none'); break
    pkt, _ = s.recvfrom(100)
    ihl = (pkt[0] & 15) * 4
    sp, dp = struct.unpack('!HH', pkt[ihl:ihl + 4]); fl = pkt[ihl + 13]
    if socket.inet_ntoa(pkt[12:16]) == dst and sp == dport and dp == sport:
        print('synack' if fl & 0x12 == 0x12 else 'rst' if fl & 4 else 'other %#x' % fl); break
"#;

/// Sends one UDP datagram with a forged source address (`src dst dport`).
const SPOOF_UDP: &str = r#"
import socket, struct, sys
src, dst, dport = sys.argv[1], sys.argv[2], int(sys.argv[3])
payload = b'smurf'
udp = struct.pack('!HHHH', 40000, dport, 8 + len(payload), 0) + payload
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.sendto(ip + udp, (dst, 0))
"#;

/// Prints the source address of every UDP datagram to a port.
const UDP_SOURCES: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', int(sys.argv[1])))
print('ready', flush=True)
while True:
    d, a = s.recvfrom(100); print(a[0], flush=True)
"#;

fn raw_tcp(ns: &str, sport: u16, flags: u8) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", RAW_TCP, "10.9.0.1", "10.9.0.254", "7000"])
        .arg(sport.to_string())
        .arg(flags.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn host_options_drop_smurfs_and_invalid_tcp_flags() {
    let mut t = Topology::new();
    t.serve(&t.host.clone());
    // Datagrams to the host's port 7001, their sources read on a thread.
    let mut listener = Command::new("ip")
        .args(["netns", "exec", &t.host, "python3", "-c", UDP_SOURCES, "7001"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(listener.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    t.servers.push(listener);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    let spoof = |src: &str| -> bool {
        sh(&["ip", "netns", "exec", &t.outside, "python3", "-c", SPOOF_UDP, src, "10.9.0.254", "7001"]);
        match rx.recv_timeout(Duration::from_millis(700)) {
            Ok(got) => {
                assert_eq!(got, src);
                true
            }
            Err(_) => false,
        }
    };
    let rules = "[RULES]\nIN ACCEPT -p tcp -dport 7000\nIN ACCEPT -p udp -dport 7001\n";
    let syn_port0 = |rs: &hearth_fw::Ruleset| {
        let p = Packet {
            from: Endpoint::Outside,
            to: Endpoint::Host,
            source: "10.9.0.1".parse().unwrap(),
            dest: "10.9.0.254".parse().unwrap(),
            proto: 6,
            sport: Some(0),
            dport: Some(7000),
            icmp: None,
            iface: None,
        };
        expect(simulate(rs, &p).verdict)
    };
    const SYN: u8 = 0x02;

    // Options off: the kernel answers a SYN from source port 0 and takes a datagram whose
    // source is the subnet's broadcast address.
    let rs = compile(&input_with_host(CLUSTER, rules, "[OPTIONS]\nenable: 1\n", vec![])).unwrap();
    t.nft().apply(&rs.to_nft()).unwrap();
    assert_eq!(raw_tcp(&t.outside, 0, SYN), "synack");
    assert_eq!(raw_tcp(&t.outside, 40001, SYN), "synack");
    assert!(spoof("10.9.0.255"), "a broadcast source reaches the host without nosmurfs");
    assert!(spoof("10.9.0.1"));
    assert_eq!(syn_port0(&rs), "open");

    // tcpflags and nosmurfs on: both are dropped, ordinary traffic still passes.
    let host = format!("[OPTIONS]\ntcpflags: 1\nnosmurfs: 1\n{rules}");
    let rs = compile(&input_with_host(CLUSTER, &host, "[OPTIONS]\nenable: 1\n", vec![])).unwrap();
    t.nft().apply(&rs.to_nft()).unwrap();
    assert_eq!(raw_tcp(&t.outside, 0, SYN), "none", "tcpflags drops a SYN from port 0");
    assert_eq!(raw_tcp(&t.outside, 0, SYN | 0x01), "none", "SYN,FIN");
    assert_eq!(raw_tcp(&t.outside, 40002, SYN), "synack");
    assert!(!spoof("10.9.0.255"), "nosmurfs drops a broadcast source");
    assert!(spoof("10.9.0.1"));
    assert_eq!(syn_port0(&rs), "timeout");
}

/// Sends `n` SYNs (source ports 41000…) from 10.9.0.1 to the host's port 7000 within a few
/// milliseconds and counts the SYN-ACKs that come back within a second.
const SYN_BURST: &str = r#"
import socket, struct, sys, time, select
n = int(sys.argv[1]); src, dst, dport = '10.9.0.1', '10.9.0.254', 7000
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
s.bind((src, 0))
for i in range(n):
    hdr = struct.pack('!HHIIBBHHH', 41000 + i, dport, 777, 0, 5 << 4, 2, 64240, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack('!BBH', 0, 6, len(hdr))
    s.sendto(hdr[:16] + struct.pack('!H', csum(pseudo + hdr)) + hdr[18:], (dst, 0))
seen = set(); end = time.time() + 1.0
while time.time() < end:
    if not select.select([s], [], [], max(0, end - time.time()))[0]: break
    pkt, _ = s.recvfrom(100); ihl = (pkt[0] & 15) * 4
    sp, dp = struct.unpack('!HH', pkt[ihl:ihl + 4])
    if sp == dport and 41000 <= dp < 41000 + n and pkt[ihl + 13] & 0x12 == 0x12: seen.add(dp)
print(len(seen))
"#;

#[test]
fn synflood_protection_limits_new_connections_per_source() {
    let mut t = Topology::new();
    t.serve(&t.host.clone());
    let burst = || -> usize {
        let out =
            Command::new("ip").args(["netns", "exec", &t.outside, "python3", "-c", SYN_BURST, "20"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    let rules = "[RULES]\nIN ACCEPT -p tcp -dport 7000\n";
    let rs = compile(&input_with_host(CLUSTER, rules, "[OPTIONS]\nenable: 1\n", vec![])).unwrap();
    t.nft().apply(&rs.to_nft()).unwrap();
    assert_eq!(burst(), 20, "without protection every SYN is answered");
    let host = format!(
        "[OPTIONS]\nprotection_synflood: 1\nprotection_synflood_rate: 1\nprotection_synflood_burst: 3\n{rules}"
    );
    let rs = compile(&input_with_host(CLUSTER, &host, "[OPTIONS]\nenable: 1\n", vec![])).unwrap();
    t.nft().apply(&rs.to_nft()).unwrap();
    let answered = burst();
    assert!((1..=5).contains(&answered), "a rate of 1/s after a burst of 3 answered {answered} of 20");
    // The first SYN of a connection is within the rate: simulate lets it in.
    let p = Packet {
        from: Endpoint::Outside,
        to: Endpoint::Host,
        source: "10.9.0.1".parse().unwrap(),
        dest: "10.9.0.254".parse().unwrap(),
        proto: 6,
        sport: Some(41000),
        dport: Some(7000),
        icmp: None,
        iface: None,
    };
    assert_eq!(expect(simulate(&rs, &p).verdict), "open");
}
