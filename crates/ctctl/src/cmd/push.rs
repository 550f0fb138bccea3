//! `ctctl push`: copy a file of the caller's into a running container, as `pct push`.

use std::fs::File;

use anyhow::Context;
use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{CtRequest, Payload, Request};

pub fn command() -> Command {
    Command::new("push")
        .about("Copy a local file into a container")
        .long_about(
            "Copy a local file to a path inside a running container, as pct push does. ctctl \
             opens <file> with the caller's own access and hands the open file to hearthd, \
             which needs VM.Allocate on /vms/<ctid> from the caller.\n\n\
             <destination> is an absolute path inside the container; an existing file there is \
             replaced. The copy belongs to --user and --group (names or numbers as the \
             container knows them; default root) with mode --perms (octal, or hexadecimal with \
             0x; default 0644). Prints nothing on success.",
        )
        .arg(cli::vmid_arg("ctid", "The container to copy into"))
        .arg(super::positional("file", "FILE", "The local file to copy"))
        .arg(container_path_arg("destination", "DESTINATION", "The absolute path of the copy inside the container"))
        .args(owner_args(
            "The owner of the copy inside the container (default root)",
            "The group of the copy (default root's)",
        ))
        .arg(perms_arg("The mode of the copy: octal, or hexadecimal with 0x (default 0644)"))
}

/// A required absolute path inside the container.
pub fn container_path_arg(name: &'static str, value_name: &'static str, help: &'static str) -> Arg {
    super::positional(name, value_name, help).value_parser(|s: &str| {
        if s.starts_with('/') { Ok(s.to_owned()) } else { Err(format!("'{s}' is not an absolute path")) }
    })
}

/// `--user` and `--group`.
pub fn owner_args(user_help: &'static str, group_help: &'static str) -> [Arg; 2] {
    [
        Arg::new("user").long("user").value_name("USER").help(user_help),
        Arg::new("group").long("group").value_name("GROUP").help(group_help),
    ]
}

/// `--perms`, checked while parsing and kept as typed.
pub fn perms_arg(help: &'static str) -> Arg {
    Arg::new("perms")
        .long("perms")
        .value_name("MODE")
        .value_parser(|s: &str| parse_perms(s).map(|_| s.to_owned()))
        .help(help)
}

/// A file mode as pct takes it: octal (`644`, `0755`), or hexadecimal with `0x`.
pub fn parse_perms(text: &str) -> Result<u32, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => u32::from_str_radix(text, 8),
    };
    match parsed {
        Ok(mode) if mode <= 0o7777 && !text.starts_with('+') => Ok(mode),
        _ => Err(format!("'{text}' is not a file mode: octal such as 0644, or hexadecimal with 0x")),
    }
}

pub fn run(matches: &ArgMatches, _format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "ctid")?;
    let file = super::string(matches, "file")?;
    let path = super::string(matches, "destination")?;
    let source = File::open(&file).with_context(|| format!("cannot open {file}"))?;
    let request = Request::Ct(CtRequest::Push {
        vmid,
        path: path.clone(),
        user: matches.get_one::<String>("user").cloned(),
        group: matches.get_one::<String>("group").cloned(),
        perms: matches.get_one::<String>("perms").cloned(),
    });
    let mut client = cli::connect(crate::BIN)?;
    match client
        .call_with_file(&request, source.into())
        .with_context(|| format!("copying {file} to {path} in CT {vmid}"))?
    {
        Payload::Empty => Ok(()),
        other => Err(cli::unexpected(&other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perms_are_octal_or_hex() {
        assert_eq!(parse_perms("644"), Ok(0o644));
        assert_eq!(parse_perms("0755"), Ok(0o755));
        assert_eq!(parse_perms("4755"), Ok(0o4755));
        assert_eq!(parse_perms("0x1a4"), Ok(0o644));
        assert_eq!(parse_perms("0"), Ok(0));
        for bad in ["", "8", "0o644", "rwx", "-644", "+644", "17777", "0x", "0x10000", " 644"] {
            assert!(parse_perms(bad).is_err(), "{bad:?}");
        }
    }
}
