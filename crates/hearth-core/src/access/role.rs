//! Roles: the built-in ones, exactly as `pveum role list` shows them on Proxmox VE 8 and 9
//! (names and privilege sets), and the names custom roles may take.
//!
//! Proxmox generates its roles from privilege tiers per category (root, admin, user, audit):
//! `PVE<Category>Admin` holds the admin, user and audit tiers, `PVE<Category>User` the user and
//! audit tiers, `PVEAuditor` every audit tier and `PVEAdmin` everything below the root tier but
//! `Mapping.Modify`. The sets below are those results, written out.

use std::fmt;
use std::str::FromStr;

use super::ids::IdError;
use super::privilege::{PrivSet, Privilege as P};

/// Every privilege.
pub const ADMINISTRATOR: &str = "Administrator";
/// No privilege, and it cancels every other role on the path it applies to.
pub const NO_ACCESS: &str = "NoAccess";

/// A role that always exists and cannot be changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuiltinRole {
    pub name: &'static str,
    pub privs: PrivSet,
}

/// Privileges only `root@pam` and `Administrator` hold: Proxmox's "root" tier and
/// `Permissions.Modify`.
const ROOT_ONLY: PrivSet = PrivSet::from_slice(&[
    P::SysPowerMgmt,
    P::SysModify,
    P::SysIncoming,
    P::SysAccessNetwork,
    P::RealmAllocate,
    P::PermissionsModify,
]);

const VM_ALL: PrivSet = PrivSet::from_slice(&[
    P::VmAllocate,
    P::VmAudit,
    P::VmBackup,
    P::VmClone,
    P::VmConfigCdrom,
    P::VmConfigCpu,
    P::VmConfigCloudinit,
    P::VmConfigDisk,
    P::VmConfigHwType,
    P::VmConfigMemory,
    P::VmConfigNetwork,
    P::VmConfigOptions,
    P::VmConsole,
    P::VmGuestAgentAudit,
    P::VmGuestAgentFileRead,
    P::VmGuestAgentFileWrite,
    P::VmGuestAgentFileSystemMgmt,
    P::VmGuestAgentUnrestricted,
    P::VmMigrate,
    P::VmPowerMgmt,
    P::VmReplicate,
    P::VmSnapshot,
    P::VmSnapshotRollback,
]);

const VM_USER: PrivSet = PrivSet::from_slice(&[
    P::VmConfigCdrom,
    P::VmConfigCloudinit,
    P::VmConsole,
    P::VmBackup,
    P::VmGuestAgentFileRead,
    P::VmGuestAgentFileSystemMgmt,
    P::VmGuestAgentFileWrite,
    P::VmPowerMgmt,
    P::VmAudit,
    P::VmGuestAgentAudit,
]);

const DATASTORE_USER: PrivSet = PrivSet::from_slice(&[P::DatastoreAllocateSpace, P::DatastoreAudit]);

