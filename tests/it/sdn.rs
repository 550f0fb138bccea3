//! SDN end to end: real hearthd processes, each in a private network namespace of the test's
//! own, configured through the real `netctl sdn`, with real containers and real packets. A
//! `simple` zone hands a container its IPAM address over DHCP (dnsmasq) and masquerades it to
//! another namespace; a `vxlan` zone joins two hearthd "nodes" over a veth underlay; an apply
//! that is not confirmed rolls back (also across a hearthd restart); bad input and a dnsmasq that
//! cannot start change nothing.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hearth_test::HearthdProcess;

use crate::ct::{create, exec, wait_until};
use crate::{json, ok, run};

/// A short random suffix for names that must not clash with parallel tests (interface names
/// are at most 15 bytes).
fn suffix() -> String {
    let mut b = [0u8; 2];
    getrandom_fill(&mut b);
    format!("{:02x}{:02x}", b[0], b[1])
}

fn getrandom_fill(buf: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(buf)).expect("reading /dev/urandom");
}

fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace of the test's own, deleted (with every interface in it) when dropped.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("hsdn-{tag}-{}", suffix());
        sh("ip", &["netns", "add", &name]);
        let ns = Netns(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.0.as_str()];
        full.extend(args);
        sh("ip", &full)
    }

    fn has_link(&self, name: &str) -> bool {
        Command::new("ip").args(["-n", &self.0, "link", "show", name]).output().is_ok_and(|o| o.status.success())
    }

    /// The SDN table in this namespace's ruleset, if any.
    fn nft_table(&self) -> Option<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0, "nft", "list", "table", "inet", "hearth-sdn"])
            .output()
            .expect("running nft");
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn spawn(&self, program: &str, args: &[&str]) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &self.0, program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning in the namespace")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A process the test started, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A veth pair between two namespaces with an address on each end.
fn link(a: &Netns, a_cidr: &str, b: &Netns, b_cidr: &str) {
    let s = suffix();
    let (ea, eb) = (format!("su{s}a"), format!("su{s}b"));
    sh("ip", &["link", "add", &ea, "netns", &a.0, "type", "veth", "peer", "name", &eb, "netns", &b.0]);
    for (ns, dev, cidr) in [(a, &ea, a_cidr), (b, &eb, b_cidr)] {
        ns.ip(&["addr", "add", cidr, "dev", dev]);
        ns.ip(&["link", "set", dev, "up"]);
    }
}

fn require_tools() {
    hearth_test::require_root("SDN creates bridges, nftables tables and dnsmasq in network namespaces");
    hearth_test::require_tool("ip", "iproute2");
    hearth_test::require_tool("nft", "nftables");
    hearth_test::require_tool("dnsmasq", "dnsmasq");
}

fn netctl(daemon: &HearthdProcess, args: &[&str]) -> String {
    let mut full = vec!["sdn"];
    full.extend(args);
    ok(daemon, "netctl", &full)
}

/// Runs a netctl sdn command that must fail; answers its error output.
fn netctl_fails(daemon: &HearthdProcess, args: &[&str]) -> String {
    let mut full = vec!["sdn"];
    full.extend(args);
    let (code, out, err) = run(daemon, "netctl", &full);
    assert_eq!(code, 1, "netctl {full:?} should fail: {out}{err}");
    err
}

/// A simple zone with SNAT and a DHCP range on vnet0.
fn simple_zone(daemon: &HearthdProcess) {
    netctl(daemon, &["zone", "add", "zs", "--type", "simple", "--dhcp", "dnsmasq", "--ipam", "pve"]);
    netctl(daemon, &["vnet", "add", "vnet0", "--zone", "zs", "--isolate-ports"]);
    let range = "start-address=10.77.0.100,end-address=10.77.0.150";
    netctl(
        daemon,
        &[
            "subnet",
            "add",
            "10.77.0.0/24",
            "--vnet",
            "vnet0",
            "--gateway",
            "10.77.0.1",
            "--snat",
            "--dhcp-range",
            range,
        ],
    );
}

