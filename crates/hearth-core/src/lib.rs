//! Hearth's models and rules: guest configurations and their TOML form, property strings,
//! VMIDs and task ids.
//!
//! **Architecture invariant:** this crate does no I/O. It validates, parses, prints and plans;
//! hearthd and the engines execute. Anything that needs the clock or randomness takes it as an
//! argument.

pub mod access;
pub mod base64;
pub mod calendar;
pub mod cloudinit;
pub mod ct;
pub mod guest;
pub mod hex;
pub mod hotplug;
pub mod network;
pub mod ovf;
pub mod propstr;
pub mod prune;
pub mod runtime;
pub mod schema;
pub mod size;
pub mod storage;
pub mod time;
pub mod upid;
pub mod vm;
pub mod vmid;

pub use guest::{GuestConfig, GuestKind, Lock};
pub use schema::{ConfigError, Value};
pub use upid::Upid;
pub use vmid::Vmid;
