//! Cloud-init: the formats of the cloud-init keys, the password hash, and the files of the
//! cloud-init drive, written as Proxmox's qemu-server writes them (`nocloud`: `user-data`,
//! `network-config` v1, `meta-data`; `configdrive2`: `openstack/latest/…`; `opennebula`:
//! `context.sh`).
//!
//! Everything here is text in, text out: hearthd reads the snippets and the node's
//! resolv.conf, builds the ISO image and writes the drive.

use std::fmt::Write as _;

use sha1::Digest as _;

use crate::GuestKind;
use crate::guest::Section;
use crate::propstr::{PropDef, PropKind, PropSchema, PropertyString};
use crate::schema::{Value, check};
use crate::vmid::Vmid;

/// The keys whose change makes the cloud-init drive stale (Proxmox's `cloudinitoptions`, and
/// `ipconfigN`).
pub const KEYS: &[&str] =
    &["cicustom", "cipassword", "citype", "ciupgrade", "ciuser", "nameserver", "searchdomain", "sshkeys"];

/// The size of a new cloud-init drive, as Proxmox allocates it.
pub const DRIVE_SIZE: u64 = 4 << 20;

/// The generated files and snippets together must stay below this, so the ISO fits the drive.
pub const MAX_CONTENT: usize = 3 << 20;

/// A snippet read for `cicustom` may not be larger than this (Proxmox's limit).
pub const MAX_SNIPPET: u64 = 1 << 20;

/// What `cipassword` shows instead of its value.
pub const MASK: &str = "**********";

/// Whether `key` is one of the cloud-init keys.
pub fn is_key(key: &str) -> bool {
    KEYS.contains(&key)
        || key.strip_prefix("ipconfig").is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
}

fn ip4(v: &str) -> Result<String, String> {
    match v {
        "dhcp" => Ok(v.to_owned()),
        "manual" => Err("invalid IPv4 setting 'manual': expected dhcp or ADDRESS/PREFIX".into()),
        _ => check::ip4_config(v),
    }
}

fn ip6(v: &str) -> Result<String, String> {
    match v {
        "manual" => Err("invalid IPv6 setting 'manual': expected auto, dhcp or ADDRESS/PREFIX".into()),
        _ => check::ip6_config(v),
    }
}

/// `ipconfigN`: `[ip=<CIDR|dhcp>][,gw=<IPv4>][,ip6=<CIDR|auto|dhcp>][,gw6=<IPv6>]`.
pub static IPCONFIG: PropSchema = PropSchema {
    default_key: None,
    bare_default: false,
    model: None,
    props: &[
        PropDef::new("ip", PropKind::Text(ip4), "IPv4 address in CIDR form, or dhcp"),
        PropDef::new("gw", PropKind::Text(check::ipv4), "default IPv4 gateway (needs ip)"),
        PropDef::new("ip6", PropKind::Text(ip6), "IPv6 address in CIDR form, auto or dhcp"),
        PropDef::new("gw6", PropKind::Text(check::ipv6), "default IPv6 gateway (needs ip6)"),
    ],
};

fn snippet_volume(v: &str) -> Result<String, String> {
    if v.starts_with('/') || check::allocation(v).is_some() {
        return Err(format!("invalid volume '{v}': expected a snippet volume STORAGE:snippets/NAME"));
    }
    check::volume(v)
}

/// `cicustom`: snippet volumes that replace the generated files.
pub static CICUSTOM: PropSchema = PropSchema {
    default_key: None,
    bare_default: false,
    model: None,
    props: &[
        PropDef::new("meta", PropKind::Text(snippet_volume), "snippet holding the meta data"),
        PropDef::new("network", PropKind::Text(snippet_volume), "snippet holding the network configuration"),
        PropDef::new("user", PropKind::Text(snippet_volume), "snippet holding the user data"),
        PropDef::new("vendor", PropKind::Text(snippet_volume), "snippet holding the vendor data"),
    ],
};

/// `ciuser`: a user name as cloud-init takes it.
pub fn user_name(v: &str) -> Result<String, String> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && !v.starts_with('-')
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.$".contains(&b));
    if ok { Ok(v.to_owned()) } else { Err(format!("invalid user name '{v}'")) }
}

