//! The VM configuration schema: the keys `qm` takes, with Proxmox's ranges and property strings.

use crate::propstr::{ModelKey, PropDef, PropKind, PropSchema};
use crate::schema::{KeyDef, Kind, Schema, Scope, check};

/// Guest OS types as `qm` names them.
pub const OSTYPES: &[&str] =
    &["other", "wxp", "w2k", "w2k3", "w2k8", "wvista", "win7", "win8", "win10", "win11", "l24", "l26", "solaris"];

/// NIC models; the model key of `netN` carries the MAC: `virtio=BC:24:11:..`.
pub const NIC_MODELS: &[&str] =
    &["virtio", "e1000", "e1000e", "vmxnet3", "rtl8139", "ne2k_pci", "pcnet", "i82551", "i82557b", "i82559er"];

/// Disk buses and how many slots each has, in boot-order priority.
pub const DISK_BUSES: &[(&str, u32)] = &[("ide", 3), ("sata", 5), ("scsi", 30), ("virtio", 15)];

fn boot_order(v: &str) -> Result<String, String> {
    let devices: Vec<&str> = v.split(';').collect();
    for dev in &devices {
        let digits = dev.bytes().rev().take_while(u8::is_ascii_digit).count();
        let (base, index) = dev.split_at(dev.len() - digits);
        let known = DISK_BUSES.iter().any(|(bus, _)| *bus == base) || matches!(base, "net" | "hostpci" | "usb");
        if !known || index.is_empty() {
            return Err(format!("invalid boot device '{dev}': expected disk or network keys like scsi0;ide2;net0"));
        }
    }
    Ok(v.to_owned())
}

fn drive_volume(v: &str) -> Result<String, String> {
    match v {
        "none" | "cdrom" => Ok(v.to_owned()),
        _ => check::volume(v),
    }
}

fn hotplug(v: &str) -> Result<String, String> {
    if v == "0" || v == "1" {
        return Ok(v.to_owned());
    }
    let mut features = Vec::new();
    for feature in v.split([',', ';']) {
        let feature = check::one_of(feature, &["network", "disk", "usb", "cpu", "memory", "cloudinit"])?;
        if !features.contains(&feature) {
            features.push(feature);
        }
    }
    Ok(features.join(","))
}

fn serial_port(v: &str) -> Result<String, String> {
    if v == "socket" || (v.starts_with("/dev/") && check::absolute_path(v).is_ok()) {
        Ok(v.to_owned())
    } else {
        Err(format!("invalid serial port '{v}': expected 'socket' or a /dev/ path"))
    }
}

fn cpu_flags(v: &str) -> Result<String, String> {
    for flag in v.split(';') {
        let name = flag
            .strip_prefix(['+', '-'])
            .ok_or_else(|| format!("invalid CPU flag '{flag}': expected +flag or -flag"))?;
        check::word(name)?;
    }
    Ok(v.to_owned())
}

/// `[file=]<volume>` plus drive options (§1.4 of qm's drive property string).
pub static DRIVE: PropSchema = PropSchema {
    default_key: Some("file"),
    bare_default: true,
    model: None,
    props: &[
        PropDef::new(
            "file",
            PropKind::Text(drive_volume),
            "volume id, STORAGE:SIZE_GiB to allocate, a path, 'none' or 'cdrom'",
        )
        .required(),
        PropDef::new("media", PropKind::Enum(&["disk", "cdrom"]), "media type"),
        PropDef::new("size", PropKind::Size, "disk size (informational)"),
        PropDef::new("format", PropKind::Enum(&["raw", "qcow2", "vmdk", "qed", "qcow", "cloop"]), "image format"),
        PropDef::new(
            "cache",
            PropKind::Enum(&["none", "writethrough", "writeback", "unsafe", "directsync"]),
            "cache mode",
        ),
        PropDef::new("aio", PropKind::Enum(&["native", "threads", "io_uring"]), "asynchronous I/O mode"),
        PropDef::new("discard", PropKind::Enum(&["on", "ignore"]), "pass discard requests to the volume"),
        PropDef::new("iothread", PropKind::Bool, "a dedicated I/O thread"),
        PropDef::new("ssd", PropKind::Bool, "present as a solid-state drive"),
        PropDef::new("ro", PropKind::Bool, "read-only"),
        PropDef::new("backup", PropKind::Bool, "include in backups"),
        PropDef::new("replicate", PropKind::Bool, "include in replication"),
        PropDef::new("shared", PropKind::Bool, "volume is shared between nodes"),
        PropDef::new("snapshot", PropKind::Bool, "temporary snapshot mode"),
        PropDef::new("serial", PropKind::Text(check::word), "drive serial number"),
        PropDef::new("detect_zeroes", PropKind::Bool, "detect zero writes"),
        PropDef::new("rerror", PropKind::Enum(&["ignore", "report", "stop"]), "read error action"),
        PropDef::new("werror", PropKind::Enum(&["enospc", "ignore", "report", "stop"]), "write error action"),
        PropDef::new("mbps", PropKind::Float { min: 0.0, max: 1e9 }, "throughput limit in MB/s"),
        PropDef::new("mbps_rd", PropKind::Float { min: 0.0, max: 1e9 }, "read throughput limit in MB/s"),
        PropDef::new("mbps_wr", PropKind::Float { min: 0.0, max: 1e9 }, "write throughput limit in MB/s"),
        PropDef::new("iops", PropKind::Int { min: 0, max: 1 << 31 }, "I/O operations per second limit"),
        PropDef::new("iops_rd", PropKind::Int { min: 0, max: 1 << 31 }, "read operations per second limit"),
        PropDef::new("iops_wr", PropKind::Int { min: 0, max: 1 << 31 }, "write operations per second limit"),
    ],
};

