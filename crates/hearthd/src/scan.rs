//! `storectl scan`: what this host offers for new storages, as `pvesm scan`. LVM volume groups
//! and thin pools and ZFS pools are listed through the host's own tools; NFS, CIFS, iSCSI and
//! Proxmox Backup Server scans come with those storage types.

use std::process::{Command, Stdio};

use hearth_proto::{ErrorKind, ErrorReply, Payload};
use serde_json::{Value, json};

fn err(kind: ErrorKind, message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(kind, message)
}

/// Runs a host tool and answers its output lines; a missing tool is named with its package.
fn tool(program: &str, args: &[&str], package: &str) -> Result<Vec<String>, ErrorReply> {
    let output =
        Command::new(program).args(args).stdin(Stdio::null()).env("LVM_SUPPRESS_FD_WARNINGS", "1").output().map_err(
            |e| match e.kind() {
                std::io::ErrorKind::NotFound => err(
                    ErrorKind::Unavailable,
                    format!("this scan needs {program}, which is not installed (install {package})"),
                ),
                _ => err(ErrorKind::Internal, format!("cannot run {program}: {e}")),
            },
        )?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        return Err(err(ErrorKind::Unavailable, format!("{program} failed ({}): {stderr}", output.status)));
    }
    Ok(String::from_utf8_lossy(&output.stdout).lines().map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()).collect())
}

/// `scan lvm`: the volume groups, `[{"vg": name, "size": bytes, "free": bytes}]`.
fn lvm() -> Result<Vec<Value>, ErrorReply> {
    let lines = tool("vgs", &["--noheadings", "--units", "b", "--nosuffix", "-o", "vg_name,vg_size,vg_free"], "lvm2")?;
    Ok(lines
        .iter()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (vg, size, free) = (f.next()?, f.next()?.parse::<u64>().ok()?, f.next()?.parse::<u64>().ok()?);
            Some(json!({"vg": vg, "size": size, "free": free}))
        })
        .collect())
}

/// `scan lvmthin <vg>`: the thin pools of a volume group, `[{"lv": name, "vg": vg}]`.
fn lvmthin(vg: &str) -> Result<Vec<Value>, ErrorReply> {
    if vg.is_empty() || !vg.bytes().all(|b| b.is_ascii_alphanumeric() || b"+_.-".contains(&b)) || vg.starts_with('-') {
        return Err(err(ErrorKind::Invalid, format!("vg: '{vg}' is not a volume group name")));
    }
    let lines = tool("lvs", &["--noheadings", "-o", "lv_name,lv_attr", vg], "lvm2")?;
    Ok(lines
        .iter()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (lv, attr) = (f.next()?, f.next()?);
            attr.starts_with('t').then(|| json!({"lv": lv, "vg": vg}))
        })
        .collect())
}

/// `scan zfs`: the pools and their file systems, `[{"pool": name, "size": bytes, "free": bytes}]`.
fn zfs() -> Result<Vec<Value>, ErrorReply> {
    if !std::path::Path::new("/dev/zfs").exists() {
        // zfs would say the same less plainly; the kernel module is what is missing.
        tool("zfs", &["version"], "zfsutils-linux")?;
        return Err(err(
            ErrorKind::Unavailable,
            "ZFS is not available: /dev/zfs is missing (load the zfs kernel module)",
        ));
    }
    let lines = tool("zfs", &["list", "-t", "filesystem", "-Hp", "-o", "name,avail,used"], "zfsutils-linux")?;
    Ok(lines
        .iter()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (pool, avail, used) = (f.next()?, f.next()?.parse::<u64>().ok()?, f.next()?.parse::<u64>().ok()?);
            Some(json!({"pool": pool, "size": avail + used, "free": avail}))
        })
        .collect())
}

/// `storectl scan <type> [target]`; answers the list as JSON text.
pub fn scan(kind: &str, target: Option<&str>) -> Result<Payload, ErrorReply> {
    let found = match kind {
        "lvm" => lvm()?,
        "lvmthin" => lvmthin(target.ok_or_else(|| err(ErrorKind::Invalid, "vg: scan lvmthin needs a volume group"))?)?,
        "zfs" => zfs()?,
        "nfs" | "cifs" | "iscsi" | "pbs" => {
            return Err(err(
                ErrorKind::Unavailable,
                format!("scan {kind}: {kind} storages are not supported yet, so there is nothing to scan for"),
            ));
        }
        other => {
            return Err(err(
                ErrorKind::Invalid,
                format!("type: unknown scan '{other}'; one of lvm, lvmthin, zfs, nfs, cifs, iscsi, pbs"),
            ));
        }
    };
    Ok(Payload::Text(Value::Array(found).to_string()))
}
