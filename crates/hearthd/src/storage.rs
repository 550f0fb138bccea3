//! Storages and volumes: `etc/hearth/storage.toml`, the per-storage lock that serialises
//! volume changes, and the answers to `storectl` requests.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hearth_core::storage::{
    Content, Format, StorageConfig, StorageTable, StorageType, StreamFormat, VolName, VolumeId,
};
use hearth_core::{GuestKind, Value, Vmid, size};
use hearth_proto::{
    AddStorage, AllocVolume, ErrorKind, ErrorReply, ExportVolume, ImportVolume, ListVolumes, Payload, SetStorage,
    StorageConfigs, StorageDefinition, StorageStatus, StorageStatusFilter, UploadFile, VolumeEntry,
};
use hearth_storage::{Backend, NewImage, StorageError};

use crate::Daemon;
use crate::access::Caller;
use crate::store::write_atomic;

/// The storage table of a node and the locks of its storages.
#[derive(Debug)]
pub struct Storages {
    path: PathBuf,
    node: String,
    /// Held while storage.toml is read, changed and written.
    file_lock: Mutex<()>,
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// The last table read, with the inode, size and mtime of the file it came from: most
    /// requests consult the table, and it only changes through atomic renames (a new inode).
    cache: Mutex<Option<(FileStamp, StorageTable, String)>>,
}

/// What tells one version of storage.toml from the next.
type FileStamp = (u64, u64, i64, i64);

fn stamp(meta: &std::fs::Metadata) -> FileStamp {
    use std::os::unix::fs::MetadataExt;
    (meta.ino(), meta.size(), meta.mtime(), meta.mtime_nsec())
}

pub fn to_reply(e: StorageError) -> ErrorReply {
    let kind = match &e {
        StorageError::NotFound(_) => ErrorKind::NotFound,
        StorageError::Invalid(_) | StorageError::Unsupported(_) => ErrorKind::Invalid,
        StorageError::Conflict(_) => ErrorKind::Conflict,
        StorageError::Unavailable(_) => ErrorKind::Unavailable,
        StorageError::Io { .. } | StorageError::Command(_) => ErrorKind::Internal,
    };
    ErrorReply::new(kind, e.to_string())
}

fn invalid(message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(ErrorKind::Invalid, message)
}

impl Storages {
    /// Opens `etc/hearth/storage.toml`, writing a fresh node's table (`local` at
    /// `var/lib/hearth`) when there is none. A table that cannot be read stops hearthd.
    pub fn open(root: &Path, node: &str) -> anyhow::Result<Storages> {
        let path = root.join("etc/hearth/storage.toml");
        let local = root.join("var/lib/hearth");
        std::fs::create_dir_all(&local)?;
        if !path.exists() {
            let local = std::fs::canonicalize(&local)?;
            let local = local.to_str().ok_or_else(|| anyhow::anyhow!("{} is not UTF-8", local.display()))?;
            std::fs::create_dir_all(root.join("etc/hearth"))?;
            write_atomic(&path, StorageTable::fresh(local).to_toml().as_bytes())
                .map_err(|e| anyhow::anyhow!("writing {}: {}", path.display(), ErrorReply::from(e)))?;
        }
        let storages = Storages {
            path,
            node: node.to_owned(),
            file_lock: Mutex::new(()),
            locks: Mutex::new(HashMap::new()),
            cache: Mutex::new(None),
        };
        storages.load().map_err(|e| anyhow::anyhow!("{}", e.message))?;
        Ok(storages)
    }

