//! The node's own settings (`clusterctl node config get|set`, as pvenode config) in
//! `etc/hearth/nodes/<node>/config.toml`, and Wake-on-LAN for a node whose settings name its
//! MAC address (`clusterctl node wakeonlan`).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::PathBuf;

use hearth_proto::{ErrorKind, ErrorReply, Payload};
use serde_json::Value;

use crate::Daemon;

fn invalid(message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(ErrorKind::Invalid, message)
}

/// The keys pvenode config knows, with what each holds.
const KEYS: &[(&str, &str)] = &[
    ("description", "text shown in the node's summary"),
    ("startall-onboot-delay", "seconds startall waits before starting the onboot guests (0..300)"),
    ("wakeonlan", "MAC[,bind-interface=IFACE][,broadcast-address=IPv4]"),
    ("ballooning-target", "RAM usage target for ballooning, in percent (0..100)"),
    ("acme", "[account=NAME][,domains=DOMAIN;DOMAIN...]"),
];

/// The highest `acmedomainN`.
const MAX_ACME_DOMAIN: u32 = 5;

fn config_path(daemon: &Daemon, node: &str) -> PathBuf {
    daemon.root.join("etc/hearth/nodes").join(node).join("config.toml")
}

/// A node's settings; none when it has no file.
fn load(daemon: &Daemon, node: &str) -> Result<BTreeMap<String, Value>, ErrorReply> {
    let path = config_path(daemon, node);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(ErrorReply::new(ErrorKind::Internal, format!("cannot read {}: {e}", path.display()))),
    };
    toml::from_str(&text).map_err(|e| ErrorReply::new(ErrorKind::Internal, format!("{}: {e}", path.display())))
}

fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_word(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// `wakeonlan`'s parts: the MAC, the interface to send from, the address to send to.
#[derive(Debug, PartialEq, Eq)]
struct WakeOnLan {
    mac: [u8; 6],
    interface: Option<String>,
    broadcast: Ipv4Addr,
}

fn parse_wakeonlan(value: &str) -> Result<WakeOnLan, String> {
    let mut mac = None;
    let mut interface = None;
    let mut broadcast = Ipv4Addr::BROADCAST;
    for (i, part) in value.split(',').enumerate() {
        match part.split_once('=') {
            Some(("mac", m)) => mac = Some(m),
            None if i == 0 => mac = Some(part),
            Some(("bind-interface", iface)) if is_word(iface, 15) => interface = Some(iface.to_owned()),
            Some(("bind-interface", iface)) => {
                return Err(format!("bind-interface: '{iface}' is not an interface name"));
            }
            Some(("broadcast-address", addr)) => {
                broadcast = addr.parse().map_err(|_| format!("broadcast-address: '{addr}' is not an IPv4 address"))?;
            }
            _ => {
                return Err(format!(
                    "unknown part '{part}'; expected MAC[,bind-interface=IFACE][,broadcast-address=IPv4]"
                ));
            }
        }
    }
    let mac = mac.filter(|m| is_mac(m)).ok_or_else(|| format!("'{value}' does not start with a MAC address"))?;
    let mut bytes = [0u8; 6];
    for (byte, part) in bytes.iter_mut().zip(mac.split(':')) {
        *byte = u8::from_str_radix(part, 16).map_err(|e| e.to_string())?;
    }
    Ok(WakeOnLan { mac: bytes, interface, broadcast })
}

fn known(key: &str) -> bool {
    KEYS.iter().any(|(k, _)| *k == key)
        || key
            .strip_prefix("acmedomain")
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n <= MAX_ACME_DOMAIN && key.len() == 11)
}

