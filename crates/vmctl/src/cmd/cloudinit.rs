//! `vmctl cloudinit`: the cloud-init drive of a VM, as `qm cloudinit` (dump, pending, update).

use anyhow::Context;
use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat, Subcommand};
use hearth_proto::{Payload, Request, VmRequest};

/// The cloudinit subcommands, in the order of the help.
pub(crate) const COMMANDS: &[Subcommand] = &[
    Subcommand::new("dump", dump_command, dump),
    Subcommand::new("pending", pending_command, pending),
    Subcommand::new("update", update_command, update),
];

pub fn command() -> Command {
    Command::new("cloudinit")
        .about("Show and regenerate the cloud-init drive of a virtual machine")
        .long_about(
            "Work with the cloud-init drive of a virtual machine, as qm cloudinit does. The drive \
             (`--ide2 <storage>:cloudinit`) is an ISO image written from the VM's cloud-init keys \
             (ciuser, cipassword, sshkeys, ipconfigN, nameserver, searchdomain, citype, ciupgrade, \
             cicustom) at every start.",
        )
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommands(cli::subcommands(COMMANDS))
}

pub fn run(matches: &ArgMatches, _format: OutputFormat) -> anyhow::Result<()> {
    cli::dispatch(COMMANDS, "vmctl cloudinit", matches)
}

fn dump_command() -> Command {
    Command::new("dump")
        .about("Print the generated cloud-init configuration")
        .long_about(
            "Print the cloud-init configuration generated from the VM's keys: `user` (user-data), \
             `network` (network-config, or the configdrive2 network data) or `meta` (meta-data). \
             Snippets named by cicustom are not read: this is what they would replace, a base for \
             writing one. The password shows as ********** unless the caller has \
             VM.Config.Cloudinit. Needs VM.Audit on /vms/<vmid>.",
        )
        .arg(cli::vmid_arg("vmid", "The VM"))
        .arg(
            Arg::new("type")
                .required(true)
                .value_parser(["user", "network", "meta"])
                .help("Which configuration to print"),
        )
}

fn dump(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let config_type = matches.get_one::<String>("type").cloned().unwrap_or_default();
    let mut client = cli::connect(crate::BIN)?;
    let request = Request::Vm(VmRequest::CloudinitDump { vmid, config_type });
    match client.call(&request).with_context(|| format!("reading the cloud-init configuration of VM {vmid}"))? {
        // JSON output is the text as one string, as the API returns it.
        Payload::Text(text) if format.is_json() => cli::print_json(&text, format),
        Payload::Text(text) => {
            print!("{text}");
            Ok(())
        }
        other => Err(cli::unexpected(&other)),
    }
}

fn pending_command() -> Command {
    Command::new("pending")
        .about("Print the cloud-init keys and their changes since the drive was written")
        .long_about(
            "Print the VM's cloud-init keys as qm cloudinit pending does: 'cur key: value' for a \
             value the drive holds, 'new key: value' for one changed since the drive was last \
             written and 'del key: value' for a key removed since. The drive is written at the \
             next start or by `vmctl cloudinit update`. Needs VM.Audit on /vms/<vmid>.",
        )
        .arg(cli::vmid_arg("vmid", "The VM"))
}

fn pending(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let mut client = cli::connect(crate::BIN)?;
    let request = Request::Vm(VmRequest::CloudinitPending { vmid });
    match client.call(&request).with_context(|| format!("reading the cloud-init keys of VM {vmid}"))? {
        Payload::Pending(items) => cli::print_pending(&items, format),
        other => Err(cli::unexpected(&other)),
    }
}

fn update_command() -> Command {
    Command::new("update")
        .about("Regenerate the cloud-init drive now")
        .long_about(
            "Write the cloud-init drive afresh from the VM's keys. On a running VM this needs \
             `cloudinit` in its hotplug setting: the CD-ROM's medium is swapped while the guest \
             runs. Needs VM.Config.Cloudinit on /vms/<vmid>. Prints nothing on success.",
        )
        .arg(cli::vmid_arg("vmid", "The VM"))
}

fn update(matches: &ArgMatches, _format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let mut client = cli::connect(crate::BIN)?;
    let request = Request::Vm(VmRequest::CloudinitUpdate { vmid });
    match client.call(&request).with_context(|| format!("regenerating the cloud-init drive of VM {vmid}"))? {
        Payload::Empty => Ok(()),
        other => Err(cli::unexpected(&other)),
    }
}
