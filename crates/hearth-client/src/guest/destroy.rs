//! `vmctl destroy`, `ctctl destroy`: remove a guest and its volumes, as `qm destroy` and
//! `pct destroy`.

use anyhow::Context;
use clap::{ArgMatches, Command};
use hearth_core::GuestKind;
use hearth_proto::{CtRequest, DestroyGuest, VmRequest};

use crate::cli::{self, OutputFormat};

pub fn command(kind: GuestKind) -> Command {
    let n = super::names(kind);
    Command::new("destroy")
        .about(format!("Destroy a {}", n.noun))
        .long_about(format!(
            "Destroy a {}: remove its configuration, as {} destroy does. hearthd refuses while \
             the {} is locked or has protection set. Runs as a task (type {}) whose log {} \
             prints.",
            n.noun,
            n.tool,
            n.guest,
            kind.task_type("destroy"),
            n.bin
        ))
        .arg(super::id_arg(kind, format!("The {} to destroy", n.guest)))
        .arg(cli::flag_arg("purge", format!("Also remove the {} from backup jobs and other references", n.guest)))
        .arg(cli::flag_arg(
            "destroy-unreferenced-disks",
            format!(
                "Also free volumes named for the {} on every enabled storage that its configuration does \
                 not reference (default 1)",
                n.guest
            ),
        ))
        .arg(cli::flag_arg("skiplock", "Destroy even if the guest is locked (root@pam only)"))
}

pub fn run(kind: GuestKind, bin: &str, matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = super::id(kind, matches)?;
    let destroy = DestroyGuest {
        vmid,
        purge: cli::flag(matches, "purge"),
        destroy_unreferenced_disks: cli::flag_value(matches, "destroy-unreferenced-disks"),
        skiplock: cli::flag(matches, "skiplock"),
    };
    let request = super::request(kind, destroy, VmRequest::Destroy, CtRequest::Destroy);
    let mut client = cli::connect(bin)?;
    cli::run_task(&mut client, &request, format).with_context(|| format!("destroying {} {vmid}", kind.noun()))?;
    Ok(())
}
