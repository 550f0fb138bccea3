//! Changes to a running VM through QMP, as qemu-server's `vmconfig_hotplug_pending` makes them,
//! within the VM's `hotplug` features:
//! - `netN` (network): a new NIC gets its tap the way a start makes it (QEMU creates it from
//!   `netdev_add`, hearth puts it into its bridge), then `device_add`; a removed NIC is
//!   `device_del`eted, and once the guest let go (`DEVICE_DELETED`) its netdev and tap go. A
//!   NIC whose bridge, VLAN tag, link state, firewall or rate changes keeps its device: the tap
//!   moves, the link goes up or down.
//! - `virtioN`, `scsiN` on a virtio SCSI controller (disk): `blockdev-add` of the same nodes a
//!   start builds, then `device_add`; removal is `device_del`, `DEVICE_DELETED`, `blockdev-del`.
//! - `vcpus` (cpu): `device_add` of the CPU type `query-hotpluggable-cpus` reports for free
//!   slots. Fewer vCPUs wait for the next start (see [`QemuRuntime::set_vcpus`]).
//! - `balloon`: the balloon's new target, at once, unless the balloon device comes or goes.
//! - `hotplug` itself, unless memory hot-plug is involved.
//!
//! Memory is not hot-plugged (no DIMMs): `memory` changes wait for the next start. So do
//! changes to an existing disk or to a NIC's model, MAC address, queues or MTU, IDE and SATA
//! drives, and every other key.
//!
//! Each operation undoes its own earlier steps when a later one fails, so a failed hot-plug
//! leaves no half-plugged device; the change then stays pending.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use hearth_core::guest::Section;
use hearth_core::hotplug::HotplugFeatures;
use hearth_core::runtime::{HotplugChange, Hotplugged, ResolvedVolume, RuntimeError};
use hearth_core::storage::Format;
use hearth_core::{GuestKind, Value, Vmid};
use serde_json::{Map, Value as Json, json};

use super::{QemuRuntime, delete_tap, plug_taps, tap_plugs};
use crate::cmdline::{Resolved, ResolvedDrive, tap_name};
use crate::qmp::Qmp;

/// How long the guest gets to release a device after `device_del` (ACPI eject under TCG is
/// slow on a busy host).
const UNPLUG_TIMEOUT: Duration = Duration::from_secs(60);

fn failed(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::failed(e.to_string())
}

/// Splits a QEMU option list (`a=b,c=d`, `,,` is a literal comma) into its first bare word (if
/// any) and its `key=value` pairs.
fn split_options(text: &str) -> (Option<String>, Vec<(String, String)>) {
    let mut parts = Vec::new();
    let mut part = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                part.push(',');
            } else {
                parts.push(std::mem::take(&mut part));
            }
        } else {
            part.push(c);
        }
    }
    parts.push(part);
    let mut first = None;
    let mut pairs = Vec::new();
    for (n, part) in parts.into_iter().enumerate() {
        match part.split_once('=') {
            Some((k, v)) => pairs.push((k.to_owned(), v.to_owned())),
            None if n == 0 => first = Some(part),
            None => pairs.push((part, "on".to_owned())),
        }
    }
    (first, pairs)
}

/// Inserts a dotted key (`cache.direct`) into nested objects.
fn insert_dotted(map: &mut Map<String, Json>, key: &str, value: Json) {
    match key.split_once('.') {
        Some((head, rest)) => {
            let inner = map.entry(head.to_owned()).or_insert_with(|| Json::Object(Map::new()));
            if let Json::Object(inner) = inner {
                insert_dotted(inner, rest, value);
            }
        }
        None => {
            map.insert(key.to_owned(), value);
        }
    }
}

/// A `-blockdev` option list as `blockdev-add` arguments: QAPI types, so the boolean options
/// become booleans; everything else there is a string.
fn blockdev_json(text: &str) -> Json {
    let (_, pairs) = split_options(text);
    let mut map = Map::new();
    for (key, value) in pairs {
        let boolean = matches!(key.as_str(), "cache.direct" | "cache.no-flush" | "read-only");
        let value = if boolean { Json::Bool(value == "on") } else { Json::String(value) };
        insert_dotted(&mut map, &key, value);
    }
    Json::Object(map)
}

