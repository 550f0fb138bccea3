//! Rights on what a request names besides its guest: volumes, ISOs, templates, backups,
//! storages and bridges, and the keys a restore brings in.
//!
//! The table in `access` names one ACL path per request. A guest configuration reaches further:
//! `--ide2 local:iso/x.iso,media=cdrom` reads an ISO, `--virtio1 local:4` spends space on a
//! storage, `--net0 virtio,bridge=vmbr1` joins a network, a restore reads another guest's backup.
//! Each of those is checked here, as Proxmox's `check_volume_access`, `check_storage_access` and
//! `check_bridge_access` do, before anything changes.

use hearth_core::access::{AclPath, Privilege};
use hearth_core::schema::check;
use hearth_core::storage::{Content, VolName};
use hearth_core::{GuestKind, Value, Vmid};
use hearth_proto::{ErrorKind, ErrorReply};

use crate::Daemon;
use crate::access::{Caller, GuestSet, authorize_also, key_privilege};

fn denied(caller: &Caller, what: String) -> ErrorReply {
    ErrorReply::new(ErrorKind::PermissionDenied, format!("permission denied: {} {what}", caller.userid))
}

fn holds(daemon: &Daemon, caller: &Caller, path: &str, privilege: Privilege) -> bool {
    caller.is_root() || AclPath::parse(path).is_ok_and(|p| daemon.access.privileges(caller, &p).contains(privilege))
}

/// The guest whose backup a backup volume holds: the vmid in a vzdump archive's name, or the
/// group id of a chunk store snapshot.
fn backup_owner(daemon: &Daemon, volid: &str, vol: Option<&VolName>) -> Option<Vmid> {
    if let Some((_, snap)) = crate::chunks::parse_volid(daemon, volid) {
        return snap.id.parse().ok();
    }
    match vol? {
        VolName::File { content: Content::Backup, file } => {
            hearth_core::storage::parse_backup_name(file).map(|b| b.vmid)
        }
        _ => None,
    }
}

/// Whether `caller` may use the volume `volid` for guest `vmid`, as Proxmox's
/// `PVE::Storage::check_volume_access`: `Datastore.Allocate` on its storage allows everything;
/// ISOs, templates and import files need `Datastore.AllocateSpace` or `Datastore.Audit` there; a
/// guest's own images are its own; another guest's backup needs `Datastore.AllocateSpace` on the
/// storage and `VM.Backup` on that guest; another guest's image `Datastore.Audit` and
/// `VM.Config.Disk` on it. Anything else (snippets, unowned backups) only with
/// `Datastore.Allocate`. `expected` is the content the use needs (`rootdir` accepts images);
/// a volume of another content is refused whoever asks.
pub fn check_volume_access(
    daemon: &Daemon,
    caller: &Caller,
    vmid: Option<Vmid>,
    volid: &str,
    expected: Option<Content>,
) -> Result<(), ErrorReply> {
    if volid.starts_with('/') {
        return if caller.is_root() {
            Ok(())
        } else {
            Err(denied(caller, format!("may not name host path '{volid}': only root@pam may")))
        };
    }
    let chunk_backup = crate::chunks::parse_volid(daemon, volid).is_some();
    let vol = if chunk_backup { None } else { Some(daemon.storages.volume(volid)?.1) };
    let content = match &vol {
        None => Content::Backup,
        Some(VolName::File { content, .. }) => *content,
        Some(VolName::Image { .. }) => Content::Images,
    };
    if let Some(expected) = expected {
        let fits = content == expected || (expected == Content::Rootdir && content == Content::Images);
        if !fits {
            return Err(ErrorReply::new(
                ErrorKind::Invalid,
                format!("cannot use volume '{volid}': its content is '{content}', this needs '{expected}'"),
            ));
        }
    }
    if caller.is_root() {
        return Ok(());
    }
    let storage = volid.split_once(':').map_or(volid, |(s, _)| s);
    let on_storage = format!("/storage/{storage}");
    if holds(daemon, caller, &on_storage, Privilege::DatastoreAllocate) {
        return Ok(());
    }
    match (&vol, content) {
        (_, Content::Iso | Content::Vztmpl | Content::Import) => {
            // Templates and ISOs can be sensitive: at least read access to the storage.
            if holds(daemon, caller, &on_storage, Privilege::DatastoreAllocateSpace)
                || holds(daemon, caller, &on_storage, Privilege::DatastoreAudit)
            {
                Ok(())
            } else {
                daemon.access.audit(&caller.userid, &format!("denied use of {volid}"));
                Err(denied(
                    caller,
                    format!("lacks Datastore.AllocateSpace or Datastore.Audit on {on_storage} to use '{volid}'"),
                ))
            }
        }
        (Some(VolName::Image { image, .. }), _) if Some(image.vmid) == vmid => Ok(()),
        (_, Content::Backup) => match backup_owner(daemon, volid, vol.as_ref()) {
            Some(owner) => {
                authorize_also(&daemon.access, caller, on_storage, &["Datastore.AllocateSpace"])?;
                authorize_also(&daemon.access, caller, format!("/vms/{owner}"), &["VM.Backup"])
            }
            None => {
                daemon.access.audit(&caller.userid, &format!("denied use of {volid}"));
                Err(denied(
                    caller,
                    format!("lacks Datastore.Allocate on {on_storage} to use '{volid}', a backup of no known guest"),
                ))
            }
        },
        (Some(VolName::Image { image, .. }), _) => {
            authorize_also(&daemon.access, caller, on_storage, &["Datastore.Audit"])?;
            authorize_also(&daemon.access, caller, format!("/vms/{}", image.vmid), &["VM.Config.Disk"])
        }
        _ => {
            daemon.access.audit(&caller.userid, &format!("denied use of {volid}"));
            Err(denied(caller, format!("lacks Datastore.Allocate on {on_storage} to use '{volid}'")))
        }
    }
}

