//! `cargo xtask bench net`, node network apply: `netctl apply` of a configuration of
//! [`BRIDGES`] bridges, each with an address, against ifupdown2's `ifreload -a` (what Proxmox
//! runs) on the same configuration — the file `netctl export` writes from hearthd's staged
//! configuration becomes `/etc/network/interfaces`.
//!
//! Both run inside the kernel-complete test host (hearth_test::testhost), never on this
//! machine's own network: Debian's kernel under QEMU TCG, where `/etc` is a throwaway overlay.
//! Each run times, for each tool, applying the configuration when none of its bridges exist
//! (`create`) and applying it again unchanged (`unchanged`); between tools every bridge is
//! deleted. A run that did not leave all bridges with their addresses in place fails the
//! benchmark. Everything runs under TCG (a process start costs about half a second there, and
//! ifupdown2 is Python), so the figures are for the ratio, not for a real host.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use hearth_test::TestHost;

use crate::test::ensure_debian_packages;

/// Bridges in the configuration.
pub const BRIDGES: usize = 50;

/// The anchor's Debian packages: ifupdown2, and bridge-utils, which it warns about without.
/// Installing them changes nothing on this machine's network; they only run in the test host.
pub const PACKAGES: &[&str] = &["ifupdown2", "bridge-utils"];

/// The configuration, as a Proxmox `/etc/network/interfaces`: `vmbr1`…`vmbr50`, each with
/// `10.<n>.0.1/24`, no ports, STP off, forward delay 0.
pub fn interfaces_file() -> String {
    let mut text = String::from("auto lo\niface lo inet loopback\n");
    for n in 1..=BRIDGES {
        write!(
            text,
            "\nauto vmbr{n}\niface vmbr{n} inet static\n\taddress 10.{n}.0.1/24\n\tbridge-ports none\n\
             \tbridge-stp off\n\tbridge-fd 0\n"
        )
        .expect("writing to a string");
    }
    text
}

/// The script run in the test host. Prints `time:<tool>-<case>:<ms>:<status>:<bridges with
/// addresses>` per timed command, `netctl-unavailable:<why>` when netctl cannot stage the
/// configuration (then ifupdown2 gets the file as written here).
fn script(runs: usize) -> String {
    format!(
        r#"set -u
mkdir -p /run/network
cat >/tmp/bench.interfaces <<'HEARTH_EOF'
{interfaces}HEARTH_EOF
now() {{ echo "${{EPOCHREALTIME/./}}"; }}
teardown() {{
    for n in $(seq 1 {BRIDGES}); do echo "link del vmbr$n"; done | ip -force -batch - 2>/dev/null
}}
ready() {{ ip -4 -br address show type bridge | grep -c '^vmbr[0-9]* .*10\.[0-9]*\.0\.1/24'; }}
timed() {{ # LABEL COMMAND...
    local label=$1; shift
    local start; start=$(now)
    "$@" >>/tmp/bench.log 2>&1
    local status=$? end; end=$(now)
    echo "time:$label:$(( (end - start) / 1000 )):$status:$(ready)"
}}
netctl=0
if [ -n "$NETCTL" ]; then
    root=$(mktemp -d)
    "$HEARTHD" --root "$root" --node bench >/tmp/hearthd.log 2>&1 &
    for _ in $(seq 300); do test -S "$root/run/hearth/hearthd.sock" && break; sleep 0.1; done
    export HEARTH_ROOT=$root
    if "$NETCTL" import /tmp/bench.interfaces >/tmp/netctl.out 2>&1 \
        && "$NETCTL" export >/tmp/exported 2>>/tmp/netctl.out \
        && "$NETCTL" apply --confirm-timeout 0 >>/tmp/netctl.out 2>&1; then
        netctl=1
        cp /tmp/exported /etc/network/interfaces
    else
        echo "netctl-unavailable:$(tail -n 1 /tmp/netctl.out)"
    fi
fi
[ $netctl = 1 ] || cp /tmp/bench.interfaces /etc/network/interfaces
for run in $(seq {runs}); do
    if [ $netctl = 1 ]; then
        teardown
        timed netctl-create "$NETCTL" apply --confirm-timeout 0
        timed netctl-unchanged "$NETCTL" apply --confirm-timeout 0
    fi
    teardown
    timed ifreload-create ifreload -a
    timed ifreload-unchanged ifreload -a
done
teardown
"#,
        interfaces = interfaces_file()
    )
}

