//! The key tables that define what a guest configuration may hold, the values they take, and
//! the checks shared by every key: one table drives validation, the CLIs' options and their help.

use std::fmt;

use crate::propstr::{PropSchema, PropertyString};

/// A configuration value as stored in TOML.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => f.write_str(if *b { "1" } else { "0" }),
            Value::Int(n) => n.fmt(f),
            Value::Float(x) => x.fmt(f),
            Value::Str(s) => f.write_str(s),
        }
    }
}

impl Value {
    /// The value as an integer, for keys declared [`Kind::Int`].
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The value as text, for string and property-string keys.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// A key or value that the schema refuses. The message never repeats the key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError { key: key.to_owned(), message: message.into() }
    }
}

/// What a key may hold.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Bool,
    Int {
        min: i64,
        max: i64,
    },
    Float {
        min: f64,
        max: f64,
    },
    Enum(&'static [&'static str]),
    /// Free text, checked and normalised by a function.
    Text(fn(&str) -> Result<String, String>),
    /// A property string, stored in canonical form.
    Prop(&'static PropSchema),
}

/// Where a key may appear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Set by users through create/set.
    User,
    /// Written by hearthd only (e.g. `parent`); allowed in the file, refused from the CLI.
    Internal,
    /// Only inside `[snapshots.<name>]` (e.g. `snaptime`).
    Snapshot,
}

/// One key of a configuration, or a family of indexed keys (`scsi0`..`scsi30`).
#[derive(Clone, Copy, Debug)]
pub struct KeyDef {
    pub name: &'static str,
    /// For indexed keys, the highest index.
    pub max_index: Option<u32>,
    pub kind: Kind,
    pub scope: Scope,
    pub help: &'static str,
}

impl KeyDef {
    pub const fn new(name: &'static str, kind: Kind, help: &'static str) -> KeyDef {
        KeyDef { name, max_index: None, kind, scope: Scope::User, help }
    }

    pub const fn indexed(name: &'static str, max_index: u32, kind: Kind, help: &'static str) -> KeyDef {
        KeyDef { name, max_index: Some(max_index), kind, scope: Scope::User, help }
    }

    pub const fn scope(mut self, scope: Scope) -> KeyDef {
        self.scope = scope;
        self
    }

    /// The concrete key names this definition covers.
    pub fn names(&self) -> Vec<String> {
        match self.max_index {
            None => vec![self.name.to_owned()],
            Some(max) => (0..=max).map(|i| format!("{}{i}", self.name)).collect(),
        }
    }

    /// The name in documentation: `scsi[n]` for indexed keys.
    pub fn display_name(&self) -> String {
        match self.max_index {
            None => self.name.to_owned(),
            Some(_) => format!("{}[n]", self.name),
        }
    }

    /// A short description of the accepted values, for help texts.
    pub fn value_hint(&self) -> String {
        match self.kind {
            Kind::Bool => "<1|0>".into(),
            Kind::Int { min, max } => format!("<{min}..{max}>"),
            Kind::Float { min, max } => format!("<{min}..{max}>"),
            Kind::Enum(values) => format!("<{}>", values.join("|")),
            Kind::Text(_) | Kind::Prop(_) => "<string>".into(),
        }
    }
}

/// All keys of one configuration type.
#[derive(Debug)]
pub struct Schema {
    /// `VM` or `CT`, for messages.
    pub noun: &'static str,
    pub keys: &'static [KeyDef],
}

