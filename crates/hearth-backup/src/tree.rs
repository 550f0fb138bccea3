//! Directory trees for containers: a POSIX (pax) tar stream made by GNU tar — everything tar
//! keeps: modes, numeric owners, mtimes, ACLs, `user.*` and `security.capability` xattrs,
//! symlinks, hard links, device nodes, sparse files — chunked into a dynamic index, plus a
//! catalog blob mapping each path to its member's byte range in the stream.
//!
//! The catalog is built while the stream passes to the chunker (a small tar header parser),
//! so listing a directory reads one blob, and extracting a few paths fetches only the chunks
//! holding their members: the selected members' bytes, in stream order, followed by an
//! end-of-archive marker, are piped into `tar --extract`.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::ChunkStore;
use crate::error::Error;
use crate::key::KeyFile;
use crate::restore::{ArchiveReader, read_blob};
use crate::snapshot::SnapshotRef;
use crate::writer::{ArchiveStats, BackupWriter};

/// GNU tar options for creating a tree stream (besides `-C <dir> .`). The pax header names and
/// dropped atime/ctime make the stream reproducible, which dedupe needs.
pub const TAR_CREATE_OPTIONS: &[&str] = &[
    "--create",
    "--file=-",
    "--format=posix",
    "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
    "--sparse",
    "--numeric-owner",
    "--acls",
    "--xattrs",
    "--xattrs-include=user.*",
    "--xattrs-include=security.capability",
    "--one-file-system",
];

/// GNU tar options for extracting a tree stream (besides `-C <dir>`).
pub const TAR_EXTRACT_OPTIONS: &[&str] = &[
    "--extract",
    "--file=-",
    "--sparse",
    "--numeric-owner",
    "--acls",
    "--xattrs",
    "--xattrs-include=*",
    "--same-permissions",
    "--same-owner",
];

/// One member of a tree stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// Relative path without `./`; the root directory is `""`.
    pub path: String,
    /// The tar type flag: `0` file, `1` hard link, `2` symlink, `3` char, `4` block, `5` dir, `6` fifo, `S` sparse.
    pub kind: char,
    /// Size of the file's contents (for sparse files, the apparent size).
    pub size: u64,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: i64,
    /// Symlink target or hard-link target (a path in the stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Byte range of the member (extension headers, header, data) in the stream.
    pub start: u64,
    pub end: u64,
}

fn normalize(path: &str) -> String {
    let p = path.trim_start_matches("./").trim_end_matches('/');
    if p == "." { String::new() } else { p.to_owned() }
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

fn numeric(field: &[u8]) -> u64 {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        field[1..].iter().fold(u64::from(field[0] & 0x7f), |acc, &b| acc << 8 | u64::from(b))
    } else {
        let text: String = field.iter().take_while(|&&b| b != 0).map(|&b| b as char).collect();
        u64::from_str_radix(text.trim(), 8).unwrap_or(0)
    }
}

fn cstr(field: &[u8]) -> String {
    String::from_utf8_lossy(&field[..field.iter().position(|&b| b == 0).unwrap_or(field.len())]).into_owned()
}

enum State {
    Header,
    /// Skipping `remaining` data bytes.
    Skip(u64),
    /// Collecting an extension record (`x`, `L`, `K`) of `size` bytes, padded to `padded`.
    Extension {
        flag: u8,
        size: usize,
        padded: u64,
    },
    /// Old GNU sparse extension blocks, then `data` bytes.
    SparseBlocks {
        data: u64,
    },
    End,
}

/// Parses tar headers out of a byte stream fed in arbitrary pieces.
struct CatalogBuilder {
    pos: u64,
    state: State,
    buf: Vec<u8>,
    member_start: Option<u64>,
    pax: Vec<(String, String)>,
    long_name: Option<String>,
    long_link: Option<String>,
    entries: Vec<CatalogEntry>,
    end: Option<u64>,
}