    /// The table and the digest of the file it came from.
    pub fn load(&self) -> Result<(StorageTable, String), ErrorReply> {
        let unreadable = |e: std::io::Error| {
            ErrorReply::new(ErrorKind::Unavailable, format!("cannot read {}: {e}", self.path.display()))
        };
        let now = stamp(&std::fs::metadata(&self.path).map_err(unreadable)?);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((seen, table, digest)) = cache.as_ref() {
            if *seen == now {
                return Ok((table.clone(), digest.clone()));
            }
        }
        let file = File::open(&self.path).map_err(unreadable)?;
        let read_stamp = stamp(&file.metadata().map_err(unreadable)?);
        let text = std::io::read_to_string(file).map_err(unreadable)?;
        let table = StorageTable::parse(&text)
            .map_err(|e| ErrorReply::new(ErrorKind::Unavailable, format!("{}: {e}", self.path.display())))?;
        let digest = hearth_core::guest::digest(text.as_bytes());
        *cache = Some((read_stamp, table.clone(), digest.clone()));
        Ok((table, digest))
    }

    /// Changes the table under the file lock; a stale `digest` is a conflict.
    fn edit(
        &self,
        digest: Option<&str>,
        change: impl FnOnce(&mut StorageTable) -> Result<(), ErrorReply>,
    ) -> Result<String, ErrorReply> {
        let _guard = self.file_lock.lock().unwrap_or_else(|p| p.into_inner());
        let (mut table, current) = self.load()?;
        if digest.is_some_and(|d| d != current) {
            return Err(ErrorReply::new(
                ErrorKind::Conflict,
                "storage.toml changed since it was read (digest mismatch); read it again and retry",
            ));
        }
        change(&mut table)?;
        let text = table.to_toml();
        write_atomic(&self.path, text.as_bytes())?;
        Ok(hearth_core::guest::digest(text.as_bytes()))
    }

    /// One storage's definition.
    pub fn config(&self, id: &str) -> Result<StorageConfig, ErrorReply> {
        let (table, _) = self.load()?;
        if !table.storages.contains_key(id) {
            let known = table.storages.keys().cloned().collect::<Vec<_>>().join(", ");
            return Err(ErrorReply::new(
                ErrorKind::NotFound,
                format!("storage '{id}' does not exist (configured: {known})"),
            ));
        }
        let config = table.get(id).ok_or_else(|| invalid(format!("storage '{id}' has an invalid definition")))?;
        if !config.on_node(&self.node) {
            return Err(ErrorReply::new(
                ErrorKind::Unavailable,
                format!("storage '{id}' is not available on node '{}' (nodes: {})", self.node, config.nodes.join(",")),
            ));
        }
        Ok(config)
    }

    /// The backend of an enabled storage on this node.
    pub fn backend(&self, id: &str) -> Result<Box<dyn Backend>, ErrorReply> {
        let config = self.config(id)?;
        if config.disable {
            return Err(ErrorReply::new(
                ErrorKind::Unavailable,
                format!("storage '{id}' is disabled (enable it with: storectl set {id} --disable 0)"),
            ));
        }
        Ok(hearth_storage::open(&config))
    }

    /// A volume id's backend and parsed name.
    pub fn volume(&self, volid: &str) -> Result<(Box<dyn Backend>, VolName), ErrorReply> {
        let id: VolumeId = volid.parse().map_err(invalid)?;
        let backend = self.backend(&id.storage)?;
        let vol = backend.parse(&id.name).map_err(to_reply)?;
        Ok((backend, vol))
    }

    /// Runs `f` holding the lock of storage `id`: volume names are chosen and taken under it.
    pub fn locked<T>(&self, id: &str, f: impl FnOnce() -> T) -> T {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(locks.entry(id.to_owned()).or_default())
        };
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        f()
    }
}

fn json(value: &Value) -> serde_json::Value {
    match value {
        Value::Bool(b) => u8::from(*b).into(),
        Value::Int(n) => (*n).into(),
        Value::Float(x) => (*x).into(),
        Value::Str(s) => s.as_str().into(),
    }
}

pub(crate) fn volid_of(backend: &dyn Backend, vol: &VolName) -> String {
    let config = backend.config();
    VolumeId::new(&config.id, &vol.render(config.storage_type)).to_string()
}