/// The udhcpc script of a busybox guest: set the leased address and the default route.
const UDHCPC_SCRIPT: &str = "printf '#!/bin/sh\\n[ \"$1\" = bound ] && ip addr add $ip/$mask dev $interface \
                             && ip route add default via $router\\nexit 0\\n' > /tmp/dhcp.sh && chmod +x /tmp/dhcp.sh \
                             && udhcpc -i eth0 -n -q -t 5 -s /tmp/dhcp.sh";

#[test]
fn a_simple_zone_gives_a_container_its_ipam_address_by_dhcp_and_nat_to_another_namespace() {
    require_tools();
    let host = Netns::new("h");
    let far = Netns::new("f");
    link(&host, "192.0.2.1/24", &far, "192.0.2.2/24");
    let daemon = HearthdProcess::start_in_netns(&host.0, "test");
    simple_zone(&daemon);
    netctl(&daemon, &["apply", "--confirm-timeout", "0"]);
    assert!(host.ip(&["-4", "addr", "show", "vnet0"]).contains("10.77.0.1/24"));
    let table = host.nft_table().expect("the SNAT table exists");
    assert!(table.contains("ip saddr 10.77.0.0/24 oifname != \"vnet0\" masquerade"), "{table}");
    assert_eq!(json(&daemon, "netctl", &["sdn", "zone", "list", "--running"])[0]["id"], "zs");

    let id = crate::ct::ctid(7);
    create(&daemon, &id, &["--net0", "name=eth0,bridge=vnet0,ip=dhcp"]);
    // Adding the NIC allocated its address in the IPAM; the start keeps it and tells dnsmasq.
    let ipam = json(&daemon, "netctl", &["sdn", "ipam", "list"]);
    assert_eq!(ipam[0]["ip"], "10.77.0.100", "{ipam}");
    ok(&daemon, "ctctl", &["start", &id]);
    let ipam = json(&daemon, "netctl", &["sdn", "ipam", "list"]);
    assert_eq!(ipam.as_array().map(Vec::len), Some(1), "{ipam}");
    assert_eq!(ipam[0]["ip"], "10.77.0.100");
    assert_eq!(ipam[0]["vmid"].to_string(), id);
    let mac = ipam[0]["mac"].as_str().expect("a MAC").to_owned();
    // The VNet isolates guest ports.
    let port = sh("bridge", &["-n", &host.0, "-d", "link", "show", "dev", &format!("veth{id}i0")]);
    assert!(port.contains("isolated on"), "{port}");

    // The guest asks by DHCP and gets exactly that address, with the gateway as its router.
    let (code, out, err) = exec(&daemon, &id, &["sh", "-c", UDHCPC_SCRIPT]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(format!("{out}{err}").contains("lease of 10.77.0.100 obtained from 10.77.0.1"), "{out}{err}");
    let leases = std::fs::read_to_string(daemon.root().join("var/lib/hearth/sdn/dnsmasq/zs/dnsmasq.leases"))
        .expect("the leases file");
    assert!(leases.to_ascii_uppercase().contains(&mac), "{leases}");

    // Out through the host with SNAT: the far side sees the host's address, not the guest's.
    let listener = Running(far.spawn(
        "python3",
        &[
            "-c",
            "import socket; s=socket.socket(); s.bind(('192.0.2.2',7777)); s.listen(1); s.settimeout(20); \
             c,a=s.accept(); print(a[0], flush=True); c.close()",
        ],
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, _, _) = exec(&daemon, &id, &["sh", "-c", "echo hi | nc -w 3 192.0.2.2 7777"]);
        if code == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the guest could not reach 192.0.2.2:7777 through the SNAT");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut listener = listener;
    let mut seen = String::new();
    std::io::Read::read_to_string(listener.0.stdout.as_mut().expect("piped"), &mut seen).expect("reading the listener");
    assert_eq!(seen.trim(), "192.0.2.1", "the far side saw the guest's own address: no SNAT");

    // A change that keeps the bridge's ports (its MTU) is made in place: the guest stays plugged.
    netctl(&daemon, &["zone", "set", "zs", "--mtu", "1400"]);
    netctl(&daemon, &["apply", "--confirm-timeout", "0"]);
    assert!(host.ip(&["link", "show", "vnet0"]).contains("mtu 1400"));
    let veth = host.ip(&["link", "show", &format!("veth{id}i0")]);
    assert!(veth.contains("master vnet0"), "{veth}");
    // hearthd restarts a dnsmasq that died.
    let pid_file = daemon.root().join("var/lib/hearth/sdn/dnsmasq/zs/dnsmasq.pid");
    let pid = || std::fs::read_to_string(&pid_file).ok().and_then(|p| p.trim().parse::<i32>().ok());
    let first = pid().expect("dnsmasq's pid file");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first), nix::sys::signal::Signal::SIGKILL).expect("kill");
    wait_until("hearthd to restart dnsmasq", || pid().is_some_and(|p| p != first));
    // The VNet a guest uses cannot go, and the refusal names the guest.
    let err = netctl_fails(&daemon, &["vnet", "delete", "vnet0"]);
    assert!(err.contains(&format!("CT {id} (net0)")), "{err}");
    // Destroying the guest gives its address back.
    ok(&daemon, "ctctl", &["stop", &id]);
    ok(&daemon, "ctctl", &["destroy", &id]);
    assert_eq!(json(&daemon, "netctl", &["sdn", "ipam", "list"]), serde_json::json!([]));
}