/// `cipassword`: any text on one line; hearthd stores it hashed.
pub fn password(v: &str) -> Result<String, String> {
    if v.is_empty() || v.contains(['\n', '\r', '\0']) {
        return Err("expected a password on one line".into());
    }
    Ok(v.to_owned())
}

/// Whether a password is already a crypt hash (`$1$`, `$5$`, `$6$`, `$2a$`, `$2y$`), which is
/// stored as given — Proxmox's rule.
pub fn is_hashed(password: &str) -> bool {
    let Some(rest) = password.strip_prefix('$') else { return false };
    let Some((id, rest)) = rest.split_once('$') else { return false };
    matches!(id, "1" | "5" | "6" | "2a" | "2y")
        && rest.split_once('$').is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
}

/// A SHA-512 crypt string `$6$<salt>$<hash>` (5000 rounds, the default of glibc and of
/// cloud-init's chpasswd). `salt` comes from the caller's randomness: up to 16 characters of
/// `[./0-9A-Za-z]`.
pub fn hash_password(plain: &str, salt: &str) -> String {
    let hash = sha_crypt::sha512_crypt_b64(plain.as_bytes(), salt.as_bytes(), &sha_crypt::Sha512Params::default())
        .expect("the default rounds are valid");
    format!("$6${salt}${hash}")
}

/// Turns random bytes into a crypt salt.
pub fn salt(random: &[u8; 16]) -> String {
    const ALPHABET: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    random.iter().map(|b| ALPHABET[usize::from(b & 63)] as char).collect()
}

/// URL-encodes text as Perl's `URI::Escape::uri_escape` does (all but `A-Za-z0-9-._~`): the
/// form `sshkeys` is stored in.
pub fn uri_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Decodes `%XX` escapes.
pub fn uri_unescape(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or_else(|| format!("incomplete escape at byte {i}"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("invalid escape '%{hex}'"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the decoded text is not UTF-8".to_owned())
}

/// The key types OpenSSH's `authorized_keys` takes.
const SSH_KEY_TYPES: &[&str] = &[
    "ssh-rsa",
    "ssh-dss",
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// The public keys of an `sshkeys` value, one per non-blank line.
pub fn ssh_keys(stored: &str) -> Vec<String> {
    uri_unescape(stored)
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim_end_matches('\r').to_owned())
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// `sshkeys`: URL-encoded public keys, one per line, each `<type> <base64> [comment]`.
pub fn sshkeys(v: &str) -> Result<String, String> {
    let text = uri_unescape(v)?;
    let mut count = 0;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut parts = line.split_whitespace();
        let kind = parts.next().unwrap_or_default();
        let blob = parts.next().unwrap_or_default();
        let base64 = !blob.is_empty() && blob.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
        if !SSH_KEY_TYPES.contains(&kind) || !base64 {
            let shown: String = line.chars().take(40).collect();
            return Err(format!("'{shown}' is not an OpenSSH public key (expected '<type> <base64> [comment]')"));
        }
        count += 1;
    }
    if count == 0 {
        return Err("expected at least one public key".into());
    }
    // Stored in the canonical escaped form, whatever escapes the caller used.
    Ok(uri_escape(&text))
}

/// Checks what a property string cannot: gateways need an address of their family, and no
/// gateway goes with DHCP or SLAAC.
pub fn check_ipconfig(props: &PropertyString) -> Result<(), String> {
    for (gw, ip) in [("gw", "ip"), ("gw6", "ip6")] {
        if props.get(gw).is_none() {
            continue;
        }
        match props.get(ip) {
            None => return Err(format!("{gw}: a gateway needs '{ip}' set to an address")),
            Some(addr @ ("dhcp" | "auto")) => return Err(format!("{gw}: a gateway cannot go with {ip}={addr}")),
            Some(_) => {}
        }
    }
    Ok(())
}

/// The cloud-init drive form of a disk volume: `STORAGE:cloudinit` asks for one, an existing
/// one is named `vm-<vmid>-cloudinit[.<format>]`. Answers the storage of a new one.
pub fn new_drive(volume: &str) -> Option<&str> {
    volume.strip_suffix(":cloudinit").filter(|s| check::storage_id(s).is_ok())
}

/// Whether a volume id names a cloud-init drive of `vmid`.
pub fn is_drive(volume: &str, vmid: Vmid) -> bool {
    let name = volume.rsplit(['/', ':']).next().unwrap_or_default();
    let stem = name.split_once('.').map_or(name, |(s, _)| s);
    stem == format!("vm-{vmid}-cloudinit")
}

/// Whether a volume id names the cloud-init drive of any guest (`vm-<n>-cloudinit`): a
/// restored or imported configuration may name another guest's.
pub fn is_any_drive(volume: &str) -> bool {
    let name = volume.rsplit(['/', ':']).next().unwrap_or_default();
    let stem = name.split_once('.').map_or(name, |(s, _)| s);
    stem.strip_prefix("vm-")
        .and_then(|rest| rest.strip_suffix("-cloudinit"))
        .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

/// The drive keys of `config` holding a cloud-init drive of `vmid`, and their volumes.
pub fn drives(config: &Section, vmid: Vmid) -> Vec<(String, String)> {
    let schema = GuestKind::Vm.schema();
    config
        .iter()
        .filter(|(k, _)| !k.starts_with("unused"))
        .filter_map(|(k, v)| Some((k, schema.property(k, v)?.get("file")?.to_owned())))
        .filter(|(_, file)| is_drive(file, vmid))
        .map(|(k, f)| (k.clone(), f))
        .collect()
}

/// The drive format: `citype`, else configdrive2 for Windows guests and nocloud otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    NoCloud,
    ConfigDrive2,
    OpenNebula,
}

fn text<'a>(config: &'a Section, key: &str) -> Option<&'a str> {
    config.get(key).and_then(Value::as_str)
}

impl Flavor {
    pub fn of(config: &Section) -> Flavor {
        match text(config, "citype") {
            Some("configdrive2") => Flavor::ConfigDrive2,
            Some("opennebula") => Flavor::OpenNebula,
            Some(_) => Flavor::NoCloud,
            None if text(config, "ostype").is_some_and(|o| o.starts_with('w')) => Flavor::ConfigDrive2,
            None => Flavor::NoCloud,
        }
    }

    /// The ISO9660 volume label the guest looks for.
    pub fn label(self) -> &'static str {
        match self {
            Flavor::NoCloud => "cidata",
            Flavor::ConfigDrive2 => "config-2",
            Flavor::OpenNebula => "CONTEXT",
        }
    }
}

