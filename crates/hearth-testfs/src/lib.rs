//! A throwaway btrfs filesystem for tests, in a leaf crate so that hearth-storage's own tests
//! can use it without depending on hearthd: a sparse image file formatted with mkfs.btrfs,
//! attached to a loop device and mounted in a temporary directory, all undone on drop (also
//! when the test panics). Needs root and btrfs-progs.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A mounted btrfs filesystem on a loop device.
#[derive(Debug)]
pub struct BtrfsLoop {
    /// Holds the image file and the mount point; dropped (removed) after the unmount.
    dir: tempfile::TempDir,
    mount_point: PathBuf,
    device: Option<String>,
    mounted: bool,
}

impl BtrfsLoop {
    /// Makes a btrfs filesystem of `size_bytes` (sparse, so only used blocks cost space) and
    /// mounts it. A failure part-way undoes the steps already taken.
    pub fn new(size_bytes: u64) -> io::Result<BtrfsLoop> {
        let dir = tempfile::Builder::new().prefix("hearth-btrfs-").tempdir()?;
        let image = dir.path().join("fs.img");
        let mount_point = dir.path().join("mnt");
        // Built before the first step so that dropping it on any error undoes what was done.
        let mut fs = BtrfsLoop { mount_point, dir, device: None, mounted: false };
        File::create(&image)?.set_len(size_bytes)?;
        std::fs::create_dir(&fs.mount_point)?;
        run(Command::new("mkfs.btrfs").arg("-q").arg("-f").arg(&image)).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                io::Error::new(io::ErrorKind::NotFound, "mkfs.btrfs is missing: install btrfs-progs")
            } else {
                e
            }
        })?;
        let device = run(Command::new("losetup").args(["--find", "--show"]).arg(&image))?;
        let device = device.trim().to_owned();
        if device.is_empty() {
            return Err(io::Error::other("losetup printed no device"));
        }
        fs.device = Some(device.clone());
        run(Command::new("mount").args(["-t", "btrfs"]).arg(&device).arg(&fs.mount_point))?;
        fs.mounted = true;
        Ok(fs)
    }

    /// The mount point: the root of the filesystem.
    pub fn path(&self) -> &Path {
        &self.mount_point
    }

    /// The loop device, e.g. `/dev/loop3`.
    pub fn device(&self) -> &str {
        self.device.as_deref().unwrap_or_default()
    }

    /// The temporary directory holding the image file and the mount point.
    pub fn work_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for BtrfsLoop {
    fn drop(&mut self) {
        if self.mounted {
            if let Err(e) = run(Command::new("umount").arg(&self.mount_point)) {
                // Something still holds a file open (a leaked child, a panicking test's
                // handle): detach now, the kernel finishes when the last user goes.
                eprintln!("hearth-test: umount {} failed ({e}); unmounting lazily", self.mount_point.display());
                if let Err(e) = run(Command::new("umount").arg("-l").arg(&self.mount_point)) {
                    eprintln!("hearth-test: lazy umount of {} failed: {e}", self.mount_point.display());
                }
            }
        }
        if let Some(device) = &self.device {
            // After a lazy unmount the device is still busy; losetup -d then marks it to be
            // detached automatically once the filesystem lets go of it.
            if let Err(e) = run(Command::new("losetup").arg("-d").arg(device)) {
                eprintln!("hearth-test: losetup -d {device} failed: {e}");
            }
        }
    }
}

/// Runs a tool, answering with its stdout; a failure carries its stderr.
fn run(cmd: &mut Command) -> io::Result<String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let output = cmd.stdin(Stdio::null()).output()?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "{program} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_btrfs_and_cleans_up() {
        let fs = BtrfsLoop::new(256 << 20).expect("making a btrfs loop mount (needs root and btrfs-progs)");
        let device = fs.device().to_owned();
        let work = fs.work_dir().to_owned();
        std::fs::write(fs.path().join("probe"), b"x").expect("writing to the new filesystem");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("reading mountinfo");
        assert!(mounts.contains(" btrfs "), "{mounts}");
        drop(fs);
        assert!(!work.exists(), "the temporary directory is gone");
        let attached = run(Command::new("losetup").arg("-a")).expect("listing loop devices");
        let image = work.join("fs.img");
        assert!(!attached.contains(&*image.to_string_lossy()), "{device} still attached: {attached}");
    }
}
