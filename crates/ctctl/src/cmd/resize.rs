//! `ctctl resize`: grow a container's volume and its file system, as `pct resize`.

use anyhow::Context;
use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_core::size;
use hearth_proto::{CtRequest, Payload, Request};

/// The unit hearthd gives a bare number; the syntax check must agree with it.
const DEFAULT_UNIT: u64 = 1 << 30;

pub fn command() -> Command {
    Command::new("resize")
        .about("Grow a volume of a container")
        .long_about(
            "Grow a volume of a container and the file system on it, as pct resize does. ctctl \
             asks hearthd, which needs VM.Config.Disk on /vms/<ctid> from the caller.\n\n\
             <disk> is rootfs or mpN. <size> is the new size, or with a leading + the amount to \
             add: 10G, +2G, 1.5T, +512M. K, M, G and T are binary units (KiB, MiB, ...); a bare \
             number means GiB. Shrinking is refused, and so is a locked container. The size= of \
             the volume in the configuration is updated too. Prints the task's log if hearthd \
             runs it as a task, else nothing in text mode; JSON output is then \
             {\"digest\": \"<new digest>\"}.",
        )
        .arg(cli::vmid_arg("ctid", "The container whose volume to grow"))
        .arg(
            Arg::new("disk")
                .value_name("DISK")
                .required(true)
                .value_parser(check_disk)
                .help("The volume: rootfs or mp0 to mp255"),
        )
        .arg(
            Arg::new("size")
                .value_name("SIZE")
                .required(true)
                .value_parser(check_size)
                .help("The new size, or +SIZE to add: [+]<number>[KMGT]"),
        )
}

/// `rootfs` or `mp0`..`mp255`.
fn check_disk(text: &str) -> Result<String, String> {
    let index = text.strip_prefix("mp").filter(|n| !n.starts_with('0') || *n == "0").and_then(|n| n.parse::<u8>().ok());
    if text == "rootfs" || index.is_some() {
        Ok(text.to_owned())
    } else {
        Err(format!("'{text}' is not a volume of a container: rootfs or mp0 to mp255"))
    }
}

/// Checks `[+]<number>[KMGT]` and keeps the text as typed, for hearthd to interpret.
fn check_size(text: &str) -> Result<String, String> {
    let amount = text.strip_prefix('+').unwrap_or(text);
    size::parse_size(amount, DEFAULT_UNIT).map(|_| text.to_owned())
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "ctid")?;
    let disk = super::string(matches, "disk")?;
    let size = super::string(matches, "size")?;
    let what = || format!("resizing {disk} of CT {vmid}");
    let mut client = cli::connect(crate::BIN)?;
    let request = Request::Ct(CtRequest::Resize { vmid, disk: disk.clone(), size });
    match client.call(&request).with_context(what)? {
        Payload::Task(upid) => cli::follow_task(&mut client, &upid, format).with_context(what).map(drop),
        Payload::Digest(digest) if format.is_json() => {
            cli::print_json(&serde_json::json!({ "digest": digest }), format)
        }
        Payload::Digest(_) | Payload::Empty => Ok(()),
        other => Err(cli::unexpected(&other)),
    }
}
