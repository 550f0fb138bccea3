//! Fixed (`.fidx`) and dynamic (`.didx`) index files.
//!
//! Both start with a 4096-byte header, little endian: `magic (8) | uuid (16) | ctime (i64) |
//! checksum (32)`, then for fixed indexes `image size (u64) | chunk size (u64)`, the rest zero.
//! A fixed index continues with one 32-byte digest per chunk (chunk *i* covers
//! `[i·cs, (i+1)·cs)`); its checksum is SHA-256 over the digests. A dynamic index continues with
//! `(end offset u64, digest)` pairs; its checksum is SHA-256 over those 40-byte entries. The
//! magics are SHA-256 prefixes of `hearth fixed index v1` and `hearth dynamic index v1`.

use std::fs;
use std::io::Write;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::Digest;
use crate::error::{Error, IoContext};

pub const FIXED_MAGIC: [u8; 8] = [0x38, 0x23, 0x0f, 0xf4, 0xe8, 0xf1, 0xc7, 0x3d];
pub const DYNAMIC_MAGIC: [u8; 8] = [0xe1, 0x05, 0x48, 0x31, 0xd7, 0x90, 0xdc, 0x04];
const HEADER: usize = 4096;

/// The fixed chunk size for images: 4 MiB.
pub const FIXED_CHUNK_SIZE: u64 = 4 << 20;

/// A fixed index: an image of `size` bytes in `chunk_size` slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedIndex {
    pub ctime: i64,
    pub size: u64,
    pub chunk_size: u64,
    pub digests: Vec<Digest>,
}

/// A dynamic index: chunk end offsets and digests of a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DynamicIndex {
    pub ctime: i64,
    pub entries: Vec<(u64, Digest)>,
}

fn header(magic: [u8; 8], ctime: i64, csum: &Digest) -> Vec<u8> {
    let mut h = vec![0u8; HEADER];
    h[..8].copy_from_slice(&magic);
    let _ = getrandom::fill(&mut h[8..24]);
    h[24..32].copy_from_slice(&ctime.to_le_bytes());
    h[32..64].copy_from_slice(csum);
    h
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut file = fs::File::create(path).at(path)?;
    file.write_all(bytes).at(path)
}

fn read_header(path: &Path, bytes: &[u8], magic: [u8; 8]) -> Result<(i64, Digest), Error> {
    if bytes.len() < HEADER || bytes[..8] != magic {
        return Err(Error::corrupt(path, "not an index file of this kind"));
    }
    let ctime = i64::from_le_bytes(bytes[24..32].try_into().expect("8 bytes"));
    Ok((ctime, bytes[32..64].try_into().expect("32 bytes")))
}

impl FixedIndex {
    pub fn chunk_count(size: u64, chunk_size: u64) -> usize {
        size.div_ceil(chunk_size) as usize
    }

    /// The byte range of slot `i`.
    pub fn slot_range(&self, i: usize) -> (u64, u64) {
        let start = i as u64 * self.chunk_size;
        (start, (start + self.chunk_size).min(self.size))
    }

    pub fn checksum(&self) -> Digest {
        let mut h = Sha256::new();
        for d in &self.digests {
            h.update(d);
        }
        h.finalize().into()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = header(FIXED_MAGIC, self.ctime, &self.checksum());
        out[64..72].copy_from_slice(&self.size.to_le_bytes());
        out[72..80].copy_from_slice(&self.chunk_size.to_le_bytes());
        out.reserve(self.digests.len() * 32);
        for d in &self.digests {
            out.extend_from_slice(d);
        }
        out
    }

    pub fn write(&self, path: &Path) -> Result<(), Error> {
        write_file(path, &self.to_bytes())
    }

    pub fn load(path: &Path) -> Result<FixedIndex, Error> {
        let bytes = fs::read(path).at(path)?;
        let (ctime, csum) = read_header(path, &bytes, FIXED_MAGIC)?;
        let size = u64::from_le_bytes(bytes[64..72].try_into().expect("8 bytes"));
        let chunk_size = u64::from_le_bytes(bytes[72..80].try_into().expect("8 bytes"));
        if chunk_size == 0 || !(bytes.len() - HEADER).is_multiple_of(32) {
            return Err(Error::corrupt(path, "bad chunk size or truncated digest list"));
        }
        let digests: Vec<Digest> = bytes[HEADER..].chunks_exact(32).map(|c| c.try_into().expect("32 bytes")).collect();
        if digests.len() != FixedIndex::chunk_count(size, chunk_size) {
            return Err(Error::corrupt(path, "digest count does not match the image size"));
        }
        let index = FixedIndex { ctime, size, chunk_size, digests };
        if index.checksum() != csum {
            return Err(Error::corrupt(path, "index checksum mismatch"));
        }
        Ok(index)
    }
}

