//! SDN requests (`netctl sdn`): zones, VNets and subnets edited as pending changes, applied to
//! the node with an optional confirm deadline, and the `pve` IPAM's allocations. Node-local for
//! now; the REST routes are Proxmox's `/cluster/sdn/...`.

use serde::{Deserialize, Serialize};

/// Which SDN object a request edits or lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SdnObjectKind {
    Zone,
    Vnet,
    Subnet,
}

/// SDN configuration and its application.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, strum::VariantNames, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
pub enum SdnRequest {
    /// Lists the objects of a kind, pending (edited) or running (applied); only those of zones
    /// the caller may audit. SDN.Audit on `/sdn/zones/<zone>` per object.
    /// REST: `GET /cluster/sdn/{zones|vnets|subnets}[?running=1]`.
    List { kind: SdnObjectKind, running: bool },
    /// Adds an object to the pending configuration; `id` of a subnet is its CIDR.
    /// SDN.Allocate on `/sdn/zones/<zone>[/<vnet>]`. REST: `POST /cluster/sdn/{zones|vnets|subnets}`.
    Add { kind: SdnObjectKind, id: String, options: Vec<(String, String)> },
    /// Changes keys of a pending object and clears those in `delete`.
    /// SDN.Allocate on the object's zone. REST: `PUT /cluster/sdn/{zones|vnets|subnets}/{id}`.
    Set { kind: SdnObjectKind, id: String, options: Vec<(String, String)>, delete: Vec<String> },
    /// Removes a pending object nothing uses any more (zone without VNets, VNet without subnets
    /// or guest NICs). SDN.Allocate on the object's zone.
    /// REST: `DELETE /cluster/sdn/{zones|vnets|subnets}/{id}`.
    Delete { kind: SdnObjectKind, id: String },
    /// What applying would change. SDN.Audit on `/sdn`. REST: `GET /cluster/sdn/dry-run`.
    Pending,
    /// Applies the pending configuration to the node, all or nothing. With a confirm timeout
    /// (seconds, default 60, 0 = none) the previous state comes back unless `Confirm` arrives in
    /// time. SDN.Allocate on `/sdn`. REST: `PUT /cluster/sdn`.
    Apply { confirm_timeout: Option<u64> },
    /// Keeps an applied configuration that waits for confirmation. SDN.Allocate on `/sdn`.
    Confirm,
    /// Rolls back an unconfirmed apply now, and drops the pending edits.
    /// SDN.Allocate on `/sdn`. REST: `POST /cluster/sdn/rollback`.
    Revert,
    /// The `pve` IPAM's allocations: guest, NIC, MAC and IP. SDN.Audit on `/sdn/ipams/pve`.
    /// REST: `GET /cluster/sdn/ipams/pve/status`.
    IpamList,
}

/// One zone, VNet or subnet with its keys in file order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SdnObject {
    pub kind: SdnObjectKind,
    pub id: String,
    pub properties: Vec<(String, String)>,
    /// `new`, `changed` or `deleted` when the pending object differs from the running one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// One difference between the running and the pending SDN configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SdnChangeInfo {
    pub kind: SdnObjectKind,
    pub id: String,
    /// `new`, `changed` or `deleted`.
    pub state: String,
    pub running: Vec<String>,
    pub pending: Vec<String>,
}

/// One address of the `pve` IPAM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamInfo {
    pub zone: String,
    pub vnet: String,
    pub subnet: String,
    pub ip: String,
    pub mac: String,
    pub vmid: u32,
    pub nic: String,
}
