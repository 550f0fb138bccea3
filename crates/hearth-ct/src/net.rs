//! A container's network interfaces: Proxmox's `veth` pairs plus what `lxcnetaddbr` does to
//! the host end (containers.md 2.3 step 7, 3.4 Network).
//!
//! For each `netN`: a veth pair whose host end is `veth<ctid>i<N>` and whose peer is created
//! directly in the container's network namespace under its configured name (`eth0`), so the
//! name never exists on the host and cannot clash with a host interface. The MTU is the
//! configured one or the bridge's; one larger than the bridge's is refused, as Proxmox does.
//! The host end gets a MAC whose first octet is `fe` (LXC's `setup_private_host_hw_addr`: a
//! Linux bridge takes the numerically lowest MAC of its ports unless one was set, and `fe…`
//! never is the lowest), is enslaved to the bridge, gets its VLANs and goes up.
//!
//! Every change goes through hearth-net (rtnetlink, no `ip` processes): the veth pair with its
//! peer created straight in the container's namespace, the host end plugged as Proxmox's
//! `tap_plug` does (MTU, IPv6 off, bridge, VLANs, `rate=`), and for a host-managed NIC
//! (`host_ipv4`/`host_ipv6`) the addresses and default routes added through a netlink handle
//! opened inside the namespace (`/proc/<pid>/ns/net`). Addresses are otherwise written by the
//! guest's own configuration.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use hearth_net::{IpCidr, MacAddr, Netlink, PeerNetns, PortPlug, VethPeer, VlanRange};

use crate::spec::NetSpec;

/// Errors setting up or checking a container interface.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("bridge {0} does not exist")]
    NoSuchBridge(String),
    #[error("{0} is not a bridge")]
    NotABridge(String),
    #[error("net{0} has no bridge")]
    NoBridge(u32),
    #[error("net{index}: MTU {mtu} is larger than the MTU {bridge_mtu} of bridge {bridge}")]
    MtuTooLarge { index: u32, mtu: u32, bridge: String, bridge_mtu: u32 },
    #[error("net{index}: VLANs need VLAN filtering on bridge {bridge} (bridge-vlan-aware yes)")]
    NoVlanFiltering { index: u32, bridge: String },
    #[error("interface {0} already exists on the host")]
    Exists(String),
    #[error("invalid {what} '{value}'")]
    Invalid { what: &'static str, value: String },
    #[error(transparent)]
    Net(#[from] hearth_net::NetError),
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
}

/// What [`check_bridge`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeInfo {
    pub name: String,
    pub mtu: u32,
    /// `/sys/class/net/<bridge>/bridge/vlan_filtering` (Proxmox's `bridge-vlan-aware`).
    pub vlan_filtering: bool,
    /// The VLAN a new port gets as untagged PVID (`default_pvid`, 1 unless changed; 0 = none).
    pub default_pvid: u16,
}

fn sys_net(name: &str) -> PathBuf {
    Path::new("/sys/class/net").join(name)
}

fn read_trimmed(path: PathBuf) -> Result<String, NetError> {
    std::fs::read_to_string(&path).map(|s| s.trim().to_owned()).map_err(|source| NetError::Read { path, source })
}

/// Checks that `name` is an existing bridge (in the caller's network namespace, through the
/// caller's `/sys`) and returns its MTU and VLAN settings.
pub fn check_bridge(name: &str) -> Result<BridgeInfo, NetError> {
    check_ifname(name)?;
    let dir = sys_net(name);
    if !dir.exists() {
        return Err(NetError::NoSuchBridge(name.to_owned()));
    }
    if !dir.join("bridge").is_dir() {
        return Err(NetError::NotABridge(name.to_owned()));
    }
    let number = |file: &str| -> Result<u32, NetError> {
        let path = dir.join(file);
        let text = read_trimmed(path.clone())?;
        text.parse().map_err(|_| NetError::Read {
            path,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, format!("'{text}' is not a number")),
        })
    };
    Ok(BridgeInfo {
        name: name.to_owned(),
        mtu: number("mtu")?,
        // Absent without CONFIG_BRIDGE_VLAN_FILTERING: then filtering is off.
        vlan_filtering: dir.join("bridge/vlan_filtering").exists() && number("bridge/vlan_filtering")? != 0,
        default_pvid: number("bridge/default_pvid").unwrap_or(1) as u16,
    })
}

