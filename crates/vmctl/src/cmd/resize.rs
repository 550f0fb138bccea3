//! `vmctl resize`: grow a VM's disk, as `qm resize` (`qm disk resize`).

use anyhow::Context;
use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_core::size;
use hearth_proto::{Payload, Request, VmRequest};

/// The unit hearthd gives a bare number; the syntax check must agree with it.
const DEFAULT_UNIT: u64 = 1 << 30;

pub fn command() -> Command {
    Command::new("resize")
        .about("Grow a disk of a virtual machine")
        .long_about(
            "Grow a disk of a virtual machine, as qm resize (qm disk resize) does. Needs \
             VM.Config.Disk on /vms/<vmid>.\n\n\
             <size> is the new size, or with a leading + the amount to add: 64G, +10G, 1.5T, \
             +512M. K, M, G and T are binary units (KiB, MiB, ...); give one always, as a bare \
             number means GiB to hearthd but bytes to qm. Shrinking is refused. The disk of a \
             running VM grows through QEMU, so the guest sees the new size at once; growing the \
             partitions and file systems inside is left to the guest. The size= of the disk in \
             the configuration is updated too. Prints nothing on success in text mode; JSON \
             output is {\"digest\": \"<new digest>\"}.",
        )
        .arg(cli::vmid_arg("vmid", "The VM whose disk to grow"))
        .arg(Arg::new("disk").value_name("DISK").required(true).help("The disk key: scsi0, virtio1, sata0, ide2, ..."))
        .arg(
            Arg::new("size")
                .value_name("SIZE")
                .required(true)
                .value_parser(check_size)
                .help("The new size, or +SIZE to add: [+]<number>[KMGT]"),
        )
}

/// Checks `[+]<number>[KMGT]` and keeps the text as typed, for hearthd to interpret.
fn check_size(text: &str) -> Result<String, String> {
    let amount = text.strip_prefix('+').unwrap_or(text);
    size::parse_size(amount, DEFAULT_UNIT).map(|_| text.to_owned())
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let disk = matches.get_one::<String>("disk").cloned().context("missing <disk>")?;
    let size = matches.get_one::<String>("size").cloned().context("missing <size>")?;
    let mut client = cli::connect(crate::BIN)?;
    let request = Request::Vm(VmRequest::Resize { vmid, disk: disk.clone(), size });
    match client.call(&request).with_context(|| format!("resizing {disk} of VM {vmid}"))? {
        Payload::Digest(digest) if format.is_json() => {
            cli::print_json(&serde_json::json!({ "digest": digest }), format)
        }
        Payload::Digest(_) => Ok(()),
        other => Err(cli::unexpected(&other)),
    }
}
