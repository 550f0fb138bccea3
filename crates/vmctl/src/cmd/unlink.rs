//! `vmctl unlink`: remove disks from a VM's configuration, as `qm disk unlink`.

use anyhow::Context;
use clap::{Arg, ArgAction, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Payload, Request, VmRequest};

pub fn command() -> Command {
    Command::new("unlink")
        .about("Remove disks from a virtual machine's configuration")
        .long_about(
            "Remove the disks named by --idlist from a virtual machine's configuration, as qm \
             disk unlink (qm unlink) does. Needs VM.Config.Disk on /vms/<vmid>.\n\n\
             Each disk's volume is kept as the lowest free unusedN; with --force it is freed \
             instead, if the VM owns it (a template's base image or another guest's volume is \
             only left alone). An unusedN in the list is always freed. CD-ROMs, ISO files and \
             volumes a snapshot still uses only lose their key. Refused while the VM is locked, \
             and for attached disks while it runs (hot-unplug is not supported yet). Prints \
             nothing on success in text mode; JSON output is {\"digest\": \"<new digest>\"}.",
        )
        .arg(cli::vmid_arg("vmid", "The VM whose disks to remove"))
        .arg(
            Arg::new("idlist")
                .long("idlist")
                .value_name("KEYS")
                .required(true)
                .action(ArgAction::Append)
                .help("Disk keys, separated by commas: scsi1,virtio2,unused0"),
        )
        .arg(cli::flag_arg("force", "Free the volumes instead of keeping them as unusedN"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let idlist = cli::key_list(matches, "idlist");
    let force = matches.try_get_one::<bool>("force").ok().flatten().copied().unwrap_or(false);
    let mut client = cli::connect(crate::BIN)?;
    let request = Request::Vm(VmRequest::Unlink { vmid, idlist: idlist.clone(), force });
    match client.call(&request).with_context(|| format!("unlinking {} from VM {vmid}", idlist.join(", ")))? {
        Payload::Digest(digest) if format.is_json() => {
            cli::print_json(&serde_json::json!({ "digest": digest }), format)
        }
        Payload::Digest(_) => Ok(()),
        other => Err(cli::unexpected(&other)),
    }
}
