//! Hearth's backups: a deduplicating chunk store in the style of Proxmox Backup Server, and
//! vzdump-style single-file archives for file storages.
//!
//! The chunk store ([`ChunkStore`]) keeps every chunk once, under `.chunks/XXXX/<sha256 hex>`,
//! in the [`blob`] container (CRC32, zstd level 1 when it helps, optional AES-256-GCM). A backup
//! ([`BackupWriter`]) is a snapshot directory `<vm|ct>/<id>/<RFC 3339 time>/` holding fixed
//! indexes (`*.img.fidx`, 4 MiB slots) for disk images, dynamic indexes (`*.didx`, FastCDC) for
//! streams such as a container's tar stream, small blobs (guest configuration, catalog) and
//! `index.json`, the manifest, written last: a snapshot without it is incomplete.
//!
//! Operations: [`snapshot::list_snapshots`], [`restore`] (images sparse, streams as
//! `Read + Seek`), [`verify`], [`prune`], [`gc`], file-level [`tree`] listing and extraction,
//! and [`vzdump`] archives (`.vma.zst`, `.tar.zst`). The on-disk formats are described in
//! module docs of [`blob`], [`index`], [`snapshot`], [`tree`] and [`vzdump`].

pub mod blob;
pub mod chunk_store;
pub mod error;
pub mod gc;
pub mod index;
pub mod key;
pub mod meter;
pub mod prune;
pub mod restore;
pub mod snapshot;
pub mod time;
pub mod tree;
pub mod verify;
pub mod vzdump;
pub mod writer;

pub use chunk_store::ChunkStore;
pub use error::Error;
pub use key::{CryptConfig, KeyFile};
pub use snapshot::{BackupType, SnapshotRef};
pub use writer::{BackupStats, BackupWriter};

/// A 32-byte chunk digest.
pub type Digest = [u8; 32];

/// Lowercase hex of bytes, and its parser: hearth-core's one copy.
pub use hearth_core::hex::{decode as parse_hex, encode as hex};
