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

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Parses lowercase or uppercase hex into exactly `N` bytes.
pub fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = text.as_bytes();
    if bytes.len() != 2 * N {
        return None;
    }
    let nibble = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}
