//! What a request needs on the objects it names besides its guest: volumes, ISOs, templates,
//! backups, storages, bridges and the host itself — the second half of the authorization
//! table, as Proxmox's `check_volume_access`, `check_storage_access` and `check_bridge_access`.
//!
//! `vmctl set 100 --ide2 local:iso/x.iso,media=cdrom` reads an ISO, `--virtio1 local:4` spends
//! space on a storage, `--net0 virtio,bridge=vmbr1` joins a network, `--args` reaches the host,
//! a restore reads another guest's backup. Everything here is decided from the request's own
//! text, before any handler runs; what depends on state (a restore's archive, the storage a
//! disk is on) is checked by the handler with the same [`Need`]s.

use hearth_core::guest::ConfigEdit;
use hearth_core::schema::check;
use hearth_core::storage::{Content, ImageName, VolName};
use hearth_core::{GuestKind, Value, Vmid};
use hearth_proto::{CtRequest, ErrorKind, ErrorReply, Request, StorageRequest, VmRequest};

use crate::Daemon;
use crate::access::{GuestSet, Need, key_privilege, on, root};
use hearth_core::access::Privilege as P;

/// The ACL path of a local bridge, as Proxmox's SDN names it: `/sdn/zones/localnetwork/<bridge>`.
pub fn bridge_path(bridge: &str) -> String {
    format!("/sdn/zones/localnetwork/{bridge}")
}

fn storage_path(storage: &str) -> String {
    format!("/storage/{storage}")
}

fn space(storage: &str) -> Need {
    on(storage_path(storage), P::DatastoreAllocateSpace)
}

/// The guest whose backup a backup volume name holds: the vmid of a vzdump archive's name
/// (`backup/vzdump-qemu-100-…`), or a chunk store snapshot's group (`backup/vm/100/<time>`).
fn backup_owner(name: &str) -> Option<Vmid> {
    let rest = name.strip_prefix("backup/")?;
    if let Some(b) = hearth_core::storage::parse_backup_name(rest) {
        return Some(b.vmid);
    }
    match rest.split('/').collect::<Vec<_>>().as_slice() {
        [_, id, _] => id.parse().ok(),
        _ => None,
    }
}

/// The guest an image volume name belongs to: its last component, `vm-100-disk-0.qcow2`,
/// `subvol-100-disk-0` (a linked clone's base is its template's, the clone the guest's).
fn image_owner(name: &str) -> Option<Vmid> {
    let last = name.rsplit('/').next()?;
    ImageName::parse(last, true).or_else(|_| ImageName::parse(last, false)).ok().map(|i| i.vmid)
}

/// What using the volume `volid` for guest `vmid` needs, from its name alone, as Proxmox's
/// `check_volume_access`: `Datastore.Allocate` on its storage allows everything; ISOs,
/// templates and import files need read access there (`Datastore.AllocateSpace` or
/// `Datastore.Audit`); a guest's own images are its own; another guest's backup needs
/// `Datastore.AllocateSpace` on the storage and `VM.Backup` on that guest; another guest's image
/// `Datastore.Audit` and `VM.Config.Disk` on it; anything else (snippets, a backup of no known
/// guest) `Datastore.Allocate`. Host paths are root's.
pub fn volume_needs(vmid: Option<Vmid>, volid: &str, what: &str) -> Vec<Need> {
    if volid.starts_with('/') {
        return vec![root(format!("{what}: use the host path '{volid}'"))];
    }
    let Some((storage, name)) = volid.split_once(':') else { return Vec::new() };
    let allocate = || vec![on(storage_path(storage), P::DatastoreAllocate)];
    let head = name.split('/').next().unwrap_or_default();
    match head {
        "iso" | "vztmpl" | "import" => vec![Need::Any {
            path: storage_path(storage),
            privileges: [P::DatastoreAllocate, P::DatastoreAllocateSpace, P::DatastoreAudit].into(),
        }],
        "backup" => match backup_owner(name) {
            Some(owner) => {
                vec![Need::Either(allocate(), vec![space(storage), on(format!("/vms/{owner}"), P::VmBackup)])]
            }
            None => allocate(),
        },
        "snippets" => allocate(),
        _ => match image_owner(name) {
            Some(owner) if Some(owner) == vmid => Vec::new(),
            Some(owner) => vec![Need::Either(
                allocate(),
                vec![on(storage_path(storage), P::DatastoreAudit), on(format!("/vms/{owner}"), P::VmConfigDisk)],
            )],
            None => allocate(),
        },
    }
}

