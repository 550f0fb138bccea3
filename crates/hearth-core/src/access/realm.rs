//! Authentication realms as Proxmox VE's `domains.cfg` describes them: the built-in `pam`
//! (host accounts) and `pve` (Hearth's own password store), and configured `openid`, `ldap` and
//! `ad` realms with Proxmox's keys. The configuration lives in `etc/hearth/domains.toml`;
//! secrets (`client-key`, the bind `password`) are kept apart in `etc/hearth/priv/`.
//!
//! ```toml
//! [realms.myrealm1]
//! type = "openid"
//! issuer-url = "https://accounts.google.com"
//! client-id = "XXXX"
//! username-claim = "email"
//! ```
//!
//! Hearth stores and validates these realms, and users may be created in them, but it does not
//! authenticate through OpenID Connect or a directory server: only `pam` and `pve` log in.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The two realms every node has; they cannot be added or deleted.
pub const BUILTIN_REALMS: &[(&str, RealmType)] = &[("pam", RealmType::Pam), ("pve", RealmType::Pve)];

/// A realm's type, Proxmox's `--type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RealmType {
    Pam,
    Pve,
    Openid,
    Ldap,
    Ad,
}

impl RealmType {
    /// Every type, in Proxmox's order.
    pub const ALL: &'static [RealmType] =
        &[RealmType::Pam, RealmType::Pve, RealmType::Openid, RealmType::Ldap, RealmType::Ad];

    pub fn as_str(self) -> &'static str {
        match self {
            RealmType::Pam => "pam",
            RealmType::Pve => "pve",
            RealmType::Openid => "openid",
            RealmType::Ldap => "ldap",
            RealmType::Ad => "ad",
        }
    }

    /// The keys a realm of this type takes, as `domains.cfg` names them.
    pub fn keys(self) -> impl Iterator<Item = &'static RealmKey> {
        let own: &'static [RealmKey] = match self {
            RealmType::Pam | RealmType::Pve => &[],
            RealmType::Openid => OPENID_KEYS,
            RealmType::Ldap => LDAP_KEYS,
            RealmType::Ad => AD_KEYS,
        };
        COMMON_KEYS.iter().chain(own).chain(if matches!(self, RealmType::Ldap | RealmType::Ad) {
            DIRECTORY_KEYS
        } else {
            &[]
        })
    }

    /// The key of this type called `name`.
    pub fn key(self, name: &str) -> Option<&'static RealmKey> {
        self.keys().find(|k| k.name == name)
    }

    /// Whether users of such a realm can log in to Hearth.
    pub fn authenticates(self) -> bool {
        matches!(self, RealmType::Pam | RealmType::Pve)
    }
}

impl fmt::Display for RealmType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RealmType {
    type Err = RealmError;

    fn from_str(s: &str) -> Result<RealmType, RealmError> {
        RealmType::ALL.iter().copied().find(|t| t.as_str() == s).ok_or_else(|| {
            RealmError(format!(
                "unknown realm type '{s}': expected one of {}",
                RealmType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })
    }
}

/// What values a key takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    Text,
    /// `0` or `1`.
    Bool,
    /// 1 to 65535.
    Port,
    /// An `http://` or `https://` URL.
    Url,
    /// A host name or address.
    Host,
    OneOf(&'static [&'static str]),
    /// Kept in `priv/`, never listed.
    Secret,
}

/// One key of `domains.cfg`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RealmKey {
    pub name: &'static str,
    pub value: Value,
    /// `realm add` needs it.
    pub required: bool,
    /// Set when the realm is added, never changed afterwards (Proxmox's `fixed` keys).
    pub fixed: bool,
    pub help: &'static str,
}

const fn key(name: &'static str, value: Value, help: &'static str) -> RealmKey {
    RealmKey { name, value, required: false, fixed: false, help }
}

const fn required(name: &'static str, value: Value, help: &'static str) -> RealmKey {
    RealmKey { name, value, required: true, fixed: false, help }
}

const COMMON_KEYS: &[RealmKey] = &[
    key("comment", Value::Text, "Description"),
    key("default", Value::Bool, "Use this realm as the default on the login page"),
    key("tfa", Value::Text, "Realm-wide second factor: type=oath|yubico[,digits=N,step=N,…]"),
];

