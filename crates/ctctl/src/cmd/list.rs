//! `ctctl list`: one line per container, in `pct list`'s columns.

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, Align, OutputFormat, Table};
use hearth_proto::{CtRequest, GuestSummary, Payload, Request};

pub fn command() -> Command {
    Command::new("list").about("List containers").long_about(
        "List the containers of this node that the caller may see, sorted by id, in pct list's \
         columns: VMID Status Lock Name. A container whose configuration cannot be read shows \
         the error instead of its status, lock and name. Prints nothing when there are no \
         containers.",
    )
}

pub fn run(_matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let mut client = cli::connect(crate::BIN)?;
    let mut guests = match client.call(&Request::Ct(CtRequest::List))? {
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
    render(&guests).print()
}

fn render(guests: &[GuestSummary]) -> Table {
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

    #[test]
    fn columns_like_pct_list() {
        let guest = |vmid: u32, name: &str, lock: Option<&str>, error: Option<&str>| GuestSummary {
            vmid: Vmid::new(vmid).unwrap(),
            guest_type: "lxc".into(),
            name: name.into(),
            status: "stopped".into(),
            lock: lock.map(str::to_owned),
            maxmem_mib: 512,
            maxdisk: 8 << 30,
            pid: None,
            tags: String::new(),
            template: false,
            error: error.map(str::to_owned),
        };
        let guests = [
            guest(200, "web", None, None),
            guest(201, "", None, Some("bad key")),
            guest(2000, "db", Some("backup"), None),
        ];
        assert_eq!(
            render(&guests).render(),
            "VMID Status  Lock   Name\n200  stopped        web\n201  error: bad key\n2000 stopped backup db\n"
        );
    }
}
