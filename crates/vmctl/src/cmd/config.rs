//! `vmctl config`: print a VM's configuration, as `qm config`.

use anyhow::Context;
use clap::{Arg, ArgAction, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{GetConfig, Payload, Request, VmRequest};

pub fn command() -> Command {
    Command::new("config")
        .about("Print the configuration of a virtual machine")
        .long_about(
            "Print the configuration of a virtual machine as key: value lines sorted by key, \
             the description first (percent-encoded to one line), as qm config does.\n\n\
             By default pending changes are shown as if applied; --current shows the \
             configuration in effect, --snapshot the one saved with a snapshot. JSON output is \
             an object of all keys plus \"digest\", which `vmctl set --digest` takes to refuse \
             conflicting edits.",
        )
        .arg(cli::vmid_arg("vmid", "The VM to show"))
        .arg(
            Arg::new("current")
                .long("current")
                .action(ArgAction::SetTrue)
                .help("Show the configuration in effect, without pending changes"),
        )
        .arg(Arg::new("snapshot").long("snapshot").value_name("NAME").help("Show the configuration of this snapshot"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let request = Request::Vm(VmRequest::Config(GetConfig {
        vmid,
        current: matches.get_flag("current"),
        snapshot: matches.get_one::<String>("snapshot").cloned(),
    }));
    let mut client = cli::connect(crate::BIN)?;
    match client.call(&request).with_context(|| format!("reading the configuration of VM {vmid}"))? {
        Payload::Config(view) => cli::print_guest_config(&view, format),
        other => Err(cli::unexpected(&other)),
    }
}
