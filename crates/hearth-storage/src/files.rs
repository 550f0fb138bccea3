//! File-system steps the backends share: activation checks, new files written under temporary
//! names, copies, and space figures.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use hearth_core::storage::{Content, StorageConfig};

use crate::{Result, Space, StorageError};

/// A name for a temporary sibling of `final_name` that listings skip: `.tmp-<random>-<name>`.
pub fn temp_name(final_name: &str) -> String {
    let mut bytes = [0u8; 6];
    let nonce = match getrandom::fill(&mut bytes) {
        Ok(()) => hearth_core::hex::encode(&bytes),
        Err(_) => format!("{}", std::process::id()),
    };
    format!(".tmp-{nonce}-{final_name}")
}

pub fn content_names(content: &[Content]) -> String {
    if content.is_empty() {
        return "none".into();
    }
    content.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
}

/// Whether `path` is a mount point, from the kernel's mount table.
pub fn is_mount_point(path: &Path) -> io::Result<bool> {
    let path = fs::canonicalize(path)?;
    let table = fs::read_to_string("/proc/self/mountinfo")?;
    Ok(table.lines().filter_map(|l| l.split(' ').nth(4)).any(|mp| Path::new(&unescape_mount(mp)) == path))
}

/// Mount points in mountinfo escape space, tab, newline and backslash as octal.
fn unescape_mount(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            match u8::from_str_radix(&code, 8) {
                Ok(b) => out.push(char::from(b)),
                Err(_) => {
                    out.push('\\');
                    out.push_str(&code);
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The checks every storage passes before use: not disabled, path present and a directory,
/// mounted when `is_mountpoint` asks for it. Then the content directories are created inside.
pub fn activate(config: &StorageConfig) -> Result<()> {
    check_active(config)?;
    create_content_dirs(config)
}

/// The checks of [`activate`] without creating anything, for backends that check more
/// (the filesystem type) before they write.
pub fn check_active(config: &StorageConfig) -> Result<()> {
    if config.disable {
        return Err(StorageError::Unavailable(format!(
            "storage '{}' is disabled (enable it with: storectl set {} --disable 0)",
            config.id, config.id
        )));
    }
    let path = Path::new(&config.path);
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(StorageError::Unavailable(format!(
                "storage '{}' is not active: {} is not a directory",
                config.id, config.path
            )));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(StorageError::Unavailable(format!(
                "storage '{}' is not active: {} does not exist (create or mount it; Hearth never creates a storage path itself)",
                config.id, config.path
            )));
        }
        Err(e) => return Err(StorageError::io("checking", path, e)),
    }
    if let Some(mp) = &config.mountpoint {
        let mounted = is_mount_point(Path::new(mp))
            .map_err(|e| StorageError::io("checking the mount point", Path::new(mp), e))?;
        if !mounted {
            return Err(StorageError::Unavailable(format!(
                "storage '{}' is not active: {mp} is not mounted (is_mountpoint is set)",
                config.id
            )));
        }
    }
    Ok(())
}

/// Creates the directory of every content type the storage holds.
pub fn create_content_dirs(config: &StorageConfig) -> Result<()> {
    let path = Path::new(&config.path);
    for content in &config.content {
        let dir = path.join(content.subdir());
        fs::create_dir_all(&dir).map_err(|e| StorageError::io("creating", &dir, e))?;
    }
    Ok(())
}

/// Space of the filesystem holding `path`.
pub fn space(path: &Path) -> Result<Space> {
    let st = nix::sys::statvfs::statvfs(path).map_err(|e| StorageError::io("reading the space of", path, e.into()))?;
    let frag = st.fragment_size();
    let total = st.blocks() * frag;
    let free = st.blocks_free() * frag;
    let available = st.blocks_available() * frag;
    Ok(Space { total, used: total.saturating_sub(free), available })
}

/// Refuses sizes that are zero or beyond the available space.
pub fn check_size(size: u64, available: u64, storage: &str) -> Result<()> {
    if size == 0 {
        return Err(StorageError::Invalid("invalid size 0: must be greater than zero".into()));
    }
    if size > available {
        return Err(StorageError::Invalid(format!(
            "size {} exceeds the {} available on storage '{storage}'",
            hearth_core::size::format_size(size),
            hearth_core::size::format_size(available)
        )));
    }
    Ok(())
}

/// Removes a temporary file or directory on drop unless [`TempPath::keep`] was called.
#[derive(Debug)]
pub struct TempPath {
    path: PathBuf,
    keep: bool,
}

impl TempPath {
    pub fn new(path: PathBuf) -> TempPath {
        TempPath { path, keep: false }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the temporary to `target`, which must not exist yet.
    pub fn persist(mut self, target: &Path) -> Result<()> {
        rename_noreplace(&self.path, target)?;
        self.keep = true;
        Ok(())
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        let result = match fs::symlink_metadata(&self.path) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&self.path),
            Ok(_) => fs::remove_file(&self.path),
            Err(_) => Ok(()),
        };
        if let Err(e) = result {
            tracing::error!(path = %self.path.display(), error = %e, "cannot remove a temporary file");
        }
    }
}

