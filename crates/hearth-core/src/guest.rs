//! A guest's configuration file: the current settings, `[pending]` changes, `[snapshots.<name>]`
//! and the `lock`, their TOML form, and the edits `set --delete --revert` make.
//!
//! ```toml
//! lock = "backup"
//! memory = 2048
//! name = "web01"
//! net0 = "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,firewall=1,tag=20"
//!
//! [pending]
//! delete = ["tags"]
//! memory = 4096
//!
//! [snapshots.before-upgrade]
//! memory = 2048
//! snaptime = 1718000500
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use sha2::{Digest, Sha256};

use crate::propstr::PropSchema;
use crate::schema::{ConfigError, Schema, Value};
use crate::{ct, vm};

/// VMs and containers share the id space and the file grammar, not the keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GuestKind {
    Vm,
    Ct,
}

impl GuestKind {
    pub fn schema(self) -> &'static Schema {
        match self {
            GuestKind::Vm => &vm::SCHEMA,
            GuestKind::Ct => &ct::SCHEMA,
        }
    }

    /// `VM` or `CT`, as messages name them.
    pub fn noun(self) -> &'static str {
        self.schema().noun
    }

    /// The directory under `nodes/<node>/` holding this kind's files.
    pub fn config_dir(self) -> &'static str {
        match self {
            GuestKind::Vm => "qemu",
            GuestKind::Ct => "lxc",
        }
    }

    /// The task type for an operation, as Proxmox names them: `qmcreate`, `vzdestroy`.
    pub fn task_type(self, operation: &str) -> String {
        match self {
            GuestKind::Vm => format!("qm{operation}"),
            GuestKind::Ct => format!("vz{operation}"),
        }
    }

    fn nic_schema(self) -> (&'static PropSchema, &'static str) {
        match self {
            GuestKind::Vm => (&vm::NIC, "macaddr"),
            GuestKind::Ct => (&ct::NIC, "hwaddr"),
        }
    }

    /// The locks this kind of guest can carry.
    pub fn locks(self) -> &'static [Lock] {
        use Lock::*;
        match self {
            GuestKind::Vm => {
                &[Backup, Clone, Create, Migrate, Rollback, Snapshot, SnapshotDelete, Suspending, Suspended]
            }
            GuestKind::Ct => {
                &[Backup, Clone, Create, Destroyed, Disk, Fstrim, Migrate, Mounted, Rollback, Snapshot, SnapshotDelete]
            }
        }
    }
}

/// An operation that holds a guest; other changing operations are refused while it is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lock {
    Backup,
    Clone,
    Create,
    Destroyed,
    Disk,
    Fstrim,
    Migrate,
    Mounted,
    Rollback,
    Snapshot,
    SnapshotDelete,
    Suspended,
    Suspending,
}

impl Lock {
    pub fn as_str(self) -> &'static str {
        match self {
            Lock::Backup => "backup",
            Lock::Clone => "clone",
            Lock::Create => "create",
            Lock::Destroyed => "destroyed",
            Lock::Disk => "disk",
            Lock::Fstrim => "fstrim",
            Lock::Migrate => "migrate",
            Lock::Mounted => "mounted",
            Lock::Rollback => "rollback",
            Lock::Snapshot => "snapshot",
            Lock::SnapshotDelete => "snapshot-delete",
            Lock::Suspended => "suspended",
            Lock::Suspending => "suspending",
        }
    }

    /// Parses a lock valid for `kind`.
    pub fn parse(kind: GuestKind, s: &str) -> Result<Lock, ConfigError> {
        kind.locks().iter().copied().find(|l| l.as_str() == s).ok_or_else(|| {
            let allowed: Vec<&str> = kind.locks().iter().map(|l| l.as_str()).collect();
            ConfigError::new("lock", format!("invalid value '{s}' (allowed: {})", allowed.join(", ")))
        })
    }
}

impl fmt::Display for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Keys and values of one section.
pub type Section = BTreeMap<String, Value>;

