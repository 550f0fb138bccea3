//! SDN on this node: the pending and the running configuration under `etc/hearth/sdn/`, edits
//! checked against each other and against the host's interfaces and guests, `apply` with a
//! confirm deadline (the previous state comes back unless `confirm` arrives in time, also
//! across a hearthd restart), one dnsmasq per DHCP zone started, stopped and watched by
//! hearthd, and the `pve` IPAM (`var/lib/hearth/sdn/ipam.json`) that gives guest NICs their
//! addresses when they start.
//!
//! Files: `etc/hearth/sdn/sdn.toml` (pending: what edits change), `.running-config.toml` (what
//! the node runs), `.previous-config.toml` (while an apply waits for confirmation: what a
//! rollback restores). The running configuration is the one guests and IPAM go by.

mod apply;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use hearth_core::access::Privilege as P;
use hearth_core::sdn::{self, Ipam, SdnConfig, SdnError, SdnKind};
use hearth_core::{GuestKind, Value, Vmid};
use hearth_proto::{ErrorKind, ErrorReply, IpamInfo, Payload, SdnChangeInfo, SdnObject, SdnObjectKind, SdnRequest};

use crate::Daemon;
use crate::access::{Caller, Need, anyone, on};
use crate::store::write_atomic;

/// How long an apply waits for `confirm` unless told otherwise.
pub const DEFAULT_CONFIRM_TIMEOUT: u64 = 60;

/// The SDN state of one hearthd: the lock that serialises edits and applies, and the apply
/// that waits for confirmation.
#[derive(Debug, Default)]
pub struct SdnState {
    lock: Mutex<()>,
    /// The generation of the apply waiting for confirmation, and its deadline.
    unconfirmed: Mutex<Option<(u64, Instant)>>,
    generation: Mutex<u64>,
}

/// VNet → zone of the configurations hearthd last read, for the permission table, which sees
/// requests but not the daemon: attaching a NIC to a VNet needs SDN.Use on its zone's path.
static VNET_ZONES: RwLock<BTreeMap<String, String>> = RwLock::new(BTreeMap::new());

/// Replaces what the permission table knows with the VNets of `configs` (the running and the
/// pending configuration, in that order): a VNet gone from both no longer decides the path of a
/// bridge of its name.
fn remember_vnets(configs: &[&SdnConfig]) {
    let mut map = VNET_ZONES.write().unwrap_or_else(|p| p.into_inner());
    map.clear();
    for config in configs {
        for (vnet, v) in &config.vnets {
            map.insert(vnet.clone(), v.zone.clone());
        }
    }
}

/// The zone of a VNet hearthd knows, if `bridge` is one.
pub fn vnet_zone(bridge: &str) -> Option<String> {
    VNET_ZONES.read().unwrap_or_else(|p| p.into_inner()).get(bridge).cloned()
}

/// The ACL path a NIC on `bridge` (with VLAN `tag`) needs SDN.Use on: `/sdn/zones/<zone>/<vnet>`
/// for a VNet (with `/<tag>` when tagged), `/sdn/zones/localnetwork/<bridge>` for a local bridge.
pub fn nic_path(bridge: &str, tag: Option<&str>) -> String {
    match vnet_zone(bridge) {
        Some(zone) => match tag {
            Some(tag) => format!("/sdn/zones/{zone}/{bridge}/{tag}"),
            None => format!("/sdn/zones/{zone}/{bridge}"),
        },
        None => crate::referenced::bridge_path(bridge),
    }
}

fn kind_of(kind: SdnObjectKind) -> SdnKind {
    match kind {
        SdnObjectKind::Zone => SdnKind::Zone,
        SdnObjectKind::Vnet => SdnKind::Vnet,
        SdnObjectKind::Subnet => SdnKind::Subnet,
    }
}

fn wire_kind(kind: SdnKind) -> SdnObjectKind {
    match kind {
        SdnKind::Zone => SdnObjectKind::Zone,
        SdnKind::Vnet => SdnObjectKind::Vnet,
        SdnKind::Subnet => SdnObjectKind::Subnet,
    }
}

