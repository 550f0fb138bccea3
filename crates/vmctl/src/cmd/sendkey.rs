//! `vmctl sendkey`: press keys on a VM's keyboard, as `qm sendkey`.

use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Request, VmRequest};

pub fn command() -> Command {
    Command::new("sendkey")
        .about("Send keys to a virtual machine")
        .long_about(
            "Press keys together on a running virtual machine's keyboard and let them go, as qm \
             sendkey does: QEMU's key names joined by '-', such as ctrl-alt-delete, ctrl-alt-f1, \
             ret or shift-a, or scancodes such as 0x1c. Needs VM.Console on /vms/<vmid>; a \
             locked VM is refused unless --skiplock (root@pam only).",
        )
        .arg(cli::vmid_arg("vmid", "The VM to send the keys to"))
        .arg(Arg::new("key").value_name("KEY").required(true).help("The keys, such as ctrl-alt-delete"))
        .arg(cli::flag_arg("skiplock", "Ignore the VM's lock (root@pam only)"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let key = matches.get_one::<String>("key").cloned().unwrap_or_default();
    let request = Request::Vm(VmRequest::SendKey { vmid, key: key.clone(), skiplock: cli::flag(matches, "skiplock") });
    cli::run_request(crate::BIN, &request, format, || format!("sending '{key}' to VM {vmid}"))
}
