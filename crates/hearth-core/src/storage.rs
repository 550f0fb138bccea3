//! Storage definitions as pvesm knows them: the keys of `etc/hearth/storage.toml`, content
//! types, image formats, and volume ids (`local:100/vm-100-disk-0.qcow2`, `local:iso/x.iso`,
//! `store:vm-100-disk-0` on btrfs) with the naming rules that keep a volume inside its storage.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::guest::{FileError, Section};
use crate::propstr::{PropDef, PropKind, PropSchema};
use crate::schema::{ConfigError, KeyDef, Kind, Schema, Value, check};
use crate::vmid::Vmid;

/// Storage backends Hearth can drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StorageType {
    /// Any directory; images through qemu-img, container roots as directories or ext4 images.
    Dir,
    /// A directory on btrfs; every volume is a subvolume, so snapshots and clones are O(1).
    Btrfs,
    /// A deduplicating backup chunk store (hearth-backup): backups only, no volumes.
    Chunkstore,
}

impl StorageType {
    pub const ALL: [StorageType; 3] = [StorageType::Dir, StorageType::Btrfs, StorageType::Chunkstore];

    pub fn as_str(self) -> &'static str {
        match self {
            StorageType::Dir => "dir",
            StorageType::Btrfs => "btrfs",
            StorageType::Chunkstore => "chunkstore",
        }
    }

    /// Keys valid for this type beyond the common ones.
    fn own_keys(self) -> &'static [&'static str] {
        match self {
            StorageType::Dir => &["preallocation"],
            StorageType::Btrfs => &["nocow"],
            StorageType::Chunkstore => &["keyfile", "sync-level"],
        }
    }

    /// Image formats the type can hold.
    pub fn formats(self) -> &'static [Format] {
        match self {
            StorageType::Dir => &[Format::Raw, Format::Qcow2, Format::Vmdk, Format::Subvol],
            StorageType::Btrfs => &[Format::Raw, Format::Subvol],
            StorageType::Chunkstore => &[],
        }
    }

    /// Whether image volume names carry the `<vmid>/` directory and a format extension
    /// (`100/vm-100-disk-0.qcow2`) or are flat (`vm-100-disk-0`).
    pub fn file_style_images(self) -> bool {
        self == StorageType::Dir
    }
}

impl fmt::Display for StorageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StorageType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        StorageType::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| {
            format!(
                "unknown storage type '{s}' (this node supports: {})",
                StorageType::ALL.map(StorageType::as_str).join(", ")
            )
        })
    }
}

/// What a storage may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Content {
    /// VM disk images.
    Images,
    /// Container root filesystems and mount points.
    Rootdir,
    Iso,
    /// Container templates.
    Vztmpl,
    Backup,
    Snippets,
    /// Disk images and appliances to import from.
    Import,
}

impl Content {
    pub const ALL: [Content; 7] = [
        Content::Images,
        Content::Rootdir,
        Content::Iso,
        Content::Vztmpl,
        Content::Backup,
        Content::Snippets,
        Content::Import,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Content::Images => "images",
            Content::Rootdir => "rootdir",
            Content::Iso => "iso",
            Content::Vztmpl => "vztmpl",
            Content::Backup => "backup",
            Content::Snippets => "snippets",
            Content::Import => "import",
        }
    }

    /// The directory under the storage path, as Proxmox lays it out.
    pub fn subdir(self) -> &'static str {
        match self {
            Content::Images | Content::Rootdir => "images",
            Content::Iso => "template/iso",
            Content::Vztmpl => "template/cache",
            Content::Backup => "dump",
            Content::Snippets => "snippets",
            Content::Import => "import",
        }
    }

    /// The volume name prefix of file content: `iso/`, `vztmpl/`, ….
    fn volname_prefix(self) -> Option<&'static str> {
        match self {
            Content::Images | Content::Rootdir => None,
            other => Some(other.as_str()),
        }
    }
}

impl fmt::Display for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Content {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Content::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| {
            format!("unknown content type '{s}' (allowed: {})", Content::ALL.map(Content::as_str).join(", "))
        })
    }
}

/// A comma-separated content list in canonical order; `none` is the empty list.
pub fn parse_content_list(s: &str) -> Result<Vec<Content>, String> {
    if s == "none" {
        return Ok(Vec::new());
    }
    let mut list = Vec::new();
    for part in s.split(',').map(str::trim) {
        let c: Content = part.parse()?;
        if !list.contains(&c) {
            list.push(c);
        }
    }
    list.sort();
    Ok(list)
}

fn content_list(s: &str) -> Result<String, String> {
    let list = parse_content_list(s)?;
    if list.is_empty() {
        return Ok("none".into());
    }
    Ok(list.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(","))
}

fn node_list(s: &str) -> Result<String, String> {
    let mut nodes = Vec::new();
    for n in s.split(',').map(str::trim) {
        nodes.push(check::dns_name(n).map_err(|_| format!("invalid node name '{n}'"))?);
    }
    Ok(nodes.join(","))
}

/// `is_mountpoint`: a boolean, or the path that must be a mount point.
fn mountpoint_flag(s: &str) -> Result<String, String> {
    if let Ok(b) = check::boolean(s) {
        return Ok(if b { "yes" } else { "no" }.into());
    }
    check::absolute_path(s).map_err(|_| format!("invalid value '{s}': expected yes, no or an absolute path"))
}

