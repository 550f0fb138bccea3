//! What proves who someone is, kept beside the access model and never in it: API token secrets,
//! `pve`-realm passwords and second factors (TOTP keys and recovery keys).
//!
//! Each lives in its own file under `etc/hearth/priv/` (directory 0700, files 0600):
//! `tokens.toml` holds the SHA-256 of each token secret, `shadow.toml` an argon2id hash (PHC
//! string) per user, and `tfa.toml` each user's TOTP keys and the SHA-256 of their unused
//! recovery keys. Secrets are shown once, when created, and never logged. One lock serialises
//! every read-modify-write of these files.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use hearth_core::access::{TokenId, Userid};
use hearth_core::hex;
use hearth_proto::{ErrorKind, ErrorReply, NewTfa, TfaInfo, TfaKind};
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Serialises reading and rewriting the files in `priv/`.
static PRIV: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    PRIV.lock().unwrap_or_else(|p| p.into_inner())
}

fn tokens_path(root: &Path) -> PathBuf {
    root.join("etc/hearth/priv/tokens.toml")
}

fn shadow_path(root: &Path) -> PathBuf {
    root.join("etc/hearth/priv/shadow.toml")
}

fn tfa_path(root: &Path) -> PathBuf {
    root.join("etc/hearth/priv/tfa.toml")
}

/// A file in `priv/`, or its default when there is none yet.
fn read_priv<T: DeserializeOwned + Default>(path: &Path) -> Result<T, ErrorReply> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            ErrorReply::new(ErrorKind::Unavailable, format!("{} is unreadable: {}", path.display(), e.message()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(ErrorReply::new(ErrorKind::Unavailable, format!("cannot read {}: {e}", path.display()))),
    }
}

/// Writes a file atomically into `priv/` (0700) and makes it 0600.
fn write_priv<T: Serialize>(path: &Path, value: &T) -> Result<(), ErrorReply> {
    let io = |what: &str, e: std::io::Error| ErrorReply::new(ErrorKind::Internal, format!("cannot {what}: {e}"));
    let dir = path.parent().expect("the credential files lie in priv/");
    std::fs::create_dir_all(dir).map_err(|e| io(&format!("create {}", dir.display()), e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| io(&format!("restrict {}", dir.display()), e))?;
    let text = toml::to_string(value)
        .map_err(|e| ErrorReply::new(ErrorKind::Internal, format!("cannot encode {}: {e}", path.display())))?;
    crate::store::write_atomic(path, text.as_bytes())?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| io(&format!("restrict {}", path.display()), e))
}

fn random<const N: usize>(what: &str) -> Result<[u8; N], ErrorReply> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| ErrorReply::new(ErrorKind::Internal, format!("no randomness for the {what}: {e}")))?;
    Ok(bytes)
}

fn digest(secret: &str) -> String {
    hex::encode(&Sha256::digest(secret.as_bytes()))
}

/// Equality whose time depends only on the lengths, not on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

// API tokens.

/// 32 random bytes, hex: a new token secret.
pub(crate) fn new_secret() -> Result<String, ErrorReply> {
    Ok(hex::encode(&random::<32>("token secret")?))
}

pub(crate) fn remember_secret(root: &Path, id: &TokenId, secret: &str) -> Result<(), ErrorReply> {
    let _guard = lock();
    let path = tokens_path(root);
    let mut secrets: BTreeMap<String, String> = read_priv(&path)?;
    secrets.insert(id.to_string(), digest(secret));
    write_priv(&path, &secrets)
}

pub(crate) fn forget_secrets(root: &Path, ids: &[TokenId]) -> Result<(), ErrorReply> {
    if ids.is_empty() {
        return Ok(());
    }
    let _guard = lock();
    let path = tokens_path(root);
    let mut secrets: BTreeMap<String, String> = read_priv(&path)?;
    let before = secrets.len();
    secrets.retain(|k, _| !ids.iter().any(|id| id.to_string() == *k));
    if secrets.len() == before { Ok(()) } else { write_priv(&path, &secrets) }
}

