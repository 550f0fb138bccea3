//! The VM configuration schema: the keys `qm` takes, with Proxmox's ranges and property strings.

use crate::cloudinit;
use crate::propstr::{ModelKey, PropDef, PropKind, PropSchema};
use crate::schema::{KeyDef, Kind, Schema, Scope, check};

/// Guest OS types as `qm` names them.
pub const OSTYPES: &[&str] =
    &["other", "wxp", "w2k", "w2k3", "w2k8", "wvista", "win7", "win8", "win10", "win11", "l24", "l26", "solaris"];

/// NIC models; the model key of `netN` carries the MAC: `virtio=BC:24:11:..`.
pub const NIC_MODELS: &[&str] =
    &["virtio", "e1000", "e1000e", "vmxnet3", "rtl8139", "ne2k_pci", "pcnet", "i82551", "i82557b", "i82559er"];

/// VNC keyboard layouts as `qm` names them.
pub const KEYBOARDS: &[&str] = &[
    "da", "de", "de-ch", "en-gb", "en-us", "es", "fi", "fr", "fr-be", "fr-ca", "fr-ch", "hu", "is", "it", "ja", "lt",
    "mk", "nl", "no", "pl", "pt", "pt-br", "sl", "sv", "tr",
];

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

/// A UUID in its 8-4-4-4-12 hex form, stored lower case.
pub fn uuid(v: &str) -> Result<String, String> {
    let groups: Vec<&str> = v.split('-').collect();
    let ok = groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(v.to_ascii_lowercase())
    } else {
        Err(format!("invalid UUID '{v}': expected 8-4-4-4-12 hex digits like 0f9d3c1e-5a1b-4c7e-9d2a-3b4c5d6e7f80"))
    }
}

/// A random (version 4) UUID from 16 random bytes.
pub fn uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// Gives a cloned VM its own identity, as qm clone does: a new `vmgenid` (unless disabled with
/// the all-zero UUID) and a new `smbios1` UUID.
pub fn regenerate_ids(section: &mut crate::guest::Section, mut random: impl FnMut() -> [u8; 16]) {
    use crate::schema::Value;
    if section.get("vmgenid").and_then(Value::as_str).is_some_and(|v| v != NO_VMGENID) {
        section.insert("vmgenid".into(), Value::Str(uuid_v4(random())));
    }
    let smbios = section.get("smbios1").and_then(|v| SCHEMA.property("smbios1", v));
    if let Some(mut props) = smbios.filter(|p| p.get("uuid").is_some()) {
        props.insert(&SMBIOS1, "uuid", uuid_v4(random()));
        section.insert("smbios1".into(), Value::Str(props.to_string()));
    }
}

/// The `vmgenid` that turns the device off.
pub const NO_VMGENID: &str = "00000000-0000-0000-0000-000000000000";

/// `vmgenid`: `1` (hearthd generates a UUID, as qm does) or a UUID; the all-zero UUID turns the
/// device off.
fn vmgenid(v: &str) -> Result<String, String> {
    if v == "1" {
        return Ok(v.to_owned());
    }
    uuid(v).map_err(|_| format!("invalid value '{v}': expected 1 (generate one) or a UUID"))
}

/// A host CPU list as the kernel writes it: `0,5,8-11`.
pub fn cpu_list(v: &str) -> Result<String, String> {
    let bad = || format!("invalid CPU list '{v}': expected CPU numbers and ranges like 0,5,8-11");
    if v.is_empty() {
        return Err(bad());
    }
    for part in v.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let lo: u32 = lo.parse().map_err(|_| bad())?;
        let hi: u32 = hi.parse().map_err(|_| bad())?;
        if lo > hi || hi >= 8192 {
            return Err(bad());
        }
    }
    Ok(v.to_owned())
}

/// The CPUs of a [`cpu_list`], in order and without duplicates.
pub fn cpu_list_members(v: &str) -> Vec<u32> {
    let mut cpus: Vec<u32> = v
        .split(',')
        .filter_map(|part| {
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            Some(lo.parse::<u32>().ok()?..=hi.parse::<u32>().ok()?)
        })
        .flatten()
        .collect();
    cpus.sort_unstable();
    cpus.dedup();
    cpus
}