impl CatalogBuilder {
    fn new() -> CatalogBuilder {
        CatalogBuilder {
            pos: 0,
            state: State::Header,
            buf: Vec::with_capacity(512),
            member_start: None,
            pax: Vec::new(),
            long_name: None,
            long_link: None,
            entries: Vec::new(),
            end: None,
        }
    }

    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match self.state {
                State::End => return,
                State::Skip(remaining) => {
                    let n = remaining.min(data.len() as u64);
                    self.state = if n == remaining { State::Header } else { State::Skip(remaining - n) };
                    self.pos += n;
                    data = &data[n as usize..];
                }
                State::Header | State::SparseBlocks { .. } | State::Extension { .. } => {
                    let want = match self.state {
                        State::Extension { padded, .. } => padded as usize,
                        _ => 512,
                    };
                    let n = (want - self.buf.len()).min(data.len());
                    self.buf.extend_from_slice(&data[..n]);
                    self.pos += n as u64;
                    data = &data[n..];
                    if self.buf.len() == want {
                        let block = std::mem::take(&mut self.buf);
                        self.complete(&block);
                    }
                }
            }
        }
    }

    fn complete(&mut self, block: &[u8]) {
        match std::mem::replace(&mut self.state, State::Header) {
            State::Extension { flag, size, .. } => {
                let record = &block[..size];
                match flag {
                    b'x' => self.pax.extend(parse_pax(record)),
                    b'L' => self.long_name = Some(cstr(record)),
                    b'K' => self.long_link = Some(cstr(record)),
                    _ => {}
                }
            }
            State::SparseBlocks { data } => {
                self.state = if block[504] != 0 { State::SparseBlocks { data } } else { skip(data) };
            }
            State::Header => self.header(block),
            State::Skip(_) | State::End => unreachable!("no block is collected in these states"),
        }
    }

    fn header(&mut self, h: &[u8]) {
        let header_pos = self.pos - 512;
        if h.iter().all(|&b| b == 0) {
            self.end = Some(header_pos);
            self.state = State::End;
            return;
        }
        let flag = h[156];
        let size = numeric(&h[124..136]);
        let start = *self.member_start.get_or_insert(header_pos);
        match flag {
            b'x' | b'L' | b'K' => {
                self.state = State::Extension { flag, size: size as usize, padded: size.div_ceil(512) * 512 };
                if size == 0 {
                    self.state = State::Header;
                }
                return;
            }
            b'g' => {
                self.member_start = None;
                self.state = skip(size);
                return;
            }
            _ => {}
        }
        let pax = |key: &str| self.pax.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let mut name = cstr(&h[0..100]);
        let prefix = cstr(&h[345..500]);
        if &h[257..262] == b"ustar" && !prefix.is_empty() && flag != b'S' {
            name = format!("{prefix}/{name}");
        }
        let name = pax("GNU.sparse.name").or_else(|| pax("path")).or(self.long_name.take()).unwrap_or(name);
        let link = pax("linkpath").or(self.long_link.take()).unwrap_or_else(|| cstr(&h[157..257]));
        let stored = pax("size").and_then(|s| s.parse().ok()).unwrap_or(size);
        let apparent = pax("GNU.sparse.realsize")
            .or_else(|| pax("GNU.sparse.size"))
            .and_then(|s| s.parse().ok())
            .unwrap_or(if flag == b'S' { numeric(&h[483..495]) } else { stored });
        let int = |key: &str, field: &[u8]| {
            pax(key).and_then(|v| v.split('.').next()?.parse().ok()).unwrap_or(numeric(field))
        };
        let kind =
            if pax("GNU.sparse.major").is_some() || pax("GNU.sparse.map").is_some() { 'S' } else { flag as char };
        self.entries.push(CatalogEntry {
            path: normalize(&name),
            kind: if kind == '\0' || kind == '7' { '0' } else { kind },
            size: apparent,
            mode: numeric(&h[100..108]) as u32,
            uid: int("uid", &h[108..116]),
            gid: int("gid", &h[116..124]),
            mtime: int("mtime", &h[136..148]) as i64,
            link: matches!(flag, b'1' | b'2').then(|| if flag == b'1' { normalize(&link) } else { link }),
            start,
            end: 0,
        });
        self.member_start = None;
        self.pax.clear();
        self.state = if flag == b'S' && h[482] != 0 { State::SparseBlocks { data: stored } } else { skip(stored) };
    }

    fn finish(mut self) -> Vec<CatalogEntry> {
        let end = self.end.unwrap_or(self.pos);
        let starts: Vec<u64> = self.entries.iter().skip(1).map(|e| e.start).chain([end]).collect();
        for (entry, next) in self.entries.iter_mut().zip(starts) {
            entry.end = next;
        }
        self.entries
    }
}

