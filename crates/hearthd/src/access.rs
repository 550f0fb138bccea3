//! Who may do what: the one table that names each request's ACL path and privileges, the
//! access model from `etc/hearth/access.toml`, and the check that runs before any effect.
//!
//! The secure default holds without a file: `root@pam` holds every privilege, nobody else holds
//! any until an ACL entry grants it. Every denial and every change to the model goes to the
//! audit log, `var/log/hearth/audit.log`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use hearth_core::access::Privilege as P;
use hearth_core::access::{AccessModel, AclPath, Authid, PrivSet, Privilege, Userid};
use hearth_proto::{CtRequest, ErrorKind, ErrorReply, NodeRequest, Request, StorageRequest, TaskRequest, VmRequest};

/// The caller of a connection, identified by SO_PEERCRED.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    /// `<name>@pam`, or `user@realm!name` for an API token.
    pub userid: String,
    /// Set when the connection authenticated with an API token.
    pub token: Option<hearth_core::access::TokenId>,
}

impl Caller {
    /// The identity privileges are resolved for: `<name>@pam`, or `None` when the Unix name
    /// is not a valid user id (then the caller holds nothing).
    pub fn authid(&self) -> Option<Authid> {
        if let Some(token) = &self.token {
            return Some(Authid::Token(token.clone()));
        }
        self.userid.parse::<Userid>().ok().map(Authid::User)
    }

    /// The caller as the token `tokenid`, once its secret was checked.
    pub fn as_token(&self, tokenid: hearth_core::access::TokenId) -> Caller {
        Caller { uid: self.uid, userid: tokenid.to_string(), token: Some(tokenid) }
    }

    /// Names a local caller after its Unix account; unknown uids are named `uid<N>@pam`.
    pub fn from_uid(uid: u32) -> Caller {
        let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map_or_else(|| format!("uid{uid}"), |u| u.name);
        Caller { uid, userid: format!("{name}@pam"), token: None }
    }

    /// root@pam itself; a token, even root's, holds only what its ACLs give it.
    pub fn is_root(&self) -> bool {
        self.uid == 0 && self.token.is_none()
    }
}

/// What a request needs, as a small expression over privileges on ACL paths. Privileges are
/// typed sets, so checking a need is a few bit operations and a misspelt privilege does not
/// compile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Need {
    /// Every one of the privileges on the path (none: anyone may ask).
    All { path: String, privileges: PrivSet },
    /// At least one of the privileges on the path.
    Any { path: String, privileges: PrivSet },
    /// root@pam itself, whatever the ACL grants: what reaches the host. `what` says what, led by
    /// the key or argument that asks for it.
    Root { what: String },
    /// Every need of the first list, or else every need of the second: Proxmox's
    /// "Datastore.Allocate on the storage, or Datastore.AllocateSpace there and VM.Backup on
    /// the backup's guest".
    Either(Vec<Need>, Vec<Need>),
}

impl Need {
    /// How the need reads in a refusal and in the permission table.
    pub fn describe(&self) -> String {
        let join =
            |privileges: PrivSet, word: &str| privileges.iter().map(Privilege::name).collect::<Vec<_>>().join(word);
        match self {
            Need::All { path, privileges } if privileges.is_empty() => format!("nothing on {path}"),
            Need::All { path, privileges } => format!("{} on {path}", join(*privileges, " and ")),
            Need::Any { path, privileges } => format!("{} on {path}", join(*privileges, " or ")),
            Need::Root { what } => format!("root@pam ({what})"),
            Need::Either(a, b) => {
                let list = |l: &[Need]| l.iter().map(Need::describe).collect::<Vec<_>>().join(" and ");
                format!("{}, or {}", list(a), list(b))
            }
        }
    }

    /// Whether anyone meets the need: all of no privileges.
    pub fn is_open(&self) -> bool {
        matches!(self, Need::All { privileges, .. } if privileges.is_empty())
    }
}

/// Every one of `privileges` (one [`Privilege`], an array of them or a [`PrivSet`]) on `path`.
pub(crate) fn on(path: impl Into<String>, privileges: impl Into<PrivSet>) -> Need {
    Need::All { path: path.into(), privileges: privileges.into() }
}

/// Nothing on `path`: anyone may ask (what a listing then shows depends on the caller).
pub(crate) fn anyone(path: impl Into<String>) -> Need {
    on(path, PrivSet::EMPTY)
}

/// What only root@pam may do, whatever the ACL grants; `what` leads with the key or argument.
pub(crate) fn root(what: impl Into<String>) -> Need {
    Need::Root { what: what.into() }
}