/// The path an edit of an object needs SDN.Allocate on: its zone, and its VNet below that.
fn object_path(kind: SdnObjectKind, id: &str, options: &[(String, String)]) -> String {
    let option = |key: &str| options.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let vnet_path = |vnet: &str| match vnet_zone(vnet) {
        Some(zone) => format!("/sdn/zones/{zone}/{vnet}"),
        None => "/sdn/zones".to_owned(),
    };
    match kind {
        SdnObjectKind::Zone => format!("/sdn/zones/{id}"),
        SdnObjectKind::Vnet => match option("zone") {
            Some(zone) => format!("/sdn/zones/{zone}/{id}"),
            None => vnet_path(id),
        },
        SdnObjectKind::Subnet => match option("vnet") {
            Some(vnet) => vnet_path(&vnet),
            // `<zone>-<net>-<len>` names its zone.
            None => match sdn::parse_subnet_id(id) {
                Ok((zone, _)) => format!("/sdn/zones/{zone}"),
                Err(_) => "/sdn/zones".to_owned(),
            },
        },
    }
}

/// What an SDN request needs (the permission table's SDN rows).
pub fn required(request: &SdnRequest) -> Need {
    match request {
        // Answered for everyone with the objects of the zones the caller may audit.
        SdnRequest::List { .. } => anyone("/sdn"),
        SdnRequest::Add { kind, id, options } => on(object_path(*kind, id, options), P::SdnAllocate),
        SdnRequest::Set { kind, id, options, .. } => on(object_path(*kind, id, options), P::SdnAllocate),
        SdnRequest::Delete { kind, id } => on(object_path(*kind, id, &[]), P::SdnAllocate),
        SdnRequest::Pending => on("/sdn", P::SdnAudit),
        SdnRequest::Apply { .. } | SdnRequest::Confirm | SdnRequest::Revert => on("/sdn", P::SdnAllocate),
        SdnRequest::IpamList => on("/sdn/ipams/pve", P::SdnAudit),
    }
}

fn reply(e: SdnError) -> ErrorReply {
    let kind = match e {
        SdnError::Invalid { .. } => ErrorKind::Invalid,
        SdnError::NotFound { .. } => ErrorKind::NotFound,
        SdnError::Exists { .. } | SdnError::InUse { .. } => ErrorKind::Conflict,
    };
    ErrorReply::new(kind, e.to_string())
}

fn internal(message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(ErrorKind::Internal, message)
}

pub(crate) fn dir(root: &Path) -> PathBuf {
    root.join("etc/hearth/sdn")
}

fn pending_file(root: &Path) -> PathBuf {
    dir(root).join("sdn.toml")
}

fn running_file(root: &Path) -> PathBuf {
    dir(root).join(".running-config.toml")
}

fn previous_file(root: &Path) -> PathBuf {
    dir(root).join(".previous-config.toml")
}

/// Exists only while an apply changes the host: the configuration being applied.
fn applying_file(root: &Path) -> PathBuf {
    dir(root).join(".applying-config.toml")
}

pub(crate) fn state_dir(root: &Path) -> PathBuf {
    root.join("var/lib/hearth/sdn")
}

fn ipam_file(root: &Path) -> PathBuf {
    state_dir(root).join("ipam.json")
}

fn read_config(path: &Path) -> Result<Option<SdnConfig>, ErrorReply> {
    match std::fs::read_to_string(path) {
        Ok(text) => SdnConfig::from_toml(&text).map(Some).map_err(|e| internal(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(internal(format!("reading {}: {e}", path.display()))),
    }
}

fn write_config(path: &Path, config: &SdnConfig) -> Result<(), ErrorReply> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| internal(format!("creating {}: {e}", parent.display())))?;
    }
    write_atomic(path, config.to_toml().as_bytes()).map_err(|e| internal(e.to_string()))
}

/// The running configuration (empty when nothing was ever applied).
pub(crate) fn running(root: &Path) -> Result<SdnConfig, ErrorReply> {
    Ok(read_config(&running_file(root))?.unwrap_or_default())
}