/// The node's resolv.conf, for guests that name no DNS settings of their own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostDns {
    pub search: Option<String>,
    pub nameservers: Vec<String>,
}

impl HostDns {
    /// Reads `search`/`domain` and the first three `nameserver` lines.
    pub fn parse(resolv_conf: &str) -> HostDns {
        let mut dns = HostDns::default();
        for line in resolv_conf.lines().map(str::trim) {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("search" | "domain") => dns.search = Some(words.collect::<Vec<_>>().join(" ")),
                Some("nameserver") if dns.nameservers.len() < 3 => {
                    dns.nameservers.extend(words.next().map(str::to_owned))
                }
                _ => {}
            }
        }
        dns
    }
}

fn dns(config: &Section, host: &HostDns) -> (Vec<String>, Vec<String>) {
    let search = text(config, "searchdomain").map(str::to_owned).or_else(|| host.search.clone()).unwrap_or_default();
    let nameservers = match text(config, "nameserver") {
        Some(list) => list.split_whitespace().map(str::to_owned).collect(),
        None => host.nameservers.clone(),
    };
    (search.split_whitespace().map(str::to_owned).collect(), nameservers)
}

fn hostname_fqdn(config: &Section, vmid: Vmid) -> (String, String) {
    let name = text(config, "name").map_or_else(|| format!("VM{vmid}"), str::to_owned);
    if let Some((host, _)) = name.split_once('.') {
        return (host.to_owned(), name.clone());
    }
    match text(config, "searchdomain") {
        Some(search) if !search.is_empty() => (name.clone(), format!("{name}.{search}")),
        _ => (name.clone(), name),
    }
}