/// An `-object` option list as `object-add` arguments: numbers are numbers.
fn object_json(text: &str) -> Json {
    let (qom_type, pairs) = split_options(text);
    let mut map = Map::new();
    map.insert("qom-type".into(), Json::String(qom_type.unwrap_or_default()));
    for (key, value) in pairs {
        let value = match value.parse::<u64>() {
            Ok(n) if key != "id" => Json::from(n),
            _ => Json::String(value),
        };
        map.insert(key, value);
    }
    Json::Object(map)
}

/// A `-device` option list as `device_add` arguments. Properties travel as strings, which
/// `device_add` parses like the command line does; `bootindex` is left out (the boot order is
/// the start's business, and an index another device holds would refuse the device).
fn device_json(text: &str) -> Json {
    let (driver, pairs) = split_options(text);
    let mut map = Map::new();
    map.insert("driver".into(), Json::String(driver.unwrap_or_default()));
    for (key, value) in pairs.into_iter().filter(|(k, _)| k != "bootindex") {
        map.insert(key, Json::String(value));
    }
    Json::Object(map)
}

/// A `-netdev` option list as `netdev_add` arguments (QAPI types).
fn netdev_json(text: &str) -> Json {
    let (kind, pairs) = split_options(text);
    let mut map = Map::new();
    map.insert("type".into(), Json::String(kind.unwrap_or_default()));
    for (key, value) in pairs {
        let value = match key.as_str() {
            "vhost" => Json::Bool(value == "on"),
            "queues" => value.parse::<u64>().map_or(Json::String(value), Json::from),
            _ => Json::String(value),
        };
        map.insert(key, value);
    }
    Json::Object(map)
}

/// The options of the command line a start would build for `key` alone: `-object`,
/// `-blockdev`, `-netdev` and `-device`, in their order.
fn options_for(
    vmid: Vmid,
    config: &Section,
    key: &str,
    value: &Value,
    resolved: Resolved,
) -> Result<Vec<(String, String)>, RuntimeError> {
    let mut only = Section::new();
    for carried in ["kvm", "scsihw", "machine"] {
        if let Some(v) = config.get(carried) {
            only.insert(carried.to_owned(), v.clone());
        }
    }
    only.insert(key.to_owned(), value.clone());
    let command = crate::build(vmid, &only, &resolved).map_err(|e| RuntimeError::invalid(e.to_string()))?;
    // Only what belongs to `key`: the builder adds the board's own devices (USB, balloon, …)
    // to every command line, and those are in the VM already.
    let suffix = format!("-{key}");
    let related = |option: &str, text: &str| {
        let (_, pairs) = split_options(text);
        let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        match option {
            "-device" => get("id").is_some_and(|id| {
                id == key || (key.starts_with("scsi") && (id.starts_with("scsihw") || id.starts_with("virtioscsi")))
            }),
            "-blockdev" => get("node-name").is_some_and(|n| n.ends_with(&suffix)),
            "-object" => get("id").is_some_and(|id| id.ends_with(&suffix)),
            "-netdev" => get("id").is_some_and(|id| id == key),
            _ => false,
        }
    };
    let mut options = Vec::new();
    let mut args = command.args.iter();
    while let Some(arg) = args.next() {
        if matches!(arg.as_str(), "-object" | "-blockdev" | "-netdev" | "-device") {
            if let Some(value) = args.next() {
                if related(arg, value) {
                    options.push((arg.clone(), value.clone()));
                }
            }
        }
    }
    Ok(options)
}

/// The ids of the devices plugged into the VM by id (`/machine/peripheral`).
fn peripherals(qmp: &mut Qmp) -> Result<BTreeSet<String>, RuntimeError> {
    let listed = qmp.execute("qom-list", Some(json!({ "path": "/machine/peripheral" }))).map_err(failed)?;
    Ok(listed
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p.get("type").and_then(Json::as_str).is_some_and(|t| t.starts_with("child<")))
        .filter_map(|p| p.get("name").and_then(Json::as_str).map(str::to_owned))
        .collect())
}

