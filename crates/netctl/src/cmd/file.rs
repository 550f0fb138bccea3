//! `netctl import|export`: Proxmox's `/etc/network/interfaces` format.

use std::io::Read;

use anyhow::Context;
use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{NetworkRequest, Payload};

use super::positional;

pub fn import_command() -> Command {
    Command::new("import")
        .about("Stage a Proxmox /etc/network/interfaces file")
        .long_about(
            "Read a Proxmox VE /etc/network/interfaces file (auto, allow-hotplug, iface … inet|inet6 \
             static|manual|dhcp, bridge-*, bond-*, vlan-* lines, comments) and make it the staged \
             configuration; lines Hearth does not interpret are kept. `-` reads standard input.",
        )
        .arg(positional("file", "FILE", "The file, or - for standard input"))
}

pub fn export_command() -> Command {
    Command::new("export").about("Print the configuration as a Proxmox /etc/network/interfaces file")
}

pub fn import(m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let file = super::string(m, "file");
    let text = if file == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("reading standard input")?;
        text
    } else {
        std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?
    };
    super::change(NetworkRequest::Import { text }, format)
}

pub fn export(_m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    match super::call(NetworkRequest::Export)? {
        Payload::Text(text) if format.is_json() => cli::print_json(&text, format),
        Payload::Text(text) => cli::print_text(&text),
        other => Err(cli::unexpected(&other)),
    }
}
