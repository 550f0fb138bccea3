//! `storectl vzdump [VMID...]`: vzdump's command line in front of `storectl backup run` (the
//! same request and engine): guest ids as arguments, `--dumpdir`, `--stdout`,
//! `--exclude-path`, `--fleecing`, `--mailto`, and vzdump's other options where Hearth can
//! honour them. Proxmox options Hearth cannot honour are refused by name, never ignored.

use std::os::fd::AsFd;

use anyhow::{Context, bail};
use clap::{Arg, ArgAction, ArgMatches, Command};
use hearth_client::cli::{self, LogTo, OutputFormat};
use hearth_core::Vmid;
use hearth_proto::{Payload, Request, StorageRequest};

/// vzdump's default `stdexcludes`: temporary files and pid files of the container.
const STD_EXCLUDES: [&str; 3] = ["/tmp/?*", "/var/tmp/?*", "/var/run/?*.pid"];

/// Proxmox's vzdump options that Hearth does not offer, and why.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("ionice", "hearthd does not change the I/O priority of a backup"),
    ("lockwait", "a guest locked by another operation is skipped at once"),
    ("tmpdir", "temporary files go beside the archive, or to the --fleecing storage"),
    ("script", "use a guest hookscript"),
    ("notification-policy", "use --mailnotification always|failure"),
    ("notification-target", "use --mailto"),
    ("performance", "Hearth has no tunable backup workers"),
    ("pbs-change-detection-mode", "there is no Proxmox Backup Server storage"),
    ("stop", "stop a running backup with `clusterctl task stop <upid>`"),
    ("job-id", "run a job with `storectl backup job run <id>`"),
    ("maxfiles", "use --prune-backups keep-last=N"),
    ("pigz", "archives are compressed with zstd (--zstd N for threads)"),
];

fn id_list(text: &str) -> Result<Vec<Vmid>, String> {
    text.split([',', ' ']).filter(|s| !s.is_empty()).map(|s| s.parse::<Vmid>().map_err(|e| e.to_string())).collect()
}