/// The built-in roles. `role list` sorts them by name.
pub const BUILTIN_ROLES: &[BuiltinRole] = &[
    BuiltinRole { name: ADMINISTRATOR, privs: PrivSet::ALL },
    BuiltinRole { name: NO_ACCESS, privs: PrivSet::EMPTY },
    // Everything below the root tier, except `Mapping.Modify`, as in Proxmox.
    BuiltinRole { name: "PVEAdmin", privs: PrivSet::ALL.difference(ROOT_ONLY).without(P::MappingModify) },
    BuiltinRole {
        name: "PVEAuditor",
        privs: PrivSet::from_slice(&[
            P::VmAudit,
            P::VmGuestAgentAudit,
            P::SysAudit,
            P::DatastoreAudit,
            P::SdnAudit,
            P::PoolAudit,
            P::MappingAudit,
        ]),
    },
    BuiltinRole { name: "PVEVMAdmin", privs: VM_ALL },
    BuiltinRole { name: "PVEVMUser", privs: VM_USER },
    BuiltinRole { name: "PVETemplateUser", privs: PrivSet::from_slice(&[P::VmClone, P::VmAudit]) },
    BuiltinRole { name: "PVESysAdmin", privs: PrivSet::from_slice(&[P::SysConsole, P::SysSyslog, P::SysAudit]) },
    BuiltinRole {
        name: "PVEDatastoreAdmin",
        privs: PrivSet::from_slice(&[
            P::DatastoreAllocate,
            P::DatastoreAllocateTemplate,
            P::DatastoreAllocateSpace,
            P::DatastoreAudit,
        ]),
    },
    BuiltinRole { name: "PVEDatastoreUser", privs: DATASTORE_USER },
    BuiltinRole { name: "PVESDNAdmin", privs: PrivSet::from_slice(&[P::SdnAllocate, P::SdnAudit, P::SdnUse]) },
    BuiltinRole { name: "PVESDNUser", privs: PrivSet::from_slice(&[P::SdnUse, P::SdnAudit]) },
    BuiltinRole {
        name: "PVEUserAdmin",
        privs: PrivSet::from_slice(&[P::UserModify, P::GroupAllocate, P::RealmAllocateUser]),
    },
    BuiltinRole { name: "PVEPoolAdmin", privs: PrivSet::from_slice(&[P::PoolAllocate, P::PoolAudit]) },
    BuiltinRole { name: "PVEPoolUser", privs: PrivSet::from_slice(&[P::PoolAudit]) },
    BuiltinRole {
        name: "PVEMappingAdmin",
        privs: PrivSet::from_slice(&[P::MappingModify, P::MappingUse, P::MappingAudit]),
    },
    BuiltinRole { name: "PVEMappingUser", privs: PrivSet::from_slice(&[P::MappingUse, P::MappingAudit]) },
];

/// The built-in role of that exact name.
pub fn builtin(name: &str) -> Option<&'static BuiltinRole> {
    BUILTIN_ROLES.iter().find(|r| r.name == name)
}

/// A role name: `[A-Za-z0-9.\-_]+`, as Proxmox allows. It may name a built-in role; custom roles
/// are checked with [`RoleName::check_custom`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoleName(String);

impl RoleName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The built-in role this name denotes, if any.
    pub fn builtin(&self) -> Option<&'static BuiltinRole> {
        builtin(&self.0)
    }

    /// Refuses names a custom role may not take: built-in names in any letter case (two roles
    /// told apart by case only would be a trap), and names starting with `PVE`, which Proxmox
    /// reserves for its built-ins, so that a Proxmox role name is never silently something else
    /// here.
    pub fn check_custom(&self) -> Result<(), IdError> {
        let reserved = |why: &str| Err(IdError::new("role name", &self.0, why));
        if let Some(b) = BUILTIN_ROLES.iter().find(|r| r.name.eq_ignore_ascii_case(&self.0)) {
            return reserved(&format!("the name of the built-in role '{}' is reserved", b.name));
        }
        if self.0.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("PVE")) {
            return reserved("names starting with 'PVE' (in any letter case) are reserved for built-in roles");
        }
        Ok(())
    }
}

impl FromStr for RoleName {
    type Err = IdError;

    fn from_str(s: &str) -> Result<RoleName, IdError> {
        let ok = !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if ok { Ok(RoleName(s.to_owned())) } else { Err(IdError::new("role name", s, "expected [A-Za-z0-9.-_]+")) }
    }
}

impl TryFrom<String> for RoleName {
    type Error = IdError;
    fn try_from(s: String) -> Result<RoleName, IdError> {
        s.parse()
    }
}

impl From<RoleName> for String {
    fn from(r: RoleName) -> String {
        r.0
    }
}