/// A kernel interface name, as hearth-net accepts it: 1..=15 bytes, no `/`, `:`, whitespace or
/// NUL, not `.`/`..`, not starting with `-`.
pub fn check_ifname(name: &str) -> Result<(), NetError> {
    Ok(hearth_net::check_ifname(name)?)
}

/// A unicast MAC address `xx:xx:xx:xx:xx:xx`.
fn check_mac(mac: &str) -> Result<(), NetError> {
    let octets: Vec<&str> = mac.split(':').collect();
    let hex = |s: &&str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let ok = octets.len() == 6
        && octets.iter().all(hex)
        && u8::from_str_radix(octets[0], 16).is_ok_and(|first| first & 1 == 0)
        && octets.iter().any(|o| *o != "00");
    if ok { Ok(()) } else { Err(NetError::Invalid { what: "unicast MAC address", value: mac.to_owned() }) }
}

/// `address/prefix` of the right family; returns the address and prefix length.
fn check_cidr(cidr: &str, v6: bool) -> Result<(IpAddr, u8), NetError> {
    let bad = || NetError::Invalid { what: if v6 { "IPv6 CIDR" } else { "IPv4 CIDR" }, value: cidr.to_owned() };
    let (addr, len) = cidr.split_once('/').ok_or_else(bad)?;
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    if addr.is_ipv6() != v6 || len > if v6 { 128 } else { 32 } {
        return Err(bad());
    }
    Ok((addr, len))
}

fn check_gateway(gw: &str, v6: bool) -> Result<IpAddr, NetError> {
    match gw.parse::<IpAddr>() {
        Ok(addr) if addr.is_ipv6() == v6 => Ok(addr),
        _ => Err(NetError::Invalid { what: if v6 { "IPv6 gateway" } else { "IPv4 gateway" }, value: gw.to_owned() }),
    }
}

/// Whether `gw` is inside `addr/len`.
fn same_subnet(addr: IpAddr, len: u8, gw: IpAddr) -> bool {
    match (addr, gw) {
        (IpAddr::V4(a), IpAddr::V4(g)) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
            u32::from(a) & mask == u32::from(g) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(g)) => {
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
            u128::from(a) & mask == u128::from(g) & mask
        }
        _ => false,
    }
}