/// `startdate`: `now`, `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SS` (QEMU's `-rtc base=`).
fn startdate(v: &str) -> Result<String, String> {
    let bad = || format!("invalid start date '{v}': expected now, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS");
    if v == "now" {
        return Ok(v.to_owned());
    }
    let (date, time) = v.split_once('T').unwrap_or((v, "00:00:00"));
    let fields = |s: &str, sep: char, widths: [usize; 3]| -> Option<[u32; 3]> {
        let parts: Vec<&str> = s.split(sep).collect();
        if parts.len() != 3
            || parts.iter().zip(widths).any(|(p, w)| p.len() != w || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        Some([parts[0].parse().ok()?, parts[1].parse().ok()?, parts[2].parse().ok()?])
    };
    let [_, month, day] = fields(date, '-', [4, 2, 2]).ok_or_else(bad)?;
    let [hour, minute, second] = fields(time, ':', [2, 2, 2]).ok_or_else(bad)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return Err(bad());
    }
    Ok(v.to_owned())
}

/// A host USB device: `vendor:product` in hex (`0123:abcd`) or `bus-port[.port…]` (`1-2.3`).
fn usb_host(v: &str) -> Result<String, String> {
    let hex4 = |s: &str| s.len() == 4 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let digits = |s: &str| !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit());
    let ok = v == "spice"
        || v.split_once(':').is_some_and(|(vendor, product)| hex4(vendor) && hex4(product))
        || v.split_once('-').is_some_and(|(bus, ports)| digits(bus) && ports.split('.').all(digits));
    if ok {
        Ok(v.to_ascii_lowercase())
    } else {
        Err(format!("invalid USB device '{v}': expected spice, VENDOR:PRODUCT like 0123:abcd or BUS-PORT like 1-2.3"))
    }
}

/// Host PCI devices: `[domain:]bus:dev[.func]` (`0000:01:00.0`, `01:00`), several separated by `;`.
fn pci_host(v: &str) -> Result<String, String> {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    for id in v.split(';') {
        let (rest, func) = match id.split_once('.') {
            Some((rest, func)) => (rest, Some(func)),
            None => (id, None),
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let ok = match parts.as_slice() {
            [domain, bus, dev] => hex(domain, 4) && hex(bus, 2) && hex(dev, 2),
            [bus, dev] => hex(bus, 2) && hex(dev, 2),
            _ => false,
        } && func.is_none_or(|f| f.len() == 1 && f.bytes().all(|b| (b'0'..=b'7').contains(&b)));
        if !ok {
            return Err(format!(
                "invalid PCI device '{id}': expected [DOMAIN:]BUS:DEV[.FUNC] like 0000:01:00.0 or 01:00"
            ));
        }
    }
    Ok(v.to_ascii_lowercase())
}

/// A PCI id in hex, `0x1234` or `1234`.
fn pci_id(v: &str) -> Result<String, String> {
    let digits = v.strip_prefix("0x").unwrap_or(v);
    if digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(format!("0x{}", digits.to_ascii_lowercase()))
    } else {
        Err(format!("invalid PCI id '{v}': expected four hex digits like 0x8086"))
    }
}

/// A resource mapping id (`mapping=` of host devices, `dirid=` of virtiofs).
fn mapping_id(v: &str) -> Result<String, String> {
    let ok = !v.is_empty()
        && v.len() <= 128
        && v.as_bytes()[0].is_ascii_alphabetic()
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
    if ok {
        Ok(v.to_owned())
    } else {
        Err(format!("invalid mapping id '{v}': expected a letter, then letters, digits, - and _"))
    }
}

