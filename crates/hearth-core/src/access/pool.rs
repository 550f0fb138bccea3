//! Resource pools: named sets of guests and storages, so one ACL on `/pool/<name>` covers all
//! of them. Pools nest up to three levels (`prod/web/eu`).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use super::ids::{IdError, is_simple_name};
use crate::vmid::Vmid;

/// A pool: one to three `/`-separated levels of `[A-Za-z0-9.\-_]+`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PoolName(String);

impl PoolName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The pool this one is nested in.
    pub fn parent(&self) -> Option<PoolName> {
        self.0.rsplit_once('/').map(|(parent, _)| PoolName(parent.to_owned()))
    }
}

impl FromStr for PoolName {
    type Err = IdError;

    fn from_str(s: &str) -> Result<PoolName, IdError> {
        let levels: Vec<&str> = s.split('/').collect();
        if levels.len() <= 3 && levels.iter().all(|l| is_simple_name(l)) {
            Ok(PoolName(s.to_owned()))
        } else {
            Err(IdError::new("pool name", s, "expected one to three '/'-separated levels of [A-Za-z0-9.-_]+"))
        }
    }
}

impl TryFrom<String> for PoolName {
    type Error = IdError;
    fn try_from(s: String) -> Result<PoolName, IdError> {
        s.parse()
    }
}

impl From<PoolName> for String {
    fn from(p: PoolName) -> String {
        p.0
    }
}

impl fmt::Display for PoolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A pool's members. A guest belongs to at most one pool; a storage may be in several.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub vms: BTreeSet<Vmid>,
    /// Storage ids.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub storage: BTreeSet<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let p: PoolName = "prod/web/eu".parse().unwrap();
        assert_eq!(p.parent().unwrap().as_str(), "prod/web");
        assert_eq!(p.parent().unwrap().parent().unwrap().as_str(), "prod");
        assert_eq!(p.parent().unwrap().parent().unwrap().parent(), None);
        for bad in ["", "a/b/c/d", "a//b", "/a", "a/", "a b"] {
            assert!(bad.parse::<PoolName>().is_err(), "{bad:?} accepted");
        }
    }
}
