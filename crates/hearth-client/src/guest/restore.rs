//! `vmctl restore`, `ctctl restore`: restore a guest from a backup archive, as qmrestore and
//! pct restore do.

use anyhow::Context;
use clap::{Arg, ArgMatches, Command};
use hearth_core::GuestKind;
use hearth_proto::{CtRequest, RestoreGuest, VmRequest};

use crate::backups::string;
use crate::cli::{self, OutputFormat};

/// `vmctl restore <vmid> <archive>`, `ctctl restore <ctid> <archive>`.
pub fn command(kind: GuestKind) -> Command {
    let n = super::names(kind);
    let id = n.id;
    let mut command = Command::new("restore")
        .about(format!("Restore a {} from a backup archive", n.noun))
        .long_about(format!(
            "Restore a {} from a backup volume (STORAGE:backup/vzdump-... archives, or \
             STORE:backup/vm|ct/<id>/<time> in a chunkstore), as qmrestore and pct restore do: to \
             a new id, or with --force over an existing {} that is stopped (its old \
             volumes are freed once the restore succeeded). Volumes are allocated on --storage, or \
             else on the storage each came from. A failed restore frees what it allocated and \
             leaves an existing guest as it was. Needs VM.Allocate on /vms/<{id}>, Datastore.Audit \
             on the archive's storage and Datastore.AllocateSpace on --storage. Runs as a task \
             (qmrestore, vzrestore) whose log is printed.",
            n.noun, n.noun
        ))
        .arg(super::id_arg(kind, "The id to restore to".to_owned()))
        .arg(Arg::new("archive").value_name("ARCHIVE").required(true).help("The backup volume id"))
        .arg(Arg::new("storage").long("storage").value_name("STORAGE").help("Storage for the restored volumes"))
        .arg(cli::flag_arg("force", "Overwrite an existing, stopped guest"));
    if kind == GuestKind::Ct {
        command =
            command.arg(cli::flag_arg("unprivileged", "Restore as an unprivileged (1) or privileged (0) container"));
    }
    command
}

pub fn run(kind: GuestKind, bin: &str, matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = super::id(kind, matches)?;
    let archive = string(matches, "archive").context("missing <archive>")?;
    let restore = RestoreGuest {
        vmid,
        archive: archive.clone(),
        storage: string(matches, "storage"),
        force: cli::flag(matches, "force"),
        unprivileged: cli::flag_value(matches, "unprivileged"),
    };
    let request = super::request(kind, restore, VmRequest::Restore, CtRequest::Restore);
    let mut client = cli::connect(bin)?;
    cli::run_task(&mut client, &request, format).with_context(|| format!("restoring {archive} to {vmid}"))?;
    Ok(())
}
