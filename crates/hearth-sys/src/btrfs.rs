//! btrfs subvolumes through the kernel's ioctls: create, snapshot (optionally read-only),
//! delete, subvolume ids, the NOCOW file flag, and the checks that tell a subvolume and a
//! btrfs filesystem apart from plain directories. No btrfs-progs needed at run time.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

const BTRFS_IOCTL_MAGIC: u8 = 0x94;
/// `BTRFS_SUBVOL_RDONLY`.
const SUBVOL_RDONLY: u64 = 1 << 1;
/// The inode number of every subvolume's root directory (`BTRFS_FIRST_FREE_OBJECTID`).
const SUBVOL_ROOT_INODE: u64 = 256;

/// `struct btrfs_ioctl_vol_args`.
#[repr(C)]
struct VolArgs {
    fd: i64,
    name: [u8; 4088],
}

/// `struct btrfs_ioctl_ino_lookup_args`.
#[repr(C)]
struct InoLookupArgs {
    treeid: u64,
    objectid: u64,
    name: [u8; 4080],
}

/// `FS_NOCOW_FL`: the file's data is overwritten in place instead of copied on write.
const FS_NOCOW_FL: libc::c_int = 0x0080_0000;

/// `struct btrfs_ioctl_vol_args_v2`.
#[repr(C)]
struct VolArgsV2 {
    fd: i64,
    transid: u64,
    flags: u64,
    unused: [u64; 4],
    name: [u8; 4040],
}

nix::ioctl_write_ptr!(ioc_subvol_create, BTRFS_IOCTL_MAGIC, 14, VolArgs);
nix::ioctl_write_ptr!(ioc_snap_destroy, BTRFS_IOCTL_MAGIC, 15, VolArgs);
nix::ioctl_write_ptr!(ioc_snap_create_v2, BTRFS_IOCTL_MAGIC, 23, VolArgsV2);
nix::ioctl_readwrite!(ioc_ino_lookup, BTRFS_IOCTL_MAGIC, 18, InoLookupArgs);
nix::ioctl_read!(ioc_subvol_getflags, BTRFS_IOCTL_MAGIC, 25, u64);
nix::ioctl_write_ptr!(ioc_subvol_setflags, BTRFS_IOCTL_MAGIC, 26, u64);
// The kernel declares FS_IOC_[GS]ETFLAGS with a `long` in the request number but reads and
// writes an `int`, so the request codes come from libc and the argument is a c_int.
nix::ioctl_read_bad!(ioc_fs_getflags, libc::FS_IOC_GETFLAGS, libc::c_int);
nix::ioctl_write_ptr_bad!(ioc_fs_setflags, libc::FS_IOC_SETFLAGS, libc::c_int);

/// Splits `path` into its parent directory (opened) and its last component.
fn parent_and_name(path: &Path) -> io::Result<(File, &OsStr)> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{} has no final component", path.display()))
    })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((File::open(parent)?, name))
}

fn copy_name<const N: usize>(name: &OsStr) -> io::Result<[u8; N]> {
    let bytes = name.as_bytes();
    if bytes.len() >= N || bytes.contains(&0) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "subvolume name too long or contains NUL"));
    }
    let mut out = [0u8; N];
    out[..bytes.len()].copy_from_slice(bytes);
    Ok(out)
}

/// Whether `path` lies on a btrfs filesystem.
pub fn is_btrfs(path: &Path) -> io::Result<bool> {
    let stat = nix::sys::statfs::statfs(path)?;
    Ok(stat.filesystem_type() == nix::sys::statfs::BTRFS_SUPER_MAGIC)
}

/// Whether `path` is the root of a btrfs subvolume.
pub fn is_subvolume(path: &Path) -> io::Result<bool> {
    let meta = std::fs::symlink_metadata(path)?;
    Ok(meta.is_dir() && meta.ino() == SUBVOL_ROOT_INODE && is_btrfs(path)?)
}

/// Creates an empty subvolume at `path`; its parent must exist on btrfs.
pub fn create_subvolume(path: &Path) -> io::Result<()> {
    let (parent, name) = parent_and_name(path)?;
    let args = VolArgs { fd: 0, name: copy_name(name)? };
    // SAFETY: `parent` is an open directory for the duration of the call and `args` is a fully
    // initialised `btrfs_ioctl_vol_args` with a NUL-terminated name, which the kernel only reads.
    unsafe { ioc_subvol_create(parent.as_raw_fd(), &args) }?;
    Ok(())
}