/// One timed command of the script's output.
#[derive(Debug, PartialEq)]
struct Sample {
    label: String,
    ms: u64,
    status: i32,
    ready: usize,
}

fn parse(stdout: &str) -> anyhow::Result<Vec<Sample>> {
    let mut samples = Vec::new();
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix("time:") else { continue };
        let fields: Vec<&str> = rest.split(':').collect();
        let [label, ms, status, ready] = fields.as_slice() else { bail!("malformed line {line:?}") };
        samples.push(Sample {
            label: (*label).to_owned(),
            ms: ms.parse().with_context(|| format!("malformed time in {line:?}"))?,
            status: status.parse().with_context(|| format!("malformed status in {line:?}"))?,
            ready: ready.parse().with_context(|| format!("malformed count in {line:?}"))?,
        });
    }
    Ok(samples)
}

fn median(values: &mut [u64]) -> Option<u64> {
    values.sort_unstable();
    values.get(values.len() / 2).copied()
}

/// Runs the measurement in one test host boot and returns the report.
pub fn run(hearthd: &std::path::Path, netctl: Option<&PathBuf>, runs: usize) -> anyhow::Result<String> {
    ensure_debian_packages(PACKAGES)?;
    crate::fixtures::run()?;
    eprintln!(
        "node network apply: {BRIDGES} bridges, {runs} runs of each tool, inside the test host{}",
        if netctl.is_none() { " (no netctl binary in this tree: ifupdown2 only)" } else { "" }
    );
    let host = TestHost::new()
        .env("HEARTHD", &hearthd.to_string_lossy())
        .env("NETCTL", &netctl.map(|p| p.to_string_lossy().into_owned()).unwrap_or_default())
        .timeout(Duration::from_secs(120 + 150 * runs as u64));
    let out = host.try_run(&script(runs)).map_err(anyhow::Error::msg)?;
    if !out.success() {
        bail!("the benchmark script failed in the test host:\n{}", out.describe());
    }
    let samples = parse(&out.stdout)?;
    for sample in &samples {
        if sample.status != 0 || sample.ready != BRIDGES {
            bail!(
                "{} exited with {} and left {} of {BRIDGES} bridges with their address:\n{}",
                sample.label,
                sample.status,
                sample.ready,
                out.describe()
            );
        }
    }
    let mut by_label: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for sample in &samples {
        by_label.entry(sample.label.as_str()).or_default().push(sample.ms);
    }
    let mut medians: BTreeMap<&str, u64> = BTreeMap::new();
    for (label, values) in &mut by_label {
        if let Some(m) = median(values) {
            medians.insert(label, m);
        }
    }
    let mut report = format!(
        "Node network apply of {BRIDGES} bridges with addresses, inside the test host (QEMU TCG; medians of {runs} runs; \
         boot, runs and power-off {:.0} s)\n",
        out.elapsed.as_secs_f64()
    );
    for case in ["create", "unchanged"] {
        let netctl = medians.get(format!("netctl-{case}").as_str());
        let ifreload = medians.get(format!("ifreload-{case}").as_str());
        let show = |v: Option<&u64>| v.map_or_else(|| "n/a".to_owned(), |ms| format!("{ms} ms"));
        write!(report, "  {case:<10} netctl apply {:>10}   ifreload -a {:>10}", show(netctl), show(ifreload))
            .expect("writing to a string");
        if let (Some(n), Some(i)) = (netctl, ifreload) {
            write!(report, "   ratio ifreload / netctl: {:.1}x", *i as f64 / (*n).max(1) as f64)
                .expect("writing to a string");
        }
        report.push('\n');
    }
    for line in out.lines_with("netctl-unavailable:") {
        writeln!(report, "  netctl apply not measured: {line}").expect("writing to a string");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_has_every_bridge_with_its_address() {
        let text = interfaces_file();
        assert_eq!(text.matches("\nauto vmbr").count(), BRIDGES);
        assert!(text.contains("iface vmbr50 inet static\n\taddress 10.50.0.1/24\n\tbridge-ports none\n"));
        assert!(script(3).contains("for run in $(seq 3)"));
    }

    #[test]
    fn samples_are_parsed_and_medians_taken() {
        let samples = parse("noise\ntime:netctl-create:120:0:50\ntime:ifreload-create:3000:0:50\n").unwrap();
        assert_eq!(samples[0], Sample { label: "netctl-create".into(), ms: 120, status: 0, ready: 50 });
        assert!(parse("time:x:1:0\n").is_err());
        assert_eq!(median(&mut [30, 10, 20]), Some(20));
    }
}