fn skip(size: u64) -> State {
    let padded = size.div_ceil(512) * 512;
    if padded == 0 { State::Header } else { State::Skip(padded) }
}

/// Records of a pax extended header: `<len> <key>=<value>\n`.
fn parse_pax(mut record: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while let Some(space) = record.iter().position(|&b| b == b' ') {
        let Some(len) = std::str::from_utf8(&record[..space]).ok().and_then(|s| s.parse::<usize>().ok()) else { break };
        if len <= space + 1 || len > record.len() {
            break;
        }
        let body = &record[space + 1..len - 1];
        if let Some(eq) = body.iter().position(|&b| b == b'=') {
            out.push((
                String::from_utf8_lossy(&body[..eq]).into_owned(),
                String::from_utf8_lossy(&body[eq + 1..]).into_owned(),
            ));
        }
        record = &record[len..];
    }
    out
}

/// Passes a stream through while building its catalog.
struct CatalogTee<R> {
    inner: R,
    catalog: CatalogBuilder,
}

impl<R: Read> Read for CatalogTee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.catalog.feed(&buf[..n]);
        Ok(n)
    }
}

fn tar_error(command: &str, stderr: &[u8]) -> Error {
    Error::Command { command: command.to_owned(), message: String::from_utf8_lossy(stderr).trim().to_owned() }
}

/// Backs up the tree under `source` as `<name>.didx` plus its catalog `<name>.catalog.blob`.
pub fn add_tree(writer: &mut BackupWriter, name: &str, source: &Path) -> Result<ArchiveStats, Error> {
    add_tree_with(writer, name, source, &[], crate::meter::no_hook())
}

/// tar arguments for `root` as `.`, with each `(path, source)` as `./path`: a mount point's
/// contents under its path in the tree, as vzdump archives mount points. The n-th source is
/// named `.` followed by n+1 `/.` (which tar keeps as written and a tree never holds), and
/// `--transform` (global in GNU tar, so deepest first) renames that prefix to its path.
pub fn tree_args(root: &Path, mounts: &[(&str, &Path)]) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    let mut members: Vec<std::ffi::OsString> = vec!["-C".into(), root.into(), ".".into()];
    let mut transforms = Vec::new();
    for (i, (path, source)) in mounts.iter().enumerate() {
        let inside = path.trim_matches('/');
        if inside.is_empty() || inside.contains(',') {
            continue;
        }
        let depth = i + 2;
        transforms.push(format!(
            "--transform=s,^\\(\\./\\)\\{{{}\\}}\\.$,./{inside},S;s,^\\(\\./\\)\\{{{depth}\\}},./{inside}/,S",
            depth - 1
        ));
        members.push("-C".into());
        members.push((*source).into());
        members.push(format!(".{}", "/.".repeat(i + 1)).into());
    }
    transforms.reverse();
    args.extend(transforms.into_iter().map(Into::into));
    args.extend(members);
    args
}

/// GNU tar's arguments for vzdump's `exclude-path` patterns, with Proxmox's meaning: a pattern
/// starting with `/` is anchored at the container's root (`/var/log/*.gz`), any other matches
/// at any depth (`*.tmp`, `cache`). They go before the members.
pub fn exclude_args(patterns: &[String]) -> Vec<std::ffi::OsString> {
    let (anchored, floating): (Vec<&String>, Vec<&String>) = patterns.iter().partition(|p| p.starts_with('/'));
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    if !floating.is_empty() {
        args.push("--no-anchored".into());
        args.extend(floating.iter().map(|p| format!("--exclude={p}").into()));
    }
    if !anchored.is_empty() {
        args.push("--anchored".into());
        args.extend(anchored.iter().map(|p| format!("--exclude=.{p}").into()));
    }
    args
}

/// [`add_tree`] with further trees `(path in the tree, source)` under their path (mount
/// points), calling `hook` with every block of the tar stream.
pub fn add_tree_with(
    writer: &mut BackupWriter,
    name: &str,
    source: &Path,
    mounts: &[(&str, &Path)],
    hook: crate::meter::ReadHook<'_>,
) -> Result<ArchiveStats, Error> {
    add_tree_excluding(writer, name, source, mounts, &[], hook)
}

