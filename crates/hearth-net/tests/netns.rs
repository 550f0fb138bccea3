//! hearth-net against the real kernel, inside private network namespaces only (nothing on the
//! host is touched). Needs root: without it the tests fail saying so.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hearth_net::{
    BridgeOptions, IpCidr, LinkKind, NetError, Netlink, PeerNetns, PortFlags, PortPlug, VethPeer, VxlanOptions,
    plug_port,
};

fn require_root() {
    assert!(nix::unistd::geteuid().is_root(), "these tests create network namespaces and links: run them as root");
}

/// A process sitting in a new network namespace, killed on drop (which frees the namespace and
/// every link in it).
struct Ns {
    child: Child,
}

impl Ns {
    fn new() -> Ns {
        let child = Command::new("/usr/bin/unshare")
            .args(["--net", "sleep", "120"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare (util-linux)");
        let pid = child.id();
        let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_link(format!("/proc/{pid}/ns/net")).ok().is_none_or(|ns| ns == ours) {
            assert!(Instant::now() < deadline, "unshare did not enter a new namespace");
            std::thread::sleep(Duration::from_millis(5));
        }
        Ns { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn path(&self) -> String {
        format!("/proc/{}/ns/net", self.pid())
    }

    fn netlink(&self) -> Netlink {
        Netlink::in_netns(self.path()).unwrap()
    }

    /// Runs `f` on a thread inside this namespace.
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let file = std::fs::File::open(self.path()).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                f()
            })
            .join()
            .unwrap()
        })
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn talks(from: &Ns, to: &Ns, addr: &str) -> bool {
    let addr: SocketAddr = format!("{addr}:7777").parse().unwrap();
    let _listener = to.run(|| TcpListener::bind(addr).unwrap());
    from.run(|| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok())
}

/// A "host" namespace with bridge br0 (MTU 1450), guests a and b plugged through veths.
#[test]
fn bridge_veths_and_traffic() {
    require_root();
    let host = Ns::new();
    let (a, b) = (Ns::new(), Ns::new());
    let mut nl = host.netlink();
    nl.create_bridge("br0", &BridgeOptions::default()).unwrap();
    nl.set_mtu("br0", 1450).unwrap();
    nl.set_up("br0", true).unwrap();
    for (n, guest) in [(0, &a), (1, &b)] {
        let host_end = format!("veth1i{n}");
        let peer =
            VethPeer { name: "eth0".into(), netns: Some(PeerNetns::Pid(guest.pid())), mtu: Some(1450), mac: None };
        nl.create_veth(&host_end, Some(1450), &peer).unwrap();
        let mut plug = PortPlug::new(&host_end, "br0");
        // One isolated port still talks to a non-isolated one.
        plug.isolated = n == 1;
        plug_port(&mut nl, &plug).unwrap();
        let mut inner = guest.netlink();
        inner.set_up("lo", true).unwrap();
        inner.set_up("eth0", true).unwrap();
        inner.add_address("eth0", format!("10.9.0.{}/24", n + 1).parse().unwrap()).unwrap();
        inner.add_route(None, Some("10.9.0.254".parse().unwrap()), "eth0").unwrap();
    }
    assert!(talks(&a, &b, "10.9.0.2"));
    assert!(talks(&b, &a, "10.9.0.1"));

    // Read back through the query API.
    let port0 = nl.link("veth1i0").unwrap();
    assert_eq!(port0.kind, LinkKind::Veth);
    assert_eq!(port0.master.as_deref(), Some("br0"));
    assert_eq!(port0.mtu, 1450);
    assert!(port0.up);
    let flags0 = port0.port.unwrap();
    assert!(flags0.learning && !flags0.isolated);
    let flags1 = nl.link("veth1i1").unwrap().port.unwrap();
    assert!(flags1.learning && flags1.unicast_flood && flags1.isolated, "{flags1:?}");
    // Learning off (SDN VNets without learning): learning and unicast flooding both off.
    let peer = VethPeer { name: "veth1p2".into(), netns: None, mtu: None, mac: None };
    nl.create_veth("veth1i2", None, &peer).unwrap();
    let mut plug = PortPlug::new("veth1i2", "br0");
    plug.learning = false;
    plug.link_down = true;
    plug_port(&mut nl, &plug).unwrap();
    let port2 = nl.link("veth1i2").unwrap();
    let flags2 = port2.port.clone().unwrap();
    assert!(!flags2.learning && !flags2.unicast_flood && !flags2.isolated, "{flags2:?}");
    assert!(!port2.up, "link_down leaves the port down");
    assert_eq!(port2.mtu, 1450, "the bridge's MTU");
    let br = nl.link("br0").unwrap();
    assert_eq!(br.kind, LinkKind::Bridge);
    assert!(br.bridge.is_some());
    let disabled = host.run(|| std::fs::read_to_string("/proc/sys/net/ipv6/conf/veth1i0/disable_ipv6").unwrap());
    assert_eq!(disabled.trim(), "1");
    let mut inner = a.netlink();
    assert_eq!(inner.addresses("eth0").unwrap()[0].cidr, "10.9.0.1/24".parse::<IpCidr>().unwrap());
    let routes = inner.routes().unwrap();
    assert!(routes.iter().any(|r| r.is_default() && r.gateway == Some("10.9.0.254".parse().unwrap())), "{routes:?}");
    assert!(routes.iter().any(|r| r.on_link && r.dev.as_deref() == Some("eth0")), "{routes:?}");

    // Isolated ports do not talk to each other; unisolate and they do again.
    nl.set_port_flags("veth1i0", &PortFlags { isolated: Some(true), ..PortFlags::default() }).unwrap();
    assert!(!talks(&a, &b, "10.9.0.2"));
    nl.set_port_flags("veth1i0", &PortFlags { isolated: Some(false), ..PortFlags::default() }).unwrap();
    assert!(talks(&a, &b, "10.9.0.2"));

    // Without VLAN filtering a port has no VLAN entries; with it, the plugged untagged
    // port carries 2-4094 tagged and 1 as untagged PVID.
    let vlans = nl.bridge_vlans("veth1i0").unwrap();
    if br.bridge.as_ref().is_some_and(|b| b.vlan_filtering) {
        assert!(vlans.iter().any(|v| v.pvid && v.untagged && v.vlans.start == 1), "{vlans:?}");
    } else {
        assert!(vlans.is_empty(), "{vlans:?}");
    }

    // Clear master, delete: the peer goes with it.
    nl.set_master("veth1i0", None).unwrap();
    assert_eq!(nl.link("veth1i0").unwrap().master, None);
    nl.delete_link("veth1i0").unwrap();
    assert!(!nl.exists("veth1i0").unwrap());
    assert!(!a.netlink().exists("eth0").unwrap());
}

#[test]
fn errors_name_the_interface_and_the_step() {
    require_root();
    let host = Ns::new();
    let mut nl = host.netlink();
    let err = nl.link("nosuch0").unwrap_err();
    assert_eq!(err.to_string(), "interface nosuch0 does not exist");
    let err = nl.create_bridge("abcdefghijklmnop", &BridgeOptions::default()).unwrap_err();
    assert!(matches!(err, NetError::Invalid { .. }) && err.to_string().contains("abcdefghijklmnop"), "{err}");
    nl.create_bridge("br0", &BridgeOptions::default()).unwrap();
    let err = nl.create_bridge("br0", &BridgeOptions::default()).unwrap_err();
    assert_eq!(err.to_string(), "br0: create bridge: File exists");
    nl.set_mtu("br0", 1400).unwrap();
    let peer = VethPeer { name: "p0".into(), netns: None, mtu: None, mac: None };
    nl.create_veth("v0", None, &peer).unwrap();
    let mut plug = PortPlug::new("v0", "br0");
    plug.mtu = Some(1500);
    let err = plug_port(&mut nl, &plug).unwrap_err();
    assert_eq!(err.to_string(), "v0: MTU 1500 is larger than the MTU 1400 of bridge br0");
    assert_eq!(nl.link("v0").unwrap().master, None, "nothing changed");
    plug.mtu = None;
    plug.tag = Some(5);
    let err = plug_port(&mut nl, &plug).unwrap_err();
    assert!(matches!(err, NetError::NoVlanFiltering { .. }), "{err}");
    // A bridge cannot be a port of itself.
    let err = nl.set_master("br0", Some("br0")).unwrap_err();
    assert!(err.to_string().starts_with("br0: set master br0: "), "{err}");
    // Bad VLAN ids and names are refused before the kernel is asked.
    let err = nl.create_vlan("br0.4095", "br0", 4095, hearth_net::VlanProtocol::Dot1Q).unwrap_err();
    assert!(matches!(err, NetError::Invalid { .. }) && err.to_string().contains("1 to 4094"), "{err}");
    assert!(matches!(nl.rename("v0", "abcdefghijklmnop"), Err(NetError::Invalid { .. })));
    // A kind this kernel may lack: created, or an error naming the interface and the step.
    let options = hearth_net::BondOptions {
        mode: "active-backup".parse().unwrap(),
        miimon: Some(100),
        xmit_hash_policy: None,
        primary: None,
    };
    match nl.create_bond("bond0", &options) {
        Ok(()) => {
            let bond = nl.link("bond0").unwrap().bond.unwrap();
            assert_eq!(bond.mode, Some(hearth_net::BondMode::ActiveBackup));
            nl.delete_link("bond0").unwrap();
        }
        Err(err) => assert!(err.to_string().starts_with("bond0: create bond (active-backup): "), "{err}"),
    }
    // A port that is not a bridge as "bridge".
    let err = plug_port(&mut nl, &PortPlug::new("p0", "v0")).unwrap_err();
    assert_eq!(err.to_string(), "v0 is not a bridge");
}

#[test]
fn vxlan_and_fdb() {
    require_root();
    let host = Ns::new();
    let mut nl = host.netlink();
    nl.set_up("lo", true).unwrap();
    nl.add_address("lo", "10.99.0.1/32".parse().unwrap()).unwrap();
    let options = VxlanOptions {
        vni: 4242,
        local: Some("10.99.0.1".parse().unwrap()),
        dstport: Some(4790),
        dev: None,
        learning: false,
    };
    nl.create_vxlan("vx0", &options).unwrap();
    let link = nl.link("vx0").unwrap();
    let info = link.vxlan.unwrap();
    assert_eq!((info.vni, info.port, info.learning), (4242, 4790, false));
    assert_eq!(info.local, Some("10.99.0.1".parse().unwrap()));
    nl.fdb_append("vx0", "10.99.0.2".parse().unwrap()).unwrap();
    nl.fdb_append("vx0", "10.99.0.3".parse().unwrap()).unwrap();
    let mut peers = nl.fdb_peers("vx0").unwrap();
    peers.sort();
    assert_eq!(peers, vec!["10.99.0.2".parse::<std::net::IpAddr>().unwrap(), "10.99.0.3".parse().unwrap()]);
    nl.fdb_del("vx0", "10.99.0.2".parse().unwrap()).unwrap();
    assert_eq!(nl.fdb_peers("vx0").unwrap().len(), 1);
    nl.rename("vx0", "vx1").unwrap();
    nl.delete_link("vx1").unwrap();
}