impl Schema {
    /// Finds the definition of a concrete key such as `memory` or `net3`.
    pub fn lookup(&self, key: &str) -> Option<&'static KeyDef> {
        // Single keys may end in a digit themselves (`efidisk0`, `audio0`).
        if let Some(def) = self.keys.iter().find(|def| def.max_index.is_none() && def.name == key) {
            return Some(def);
        }
        let digits = key.bytes().rev().take_while(u8::is_ascii_digit).count();
        let (base, index) = key.split_at(key.len() - digits);
        self.keys.iter().find(|def| {
            def.name == base
                && match (def.max_index, index) {
                    (None, "") => true,
                    (Some(max), index) if !index.is_empty() && (index == "0" || !index.starts_with('0')) => {
                        index.parse::<u32>().is_ok_and(|i| i <= max)
                    }
                    _ => false,
                }
        })
    }

    fn lookup_or_err(&self, key: &str) -> Result<&'static KeyDef, ConfigError> {
        self.lookup(key).ok_or_else(|| {
            let digits = key.bytes().rev().take_while(u8::is_ascii_digit).count();
            let base = &key[..key.len() - digits];
            if let Some(max) = self.keys.iter().find(|d| d.name == base).and_then(|d| d.max_index) {
                let noun = self.noun;
                return ConfigError::new(
                    key,
                    format!("unknown {noun} configuration key ({base} takes indexes 0 to {max})"),
                );
            }
            if key.starts_with("lxc.") {
                return ConfigError::new(
                    key,
                    "raw LXC keys are not supported: Hearth runs containers itself, every key goes through its schema",
                );
            }
            let hint = self.suggest(key).map(|s| format!("; did you mean '{s}'?")).unwrap_or_default();
            ConfigError::new(key, format!("unknown {} configuration key{hint}", self.noun))
        })
    }

    /// The closest known key, for "did you mean" hints.
    fn suggest(&self, key: &str) -> Option<String> {
        let digits = key.bytes().rev().take_while(u8::is_ascii_digit).count();
        let base = &key[..key.len() - digits];
        self.keys
            .iter()
            .map(|def| (edit_distance(base, def.name), def))
            .filter(|(d, _)| *d <= 2)
            .min_by_key(|(d, _)| *d)
            .map(|(_, def)| match def.max_index {
                Some(_) if digits > 0 => format!("{}{}", def.name, &key[key.len() - digits..]),
                Some(_) => format!("{}0", def.name),
                None => def.name.to_owned(),
            })
    }

    /// Checks a key that a user wants to set or delete.
    pub fn user_key(&self, key: &str) -> Result<&'static KeyDef, ConfigError> {
        let def = self.lookup_or_err(key)?;
        if def.scope != Scope::User {
            return Err(ConfigError::new(key, "is managed by hearthd and cannot be set"));
        }
        Ok(def)
    }

    /// Parses a value given on the command line (`--memory 2048`, `--onboot yes`).
    pub fn parse_cli(&self, key: &str, raw: &str) -> Result<Value, ConfigError> {
        let def = self.user_key(key)?;
        parse_with(def, key, raw)
    }

    /// Checks a value read from a configuration file and returns its canonical form.
    pub fn check_stored(&self, key: &str, value: &Value, in_snapshot: bool) -> Result<Value, ConfigError> {
        let def = self.lookup_or_err(key)?;
        if def.scope == Scope::Snapshot && !in_snapshot {
            return Err(ConfigError::new(key, "is only valid inside a snapshot section"));
        }
        let err = |m: String| ConfigError::new(key, m);
        match (def.kind, value) {
            (Kind::Bool, Value::Bool(b)) => Ok(Value::Bool(*b)),
            (Kind::Bool, Value::Int(n @ (0 | 1))) => Ok(Value::Bool(*n == 1)),
            (Kind::Bool, _) => Err(err(format!("expected a boolean, found '{value}'"))),
            (Kind::Int { .. }, Value::Int(n)) => parse_with(def, key, &n.to_string()),
            (Kind::Int { .. }, _) => Err(err(format!("expected an integer, found '{value}'"))),
            (Kind::Float { .. }, Value::Int(_) | Value::Float(_)) => parse_with(def, key, &value.to_string()),
            (Kind::Float { .. }, _) => Err(err(format!("expected a number, found '{value}'"))),
            (Kind::Enum(_) | Kind::Text(_) | Kind::Prop(_), Value::Str(s)) => parse_with(def, key, s),
            (Kind::Enum(_) | Kind::Text(_) | Kind::Prop(_), _) => {
                Err(err(format!("expected a string, found '{value}'")))
            }
        }
    }

    /// Parses a stored property-string key into its properties.
    pub fn property(&self, key: &str, value: &Value) -> Option<PropertyString> {
        match (self.lookup(key)?.kind, value) {
            (Kind::Prop(schema), Value::Str(s)) => schema.parse(key, s).ok(),
            _ => None,
        }
    }
}

fn parse_with(def: &KeyDef, key: &str, raw: &str) -> Result<Value, ConfigError> {
    let err = |m: String| ConfigError::new(key, m);
    match def.kind {
        Kind::Bool => check::boolean(raw).map(Value::Bool).map_err(err),
        Kind::Int { min, max } => check::int(raw, min, max).map(Value::Int).map_err(err),
        Kind::Float { min, max } => check::float(raw, min, max).map(Value::Float).map_err(err),
        Kind::Enum(allowed) => check::one_of(raw, allowed).map(|s| Value::Str(s.to_owned())).map_err(err),
        Kind::Text(f) => f(raw).map(Value::Str).map_err(err),
        Kind::Prop(schema) => schema.parse(key, raw).map(|p| Value::Str(p.to_string())),
    }
}