/// The volume a disk-like key names (`file` of VM drives, `volume` of container mounts, the
/// value of `unusedN`) and whether it is CD-ROM media.
pub fn volume_of(kind: GuestKind, key: &str, value: &Value) -> Option<(String, bool)> {
    if key.starts_with("unused") {
        return value.as_str().map(|v| (v.to_owned(), false));
    }
    let props = kind.schema().property(key, value)?;
    let volume = props.get("file").or_else(|| props.get("volume"))?;
    Some((volume.to_owned(), props.get("media") == Some("cdrom")))
}

/// What one configuration value reaches besides the guest: root-only keys (extra QEMU
/// arguments, host devices, host paths, container features beyond nesting, a privileged
/// container — each is host root), a new volume's storage, an existing volume, the host's
/// CD-ROM drive, a bridge.
pub fn value_needs(kind: GuestKind, vmid: Vmid, key: &str, value: &Value) -> Vec<Need> {
    let root = |what: &str| vec![root(format!("{key}: {what}"))];
    let set = match kind {
        GuestKind::Vm => GuestSet::Vm,
        GuestKind::Ct => GuestSet::Ct,
    };
    if key == "args" {
        return root("give the guest extra QEMU arguments");
    }
    // The start order and its delays hold up the host's boot and shutdown: Proxmox asks
    // Sys.Modify on `/` for a VM's `startup`. Hearth asks it of containers too, which share
    // one start order with the VMs.
    if key == "startup" {
        return vec![on("/", P::SysModify)];
    }
    if key_privilege(set, key, value.as_str()) == hearth_core::access::Privilege::SysModify {
        return root("give the guest a host device or script");
    }
    if kind == GuestKind::Vm {
        let props = kind.schema().property(key, value);
        // A host hardware RNG is a scarce host device; reading it dry starves the host.
        if key == "rng0" && props.as_ref().and_then(|p| p.get("source")) == Some("/dev/hwrng") {
            return root("read the host's hardware RNG /dev/hwrng");
        }
        // Shared memory under another name is memory other guests (or host programs) open.
        if key == "ivshmem" && props.as_ref().and_then(|p| p.get("name")).is_some_and(|n| n != vmid.to_string()) {
            return root("share memory under a name other guests can open (leave out name= for the VM's own)");
        }
    }
    if kind == GuestKind::Ct {
        if key == "features" && value.as_str().is_some_and(|f| f.split(',').any(|p| !p.starts_with("nesting="))) {
            return root("give the container features beyond nesting");
        }
        if key == "unprivileged" && *value == Value::Bool(false) {
            return root("make a privileged container (its root is host root)");
        }
    }
    if key.starts_with("net") {
        return match kind.schema().property(key, value).and_then(|p| p.get("bridge").map(str::to_owned)) {
            Some(bridge) => {
                let props = kind.schema().property(key, value);
                let tag = props.as_ref().and_then(|p| p.get("tag"));
                let mut needs = vec![on(crate::sdn::nic_path(&bridge, tag), P::SdnUse)];
                // Trunks carry further VLANs: each needs SDN.Use on its own path, a range the
                // VNet's (which reaches every VLAN of it).
                for item in props.as_ref().and_then(|p| p.get("trunks")).unwrap_or_default().split(';') {
                    let item = item.trim();
                    if item.is_empty() {
                        continue;
                    }
                    let vlan = (!item.contains('-')).then_some(item);
                    let need = on(crate::sdn::nic_path(&bridge, vlan), P::SdnUse);
                    if !needs.contains(&need) {
                        needs.push(need);
                    }
                }
                needs
            }
            None => Vec::new(),
        };
    }
    if kind == GuestKind::Vm && key == "cicustom" {
        // Each snippet is read into the guest's drive: the caller needs it, as any volume.
        let Some(props) = kind.schema().property(key, value) else { return Vec::new() };
        return props.entries().flat_map(|(_, volume)| volume_needs(Some(vmid), volume, key)).collect();
    }
    let Some((volume, _)) = volume_of(kind, key, value) else { return Vec::new() };
    let mut needs = match volume.as_str() {
        "none" => Vec::new(),
        // The host's own optical drive.
        "cdrom" => vec![on("/", P::SysConsole)],
        _ => match check::allocation(&volume)
            .or_else(|| hearth_core::cloudinit::new_drive(&volume).filter(|_| kind == GuestKind::Vm).map(|s| (s, 0)))
        {
            Some((storage, _)) => vec![space(storage)],
            None => volume_needs(Some(vmid), &volume, key),
        },
    };
    if kind == GuestKind::Vm {
        needs.extend(import_needs(vmid, key, value));
    }
    needs
}

