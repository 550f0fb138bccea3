//! Compiles a sample covering every feature and checks nft accepts it (`nft -c` in a private
//! network namespace).

#![allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).

use hearth_core::firewall::fwfile;
use hearth_fw::{FirewallInput, GuestFirewall, GuestNic, compile};

pub fn sample() -> FirewallInput {
    let cluster = fwfile::parse(
        "[OPTIONS]\nenable: 1\n[ALIASES]\nweb 10.0.0.5\n[IPSET management]\n10.0.0.0/24\n[IPSET blacklist]\n192.0.2.0/24\n!192.0.2.7\n[IPSET mgmt]\n10.0.0.0/24\n10.0.0.2\n!10.0.0.9\nfd00::/64\n[group webserver]\nIN ACCEPT -p tcp -dport 80\nIN HTTPS(ACCEPT) -log info\n[RULES]\nIN SSH(ACCEPT) -i eth0 -source +mgmt\nIN Ping(ACCEPT)\nOUT REJECT -p udp -dport 53\n",
    )
    .unwrap();
    let guest = fwfile::parse(
        "[OPTIONS]\nenable: 1\nipfilter: 1\ndhcp: 1\n[IPSET ipfilter-net0]\n10.0.0.50\n[RULES]\nGROUP webserver -i net0\nIN ACCEPT -source +dc/mgmt -p tcp -dport 22\nIN REJECT -p tcp -dport 23 -log info\nIN DNS(ACCEPT) -source web\nOUT DROP -dest 10.0.0.1-10.0.0.10\nIN ACCEPT -p icmp -icmp-type echo-request\n",
    )
    .unwrap();
    FirewallInput {
        cluster,
        host: Default::default(),
        guests: vec![GuestFirewall {
            vmid: 100,
            config: guest,
            nics: vec![GuestNic {
                index: 0,
                port: "tap100i0".into(),
                mac: Some("bc:24:11:00:00:01".into()),
                ips: vec![],
                firewall: true,
            }],
        }],
    }
}

#[test]
fn sample_compiles_and_nft_accepts_it() {
    let rs = compile(&sample()).unwrap();
    let script = rs.to_nft();
    std::fs::write("/tmp/hearth-fw-sample.nft", &script).unwrap();
    let ns = format!("hfwc{}", std::process::id());
    assert!(std::process::Command::new("ip").args(["netns", "add", &ns]).status().unwrap().success());
    let nft = hearth_fw::Nft::in_netns(std::path::Path::new(&format!("/run/netns/{ns}")));
    let r = nft.apply(&script);
    let listed = nft.list_own();
    std::process::Command::new("ip").args(["netns", "del", &ns]).status().unwrap();
    r.unwrap();
    assert!(listed.unwrap().contains("guest100-net0-in"));
}
