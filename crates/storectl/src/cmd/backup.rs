//! `storectl backup run|list|prune|protect|verify|gc|ls|extract|job`: vzdump for many guests,
//! the backups on the storages, retention (pvesm prune-backups), protection, chunk store
//! verification and garbage collection, file-level restore from container backups, and
//! scheduled jobs.

use anyhow::{Context, bail};
use clap::{Arg, ArgMatches, Command};
use hearth_client::backups;
use hearth_client::cli::{self, Align, OutputFormat, Table};
use hearth_core::Vmid;
use hearth_proto::{BackupRun, Payload, PruneBackups, Request, StorageRequest, TaskState};

pub fn command() -> Command {
    Command::new("backup")
        .about("Back up guests, list, prune and protect backups, and schedule backup jobs")
        .subcommand_required(true)
        .subcommands([
            run_command(),
            Command::new("list")
                .about("List backup archives")
                .long_about(
                    "List the backup archives on one storage, or on every storage holding backup \
                     content that the caller may audit: volume id, guest, size, time, protection, notes.",
                )
                .arg(Arg::new("storage").long("storage").value_name("STORAGE").help("Only this storage"))
                .arg(vmid_option("Only backups of this guest")),
            Command::new("prune")
                .about("Remove backups by retention rules, as pvesm prune-backups")
                .long_about(
                    "Mark each backup keep, remove, protected or renamed by the --keep-* rules (or the \
                     storage's prune-backups without them), exactly as Proxmox computes it, and remove \
                     those marked remove unless --dry-run. Protected backups are never removed. Prints \
                     the columns Backup, Backup-ID, Prune-Mark.",
                )
                .arg(super::storage_arg())
                .arg(vmid_option("Only backups of this guest"))
                .arg(Arg::new("type").long("type").value_name("TYPE").value_parser(["qemu", "lxc"]).help("Guest type"))
                .args(
                    ["keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly"].map(|k| {
                        Arg::new(k).long(k).value_name("N").value_parser(clap::value_parser!(u64)).help("Keep N")
                    }),
                )
                .arg(cli::flag_arg("keep-all", "Keep every backup"))
                .arg(cli::flag_arg("dry-run", "Only show what would be removed")),
            Command::new("protect")
                .about("Protect a backup from pruning and removal")
                .arg(super::volid_arg("The backup volume"))
                .arg(Arg::new("off").long("off").action(clap::ArgAction::SetTrue).help("Lift the protection")),
            Command::new("verify")
                .about("Verify chunk store backups")
                .long_about(
                    "Re-read every chunk of one backup (a chunk store volume id) or of every backup in a \
                     chunkstore storage, check its checksum and digest, and move bad chunks aside so the \
                     next backup of the same data writes them again. One line per backup; exit status 1 \
                     when any backup is bad.",
                )
                .arg(
                    Arg::new("target")
                        .value_name("VOLID|STORAGE")
                        .required(true)
                        .help("A backup (store:backup/vm/100/<time>) or a chunkstore storage"),
                ),
            Command::new("gc")
                .about("Remove chunks no backup references (chunk stores)")
                .long_about(
                    "Garbage collection of a chunkstore storage: mark every chunk a backup references, then \
                     remove chunks unused for more than a day (backups running at the same time are safe). \
                     Run it after prune to free space.",
                )
                .arg(super::storage_arg()),
            Command::new("ls")
                .about("List files in a container backup (chunk stores)")
                .arg(super::volid_arg("The container backup"))
                .arg(Arg::new("path").value_name("PATH").default_value("/").help("Directory inside the backup")),
            Command::new("extract")
                .about("Restore files from a container backup (chunk stores)")
                .long_about(
                    "Write the files under PATH of a container backup in a chunk store as a tar stream to \
                     standard output (owners, modes, xattrs and links kept), or with --to DIR unpack them \
                     into DIR with your own rights (tar runs as you, not as hearthd).",
                )
                .arg(super::volid_arg("The container backup"))
                .arg(Arg::new("path").value_name("PATH").required(true).help("File or directory inside the backup"))
                .arg(Arg::new("to").long("to").value_name("DIR").help("Unpack into this directory")),
            super::backup_job::command(),
        ])
}

fn vmid_option(help: &'static str) -> Arg {
    Arg::new("vmid").long("vmid").value_name("VMID").value_parser(|s: &str| s.parse::<Vmid>()).help(help)
}

