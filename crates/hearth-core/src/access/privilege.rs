//! Privileges under their Proxmox VE names (`VM.Audit`, `Sys.Console`, …) and `PrivSet`, a set
//! of them in one machine word.

use std::fmt;
use std::str::FromStr;

macro_rules! privileges {
    ($($variant:ident => $name:literal,)*) => {
        /// One privilege. Variants are in the order of their names, so iteration is sorted.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Privilege {
            $($variant,)*
        }

        impl Privilege {
            /// Every privilege, sorted by name.
            pub const ALL: &'static [Privilege] = &[$(Privilege::$variant,)*];

            /// The Proxmox name, such as `VM.Config.Disk`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Privilege::$variant => $name,)*
                }
            }
        }
    };
}

privileges! {
    DatastoreAllocate => "Datastore.Allocate",
    DatastoreAllocateSpace => "Datastore.AllocateSpace",
    DatastoreAllocateTemplate => "Datastore.AllocateTemplate",
    DatastoreAudit => "Datastore.Audit",
    GroupAllocate => "Group.Allocate",
    MappingAudit => "Mapping.Audit",
    MappingModify => "Mapping.Modify",
    MappingUse => "Mapping.Use",
    PermissionsModify => "Permissions.Modify",
    PoolAllocate => "Pool.Allocate",
    PoolAudit => "Pool.Audit",
    RealmAllocate => "Realm.Allocate",
    RealmAllocateUser => "Realm.AllocateUser",
    SdnAllocate => "SDN.Allocate",
    SdnAudit => "SDN.Audit",
    SdnUse => "SDN.Use",
    SysAccessNetwork => "Sys.AccessNetwork",
    SysAudit => "Sys.Audit",
    SysConsole => "Sys.Console",
    SysIncoming => "Sys.Incoming",
    SysModify => "Sys.Modify",
    SysPowerMgmt => "Sys.PowerMgmt",
    SysSyslog => "Sys.Syslog",
    UserModify => "User.Modify",
    VmAllocate => "VM.Allocate",
    VmAudit => "VM.Audit",
    VmBackup => "VM.Backup",
    VmClone => "VM.Clone",
    VmConfigCdrom => "VM.Config.CDROM",
    VmConfigCpu => "VM.Config.CPU",
    VmConfigCloudinit => "VM.Config.Cloudinit",
    VmConfigDisk => "VM.Config.Disk",
    VmConfigHwType => "VM.Config.HWType",
    VmConfigMemory => "VM.Config.Memory",
    VmConfigNetwork => "VM.Config.Network",
    VmConfigOptions => "VM.Config.Options",
    VmConsole => "VM.Console",
    VmGuestAgentAudit => "VM.GuestAgent.Audit",
    VmGuestAgentFileRead => "VM.GuestAgent.FileRead",
    VmGuestAgentFileSystemMgmt => "VM.GuestAgent.FileSystemMgmt",
    VmGuestAgentFileWrite => "VM.GuestAgent.FileWrite",
    VmGuestAgentUnrestricted => "VM.GuestAgent.Unrestricted",
    VmMigrate => "VM.Migrate",
    VmPowerMgmt => "VM.PowerMgmt",
    VmReplicate => "VM.Replicate",
    VmSnapshot => "VM.Snapshot",
    VmSnapshotRollback => "VM.Snapshot.Rollback",
}

impl Privilege {
    /// Looks a privilege up by its exact (case-sensitive) name.
    pub fn from_name(name: &str) -> Option<Privilege> {
        Privilege::ALL.iter().copied().find(|p| p.name() == name)
    }

    const fn bit(self) -> u64 {
        1 << self as u8
    }
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Privilege {
    type Err = PrivError;

    fn from_str(s: &str) -> Result<Privilege, PrivError> {
        Privilege::from_name(s).ok_or_else(|| PrivError::unknown(s))
    }
}

/// A name that is not a privilege, with the privileges it is close to.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown privilege '{name}'{}", hint(.suggestions))]
pub struct PrivError {
    pub name: String,
    /// Close matches, best first; empty when nothing is close.
    pub suggestions: Vec<&'static str>,
}

fn hint(suggestions: &[&str]) -> String {
    match suggestions {
        [] => "; privileges are named like VM.Audit or Sys.Console (see `userctl role list`)".to_owned(),
        [one] => format!("; did you mean '{one}'?"),
        many => {
            format!("; did you mean one of {}?", many.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", "))
        }
    }
}

impl PrivError {
    fn unknown(name: &str) -> PrivError {
        PrivError { name: name.to_owned(), suggestions: close_matches(name) }
    }
}