/// Lets maps keyed by role name be searched with a `&str`; the order is the string's.
impl std::borrow::Borrow<str> for RoleName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn privs(name: &str) -> String {
        builtin(name).unwrap().privs.to_string()
    }

    #[test]
    fn builtin_sets_match_proxmox() {
        let mut names: Vec<&str> = BUILTIN_ROLES.iter().map(|r| r.name).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "Administrator",
                "NoAccess",
                "PVEAdmin",
                "PVEAuditor",
                "PVEDatastoreAdmin",
                "PVEDatastoreUser",
                "PVEMappingAdmin",
                "PVEMappingUser",
                "PVEPoolAdmin",
                "PVEPoolUser",
                "PVESDNAdmin",
                "PVESDNUser",
                "PVESysAdmin",
                "PVETemplateUser",
                "PVEUserAdmin",
                "PVEVMAdmin",
                "PVEVMUser",
            ]
        );
        assert_eq!(privs("Administrator"), PrivSet::ALL.to_string());
        assert_eq!(privs("NoAccess"), "");
        assert_eq!(
            privs("PVEAuditor"),
            "Datastore.Audit,Mapping.Audit,Pool.Audit,SDN.Audit,Sys.Audit,VM.Audit,VM.GuestAgent.Audit"
        );
        assert_eq!(builtin("PVEVMAdmin").unwrap().privs.len(), 23);
        assert!(builtin("PVEVMAdmin").unwrap().privs.iter().all(|p| p.name().starts_with("VM.")));
        assert_eq!(
            privs("PVEVMUser"),
            "VM.Audit,VM.Backup,VM.Config.CDROM,VM.Config.Cloudinit,VM.Console,VM.GuestAgent.Audit,\
             VM.GuestAgent.FileRead,VM.GuestAgent.FileSystemMgmt,VM.GuestAgent.FileWrite,VM.PowerMgmt"
        );
        assert_eq!(privs("PVETemplateUser"), "VM.Audit,VM.Clone");
        assert_eq!(privs("PVESysAdmin"), "Sys.Audit,Sys.Console,Sys.Syslog");
        assert_eq!(
            privs("PVEDatastoreAdmin"),
            "Datastore.Allocate,Datastore.AllocateSpace,Datastore.AllocateTemplate,Datastore.Audit"
        );
        assert_eq!(privs("PVEDatastoreUser"), "Datastore.AllocateSpace,Datastore.Audit");
        assert_eq!(privs("PVESDNAdmin"), "SDN.Allocate,SDN.Audit,SDN.Use");
        assert_eq!(privs("PVESDNUser"), "SDN.Audit,SDN.Use");
        assert_eq!(privs("PVEUserAdmin"), "Group.Allocate,Realm.AllocateUser,User.Modify");
        assert_eq!(privs("PVEPoolAdmin"), "Pool.Allocate,Pool.Audit");
        assert_eq!(privs("PVEPoolUser"), "Pool.Audit");
        assert_eq!(privs("PVEMappingAdmin"), "Mapping.Audit,Mapping.Modify,Mapping.Use");
        assert_eq!(privs("PVEMappingUser"), "Mapping.Audit,Mapping.Use");
    }

    #[test]
    fn admin_is_everything_but_the_root_tier_and_mapping_modify() {
        let missing = PrivSet::ALL.difference(builtin("PVEAdmin").unwrap().privs);
        assert_eq!(
            missing.to_string(),
            "Mapping.Modify,Permissions.Modify,Realm.Allocate,Sys.AccessNetwork,Sys.Incoming,Sys.Modify,Sys.PowerMgmt"
        );
        // Every category admin role except Mapping's is inside PVEAdmin.
        for r in BUILTIN_ROLES.iter().filter(|r| !["Administrator", "PVEMappingAdmin"].contains(&r.name)) {
            assert!(r.privs.is_subset(builtin("PVEAdmin").unwrap().privs), "{}", r.name);
        }
    }

    #[test]
    fn role_names() {
        assert!("VM_Power-only.1".parse::<RoleName>().is_ok());
        for bad in ["", "a b", "a/b", "a:b", "ä"] {
            assert!(bad.parse::<RoleName>().is_err(), "{bad:?}");
        }
        let custom = |s: &str| s.parse::<RoleName>().unwrap().check_custom().map_err(|e| e.to_string());
        assert_eq!(custom("Operators"), Ok(()));
        assert_eq!(custom("VMAdmin"), Ok(()));
        assert_eq!(
            custom("pvevmadmin"),
            Err("invalid role name 'pvevmadmin': the name of the built-in role 'PVEVMAdmin' is reserved".into())
        );
        assert_eq!(
            custom("administrator"),
            Err("invalid role name 'administrator': the name of the built-in role 'Administrator' is reserved".into())
        );
        for reserved in ["PVE_Power-only", "pveThing"] {
            assert_eq!(
                custom(reserved),
                Err(format!(
                    "invalid role name '{reserved}': names starting with 'PVE' (in any letter case) are reserved \
                     for built-in roles"
                ))
            );
        }
        assert!("NoAccess".parse::<RoleName>().unwrap().builtin().is_some());
    }
}
