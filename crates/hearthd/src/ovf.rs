//! `vmctl disk rescan` (disk sizes brought up to what the storages report, and volumes of a VM
//! its configuration does not name added as `unusedN`, as `qm disk rescan`) and `vmctl importovf` (a VM from an OVF manifest and the disk files beside
//! it, as `qm importovf`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hearth_core::guest::Lock;
use hearth_core::{GuestConfig, GuestKind, Value, Vmid, ovf, size};
use hearth_proto::{ErrorKind, ErrorReply, Payload};
use hearth_storage::{NewImage, qemu_img};
use serde_json::json;

use crate::Daemon;
use crate::access::Caller;
use crate::disks::{check_images, keep_unused};
use crate::storage;

const VM: GuestKind = GuestKind::Vm;

fn err(kind: ErrorKind, message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(kind, message)
}

/// The size of each volume the VM's disks name, as the storages report it now.
fn disk_sizes(daemon: &Daemon, config: &GuestConfig) -> BTreeMap<String, u64> {
    let mut sizes = BTreeMap::new();
    for (_, volid) in crate::snapshots::disks(VM, &config.current) {
        let Ok((backend, vol)) = daemon.storages.volume(&volid) else { continue };
        if let Ok((_, bytes)) = backend.image_info(&vol) {
            sizes.insert(volid, bytes);
        }
    }
    sizes
}

/// Brings `size=` of the VM's disks up to what the storages report, and adds its unreferenced
/// volumes as `unusedN`; answers what it did, in qm's words.
fn rescan_config(
    vmid: Vmid,
    config: &mut GuestConfig,
    owned: &[String],
    sizes: &BTreeMap<String, u64>,
) -> Result<Vec<String>, ErrorReply> {
    let mut lines = Vec::new();
    for (key, volid) in crate::snapshots::disks(VM, &config.current) {
        let (Some(&bytes), Some(value)) = (sizes.get(&volid), config.current.get(&key).cloned()) else { continue };
        let old = VM.schema().property(&key, &value).and_then(|p| p.get("size").map(str::to_owned));
        let new = size::format_size(bytes);
        if old.as_deref().and_then(|o| size::parse_size(o, 1).ok()) == Some(bytes) {
            continue;
        }
        let updated = crate::snapshots::with_volume(VM, &key, &value, &volid, Some(bytes))
            .map_err(|m| err(ErrorKind::Internal, m))?;
        config.current.insert(key.clone(), updated);
        let old = old.unwrap_or_else(|| "unknown".to_owned());
        lines.push(format!("VM {vmid} ({key}): size of disk '{volid}' updated from {old} to {new}"));
    }
    let referenced: BTreeSet<String> = config.volume_refs().into_iter().map(|(_, _, v)| v).collect();
    for volid in owned.iter().filter(|v| !referenced.contains(*v)) {
        let key = keep_unused(config, volid)?;
        lines.push(format!("VM {vmid} add unreferenced volume '{volid}' as '{key}' to config"));
    }
    Ok(lines)
}

/// `vmctl disk rescan [--vmid N] [--dryrun]`: every VM of this node, or one.
pub fn rescan(daemon: &Daemon, vmid: Option<Vmid>, dryrun: bool) -> Result<Payload, ErrorReply> {
    let vmids: Vec<Vmid> = match vmid {
        Some(vmid) => {
            daemon.store.load(VM, vmid)?;
            vec![vmid]
        }
        None => daemon.store.list(VM)?.into_iter().map(|l| l.vmid).collect(),
    };
    let mut lines = vec!["rescan volumes...".to_owned()];
    for vmid in vmids {
        let owned = storage::owned_volumes(daemon, vmid);
        let sizes = match daemon.store.load(VM, vmid) {
            Ok(loaded) => disk_sizes(daemon, &loaded.config),
            Err(e) => {
                lines.push(format!("VM {vmid}: skipped: {}", ErrorReply::from(e).message));
                continue;
            }
        };
        let result = if dryrun {
            daemon.store.load(VM, vmid).map_err(ErrorReply::from).and_then(|l| {
                let mut config = l.config;
                rescan_config(vmid, &mut config, &owned, &sizes)
            })
        } else {
            daemon
                .store
                .update(VM, vmid, None, |c| match c.lock {
                    Some(lock) => Err(err(ErrorKind::Locked, format!("VM {vmid} is locked ({lock})"))),
                    None => rescan_config(vmid, c, &owned, &sizes),
                })
                .map(|(lines, _)| lines)
        };
        match result {
            Ok(found) => lines.extend(found),
            Err(e) => lines.push(format!("VM {vmid}: skipped: {}", e.message)),
        }
    }
    if dryrun {
        lines.push("NOTE: dry run, nothing was changed".to_owned());
    }
    Ok(Payload::Text(lines.join("\n") + "\n"))
}

/// A disk of the manifest with its file, checked to lie beside the manifest.
struct OvfDisk {
    address: String,
    path: PathBuf,
    format: hearth_core::storage::Format,
    size: u64,
}

