//! The container configuration schema: the keys `pct` takes, with Proxmox's ranges and property
//! strings.

use crate::propstr::{PropDef, PropKind, PropSchema};
use crate::schema::{KeyDef, Kind, Schema, Scope, check};
use crate::vm;

/// Distributions as `pct` names them.
pub const OSTYPES: &[&str] = &[
    "debian",
    "devuan",
    "ubuntu",
    "centos",
    "fedora",
    "opensuse",
    "archlinux",
    "alpine",
    "gentoo",
    "nixos",
    "unmanaged",
];

fn filesystem_list(v: &str) -> Result<String, String> {
    for fs in v.split(';') {
        check::word(fs)?;
    }
    Ok(v.to_owned())
}

fn mount_options(v: &str) -> Result<String, String> {
    const ALLOWED: &[&str] = &["noatime", "nodev", "nosuid", "noexec", "lazytime", "discard"];
    for opt in v.split(';') {
        check::one_of(opt, ALLOWED)?;
    }
    Ok(v.to_owned())
}

/// `[volume=]<volume>[,size=..][,ro=1][,..]`.
pub static ROOTFS: PropSchema = PropSchema {
    default_key: Some("volume"),
    bare_default: true,
    model: None,
    props: &[
        PropDef::new(
            "volume",
            PropKind::Text(check::volume),
            "volume id, STORAGE:SIZE_GiB to allocate, or a host directory",
        )
        .required(),
        PropDef::new("size", PropKind::Size, "volume size (informational)"),
        PropDef::new("acl", PropKind::Bool, "POSIX ACLs"),
        PropDef::new("quota", PropKind::Bool, "user quotas"),
        PropDef::new("ro", PropKind::Bool, "read-only"),
        PropDef::new("mountoptions", PropKind::Text(mount_options), "mount options, e.g. noatime;nodev"),
        PropDef::new("replicate", PropKind::Bool, "include in replication"),
        PropDef::new("shared", PropKind::Bool, "volume is shared between nodes"),
    ],
};

/// Like the root file system, plus the mount path inside the container.
pub static MOUNTPOINT: PropSchema = PropSchema {
    default_key: Some("volume"),
    bare_default: true,
    model: None,
    props: &[
        PropDef::new(
            "volume",
            PropKind::Text(check::volume),
            "volume id, STORAGE:SIZE_GiB to allocate, or a host directory",
        )
        .required(),
        PropDef::new("mp", PropKind::Text(check::absolute_path), "path inside the container").required(),
        PropDef::new("size", PropKind::Size, "volume size (informational)"),
        PropDef::new("backup", PropKind::Bool, "include in backups"),
        PropDef::new("acl", PropKind::Bool, "POSIX ACLs"),
        PropDef::new("quota", PropKind::Bool, "user quotas"),
        PropDef::new("ro", PropKind::Bool, "read-only"),
        PropDef::new("mountoptions", PropKind::Text(mount_options), "mount options, e.g. noatime;nodev"),
        PropDef::new("replicate", PropKind::Bool, "include in replication"),
        PropDef::new("shared", PropKind::Bool, "volume is shared between nodes"),
    ],
};

/// `name=eth0,bridge=..,hwaddr=..,ip=..,gw=..` for container interfaces.
pub static NIC: PropSchema = PropSchema {
    default_key: None,
    bare_default: false,
    model: None,
    props: &[
        PropDef::new("name", PropKind::Text(check::iface_name), "interface name inside the container").required(),
        PropDef::new("bridge", PropKind::Text(check::iface_name), "bridge for the host side"),
        PropDef::new("hwaddr", PropKind::Text(check::mac), "MAC address"),
        PropDef::new("ip", PropKind::Text(check::ip4_config), "IPv4 address in CIDR form, dhcp or manual"),
        PropDef::new("gw", PropKind::Text(check::ipv4), "IPv4 gateway"),
        PropDef::new("ip6", PropKind::Text(check::ip6_config), "IPv6 address in CIDR form, auto, dhcp or manual"),
        PropDef::new("gw6", PropKind::Text(check::ipv6), "IPv6 gateway"),
        PropDef::new("firewall", PropKind::Bool, "filter through the firewall"),
        PropDef::new("tag", PropKind::Int { min: 1, max: 4094 }, "access VLAN tag"),
        PropDef::new("trunks", PropKind::Text(check::vlan_list), "VLAN trunks, e.g. 10;20-30"),
        PropDef::new("rate", PropKind::Float { min: 0.0, max: 1e9 }, "rate limit in MB/s"),
        PropDef::new("mtu", PropKind::Int { min: 64, max: 65535 }, "MTU"),
        PropDef::new("link_down", PropKind::Bool, "disconnect the link"),
        PropDef::new("type", PropKind::Enum(&["veth"]), "interface type"),
    ],
};

