//! `import-from=` on a drive: `--scsi0 local:0,import-from=<source>` makes the new disk a copy
//! of an image in one step, in create and set, as qm does. The source is a host path (root's:
//! the table asks it), a storage's `import` volume, or another disk image (which needs
//! `VM.Clone` on its guest). Sources are checked before anything is made: they must exist, be
//! raw, qcow2 or vmdk images with content, and reach no other file (no backing file).

use std::path::PathBuf;

use hearth_core::cloudinit;
use hearth_core::storage::{Content, Format, VolName};
use hearth_core::{GuestKind, Value, Vmid, size};
use hearth_proto::{ErrorKind, ErrorReply};
use hearth_storage::{NewImage, qemu_img};

use crate::Daemon;
use crate::storage::{self, to_reply};

const VM: GuestKind = GuestKind::Vm;

fn invalid(message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(ErrorKind::Invalid, message)
}

/// A checked import source.
#[derive(Clone, Debug)]
pub struct Source {
    /// As the user named it.
    pub name: String,
    pub path: PathBuf,
    pub format: Format,
    /// Virtual size in bytes.
    pub size: u64,
}

/// The `import-from` of a drive value, if any.
pub fn source_of(key: &str, value: &Value) -> Option<String> {
    VM.schema().property(key, value)?.get("import-from").map(str::to_owned)
}

/// Checks an `import-from` source for drive `key`; the drive's file must be `STORAGE:0`.
pub fn check(daemon: &Daemon, key: &str, value: &Value) -> Result<Option<Source>, ErrorReply> {
    let Some(name) = source_of(key, value) else { return Ok(None) };
    let props = VM.schema().property(key, value).ok_or_else(|| invalid(format!("{key}: not a drive")))?;
    let file = props.get("file").unwrap_or_default();
    if !matches!(hearth_core::schema::check::allocation(file), Some((_, 0))) {
        return Err(invalid(format!(
            "{key}: 'import-from' requires special syntax - use <storage ID>:0,import-from=<source>"
        )));
    }
    let bad = |m: String| invalid(format!("{key}: import-from '{name}': {m}"));
    let (path, probe) = if name.starts_with('/') {
        let meta = std::fs::metadata(&name).map_err(|e| bad(format!("cannot read it: {e}")))?;
        use std::os::unix::fs::FileTypeExt;
        if !(meta.is_file() || meta.file_type().is_block_device()) {
            return Err(bad("not an image file (expected a regular file or a block device)".into()));
        }
        (PathBuf::from(&name), true)
    } else {
        let (backend, vol) = daemon.storages.volume(&name).map_err(|e| bad(e.message))?;
        let path = backend.path(&vol).map_err(|e| bad(e.to_string()))?;
        if !path.exists() {
            return Err(bad("the volume does not exist".into()));
        }
        match &vol {
            VolName::File { content: Content::Import, .. } => (path, true),
            VolName::Image { image, .. } => {
                if cloudinit::is_drive(&name, image.vmid) {
                    return Err(bad("cannot import from a cloud-init drive".into()));
                }
                // A running guest writes to it: a copy would not be consistent.
                if daemon.guest_running(VM, image.vmid) {
                    return Err(bad(format!("its VM {} is running; stop it first", image.vmid)));
                }
                (path, false)
            }
            VolName::File { content, .. } => {
                return Err(bad(format!("has wrong type '{content}' - needs to be 'images' or 'import'")));
            }
        }
    };
    let (format, size) = if probe {
        // Files from outside the storages are untrusted: probed, refused if they reach others.
        let (format, info) = qemu_img::probe_foreign_image(&path).map_err(|e| bad(e.to_string()))?;
        (format, info.virtual_size)
    } else {
        let (backend, vol) = daemon.storages.volume(&name)?;
        backend.image_info(&vol).map_err(|e| bad(e.to_string()))?
    };
    if size == 0 {
        return Err(bad("the image is empty".into()));
    }
    Ok(Some(Source { name, path, format, size }))
}

/// Makes the new disk on `storage` from `source`; answers its volume id and size. A copy that
/// fails is freed.
pub fn import(
    daemon: &Daemon,
    vmid: Vmid,
    key: &str,
    storage: &str,
    format: Option<&str>,
    source: &Source,
    log: &dyn Fn(String),
) -> Result<(String, u64), ErrorReply> {
    let backend = daemon.storages.backend(storage)?;
    if !backend.config().has_content(Content::Images) {
        return Err(invalid(format!("{key}: storage '{storage}' does not hold content 'images'")));
    }
    let format = storage::image_format(backend.config(), format)?;
    let bytes = source.size.div_ceil(4096) * 4096;
    log(format!(
        "{key}: importing {} ({}, {}) to storage '{storage}' as {format}",
        source.name,
        source.format,
        size::format_size(bytes)
    ));
    let new = NewImage { vmid, name: None, format, size: bytes };
    let vol = daemon.storages.locked(storage, || backend.alloc(&new)).map_err(to_reply)?;
    let volid = storage::volid_of(backend.as_ref(), &vol);
    let copied = backend
        .path(&vol)
        .map_err(to_reply)
        .and_then(|target| qemu_img::convert(&source.path, source.format, &target, format).map_err(to_reply));
    if let Err(e) = copied {
        let _ = storage::free_volume(daemon, &volid);
        return Err(ErrorReply::new(e.kind, format!("{key}: cannot import '{}': {}", source.name, e.message)));
    }
    Ok((volid, bytes))
}

/// The drive value after its import: the new volume and size, without `import-from`.
pub fn imported_value(key: &str, value: &Value, volid: &str, bytes: u64) -> Result<Value, ErrorReply> {
    let with = crate::snapshots::with_volume(VM, key, value, volid, Some(bytes)).map_err(invalid)?;
    let mut props = VM.schema().property(key, &with).ok_or_else(|| invalid(format!("{key}: not a drive")))?;
    props.remove("import-from");
    Ok(Value::Str(props.to_string()))
}
