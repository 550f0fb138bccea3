//! The effective-permission algorithm of Proxmox VE (`AccessControl::roles` with the pool and
//! token rules of `RPCEnvironment::permissions`): which roles, and so which privileges, a user
//! or token holds on a path.
//!
//! For a path `/a/b/c` the walk visits `/`, `/a`, `/a/b`, `/a/b/c`. At each node the entries
//! that apply are a token's own entries when a token asks; otherwise the user's entries, or if
//! there are none, the union of the entries of the user's groups. An entry on an ancestor
//! applies only if it propagates. Entries that apply *replace* what the walk has gathered, so
//! the deepest match wins. After the walk, `NoAccess` cancels everything.
//!
//! Pools then fill in: for `/vms/<id>` and `/storage/<id>` of pool members, the roles the caller
//! holds on `/pool/<pool>` (computed by the same walk, so inherited from `/` and `/pool` too, as
//! Proxmox does) are added to roles the walk did not already give. A pool's `NoAccess` overrides
//! the regular roles; a regular `NoAccess` is never undone by a pool.
//!
//! A token without privilege separation holds exactly its user's privileges. With it, the
//! token's own result (from token entries only, so a new token holds nothing) is intersected
//! with its user's. `root@pam` holds every privilege; a disabled or expired user, or an expired
//! token, holds none.

use std::collections::{BTreeMap, BTreeSet};

use super::acl::{AclEntry, AclSubject};
use super::ids::{Authid, TokenId, Userid};
use super::model::{AccessModel, Token};
use super::path::{self, AclPath};
use super::privilege::{PrivSet, Privilege};
use super::role::{ADMINISTRATOR, NO_ACCESS, RoleName};

/// Whose entries the walk looks at.
#[derive(Clone, Copy)]
enum Caller<'a> {
    User(&'a Userid),
    /// A privilege-separated token: only its own entries.
    Token(&'a TokenId),
}

type Roles<'m> = BTreeSet<&'m RoleName>;

/// The roles of the entries, or `None` if there are none.
fn non_empty<'m>(entries: impl Iterator<Item = &'m AclEntry>) -> Option<Roles<'m>> {
    let roles: Roles<'m> = entries.map(|e| &e.role).collect();
    (!roles.is_empty()).then_some(roles)
}

fn has_no_access(roles: &Roles<'_>) -> bool {
    roles.iter().any(|r| r.as_str() == NO_ACCESS)
}