/// Whether `secret` is the secret of `tokenid`, compared in constant time.
pub fn verify_token(root: &Path, tokenid: &TokenId, secret: &str) -> bool {
    let Ok(secrets) = read_priv::<BTreeMap<String, String>>(&tokens_path(root)) else { return false };
    secrets
        .get(&tokenid.to_string())
        .is_some_and(|stored| constant_time_eq(stored.as_bytes(), digest(secret).as_bytes()))
}

// Passwords.

/// Stores an argon2id hash (default parameters, PHC string) of `password` for `userid`.
pub(crate) fn set_password(root: &Path, userid: &Userid, password: &str) -> Result<(), ErrorReply> {
    let salt = SaltString::encode_b64(&random::<16>("password salt")?)
        .map_err(|e| ErrorReply::new(ErrorKind::Internal, format!("cannot encode the salt: {e}")))?;
    let hash = argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| ErrorReply::new(ErrorKind::Internal, format!("cannot hash the password: {e}")))?
        .to_string();
    let _guard = lock();
    let path = shadow_path(root);
    let mut shadow: BTreeMap<String, String> = read_priv(&path)?;
    shadow.insert(userid.to_string(), hash);
    write_priv(&path, &shadow)
}

/// Whether `password` is `userid`'s `pve`-realm password. argon2's verification compares
/// in constant time.
pub fn verify_password(root: &Path, userid: &Userid, password: &str) -> bool {
    let Ok(shadow) = read_priv::<BTreeMap<String, String>>(&shadow_path(root)) else { return false };
    let Some(Ok(hash)) = shadow.get(userid.as_str()).map(|h| PasswordHash::new(h)) else { return false };
    argon2::Argon2::default().verify_password(password.as_bytes(), &hash).is_ok()
}

/// Removes everything `priv/` holds for a deleted user: password hash and second factors.
pub(crate) fn forget_user(root: &Path, userid: &Userid) -> Result<(), ErrorReply> {
    let _guard = lock();
    let path = shadow_path(root);
    let mut shadow: BTreeMap<String, String> = read_priv(&path)?;
    if shadow.remove(userid.as_str()).is_some() {
        write_priv(&path, &shadow)?;
    }
    let path = tfa_path(root);
    let mut tfa: TfaFile = read_priv(&path)?;
    if tfa.users.remove(userid.as_str()).is_some() {
        write_priv(&path, &tfa)?;
    }
    Ok(())
}

// Realm secrets.

fn realm_secrets_path(root: &Path) -> PathBuf {
    root.join("etc/hearth/priv/realms.toml")
}

/// `realms.toml`: realm → secret key (`client-key`, `password`) → value. Kept in plain text as
/// Proxmox keeps them: they must be presented to the identity provider or directory server.
#[derive(Debug, Default, Serialize, Deserialize)]
struct RealmSecrets {
    #[serde(default)]
    realms: BTreeMap<String, BTreeMap<String, String>>,
}

/// Sets (`Some`) or removes (`None`) secrets of `realm`.
pub(crate) fn set_realm_secrets(root: &Path, realm: &str, changes: &[(&str, Option<&str>)]) -> Result<(), ErrorReply> {
    if changes.is_empty() {
        return Ok(());
    }
    let _guard = lock();
    let path = realm_secrets_path(root);
    let mut file: RealmSecrets = read_priv(&path)?;
    let secrets = file.realms.entry(realm.to_owned()).or_default();
    for (key, value) in changes {
        match value {
            Some(v) => secrets.insert((*key).to_owned(), (*v).to_owned()),
            None => secrets.remove(*key),
        };
    }
    if secrets.is_empty() {
        file.realms.remove(realm);
    }
    write_priv(&path, &file)
}

/// The names of the secrets `realm` has, never their values.
pub(crate) fn realm_secret_names(root: &Path, realm: &str) -> Result<Vec<String>, ErrorReply> {
    let file: RealmSecrets = read_priv(&realm_secrets_path(root))?;
    Ok(file.realms.get(realm).map(|s| s.keys().cloned().collect()).unwrap_or_default())
}

/// Removes every secret of `realm`.
pub(crate) fn forget_realm(root: &Path, realm: &str) -> Result<(), ErrorReply> {
    let _guard = lock();
    let path = realm_secrets_path(root);
    let mut file: RealmSecrets = read_priv(&path)?;
    if file.realms.remove(realm).is_some() {
        write_priv(&path, &file)?;
    }
    Ok(())
}