pub fn add(daemon: &Daemon, req: AddStorage) -> Result<Payload, ErrorReply> {
    let storage_type: StorageType = req.storage_type.parse().map_err(invalid)?;
    let digest = daemon.storages.edit(None, |table| {
        table.add(&req.storage, storage_type, &req.options).map_err(|e| invalid(e.to_string()))?;
        let config = table.get(&req.storage).ok_or_else(|| invalid("the new storage cannot be read back"))?;
        // A storage that cannot be used is refused now rather than failing on first use; a
        // disabled one is taken as it is.
        if !config.disable {
            hearth_storage::open(&config).activate().map_err(to_reply)?;
        }
        Ok(())
    })?;
    Ok(Payload::Digest(digest))
}

pub fn set(daemon: &Daemon, req: SetStorage) -> Result<Payload, ErrorReply> {
    if req.options.is_empty() && req.delete.is_empty() {
        return Err(invalid("nothing to change: give at least one option or --delete"));
    }
    let digest = daemon.storages.edit(req.digest.as_deref(), |table| {
        if !table.storages.contains_key(&req.storage) {
            return Err(ErrorReply::new(ErrorKind::NotFound, format!("storage '{}' does not exist", req.storage)));
        }
        table.set(&req.storage, &req.options, &req.delete).map_err(|e| invalid(e.to_string()))
    })?;
    Ok(Payload::Digest(digest))
}

/// Guests whose configuration names a volume on `storage`: `VM 100 (scsi0)`.
fn users_of(daemon: &Daemon, storage: &str) -> Result<Vec<String>, ErrorReply> {
    let mut users = Vec::new();
    for kind in [GuestKind::Vm, GuestKind::Ct] {
        for listed in daemon.store.list(kind)? {
            let Ok(config) = listed.config.as_ref() else { continue };
            let keys: Vec<String> = config
                .volume_refs()
                .into_iter()
                .filter(|(_, _, volume)| volume.split_once(':').is_some_and(|(s, _)| s == storage))
                .map(|(section, key, _)| if section == "current" { key } else { format!("{key} in {section}") })
                .collect();
            if !keys.is_empty() {
                users.push(format!("{} {} ({})", kind.noun(), listed.vmid, keys.join(", ")));
            }
        }
    }
    Ok(users)
}

pub fn remove(daemon: &Daemon, storage: &str) -> Result<Payload, ErrorReply> {
    let users = users_of(daemon, storage)?;
    if !users.is_empty() {
        return Err(ErrorReply::new(
            ErrorKind::Conflict,
            format!("storage '{storage}' is still used by: {}; move or remove those volumes first", users.join("; ")),
        ));
    }
    daemon.storages.edit(None, |table| {
        table
            .storages
            .remove(storage)
            .map(|_| ())
            .ok_or_else(|| ErrorReply::new(ErrorKind::NotFound, format!("storage '{storage}' does not exist")))
    })?;
    Ok(Payload::Empty)
}

/// Whether `caller` may see storage `id` (Datastore.Audit on `/storage/<id>`).
fn may_audit(daemon: &Daemon, caller: &Caller, id: &str) -> bool {
    caller.is_root()
        || hearth_core::access::AclPath::parse(&format!("/storage/{id}")).is_ok_and(|p| {
            daemon.access.privileges(caller, &p).contains(hearth_core::access::Privilege::DatastoreAudit)
        })
}

pub fn config(daemon: &Daemon, caller: &Caller, storage: Option<&str>) -> Result<Payload, ErrorReply> {
    let (table, digest) = daemon.storages.load()?;
    if let Some(id) = storage {
        if !table.storages.contains_key(id) {
            return Err(ErrorReply::new(ErrorKind::NotFound, format!("storage '{id}' does not exist")));
        }
    }
    let storages = table
        .storages
        .iter()
        .filter(|(id, _)| storage.is_none_or(|s| s == id.as_str()) && may_audit(daemon, caller, id))
        .map(|(id, section)| StorageDefinition {
            storage: id.clone(),
            config: section.iter().map(|(k, v)| (k.clone(), json(v))).collect(),
        })
        .collect();
    Ok(Payload::StorageConfigs(StorageConfigs { digest, storages }))
}

