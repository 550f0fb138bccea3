//! Who may do what: the one table that names each request's ACL path and privileges, and the
//! check that runs before any effect.
//!
//! Until access control lands, the rule is the secure default: `root@pam` holds every
//! privilege, nobody else holds any.

use hearth_proto::{CtRequest, ErrorKind, ErrorReply, NodeRequest, Request, StorageRequest, TaskRequest, VmRequest};

/// The caller of a connection, identified by SO_PEERCRED.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    /// `<name>@pam`.
    pub userid: String,
}

impl Caller {
    /// Names a local caller after its Unix account; unknown uids are named `uid<N>@pam`.
    pub fn from_uid(uid: u32) -> Caller {
        let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map_or_else(|| format!("uid{uid}"), |u| u.name);
        Caller { uid, userid: format!("{name}@pam") }
    }

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

/// What a request needs: privileges on an ACL path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Required {
    pub path: String,
    pub privileges: &'static [&'static str],
}

fn on(path: String, privileges: &'static [&'static str]) -> Required {
    Required { path, privileges }
}

/// The table: every request variant, its ACL path and privileges.
pub fn required(request: &Request, node: &str) -> Required {
    let vms = |vmid: &dyn std::fmt::Display| format!("/vms/{vmid}");
    match request {
        Request::Vm(r) => match r {
            VmRequest::Create(c) => on(vms(&c.vmid), &["VM.Allocate"]),
            VmRequest::Set(s) => on(vms(&s.vmid), &["VM.Config.Options"]),
            VmRequest::Config(c) => on(vms(&c.vmid), &["VM.Audit"]),
            VmRequest::Pending { vmid } => on(vms(vmid), &["VM.Audit"]),
            VmRequest::List => on("/vms".into(), &["VM.Audit"]),
            VmRequest::Destroy(d) => on(vms(&d.vmid), &["VM.Allocate"]),
            VmRequest::NextId => on("/vms".into(), &["VM.Allocate"]),
            VmRequest::Unlock { vmid } => on(vms(vmid), &["VM.Config.Options"]),
            VmRequest::Start { vmid, .. }
            | VmRequest::Stop { vmid }
            | VmRequest::Shutdown { vmid, .. }
            | VmRequest::Reboot { vmid, .. }
            | VmRequest::Suspend { vmid }
            | VmRequest::Resume { vmid } => on(vms(vmid), &["VM.PowerMgmt"]),
            VmRequest::Status { vmid, .. } => on(vms(vmid), &["VM.Audit"]),
            VmRequest::Terminal { vmid, .. } => on(vms(vmid), &["VM.Console"]),
            // Root only: the handler refuses everyone else whatever the ACL says.
            VmRequest::Monitor { vmid, .. } => on(vms(vmid), &["Sys.Modify"]),
            VmRequest::Snapshot { vmid, .. } | VmRequest::DelSnapshot { vmid, .. } => on(vms(vmid), &["VM.Snapshot"]),
            VmRequest::ListSnapshot { vmid } => on(vms(vmid), &["VM.Audit"]),
            VmRequest::Rollback { vmid, .. } => on(vms(vmid), &["VM.Snapshot.Rollback"]),
            VmRequest::Template { vmid } => on(vms(vmid), &["VM.Allocate"]),
            VmRequest::Clone(c) => on(vms(&c.vmid), &["VM.Clone"]),
            VmRequest::Resize { vmid, .. } => on(vms(vmid), &["VM.Config.Disk"]),
            // Root only: the command line shows host paths.
            VmRequest::ShowCmd { vmid, .. } => on(vms(vmid), &["Sys.Modify"]),
            // Proxmox also wants Datastore.AllocateSpace on the target storage of a move or an
            // import; the table names one path per request, the VM's.
            VmRequest::MoveDisk(m) => on(vms(&m.vmid), &["VM.Config.Disk"]),
            VmRequest::ImportDisk(i) => on(vms(&i.vmid), &["VM.Config.Disk"]),
            VmRequest::Unlink { vmid, .. } => on(vms(vmid), &["VM.Config.Disk"]),
            VmRequest::Cleanup { vmid } => on(vms(vmid), &["VM.PowerMgmt"]),
        },
        Request::Ct(r) => match r {
            CtRequest::Create(c) => on(vms(&c.vmid), &["VM.Allocate"]),
            CtRequest::Set(s) => on(vms(&s.vmid), &["VM.Config.Options"]),
            CtRequest::Config(c) => on(vms(&c.vmid), &["VM.Audit"]),
            CtRequest::Pending { vmid } => on(vms(vmid), &["VM.Audit"]),
            CtRequest::List => on("/vms".into(), &["VM.Audit"]),
            CtRequest::Destroy(d) => on(vms(&d.vmid), &["VM.Allocate"]),
            CtRequest::Unlock { vmid } => on(vms(vmid), &["VM.Config.Options"]),
        },
        Request::Task(r) => match r {
            TaskRequest::List(_)
            | TaskRequest::Log { .. }
            | TaskRequest::Status { .. }
            | TaskRequest::Follow { .. } => on(format!("/nodes/{node}"), &["Sys.Audit"]),
            TaskRequest::Stop { .. } => on(format!("/nodes/{node}"), &["Sys.Modify"]),
        },
        Request::Node(NodeRequest::StartAll { .. } | NodeRequest::StopAll { .. }) => on("/".into(), &["VM.PowerMgmt"]),
        Request::Storage(r) => {
            let storage = |id: &str| format!("/storage/{id}");
            // A volume id's storage; a malformed id is refused later, after the check, so
            // the path falls back to the whole tree.
            let of_volume = |volid: &str| volid.split_once(':').map_or_else(|| "/storage".into(), |(s, _)| storage(s));
            match r {
                StorageRequest::Add(_) => on("/storage".into(), &["Datastore.Allocate"]),
                StorageRequest::Set(s) => on(storage(&s.storage), &["Datastore.Allocate"]),
                StorageRequest::Remove { storage: s } => on(storage(s), &["Datastore.Allocate"]),
                StorageRequest::Config { storage: s }
                | StorageRequest::Status(hearth_proto::StorageStatusFilter { storage: s, .. }) => {
                    on(s.as_deref().map_or_else(|| "/storage".into(), storage), &["Datastore.Audit"])
                }
                StorageRequest::List(l) => on(storage(&l.storage), &["Datastore.Audit"]),
                StorageRequest::Alloc(a) => on(storage(&a.storage), &["Datastore.AllocateSpace"]),
                StorageRequest::Free { volid } | StorageRequest::Path { volid } => {
                    on(of_volume(volid), &["Datastore.Allocate"])
                }
                StorageRequest::Import(i) => on(of_volume(&i.volid), &["Datastore.Allocate"]),
                StorageRequest::Export(e) => on(of_volume(&e.volid), &["Datastore.Allocate"]),
                StorageRequest::Upload(u) => on(storage(&u.storage), &["Datastore.AllocateTemplate"]),
            }
        }
    }
}

/// Refuses the request unless the caller holds what it needs.
pub fn authorize(caller: &Caller, required: &Required) -> Result<(), ErrorReply> {
    if caller.is_root() {
        return Ok(());
    }
    Err(ErrorReply::new(
        ErrorKind::PermissionDenied,
        format!(
            "permission denied: {} lacks {} on {} (no ACL grants it; only root@pam holds rights by default)",
            caller.userid,
            required.privileges.join(", "),
            required.path
        ),
    ))
}
