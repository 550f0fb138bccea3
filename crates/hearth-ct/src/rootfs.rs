//! The container's file system view, built by its first process inside the new namespaces
//! (LXC's `lxc_setup` order): private propagation, the rootfs as a mount point, `/proc` and
//! `/sys` as LXC's `proc:mixed` / `sys:mixed`, a cgroup view, `/dev` from scratch, mount
//! points, then `pivot_root`.
//!
//! Every target inside the rootfs is resolved with `openat2(RESOLVE_IN_ROOT)` to an `O_PATH`
//! descriptor and mounted through `/proc/self/fd/N`: a symlink the container planted cannot
//! send a mount to the host. Sources are host paths Hearth chose, or descriptors it opened.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{Mode, SFlag, fstat, mkdirat};

use crate::cgroup::Layout;

/// A set-up step that failed, with what it was doing.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {errno}")]
pub struct RootfsError {
    pub what: String,
    pub errno: Errno,
}

trait Context<T> {
    fn what(self, what: impl FnOnce() -> String) -> Result<T, RootfsError>;
}

impl<T> Context<T> for nix::Result<T> {
    fn what(self, what: impl FnOnce() -> String) -> Result<T, RootfsError> {
        self.map_err(|errno| RootfsError { what: what(), errno })
    }
}

fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

const NONE: Option<&str> = None;

/// Resolves `path` inside the root `root` without ever leaving it (symlinks and `..` stay
/// inside), creating missing directories when `create` says so. Returns an `O_PATH` fd.
pub fn resolve_dir(root: BorrowedFd<'_>, path: &str, create: bool) -> Result<OwnedFd, RootfsError> {
    let how = || {
        OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
    };
    match openat2(root, path, how()) {
        Err(Errno::ENOENT) if create => {}
        other => return other.what(|| format!("resolving {path} in the container")),
    }
    // Walk component by component, creating what is missing, each step resolved in the root.
    let mut done = PathBuf::from("/");
    for component in Path::new(path).components() {
        let Component::Normal(name) = component else { continue };
        done.push(name);
        match openat2(root, &done, how()) {
            Ok(_) => continue,
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(e).what(|| format!("resolving {} in the container", done.display())),
        }
        let parent = openat2(root, done.parent().unwrap_or(Path::new("/")), how())
            .what(|| format!("resolving {} in the container", done.display()))?;
        match mkdirat(&parent, name, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e).what(|| format!("creating {} in the container", done.display())),
        }
    }
    openat2(root, path, how())
        .what(|| format!("mount target {path} does not resolve inside the container (a dangling symlink?)"))
}

/// Like [`resolve_dir`] for a file that must exist (a mask target), `None` when it does not.
fn resolve_existing(root: BorrowedFd<'_>, path: &str) -> Result<Option<OwnedFd>, RootfsError> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    match openat2(root, path, how) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e).what(|| format!("resolving {path} in the container")),
    }
}

fn mount_fd(
    source: Option<&Path>,
    target: BorrowedFd<'_>,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
    what: &str,
) -> Result<(), RootfsError> {
    mount(source, &fd_path(target), fstype, flags, data).what(|| format!("mounting {what}"))
}

/// Binds `path` (inside the root) onto itself and makes the bind read-only.
fn bind_readonly(root: BorrowedFd<'_>, path: &str, extra: MsFlags) -> Result<(), RootfsError> {
    let Some(fd) = resolve_existing(root, path)? else { return Ok(()) };
    let at = fd_path(fd.as_fd());
    mount(Some(&at), &at, NONE, MsFlags::MS_BIND, NONE).what(|| format!("binding {path}"))?;
    remount(root, path, MsFlags::MS_RDONLY | extra)
}

/// Changes the flags of the mount on top of `path`. The path is resolved again: a descriptor
/// taken before the mount still names what lies beneath it. The flags must repeat the ones the
/// mount has (nosuid, …): in a user namespace they are locked and dropping one is refused.
fn remount(root: BorrowedFd<'_>, path: &str, flags: MsFlags) -> Result<(), RootfsError> {
    let Some(top) = resolve_existing(root, path)? else { return Ok(()) };
    mount(NONE, &fd_path(top.as_fd()), NONE, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags, NONE)
        .what(|| format!("remounting {path}"))
}

