//! `storectl upload <storage> <file> --content iso|vztmpl|snippets|import`.

use std::path::Path;

use anyhow::Context;
use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Payload, Request, StorageRequest, UploadFile};

use crate::transfer;

pub fn command() -> Command {
    Command::new("upload")
        .about("Upload an ISO image, container template or snippet")
        .long_about(
            "Store a local file on a storage: ISO images (.iso, .img) as iso content in \
             template/iso/, container templates (.tar, .tar.gz, .tar.xz, .tar.zst, ...) as vztmpl \
             content in template/cache/, snippets and import images likewise. The file keeps its \
             name unless --filename says otherwise; an existing file of that name is refused. \
             The upload is written under a temporary name and appears only when complete. A \
             progress bar shows on a terminal.",
        )
        .arg(super::storage_arg())
        .arg(Arg::new("file").value_name("FILE").required(true).help("The file to upload"))
        .arg(
            Arg::new("content")
                .long("content")
                .value_name("CONTENT")
                .required(true)
                .value_parser(["iso", "vztmpl", "snippets", "import"])
                .help("Content type"),
        )
        .arg(Arg::new("filename").long("filename").value_name("NAME").help("Name on the storage"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let file = super::string(matches, "file");
    let filename = match matches.get_one::<String>("filename") {
        Some(name) => name.clone(),
        None => Path::new(&file)
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)
            .with_context(|| format!("{file} has no usable file name; give --filename"))?,
    };
    let request = Request::Storage(StorageRequest::Upload(UploadFile {
        storage: super::string(matches, "storage"),
        content: super::string(matches, "content"),
        filename,
    }));
    let (source, size) = transfer::open_source(&file)?;
    let mut client = cli::connect(crate::BIN)?;
    let progress = transfer::wants_progress(format.is_json()).then_some("uploading");
    match transfer::send(&mut client, &request, source, size, progress)? {
        Payload::Volume(volid) => super::print_volume(&volid, "uploaded", format),
        other => Err(cli::unexpected(&other)),
    }
}
