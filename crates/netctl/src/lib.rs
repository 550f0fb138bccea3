//! `netctl`, Hearth's node network panel: bridges, bonds, VLAN interfaces and NICs as
//! Proxmox's network API and ifupdown2 describe them. Edits are staged; `netctl apply` changes
//! the kernel with rollback. The binary is a thin `main`; xtask and tests use [`command`] and
//! [`run`].

mod cmd;

use std::process::ExitCode;

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, Subcommand};

/// The program name, for messages and the software string sent to hearthd.
pub(crate) const BIN: &str = "netctl";

/// The subcommands, in the order of the help: how each is built and run.
const COMMANDS: &[Subcommand] = &[
    Subcommand::new("list", cmd::iface::list_command, cmd::iface::list),
    Subcommand::new("show", cmd::iface::show_command, cmd::iface::show),
    Subcommand::new("create", cmd::iface::create_command, cmd::iface::create),
    Subcommand::new("set", cmd::iface::set_command, cmd::iface::set),
    Subcommand::new("delete", cmd::iface::delete_command, cmd::iface::delete),
    Subcommand::new("pending", cmd::apply::pending_command, cmd::apply::pending),
    Subcommand::new("apply", cmd::apply::apply_command, cmd::apply::apply),
    Subcommand::new("confirm", cmd::apply::confirm_command, cmd::apply::confirm),
    Subcommand::new("revert", cmd::apply::revert_command, cmd::apply::revert),
    Subcommand::new("import", cmd::file::import_command, cmd::file::import),
    Subcommand::new("export", cmd::file::export_command, cmd::file::export),
    // Further subcommand groups plug in here, one line each, e.g.
    // Subcommand::new("sdn", cmd::sdn::command, cmd::sdn::run),
];

/// The whole command line of `netctl`.
pub fn command() -> Command {
    cli::tool_command(BIN, COMMANDS)
        .version(env!("CARGO_PKG_VERSION"))
        .about("Manage the node's network: bridges, bonds, VLAN interfaces and NICs")
        .long_about(
            "Manage the node's network interfaces the way Proxmox VE's network panel does, with the \
             option names of its API (`netctl create vmbr1 --type bridge --bridge_ports eno2 --cidr \
             10.0.0.2/24`). Edits are staged in $HEARTH_ROOT/etc/hearth/network.new.toml (Proxmox's \
             /etc/network/interfaces.new); `netctl pending` shows what they would change in the \
             kernel and `netctl apply` makes them so, touching only what changed (an unchanged \
             bridge keeps its ports and guests stay plugged). An apply that fails half-way is rolled \
             back, and unless `netctl confirm` follows within --confirm-timeout seconds (default \
             60) the previous configuration is restored. `netctl import` reads a Proxmox \
             /etc/network/interfaces file, `netctl export` writes one.\n\n\
             netctl is a thin client that asks hearthd through $HEARTH_ROOT/run/hearth/hearthd.sock \
             (default /run/hearth/hearthd.sock). Reading needs Sys.Audit on /nodes/NODE, changes \
             Sys.Modify there.\n\n\
             Exit status: 0 on success, 1 if the operation failed, 2 for a usage error.",
        )
}

/// Runs the subcommand that `matches` (from [`command`]) selected.
pub fn run(matches: &ArgMatches) -> anyhow::Result<()> {
    cli::dispatch(COMMANDS, BIN, matches)
}

/// `netctl`'s `main`: parse, run, exit 0, 1 or 2.
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
    fn parses_proxmox_command_lines() {
        for ok in [
            &["netctl", "list"][..],
            &["netctl", "list", "--type", "bridge", "--output-format", "json"],
            &["netctl", "show", "vmbr0"],
            &["netctl", "create", "vmbr1", "--type", "bridge", "--bridge_ports", "eno2 eno3", "--cidr", "10.0.0.2/24"],
            &["netctl", "create", "vmbr1", "--type", "bridge", "--bridge_vlan_aware", "--bridge_vids", "2-100"],
            &["netctl", "create", "bond0", "--type", "bond", "--slaves", "eno1 eno2", "--bond_mode", "active-backup"],
            &["netctl", "create", "bond0", "--type", "bond", "--slaves", "eno1", "--bond-primary", "eno1"],
            &["netctl", "create", "v5", "--type", "vlan", "--vlan-raw-device", "eno1", "--vlan-id", "5"],
            &["netctl", "create", "eno1", "--type", "eth", "--mtu", "9000", "--autostart", "0"],
            &["netctl", "set", "vmbr1", "--comments", "lab", "--delete", "cidr,gateway"],
            &["netctl", "delete", "vmbr1"],
            &["netctl", "pending"],
            &["netctl", "apply", "--confirm-timeout", "0"],
            &["netctl", "confirm"],
            &["netctl", "revert"],
            &["netctl", "import", "-"],
            &["netctl", "export"],
        ] {
            command().try_get_matches_from(ok).unwrap();
        }
        for bad in [
            &["netctl", "create", "vmbr1"][..],
            &["netctl", "create", "vmbr1", "--type", "ovs"],
            &["netctl", "show"],
            &["netctl", "apply", "--confirm-timeout", "x"],
            &["netctl", "import"],
        ] {
            assert_eq!(command().try_get_matches_from(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }
}