pub fn status(daemon: &Daemon, caller: &Caller, filter: StorageStatusFilter) -> Result<Payload, ErrorReply> {
    let (table, _) = daemon.storages.load()?;
    let content: Option<Content> = filter.content.as_deref().map(str::parse).transpose().map_err(invalid)?;
    if let Some(id) = &filter.storage {
        daemon.storages.config(id)?;
    }
    let mut out = Vec::new();
    for config in table.all() {
        if filter.storage.as_ref().is_some_and(|s| *s != config.id)
            || !config.on_node(&daemon.node)
            || !may_audit(daemon, caller, &config.id)
            || content.is_some_and(|c| !config.has_content(c))
        {
            continue;
        }
        let mut row = StorageStatus {
            storage: config.id.clone(),
            storage_type: config.storage_type.to_string(),
            status: "disabled".into(),
            content: config.content.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(","),
            shared: config.shared,
            total: None,
            used: None,
            available: None,
            error: None,
        };
        if !config.disable {
            let backend = hearth_storage::open(&config);
            match backend.activate().and_then(|()| backend.space()) {
                Ok(space) => {
                    row.status = "active".into();
                    row.total = Some(space.total);
                    row.used = Some(space.used);
                    row.available = Some(space.available);
                }
                Err(e) => {
                    row.status = "inactive".into();
                    row.error = Some(e.to_string());
                }
            }
        }
        if filter.enabled && row.status != "active" {
            continue;
        }
        out.push(row);
    }
    Ok(Payload::StorageStatus(out))
}

pub fn list(daemon: &Daemon, req: ListVolumes) -> Result<Payload, ErrorReply> {
    let backend = daemon.storages.backend(&req.storage)?;
    let content: Option<Content> = req.content.as_deref().map(str::parse).transpose().map_err(invalid)?;
    if let Some(c) = content {
        if !backend.config().has_content(c) {
            return Err(invalid(format!("storage '{}' does not hold content '{c}'", req.storage)));
        }
    }
    let volumes = backend.list(content, req.vmid).map_err(to_reply)?;
    Ok(Payload::Volumes(
        volumes
            .into_iter()
            .map(|v| VolumeEntry {
                volid: v.volid.to_string(),
                format: v.format,
                content: v.content.to_string(),
                size: v.size,
                used: v.used,
                vmid: v.vmid,
                parent: v.parent.map(|p| p.to_string()),
                ctime: v.ctime,
            })
            .collect(),
    ))
}

/// The format a new image gets: the one asked for, else the storage's default for its content.
pub fn image_format(config: &StorageConfig, format: Option<&str>) -> Result<Format, ErrorReply> {
    match format {
        Some(f) => {
            let format: Format = f.parse().map_err(invalid)?;
            if !config.storage_type.formats().contains(&format) {
                let allowed = config.storage_type.formats().iter().map(|f| f.as_str()).collect::<Vec<_>>();
                return Err(invalid(format!(
                    "format: {} storages cannot hold {format} volumes (allowed: {})",
                    config.storage_type,
                    allowed.join(", ")
                )));
            }
            Ok(format)
        }
        None => Ok(config.default_image_format()),
    }
}

pub fn alloc(daemon: &Daemon, req: AllocVolume) -> Result<Payload, ErrorReply> {
    let backend = daemon.storages.backend(&req.storage)?;
    let size = if req.size.trim_start().starts_with('-') {
        return Err(invalid(format!("invalid size '{}': must be greater than zero", req.size)));
    } else {
        // pvesm takes a bare number in KiB.
        size::parse_size(&req.size, 1024).map_err(|m| invalid(format!("size: {m}")))?
    };
    // `vm-100-disk10.qcow2` names its format, as pvesm takes it; `--format` must agree.
    let named = req.name.rsplit_once('.').and_then(|(_, ext)| ext.parse::<Format>().ok());
    let format = match (named, req.format.as_deref()) {
        (Some(named), Some(given)) if named.as_str() != given => {
            return Err(invalid(format!("name: '{}' is a {named} image name, but --format is {given}", req.name)));
        }
        (Some(named), _) => image_format(backend.config(), Some(named.as_str()))?,
        (None, given) => image_format(backend.config(), given)?,
    };
    if size == 0 && format != Format::Subvol {
        return Err(invalid(format!("invalid size '{}': must be greater than zero", req.size)));
    }
    let name = (!req.name.is_empty()).then(|| req.name.clone());
    let new = NewImage { vmid: req.vmid, name, format, size };
    let vol = daemon.storages.locked(&req.storage, || backend.alloc(&new)).map_err(to_reply)?;
    Ok(Payload::Volume(volid_of(backend.as_ref(), &vol)))
}