#[test]
fn a_vxlan_zone_carries_traffic_between_containers_on_two_nodes() {
    require_tools();
    let a = Netns::new("a");
    let b = Netns::new("b");
    link(&a, "192.0.2.1/24", &b, "192.0.2.2/24");
    let node_a = HearthdProcess::start_in_netns(&a.0, "nodea");
    let node_b = HearthdProcess::start_in_netns(&b.0, "nodeb");
    for daemon in [&node_a, &node_b] {
        netctl(daemon, &["zone", "add", "zx", "--type", "vxlan", "--peers", "192.0.2.1,192.0.2.2"]);
        netctl(daemon, &["vnet", "add", "vx1", "--zone", "zx", "--tag", "4242"]);
        netctl(daemon, &["apply", "--confirm-timeout", "0"]);
    }
    // VNI = tag, the peer as head-end FDB entry, MTU 50 below the 1500 underlay.
    let details = a.ip(&["-d", "link", "show", "vxlan_vx1"]);
    assert!(details.contains("vxlan id 4242") && details.contains("local 192.0.2.1"), "{details}");
    assert!(details.contains("mtu 1450") && details.contains("master vx1"), "{details}");
    assert!(sh("bridge", &["-n", &a.0, "fdb", "show", "dev", "vxlan_vx1"]).contains("dst 192.0.2.2"));

    let (ca, cb) = (crate::ct::ctid(8), crate::ct::ctid(9));
    create(&node_a, &ca, &["--net0", "name=eth0,bridge=vx1,ip=10.88.0.1/24"]);
    create(&node_b, &cb, &["--net0", "name=eth0,bridge=vx1,ip=10.88.0.2/24"]);
    ok(&node_a, "ctctl", &["start", &ca]);
    ok(&node_b, "ctctl", &["start", &cb]);
    let (code, out, err) = exec(&node_a, &ca, &["ping", "-c", "1", "-W", "5", "10.88.0.2"]);
    assert_eq!(code, 0, "container on node a cannot reach node b's over VXLAN: {out}{err}");
    let (code, out, err) = exec(&node_b, &cb, &["ping", "-c", "1", "-W", "5", "10.88.0.1"]);
    assert_eq!(code, 0, "{out}{err}");
    // A new peer makes the tunnel again; the guest's port is plugged back into the VNet.
    netctl(&node_a, &["zone", "set", "zx", "--peers", "192.0.2.1,192.0.2.2,192.0.2.9"]);
    netctl(&node_a, &["apply", "--confirm-timeout", "0"]);
    assert!(sh("bridge", &["-n", &a.0, "fdb", "show", "dev", "vxlan_vx1"]).contains("dst 192.0.2.9"));
    assert!(a.ip(&["link", "show", &format!("veth{ca}i0")]).contains("master vx1"));
    let (code, out, err) = exec(&node_a, &ca, &["ping", "-c", "1", "-W", "5", "10.88.0.2"]);
    assert_eq!(code, 0, "after the tunnel was made again: {out}{err}");
    // The traffic went through the tunnel: the underlay carried VXLAN packets.
    let stats: serde_json::Value =
        serde_json::from_str(&a.ip(&["-j", "-s", "link", "show", "vxlan_vx1"])).expect("ip -j prints JSON");
    let sent = stats[0]["stats64"]["tx"]["packets"].as_u64().unwrap_or(0);
    assert!(sent > 0, "nothing went through vxlan_vx1: {stats}");
}

