//! `storectl`, Hearth's `pvesm`: storages (add, set, remove, status, config) and their volumes
//! (list, alloc, free, path, import, export, upload). The binary is a thin `main`; xtask and
//! tests use [`command`] and [`run`].

mod cmd;
mod transfer;

use std::process::ExitCode;

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, Subcommand};

/// The program name, for messages and the software string sent to hearthd.
const BIN: &str = "storectl";

/// The subcommands, in the order of the help: how each is built and run.
const COMMANDS: &[Subcommand] = &[
    Subcommand::new("add", cmd::add::command, cmd::add::run),
    Subcommand::new("set", cmd::set::command, cmd::set::run),
    Subcommand::new("remove", cmd::remove::command, cmd::remove::run),
    Subcommand::new("config", cmd::config::command, cmd::config::run),
    Subcommand::new("status", cmd::status::command, cmd::status::run),
    Subcommand::new("list", cmd::list::command, cmd::list::run),
    Subcommand::new("alloc", cmd::alloc::command, cmd::alloc::run),
    Subcommand::new("free", cmd::free::command, cmd::free::run),
    Subcommand::new("path", cmd::path::command, cmd::path::run),
    Subcommand::new("import", cmd::import::command, cmd::import::run),
    Subcommand::new("export", cmd::export::command, cmd::export::run),
    Subcommand::new("upload", cmd::upload::command, cmd::upload::run),
    Subcommand::new("backup", cmd::backup::command, cmd::backup::run),
    Subcommand::new("scan", cmd::scan::command, cmd::scan::run),
    Subcommand::new("extractconfig", cmd::extractconfig::command, cmd::extractconfig::run),
    Subcommand::new("vzdump", cmd::vzdump::command, cmd::vzdump::run),
];

/// The whole command line of `storectl`.
pub fn command() -> Command {
    cli::tool_command(BIN, COMMANDS)
        .version(env!("CARGO_PKG_VERSION"))
        .about("Manage Hearth storages and volumes")
        .long_about(
            "Manage the storages of a Hearth node and the volumes on them, the way pvesm does on \
             Proxmox VE. Storages are defined in $HEARTH_ROOT/etc/hearth/storage.toml; a fresh node \
             has 'local', a dir storage at /var/lib/hearth. Volume ids are STORAGE:VOLNAME exactly \
             as Proxmox writes them: local:100/vm-100-disk-0.qcow2, local:iso/debian-12.iso, \
             local:vztmpl/alpine-3.20-default_20240908_amd64.tar.xz, and on btrfs \
             store:vm-100-disk-0.\n\n\
             storectl is a thin client that asks hearthd through \
             $HEARTH_ROOT/run/hearth/hearthd.sock (default /run/hearth/hearthd.sock).\n\n\
             Exit status: 0 on success, 1 if the operation failed, 2 for a usage error.",
        )
}

/// Runs the subcommand that `matches` (from [`command`]) selected.
pub fn run(matches: &ArgMatches) -> anyhow::Result<()> {
    cli::dispatch(COMMANDS, BIN, matches)
}

/// `storectl`'s `main`: parse, run, exit 0, 1 or 2.
pub fn main() -> ExitCode {
    cli::run_cli(BIN, command, run)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;

    #[test]
    fn command_is_consistent() {
        command().debug_assert();
        cli::check_table(COMMANDS);
    }

    #[test]
    fn parses_pvesm_command_lines() {
        for ok in [
            &["storectl", "add", "dir", "backup1", "--path", "/mnt/b", "--content", "backup"][..],
            &["storectl", "set", "local", "--disable", "1", "--delete", "nodes"],
            &["storectl", "alloc", "local", "100", "", "4G", "--format", "qcow2"],
            &["storectl", "list", "local", "--content", "images", "--vmid", "100", "--output-format", "json"],
            &["storectl", "import", "local:100/vm-100-disk-0.raw", "raw+size", "-"],
            &["storectl", "upload", "local", "/tmp/x.iso", "--content", "iso"],
        ] {
            command().try_get_matches_from(ok).unwrap();
        }
        for bad in [
            &["storectl", "alloc", "local", "99", "", "4G"][..],
            &["storectl", "add", "dir"],
            &["storectl", "list"],
            &["storectl", "upload", "local", "/tmp/x.iso"],
        ] {
            assert_eq!(command().try_get_matches_from(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }
}
