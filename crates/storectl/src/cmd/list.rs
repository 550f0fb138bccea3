//! `storectl list <storage> [--content] [--vmid]`: the volumes of a storage, as pvesm list.

use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, Align, OutputFormat, Table};
use hearth_proto::{ListVolumes, Payload, Request, StorageRequest, VolumeEntry};

pub fn command() -> Command {
    Command::new("list")
        .about("List the volumes of a storage")
        .long_about(
            "List the volumes of a storage, as pvesm list: columns Volid Format Type Size VMID, \
             sizes in bytes (virtual size for images). Guest volumes come first, by VMID.",
        )
        .arg(super::storage_arg())
        .arg(
            Arg::new("content")
                .long("content")
                .value_name("CONTENT")
                .help("Only this content type: images, rootdir, iso, vztmpl, backup, snippets, import"),
        )
        .arg(
            Arg::new("vmid")
                .long("vmid")
                .value_name("VMID")
                .value_parser(|s: &str| s.parse::<hearth_core::Vmid>())
                .help("Only volumes of this guest"),
        )
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let request = Request::Storage(StorageRequest::List(ListVolumes {
        storage: super::string(matches, "storage"),
        content: matches.get_one::<String>("content").cloned(),
        vmid: cli::get_vmid(matches, "vmid"),
    }));
    let volumes = match cli::connect(crate::BIN)?.call(&request)? {
        Payload::Volumes(v) => v,
        other => return Err(cli::unexpected(&other)),
    };
    if format.is_json() { cli::print_json(&volumes, format) } else { render(&volumes).print() }
}

fn render(volumes: &[VolumeEntry]) -> Table {
    let mut table = Table::new(&[
        ("Volid", Align::Left),
        ("Format", Align::Left),
        ("Type", Align::Left),
        ("Size", Align::Right),
        ("VMID", Align::Right),
    ]);
    for v in volumes {
        table.row(vec![
            v.volid.clone(),
            v.format.clone(),
            v.content.clone(),
            v.size.to_string(),
            v.vmid.map(|id| id.to_string()).unwrap_or_default(),
        ]);
    }
    table
}
