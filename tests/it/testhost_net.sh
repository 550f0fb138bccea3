# Network checks run in the kernel-complete test host (tests/it/testhost.rs): VLAN interfaces,
# a VLAN-aware bridge with tagged, untagged and trunk ports, and bonds. The links under test
# are made by Hearth: a real hearthd per namespace (`hearthd --netns`) on a temporary root,
# configured with `netctl create` and `netctl apply`, and guest ports plugged by hearth-net's
# plug_port ($TESTNET plug); `ip` only builds the scaffolding: namespaces, veth pairs, the far
# ends.
# Every check prints `check:<name>:ok` or `check:<name>:FAIL <why>`; the script fails if any
# check failed. The whole guest is this test's, and vanishes at power-off.
#
# Starting a process costs about half a second in the test host (binaries come over 9p and
# run under TCG), so the scaffolding goes through `ip -batch` and the traffic through
# hearth-testnet's own listen/connect, which enter a namespace themselves (`-n`).

set -u
T=$TESTNET
failed=0
pass() { echo "check:$1:ok"; }
fail() { echo "check:$1:FAIL $2"; failed=1; }
listen() { "$T" -n "$1" listen "$2" 7000 & }
# connect NS ADDRESS SECONDS: a TCP connection that returns the listener's greeting.
connect() { "$T" -n "$1" connect "$2" 7000 "$3"; }
stat() { "$T" -n "$1" stat "$2" "$3"; }
# hearthd NETNS [ROOT]: starts a hearthd serving ROOT (or a new root) for that namespace ("" =
# the test host's own) and prints the root.
hearthd() {
    local root; root=${2:-$(mktemp -d)}
    "$HEARTHD" --root "$root" --node th ${1:+--netns /run/netns/$1} >"$root.log" 2>&1 &
    for _ in $(seq 300); do test -S "$root/run/hearth/hearthd.sock" && break; sleep 0.1; done
    echo "$root"
}
# netctl ROOT ARGS...: netctl against that hearthd; its errors go to /tmp/netctl.err.
netctl() { local root=$1; shift; HEARTH_ROOT=$root "$NETCTL" "$@" >/dev/null 2>>/tmp/netctl.err; }
why() { tail -n 1 /tmp/netctl.err 2>/dev/null; }

# --- VLAN interface: netctl's v1a.10 over a veth in namespace va; the far end in vb.
ip -batch - <<'EOF'
netns add va
netns add vb
link add v1a netns va type veth peer name v1b netns vb
EOF
ip -n va -batch - <<'EOF'
link set lo up
link set v1a up
EOF
ip -n vb -batch - <<'EOF'
link set lo up
link set v1b up
link add link v1b name v1b.10 type vlan id 10
address add 10.10.0.2/24 dev v1b.10
link set v1b.10 up
EOF
# A namespace's addresses answer ARP on any of its links unless arp_ignore says otherwise.
ip netns exec va sysctl -qw net.ipv4.conf.all.arp_ignore=1
va=$(hearthd va)
if netctl "$va" create v1a --type eth && netctl "$va" create v1a.10 --type vlan --cidr 10.10.0.1/24 --autostart \
    && netctl "$va" apply --confirm-timeout 0; then
    listen vb 10.10.0.2; listen va 10.10.0.1
    if connect va 10.10.0.2 20 && connect vb 10.10.0.1 5; then pass vlan-tagged-traffic
    else fail vlan-tagged-traffic "no TCP connection over VLAN 10"; fi
    # The far end without its VLAN interface sends untagged: none of it reaches v1a.10.
    ip -n vb -batch - <<'EOF'
link del v1b.10
address add 10.10.0.2/24 dev v1b
EOF
    before_vlan=$(stat va v1a.10 rx); before_parent=$(stat va v1a rx)
    if connect vb 10.10.0.1 3 2>/dev/null; then fail vlan-untagged-kept-out "an untagged connection reached VLAN 10"
    elif [ "$(stat va v1a.10 rx)" != "$before_vlan" ]; then fail vlan-untagged-kept-out "v1a.10 received untagged frames"
    elif [ "$(stat va v1a rx)" = "$before_parent" ]; then fail vlan-untagged-kept-out "no untagged frame reached v1a"
    else pass vlan-untagged-kept-out; fi
