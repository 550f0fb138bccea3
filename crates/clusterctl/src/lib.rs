//! `clusterctl`, Hearth's `pvenode`/`pvecm` side: the node's worker tasks (list, log,
//! status, stop) and its guests as a whole (node startall, stopall). The binary is a thin `main`;
//! xtask and tests use [`command`] and [`run`].

mod cmd;

use std::process::ExitCode;

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, Subcommand};

/// The program name, for messages and the software string sent to hearthd.
const BIN: &str = "clusterctl";

/// The subcommands, in the order of the help: how each is built and run.
const COMMANDS: &[Subcommand] = &[
    Subcommand::new("task", cmd::task::command, cmd::task::run),
    Subcommand::new("node", cmd::node::command, cmd::node::run),
];

/// The whole command line of `clusterctl`.
pub fn command() -> Command {
    cli::tool_command(BIN, COMMANDS)
        .version(env!("CARGO_PKG_VERSION"))
        .about("Manage the Hearth node and cluster")
        .long_about(
            "Manage the Hearth node and cluster, the way pvenode and pvecm do on Proxmox VE. \
             It shows and stops worker tasks — the long operations (create, destroy, start, \
             backup, ...) that hearthd runs in the background, each with a UPID, a log and a \
             final status — and starts or stops all guests of the node.\n\n\
             clusterctl is a thin client that asks hearthd through \
             $HEARTH_ROOT/run/hearth/hearthd.sock (default /run/hearth/hearthd.sock).\n\n\
             Exit status: 0 on success, 1 if the operation failed, 2 for a usage error.",
        )
}

/// Runs the subcommand that `matches` (from [`command`]) selected.
pub fn run(matches: &ArgMatches) -> anyhow::Result<()> {
    cli::dispatch(COMMANDS, BIN, matches)
}

/// `clusterctl`'s `main`: parse, run, exit 0, 1 or 2.
pub fn main() -> ExitCode {
    cli::run_cli(BIN, command, run)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;
    use hearth_client::cli::OutputFormat;

    #[test]
    fn command_is_consistent() {
        command().debug_assert();
        cli::check_table(COMMANDS);
        cli::check_table(cmd::task::COMMANDS);
        cli::check_table(cmd::node::COMMANDS);
    }

    #[test]
    fn parses_pvenode_examples() {
        let leaf = |args: &[&str]| {
            let argv = cli::normalize_args(&command(), args.iter().copied()).unwrap();
            let m = command().try_get_matches_from(argv).unwrap();
            let mut sub = m.subcommand().unwrap().1.clone();
            while let Some((_, inner)) = sub.subcommand() {
                sub = inner.clone();
            }
            sub
        };
        let m = leaf(&["clusterctl", "node", "task", "list", "--errors", "--vmid", "100"]);
        assert_eq!(cli::get_vmid(&m, "vmid").unwrap().get(), 100);
        let m = leaf(&["clusterctl", "node", "startall", "--vms", "100,101,102", "--force"]);
        let vms: Vec<u32> = m.get_one::<Vec<hearth_core::Vmid>>("vms").unwrap().iter().map(|v| v.get()).collect();
        assert_eq!(vms, [100, 101, 102]);
        assert!(cli::flag(&m, "force"));
        let m = leaf(&["clusterctl", "node", "config", "set", "--startall-onboot-delay", "10"]);
        assert_eq!(m.get_one::<String>("startall-onboot-delay").unwrap(), "10");
        let m = leaf(&["clusterctl", "node", "wakeonlan", "node2"]);
        assert_eq!(m.get_one::<String>("node").unwrap(), "node2");
        for bad in [
            &["clusterctl", "node", "startall", "--vms", "100,x"][..],
            &["clusterctl", "node", "config", "set", "--nope", "1"],
            &["clusterctl", "node", "wakeonlan"],
        ] {
            assert!(command().try_get_matches_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_task_commands() {
        let upid = "UPID:pve1:000A1B2C:0012D687:6650A1F0:qmstart:100:root@pam:";
        let m = command()
            .try_get_matches_from(["clusterctl", "task", "log", upid, "--start", "5", "--output-format", "json"])
            .unwrap();
        let (_, task) = m.subcommand().unwrap();
        let (name, log) = task.subcommand().unwrap();
        assert_eq!(name, "log");
        assert_eq!(OutputFormat::from_matches(log), OutputFormat::Json);
        assert_eq!(cli::get_upid(log, "upid").unwrap().to_string(), upid);
        assert_eq!(log.get_one::<usize>("start"), Some(&5));
        let m = command()
            .try_get_matches_from(["clusterctl", "task", "list", "--vmid", "100", "--errors", "--limit", "3"])
            .unwrap();
        assert!(m.subcommand().is_some());
        for bad in [
            &["clusterctl", "task", "status", "UPID:x"][..],
            &["clusterctl", "task", "list", "--vmid", "5"],
            &["clusterctl", "task"],
        ] {
            assert_eq!(command().try_get_matches_from(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }
}
