//! The blob container every chunk and small file is stored in.
//!
//! Layout, little endian: `magic (8) | crc32 (4) | [nonce (12) | tag (16)] | payload`. The magic
//! says whether the payload is compressed (zstd level 1, kept only when smaller than the input)
//! and whether it is encrypted (AES-256-GCM over the possibly compressed data, random 96-bit
//! nonce per blob). The CRC32 covers the stored payload, so the store can be checked without
//! the key. The magics are the first 8 bytes of SHA-256 over `hearth blob v1 plain`, `… plain
//! zstd`, `… encrypted`, `… encrypted zstd` (checked by a test). A payload is at most 16 MiB
//! before compression.

use crate::error::Error;
use crate::key::CryptConfig;

pub const MAGIC_PLAIN: [u8; 8] = [0xa5, 0x56, 0x5e, 0x5f, 0xd8, 0xe9, 0x9b, 0x4c];
pub const MAGIC_PLAIN_ZSTD: [u8; 8] = [0xb2, 0xfa, 0x74, 0x4f, 0x15, 0x94, 0x0f, 0xd9];
pub const MAGIC_ENCRYPTED: [u8; 8] = [0x77, 0x45, 0x54, 0x24, 0x8e, 0x9e, 0x64, 0x1c];
pub const MAGIC_ENCRYPTED_ZSTD: [u8; 8] = [0x8b, 0x4d, 0xa1, 0x2c, 0xf9, 0x61, 0x86, 0x87];

/// The largest plain payload a blob may hold.
pub const MAX_BLOB_SIZE: usize = 16 << 20;

const PLAIN_HEADER: usize = 12;
const ENCRYPTED_HEADER: usize = 12 + 12 + 16;

/// How a blob is stored, from its magic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobKind {
    pub compressed: bool,
    pub encrypted: bool,
}

impl BlobKind {
    fn of(magic: &[u8]) -> Option<BlobKind> {
        let kind = |compressed, encrypted| Some(BlobKind { compressed, encrypted });
        match <[u8; 8]>::try_from(magic).ok()? {
            MAGIC_PLAIN => kind(false, false),
            MAGIC_PLAIN_ZSTD => kind(true, false),
            MAGIC_ENCRYPTED => kind(false, true),
            MAGIC_ENCRYPTED_ZSTD => kind(true, true),
            _ => None,
        }
    }

    fn magic(self) -> [u8; 8] {
        match (self.compressed, self.encrypted) {
            (false, false) => MAGIC_PLAIN,
            (true, false) => MAGIC_PLAIN_ZSTD,
            (false, true) => MAGIC_ENCRYPTED,
            (true, true) => MAGIC_ENCRYPTED_ZSTD,
        }
    }

    fn header_len(self) -> usize {
        if self.encrypted { ENCRYPTED_HEADER } else { PLAIN_HEADER }
    }
}

/// Encodes blobs, keeping one zstd context per thread of work.
pub struct BlobEncoder {
    compressor: zstd::bulk::Compressor<'static>,
}

impl std::fmt::Debug for BlobEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlobEncoder")
    }
}

impl BlobEncoder {
    pub fn new() -> BlobEncoder {
        BlobEncoder { compressor: zstd::bulk::Compressor::new(1).expect("zstd level 1 is valid") }
    }

    /// The stored form of `data`: compressed when that helps, encrypted when `crypt` is given.
    pub fn encode(&mut self, data: &[u8], crypt: Option<&CryptConfig>) -> Result<Vec<u8>, Error> {
        if data.len() > MAX_BLOB_SIZE {
            return Err(Error::Invalid(format!("blob of {} bytes exceeds {MAX_BLOB_SIZE}", data.len())));
        }
        let encrypted = crypt.is_some();
        let header = BlobKind { compressed: false, encrypted }.header_len();
        let mut out = vec![0u8; header + zstd::zstd_safe::compress_bound(data.len())];
        let compressed = match self.compressor.compress_to_buffer(data, &mut out[header..]) {
            Ok(n) if n < data.len() => {
                out.truncate(header + n);
                true
            }
            _ => {
                out.truncate(header);
                out.extend_from_slice(data);
                false
            }
        };
        let kind = BlobKind { compressed, encrypted };
        if let Some(crypt) = crypt {
            let (nonce, tag) = crypt.seal(&mut out[header..])?;
            out[12..24].copy_from_slice(&nonce);
            out[24..40].copy_from_slice(&tag);
        }
        let crc = crc32fast::hash(&out[header..]);
        out[..8].copy_from_slice(&kind.magic());
        out[8..12].copy_from_slice(&crc.to_le_bytes());
        Ok(out)
    }
}

impl Default for BlobEncoder {
    fn default() -> Self {
        BlobEncoder::new()
    }
}

