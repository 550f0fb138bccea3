//! `storectl free <volid>`: destroy a volume.

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Request, StorageRequest};

pub fn command() -> Command {
    Command::new("free")
        .about("Destroy a volume")
        .long_about(
            "Destroy a volume and its snapshots, as pvesm free. Refused while a guest's \
             configuration uses the volume, for base images that linked clones still use, and for \
             protected backups.",
        )
        .arg(super::volid_arg("The volume to destroy"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let volid = super::string(matches, "volid");
    cli::connect(crate::BIN)?.call(&Request::Storage(StorageRequest::Free { volid: volid.clone() }))?;
    super::print_volume(&volid, "removed", format)
}
