//! Hearth's QEMU engine: the `qemu-system-x86_64` command line for a VM configuration
//! ([`cmdline`]) and a small client for the QEMU Machine Protocol ([`qmp`]).
//!
//! **Architecture invariant:** this crate does no storage I/O and reads no configuration files.
//! The caller (hearthd) resolves volume ids to paths through the storage backends, picks tap
//! names and the run directory, and passes them in a [`Resolved`]; building the command line is
//! a pure function of that and the configuration, so it is unit-tested with snapshots. Only the
//! QMP client touches a socket.

pub mod cmdline;
pub mod qmp;

#[cfg(test)]
mod live_tests;

pub use cmdline::{CmdlineError, QemuCommand, Resolved, ResolvedDrive, RunPaths, build, tap_name};
pub use qmp::{Qmp, QmpError, QmpEvent};