/// Refuses to free a volume a guest still uses.
fn check_unused(daemon: &Daemon, volid: &str) -> Result<(), ErrorReply> {
    for kind in [GuestKind::Vm, GuestKind::Ct] {
        for listed in daemon.store.list(kind)? {
            let Ok(config) = listed.config.as_ref() else { continue };
            if let Some((section, key, _)) = config.volume_refs().into_iter().find(|(_, _, v)| v == volid) {
                let place = if section == "current" { key } else { format!("{key} in {section}") };
                return Err(ErrorReply::new(
                    ErrorKind::Conflict,
                    format!("volume '{volid}' is used by {} {} ({place}); detach it first", kind.noun(), listed.vmid),
                ));
            }
        }
    }
    Ok(())
}

pub fn free(daemon: &Daemon, volid: &str) -> Result<Payload, ErrorReply> {
    let (backend, vol) = daemon.storages.volume(volid)?;
    check_unused(daemon, volid)?;
    daemon.storages.locked(&backend.config().id, || backend.free(&vol)).map_err(to_reply)?;
    Ok(Payload::Empty)
}

pub fn path(daemon: &Daemon, volid: &str) -> Result<Payload, ErrorReply> {
    let (backend, vol) = daemon.storages.volume(volid)?;
    let path = backend.path(&vol).map_err(to_reply)?;
    Ok(Payload::Path(path.to_string_lossy().into_owned()))
}

/// Checks that a volume of this name may live on the backend's storage.
fn check_content(backend: &dyn Backend, vol: &VolName) -> Result<(), ErrorReply> {
    let config = backend.config();
    if vol.content().iter().any(|c| config.has_content(*c)) {
        return Ok(());
    }
    let wanted = vol.content().iter().map(|c| c.as_str()).collect::<Vec<_>>().join(" or ");
    Err(invalid(format!(
        "storage '{}' does not hold content {wanted} (it holds: {})",
        config.id,
        config.content.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
    )))
}

pub fn import(daemon: &Daemon, req: ImportVolume, file: File) -> Result<Payload, ErrorReply> {
    let format: StreamFormat = req.format.parse().map_err(invalid)?;
    let (backend, mut vol) = daemon.storages.volume(&req.volid)?;
    check_content(backend.as_ref(), &vol)?;
    let mut input = std::io::BufReader::with_capacity(1 << 20, file);
    daemon.storages.locked(&backend.config().id, || {
        if let VolName::Image { image, .. } = &vol {
            let exists = backend.path(&vol).is_ok_and(|p| p.symlink_metadata().is_ok());
            if exists && req.allow_rename {
                // The lowest free disk name of the same guest and format.
                let free = (0..1024u32)
                    .map(|n| {
                        let mut renamed = vol.clone();
                        if let VolName::Image { image: i, .. } = &mut renamed {
                            i.name = format!("disk-{n}");
                        }
                        renamed
                    })
                    .find(|v| backend.path(v).is_ok_and(|p| p.symlink_metadata().is_err()));
                vol = free.ok_or_else(|| {
                    ErrorReply::new(ErrorKind::Conflict, format!("VMID {} has no free disk name left", image.vmid))
                })?;
            }
        }
        backend.import(&vol, format, &mut input).map_err(to_reply)
    })?;
    Ok(Payload::Volume(volid_of(backend.as_ref(), &vol)))
}

