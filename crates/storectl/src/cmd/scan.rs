//! `storectl scan`: what this host offers for new storages, as `pvesm scan`.

use anyhow::bail;
use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, Align, OutputFormat, Table};
use hearth_proto::{Payload, Request, StorageRequest};
use serde_json::Value;

pub fn command() -> Command {
    let scan = |name: &'static str, about: &'static str| Command::new(name).about(about);
    Command::new("scan")
        .about("Scan the host for storage to add")
        .long_about(
            "List what this host offers for a new storage, as pvesm scan does: LVM volume groups \
             (scan lvm), the thin pools of a volume group (scan lvmthin <vg>) and ZFS file \
             systems (scan zfs), through the host's own tools (lvm2, zfsutils-linux); a missing \
             tool or kernel feature is named. NFS, CIFS, iSCSI and Proxmox Backup Server storages \
             are not supported yet, and neither are their scans. Needs Datastore.Allocate on \
             /storage.",
        )
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(scan("lvm", "List the LVM volume groups"))
        .subcommand(
            scan("lvmthin", "List the LVM thin pools of a volume group")
                .arg(Arg::new("vg").value_name("VG").required(true).help("The volume group")),
        )
        .subcommand(scan("zfs", "List the ZFS pools and file systems"))
        .subcommand(scan("nfs", "List the exports of an NFS server (not supported yet)").arg(server()))
        .subcommand(scan("cifs", "List the shares of an SMB/CIFS server (not supported yet)").arg(server()))
        .subcommand(
            scan("iscsi", "List the targets of an iSCSI portal (not supported yet)")
                .arg(Arg::new("portal").long("portal").value_name("PORTAL").required(true).help("The iSCSI portal")),
        )
        .subcommand(scan("pbs", "List the datastores of a Proxmox Backup Server (not supported yet)").arg(server()))
}

fn server() -> Arg {
    Arg::new("server").value_name("SERVER").required(true).help("The server")
}

pub fn run(matches: &ArgMatches, _format: OutputFormat) -> anyhow::Result<()> {
    let Some((kind, sub)) = matches.subcommand() else { bail!("no scan type given") };
    let format = OutputFormat::from_matches(sub);
    let target = sub.try_get_one::<String>("vg").ok().flatten().cloned();
    let request = Request::Storage(StorageRequest::Scan { kind: kind.to_owned(), target });
    let mut client = cli::connect(crate::BIN)?;
    let Payload::Text(text) = client.call(&request)? else { bail!("unexpected answer from hearthd") };
    let found: Vec<Value> = serde_json::from_str(&text)?;
    if format.is_json() {
        return cli::print_json(&found, format);
    }
    let columns: &[&str] = match kind {
        "lvm" => &["vg"],
        "lvmthin" => &["lv"],
        _ => &["pool"],
    };
    let mut table = Table::new(&columns.iter().map(|c| (*c, Align::Left)).collect::<Vec<_>>());
    for entry in &found {
        table.row(columns.iter().map(|c| entry[*c].as_str().unwrap_or_default().to_owned()).collect());
    }
    table.print()
}
