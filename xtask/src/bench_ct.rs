//! `cargo xtask bench ct`: container start against LXC, side by side in one sitting, on the
//! same busybox root file system; the resident memory of the per-container monitor against
//! LXC's `[lxc monitor]`; and, when the Debian fixture exists, the time a Debian 12 container
//! takes to reach `running`.
//!
//! What is timed (both sides: command start → the container's init running):
//! * Hearth: the whole `ctctl start <id>` process, spawn to exit. It returns once hearthd's
//!   start task is over, which is when hearth-ctmon has reported that init was exec'd.
//! * LXC: `lxc-start -n X -P <lxcpath> -d -p <pidfile>` (spawn to exit), then polling every
//!   100 µs until a descendant of the monitor named in the pid file runs the rootfs's own
//!   `/sbin/init` (same device and inode through `/proc/<pid>/exe`). `lxc-start -d` alone can
//!   return before the container's init has been exec'd.
//!
//! Stops (`ctctl stop`, `lxc-stop -k`) are not timed. Both tools get the same tree (the busybox
//! template extracted; shifted to 100000 for unprivileged LXC), no network device
//! (`lxc.net.0.type = empty`, no `net0`), no ttys (`--tty 0`, `lxc.tty.max = 0`) and their
//! default console. LXC's config includes Debian's `common.conf` (capabilities, devices cgroup,
//! seccomp, proc/sys/cgroup mounts; `userns.conf` too when unprivileged) with the lxcfs hooks
//! cleared, as lxcfs is not running; Hearth's containers keep their defaults (memory limit,
//! seccomp, capabilities). The bench installs nothing: without `lxc-start` it prints how to get
//! it and reports Hearth alone.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::node::Node;
use crate::{Profile, build_binaries};

/// Container ids on the bench node.
const UNPRIV: &str = "9101";
const PRIV: &str = "9102";
const DEBIAN: &str = "9103";
/// Where unprivileged containers' ids start on the host, for Hearth and LXC alike.
const ID_SHIFT: u32 = 100_000;
const ID_COUNT: u32 = 65_536;
const WARMUP_RUNS: usize = 2;
const DEBIAN_RUNS: usize = 5;
const DEBIAN_TIMEOUT: Duration = Duration::from_secs(30);
const TEMPLATE_VOLID: &str = "local:vztmpl/busybox-template.tar.zst";
const DEBIAN_VOLID: &str = "local:vztmpl/debian-12-template.tar.zst";

/// Anchors from shared/reference/containers.md §1.2 (reference machine, LXC 5.0.2).
const ANCHOR: &str = "\
anchors (containers.md §1.2, LXC 5.0.2 on the reference machine, `lxc-start -F` running /bin/true):
  privileged 6.7 ± 0.9 ms, unprivileged 12.9 ± 2.3 ms; Debian 12 `lxc-start -d` → running/degraded
  0.18–0.27 s; `[lxc monitor]` ~3.1 MiB RSS\n";

pub fn run(root: &Path, runs: usize) -> anyhow::Result<()> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    crate::fixtures::run()?;
    let template = hearth_test::fixtures::busybox_template();
    let debian = hearth_test::fixtures::debian_template();
    let binaries = build_binaries(root, Profile::Release)?;
    let node = Node::start(&binaries["hearthd"], "benchct")?;
    let hearth = Hearth { ctctl: binaries["ctctl"].clone(), storectl: binaries["storectl"].clone(), root: node.root() };
    let lxc = Lxc::detect();
    let result = measure(&hearth, lxc.as_ref(), &template, debian.as_deref(), runs);
    // Running containers would outlive hearthd and its temporary root.
    for id in [UNPRIV, PRIV, DEBIAN] {
        let _ = hearth.ctctl(&["stop", id]);
    }
    if result.is_err() {
        eprintln!("hearthd's log:\n{}", node.log_text());
    }
    let report = result?;
    node.stop()?;
    print!("{report}");
    Ok(())
}

/// The LXC side, if it can run here.
#[derive(Debug)]
struct Lxc {
    /// Unprivileged LXC needs `root:100000:65536` in /etc/subuid and /etc/subgid (it maps
    /// through newuidmap/newgidmap when they are installed, even for root).
    unprivileged: Result<(), String>,
}