/// `device_del`, then waits until the guest released the device.
fn unplug_device(qmp: &mut Qmp, id: &str) -> Result<(), RuntimeError> {
    qmp.execute("device_del", Some(json!({ "id": id }))).map_err(failed)?;
    let deadline = Instant::now() + UNPLUG_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(failed(format!(
                "the guest did not release {id} within {} s (does it handle ACPI hot-unplug?)",
                UNPLUG_TIMEOUT.as_secs()
            )));
        }
        match qmp.wait_event("DEVICE_DELETED", left) {
            Ok(event) if event.data.get("device").and_then(Json::as_str) == Some(id) => return Ok(()),
            Ok(_) => {}
            Err(crate::QmpError::Timeout { .. }) => {}
            Err(e) => return Err(failed(e)),
        }
    }
}

fn nic_props(key: &str, value: &Value) -> Option<hearth_core::propstr::PropertyString> {
    GuestKind::Vm.schema().property(key, value)
}

impl QemuRuntime {
    pub(super) fn hotplug_change(
        &self,
        vmid: Vmid,
        change: &HotplugChange,
        log: &dyn Fn(String),
    ) -> Result<Hotplugged, RuntimeError> {
        let features = HotplugFeatures::of(&change.config);
        let key = change.key.as_str();
        let bus = key.trim_end_matches(|c: char| c.is_ascii_digit());
        match (key, &change.current, &change.wanted) {
            ("hotplug", current, wanted) => {
                let memory =
                    |v: &Option<Value>| v.as_ref().and_then(Value::as_str).is_some_and(|s| s.contains("memory"));
                Ok(if memory(current) || memory(wanted) { Hotplugged::Pending } else { Hotplugged::Live })
            }
            ("balloon", current, wanted) => self.balloon(vmid, &change.config, current, wanted, log),
            ("vcpus", _, wanted) if features.cpu => self.set_vcpus(vmid, &change.config, wanted.as_ref(), log),
            (_, None, Some(value)) if bus == "net" && features.network => {
                self.plug_nic(vmid, &change.config, key, value, log)
            }
            (_, Some(_), None) if bus == "net" && features.network => self.unplug_nic(vmid, key, log),
            (_, Some(old), Some(new)) if bus == "net" => self.update_nic(vmid, key, old, new, log),
            (_, None, Some(value)) if matches!(bus, "virtio" | "scsi") && features.disk => {
                self.plug_disk(vmid, &change.config, key, value, change.volume.as_ref(), log)
            }
            (_, Some(old), None) if matches!(bus, "virtio" | "scsi") && features.disk => {
                self.unplug_disk(vmid, &change.config, key, old, log)
            }
            _ => Ok(Hotplugged::Pending),
        }
    }

    /// The balloon's target follows `balloon` (or the memory when it is unset) at once; turning
    /// the balloon device on or off waits for a start.
    fn balloon(
        &self,
        vmid: Vmid,
        config: &Section,
        current: &Option<Value>,
        wanted: &Option<Value>,
        log: &dyn Fn(String),
    ) -> Result<Hotplugged, RuntimeError> {
        let enabled = |v: &Option<Value>| v.as_ref().and_then(Value::as_int) != Some(0);
        if enabled(current) != enabled(wanted) {
            return Ok(Hotplugged::Pending);
        }
        if !enabled(wanted) {
            return Ok(Hotplugged::Live);
        }
        let memory = config.get("memory").and_then(Value::as_int).unwrap_or(512);
        let target = wanted.as_ref().and_then(Value::as_int).unwrap_or(memory);
        let mut qmp = self.qmp(vmid)?;
        qmp.execute("balloon", Some(json!({ "value": target << 20 }))).map_err(failed)?;
        log(format!("balloon target {target} MiB"));
        Ok(Hotplugged::Live)
    }

