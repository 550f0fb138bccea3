//! Groups: add, modify, delete, list.

use std::collections::BTreeSet;

use hearth_core::access::{AclSubject, Group, GroupName, Privilege, Userid};
use hearth_proto::{ErrorKind, ErrorReply, GroupInfo, Payload};

use super::{holds_any, text};
use crate::Daemon;
use crate::access::Caller;

pub(super) fn parse_group(s: &str) -> Result<GroupName, ErrorReply> {
    super::parse_id(s)
}

fn unknown_group(name: &GroupName) -> ErrorReply {
    ErrorReply::new(ErrorKind::NotFound, format!("no such group '{name}'"))
}

pub(super) fn add(
    daemon: &Daemon,
    caller: &Caller,
    group: &str,
    comment: Option<String>,
) -> Result<Payload, ErrorReply> {
    let name = parse_group(group)?;
    daemon.access.edit(caller, &format!("group add {name}"), |m| {
        if m.groups.contains_key(&name) {
            return Err(ErrorReply::new(ErrorKind::Conflict, format!("group '{name}' already exists")));
        }
        m.groups.insert(name.clone(), Group { comment: text(comment) });
        Ok(())
    })?;
    Ok(Payload::Empty)
}

pub(super) fn modify(
    daemon: &Daemon,
    caller: &Caller,
    group: &str,
    comment: Option<String>,
) -> Result<Payload, ErrorReply> {
    let name = parse_group(group)?;
    daemon.access.edit(caller, &format!("group modify {name}"), |m| {
        let g = m.groups.get_mut(&name).ok_or_else(|| unknown_group(&name))?;
        if comment.is_some() {
            g.comment = text(comment);
        }
        Ok(())
    })?;
    Ok(Payload::Empty)
}

/// Removes the group, its members' membership and every ACL entry naming it.
pub(super) fn delete(daemon: &Daemon, caller: &Caller, group: &str) -> Result<Payload, ErrorReply> {
    let name = parse_group(group)?;
    daemon.access.edit(caller, &format!("group delete {name}"), |m| {
        m.groups.remove(&name).ok_or_else(|| unknown_group(&name))?;
        for user in m.users.values_mut() {
            user.groups.remove(&name);
        }
        m.acl.retain(|e| e.subject != AclSubject::Group(name.clone()));
        Ok(())
    })?;
    Ok(Payload::Empty)
}

/// Every group for Sys.Audit or Group.Allocate holders; one's own groups for everyone else.
pub(super) fn list(daemon: &Daemon, caller: &Caller) -> Payload {
    let model = daemon.access.model();
    let all = holds_any(daemon, caller, "/access/groups", [Privilege::SysAudit, Privilege::GroupAllocate]);
    let mine: BTreeSet<&GroupName> = caller
        .userid
        .parse::<Userid>()
        .ok()
        .and_then(|u| model.users.get(&u))
        .map(|u| u.groups.iter().collect())
        .unwrap_or_default();
    let groups = model
        .groups
        .iter()
        .filter(|(name, _)| all || mine.contains(name))
        .map(|(name, g)| GroupInfo {
            group: name.to_string(),
            comment: g.comment.clone(),
            members: model.group_members(name).map(Userid::to_string).collect(),
        })
        .collect();
    Payload::Groups(groups)
}
