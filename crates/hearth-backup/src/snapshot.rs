//! Snapshots: `<vm|ct>/<id>/<RFC 3339 time>/` directories, their manifest (`index.json`, the
//! commit record written last), the `protected` marker, notes, the verify state, listing and
//! removal under the snapshot's lock.

use std::fmt;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::ChunkStore;
use crate::error::{Error, IoContext};
use crate::time::{parse_rfc3339, rfc3339};

pub const MANIFEST: &str = "index.json";
pub const PROTECTED: &str = "protected";
pub const NOTES: &str = "notes";
pub const VERIFY_STATE: &str = "verify.json";

/// The kind of guest a backup group belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupType {
    Vm,
    Ct,
}

impl BackupType {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupType::Vm => "vm",
            BackupType::Ct => "ct",
        }
    }

    pub fn parse(s: &str) -> Option<BackupType> {
        match s {
            "vm" => Some(BackupType::Vm),
            "ct" => Some(BackupType::Ct),
            _ => None,
        }
    }
}

/// One snapshot: group (type, id) and time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapshotRef {
    pub backup_type: BackupType,
    pub id: String,
    pub time: i64,
}

impl fmt::Display for SnapshotRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.backup_type.as_str(), self.id, rfc3339(self.time))
    }
}

impl SnapshotRef {
    pub fn new(backup_type: BackupType, id: &str, time: i64) -> SnapshotRef {
        SnapshotRef { backup_type, id: id.to_owned(), time }
    }

    pub fn group_path(&self, store: &ChunkStore) -> PathBuf {
        group_path(store, self.backup_type, &self.id)
    }

    pub fn path(&self, store: &ChunkStore) -> PathBuf {
        self.group_path(store).join(rfc3339(self.time))
    }
}

pub(crate) fn group_path(store: &ChunkStore, backup_type: BackupType, id: &str) -> PathBuf {
    store.root().join(backup_type.as_str()).join(id)
}

/// Checks a backup id (a directory name: VMID or any simple name).
pub(crate) fn check_id(id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && !id.starts_with(['.', '-'])
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok { Ok(()) } else { Err(Error::Invalid(format!("backup id {id:?} must be 1-64 of [A-Za-z0-9._-]"))) }
}

/// Checks an archive name inside a snapshot.
pub(crate) fn check_archive_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name != MANIFEST;
    if ok { Ok(()) } else { Err(Error::Invalid(format!("archive name {name:?} must be 1-128 of [A-Za-z0-9._-]"))) }
}

/// One file listed in a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub filename: String,
    pub size: u64,
    /// SHA-256 of the whole file, hex.
    pub csum: String,
    #[serde(rename = "crypt-mode")]
    pub crypt_mode: CryptMode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CryptMode {
    None,
    Encrypt,
}

/// `index.json`: what a finished snapshot holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "backup-type")]
    pub backup_type: BackupType,
    #[serde(rename = "backup-id")]
    pub backup_id: String,
    #[serde(rename = "backup-time")]
    pub backup_time: i64,
    pub files: Vec<ManifestFile>,
    /// Fingerprint of the key the chunks were encrypted with.
    #[serde(rename = "key-fingerprint", default, skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
}

impl Manifest {
    pub fn file(&self, name: &str) -> Option<&ManifestFile> {
        self.files.iter().find(|f| f.filename == name)
    }
}

/// The result of the last verification of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyState {
    pub ok: bool,
    pub time: i64,
    #[serde(default)]
    pub bad_chunks: usize,
}

/// A snapshot as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub snapshot: SnapshotRef,
    /// `None` for an incomplete snapshot (no manifest).
    pub manifest: Option<Manifest>,
    pub protected: bool,
    pub verify: Option<VerifyState>,
}

impl SnapshotInfo {
    pub fn complete(&self) -> bool {
        self.manifest.is_some()
    }
}

pub fn load_manifest(store: &ChunkStore, snap: &SnapshotRef) -> Result<Manifest, Error> {
    let path = snap.path(store).join(MANIFEST);
    let bytes = fs::read(&path).at(&path)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(&path, format!("bad manifest: {e}")))
}

