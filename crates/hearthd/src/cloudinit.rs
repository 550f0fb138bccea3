//! A VM's cloud-init drive, as qm handles it: the keys made ready for storage (the password
//! hashed, snippets checked), the drive allocated as `vm-<vmid>-cloudinit`, and its ISO image
//! regenerated from the configuration at every start, on `vmctl cloudinit update`, and live
//! when `hotplug` includes `cloudinit`. `dump` shows the generated files, `pending` the
//! cloud-init keys changed since the drive was last written.
//!
//! What the drive was last made from is kept in `var/lib/hearth/cloudinit/<vmid>.json`, beside
//! the configuration rather than in it, so that writing the drive never edits the guest file.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hearth_core::cloudinit::{self, Custom, DriveContent, DumpType, HostDns};
use hearth_core::guest::Section;
use hearth_core::storage::{Content, Format, StorageType, VolName};
use hearth_core::{GuestKind, Value, Vmid};
use hearth_proto::{ErrorKind, ErrorReply, Payload, PendingItem};
use hearth_storage::{NewImage, qemu_img};

use crate::Daemon;
use crate::access::Caller;
use crate::storage::{self, to_reply};

const VM: GuestKind = GuestKind::Vm;

fn err(kind: ErrorKind, message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(kind, message)
}

fn invalid(message: impl Into<String>) -> ErrorReply {
    err(ErrorKind::Invalid, message)
}

/// Makes cloud-init values ready to store, before anything changes: `cipassword` is hashed
/// (SHA-512 crypt, unless it already is a crypt hash), gateways are checked against their
/// addresses, `cicustom` snippets must exist, and a new drive's storage must hold images.
pub fn prepare_values(daemon: &Daemon, values: &mut [(String, Value)]) -> Result<(), ErrorReply> {
    let schema = VM.schema();
    for (key, value) in values.iter_mut() {
        if key == "cipassword" {
            if let Some(plain) = value.as_str().filter(|p| !cloudinit::is_hashed(p)) {
                let mut random = [0u8; 16];
                getrandom::fill(&mut random)
                    .map_err(|e| err(ErrorKind::Internal, format!("cannot get random bytes for a salt: {e}")))?;
                *value = Value::Str(cloudinit::hash_password(plain, &cloudinit::salt(&random)));
            }
        } else if key.starts_with("ipconfig") {
            if let Some(props) = schema.property(key, value) {
                cloudinit::check_ipconfig(&props).map_err(|m| invalid(format!("{key}: {m}")))?;
            }
        } else if key == "cicustom" {
            let props = schema.property(key, value).ok_or_else(|| invalid("cicustom: cannot be parsed"))?;
            for (kind, volume) in props.entries() {
                snippet_path(daemon, volume).map_err(|m| invalid(format!("cicustom: {kind}: {m}")))?;
            }
        } else if let Some(props) = schema.property(key, value).filter(|_| is_drive_key(key)) {
            let Some(file) = props.get("file") else { continue };
            if let Some(storage) = cloudinit::new_drive(file) {
                let backend =
                    daemon.storages.backend(storage).map_err(|e| err(e.kind, format!("{key}: {}", e.message)))?;
                if !backend.config().has_content(Content::Images) {
                    return Err(invalid(format!("{key}: storage '{storage}' does not hold content 'images'")));
                }
                storage::image_format(backend.config(), props.get("format"))
                    .map_err(|e| invalid(format!("{key}: {}", e.message)))?;
            }
        }
    }
    Ok(())
}

/// `ide2`, `scsi0`, …: the keys that hold drives.
pub fn is_drive_key(key: &str) -> bool {
    hearth_core::vm::DISK_BUSES
        .iter()
        .any(|(bus, _)| key.strip_prefix(bus).is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit())))
}

