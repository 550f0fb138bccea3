//! Property strings as qm and pct take them: `virtio,bridge=vmbr0,firewall=1,tag=20`,
//! `local:32,discard=on,cache=writeback`, `local:4,mp=/data`.
//!
//! A property string is a comma-separated list of `key=value` pairs with at most one *default
//! key* that may be written without `key=`. Some strings also have a *model key*: a token such as
//! `virtio` or `virtio=BC:24:11:..` that names the model and optionally carries a second
//! property (the MAC address). Parsing checks every property against its [`PropSchema`] and
//! yields the canonical form: properties in schema order, values normalised.

use crate::schema::{ConfigError, check};
use crate::size;

/// What one property may hold.
#[derive(Clone, Copy, Debug)]
pub enum PropKind {
    /// `1|on|yes|true` or `0|off|no|false`, stored as `1`/`0`.
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
    /// A size in bytes, stored as `32G`.
    Size,
    /// A text checked (and normalised) by a function that explains what it wanted.
    Text(fn(&str) -> Result<String, String>),
}

/// One property of a property string.
#[derive(Clone, Copy, Debug)]
pub struct PropDef {
    pub name: &'static str,
    pub kind: PropKind,
    pub required: bool,
    pub help: &'static str,
}

impl PropDef {
    pub const fn new(name: &'static str, kind: PropKind, help: &'static str) -> PropDef {
        PropDef { name, kind, required: false, help }
    }

    pub const fn required(mut self) -> PropDef {
        self.required = true;
        self
    }
}

/// A model key: `<model>[=<value>]`, e.g. `virtio=BC:24:11:AA:BB:CC`. The model is stored under
/// `model_prop`, the value under `value_prop`; both may also be written as ordinary properties.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelKey {
    pub model_prop: &'static str,
    pub value_prop: &'static str,
    pub models: &'static [&'static str],
}

/// The grammar of one property string.
#[derive(Debug)]
pub struct PropSchema {
    pub default_key: Option<&'static str>,
    /// Whether the canonical form writes the default key's value bare (`local:vm-100-disk-0`)
    /// rather than as `key=value` (`order=2`).
    pub bare_default: bool,
    pub model: Option<ModelKey>,
    pub props: &'static [PropDef],
}

/// A parsed, validated property string in canonical order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PropertyString {
    entries: Vec<(&'static str, String)>,
    /// The default key when it is written bare.
    default_key: Option<&'static str>,
    model: Option<ModelKey>,
}

impl PropSchema {
    fn prop(&self, name: &str) -> Option<&PropDef> {
        self.props.iter().find(|p| p.name == name)
    }

    fn allowed(&self) -> String {
        self.props.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
    }