/// Image and volume formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    Raw,
    Qcow2,
    Vmdk,
    /// A directory (dir) or subvolume (btrfs) holding a container's files.
    Subvol,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Raw, Format::Qcow2, Format::Vmdk, Format::Subvol];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
            Format::Vmdk => "vmdk",
            Format::Subvol => "subvol",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Format::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown format '{s}' (allowed: raw, qcow2, vmdk, subvol)"))
    }
}

/// `prune-backups`: how many backups of each period to keep.
pub static PRUNE_BACKUPS: PropSchema = PropSchema {
    default_key: None,
    bare_default: false,
    model: None,
    props: &[
        PropDef::new("keep-all", PropKind::Bool, "keep every backup"),
        PropDef::new("keep-last", PropKind::Int { min: 0, max: 1 << 20 }, "keep the last N backups"),
        PropDef::new("keep-hourly", PropKind::Int { min: 0, max: 1 << 20 }, "keep the newest backup of N hours"),
        PropDef::new("keep-daily", PropKind::Int { min: 0, max: 1 << 20 }, "keep the newest backup of N days"),
        PropDef::new("keep-weekly", PropKind::Int { min: 0, max: 1 << 20 }, "keep the newest backup of N weeks"),
        PropDef::new("keep-monthly", PropKind::Int { min: 0, max: 1 << 20 }, "keep the newest backup of N months"),
        PropDef::new("keep-yearly", PropKind::Int { min: 0, max: 1 << 20 }, "keep the newest backup of N years"),
    ],
};

/// `bwlimit`: KiB/s per kind of operation, as Proxmox's (`default` for those not named).
pub static BWLIMIT: PropSchema = PropSchema {
    default_key: None,
    bare_default: false,
    model: None,
    props: &[
        PropDef::new("default", PropKind::Int { min: 0, max: 1 << 40 }, "KiB/s for operations not named"),
        PropDef::new("clone", PropKind::Int { min: 0, max: 1 << 40 }, "KiB/s for full clones"),
        PropDef::new("migration", PropKind::Int { min: 0, max: 1 << 40 }, "KiB/s for migrations"),
        PropDef::new("move", PropKind::Int { min: 0, max: 1 << 40 }, "KiB/s for moving disks"),
        PropDef::new("restore", PropKind::Int { min: 0, max: 1 << 40 }, "KiB/s for restores"),
    ],
};

/// The bandwidth limit in KiB/s a storage's `bwlimit` sets for `operation` (`clone`,
/// `migration`, `move`, `restore`), else its `default`; `None` (or 0) is no limit.
pub fn bwlimit(config: &StorageConfig, operation: &str) -> Option<u64> {
    let Some(Value::Str(text)) = config.section.get("bwlimit") else { return None };
    let mut default = None;
    let mut specific = None;
    for part in text.split(',') {
        let Some((key, value)) = part.split_once('=') else { continue };
        let Ok(kib) = value.trim().parse::<u64>() else { continue };
        if key.trim() == operation {
            specific = Some(kib);
        } else if key.trim() == "default" {
            default = Some(kib);
        }
    }
    specific.or(default).filter(|&k| k > 0)
}

/// The keys of one storage in `storage.toml`.
pub static SCHEMA: Schema = Schema {
    noun: "storage",
    keys: &[
        KeyDef::new("type", Kind::Enum(&["dir", "btrfs", "chunkstore"]), "storage type (fixed at creation)"),
        KeyDef::new("path", Kind::Text(check::absolute_path), "directory holding the storage (fixed at creation)"),
        KeyDef::new(
            "content",
            Kind::Text(content_list),
            "content types: images, rootdir, iso, vztmpl, backup, snippets, import (comma-separated) or none",
        ),
        KeyDef::new("nodes", Kind::Text(node_list), "nodes that may use the storage (comma-separated; default all)"),
        KeyDef::new("shared", Kind::Bool, "the content is the same on every node (declaration only)"),
        KeyDef::new("disable", Kind::Bool, "the storage is disabled"),
        KeyDef::new("format", Kind::Enum(&["raw", "qcow2", "vmdk", "subvol"]), "default image format"),
        KeyDef::new(
            "preallocation",
            Kind::Enum(&["off", "metadata", "falloc", "full"]),
            "preallocation of raw and qcow2 images (dir)",
        ),
        KeyDef::new("nocow", Kind::Bool, "disable copy-on-write for VM images (btrfs)"),
        KeyDef::new(
            "keyfile",
            Kind::Text(check::absolute_path),
            "encryption key file of a chunk store (AES-256-GCM; root only)",
        ),
        KeyDef::new(
            "sync-level",
            Kind::Enum(&["none", "filesystem", "file"]),
            "when a chunk store's writes reach the disk: none (the kernel's writeback), filesystem (one syncfs \
             before a backup is reported done; the default) or file (every chunk and index file fsynced)",
        ),
        KeyDef::new(
            "is_mountpoint",
            Kind::Text(mountpoint_flag),
            "the storage is only active while its path (or the given path) is a mount point",
        ),
        KeyDef::new("prune-backups", Kind::Prop(&PRUNE_BACKUPS), "backup retention: keep-last=N,keep-daily=N,…"),
        KeyDef::new(
            "max-protected-backups",
            Kind::Int { min: -1, max: 1 << 20 },
            "how many protected backups per guest the storage allows (-1 = unlimited)",
        ),
        KeyDef::new("comment", Kind::Text(check::non_empty), "free text"),
        KeyDef::new(
            "bwlimit",
            Kind::Prop(&BWLIMIT),
            "bandwidth limits in KiB/s: default=,clone=,migration=,move=,restore=",
        ),
    ],
};