/// The first of `needs` a caller does not meet, given whether it is root@pam and what it holds
/// on a path; `None` when it meets them all.
pub fn unmet<'a>(needs: &'a [Need], is_root: bool, held: &dyn Fn(&str) -> PrivSet) -> Option<&'a Need> {
    let met = |need: &Need| -> bool {
        match need {
            _ if is_root => true,
            Need::All { privileges, .. } if privileges.is_empty() => true,
            Need::All { path, privileges } => privileges.is_subset(held(path)),
            Need::Any { path, privileges } => !privileges.intersection(held(path)).is_empty(),
            Need::Root { .. } => false,
            Need::Either(a, b) => unmet(a, is_root, held).is_none() || unmet(b, is_root, held).is_none(),
        }
    };
    needs.iter().find(|n| !met(n))
}

/// A second check a handler makes where what a request needs depends on state the table cannot
/// see (the storage a guest's disk is on, the default backup storage).
pub fn authorize_also(
    access: &AccessControl,
    caller: &Caller,
    path: String,
    privileges: impl Into<PrivSet>,
) -> Result<(), ErrorReply> {
    authorize(access, caller, &[on(path, privileges)])
}

/// Which guest a `set` configures: the two kinds name their keys differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestSet {
    Vm,
    Ct,
}

