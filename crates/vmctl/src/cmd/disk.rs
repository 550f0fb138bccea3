//! `vmctl disk`: a VM's disks one at a time, as `qm disk` (import, move, resize, unlink).

pub mod import;
pub mod rescan;

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat, Subcommand};
use hearth_client::guest_subcommand;
use hearth_core::GuestKind;

/// The disk subcommands, in the order of the help.
pub(crate) const COMMANDS: &[Subcommand] = &[
    Subcommand::new("import", import::command, import::run),
    Subcommand::new("move", super::move_disk::disk_command, super::move_disk::run),
    guest_subcommand!(GuestKind::Vm, crate::BIN, resize),
    Subcommand::new("unlink", super::unlink::command, super::unlink::run),
    Subcommand::new("rescan", rescan::command, rescan::run),
];

pub fn command() -> Command {
    Command::new("disk")
        .about("Import, move, resize, unlink and rescan disks of a virtual machine")
        .long_about(
            "Work on one disk of a virtual machine at a time, as qm disk does. `disk move`, \
             `disk resize` and `disk unlink` are also available as `move-disk`, `resize` and \
             `unlink`.",
        )
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommands(cli::subcommands(COMMANDS))
}

pub fn run(matches: &ArgMatches, _format: OutputFormat) -> anyhow::Result<()> {
    cli::dispatch(COMMANDS, "vmctl disk", matches)
}
