//! fwctl against a real hearthd that runs inside a private network namespace (started through
//! nsenter, so the rules it applies stay there and the machine's own nftables are never
//! touched). The namespace holds a bridge with an "outside" port and a guest port named as a
//! VM's tap (`tap100i0`, a veth whose peer is the guest's eth0 in a namespace of its own);
//! VM 100's configuration has `net0 … firewall=1`. Real TCP connections decide every case.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hearth_test::HearthdProcess;

use crate::{json, ok, run};

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
for p in map(int, sys.argv[1].split(',')):
    threading.Thread(target=tcp, args=(p,), daemon=True).start()
print('ready', flush=True)
threading.Event().wait()
"#;

const PROBE: &str = r#"
import socket, sys, concurrent.futures as cf
def probe(item):
    src, dst, port = item.split(','); s = socket.socket(); s.bind((src, 0)); s.settimeout(0.5)
    try:
        s.connect((dst, int(port))); s.send(b'x'); s.recv(10); return 'open'
    except ConnectionRefusedError: return 'refused'
    except (socket.timeout, TimeoutError): return 'timeout'
    finally: s.close()
with cf.ThreadPoolExecutor(16) as ex:
    for r in ex.map(probe, sys.argv[1:]): print(r)
"#;

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("spawn");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The namespaces and the guest's listener; removed on drop, even when the test fails.
struct Net {
    host: String,
    outside: String,
    guest: String,
    server: Option<Child>,
}

impl Net {
    fn new() -> Net {
        hearth_test::require_root("network namespaces");
        hearth_test::require_tool("nft", "nftables");
        hearth_test::require_tool("python3", "python3");
        let sfx = format!("{:04x}", (std::process::id().wrapping_mul(31) ^ u32::from(rand_u16())) & 0xffff);
        let n = Net {
            host: format!("itfh{sfx}"),
            outside: format!("itfo{sfx}"),
            guest: format!("itfg{sfx}"),
            server: None,
        };
        for ns in [&n.host, &n.outside, &n.guest] {
            sh(&["ip", "netns", "add", ns]);
        }
        let h = n.host.as_str();
        sh(&["ip", "-n", h, "link", "add", "br0", "type", "bridge"]);
        sh(&["ip", "-n", h, "link", "add", "vout", "type", "veth", "peer", "name", "eth0", "netns", &n.outside]);
        sh(&["ip", "-n", h, "link", "add", "tap100i0", "type", "veth", "peer", "name", "eth0", "netns", &n.guest]);
        for d in ["br0", "vout", "tap100i0", "lo"] {
            sh(&["ip", "-n", h, "link", "set", d, "up"]);
        }
        sh(&["ip", "-n", h, "link", "set", "vout", "master", "br0"]);
        sh(&["ip", "-n", h, "link", "set", "tap100i0", "master", "br0"]);
        // The bridge has the node's address in the guests' network, as vmbr0 has on a Proxmox
        // host: the kernel routes a REJECT's TCP reset or ICMP error back to the sender.
        sh(&["ip", "-n", h, "addr", "add", "10.7.0.254/24", "dev", "br0"]);
        sh(&["ip", "-n", &n.outside, "addr", "add", "10.7.0.1/24", "dev", "eth0"]);
        sh(&["ip", "-n", &n.outside, "addr", "add", "10.7.0.3/24", "dev", "eth0"]);
        sh(&["ip", "-n", &n.guest, "link", "set", "eth0", "address", "bc:24:11:00:00:01"]);
        sh(&["ip", "-n", &n.guest, "addr", "add", "10.7.0.2/24", "dev", "eth0"]);
        for ns in [&n.outside, &n.guest] {
            sh(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        n
    }

    fn serve(&mut self) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.guest, "python3", "-c", SERVER, "22,23,80,443,5000"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line).expect("server output");
        assert_eq!(line.trim(), "ready");
        self.server = Some(child);
    }

    /// Connects from the outside namespace to the guest: open, refused or timeout per port.
    fn probe(&self, cases: &[(&str, u16)]) -> Vec<String> {
        let items: Vec<String> = cases.iter().map(|(s, p)| format!("{s},10.7.0.2,{p}")).collect();
        let mut args = vec!["netns", "exec", &self.outside, "python3", "-c", PROBE];
        args.extend(items.iter().map(String::as_str));
        let out = Command::new("ip").args(&args).output().expect("probe");
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
    }

