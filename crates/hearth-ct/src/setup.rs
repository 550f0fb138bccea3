//! First-boot and pre-start configuration of a guest's files — Proxmox's `PVE::LXC::Setup`:
//! host name, `/etc/hosts`, DNS, root's password and SSH keys, the time zone and, for the
//! distributions whose network files Hearth writes, `/etc/network/interfaces`.
//!
//! Every write happens in `hearth-ctmon setup`, which confines itself like the template
//! helper (user namespace for unprivileged containers, then a chroot into the rootfs; see
//! [`crate::template`]): files are written as container root and a symlink in the guest —
//! `/etc/hostname -> /../../../etc/shadow` — resolves inside the rootfs, never on the host.
//! Files are replaced atomically (a temporary file in the same directory, then rename) and
//! keep the owner and mode of the file they replace.
//!
//! The text each file gets is computed by pure functions ([`hosts_text`],
//! [`interfaces_text`], [`shadow_text`], …), tested without root.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

use crate::spec::IdMap;
use crate::template::sandbox;

/// What hearthd wants configured in a guest (pct's hostname, netN ip/gw/ip6/gw6, nameserver,
/// searchdomain, password, ssh-public-keys, timezone).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestSetup {
    pub hostname: String,
    /// Proxmox's ostype; decides which network files are written.
    pub ostype: Option<String>,
    #[serde(default)]
    pub nets: Vec<GuestNet>,
    /// One or more addresses separated by spaces, commas or semicolons.
    pub nameserver: Option<String>,
    /// One or more domains separated by spaces, commas or semicolons.
    pub searchdomain: Option<String>,
    /// A crypt(3) string for root's `/etc/shadow` field, e.g. from [`hash_password`].
    pub root_password_hash: Option<String>,
    /// authorized_keys lines for root.
    pub ssh_public_keys: Option<String>,
    /// A zone name under `/usr/share/zoneinfo` in the guest (hearthd resolves `host`).
    pub timezone: Option<String>,
}

/// One interface as the guest configures it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestNet {
    /// The name inside the guest: `eth0`.
    pub name: String,
    /// `CIDR`, `dhcp` or `manual`.
    pub ip: Option<String>,
    pub gw: Option<String>,
    /// `CIDR`, `auto`, `dhcp` or `manual`.
    pub ip6: Option<String>,
    pub gw6: Option<String>,
}

/// Why the guest's files could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot start {}: {source}", ctmon.display())]
    Spawn { ctmon: PathBuf, source: std::io::Error },
    #[error("cannot map the container's ids: {0}")]
    IdMap(String),
    /// A value would not make a well-formed file (a newline in a host name, …).
    #[error("{0}")]
    Invalid(String),
    #[error("configuring the guest failed: {0}")]
    Failed(String),
}

/// Distributions whose network configuration Hearth writes into the guest.
const MANAGED_NETWORK: &[&str] = &["debian", "ubuntu", "devuan", "alpine"];

/// Whether the runtime must configure the guest's addresses from the host (over netlink)
/// because Hearth writes no network files for this distribution.
pub fn needs_host_network_config(ostype: Option<&str>) -> bool {
    !ostype.is_some_and(|o| MANAGED_NETWORK.contains(&o))
}

/// A SHA-512 crypt string (`$6$<salt>$<hash>`, 5000 rounds — glibc's and busybox's
/// default, so both read it) with a random 16-character salt.
pub fn hash_password(plain: &str) -> String {
    const ALPHABET: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).expect("the kernel's random source is available");
    let salt: String = random.iter().map(|b| ALPHABET[usize::from(b & 63)] as char).collect();
    crypt_sha512(plain, &salt)
}

fn crypt_sha512(plain: &str, salt: &str) -> String {
    let hash = sha_crypt::sha512_crypt_b64(plain.as_bytes(), salt.as_bytes(), &sha_crypt::Sha512Params::default())
        .expect("the default rounds and a salt from the crypt alphabet are valid");
    format!("$6${salt}${hash}")
}

