//! `vmctl list`, `ctctl list`: one line per guest, in the columns of `qm list` and `pct list`.

use clap::{ArgMatches, Command};
use hearth_core::GuestKind;
use hearth_proto::{CtRequest, GuestSummary, Payload, Request, VmRequest};

use crate::cli::{self, Align, OutputFormat, Table};

pub fn command(kind: GuestKind) -> Command {
    match kind {
        GuestKind::Vm => Command::new("list")
            .about("List virtual machines")
            .long_about(
                "List the virtual machines of this node that the caller may see, sorted by id, in \
                 qm list's columns: VMID NAME STATUS MEM(MB) BOOTDISK(GB) PID. A VM whose \
                 configuration cannot be read shows the error instead of its name and status. \
                 Prints nothing when there are no VMs. --full adds the LOCK and TAGS columns.",
            )
            .arg(cli::flag_arg("full", "Also show lock and tags")),
        GuestKind::Ct => Command::new("list").about("List containers").long_about(
            "List the containers of this node that the caller may see, sorted by id, in pct list's \
             columns: VMID Status Lock Name. A container whose configuration cannot be read shows \
             the error instead of its status, lock and name. Prints nothing when there are no \
             containers.",
        ),
    }
}

pub fn run(kind: GuestKind, bin: &str, matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let request = match kind {
        GuestKind::Vm => Request::Vm(VmRequest::List),
        GuestKind::Ct => Request::Ct(CtRequest::List),
    };
    let mut client = cli::connect(bin)?;
    let mut guests = match client.call(&request)? {
        Payload::Guests(guests) => guests,
        other => return Err(cli::unexpected(&other)),
    };
    guests.sort_by_key(|g| g.vmid);
    if format.is_json() {
        return cli::print_json(&guests, format);
    }
    if guests.is_empty() {
        return Ok(());
    }
    match kind {
        GuestKind::Vm => render_vms(&guests, cli::flag(matches, "full")).print(),
        GuestKind::Ct => render_cts(&guests).print(),
    }
}

/// qm list's table; `full` adds LOCK and TAGS.
fn render_vms(guests: &[GuestSummary], full: bool) -> Table {
    let mut columns = vec![
        ("VMID", Align::Right),
        ("NAME", Align::Left),
        ("STATUS", Align::Left),
        ("MEM(MB)", Align::Right),
        ("BOOTDISK(GB)", Align::Right),
        ("PID", Align::Right),
    ];
    if full {
        columns.extend([("LOCK", Align::Left), ("TAGS", Align::Left)]);
    }
    let mut table = Table::new(&columns);
    for g in guests {
        if let Some(error) = &g.error {
            table.row_spanning(vec![g.vmid.to_string(), format!("error: {error}")]);
            continue;
        }
        let mut row = vec![
            g.vmid.to_string(),
            g.name.clone(),
            g.status.clone(),
            g.maxmem_mib.to_string(),
            format!("{:.2}", g.maxdisk as f64 / f64::from(1u32 << 30)),
            g.pid.unwrap_or(0).to_string(),
        ];
        if full {
            row.extend([g.lock.clone().unwrap_or_default(), g.tags.clone()]);
        }
        table.row(row);
    }
    table
}

/// pct list's table.
fn render_cts(guests: &[GuestSummary]) -> Table {
    let mut table =
        Table::new(&[("VMID", Align::Left), ("Status", Align::Left), ("Lock", Align::Left), ("Name", Align::Left)]);
    for g in guests {
        match &g.error {
            Some(error) => table.row_spanning(vec![g.vmid.to_string(), format!("error: {error}")]),
            None => table.row(vec![
                g.vmid.to_string(),
                g.status.clone(),
                g.lock.clone().unwrap_or_default(),
                g.name.clone(),
            ]),
        }
    }
    table
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;
    use hearth_core::Vmid;

    fn guest(vmid: u32, name: &str, lock: Option<&str>, error: Option<&str>) -> GuestSummary {
        GuestSummary {
            vmid: Vmid::new(vmid).unwrap(),
            guest_type: "qemu".into(),
            name: name.into(),
            status: if vmid == 100 { "running" } else { "stopped" }.into(),
            lock: lock.map(str::to_owned),
            maxmem_mib: 2048,
            maxdisk: 32 << 30,
            pid: (vmid == 100).then_some(4242),
            tags: String::new(),
            template: false,
            error: error.map(str::to_owned),
        }
    }

    #[test]
    fn columns_like_qm_list() {
        let guests = [
            guest(100, "web", Some("backup"), None),
            guest(101, "", None, Some("cannot parse line 3")),
            guest(1000, "database", None, None),
        ];
        assert_eq!(
            render_vms(&guests, false).render(),
            "VMID NAME     STATUS  MEM(MB) BOOTDISK(GB)  PID\n \
             100 web      running    2048        32.00 4242\n \
             101 error: cannot parse line 3\n\
             1000 database stopped    2048        32.00    0\n"
        );
        assert!(
            render_vms(&guests, true)
                .render()
                .starts_with("VMID NAME     STATUS  MEM(MB) BOOTDISK(GB)  PID LOCK   TAGS\n")
        );
    }

    #[test]
    fn columns_like_pct_list() {
        let guests = [
            guest(200, "web", None, None),
            guest(201, "", None, Some("bad key")),
            guest(2000, "db", Some("backup"), None),
        ];
        assert_eq!(
            render_cts(&guests).render(),
            "VMID Status  Lock   Name\n200  stopped        web\n201  error: bad key\n2000 stopped backup db\n"
        );
    }
}