const OPENID_KEYS: &[RealmKey] = &[
    required("issuer-url", Value::Url, "OpenID Connect issuer URL"),
    required("client-id", Value::Text, "OpenID client id"),
    key("client-key", Value::Secret, "OpenID client key (kept in etc/hearth/priv/)"),
    RealmKey {
        name: "username-claim",
        value: Value::Text,
        required: false,
        fixed: true,
        help: "OpenID claim that forms the user name (subject, username, email); fixed once set",
    },
    key("scopes", Value::Text, "Scopes to request, separated by spaces [default: email profile]"),
    key("prompt", Value::Text, "Whether the server prompts for login and consent (none, login, consent, …)"),
    key("acr-values", Value::Text, "Authentication context class references, separated by spaces"),
    key("autocreate", Value::Bool, "Create users automatically on their first login"),
    key("groups-claim", Value::Text, "OpenID claim that holds the user's groups"),
    key("groups-autocreate", Value::Bool, "Create groups that do not exist yet"),
    key("groups-overwrite", Value::Bool, "Replace the user's groups with those of the claim"),
    key("query-userinfo", Value::Bool, "Query the userinfo endpoint for claims [default: 1]"),
];

const LDAP_KEYS: &[RealmKey] = &[
    required("base_dn", Value::Text, "LDAP base domain name, e.g. ou=People,dc=example,dc=com"),
    required("user_attr", Value::Text, "LDAP user attribute name, e.g. uid"),
];

const AD_KEYS: &[RealmKey] = &[
    required("domain", Value::Text, "Active Directory domain, e.g. example.com"),
    key("base_dn", Value::Text, "LDAP base domain name"),
    key("user_attr", Value::Text, "LDAP user attribute name [default: sAMAccountName]"),
];

const DIRECTORY_KEYS: &[RealmKey] = &[
    required("server1", Value::Host, "Server address"),
    key("server2", Value::Host, "Fallback server address"),
    key("port", Value::Port, "Server port"),
    key("mode", Value::OneOf(&["ldap", "ldaps", "ldap+starttls"]), "Protocol: ldap, ldaps or ldap+starttls"),
    key("secure", Value::Bool, "Use LDAPS (deprecated: use mode)"),
    key("verify", Value::Bool, "Verify the server's TLS certificate"),
    key("capath", Value::Text, "Path to the CA certificate store"),
    key("cert", Value::Text, "Path to the client certificate"),
    key("certkey", Value::Text, "Path to the client certificate key"),
    key("sslversion", Value::OneOf(&["tlsv1", "tlsv1_1", "tlsv1_2", "tlsv1_3"]), "Lowest TLS version"),
    key("bind_dn", Value::Text, "LDAP bind domain name"),
    key("password", Value::Secret, "LDAP bind password (kept in etc/hearth/priv/)"),
    key("filter", Value::Text, "LDAP filter for user sync"),
    key("user_classes", Value::Text, "Object classes of users [default: inetorgperson, posixaccount, …]"),
    key("group_dn", Value::Text, "LDAP base domain name for group sync"),
    key("group_name_attr", Value::Text, "LDAP attribute holding the group name"),
    key("group_filter", Value::Text, "LDAP filter for group sync"),
    key("group_classes", Value::Text, "Object classes of groups [default: groupOfNames, group, …]"),
    key("sync_attributes", Value::Text, "Attributes to sync, as email=mail,firstname=givenName,…"),
    key("sync-defaults-options", Value::Text, "Default options of realm sync: scope=…,enable-new=…,…"),
    key("case-sensitive", Value::Bool, "User names are case-sensitive [default: 1]"),
    key("check-connection", Value::Bool, "Check the bind connection when the realm is changed"),
];

/// A realm configuration that is refused, with the key and what is allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RealmError(pub String);

/// One configured realm, without its secrets.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RealmConfig {
    #[serde(rename = "type")]
    pub kind: RealmType,
    #[serde(flatten)]
    pub options: BTreeMap<String, String>,
}

/// `etc/hearth/domains.toml`: the configured realms. `pam` and `pve` are listed only when they
/// carry options (a comment, `default`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Domains {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub realms: BTreeMap<String, RealmConfig>,
}