fn id_list(text: &str) -> Result<Vec<Vmid>, String> {
    text.split(',').filter(|s| !s.is_empty()).map(|s| s.trim().parse::<Vmid>().map_err(|e| e.to_string())).collect()
}

/// `--vmid 100,101 | --all [--exclude]` and the vzdump options.
pub fn selection_args() -> Vec<Arg> {
    let mut args = vec![
        Arg::new("vmid").long("vmid").value_name("VMIDS").value_parser(id_list).help("Guests: 100,101"),
        cli::flag_arg("all", "Every guest of the node"),
        Arg::new("exclude")
            .long("exclude")
            .value_name("VMIDS")
            .value_parser(id_list)
            .help("Leave these out (implies --all)"),
    ];
    args.extend(backups::option_args());
    args
}

pub fn selection(matches: &ArgMatches) -> BackupRun {
    BackupRun {
        vmids: matches.try_get_one::<Vec<Vmid>>("vmid").ok().flatten().cloned().unwrap_or_default(),
        all: cli::flag(matches, "all"),
        exclude: matches.try_get_one::<Vec<Vmid>>("exclude").ok().flatten().cloned().unwrap_or_default(),
        options: backups::options(matches),
        pool: None,
    }
}

fn run_command() -> Command {
    Command::new("run")
        .about("Back up several guests, as vzdump")
        .long_about(
            "Back up the guests named by --vmid (or --all but --exclude) one after the other in one \
             task (vzdump), each as vmctl backup or ctctl backup would. The log has one summary line \
             per guest ('<vmid>: ok <volid>', '<vmid>: skipped: <reason>', '<vmid>: failed: <reason>'); \
             a guest locked by another operation is skipped and the others go on. Without a terminal \
             there is no progress bar, so the output suits cron mail. Exit status 1 when any guest \
             failed or was skipped.",
        )
        .args(selection_args())
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let Some((name, sub)) = matches.subcommand() else { bail!("no backup command given") };
    match name {
        "run" => {
            let req = selection(sub);
            if req.vmids.is_empty() && !req.all && req.exclude.is_empty() {
                bail!("name the guests with --vmid 100,101 or use --all");
            }
            let mut client = cli::connect(crate::BIN)?;
            cli::run_task(&mut client, &Request::Storage(StorageRequest::BackupRun(req)), format)?;
            Ok(())
        }
        "list" => list(sub, format),
        "prune" => prune(sub, format),
        "protect" => {
            let volid = super::string(sub, "volid");
            let request = Request::Storage(StorageRequest::BackupProtect {
                volid: volid.clone(),
                protected: !sub.get_flag("off"),
            });
            cli::connect(crate::BIN)?.call(&request).with_context(|| format!("protecting {volid}"))?;
            Ok(())
        }
        "verify" => {
            let target = super::string(sub, "target");
            let mut client = cli::connect(crate::BIN)?;
            cli::run_task(&mut client, &Request::Storage(StorageRequest::BackupVerify { target }), format)?;
            Ok(())
        }
        "gc" => {
            let storage = super::string(sub, "storage");
            let mut client = cli::connect(crate::BIN)?;
            cli::run_task(&mut client, &Request::Storage(StorageRequest::BackupGc { storage }), format)?;
            Ok(())
        }
        "ls" => ls(sub, format),
        "extract" => extract(sub),
        "job" => super::backup_job::run(sub, format),
        other => bail!("unknown backup command '{other}'"),
    }
}

fn list(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let request = Request::Storage(StorageRequest::BackupList {
        storage: matches.get_one::<String>("storage").cloned(),
        vmid: cli::get_vmid(matches, "vmid"),
    });
    let entries = match cli::connect(crate::BIN)?.call(&request)? {
        Payload::Backups(b) => b,
        other => return Err(cli::unexpected(&other)),
    };
    if format.is_json() {
        return cli::print_json(&entries, format);
    }
    let mut table = Table::new(&[
        ("Volid", Align::Left),
        ("VMID", Align::Right),
        ("Size", Align::Right),
        ("Time", Align::Left),
        ("Protected", Align::Left),
        ("Notes", Align::Left),
    ]);
    for e in &entries {
        // A damaged backup says so where its notes would be, so it is never taken for a whole one.
        let notes = match &e.damaged {
            Some(why) => format!("DAMAGED: {why}"),
            None => e.notes.as_deref().unwrap_or_default().lines().next().unwrap_or_default().to_owned(),
        };
        table.row(vec![
            e.volid.clone(),
            e.vmid.map(|v| v.to_string()).unwrap_or_default(),
            e.size.to_string(),
            cli::format_utc(e.ctime),
            if e.protected { "1".into() } else { String::new() },
            notes,
        ]);
    }
    table.print()
}

