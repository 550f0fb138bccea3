//! `cargo xtask fixtures`: what tests boot, built once and cached under `target/fixtures/` —
//! Debian's kernel (as shipped, and decompressed to an ELF `vmlinux`), a busybox initramfs with
//! the kernel's virtio, ext4 and ACPI modules, and a busybox container template; with
//! `--debian`, also a Debian 12 container template made by debootstrap (slow, so not by
//! default). For the kernel-complete test host it unpacks the same kernel package whole with
//! its modules indexed, and installs virtme-ng (pinned, from PyPI) under `target/tools/`. `hearth_test::fixtures` finds them.
//!
//! Each fixture is rebuilt only when a file is missing or its recipe (the text of the files
//! it is made of, the busybox version) changed, so a second run returns at once. The kernel
//! package is downloaded once into `target/fixtures/downloads/` and then kept: remove
//! `target/fixtures` to move to the kernel apt offers now. Runs take a lock on
//! `target/fixtures/.lock`, so concurrent ones wait for each other instead of racing.

mod bzimage;
mod cpio;
mod debian;
mod guest;
mod kmod;
mod rootfs;
mod template;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use hearth_test::fixtures;

use crate::display_command;
use crate::test::{apt_get, ensure_debian_packages};

/// Debian packages the fixtures are built from (busybox-static, qemu-guest-agent for the
/// guest's agent, and xz-utils and zstd for compressed modules and the template) or booted
/// with (qemu-system-x86).
pub const DEBIAN_PACKAGES: &[&str] = &[
    "busybox-static",
    "xz-utils",
    "zstd",
    "qemu-system-x86",
    "qemu-guest-agent",
    // The kernel-complete test host (hearth_test::testhost): depmod indexes its kernel's
    // modules; virtme-ng, from PyPI, gets a Python virtual environment of its own and reads
    // the kernel's version with `file`.
    "kmod",
    "python3-venv",
    "file",
];

/// The metapackage whose dependency names the current Debian kernel package.
const KERNEL_METAPACKAGE: &str = "linux-image-amd64";

/// Builds the usual fixtures and, when `debian` is set, the Debian template too.
pub fn run_with(debian: bool) -> anyhow::Result<()> {
    run()?;
    if debian { run_debian() } else { Ok(()) }
}

/// The Debian 12 template, unless it exists already: it depends on what the archive holds
/// today rather than on a recipe here, so it is not rebuilt when packages change (remove the
/// file to get a fresh one).
pub fn run_debian() -> anyhow::Result<()> {
    ensure_debian_packages(debian::DEBIAN_PACKAGES)?;
    let dir = fixtures::dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _lock = lock(&dir)?;
    let output = dir.join(fixtures::DEBIAN_TEMPLATE);
    if output.exists() {
        eprintln!("fixtures: debian-template is up to date");
        return Ok(());
    }
    let started = Instant::now();
    eprintln!("fixtures: building debian-template (debootstrap, takes minutes)");
    let scratch = scratch_dir(&dir)?;
    let root = scratch.path().join("root");
    std::fs::create_dir(&root).with_context(|| format!("creating {}", root.display()))?;
    let (file, temp) = temp_file(&dir)?;
    debian::build(&root, file).context("building the debian-template fixture")?;
    persist(temp, &output)?;
    let size = std::fs::metadata(&output).with_context(|| format!("{} was not built", output.display()))?.len();
    eprintln!("fixtures: {} ({:.1} MiB)", output.display(), size as f64 / (1 << 20) as f64);
    eprintln!("fixtures: debian-template built in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

pub fn run() -> anyhow::Result<()> {
    ensure_debian_packages(DEBIAN_PACKAGES)?;
    let dir = fixtures::dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _lock = lock(&dir)?;
    let busybox = package_version("busybox-static")?;

    let guest_outputs = [dir.join(fixtures::KERNEL), dir.join(fixtures::VMLINUX), dir.join(fixtures::INITRAMFS)];
    let qemu_ga = package_version("qemu-guest-agent")?;
    let guest_recipe = format!("busybox-static {busybox}\nqemu-guest-agent {qemu_ga}\n{}", guest::recipe());
    build_if_changed(&dir, "guest", &guest_recipe, &guest_outputs, || build_guest(&dir))?;

    build_testhost_kernel(&dir)?;
    ensure_virtme_ng()?;

    let template_outputs = [dir.join(fixtures::BUSYBOX_TEMPLATE)];
    let template_recipe = format!("busybox-static {busybox}\n{}", template::recipe());
    build_if_changed(&dir, "busybox-template", &template_recipe, &template_outputs, || {
        let scratch = scratch_dir(&dir)?;
        let (file, temp) = temp_file(&dir)?;
        template::build(scratch.path(), file)?;
        persist(temp, &dir.join(fixtures::BUSYBOX_TEMPLATE))
    })
}

/// Takes the fixtures directory's lock, then removes what killed runs left: scratch
/// directories and temporary files (named `.tmp-*`) belong to no running build once we hold
/// the lock.
fn lock(dir: &Path) -> anyhow::Result<nix::fcntl::Flock<File>> {
    let path = dir.join(".lock");
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| errno)
        .with_context(|| format!("locking {}", path.display()))?;
    for sub in [dir.to_owned(), dir.join("downloads"), dir.join("testhost")] {
        let Ok(entries) = std::fs::read_dir(&sub) else { continue };
        for entry in entries {
            let path = entry.with_context(|| format!("reading {}", sub.display()))?.path();
            if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(".tmp-")) {
                let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
                removed.with_context(|| format!("removing {}", path.display()))?;
            }
        }
    }
    Ok(lock)
}

