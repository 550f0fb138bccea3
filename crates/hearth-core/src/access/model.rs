//! The whole access configuration as one value, its file `etc/hearth/access.toml`, and the
//! checks that keep it consistent: every name an entry uses must exist.
//!
//! ```toml
//! [users."joe@pve"]
//! groups = ["admins"]
//! email = "joe@example.com"
//!
//! [users."ann@pve"]
//! enabled = false
//! expire = 1767225600
//!
//! [groups.admins]
//! comment = "Operations"
//!
//! [roles]
//! PowerOnly = ["VM.Audit", "VM.PowerMgmt"]
//!
//! [tokens."joe@pve!ci"]
//! privsep = true
//!
//! [pools.prod]
//! vms = [100, 101]
//! storage = ["local"]
//!
//! [[acl]]
//! path = "/pool/prod"
//! group = "admins"
//! role = "PVEVMAdmin"
//! ```
//!
//! There are no secrets here: password hashes and token secrets are kept in root-only files.

use std::collections::{BTreeMap, BTreeSet};

use toml::Spanned;

use super::acl::{AclEntry, AclSubject};
use super::ids::{GroupName, TokenId, Userid};
use super::pool::{Pool, PoolName};
use super::privilege::PrivSet;
use super::role::{self, RoleName};
use crate::schema::check;
use crate::vmid::Vmid;

/// An access file that cannot be loaded, or a model that is inconsistent. `line` is 1-based and
/// set when the problem comes from a specific place in the file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct AccessError {
    pub line: Option<usize>,
    pub message: String,
}

/// A user. Group membership is recorded here, not on the group.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// A disabled user holds no privilege.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// Unix time after which the user holds no privilege; `None` (or `0` in the file) is never.
    #[serde(default, deserialize_with = "expire", skip_serializing_if = "Option::is_none")]
    pub expire: Option<i64>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub groups: BTreeSet<GroupName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firstname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lastname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl Default for User {
    fn default() -> User {
        User {
            enabled: true,
            expire: None,
            groups: BTreeSet::new(),
            firstname: None,
            lastname: None,
            email: None,
            comment: None,
        }
    }
}

impl User {
    /// Enabled and not expired at `now`.
    pub fn is_active(&self, now: i64) -> bool {
        self.enabled && !expired(self.expire, now)
    }
}

/// An API token. Its secret is not part of the model.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// Privilege separation: the token holds only what its own ACL entries grant, and never more
    /// than its user. Without it the token holds exactly its user's privileges.
    #[serde(default = "yes")]
    pub privsep: bool,
    /// Unix time after which the token holds no privilege; `None` (or `0`) is never.
    #[serde(default, deserialize_with = "expire", skip_serializing_if = "Option::is_none")]
    pub expire: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl Default for Token {
    fn default() -> Token {
        Token { privsep: true, expire: None, comment: None }
    }
}

impl Token {
    pub fn is_expired(&self, now: i64) -> bool {
        expired(self.expire, now)
    }
}

/// A group; its members are the users that list it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// Proxmox's rule: an expiry of 0 is never, otherwise expired once it lies in the past.
fn expired(expire: Option<i64>, now: i64) -> bool {
    expire.is_some_and(|e| e < now)
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn expire<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match <i64 as serde::Deserialize>::deserialize(d)? {
        0 => Ok(None),
        e if e < 0 => {
            Err(serde::de::Error::custom(format!("invalid expire {e}: expected a unix time, or 0 for never")))
        }
        e => Ok(Some(e)),
    }
}

/// Users, groups, custom roles, tokens, pools and ACL entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessModel {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub users: BTreeMap<Userid, User>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<GroupName, Group>,
    /// Custom roles only; the built-in ones are in [`role::BUILTIN_ROLES`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<RoleName, PrivSet>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tokens: BTreeMap<TokenId, Token>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pools: BTreeMap<PoolName, Pool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acl: Vec<AclEntry>,
}

/// Where in the file a problem lies: a table, and within it a key.
#[derive(Debug)]
enum Place {
    User(String),
    Role(String),
    Token(String),
    Pool(String),
    Acl(usize),
}

#[derive(Debug)]
struct Problem {
    place: Place,
    key: Option<&'static str>,
    message: String,
}