/// Refuses a second cloud-init drive: a VM has at most one.
pub fn check_single_drive(config: &Section, vmid: Vmid, new_keys: &[String]) -> Result<(), ErrorReply> {
    let existing: Vec<String> = cloudinit::drives(config, vmid).into_iter().map(|(k, _)| k).collect();
    match (existing.first(), new_keys) {
        (Some(key), [new, ..]) => Err(invalid(format!("{new}: a cloud-init drive is already attached at '{key}'"))),
        (None, [first, second, ..]) => {
            Err(invalid(format!("{second}: a cloud-init drive is already given as '{first}'")))
        }
        _ => Ok(()),
    }
}

/// The host path of a `cicustom` snippet: a `snippets` volume that exists as a regular file.
fn snippet_path(daemon: &Daemon, volume: &str) -> Result<PathBuf, String> {
    let (backend, vol) = daemon.storages.volume(volume).map_err(|e| e.message)?;
    if !matches!(vol, VolName::File { content: Content::Snippets, .. }) {
        return Err(format!("'{volume}' is not in the snippets directory of its storage"));
    }
    if !backend.config().has_content(Content::Snippets) {
        return Err(format!("storage '{}' does not hold content 'snippets'", backend.config().id));
    }
    let path = backend.path(&vol).map_err(|e| e.to_string())?;
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_file() => Ok(path),
        Ok(_) => Err(format!("snippet '{volume}' is not a regular file")),
        Err(_) => Err(format!("snippet '{volume}' does not exist")),
    }
}

fn read_snippet(daemon: &Daemon, volume: &str) -> Result<String, String> {
    let path = snippet_path(daemon, volume)?;
    let mut text = String::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(cloudinit::MAX_SNIPPET + 1).read_to_string(&mut text))
        .map_err(|e| format!("cannot read snippet '{volume}': {e}"))?;
    if text.len() as u64 > cloudinit::MAX_SNIPPET {
        return Err(format!("snippet '{volume}' is larger than 1 MiB"));
    }
    Ok(text)
}

fn read_custom(daemon: &Daemon, config: &Section) -> Result<Custom, String> {
    let mut custom = Custom::default();
    let Some(props) = config.get("cicustom").and_then(|v| VM.schema().property("cicustom", v)) else {
        return Ok(custom);
    };
    for (kind, volume) in props.entries() {
        let text = Some(read_snippet(daemon, volume).map_err(|m| format!("cicustom: {kind}: {m}"))?);
        match kind {
            "user" => custom.user = text,
            "network" => custom.network = text,
            "meta" => custom.meta = text,
            _ => custom.vendor = text,
        }
    }
    Ok(custom)
}

/// The node's DNS settings, which guests without `nameserver`/`searchdomain` get.
pub fn host_dns(daemon: &Daemon) -> HostDns {
    std::fs::read_to_string(daemon.root.join("etc/resolv.conf")).map(|t| HostDns::parse(&t)).unwrap_or_default()
}

/// Allocates the cloud-init drive of `vmid` on `storage`: `vm-<vmid>-cloudinit[.<format>]`,
/// 4 MiB, qcow2 on directory storages unless `format` says otherwise. Answers its volume id.
pub fn allocate_drive(daemon: &Daemon, vmid: Vmid, storage: &str, format: Option<&str>) -> Result<String, ErrorReply> {
    let backend = daemon.storages.backend(storage)?;
    let config = backend.config();
    let format = match format {
        Some(_) => storage::image_format(config, format)?,
        None if config.storage_type == StorageType::Dir => Format::Qcow2,
        None => config.default_image_format(),
    };
    let name = match config.storage_type {
        StorageType::Dir => format!("vm-{vmid}-cloudinit.{format}"),
        _ => format!("vm-{vmid}-cloudinit"),
    };
    let new = NewImage { vmid, name: Some(name), format, size: cloudinit::DRIVE_SIZE };
    let vol = daemon.storages.locked(&config.id, || backend.alloc(&new)).map_err(to_reply)?;
    Ok(storage::volid_of(backend.as_ref(), &vol))
}

