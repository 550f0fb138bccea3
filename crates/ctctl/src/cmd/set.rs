//! `ctctl set`: change, delete or revert configuration keys, as `pct set`.

use anyhow::Context;
use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_core::GuestKind;
use hearth_proto::{CtRequest, Payload, Request, SetGuest};

pub fn command() -> Command {
    Command::new("set")
        .about("Change the configuration of a container")
        .long_about(
            "Change configuration keys of a container, as pct set does.\n\n\
             Keys are set with --<key> <value>, removed with --delete and pending changes are \
             dropped with --revert; all of them in one atomic edit. With --digest the edit is refused if the configuration \
             changed since it was read. Prints nothing on success in text mode; JSON output is \
             {\"digest\": \"<new digest>\"}.",
        )
        .arg(cli::vmid_arg("ctid", "The container to change"))
        .args(cli::guest_config_args(GuestKind::Ct))
        .arg(cli::key_list_arg("delete", "Keys to remove (separated by ',', ';' or spaces; repeatable)"))
        .arg(cli::key_list_arg("revert", "Pending changes to drop (separated by ',', ';' or spaces; repeatable)"))
        .arg(
            Arg::new("digest")
                .long("digest")
                .value_name("DIGEST")
                .help("Refuse the change unless the configuration still has this digest (from `ctctl config`)"),
        )
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "ctid")?;
    let request = Request::Ct(CtRequest::Set(SetGuest {
        vmid,
        options: cli::guest_config_options(GuestKind::Ct, matches),
        delete: cli::key_list(matches, "delete"),
        revert: cli::key_list(matches, "revert"),
        digest: matches.get_one::<String>("digest").cloned(),
    }));
    let mut client = cli::connect(crate::BIN)?;
    match client.call(&request).with_context(|| format!("changing CT {vmid}"))? {
        Payload::Digest(digest) if format.is_json() => {
            cli::print_json(&serde_json::json!({ "digest": digest }), format)
        }
        Payload::Digest(_) => Ok(()),
        other => Err(cli::unexpected(&other)),
    }
}