/// Keys `storectl set` may not change.
pub const FIXED_KEYS: [&str; 2] = ["type", "path"];

/// Keys every storage type takes.
const COMMON_KEYS: [&str; 11] = [
    "type",
    "path",
    "content",
    "nodes",
    "shared",
    "disable",
    "format",
    "is_mountpoint",
    "prune-backups",
    "max-protected-backups",
    "bwlimit",
];

/// One storage, typed. The raw keys stay in `section` for display.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageConfig {
    pub id: String,
    pub storage_type: StorageType,
    pub path: String,
    pub content: Vec<Content>,
    /// Empty means every node.
    pub nodes: Vec<String>,
    pub shared: bool,
    pub disable: bool,
    pub format: Option<Format>,
    /// The path that must be a mount point for the storage to be active.
    pub mountpoint: Option<String>,
    pub section: Section,
}

impl StorageConfig {
    /// Builds the typed view of a validated section.
    pub fn from_section(id: &str, section: &Section) -> Result<StorageConfig, ConfigError> {
        let text = |k: &str| section.get(k).and_then(Value::as_str);
        let flag = |k: &str| section.get(k) == Some(&Value::Bool(true));
        let storage_type: StorageType = text("type")
            .ok_or_else(|| ConfigError::new("type", "is required"))?
            .parse()
            .map_err(|m| ConfigError::new("type", m))?;
        for key in section.keys() {
            if !COMMON_KEYS.contains(&key.as_str())
                && !storage_type.own_keys().contains(&key.as_str())
                && key != "comment"
            {
                return Err(ConfigError::new(key, format!("is not a key of {storage_type} storages")));
            }
        }
        let path = text("path").ok_or_else(|| ConfigError::new("path", "is required"))?.to_owned();
        let content = match text("content") {
            Some(c) => parse_content_list(c).map_err(|m| ConfigError::new("content", m))?,
            None if storage_type == StorageType::Chunkstore => vec![Content::Backup],
            None => vec![Content::Images, Content::Rootdir],
        };
        if storage_type == StorageType::Chunkstore && content.iter().any(|c| *c != Content::Backup) {
            return Err(ConfigError::new("content", "a chunkstore holds only backup content"));
        }
        let format = text("format").map(str::parse::<Format>).transpose().map_err(|m| ConfigError::new("format", m))?;
        if let Some(f) = format {
            if !storage_type.formats().contains(&f) {
                return Err(ConfigError::new("format", format!("{storage_type} storages cannot hold {f} images")));
            }
        }
        let mountpoint = match text("is_mountpoint") {
            None | Some("no") => None,
            Some("yes") => Some(path.clone()),
            Some(p) => Some(p.to_owned()),
        };
        Ok(StorageConfig {
            id: id.to_owned(),
            storage_type,
            nodes: text("nodes").map(|n| n.split(',').map(str::to_owned).collect()).unwrap_or_default(),
            shared: flag("shared"),
            disable: flag("disable"),
            path,
            content,
            format,
            mountpoint,
            section: section.clone(),
        })
    }

    pub fn has_content(&self, content: Content) -> bool {
        self.content.contains(&content)
    }

    /// Whether `node` may use this storage.
    pub fn on_node(&self, node: &str) -> bool {
        self.nodes.is_empty() || self.nodes.iter().any(|n| n == node)
    }

    /// The format of a new image when none is asked for: the storage's `format`, else qcow2 on
    /// dir (snapshots and linked clones need it) and raw on btrfs.
    pub fn default_image_format(&self) -> Format {
        self.format.filter(|f| *f != Format::Subvol).unwrap_or(match self.storage_type {
            StorageType::Dir => Format::Qcow2,
            StorageType::Btrfs | StorageType::Chunkstore => Format::Raw,
        })
    }
}

/// The storage table of a node, in file order (ids sorted).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StorageTable {
    pub storages: BTreeMap<String, Section>,
}

impl StorageTable {
    /// A fresh node's table: `local`, a dir storage at `path` holding everything.
    pub fn fresh(local_path: &str) -> StorageTable {
        let mut section = Section::new();
        section.insert("type".into(), Value::Str("dir".into()));
        section.insert("path".into(), Value::Str(local_path.to_owned()));
        section.insert("content".into(), Value::Str("images,rootdir,iso,vztmpl,backup,snippets".into()));
        let mut storages = BTreeMap::new();
        storages.insert("local".to_owned(), section);
        StorageTable { storages }
    }