impl Domains {
    /// Reads and checks the file.
    pub fn from_toml(text: &str) -> Result<Domains, RealmError> {
        let domains: Domains = toml::from_str(text).map_err(|e| RealmError(e.message().trim().to_owned()))?;
        for (name, realm) in &domains.realms {
            check_name(name)?;
            if let Some((_, kind)) = BUILTIN_REALMS.iter().find(|(n, _)| n == name)
                && *kind != realm.kind
            {
                return Err(RealmError(format!("realm '{name}': the built-in realm is of type {kind}")));
            }
            check_options(realm.kind, &realm.options).map_err(|e| RealmError(format!("realm '{name}': {e}")))?;
            if let Some(k) = realm.kind.keys().find(|k| k.value == Value::Secret && realm.options.contains_key(k.name))
            {
                return Err(RealmError(format!("realm '{name}': {} belongs in etc/hearth/priv/, not here", k.name)));
            }
            if let Some(k) = realm.kind.keys().find(|k| k.required && !realm.options.contains_key(k.name)) {
                return Err(RealmError(format!("realm '{name}': {} is required for type {}", k.name, realm.kind)));
            }
        }
        Ok(domains)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("realms are tables of strings")
    }

    /// The type of the realm `name`: built in or configured.
    pub fn realm_type(&self, name: &str) -> Option<RealmType> {
        BUILTIN_REALMS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .or_else(|| self.realms.get(name).map(|r| r.kind))
    }

    /// Makes `name` the only default realm, as Proxmox keeps one.
    pub fn clear_other_defaults(&mut self, name: &str) {
        for (_, realm) in self.realms.iter_mut().filter(|(n, _)| n.as_str() != name) {
            realm.options.remove("default");
        }
        self.realms.retain(|n, r| !(is_builtin(n) && r.options.is_empty()));
    }

    /// Every realm, the built-in ones included, sorted by name, with its options.
    pub fn all(&self) -> Vec<(String, RealmType, BTreeMap<String, String>)> {
        let mut all: BTreeMap<String, (RealmType, BTreeMap<String, String>)> =
            BUILTIN_REALMS.iter().map(|(n, t)| ((*n).to_owned(), (*t, BTreeMap::new()))).collect();
        for (name, realm) in &self.realms {
            all.insert(name.clone(), (realm.kind, realm.options.clone()));
        }
        all.into_iter().map(|(n, (t, o))| (n, t, o)).collect()
    }
}

/// Whether `name` is built in.
pub fn is_builtin(name: &str) -> bool {
    BUILTIN_REALMS.iter().any(|(n, _)| *n == name)
}

/// Proxmox's realm id rule: `[A-Za-z][A-Za-z0-9.\-_]+`, at most 32 characters.
pub fn check_name(name: &str) -> Result<(), RealmError> {
    let b = name.as_bytes();
    let ok = (2..=32).contains(&b.len())
        && b[0].is_ascii_alphabetic()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b".-_".contains(c));
    if ok {
        Ok(())
    } else {
        Err(RealmError(format!("invalid realm '{name}': expected [A-Za-z][A-Za-z0-9.-_]+, 2 to 32 characters")))
    }
}

/// Checks each key and value for a realm of type `kind`; secrets are checked too.
pub fn check_options(kind: RealmType, options: &BTreeMap<String, String>) -> Result<(), RealmError> {
    options.iter().try_for_each(|(k, v)| check_option(kind, k, v))
}