/// A guest's image directory (`images/<vmid>`), created on demand and removed again on drop
/// if it is still empty — so an operation that fails leaves no empty directory behind, and one
/// that succeeds keeps it with the new volume inside.
#[derive(Debug)]
pub struct GuestDir {
    path: PathBuf,
}

impl GuestDir {
    pub fn create(path: PathBuf) -> Result<GuestDir> {
        if !path.exists() {
            fs::create_dir_all(&path).map_err(|e| StorageError::io("creating", &path, e))?;
            // Guest files (a container's setuid binaries and device nodes) are not for other
            // host users to reach.
            fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .map_err(|e| StorageError::io("protecting", &path, e))?;
        }
        Ok(GuestDir { path })
    }
}

impl Drop for GuestDir {
    fn drop(&mut self) {
        // Only an empty directory can be removed; a populated one stays, as it should.
        let _ = fs::remove_dir(&self.path);
    }
}

/// Renames `from` to `to` unless `to` exists (atomically: RENAME_NOREPLACE).
pub fn rename_noreplace(from: &Path, to: &Path) -> Result<()> {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    match renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EEXIST) => Err(StorageError::Conflict(format!("{} already exists", to.display()))),
        Err(e) => Err(StorageError::io("renaming into", to, e.into())),
    }
}

/// Copies `input` to a new file at `target` through a temporary sibling, stopping when more
/// than `limit` bytes arrive. Synced before the rename.
pub fn write_new_file(target: &Path, input: &mut dyn Read, limit: u64) -> Result<u64> {
    if target.exists() {
        return Err(StorageError::Conflict(format!("{} already exists; remove it first", target.display())));
    }
    let dir = target.parent().ok_or_else(|| StorageError::Invalid("target has no directory".into()))?;
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temp = TempPath::new(dir.join(temp_name(name)));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(temp.path())
        .map_err(|e| StorageError::io("creating", temp.path(), e))?;
    let written = copy_limited(input, &mut file, limit).map_err(|e| match e {
        CopyError::Limit => StorageError::Invalid(format!(
            "the upload is larger than the {} available on the storage",
            hearth_core::size::format_size(limit)
        )),
        CopyError::Io(e) => StorageError::io("writing", temp.path(), e),
    })?;
    file.sync_all().map_err(|e| StorageError::io("syncing", temp.path(), e))?;
    temp.persist(target)?;
    Ok(written)
}

#[derive(Debug)]
pub enum CopyError {
    Limit,
    Io(io::Error),
}

/// Copies until end of input; fails once more than `limit` bytes have arrived.
pub fn copy_limited(input: &mut dyn Read, out: &mut dyn Write, limit: u64) -> std::result::Result<u64, CopyError> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Io(e)),
        };
        total += n as u64;
        if total > limit {
            return Err(CopyError::Limit);
        }
        out.write_all(&buf[..n]).map_err(CopyError::Io)?;
    }
}