    /// Parses `storage.toml`: one table per storage id.
    pub fn parse(text: &str) -> Result<StorageTable, FileError> {
        let doc: toml::Table = toml::from_str(text)
            .map_err(|e| FileError { line: line_of_offset(text, e.span()), message: e.message().to_owned() })?;
        let mut storages = BTreeMap::new();
        for (id, table) in doc {
            let header_line =
                text.lines().position(|l| l.trim() == format!("[{id}]") || l.trim() == format!("[\"{id}\"]"));
            let at = |message: String| FileError { line: header_line.map(|n| n + 1), message };
            check::storage_id(&id).map_err(at)?;
            let toml::Value::Table(table) = table else {
                return Err(at(format!("'{id}' must be a table of storage keys")));
            };
            let mut section = Section::new();
            for (key, value) in table {
                let value = match value {
                    toml::Value::Boolean(b) => Value::Bool(b),
                    toml::Value::Integer(n) => Value::Int(n),
                    toml::Value::String(s) => Value::Str(s),
                    other => return Err(at(format!("[{id}] {key}: unexpected {}", other.type_str()))),
                };
                let value = SCHEMA.check_stored(&key, &value, false).map_err(|e| at(format!("[{id}] {e}")))?;
                section.insert(key, value);
            }
            StorageConfig::from_section(&id, &section).map_err(|e| at(format!("[{id}] {e}")))?;
            storages.insert(id, section);
        }
        Ok(StorageTable { storages })
    }

    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        for (id, section) in &self.storages {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("[{id}]\n"));
            // `type` first, as readers expect.
            let ordered = section.get_key_value("type").into_iter().chain(section.iter().filter(|(k, _)| *k != "type"));
            for (key, value) in ordered {
                let value = match value {
                    Value::Bool(b) => toml::Value::Boolean(*b),
                    Value::Int(n) => toml::Value::Integer(*n),
                    Value::Float(x) => toml::Value::Float(*x),
                    Value::Str(s) => toml::Value::String(s.clone()),
                };
                let key = if key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                    key.clone()
                } else {
                    format!("\"{key}\"")
                };
                out.push_str(&format!("{key} = {value}\n"));
            }
        }
        out
    }

    pub fn get(&self, id: &str) -> Option<StorageConfig> {
        self.storages.get(id).and_then(|s| StorageConfig::from_section(id, s).ok())
    }

    /// Every storage, typed.
    pub fn all(&self) -> Vec<StorageConfig> {
        self.storages.iter().filter_map(|(id, s)| StorageConfig::from_section(id, s).ok()).collect()
    }

    /// Adds a storage from `--key value` options; `path` must be given.
    pub fn add(
        &mut self,
        id: &str,
        storage_type: StorageType,
        options: &[(String, String)],
    ) -> Result<(), ConfigError> {
        check::storage_id(id).map_err(|m| ConfigError::new("storage", m))?;
        if self.storages.contains_key(id) {
            return Err(ConfigError::new("storage", format!("storage '{id}' already exists")));
        }
        let mut section = Section::new();
        section.insert("type".into(), Value::Str(storage_type.as_str().into()));
        for (key, raw) in options {
            if key == "type" {
                return Err(ConfigError::new(key, "is given as the first argument"));
            }
            if section.contains_key(key) {
                return Err(ConfigError::new(key, "given more than once"));
            }
            section.insert(key.clone(), SCHEMA.parse_cli(key, raw)?);
        }
        StorageConfig::from_section(id, &section)?;
        self.storages.insert(id.to_owned(), section);
        Ok(())
    }

    /// Changes keys of a storage; fixed keys are refused.
    pub fn set(&mut self, id: &str, options: &[(String, String)], delete: &[String]) -> Result<(), ConfigError> {
        let Some(current) = self.storages.get(id) else {
            return Err(ConfigError::new("storage", format!("storage '{id}' does not exist")));
        };
        let mut section = current.clone();
        for (key, raw) in options {
            if FIXED_KEYS.contains(&key.as_str()) {
                return Err(ConfigError::new(key, "is fixed at creation and cannot be changed"));
            }
            section.insert(key.clone(), SCHEMA.parse_cli(key, raw)?);
        }
        for key in delete {
            SCHEMA.user_key(key)?;
            if FIXED_KEYS.contains(&key.as_str()) {
                return Err(ConfigError::new(key, "is fixed at creation and cannot be deleted"));
            }
            if options.iter().any(|(k, _)| k == key) {
                return Err(ConfigError::new(key, "cannot be set and deleted at once"));
            }
            section.remove(key);
        }
        StorageConfig::from_section(id, &section)?;
        self.storages.insert(id.to_owned(), section);
        Ok(())
    }
}

fn line_of_offset(text: &str, span: Option<std::ops::Range<usize>>) -> Option<usize> {
    span.map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
}

/// `<storage>:<volname>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VolumeId {
    pub storage: String,
    pub name: String,
}

impl VolumeId {
    pub fn new(storage: &str, name: &str) -> VolumeId {
        VolumeId { storage: storage.to_owned(), name: name.to_owned() }
    }
}

impl fmt::Display for VolumeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.storage, self.name)
    }
}

impl FromStr for VolumeId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let Some((storage, name)) = s.split_once(':') else {
            return Err(format!("invalid volume id '{}': expected STORAGE:VOLUME", s.escape_debug()));
        };
        check::storage_id(storage)?;
        check_volname_chars(name)?;
        Ok(VolumeId::new(storage, name))
    }
}

