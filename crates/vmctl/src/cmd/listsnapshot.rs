//! `vmctl listsnapshot`: a VM's snapshots as a tree, as `qm listsnapshot`.

use anyhow::Context;
use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_client::snapshots;
use hearth_proto::{Payload, Request, VmRequest};

pub fn command() -> Command {
    Command::new("listsnapshot")
        .about("List the snapshots of a virtual machine")
        .long_about(
            "List the snapshots of a virtual machine as a tree, as qm listsnapshot does. Needs \
             VM.Audit on /vms/<vmid>.\n\n\
             Each line is '`-> <name>  <time>  <description>': the time the snapshot was taken \
             (YYYY-MM-DD HH:MM:SS in UTC, where qm uses local time) and the first line of its \
             description ('no-description' if it has none). A snapshot taken while another was \
             the parent of the current state hangs under that one, indented by one more space; \
             siblings are sorted by time. 'current' is the state the VM is in now ('You are \
             here!'), listed under the snapshot it comes from. JSON output is the list of snapshots with \
             name, parent, snaptime (Unix seconds) and description, 'current' last.",
        )
        .arg(cli::vmid_arg("vmid", "The VM whose snapshots to list"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let mut client = cli::connect(crate::BIN)?;
    let request = Request::Vm(VmRequest::ListSnapshot { vmid });
    match client.call(&request).with_context(|| format!("listing the snapshots of VM {vmid}"))? {
        Payload::Snapshots(list) if format.is_json() => cli::print_json(&list, format),
        Payload::Snapshots(list) => cli::print_text(&snapshots::render_tree(&list)),
        other => Err(cli::unexpected(&other)),
    }
}
