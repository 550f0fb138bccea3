//! `vmctl list`: one line per VM, in `qm list`'s columns.

use clap::{Arg, ArgAction, ArgMatches, Command};
use hearth_client::cli::{self, Align, OutputFormat, Table};
use hearth_proto::{GuestSummary, Payload, Request, VmRequest};

pub fn command() -> Command {
    Command::new("list")
        .about("List virtual machines")
        .long_about(
            "List the virtual machines of this node that the caller may see, sorted by id, in \
             qm list's columns: VMID NAME STATUS MEM(MB) BOOTDISK(GB) PID. A VM whose \
             configuration cannot be read shows the error instead of its name and status. \
             Prints nothing when there are no VMs. --full adds the LOCK and TAGS columns.",
        )
        .arg(Arg::new("full").long("full").action(ArgAction::SetTrue).help("Also show lock and tags"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let mut client = cli::connect(crate::BIN)?;
    let mut guests = match client.call(&Request::Vm(VmRequest::List))? {
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
    render(&guests, matches.get_flag("full")).print()
}

fn render(guests: &[GuestSummary], full: bool) -> Table {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;
    use hearth_core::Vmid;

    fn guest(vmid: u32, name: &str, error: Option<&str>) -> GuestSummary {
        GuestSummary {
            vmid: Vmid::new(vmid).unwrap(),
            guest_type: "qemu".into(),
            name: name.into(),
            status: if vmid == 100 { "running" } else { "stopped" }.into(),
            lock: (vmid == 100).then(|| "backup".into()),
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
        let guests =
            [guest(100, "web", None), guest(101, "", Some("cannot parse line 3")), guest(1000, "database", None)];
        assert_eq!(
            render(&guests, false).render(),
            "VMID NAME     STATUS  MEM(MB) BOOTDISK(GB)  PID\n \
             100 web      running    2048        32.00 4242\n \
             101 error: cannot parse line 3\n\
             1000 database stopped    2048        32.00    0\n"
        );
        assert!(
            render(&guests, true).render().starts_with("VMID NAME     STATUS  MEM(MB) BOOTDISK(GB)  PID LOCK   TAGS\n")
        );
    }
}
