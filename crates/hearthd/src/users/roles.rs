//! Custom roles: add, modify, delete; the list shows the built-in ones too.

use hearth_core::access::{AccessModel, PrivSet, RoleName, role};
use hearth_proto::{ErrorKind, ErrorReply, Payload, RoleInfo};

use super::{invalid, priv_names};
use crate::Daemon;
use crate::access::Caller;

fn unknown_role(name: &RoleName) -> ErrorReply {
    ErrorReply::new(ErrorKind::NotFound, format!("no such custom role '{name}'"))
}

pub(super) fn add(daemon: &Daemon, caller: &Caller, role: &str, privs: &str) -> Result<Payload, ErrorReply> {
    let name = custom_role(role)?;
    let privs = parse_privs(privs)?;
    daemon.access.edit(caller, &format!("role add {name} {privs}"), |m| {
        if m.roles.contains_key(&name) {
            return Err(ErrorReply::new(ErrorKind::Conflict, format!("role '{name}' already exists")));
        }
        m.roles.insert(name.clone(), privs);
        Ok(())
    })?;
    Ok(Payload::Empty)
}

/// With `append`, the privileges are added to the role's instead of replacing them.
pub(super) fn modify(
    daemon: &Daemon,
    caller: &Caller,
    role: &str,
    privs: &str,
    append: bool,
) -> Result<Payload, ErrorReply> {
    let name = custom_role(role)?;
    let privs = parse_privs(privs)?;
    daemon.access.edit(caller, &format!("role modify {name} {privs}"), |m| {
        let held = m.roles.get_mut(&name).ok_or_else(|| unknown_role(&name))?;
        *held = if append { held.union(privs) } else { privs };
        Ok(())
    })?;
    Ok(Payload::Empty)
}

/// Removes the role and every ACL entry granting it.
pub(super) fn delete(daemon: &Daemon, caller: &Caller, role: &str) -> Result<Payload, ErrorReply> {
    let name = custom_role(role)?;
    daemon.access.edit(caller, &format!("role delete {name}"), |m| {
        m.roles.remove(&name).ok_or_else(|| unknown_role(&name))?;
        m.acl.retain(|e| e.role != name);
        Ok(())
    })?;
    Ok(Payload::Empty)
}

pub(super) fn list(daemon: &Daemon) -> Payload {
    Payload::Roles(role_infos(&daemon.access.model()))
}

/// A custom role's name; built-in roles cannot be added, changed or deleted.
fn custom_role(s: &str) -> Result<RoleName, ErrorReply> {
    let name: RoleName = super::parse_id(s)?;
    if let Some(b) = role::BUILTIN_ROLES.iter().find(|r| r.name.eq_ignore_ascii_case(s)) {
        return Err(invalid(format!("role '{}' is built in and cannot be added, changed or deleted", b.name)));
    }
    name.check_custom().map_err(|e| invalid(e.to_string()))?;
    Ok(name)
}

fn parse_privs(list: &str) -> Result<PrivSet, ErrorReply> {
    PrivSet::parse(list).map_err(|e| invalid(e.to_string()))
}

fn role_infos(model: &AccessModel) -> Vec<RoleInfo> {
    let mut roles: Vec<RoleInfo> = role::BUILTIN_ROLES
        .iter()
        .map(|r| RoleInfo { role: r.name.to_owned(), privs: priv_names(r.privs), special: true })
        .chain(model.roles.iter().map(|(name, privs)| RoleInfo {
            role: name.to_string(),
            privs: priv_names(*privs),
            special: false,
        }))
        .collect();
    roles.sort_by(|a, b| a.role.cmp(&b.role));
    roles
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;

    #[test]
    fn custom_roles_and_privileges() {
        assert_eq!(
            custom_role("administrator").unwrap_err().message,
            "role 'Administrator' is built in and cannot be added, changed or deleted"
        );
        assert!(custom_role("PVEThing").unwrap_err().message.contains("reserved"));
        assert_eq!(
            parse_privs("VM.Audit,VM.Powermgmt").unwrap_err().message,
            "unknown privilege 'VM.Powermgmt'; did you mean 'VM.PowerMgmt'?"
        );
        assert_eq!(priv_names(parse_privs("VM.PowerMgmt VM.Audit").unwrap()), ["VM.Audit", "VM.PowerMgmt"]);
    }
}