/// `user-data` (`#cloud-config`); with `mask` the password shows as `**********`.
pub fn user_data(config: &Section, vmid: Vmid, mask: bool) -> String {
    let (hostname, fqdn) = hostname_fqdn(config, vmid);
    let mut out = format!("#cloud-config\nhostname: {hostname}\nmanage_etc_hosts: true\nfqdn: {fqdn}\n");
    let user = text(config, "ciuser");
    if let Some(user) = user {
        let _ = writeln!(out, "user: {user}");
        if user == "root" {
            out.push_str("disable_root: False\n");
        }
    }
    if let Some(password) = text(config, "cipassword") {
        let _ = writeln!(out, "password: {}", if mask { MASK } else { password });
    }
    if let Some(keys) = text(config, "sshkeys") {
        out.push_str("ssh_authorized_keys:\n");
        for key in ssh_keys(keys) {
            let _ = writeln!(out, "  - {key}");
        }
    }
    out.push_str("chpasswd:\n  expire: False\n");
    if user != Some("root") {
        out.push_str("users:\n  - default\n");
    }
    if config.get("ciupgrade") != Some(&Value::Bool(false)) {
        out.push_str("package_upgrade: true\n");
    }
    out
}

/// The `netN` keys that have an `ipconfigN`, in Proxmox's (string) order, with the MAC and the
/// parsed ipconfig.
fn interfaces(config: &Section) -> Vec<(String, Option<String>, Option<String>, PropertyString)> {
    let schema = GuestKind::Vm.schema();
    config
        .iter()
        .filter_map(|(key, value)| {
            let index = key.strip_prefix("net")?;
            let nic = schema.property(key, value)?;
            let ipconfig = text(config, &format!("ipconfig{index}"))?;
            let ipconfig = IPCONFIG.parse("ipconfig", ipconfig).ok()?;
            Some((
                index.to_owned(),
                nic.get("macaddr").map(str::to_lowercase),
                nic.get("mtu").map(str::to_owned),
                ipconfig,
            ))
        })
        .collect()
}

/// `10.0.0.5/24` → (`10.0.0.5`, `255.255.255.0`).
fn split_ip4(cidr: &str) -> (String, String) {
    let (addr, prefix) = cidr.split_once('/').unwrap_or((cidr, "32"));
    let prefix: u32 = prefix.parse().unwrap_or(32).min(32);
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
    (addr.to_owned(), std::net::Ipv4Addr::from(mask).to_string())
}

/// `network-config` in cloud-init's version 1 format, for nocloud.
pub fn nocloud_network(config: &Section, host: &HostDns) -> String {
    let mut out = String::from("version: 1\nconfig:\n");
    for (index, mac, _, ipconfig) in interfaces(config) {
        let mac = mac.unwrap_or_default();
        let _ =
            write!(out, "    - type: physical\n      name: eth{index}\n      mac_address: '{mac}'\n      subnets:\n");
        let i = "      ";
        if let Some(ip) = ipconfig.get("ip") {
            if ip == "dhcp" {
                let _ = writeln!(out, "{i}- type: dhcp4");
            } else {
                let (addr, mask) = split_ip4(ip);
                let _ = write!(out, "{i}- type: static\n{i}  address: '{addr}'\n{i}  netmask: '{mask}'\n");
                if let Some(gw) = ipconfig.get("gw") {
                    let _ = writeln!(out, "{i}  gateway: '{gw}'");
                }
            }
        }
        if let Some(ip) = ipconfig.get("ip6") {
            match ip {
                "dhcp" => {
                    let _ = writeln!(out, "{i}- type: dhcp6");
                }
                "auto" => {
                    let _ = writeln!(out, "{i}- type: ipv6_slaac");
                }
                _ => {
                    let _ = write!(out, "{i}- type: static6\n{i}  address: '{ip}'\n");
                    if let Some(gw) = ipconfig.get("gw6") {
                        let _ = writeln!(out, "{i}  gateway: '{gw}'");
                    }
                }
            }
        }
    }
    let (search, nameservers) = dns(config, host);
    out.push_str("    - type: nameserver\n");
    if !nameservers.is_empty() {
        out.push_str("      address:\n");
        for ns in &nameservers {
            let _ = writeln!(out, "      - '{ns}'");
        }
    }
    if !search.is_empty() {
        out.push_str("      search:\n");
        for domain in &search {
            let _ = writeln!(out, "      - '{domain}'");
        }
    }
    out
}