// Second factors.

/// `tfa.toml`: user id → second factors.
#[derive(Debug, Default, Serialize, Deserialize)]
struct TfaFile {
    #[serde(default)]
    users: BTreeMap<String, Vec<TfaEntry>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct TfaEntry {
    id: String,
    kind: TfaKind,
    created: i64,
    /// TOTP: the key, base32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    /// Recovery: hex SHA-256 of each unused key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    recovery: Vec<String>,
}

impl TfaEntry {
    fn info(&self, userid: &str) -> TfaInfo {
        TfaInfo {
            userid: userid.to_owned(),
            id: self.id.clone(),
            kind: self.kind,
            created: self.created,
            remaining: (self.kind == TfaKind::Recovery).then_some(self.recovery.len()),
        }
    }
}

/// How many recovery keys a set has, as in Proxmox.
const RECOVERY_KEYS: usize = 10;

/// Adds a second factor for `userid` and answers with its secrets.
pub(crate) fn add_tfa(root: &Path, userid: &Userid, kind: TfaKind, now: i64) -> Result<NewTfa, ErrorReply> {
    let _guard = lock();
    let path = tfa_path(root);
    let mut file: TfaFile = read_priv(&path)?;
    let entries = file.users.entry(userid.to_string()).or_default();
    let new = match kind {
        TfaKind::Totp => {
            let key = random::<20>("TOTP key")?;
            let secret = base32(&key);
            let id = format!("totp-{}", hex::encode(&random::<4>("TOTP id")?));
            let entry = TfaEntry { id, kind, created: now, secret: Some(secret.clone()), recovery: Vec::new() };
            let uri = format!(
                "otpauth://totp/Hearth:{}?secret={secret}&issuer=Hearth&algorithm=SHA1&digits=6&period=30",
                percent_encode(userid.as_str())
            );
            let new =
                NewTfa { info: entry.info(userid.as_str()), secret: Some(secret), uri: Some(uri), recovery: vec![] };
            entries.push(entry);
            new
        }
        TfaKind::Recovery => {
            if entries.iter().any(|e| e.kind == TfaKind::Recovery) {
                return Err(ErrorReply::new(
                    ErrorKind::Conflict,
                    format!("user '{userid}' already has recovery keys: delete them first to get new ones"),
                ));
            }
            let keys = (0..RECOVERY_KEYS)
                .map(|_| random::<8>("recovery key").map(|b| recovery_key(&b)))
                .collect::<Result<Vec<_>, _>>()?;
            let entry = TfaEntry {
                id: "recovery".to_owned(),
                kind,
                created: now,
                secret: None,
                recovery: keys.iter().map(|k| digest(k)).collect(),
            };
            let new = NewTfa { info: entry.info(userid.as_str()), secret: None, uri: None, recovery: keys };
            entries.push(entry);
            new
        }
    };
    write_priv(&path, &file)?;
    Ok(new)
}

/// The second factors of `userid`, or of everyone with `None`, without secrets.
pub(crate) fn list_tfa(root: &Path, userid: Option<&Userid>) -> Result<Vec<TfaInfo>, ErrorReply> {
    let file: TfaFile = read_priv(&tfa_path(root))?;
    Ok(file
        .users
        .iter()
        .filter(|(u, _)| userid.is_none_or(|w| w.as_str() == u.as_str()))
        .flat_map(|(u, entries)| entries.iter().map(|e| e.info(u)))
        .collect())
}

/// Deletes one second factor; `NotFound` if `userid` has none called `id`.
pub(crate) fn delete_tfa(root: &Path, userid: &Userid, id: &str) -> Result<(), ErrorReply> {
    let _guard = lock();
    let path = tfa_path(root);
    let mut file: TfaFile = read_priv(&path)?;
    let entries = file.users.get_mut(userid.as_str());
    let Some(entries) = entries.filter(|e| e.iter().any(|e| e.id == id)) else {
        return Err(ErrorReply::new(ErrorKind::NotFound, format!("user '{userid}' has no second factor '{id}'")));
    };
    entries.retain(|e| e.id != id);
    if entries.is_empty() {
        file.users.remove(userid.as_str());
    }
    write_priv(&path, &file)
}

/// Whether `code` is a current TOTP code of one of `userid`'s keys at unix time `now`: RFC 6238
/// with SHA-1, 30 s steps and 6 digits, accepting one step either side for clock drift.
pub fn verify_totp(root: &Path, userid: &Userid, code: &str, now: i64) -> bool {
    let Ok(file) = read_priv::<TfaFile>(&tfa_path(root)) else { return false };
    let Some(entries) = file.users.get(userid.as_str()) else { return false };
    let step = now.div_euclid(30);
    entries.iter().filter_map(|e| e.secret.as_deref().and_then(base32_decode)).any(|key| {
        [step - 1, step, step + 1]
            .iter()
            .any(|&s| s >= 0 && constant_time_eq(totp(&key, s as u64, 6).as_bytes(), code.trim().as_bytes()))
    })
}

/// Whether `key` is one of `userid`'s unused recovery keys; a key that matches is used up.
pub fn use_recovery_key(root: &Path, userid: &Userid, key: &str) -> bool {
    let _guard = lock();
    let path = tfa_path(root);
    let Ok(mut file) = read_priv::<TfaFile>(&path) else { return false };
    let Some(entries) = file.users.get_mut(userid.as_str()) else { return false };
    let wanted = digest(key.trim());
    for entry in entries.iter_mut().filter(|e| e.kind == TfaKind::Recovery) {
        // Compare against every key so the time does not tell which one matched.
        let matched = entry.recovery.iter().fold(None, |found, stored| {
            if constant_time_eq(stored.as_bytes(), wanted.as_bytes()) { Some(stored.clone()) } else { found }
        });
        if let Some(used) = matched {
            entry.recovery.retain(|k| *k != used);
            // A key that cannot be marked used must not work.
            return write_priv(&path, &file).is_ok();
        }
    }
    false
}

/// RFC 4226's HOTP of `counter`, `digits` long (RFC 6238 with the time step as counter).
fn totp(key: &[u8], counter: u64, digits: u32) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(&counter.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = usize::from(hash[hash.len() - 1] & 0x0f);
    let bin = u32::from_be_bytes([hash[offset], hash[offset + 1], hash[offset + 2], hash[offset + 3]]) & 0x7fff_ffff;
    format!("{:0width$}", bin % 10u32.pow(digits), width = digits as usize)
}

/// A recovery key as Proxmox prints them: four groups of four hex digits.
fn recovery_key(bytes: &[u8; 8]) -> String {
    bytes.chunks(2).map(hex::encode).collect::<Vec<_>>().join("-")
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding, as authenticator apps take keys.
fn base32(bytes: &[u8]) -> String {
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = BASE32.iter().position(|&x| x == c.to_ascii_uppercase())?;
        buffer = (buffer << 5) | v as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn token_secrets_are_stored_hashed_and_verified() {
        let root = tempfile::tempdir().unwrap();
        let id: TokenId = "joe@pam!ci".parse().unwrap();
        let secret = new_secret().unwrap();
        assert_eq!(secret.len(), 64);
        remember_secret(root.path(), &id, &secret).unwrap();
        let path = tokens_path(root.path());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&secret));
        assert!(text.contains(&digest(&secret)));
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert!(verify_token(root.path(), &id, &secret));
        assert!(!verify_token(root.path(), &id, "wrong"));
        assert!(!verify_token(root.path(), &"joe@pam!other".parse().unwrap(), &secret));
        forget_secrets(root.path(), std::slice::from_ref(&id)).unwrap();
        assert!(!verify_token(root.path(), &id, &secret));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn passwords_are_hashed_with_argon2id() {
        let root = tempfile::tempdir().unwrap();
        let joe: Userid = "joe@pve".parse().unwrap();
        let ann: Userid = "ann@pve".parse().unwrap();
        assert!(!verify_password(root.path(), &joe, "hunter22"));
        set_password(root.path(), &joe, "hunter22").unwrap();
        set_password(root.path(), &ann, "hunter22").unwrap();
        let path = shadow_path(root.path());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("hunter22"), "{text}");
        assert!(text.contains("$argon2id$"), "{text}");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert!(verify_password(root.path(), &joe, "hunter22"));
        assert!(!verify_password(root.path(), &joe, "hunter23"));
        set_password(root.path(), &joe, "correct horse").unwrap();
        assert!(verify_password(root.path(), &joe, "correct horse"));
        assert!(!verify_password(root.path(), &joe, "hunter22"));
        forget_user(root.path(), &joe).unwrap();
        assert!(!verify_password(root.path(), &joe, "correct horse"));
        assert!(verify_password(root.path(), &ann, "hunter22"));
    }