/// What reading an `import-from` source needs, as Proxmox: a host path is root's, another
/// guest's disk needs VM.Clone on that guest, anything else what using the volume needs.
fn import_needs(vmid: Vmid, key: &str, value: &Value) -> Vec<Need> {
    let Some(source) = crate::imports::source_of(key, value) else { return Vec::new() };
    if source.starts_with('/') {
        return vec![root(format!("{key}: import-from the host path '{source}'"))];
    }
    let name = source.split_once(':').map_or("", |(_, n)| n);
    let head = name.split('/').next().unwrap_or_default();
    match image_owner(name) {
        Some(owner) if !["iso", "vztmpl", "import", "backup", "snippets"].contains(&head) => {
            vec![on(format!("/vms/{owner}"), P::VmClone)]
        }
        _ => volume_needs(Some(vmid), &source, key),
    }
}

/// What setting every one of `values` needs on the guest and beyond: each key's privilege on
/// `/vms/<vmid>` (as `set` would ask) and its [`value_needs`]. A restore asks this of the
/// configuration it brings in.
pub fn values_needs(kind: GuestKind, vmid: Vmid, values: &[(String, Value)], skip_volumes: &[String]) -> Vec<Need> {
    let set = match kind {
        GuestKind::Vm => GuestSet::Vm,
        GuestKind::Ct => GuestSet::Ct,
    };
    let mut needs = Vec::new();
    for (key, value) in values {
        needs.push(on(format!("/vms/{vmid}"), key_privilege(set, key, value.as_str())));
        let reached = value_needs(kind, vmid, key, value);
        // A restored disk gets a new volume; its storage is checked where it is chosen.
        let restored_volume = skip_volumes.contains(key) && !reached.iter().any(|n| matches!(n, Need::Root { .. }));
        if !restored_volume {
            needs.extend(reached);
        }
    }
    needs
}

fn options_needs(kind: GuestKind, vmid: Vmid, options: &[(String, String)]) -> Vec<Need> {
    // Options that do not parse are refused by the handler; they reach nothing.
    let Ok(edit) = ConfigEdit::parse(kind, options, &[], &[]) else { return Vec::new() };
    edit.set.iter().flat_map(|(key, value)| value_needs(kind, vmid, key, value)).collect()
}

