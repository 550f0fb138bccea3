//! Property tests of the effective-permission algorithm against a plain restatement of the
//! rules, over random users, groups, tokens, pools and ACL entries on a small set of paths.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;
use crate::Vmid;

const NOW: i64 = 1_700_000_000;

const PATHS: &[&str] = &[
    "/",
    "/vms",
    "/vms/100",
    "/vms/101",
    "/vms/102",
    "/storage",
    "/storage/local",
    "/storage/nfs",
    "/pool",
    "/pool/p0",
    "/pool/p1",
    "/pool/p0/sub",
    "/nodes/n1",
];

const USERS: &[&str] = &["u0@pve", "u1@pve", "u2@pve", "u3@pve"];
const GROUPS: &[&str] = &["g0", "g1", "g2"];
const TOKENS: &[&str] = &["u0@pve!ta", "u0@pve!tb", "u1@pve!ta", "root@pam!ta"];
const POOLS: &[&str] = &["p0", "p1", "p0/sub"];
const VMS: &[u32] = &[100, 101, 102];
const STORAGES: &[&str] = &["local", "nfs"];
const ROLES: &[&str] = &[
    "NoAccess",
    "Administrator",
    "PVEVMUser",
    "PVEVMAdmin",
    "PVEDatastoreUser",
    "PVEAuditor",
    "PVEPoolAdmin",
    "Custom",
];

/// Everyone the tests ask about: existing and unknown users and tokens, and root.
const CALLERS: &[&str] = &[
    "u0@pve",
    "u1@pve",
    "u2@pve",
    "u3@pve",
    "root@pam",
    "nobody@pve",
    "u0@pve!ta",
    "u0@pve!tb",
    "u1@pve!ta",
    "root@pam!ta",
    "u2@pve!missing",
];

/// Users and root@pam, then groups, then tokens.
const SUBJECTS: usize = USERS.len() + 1 + GROUPS.len() + TOKENS.len();

fn subjects() -> Vec<String> {
    let mut s: Vec<String> = USERS.iter().map(|u| u.to_string()).collect();
    s.push("root@pam".into());
    s.extend(GROUPS.iter().map(|g| format!("@{g}")));
    s.extend(TOKENS.iter().map(|t| t.to_string()));
    s
}

fn priv_set_from_bits(bits: u64) -> PrivSet {
    Privilege::ALL.iter().enumerate().filter(|(i, _)| bits >> i & 1 == 1).map(|(_, p)| *p).collect()
}

prop_compose! {
    fn models()(
        users in prop::collection::vec((prop::bool::weighted(0.85), 0..3u8, 0..8u8), USERS.len()),
        tokens in prop::collection::vec(
            (prop::bool::weighted(0.8), any::<bool>(), prop::bool::weighted(0.15)),
            TOKENS.len(),
        ),
        custom in any::<u64>(),
        vm_pools in prop::collection::vec(0..4usize, VMS.len()),
        storage_pools in prop::collection::vec(0..8u8, STORAGES.len()),
        entries in prop::collection::vec(
            (0..PATHS.len(), 0..SUBJECTS, 0..ROLES.len(), prop::bool::weighted(0.75)),
            0..16,
        ),
    ) -> AccessModel {
        let mut m = AccessModel::default();
        for g in GROUPS {
            m.groups.insert(g.parse().unwrap(), Group::default());
        }
        for (id, (enabled, expire, groups)) in USERS.iter().zip(users) {
            let user = User {
                enabled,
                expire: [None, Some(NOW - 10), Some(NOW + 10)][usize::from(expire)],
                groups: GROUPS
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| groups >> i & 1 == 1)
                    .map(|(_, g)| g.parse().unwrap())
                    .collect(),
                ..User::default()
            };
            m.users.insert(id.parse().unwrap(), user);
        }
        for (id, (exists, privsep, expired)) in TOKENS.iter().zip(tokens) {
            if exists {
                let token = Token { privsep, expire: expired.then_some(NOW - 1), comment: None };
                m.tokens.insert(id.parse().unwrap(), token);
            }
        }
        m.roles.insert("Custom".parse().unwrap(), priv_set_from_bits(custom));
        for name in POOLS {
            m.pools.insert(name.parse().unwrap(), Pool::default());
        }
        for (vm, pool) in VMS.iter().zip(vm_pools) {
            if let Some(name) = POOLS.get(pool) {
                m.pools.get_mut(&name.parse().unwrap()).unwrap().vms.insert(Vmid::new(*vm).unwrap());
            }
        }
        for (storage, mask) in STORAGES.iter().zip(storage_pools) {
            for (i, name) in POOLS.iter().enumerate() {
                if mask >> i & 1 == 1 {
                    m.pools.get_mut(&name.parse().unwrap()).unwrap().storage.insert(storage.to_string());
                }
            }
        }
        let subjects = subjects();
        for (path, subject, role, propagate) in entries {
            let entry = AclEntry {
                path: PATHS[path].parse().unwrap(),
                subject: subjects[subject].parse().unwrap(),
                role: ROLES[role].parse().unwrap(),
                propagate,
            };
            let token_missing = matches!(&entry.subject, AclSubject::Token(t) if !m.tokens.contains_key(t));
            if !token_missing && !m.acl.iter().any(|e| e.same_grant(&entry)) {
                m.acl.push(entry);
            }
        }
        m
    }
}

