//! Realms, as `pveum realm`: `pam` and `pve` are built in; `openid`, `ldap` and `ad` realms are
//! configured in `etc/hearth/domains.toml` with Proxmox's `domains.cfg` keys, their secrets in
//! `etc/hearth/priv/realms.toml`. Hearth keeps and checks their configuration and lets users be
//! created in them, but logs in only through `pam` and `pve`: it neither talks to an OpenID
//! provider nor to a directory server, so `realm sync` is refused with the reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hearth_core::access::realm::{self, Domains, RealmConfig, RealmType, Value};
use hearth_proto::{ErrorKind, ErrorReply, Payload, RealmInfo};

use super::invalid;
use crate::Daemon;
use crate::access::Caller;
use crate::credentials;

/// Held while `domains.toml` is read, changed and written.
static EDIT: Mutex<()> = Mutex::new(());

fn path(root: &Path) -> PathBuf {
    root.join("etc/hearth/domains.toml")
}

/// The configured realms; none when there is no file.
pub(crate) fn load(root: &Path) -> Result<Domains, ErrorReply> {
    let path = path(root);
    match std::fs::read_to_string(&path) {
        Ok(text) => Domains::from_toml(&text)
            .map_err(|e| ErrorReply::new(ErrorKind::Unavailable, format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Domains::default()),
        Err(e) => Err(ErrorReply::new(ErrorKind::Unavailable, format!("cannot read {}: {e}", path.display()))),
    }
}

fn not_found(name: &str) -> ErrorReply {
    ErrorReply::new(ErrorKind::NotFound, format!("no such realm '{name}'; see `userctl realm list`"))
}

pub(super) fn list(daemon: &Daemon) -> Result<Payload, ErrorReply> {
    let domains = load(&daemon.root)?;
    let realms = domains
        .all()
        .into_iter()
        .map(|(name, kind, mut options)| {
            // The comments Proxmox's default domains.cfg gives the built-in realms.
            let default_comment = match kind {
                RealmType::Pam => Some("Linux PAM standard authentication"),
                RealmType::Pve => Some("Proxmox VE authentication server"),
                _ => None,
            };
            if let Some(comment) = default_comment {
                options.entry("comment".to_owned()).or_insert_with(|| comment.to_owned());
            }
            let secrets = credentials::realm_secret_names(&daemon.root, &name)?;
            Ok(RealmInfo { builtin: realm::is_builtin(&name), realm: name, kind: kind.to_string(), options, secrets })
        })
        .collect::<Result<Vec<_>, ErrorReply>>()?;
    Ok(Payload::Realms(realms))
}

/// The options split into plain keys and secrets, each checked for a realm of type `kind`.
struct Changes<'a> {
    plain: BTreeMap<String, String>,
    secrets: Vec<(&'a str, Option<&'a str>)>,
}

fn split(kind: RealmType, options: &[(String, String)]) -> Result<Changes<'_>, ErrorReply> {
    let mut changes = Changes { plain: BTreeMap::new(), secrets: Vec::new() };
    for (key, value) in options {
        realm::check_option(kind, key, value).map_err(|e| invalid(e.to_string()))?;
        let is_secret = kind.key(key).is_some_and(|k| k.value == Value::Secret);
        if is_secret {
            changes.secrets.push((key.as_str(), Some(value.as_str())));
        } else if changes.plain.insert(key.clone(), value.clone()).is_some() {
            return Err(invalid(format!("'{key}' is given twice")));
        }
    }
    Ok(changes)
}

pub(super) fn add(
    daemon: &Daemon,
    caller: &Caller,
    name: &str,
    kind: &str,
    options: &[(String, String)],
) -> Result<Payload, ErrorReply> {
    realm::check_name(name).map_err(|e| invalid(e.to_string()))?;
    let kind: RealmType = kind.parse().map_err(|e: realm::RealmError| invalid(e.to_string()))?;
    if !matches!(kind, RealmType::Openid | RealmType::Ldap | RealmType::Ad) {
        return Err(invalid(format!(
            "realms of type {kind} cannot be added: pam and pve are built in, one of each; add openid, ldap or ad realms"
        )));
    }
    let changes = split(kind, options)?;
    if let Some(k) = kind.keys().find(|k| {
        k.required && !changes.plain.contains_key(k.name) && !changes.secrets.iter().any(|(s, _)| *s == k.name)
    }) {
        return Err(invalid(format!("realm type {kind} needs --{}: {}", k.name, k.help)));
    }
    let _guard = EDIT.lock().unwrap_or_else(|p| p.into_inner());
    let mut domains = load(&daemon.root)?;
    if domains.realm_type(name).is_some() {
        return Err(ErrorReply::new(ErrorKind::Conflict, format!("realm '{name}' already exists")));
    }
    let default = changes.plain.get("default").is_some_and(|v| v == "1");
    domains.realms.insert(name.to_owned(), RealmConfig { kind, options: changes.plain });
    if default {
        domains.clear_other_defaults(name);
    }
    // Secrets first: a realm must not be listed with a key it was meant to have but lacks.
    credentials::set_realm_secrets(&daemon.root, name, &changes.secrets)?;
    if let Err(e) = save(&daemon.root, &domains) {
        let _ = credentials::forget_realm(&daemon.root, name);
        return Err(e);
    }
    daemon.access.audit(&caller.userid, &format!("changed access: realm add {name} type {kind}"));
    Ok(Payload::Empty)
}