    /// Plugs vCPUs until `wanted` (all of sockets × cores when unset) run.
    fn set_vcpus(
        &self,
        vmid: Vmid,
        config: &Section,
        wanted: Option<&Value>,
        log: &dyn Fn(String),
    ) -> Result<Hotplugged, RuntimeError> {
        let int = |k: &str| config.get(k).and_then(Value::as_int).unwrap_or(1);
        let total = int("sockets") * int("cores");
        let wanted = wanted.and_then(Value::as_int).unwrap_or(total);
        if wanted > total {
            return Err(RuntimeError::invalid(format!("vcpus: {wanted} is more than sockets × cores = {total}")));
        }
        let mut qmp = self.qmp(vmid)?;
        let slots = qmp.execute("query-hotpluggable-cpus", None).map_err(failed)?;
        let slots: Vec<Json> = slots.as_array().cloned().unwrap_or_default();
        let plugged: Vec<&Json> = slots.iter().filter(|s| s.get("qom-path").is_some()).collect();
        let count = plugged.len() as i64;
        if wanted > count {
            // Free slots in the order of their ids, lowest first, as Proxmox numbers them.
            let mut free: Vec<&Json> = slots.iter().filter(|s| s.get("qom-path").is_none()).collect();
            free.sort_by_key(|s| {
                let p = |k: &str| s["props"].get(k).and_then(Json::as_i64).unwrap_or(0);
                (p("socket-id"), p("core-id"), p("thread-id"))
            });
            let taken = peripherals(&mut qmp)?;
            let mut ids = (1..).map(|n| format!("cpu{n}")).filter(|id| !taken.contains(id));
            let mut added: Vec<String> = Vec::new();
            for slot in free.into_iter().take((wanted - count) as usize) {
                let id = ids.next().unwrap_or_default();
                let mut args = Map::new();
                args.insert("driver".into(), slot["type"].clone());
                args.insert("id".into(), Json::String(id.clone()));
                if let Some(props) = slot["props"].as_object() {
                    for (k, v) in props {
                        args.insert(k.clone(), v.clone());
                    }
                }
                if let Err(e) = qmp.execute("device_add", Some(Json::Object(args))) {
                    // Undo what this change plugged so far; the old count stays in effect.
                    for id in added.iter().rev() {
                        let _ = unplug_device(&mut qmp, id);
                    }
                    return Err(failed(e));
                }
                added.push(id);
            }
            log(format!("vcpus: {count} → {wanted}"));
            return Ok(Hotplugged::Live);
        }
        // Fewer vCPUs wait for the next start: removing one needs the guest to offline and
        // eject it, and a guest that never does would leave the request standing in QEMU (a
        // CPU that could vanish at any later time while the configuration still counts it).
        if wanted < count {
            return Ok(Hotplugged::Pending);
        }
        Ok(Hotplugged::Live)
    }

    /// A new NIC: netdev (QEMU creates the tap), the tap into its bridge, the device.
    fn plug_nic(
        &self,
        vmid: Vmid,
        config: &Section,
        key: &str,
        value: &Value,
        log: &dyn Fn(String),
    ) -> Result<Hotplugged, RuntimeError> {
        let index: u32 = key.trim_start_matches("net").parse().unwrap_or(0);
        let tap = tap_name(vmid, index);
        let mut one = Section::new();
        one.insert(key.to_owned(), value.clone());
        let plugs = tap_plugs(vmid, &one).map_err(RuntimeError::invalid)?;
        let mut resolved = Resolved::new(&self.run_dir, self.kvm);
        resolved.taps.insert(key.to_owned(), tap.clone());
        let options = options_for(vmid, config, key, value, resolved)?;
        let netdev = options.iter().find(|(o, _)| o == "-netdev").map(|(_, v)| netdev_json(v));
        let device = options.iter().find(|(o, _)| o == "-device").map(|(_, v)| device_json(v));
        let (Some(netdev), Some(device)) = (netdev, device) else {
            return Err(failed(format!("{key}: no NIC device was built")));
        };
        let mut qmp = self.qmp(vmid)?;
        if peripherals(&mut qmp)?.contains(key) {
            return Err(failed(format!("{key}: a device with this id is already plugged")));
        }
        qmp.execute("netdev_add", Some(netdev)).map_err(failed)?;
        let plugged = plug_taps(&plugs, log)
            .map_err(failed)
            .and_then(|()| qmp.execute("device_add", Some(device)).map_err(failed).map(drop));
        if let Err(e) = plugged {
            let _ = qmp.execute("netdev_del", Some(json!({ "id": key })));
            delete_tap(&tap);
            return Err(e);
        }
        if plugs.iter().any(|p| p.link_down) {
            qmp.set_link(key, false).map_err(failed)?;
        }
        log(format!("{key}: plugged on {tap}"));
        Ok(Hotplugged::Live)
    }

