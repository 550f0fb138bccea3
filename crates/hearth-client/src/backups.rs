//! The backup and restore commands vmctl and ctctl share (`vmctl backup`, `ctctl restore`),
//! and the vzdump options storectl's `backup run` and `backup job` take too.

use anyhow::Context;
use clap::{Arg, ArgMatches, Command};
use hearth_core::GuestKind;
use hearth_proto::{BackupGuest, BackupOptions, CtRequest, Request, RestoreGuest, VmRequest};

use crate::cli::{self, OutputFormat};

fn get_flag(matches: &ArgMatches, name: &str) -> Option<bool> {
    matches.try_get_one::<bool>(name).ok().flatten().copied()
}

fn string(matches: &ArgMatches, name: &str) -> Option<String> {
    matches.try_get_one::<String>(name).ok().flatten().cloned()
}

/// vzdump's options: `--storage --mode --compress --notes-template --protected --prune-backups
/// --bwlimit`.
pub fn option_args() -> Vec<Arg> {
    vec![
        Arg::new("storage")
            .long("storage")
            .value_name("STORAGE")
            .help("Storage holding backup content (default: the first such storage)"),
        Arg::new("mode")
            .long("mode")
            .value_name("MODE")
            .value_parser(["snapshot", "suspend", "stop"])
            .help("snapshot (live; default), suspend (paused or frozen while read) or stop"),
        Arg::new("compress").long("compress").value_name("zstd").value_parser(["zstd", "1"]).help("Compression: zstd"),
        Arg::new("notes-template")
            .long("notes-template")
            .value_name("TEMPLATE")
            .help("Notes for the backup; {{guestname}}, {{vmid}}, {{node}}, {{cluster}} are replaced"),
        cli::flag_arg("protected", "Protect the backup from pruning and removal"),
        Arg::new("prune-backups")
            .long("prune-backups")
            .value_name("KEEP")
            .help("Prune the guest's backups afterwards: keep-last=3,keep-daily=7,..."),
        Arg::new("bwlimit")
            .long("bwlimit")
            .value_name("KiB/s")
            .value_parser(clap::value_parser!(u64))
            .help("Read the guest's disks or files at most this fast, in KiB/s (0: no limit)"),
    ]
}

/// The options given to [`option_args`].
pub fn options(matches: &ArgMatches) -> BackupOptions {
    BackupOptions {
        storage: string(matches, "storage"),
        mode: string(matches, "mode"),
        compress: string(matches, "compress"),
        notes_template: string(matches, "notes-template"),
        protected: get_flag(matches, "protected").unwrap_or(false),
        prune_backups: string(matches, "prune-backups"),
        bwlimit: matches.try_get_one::<u64>("bwlimit").ok().flatten().copied().filter(|&l| l > 0),
    }
}

fn noun(kind: GuestKind) -> &'static str {
    match kind {
        GuestKind::Vm => "virtual machine",
        GuestKind::Ct => "container",
    }
}

/// `vmctl backup <vmid>`, `ctctl backup <ctid>`.
pub fn backup_command(kind: GuestKind) -> Command {
    let (id, archive) = match kind {
        GuestKind::Vm => ("vmid", "vzdump-qemu-<vmid>-YYYY_MM_DD-HH_MM_SS.vma.zst"),
        GuestKind::Ct => ("ctid", "vzdump-lxc-<ctid>-YYYY_MM_DD-HH_MM_SS.tar.zst"),
    };
    Command::new("backup")
        .about(format!("Back up a {} to an archive on a storage", noun(kind)))
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
            noun(kind)
        ))
        .arg(cli::vmid_arg(id, "The guest to back up"))
        .args(option_args())
}

pub fn run_backup(kind: GuestKind, bin: &str, matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let id = if kind == GuestKind::Vm { "vmid" } else { "ctid" };
    let vmid = cli::required_vmid(matches, id)?;
    let req = BackupGuest { vmid, options: options(matches) };
    let request = match kind {
        GuestKind::Vm => Request::Vm(VmRequest::Backup(req)),
        GuestKind::Ct => Request::Ct(CtRequest::Backup(req)),
    };
    let mut client = cli::connect(bin)?;
    cli::run_task(&mut client, &request, format).with_context(|| format!("backing up {vmid}"))?;
    Ok(())
}

/// `vmctl restore <vmid> <archive>`, `ctctl restore <ctid> <archive>`.
pub fn restore_command(kind: GuestKind) -> Command {
    let id = if kind == GuestKind::Vm { "vmid" } else { "ctid" };
    let mut command = Command::new("restore")
        .about(format!("Restore a {} from a backup archive", noun(kind)))
        .long_about(format!(
            "Restore a {} from a backup volume (STORAGE:backup/vzdump-... archives, or \
             STORE:backup/vm|ct/<id>/<time> in a chunkstore), as qmrestore and pct restore do: to \
             a new id, or with --force over an existing {} that is stopped (its old \
             volumes are freed once the restore succeeded). Volumes are allocated on --storage, or \
             else on the storage each came from. A failed restore frees what it allocated and \
             leaves an existing guest as it was. Needs VM.Allocate on /vms/<{id}>, Datastore.Audit \
             on the archive's storage and Datastore.AllocateSpace on --storage. Runs as a task \
             (qmrestore, vzrestore) whose log is printed.",
            noun(kind),
            noun(kind)
        ))
        .arg(cli::vmid_arg(id, "The id to restore to"))
        .arg(Arg::new("archive").value_name("ARCHIVE").required(true).help("The backup volume id"))
        .arg(Arg::new("storage").long("storage").value_name("STORAGE").help("Storage for the restored volumes"))
        .arg(cli::flag_arg("force", "Overwrite an existing, stopped guest"));
    if kind == GuestKind::Ct {
        command =
            command.arg(cli::flag_arg("unprivileged", "Restore as an unprivileged (1) or privileged (0) container"));
    }
    command
}

pub fn run_restore(kind: GuestKind, bin: &str, matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let id = if kind == GuestKind::Vm { "vmid" } else { "ctid" };
    let vmid = cli::required_vmid(matches, id)?;
    let archive = string(matches, "archive").context("missing <archive>")?;
    let req = RestoreGuest {
        vmid,
        archive: archive.clone(),
        storage: string(matches, "storage"),
        force: get_flag(matches, "force").unwrap_or(false),
        unprivileged: get_flag(matches, "unprivileged"),
    };
    let request = match kind {
        GuestKind::Vm => Request::Vm(VmRequest::Restore(req)),
        GuestKind::Ct => Request::Ct(CtRequest::Restore(req)),
    };
    let mut client = cli::connect(bin)?;
    cli::run_task(&mut client, &request, format).with_context(|| format!("restoring {archive} to {vmid}"))?;
    Ok(())
}
