//! `vmctl disk`: a VM's disks one at a time, as `qm disk` (import, move, resize, unlink).

pub mod import;

use anyhow::bail;
use clap::{ArgMatches, Command};
use hearth_client::cli::OutputFormat;

pub fn command() -> Command {
    Command::new("disk")
        .about("Import, move, resize and unlink disks of a virtual machine")
        .long_about(
            "Work on one disk of a virtual machine at a time, as qm disk does. `disk move`, \
             `disk resize` and `disk unlink` are also available as `move-disk`, `resize` and \
             `unlink`.",
        )
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommands([
            import::command(),
            super::move_disk::disk_command(),
            super::resize::command(),
            super::unlink::command(),
        ])
}

pub fn run(matches: &ArgMatches) -> anyhow::Result<()> {
    let Some((name, sub)) = matches.subcommand() else { bail!("no disk command given; see `vmctl disk --help`") };
    let format = OutputFormat::from_matches(sub);
    match name {
        "import" => import::run(sub, format),
        "move" => super::move_disk::run(sub, format),
        "resize" => super::resize::run(sub, format),
        "unlink" => super::unlink::run(sub, format),
        other => bail!("unknown disk command '{other}'"),
    }
}
