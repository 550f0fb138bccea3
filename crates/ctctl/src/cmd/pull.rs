//! `ctctl pull`: copy a file out of a running container, as `pct pull`.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{PermissionsExt, fchown};

use anyhow::{Context, bail};
use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{CtRequest, Payload, Request};
use nix::unistd::{Group, User};

pub fn command() -> Command {
    Command::new("pull")
        .about("Copy a file out of a container")
        .long_about(
            "Copy a file from inside a running container to a local file, as pct pull does. \
             ctctl creates or truncates <destination> with the caller's own access and hands \
             the open file to hearthd, which needs VM.Allocate on /vms/<ctid> from the caller \
             and writes the container's file <path> into it.\n\n\
             --user, --group and --perms apply to the local file once it is complete: names or \
             numbers of this host's users and groups (changing the owner usually needs root), \
             the mode octal or hexadecimal with 0x. If the copy fails, a destination that ctctl \
             created is removed again; one that existed stays, truncated. Prints nothing on \
             success.",
        )
        .arg(cli::vmid_arg("ctid", "The container to copy from"))
        .arg(super::push::container_path_arg("path", "PATH", "The absolute path of the file inside the container"))
        .arg(super::positional("destination", "DESTINATION", "The local file to write"))
        .args(super::push::owner_args(
            "The owner of the local file (a user of this host)",
            "The group of the local file (a group of this host)",
        ))
        .arg(super::push::perms_arg("The mode of the local file: octal, or hexadecimal with 0x"))
}

pub fn run(matches: &ArgMatches, _format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "ctid")?;
    let path = super::string(matches, "path")?;
    let destination = super::string(matches, "destination")?;
    // Resolved first, so a typo fails before anything is written.
    let uid = matches.get_one::<String>("user").map(|u| host_user(u)).transpose()?;
    let gid = matches.get_one::<String>("group").map(|g| host_group(g)).transpose()?;
    let mode = matches
        .get_one::<String>("perms")
        .map(|p| super::push::parse_perms(p))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let (file, created) = open_destination(&destination)?;
    let copied = copy(vmid, &path, &file).and_then(|()| {
        if uid.is_some() || gid.is_some() {
            fchown(&file, uid, gid).with_context(|| format!("cannot change the owner of {destination}"))?;
        }
        if let Some(mode) = mode {
            file.set_permissions(Permissions::from_mode(mode))
                .with_context(|| format!("cannot change the mode of {destination}"))?;
        }
        Ok(())
    });
    if copied.is_err() && created {
        let _ = fs::remove_file(&destination);
    }
    copied.with_context(|| format!("copying {path} of CT {vmid} to {destination}"))
}

/// Opens `path` for writing: a new file if there is none (`true`), else the existing one,
/// truncated (`false`).
fn open_destination(path: &str) -> anyhow::Result<(File, bool)> {
    match OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(file) => return Ok((file, true)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create {path}")),
    }
    let file =
        OpenOptions::new().write(true).truncate(true).open(path).with_context(|| format!("cannot open {path}"))?;
    Ok((file, false))
}

fn copy(vmid: hearth_core::Vmid, path: &str, file: &File) -> anyhow::Result<()> {
    let request = Request::Ct(CtRequest::Pull { vmid, path: path.to_owned() });
    let target = file.try_clone().context("duplicating the destination's descriptor")?;
    let mut client = cli::connect(crate::BIN)?;
    match client.call_with_file(&request, target.into())? {
        Payload::Empty => Ok(()),
        other => Err(cli::unexpected(&other)),
    }
}

/// A user of this host by number or name.
fn host_user(user: &str) -> anyhow::Result<u32> {
    if let Ok(uid) = user.parse() {
        return Ok(uid);
    }
    match User::from_name(user).with_context(|| format!("cannot look up user '{user}'"))? {
        Some(found) => Ok(found.uid.as_raw()),
        None => bail!("no user '{user}' on this host"),
    }
}

/// A group of this host by number or name.
fn host_group(group: &str) -> anyhow::Result<u32> {
    if let Ok(gid) = group.parse() {
        return Ok(gid);
    }
    match Group::from_name(group).with_context(|| format!("cannot look up group '{group}'"))? {
        Some(found) => Ok(found.gid.as_raw()),
        None => bail!("no group '{group}' on this host"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;

    #[test]
    fn destination_is_created_or_truncated() {
        let dir = std::env::temp_dir().join(format!("ctctl-pull-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out");
        let path_text = path.to_str().unwrap();
        let (_, created) = open_destination(path_text).unwrap();
        assert!(created);
        fs::write(&path, b"old contents").unwrap();
        let (_, created) = open_destination(path_text).unwrap();
        assert!(!created);
        assert_eq!(fs::read(&path).unwrap(), b"");
        assert!(open_destination(dir.join("missing/out").to_str().unwrap()).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn host_ids_by_number_or_name() {
        assert_eq!(host_user("0").unwrap(), 0);
        assert_eq!(host_user("root").unwrap(), 0);
        assert_eq!(host_group("0").unwrap(), 0);
        assert!(host_user("no-such-user-hopefully").is_err());
    }
}