    #[test]
    fn totp_matches_rfc_6238() {
        let key = b"12345678901234567890";
        assert_eq!(totp(key, 59 / 30, 8), "94287082");
        assert_eq!(totp(key, 59 / 30, 6), "287082");
        assert_eq!(totp(key, 1_111_111_109 / 30, 8), "07081804");
        assert_eq!(totp(key, 2_000_000_000 / 30, 8), "69279037");
        assert_eq!(base32(key), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(base32_decode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap(), key);
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32_decode("MY").unwrap(), b"f");
        assert_eq!(percent_encode("joe@pve"), "joe%40pve");
    }

    #[test]
    fn totp_keys_verify_within_one_step() {
        let root = tempfile::tempdir().unwrap();
        let joe: Userid = "joe@pve".parse().unwrap();
        let new = add_tfa(root.path(), &joe, TfaKind::Totp, 1000).unwrap();
        let secret = new.secret.clone().unwrap();
        assert_eq!(secret.len(), 32);
        assert!(new.uri.as_deref().unwrap().starts_with("otpauth://totp/Hearth:joe%40pve?secret="));
        let key = base32_decode(&secret).unwrap();
        let now = 1_700_000_000;
        let code = |t: i64| totp(&key, (t / 30) as u64, 6);
        for t in [now - 30, now, now + 30] {
            assert!(verify_totp(root.path(), &joe, &code(t), now), "{t}");
        }
        assert!(!verify_totp(root.path(), &joe, &code(now - 90), now));
        assert!(!verify_totp(root.path(), &joe, &code(now + 90), now));
        assert!(!verify_totp(root.path(), &"ann@pve".parse().unwrap(), &code(now), now));
        let path = tfa_path(root.path());
        assert_eq!(mode(&path), 0o600);
        let listed = list_tfa(root.path(), Some(&joe)).unwrap();
        assert_eq!(listed, std::slice::from_ref(&new.info));
        delete_tfa(root.path(), &joe, &new.info.id).unwrap();
        assert!(!verify_totp(root.path(), &joe, &code(now), now));
        assert_eq!(delete_tfa(root.path(), &joe, &new.info.id).unwrap_err().kind, ErrorKind::NotFound);
    }

