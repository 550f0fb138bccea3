//! Roles: the built-in ones, with Proxmox VE's privilege sets under names without the `PVE`
//! prefix, and the names custom roles may take.
//!
//! Two built-in roles have no Proxmox counterpart; each is its Proxmox neighbour plus what a
//! "power user" needs and an ordinary user lacks:
//! - `VMPowerUser` = `VMUser` + `VM.Snapshot` + `VM.Snapshot.Rollback`, so a user can take and
//!   roll back snapshots of their guests without the configuration rights of `VMAdmin`.
//! - `DatastorePowerUser` = `DatastoreUser` + `Datastore.AllocateTemplate`, so a user can upload
//!   ISO images and container templates without creating or removing storages.

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

/// The built-in roles, in the order `role list` shows them.
pub const BUILTIN_ROLES: &[BuiltinRole] = &[
    BuiltinRole { name: ADMINISTRATOR, privs: PrivSet::ALL },
    BuiltinRole { name: NO_ACCESS, privs: PrivSet::EMPTY },
    // Everything below the root tier, except `Mapping.Modify`, as in Proxmox.
    BuiltinRole { name: "Admin", privs: PrivSet::ALL.difference(ROOT_ONLY).without(P::MappingModify) },
    BuiltinRole {
        name: "Auditor",
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
    BuiltinRole { name: "VMAdmin", privs: VM_ALL },
    BuiltinRole { name: "VMUser", privs: VM_USER },
    BuiltinRole { name: "VMPowerUser", privs: VM_USER.with(P::VmSnapshot).with(P::VmSnapshotRollback) },
    BuiltinRole { name: "TemplateUser", privs: PrivSet::from_slice(&[P::VmClone, P::VmAudit]) },
    BuiltinRole { name: "SysAdmin", privs: PrivSet::from_slice(&[P::SysConsole, P::SysSyslog, P::SysAudit]) },
    BuiltinRole {
        name: "DatastoreAdmin",
        privs: PrivSet::from_slice(&[
            P::DatastoreAllocate,
            P::DatastoreAllocateTemplate,
            P::DatastoreAllocateSpace,
            P::DatastoreAudit,
        ]),
    },
    BuiltinRole { name: "DatastoreUser", privs: DATASTORE_USER },
    BuiltinRole { name: "DatastorePowerUser", privs: DATASTORE_USER.with(P::DatastoreAllocateTemplate) },
    BuiltinRole { name: "SDNAdmin", privs: PrivSet::from_slice(&[P::SdnAllocate, P::SdnAudit, P::SdnUse]) },
    BuiltinRole { name: "SDNUser", privs: PrivSet::from_slice(&[P::SdnUse, P::SdnAudit]) },
    BuiltinRole {
        name: "UserAdmin",
        privs: PrivSet::from_slice(&[P::UserModify, P::GroupAllocate, P::RealmAllocateUser]),
    },
    BuiltinRole { name: "PoolAdmin", privs: PrivSet::from_slice(&[P::PoolAllocate, P::PoolAudit]) },
    BuiltinRole { name: "PoolUser", privs: PrivSet::from_slice(&[P::PoolAudit]) },
    BuiltinRole {
        name: "MappingAdmin",
        privs: PrivSet::from_slice(&[P::MappingModify, P::MappingUse, P::MappingAudit]),
    },
    BuiltinRole { name: "MappingUser", privs: PrivSet::from_slice(&[P::MappingUse, P::MappingAudit]) },
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
        if self.0.starts_with("PVE") {
            return reserved("names starting with 'PVE' are reserved");
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
        assert_eq!(BUILTIN_ROLES.len(), 19);
        assert_eq!(privs("Administrator"), PrivSet::ALL.to_string());
        assert_eq!(privs("NoAccess"), "");
        assert_eq!(
            privs("Auditor"),
            "Datastore.Audit,Mapping.Audit,Pool.Audit,SDN.Audit,Sys.Audit,VM.Audit,VM.GuestAgent.Audit"
        );
        assert_eq!(builtin("VMAdmin").unwrap().privs.len(), 23);
        assert!(builtin("VMAdmin").unwrap().privs.iter().all(|p| p.name().starts_with("VM.")));
        assert_eq!(
            privs("VMUser"),
            "VM.Audit,VM.Backup,VM.Config.CDROM,VM.Config.Cloudinit,VM.Console,VM.GuestAgent.Audit,\
             VM.GuestAgent.FileRead,VM.GuestAgent.FileSystemMgmt,VM.GuestAgent.FileWrite,VM.PowerMgmt"
        );
        assert_eq!(privs("TemplateUser"), "VM.Audit,VM.Clone");
        assert_eq!(privs("SysAdmin"), "Sys.Audit,Sys.Console,Sys.Syslog");
        assert_eq!(
            privs("DatastoreAdmin"),
            "Datastore.Allocate,Datastore.AllocateSpace,Datastore.AllocateTemplate,Datastore.Audit"
        );
        assert_eq!(privs("DatastoreUser"), "Datastore.AllocateSpace,Datastore.Audit");
        assert_eq!(privs("SDNAdmin"), "SDN.Allocate,SDN.Audit,SDN.Use");
        assert_eq!(privs("SDNUser"), "SDN.Audit,SDN.Use");
        assert_eq!(privs("UserAdmin"), "Group.Allocate,Realm.AllocateUser,User.Modify");
        assert_eq!(privs("PoolAdmin"), "Pool.Allocate,Pool.Audit");
        assert_eq!(privs("PoolUser"), "Pool.Audit");
        assert_eq!(privs("MappingAdmin"), "Mapping.Audit,Mapping.Modify,Mapping.Use");
        assert_eq!(privs("MappingUser"), "Mapping.Audit,Mapping.Use");
    }

    #[test]
    fn admin_is_everything_but_the_root_tier_and_mapping_modify() {
        let missing = PrivSet::ALL.difference(builtin("Admin").unwrap().privs);
        assert_eq!(
            missing.to_string(),
            "Mapping.Modify,Permissions.Modify,Realm.Allocate,Sys.AccessNetwork,Sys.Incoming,Sys.Modify,Sys.PowerMgmt"
        );
        // Every category admin role except Mapping's is inside Admin.
        for r in BUILTIN_ROLES.iter().filter(|r| !["Administrator", "MappingAdmin"].contains(&r.name)) {
            assert!(r.privs.is_subset(builtin("Admin").unwrap().privs), "{}", r.name);
        }
    }

    #[test]
    fn power_users_extend_their_user_roles() {
        let vm = builtin("VMPowerUser").unwrap().privs.difference(builtin("VMUser").unwrap().privs);
        assert_eq!(vm.to_string(), "VM.Snapshot,VM.Snapshot.Rollback");
        let ds = builtin("DatastorePowerUser").unwrap().privs.difference(builtin("DatastoreUser").unwrap().privs);
        assert_eq!(ds.to_string(), "Datastore.AllocateTemplate");
    }

    #[test]
    fn role_names() {
        assert!("VM_Power-only.1".parse::<RoleName>().is_ok());
        for bad in ["", "a b", "a/b", "a:b", "ä"] {
            assert!(bad.parse::<RoleName>().is_err(), "{bad:?}");
        }
        let custom = |s: &str| s.parse::<RoleName>().unwrap().check_custom().map_err(|e| e.to_string());
        assert_eq!(custom("Operators"), Ok(()));
        assert_eq!(
            custom("vmadmin"),
            Err("invalid role name 'vmadmin': the name of the built-in role 'VMAdmin' is reserved".into())
        );
        assert_eq!(
            custom("PVEVMAdmin"),
            Err("invalid role name 'PVEVMAdmin': names starting with 'PVE' are reserved".into())
        );
        assert!("NoAccess".parse::<RoleName>().unwrap().builtin().is_some());
    }
}
