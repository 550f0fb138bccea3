//! Handing a script to the kernel: `nft -f -` (one transaction), optionally inside another
//! network namespace through `nsenter --net=<path>`, so tests and benchmarks never touch the
//! host's own ruleset.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::TABLE;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("cannot run nft (install the nftables package): {0}")]
    Spawn(std::io::Error),
    #[error("nft refused the ruleset: {0}")]
    Refused(String),
}

/// Where rulesets go: this network namespace or the one at a `/run/netns/<name>` path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Nft {
    pub netns: Option<PathBuf>,
}

impl Nft {
    pub fn in_netns(path: &Path) -> Nft {
        Nft { netns: Some(path.to_path_buf()) }
    }

    fn command(&self, args: &[&str]) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display())).arg("nft").args(args);
                c
            }
            None => {
                let mut c = Command::new("nft");
                c.args(args);
                c
            }
        }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<String, ApplyError> {
        let mut child = self
            .command(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(ApplyError::Spawn)?;
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().expect("stdin was requested as a pipe");
            pipe.write_all(text.as_bytes()).map_err(ApplyError::Spawn)?;
        }
        let out = child.wait_with_output().map_err(ApplyError::Spawn)?;
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(ApplyError::Refused(if msg.is_empty() { format!("exit {}", out.status) } else { msg }));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Applies a script in one transaction: either all of it takes effect or nothing changes.
    pub fn apply(&self, script: &str) -> Result<(), ApplyError> {
        self.run(&["-f", "-"], Some(script)).map(|_| ())
    }

    /// Checks a script without applying it.
    pub fn check(&self, script: &str) -> Result<(), ApplyError> {
        self.run(&["-c", "-f", "-"], Some(script)).map(|_| ())
    }

    /// The kernel's current Hearth tables as nft prints them (empty when absent), for the
    /// periodic check that repairs changes made behind Hearth's back.
    pub fn list_own(&self) -> Result<String, ApplyError> {
        let mut s = String::new();
        for fam in ["bridge", "inet"] {
            match self.run(&["list", "table", fam, TABLE], None) {
                Ok(t) => s.push_str(&t),
                Err(ApplyError::Refused(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(s)
    }

    /// Removes Hearth's tables (the firewall stopped): the script of a disabled ruleset.
    pub fn remove(&self) -> Result<(), ApplyError> {
        self.apply(&format!(
            "table inet {TABLE}\ndelete table inet {TABLE}\ntable bridge {TABLE}\ndelete table bridge {TABLE}\n"
        ))
    }
}
