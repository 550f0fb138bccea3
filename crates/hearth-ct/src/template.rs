//! Container templates: unpacking a `.tar.zst`, `.tar.xz`, `.tar.gz` or plain `.tar` into a
//! new container's root directory, the way Proxmox's `pct create` does, and telling which
//! distribution it holds.
//!
//! [`extract`] (in hearthd) starts `hearth-ctmon template` in the target directory with the
//! archive as its standard input; the helper ([`helper_main`]) confines itself with
//! [`sandbox::enter`] — for unprivileged containers in a user namespace, so the kernel shifts
//! every owner (archive uid 0 is host 100000) and file capabilities, and a template cannot
//! write anything container root could not — then chroots into the target, so no symlink in
//! the archive leads outside it.
//!
//! **Refused archives leave nothing.** The helper reads the archive twice: a listing pass
//! checks every member (paths, types, Proxmox's "≥ 10 members and a `sbin`" sanity check)
//! before anything is written, then it seeks back and extracts, checking again. Only if the
//! file changed between the two passes can extraction stop half-way; the error then says so
//! and the caller removes the target as for any failed create.
//!
//! Policy per member, after Proxmox's tar flags (`--numeric-owner -p --xattrs
//! --xattrs-include=user.* --xattrs-include=security.capability --exclude ./dev/*`):
//! numeric owners, full modes (setuid included), mtimes, hard links, symlinks, sparse files,
//! FIFOs, and the `user.*` and `security.capability` xattrs are kept; everything under
//! `./dev/` is skipped (the runtime populates `/dev`); device nodes elsewhere are refused for
//! unprivileged containers and skipped for privileged ones; absolute names, `..` components,
//! multi-volume and unknown member types are refused.

pub(crate) mod sandbox;

use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use nix::sys::stat::{Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;
use serde::{Deserialize, Serialize};
use tar::EntryType;

use crate::spec::IdMap;

/// Proxmox's minimum number of members for something to be a container template.
const MIN_MEMBERS: u64 = 10;

/// What an extracted template turned out to be.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateInfo {
    /// The distribution, as Proxmox's `ostype` (`debian`, `ubuntu`, `alpine`, …); `None` when
    /// nothing identifies it (busybox and other unmanaged systems).
    pub ostype: Option<String>,
    /// Members extracted (entries skipped under `./dev/` not counted).
    pub entries: u64,
    /// Bytes of file data extracted.
    pub bytes: u64,
}

/// Why a template could not be extracted.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot open {}: {source}", path.display())]
    Open { path: PathBuf, source: std::io::Error },
    #[error("cannot start {}: {source}", ctmon.display())]
    Spawn { ctmon: PathBuf, source: std::io::Error },
    #[error("cannot map the container's ids: {0}")]
    IdMap(String),
    /// The archive is not a template Hearth accepts; the message names the member.
    #[error("{0}")]
    Refused(String),
    #[error("extraction failed: {0}")]
    Failed(String),
    #[error("unexpected answer from hearth-ctmon: {0:?}")]
    Protocol(String),
}

/// Extracts `archive` into `target` (an existing, empty directory) as the container whose ids
/// `idmap` maps (`None`: privileged). `ctmon` is the hearth-ctmon binary. For unprivileged
/// containers the target directory is handed to container root first.
pub fn extract(
    ctmon: &Path,
    archive: &Path,
    target: &Path,
    idmap: Option<&IdMap>,
) -> Result<TemplateInfo, TemplateError> {
    let file = File::open(archive).map_err(|source| TemplateError::Open { path: archive.to_owned(), source })?;
    let args = sandbox::idmap_args(idmap);
    let line =
        sandbox::run(ctmon, "template", &args, target, idmap, sandbox::Input::File(file)).map_err(|e| match e {
            sandbox::RunError::Spawn(source) => TemplateError::Spawn { ctmon: ctmon.to_owned(), source },
            sandbox::RunError::IdMap(m) => TemplateError::IdMap(m),
            sandbox::RunError::Refused(m) => TemplateError::Refused(m),
            sandbox::RunError::Failed(m) => TemplateError::Failed(m),
        })?;
    serde_json::from_str(&line).map_err(|_| TemplateError::Protocol(line))
}

