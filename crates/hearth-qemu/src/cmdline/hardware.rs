//! The VM's identity and the smaller devices: `vmgenid`, `smbios1`, `rng0`, `watchdog`,
//! `audio0`, `ivshmem`, the TPM of `tpmstate0`, host devices (`usbN`, `hostpciN`,
//! `parallelN`), and the options that only change flags (`keyboard`, `startdate`, `freeze`,
//! `reboot`, `hugepages`, `arch`).
//!
//! Where Hearth differs from qm, and why:
//! - no SPICE: `audio0` with `driver=spice` (qm's default) and `usbN: spice` are refused with a
//!   message saying so, `spice_enhancements` is stored but has no effect;
//! - no resource mappings yet: `mapping=` of host devices and `virtiofsN` (whose `dirid` names
//!   a directory mapping) are refused at start;
//! - `hugepages: any` takes 2 MiB pages; the pages come from a hugetlbfs mounted at
//!   `/run/hugepages/kvm/<size>kB`, as on Proxmox, which the start checks for.

use super::{Builder, CmdlineError, Result, esc, path_arg, socket_arg};
use hearth_core::vm;

/// Where qm mounts hugetlbfs for each page size.
pub const HUGEPAGES_DIR: &str = "/run/hugepages/kvm";

impl Builder<'_> {
    /// Refuses what this builder cannot run: another architecture, virtiofs shares.
    pub(super) fn check_supported(&mut self) -> Result<()> {
        if self.text("arch") == Some("aarch64") {
            return Err(CmdlineError::new(
                "arch",
                "aarch64 guests need qemu-system-aarch64, which Hearth does not run (allowed: x86_64)",
            ));
        }
        for index in 0..=9 {
            let key = format!("virtiofs{index}");
            if self.config.contains_key(&key) {
                return Err(CmdlineError::new(
                    &key,
                    "virtiofs needs directory mappings (dirid=), which Hearth does not have yet; remove the key to start",
                ));
            }
        }
        if self.config.contains_key("spice_enhancements") {
            self.warn("spice_enhancements", "has no effect: Hearth's VMs have a VNC display, not SPICE");
        }
        Ok(())
    }

    /// `-k`, `-rtc base=` (`startdate` or `localtime`), `-S` for `freeze`, `-no-reboot`.
    pub(super) fn clock_and_flags(&mut self) -> Result<()> {
        if let Some(layout) = self.text("keyboard").map(str::to_owned) {
            self.push("-k", layout);
        }
        let windows = self.text("ostype").is_some_and(|os| os.starts_with('w'));
        match self.text("startdate").filter(|d| *d != "now").map(str::to_owned) {
            Some(date) => self.push("-rtc", format!("base={date}")),
            None if self.flag("localtime", windows) => self.push("-rtc", "base=localtime"),
            None => {}
        }
        if self.flag("freeze", false) {
            self.args.push("-S".into());
        }
        if !self.flag("reboot", true) {
            self.args.push("-no-reboot".into());
        }
        Ok(())
    }

    /// The memory backend for `hugepages` when there is no NUMA layout: one node holding all
    /// memory. Answers the backend's options for a given size, for NUMA nodes too.
    pub(super) fn hugepages_backend(&self) -> Option<String> {
        let size_kib = match self.text("hugepages")? {
            "1024" => 1024 * 1024,
            _ => 2048,
        };
        Some(format!("memory-backend-file,mem-path={HUGEPAGES_DIR}/{size_kib}kB,share=on,prealloc=yes"))
    }

    /// `vmgenid` (unless the all-zero UUID) and the SMBIOS type 1 table of `smbios1`.
    pub(super) fn identity(&mut self) -> Result<()> {
        if let Some(guid) = self.text("vmgenid").filter(|g| *g != vm::NO_VMGENID).map(str::to_owned) {
            if guid == "1" {
                return Err(CmdlineError::new("vmgenid", "1 asks hearthd for a UUID; set it with vmctl set"));
            }
            self.push("-device", format!("vmgenid,guid={guid},id=vmgenid0"));
        }
        let Some(smbios) = self.prop("smbios1") else { return Ok(()) };
        let encoded = smbios.flag("base64") == Some(true);
        let mut table = String::from("type=1");
        for (name, value) in smbios.entries().filter(|(n, _)| *n != "base64") {
            let value = if encoded && name != "uuid" {
                let bytes = base64_decode(value)
                    .ok_or_else(|| CmdlineError::new("smbios1", format!("{name}: '{value}' is not valid base64")))?;
                String::from_utf8(bytes)
                    .map_err(|_| CmdlineError::new("smbios1", format!("{name}: decoded value is not UTF-8")))?
            } else {
                value.to_owned()
            };
            table.push_str(&format!(",{name}={}", esc(&value)));
        }
        if table != "type=1" {
            self.push("-smbios", table);
        }
        Ok(())
    }

    /// `rng0`, `watchdog`, `audio0`, `ivshmem`.
    pub(super) fn small_devices(&mut self) -> Result<()> {
        if let Some(rng) = self.prop("rng0") {
            let source = rng.get("source").unwrap_or("/dev/urandom");
            // qm's defaults: 1024 bytes per 1000 ms; max_bytes=0 lifts the limit.
            let max_bytes: u64 = rng.get("max_bytes").and_then(|b| b.parse().ok()).unwrap_or(1024);
            let period = rng.get("period").unwrap_or("1000");
            self.push("-object", format!("rng-random,filename={},id=rng0", esc(source)));
            let mut device = "virtio-rng-pci,rng=rng0,id=rng0".to_owned();
            if max_bytes > 0 {
                device.push_str(&format!(",max-bytes={max_bytes},period={period}"));
            }
            self.push("-device", device);
        }
        if let Some(watchdog) = self.prop("watchdog") {
            let model = watchdog.get("model").unwrap_or("i6300esb").to_owned();
            self.push("-device", format!("{model},id=watchdog0"));
            if let Some(action) = watchdog.get("action").map(str::to_owned) {
                self.push("-watchdog-action", action);
            }
        }
        if let Some(audio) = self.prop("audio0") {
            if audio.get("driver").unwrap_or("spice") == "spice" {
                return Err(CmdlineError::new(
                    "audio0",
                    "driver=spice (the default) needs a SPICE display, which Hearth does not provide; set driver=none",
                ));
            }
            self.push("-audiodev", "none,id=audiodev0-backend");
            match audio.get("device").unwrap_or("ich9-intel-hda") {
                "AC97" => self.push("-device", "AC97,id=audiodev0,audiodev=audiodev0-backend"),
                hda => {
                    self.push("-device", format!("{hda},id=audiodev0"));
                    self.push(
                        "-device",
                        "hda-micro,id=audiodev0-codec0,bus=audiodev0.0,cad=0,audiodev=audiodev0-backend",
                    );
                    self.push(
                        "-device",
                        "hda-duplex,id=audiodev0-codec1,bus=audiodev0.0,cad=1,audiodev=audiodev0-backend",
                    );
                }
            }
        }
        if let Some(shm) = self.prop("ivshmem") {
            let size = shm.get("size").unwrap_or("1");
            let name = shm.get("name").map_or_else(|| self.vmid.to_string(), str::to_owned);
            self.push(
                "-object",
                format!(
                    "memory-backend-file,id=ivshmem,share=on,mem-path=/dev/shm/pve-shm-{},size={size}M",
                    esc(&name)
                ),
            );
            self.push("-device", "ivshmem-plain,memdev=ivshmem,id=ivshmem");
        }
        Ok(())
    }

    /// `tpmstate0`: QEMU talks to the swtpm the caller started on `<run>/<vmid>.swtpm`.
    pub(super) fn tpm(&mut self) -> Result<()> {
        if !self.config.contains_key("tpmstate0") {
            return Ok(());
        }
        if !self.resolved.drives.contains_key("tpmstate0") {
            return Err(CmdlineError::new("tpmstate0", "the TPM state volume was not resolved"));
        }
        let socket = socket_arg("tpmstate0", &self.paths.swtpm())?;
        self.push("-chardev", format!("socket,id=tpmchar,path={socket}"));
        self.push("-tpmdev", "emulator,id=tpmdev,chardev=tpmchar");
        self.push("-device", "tpm-tis,tpmdev=tpmdev");
        Ok(())
    }

    /// Host devices: USB (`usb-host`), PCI (`vfio-pci`), parallel ports.
    pub(super) fn host_devices(&mut self) -> Result<()> {
        let mut usb_controller = false;
        for index in 0..=14 {
            let key = format!("usb{index}");
            let Some(usb) = self.prop(&key) else { continue };
            if usb.get("mapping").is_some() {
                return Err(CmdlineError::new(&key, "resource mappings are not supported yet; give host= instead"));
            }
            let host = usb.get("host").ok_or_else(|| CmdlineError::new(&key, "no host device given (host=)"))?;
            if host == "spice" {
                return Err(CmdlineError::new(&key, "spice needs a SPICE display, which Hearth does not provide"));
            }
            if !usb_controller {
                self.push("-device", "qemu-xhci,p2=15,p3=15,id=xhci-host");
                usb_controller = true;
            }
            let device = match host.split_once(':') {
                Some((vendor, product)) => format!("vendorid=0x{vendor},productid=0x{product}"),
                None => {
                    let (bus, port) = host.split_once('-').unwrap_or((host, "1"));
                    format!("hostbus={bus},hostport={port}")
                }
            };
            self.push("-device", format!("usb-host,bus=xhci-host.0,{device},id={key}"));
        }
        for index in 0..=15 {
            let key = format!("hostpci{index}");
            let Some(pci) = self.prop(&key) else { continue };
            if pci.get("mapping").is_some() || pci.get("mdev").is_some() {
                return Err(CmdlineError::new(
                    &key,
                    "resource mappings and mediated devices are not supported yet; give host= instead",
                ));
            }
            if pci.flag("pcie") == Some(true) && self.chipset != super::Chipset::Q35 {
                return Err(CmdlineError::new(&key, "pcie=1 needs machine q35"));
            }
            let hosts = pci.get("host").ok_or_else(|| CmdlineError::new(&key, "no host device given (host=)"))?;
            for (function, host) in hosts.split(';').enumerate() {
                let host = if host.matches(':').count() == 1 { format!("0000:{host}") } else { host.to_owned() };
                let host = if host.contains('.') { host } else { format!("{host}.0") };
                let mut device = format!("vfio-pci,host={host},id={key}.{function}");
                if pci.flag("x-vga") == Some(true) && function == 0 {
                    device.push_str(",x-vga=on");
                }
                if pci.flag("rombar") == Some(false) {
                    device.push_str(",rombar=0");
                }
                if let Some(romfile) = pci.get("romfile") {
                    device.push_str(&format!(",romfile=/usr/share/kvm/{romfile}"));
                }
                for (prop, qemu) in [
                    ("vendor-id", "x-pci-vendor-id"),
                    ("device-id", "x-pci-device-id"),
                    ("sub-vendor-id", "x-pci-sub-vendor-id"),
                    ("sub-device-id", "x-pci-sub-device-id"),
                ] {
                    if let Some(id) = pci.get(prop) {
                        device.push_str(&format!(",{qemu}={id}"));
                    }
                }
                device.push_str(&self.bootindex(&key));
                self.push("-device", device);
            }
        }
        for index in 0..=2 {
            let key = format!("parallel{index}");
            let Some(port) = self.text(&key).map(str::to_owned) else { continue };
            let path = path_arg(&key, std::path::Path::new(&port))?;
            self.push("-chardev", format!("parallel,id={key},path={path}"));
            self.push("-device", format!("isa-parallel,chardev={key},id={key}"));
        }
        Ok(())
    }
}

/// Decodes standard base64 (padding optional); `None` for anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let digits = text.trim_end_matches('=').as_bytes();
    if digits.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64() {
        assert_eq!(super::base64_decode("SGVhcnRo").as_deref(), Some(&b"Hearth"[..]));
        assert_eq!(super::base64_decode("SGVhcnRoIQ==").as_deref(), Some(&b"Hearth!"[..]));
        assert_eq!(super::base64_decode("SGVhcnRoIQ").as_deref(), Some(&b"Hearth!"[..]));
        assert_eq!(super::base64_decode("a"), None);
        assert_eq!(super::base64_decode("a*bc"), None);
    }
}
