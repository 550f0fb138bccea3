//! vzdump's options, which `vmctl backup`, `ctctl backup` ([`crate::guest::backup`]) and
//! storectl's `backup run` and `backup job` take.

use clap::{Arg, ArgMatches};
use hearth_proto::BackupOptions;

use crate::cli;

pub(crate) fn string(matches: &ArgMatches, name: &str) -> Option<String> {
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
        protected: cli::flag(matches, "protected"),
        prune_backups: string(matches, "prune-backups"),
        bwlimit: matches.try_get_one::<u64>("bwlimit").ok().flatten().copied().filter(|&l| l > 0),
        ..BackupOptions::default()
    }
}