fn prune(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let mut keep = Vec::new();
    if matches.try_get_one::<bool>("keep-all").ok().flatten().copied().unwrap_or(false) {
        keep.push("keep-all=1".to_owned());
    }
    for k in ["keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly"] {
        if let Some(n) = matches.get_one::<u64>(k) {
            keep.push(format!("{k}={n}"));
        }
    }
    let request = Request::Storage(StorageRequest::BackupPrune(PruneBackups {
        storage: super::string(matches, "storage"),
        vmid: cli::get_vmid(matches, "vmid"),
        guest_type: matches.get_one::<String>("type").cloned(),
        keep: keep.join(","),
        dry_run: matches.try_get_one::<bool>("dry-run").ok().flatten().copied().unwrap_or(false),
    }));
    let entries = match cli::connect(crate::BIN)?.call(&request)? {
        Payload::Pruned(p) => p,
        other => return Err(cli::unexpected(&other)),
    };
    if format.is_json() {
        return cli::print_json(&entries, format);
    }
    let mut table = Table::new(&[("Backup", Align::Left), ("Backup-ID", Align::Left), ("Prune-Mark", Align::Left)]);
    for e in &entries {
        table.row(vec![e.volid.clone(), e.guest.clone(), e.mark.clone()]);
    }
    table.print()
}

/// Whether a finished task failed (for run-due's exit status).
pub fn failed(state: &TaskState) -> bool {
    matches!(state, TaskState::Error { .. } | TaskState::Unknown)
}

fn ls(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let request = Request::Storage(StorageRequest::BackupLs {
        volid: super::string(matches, "volid"),
        path: super::string(matches, "path"),
    });
    let files = match cli::connect(crate::BIN)?.call(&request)? {
        Payload::BackupFiles(f) => f,
        other => return Err(cli::unexpected(&other)),
    };
    if format.is_json() {
        return cli::print_json(&files, format);
    }
    let mut table = Table::new(&[
        ("Type", Align::Left),
        ("Mode", Align::Right),
        ("UID", Align::Right),
        ("GID", Align::Right),
        ("Size", Align::Right),
        ("Modified", Align::Left),
        ("Path", Align::Left),
    ]);
    for f in &files {
        let path = match &f.link {
            Some(target) if f.kind == "l" => format!("{} -> {target}", f.path),
            Some(target) if f.kind == "h" => format!("{} link to /{target}", f.path),
            _ => f.path.clone(),
        };
        table.row(vec![
            f.kind.clone(),
            format!("{:04o}", f.mode & 0o7777),
            f.uid.to_string(),
            f.gid.to_string(),
            f.size.to_string(),
            cli::format_utc(f.mtime),
            path,
        ]);
    }
    table.print()
}

/// Asks hearthd for the tar stream of the files and writes it to stdout, or unpacks it with
/// tar running as the caller.
fn extract(matches: &ArgMatches) -> anyhow::Result<()> {
    use std::io::{IsTerminal, Write};
    use std::os::fd::AsFd;
    let volid = super::string(matches, "volid");
    let request =
        Request::Storage(StorageRequest::BackupExtract { volid: volid.clone(), path: super::string(matches, "path") });
    let mut client = cli::connect(crate::BIN)?;
    let Some(dir) = matches.get_one::<String>("to") else {
        if std::io::stdout().is_terminal() {
            bail!("refusing to write a tar stream to a terminal; redirect standard output or use --to DIR");
        }
        std::io::stdout().flush()?;
        let target = std::io::stdout().as_fd().try_clone_to_owned().context("duplicating standard output")?;
        client.call_with_file(&request, target).with_context(|| format!("extracting from {volid}"))?;
        return Ok(());
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {dir}"))?;
    let mut tar = std::process::Command::new("tar")
        .args(["--extract", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "-f", "-", "-C"])
        .arg(dir)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .context("cannot run tar")?;
    let stdin = tar.stdin.take().context("tar's standard input")?;
    let answer = client.call_with_file(&request, std::os::fd::OwnedFd::from(stdin));
    let status = tar.wait().context("waiting for tar")?;
    answer.with_context(|| format!("extracting from {volid}"))?;
    if !status.success() {
        bail!("tar could not unpack into {dir} ({status})");
    }
    Ok(())
}