/// Privileges a mistyped name probably meant: the same name in another case, names a few edits
/// away, names whose part after the category is what was typed (`PowerMgmt`), and for the
/// retired `VM.Monitor` the privileges that replaced it.
fn close_matches(name: &str) -> Vec<&'static str> {
    if name == "VM.Monitor" {
        return Privilege::ALL.iter().map(|p| p.name()).filter(|n| n.starts_with("VM.GuestAgent.")).collect();
    }
    if let Some(p) = Privilege::ALL.iter().find(|p| p.name().eq_ignore_ascii_case(name)) {
        return vec![p.name()];
    }
    let lower = name.to_ascii_lowercase();
    let mut scored: Vec<(usize, &'static str)> = Privilege::ALL
        .iter()
        .map(|p| p.name())
        .filter_map(|candidate| {
            let cand = candidate.to_ascii_lowercase();
            let distance = super::edit_distance(&lower, &cand);
            let unqualified = candidate.split_once('.').is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(name));
            if distance <= 2 + candidate.len() / 10 {
                Some((distance, candidate))
            } else if unqualified {
                Some((distance.min(3), candidate))
            } else {
                None
            }
        })
        .collect();
    scored.sort();
    scored.into_iter().take(5).map(|(_, n)| n).collect()
}

/// A set of privileges, one bit each.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PrivSet(u64);

impl PrivSet {
    /// No privileges.
    pub const EMPTY: PrivSet = PrivSet(0);
    /// Every privilege.
    pub const ALL: PrivSet = PrivSet::from_slice(Privilege::ALL);

    /// The set of the given privileges; usable in constants.
    pub const fn from_slice(privs: &[Privilege]) -> PrivSet {
        let mut bits = 0;
        let mut i = 0;
        while i < privs.len() {
            bits |= privs[i].bit();
            i += 1;
        }
        PrivSet(bits)
    }

    /// Parses a list of privilege names separated by commas, semicolons or whitespace, as
    /// `role add --privs` takes it. An empty list is the empty set.
    pub fn parse(list: &str) -> Result<PrivSet, PrivError> {
        list.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .try_fold(PrivSet::EMPTY, |set, name| Ok(set.with(name.parse()?)))
    }

    pub const fn contains(self, p: Privilege) -> bool {
        self.0 & p.bit() != 0
    }

    /// This set plus `p`.
    pub const fn with(self, p: Privilege) -> PrivSet {
        PrivSet(self.0 | p.bit())
    }

    /// This set without `p`.
    pub const fn without(self, p: Privilege) -> PrivSet {
        PrivSet(self.0 & !p.bit())
    }

    pub fn insert(&mut self, p: Privilege) {
        *self = self.with(p);
    }

    pub fn remove(&mut self, p: Privilege) {
        *self = self.without(p);
    }

    pub const fn union(self, other: PrivSet) -> PrivSet {
        PrivSet(self.0 | other.0)
    }

    pub const fn intersection(self, other: PrivSet) -> PrivSet {
        PrivSet(self.0 & other.0)
    }

    /// The privileges of this set that are not in `other`.
    pub const fn difference(self, other: PrivSet) -> PrivSet {
        PrivSet(self.0 & !other.0)
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub const fn is_subset(self, other: PrivSet) -> bool {
        self.0 & !other.0 == 0
    }

    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The privileges in name order.
    pub fn iter(self) -> impl Iterator<Item = Privilege> {
        Privilege::ALL.iter().copied().filter(move |p| self.contains(*p))
    }
}

impl From<Privilege> for PrivSet {
    fn from(p: Privilege) -> PrivSet {
        PrivSet(p.bit())
    }
}

impl<const N: usize> From<[Privilege; N]> for PrivSet {
    fn from(privs: [Privilege; N]) -> PrivSet {
        PrivSet::from_slice(&privs)
    }
}

impl FromIterator<Privilege> for PrivSet {
    fn from_iter<I: IntoIterator<Item = Privilege>>(iter: I) -> PrivSet {
        iter.into_iter().fold(PrivSet::EMPTY, PrivSet::with)
    }
}

impl std::ops::BitOr for PrivSet {
    type Output = PrivSet;
    fn bitor(self, rhs: PrivSet) -> PrivSet {
        self.union(rhs)
    }
}

impl std::ops::BitAnd for PrivSet {
    type Output = PrivSet;
    fn bitand(self, rhs: PrivSet) -> PrivSet {
        self.intersection(rhs)
    }
}

impl std::ops::BitOrAssign for PrivSet {
    fn bitor_assign(&mut self, rhs: PrivSet) {
        *self = self.union(rhs);
    }
}

impl std::ops::BitAndAssign for PrivSet {
    fn bitand_assign(&mut self, rhs: PrivSet) {
        *self = self.intersection(rhs);
    }
}

/// Names separated by commas, as `user.cfg` and `role list` print them.
impl fmt::Display for PrivSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(p.name())?;
        }
        Ok(())
    }
}

impl fmt::Debug for PrivSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(Privilege::name)).finish()
    }
}

impl FromStr for PrivSet {
    type Err = PrivError;

    fn from_str(s: &str) -> Result<PrivSet, PrivError> {
        PrivSet::parse(s)
    }
}

/// Stored as an array of names; a comma-separated string is accepted too.
impl serde::Serialize for PrivSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter().map(Privilege::name))
    }
}

