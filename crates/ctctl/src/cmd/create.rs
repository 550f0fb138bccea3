//! `ctctl create`: a new container from a template and `--<key> <value>` options, as
//! `pct create`.

use anyhow::Context;
use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_core::GuestKind;
use hearth_proto::{CreateGuest, CtCreate, CtRequest, Request, Secret};

/// The `--password` value that means "ask for it".
const ASK: &str = "-";

pub fn command() -> Command {
    Command::new("create")
        .about("Create a container")
        .long_about(
            "Create a system container with the given id from an OS template and configuration, \
             as pct create does. ctctl asks hearthd, which needs VM.Allocate on /vms/<ctid> \
             from the caller.\n\n\
             <ostemplate> is a template volume such as \
             local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst, or its path \
             (/var/lib/vz/template/cache/...); a file outside every storage only root@pam may \
             name. Every configuration key is an \
             option: --hostname web --memory 1024 --rootfs local:8 --net0 \
             name=eth0,bridge=vmbr0,ip=dhcp. Containers are unprivileged unless --unprivileged 0 \
             is given. A volume given as STORAGE:SIZE (in GiB) asks for a new volume and is \
             refused while the node has no storage configured.\n\n\
             --password sets root's password inside the container: given as a value (visible \
             to other users of this host, avoid it), or with no value or '-' asked for twice \
             without echo on a terminal, else read from the first line of standard input. \
             --ssh-public-keys names a local file of public keys, read by ctctl, for root's \
             authorized_keys. --start starts the container once it is created. hearthd \
             validates all values and runs the creation as a task (type vzcreate); ctctl prints \
             the task log and fails if the task fails.",
        )
        .arg(cli::vmid_arg("ctid", "The id of the new container (100 to 999999999; see `vmctl nextid`)"))
        .arg(
            Arg::new("ostemplate")
                .value_name("OSTEMPLATE")
                .required(true)
                .help("The template to unpack: STORAGE:vztmpl/FILE or a path"),
        )
        .args(cli::guest_config_args(GuestKind::Ct))
        .arg(
            Arg::new("password")
                .long("password")
                .value_name("PASSWORD")
                .num_args(0..=1)
                .default_missing_value(ASK)
                .help("Root's password in the container; without a value (or '-') it is asked for"),
        )
        .arg(
            Arg::new("ssh-public-keys")
                .long("ssh-public-keys")
                .value_name("FILE")
                .help("A local file of SSH public keys for root in the container"),
        )
        .arg(cli::flag_arg("start", "Start the container once it is created"))
        .arg(
            Arg::new("storage")
                .long("storage")
                .value_name("STORAGE")
                .value_parser(hearth_core::schema::check::storage_id)
                .help("Storage for a root file system given as a bare size or not at all (default: local)"),
        )
}

/// As pct: `--rootfs 8` is 8 GiB on `--storage` (default `local`), and no `--rootfs` is 4 GiB
/// there.
fn rootfs_on_storage(options: &mut Vec<(String, String)>, storage: Option<&str>) {
    let storage = storage.unwrap_or("local");
    match options.iter_mut().find(|(k, _)| k == "rootfs") {
        Some((_, value)) => {
            let size = value.split(',').next().unwrap_or_default();
            if !size.is_empty() && size.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                *value = format!("{storage}:{value}");
            }
        }
        None => options.push(("rootfs".into(), format!("{storage}:4"))),
    }
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "ctid")?;
    let mut options = cli::guest_config_options(GuestKind::Ct, matches);
    rootfs_on_storage(&mut options, matches.get_one::<String>("storage").map(String::as_str));
    let ostemplate = hearth_client::guest::restore::archive_argument(&super::string(matches, "ostemplate")?)?;
    // Local input first, so nothing is asked of hearthd that could not be completed.
    let ssh_public_keys = match matches.get_one::<String>("ssh-public-keys") {
        Some(file) => Some(std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?),
        None => None,
    };
    let password = match matches.get_one::<String>("password").map(String::as_str) {
        Some(ASK) => Some(hearth_client::password::read_new_password()?),
        Some(given) => Some(Secret::new(given)),
        None => None,
    };
    let start = matches.get_one::<bool>("start").copied().unwrap_or(false);
    let ct = CtCreate { ostemplate, password, ssh_public_keys, start };
    let mut client = cli::connect(crate::BIN)?;
    let request = Request::Ct(CtRequest::Create(CreateGuest { vmid, options, ct: Some(ct) }));
    cli::run_task(&mut client, &request, format).with_context(|| format!("creating CT {vmid}"))?;
    Ok(())
}