/// The rules of `proxmox_cli.md` §6.7, restated as directly as possible on strings.
mod reference {
    use super::*;

    /// `/`, `/a`, `/a/b`, … down to the path.
    fn nodes(path: &str) -> Vec<String> {
        let mut nodes = vec!["/".to_string()];
        let mut current = String::new();
        for component in path.split('/').filter(|c| !c.is_empty()) {
            current.push('/');
            current.push_str(component);
            nodes.push(current.clone());
        }
        nodes
    }

    fn in_group(m: &AccessModel, user: &str, group: &str) -> bool {
        let known_group = m.groups.keys().any(|g| g.as_str() == group);
        let member = m.users.iter().any(|(id, u)| id.as_str() == user && u.groups.iter().any(|g| g.as_str() == group));
        known_group && member
    }

    /// The role names the walk down `path` ends with, for a user (`token` false) or for a
    /// token's own entries (`token` true).
    fn walk(m: &AccessModel, caller: &str, token: bool, path: &str) -> BTreeSet<String> {
        let mut roles = BTreeSet::new();
        for node in nodes(path) {
            let last = node == path;
            let mut token_roles = BTreeSet::new();
            let mut user_roles = BTreeSet::new();
            let mut group_roles = BTreeSet::new();
            for e in &m.acl {
                if e.path.as_str() != node || !(last || e.propagate) {
                    continue;
                }
                let role = e.role.to_string();
                match &e.subject {
                    AclSubject::Token(t) if token && t.to_string() == caller => {
                        token_roles.insert(role);
                    }
                    AclSubject::User(u) if !token && u.as_str() == caller => {
                        user_roles.insert(role);
                    }
                    AclSubject::Group(g) if !token && in_group(m, caller, g.as_str()) => {
                        group_roles.insert(role);
                    }
                    _ => {}
                }
            }
            if token {
                if !token_roles.is_empty() {
                    roles = token_roles;
                }
            } else if !user_roles.is_empty() {
                roles = user_roles;
            } else if !group_roles.is_empty() {
                roles = group_roles;
            }
        }
        if roles.contains("NoAccess") {
            return BTreeSet::from(["NoAccess".to_string()]);
        }
        roles
    }

    /// The pools whose members include the guest or storage `path` names.
    pub fn pools_holding(m: &AccessModel, path: &str) -> Vec<String> {
        let mut found = Vec::new();
        for (name, pool) in &m.pools {
            let holds_vm = path.strip_prefix("/vms/").is_some_and(|id| pool.vms.iter().any(|v| v.to_string() == id));
            let holds_storage = path.strip_prefix("/storage/").is_some_and(|id| pool.storage.contains(id));
            if holds_vm || holds_storage {
                found.push(name.to_string());
            }
        }
        found
    }

    fn roles(m: &AccessModel, caller: &str, token: bool, path: &str) -> BTreeSet<String> {
        let regular = walk(m, caller, token, path);
        let mut from_pools = BTreeSet::new();
        for pool in pools_holding(m, path) {
            from_pools.extend(walk(m, caller, token, &format!("/pool/{pool}")));
        }
        if regular.contains("NoAccess") {
            return regular;
        }
        if from_pools.contains("NoAccess") {
            return BTreeSet::from(["NoAccess".to_string()]);
        }
        regular.union(&from_pools).cloned().collect()
    }