fn read_manifest(manifest: &str) -> Result<(ovf::Manifest, Vec<OvfDisk>), ErrorReply> {
    let path = Path::new(manifest);
    if !path.is_absolute() {
        return Err(err(ErrorKind::Invalid, format!("manifest: '{manifest}' must be an absolute path")));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(ErrorKind::NotFound, format!("manifest: cannot read {manifest}: {e}")))?;
    let parsed = ovf::parse(&text).map_err(|m| err(ErrorKind::Invalid, format!("manifest: {m}")))?;
    let dir = path
        .parent()
        .and_then(|d| d.canonicalize().ok())
        .ok_or_else(|| err(ErrorKind::Invalid, format!("manifest: cannot resolve the directory of {manifest}")))?;
    let mut disks = Vec::new();
    for disk in &parsed.disks {
        let file = dir.join(&disk.file);
        // A symbolic link must not lead the import out of the manifest's directory.
        let real = file
            .canonicalize()
            .map_err(|e| err(ErrorKind::NotFound, format!("{}: disk file {}: {e}", disk.address, file.display())))?;
        if real.parent() != Some(dir.as_path()) {
            return Err(err(
                ErrorKind::Invalid,
                format!("{}: disk file {} lies outside the manifest's directory", disk.address, file.display()),
            ));
        }
        let (format, info) = qemu_img::probe_foreign_image(&real)
            .map_err(|e| err(ErrorKind::Invalid, format!("{}: {}: {e}", disk.address, file.display())))?;
        disks.push(OvfDisk { address: disk.address.clone(), path: real, format, size: info.virtual_size });
    }
    Ok((parsed, disks))
}

/// `vmctl importovf <vmid> <manifest> <storage> [--format] [--dryrun]` (root only, by the
/// table: the manifest is a host path).
pub fn import_ovf(
    daemon: &Arc<Daemon>,
    caller: &Caller,
    vmid: Vmid,
    manifest: &str,
    target: &str,
    format: Option<&str>,
    dryrun: bool,
) -> Result<Payload, ErrorReply> {
    let (parsed, disks) = read_manifest(manifest)?;
    let mut qm = serde_json::Map::new();
    if let Some(name) = &parsed.name {
        qm.insert("name".into(), json!(name));
    }
    if let Some(memory) = parsed.memory {
        qm.insert("memory".into(), json!(memory.to_string()));
    }
    if let Some(cores) = parsed.cores {
        qm.insert("cores".into(), json!(cores.to_string()));
    }
    if dryrun {
        let listed: Vec<_> = disks
            .iter()
            .map(|d| json!({"disk_address": d.address, "backing_file": d.path.display().to_string(), "virtual_size": d.size}))
            .collect();
        return Ok(Payload::Text(json!({"qm": qm, "disks": listed}).to_string()));
    }
    let backend = daemon.storages.backend(target)?;
    check_images(backend.config())?;
    let target_format = storage::image_format(backend.config(), format)?;
    let mut options: Vec<(String, String)> =
        qm.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect();
    if let Some(first) = disks.first() {
        options.push(("boot".into(), format!("order={}", first.address)));
    }
    let edit = hearth_core::guest::ConfigEdit::parse(VM, &options, &[], &[])
        .map_err(|e| err(ErrorKind::Invalid, format!("manifest: {e}")))?;
    let mut config = GuestConfig::new(VM);
    config.apply(&edit, hearth_core::guest::ApplyMode::Direct).map_err(|e| err(ErrorKind::Invalid, e.to_string()))?;
    config.apply_create_defaults();
    config.lock = Some(Lock::Create);
    daemon.store.create(VM, vmid, &config)?;
    let worker = Arc::clone(daemon);
    let target = target.to_owned();
    let spawned = daemon.tasks.spawn("qmimport", &vmid.to_string(), &caller.userid, move |ctx| {
        let mut imported: Vec<(String, String)> = Vec::new();
        let result = (|| -> Result<(), String> {
            for disk in &disks {
                ctx.check_stop()?;
                let bytes = disk.size.div_ceil(512) * 512;
                let new = NewImage { vmid, name: None, format: target_format, size: bytes };
                let vol = worker.storages.locked(&target, || backend.alloc(&new)).map_err(|e| e.to_string())?;
                let volid = storage::volid_of(backend.as_ref(), &vol);
                imported.push((disk.address.clone(), volid.clone()));
                let dest = backend.path(&vol).map_err(|e| e.to_string())?;
                ctx.log(format!("importing {} as {} ({volid})", disk.path.display(), disk.address));
                qemu_img::convert(&disk.path, disk.format, &dest, target_format).map_err(|e| e.to_string())?;
            }
            worker
                .store
                .update(VM, vmid, None, |c| {
                    for (key, volid) in &imported {
                        c.current.insert(key.clone(), Value::Str(volid.clone()));
                    }
                    c.lock = None;
                    Ok(())
                })
                .map_err(|e| e.message)?;
            Ok(())
        })();
        if let Err(e) = result {
            for (_, volid) in &imported {
                let _ = storage::free_volume(&worker, volid);
            }
            let _ = worker.store.remove(VM, vmid, |_| Ok(()));
            return Err(e);
        }
        ctx.log(format!(
            "VM {vmid} created from {} with {} disk(s)",
            parsed.name.as_deref().unwrap_or("the manifest"),
            imported.len()
        ));
        Ok(())
    });
    match spawned {
        Ok(upid) => Ok(Payload::Task(upid)),
        Err(e) => {
            let _ = daemon.store.remove(VM, vmid, |_| Ok(()));
            Err(e)
        }
    }
}
