//! `vmctl disk rescan`: volumes of a VM that its configuration does not name become `unusedN`,
//! as `qm disk rescan`.

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Payload, Request, VmRequest};

pub fn command() -> Command {
    Command::new("rescan")
        .about("Add volumes a VM's configuration does not name as unused disks")
        .long_about(
            "Look on every storage of this node for volumes of the VM (of every VM without \
             --vmid) that its configuration does not name, and add each as the lowest free \
             unusedN, as qm disk rescan does; --dryrun only says what would be added. With \
             --vmid it needs VM.Config.Disk on /vms/<vmid>; without, root@pam. A locked VM is \
             skipped.",
        )
        .arg(cli::vmid_arg("vmid", "Only this VM").long("vmid").required(false))
        .arg(cli::flag_arg("dryrun", "Only say what would be added"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let request =
        Request::Vm(VmRequest::Rescan { vmid: cli::get_vmid(matches, "vmid"), dryrun: cli::flag(matches, "dryrun") });
    let mut client = cli::connect(crate::BIN)?;
    match client.call(&request)? {
        Payload::Text(text) if format.is_json() => cli::print_json(&text.lines().collect::<Vec<_>>(), format),
        Payload::Text(text) => cli::print_text(&text),
        other => Err(cli::unexpected(&other)),
    }
}
