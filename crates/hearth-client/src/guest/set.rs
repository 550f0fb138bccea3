//! `vmctl set`, `ctctl set`: change, delete or revert configuration keys, as `qm set` and
//! `pct set`.

use anyhow::Context;
use clap::{Arg, ArgMatches, Command};
use hearth_core::GuestKind;
use hearth_proto::{CtRequest, Payload, SetGuest, VmRequest};

use crate::cli::{self, OutputFormat};

pub fn command(kind: GuestKind) -> Command {
    let n = super::names(kind);
    Command::new("set")
        .about(format!("Change the configuration of a {}", n.noun))
        .long_about(format!(
            "Change configuration keys of a {}, as {} set does.\n\n\
             Keys are set with --<key> <value>, removed with --delete and pending changes are \
             dropped with --revert; all of them in one atomic edit. With --digest the edit is refused if the configuration \
             changed since it was read. Prints nothing on success in text mode; JSON output is \
             {{\"digest\": \"<new digest>\"}}.\n\n\
             On a running {} a change goes to the pending changes ({} pending) unless it applies \
             live: {} The rest applies at the next start or reboot. A hot-plug that fails is \
             reported and the change stays pending.",
            n.noun,
            n.tool,
            n.guest,
            n.bin,
            match kind {
                GuestKind::Vm => "name, description, tags, onboot, startup and protection at once; NICs, \
                    virtio and virtio-scsi disks and vcpus as the hotplug key allows (default \
                    network,disk,usb); the balloon target. Memory is not hot-plugged.",
                GuestKind::Ct => "hostname, description, tags, onboot, startup and protection at once; \
                    memory, swap, cores, cpulimit and cpuunits in the cgroups; NICs plugged, \
                    unplugged and moved between bridges.",
            }
        ))
        .arg(super::id_arg(kind, format!("The {} to change", n.guest)))
        .args(cli::guest_config_args(kind))
        .arg(cli::key_list_arg("delete", "Keys to remove (separated by ',', ';' or spaces; repeatable)"))
        .arg(cli::key_list_arg("revert", "Pending changes to drop (separated by ',', ';' or spaces; repeatable)"))
        .arg(Arg::new("digest").long("digest").value_name("DIGEST").help(format!(
            "Refuse the change unless the configuration still has this digest (from `{} config`)",
            n.bin
        )))
}

pub fn run(kind: GuestKind, bin: &str, matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = super::id(kind, matches)?;
    let mut options = cli::guest_config_options(kind, matches);
    if kind == GuestKind::Vm {
        options = cli::read_vm_option_files(options)?;
    }
    let set = SetGuest {
        vmid,
        options,
        delete: cli::key_list(matches, "delete"),
        revert: cli::key_list(matches, "revert"),
        digest: matches.get_one::<String>("digest").cloned(),
    };
    let request = super::request(kind, set, VmRequest::Set, CtRequest::Set);
    let mut client = cli::connect(bin)?;
    match client.call(&request).with_context(|| format!("changing {} {vmid}", kind.noun()))? {
        Payload::Digest(digest) => print_digest(&digest, format),
        other => Err(cli::unexpected(&other)),
    }
}

/// What `set` and `resize` print on success: nothing in text mode, `{"digest": …}` in JSON.
pub(super) fn print_digest(digest: &str, format: OutputFormat) -> anyhow::Result<()> {
    if format.is_json() { cli::print_json(&serde_json::json!({ "digest": digest }), format) } else { Ok(()) }
}