/// The pending configuration: the edited one, else the running one.
fn pending(root: &Path) -> Result<SdnConfig, ErrorReply> {
    match read_config(&pending_file(root))? {
        Some(c) => Ok(c),
        None => running(root),
    }
}

/// Tells the permission table the VNets of the running and the pending configuration, after
/// either changed.
fn refresh_vnets(root: &Path) -> Result<(), ErrorReply> {
    remember_vnets(&[&running(root)?, &pending(root)?]);
    Ok(())
}

/// Interface names of this host that SDN did not create (a VNet may not take one).
fn host_interfaces(running: &SdnConfig) -> Vec<String> {
    let ours: Vec<String> = running.vnets.keys().flat_map(|v| [v.clone(), format!("vxlan_{v}")]).collect();
    // Through netlink rather than /sys/class/net: that shows the namespace sysfs was mounted in,
    // which need not be hearthd's (`hearthd --netns`).
    let links = hearth_net::Netlink::open().and_then(|mut nl| nl.links()).unwrap_or_default();
    links.into_iter().map(|l| l.name).filter(|n| !ours.contains(n)).collect()
}

/// Guest NICs on bridges: (bridge, "VM 100 (net0)"), from every guest's current and pending
/// configuration.
fn nic_users(daemon: &Daemon) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for kind in [GuestKind::Vm, GuestKind::Ct] {
        let Ok(listed) = daemon.store.list(kind) else { continue };
        for guest in listed {
            let Ok(config) = guest.config.as_ref() else { continue };
            let label = if kind == GuestKind::Vm { "VM" } else { "CT" };
            for section in [&config.current, &config.pending.values] {
                for (key, value) in section {
                    if let Some(nic) = parse_nic(kind, key, value) {
                        out.push((nic.bridge, format!("{label} {} ({key})", guest.vmid)));
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A guest NIC: its bridge and MAC.
struct Nic {
    bridge: String,
    mac: Option<String>,
}

fn parse_nic(kind: GuestKind, key: &str, value: &Value) -> Option<Nic> {
    let index = key.strip_prefix("net")?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let props = kind.schema().property(key, value)?;
    let bridge = props.get("bridge")?.to_owned();
    let is_mac = |v: &str| v.len() == 17 && v.split(':').count() == 6;
    let mac = props
        .get("hwaddr")
        .or_else(|| props.get("macaddr"))
        .or_else(|| props.entries().map(|(_, v)| v).find(|v| is_mac(v)))
        .map(str::to_owned);
    Some(Nic { bridge, mac })
}

/// Answers one SDN request.
pub fn handle(daemon: &Arc<Daemon>, caller: &Caller, request: SdnRequest) -> Result<Payload, ErrorReply> {
    let root = daemon.root.as_path();
    match request {
        SdnRequest::List { kind, running: want_running } => {
            let config = if want_running { running(root)? } else { pending(root)? };
            let changes = sdn::diff(&running(root)?, &config);
            let kind = kind_of(kind);
            let mut objects = Vec::new();
            for (k, id, props) in config.objects().into_iter().filter(|(k, _, _)| *k == kind) {
                let zone = config.zone_of(k, &id).unwrap_or_default();
                if crate::access::authorize(&daemon.access, caller, &[on(format!("/sdn/zones/{zone}"), P::SdnAudit)])
                    .is_err()
                {
                    continue;
                }
                let state = changes.iter().find(|c| c.kind == k && c.id == id).map(|c| c.state.clone());
                let properties = props.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                objects.push(SdnObject { kind: wire_kind(k), id, properties, state: state.filter(|_| !want_running) });
            }
            Ok(Payload::SdnObjects(objects))
        }
        SdnRequest::Add { kind, id, options } => edit(daemon, |config, _| config.add(kind_of(kind), &id, &options)),
        SdnRequest::Set { kind, id, options, delete } => {
            edit(daemon, |config, _| config.set(kind_of(kind), &id, &options, &delete))
        }
        SdnRequest::Delete { kind, id } => {
            let users = nic_users(daemon);
            edit(daemon, |config, _| config.delete(kind_of(kind), &id, &users))
        }
        SdnRequest::Pending => {
            let changes = sdn::diff(&running(root)?, &pending(root)?);
            Ok(Payload::SdnChanges(
                changes
                    .into_iter()
                    .map(|c| SdnChangeInfo {
                        kind: wire_kind(c.kind),
                        id: c.id,
                        state: c.state,
                        running: c.running,
                        pending: c.pending,
                    })
                    .collect(),
            ))
        }
        SdnRequest::Apply { confirm_timeout } => {
            apply_pending(daemon, confirm_timeout.unwrap_or(DEFAULT_CONFIRM_TIMEOUT)).map(Payload::Text)
        }
        SdnRequest::Confirm => confirm(daemon).map(Payload::Text),
        SdnRequest::Revert => revert(daemon).map(Payload::Text),
        SdnRequest::IpamList => {
            let ipam = load_ipam(root)?;
            Ok(Payload::Ipam(
                ipam.entries
                    .into_iter()
                    .map(|e| IpamInfo {
                        zone: e.zone,
                        vnet: e.vnet,
                        subnet: e.subnet,
                        ip: e.ip.to_string(),
                        mac: e.mac,
                        vmid: e.vmid,
                        nic: e.nic,
                    })
                    .collect(),
            ))
        }
    }
}

/// One edit of the pending configuration: all of it is checked before anything is written.
fn edit(
    daemon: &Daemon,
    change: impl FnOnce(&mut SdnConfig, &SdnConfig) -> Result<String, SdnError>,
) -> Result<Payload, ErrorReply> {
    let root = daemon.root.as_path();
    let _held = daemon.sdn.lock.lock().unwrap_or_else(|p| p.into_inner());
    let running = running(root)?;
    let mut config = pending(root)?;
    let id = change(&mut config, &running).map_err(reply)?;
    config.validate(&host_interfaces(&running)).map_err(reply)?;
    write_config(&pending_file(root), &config)?;
    refresh_vnets(root)?;
    Ok(Payload::Text(id))
}

fn plan(daemon: &Daemon, config: &SdnConfig) -> Result<sdn::NodePlan, ErrorReply> {
    sdn::node_plan(config, &daemon.node, &apply::underlay()).map_err(reply)
}

/// Applies the pending configuration; with `timeout` > 0 it is rolled back unless confirmed.
fn apply_pending(daemon: &Arc<Daemon>, timeout: u64) -> Result<String, ErrorReply> {
    let root = daemon.root.as_path();
    let _held = daemon.sdn.lock.lock().unwrap_or_else(|p| p.into_inner());
    if daemon.sdn.unconfirmed.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
        return Err(ErrorReply::new(
            ErrorKind::Conflict,
            "an applied SDN configuration waits for confirmation: run netctl sdn confirm or netctl sdn revert first",
        ));
    }
    let old = running(root)?;
    let new = pending(root)?;
    new.validate(&host_interfaces(&old)).map_err(reply)?;
    let old_plan = plan(daemon, &old).unwrap_or_default();
    let new_plan = plan(daemon, &new)?;
    let ipam = load_ipam(root)?;
    // The journal: if hearthd dies half-way, its next start finds what was being applied.
    write_config(&applying_file(root), &new)?;
    if let Err(e) = apply::transition(root, &old_plan, &new_plan, &ipam.entries) {
        let _ = std::fs::remove_file(applying_file(root));
        return Err(ErrorReply::new(ErrorKind::Unavailable, format!("SDN apply failed, nothing changed: {e}")));
    }
    if timeout > 0 {
        write_config(&previous_file(root), &old)?;
    }
    write_config(&running_file(root), &new)?;
    let _ = std::fs::remove_file(applying_file(root));
    let _ = std::fs::remove_file(pending_file(root));
    refresh_vnets(root)?;
    if timeout == 0 {
        return Ok("SDN configuration applied".to_owned());
    }
    let generation = {
        let mut g = daemon.sdn.generation.lock().unwrap_or_else(|p| p.into_inner());
        *g += 1;
        *g
    };
    *daemon.sdn.unconfirmed.lock().unwrap_or_else(|p| p.into_inner()) =
        Some((generation, Instant::now() + Duration::from_secs(timeout)));
    let weak = Arc::downgrade(daemon);
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(timeout));
        if let Some(daemon) = weak.upgrade() {
            let _held = daemon.sdn.lock.lock().unwrap_or_else(|p| p.into_inner());
            let due =
                daemon.sdn.unconfirmed.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|(g, _)| g == generation);
            if due {
                match roll_back(&daemon) {
                    Ok(()) => {
                        tracing::warn!("SDN apply not confirmed within {timeout} s: previous configuration restored")
                    }
                    Err(e) => tracing::error!("SDN rollback after an unconfirmed apply failed: {}", e.message),
                }
            }
        }
    });
    Ok(format!("SDN configuration applied; confirm within {timeout} s with 'netctl sdn confirm' or it is rolled back"))
}