/// Opens a directory inside the root for *at calls on what is mounted there now.
fn open_dir(root: BorrowedFd<'_>, path: &str) -> Result<OwnedFd, RootfsError> {
    let how = OpenHow::new()
        .flags(OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2(root, path, how).what(|| format!("opening {path}"))
}

/// What the container's first process needs to build its view.
#[derive(Debug)]
pub struct Plan<'a> {
    /// The rootfs mount in the monitor's namespace.
    pub rootfs: &'a Path,
    /// Staged `mpN` volumes: (staging mount, target inside, read-only).
    pub mounts: Vec<(PathBuf, String, bool)>,
    pub layout: &'a Layout,
    /// The pty slave for /dev/console: its path on the host's devpts (a descriptor opened
    /// before the clone names a mount of the monitor's namespace and cannot be bound here)
    /// and its device number, to check the bind reached that very device.
    pub console: Option<(PathBuf, u64)>,
    /// Pty slaves for /dev/tty1..N, likewise.
    pub ttys: Vec<(PathBuf, u64)>,
    pub fuse: bool,
    /// `devN` nodes the monitor made, and their paths below the container's /dev.
    pub devices: Vec<(PathBuf, String)>,
    /// Unprivileged containers get sysfs read-only (sys:mixed); privileged ones too unless
    /// told otherwise.
    pub readonly_sys: bool,
    /// Container root is host root: more of `/proc` is made read-only, and `/run` and
    /// `/run/lock` are mounted here because the container's own mount(2) calls are confined
    /// (see [`crate::seccomp`]).
    pub privileged: bool,
}

const PROC_FLAGS: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV).union(MsFlags::MS_NOEXEC);