impl<'de> serde::Deserialize<'de> for PrivSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<PrivSet, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = PrivSet;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of privilege names or a comma-separated list")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PrivSet, E> {
                PrivSet::parse(v).map_err(E::custom)
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<PrivSet, A::Error> {
                let mut set = PrivSet::EMPTY;
                while let Some(name) = seq.next_element::<String>()? {
                    set.insert(name.parse().map_err(serde::de::Error::custom)?);
                }
                Ok(set)
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_complete_sorted_and_fits() {
        assert_eq!(Privilege::ALL.len(), 47);
        assert!(Privilege::ALL.len() <= 64);
        for pair in Privilege::ALL.windows(2) {
            assert!(pair[0].name() < pair[1].name(), "{} before {}", pair[0], pair[1]);
            assert!(pair[0] < pair[1]);
        }
        assert_eq!(PrivSet::ALL.len(), 47);
        let vm = Privilege::ALL.iter().filter(|p| p.name().starts_with("VM.")).count();
        assert_eq!(vm, 23);
        let sys = Privilege::ALL.iter().filter(|p| p.name().starts_with("Sys.")).count();
        assert_eq!(sys, 7);
        for p in Privilege::ALL {
            assert_eq!(p.name().parse::<Privilege>(), Ok(*p));
        }
    }

    #[test]
    fn parse_and_display() {
        let set = PrivSet::parse(" VM.Console,VM.Audit;Sys.Audit  VM.Audit ").unwrap();
        assert_eq!(set.to_string(), "Sys.Audit,VM.Audit,VM.Console");
        assert_eq!(set.len(), 3);
        assert_eq!(PrivSet::parse(&set.to_string()), Ok(set));
        assert_eq!(PrivSet::parse(""), Ok(PrivSet::EMPTY));
        assert_eq!(PrivSet::EMPTY.to_string(), "");
        assert_eq!(format!("{set:?}"), r#"{"Sys.Audit", "VM.Audit", "VM.Console"}"#);
    }

    #[test]
    fn unknown_names_suggest_close_matches() {
        let err = |s: &str| PrivSet::parse(s).unwrap_err().to_string();
        assert_eq!(err("VM.Audit,VM.PowerMgnt"), "unknown privilege 'VM.PowerMgnt'; did you mean 'VM.PowerMgmt'?");
        assert_eq!(err("vm.audit"), "unknown privilege 'vm.audit'; did you mean 'VM.Audit'?");
        assert_eq!(
            err("PowerMgmt"),
            "unknown privilege 'PowerMgmt'; did you mean one of 'Sys.PowerMgmt', 'VM.PowerMgmt'?"
        );
        assert_eq!(
            err("VM.Monitor"),
            "unknown privilege 'VM.Monitor'; did you mean one of 'VM.GuestAgent.Audit', \
             'VM.GuestAgent.FileRead', 'VM.GuestAgent.FileSystemMgmt', 'VM.GuestAgent.FileWrite', \
             'VM.GuestAgent.Unrestricted'?"
        );
        assert_eq!(
            err("Frobnicate"),
            "unknown privilege 'Frobnicate'; privileges are named like VM.Audit or Sys.Console \
             (see `userctl role list`)"
        );
        let e = PrivSet::parse("Datastore.Alocate").unwrap_err();
        assert_eq!(e.name, "Datastore.Alocate");
        assert_eq!(e.suggestions[0], "Datastore.Allocate");
    }

    #[test]
    fn set_operations() {
        let a = PrivSet::from_slice(&[Privilege::VmAudit, Privilege::VmConsole]);
        let b = PrivSet::from_slice(&[Privilege::VmAudit, Privilege::SysAudit]);
        assert_eq!((a | b).len(), 3);
        assert_eq!(a & b, PrivSet::from(Privilege::VmAudit));
        assert_eq!(a.difference(b), PrivSet::from(Privilege::VmConsole));
        assert!((a & b).is_subset(a));
        assert!(!a.is_subset(b));
        let mut c = a;
        c.remove(Privilege::VmAudit);
        c.insert(Privilege::PermissionsModify);
        assert_eq!(c.iter().collect::<Vec<_>>(), vec![Privilege::PermissionsModify, Privilege::VmConsole]);
        assert_eq!(a.iter().collect::<PrivSet>(), a);
        assert!(PrivSet::EMPTY.is_empty());
    }

    #[test]
    fn serde_forms() {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct Doc {
            privs: PrivSet,
        }
        let doc = Doc { privs: PrivSet::from_slice(&[Privilege::VmAudit, Privilege::SysAudit]) };
        let text = toml::to_string(&doc).unwrap();
        assert_eq!(text, "privs = [\"Sys.Audit\", \"VM.Audit\"]\n");
        assert_eq!(toml::from_str::<Doc>(&text).unwrap(), doc);
        assert_eq!(toml::from_str::<Doc>("privs = \"VM.Audit, Sys.Audit\"").unwrap(), doc);
        let err = toml::from_str::<Doc>("privs = [\"VM.Audit\", \"Sys.Audt\"]").unwrap_err();
        assert!(err.message().contains("unknown privilege 'Sys.Audt'; did you mean 'Sys.Audit'?"), "{err}");
    }
}