/// Checks a stored blob's magic and CRC without decoding it; returns its kind.
pub fn check(stored: &[u8]) -> Result<BlobKind, String> {
    let kind = stored.get(..8).and_then(BlobKind::of).ok_or("not a blob (unknown magic)")?;
    if stored.len() < kind.header_len() {
        return Err("blob header truncated".into());
    }
    let crc = u32::from_le_bytes(stored[8..12].try_into().expect("4 bytes"));
    if crc32fast::hash(&stored[kind.header_len()..]) != crc {
        return Err("blob CRC mismatch".into());
    }
    Ok(kind)
}

/// Decodes a stored blob: checks the CRC, decrypts with `crypt` and decompresses.
pub fn decode(stored: &[u8], crypt: Option<&CryptConfig>) -> Result<Vec<u8>, Error> {
    let kind = check(stored).map_err(Error::Invalid)?;
    let header = kind.header_len();
    let mut payload;
    let plain: &[u8] = if kind.encrypted {
        let crypt = crypt.ok_or_else(|| Error::Crypto("blob is encrypted and no key was given".into()))?;
        let nonce: [u8; 12] = stored[12..24].try_into().expect("12 bytes");
        let tag: [u8; 16] = stored[24..40].try_into().expect("16 bytes");
        payload = stored[header..].to_vec();
        crypt.open(nonce, tag, &mut payload)?;
        &payload
    } else {
        &stored[header..]
    };
    if kind.compressed {
        // The frame header states the size (the encoder writes it): the output is allocated
        // once, and a frame that would grow past its stated size or 16 MiB is refused while
        // decoding, never after.
        let capacity = match zstd::zstd_safe::get_frame_content_size(plain) {
            Ok(Some(size)) if size <= MAX_BLOB_SIZE as u64 => size as usize,
            Ok(Some(_)) => return Err(Error::Invalid("blob decompresses beyond 16 MiB".into())),
            _ => MAX_BLOB_SIZE,
        };
        zstd::bulk::decompress(plain, capacity).map_err(|e| {
            Error::Invalid(if capacity == MAX_BLOB_SIZE {
                format!("zstd: {e} (a blob decompresses to at most 16 MiB)")
            } else {
                format!("zstd: {e}")
            })
        })
    } else {
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{KeyFile, plain_digest};

    #[test]
    fn magics_are_sha256_prefixes() {
        for (text, magic) in [
            ("hearth blob v1 plain", MAGIC_PLAIN),
            ("hearth blob v1 plain zstd", MAGIC_PLAIN_ZSTD),
            ("hearth blob v1 encrypted", MAGIC_ENCRYPTED),
            ("hearth blob v1 encrypted zstd", MAGIC_ENCRYPTED_ZSTD),
        ] {
            assert_eq!(plain_digest(text.as_bytes())[..8], magic, "{text}");
        }
    }

    #[test]
    fn round_trips_and_detects_damage() {
        let key = CryptConfig::new(&KeyFile::from_bytes([7; 32]));
        let other = CryptConfig::new(&KeyFile::from_bytes([8; 32]));
        let mut enc = BlobEncoder::new();
        let text = b"hello hello hello hello hello hello hello".repeat(100);
        let random: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        for data in [&text[..], &random[..], &[][..]] {
            for crypt in [None, Some(&key)] {
                let stored = enc.encode(data, crypt).unwrap();
                assert_eq!(decode(&stored, crypt).unwrap(), data);
                let mut bad = stored.clone();
                if bad.len() > 41 {
                    bad[41] ^= 1;
                    assert!(decode(&bad, crypt).is_err());
                }
            }
            let stored = enc.encode(data, Some(&key)).unwrap();
            assert!(decode(&stored, Some(&other)).is_err());
            assert!(decode(&stored, None).is_err());
        }
        assert!(check(&enc.encode(&text, None).unwrap()).unwrap().compressed);
    }

    /// A plain zstd blob around `frame`, as a crafted store file would hold it.
    fn zstd_blob(frame: &[u8]) -> Vec<u8> {
        let mut out = MAGIC_PLAIN_ZSTD.to_vec();
        out.extend_from_slice(&crc32fast::hash(frame).to_le_bytes());
        out.extend_from_slice(frame);
        out
    }

    #[test]
    fn refuses_frames_growing_past_16_mib() {
        let big = vec![0u8; MAX_BLOB_SIZE + 1];
        // The size stated in the frame header.
        let stated = zstd::bulk::compress(&big, 1).unwrap();
        assert!(decode(&zstd_blob(&stated), None).unwrap_err().to_string().contains("beyond 16 MiB"));
        // A streamed frame that states no size: refused while decoding.
        let unstated = zstd::stream::encode_all(&big[..], 1).unwrap();
        assert_eq!(zstd::zstd_safe::get_frame_content_size(&unstated).unwrap(), None);
        assert!(decode(&zstd_blob(&unstated), None).unwrap_err().to_string().contains("at most 16 MiB"));
        // Exactly 16 MiB without a stated size still decodes.
        let exact = zstd::stream::encode_all(&big[..MAX_BLOB_SIZE], 1).unwrap();
        assert_eq!(decode(&zstd_blob(&exact), None).unwrap().len(), MAX_BLOB_SIZE);
    }
}