/// [`add_tree_with`], leaving out what the `exclude-path` patterns match ([`exclude_args`]).
pub fn add_tree_excluding(
    writer: &mut BackupWriter,
    name: &str,
    source: &Path,
    mounts: &[(&str, &Path)],
    exclude: &[String],
    hook: crate::meter::ReadHook<'_>,
) -> Result<ArchiveStats, Error> {
    let mut child = Command::new("tar")
        .args(TAR_CREATE_OPTIONS)
        .args(exclude_args(exclude))
        .args(tree_args(source, mounts))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("tar", e))?;
    let stdout = child.stdout.take().expect("stdout was piped");
    let mut stderr = child.stderr.take().expect("stderr was piped");
    let errors = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text);
        text
    });
    let stdout = crate::meter::HookReader { inner: stdout, hook };
    let mut tee = CatalogTee { inner: stdout, catalog: CatalogBuilder::new() };
    let stats = writer.add_stream(name, &mut tee);
    let status = child.wait().map_err(|e| Error::io("tar", e))?;
    let stderr = errors.join().unwrap_or_default();
    let stats = stats?;
    if !status.success() {
        return Err(tar_error(&format!("tar --create -C {}", source.display()), &stderr));
    }
    let entries = tee.catalog.finish();
    let json = serde_json::to_vec(&entries).expect("a catalog serializes");
    writer.add_blob(&format!("{name}.catalog"), &json)?;
    Ok(stats)
}

/// The catalog of a tree archive.
pub fn catalog(
    store: &ChunkStore,
    snap: &SnapshotRef,
    name: &str,
    key: Option<&KeyFile>,
) -> Result<Vec<CatalogEntry>, Error> {
    let bytes = read_blob(store, snap, &format!("{name}.catalog"), key)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(snap.path(store), format!("bad catalog of {name}: {e}")))
}

/// The entries directly inside directory `dir` (`""` or `/` for the root).
pub fn list(
    store: &ChunkStore,
    snap: &SnapshotRef,
    name: &str,
    key: Option<&KeyFile>,
    dir: &str,
) -> Result<Vec<CatalogEntry>, Error> {
    let dir = normalize(dir.trim_start_matches('/'));
    let mut entries: Vec<CatalogEntry> =
        catalog(store, snap, name, key)?.into_iter().filter(|e| !e.path.is_empty() && parent(&e.path) == dir).collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
}

fn run_extract(dest: &Path, feed: impl FnOnce(&mut dyn Write) -> Result<(), Error>) -> Result<(), Error> {
    std::fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    let mut child = Command::new("tar")
        .args(TAR_EXTRACT_OPTIONS)
        .arg("-C")
        .arg(dest)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("tar", e))?;
    let mut stdin = child.stdin.take().expect("stdin was piped");
    let fed = feed(&mut stdin);
    drop(stdin);
    let output = child.wait_with_output().map_err(|e| Error::io("tar", e))?;
    fed?;
    if !output.status.success() {
        return Err(tar_error(&format!("tar --extract -C {}", dest.display()), &output.stderr));
    }
    Ok(())
}

/// Restores a whole tree archive into `dest`.
pub fn restore_tree(
    store: &ChunkStore,
    snap: &SnapshotRef,
    name: &str,
    key: Option<&KeyFile>,
    dest: &Path,
) -> Result<(), Error> {
    restore_tree_with(store, snap, name, key, dest, &mut |_| {}, crate::meter::no_hook())
}

/// [`restore_tree`], telling `size` the stream's length first and calling `hook` with every
/// block of the stream extracted.
pub fn restore_tree_with(
    store: &ChunkStore,
    snap: &SnapshotRef,
    name: &str,
    key: Option<&KeyFile>,
    dest: &Path,
    size: &mut dyn FnMut(u64),
    hook: crate::meter::ReadHook<'_>,
) -> Result<(), Error> {
    let reader = ArchiveReader::open_stream(store, snap, name, key)?;
    size(reader.len());
    let mut reader = crate::meter::HookReader { inner: reader, hook };
    run_extract(dest, |stdin| io::copy(&mut reader, stdin).map(|_| ()).map_err(|e| Error::io(dest, e)))
}

/// Extracts `paths` (files or whole directories) of a tree archive into `dest`, reading only
/// the chunks that hold them. Returns the number of members extracted.
pub fn extract(
    store: &ChunkStore,
    snap: &SnapshotRef,
    name: &str,
    key: Option<&KeyFile>,
    paths: &[&str],
    dest: &Path,
) -> Result<usize, Error> {
    let (members, mut reader) = select_members(store, snap, name, key, paths)?;
    run_extract(dest, |stdin| copy_members(&members, &mut reader, stdin).map_err(|e| Error::io(dest, e)))?;
    Ok(members.len())
}

