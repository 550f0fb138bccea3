//! Unit tests of the SDN model: edits, validation, plans and rendered text.

use expect_test::expect;

use super::*;

fn opts(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn simple() -> SdnConfig {
    let mut c = SdnConfig::default();
    c.add(SdnKind::Zone, "zs", &opts(&[("type", "simple"), ("dhcp", "dnsmasq"), ("ipam", "pve")])).unwrap();
    c.add(SdnKind::Vnet, "vnet0", &opts(&[("zone", "zs")])).unwrap();
    let id = c
        .add(
            SdnKind::Subnet,
            "10.0.0.0/24",
            &opts(&[
                ("vnet", "vnet0"),
                ("gateway", "10.0.0.1"),
                ("snat", "1"),
                ("dhcp-range", "start-address=10.0.0.100,end-address=10.0.0.101"),
            ]),
        )
        .unwrap();
    assert_eq!(id, "zs-10.0.0.0-24");
    c.validate(&[]).unwrap();
    c
}

fn err(r: Result<impl fmt::Debug, SdnError>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn toml_round_trip() {
    let c = simple();
    let text = c.to_toml();
    expect![[r#"
        [zones.zs]
        type = "simple"
        ipam = "pve"
        dhcp = "dnsmasq"

        [vnets.vnet0]
        zone = "zs"

        [subnets."zs-10.0.0.0-24"]
        vnet = "vnet0"
        gateway = "10.0.0.1"
        snat = true
        dhcp-range = ["start-address=10.0.0.100,end-address=10.0.0.101"]
    "#]]
    .assert_eq(&text);
    assert_eq!(SdnConfig::from_toml(&text).unwrap(), c);
}

#[test]
fn bad_input_names_the_key() {
    let mut c = simple();
    let before = c.clone();
    assert_eq!(
        err(c.add(SdnKind::Zone, "Bad", &opts(&[("type", "simple")]))),
        "zone: invalid id 'Bad': 1 to 8 of a-z 0-9, starting with a letter"
    );
    assert_eq!(
        err(c.add(SdnKind::Zone, "z2", &opts(&[("type", "evpn")]))),
        "type: unknown zone type 'evpn' (allowed: simple, vlan, vxlan)"
    );
    assert_eq!(
        err(c.add(SdnKind::Zone, "z2", &opts(&[("type", "simple"), ("color", "red")]))),
        "color: unknown key (allowed: type, nodes, ipam, mtu, dhcp, bridge, peers, vxlan-port)"
    );
    assert_eq!(
        err(c.add(SdnKind::Vnet, "toolongname", &opts(&[("zone", "zs")]))),
        "vnet: invalid id 'toolongname': 1 to 8 of a-z 0-9, starting with a letter"
    );
    assert_eq!(
        err(c.add(SdnKind::Subnet, "10.0.0.5/24", &opts(&[("vnet", "vnet0")]))),
        "subnet: invalid subnet id '10.0.0.5/24' (expected <zone>-<network>-<prefixlen>)"
    );
    assert_eq!(
        err(c.add(SdnKind::Subnet, "10.0.0.0/24", &opts(&[("vnet", "vnet0")]))),
        "subnet 'zs-10.0.0.0-24' already exists"
    );
    assert_eq!(err(c.add(SdnKind::Subnet, "10.1.0.0/24", &opts(&[("vnet", "nope")]))), "vnet 'nope' does not exist");
    assert_eq!(c, before);
}

#[test]
fn validation_refuses_unsound_configurations() {
    let check = |f: &dyn Fn(&mut SdnConfig)| {
        let mut c = simple();
        f(&mut c);
        c.validate(&["eth0".to_owned()]).unwrap_err().to_string()
    };
    assert_eq!(
        check(&|c| {
            c.add(SdnKind::Subnet, "10.0.0.0/16", &opts(&[("vnet", "vnet0")])).unwrap();
        }),
        "subnet zs-10.0.0.0-24: cidr: 10.0.0.0/24 overlaps subnet zs-10.0.0.0-16"
    );
    assert_eq!(
        check(&|c| {
            c.set(SdnKind::Subnet, "10.0.0.0/24", &opts(&[("gateway", "10.0.1.1")]), &[]).unwrap();
        }),
        "subnet zs-10.0.0.0-24: gateway: 10.0.1.1 is not a host address of 10.0.0.0/24"
    );
    assert_eq!(
        check(&|c| {
            c.set(
                SdnKind::Subnet,
                "zs-10.0.0.0-24",
                &opts(&[("dhcp-range", "start-address=10.0.0.200,end-address=10.0.1.3")]),
                &[],
            )
            .unwrap();
        }),
        "subnet zs-10.0.0.0-24: dhcp-range: start-address=10.0.0.200,end-address=10.0.1.3 is not inside 10.0.0.0/24"
    );
    assert_eq!(
        check(&|c| {
            c.add(SdnKind::Vnet, "eth0", &opts(&[("zone", "zs")])).unwrap();
        }),
        "vnet eth0: id: 'eth0' is already an interface of this host"
    );
    assert_eq!(
        check(&|c| {
            c.add(SdnKind::Zone, "zx", &opts(&[("type", "vxlan"), ("peers", "192.0.2.1,192.0.2.2")])).unwrap();
            c.add(SdnKind::Vnet, "a", &opts(&[("zone", "zx"), ("tag", "100")])).unwrap();
            c.add(SdnKind::Vnet, "b", &opts(&[("zone", "zx"), ("tag", "100")])).unwrap();
        }),
        "vnet b: tag: tag 100 is already used by vnet a in zone zx"
    );
    assert_eq!(
        check(&|c| {
            c.add(SdnKind::Zone, "zv", &opts(&[("type", "vlan"), ("bridge", "vmbr0")])).unwrap();
            c.add(SdnKind::Vnet, "a", &opts(&[("zone", "zv"), ("tag", "4095")])).unwrap();
        }),
        "vnet a: tag: VLAN 4095 is outside 1..4094"
    );
    assert_eq!(
        check(&|c| {
            c.add(SdnKind::Vnet, "a", &opts(&[("zone", "zs"), ("tag", "5")])).unwrap();
        }),
        "vnet a: tag: VNets of a simple zone take no tag"
    );
}

#[test]
fn delete_refuses_what_is_still_used() {
    let mut c = simple();
    assert_eq!(err(c.delete(SdnKind::Zone, "zs", &[])), "zone 'zs' is still used by vnet vnet0");
    let users = [("vnet0".to_owned(), "CT 200 (net0)".to_owned())];
    assert_eq!(
        err(c.delete(SdnKind::Vnet, "vnet0", &users)),
        "vnet 'vnet0' is still used by subnet zs-10.0.0.0-24, CT 200 (net0)"
    );
    c.delete(SdnKind::Subnet, "10.0.0.0/24", &[]).unwrap();
    assert_eq!(err(c.delete(SdnKind::Vnet, "vnet0", &users)), "vnet 'vnet0' is still used by CT 200 (net0)");
    c.delete(SdnKind::Vnet, "vnet0", &[]).unwrap();
    c.delete(SdnKind::Zone, "zs", &[]).unwrap();
    assert_eq!(c, SdnConfig::default());
}

#[test]
fn plans_and_renders_a_simple_zone() {
    let c = simple();
    let plan = node_plan(&c, "node1", &Underlay::default()).unwrap();
    assert_eq!(plan.bridges[0].addresses, vec![("10.0.0.1".parse().unwrap(), 24)]);
    assert!(plan.forward);
    expect![[r#"
        add table inet hearth-sdn
        delete table inet hearth-sdn
        table inet hearth-sdn {
        	chain postrouting {
        		type nat hook postrouting priority srcnat; policy accept;
        		ip saddr 10.0.0.0/24 oifname != "vnet0" masquerade comment "snat vnet0"
        	}
        }
    "#]]
    .assert_eq(&nft_ruleset(&plan.snat));
    expect![[r#"
        # dnsmasq of SDN zone zs, written by hearthd; changes are overwritten on apply.
        pid-file=/d/dnsmasq.pid
        dhcp-leasefile=/d/dnsmasq.leases
        dhcp-hostsfile=/d/ethers
        port=0
        bind-interfaces
        except-interface=lo
        no-resolv
        no-hosts
        dhcp-authoritative
        interface=vnet0
        dhcp-range=set:zs-10.0.0.0-24-0,10.0.0.100,10.0.0.101,255.255.255.0,1h
        dhcp-option=tag:zs-10.0.0.0-24-0,option:router,10.0.0.1
    "#]]
    .assert_eq(&dnsmasq_conf(&plan.dhcp[0], std::path::Path::new("/d")));
}

#[test]
fn plans_a_vxlan_zone_with_the_underlay_mtu() {
    let mut c = SdnConfig::default();
    c.add(SdnKind::Zone, "zx", &opts(&[("type", "vxlan"), ("peers", "192.0.2.1, 192.0.2.2")])).unwrap();
    c.add(SdnKind::Vnet, "vx1", &opts(&[("zone", "zx"), ("tag", "100000")])).unwrap();
    c.validate(&[]).unwrap();
    let underlay = Underlay { addresses: vec![("192.0.2.2".parse().unwrap(), 1500)] };
    let plan = node_plan(&c, "n", &underlay).unwrap();
    let vx = plan.bridges[0].vxlan.clone().unwrap();
    assert_eq!((vx.name.as_str(), vx.vni, vx.mtu, vx.port), ("vxlan_vx1", 100000, 1450, 4789));
    assert_eq!(vx.remotes, vec!["192.0.2.1".parse::<Ipv4Addr>().unwrap()]);
    assert_eq!(
        node_plan(&c, "n", &Underlay::default()).unwrap_err().to_string(),
        "zone zx: peers: none of the peers is an address of node n"
    );
}

#[test]
fn plans_a_vlan_zone() {
    let mut c = SdnConfig::default();
    c.add(SdnKind::Zone, "zv", &opts(&[("type", "vlan"), ("bridge", "vmbr0")])).unwrap();
    c.add(SdnKind::Vnet, "v10", &opts(&[("zone", "zv"), ("tag", "10")])).unwrap();
    c.validate(&[]).unwrap();
    let plan = node_plan(&c, "n", &Underlay::default()).unwrap();
    assert_eq!(plan.bridges[0].vlan, Some(VlanPort { name: "vmbr0.10".into(), bridge: "vmbr0".into(), tag: 10 }));
}

#[test]
fn ipam_allocates_in_the_ranges_and_frees() {
    let c = simple();
    let mut ipam = Ipam::default();
    let a = ipam.allocate(&c, "vnet0", 200, "net0", "bc:24:11:00:00:01").unwrap().unwrap();
    assert_eq!((a.ip.to_string(), a.mac.as_str()), ("10.0.0.100".into(), "BC:24:11:00:00:01"));
    // The same NIC keeps its address.
    assert_eq!(ipam.allocate(&c, "vnet0", 200, "net0", "bc:24:11:00:00:01").unwrap().unwrap().ip, a.ip);
    let b = ipam.allocate(&c, "vnet0", 201, "net0", "bc:24:11:00:00:02").unwrap().unwrap();
    assert_eq!(b.ip.to_string(), "10.0.0.101");
    assert_eq!(
        err(ipam.allocate(&c, "vnet0", 202, "net0", "bc:24:11:00:00:03")),
        "vnet vnet0: no free address left in the DHCP ranges of its subnets"
    );
    assert_eq!(dnsmasq_ethers("zs", &ipam.entries), "BC:24:11:00:00:01,10.0.0.100\nBC:24:11:00:00:02,10.0.0.101\n");
    assert_eq!(ipam.free(200, None).len(), 1);
    assert_eq!(ipam.allocate(&c, "vnet0", 202, "net0", "bc:24:11:00:00:03").unwrap().unwrap().ip, a.ip);
}

#[test]
fn diff_lists_new_changed_and_deleted_objects() {
    let running = simple();
    let mut pending = running.clone();
    pending.set(SdnKind::Subnet, "10.0.0.0/24", &[], &["snat".to_owned()]).unwrap();
    pending.add(SdnKind::Vnet, "vnet1", &opts(&[("zone", "zs")])).unwrap();
    let d = diff(&running, &pending);
    let short: Vec<String> = d.iter().map(|c| format!("{} {} {}", c.state, c.kind, c.id)).collect();
    assert_eq!(short, ["new vnet vnet1", "changed subnet zs-10.0.0.0-24"]);
}

#[test]
fn a_key_given_twice_is_refused() {
    // The permission check reads the first `zone`/`vnet` of a request: a second one must not
    // put the object somewhere else.
    let mut c = simple();
    c.add(SdnKind::Zone, "zother", &opts(&[("type", "simple")])).unwrap();
    let before = c.clone();
    let e = err(c.add(SdnKind::Vnet, "vnet9", &opts(&[("zone", "zs"), ("zone", "zother")])));
    assert_eq!(e, "zone: given more than once");
    c.add(SdnKind::Vnet, "vnet8", &opts(&[("zone", "zother")])).unwrap();
    let e = err(c.add(SdnKind::Subnet, "10.9.0.0/24", &opts(&[("vnet", "vnet0"), ("vnet", "vnet8")])));
    assert_eq!(e, "vnet: given more than once");
    let e = err(c.set(SdnKind::Zone, "zs", &opts(&[("mtu", "1400"), ("mtu", "1500")]), &[]));
    assert_eq!(e, "mtu: given more than once");
    c.vnets.remove("vnet8");
    assert_eq!(c, before);
    // dhcp-range is the one key that repeats.
    c.set(
        SdnKind::Subnet,
        "10.0.0.0/24",
        &opts(&[
            ("dhcp-range", "start-address=10.0.0.100,end-address=10.0.0.101"),
            ("dhcp-range", "start-address=10.0.0.110,end-address=10.0.0.111"),
        ]),
        &[],
    )
    .unwrap();
}

#[test]
fn a_vlan_port_name_must_fit_an_interface_name() {
    let mut c = SdnConfig::default();
    c.add(SdnKind::Zone, "zv", &opts(&[("type", "vlan"), ("bridge", "bridgename12")])).unwrap();
    c.add(SdnKind::Vnet, "v1", &opts(&[("zone", "zv"), ("tag", "4000")])).unwrap();
    assert_eq!(
        err(c.validate(&[])),
        "vnet v1: tag: the VLAN port bridgename12.4000 would be longer than 15 bytes (use a shorter zone bridge)"
    );
    c.set(SdnKind::Vnet, "v1", &opts(&[("tag", "40")]), &[]).unwrap();
    c.validate(&[]).unwrap();
}
