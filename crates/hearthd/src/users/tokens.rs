//! API tokens: add (the secret is shown once), modify, remove, list. Whose tokens a caller may
//! manage is the table's rule ([`super::required`]): its own, or anyone's for root@pam.

use hearth_core::access::{Token, TokenId};
use hearth_proto::{ErrorKind, ErrorReply, Payload, TokenInfo};

use super::{invalid, parse_userid, text, unknown_user};
use crate::Daemon;
use crate::access::Caller;
use crate::credentials::{forget_secrets, new_secret, remember_secret};

/// `token add`'s settings.
pub(super) struct NewToken {
    pub privsep: bool,
    /// A unix time, 0 for never; none: the user's expiry.
    pub expire: Option<i64>,
    pub comment: Option<String>,
}

/// `token modify`'s changes; what is `None` stays.
pub(super) struct TokenChange {
    pub privsep: Option<bool>,
    /// A unix time, 0 for never.
    pub expire: Option<i64>,
    pub comment: Option<String>,
}

fn unknown_token(id: &TokenId) -> ErrorReply {
    ErrorReply::new(ErrorKind::NotFound, format!("no such token '{id}'"))
}

fn token_id(userid: &str, name: &str) -> Result<TokenId, ErrorReply> {
    TokenId::new(parse_userid(userid)?, name).map_err(|e| invalid(e.to_string()))
}

fn token_info(name: &str, t: &Token) -> TokenInfo {
    TokenInfo { tokenid: name.to_owned(), privsep: t.privsep, expire: t.expire, comment: t.comment.clone() }
}

pub(super) fn add(
    daemon: &Daemon,
    caller: &Caller,
    userid: &str,
    tokenid: &str,
    new: NewToken,
) -> Result<Payload, ErrorReply> {
    let access = &daemon.access;
    let id = token_id(userid, tokenid)?;
    let expire = match new.expire {
        Some(e) if e < 0 => return Err(invalid(format!("invalid expire {e}: expected a unix time, or 0 for never"))),
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
        let token = Token { privsep: new.privsep, expire, comment: text(new.comment) };
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
    Ok(Payload::NewToken(hearth_proto::NewToken {
        full_tokenid: id.to_string(),
        info: token_info(id.name(), &token),
        value: secret,
    }))
}

/// Removes the token, every ACL entry naming it, and its secret.
pub(super) fn remove(daemon: &Daemon, caller: &Caller, userid: &str, tokenid: &str) -> Result<Payload, ErrorReply> {
    let id = token_id(userid, tokenid)?;
    daemon.access.edit(caller, &format!("token remove {id}"), |m| {
        m.tokens.remove(&id).ok_or_else(|| unknown_token(&id))?;
        m.acl.retain(|e| e.subject != hearth_core::access::AclSubject::Token(id.clone()));
        Ok(())
    })?;
    forget_secrets(&daemon.root, std::slice::from_ref(&id))?;
    Ok(Payload::Empty)
}

pub(super) fn modify(
    daemon: &Daemon,
    caller: &Caller,
    userid: &str,
    tokenid: &str,
    change: TokenChange,
) -> Result<Payload, ErrorReply> {
    let id = token_id(userid, tokenid)?;
    if change.expire.is_some_and(|e| e < 0) {
        return Err(invalid("invalid expire: expected a unix time, or 0 for never"));
    }
    daemon.access.edit(caller, &format!("token modify {id}"), |m| {
        let token = m.tokens.get_mut(&id).ok_or_else(|| unknown_token(&id))?;
        if let Some(p) = change.privsep {
            token.privsep = p;
        }
        if let Some(e) = change.expire {
            token.expire = (e != 0).then_some(e);
        }
        if let Some(c) = change.comment {
            token.comment = text(Some(c));
        }
        Ok(())
    })?;
    Ok(Payload::Empty)
}

pub(super) fn list(daemon: &Daemon, userid: &str) -> Result<Payload, ErrorReply> {
    let user = parse_userid(userid)?;
    let model = daemon.access.model();
    if !model.user_exists(&user) {
        return Err(unknown_user(&user));
    }
    let tokens =
        model.tokens.iter().filter(|(t, _)| t.user() == &user).map(|(t, tok)| token_info(t.name(), tok)).collect();
    Ok(Payload::Tokens(tokens))
}