/// `hearth-ctmon template [--idmap <json>]`: the archive on stdin, the target as the current
/// directory; prints the [`TemplateInfo`] as one JSON line.
pub fn helper_main(args: &[String]) -> Result<ExitCode, String> {
    let idmap = sandbox::parse_idmap_arg(args)?;
    let stdin = std::io::stdin().as_fd().try_clone_to_owned().map_err(|e| format!("duplicating stdin: {e}"))?;
    let mut archive = File::from(stdin);
    if let Some(map) = &idmap {
        // Still host root here: give the target to container root, so it can create members
        // in it once we are container root (the archive's `./` entry then sets its mode).
        let (uid, gid) = map.root_uid().zip(map.root_gid()).ok_or("the id map does not map container root")?;
        std::os::unix::fs::chown(".", Some(uid), Some(gid)).map_err(|e| format!("chown of the target: {e}"))?;
    }
    sandbox::enter(idmap.as_ref())?;
    let policy = Policy { idmap };
    match list(&mut archive, &policy) {
        Ok(()) => {}
        Err(Problem::Refused(m)) => return Ok(sandbox::refuse("template", &m)),
        Err(Problem::Failed(m)) => return Err(m),
    }
    archive.seek(SeekFrom::Start(0)).map_err(|e| format!("rewinding the archive: {e}"))?;
    let (entries, bytes) = match unpack(&mut archive, &policy) {
        Ok(counts) => counts,
        Err(Problem::Refused(m)) => {
            return Ok(sandbox::refuse("template", &format!("{m} (the archive changed while it was being extracted)")));
        }
        Err(Problem::Failed(m)) => return Err(m),
    };
    let info = TemplateInfo { ostype: detect_ostype(Path::new("/")), entries, bytes };
    println!("{}", serde_json::to_string(&info).expect("TemplateInfo serializes"));
    Ok(ExitCode::SUCCESS)
}

enum Problem {
    /// The archive is not acceptable.
    Refused(String),
    /// Something failed while handling an acceptable one.
    Failed(String),
}

struct Policy {
    /// The container's id map; `None` for a privileged container.
    idmap: Option<IdMap>,
}

/// What to do with one member.
#[derive(Debug, PartialEq)]
enum Action {
    /// Extract it at this path relative to the root (empty: the root itself).
    Extract(PathBuf),
    Skip,
}

/// The decompressed tar stream, by magic bytes.
fn open_tar(file: &mut File) -> Result<tar::Archive<Box<dyn Read + '_>>, Problem> {
    let mut head = [0u8; 512];
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) => return Err(Problem::Failed(format!("reading the archive: {e}"))),
        }
    }
    file.seek(SeekFrom::Start(0)).map_err(|e| Problem::Failed(format!("rewinding the archive: {e}")))?;
    let head = &head[..filled];
    let reader = BufReader::with_capacity(1 << 16, file);
    let stream: Box<dyn Read> = if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(
            zstd::Decoder::with_buffer(reader)
                .map_err(|e| Problem::Failed(format!("cannot start zstd decompression: {e}")))?,
        )
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(liblzma::read::XzDecoder::new(reader))
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(reader))
    } else if head.len() >= 263 && &head[257..262] == b"ustar" {
        Box::new(reader)
    } else {
        let what = if head.starts_with(b"BZh") {
            "a bzip2 file (Hearth reads .tar.zst, .tar.xz, .tar.gz and .tar)"
        } else {
            "not a tar archive, nor a zstd, xz or gzip compressed one"
        };
        return Err(Problem::Refused(format!("the template is {what}")));
    };
    Ok(tar::Archive::new(stream))
}

/// A stream error: the archive is damaged or not what its magic said.
fn unreadable(e: std::io::Error) -> Problem {
    Problem::Refused(format!("the template cannot be read (damaged or not a tar archive): {e}"))
}

/// Decides what to do with a member, or refuses it.
fn classify(path: &Path, kind: EntryType, link: Option<&Path>, policy: &Policy) -> Result<Action, String> {
    let shown = path.display();
    let mut rel = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::Normal(p) => rel.push(p),
            Component::RootDir | Component::Prefix(_) => return Err(format!("member '{shown}' has an absolute name")),
            Component::ParentDir => return Err(format!("member '{shown}' has a '..' component")),
        }
    }
    // Proxmox: `--anchored --exclude ./dev/*`.
    if rel.starts_with("dev") && rel.components().count() > 1 {
        return Ok(Action::Skip);
    }
    match kind {
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse | EntryType::Directory => {}
        EntryType::Symlink => {
            if link.is_none_or(|l| l.as_os_str().is_empty()) {
                return Err(format!("symlink '{shown}' has no target"));
            }
        }
        EntryType::Link => match link {
            Some(target) if target.components().any(|c| matches!(c, Component::ParentDir | Component::RootDir)) => {
                return Err(format!("hard link '{shown}' points outside the archive ('{}')", target.display()));
            }
            Some(target) if !target.as_os_str().is_empty() => {}
            _ => return Err(format!("hard link '{shown}' has no target")),
        },
        EntryType::Fifo => {}
        EntryType::Char | EntryType::Block => {
            if policy.idmap.is_some() {
                return Err(format!("member '{shown}' is a device node outside ./dev/"));
            }
            // Privileged: the runtime creates the devices a container gets; none from here.
            return Ok(Action::Skip);
        }
        EntryType::XGlobalHeader => return Ok(Action::Skip),
        other => {
            let byte = other.as_byte();
            let what = if byte == b'M' {
                "a multi-volume continuation".to_owned()
            } else {
                format!("of type '{}'", byte as char)
            };
            return Err(format!("member '{shown}' is {what}, which Hearth does not extract"));
        }
    }
    Ok(Action::Extract(rel))
}