/// What a request needs on the objects it names, beside its own ACL path.
pub fn needs(request: &Request) -> Vec<Need> {
    let guest = |kind: GuestKind, r: GuestRef<'_>| -> Vec<Need> {
        match r {
            GuestRef::Create(c) => {
                let mut needs = options_needs(kind, c.vmid, &c.options);
                if let Some(ct) = &c.ct {
                    needs.extend(volume_needs(Some(c.vmid), &ct.ostemplate, "ostemplate"));
                    // As pct, the root file system defaults to 4 GiB on `local`.
                    if !c.options.iter().any(|(k, _)| k == "rootfs") {
                        needs.push(space("local"));
                    }
                }
                needs
            }
            GuestRef::Set(s) => options_needs(kind, s.vmid, &s.options),
            GuestRef::Clone(c) => {
                let mut needs = vec![on(format!("/vms/{}", c.newid), P::VmAllocate)];
                needs.extend(c.target.as_deref().map(space));
                needs
            }
            GuestRef::Backup(b) => backup_needs(&b.options),
            GuestRef::Restore(r) => {
                let mut needs = volume_needs(Some(r.vmid), &r.archive, "archive");
                needs.extend(r.storage.as_deref().map(space));
                if kind == GuestKind::Ct && r.unprivileged == Some(false) {
                    needs.push(root("unprivileged: make a privileged container (its root is host root)"));
                }
                needs
            }
        }
    };
    match request {
        Request::Vm(r) => match r {
            VmRequest::Create(c) => guest(GuestKind::Vm, GuestRef::Create(c)),
            VmRequest::Set(s) => guest(GuestKind::Vm, GuestRef::Set(s)),
            VmRequest::Clone(c) => guest(GuestKind::Vm, GuestRef::Clone(c)),
            VmRequest::Backup(b) => guest(GuestKind::Vm, GuestRef::Backup(b)),
            VmRequest::Restore(r) => guest(GuestKind::Vm, GuestRef::Restore(r)),
            VmRequest::MoveDisk(m) => match m.target_vmid {
                // Reassigned: the disk becomes the other VM's.
                Some(target) => vec![on(format!("/vms/{target}"), P::VmConfigDisk)],
                None => vec![space(&m.storage)],
            },
            VmRequest::Destroy(d) if d.skiplock => vec![root("skiplock: destroy a locked guest")],
            VmRequest::ImportDisk(i) => vec![space(&i.storage)],
            _ => Vec::new(),
        },
        Request::Ct(r) => match r {
            CtRequest::Create(c) => guest(GuestKind::Ct, GuestRef::Create(c)),
            CtRequest::Set(s) => guest(GuestKind::Ct, GuestRef::Set(s)),
            CtRequest::Clone(c) => guest(GuestKind::Ct, GuestRef::Clone(c)),
            CtRequest::Backup(b) => guest(GuestKind::Ct, GuestRef::Backup(b)),
            CtRequest::Restore(r) => guest(GuestKind::Ct, GuestRef::Restore(r)),
            CtRequest::MoveVolume(m) => vec![space(&m.storage)],
            CtRequest::Destroy(d) if d.skiplock => vec![root("skiplock: destroy a locked guest")],
            _ => Vec::new(),
        },
        // Each guest named is backed up: VM.Backup on it (`--all` is checked per guest).
        Request::Storage(StorageRequest::ExtractConfig { volid }) => volume_needs(None, volid, "extractconfig"),
        Request::Storage(StorageRequest::BackupRun(r)) => {
            let mut needs: Vec<Need> = r.vmids.iter().map(|v| on(format!("/vms/{v}"), P::VmBackup)).collect();
            // The storage's Datastore.AllocateSpace is the request's own path.
            needs.extend(prune_needs(&r.options));
            needs.extend(vzdump_needs(&r.options));
            needs
        }
        // A chunk store's key file is read by hearthd as root: naming or removing one is root's.
        Request::Storage(StorageRequest::Add(hearth_proto::AddStorage { options, .. }))
            if options.iter().any(|(k, _)| k == "keyfile") =>
        {
            vec![root("keyfile: make hearthd read a key file on the host")]
        }
        Request::Storage(StorageRequest::Set(hearth_proto::SetStorage { options, delete, .. }))
            if options.iter().map(|(k, _)| k).chain(delete).any(|k| k == "keyfile") =>
        {
            vec![root("keyfile: make hearthd read a key file on the host")]
        }
        _ => Vec::new(),
    }
}