/// Builds the view and pivots into it. Runs in the container's first process after it has
/// become root of its user namespace and unshared its cgroup namespace.
pub fn build(plan: &Plan<'_>) -> Result<(), RootfsError> {
    // Nothing mounted from here on may propagate back to the host.
    mount(NONE, "/", NONE, MsFlags::MS_REC | MsFlags::MS_SLAVE, NONE).what(|| "making / a slave mount".into())?;
    mount(Some(plan.rootfs), plan.rootfs, NONE, MsFlags::MS_BIND | MsFlags::MS_REC, NONE)
        .what(|| "binding the rootfs onto itself".into())?;
    let root = nix::fcntl::open(plan.rootfs, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .what(|| "opening the rootfs".into())?;
    let root = root.as_fd();

    // The host's /dev/null, checked to be the real device before it masks anything.
    let null = nix::fcntl::open("/dev/null", OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .what(|| "opening the host's /dev/null".into())?;
    let st = fstat(&null).what(|| "checking /dev/null".into())?;
    if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFCHR
        || nix::sys::stat::major(st.st_rdev) != 1
        || nix::sys::stat::minor(st.st_rdev) != 3
    {
        return Err(RootfsError { what: "the host's /dev/null is not the null device".into(), errno: Errno::EINVAL });
    }

    mount_proc(root, null.as_fd(), plan.privileged)?;
    mount_sys(root, plan)?;
    mount_dev(root, plan)?;
    if plan.privileged {
        mount_run(root)?;
    }
    for (staging, target, readonly) in &plan.mounts {
        let fd = resolve_dir(root, target, true)?;
        mount_fd(Some(staging), fd.as_fd(), None, MsFlags::MS_BIND | MsFlags::MS_REC, None, target)?;
        if *readonly {
            remount(root, target, MsFlags::MS_RDONLY)?;
        }
    }

    nix::unistd::fchdir(root).what(|| "entering the rootfs".into())?;
    nix::unistd::pivot_root(".", ".").what(|| "pivot_root".into())?;
    umount2(".", MntFlags::MNT_DETACH).what(|| "detaching the old root".into())?;
    nix::unistd::chdir("/").what(|| "chdir /".into())?;
    Ok(())
}

/// What a privileged container's root could write in `/proc` besides `/proc/sys` and
/// `/proc/sysrq-trigger`, made read-only like Docker's `readonlyPaths`: PCI configuration
/// space (`/proc/bus/pci`), interrupt affinities (`/proc/irq`), file system knobs (`/proc/fs`)
/// and the CPU's memory type ranges (`/proc/mtrr`). In a user namespace these files belong to
/// the host's root and are not writable anyway.
const PRIVILEGED_READONLY_PROC: [&str; 4] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/mtrr"];

/// `/proc` as LXC's proc:mixed for both kinds of container: `/proc/sys` and
/// `/proc/sysrq-trigger` are read-only binds. What keeps them so differs: in a user namespace
/// the container may remount or unmount its own binds, but every sysctl and the sysrq trigger
/// check the writer against the host's root; a privileged container's root *is* the host's
/// root, so there the seccomp filter forbids every mount(2) that could undo the binds.
fn mount_proc(root: BorrowedFd<'_>, null: BorrowedFd<'_>, privileged: bool) -> Result<(), RootfsError> {
    let proc_fd = resolve_dir(root, "/proc", true)?;
    mount_fd(Some(Path::new("proc")), proc_fd.as_fd(), Some("proc"), PROC_FLAGS, None, "/proc")?;
    // proc:mixed — /proc/sys read-only except the network namespace's own part.
    bind_readonly(root, "/proc/sys", PROC_FLAGS)?;
    let net = resolve_dir(root, "/proc/sys/net", false)?;
    let net_path = fd_path(net.as_fd());
    mount(Some(&net_path), &net_path, NONE, MsFlags::MS_BIND, NONE).what(|| "binding /proc/sys/net".into())?;
    remount(root, "/proc/sys/net", PROC_FLAGS)?;
    bind_readonly(root, "/proc/sysrq-trigger", PROC_FLAGS)?;
    if privileged {
        for path in PRIVILEGED_READONLY_PROC {
            bind_readonly(root, path, PROC_FLAGS)?;
        }
    }
    for file in ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/kallsyms"] {
        if let Some(fd) = resolve_existing(root, file)? {
            mount_fd(Some(&fd_path(null)), fd.as_fd(), None, MsFlags::MS_BIND, None, file)?;
        }
    }
    for dir in ["/proc/acpi", "/proc/scsi"] {
        if let Some(fd) = resolve_existing(root, dir)? {
            mount_fd(Some(Path::new("tmpfs")), fd.as_fd(), Some("tmpfs"), MsFlags::MS_RDONLY | PROC_FLAGS, None, dir)?;
        }
    }
    Ok(())
}

fn mount_sys(root: BorrowedFd<'_>, plan: &Plan<'_>) -> Result<(), RootfsError> {
    let sys = resolve_dir(root, "/sys", true)?;
    let ro = if plan.readonly_sys { MsFlags::MS_RDONLY } else { MsFlags::empty() };
    mount_fd(Some(Path::new("sysfs")), sys.as_fd(), Some("sysfs"), PROC_FLAGS | ro, None, "/sys")?;
    // The cgroup view: a tmpfs with one namespaced mount per hierarchy, as the host has them.
    let cgroup = resolve_dir(root, "/sys/fs/cgroup", false)?;
    mount_fd(Some(Path::new("tmpfs")), cgroup.as_fd(), Some("tmpfs"), PROC_FLAGS, Some("mode=755"), "/sys/fs/cgroup")?;
    let dir = open_dir(root, "/sys/fs/cgroup")?;
    for hierarchy in &plan.layout.hierarchies {
        let name = hierarchy.dir_name();
        if name.is_empty() || name == "cgroup" {
            continue;
        }
        mkdirat(&dir, name.as_str(), Mode::from_bits_truncate(0o755))
            .what(|| format!("creating /sys/fs/cgroup/{name}"))?;
        let target = nix::fcntl::openat(
            &dir,
            name.as_str(),
            OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )
        .what(|| format!("opening /sys/fs/cgroup/{name}"))?;
        let what = format!("/sys/fs/cgroup/{name}");
        match &hierarchy.v1_options {
            Some(options) => {
                mount_fd(Some(Path::new("cgroup")), target.as_fd(), Some("cgroup"), PROC_FLAGS, Some(options), &what)?;
                // Co-mounted controllers get a link per name, as on the host: cpu -> cpu,cpuacct.
                if options.contains(',') && !options.contains("name=") {
                    for single in options.split(',') {
                        let _ = nix::unistd::symlinkat(name.as_str(), &dir, single);
                    }
                }
            }
            None => mount_fd(Some(Path::new("cgroup2")), target.as_fd(), Some("cgroup2"), PROC_FLAGS, None, &what)?,
        }
    }
    Ok(())
}

fn mount_dev(root: BorrowedFd<'_>, plan: &Plan<'_>) -> Result<(), RootfsError> {
    let dev = resolve_dir(root, "/dev", true)?;
    mount_fd(
        Some(Path::new("tmpfs")),
        dev.as_fd(),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=755,size=512k"),
        "/dev",
    )?;
    // A fresh tmpfs: nothing in it comes from the container, so plain *at calls are safe.
    let dev = open_dir(root, "/dev")?;
    let mut nodes = vec!["null", "zero", "full", "random", "urandom", "tty"];
    if plan.fuse {
        nodes.push("fuse");
    }
    for node in nodes {
        let source = PathBuf::from("/dev").join(node);
        bind_file(&dev, node, &source)?;
    }
    // Passed-through devices, in directories of their own where named so (dri/renderD128).
    for (source, name) in &plan.devices {
        let (dirs, file) = name.rsplit_once('/').unwrap_or(("", name));
        let mut parent = nix::fcntl::openat(&dev, ".", OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .what(|| "opening /dev".into())?;
        for component in dirs.split('/').filter(|c| !c.is_empty()) {
            match mkdirat(&parent, component, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(RootfsError { what: format!("creating /dev/{dirs}"), errno: e }),
            }
            parent = nix::fcntl::openat(
                &parent,
                component,
                OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW | OFlag::O_DIRECTORY,
                Mode::empty(),
            )
            .what(|| format!("opening /dev/{dirs}"))?;
        }
        bind_file(&parent, file, source)?;
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        nix::unistd::symlinkat(to, &dev, link).what(|| format!("linking /dev/{link}"))?;
    }
    let sub = |name: &str, mode: u32| -> Result<OwnedFd, RootfsError> {
        mkdirat(&dev, name, Mode::from_bits_truncate(mode)).what(|| format!("creating /dev/{name}"))?;
        nix::fcntl::openat(&dev, name, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .what(|| format!("opening /dev/{name}"))
    };
    let pts = sub("pts", 0o755)?;
    mount_fd(
        Some(Path::new("devpts")),
        pts.as_fd(),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
        "/dev/pts",
    )?;
    let shm = sub("shm", 0o1777)?;
    mount_fd(
        Some(Path::new("shm")),
        shm.as_fd(),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
        "/dev/shm",
    )?;
    let mqueue = sub("mqueue", 0o755)?;
    mount_fd(Some(Path::new("mqueue")), mqueue.as_fd(), Some("mqueue"), PROC_FLAGS, None, "/dev/mqueue")?;
    let bind_pty = |name: &str, (path, rdev): &(PathBuf, u64)| -> Result<(), RootfsError> {
        bind_file(&dev, name, path)?;
        let bound = nix::sys::stat::fstatat(&dev, name, nix::fcntl::AtFlags::empty())
            .what(|| format!("checking /dev/{name}"))?;
        if bound.st_rdev != *rdev {
            return Err(RootfsError {
                what: format!("/dev/{name} is not the pty the monitor holds"),
                errno: Errno::EINVAL,
            });
        }
        Ok(())
    };
    if let Some(console) = &plan.console {
        bind_pty("console", console)?;
    }
    for (i, tty) in plan.ttys.iter().enumerate() {
        bind_pty(&format!("tty{}", i + 1), tty)?;
    }
    Ok(())
}

/// `/run` and `/run/lock` as systemd mounts them (`/run` with mode 755, `/run/lock` sticky and
/// world-writable, both nosuid and nodev): a privileged container cannot mount a tmpfs itself,
/// and systemd stops booting when `/run` is not a mount point it can make one of.
fn mount_run(root: BorrowedFd<'_>) -> Result<(), RootfsError> {
    let run = resolve_dir(root, "/run", true)?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount_fd(Some(Path::new("tmpfs")), run.as_fd(), Some("tmpfs"), flags, Some("mode=755,size=20%"), "/run")?;
    // A fresh tmpfs: nothing in it comes from the container.
    let run = open_dir(root, "/run")?;
    mkdirat(&run, "lock", Mode::from_bits_truncate(0o755)).what(|| "creating /run/lock".into())?;
    let lock = nix::fcntl::openat(&run, "lock", OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW, Mode::empty())
        .what(|| "opening /run/lock".into())?;
    mount_fd(
        Some(Path::new("tmpfs")),
        lock.as_fd(),
        Some("tmpfs"),
        flags | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=5m"),
        "/run/lock",
    )
}

/// Creates an empty file `name` in `dir` and binds `source` onto it (device nodes cannot be
/// made in a user namespace; LXC's autodev does the same).
fn bind_file(dir: &OwnedFd, name: &str, source: &Path) -> Result<(), RootfsError> {
    let file = nix::fcntl::openat(
        dir,
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o666),
    )
    .what(|| format!("creating /dev/{name}"))?;
    drop(file);
    let target = nix::fcntl::openat(dir, name, OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW, Mode::empty())
        .what(|| format!("opening /dev/{name}"))?;
    mount_fd(Some(source), target.as_fd(), None, MsFlags::MS_BIND, None, &format!("/dev/{name}"))
}
