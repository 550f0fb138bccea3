//! Encryption keys: the key file, and the configuration derived from it (AES-256-GCM key,
//! HMAC id key for digests, fingerprint).
//!
//! A key file holds 32 random bytes. It is written as JSON (`{"format": "hearth-backup-key-v1",
//! "created": <unix seconds>, "key": "<64 hex digits>", "fingerprint": "…"}`) with mode 0600;
//! [`KeyFile::load`] also accepts a raw 32-byte file. There is no passphrase wrapping: protect
//! the file like an SSH private key, and keep a copy outside the machine — without it encrypted
//! backups cannot be restored.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use hmac::{Hmac, Mac};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, IoContext};
use crate::{Digest, hex, parse_hex};

const FORMAT: &str = "hearth-backup-key-v1";

/// A 32-byte AES-256 key as stored in a key file.
#[derive(Clone)]
pub struct KeyFile {
    key: [u8; 32],
    /// Unix time of creation (0 for raw key files).
    pub created: i64,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFile").field("fingerprint", &self.fingerprint()).field("created", &self.created).finish()
    }
}

#[derive(Serialize, Deserialize)]
struct KeyJson {
    format: String,
    created: i64,
    key: String,
    fingerprint: String,
}

impl KeyFile {
    /// A new random key.
    pub fn generate(created: i64) -> Result<KeyFile, Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| Error::Crypto(format!("no randomness for a new key: {e}")))?;
        Ok(KeyFile { key, created })
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(key: [u8; 32]) -> KeyFile {
        KeyFile { key, created: 0 }
    }

    /// Writes the key as JSON, mode 0600, refusing to overwrite an existing file.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let json = KeyJson {
            format: FORMAT.to_owned(),
            created: self.created,
            key: hex(&self.key),
            fingerprint: self.fingerprint(),
        };
        let text = serde_json::to_string_pretty(&json).expect("a key serializes");
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).at(path)?;
        file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).at(path)
    }

    /// Reads a key file (JSON or raw 32 bytes).
    pub fn load(path: &Path) -> Result<KeyFile, Error> {
        let bytes = fs::read(path).at(path)?;
        if bytes.len() == 32 && serde_json::from_slice::<serde_json::Value>(&bytes).is_err() {
            let key: [u8; 32] = bytes.as_slice().try_into().expect("length checked");
            return Ok(KeyFile::from_bytes(key));
        }
        let json: KeyJson = serde_json::from_slice(&bytes)
            .map_err(|e| Error::corrupt(path, format!("not a key file (JSON or 32 raw bytes): {e}")))?;
        if json.format != FORMAT {
            return Err(Error::corrupt(path, format!("unknown key format {:?}, expected {FORMAT}", json.format)));
        }
        let key = parse_hex::<32>(&json.key).ok_or_else(|| Error::corrupt(path, "key is not 64 hex digits"))?;
        let loaded = KeyFile { key, created: json.created };
        if loaded.fingerprint() != json.fingerprint {
            return Err(Error::corrupt(path, "fingerprint does not match the key"));
        }
        Ok(loaded)
    }

    /// The key's fingerprint, `xx:xx:…` over 8 bytes; stored in manifests to recognise the key.
    pub fn fingerprint(&self) -> String {
        CryptConfig::new(self).fingerprint()
    }
}

/// Everything derived from a key that the chunk store needs.
pub struct CryptConfig {
    cipher: LessSafeKey,
    id_key: [u8; 32],
}

impl std::fmt::Debug for CryptConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CryptConfig").field("fingerprint", &self.fingerprint()).finish()
    }
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[&[u8]]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in data {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

impl CryptConfig {
    pub fn new(key: &KeyFile) -> CryptConfig {
        let unbound = UnboundKey::new(&AES_256_GCM, &key.key).expect("AES-256 takes a 32-byte key");
        CryptConfig { cipher: LessSafeKey::new(unbound), id_key: hmac(&key.key, &[b"hearth-backup id key"]) }
    }

    /// The digest naming a chunk: HMAC-SHA256 keyed by the id key, so digests reveal nothing
    /// about the plaintext to whoever holds only the store.
    pub fn digest(&self, data: &[u8]) -> Digest {
        hmac(&self.id_key, &[data])
    }

    pub fn fingerprint(&self) -> String {
        let full = hmac(&self.id_key, &[b"fingerprint"]);
        full[..8].iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
    }

    /// Encrypts in place; returns the nonce and tag.
    pub(crate) fn seal(&self, data: &mut [u8]) -> Result<([u8; 12], [u8; 16]), Error> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| Error::Crypto(format!("no randomness for a nonce: {e}")))?;
        let tag = self
            .cipher
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), data)
            .map_err(|_| Error::Crypto("encryption failed".into()))?;
        let tag: [u8; 16] = tag.as_ref().try_into().expect("GCM tags are 16 bytes");
        Ok((nonce, tag))
    }

    /// Decrypts in place; fails when the key is wrong or the data was altered.
    pub(crate) fn open(&self, nonce: [u8; 12], tag: [u8; 16], data: &mut [u8]) -> Result<(), Error> {
        self.cipher
            .open_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), Tag::from(tag), data, 0..)
            .map(|_| ())
            .map_err(|_| Error::Crypto("decryption failed: wrong key or damaged data".into()))
    }
}

/// The digest of plain (unencrypted) data: SHA-256.
pub fn plain_digest(data: &[u8]) -> Digest {
    Sha256::digest(data).into()
}

/// The digest of chunk data under an optional key.
pub fn chunk_digest(crypt: Option<&CryptConfig>, data: &[u8]) -> Digest {
    match crypt {
        Some(c) => c.digest(data),
        None => plain_digest(data),
    }
}
