//! `ctctl backup`: back a guest up into a vzdump-style archive, as vzdump does.

use clap::{ArgMatches, Command};
use hearth_client::cli::OutputFormat;
use hearth_core::GuestKind;

pub fn command() -> Command {
    hearth_client::backups::backup_command(GuestKind::Ct)
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    hearth_client::backups::run_backup(GuestKind::Ct, crate::BIN, matches, format)
}