/// Levenshtein distance over characters, for "did you mean" hints.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb { prev } else { 1 + prev.min(row[j]).min(row[j + 1]) };
            prev = cur;
        }
    }
    row[b.len()]
}

/// Checks for the atoms that keys and properties are made of. Each returns the canonical form or
/// a message saying what was expected.
pub mod check {
    use crate::size;

    pub fn boolean(v: &str) -> Result<bool, String> {
        match v.to_ascii_lowercase().as_str() {
            "1" | "on" | "yes" | "true" => Ok(true),
            "0" | "off" | "no" | "false" => Ok(false),
            _ => Err(format!("invalid boolean '{v}': expected 1|on|yes|true or 0|off|no|false")),
        }
    }

    pub fn int(v: &str, min: i64, max: i64) -> Result<i64, String> {
        let n: i64 = v.trim().parse().map_err(|_| format!("invalid integer '{v}'"))?;
        if n < min {
            Err(format!("value {n} is below the minimum {min}"))
        } else if n > max {
            Err(format!("value {n} is above the maximum {max}"))
        } else {
            Ok(n)
        }
    }

    pub fn float(v: &str, min: f64, max: f64) -> Result<f64, String> {
        let x: f64 = v.trim().parse().map_err(|_| format!("invalid number '{v}'"))?;
        if !x.is_finite() {
            Err(format!("invalid number '{v}'"))
        } else if x < min {
            Err(format!("value {x} is below the minimum {min}"))
        } else if x > max {
            Err(format!("value {x} is above the maximum {max}"))
        } else {
            Ok(x)
        }
    }