    fn unplug_nic(&self, vmid: Vmid, key: &str, log: &dyn Fn(String)) -> Result<Hotplugged, RuntimeError> {
        let mut qmp = self.qmp(vmid)?;
        if peripherals(&mut qmp)?.contains(key) {
            unplug_device(&mut qmp, key)?;
        }
        let _ = qmp.execute("netdev_del", Some(json!({ "id": key })));
        let index: u32 = key.trim_start_matches("net").parse().unwrap_or(0);
        let tap = tap_name(vmid, index);
        if std::path::Path::new("/sys/class/net").join(&tap).exists() {
            delete_tap(&tap);
        }
        log(format!("{key}: unplugged"));
        Ok(Hotplugged::Live)
    }

    /// A changed NIC keeps its device when only how its tap is wired changes (bridge, VLAN tag,
    /// link state, firewall, rate); anything the guest sees (model, MAC, queues, MTU) waits.
    fn update_nic(
        &self,
        vmid: Vmid,
        key: &str,
        old: &Value,
        new: &Value,
        log: &dyn Fn(String),
    ) -> Result<Hotplugged, RuntimeError> {
        let (Some(old_p), Some(new_p)) = (nic_props(key, old), nic_props(key, new)) else {
            return Ok(Hotplugged::Pending);
        };
        for prop in ["model", "macaddr", "queues", "mtu"] {
            if old_p.get(prop) != new_p.get(prop) {
                return Ok(Hotplugged::Pending);
            }
        }
        let index: u32 = key.trim_start_matches("net").parse().unwrap_or(0);
        let tap = tap_name(vmid, index);
        let rewire = ["bridge", "tag", "trunks"].iter().any(|p| old_p.get(p) != new_p.get(p));
        if rewire {
            let mut one = Section::new();
            one.insert(key.to_owned(), new.clone());
            let plugs = tap_plugs(vmid, &one).map_err(RuntimeError::invalid)?;
            let unplug = || {
                let mut nl = hearth_net::Netlink::open().map_err(|e| e.to_string())?;
                if old_p.get("rate").is_some() {
                    hearth_net::set_rate(&mut nl, &tap, None).map_err(|e| format!("{key}: {e}"))?;
                }
                nl.set_master(&tap, None).map_err(|e| format!("{key}: {e}"))
            };
            unplug().map_err(failed)?;
            if let Err(e) = plug_taps(&plugs, log) {
                // Back into the old bridge, so the NIC stays as the current settings say.
                let mut one = Section::new();
                one.insert(key.to_owned(), old.clone());
                if let Ok(plugs) = tap_plugs(vmid, &one) {
                    let _ = unplug();
                    let _ = plug_taps(&plugs, &|_| ());
                }
                return Err(failed(e));
            }
        } else if old_p.get("rate") != new_p.get("rate") {
            let rate = new_p.get("rate").and_then(|r| r.parse::<f64>().ok()).filter(|r| *r > 0.0);
            let mut nl = hearth_net::Netlink::open().map_err(|e| failed(e.to_string()))?;
            for warning in hearth_net::set_rate(&mut nl, &tap, rate).map_err(|e| failed(format!("{key}: {e}")))? {
                log(format!("{key}: {warning}"));
            }
            log(format!("{key}: rate {}", rate.map_or_else(|| "unlimited".to_owned(), |r| format!("{r} MB/s"))));
        }
        if old_p.get("link_down") != new_p.get("link_down") {
            let up = new_p.get("link_down") != Some("1");
            self.qmp(vmid)?.set_link(key, up).map_err(failed)?;
            log(format!("{key}: link {}", if up { "up" } else { "down" }));
        }
        Ok(Hotplugged::Live)
    }