#[test]
fn an_apply_that_is_not_confirmed_rolls_back() {
    require_tools();
    let host = Netns::new("r");
    let mut daemon = HearthdProcess::start_in_netns(&host.0, "test");
    simple_zone(&daemon);
    let said = netctl(&daemon, &["apply", "--confirm-timeout", "2"]);
    assert!(said.contains("confirm within 2 s"), "{said}");
    assert!(host.has_link("vnet0"));
    assert!(host.nft_table().is_some());
    // A second apply waits for the first to be confirmed.
    assert!(netctl_fails(&daemon, &["apply"]).contains("waits for confirmation"));
    wait_until("the unconfirmed apply to roll back", || {
        json(&daemon, "netctl", &["sdn", "zone", "list", "--running"]) == serde_json::json!([])
    });
    assert!(!host.has_link("vnet0"), "the VNet bridge stayed after the rollback");
    assert!(host.nft_table().is_none(), "the SNAT table stayed after the rollback");
    assert!(!daemon.root().join("var/lib/hearth/sdn/dnsmasq/zs").exists(), "dnsmasq's files stayed");
    // What was not confirmed is pending again, to fix and apply once more.
    assert!(netctl(&daemon, &["pending"]).contains("+ zone zs"));
    assert!(netctl_fails(&daemon, &["confirm"]).contains("no applied SDN configuration waits"));

    // Confirmed in time, it stays.
    netctl(&daemon, &["apply", "--confirm-timeout", "30"]);
    netctl(&daemon, &["confirm"]);
    assert!(host.has_link("vnet0"));
    assert_eq!(json(&daemon, "netctl", &["sdn", "zone", "list", "--running"])[0]["id"], "zs");

    // hearthd stopped while an apply waits: its next start rolls the apply back.
    netctl(&daemon, &["subnet", "set", "10.77.0.0/24", "--gateway", "10.77.0.2"]);
    netctl(&daemon, &["apply", "--confirm-timeout", "300"]);
    assert!(host.ip(&["-4", "addr", "show", "vnet0"]).contains("10.77.0.2/24"));
    daemon.signal(nix::sys::signal::Signal::SIGKILL);
    daemon.restart();
    let addr = host.ip(&["-4", "addr", "show", "vnet0"]);
    assert!(addr.contains("10.77.0.1/24") && !addr.contains("10.77.0.2/24"), "{addr}");

    // hearthd killed half-way through an apply (its journal names a VNet vnet1 whose bridge it
    // had made): the next start removes what the apply made and rebuilds the running state.
    daemon.signal(nix::sys::signal::Signal::SIGKILL);
    let dir = daemon.root().join("etc/hearth/sdn");
    let running = std::fs::read_to_string(dir.join(".running-config.toml")).expect("the running configuration");
    let applying = format!("{running}\n[vnets.vnet1]\nzone = \"zs\"\n");
    std::fs::write(dir.join(".applying-config.toml"), applying).expect("writing the journal");
    host.ip(&["link", "add", "vnet1", "type", "bridge"]);
    host.ip(&["link", "del", "vnet0"]);
    daemon.restart();
    assert!(!host.has_link("vnet1"), "the half-applied VNet stayed");
    assert!(host.ip(&["-4", "addr", "show", "vnet0"]).contains("10.77.0.1/24"), "the running VNet was not rebuilt");
    assert!(host.nft_table().is_some_and(|t| t.contains("10.77.0.0/24")));
    assert!(!dir.join(".applying-config.toml").exists());
}