impl Lxc {
    fn detect() -> Option<Lxc> {
        let version = Command::new("lxc-start").arg("--version").stdin(Stdio::null()).output().ok()?;
        let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
        eprintln!("LXC {version} found");
        let unprivileged = ["/etc/subuid", "/etc/subgid"]
            .iter()
            .map(|file| {
                let text = fs::read_to_string(file).unwrap_or_default();
                if maps_root(&text, ID_SHIFT, ID_COUNT) {
                    Ok(())
                } else {
                    Err(format!("{file} lacks `root:{ID_SHIFT}:{ID_COUNT}`"))
                }
            })
            .collect::<Result<Vec<()>, String>>()
            .map(|_| ());
        Some(Lxc { unprivileged })
    }
}

/// Whether a subuid/subgid file gives root the ids `[start, start + count)`.
fn maps_root(text: &str, start: u32, count: u32) -> bool {
    text.lines().any(|line| {
        let mut fields = line.trim().split(':');
        let (Some(user), Some(first), Some(n)) = (fields.next(), fields.next(), fields.next()) else { return false };
        let (Ok(first), Ok(n)) = (first.parse::<u64>(), n.parse::<u64>()) else { return false };
        (user == "root" || user == "0") && first <= u64::from(start) && first + n >= u64::from(start) + u64::from(count)
    })
}

struct Hearth<'a> {
    ctctl: PathBuf,
    storectl: PathBuf,
    root: &'a Path,
}

impl Hearth<'_> {
    fn ctctl(&self, args: &[&str]) -> anyhow::Result<String> {
        run_ok(Command::new(&self.ctctl).args(args).env("HEARTH_ROOT", self.root), &format!("ctctl {}", args.join(" ")))
    }

    fn upload(&self, file: &Path) -> anyhow::Result<()> {
        let path = file.to_str().context("fixture paths are UTF-8")?;
        run_ok(
            Command::new(&self.storectl)
                .args(["upload", "local", path, "--content", "vztmpl"])
                .env("HEARTH_ROOT", self.root),
            "storectl upload",
        )
        .map(drop)
    }

    /// Wall time of the whole `ctctl start` process.
    fn start(&self, id: &str) -> anyhow::Result<Duration> {
        let started = Instant::now();
        self.ctctl(&["start", id])?;
        Ok(started.elapsed())
    }

    fn monitor_pid(&self, id: &str) -> anyhow::Result<u32> {
        let status = self.ctctl(&["status", id, "--verbose", "--output-format", "json"])?;
        let status: serde_json::Value = serde_json::from_str(&status).context("ctctl status printed no JSON")?;
        let pid = status["monitor_pid"].as_u64().with_context(|| format!("no monitor_pid in {status}"))?;
        Ok(u32::try_from(pid)?)
    }

    /// `ctctl exec <id> -- systemctl is-system-running` until it answers running or degraded;
    /// answers the time since `started` and the state, or `None` with the last answer.
    fn wait_running(&self, id: &str, started: Instant) -> (Option<Duration>, String) {
        wait_running(started, || {
            Command::new(&self.ctctl)
                .args(["exec", id, "--", "systemctl", "is-system-running"])
                .env("HEARTH_ROOT", self.root)
                .stdin(Stdio::null())
                .output()
        })
    }
}

/// Polls `ask` (a `systemctl is-system-running` somewhere) until it prints running or
/// degraded, for at most [`DEBIAN_TIMEOUT`] after `started`.
fn wait_running(
    started: Instant,
    mut ask: impl FnMut() -> std::io::Result<std::process::Output>,
) -> (Option<Duration>, String) {
    loop {
        let last = match ask() {
            Ok(out) => {
                let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                if state == "running" || state == "degraded" {
                    return (Some(started.elapsed()), state);
                }
                if state.is_empty() { String::from_utf8_lossy(&out.stderr).trim().to_owned() } else { state }
            }
            Err(e) => e.to_string(),
        };
        if started.elapsed() > DEBIAN_TIMEOUT {
            return (None, last);
        }
        sleep(Duration::from_millis(20));
    }
}

/// One LXC container in a private lxcpath, its rootfs a directory; `lxc-stop -k` on drop.
struct LxcCt {
    name: String,
    lxcpath: PathBuf,
    /// Device and inode of the rootfs's `/sbin/init`.
    init: (u64, u64),
    pidfile: PathBuf,
    log: PathBuf,
}