    /// Parses `input` for the configuration key `key` (used in error messages).
    pub fn parse(&self, key: &str, input: &str) -> Result<PropertyString, ConfigError> {
        let err = |message: String| ConfigError::new(key, message);
        let mut found: Vec<(&'static str, String)> = Vec::new();
        let mut set = |def: &PropDef, value: String| -> Result<(), ConfigError> {
            if found.iter().any(|(name, _)| *name == def.name) {
                return Err(err(format!("duplicate property '{}'", def.name)));
            }
            let value = check_prop(def, &value).map_err(|m| err(format!("{}: {m}", def.name)))?;
            found.push((def.name, value));
            Ok(())
        };
        if input.trim().is_empty() {
            return Err(err("empty value".into()));
        }
        for (position, token) in input.split(',').enumerate() {
            let token = token.trim();
            if token.is_empty() {
                return Err(err(format!("empty property in '{input}'")));
            }
            let (name, value) = match token.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (token, None),
            };
            if let Some(model) = self.model.filter(|m| m.models.contains(&name)) {
                let model_def = self.prop(model.model_prop).expect("model property is in the schema");
                set(model_def, name.to_owned())?;
                if let Some(value) = value {
                    let value_def = self.prop(model.value_prop).expect("model value property is in the schema");
                    set(value_def, value.to_owned())?;
                }
                continue;
            }
            match (self.prop(name), value) {
                (Some(def), Some(value)) => set(def, value.to_owned())?,
                (_, None) if position == 0 && self.default_key.is_some() => {
                    let def = self.default_key.and_then(|k| self.prop(k)).expect("default key is in the schema");
                    set(def, token.to_owned())?;
                }
                (Some(def), None) if matches!(def.kind, PropKind::Bool) => set(def, "1".to_owned())?,
                (Some(def), None) => return Err(err(format!("property '{}' needs a value", def.name))),
                (None, _) if self.model.is_some() && value.is_none() && position == 0 => {
                    let models = self.model.map(|m| m.models.join(", ")).unwrap_or_default();
                    return Err(err(format!("unknown model '{name}' (allowed: {models})")));
                }
                (None, _) => {
                    return Err(err(format!("unknown property '{name}' (allowed: {})", self.allowed())));
                }
            }
        }
        for def in self.props.iter().filter(|d| d.required) {
            if !found.iter().any(|(n, _)| *n == def.name) {
                return Err(err(format!("missing required property '{}'", def.name)));
            }
        }
        let mut entries = Vec::with_capacity(found.len());
        for def in self.props {
            if let Some(pos) = found.iter().position(|(n, _)| *n == def.name) {
                entries.push(found.swap_remove(pos));
            }
        }
        Ok(PropertyString { entries, default_key: self.default_key.filter(|_| self.bare_default), model: self.model })
    }
}

fn check_prop(def: &PropDef, value: &str) -> Result<String, String> {
    match def.kind {
        PropKind::Bool => check::boolean(value).map(|b| if b { "1" } else { "0" }.to_owned()),
        PropKind::Int { min, max } => check::int(value, min, max).map(|n| n.to_string()),
        PropKind::Float { min, max } => check::float(value, min, max).map(|f| f.to_string()),
        PropKind::Enum(allowed) => check::one_of(value, allowed).map(str::to_owned),
        PropKind::Size => size::parse_size(value, 1).map(size::format_size),
        PropKind::Text(f) => f(value),
    }
}

impl PropertyString {
    /// The value of a property, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// A boolean property (`1`/`0` after parsing); `None` when unset.
    pub fn flag(&self, name: &str) -> Option<bool> {
        self.get(name).map(|v| v == "1")
    }

    /// Sets a property to an already-canonical value (used for generated values such as MACs).
    pub fn insert(&mut self, schema: &PropSchema, name: &'static str, value: String) {
        if let Some(slot) = self.entries.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = value;
            return;
        }
        let rank = |n: &str| schema.props.iter().position(|p| p.name == n).unwrap_or(usize::MAX);
        let at = self.entries.iter().position(|(n, _)| rank(n) > rank(name)).unwrap_or(self.entries.len());
        self.entries.insert(at, (name, value));
    }

    /// Removes a property; answers its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let at = self.entries.iter().position(|(n, _)| *n == name)?;
        Some(self.entries.remove(at).1)
    }

    /// All properties in canonical order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(n, v)| (*n, v.as_str()))
    }
}