/// Refuses what could leave a storage or reach a shell: absolute paths, `.`/`..` components,
/// empty components, NUL, whitespace, and anything beyond `[A-Za-z0-9._+@-]` and `/`.
pub fn check_volname_chars(name: &str) -> Result<(), String> {
    let bad = || format!("invalid volume name '{}'", name.escape_debug());
    if name.is_empty() || name.len() > 255 {
        return Err(format!("{}: must be 1 to 255 characters", bad()));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || "._+@-/".contains(*c))) {
        return Err(format!("{}: character '{}' is not allowed", bad(), c.escape_debug()));
    }
    if name.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(format!("{}: empty, '.' and '..' path components are not allowed", bad()));
    }
    if name.starts_with('-') || name.split('/').any(|c| c.starts_with('-')) {
        return Err(format!("{}: components must not start with '-'", bad()));
    }
    Ok(())
}

/// The name of a guest image: `(vm|base|subvol)-<vmid>-<name>[.<format>]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageName {
    pub prefix: ImagePrefix,
    pub vmid: Vmid,
    /// `disk-0`, `state-snap1`, `cloudinit`, or any name following the rules.
    pub name: String,
    /// Present in file-style names (`.qcow2`); flat names leave it to the backend.
    pub format: Option<Format>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ImagePrefix {
    /// A VM disk or a container image file.
    Vm,
    /// A template's disk, the base of linked clones.
    Base,
    /// A container directory or subvolume.
    Subvol,
}

impl ImagePrefix {
    pub fn as_str(self) -> &'static str {
        match self {
            ImagePrefix::Vm => "vm",
            ImagePrefix::Base => "base",
            ImagePrefix::Subvol => "subvol",
        }
    }
}

impl ImageName {
    pub fn disk(prefix: ImagePrefix, vmid: Vmid, index: u32, format: Option<Format>) -> ImageName {
        ImageName { prefix, vmid, name: format!("disk-{index}"), format }
    }

    /// Parses `vm-100-disk-0.qcow2` (`with_format`) or `vm-100-disk-0`.
    pub fn parse(s: &str, with_format: bool) -> Result<ImageName, String> {
        let bad = |why: &str| format!("invalid image name '{}': {why}", s.escape_debug());
        check_volname_chars(s)?;
        if s.contains('/') {
            return Err(bad("must not contain '/'"));
        }
        let (stem, format) = if with_format {
            let Some((stem, ext)) = s.rsplit_once('.') else {
                return Err(bad("expected a format extension (.raw, .qcow2, .vmdk or .subvol)"));
            };
            (stem, Some(ext.parse::<Format>().map_err(|m| bad(&m))?))
        } else {
            (s, None)
        };
        let (prefix, rest) = stem.split_once('-').ok_or_else(|| bad("expected vm-<vmid>-<name>"))?;
        let prefix = match prefix {
            "vm" => ImagePrefix::Vm,
            "base" => ImagePrefix::Base,
            "subvol" => ImagePrefix::Subvol,
            _ => return Err(bad("must start with vm-, base- or subvol-")),
        };
        let (vmid, name) = rest.split_once('-').ok_or_else(|| bad("expected <prefix>-<vmid>-<name>"))?;
        let vmid: Vmid = vmid.parse().map_err(|_| bad("the part after the prefix must be a VMID"))?;
        if name.is_empty() || name.contains('.') && !with_format {
            return Err(bad("expected a name after the VMID"));
        }
        match (prefix, format) {
            (ImagePrefix::Subvol, Some(f)) if f != Format::Subvol => {
                return Err(bad("subvol- images must have the .subvol format"));
            }
            (ImagePrefix::Vm | ImagePrefix::Base, Some(Format::Subvol)) => {
                return Err(bad("only subvol- names may have the .subvol format"));
            }
            _ => {}
        }
        Ok(ImageName { prefix, vmid, name: name.to_owned(), format })
    }

    /// The index of `disk-N` names.
    pub fn disk_index(&self) -> Option<u32> {
        self.name.strip_prefix("disk-").and_then(|n| n.parse().ok())
    }

    pub fn with_prefix(&self, prefix: ImagePrefix) -> ImageName {
        ImageName { prefix, ..self.clone() }
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.prefix.as_str(), self.vmid, self.name)?;
        if let Some(format) = self.format {
            write!(f, ".{format}")?;
        }
        Ok(())
    }
}

/// A parsed volume name: what it is and where it lives inside the storage.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VolName {
    /// A guest image, optionally a linked clone of a base image.
    Image { image: ImageName, base: Option<ImageName> },
    /// A file of content iso, vztmpl, backup, snippets or import.
    File { content: Content, file: String },
}

