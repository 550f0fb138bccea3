# Network checks run in the kernel-complete test host (tests/it/testhost.rs): VLAN interfaces,
# a VLAN-aware bridge with tagged, untagged and trunk ports, and bonds. The links under test
# are made by Hearth ($TESTNET: hearth-net's create_vlan / create_bridge / create_bond and the
# guests' plug_port); `ip` only builds the scaffolding: namespaces, veth pairs, the far ends.
# Every check prints `check:<name>:ok` or `check:<name>:FAIL <why>`; the script fails if any
# check failed. The whole guest is this test's, and vanishes at power-off.

set -u
failed=0
pass() { echo "check:$1:ok"; }
fail() { echo "check:$1:FAIL $2"; failed=1; }
ns() { local n=$1; shift; ip netns exec "$n" "$@"; }
# One veth pair with each end in a namespace ("" = the test host's own).
veth() {
    ip link add "$1" type veth peer name "$3"
    if [ -n "$2" ]; then ip link set "$1" netns "$2"; fi
    if [ -n "$4" ]; then ip link set "$3" netns "$4"; fi
}
up() { local n=$1; shift; for l in "$@"; do ns "$n" ip link set "$l" up; done; }
rx() { ns "$1" cat "/sys/class/net/$2/statistics/rx_packets"; }
tx() { ns "$1" cat "/sys/class/net/$2/statistics/tx_packets"; }

cat >/tmp/tcp.py <<'EOF'
import socket, sys, time
mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "listen":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port)); s.listen(16)
    while True:
        c, _ = s.accept(); c.sendall(b"hearth\n"); c.close()
deadline = time.monotonic() + float(sys.argv[4])
while True:
    try:
        c = socket.create_connection((host, port), timeout=1)
        ok = c.recv(16) == b"hearth\n"; c.close(); sys.exit(0 if ok else 3)
    except OSError as e:
        if time.monotonic() > deadline:
            print(f"connect {host}:{port}: {e}", file=sys.stderr); sys.exit(1)
        time.sleep(0.2)
EOF
listen() { ns "$1" python3 /tmp/tcp.py listen "$2" 7000 & }
# connect NS ADDRESS SECONDS: a TCP connection that returns the listener's greeting.
connect() { ns "$1" python3 /tmp/tcp.py connect "$2" 7000 "$3"; }

# --- VLAN interface: hearth-net's VLAN 10 over a veth, in namespace va; the far end vb.
ip netns add va; ip netns add vb
veth v1a va v1b vb
up va lo v1a; up vb lo v1b
ns va sysctl -qw net.ipv4.conf.all.arp_ignore=1
if ns va "$TESTNET" vlan v1a.10 v1a 10; then
    ns va ip addr add 10.10.0.1/24 dev v1a.10
    ns vb ip link add link v1b name v1b.10 type vlan id 10
    ns vb ip addr add 10.10.0.2/24 dev v1b.10; up vb v1b.10
    listen vb 10.10.0.2; listen va 10.10.0.1
    if connect va 10.10.0.2 20 && connect vb 10.10.0.1 5; then pass vlan-tagged-traffic
    else fail vlan-tagged-traffic "no TCP connection over VLAN 10"; fi
    # The far end without its VLAN interface sends untagged: none of it reaches v1a.10.
    ns vb ip link del v1b.10
    ns vb ip addr add 10.10.0.2/24 dev v1b
    before_vlan=$(rx va v1a.10); before_parent=$(rx va v1a)
    if connect vb 10.10.0.1 3 2>/dev/null; then fail vlan-untagged-kept-out "an untagged connection reached VLAN 10"
    elif [ "$(rx va v1a.10)" != "$before_vlan" ]; then fail vlan-untagged-kept-out "v1a.10 received untagged frames"
    elif [ "$(rx va v1a)" = "$before_parent" ]; then fail vlan-untagged-kept-out "no untagged frame reached v1a at all"
    else pass vlan-untagged-kept-out; fi
else
    fail vlan-tagged-traffic "hearth-net could not create v1a.10"
fi

# --- VLAN-aware bridge: ports plugged by plug_port with tag 10 (two), tag 20, and a trunk
# carrying 10 and 20, each port's far end in its own namespace, all in one subnet.
if "$TESTNET" bridge thbr0 vlan-aware && [ "$(cat /sys/class/net/thbr0/bridge/vlan_filtering)" = 1 ]; then
    pass bridge-vlan-filtering
else
    fail bridge-vlan-filtering "no VLAN-aware bridge"