/// Refuses a member whose owner the container's id map does not cover: container root
/// could not create it (Proxmox's tar would fail half-way; we refuse before writing).
fn check_owner(map: &IdMap, header: &tar::Header, path: &Path) -> Result<(), String> {
    let shown = path.display();
    let uid = header.uid().map_err(|e| format!("member '{shown}': {e}"))?;
    let gid = header.gid().map_err(|e| format!("member '{shown}': {e}"))?;
    let mapped = |ranges: &[crate::spec::IdMapEntry], id: u64| {
        u32::try_from(id).ok().and_then(|id| IdMap::host_id(ranges, id)).is_some()
    };
    if !mapped(&map.uid, uid) {
        return Err(format!("member '{shown}' is owned by uid {uid}, which the container's id map does not cover"));
    }
    if !mapped(&map.gid, gid) {
        return Err(format!("member '{shown}' is owned by gid {gid}, which the container's id map does not cover"));
    }
    Ok(())
}

/// The listing pass: every member acceptable, at least [`MIN_MEMBERS`], and a `sbin`.
fn list(file: &mut File, policy: &Policy) -> Result<(), Problem> {
    let mut archive = open_tar(file)?;
    let mut members = 0u64;
    let mut sbin = false;
    for entry in archive.entries().map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            continue;
        }
        let path = entry.path().map_err(unreadable)?.into_owned();
        let link = entry.link_name().map_err(unreadable)?.map(|l| l.into_owned());
        members += 1;
        let action = classify(&path, kind, link.as_deref(), policy).map_err(Problem::Refused)?;
        if let (Some(map), Action::Extract(_)) = (&policy.idmap, &action) {
            check_owner(map, entry.header(), &path).map_err(Problem::Refused)?;
        }
        match action {
            Action::Extract(rel) if rel == Path::new("sbin") && (kind.is_dir() || kind.is_symlink()) => sbin = true,
            _ => {}
        }
    }
    if members < MIN_MEMBERS {
        return Err(Problem::Refused(format!(
            "does not look like a container template: {members} members, expected at least {MIN_MEMBERS}"
        )));
    }
    if !sbin {
        return Err(Problem::Refused("does not look like a container template: no sbin".into()));
    }
    Ok(())
}

/// The extraction pass, into `/` (the chroot). Returns members extracted and data bytes.
fn unpack(file: &mut File, policy: &Policy) -> Result<(u64, u64), Problem> {
    let mut archive = open_tar(file)?;
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    // Applied by hand below: only user.* and security.capability, like Proxmox.
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    let root = Path::new("/");
    let (mut count, mut bytes) = (0u64, 0u64);
    // Directory mtimes change as members are created in them: set them last, deepest first.
    let mut dir_times: Vec<(PathBuf, u64)> = Vec::new();
    for entry in archive.entries().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        let header = entry.header().clone();
        let kind = header.entry_type();
        let path = entry.path().map_err(unreadable)?.into_owned();
        let link = entry.link_name().map_err(unreadable)?.map(|l| l.into_owned());
        let rel = match classify(&path, kind, link.as_deref(), policy).map_err(Problem::Refused)? {
            Action::Skip => continue,
            Action::Extract(rel) => rel,
        };
        let failed = |e: &dyn std::fmt::Display| Problem::Failed(format!("member '{}': {e}", path.display()));
        let dst = root.join(&rel);
        let uid = header.uid().map_err(|e| failed(&e))?;
        let gid = header.gid().map_err(|e| failed(&e))?;
        let mode = header.mode().map_err(|e| failed(&e))?;
        if rel.as_os_str().is_empty() {
            // `./`: the target itself. tar's unpack_in skips it; GNU tar applies its owner
            // and mode, and so do we.
            if kind.is_dir() {
                set_owner_mode(&dst, uid, gid, mode).map_err(|e| failed(&e))?;
                dir_times.push((dst, header.mtime().unwrap_or(0)));
            }
            count += 1;
            continue;
        }
        if kind == EntryType::Fifo {
            make_fifo(&dst, uid, gid, mode, header.mtime().unwrap_or(0)).map_err(|e| failed(&e))?;
        } else {
            entry.unpack_in(root).map_err(|e| failed(&e))?;
        }
        if kind.is_dir() {
            dir_times.push((dst.clone(), header.mtime().unwrap_or(0)));
        }
        if kind.is_file() || kind == EntryType::Continuous || kind == EntryType::GNUSparse {
            bytes += header.size().unwrap_or(0);
        }
        apply_xattrs(&mut entry, &dst, kind.is_symlink()).map_err(|e| failed(&e))?;
        count += 1;
    }
    dir_times.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (dir, mtime) in dir_times {
        let time = TimeSpec::new(mtime as i64, 0);
        nix::sys::stat::utimensat(nix::fcntl::AT_FDCWD, &dir, &time, &time, UtimensatFlags::NoFollowSymlink)
            .map_err(|e| Problem::Failed(format!("setting the mtime of {}: {e}", dir.display())))?;
    }
    Ok((count, bytes))
}

