//! Who an ACL entry is for and who asks: user ids `name@realm`, API token ids
//! `name@realm!token`, and group names.

use std::fmt;
use std::str::FromStr;

/// An id or name that does not have the required form.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} '{value}': {expected}")]
pub struct IdError {
    /// What was being parsed: `user id`, `token id`, `group name`, …
    pub what: &'static str,
    pub value: String,
    /// What is allowed, or why the value is refused.
    pub expected: String,
}

impl IdError {
    pub(crate) fn new(what: &'static str, value: &str, expected: &str) -> IdError {
        IdError { what, value: value.to_owned(), expected: expected.to_owned() }
    }
}

/// `[A-Za-z][A-Za-z0-9.\-_]+`: realms and token names.
fn is_realm_like(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b.iter().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c))
}

/// `[A-Za-z0-9.\-_]+`: group, role and pool-level names.
pub(crate) fn is_simple_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
}

const USERID_RULE: &str = "expected NAME@REALM, 3 to 64 characters, the name without whitespace, \
                           control characters, ':', '/' or ',', the realm [A-Za-z][A-Za-z0-9.-_]+";

/// A user: `name@realm`. The name is everything before the last `@`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Userid(String);

impl Userid {
    /// The implicit superuser.
    pub const ROOT: &'static str = "root@pam";

    pub fn root() -> Userid {
        Userid(Userid::ROOT.to_owned())
    }

    pub fn is_root(&self) -> bool {
        self.0 == Userid::ROOT
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn split(&self) -> (&str, &str) {
        self.0.rsplit_once('@').expect("a parsed user id contains '@'")
    }

    /// The part before the realm.
    pub fn name(&self) -> &str {
        self.split().0
    }

    pub fn realm(&self) -> &str {
        self.split().1
    }
}

impl FromStr for Userid {
    type Err = IdError;

    /// Proxmox's rule (`[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+`, 3 to 64 characters), and also no
    /// commas or control characters: commas separate the `--users` and `--groups` lists.
    fn from_str(s: &str) -> Result<Userid, IdError> {
        let err = || IdError::new("user id", s, USERID_RULE);
        let (name, realm) = s.rsplit_once('@').ok_or_else(err)?;
        let name_ok = !name.is_empty()
            && !name.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, ':' | '/' | ','));
        let len = s.chars().count();
        if !name_ok || !is_realm_like(realm) || !(3..=64).contains(&len) {
            return Err(err());
        }
        Ok(Userid(s.to_owned()))
    }
}

/// An API token: `name@realm!token`, the token name `[A-Za-z][A-Za-z0-9.\-_]+`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenId {
    user: Userid,
    name: String,
}

impl TokenId {
    pub fn new(user: Userid, name: &str) -> Result<TokenId, IdError> {
        if !is_realm_like(name) {
            return Err(IdError::new("token name", name, "expected [A-Za-z][A-Za-z0-9.-_]+"));
        }
        Ok(TokenId { user, name: name.to_owned() })
    }

    /// The user the token belongs to.
    pub fn user(&self) -> &Userid {
        &self.user
    }

    /// The part after `!`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl FromStr for TokenId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<TokenId, IdError> {
        let err = || IdError::new("token id", s, "expected USER@REALM!TOKEN, the token [A-Za-z][A-Za-z0-9.-_]+");
        // A realm cannot contain '!', so the token name starts after the last '!'.
        let (user, name) = s.rsplit_once('!').ok_or_else(err)?;
        let user: Userid = user.parse().map_err(|_| err())?;
        TokenId::new(user, name).map_err(|_| err())
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}!{}", self.user, self.name)
    }
}

/// Whoever makes a request: a user, or an API token acting for its user.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Authid {
    User(Userid),
    Token(TokenId),
}

impl Authid {
    pub fn root() -> Authid {
        Authid::User(Userid::root())
    }

    /// The user, or the token's user.
    pub fn user(&self) -> &Userid {
        match self {
            Authid::User(u) => u,
            Authid::Token(t) => t.user(),
        }
    }
}

