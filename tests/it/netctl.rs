//! `netctl`: the node network configuration through a real hearthd. Every test that touches
//! the kernel starts hearthd inside a network namespace of its own (`hearthd --netns
//! /run/netns/NAME`), so bridges, ports and addresses appear only there, never on the host;
//! the namespace (and everything in it) is deleted when the test ends, however it ends.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hearth_test::HearthdProcess;

use crate::ct::{create, ctid, exec, wait_until};
use crate::{UnixUser, json, ok, run};

/// A network namespace of the test's own, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Netns {
        hearth_test::require_root("network namespaces");
        hearth_test::require_tool("ip", "iproute2");
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let name = format!("hnet{}-{n}-{:04x}", std::process::id(), nanos & 0xffff);
        let status = Command::new("ip").args(["netns", "add", &name]).status().expect("ip netns add");
        assert!(status.success(), "ip netns add {name}");
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Runs `ip -n NS ARGS`, which must succeed; answers stdout.
    fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip").arg("-n").arg(&self.name).args(args).output().expect("ip");
        assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A veth pair standing in for a NIC: `name` and its peer `nameP`.
    fn nic(&self, name: &str) {
        self.ip(&["link", "add", name, "type", "veth", "peer", "name", &format!("{name}p")]);
        self.ip(&["link", "set", &format!("{name}p"), "up"]);
    }

    /// The link's JSON from `ip -d -j link show`, or `None` when it does not exist.
    fn link(&self, name: &str) -> Option<serde_json::Value> {
        let out = Command::new("ip").args(["-n", &self.name, "-d", "-j", "link", "show", "dev", name]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        list.get(0).cloned()
    }

    fn master(&self, name: &str) -> Option<String> {
        self.link(name).and_then(|l| l["master"].as_str().map(str::to_owned))
    }

    fn ifindex(&self, name: &str) -> u64 {
        self.link(name).and_then(|l| l["ifindex"].as_u64()).unwrap_or_else(|| panic!("{name} exists"))
    }

    fn addresses(&self, name: &str) -> Vec<String> {
        let out = self.ip(&["-j", "addr", "show", "dev", name]);
        let list: serde_json::Value = serde_json::from_str(&out).expect("ip -j addr");
        list[0]["addr_info"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["scope"] != "link")
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or_default(), a["prefixlen"]))
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// hearthd in its own namespace, with test hooks in its environment.
fn daemon_in(ns: &Netns, env: &[(&str, &str)]) -> HearthdProcess {
    HearthdProcess::start_with(&["--netns", &ns.path()], env)
}

fn fails(daemon: &HearthdProcess, args: &[&str]) -> String {
    let (code, out, err) = run(daemon, "netctl", args);
    assert_eq!(code, 1, "netctl {args:?} should fail: {out}{err}");
    err
}

fn staged(daemon: &HearthdProcess) -> Option<Vec<u8>> {
    std::fs::read(daemon.root().join("etc/hearth/network.new.toml")).ok()
}

fn running(daemon: &HearthdProcess) -> Option<Vec<u8>> {
    std::fs::read(daemon.root().join("etc/hearth/network.toml")).ok()
}

/// The steps the apply journal holds (its first line is the header), or `None` without one.
fn journal(daemon: &HearthdProcess) -> Option<usize> {
    let text = std::fs::read_to_string(daemon.root().join("var/lib/hearth/network/journal.json")).ok()?;
    Some(text.lines().count().saturating_sub(1))
}

