//! `userctl passwd`: set a `hearth`-realm user's password, as `pveum passwd`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};
use clap::{ArgMatches, Command};
use hearth_client::cli::OutputFormat;
use hearth_proto::{AccessRequest, Secret};
use nix::sys::termios::{self, LocalFlags, SetArg, Termios};

use super::{change, positional};

pub fn command() -> Command {
    Command::new("passwd")
        .about("Set the password of a user in the hearth realm")
        .long_about(
            "Set the password of a user in the hearth realm. On a terminal it is asked for twice \
             without echo; otherwise the first line of standard input is the password, for \
             scripts. hearthd keeps only an argon2id hash, in etc/hearth/priv/shadow.toml. \
             Users of the pam realm are host accounts: change their password with passwd(1). \
             Anyone may change their own password; another user's needs Realm.AllocateUser on \
             /access/realm/REALM and User.Modify on /access/groups.",
        )
        .arg(positional("userid", "USERID", "User id NAME@hearth"))
}

pub fn run(m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let userid = super::string(m, "userid");
    refuse_pam(&userid)?;
    let password = read_new_password()?;
    change(AccessRequest::Passwd { userid, password }, format)
}

/// Refuses early, before asking for a password that could not be used.
pub fn refuse_pam(userid: &str) -> anyhow::Result<()> {
    if userid.rsplit_once('@').is_some_and(|(_, realm)| realm == "pam") {
        bail!("'{userid}' is a host account: change its password with passwd(1) on the host");
    }
    Ok(())
}

/// The new password: asked twice without echo on a terminal, else the first line of stdin.
pub fn read_new_password() -> anyhow::Result<Secret> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line).context("cannot read the password from standard input")?;
        let password = line.strip_suffix('\n').unwrap_or(&line);
        let password = password.strip_suffix('\r').unwrap_or(password);
        if password.is_empty() {
            bail!("no password on standard input");
        }
        return Ok(Secret::new(password));
    }
    let first = prompt("Enter new password: ")?;
    let second = prompt("Retype new password: ")?;
    if first != second {
        bail!("the passwords do not match");
    }
    Ok(Secret::new(first))
}

/// Restores the terminal's echo when dropped, also on errors.
struct EchoOff(Termios);

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.0);
    }
}

fn prompt(text: &str) -> anyhow::Result<String> {
    eprint!("{text}");
    std::io::stderr().flush()?;
    let saved = termios::tcgetattr(std::io::stdin()).context("cannot read the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, &quiet).context("cannot turn off echo")?;
    let guard = EchoOff(saved);
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    drop(guard);
    eprintln!();
    read.context("cannot read the password")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}