fi
address=1
for port in t10a:tag=10 t10b:tag=10 t20:tag=20 trk:trunks=10\;20; do
    name=${port%%:*}; opt=${port#*:}
    ip netns add "$name"
    veth "p$name" "" "e$name" "$name"
    up "$name" lo "e$name"
    if [ "$name" = trk ]; then
        # The trunk's far end: 10.20.0.4 on VLAN 10, 10.20.0.5 on VLAN 20 (a host route to
        # the tag-20 port keeps its answers on VLAN 20).
        for vid in 10 20; do
            ns trk ip link add link etrk name "etrk.$vid" type vlan id "$vid"; up trk "etrk.$vid"
        done
        ns trk ip addr add 10.20.0.4/24 dev etrk.10
        ns trk ip addr add 10.20.0.5/32 dev etrk.20
        ns trk ip route add 10.20.0.3/32 dev etrk.20
    else
        ns "$name" ip addr add "10.20.0.$address/24" dev "e$name"
    fi
    "$TESTNET" plug "p$name" thbr0 "$opt" || fail "plug-$name" "plug_port $opt failed"
    address=$((address + 1))
done
for name in t10b t20; do listen "$name" "10.20.0.$([ $name = t10b ] && echo 2 || echo 3)"; done
listen trk 10.20.0.4; listen trk 10.20.0.5
if connect t10a 10.20.0.2 20; then pass bridge-same-tag; else fail bridge-same-tag "tag 10 did not reach tag 10"; fi
if connect t10a 10.20.0.3 3 2>/dev/null; then fail bridge-other-tag "tag 10 reached tag 20"
else pass bridge-other-tag; fi
before=$(rx trk etrk.10)
if connect t10a 10.20.0.4 10 && connect t20 10.20.0.5 10 && [ "$(rx trk etrk.10)" != "$before" ]; then
    pass bridge-trunk-tagged
else
    fail bridge-trunk-tagged "the trunk did not carry VLANs 10 and 20 tagged"
fi
if bridge vlan show dev pt10a | grep -q '10 PVID Egress Untagged' \
    && bridge vlan show dev ptrk | grep -qw 20 && ! bridge vlan show dev ptrk | grep -q '10 PVID'; then
    pass bridge-vlan-table
else
    fail bridge-vlan-table "$(bridge vlan show | tr '\n' ' ')"
fi

# --- Bonds: hearth-net's bond of two veths in namespace <mode>a; the far end bridges both
# links (scaffolding) and holds the peer address.
bond_pair() { # MODE NS_SUFFIX: builds bond0 in ns <s>a over <s>1/<s>2, far end in <s>b
    local mode=$1 s=$2
    ip netns add "${s}a"; ip netns add "${s}b"
    veth "${s}1a" "${s}a" "${s}1b" "${s}b"; veth "${s}2a" "${s}a" "${s}2b" "${s}b"
    up "${s}a" lo; up "${s}b" lo "${s}1b" "${s}2b"
    ns "${s}b" ip link add far0 type bridge
    ns "${s}b" ip link set "${s}1b" master far0; ns "${s}b" ip link set "${s}2b" master far0
    ns "${s}b" ip addr add 10.30.0.2/24 dev far0; up "${s}b" far0
    if [ "$mode" = active-backup ]; then extra=primary=${s}1a; else extra=; fi
    ns "${s}a" "$TESTNET" bond bond0 "$mode" "${s}1a" "${s}2a" $extra || return 1
    ns "${s}a" ip addr add 10.30.0.1/24 dev bond0
    listen "${s}b" 10.30.0.2
}
if bond_pair active-backup ab; then
    if connect aba 10.30.0.2 20; then pass bond-active-backup; else fail bond-active-backup "no traffic"; fi
    active=$(ns aba cat /sys/class/net/bond0/bonding/active_slave)
    ns abb ip link set ab1b down
    for _ in $(seq 50); do
        [ "$(ns aba cat /sys/class/net/bond0/bonding/active_slave)" = ab2a ] && break; sleep 0.1
    done
    now=$(ns aba cat /sys/class/net/bond0/bonding/active_slave)
    if [ "$active" = ab1a ] && [ "$now" = ab2a ] && connect aba 10.30.0.2 10; then pass bond-failover
    else fail bond-failover "active slave $active then $now"; fi
else
    fail bond-active-backup "hearth-net could not create the bond"
fi
if bond_pair balance-rr rr; then
    before1=$(tx rra rr1a); before2=$(tx rra rr2a)
    ok=1
    for _ in 1 2 3 4; do connect rra 10.30.0.2 20 || ok=0; done
    if [ $ok = 1 ] && [ "$(tx rra rr1a)" != "$before1" ] && [ "$(tx rra rr2a)" != "$before2" ]; then
        pass bond-balance-rr
    else
        fail bond-balance-rr "traffic $ok, tx rr1a $before1->$(tx rra rr1a), rr2a $before2->$(tx rra rr2a)"
    fi
else
    fail bond-balance-rr "hearth-net could not create the bond"
fi

kill $(jobs -p) 2>/dev/null
exit $failed
