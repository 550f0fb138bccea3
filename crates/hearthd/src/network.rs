//! The node's network configuration (`netctl`): the running configuration in
//! `etc/hearth/network.toml`, edits staged in `network.new.toml` (Proxmox's
//! `interfaces.new`), pending changes against the kernel, and apply with rollback
//! ([`apply`]).

mod apply;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hearth_core::GuestKind;
use hearth_core::access::Privilege;
use hearth_core::network::{self as model, Iface, IfaceType, NetworkConfig};
use hearth_net::Netlink;
use hearth_proto::{ErrorKind, ErrorReply, NetworkInterface, NetworkRequest, Payload};

use crate::Daemon;
use crate::access::Caller;

/// The privilege a request needs on `/nodes/<node>`: reading Sys.Audit, changing Sys.Modify.
pub fn privilege(request: &NetworkRequest) -> Privilege {
    match request {
        NetworkRequest::List { .. }
        | NetworkRequest::Show { .. }
        | NetworkRequest::Pending
        | NetworkRequest::Export => Privilege::SysAudit,
        NetworkRequest::Create { .. }
        | NetworkRequest::Set { .. }
        | NetworkRequest::Delete { .. }
        | NetworkRequest::Apply { .. }
        | NetworkRequest::Confirm
        | NetworkRequest::Revert
        | NetworkRequest::Import { .. } => Privilege::SysModify,
    }
}

/// One network change at a time: edits, applies, confirmations and the rollback timer.
static LOCK: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn invalid(message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(ErrorKind::Invalid, message)
}

fn internal(message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(ErrorKind::Internal, message)
}

fn running_path(root: &Path) -> PathBuf {
    root.join("etc/hearth/network.toml")
}

fn staged_path(root: &Path) -> PathBuf {
    root.join("etc/hearth/network.new.toml")
}

fn read(path: &Path) -> Result<Option<NetworkConfig>, ErrorReply> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map(Some).map_err(|e| internal(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(internal(format!("cannot read {}: {e}", path.display()))),
    }
}

fn write(path: &Path, config: &NetworkConfig) -> Result<(), ErrorReply> {
    let text = toml::to_string(config).map_err(|e| internal(format!("encoding {}: {e}", path.display())))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| internal(format!("creating {}: {e}", dir.display())))?;
    }
    crate::store::write_atomic(path, text.as_bytes()).map_err(|e| internal(e.to_string()))
}

fn remove(path: &Path) -> Result<(), ErrorReply> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(internal(format!("cannot remove {}: {e}", path.display())))
        }
        _ => Ok(()),
    }
}

fn running(root: &Path) -> Result<NetworkConfig, ErrorReply> {
    Ok(read(&running_path(root))?.unwrap_or_default())
}

/// The staged configuration, or the running one when nothing is staged.
fn staged(root: &Path) -> Result<NetworkConfig, ErrorReply> {
    match read(&staged_path(root))? {
        Some(c) => Ok(c),
        None => running(root),
    }
}

/// Refuses an interface SDN owns: a VNet's bridge or its VXLAN port (`vxlan_<vnet>`). The node
/// configuration taking one over would detach the VNet's ports on apply and remove the VNet,
/// guests' ports and all, once it drops the interface again.
fn check_not_sdn<'a>(names: impl IntoIterator<Item = &'a Iface>) -> Result<(), ErrorReply> {
    for i in names {
        if matches!(i.kind, IfaceType::Loopback | IfaceType::Unknown) {
            continue;
        }
        if crate::sdn::vnet_zone(&i.iface).is_some() {
            return Err(invalid(format!("iface: '{0}' is the bridge of SDN VNet {0}", i.iface)));
        }
        if let Some(vnet) = i.iface.strip_prefix("vxlan_").filter(|v| crate::sdn::vnet_zone(v).is_some()) {
            return Err(invalid(format!("iface: '{}' is the VXLAN port of SDN VNet {vnet}", i.iface)));
        }
    }
    Ok(())
}

