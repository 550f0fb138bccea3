//! `fwctl compile|status|start|stop|log|apply|confirm`: the firewall as a whole.

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::FirewallRequest;

use super::{change, flag, option, print, text};

pub fn compile_command() -> Command {
    Command::new("compile").about("Print the nftables ruleset the configuration compiles to")
}

pub fn compile(_: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    print(&text(FirewallRequest::Compile)?, format)
}

pub fn status_command() -> Command {
    Command::new("status").about("Show whether the firewall is enabled and applied, and per NIC why")
}

pub fn status(_: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    print(&text(FirewallRequest::Status)?, format)
}

pub fn start_command() -> Command {
    Command::new("start")
        .about("Enable the firewall (cluster option enable: 1)")
        .arg(flag("force", "Enable even when the management ports would be dropped"))
}

pub fn start(m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    change(FirewallRequest::Enable { enable: true, force: cli::flag(m, "force") }, format)
}

pub fn stop_command() -> Command {
    Command::new("stop").about("Disable the firewall and remove its rules (cluster option enable: 0)")
}

pub fn stop(_: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    change(FirewallRequest::Enable { enable: false, force: true }, format)
}

pub fn log_command() -> Command {
    Command::new("log")
        .about("Show firewall log lines")
        .arg(option("since", "EPOCH", "Only lines since this Unix time").value_parser(clap::value_parser!(u64)))
}

pub fn log(m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let since = m.try_get_one::<u64>("since").ok().flatten().copied();
    print(&text(FirewallRequest::Log { since })?, format)
}

pub fn apply_command() -> Command {
    Command::new("apply")
        .about("Apply now; roll back unless confirmed in time")
        .long_about(
            "Apply the current configuration and keep the one in effect before as the fallback: unless \
             `fwctl confirm` follows within --confirm-timeout seconds, hearthd restores it. Changes made \
             in between are rolled back too.",
        )
        .arg(
            option("confirm-timeout", "SECONDS", "Seconds to wait for `fwctl confirm`")
                .required(true)
                .value_parser(clap::value_parser!(u64)),
        )
}

pub fn apply(m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let confirm_timeout = *m.get_one::<u64>("confirm-timeout").expect("required");
    print(&text(FirewallRequest::Apply { confirm_timeout })?, format)
}

pub fn confirm_command() -> Command {
    Command::new("confirm").about("Keep what the last `fwctl apply --confirm-timeout` applied")
}

pub fn confirm(_: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    change(FirewallRequest::Confirm, format)
}