/// Writes `setup` into the container whose root directory is `rootfs` (ids mapped by
/// `idmap`; `None`: privileged). `ctmon` is the hearth-ctmon binary.
pub fn apply(ctmon: &Path, rootfs: &Path, idmap: Option<&IdMap>, setup: &GuestSetup) -> Result<(), SetupError> {
    validate(setup).map_err(SetupError::Invalid)?;
    let json = serde_json::to_vec(setup).expect("GuestSetup serializes");
    let args = sandbox::idmap_args(idmap);
    sandbox::run(ctmon, "setup", &args, rootfs, idmap, sandbox::Input::Bytes(&json)).map_err(|e| match e {
        sandbox::RunError::Spawn(source) => SetupError::Spawn { ctmon: ctmon.to_owned(), source },
        sandbox::RunError::IdMap(m) => SetupError::IdMap(m),
        sandbox::RunError::Refused(m) => SetupError::Invalid(m),
        sandbox::RunError::Failed(m) => SetupError::Failed(m),
    })?;
    Ok(())
}

/// `hearth-ctmon setup [--idmap <json>]`: the [`GuestSetup`] as JSON on stdin, the rootfs as
/// the current directory.
pub fn helper_main(args: &[String]) -> Result<ExitCode, String> {
    let idmap = sandbox::parse_idmap_arg(args)?;
    let mut json = String::new();
    std::io::stdin().take(1 << 20).read_to_string(&mut json).map_err(|e| format!("reading the set-up: {e}"))?;
    let setup: GuestSetup = serde_json::from_str(&json).map_err(|e| format!("the set-up is not valid JSON: {e}"))?;
    if let Err(message) = validate(&setup) {
        return Ok(sandbox::refuse("setup", &message));
    }
    sandbox::enter(idmap.as_ref())?;
    configure(&setup)?;
    println!("ok");
    Ok(ExitCode::SUCCESS)
}