/// `parallelN`: a host parallel port.
fn parallel_port(v: &str) -> Result<String, String> {
    let numbered = |prefix: &str| {
        v.strip_prefix(prefix).is_some_and(|n| !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()))
    };
    if numbered("/dev/parport") || numbered("/dev/usb/lp") {
        Ok(v.to_owned())
    } else {
        Err(format!("invalid parallel port '{v}': expected /dev/parportN or /dev/usb/lpN"))
    }
}

/// An ivshmem name: it becomes part of a file name under /dev/shm.
fn shm_name(v: &str) -> Result<String, String> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        && !v.starts_with('.');
    if ok {
        Ok(v.to_owned())
    } else {
        Err(format!("invalid name '{v}': expected letters, digits, _ - . (not leading)"))
    }
}

/// An SMBIOS text: plain, or base64 when `base64=1` (checked against that flag by the
/// command-line builder, which decodes it).
fn smbios_text(v: &str) -> Result<String, String> {
    let ok =
        !v.is_empty() && v.len() <= 512 && v.bytes().all(|b| b.is_ascii_graphic() || b == b' ') && !v.contains(',');
    if ok { Ok(v.to_owned()) } else { Err(format!("invalid SMBIOS value '{v}': expected printable text without ','")) }
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
            "volume id, STORAGE:SIZE_GiB to allocate, STORAGE:cloudinit, a path, 'none' or 'cdrom'",
        )
        .required(),
        PropDef::new("media", PropKind::Enum(&["disk", "cdrom"]), "media type"),
        PropDef::new("size", PropKind::Size, "disk size (informational)"),
        PropDef::new("format", PropKind::Enum(&["raw", "qcow2", "vmdk", "qed", "qcow", "cloop"]), "image format"),
        PropDef::new(
            "import-from",
            PropKind::Text(check::volume),
            "create the disk as a copy of this image (a volume or an absolute path) with STORAGE:0",
        ),
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

/// Display types of `vga`.
pub const VGA_TYPES: &[&str] = &[
    "std",
    "cirrus",
    "vmware",
    "qxl",
    "qxl2",
    "qxl3",
    "qxl4",
    "virtio",
    "virtio-gl",
    "serial0",
    "serial1",
    "serial2",
    "serial3",
    "none",
];

/// `[type=]<display>[,memory=<MiB>][,clipboard=vnc]`.
pub static VGA: PropSchema = PropSchema {
    default_key: Some("type"),
    bare_default: true,
    model: None,
    props: &[
        PropDef::new("type", PropKind::Enum(VGA_TYPES), "display adapter"),
        PropDef::new("clipboard", PropKind::Enum(&["vnc"]), "clipboard through the VNC display (qemu-vdagent)"),
        PropDef::new("memory", PropKind::Int { min: 4, max: 512 }, "video memory in MiB"),
    ],
};

/// `[file=]<volume>,efitype=2m|4m,pre-enrolled-keys=0|1`: the EFI variable store of OVMF.
pub static EFIDISK: PropSchema = PropSchema {
    default_key: Some("file"),
    bare_default: true,
    model: None,
    props: &[
        PropDef::new("file", PropKind::Text(check::volume), "volume id, or STORAGE:1 to allocate one").required(),
        PropDef::new("format", PropKind::Enum(&["raw", "qcow2", "vmdk"]), "image format"),
        PropDef::new("efitype", PropKind::Enum(&["2m", "4m"]), "OVMF variable store size (4m for Secure Boot)"),
        PropDef::new("pre-enrolled-keys", PropKind::Bool, "Microsoft and distribution Secure Boot keys enrolled"),
        PropDef::new("ms-cert", PropKind::Enum(&["2011", "2023", "2023k", "2023w"]), "enrolled Microsoft certificates"),
        PropDef::new("size", PropKind::Size, "volume size (informational)"),
    ],
};

/// `[file=]<volume>,version=v1.2|v2.0`: the state of the emulated TPM.
pub static TPMSTATE: PropSchema = PropSchema {
    default_key: Some("file"),
    bare_default: true,
    model: None,
    props: &[
        PropDef::new("file", PropKind::Text(check::volume), "volume id, or STORAGE:1 to allocate one").required(),
        PropDef::new("version", PropKind::Enum(&["v1.2", "v2.0"]), "TPM interface version"),
        PropDef::new("size", PropKind::Size, "volume size (informational)"),
    ],
};

