//! Users, groups, roles, ACL entries, pools and API tokens: the answers to `userctl` (Proxmox's
//! `pveum`), one module per area. Every change goes through
//! [`AccessControl::edit`](crate::access::AccessControl::edit), which validates the model, refuses
//! to remove the last Administrator of `/`, writes `access.toml` atomically and audits the change.
//!
//! [`required`] is the access requests' part of the authorization table and is checked before
//! any handler here runs; handlers check only what depends on the model (what a listing shows,
//! and which roles `acl modify` may delegate).
//!
//! Token secrets, passwords and second factors are not part of the model: [`crate::credentials`]
//! keeps them hashed in `etc/hearth/priv/`, so a secret is shown once, when it is created, and
//! never logged.

mod accounts;
mod acl;
mod groups;
mod pools;
mod realms;
mod roles;
mod tfa;
mod tokens;

use std::sync::Arc;

use crate::Daemon;
use crate::access::{Caller, Need, anyone, on, root};
use hearth_core::access::{AclPath, PrivSet, Privilege as P, Userid};
use hearth_proto::{AccessRequest, ErrorKind, ErrorReply, Payload};

/// What each access request needs, as Proxmox's `/access` and `/pools` API declare it. The
/// caller matters where a request names a user: one's own permissions, password and second
/// factors are always one's own.
pub fn required(r: &AccessRequest, caller: &Caller) -> Vec<Need> {
    use AccessRequest as A;
    let user_admin = || on("/access/groups", P::UserModify);
    // The caller itself, as that user rather than through one of its tokens.
    let own = |userid: &str| userid == caller.userid && caller.token.is_none();
    // Realm.AllocateUser on the realm a user id names; a malformed id is refused by the handler.
    let realm = |userid: &str| {
        userid.rsplit_once('@').map(|(_, realm)| on(format!("/access/realm/{realm}"), P::RealmAllocateUser))
    };
    // Proxmox's `userid-group` check for a new user: User.Modify on /access/groups, or on
    // /access/groups/GROUP for every group the new user joins (a user admin delegated one group
    // may add members to it). Membership carries the group's roles, so the handler also lets a
    // caller change memberships only where it could grant or revoke the groups' ACL entries
    // itself (`accounts::check_membership`).
    let new_user_admin = |options: &[(String, String)]| {
        let groups: Vec<&str> = options
            .iter()
            .filter(|(k, _)| k == "groups")
            .flat_map(|(_, v)| v.split(',').map(str::trim).filter(|g| !g.is_empty()))
            .collect();
        if groups.is_empty() {
            user_admin()
        } else {
            let scoped = groups.iter().map(|g| on(format!("/access/groups/{g}"), P::UserModify)).collect();
            Need::Either(vec![user_admin()], scoped)
        }
    };
    match r {
        A::UserAdd { userid, options } => {
            [realm(userid), Some(new_user_admin(options))].into_iter().flatten().collect()
        }
        // Changing a user needs the user admin's right over all users: which groups the user is
        // in (Proxmox's alternative) is the model's, not this table's.
        A::UserModify { .. } => vec![user_admin()],
        A::UserDelete { userid } => [realm(userid), Some(user_admin())].into_iter().flatten().collect(),
        A::UserList => vec![anyone("/access")],
        A::UserPermissions { userid, .. } => {
            // One's own and one's tokens' permissions; anyone's with Sys.Audit.
            let user = userid.split_once('!').map_or(userid.as_str(), |(user, _)| user);
            if user == caller.userid { vec![anyone("/access")] } else { vec![on("/access", P::SysAudit)] }
        }
        A::GroupAdd { .. } | A::GroupModify { .. } | A::GroupDelete { .. } => {
            vec![on("/access/groups", P::GroupAllocate)]
        }
        A::GroupList => vec![anyone("/access/groups")],
        A::RoleAdd { .. } | A::RoleModify { .. } | A::RoleDelete { .. } => vec![on("/access", P::SysModify)],
        A::RoleList => vec![anyone("/access")],
        // Which roles the caller may grant or revoke on the path depends on the model: the
        // handler decides it (`AccessModel::may_grant`).
        A::AclModify { path, .. } => vec![anyone(path.as_str())],
        A::AclList => vec![anyone("/")],
        A::PoolAdd { pool, vms, storage, .. } | A::PoolModify { pool, vms, storage, .. } => {
            // Pool members take the pool's roles: each guest needs VM.Allocate, each storage
            // Datastore.Allocate, as in Proxmox.
            let mut needs = vec![on(format!("/pool/{pool}"), P::PoolAllocate)];
            needs.extend(vms.iter().map(|v| on(format!("/vms/{v}"), P::VmAllocate)));
            needs.extend(storage.iter().map(|s| on(format!("/storage/{s}"), P::DatastoreAllocate)));
            needs
        }
        A::PoolDelete { pool } => vec![on(format!("/pool/{pool}"), P::PoolAllocate)],
        A::PoolList => vec![anyone("/pool")],
        // A token acts with its user's rights, so whoever could make one for another user would
        // hold that user's rights: Proxmox's User.Modify is not enough, another user's tokens
        // are root's.
        A::TokenAdd { userid, .. }
        | A::TokenRemove { userid, .. }
        | A::TokenList { userid }
        | A::TokenModify { userid, .. } => {
            if own(userid) {
                vec![anyone("/access/groups")]
            } else {
                vec![root(format!("token: manage the API tokens of '{userid}'"))]
            }
        }
        // Proxmox's `PUT /access/password`: one's own password always; another user's with
        // Realm.AllocateUser on its realm and User.Modify on `/access/groups`.
        A::Passwd { userid, .. } => {
            if own(userid) {
                vec![anyone("/access")]
            } else {
                [realm(userid), Some(user_admin())].into_iter().flatten().collect()
            }
        }
        // One's own second factors, or anyone's with User.Modify, as Proxmox's `/access/tfa`.
        A::TfaAdd { userid, .. } | A::TfaDelete { userid, .. } | A::TfaList { userid: Some(userid) } => {
            if own(userid) {
                vec![anyone("/access/groups")]
            } else {
                vec![user_admin()]
            }
        }
        // Everyone's factors for User.Modify holders, one's own for everyone else.
        A::TfaList { userid: None } => vec![anyone("/access/groups")],
        // Proxmox's `unlock-tfa`: User.Modify, even for oneself (a locked-out user is who asks).
        A::TfaUnlock { .. } => vec![user_admin()],
        A::RealmList => vec![anyone("/access/realm")],
        A::RealmAdd { .. } | A::RealmModify { .. } | A::RealmDelete { .. } => {
            vec![on("/access/realm", P::RealmAllocate)]
        }
        A::RealmSync { realm, .. } => {
            vec![on(format!("/access/realm/{realm}"), P::RealmAllocateUser), user_admin()]
        }
    }
}

