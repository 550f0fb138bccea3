//! `userctl`, Hearth's `pveum`: users, groups, roles, ACL entries, pools, API tokens, passwords
//! and second factors. The
//! binary is a thin `main`; xtask and tests use [`command`] and [`run`].

mod cmd;

use std::process::ExitCode;

use anyhow::bail;
use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat, Subcommand};

/// The program name, for messages and the software string sent to hearthd.
const BIN: &str = "userctl";

/// The subcommands, in the order of the help: how each is built and run.
const COMMANDS: &[Subcommand] = &[
    Subcommand::new("user", cmd::user::command, |m, _| group("user", m, cmd::user::run)),
    Subcommand::new("group", cmd::group::command, |m, _| group("group", m, cmd::group::run)),
    Subcommand::new("role", cmd::role::command, |m, _| group("role", m, cmd::role::run)),
    Subcommand::new("acl", cmd::acl::command, |m, _| group("acl", m, cmd::acl::run)),
    Subcommand::new("pool", cmd::pool::command, |m, _| group("pool", m, cmd::pool::run)),
    Subcommand::new("token", cmd::token::command, |m, _| group("token", m, cmd::token::run)),
    Subcommand::new("passwd", cmd::passwd::command, cmd::passwd::run),
    Subcommand::new("tfa", cmd::tfa::command, |m, _| group("tfa", m, cmd::tfa::run)),
];

/// Runs the action of a group of subcommands (`userctl user add`): `run` gets the action's
/// name and its arguments.
fn group(
    name: &str,
    matches: &ArgMatches,
    run: fn(&str, &ArgMatches, OutputFormat) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let Some((action, args)) = matches.subcommand() else {
        bail!("no {name} command given; see `userctl {name} --help`")
    };
    run(action, args, OutputFormat::from_matches(args))
}

/// The whole command line of `userctl`.
pub fn command() -> Command {
    cli::tool_command(BIN, COMMANDS)
        .version(env!("CARGO_PKG_VERSION"))
        .about("Manage Hearth users, groups, roles, permissions, pools and API tokens")
        .long_about(
            "Manage who may do what on a Hearth node, the way pveum does on Proxmox VE. Users are \
             NAME@REALM with the realms pam (host accounts) and hearth; roles are the built-in ones \
             (Administrator, PVEVMAdmin, PVEAuditor, …, Proxmox's without the PVE prefix) and custom ones; \
             ACL entries grant a role to a user, @group or API token on a path such as /, /vms/100, \
             /storage/local or /pool/prod. Everything lives in $HEARTH_ROOT/etc/hearth/access.toml; \
             token secrets, hearth-realm passwords and second factors are kept in \
             etc/hearth/priv/ (hashed where they can be) and shown only once.\n\n\
             userctl is a thin client that asks hearthd through \
             $HEARTH_ROOT/run/hearth/hearthd.sock (default /run/hearth/hearthd.sock). Every change \
             is recorded in var/log/hearth/audit.log.\n\n\
             Exit status: 0 on success, 1 if the operation failed, 2 for a usage error.",
        )
}

/// Runs the subcommand that `matches` (from [`command`]) selected.
pub fn run(matches: &ArgMatches) -> anyhow::Result<()> {
    cli::dispatch(COMMANDS, BIN, matches)
}

/// `userctl`'s `main`: parse, run, exit 0, 1 or 2.
pub fn main() -> ExitCode {
    cli::run_cli(BIN, command(), run)
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
    fn parses_pveum_command_lines() {
        for ok in [
            &["userctl", "user", "add", "joe@hearth", "--email", "joe@example.com", "--groups", "a,b"][..],
            &["userctl", "user", "modify", "joe@hearth", "--groups", "c", "--append"],
            &["userctl", "user", "permissions", "joe@hearth", "--path", "/vms", "--output-format", "json"],
            &["userctl", "group", "add", "ops", "--comment", "Operations"],
            &["userctl", "role", "add", "Power", "--privs", "VM.Audit,VM.PowerMgmt"],
            &["userctl", "acl", "modify", "/vms/100", "--roles", "PVEVMUser", "--users", "joe@hearth", "--propagate", "0"],
            &["userctl", "acl", "modify", "/", "--roles", "PVEAuditor", "--groups", "ops", "--delete"],
            &["userctl", "pool", "add", "prod", "--vms", "100,101", "--storage", "local"],
            &["userctl", "token", "add", "joe@hearth", "ci", "--privsep", "0", "--expire", "0"],
            &["userctl", "token", "list", "joe@hearth"],
            &["userctl", "user", "add", "joe@hearth", "--password"],
            &["userctl", "passwd", "joe@hearth"],
            &["userctl", "tfa", "add", "joe@hearth", "--type", "totp"],
            &["userctl", "tfa", "list"],
            &["userctl", "tfa", "delete", "joe@hearth", "recovery"],
        ] {
            command().try_get_matches_from(ok).unwrap();
        }
        for bad in [
            &["userctl", "user", "add"][..],
            &["userctl", "role", "add", "X"],
            &["userctl", "acl", "modify", "/", "--users", "joe@hearth"],
            &["userctl", "acl", "modify", "/", "--roles", "A", "--propagate", "2"],
            &["userctl", "pool", "add", "p", "--vms", "42"],
            &["userctl", "token", "add", "joe@hearth"],
            &["userctl", "passwd"],
            &["userctl", "tfa", "add", "joe@hearth"],
            &["userctl", "tfa", "add", "joe@hearth", "--type", "yubico"],
        ] {
            assert_eq!(command().try_get_matches_from(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }
}
