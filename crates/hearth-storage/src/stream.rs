//! Import and export streams, framed as pvesm frames them: `raw+size`, `qcow2+size` and
//! `vmdk+size` are a u64 little-endian byte count followed by exactly that many bytes of the
//! image file (a qcow2 file carries its internal snapshots); `tar+size` is a u64 size estimate
//! followed by a tar stream of a container directory (numeric owners, xattrs, ACLs, sparse
//! files). The btrfs backend adds its own `btrfs` format (see [`crate::btrfs`]).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::{Result, StorageError};

pub fn write_header(out: &mut dyn Write, size: u64) -> Result<()> {
    out.write_all(&size.to_le_bytes())
        .map_err(|e| StorageError::Io { context: "writing the stream header".into(), source: e })
}

pub fn read_header(input: &mut dyn Read) -> Result<u64> {
    let mut header = [0u8; 8];
    input.read_exact(&mut header).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            StorageError::Invalid("the stream ended before its 8-byte size header".into())
        } else {
            StorageError::Io { context: "reading the stream header".into(), source: e }
        }
    })?;
    Ok(u64::from_le_bytes(header))
}

/// Writes a file as a `*+size` stream.
pub fn export_file(path: &Path, out: &mut dyn Write) -> Result<()> {
    let mut file = File::open(path).map_err(|e| StorageError::io("opening", path, e))?;
    let size = file.metadata().map_err(|e| StorageError::io("reading", path, e))?.len();
    write_header(out, size)?;
    let copied = io::copy(&mut (&mut file).take(size), out).map_err(|e| StorageError::io("exporting", path, e))?;
    if copied != size {
        return Err(StorageError::Command(format!("{} shrank while it was exported", path.display())));
    }
    out.flush().map_err(|e| StorageError::Io { context: "flushing the export stream".into(), source: e })
}

/// Reads a `*+size` stream into a new file at `path` (which must not exist), refusing streams
/// larger than `limit`. Blocks of zeros become holes, so sparse images stay sparse.
pub fn import_file(input: &mut dyn Read, path: &Path, limit: u64) -> Result<u64> {
    let size = read_header(input)?;
    if size > limit {
        return Err(StorageError::Invalid(format!(
            "the stream holds {}, more than the {} available",
            hearth_core::size::format_size(size),
            hearth_core::size::format_size(limit)
        )));
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(path)
        .map_err(|e| StorageError::io("creating", path, e))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    while done < size {
        let want = usize::try_from((size - done).min(buf.len() as u64)).unwrap_or(buf.len());
        let n = match input.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(StorageError::Invalid(format!("the stream ended after {done} of {size} bytes")));
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StorageError::Io { context: "reading the import stream".into(), source: e }),
        };
        if buf[..n].iter().all(|b| *b == 0) {
            file.seek(SeekFrom::Current(n as i64)).map_err(|e| StorageError::io("writing", path, e))?;
        } else {
            file.write_all(&buf[..n]).map_err(|e| StorageError::io("writing", path, e))?;
        }
        done += n as u64;
    }
    file.set_len(size).map_err(|e| StorageError::io("writing", path, e))?;
    file.sync_all().map_err(|e| StorageError::io("syncing", path, e))?;
    Ok(size)
}

const TAR_OPTIONS: [&str; 5] = ["--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "--one-file-system"];

/// Writes a container directory as a `tar+size` stream.
pub fn export_tree(dir: &Path, estimate: u64, out: &mut dyn Write) -> Result<()> {
    write_header(out, estimate)?;
    let mut child = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .args(TAR_OPTIONS)
        .args(["--sparse", "-cf", "-", "."])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| StorageError::Unavailable(format!("cannot run tar: {e}")))?;
    let mut stdout = child.stdout.take().ok_or_else(|| StorageError::Command("tar has no output".into()))?;
    let copied = io::copy(&mut stdout, out);
    let output =
        child.wait_with_output().map_err(|e| StorageError::Io { context: "waiting for tar".into(), source: e })?;
    copied.map_err(|e| StorageError::Io { context: "writing the export stream".into(), source: e })?;
    if !output.status.success() {
        return Err(StorageError::Command(format!("tar failed: {}", String::from_utf8_lossy(&output.stderr).trim())));
    }
    Ok(())
}

