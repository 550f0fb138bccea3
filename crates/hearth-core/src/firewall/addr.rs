//! Address specifications of firewall rules and IP sets: single addresses, CIDRs, `a-b`
//! ranges, comma lists, `+ipset` and alias references (with optional `dc/` or `guest/` scope).

use std::fmt;
use std::net::IpAddr;

use super::FirewallError;

/// Where a named reference is looked up: unscoped names resolve guest-first, then datacenter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RefScope {
    Any,
    Dc,
    Guest,
}

impl RefScope {
    fn split(name: &str) -> (RefScope, &str) {
        if let Some(rest) = name.strip_prefix("dc/") {
            (RefScope::Dc, rest)
        } else if let Some(rest) = name.strip_prefix("guest/") {
            (RefScope::Guest, rest)
        } else {
            (RefScope::Any, name)
        }
    }
}

/// One network: an address with a prefix length (a plain address has the full length).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn parse(s: &str) -> Option<IpNet> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let n: u8 = p.parse().ok()?;
                if n > max {
                    return None;
                }
                n
            }
            None => max,
        };
        Some(IpNet { addr, prefix })
    }

    pub fn is_v6(&self) -> bool {
        self.addr.is_ipv6()
    }

    fn max(&self) -> u8 {
        if self.is_v6() { 128 } else { 32 }
    }

    /// The network address (host bits cleared); nft refuses CIDRs with host bits set.
    pub fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let m = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
                IpAddr::V4((u32::from(a) & m).into())
            }
            IpAddr::V6(a) => {
                let m = if self.prefix == 0 { 0 } else { u128::MAX << (128 - self.prefix) };
                IpAddr::V6((u128::from(a) & m).into())
            }
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network(), ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let m = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
                u32::from(a) & m == u32::from(n)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let m = if self.prefix == 0 { 0 } else { u128::MAX << (128 - self.prefix) };
                u128::from(a) & m == u128::from(n)
            }
            _ => false,
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == self.max() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.network(), self.prefix)
        }
    }
}

/// One element of an address list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddrItem {
    Net(IpNet),
    Range(IpAddr, IpAddr),
}

impl AddrItem {
    pub fn is_v6(&self) -> bool {
        match self {
            AddrItem::Net(n) => n.is_v6(),
            AddrItem::Range(a, _) => a.is_ipv6(),
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self, ip) {
            (AddrItem::Net(n), ip) => n.contains(ip),
            (AddrItem::Range(IpAddr::V4(a), IpAddr::V4(b)), IpAddr::V4(x)) => a <= &x && &x <= b,
            (AddrItem::Range(IpAddr::V6(a), IpAddr::V6(b)), IpAddr::V6(x)) => a <= &x && &x <= b,
            _ => false,
        }
    }
}

impl fmt::Display for AddrItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddrItem::Net(n) => n.fmt(f),
            AddrItem::Range(a, b) => write!(f, "{a}-{b}"),
        }
    }
}

/// A parsed `-source`/`-dest` value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AddrSpec {
    IpSet { scope: RefScope, name: String },
    Alias { scope: RefScope, name: String },
    List(Vec<AddrItem>),
}

/// IP set and alias names: a letter, then letters, digits, `_` or `-`; 2 to 64 characters.
pub fn valid_object_name(name: &str) -> bool {
    let b = name.as_bytes();
    (2..=64).contains(&b.len())
        && b[0].is_ascii_alphabetic()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
}

fn parse_item(key: &str, s: &str) -> Result<AddrItem, FirewallError> {
    let bad = |why: &str| FirewallError::Invalid {
        key: key.to_string(),
        message: format!("invalid IP address '{s}': {why}"),
    };
    if let Some((a, b)) = s.split_once('-') {
        let a: IpAddr = a.parse().map_err(|_| bad("range start is not an address"))?;
        let b: IpAddr = b.parse().map_err(|_| bad("range end is not an address"))?;
        if a.is_ipv4() != b.is_ipv4() {
            return Err(bad("range mixes IPv4 and IPv6"));
        }
        let backwards = match (a, b) {
            (IpAddr::V4(x), IpAddr::V4(y)) => x > y,
            (IpAddr::V6(x), IpAddr::V6(y)) => x > y,
            _ => false,
        };
        if backwards {
            return Err(bad("range end is below its start"));
        }
        return Ok(AddrItem::Range(a, b));
    }
    IpNet::parse(s).map(AddrItem::Net).ok_or_else(|| bad("expected an address, a CIDR or a range a-b"))
}