/// The network configuration of configdrive2, in ifupdown's interfaces(5) form.
pub fn configdrive2_network(config: &Section, host: &HostDns) -> String {
    let mut out = String::from("auto lo\niface lo inet loopback\n\n");
    let (search, nameservers) = dns(config, host);
    if !nameservers.is_empty() {
        let _ = writeln!(out, "        dns_nameservers {}", nameservers.join(" "));
    }
    if !search.is_empty() {
        let _ = writeln!(out, "        dns_search {}", search.join(" "));
    }
    for (index, _, _, ipconfig) in interfaces(config) {
        let id = format!("eth{index}");
        let _ = writeln!(out, "auto {id}");
        if let Some(ip) = ipconfig.get("ip") {
            if ip == "dhcp" {
                let _ = writeln!(out, "iface {id} inet dhcp");
            } else {
                let (addr, mask) = split_ip4(ip);
                let _ = write!(out, "iface {id} inet static\n        address {addr}\n        netmask {mask}\n");
                if let Some(gw) = ipconfig.get("gw") {
                    let _ = writeln!(out, "        gateway {gw}");
                }
            }
        }
        if let Some(ip) = ipconfig.get("ip6") {
            if ip == "auto" || ip == "dhcp" {
                let _ = writeln!(out, "iface {id} inet6 {ip}");
            } else {
                let (addr, mask) = ip.split_once('/').unwrap_or((ip, "128"));
                let _ = write!(out, "iface {id} inet6 static\n        address {addr}\n        netmask {mask}\n");
                if let Some(gw) = ipconfig.get("gw6") {
                    let _ = writeln!(out, "        gateway {gw}");
                }
            }
        }
    }
    out
}

fn sha1_hex(user: &str, network: &str) -> String {
    let mut hasher = sha1::Sha1::new();
    hasher.update(user.as_bytes());
    hasher.update(network.as_bytes());
    crate::hex::encode(&hasher.finalize())
}

fn opennebula_context(config: &Section, vmid: Vmid, host: &HostDns) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "USERNAME={}", text(config, "ciuser").unwrap_or("root"));
    if let Some(password) = text(config, "cipassword") {
        let _ = writeln!(out, "CRYPTED_PASSWORD_BASE64={}", base64(password.as_bytes()));
    }
    if let Some(keys) = text(config, "sshkeys") {
        let keys: Vec<String> = ssh_keys(keys).iter().map(|k| k.trim().to_owned()).collect();
        let _ = writeln!(out, "SSH_PUBLIC_KEY=\"{}\"", keys.join("\n"));
    }
    let (hostname, _) = hostname_fqdn(config, vmid);
    let _ = writeln!(out, "SET_HOSTNAME={hostname}");
    let (search, nameservers) = dns(config, host);
    if !nameservers.is_empty() {
        let _ = writeln!(out, "DNS=\"{}\"", nameservers.join(" "));
    }
    if !search.is_empty() {
        let _ = writeln!(out, "SEARCH_DOMAIN=\"{}\"", search.join(" "));
    }
    let mut enabled = false;
    for (index, mac, mtu, ipconfig) in interfaces(config) {
        let eth = format!("ETH{index}");
        let mac = mac.unwrap_or_default();
        if let Some(ip) = ipconfig.get("ip") {
            enabled = true;
            if ip == "dhcp" {
                let _ = writeln!(out, "{eth}_DHCP=YES");
            } else {
                let (addr, mask) = split_ip4(ip);
                let _ = write!(out, "{eth}_IP={addr}\n{eth}_MASK={mask}\n{eth}_MAC={mac}\n");
                if let Some(gw) = ipconfig.get("gw") {
                    let _ = writeln!(out, "{eth}_GATEWAY={gw}");
                }
            }
            if let Some(mtu) = &mtu {
                let _ = writeln!(out, "{eth}_MTU={mtu}");
            }
        }
        if let Some(ip) = ipconfig.get("ip6") {
            enabled = true;
            match ip {
                "dhcp" => {
                    let _ = writeln!(out, "{eth}_DHCP6=YES");
                }
                "auto" => {
                    let _ = writeln!(out, "{eth}_AUTO6=YES");
                }
                _ => {
                    let (addr, mask) = ip.split_once('/').unwrap_or((ip, "128"));
                    let _ = write!(out, "{eth}_IP6={addr}\n{eth}_MASK6={mask}\n{eth}_MAC6={mac}\n");
                    if let Some(gw) = ipconfig.get("gw6") {
                        let _ = writeln!(out, "{eth}_GATEWAY6={gw}");
                    }
                }
            }
            if let Some(mtu) = &mtu {
                let _ = writeln!(out, "{eth}_MTU={mtu}");
            }
        }
    }
    if enabled {
        out.push_str("NETWORK=YES\n");
    }
    out
}

