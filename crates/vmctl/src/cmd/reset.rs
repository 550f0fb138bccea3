//! `vmctl reset`: press the VM's reset button, as `qm reset`.

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Request, VmRequest};

pub fn command() -> Command {
    Command::new("reset")
        .about("Reset a virtual machine")
        .long_about(
            "Reset a running virtual machine, as qm reset does: like its reset button, the guest \
             restarts at once without shutting down (QEMU's system_reset). Needs VM.PowerMgmt on \
             /vms/<vmid>; a locked VM is refused unless --skiplock (root@pam only). Runs as a \
             task (type qmreset) whose log vmctl prints; the exit status is the task's.",
        )
        .arg(cli::vmid_arg("vmid", "The VM to reset"))
        .arg(cli::flag_arg("skiplock", "Ignore the VM's lock (root@pam only)"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let request = Request::Vm(VmRequest::Reset { vmid, skiplock: cli::flag(matches, "skiplock") });
    cli::run_request(crate::BIN, &request, format, || format!("resetting VM {vmid}"))
}
