//! `ctctl create`: a new container from `--<key> <value>` options, as `pct create`.

use anyhow::Context;
use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_core::GuestKind;
use hearth_proto::{CreateGuest, CtRequest, Request};

pub fn command() -> Command {
    Command::new("create")
        .about("Create a container")
        .long_about(
            "Create a system container with the given id and configuration, as pct create \
             does.\n\n\
             Every configuration key is an option: --hostname web --memory 1024 --rootfs local:8 \
             --net0 name=eth0,bridge=vmbr0,ip=dhcp. Containers are unprivileged unless \
             --unprivileged 0 is given. A volume given as STORAGE:SIZE (in GiB) asks for a new \
             volume and is refused while the node has no storage configured. hearthd validates all values and runs the creation as a \
             task (type vzcreate); ctctl prints the task log and fails if the task fails.",
        )
        .arg(cli::vmid_arg("ctid", "The id of the new container (100 to 999999999; see `vmctl nextid`)"))
        .args(cli::guest_config_args(GuestKind::Ct))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "ctid")?;
    let options = cli::guest_config_options(GuestKind::Ct, matches);
    let mut client = cli::connect(crate::BIN)?;
    let request = Request::Ct(CtRequest::Create(CreateGuest { vmid, options, ct: None }));
    cli::run_task(&mut client, &request, format).with_context(|| format!("creating CT {vmid}"))?;
    Ok(())
}
