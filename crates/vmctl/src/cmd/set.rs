//! `vmctl set`: change, delete or revert configuration keys, as `qm set`.

use anyhow::Context;
use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_core::GuestKind;
use hearth_proto::{Payload, Request, SetGuest, VmRequest};

pub fn command() -> Command {
    Command::new("set")
        .about("Change the configuration of a virtual machine")
        .long_about(
            "Change configuration keys of a virtual machine, as qm set does.\n\n\
             Keys are set with --<key> <value>, removed with --delete and pending changes are \
             dropped with --revert; all of them in one atomic edit. With --digest the edit is refused if the configuration \
             changed since it was read. Prints nothing on success in text mode; JSON output is \
             {\"digest\": \"<new digest>\"}.",
        )
        .arg(cli::vmid_arg("vmid", "The VM to change"))
        .args(cli::guest_config_args(GuestKind::Vm))
        .arg(cli::key_list_arg("delete", "Keys to remove (separated by ',', ';' or spaces; repeatable)"))
        .arg(cli::key_list_arg("revert", "Pending changes to drop (separated by ',', ';' or spaces; repeatable)"))
        .arg(
            Arg::new("digest")
                .long("digest")
                .value_name("DIGEST")
                .help("Refuse the change unless the configuration still has this digest (from `vmctl config`)"),
        )
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let request = Request::Vm(VmRequest::Set(SetGuest {
        vmid,
        options: cli::guest_config_options(GuestKind::Vm, matches),
        delete: cli::key_list(matches, "delete"),
        revert: cli::key_list(matches, "revert"),
        digest: matches.get_one::<String>("digest").cloned(),
    }));
    let mut client = cli::connect(crate::BIN)?;
    match client.call(&request).with_context(|| format!("changing VM {vmid}"))? {
        Payload::Digest(digest) if format.is_json() => {
            cli::print_json(&serde_json::json!({ "digest": digest }), format)
        }
        Payload::Digest(_) => Ok(()),
        other => Err(cli::unexpected(&other)),
    }
}