/// `<model>[=<mac>],bridge=..,firewall=..,tag=..` (§1.5).
pub static NIC: PropSchema = PropSchema {
    default_key: None,
    bare_default: false,
    model: Some(ModelKey { model_prop: "model", value_prop: "macaddr", models: NIC_MODELS }),
    props: &[
        PropDef::new("model", PropKind::Enum(NIC_MODELS), "NIC model").required(),
        PropDef::new("macaddr", PropKind::Text(check::mac), "MAC address"),
        PropDef::new("bridge", PropKind::Text(check::iface_name), "bridge to attach the tap to"),
        PropDef::new("firewall", PropKind::Bool, "filter through the firewall"),
        PropDef::new("tag", PropKind::Int { min: 1, max: 4094 }, "access VLAN tag"),
        PropDef::new("trunks", PropKind::Text(check::vlan_list), "VLAN trunks, e.g. 10;20-30"),
        PropDef::new("rate", PropKind::Float { min: 0.0, max: 1e9 }, "rate limit in MB/s"),
        PropDef::new("queues", PropKind::Int { min: 0, max: 64 }, "packet queues"),
        PropDef::new("mtu", PropKind::Int { min: 1, max: 65520 }, "MTU (1 = the bridge's)"),
        PropDef::new("link_down", PropKind::Bool, "disconnect the link"),
    ],
};

/// `[order=]<n>[,up=<s>][,down=<s>]`, shared with containers.
pub static STARTUP: PropSchema = PropSchema {
    default_key: Some("order"),
    bare_default: false,
    model: None,
    props: &[
        PropDef::new("order", PropKind::Int { min: 0, max: 1 << 30 }, "start order, ascending"),
        PropDef::new("up", PropKind::Int { min: 0, max: 1 << 30 }, "seconds to wait after start"),
        PropDef::new("down", PropKind::Int { min: 0, max: 1 << 30 }, "shutdown timeout in seconds"),
    ],
};

static BOOT: PropSchema = PropSchema {
    default_key: None,
    bare_default: false,
    model: None,
    props: &[PropDef::new("order", PropKind::Text(boot_order), "devices in boot order, e.g. scsi0;ide2;net0")],
};

static AGENT: PropSchema = PropSchema {
    default_key: Some("enabled"),
    bare_default: true,
    model: None,
    props: &[
        PropDef::new("enabled", PropKind::Bool, "QEMU guest agent enabled").required(),
        PropDef::new("fstrim_cloned_disks", PropKind::Bool, "trim after clone or move"),
        PropDef::new("freeze-fs-on-backup", PropKind::Bool, "freeze file systems during backups"),
        PropDef::new("type", PropKind::Enum(&["virtio", "isa"]), "agent channel"),
    ],
};

static CPU: PropSchema = PropSchema {
    default_key: Some("cputype"),
    bare_default: true,
    model: None,
    props: &[
        PropDef::new("cputype", PropKind::Text(check::word), "CPU model, e.g. host, x86-64-v2-AES, kvm64"),
        PropDef::new("flags", PropKind::Text(cpu_flags), "CPU flags, e.g. +aes;-pcid"),
        PropDef::new("hidden", PropKind::Bool, "hide the hypervisor from the guest"),
    ],
};