/// The drive value of a freshly allocated cloud-init drive: its volume as CD-ROM media, without
/// the `format=` the allocation used.
pub fn drive_value(key: &str, value: &Value, volid: &str) -> Result<Value, ErrorReply> {
    let schema = VM.schema();
    let mut props = schema.property(key, value).ok_or_else(|| invalid(format!("{key}: not a drive")))?;
    let hearth_core::schema::Kind::Prop(prop_schema) =
        schema.lookup(key).ok_or_else(|| invalid(format!("{key}: not a drive")))?.kind
    else {
        return Err(invalid(format!("{key}: not a drive")));
    };
    props.insert(prop_schema, "file", volid.to_owned());
    props.insert(prop_schema, "media", "cdrom".to_owned());
    props.remove("format");
    props.remove("size");
    Ok(Value::Str(props.to_string()))
}

fn state_path(daemon: &Daemon, vmid: Vmid) -> PathBuf {
    daemon.root.join(format!("var/lib/hearth/cloudinit/{vmid}.json"))
}

/// Forgets what the drive of a destroyed VM was made from.
pub fn forget(daemon: &Daemon, vmid: Vmid) {
    let _ = std::fs::remove_file(state_path(daemon, vmid));
}

fn saved_state(daemon: &Daemon, vmid: Vmid) -> Option<BTreeMap<String, String>> {
    let text = std::fs::read(state_path(daemon, vmid)).ok()?;
    serde_json::from_slice(&text).ok()
}