    pub fn one_of<'a>(v: &str, allowed: &[&'a str]) -> Result<&'a str, String> {
        allowed
            .iter()
            .find(|a| **a == v)
            .copied()
            .ok_or_else(|| format!("invalid value '{v}' (allowed: {})", allowed.join(", ")))
    }

    pub fn non_empty(v: &str) -> Result<String, String> {
        if v.is_empty() { Err("must not be empty".into()) } else { Ok(v.to_owned()) }
    }

    /// A unicast MAC address, stored upper case.
    pub fn mac(v: &str) -> Result<String, String> {
        let parts: Vec<&str> = v.split(':').collect();
        let ok = parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
        if !ok {
            return Err(format!("invalid MAC address '{v}': expected six hex pairs like BC:24:11:AA:BB:CC"));
        }
        let first = u8::from_str_radix(parts[0], 16).map_err(|e| e.to_string())?;
        if first & 1 == 1 {
            return Err(format!("'{v}' is a multicast address"));
        }
        // The all-zero address is no station's: the kernel refuses it on a tap, and a guest
        // holding it would break its segment's forwarding.
        if parts.iter().all(|p| *p == "00") {
            return Err(format!("'{v}' is the all-zero address; give a unicast MAC address or leave it out"));
        }
        Ok(v.to_ascii_uppercase())
    }

    /// A Linux interface name: at most 15 bytes of `[A-Za-z0-9_.-]`.
    pub fn iface_name(v: &str) -> Result<String, String> {
        let ok = !v.is_empty()
            && v.len() <= 15
            && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            && v != "."
            && v != "..";
        if ok {
            Ok(v.to_owned())
        } else {
            Err(format!("invalid interface name '{v}': at most 15 of A-Z a-z 0-9 _ . -"))
        }
    }

    /// A DNS name or a single label (`web01`, `web01.example.com`).
    pub fn dns_name(v: &str) -> Result<String, String> {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if v.len() <= 253 && v.split('.').all(label_ok) {
            Ok(v.to_owned())
        } else {
            Err(format!("invalid name '{v}': expected a DNS name (letters, digits, '-', dot-separated labels)"))
        }
    }

    /// A storage id as Proxmox defines it: `^[a-z][a-z0-9\-_.]*[a-z0-9]$`, case-insensitive.
    pub fn storage_id(v: &str) -> Result<String, String> {
        let b = v.as_bytes();
        let ok = b.len() >= 2
            && b[0].is_ascii_alphabetic()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c));
        if ok { Ok(v.to_owned()) } else { Err(format!("invalid storage id '{v}'")) }
    }

    /// A volume name inside a storage: no absolute path, no `..`, no control or shell characters.
    pub fn volume_name(v: &str) -> Result<String, String> {
        let ok = !v.is_empty()
            && !v.starts_with('/')
            && v.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
            && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.+@/".contains(&b));
        if ok { Ok(v.to_owned()) } else { Err(format!("invalid volume name '{v}'")) }
    }

    /// An absolute path without `.`/`..` components or NUL.
    pub fn absolute_path(v: &str) -> Result<String, String> {
        let ok = v.starts_with('/')
            && !v.contains('\0')
            && v.split('/').skip(1).all(|c| c != "." && c != "..")
            && !v.contains("//");
        if ok {
            Ok(v.to_owned())
        } else {
            Err(format!("invalid path '{v}': expected an absolute path without '.' or '..'"))
        }
    }

    /// The `STORAGE:SIZE_GiB` form that asks for a new volume: the storage and the size in bytes.
    pub fn allocation(v: &str) -> Option<(&str, u64)> {
        let (storage, size) = v.split_once(':')?;
        let bytes = size::parse_size(size, 1 << 30).ok()?;
        Some((storage, bytes))
    }

    /// A volume reference: `STORAGE:VOLNAME`, `STORAGE:SIZE_GiB` (allocate), or an absolute path.
    /// A hook script: a snippet volume, `local:snippets/hook.pl`.
    pub fn hookscript(v: &str) -> Result<String, String> {
        let expected = || format!("invalid hook script '{v}': expected a snippet volume, STORAGE:snippets/FILE");
        let (storage, name) = v.split_once(':').ok_or_else(expected)?;
        storage_id(storage)?;
        let file = name.strip_prefix("snippets/").ok_or_else(expected)?;
        crate::storage::check_file_name(crate::storage::Content::Snippets, file)?;
        Ok(v.to_owned())
    }

    pub fn volume(v: &str) -> Result<String, String> {
        if v.starts_with('/') {
            return absolute_path(v);
        }
        let Some((storage, name)) = v.split_once(':') else {
            return Err(format!("invalid volume '{v}': expected STORAGE:VOLUME, STORAGE:SIZE_GiB or an absolute path"));
        };
        storage_id(storage)?;
        match allocation(v) {
            // Size 0 asks for an unlimited container directory; disk images refuse it when allocated.
            Some(_) => Ok(v.to_owned()),
            None => volume_name(name).map(|_| v.to_owned()),
        }
    }

    /// An IPv4 address.
    pub fn ipv4(v: &str) -> Result<String, String> {
        v.parse::<std::net::Ipv4Addr>().map(|a| a.to_string()).map_err(|_| format!("invalid IPv4 address '{v}'"))
    }

    /// An IPv6 address.
    pub fn ipv6(v: &str) -> Result<String, String> {
        v.parse::<std::net::Ipv6Addr>().map(|a| a.to_string()).map_err(|_| format!("invalid IPv6 address '{v}'"))
    }

    fn cidr<A: std::str::FromStr + std::fmt::Display>(v: &str, max_prefix: u8, family: &str) -> Result<String, String> {
        let bad = || format!("invalid {family} CIDR '{v}': expected ADDRESS/PREFIX");
        let (addr, prefix) = v.split_once('/').ok_or_else(bad)?;
        let addr: A = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > max_prefix {
            return Err(bad());
        }
        Ok(format!("{addr}/{prefix}"))
    }

    /// `dhcp`, `manual` or an IPv4 CIDR.
    pub fn ip4_config(v: &str) -> Result<String, String> {
        match v {
            "dhcp" | "manual" => Ok(v.to_owned()),
            _ => cidr::<std::net::Ipv4Addr>(v, 32, "IPv4"),
        }
    }

    /// `auto`, `dhcp`, `manual` or an IPv6 CIDR.
    pub fn ip6_config(v: &str) -> Result<String, String> {
        match v {
            "auto" | "dhcp" | "manual" => Ok(v.to_owned()),
            _ => cidr::<std::net::Ipv6Addr>(v, 128, "IPv6"),
        }
    }

    /// A list of IP addresses separated by spaces, commas or semicolons; stored space-separated.
    pub fn ip_list(v: &str) -> Result<String, String> {
        let addrs: Vec<String> = v
            .split([' ', ',', ';'])
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<std::net::IpAddr>().map(|a| a.to_string()).map_err(|_| format!("invalid IP address '{s}'"))
            })
            .collect::<Result<_, _>>()?;
        if addrs.is_empty() {
            return Err("expected at least one IP address".into());
        }
        Ok(addrs.join(" "))
    }

    /// DNS search domains separated by spaces, commas or semicolons; stored space-separated.
    pub fn domain_list(v: &str) -> Result<String, String> {
        let names: Vec<String> =
            v.split([' ', ',', ';']).filter(|s| !s.is_empty()).map(dns_name).collect::<Result<_, _>>()?;
        if names.is_empty() {
            return Err("expected at least one domain".into());
        }
        Ok(names.join(" "))
    }

    /// Tags `[a-z0-9_][a-z0-9_\-+.]*`, separated by `;`, `,` or spaces; stored `;`-separated,
    /// lower-cased, sorted and without duplicates.
    pub fn tags(v: &str) -> Result<String, String> {
        let mut tags: Vec<String> = Vec::new();
        for tag in v.split([';', ',', ' ']).filter(|s| !s.is_empty()) {
            let tag = tag.to_ascii_lowercase();
            let b = tag.as_bytes();
            let ok = (b[0].is_ascii_alphanumeric() || b[0] == b'_')
                && b.iter().all(|c| c.is_ascii_alphanumeric() || b"_-+.".contains(c));
            if !ok {
                return Err(format!("invalid tag '{tag}': expected [a-z0-9_][a-z0-9_-+.]*"));
            }
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        tags.sort();
        Ok(tags.join(";"))
    }

    /// Free text up to 8 KiB without NUL (descriptions).
    pub fn description(v: &str) -> Result<String, String> {
        if v.len() > 8192 {
            Err(format!("is {} bytes long; at most 8192 are allowed", v.len()))
        } else if v.contains('\0') {
            Err("must not contain NUL".into())
        } else {
            Ok(v.to_owned())
        }
    }

    /// An integer list with ranges separated by `;`: `10;20-30`.
    pub fn vlan_list(v: &str) -> Result<String, String> {
        for part in v.split(';') {
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            let lo = int(lo, 1, 4094)?;
            let hi = int(hi, 1, 4094)?;
            if lo > hi {
                return Err(format!("invalid VLAN range '{part}'"));
            }
        }
        Ok(v.to_owned())
    }

    /// A word of letters, digits and `_.-+` (CPU models, machine types).
    pub fn word(v: &str) -> Result<String, String> {
        let ok = !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-+".contains(&b));
        if ok { Ok(v.to_owned()) } else { Err(format!("invalid value '{v}': expected letters, digits and _ . - +")) }
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn atoms() {
        assert_eq!(check::tags("Web;prod, web db"), Ok("db;prod;web".into()));
        assert!(check::tags("-x").is_err());
        assert_eq!(check::ip4_config("10.0.0.5/24"), Ok("10.0.0.5/24".into()));
        assert!(check::ip4_config("10.0.0.5/33").is_err());
        assert!(check::ip4_config("10.0.0.5").is_err());
        assert_eq!(check::ip6_config("fd00::1/64"), Ok("fd00::1/64".into()));
        assert_eq!(check::volume("local:32"), Ok("local:32".into()));
        assert_eq!(check::volume("local:100/vm-100-disk-0.qcow2"), Ok("local:100/vm-100-disk-0.qcow2".into()));
        // Size 0 asks for an unlimited container directory; images refuse it at allocation.
        assert_eq!(check::allocation("local:0"), Some(("local", 0)));
        assert_eq!(check::allocation("local:32"), Some(("local", 32 << 30)));
        assert_eq!(check::allocation("local:100/vm-100-disk-0.qcow2"), None);
        for bad in
            ["local:../etc/passwd", "local:a/../../b", "local:/abs", "l:x", "local:a;rm -rf", "rel/path", "/a/../b"]
        {
            assert!(check::volume(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(check::ip_list("1.1.1.1,8.8.8.8"), Ok("1.1.1.1 8.8.8.8".into()));
        assert!(check::vlan_list("10;20-30").is_ok());
        assert!(check::vlan_list("30-20").is_err());
        assert!(check::dns_name("web-01.example.com").is_ok());
        assert!(check::dns_name("-web").is_err());
        assert!(check::iface_name("vmbr0").is_ok());
        assert!(check::iface_name("a-very-long-interface").is_err());
    }

    #[test]
    fn raw_lxc_keys_are_refused_with_the_reason() {
        let err = crate::ct::SCHEMA.parse_cli("lxc.init_cmd", "/sbin/my_own_init").expect_err("refused");
        assert_eq!(
            err.to_string(),
            "lxc.init_cmd: raw LXC keys are not supported: Hearth runs containers itself, every key goes through its schema"
        );
        assert_eq!(crate::vm::SCHEMA.lookup("efidisk0").map(|d| d.name), Some("efidisk0"));
    }
}