impl VolName {
    /// Parses a volume name of a storage of `storage_type`.
    ///
    /// File-style (dir): `100/vm-100-disk-0.qcow2`, `100/base-100-disk-0.qcow2/101/vm-101-disk-0.qcow2`.
    /// Flat (btrfs): `vm-100-disk-0`, `base-100-disk-0/vm-101-disk-0`.
    /// Both: `iso/x.iso`, `vztmpl/x.tar.zst`, `backup/vzdump-…`, `snippets/x`, `import/x.ova`.
    pub fn parse(storage_type: StorageType, name: &str) -> Result<VolName, String> {
        check_volname_chars(name)?;
        if let Some((head, file)) = name.split_once('/') {
            if let Some(content) = Content::ALL.into_iter().find(|c| c.volname_prefix() == Some(head)) {
                check_file_name(content, file)?;
                return Ok(VolName::File { content, file: file.to_owned() });
            }
        }
        let parts: Vec<&str> = name.split('/').collect();
        let with_format = storage_type.file_style_images();
        let owned = |dir: &str, image: &str| -> Result<ImageName, String> {
            let image = ImageName::parse(image, true)?;
            if dir != image.vmid.to_string() {
                return Err(format!("invalid volume name '{name}': '{image}' belongs in directory {}/", image.vmid));
            }
            Ok(image)
        };
        let (image, base) = match (with_format, parts.as_slice()) {
            (true, [dir, image]) => (owned(dir, image)?, None),
            (true, [base_dir, base, dir, image]) => (owned(dir, image)?, Some(owned(base_dir, base)?)),
            (false, [image]) => (ImageName::parse(image, false)?, None),
            (false, [base, image]) => (ImageName::parse(image, false)?, Some(ImageName::parse(base, false)?)),
            _ => {
                let expected = if with_format {
                    "<vmid>/<image>.<format>, iso/<file>, vztmpl/<file>, backup/<file>, snippets/<file> or import/<file>"
                } else {
                    "vm-<vmid>-<name>, base-<vmid>-<name>/vm-<vmid>-<name>, iso/<file>, vztmpl/<file>, backup/<file>, snippets/<file> or import/<file>"
                };
                return Err(format!("invalid volume name '{name}': expected {expected}"));
            }
        };
        if let Some(b) = &base {
            if b.prefix != ImagePrefix::Base {
                return Err(format!("invalid volume name '{name}': a linked clone's base must be a base- image"));
            }
        }
        Ok(VolName::Image { image, base })
    }

    /// The guest that owns the volume: the VMID in an image name, or in a backup's name.
    pub fn owner(&self) -> Option<Vmid> {
        match self {
            VolName::Image { image, .. } => Some(image.vmid),
            VolName::File { content: Content::Backup, file } => parse_backup_name(file).map(|b| b.vmid),
            VolName::File { .. } => None,
        }
    }

    /// The content types the volume may be used as.
    pub fn content(&self) -> &'static [Content] {
        match self {
            VolName::Image { image, .. } if image.prefix == ImagePrefix::Subvol => &[Content::Rootdir],
            VolName::Image { image, .. } if image.format == Some(Format::Subvol) => &[Content::Rootdir],
            VolName::Image { .. } => &[Content::Images, Content::Rootdir],
            VolName::File { content: Content::Iso, .. } => &[Content::Iso],
            VolName::File { content: Content::Vztmpl, .. } => &[Content::Vztmpl],
            VolName::File { content: Content::Backup, .. } => &[Content::Backup],
            VolName::File { content: Content::Snippets, .. } => &[Content::Snippets],
            VolName::File { content: Content::Import, .. } => &[Content::Import],
            VolName::File { .. } => &[],
        }
    }

    /// Prints the name in the style of `storage_type`.
    pub fn render(&self, storage_type: StorageType) -> String {
        match self {
            VolName::File { content, file } => format!("{}/{file}", content.as_str()),
            VolName::Image { image, base } if storage_type.file_style_images() => match base {
                Some(b) => format!("{}/{b}/{}/{image}", b.vmid, image.vmid),
                None => format!("{}/{image}", image.vmid),
            },
            VolName::Image { image, base } => match base {
                Some(b) => format!("{b}/{image}"),
                None => image.to_string(),
            },
        }
    }
}

/// File names of non-image content: the extensions Proxmox accepts for each content type.
pub fn check_file_name(content: Content, file: &str) -> Result<(), String> {
    check_volname_chars(file)?;
    if file.contains('/') && content != Content::Import {
        return Err(format!("invalid {content} file name '{file}': must not contain '/'"));
    }
    let ok = match content {
        Content::Iso => file.ends_with(".iso") || file.ends_with(".img"),
        Content::Vztmpl => {
            [".tar", ".tar.gz", ".tgz", ".tar.xz", ".tar.zst", ".tar.bz2"].iter().any(|e| file.ends_with(e))
        }
        Content::Backup => file.starts_with("vzdump-"),
        Content::Snippets => true,
        Content::Import => [".ova", ".ovf", ".qcow2", ".raw", ".vmdk", ".img"].iter().any(|e| file.ends_with(e)),
        Content::Images | Content::Rootdir => false,
    };
    if ok {
        return Ok(());
    }
    let expected = match content {
        Content::Iso => "a name ending in .iso or .img",
        Content::Vztmpl => "a name ending in .tar, .tar.gz, .tgz, .tar.xz, .tar.zst or .tar.bz2",
        Content::Backup => "a name starting with vzdump-",
        Content::Import => "a name ending in .ova, .ovf, .qcow2, .raw, .vmdk or .img",
        _ => "an image name",
    };
    Err(format!("invalid {content} file name '{file}': expected {expected}"))
}

/// A standard backup archive name: `vzdump-<qemu|lxc>-<vmid>-YYYY_MM_DD-HH_MM_SS.<ext>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupName {
    pub guest_type: String,
    pub vmid: Vmid,
    /// `YYYY_MM_DD-HH_MM_SS`.
    pub time: String,
}