    fn privileges(m: &AccessModel, roles: &BTreeSet<String>) -> PrivSet {
        let mut set = PrivSet::EMPTY;
        for r in roles {
            set |= m.role_privs(r).unwrap_or(PrivSet::EMPTY);
        }
        set
    }

    fn user_active(m: &AccessModel, user: &str) -> bool {
        user == "root@pam"
            || m.users.iter().any(|(id, u)| id.as_str() == user && u.enabled && u.expire.is_none_or(|e| e >= NOW))
    }

    pub fn permissions(m: &AccessModel, who: &str, path: &str) -> PrivSet {
        let (user, token_name) = match who.rsplit_once('!') {
            Some((user, name)) => (user, Some(name)),
            None => (who, None),
        };
        if !user_active(m, user) {
            return PrivSet::EMPTY;
        }
        let user_privs = if user == "root@pam" { PrivSet::ALL } else { privileges(m, &roles(m, user, false, path)) };
        let Some(_) = token_name else { return user_privs };
        let Some(token) = m.tokens.iter().find(|(id, _)| id.to_string() == who).map(|(_, t)| t) else {
            return PrivSet::EMPTY;
        };
        if token.expire.is_some_and(|e| e < NOW) {
            return PrivSet::EMPTY;
        }
        if !token.privsep {
            return user_privs;
        }
        privileges(m, &roles(m, who, true, path)) & user_privs
    }
}

/// The union of every role in the entries that could reach `path` for `who`: its own, its
/// groups', its user's and its user's groups', on the path's ancestors and on the ancestors of
/// the pools holding it.
fn reachable_bound(m: &AccessModel, who: &str, path: &str) -> PrivSet {
    let user = who.split('!').next().unwrap_or(who);
    let mut objects: Vec<AclPath> = vec![path.parse().unwrap()];
    objects.extend(reference::pools_holding(m, path).iter().map(|p| format!("/pool/{p}").parse().unwrap()));
    let mut bound = PrivSet::EMPTY;
    for e in &m.acl {
        let concerns = match &e.subject {
            AclSubject::User(u) => u.as_str() == user,
            AclSubject::Token(t) => t.to_string() == who,
            AclSubject::Group(g) => m.users.iter().any(|(id, u)| id.as_str() == user && u.groups.contains(g)),
        };
        if concerns && objects.iter().any(|o| e.path.is_ancestor_or_self(o)) {
            bound |= m.role_privs(e.role.as_str()).unwrap_or(PrivSet::EMPTY);
        }
    }
    bound
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn permissions_follow_the_rules(m in models()) {
        prop_assert_eq!(m.validate(), Ok(()));
        for who in CALLERS {
            let id: Authid = who.parse().unwrap();
            for path in PATHS {
                let got = m.permissions(&id, &path.parse().unwrap(), NOW);
                let expected = reference::permissions(&m, who, path);
                prop_assert_eq!(got, expected, "{} on {}\n{}", who, path, m.to_toml());
            }
        }
    }

    #[test]
    fn nobody_holds_what_no_reachable_role_grants(m in models()) {
        for who in CALLERS.iter().filter(|w| !w.starts_with("root@pam")) {
            let id: Authid = who.parse().unwrap();
            for path in PATHS {
                let got = m.permissions(&id, &path.parse().unwrap(), NOW);
                let bound = reachable_bound(&m, who, path);
                prop_assert!(
                    got.is_subset(bound),
                    "{} on {}: {} not within {}\n{}", who, path, got, bound, m.to_toml()
                );
            }
        }
    }

    #[test]
    fn tokens_never_exceed_their_user_and_files_round_trip(m in models()) {
        for token in TOKENS {
            let id: Authid = token.parse().unwrap();
            let user = Authid::User(id.user().clone());
            for path in PATHS {
                let path: AclPath = path.parse().unwrap();
                prop_assert!(m.permissions(&id, &path, NOW).is_subset(m.permissions(&user, &path, NOW)));
            }
        }
        prop_assert_eq!(AccessModel::from_toml(&m.to_toml()), Ok(m.clone()));
    }
}
