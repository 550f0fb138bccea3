//! Capabilities of a container's init and of processes exec'd into it (containers.md 2.3
//! step 22).
//!
//! LXC's stock system-container configuration (`common.conf`) drops `mac_admin`,
//! `mac_override`, `sys_time`, `sys_module` and `sys_rawio`; for user-namespace containers
//! `userns.conf` clears that list, because capabilities inside a user namespace only act on
//! objects that namespace owns, and these five only act on the host (module loading, the
//! clock, raw I/O ports, LSM policy are all checked against the initial user namespace).
//!
//! Hearth drops the five for both kinds: for a privileged container they are what stands
//! between container root and the host kernel; for an unprivileged one dropping them is
//! harmless and is defence in depth should a kernel bug ever check them against the wrong
//! namespace. They go from the bounding set (so no later exec, set-uid or file capability can
//! bring them back) and from the permitted, effective and inheritable sets; the ambient set is
//! cleared. Everything else stays: a system container's root needs the rest (mount, net admin,
//! chown, setuid, ...), scoped to its namespaces.
//!
//! Capabilities are per thread: call [`drop_for_container`] in the thread (the process) that
//! goes on to exec the container's init or command.

use caps::{CapSet, Capability, CapsHashSet};

/// LXC's `lxc.cap.drop` of `common.conf`.
pub const DROPPED: [Capability; 5] = [
    Capability::CAP_MAC_ADMIN,
    Capability::CAP_MAC_OVERRIDE,
    Capability::CAP_SYS_TIME,
    Capability::CAP_SYS_MODULE,
    Capability::CAP_SYS_RAWIO,
];

/// Errors changing the capability sets.
#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    #[error("dropping {cap} from the {set} set of a {kind} container: {source}")]
    Drop { cap: String, set: &'static str, kind: &'static str, source: caps::errors::CapsError },
    #[error("setting the {set} capability set of a {kind} container: {source}")]
    Set { set: &'static str, kind: &'static str, source: caps::errors::CapsError },
}

/// Every capability the running kernel knows, less [`DROPPED`]: what a container's init has
/// in its bounding and effective sets once [`drop_for_container`] ran (starting from full
/// sets, as root of its user namespace or host root does).
pub fn default_set() -> CapsHashSet {
    let mut set = caps::runtime::thread_all_supported();
    for cap in DROPPED {
        set.remove(&cap);
    }
    set
}

/// Drops [`DROPPED`] from the calling thread's bounding set first (that needs `CAP_SETPCAP`,
/// still effective then), clears the ambient set, then removes them from the inheritable,
/// effective and permitted sets, in that order (effective must stay a subset of permitted).
/// `privileged` only labels errors: both kinds drop the same list (see the module docs).
pub fn drop_for_container(privileged: bool) -> Result<(), CapsError> {
    let kind = if privileged { "privileged" } else { "unprivileged" };
    let supported = caps::runtime::thread_all_supported();
    for cap in DROPPED.into_iter().filter(|c| supported.contains(c)) {
        caps::drop(None, CapSet::Bounding, cap).map_err(|source| CapsError::Drop {
            cap: cap.to_string(),
            set: "bounding",
            kind,
            source,
        })?;
    }
    caps::clear(None, CapSet::Ambient).map_err(|source| CapsError::Set { set: "ambient", kind, source })?;
    for (set, name) in
        [(CapSet::Inheritable, "inheritable"), (CapSet::Effective, "effective"), (CapSet::Permitted, "permitted")]
    {
        let mut current = caps::read(None, set).map_err(|source| CapsError::Set { set: name, kind, source })?;
        let before = current.len();
        for cap in DROPPED {
            current.remove(&cap);
        }
        if current.len() != before {
            caps::set(None, set, &current).map_err(|source| CapsError::Set { set: name, kind, source })?;
        }
    }
    Ok(())
}

/// The capabilities in a hexadecimal mask as `/proc/<pid>/status` shows them (`CapEff:
/// 000001ffffffffff`); bits the `caps` crate does not know are ignored, and text that is not
/// hexadecimal gives the empty set.
pub fn parse_cap_mask(hex: &str) -> CapsHashSet {
    let Ok(mask) = u64::from_str_radix(hex.trim(), 16) else {
        return CapsHashSet::new();
    };
    caps::all().into_iter().filter(|c| mask & c.bitmask() != 0).collect()
}

/// The set in field `field` (`CapBnd`, `CapEff`, `CapPrm`, `CapInh`, `CapAmb`) of a
/// `/proc/<pid>/status` text.
pub fn status_set(status: &str, field: &str) -> Option<CapsHashSet> {
    status.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name == field).then(|| parse_cap_mask(value))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(parse_cap_mask("0000000000000000"), CapsHashSet::new());
        assert_eq!(parse_cap_mask("zz"), CapsHashSet::new());
        let set = parse_cap_mask("0000000000200001"); // bits 0 and 21
        assert_eq!(set, [Capability::CAP_CHOWN, Capability::CAP_SYS_ADMIN].into_iter().collect());
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapBnd:\t000001ffffffffff\n";
        assert_eq!(status_set(status, "CapBnd").unwrap().len(), 41);
        assert!(status_set(status, "CapInh").unwrap().is_empty());
        assert_eq!(status_set(status, "CapAmb"), None);
        let defaults = default_set();
        assert!(defaults.contains(&Capability::CAP_SYS_ADMIN) && defaults.contains(&Capability::CAP_NET_ADMIN));
        assert!(DROPPED.iter().all(|c| !defaults.contains(c)));
    }

    /// In a thread of its own: capability sets are per thread.
    #[test]
    fn drop_in_a_thread() {
        crate::host_needs::root("dropping capabilities needs CAP_SETPCAP");
        assert!(
            caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP).unwrap(),
            "needs CAP_SETPCAP: run `cargo xtask test` as root with a full capability set"
        );
        let full_bounding = caps::read(None, CapSet::Bounding).unwrap() == caps::runtime::thread_all_supported();
        std::thread::spawn(move || {
            caps::raise(None, CapSet::Inheritable, Capability::CAP_SYS_TIME).unwrap();
            drop_for_container(false).unwrap();
            for cap in DROPPED {
                for set in [CapSet::Bounding, CapSet::Effective, CapSet::Permitted, CapSet::Inheritable] {
                    assert!(!caps::has_cap(None, set, cap).unwrap(), "{cap} still in {set:?}");
                }
            }
            for cap in [Capability::CAP_SYS_ADMIN, Capability::CAP_NET_ADMIN, Capability::CAP_CHOWN] {
                assert!(caps::has_cap(None, CapSet::Bounding, cap).unwrap(), "{cap}");
                assert!(caps::has_cap(None, CapSet::Effective, cap).unwrap(), "{cap}");
            }
            assert!(caps::read(None, CapSet::Ambient).unwrap().is_empty());
            let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            if full_bounding {
                assert_eq!(status_set(&status, "CapBnd").unwrap(), default_set());
                assert_eq!(status_set(&status, "CapEff").unwrap(), default_set());
            }
            // Twice is fine (a restart of exec in the same thread).
            drop_for_container(true).unwrap();
        })
        .join()
        .unwrap();
        // The test's own thread kept everything.
        assert!(caps::has_cap(None, CapSet::Bounding, Capability::CAP_SYS_MODULE).unwrap() || !full_bounding);
    }
}
