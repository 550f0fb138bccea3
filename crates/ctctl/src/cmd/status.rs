//! `ctctl status`: whether a container runs, and with `--verbose` its counters, as `pct status`.

use anyhow::Context;
use clap::{Arg, ArgAction, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{CtRequest, CtStatusReport, Payload, Request};

pub fn command() -> Command {
    Command::new("status")
        .about("Show whether a container is running")
        .long_about(
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
        )
        .arg(cli::vmid_arg("ctid", "The container to show"))
        .arg(
            Arg::new("verbose")
                .long("verbose")
                .action(ArgAction::SetTrue)
                .help("Print all fields: counters, pids, uptime, how the last run ended"),
        )
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "ctid")?;
    let verbose = matches.get_flag("verbose");
    let mut client = cli::connect(crate::BIN)?;
    let request = Request::Ct(CtRequest::Status { vmid, verbose });
    match client.call(&request).with_context(|| format!("reading the status of CT {vmid}"))? {
        Payload::CtStatus(report) if format.is_json() => cli::print_json(&report, format),
        Payload::CtStatus(report) => cli::print_text(&render(&report, verbose)?),
        other => Err(cli::unexpected(&other)),
    }
}

/// `status: <status>`, or with `verbose` every field that is set, sorted by key, as pct prints.
fn render(report: &CtStatusReport, verbose: bool) -> anyhow::Result<String> {
    if verbose {
        cli::render_fields(report).context("encoding the status")
    } else {
        Ok(format!("status: {}\n", report.status))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;
    use hearth_core::Vmid;

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
        assert_eq!(render(&report, false).unwrap(), "status: stopped\n");
        assert_eq!(
            render(&report, true).unwrap(),
            "cpus: 2\nlast_exit: halt\nmaxmem: 536870912\nmaxswap: 536870912\nname: web\nnetin: 0\nnetout: 0\n\
             status: stopped\nvmid: 200\n"
        );
        report.status = "running".into();
        report.last_exit = None;
        report.pid = Some(4242);
        report.pids = Some(12);
        report.uptime = Some(17);
        assert_eq!(render(&report, false).unwrap(), "status: running\n");
        assert_eq!(
            render(&report, true).unwrap(),
            "cpus: 2\nmaxmem: 536870912\nmaxswap: 536870912\nname: web\nnetin: 0\nnetout: 0\npid: 4242\npids: 12\n\
             status: running\nuptime: 17\nvmid: 200\n"
        );
    }
}
