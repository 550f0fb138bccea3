//! `clusterctl node` as pvenode: the node's settings, startall honouring
//! startall-onboot-delay and --vms, and Wake-on-LAN caught on a real UDP socket.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use hearth_test::HearthdProcess;

use crate::{json, ok, run};

#[test]
fn node_settings_are_checked_stored_and_shown() {
    let daemon = HearthdProcess::start();
    assert_eq!(ok(&daemon, "clusterctl", &["node", "config", "get"]), "");
    ok(
        &daemon,
        "clusterctl",
        &[
            "node",
            "config",
            "set",
            "--startall-onboot-delay",
            "2",
            "--description",
            "rack 4",
            "--wakeonlan",
            "aa:bb:cc:dd:ee:ff,bind-interface=eno1",
            "--acmedomain0",
            "node.example.com,plugin=dns1",
        ],
    );
    let shown = ok(&daemon, "clusterctl", &["node", "config", "get"]);
    assert!(shown.contains("startall-onboot-delay: 2\n") && shown.contains("description: rack 4\n"), "{shown}");
    let config = json(&daemon, "clusterctl", &["node", "config", "get"]);
    assert_eq!(config["startall-onboot-delay"], 2, "{config}");
    assert_eq!(config["wakeonlan"], "aa:bb:cc:dd:ee:ff,bind-interface=eno1");
    let only = ok(&daemon, "clusterctl", &["node", "config", "get", "--property", "wakeonlan"]);
    assert_eq!(only, "wakeonlan: aa:bb:cc:dd:ee:ff,bind-interface=eno1\n");
    let file = daemon.root().join("etc/hearth/nodes").join(&daemon.node).join("config.toml");
    let before = std::fs::read_to_string(&file).expect("the node's config.toml");
    for (args, says) in [
        (&["--startall-onboot-delay", "301"][..], "startall-onboot-delay: '301' is not an integer from 0 to 300"),
        (&["--wakeonlan", "aa:bb"], "wakeonlan: 'aa:bb' does not start with a MAC address"),
        (&["--ballooning-target", "50", "--delete", "ballooning-target"], "both set and deleted"),
        (&["--delete", "nosuch"], "delete: unknown key 'nosuch'"),
        (&[], "nothing to change"),
    ] {
        let mut argv = vec!["node", "config", "set"];
        argv.extend(args);
        let (code, _, stderr) = run(&daemon, "clusterctl", &argv);
        assert_eq!(code, 1, "{args:?}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    assert_eq!(std::fs::read_to_string(&file).expect("config.toml"), before, "refusals change nothing");
    ok(&daemon, "clusterctl", &["node", "config", "set", "--delete", "description,acmedomain0"]);
    let config = json(&daemon, "clusterctl", &["node", "config", "get"]);
    assert!(config.get("description").is_none() && config.get("acmedomain0").is_none(), "{config}");
}

#[test]
fn startall_waits_the_onboot_delay_and_takes_only_the_vms_given() {
    let daemon = HearthdProcess::start();
    for vmid in ["490", "491", "492"] {
        ok(&daemon, "vmctl", &["create", vmid, "--memory", "64", "--kvm", "0"]);
    }
    ok(&daemon, "clusterctl", &["node", "config", "set", "--startall-onboot-delay", "2"]);
    let started = Instant::now();
    let out = ok(&daemon, "clusterctl", &["node", "startall", "--vms", "490,492", "--force"]);
    assert!(started.elapsed() >= Duration::from_secs(2), "{out}");
    assert!(out.contains("Delaying on-boot 'startall' for 2 second(s)."), "{out}");
    let state = |vmid: &str| json(&daemon, "vmctl", &["status", vmid])["status"].as_str().expect("status").to_owned();
    assert_eq!((state("490"), state("491"), state("492")), ("running".into(), "stopped".into(), "running".into()));
    ok(&daemon, "clusterctl", &["node", "stopall", "--vms", "490", "--timeout", "1"]);
    assert_eq!((state("490"), state("492")), ("stopped".into(), "running".into()));
    ok(&daemon, "clusterctl", &["node", "stopall", "--timeout", "1"]);
    assert_eq!(state("492"), "stopped");
    // The task log is there under node task too.
    let tasks = json(&daemon, "clusterctl", &["node", "task", "list", "--typefilter", "startall"]);
    let upid = tasks[0]["upid"].as_str().expect("the startall task").to_owned();
    let log = ok(&daemon, "clusterctl", &["node", "task", "log", &upid]);
    assert!(log.contains("Delaying on-boot"), "{log}");
}

#[test]
fn wakeonlan_sends_the_magic_packet() {
    let daemon = HearthdProcess::start();
    // Another node's settings, as a cluster keeps them beside this node's.
    let peer = daemon.root().join("etc/hearth/nodes/peer");
    std::fs::create_dir_all(&peer).expect("mkdir");
    // Caught on loopback: the packet never leaves the machine.
    let socket = UdpSocket::bind("127.0.0.1:9").expect("UDP port 9 on loopback is free (discard)");
    socket.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    std::fs::write(
        peer.join("config.toml"),
        "wakeonlan = \"52:54:00:12:34:56,bind-interface=lo,broadcast-address=127.0.0.1\"\n",
    )
    .expect("peer config");
    let out = ok(&daemon, "clusterctl", &["node", "wakeonlan", "peer"]);
    assert_eq!(out, "52:54:00:12:34:56\n");
    // Other tests may wake their own peers on loopback meanwhile: ours is the one with our MAC.
    let mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    let packet = loop {
        let mut packet = [0u8; 512];
        let (n, _) = socket.recv_from(&mut packet).expect("the magic packet arrives");
        if packet[6..12] == mac {
            break packet[..n].to_vec();
        }
    };
    assert_eq!(packet.len(), 102);
    assert_eq!(&packet[..6], &[0xff; 6]);
    for copy in packet[6..].chunks(6) {
        assert_eq!(copy, &mac);
    }
    let (code, _, stderr) = run(&daemon, "clusterctl", &["node", "wakeonlan", &daemon.node]);
    assert_eq!(code, 1);
    assert!(stderr.contains("is the local node"), "{stderr}");
    let (code, _, stderr) = run(&daemon, "clusterctl", &["node", "wakeonlan", "nowhere"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("node 'nowhere' has no wakeonlan MAC address configured"), "{stderr}");
}
