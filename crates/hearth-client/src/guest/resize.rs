//! `vmctl resize`, `ctctl resize`: grow a disk of a VM, or a volume of a container and its file
//! system, as `qm resize` and `pct resize`.

use anyhow::Context;
use clap::{Arg, ArgMatches, Command};
use hearth_core::{GuestKind, size};
use hearth_proto::{CtRequest, Payload, VmRequest};

use crate::cli::{self, OutputFormat};

/// The unit hearthd gives a bare number; the syntax check must agree with it.
const DEFAULT_UNIT: u64 = 1 << 30;

pub fn command(kind: GuestKind) -> Command {
    let n = super::names(kind);
    let disk = Arg::new("disk").value_name("DISK").required(true);
    let (about, long_about, disk, what) = match kind {
        GuestKind::Vm => (
            "Grow a disk of a virtual machine",
            "Grow a disk of a virtual machine, as qm resize (qm disk resize) does. Needs \
             VM.Config.Disk on /vms/<vmid>.\n\n\
             <size> is the new size, or with a leading + the amount to add: 64G, +10G, 1.5T, \
             +512M. K, M, G and T are binary units (KiB, MiB, ...); give one always, as a bare \
             number means GiB to hearthd but bytes to qm. Shrinking is refused. The disk of a \
             running VM grows through QEMU, so the guest sees the new size at once; growing the \
             partitions and file systems inside is left to the guest. The size= of the disk in \
             the configuration is updated too. Prints nothing on success in text mode; JSON \
             output is {\"digest\": \"<new digest>\"}.",
            disk.help("The disk key: scsi0, virtio1, sata0, ide2, ..."),
            "disk",
        ),
        GuestKind::Ct => (
            "Grow a volume of a container",
            "Grow a volume of a container and the file system on it, as pct resize does. ctctl \
             asks hearthd, which needs VM.Config.Disk on /vms/<ctid> from the caller.\n\n\
             <disk> is rootfs or mpN. <size> is the new size, or with a leading + the amount to \
             add: 10G, +2G, 1.5T, +512M. K, M, G and T are binary units (KiB, MiB, ...); a bare \
             number means GiB. Shrinking is refused, and so is a locked container. The size= of \
             the volume in the configuration is updated too. Prints the task's log if hearthd \
             runs it as a task, else nothing in text mode; JSON output is then \
             {\"digest\": \"<new digest>\"}.",
            disk.value_parser(check_ct_volume).help("The volume: rootfs or mp0 to mp255"),
            "volume",
        ),
    };
    Command::new("resize")
        .about(about)
        .long_about(long_about)
        .arg(super::id_arg(kind, format!("The {} whose {what} to grow", n.guest)))
        .arg(disk)
        .arg(
            Arg::new("size")
                .value_name("SIZE")
                .required(true)
                .value_parser(check_size)
                .help("The new size, or +SIZE to add: [+]<number>[KMGT]"),
        )
}

/// `rootfs` or `mp0`..`mp255`.
fn check_ct_volume(text: &str) -> Result<String, String> {
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

/// Prints what hearthd answers: the log of a task if it runs one, else the new digest (JSON).
pub fn run(kind: GuestKind, bin: &str, matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = super::id(kind, matches)?;
    let disk = matches.get_one::<String>("disk").cloned().context("missing <disk>")?;
    let size = matches.get_one::<String>("size").cloned().context("missing <size>")?;
    let what = || format!("resizing {disk} of {} {vmid}", kind.noun());
    let request = super::request(
        kind,
        (disk.clone(), size),
        |(disk, size)| VmRequest::Resize { vmid, disk, size },
        |(disk, size)| CtRequest::Resize { vmid, disk, size },
    );
    let mut client = cli::connect(bin)?;
    match client.call(&request).with_context(what)? {
        Payload::Task(upid) => cli::follow_task(&mut client, &upid, format).with_context(what).map(drop),
        Payload::Digest(digest) => super::set::print_digest(&digest, format),
        Payload::Empty => Ok(()),
        other => Err(cli::unexpected(&other)),
    }
}