fn pending(daemon: &HearthdProcess) -> Vec<(String, String)> {
    let list = json(daemon, "netctl", &["pending"]);
    list.as_array()
        .expect("a list")
        .iter()
        .map(|c| {
            (c["iface"].as_str().unwrap_or_default().to_owned(), c["action"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

#[test]
fn bridges_are_staged_applied_and_moved_without_touching_the_rest() {
    let ns = Netns::new();
    let daemon = daemon_in(&ns, &[]);
    ns.nic("eno1");
    ns.nic("eno2");
    // An interface outside the configuration: never touched.
    ns.ip(&["link", "add", "br-other", "type", "bridge"]);
    ns.ip(&["addr", "add", "10.79.0.1/24", "dev", "br-other"]);

    // A NIC in the configuration with an address set by other means: apply leaves it.
    ns.nic("eno3");
    ns.ip(&["addr", "add", "10.76.0.9/24", "dev", "eno3"]);
    ok(&daemon, "netctl", &["create", "eno3", "--type", "eth", "--mtu", "1450", "--autostart"]);
    ok(&daemon, "netctl", &["create", "eno1", "--type", "eth"]);
    ok(
        &daemon,
        "netctl",
        &[
            "create",
            "vmbr1",
            "--type",
            "bridge",
            "--bridge_ports",
            "eno1",
            "--cidr",
            "10.77.0.1/24",
            "--autostart",
            "--comments",
            "lab",
        ],
    );
    ok(
        &daemon,
        "netctl",
        &["create", "vmbr2", "--type", "bridge", "--bridge_ports", "eno2", "--cidr", "10.78.0.1/24", "--autostart"],
    );
    // Staged only: the kernel has nothing yet.
    assert!(ns.link("vmbr1").is_none());
    assert!(running(&daemon).is_none());
    let p = pending(&daemon);
    assert!(p.contains(&("vmbr1".into(), "create".into())), "{p:?}");
    assert!(p.contains(&("vmbr2".into(), "create".into())), "{p:?}");
    let text = ok(&daemon, "netctl", &["pending"]);
    assert!(text.contains("+ vmbr1\n") && text.contains("cidr: - -> 10.77.0.1/24"), "{text}");

    let list = json(&daemon, "netctl", &["list", "--type", "bridge"]);
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    assert_eq!(list[0]["exists"], false);
    let show = json(&daemon, "netctl", &["show", "vmbr1"]);
    assert_eq!(show["bridge_ports"], serde_json::json!(["eno1"]));
    assert_eq!(show["comments"], "lab");

    let out = ok(&daemon, "netctl", &["apply", "--confirm-timeout", "0"]);
    assert!(out.contains("applied"), "{out}");
    assert_eq!(ns.master("eno1").as_deref(), Some("vmbr1"));
    assert_eq!(ns.master("eno2").as_deref(), Some("vmbr2"));
    assert_eq!(ns.addresses("vmbr1"), ["10.77.0.1/24"]);
    assert_eq!(ns.addresses("eno3"), ["10.76.0.9/24"], "an address the configuration does not name stays");
    assert_eq!(ns.link("eno3").expect("eno3")["mtu"], 1450);
    assert!(ns.link("vmbr1").expect("vmbr1")["flags"].as_array().expect("flags").contains(&"UP".into()));
    assert!(pending(&daemon).is_empty(), "{:?}", pending(&daemon));
    assert!(staged(&daemon).is_none() && running(&daemon).is_some());
    assert_eq!(json(&daemon, "netctl", &["show", "vmbr1"])["active"], true);

    // A guest port on vmbr1; then eno1 moves to vmbr2 and vmbr2 gets an MTU.
    ns.ip(&["link", "add", "veth901i0", "type", "veth", "peer", "name", "guest901"]);
    ns.ip(&["link", "set", "veth901i0", "master", "vmbr1"]);
    let vmbr1 = ns.ifindex("vmbr1");
    ok(&daemon, "netctl", &["set", "vmbr1", "--delete", "bridge_ports"]);
    ok(&daemon, "netctl", &["set", "vmbr2", "--bridge_ports", "eno2,eno1", "--mtu", "1400"]);
    let text = ok(&daemon, "netctl", &["pending"]);
    assert!(text.contains("~ vmbr2\n") && text.contains("bridge_ports: eno2 -> eno2 eno1"), "{text}");
    ok(&daemon, "netctl", &["apply", "--confirm-timeout", "0"]);
    assert_eq!(ns.master("eno1").as_deref(), Some("vmbr2"));
    assert_eq!(ns.ifindex("vmbr1"), vmbr1, "an unchanged bridge is not recreated");
    assert_eq!(ns.master("veth901i0").as_deref(), Some("vmbr1"), "guest ports stay plugged");
    assert_eq!(ns.link("vmbr2").expect("vmbr2")["mtu"], 1400);
    assert_eq!(ns.addresses("br-other"), ["10.79.0.1/24"], "interfaces outside the configuration are untouched");

    // Deleting: the bridge goes, its ports are free again.
    ok(&daemon, "netctl", &["delete", "vmbr2"]);
    assert_eq!(pending(&daemon), [("vmbr2".to_owned(), "delete".to_owned())]);
    ok(&daemon, "netctl", &["apply", "--confirm-timeout", "0"]);
    assert!(ns.link("vmbr2").is_none());
    assert_eq!(ns.master("eno1"), None);
    assert!(ns.link("br-other").is_some());

    // revert drops staged edits.
    ok(&daemon, "netctl", &["create", "vmbr3", "--type", "bridge"]);
    assert!(staged(&daemon).is_some());
    ok(&daemon, "netctl", &["revert"]);
    assert!(staged(&daemon).is_none());
    assert!(pending(&daemon).is_empty());
}

#[test]
fn an_unconfirmed_apply_is_rolled_back() {
    let ns = Netns::new();
    let daemon = daemon_in(&ns, &[]);
    ns.nic("eno1");
    ok(
        &daemon,
        "netctl",
        &["create", "vmbr1", "--type", "bridge", "--bridge_ports", "eno1", "--cidr", "10.77.0.1/24", "--autostart"],
    );
    ok(&daemon, "netctl", &["apply", "--confirm-timeout", "0"]);
    let before = running(&daemon).expect("running config");

    ok(&daemon, "netctl", &["set", "vmbr1", "--cidr", "10.77.5.1/24", "--delete", "bridge_ports"]);
    ok(&daemon, "netctl", &["create", "vmbr2", "--type", "bridge", "--bridge_ports", "eno1", "--autostart"]);
    let out = ok(&daemon, "netctl", &["apply", "--confirm-timeout", "2"]);
    assert!(out.contains("netctl confirm"), "{out}");
    assert_eq!(ns.master("eno1").as_deref(), Some("vmbr2"));
    assert_eq!(ns.addresses("vmbr1"), ["10.77.5.1/24"]);
    // A second apply waits for the first to be confirmed.
    assert!(fails(&daemon, &["apply"]).contains("waiting for confirmation"));
    wait_until("the rollback", || journal(&daemon).is_none());
    assert!(ns.link("vmbr2").is_none(), "the created bridge is gone");
    assert_eq!(ns.master("eno1").as_deref(), Some("vmbr1"));
    assert_eq!(ns.addresses("vmbr1"), ["10.77.0.1/24"]);
    assert_eq!(running(&daemon).expect("running config"), before, "the previous configuration runs again");
    // The edits are staged again, for another try.
    assert!(pending(&daemon).contains(&("vmbr2".into(), "create".into())));

    // Confirmed in time, it stays.
    ok(&daemon, "netctl", &["apply", "--confirm-timeout", "3"]);
    ok(&daemon, "netctl", &["confirm"]);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(ns.master("eno1").as_deref(), Some("vmbr2"));
    assert!(journal(&daemon).is_none());
    assert!(fails(&daemon, &["confirm"]).contains("no applied network configuration"));
}

#[test]
fn a_failing_step_rolls_everything_back_and_is_named() {
    let ns = Netns::new();
    let daemon = daemon_in(&ns, &[("HEARTH_TEST_NET_FAIL_STEP", "3")]);
    ns.nic("eno1");
    ok(
        &daemon,
        "netctl",
        &["create", "vmbr1", "--type", "bridge", "--bridge_ports", "eno1", "--cidr", "10.77.0.1/24", "--autostart"],
    );
    let err = fails(&daemon, &["apply", "--confirm-timeout", "0"]);
    assert!(err.contains("step 3 (") && err.contains("rolled back"), "{err}");
    assert!(ns.link("vmbr1").is_none(), "steps 1 and 2 were undone");
    assert_eq!(ns.master("eno1"), None);
    assert!(running(&daemon).is_none(), "the running configuration is unchanged");
    assert!(staged(&daemon).is_some(), "the edits are still staged");
    assert!(journal(&daemon).is_none());
}

#[test]
fn a_killed_hearthd_rolls_back_at_its_next_start() {
    let ns = Netns::new();
    let mut daemon = daemon_in(&ns, &[("HEARTH_TEST_NET_PAUSE_STEP", "4")]);
    ns.nic("eno1");
    ok(
        &daemon,
        "netctl",
        &["create", "vmbr1", "--type", "bridge", "--bridge_ports", "eno1", "--cidr", "10.77.0.1/24", "--autostart"],
    );
    let mut apply = daemon.command("netctl").args(["apply", "--confirm-timeout", "0"]).spawn().expect("netctl apply");
    let deadline = Instant::now() + Duration::from_secs(20);
    while journal(&daemon).unwrap_or(0) < 4 {
        assert!(Instant::now() < deadline, "the apply did not reach step 4");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Steps 1-3 ran: the bridge exists with its port.
    assert!(ns.link("vmbr1").is_some());
    assert_eq!(ns.master("eno1").as_deref(), Some("vmbr1"));
    daemon.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = apply.wait();
    daemon.set_env(&[]);
    daemon.restart();
    assert!(journal(&daemon).is_none(), "the journal was played back");
    assert!(ns.link("vmbr1").is_none(), "nothing is left half-configured");
    assert_eq!(ns.master("eno1"), None);
    assert!(running(&daemon).is_none());
}

#[test]
fn bad_input_changes_nothing() {
    let ns = Netns::new();
    let daemon = daemon_in(&ns, &[]);
    ns.nic("eno1");
    ns.nic("eno2");
    ok(&daemon, "netctl", &["create", "eno1", "--type", "eth", "--mtu", "1500"]);
    ok(
        &daemon,
        "netctl",
        &[
            "create",
            "vmbr0",
            "--type",
            "bridge",
            "--bridge_ports",
            "eno1",
            "--cidr",
            "10.80.0.2/24",
            "--gateway",
            "10.80.0.1",
        ],
    );
    let before = staged(&daemon).expect("staged");
    let cases: &[(&[&str], &str)] = &[
        (&["create", "vmbr1", "--type", "bridge", "--cidr", "10.80.0.9/16"], "overlaps"),
        (&["create", "vmbr1", "--type", "bridge", "--bridge_ports", "eno1"], "eno1 is already used on interface vmbr0"),
        (
            &["create", "v5", "--type", "vlan", "--vlan-raw-device", "eno2", "--vlan-id", "4095"],
            "vlan-id: 4095 is outside 1-4094",
        ),
        (&["create", "bond0", "--type", "bond"], "slaves: bond bond0 needs at least one slave"),
        (
            &[
                "create",
                "bond0",
                "--type",
                "bond",
                "--slaves",
                "eno2",
                "--bond_mode",
                "active-backup",
                "--bond-primary",
                "eno1",
            ],
            "bond-primary: eno1 is not a slave",
        ),
        (
            &["create", "vmbr1", "--type", "bridge", "--cidr", "10.81.0.2/24", "--gateway", "10.82.0.1"],
            "gateway: 10.82.0.1 is outside vmbr1's subnet",
        ),
        (
            &["create", "vmbr1", "--type", "bridge", "--cidr", "10.81.0.2/24", "--gateway", "10.81.0.1"],
            "only one interface may hold the default gateway",
        ),
        (&["create", "averyveryverylongname", "--type", "eth"], "must be 1 to 15 bytes"),
        (&["create", "bridgename1x", "--type", "bridge"], "is not a bridge name"),
        (&["set", "vmbr0", "--mtu", "9000"], "mtu: vmbr0's MTU 9000 is above its port eno1's MTU 1500"),
        (&["create", "vmbr1", "--type", "bridge", "--bridge_vids", "2-10"], "bridge_vids: only with bridge_vlan_aware"),
        (&["create", "vmbr0", "--type", "bridge"], "interface 'vmbr0' already exists"),
        (&["create", "eno9", "--type", "eth"], "no network device 'eno9'"),
        (&["set", "vmbr9", "--mtu", "1500"], "interface 'vmbr9' is not configured"),
        (&["set", "vmbr0", "--slaves", "eno2"], "slaves: only for interfaces of type bond"),
        (&["delete", "eno1"], "eno1 is used by interface vmbr0"),
    ];
    for (args, wanted) in cases {
        let err = fails(&daemon, args);
        assert!(err.contains(wanted), "netctl {args:?}: {err}");
        assert_eq!(staged(&daemon).as_deref(), Some(before.as_slice()), "netctl {args:?} changed the staged file");
    }
    // A port that does not exist is refused by apply before anything changes.
    ok(&daemon, "netctl", &["create", "vmbr1", "--type", "bridge", "--bridge_ports", "eno7"]);
    let err = fails(&daemon, &["apply", "--confirm-timeout", "0"]);
    assert!(err.contains("bridge_ports: eno7 of vmbr1 does not exist"), "{err}");
    assert!(ns.link("vmbr0").is_none() && ns.link("vmbr1").is_none());
    assert!(running(&daemon).is_none());
    // A bad import is refused and leaves the staged file.
    let staged_now = staged(&daemon);
    let file = daemon.root().join("bad-interfaces");
    std::fs::write(&file, "auto vmbr0\niface vmbr0 inet static\n\taddress 10.0.0.1/24\n\tbridge-ports eno1\nauto vmbr1\niface vmbr1 inet manual\n\tbridge-ports eno1\n").expect("write");
    let err = fails(&daemon, &["import", file.to_str().expect("utf-8")]);
    assert!(err.contains("eno1 is already used on interface"), "{err}");
    assert_eq!(staged(&daemon), staged_now);
    // A bond gets Proxmox's link monitoring unless told otherwise.
    ok(&daemon, "netctl", &["create", "bond0", "--type", "bond", "--slaves", "eno2", "--bond_mode", "active-backup"]);
    let bond = json(&daemon, "netctl", &["show", "bond0"]);
    assert_eq!(bond["bond_miimon"], 100, "{bond}");
}

#[test]
fn a_bridge_a_guest_uses_cannot_be_deleted() {
    let ns = Netns::new();
    let daemon = daemon_in(&ns, &[]);
    ok(&daemon, "netctl", &["create", "vmbr5", "--type", "bridge"]);
    ok(&daemon, "vmctl", &["create", "931", "--net0", "virtio,bridge=vmbr5", "--memory", "64"]);
    let err = fails(&daemon, &["delete", "vmbr5"]);
    assert!(err.contains("bridge vmbr5 is used by guest NICs: VM 931 (net0)"), "{err}");
    assert!(json(&daemon, "netctl", &["show", "vmbr5"])["iface"] == "vmbr5");
    ok(&daemon, "vmctl", &["destroy", "931"]);
    ok(&daemon, "netctl", &["delete", "vmbr5"]);
}

const PVE_DOCS_BOND_VLAN: &str = "auto lo
iface lo inet loopback

iface eno1 inet manual

iface eno2 inet manual

auto bond0
iface bond0 inet manual
      bond-slaves eno1 eno2
      bond-miimon 100
      bond-mode 802.3ad
      bond-xmit-hash-policy layer2+3

iface bond0.5 inet manual

auto vmbr0v5
iface vmbr0v5 inet static
        address  10.10.10.2/24
        gateway  10.10.10.1
        bridge-ports bond0.5
        bridge-stp off
        bridge-fd 0

auto vmbr0
iface vmbr0 inet manual
        bridge-ports bond0
        bridge-stp off
        bridge-fd 0
#the guests' bridge
        post-up echo hello

source /etc/network/interfaces.d/*
";

#[test]
fn import_and_export_round_trip() {
    let daemon = HearthdProcess::start();
    let file = daemon.root().join("interfaces");
    std::fs::write(&file, PVE_DOCS_BOND_VLAN).expect("write");
    ok(&daemon, "netctl", &["import", file.to_str().expect("utf-8")]);
    let exported = ok(&daemon, "netctl", &["export"]);
    assert!(exported.starts_with("# network interface settings; autogenerated\n"), "{exported}");
    for wanted in [
        "auto bond0\niface bond0 inet manual\n\tbond-slaves eno1 eno2\n\tbond-miimon 100\n\tbond-mode 802.3ad\n\tbond-xmit-hash-policy layer2+3\n",
        "auto vmbr0\niface vmbr0 inet manual\n\tbridge-ports bond0\n\tbridge-stp off\n\tbridge-fd 0\n\tpost-up echo hello\n#the guests' bridge\n",
        "iface bond0.5 inet manual\n",
        "\nsource /etc/network/interfaces.d/*\n",
    ] {
        assert!(exported.contains(wanted), "{wanted:?} not in:\n{exported}");
    }
    // Proxmox's order: loopback, NICs, bonds, bridges, VLANs.
    let pos = |s: &str| exported.find(s).unwrap_or_else(|| panic!("{s} in {exported}"));
    assert!(
        pos("iface lo") < pos("iface eno1")
            && pos("iface eno2") < pos("iface bond0 ")
            && pos("iface bond0 ") < pos("iface vmbr0v5")
    );
    assert!(pos("iface vmbr0 ") < pos("iface bond0.5"));
    let types = json(&daemon, "netctl", &["list"]);
    let kind = |name: &str| {
        types.as_array().expect("list").iter().find(|i| i["iface"] == name).map(|i| i["type"].clone()).expect(name)
    };
    assert_eq!(kind("bond0"), "bond");
    assert_eq!(kind("bond0.5"), "vlan");
    assert_eq!(kind("vmbr0v5"), "bridge");
    assert_eq!(kind("lo"), "loopback");
    // Importing the export gives the same export again (from standard input too).
    let mut child = daemon
        .command("netctl")
        .args(["import", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("netctl import -");
    use std::io::Write;
    child.stdin.take().expect("stdin").write_all(exported.as_bytes()).expect("write");
    assert!(child.wait().expect("wait").success());
    assert_eq!(ok(&daemon, "netctl", &["export"]), exported);
}

#[test]
fn auditors_may_read_and_only_sys_modify_may_change() {
    let daemon = HearthdProcess::start();
    ok(&daemon, "netctl", &["create", "vmbr7", "--type", "bridge"]);
    let user = UnixUser::new("net");
    ok(&daemon, "userctl", &["user", "add", &user.userid()]);
    let out = user.run(&daemon, "netctl", &["list"]);
    assert_eq!(out.status.code(), Some(1), "no ACL, no list");
    ok(&daemon, "userctl", &["acl", "modify", "/nodes/test", "--roles", "PVEAuditor", "--users", &user.userid()]);
    let out = user.run(&daemon, "netctl", &["list", "--output-format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("vmbr7"));
    for args in [&["create", "vmbr8", "--type", "bridge"][..], &["delete", "vmbr7"], &["apply"], &["revert"]] {
        let out = user.run(&daemon, "netctl", args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("Sys.Modify"), "{args:?}: {err}");
    }
    ok(&daemon, "userctl", &["acl", "modify", "/nodes/test", "--roles", "Administrator", "--users", &user.userid()]);
    let out = user.run(&daemon, "netctl", &["create", "vmbr8", "--type", "bridge"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Connects from container `from` to `ip`:7000, where a listener of the container `to` runs;
/// answers whether the word came through.
fn tcp_reaches(daemon: &HearthdProcess, from: &str, ip: &str) -> bool {
    let (code, out, _) = exec(daemon, from, &["sh", "-c", &format!("echo hearth | nc -w 2 {ip} 7000 && echo sent")]);
    code == 0 && out.contains("sent")
}

#[test]
fn containers_on_a_netctl_bridge_reach_each_other_and_not_another_bridge() {
    let ns = Netns::new();
    let daemon = daemon_in(&ns, &[]);
    ok(&daemon, "netctl", &["create", "vmbr11", "--type", "bridge", "--autostart"]);
    ok(&daemon, "netctl", &["create", "vmbr12", "--type", "bridge", "--autostart"]);
    ok(&daemon, "netctl", &["apply", "--confirm-timeout", "0"]);
    let (a, b, c) = (ctid(61), ctid(62), ctid(63));
    for (id, bridge, ip) in
        [(&a, "vmbr11", "10.97.0.1/24"), (&b, "vmbr11", "10.97.0.2/24"), (&c, "vmbr12", "10.97.0.3/24")]
    {
        create(&daemon, id, &["--net0", &format!("name=eth0,bridge={bridge},ip={ip}")]);
        ok(&daemon, "ctctl", &["start", id]);
    }
    assert!(Path::new(&format!("/proc/{}/ns/net", std::process::id())).exists());
    assert_eq!(ns.master(&format!("veth{a}i0")).as_deref(), Some("vmbr11"));
    for listener in [&b, &c] {
        let (code, _, err) =
            exec(&daemon, listener, &["sh", "-c", "nc -l -p 7000 > /tmp/got 2>&1 </dev/null & echo started"]);
        assert_eq!(code, 0, "{err}");
    }
    // Port 7000 (0x1B58) in LISTEN (0A) in each listener, however slow the machine.
    for listener in [&b, &c] {
        wait_until("the listener", || {
            let (_, tables, _) = exec(&daemon, listener, &["cat", "/proc/net/tcp", "/proc/net/tcp6"]);
            tables.lines().any(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                fields.len() > 3 && fields[1].ends_with(":1B58") && fields[3] == "0A"
            })
        });
    }
    assert!(tcp_reaches(&daemon, &a, "10.97.0.2"), "a reaches b on the same bridge");
    wait_until("b to receive", || exec(&daemon, &b, &["cat", "/tmp/got"]).1.contains("hearth"));
    assert!(!tcp_reaches(&daemon, &a, "10.97.0.3"), "a does not reach c on another bridge");
    assert!(!exec(&daemon, &c, &["cat", "/tmp/got"]).1.contains("hearth"));
    for id in [&a, &b, &c] {
        let _ = run(&daemon, "ctctl", &["stop", id]);
    }
}

#[test]
fn an_apply_left_unconfirmed_by_a_dead_hearthd_is_rolled_back_at_start() {
    let ns = Netns::new();
    let mut daemon = daemon_in(&ns, &[]);
    ns.nic("eno1");
    ok(&daemon, "netctl", &["create", "vmbr1", "--type", "bridge", "--bridge_ports", "eno1", "--autostart"]);
    ok(&daemon, "netctl", &["apply", "--confirm-timeout", "2"]);
    assert_eq!(ns.master("eno1").as_deref(), Some("vmbr1"));
    daemon.signal(nix::sys::signal::Signal::SIGKILL);
    std::thread::sleep(Duration::from_secs(3));
    assert!(ns.link("vmbr1").is_some(), "nobody rolled back while hearthd was down");
    daemon.restart();
    assert!(journal(&daemon).is_none());
    assert!(ns.link("vmbr1").is_none(), "the start undid the unconfirmed apply");
    assert_eq!(ns.master("eno1"), None);
    assert!(pending(&daemon).contains(&("vmbr1".into(), "create".into())), "the edits are staged again");
}

#[test]
fn a_journal_of_another_boot_or_namespace_leaves_its_interfaces_alone() {
    // An apply left unconfirmed in one namespace; hearthd next starts in another (as after a
    // reboot, the kernel state the journal describes is gone) where a vmbr1 of someone else's
    // exists: the configuration files are restored, that vmbr1 is not touched.
    let first = Netns::new();
    let mut daemon = daemon_in(&first, &[]);
    first.nic("eno1");
    ok(&daemon, "netctl", &["create", "vmbr1", "--type", "bridge", "--bridge_ports", "eno1", "--autostart"]);
    ok(&daemon, "netctl", &["apply", "--confirm-timeout", "2"]);
    daemon.signal(nix::sys::signal::Signal::SIGKILL);
    std::thread::sleep(Duration::from_secs(3));
    let second = Netns::new();
    second.nic("eno1");
    second.ip(&["link", "add", "vmbr1", "type", "bridge"]);
    second.ip(&["link", "set", "eno1", "master", "vmbr1"]);
    let index = second.ifindex("vmbr1");
    daemon.set_args(&["--netns", &second.path()]);
    daemon.restart();
    assert!(journal(&daemon).is_none(), "the journal was not settled");
    assert_eq!(second.link("vmbr1").map(|_| second.ifindex("vmbr1")), Some(index), "another boot's vmbr1 was removed");
    assert_eq!(second.master("eno1").as_deref(), Some("vmbr1"));
    assert!(running(&daemon).is_none(), "the previous configuration runs again");
    assert!(pending(&daemon).iter().any(|(i, _)| i == "vmbr1"), "the edits are staged again");
}

#[test]
fn an_sdn_vnet_is_not_taken_over_by_the_node_network() {
    // The VNet bridge and its ports belong to SDN: the node configuration may not claim them
    // (an apply would detach the VNet's ports, a later delete remove the VNet with its guests).
    let ns = Netns::new();
    let daemon = daemon_in(&ns, &[]);
    ok(&daemon, "netctl", &["sdn", "zone", "add", "zn", "--type", "simple"]);
    ok(&daemon, "netctl", &["sdn", "vnet", "add", "vnn", "--zone", "zn"]);
    let err = fails(&daemon, &["create", "vnn", "--type", "bridge"]);
    assert!(err.contains("iface: 'vnn' is the bridge of SDN VNet vnn"), "{err}");
    assert!(staged(&daemon).is_none(), "the refused edit was staged");
    let file = daemon.root().join("interfaces");
    std::fs::write(&file, "auto vnn\niface vnn inet manual\n\tbridge-ports none\n").expect("write");
    let err = fails(&daemon, &["import", file.to_str().expect("utf-8")]);
    assert!(err.contains("iface: 'vnn' is the bridge of SDN VNet vnn"), "{err}");
    assert!(staged(&daemon).is_none(), "the refused import was staged");
    // Staged before the VNet was added: the apply refuses it and changes nothing.
    ok(&daemon, "netctl", &["create", "vnm", "--type", "bridge", "--autostart"]);
    ok(&daemon, "netctl", &["sdn", "vnet", "add", "vnm", "--zone", "zn"]);
    let err = fails(&daemon, &["apply", "--confirm-timeout", "0"]);
    assert!(err.contains("iface: 'vnm' is the bridge of SDN VNet vnm"), "{err}");
    assert!(ns.link("vnm").is_none() && running(&daemon).is_none());
}

#[test]
fn the_running_configuration_is_brought_up_again_at_start() {
    let ns = Netns::new();
    let mut daemon = daemon_in(&ns, &[]);
    ns.nic("eno1");
    ok(
        &daemon,
        "netctl",
        &["create", "vmbr1", "--type", "bridge", "--bridge_ports", "eno1", "--cidr", "10.84.0.2/24", "--autostart"],
    );
    ok(&daemon, "netctl", &["apply", "--confirm-timeout", "0"]);
    let index = ns.ifindex("vmbr1");
    // A start with everything in place changes nothing.
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    daemon.restart();
    assert_eq!(ns.ifindex("vmbr1"), index, "an unchanged bridge is left alone at start");
    // As after a reboot: the bridge is gone while hearthd is down.
    daemon.signal(nix::sys::signal::Signal::SIGKILL);
    ns.ip(&["link", "del", "vmbr1"]);
    assert!(ns.link("vmbr1").is_none());
    daemon.restart();
    assert_eq!(ns.master("eno1").as_deref(), Some("vmbr1"), "the bridge is made again with its port");
    assert!(ns.addresses("vmbr1").iter().any(|a| a == "10.84.0.2/24"), "{:?}", ns.addresses("vmbr1"));
    assert!(journal(&daemon).is_none());
    assert!(pending(&daemon).is_empty(), "{:?}", pending(&daemon));
}