fn netlink() -> Result<Netlink, ErrorReply> {
    Netlink::open().map_err(|e| ErrorReply::new(ErrorKind::Unavailable, format!("netlink: {e}")))
}

fn observe() -> Result<apply::Kernel, ErrorReply> {
    apply::Kernel::observe(&mut netlink()?).map_err(|e| ErrorReply::new(ErrorKind::Unavailable, e))
}

pub fn handle(daemon: &Arc<Daemon>, _caller: &Caller, request: NetworkRequest) -> Result<Payload, ErrorReply> {
    let root = daemon.root.as_path();
    match request {
        NetworkRequest::List { kind } => list(root, kind.as_deref(), None),
        NetworkRequest::Show { iface } => list(root, None, Some(&iface)),
        NetworkRequest::Create { iface, options } => create(root, &iface, &options),
        NetworkRequest::Set { iface, options, delete } => set(root, &iface, &options, &delete),
        NetworkRequest::Delete { iface } => delete(daemon, &iface),
        NetworkRequest::Pending => pending(root),
        NetworkRequest::Apply { confirm_timeout } => apply_staged(root, confirm_timeout.unwrap_or(60)),
        NetworkRequest::Confirm => confirm(root),
        NetworkRequest::Revert => {
            let _guard = lock();
            remove(&staged_path(root))?;
            Ok(Payload::Empty)
        }
        NetworkRequest::Import { text } => {
            let config = model::parse_interfaces(&text).map_err(|e| invalid(e.0))?;
            model::validate(&config).map_err(|e| invalid(e.0))?;
            check_not_sdn(config.ifaces.values())?;
            let _guard = lock();
            write(&staged_path(root), &config)?;
            Ok(Payload::Empty)
        }
        NetworkRequest::Export => Ok(Payload::Text(model::write_interfaces(&staged(root)?))),
    }
}

fn list(root: &Path, kind: Option<&str>, one: Option<&str>) -> Result<Payload, ErrorReply> {
    let config = staged(root)?;
    if let Some(name) = one {
        if !config.ifaces.contains_key(name) {
            return Err(ErrorReply::new(ErrorKind::NotFound, format!("interface '{name}' is not configured")));
        }
    }
    let kernel = observe()?;
    let wanted = |i: &Iface| match kind {
        None => true,
        Some("any_bridge") => i.kind == IfaceType::Bridge,
        Some(k) => i.kind.as_str() == k,
    };
    let list = config
        .ifaces
        .values()
        .filter(|i| one.is_none_or(|n| n == i.iface) && wanted(i))
        .map(|i| {
            let link = kernel.links.get(&i.iface);
            NetworkInterface { config: i.clone(), exists: link.is_some(), active: link.is_some_and(|l| l.up) }
        })
        .collect();
    Ok(Payload::NetworkInterfaces(list))
}

fn create(root: &Path, name: &str, options: &[(String, String)]) -> Result<Payload, ErrorReply> {
    let kind_text = options.iter().find(|(k, _)| k == "type").map(|(_, v)| v.as_str()).unwrap_or_default();
    let kind = IfaceType::parse(kind_text)
        .filter(|k| IfaceType::CREATABLE.contains(&k.as_str()))
        .ok_or_else(|| invalid(format!("type: '{kind_text}' is not one of {}", IfaceType::CREATABLE.join(", "))))?;
    model::check_name(name, kind).map_err(|e| invalid(e.0))?;
    let mut iface = Iface::new(name, kind);
    iface.apply_options(options, &[]).map_err(|e| invalid(e.0))?;
    // As Proxmox writes new bonds: link monitoring every 100 ms, without which an
    // active-backup bond never notices a dead slave.
    if kind == IfaceType::Bond && iface.bond_miimon.is_none() {
        iface.bond_miimon = Some(100);
    }
    check_not_sdn([&iface])?;
    if kind == IfaceType::Vlan && model::vlan_parts(&iface).is_none() {
        return Err(invalid(format!(
            "vlan-raw-device: VLAN interface {name} needs --vlan-raw-device and --vlan-id, or a name PARENT.VID"
        )));
    }
    let _guard = lock();
    let mut config = staged(root)?;
    if config.ifaces.contains_key(name) {
        return Err(ErrorReply::new(ErrorKind::Conflict, format!("interface '{name}' already exists")));
    }
    if kind == IfaceType::Eth && !observe()?.links.contains_key(name) {
        return Err(invalid(format!("iface: there is no network device '{name}' on this node to configure as eth")));
    }
    iface.priority = config.ifaces.values().map(|i| i.priority).max().unwrap_or(0) + 1;
    config.ifaces.insert(name.to_owned(), iface);
    model::validate(&config).map_err(|e| invalid(e.0))?;
    write(&staged_path(root), &config)?;
    Ok(Payload::Empty)
}

