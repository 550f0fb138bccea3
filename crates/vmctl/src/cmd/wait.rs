//! `vmctl wait`: wait until a VM has stopped, as `qm wait` (`qm shutdown 300 && qm wait 300`).

use std::time::{Duration, Instant};

use anyhow::bail;
use clap::{Arg, ArgMatches, Command, value_parser};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Payload, Request, VmRequest};

/// How often the VM's state is asked.
const POLL: Duration = Duration::from_millis(200);

pub fn command() -> Command {
    Command::new("wait")
        .about("Wait until a virtual machine has stopped")
        .long_about(
            "Wait until the virtual machine is stopped, as qm wait does: returns at once if it is \
             not running, else when it has stopped (powered off, shut down or stopped by someone \
             else). With --timeout it gives up after that many seconds with 'wait failed - got \
             timeout' and exit status 1. Needs VM.Audit on /vms/<vmid>.",
        )
        .arg(cli::vmid_arg("vmid", "The VM to wait for"))
        .arg(
            Arg::new("timeout")
                .long("timeout")
                .value_name("SECONDS")
                .value_parser(value_parser!(u64).range(1..))
                .help("Give up after this many seconds [default: wait for ever]"),
        )
}

/// The VM's pid, or `None` when it is stopped.
fn running_pid(client: &mut hearth_client::Client, request: &Request) -> anyhow::Result<Option<u32>> {
    match client.call(request)? {
        Payload::VmStatus(report) => Ok((report.status == "running").then_some(report.pid.unwrap_or(0))),
        other => Err(cli::unexpected(&other)),
    }
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let timeout = matches.get_one::<u64>("timeout").map(|s| Duration::from_secs(*s));
    let mut client = cli::connect(crate::BIN)?;
    let request = Request::Vm(VmRequest::Status { vmid, verbose: false });
    let Some(pid) = running_pid(&mut client, &request)? else { return Ok(()) };
    if !format.is_json() {
        cli::print_text(&format!("waiting until VM {vmid} stops (PID {pid})\n"))?;
    }
    let start = Instant::now();
    loop {
        std::thread::sleep(POLL);
        if running_pid(&mut client, &request)?.is_none() {
            return Ok(());
        }
        if timeout.is_some_and(|t| start.elapsed() >= t) {
            bail!("wait failed - got timeout");
        }
    }
}
