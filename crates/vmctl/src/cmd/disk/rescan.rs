//! `vmctl disk rescan`: disk sizes as the storages report them, and volumes of a VM that its
//! configuration does not name as `unusedN`, as `qm disk rescan`.

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Payload, Request, VmRequest};

pub fn command() -> Command {
    Command::new("rescan")
        .about("Update disk sizes and add volumes a VM's configuration does not name")
        .long_about(
            "Bring the size= of the VM's disks (of every VM without --vmid) up to what the \
             storages report, and look on every storage of this node for volumes of the VM that \
             its configuration does not name, adding each as the lowest free unusedN, as qm disk \
             rescan does; --dryrun only says what would change. With \
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
