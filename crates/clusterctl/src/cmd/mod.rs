//! One module per `clusterctl` subcommand, each with its `command()` and `run()`.

pub mod node;
pub mod task;
