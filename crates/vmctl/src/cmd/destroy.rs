//! `vmctl destroy`: remove a VM and its disks, as `qm destroy`.

use anyhow::Context;
use clap::{Arg, ArgAction, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{DestroyGuest, Request, VmRequest};

pub fn command() -> Command {
    Command::new("destroy")
        .about("Destroy a virtual machine")
        .long_about(
            "Destroy a virtual machine: remove its configuration, as qm destroy does. hearthd \
             refuses while the VM is locked or has protection set. \
             Runs as a task (type qmdestroy) whose log \
             vmctl prints.",
        )
        .arg(cli::vmid_arg("vmid", "The VM to destroy"))
        .arg(
            Arg::new("purge")
                .long("purge")
                .action(ArgAction::SetTrue)
                .help("Also remove the VM from backup jobs and other references"),
        )
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let mut client = cli::connect(crate::BIN)?;
    let request = Request::Vm(VmRequest::Destroy(DestroyGuest { vmid, purge: matches.get_flag("purge") }));
    cli::run_task(&mut client, &request, format).with_context(|| format!("destroying VM {vmid}"))?;
    Ok(())
}