impl AccessModel {
    /// Reads `access.toml`: its syntax, then that every name it uses exists.
    pub fn from_toml(text: &str) -> Result<AccessModel, AccessError> {
        let model: AccessModel = toml::from_str(text).map_err(|e| AccessError {
            line: e.span().map(|s| line_at(text, s.start)),
            message: e.message().trim().to_owned(),
        })?;
        model.problem().map_or(Ok(model), |p| Err(AccessError { line: p.line_in(text), message: p.message }))
    }

    /// The file form: users, groups, roles, tokens and pools sorted by name, then the ACL in its
    /// order.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("the model is tables of strings, integers, booleans and arrays")
    }

    /// Checks the model as a whole, for example after an edit and before it is saved.
    pub fn validate(&self) -> Result<(), AccessError> {
        self.problem().map_or(Ok(()), |p| Err(AccessError { line: None, message: p.message }))
    }

    /// The privileges of a built-in or custom role.
    pub fn role_privs(&self, name: &str) -> Option<PrivSet> {
        role::builtin(name).map(|r| r.privs).or_else(|| self.roles.get(name).copied())
    }

    /// The built-in or custom role a mistyped `role` probably meant: Hearth's former name of a
    /// built-in role (Proxmox's without `PVE`), or a name a few edits away.
    pub fn suggest_role(&self, role: &str) -> Option<String> {
        if let Some(r) = role::builtin(&format!("PVE{role}")) {
            return Some(r.name.to_owned());
        }
        let names: Vec<&str> =
            role::BUILTIN_ROLES.iter().map(|r| r.name).chain(self.roles.keys().map(RoleName::as_str)).collect();
        super::closest(role, names.iter().copied())
            .or_else(|| super::closest(&format!("PVE{role}"), names.iter().copied()))
            .map(str::to_owned)
    }

    /// The users that list `group`.
    pub fn group_members<'a>(&'a self, group: &'a GroupName) -> impl Iterator<Item = &'a Userid> + 'a {
        self.users.iter().filter(move |(_, u)| u.groups.contains(group)).map(|(id, _)| id)
    }

    /// The pool a guest belongs to.
    pub fn pool_of_vm(&self, vmid: Vmid) -> Option<&PoolName> {
        self.pools.iter().find(|(_, p)| p.vms.contains(&vmid)).map(|(n, _)| n)
    }

    /// Whether the user exists; `root@pam` always does.
    pub fn user_exists(&self, user: &Userid) -> bool {
        user.is_root() || self.users.contains_key(user)
    }

    /// The first inconsistency, in file order.
    fn problem(&self) -> Option<Problem> {
        self.user_problem()
            .or_else(|| self.role_problem())
            .or_else(|| self.token_problem())
            .or_else(|| self.pool_problem())
            .or_else(|| self.acl_problem())
    }

    fn user_problem(&self) -> Option<Problem> {
        for (id, user) in &self.users {
            let at = |key, message: String| Problem { place: Place::User(id.to_string()), key, message };
            if id.is_root() && (!user.enabled || user.expire.is_some()) {
                let key = if user.enabled { "expire" } else { "enabled" };
                return Some(at(
                    Some(key),
                    format!("user '{id}': root@pam cannot be disabled or expire; it always holds every privilege"),
                ));
            }
            if let Some(g) = user.groups.iter().find(|g| !self.groups.contains_key(*g)) {
                let hint = super::did_you_mean(super::closest(g.as_str(), self.groups.keys().map(GroupName::as_str)));
                return Some(at(Some("groups"), format!("user '{id}': unknown group '{g}'{hint}")));
            }
        }
        None
    }

    fn role_problem(&self) -> Option<Problem> {
        self.roles.keys().find_map(|name| {
            name.check_custom().err().map(|e| Problem {
                place: Place::Role(name.to_string()),
                key: None,
                message: format!("role '{name}': {}", e.expected),
            })
        })
    }

    fn token_problem(&self) -> Option<Problem> {
        self.tokens.keys().find(|t| !self.user_exists(t.user())).map(|t| Problem {
            place: Place::Token(t.to_string()),
            key: None,
            message: format!("token '{t}': unknown user '{}'", t.user()),
        })
    }

    fn pool_problem(&self) -> Option<Problem> {
        let mut owner: BTreeMap<Vmid, &PoolName> = BTreeMap::new();
        for (name, pool) in &self.pools {
            let at = |key, message: String| Some(Problem { place: Place::Pool(name.to_string()), key, message });
            if let Some(parent) = name.parent().filter(|p| !self.pools.contains_key(p)) {
                return at(None, format!("pool '{name}': its parent pool '{parent}' does not exist"));
            }
            for vmid in &pool.vms {
                if let Some(other) = owner.insert(*vmid, name) {
                    return at(Some("vms"), format!("pool '{name}': VM {vmid} is already in pool '{other}'"));
                }
            }
            if let Some(Err(e)) = pool.storage.iter().map(|s| check::storage_id(s)).find(Result::is_err) {
                return at(Some("storage"), format!("pool '{name}': {e}"));
            }
        }
        None
    }

    fn acl_problem(&self) -> Option<Problem> {
        for (i, entry) in self.acl.iter().enumerate() {
            let at = |key, message: String| {
                Some(Problem {
                    place: Place::Acl(i),
                    key,
                    message: format!("acl entry {} ({entry}): {message}", i + 1),
                })
            };
            if self.role_privs(entry.role.as_str()).is_none() {
                let role = entry.role.as_str();
                let hint = super::did_you_mean(self.suggest_role(role).as_deref());
                return at(Some("role"), format!("unknown role '{role}'{hint}"));
            }
            let missing = match &entry.subject {
                AclSubject::User(u) => (!self.user_exists(u)).then(|| ("user", format!("unknown user '{u}'"))),
                AclSubject::Group(g) => {
                    (!self.groups.contains_key(g)).then(|| ("group", format!("unknown group '{g}'")))
                }
                AclSubject::Token(t) => {
                    (!self.tokens.contains_key(t)).then(|| ("token", format!("unknown token '{t}'")))
                }
            };
            if let Some((key, message)) = missing {
                return at(Some(key), message);
            }
            if let Some(j) = self.acl[..i].iter().position(|e| e.same_grant(entry)) {
                return at(None, format!("repeats acl entry {}", j + 1));
            }
        }
        None
    }
}

fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

type Keys = BTreeMap<String, Spanned<toml::Value>>;

/// The file's tables with their positions, to point problems found after parsing at a line.
#[derive(serde::Deserialize)]
struct Spans {
    #[serde(default)]
    users: BTreeMap<String, Spanned<Keys>>,
    #[serde(default)]
    roles: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    tokens: BTreeMap<String, Spanned<Keys>>,
    #[serde(default)]
    pools: BTreeMap<String, Spanned<Keys>>,
    #[serde(default)]
    acl: Vec<Spanned<Keys>>,
}

impl Problem {
    fn line_in(&self, text: &str) -> Option<usize> {
        let spans: Spans = toml::from_str(text).ok()?;
        let in_table = |table: Option<&Spanned<Keys>>| {
            let table = table?;
            let key = self.key.and_then(|k| table.get_ref().get(k));
            Some(key.map_or(table.span(), Spanned::span))
        };
        let span = match &self.place {
            Place::User(id) => in_table(spans.users.get(id)),
            Place::Token(id) => in_table(spans.tokens.get(id)),
            Place::Pool(id) => in_table(spans.pools.get(id)),
            Place::Acl(i) => in_table(spans.acl.get(*i)),
            Place::Role(name) => spans.roles.get(name).map(Spanned::span),
        }?;
        Some(line_at(text, span.start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[users."joe@pve"]
groups = ["admins"]
email = "joe@example.com"

[users."ann@pve"]
enabled = false
expire = 1767225600

[groups.admins]
comment = "Operations"

[groups.empty]

[roles]
PowerOnly = ["VM.Audit", "VM.PowerMgmt"]

[tokens."joe@pve!ci"]
privsep = false

[tokens."joe@pve!ro"]

[pools.prod]
vms = [100, 101]
storage = ["local"]

[pools."prod/web"]
vms = [102]

[[acl]]
path = "/pool/prod"
group = "admins"
role = "PVEVMAdmin"

[[acl]]
path = "/vms/"
token = "joe@pve!ro"
role = "PowerOnly"
propagate = false
"#;

    fn load_err(text: &str) -> String {
        AccessModel::from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn loads_the_example() {
        let m = AccessModel::from_toml(EXAMPLE).unwrap();
        let joe: Userid = "joe@pve".parse().unwrap();
        let ann: Userid = "ann@pve".parse().unwrap();
        assert!(m.users[&joe].enabled && m.users[&joe].expire.is_none());
        assert!(!m.users[&ann].is_active(0));
        assert_eq!(m.users[&ann].expire, Some(1_767_225_600));
        assert!(!m.tokens[&"joe@pve!ci".parse().unwrap()].privsep);
        assert!(m.tokens[&"joe@pve!ro".parse().unwrap()].privsep);
        assert_eq!(m.acl[1].path.as_str(), "/vms");
        assert!(!m.acl[1].propagate);
        assert_eq!(m.role_privs("PowerOnly").unwrap().to_string(), "VM.Audit,VM.PowerMgmt");
        assert_eq!(m.role_privs("PVEVMUser"), role::builtin("PVEVMUser").map(|r| r.privs));
        assert_eq!(m.role_privs("Nope"), None);
        let admins: GroupName = "admins".parse().unwrap();
        assert_eq!(m.group_members(&admins).collect::<Vec<_>>(), vec![&joe]);
        assert_eq!(m.pool_of_vm(Vmid::new(102).unwrap()).map(PoolName::as_str), Some("prod/web"));
    }

    #[test]
    fn round_trips() {
        let m = AccessModel::from_toml(EXAMPLE).unwrap();
        let text = m.to_toml();
        assert_eq!(AccessModel::from_toml(&text).unwrap(), m);
        expect_test::expect![[r#"
            [users."ann@pve"]
            enabled = false
            expire = 1767225600

            [users."joe@pve"]
            groups = ["admins"]
            email = "joe@example.com"

            [groups.admins]
            comment = "Operations"

            [groups.empty]

            [roles]
            PowerOnly = ["VM.Audit", "VM.PowerMgmt"]

            [tokens."joe@pve!ci"]
            privsep = false

            [tokens."joe@pve!ro"]
            privsep = true

            [pools.prod]
            vms = [100, 101]
            storage = ["local"]

            [pools."prod/web"]
            vms = [102]

            [[acl]]
            path = "/pool/prod"
            group = "admins"
            role = "PVEVMAdmin"

            [[acl]]
            path = "/vms"
            token = "joe@pve!ro"
            role = "PowerOnly"
            propagate = false
        "#]]
        .assert_eq(&text);
        assert_eq!(AccessModel::default().to_toml(), "");
        assert_eq!(AccessModel::from_toml("").unwrap(), AccessModel::default());
    }

    #[test]
    fn syntax_errors_carry_lines() {
        assert_eq!(load_err("[users.\"joe@pve\"]\n\n[users.\"joe@pve\"]\n"), "line 3: duplicate key");
        assert_eq!(
            load_err("[users.\"joe@pve\"]\nenabled = true\nfrobnicate = 1\n"),
            "line 3: unknown field `frobnicate`, expected one of `enabled`, `expire`, `groups`, `firstname`, \
             `lastname`, `email`, `comment`"
        );
        let bad_user = load_err("[users.joe]\n");
        assert!(bad_user.starts_with("line 1: invalid user id 'joe': expected NAME@REALM"), "{bad_user}");
        assert_eq!(
            load_err("[users.\"joe@pve\"]\nexpire = -5\n"),
            "line 2: invalid expire -5: expected a unix time, or 0 for never"
        );
        assert_eq!(
            load_err("[roles]\nX = [\"VM.Audit\", \"VM.Powermgmt\"]\n"),
            "line 2: unknown privilege 'VM.Powermgmt'; did you mean 'VM.PowerMgmt'?"
        );
        let bad_path = load_err("[[acl]]\npath = \"/vms/1\"\nuser = \"root@pam\"\nrole = \"PVEAuditor\"\n");
        assert_eq!(bad_path, "line 2: invalid ACL path '/vms/1': '1' is not a VMID (100 to 999999999)");
        let two_subjects =
            load_err("\n[[acl]]\npath = \"/\"\nuser = \"root@pam\"\ngroup = \"g\"\nrole = \"PVEAuditor\"\n");
        assert_eq!(two_subjects, "line 2: acl entry on '/' needs exactly one of user, group or token");
        assert_eq!(
            load_err("[pools.a]\nvms = [42]\n"),
            "line 2: invalid vmid '42': expected an integer from 100 to 999999999"
        );
        assert!(load_err("nonsense = 1\n").starts_with("line 1: unknown field `nonsense`"));
    }

    #[test]
    fn reference_errors_name_the_entry_and_line() {
        let acl = |body: &str| format!("[users.\"joe@pve\"]\n\n[groups.admins]\n\n[[acl]]\npath = \"/\"\n{body}\n");
        assert_eq!(
            load_err(&acl("user = \"joe@pve\"\nrole = \"VMAdmn\"")),
            "line 8: acl entry 1 (/ joe@pve VMAdmn): unknown role 'VMAdmn'; did you mean 'PVEVMAdmin'?"
        );
        assert_eq!(
            load_err(&acl("user = \"joe@pve\"\nrole = \"VMAdmin\"")),
            "line 8: acl entry 1 (/ joe@pve VMAdmin): unknown role 'VMAdmin'; did you mean 'PVEVMAdmin'?"
        );
        assert_eq!(
            load_err(&acl("user = \"jo@pve\"\nrole = \"PVEAuditor\"")),
            "line 7: acl entry 1 (/ jo@pve PVEAuditor): unknown user 'jo@pve'"
        );
        assert_eq!(
            load_err(&acl("group = \"admin\"\nrole = \"PVEAuditor\"")),
            "line 7: acl entry 1 (/ @admin PVEAuditor): unknown group 'admin'"
        );
        assert_eq!(
            load_err(&acl("token = \"joe@pve!ci\"\nrole = \"PVEAuditor\"")),
            "line 7: acl entry 1 (/ joe@pve!ci PVEAuditor): unknown token 'joe@pve!ci'"
        );
        // root@pam always exists, even when the file does not list it.
        assert!(AccessModel::from_toml(&acl("user = \"root@pam\"\nrole = \"PVEAuditor\"")).is_ok());
        let twice = format!(
            "{}\n[[acl]]\npath = \"/\"\nuser = \"joe@pve\"\nrole = \"PVEAuditor\"\npropagate = false\n",
            acl("user = \"joe@pve\"\nrole = \"PVEAuditor\"")
        );
        assert_eq!(
            load_err(&twice),
            "line 10: acl entry 2 (/ joe@pve PVEAuditor (no propagation)): repeats acl entry 1"
        );
        assert_eq!(
            load_err("[users.\"joe@pve\"]\ngroups = [\"admns\"]\n\n[groups.admins]\n"),
            "line 2: user 'joe@pve': unknown group 'admns'; did you mean 'admins'?"
        );
        assert_eq!(
            load_err("[users.\"root@pam\"]\nenabled = false\n"),
            "line 2: user 'root@pam': root@pam cannot be disabled or expire; it always holds every privilege"
        );
        assert_eq!(
            load_err("[roles]\nPVEAuditor = []\n"),
            "line 2: role 'PVEAuditor': the name of the built-in role 'PVEAuditor' is reserved"
        );
        assert_eq!(load_err("\n[tokens.\"x@pve!tk\"]\n"), "line 2: token 'x@pve!tk': unknown user 'x@pve'");
        assert!(AccessModel::from_toml("[tokens.\"root@pam!tk\"]\n").is_ok());
        assert_eq!(
            load_err("[pools.a]\nvms = [100]\n\n[pools.b]\nvms = [100]\n"),
            "line 5: pool 'b': VM 100 is already in pool 'a'"
        );
        assert_eq!(load_err("[pools.\"a/b\"]\n"), "line 1: pool 'a/b': its parent pool 'a' does not exist");
        assert_eq!(load_err("[pools.a]\nstorage = [\"local\", \"x\"]\n"), "line 2: pool 'a': invalid storage id 'x'");
    }

    #[test]
    fn validate_after_edits() {
        let mut m = AccessModel::from_toml(EXAMPLE).unwrap();
        assert_eq!(m.validate(), Ok(()));
        m.groups.remove(&"admins".parse().unwrap());
        assert_eq!(m.validate().unwrap_err().to_string(), "user 'joe@pve': unknown group 'admins'");
    }
}