    fn nft(&self, args: &[&str]) -> String {
        let out = Command::new("ip").args(["netns", "exec", &self.host, "nft"]).args(args).output().expect("nft");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn rand_u16() -> u16 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    (nanos >> 8) as u16
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.host, &self.outside, &self.guest] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

const CLUSTER_FW: &str = "[OPTIONS]\nenable: 1\n[ALIASES]\nfriend 10.7.0.3\n[IPSET trusted]\n10.7.0.0/24\n[group web]\nIN ACCEPT -p tcp -dport 80\n";

fn setup() -> (Net, HearthdProcess) {
    let mut net = Net::new();
    net.serve();
    let daemon = HearthdProcess::start_in_netns(&net.host, "test");
    ok(
        &daemon,
        "vmctl",
        &["create", "100", "--memory", "64", "--kvm", "0", "--net0", "virtio=BC:24:11:00:00:01,bridge=br0,firewall=1"],
    );
    (net, daemon)
}

fn import(daemon: &HearthdProcess, name: &str, text: &str, extra: &[&str]) -> (i32, String, String) {
    let file = daemon.root().join(name);
    std::fs::write(&file, text).expect("writing the .fw file");
    let path = file.to_str().expect("utf-8 path");
    let mut args = vec!["import", path];
    args.extend(extra);
    run(daemon, "fwctl", &args)
}

#[test]
fn rules_through_fwctl_decide_real_connections() {
    let (net, daemon) = setup();
    // Enabling the cluster firewall with the default DROP policy and no way in for SSH or the
    // API is refused: the administrator would be locked out.
    let (code, _, err) = import(&daemon, "cluster.fw", CLUSTER_FW, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("lock out management: tcp/22"), "{err}");
    assert_eq!(net.nft(&["list", "tables"]), "", "a refused change applies nothing");
    let (code, _, err) = import(&daemon, "cluster.fw", CLUSTER_FW, &["--force"]);
    assert_eq!(code, 0, "{err}");

    ok(&daemon, "fwctl", &["vm", "100", "options", "set", "--enable", "1"]);
    ok(&daemon, "fwctl", &["vm", "100", "rules", "add", "--type", "in", "--action", "ACCEPT", "--macro", "SSH"]);
    ok(
        &daemon,
        "fwctl",
        &[
            "vm", "100", "rules", "add", "--type", "in", "--action", "REJECT", "--proto", "tcp", "--dport", "23",
            "--pos", "1",
        ],
    );
    ok(&daemon, "fwctl", &["vm", "100", "rules", "add", "--type", "group", "--action", "web", "--pos", "2"]);
    ok(
        &daemon,
        "fwctl",
        &[
            "vm", "100", "rules", "add", "--type", "in", "--action", "ACCEPT", "--proto", "tcp", "--dport", "5000",
            "--source", "friend", "--pos", "3",
        ],
    );
    ok(
        &daemon,
        "fwctl",
        &[
            "vm", "100", "rules", "add", "--type", "in", "--action", "ACCEPT", "--proto", "tcp", "--dport", "443",
            "--source", "+trusted", "--enable", "0", "--pos", "4",
        ],
    );
    let got = net.probe(&[
        ("10.7.0.1", 22),
        ("10.7.0.1", 23),
        ("10.7.0.1", 80),
        ("10.7.0.1", 5000),
        ("10.7.0.3", 5000),
        ("10.7.0.1", 443),
    ]);
    assert_eq!(got, ["open", "refused", "open", "timeout", "open", "timeout"]);

    let rules = json(&daemon, "fwctl", &["vm", "100", "rules", "list"]);
    assert_eq!(rules.as_array().map(Vec::len), Some(5), "{rules}");
    assert_eq!(rules[0]["macro"], "SSH");
    assert_eq!(rules[4]["enable"], 0);
    // Enabling the disabled rule applies at once.
    let started = Instant::now();
    ok(&daemon, "fwctl", &["vm", "100", "rules", "set", "4", "--enable", "1"]);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(net.probe(&[("10.7.0.1", 443)]), ["open"]);

    let sim = ok(
        &daemon,
        "fwctl",
        &[
            "simulate", "--from", "outside", "--to", "vm100", "--source", "10.7.0.1", "--dest", "10.7.0.2", "--dport",
            "23",
        ],
    );
    assert!(sim.contains("verdict: REJECT") && sim.contains("-dport 23"), "{sim}");
    let status = ok(&daemon, "fwctl", &["status"]);
    assert!(status.contains("Status: enabled/running") && status.contains("100 net0 (tap100i0): filtered"), "{status}");
    let exported = ok(&daemon, "fwctl", &["export", "--vm", "100"]);
    assert!(exported.contains("[RULES]") && exported.contains("IN SSH(ACCEPT)"), "{exported}");
    assert!(ok(&daemon, "fwctl", &["compile"]).contains("chain guest100-net0-in"));
}

#[test]
fn bad_input_changes_nothing() {
    let (net, daemon) = setup();
    let (code, _, err) = import(&daemon, "cluster.fw", CLUSTER_FW, &["--force"]);
    assert_eq!(code, 0, "{err}");
    ok(&daemon, "fwctl", &["vm", "100", "options", "set", "--enable", "1"]);
    ok(&daemon, "fwctl", &["vm", "100", "rules", "add", "--type", "in", "--action", "ACCEPT", "--macro", "SSH"]);
    let ruleset = net.nft(&["list", "ruleset"]);
    let file = std::fs::read(daemon.root().join("etc/hearth/firewall/100.toml")).expect("the guest's firewall file");
    let add = |extra: &[&str]| {
        let mut a = vec!["vm", "100", "rules", "add", "--type", "in"];
        a.extend(extra);
        run(&daemon, "fwctl", &a)
    };
    for (case, (code, _, err), want) in [
        ("unknown macro", add(&["--action", "ACCEPT", "--macro", "NOPE"]), "unknown macro 'NOPE'"),
        ("malformed address", add(&["--action", "ACCEPT", "--source", "10.0.0.300"]), "source: invalid IP address"),
        ("bad port range", add(&["--action", "ACCEPT", "--proto", "tcp", "--dport", "90:80"]), "backwards range"),
        ("missing ipset", add(&["--action", "ACCEPT", "--source", "+nosuchset"]), "ipset 'nosuchset' does not exist"),
        ("missing alias", add(&["--action", "ACCEPT", "--dest", "nosuchalias"]), "alias 'nosuchalias' does not exist"),
        (
            "missing group",
            run(&daemon, "fwctl", &["vm", "100", "rules", "add", "--type", "group", "--action", "nogroup"]),
            "security group 'nogroup' does not exist",
        ),
        ("move past the end", run(&daemon, "fwctl", &["vm", "100", "rules", "move", "0", "7"]), "past the end"),
        ("no such position", run(&daemon, "fwctl", &["vm", "100", "rules", "delete", "9"]), "no rule at position 9"),
        (
            "bad option value",
            run(&daemon, "fwctl", &["vm", "100", "options", "set", "--policy_in", "MAYBE"]),
            "policy_in: invalid value 'MAYBE'",
        ),
    ] {
        assert_ne!(code, 0, "{case}");
        assert!(err.contains(want), "{case}: {err}");
    }
    assert_eq!(net.nft(&["list", "ruleset"]), ruleset, "the kernel's ruleset is unchanged");
    assert_eq!(std::fs::read(daemon.root().join("etc/hearth/firewall/100.toml")).expect("still there"), file);
}

#[test]
fn the_ruleset_is_repaired_stopped_and_rolled_back() {
    let (net, mut daemon) = setup();
    let mgmt = format!("{CLUSTER_FW}[IPSET management]\n10.7.0.0/24\n");
    let (code, _, err) = import(&daemon, "cluster.fw", &mgmt, &[]);
    assert_eq!(code, 0, "with a management set the host stays reachable: {err}");
    assert!(net.nft(&["list", "tables"]).contains("table inet hearth"));
    // Someone flushes the ruleset: the watcher puts it back.
    net.nft(&["flush", "ruleset"]);
    let deadline = Instant::now() + Duration::from_secs(6);
    while !net.nft(&["list", "tables"]).contains("table inet hearth") {
        assert!(Instant::now() < deadline, "the ruleset was not repaired");
        std::thread::sleep(Duration::from_millis(100));
    }
    // hearthd applies a configured firewall again when it starts.
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    net.nft(&["flush", "ruleset"]);
    daemon.restart();
    assert!(net.nft(&["list", "tables"]).contains("table inet hearth"), "applied at start");
    ok(&daemon, "fwctl", &["stop"]);
    assert_eq!(net.nft(&["list", "tables"]), "");
    ok(&daemon, "fwctl", &["start"]);
    assert!(net.nft(&["list", "tables"]).contains("table bridge hearth"));

    // A trial: changes after `apply --confirm-timeout` go away unless confirmed.
    ok(&daemon, "fwctl", &["apply", "--confirm-timeout", "2"]);
    ok(&daemon, "fwctl", &["cluster", "alias", "set", "temp", "10.7.0.9"]);
    assert!(ok(&daemon, "fwctl", &["cluster", "alias", "list"]).contains("temp 10.7.0.9"));
    std::thread::sleep(Duration::from_millis(3500));
    assert!(!ok(&daemon, "fwctl", &["cluster", "alias", "list"]).contains("temp"), "rolled back");
    ok(&daemon, "fwctl", &["apply", "--confirm-timeout", "2"]);
    ok(&daemon, "fwctl", &["cluster", "alias", "set", "kept", "10.7.0.8"]);
    ok(&daemon, "fwctl", &["confirm"]);
    std::thread::sleep(Duration::from_millis(3000));
    assert!(ok(&daemon, "fwctl", &["cluster", "alias", "list"]).contains("kept 10.7.0.8"));
    let (code, _, err) = run(&daemon, "fwctl", &["confirm"]);
    assert_eq!(code, 1);
    assert!(err.contains("nothing to confirm"), "{err}");
}

#[test]
fn conntrack_options_are_sysctls_of_the_nodes_namespace() {
    let (net, daemon) = setup();
    let mgmt = format!("{CLUSTER_FW}[IPSET management]\n10.7.0.0/24\n");
    let (code, _, err) = import(&daemon, "cluster.fw", &mgmt, &[]);
    assert_eq!(code, 0, "{err}");
    let read = |ns: Option<&str>, key: &str| -> String {
        let path = format!("/proc/sys/net/netfilter/{key}");
        match ns {
            Some(ns) => {
                let out = Command::new("ip").args(["netns", "exec", ns, "cat", &path]).output().expect("cat");
                String::from_utf8_lossy(&out.stdout).trim().to_string()
            }
            None => std::fs::read_to_string(&path).expect("conntrack is loaded").trim().to_string(),
        }
    };
    let outer = read(None, "nf_conntrack_tcp_timeout_established");
    let value = if outer == "9000" { "9001" } else { "9000" };
    ok(
        &daemon,
        "fwctl",
        &[
            "host",
            "options",
            "set",
            "--nf_conntrack_tcp_timeout_established",
            value,
            "--nf_conntrack_tcp_timeout_syn_recv",
            "45",
        ],
    );
    assert_eq!(read(Some(&net.host), "nf_conntrack_tcp_timeout_established"), value);
    assert_eq!(read(Some(&net.host), "nf_conntrack_tcp_timeout_syn_recv"), "45");
    assert_eq!(read(None, "nf_conntrack_tcp_timeout_established"), outer, "the machine's own value is untouched");

    // The kernel lets only the initial namespace size the conntrack table: another value is
    // refused with the reason, and nothing is saved; the current value is accepted.
    let max = read(Some(&net.host), "nf_conntrack_max");
    let other = (max.parse::<u64>().expect("a number") + 1024).to_string();
    let host_file = daemon.root().join("etc/hearth/firewall/host.toml");
    let before = std::fs::read(&host_file).expect("host options saved");
    let (code, _, err) = run(&daemon, "fwctl", &["host", "options", "set", "--nf_conntrack_max", &other]);
    assert_ne!(code, 0);
    assert!(
        err.contains("nf_conntrack_max: the kernel does not let hearthd's network namespace set") && err.contains(&max),
        "{err}"
    );
    assert_eq!(std::fs::read(&host_file).expect("still there"), before);
    ok(&daemon, "fwctl", &["host", "options", "set", "--nf_conntrack_max", &max]);

    // A restarted hearthd sets them again.
    sh(&["ip", "netns", "exec", &net.host, "sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_timeout_syn_recv=60"]);
    let mut daemon = daemon;
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    daemon.restart();
    assert_eq!(read(Some(&net.host), "nf_conntrack_tcp_timeout_syn_recv"), "45");
}

#[test]
fn an_open_ssh_session_is_not_locked_out() {
    let (net, daemon) = setup();
    // An SSH server on the node (a listener on port 22 in hearthd's namespace) and an
    // administrator's session to it from 10.7.0.1.
    let mut listener = Command::new("ip")
        .args(["netns", "exec", &net.host, "python3", "-c", SERVER, "22"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(listener.stdout.take().expect("piped")).read_line(&mut line).expect("listener output");
    let mut children = Children(vec![listener]);
    assert_eq!(line.trim(), "ready");
    let client = "import socket, sys\ns = socket.socket(); s.bind(('10.7.0.1', 0)); s.connect(('10.7.0.254', 22))\nprint('connected', flush=True)\nsys.stdin.read()\n";
    let mut session = Command::new("ip")
        .args(["netns", "exec", &net.outside, "python3", "-c", client])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    line.clear();
    let out = session.stdout.take().expect("piped");
    children.0.push(session);
    BufReader::new(out).read_line(&mut line).expect("client output");
    assert_eq!(line.trim(), "connected");

    // The management set covers another address only: the session's address would be dropped.
    let only_other = format!("{CLUSTER_FW}[IPSET management]\n10.7.0.3\n");
    let (code, _, err) = import(&daemon, "cluster.fw", &only_other, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("lock out management: the open SSH session from 10.7.0.1 to tcp/22"), "{err}");
    assert_eq!(net.nft(&["list", "tables"]), "", "a refused change applies nothing");
    // A host rule for the administrator's address lets it through.
    let with_rule = format!("{only_other}[RULES]\nIN SSH(ACCEPT) -source 10.7.0.1\n");
    let (code, _, err) = import(&daemon, "cluster.fw", &with_rule, &[]);
    assert_eq!(code, 0, "{err}");
    // Removing it again is refused while the session is open, unless forced.
    let (code, _, err) = import(&daemon, "cluster.fw", &only_other, &[]);
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = import(&daemon, "cluster.fw", &only_other, &["--force"]);
    assert_eq!(code, 0, "{err}");
}

/// Processes a test started; killed on drop, even when the test fails.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Connects from a namespace: open, refused or timeout per `src,dst,port` item (no data sent).
const CONNECT: &str = r#"
import socket, sys
for item in sys.argv[1:]:
    src, dst, port = item.split(','); s = socket.socket(); s.bind((src, 0)); s.settimeout(0.7)
    try:
        s.connect((dst, int(port))); print('open')
    except ConnectionRefusedError: print('refused')
    except (socket.timeout, TimeoutError): print('timeout')
    finally: s.close()
"#;

#[test]
fn a_containers_firewalled_nic_filters_real_traffic() {
    let net = Net::new();
    let daemon = HearthdProcess::start_in_netns(&net.host, "test");
    // A server outside for the container's own connections: it answers one line and closes.
    let answer = "import socket\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('0.0.0.0', 5000)); s.listen(8)\nprint('ready', flush=True)\nwhile True:\n    c, _ = s.accept(); c.settimeout(2)\n    try: c.sendall(c.recv(10))\n    except OSError: pass\n    c.close()\n";
    let mut echo = Command::new("ip")
        .args(["netns", "exec", &net.outside, "python3", "-c", answer])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(echo.stdout.take().expect("piped")).read_line(&mut line).expect("server output");
    let _children = Children(vec![echo]);
    assert_eq!(line.trim(), "ready");

    let id = crate::ct::ctid(5);
    crate::ct::create(&daemon, &id, &["--net0", "name=eth0,bridge=br0,ip=10.7.0.20/24,firewall=1"]);
    ok(&daemon, "ctctl", &["start", &id]);
    for port in ["80", "443", "5000"] {
        let start = format!("httpd -p {port} -h /tmp </dev/null >/dev/null 2>&1");
        let (code, out, err) = crate::ct::exec(&daemon, &id, &["sh", "-c", &start]);
        assert_eq!(code, 0, "{out}{err}");
    }
    let mgmt = format!("{CLUSTER_FW}[IPSET management]\n10.7.0.0/24\n");
    let (code, _, err) = import(&daemon, "cluster.fw", &mgmt, &[]);
    assert_eq!(code, 0, "{err}");
    ok(&daemon, "fwctl", &["ct", &id, "options", "set", "--enable", "1", "--ipfilter", "1"]);
    ok(
        &daemon,
        "fwctl",
        &["ct", &id, "rules", "add", "--type", "in", "--action", "ACCEPT", "--proto", "tcp", "--dport", "80"],
    );
    ok(
        &daemon,
        "fwctl",
        &["ct", &id, "rules", "add", "--type", "in", "--action", "REJECT", "--proto", "tcp", "--dport", "443"],
    );
    let status = ok(&daemon, "fwctl", &["status"]);
    assert!(status.contains(&format!("{id} net0 (veth{id}i0): filtered")), "{status}");

    let connect = |items: &[&str]| -> Vec<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &net.outside, "python3", "-c", CONNECT])
            .args(items)
            .output()
            .expect("python3");
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
    };
    assert_eq!(
        connect(&["10.7.0.1,10.7.0.20,80", "10.7.0.1,10.7.0.20,443", "10.7.0.1,10.7.0.20,5000"]),
        ["open", "refused", "timeout"]
    );

