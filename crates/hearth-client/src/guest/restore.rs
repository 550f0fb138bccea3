//! `vmctl restore`, `ctctl restore`: restore a guest from a backup archive, as qmrestore and
//! pct restore do.

use anyhow::Context;
use clap::{Arg, ArgMatches, Command};
use hearth_core::GuestKind;
use std::os::fd::AsFd;

use hearth_proto::{CtRequest, Payload, RestoreGuest, VmRequest};

use crate::backups::string;
use crate::cli::{self, OutputFormat};

/// `vmctl restore <vmid> <archive>` (or qmrestore's `<archive> <vmid>`), `ctctl restore <ctid>
/// <archive>`.
pub fn command(kind: GuestKind) -> Command {
    let n = super::names(kind);
    let id = n.id;
    let mut command = Command::new("restore")
        .about(format!("Restore a {} from a backup archive", n.noun))
        .long_about(format!(
            "Restore a {} from a backup volume (STORAGE:backup/vzdump-... archives, or \
             STORE:backup/vm|ct/<id>/<time> in a chunkstore), as qmrestore and pct restore do: to \
             a new id, or with --force over an existing {} that is stopped (its old \
             volumes are freed once the restore succeeded). The id and the archive may come in \
             either order (qmrestore's is ARCHIVE VMID): the id is the one that is all digits. \
             The archive may also be a file path: a file inside a storage is that storage's \
             volume (with the same rights), any other host path is root@pam's; - reads the \
             archive from standard input (`storectl vzdump 101 --stdout | ctctl restore 300 -`). \
             Volumes are allocated on --storage, or else on the storage each came from. A failed \
             restore frees what it allocated and leaves an existing guest as it was. Needs \
             VM.Allocate on /vms/<{id}>, Datastore.Audit on the archive's storage and \
             Datastore.AllocateSpace on --storage. Runs as a task (qmrestore, vzrestore) whose \
             log is printed.",
            n.noun, n.noun
        ))
        .arg(
            Arg::new("first")
                .value_name(id.to_uppercase())
                .required(true)
                .help("The id to restore to (all digits), or the archive when the id comes second"),
        )
        .arg(
            Arg::new("second")
                .value_name("ARCHIVE")
                .required(true)
                .help("The backup: a volume id, a file path, or - for standard input"),
        )
        .arg(Arg::new("storage").long("storage").value_name("STORAGE").help("Storage for the restored volumes"))
        .arg(cli::flag_arg("force", "Overwrite an existing, stopped guest"))
        .arg(
            Arg::new("bwlimit")
                .long("bwlimit")
                .value_name("KiB/s")
                .value_parser(clap::value_parser!(u64))
                .help("Write at most this fast (default: the storage's bwlimit restore=; 0: no limit)"),
        );
    if kind == GuestKind::Ct {
        command = command
            .arg(cli::flag_arg("unprivileged", "Restore as an unprivileged (1) or privileged (0) container"))
            .arg(
                Arg::new("rootfs")
                    .long("rootfs")
                    .value_name("[STORAGE:]SIZE")
                    .help("A new root file system: STORAGE:SIZE_GiB, or SIZE_GiB on --storage"),
            );
    }
    command
}

/// Which of two positionals is the guest id and which the archive: the id is all digits, so
/// qmrestore's `ARCHIVE VMID` and Hearth's `VMID ARCHIVE` both work.
pub fn id_and_archive(first: &str, second: &str) -> anyhow::Result<(hearth_core::Vmid, String)> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (id, archive) = match (digits(first), digits(second)) {
        (true, false) => (first, second),
        (false, true) => (second, first),
        _ => anyhow::bail!(
            "give the guest id (all digits) and the archive (a volume id, a path or -), in either order; \
             got '{first}' and '{second}'"
        ),
    };
    let vmid = id.parse().map_err(|e| anyhow::anyhow!("{id}: {e}"))?;
    Ok((vmid, archive_argument(archive)?))
}

/// An archive as hearthd takes it: a volume id or `-` as typed, a path made absolute (hearthd
/// maps paths inside a storage to their volume ids).
pub fn archive_argument(archive: &str) -> anyhow::Result<String> {
    if archive == RestoreGuest::STDIN || !looks_like_path(archive) {
        return Ok(archive.to_owned());
    }
    let absolute = std::path::absolute(archive).with_context(|| format!("cannot resolve the path {archive}"))?;
    absolute.into_os_string().into_string().map_err(|_| anyhow::anyhow!("{archive}: the path is not UTF-8"))
}

/// A file path rather than a volume id: it starts with `/` or `.`, or names no storage.
pub fn looks_like_path(text: &str) -> bool {
    text.starts_with('/') || text.starts_with('.') || !text.contains(':')
}

pub fn run(kind: GuestKind, bin: &str, matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let first = string(matches, "first").context("missing the id")?;
    let second = string(matches, "second").context("missing <archive>")?;
    let (vmid, archive) = id_and_archive(&first, &second)?;
    let restore = RestoreGuest {
        vmid,
        archive: archive.clone(),
        storage: string(matches, "storage"),
        force: cli::flag(matches, "force"),
        unprivileged: cli::flag_value(matches, "unprivileged"),
        rootfs: string(matches, "rootfs"),
        bwlimit: matches.try_get_one::<u64>("bwlimit").ok().flatten().copied(),
    };
    let request = super::request(kind, restore, VmRequest::Restore, CtRequest::Restore);
    let mut client = cli::connect(bin)?;
    let context = || format!("restoring {archive} to {vmid}");
    if archive == RestoreGuest::STDIN {
        // The backup streams from standard input: hearthd reads the descriptor itself.
        let stdin = std::io::stdin().as_fd().try_clone_to_owned().context("duplicating standard input")?;
        return match client.call_with_file(&request, stdin).with_context(context)? {
            Payload::Task(upid) => cli::follow_task(&mut client, &upid, format).with_context(context).map(drop),
            other => Err(cli::unexpected(&other)),
        };
    }
    cli::run_task(&mut client, &request, format).with_context(context)?;
    Ok(())
}