fn set(root: &Path, name: &str, options: &[(String, String)], delete: &[String]) -> Result<Payload, ErrorReply> {
    let _guard = lock();
    let mut config = staged(root)?;
    let Some(iface) = config.ifaces.get_mut(name) else {
        return Err(ErrorReply::new(ErrorKind::NotFound, format!("interface '{name}' is not configured")));
    };
    if let Some((_, t)) = options.iter().find(|(k, _)| k == "type") {
        if t != iface.kind.as_str() {
            return Err(invalid(format!(
                "type: {name} is a {}; delete it and create it again to change its type",
                iface.kind.as_str()
            )));
        }
    }
    if matches!(iface.kind, IfaceType::Loopback | IfaceType::Unknown) {
        return Err(invalid(format!("iface: {name} is of type {} and kept as read", iface.kind.as_str())));
    }
    iface.apply_options(options, delete).map_err(|e| invalid(e.0))?;
    model::validate(&config).map_err(|e| invalid(e.0))?;
    write(&staged_path(root), &config)?;
    Ok(Payload::Empty)
}

/// The guests whose NICs name `bridge`: `VM 100 (net0)`.
fn guests_on(daemon: &Daemon, bridge: &str) -> Vec<String> {
    let mut out = Vec::new();
    for kind in [GuestKind::Vm, GuestKind::Ct] {
        let Ok(list) = daemon.store.list(kind) else { continue };
        for listed in list {
            let Ok(config) = listed.config.as_ref() else { continue };
            for (key, value) in config.merged() {
                let Some(text) = value.as_str() else { continue };
                if key.starts_with("net") && text.split(',').any(|part| part == format!("bridge={bridge}")) {
                    let noun = if kind == GuestKind::Vm { "VM" } else { "CT" };
                    out.push(format!("{noun} {} ({key})", listed.vmid));
                }
            }
        }
    }
    out
}

fn delete(daemon: &Daemon, name: &str) -> Result<Payload, ErrorReply> {
    let root = daemon.root.as_path();
    let _guard = lock();
    let mut config = staged(root)?;
    let Some(iface) = config.ifaces.get(name) else {
        return Err(ErrorReply::new(ErrorKind::NotFound, format!("interface '{name}' is not configured")));
    };
    if iface.kind == IfaceType::Bridge {
        let guests = guests_on(daemon, name);
        if !guests.is_empty() {
            return Err(ErrorReply::new(
                ErrorKind::Conflict,
                format!("bridge {name} is used by guest NICs: {}", guests.join(", ")),
            ));
        }
    }
    if let Some(user) = config.ifaces.values().find(|i| i.iface != name && i.lower().iter().any(|l| l == name)) {
        return Err(ErrorReply::new(
            ErrorKind::Conflict,
            format!("{name} is used by interface {}; remove it there first", user.iface),
        ));
    }
    config.ifaces.remove(name);
    write(&staged_path(root), &config)?;
    Ok(Payload::Empty)
}