/// Writes the members under `paths` (`""` for everything) as a tar stream to `out`: what
/// `storectl backup extract` hands to its caller, who unpacks it with their own rights.
/// Answers the number of members written.
pub fn write_tar(
    store: &ChunkStore,
    snap: &SnapshotRef,
    name: &str,
    key: Option<&KeyFile>,
    paths: &[&str],
    out: &mut dyn Write,
) -> Result<usize, Error> {
    let (members, mut reader) = select_members(store, snap, name, key, paths)?;
    copy_members(&members, &mut reader, out).map_err(|e| Error::io(snap.path(store), e))?;
    Ok(members.len())
}

fn select_members(
    store: &ChunkStore,
    snap: &SnapshotRef,
    name: &str,
    key: Option<&KeyFile>,
    paths: &[&str],
) -> Result<(Vec<CatalogEntry>, ArchiveReader), Error> {
    let entries = catalog(store, snap, name, key)?;
    let wanted: Vec<String> = paths.iter().map(|p| normalize(p.trim_start_matches('/'))).collect();
    let selected = |path: &str| wanted.iter().any(|w| w.is_empty() || path == w || path.starts_with(&format!("{w}/")));
    let mut members: Vec<&CatalogEntry> = entries.iter().filter(|e| selected(&e.path)).collect();
    if let Some(missing) = wanted.iter().find(|w| !w.is_empty() && !entries.iter().any(|e| &e.path == *w)) {
        return Err(Error::Invalid(format!("{missing:?} is not in archive {name} of {snap}")));
    }
    // A hard link needs its target member first.
    let targets: Vec<&CatalogEntry> = members
        .iter()
        .filter_map(|e| e.link.as_deref().filter(|_| e.kind == '1'))
        .filter_map(|target| entries.iter().find(|e| e.path == target))
        .collect();
    members.extend(targets);
    members.sort_by_key(|e| e.start);
    members.dedup_by_key(|e| e.start);
    let members = members.into_iter().cloned().collect();
    let reader = ArchiveReader::open_stream(store, snap, name, key)?;
    Ok((members, reader))
}

/// The selected members' bytes in stream order, then the end-of-archive marker.
fn copy_members(members: &[CatalogEntry], reader: &mut ArchiveReader, out: &mut dyn Write) -> io::Result<()> {
    for member in members {
        reader.seek(SeekFrom::Start(member.start))?;
        io::copy(&mut (&mut *reader).take(member.end - member.start), out)?;
    }
    out.write_all(&[0u8; 1024])?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_go_under_their_paths_in_the_stream() {
        let dir = tempfile::tempdir().unwrap();
        let (root, a, b) = (dir.path().join("root"), dir.path().join("a"), dir.path().join("b"));
        for d in [root.join("data"), root.join("etc"), a.join("sub"), b.clone()] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(root.join("etc/f"), b"r").unwrap();
        std::fs::write(a.join("sub/g"), b"a").unwrap();
        std::fs::write(b.join("h"), b"b").unwrap();
        let out = Command::new("tar")
            .args(TAR_CREATE_OPTIONS)
            .args(tree_args(&root, &[("/data", a.as_path()), ("/srv/x/", b.as_path())]))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut catalog = CatalogBuilder::new();
        catalog.feed(&out.stdout);
        let mut names: Vec<String> = catalog.finish().into_iter().map(|e| e.path).collect();
        names.sort();
        assert_eq!(names, ["", "data", "data", "data/sub", "data/sub/g", "etc", "etc/f", "srv/x", "srv/x/h"]);
    }

    #[test]
    fn pax_records_and_numbers() {
        let record = b"30 mtime=1700000000.123456789\n20 path=./a/b c.txt\n";
        assert_eq!(
            parse_pax(record),
            vec![("mtime".into(), "1700000000.123456789".into()), ("path".into(), "./a/b c.txt".into())]
        );
        assert_eq!(numeric(b"0000644\0"), 0o644);
        assert_eq!(numeric(&[0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]), 1 << 32);
        assert_eq!(normalize("./etc/"), "etc");
        assert_eq!(normalize("./"), "");
    }
}
