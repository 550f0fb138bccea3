//! `vmctl shutdown`: power a VM off through ACPI, as `qm shutdown`.

use anyhow::Context;
use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Request, VmRequest};

pub fn command() -> Command {
    Command::new("shutdown")
        .about("Shut a virtual machine down cleanly")
        .long_about(
            "Shut a virtual machine down cleanly, as qm shutdown does: hearthd presses the \
             ACPI power button and waits until the guest has powered off. Needs VM.PowerMgmt \
             on /vms/<vmid>.\n\n\
             A guest that does not react (no ACPI support, hung) is left running and the task \
             fails after --timeout seconds (default 180), unless --forceStop 1 is given: then \
             the VM is stopped as `vmctl stop` does. Refused if the VM is not running. Runs as a \
             task (type qmshutdown) whose log vmctl prints; the exit status is the task's.",
        )
        .arg(cli::vmid_arg("vmid", "The VM to shut down"))
        .arg(super::timeout_arg("Seconds to wait for the guest to power off (default 180)"))
        .arg(
            cli::flag_arg(
                "forceStop",
                "Stop the VM if it has not powered off when the timeout ends (also --force-stop)",
            )
            .alias("force-stop"),
        )
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let force_stop = matches.try_get_one::<bool>("forceStop").ok().flatten().copied().unwrap_or(false);
    let mut client = cli::connect(crate::BIN)?;
    let request = Request::Vm(VmRequest::Shutdown { vmid, timeout: super::timeout(matches), force_stop });
    cli::run_task(&mut client, &request, format).with_context(|| format!("shutting down VM {vmid}"))?;
    Ok(())
}