impl LxcCt {
    /// Writes `<lxcpath>/<name>/config` for `rootfs`.
    fn new(lxcpath: &Path, name: &str, rootfs: &Path, unprivileged: bool) -> anyhow::Result<LxcCt> {
        let dir = lxcpath.join(name);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut config = String::from("lxc.include = /usr/share/lxc/config/common.conf\n");
        if unprivileged {
            config.push_str("lxc.include = /usr/share/lxc/config/userns.conf\n");
            config.push_str(&format!("lxc.idmap = u 0 {ID_SHIFT} {ID_COUNT}\nlxc.idmap = g 0 {ID_SHIFT} {ID_COUNT}\n"));
        }
        config.push_str(&format!(
            "# lxcfs does not run here: its hooks would only cost a shell per start.\n\
             lxc.hook.mount =\n\
             lxc.hook.post-stop =\n\
             lxc.uts.name = bench\n\
             lxc.rootfs.path = dir:{}\n\
             lxc.net.0.type = empty\n\
             lxc.tty.max = 0\n\
             lxc.init.cmd = /sbin/init\n",
            rootfs.display()
        ));
        fs::write(dir.join("config"), config).with_context(|| format!("writing {}/config", dir.display()))?;
        let init = resolve_in(rootfs, Path::new("/sbin/init"))?;
        let init = fs::metadata(&init).with_context(|| format!("{} has no init", rootfs.display()))?;
        Ok(LxcCt {
            name: name.to_owned(),
            lxcpath: lxcpath.to_owned(),
            init: (init.dev(), init.ino()),
            pidfile: dir.join("monitor.pid"),
            log: dir.join("lxc.log"),
        })
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.arg("-n").arg(&self.name).arg("-P").arg(&self.lxcpath).stdin(Stdio::null());
        cmd
    }

