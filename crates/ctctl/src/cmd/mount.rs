//! `ctctl mount`: mount a stopped container's volumes on the host, as `pct mount`.

use anyhow::Context;
use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{CtRequest, Payload, Request};

pub fn command() -> Command {
    Command::new("mount")
        .about("Mount the volumes of a container on the host")
        .long_about(
            "Mount the root file system and mount points of a stopped container on the host, as \
             pct mount does, and print where (text) or {\"path\": \"<path>\"} (JSON), for \
             repairs from outside. ctctl asks hearthd, which allows this to root only.\n\n\
             The container gets the lock 'mounted', which keeps it from starting until `ctctl \
             unmount` undoes the mount.",
        )
        .arg(cli::vmid_arg("ctid", "The container to mount"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "ctid")?;
    let mut client = cli::connect(crate::BIN)?;
    match client.call(&Request::Ct(CtRequest::Mount { vmid })).with_context(|| format!("mounting CT {vmid}"))? {
        Payload::Path(path) if format.is_json() => cli::print_json(&serde_json::json!({ "path": path }), format),
        Payload::Path(path) => cli::print_text(&format!("mounted CT {vmid} in '{path}'\n")),
        other => Err(cli::unexpected(&other)),
    }
}