/// Answers one access request; [`required`] was checked before.
pub fn handle(daemon: &Arc<Daemon>, caller: &Caller, r: AccessRequest) -> Result<Payload, ErrorReply> {
    use AccessRequest as A;
    match r {
        A::UserAdd { userid, options } => accounts::add(daemon, caller, &userid, &options),
        A::UserModify { userid, options, append } => accounts::modify(daemon, caller, &userid, &options, append),
        A::UserDelete { userid } => accounts::delete(daemon, caller, &userid),
        A::UserList => Ok(accounts::list(daemon, caller)),
        A::UserPermissions { userid, path } => accounts::permissions(daemon, &userid, path.as_deref()),
        A::GroupAdd { group, comment } => groups::add(daemon, caller, &group, comment),
        A::GroupModify { group, comment } => groups::modify(daemon, caller, &group, comment),
        A::GroupDelete { group } => groups::delete(daemon, caller, &group),
        A::GroupList => Ok(groups::list(daemon, caller)),
        A::RoleAdd { role, privs } => roles::add(daemon, caller, &role, &privs),
        A::RoleModify { role, privs, append } => roles::modify(daemon, caller, &role, &privs, append),
        A::RoleDelete { role } => roles::delete(daemon, caller, &role),
        A::RoleList => Ok(roles::list(daemon)),
        A::AclModify { path, roles, users, groups, tokens, propagate, delete } => {
            let change = acl::AclChange::parse(&path, &roles, &users, &groups, &tokens)?;
            acl::modify(daemon, caller, &change, propagate, delete)
        }
        A::AclList => Ok(acl::list(daemon, caller)),
        A::PoolAdd { pool, comment, vms, storage } => pools::add(daemon, caller, &pool, comment, vms, storage),
        A::PoolModify { pool, comment, vms, storage, delete } => {
            pools::modify(daemon, caller, &pool, comment, &vms, &storage, delete)
        }
        A::PoolDelete { pool } => pools::delete(daemon, caller, &pool),
        A::PoolList => Ok(pools::list(daemon, caller)),
        A::TokenAdd { userid, tokenid, privsep, expire, comment } => {
            tokens::add(daemon, caller, &userid, &tokenid, tokens::NewToken { privsep, expire, comment })
        }
        A::TokenRemove { userid, tokenid } => tokens::remove(daemon, caller, &userid, &tokenid),
        A::TokenModify { userid, tokenid, privsep, expire, comment } => {
            tokens::modify(daemon, caller, &userid, &tokenid, tokens::TokenChange { privsep, expire, comment })
        }
        A::TokenList { userid } => tokens::list(daemon, &userid),
        A::Passwd { userid, password } => tfa::passwd(daemon, caller, &userid, password.expose()),
        A::TfaAdd { userid, kind } => tfa::add(daemon, caller, &userid, kind),
        A::TfaList { userid } => tfa::list(daemon, caller, userid.as_deref()),
        A::TfaDelete { userid, id } => tfa::delete(daemon, caller, &userid, &id),
        A::TfaUnlock { userid } => tfa::unlock(daemon, caller, &userid),
        A::RealmList => realms::list(daemon),
        A::RealmAdd { realm, kind, options } => realms::add(daemon, caller, &realm, &kind, &options),
        A::RealmModify { realm, options, delete } => realms::modify(daemon, caller, &realm, &options, &delete),
        A::RealmDelete { realm } => realms::delete(daemon, caller, &realm),
        A::RealmSync { realm, .. } => realms::sync(daemon, &realm),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn invalid(message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(ErrorKind::Invalid, message)
}

fn unknown_user(id: &Userid) -> ErrorReply {
    ErrorReply::new(ErrorKind::NotFound, format!("no such user '{id}'"))
}

/// An empty text clears the field.
fn text(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// Parses a user, group, pool, role or token id; a bad one is refused naming what is wrong.
fn parse_id<T: std::str::FromStr<Err = hearth_core::access::IdError>>(s: &str) -> Result<T, ErrorReply> {
    s.parse().map_err(|e: hearth_core::access::IdError| invalid(e.to_string()))
}

fn parse_userid(s: &str) -> Result<Userid, ErrorReply> {
    parse_id(s)
}

fn priv_names(set: PrivSet) -> Vec<String> {
    set.iter().map(|p| p.name().to_owned()).collect()
}

/// Whether the caller holds any of `wanted` on `path`: what decides how much a listing shows.
fn holds_any(daemon: &Daemon, caller: &Caller, path: &str, wanted: impl Into<PrivSet>) -> bool {
    let wanted = wanted.into();
    caller.is_root()
        || AclPath::parse(path).is_ok_and(|p| !daemon.access.privileges(caller, &p).intersection(wanted).is_empty())
}
