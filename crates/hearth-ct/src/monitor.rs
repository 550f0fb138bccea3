//! hearth-ctmon's `monitor` mode: one process per running container, parent of its init.
//!
//! hearthd starts it with the [`ContainerSpec`] as JSON on stdin and reads one JSON line from
//! its stdout: `{"init_pid":N}` once the container's init has been exec'd, or
//! `{"error":"…"}`. The monitor then lives on in its own session, independent of hearthd:
//! it holds the consoles, reaps init, restarts the container when init was killed by SIGHUP
//! (a reboot inside a pid namespace) and tears everything down otherwise: cgroups, veths,
//! mounts (they live in the monitor's private mount namespace, so they go with it, and a
//! loop device with them), then records how the run ended.

use std::io::{BufRead, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType, recv, send, socketpair};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

/// The PATH init gets, and where a bare `entrypoint` name is looked up.
const INIT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
use serde::{Deserialize, Serialize};

use crate::cgroup::{Cgroups, Layout};
use crate::console::{Console, Pty};
use crate::rootfs;
use crate::spec::{ContainerSpec, IdMap, RootFs};

/// What hearthd reads from the monitor's stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Report {
    Started { init_pid: i32, monitor_pid: i32 },
    Error(String),
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `reboot` inside: init was killed by SIGHUP.
    Reboot,
    /// `halt`/`poweroff` inside: init was killed by SIGINT.
    Halt,
    Exited(i32),
    Killed(i32),
}

impl Outcome {
    fn describe(&self) -> String {
        match self {
            Outcome::Reboot => "reboot".into(),
            Outcome::Halt => "halt".into(),
            Outcome::Exited(code) => format!("init exited with status {code}"),
            Outcome::Killed(signal) => match Signal::try_from(*signal) {
                Ok(s) => format!("init killed by {s}"),
                Err(_) => format!("init killed by signal {signal}"),
            },
        }
    }
}

/// Files of a running container under its run directory.
pub fn init_pid_file(run_dir: &Path) -> PathBuf {
    run_dir.join("init.pid")
}
pub fn monitor_pid_file(run_dir: &Path) -> PathBuf {
    run_dir.join("monitor.pid")
}
/// `console.sock` for /dev/console, `tty<N>.sock` for the ttys.
pub fn console_socket(run_dir: &Path, tty: u32) -> PathBuf {
    if tty == 0 { run_dir.join("console.sock") } else { run_dir.join(format!("tty{tty}.sock")) }
}
/// How the last run ended, kept next to the run directory (which goes with the run).
pub fn exit_record(run_dir: &Path) -> PathBuf {
    run_dir.with_extension("exit")
}
/// The spec the container runs with (0600): exec takes privileges and features from it.
pub fn spec_file(run_dir: &Path) -> PathBuf {
    run_dir.join("spec.json")
}
/// Where the rootfs is mounted, in the monitor's namespace only.
pub fn rootfs_mount(run_dir: &Path) -> PathBuf {
    run_dir.join("rootfs")
}

fn report(out: &mut Option<std::fs::File>, report: &Report) {
    if let Some(mut file) = out.take() {
        let line = serde_json::to_string(report).unwrap_or_else(|_| "{\"error\":\"unserializable report\"}".into());
        let _ = writeln!(file, "{line}");
    }
}

fn log(message: &str) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    eprintln!("{now} {message}");
}

/// hearth-ctmon monitor: read the spec, start the container, supervise it.
pub fn main(_args: &[String]) -> Result<ExitCode, String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("reading the spec: {e}"))?;
    let spec: ContainerSpec = serde_json::from_str(&line).map_err(|e| format!("bad spec: {e}"))?;
    // Our stdout is hearthd's pipe; keep it for the one report, then let go of it.
    let stdout = nix::unistd::dup(std::io::stdout().as_fd()).map_err(|e| format!("dup: {e}"))?;
    let mut out = Some(std::fs::File::from(stdout));
    let devnull = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").map_err(|e| e.to_string())?;
    for fd in [0, 1] {
        hearth_sys::process::dup_onto(devnull.as_fd(), fd, false).map_err(|e| e.to_string())?;
    }
    if let Ok(logfile) = std::fs::OpenOptions::new().create(true).append(true).open(&spec.log) {
        let _ = hearth_sys::process::dup_onto(logfile.as_fd(), 2, false);
    }
    // Our own session: signals meant for hearthd's process group do not reach us.
    let _ = nix::unistd::setsid();
    match run(&spec, &mut out) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(message) => {
            log(&format!("CT {}: {message}", spec.ctid));
            report(&mut out, &Report::Error(message.clone()));
            let _ = std::fs::write(exit_record(&spec.run_dir), format!("error: {message}\n"));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Everything that must be undone, undone in Drop even when a step fails.
struct Teardown<'a> {
    spec: &'a ContainerSpec,
    cgroups: Option<Cgroups>,
    mounted: Vec<PathBuf>,
}