/// `{NoAccess}` if it is among the roles, the roles otherwise.
fn collapse_no_access(mut roles: Roles<'_>) -> Roles<'_> {
    if has_no_access(&roles) {
        roles.retain(|r| r.as_str() == NO_ACCESS);
    }
    roles
}

impl AccessModel {
    /// The privileges `who` holds on `path` at unix time `now`.
    pub fn permissions(&self, who: &Authid, path: &AclPath, now: i64) -> PrivSet {
        match who {
            Authid::User(user) => self.user_permissions(user, path, now),
            Authid::Token(id) => {
                let Some(token) = self.active_token(id, now) else { return PrivSet::EMPTY };
                let user_privs = self.user_permissions(id.user(), path, now);
                if !token.privsep {
                    return user_privs;
                }
                self.privs_of(&self.roles_with_pools(Caller::Token(id), path)) & user_privs
            }
        }
    }

    /// Whether `who` holds every privilege of `required` on `path`.
    pub fn check(&self, who: &Authid, path: &AclPath, required: PrivSet, now: i64) -> bool {
        required.is_subset(self.permissions(who, path, now))
    }

    /// Whether `who` holds at least one privilege of `any` on `path`.
    pub fn check_any(&self, who: &Authid, path: &AclPath, any: PrivSet, now: i64) -> bool {
        !(self.permissions(who, path, now) & any).is_empty()
    }

    /// The roles behind [`AccessModel::permissions`], pool roles included, for `user
    /// permissions` and `acl list` style output. For `root@pam` this is `Administrator`. For a
    /// privilege-separated token these are the token's own roles, before the result is
    /// intersected with its user's privileges; for a token without privilege separation, its
    /// user's roles.
    pub fn roles_at(&self, who: &Authid, path: &AclPath, now: i64) -> BTreeSet<RoleName> {
        let user = who.user();
        let caller = match who {
            Authid::User(_) => Caller::User(user),
            Authid::Token(id) => match self.active_token(id, now) {
                None => return BTreeSet::new(),
                Some(t) if t.privsep => Caller::Token(id),
                Some(_) => Caller::User(user),
            },
        };
        if matches!(caller, Caller::User(_)) {
            if user.is_root() {
                return BTreeSet::from([ADMINISTRATOR.parse().expect("a built-in role name is a valid name")]);
            }
            if !self.is_active_user(user, now) {
                return BTreeSet::new();
            }
        }
        self.roles_with_pools(caller, path).into_iter().cloned().collect()
    }

    /// Every path on which `who` holds some privilege, with those privileges, as `userctl user
    /// permissions` lists them: the top-level paths, every path named in an ACL entry, and the
    /// guests and storages of pools.
    pub fn effective_permissions(&self, who: &Authid, now: i64) -> BTreeMap<AclPath, PrivSet> {
        let top = ["/", "/access", "/access/groups", "/mapping", "/nodes", "/pool", "/sdn", "/storage", "/vms"];
        let mut paths: BTreeSet<AclPath> =
            top.iter().map(|p| p.parse().expect("the top-level paths are valid")).collect();
        paths.extend(self.acl.iter().map(|e| e.path.clone()));
        for pool in self.pools.values() {
            paths.extend(pool.vms.iter().map(|v| AclPath::vm(*v)));
            paths.extend(pool.storage.iter().filter_map(|s| AclPath::storage(s).ok()));
        }
        paths
            .into_iter()
            .map(|p| {
                let privs = self.permissions(who, &p, now);
                (p, privs)
            })
            .filter(|(_, privs)| !privs.is_empty())
            .collect()
    }

    /// Whether `who` may add or remove an ACL entry granting `role` on `path` (`acl modify`):
    /// with `Permissions.Modify` on the path any role; without it, with `VM.Allocate` on a
    /// `/vms/…` path, `Datastore.Allocate` on `/storage/…` or `Pool.Allocate` on `/pool/…`,
    /// only roles whose privileges `who` holds there itself.
    pub fn may_grant(&self, who: &Authid, path: &AclPath, role: &RoleName, now: i64) -> bool {
        let held = self.permissions(who, path, now);
        if held.contains(Privilege::PermissionsModify) {
            return true;
        }
        let alternative = if path.vmid().is_some() {
            Privilege::VmAllocate
        } else if path.storage_id().is_some() {
            Privilege::DatastoreAllocate
        } else if path.pool_name().is_some() {
            Privilege::PoolAllocate
        } else {
            return false;
        };
        held.contains(alternative) && self.role_privs(role.as_str()).is_some_and(|privs| privs.is_subset(held))
    }

    /// The users other than `root@pam` who are full administrators at `now`: enabled, not
    /// expired, and granted `Administrator` on `/` itself and, propagating, below it, by their
    /// own entry or a group's, and not cancelled there by `NoAccess`. Tokens do not count: they
    /// act for a user.
    pub fn administrators(&self, now: i64) -> BTreeSet<Userid> {
        let admin_at = |user: &Userid, is_final: bool| {
            self.node_roles(Caller::User(user), "/", is_final)
                .map(collapse_no_access)
                .is_some_and(|roles| roles.iter().any(|r| r.as_str() == ADMINISTRATOR))
        };
        self.users
            .iter()
            .filter(|(id, user)| !id.is_root() && user.is_active(now))
            .filter(|(id, _)| admin_at(id, true) && admin_at(id, false))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Whether going from this model to `after` leaves no administrator besides `root@pam`
    /// where there was one, so that a CLI can refuse removing the last `Administrator` grant on
    /// `/`, or the last member of the group holding it.
    pub fn would_remove_last_admin(&self, after: &AccessModel, now: i64) -> bool {
        !self.administrators(now).is_empty() && after.administrators(now).is_empty()
    }

    fn is_active_user(&self, user: &Userid, now: i64) -> bool {
        user.is_root() || self.users.get(user).is_some_and(|u| u.is_active(now))
    }

    /// The token, if it exists, has not expired and its user is active.
    fn active_token(&self, id: &TokenId, now: i64) -> Option<&Token> {
        self.tokens.get(id).filter(|t| !t.is_expired(now) && self.is_active_user(id.user(), now))
    }

    fn user_permissions(&self, user: &Userid, path: &AclPath, now: i64) -> PrivSet {
        if user.is_root() {
            return PrivSet::ALL;
        }
        if !self.is_active_user(user, now) {
            return PrivSet::EMPTY;
        }
        self.privs_of(&self.roles_with_pools(Caller::User(user), path))
    }

    /// Roles from unknown names (which validation refuses) grant nothing.
    fn privs_of(&self, roles: &Roles<'_>) -> PrivSet {
        roles.iter().filter_map(|r| self.role_privs(r.as_str())).fold(PrivSet::EMPTY, PrivSet::union)
    }

    /// The regular walk, then the roles pools add.
    fn roles_with_pools(&self, caller: Caller<'_>, path: &AclPath) -> Roles<'_> {
        let mut roles = self.walk(caller, path.as_str());
        if has_no_access(&roles) {
            return roles;
        }
        let from_pools = self.pool_roles(caller, path);
        if has_no_access(&from_pools) {
            return collapse_no_access(from_pools);
        }
        roles.extend(from_pools);
        roles
    }

    /// The union of the caller's roles on `/pool/<p>` for every pool `p` that holds the guest
    /// or storage `path` names.
    fn pool_roles(&self, caller: Caller<'_>, path: &AclPath) -> Roles<'_> {
        let (vmid, storage) = (path.vmid(), path.storage_id());
        if vmid.is_none() && storage.is_none() {
            return Roles::new();
        }
        self.pools
            .iter()
            .filter(|(_, pool)| {
                vmid.is_some_and(|v| pool.vms.contains(&v)) || storage.is_some_and(|s| pool.storage.contains(s))
            })
            .flat_map(|(name, _)| self.walk(caller, &format!("/pool/{name}")))
            .collect()
    }

    /// The roles the caller's entries give on a normal-form path, `NoAccess` collapsed.
    fn walk(&self, caller: Caller<'_>, path: &str) -> Roles<'_> {
        let mut roles = Roles::new();
        for node in path::prefixes(path) {
            if let Some(here) = self.node_roles(caller, node, node == path) {
                roles = here;
            }
        }
        collapse_no_access(roles)
    }

    /// The roles of the entries on `node` that apply to the caller, or `None` if none does.
    /// On an ancestor of the checked path (`is_final` false) only propagating entries apply.
    fn node_roles<'m>(&'m self, caller: Caller<'_>, node: &str, is_final: bool) -> Option<Roles<'m>> {
        let here = || self.acl.iter().filter(move |e| e.path.as_str() == node && (is_final || e.propagate));
        match caller {
            Caller::Token(id) => non_empty(here().filter(|e| matches!(&e.subject, AclSubject::Token(t) if t == id))),
            Caller::User(user) => non_empty(here().filter(|e| matches!(&e.subject, AclSubject::User(u) if u == user)))
                .or_else(|| {
                    non_empty(here().filter(|e| matches!(&e.subject, AclSubject::Group(g) if self.is_member(user, g))))
                }),
        }
    }

    fn is_member(&self, user: &Userid, group: &super::GroupName) -> bool {
        self.groups.contains_key(group) && self.users.get(user).is_some_and(|u| u.groups.contains(group))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{Group, Pool, Token, User, role};

    const NOW: i64 = 1_700_000_000;

    /// A model from `(subject, path, role, propagate)` grants, creating the users, groups and
    /// tokens they name. Groups are `@name`; membership comes from `members`.
    struct Setup {
        model: AccessModel,
    }

    impl Setup {
        fn new() -> Setup {
            Setup { model: AccessModel::default() }
        }

        fn user(mut self, id: &str, groups: &[&str]) -> Setup {
            let mut user = User::default();
            for g in groups {
                let g: super::super::GroupName = g.parse().unwrap();
                self.model.groups.insert(g.clone(), Group::default());
                user.groups.insert(g);
            }
            self.model.users.insert(id.parse().unwrap(), user);
            self
        }

        fn token(mut self, id: &str, privsep: bool) -> Setup {
            self.model.tokens.insert(id.parse().unwrap(), Token { privsep, ..Token::default() });
            self
        }

        fn grant(mut self, subject: &str, path: &str, role: &str, propagate: bool) -> Setup {
            if let Some(g) = subject.strip_prefix('@') {
                self.model.groups.entry(g.parse().unwrap()).or_default();
            }
            self.model.acl.push(AclEntry {
                path: path.parse().unwrap(),
                subject: subject.parse().unwrap(),
                role: role.parse().unwrap(),
                propagate,
            });
            self
        }

        fn pool(mut self, name: &str, vms: &[u32], storage: &[&str]) -> Setup {
            let pool = Pool {
                comment: None,
                vms: vms.iter().map(|v| crate::Vmid::new(*v).unwrap()).collect(),
                storage: storage.iter().map(|s| s.to_string()).collect(),
            };
            self.model.pools.insert(name.parse().unwrap(), pool);
            self
        }

        fn done(self) -> AccessModel {
            assert_eq!(self.model.validate(), Ok(()));
            self.model
        }
    }

    fn privs(m: &AccessModel, who: &str, path: &str) -> String {
        m.permissions(&who.parse().unwrap(), &path.parse().unwrap(), NOW).to_string()
    }

    fn roles(m: &AccessModel, who: &str, path: &str) -> Vec<String> {
        m.roles_at(&who.parse().unwrap(), &path.parse().unwrap(), NOW).iter().map(|r| r.to_string()).collect()
    }

    fn role_privs(name: &str) -> String {
        role::builtin(name).unwrap().privs.to_string()
    }

    #[test]
    fn nobody_holds_anything_without_a_grant() {
        let m = Setup::new().user("joe@pve", &[]).done();
        assert_eq!(privs(&m, "joe@pve", "/"), "");
        assert_eq!(privs(&m, "joe@pve", "/vms/100"), "");
        assert_eq!(privs(&m, "ghost@pve", "/"), "");
        assert!(m.effective_permissions(&"joe@pve".parse().unwrap(), NOW).is_empty());
    }

    #[test]
    fn root_holds_everything() {
        let m = Setup::new().user("joe@pve", &[]).grant("joe@pve", "/", "NoAccess", true).done();
        assert_eq!(m.permissions(&Authid::root(), &"/vms/100".parse().unwrap(), NOW), PrivSet::ALL);
        assert_eq!(roles(&m, "root@pam", "/"), ["Administrator"]);
        // Even an ACL entry cannot take anything from root@pam.
        let m = Setup::new().grant("root@pam", "/", "NoAccess", true).done();
        assert_eq!(m.permissions(&Authid::root(), &AclPath::root(), NOW), PrivSet::ALL);
    }

    #[test]
    fn propagation() {
        let m = Setup::new()
            .user("joe@pve", &[])
            .grant("joe@pve", "/vms", "PVEVMUser", true)
            .grant("joe@pve", "/storage", "PVEDatastoreUser", false)
            .done();
        assert_eq!(privs(&m, "joe@pve", "/vms/100"), role_privs("PVEVMUser"));
        assert_eq!(privs(&m, "joe@pve", "/vms"), role_privs("PVEVMUser"));
        assert_eq!(privs(&m, "joe@pve", "/"), "");
        // A non-propagating entry counts on its own path only.
        assert_eq!(privs(&m, "joe@pve", "/storage"), role_privs("PVEDatastoreUser"));
        assert_eq!(privs(&m, "joe@pve", "/storage/local"), "");
    }

    #[test]
    fn deepest_match_wins_and_replaces() {
        let m = Setup::new()
            .user("joe@pve", &[])
            .grant("joe@pve", "/", "Administrator", true)
            .grant("joe@pve", "/vms/100", "PVEAuditor", true)
            .done();
        // Not a union: the PVEAuditor entry replaces Administrator on /vms/100.
        assert_eq!(privs(&m, "joe@pve", "/vms/100"), role_privs("PVEAuditor"));
        assert_eq!(privs(&m, "joe@pve", "/vms/101"), PrivSet::ALL.to_string());
        // A non-propagating entry on an ancestor does not replace what came from above.
        let m = Setup::new()
            .user("joe@pve", &[])
            .grant("joe@pve", "/", "PVEVMAdmin", true)
            .grant("joe@pve", "/vms", "PVEAuditor", false)
            .done();
        assert_eq!(privs(&m, "joe@pve", "/vms"), role_privs("PVEAuditor"));
        assert_eq!(privs(&m, "joe@pve", "/vms/100"), role_privs("PVEVMAdmin"));
        // Several roles on one node for one user are united.
        let m = Setup::new()
            .user("joe@pve", &[])
            .grant("joe@pve", "/vms", "PVETemplateUser", true)
            .grant("joe@pve", "/vms", "PVEPoolUser", true)
            .done();
        assert_eq!(roles(&m, "joe@pve", "/vms/100"), ["PVEPoolUser", "PVETemplateUser"]);
        assert_eq!(privs(&m, "joe@pve", "/vms/100"), "Pool.Audit,VM.Audit,VM.Clone");
    }

    #[test]
    fn user_entries_override_group_entries_on_the_same_node() {
        let m = Setup::new()
            .user("joe@pve", &["ops"])
            .grant("@ops", "/vms", "PVEVMAdmin", true)
            .grant("joe@pve", "/vms", "PVEAuditor", true)
            .done();
        assert_eq!(privs(&m, "joe@pve", "/vms/100"), role_privs("PVEAuditor"));
        // But a deeper group entry still replaces a user entry from above.
        let m = Setup::new()
            .user("joe@pve", &["ops"])
            .grant("joe@pve", "/", "PVEAuditor", true)
            .grant("@ops", "/vms/100", "PVEVMAdmin", true)
            .done();
        assert_eq!(privs(&m, "joe@pve", "/vms/100"), role_privs("PVEVMAdmin"));
        assert_eq!(privs(&m, "joe@pve", "/vms/101"), role_privs("PVEAuditor"));
    }

    #[test]
    fn group_entries_are_united() {
        let m = Setup::new()
            .user("joe@pve", &["vm", "ds"])
            .user("ann@pve", &["vm"])
            .grant("@vm", "/", "PVETemplateUser", true)
            .grant("@ds", "/", "PVEDatastoreUser", true)
            .grant("@other", "/", "Administrator", true)
            .done();
        assert_eq!(privs(&m, "joe@pve", "/storage/local"), "Datastore.AllocateSpace,Datastore.Audit,VM.Audit,VM.Clone");
        assert_eq!(privs(&m, "ann@pve", "/storage/local"), "VM.Audit,VM.Clone");
    }

    #[test]
    fn no_access_cancels_everything() {
        let m = Setup::new()
            .user("joe@pve", &["ops"])
            .grant("@ops", "/vms", "PVEVMAdmin", true)
            .grant("@ops", "/vms", "NoAccess", false)
            .grant("joe@pve", "/storage", "PVEDatastoreAdmin", true)
            .grant("joe@pve", "/storage", "NoAccess", true)
            .done();
        // On /vms itself both group roles apply and NoAccess wins; below it only PVEVMAdmin propagates.
        assert_eq!(privs(&m, "joe@pve", "/vms"), "");
        assert_eq!(roles(&m, "joe@pve", "/vms"), ["NoAccess"]);
        assert_eq!(privs(&m, "joe@pve", "/vms/100"), role_privs("PVEVMAdmin"));
        assert_eq!(privs(&m, "joe@pve", "/storage/local"), "");
        // A deeper grant replaces an inherited NoAccess: the deepest match wins.
        let m = Setup::new()
            .user("joe@pve", &[])
            .grant("joe@pve", "/", "NoAccess", true)
            .grant("joe@pve", "/vms/100", "PVEVMUser", true)
            .done();
        assert_eq!(privs(&m, "joe@pve", "/vms/100"), role_privs("PVEVMUser"));
        assert_eq!(privs(&m, "joe@pve", "/vms/101"), "");
    }

    #[test]
    fn pools_fill_gaps_for_their_members_only() {
        let m = Setup::new()
            .user("joe@pve", &[])
            .pool("prod", &[100], &["local"])
            .grant("joe@pve", "/pool/prod", "PVEVMUser", true)
            .grant("joe@pve", "/vms/100", "PVETemplateUser", true)
            .grant("joe@pve", "/pool/prod", "PVEDatastoreUser", true)
            .done();
        // The pool's roles are added to the regular ones.
        assert_eq!(roles(&m, "joe@pve", "/vms/100"), ["PVEDatastoreUser", "PVETemplateUser", "PVEVMUser"]);
        let vm_user = role::builtin("PVEVMUser").unwrap().privs;
        let expected = vm_user
            | role::builtin("PVETemplateUser").unwrap().privs
            | role::builtin("PVEDatastoreUser").unwrap().privs;
        assert_eq!(privs(&m, "joe@pve", "/vms/100"), expected.to_string());
        assert_eq!(roles(&m, "joe@pve", "/storage/local"), ["PVEDatastoreUser", "PVEVMUser"]);
        // Not for guests or storages outside the pool, and not for the collections.
        assert_eq!(privs(&m, "joe@pve", "/vms/101"), "");
        assert_eq!(privs(&m, "joe@pve", "/storage/nfs"), "");
        assert_eq!(privs(&m, "joe@pve", "/vms"), "");
        // On the pool path itself the entries apply normally.
        assert_eq!(roles(&m, "joe@pve", "/pool/prod"), ["PVEDatastoreUser", "PVEVMUser"]);
    }

    #[test]
    fn pool_roles_are_inherited_like_any_path() {
        // Roles on /pool/prod include what propagates from /pool and from the parent pool.
        let m = Setup::new()
            .user("joe@pve", &[])
            .pool("prod", &[], &[])
            .pool("prod/web", &[100], &[])
            .grant("joe@pve", "/pool/prod", "PVEVMUser", true)
            .done();
        assert_eq!(privs(&m, "joe@pve", "/vms/100"), role_privs("PVEVMUser"));
    }

    #[test]
    fn pool_no_access_overrides_and_regular_no_access_stays() {
        let m = Setup::new()
            .user("joe@pve", &[])
            .pool("prod", &[100, 101], &[])
            .grant("joe@pve", "/vms", "PVEVMAdmin", true)
            .grant("joe@pve", "/pool/prod", "NoAccess", true)
            .done();
        assert_eq!(privs(&m, "joe@pve", "/vms/100"), "");
        assert_eq!(roles(&m, "joe@pve", "/vms/100"), ["NoAccess"]);
        assert_eq!(privs(&m, "joe@pve", "/vms/102"), role_privs("PVEVMAdmin"));

        let m = Setup::new()
            .user("joe@pve", &[])
            .pool("prod", &[100], &[])
            .grant("joe@pve", "/vms/100", "NoAccess", true)
            .grant("joe@pve", "/pool/prod", "Administrator", true)
            .done();
        assert_eq!(privs(&m, "joe@pve", "/vms/100"), "");
        assert_eq!(privs(&m, "joe@pve", "/pool/prod"), PrivSet::ALL.to_string());
    }

    #[test]
    fn tokens_with_and_without_privilege_separation() {
        let m = Setup::new()
            .user("joe@pve", &["ops"])
            .token("joe@pve!full", false)
            .token("joe@pve!sep", true)
            .token("joe@pve!new", true)
            .grant("@ops", "/vms", "PVEVMUser", true)
            .grant("joe@pve!full", "/", "Administrator", true)
            .grant("joe@pve!sep", "/", "Administrator", true)
            .grant("joe@pve!sep", "/vms/100", "PVETemplateUser", true)
            .done();
        // Without privilege separation: exactly the user's privileges; its own entries are ignored.
        assert_eq!(privs(&m, "joe@pve!full", "/vms/101"), role_privs("PVEVMUser"));
        assert_eq!(privs(&m, "joe@pve!full", "/"), "");
        assert_eq!(roles(&m, "joe@pve!full", "/vms/101"), ["PVEVMUser"]);
        // With it: its own result, never more than the user's.
        assert_eq!(privs(&m, "joe@pve!sep", "/vms/101"), role_privs("PVEVMUser"));
        assert_eq!(privs(&m, "joe@pve!sep", "/vms/100"), "VM.Audit");
        assert_eq!(privs(&m, "joe@pve!sep", "/"), "");
        assert_eq!(roles(&m, "joe@pve!sep", "/vms/100"), ["PVETemplateUser"]);
        // A new separated token holds nothing, even where its user holds much.
        assert_eq!(privs(&m, "joe@pve!new", "/vms/101"), "");
        // Unknown tokens hold nothing.
        assert_eq!(privs(&m, "joe@pve!ghost", "/vms/101"), "");
    }

    #[test]
    fn tokens_of_root_are_bounded_only_by_their_own_entries() {
        let m = Setup::new()
            .token("root@pam!sep", true)
            .token("root@pam!full", false)
            .grant("root@pam!sep", "/vms", "PVEAuditor", true)
            .done();
        assert_eq!(privs(&m, "root@pam!sep", "/vms/100"), role_privs("PVEAuditor"));
        assert_eq!(privs(&m, "root@pam!full", "/vms/100"), PrivSet::ALL.to_string());
    }

    #[test]
    fn disabled_and_expired_users_and_expired_tokens_hold_nothing() {
        let mut m = Setup::new()
            .user("joe@pve", &["ops"])
            .token("joe@pve!ci", true)
            .token("joe@pve!full", false)
            .grant("@ops", "/", "Administrator", true)
            .grant("joe@pve!ci", "/", "Administrator", true)
            .done();
        let joe: Userid = "joe@pve".parse().unwrap();
        assert_eq!(privs(&m, "joe@pve", "/"), PrivSet::ALL.to_string());
        m.users.get_mut(&joe).unwrap().expire = Some(NOW);
        assert_eq!(privs(&m, "joe@pve", "/"), PrivSet::ALL.to_string(), "expires only after the moment");
        m.users.get_mut(&joe).unwrap().expire = Some(NOW - 1);
        assert_eq!(privs(&m, "joe@pve", "/"), "");
        assert_eq!(privs(&m, "joe@pve!ci", "/"), "");
        assert_eq!(privs(&m, "joe@pve!full", "/"), "");
        assert!(roles(&m, "joe@pve", "/").is_empty());
        m.users.get_mut(&joe).unwrap().expire = None;
        m.users.get_mut(&joe).unwrap().enabled = false;
        assert_eq!(privs(&m, "joe@pve", "/"), "");
        assert_eq!(privs(&m, "joe@pve!full", "/"), "");
        m.users.get_mut(&joe).unwrap().enabled = true;
        m.tokens.get_mut(&"joe@pve!ci".parse().unwrap()).unwrap().expire = Some(NOW - 1);
        assert_eq!(privs(&m, "joe@pve!ci", "/"), "");
        assert!(roles(&m, "joe@pve!ci", "/").is_empty());
        assert_eq!(privs(&m, "joe@pve", "/"), PrivSet::ALL.to_string());
    }

    #[test]
    fn checks_and_listing() {
        let m = Setup::new()
            .user("joe@pve", &[])
            .pool("prod", &[100], &["local"])
            .grant("joe@pve", "/pool/prod", "PVEVMUser", true)
            .grant("joe@pve", "/nodes", "PVEAuditor", false)
            .done();
        let joe: Authid = "joe@pve".parse().unwrap();
        let vm100: AclPath = "/vms/100".parse().unwrap();
        let power = PrivSet::from(Privilege::VmPowerMgmt);
        assert!(m.check(&joe, &vm100, power | Privilege::VmConsole.into(), NOW));
        assert!(!m.check(&joe, &vm100, power | Privilege::VmAllocate.into(), NOW));
        assert!(m.check_any(&joe, &vm100, power | Privilege::VmAllocate.into(), NOW));
        assert!(!m.check_any(&joe, &vm100, Privilege::VmAllocate.into(), NOW));
        let listed: Vec<(String, String)> =
            m.effective_permissions(&joe, NOW).into_iter().map(|(p, s)| (p.to_string(), s.to_string())).collect();
        let vm_user = role_privs("PVEVMUser");
        assert_eq!(
            listed,
            [
                ("/nodes".to_string(), role_privs("PVEAuditor")),
                ("/pool/prod".to_string(), vm_user.clone()),
                ("/storage/local".to_string(), vm_user.clone()),
                ("/vms/100".to_string(), vm_user),
            ]
        );
    }

    #[test]
    fn granting_needs_permissions_modify_or_holding_the_privileges() {
        let m = Setup::new()
            .user("boss@pve", &[])
            .user("owner@pve", &[])
            .grant("boss@pve", "/", "Administrator", true)
            .grant("owner@pve", "/vms/100", "PVEVMAdmin", true)
            .done();
        let boss: Authid = "boss@pve".parse().unwrap();
        let owner: Authid = "owner@pve".parse().unwrap();
        let vm100: AclPath = "/vms/100".parse().unwrap();
        let role = |r: &str| r.parse::<RoleName>().unwrap();
        assert!(m.may_grant(&boss, &vm100, &role("Administrator"), NOW));
        assert!(m.may_grant(&owner, &vm100, &role("PVEVMUser"), NOW));
        assert!(!m.may_grant(&owner, &vm100, &role("Administrator"), NOW));
        assert!(!m.may_grant(&owner, &"/vms/101".parse().unwrap(), &role("PVEVMUser"), NOW));
        assert!(!m.may_grant(&owner, &vm100, &role("NoSuchRole"), NOW));
    }

    #[test]
    fn last_admin_guard() {
        let m = Setup::new()
            .user("joe@pve", &["admins"])
            .user("ann@pve", &[])
            .grant("@admins", "/", "Administrator", true)
            .grant("ann@pve", "/", "Administrator", false)
            .done();
        let joe: Userid = "joe@pve".parse().unwrap();
        // ann's grant does not propagate, so only joe (through his group) is an administrator.
        assert_eq!(m.administrators(NOW), BTreeSet::from([joe.clone()]));

        let mut no_group_acl = m.clone();
        no_group_acl.acl.retain(|e| !matches!(e.subject, AclSubject::Group(_)));
        assert!(m.would_remove_last_admin(&no_group_acl, NOW));

        let mut left_group = m.clone();
        left_group.users.get_mut(&joe).unwrap().groups.clear();
        assert!(m.would_remove_last_admin(&left_group, NOW));

        let mut disabled = m.clone();
        disabled.users.get_mut(&joe).unwrap().enabled = false;
        assert!(m.would_remove_last_admin(&disabled, NOW));

        // A user entry on / overrides the group's for that user.
        let mut overridden = m.clone();
        overridden.acl.push(AclEntry::new(
            AclPath::root(),
            AclSubject::User(joe.clone()),
            "PVEAuditor".parse().unwrap(),
        ));
        assert!(m.would_remove_last_admin(&overridden, NOW));

        // With a second administrator, removing one is fine.
        let mut two = m.clone();
        two.acl.push(AclEntry::new(
            AclPath::root(),
            AclSubject::User("ann@pve".parse().unwrap()),
            "Administrator".parse().unwrap(),
        ));
        assert_eq!(two.administrators(NOW).len(), 2);
        assert!(!two.would_remove_last_admin(&no_group_acl_of(&two), NOW));

        // root@pam and tokens never count; with no administrator to begin with nothing is lost.
        let rooted = Setup::new()
            .token("root@pam!tk", false)
            .grant("root@pam", "/", "Administrator", true)
            .grant("root@pam!tk", "/", "Administrator", true)
            .done();
        assert!(rooted.administrators(NOW).is_empty());
        assert!(!rooted.would_remove_last_admin(&AccessModel::default(), NOW));
    }

    fn no_group_acl_of(m: &AccessModel) -> AccessModel {
        let mut m = m.clone();
        m.acl.retain(|e| !matches!(e.subject, AclSubject::Group(_)));
        m
    }
}
