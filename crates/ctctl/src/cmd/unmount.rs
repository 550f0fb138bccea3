//! `ctctl unmount`: undo `ctctl mount`, as `pct unmount`.

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{CtRequest, Request};

pub fn command() -> Command {
    Command::new("unmount")
        .about("Unmount the volumes of a container from the host")
        .long_about(
            "Unmount what `ctctl mount` mounted on the host and remove the lock 'mounted', as \
             pct unmount does, so the container can start again. ctctl asks hearthd, which \
             allows this to root only. Prints nothing on success.",
        )
        .arg(cli::vmid_arg("ctid", "The container to unmount"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "ctid")?;
    cli::run_request(crate::BIN, &Request::Ct(CtRequest::Unmount { vmid }), format, || format!("unmounting CT {vmid}"))
}
