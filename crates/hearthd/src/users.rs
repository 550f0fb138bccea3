//! Users, groups, roles, ACL entries, pools and API tokens: the answers to `userctl` (Proxmox's
//! `pveum`). Every change goes through [`AccessControl::edit`](crate::access::AccessControl::edit),
//! which validates the model, refuses to remove the last Administrator of `/`, writes
//! `access.toml` atomically and audits the change.
//!
//! Token secrets, passwords and second factors are not part of the model: [`crate::credentials`]
//! keeps them hashed in `etc/hearth/priv/`, so a secret is shown once, when it is created, and
//! never logged.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::Daemon;
use crate::access::{Caller, Need};
use crate::credentials::{self, forget_secrets, new_secret, remember_secret};
use hearth_core::access::{
    AccessModel, AclEntry, AclPath, AclSubject, Authid, GroupName, PoolName, PrivSet, Privilege, RoleName, TokenId,
    User, Userid, role,
};
use hearth_proto::{
    AccessRequest, AclInfo, ErrorKind, ErrorReply, GroupInfo, NewToken, PathPermissions, Payload, PoolInfo, RoleInfo,
    TokenInfo, UserInfo,
};

/// The realms a user may be created in: `pam` (host accounts) and `hearth` (Hearth's own).
const REALMS: &[&str] = &["pam", "hearth"];

/// The options `user add` and `user modify` take.
const USER_OPTIONS: &str = "email, firstname, lastname, comment, groups, enable, expire";

/// What each access request needs, as Proxmox's `/access` and `/pools` API declare it. The
/// caller matters where a request names a user: one's own permissions, password and second
/// factors are always one's own. The handlers check the same again where they act, and alone
/// decide what depends on the model (listings, and `acl modify`, which may delegate only roles
/// whose privileges the caller holds).
pub fn required(r: &AccessRequest, caller: &Caller) -> Vec<Need> {
    use AccessRequest as A;
    let on = |path: &str, privileges: &'static [&'static str]| Need::All { path: path.to_owned(), privileges };
    let user_admin = || on("/access/groups", &["User.Modify"]);
    // The caller itself, as that user rather than through one of its tokens.
    let own = |userid: &str| userid == caller.userid && caller.token.is_none();
    // The realm a user id names; a malformed id is refused by the handler.
    let realm = |userid: &str| userid.rsplit_once('@').map(|(_, realm)| format!("/access/realm/{realm}"));
    // Group membership carries the group's roles: changing it is granting them.
    let membership = |options: &[(String, String)]| {
        options.iter().any(|(k, _)| k == "groups").then(|| on("/", &["Permissions.Modify"]))
    };
    match r {
        A::UserAdd { userid, options } => {
            let mut needs: Vec<Need> = realm(userid).map(|p| on(&p, &["Realm.AllocateUser"])).into_iter().collect();
            needs.push(user_admin());
            needs.extend(membership(options));
            needs
        }
        A::UserModify { options, .. } => [Some(user_admin()), membership(options)].into_iter().flatten().collect(),
        A::UserDelete { userid } => {
            let mut needs: Vec<Need> = realm(userid).map(|p| on(&p, &["Realm.AllocateUser"])).into_iter().collect();
            needs.push(user_admin());
            needs
        }
        A::UserList => vec![on("/access", &[])],
        A::UserPermissions { userid, .. } => {
            // One's own and one's tokens' permissions; anyone's with Sys.Audit.
            let user = userid.split_once('!').map_or(userid.as_str(), |(user, _)| user);
            if user == caller.userid { vec![on("/access", &[])] } else { vec![on("/access", &["Sys.Audit"])] }
        }
        A::GroupAdd { .. } | A::GroupModify { .. } | A::GroupDelete { .. } => {
            vec![on("/access/groups", &["Group.Allocate"])]
        }
        A::GroupList => vec![on("/access/groups", &[])],
        A::RoleAdd { .. } | A::RoleModify { .. } | A::RoleDelete { .. } => vec![on("/access", &["Sys.Modify"])],
        A::RoleList => vec![on("/access", &[])],
        A::AclModify { path, .. } => vec![on(path, &[])],
        A::AclList => vec![on("/", &[])],
        A::PoolAdd { pool, vms, storage, .. } | A::PoolModify { pool, vms, storage, .. } => {
            // Pool members take the pool's roles: each guest needs VM.Allocate, each storage
            // Datastore.Allocate, as in Proxmox.
            let mut needs = vec![on(&format!("/pool/{pool}"), &["Pool.Allocate"])];
            needs.extend(vms.iter().map(|v| on(&format!("/vms/{v}"), &["VM.Allocate"])));
            needs.extend(storage.iter().map(|s| on(&format!("/storage/{s}"), &["Datastore.Allocate"])));
            needs
        }
        A::PoolDelete { pool } => vec![on(&format!("/pool/{pool}"), &["Pool.Allocate"])],
        A::PoolList => vec![on("/pool", &[])],
        // A token acts with its user's rights, so whoever could make one for another user would
        // hold that user's rights: Proxmox's User.Modify is not enough, another user's tokens
        // are root's.
        A::TokenAdd { userid, .. }
        | A::TokenRemove { userid, .. }
        | A::TokenList { userid }
        | A::TokenModify { userid, .. } => {
            if own(userid) {
                vec![on("/access/groups", &[])]
            } else {
                vec![Need::Root { what: format!("token: manage the API tokens of '{userid}'") }]
            }
        }
        A::Passwd { userid, .. } => {
            if own(userid) {
                vec![on("/access", &[])]
            } else {
                let mut needs: Vec<Need> = realm(userid).map(|p| on(&p, &["Realm.AllocateUser"])).into_iter().collect();
                needs.push(user_admin());
                needs
            }
        }
        A::TfaAdd { userid, .. } | A::TfaDelete { userid, .. } | A::TfaList { userid: Some(userid) } => {
            if own(userid) {
                vec![on("/access/groups", &[])]
            } else {
                vec![user_admin()]
            }
        }
        // Everyone's factors for User.Modify holders, one's own for everyone else.
        A::TfaList { userid: None } => vec![on("/access/groups", &[])],
    }
}