/// Standard base64 with padding; Perl's `encode_base64` adds a newline, which Proxmox keeps.
fn base64(data: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out.push('\n');
    out
}

/// The snippets `cicustom` names, already read.
#[derive(Clone, Debug, Default)]
pub struct Custom {
    pub user: Option<String>,
    pub network: Option<String>,
    pub meta: Option<String>,
    pub vendor: Option<String>,
}

/// Which generated text `dump` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpType {
    User,
    Network,
    Meta,
}

impl std::str::FromStr for DumpType {
    type Err = String;

    fn from_str(s: &str) -> Result<DumpType, String> {
        match s {
            "user" => Ok(DumpType::User),
            "network" => Ok(DumpType::Network),
            "meta" => Ok(DumpType::Meta),
            _ => Err(format!("invalid type '{s}' (allowed: user, network, meta)")),
        }
    }
}

/// The generated configuration of one kind, as `qm cloudinit dump` shows it (snippets are not
/// read: it is what the snippets would replace).
pub fn dump(config: &Section, vmid: Vmid, what: DumpType, host: &HostDns, mask: bool) -> String {
    let flavor = Flavor::of(config);
    let network = || match flavor {
        Flavor::NoCloud => nocloud_network(config, host),
        _ => configdrive2_network(config, host),
    };
    match what {
        DumpType::User => user_data(config, vmid, mask),
        DumpType::Network => network(),
        // The instance id hashes the real password, not the mask.
        DumpType::Meta => {
            let id = sha1_hex(&user_data(config, vmid, false), &network());
            match flavor {
                Flavor::NoCloud => format!("instance-id: {id}\n"),
                _ => configdrive2_metadata(&id),
            }
        }
    }
}

fn configdrive2_metadata(uuid: &str) -> String {
    format!("{{\n     \"uuid\": \"{uuid}\",\n     \"network_config\": {{ \"content_path\": \"/content/0000\" }}\n}}\n")
}

/// The files of the drive (paths relative to the ISO's root) and its volume label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriveContent {
    pub label: &'static str,
    pub files: Vec<(String, String)>,
}

/// Everything the drive holds; snippets replace the generated files they stand for.
pub fn generate(config: &Section, vmid: Vmid, custom: Custom, host: &HostDns) -> Result<DriveContent, String> {
    let flavor = Flavor::of(config);
    let files = match flavor {
        Flavor::OpenNebula => vec![("context.sh".to_owned(), opennebula_context(config, vmid, host))],
        Flavor::NoCloud | Flavor::ConfigDrive2 => {
            let user = custom.user.unwrap_or_else(|| user_data(config, vmid, false));
            let network = custom.network.unwrap_or_else(|| match flavor {
                Flavor::NoCloud => nocloud_network(config, host),
                _ => configdrive2_network(config, host),
            });
            let vendor = custom.vendor.unwrap_or_default();
            let meta = custom.meta.unwrap_or_else(|| {
                let id = sha1_hex(&user, &network);
                match flavor {
                    Flavor::NoCloud => format!("instance-id: {id}\n"),
                    _ => configdrive2_metadata(&id),
                }
            });
            if user.len() + network.len() + meta.len() + vendor.len() > MAX_CONTENT {
                return Err("the cloud-init files and snippets together are larger than 3 MiB".into());
            }
            match flavor {
                Flavor::NoCloud => vec![
                    ("user-data".to_owned(), user),
                    ("network-config".to_owned(), network),
                    ("meta-data".to_owned(), meta),
                    ("vendor-data".to_owned(), vendor),
                ],
                _ => vec![
                    ("openstack/latest/user_data".to_owned(), user),
                    ("openstack/content/0000".to_owned(), network),
                    ("openstack/latest/meta_data.json".to_owned(), meta),
                    ("openstack/latest/vendor_data.json".to_owned(), vendor),
                ],
            }
        }
    };
    Ok(DriveContent { label: flavor.label(), files })
}