/// Refuses values that would not make well-formed files.
fn validate(setup: &GuestSetup) -> Result<(), String> {
    let word = |what: &str, value: &str, allowed: &dyn Fn(char) -> bool| {
        if value.is_empty() || value.starts_with('-') || !value.chars().all(allowed) {
            Err(format!("{what} '{}' is not allowed", value.escape_debug()))
        } else {
            Ok(())
        }
    };
    let host_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    let addr_char = |c: char| c.is_ascii_hexdigit() || c == '.' || c == ':' || c == '/';
    if setup.hostname.len() > 253 {
        return Err("the host name is longer than 253 characters".into());
    }
    word("host name", &setup.hostname, &host_char)?;
    if let Some(ostype) = &setup.ostype {
        word("ostype", ostype, &|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')?;
    }
    for net in &setup.nets {
        if net.name.len() > 15 {
            return Err(format!("interface name '{}' is longer than 15 characters", net.name));
        }
        word("interface name", &net.name, &|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')?;
        for (what, value, keywords) in [
            ("ip", &net.ip, &["dhcp", "manual"][..]),
            ("gw", &net.gw, &[]),
            ("ip6", &net.ip6, &["auto", "dhcp", "manual"]),
            ("gw6", &net.gw6, &[]),
        ] {
            if let Some(value) = value.as_deref().filter(|v| !keywords.contains(v)) {
                word(&format!("{} {what}", net.name), value, &addr_char)?;
            }
        }
    }
    for server in split_list(setup.nameserver.as_deref()) {
        word("name server", server, &|c| addr_char(c) && c != '/' || c == '%' || c.is_ascii_alphanumeric())?;
    }
    for domain in split_list(setup.searchdomain.as_deref()) {
        word("search domain", domain, &host_char)?;
    }
    if let Some(hash) = &setup.root_password_hash {
        word("password hash", hash, &|c| c.is_ascii_graphic() && c != ':')?;
    }
    if let Some(keys) = &setup.ssh_public_keys
        && keys.contains(['\0', '\r'])
    {
        return Err("the SSH keys contain a NUL or carriage return".into());
    }
    if let Some(zone) = &setup.timezone {
        word("time zone", zone, &|c| c.is_ascii_alphanumeric() || "_+-/".contains(c))?;
        if zone.starts_with('/') || zone.split('/').any(|p| p.is_empty() || p == "..") {
            return Err(format!("time zone '{zone}' is not allowed"));
        }
    }
    Ok(())
}

fn split_list(list: Option<&str>) -> impl Iterator<Item = &str> {
    list.unwrap_or_default().split([' ', ',', ';', '\t', '\n']).filter(|s| !s.is_empty())
}

/// Inside the chroot: writes every file the set-up asks for.
fn configure(setup: &GuestSetup) -> Result<(), String> {
    let short = setup.hostname.split('.').next().unwrap_or(&setup.hostname);
    write_file("/etc/hostname", format!("{short}\n").as_bytes(), 0o644)?;
    let hosts = read_file("/etc/hosts")?;
    let first_domain = split_list(setup.searchdomain.as_deref()).next();
    write_file("/etc/hosts", hosts_text(hosts.as_deref(), &setup.hostname, first_domain).as_bytes(), 0o644)?;
    if setup.nameserver.is_some() || setup.searchdomain.is_some() {
        let resolv = read_file("/etc/resolv.conf")?;
        let text = resolv_text(resolv.as_deref(), setup.nameserver.as_deref(), setup.searchdomain.as_deref());
        write_file("/etc/resolv.conf", text.as_bytes(), 0o644)?;
    }
    if let Some(hash) = &setup.root_password_hash {
        let shadow = read_file("/etc/shadow")?;
        write_file("/etc/shadow", shadow_text(shadow.as_deref(), hash, days_since_epoch()).as_bytes(), 0o640)?;
    }
    if let Some(keys) = &setup.ssh_public_keys {
        make_dir("/root", 0o700)?;
        make_dir("/root/.ssh", 0o700)?;
        let existing = read_file("/root/.ssh/authorized_keys")?;
        write_file("/root/.ssh/authorized_keys", authorized_keys_text(existing.as_deref(), keys).as_bytes(), 0o600)?;
    }
    if let Some(zone) = &setup.timezone {
        set_timezone(zone)?;
    }
    if !needs_host_network_config(setup.ostype.as_deref()) {
        make_dir("/etc/network", 0o755)?;
        let existing = read_file("/etc/network/interfaces")?;
        write_file("/etc/network/interfaces", interfaces_text(existing.as_deref(), &setup.nets).as_bytes(), 0o644)?;
    }
    Ok(())
}

/// `/etc/localtime` → the zone file, and `/etc/timezone` where the guest has one (Debian).
/// A guest without the zone file keeps its time zone, as with Proxmox.
fn set_timezone(zone: &str) -> Result<(), String> {
    let target = format!("/usr/share/zoneinfo/{zone}");
    if !Path::new(&target).is_file() {
        return Ok(());
    }
    let temp = temp_name(Path::new("/etc/localtime"));
    let _ = std::fs::remove_file(&temp);
    std::os::unix::fs::symlink(&target, &temp).map_err(|e| format!("creating /etc/localtime: {e}"))?;
    std::fs::rename(&temp, "/etc/localtime").map_err(|e| format!("replacing /etc/localtime: {e}"))?;
    if std::fs::symlink_metadata("/etc/timezone").is_ok() {
        write_file("/etc/timezone", format!("{zone}\n").as_bytes(), 0o644)?;
    }
    Ok(())
}

fn days_since_epoch() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86_400)
}

/// Reads a regular file (following symlinks: we are in the chroot), `None` when absent. A
/// FIFO or device planted by the guest is refused instead of blocking the helper.
fn read_file(path: &str) -> Result<Option<String>, String> {
    read_regular(path, 16 << 20)
}

/// Reads at most `limit` bytes of a regular file without blocking on a FIFO; `None` when it
/// does not exist, an error for anything that is not a regular file.
pub(crate) fn read_regular(path: &str, limit: u64) -> Result<Option<String>, String> {
    let file = match OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("opening {path}: {e}")),
    };
    let meta = file.metadata().map_err(|e| format!("reading {path}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{path} is not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(limit).read_to_end(&mut bytes).map_err(|e| format!("reading {path}: {e}"))?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// Creates a directory owned by container root unless something is there already.
fn make_dir(path: &str, mode: u32) -> Result<(), String> {
    match std::fs::create_dir(path) {
        Ok(()) => std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("setting the mode of {path}: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("creating {path}: {e}")),
    }
}

fn temp_name(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.hearth-{}", std::process::id()))
}

/// Replaces `path` atomically, keeping the owner and mode of the regular file it replaces
/// (root and `mode` for a new file). A symlink at `path` is replaced, not followed.
fn write_file(path: &str, content: &[u8], mode: u32) -> Result<(), String> {
    let path = Path::new(path);
    let shown = path.display();
    let (uid, gid, mode) = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        _ => (0, 0, mode),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    let temp = temp_name(path);
    let _ = std::fs::remove_file(&temp);
    let write = |file: &mut File| -> std::io::Result<()> {
        file.write_all(content)?;
        std::os::unix::fs::fchown(&*file, Some(uid), Some(gid))?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.sync_all()
    };
    let result = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temp)
        .and_then(|mut file| write(&mut file))
        .and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temp);
        return Err(format!("writing {shown}: {e}"));
    }
    Ok(())
}

