//! `ctctl destroy`: remove a container and its volumes, as `pct destroy`.

use anyhow::Context;
use clap::{Arg, ArgAction, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{CtRequest, DestroyGuest, Request};

pub fn command() -> Command {
    Command::new("destroy")
        .about("Destroy a container")
        .long_about(
            "Destroy a container: remove its configuration, as pct destroy does. hearthd \
             refuses while the container is locked or has protection set. \
             Runs as a task (type \
             vzdestroy) whose log ctctl prints.",
        )
        .arg(cli::vmid_arg("ctid", "The container to destroy"))
        .arg(
            Arg::new("purge")
                .long("purge")
                .action(ArgAction::SetTrue)
                .help("Also remove the container from backup jobs and other references"),
        )
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "ctid")?;
    let mut client = cli::connect(crate::BIN)?;
    let request = Request::Ct(CtRequest::Destroy(DestroyGuest { vmid, purge: matches.get_flag("purge") }));
    cli::run_task(&mut client, &request, format).with_context(|| format!("destroying CT {vmid}"))?;
    Ok(())
}
