//! `userctl acl modify|delete|list`: ACL entries, as `pveum acl`.

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, Align, OutputFormat, Table};
use hearth_proto::{AccessRequest, Payload};

use super::{bool_option, change, flag, list_option, positional};

/// The path, roles and subjects `acl modify` and `acl delete` take.
fn grant_args(command: Command) -> Command {
    command
        .arg(positional("path", "PATH", "ACL path, e.g. /vms/100"))
        .arg(list_option("roles", "ROLES", "Roles, separated by commas").required(true))
        .arg(list_option("users", "USERS", "User ids, separated by commas"))
        .arg(list_option("groups", "GROUPS", "Group names, separated by commas"))
        .arg(list_option("tokens", "TOKENS", "API token ids USER@REALM!TOKEN, separated by commas"))
        // pveum's examples spell it `-token`; here that is the subject, not the global `--token`
        // that authenticates: a subcommand's own argument of the same id takes its place (use
        // HEARTH_TOKEN to run these commands as a token). clap copies its value up to where the
        // global one is read; the distinct value type keeps it from being taken for a secret.
        .arg(
            list_option("token", "TOKENS", "Same as --tokens")
                .value_parser(|s: &str| Ok::<_, std::convert::Infallible>(TokenSubjects(s.to_owned())))
                .hide(true),
        )
        .arg(bool_option("propagate", "Also apply below the path (1, the default) or only on it (0)"))
}

pub fn command() -> Command {
    Command::new("acl")
        .about("Manage ACL entries")
        .long_about(
            "Grant roles on a path to users, groups and API tokens, or revoke them with --delete. \
             Paths: /, /access, /access/groups[/GROUP], /access/realm[/REALM], /nodes[/NODE], \
             /pool[/POOL], /storage[/STORAGE], /vms[/VMID], /mapping[/TYPE[/ID]], /sdn/…; a trailing \
             slash is dropped. Options may be given in singular as in pveum's examples (--user, \
             --group, --role). The deepest matching entry wins; a user's entry \
             beats its groups'. Granting needs Permissions.Modify on the path, or VM.Allocate on \
             /vms/…, Datastore.Allocate on /storage/… or Pool.Allocate on /pool/… and only roles \
             whose privileges you hold there. Removing the last Administrator of / is refused.",
        )
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommands([
            grant_args(Command::new("modify").about("Grant or revoke roles on a path"))
                .arg(flag("delete", "Revoke the roles instead of granting them")),
            grant_args(Command::new("delete").about("Revoke roles on a path (acl modify --delete)")),
            Command::new("list").about("List the ACL entries you may audit"),
        ])
}

/// The values of the subject option `-token`, a type of their own (see [`grant_args`]).
#[derive(Clone, Debug)]
struct TokenSubjects(String);

fn token_subjects(m: &ArgMatches) -> Vec<String> {
    let given = m.try_get_many::<TokenSubjects>("token").ok().flatten().into_iter().flatten();
    given
        .flat_map(|t| t.0.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

pub fn run(action: &str, m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    match action {
        "modify" | "delete" => change(
            AccessRequest::AclModify {
                path: super::string(m, "path"),
                roles: super::list(m, "roles"),
                users: super::list(m, "users"),
                groups: super::list(m, "groups"),
                tokens: super::list(m, "tokens").into_iter().chain(token_subjects(m)).collect(),
                propagate: super::bool_value(m, "propagate").unwrap_or(true),
                delete: action == "delete" || cli::flag(m, "delete"),
            },
            format,
        ),
        "list" => {
            let entries = match super::call(AccessRequest::AclList)? {
                Payload::Acl(entries) => entries,
                other => return Err(cli::unexpected(&other)),
            };
            if format.is_json() {
                return cli::print_json(&entries, format);
            }
            let mut table = Table::new(&[
                ("path", Align::Left),
                ("type", Align::Left),
                ("ugid", Align::Left),
                ("roleid", Align::Left),
                ("propagate", Align::Left),
            ]);
            for e in &entries {
                table.row(vec![
                    e.path.clone(),
                    e.subject_type.clone(),
                    e.ugid.clone(),
                    e.roleid.clone(),
                    super::bit(e.propagate),
                ]);
            }
            table.print()
        }
        other => anyhow::bail!("unknown acl command '{other}'"),
    }
}
