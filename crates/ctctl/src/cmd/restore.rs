//! `ctctl restore`: restore a guest from a backup archive, as qmrestore and pct restore do.

use clap::{ArgMatches, Command};
use hearth_client::cli::OutputFormat;
use hearth_core::GuestKind;

pub fn command() -> Command {
    hearth_client::backups::restore_command(GuestKind::Ct)
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    hearth_client::backups::run_restore(GuestKind::Ct, crate::BIN, matches, format)
}
