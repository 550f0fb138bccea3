//! `userctl token add|modify|remove|list|permissions`: API tokens, as `pveum user token`.

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, Align, OutputFormat, Table};
use hearth_proto::{AccessRequest, Payload};

use super::{bool_option, change, option, positional};

fn userid() -> clap::Arg {
    positional("userid", "USERID", "The token's user, NAME@REALM")
}

fn tokenid() -> clap::Arg {
    positional("tokenid", "TOKENID", "Token name, [A-Za-z][A-Za-z0-9.-_]+")
}

pub fn command() -> Command {
    Command::new("token")
        .about("Manage API tokens")
        .long_about(
            "Manage API tokens USER@REALM!TOKEN. The secret is printed once, when the token is \
             created; hearthd keeps only its SHA-256. With privilege separation (the default) a \
             token holds only what its own ACL entries grant, never more than its user. Anyone may \
             manage their own tokens; others' need User.Modify on /access/groups.",
        )
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommands([
            Command::new("add")
                .about("Create an API token and print its secret")
                .arg(userid())
                .arg(tokenid())
                .arg(bool_option("privsep", "Privilege separation: 1 (default) or 0 for the user's privileges"))
                .arg(
                    option("expire", "EPOCH", "Unix time at which the token expires; 0 is never [default: the user's]")
                        .value_parser(clap::value_parser!(i64)),
                )
                .arg(option("comment", "TEXT", "Comment")),
            Command::new("modify")
                .about("Change a token's privilege separation, expiry or comment")
                .arg(userid())
                .arg(tokenid())
                .arg(bool_option("privsep", "Privilege separation: 1, or 0 for the user's privileges"))
                .arg(
                    option("expire", "EPOCH", "Unix time at which the token expires; 0 is never")
                        .value_parser(clap::value_parser!(i64)),
                )
                .arg(option("comment", "TEXT", "Comment")),
            Command::new("permissions")
                .about("Show what a token may do")
                .long_about(
                    "Show the privileges a token holds, on every path or on --path: with privilege \
                     separation the token's own ACL entries within its user's rights, without it its \
                     user's rights.",
                )
                .arg(userid())
                .arg(tokenid())
                .arg(option("path", "PATH", "Only this ACL path")),
            Command::new("remove").about("Delete an API token and its ACL entries").arg(userid()).arg(tokenid()),
            Command::new("list").about("List a user's API tokens").arg(userid()),
        ])
}

pub fn run(action: &str, m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let userid = super::string(m, "userid");
    let tokenid = super::string(m, "tokenid");
    match action {
        "add" => {
            let request = AccessRequest::TokenAdd {
                userid,
                tokenid,
                privsep: super::bool_value(m, "privsep").unwrap_or(true),
                expire: m.try_get_one::<i64>("expire").ok().flatten().copied(),
                comment: super::optional(m, "comment"),
            };
            let token = match super::call(request)? {
                Payload::NewToken(token) => token,
                other => return Err(cli::unexpected(&other)),
            };
            if format.is_json() {
                return cli::print_json(&token, format);
            }
            let mut table = Table::new(&[("key", Align::Left), ("value", Align::Left)]);
            table.row(vec!["full-tokenid".into(), token.full_tokenid.clone()]);
            table.row(vec!["privsep".into(), super::bit(token.info.privsep)]);
            table.row(vec!["expire".into(), token.info.expire.unwrap_or(0).to_string()]);
            table.row(vec!["value".into(), token.value.clone()]);
            table.print()?;
            eprintln!("NOTE: the secret is shown only this once; store it now");
            Ok(())
        }
        "modify" => change(
            AccessRequest::TokenModify {
                userid,
                tokenid,
                privsep: super::bool_value(m, "privsep"),
                expire: m.try_get_one::<i64>("expire").ok().flatten().copied(),
                comment: super::optional(m, "comment"),
            },
            format,
        ),
        "permissions" => {
            let request = AccessRequest::UserPermissions {
                userid: format!("{userid}!{tokenid}"),
                path: super::optional(m, "path"),
            };
            super::print_permissions(request, format)
        }
        "remove" => change(AccessRequest::TokenRemove { userid, tokenid }, format),
        "list" => {
            let tokens = match super::call(AccessRequest::TokenList { userid })? {
                Payload::Tokens(tokens) => tokens,
                other => return Err(cli::unexpected(&other)),
            };
            if format.is_json() {
                return cli::print_json(&tokens, format);
            }
            let mut table = Table::new(&[
                ("tokenid", Align::Left),
                ("privsep", Align::Left),
                ("expire", Align::Left),
                ("comment", Align::Left),
            ]);
            for t in &tokens {
                table.row(vec![
                    t.tokenid.clone(),
                    super::bit(t.privsep),
                    t.expire.unwrap_or(0).to_string(),
                    super::or_empty(&t.comment),
                ]);
            }
            table.print()
        }
        other => anyhow::bail!("unknown token command '{other}'"),
    }
}
