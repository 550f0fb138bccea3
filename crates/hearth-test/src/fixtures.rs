//! Where the fixtures built by `cargo xtask fixtures` live: the guest kernel and busybox
//! initramfs that VM tests boot under QEMU, and the busybox container template.
//!
//! The kernel comes twice: [`kernel`] is Debian's bzImage as shipped, [`vmlinux`] the same
//! kernel decompressed to ELF. QEMU boots the ELF through its PVH entry point, skipping the
//! firmware's real-mode path and the decompression, which halves the boot under TCG (about 3 s
//! to the marker instead of 6 on the development machines); the built-in microVM engine loads
//! the ELF too.
//!
//! Tests only locate fixtures; `cargo xtask test` builds them before running any test, and a
//! missing fixture fails the test with the command that builds it.
//!
//! The guest loads the virtio (PCI), ext4 and ACPI button modules, configures `eth0` from
//! `hearth.ip=<address/prefix>` (and `hearth.gw=<address>`) on the kernel command line, and
//! keeps a root shell on the serial console that prints [`READY_MARKER`] right before its
//! first prompt. `poweroff` and the ACPI power button shut it down in order; `poweroff -f` at
//! once.

use std::path::{Path, PathBuf};

/// Printed on the guest's console when its shell can take commands.
pub const READY_MARKER: &str = "HEARTH-GUEST-READY";

/// File names inside [`dir`].
pub const KERNEL: &str = "vmlinuz";
pub const VMLINUX: &str = "vmlinux";
pub const INITRAMFS: &str = "initramfs.cpio";
pub const BUSYBOX_TEMPLATE: &str = "busybox-template.tar.zst";
pub const DEBIAN_TEMPLATE: &str = "debian-12-template.tar.zst";

/// A kernel command line for the guest on QEMU's q35 or pc machine: the console on the first
/// serial port, and a panic ends the VM at once (with QEMU's `-no-reboot`) instead of hanging.
pub const KERNEL_CMDLINE: &str = "console=ttyS0 panic=-1 quiet";

/// `<workspace>/target/fixtures`, whatever the cargo target directory.
pub fn dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("hearth-test lives in <workspace>/crates/hearth-test");
    workspace.join("target").join("fixtures")
}

/// Debian's kernel (an XZ-compressed bzImage).
pub fn kernel() -> PathBuf {
    existing(KERNEL)
}

/// The same kernel as [`kernel`], decompressed: an ELF file with a PVH entry point.
pub fn vmlinux() -> PathBuf {
    existing(VMLINUX)
}

/// The busybox initramfs, an uncompressed newc cpio archive.
pub fn initramfs() -> PathBuf {
    existing(INITRAMFS)
}

/// The busybox container template, a zstd-compressed tar whose entries belong to 0:0.
pub fn busybox_template() -> PathBuf {
    existing(BUSYBOX_TEMPLATE)
}

/// The Debian 12 container template (debootstrap `minbase` with systemd, ifupdown, iproute2
/// and procps), or `None` when it was not built: it takes minutes, so only
/// `cargo xtask fixtures --debian` (and `cargo xtask test`) builds it; tests that use it fail
/// without it, saying so.
pub fn debian_template() -> Option<PathBuf> {
    let path = dir().join(DEBIAN_TEMPLATE);
    path.exists().then_some(path)
}

fn existing(name: &str) -> PathBuf {
    let path = dir().join(name);
    assert!(path.exists(), "{} is missing: run `cargo xtask fixtures` first (cargo xtask test does)", path.display());
    path
}

#[cfg(test)]
mod tests;
