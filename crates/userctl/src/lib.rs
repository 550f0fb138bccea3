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
    Subcommand::new("realm", cmd::realm::command, |m, _| group("realm", m, cmd::realm::run)),
    // pveum's old one-word commands.
    Subcommand::new("useradd", || alias(cmd::user::command, "add", "useradd"), |m, f| cmd::user::run("add", m, f)),
    Subcommand::new(
        "usermod",
        || alias(cmd::user::command, "modify", "usermod"),
        |m, f| cmd::user::run("modify", m, f),
    ),
    Subcommand::new(
        "userdel",
        || alias(cmd::user::command, "delete", "userdel"),
        |m, f| cmd::user::run("delete", m, f),
    ),
    Subcommand::new("groupadd", || alias(cmd::group::command, "add", "groupadd"), |m, f| cmd::group::run("add", m, f)),
    Subcommand::new(
        "groupmod",
        || alias(cmd::group::command, "modify", "groupmod"),
        |m, f| cmd::group::run("modify", m, f),
    ),
    Subcommand::new(
        "groupdel",
        || alias(cmd::group::command, "delete", "groupdel"),
        |m, f| cmd::group::run("delete", m, f),
    ),
    Subcommand::new("roleadd", || alias(cmd::role::command, "add", "roleadd"), |m, f| cmd::role::run("add", m, f)),
    Subcommand::new(
        "rolemod",
        || alias(cmd::role::command, "modify", "rolemod"),
        |m, f| cmd::role::run("modify", m, f),
    ),
    Subcommand::new(
        "roledel",
        || alias(cmd::role::command, "delete", "roledel"),
        |m, f| cmd::role::run("delete", m, f),
    ),
    Subcommand::new("aclmod", || alias(cmd::acl::command, "modify", "aclmod"), |m, f| cmd::acl::run("modify", m, f)),
    Subcommand::new("acldel", || alias(cmd::acl::command, "delete", "acldel"), |m, f| cmd::acl::run("delete", m, f)),
];

/// The command `action` of the group `group` under pveum's old one-word name (`aclmod` for
/// `acl modify`); hidden from the help, which shows the two-word forms.
fn alias(group: fn() -> Command, action: &str, name: &'static str) -> Command {
    let command = group().find_subcommand(action).cloned().expect("an alias names an action of its group");
    command.name(name).hide(true)
}

/// Runs the action of a group of subcommands (`userctl user add`): `run` gets the action's
/// name and its arguments.
pub(crate) fn group(
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
            "Manage who may do what on a Hearth node, the way pveum does on Proxmox VE, with its \
             command shapes and option spellings (`userctl user add joe@pve -group admins -password`, \
             `userctl acl modify / -group admin -role Administrator`, the old `aclmod`, `useradd`, …). \
             Users are NAME@REALM: the realms pam (host accounts) and pve (Hearth's password store) \
             are built in; openid, ldap and ad realms can be configured (`userctl realm add`), but \
             Hearth authenticates only pam and pve users. Roles are Proxmox's built-in ones under its \
             names (Administrator, NoAccess, PVEAdmin, PVEAuditor, PVEVMAdmin, PVEVMUser, …) and \
             custom ones; ACL entries grant a role to a user, @group or API token on a path such as \
             /, /vms/100, /storage/local, /pool/prod or /access/realm/pve. Everything lives in \
             $HEARTH_ROOT/etc/hearth/access.toml and domains.toml; token secrets, pve-realm \
             passwords, realm secrets and second factors are kept in etc/hearth/priv/ (hashed where \
             they can be) and shown only once.\n\n\
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
    fn parses_pveum_command_lines() {
        for ok in [
            &["userctl", "user", "add", "joe@pve", "--email", "joe@example.com", "--groups", "a,b"][..],
            &["userctl", "user", "modify", "joe@pve", "--groups", "c", "--append"],
            &["userctl", "user", "permissions", "joe@pve", "--path", "/vms", "--output-format", "json"],
            &["userctl", "group", "add", "ops", "--comment", "Operations"],
            &["userctl", "role", "add", "Power", "--privs", "VM.Audit,VM.PowerMgmt"],
            &["userctl", "acl", "modify", "/vms/100", "--roles", "PVEVMUser", "--users", "joe@pve", "--propagate", "0"],
            &["userctl", "acl", "modify", "/", "--roles", "PVEAuditor", "--groups", "ops", "--delete"],
            &["userctl", "pool", "add", "prod", "--vms", "100,101", "--storage", "local"],
            &["userctl", "token", "add", "joe@pve", "ci", "--privsep", "0", "--expire", "0"],
            &["userctl", "token", "list", "joe@pve"],
            &["userctl", "user", "add", "joe@pve", "--password"],
            &["userctl", "passwd", "joe@pve"],
            &["userctl", "tfa", "add", "joe@pve", "--type", "totp"],
            &["userctl", "tfa", "list"],
            &["userctl", "tfa", "delete", "joe@pve", "recovery"],
            &["userctl", "user", "token", "add", "joe@pve", "monitoring", "--privsep", "1"],
            &["userctl", "user", "token", "permissions", "joe@pve", "monitoring"],
            &["userctl", "user", "tfa", "unlock", "joe@pve"],
            &["userctl", "user", "tfa", "delete", "joe@pve", "--id", "totp-1"],
            &["userctl", "user", "tfa", "delete", "joe@pve"],
            &["userctl", "aclmod", "/", "--roles", "PVEAuditor", "--users", "joe@pve"],
            &["userctl", "acldel", "/", "--roles", "PVEAuditor", "--users", "joe@pve"],
            &["userctl", "acl", "delete", "/", "--roles", "PVEAuditor", "--token", "joe@pve!ci"],
            &["userctl", "useradd", "ann@pve", "--comment", "x"],
            &["userctl", "role", "add", "VM_Power-only", "--privs", "VM.PowerMgmt VM.Console"],
            &[
                "userctl",
                "realm",
                "add",
                "myrealm1",
                "--type",
                "openid",
                "--issuer-url",
                "https://a.example",
                "--client-id",
                "X",
            ],
            &["userctl", "realm", "modify", "corp", "--delete", "client-key", "--default", "1"],
            &["userctl", "realm", "sync", "corp", "--scope", "both", "--dry-run"],
        ] {
            command().try_get_matches_from(ok).unwrap();
        }
        for bad in [
            &["userctl", "user", "add"][..],
            &["userctl", "role", "add", "X"],
            &["userctl", "acl", "modify", "/", "--users", "joe@pve"],
            &["userctl", "acl", "modify", "/", "--roles", "A", "--propagate", "2"],
            &["userctl", "pool", "add", "p", "--vms", "42"],
            &["userctl", "token", "add", "joe@pve"],
            &["userctl", "passwd"],
            &["userctl", "tfa", "add", "joe@pve"],
            &["userctl", "tfa", "add", "joe@pve", "--type", "yubico"],
            &["userctl", "user", "tfa", "delete", "joe@pve", "x", "--id", "y"],
            &["userctl", "realm", "add", "r1", "--type", "kerberos"],
            &["userctl", "realm", "add", "r1"],
            &["userctl", "aclmod", "/"],
        ] {
            assert_eq!(command().try_get_matches_from(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }
}