/// `[source=]<entropy source>[,max_bytes=<n>][,period=<ms>]`.
pub static RNG: PropSchema = PropSchema {
    default_key: Some("source"),
    bare_default: false,
    model: None,
    props: &[
        PropDef::new(
            "source",
            PropKind::Enum(&["/dev/urandom", "/dev/random", "/dev/hwrng"]),
            "entropy source on the host",
        )
        .required(),
        PropDef::new("max_bytes", PropKind::Int { min: 0, max: 1 << 31 }, "bytes per period (0 = unlimited)"),
        PropDef::new("period", PropKind::Int { min: 1, max: 1 << 31 }, "period in milliseconds"),
    ],
};

/// `[model=]<i6300esb|ib700>[,action=<action>]`.
pub static WATCHDOG: PropSchema = PropSchema {
    default_key: Some("model"),
    bare_default: false,
    model: None,
    props: &[
        PropDef::new("model", PropKind::Enum(&["i6300esb", "ib700"]), "watchdog device"),
        PropDef::new(
            "action",
            PropKind::Enum(&["reset", "shutdown", "poweroff", "pause", "debug", "none"]),
            "what happens when the watchdog fires",
        ),
    ],
};

/// `device=<model>[,driver=spice|none]`.
pub static AUDIO: PropSchema = PropSchema {
    default_key: None,
    bare_default: false,
    model: None,
    props: &[
        PropDef::new("device", PropKind::Enum(&["ich9-intel-hda", "intel-hda", "AC97"]), "audio device").required(),
        PropDef::new("driver", PropKind::Enum(&["spice", "none"]), "audio backend"),
    ],
};

/// `size=<MiB>[,name=<name>]`: shared memory under /dev/shm.
pub static IVSHMEM: PropSchema = PropSchema {
    default_key: None,
    bare_default: false,
    model: None,
    props: &[
        PropDef::new("size", PropKind::Int { min: 1, max: 1 << 20 }, "size in MiB").required(),
        PropDef::new("name", PropKind::Text(shm_name), "name of the file /dev/shm/pve-shm-<name> (default: the vmid)"),
    ],
};

static SPICE_ENHANCEMENTS: PropSchema = PropSchema {
    default_key: None,
    bare_default: false,
    model: None,
    props: &[
        PropDef::new("foldersharing", PropKind::Bool, "folder sharing through the SPICE WebDAV daemon"),
        PropDef::new("videostreaming", PropKind::Enum(&["off", "all", "filter"]), "video streaming"),
    ],
};

/// `[base64=1][,family=..][,manufacturer=..][,product=..][,serial=..][,sku=..][,uuid=..][,version=..]`.
pub static SMBIOS1: PropSchema = PropSchema {
    default_key: None,
    bare_default: false,
    model: None,
    props: &[
        PropDef::new("base64", PropKind::Bool, "the texts are base64-encoded"),
        PropDef::new("family", PropKind::Text(smbios_text), "SMBIOS family"),
        PropDef::new("manufacturer", PropKind::Text(smbios_text), "SMBIOS manufacturer"),
        PropDef::new("product", PropKind::Text(smbios_text), "SMBIOS product name"),
        PropDef::new("serial", PropKind::Text(smbios_text), "SMBIOS serial number"),
        PropDef::new("sku", PropKind::Text(smbios_text), "SMBIOS SKU"),
        PropDef::new("uuid", PropKind::Text(uuid), "SMBIOS UUID"),
        PropDef::new("version", PropKind::Text(smbios_text), "SMBIOS version"),
    ],
};

