//! One module per `vmctl` subcommand, each with its `command()` and `run()`.

pub mod config;
pub mod create;
pub mod destroy;
pub mod list;
pub mod nextid;
pub mod pending;
pub mod set;
pub mod unlock;
