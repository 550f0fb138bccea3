//! `vmctl listsnapshot`, `ctctl listsnapshot`: a guest's snapshots as a tree, as
//! `qm listsnapshot` and `pct listsnapshot`.

use anyhow::Context;
use clap::{ArgMatches, Command};
use hearth_core::GuestKind;
use hearth_proto::{CtRequest, Payload, VmRequest};

use crate::cli::{self, OutputFormat};
use crate::snapshots;

pub fn command(kind: GuestKind) -> Command {
    let n = super::names(kind);
    Command::new("listsnapshot")
        .about(format!("List the snapshots of a {}", n.noun))
        .long_about(format!(
            "List the snapshots of a {noun} as a tree, as {tool} listsnapshot does. Needs \
             VM.Audit on /vms/<{id}>.\n\n\
             Each line is '`-> <name>  <time>  <description>': the time the snapshot was taken \
             (YYYY-MM-DD HH:MM:SS in UTC, where {tool} uses local time) and the first line of its \
             description ('no-description' if it has none). A snapshot taken while another was \
             the parent of the current state hangs under that one, indented by one more space; \
             siblings are sorted by time. 'current' is the state the {guest} is in now ('You are \
             here!'), listed under the snapshot it comes from. JSON output is the list of \
             snapshots with name, parent, snaptime (Unix seconds) and description, 'current' \
             last.",
            noun = n.noun,
            tool = n.tool,
            id = n.id,
            guest = n.guest,
        ))
        .arg(super::id_arg(kind, format!("The {} whose snapshots to list", n.guest)))
}

pub fn run(kind: GuestKind, bin: &str, matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = super::id(kind, matches)?;
    let request =
        super::request(kind, vmid, |vmid| VmRequest::ListSnapshot { vmid }, |vmid| CtRequest::ListSnapshot { vmid });
    let mut client = cli::connect(bin)?;
    match client.call(&request).with_context(|| format!("listing the snapshots of {} {vmid}", kind.noun()))? {
        Payload::Snapshots(list) if format.is_json() => cli::print_json(&list, format),
        Payload::Snapshots(list) => cli::print_text(&snapshots::render_tree(&list)),
        other => Err(cli::unexpected(&other)),
    }
}
