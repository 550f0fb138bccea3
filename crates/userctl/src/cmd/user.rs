//! `userctl user add|modify|delete|list|permissions|token|tfa`: users, as `pveum user`.

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, Align, OutputFormat, Table};
use hearth_proto::{AccessRequest, Payload};

use super::{bool_option, change, flag, option, positional};

const USER_OPTIONS: &[&str] = &["email", "firstname", "lastname", "comment", "groups", "enable", "expire"];

fn userid() -> clap::Arg {
    positional(
        "userid",
        "USERID",
        "User id NAME@REALM; realms: pam (host accounts), pve, and configured ones (userctl realm list)",
    )
}

fn user_options() -> Vec<clap::Arg> {
    vec![
        option("email", "EMAIL", "E-mail address"),
        option("firstname", "NAME", "First name"),
        option("lastname", "NAME", "Last name"),
        option("comment", "TEXT", "Comment"),
        option("groups", "GROUPS", "Groups the user belongs to, separated by commas (pveum's -group works too)"),
        bool_option("enable", "Enable (1, the default) or disable (0) the account"),
        option("expire", "EPOCH", "Unix time at which the account expires; 0 is never"),
    ]
}

/// The options given, in the order of [`USER_OPTIONS`].
fn options(matches: &ArgMatches) -> Vec<(String, String)> {
    USER_OPTIONS.iter().filter_map(|k| super::optional(matches, k).map(|v| ((*k).to_owned(), v))).collect()
}

pub fn command() -> Command {
    Command::new("user").about("Manage users").subcommand_required(true).arg_required_else_help(true).subcommands([
        Command::new("add").about("Create a user").arg(userid()).args(user_options()).arg(flag(
            "password",
            "Set a password for a pve-realm user: asked for on a terminal, else read from stdin",
        )),
        Command::new("modify")
            .about("Change a user; an empty value clears a text option")
            .arg(userid())
            .args(user_options())
            .arg(flag("append", "Add --groups to the user's groups instead of replacing them")),
        Command::new("delete").about("Delete a user with its API tokens and ACL entries").arg(userid()),
        Command::new("list").about("List users"),
        Command::new("permissions")
            .about("Show a user's or token's effective privileges")
            .long_about(
                "Show the privileges a user or API token (USER@REALM!TOKEN) holds on every path \
                     where it holds any, or only on --path. Anyone may see their own; others' need \
                     Sys.Audit on /access.",
            )
            .arg(positional("userid", "USERID", "User id NAME@REALM or token id NAME@REALM!TOKEN"))
            .arg(option("path", "PATH", "Only this ACL path")),
        super::token::command(),
        super::tfa::command(),
    ])
}

pub fn run(action: &str, m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let userid = super::string(m, "userid");
    match action {
        "add" => {
            // Asked for first, so a typo does not leave a user without the password meant.
            let password = if cli::flag(m, "password") {
                super::passwd::refuse_pam(&userid)?;
                Some(super::passwd::read_new_password()?)
            } else {
                None
            };
            change(AccessRequest::UserAdd { userid: userid.clone(), options: options(m) }, format)?;
            match password {
                // The user's answer was printed already; this one is empty.
                Some(password) => super::call(AccessRequest::Passwd { userid, password }).map(drop),
                None => Ok(()),
            }
        }
        "modify" => {
            change(AccessRequest::UserModify { userid, options: options(m), append: cli::flag(m, "append") }, format)
        }
        "delete" => change(AccessRequest::UserDelete { userid }, format),
        "list" => {
            let users = match super::call(AccessRequest::UserList)? {
                Payload::Users(users) => users,
                other => return Err(cli::unexpected(&other)),
            };
            if format.is_json() {
                return cli::print_json(&users, format);
            }
            let mut table = Table::new(&[
                ("userid", Align::Left),
                ("enable", Align::Left),
                ("expire", Align::Left),
                ("firstname", Align::Left),
                ("lastname", Align::Left),
                ("email", Align::Left),
                ("groups", Align::Left),
                ("tokens", Align::Left),
                ("comment", Align::Left),
            ]);
            for u in &users {
                table.row(vec![
                    u.userid.clone(),
                    super::bit(u.enable),
                    u.expire.unwrap_or(0).to_string(),
                    super::or_empty(&u.firstname),
                    super::or_empty(&u.lastname),
                    super::or_empty(&u.email),
                    u.groups.join(","),
                    u.tokens.join(","),
                    super::or_empty(&u.comment),
                ]);
            }
            table.print()
        }
        "permissions" => {
            let request = AccessRequest::UserPermissions { userid, path: super::optional(m, "path") };
            super::print_permissions(request, format)
        }
        "token" => crate::group("user token", m, super::token::run),
        "tfa" => crate::group("user tfa", m, super::tfa::run),
        other => anyhow::bail!("unknown user command '{other}'"),
    }
}
