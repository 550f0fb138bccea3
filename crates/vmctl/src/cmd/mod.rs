//! One module per `vmctl` subcommand of its own, each with its `command()` and `run()`; the
//! subcommands ctctl has too live in `hearth_client::guest`.

pub mod cleanup;
pub mod cloudinit;
pub mod create;
pub mod disk;
pub mod guest;
pub mod importovf;
pub mod monitor;
pub mod move_disk;
pub mod nextid;
pub mod reset;
pub mod resume;
pub mod sendkey;
pub mod showcmd;
pub mod suspend;
pub mod terminal;
pub mod unlink;
pub mod wait;