/// Writes `bytes` to `dir/name` through a temporary name and a rename.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), Error> {
    let temp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    fs::write(&temp, bytes).and_then(|()| File::open(&temp)?.sync_all()).at(&temp)?;
    fs::rename(&temp, &path).at(&path)
}

/// The groups (type, id) in the store, sorted.
pub fn list_groups(store: &ChunkStore) -> Result<Vec<(BackupType, String)>, Error> {
    let mut groups = Vec::new();
    for backup_type in [BackupType::Vm, BackupType::Ct] {
        let dir = store.root().join(backup_type.as_str());
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(&dir, e)),
        };
        for entry in entries {
            let name = entry.at(&dir)?.file_name().to_string_lossy().into_owned();
            if check_id(&name).is_ok() {
                groups.push((backup_type, name));
            }
        }
    }
    groups.sort();
    Ok(groups)
}

/// Every snapshot of a group, oldest first, complete or not.
pub fn list_snapshots(store: &ChunkStore, backup_type: BackupType, id: &str) -> Result<Vec<SnapshotInfo>, Error> {
    check_id(id)?;
    let dir = group_path(store, backup_type, id);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let name = entry.at(&dir)?.file_name().to_string_lossy().into_owned();
        let Some(time) = parse_rfc3339(&name) else { continue };
        let snapshot = SnapshotRef::new(backup_type, id, time);
        let path = snapshot.path(store);
        let manifest = load_manifest(store, &snapshot).ok();
        let verify = fs::read(path.join(VERIFY_STATE)).ok().and_then(|b| serde_json::from_slice(&b).ok());
        out.push(SnapshotInfo { protected: path.join(PROTECTED).exists(), snapshot, manifest, verify });
    }
    out.sort_by_key(|s| s.snapshot.time);
    Ok(out)
}

/// The newest complete snapshot of a group.
pub fn last_complete(store: &ChunkStore, backup_type: BackupType, id: &str) -> Result<Option<SnapshotInfo>, Error> {
    Ok(list_snapshots(store, backup_type, id)?.into_iter().rev().find(SnapshotInfo::complete))
}

/// Marks or unmarks a snapshot as protected (never pruned or removed).
pub fn set_protected(store: &ChunkStore, snap: &SnapshotRef, protected: bool) -> Result<(), Error> {
    let path = snap.path(store).join(PROTECTED);
    if protected {
        fs::write(&path, b"").at(&path)
    } else {
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&path, e)),
            _ => Ok(()),
        }
    }
}

pub fn set_notes(store: &ChunkStore, snap: &SnapshotRef, notes: &str) -> Result<(), Error> {
    write_atomic(&snap.path(store), NOTES, notes.as_bytes())
}

pub fn notes(store: &ChunkStore, snap: &SnapshotRef) -> Result<Option<String>, Error> {
    let path = snap.path(store).join(NOTES);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// Locks a snapshot directory: exclusive for the writer creating it and for removal, shared
/// for a writer using it as its base. Non-blocking: a held lock is [`Error::Busy`].
pub(crate) fn lock_dir(path: &Path, exclusive: bool) -> Result<Flock<File>, Error> {
    let dir = File::open(path).at(path)?;
    let arg = if exclusive { FlockArg::LockExclusiveNonblock } else { FlockArg::LockSharedNonblock };
    Flock::lock(dir, arg).map_err(|_| Error::Busy { what: format!("snapshot {}", path.display()) })
}

/// Removes a snapshot directory unless it is protected or in use. Chunks stay until GC.
pub fn remove_snapshot(store: &ChunkStore, snap: &SnapshotRef) -> Result<(), Error> {
    let path = snap.path(store);
    if path.join(PROTECTED).exists() {
        return Err(Error::Invalid(format!("snapshot {snap} is protected")));
    }
    let _lock = lock_dir(&path, true)?;
    fs::remove_dir_all(&path).at(&path)
}
