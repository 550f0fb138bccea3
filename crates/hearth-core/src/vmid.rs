//! Guest ids: VMs and containers share one id space, 100..=999999999, as in Proxmox.

use std::fmt;
use std::str::FromStr;

/// A VM or container id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Vmid(u32);

impl Vmid {
    /// The smallest id a guest may have; ids below it are reserved.
    pub const MIN: u32 = 100;
    /// The largest id a guest may have.
    pub const MAX: u32 = 999_999_999;

    /// Checks the range.
    pub fn new(id: u32) -> Result<Vmid, VmidError> {
        if (Self::MIN..=Self::MAX).contains(&id) { Ok(Vmid(id)) } else { Err(VmidError(id.to_string())) }
    }

    /// The numeric value.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// An id outside 100..=999999999 or not a number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid vmid '{0}': expected an integer from 100 to 999999999")]
pub struct VmidError(pub String);

impl FromStr for Vmid {
    type Err = VmidError;

    fn from_str(s: &str) -> Result<Vmid, VmidError> {
        // Proxmox's regex is ^[1-9][0-9]{2,8}$: no sign, no leading zeros, no spaces.
        let well_formed = !s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit()) && !s.starts_with('0');
        if !well_formed {
            return Err(VmidError(s.to_owned()));
        }
        let id: u32 = s.parse().map_err(|_| VmidError(s.to_owned()))?;
        Vmid::new(id).map_err(|_| VmidError(s.to_owned()))
    }
}

impl TryFrom<u32> for Vmid {
    type Error = VmidError;
    fn try_from(id: u32) -> Result<Vmid, VmidError> {
        Vmid::new(id)
    }
}

impl From<Vmid> for u32 {
    fn from(id: Vmid) -> u32 {
        id.0
    }
}

impl fmt::Display for Vmid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_and_syntax() {
        for ok in ["100", "999999999", "12345"] {
            assert_eq!(ok.parse::<Vmid>().map(|v| v.to_string()).as_deref(), Ok(ok));
        }
        for bad in ["", "99", "0100", "1000000000", "+100", "100 ", "abc", "-100"] {
            assert!(bad.parse::<Vmid>().is_err(), "{bad:?} accepted");
        }
        assert!(Vmid::new(99).is_err());
        assert!(Vmid::new(1_000_000_000).is_err());
        assert_eq!(
            "42".parse::<Vmid>().unwrap_err().to_string(),
            "invalid vmid '42': expected an integer from 100 to 999999999"
        );
    }
}
