//! `vmctl terminal`: the serial console of a running VM on this terminal, as `qm terminal`.
//!
//! hearthd opens the VM's serial socket and hands the connection over; from then on vmctl
//! relays bytes without hearthd, with the relay [`hearth_client::terminal`] shares with
//! `ctctl console`.

use anyhow::Context;
use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_client::terminal;
use hearth_proto::{Request, VmRequest};

pub fn command() -> Command {
    Command::new("terminal")
        .about("Open the serial console of a virtual machine")
        .long_about(
            "Connect this terminal to a serial port of a running virtual machine, as qm terminal \
             does. The port must be configured as a socket (vmctl set <vmid> --serial0 socket) \
             and the VM started since. Needs VM.Console on /vms/<vmid>.\n\n\
             On a terminal, vmctl switches it to raw mode, so every key including Ctrl+C goes to \
             the guest, and Ctrl+O leaves the console; the VM keeps running. When standard input \
             is not a terminal (scripts), it is sent as it is, Ctrl+O included, until it ends; \
             vmctl then goes on printing what the VM writes until the VM closes the port or \
             vmctl is ended by a signal. Exit status 0 when the user left or the VM closed the \
             port; SIGINT, SIGTERM and SIGHUP end vmctl as usual, after the terminal's settings \
             are restored.",
        )
        .arg(cli::vmid_arg("vmid", "The VM to connect to"))
        .arg(
            Arg::new("iface")
                .long("iface")
                .value_name("serialN")
                .value_parser(["serial0", "serial1", "serial2", "serial3"])
                .default_value("serial0")
                .help("The serial port to connect to"),
        )
}

pub fn run(matches: &ArgMatches, _format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let iface = matches.get_one::<String>("iface").map_or("serial0", String::as_str);
    let serial: u32 = iface
        .strip_prefix("serial")
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("'{iface}' is not a serial port"))?;
    let request = Request::Vm(VmRequest::Terminal { vmid, serial });
    let banner = format!("starting serial terminal on interface {iface} (press Ctrl+O to exit)");
    terminal::open(crate::BIN, &request, || format!("opening {iface} of VM {vmid}"), &banner)
}