else
    fail vlan-tagged-traffic "netctl could not create v1a.10: $(why)"
fi

# --- VLAN-aware bridge: ports plugged by plug_port with tag 10 (two), tag 20, and a trunk
# carrying 10 and 20, each port's far end in its own namespace. Tagged ports share one subnet;
# the trunk's far end has 10.20.0.4 on VLAN 10 and 10.20.0.5 on VLAN 20 (a host route to the
# tag-20 port keeps its answers on VLAN 20).
host=$(hearthd "")
if netctl "$host" create vmbr1 --type bridge --bridge_vlan_aware --autostart \
    && netctl "$host" apply --confirm-timeout 0 && [ "$(cat /sys/class/net/vmbr1/bridge/vlan_filtering)" = 1 ]; then
    pass bridge-vlan-filtering
else
    fail bridge-vlan-filtering "no VLAN-aware bridge from netctl: $(why)"
fi
ip -batch - <<'EOF'
netns add t10a
netns add t10b
netns add t20
netns add trk
link add pt10a type veth peer name et10a netns t10a
link add pt10b type veth peer name et10b netns t10b
link add pt20 type veth peer name et20 netns t20
link add ptrk type veth peer name etrk netns trk
EOF
address=1
for name in t10a t10b t20; do
    ip -n "$name" -batch - <<EOF
link set lo up
link set e$name up
address add 10.20.0.$address/24 dev e$name
EOF
    address=$((address + 1))
