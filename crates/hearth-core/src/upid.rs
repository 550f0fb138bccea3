//! Task ids in Proxmox's UPID form: `UPID:node:PID:PSTART:STARTTIME:type:id:user:`.

use std::fmt;
use std::str::FromStr;

/// A unique task id. `pid` and `pstart` (process start in clock ticks since boot) name the
/// process that ran the task, so a reused pid is not mistaken for a live task.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Upid {
    pub node: String,
    pub pid: u32,
    pub pstart: u64,
    /// Unix seconds.
    pub starttime: u32,
    /// Task type, e.g. `qmcreate`, `vzdestroy`.
    pub worker_type: String,
    /// The object the task is about, usually a VMID; may be empty.
    pub id: String,
    /// `user@realm` or a token id.
    pub user: String,
}

/// A string that is not a UPID, or parts that would not form one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid task id '{0}': expected UPID:node:pid:pstart:starttime:type:id:user:")]
pub struct UpidError(pub String);

fn valid_node(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

fn valid_field(s: &str, may_be_empty: bool) -> bool {
    (may_be_empty || !s.is_empty()) && !s.chars().any(|c| c == ':' || c == '/' || c.is_whitespace())
}

impl Upid {
    /// Builds a UPID, checking that every part can be written and read back.
    pub fn new(
        node: &str,
        pid: u32,
        pstart: u64,
        starttime: u32,
        worker_type: &str,
        id: &str,
        user: &str,
    ) -> Result<Upid, UpidError> {
        let upid = Upid {
            node: node.to_owned(),
            pid,
            pstart,
            starttime,
            worker_type: worker_type.to_owned(),
            id: id.to_owned(),
            user: user.to_owned(),
        };
        if !valid_node(node)
            || !valid_field(worker_type, false)
            || !valid_field(id, true)
            || !valid_field(user, false)
            || pstart > 0xF_FFFF_FFFF
        {
            return Err(UpidError(upid.to_string()));
        }
        Ok(upid)
    }

    /// The task log bucket: the last hex digit of the start time, as Proxmox files them.
    pub fn bucket(&self) -> char {
        let digit = self.starttime & 0xF;
        char::from_digit(digit, 16).map_or('0', |c| c.to_ascii_uppercase())
    }
}

impl fmt::Display for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "UPID:{}:{:08X}:{:08X}:{:08X}:{}:{}:{}:",
            self.node, self.pid, self.pstart, self.starttime, self.worker_type, self.id, self.user
        )
    }
}

impl FromStr for Upid {
    type Err = UpidError;

    fn from_str(s: &str) -> Result<Upid, UpidError> {
        let err = || UpidError(s.to_owned());
        let rest = s.strip_prefix("UPID:").ok_or_else(err)?;
        let rest = rest.strip_suffix(':').ok_or_else(err)?;
        let parts: Vec<&str> = rest.split(':').collect();
        let [node, pid, pstart, starttime, worker_type, id, user] = parts[..] else {
            return Err(err());
        };
        let hex = |v: &str, min: usize, max: usize| -> Result<u64, UpidError> {
            if v.len() < min || v.len() > max || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err());
            }
            u64::from_str_radix(v, 16).map_err(|_| err())
        };
        let pid = u32::try_from(hex(pid, 8, 8)?).map_err(|_| err())?;
        let pstart = hex(pstart, 8, 9)?;
        let starttime = u32::try_from(hex(starttime, 8, 8)?).map_err(|_| err())?;
        Upid::new(node, pid, pstart, starttime, worker_type, id, user).map_err(|_| err())
    }
}

impl serde::Serialize for Upid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Upid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Upid, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_proxmox_example() {
        let s = "UPID:pve1:000A1B2C:0012D687:6650A1F0:qmstart:100:root@pam:";
        let upid: Upid = s.parse().unwrap();
        assert_eq!(upid.node, "pve1");
        assert_eq!(upid.pid, 0x000A_1B2C);
        assert_eq!(upid.worker_type, "qmstart");
        assert_eq!(upid.id, "100");
        assert_eq!(upid.user, "root@pam");
        assert_eq!(upid.to_string(), s);
        assert_eq!(upid.bucket(), '0');
    }

    #[test]
    fn empty_id_and_token_user() {
        let upid = Upid::new("node-1", 1, 2, 0x6650_A1FB, "startall", "", "ops@pam!ci").unwrap();
        assert_eq!(upid.to_string(), "UPID:node-1:00000001:00000002:6650A1FB:startall::ops@pam!ci:");
        assert_eq!(upid.to_string().parse::<Upid>().unwrap(), upid);
        assert_eq!(upid.bucket(), 'B');
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "UPID:pve1:000A1B2C:0012D687:6650A1F0:qmstart:100:root@pam",
            "UPID:pve1:A1B2C:0012D687:6650A1F0:qmstart:100:root@pam:",
            "UPID:-pve:000A1B2C:0012D687:6650A1F0:qmstart:100:root@pam:",
            "UPID:pve1:000A1B2C:0012D687:6650A1F0::100:root@pam:",
            "UPID:pve1:000A1B2C:0012D687:6650A1F0:qm/start:100:root@pam:",
            "UPID:pve1:000A1B2C:0012D687:6650A1F0:qmstart:100:root@pam:extra:",
        ] {
            assert!(bad.parse::<Upid>().is_err(), "{bad:?} accepted");
        }
        assert!(Upid::new("n", 1, 1, 1, "a b", "", "root@pam").is_err());
    }
}
