//! `vmctl`, Hearth's `qm`: creates, configures, lists and destroys virtual machines by asking
//! hearthd. The binary is a thin `main`; xtask and tests use [`command`] and [`run`] directly.

mod cmd;

use std::process::ExitCode;

use anyhow::bail;
use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};

/// The program name, for messages and the software string sent to hearthd.
const BIN: &str = "vmctl";

/// The whole command line of `vmctl`.
pub fn command() -> Command {
    Command::new(BIN)
        .version(env!("CARGO_PKG_VERSION"))
        .about("Manage Hearth virtual machines")
        .long_about(
            "Manage the virtual machines of a Hearth node, the way qm does on Proxmox VE.\n\n\
             vmctl is a thin client: it can run as any user and asks hearthd (through \
             $HEARTH_ROOT/run/hearth/hearthd.sock, default /run/hearth/hearthd.sock) to do the \
             work; hearthd checks the caller's permissions and validates every value. Long \
             operations run as tasks whose log vmctl prints while it waits.\n\n\
             Exit status: 0 on success, 1 if the operation failed, 2 for a usage error.",
        )
        .subcommand_required(true)
        .arg_required_else_help(true)
        .arg(cli::output_format_arg())
        .subcommands([
            cmd::create::command(),
            cmd::set::command(),
            cmd::config::command(),
            cmd::pending::command(),
            cmd::list::command(),
            cmd::destroy::command(),
            cmd::nextid::command(),
            cmd::unlock::command(),
        ])
}

/// Runs the subcommand that `matches` (from [`command`]) selected.
pub fn run(matches: &ArgMatches) -> anyhow::Result<()> {
    let Some((name, sub)) = matches.subcommand() else { bail!("no command given; see `vmctl --help`") };
    let format = OutputFormat::from_matches(sub);
    match name {
        "create" => cmd::create::run(sub, format),
        "set" => cmd::set::run(sub, format),
        "config" => cmd::config::run(sub, format),
        "pending" => cmd::pending::run(sub, format),
        "list" => cmd::list::run(sub, format),
        "destroy" => cmd::destroy::run(sub, format),
        "nextid" => cmd::nextid::run(sub, format),
        "unlock" => cmd::unlock::run(sub, format),
        other => bail!("unknown command '{other}'"),
    }
}

/// `vmctl`'s `main`: parse, run, exit 0, 1 or 2.
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
    }

    #[test]
    fn parses_qm_style_command_lines() {
        let m = command()
            .try_get_matches_from([
                "vmctl",
                "set",
                "100",
                "--memory",
                "2048",
                "--delete",
                "tags,onboot",
                "--output-format",
                "json",
            ])
            .unwrap();
        let (name, sub) = m.subcommand().unwrap();
        assert_eq!(name, "set");
        assert_eq!(OutputFormat::from_matches(sub), OutputFormat::Json);
        assert_eq!(cli::required_vmid(sub, "vmid").unwrap().get(), 100);
        assert_eq!(cli::key_list(sub, "delete"), ["tags", "onboot"]);
        // The format is global: it may come before the subcommand too.
        let m = command().try_get_matches_from(["vmctl", "--output-format", "json-pretty", "list"]).unwrap();
        assert_eq!(OutputFormat::from_matches(m.subcommand().unwrap().1), OutputFormat::JsonPretty);
        for bad in [&["vmctl", "config", "99"][..], &["vmctl", "create", "100", "--memroy", "1"], &["vmctl"]] {
            assert_eq!(command().try_get_matches_from(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
        assert_eq!(command().try_get_matches_from(["vmctl", "--version"]).unwrap_err().exit_code(), 0);
    }
}