#[test]
fn bad_sdn_input_is_refused_and_changes_nothing() {
    require_tools();
    let host = Netns::new("i");
    let daemon = HearthdProcess::start_in_netns(&host.0, "test");
    simple_zone(&daemon);
    let file = daemon.root().join("etc/hearth/sdn/sdn.toml");
    let before = std::fs::read_to_string(&file).expect("the pending configuration");
    for (args, message) in [
        (&["zone", "add", "z2", "--type", "evpn"][..], "type: unknown zone type 'evpn' (allowed: simple, vlan, vxlan)"),
        (&["zone", "add", "z2"], "type: a zone needs a type"),
        (&["zone", "add", "zs", "--type", "simple"], "zone 'zs' already exists"),
        (&["vnet", "add", "toolongid", "--zone", "zs"], "invalid id 'toolongid'"),
        (&["vnet", "add", "lo", "--zone", "zs"], "'lo' is already an interface of this host"),
        (&["vnet", "add", "v1", "--zone", "nozone"], "zone 'nozone' does not exist"),
        (&["vnet", "add", "v1", "--zone", "zs", "--tag", "5"], "VNets of a simple zone take no tag"),
        (&["subnet", "add", "10.77.0.0/16", "--vnet", "vnet0"], "overlaps"),
        (
            &["subnet", "add", "10.78.0.0/24", "--vnet", "vnet0", "--gateway", "10.79.0.1"],
            "gateway: 10.79.0.1 is not a host address of 10.78.0.0/24",
        ),
        (
            &[
                "subnet",
                "add",
                "10.78.0.0/24",
                "--vnet",
                "vnet0",
                "--gateway",
                "10.78.0.1",
                "--dhcp-range",
                "start-address=10.78.0.10,end-address=10.78.1.10",
            ],
            "dhcp-range: start-address=10.78.0.10,end-address=10.78.1.10 is not inside 10.78.0.0/24",
        ),
        (&["subnet", "add", "10.78.0.5/24", "--vnet", "vnet0"], "invalid subnet id"),
        (&["zone", "delete", "zs"], "zone 'zs' is still used by vnet vnet0"),
        (&["vnet", "delete", "vnet0"], "vnet 'vnet0' is still used by subnet zs-10.77.0.0-24"),
        (&["zone", "set", "zs", "--mtu", "100"], "mtu: 100 is outside 1280..65520"),
    ] {
        let err = netctl_fails(&daemon, args);
        assert!(err.contains(message), "netctl sdn {args:?}: expected '{message}' in: {err}");
        assert_eq!(std::fs::read_to_string(&file).expect("still there"), before, "{args:?} changed the configuration");
    }
    // VLAN tags are unique in a zone; a vxlan zone whose peers are not this node's cannot apply.
    netctl(&daemon, &["zone", "add", "zx", "--type", "vxlan", "--peers", "198.51.100.1,198.51.100.2"]);
    netctl(&daemon, &["vnet", "add", "vxa", "--zone", "zx", "--tag", "7"]);
    assert!(
        netctl_fails(&daemon, &["vnet", "add", "vxb", "--zone", "zx", "--tag", "7"])
            .contains("tag 7 is already used by vnet vxa")
    );
    let err = netctl_fails(&daemon, &["apply", "--confirm-timeout", "0"]);
    assert!(err.contains("none of the peers is an address of node test"), "{err}");
    assert!(!host.has_link("vnet0") && host.nft_table().is_none());
    assert_eq!(json(&daemon, "netctl", &["sdn", "zone", "list", "--running"]), serde_json::json!([]));
}

/// Whether this kernel makes 802.1Q VLAN devices, tried in the namespace: a VLAN link on
/// `parent` is made and removed again.
fn kernel_has_vlans(ns: &Netns, parent: &str) -> bool {
    let made = Command::new("ip")
        .args(["-n", &ns.0, "link", "add", "link", parent, "name", "vprobe", "type", "vlan", "id", "99"])
        .output()
        .is_ok_and(|o| o.status.success());
    if made {
        ns.ip(&["link", "del", "vprobe"]);
    }
    made
}