/// Extracts a `tar+size` stream into the existing empty directory `dir`. GNU tar refuses
/// members that leave the directory (`..`, absolute names) and defers symlinks, so a crafted
/// archive cannot write through a link it created.
pub fn import_tree(input: &mut dyn Read, dir: &Path) -> Result<()> {
    read_header(input)?;
    let mut child = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .args(TAR_OPTIONS)
        .args(["--same-permissions", "--same-owner", "-xf", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| StorageError::Unavailable(format!("cannot run tar: {e}")))?;
    let mut stdin = child.stdin.take().ok_or_else(|| StorageError::Command("tar has no input".into()))?;
    let copied = io::copy(input, &mut stdin);
    drop(stdin);
    let output =
        child.wait_with_output().map_err(|e| StorageError::Io { context: "waiting for tar".into(), source: e })?;
    if !output.status.success() {
        return Err(StorageError::Invalid(format!(
            "the tar stream cannot be extracted: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    copied.map_err(|e| StorageError::Io { context: "reading the import stream".into(), source: e })?;
    Ok(())
}

/// Makes an empty directory for a container volume, owned like its parent expects.
pub fn make_dir(path: &Path) -> Result<()> {
    std::fs::create_dir(path).map_err(|e| StorageError::io("creating", path, e))
}

/// Bytes used by a directory tree (for `tar+size` estimates and listings).
pub fn tree_usage(dir: &Path) -> u64 {
    let output = Command::new("du").args(["-s", "-B1", "-x"]).arg(dir).stderr(Stdio::null()).output();
    output
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_round_trip_sparse_and_refuse_short_streams() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.raw");
        let mut data = vec![0u8; 3 << 20];
        data[5] = 1;
        data[(3 << 20) - 1] = 7;
        std::fs::write(&src, &data).unwrap();
        let mut stream = Vec::new();
        export_file(&src, &mut stream).unwrap();
        assert_eq!(stream.len(), 8 + data.len());
        let dst = dir.path().join("b.raw");
        assert_eq!(import_file(&mut stream.as_slice(), &dst, u64::MAX).unwrap(), data.len() as u64);
        assert_eq!(std::fs::read(&dst).unwrap(), data);
        use std::os::unix::fs::MetadataExt;
        assert!(std::fs::metadata(&dst).unwrap().blocks() * 512 < data.len() as u64, "zero blocks became holes");

        let short = &stream[..100];
        let e = import_file(&mut &short[..], &dir.path().join("c.raw"), u64::MAX).unwrap_err();
        assert!(e.to_string().contains("ended after 92 of"), "{e}");
        let e = import_file(&mut stream.as_slice(), &dir.path().join("d.raw"), 10).unwrap_err();
        assert!(e.to_string().contains("more than"), "{e}");
    }

    #[test]
    fn trees_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("etc")).unwrap();
        std::fs::write(src.join("etc/hostname"), "ct1\n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("link")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o711)).unwrap();
        std::os::unix::fs::chown(&src, Some(100_000), Some(100_000)).unwrap();
        let mut stream = Vec::new();
        export_tree(&src, 0, &mut stream).unwrap();
        let dst = dir.path().join("dst");
        make_dir(&dst).unwrap();
        import_tree(&mut stream.as_slice(), &dst).unwrap();
        assert_eq!(std::fs::read_to_string(dst.join("etc/hostname")).unwrap(), "ct1\n");
        assert_eq!(std::fs::read_link(dst.join("link")).unwrap(), Path::new("/etc/passwd"));
        use std::os::unix::fs::MetadataExt;
        let top = std::fs::metadata(&dst).unwrap();
        assert_eq!(
            (top.mode() & 0o7777, top.uid(), top.gid()),
            (0o711, 100_000, 100_000),
            "the top directory keeps its owner and mode"
        );
    }
}