static FEATURES: PropSchema = PropSchema {
    default_key: None,
    bare_default: false,
    model: None,
    props: &[
        PropDef::new(
            "nesting",
            PropKind::Bool,
            "allow nested containers (exposes host /proc and /sys read-write parts)",
        ),
        PropDef::new("keyctl", PropKind::Bool, "allow keyctl() (unprivileged containers only)"),
        PropDef::new("fuse", PropKind::Bool, "allow FUSE file systems"),
        PropDef::new("mknod", PropKind::Bool, "allow mknod of safe device nodes"),
        PropDef::new(
            "mount",
            PropKind::Text(filesystem_list),
            "file system types the container may mount, e.g. nfs;cifs",
        ),
        PropDef::new("force_rw_sys", PropKind::Bool, "mount /sys read-write in unprivileged containers"),
    ],
};

/// `dev[n]`: `[path=]/dev/<node>[,mode=0660][,uid=..][,gid=..][,deny-write=1]`.
pub static DEVICE: PropSchema = PropSchema {
    default_key: Some("path"),
    bare_default: true,
    model: None,
    props: &[
        PropDef::new("path", PropKind::Text(device_path), "host device node under /dev").required(),
        PropDef::new("mode", PropKind::Text(octal_mode), "access mode of the node in the container, e.g. 0660"),
        PropDef::new("uid", PropKind::Int { min: 0, max: u32::MAX as i64 }, "owner in the container"),
        PropDef::new("gid", PropKind::Int { min: 0, max: u32::MAX as i64 }, "group in the container"),
        PropDef::new("deny-write", PropKind::Bool, "read-only access"),
    ],
};

fn device_path(v: &str) -> Result<String, String> {
    match v.strip_prefix("/dev/") {
        Some(rest) if !rest.is_empty() && check::absolute_path(v).is_ok() => Ok(v.to_owned()),
        _ => Err(format!("invalid device '{v}': expected a device node path under /dev/")),
    }
}

fn octal_mode(v: &str) -> Result<String, String> {
    let ok = (3..=4).contains(&v.len()) && v.bytes().all(|b| (b'0'..=b'7').contains(&b));
    if ok { Ok(v.to_owned()) } else { Err(format!("invalid mode '{v}': expected octal digits like 0660")) }
}

/// `entrypoint`: the init command with its arguments, separated by spaces.
fn entrypoint(v: &str) -> Result<String, String> {
    let program = v.split_whitespace().next().ok_or("must not be empty")?;
    if v.contains('\0') || v.contains(['\n', '\r']) {
        return Err("must be one line without NUL".into());
    }
    if program.starts_with('/') {
        check::absolute_path(program)?;
    }
    Ok(v.trim().to_owned())
}

/// `env`: `NAME=VALUE` entries separated by NUL (or the two characters `\0`, as the
/// configuration stores them).
pub fn env_list(v: &str) -> Result<String, String> {
    let entries: Vec<&str> = v.split(['\0']).flat_map(|e| e.split("\\0")).filter(|e| !e.is_empty()).collect();
    if entries.is_empty() {
        return Err("expected NAME=VALUE entries separated by \\0".into());
    }
    for entry in &entries {
        let (name, value) =
            entry.split_once('=').ok_or_else(|| format!("invalid entry '{entry}': expected NAME=VALUE"))?;
        let name_ok = name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !name_ok || value.contains(['\n', '\r']) {
            return Err(format!("invalid entry '{entry}': expected NAME=VALUE, NAME of letters, digits and _"));
        }
    }
    Ok(entries.join("\\0"))
}

/// The entries of an [`env_list`] as stored.
pub fn env_entries(v: &str) -> Vec<String> {
    v.split("\\0").filter(|e| !e.is_empty()).map(str::to_owned).collect()
}

