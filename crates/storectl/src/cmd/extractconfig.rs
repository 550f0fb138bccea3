//! `storectl extractconfig`: the guest configuration a backup holds, as `pvesm extractconfig`.

use anyhow::bail;
use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Payload, Request, StorageRequest};

pub fn command() -> Command {
    Command::new("extractconfig")
        .about("Print the guest configuration stored in a backup")
        .long_about(
            "Print the configuration of the guest a backup holds, in Proxmox's key: value form \
             (the description as leading # lines), as pvesm extractconfig does; it works for \
             vzdump archives and chunk store snapshots. Needs Datastore.AllocateSpace on the \
             backup's storage and VM.Backup on its guest, or Datastore.Allocate on the storage.",
        )
        .arg(Arg::new("volume").value_name("VOLUME").required(true).help("The backup, storage:backup/vzdump-…"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let volid = matches.get_one::<String>("volume").cloned().unwrap_or_default();
    let mut client = cli::connect(crate::BIN)?;
    let Payload::Text(text) = client.call(&Request::Storage(StorageRequest::ExtractConfig { volid }))? else {
        bail!("unexpected answer from hearthd");
    };
    if format.is_json() { cli::print_json(&text, format) } else { cli::print_text(&text) }
}