/// Copies a raw image into an existing raw image of at least the same size, data extents only:
/// holes are found with SEEK_DATA/SEEK_HOLE and stay holes, and the kernel's copy_file_range
/// moves the data (sharing extents where the filesystem can, as btrfs does).
pub fn copy_raw(src: &Path, dst: &Path) -> Result<()> {
    use nix::unistd::{Whence, lseek};
    let from = File::open(src).map_err(|e| StorageError::io("opening", src, e))?;
    let to = OpenOptions::new().write(true).open(dst).map_err(|e| StorageError::io("opening", dst, e))?;
    let len = i64::try_from(from.metadata().map_err(|e| StorageError::io("reading", src, e))?.len())
        .map_err(|_| StorageError::Invalid(format!("{} is too large", src.display())))?;
    let copy_err = |e: nix::errno::Errno| StorageError::io("copying into", dst, e.into());
    let mut pos = 0i64;
    while pos < len {
        let data = match lseek(&from, pos, Whence::SeekData) {
            Ok(offset) => offset,
            // No data after `pos`: the rest is a hole.
            Err(nix::errno::Errno::ENXIO) => break,
            Err(e) => return Err(copy_err(e)),
        };
        let hole = lseek(&from, data, Whence::SeekHole).map_err(copy_err)?;
        let (mut off_in, mut off_out) = (data, data);
        while off_in < hole {
            let want = usize::try_from(hole - off_in).unwrap_or(usize::MAX).min(1 << 30);
            let n = nix::fcntl::copy_file_range(&from, Some(&mut off_in), &to, Some(&mut off_out), want)
                .map_err(copy_err)?;
            if n == 0 {
                return Err(StorageError::Command(format!("{} shrank while it was copied", src.display())));
            }
        }
        pos = hole;
    }
    to.sync_all().map_err(|e| StorageError::io("syncing", dst, e))?;
    Ok(())
}

/// Copies a container's directory tree into an existing empty directory, keeping owners,
/// modes, times, xattrs, ACLs, hard links and sparse files.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let mut from = src.as_os_str().to_owned();
    from.push("/.");
    run(Command::new("cp").arg("-a").arg("--reflink=auto").arg("--sparse=always").arg("--").arg(from).arg(dst))
}

/// Runs a tool to completion; a failure carries its stderr.
pub fn run(cmd: &mut Command) -> Result<()> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let output = cmd.stdin(std::process::Stdio::null()).output().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            StorageError::Unavailable(format!("{program} is not installed"))
        } else {
            StorageError::Io { context: format!("running {program}"), source: e }
        }
    })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(StorageError::Command(format!("{program} failed ({}): {}", output.status, stderr.trim())))
}

/// The modification time of a file, in seconds since the epoch.
pub fn mtime(meta: &fs::Metadata) -> i64 {
    meta.mtime()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_files_are_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.iso");
        assert_eq!(write_new_file(&target, &mut &b"12345"[..], 10).unwrap(), 5);
        assert_eq!(fs::read(&target).unwrap(), b"12345");
        assert!(matches!(write_new_file(&target, &mut &b"x"[..], 10), Err(StorageError::Conflict(_))));
        let big = dir.path().join("b.iso");
        assert!(matches!(write_new_file(&big, &mut &[0u8; 100][..], 10), Err(StorageError::Invalid(_))));
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.iso")], "no temporary left behind");
    }

    #[test]
    fn raw_copies_keep_data_and_holes() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("a.raw"), dir.path().join("b.raw"));
        let file = File::create(&src).unwrap();
        file.set_len(64 << 20).unwrap();
        use std::os::unix::fs::FileExt;
        file.write_all_at(&[0xA5; 8192], 1 << 20).unwrap();
        file.write_all_at(b"tail", (64 << 20) - 4).unwrap();
        File::create(&dst).unwrap().set_len(64 << 20).unwrap();
        copy_raw(&src, &dst).unwrap();
        assert_eq!(fs::read(&src).unwrap(), fs::read(&dst).unwrap());
        let used = fs::metadata(&dst).unwrap().blocks() * 512;
        assert!(used < 1 << 20, "holes stay holes: {used} bytes allocated");
    }

    #[test]
    fn mount_points_come_from_the_kernel() {
        assert!(is_mount_point(Path::new("/")).unwrap());
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_mount_point(dir.path()).unwrap());
        assert_eq!(unescape_mount("/mnt/a\\040b"), "/mnt/a b");
    }
}