pub fn parse_backup_name(file: &str) -> Option<BackupName> {
    let rest = file.strip_prefix("vzdump-")?;
    let (guest_type, rest) = rest.split_once('-')?;
    if !["qemu", "lxc", "openvz"].contains(&guest_type) {
        return None;
    }
    let (vmid, rest) = rest.split_once('-')?;
    let vmid: Vmid = vmid.parse().ok()?;
    let time = rest.get(..19)?;
    let shape = time.bytes().enumerate().all(|(i, b)| match i {
        4 | 7 | 13 | 16 => b == b'_',
        10 => b == b'-',
        _ => b.is_ascii_digit(),
    });
    shape.then(|| BackupName { guest_type: guest_type.to_owned(), vmid, time: time.to_owned() })
}

/// Whether a file of a storage's backup directory is a backup archive, as Proxmox's
/// `vzdump-(lxc|openvz|qemu)-<vmid>-….(tgz|tar|vma)[.gz|.lzo|.zst|.bz2|.xz]` rule says: the task
/// log, notes and `.protected` markers beside an archive and partial `.dat` files are not.
pub fn is_backup_archive(file: &str) -> bool {
    let Some(rest) = file.strip_prefix("vzdump-") else { return false };
    let Some((guest_type, rest)) = rest.split_once('-') else { return false };
    let Some((vmid, rest)) = rest.split_once('-') else { return false };
    if !["qemu", "lxc", "openvz"].contains(&guest_type) || vmid.parse::<Vmid>().is_err() {
        return false;
    }
    let stem = [".gz", ".lzo", ".zst", ".bz2", ".xz"].iter().find_map(|c| rest.strip_suffix(c)).unwrap_or(rest);
    let archive = |ext: &str| stem.strip_suffix(ext).is_some_and(|name| !name.is_empty());
    archive(".vma") || archive(".tar") || (stem == rest && archive(".tgz"))
}

/// The lowest free `disk-N` among `taken` names of one guest (0..=1023).
pub fn lowest_free_disk(taken: impl IntoIterator<Item = u32>) -> Option<u32> {
    let taken: std::collections::BTreeSet<u32> = taken.into_iter().collect();
    (0..1024).find(|n| !taken.contains(n))
}

/// How import and export streams are framed, as pvesm names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamFormat {
    /// u64 little-endian size, then the raw bytes.
    RawSize,
    /// u64 little-endian size, then the qcow2 file (internal snapshots included).
    Qcow2Size,
    /// u64 little-endian size, then the vmdk file.
    VmdkSize,
    /// u64 little-endian size of the tree, then a tar stream (numeric owners, xattrs, ACLs).
    TarSize,
    /// btrfs send streams of a subvolume and its snapshots, each framed (btrfs only).
    Btrfs,
}

impl StreamFormat {
    pub const ALL: [StreamFormat; 5] = [
        StreamFormat::RawSize,
        StreamFormat::Qcow2Size,
        StreamFormat::VmdkSize,
        StreamFormat::TarSize,
        StreamFormat::Btrfs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StreamFormat::RawSize => "raw+size",
            StreamFormat::Qcow2Size => "qcow2+size",
            StreamFormat::VmdkSize => "vmdk+size",
            StreamFormat::TarSize => "tar+size",
            StreamFormat::Btrfs => "btrfs",
        }
    }

    /// The volume format a `*+size` stream carries.
    pub fn volume_format(self) -> Option<Format> {
        match self {
            StreamFormat::RawSize => Some(Format::Raw),
            StreamFormat::Qcow2Size => Some(Format::Qcow2),
            StreamFormat::VmdkSize => Some(Format::Vmdk),
            StreamFormat::TarSize => Some(Format::Subvol),
            StreamFormat::Btrfs => None,
        }
    }
}

