//! Guest NICs plugged through hearth-net by real hearthd starts: the port in its bridge with
//! IPv6 off, `rate=` as a tc limit on the port, `link_down=1`, and a VLAN tag on a bridge
//! without VLAN filtering refused before anything starts. Bridges are the tests' own.

use std::path::Path;
use std::process::Command;

use hearth_test::HearthdProcess;

use crate::ct::{create, ctid, exec};
use crate::ok;
use crate::run;
use crate::vm::Bridge;

/// `tc qdisc show` and `tc class show` of a port.
fn tc_show(port: &str) -> String {
    let mut text = String::new();
    for what in ["qdisc", "class"] {
        let out =
            Command::new("/usr/sbin/tc").args([what, "show", "dev", port]).output().expect("tc (install iproute2)");
        text.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    text
}

fn port_state(port: &str) -> hearth_net::Link {
    hearth_net::Netlink::open().expect("netlink").link(port).expect("the port exists")
}

fn disable_ipv6(port: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{port}/disable_ipv6"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[test]
fn container_nics_honour_rate_link_down_and_refuse_a_tag_without_vlan_filtering() {
    let daemon = HearthdProcess::start();
    let bridge = Bridge::tagged("n");
    let (a, b) = (ctid(46), ctid(47));
    create(&daemon, &a, &["--net0", &format!("name=eth0,bridge={},ip=10.96.0.1/24,rate=2", bridge.0)]);
    create(&daemon, &b, &["--net0", &format!("name=eth0,bridge={},ip=10.96.0.2/24,link_down=1", bridge.0)]);
    ok(&daemon, "ctctl", &["start", &a]);
    ok(&daemon, "ctctl", &["start", &b]);

    let (port_a, port_b) = (format!("veth{a}i0"), format!("veth{b}i0"));
    let link = port_state(&port_a);
    assert_eq!(link.master.as_deref(), Some(bridge.0.as_str()));
    assert!(link.up, "{link:?}");
    assert_eq!(disable_ipv6(&port_a), "1", "no IPv6 on a guest's port");
    let tc = tc_show(&port_a);
    assert!(tc.contains("htb") && tc.contains("16777Kbit"), "rate=2 (MB/s) is an HTB limit on the port:\n{tc}");
    assert!(!tc_show(&port_b).contains("htb"), "no rate, no limit");

    // link_down=1: plugged, but the container's eth0 is down and unreachable.
    assert_eq!(port_state(&port_b).master.as_deref(), Some(bridge.0.as_str()));
    let (_, state, _) = exec(&daemon, &b, &["cat", "/sys/class/net/eth0/operstate"]);
    assert_eq!(state.trim(), "down");
    let (code, out, err) = exec(&daemon, &a, &["ping", "-c", "1", "-W", "2", "10.96.0.2"]);
    assert_ne!(code, 0, "a down link answers nothing: {out}{err}");

    // A VLAN tag on a bridge without VLAN filtering: refused, naming the bridge; no veth left.
    ok(&daemon, "ctctl", &["stop", &b]);
    ok(&daemon, "ctctl", &["set", &b, "--net0", &format!("name=eth0,bridge={},tag=5", bridge.0)]);
    let (code, _, err) = run(&daemon, "ctctl", &["start", &b]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("VLAN") && err.contains(&bridge.0), "{err}");
    assert!(!Path::new("/sys/class/net").join(&port_b).exists(), "no veth left behind");
    ok(&daemon, "ctctl", &["stop", &a]);
    assert!(!Path::new("/sys/class/net").join(&port_a).exists());
}

#[test]
fn a_vm_tap_gets_its_bridge_mtu_and_rate_and_a_tag_is_refused_before_start() {
    let daemon = HearthdProcess::start();
    let bridge = Bridge::tagged("t");
    let status = Command::new("ip").args(["link", "set", &bridge.0, "mtu", "1400"]).status().expect("ip");
    assert!(status.success());
    let mac = "BC:24:11:00:48:71";
    let net0 = format!("virtio={mac},bridge={},rate=1.5", bridge.0);
    ok(&daemon, "vmctl", &["create", "4871", "--memory", "64", "--kvm", "0", "--net0", &net0]);
    ok(&daemon, "vmctl", &["start", "4871"]);
    let tap = "tap4871i0";
    let link = port_state(tap);
    assert_eq!(link.master.as_deref(), Some(bridge.0.as_str()));
    assert_eq!(link.mtu, 1400, "the bridge's MTU");
    assert!(link.up);
    assert_eq!(disable_ipv6(tap), "1");
    let tc = tc_show(tap);
    assert!(tc.contains("htb") && tc.contains("12582Kbit"), "rate=1.5 (MB/s) as an HTB limit:\n{tc}");
    // Changing the rate of the running VM applies at once.
    let out = ok(&daemon, "vmctl", &["set", "4871", "--net0", &format!("virtio={mac},bridge={},rate=3", bridge.0)]);
    assert!(!out.contains("pending"), "{out}");
    let tc = tc_show(tap);
    assert!(tc.contains("25165Kbit"), "{tc}");
    ok(&daemon, "vmctl", &["stop", "4871"]);

    // An MTU above the bridge's, and a tag on a bridge without VLAN filtering: refused before
    // QEMU starts, naming the NIC and the bridge.
    ok(&daemon, "vmctl", &["set", "4871", "--net0", &format!("virtio={mac},bridge={},mtu=1500", bridge.0)]);
    let (code, _, err) = run(&daemon, "vmctl", &["start", "4871"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("net0: MTU 1500 is larger than the MTU 1400 of bridge"), "{err}");
    ok(&daemon, "vmctl", &["set", "4871", "--net0", &format!("virtio={mac},bridge={},tag=5", bridge.0)]);
    let (code, _, err) = run(&daemon, "vmctl", &["start", "4871"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("net0: VLAN tag or trunks need VLAN filtering on bridge"), "{err}");
    assert!(!Path::new("/sys/class/net").join(tap).exists(), "no tap without a VM");
    ok(&daemon, "vmctl", &["destroy", "4871"]);
}