/// `[host=]<vendor:product|bus-port|spice>[,mapping=<id>][,usb3=1]`.
pub static USB: PropSchema = PropSchema {
    default_key: Some("host"),
    bare_default: true,
    model: None,
    props: &[
        PropDef::new("host", PropKind::Text(usb_host), "host device (VENDOR:PRODUCT or BUS-PORT) or spice"),
        PropDef::new("mapping", PropKind::Text(mapping_id), "resource mapping (not supported yet)"),
        PropDef::new("usb3", PropKind::Bool, "a USB3 port"),
    ],
};

/// `[host=]<pci ids>[,pcie=1][,x-vga=1][,rombar=0][,..]`.
pub static HOSTPCI: PropSchema = PropSchema {
    default_key: Some("host"),
    bare_default: true,
    model: None,
    props: &[
        PropDef::new("host", PropKind::Text(pci_host), "host PCI device(s): [DOMAIN:]BUS:DEV[.FUNC][;..]"),
        PropDef::new("device-id", PropKind::Text(pci_id), "PCI device id shown to the guest"),
        PropDef::new("legacy-igd", PropKind::Bool, "legacy Intel graphics passthrough"),
        PropDef::new("mapping", PropKind::Text(mapping_id), "resource mapping (not supported yet)"),
        PropDef::new("mdev", PropKind::Text(check::word), "mediated device type"),
        PropDef::new("pcie", PropKind::Bool, "a PCI Express port (q35 only)"),
        PropDef::new("rombar", PropKind::Bool, "map the device's ROM"),
        PropDef::new("romfile", PropKind::Text(check::word), "ROM file under /usr/share/kvm"),
        PropDef::new("sub-device-id", PropKind::Text(pci_id), "PCI subsystem device id"),
        PropDef::new("sub-vendor-id", PropKind::Text(pci_id), "PCI subsystem vendor id"),
        PropDef::new("vendor-id", PropKind::Text(pci_id), "PCI vendor id"),
        PropDef::new("x-vga", PropKind::Bool, "primary VGA device"),
    ],
};

