//! `fwctl`, Hearth's `pve-firewall` and firewall API: rules, options, IP sets and aliases of the
//! cluster, this host and each guest, security groups, import and export of Proxmox `.fw`
//! files, the compiled nftables ruleset, a simulator and a confirm-or-roll-back apply. The
//! binary is a thin `main`; xtask and tests use [`command`] and [`run`].

mod cmd;

use std::process::ExitCode;

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, Subcommand};

/// The program name, for messages and the software string sent to hearthd.
const BIN: &str = "fwctl";

const COMMANDS: &[Subcommand] = &[
    Subcommand::new("cluster", cmd::scope::cluster, cmd::scope::run_cluster),
    Subcommand::new("host", cmd::scope::host, cmd::scope::run_host),
    Subcommand::new("vm", cmd::scope::vm, cmd::scope::run_guest),
    Subcommand::new("ct", cmd::scope::ct, cmd::scope::run_guest),
    Subcommand::new("group", cmd::group::command, cmd::group::run),
    Subcommand::new("import", cmd::file::import_command, cmd::file::import),
    Subcommand::new("export", cmd::file::export_command, cmd::file::export),
    Subcommand::new("compile", cmd::state::compile_command, cmd::state::compile),
    Subcommand::new("status", cmd::state::status_command, cmd::state::status),
    Subcommand::new("start", cmd::state::start_command, cmd::state::start),
    Subcommand::new("stop", cmd::state::stop_command, cmd::state::stop),
    Subcommand::new("simulate", cmd::simulate::command, cmd::simulate::run),
    Subcommand::new("log", cmd::state::log_command, cmd::state::log),
    Subcommand::new("apply", cmd::state::apply_command, cmd::state::apply),
    Subcommand::new("confirm", cmd::state::confirm_command, cmd::state::confirm),
];

/// The whole command line of `fwctl`.
pub fn command() -> Command {
    cli::tool_command(BIN, COMMANDS).version(env!("CARGO_PKG_VERSION")).about("Manage the Hearth firewall").long_about(
        "Manage the Hearth firewall the way pve-firewall and Proxmox VE's firewall API do: \
             rules, options, IP sets and aliases of the cluster (`fwctl cluster …`), this host \
             (`fwctl host …`) and each guest (`fwctl vm 100 …`, `fwctl ct 200 …`), security groups \
             (`fwctl group …`), Proxmox's macros (SSH, HTTP, DNS, …). Configuration lives in \
             $HEARTH_ROOT/etc/hearth/firewall/ as TOML; `fwctl import` reads Proxmox's cluster.fw, \
             host.fw and <vmid>.fw, `fwctl export` writes them.\n\n\
             hearthd compiles everything, with the NICs that have firewall=1, into one nftables \
             ruleset and applies it in a single transaction whenever something changes; a change \
             the compiler or nft refuses changes nothing. Host and cluster changes that would drop \
             SSH (22) or the API (8006) are refused unless --force; `fwctl apply --confirm-timeout S` \
             rolls back unless `fwctl confirm` follows within S seconds.\n\n\
             Exit status: 0 on success, 1 if the operation failed, 2 for a usage error.",
    )
}

/// Runs the subcommand that `matches` (from [`command`]) selected.
pub fn run(matches: &ArgMatches) -> anyhow::Result<()> {
    cli::dispatch(COMMANDS, BIN, matches)
}

/// `fwctl`'s `main`: parse, run, exit 0, 1 or 2.
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
    fn parses_firewall_command_lines() {
        for ok in [
            &["fwctl", "cluster", "rules", "list"][..],
            &[
                "fwctl", "vm", "100", "rules", "add", "--type", "in", "--action", "ACCEPT", "--macro", "SSH",
                "--source", "+mgmt",
            ],
            &["fwctl", "ct", "200", "rules", "set", "0", "--dport", "80", "--moveto", "1"],
            &["fwctl", "host", "rules", "delete", "2", "--force"],
            &["fwctl", "vm", "100", "rules", "move", "0", "3"],
            &["fwctl", "cluster", "options", "set", "--enable", "1", "--policy_in", "DROP"],
            &["fwctl", "vm", "100", "options", "get"],
            &["fwctl", "cluster", "ipset", "add", "mgmt", "10.0.0.0/24", "--nomatch"],
            &["fwctl", "vm", "100", "alias", "set", "web", "10.0.0.5"],
            &["fwctl", "group", "create", "webserver"],
            &[
                "fwctl",
                "group",
                "rules",
                "webserver",
                "add",
                "--type",
                "in",
                "--action",
                "ACCEPT",
                "--proto",
                "tcp",
                "--dport",
                "80",
            ],
            &["fwctl", "import", "cluster.fw"],
            &["fwctl", "export", "--vm", "100"],
            &[
                "fwctl", "simulate", "--from", "outside", "--to", "vm100", "--source", "10.0.0.1", "--dest",
                "10.0.0.2", "--proto", "tcp", "--dport", "22",
            ],
            &["fwctl", "apply", "--confirm-timeout", "60"],
            &["fwctl", "log", "--since", "1700000000"],
        ] {
            command().try_get_matches_from(ok).unwrap();
        }
        for bad in [
            &["fwctl", "vm", "rules", "list"][..],
            &["fwctl", "cluster", "rules", "add", "--type", "sideways", "--action", "ACCEPT"],
            &["fwctl", "apply"],
            &["fwctl", "simulate", "--from", "outside"],
        ] {
            assert_eq!(command().try_get_matches_from(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }
}
