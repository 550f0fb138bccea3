//! Disks and CD-ROMs: `-blockdev` nodes (protocol `file-<key>` → format `drive-<key>`, or
//! format `fmt-<key>` under a throttle filter `drive-<key>` when limits are set) and one device
//! per drive on its bus, with the controllers qm would add.

use std::collections::BTreeSet;

use hearth_core::propstr::PropertyString;
use hearth_core::storage::Format;

use super::{Builder, Chipset, CmdlineError, ResolvedDrive, Result, esc, path_arg};

/// SATA ports per AHCI controller.
const AHCI_PORTS: u32 = 6;

/// How a `cache=` mode maps onto the block layer and the guest's view of the write cache.
struct CacheMode {
    direct: bool,
    no_flush: bool,
    write_cache: bool,
}

fn cache_mode(mode: Option<&str>) -> CacheMode {
    let (direct, no_flush, write_cache) = match mode {
        Some("writeback") => (false, false, true),
        Some("writethrough") => (false, false, false),
        Some("directsync") => (true, false, false),
        Some("unsafe") => (false, true, true),
        // `none`, and qm's default when unset.
        _ => (true, false, true),
    };
    CacheMode { direct, no_flush, write_cache }
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// The protocol driver for a resolved volume.
pub(super) fn file_driver(drive: &ResolvedDrive) -> &'static str {
    if drive.block_device { "host_device" } else { "file" }
}

/// QEMU's format driver for an image format.
pub(super) fn image_format(key: &str, format: Format) -> Result<&'static str> {
    match format {
        Format::Raw => Ok("raw"),
        Format::Qcow2 => Ok("qcow2"),
        Format::Vmdk => Ok("vmdk"),
        Format::Subvol => Err(CmdlineError::new(key, "the volume is a subvolume, not a disk image")),
    }
}

/// Where a drive's data comes from.
struct Source {
    driver: &'static str,
    /// Escaped for an option list.
    path: String,
    format: &'static str,
}