/// Changes that wait for the guest's next start.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pending {
    pub values: Section,
    pub delete: BTreeSet<String>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.delete.is_empty()
    }
}

/// A guest's whole configuration file.
#[derive(Clone, Debug, PartialEq)]
pub struct GuestConfig {
    pub kind: GuestKind,
    pub current: Section,
    pub pending: Pending,
    pub snapshots: BTreeMap<String, Section>,
    pub lock: Option<Lock>,
}

/// A configuration file that cannot be read. `line` is 1-based.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct FileError {
    pub line: Option<usize>,
    pub message: String,
}

/// How `set` applies: to the configuration at once, or as pending changes for a running guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyMode {
    Direct,
    Pending,
}

/// A validated `set`: values to set, keys to delete, pending changes to drop.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConfigEdit {
    pub set: Vec<(String, Value)>,
    pub delete: Vec<String>,
    pub revert: Vec<String>,
}

/// One line of `pending` output.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingEntry {
    pub key: String,
    pub current: Option<Value>,
    pub pending: Option<Value>,
    pub delete: bool,
}

/// SHA-256 of a file's bytes, in hex: the digest an edit is based on.
pub fn digest(bytes: &[u8]) -> String {
    crate::hex::encode(&Sha256::digest(bytes))
}

/// Snapshot names: `[a-z][a-z0-9_-]+` (case-insensitive), at most 40 characters; `current`,
/// `pending` and `vzdump` are reserved.
pub fn check_snapshot_name(name: &str) -> Result<(), ConfigError> {
    let b = name.as_bytes();
    let well_formed = b.len() >= 2
        && b[0].is_ascii_alphabetic()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-');
    if !well_formed {
        return Err(ConfigError::new("snapname", format!("invalid snapshot name '{name}': expected [a-z][a-z0-9_-]+")));
    }
    if b.len() > 40 {
        return Err(ConfigError::new("snapname", format!("snapshot name '{name}' is longer than 40 characters")));
    }
    if ["current", "pending", "vzdump"].contains(&name.to_ascii_lowercase().as_str()) {
        return Err(ConfigError::new("snapname", format!("snapshot name '{name}' is reserved")));
    }
    Ok(())
}

impl ConfigEdit {
    /// Checks raw `--key value` options and `--delete`/`--revert` lists against the schema.
    pub fn parse(
        kind: GuestKind,
        set: &[(String, String)],
        delete: &[String],
        revert: &[String],
    ) -> Result<ConfigEdit, ConfigError> {
        let schema = kind.schema();
        let mut edit = ConfigEdit::default();
        for (key, raw) in set {
            if edit.set.iter().any(|(k, _)| k == key) {
                return Err(ConfigError::new(key, "given more than once"));
            }
            edit.set.push((key.clone(), schema.parse_cli(key, raw)?));
        }
        for (list, target) in [(delete, &mut edit.delete), (revert, &mut edit.revert)] {
            for key in list {
                schema.user_key(key)?;
                if !target.contains(key) {
                    target.push(key.clone());
                }
            }
        }
        for key in edit.delete.iter().chain(&edit.revert) {
            if edit.set.iter().any(|(k, _)| k == key) {
                return Err(ConfigError::new(key, "cannot be set and deleted or reverted at once"));
            }
        }
        if let Some(key) = edit.delete.iter().find(|k| edit.revert.contains(k)) {
            return Err(ConfigError::new(key, "cannot be deleted and reverted at once"));
        }
        Ok(edit)
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.delete.is_empty() && self.revert.is_empty()
    }
}

fn to_value(key: &str, v: &toml::Value) -> Result<Value, ConfigError> {
    match v {
        toml::Value::Boolean(b) => Ok(Value::Bool(*b)),
        toml::Value::Integer(n) => Ok(Value::Int(*n)),
        toml::Value::Float(x) => Ok(Value::Float(*x)),
        toml::Value::String(s) => Ok(Value::Str(s.clone())),
        other => {
            Err(ConfigError::new(key, format!("expected a string, number or boolean, found {}", other.type_str())))
        }
    }
}

