//! Passwords of the `pve` realm and second factors. Whose a caller may change is the table's
//! rule ([`super::required`]): its own, or another user's with the privileges Proxmox asks.

use hearth_core::access::Privilege;
use hearth_proto::{ErrorReply, Payload, TfaKind};

use super::{holds_any, invalid, now, parse_userid, unknown_user};
use crate::Daemon;
use crate::access::Caller;
use crate::credentials;

/// The shortest password `passwd` takes, as Proxmox's.
const MIN_PASSWORD: usize = 5;

pub(super) fn passwd(daemon: &Daemon, caller: &Caller, userid: &str, password: &str) -> Result<Payload, ErrorReply> {
    let id = parse_userid(userid)?;
    if id.realm() == "pam" {
        return Err(invalid(format!("'{id}' is a host account: change its password with passwd(1) on the host")));
    }
    if id.realm() != "pve" {
        return Err(invalid(format!(
            "'{id}' is not in the pve realm: only pve users have a password kept by Hearth; realm '{}' \
             authenticates elsewhere",
            id.realm()
        )));
    }
    if !daemon.access.model().user_exists(&id) {
        return Err(unknown_user(&id));
    }
    if password.chars().count() < MIN_PASSWORD {
        return Err(invalid(format!("password too short: use at least {MIN_PASSWORD} characters")));
    }
    credentials::set_password(&daemon.root, &id, password)?;
    daemon.access.audit(&caller.userid, &format!("changed the password of {id}"));
    Ok(Payload::Empty)
}

pub(super) fn add(daemon: &Daemon, caller: &Caller, userid: &str, kind: TfaKind) -> Result<Payload, ErrorReply> {
    let id = parse_userid(userid)?;
    if !daemon.access.model().user_exists(&id) {
        return Err(unknown_user(&id));
    }
    let new = credentials::add_tfa(&daemon.root, &id, kind, now())?;
    daemon.access.audit(&caller.userid, &format!("added second factor {} of {id}", new.info.id));
    Ok(Payload::NewTfa(new))
}

/// One user's factors, or without a user everyone's for User.Modify and Sys.Audit holders and
/// one's own for everyone else.
pub(super) fn list(daemon: &Daemon, caller: &Caller, userid: Option<&str>) -> Result<Payload, ErrorReply> {
    let entries = match userid {
        Some(userid) => credentials::list_tfa(&daemon.root, Some(&parse_userid(userid)?))?,
        None => {
            let all = holds_any(daemon, caller, "/access/groups", [Privilege::UserModify, Privilege::SysAudit]);
            let mut entries = credentials::list_tfa(&daemon.root, None)?;
            entries.retain(|e| all || e.userid == caller.userid);
            entries
        }
    };
    Ok(Payload::Tfa(entries))
}

pub(super) fn delete(daemon: &Daemon, caller: &Caller, userid: &str, factor: &str) -> Result<Payload, ErrorReply> {
    let id = parse_userid(userid)?;
    credentials::delete_tfa(&daemon.root, &id, factor)?;
    daemon.access.audit(&caller.userid, &format!("deleted second factor {factor} of {id}"));
    Ok(Payload::Empty)
}

/// `pveum user tfa unlock`. Proxmox locks a user's TOTP after 8 failed codes and every second
/// factor after 100 failures; Hearth has no login that takes a second factor yet, so it counts no
/// failures and no user is ever locked: unlocking checks the user and changes nothing.
pub(super) fn unlock(daemon: &Daemon, caller: &Caller, userid: &str) -> Result<Payload, ErrorReply> {
    let id = parse_userid(userid)?;
    if !daemon.access.model().user_exists(&id) {
        return Err(unknown_user(&id));
    }
    daemon.access.audit(&caller.userid, &format!("unlocked the second factors of {id}"));
    Ok(Payload::Empty)
}
