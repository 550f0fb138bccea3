//! User accounts: add, modify, delete, list, and what a user or token may do where.

use std::collections::{BTreeMap, BTreeSet};

use hearth_core::access::realm::Domains;
use hearth_core::access::{AccessModel, AclPath, AclSubject, Authid, GroupName, Privilege, TokenId, User, Userid};
use hearth_proto::{ErrorKind, ErrorReply, PathPermissions, Payload, UserInfo};

use super::{holds_any, invalid, now, parse_userid, priv_names, unknown_user};
use crate::Daemon;
use crate::access::Caller;
use crate::credentials::{self, forget_secrets};

/// The options `user add` and `user modify` take.
const USER_OPTIONS: &str = "email, firstname, lastname, comment, groups, enable, expire";

pub(super) fn add(
    daemon: &Daemon,
    caller: &Caller,
    userid: &str,
    options: &[(String, String)],
) -> Result<Payload, ErrorReply> {
    let id = new_userid(userid, &super::realms::load(&daemon.root)?)?;
    let options = UserOptions::parse(options)?;
    daemon.access.edit(caller, &format!("user add {id}"), |m| {
        if m.user_exists(&id) {
            return Err(ErrorReply::new(ErrorKind::Conflict, format!("user '{id}' already exists")));
        }
        let mut user = User::default();
        options.apply(&mut user, false);
        check_membership(daemon, caller, m, &BTreeSet::new(), &user.groups)?;
        m.users.insert(id.clone(), user);
        Ok(())
    })?;
    Ok(Payload::Empty)
}

/// With `append`, groups are added to the user's instead of replacing them.
pub(super) fn modify(
    daemon: &Daemon,
    caller: &Caller,
    userid: &str,
    options: &[(String, String)],
    append: bool,
) -> Result<Payload, ErrorReply> {
    let id = parse_userid(userid)?;
    let options = UserOptions::parse(options)?;
    daemon.access.edit(caller, &format!("user modify {id}"), |m| {
        if id.is_root() && !m.users.contains_key(&id) {
            m.users.insert(id.clone(), User::default());
        }
        let mut user = m.users.get(&id).ok_or_else(|| unknown_user(&id))?.clone();
        let before = user.groups.clone();
        options.apply(&mut user, append);
        // Judged on the model as it is: after the change the caller may be in the group itself.
        check_membership(daemon, caller, m, &before, &user.groups)?;
        m.users.insert(id.clone(), user);
        Ok(())
    })?;
    Ok(Payload::Empty)
}

/// Removes the user, its tokens and every ACL entry naming either, then their secrets.
pub(super) fn delete(daemon: &Daemon, caller: &Caller, userid: &str) -> Result<Payload, ErrorReply> {
    let id = parse_userid(userid)?;
    if id.is_root() {
        return Err(invalid("user 'root@pam' cannot be deleted: it is the host's superuser"));
    }
    let removed = daemon.access.edit(caller, &format!("user delete {id}"), |m| {
        m.users.remove(&id).ok_or_else(|| unknown_user(&id))?;
        let tokens: Vec<TokenId> = m.tokens.keys().filter(|t| t.user() == &id).cloned().collect();
        for t in &tokens {
            m.tokens.remove(t);
        }
        m.acl.retain(|e| match &e.subject {
            AclSubject::User(u) => u != &id,
            AclSubject::Token(t) => t.user() != &id,
            AclSubject::Group(_) => true,
        });
        Ok(tokens)
    })?;
    forget_secrets(&daemon.root, &removed)?;
    credentials::forget_user(&daemon.root, &id)?;
    Ok(Payload::Empty)
}

/// Every user for Sys.Audit or User.Modify holders; oneself for everyone else.
pub(super) fn list(daemon: &Daemon, caller: &Caller) -> Payload {
    let model = daemon.access.model();
    let all = holds_any(daemon, caller, "/access/groups", [Privilege::SysAudit, Privilege::UserModify]);
    Payload::Users(user_infos(&model).into_iter().filter(|u| all || u.userid == caller.userid).collect())
}

