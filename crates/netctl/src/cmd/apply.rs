//! `netctl pending|apply|confirm|revert`: what the staged configuration would change, and
//! making it so with rollback.

use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{NetworkRequest, Payload};

use super::change;

pub fn pending_command() -> Command {
    Command::new("pending").about("Show what apply would change in the kernel, per interface").long_about(
        "Compare the staged configuration with the running kernel: interfaces apply would \
             create (+), delete (-) or change (~), with each differing key as `current -> staged`.",
    )
}

pub fn apply_command() -> Command {
    Command::new("apply")
        .about("Apply the staged configuration to the kernel")
        .long_about(
            "Make the staged configuration the running one and change the kernel to match, touching \
             only what changed. Every step is journalled first; a failing step rolls everything back \
             and names the step. Unless `netctl confirm` follows within --confirm-timeout seconds, \
             the previous configuration and kernel state are restored.",
        )
        .arg(
            Arg::new("confirm-timeout")
                .long("confirm-timeout")
                .value_name("SECONDS")
                .value_parser(clap::value_parser!(u64))
                .help("Seconds to wait for `netctl confirm` before rolling back (default 60; 0: no confirmation)"),
        )
}

pub fn confirm_command() -> Command {
    Command::new("confirm").about("Keep the configuration applied last")
}

pub fn revert_command() -> Command {
    Command::new("revert").about("Drop the staged edits")
}

/// `+`, `-` or `~` and the interface, then one line per key.
fn render(changes: &[hearth_core::network::IfaceChange]) -> String {
    let mut out = String::new();
    for c in changes {
        let sign = match c.action.as_str() {
            "create" => '+',
            "delete" => '-',
            _ => '~',
        };
        out.push_str(&format!("{sign} {}\n", c.iface));
        for k in &c.changes {
            let current = k.current.as_deref().unwrap_or("-");
            let staged = k.staged.as_deref().unwrap_or("-");
            out.push_str(&format!("    {}: {current} -> {staged}\n", k.key));
        }
    }
    out
}

pub fn pending(_m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let changes = match super::call(NetworkRequest::Pending)? {
        Payload::NetworkPending(changes) => changes,
        other => return Err(cli::unexpected(&other)),
    };
    if format.is_json() {
        return cli::print_json(&changes, format);
    }
    cli::print_text(&render(&changes))
}

pub fn apply(m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let confirm_timeout = m.try_get_one::<u64>("confirm-timeout").ok().flatten().copied();
    let payload = super::call(NetworkRequest::Apply { confirm_timeout })?;
    if format.is_json() {
        return cli::print_json(&payload, format);
    }
    match payload {
        Payload::Text(text) => cli::print_text(&text),
        _ => Ok(()),
    }
}

pub fn confirm(_m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    change(NetworkRequest::Confirm, format)
}

pub fn revert(_m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    change(NetworkRequest::Revert, format)
}