/// Runs `build` unless every output exists and `<name>.recipe` holds `recipe`; records the
/// recipe after a successful build.
fn build_if_changed(
    dir: &Path,
    name: &str,
    recipe: &str,
    outputs: &[PathBuf],
    build: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let stamp = dir.join(format!("{name}.recipe"));
    let built = std::fs::read_to_string(&stamp).is_ok_and(|previous| previous == recipe);
    if built && outputs.iter().all(|output| output.exists()) {
        eprintln!("fixtures: {name} is up to date");
        return Ok(());
    }
    // A build that fails half-way may leave some new outputs beside old ones: without the
    // stamp the next run builds again whatever the recipe.
    if let Err(e) = std::fs::remove_file(&stamp)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Err(e).with_context(|| format!("removing {}", stamp.display()));
    }
    let started = Instant::now();
    eprintln!("fixtures: building {name}");
    build().with_context(|| format!("building the {name} fixture"))?;
    std::fs::write(&stamp, recipe).with_context(|| format!("writing {}", stamp.display()))?;
    for output in outputs {
        let size = std::fs::metadata(output).with_context(|| format!("{} was not built", output.display()))?.len();
        eprintln!("fixtures: {} ({:.1} MiB)", output.display(), size as f64 / (1 << 20) as f64);
    }
    eprintln!("fixtures: {name} built in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The kernel and the initramfs, from the same kernel package so the modules' vermagic
/// matches.
fn build_guest(dir: &Path) -> anyhow::Result<()> {
    let deb = kernel_package(&dir.join("downloads"))?;
    let scratch = scratch_dir(dir)?;
    run_tool(Command::new("dpkg").arg("-x").arg(&deb).arg(scratch.path()))?;
    let (vmlinuz, version) = find_vmlinuz(&scratch.path().join("boot"))?;
    eprintln!("fixtures: kernel {version} from {}", deb.display());

    let tree = kmod::ModuleTree::open(&scratch.path().join("lib/modules").join(&version), &version)?;
    let modules = tree.resolve(guest::WANTED_MODULES)?;
    let names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
    eprintln!("fixtures: modules in load order: {}", names.join(" "));

    let bzimage = std::fs::read(&vmlinuz).with_context(|| format!("reading {}", vmlinuz.display()))?;
    let vmlinux = bzimage::vmlinux(&bzimage).with_context(|| format!("decompressing {}", vmlinuz.display()))?;
    write_file(dir, &dir.join(fixtures::KERNEL), &bzimage)?;
    write_file(dir, &dir.join(fixtures::VMLINUX), &vmlinux)?;

    let (file, temp) = temp_file(dir)?;
    let mut out = BufWriter::new(file);
    guest::rootfs(modules)?.write_cpio(&mut out)?;
    out.flush().context("writing the initramfs")?;
    persist(temp, &dir.join(fixtures::INITRAMFS))
}

/// The test host's kernel (`hearth_test::testhost`): the same kernel package unpacked whole
/// into `testhost/<version>/`, its modules indexed by depmod, so that virtme-ng boots the
/// image and `modprobe` finds every module inside. Redone only when the package changes; a
/// tree for another kernel version is removed.
fn build_testhost_kernel(dir: &Path) -> anyhow::Result<()> {
    let deb = kernel_package(&dir.join("downloads"))?;
    let deb_name = deb.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
    let recipe = format!("{deb_name}\nunpacked whole, depmod -a\n");
    let stamp = dir.join("testhost.recipe");
    let root = hearth_test::testhost::kernel_root();
    let built = std::fs::read_to_string(&stamp).is_ok_and(|previous| previous == recipe);
    if built && hearth_test::testhost::find_kernel(&root).is_ok() {
        eprintln!("fixtures: testhost-kernel is up to date");
        return Ok(());
    }
    if let Err(e) = std::fs::remove_file(&stamp)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Err(e).with_context(|| format!("removing {}", stamp.display()));
    }
    let started = Instant::now();
    eprintln!("fixtures: building testhost-kernel");
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let scratch = scratch_dir(&root)?;
    run_tool(Command::new("dpkg").arg("-x").arg(&deb).arg(scratch.path()))?;
    let (_, version) = find_vmlinuz(&scratch.path().join("boot"))?;
    run_tool(Command::new("depmod").args(["-a", "-b"]).arg(scratch.path()).arg(&version))
        .context("indexing the kernel's modules (depmod is in Debian's kmod package)")?;
    for entry in std::fs::read_dir(&root).with_context(|| format!("reading {}", root.display()))? {
        let path = entry.with_context(|| format!("reading {}", root.display()))?.path();
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| !n.starts_with('.')) {
            std::fs::remove_dir_all(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    let target = root.join(&version);
    let scratch = scratch.keep();
    // Unpacked files keep the package's modes; the tree must be readable by QEMU's 9p server.
    std::fs::set_permissions(&scratch, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", scratch.display()))?;
    std::fs::rename(&scratch, &target).with_context(|| format!("moving {} into place", target.display()))?;
    std::fs::write(&stamp, recipe).with_context(|| format!("writing {}", stamp.display()))?;
    eprintln!("fixtures: {} (kernel {version} with its modules)", target.display());
    eprintln!("fixtures: testhost-kernel built in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Installs virtme-ng, pinned to `hearth_test::testhost::VIRTME_NG_VERSION`, from PyPI into a
/// Python virtual environment of its own under `target/tools/`, unless it is there already
/// (then this returns at once). Nothing outside `target/` changes.
pub fn ensure_virtme_ng() -> anyhow::Result<()> {
    use hearth_test::testhost::{VIRTME_NG_VERSION, virtme_ng_dir};
    let venv = virtme_ng_dir();
    let vng = venv.join("bin/vng");
    let installed = Command::new(&vng)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains(VIRTME_NG_VERSION));
    if installed {
        eprintln!("already installed: virtme-ng {VIRTME_NG_VERSION} in {}", venv.display());
        return Ok(());
    }
    if venv.exists() {
        std::fs::remove_dir_all(&venv).with_context(|| format!("removing {}", venv.display()))?;
    }
    let parent = venv.parent().context("the tools directory")?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    // A virtual environment records its own path, so it is made in place; an interrupted
    // install fails the version check above next time and is made again.
    let run = |cmd: &mut Command| -> anyhow::Result<()> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let name = display_command(&program, &args.iter().map(String::as_str).collect::<Vec<_>>());
        eprintln!("$ {name}");
        let status = cmd.stdin(Stdio::null()).status().with_context(|| format!("cannot run {name}"))?;
        if !status.success() {
            bail!("{name} exited with {status}");
        }
        Ok(())
    };
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv))
        .context("creating a Python virtual environment (Debian's python3-venv package)")?;
    run(Command::new(venv.join("bin/python3")).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("virtme-ng=={VIRTME_NG_VERSION}"),
    ]))
    .context("installing virtme-ng from PyPI")?;
    Ok(())
}