/// `[dirid=]<mapping>[,cache=..][,direct-io=1][,expose-acl=1][,expose-xattr=1]`.
pub static VIRTIOFS: PropSchema = PropSchema {
    default_key: Some("dirid"),
    bare_default: true,
    model: None,
    props: &[
        PropDef::new("dirid", PropKind::Text(mapping_id), "directory mapping id").required(),
        PropDef::new("cache", PropKind::Enum(&["auto", "always", "metadata", "never"]), "cache mode"),
        PropDef::new("direct-io", PropKind::Bool, "honour O_DIRECT"),
        PropDef::new("expose-acl", PropKind::Bool, "POSIX ACLs (implies expose-xattr)"),
        PropDef::new("expose-xattr", PropKind::Bool, "extended attributes"),
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
            Kind::Prop(&VGA),
            "display: [type=]<std|qxl|virtio|serial0|none|..>[,memory=<MiB>][,clipboard=vnc]",
        ),
        KeyDef::new("cpulimit", Kind::Float { min: 0.0, max: 128.0 }, "CPU time limit in CPUs (0 = unlimited)"),
        KeyDef::new("cpuunits", Kind::Int { min: 1, max: 262_144 }, "relative CPU weight (default 100)"),
        KeyDef::new("affinity", Kind::Text(cpu_list), "host CPUs the VM's threads may run on, e.g. 0,5,8-11"),
        KeyDef::new("shares", Kind::Int { min: 0, max: 50_000 }, "memory shares for auto-ballooning (default 1000)"),
        KeyDef::new(
            "hugepages",
            Kind::Enum(&["any", "2", "1024"]),
            "back the memory with huge pages of this size in MiB",
        ),
        KeyDef::new("keephugepages", Kind::Bool, "keep the huge pages after the VM stops"),
        KeyDef::new("vmgenid", Kind::Text(vmgenid), "VM generation id: 1 (generate) or a UUID; all zeros disables it"),
        KeyDef::new(
            "smbios1",
            Kind::Prop(&SMBIOS1),
            "SMBIOS type 1: [uuid=..][,manufacturer=..][,product=..][,base64=1][,..]",
        ),
        KeyDef::new("arch", Kind::Enum(&["x86_64", "aarch64"]), "virtual processor architecture"),
        KeyDef::new("keyboard", Kind::Enum(KEYBOARDS), "VNC keyboard layout"),
        KeyDef::new(
            "startdate",
            Kind::Text(startdate),
            "real-time clock start: now, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS",
        ),
        KeyDef::new("freeze", Kind::Bool, "freeze the CPU at start (resume it with vmctl resume)"),
        KeyDef::new("reboot", Kind::Bool, "allow reboots (0: a guest reboot stops the VM)"),
        KeyDef::new("migrate_downtime", Kind::Float { min: 0.0, max: 1e9 }, "maximum migration downtime in seconds"),
        KeyDef::new(
            "migrate_speed",
            Kind::Int { min: 0, max: 1 << 31 },
            "maximum migration speed in MB/s (0 = unlimited)",
        ),
        KeyDef::new(
            "efidisk0",
            Kind::Prop(&EFIDISK),
            "EFI variable store: <storage>:1[,efitype=4m][,pre-enrolled-keys=1][,format=..]",
        ),
        KeyDef::new("tpmstate0", Kind::Prop(&TPMSTATE), "TPM state: <storage>:1[,version=v2.0|v1.2]"),
        KeyDef::new(
            "rng0",
            Kind::Prop(&RNG),
            "VirtIO RNG: [source=]</dev/urandom|/dev/random|/dev/hwrng>[,max_bytes=..][,period=..]",
        ),
        KeyDef::new(
            "watchdog",
            Kind::Prop(&WATCHDOG),
            "watchdog: [model=]<i6300esb|ib700>[,action=reset|shutdown|poweroff|pause|debug|none]",
        ),
        KeyDef::new("audio0", Kind::Prop(&AUDIO), "audio: device=<ich9-intel-hda|intel-hda|AC97>[,driver=spice|none]"),
        KeyDef::new("ivshmem", Kind::Prop(&IVSHMEM), "inter-VM shared memory: size=<MiB>[,name=<name>]"),
        KeyDef::new(
            "spice_enhancements",
            Kind::Prop(&SPICE_ENHANCEMENTS),
            "SPICE: [foldersharing=1][,videostreaming=off|all|filter] (no effect without SPICE)",
        ),
        KeyDef::indexed(
            "usb",
            14,
            Kind::Prop(&USB),
            "USB device (host devices root only): [host=]<VENDOR:PRODUCT|BUS-PORT|spice>[,usb3=1]",
        ),
        KeyDef::indexed(
            "hostpci",
            15,
            Kind::Prop(&HOSTPCI),
            "host PCI device (root only): [host=]<[DOMAIN:]BUS:DEV[.FUNC]>[,pcie=1][,..]",
        ),
        KeyDef::indexed(
            "parallel",
            2,
            Kind::Text(parallel_port),
            "host parallel port (root only): /dev/parportN or /dev/usb/lpN",
        ),
        KeyDef::indexed(
            "virtiofs",
            9,
            Kind::Prop(&VIRTIOFS),
            "virtiofs share: [dirid=]<mapping>[,cache=..] (needs directory mappings)",
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
        KeyDef::new("ciuser", Kind::Text(cloudinit::user_name), "cloud-init: user to set the password and SSH keys of"),
        KeyDef::new(
            "cipassword",
            Kind::Text(cloudinit::password),
            "cloud-init: password of the user (stored SHA-512-crypt hashed; SSH keys are safer)",
        ),
        KeyDef::new(
            "sshkeys",
            Kind::Text(cloudinit::sshkeys),
            "cloud-init: public SSH keys, one per line, URL-encoded (vmctl reads them from the file given)",
        ),
        KeyDef::indexed(
            "ipconfig",
            31,
            Kind::Prop(&cloudinit::IPCONFIG),
            "cloud-init: addresses of netN: [ip=<CIDR|dhcp>][,gw=<IPv4>][,ip6=<CIDR|auto|dhcp>][,gw6=<IPv6>]",
        ),
        KeyDef::new("nameserver", Kind::Text(check::ip_list), "cloud-init: DNS servers (default: the host's)"),
        KeyDef::new(
            "searchdomain",
            Kind::Text(check::domain_list),
            "cloud-init: DNS search domains (default: the host's)",
        ),
        KeyDef::new(
            "citype",
            Kind::Enum(&["configdrive2", "nocloud", "opennebula"]),
            "cloud-init drive format (default: nocloud, configdrive2 for Windows)",
        ),
        KeyDef::new("ciupgrade", Kind::Bool, "cloud-init: upgrade packages after the first boot (default 1)"),
        KeyDef::new(
            "cicustom",
            Kind::Prop(&cloudinit::CICUSTOM),
            "cloud-init: snippets replacing generated files: [user=<volume>][,network=<volume>][,meta=<volume>][,vendor=<volume>]",
        ),
        KeyDef::indexed("serial", 3, Kind::Text(serial_port), "serial port: socket or /dev/ttySx"),
        KeyDef::new("parent", Kind::Text(check::word), "the snapshot the current state is based on")
            .scope(Scope::Internal),
        KeyDef::new("snaptime", Kind::Int { min: 0, max: i64::MAX }, "snapshot creation time").scope(Scope::Snapshot),
        KeyDef::new(
            "vmstate",
            Kind::Text(vmstate),
            "where the saved RAM state is: a volume, or 'internal' (inside the qcow2 images); \
             of a VM suspended to disk, the volume it resumes from",
        )
        .scope(Scope::Internal),
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
    fn hardware_and_option_keys() {
        check("vga", "qxl", expect!["qxl"]);
        check("vga", "std,memory=32,clipboard=vnc", expect!["std,clipboard=vnc,memory=32"]);
        check(
            "vga",
            "matrox",
            expect![
                "error: vga: type: invalid value 'matrox' (allowed: std, cirrus, vmware, qxl, qxl2, qxl3, qxl4, virtio, virtio-gl, serial0, serial1, serial2, serial3, none)"
            ],
        );
        check("vmgenid", "1", expect!["1"]);
        check("vmgenid", "00000000-0000-0000-0000-000000000000", expect!["00000000-0000-0000-0000-000000000000"]);
        check("vmgenid", "yes", expect!["error: vmgenid: invalid value 'yes': expected 1 (generate one) or a UUID"]);
        check(
            "efidisk0",
            "local:1,format=qcow2,efitype=4m,pre-enrolled-keys=1",
            expect!["local:1,format=qcow2,efitype=4m,pre-enrolled-keys=1"],
        );
        check(
            "efidisk0",
            "local:1,efitype=8m",
            expect!["error: efidisk0: efitype: invalid value '8m' (allowed: 2m, 4m)"],
        );
        check("tpmstate0", "local:1,version=v2.0", expect!["local:1,version=v2.0"]);
        check(
            "tpmstate0",
            "local:1,version=3",
            expect!["error: tpmstate0: version: invalid value '3' (allowed: v1.2, v2.0)"],
        );
        check(
            "rng0",
            "source=/dev/urandom,max_bytes=1024,period=1000",
            expect!["source=/dev/urandom,max_bytes=1024,period=1000"],
        );
        check("rng0", "/dev/random", expect!["source=/dev/random"]);
        check(
            "rng0",
            "source=/dev/zero",
            expect!["error: rng0: source: invalid value '/dev/zero' (allowed: /dev/urandom, /dev/random, /dev/hwrng)"],
        );
        check("watchdog", "i6300esb,action=reset", expect!["model=i6300esb,action=reset"]);
        check("audio0", "device=AC97,driver=none", expect!["device=AC97,driver=none"]);
        check("audio0", "driver=none", expect!["error: audio0: missing required property 'device'"]);
        check("ivshmem", "size=32,name=foo", expect!["size=32,name=foo"]);
        check(
            "ivshmem",
            "size=32,name=../x",
            expect!["error: ivshmem: name: invalid name '../x': expected letters, digits, _ - . (not leading)"],
        );
        check("affinity", "0,5,8-11", expect!["0,5,8-11"]);
        check(
            "affinity",
            "3-1",
            expect!["error: affinity: invalid CPU list '3-1': expected CPU numbers and ranges like 0,5,8-11"],
        );
        check("cpulimit", "1.5", expect!["1.5"]);
        check("cpulimit", "129", expect!["error: cpulimit: value 129 is above the maximum 128"]);
        check("cpuunits", "0", expect!["error: cpuunits: value 0 is below the minimum 1"]);
        check("shares", "500", expect!["500"]);
        check("startdate", "2006-06-17T16:01:21", expect!["2006-06-17T16:01:21"]);
        check(
            "startdate",
            "2006-13-01",
            expect![
                "error: startdate: invalid start date '2006-13-01': expected now, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS"
            ],
        );
        check("keyboard", "de-ch", expect!["de-ch"]);
        check("hugepages", "2", expect!["2"]);
        check(
            "smbios1",
            "uuid=0F9D3C1E-5A1B-4C7E-9D2A-3B4C5D6E7F80,base64=1",
            expect!["base64=1,uuid=0f9d3c1e-5a1b-4c7e-9d2a-3b4c5d6e7f80"],
        );
        check("usb0", "host=0123:abcd,usb3=1", expect!["0123:abcd,usb3=1"]);
        check("usb0", "spice", expect!["spice"]);
        check("usb14", "1-2.3", expect!["1-2.3"]);
        check(
            "usb0",
            "host=usb-stick",
            expect![
                "error: usb0: host: invalid USB device 'usb-stick': expected spice, VENDOR:PRODUCT like 0123:abcd or BUS-PORT like 1-2.3"
            ],
        );
        check("hostpci0", "01:00.0,pcie=1,x-vga=1", expect!["01:00.0,pcie=1,x-vga=1"]);
        check("hostpci0", "host=0000:01:00.0;0000:01:00.1", expect!["0000:01:00.0;0000:01:00.1"]);
        check(
            "hostpci0",
            "01:00.9",
            expect![
                "error: hostpci0: host: invalid PCI device '01:00.9': expected [DOMAIN:]BUS:DEV[.FUNC] like 0000:01:00.0 or 01:00"
            ],
        );
        check("parallel0", "/dev/parport0", expect!["/dev/parport0"]);
        check(
            "parallel0",
            "/dev/sda",
            expect!["error: parallel0: invalid parallel port '/dev/sda': expected /dev/parportN or /dev/usb/lpN"],
        );
        check("virtiofs0", "share1,cache=always", expect!["share1,cache=always"]);
        check("arch", "aarch64", expect!["aarch64"]);
        check(
            "efidisk1",
            "local:1",
            expect!["error: efidisk1: unknown VM configuration key; did you mean 'efidisk0'?"],
        );
    }

    #[test]
    fn generated_ids() {
        use crate::guest::GuestConfig;
        let mut n = 0u8;
        let mut random = || {
            n += 1;
            [n; 16]
        };
        assert_eq!(super::uuid_v4([0xff; 16]), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let mut config = GuestConfig::new(crate::GuestKind::Vm);
        config.assign_generated_ids(true, &mut random);
        assert_eq!(config.current.get("vmgenid"), Some(&Value::Str("01010101-0101-4101-8101-010101010101".into())));
        assert_eq!(
            config.current.get("smbios1"),
            Some(&Value::Str("uuid=02020202-0202-4202-8202-020202020202".into()))
        );
        config.current.insert("vmgenid".into(), Value::Str("1".into()));
        config.assign_generated_ids(false, &mut random);
        assert_eq!(config.current.get("vmgenid"), Some(&Value::Str("03030303-0303-4303-8303-030303030303".into())));
        super::regenerate_ids(&mut config.current, &mut random);
        assert_eq!(
            config.current.get("smbios1"),
            Some(&Value::Str("uuid=05050505-0505-4505-8505-050505050505".into()))
        );
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