impl Drop for Teardown<'_> {
    fn drop(&mut self) {
        for net in &self.spec.nets {
            if let Err(e) = crate::net::detach(net) {
                log(&format!("CT {}: {e}", self.spec.ctid));
            }
        }
        if let Some(cgroups) = &self.cgroups {
            for left in cgroups.remove_all() {
                log(&format!("CT {}: cgroup {} could not be removed", self.spec.ctid, left.display()));
            }
        }
        for path in self.mounted.iter().rev() {
            let _ = nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir(path);
        }
        for file in ["init.pid", "monitor.pid", "spec.json"] {
            let _ = std::fs::remove_file(self.spec.run_dir.join(file));
        }
        let _ = std::fs::remove_dir(&self.spec.run_dir);
    }
}

fn run(spec: &ContainerSpec, out: &mut Option<std::fs::File>) -> Result<(), String> {
    // A private mount namespace: the rootfs and its loop device exist for us and the
    // container only, and vanish with us however we end.
    nix::sched::unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare(mount): {e}"))?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("making mounts private: {e}"))?;
    let mut teardown = Teardown { spec, cgroups: None, mounted: Vec::new() };
    std::fs::create_dir_all(&spec.run_dir).map_err(|e| format!("{}: {e}", spec.run_dir.display()))?;
    // Traversable (not listable) by the container's root, which resolves the rootfs below it.
    std::fs::set_permissions(&spec.run_dir, std::os::unix::fs::PermissionsExt::from_mode(0o711))
        .map_err(|e| e.to_string())?;
    std::fs::write(monitor_pid_file(&spec.run_dir), format!("{}\n", std::process::id())).map_err(|e| e.to_string())?;
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(spec_file(&spec.run_dir))
            .map_err(|e| format!("writing the spec: {e}"))?;
        let text = serde_json::to_vec(spec).map_err(|e| format!("writing the spec: {e}"))?;
        file.write_all(&text).map_err(|e| format!("writing the spec: {e}"))?;
    }
    let _ = std::fs::remove_file(exit_record(&spec.run_dir));

    let rootfs = rootfs_mount(&spec.run_dir);
    attach_volume(&spec.rootfs, &rootfs, false)?;
    teardown.mounted.push(rootfs.clone());
    let mut staged = Vec::new();
    for (i, mp) in spec.mounts.iter().enumerate() {
        let staging = spec.run_dir.join(format!("mp{i}"));
        attach_volume(&mp.source, &staging, mp.readonly)?;
        teardown.mounted.push(staging.clone());
        staged.push((staging, mp.target.clone(), mp.readonly));
    }

    if !spec.devices.is_empty() {
        make_device_nodes(spec)?;
        teardown.mounted.push(spec.run_dir.join("devices"));
    }

    let layout = Layout::detect().map_err(|e| format!("reading the cgroup layout: {e}"))?;
    let cgroups = Cgroups::new(layout.clone(), &spec.cgroup);
    let owner = spec.idmap.as_ref().and_then(|m| Some((m.root_uid()?, m.root_gid()?)));
    teardown.cgroups = Some(cgroups.clone());
    cgroups.create(&spec.limits, owner, &crate::devices::rules_for(spec)).map_err(|e| e.to_string())?;

    let mut consoles: Vec<Console> = Vec::new();
    loop {
        let (outcome, started) = boot(spec, &rootfs, &staged, &layout, &cgroups, owner, &mut consoles, out)?;
        let _ = started;
        log(&format!("CT {}: {}", spec.ctid, outcome.describe()));
        for net in &spec.nets {
            if let Err(e) = crate::net::detach(net) {
                log(&format!("CT {}: {e}", spec.ctid));
            }
        }
        if outcome != Outcome::Reboot {
            let _ = std::fs::write(exit_record(&spec.run_dir), format!("{}\n", outcome.describe()));
            break;
        }
        // Processes of the old pid namespace may still be leaving the cgroups.
        cgroups.remove();
        cgroups.create(&spec.limits, owner, &crate::devices::rules_for(spec)).map_err(|e| e.to_string())?;
    }
    drop(consoles);
    drop(teardown);
    Ok(())
}