    /// `lxc-start -d`, then waits until the container's init runs: answers the time from the
    /// command's start and the monitor's pid.
    fn start(&self) -> anyhow::Result<(Duration, u32)> {
        let _ = fs::remove_file(&self.pidfile);
        let started = Instant::now();
        let status = self
            .command("lxc-start")
            .arg("-d")
            .arg("-p")
            .arg(&self.pidfile)
            .arg("-o")
            .arg(&self.log)
            .args(["-l", "ERROR"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("cannot run lxc-start")?;
        if !status.success() {
            bail!("lxc-start -n {} failed ({status}); its log:\n{}", self.name, fs::read_to_string(&self.log)?);
        }
        let monitor: u32 = fs::read_to_string(&self.pidfile)
            .with_context(|| format!("lxc-start wrote no {}", self.pidfile.display()))?
            .trim()
            .parse()
            .context("the pid file holds no pid")?;
        while !self.init_runs_below(monitor) {
            if started.elapsed() > Duration::from_secs(10) {
                bail!("the init of LXC container {} did not run within 10 s", self.name);
            }
            sleep(Duration::from_micros(100));
        }
        Ok((started.elapsed(), monitor))
    }

    /// Whether a descendant of `pid` runs the rootfs's init.
    fn init_runs_below(&self, pid: u32) -> bool {
        let mut todo = children(pid);
        while let Some(child) = todo.pop() {
            if fs::metadata(format!("/proc/{child}/exe")).is_ok_and(|m| (m.dev(), m.ino()) == self.init) {
                return true;
            }
            todo.extend(children(child));
        }
        false
    }

    fn stop(&self) -> anyhow::Result<()> {
        run_ok(self.command("lxc-stop").arg("-k"), &format!("lxc-stop -k -n {}", self.name)).map(drop)
    }

    fn wait_running(&self, started: Instant) -> (Option<Duration>, String) {
        wait_running(started, || self.command("lxc-attach").args(["--", "systemctl", "is-system-running"]).output())
    }
}

impl Drop for LxcCt {
    fn drop(&mut self) {
        let _ = self.command("lxc-stop").arg("-k").stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

/// `path` inside `root` with every symbolic link resolved as the container sees it (absolute
/// targets start again at `root`): `/sbin/init` is a link to `/bin/busybox`, which on the host
/// would name the host's own busybox.
fn resolve_in(root: &Path, path: &Path) -> anyhow::Result<PathBuf> {
    use std::path::Component;
    let mut todo: Vec<std::ffi::OsString> = Vec::new();
    let push = |todo: &mut Vec<std::ffi::OsString>, p: &Path| {
        for c in p.components().rev() {
            match c {
                Component::Normal(n) => todo.push(n.to_owned()),
                Component::ParentDir => todo.push("..".into()),
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
    };
    push(&mut todo, path);
    let mut inside = PathBuf::new();
    let mut links = 0;
    while let Some(name) = todo.pop() {
        if name == ".." {
            inside.pop();
            continue;
        }
        let candidate = inside.join(&name);
        match fs::read_link(root.join(&candidate)) {
            Ok(target) => {
                links += 1;
                if links > 40 {
                    bail!("too many symbolic links resolving {} in {}", path.display(), root.display());
                }
                if target.is_absolute() {
                    inside = PathBuf::new();
                }
                push(&mut todo, &target);
            }
            Err(_) => inside = candidate,
        }
    }
    Ok(root.join(inside))
}

/// The children of every thread of `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    let mut found = Vec::new();
    for task in tasks.flatten() {
        if let Ok(text) = fs::read_to_string(task.path().join("children")) {
            found.extend(text.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    found
}

fn run_ok(cmd: &mut Command, what: &str) -> anyhow::Result<String> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!("`{what}` failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Extracts a template (zstd tar, numeric owners) into `into`; with `shift`, adds it to every
/// owner, as the tree of an unprivileged LXC container must be.
fn extract(template: &Path, into: &Path, shift: Option<u32>) -> anyhow::Result<()> {
    fs::create_dir_all(into).with_context(|| format!("creating {}", into.display()))?;
    run_ok(
        Command::new("tar")
            .args(["--extract", "--zstd", "--numeric-owner", "--same-permissions", "--xattrs", "--xattrs-include=*"])
            .arg("--file")
            .arg(template)
            .arg("--directory")
            .arg(into),
        &format!("tar --extract --file {}", template.display()),
    )?;
    if let Some(by) = shift {
        shift_owners(into, by)?;
    }
    Ok(())
}

/// Adds `by` to the owner and group of everything under `path`, keeping set-id bits (which
/// chown clears).
fn shift_owners(path: &Path, by: u32) -> anyhow::Result<()> {
    let meta = fs::symlink_metadata(path).with_context(|| format!("reading {}", path.display()))?;
    std::os::unix::fs::lchown(path, Some(meta.uid() + by), Some(meta.gid() + by))
        .with_context(|| format!("chown {}", path.display()))?;
    if !meta.file_type().is_symlink() {
        fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .with_context(|| format!("chmod {}", path.display()))?;
    }
    if meta.is_dir() {
        for entry in fs::read_dir(path).with_context(|| format!("reading {}", path.display()))? {
            shift_owners(&entry?.path(), by)?;
        }
    }
    Ok(())
}

/// Nearest-rank percentiles of timed runs, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stats {
    p10: f64,
    p50: f64,
    p90: f64,
}

impl Stats {
    fn of(samples: &[Duration]) -> Stats {
        let mut samples = samples.to_vec();
        samples.sort();
        let pct = |p: f64| {
            let rank = (p * samples.len() as f64).ceil() as usize;
            samples[rank.clamp(1, samples.len()) - 1].as_secs_f64() * 1000.0
        };
        Stats { p10: pct(0.1), p50: pct(0.5), p90: pct(0.9) }
    }
}

fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")?;
    Ok(kib / 1024.0)
}

/// One start variant: Hearth's container and, when LXC can run it, LXC's.
struct Variant {
    label: &'static str,
    hearth_id: &'static str,
    lxc: Option<LxcCt>,
    hearth: Vec<Duration>,
    anchor: Vec<Duration>,
    hearth_rss: Option<f64>,
    lxc_rss: Option<f64>,
}

fn measure(
    hearth: &Hearth,
    lxc: Option<&Lxc>,
    template: &Path,
    debian: Option<&Path>,
    runs: usize,
) -> anyhow::Result<String> {
    let mut notes = Vec::new();
    // The LXC trees live in a directory container roots (uid 100000) can traverse.
    let scratch = tempfile::Builder::new().prefix("hearth-benchct-lxc-").tempdir()?;
    fs::set_permissions(scratch.path(), fs::Permissions::from_mode(0o755))?;
    let lxcpath = scratch.path().join("lxc");
    let tag = std::process::id();

    hearth.upload(template)?;
    let common = ["--rootfs", "local:0", "--hostname", "bench", "--tty", "0"];
    let mut variants = Vec::new();
    for (label, id, unprivileged) in [("privileged", PRIV, false), ("unprivileged", UNPRIV, true)] {
        let mut args = vec!["create", id, TEMPLATE_VOLID, "--unprivileged", if unprivileged { "1" } else { "0" }];
        args.extend(common);
        hearth.ctctl(&args)?;
        let lxc_ct = match lxc {
            None => None,
            Some(Lxc { unprivileged: Err(why), .. }) if unprivileged => {
                notes.push(format!("unprivileged LXC skipped: {why} (LXC maps through newuidmap)"));
                None
            }
            Some(_) => {
                let rootfs = scratch.path().join(format!("rootfs-{label}"));
                extract(template, &rootfs, unprivileged.then_some(ID_SHIFT))?;
                let name = format!("hearth-bench-{tag}-{}", &label[..4]);
                Some(LxcCt::new(&lxcpath, &name, &rootfs, unprivileged)?)
            }
        };
        variants.push(Variant {
            label,
            hearth_id: id,
            lxc: lxc_ct,
            hearth: Vec::new(),
            anchor: Vec::new(),
            hearth_rss: None,
            lxc_rss: None,
        });
    }
    if lxc.is_none() {
        notes.push("LXC columns skipped: lxc-start not found (apt-get install lxc)".to_owned());
    }

    eprintln!("timing {runs} starts per variant and tool after {WARMUP_RUNS} warm-up starts, alternating");
    for run in 0..WARMUP_RUNS + runs {
        for v in &mut variants {
            let took = hearth.start(v.hearth_id)?;
            hearth.ctctl(&["stop", v.hearth_id])?;
            if run >= WARMUP_RUNS {
                v.hearth.push(took);
            }
            if let Some(ct) = &v.lxc {
                let (took, _) = ct.start()?;
                ct.stop()?;
                if run >= WARMUP_RUNS {
                    v.anchor.push(took);
                }
            }
            // Teardown (cgroups, mounts) finishes asynchronously; let it settle between runs.
            sleep(Duration::from_millis(20));
        }
    }

    // Monitor memory with every busybox container running, after a moment to settle.
    let mut monitors = Vec::new();
    for v in &variants {
        hearth.start(v.hearth_id)?;
        let lxc_monitor = match &v.lxc {
            Some(ct) => Some(ct.start()?.1),
            None => None,
        };
        monitors.push((hearth.monitor_pid(v.hearth_id)?, lxc_monitor));
    }
    sleep(Duration::from_secs(1));
    for (v, (ours, theirs)) in variants.iter_mut().zip(&monitors) {
        v.hearth_rss = Some(rss_mib(*ours)?);
        v.lxc_rss = theirs.map(rss_mib).transpose()?;
        hearth.ctctl(&["stop", v.hearth_id])?;
        if let Some(ct) = &v.lxc {
            ct.stop()?;
        }
    }

    let debian_rows = match debian {
        Some(file) => Some(measure_debian(hearth, lxc, file, scratch.path(), &lxcpath, tag)?),
        None => {
            notes.push(format!(
                "Debian boot skipped: {} does not exist (cargo xtask fixtures --debian)",
                hearth_test::fixtures::dir().join(hearth_test::fixtures::DEBIAN_TEMPLATE).display()
            ));
            None
        }
    };
    // The LXC containers are stopped before their trees go.
    drop(variants.iter_mut().map(|v| v.lxc.take()).collect::<Vec<_>>());
    Ok(report(runs, &variants, debian_rows.as_ref(), &notes))
}

/// Debian to running, Hearth and LXC (unprivileged both), [`DEBIAN_RUNS`] each.
struct DebianRows {
    hearth: Vec<Duration>,
    hearth_states: Vec<String>,
    /// Why Hearth's runs stopped early, if they did.
    hearth_failed: Option<String>,
    lxc: Option<(Vec<Duration>, Vec<String>, Option<String>)>,
}

fn measure_debian(
    hearth: &Hearth,
    lxc: Option<&Lxc>,
    template: &Path,
    scratch: &Path,
    lxcpath: &Path,
    tag: u32,
) -> anyhow::Result<DebianRows> {
    eprintln!("Debian 12: creating the containers");
    hearth.upload(template)?;
    hearth.ctctl(&["create", DEBIAN, DEBIAN_VOLID, "--rootfs", "local:0", "--hostname", "bench", "--tty", "0"])?;
    let lxc_ct = match lxc {
        Some(Lxc { unprivileged: Ok(()) }) => {
            let rootfs = scratch.join("rootfs-debian");
            extract(template, &rootfs, Some(ID_SHIFT))?;
            // Hearth writes the host name at first boot; LXC sets the UTS name only.
            fs::write(rootfs.join("etc/hostname"), "bench\n")?;
            Some(LxcCt::new(lxcpath, &format!("hearth-bench-{tag}-deb"), &rootfs, true)?)
        }
        _ => None,
    };

    eprintln!("Debian 12: {DEBIAN_RUNS} boots to running/degraded each, alternating");
    let mut rows = DebianRows {
        hearth: Vec::new(),
        hearth_states: Vec::new(),
        hearth_failed: None,
        lxc: lxc_ct.as_ref().map(|_| (Vec::new(), Vec::new(), None)),
    };
    for _ in 0..DEBIAN_RUNS {
        if rows.hearth_failed.is_none() {
            let started = Instant::now();
            hearth.ctctl(&["start", DEBIAN])?;
            match hearth.wait_running(DEBIAN, started) {
                (Some(took), state) => {
                    rows.hearth.push(took);
                    rows.hearth_states.push(state);
                }
                (None, last) => rows.hearth_failed = Some(last),
            }
            hearth.ctctl(&["stop", DEBIAN])?;
        }
        if let (Some(ct), Some((times, states, failed))) = (&lxc_ct, &mut rows.lxc)
            && failed.is_none()
        {
            let started = Instant::now();
            ct.start()?;
            match ct.wait_running(started) {
                (Some(took), state) => {
                    times.push(took);
                    states.push(state);
                }
                (None, last) => *failed = Some(last),
            }
            ct.stop()?;
        }
        sleep(Duration::from_millis(200));
    }
    Ok(rows)
}

fn ms(samples: &[Duration]) -> String {
    if samples.is_empty() {
        return "—".to_owned();
    }
    let s = Stats::of(samples);
    format!("{:>6.1} {:>6.1} {:>6.1}", s.p10, s.p50, s.p90)
}

fn report(runs: usize, variants: &[Variant], debian: Option<&DebianRows>, notes: &[String]) -> String {
    let mut out = format!(
        "\nHearth container start benchmark: busybox rootfs (directory), no network, tty 0, release build,\n\
         {runs} starts per row after {WARMUP_RUNS} warm-up starts, Hearth and LXC alternating, {} CPU(s)\n\
         Hearth: whole `ctctl start` process (returns once init was exec'd)\n\
         LXC:    `lxc-start -d` + until a process of the container runs the rootfs's /sbin/init\n\n",
        std::thread::available_parallelism().map_or(0, usize::from),
    );
    out.push_str(&format!(
        "{:<14}  {:^20}  {:^20}  {:>11}\n{:<14}  {:^20}  {:^20}  {:>11}\n",
        "start → init", "Hearth ms", "LXC ms", "ratio p50", "", "p10    p50    p90", "p10    p50    p90", "Hearth/LXC"
    ));
    for v in variants {
        let ratio = if v.anchor.is_empty() || v.hearth.is_empty() {
            "—".to_owned()
        } else {
            format!("{:.2}", Stats::of(&v.hearth).p50 / Stats::of(&v.anchor).p50)
        };
        out.push_str(&format!("{:<14}  {:>20}  {:>20}  {ratio:>11}\n", v.label, ms(&v.hearth), ms(&v.anchor)));
    }
    out.push_str("\nmonitor RSS with the busybox container running (VmRSS, 1 s after start):\n");
    for v in variants {
        let mib = |x: Option<f64>| x.map_or("—".to_owned(), |m| format!("{m:.1} MiB"));
        out.push_str(&format!(
            "  {:<14} hearth-ctmon {:>9}   [lxc monitor] {:>9}\n",
            v.label,
            mib(v.hearth_rss),
            mib(v.lxc_rss)
        ));
    }
    if let Some(d) = debian {
        out.push_str(&format!(
            "\nDebian 12 (unprivileged, no network, tty 0): start command → `systemctl is-system-running` answers\n\
             running/degraded, polled every 20 ms through `ctctl exec` / `lxc-attach`, {DEBIAN_RUNS} boots each\n"
        ));
        let line = |who: &str, times: &[Duration], states: &[String], failed: &Option<String>| {
            let mut line = if times.is_empty() {
                format!("  {who:<7} —")
            } else {
                let mut sorted = times.to_vec();
                sorted.sort();
                let s = |d: Duration| d.as_secs_f64();
                format!(
                    "  {who:<7} min {:.2} s  median {:.2} s  max {:.2} s  ({} of {DEBIAN_RUNS}; state {})",
                    s(sorted[0]),
                    s(sorted[sorted.len() / 2]),
                    s(sorted[sorted.len() - 1]),
                    times.len(),
                    states.first().map_or("", String::as_str)
                )
            };
            if let Some(last) = failed {
                line.push_str(&format!(
                    "\n  {who:<7} DID NOT reach running/degraded within {} s (last answer: {last:?}); remaining boots skipped",
                    DEBIAN_TIMEOUT.as_secs()
                ));
            }
            line.push('\n');
            line
        };
        out.push_str(&line("Hearth", &d.hearth, &d.hearth_states, &d.hearth_failed));
        match &d.lxc {
            Some((times, states, failed)) => out.push_str(&line("LXC", times, states, failed)),
            None => out.push_str("  LXC     —\n"),
        }
    }
    out.push('\n');
    out.push_str(ANCHOR);
    for note in notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subuid_ranges() {
        assert!(maps_root("root:100000:65536\n", 100_000, 65_536));
        assert!(maps_root("alice:200000:65536\nroot:100000:200000\n", 100_000, 65_536));
        assert!(!maps_root("root:100000:1000\n", 100_000, 65_536));
        assert!(!maps_root("alice:100000:65536\n", 100_000, 65_536));
        assert!(!maps_root("", 100_000, 65_536));
    }

    #[test]
    fn links_resolve_inside_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("usr/lib/systemd")).expect("mkdir");
        fs::create_dir_all(root.join("sbin")).expect("mkdir");
        fs::write(root.join("usr/lib/systemd/systemd"), "").expect("write");
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).expect("symlink");
        std::os::unix::fs::symlink("/lib/systemd/systemd", root.join("sbin/init")).expect("symlink");
        assert_eq!(resolve_in(root, Path::new("/sbin/init")).expect("resolves"), root.join("usr/lib/systemd/systemd"));
        std::os::unix::fs::symlink("../../sbin/init", root.join("usr/lib/init")).expect("symlink");
        assert_eq!(
            resolve_in(root, Path::new("/usr/lib/init")).expect("resolves"),
            root.join("usr/lib/systemd/systemd")
        );
    }

    #[test]
    fn percentiles() {
        let samples: Vec<Duration> = (1..=20).rev().map(Duration::from_millis).collect();
        assert_eq!(Stats::of(&samples), Stats { p10: 2.0, p50: 10.0, p90: 18.0 });
    }

    #[test]
    fn report_shows_ratio_and_skips() {
        let v = Variant {
            label: "privileged",
            hearth_id: PRIV,
            lxc: None,
            hearth: vec![Duration::from_millis(10)],
            anchor: vec![Duration::from_millis(5)],
            hearth_rss: Some(1.5),
            lxc_rss: None,
        };
        let d = DebianRows {
            hearth: Vec::new(),
            hearth_states: Vec::new(),
            hearth_failed: Some("starting".into()),
            lxc: None,
        };
        let text = report(1, &[v], Some(&d), &["x".into()]);
        assert!(text.contains("2.00"), "{text}");
        assert!(text.contains("DID NOT reach running"), "{text}");
        assert!(text.contains("note: x"), "{text}");
    }
}
