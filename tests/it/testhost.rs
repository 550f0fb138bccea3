//! The kernel-complete test host (hearth_test::testhost): Debian's kernel under QEMU TCG over
//! this machine's root file system. Each test is one boot (40 to 60 s), so each runs several
//! checks in one script and reports them line by line.

use hearth_test::{TestHost, bin, testhost};

/// The harness itself: the guest runs Debian's kernel, loads what this machine's kernel lacks,
/// runs the workspace's binaries (a hearthd on a temporary root under the guest's writable
/// `/tmp`, and a CLI against it), the host's files stay read-only unless overlaid (and then
/// unchanged on the host), and a failing script's status and standard error come back,
/// so a test in the test host cannot pass without having run.
#[test]
fn test_host_runs_debian_kernel_modules_and_reports_failures() {
    let kernel = testhost::kernel();
    let version = kernel.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_prefix("vmlinuz-")).unwrap();
    let script = r#"
set -u
echo "kernel:$(uname -r)"
for module in 8021q bonding softdog; do
    modprobe "$module" && echo "loaded:$module"
done
test -c /dev/watchdog && echo "device:watchdog"
ip link add thdum0 type dummy && ip link add link thdum0 name thdum0.10 type vlan id 10 && echo "link:vlan"
ip link add thbond0 type bond mode active-backup && echo "link:bond"
echo "env:$PROBE"
root=$(mktemp -d)
"$HEARTHD" --root "$root" --node test >"$root.log" 2>&1 &
for _ in $(seq 200); do test -S "$root/run/hearth/hearthd.sock" && break; sleep 0.1; done
HEARTH_ROOT="$root" "$VMCTL" list && echo "hearthd:answers"
kill %1
touch "$SHARED/read-only" 2>/dev/null || echo "shared:read-only"
touch "$OVERLAID/written" && echo "overlay:written"
echo "the failure the host must see" >&2
exit 7
"#;
    // A directory of this machine the guest sees read-only, and one it may write through an
    // overlay; neither changes on the host.
    let target = hearth_test::fixtures::dir().parent().unwrap().to_owned();
    // Not below target/: a checkout under /tmp, /var, /home… lies in one of the guest's own
    // overlays, where writes succeed (and vanish). /root is shared as it is.
    let shared = tempfile::tempdir_in("/root").unwrap();
    let overlaid = tempfile::tempdir_in(&target).unwrap();
    let out = TestHost::new()
        .writable(overlaid.path())
        .env("SHARED", &shared.path().to_string_lossy())
        .env("OVERLAID", &overlaid.path().to_string_lossy())
        .env("PROBE", "it's here")
        .env("HEARTHD", &bin("hearthd").to_string_lossy())
        .env("VMCTL", &bin("vmctl").to_string_lossy())
        .run(script);
    eprintln!("test host: boot, script and power-off in {:.1} s", out.elapsed.as_secs_f64());
    assert_eq!(out.status, 7, "the script's own exit status comes back\n{}", out.describe());
    assert!(out.stderr.contains("the failure the host must see"), "{}", out.describe());
    assert_eq!(out.lines_with("kernel:"), [version], "{}", out.describe());
    assert_eq!(out.lines_with("loaded:"), ["8021q", "bonding", "softdog"], "{}", out.describe());
    assert_eq!(out.lines_with("device:"), ["watchdog"], "{}", out.describe());
    assert_eq!(out.lines_with("link:"), ["vlan", "bond"], "{}", out.describe());
    assert_eq!(out.lines_with("env:"), ["it's here"], "{}", out.describe());
    assert_eq!(out.lines_with("hearthd:"), ["answers"], "{}", out.describe());
    assert_eq!(out.lines_with("shared:"), ["read-only"], "{}", out.describe());
    assert_eq!(out.lines_with("overlay:"), ["written"], "{}", out.describe());
    assert!(!shared.path().join("read-only").exists() && !overlaid.path().join("written").exists());
}

/// VLAN interfaces, a VLAN-aware bridge and bonds, made by hearthd through `netctl create` and
/// `netctl apply` (the links) and hearth-net's `plug_port` (the guest ports), carry traffic
/// between network namespaces in the test host, and keep it apart where they should: one boot
/// for all of them (testhost_net.sh).
#[test]
fn vlans_vlan_aware_bridges_and_bonds_carry_traffic_in_the_test_host() {
    let out = TestHost::new()
        .env("TESTNET", &bin("hearth-testnet").to_string_lossy())
        .env("HEARTHD", &bin("hearthd").to_string_lossy())
        .env("NETCTL", &bin("netctl").to_string_lossy())
        .run(NET_CHECKS);
    eprintln!("test host: network checks in {:.1} s", out.elapsed.as_secs_f64());
    let checks: Vec<&str> = out.lines_with("check:");
    let expected = [
        "vlan-tagged-traffic:ok",
        "vlan-untagged-kept-out:ok",
        "bridge-vlan-filtering:ok",
        "bridge-same-tag:ok",
        "bridge-other-tag:ok",
        "bridge-trunk-tagged:ok",
        "bridge-vlan-table:ok",
        "bond-active-backup:ok",
        "bond-failover:ok",
        "bond-balance-rr:ok",
        "sdn-vlan-apply:ok",
        "sdn-vlan-tag-across-uplink:ok",
        "sdn-vlan-other-tag:ok",
        "sdn-vlanaware-vnet:ok",
        "sdn-vlan-vnet-removed:ok",
    ];
    assert_eq!(checks, expected, "{}", out.describe());
    out.assert_success();
}

const NET_CHECKS: &str = include_str!("testhost_net.sh");
