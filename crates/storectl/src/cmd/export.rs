//! `storectl export <volid> <format> <file|->`: write a volume as a stream.

use std::io::{IsTerminal, Write};
use std::os::fd::AsFd;

use anyhow::{Context, bail};
use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{ExportVolume, Request, StorageRequest};

use crate::transfer;

pub fn command() -> Command {
    Command::new("export")
        .about("Write a volume as an export stream")
        .long_about(
            "Write a volume as a stream that storectl import reads back, on this node or another, \
             as pvesm export: raw+size, qcow2+size or vmdk+size for images in that format, \
             tar+size for container directories, btrfs for btrfs volumes with their snapshots. \
             The stream goes to FILE (created or truncated; removed again if the export fails) \
             or, with -, to standard output.",
        )
        .arg(super::volid_arg("The volume to export"))
        .arg(
            Arg::new("format")
                .value_name("FORMAT")
                .required(true)
                .value_parser(["raw+size", "qcow2+size", "vmdk+size", "tar+size", "btrfs"])
                .help("Stream format"),
        )
        .arg(
            Arg::new("file").value_name("FILE").required(true).help("Where to write the stream; - for standard output"),
        )
        .arg(cli::flag_arg(
            "with-snapshots",
            "Carry the volume's snapshots (qcow2+size, btrfs); 0 refuses a stream that would",
        ))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let request = Request::Storage(StorageRequest::Export(ExportVolume {
        volid: super::string(matches, "volid"),
        format: super::string(matches, "format"),
        with_snapshots: cli::flag_value(matches, "with-snapshots"),
    }));
    let file = super::string(matches, "file");
    let mut client = cli::connect(crate::BIN)?;
    if file == "-" {
        if std::io::stdout().is_terminal() {
            bail!("refusing to write a binary stream to a terminal; give a file or redirect standard output");
        }
        std::io::stdout().flush()?;
        let target = std::io::stdout().as_fd().try_clone_to_owned().context("duplicating standard output")?;
        client.call_with_file(&request, target)?;
        return Ok(());
    }
    let out = std::fs::File::create(&file).with_context(|| format!("cannot create {file}"))?;
    let progress = transfer::wants_progress(format.is_json()).then_some("exporting");
    if let Err(e) = transfer::receive(&mut client, &request, out.into(), progress) {
        let _ = std::fs::remove_file(&file);
        return Err(e);
    }
    if format.is_json() { cli::print_json(&serde_json::json!({ "file": file }), format) } else { Ok(()) }
}
