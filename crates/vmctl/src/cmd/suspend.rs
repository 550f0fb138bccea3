//! `vmctl suspend`: pause a VM's CPUs, or with `--todisk` save its RAM and stop it, as
//! `qm suspend`.

use anyhow::Context;
use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Request, VmRequest};

pub fn command() -> Command {
    Command::new("suspend")
        .about("Pause a virtual machine, or suspend it to disk")
        .long_about(
            "Pause a running virtual machine, as qm suspend does: its CPUs stop and its memory \
             stays in QEMU, so `vmctl resume` continues exactly where it was. `vmctl status \
             --verbose` shows qmpstatus: paused meanwhile. Needs VM.PowerMgmt on /vms/<vmid>.\n\n\
             With --todisk the VM's RAM is saved to a new volume vm-<vmid>-state-suspend-<date> \
             on --statestorage (default: the VM's vmstatestorage, else the storage of its first \
             disk, else local; needs Datastore.AllocateSpace there), QEMU stops, and the VM \
             stays locked 'suspended' with vmstate naming the volume. `vmctl start` or `vmctl \
             resume` then resumes it where it was and removes the volume.\n\n\
             Refused if the VM is not running. Runs as a task (type qmsuspend) whose log vmctl \
             prints; the exit status is the task's.",
        )
        .arg(cli::vmid_arg("vmid", "The VM to pause"))
        .arg(cli::flag_arg("todisk", "Save the RAM to a volume and stop QEMU (hibernate)"))
        .arg(
            Arg::new("statestorage")
                .long("statestorage")
                .value_name("STORAGE")
                .value_parser(hearth_core::schema::check::storage_id)
                .help("Storage for the RAM state of --todisk"),
        )
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let todisk = cli::flag(matches, "todisk");
    let statestorage = matches.get_one::<String>("statestorage").cloned();
    if statestorage.is_some() && !todisk {
        anyhow::bail!("--statestorage needs --todisk");
    }
    let mut client = cli::connect(crate::BIN)?;
    let request = Request::Vm(VmRequest::Suspend { vmid, todisk, statestorage });
    cli::run_task(&mut client, &request, format).with_context(|| format!("suspending VM {vmid}"))?;
    Ok(())
}