/// Snapshots the subvolume `source` as `target` (atomic, O(1)); `readonly` makes the
/// snapshot immutable.
pub fn snapshot(source: &Path, target: &Path, readonly: bool) -> io::Result<()> {
    let src = File::open(source)?;
    let (parent, name) = parent_and_name(target)?;
    let args = VolArgsV2 {
        fd: i64::from(src.as_raw_fd()),
        transid: 0,
        flags: if readonly { SUBVOL_RDONLY } else { 0 },
        unused: [0; 4],
        name: copy_name(name)?,
    };
    // SAFETY: `parent` and `src` stay open during the call; `args` is a fully initialised
    // `btrfs_ioctl_vol_args_v2` (no qgroup inheritance pointer: flags carry only RDONLY) and
    // the kernel only reads it.
    unsafe { ioc_snap_create_v2(parent.as_raw_fd(), &args) }?;
    Ok(())
}

/// Deletes the subvolume at `path` with everything in it. Nested subvolumes must go first.
pub fn delete_subvolume(path: &Path) -> io::Result<()> {
    if !is_subvolume(path)? {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a btrfs subvolume", path.display()),
        ));
    }
    // A read-only snapshot must be made writable before the kernel lets it go.
    if readonly(path)? {
        set_readonly(path, false)?;
    }
    let (parent, name) = parent_and_name(path)?;
    let args = VolArgs { fd: 0, name: copy_name(name)? };
    // SAFETY: `parent` is an open directory for the duration of the call and `args` is a fully
    // initialised `btrfs_ioctl_vol_args`, which the kernel only reads.
    unsafe { ioc_snap_destroy(parent.as_raw_fd(), &args) }?;
    Ok(())
}

/// Whether the subvolume at `path` is read-only.
pub fn readonly(path: &Path) -> io::Result<bool> {
    let dir = File::open(path)?;
    let mut flags = 0u64;
    // SAFETY: `dir` is open during the call and `flags` is a valid, writable u64 for the kernel
    // to fill in.
    unsafe { ioc_subvol_getflags(dir.as_raw_fd(), &mut flags) }?;
    Ok(flags & SUBVOL_RDONLY != 0)
}

/// Makes the subvolume at `path` read-only or writable.
pub fn set_readonly(path: &Path, readonly: bool) -> io::Result<()> {
    let dir = File::open(path)?;
    let mut flags = 0u64;
    // SAFETY: as in `readonly`: an open directory and a writable u64.
    unsafe { ioc_subvol_getflags(dir.as_raw_fd(), &mut flags) }?;
    let flags = if readonly { flags | SUBVOL_RDONLY } else { flags & !SUBVOL_RDONLY };
    // SAFETY: `dir` is open and `flags` is a valid u64 that the kernel only reads.
    unsafe { ioc_subvol_setflags(dir.as_raw_fd(), &flags) }?;
    Ok(())
}

/// The id of the subvolume holding `path` (its tree id). Ids grow with every subvolume or
/// snapshot created on the filesystem, so they order snapshots by creation.
pub fn subvolume_id(path: &Path) -> io::Result<u64> {
    let dir = File::open(path)?;
    // treeid 0 asks for the tree of the open file; objectid 256 (a subvolume root) makes this
    // the unprivileged form of the ioctl, which answers without resolving a path.
    let mut args = InoLookupArgs { treeid: 0, objectid: SUBVOL_ROOT_INODE, name: [0; 4080] };
    // SAFETY: `dir` is open during the call and `args` is a fully initialised, writable
    // `btrfs_ioctl_ino_lookup_args` of the size the request number encodes.
    unsafe { ioc_ino_lookup(dir.as_raw_fd(), &mut args) }?;
    Ok(args.treeid)
}

/// Turns off copy-on-write for the empty file, or for files created later in the directory,
/// at `path` (`chattr +C`). btrfs ignores the flag on files that already hold data.
pub fn set_nocow(path: &Path) -> io::Result<()> {
    let file = File::open(path)?;
    let mut flags: libc::c_int = 0;
    // SAFETY: `file` is open during the call and `flags` is a writable c_int, the type the
    // kernel's FS_IOC_GETFLAGS handler stores.
    unsafe { ioc_fs_getflags(file.as_raw_fd(), &mut flags) }?;
    let flags = flags | FS_NOCOW_FL;
    // SAFETY: `file` is open and `flags` is a c_int that the kernel only reads.
    unsafe { ioc_fs_setflags(file.as_raw_fd(), &flags) }?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_kernel() {
        assert_eq!(size_of::<VolArgs>(), 4096);
        assert_eq!(size_of::<VolArgsV2>(), 4096);
        assert_eq!(size_of::<InoLookupArgs>(), 4096);
    }

    #[test]
    fn plain_directories_are_not_subvolumes() {
        let dir = tempfile::tempdir().unwrap();
        if !is_btrfs(dir.path()).unwrap() {
            assert!(!is_subvolume(dir.path()).unwrap());
            let e = create_subvolume(&dir.path().join("x")).unwrap_err();
            assert!(e.raw_os_error().is_some(), "{e}");
            assert!(delete_subvolume(dir.path()).is_err());
        }
    }
}
