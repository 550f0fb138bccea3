//! `vmctl clone`, `ctctl clone`: copy a guest to a new id, linked from a template or full, as
//! `qm clone` and `pct clone`.

use clap::{Arg, ArgMatches, Command};
use hearth_core::GuestKind;
use hearth_core::schema::check;
use hearth_proto::{CloneGuest, CtRequest, VmRequest};

use crate::cli::{self, OutputFormat};

/// The option naming the new guest: qm's `--name`, pct's `--hostname`.
fn name_key(kind: GuestKind) -> &'static str {
    match kind {
        GuestKind::Vm => "name",
        GuestKind::Ct => "hostname",
    }
}

pub fn command(kind: GuestKind) -> Command {
    let n = super::names(kind);
    let (long_about, copies, name_help) = match kind {
        GuestKind::Vm => (
            "Create a new virtual machine <newid> as a copy of <vmid>, as qm clone does. Needs \
             VM.Clone on /vms/<vmid> and VM.Allocate on /vms/<newid>.\n\n\
             A template is cloned linked by default: each disk of the clone is a thin overlay \
             on the template's base image (a qcow2 backing file on dir storage, a writable \
             snapshot on btrfs), made at once whatever its size, on the template's storage. Any \
             other VM is cloned full: every disk is copied, which needs the VM stopped. --full \
             copies a template's disks too; --full 0 is refused for a VM that is not a template. \
             --target puts the copies of a full clone on another storage (qm calls this \
             --storage, which is accepted too; qm's --target names a cluster node).\n\n\
             The clone gets the current configuration of <vmid> without its snapshots, template \
             flag or name (set one with --name), and new MAC addresses. <newid> is reserved and \
             locked while the disks are copied; if the clone fails, nothing of it remains. Runs \
             as a task (type qmclone) whose log vmctl prints; the exit status is the task's.",
            ("disks", "disk"),
            "The name of the new VM (a DNS name)",
        ),
        GuestKind::Ct => (
            "Create a new container <newid> as a copy of <ctid>, as pct clone does. ctctl asks \
             hearthd, which needs VM.Clone on /vms/<ctid> (and VM.Allocate on /vms/<newid>) \
             from the caller.\n\n\
             A template is cloned linked by default: each volume of the clone is a thin copy \
             sharing the template's base volume. Any other container is cloned full: every \
             volume is copied, which needs the container stopped. --full copies a template's \
             volumes too; --full 0 is refused for a container that is not a template. --target \
             puts the copies of a full clone on another storage (pct calls this --storage, \
             which is accepted too; pct's --target names a cluster node).\n\n\
             The clone gets the current configuration of <ctid> without its snapshots or \
             template flag, new MAC addresses, and the hostname --hostname gives. Runs as a task \
             (type vzclone) whose log ctctl prints; the exit status is the task's.",
            ("volumes", "volume"),
            "The hostname of the new container",
        ),
    };
    let (copies, copy) = copies;
    let name_key = name_key(kind);
    Command::new("clone")
        .about(format!("Clone a {}", n.noun))
        .long_about(long_about)
        .arg(super::id_arg(kind, format!("The {} or template to clone", n.guest)))
        .arg(cli::vmid_arg("newid", "").help(format!("The id of the new {} (see `vmctl nextid`)", n.guest)))
        .arg(
            cli::flag_arg("full", "")
                .help(format!("Copy the {copies} (default: linked for a template, full otherwise)")),
        )
        .arg(
            Arg::new(name_key)
                .long(name_key)
                .value_name("NAME")
                .value_parser(move |s: &str| {
                    kind.schema().parse_cli(name_key, s).map(|_| s.to_owned()).map_err(|e| e.message)
                })
                .help(name_help),
        )
        .arg(
            Arg::new("target")
                .long("target")
                .visible_alias("storage")
                .value_name("STORAGE")
                .value_parser(check::storage_id)
                .help(format!("Storage for the copied {copies} (full clones only; default: each {copy}'s own)")),
        )
        .arg(
            Arg::new("bwlimit")
                .long("bwlimit")
                .value_name("KiB/s")
                .value_parser(clap::value_parser!(u64))
                .help("Copy at most this fast (default: the storages' bwlimit clone=; 0: no limit)"),
        )
}

pub fn run(kind: GuestKind, bin: &str, matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = super::id(kind, matches)?;
    let newid = cli::required_vmid(matches, "newid")?;
    let clone = CloneGuest {
        vmid,
        newid,
        full: matches.try_get_one::<bool>("full").ok().flatten().copied(),
        name: matches.get_one::<String>(name_key(kind)).cloned(),
        target: matches.get_one::<String>("target").cloned(),
        bwlimit: matches.get_one::<u64>("bwlimit").copied(),
    };
    let request = super::request(kind, clone, VmRequest::Clone, CtRequest::Clone);
    cli::run_request(bin, &request, format, || format!("cloning {} {vmid} to {newid}", kind.noun()))
}
