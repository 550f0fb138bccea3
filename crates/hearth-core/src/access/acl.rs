//! ACL entries: one role granted to one user, group or token on one path, propagating to the
//! path's descendants unless told otherwise.

use std::fmt;
use std::str::FromStr;

use super::ids::{GroupName, IdError, TokenId, Userid};
use super::path::AclPath;
use super::role::RoleName;

/// Whom an entry is for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AclSubject {
    User(Userid),
    Group(GroupName),
    Token(TokenId),
}

impl FromStr for AclSubject {
    type Err = IdError;

    /// The form of Proxmox's ACL member lists: `@group`, `user@realm` or `user@realm!token`.
    fn from_str(s: &str) -> Result<AclSubject, IdError> {
        if let Some(group) = s.strip_prefix('@') {
            return group.parse().map(AclSubject::Group);
        }
        match s.parse()? {
            super::Authid::User(u) => Ok(AclSubject::User(u)),
            super::Authid::Token(t) => Ok(AclSubject::Token(t)),
        }
    }
}

impl fmt::Display for AclSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AclSubject::User(u) => u.fmt(f),
            AclSubject::Group(g) => write!(f, "@{g}"),
            AclSubject::Token(t) => t.fmt(f),
        }
    }
}

/// One grant. In the file:
///
/// ```toml
/// [[acl]]
/// path = "/vms/100"
/// group = "admins"        # or user = "joe@pve", or token = "joe@pve!ci"
/// role = "PVEVMAdmin"
/// propagate = false       # optional, default true
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "AclEntryFile", into = "AclEntryFile")]
pub struct AclEntry {
    pub path: AclPath,
    pub subject: AclSubject,
    pub role: RoleName,
    /// Whether the entry also applies below `path`.
    pub propagate: bool,
}

impl AclEntry {
    /// An entry that propagates, as `acl modify` creates by default.
    pub fn new(path: AclPath, subject: AclSubject, role: RoleName) -> AclEntry {
        AclEntry { path, subject, role, propagate: true }
    }

    /// Whether two entries grant the same role to the same subject on the same path (and so
    /// cannot both exist).
    pub fn same_grant(&self, other: &AclEntry) -> bool {
        self.path == other.path && self.subject == other.subject && self.role == other.role
    }
}

/// `/vms/100 @admins PVEVMAdmin`, with ` (no propagation)` when it applies to the path only.
impl fmt::Display for AclEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.path, self.subject, self.role)?;
        if !self.propagate {
            f.write_str(" (no propagation)")?;
        }
        Ok(())
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AclEntryFile {
    path: AclPath,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<Userid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group: Option<GroupName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<TokenId>,
    role: RoleName,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    propagate: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

impl TryFrom<AclEntryFile> for AclEntry {
    type Error = String;

    fn try_from(f: AclEntryFile) -> Result<AclEntry, String> {
        let subject = match (f.user, f.group, f.token) {
            (Some(u), None, None) => AclSubject::User(u),
            (None, Some(g), None) => AclSubject::Group(g),
            (None, None, Some(t)) => AclSubject::Token(t),
            _ => return Err(format!("acl entry on '{}' needs exactly one of user, group or token", f.path)),
        };
        Ok(AclEntry { path: f.path, subject, role: f.role, propagate: f.propagate })
    }
}

impl From<AclEntry> for AclEntryFile {
    fn from(e: AclEntry) -> AclEntryFile {
        let (mut user, mut group, mut token) = (None, None, None);
        match e.subject {
            AclSubject::User(u) => user = Some(u),
            AclSubject::Group(g) => group = Some(g),
            AclSubject::Token(t) => token = Some(t),
        }
        AclEntryFile { path: e.path, user, group, token, role: e.role, propagate: e.propagate }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        for s in ["@admins", "joe@pve", "joe@pve!ci"] {
            assert_eq!(s.parse::<AclSubject>().unwrap().to_string(), s);
        }
        assert!(matches!("@admins".parse(), Ok(AclSubject::Group(_))));
        assert!(matches!("joe@pve!ci".parse(), Ok(AclSubject::Token(_))));
        assert!("@".parse::<AclSubject>().is_err());
        assert!("joe".parse::<AclSubject>().is_err());
    }

    #[test]
    fn file_form() {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Doc {
            acl: Vec<AclEntry>,
        }
        let text = "[[acl]]\npath = \"/vms/100\"\ngroup = \"admins\"\nrole = \"PVEVMAdmin\"\n\n\
                    [[acl]]\npath = \"/\"\nuser = \"joe@pve\"\nrole = \"PVEAuditor\"\npropagate = false\n";
        let doc: Doc = toml::from_str(text).unwrap();
        assert_eq!(doc.acl[0].to_string(), "/vms/100 @admins PVEVMAdmin");
        assert_eq!(doc.acl[1].to_string(), "/ joe@pve PVEAuditor (no propagation)");
        assert_eq!(toml::to_string(&doc).unwrap(), text);

        let two = "[[acl]]\npath = \"/\"\nuser = \"joe@pve\"\ngroup = \"g\"\nrole = \"PVEAuditor\"\n";
        let e = toml::from_str::<Doc>(two).err().unwrap();
        assert!(e.message().contains("acl entry on '/' needs exactly one of user, group or token"), "{e}");
        let bad_path = "[[acl]]\npath = \"/vm/100\"\nuser = \"joe@pve\"\nrole = \"PVEAuditor\"\n";
        let e = toml::from_str::<Doc>(bad_path).err().unwrap();
        assert!(e.message().contains("invalid ACL path '/vm/100'"), "{e}");
    }
}