fn set_owner_mode(path: &Path, uid: u64, gid: u64, mode: u32) -> std::io::Result<()> {
    let id = |v: u64| u32::try_from(v).map_err(|_| std::io::Error::other(format!("id {v} is out of range")));
    // Owner first: chown clears setuid and setgid bits.
    std::os::unix::fs::lchown(path, Some(id(uid)?), Some(id(gid)?))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
}

fn make_fifo(path: &Path, uid: u64, gid: u64, mode: u32, mtime: u64) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o600))?;
    set_owner_mode(path, uid, gid, mode)?;
    let time = TimeSpec::new(mtime as i64, 0);
    nix::sys::stat::utimensat(nix::fcntl::AT_FDCWD, path, &time, &time, UtimensatFlags::NoFollowSymlink)?;
    Ok(())
}

/// Sets the member's `user.*` and `security.capability` xattrs (after the owner: chown
/// drops file capabilities). Symlinks cannot carry user.* xattrs.
fn apply_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>, dst: &Path, symlink: bool) -> std::io::Result<()> {
    let Some(extensions) = entry.pax_extensions()? else { return Ok(()) };
    for extension in extensions {
        let extension = extension?;
        let Some(name) = extension.key_bytes().strip_prefix(b"SCHILY.xattr.") else { continue };
        let wanted = (name.starts_with(b"user.") && !symlink) || name == b"security.capability";
        if wanted {
            xattr::set(dst, OsStr::from_bytes(name), extension.value_bytes())
                .map_err(|e| std::io::Error::new(e.kind(), format!("xattr {}: {e}", String::from_utf8_lossy(name))))?;
        }
    }
    Ok(())
}

/// The distribution in `root`, as Proxmox's `PVE::LXC::Setup` tells it.
pub fn detect_ostype(root: &Path) -> Option<String> {
    // The tree is the template's: a member may be a FIFO or a huge sparse file.
    let read = |p: &str| {
        crate::setup::read_regular(&root.join(p).to_string_lossy(), 64 << 10).ok().flatten().unwrap_or_default()
    };
    let exists = |p: &str| root.join(p).is_file();
    let os_release_id = || {
        let text = read("etc/os-release");
        let text = if text.is_empty() { read("usr/lib/os-release") } else { text };
        text.lines()
            .find_map(|l| l.strip_prefix("ID="))
            .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'').to_ascii_lowercase())
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)))
    };
    let lsb_ubuntu = read("etc/lsb-release").lines().any(|l| l.trim().eq_ignore_ascii_case("DISTRIB_ID=Ubuntu"));
    let id = os_release_id();
    let ostype = if lsb_ubuntu || id.as_deref() == Some("ubuntu") {
        "ubuntu"
    } else if exists("etc/devuan_version") {
        "devuan"
    } else if exists("etc/debian_version") {
        "debian"
    } else if exists("etc/alpine-release") {
        "alpine"
    } else if exists("etc/SuSE-brand") || exists("etc/SuSE-release") {
        "opensuse"
    } else if exists("etc/fedora-release") {
        "fedora"
    } else if exists("etc/redhat-release") {
        "centos"
    } else if exists("etc/arch-release") {
        "archlinux"
    } else if exists("etc/gentoo-release") {
        "gentoo"
    } else {
        return id;
    };
    Some(ostype.to_owned())
}

/// Also the template builders the set-up tests use.
#[cfg(test)]
pub(crate) mod tests;