/// Every key of a container configuration.
pub static SCHEMA: Schema = Schema {
    noun: "CT",
    keys: &[
        KeyDef::new("hostname", Kind::Text(check::dns_name), "host name of the container"),
        KeyDef::new("description", Kind::Text(check::description), "free-form description"),
        KeyDef::new("tags", Kind::Text(check::tags), "tags, separated by ';'"),
        KeyDef::new("arch", Kind::Enum(&["amd64", "i386", "arm64", "armhf", "riscv32", "riscv64"]), "architecture"),
        KeyDef::new("ostype", Kind::Enum(OSTYPES), "distribution, for in-container set-up"),
        KeyDef::new("cores", Kind::Int { min: 1, max: 8192 }, "number of CPUs the container may use"),
        KeyDef::new("cpulimit", Kind::Float { min: 0.0, max: 8192.0 }, "CPU time limit in CPUs (0 = unlimited)"),
        KeyDef::new("cpuunits", Kind::Int { min: 0, max: 500_000 }, "relative CPU weight"),
        KeyDef::new("memory", Kind::Int { min: 16, max: 4 << 30 }, "memory in MiB"),
        KeyDef::new("swap", Kind::Int { min: 0, max: 4 << 30 }, "swap in MiB"),
        KeyDef::new("rootfs", Kind::Prop(&ROOTFS), "root file system: [volume=]<volume>[,size=..][,..]"),
        KeyDef::indexed("mp", 255, Kind::Prop(&MOUNTPOINT), "mount point: [volume=]<volume>,mp=<path>[,backup=1][,..]"),
        KeyDef::indexed(
            "net",
            9,
            Kind::Prop(&NIC),
            "network interface: name=<ifname>[,bridge=..][,ip=..][,gw=..][,..]",
        ),
        KeyDef::new("unprivileged", Kind::Bool, "map container ids to unprivileged host ids"),
        KeyDef::new("features", Kind::Prop(&FEATURES), "advanced features: nesting=1,keyctl=1,fuse=1,.."),
        KeyDef::new("nameserver", Kind::Text(check::ip_list), "DNS servers"),
        KeyDef::new("searchdomain", Kind::Text(check::domain_list), "DNS search domains"),
        KeyDef::new("onboot", Kind::Bool, "start when the node boots"),
        KeyDef::new(
            "startup",
            Kind::Prop(&vm::STARTUP),
            "start and shutdown behaviour: [order=]<n>[,up=<s>][,down=<s>]",
        ),
        KeyDef::new("protection", Kind::Bool, "refuse destroy and volume removal"),
        KeyDef::new(
            "hookscript",
            Kind::Text(check::hookscript),
            "a snippet run as <script> <vmid> <phase> at pre-start, post-start, pre-stop and post-stop",
        ),
        KeyDef::new("template", Kind::Bool, "the container is a template"),
        KeyDef::new("console", Kind::Bool, "attach a console device"),
        KeyDef::new("tty", Kind::Int { min: 0, max: 6 }, "number of ttys"),
        KeyDef::new("cmode", Kind::Enum(&["tty", "console", "shell"]), "console mode"),
        KeyDef::new("timezone", Kind::Text(check::word), "time zone: host or a zoneinfo name"),
        KeyDef::new(
            "entrypoint",
            Kind::Text(entrypoint),
            "command run as init, with arguments (default /sbin/init); a bare name is looked up in PATH",
        ),
        KeyDef::new("env", Kind::Text(env_list), "environment of init: NAME=VALUE entries separated by \\0"),
        KeyDef::indexed(
            "dev",
            255,
            Kind::Prop(&DEVICE),
            "host device passed through (root only): [path=]/dev/<node>[,mode=0660][,uid=..][,gid=..][,deny-write=1]",
        ),
        KeyDef::indexed("unused", 255, Kind::Text(check::volume), "a volume the container owns but does not use")
            .scope(Scope::Internal),
        KeyDef::new("parent", Kind::Text(check::word), "the snapshot the current state is based on")
            .scope(Scope::Internal),
        KeyDef::new("snaptime", Kind::Int { min: 0, max: i64::MAX }, "snapshot creation time").scope(Scope::Snapshot),
        KeyDef::new("snapstate", Kind::Enum(&["prepare", "delete"]), "snapshot operation in progress")
            .scope(Scope::Snapshot),
    ],
};