    /// A new disk: its block nodes as a start builds them, then its device. SCSI disks need a
    /// virtio SCSI controller (LSI and the others cannot take hot-plugged disks).
    fn plug_disk(
        &self,
        vmid: Vmid,
        config: &Section,
        key: &str,
        value: &Value,
        volume: Option<&ResolvedVolume>,
        log: &dyn Fn(String),
    ) -> Result<Hotplugged, RuntimeError> {
        let Some(props) = GuestKind::Vm.schema().property(key, value) else { return Ok(Hotplugged::Pending) };
        if props.get("media") == Some("cdrom") {
            return Ok(Hotplugged::Pending);
        }
        if key.starts_with("scsi")
            && !config.get("scsihw").and_then(Value::as_str).is_some_and(|h| h.starts_with("virtio-scsi"))
        {
            return Ok(Hotplugged::Pending);
        }
        let Some(volume) = volume else {
            return Err(failed(format!("{key}: the volume was not resolved")));
        };
        let drive = match volume {
            ResolvedVolume::HostPath(path) => ResolvedDrive::file(path, Format::Raw),
            ResolvedVolume::Storage { path, format, .. } => ResolvedDrive::file(path, *format),
        };
        let mut resolved = Resolved::new(&self.run_dir, self.kvm);
        resolved.drives.insert(key.to_owned(), drive);
        let options = options_for(vmid, config, key, value, resolved)?;
        let mut qmp = self.qmp(vmid)?;
        let existing = peripherals(&mut qmp)?;
        if existing.contains(key) {
            return Err(failed(format!("{key}: a device with this id is already plugged")));
        }
        // Each step is remembered so a failure undoes the earlier ones, last first.
        let mut done: Vec<(String, Json)> = Vec::new();
        let mut result = Ok(());
        for (option, text) in &options {
            let (command, args, undo) = match option.as_str() {
                "-object" => {
                    let args = object_json(text);
                    let id = args["id"].clone();
                    ("object-add", args, ("object-del", json!({ "id": id })))
                }
                "-blockdev" => {
                    let args = blockdev_json(text);
                    let node = args["node-name"].clone();
                    ("blockdev-add", args, ("blockdev-del", json!({ "node-name": node })))
                }
                "-device" => {
                    let args = device_json(text);
                    let id = args["id"].as_str().unwrap_or_default().to_owned();
                    // The controller a start would add may be there already.
                    if id != key && existing.contains(&id) {
                        continue;
                    }
                    ("device_add", args, ("device_del", json!({ "id": id })))
                }
                _ => continue,
            };
            if let Err(e) = qmp.execute(command, Some(args)) {
                result = Err(failed(e));
                break;
            }
            done.push((undo.0.to_owned(), undo.1));
        }
        if let Err(e) = result {
            for (command, args) in done.into_iter().rev() {
                if command == "device_del" {
                    let id = args["id"].as_str().unwrap_or_default().to_owned();
                    let _ = unplug_device(&mut qmp, &id);
                } else {
                    let _ = qmp.execute(&command, Some(args));
                }
            }
            return Err(e);
        }
        log(format!("{key}: plugged"));
        Ok(Hotplugged::Live)
    }