/// Creates and wires `net` for the container whose network namespace is that of `netns_pid`
/// (the container's init, still waiting for the go): the veth pair, the peer's name, MAC and
/// MTU inside, the host end's bridge, VLANs and link state; then, unless `link_down`, `lo`
/// and the peer up, and the host-managed addresses and default routes.
///
/// VLANs (bridge VLAN filtering required, else an error naming the bridge): with `tag`, the
/// bridge's default PVID (1) is removed from the port and `tag` becomes its untagged PVID;
/// each trunk range is added as tagged VLANs. Without either, the port keeps the bridge's
/// default (untagged PVID 1), as with Proxmox's untagged NICs.
///
/// On any error after the pair was created, the host end is deleted (which deletes the peer)
/// before returning the error.
pub fn attach(net: &NetSpec, netns_pid: i32) -> Result<(), NetError> {
    check_ifname(&net.host_name)?;
    check_ifname(&net.name)?;
    let bridge = net.bridge.as_deref().ok_or(NetError::NoBridge(net.index))?;
    let info = check_bridge(bridge)?;
    if let Some(mac) = &net.hwaddr {
        check_mac(mac)?;
    }
    let mtu = net.mtu.unwrap_or(info.mtu);
    if mtu > info.mtu {
        return Err(NetError::MtuTooLarge { index: net.index, mtu, bridge: bridge.to_owned(), bridge_mtu: info.mtu });
    }
    if mtu < 68 {
        return Err(NetError::Invalid { what: "MTU (at least 68)", value: mtu.to_string() });
    }
    let vid_ok = |v: u16| (1..=4094).contains(&v);
    if let Some(tag) = net.tag.filter(|&t| !vid_ok(t)) {
        return Err(NetError::Invalid { what: "VLAN tag", value: tag.to_string() });
    }
    for &(a, b) in &net.trunks {
        if !vid_ok(a) || !vid_ok(b) || a > b {
            return Err(NetError::Invalid { what: "VLAN trunk", value: format!("{a}-{b}") });
        }
    }
    if (net.tag.is_some() || !net.trunks.is_empty()) && !info.vlan_filtering {
        return Err(NetError::NoVlanFiltering { index: net.index, bridge: bridge.to_owned() });
    }
    let mut addrs = Vec::new();
    for (v6, conf) in [(false, &net.host_ipv4), (true, &net.host_ipv6)] {
        if let Some((cidr, gw)) = conf {
            let (addr, len) = check_cidr(cidr, v6)?;
            let gw = gw.as_deref().map(|g| check_gateway(g, v6)).transpose()?;
            addrs.push((v6, cidr.as_str(), addr, len, gw));
        }
    }

    if let Some(rate) = net.rate.filter(|r| !r.is_finite() || *r < 0.0) {
        return Err(NetError::Invalid { what: "rate (MB/s)", value: rate.to_string() });
    }
    let mac = net.hwaddr.as_deref().map(str::parse::<MacAddr>).transpose()?;
    let trunks = net.trunks.iter().map(|&(a, b)| VlanRange::new(a, b)).collect::<Result<Vec<_>, _>>()?;

    let mut nl = Netlink::open()?;
    if nl.exists(&net.host_name)? {
        return Err(NetError::Exists(net.host_name.clone()));
    }
    let peer = VethPeer { name: net.name.clone(), netns: Some(PeerNetns::Pid(netns_pid as u32)), mtu: Some(mtu), mac };
    nl.create_veth(&net.host_name, Some(mtu), &peer)?;

    let wired = (|| -> Result<(), NetError> {
        let host = net.host_name.as_str();
        // LXC's private host MAC: fe + the kernel's random rest.
        if let Some(MacAddr(mut random)) = nl.link(host)?.mac {
            random[0] = 0xfe;
            nl.set_mac(host, MacAddr(random))?;
        }
        let plug = PortPlug {
            tag: net.tag,
            trunks,
            mtu: Some(mtu),
            rate: net.rate.filter(|r| *r > 0.0),
            ..PortPlug::new(host, bridge)
        };
        let report = hearth_net::plug_port(&mut nl, &plug)?;
        for warning in report.warnings {
            tracing::warn!("{warning}");
        }

        let mut inside = Netlink::in_netns(format!("/proc/{netns_pid}/ns/net"))?;
        inside.set_up("lo", true)?;
        if !net.link_down {
            inside.set_up(&net.name, true)?;
        }
        for &(_, cidr, addr, len, gw) in &addrs {
            inside.add_address(&net.name, cidr.parse::<IpCidr>()?)?;
            // Routes need the link up; a down NIC gets its addresses only.
            if let Some(gw) = gw.filter(|_| !net.link_down) {
                if !same_subnet(addr, len, gw) {
                    // A gateway outside the subnet (common with hosted /32s): a device route
                    // to it first, as LXC does.
                    let host_route = IpCidr { addr: gw, prefix: if gw.is_ipv6() { 128 } else { 32 } };
                    inside.add_route(Some(host_route), None, &net.name)?;
                }
                inside.add_route(None, Some(gw), &net.name)?;
            }
        }
        Ok(())
    })();
    if let Err(e) = wired {
        let _ = nl.delete_link(&net.host_name);
        return Err(e);
    }
    Ok(())
}

/// Moves the host end of a running container's `net` into its (new) bridge, with the VLANs,
/// MTU and limit `net` names: out of the old bridge, then plugged as at start.
pub fn replug(net: &NetSpec) -> Result<(), NetError> {
    check_ifname(&net.host_name)?;
    let bridge = net.bridge.as_deref().ok_or(NetError::NoBridge(net.index))?;
    let info = check_bridge(bridge)?;
    if (net.tag.is_some() || !net.trunks.is_empty()) && !info.vlan_filtering {
        return Err(NetError::NoVlanFiltering { index: net.index, bridge: bridge.to_owned() });
    }
    let trunks = net.trunks.iter().map(|&(a, b)| VlanRange::new(a, b)).collect::<Result<Vec<_>, _>>()?;
    let mut nl = Netlink::open()?;
    nl.set_master(&net.host_name, None)?;
    hearth_net::set_rate(&mut nl, &net.host_name, None)?;
    let plug = PortPlug {
        tag: net.tag,
        trunks,
        mtu: net.mtu,
        rate: net.rate.filter(|r| *r > 0.0),
        ..PortPlug::new(&net.host_name, bridge)
    };
    hearth_net::plug_port(&mut nl, &plug)?;
    Ok(())
}

