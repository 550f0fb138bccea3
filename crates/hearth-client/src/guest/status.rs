//! `vmctl status`, `ctctl status`: whether a guest runs, and with `--verbose` its counters,
//! as `qm status` and `pct status`.

use anyhow::Context;
use clap::{ArgMatches, Command};
use hearth_core::GuestKind;
use hearth_proto::{CtRequest, Payload, VmRequest};
use serde::Serialize;

use crate::cli::{self, OutputFormat};

pub fn command(kind: GuestKind) -> Command {
    let n = super::names(kind);
    let (long_about, verbose) = match kind {
        GuestKind::Vm => (
            "Show the state of a virtual machine, as qm status does: 'status: running' or \
             'status: stopped'. Needs VM.Audit on /vms/<vmid>.\n\n\
             --verbose prints every field hearthd reports as key: value lines sorted by key: \
             cpus, maxmem and name from the configuration, lock if the VM is locked, and for a \
             running VM pid, uptime (seconds), qmpstatus (QEMU's own state: running, paused, \
             ...), mem (resident memory of QEMU in bytes), diskread and diskwrite (bytes over \
             all disks) and netin and netout (bytes over all NICs). JSON output is the whole \
             report, with or without --verbose.",
            "Print all fields: counters, pid, uptime, QEMU's state",
        ),
        GuestKind::Ct => (
            "Show the state of a container, as pct status does: 'status: running' or 'status: \
             stopped'. ctctl asks hearthd, which needs VM.Audit on /vms/<ctid> from the \
             caller.\n\n\
             --verbose prints every field hearthd reports as key: value lines sorted by key: \
             cpus, maxmem, maxswap (bytes) and name from the configuration, lock if the \
             container is locked, last_exit (how the last run ended) when stopped, and for a \
             running container pid (its init on the host), monitor_pid, uptime (seconds), mem \
             (bytes charged to its cgroup), pids (processes), cputime (nanoseconds) and netin \
             and netout (bytes over all interfaces). JSON output is the whole report, with or \
             without --verbose.",
            "Print all fields: counters, pids, uptime, how the last run ended",
        ),
    };
    Command::new("status")
        .about(format!("Show whether a {} is running", n.noun))
        .long_about(long_about)
        .arg(super::id_arg(kind, format!("The {} to show", n.guest)))
        .arg(cli::flag_arg("verbose", verbose))
}

pub fn run(kind: GuestKind, bin: &str, matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = super::id(kind, matches)?;
    let verbose = cli::flag(matches, "verbose");
    let request = super::request(
        kind,
        vmid,
        |vmid| VmRequest::Status { vmid, verbose },
        |vmid| CtRequest::Status { vmid, verbose },
    );
    let mut client = cli::connect(bin)?;
    match client.call(&request).with_context(|| format!("reading the status of {} {vmid}", kind.noun()))? {
        Payload::VmStatus(report) => print(&report, &report.status, verbose, format),
        Payload::CtStatus(report) => print(&report, &report.status, verbose, format),
        other => Err(cli::unexpected(&other)),
    }
}

fn print(report: &impl Serialize, status: &str, verbose: bool, format: OutputFormat) -> anyhow::Result<()> {
    if format.is_json() { cli::print_json(report, format) } else { cli::print_text(&render(report, status, verbose)?) }
}

/// `status: <status>`, or with `verbose` every field that is set, sorted by key, as qm and pct
/// print.
fn render(report: &impl Serialize, status: &str, verbose: bool) -> anyhow::Result<String> {
    if !verbose {
        return Ok(format!("status: {status}\n"));
    }
    // The wire form leaves out unset fields, which is exactly what qm and pct leave out too.
    cli::render_fields(report).context("encoding the status")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;
    use hearth_core::Vmid;
    use hearth_proto::{CtStatusReport, VmStatusReport};

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
        let text = |report: &VmStatusReport, verbose| render(report, &report.status, verbose).unwrap();
        assert_eq!(text(&report, false), "status: stopped\n");
        assert_eq!(
            text(&report, true),
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
        assert_eq!(text(&report, false), "status: running\n");
        assert_eq!(
            text(&report, true),
            "cpus: 2\ndiskread: 4096\ndiskwrite: 0\nlock: backup\nmaxmem: 536870912\nmem: 1048576\nname: web\n\
             netin: 0\nnetout: 0\npid: 4242\nqmpstatus: paused\nstatus: running\nuptime: 17\nvmid: 100\n"
        );
    }

    #[test]
    fn text_like_pct_status() {
        let mut report = CtStatusReport {
            vmid: Vmid::new(200).unwrap(),
            status: "stopped".into(),
            name: Some("web".into()),
            lock: None,
            pid: None,
            monitor_pid: None,
            uptime: None,
            cpus: 2,
            maxmem: 512 << 20,
            maxswap: 512 << 20,
            mem: None,
            pids: None,
            cputime: None,
            netin: 0,
            netout: 0,
            last_exit: Some("halt".into()),
        };
        let text = |report: &CtStatusReport, verbose| render(report, &report.status, verbose).unwrap();
        assert_eq!(text(&report, false), "status: stopped\n");
        assert_eq!(
            text(&report, true),
            "cpus: 2\nlast_exit: halt\nmaxmem: 536870912\nmaxswap: 536870912\nname: web\nnetin: 0\nnetout: 0\n\
             status: stopped\nvmid: 200\n"
        );
        report.status = "running".into();
        report.last_exit = None;
        report.pid = Some(4242);
        report.pids = Some(12);
        report.uptime = Some(17);
        assert_eq!(text(&report, false), "status: running\n");
        assert_eq!(
            text(&report, true),
            "cpus: 2\nmaxmem: 536870912\nmaxswap: 536870912\nname: web\nnetin: 0\nnetout: 0\npid: 4242\npids: 12\n\
             status: running\nuptime: 17\nvmid: 200\n"
        );
    }
}