/// What the kernel runs for the interfaces of `staged` and `running`, in the shape of the
/// staged configuration, so the diff shows only what apply would change.
fn observed(kernel: &apply::Kernel, staged: &NetworkConfig, running: &NetworkConfig) -> NetworkConfig {
    let mut out = NetworkConfig::default();
    let names: BTreeSet<&String> = staged.ifaces.keys().chain(running.ifaces.keys()).collect();
    for name in names {
        let want = staged.ifaces.get(name).or_else(|| running.ifaces.get(name)).expect("a name of either");
        if matches!(want.kind, IfaceType::Loopback | IfaceType::Unknown) {
            continue;
        }
        let Some(link) = kernel.links.get(name) else { continue };
        let kind = match link.kind {
            hearth_net::LinkKind::Bridge => IfaceType::Bridge,
            hearth_net::LinkKind::Bond => IfaceType::Bond,
            hearth_net::LinkKind::Vlan => IfaceType::Vlan,
            _ if want.kind == IfaceType::Eth => IfaceType::Eth,
            _ => IfaceType::Unknown,
        };
        // Only addresses apply would manage: the staged ones and those the running
        // configuration gave; others set by other means are not shown as changes.
        let managed: Vec<&String> = [&want.cidr, &want.cidr6]
            .into_iter()
            .chain(running.ifaces.get(name).map(|r| [&r.cidr, &r.cidr6]).into_iter().flatten())
            .flatten()
            .collect();
        let addresses: Vec<String> =
            kernel.addresses.get(name).into_iter().flatten().filter(|a| managed.contains(a)).cloned().collect();
        let pick = |v6: bool, wanted: &Option<String>| {
            let family: Vec<&String> = addresses.iter().filter(|a| a.contains(':') == v6).collect();
            match wanted {
                Some(w) if family.contains(&w) && family.len() == 1 => Some(w.clone()),
                _ if family.is_empty() => None,
                _ => Some(family.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")),
            }
        };
        let gateway =
            |v6: bool| kernel.defaults.iter().find(|(d, g)| d == name && g.contains(':') == v6).map(|(_, g)| g.clone());
        let mut ports: Vec<String> = kernel.ports_of(name).into_iter().filter(|p| !apply::is_guest_port(p)).collect();
        let order = want.lower();
        ports.sort_by_key(|p| order.iter().position(|o| o == p).unwrap_or(usize::MAX));
        let mut i = Iface {
            iface: name.clone(),
            kind,
            autostart: link.up,
            cidr: pick(false, &want.cidr),
            cidr6: pick(true, &want.cidr6),
            gateway: gateway(false),
            gateway6: gateway(true),
            mtu: want.mtu.map(|_| link.mtu),
            comments: want.comments.clone(),
            comments6: want.comments6.clone(),
            method: want.method.clone(),
            method6: want.method6.clone(),
            options: want.options.clone(),
            options6: want.options6.clone(),
            priority: want.priority,
            ..Iface::default()
        };
        if !want.autostart && link.up && staged.ifaces.contains_key(name) {
            // Apply brings interfaces up but does not take others down.
            i.autostart = false;
        }
        match kind {
            IfaceType::Bridge => {
                let info = link.bridge.clone().unwrap_or_default();
                i.bridge_ports = ports;
                i.bridge_vlan_aware = info.vlan_filtering;
                i.bridge_vids = want.bridge_vids.clone().filter(|_| info.vlan_filtering);
                i.bridge_stp = want.bridge_stp.map(|_| info.stp);
                i.bridge_fd = want.bridge_fd.map(|_| info.forward_delay);
            }
            IfaceType::Bond => {
                let info = link.bond.clone();
                i.slaves = ports;
                i.bond_mode = info.as_ref().and_then(|b| b.mode).map(|m| m.as_str().to_owned());
                i.bond_miimon = want.bond_miimon.and(info.as_ref().and_then(|b| b.miimon));
                i.bond_xmit_hash_policy = want
                    .bond_xmit_hash_policy
                    .as_ref()
                    .and(info.as_ref().and_then(|b| b.xmit_hash_policy).map(|p| p.as_str().to_owned()));
                i.bond_primary = want.bond_primary.clone();
            }
            IfaceType::Vlan => {
                let info = link.vlan.clone();
                let kernel_parts = info.map(|v| (v.raw_device.unwrap_or_default(), v.id));
                if kernel_parts == model::vlan_parts(want) {
                    i.vlan_raw_device = want.vlan_raw_device.clone();
                    i.vlan_id = want.vlan_id;
                } else if let Some((dev, id)) = kernel_parts {
                    i.vlan_raw_device = Some(dev);
                    i.vlan_id = Some(id);
                }
            }
            _ => {}
        }
        out.ifaces.insert(name.clone(), i);
    }
    out
}

fn pending(root: &Path) -> Result<Payload, ErrorReply> {
    let staged = staged(root)?;
    let running = running(root)?;
    let kernel = observe()?;
    let current = observed(&kernel, &staged, &running);
    let wanted = NetworkConfig {
        top: Vec::new(),
        ifaces: staged
            .ifaces
            .into_iter()
            .filter(|(_, i)| !matches!(i.kind, IfaceType::Loopback | IfaceType::Unknown))
            .collect(),
    };
    Ok(Payload::NetworkPending(model::diff(&current, &wanted)))
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn apply_staged(root: &Path, confirm_timeout: u64) -> Result<Payload, ErrorReply> {
    let _guard = lock();
    if let Some(j) = apply::read_journal(root) {
        return Err(ErrorReply::new(
            ErrorKind::Conflict,
            format!("an apply is waiting for confirmation ({}); run `netctl confirm` first", j.state),
        ));
    }
    let previous = running(root)?;
    let applied = staged(root)?;
    model::validate(&applied).map_err(|e| invalid(e.0))?;
    check_not_sdn(applied.ifaces.values())?;
    let mut nl = netlink()?;
    let kernel = apply::Kernel::observe(&mut nl).map_err(|e| ErrorReply::new(ErrorKind::Unavailable, e))?;
    let steps = apply::plan(&kernel, &previous, &applied).map_err(invalid)?;
    let count = steps.len();
    let mut id = [0u8; 8];
    let _ = getrandom::fill(&mut id);
    let mut journal = apply::Journal {
        state: "applying".into(),
        id: u64::from_le_bytes(id),
        deadline: None,
        previous: previous.clone(),
        applied: applied.clone(),
        kernel: apply::kernel_identity(),
        steps: Vec::new(),
    };
    if let Err(e) = apply::run(root, &mut nl, &mut journal, steps) {
        remove(&apply::journal_path(root))?;
        return Err(ErrorReply::new(ErrorKind::Unavailable, format!("network apply: {e}")));
    }
    write(&running_path(root), &applied)?;
    remove(&staged_path(root))?;
    let mut message = format!("applied {count} change(s)\n");
    if confirm_timeout == 0 || count == 0 {
        remove(&apply::journal_path(root))?;
    } else {
        journal.state = "confirm".into();
        journal.deadline = Some(now() + confirm_timeout);
        apply::write_journal(root, &journal).map_err(internal)?;
        arm_timer(root.to_owned(), journal.id, confirm_timeout);
        message.push_str(&format!(
            "run `netctl confirm` within {confirm_timeout} s to keep it; otherwise it is rolled back\n"
        ));
    }
    Ok(Payload::Text(message))
}

fn confirm(root: &Path) -> Result<Payload, ErrorReply> {
    let _guard = lock();
    match apply::read_journal(root) {
        Some(j) if j.state == "confirm" => {
            remove(&apply::journal_path(root))?;
            Ok(Payload::Empty)
        }
        _ => Err(ErrorReply::new(ErrorKind::Conflict, "no applied network configuration is waiting for confirmation")),
    }
}

/// Undoes the journalled apply: the kernel steps in reverse, then the previous configuration
/// runs again and the applied one is staged once more (the edits are not lost).
fn roll_back(root: &Path, journal: &apply::Journal) -> Result<(), ErrorReply> {
    if journal.kernel.is_some() && journal.kernel != apply::kernel_identity() {
        // The links the steps made or changed went with that boot or namespace; what has
        // these names here is not Hearth's to remove.
        tracing::warn!(
            "network rollback: the apply ran before a reboot or in another network namespace; only the configuration files are restored"
        );
    } else {
        let mut nl = netlink()?;
        let leftovers = apply::undo(&mut nl, &journal.steps);
        if !leftovers.is_empty() {
            tracing::warn!(?leftovers, "network rollback: undo steps that failed");
        }
    }
    if journal.previous == NetworkConfig::default() {
        remove(&running_path(root))?;
    } else {
        write(&running_path(root), &journal.previous)?;
    }
    if journal.state == "confirm" && !staged_path(root).exists() {
        write(&staged_path(root), &journal.applied)?;
    }
    remove(&apply::journal_path(root))
}

fn arm_timer(root: PathBuf, id: u64, seconds: u64) {
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(seconds));
        let _guard = lock();
        if let Some(j) = apply::read_journal(&root).filter(|j| j.id == id && j.state == "confirm") {
            tracing::warn!("network apply not confirmed within {seconds} s; restoring the previous configuration");
            if let Err(e) = roll_back(&root, &j) {
                tracing::error!(error = %e.message, "network rollback failed");
            }
        }
    });
}

