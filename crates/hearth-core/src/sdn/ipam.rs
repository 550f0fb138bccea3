//! Proxmox's built-in `pve` IPAM: which guest NIC holds which address of a subnet. hearthd
//! stores it as JSON under `var/lib/hearth/sdn/ipam.json`; this module only decides.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::{SdnConfig, SdnError, invalid};

/// One allocation: the address a guest NIC gets on a VNet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct IpamEntry {
    pub zone: String,
    pub vnet: String,
    pub subnet: String,
    pub ip: Ipv4Addr,
    /// Upper-case `AA:BB:CC:DD:EE:FF`.
    pub mac: String,
    pub vmid: u32,
    /// The NIC key, `net0`.
    pub nic: String,
}

/// Every allocation of the node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipam {
    #[serde(default)]
    pub entries: Vec<IpamEntry>,
}

impl Ipam {
    /// The entry of one guest NIC.
    pub fn find(&self, vmid: u32, nic: &str) -> Option<&IpamEntry> {
        self.entries.iter().find(|e| e.vmid == vmid && e.nic == nic)
    }

    /// Gives the NIC `nic` of guest `vmid` (MAC `mac`) an address on `vnet`: the one it has when
    /// it has one there already, else the first free address of the first DHCP range of the VNet's
    /// subnets. `None` when the VNet's zone does no IPAM with DHCP (nothing to allocate).
    pub fn allocate(
        &mut self,
        config: &SdnConfig,
        vnet: &str,
        vmid: u32,
        nic: &str,
        mac: &str,
    ) -> Result<Option<IpamEntry>, SdnError> {
        let Some(v) = config.vnets.get(vnet) else { return Ok(None) };
        let Some(zone) = config.zones.get(&v.zone) else { return Ok(None) };
        if zone.ipam.is_none() || zone.dhcp.is_none() {
            return Ok(None);
        }
        let mac = mac.to_ascii_uppercase();
        if let Some(e) = self.find(vmid, nic).filter(|e| e.vnet == vnet).cloned() {
            if e.mac != mac {
                self.entries.retain(|x| !(x.vmid == vmid && x.nic == nic));
                let updated = IpamEntry { mac, ..e };
                self.entries.push(updated.clone());
                return Ok(Some(updated));
            }
            return Ok(Some(e));
        }
        self.entries.retain(|e| !(e.vmid == vmid && e.nic == nic));
        let mut had_range = false;
        for (sid, cidr, subnet) in config.subnets_of(vnet) {
            for range in &subnet.dhcp_range {
                had_range = true;
                for n in u32::from(range.start)..=u32::from(range.end) {
                    let ip = Ipv4Addr::from(n);
                    if !cidr.is_host(ip) || subnet.gateway == Some(ip) || self.entries.iter().any(|e| e.ip == ip) {
                        continue;
                    }
                    let entry = IpamEntry {
                        zone: v.zone.clone(),
                        vnet: vnet.to_owned(),
                        subnet: sid.to_owned(),
                        ip,
                        mac,
                        vmid,
                        nic: nic.to_owned(),
                    };
                    self.entries.push(entry.clone());
                    return Ok(Some(entry));
                }
            }
        }
        if had_range {
            Err(invalid(format!("vnet {vnet}"), "no free address left in the DHCP ranges of its subnets"))
        } else {
            Ok(None)
        }
    }

    /// Frees the address of one NIC (`Some`) or of every NIC of the guest.
    pub fn free(&mut self, vmid: u32, nic: Option<&str>) -> Vec<IpamEntry> {
        let (gone, kept): (Vec<_>, Vec<_>) =
            self.entries.drain(..).partition(|e| e.vmid == vmid && nic.is_none_or(|n| e.nic == n));
        self.entries = kept;
        gone
    }
}