/// Checks one key and its value for a realm of type `kind`.
pub fn check_option(kind: RealmType, name: &str, value: &str) -> Result<(), RealmError> {
    let Some(key) = kind.key(name) else {
        let takes: Vec<&str> = kind.keys().map(|k| k.name).collect();
        return Err(RealmError(format!(
            "'{name}' is not an option of realm type {kind}; it takes {}",
            takes.join(", ")
        )));
    };
    let bad = |expected: &str| Err(RealmError(format!("invalid {name} '{value}': expected {expected}")));
    if value.chars().any(char::is_control) {
        return bad("text without control characters");
    }
    if name == "tfa" && !matches!(value.split(',').next(), Some("type=oath" | "type=yubico")) {
        return bad("type=oath or type=yubico, then its options (digits=, step=, id=, key=, url=)");
    }
    match key.value {
        Value::Text | Value::Secret if value.is_empty() => bad("a value"),
        Value::Text | Value::Secret => Ok(()),
        Value::Bool if value == "0" || value == "1" => Ok(()),
        Value::Bool => bad("0 or 1"),
        Value::Port if value.parse::<u16>().is_ok_and(|p| p > 0) => Ok(()),
        Value::Port => bad("a port from 1 to 65535"),
        Value::Url => {
            let rest = value.strip_prefix("https://").or_else(|| value.strip_prefix("http://"));
            if rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace)) {
                Ok(())
            } else {
                bad("an http:// or https:// URL")
            }
        }
        Value::Host => {
            let ok = value.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
            if ok { Ok(()) } else { bad("a host name or IP address") }
        }
        Value::OneOf(allowed) if allowed.contains(&value) => Ok(()),
        Value::OneOf(allowed) => bad(&format!("one of {}", allowed.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn keys_per_type() {
        assert_eq!(RealmType::Pve.keys().map(|k| k.name).collect::<Vec<_>>(), ["comment", "default", "tfa"]);
        assert!(RealmType::Openid.key("issuer-url").is_some_and(|k| k.required));
        assert!(RealmType::Openid.key("base_dn").is_none());
        assert!(RealmType::Ldap.key("server1").is_some_and(|k| k.required));
        assert!(RealmType::Ad.key("domain").is_some_and(|k| k.required));
        assert!(RealmType::Ad.key("base_dn").is_some_and(|k| !k.required));
        assert_eq!("openid".parse::<RealmType>(), Ok(RealmType::Openid));
        assert_eq!(
            "kerberos".parse::<RealmType>().unwrap_err().to_string(),
            "unknown realm type 'kerberos': expected one of pam, pve, openid, ldap, ad"
        );
    }

    #[test]
    fn values_are_checked() {
        let ok = opts(&[
            ("issuer-url", "https://accounts.google.com"),
            ("client-id", "XXXX"),
            ("client-key", "YYYY"),
            ("username-claim", "email"),
            ("autocreate", "1"),
        ]);
        assert_eq!(check_options(RealmType::Openid, &ok), Ok(()));
        let err = |kind, k: &str, v: &str| check_option(kind, k, v).unwrap_err().to_string();
        assert_eq!(
            err(RealmType::Openid, "issuer-url", "accounts.google.com"),
            "invalid issuer-url 'accounts.google.com': expected an http:// or https:// URL"
        );
        assert_eq!(err(RealmType::Openid, "autocreate", "yes"), "invalid autocreate 'yes': expected 0 or 1");
        assert_eq!(err(RealmType::Ldap, "port", "0"), "invalid port '0': expected a port from 1 to 65535");
        assert_eq!(
            err(RealmType::Ldap, "mode", "tls"),
            "invalid mode 'tls': expected one of ldap, ldaps, ldap+starttls"
        );
        assert!(err(RealmType::Pve, "server1", "x").starts_with("'server1' is not an option of realm type pve"));
        assert_eq!(
            err(RealmType::Ldap, "bind_dn", "a\nb"),
            "invalid bind_dn 'a\nb': expected text without control characters"
        );
    }

    #[test]
    fn the_file() {
        let text = "[realms.myrealm1]\ntype = \"openid\"\nissuer-url = \"https://accounts.google.com\"\n\
                    client-id = \"XXXX\"\nusername-claim = \"email\"\n\n[realms.pve]\ntype = \"pve\"\n\
                    comment = \"Hearth authentication server\"\n";
        let domains = Domains::from_toml(text).unwrap();
        assert_eq!(Domains::from_toml(&domains.to_toml()).unwrap(), domains);
        assert_eq!(domains.realm_type("myrealm1"), Some(RealmType::Openid));
        assert_eq!(domains.realm_type("pam"), Some(RealmType::Pam));
        assert_eq!(domains.realm_type("nope"), None);
        let names: Vec<String> = domains.all().into_iter().map(|(n, _, _)| n).collect();
        assert_eq!(names, ["myrealm1", "pam", "pve"]);
        let mut two = domains.clone();
        two.realms.get_mut("pve").unwrap().options.insert("default".into(), "1".into());
        two.realms.get_mut("myrealm1").unwrap().options.insert("default".into(), "1".into());
        two.clear_other_defaults("myrealm1");
        assert_eq!(two.realms["myrealm1"].options.get("default").map(String::as_str), Some("1"));
        assert!(!two.realms["pve"].options.contains_key("default"));
        let err = |t: &str| Domains::from_toml(t).unwrap_err().to_string();
        assert_eq!(err("[realms.pve]\ntype = \"ldap\"\n"), "realm 'pve': the built-in realm is of type pve");
        assert_eq!(
            err("[realms.x1]\ntype = \"openid\"\nclient-id = \"a\"\n"),
            "realm 'x1': issuer-url is required for type openid"
        );
        assert_eq!(
            err(
                "[realms.x1]\ntype = \"ldap\"\nserver1 = \"h\"\nbase_dn = \"b\"\nuser_attr = \"uid\"\npassword = \"p\"\n"
            ),
            "realm 'x1': password belongs in etc/hearth/priv/, not here"
        );
        assert_eq!(check_name("1abc").unwrap_err().to_string().split(':').next(), Some("invalid realm '1abc'"));
    }
}
