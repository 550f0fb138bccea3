//! Display, USB tablet, serial ports, the guest agent's channel and NICs.
//!
//! A NIC's bridge, VLAN tag, trunks, firewall and rate limit apply to its tap device and are
//! set up by the caller's network layer; `link_down=1` is applied after start with
//! [`crate::Qmp::set_link`]. Only what QEMU itself must know is here.

use super::{Builder, CmdlineError, Result, esc, socket_arg};

/// ISA serial ports a PC has (COM1–COM4).
const ISA_SERIAL_PORTS: u32 = 4;

impl Builder<'_> {
    /// The display adapter (`vga: [type=]<display>[,memory=][,clipboard=vnc]`) with VNC on
    /// `<run>/<vmid>.vnc`, or `-display none` for `vga: none` and `vga: serialN`; a USB tablet
    /// for absolute pointing when there is a display.
    pub(super) fn display_and_usb(&mut self) -> Result<()> {
        let vga = self.prop("vga");
        let kind = vga.as_ref().and_then(|p| p.get("type")).unwrap_or("std").to_owned();
        let memory = vga.as_ref().and_then(|p| p.get("memory")).map(str::to_owned);
        let clipboard = vga.as_ref().and_then(|p| p.get("clipboard")) == Some("vnc");
        let device = match kind.as_str() {
            "std" => Some("VGA"),
            "cirrus" => Some("cirrus-vga"),
            "vmware" => Some("vmware-svga"),
            // Multi-monitor SPICE layouts need SPICE; under VNC the first head is what shows.
            "qxl" | "qxl2" | "qxl3" | "qxl4" => Some("qxl-vga"),
            "virtio" => Some("virtio-vga"),
            "virtio-gl" => Some("virtio-vga-gl"),
            "none" => None,
            serial => {
                if !self.config.contains_key(serial) {
                    return Err(CmdlineError::new("vga", format!("{serial} needs {serial} to be configured")));
                }
                None
            }
        };
        let Some(device) = device else {
            if memory.is_some() {
                self.warn("vga", format!("memory has no effect with {kind}"));
            }
            self.push("-display", "none");
            return Ok(());
        };
        if self.flag("tablet", true) {
            self.push("-device", "qemu-xhci,id=xhci");
            self.push("-device", "usb-tablet,id=tablet,bus=xhci.0,port=1");
        }
        let mut device = format!("{device},id=vga");
        if let Some(mib) = &memory {
            // As qm: VGA memory for the std and VMware adapters, RAM and VRAM for QXL.
            match device.split(',').next() {
                Some("VGA" | "vmware-svga") => device.push_str(&format!(",vgamem_mb={mib}")),
                Some("qxl-vga") => {
                    let bytes = mib.parse::<u64>().unwrap_or(16) << 20;
                    device.push_str(&format!(",ram_size={},vram_size={}", bytes * 2, bytes));
                }
                _ => self.warn("vga", format!("memory has no effect with {kind}")),
            }
        }
        self.push("-device", device);
        let vnc = socket_arg("run_dir", &self.paths.vnc())?;
        self.push("-vnc", format!("unix:{vnc},password=off"));
        if clipboard {
            // The VNC clipboard goes through QEMU's own vdagent on a virtio-serial port.
            self.push("-chardev", "qemu-vdagent,id=vdagent,name=vdagent,clipboard=on");
            self.push("-device", "virtio-serial,id=vdagent-serial");
            self.push("-device", "virtserialport,bus=vdagent-serial.0,chardev=vdagent,name=com.redhat.spice.0");
        }
        Ok(())
    }

    /// `serialN: socket` on `<run>/<vmid>.serialN`, `serialN: /dev/ttyS0` passed through. Each
    /// port keeps its index (COM1 is always serial0) whichever others exist.
    pub(super) fn serial_ports(&mut self) -> Result<()> {
        for index in 0..ISA_SERIAL_PORTS {
            let key = format!("serial{index}");
            let Some(port) = self.text(&key).map(str::to_owned) else { continue };
            if port == "socket" {
                let path = socket_arg(&key, &self.paths.serial(index))?;
                self.push("-chardev", format!("socket,id={key},path={path},server=on,wait=off"));
            } else {
                self.push("-chardev", format!("serial,id={key},path={}", esc(&port)));
            }
            self.push("-device", format!("isa-serial,chardev={key},index={index}"));
        }
        Ok(())
    }

    /// `agent: 1`: the guest agent's channel on `<run>/<vmid>.qga`, a virtio-serial port (or an
    /// ISA serial port for `type=isa`).
    pub(super) fn agent(&mut self) -> Result<()> {
        let Some(agent) = self.prop("agent") else { return Ok(()) };
        if agent.flag("enabled") != Some(true) {
            return Ok(());
        }
        let path = socket_arg("agent", &self.paths.qga())?;
        self.push("-chardev", format!("socket,id=qga0,path={path},server=on,wait=off"));
        if agent.get("type") == Some("isa") {
            let index =
                (0..ISA_SERIAL_PORTS).find(|i| !self.config.contains_key(&format!("serial{i}"))).ok_or_else(|| {
                    CmdlineError::new("agent", "type=isa needs a free ISA serial port, but serial0 to serial3 are used")
                })?;
            self.push("-device", format!("isa-serial,chardev=qga0,index={index}"));
        } else {
            self.push("-device", "virtio-serial,id=qga0");
            self.push("-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0");
        }
        Ok(())
    }

    /// `netN`: a tap netdev on the resolved tap device and the NIC model's device.
    pub(super) fn nics(&mut self) -> Result<()> {
        for index in 0..=31 {
            let key = format!("net{index}");
            let Some(nic) = self.prop(&key) else { continue };
            let model = nic.get("model").unwrap_or("virtio");
            let virtio = model == "virtio";
            let mac = nic
                .get("macaddr")
                .ok_or_else(|| CmdlineError::new(&key, "no MAC address (hearthd assigns one when the NIC is added)"))?;
            let tap = self
                .resolved
                .taps
                .get(&key)
                .ok_or_else(|| CmdlineError::new(&key, "no tap device was resolved for this NIC"))?;
            let tap_ok = !tap.is_empty()
                && tap.len() <= 15
                && tap.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
            if !tap_ok {
                return Err(CmdlineError::new(
                    &key,
                    format!("invalid tap device name '{tap}': expected at most 15 letters, digits, '_', '-' or '.'"),
                ));
            }
            let queues: u32 = nic.get("queues").and_then(|q| q.parse().ok()).unwrap_or(0);
            let mut netdev = format!("tap,id={key},ifname={tap},script=no,downscript=no");
            let device_name = if virtio { "virtio-net-pci" } else { model };
            let mut device = format!("{device_name},mac={mac},netdev={key},id={key}");
            if virtio && self.kvm {
                netdev.push_str(",vhost=on");
            }
            if queues > 1 {
                if virtio {
                    netdev.push_str(&format!(",queues={queues}"));
                    device.push_str(&format!(",mq=on,vectors={}", 2 * queues + 2));
                } else {
                    self.warn(&key, format!("queues is only supported by virtio NICs, ignoring it for {model}"));
                }
            }
            match nic.get("mtu") {
                Some("1") => self.warn(&key, "mtu=1 (the bridge's MTU) is not known here; the guest keeps its default"),
                Some(mtu) if virtio => device.push_str(&format!(",host_mtu={mtu}")),
                Some(_) => self.warn(&key, format!("mtu is only supported by virtio NICs, ignoring it for {model}")),
                None => {}
            }
            device.push_str(&self.bootindex(&key));
            self.push("-netdev", netdev);
            self.push("-device", device);
        }
        Ok(())
    }
}
