//! `ctctl console`: the console of a running container on this terminal, as `pct console`.
//!
//! hearthd hands over a connection to the console; from then on ctctl relays bytes without
//! hearthd, with the relay [`hearth_client::terminal`] shares with `vmctl terminal`.

use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_client::terminal;
use hearth_proto::{CtRequest, Request};

pub fn command() -> Command {
    Command::new("console")
        .about("Open the console of a container")
        .long_about(
            "Connect this terminal to the console of a running container (/dev/console, or \
             with --tty N its Nth tty), as pct console does. ctctl asks hearthd, which needs \
             VM.Console on /vms/<ctid> from the caller; what the console printed since the \
             start is shown first.\n\n\
             On a terminal, ctctl switches it to raw mode, so every key including Ctrl+C goes to \
             the container, and Ctrl+O leaves the console (as in `vmctl terminal`; pct's escape \
             is Ctrl+a q); the container keeps running. When standard input is not a terminal \
             (scripts), it is sent as it is, Ctrl+O included, until it ends; ctctl then goes on \
             printing the console's output until the container closes it or ctctl is ended by \
             a signal. Exit status 0 when the user left or the console closed; SIGINT, SIGTERM \
             and SIGHUP end ctctl as usual, after the terminal's settings are restored.",
        )
        .arg(cli::vmid_arg("ctid", "The container to connect to"))
        .arg(
            Arg::new("tty")
                .long("tty")
                .value_name("N")
                .value_parser(clap::value_parser!(u32).range(1..=6))
                .help("Connect to tty N (1 to the container's tty count) instead of /dev/console"),
        )
}

pub fn run(matches: &ArgMatches, _format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "ctid")?;
    let tty = matches.try_get_one::<u32>("tty").ok().flatten().copied();
    let what = tty.map_or_else(|| "the console".to_owned(), |n| format!("tty{n}"));
    let request = Request::Ct(CtRequest::Console { vmid, tty });
    let banner = format!("connected to {what} of CT {vmid} (press Ctrl+O to exit)");
    terminal::open(crate::BIN, &request, || format!("opening {what} of CT {vmid}"), &banner)
}