/// Every key of a VM configuration.
/// `vmstate`: a volume holding the RAM state, or `internal` when QEMU saved it inside the
/// VM's qcow2 images (savevm).
fn vmstate(v: &str) -> Result<String, String> {
    if v == "internal" { Ok(v.to_owned()) } else { check::volume(v) }
}

pub static SCHEMA: Schema = Schema {
    noun: "VM",
    keys: &[
        KeyDef::new("name", Kind::Text(check::dns_name), "name of the VM"),
        KeyDef::new("description", Kind::Text(check::description), "free-form description"),
        KeyDef::new("tags", Kind::Text(check::tags), "tags, separated by ';'"),
        KeyDef::new("ostype", Kind::Enum(OSTYPES), "guest operating system"),
        KeyDef::new("memory", Kind::Int { min: 16, max: 4 << 30 }, "memory in MiB"),
        KeyDef::new(
            "balloon",
            Kind::Int { min: 0, max: 4 << 30 },
            "minimum memory for the balloon device in MiB (0 disables it)",
        ),
        KeyDef::new("sockets", Kind::Int { min: 1, max: 4 }, "CPU sockets"),
        KeyDef::new("cores", Kind::Int { min: 1, max: 1024 }, "cores per socket"),
        KeyDef::new("vcpus", Kind::Int { min: 1, max: 4096 }, "hot-plugged vCPUs"),
        KeyDef::new("numa", Kind::Bool, "NUMA emulation"),
        KeyDef::new("cpu", Kind::Prop(&CPU), "emulated CPU: [cputype=]<model>[,flags=..][,hidden=..]"),
        KeyDef::new("machine", Kind::Text(check::word), "machine type: pc, q35, microvm or a versioned pc-*/pc-q35-*"),
        KeyDef::new("bios", Kind::Enum(&["seabios", "ovmf"]), "firmware"),
        KeyDef::new("kvm", Kind::Bool, "hardware virtualisation (0 = TCG emulation)"),
        KeyDef::new("acpi", Kind::Bool, "ACPI"),
        KeyDef::new("tablet", Kind::Bool, "USB tablet for absolute pointer positions"),
        KeyDef::new("localtime", Kind::Bool, "real-time clock in local time"),
        KeyDef::new("agent", Kind::Prop(&AGENT), "QEMU guest agent: [enabled=]<1|0>[,type=virtio|isa]"),
        KeyDef::new("boot", Kind::Prop(&BOOT), "boot order: order=<dev;dev;..>"),
        KeyDef::new("onboot", Kind::Bool, "start when the node boots"),
        KeyDef::new("startup", Kind::Prop(&STARTUP), "start and shutdown behaviour: [order=]<n>[,up=<s>][,down=<s>]"),
        KeyDef::new("protection", Kind::Bool, "refuse destroy and disk removal"),
        KeyDef::new(
            "hookscript",
            Kind::Text(check::hookscript),
            "a snippet run as <script> <vmid> <phase> at pre-start, post-start, pre-stop and post-stop",
        ),
        KeyDef::new("template", Kind::Bool, "the VM is a template"),
        KeyDef::new(
            "args",
            Kind::Text(check::non_empty),
            "extra QEMU arguments, shell-quoted (root only), e.g. -kernel /boot/vmlinuz -append 'console=ttyS0'",
        ),
        KeyDef::new(
            "scsihw",
            Kind::Enum(&["lsi", "lsi53c810", "megasas", "pvscsi", "virtio-scsi-pci", "virtio-scsi-single"]),
            "SCSI controller",
        ),
        KeyDef::new(
            "hotplug",
            Kind::Text(hotplug),
            "hot-plug features: network, disk, usb, cpu, memory (',' or ';' separated), 0 or 1",
        ),
        KeyDef::new(
            "vga",
            Kind::Enum(&[
                "std", "cirrus", "vmware", "qxl", "virtio", "serial0", "serial1", "serial2", "serial3", "none",
            ]),
            "display adapter",
        ),
        KeyDef::indexed("ide", 3, Kind::Prop(&DRIVE), "IDE disk or CD-ROM: [file=]<volume>[,media=cdrom][,..]"),
        KeyDef::indexed("sata", 5, Kind::Prop(&DRIVE), "SATA disk: [file=]<volume>[,..]"),
        KeyDef::indexed(
            "scsi",
            30,
            Kind::Prop(&DRIVE),
            "SCSI disk: [file=]<volume>[,cache=..][,discard=on][,iothread=1][,..]",
        ),
        KeyDef::indexed("virtio", 15, Kind::Prop(&DRIVE), "VirtIO block disk: [file=]<volume>[,..]"),
        KeyDef::indexed("unused", 255, Kind::Text(check::volume), "a volume the VM owns but does not use")
            .scope(Scope::Internal),
        KeyDef::indexed(
            "net",
            31,
            Kind::Prop(&NIC),
            "network device: <model>[=<mac>][,bridge=..][,firewall=1][,tag=..]",
        ),
        KeyDef::indexed("serial", 3, Kind::Text(serial_port), "serial port: socket or /dev/ttySx"),
        KeyDef::new("parent", Kind::Text(check::word), "the snapshot the current state is based on")
            .scope(Scope::Internal),
        KeyDef::new("snaptime", Kind::Int { min: 0, max: i64::MAX }, "snapshot creation time").scope(Scope::Snapshot),
        KeyDef::new(
            "vmstate",
            Kind::Text(vmstate),
            "where the saved RAM state is: a volume, or 'internal' (inside the qcow2 images)",
        )
        .scope(Scope::Snapshot),
        KeyDef::new("snapstate", Kind::Enum(&["prepare", "delete"]), "snapshot operation in progress")
            .scope(Scope::Snapshot),
    ],
};

