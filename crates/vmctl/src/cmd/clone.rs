//! `vmctl clone`: copy a VM to a new id, linked from a template or full, as `qm clone`.

use anyhow::Context;
use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_core::GuestKind;
use hearth_core::schema::check;
use hearth_proto::{CloneGuest, Request, VmRequest};

pub fn command() -> Command {
    Command::new("clone")
        .about("Clone a virtual machine")
        .long_about(
            "Create a new virtual machine <newid> as a copy of <vmid>, as qm clone does. Needs \
             VM.Clone on /vms/<vmid> and VM.Allocate on /vms/<newid>.\n\n\
             A template is cloned linked by default: each disk of the clone is a thin overlay \
             on the template's base image (a qcow2 backing file on dir storage, a writable \
             snapshot on btrfs), made at once whatever its size, on the template's storage. Any \
             other VM is cloned full: every disk is copied, which needs the VM stopped. --full \
             copies a template's disks too; --full 0 is refused for a VM that is not a template. \
             --target puts the copies of a full clone on another storage (qm calls this \
             --storage, which is accepted too; qm's --target names a cluster node).\n\n\
             The clone gets the current configuration of <vmid> without its snapshots, template \
             flag or name (set one with --name), and new MAC addresses. <newid> is reserved and \
             locked while the disks are copied; if the clone fails, nothing of it remains. Runs \
             as a task (type qmclone) whose log vmctl prints; the exit status is the task's.",
        )
        .arg(cli::vmid_arg("vmid", "The VM or template to clone"))
        .arg(cli::vmid_arg("newid", "The id of the new VM (see `vmctl nextid`)"))
        .arg(cli::flag_arg("full", "Copy the disks (default: linked for a template, full otherwise)"))
        .arg(
            Arg::new("name")
                .long("name")
                .value_name("NAME")
                .value_parser(|s: &str| {
                    GuestKind::Vm.schema().parse_cli("name", s).map(|_| s.to_owned()).map_err(|e| e.message)
                })
                .help("The name of the new VM (a DNS name)"),
        )
        .arg(
            Arg::new("target")
                .long("target")
                .visible_alias("storage")
                .value_name("STORAGE")
                .value_parser(check::storage_id)
                .help("Storage for the copied disks (full clones only; default: each disk's own)"),
        )
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let newid = cli::required_vmid(matches, "newid")?;
    let request = Request::Vm(VmRequest::Clone(CloneGuest {
        vmid,
        newid,
        full: matches.try_get_one::<bool>("full").ok().flatten().copied(),
        name: matches.get_one::<String>("name").cloned(),
        target: matches.get_one::<String>("target").cloned(),
    }));
    let mut client = cli::connect(crate::BIN)?;
    cli::run_task(&mut client, &request, format).with_context(|| format!("cloning VM {vmid} to {newid}"))?;
    Ok(())
}
