//! `userctl passwd`: set a `pve`-realm user's password, as `pveum passwd`.

use anyhow::bail;
use clap::{ArgMatches, Command};
use hearth_client::cli::OutputFormat;
use hearth_proto::AccessRequest;

use super::{change, positional};

pub fn command() -> Command {
    Command::new("passwd")
        .about("Set the password of a user in the pve realm")
        .long_about(
            "Set the password of a user in the pve realm. On a terminal it is asked for twice \
             without echo; otherwise the first line of standard input is the password, for \
             scripts. hearthd keeps only an argon2id hash, in etc/hearth/priv/shadow.toml. \
             Users of the pam realm are host accounts: change their password with passwd(1). \
             Anyone may change their own password; another user's needs Realm.AllocateUser on \
             /access/realm/REALM and User.Modify on /access/groups.",
        )
        .arg(positional("userid", "USERID", "User id NAME@pve"))
}

pub fn run(m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let userid = super::string(m, "userid");
    refuse_pam(&userid)?;
    let password = read_new_password()?;
    change(AccessRequest::Passwd { userid, password }, format)
}

/// Refuses early, before asking for a password that could not be used: only users of the `pve`
/// realm have a password Hearth keeps.
pub fn refuse_pam(userid: &str) -> anyhow::Result<()> {
    match userid.rsplit_once('@') {
        Some((_, "pam")) => bail!("'{userid}' is a host account: change its password with passwd(1) on the host"),
        Some((_, realm)) if realm != "pve" => bail!(
            "'{userid}' is not in the pve realm: only pve users have a password kept by Hearth; realm '{realm}' \
             authenticates elsewhere"
        ),
        _ => Ok(()),
    }
}

pub use hearth_client::password::read_new_password;
