//! Host paths that name a storage's file, as Proxmox's `path_to_volume_id`: `ctctl create 100
//! /var/lib/vz/template/cache/x.tar.zst` is `local:vztmpl/x.tar.zst`, `vmctl restore
//! /var/lib/vz/dump/vzdump-qemu-100-….vma.zst 101` is `local:backup/vzdump-…`. A request is
//! rewritten before it is authorized, so such a path needs exactly the rights of its volume id;
//! any other host path stays a path, which only root@pam may use (`referenced::volume_needs`).

use std::path::{Component, Path};

use hearth_core::storage::{Content, StorageType, VolName, check_file_name};
use hearth_proto::{CtRequest, Request, VmRequest};

use crate::Daemon;

/// The volume id of the file at `path` when it lies directly in the `content` directory of an
/// enabled file storage of this node; `None` for any other path.
pub fn volume_of_path(daemon: &Daemon, path: &str, content: Content) -> Option<String> {
    let path = Path::new(path);
    // Only plain absolute paths: `..` or `.` could make a storage's name cover another file.
    if !path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir | Component::CurDir)) {
        return None;
    }
    let file = path.file_name()?.to_str()?;
    check_file_name(content, file).ok()?;
    let dir = path.parent()?;
    let (table, _) = daemon.storages.load().ok()?;
    table
        .all()
        .into_iter()
        .filter(|c| c.storage_type != StorageType::Chunkstore && !c.disable && c.on_node(&daemon.node))
        .filter(|c| c.has_content(content))
        .find(|c| hearth_storage::content_path(c, content, "") == dir || content_dir(c, content) == dir)
        .map(|c| {
            let name = VolName::File { content, file: file.to_owned() }.render(c.storage_type);
            format!("{}:{name}", c.id)
        })
}

/// The content directory without a trailing separator.
fn content_dir(config: &hearth_core::storage::StorageConfig, content: Content) -> std::path::PathBuf {
    Path::new(&config.path).join(content.subdir())
}

/// Replaces the host paths a request names (a restore's archive, a container template) by the
/// volume ids they are, where they are a storage's files.
pub fn resolve(daemon: &Daemon, request: &mut Request) {
    let (value, content) = match request {
        Request::Vm(VmRequest::Restore(r)) | Request::Ct(CtRequest::Restore(r)) => (&mut r.archive, Content::Backup),
        Request::Ct(CtRequest::Create(c)) => match &mut c.ct {
            Some(ct) => (&mut ct.ostemplate, Content::Vztmpl),
            None => return,
        },
        _ => return,
    };
    if !value.starts_with('/') {
        return;
    }
    if let Some(volid) = volume_of_path(daemon, value, content) {
        *value = volid;
    }
}
