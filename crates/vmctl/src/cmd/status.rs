//! `vmctl status`: whether a VM runs, and with `--verbose` its counters, as `qm status`.

use anyhow::Context;
use clap::{Arg, ArgAction, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Payload, Request, VmRequest, VmStatusReport};

pub fn command() -> Command {
    Command::new("status")
        .about("Show whether a virtual machine is running")
        .long_about(
            "Show the state of a virtual machine, as qm status does: 'status: running' or \
             'status: stopped'. Needs VM.Audit on /vms/<vmid>.\n\n\
             --verbose prints every field hearthd reports as key: value lines sorted by key: \
             cpus, maxmem and name from the configuration, lock if the VM is locked, and for a \
             running VM pid, uptime (seconds), qmpstatus (QEMU's own state: running, paused, \
             ...), mem (resident memory of QEMU in bytes), diskread and diskwrite (bytes over \
             all disks) and netin and netout (bytes over all NICs). JSON output is the whole \
             report, with or without --verbose.",
        )
        .arg(cli::vmid_arg("vmid", "The VM to show"))
        .arg(
            Arg::new("verbose")
                .long("verbose")
                .action(ArgAction::SetTrue)
                .help("Print all fields: counters, pid, uptime, QEMU's state"),
        )
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let verbose = matches.get_flag("verbose");
    let mut client = cli::connect(crate::BIN)?;
    let request = Request::Vm(VmRequest::Status { vmid, verbose });
    match client.call(&request).with_context(|| format!("reading the status of VM {vmid}"))? {
        Payload::VmStatus(report) if format.is_json() => cli::print_json(&report, format),
        Payload::VmStatus(report) => cli::print_text(&render(&report, verbose)?),
        other => Err(cli::unexpected(&other)),
    }
}

/// `status: <status>`, or with `verbose` every field that is set, sorted by key, as qm prints.
fn render(report: &VmStatusReport, verbose: bool) -> anyhow::Result<String> {
    if !verbose {
        return Ok(format!("status: {}\n", report.status));
    }
    // The wire form leaves out unset fields, which is exactly what qm leaves out too.
    cli::render_fields(report).context("encoding the status")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;
    use hearth_core::Vmid;

    #[test]
    fn text_like_qm_status() {
        let mut report = VmStatusReport {
            vmid: Vmid::new(100).unwrap(),
            status: "stopped".into(),
            qmpstatus: None,
            name: Some("web".into()),
            lock: None,
            pid: None,
            uptime: None,
            cpus: 2,
            maxmem: 512 << 20,
            mem: None,
            diskread: 0,
            diskwrite: 0,
            netin: 0,
            netout: 0,
        };
        assert_eq!(render(&report, false).unwrap(), "status: stopped\n");
        assert_eq!(
            render(&report, true).unwrap(),
            "cpus: 2\ndiskread: 0\ndiskwrite: 0\nmaxmem: 536870912\nname: web\nnetin: 0\nnetout: 0\n\
             status: stopped\nvmid: 100\n"
        );
        report.status = "running".into();
        report.qmpstatus = Some("paused".into());
        report.lock = Some("backup".into());
        report.pid = Some(4242);
        report.uptime = Some(17);
        report.mem = Some(1 << 20);
        report.diskread = 4096;
        assert_eq!(render(&report, false).unwrap(), "status: running\n");
        assert_eq!(
            render(&report, true).unwrap(),
            "cpus: 2\ndiskread: 4096\ndiskwrite: 0\nlock: backup\nmaxmem: 536870912\nmem: 1048576\nname: web\n\
             netin: 0\nnetout: 0\npid: 4242\nqmpstatus: paused\nstatus: running\nuptime: 17\nvmid: 100\n"
        );
    }
}
