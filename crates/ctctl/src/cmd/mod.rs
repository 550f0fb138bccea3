//! One module per `ctctl` subcommand, each with its `command()` and `run()`.

pub mod config;
pub mod create;
pub mod destroy;
pub mod list;
pub mod pending;
pub mod set;
pub mod unlock;
