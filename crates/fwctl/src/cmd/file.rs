//! `fwctl import FILE` and `fwctl export`: Proxmox's `.fw` files.

use anyhow::Context;
use clap::{Arg, ArgGroup, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_core::Vmid;
use hearth_proto::{FirewallRequest, FirewallScope};

use super::{change, flag, print, text};

fn scope_args(cmd: Command) -> Command {
    cmd.arg(flag("cluster", "The cluster configuration (cluster.fw)"))
        .arg(flag("host", "This node's configuration (host.fw)"))
        .arg(
            Arg::new("vm")
                .long("vm")
                .value_name("VMID")
                .value_parser(|s: &str| s.parse::<Vmid>())
                .help("A VM's configuration"),
        )
        .arg(
            Arg::new("ct")
                .long("ct")
                .value_name("VMID")
                .value_parser(|s: &str| s.parse::<Vmid>())
                .help("A container's configuration"),
        )
        .group(ArgGroup::new("scope").args(["cluster", "host", "vm", "ct"]))
}

fn scope_of(m: &ArgMatches, file: Option<&str>) -> anyhow::Result<FirewallScope> {
    if cli::flag(m, "cluster") {
        return Ok(FirewallScope::Cluster);
    }
    if cli::flag(m, "host") {
        return Ok(FirewallScope::Host);
    }
    for k in ["vm", "ct"] {
        if let Some(v) = m.try_get_one::<Vmid>(k).ok().flatten() {
            return Ok(FirewallScope::Guest(*v));
        }
    }
    let Some(file) = file else { return Ok(FirewallScope::Cluster) };
    let base = std::path::Path::new(file).file_name().and_then(|n| n.to_str()).unwrap_or("");
    match base {
        "cluster.fw" => Ok(FirewallScope::Cluster),
        "host.fw" => Ok(FirewallScope::Host),
        b => match b.strip_suffix(".fw").and_then(|n| n.parse::<Vmid>().ok()) {
            Some(v) => Ok(FirewallScope::Guest(v)),
            None => anyhow::bail!("{file}: say which configuration it is (--cluster, --host, --vm ID or --ct ID)"),
        },
    }
}

pub fn import_command() -> Command {
    scope_args(
        Command::new("import")
            .about("Replace a configuration with a Proxmox .fw file")
            .long_about(
                "Replace a configuration with a Proxmox .fw file (cluster.fw, host.fw, <vmid>.fw; the \
                 name tells which, or say it with --cluster, --host, --vm or --ct). The file is checked \
                 as a whole: any error refuses it, with its line number.",
            )
            .arg(super::positional("file", "FILE", "The .fw file; - reads standard input"))
            .arg(flag("force", "Apply even when the management ports would be dropped")),
    )
}

pub fn import(m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let file = super::string(m, "file");
    let text = if file == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading standard input")?
    } else {
        std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?
    };
    let scope = scope_of(m, Some(&file))?;
    change(FirewallRequest::Import { scope, text, force: cli::flag(m, "force") }, format)
}

pub fn export_command() -> Command {
    scope_args(Command::new("export").about("Print a configuration as a Proxmox .fw file (default: the cluster's)"))
}

pub fn export(m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    print(&text(FirewallRequest::Export { scope: scope_of(m, None)? })?, format)
}
