//! `vmctl config`, `ctctl config`: print a guest's configuration, as `qm config` and
//! `pct config`.

use anyhow::Context;
use clap::{Arg, ArgMatches, Command};
use hearth_core::GuestKind;
use hearth_proto::{CtRequest, GetConfig, Payload, VmRequest};

use crate::cli::{self, OutputFormat};

pub fn command(kind: GuestKind) -> Command {
    let n = super::names(kind);
    Command::new("config")
        .about(format!("Print the configuration of a {}", n.noun))
        .long_about(format!(
            "Print the configuration of a {} as key: value lines sorted by key, the \
             description first (percent-encoded to one line), as {} config does.\n\n\
             By default pending changes are shown as if applied; --current shows the \
             configuration in effect, --snapshot the one saved with a snapshot. JSON output is \
             an object of all keys plus \"digest\", which `{} set --digest` takes to refuse \
             conflicting edits.",
            n.noun, n.tool, n.bin
        ))
        .arg(super::id_arg(kind, format!("The {} to show", n.guest)))
        .arg(cli::flag_arg("current", "Show the configuration in effect, without pending changes"))
        .arg(Arg::new("snapshot").long("snapshot").value_name("NAME").help("Show the configuration of this snapshot"))
}

pub fn run(kind: GuestKind, bin: &str, matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = super::id(kind, matches)?;
    let get = GetConfig {
        vmid,
        current: cli::flag(matches, "current"),
        snapshot: matches.get_one::<String>("snapshot").cloned(),
    };
    let request = super::request(kind, get, VmRequest::Config, CtRequest::Config);
    let mut client = cli::connect(bin)?;
    match client.call(&request).with_context(|| format!("reading the configuration of {} {vmid}", kind.noun()))? {
        Payload::Config(view) => cli::print_guest_config(&view, format),
        other => Err(cli::unexpected(&other)),
    }
}