/// `/etc/hosts` with the `127.0.1.1` line naming the host (replaced where it was, or added
/// after the loopback lines), localhost lines added when missing, everything else kept.
pub fn hosts_text(existing: Option<&str>, hostname: &str, domain: Option<&str>) -> String {
    let short = hostname.split('.').next().unwrap_or(hostname);
    let names = match (hostname.contains('.'), domain) {
        (true, _) => format!("{hostname} {short}"),
        (false, Some(domain)) => format!("{hostname}.{domain} {hostname}"),
        (false, None) => hostname.to_owned(),
    };
    let own = format!("127.0.1.1 {names}");
    let existing = existing.unwrap_or_default();
    let first = |l: &str| l.split_whitespace().next().map(str::to_owned);
    let mut lines: Vec<String> = Vec::new();
    let mut placed = false;
    for line in existing.lines() {
        if first(line).as_deref() == Some("127.0.1.1") {
            if !placed {
                lines.push(own.clone());
                placed = true;
            }
        } else {
            lines.push(line.to_owned());
        }
    }
    let has = |lines: &[String], addr: &str| {
        lines.iter().any(|l| first(l).as_deref() == Some(addr) && l.split_whitespace().any(|n| n == "localhost"))
    };
    if !has(&lines, "127.0.0.1") {
        lines.insert(0, "127.0.0.1 localhost".into());
    }
    if !placed {
        let after = lines.iter().rposition(|l| first(l).as_deref() == Some("127.0.0.1")).map_or(0, |i| i + 1);
        lines.insert(after, own);
    }
    if !has(&lines, "::1") {
        let after = lines.iter().rposition(|l| first(l).as_deref() == Some("127.0.1.1")).map_or(0, |i| i + 1);
        lines.insert(after, "::1 localhost ip6-localhost ip6-loopback".into());
    }
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// `/etc/resolv.conf`: the given search domains and name servers; what was not given is
/// kept from the old file, like its `options` lines.
pub fn resolv_text(existing: Option<&str>, nameserver: Option<&str>, searchdomain: Option<&str>) -> String {
    let old: Vec<&str> = existing.unwrap_or_default().lines().collect();
    let keyword = |l: &str| l.split_whitespace().next().unwrap_or_default().to_owned();
    let mut text = String::new();
    match searchdomain {
        Some(list) => {
            let domains: Vec<&str> = split_list(Some(list)).collect();
            if !domains.is_empty() {
                writeln!(text, "search {}", domains.join(" ")).expect("writing to a String");
            }
        }
        None => old.iter().filter(|l| ["search", "domain"].contains(&keyword(l).as_str())).for_each(|l| {
            writeln!(text, "{l}").expect("writing to a String");
        }),
    }
    match nameserver {
        Some(list) => {
            split_list(Some(list)).for_each(|s| writeln!(text, "nameserver {s}").expect("writing to a String"))
        }
        None => old.iter().filter(|l| keyword(l) == "nameserver").for_each(|l| {
            writeln!(text, "{l}").expect("writing to a String");
        }),
    }
    old.iter().filter(|l| keyword(l) == "options").for_each(|l| writeln!(text, "{l}").expect("writing to a String"));
    text
}

/// `/etc/shadow` with root's password field set to `hash` (a root line is added at the top
/// when there is none).
pub fn shadow_text(existing: Option<&str>, hash: &str, today: u64) -> String {
    let mut found = false;
    let mut lines: Vec<String> = existing
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let mut fields: Vec<&str> = line.split(':').collect();
            if found || fields.first() != Some(&"root") || fields.len() < 2 {
                return line.to_owned();
            }
            found = true;
            fields[1] = hash;
            let today = today.to_string();
            if fields.len() > 2 {
                fields[2] = &today;
            }
            fields.join(":")
        })
        .collect();
    if !found {
        lines.insert(0, format!("root:{hash}:{today}:0:99999:7:::"));
    }
    lines.iter().map(|l| format!("{l}\n")).collect()
}

