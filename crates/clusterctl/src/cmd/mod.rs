//! One module per `clusterctl` subcommand, each with its `command()` and `run()`.

pub mod task;