    fn unplug_disk(
        &self,
        vmid: Vmid,
        config: &Section,
        key: &str,
        old: &Value,
        log: &dyn Fn(String),
    ) -> Result<Hotplugged, RuntimeError> {
        let Some(props) = GuestKind::Vm.schema().property(key, old) else { return Ok(Hotplugged::Pending) };
        if props.get("media") == Some("cdrom") {
            return Ok(Hotplugged::Pending);
        }
        if key.starts_with("scsi")
            && !config.get("scsihw").and_then(Value::as_str).is_some_and(|h| h.starts_with("virtio-scsi"))
        {
            return Ok(Hotplugged::Pending);
        }
        let mut qmp = self.qmp(vmid)?;
        let existing = peripherals(&mut qmp)?;
        if existing.contains(key) {
            unplug_device(&mut qmp, key)?;
        }
        // Top node first: a node cannot go while another uses it.
        for node in [format!("drive-{key}"), format!("fmt-{key}"), format!("file-{key}")] {
            let _ = qmp.execute("blockdev-del", Some(json!({ "node-name": node })));
        }
        for object in [format!("throttle-{key}"), format!("iothread-{key}")] {
            let _ = qmp.execute("object-del", Some(json!({ "id": object })));
        }
        // virtio-scsi-single gives each disk its own controller, which goes with it.
        if config.get("scsihw").and_then(Value::as_str) == Some("virtio-scsi-single") {
            let index: u32 = key.trim_start_matches("scsi").parse().unwrap_or(0);
            let controller = format!("virtioscsi{index}");
            if existing.contains(&controller) {
                unplug_device(&mut qmp, &controller)?;
            }
        }
        log(format!("{key}: unplugged"));
        Ok(Hotplugged::Live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_lists_become_qmp_arguments() {
        assert_eq!(
            blockdev_json("driver=file,node-name=file-virtio1,filename=/a,,b,cache.direct=on,cache.no-flush=off"),
            json!({"driver": "file", "node-name": "file-virtio1", "filename": "/a,b",
                   "cache": {"direct": true, "no-flush": false}})
        );
        assert_eq!(
            blockdev_json("driver=raw,node-name=drive-virtio1,file=file-virtio1,detect-zeroes=on,read-only=on"),
            json!({"driver": "raw", "node-name": "drive-virtio1", "file": "file-virtio1",
                   "detect-zeroes": "on", "read-only": true})
        );
        assert_eq!(
            device_json("virtio-blk-pci,id=virtio1,drive=drive-virtio1,bootindex=100"),
            json!({"driver": "virtio-blk-pci", "id": "virtio1", "drive": "drive-virtio1"})
        );
        assert_eq!(
            netdev_json("tap,id=net1,ifname=tap100i1,script=no,downscript=no,vhost=on,queues=2"),
            json!({"type": "tap", "id": "net1", "ifname": "tap100i1", "script": "no", "downscript": "no",
                   "vhost": true, "queues": 2})
        );
        assert_eq!(
            object_json("throttle-group,id=throttle-virtio1,x-bps-total=1048576"),
            json!({"qom-type": "throttle-group", "id": "throttle-virtio1", "x-bps-total": 1048576})
        );
    }
}

#[cfg(test)]
mod option_tests {
    use super::*;

    fn options(config: &[(&str, Value)], key: &str, value: &str) -> Vec<String> {
        let config: Section = config.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        let mut resolved = Resolved::new("/run/hearth/qemu", false);
        resolved.drives.insert(key.to_owned(), ResolvedDrive::file("/images/d.raw", Format::Raw));
        resolved.taps.insert(key.to_owned(), "tap100i1".to_owned());
        let vmid = Vmid::new(100).expect("valid id");
        options_for(vmid, &config, key, &Value::Str(value.into()), resolved)
            .expect("built")
            .into_iter()
            .map(|(o, v)| format!("{o} {v}"))
            .collect()
    }

    #[test]
    fn only_the_keys_own_options_are_plugged() {
        expect_test::expect![[r#"
            [
                "-blockdev driver=file,node-name=file-virtio1,filename=/images/d.raw,cache.direct=on,cache.no-flush=off",
                "-blockdev driver=raw,node-name=drive-virtio1,file=file-virtio1,cache.direct=on,cache.no-flush=off,detect-zeroes=on",
                "-device virtio-blk-pci,id=virtio1,drive=drive-virtio1,bootindex=100",
            ]
        "#]]
        .assert_debug_eq(&options(&[], "virtio1", "local:100/d.raw"));
        expect_test::expect![[r#"
            [
                "-blockdev driver=file,node-name=file-scsi2,filename=/images/d.raw,cache.direct=on,cache.no-flush=off",
                "-blockdev driver=raw,node-name=drive-scsi2,file=file-scsi2,cache.direct=on,cache.no-flush=off,detect-zeroes=on",
                "-device virtio-scsi-pci,id=scsihw0",
                "-device scsi-hd,bus=scsihw0.0,channel=0,scsi-id=0,lun=2,id=scsi2,drive=drive-scsi2,bootindex=100",
            ]
        "#]]
        .assert_debug_eq(&options(
            &[("scsihw", Value::Str("virtio-scsi-pci".into()))],
            "scsi2",
            "local:100/d.raw",
        ));
        expect_test::expect![[r#"
            [
                "-netdev tap,id=net1,ifname=tap100i1,script=no,downscript=no",
                "-device virtio-net-pci,mac=BC:24:11:00:00:01,netdev=net1,id=net1,bootindex=100",
            ]
        "#]]
        .assert_debug_eq(&options(&[("kvm", Value::Bool(false))], "net1", "virtio=BC:24:11:00:00:01,bridge=vmbr0"));
    }
}