/// At start: an apply that was cut off is rolled back; one waiting for confirmation gets its
/// timer again (rolled back at once when its time is up).
/// At start, after [`recover`]: the running configuration is made true in the kernel again —
/// after a reboot its bridges, bonds and VLANs do not exist yet, as ifupdown brings up the
/// node's interfaces at boot. Only what the configuration names is touched; when nothing
/// differs, nothing is done. A failing step undoes the others and is logged; hearthd still
/// serves.
pub fn bring_up(root: &Path) {
    let _guard = lock();
    if apply::read_journal(root).is_some() {
        return;
    }
    let config = match running(root) {
        Ok(config) if !config.ifaces.is_empty() => config,
        Ok(_) => return,
        Err(e) => {
            tracing::error!(error = %e.message, "reading the running network configuration");
            return;
        }
    };
    let steps = netlink().map_err(|e| e.message).and_then(|mut nl| {
        let kernel = apply::Kernel::observe(&mut nl)?;
        let steps = apply::plan(&kernel, &config, &config)?;
        if steps.is_empty() {
            return Ok(0);
        }
        let count = steps.len();
        let mut journal = apply::Journal {
            state: "applying".into(),
            id: 0,
            deadline: None,
            previous: config.clone(),
            applied: config.clone(),
            kernel: apply::kernel_identity(),
            steps: Vec::new(),
        };
        let result = apply::run(root, &mut nl, &mut journal, steps);
        let _ = std::fs::remove_file(apply::journal_path(root));
        result.map(|()| count)
    });
    match steps {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, "network: the running configuration brought up"),
        Err(e) => tracing::error!(error = %e, "network: bringing up the running configuration failed"),
    }
}

pub fn recover(root: &Path) {
    let Some(j) = apply::read_journal(root) else { return };
    let remaining = j.deadline.map_or(0, |d| d.saturating_sub(now()));
    if j.state == "confirm" && remaining > 0 {
        arm_timer(root.to_owned(), j.id, remaining);
        return;
    }
    tracing::warn!(state = %j.state, steps = j.steps.len(), "rolling back an unfinished network apply");
    let _guard = lock();
    if let Err(e) = roll_back(root, &j) {
        tracing::error!(error = %e.message, "network rollback failed");
    }
}
