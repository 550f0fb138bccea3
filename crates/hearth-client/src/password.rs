//! Reading a new password: twice without echo on a terminal, else the first line of stdin (for
//! scripts). Shared by `userctl passwd`, `userctl user add --password` and `ctctl create
//! --password`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};
use hearth_proto::Secret;
use nix::sys::termios::{self, LocalFlags, SetArg, Termios};

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
    if first.is_empty() {
        bail!("the password is empty");
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
