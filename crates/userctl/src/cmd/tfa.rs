//! `userctl user tfa add|list|delete|unlock` (also `userctl tfa …`): second factors (TOTP keys and recovery keys), as
//! `pveum user tfa`.

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, Align, OutputFormat, Table};
use hearth_proto::{AccessRequest, Payload, TfaKind};

use super::{change, positional};

fn userid() -> clap::Arg {
    positional("userid", "USERID", "User id NAME@REALM")
}

pub fn command() -> Command {
    Command::new("tfa")
        .about("Manage second factors")
        .long_about(
            "Manage users' second factors for logging in to the HTTP API: TOTP keys (RFC 6238, \
             SHA-1, 30 s, 6 digits) and a set of ten single-use recovery keys. Secrets are printed \
             once, when added; hearthd keeps them in etc/hearth/priv/tfa.toml (recovery keys only \
             hashed). Anyone may manage their own; others' need User.Modify on /access/groups.",
        )
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommands([
            Command::new("add").about("Add a second factor and print its secret").arg(userid()).arg(
                clap::Arg::new("type")
                    .long("type")
                    .value_name("TYPE")
                    .required(true)
                    .value_parser(["totp", "recovery"])
                    .help("totp: an authenticator app key; recovery: ten single-use keys"),
            ),
            Command::new("list")
                .about("List second factors, without secrets")
                .arg(clap::Arg::new("userid").value_name("USERID").help("Only this user's")),
            Command::new("delete")
                .about("Delete a second factor, or all of a user's")
                .arg(userid())
                .arg(clap::Arg::new("id").value_name("ID").help("The factor's id, as tfa list shows it"))
                .arg(
                    super::option(
                        "id-option",
                        "ID",
                        "The factor's id, as pveum's --id; without any id, all of the user's",
                    )
                    .long("id")
                    .conflicts_with("id"),
                ),
            Command::new("unlock")
                .about("Lift a user's second-factor lockout")
                .long_about(
                    "Lift a user's second-factor lockout, as pveum user tfa unlock. Proxmox locks TOTP \
                     after 8 failed codes; Hearth has no login that asks for a second factor yet, so it \
                     counts no failures and locks nobody: unlock checks that the user exists and \
                     changes nothing. Needs User.Modify on /access/groups.",
                )
                .arg(userid()),
        ])
}

pub fn run(action: &str, m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let userid = super::string(m, "userid");
    match action {
        "add" => {
            let kind = if super::string(m, "type") == "recovery" { TfaKind::Recovery } else { TfaKind::Totp };
            let new = match super::call(AccessRequest::TfaAdd { userid, kind })? {
                Payload::NewTfa(new) => new,
                other => return Err(cli::unexpected(&other)),
            };
            if format.is_json() {
                return cli::print_json(&new, format);
            }
            let mut table = Table::new(&[("key", Align::Left), ("value", Align::Left)]);
            table.row(vec!["userid".into(), new.info.userid.clone()]);
            table.row(vec!["id".into(), new.info.id.clone()]);
            table.row(vec!["type".into(), new.info.kind.as_str().into()]);
            if let Some(secret) = &new.secret {
                table.row(vec!["secret".into(), secret.clone()]);
            }
            if let Some(uri) = &new.uri {
                table.row(vec!["uri".into(), uri.clone()]);
            }
            for key in &new.recovery {
                table.row(vec!["recovery".into(), key.clone()]);
            }
            table.print()?;
            eprintln!("NOTE: the secret is shown only this once; store it now");
            Ok(())
        }
        "list" => {
            let userid = super::optional(m, "userid");
            let entries = match super::call(AccessRequest::TfaList { userid })? {
                Payload::Tfa(entries) => entries,
                other => return Err(cli::unexpected(&other)),
            };
            if format.is_json() {
                return cli::print_json(&entries, format);
            }
            let mut table = Table::new(&[
                ("userid", Align::Left),
                ("id", Align::Left),
                ("type", Align::Left),
                ("created", Align::Right),
                ("remaining", Align::Right),
            ]);
            for e in &entries {
                table.row(vec![
                    e.userid.clone(),
                    e.id.clone(),
                    e.kind.as_str().into(),
                    e.created.to_string(),
                    e.remaining.map(|r| r.to_string()).unwrap_or_default(),
                ]);
            }
            table.print()
        }
        "delete" => {
            let id = super::optional(m, "id").or_else(|| super::optional(m, "id-option"));
            let ids = match id {
                Some(id) => vec![id],
                // As pveum: without an id, every factor of the user.
                None => match super::call(AccessRequest::TfaList { userid: Some(userid.clone()) })? {
                    Payload::Tfa(entries) => entries.into_iter().map(|e| e.id).collect(),
                    other => return Err(cli::unexpected(&other)),
                },
            };
            for id in ids {
                super::call(AccessRequest::TfaDelete { userid: userid.clone(), id })?;
            }
            // One answer however many factors went, as for any other change.
            if format.is_json() { cli::print_json(&Payload::Empty, format) } else { Ok(()) }
        }
        "unlock" => change(AccessRequest::TfaUnlock { userid }, format),
        other => anyhow::bail!("unknown tfa command '{other}'"),
    }
}