impl AddrSpec {
    /// Parses a rule's address option; `key` names it in errors (`source`, `dest`).
    pub fn parse(key: &str, s: &str) -> Result<AddrSpec, FirewallError> {
        let bad = |m: String| FirewallError::Invalid { key: key.to_string(), message: m };
        if let Some(name) = s.strip_prefix('+') {
            let (scope, n) = RefScope::split(name);
            if !valid_object_name(n) {
                return Err(bad(format!("invalid ipset name '{name}'")));
            }
            return Ok(AddrSpec::IpSet { scope, name: n.to_ascii_lowercase() });
        }
        let (scope, n) = RefScope::split(s);
        if !s.contains(',') && !s.contains(':') && valid_object_name(n) && n.parse::<IpAddr>().is_err() {
            return Ok(AddrSpec::Alias { scope, name: n.to_ascii_lowercase() });
        }
        let parts: Vec<&str> = s.split(',').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad(format!("extraneous commas in list '{s}'")));
        }
        let items = parts.iter().map(|p| parse_item(key, p)).collect::<Result<Vec<_>, _>>()?;
        if items.iter().any(|i| i.is_v6()) && items.iter().any(|i| !i.is_v6()) {
            return Err(bad(format!("detected mixed ipv4/ipv6 addresses in address list '{s}'")));
        }
        if items.len() > 1 && items.iter().any(|i| matches!(i, AddrItem::Range(..))) {
            return Err(bad("you can't use a range in a list".to_string()));
        }
        Ok(AddrSpec::List(items))
    }
}

/// An IP set entry or alias value: an address or CIDR (ranges are not allowed there), or for
/// IP set entries an alias name.
pub fn parse_cidr(key: &str, s: &str) -> Result<IpNet, FirewallError> {
    IpNet::parse(s).ok_or_else(|| FirewallError::Invalid {
        key: key.to_string(),
        message: format!("invalid IP address or CIDR '{s}'"),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_of_a_source() {
        assert!(matches!(AddrSpec::parse("source", "+mgmt").unwrap(), AddrSpec::IpSet { scope: RefScope::Any, .. }));
        assert!(matches!(AddrSpec::parse("source", "+dc/mgmt").unwrap(), AddrSpec::IpSet { scope: RefScope::Dc, .. }));
        assert!(matches!(AddrSpec::parse("source", "myserver").unwrap(), AddrSpec::Alias { .. }));
        let AddrSpec::List(l) = AddrSpec::parse("source", "10.0.0.1,10.0.0.0/8").unwrap() else { panic!() };
        assert_eq!(l.len(), 2);
        let AddrSpec::List(l) = AddrSpec::parse("source", "10.0.0.1-10.0.0.10").unwrap() else { panic!() };
        assert!(l[0].contains("10.0.0.5".parse().unwrap()));
        assert!(!l[0].contains("10.0.0.11".parse().unwrap()));
        assert!(AddrSpec::parse("source", "10.0.0.1,fe80::1").is_err());
        assert!(AddrSpec::parse("source", "10.0.0.300").is_err());
        assert!(AddrSpec::parse("source", "10.0.0.0/33").is_err());
        assert!(AddrSpec::parse("source", "10.0.0.1,,10.0.0.2").is_err());
        assert!(AddrSpec::parse("source", "10.0.0.9-10.0.0.1").is_err());
        assert_eq!(IpNet::parse("192.168.2.10/24").unwrap().to_string(), "192.168.2.0/24");
    }
}