/// What a single guest's backup needs beyond VM.Backup on it: Datastore.AllocateSpace on the
/// storage it names (the default storage is checked by the handler once chosen), and what its
/// pruning needs.
fn backup_needs(options: &hearth_proto::BackupOptions) -> Vec<Need> {
    let mut needs: Vec<Need> = options.storage.as_deref().map(space).into_iter().collect();
    needs.extend(prune_needs(options));
    needs.extend(vzdump_needs(options));
    needs
}

/// vzdump's host directory is root's (`--dumpdir`), and a fleecing storage takes space.
fn vzdump_needs(options: &hearth_proto::BackupOptions) -> Vec<Need> {
    let mut needs = Vec::new();
    if let Some(dir) = &options.dumpdir {
        needs.push(root(format!("dumpdir: write the backup into the host directory '{dir}'")));
    }
    if let Some(Ok(Some(storage))) = options.fleecing.as_deref().map(crate::backup::fleecing_storage) {
        needs.push(space(&storage));
    }
    needs
}

/// `--prune-backups` removes backups, which needs Datastore.Allocate on the storage, as
/// vzdump's; without `--storage` the storage is not known yet, so all of `/storage`.
fn prune_needs(options: &hearth_proto::BackupOptions) -> Option<Need> {
    options.prune_backups.as_ref()?;
    let path = options.storage.as_deref().map_or_else(|| "/storage".to_owned(), storage_path);
    Some(on(path, P::DatastoreAllocate))
}

/// The guest requests that name other objects, for [`needs`].
enum GuestRef<'a> {
    Create(&'a hearth_proto::CreateGuest),
    Set(&'a hearth_proto::SetGuest),
    Clone(&'a hearth_proto::CloneGuest),
    Backup(&'a hearth_proto::BackupGuest),
    Restore(&'a hearth_proto::RestoreGuest),
}

/// Refuses volumes of the wrong content, whoever names them: CD-ROM media must be ISOs, VM disks
/// images, container volumes images or root directories (a backup or a template is never a
/// disk). Allocations, `none`, `cdrom` and host paths are left to the other checks.
pub fn check_content(daemon: &Daemon, kind: GuestKind, values: &[(String, Value)]) -> Result<(), ErrorReply> {
    for (key, value) in values {
        if key.starts_with("unused") || key.starts_with("net") {
            continue;
        }
        let Some((volume, cdrom)) = volume_of(kind, key, value) else { continue };
        if ["none", "cdrom"].contains(&volume.as_str())
            || volume.starts_with('/')
            || check::allocation(&volume).is_some()
            || (kind == GuestKind::Vm && hearth_core::cloudinit::new_drive(&volume).is_some())
        {
            continue;
        }
        let (_, vol) =
            daemon.storages.volume(&volume).map_err(|e| ErrorReply::new(e.kind, format!("{key}: {}", e.message)))?;
        let content = match vol {
            VolName::File { content, .. } => content,
            VolName::Image { .. } => Content::Images,
        };
        // A cloud-init drive is an image shown as CD-ROM media.
        let cloudinit = matches!(&vol, VolName::Image { image, .. } if image.name == "cloudinit");
        let expected = match kind {
            GuestKind::Vm if cdrom && !cloudinit => Content::Iso,
            GuestKind::Vm => Content::Images,
            GuestKind::Ct => Content::Rootdir,
        };
        let fits = content == expected || (expected == Content::Rootdir && content == Content::Images);
        if !fits {
            return Err(ErrorReply::new(
                ErrorKind::Invalid,
                format!("{key}: cannot use volume '{volume}': its content is '{content}', this needs '{expected}'"),
            ));
        }
    }
    Ok(())
}