    // ipfilter: the container's configured address may leave, another one may not.
    let send = "echo x | nc -w 2 10.7.0.1 5000";
    let (code, out, err) = crate::ct::exec(&daemon, &id, &["sh", "-c", send]);
    assert!(code == 0 && out.trim() == "x", "from 10.7.0.20: {code} {out}{err}");
    let spoof = "ip addr add 10.7.0.66/24 dev eth0 && ip route add 10.7.0.1/32 dev eth0 src 10.7.0.66";
    let (code, out, err) = crate::ct::exec(&daemon, &id, &["sh", "-c", spoof]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = crate::ct::exec(&daemon, &id, &["sh", "-c", send]);
    assert!(code != 0 && out.trim().is_empty(), "from 10.7.0.66 the connection must fail: {code} {out}");

    // A destroyed container's port leaves the ruleset at once.
    ok(&daemon, "ctctl", &["stop", &id]);
    ok(&daemon, "ctctl", &["destroy", &id]);
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let tables = net.nft(&["list", "table", "bridge", "hearth"]);
        if tables.contains("table bridge hearth") && !tables.contains(&format!("veth{id}i0")) {
            break;
        }
        assert!(Instant::now() < deadline, "{tables}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn guest_rules_need_network_rights_on_that_guest_and_host_rules_sys_modify() {
    let (_net, daemon) = setup();
    ok(&daemon, "vmctl", &["create", "101", "--memory", "64", "--kvm", "0"]);
    let user = crate::UnixUser::new("fw");
    ok(&daemon, "userctl", &["user", "add", &user.userid()]);
    let add = ["rules", "add", "--type", "in", "--action", "ACCEPT", "--macro", "SSH"];
    let as_user = |args: &[&str]| {
        let out = user.run(&daemon, "fwctl", args);
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let rules_of = |vm: &str| json(&daemon, "fwctl", &["vm", vm, "rules", "list"]);
    // No ACL: nothing, not even reading.
    assert_eq!(as_user(&["vm", "100", "rules", "list"]).0, Some(1));
    // PVEVMAdmin on /vms/100: VM.Config.Network there, and nowhere else.
    ok(&daemon, "userctl", &["acl", "modify", "/vms/100", "--roles", "PVEVMAdmin", "--users", &user.userid()]);
    let (code, err) = as_user(&[&["vm", "100"][..], &add].concat());
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(rules_of("100").as_array().map(Vec::len), Some(1));
    let before = rules_of("101");
    for scope in [&["vm", "101"][..], &["host"], &["cluster"]] {
        let (code, err) = as_user(&[scope, &add].concat());
        assert_eq!(code, Some(1), "{scope:?}");
        assert!(err.contains("VM.Config.Network") || err.contains("Sys.Modify"), "{scope:?}: {err}");
    }
    assert_eq!(rules_of("101"), before, "a refused edit changes nothing");
    assert_eq!(json(&daemon, "fwctl", &["host", "rules", "list"]).as_array().map(Vec::len), Some(0));
}
