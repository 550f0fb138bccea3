//! `userctl pool add|modify|delete|list`: resource pools, as `pveum pool`.

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, Align, OutputFormat, Table};
use hearth_core::Vmid;
use hearth_proto::{AccessRequest, Payload};

use super::{change, flag, option, positional};

fn pool() -> clap::Arg {
    positional("pool", "POOL", "Pool name; sub-pools as PARENT/CHILD")
}

fn vms() -> clap::Arg {
    clap::Arg::new("vms")
        .long("vms")
        .value_name("VMIDS")
        .value_delimiter(',')
        .action(clap::ArgAction::Append)
        .value_parser(|s: &str| s.trim().parse::<Vmid>())
        .help("Guest ids, separated by commas")
}

fn storage() -> clap::Arg {
    super::list_option("storage", "STORAGES", "Storage ids, separated by commas")
}

pub fn command() -> Command {
    Command::new("pool")
        .about("Manage resource pools")
        .long_about(
            "Manage resource pools: groups of guests and storages that roles can be granted on \
             together (ACL path /pool/NAME). A guest belongs to at most one pool.",
        )
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommands([
            Command::new("add")
                .about("Create a pool")
                .arg(pool())
                .arg(option("comment", "TEXT", "Comment"))
                .arg(vms())
                .arg(storage()),
            Command::new("modify")
                .about("Add members to a pool, or remove them with --delete")
                .arg(pool())
                .arg(option("comment", "TEXT", "Comment; empty clears it"))
                .arg(vms())
                .arg(storage())
                .arg(flag("delete", "Remove the given guests and storages instead of adding them")),
            Command::new("delete").about("Delete an empty pool and the ACL entries on it").arg(pool()),
            Command::new("list").about("List the pools you may audit"),
        ])
}

pub fn run(action: &str, m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let pool = super::string(m, "pool");
    let comment = super::optional(m, "comment");
    let vms: Vec<Vmid> = m.try_get_many::<Vmid>("vms").ok().flatten().into_iter().flatten().copied().collect();
    let storage = super::list(m, "storage");
    match action {
        "add" => change(AccessRequest::PoolAdd { pool, comment, vms, storage }, format),
        "modify" => {
            change(AccessRequest::PoolModify { pool, comment, vms, storage, delete: cli::flag(m, "delete") }, format)
        }
        "delete" => change(AccessRequest::PoolDelete { pool }, format),
        "list" => {
            let pools = match super::call(AccessRequest::PoolList)? {
                Payload::Pools(pools) => pools,
                other => return Err(cli::unexpected(&other)),
            };
            if format.is_json() {
                return cli::print_json(&pools, format);
            }
            let mut table = Table::new(&[
                ("poolid", Align::Left),
                ("vms", Align::Left),
                ("storage", Align::Left),
                ("comment", Align::Left),
            ]);
            for p in &pools {
                let vms = p.vms.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
                table.row(vec![p.pool.clone(), vms, p.storage.join(","), super::or_empty(&p.comment)]);
            }
            table.print()
        }
        other => anyhow::bail!("unknown pool command '{other}'"),
    }
}