/// Restores the configuration an unconfirmed apply replaced; the caller holds the SDN lock.
fn roll_back(daemon: &Daemon) -> Result<(), ErrorReply> {
    let root = daemon.root.as_path();
    let Some(previous) = read_config(&previous_file(root))? else {
        *daemon.sdn.unconfirmed.lock().unwrap_or_else(|p| p.into_inner()) = None;
        return Ok(());
    };
    let current = running(root)?;
    let from = plan(daemon, &current).unwrap_or_default();
    let to = plan(daemon, &previous).unwrap_or_default();
    let ipam = load_ipam(root)?;
    apply::transition(root, &from, &to, &ipam.entries).map_err(|e| internal(format!("rolling back: {e}")))?;
    write_config(&running_file(root), &previous)?;
    // The configuration that was not confirmed stays as the pending one, to fix and apply again.
    if !pending_file(root).exists() {
        write_config(&pending_file(root), &current)?;
    }
    let _ = std::fs::remove_file(previous_file(root));
    *daemon.sdn.unconfirmed.lock().unwrap_or_else(|p| p.into_inner()) = None;
    refresh_vnets(root)
}

fn confirm(daemon: &Daemon) -> Result<String, ErrorReply> {
    let _held = daemon.sdn.lock.lock().unwrap_or_else(|p| p.into_inner());
    let mut unconfirmed = daemon.sdn.unconfirmed.lock().unwrap_or_else(|p| p.into_inner());
    if unconfirmed.take().is_none() {
        return Err(ErrorReply::new(ErrorKind::Conflict, "no applied SDN configuration waits for confirmation"));
    }
    let _ = std::fs::remove_file(previous_file(&daemon.root));
    Ok("SDN configuration confirmed".to_owned())
}