pub fn export(daemon: &Daemon, req: ExportVolume, file: File) -> Result<Payload, ErrorReply> {
    let format: StreamFormat = req.format.parse().map_err(invalid)?;
    let (backend, vol) = daemon.storages.volume(&req.volid)?;
    check_with_snapshots(backend.as_ref(), &vol, format, req.with_snapshots)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    backend.export(&vol, format, &mut out).map_err(to_reply)?;
    std::io::Write::flush(&mut out)
        .map_err(|e| ErrorReply::new(ErrorKind::Internal, format!("writing the export stream: {e}")))?;
    Ok(Payload::Empty)
}

/// pvesm's `--with-snapshots`: qcow2+size and btrfs streams carry a volume's snapshots, the
/// other formats cannot; asking for what the format cannot do is refused.
fn check_with_snapshots(
    backend: &dyn Backend,
    vol: &VolName,
    format: StreamFormat,
    with_snapshots: Option<bool>,
) -> Result<(), ErrorReply> {
    let carries = matches!(format, StreamFormat::Qcow2Size | StreamFormat::Btrfs);
    match with_snapshots {
        Some(true) if !carries => {
            Err(invalid(format!("with-snapshots: a {format} stream cannot carry snapshots (use qcow2+size or btrfs)")))
        }
        Some(false) if carries => {
            let snapshots = backend.snapshots(vol).map_err(to_reply)?;
            if snapshots.is_empty() {
                return Ok(());
            }
            Err(invalid(format!(
                "with-snapshots: a {format} stream carries the volume's snapshots ({}); give --with-snapshots 1",
                snapshots.join(", ")
            )))
        }
        _ => Ok(()),
    }
}

pub fn upload(daemon: &Daemon, req: UploadFile, file: File) -> Result<Payload, ErrorReply> {
    let content: Content = req.content.parse().map_err(invalid)?;
    let backend = daemon.storages.backend(&req.storage)?;
    let mut input = std::io::BufReader::with_capacity(1 << 20, file);
    let volid = daemon
        .storages
        .locked(&req.storage, || hearth_storage::upload(backend.as_ref(), content, &req.filename, &mut input))
        .map_err(to_reply)?;
    Ok(Payload::Volume(volid.to_string()))
}

/// A volume `STORAGE:SIZE` asks for on behalf of a guest.
#[derive(Clone, Debug)]
pub struct Allocation {
    pub key: String,
    pub storage: String,
    pub size: u64,
    pub format: Option<String>,
}