/// The single `boot/vmlinuz-<version>` of an unpacked kernel package, and that version.
fn find_vmlinuz(boot: &Path) -> anyhow::Result<(PathBuf, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(boot).with_context(|| format!("reading {}", boot.display()))? {
        let entry = entry.with_context(|| format!("reading {}", boot.display()))?;
        if let Some(version) = entry.file_name().to_str().and_then(|n| n.strip_prefix("vmlinuz-")) {
            found.push((entry.path(), version.to_owned()));
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        n => bail!("expected one vmlinuz-* in {}, found {n}", boot.display()),
    }
}

/// The kernel package: the one already downloaded, or else the current one from apt.
fn kernel_package(downloads: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(downloads).with_context(|| format!("creating {}", downloads.display()))?;
    let mut debs = Vec::new();
    for entry in std::fs::read_dir(downloads).with_context(|| format!("reading {}", downloads.display()))? {
        let path = entry.with_context(|| format!("reading {}", downloads.display()))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with("linux-image-") && name.ends_with(".deb") {
            debs.push(path);
        }
    }
    if let [deb] = debs.as_slice() {
        return Ok(deb.clone());
    }
    for stale in debs {
        std::fs::remove_file(&stale).with_context(|| format!("removing {}", stale.display()))?;
    }
    match download_kernel(downloads) {
        Ok(deb) => Ok(deb),
        // Missing or outdated package lists are the usual cause; only root can refresh them.
        Err(e) if nix::unistd::geteuid().is_root() => {
            eprintln!("fixtures: {e:#}; updating the package lists and trying again");
            apt_get(&["update"])?;
            download_kernel(downloads)
        }
        Err(e) => Err(e.context("`sudo apt-get update` may help")),
    }
}

/// Downloads the package `linux-image-amd64` depends on into `downloads`.
fn download_kernel(downloads: &Path) -> anyhow::Result<PathBuf> {
    let depends = run_tool(Command::new("apt-cache").args(["depends", KERNEL_METAPACKAGE]))?;
    let package = depends
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|dep| dep.starts_with("linux-image-"))
        .with_context(|| format!("apt-cache depends {KERNEL_METAPACKAGE} names no linux-image-* package"))?
        .to_owned();
    // Download into a scratch directory so that an interrupted download is never taken for
    // a package.
    let scratch = scratch_dir(downloads)?;
    let mut download = Command::new("apt-get");
    if nix::unistd::geteuid().is_root() {
        // apt would otherwise warn that its unprivileged _apt user cannot write here.
        download.args(["-o", "APT::Sandbox::User=root"]);
    }
    run_tool(download.args(["download", "--", &package]).current_dir(scratch.path()))?;
    for entry in std::fs::read_dir(scratch.path()).with_context(|| format!("reading {}", scratch.path().display()))? {
        let path = entry.with_context(|| format!("reading {}", scratch.path().display()))?.path();
        if path.extension().is_some_and(|e| e == "deb") {
            let deb = downloads.join(path.file_name().expect("a directory entry has a name"));
            std::fs::rename(&path, &deb).with_context(|| format!("moving {} into place", deb.display()))?;
            return Ok(deb);
        }
    }
    bail!("apt-get download {package} left no .deb file")
}

