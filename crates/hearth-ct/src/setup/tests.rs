//! The files' texts, checked as plain functions; then the real helper writing into rootfs
//! trees extracted by the real template helper (as root).

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use super::*;
use crate::template::tests::{TemplateBuilder, ctmon, extract_bytes, unprivileged, zst};

fn net(name: &str, ip: Option<&str>, gw: Option<&str>, ip6: Option<&str>, gw6: Option<&str>) -> GuestNet {
    let own = |v: Option<&str>| v.map(str::to_owned);
    GuestNet { name: name.into(), ip: own(ip), gw: own(gw), ip6: own(ip6), gw6: own(gw6) }
}

#[test]
fn interfaces_are_written_as_pct_writes_them() {
    let nets = [
        net("eth0", Some("10.0.0.2/24"), Some("10.0.0.1"), Some("fd00::2/64"), Some("fd00::1")),
        net("eth1", Some("dhcp"), None, Some("auto"), None),
        net("eth2", None, None, None, None),
    ];
    let expected = "\
auto lo
iface lo inet loopback

auto eth0
iface eth0 inet static
\taddress 10.0.0.2/24
\tgateway 10.0.0.1

iface eth0 inet6 static
\taddress fd00::2/64
\tgateway fd00::1

auto eth1
iface eth1 inet dhcp

iface eth1 inet6 auto
";
    assert_eq!(interfaces_text(None, &nets), expected);
    // What the guest had for the managed interfaces goes; the rest stays.
    let existing = "\
# The loopback network interface
auto lo eth5
iface lo inet loopback

allow-hotplug eth0
iface eth0 inet dhcp
\tpre-up echo old

source /etc/network/interfaces.d/*

iface eth5 inet manual
\tmtu 9000
";
    let text = interfaces_text(Some(existing), &nets[..1]);
    assert_eq!(
        text,
        "\
auto lo
iface lo inet loopback

auto eth0
iface eth0 inet static
\taddress 10.0.0.2/24
\tgateway 10.0.0.1

iface eth0 inet6 static
\taddress fd00::2/64
\tgateway fd00::1

# The loopback network interface
auto eth5

source /etc/network/interfaces.d/*

iface eth5 inet manual
\tmtu 9000
"
    );
    assert_eq!(interfaces_text(Some(&text), &nets[..1]), text, "writing twice changes nothing");
}

#[test]
fn hosts_gets_one_line_for_the_host_name() {
    assert_eq!(
        hosts_text(None, "ct1", None),
        "127.0.0.1 localhost\n127.0.1.1 ct1\n::1 localhost ip6-localhost ip6-loopback\n"
    );
    let existing = "127.0.0.1\tlocalhost\n127.0.1.1 old.example old\n::1 localhost\n10.9.9.9 other\n127.0.1.1 dup\n";
    assert_eq!(
        hosts_text(Some(existing), "ct1", Some("example.com")),
        "127.0.0.1\tlocalhost\n127.0.1.1 ct1.example.com ct1\n::1 localhost\n10.9.9.9 other\n"
    );
    assert!(hosts_text(Some(existing), "web.example.org", None).contains("127.0.1.1 web.example.org web\n"));
}

#[test]
fn shadow_resolv_and_keys() {
    let shadow = "daemon:*:19000:0:99999:7:::\nroot:*:19000:0:99999:7:::\n";
    assert_eq!(
        shadow_text(Some(shadow), "$6$s$h", 20000),
        "daemon:*:19000:0:99999:7:::\nroot:$6$s$h:20000:0:99999:7:::\n"
    );
    assert_eq!(shadow_text(None, "$6$s$h", 20000), "root:$6$s$h:20000:0:99999:7:::\n");

    let resolv = "domain old.example\nnameserver 9.9.9.9\noptions edns0\n";
    assert_eq!(
        resolv_text(Some(resolv), Some("1.1.1.1, 2606:4700::1111"), None),
        "domain old.example\nnameserver 1.1.1.1\nnameserver 2606:4700::1111\noptions edns0\n"
    );
    assert_eq!(
        resolv_text(Some(resolv), None, Some("a.example b.example")),
        "search a.example b.example\nnameserver 9.9.9.9\noptions edns0\n"
    );

    let keys = authorized_keys_text(Some("ssh-ed25519 AAAA guest@own\n"), "ssh-ed25519 BBBB admin\n\n");
    assert_eq!(
        keys,
        "ssh-ed25519 AAAA guest@own\n# --- BEGIN HEARTH ---\nssh-ed25519 BBBB admin\n# --- END HEARTH ---\n"
    );
    assert_eq!(
        authorized_keys_text(Some(&keys), "ssh-rsa CCCC new"),
        "ssh-ed25519 AAAA guest@own\n# --- BEGIN HEARTH ---\nssh-rsa CCCC new\n# --- END HEARTH ---\n"
    );
}

#[test]
fn passwords_hash_like_glibc_crypt() {
    // The test vector of Drepper's SHA-crypt specification.
    assert_eq!(
        crypt_sha512("Hello world!", "saltstring"),
        "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
    );
    let hash = hash_password("correct horse");
    assert!(hash.starts_with("$6$") && hash.len() > 100, "{hash}");
    assert_ne!(hash, hash_password("correct horse"), "salted");
    // glibc's crypt(3), through perl (always on Debian), accepts it.
    let output = Command::new("perl")
        .args(["-e", "print crypt($ARGV[0], $ARGV[1])", "correct horse", &hash])
        .output()
        .expect("perl runs (package perl-base)");
    assert_eq!(String::from_utf8_lossy(&output.stdout), hash);
}

#[test]
fn host_network_config_is_for_unmanaged_guests() {
    assert!(needs_host_network_config(None));
    assert!(needs_host_network_config(Some("centos")));
    assert!(!needs_host_network_config(Some("debian")));
    assert!(!needs_host_network_config(Some("alpine")));
}

#[test]
fn values_that_would_break_files_are_refused() {
    let ok = GuestSetup { hostname: "ct1".into(), ..GuestSetup::default() };
    assert!(validate(&ok).is_ok());
    for (bad, why) in [
        (GuestSetup { hostname: "ct1\nevil".into(), ..ok.clone() }, "host name"),
        (
            GuestSetup { nets: vec![net("eth0", Some("10.0.0.2/24\n\tup rm"), None, None, None)], ..ok.clone() },
            "eth0 ip",
        ),
        (GuestSetup { root_password_hash: Some("x:y".into()), ..ok.clone() }, "password"),
        (GuestSetup { timezone: Some("../../etc/shadow".into()), ..ok.clone() }, "time zone"),
    ] {
        let err = validate(&bad).unwrap_err();
        assert!(err.contains(why), "{err}");
    }
}

fn guest_setup(ostype: Option<&str>) -> GuestSetup {
    GuestSetup {
        hostname: "ct100.example.com".into(),
        ostype: ostype.map(str::to_owned),
        nets: vec![net("eth0", Some("10.0.0.2/24"), Some("10.0.0.1"), Some("auto"), None)],
        nameserver: Some("10.0.0.1".into()),
        searchdomain: Some("example.com".into()),
        root_password_hash: Some(hash_password("secret")),
        ssh_public_keys: Some("ssh-ed25519 AAAAC3Nza test@hearth".into()),
        timezone: None,
    }
}

fn meta(path: &Path) -> (u32, u32, u32) {
    let m = std::fs::symlink_metadata(path).unwrap();
    (m.uid(), m.gid(), m.mode() & 0o7777)
}

#[test]
fn apply_writes_the_guest_files_as_container_root() {
    let tmp = tempfile::tempdir().unwrap();
    let escape = std::env::temp_dir().join(format!("hearth-setup-escape-{}", std::process::id()));
    let mut b = TemplateBuilder::debian_like();
    // /etc/hostname is a symlink reaching for the host's /tmp.
    b.link(tar::EntryType::Symlink, "./etc/hostname", &format!("/../../../..{}", escape.display()));
    let (rootfs, result) = extract_bytes(tmp.path(), "rootfs", &zst(&b.tar()), Some(&unprivileged()));
    result.unwrap();

    let setup = guest_setup(Some("debian"));
    apply(&ctmon(), &rootfs, Some(&unprivileged()), &setup).unwrap();

    assert!(!escape.exists(), "the write followed the guest's symlink onto the host");
    assert_eq!(std::fs::read_to_string(rootfs.join("etc/hostname")).unwrap(), "ct100\n");
    assert_eq!(meta(&rootfs.join("etc/hostname")), (100_000, 100_000, 0o644));
    let hosts = std::fs::read_to_string(rootfs.join("etc/hosts")).unwrap();
    assert!(hosts.contains("127.0.1.1 ct100.example.com ct100\n") && hosts.contains("10.9.9.9 other"), "{hosts}");
    let shadow = std::fs::read_to_string(rootfs.join("etc/shadow")).unwrap();
    let root_line = shadow.lines().find(|l| l.starts_with("root:")).unwrap();
    assert_eq!(root_line.split(':').nth(1), setup.root_password_hash.as_deref());
    assert!(shadow.contains("daemon:*:19000"));
    assert_eq!(meta(&rootfs.join("etc/shadow")), (100_000, 100_042, 0o640), "owner and mode kept");
    assert_eq!(meta(&rootfs.join("root/.ssh")), (100_000, 100_000, 0o700));
    assert_eq!(meta(&rootfs.join("root/.ssh/authorized_keys")), (100_000, 100_000, 0o600));
    assert!(std::fs::read_to_string(rootfs.join("root/.ssh/authorized_keys")).unwrap().contains("test@hearth"));
    let resolv = std::fs::read_to_string(rootfs.join("etc/resolv.conf")).unwrap();
    assert_eq!(resolv, "search example.com\nnameserver 10.0.0.1\n");
    let interfaces = std::fs::read_to_string(rootfs.join("etc/network/interfaces")).unwrap();
    assert!(interfaces.contains("iface eth0 inet static\n\taddress 10.0.0.2/24\n\tgateway 10.0.0.1\n"), "{interfaces}");
    assert!(interfaces.contains("iface eth0 inet6 auto\n"), "{interfaces}");
    assert_eq!(meta(&rootfs.join("etc/network/interfaces")), (100_000, 100_000, 0o644));
    let leftovers: Vec<_> = std::fs::read_dir(rootfs.join("etc"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".hearth-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn unmanaged_guests_get_no_network_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (rootfs, result) = extract_bytes(tmp.path(), "rootfs", &zst(&TemplateBuilder::debian_like().tar()), None);
    result.unwrap();
    apply(&ctmon(), &rootfs, None, &guest_setup(None)).unwrap();
    assert!(!rootfs.join("etc/network").exists());
    assert_eq!(meta(&rootfs.join("etc/hostname")), (0, 0, 0o644), "privileged: container root is host root");
}

#[test]
fn invalid_values_are_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = GuestSetup { hostname: "bad name".into(), ..GuestSetup::default() };
    match apply(&ctmon(), tmp.path(), None, &setup) {
        Err(SetupError::Invalid(message)) => assert!(message.contains("host name"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(std::fs::read_dir(tmp.path()).unwrap().next().is_none());
}

#[test]
fn the_debian_fixture_boots_with_hearths_files() {
    let path = crate::host_needs::fixture("debian-12-template.tar.zst", "cargo xtask fixtures --debian");
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    let info = crate::template::extract(&ctmon(), &path, &rootfs, Some(&unprivileged())).unwrap();
    assert_eq!(info.ostype.as_deref(), Some("debian"));
    assert!(info.entries > 5000, "{info:?}");
    // usrmerge: sbin is a symlink, setuid binaries keep their bit under the shifted owner.
    assert_eq!(std::fs::read_link(rootfs.join("sbin")).unwrap(), Path::new("usr/sbin"));
    assert_eq!(meta(&rootfs.join("usr/bin/passwd")), (100_000, 100_000, 0o4755));
    let hostname_mode = meta(&rootfs.join("etc/hostname")).2;
    let setup = GuestSetup { timezone: Some("Europe/Vienna".into()), ..guest_setup(info.ostype.as_deref()) };
    apply(&ctmon(), &rootfs, Some(&unprivileged()), &setup).unwrap();
    let interfaces = std::fs::read_to_string(rootfs.join("etc/network/interfaces")).unwrap();
    assert!(interfaces.starts_with("auto lo\niface lo inet loopback\n\nauto eth0\n"), "{interfaces}");
    assert_eq!(meta(&rootfs.join("etc/hostname")), (100_000, 100_000, hostname_mode));
    if rootfs.join("usr/share/zoneinfo/Europe/Vienna").exists() {
        assert_eq!(
            std::fs::read_link(rootfs.join("etc/localtime")).unwrap(),
            Path::new("/usr/share/zoneinfo/Europe/Vienna")
        );
    }
}