pub(super) fn modify(
    daemon: &Daemon,
    caller: &Caller,
    name: &str,
    options: &[(String, String)],
    delete: &[String],
) -> Result<Payload, ErrorReply> {
    let _guard = EDIT.lock().unwrap_or_else(|p| p.into_inner());
    let mut domains = load(&daemon.root)?;
    let kind = domains.realm_type(name).ok_or_else(|| not_found(name))?;
    let mut changes = split(kind, options)?;
    let current = domains.realms.get(name).map(|r| r.options.clone()).unwrap_or_default();
    for key in changes.plain.keys() {
        let fixed = kind.key(key).is_some_and(|k| k.fixed);
        if fixed && current.get(key).is_some_and(|v| Some(v) != changes.plain.get(key)) {
            return Err(invalid(format!("'{key}' of realm '{name}' is fixed once set; delete and add the realm anew")));
        }
    }
    let mut options = current;
    options.append(&mut changes.plain);
    for key in delete.iter().flat_map(|d| d.split([',', ';', ' '])).filter(|k| !k.is_empty()) {
        let Some(k) = kind.key(key) else {
            return Err(invalid(format!("cannot delete '{key}': it is not an option of realm type {kind}")));
        };
        if k.required {
            return Err(invalid(format!("cannot delete '{key}': realm type {kind} needs it")));
        }
        if changes.plain_or_secret_given(key) {
            return Err(invalid(format!("'{key}' is both set and deleted")));
        }
        if k.value == Value::Secret {
            changes.secrets.push((k.name, None));
        } else {
            options.remove(key);
        }
    }
    match domains.realms.get_mut(name) {
        Some(realm) => realm.options = options,
        None if options.is_empty() => {}
        None => {
            domains.realms.insert(name.to_owned(), RealmConfig { kind, options });
        }
    }
    if domains.realms.get(name).is_some_and(|r| r.options.get("default").is_some_and(|v| v == "1")) {
        domains.clear_other_defaults(name);
    }
    if domains.realms.get(name).is_some_and(|r| realm::is_builtin(name) && r.options.is_empty()) {
        domains.realms.remove(name);
    }
    save(&daemon.root, &domains)?;
    credentials::set_realm_secrets(&daemon.root, name, &changes.secrets)?;
    daemon.access.audit(&caller.userid, &format!("changed access: realm modify {name}"));
    Ok(Payload::Empty)
}

impl Changes<'_> {
    fn plain_or_secret_given(&self, key: &str) -> bool {
        self.plain.contains_key(key) || self.secrets.iter().any(|(k, v)| *k == key && v.is_some())
    }
}

/// Removes a configured realm and its secrets. Its users stay, as in Proxmox; they cannot log in.
pub(super) fn delete(daemon: &Daemon, caller: &Caller, name: &str) -> Result<Payload, ErrorReply> {
    if realm::is_builtin(name) {
        return Err(invalid(format!("realm '{name}' is built in and cannot be deleted")));
    }
    let _guard = EDIT.lock().unwrap_or_else(|p| p.into_inner());
    let mut domains = load(&daemon.root)?;
    domains.realms.remove(name).ok_or_else(|| not_found(name))?;
    save(&daemon.root, &domains)?;
    credentials::forget_realm(&daemon.root, name)?;
    daemon.access.audit(&caller.userid, &format!("changed access: realm delete {name}"));
    Ok(Payload::Empty)
}

/// Refused with the reason: only directory realms sync, and Hearth talks to no directory server.
pub(super) fn sync(daemon: &Daemon, name: &str) -> Result<Payload, ErrorReply> {
    let domains = load(&daemon.root)?;
    let kind = domains.realm_type(name).ok_or_else(|| not_found(name))?;
    let message = match kind {
        RealmType::Pam | RealmType::Pve => format!(
            "realm '{name}' is of type {kind}: it has nothing to sync; only ldap and ad realms sync users and \
             groups from a directory server"
        ),
        RealmType::Openid => format!(
            "realm '{name}' is of type openid: OpenID realms do not sync (users are created on login, with \
             autocreate); only ldap and ad realms sync"
        ),
        RealmType::Ldap | RealmType::Ad => {
            return Err(ErrorReply::new(
                ErrorKind::Unavailable,
                format!(
                    "cannot sync realm '{name}': syncing a {kind} realm needs its directory server, and Hearth \
                     stores {kind} realms without connecting to one; add its users with \
                     `userctl user add NAME@{name}`"
                ),
            ));
        }
    };
    Err(invalid(message))
}

fn save(root: &Path, domains: &Domains) -> Result<(), ErrorReply> {
    crate::store::write_atomic(&path(root), domains.to_toml().as_bytes())?;
    Ok(())
}