impl std::fmt::Display for PropertyString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        let mut sep = |f: &mut std::fmt::Formatter<'_>| {
            let s = if first { "" } else { "," };
            first = false;
            f.write_str(s)
        };
        // The model key is written first and carries its value: `virtio=BC:24:11:..`.
        if let Some(model) = self.model {
            if let Some(name) = self.get(model.model_prop) {
                sep(f)?;
                f.write_str(name)?;
                if let Some(value) = self.get(model.value_prop) {
                    write!(f, "={value}")?;
                }
            }
        }
        // The default key is written bare, first: `local:vm-100-disk-0,size=32G`.
        if let Some(value) = self.default_key.and_then(|k| self.get(k)) {
            sep(f)?;
            f.write_str(value)?;
        }
        for (name, value) in &self.entries {
            if self.model.is_some_and(|m| m.model_prop == *name || m.value_prop == *name)
                || self.default_key == Some(*name)
            {
                continue;
            }
            sep(f)?;
            write!(f, "{name}={value}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};

    static MODELS: &[&str] = &["virtio", "e1000"];
    static NIC: PropSchema = PropSchema {
        default_key: None,
        bare_default: false,
        model: Some(ModelKey { model_prop: "model", value_prop: "macaddr", models: MODELS }),
        props: &[
            PropDef::new("model", PropKind::Enum(MODELS), "").required(),
            PropDef::new("macaddr", PropKind::Text(check::mac), ""),
            PropDef::new("bridge", PropKind::Text(check::iface_name), ""),
            PropDef::new("firewall", PropKind::Bool, ""),
            PropDef::new("tag", PropKind::Int { min: 1, max: 4094 }, ""),
        ],
    };
    static DISK: PropSchema = PropSchema {
        default_key: Some("file"),
        bare_default: true,
        model: None,
        props: &[
            PropDef::new("file", PropKind::Text(check::non_empty), "").required(),
            PropDef::new("size", PropKind::Size, ""),
            PropDef::new("discard", PropKind::Enum(&["on", "ignore"]), ""),
        ],
    };

    fn check(schema: &PropSchema, input: &str, expect: Expect) {
        let actual = match schema.parse("net0", input) {
            Ok(p) => p.to_string(),
            Err(e) => format!("error: {e}"),
        };
        expect.assert_eq(&actual);
    }

    #[test]
    fn nic_forms() {
        check(&NIC, "virtio,bridge=vmbr0,firewall=1,tag=20", expect!["virtio,bridge=vmbr0,firewall=1,tag=20"]);
        check(
            &NIC,
            "tag=20,virtio=bc:24:11:aa:bb:cc,bridge=vmbr0",
            expect!["virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,tag=20"],
        );
        check(&NIC, "model=e1000,macaddr=BC:24:11:00:00:01", expect!["e1000=BC:24:11:00:00:01"]);
        check(&NIC, "virtio,firewall=yes", expect!["virtio,firewall=1"]);
        check(&NIC, "virtio,firewall", expect!["virtio,firewall=1"]);
        check(&NIC, "virtio,tag=5000", expect!["error: net0: tag: value 5000 is above the maximum 4094"]);
        check(
            &NIC,
            "virtio,brdige=vmbr0",
            expect!["error: net0: unknown property 'brdige' (allowed: model, macaddr, bridge, firewall, tag)"],
        );
        check(&NIC, "rtl,bridge=vmbr0", expect!["error: net0: unknown model 'rtl' (allowed: virtio, e1000)"]);
        check(&NIC, "bridge=vmbr0", expect!["error: net0: missing required property 'model'"]);
        check(&NIC, "virtio,bridge=a,bridge=b", expect!["error: net0: duplicate property 'bridge'"]);
        check(&NIC, "virtio,,bridge=a", expect!["error: net0: empty property in 'virtio,,bridge=a'"]);
        check(
            &NIC,
            "virtio=01:00:00:00:00:00",
            expect!["error: net0: macaddr: '01:00:00:00:00:00' is a multicast address"],
        );
        check(
            &NIC,
            "virtio=00:00:00:00:00:00",
            expect![
                "error: net0: macaddr: '00:00:00:00:00:00' is the all-zero address; give a unicast MAC address or leave it out"
            ],
        );
        check(&NIC, "", expect!["error: net0: empty value"]);
    }

    #[test]
    fn default_key_and_sizes() {
        check(&DISK, "local:32,discard=on", expect!["local:32,discard=on"]);
        check(
            &DISK,
            "discard=on,file=local:vm-100-disk-0,size=32768M",
            expect!["local:vm-100-disk-0,size=32G,discard=on"],
        );
        check(&DISK, "a,b", expect!["error: net0: unknown property 'b' (allowed: file, size, discard)"]);
        check(
            &DISK,
            "local:1,size=-1",
            expect!["error: net0: size: invalid size '-1': expected a number with an optional K, M, G or T suffix"],
        );
    }
}