impl DynamicIndex {
    pub fn size(&self) -> u64 {
        self.entries.last().map_or(0, |(end, _)| *end)
    }

    /// The byte range of chunk `i`.
    pub fn chunk_range(&self, i: usize) -> (u64, u64) {
        let start = if i == 0 { 0 } else { self.entries[i - 1].0 };
        (start, self.entries[i].0)
    }

    /// The chunk holding byte `offset` (binary search over end offsets).
    pub fn chunk_at(&self, offset: u64) -> Option<usize> {
        let i = self.entries.partition_point(|(end, _)| *end <= offset);
        (i < self.entries.len()).then_some(i)
    }

    pub fn checksum(&self) -> Digest {
        let mut h = Sha256::new();
        for (end, d) in &self.entries {
            h.update(end.to_le_bytes());
            h.update(d);
        }
        h.finalize().into()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = header(DYNAMIC_MAGIC, self.ctime, &self.checksum());
        out.reserve(self.entries.len() * 40);
        for (end, d) in &self.entries {
            out.extend_from_slice(&end.to_le_bytes());
            out.extend_from_slice(d);
        }
        out
    }

    pub fn write(&self, path: &Path) -> Result<(), Error> {
        write_file(path, &self.to_bytes())
    }

    pub fn load(path: &Path) -> Result<DynamicIndex, Error> {
        let bytes = fs::read(path).at(path)?;
        let (ctime, csum) = read_header(path, &bytes, DYNAMIC_MAGIC)?;
        if !(bytes.len() - HEADER).is_multiple_of(40) {
            return Err(Error::corrupt(path, "truncated entry list"));
        }
        let entries: Vec<(u64, Digest)> = bytes[HEADER..]
            .chunks_exact(40)
            .map(|c| (u64::from_le_bytes(c[..8].try_into().expect("8 bytes")), c[8..].try_into().expect("32 bytes")))
            .collect();
        if entries.windows(2).any(|w| w[1].0 <= w[0].0) {
            return Err(Error::corrupt(path, "end offsets are not increasing"));
        }
        let index = DynamicIndex { ctime, entries };
        if index.checksum() != csum {
            return Err(Error::corrupt(path, "index checksum mismatch"));
        }
        Ok(index)
    }
}

/// Every digest an index file references, whatever its kind (by file name).
pub fn referenced_digests(path: &Path) -> Result<Vec<Digest>, Error> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if name.ends_with(".fidx") {
        Ok(FixedIndex::load(path)?.digests)
    } else {
        Ok(DynamicIndex::load(path)?.entries.into_iter().map(|(_, d)| d).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::plain_digest;

    #[test]
    fn magics_and_round_trips() {
        assert_eq!(plain_digest(b"hearth fixed index v1")[..8], FIXED_MAGIC);
        assert_eq!(plain_digest(b"hearth dynamic index v1")[..8], DYNAMIC_MAGIC);
        let dir = tempfile::tempdir().unwrap();
        let fixed =
            FixedIndex { ctime: 5, size: 9 << 20, chunk_size: 4 << 20, digests: vec![[1; 32], [2; 32], [3; 32]] };
        fixed.write(&dir.path().join("a.fidx")).unwrap();
        assert_eq!(FixedIndex::load(&dir.path().join("a.fidx")).unwrap(), fixed);
        assert_eq!(fixed.slot_range(2), (8 << 20, 9 << 20));
        let dynamic = DynamicIndex { ctime: 6, entries: vec![(10, [1; 32]), (25, [2; 32])] };
        dynamic.write(&dir.path().join("b.didx")).unwrap();
        assert_eq!(DynamicIndex::load(&dir.path().join("b.didx")).unwrap(), dynamic);
        assert_eq!((dynamic.chunk_at(9), dynamic.chunk_at(10), dynamic.chunk_at(25)), (Some(0), Some(1), None));
        let mut bytes = fs::read(dir.path().join("b.didx")).unwrap();
        bytes[HEADER + 9] ^= 1;
        fs::write(dir.path().join("c.didx"), bytes).unwrap();
        assert!(DynamicIndex::load(&dir.path().join("c.didx")).is_err());
    }
}