fn to_toml(v: &Value) -> toml::Value {
    match v {
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Int(n) => toml::Value::Integer(*n),
        Value::Float(x) => toml::Value::Float(*x),
        Value::Str(s) => toml::Value::String(s.clone()),
    }
}

/// Finds the line where `key` is assigned inside the section whose header is `header`
/// (`None` for the top level), so errors point at the right place in a hand-edited file.
fn line_of(text: &str, header: Option<&str>, key: &str) -> Option<usize> {
    let mut in_section = header.is_none();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            let name = line.trim_start_matches('[').trim_end_matches(']').trim();
            in_section = header.is_some_and(|h| name == h || name.replace('"', "") == h);
            continue;
        }
        if in_section {
            if let Some((k, _)) = line.split_once('=') {
                if k.trim().trim_matches('"') == key {
                    return Some(n + 1);
                }
            }
        }
    }
    None
}

impl GuestConfig {
    pub fn new(kind: GuestKind) -> GuestConfig {
        GuestConfig {
            kind,
            current: Section::new(),
            pending: Pending::default(),
            snapshots: BTreeMap::new(),
            lock: None,
        }
    }

    /// Reads a configuration file, checking every key and value.
    pub fn parse(kind: GuestKind, text: &str) -> Result<GuestConfig, FileError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| FileError {
            line: e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1),
            message: e.message().trim().to_owned(),
        })?;
        let at = |header: Option<&str>, e: ConfigError| FileError {
            line: line_of(text, header, &e.key),
            message: e.to_string(),
        };
        let schema = kind.schema();
        let mut config = GuestConfig::new(kind);
        for (key, value) in &table {
            match (key.as_str(), value) {
                ("lock", toml::Value::String(s)) => config.lock = Some(Lock::parse(kind, s).map_err(|e| at(None, e))?),
                ("pending", toml::Value::Table(pending)) => {
                    for (key, value) in pending {
                        if key == "delete" {
                            let keys =
                                value.as_array().filter(|a| a.iter().all(toml::Value::is_str)).ok_or_else(|| {
                                    at(Some("pending"), ConfigError::new("delete", "expected an array of key names"))
                                })?;
                            for k in keys.iter().filter_map(toml::Value::as_str) {
                                schema
                                    .user_key(k)
                                    .map_err(|e| at(Some("pending"), ConfigError::new("delete", e.to_string())))?;
                                config.pending.delete.insert(k.to_owned());
                            }
                            continue;
                        }
                        let value = to_value(key, value).and_then(|v| schema.check_stored(key, &v, false));
                        config.pending.values.insert(key.clone(), value.map_err(|e| at(Some("pending"), e))?);
                    }
                }
                ("snapshots", toml::Value::Table(snapshots)) => {
                    for (name, section) in snapshots {
                        let header = format!("snapshots.{name}");
                        check_snapshot_name(name)
                            .map_err(|e| FileError { line: None, message: format!("[{header}]: {}", e.message) })?;
                        let section = section.as_table().ok_or_else(|| FileError {
                            line: None,
                            message: format!("snapshots.{name}: expected a table"),
                        })?;
                        let mut snapshot = Section::new();
                        for (key, value) in section {
                            let value = to_value(key, value).and_then(|v| schema.check_stored(key, &v, true));
                            snapshot.insert(key.clone(), value.map_err(|e| at(Some(&header), e))?);
                        }
                        config.snapshots.insert(name.clone(), snapshot);
                    }
                }
                _ => {
                    let value = to_value(key, value).and_then(|v| schema.check_stored(key, &v, false));
                    config.current.insert(key.clone(), value.map_err(|e| at(None, e))?);
                }
            }
        }
        Ok(config)
    }

    /// The file form: keys sorted, then `[pending]`, then snapshots by name.
    pub fn to_toml(&self) -> String {
        let mut table = toml::Table::new();
        for (key, value) in &self.current {
            table.insert(key.clone(), to_toml(value));
        }
        if let Some(lock) = self.lock {
            table.insert("lock".into(), toml::Value::String(lock.as_str().into()));
        }
        if !self.pending.is_empty() {
            let mut pending: toml::Table = self.pending.values.iter().map(|(k, v)| (k.clone(), to_toml(v))).collect();
            if !self.pending.delete.is_empty() {
                let keys = self.pending.delete.iter().map(|k| toml::Value::String(k.clone())).collect();
                pending.insert("delete".into(), toml::Value::Array(keys));
            }
            table.insert("pending".into(), toml::Value::Table(pending));
        }
        if !self.snapshots.is_empty() {
            let snapshots = self
                .snapshots
                .iter()
                .map(|(name, s)| {
                    (name.clone(), toml::Value::Table(s.iter().map(|(k, v)| (k.clone(), to_toml(v))).collect()))
                })
                .collect();
            table.insert("snapshots".into(), toml::Value::Table(snapshots));
        }
        toml::to_string(&table).expect("a table of strings, numbers and booleans always serialises")
    }

    /// Every volume the configuration names — disks, mount points, `unusedN`, snapshot RAM
    /// states — in current, pending and snapshot sections, as (section, key, volume) where the
    /// section is `current`, `pending` or the snapshot's name. CD-ROM `none`/`cdrom` and
    /// absolute paths are not volumes and are left out.
    pub fn volume_refs(&self) -> Vec<(String, String, String)> {
        let schema = self.kind.schema();
        let sections = std::iter::once(("current", &self.current))
            .chain(std::iter::once(("pending", &self.pending.values)))
            .chain(self.snapshots.iter().map(|(name, s)| (name.as_str(), s)));
        let mut refs = Vec::new();
        for (section, values) in sections {
            for (key, value) in values {
                let volume = if key.starts_with("unused") || key == "vmstate" {
                    value.as_str().map(str::to_owned)
                } else {
                    schema
                        .property(key, value)
                        .and_then(|p| p.get("file").or_else(|| p.get("volume")).map(str::to_owned))
                };
                if let Some(volume) = volume.filter(|v| v.contains(':') && !v.starts_with('/')) {
                    refs.push((section.to_owned(), key.clone(), volume));
                }
            }
        }
        refs
    }

    /// The configuration with pending changes applied, as `config` shows it by default.
    pub fn merged(&self) -> Section {
        let mut merged = self.current.clone();
        for key in &self.pending.delete {
            merged.remove(key);
        }
        merged.extend(self.pending.values.iter().map(|(k, v)| (k.clone(), v.clone())));
        merged
    }

    /// Applies a validated edit, then checks the result as a whole.
    pub fn apply(&mut self, edit: &ConfigEdit, mode: ApplyMode) -> Result<(), ConfigError> {
        for key in &edit.revert {
            self.pending.values.remove(key);
            self.pending.delete.remove(key);
        }
        for (key, value) in &edit.set {
            self.pending.delete.remove(key);
            match mode {
                ApplyMode::Direct => {
                    self.pending.values.remove(key);
                    self.current.insert(key.clone(), value.clone());
                }
                ApplyMode::Pending if self.current.get(key) == Some(value) => {
                    self.pending.values.remove(key);
                }
                ApplyMode::Pending => {
                    self.pending.values.insert(key.clone(), value.clone());
                }
            }
        }
        for key in &edit.delete {
            self.pending.values.remove(key);
            match mode {
                ApplyMode::Direct => {
                    self.current.remove(key);
                    self.pending.delete.remove(key);
                }
                ApplyMode::Pending if self.current.contains_key(key) => {
                    self.pending.delete.insert(key.clone());
                }
                ApplyMode::Pending => {}
            }
        }
        self.check_consistency()
    }

    /// Rules that span keys, checked on the configuration with pending changes applied.
    pub fn check_consistency(&self) -> Result<(), ConfigError> {
        let merged = self.merged();
        match self.kind {
            GuestKind::Vm => {
                let memory = merged.get("memory").and_then(Value::as_int).unwrap_or(512);
                if let Some(balloon) = merged.get("balloon").and_then(Value::as_int) {
                    if balloon > memory {
                        return Err(ConfigError::new(
                            "balloon",
                            format!("{balloon} MiB is more than the VM's memory ({memory} MiB)"),
                        ));
                    }
                }
                for (key, value) in &merged {
                    let Some(drive) = self.kind.schema().property(key, value) else { continue };
                    let allocates = drive.get("file").and_then(crate::schema::check::allocation).is_some();
                    if drive.get("media") == Some("cdrom") && allocates {
                        return Err(ConfigError::new(key, "a CD-ROM cannot allocate a new volume"));
                    }
                }
            }
            GuestKind::Ct => {
                let mut paths = BTreeMap::new();
                for (key, value) in merged.iter().filter(|(k, _)| k.starts_with("mp")) {
                    if let Some(path) =
                        self.kind.schema().property(key, value).and_then(|p| p.get("mp").map(str::to_owned))
                    {
                        if let Some(other) = paths.insert(path.clone(), key.clone()) {
                            return Err(ConfigError::new(key, format!("mount path {path} is already used by {other}")));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Pending changes next to the values they replace, as `pending` prints them.
    pub fn pending_entries(&self) -> Vec<PendingEntry> {
        let keys: BTreeSet<&String> =
            self.current.keys().chain(self.pending.values.keys()).chain(self.pending.delete.iter()).collect();
        keys.into_iter()
            .map(|key| PendingEntry {
                key: key.clone(),
                current: self.current.get(key).cloned(),
                pending: self.pending.values.get(key).cloned(),
                delete: self.pending.delete.contains(key),
            })
            .collect()
    }

    /// Gives every NIC without a MAC address one under Proxmox's prefix `BC:24:11`, from three
    /// random bytes per NIC supplied by the caller.
    pub fn assign_macs(&mut self, mut random: impl FnMut() -> [u8; 3]) {
        let (nic, mac_prop) = self.kind.nic_schema();
        let sections = std::iter::once(&mut self.current).chain(std::iter::once(&mut self.pending.values));
        for section in sections {
            for (key, value) in section.iter_mut().filter(|(k, _)| k.starts_with("net")) {
                let Value::Str(text) = value else { continue };
                let Ok(mut props) = nic.parse(key, text) else { continue };
                if props.get(mac_prop).is_none() {
                    let [a, b, c] = random();
                    props.insert(nic, mac_prop, format!("BC:24:11:{a:02X}:{b:02X}:{c:02X}"));
                    *text = props.to_string();
                }
            }
        }
    }

    /// Fills in the ids qm generates: `vmgenid: 1` becomes a new UUID; a new VM (`creating`)
    /// also gets a `vmgenid` and an `smbios1` UUID unless given (no `vmgenid` for `arch:
    /// aarch64`, which has no such device). `random` supplies 16 random bytes per UUID.
    pub fn assign_generated_ids(&mut self, creating: bool, mut random: impl FnMut() -> [u8; 16]) {
        if self.kind != GuestKind::Vm {
            return;
        }
        let mut uuid = || vm::uuid_v4(random());
        for section in [&mut self.current, &mut self.pending.values] {
            if section.get("vmgenid").and_then(Value::as_str) == Some("1") {
                section.insert("vmgenid".into(), Value::Str(uuid()));
            }
        }
        if creating {
            let merged = self.merged();
            let aarch64 = merged.get("arch").and_then(Value::as_str) == Some("aarch64");
            if !merged.contains_key("vmgenid") && !aarch64 {
                self.current.insert("vmgenid".into(), Value::Str(uuid()));
            }
            if !merged.contains_key("smbios1") {
                self.current.insert("smbios1".into(), Value::Str(format!("uuid={}", uuid())));
            }
        }
    }

    /// Settings every new guest gets unless given: containers are unprivileged by default.
    pub fn apply_create_defaults(&mut self) {
        if self.kind == GuestKind::Ct {
            self.current.entry("unprivileged".into()).or_insert(Value::Bool(true));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    fn edit(kind: GuestKind, set: &[(&str, &str)], delete: &[&str]) -> Result<ConfigEdit, ConfigError> {
        let set: Vec<(String, String)> = set.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let delete: Vec<String> = delete.iter().map(|s| s.to_string()).collect();
        ConfigEdit::parse(kind, &set, &delete, &[])
    }

    #[test]
    fn round_trip_file() {
        let text = r#"
memory = 2048
name = "web01"
net0 = "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,firewall=1,tag=20"
onboot = 1
description = """
Web server: prod
second line"""
lock = "backup"
parent = "before-upgrade"

[pending]
memory = 4096
delete = ["onboot"]

[snapshots.before-upgrade]
memory = 1024
snaptime = 1718000500
"#;
        let config = GuestConfig::parse(GuestKind::Vm, text).unwrap();
        assert_eq!(config.lock, Some(Lock::Backup));
        assert_eq!(config.current.get("onboot"), Some(&Value::Bool(true)));
        let written = config.to_toml();
        expect![[r#"
            description = """
            Web server: prod
            second line"""
            lock = "backup"
            memory = 2048
            name = "web01"
            net0 = "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,firewall=1,tag=20"
            onboot = true
            parent = "before-upgrade"

            [pending]
            delete = ["onboot"]
            memory = 4096

            [snapshots.before-upgrade]
            memory = 1024
            snaptime = 1718000500
        "#]]
        .assert_eq(&written);
        assert_eq!(GuestConfig::parse(GuestKind::Vm, &written).unwrap(), config);
        let merged = config.merged();
        assert_eq!(merged.get("memory"), Some(&Value::Int(4096)));
        assert!(!merged.contains_key("onboot"));
    }

    #[test]
    fn file_errors_name_line_and_key() {
        let check = |text: &str, expect: expect_test::Expect| {
            expect.assert_eq(&GuestConfig::parse(GuestKind::Vm, text).unwrap_err().to_string());
        };
        check(
            "memory = 2048\nmemroy = 4\n",
            expect!["line 2: memroy: unknown VM configuration key; did you mean 'memory'?"],
        );
        check("memory = 2048\ncores = \n", expect!["line 2: string values must be quoted, expected literal string"]);
        check("name = \"a\"\n\n[pending]\nmemory = 1\n", expect!["line 4: memory: value 1 is below the minimum 16"]);
        check(
            "lock = \"mounted\"\n",
            expect![
                "line 1: lock: invalid value 'mounted' (allowed: backup, clone, create, migrate, rollback, snapshot, snapshot-delete, suspending, suspended)"
            ],
        );
        check(
            "[snapshots.current]\nmemory = 512\n",
            expect!["[snapshots.current]: snapshot name 'current' is reserved"],
        );
        check(
            "[snapshots.s1]\nmemory = [1]\n",
            expect!["line 2: memory: expected a string, number or boolean, found array"],
        );
        check("snaptime = 5\n", expect!["line 1: snaptime: is only valid inside a snapshot section"]);
        check(
            "[pending]\ndelete = [\"memroy\"]\n",
            expect!["line 2: delete: memroy: unknown VM configuration key; did you mean 'memory'?"],
        );
        check("hostname = \"ct\"\n", expect!["line 1: hostname: unknown VM configuration key"]);
    }

    #[test]
    fn edits_direct_and_pending() {
        let mut config = GuestConfig::new(GuestKind::Vm);
        config
            .apply(
                &edit(GuestKind::Vm, &[("memory", "1024"), ("cores", "2"), ("tags", "b a")], &[]).unwrap(),
                ApplyMode::Direct,
            )
            .unwrap();
        config.apply(&edit(GuestKind::Vm, &[("memory", "2048")], &["tags"]).unwrap(), ApplyMode::Pending).unwrap();
        let entries: Vec<String> = config
            .pending_entries()
            .iter()
            .map(|e| {
                format!(
                    "{} cur={:?} new={:?} del={}",
                    e.key,
                    e.current.as_ref().map(|v| v.to_string()),
                    e.pending.as_ref().map(|v| v.to_string()),
                    e.delete
                )
            })
            .collect();
        expect![[r#"
            [
                "cores cur=Some(\"2\") new=None del=false",
                "memory cur=Some(\"1024\") new=Some(\"2048\") del=false",
                "tags cur=Some(\"a;b\") new=None del=true",
            ]
        "#]]
        .assert_debug_eq(&entries);
        // Setting the pending key directly clears the pending entry.
        config.apply(&edit(GuestKind::Vm, &[("memory", "4096")], &[]).unwrap(), ApplyMode::Direct).unwrap();
        assert!(!config.pending.values.contains_key("memory"));
        let revert = ConfigEdit::parse(GuestKind::Vm, &[], &[], &["tags".into()]).unwrap();
        config.apply(&revert, ApplyMode::Direct).unwrap();
        assert!(config.pending.is_empty());
    }

    #[test]
    fn edit_errors() {
        let err = |set: &[(&str, &str)], delete: &[&str]| edit(GuestKind::Vm, set, delete).unwrap_err().to_string();
        assert_eq!(err(&[("memory", "1024")], &["memory"]), "memory: cannot be set and deleted or reverted at once");
        assert_eq!(err(&[], &["bogus"]), "bogus: unknown VM configuration key");
        assert_eq!(err(&[("unused0", "local:vm-100-disk-0")], &[]), "unused0: is managed by hearthd and cannot be set");
        let mut config = GuestConfig::new(GuestKind::Vm);
        let e = config
            .apply(&edit(GuestKind::Vm, &[("memory", "512"), ("balloon", "1024")], &[]).unwrap(), ApplyMode::Direct);
        assert_eq!(e.unwrap_err().to_string(), "balloon: 1024 MiB is more than the VM's memory (512 MiB)");
        let mut ct = GuestConfig::new(GuestKind::Ct);
        let e = ct.apply(
            &edit(GuestKind::Ct, &[("mp0", "local:4,mp=/data"), ("mp1", "local:2,mp=/data")], &[]).unwrap(),
            ApplyMode::Direct,
        );
        assert_eq!(e.unwrap_err().to_string(), "mp1: mount path /data is already used by mp0");
    }

    #[test]
    fn pct_option_syntax_and_create_defaults() {
        let e = edit(
            GuestKind::Ct,
            &[
                ("rootfs", "local:8"),
                ("mp0", "local:4,mp=/data"),
                ("net0", "name=eth0,bridge=vmbr0,ip=10.0.0.2/24,gw=10.0.0.1"),
            ],
            &[],
        )
        .unwrap();
        let mut ct = GuestConfig::new(GuestKind::Ct);
        ct.apply(&e, ApplyMode::Direct).unwrap();
        ct.apply_create_defaults();
        let mut n = 0u8;
        ct.assign_macs(|| {
            n += 1;
            [0xAB, 0xCD, n]
        });
        expect![[r#"
            mp0 = "local:4,mp=/data"
            net0 = "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:AB:CD:01,ip=10.0.0.2/24,gw=10.0.0.1"
            rootfs = "local:8"
            unprivileged = true
        "#]]
        .assert_eq(&ct.to_toml());
        assert!(
            edit(GuestKind::Ct, &[("mp0", "local:4")], &[])
                .unwrap_err()
                .to_string()
                .contains("missing required property 'mp'")
        );
        assert!(edit(GuestKind::Ct, &[("mp0", "local:4,mp=../x")], &[]).is_err());
    }

    #[test]
    fn snapshot_names() {
        assert!(check_snapshot_name("before-upgrade").is_ok());
        assert!(check_snapshot_name("1abc").is_err());
        assert!(check_snapshot_name("Current").is_err());
        assert!(check_snapshot_name(&"a".repeat(41)).is_err());
    }

    #[test]
    fn digest_is_sha256_hex() {
        assert_eq!(digest(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