/// Checks one setting and answers it as stored.
fn check(key: &str, value: &str) -> Result<Value, String> {
    let int = |max: i64| -> Result<Value, String> {
        match value.parse::<i64>() {
            Ok(n) if (0..=max).contains(&n) => Ok(Value::from(n)),
            _ => Err(format!("'{value}' is not an integer from 0 to {max}")),
        }
    };
    let safe = |v: &str| !v.is_empty() && v.len() <= 4096 && !v.contains(['\n', '\r', '\0']);
    match key {
        "description" if value.len() <= 64 * 1024 && !value.contains('\0') => Ok(Value::from(value)),
        "description" => Err("must be at most 64 KiB of text".to_owned()),
        "startall-onboot-delay" => int(300),
        "ballooning-target" => int(100),
        "wakeonlan" => parse_wakeonlan(value).map(|_| Value::from(value)),
        _ if (key == "acme" || key.starts_with("acmedomain")) && known(key) => {
            if safe(value) && !value.contains([' ', '\t']) {
                Ok(Value::from(value))
            } else {
                Err(format!("'{value}' is not a property string"))
            }
        }
        _ => Err(format!(
            "unknown key; one of {}, acmedomain0..acmedomain{MAX_ACME_DOMAIN}",
            KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// `clusterctl node config get`: the settings as a JSON object.
pub fn config_get(daemon: &Daemon) -> Result<Payload, ErrorReply> {
    let config = load(daemon, &daemon.node)?;
    Ok(Payload::Text(Value::from(serde_json::Map::from_iter(config)).to_string()))
}

/// `clusterctl node config set`: every value is checked before anything is written.
pub fn config_set(daemon: &Daemon, options: &[(String, String)], delete: &[String]) -> Result<Payload, ErrorReply> {
    if options.is_empty() && delete.is_empty() {
        return Err(invalid("nothing to change; give --KEY VALUE or --delete KEY"));
    }
    let mut checked = Vec::new();
    for (key, value) in options {
        if delete.contains(key) {
            return Err(invalid(format!("{key}: both set and deleted")));
        }
        checked.push((key.clone(), check(key, value).map_err(|m| invalid(format!("{key}: {m}")))?));
    }
    for key in delete {
        if !known(key) {
            return Err(invalid(format!("delete: unknown key '{key}'")));
        }
    }
    // hearthd is the only writer; this serialises its edits.
    static EDIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = EDIT.lock().unwrap_or_else(|p| p.into_inner());
    let mut config = load(daemon, &daemon.node)?;
    for key in delete {
        config.remove(key);
    }
    config.extend(checked);
    let path = config_path(daemon, &daemon.node);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| ErrorReply::new(ErrorKind::Internal, format!("cannot create {}: {e}", dir.display())))?;
    }
    let text = toml::to_string(&config).map_err(|e| ErrorReply::new(ErrorKind::Internal, e.to_string()))?;
    crate::store::write_atomic(&path, text.as_bytes())
        .map_err(|e| ErrorReply::new(ErrorKind::Internal, e.to_string()))?;
    Ok(Payload::Empty)
}

/// The delay before startall starts the onboot guests, from the settings.
pub fn startall_delay(daemon: &Daemon) -> u64 {
    load(daemon, &daemon.node).ok().and_then(|c| c.get("startall-onboot-delay").and_then(Value::as_u64)).unwrap_or(0)
}

/// The magic packet: six 0xff bytes, then the MAC sixteen times.
fn magic_packet(mac: [u8; 6]) -> Vec<u8> {
    let mut packet = vec![0xff; 6];
    for _ in 0..16 {
        packet.extend_from_slice(&mac);
    }
    packet
}

/// `clusterctl node wakeonlan <node>`: sends the magic packet for the node's `wakeonlan` MAC
/// to UDP port 9 of its broadcast address (from its interface, if set); answers the MAC.
pub fn wake_on_lan(daemon: &Daemon, node: &str) -> Result<Payload, ErrorReply> {
    if !is_word(node, 63) {
        return Err(invalid(format!("node: '{node}' is not a node name")));
    }
    if node == daemon.node {
        return Err(invalid(format!("node '{node}' is the local node; it cannot wake itself")));
    }
    let config = load(daemon, node)?;
    let Some(setting) = config.get("wakeonlan").and_then(Value::as_str) else {
        return Err(invalid(format!("node '{node}' has no wakeonlan MAC address configured")));
    };
    let wol = parse_wakeonlan(setting).map_err(|m| invalid(format!("wakeonlan of node '{node}': {m}")))?;
    let fail = |what: &str, e: std::io::Error| ErrorReply::new(ErrorKind::Internal, format!("{what}: {e}"));
    let socket = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))
        .map_err(|e| fail("cannot open a UDP socket", e))?;
    socket.set_broadcast(true).map_err(|e| fail("cannot allow broadcasts", e))?;
    if let Some(interface) = &wol.interface {
        nix::sys::socket::setsockopt(
            &socket,
            nix::sys::socket::sockopt::BindToDevice,
            &std::ffi::OsString::from(interface),
        )
        .map_err(|e| fail(&format!("bind-interface: cannot send from '{interface}'"), e.into()))?;
    }
    socket
        .send_to(&magic_packet(wol.mac), SocketAddrV4::new(wol.broadcast, 9))
        .map_err(|e| fail(&format!("cannot send the magic packet to {}", wol.broadcast), e))?;
    let mac = wol.mac.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
    Ok(Payload::Text(mac))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;

    #[test]
    fn parses_wakeonlan_as_pvenode() {
        let wol = parse_wakeonlan("aa:BB:cc:00:11:22,bind-interface=eno1,broadcast-address=192.0.2.255").unwrap();
        assert_eq!(wol.mac, [0xaa, 0xbb, 0xcc, 0x00, 0x11, 0x22]);
        assert_eq!(wol.interface.as_deref(), Some("eno1"));
        assert_eq!(wol.broadcast, Ipv4Addr::new(192, 0, 2, 255));
        assert_eq!(parse_wakeonlan("mac=aa:bb:cc:00:11:22").unwrap().broadcast, Ipv4Addr::BROADCAST);
        for bad in
            ["", "aa:bb", "aa:bb:cc:00:11:zz", "aa:bb:cc:00:11:22,broadcast-address=x", "aa:bb:cc:00:11:22,port=7"]
        {
            assert!(parse_wakeonlan(bad).is_err(), "{bad}");
        }
        let packet = magic_packet([1, 2, 3, 4, 5, 6]);
        assert_eq!(packet.len(), 102);
        assert_eq!(&packet[..6], &[0xff; 6]);
        assert_eq!(&packet[96..], &[1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn checks_settings() {
        assert_eq!(check("startall-onboot-delay", "10").unwrap(), Value::from(10));
        assert!(check("startall-onboot-delay", "301").is_err());
        assert!(check("ballooning-target", "-1").is_err());
        assert!(check("acmedomain6", "example.com").unwrap_err().starts_with("unknown key"));
        assert!(check("acmedomain0", "example.com,plugin=x").is_ok());
        assert!(check("nope", "1").unwrap_err().starts_with("unknown key"));
    }
}