#[cfg(test)]
mod tests {
    use super::SCHEMA;
    use crate::schema::Value;
    use expect_test::{Expect, expect};

    fn check(key: &str, raw: &str, expect: Expect) {
        let actual = match SCHEMA.parse_cli(key, raw) {
            Ok(v) => v.to_string(),
            Err(e) => format!("error: {e}"),
        };
        expect.assert_eq(&actual);
    }

    #[test]
    fn qm_option_syntax() {
        check("net0", "virtio,bridge=vmbr0,firewall=1,tag=20", expect!["virtio,bridge=vmbr0,firewall=1,tag=20"]);
        check("scsi0", "local:32,discard=on,cache=writeback", expect!["local:32,cache=writeback,discard=on"]);
        check("ide2", "local:iso/debian-12.iso,media=cdrom", expect!["local:iso/debian-12.iso,media=cdrom"]);
        check(
            "scsi0",
            "local:32,cache=fast",
            expect![
                "error: scsi0: cache: invalid value 'fast' (allowed: none, writethrough, writeback, unsafe, directsync)"
            ],
        );
        check(
            "virtio16",
            "local:1",
            expect!["error: virtio16: unknown VM configuration key (virtio takes indexes 0 to 15)"],
        );
        check("memory", "8", expect!["error: memory: value 8 is below the minimum 16"]);
        check("memory", "lots", expect!["error: memory: invalid integer 'lots'"]);
        check("onboot", "yes", expect!["1"]);
        check(
            "ostype",
            "linux",
            expect![
                "error: ostype: invalid value 'linux' (allowed: other, wxp, w2k, w2k3, w2k8, wvista, win7, win8, win10, win11, l24, l26, solaris)"
            ],
        );
        check("memroy", "512", expect!["error: memroy: unknown VM configuration key; did you mean 'memory'?"]);
        check("startup", "2,up=30", expect!["order=2,up=30"]);
        check("boot", "order=scsi0;ide2;net0", expect!["order=scsi0;ide2;net0"]);
        check(
            "boot",
            "order=floppy",
            expect![
                "error: boot: order: invalid boot device 'floppy': expected disk or network keys like scsi0;ide2;net0"
            ],
        );
        check("tags", "prod web", expect!["prod;web"]);
        check("serial0", "socket", expect!["socket"]);
        check("parent", "snap1", expect!["error: parent: is managed by hearthd and cannot be set"]);
        check("cpu", "host,flags=+aes;-pcid", expect!["host,flags=+aes;-pcid"]);
        check("hotplug", "network,disk;usb", expect!["network,disk,usb"]);
        check(
            "hotplug",
            "network,floppy",
            expect!["error: hotplug: invalid value 'floppy' (allowed: network, disk, usb, cpu, memory, cloudinit)"],
        );
        check("agent", "1,type=isa", expect!["1,type=isa"]);
    }

    #[test]
    fn indexed_keys() {
        assert!(SCHEMA.lookup("scsi30").is_some());
        assert!(SCHEMA.lookup("scsi31").is_none());
        assert!(SCHEMA.lookup("scsi01").is_none());
        assert!(SCHEMA.lookup("scsi").is_none());
        assert!(SCHEMA.lookup("memory0").is_none());
        assert_eq!(SCHEMA.check_stored("onboot", &Value::Int(1), false), Ok(Value::Bool(true)));
        assert!(SCHEMA.check_stored("snaptime", &Value::Int(1), false).is_err());
        assert!(SCHEMA.check_stored("snaptime", &Value::Int(1), true).is_ok());
    }
}