pub fn command() -> Command {
    let mut command = Command::new("vzdump")
        .about("Back up guests, as vzdump")
        .long_about(
            "Back up the guests given as arguments (or --all but --exclude), as vzdump does: the \
             same engine as `storectl backup run`, with vzdump's command line. The archive goes \
             to --storage (default: the first storage holding backup content), to --dumpdir DIR \
             (a host directory; root@pam only), or with --stdout to standard output (one guest; \
             the log then goes to standard error), e.g. `storectl vzdump 101 --stdout | ctctl \
             restore --rootfs 4 300 -`. --exclude-path PATTERN (repeatable) leaves files of \
             containers out: a leading / anchors it at the container's root, anything else \
             matches at any depth; --stdexcludes (default 1) leaves out /tmp/?*, /var/tmp/?* and \
             /var/run/?*.pid. --fleecing enabled=1,storage=S puts a running VM's \
             copy-before-write images (snapshot mode) on storage S. --mailto ADDR (repeatable) \
             mails the log through the host's sendmail when the run ends (--mailnotification \
             failure: only when it failed). After each backup the guest's backups on the storage \
             are pruned by --prune-backups, else by the storage's prune-backups; --remove 0 \
             never prunes. Options of Proxmox's \
             vzdump that Hearth cannot honour are refused by name.",
        )
        .arg(
            Arg::new("vmids")
                .value_name("VMID")
                .num_args(0..)
                .action(ArgAction::Append)
                .value_parser(id_list)
                .help("The guests to back up"),
        )
        .args(super::backup::selection_args())
        .arg(
            Arg::new("dumpdir")
                .long("dumpdir")
                .value_name("DIR")
                .conflicts_with("storage")
                .help("Write the archives into this host directory (root@pam only)"),
        )
        .arg(cli::flag_arg("stdout", "Write the archive to standard output (one guest)"))
        .arg(
            Arg::new("exclude-path")
                .long("exclude-path")
                .value_name("PATTERN")
                .action(ArgAction::Append)
                .help("Containers: leave out what matches (/ anchors at the container's root)"),
        )
        .arg(cli::flag_arg("stdexcludes", "Leave out /tmp/?*, /var/tmp/?* and /var/run/?*.pid (default 1)"))
        .arg(
            Arg::new("fleecing")
                .long("fleecing")
                .value_name("enabled=1,storage=S")
                .help("Copy-before-write images of a running VM on storage S (snapshot mode)"),
        )
        .arg(
            Arg::new("mailto")
                .long("mailto")
                .value_name("ADDRESS")
                .action(ArgAction::Append)
                .help("Mail the log to this address when the run ends (repeatable, or a list)"),
        )
        .arg(
            Arg::new("mailnotification")
                .long("mailnotification")
                .value_name("WHEN")
                .value_parser(["always", "failure"])
                .help("Mail always (default) or only on failure"),
        )
        .arg(cli::flag_arg("remove", "Prune by --prune-backups or the storage's after the backup (default 1)"))
        .arg(
            Arg::new("zstd")
                .long("zstd")
                .value_name("THREADS")
                .value_parser(clap::value_parser!(u32))
                .help("zstd threads (0: half the cores; default 1)"),
        )
        .arg(
            Arg::new("stopwait")
                .long("stopwait")
                .value_name("MINUTES")
                .value_parser(clap::value_parser!(u64))
                .help("How long stop mode waits for a guest to shut down (default 10)"),
        )
        .arg(
            Arg::new("node")
                .long("node")
                .value_name("NODE")
                .help("Only run if this is the node (no guests are backed up otherwise)"),
        )
        .arg(cli::flag_arg("quiet", "Print nothing but errors"))
        .arg(Arg::new("pool").long("pool").value_name("POOL").help("Every guest of this pool"))
        .arg(
            Arg::new("notification-mode")
                .long("notification-mode")
                .value_name("MODE")
                .value_parser(["auto", "legacy-sendmail"])
                .help("auto or legacy-sendmail: --mailto goes through sendmail (there is no notification system)"),
        );
    for (name, _) in UNSUPPORTED {
        command = command.arg(
            Arg::new(*name).long(*name).value_name("VALUE").num_args(0..=1).hide(true).help("Not supported by Hearth"),
        );
    }
    command
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    if let Some((name, why)) = UNSUPPORTED.iter().find(|(name, _)| matches.contains_id(name) && present(matches, name))
    {
        bail!("--{name} is a vzdump option Hearth does not support: {why}");
    }
    let mut req = super::backup::selection(matches);
    for ids in matches.get_many::<Vec<Vmid>>("vmids").into_iter().flatten() {
        req.vmids.extend(ids.iter().copied());
    }
    req.pool = matches.get_one::<String>("pool").cloned();
    if req.vmids.is_empty() && !req.all && req.exclude.is_empty() && req.pool.is_none() {
        bail!("name the guests (storectl vzdump 100 101), or use --all or --pool");
    }
    let options = &mut req.options;
    options.dumpdir = match matches.get_one::<String>("dumpdir") {
        Some(dir) => Some(
            std::path::absolute(dir)
                .with_context(|| format!("cannot resolve {dir}"))?
                .into_os_string()
                .into_string()
                .map_err(|_| anyhow::anyhow!("{dir}: the path is not UTF-8"))?,
        ),
        None => None,
    };
    options.stdout = cli::flag(matches, "stdout");
    options.exclude_path = matches.get_many::<String>("exclude-path").into_iter().flatten().cloned().collect();
    if cli::flag_value(matches, "stdexcludes").unwrap_or(true) {
        options.exclude_path.extend(STD_EXCLUDES.map(str::to_owned));
    }
    options.fleecing = matches.get_one::<String>("fleecing").cloned();
    options.mailto = matches
        .get_many::<String>("mailto")
        .into_iter()
        .flatten()
        .flat_map(|list| list.split([',', ';', ' ']).filter(|a| !a.is_empty()).map(str::to_owned).collect::<Vec<_>>())
        .collect();
    options.mailnotification = matches.get_one::<String>("mailnotification").cloned();
    options.remove = cli::flag_value(matches, "remove");
    options.zstd = matches.get_one::<u32>("zstd").copied();
    options.stopwait = matches.get_one::<u64>("stopwait").copied();
    let quiet = cli::flag(matches, "quiet");
    let stdout = options.stdout;

    let mut client = cli::connect(crate::BIN)?;
    if let Some(node) = matches.get_one::<String>("node")
        && *node != client.hello().node
    {
        // vzdump: "Only run if executed on this node."
        return Ok(());
    }
    let request = Request::Storage(StorageRequest::BackupRun(req));
    let payload = if stdout {
        let out = std::io::stdout().as_fd().try_clone_to_owned().context("duplicating standard output")?;
        client.call_with_file(&request, out)?
    } else {
        client.call(&request)?
    };
    let Payload::Task(upid) = payload else { return Err(cli::unexpected(&payload)) };
    let (format, to) = match (stdout, quiet) {
        (_, true) => (OutputFormat::Text, LogTo::Nowhere),
        (true, false) => (OutputFormat::Text, LogTo::Stderr),
        (false, false) => (format, LogTo::Stdout),
    };
    cli::follow_task_to(&mut client, &upid, format, to)?;
    Ok(())
}

/// Whether an option was given on the command line (not a default).
fn present(matches: &ArgMatches, name: &str) -> bool {
    matches.value_source(name) == Some(clap::parser::ValueSource::CommandLine)
}
