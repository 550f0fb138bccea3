//! `ctctl df`: usage of a running container's volumes, as `pct df`.

use anyhow::Context;
use clap::{ArgMatches, Command};
use hearth_client::cli::{self, Align, OutputFormat, Table};
use hearth_proto::{CtRequest, DfEntry, Payload, Request};

pub fn command() -> Command {
    Command::new("df")
        .about("Show the disk usage of a container")
        .long_about(
            "Show how full each volume of a running container is, as pct df does, in the \
             columns MP Volume Size Used Avail Use% Path: the key (rootfs, mpN), the volume, \
             its size, used and available space in binary units (K, M, G, T), the used share in \
             percent and where it is mounted inside the container. ctctl asks hearthd, which \
             needs VM.Audit on /vms/<ctid> from the caller. JSON output is the list with key, \
             volume, path and total, used and avail in bytes.",
        )
        .arg(cli::vmid_arg("ctid", "The container to show"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "ctid")?;
    let mut client = cli::connect(crate::BIN)?;
    match client
        .call(&Request::Ct(CtRequest::Df { vmid }))
        .with_context(|| format!("reading the usage of CT {vmid}"))?
    {
        Payload::Df(entries) if format.is_json() => cli::print_json(&entries, format),
        Payload::Df(entries) => render(&entries).print(),
        other => Err(cli::unexpected(&other)),
    }
}

fn render(entries: &[DfEntry]) -> Table {
    let mut table = Table::new(&[
        ("MP", Align::Left),
        ("Volume", Align::Left),
        ("Size", Align::Right),
        ("Used", Align::Right),
        ("Avail", Align::Right),
        ("Use%", Align::Right),
        ("Path", Align::Left),
    ]);
    for e in entries {
        table.row(vec![
            e.key.clone(),
            e.volume.clone(),
            human(e.total),
            human(e.used),
            human(e.avail),
            percent(e.used, e.total),
            e.path.clone(),
        ]);
    }
    table
}

/// Bytes in the largest binary unit that keeps a number of at least 1, with one decimal:
/// `7.8G`, `512.0M`, `100B`.
fn human(bytes: u64) -> String {
    const UNITS: [char; 5] = ['K', 'M', 'G', 'T', 'P'];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    // Integer steps first, so that the rounding happens once.
    let mut unit = 0;
    let mut scaled = bytes;
    while scaled >= 1024 * 1024 && unit + 1 < UNITS.len() {
        scaled /= 1024;
        unit += 1;
    }
    let tenths = (u128::from(scaled) * 10 + 512) / 1024;
    let (tenths, unit) =
        if tenths >= 10_240 && unit + 1 < UNITS.len() { ((tenths + 512) / 1024, unit + 1) } else { (tenths, unit) };
    format!("{}.{}{}", tenths / 10, tenths % 10, UNITS[unit])
}

/// `used` as a share of `total` in percent with one decimal; empty for a size of 0.
fn percent(used: u64, total: u64) -> String {
    if total == 0 {
        return String::new();
    }
    let tenths = (u128::from(used) * 1000 + u128::from(total) / 2) / u128::from(total);
    format!("{}.{}", tenths / 10, tenths % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(1023), "1023B");
        assert_eq!(human(1024), "1.0K");
        assert_eq!(human(1536), "1.5K");
        assert_eq!(human(512 << 20), "512.0M");
        assert_eq!(human(8 << 30), "8.0G");
        assert_eq!(human((78 << 30) / 10), "7.8G");
        // Rounding up to the next unit.
        assert_eq!(human((1 << 30) - 1), "1.0G");
        assert_eq!(human(u64::MAX), "16384.0P");
    }

    #[test]
    fn columns_like_pct_df() {
        let entry = |key: &str, volume: &str, path: &str, total: u64, used: u64| DfEntry {
            key: key.into(),
            volume: volume.into(),
            path: path.into(),
            total,
            used,
            avail: total - used,
        };
        let entries = [
            entry("rootfs", "local:200/vm-200-disk-0.raw", "/", 8 << 30, 2 << 30),
            entry("mp0", "/srv/shared", "/shared", 100 << 30, (100 << 30) / 3),
            entry("mp1", "local:200/vm-200-disk-1.raw", "/empty", 0, 0),
        ];
        assert_eq!(
            render(&entries).render(),
            "\
MP     Volume                        Size  Used Avail Use% Path
rootfs local:200/vm-200-disk-0.raw   8.0G  2.0G  6.0G 25.0 /
mp0    /srv/shared                 100.0G 33.3G 66.7G 33.3 /shared
mp1    local:200/vm-200-disk-1.raw     0B    0B    0B      /empty
"
        );
    }
}
