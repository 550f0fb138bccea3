//! `ctctl move-volume`: copy a stopped container's rootfs or mount point volume to another
//! storage, as `pct move-volume`.

use anyhow::Context;
use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_core::schema::check;
use hearth_proto::{CtRequest, MoveDisk, Request};

/// `rootfs` or `mp0`..`mp255`.
fn volume_key(s: &str) -> Result<String, String> {
    let mp = s.strip_prefix("mp").is_some_and(|n| n.parse::<u32>().is_ok_and(|i| i <= 255 && i.to_string() == n));
    if s == "rootfs" || mp {
        Ok(s.to_owned())
    } else {
        Err(format!("'{s}' is not a container volume; give rootfs or mpN"))
    }
}

pub fn command() -> Command {
    Command::new("move-volume")
        .visible_alias("move_volume")
        .about("Move a container volume to another storage")
        .long_about(
            "Copy the rootfs or a mount point (mpN) volume of a stopped container to <storage> \
             and use the copy from then on, as pct move-volume does. The copy keeps its kind (an \
             ext4 image stays an image, a directory a directory, copied with owners and \
             attributes) and the volume's other options (size=, mount point, ...). The old \
             volume is kept as unusedN, or freed with --delete. Refused while the container \
             runs, is locked, or has snapshots of the volume. Needs VM.Config.Disk on \
             /vms/<ctid> and Datastore.AllocateSpace on the target storage. Runs as a task (type \
             move_volume) whose log ctctl prints.",
        )
        .arg(cli::vmid_arg("ctid", "The container"))
        .arg(Arg::new("volume").value_name("VOLUME").required(true).value_parser(volume_key).help("rootfs or mpN"))
        .arg(
            Arg::new("storage")
                .value_name("STORAGE")
                .required(true)
                .value_parser(check::storage_id)
                .help("The storage to move the volume to"),
        )
        .arg(cli::flag_arg("delete", "Free the old volume instead of keeping it as unusedN"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "ctid")?;
    let volume = matches.get_one::<String>("volume").cloned().context("missing <volume>")?;
    let storage = matches.get_one::<String>("storage").cloned().context("missing <storage>")?;
    let request = Request::Ct(CtRequest::MoveVolume(MoveDisk {
        vmid,
        disk: volume.clone(),
        storage: storage.clone(),
        format: None,
        delete: cli::flag(matches, "delete"),
        target_vmid: None,
        target_disk: None,
        bwlimit: None,
    }));
    cli::run_request(crate::BIN, &request, format, || format!("moving {volume} of CT {vmid} to storage '{storage}'"))
}