/// Mounts a volume at `target` in the monitor's namespace: a bind of a directory, or a raw
/// Makes the `devN` nodes, with their owner (shifted into the container's ids) and mode, on a
/// tmpfs of their own under the run directory: made here rather than bound from the host's
/// /dev, so the owner and mode the container gets never change the host's node (pct does the
/// same). [`device_nodes`] says where each is.
fn make_device_nodes(spec: &ContainerSpec) -> Result<(), String> {
    let dir = spec.run_dir.join("devices");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    nix::mount::mount(
        Some("hearth-devices"),
        &dir,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NOEXEC,
        Some("mode=711,size=64k"),
    )
    .map_err(|e| format!("mounting a tmpfs for the devices at {}: {e}", dir.display()))?;
    let shift = |id: u32, map: Option<&Vec<crate::spec::IdMapEntry>>| -> u32 {
        map.and_then(|m| {
            m.iter().find(|e| id >= e.inside && id - e.inside < e.count).map(|e| e.outside + id - e.inside)
        })
        .unwrap_or(id)
    };
    for (node, device) in device_nodes(spec).into_iter().map(|(node, _)| node).zip(&spec.devices) {
        let kind = if device.block { nix::sys::stat::SFlag::S_IFBLK } else { nix::sys::stat::SFlag::S_IFCHR };
        let dev = nix::sys::stat::makedev(u64::from(device.major), u64::from(device.minor));
        nix::sys::stat::mknod(&node, kind, nix::sys::stat::Mode::from_bits_truncate(device.mode & 0o777), dev)
            .map_err(|e| format!("dev: making the node of /dev/{}: {e}", device.name))?;
        // mknod honours the umask; the configured mode is what the container gets.
        std::fs::set_permissions(&node, std::os::unix::fs::PermissionsExt::from_mode(device.mode & 0o777))
            .map_err(|e| format!("dev: /dev/{}: {e}", device.name))?;
        let uid = shift(device.uid, spec.idmap.as_ref().map(|m| &m.uid));
        let gid = shift(device.gid, spec.idmap.as_ref().map(|m| &m.gid));
        std::os::unix::fs::chown(&node, Some(uid), Some(gid)).map_err(|e| format!("dev: /dev/{}: {e}", device.name))?;
    }
    Ok(())
}

/// The `devN` nodes [`make_device_nodes`] makes and their names under the container's /dev.
fn device_nodes(spec: &ContainerSpec) -> Vec<(PathBuf, String)> {
    let dir = spec.run_dir.join("devices");
    spec.devices.iter().enumerate().map(|(i, d)| (dir.join(i.to_string()), d.name.clone())).collect()
}