done
ip -n trk -batch - <<'EOF'
link set lo up
link set etrk up
link add link etrk name etrk.10 type vlan id 10
link add link etrk name etrk.20 type vlan id 20
link set etrk.10 up
link set etrk.20 up
address add 10.20.0.4/24 dev etrk.10
address add 10.20.0.5/32 dev etrk.20
route add 10.20.0.3/32 dev etrk.20
EOF
for port in t10a:tag=10 t10b:tag=10 t20:tag=20 trk:trunks=10\;20; do
    name=${port%%:*}; opt=${port#*:}
    "$T" plug "p$name" vmbr1 "$opt" || fail "plug-$name" "plug_port $opt failed"
done
listen t10b 10.20.0.2; listen t20 10.20.0.3; listen trk 10.20.0.4; listen trk 10.20.0.5
if connect t10a 10.20.0.2 20; then pass bridge-same-tag; else fail bridge-same-tag "tag 10 did not reach tag 10"; fi
if connect t10a 10.20.0.3 3 2>/dev/null; then fail bridge-other-tag "tag 10 reached tag 20"
else pass bridge-other-tag; fi
before=$(stat trk etrk.10 rx)
if connect t10a 10.20.0.4 10 && connect t20 10.20.0.5 10 && [ "$(stat trk etrk.10 rx)" != "$before" ]; then
    pass bridge-trunk-tagged
else
    fail bridge-trunk-tagged "the trunk did not carry VLANs 10 and 20 tagged"
fi
vlans=$(bridge vlan show)
if echo "$vlans" | grep -A1 '^pt10a' | grep -q '10 PVID Egress Untagged' \
    && echo "$vlans" | grep -A2 '^ptrk' | grep -qw 20 && ! echo "$vlans" | grep -A2 '^ptrk' | grep -q '10 PVID'; then
    pass bridge-vlan-table
else
    fail bridge-vlan-table "$(echo "$vlans" | tr '\n' ' ')"
fi

# --- Bonds: netctl's bond0 over two veths in namespace <s>a; the far end <s>b bridges both
# links (scaffolding) and holds the peer address. Link monitoring every 100 ms, as Proxmox
# writes for the bonds it creates.
bond_pair() { # MODE S
    local mode=$1 s=$2 extra=
    ip -batch - <<EOF
netns add ${s}a
netns add ${s}b
link add ${s}1a netns ${s}a type veth peer name ${s}1b netns ${s}b
link add ${s}2a netns ${s}a type veth peer name ${s}2b netns ${s}b
EOF
    ip -n "${s}b" -batch - <<EOF
link set lo up
link add far0 type bridge
link set ${s}1b master far0
link set ${s}2b master far0
link set ${s}1b up
link set ${s}2b up
address add 10.30.0.2/24 dev far0
link set far0 up
EOF
    ip -n "${s}a" link set lo up
    if [ "$mode" = active-backup ]; then extra="--bond-primary ${s}1a"; fi
    local root; root=$(hearthd "${s}a")
    netctl "$root" create "${s}1a" --type eth && netctl "$root" create "${s}2a" --type eth \
        && netctl "$root" create bond0 --type bond --slaves "${s}1a,${s}2a" --bond_mode "$mode" --bond_miimon 100 $extra \
            --cidr 10.30.0.1/24 --autostart \
        && netctl "$root" apply --confirm-timeout 0 || return 1
    listen "${s}b" 10.30.0.2
}
active_slave() { ip -n aba -d link show bond0 | grep -o 'active_slave [^ ]*' | cut -d' ' -f2; }
if bond_pair active-backup ab; then
    if connect aba 10.30.0.2 20; then pass bond-active-backup; else fail bond-active-backup "no traffic"; fi
    active=$(active_slave)
    ip -n abb link set ab1b down
    for _ in $(seq 20); do [ "$(active_slave)" = ab2a ] && break; sleep 0.2; done
    now=$(active_slave)
    if [ "$active" = ab1a ] && [ "$now" = ab2a ] && connect aba 10.30.0.2 10; then pass bond-failover
    else fail bond-failover "active slave $active, then $now"; fi
else
    fail bond-active-backup "netctl could not create the bond: $(why)"
fi
if bond_pair balance-rr rr; then
    before1=$(stat rra rr1a tx); before2=$(stat rra rr2a tx)
    ok=1
    for _ in 1 2 3; do connect rra 10.30.0.2 20 || ok=0; done
    after1=$(stat rra rr1a tx); after2=$(stat rra rr2a tx)
    if [ $ok = 1 ] && [ "$after1" != "$before1" ] && [ "$after2" != "$before2" ]; then pass bond-balance-rr
    else fail bond-balance-rr "traffic $ok, sent on rr1a $before1->$after1, on rr2a $before2->$after2"; fi
else
    fail bond-balance-rr "netctl could not create the bond: $(why)"
fi

# --- SDN vlan zone: in namespace sd, netctl's VLAN-aware bridge vmbr2 with the uplink sdu, whose
# far end sdf0 (namespace sdf) has VLAN 10 (10.40.0.4) and VLAN 20 (10.40.0.5, a host route to
# the tag-20 guest keeps its answers on VLAN 20) interfaces. A vlan zone on vmbr2 with VNets
# vn10 (tag 10), vn20 (tag 20) and vnq (tag 30, vlanaware), whose guest sends on its own VLAN 5
# inside 30 to sdf0.30.5 (10.40.1.2). Guests are namespaces plugged into the VNet bridges by
# plug_port. The SDN configuration is written as `netctl sdn zone/vnet add` leave it (those
# commands are tested on the development host), to save their time here.
ip -batch - <<'EOF'
netns add sd
netns add sdf
netns add g10a
netns add g10b
netns add g20
netns add gq
link add sdu netns sd type veth peer name sdf0 netns sdf
link add pg10a netns sd type veth peer name eg10a netns g10a
link add pg10b netns sd type veth peer name eg10b netns g10b
link add pg20 netns sd type veth peer name eg20 netns g20
link add pgq netns sd type veth peer name egq netns gq
EOF
ip -n sdf -batch - <<'EOF'
link set lo up
link set sdf0 up
link add link sdf0 name sdf0.10 type vlan id 10
link add link sdf0 name sdf0.20 type vlan id 20
link add link sdf0 name sdf0.30 type vlan id 30
link add link sdf0.30 name sdf0.30.5 type vlan id 5
link set sdf0.10 up
link set sdf0.20 up
link set sdf0.30 up
link set sdf0.30.5 up
address add 10.40.0.4/24 dev sdf0.10
address add 10.40.0.5/32 dev sdf0.20
route add 10.40.0.3/32 dev sdf0.20
address add 10.40.1.2/24 dev sdf0.30.5
EOF
ip netns exec sdf sysctl -qw net.ipv4.conf.all.arp_ignore=1
address=1
for name in g10a g10b g20; do
    ip -n "$name" -batch - <<EOF
link set lo up
link set e$name up
address add 10.40.0.$address/24 dev e$name
EOF
    address=$((address + 1))
done
ip -n gq -batch - <<'EOF'
link set lo up
link set egq up
address add 10.40.1.1/24 dev egq
EOF
ip -n sd link set lo up
sd=$(mktemp -d)
mkdir -p "$sd/etc/hearth/sdn"
cat >"$sd/etc/hearth/sdn/sdn.toml" <<'EOF'
[zones.zv]
type = "vlan"
bridge = "vmbr2"

[vnets.vn10]
zone = "zv"
tag = 10

[vnets.vn20]
zone = "zv"
tag = 20

[vnets.vnq]
zone = "zv"
tag = 30
vlanaware = true
EOF
hearthd sd "$sd" >/dev/null
if netctl "$sd" create sdu --type eth --autostart && netctl "$sd" create vmbr2 --type bridge --bridge_vlan_aware --bridge_ports sdu \
    --autostart && netctl "$sd" apply --confirm-timeout 0 && netctl "$sd" sdn apply --confirm-timeout 0; then
    pass sdn-vlan-apply
else
    fail sdn-vlan-apply "netctl could not build the vlan zone: $(why)"
fi
for port in g10a:vn10 g10b:vn10 g20:vn20 gq:vnq:tag=5; do
    name=${port%%:*}; rest=${port#*:}; bridge=${rest%%:*}; opt=${rest#"$bridge"}
    "$T" -n sd plug "p$name" "$bridge" ${opt#:} || fail "plug-$name" "plug_port into $bridge failed"
done
listen g10b 10.40.0.2; listen g20 10.40.0.3; listen sdf 10.40.0.4; listen sdf 10.40.0.5; listen sdf 10.40.1.2
before=$(stat sdf sdf0.10 rx)
if connect g10a 10.40.0.4 20 && connect g10b 10.40.0.4 10 && connect g10a 10.40.0.2 10 \
    && [ "$(stat sdf sdf0.10 rx)" != "$before" ]; then
    pass sdn-vlan-tag-across-uplink
else
    fail sdn-vlan-tag-across-uplink "VNet vn10's guests did not reach each other and VLAN 10 beyond the uplink"
fi
if ! connect g20 10.40.0.5 10; then fail sdn-vlan-other-tag "VNet vn20's guest did not reach VLAN 20 beyond the uplink"
elif connect g10a 10.40.0.3 2 2>/dev/null; then fail sdn-vlan-other-tag "tag 10 reached the tag 20 guest"
elif connect g10a 10.40.0.5 2 2>/dev/null; then fail sdn-vlan-other-tag "tag 10 reached VLAN 20 beyond the uplink"
else pass sdn-vlan-other-tag; fi
if connect gq 10.40.1.2 20; then pass sdn-vlanaware-vnet
else fail sdn-vlanaware-vnet "the guest's VLAN 5 inside VNet vnq (tag 30) did not reach the far end"; fi
# A VNet removed: its tagged port goes, and its tag leaves vmbr2's own VLANs.
self_vlans() { bridge -n sd -compressvlans vlan show dev vmbr2 | tr -s ' \t\n' ' '; }
had=$(self_vlans)
if netctl "$sd" sdn vnet delete vn20 && netctl "$sd" sdn apply --confirm-timeout 0 \
    && ! ip -n sd link show vmbr2.20 >/dev/null 2>&1 && now=$(self_vlans) \
    && echo "$had" | grep -qw 20 && ! echo "$now" | grep -qw 20 && echo "$now" | grep -qw 10; then
    pass sdn-vlan-vnet-removed
else
    fail sdn-vlan-vnet-removed "vmbr2's own VLANs before: $had, after: ${now-} ($(why))"
fi

kill $(jobs -p) 2>/dev/null
exit $failed