/// A vlan zone's VNet takes its tag on the zone's bridge as `<bridge>.<tag>`. The development
/// and CI kernel has no VLAN devices: there the apply refuses, saying so, and leaves nothing;
/// on a kernel with them the tagged port is in the VNet bridge. The whole path with traffic,
/// on a VLAN-aware bridge, is checked in the test host (testhost_net.sh).
#[test]
fn a_vlan_zone_tags_on_its_bridge_or_says_the_kernel_lacks_vlans() {
    require_tools();
    let host = Netns::new("v");
    host.ip(&["link", "add", "vmbr0", "type", "bridge"]);
    let vlans = kernel_has_vlans(&host, "vmbr0");
    let daemon = HearthdProcess::start_in_netns(&host.0, "test");
    netctl(&daemon, &["zone", "add", "zv", "--type", "vlan", "--bridge", "vmbr0"]);
    assert!(netctl_fails(&daemon, &["vnet", "add", "v10", "--zone", "zv"]).contains("VNets of a vlan zone need a tag"));
    assert!(
        netctl_fails(&daemon, &["vnet", "add", "v10", "--zone", "zv", "--tag", "4095"]).contains("outside 1..4094")
    );
    netctl(&daemon, &["vnet", "add", "v10", "--zone", "zv", "--tag", "10"]);
    let (code, out, err) = run(&daemon, "netctl", &["sdn", "apply", "--confirm-timeout", "0"]);
    if vlans {
        assert_eq!(code, 0, "{out}{err}");
        let port = host.ip(&["-d", "link", "show", "vmbr0.10"]);
        assert!(port.contains("vlan protocol 802.1Q id 10") && port.contains("master v10"), "{port}");
    } else {
        assert_eq!(code, 1, "{out}{err}");
        assert!(err.contains("vmbr0.10") && err.contains("lacks 802.1Q VLAN devices"), "{err}");
        assert!(!host.has_link("v10") && !host.has_link("vmbr0.10"));
        assert_eq!(json(&daemon, "netctl", &["sdn", "vnet", "list", "--running"]), serde_json::json!([]));
        // The configuration stays pending, to apply on a kernel that has VLANs.
        let pending = json(&daemon, "netctl", &["sdn", "vnet", "list"]);
        assert!(pending.to_string().contains("\"v10\""), "{pending}");
    }
}

#[test]
fn a_dnsmasq_that_cannot_start_fails_the_apply_and_nothing_stays() {
    require_tools();
    let host = Netns::new("d");
    let daemon = HearthdProcess::start_in_netns(&host.0, "test");
    simple_zone(&daemon);
    // Something else holds the DHCP port in the namespace.
    let holder = Running(host.spawn(
        "python3",
        &[
            "-c",
            "import socket,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0',67)); \
             print('bound', flush=True); time.sleep(60)",
        ],
    ));
    let mut holder = holder;
    let mut line = String::new();
    {
        use std::io::BufRead;
        let mut out = std::io::BufReader::new(holder.0.stdout.as_mut().expect("piped"));
        out.read_line(&mut line).expect("reading the port holder");
    }
    assert_eq!(line.trim(), "bound");
    let err = netctl_fails(&daemon, &["apply", "--confirm-timeout", "0"]);
    assert!(err.contains("starting dnsmasq of zone zs") && err.contains("nothing changed"), "{err}");
    assert!(!host.has_link("vnet0"), "the VNet bridge stayed after a failed apply");
    assert!(host.nft_table().is_none(), "the SNAT table stayed after a failed apply");
    assert!(!daemon.root().join("var/lib/hearth/sdn/dnsmasq/zs").exists(), "dnsmasq's files stayed");
    assert_eq!(json(&daemon, "netctl", &["sdn", "zone", "list", "--running"]), serde_json::json!([]));
    assert!(netctl(&daemon, &["pending"]).contains("+ zone zs"));
}