/// Answers one access request.
pub fn handle(daemon: &Arc<Daemon>, caller: &Caller, r: AccessRequest) -> Result<Payload, ErrorReply> {
    use AccessRequest as A;
    let access = &daemon.access;
    let empty = |()| Payload::Empty;
    match r {
        A::UserAdd { userid, options } => {
            let id = new_userid(&userid)?;
            let options = UserOptions::parse(&options)?;
            check_membership_change(daemon, caller, &options)?;
            access
                .edit(caller, &format!("user add {id}"), |m| {
                    if m.user_exists(&id) {
                        return Err(ErrorReply::new(ErrorKind::Conflict, format!("user '{id}' already exists")));
                    }
                    let mut user = User::default();
                    options.apply(&mut user, false);
                    m.users.insert(id.clone(), user);
                    Ok(())
                })
                .map(empty)
        }
        A::UserModify { userid, options, append } => {
            let id = parse_userid(&userid)?;
            let options = UserOptions::parse(&options)?;
            check_membership_change(daemon, caller, &options)?;
            access
                .edit(caller, &format!("user modify {id}"), |m| {
                    if id.is_root() && !m.users.contains_key(&id) {
                        m.users.insert(id.clone(), User::default());
                    }
                    let user = m.users.get_mut(&id).ok_or_else(|| unknown_user(&id))?;
                    options.apply(user, append);
                    Ok(())
                })
                .map(empty)
        }
        A::UserDelete { userid } => {
            let id = parse_userid(&userid)?;
            if id.is_root() {
                return Err(invalid("user 'root@pam' cannot be deleted: it is the host's superuser"));
            }
            let removed = access.edit(caller, &format!("user delete {id}"), |m| {
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
        A::UserList => {
            let model = access.model();
            let all = holds_any(daemon, caller, "/access/groups", &[Privilege::SysAudit, Privilege::UserModify]);
            let users = user_infos(&model).into_iter().filter(|u| all || u.userid == caller.userid).collect();
            Ok(Payload::Users(users))
        }
        A::UserPermissions { userid, path } => {
            let who: Authid = userid.parse().map_err(|e: hearth_core::access::IdError| invalid(e.to_string()))?;
            if who.user().as_str() != caller.userid && !holds_any(daemon, caller, "/access", &[Privilege::SysAudit]) {
                return Err(denied(daemon, caller, "Sys.Audit", "/access", "to see another user's permissions"));
            }
            let model = access.model();
            let exists = match &who {
                Authid::User(u) => model.user_exists(u),
                Authid::Token(t) => model.tokens.contains_key(t),
            };
            if !exists {
                return Err(ErrorReply::new(ErrorKind::NotFound, format!("no such user or token '{who}'")));
            }
            let perms = match path {
                Some(path) => {
                    let path = AclPath::parse(&path).map_err(|e| invalid(e.to_string()))?;
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
        A::GroupAdd { group, comment } => {
            let name = parse_group(&group)?;
            access
                .edit(caller, &format!("group add {name}"), |m| {
                    if m.groups.contains_key(&name) {
                        return Err(ErrorReply::new(ErrorKind::Conflict, format!("group '{name}' already exists")));
                    }
                    m.groups.insert(name.clone(), hearth_core::access::Group { comment: text(comment) });
                    Ok(())
                })
                .map(empty)
        }
        A::GroupModify { group, comment } => {
            let name = parse_group(&group)?;
            access
                .edit(caller, &format!("group modify {name}"), |m| {
                    let g = m.groups.get_mut(&name).ok_or_else(|| unknown_group(&name))?;
                    if comment.is_some() {
                        g.comment = text(comment);
                    }
                    Ok(())
                })
                .map(empty)
        }
        A::GroupDelete { group } => {
            let name = parse_group(&group)?;
            access
                .edit(caller, &format!("group delete {name}"), |m| {
                    m.groups.remove(&name).ok_or_else(|| unknown_group(&name))?;
                    for user in m.users.values_mut() {
                        user.groups.remove(&name);
                    }
                    m.acl.retain(|e| e.subject != AclSubject::Group(name.clone()));
                    Ok(())
                })
                .map(empty)
        }
        A::GroupList => {
            let model = access.model();
            let all = holds_any(daemon, caller, "/access/groups", &[Privilege::SysAudit, Privilege::GroupAllocate]);
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
            Ok(Payload::Groups(groups))
        }
        A::RoleAdd { role, privs } => {
            let name = custom_role(&role)?;
            let privs = parse_privs(&privs)?;
            access
                .edit(caller, &format!("role add {name} {privs}"), |m| {
                    if m.roles.contains_key(&name) {
                        return Err(ErrorReply::new(ErrorKind::Conflict, format!("role '{name}' already exists")));
                    }
                    m.roles.insert(name.clone(), privs);
                    Ok(())
                })
                .map(empty)
        }
        A::RoleModify { role, privs, append } => {
            let name = custom_role(&role)?;
            let privs = parse_privs(&privs)?;
            access
                .edit(caller, &format!("role modify {name} {privs}"), |m| {
                    let held = m.roles.get_mut(&name).ok_or_else(|| unknown_role(&name))?;
                    *held = if append { held.union(privs) } else { privs };
                    Ok(())
                })
                .map(empty)
        }
        A::RoleDelete { role } => {
            let name = custom_role(&role)?;
            access
                .edit(caller, &format!("role delete {name}"), |m| {
                    m.roles.remove(&name).ok_or_else(|| unknown_role(&name))?;
                    m.acl.retain(|e| e.role != name);
                    Ok(())
                })
                .map(empty)
        }
        A::RoleList => Ok(Payload::Roles(role_infos(&access.model()))),
        A::AclModify { path, roles, users, groups, tokens, propagate, delete } => {
            let change = AclChange::parse(&path, &roles, &users, &groups, &tokens)?;
            let verb = if delete { "acl delete" } else { "acl modify" };
            let what = format!("{verb} {} roles {} for {}", change.path, roles.join(","), change.subject_list());
            let who = caller.authid();
            access
                .edit(caller, &what, |m| {
                    if let Some(role) = change.roles.iter().find(|r| m.role_privs(r.as_str()).is_none()) {
                        return Err(invalid(format!("unknown role '{role}': see `userctl role list`")));
                    }
                    if !caller.is_root() {
                        let refused = change
                            .roles
                            .iter()
                            .find(|r| who.as_ref().is_none_or(|w| !m.may_grant(w, &change.path, r, now())));
                        if let Some(role) = refused {
                            return Err(denied(
                                daemon,
                                caller,
                                "Permissions.Modify",
                                change.path.as_str(),
                                &format!("to grant or revoke role '{role}'"),
                            ));
                        }
                    }
                    change.apply(m, propagate, delete);
                    Ok(())
                })
                .map(empty)
        }
        A::AclList => {
            let model = access.model();
            let entries = model
                .acl
                .iter()
                .filter(|e| {
                    caller.is_root()
                        || !access
                            .privileges(caller, &e.path)
                            .intersection(privs(&[Privilege::SysAudit, Privilege::PermissionsModify]))
                            .is_empty()
                })
                .map(acl_info)
                .collect();
            Ok(Payload::Acl(entries))
        }
        A::PoolAdd { pool, comment, vms, storage } => {
            let name = parse_pool(&pool)?;
            check_pool_members(daemon, caller, &vms, &storage)?;
            access
                .edit(caller, &format!("pool add {name}"), |m| {
                    if m.pools.contains_key(&name) {
                        return Err(ErrorReply::new(ErrorKind::Conflict, format!("pool '{name}' already exists")));
                    }
                    let pool = hearth_core::access::Pool {
                        comment: text(comment),
                        vms: vms.into_iter().collect(),
                        storage: storage.into_iter().collect(),
                    };
                    m.pools.insert(name.clone(), pool);
                    Ok(())
                })
                .map(empty)
        }
        A::PoolModify { pool, comment, vms, storage, delete } => {
            let name = parse_pool(&pool)?;
            check_pool_members(daemon, caller, &vms, &storage)?;
            access
                .edit(caller, &format!("pool modify {name}"), |m| {
                    let p = m.pools.get_mut(&name).ok_or_else(|| unknown_pool(&name))?;
                    if comment.is_some() {
                        p.comment = text(comment);
                    }
                    if delete {
                        p.vms.retain(|v| !vms.contains(v));
                        p.storage.retain(|s| !storage.contains(s));
                    } else {
                        p.vms.extend(vms);
                        p.storage.extend(storage);
                    }
                    Ok(())
                })
                .map(empty)
        }
        A::PoolDelete { pool } => {
            let name = parse_pool(&pool)?;
            access
                .edit(caller, &format!("pool delete {name}"), |m| {
                    let p = m.pools.get(&name).ok_or_else(|| unknown_pool(&name))?;
                    if !p.vms.is_empty() || !p.storage.is_empty() {
                        return Err(ErrorReply::new(
                            ErrorKind::Conflict,
                            format!("pool '{name}' is not empty: remove its members first with `userctl pool modify {name} --vms … --storage … --delete`"),
                        ));
                    }
                    if let Some(child) = m.pools.keys().find(|c| c.parent().as_ref() == Some(&name)) {
                        return Err(ErrorReply::new(
                            ErrorKind::Conflict,
                            format!("pool '{name}' has the sub-pool '{child}': delete it first"),
                        ));
                    }
                    m.pools.remove(&name);
                    let path = AclPath::pool(&name);
                    m.acl.retain(|e| !path.is_ancestor_or_self(&e.path));
                    Ok(())
                })
                .map(empty)
        }
        A::PoolList => {
            let model = access.model();
            let pools = model
                .pools
                .iter()
                .filter(|(name, _)| access.privileges(caller, &AclPath::pool(name)).contains(Privilege::PoolAudit))
                .map(|(name, p)| PoolInfo {
                    pool: name.to_string(),
                    comment: p.comment.clone(),
                    vms: p.vms.iter().copied().collect(),
                    storage: p.storage.iter().cloned().collect(),
                })
                .collect();
            Ok(Payload::Pools(pools))
        }
        A::TokenAdd { userid, tokenid, privsep, expire, comment } => {
            let id = token_id(daemon, caller, &userid, &tokenid)?;
            let expire = match expire {
                Some(e) if e < 0 => {
                    return Err(invalid(format!("invalid expire {e}: expected a unix time, or 0 for never")));
                }
                Some(0) => None,
                other => other,
            };
            let token = access.edit(caller, &format!("token add {id}"), |m| {
                if !m.user_exists(id.user()) {
                    return Err(unknown_user(id.user()));
                }
                if m.tokens.contains_key(&id) {
                    return Err(ErrorReply::new(ErrorKind::Conflict, format!("token '{id}' already exists")));
                }
                // Like Proxmox, a token without its own expiry ends with its user.
                let expire = expire.or_else(|| m.users.get(id.user()).and_then(|u| u.expire));
                let token = hearth_core::access::Token { privsep, expire, comment: text(comment) };
                m.tokens.insert(id.clone(), token.clone());
                Ok(token)
            })?;
            let secret = match new_secret().and_then(|s| remember_secret(&daemon.root, &id, &s).map(|()| s)) {
                Ok(s) => s,
                Err(e) => {
                    // Without a stored secret the token is useless; take it back out.
                    let _ = access.edit(caller, &format!("token remove {id} (secret not stored)"), |m| {
                        m.tokens.remove(&id);
                        Ok(())
                    });
                    return Err(e);
                }
            };
            Ok(Payload::NewToken(NewToken {
                full_tokenid: id.to_string(),
                info: token_info(id.name(), &token),
                value: secret,
            }))
        }
        A::TokenRemove { userid, tokenid } => {
            let id = token_id(daemon, caller, &userid, &tokenid)?;
            access.edit(caller, &format!("token remove {id}"), |m| {
                m.tokens.remove(&id).ok_or_else(|| unknown_token(&id))?;
                m.acl.retain(|e| e.subject != AclSubject::Token(id.clone()));
                Ok(())
            })?;
            forget_secrets(&daemon.root, std::slice::from_ref(&id))?;
            Ok(Payload::Empty)
        }
        A::TokenModify { userid, tokenid, privsep, expire, comment } => {
            let id = token_id(daemon, caller, &userid, &tokenid)?;
            if expire.is_some_and(|e| e < 0) {
                return Err(invalid("invalid expire: expected a unix time, or 0 for never"));
            }
            access.edit(caller, &format!("token modify {id}"), |m| {
                let token = m.tokens.get_mut(&id).ok_or_else(|| unknown_token(&id))?;
                if let Some(p) = privsep {
                    token.privsep = p;
                }
                if let Some(e) = expire {
                    token.expire = (e != 0).then_some(e);
                }
                if let Some(c) = &comment {
                    token.comment = text(Some(c.clone()));
                }
                Ok(())
            })?;
            Ok(Payload::Empty)
        }
        A::TokenList { userid } => {
            let user = parse_userid(&userid)?;
            check_token_owner(daemon, caller, &user)?;
            let model = access.model();
            if !model.user_exists(&user) {
                return Err(unknown_user(&user));
            }
            let tokens = model
                .tokens
                .iter()
                .filter(|(t, _)| t.user() == &user)
                .map(|(t, tok)| token_info(t.name(), tok))
                .collect();
            Ok(Payload::Tokens(tokens))
        }
        A::Passwd { userid, password } => {
            let id = parse_userid(&userid)?;
            check_password_changer(daemon, caller, &id)?;
            if id.realm() == "pam" {
                return Err(invalid(format!(
                    "'{id}' is a host account: change its password with passwd(1) on the host"
                )));
            }
            if !access.model().user_exists(&id) {
                return Err(unknown_user(&id));
            }
            if password.expose().chars().count() < MIN_PASSWORD {
                return Err(invalid(format!("password too short: use at least {MIN_PASSWORD} characters")));
            }
            credentials::set_password(&daemon.root, &id, password.expose())?;
            access.audit(&caller.userid, &format!("changed the password of {id}"));
            Ok(Payload::Empty)
        }
        A::TfaAdd { userid, kind } => {
            let id = parse_userid(&userid)?;
            check_tfa_owner(daemon, caller, &id)?;
            if !access.model().user_exists(&id) {
                return Err(unknown_user(&id));
            }
            let new = credentials::add_tfa(&daemon.root, &id, kind, now())?;
            access.audit(&caller.userid, &format!("added second factor {} of {id}", new.info.id));
            Ok(Payload::NewTfa(new))
        }
        A::TfaList { userid } => {
            let entries = match userid {
                Some(userid) => {
                    let id = parse_userid(&userid)?;
                    check_tfa_owner(daemon, caller, &id)?;
                    credentials::list_tfa(&daemon.root, Some(&id))?
                }
                None => {
                    let all =
                        holds_any(daemon, caller, "/access/groups", &[Privilege::UserModify, Privilege::SysAudit]);
                    let mut entries = credentials::list_tfa(&daemon.root, None)?;
                    entries.retain(|e| all || e.userid == caller.userid);
                    entries
                }
            };
            Ok(Payload::Tfa(entries))
        }
        A::TfaDelete { userid, id: factor } => {
            let id = parse_userid(&userid)?;
            check_tfa_owner(daemon, caller, &id)?;
            credentials::delete_tfa(&daemon.root, &id, &factor)?;
            access.audit(&caller.userid, &format!("deleted second factor {factor} of {id}"));
            Ok(Payload::Empty)
        }
    }
}

/// The shortest password `passwd` takes, as Proxmox's.
const MIN_PASSWORD: usize = 5;

/// Proxmox's rule for `PUT /access/password`: one's own password always; another user's with
/// Realm.AllocateUser on `/access/realm/{realm}` and User.Modify on `/access/groups`.
fn check_password_changer(daemon: &Daemon, caller: &Caller, user: &Userid) -> Result<(), ErrorReply> {
    if user.as_str() == caller.userid && caller.token.is_none() {
        return Ok(());
    }
    let realm = format!("/access/realm/{}", user.realm());
    if !holds_any(daemon, caller, &realm, &[Privilege::RealmAllocateUser]) {
        return Err(denied(daemon, caller, "Realm.AllocateUser", &realm, &format!("to set the password of '{user}'")));
    }
    if !holds_any(daemon, caller, "/access/groups", &[Privilege::UserModify]) {
        return Err(denied(
            daemon,
            caller,
            "User.Modify",
            "/access/groups",
            &format!("to set the password of '{user}'"),
        ));
    }
    Ok(())
}

/// Allows managing `user`'s second factors: one's own, or anyone's with User.Modify on
/// /access/groups, as Proxmox's `/access/tfa`.
fn check_tfa_owner(daemon: &Daemon, caller: &Caller, user: &Userid) -> Result<(), ErrorReply> {
    if (user.as_str() == caller.userid && caller.token.is_none())
        || holds_any(daemon, caller, "/access/groups", &[Privilege::UserModify])
    {
        Ok(())
    } else {
        Err(denied(
            daemon,
            caller,
            "User.Modify",
            "/access/groups",
            &format!("to manage the second factors of '{user}'"),
        ))
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

fn unknown_group(name: &GroupName) -> ErrorReply {
    ErrorReply::new(ErrorKind::NotFound, format!("no such group '{name}'"))
}

fn unknown_role(name: &RoleName) -> ErrorReply {
    ErrorReply::new(ErrorKind::NotFound, format!("no such custom role '{name}'"))
}

fn unknown_pool(name: &PoolName) -> ErrorReply {
    ErrorReply::new(ErrorKind::NotFound, format!("no such pool '{name}'"))
}

fn unknown_token(id: &TokenId) -> ErrorReply {
    ErrorReply::new(ErrorKind::NotFound, format!("no such token '{id}'"))
}

/// Refuses, and audits the refusal.
fn denied(daemon: &Daemon, caller: &Caller, privilege: &str, path: &str, why: &str) -> ErrorReply {
    daemon.access.audit(&caller.userid, &format!("denied {privilege} on {path}"));
    ErrorReply::new(
        ErrorKind::PermissionDenied,
        format!("permission denied: {} lacks {privilege} on {path} {why}", caller.userid),
    )
}

fn privs(list: &[Privilege]) -> PrivSet {
    PrivSet::from_slice(list)
}

/// Whether the caller holds any of `wanted` on `path`.
fn holds_any(daemon: &Daemon, caller: &Caller, path: &str, wanted: &[Privilege]) -> bool {
    caller.is_root()
        || AclPath::parse(path)
            .is_ok_and(|p| !daemon.access.privileges(caller, &p).intersection(privs(wanted)).is_empty())
}

/// Group membership carries the group's roles: changing it is granting them, which needs
/// Permissions.Modify on `/` (User.Modify alone would let a user admin make anyone an admin).
fn check_membership_change(daemon: &Daemon, caller: &Caller, options: &UserOptions) -> Result<(), ErrorReply> {
    if options.groups.is_none() || holds_any(daemon, caller, "/", &[Privilege::PermissionsModify]) {
        Ok(())
    } else {
        Err(denied(daemon, caller, "Permissions.Modify", "/", "to change group membership"))
    }
}

/// Pool members take the pool's roles: adding or removing a VM needs VM.Allocate on it, a
/// storage Datastore.Allocate on it, as in Proxmox.
fn check_pool_members(
    daemon: &Daemon,
    caller: &Caller,
    vms: &[hearth_core::Vmid],
    storage: &[String],
) -> Result<(), ErrorReply> {
    for vmid in vms {
        let path = format!("/vms/{vmid}");
        if !holds_any(daemon, caller, &path, &[Privilege::VmAllocate]) {
            return Err(denied(daemon, caller, "VM.Allocate", &path, "to change the pools of the VM"));
        }
    }
    for id in storage {
        let path = format!("/storage/{id}");
        if !holds_any(daemon, caller, &path, &[Privilege::DatastoreAllocate]) {
            return Err(denied(daemon, caller, "Datastore.Allocate", &path, "to change the pools of the storage"));
        }
    }
    Ok(())
}

/// An empty text clears the field.
fn text(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

fn parse_userid(s: &str) -> Result<Userid, ErrorReply> {
    s.parse().map_err(|e: hearth_core::access::IdError| invalid(e.to_string()))
}

/// A user id for a new user: also its realm must be one Hearth has.
fn new_userid(s: &str) -> Result<Userid, ErrorReply> {
    let id = parse_userid(s)?;
    if !REALMS.contains(&id.realm()) {
        return Err(invalid(format!(
            "unknown realm '{}' in user id '{id}': Hearth has the realms {}",
            id.realm(),
            REALMS.join(" and ")
        )));
    }
    Ok(id)
}

fn parse_group(s: &str) -> Result<GroupName, ErrorReply> {
    s.parse().map_err(|e: hearth_core::access::IdError| invalid(e.to_string()))
}

fn parse_pool(s: &str) -> Result<PoolName, ErrorReply> {
    s.parse().map_err(|e: hearth_core::access::IdError| invalid(e.to_string()))
}

/// A custom role's name; built-in roles cannot be added, changed or deleted.
fn custom_role(s: &str) -> Result<RoleName, ErrorReply> {
    let name: RoleName = s.parse().map_err(|e: hearth_core::access::IdError| invalid(e.to_string()))?;
    if let Some(b) = role::BUILTIN_ROLES.iter().find(|r| r.name.eq_ignore_ascii_case(s)) {
        return Err(invalid(format!("role '{}' is built in and cannot be added, changed or deleted", b.name)));
    }
    name.check_custom().map_err(|e| invalid(e.to_string()))?;
    Ok(name)
}

fn parse_privs(list: &str) -> Result<PrivSet, ErrorReply> {
    PrivSet::parse(list).map_err(|e| invalid(e.to_string()))
}

fn priv_names(set: PrivSet) -> Vec<String> {
    set.iter().map(|p| p.name().to_owned()).collect()
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
                        .map(parse_group)
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

fn token_info(name: &str, t: &hearth_core::access::Token) -> TokenInfo {
    TokenInfo { tokenid: name.to_owned(), privsep: t.privsep, expire: t.expire, comment: t.comment.clone() }
}

/// `acl modify`'s arguments, parsed: one path, roles, and whom they are for.
#[derive(Debug)]
struct AclChange {
    path: AclPath,
    roles: Vec<RoleName>,
    subjects: Vec<AclSubject>,
}

impl AclChange {
    fn parse(
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

/// Allows managing `user`'s tokens: one's own (as that user, not through a token), or anyone's
/// for root@pam. A token acts with its user's rights, so whoever could make one for another
/// user would hold that user's rights: User.Modify is not enough.
fn check_token_owner(daemon: &Daemon, caller: &Caller, user: &Userid) -> Result<(), ErrorReply> {
    if caller.is_root() || (user.as_str() == caller.userid && caller.token.is_none()) {
        Ok(())
    } else {
        Err(denied(daemon, caller, "root@pam", "/access", &format!("to manage the tokens of '{user}'")))
    }
}

fn token_id(daemon: &Daemon, caller: &Caller, userid: &str, name: &str) -> Result<TokenId, ErrorReply> {
    let user = parse_userid(userid)?;
    check_token_owner(daemon, caller, &user)?;
    TokenId::new(user, name).map_err(|e| invalid(e.to_string()))
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
    fn realms_and_roles() {
        assert!(new_userid("joe@hearth").is_ok());
        assert!(new_userid("joe@pam").is_ok());
        assert_eq!(
            new_userid("joe@pve").unwrap_err().message,
            "unknown realm 'pve' in user id 'joe@pve': Hearth has the realms pam and hearth"
        );
        assert!(new_userid("joe").unwrap_err().message.starts_with("invalid user id 'joe'"));
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

    #[test]
    fn acl_changes() {
        let mut m = AccessModel::default();
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        let change =
            AclChange::parse("/vms/100", &s(&["VMUser", "Auditor"]), &s(&["joe@pam"]), &s(&["ops"]), &[]).unwrap();
        change.apply(&mut m, true, false);
        assert_eq!(m.acl.len(), 4);
        change.apply(&mut m, false, false);
        assert_eq!(m.acl.len(), 4);
        assert!(m.acl.iter().all(|e| !e.propagate));
        AclChange::parse("/vms/100", &s(&["Auditor"]), &s(&["joe@pam"]), &[], &[]).unwrap().apply(&mut m, true, true);
        assert_eq!(m.acl.len(), 3);
        assert!(
            AclChange::parse("/vms/1", &s(&["Auditor"]), &s(&["joe@pam"]), &[], &[])
                .unwrap_err()
                .message
                .contains("VMID")
        );
        assert!(AclChange::parse("/", &[], &s(&["joe@pam"]), &[], &[]).unwrap_err().message.contains("--roles"));
        assert!(AclChange::parse("/", &s(&["Auditor"]), &[], &[], &[]).unwrap_err().message.contains("--users"));
    }
}
