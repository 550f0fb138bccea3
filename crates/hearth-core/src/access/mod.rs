//! Access control as Proxmox VE defines it: privileges, roles, ACL paths, users, groups, API
//! tokens and pools, the file `etc/hearth/access.toml` that holds them, and the rules that turn
//! them into a caller's privileges on a path.
//!
//! The pieces, bottom up:
//! - [`Privilege`] and [`PrivSet`]: the 47 privileges of Proxmox VE under their Proxmox names.
//! - [`role`]: the built-in roles (Proxmox's, under Proxmox's names) and custom role names.
//! - [`AclPath`]: the paths an ACL entry may name, and their ancestors.
//! - [`Userid`], [`TokenId`], [`Authid`], [`GroupName`]: who an entry is for and who asks.
//! - [`AclEntry`]: one grant of one role to one user, group or token on one path.
//! - [`PoolName`], [`Pool`]: resource pools of guests and storages.
//! - [`realm`]: the realms `pam` and `pve` and configured `openid`, `ldap` and `ad` realms.
//! - [`AccessModel`]: all of the above as one file, validated on load, and
//!   [`AccessModel::permissions`], the effective-permission algorithm.
//!
//! Secrets are not part of the model: password hashes and token secrets live in their own
//! root-only files, so `access.toml` can be shown and diffed freely.

mod acl;
mod ids;
mod model;
mod path;
mod pool;
mod privilege;
pub mod realm;
mod resolve;
pub mod role;

#[cfg(test)]
mod proptests;

pub use acl::{AclEntry, AclSubject};
pub use ids::{Authid, GroupName, IdError, TokenId, Userid};
pub use model::{AccessError, AccessModel, Group, Token, User};
pub use path::{AclPath, PathError};
pub use pool::{Pool, PoolName};
pub use privilege::{PrivError, PrivSet, Privilege};
pub use role::{BuiltinRole, RoleName};

use crate::schema::edit_distance;

/// The candidate closest to `wanted` (ignoring ASCII case) if it is close enough to be a typo.
fn closest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wanted = wanted.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&wanted, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= 2 + c.len() / 10)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `; did you mean 'x'?` or nothing.
fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion.map(|s| format!("; did you mean '{s}'?")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(edit_distance("PVEVMAdmn", "PVEVMAdmin"), 1);
        assert_eq!(closest("pvevmadmn", ["PVEVMAdmin", "PVEVMUser"]), Some("PVEVMAdmin"));
        assert_eq!(closest("totally-different", ["PVEVMAdmin"]), None);
        assert_eq!(did_you_mean(Some("a")), "; did you mean 'a'?");
    }
}