impl Builder<'_> {
    pub(super) fn drives(&mut self) -> Result<()> {
        let mut controllers = BTreeSet::new();
        for key in self.drive_keys() {
            let drive = self.prop(&key).ok_or_else(|| CmdlineError::new(&key, "is not a drive property string"))?;
            self.drive(&key, &drive, &mut controllers)?;
        }
        Ok(())
    }

    fn drive(&mut self, key: &str, drive: &PropertyString, controllers: &mut BTreeSet<String>) -> Result<()> {
        let digits = key.bytes().rev().take_while(u8::is_ascii_digit).count();
        let (bus, index) = key.split_at(key.len() - digits);
        let index: u32 = index.parse().map_err(|_| CmdlineError::new(key, "is not an indexed drive key"))?;
        let cdrom = drive.get("media") == Some("cdrom");
        let file = drive.get("file").unwrap_or("none");
        let iothread = drive.flag("iothread") == Some(true);
        let ssd = drive.flag("ssd") == Some(true);
        if drive.flag("snapshot") == Some(true) {
            return Err(CmdlineError::new(key, "snapshot=1 (temporary snapshot mode) is not supported"));
        }
        if cdrom && bus == "virtio" {
            return Err(CmdlineError::new(key, "virtio drives cannot be CD-ROMs; use ide, sata or scsi"));
        }
        if !cdrom && matches!(file, "none" | "cdrom") {
            return Err(CmdlineError::new(key, format!("file={file} is only allowed with media=cdrom")));
        }
        if iothread && matches!(bus, "ide" | "sata") {
            return Err(CmdlineError::new(key, "iothread=1 is only supported on virtio and scsi drives"));
        }
        if drive.flag("ro") == Some(true) && !cdrom && matches!(bus, "ide" | "sata") {
            return Err(CmdlineError::new(
                key,
                "ro=1 needs a virtio or scsi disk; IDE and SATA disks cannot be read-only",
            ));
        }
        if ssd && bus == "virtio" {
            return Err(CmdlineError::new(key, "ssd=1 is not supported on virtio drives; use scsi, sata or ide"));
        }

        let cache = cache_mode(drive.get("cache"));
        let node = match file {
            "none" => None,
            "cdrom" => Some(Source { driver: "host_cdrom", path: "/dev/cdrom".into(), format: "raw" }),
            volume => {
                let resolved =
                    self.resolved.drives.get(key).ok_or_else(|| {
                        CmdlineError::new(key, format!("volume '{volume}' was not resolved to a path"))
                    })?;
                let format = image_format(key, resolved.format)?;
                if let Some(configured) = drive.get("format").filter(|f| *f != format) {
                    return Err(CmdlineError::new(
                        key,
                        format!("format={configured} is configured, but volume '{volume}' is {format}"),
                    ));
                }
                Some(Source { driver: file_driver(resolved), path: path_arg(key, &resolved.path)?, format })
            }
        };
        let node = match node {
            Some(source) => Some(self.blockdev(key, drive, &source, &cache, cdrom)?),
            None => None,
        };

        let kind = if cdrom { "cd" } else { "hd" };
        let mut device = match bus {
            "virtio" => {
                let mut device = format!("virtio-blk-pci,id={key}");
                if iothread {
                    self.push("-object", format!("iothread,id=iothread-{key}"));
                    device.push_str(&format!(",iothread=iothread-{key}"));
                }
                device
            }
            "scsi" => {
                let address = self.scsi_controller(key, index, iothread, controllers);
                format!("scsi-{kind},{address},id={key}")
            }
            "ide" => {
                let (mut controller, mut unit) = (index / 2, index % 2);
                // q35's IDE buses (on its AHCI) have one unit each; qm moves odd indexes up by
                // two so the even ones keep the addresses they always had.
                if self.chipset == Chipset::Q35 {
                    controller += 2 * unit;
                    unit = 0;
                }
                format!("ide-{kind},bus=ide.{controller},unit={unit},id={key}")
            }
            _ => {
                let controller = index / AHCI_PORTS;
                if controllers.insert(format!("ahci{controller}")) {
                    self.push("-device", format!("ahci,id=ahci{controller}"));
                }
                format!("ide-{kind},bus=ahci{controller}.{},id={key}", index % AHCI_PORTS)
            }
        };
        if let Some(node) = &node {
            device.push_str(&format!(",drive={node}"));
            if !cache.write_cache {
                device.push_str(",write-cache=off");
            }
            for (prop, qemu) in [("rerror", "rerror"), ("werror", "werror")] {
                if let Some(action) = drive.get(prop) {
                    device.push_str(&format!(",{qemu}={action}"));
                }
            }
        }
        if ssd && !cdrom {
            device.push_str(",rotation_rate=1");
        }
        if let Some(serial) = drive.get("serial") {
            device.push_str(&format!(",serial={}", esc(serial)));
        }
        device.push_str(&self.bootindex(key));
        self.push("-device", device);
        Ok(())
    }

    /// Adds the protocol, format and (with limits) throttle nodes; answers the top node's name.
    fn blockdev(
        &mut self,
        key: &str,
        drive: &PropertyString,
        source: &Source,
        cache: &CacheMode,
        cdrom: bool,
    ) -> Result<String> {
        let aio = drive.get("aio");
        if aio == Some("native") && !cache.direct {
            return Err(CmdlineError::new(key, "aio=native needs cache=none or cache=directsync (O_DIRECT)"));
        }
        let read_only = cdrom || drive.flag("ro") == Some(true);
        let discard = drive.get("discard") == Some("on");
        let mut common = format!(",cache.direct={},cache.no-flush={}", on_off(cache.direct), on_off(cache.no_flush));
        if read_only {
            common.push_str(",read-only=on");
        }
        if discard {
            common.push_str(",discard=unmap");
        }
        let Source { driver, path, format } = source;
        let aio = aio.map(|a| format!(",aio={a}")).unwrap_or_default();
        self.push("-blockdev", format!("driver={driver},node-name=file-{key},filename={path}{common}{aio}"));

        let limits = throttle_limits(drive);
        let top = format!("drive-{key}");
        let format_node = if limits.is_empty() { top.clone() } else { format!("fmt-{key}") };
        // qm's default detect_zeroes is on, as unmap when discards are passed down.
        let detect_zeroes = match (read_only, drive.flag("detect_zeroes"), discard) {
            (true, _, _) | (false, Some(false), _) => "",
            (false, _, true) => ",detect-zeroes=unmap",
            (false, _, false) => ",detect-zeroes=on",
        };
        self.push(
            "-blockdev",
            format!("driver={format},node-name={format_node},file=file-{key}{common}{detect_zeroes}"),
        );
        if !limits.is_empty() {
            self.push("-object", format!("throttle-group,id=throttle-{key}{limits}"));
            let read_only = if read_only { ",read-only=on" } else { "" };
            self.push(
                "-blockdev",
                format!("driver=throttle,node-name={top},throttle-group=throttle-{key},file={format_node}{read_only}"),
            );
        }
        Ok(top)
    }

    /// The SCSI controller for drive `index` (added on first use) and the device's address on it,
    /// numbered as qm numbers them: seven targets per LSI controller, one controller per disk for
    /// `virtio-scsi-single`, LUNs on one controller otherwise.
    fn scsi_controller(&mut self, key: &str, index: u32, iothread: bool, controllers: &mut BTreeSet<String>) -> String {
        let scsihw = self.text("scsihw").unwrap_or("lsi").to_owned();
        let single = scsihw == "virtio-scsi-single";
        let (per_controller, prefix) = match scsihw.as_str() {
            "virtio-scsi-single" => (1, "virtioscsi"),
            "lsi" | "lsi53c810" => (7, "scsihw"),
            _ => (256, "scsihw"),
        };
        let id = format!("{prefix}{}", index / per_controller);
        if iothread && !single {
            self.warn(key, "iothread=1 needs scsihw virtio-scsi-single, ignoring it");
        }
        if controllers.insert(id.clone()) {
            let model = match scsihw.as_str() {
                "lsi" => "lsi53c895a",
                "lsi53c810" => "lsi53c810",
                "megasas" => "megasas",
                "pvscsi" => "pvscsi",
                _ => "virtio-scsi-pci",
            };
            let mut controller = format!("{model},id={id}");
            if iothread && single {
                self.push("-object", format!("iothread,id=iothread-{key}"));
                controller.push_str(&format!(",iothread=iothread-{key}"));
            }
            self.push("-device", controller);
        }
        match scsihw.as_str() {
            "lsi" | "lsi53c810" | "pvscsi" => format!("bus={id}.0,scsi-id={}", index % per_controller),
            _ => format!("bus={id}.0,channel=0,scsi-id=0,lun={}", if single { 0 } else { index }),
        }
    }
}

/// `throttle-group` properties for the drive's limits, each as `,x-…=N`; empty without limits.
fn throttle_limits(drive: &PropertyString) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let mut out = String::new();
    for (prop, qemu, scale) in [
        ("mbps", "x-bps-total", MIB),
        ("mbps_rd", "x-bps-read", MIB),
        ("mbps_wr", "x-bps-write", MIB),
        ("iops", "x-iops-total", 1.0),
        ("iops_rd", "x-iops-read", 1.0),
        ("iops_wr", "x-iops-write", 1.0),
    ] {
        let value = drive.get(prop).and_then(|v| v.parse::<f64>().ok()).map(|v| (v * scale) as u64);
        if let Some(value) = value.filter(|v| *v > 0) {
            out.push_str(&format!(",{qemu}={value}"));
        }
    }
    out
}