    #[test]
    fn recovery_keys_work_once() {
        let root = tempfile::tempdir().unwrap();
        let joe: Userid = "joe@pve".parse().unwrap();
        let new = add_tfa(root.path(), &joe, TfaKind::Recovery, 1000).unwrap();
        assert_eq!(new.recovery.len(), 10);
        assert_eq!(new.recovery[0].len(), 19, "{}", new.recovery[0]);
        let text = std::fs::read_to_string(tfa_path(root.path())).unwrap();
        assert!(new.recovery.iter().all(|k| !text.contains(k.as_str())), "{text}");
        assert_eq!(mode(&tfa_path(root.path())), 0o600);
        assert!(use_recovery_key(root.path(), &joe, &new.recovery[3]));
        assert!(!use_recovery_key(root.path(), &joe, &new.recovery[3]), "a key is used up");
        assert!(use_recovery_key(root.path(), &joe, &new.recovery[4]));
        assert!(!use_recovery_key(root.path(), &joe, "0000-0000-0000-0000"));
        assert_eq!(list_tfa(root.path(), None).unwrap()[0].remaining, Some(8));
        let again = add_tfa(root.path(), &joe, TfaKind::Recovery, 1000).unwrap_err();
        assert_eq!(again.kind, ErrorKind::Conflict);
        forget_user(root.path(), &joe).unwrap();
        assert!(list_tfa(root.path(), None).unwrap().is_empty());
        assert!(!use_recovery_key(root.path(), &joe, &new.recovery[5]));
    }
}