/// The installed version of a Debian package.
fn package_version(package: &str) -> anyhow::Result<String> {
    let version = run_tool(Command::new("dpkg-query").args(["-W", "-f", "${Version}", package]))?;
    Ok(version.trim().to_owned())
}

/// Runs a tool to completion and returns its standard output; a failure names the command
/// and carries its standard error.
fn run_tool(cmd: &mut Command) -> anyhow::Result<String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    let name = display_command(&program, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let output = cmd.stdin(Stdio::null()).output().with_context(|| format!("cannot run {name}"))?;
    if !output.status.success() {
        bail!("{name} failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim_end());
    }
    String::from_utf8(output.stdout).with_context(|| format!("{name} printed something other than UTF-8"))
}

/// A directory removed when dropped, inside `dir` so that renames out of it stay on one
/// file system.
fn scratch_dir(dir: &Path) -> anyhow::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(".tmp-")
        .tempdir_in(dir)
        .with_context(|| format!("creating a scratch directory in {}", dir.display()))
}

/// A new file in `dir` that [`persist`] renames into place, or that disappears on error.
fn temp_file(dir: &Path) -> anyhow::Result<(File, tempfile::TempPath)> {
    let temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    let file = temp.as_file().try_clone().context("duplicating a file handle")?;
    Ok((file, temp.into_temp_path()))
}

/// Writes `path` in `dir` through a temporary file, so it is complete or absent.
fn write_file(dir: &Path, path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let (mut file, temp) = temp_file(dir)?;
    file.write_all(data).with_context(|| format!("writing {}", path.display()))?;
    persist(temp, path)
}

fn persist(temp: tempfile::TempPath, path: &Path) -> anyhow::Result<()> {
    // The files are read by QEMU and tar, so they get the usual permissions, not 0600.
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o644))
        .with_context(|| format!("setting the permissions of {}", path.display()))?;
    temp.persist(path).with_context(|| format!("moving {} into place", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_xtask_test_installs_the_fixture_packages_up_front() {
        for package in DEBIAN_PACKAGES {
            assert!(crate::test::DEBIAN_PACKAGES.contains(package), "{package} is missing from test::DEBIAN_PACKAGES");
        }
    }

    #[test]
    fn recipes_name_every_file_they_consist_of() {
        let recipe = guest::recipe();
        for path in ["/init", "/etc/inittab", "/etc/profile", "/etc/acpi/PWRF/00000080"] {
            assert!(recipe.contains(&format!("--- {path}\n")), "{path} is not in the guest recipe");
        }
        assert!(recipe.contains(fixtures::READY_MARKER));
        assert!(template::recipe().contains("--- /etc/inittab\n"));
    }
}