#[test]
fn a_nic_on_a_vnet_needs_sdn_use_on_the_vnet_in_its_zone() {
    hearth_test::require_root("the test adds a Unix user");
    let daemon = HearthdProcess::start();
    netctl(&daemon, &["zone", "add", "zp", "--type", "simple"]);
    let vnet = format!("vp{}", suffix());
    netctl(&daemon, &["vnet", "add", &vnet, "--zone", "zp"]);
    let id = crate::ct::ctid(6);
    create(&daemon, &id, &[]);
    let user = crate::UnixUser::new("sd");
    let userid = user.userid();
    ok(&daemon, "userctl", &["user", "add", &userid]);
    ok(&daemon, "userctl", &["acl", "modify", &format!("/vms/{id}"), "--roles", "PVEVMAdmin", "--users", &userid]);
    let net0 = format!("name=eth0,bridge={vnet}");
    let attach = || user.run(&daemon, "ctctl", &["set", &id, "--net0", &net0]);
    let out = attach();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("SDN.Use on /sdn/zones/zp/{vnet}")), "{err}");
    // The local network zone's path is not the VNet's.
    let local = format!("/sdn/zones/localnetwork/{vnet}");
    ok(&daemon, "userctl", &["acl", "modify", &local, "--roles", "PVESDNUser", "--users", &userid]);
    assert_eq!(attach().status.code(), Some(1));
    ok(&daemon, "userctl", &["acl", "modify", "/sdn/zones/zp", "--roles", "PVESDNUser", "--users", &userid]);
    let out = attach();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // SDN.Use and SDN.Audit let the user see the zone but not change it.
    let out = user.run(&daemon, "netctl", &["sdn", "zone", "list", "--output-format", "json"]);
    let zones: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(zones[0]["id"], "zp", "{zones}");
    let out = user.run(&daemon, "netctl", &["sdn", "vnet", "set", &vnet, "--alias", "mine"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("SDN.Allocate on /sdn/zones/zp/{vnet}")), "{err}");
    // The VNet a guest uses cannot be deleted.
    assert!(netctl_fails(&daemon, &["vnet", "delete", &vnet]).contains(&format!("CT {id} (net0)")));
}

#[test]
fn an_apply_never_takes_or_removes_a_host_interface_named_like_a_vnet_port() {
    require_tools();
    let host = Netns::new("p");
    // An interface of the host that SDN did not make, named as a VNet's VXLAN port would be.
    host.ip(&["link", "add", "vxlan_vxp", "type", "bridge"]);
    host.ip(&["addr", "add", "192.0.2.1/24", "dev", "vxlan_vxp"]);
    let daemon = HearthdProcess::start_in_netns(&host.0, "test");
    netctl(&daemon, &["zone", "add", "zx", "--type", "vxlan", "--peers", "192.0.2.1,192.0.2.2"]);
    netctl(&daemon, &["vnet", "add", "vxp", "--zone", "zx", "--tag", "77"]);
    let err = netctl_fails(&daemon, &["apply", "--confirm-timeout", "0"]);
    assert!(err.contains("vxlan_vxp already exists"), "{err}");
    let kept = host.ip(&["-d", "link", "show", "vxlan_vxp"]);
    assert!(kept.contains("bridge") && !kept.contains("vxlan id"), "the host's interface was replaced: {kept}");
    assert!(host.ip(&["-4", "addr", "show", "vxlan_vxp"]).contains("192.0.2.1/24"));
    assert!(!host.has_link("vxp"), "the VNet bridge stayed after a failed apply");
    assert_eq!(json(&daemon, "netctl", &["sdn", "vnet", "list", "--running"]), serde_json::json!([]));
}

#[test]
fn an_interrupted_apply_rebuilds_the_running_vnets_with_their_guest_ports() {
    require_tools();
    let host = Netns::new("g");
    let mut daemon = HearthdProcess::start_in_netns(&host.0, "test");
    netctl(&daemon, &["zone", "add", "zg", "--type", "simple"]);
    netctl(&daemon, &["vnet", "add", "vnetg", "--zone", "zg"]);
    netctl(&daemon, &["subnet", "add", "10.66.0.0/24", "--vnet", "vnetg", "--gateway", "10.66.0.1"]);
    netctl(&daemon, &["apply", "--confirm-timeout", "0"]);
    // A running guest's port on the VNet.
    host.ip(&["link", "add", "veth991i0", "type", "veth", "peer", "name", "veth991p"]);
    host.ip(&["link", "set", "veth991i0", "master", "vnetg"]);
    // hearthd killed half-way through an apply that adds vnetx.
    daemon.signal(nix::sys::signal::Signal::SIGKILL);
    let dir = daemon.root().join("etc/hearth/sdn");
    let running = std::fs::read_to_string(dir.join(".running-config.toml")).expect("the running configuration");
    std::fs::write(dir.join(".applying-config.toml"), format!("{running}\n[vnets.vnetx]\nzone = \"zg\"\n"))
        .expect("writing the journal");
    daemon.restart();
    assert!(host.ip(&["-4", "addr", "show", "vnetg"]).contains("10.66.0.1/24"), "the running VNet was not rebuilt");
    let port = host.ip(&["link", "show", "veth991i0"]);
    assert!(port.contains("master vnetg"), "the guest's port was left off its VNet: {port}");
}
