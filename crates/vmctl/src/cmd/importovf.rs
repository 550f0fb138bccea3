//! `vmctl importovf`: a VM from an OVF manifest and the disk files beside it, as
//! `qm importovf`.

use anyhow::Context;
use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_core::schema::check;
use hearth_proto::{Payload, Request, VmRequest};

pub fn command() -> Command {
    Command::new("importovf")
        .about("Create a virtual machine from an OVF manifest (root only)")
        .long_about(
            "Create a virtual machine from an OVF manifest, as qm importovf does: its name, \
             memory and cores come from the manifest, and each disk file named there (beside the \
             manifest; raw, qcow2 or vmdk) is imported to <storage>, in --format if given, at \
             the bus slot the manifest gives it (scsiN, ideN, sataN). --dryrun prints what was \
             read as JSON instead and changes nothing. Only root@pam may use it: the manifest is \
             a file of the host. Runs as a task (type qmimport); a failure leaves no VM behind.",
        )
        .arg(cli::vmid_arg("vmid", "The new VM's id"))
        .arg(Arg::new("manifest").value_name("MANIFEST").required(true).help("The .ovf file"))
        .arg(
            Arg::new("storage")
                .value_name("STORAGE")
                .required(true)
                .value_parser(check::storage_id)
                .help("The storage for the disks"),
        )
        .arg(
            Arg::new("format")
                .long("format")
                .value_name("FORMAT")
                .value_parser(["raw", "qcow2", "vmdk"])
                .help("Format of the imported disks (default: the storage's)"),
        )
        .arg(cli::flag_arg("dryrun", "Print what the manifest describes, change nothing"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let manifest = matches.get_one::<String>("manifest").cloned().context("missing <manifest>")?;
    // hearthd resolves nothing relative to its own directory: the path goes as the caller means it.
    let manifest =
        std::path::absolute(&manifest).with_context(|| format!("resolving {manifest}"))?.to_string_lossy().into_owned();
    let request = Request::Vm(VmRequest::ImportOvf {
        vmid,
        manifest: manifest.clone(),
        storage: matches.get_one::<String>("storage").cloned().context("missing <storage>")?,
        format: matches.get_one::<String>("format").cloned(),
        dryrun: cli::flag(matches, "dryrun"),
    });
    let mut client = cli::connect(crate::BIN)?;
    match client.call(&request).with_context(|| format!("importing {manifest} as VM {vmid}"))? {
        Payload::Text(text) => {
            let value: serde_json::Value = serde_json::from_str(&text).context("hearthd's answer is not JSON")?;
            let format = if format == OutputFormat::Json { format } else { OutputFormat::JsonPretty };
            cli::print_json(&value, format)
        }
        Payload::Task(upid) => {
            cli::follow_task(&mut client, &upid, format).with_context(|| format!("importing {manifest}"))?;
            Ok(())
        }
        other => Err(cli::unexpected(&other)),
    }
}