const BEGIN: &str = "# --- BEGIN HEARTH ---";
const END: &str = "# --- END HEARTH ---";

/// root's `authorized_keys`: the keys Hearth manages between marker lines (replacing the
/// previous ones), the guest's own keys kept.
pub fn authorized_keys_text(existing: Option<&str>, keys: &str) -> String {
    let mut kept = Vec::new();
    let mut inside = false;
    for line in existing.unwrap_or_default().lines() {
        match line.trim_end() {
            BEGIN => inside = true,
            END => inside = false,
            _ if !inside => kept.push(line),
            _ => {}
        }
    }
    let mut text = String::new();
    for line in kept {
        writeln!(text, "{line}").expect("writing to a String");
    }
    writeln!(text, "{BEGIN}").expect("writing to a String");
    for key in keys.lines().map(str::trim).filter(|k| !k.is_empty()) {
        writeln!(text, "{key}").expect("writing to a String");
    }
    writeln!(text, "{END}").expect("writing to a String");
    text
}

/// ifupdown's keywords that begin a stanza.
fn starts_stanza(word: &str) -> bool {
    matches!(
        word,
        "iface" | "mapping" | "auto" | "source" | "source-directory" | "rename" | "no-auto-down" | "no-scripts"
    ) || word.starts_with("allow-")
}

/// `/etc/network/interfaces` as pct writes it: loopback, then each interface's `auto` line
/// and `inet`/`inet6` stanzas; stanzas of interfaces Hearth does not manage are kept.
pub fn interfaces_text(existing: Option<&str>, nets: &[GuestNet]) -> String {
    let managed = |name: &str| name == "lo" || nets.iter().any(|n| n.name == name);
    let mut text = String::from("auto lo\niface lo inet loopback\n");
    for net in nets {
        let name = &net.name;
        let family = |family: &str, ip: Option<&str>, gw: Option<&str>, keywords: &[&str]| match ip {
            None => None,
            Some(method) if keywords.contains(&method) => Some(format!("iface {name} {family} {method}\n")),
            Some(cidr) => {
                let gateway = gw.map(|gw| format!("\tgateway {gw}\n")).unwrap_or_default();
                Some(format!("iface {name} {family} static\n\taddress {cidr}\n{gateway}"))
            }
        };
        let stanzas: Vec<String> = [
            family("inet", net.ip.as_deref(), net.gw.as_deref(), &["dhcp", "manual"]),
            family("inet6", net.ip6.as_deref(), net.gw6.as_deref(), &["auto", "dhcp", "manual"]),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !stanzas.is_empty() {
            write!(text, "\nauto {name}\n{}", stanzas.join("\n")).expect("writing to a String");
        }
    }
    let mut kept = Vec::new();
    let mut skipping = false;
    for line in existing.unwrap_or_default().lines() {
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else {
            kept.push(String::new());
            continue;
        };
        if !starts_stanza(first) {
            // Comments are kept wherever they are; option lines go with their stanza.
            if !skipping || first.starts_with('#') {
                kept.push(line.to_owned());
            }
            continue;
        }
        match first {
            "iface" => {
                skipping = words.next().is_some_and(managed);
                if !skipping {
                    kept.push(line.to_owned());
                }
            }
            _ if matches!(first, "auto" | "no-auto-down" | "no-scripts") || first.starts_with("allow-") => {
                skipping = false;
                let rest: Vec<&str> = words.filter(|w| !managed(w)).collect();
                if !rest.is_empty() {
                    kept.push(format!("{first} {}", rest.join(" ")));
                }
            }
            _ => {
                skipping = false;
                kept.push(line.to_owned());
            }
        }
    }
    // Blank lines collapse; none at the start or the end.
    let mut rest = String::new();
    for line in kept {
        if line.trim().is_empty() {
            if !rest.is_empty() && !rest.ends_with("\n\n") {
                rest.push('\n');
            }
        } else {
            writeln!(rest, "{line}").expect("writing to a String");
        }
    }
    let rest = rest.trim_end_matches('\n');
    if !rest.is_empty() {
        write!(text, "\n{rest}\n").expect("writing to a String");
    }
    text
}

#[cfg(test)]
mod tests;
