//! Hearth's QEMU engine: the `qemu-system-x86_64` command line for a VM configuration
//! ([`cmdline`]), a small client for the QEMU Machine Protocol ([`qmp`]), and the runtime that
//! starts, watches and stops QEMU behind hearth-core's guest runtime trait ([`runtime`]).
//!
//! **Architecture invariant:** this crate does no storage I/O and reads no configuration files.
//! The caller (hearthd) loads the configuration and resolves volume ids to paths through the
//! storage backends, and passes them in as [`hearth_core::runtime::Resources`]; the runtime
//! picks tap names, the run directory and the EFI variable store itself. Building the command
//! line is a pure function of a [`Resolved`] and the configuration, so it is unit-tested with
//! snapshots.

pub mod cmdline;
pub mod qmp;
pub mod runtime;

#[cfg(test)]
mod live_tests;

pub use cmdline::{CmdlineError, QemuCommand, Resolved, ResolvedDrive, RunPaths, build, ovmf_vars_template, tap_name};
pub use qmp::{Qmp, QmpError, QmpEvent};
pub use runtime::{QemuLaunch, QemuRuntime};