/// The ACL path of a local bridge, as Proxmox's SDN names it: `/sdn/zones/localnetwork/<bridge>`.
pub fn bridge_path(bridge: &str) -> String {
    format!("/sdn/zones/localnetwork/{bridge}")
}

/// Checks what the values of a create, set or restore reach besides the guest itself:
/// `STORAGE:SIZE` spends space (`Datastore.AllocateSpace`), an existing volume is used
/// ([`check_volume_access`], CD-ROM media must be ISOs), a host CD-ROM drive needs `Sys.Console`
/// on `/`, a bridge needs `SDN.Use` on its zone path. Keys in `skip_volumes` get new volumes
/// elsewhere (a restore's disks); their storages are checked by the caller.
pub fn check_values(
    daemon: &Daemon,
    caller: &Caller,
    kind: GuestKind,
    vmid: Vmid,
    values: &[(String, Value)],
    skip_volumes: &[String],
) -> Result<(), ErrorReply> {
    let schema = kind.schema();
    for (key, value) in values {
        if key.starts_with("net") {
            if let Some(bridge) = schema.property(key, value).and_then(|p| p.get("bridge").map(str::to_owned)) {
                authorize_also(&daemon.access, caller, bridge_path(&bridge), &["SDN.Use"])
                    .map_err(|e| ErrorReply::new(e.kind, format!("{key}: {}", e.message)))?;
            }
            continue;
        }
        if skip_volumes.contains(key) {
            continue;
        }
        let (volume, cdrom) = if key.starts_with("unused") {
            (value.as_str().map(str::to_owned), false)
        } else {
            match schema.property(key, value) {
                Some(props) => (
                    props.get("file").or_else(|| props.get("volume")).map(str::to_owned),
                    props.get("media") == Some("cdrom"),
                ),
                None => (None, false),
            }
        };
        let Some(volume) = volume else { continue };
        let named = |e: ErrorReply| ErrorReply::new(e.kind, format!("{key}: {}", e.message));
        match volume.as_str() {
            "none" => {}
            // The host's own optical drive.
            "cdrom" => authorize_also(&daemon.access, caller, "/".into(), &["Sys.Console"]).map_err(named)?,
            _ if check::allocation(&volume).is_some() => {
                let (storage, _) = check::allocation(&volume).expect("checked just above");
                authorize_also(&daemon.access, caller, format!("/storage/{storage}"), &["Datastore.AllocateSpace"])
                    .map_err(named)?;
            }
            _ => {
                let expected = match kind {
                    _ if key.starts_with("unused") => None,
                    GuestKind::Vm if cdrom => Some(Content::Iso),
                    GuestKind::Vm => Some(Content::Images),
                    GuestKind::Ct => Some(Content::Rootdir),
                };
                check_volume_access(daemon, caller, Some(vmid), &volume, expected).map_err(named)?;
            }
        }
    }
    Ok(())
}

/// What every key of a configuration brought in whole (a restore) needs on the guest, as if
/// each were set: the union of their privileges, all of them held on `/vms/<vmid>`.
pub fn check_keys(
    daemon: &Daemon,
    caller: &Caller,
    kind: GuestKind,
    vmid: Vmid,
    values: &[(String, Value)],
) -> Result<(), ErrorReply> {
    let set = match kind {
        GuestKind::Vm => GuestSet::Vm,
        GuestKind::Ct => GuestSet::Ct,
    };
    for (key, value) in values {
        let privilege = key_privilege(set, key, value.as_str());
        authorize_also(&daemon.access, caller, format!("/vms/{vmid}"), privilege_name(privilege))
            .map_err(|e| ErrorReply::new(e.kind, format!("{key}: {}", e.message)))?;
    }
    Ok(())
}

/// A privilege's name as the one-element static list the checks take.
fn privilege_name(privilege: Privilege) -> &'static [&'static str] {
    let index = Privilege::ALL.iter().position(|p| *p == privilege).expect("every privilege is in ALL");
    static NAMES: std::sync::OnceLock<Vec<[&'static str; 1]>> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| Privilege::ALL.iter().map(|p| [p.name()]).collect());
    &names[index]
}