/// The cloud-init settings of a configuration: what the drive was made from, for `pending`.
pub fn settings(config: &Section) -> Section {
    config.iter().filter(|(k, _)| is_key(k)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;
    use expect_test::expect;

    fn config(pairs: &[(&str, &str)]) -> Section {
        let schema = GuestKind::Vm.schema();
        pairs.iter().map(|(k, v)| ((*k).to_owned(), schema.parse_cli(k, v).unwrap())).collect()
    }

    fn vmid() -> Vmid {
        Vmid::new(123).unwrap()
    }

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHearthTestKey user@host";

    #[test]
    fn the_generated_files_are_proxmoxs() {
        let c = config(&[
            ("name", "ubuntu2"),
            ("net0", "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0"),
            ("ipconfig0", "ip=10.0.10.123/24,gw=10.0.10.1"),
            ("ciuser", "alice"),
            ("cipassword", "$6$salt$hash"),
            ("sshkeys", &uri_escape(&format!("{KEY}\n"))),
            ("nameserver", "10.0.10.2"),
            ("searchdomain", "example.com"),
        ]);
        let host = HostDns::default();
        expect![[r#"
            #cloud-config
            hostname: ubuntu2
            manage_etc_hosts: true
            fqdn: ubuntu2.example.com
            user: alice
            password: $6$salt$hash
            ssh_authorized_keys:
              - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHearthTestKey user@host
            chpasswd:
              expire: False
            users:
              - default
            package_upgrade: true
        "#]]
        .assert_eq(&user_data(&c, vmid(), false));
        assert!(user_data(&c, vmid(), true).contains("password: **********\n"));
        expect![[r#"
            version: 1
            config:
                - type: physical
                  name: eth0
                  mac_address: 'bc:24:11:aa:bb:cc'
                  subnets:
                  - type: static
                    address: '10.0.10.123'
                    netmask: '255.255.255.0'
                    gateway: '10.0.10.1'
                - type: nameserver
                  address:
                  - '10.0.10.2'
                  search:
                  - 'example.com'
        "#]]
        .assert_eq(&nocloud_network(&c, &host));
        expect![[r#"
            auto lo
            iface lo inet loopback

                    dns_nameservers 10.0.10.2
                    dns_search example.com
            auto eth0
            iface eth0 inet static
                    address 10.0.10.123
                    netmask 255.255.255.0
                    gateway 10.0.10.1
        "#]]
        .assert_eq(&configdrive2_network(&c, &host));
        let meta = dump(&c, vmid(), DumpType::Meta, &host, true);
        assert!(meta.starts_with("instance-id: ") && meta.len() == "instance-id: \n".len() + 40, "{meta}");
        let drive = generate(&c, vmid(), Custom::default(), &host).unwrap();
        assert_eq!(drive.label, "cidata");
        assert_eq!(drive.files[2].1, meta);
    }

    #[test]
    fn dns_falls_back_to_the_host_and_ipv6_and_dhcp_are_written() {
        let c = config(&[("net1", "virtio=BC:24:11:00:00:01"), ("ipconfig1", "ip=dhcp,ip6=auto"), ("ciupgrade", "0")]);
        let host = HostDns::parse("# generated\nsearch lan\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n");
        expect![[r#"
            version: 1
            config:
                - type: physical
                  name: eth1
                  mac_address: 'bc:24:11:00:00:01'
                  subnets:
                  - type: dhcp4
                  - type: ipv6_slaac
                - type: nameserver
                  address:
                  - '192.0.2.53'
                  - '192.0.2.54'
                  search:
                  - 'lan'
        "#]]
        .assert_eq(&nocloud_network(&c, &host));
        assert!(!user_data(&c, vmid(), false).contains("package_upgrade"));
        assert!(user_data(&c, vmid(), false).starts_with("#cloud-config\nhostname: VM123\n"));
    }

    #[test]
    fn opennebula_gets_its_context_file() {
        let c = config(&[
            ("citype", "opennebula"),
            ("net0", "virtio=BC:24:11:00:00:02,mtu=1400"),
            ("ipconfig0", "ip=192.0.2.10/25,gw=192.0.2.1,ip6=auto"),
            ("cipassword", "$6$x$y"),
            ("sshkeys", &uri_escape(KEY)),
        ]);
        let drive = generate(&c, vmid(), Custom::default(), &HostDns::default()).unwrap();
        assert_eq!(drive.label, "CONTEXT");
        expect![[r#"
            USERNAME=root
            CRYPTED_PASSWORD_BASE64=JDYkeCR5

            SSH_PUBLIC_KEY="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHearthTestKey user@host"
            SET_HOSTNAME=VM123
            ETH0_IP=192.0.2.10
            ETH0_MASK=255.255.255.128
            ETH0_MAC=bc:24:11:00:00:02
            ETH0_GATEWAY=192.0.2.1
            ETH0_MTU=1400
            ETH0_AUTO6=YES
            ETH0_MTU=1400
            NETWORK=YES
        "#]]
        .assert_eq(&drive.files[0].1);
    }

    #[test]
    fn keys_are_checked() {
        let schema = GuestKind::Vm.schema();
        let err = |k: &str, v: &str| schema.parse_cli(k, v).unwrap_err().to_string();
        expect!["ipconfig0: ip: invalid IPv4 CIDR '10.0.0.1': expected ADDRESS/PREFIX"]
            .assert_eq(&err("ipconfig0", "ip=10.0.0.1"));
        expect!["citype: invalid value 'cloud' (allowed: configdrive2, nocloud, opennebula)"]
            .assert_eq(&err("citype", "cloud"));
        expect!["sshkeys: 'not-a-key' is not an OpenSSH public key (expected '<type> <base64> [comment]')"]
            .assert_eq(&err("sshkeys", "not-a-key"));
        let props = IPCONFIG.parse("ipconfig0", "gw=10.0.0.1").unwrap();
        expect!["gw: a gateway needs 'ip' set to an address"].assert_eq(&check_ipconfig(&props).unwrap_err());
        let props = IPCONFIG.parse("ipconfig0", "ip=dhcp,gw=10.0.0.1").unwrap();
        assert!(check_ipconfig(&props).is_err());
        assert_eq!(schema.parse_cli("sshkeys", "ssh-rsa%20AAAA%20x").unwrap(), Value::Str("ssh-rsa%20AAAA%20x".into()));
        assert!(schema.parse_cli("cicustom", "user=local:snippets/u.yaml").is_ok());
        assert!(schema.parse_cli("cicustom", "user=/etc/shadow").is_err());
        assert!(schema.parse_cli("ide2", "local:cloudinit").is_ok());
    }

    #[test]
    fn passwords_hash_as_crypt_does() {
        // The glibc crypt(3) test vector for SHA-512 with the default rounds.
        assert_eq!(
            hash_password("Hello world!", "saltstring"),
            "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
        );
        assert!(is_hashed("$6$saltstring$svn8"));
        assert!(!is_hashed("$6$nohash"));
        assert!(!is_hashed("secret"));
    }

    #[test]
    fn drives_and_escapes() {
        assert_eq!(new_drive("local:cloudinit"), Some("local"));
        assert_eq!(new_drive("local:100/vm-100-cloudinit.qcow2"), None);
        assert!(is_drive("local:123/vm-123-cloudinit.qcow2", vmid()));
        assert!(is_drive("fast:vm-123-cloudinit", vmid()));
        assert!(!is_drive("local:124/vm-124-cloudinit.qcow2", vmid()));
        assert!(is_any_drive("local:124/vm-124-cloudinit.qcow2"));
        assert!(!is_any_drive("local:124/vm-124-disk-0.qcow2"));
        assert_eq!(uri_escape("a b\n+"), "a%20b%0A%2B");
        assert_eq!(uri_unescape("a%20b%0A%2B").unwrap(), "a b\n+");
        assert_eq!(base64(b"$6$x"), "JDYkeA==\n");
    }
}
