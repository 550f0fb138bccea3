//! Hearth's system-container runtime: everything between a container's configuration and its
//! init running as PID 1 of its own namespaces, and the monitor that stays its parent.
//!
//! [`runtime`] turns a container configuration and the volumes hearthd resolved into a
//! [`ContainerSpec`] (plain data, no paths resolved against user input after that point),
//! behind hearth-core's guest runtime trait, and hands it to `hearth-ctmon`, a small
//! single-threaded program: no thread exists when it clones the container, so every namespace
//! operation is allowed and nothing is held by another thread across the clone. The order of
//! the set-up steps follows LXC's `lxc_setup`.
//!
//! **Invariants.**
//! - Unprivileged unless the spec says otherwise: container ids 0..65536 are host ids
//!   100000..165536; the host's root is not mapped.
//! - Mount targets inside the rootfs are resolved with `openat2(RESOLVE_IN_ROOT)` and mounted
//!   onto the descriptor, so a symlink planted in the rootfs cannot redirect a mount.
//! - Every host descriptor is closed before the container's init (or an exec'd command) runs;
//!   the runtime is not dumpable while it is inside the container's namespaces.
//! - A terminal of the caller is never handed into a container: exec gets a fresh pty.
//! - A privileged container (no user namespace) cannot change its mount tree once its init
//!   runs, beyond propagation: the seccomp profile of [`seccomp`] keeps `/proc/sys` and sysfs
//!   read-only. No container opens a device outside the one list of [`devices`] and the
//!   `devN` nodes root@pam configured for it, on cgroup v1 and v2 alike.

pub mod spec;

pub use runtime::{CtLaunch, CtRuntime};
pub use spec::{ContainerSpec, IdMap, IdMapEntry, Limits, NetSpec, RootFs};
pub mod attach;
pub mod caps;
pub mod cgroup;
pub mod console;
pub mod devices;
pub mod monitor;
pub mod net;
pub mod rootfs;
pub mod runtime;
pub mod seccomp;
pub mod setup;
pub mod template;

#[cfg(test)]
mod host_needs;
