//! Framing of the `btrfs` stream (described in [`super`]) and the `btrfs send` and
//! `btrfs receive` processes behind each record.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use hearth_core::storage::Format;
use hearth_sys::btrfs as sys;

use super::{CHUNK, MAX_SNAPSHOT_NAME, STREAM_MAGIC};
use crate::{Result, StorageError};

pub(super) fn write_error(e: io::Error) -> StorageError {
    StorageError::Io { context: "writing the export stream".into(), source: e }
}

pub(super) fn read_error(e: io::Error) -> StorageError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        StorageError::Invalid("the btrfs stream ended early".into())
    } else {
        StorageError::Io { context: "reading the import stream".into(), source: e }
    }
}

/// Waits for a tool that was stopped early, so no zombie is left.
fn reap(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Writes one record: the name, then `btrfs send` of `subvolume` (incremental against
/// `parent`) in chunks.
pub(super) fn send_record(out: &mut dyn Write, name: &str, parent: Option<&Path>, subvolume: &Path) -> Result<()> {
    let mut cmd = Command::new("btrfs");
    cmd.args(["send", "-q"]);
    if let Some(parent) = parent {
        cmd.arg("-p").arg(parent);
    }
    let mut child = cmd
        .arg(subvolume)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| tool_error("btrfs", e))?;
    let Some(mut stdout) = child.stdout.take() else {
        reap(child);
        return Err(StorageError::Command("btrfs send has no output".into()));
    };
    let name_len = u32::try_from(name.len()).expect("snapshot names are at most 64 bytes");
    let copied = (|| -> io::Result<()> {
        out.write_all(&name_len.to_le_bytes())?;
        out.write_all(name.as_bytes())?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match stdout.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            out.write_all(&(n as u64).to_le_bytes())?;
            out.write_all(&buf[..n])?;
        }
        Ok(())
    })();
    drop(stdout);
    if let Err(e) = copied {
        reap(child);
        return Err(write_error(e));
    }
    let output = child
        .wait_with_output()
        .map_err(|e| StorageError::Io { context: "waiting for btrfs send".into(), source: e })?;
    if !output.status.success() {
        return Err(StorageError::Command(format!(
            "btrfs send of {} failed: {}",
            subvolume.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    // The record's end goes out only after send succeeded, so a failed send never looks like
    // a complete record.
    out.write_all(&0u64.to_le_bytes()).map_err(write_error)
}

fn tool_error(program: &str, e: io::Error) -> StorageError {
    if e.kind() == io::ErrorKind::NotFound {
        StorageError::Unavailable(format!("{program} is not installed (install btrfs-progs)"))
    } else {
        StorageError::Io { context: format!("running {program}"), source: e }
    }
}

pub(super) fn read_stream_header(input: &mut dyn Read, format: Format) -> Result<()> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte: the send streams that follow must not be read ahead into a buffer.
    while line.len() <= STREAM_MAGIC.len() + 8 {
        input.read_exact(&mut byte).map_err(read_error)?;
        if byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&line);
    let Some(stream_format) = line.strip_prefix(STREAM_MAGIC) else {
        return Err(StorageError::Invalid("not a Hearth btrfs stream (bad header)".into()));
    };
    if stream_format != format.as_str() {
        return Err(StorageError::Invalid(format!(
            "the btrfs stream holds a {stream_format} volume, not a {format} one"
        )));
    }
    Ok(())
}

pub(super) fn read_record_name(input: &mut dyn Read) -> Result<String> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len).map_err(read_error)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_SNAPSHOT_NAME {
        return Err(StorageError::Invalid(format!("a btrfs stream record name of {len} bytes is too long")));
    }
    let mut name = vec![0u8; len];
    input.read_exact(&mut name).map_err(read_error)?;
    String::from_utf8(name).map_err(|_| StorageError::Invalid("a btrfs stream record name is not UTF-8".into()))
}

/// The chunks of one record as a plain byte stream; EOF at the record's end.
struct RecordReader<'a> {
    input: &'a mut dyn Read,
    remaining: u64,
    done: bool,
}

impl Read for RecordReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.remaining == 0 {
            let mut len = [0u8; 8];
            self.input.read_exact(&mut len)?;
            self.remaining = u64::from_le_bytes(len);
            if self.remaining == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let want = usize::try_from(self.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        let n = self.input.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Feeds one record to `btrfs receive` in `dir` and answers with the subvolume it created.
pub(super) fn receive_record(input: &mut dyn Read, dir: &Path) -> Result<PathBuf> {
    let before = dir_names(dir)?;
    // --chroot confines what the stream names to `dir`, whoever wrote it.
    let mut child = Command::new("btrfs")
        .args(["receive", "-q", "--chroot"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| tool_error("btrfs", e))?;
    let Some(mut stdin) = child.stdin.take() else {
        reap(child);
        return Err(StorageError::Command("btrfs receive has no input".into()));
    };
    let mut record = RecordReader { input, remaining: 0, done: false };
    let mut buf = vec![0u8; CHUNK];
    let fed = loop {
        let n = match record.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                drop(stdin);
                reap(child);
                return Err(read_error(e));
            }
        };
        // A write error means receive gave up; its exit status and stderr say why.
        if let Err(e) = stdin.write_all(&buf[..n]) {
            break Err(e);
        }
    };
    drop(stdin);
    let output = child
        .wait_with_output()
        .map_err(|e| StorageError::Io { context: "waiting for btrfs receive".into(), source: e })?;
    if !output.status.success() {
        return Err(StorageError::Invalid(format!(
            "btrfs receive failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    fed.map_err(|e| StorageError::Io { context: "feeding btrfs receive".into(), source: e })?;
    let arrived: Vec<String> = dir_names(dir)?.difference(&before).cloned().collect();
    match arrived.as_slice() {
        [name] if sys::is_subvolume(&dir.join(name)).unwrap_or(false) => Ok(dir.join(name)),
        _ => Err(StorageError::Invalid(format!(
            "a btrfs stream record must create exactly one subvolume, not {}",
            arrived.len()
        ))),
    }
}

fn dir_names(dir: &Path) -> Result<BTreeSet<String>> {
    let entries = fs::read_dir(dir).map_err(|e| StorageError::io("reading", dir, e))?;
    Ok(entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
}