fn save_state(daemon: &Daemon, vmid: Vmid, config: &Section) -> Result<(), String> {
    let state: BTreeMap<String, String> =
        cloudinit::settings(config).into_iter().map(|(k, v)| (k, v.to_string())).collect();
    let path = state_path(daemon, vmid);
    let dir = path.parent().expect("the state file is in a directory");
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let temp = path.with_extension("json.tmp");
    let json = serde_json::to_vec_pretty(&state).expect("a string map serializes");
    std::fs::write(&temp, json)
        .and_then(|()| std::fs::rename(&temp, &path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Builds the ISO9660 image of `content` with genisoimage, as Proxmox does.
fn build_iso(work: &Path, content: &DriveContent) -> Result<PathBuf, String> {
    let tree = work.join("tree");
    for (name, text) in &content.files {
        let path = tree.join(name);
        let dir = path.parent().expect("drive files are inside the tree");
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let iso = work.join("drive.iso");
    let output = Command::new("genisoimage")
        .args(["-quiet", "-iso-level", "3", "-J", "-R", "-V", content.label, "-o"])
        .arg(&iso)
        .arg(&tree)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run genisoimage (install the genisoimage package): {e}"))?;
    if !output.status.success() {
        return Err(format!("genisoimage failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
    }
    Ok(iso)
}

/// Writes the drive's content into the volume `volid` (grown if the image does not fit).
fn write_drive(daemon: &Daemon, vmid: Vmid, volid: &str, content: &DriveContent) -> Result<(), String> {
    let (backend, vol) = daemon.storages.volume(volid).map_err(|e| e.message)?;
    let target = backend.path(&vol).map_err(|e| e.to_string())?;
    let (format, size) = backend.image_info(&vol).map_err(|e| format!("{volid}: {e}"))?;
    let work = daemon.root.join(format!("run/hearth/cloudinit/{vmid}"));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let written = (|| {
        let iso = build_iso(&work, content)?;
        let iso_size = std::fs::metadata(&iso).map_err(|e| format!("cannot read {}: {e}", iso.display()))?.len();
        if iso_size > size {
            // As Proxmox: the drive grows in steps of 4 MiB when the image does not fit.
            let grown = iso_size.div_ceil(cloudinit::DRIVE_SIZE) * cloudinit::DRIVE_SIZE;
            qemu_img::resize(&target, format, grown).map_err(|e| format!("cannot grow {volid}: {e}"))?;
        }
        qemu_img::convert(&iso, Format::Raw, &target, format).map_err(|e| format!("cannot write {volid}: {e}"))
    })();
    let _ = std::fs::remove_dir_all(&work);
    written
}

/// Regenerates every cloud-init drive of `config` (there is at most one) and records what it
/// was made from. Answers whether there was a drive. Called at every start, by `update`, and
/// by the live update of a running VM.
pub fn regenerate(daemon: &Daemon, vmid: Vmid, config: &Section, log: &dyn Fn(String)) -> Result<bool, String> {
    let drives = cloudinit::drives(config, vmid);
    if drives.is_empty() {
        return Ok(false);
    }
    let custom = read_custom(daemon, config)?;
    let content = cloudinit::generate(config, vmid, custom, &host_dns(daemon))?;
    for (key, volid) in &drives {
        log(format!("{key}: generating cloud-init drive ({})", content.label));
        write_drive(daemon, vmid, volid, &content)?;
    }
    save_state(daemon, vmid, config)?;
    Ok(true)
}

/// `vmctl cloudinit dump <vmid> user|network|meta`. The password is masked unless the caller
/// may change cloud-init settings, as Proxmox does.
pub fn dump(daemon: &Daemon, caller: &Caller, vmid: Vmid, what: &str) -> Result<Payload, ErrorReply> {
    let what: DumpType = what.parse().map_err(|m: String| invalid(format!("type: {m}")))?;
    let config = daemon.store.load(VM, vmid)?.config;
    let privileged = caller.is_root()
        || daemon
            .access
            .privileges(caller, &hearth_core::access::AclPath::vm(vmid))
            .contains(hearth_core::access::Privilege::VmConfigCloudinit);
    Ok(Payload::Text(cloudinit::dump(&config.current, vmid, what, &host_dns(daemon), !privileged)))
}

fn shown(key: &str, value: String) -> serde_json::Value {
    if key == "cipassword" { cloudinit::MASK.into() } else { value.into() }
}

/// `vmctl cloudinit pending <vmid>`: each cloud-init key with the value the drive was made
/// from and, when it changed since, the new one; keys removed since are deletions. Before the
/// drive was ever written every key is new.
pub fn pending(daemon: &Daemon, vmid: Vmid) -> Result<Payload, ErrorReply> {
    let config = daemon.store.load(VM, vmid)?.config;
    // The drive is written next from the configuration with its pending changes applied.
    let now: BTreeMap<String, String> =
        cloudinit::settings(&config.merged()).into_iter().map(|(k, v)| (k, v.to_string())).collect();
    let saved = saved_state(daemon, vmid).unwrap_or_default();
    let mut items = Vec::new();
    for (key, value) in &now {
        let item = match saved.get(key) {
            Some(old) if old == value => {
                PendingItem { key: key.clone(), value: Some(shown(key, value.clone())), pending: None, delete: false }
            }
            old => PendingItem {
                key: key.clone(),
                value: old.map(|o| shown(key, o.clone())),
                pending: Some(shown(key, value.clone())),
                delete: false,
            },
        };
        items.push(item);
    }
    for (key, old) in saved.iter().filter(|(k, _)| !now.contains_key(*k)) {
        items.push(PendingItem { key: key.clone(), value: Some(shown(key, old.clone())), pending: None, delete: true });
    }
    Ok(Payload::Pending(items))
}

fn hotplug_cloudinit(config: &Section) -> bool {
    // Proxmox's default hot-plug set is network,disk,usb: cloudinit must be named.
    config.get("hotplug").and_then(Value::as_str).is_some_and(|h| h.split(',').any(|f| f == "cloudinit"))
}

/// `vmctl cloudinit update <vmid>`: regenerates the drive now; on a running VM only when its
/// `hotplug` includes `cloudinit`, by swapping the CD-ROM's medium.
pub fn update(daemon: &Daemon, vmid: Vmid) -> Result<Payload, ErrorReply> {
    let run_lock = daemon.run_lock(VM, vmid);
    let _held = run_lock.lock().unwrap_or_else(|p| p.into_inner());
    let config = daemon.store.load(VM, vmid)?.config;
    if let Some(lock) = config.lock {
        return Err(err(ErrorKind::Locked, format!("VM {vmid} is locked ({lock})")));
    }
    let running = daemon.guest_running(VM, vmid);
    if running && !hotplug_cloudinit(&config.current) {
        return Err(err(
            ErrorKind::Conflict,
            format!(
                "VM {vmid} is running and its hotplug does not include cloudinit; the drive is regenerated at \
                 its next start (or add cloudinit to --hotplug)"
            ),
        ));
    }
    // As qm: the pending cloud-init settings become current, then the drive is written from them.
    let ((), _) = daemon.store.update(VM, vmid, None, |config| {
        let keys: Vec<String> = config
            .pending
            .values
            .keys()
            .chain(config.pending.delete.iter())
            .filter(|k| cloudinit::is_key(k))
            .cloned()
            .collect();
        for key in keys {
            config.commit_pending(&key);
        }
        Ok(())
    })?;
    let config = daemon.store.load(VM, vmid)?.config;
    let drives = cloudinit::drives(&config.current, vmid);
    if drives.is_empty() {
        return Err(invalid(format!(
            "VM {vmid} has no cloud-init drive (add one with: vmctl set {vmid} --ide2 <storage>:cloudinit)"
        )));
    }
    if !running {
        regenerate(daemon, vmid, &config.current, &|_| ()).map_err(|m| err(ErrorKind::Internal, m))?;
        return Ok(Payload::Empty);
    }
    live_update(daemon, vmid, &config.current, &drives).map(|()| Payload::Empty)
}

/// Swaps the medium of the running VM's cloud-init CD-ROM for a freshly written one: eject,
/// drop the block nodes (QEMU holds the image locked), write, add them again, insert.
fn live_update(daemon: &Daemon, vmid: Vmid, config: &Section, drives: &[(String, String)]) -> Result<(), ErrorReply> {
    let qmp_err = |e: hearth_qemu::QmpError| err(ErrorKind::Internal, format!("QMP: {e}"));
    let mut qmp = daemon.qemu.qmp(vmid).map_err(crate::lifecycle::runtime_reply)?;
    for (key, _) in drives {
        let (file, node) = (format!("file-{key}"), format!("drive-{key}"));
        qmp.execute("blockdev-open-tray", Some(serde_json::json!({ "id": key, "force": true }))).map_err(qmp_err)?;
        qmp.execute("blockdev-remove-medium", Some(serde_json::json!({ "id": key }))).map_err(qmp_err)?;
        qmp.execute("blockdev-del", Some(serde_json::json!({ "node-name": node }))).map_err(qmp_err)?;
        qmp.execute("blockdev-del", Some(serde_json::json!({ "node-name": file }))).map_err(qmp_err)?;
    }
    let written = regenerate(daemon, vmid, config, &|_| ()).map_err(|m| err(ErrorKind::Internal, m));
    // The media go back in even when writing failed: the old image is still there.
    for (key, volid) in drives {
        let (file, node) = (format!("file-{key}"), format!("drive-{key}"));
        let (backend, vol) = daemon.storages.volume(volid)?;
        let path = backend.path(&vol).map_err(to_reply)?;
        let (format, _) = backend.image_info(&vol).map_err(to_reply)?;
        let add_file = serde_json::json!({
            "driver": "file", "node-name": file, "filename": path, "read-only": true,
        });
        qmp.execute("blockdev-add", Some(add_file)).map_err(qmp_err)?;
        let add_node = serde_json::json!({
            "driver": format.as_str(), "node-name": node, "file": file, "read-only": true,
        });
        qmp.execute("blockdev-add", Some(add_node)).map_err(qmp_err)?;
        qmp.execute("blockdev-insert-medium", Some(serde_json::json!({ "id": key, "node-name": node })))
            .map_err(qmp_err)?;
        qmp.execute("blockdev-close-tray", Some(serde_json::json!({ "id": key }))).map_err(qmp_err)?;
    }
    written.map(|_| ())
}
