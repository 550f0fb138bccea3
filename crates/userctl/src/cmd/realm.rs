//! `userctl realm add|modify|delete|list|sync`: authentication realms, as `pveum realm`.

use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, Align, OutputFormat, Table};
use hearth_core::access::realm::{RealmKey, RealmType, Value};
use hearth_proto::{AccessRequest, Payload};

use super::{bool_option, change, flag, option, positional};

fn realm() -> Arg {
    positional("realm", "REALM", "Realm id, [A-Za-z][A-Za-z0-9.-_]+")
}

/// Every `domains.cfg` key of every type, once, in the order of the types.
fn all_keys() -> Vec<&'static RealmKey> {
    let mut keys: Vec<&'static RealmKey> = Vec::new();
    for kind in RealmType::ALL {
        for key in kind.keys() {
            if !keys.iter().any(|k| k.name == key.name) {
                keys.push(key);
            }
        }
    }
    keys
}

/// One option per key; booleans take `0|1` (alone: 1).
fn key_args() -> Vec<Arg> {
    all_keys()
        .into_iter()
        .map(|k| match k.value {
            Value::Bool => bool_option(k.name, k.help),
            _ => option(k.name, "VALUE", k.help),
        })
        .collect()
}

/// The keys given, in command-line order.
fn options(m: &ArgMatches) -> Vec<(String, String)> {
    let mut given: Vec<(usize, String, String)> = all_keys()
        .into_iter()
        .filter_map(|k| {
            let value = super::optional(m, k.name)?;
            Some((m.index_of(k.name).unwrap_or(0), k.name.to_owned(), value))
        })
        .collect();
    given.sort_by_key(|(i, _, _)| *i);
    given.into_iter().map(|(_, k, v)| (k, v)).collect()
}

pub fn command() -> Command {
    Command::new("realm")
        .about("Manage authentication realms")
        .long_about(
            "Manage authentication realms, as Proxmox VE's domains.cfg: pam (the host's accounts) and \
             pve (Hearth's own password store, argon2id hashes) are built in and cannot be removed; \
             openid, ldap and ad realms are configured with Proxmox's keys in \
             $HEARTH_ROOT/etc/hearth/domains.toml, their secrets (--client-key, --password) in \
             etc/hearth/priv/realms.toml (0600), never listed. Users can be created in every realm, \
             but Hearth authenticates only pam and pve users: it does not log in through an OpenID \
             provider and does not talk to LDAP or Active Directory servers, so `realm sync` is \
             refused. Adding, changing and removing realms needs Realm.Allocate on /access/realm.",
        )
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommands([
            Command::new("add")
                .about("Configure an openid, ldap or ad realm")
                .arg(realm())
                .arg(
                    Arg::new("type")
                        .long("type")
                        .value_name("TYPE")
                        .required(true)
                        .value_parser(RealmType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>())
                        .help("Realm type; pam and pve are built in, so openid, ldap or ad"),
                )
                .args(key_args()),
            Command::new("modify")
                .about("Change a realm's keys")
                .arg(realm())
                .args(key_args())
                .arg(cli::key_list_arg("delete", "Keys to remove, separated by commas")),
            Command::new("delete").about("Remove a configured realm and its secrets; its users stay").arg(realm()),
            Command::new("list").about("List realms, without secrets"),
            Command::new("sync")
                .about("Sync users and groups of an ldap or ad realm (needs a directory server)")
                .long_about(
                    "Sync users and groups from an LDAP or Active Directory realm's server, as pveum \
                     realm sync. Hearth does not connect to directory servers, so this is refused \
                     with the reason; pam, pve and openid realms have nothing to sync.",
                )
                .arg(realm())
                .arg(option("scope", "SCOPE", "What to sync").value_parser(["users", "groups", "both"]))
                .arg(flag("dry-run", "Only show what would change"))
                .arg(flag("enable-new", "Enable new users"))
                .arg(option("remove-vanished", "LIST", "What to remove when it vanished: acl;entry;properties")),
        ])
}

pub fn run(action: &str, m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let realm = super::string(m, "realm");
    match action {
        "add" => change(AccessRequest::RealmAdd { realm, kind: super::string(m, "type"), options: options(m) }, format),
        "modify" => {
            change(AccessRequest::RealmModify { realm, options: options(m), delete: super::list(m, "delete") }, format)
        }
        "delete" => change(AccessRequest::RealmDelete { realm }, format),
        "sync" => {
            let mut options: Vec<(String, String)> = Vec::new();
            for key in ["scope", "remove-vanished"] {
                if let Some(v) = super::optional(m, key) {
                    options.push((key.to_owned(), v));
                }
            }
            for key in ["dry-run", "enable-new"] {
                if let Some(v) = cli::flag_value(m, key) {
                    options.push((key.to_owned(), super::bit(v)));
                }
            }
            change(AccessRequest::RealmSync { realm, options }, format)
        }
        "list" => {
            let realms = match super::call(AccessRequest::RealmList)? {
                Payload::Realms(realms) => realms,
                other => return Err(cli::unexpected(&other)),
            };
            if format.is_json() {
                return cli::print_json(&realms, format);
            }
            let mut table = Table::new(&[
                ("realm", Align::Left),
                ("type", Align::Left),
                ("comment", Align::Left),
                ("options", Align::Left),
            ]);
            for r in &realms {
                let mut options: Vec<String> =
                    r.options.iter().filter(|(k, _)| *k != "comment").map(|(k, v)| format!("{k}={v}")).collect();
                options.extend(r.secrets.iter().map(|s| format!("{s}=<set>")));
                table.row(vec![
                    r.realm.clone(),
                    r.kind.clone(),
                    r.options.get("comment").cloned().unwrap_or_default(),
                    options.join(" "),
                ]);
            }
            table.print()
        }
        other => anyhow::bail!("unknown realm command '{other}'"),
    }
}
