//! `ctctl cpusets`: which host CPUs each running container may use, as `pct cpusets`.

use std::collections::BTreeMap;

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{CtRequest, Payload, Request};

pub fn command() -> Command {
    Command::new("cpusets").about("Show the host CPUs of running containers").long_about(
        "Print which host CPUs the cpuset of each running container allows, as pct cpusets \
             does: one line per container, its CPUs in their own columns so overlaps show. Lists \
             the containers the caller may audit (VM.Audit on /vms/<ctid>).",
    )
}

/// pct's table: `<ctid>:` then a column of width 3 per host CPU, the number where it is used.
fn render(sets: &BTreeMap<u32, Vec<u32>>) -> String {
    let width = sets.keys().map(|v| v.to_string().len()).max().unwrap_or(0);
    let max_cpu = sets.values().flatten().copied().max().unwrap_or(0);
    let rule = "-".repeat(width + 1 + 3 * (max_cpu as usize + 1));
    let mut out = format!("{rule}\n");
    for (vmid, cpus) in sets {
        let mut line = format!("{vmid:>width$}:");
        for cpu in 0..=max_cpu {
            if cpus.contains(&cpu) {
                line.push_str(&format!(" {cpu:>2}"));
            } else {
                line.push_str("   ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str(&rule);
    out.push('\n');
    out
}

pub fn run(_matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let mut client = cli::connect(crate::BIN)?;
    let Payload::Text(text) = client.call(&Request::Ct(CtRequest::CpuSets))? else {
        anyhow::bail!("unexpected answer from hearthd");
    };
    let raw: BTreeMap<String, Vec<u32>> = serde_json::from_str(&text)?;
    let sets: BTreeMap<u32, Vec<u32>> = raw.into_iter().filter_map(|(k, v)| Some((k.parse().ok()?, v))).collect();
    if format.is_json() {
        return cli::print_json(&sets, format);
    }
    if sets.is_empty() {
        return Ok(());
    }
    cli::print_text(&render(&sets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_pct() {
        let sets = BTreeMap::from([(102, vec![6, 7]), (1005, vec![0, 1, 2])]);
        assert_eq!(
            render(&sets),
            "-----------------------------\n 102:                    6  7\n1005:  0  1  2\n-----------------------------\n"
        );
    }
}
