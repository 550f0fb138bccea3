//! `ctctl exec`: run a command inside a running container with this process's stdin, stdout
//! and stderr, as `pct exec`; `ctctl enter` is the same with an empty command.
//!
//! ctctl hands its three descriptors to hearthd with the request; hearthd runs the command with
//! them (a terminal among them is replaced by a fresh pty that hearthd relays to it) and
//! answers with the command's exit status once it has ended, which becomes ctctl's own.

use std::io::{self, IsTerminal};
use std::os::fd::AsFd;

use anyhow::Context;
use clap::{Arg, ArgAction, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_client::terminal::{self, RawMode};
use hearth_core::Vmid;
use hearth_proto::{CtRequest, ExecInCt, Payload, Request};

pub fn command() -> Command {
    Command::new("exec")
        .about("Run a command inside a container")
        .long_about(
            "Run a command inside a running container as its root user, as pct exec does: \
             ctctl exec <ctid> -- <command> [<arg>...]. ctctl asks hearthd, which needs \
             VM.Allocate on /vms/<ctid> from the caller (whoever may recreate a container may \
             be root in it).\n\n\
             Everything after -- (or after the first argument that is not an option of exec) \
             is the command line, passed on verbatim, options included. The command gets \
             ctctl's standard input, output and error; when one of them is a terminal the \
             command gets a pseudo-terminal of the caller's size and TERM instead, and a \
             terminal on standard input is switched to raw mode while the command runs, so keys \
             such as Ctrl+C go to the command. The environment inside is cleared to PATH, TERM \
             and HOME plus what --env adds. The exit status is the command's (128 + N when \
             signal N killed it); 1 and a message if it could not be run.",
        )
        .arg(cli::vmid_arg("ctid", "The container to run the command in"))
        .arg(env_arg())
        .arg(
            Arg::new("command")
                .value_name("COMMAND")
                .required(true)
                .num_args(1..)
                .trailing_var_arg(true)
                .allow_hyphen_values(true)
                .help("The program to run and its arguments, best after --"),
        )
}

/// `--env NAME=VALUE`, repeatable.
pub fn env_arg() -> Arg {
    Arg::new("env")
        .long("env")
        .value_name("NAME=VALUE")
        .action(ArgAction::Append)
        .value_parser(check_env)
        .help("Set an environment variable for the command (repeatable)")
}

/// `NAME=VALUE` with a shell-style name; the value may be anything, empty included.
fn check_env(text: &str) -> Result<String, String> {
    let (name, _) = text.split_once('=').ok_or_else(|| format!("'{text}' is not NAME=VALUE"))?;
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid { Ok(text.to_owned()) } else { Err(format!("'{name}' is not a valid variable name")) }
}

/// The `--env` values, in order.
pub fn env(matches: &ArgMatches) -> Vec<String> {
    matches.try_get_many::<String>("env").ok().flatten().into_iter().flatten().cloned().collect()
}

pub fn run(matches: &ArgMatches, _format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "ctid")?;
    let command: Vec<String> =
        matches.try_get_many::<String>("command").ok().flatten().into_iter().flatten().cloned().collect();
    execute(vmid, command, env(matches))
}

/// Runs `command` (empty: root's login shell) in the container and ends with its status.
pub fn execute(vmid: Vmid, command: Vec<String>, env: Vec<String>) -> anyhow::Result<()> {
    let what = if command.is_empty() { "entering".to_owned() } else { format!("running '{}' in", command[0]) };
    let request = Request::Ct(CtRequest::Exec(ExecInCt {
        vmid,
        command,
        env,
        term: std::env::var("TERM").ok().filter(|t| !t.is_empty()),
        winsize: terminal::window_size(),
    }));
    let mut client = cli::connect(crate::BIN)?;
    let (stdin, stdout, stderr) = (io::stdin(), io::stdout(), io::stderr());
    // Restored when dropped, whichever way the call ends, before any error is printed.
    let raw_mode = if stdin.is_terminal() {
        Some(RawMode::enter(stdin.as_fd()).context("switching the terminal to raw mode")?)
    } else {
        None
    };
    let answer = client.call_with_files(&request, &[stdin.as_fd(), stdout.as_fd(), stderr.as_fd()]);
    drop(raw_mode);
    match answer.with_context(|| format!("{what} CT {vmid}"))? {
        Payload::ExitStatus(code) => cli::exit_with(code),
        other => Err(cli::unexpected(&other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_needs_a_name_and_an_equals_sign() {
        for good in ["A=1", "_x=", "LANG=C.UTF-8", "P=a=b c"] {
            assert_eq!(check_env(good).as_deref(), Ok(good));
        }
        for bad in ["A", "=1", "1A=x", "A-B=x", "Ä=x", " A=x"] {
            assert!(check_env(bad).is_err(), "{bad:?}");
        }
    }
}