/// Allocates a guest's new volume: VM disks as images in the storage's default format,
/// container volumes as ext4-formatted raw images (dir, size > 0) or directories/subvolumes
/// (size 0, or btrfs). Answers the volume id. `root_owner` owns the new file system's root.
pub fn allocate_for_guest(
    daemon: &Daemon,
    kind: GuestKind,
    vmid: Vmid,
    allocation: &Allocation,
    root_owner: (u32, u32),
) -> Result<String, ErrorReply> {
    let backend = daemon.storages.backend(&allocation.storage)?;
    let config = backend.config();
    let (content, format) = match kind {
        GuestKind::Vm => (Content::Images, image_format(config, allocation.format.as_deref())?),
        GuestKind::Ct => {
            let format = match config.storage_type {
                StorageType::Dir if allocation.size > 0 => Format::Raw,
                _ => Format::Subvol,
            };
            (Content::Rootdir, format)
        }
    };
    if !config.has_content(content) {
        return Err(invalid(format!(
            "{}: storage '{}' does not hold content '{content}' (it holds: {})",
            allocation.key,
            config.id,
            config.content.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    let new = NewImage { vmid, name: None, format, size: allocation.size };
    let vol = daemon.storages.locked(&config.id, || backend.alloc(&new)).map_err(to_reply)?;
    let volid = volid_of(backend.as_ref(), &vol);
    if kind == GuestKind::Ct && format == Format::Subvol {
        // A container's root directory belongs to its root user (shifted when unprivileged).
        let owned = backend.path(&vol).map_err(to_reply).and_then(|path| {
            std::os::unix::fs::chown(&path, Some(root_owner.0), Some(root_owner.1)).map_err(|e| {
                ErrorReply::new(
                    ErrorKind::Internal,
                    format!("cannot hand {} to the container's root: {e}", path.display()),
                )
            })
        });
        if let Err(e) = owned {
            let _ = daemon.storages.locked(&config.id, || backend.free(&vol));
            return Err(e);
        }
    }
    if kind == GuestKind::Ct && format == Format::Raw {
        let formatted = backend.path(&vol).map_err(to_reply).and_then(|path| make_ext4(&path, root_owner));
        if let Err(e) = formatted {
            let _ = daemon.storages.locked(&config.id, || backend.free(&vol));
            return Err(e);
        }
    }
    Ok(volid)
}

/// Puts an ext4 file system on a container's raw image, its root owned by the container's
/// root user (shifted for unprivileged containers).
fn make_ext4(path: &Path, (uid, gid): (u32, u32)) -> Result<(), ErrorReply> {
    let output = std::process::Command::new("mkfs.ext4")
        .args(["-q", "-F", "-E"])
        .arg(format!("root_owner={uid}:{gid}"))
        .arg(path)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            ErrorReply::new(ErrorKind::Unavailable, format!("cannot run mkfs.ext4 (install e2fsprogs): {e}"))
        })?;
    if !output.status.success() {
        return Err(ErrorReply::new(
            ErrorKind::Internal,
            format!("mkfs.ext4 failed: {}", String::from_utf8_lossy(&output.stderr).trim()),
        ));
    }
    Ok(())
}

/// Frees a guest's volume; used when a guest is destroyed or its creation fails.
pub fn free_volume(daemon: &Daemon, volid: &str) -> Result<(), ErrorReply> {
    let (backend, vol) = daemon.storages.volume(volid)?;
    daemon.storages.locked(&backend.config().id, || backend.free(&vol)).map_err(to_reply)
}

/// Volumes owned by `vmid` on every active storage of this node.
pub fn owned_volumes(daemon: &Daemon, vmid: Vmid) -> Vec<String> {
    let Ok((table, _)) = daemon.storages.load() else { return Vec::new() };
    let mut found = Vec::new();
    for config in table.all() {
        if config.disable || !config.on_node(&daemon.node) {
            continue;
        }
        let backend = hearth_storage::open(&config);
        if let Ok(volumes) = backend.list(None, Some(vmid)) {
            found.extend(
                volumes.into_iter().filter(|v| matches!(v.volname, VolName::Image { .. })).map(|v| v.volid.to_string()),
            );
        }
    }
    found
}

/// What lifting or raising a storage's bandwidth limit needs, as Proxmox's
/// `get_bandwidth_limit`: a `given` limit of 0 (none) or above what a storage sets for
/// `operation` asks Datastore.Allocate on that storage.
pub fn bandwidth_override_needs(
    daemon: &Daemon,
    operation: &str,
    storages: &[&str],
    given: Option<u64>,
) -> Vec<crate::access::Need> {
    let Some(given) = given else { return Vec::new() };
    storages
        .iter()
        .filter_map(|id| daemon.storages.config(id).ok())
        .filter(|config| {
            hearth_core::storage::bwlimit(config, operation).is_some_and(|limit| given == 0 || given > limit)
        })
        .map(|config| {
            crate::access::on(format!("/storage/{}", config.id), hearth_core::access::Privilege::DatastoreAllocate)
        })
        .collect()
}

/// The bandwidth limit in KiB/s for `operation` (`clone`, `move`, `restore`) touching
/// `storages`: the one the caller gave (0: none), else the lowest their `bwlimit` sets, as
/// Proxmox's `get_bandwidth_limit`.
pub fn bandwidth_limit(daemon: &Daemon, operation: &str, storages: &[&str], given: Option<u64>) -> Option<u64> {
    if let Some(kib) = given {
        return (kib > 0).then_some(kib);
    }
    storages
        .iter()
        .filter_map(|id| daemon.storages.config(id).ok())
        .filter_map(|config| hearth_core::storage::bwlimit(&config, operation))
        .min()
}
