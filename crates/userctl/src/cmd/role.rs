//! `userctl role add|modify|delete|list`: custom roles, as `pveum role`.

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, Align, OutputFormat, Table};
use hearth_proto::{AccessRequest, Payload};

use super::{change, flag, positional};

fn role() -> clap::Arg {
    positional(
        "role",
        "ROLE",
        "Role name, [A-Za-z0-9.-_]+; built-in names and names starting with PVE (any case) are reserved",
    )
}

fn privs(required: bool) -> clap::Arg {
    super::option("privs", "PRIVS", "Privileges separated by commas or spaces, e.g. \"VM.PowerMgmt VM.Console\"")
        .required(required)
}

pub fn command() -> Command {
    Command::new("role")
        .about("Manage roles")
        .long_about(
            "Manage custom roles: named sets of privileges. The built-in roles (Administrator, \
             NoAccess, PVEAdmin, PVEAuditor, PVEVMAdmin, PVEVMUser, …, as Proxmox VE names them) cannot be changed; `role list` shows \
             them all with their privileges.",
        )
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommands([
            Command::new("add").about("Create a custom role").arg(role()).arg(privs(true)),
            Command::new("modify")
                .about("Change a custom role's privileges")
                .arg(role())
                .arg(privs(true))
                .arg(flag("append", "Add the privileges instead of replacing them")),
            Command::new("delete").about("Delete a custom role and the ACL entries granting it").arg(role()),
            Command::new("list").about("List built-in and custom roles"),
        ])
}

pub fn run(action: &str, m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let role = super::string(m, "role");
    let privs = super::string(m, "privs");
    match action {
        "add" => change(AccessRequest::RoleAdd { role, privs }, format),
        "modify" => change(AccessRequest::RoleModify { role, privs, append: cli::flag(m, "append") }, format),
        "delete" => change(AccessRequest::RoleDelete { role }, format),
        "list" => {
            let roles = match super::call(AccessRequest::RoleList)? {
                Payload::Roles(roles) => roles,
                other => return Err(cli::unexpected(&other)),
            };
            if format.is_json() {
                return cli::print_json(&roles, format);
            }
            let mut table = Table::new(&[("roleid", Align::Left), ("special", Align::Left), ("privs", Align::Left)]);
            for r in &roles {
                table.row(vec![r.role.clone(), super::bit(r.special), r.privs.join(",")]);
            }
            table.print()
        }
        other => anyhow::bail!("unknown role command '{other}'"),
    }
}
