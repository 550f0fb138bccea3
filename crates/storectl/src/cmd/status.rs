//! `storectl status`: state and space of every storage, as pvesm status.

use clap::{Arg, ArgAction, ArgMatches, Command};
use hearth_client::cli::{self, Align, OutputFormat, Table};
use hearth_proto::{Payload, Request, StorageRequest, StorageStatus, StorageStatusFilter};

pub fn command() -> Command {
    Command::new("status")
        .about("Show storage state and space")
        .long_about(
            "Show every storage with its state and space, as pvesm status. Status is active, \
             inactive (path missing, not mounted, wrong file system) or disabled; sizes are KiB. \
             With JSON output sizes are bytes and inactive storages carry the reason.",
        )
        .arg(Arg::new("storage").long("storage").value_name("STORAGE").help("Only this storage"))
        .arg(Arg::new("content").long("content").value_name("CONTENT").help("Only storages holding this content type"))
        .arg(Arg::new("enabled").long("enabled").action(ArgAction::SetTrue).help("Only enabled, active storages"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let filter = StorageStatusFilter {
        storage: matches.get_one::<String>("storage").cloned(),
        content: matches.get_one::<String>("content").cloned(),
        enabled: matches.get_flag("enabled"),
    };
    let rows = match cli::connect(crate::BIN)?.call(&Request::Storage(StorageRequest::Status(filter)))? {
        Payload::StorageStatus(rows) => rows,
        other => return Err(cli::unexpected(&other)),
    };
    if format.is_json() { cli::print_json(&rows, format) } else { render(&rows).print() }
}

fn render(rows: &[StorageStatus]) -> Table {
    let mut table = Table::new(&[
        ("Name", Align::Left),
        ("Type", Align::Left),
        ("Status", Align::Left),
        ("Total (KiB)", Align::Right),
        ("Used (KiB)", Align::Right),
        ("Available (KiB)", Align::Right),
        ("%", Align::Right),
    ]);
    for r in rows {
        let kib = |v: Option<u64>| v.map_or_else(|| "N/A".into(), |b| (b / 1024).to_string());
        let percent = match (r.used, r.total) {
            (Some(u), Some(t)) if t > 0 => format!("{:.2}%", u as f64 * 100.0 / t as f64),
            _ => "N/A".into(),
        };
        table.row(vec![
            r.storage.clone(),
            r.storage_type.clone(),
            r.status.clone(),
            kib(r.total),
            kib(r.used),
            kib(r.available),
            percent,
        ]);
    }
    table
}