fn revert(daemon: &Daemon) -> Result<String, ErrorReply> {
    let _held = daemon.sdn.lock.lock().unwrap_or_else(|p| p.into_inner());
    let waiting = daemon.sdn.unconfirmed.lock().unwrap_or_else(|p| p.into_inner()).is_some();
    if waiting {
        roll_back(daemon)?;
    }
    let _ = std::fs::remove_file(pending_file(&daemon.root));
    refresh_vnets(&daemon.root)?;
    Ok(if waiting {
        "unconfirmed SDN apply rolled back; pending changes dropped".to_owned()
    } else {
        "pending SDN changes dropped".to_owned()
    })
}

fn load_ipam(root: &Path) -> Result<Ipam, ErrorReply> {
    match std::fs::read(ipam_file(root)) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| internal(format!("reading the IPAM: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ipam::default()),
        Err(e) => Err(internal(format!("reading the IPAM: {e}"))),
    }
}

fn save_ipam(root: &Path, ipam: &Ipam) -> Result<(), ErrorReply> {
    let dir = state_dir(root);
    std::fs::create_dir_all(&dir).map_err(|e| internal(format!("creating {}: {e}", dir.display())))?;
    let bytes = serde_json::to_vec_pretty(ipam).map_err(|e| internal(e.to_string()))?;
    write_atomic(&ipam_file(root), &bytes).map_err(|e| internal(e.to_string()))
}

/// Before a guest starts: every NIC on a VNet with DHCP gets its IPAM address, and the zone's
/// dnsmasq learns the MAC↔IP mapping.
pub(crate) fn guest_starting(
    daemon: &Daemon,
    kind: GuestKind,
    vmid: Vmid,
    settings: &hearth_core::guest::Section,
) -> Result<(), ErrorReply> {
    let root = daemon.root.as_path();
    let running = running(root)?;
    if running.vnets.is_empty() {
        return Ok(());
    }
    let _held = daemon.sdn.lock.lock().unwrap_or_else(|p| p.into_inner());
    let mut ipam = load_ipam(root)?;
    let before = ipam.clone();
    for (key, value) in settings {
        let Some(nic) = parse_nic(kind, key, value) else { continue };
        if !running.vnets.contains_key(&nic.bridge) {
            continue;
        }
        let Some(mac) = nic.mac else { continue };
        ipam.allocate(&running, &nic.bridge, vmid.get(), key, &mac).map_err(reply)?;
    }
    // NICs that are gone or left the VNet give their address back.
    ipam.entries.retain(|e| {
        e.vmid != vmid.get()
            || settings.get(&e.nic).and_then(|v| parse_nic(kind, &e.nic, v)).is_some_and(|n| n.bridge == e.vnet)
    });
    if ipam != before {
        save_ipam(root, &ipam)?;
        apply::refresh_ethers(root, &ipam.entries).map_err(internal)?;
    }
    Ok(())
}

/// After a guest started: its ports on VNets with `isolate-ports` are isolated from each other
/// (`bridge link set dev <port> isolated on`), as Proxmox's tap_plug does for such VNets.
pub(crate) fn guest_started(
    daemon: &Daemon,
    kind: GuestKind,
    vmid: Vmid,
    settings: &hearth_core::guest::Section,
    log: &dyn Fn(String),
) {
    let Ok(running) = running(&daemon.root) else { return };
    for (key, value) in settings {
        let Some(nic) = parse_nic(kind, key, value) else { continue };
        if !running.vnets.get(&nic.bridge).is_some_and(|v| v.isolate_ports) {
            continue;
        }
        let index = key.trim_start_matches("net");
        let port = match kind {
            GuestKind::Vm => format!("tap{vmid}i{index}"),
            GuestKind::Ct => format!("veth{vmid}i{index}"),
        };
        if let Err(e) = apply::isolate_port(&port) {
            log(format!("WARN: {key}: isolating {port} on VNet {}: {e}", nic.bridge));
        }
    }
}

/// After a guest's NICs were added, changed or removed (create, set): addresses are allocated
/// for NICs that joined a VNet with DHCP and given back for NICs that left, as Proxmox's IPAM
/// does when a NIC is added or removed. A failure (no free address) is logged; the guest's start
/// reports it again and refuses to start.
pub(crate) fn guest_nics_changed(daemon: &Daemon, kind: GuestKind, vmid: Vmid) {
    let Ok(loaded) = daemon.store.load(kind, vmid) else { return };
    let config = loaded.config;
    let mut section = config.current.clone();
    section.retain(|key, _| !config.pending.delete.contains(key));
    section.extend(config.pending.values.clone());
    if let Err(e) = guest_starting(daemon, kind, vmid, &section) {
        tracing::warn!("IPAM for {} {vmid}: {}", kind.noun(), e.message);
    }
}

/// After a guest is destroyed: its addresses go back to the IPAM.
pub(crate) fn guest_destroyed(daemon: &Daemon, vmid: Vmid) {
    let root = daemon.root.as_path();
    let _held = daemon.sdn.lock.lock().unwrap_or_else(|p| p.into_inner());
    let Ok(mut ipam) = load_ipam(root) else { return };
    if ipam.free(vmid.get(), None).is_empty() {
        return;
    }
    if let Err(e) = save_ipam(root, &ipam) {
        tracing::warn!("freeing the IPAM addresses of {vmid}: {}", e.message);
    }
    if let Err(e) = apply::refresh_ethers(root, &ipam.entries) {
        tracing::warn!("updating dnsmasq after freeing the addresses of {vmid}: {e}");
    }
}

/// At daemon start: finishes the rollback of an apply that was never confirmed (hearthd stopped
/// while it waited), then watches the DHCP servers of the running configuration, restarting
/// any that died.
pub(crate) fn resume(daemon: &Arc<Daemon>) {
    // An apply that hearthd did not live to finish: whatever of it is there goes, and the running
    // configuration is built again from scratch.
    if let Ok(Some(applying)) = read_config(&applying_file(&daemon.root)) {
        let _held = daemon.sdn.lock.lock().unwrap_or_else(|p| p.into_inner());
        let running = running(&daemon.root).unwrap_or_default();
        let half = plan(daemon, &applying).unwrap_or_default();
        let whole = plan(daemon, &running).unwrap_or_default();
        let ipam = load_ipam(&daemon.root).unwrap_or_default();
        match apply::rebuild(&daemon.root, &[&half, &whole], &whole, &ipam.entries) {
            Ok(()) => tracing::warn!("an SDN apply was interrupted: the running configuration was restored"),
            Err(e) => tracing::error!("restoring the SDN configuration after an interrupted apply: {e}"),
        }
        let _ = std::fs::remove_file(applying_file(&daemon.root));
    }
    // The permission table learns which zone each VNet is in before the first request.
    if let Err(e) = refresh_vnets(&daemon.root) {
        tracing::error!("reading the SDN configuration: {}", e.message);
    }
    if previous_file(&daemon.root).exists() {
        let _held = daemon.sdn.lock.lock().unwrap_or_else(|p| p.into_inner());
        match roll_back(daemon) {
            Ok(()) => tracing::warn!("an SDN apply was not confirmed before hearthd stopped: rolled back"),
            Err(e) => tracing::error!("rolling back an unconfirmed SDN apply: {}", e.message),
        }
    }
    let weak: Weak<Daemon> = Arc::downgrade(daemon);
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_secs(2));
            let Some(daemon) = weak.upgrade() else { return };
            let Ok(_held) = daemon.sdn.lock.try_lock() else { continue };
            let Ok(config) = running(&daemon.root) else { continue };
            if config.zones.values().all(|z| z.dhcp.is_none()) {
                continue;
            }
            let Ok(plan) = plan(&daemon, &config) else { continue };
            for zone in &plan.dhcp {
                if !apply::dnsmasq_running(&daemon.root, &zone.zone) {
                    match apply::start_dnsmasq(&daemon.root, &zone.zone) {
                        Ok(()) => tracing::warn!("dnsmasq of SDN zone {} had stopped: restarted", zone.zone),
                        Err(e) => tracing::error!("restarting dnsmasq of SDN zone {}: {e}", zone.zone),
                    }
                }
            }
        }
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use hearth_proto::{CtRequest, Request, SetGuest, VmRequest};

    use super::*;

    /// The tests that fill the VNet map one at a time: it is the process's.
    static MAP: Mutex<()> = Mutex::new(());

    fn set(key: &str, value: &str) -> SetGuest {
        SetGuest {
            vmid: Vmid::new(100).unwrap(),
            options: vec![(key.to_owned(), value.to_owned())],
            delete: vec![],
            revert: vec![],
            digest: None,
        }
    }

    fn needs(request: &Request) -> Vec<String> {
        let caller = Caller { uid: 1000, userid: "alice@pam".into(), token: None };
        crate::access::required(request, "node1", &caller).iter().map(Need::describe).collect()
    }

    #[test]
    fn a_nic_on_a_vnet_needs_sdn_use_on_the_vnet_in_its_zone() {
        let _one = MAP.lock().unwrap_or_else(|p| p.into_inner());
        let mut config = SdnConfig::default();
        let opts = |l: &[(&str, &str)]| l.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<Vec<_>>();
        config.add(SdnKind::Zone, "zuse", &opts(&[("type", "simple")])).unwrap();
        config.add(SdnKind::Vnet, "vnuse1", &opts(&[("zone", "zuse")])).unwrap();
        remember_vnets(&[&config]);
        let ct = Request::Ct(CtRequest::Set(set("net0", "name=eth0,bridge=vnuse1,ip=dhcp")));
        assert!(needs(&ct).contains(&"SDN.Use on /sdn/zones/zuse/vnuse1".to_owned()), "{:?}", needs(&ct));
        let vm = Request::Vm(VmRequest::Set(set("net0", "virtio,bridge=vnuse1,tag=5")));
        assert!(needs(&vm).contains(&"SDN.Use on /sdn/zones/zuse/vnuse1/5".to_owned()), "{:?}", needs(&vm));
        // A plain bridge stays in the local network zone.
        let local = Request::Vm(VmRequest::Set(set("net0", "virtio,bridge=vmbr7")));
        assert!(needs(&local).contains(&"SDN.Use on /sdn/zones/localnetwork/vmbr7".to_owned()));
        // Edits of a VNet and of its subnets need SDN.Allocate on the VNet in its zone.
        let edit = Request::Sdn(SdnRequest::Set {
            kind: SdnObjectKind::Vnet,
            id: "vnuse1".into(),
            options: vec![],
            delete: vec!["alias".into()],
        });
        assert_eq!(needs(&edit), ["SDN.Allocate on /sdn/zones/zuse/vnuse1"]);
        let subnet = Request::Sdn(SdnRequest::Add {
            kind: SdnObjectKind::Subnet,
            id: "10.9.0.0/24".into(),
            options: vec![("vnet".into(), "vnuse1".into())],
        });
        assert_eq!(needs(&subnet), ["SDN.Allocate on /sdn/zones/zuse/vnuse1"]);
    }

    #[test]
    fn trunks_on_a_vnet_need_sdn_use_on_every_vlan_they_carry() {
        let _one = MAP.lock().unwrap_or_else(|p| p.into_inner());
        let opts = |l: &[(&str, &str)]| l.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<Vec<_>>();
        let mut config = SdnConfig::default();
        config.add(SdnKind::Zone, "ztr", &opts(&[("type", "simple")])).unwrap();
        config.add(SdnKind::Vnet, "vntr1", &opts(&[("zone", "ztr"), ("vlanaware", "1")])).unwrap();
        remember_vnets(&[&config]);
        let vm = Request::Vm(VmRequest::Set(set("net0", "virtio,bridge=vntr1,tag=5,trunks=7;9-11")));
        let got = needs(&vm);
        for path in ["/sdn/zones/ztr/vntr1/5", "/sdn/zones/ztr/vntr1/7", "/sdn/zones/ztr/vntr1"] {
            assert!(got.contains(&format!("SDN.Use on {path}")), "{path}: {got:?}");
        }
        let ct = Request::Ct(CtRequest::Set(set("net0", "name=eth0,bridge=vntr1,trunks=8")));
        assert!(needs(&ct).contains(&"SDN.Use on /sdn/zones/ztr/vntr1/8".to_owned()), "{:?}", needs(&ct));
    }

    #[test]
    fn a_deleted_vnet_no_longer_decides_the_path_of_a_bridge_of_its_name() {
        let _one = MAP.lock().unwrap_or_else(|p| p.into_inner());
        let opts = |l: &[(&str, &str)]| l.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<Vec<_>>();
        let mut config = SdnConfig::default();
        config.add(SdnKind::Zone, "zgone", &opts(&[("type", "simple")])).unwrap();
        config.add(SdnKind::Vnet, "vngone1", &opts(&[("zone", "zgone")])).unwrap();
        remember_vnets(&[&config]);
        assert_eq!(nic_path("vngone1", None), "/sdn/zones/zgone/vngone1");
        // Gone from both configurations: a bridge of that name is a local one again, and
        // SDN.Use on the old zone does not reach it.
        config.delete(SdnKind::Vnet, "vngone1", &[]).unwrap();
        remember_vnets(&[&config]);
        assert_eq!(nic_path("vngone1", None), "/sdn/zones/localnetwork/vngone1");
    }
}
