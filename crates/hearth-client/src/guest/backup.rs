//! `vmctl backup`, `ctctl backup`: back a guest up into a vzdump-style archive, as vzdump does.

use anyhow::Context;
use clap::{ArgMatches, Command};
use hearth_core::GuestKind;
use hearth_proto::{BackupGuest, CtRequest, VmRequest};

use crate::backups::options;
use crate::cli::{self, OutputFormat};

/// `vmctl backup <vmid>`, `ctctl backup <ctid>`.
pub fn command(kind: GuestKind) -> Command {
    let n = super::names(kind);
    let id = n.id;
    let archive = match kind {
        GuestKind::Vm => "vzdump-qemu-<vmid>-YYYY_MM_DD-HH_MM_SS.vma.zst",
        GuestKind::Ct => "vzdump-lxc-<ctid>-YYYY_MM_DD-HH_MM_SS.tar.zst",
    };
    Command::new("backup")
        .about(format!("Back up a {} to an archive on a storage", n.noun))
        .long_about(format!(
            "Back up a {} into {archive} under the dump directory of a storage holding backup \
             content, as vzdump does, with a .log beside it (and .notes with --notes-template). The \
             configuration travels inside the archive. The archive is written under a temporary \
             name and renamed when complete; a failed backup leaves nothing. The guest is locked \
             'backup' meanwhile; a guest locked by another operation is refused. Modes: snapshot \
             (a running VM keeps running while QEMU copies its disks as of the start; a running \
             container on btrfs subvolumes keeps running while read-only snapshots of its volumes \
             are archived, other containers are frozen instead), suspend (the VM is paused, the \
             container frozen, while read), stop (shut down, backed up, started again). A \
             container's mount points with backup=1 are archived under their path. --bwlimit \
             throttles reading (KiB/s). Needs VM.Backup on /vms/<{id}> and Datastore.AllocateSpace on the storage. \
             Runs as a task (vzdump) whose log is printed.",
            n.noun
        ))
        .arg(super::id_arg(kind, "The guest to back up".to_owned()))
        .args(crate::backups::option_args())
}

pub fn run(kind: GuestKind, bin: &str, matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = super::id(kind, matches)?;
    let backup = BackupGuest { vmid, options: options(matches) };
    let request = super::request(kind, backup, VmRequest::Backup, CtRequest::Backup);
    let mut client = cli::connect(bin)?;
    cli::run_task(&mut client, &request, format).with_context(|| format!("backing up {vmid}"))?;
    Ok(())
}
