//! Pending changes of running guests, as Proxmox handles them: a change to a running guest
//! goes to `[pending]`; what only describes the guest moves into the current settings at once;
//! the engine then tries the rest live ([`GuestRuntime::hotplug`]) and what it cannot do waits
//! for the next start, which applies every pending change first ([`apply_at_start`]).
//!
//! **Invariant:** a change leaves `[pending]` only once it is in effect: after the engine
//! reported it live, or when the guest is about to start. A failed hot-plug keeps it pending.
//!
//! [`GuestRuntime::hotplug`]: hearth_core::runtime::GuestRuntime::hotplug

use hearth_core::runtime::{HotplugChange, Hotplugged};
use hearth_core::schema::check;
use hearth_core::{GuestConfig, GuestKind, Value, Vmid};
use hearth_proto::{ErrorKind, ErrorReply};

use crate::Daemon;

/// The guest's own images among `volumes`: only those are kept as `unusedN` when a change
/// replaces or removes them (an ISO or another guest's volume never was this guest's to keep).
fn own_images(daemon: &Daemon, vmid: Vmid, volumes: impl IntoIterator<Item = String>) -> Vec<String> {
    volumes
        .into_iter()
        .filter(|v| !v.starts_with('/') && v.contains(':') && check::allocation(v).is_none())
        .filter(|v| {
            daemon.storages.volume(v).is_ok_and(
                |(_, vol)| matches!(vol, hearth_core::storage::VolName::Image { image, .. } if image.vmid == vmid),
            )
        })
        .collect()
}

/// The volumes `keys` name in the current settings, which committing them would displace.
pub(crate) fn displaced(
    daemon: &Daemon,
    kind: GuestKind,
    vmid: Vmid,
    config: &GuestConfig,
    keys: &[String],
) -> Vec<String> {
    let volumes = keys
        .iter()
        .filter(|key| !key.starts_with("unused"))
        .filter_map(|key| config.current.get(key.as_str()).and_then(|old| crate::referenced::volume_of(kind, key, old)))
        .map(|(volume, _)| volume);
    own_images(daemon, vmid, volumes)
}

/// The volumes the pending values of `keys` name, which reverting them would drop.
pub(crate) fn reverted(
    daemon: &Daemon,
    kind: GuestKind,
    vmid: Vmid,
    config: &GuestConfig,
    keys: &[String],
) -> Vec<String> {
    let volumes = keys
        .iter()
        .filter_map(|key| {
            config.pending.values.get(key.as_str()).and_then(|v| crate::referenced::volume_of(kind, key, v))
        })
        .map(|(volume, _)| volume);
    own_images(daemon, vmid, volumes)
}

/// Keeps displaced volumes the configuration no longer names as `unusedN`, as qm does, so no
/// data is lost by a typo.
pub(crate) fn keep_unused(config: &mut GuestConfig, volumes: Vec<String>) -> Result<(), ErrorReply> {
    for volume in volumes {
        if config.volume_refs().iter().any(|(_, _, v)| *v == volume) {
            continue;
        }
        let free = (0..=255).map(|i| format!("unused{i}")).find(|k| !config.current.contains_key(k));
        let slot = free
            .ok_or_else(|| ErrorReply::new(ErrorKind::Invalid, "no free unusedN key left for the replaced volume"))?;
        config.current.insert(slot, Value::Str(volume));
    }
    Ok(())
}

/// Moves the pending changes of `keys` into the current settings, keeping displaced volumes.
fn commit(
    daemon: &Daemon,
    kind: GuestKind,
    vmid: Vmid,
    config: &mut GuestConfig,
    keys: &[String],
) -> Result<(), ErrorReply> {
    let volumes = displaced(daemon, kind, vmid, config, keys);
    for key in keys {
        config.commit_pending(key);
    }
    keep_unused(config, volumes)
}

/// The start path's first step: applies every pending change of a stopped guest (or one about
/// to restart) to its current settings, and answers the configuration to start. `loaded` is the
/// configuration the start read; without pending changes nothing is read or written again. A
/// locked guest keeps them; its start is refused anyway.
pub(crate) fn apply_at_start(
    daemon: &Daemon,
    kind: GuestKind,
    vmid: Vmid,
    loaded: GuestConfig,
    log: &dyn Fn(String),
) -> Result<GuestConfig, ErrorReply> {
    if loaded.pending.is_empty() || loaded.lock.is_some() {
        return Ok(loaded);
    }
    let ((config, keys), _) = daemon.store.update(kind, vmid, None, |config| {
        if config.lock.is_some() {
            return Ok((config.clone(), Vec::new()));
        }
        let mut keys: Vec<String> = config.pending.values.keys().chain(config.pending.delete.iter()).cloned().collect();
        keys.sort();
        keys.dedup();
        commit(daemon, kind, vmid, config, &keys)?;
        Ok((config.clone(), keys))
    })?;
    if !keys.is_empty() {
        log(format!("applying pending changes: {}", keys.join(", ")));
    }
    Ok(config)
}

/// Tries the pending changes of `keys` on the running guest; the caller holds its operation
/// lock. Changes the engine made live move into the current settings; the others stay pending.
/// Answers the new digest and a message for each failed attempt.
pub(crate) fn hotplug(
    daemon: &Daemon,
    kind: GuestKind,
    vmid: Vmid,
    keys: &[String],
) -> Result<(Option<String>, Vec<String>), ErrorReply> {
    let config = daemon.store.load(kind, vmid)?.config;
    let runtime = daemon.runtime(kind);
    let mut live: Vec<(String, Option<Value>)> = Vec::new();
    let mut failures = Vec::new();
    // What is in effect, updated with each change made live, so the next one builds on it.
    let mut effective = config.current.clone();
    for key in keys {
        let wanted = match (config.pending.values.get(key), config.pending.delete.contains(key)) {
            (Some(value), _) => Some(value.clone()),
            (None, true) => None,
            (None, false) => continue,
        };
        let volume = match wanted.as_ref().and_then(|v| crate::referenced::volume_of(kind, key, v)) {
            Some((volume, _)) if !key.starts_with("unused") => {
                match crate::lifecycle::resolve_volume(daemon, vmid, key, &volume) {
                    Ok(resolved) => resolved,
                    Err(e) => {
                        failures.push(format!("{key}: {}", e.message));
                        continue;
                    }
                }
            }
            _ => None,
        };
        let change = HotplugChange {
            key: key.clone(),
            current: effective.get(key).cloned(),
            wanted: wanted.clone(),
            config: effective.clone(),
            volume,
        };
        let log = |line: String| tracing::info!(%vmid, "{line}");
        match runtime.hotplug(vmid, &change, &log) {
            Ok(Hotplugged::Live) => {
                match &wanted {
                    Some(value) => effective.insert(key.clone(), value.clone()),
                    None => effective.remove(key),
                };
                live.push((key.clone(), wanted));
            }
            Ok(Hotplugged::Pending) => {}
            Err(e) => failures
                .push(format!("{key}: hot-plug failed, the change stays pending until the next start: {}", e.message)),
        }
    }
    if live.is_empty() {
        return Ok((None, failures));
    }
    let (_, digest) = daemon.store.update(kind, vmid, None, |config| {
        // Only what is still the pending change that was plugged: a concurrent edit wins.
        let still: Vec<String> = live
            .iter()
            .filter(|(key, wanted)| match wanted {
                Some(value) => config.pending.values.get(key) == Some(value),
                None => config.pending.delete.contains(key),
            })
            .map(|(key, _)| key.clone())
            .collect();
        commit(daemon, kind, vmid, config, &still)
    })?;
    Ok((Some(digest), failures))
}