impl fmt::Display for StreamFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StreamFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        StreamFormat::ALL.into_iter().find(|f| f.as_str() == s).ok_or_else(|| {
            format!("unknown stream format '{s}' (allowed: {})", StreamFormat::ALL.map(StreamFormat::as_str).join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vmid(n: u32) -> Vmid {
        n.to_string().parse().unwrap()
    }

    #[test]
    fn volume_ids_as_proxmox_writes_them() {
        let dir = StorageType::Dir;
        let v = VolName::parse(dir, "100/vm-100-disk-0.qcow2").unwrap();
        assert_eq!(v.owner(), Some(vmid(100)));
        assert_eq!(v.render(dir), "100/vm-100-disk-0.qcow2");
        let linked = VolName::parse(dir, "100/base-100-disk-0.qcow2/101/vm-101-disk-0.qcow2").unwrap();
        assert_eq!(linked.owner(), Some(vmid(101)));
        assert_eq!(linked.render(dir), "100/base-100-disk-0.qcow2/101/vm-101-disk-0.qcow2");
        let iso = VolName::parse(dir, "iso/debian-12.iso").unwrap();
        assert_eq!(iso, VolName::File { content: Content::Iso, file: "debian-12.iso".into() });
        let t = VolName::parse(dir, "vztmpl/alpine-3.20-default_20240908_amd64.tar.xz").unwrap();
        assert_eq!(t.content(), &[Content::Vztmpl]);
        let b = VolName::parse(dir, "backup/vzdump-qemu-100-2024_01_02-03_04_05.vma.zst").unwrap();
        assert_eq!(b.owner(), Some(vmid(100)));

        let btrfs = StorageType::Btrfs;
        let v = VolName::parse(btrfs, "vm-100-disk-0").unwrap();
        assert_eq!(v.render(btrfs), "vm-100-disk-0");
        let linked = VolName::parse(btrfs, "base-100-disk-0/vm-101-disk-1").unwrap();
        assert_eq!(linked.owner(), Some(vmid(101)));
        assert_eq!(linked.render(dir), "100/base-100-disk-0/101/vm-101-disk-1");
        assert!(VolName::parse(btrfs, "100/vm-100-disk-0.raw").is_err());

        let id: VolumeId = "local:100/vm-100-disk-0.qcow2".parse().unwrap();
        assert_eq!(id.storage, "local");
        assert_eq!(id.to_string(), "local:100/vm-100-disk-0.qcow2");
    }

    #[test]
    fn hostile_names_are_refused() {
        for bad in [
            "../etc/passwd",
            "100/../../x.raw",
            "/etc/passwd",
            "iso/a\0b.iso",
            "iso/$(reboot).iso",
            "iso/a b.iso",
            "iso/a;b.iso",
            "iso/`x`.iso",
            "100//vm-100-disk-0.raw",
            "100/vm-101-disk-0.raw",
            "100/vm-100-disk-0",
            "100/subvol-100-disk-0.raw",
            "iso/-rf.iso",
            "iso/x.txt",
            "",
        ] {
            assert!(VolName::parse(StorageType::Dir, bad).is_err(), "{bad:?} accepted");
        }
        assert!("local:iso/..".parse::<VolumeId>().is_err());
        assert!("l:iso/x.iso".parse::<VolumeId>().is_err());
    }

    #[test]
    fn storage_table_round_trip_and_errors() {
        let mut table = StorageTable::fresh("/var/lib/hearth");
        table
            .add(
                "fast",
                StorageType::Btrfs,
                &[("path".into(), "/mnt/fast".into()), ("content".into(), "rootdir,images".into())],
            )
            .unwrap();
        let text = table.to_toml();
        assert_eq!(StorageTable::parse(&text).unwrap(), table);
        let fast = table.get("fast").unwrap();
        assert_eq!(fast.content, vec![Content::Images, Content::Rootdir]);
        assert_eq!(fast.default_image_format(), Format::Raw);
        assert_eq!(table.get("local").unwrap().default_image_format(), Format::Qcow2);

        let e = table.add("xx", StorageType::Dir, &[("content".into(), "images".into())]).unwrap_err();
        assert_eq!(e.key, "path");
        let e = table
            .add("yy", StorageType::Dir, &[("path".into(), "/y".into()), ("nocow".into(), "1".into())])
            .unwrap_err();
        assert_eq!(e.to_string(), "nocow: is not a key of dir storages");
        let e = table
            .add("zz", StorageType::Dir, &[("path".into(), "/z".into()), ("content".into(), "isos".into())])
            .unwrap_err();
        assert!(e.to_string().contains("unknown content type 'isos'"), "{e}");
        let e = table.set("fast", &[("path".into(), "/other".into())], &[]).unwrap_err();
        assert_eq!(e.key, "path");
        table.set("fast", &[("disable".into(), "1".into())], &[]).unwrap();
        assert!(table.get("fast").unwrap().disable);

        let e = StorageTable::parse("[a1]\ntype = \"dir\"\npath = \"/x\"\n\n[b2]\ntype = \"zfs\"\npath = \"/y\"\n")
            .unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
    }

    #[test]
    fn backup_names_and_free_disks() {
        let b = parse_backup_name("vzdump-lxc-101-2024_09_08-12_00_01.tar.zst").unwrap();
        assert_eq!((b.guest_type.as_str(), b.vmid, b.time.as_str()), ("lxc", vmid(101), "2024_09_08-12_00_01"));
        assert!(parse_backup_name("vzdump-lxc-101-renamed.tar").is_none());
        for archive in [
            "vzdump-qemu-100-2024_01_02-03_04_05.vma.zst",
            "vzdump-qemu-100-2024_01_02-03_04_05.vma",
            "vzdump-lxc-101-2024_01_02-03_04_05.tar.gz",
            "vzdump-lxc-101-2024_01_02-03_04_05.tgz",
            "vzdump-openvz-102-renamed.tar",
        ] {
            assert!(is_backup_archive(archive), "{archive}");
        }
        for side in [
            "vzdump-qemu-100-2024_01_02-03_04_05.log",
            "vzdump-qemu-100-2024_01_02-03_04_05.vma.zst.notes",
            "vzdump-qemu-100-2024_01_02-03_04_05.vma.zst.protected",
            "vzdump-qemu-100-2024_01_02-03_04_05.vma.zst.dat",
            "vzdump-qemu-100-.vma",
            "vzdump-qemu-100-x.tgz.zst",
            "vzdump-kvm-100-2024_01_02-03_04_05.vma",
            "other.vma",
        ] {
            assert!(!is_backup_archive(side), "{side}");
        }
        assert_eq!(lowest_free_disk([0, 1, 3]), Some(2));
        assert_eq!(lowest_free_disk([]), Some(0));
    }
}