/// image through a loop device that is detached automatically once unmounted.
fn attach_volume(volume: &RootFs, target: &Path, readonly: bool) -> Result<(), String> {
    std::fs::create_dir_all(target).map_err(|e| format!("{}: {e}", target.display()))?;
    match volume {
        RootFs::Dir { path } => {
            use nix::mount::MsFlags;
            nix::mount::mount(Some(path), target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
                .map_err(|e| format!("binding {}: {e}", path.display()))?;
            // Device nodes on a volume never work: devices come only from the runtime's /dev.
            let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NODEV;
            if readonly {
                flags |= MsFlags::MS_RDONLY;
            }
            nix::mount::mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
                .map_err(|e| format!("remounting {}: {e}", path.display()))?;
        }
        RootFs::Image { path, fstype } => {
            // Device nodes on a volume never work: devices come only from the runtime's /dev.
            let mut options = "loop,nodev".to_owned();
            if readonly {
                options.push_str(",ro");
            }
            let output = std::process::Command::new("mount")
                .args(["-t", fstype, "-o", &options])
                .arg(path)
                .arg(target)
                .output()
                .map_err(|e| format!("running mount: {e}"))?;
            if !output.status.success() {
                return Err(format!("mounting {}: {}", path.display(), String::from_utf8_lossy(&output.stderr).trim()));
            }
        }
    }
    Ok(())
}

const SYNC_GO: u8 = b'G';

/// Starts the container once and supervises it until init is gone.
#[allow(clippy::too_many_arguments)]
fn boot(
    spec: &ContainerSpec,
    rootfs: &Path,
    staged: &[(PathBuf, String, bool)],
    layout: &Layout,
    cgroups: &Cgroups,
    owner: Option<(u32, u32)>,
    consoles: &mut Vec<Console>,
    out: &mut Option<std::fs::File>,
) -> Result<(Outcome, std::time::Instant), String> {
    let console = if spec.console { Some(Pty::open(owner).map_err(|e| format!("console pty: {e}"))?) } else { None };
    let mut ttys = Vec::new();
    for _ in 0..spec.ttys {
        ttys.push(Pty::open(owner).map_err(|e| format!("tty pty: {e}"))?);
    }
    let (parent_end, child_end) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
        .map_err(|e| e.to_string())?;

    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET;
    if spec.idmap.is_some() {
        flags |= CloneFlags::CLONE_NEWUSER;
    }
    let started = std::time::Instant::now();
    // Born in its cgroups: the monitor steps into the v1 ones for the clone and back out right
    // after; the cgroup2 one the child is cloned into directly.
    let v2 = cgroups.open_v2_ns_dir().map_err(|e| e.to_string())?;
    let was = cgroups.enter_self_v1().map_err(|e| e.to_string());
    let forked = match &was {
        Ok(_) => hearth_sys::process::clone_into_namespaces(flags.bits() as u64, v2.as_ref().map(AsFd::as_fd))
            .map_err(|e| format!("clone: {e}")),
        Err(e) => Err(e.clone()),
    };
    drop(v2);
    if let Ok(was) = &was
        && !matches!(forked, Ok(hearth_sys::process::Forked::Child))
    {
        Cgroups::return_self(was).map_err(|e| format!("leaving the container's cgroups: {e}"))?;
    }
    let forked = forked?;
    let (pid, pidfd) = match forked {
        hearth_sys::process::Forked::Child => {
            drop(parent_end);
            let plan = rootfs::Plan {
                rootfs,
                mounts: staged.to_vec(),
                layout,
                console: console.as_ref().map(Pty::slave_path),
                ttys: ttys.iter().map(Pty::slave_path).collect(),
                fuse: spec.features.fuse,
                devices: device_nodes(spec),
                readonly_sys: true,
                privileged: spec.idmap.is_none(),
            };
            let error = child(spec, &plan, child_end.as_fd(), console.as_ref().map(|p| p.slave.as_fd()));
            let _ = send(child_end.as_raw_fd(), error.as_bytes(), MsgFlags::empty());
            std::process::exit(127);
        }
        hearth_sys::process::Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(child_end);
    let pidfd = pidfd.ok_or("clone gave no pidfd")?;
    let kill_child = |why: String| -> String {
        let _ = hearth_sys::process::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        let _ = waitpid(Pid::from_raw(pid), None);
        why
    };

    if let Some(map) = &spec.idmap
        && let Err(e) = write_maps(pid, map)
    {
        return Err(kill_child(e));
    }
    for (i, net) in spec.nets.iter().enumerate() {
        if let Err(e) = crate::net::attach(net, pid) {
            for earlier in &spec.nets[..i] {
                let _ = crate::net::detach(earlier);
            }
            return Err(kill_child(format!("net{}: {e}", net.index)));
        }
    }
    if let Err(e) = send(parent_end.as_raw_fd(), &[SYNC_GO], MsgFlags::empty()) {
        return Err(kill_child(format!("starting the container: {e}")));
    }
    // The child closes its end by exec'ing init (close-on-exec); anything else is its error.
    let mut buf = [0u8; 4096];
    match recv(parent_end.as_raw_fd(), &mut buf, MsgFlags::empty()) {
        Ok(0) => {}
        Ok(n) => return Err(kill_child(String::from_utf8_lossy(&buf[..n]).into_owned())),
        Err(e) => return Err(kill_child(format!("waiting for the container: {e}"))),
    }
    drop(parent_end);
    let _ = std::fs::write(init_pid_file(&spec.run_dir), format!("{pid}\n"));

    // Consoles: keep sockets and backlogs across reboots, swap in the new masters.
    let mut masters: Vec<OwnedFd> = Vec::new();
    let mut slaves: Vec<OwnedFd> = Vec::new();
    for pty in console.into_iter().chain(ttys) {
        masters.push(pty.master);
        slaves.push(pty.slave);
    }
    // The monitor keeps no slave open: when the container is gone the masters hang up.
    drop(slaves);
    if consoles.is_empty() {
        let numbers: Vec<u32> = if spec.console { (0..=spec.ttys).collect() } else { (1..=spec.ttys).collect() };
        for (master, number) in masters.into_iter().zip(numbers) {
            consoles.push(
                Console::serve(master, &console_socket(&spec.run_dir, number))
                    .map_err(|e| kill_child(format!("console socket: {e}")))?,
            );
        }
    } else {
        for (console, master) in consoles.iter_mut().zip(masters) {
            console.replace_master(master);
        }
    }
    report(out, &Report::Started { init_pid: pid, monitor_pid: std::process::id() as i32 });
    log(&format!("CT {}: init {pid} running", spec.ctid));
    let outcome = supervise(pid, pidfd.as_fd(), consoles, &init_pid_file(&spec.run_dir));
    Ok((outcome, started))
}

fn write_maps(pid: i32, map: &IdMap) -> Result<(), String> {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    std::fs::write(proc.join("uid_map"), IdMap::map_text(&map.uid)).map_err(|e| format!("writing uid_map: {e}"))?;
    std::fs::write(proc.join("gid_map"), IdMap::map_text(&map.gid)).map_err(|e| format!("writing gid_map: {e}"))?;
    Ok(())
}

/// Polls init's pidfd and the consoles until init is gone; reaps it.
fn supervise(pid: i32, pidfd: BorrowedFd<'_>, consoles: &mut [Console], pid_file: &Path) -> Outcome {
    loop {
        let mut owners: Vec<(usize, usize)> = Vec::new();
        let mut fds = vec![PollFd::new(pidfd, PollFlags::POLLIN)];
        for (c, console) in consoles.iter().enumerate() {
            for (k, fd) in console.fds().into_iter().enumerate() {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
                owners.push((c, k));
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
        let ready = |fd: &PollFd<'_>| {
            fd.revents().is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR))
        };
        let init_gone = ready(&fds[0]);
        let events: Vec<(usize, usize)> =
            fds[1..].iter().zip(&owners).filter(|(fd, _)| ready(fd)).map(|(_, owner)| *owner).collect();
        drop(fds);
        for (c, k) in events {
            let console = &mut consoles[c];
            // fds() order: listener, master (unless hung up), client.
            let kinds: Vec<u8> = {
                let mut v = vec![b'l'];
                if !console.hung_up {
                    v.push(b'm');
                }
                if console.client.is_some() {
                    v.push(b'c');
                }
                v
            };
            match kinds.get(k) {
                Some(b'l') => console.on_listener(),
                Some(b'm') => console.on_master(),
                Some(b'c') => console.on_client(),
                _ => {}
            }
        }
        if init_gone {
            // The pid is freed by the reaping below: nobody may find it in the pid file after.
            let _ = std::fs::remove_file(pid_file);
            // Drain what the container printed last.
            for console in consoles.iter_mut() {
                while !console.hung_up && has_input(console.master.as_fd()) {
                    console.on_master();
                }
            }
            return match waitpid(Pid::from_raw(pid), None) {
                Ok(WaitStatus::Signaled(_, Signal::SIGHUP, _)) => Outcome::Reboot,
                Ok(WaitStatus::Signaled(_, Signal::SIGINT, _)) => Outcome::Halt,
                Ok(WaitStatus::Signaled(_, signal, _)) => Outcome::Killed(signal as i32),
                Ok(WaitStatus::Exited(_, code)) => Outcome::Exited(code),
                _ => Outcome::Killed(libc::SIGKILL),
            };
        }
    }
}

fn has_input(fd: BorrowedFd<'_>) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::ZERO).is_ok_and(|n| n > 0)
        && fds[0].revents().is_some_and(|r| r.contains(PollFlags::POLLIN))
}

/// The container's first process: becomes root of its namespaces, builds its view and
/// exec's init. Returns only with an error, which the caller sends to the monitor.
fn child(
    spec: &ContainerSpec,
    plan: &rootfs::Plan<'_>,
    sync: BorrowedFd<'_>,
    console: Option<BorrowedFd<'_>>,
) -> String {
    match child_steps(spec, plan, sync, console) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

enum Never {}

fn child_steps(
    spec: &ContainerSpec,
    plan: &rootfs::Plan<'_>,
    sync: BorrowedFd<'_>,
    console: Option<BorrowedFd<'_>>,
) -> Result<Never, String> {
    // Inside the container's namespaces from here on: nobody may ptrace or read us.
    nix::sys::prctl::set_dumpable(false).map_err(|e| format!("prctl: {e}"))?;
    let mut go = [0u8; 1];
    match recv(sync.as_raw_fd(), &mut go, MsgFlags::empty()) {
        Ok(1) if go[0] == SYNC_GO => {}
        _ => return Err("the monitor did not let the container start".into()),
    }
    let root = nix::unistd::Uid::from_raw(0);
    let root_group = nix::unistd::Gid::from_raw(0);
    nix::unistd::setresgid(root_group, root_group, root_group).map_err(|e| format!("setresgid: {e}"))?;
    nix::unistd::setgroups(&[]).map_err(|e| format!("setgroups: {e}"))?;
    nix::unistd::setresuid(root, root, root).map_err(|e| format!("setresuid: {e}"))?;
    // If the monitor dies, so does the container. Set after the id change, which clears it.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| format!("prctl: {e}"))?;
    // The cgroup namespace is rooted where the monitor placed us (`<ct>/ns`).
    nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).map_err(|e| format!("unshare(cgroup): {e}"))?;
    nix::unistd::sethostname(&spec.hostname).map_err(|e| format!("sethostname: {e}"))?;
    rootfs::build(plan).map_err(|e| e.to_string())?;

    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    let devnull;
    let stdio = match console {
        Some(fd) => {
            hearth_sys::tty::set_controlling_terminal(fd).map_err(|e| format!("console: {e}"))?;
            fd
        }
        None => {
            devnull = nix::fcntl::open("/dev/null", nix::fcntl::OFlag::O_RDWR, nix::sys::stat::Mode::empty())
                .map_err(|e| format!("/dev/null: {e}"))?;
            devnull.as_fd()
        }
    };
    // Descriptors 0-2 become the console, 3 the sync socket (closed by the exec itself).
    for fd in 0..3 {
        hearth_sys::process::dup_onto(stdio, fd, false).map_err(|e| format!("stdio: {e}"))?;
    }
    hearth_sys::process::dup_onto(sync, 3, true).map_err(|e| format!("sync: {e}"))?;

    // A bare name is looked up in the PATH init gets, inside the container.
    let init_path = if spec.init.contains('/') {
        spec.init.clone()
    } else {
        INIT_PATH
            .split(':')
            .map(|dir| format!("{dir}/{}", spec.init))
            .find(|p| std::fs::metadata(p).is_ok())
            .ok_or_else(|| format!("init {} is not in the container's PATH ({INIT_PATH})", spec.init))?
    };
    let init = Path::new(&init_path);
    match std::fs::symlink_metadata(init) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("init {} does not exist in the container's root file system", spec.init));
        }
        Err(e) => return Err(format!("init {}: {e}", spec.init)),
    }
    crate::caps::drop_for_container(spec.idmap.is_none()).map_err(|e| format!("capabilities: {e}"))?;
    let profile = crate::seccomp::Profile { privileged: spec.idmap.is_none(), features: spec.features };
    let filter = crate::seccomp::filter(&profile).map_err(|e| format!("seccomp: {e}"))?;

    let ttys: Vec<String> = (1..=spec.ttys).map(|n| format!("tty{n}")).collect();
    let mut env = vec![
        "container=lxc".to_owned(),
        "TERM=linux".to_owned(),
        format!("PATH={INIT_PATH}"),
        format!("container_ttys={}", ttys.join(" ")),
    ];
    env.extend(spec.env.iter().cloned());
    let cstr = |s: &str| std::ffi::CString::new(s).map_err(|_| format!("'{s}' holds a NUL byte"));
    let path = cstr(&init_path)?;
    let mut argv = vec![cstr(&spec.init)?];
    for arg in &spec.init_args {
        argv.push(cstr(arg)?);
    }
    let envp: Vec<std::ffi::CString> = env.iter().map(|s| cstr(s)).collect::<Result<_, _>>()?;
    hearth_sys::process::reset_signals().map_err(|e| format!("signals: {e}"))?;
    hearth_sys::process::close_from(4).map_err(|e| format!("closing descriptors: {e}"))?;
    crate::seccomp::apply(&filter).map_err(|e| format!("seccomp: {e}"))?;
    let e = nix::unistd::execve(&path, &argv, &envp).err().unwrap_or(nix::errno::Errno::UnknownErrno);
    Err(format!("starting init {}: {e}", spec.init))
}