/// What a user or token holds on one path, or on every path where it holds anything.
pub(super) fn permissions(daemon: &Daemon, userid: &str, path: Option<&str>) -> Result<Payload, ErrorReply> {
    let who: Authid = super::parse_id(userid)?;
    let model = daemon.access.model();
    let exists = match &who {
        Authid::User(u) => model.user_exists(u),
        Authid::Token(t) => model.tokens.contains_key(t),
    };
    if !exists {
        return Err(ErrorReply::new(ErrorKind::NotFound, format!("no such user or token '{who}'")));
    }
    let perms = match path {
        Some(path) => {
            let path = AclPath::parse(path).map_err(|e| invalid(e.to_string()))?;
            let privs = model.permissions(&who, &path, now());
            BTreeMap::from([(path, privs)])
        }
        None => model.effective_permissions(&who, now()),
    };
    Ok(Payload::Permissions(
        perms
            .into_iter()
            .map(|(path, privs)| PathPermissions { path: path.to_string(), privs: priv_names(privs) })
            .collect(),
    ))
}

/// Joining or leaving a group takes or sheds the roles its ACL entries grant (and the
/// `NoAccess` they impose), so a caller other than root@pam may change a membership only if it
/// may grant and revoke each of those entries itself ([`AccessModel::may_grant`]): Permissions.Modify
/// on the entry's path, or the object's Allocate privilege there and every privilege of the role.
fn check_membership(
    daemon: &Daemon,
    caller: &Caller,
    model: &AccessModel,
    before: &BTreeSet<GroupName>,
    after: &BTreeSet<GroupName>,
) -> Result<(), ErrorReply> {
    if caller.is_root() {
        return Ok(());
    }
    let who = caller.authid();
    for group in before.symmetric_difference(after) {
        let entries = model.acl.iter().filter(|e| matches!(&e.subject, AclSubject::Group(g) if g == group));
        for entry in entries {
            if who.as_ref().is_none_or(|w| !model.may_grant(w, &entry.path, &entry.role, now())) {
                daemon.access.audit(&caller.userid, &format!("denied: membership of {group}"));
                return Err(ErrorReply::new(
                    ErrorKind::PermissionDenied,
                    format!(
                        "permission denied: group '{group}' holds role '{}' on {}, which {} may not grant or \
                         revoke (it needs Permissions.Modify there), so it cannot change who is in the group",
                        entry.role, entry.path, caller.userid
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A user id for a new user: its realm must exist, `pam`, `pve` or a configured one.
fn new_userid(s: &str, domains: &Domains) -> Result<Userid, ErrorReply> {
    let id = parse_userid(s)?;
    if domains.realm_type(id.realm()).is_none() {
        let realms: Vec<String> = domains.all().into_iter().map(|(name, _, _)| name).collect();
        return Err(invalid(format!(
            "unknown realm '{}' in user id '{id}': the realms are {} (see `userctl realm list`)",
            id.realm(),
            realms.join(", ")
        )));
    }
    Ok(id)
}

/// The changes `user add` and `user modify` make. `Some(None)` clears a field.
#[derive(Debug, Default, PartialEq)]
struct UserOptions {
    enable: Option<bool>,
    expire: Option<Option<i64>>,
    groups: Option<BTreeSet<GroupName>>,
    firstname: Option<Option<String>>,
    lastname: Option<Option<String>>,
    email: Option<Option<String>>,
    comment: Option<Option<String>>,
}

impl UserOptions {
    fn parse(options: &[(String, String)]) -> Result<UserOptions, ErrorReply> {
        let mut parsed = UserOptions::default();
        for (key, value) in options {
            let cleared = || Some(Some(value.clone()).filter(|v| !v.is_empty()));
            match key.as_str() {
                "enable" => {
                    parsed.enable = Some(match value.as_str() {
                        "1" => true,
                        "0" => false,
                        _ => return Err(invalid(format!("invalid enable '{value}': expected 0 or 1"))),
                    });
                }
                "expire" => {
                    let e: i64 = value.parse().ok().filter(|e| *e >= 0).ok_or_else(|| {
                        invalid(format!("invalid expire '{value}': expected a unix time, or 0 for never"))
                    })?;
                    parsed.expire = Some((e != 0).then_some(e));
                }
                "groups" => {
                    let groups = value
                        .split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(super::groups::parse_group)
                        .collect::<Result<BTreeSet<_>, _>>()?;
                    parsed.groups = Some(groups);
                }
                "firstname" => parsed.firstname = cleared(),
                "lastname" => parsed.lastname = cleared(),
                "email" => {
                    if !value.is_empty() && !value.contains('@') {
                        return Err(invalid(format!("invalid email '{value}': expected NAME@DOMAIN")));
                    }
                    parsed.email = cleared();
                }
                "comment" => parsed.comment = cleared(),
                other => return Err(invalid(format!("unknown user option '{other}': expected one of {USER_OPTIONS}"))),
            }
        }
        Ok(parsed)
    }

    /// With `append`, groups are added to the user's instead of replacing them.
    fn apply(&self, user: &mut User, append: bool) {
        if let Some(e) = self.enable {
            user.enabled = e;
        }
        if let Some(e) = self.expire {
            user.expire = e;
        }
        if let Some(groups) = &self.groups {
            if append {
                user.groups.extend(groups.iter().cloned());
            } else {
                user.groups.clone_from(groups);
            }
        }
        for (field, value) in [
            (&mut user.firstname, &self.firstname),
            (&mut user.lastname, &self.lastname),
            (&mut user.email, &self.email),
            (&mut user.comment, &self.comment),
        ] {
            if let Some(v) = value {
                field.clone_from(v);
            }
        }
    }
}

fn user_infos(model: &AccessModel) -> Vec<UserInfo> {
    let info = |id: &Userid, u: &User| UserInfo {
        userid: id.to_string(),
        enable: u.enabled,
        expire: u.expire,
        firstname: u.firstname.clone(),
        lastname: u.lastname.clone(),
        email: u.email.clone(),
        comment: u.comment.clone(),
        groups: u.groups.iter().map(GroupName::to_string).collect(),
        tokens: model.tokens.keys().filter(|t| t.user() == id).map(|t| t.name().to_owned()).collect(),
    };
    let root = Userid::root();
    let mut users: Vec<UserInfo> = model.users.iter().map(|(id, u)| info(id, u)).collect();
    // root@pam always exists, whether or not the file lists it.
    if !model.users.contains_key(&root) {
        users.push(info(&root, &User::default()));
        users.sort_by(|a, b| a.userid.cmp(&b.userid));
    }
    users
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn user_options() {
        let parsed = UserOptions::parse(&opts(&[
            ("email", "joe@example.com"),
            ("groups", "admins, ops"),
            ("enable", "0"),
            ("expire", "0"),
            ("comment", ""),
        ]))
        .unwrap();
        let mut user = User { comment: Some("old".into()), expire: Some(5), ..User::default() };
        parsed.apply(&mut user, false);
        assert_eq!(user.email.as_deref(), Some("joe@example.com"));
        assert_eq!(user.groups.iter().map(GroupName::as_str).collect::<Vec<_>>(), ["admins", "ops"]);
        assert!(!user.enabled);
        assert_eq!(user.expire, None);
        assert_eq!(user.comment, None);
        UserOptions::parse(&opts(&[("groups", "dev")])).unwrap().apply(&mut user, true);
        assert_eq!(user.groups.len(), 3);
        UserOptions::parse(&opts(&[("groups", "dev")])).unwrap().apply(&mut user, false);
        assert_eq!(user.groups.len(), 1);

        let err = |pairs: &[(&str, &str)]| UserOptions::parse(&opts(pairs)).unwrap_err();
        assert_eq!(err(&[("enable", "yes")]).message, "invalid enable 'yes': expected 0 or 1");
        assert_eq!(err(&[("expire", "-1")]).message, "invalid expire '-1': expected a unix time, or 0 for never");
        assert_eq!(
            err(&[("password", "x")]).message,
            "unknown user option 'password': expected one of email, firstname, lastname, comment, groups, enable, expire"
        );
        assert!(err(&[("groups", "a b")]).message.starts_with("invalid group name 'a b'"));
        assert_eq!(err(&[("email", "nope")]).kind, ErrorKind::Invalid);
    }

    #[test]
    fn realms() {
        let none = Domains::default();
        assert!(new_userid("joe@pve", &none).is_ok());
        assert!(new_userid("joe@pam", &none).is_ok());
        assert_eq!(
            new_userid("joe@hearth", &none).unwrap_err().message,
            "unknown realm 'hearth' in user id 'joe@hearth': the realms are pam, pve (see `userctl realm list`)"
        );
        let corp = Domains::from_toml(
            "[realms.corp]\ntype = \"openid\"\nissuer-url = \"https://id.example\"\nclient-id = \"x\"\n",
        )
        .unwrap();
        assert!(new_userid("joe@corp", &corp).is_ok());
        assert!(new_userid("joe", &none).unwrap_err().message.starts_with("invalid user id 'joe'"));
    }
}
