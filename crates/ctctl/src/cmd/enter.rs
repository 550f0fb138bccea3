//! `ctctl enter`: a root shell inside a running container, as `pct enter`.

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};

pub fn command() -> Command {
    Command::new("enter")
        .about("Open a root shell inside a container")
        .long_about(
            "Open a login shell of the root user inside a running container, as pct enter does: \
             `ctctl exec` with no command. ctctl asks hearthd, which needs VM.Allocate on \
             /vms/<ctid> from the caller.\n\n\
             The shell gets ctctl's standard input, output and error (a pseudo-terminal of the \
             caller's size when they are a terminal, which is switched to raw mode meanwhile). \
             Leave it with exit or Ctrl+D; the exit status is the shell's.",
        )
        .arg(cli::vmid_arg("ctid", "The container to enter"))
        .arg(super::exec::env_arg())
}

pub fn run(matches: &ArgMatches, _format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "ctid")?;
    super::exec::execute(vmid, Vec::new(), super::exec::env(matches))
}
