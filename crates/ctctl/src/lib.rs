//! `ctctl`, Hearth's `pct`: creates, configures, lists and destroys system containers by asking
//! hearthd. The binary is a thin `main`; xtask and tests use [`command`] and [`run`] directly.

mod cmd;

use std::process::ExitCode;

use anyhow::bail;
use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};

/// The program name, for messages and the software string sent to hearthd.
const BIN: &str = "ctctl";

/// The whole command line of `ctctl`.
pub fn command() -> Command {
    Command::new(BIN)
        .version(env!("CARGO_PKG_VERSION"))
        .about("Manage Hearth system containers")
        .long_about(
            "Manage the system containers of a Hearth node, the way pct does on Proxmox VE.\n\n\
             ctctl is a thin client: it can run as any user and asks hearthd (through \
             $HEARTH_ROOT/run/hearth/hearthd.sock, default /run/hearth/hearthd.sock) to do the \
             work; hearthd checks the caller's permissions and validates every value. Long \
             operations run as tasks whose log ctctl prints while it waits. Containers share \
             their id space with virtual machines.\n\n\
             Exit status: 0 on success, 1 if the operation failed, 2 for a usage error.",
        )
        .subcommand_required(true)
        .arg_required_else_help(true)
        .arg(cli::output_format_arg())
        .arg(cli::token_arg())
        .subcommands([
            cmd::create::command(),
            cmd::set::command(),
            cmd::config::command(),
            cmd::pending::command(),
            cmd::list::command(),
            cmd::destroy::command(),
            cmd::unlock::command(),
        ])
}

/// Runs the subcommand that `matches` (from [`command`]) selected.
pub fn run(matches: &ArgMatches) -> anyhow::Result<()> {
    let Some((name, sub)) = matches.subcommand() else { bail!("no command given; see `ctctl --help`") };
    let format = OutputFormat::from_matches(sub);
    match name {
        "create" => cmd::create::run(sub, format),
        "set" => cmd::set::run(sub, format),
        "config" => cmd::config::run(sub, format),
        "pending" => cmd::pending::run(sub, format),
        "list" => cmd::list::run(sub, format),
        "destroy" => cmd::destroy::run(sub, format),
        "unlock" => cmd::unlock::run(sub, format),
        other => bail!("unknown command '{other}'"),
    }
}

/// `ctctl`'s `main`: parse, run, exit 0, 1 or 2.
pub fn main() -> ExitCode {
    cli::run_cli(BIN, command(), run)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;
    use hearth_core::GuestKind;

    #[test]
    fn command_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn parses_pct_style_command_lines() {
        let m = command()
            .try_get_matches_from([
                "ctctl",
                "create",
                "200",
                "--rootfs",
                "local:8",
                "--net0",
                "name=eth0,bridge=vmbr0",
                "--mp3",
                "local:4,mp=/srv",
            ])
            .unwrap();
        let (name, sub) = m.subcommand().unwrap();
        assert_eq!(name, "create");
        let options = cli::guest_config_options(GuestKind::Ct, sub);
        let keys: Vec<&str> = options.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["rootfs", "net0", "mp3"]);
        for bad in [
            &["ctctl", "config", "1000000000"][..],
            &["ctctl", "set", "200", "--scsi0", "x"],
            &["ctctl", "list", "--output-format", "yaml"],
        ] {
            assert_eq!(command().try_get_matches_from(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }
}