/// `key` is `prefix` followed by a number, such as `net0` for `net`.
fn indexed(key: &str, prefix: &str) -> bool {
    key.strip_prefix(prefix).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// What changing one configuration key needs, as Proxmox's `check_vm_modify_config_perm`
/// (`qm set`) and `check_ct_modify_config_perm` (`pct set`) check it. `value` is the new value,
/// `None` when the key is deleted or its pending change reverted (then a drive's old value, which
/// could make it a CD-ROM, is not known here, and the drive counts as a disk).
///
/// Root-only keys (`args`, host devices) need `Sys.Modify`, which only `Administrator` holds;
/// [`crate::referenced::value_needs`] makes them root@pam's alone.
pub fn key_privilege(kind: GuestSet, key: &str, value: Option<&str>) -> Privilege {
    let is = |prefixes: &[&str]| prefixes.iter().any(|p| indexed(key, p));
    let cdrom = || value.is_some_and(|v| v.split(',').any(|part| part.trim() == "media=cdrom"));
    match kind {
        GuestSet::Vm => match key {
            "memory" | "balloon" | "shares" | "hugepages" | "keephugepages" => P::VmConfigMemory,
            "cores" | "sockets" | "vcpus" | "cpu" | "cpulimit" | "cpuunits" | "numa" | "affinity" | "smp" => {
                P::VmConfigCpu
            }
            _ if is(&["numa"]) => P::VmConfigCpu,
            "cdrom" => P::VmConfigCdrom,
            "efidisk0" | "tpmstate0" | "vmstate" | "boot" | "bootdisk" | "vmstatestorage" => P::VmConfigDisk,
            _ if is(&["scsi", "virtio", "sata", "ide"]) => {
                // A cloud-init drive is a cloud-init setting (Proxmox: VM.Config.Cloudinit or
                // VM.Config.CDROM).
                let cloudinit = value.is_some_and(|v| {
                    let file = v.split(',').next().unwrap_or_default();
                    let file = file.strip_prefix("file=").unwrap_or(file);
                    hearth_core::cloudinit::new_drive(file).is_some() || hearth_core::cloudinit::is_any_drive(file)
                });
                if cloudinit {
                    P::VmConfigCloudinit
                } else if cdrom() {
                    P::VmConfigCdrom
                } else {
                    P::VmConfigDisk
                }
            }
            _ if is(&["unused"]) => P::VmConfigDisk,
            _ if is(&["net"]) => P::VmConfigNetwork,
            "acpi" | "hotplug" | "kvm" | "machine" | "scsihw" | "smbios1" | "tablet" | "vga" | "watchdog"
            | "audio0" | "rng0" | "keyboard" => P::VmConfigHwType,
            "cicustom" | "cipassword" | "citype" | "ciupgrade" | "ciuser" | "nameserver" | "searchdomain"
            | "sshkeys" => P::VmConfigCloudinit,
            // Proxmox accepts either VM.Config.Cloudinit or VM.Config.Network here.
            _ if is(&["ipconfig"]) => P::VmConfigCloudinit,
            "freeze" => P::VmPowerMgmt,
            // A serial socket or a SPICE USB port is virtual hardware; a host device is root's.
            _ if is(&["serial"]) => match value {
                None | Some("socket") => P::VmConfigHwType,
                Some(_) => P::SysModify,
            },
            _ if is(&["usb"]) => match value {
                None => P::VmConfigHwType,
                Some(v) if v.split(',').any(|part| part.trim() == "host=spice" || part.trim() == "spice") => {
                    P::VmConfigHwType
                }
                Some(_) => P::SysModify,
            },
            _ if is(&["hostpci", "parallel"]) => match value {
                None => P::VmConfigHwType,
                Some(_) => P::SysModify,
            },
            "args" | "hookscript" => P::SysModify,
            _ => P::VmConfigOptions,
        },
        GuestSet::Ct => match key {
            "memory" | "swap" => P::VmConfigMemory,
            "cores" | "cpuunits" | "cpulimit" => P::VmConfigCpu,
            "rootfs" => P::VmConfigDisk,
            _ if is(&["mp", "unused"]) => P::VmConfigDisk,
            "hostname" | "nameserver" | "searchdomain" => P::VmConfigNetwork,
            _ if is(&["net"]) => P::VmConfigNetwork,
            _ if is(&["dev"]) => P::SysModify,
            // The script runs as root on the host, as a VM's does.
            "hookscript" => P::SysModify,
            // Nesting (the only feature not root's) lets the container mount proc and sysfs
            // afresh: Proxmox asks VM.Allocate for it.
            "features" => P::VmAllocate,
            _ => P::VmConfigOptions,
        },
    }
}

/// The union of what every key a `set` touches needs: the keys given a value, deleted or
/// reverted. A `set` that touches nothing needs `VM.Config.Options`.
pub fn set_privileges(kind: GuestSet, set: &hearth_proto::SetGuest) -> PrivSet {
    let mut privs = PrivSet::EMPTY;
    for (key, value) in &set.options {
        privs.insert(key_privilege(kind, key, Some(value)));
    }
    for key in set.delete.iter().chain(&set.revert) {
        privs.insert(key_privilege(kind, key, None));
    }
    if privs.is_empty() {
        privs.insert(Privilege::VmConfigOptions);
    }
    privs
}

/// The table: every request variant's needs — its own ACL path and privileges, then what it
/// needs on the objects it names ([`crate::referenced`]).
pub fn required(request: &Request, node: &str, caller: &Caller) -> Vec<Need> {
    let mut needs = primary(request, node, caller);
    needs.extend(crate::referenced::needs(request));
    needs
}

/// A request's own ACL path and privileges (for access requests, everything they need).
fn primary(request: &Request, node: &str, caller: &Caller) -> Vec<Need> {
    // A caller's own tasks are always theirs to read and stop, as in Proxmox.
    let own = |upid: &hearth_core::Upid| upid.user == caller.userid;
    let vms = |vmid: &dyn std::fmt::Display| format!("/vms/{vmid}");
    let need = match request {
        Request::Vm(r) => match r {
            VmRequest::Create(c) => on(vms(&c.vmid), P::VmAllocate),
            VmRequest::Set(s) => on(vms(&s.vmid), set_privileges(GuestSet::Vm, s)),
            VmRequest::Config(c) => on(vms(&c.vmid), P::VmAudit),
            VmRequest::Pending { vmid } => on(vms(vmid), P::VmAudit),
            // Answered for everyone, with only the VMs the caller may audit.
            VmRequest::List => anyone("/vms"),
            VmRequest::Destroy(d) => on(vms(&d.vmid), P::VmAllocate),
            VmRequest::NextId => on("/vms", P::VmAllocate),
            // Root only, as in Proxmox: a lock cleared under a running task lets another
            // operation corrupt its work.
            VmRequest::Unlock { .. } => root("unlock: clear a guest's lock"),
            // Ignoring a lock or leaving volumes active is root's, as in Proxmox.
            VmRequest::Stop { skiplock: true, .. } => root("stop --skiplock: stop a locked VM"),
            VmRequest::Stop { keep_active: true, .. } => root("stop --keepActive: leave the VM's volumes active"),
            VmRequest::Reset { skiplock: true, .. } => root("reset --skiplock: reset a locked VM"),
            VmRequest::SendKey { skiplock: true, .. } => root("sendkey --skiplock: send keys to a locked VM"),
            VmRequest::Start { vmid, .. }
            | VmRequest::Stop { vmid, .. }
            | VmRequest::Shutdown { vmid, .. }
            | VmRequest::Reboot { vmid, .. }
            | VmRequest::Suspend { vmid, .. }
            | VmRequest::Resume { vmid }
            | VmRequest::Reset { vmid, .. } => on(vms(vmid), P::VmPowerMgmt),
            VmRequest::SendKey { vmid, .. } => on(vms(vmid), P::VmConsole),
            VmRequest::Agent { vmid, command } => agent_need(vms(vmid), command),
            VmRequest::AgentExec { vmid, .. }
            | VmRequest::AgentExecStatus { vmid, .. }
            | VmRequest::AgentPasswd { vmid, .. } => on(vms(vmid), P::VmGuestAgentUnrestricted),
            VmRequest::Rescan { vmid: Some(vmid), .. } => on(vms(vmid), P::VmConfigDisk),
            VmRequest::Rescan { vmid: None, .. } => root("disk rescan without --vmid: every VM's volumes"),
            VmRequest::ImportOvf { .. } => root("importovf: the manifest is a host path"),
            VmRequest::Status { vmid, .. } => on(vms(vmid), P::VmAudit),
            VmRequest::Terminal { vmid, .. } => on(vms(vmid), P::VmConsole),
            // Root only: monitor commands reach the host (Proxmox asks Sys.Modify on `/`, which
            // only Administrator holds; Hearth keeps it root's, as qm monitor on the host).
            VmRequest::Monitor { .. } => root("monitor: run QEMU monitor commands"),
            VmRequest::Snapshot { vmid, .. } | VmRequest::DelSnapshot { vmid, .. } => on(vms(vmid), P::VmSnapshot),
            VmRequest::ListSnapshot { vmid } => on(vms(vmid), P::VmAudit),
            VmRequest::Rollback { vmid, .. } => on(vms(vmid), P::VmSnapshotRollback),
            VmRequest::Template { vmid } => on(vms(vmid), P::VmAllocate),
            VmRequest::Clone(c) => on(vms(&c.vmid), P::VmClone),
            VmRequest::Resize { vmid, .. } => on(vms(vmid), P::VmConfigDisk),
            // Root only: the command line shows host paths.
            VmRequest::ShowCmd { .. } => root("showcmd: show the QEMU command line with host paths"),
            // The target storage's Datastore.AllocateSpace is what the request names (referenced).
            VmRequest::MoveDisk(m) => on(vms(&m.vmid), P::VmConfigDisk),
            VmRequest::ImportDisk(i) => on(vms(&i.vmid), P::VmConfigDisk),
            VmRequest::Unlink { vmid, .. } => on(vms(vmid), P::VmConfigDisk),
            VmRequest::Cleanup { vmid } => on(vms(vmid), P::VmPowerMgmt),
            // The storage's Datastore.AllocateSpace is checked by the handler.
            VmRequest::Backup(b) => on(vms(&b.vmid), P::VmBackup),
            VmRequest::Restore(r) => on(vms(&r.vmid), P::VmAllocate),
            VmRequest::CloudinitDump { vmid, .. } | VmRequest::CloudinitPending { vmid } => on(vms(vmid), P::VmAudit),
            VmRequest::CloudinitUpdate { vmid } => on(vms(vmid), P::VmConfigCloudinit),
        },
        Request::Ct(r) => match r {
            CtRequest::Create(c) => on(vms(&c.vmid), P::VmAllocate),
            CtRequest::Set(s) => on(vms(&s.vmid), set_privileges(GuestSet::Ct, s)),
            CtRequest::Config(c) => on(vms(&c.vmid), P::VmAudit),
            CtRequest::Pending { vmid } => on(vms(vmid), P::VmAudit),
            CtRequest::List => anyone("/vms"),
            CtRequest::Destroy(d) => on(vms(&d.vmid), P::VmAllocate),
            CtRequest::Unlock { .. } => root("unlock: clear a guest's lock"),
            CtRequest::Start { vmid, .. }
            | CtRequest::Stop { vmid }
            | CtRequest::Shutdown { vmid, .. }
            | CtRequest::Reboot { vmid, .. } => on(vms(vmid), P::VmPowerMgmt),
            CtRequest::Status { vmid, .. } | CtRequest::Df { vmid } | CtRequest::ListSnapshot { vmid } => {
                on(vms(vmid), P::VmAudit)
            }
            CtRequest::Console { vmid, .. } => on(vms(vmid), P::VmConsole),
            // Root inside the container: whoever may destroy and recreate it may be that.
            CtRequest::Exec(e) => on(vms(&e.vmid), P::VmAllocate),
            CtRequest::Push { vmid, .. } | CtRequest::Pull { vmid, .. } => on(vms(vmid), P::VmAllocate),
            // Root only, as pct mount: the volumes appear on the host.
            CtRequest::Mount { .. } | CtRequest::Unmount { .. } => root("mount: a container's volumes on the host"),
            CtRequest::Snapshot { vmid, .. } | CtRequest::DelSnapshot { vmid, .. } => on(vms(vmid), P::VmSnapshot),
            CtRequest::Rollback { vmid, .. } => on(vms(vmid), P::VmSnapshotRollback),
            CtRequest::Template { vmid } => on(vms(vmid), P::VmAllocate),
            CtRequest::Clone(c) => on(vms(&c.vmid), P::VmClone),
            CtRequest::Resize { vmid, .. } => on(vms(vmid), P::VmConfigDisk),
            CtRequest::Backup(b) => on(vms(&b.vmid), P::VmBackup),
            CtRequest::Restore(r) => on(vms(&r.vmid), P::VmAllocate),
            // The target storage's Datastore.AllocateSpace is what the request names (referenced).
            CtRequest::MoveVolume(m) => on(vms(&m.vmid), P::VmConfigDisk),
            // Answered for everyone, with only the containers the caller may audit.
            CtRequest::CpuSets => anyone("/vms"),
        },
        Request::Task(r) => match r {
            // Everyone may list; the list holds only their own tasks without Sys.Audit.
            TaskRequest::List(_) => anyone(format!("/nodes/{node}")),
            TaskRequest::Log { upid, .. } | TaskRequest::Status { upid } | TaskRequest::Follow { upid }
                if own(upid) =>
            {
                anyone(format!("/nodes/{node}"))
            }
            TaskRequest::Stop { upid } if own(upid) => anyone(format!("/nodes/{node}")),
            TaskRequest::Log { .. } | TaskRequest::Status { .. } | TaskRequest::Follow { .. } => {
                on(format!("/nodes/{node}"), P::SysAudit)
            }
            TaskRequest::Stop { .. } => on(format!("/nodes/{node}"), P::SysModify),
        },
        Request::Node(NodeRequest::StartAll { .. } | NodeRequest::StopAll { .. }) => on("/", P::VmPowerMgmt),
        Request::Node(NodeRequest::ConfigGet) => on(format!("/nodes/{node}"), P::SysAudit),
        Request::Node(NodeRequest::ConfigSet { .. }) => on(format!("/nodes/{node}"), P::SysModify),
        Request::Node(NodeRequest::WakeOnLan { node: target }) => on(format!("/nodes/{target}"), P::SysPowerMgmt),
        // What an access request needs can depend on whom it names (one's own tokens,
        // password and second factors) and on several paths at once.
        Request::Access(r) => return crate::users::required(r, caller),
        Request::Network(r) => on(format!("/nodes/{node}"), crate::network::privilege(r)),
        Request::Storage(r) => {
            let storage = |id: &str| format!("/storage/{id}");
            // A volume id's storage; a malformed id is refused later, after the check, so
            // the path falls back to the whole tree.
            let of_volume =
                |volid: &str| volid.split_once(':').map_or_else(|| "/storage".to_owned(), |(s, _)| storage(s));
            match r {
                // A definition is host configuration (its path, what it mounts): as in Proxmox,
                // changing or removing one needs Datastore.Allocate on all of `/storage`, not
                // only on the storage itself.
                StorageRequest::Add(_) | StorageRequest::Set(_) | StorageRequest::Remove { .. } => {
                    on("/storage", P::DatastoreAllocate)
                }
                // One storage needs Datastore.Audit on it; all of them answer everyone with only
                // the storages the caller may audit.
                StorageRequest::Config { storage: Some(s) }
                | StorageRequest::Status(hearth_proto::StorageStatusFilter { storage: Some(s), .. }) => {
                    on(storage(s), P::DatastoreAudit)
                }
                StorageRequest::Config { storage: None }
                | StorageRequest::Status(hearth_proto::StorageStatusFilter { storage: None, .. }) => anyone("/storage"),
                StorageRequest::List(l) => on(storage(&l.storage), P::DatastoreAudit),
                StorageRequest::Alloc(a) => on(storage(&a.storage), P::DatastoreAllocateSpace),
                StorageRequest::Free { volid } | StorageRequest::Path { volid } => {
                    on(of_volume(volid), P::DatastoreAllocate)
                }
                StorageRequest::Import(i) => on(of_volume(&i.volid), P::DatastoreAllocate),
                StorageRequest::Export(e) => on(of_volume(&e.volid), P::DatastoreAllocate),
                StorageRequest::Upload(u) => on(storage(&u.storage), P::DatastoreAllocateTemplate),
                // VM.Backup on each guest is checked by the handler.
                // Written to the caller's stream or a host directory: no storage is used.
                StorageRequest::BackupRun(r) if r.options.stdout || r.options.dumpdir.is_some() => {
                    match r.vmids.first() {
                        Some(v) => on(format!("/vms/{v}"), P::VmBackup),
                        None => on("/vms", P::VmBackup),
                    }
                }
                StorageRequest::BackupRun(r) => match &r.options.storage {
                    Some(s) => on(storage(s), P::DatastoreAllocateSpace),
                    None => on("/storage", P::DatastoreAllocateSpace),
                },
                StorageRequest::BackupList { storage: Some(s), .. } => on(storage(s), P::DatastoreAudit),
                StorageRequest::BackupList { storage: None, .. } => anyone("/storage"),
                StorageRequest::BackupPrune(p) => on(storage(&p.storage), P::DatastoreAllocate),
                StorageRequest::BackupProtect { volid, .. } => on(of_volume(volid), P::DatastoreAllocate),
                StorageRequest::BackupVerify { target } if target.contains(':') => {
                    on(of_volume(target), P::DatastoreAllocate)
                }
                StorageRequest::BackupVerify { target } => on(storage(target), P::DatastoreAllocate),
                StorageRequest::BackupGc { storage: s } => on(storage(s), P::DatastoreAllocate),
                StorageRequest::BackupLs { volid, .. } | StorageRequest::BackupExtract { volid, .. } => {
                    on(of_volume(volid), P::DatastoreAllocate)
                }
                StorageRequest::BackupJobList => on("/", P::SysAudit),
                StorageRequest::BackupJobAdd(_)
                | StorageRequest::BackupJobSet(_)
                | StorageRequest::BackupJobRemove { .. }
                | StorageRequest::BackupJobRun { .. }
                | StorageRequest::BackupJobRunDue => on("/", P::SysModify),
                StorageRequest::Scan { .. } => on("/storage", P::DatastoreAllocate),
                // The backup's own rights are what it names (referenced).
                StorageRequest::ExtractConfig { .. } => anyone("/storage"),
            }
        }
    };
    vec![need]
}

/// What a guest agent command needs, as Proxmox VE 9 splits it: VM.GuestAgent.Audit for what
/// only informs, VM.GuestAgent.FileSystemMgmt for freezing, thawing and trimming, VM.PowerMgmt
/// for what changes the run state; VM.GuestAgent.Unrestricted allows every command. An unknown
/// command needs Unrestricted (hearthd refuses it after the check).
fn agent_need(path: String, command: &str) -> Need {
    let privilege = match command {
        "fsfreeze-freeze" | "fsfreeze-thaw" | "fstrim" => P::VmGuestAgentFileSystemMgmt,
        "shutdown" | "suspend-disk" | "suspend-ram" | "suspend-hybrid" => P::VmPowerMgmt,
        _ if crate::agent::INFO_COMMANDS.contains(&command) => P::VmGuestAgentAudit,
        _ => P::VmGuestAgentUnrestricted,
    };
    Need::Any { path, privileges: PrivSet::from([privilege, P::VmGuestAgentUnrestricted]) }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The access model of the node and its audit log.
#[derive(Debug)]
pub struct AccessControl {
    path: PathBuf,
    model: RwLock<Arc<AccessModel>>,
    /// Held while the model is read, changed and written.
    edit: Mutex<()>,
    audit_path: PathBuf,
    audit: Mutex<()>,
}

impl AccessControl {
    /// Loads `etc/hearth/access.toml`. A missing file is the empty model (root only); a broken
    /// one stops hearthd with its line, rather than running open or closed by accident.
    pub fn open(root: &Path) -> anyhow::Result<AccessControl> {
        let path = root.join("etc/hearth/access.toml");
        let model = match std::fs::read_to_string(&path) {
            Ok(text) => AccessModel::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => AccessModel::default(),
            Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        };
        let audit_path = root.join("var/log/hearth/audit.log");
        if let Some(dir) = audit_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        Ok(AccessControl {
            path,
            model: RwLock::new(Arc::new(model)),
            edit: Mutex::new(()),
            audit_path,
            audit: Mutex::new(()),
        })
    }

    /// The model as it is now.
    pub fn model(&self) -> Arc<AccessModel> {
        Arc::clone(&self.model.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The privileges `caller` holds on `path`: everything for root@pam.
    pub fn privileges(&self, caller: &Caller, path: &AclPath) -> PrivSet {
        if caller.is_root() {
            return PrivSet::ALL;
        }
        match caller.authid() {
            Some(who) => self.model().permissions(&who, path, now()),
            None => PrivSet::EMPTY,
        }
    }

    /// Appends one line to the audit log: `<time> <who> <what>`.
    pub fn audit(&self, who: &str, what: &str) {
        let _guard = self.audit.lock().unwrap_or_else(|p| p.into_inner());
        let line = format!("{} {who} {what}\n", now());
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.audit_path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            tracing::error!(error = %e, "cannot write the audit log");
        }
    }

    /// Changes the model: `change` edits a copy, which must stay valid and keep an
    /// Administrator on `/`; the file is written atomically and the change audited.
    pub fn edit<T>(
        &self,
        caller: &Caller,
        what: &str,
        change: impl FnOnce(&mut AccessModel) -> Result<T, ErrorReply>,
    ) -> Result<T, ErrorReply> {
        let _guard = self.edit.lock().unwrap_or_else(|p| p.into_inner());
        let before = self.model();
        let mut after = (*before).clone();
        let result = change(&mut after)?;
        after.validate().map_err(|e| ErrorReply::new(ErrorKind::Invalid, e.to_string()))?;
        if before.would_remove_last_admin(&after, now()) {
            return Err(ErrorReply::new(
                ErrorKind::Conflict,
                "refusing to remove the last Administrator of /: grant Administrator on / to another user first",
            ));
        }
        crate::store::write_atomic(&self.path, after.to_toml().as_bytes())?;
        *self.model.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(after);
        self.audit(&caller.userid, &format!("changed access: {what}"));
        Ok(result)
    }
}

/// Refuses the request unless the caller meets every need.
pub fn authorize(access: &AccessControl, caller: &Caller, needs: &[Need]) -> Result<(), ErrorReply> {
    let held = |path: &str| AclPath::parse(path).map(|p| access.privileges(caller, &p)).unwrap_or(PrivSet::EMPTY);
    let Some(need) = unmet(needs, caller.is_root(), &held) else { return Ok(()) };
    access.audit(&caller.userid, &format!("denied: needs {}", need.describe()));
    let message = match need {
        Need::Root { what } => format!("permission denied: {what}: only root@pam may do that"),
        _ => format!("permission denied: {} lacks {} (no ACL grants it)", caller.userid, need.describe()),
    };
    Err(ErrorReply::new(ErrorKind::PermissionDenied, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_core::access::role::builtin;

    fn vm(key: &str, value: &str) -> &'static str {
        key_privilege(GuestSet::Vm, key, Some(value)).name()
    }

    fn ct(key: &str, value: &str) -> &'static str {
        key_privilege(GuestSet::Ct, key, Some(value)).name()
    }

    fn set(options: &[(&str, &str)], delete: &[&str], revert: &[&str]) -> hearth_proto::SetGuest {
        hearth_proto::SetGuest {
            vmid: hearth_core::Vmid::new(100).expect("vmid"),
            options: options.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            delete: delete.iter().map(|k| (*k).to_owned()).collect(),
            revert: revert.iter().map(|k| (*k).to_owned()).collect(),
            digest: None,
        }
    }

    #[test]
    fn vm_keys_need_their_proxmox_privilege() {
        for key in ["memory", "balloon", "shares"] {
            assert_eq!(vm(key, "1"), "VM.Config.Memory", "{key}");
        }
        for key in ["cores", "sockets", "vcpus", "cpu", "cpulimit", "cpuunits", "numa", "affinity", "numa0"] {
            assert_eq!(vm(key, "1"), "VM.Config.CPU", "{key}");
        }
        for key in ["scsi0", "virtio3", "sata1", "ide0", "efidisk0", "tpmstate0", "unused7", "boot"] {
            assert_eq!(vm(key, "local:1"), "VM.Config.Disk", "{key}");
        }
        assert_eq!(vm("ide2", "none,media=cdrom"), "VM.Config.CDROM");
        assert_eq!(vm("scsi1", "local:iso/x.iso, media=cdrom"), "VM.Config.CDROM");
        assert_eq!(vm("cdrom", "none"), "VM.Config.CDROM");
        assert_eq!(vm("net0", "virtio,bridge=vmbr0"), "VM.Config.Network");
        for key in ["name", "description", "onboot", "tags", "startup", "ostype", "protection", "agent", "scsi", "netx"]
        {
            assert_eq!(vm(key, "1"), "VM.Config.Options", "{key}");
        }
        for key in ["hotplug", "vga", "kvm", "machine", "scsihw"] {
            assert_eq!(vm(key, "1"), "VM.Config.HWType", "{key}");
        }
        assert_eq!(vm("serial0", "socket"), "VM.Config.HWType");
        assert_eq!(vm("serial0", "/dev/ttyS0"), "Sys.Modify");
        assert_eq!(vm("args", "-S"), "Sys.Modify");
        assert_eq!(vm("ciuser", "joe"), "VM.Config.Cloudinit");
        for key in ["hugepages", "keephugepages"] {
            assert_eq!(vm(key, "2"), "VM.Config.Memory", "{key}");
        }
        for key in ["rng0", "audio0", "watchdog", "keyboard", "smbios1"] {
            assert_eq!(vm(key, "x"), "VM.Config.HWType", "{key}");
        }
        for key in ["vmgenid", "startdate", "reboot", "ivshmem", "arch", "migrate_speed", "spice_enhancements"] {
            assert_eq!(vm(key, "1"), "VM.Config.Options", "{key}");
        }
        assert_eq!(vm("usb0", "spice"), "VM.Config.HWType");
        for (key, value) in [("usb0", "1234:abcd"), ("hostpci0", "01:00.0"), ("parallel0", "/dev/parport0")] {
            assert_eq!(vm(key, value), "Sys.Modify", "{key}");
        }
        // A deleted drive's old value is not known: it counts as a disk.
        assert_eq!(key_privilege(GuestSet::Vm, "ide2", None).name(), "VM.Config.Disk");
    }

    #[test]
    fn host_reaching_values_are_root_only() {
        use hearth_core::{GuestKind, Value};
        let vmid = hearth_core::Vmid::new(100).expect("vmid");
        let root_only = |kind: GuestKind, key: &str, value: &str| {
            crate::referenced::value_needs(kind, vmid, key, &Value::Str(value.into()))
                .iter()
                .any(|n| matches!(n, Need::Root { .. }))
        };
        assert!(root_only(GuestKind::Vm, "usb0", "1234:abcd"));
        assert!(root_only(GuestKind::Vm, "hostpci0", "01:00.0"));
        assert!(root_only(GuestKind::Vm, "parallel0", "/dev/parport0"));
        assert!(root_only(GuestKind::Vm, "rng0", "source=/dev/hwrng"));
        assert!(!root_only(GuestKind::Vm, "rng0", "source=/dev/urandom"));
        assert!(root_only(GuestKind::Vm, "ivshmem", "size=32,name=shared"));
        assert!(!root_only(GuestKind::Vm, "ivshmem", "size=32,name=100"));
        assert!(!root_only(GuestKind::Vm, "ivshmem", "size=32"));
        assert!(root_only(GuestKind::Vm, "efidisk0", "/var/lib/vars.fd"));
        assert!(!root_only(GuestKind::Vm, "efidisk0", "local:1,efitype=4m"));
        assert!(root_only(GuestKind::Ct, "dev0", "/dev/ttyUSB0"));
        assert!(root_only(GuestKind::Ct, "mp0", "/mnt/bindmounts/shared,mp=/shared"));
    }

    #[test]
    fn ct_keys_need_their_proxmox_privilege() {
        assert_eq!(ct("memory", "512"), "VM.Config.Memory");
        assert_eq!(ct("swap", "512"), "VM.Config.Memory");
        assert_eq!(ct("cores", "2"), "VM.Config.CPU");
        assert_eq!(ct("rootfs", "local:8"), "VM.Config.Disk");
        assert_eq!(ct("mp0", "local:8,mp=/data"), "VM.Config.Disk");
        assert_eq!(ct("net0", "name=eth0"), "VM.Config.Network");
        assert_eq!(ct("hostname", "web"), "VM.Config.Network");
        assert_eq!(ct("description", "x"), "VM.Config.Options");
        assert_eq!(ct("dev0", "/dev/null"), "Sys.Modify");
    }

    #[test]
    fn a_set_needs_the_union_of_its_keys() {
        let s = set(&[("memory", "96"), ("name", "x")], &["net0"], &["cores"]);
        assert_eq!(
            set_privileges(GuestSet::Vm, &s).to_string(),
            "VM.Config.CPU,VM.Config.Memory,VM.Config.Network,VM.Config.Options"
        );
        assert_eq!(set_privileges(GuestSet::Vm, &set(&[], &[], &[])), Privilege::VmConfigOptions.into());
        assert_eq!(set_privileges(GuestSet::Ct, &set(&[], &["mp0"], &[])), Privilege::VmConfigDisk.into());
    }

    #[test]
    fn roles_hold_what_set_needs_as_in_proxmox() {
        let wanted = |options: &[(&str, &str)]| set_privileges(GuestSet::Vm, &set(options, &[], &[]));
        let may = |role: &str, options: &[(&str, &str)]| wanted(options).is_subset(builtin(role).expect("role").privs);
        assert!(may("PVEVMAdmin", &[("memory", "96"), ("name", "x"), ("scsi0", "local:1")]));
        assert!(!may("PVEVMUser", &[("memory", "96")]));
        assert!(!may("PVEVMUser", &[("name", "x")]));
        assert!(may("PVEVMUser", &[("ide2", "none,media=cdrom")]));
        let memory_only = PrivSet::from(Privilege::VmConfigMemory);
        assert!(wanted(&[("memory", "96")]).is_subset(memory_only));
        assert!(!wanted(&[("name", "x")]).is_subset(memory_only));
        assert!(!wanted(&[("memory", "96"), ("name", "x")]).is_subset(memory_only));
    }

    #[test]
    fn needs_describe_their_privileges_by_name() {
        assert_eq!(anyone("/vms").describe(), "nothing on /vms");
        assert_eq!(on("/vms/100", P::VmAudit).describe(), "VM.Audit on /vms/100");
        assert_eq!(on("/vms/100", [P::VmPowerMgmt, P::VmAudit]).describe(), "VM.Audit and VM.PowerMgmt on /vms/100");
        let any =
            Need::Any { path: "/storage/local".into(), privileges: [P::DatastoreAudit, P::DatastoreAllocate].into() };
        assert_eq!(any.describe(), "Datastore.Allocate or Datastore.Audit on /storage/local");
        assert_eq!(
            root("monitor: run QEMU monitor commands").describe(),
            "root@pam (monitor: run QEMU monitor commands)"
        );
    }

    #[test]
    fn unmet_checks_typed_sets() {
        let held = |path: &str| if path == "/vms/100" { PrivSet::from(P::VmAudit) } else { PrivSet::EMPTY };
        let audit = [on("/vms/100", P::VmAudit)];
        assert_eq!(unmet(&audit, false, &held), None);
        let both = [on("/vms/100", [P::VmAudit, P::VmPowerMgmt])];
        assert_eq!(unmet(&both, false, &held), Some(&both[0]));
        let any = [Need::Any { path: "/vms/100".into(), privileges: [P::VmAudit, P::VmPowerMgmt].into() }];
        assert_eq!(unmet(&any, false, &held), None);
        let host = [root("args: give the guest extra QEMU arguments")];
        assert_eq!(unmet(&host, false, &held), Some(&host[0]));
        assert_eq!(unmet(&host, true, &held), None);
        let either = [Need::Either(vec![on("/", P::SysModify)], vec![on("/vms/100", P::VmAudit)])];
        assert_eq!(unmet(&either, false, &held), None);
    }
}