/// Deletes the host end of `net` (and with it the peer) if it still exists. Idempotent: a
/// missing interface is success (the namespace's end usually died with the container and
/// took the pair along).
pub fn detach(net: &NetSpec) -> Result<(), NetError> {
    check_ifname(&net.host_name)?;
    let mut nl = Netlink::open()?;
    match nl.delete_link(&net.host_name) {
        // Gone already, or meanwhile (the namespace died and took the pair along).
        Err(hearth_net::NetError::NotFound(_)) => Ok(()),
        Err(hearth_net::NetError::Kernel { errno: libc::ENODEV, .. }) => Ok(()),
        other => other.map_err(NetError::from),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::fs::File;
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn validation() {
        for good in ["eth0", "veth100i0", "vmbr0.100", "a"] {
            check_ifname(good).unwrap();
        }
        for bad in ["", "abcdefghijklmnop", "a/b", "a b", "..", "-x", "a:1"] {
            assert!(check_ifname(bad).is_err(), "{bad}");
        }
        check_mac("BC:24:11:00:00:01").unwrap();
        for bad in
            ["01:00:5e:00:00:01", "00:00:00:00:00:00", "bc:24:11:00:00", "bc-24-11-00-00-01", "zz:24:11:00:00:01"]
        {
            assert!(check_mac(bad).is_err(), "{bad}");
        }
        assert!(check_cidr("10.0.0.1/24", false).is_ok());
        assert!(check_cidr("10.0.0.1/33", false).is_err());
        assert!(check_cidr("fd00::1/64", false).is_err());
        assert!(check_cidr("fd00::1/64", true).is_ok());
        assert!(check_cidr("10.0.0.1", false).is_err());
        let a: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(same_subnet(a, 24, "10.1.2.254".parse().unwrap()));
        assert!(!same_subnet(a, 24, "10.1.3.1".parse().unwrap()));
        assert!(same_subnet("fd00::5".parse().unwrap(), 64, "fd00::1".parse().unwrap()));
        assert!(matches!(check_bridge("lo"), Err(NetError::NotABridge(_))));
    }

    /// A bridge and namespaces of one test, removed on drop (also on panic).
    struct Lab {
        prefix: String,
        bridge: String,
        children: Vec<Child>,
        hosts: Vec<String>,
    }

    /// Fails unless the test may make bridges and namespaces with iproute2 and util-linux.
    fn needs_root_and_tools() {
        crate::host_needs::root("bridges, veths and network namespaces");
        crate::host_needs::tool("unshare", "util-linux");
    }

    impl Lab {
        /// `tag`: one or two letters unique per test; names stay ≤ 15 bytes.
        /// `None` when VLAN filtering was asked for and the kernel has none
        /// (`CONFIG_BRIDGE_VLAN_FILTERING` off).
        fn new(tag: &str, vlan_filtering: bool, mtu: Option<u32>) -> Option<Lab> {
            let prefix = format!("h{:x}{tag}", std::process::id());
            let bridge = format!("{prefix}br");
            let lab = Lab { prefix, bridge, children: Vec::new(), hosts: Vec::new() };
            let mut nl = Netlink::open().unwrap();
            let options = hearth_net::BridgeOptions { vlan_filtering, ..Default::default() };
            if nl.create_bridge(&lab.bridge, &options).is_err() && vlan_filtering {
                return None;
            }
            if let Some(mtu) = mtu {
                nl.set_mtu(&lab.bridge, mtu).unwrap();
            }
            nl.set_up(&lab.bridge, true).unwrap();
            Some(lab)
        }

        /// A process in a new network namespace; returns its pid.
        fn netns(&mut self) -> i32 {
            let child =
                Command::new("/usr/bin/unshare").args(["--net", "sleep", "60"]).stdin(Stdio::null()).spawn().unwrap();
            let pid = child.id() as i32;
            self.children.push(child);
            let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            while std::fs::read_link(format!("/proc/{pid}/ns/net")).ok().is_none_or(|ns| ns == ours) {
                assert!(Instant::now() < deadline, "unshare did not enter a new namespace");
                std::thread::sleep(Duration::from_millis(5));
            }
            pid
        }

        fn spec(&mut self, n: u32, cidr: &str) -> NetSpec {
            let host_name = format!("{}v{n}", self.prefix);
            self.hosts.push(host_name.clone());
            NetSpec {
                index: n,
                name: "eth0".into(),
                host_name,
                bridge: Some(self.bridge.clone()),
                hwaddr: Some(format!("bc:24:11:00:00:{n:02x}")),
                mtu: None,
                tag: None,
                trunks: vec![],
                host_ipv4: Some((cidr.into(), None)),
                host_ipv6: None,
                link_down: false,
                rate: None,
            }
        }
    }

    impl Drop for Lab {
        fn drop(&mut self) {
            for host in &self.hosts {
                let _ = Netlink::open().unwrap().delete_link(host);
            }
            for child in &mut self.children {
                let _ = child.kill();
                let _ = child.wait();
            }
            let _ = Netlink::open().unwrap().delete_link(&self.bridge);
        }
    }

    /// Runs `f` in a thread that joined the network namespace of `pid`.
    fn in_netns<T: Send>(pid: i32, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let ns = File::open(format!("/proc/{pid}/ns/net")).unwrap();
                    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                    f()
                })
                .join()
                .unwrap()
        })
    }

    /// Whether a TCP connection from the namespace of `from` reaches a listener on `addr` in
    /// the namespace of `to` (a socket stays in the namespace it was created in).
    fn talks(from: i32, to: i32, addr: &str) -> bool {
        let addr: SocketAddr = format!("{addr}:7777").parse().unwrap();
        let _listener = in_netns(to, || TcpListener::bind(addr).unwrap());
        in_netns(from, || TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok())
    }

    /// A netlink handle in the namespace of `pid`.
    fn inside(pid: i32) -> Netlink {
        Netlink::in_netns(format!("/proc/{pid}/ns/net")).unwrap()
    }

    fn exists(name: &str) -> bool {
        sys_net(name).exists()
    }

    #[test]
    fn two_namespaces_talk_over_the_bridge() {
        needs_root_and_tools();
        let mut lab = Lab::new("p", false, None).unwrap();
        let (a, b) = (lab.netns(), lab.netns());
        let mut net_a = lab.spec(0, "10.77.0.1/24");
        net_a.host_ipv4 = Some(("10.77.0.1/24".into(), Some("10.77.0.254".into())));
        net_a.host_ipv6 = Some(("fd77::1/64".into(), Some("fd99::1".into())));
        let net_b = lab.spec(1, "10.77.0.2/24");
        attach(&net_a, a).unwrap();
        attach(&net_b, b).unwrap();

        assert!(talks(a, b, "10.77.0.2"));
        assert!(talks(b, a, "10.77.0.1"));

        // Inside: the name, MAC, MTU and routes; nothing named eth0 appeared on the host
        // side because of us.
        let mut inner = inside(a);
        let link = inner.link("eth0").unwrap();
        assert_eq!(link.mac.unwrap().to_string(), "bc:24:11:00:00:00");
        assert!(link.mtu == 1500 && link.up, "{link:?}");
        assert!(inner.link("lo").unwrap().up);
        let routes = inner.routes().unwrap();
        let dev = |r: &hearth_net::Route| r.dev.as_deref() == Some("eth0");
        let via = |r: &hearth_net::Route, gw: &str| r.is_default() && r.gateway == gw.parse().ok() && dev(r);
        assert!(routes.iter().any(|r| via(r, "10.77.0.254")), "{routes:?}");
        let host_route = |r: &hearth_net::Route| r.destination == "fd99::1/128".parse().ok() && dev(r);
        assert!(routes.iter().any(host_route) && routes.iter().any(|r| via(r, "fd99::1")), "{routes:?}");
        // Host side: in the bridge, up, private MAC.
        let master = std::fs::read_link(sys_net(&net_a.host_name).join("master")).unwrap();
        assert!(master.ends_with(&lab.bridge), "{master:?}");
        assert!(read_trimmed(sys_net(&net_a.host_name).join("address")).unwrap().starts_with("fe:"));
        assert_eq!(read_trimmed(sys_net(&net_a.host_name).join("operstate")).unwrap(), "up");

        // The same host end again: refused, and the existing one is left alone.
        assert!(matches!(attach(&net_a, a), Err(NetError::Exists(_))));
        assert!(exists(&net_a.host_name));

        detach(&net_a).unwrap();
        assert!(!exists(&net_a.host_name));
        detach(&net_a).unwrap();
        assert!(!inside(a).exists("eth0").unwrap(), "the peer went with the host end");
    }

    // VLAN tags and trunks need bridge VLAN filtering, which this development kernel lacks;
    // their packet test belongs with the kernel-complete test host (Debian's kernel under TCG).
    // Here, `refusals_leave_nothing_behind` checks that a tag on such a bridge is refused.

    #[test]
    fn refusals_leave_nothing_behind() {
        needs_root_and_tools();
        let mut lab = Lab::new("r", false, Some(1400)).unwrap();
        let a = lab.netns();

        // MTU above the bridge's.
        let mut net = lab.spec(0, "10.79.0.1/24");
        net.mtu = Some(1500);
        let err = attach(&net, a).unwrap_err();
        assert!(matches!(err, NetError::MtuTooLarge { mtu: 1500, bridge_mtu: 1400, .. }), "{err}");
        assert!(err.to_string().contains(&lab.bridge), "{err}");
        assert!(!exists(&net.host_name));

        // A VLAN tag on a bridge without VLAN filtering: the error names the bridge.
        net.mtu = None;
        net.tag = Some(5);
        let err = attach(&net, a).unwrap_err();
        assert!(matches!(err, NetError::NoVlanFiltering { .. }), "{err}");
        assert!(err.to_string().contains(&lab.bridge), "{err}");
        assert!(!exists(&net.host_name));

        // A missing bridge.
        net.tag = None;
        let missing = format!("{}zz", lab.prefix);
        net.bridge = Some(missing.clone());
        let err = attach(&net, a).unwrap_err();
        assert_eq!(err.to_string(), format!("bridge {missing} does not exist"));

        // A failure after the pair exists (IPv6 disabled inside, so the address is refused):
        // the host end is deleted again.
        net.bridge = Some(lab.bridge.clone());
        net.host_ipv6 = Some(("fd79::1/64".into(), None));
        in_netns(a, || std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1")).unwrap();
        let err = attach(&net, a).unwrap_err();
        assert!(matches!(err, NetError::Net(_)), "{err}");
        assert!(err.to_string().starts_with("eth0: add address fd79::1/64: "), "{err}");
        assert!(!exists(&net.host_name), "host end left after a failed attach");
        assert!(!inside(a).exists("eth0").unwrap());

        // The default MTU is the bridge's.
        net.host_ipv6 = None;
        attach(&net, a).unwrap();
        assert_eq!(inside(a).link("eth0").unwrap().mtu, 1400);
    }

    /// Sends `bytes` from the namespace of `from` to a listener in `to`; returns the time the
    /// receiver took to read them all.
    fn transfer(from: i32, to: i32, addr: &str, bytes: usize) -> Duration {
        use std::io::{Read, Write};
        let addr: SocketAddr = format!("{addr}:7778").parse().unwrap();
        let listener = in_netns(to, || TcpListener::bind(addr).unwrap());
        std::thread::scope(|scope| {
            let receiver = scope.spawn(|| {
                let (mut stream, _) = listener.accept().unwrap();
                let started = Instant::now();
                let mut buf = vec![0u8; 65536];
                let mut total = 0;
                while total < bytes {
                    let n = stream.read(&mut buf).unwrap();
                    assert!(n > 0, "connection closed after {total} bytes");
                    total += n;
                }
                started.elapsed()
            });
            let mut stream = in_netns(from, || TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap());
            stream.write_all(&vec![7u8; bytes]).unwrap();
            receiver.join().unwrap()
        })
    }

    #[test]
    fn rate_and_link_down_are_honoured() {
        needs_root_and_tools();
        let mut lab = Lab::new("q", false, None).unwrap();
        let (a, b, c) = (lab.netns(), lab.netns(), lab.netns());
        let net_a = lab.spec(0, "10.78.0.1/24");
        let mut net_b = lab.spec(1, "10.78.0.2/24");
        net_b.rate = Some(1.0);
        let mut net_c = lab.spec(2, "10.78.0.3/24");
        net_c.link_down = true;
        attach(&net_a, a).unwrap();
        attach(&net_b, b).unwrap();
        attach(&net_c, c).unwrap();

        // 1 MB/s toward b, with a 1 MiB burst: 4 MiB take about 3 s; unlimited toward a they
        // take a fraction of that.
        let limited = transfer(a, b, "10.78.0.2", 4 << 20);
        assert!(limited >= Duration::from_millis(2200), "4 MiB at rate=1 took {limited:?}");
        let free = transfer(b, a, "10.78.0.1", 4 << 20);
        assert!(free < Duration::from_millis(1500), "4 MiB unlimited took {free:?}");

        // link_down: plugged, addressed, but down inside; nothing reaches it.
        let mut inner = inside(c);
        assert!(!inner.link("eth0").unwrap().up);
        assert_eq!(inner.addresses("eth0").unwrap().len(), 1);
        assert!(!talks(a, c, "10.78.0.3"));
        inner.set_up("eth0", true).unwrap();
        assert!(talks(a, c, "10.78.0.3"));
    }
}
