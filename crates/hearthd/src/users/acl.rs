//! ACL entries: granting and revoking roles on paths, and listing them.

use hearth_core::access::{AccessModel, AclEntry, AclPath, AclSubject, Privilege, RoleName};
use hearth_proto::{AclInfo, ErrorKind, ErrorReply, Payload};

use super::{invalid, now};
use crate::Daemon;
use crate::access::Caller;

/// Grants or revokes the change's roles. The table asks nothing of the request itself; which
/// roles the caller may delegate depends on the model, so it is checked here, under the edit
/// lock: a caller other than root@pam may grant or revoke a role only where
/// [`AccessModel::may_grant`] allows it (Permissions.Modify on the path, or the object's
/// Allocate privilege there and every privilege of the role, as Proxmox).
pub(super) fn modify(
    daemon: &Daemon,
    caller: &Caller,
    change: &AclChange,
    propagate: bool,
    delete: bool,
) -> Result<Payload, ErrorReply> {
    let verb = if delete { "acl delete" } else { "acl modify" };
    let what = format!("{verb} {} roles {} for {}", change.path, change.role_list(), change.subject_list());
    let who = caller.authid();
    daemon.access.edit(caller, &what, |m| {
        if let Some(role) = change.roles.iter().find(|r| m.role_privs(r.as_str()).is_none()) {
            let hint = m.suggest_role(role.as_str()).map(|r| format!("did you mean '{r}'? ")).unwrap_or_default();
            return Err(invalid(format!("unknown role '{role}'; {hint}see `userctl role list`")));
        }
        if !caller.is_root() {
            let refused =
                change.roles.iter().find(|r| who.as_ref().is_none_or(|w| !m.may_grant(w, &change.path, r, now())));
            if let Some(role) = refused {
                daemon.access.audit(&caller.userid, &format!("denied Permissions.Modify on {}", change.path));
                return Err(ErrorReply::new(
                    ErrorKind::PermissionDenied,
                    format!(
                        "permission denied: {} lacks Permissions.Modify on {} to grant or revoke role '{role}'",
                        caller.userid, change.path
                    ),
                ));
            }
        }
        change.apply(m, propagate, delete);
        Ok(())
    })?;
    Ok(Payload::Empty)
}

/// The entries on paths where the caller holds Sys.Audit or Permissions.Modify.
pub(super) fn list(daemon: &Daemon, caller: &Caller) -> Payload {
    let access = &daemon.access;
    let model = access.model();
    let wanted = [Privilege::SysAudit, Privilege::PermissionsModify].into();
    let entries = model
        .acl
        .iter()
        .filter(|e| caller.is_root() || !access.privileges(caller, &e.path).intersection(wanted).is_empty())
        .map(acl_info)
        .collect();
    Payload::Acl(entries)
}

fn acl_info(e: &AclEntry) -> AclInfo {
    let (subject_type, ugid) = match &e.subject {
        AclSubject::User(u) => ("user", u.to_string()),
        AclSubject::Group(g) => ("group", g.to_string()),
        AclSubject::Token(t) => ("token", t.to_string()),
    };
    AclInfo {
        path: e.path.to_string(),
        subject_type: subject_type.to_owned(),
        ugid,
        roleid: e.role.to_string(),
        propagate: e.propagate,
    }
}

/// `acl modify`'s arguments, parsed: one path, roles, and whom they are for.
#[derive(Debug)]
pub(super) struct AclChange {
    path: AclPath,
    roles: Vec<RoleName>,
    subjects: Vec<AclSubject>,
}

impl AclChange {
    pub(super) fn parse(
        path: &str,
        roles: &[String],
        users: &[String],
        groups: &[String],
        tokens: &[String],
    ) -> Result<AclChange, ErrorReply> {
        let path = AclPath::parse(path).map_err(|e| invalid(e.to_string()))?;
        let id_err = |e: hearth_core::access::IdError| invalid(e.to_string());
        let roles = roles.iter().map(|r| r.parse::<RoleName>()).collect::<Result<Vec<_>, _>>().map_err(id_err)?;
        if roles.is_empty() {
            return Err(invalid("no role given: name one or more with --roles (see `userctl role list`)"));
        }
        let mut subjects = Vec::new();
        for u in users {
            subjects.push(AclSubject::User(u.parse().map_err(id_err)?));
        }
        for g in groups {
            subjects.push(AclSubject::Group(g.parse().map_err(id_err)?));
        }
        for t in tokens {
            subjects.push(AclSubject::Token(t.parse().map_err(id_err)?));
        }
        if subjects.is_empty() {
            return Err(invalid("nobody to grant to: give --users, --groups or --tokens"));
        }
        Ok(AclChange { path, roles, subjects })
    }

    fn role_list(&self) -> String {
        self.roles.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
    }

    fn subject_list(&self) -> String {
        self.subjects.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
    }

    /// Adds each grant (or updates its propagation), or removes it with `delete`.
    fn apply(&self, model: &mut AccessModel, propagate: bool, delete: bool) {
        for subject in &self.subjects {
            for role in &self.roles {
                let entry =
                    AclEntry { path: self.path.clone(), subject: subject.clone(), role: role.clone(), propagate };
                if delete {
                    model.acl.retain(|e| !e.same_grant(&entry));
                } else if let Some(existing) = model.acl.iter_mut().find(|e| e.same_grant(&entry)) {
                    existing.propagate = propagate;
                } else {
                    model.acl.push(entry);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;

    #[test]
    fn acl_changes() {
        let mut m = AccessModel::default();
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        let change =
            AclChange::parse("/vms/100", &s(&["PVEVMUser", "PVEAuditor"]), &s(&["joe@pam"]), &s(&["ops"]), &[])
                .unwrap();
        change.apply(&mut m, true, false);
        assert_eq!(m.acl.len(), 4);
        change.apply(&mut m, false, false);
        assert_eq!(m.acl.len(), 4);
        assert!(m.acl.iter().all(|e| !e.propagate));
        AclChange::parse("/vms/100", &s(&["PVEAuditor"]), &s(&["joe@pam"]), &[], &[])
            .unwrap()
            .apply(&mut m, true, true);
        assert_eq!(m.acl.len(), 3);
        assert!(
            AclChange::parse("/vms/1", &s(&["PVEAuditor"]), &s(&["joe@pam"]), &[], &[])
                .unwrap_err()
                .message
                .contains("VMID")
        );
        assert!(AclChange::parse("/", &[], &s(&["joe@pam"]), &[], &[]).unwrap_err().message.contains("--roles"));
        assert!(AclChange::parse("/", &s(&["PVEAuditor"]), &[], &[], &[]).unwrap_err().message.contains("--users"));
    }
}
