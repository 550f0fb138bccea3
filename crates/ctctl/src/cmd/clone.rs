//! `ctctl clone`: copy a container to a new id, linked from a template or full, as `pct clone`.

use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_core::GuestKind;
use hearth_core::schema::check;
use hearth_proto::{CloneGuest, CtRequest, Request};

pub fn command() -> Command {
    Command::new("clone")
        .about("Clone a container")
        .long_about(
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
        )
        .arg(cli::vmid_arg("ctid", "The container or template to clone"))
        .arg(cli::vmid_arg("newid", "The id of the new container (see `vmctl nextid`)"))
        .arg(cli::flag_arg("full", "Copy the volumes (default: linked for a template, full otherwise)"))
        .arg(
            Arg::new("hostname")
                .long("hostname")
                .value_name("NAME")
                .value_parser(|s: &str| {
                    GuestKind::Ct.schema().parse_cli("hostname", s).map(|_| s.to_owned()).map_err(|e| e.message)
                })
                .help("The hostname of the new container"),
        )
        .arg(
            Arg::new("target")
                .long("target")
                .visible_alias("storage")
                .value_name("STORAGE")
                .value_parser(check::storage_id)
                .help("Storage for the copied volumes (full clones only; default: each volume's own)"),
        )
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "ctid")?;
    let newid = cli::required_vmid(matches, "newid")?;
    let request = Request::Ct(CtRequest::Clone(CloneGuest {
        vmid,
        newid,
        full: matches.try_get_one::<bool>("full").ok().flatten().copied(),
        name: matches.get_one::<String>("hostname").cloned(),
        target: matches.get_one::<String>("target").cloned(),
    }));
    super::run_request(&request, format, || format!("cloning CT {vmid} to {newid}"))
}
