//! The only home of Hearth's raw syscalls and ioctls. Each module wraps one kernel interface
//! in a small safe API; every `unsafe` block names the invariants it relies on.
//!
//! **Architecture invariant:** no other crate in the workspace uses `unsafe` for system calls
//! (hearth-vmm's guest memory aside); they call these wrappers.

pub mod bpf;
pub mod btrfs;
pub mod fdpass;
pub mod process;
pub mod running;
pub mod seccomp;
pub mod time;
pub mod tty;
pub mod writeback;