impl From<Userid> for Authid {
    fn from(u: Userid) -> Authid {
        Authid::User(u)
    }
}

impl From<TokenId> for Authid {
    fn from(t: TokenId) -> Authid {
        Authid::Token(t)
    }
}

impl FromStr for Authid {
    type Err = IdError;

    /// A token id if there is a `!` after the last `@`, a user id otherwise.
    fn from_str(s: &str) -> Result<Authid, IdError> {
        let is_token = s.rsplit_once('@').is_some_and(|(_, realm)| realm.contains('!'));
        if is_token { s.parse().map(Authid::Token) } else { s.parse().map(Authid::User) }
    }
}

impl fmt::Display for Authid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Authid::User(u) => u.fmt(f),
            Authid::Token(t) => t.fmt(f),
        }
    }
}

/// A group: `[A-Za-z0-9.\-_]+`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GroupName(String);

impl GroupName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for GroupName {
    type Err = IdError;

    fn from_str(s: &str) -> Result<GroupName, IdError> {
        if is_simple_name(s) {
            Ok(GroupName(s.to_owned()))
        } else {
            Err(IdError::new("group name", s, "expected [A-Za-z0-9.-_]+"))
        }
    }
}

macro_rules! string_forms {
    ($($t:ty),*) => {$(
        impl TryFrom<String> for $t {
            type Error = IdError;
            fn try_from(s: String) -> Result<$t, IdError> {
                s.parse()
            }
        }

        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.to_string()
            }
        }
    )*};
}

string_forms!(Userid, TokenId, Authid, GroupName);

impl fmt::Display for Userid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userids() {
        let u: Userid = "joe@pve".parse().unwrap();
        assert_eq!((u.name(), u.realm()), ("joe", "pve"));
        let odd: Userid = "a@b@ldap-1".parse().unwrap();
        assert_eq!((odd.name(), odd.realm()), ("a@b", "ldap-1"));
        assert!(Userid::root().is_root());
        for bad in
            ["joe", "@pve", "joe@", "joe@p", "joe@1pve", "jo e@pve", "a:b@pve", "a/b@pve", "a,b@pve", "joe@pve!x"]
        {
            assert!(bad.parse::<Userid>().is_err(), "{bad:?} accepted");
        }
        assert!(format!("{}@pve", "x".repeat(60)).parse::<Userid>().is_ok());
        assert!(format!("{}@pve", "x".repeat(61)).parse::<Userid>().is_err());
        assert_eq!(
            "joe".parse::<Userid>().unwrap_err().to_string(),
            "invalid user id 'joe': expected NAME@REALM, 3 to 64 characters, the name without whitespace, \
             control characters, ':', '/' or ',', the realm [A-Za-z][A-Za-z0-9.-_]+"
        );
    }

    #[test]
    fn tokens_and_authids() {
        let t: TokenId = "joe@pve!ci-1".parse().unwrap();
        assert_eq!((t.user().as_str(), t.name()), ("joe@pve", "ci-1"));
        assert_eq!(t.to_string(), "joe@pve!ci-1");
        for bad in ["joe@pve", "joe@pve!", "joe@pve!1x", "joe!x", "joe@pve!a b"] {
            assert!(bad.parse::<TokenId>().is_err(), "{bad:?} accepted");
        }
        assert_eq!("joe@pve!ci".parse::<Authid>().unwrap(), Authid::Token("joe@pve!ci".parse().unwrap()));
        // A '!' in the user name does not make a token.
        assert_eq!("a!b@pve".parse::<Authid>().unwrap(), Authid::User("a!b@pve".parse().unwrap()));
        assert_eq!("a!b@pve!t1".parse::<Authid>().unwrap().user().as_str(), "a!b@pve");
        assert!("nope".parse::<Authid>().is_err());
    }

    #[test]
    fn groups() {
        assert!("admins.ops-1_x".parse::<GroupName>().is_ok());
        for bad in ["", "a b", "@admins", "a/b"] {
            assert!(bad.parse::<GroupName>().is_err(), "{bad:?} accepted");
        }
    }
}
