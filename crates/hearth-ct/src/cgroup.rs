//! A container's control groups on cgroup v1 (each controller its own hierarchy, plus the named
//! `systemd` hierarchy a systemd guest needs) and on the unified v2 hierarchy.
//!
//! Layout as Proxmox's: the limits live on `<name>` (e.g. `hearth/105`), the container's cgroup
//! namespace is rooted one level deeper at `<name>/ns`, which belongs to the container's root,
//! so the guest manages its own subtree but cannot raise its limits.

use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::devices;
use crate::spec::Limits;

/// One mounted hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where the host mounted it: `/sys/fs/cgroup/memory`.
    pub mount: PathBuf,
    /// `None` for cgroup2, else the v1 options naming it: `cpu,cpuacct`, `name=systemd`.
    pub v1_options: Option<String>,
}

impl Hierarchy {
    fn has(&self, controller: &str) -> bool {
        self.v1_options.as_deref().is_some_and(|o| o.split(',').any(|c| c == controller))
    }

    /// The mount point's last component (`cpu,cpuacct`), reused inside the container.
    pub fn dir_name(&self) -> String {
        self.mount.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }
}

/// The host's cgroup hierarchies, from /proc/self/mountinfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub hierarchies: Vec<Hierarchy>,
}

const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "net_cls",
    "net_prio",
    "perf_event",
    "hugetlb",
    "rdma",
    "misc",
];

impl Layout {
    /// Reads the mounted hierarchies. Hybrid hosts give v1 controllers and a mostly empty
    /// cgroup2 at `/sys/fs/cgroup/unified`; pure v2 hosts a single cgroup2.
    pub fn detect() -> io::Result<Layout> {
        Ok(Self::parse(&fs::read_to_string("/proc/self/mountinfo")?))
    }

    fn parse(mountinfo: &str) -> Layout {
        let mut hierarchies = Vec::new();
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else { continue };
            let mount = left.split(' ').nth(4).unwrap_or_default();
            let mut right = right.split(' ');
            let fstype = right.next().unwrap_or_default();
            let _source = right.next();
            let options = right.next().unwrap_or_default();
            let mount = PathBuf::from(mount.replace("\\040", " "));
            if hierarchies.iter().any(|h: &Hierarchy| h.mount == mount) {
                continue;
            }
            match fstype {
                "cgroup2" => hierarchies.push(Hierarchy { mount, v1_options: None }),
                "cgroup" => {
                    let named: Vec<&str> =
                        options.split(',').filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name=")).collect();
                    if !named.is_empty() {
                        hierarchies.push(Hierarchy { mount, v1_options: Some(named.join(",")) });
                    }
                }
                _ => {}
            }
        }
        Layout { hierarchies }
    }

    /// Whether every controller lives on cgroup2 (no v1 hierarchy mounted).
    pub fn is_pure_v2(&self) -> bool {
        self.hierarchies.iter().all(|h| h.v1_options.is_none())
    }

    fn controller(&self, name: &str) -> Option<&Hierarchy> {
        if self.is_pure_v2() {
            return self.hierarchies.first();
        }
        self.hierarchies.iter().find(|h| h.has(name))
    }
}

/// Errors name the file and the value.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0}")]
    Limit(String),
    #[error("cgroup {path}: device program: {source}")]
    DeviceProgram { path: PathBuf, source: io::Error },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io { path: path.to_owned(), source }
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(io_at(path))
}

/// A container's cgroups, one directory per hierarchy.
#[derive(Clone, Debug)]
pub struct Cgroups {
    pub layout: Layout,
    /// `hearth/105`, relative to each hierarchy's mount.
    pub name: String,
}

impl Cgroups {
    /// Freezes (or thaws) every task of the container and waits until the kernel reports the
    /// state reached: the v1 freezer's `freezer.state` (`FROZEN`/`THAWED`), or cgroup2's
    /// `cgroup.freeze` with `frozen` in `cgroup.events`. vzdump's suspend mode uses this.
    pub fn freeze(&self, frozen: bool) -> Result<(), CgroupError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let wait = |file: &Path, done: &dyn Fn(&str) -> bool| -> Result<(), CgroupError> {
            loop {
                let text = fs::read_to_string(file).map_err(io_at(file))?;
                if done(&text) {
                    return Ok(());
                }
                if std::time::Instant::now() > deadline {
                    return Err(CgroupError::Limit(format!("{} did not settle: {}", file.display(), text.trim())));
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        };
        if let Some(h) = self.layout.controller("freezer").filter(|h| h.v1_options.is_some()) {
            let file = h.mount.join(&self.name).join("freezer.state");
            let want = if frozen { "FROZEN" } else { "THAWED" };
            write(&file, want)?;
            return wait(&file, &|t| t.trim() == want);
        }
        let h = self
            .layout
            .hierarchies
            .iter()
            .find(|h| h.v1_options.is_none())
            .ok_or_else(|| CgroupError::Limit("no freezer: neither a v1 freezer nor cgroup2 is mounted".into()))?;
        let dir = h.mount.join(&self.name);
        write(&dir.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
        let want = if frozen { "frozen 1" } else { "frozen 0" };
        wait(&dir.join("cgroup.events"), &|t| t.lines().any(|l| l.trim() == want))
    }

    pub fn new(layout: Layout, name: &str) -> Cgroups {
        Cgroups { layout, name: name.to_owned() }
    }

    /// `<mount>/<name>` in every hierarchy.
    pub fn dirs(&self) -> impl Iterator<Item = (&Hierarchy, PathBuf)> {
        self.layout.hierarchies.iter().map(|h| (h, h.mount.join(&self.name)))
    }

    /// Creates the cgroups, writes the limits and hands `<name>/ns` to `owner` (the container
    /// root's host uid and gid) when unprivileged. Anything already there from an earlier run
    /// that ended badly is removed first.
    pub fn create(
        &self,
        limits: &Limits,
        owner: Option<(u32, u32)>,
        devices: &[devices::DeviceRule],
    ) -> Result<(), CgroupError> {
        self.remove();
        for (hierarchy, dir) in self.dirs() {
            if hierarchy.has("cpuset") {
                create_cpuset(&hierarchy.mount, &dir)?;
            } else {
                fs::create_dir_all(&dir).map_err(io_at(&dir))?;
            }
            if self.layout.is_pure_v2() {
                enable_v2_controllers(&hierarchy.mount, &dir)?;
            }
        }
        self.write_limits(limits, devices)?;
        for (hierarchy, dir) in self.dirs() {
            let ns = dir.join("ns");
            if hierarchy.has("cpuset") {
                create_cpuset(&hierarchy.mount, &ns)?;
            } else {
                fs::create_dir_all(&ns).map_err(io_at(&ns))?;
            }
            if let Some((uid, gid)) = owner {
                chown_tree(&ns, uid, gid)?;
            }
        }
        Ok(())
    }

    fn write_limits(&self, limits: &Limits, rules: &[devices::DeviceRule]) -> Result<(), CgroupError> {
        let v2 = self.layout.is_pure_v2();
        if let Some(h) = self.layout.controller("memory") {
            let dir = h.mount.join(&self.name);
            if let Some(memory) = limits.memory {
                if v2 {
                    write(&dir.join("memory.max"), &memory.to_string())?;
                    if let Some(swap) = limits.swap {
                        let swap_max = dir.join("memory.swap.max");
                        if swap_max.exists() {
                            write(&swap_max, &swap.to_string())?;
                        }
                    }
                } else {
                    write(&dir.join("memory.limit_in_bytes"), &memory.to_string())?;
                    // memsw exists only with swap accounting; without it swap cannot be capped.
                    let memsw = dir.join("memory.memsw.limit_in_bytes");
                    if memsw.exists() {
                        write(&memsw, &(memory + limits.swap.unwrap_or(0)).to_string())?;
                    }
                }
            }
        }
        if let Some(h) = self.layout.controller("cpu") {
            let dir = h.mount.join(&self.name);
            let quota = limits.cpulimit.filter(|c| *c > 0.0).map(|c| (c * 100_000.0).round() as u64);
            if v2 {
                if let Some(quota) = quota {
                    write(&dir.join("cpu.max"), &format!("{quota} 100000"))?;
                }
                if let Some(units) = limits.cpuunits {
                    write(&dir.join("cpu.weight"), &units.clamp(1, 10_000).to_string())?;
                }
            } else {
                if let Some(quota) = quota {
                    write(&dir.join("cpu.cfs_period_us"), "100000")?;
                    write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                }
                if let Some(units) = limits.cpuunits {
                    write(&dir.join("cpu.shares"), &units.max(2).to_string())?;
                }
            }
        }
        if let (Some(cores), Some(h)) = (limits.cores, self.layout.controller("cpuset")) {
            let dir = h.mount.join(&self.name);
            let file = if v2 { "cpuset.cpus.effective" } else { "cpuset.cpus" };
            let parent = dir.parent().map(|p| p.join(file)).unwrap_or_default();
            let allowed = parse_cpu_list(fs::read_to_string(&parent).map_err(io_at(&parent))?.trim());
            if (cores as usize) > allowed.len() {
                return Err(CgroupError::Limit(format!(
                    "cores: {cores} CPUs asked, the host allows {}",
                    allowed.len()
                )));
            }
            let list: Vec<String> = allowed.iter().take(cores as usize).map(u32::to_string).collect();
            write(&dir.join("cpuset.cpus"), &list.join(","))?;
        }
        if let (Some(pids), Some(h)) = (limits.pids, self.layout.controller("pids")) {
            write(&h.mount.join(&self.name).join("pids.max"), &pids.to_string())?;
        }
        if !v2 && let Some(h) = self.layout.controller("devices") {
            // v1 device rules (LXC's stock config only has cgroup2 ones and skips them on v1).
            let dir = h.mount.join(&self.name);
            write(&dir.join("devices.deny"), "a")?;
            for rule in rules {
                write(&dir.join("devices.allow"), &rule.v1_line())?;
            }
        }
        self.attach_device_program(rules)?;
        Ok(())
    }

    /// Changes the memory and swap limits (bytes) of a running container. On v1 the
    /// memory+swap limit may never be below the memory limit, so the order of the two writes
    /// follows the direction of the change.
    pub fn set_memory(&self, memory: u64, swap: u64) -> Result<(), CgroupError> {
        let Some(h) = self.layout.controller("memory") else { return Ok(()) };
        let dir = h.mount.join(&self.name);
        if self.layout.is_pure_v2() {
            write(&dir.join("memory.max"), &memory.to_string())?;
            let swap_max = dir.join("memory.swap.max");
            if swap_max.exists() {
                write(&swap_max, &swap.to_string())?;
            }
            return Ok(());
        }
        let limit = dir.join("memory.limit_in_bytes");
        let memsw = dir.join("memory.memsw.limit_in_bytes");
        if !memsw.exists() {
            return write(&limit, &memory.to_string());
        }
        let old_memsw: u64 = fs::read_to_string(&memsw).map_err(io_at(&memsw))?.trim().parse().unwrap_or(u64::MAX);
        if memory > old_memsw {
            write(&memsw, &(memory + swap).to_string())?;
            write(&limit, &memory.to_string())
        } else {
            write(&limit, &memory.to_string())?;
            write(&memsw, &(memory + swap).to_string())
        }
    }

    /// Changes the CPU time limit (in CPUs; unset or 0 = unlimited) of a running container.
    pub fn set_cpulimit(&self, cpulimit: Option<f64>) -> Result<(), CgroupError> {
        let Some(h) = self.layout.controller("cpu") else { return Ok(()) };
        let dir = h.mount.join(&self.name);
        let quota = cpulimit.filter(|c| *c > 0.0).map(|c| (c * 100_000.0).round() as u64);
        if self.layout.is_pure_v2() {
            let value = quota.map_or_else(|| "max 100000".to_owned(), |q| format!("{q} 100000"));
            return write(&dir.join("cpu.max"), &value);
        }
        write(&dir.join("cpu.cfs_period_us"), "100000")?;
        write(&dir.join("cpu.cfs_quota_us"), &quota.map_or_else(|| "-1".to_owned(), |q| q.to_string()))
    }

    /// Changes the CPU weight of a running container (unset = the kernel's default).
    pub fn set_cpuunits(&self, cpuunits: Option<u64>) -> Result<(), CgroupError> {
        let Some(h) = self.layout.controller("cpu") else { return Ok(()) };
        let dir = h.mount.join(&self.name);
        if self.layout.is_pure_v2() {
            return write(&dir.join("cpu.weight"), &cpuunits.unwrap_or(100).clamp(1, 10_000).to_string());
        }
        write(&dir.join("cpu.shares"), &cpuunits.unwrap_or(1024).max(2).to_string())
    }

    /// Changes the CPUs a running container may use: the first `cores` the host allows, or all.
    pub fn set_cores(&self, cores: Option<u32>) -> Result<(), CgroupError> {
        let Some(h) = self.layout.controller("cpuset") else { return Ok(()) };
        let dir = h.mount.join(&self.name);
        let file = if self.layout.is_pure_v2() { "cpuset.cpus.effective" } else { "cpuset.cpus" };
        let parent = dir.parent().map(|p| p.join(file)).unwrap_or_default();
        let allowed = parse_cpu_list(fs::read_to_string(&parent).map_err(io_at(&parent))?.trim());
        let cores = cores.map_or(allowed.len(), |c| c as usize);
        if cores > allowed.len() {
            return Err(CgroupError::Limit(format!("cores: {cores} CPUs asked, the host allows {}", allowed.len())));
        }
        let list: Vec<String> = allowed.iter().take(cores).map(u32::to_string).collect();
        let list = list.join(",");
        // Children must stay within their parents: growing goes top-down, shrinking bottom-up,
        // through every cgroup the container made below its own.
        let mut tree = vec![dir.clone()];
        let mut at = 0;
        while at < tree.len() {
            let children = fs::read_dir(&tree[at]).into_iter().flatten().flatten();
            let children: Vec<PathBuf> = children.map(|e| e.path()).filter(|p| p.is_dir()).collect();
            tree.extend(children);
            at += 1;
        }
        let grow = fs::read_to_string(dir.join("cpuset.cpus")).map_or(true, |t| parse_cpu_list(t.trim()).len() < cores);
        if !grow {
            tree.reverse();
        }
        for cgroup in tree {
            write(&cgroup.join("cpuset.cpus"), &list)?;
        }
        Ok(())
    }

    /// Attaches the device rules as an eBPF program to `<name>` of the cgroup2 hierarchy, when
    /// the host mounts one: the only device confinement on a pure v2 host, and on a hybrid host
    /// a second one the kernel checks besides the v1 rules (see [`crate::devices`]). The cgroup
    /// holds the program until it is removed.
    fn attach_device_program(&self, rules: &[devices::DeviceRule]) -> Result<(), CgroupError> {
        let Some(h) = self.layout.hierarchies.iter().find(|h| h.v1_options.is_none()) else { return Ok(()) };
        let dir = h.mount.join(&self.name);
        let failed = |source: io::Error| CgroupError::DeviceProgram { path: dir.clone(), source };
        let flags = nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC;
        let cgroup = nix::fcntl::open(&dir, flags, nix::sys::stat::Mode::empty()).map_err(|e| failed(e.into()))?;
        let program = devices::program(rules);
        let program = hearth_sys::bpf::load_cgroup_device_program(&program, devices::LICENSE).map_err(failed)?;
        hearth_sys::bpf::attach_cgroup_device(cgroup.as_fd(), program.as_fd(), hearth_sys::bpf::F_ALLOW_MULTI)
            .map_err(failed)
    }

    /// Moves the calling process — single-threaded — into `<name>/ns` of every hierarchy and
    /// answers where it was, for [`Cgroups::return_self`]. On v1 each move writes `0` to the
    /// hierarchy's `tasks` file: moving the calling thread by itself is the one attach path
    /// that skips the kernel's global threadgroup lock, whose writer side waits for an RCU
    /// grace period (about a millisecond per hierarchy, ten on these hosts). A process cloned
    /// meanwhile is born in the container's cgroups.
    pub fn enter_self(&self) -> Result<Vec<PathBuf>, CgroupError> {
        self.enter_self_but(false)
    }

    /// Like [`Cgroups::enter_self`], leaving out cgroup2: a child cloned with
    /// `CLONE_INTO_CGROUP` into [`Cgroups::v2_ns_dir`] is born there without any move.
    pub fn enter_self_v1(&self) -> Result<Vec<PathBuf>, CgroupError> {
        self.enter_self_but(true)
    }

    /// `<name>/ns` in the cgroup2 hierarchy, if the host mounts one.
    pub fn v2_ns_dir(&self) -> Option<PathBuf> {
        self.layout.hierarchies.iter().find(|h| h.v1_options.is_none()).map(|h| h.mount.join(&self.name).join("ns"))
    }

    /// [`Cgroups::v2_ns_dir`] opened for `CLONE_INTO_CGROUP`; `None` without cgroup2.
    pub fn open_v2_ns_dir(&self) -> Result<Option<std::os::fd::OwnedFd>, CgroupError> {
        let Some(dir) = self.v2_ns_dir() else { return Ok(None) };
        let flags = nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC;
        nix::fcntl::open(&dir, flags, nix::sys::stat::Mode::empty())
            .map(Some)
            .map_err(|e| CgroupError::Io { path: dir, source: e.into() })
    }

    fn enter_self_but(&self, skip_v2: bool) -> Result<Vec<PathBuf>, CgroupError> {
        let mut was = Vec::new();
        let current = fs::read_to_string("/proc/self/cgroup").map_err(io_at(Path::new("/proc/self/cgroup")))?;
        for hierarchy in &self.layout.hierarchies {
            if skip_v2 && hierarchy.v1_options.is_none() {
                continue;
            }
            let here = current.lines().find_map(|line| {
                let mut fields = line.splitn(3, ':');
                let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
                let matches = match &hierarchy.v1_options {
                    Some(options) => {
                        let mut a: Vec<&str> = controllers.split(',').collect();
                        let mut b: Vec<&str> = options.split(',').collect();
                        a.sort_unstable();
                        b.sort_unstable();
                        a == b
                    }
                    None => controllers.is_empty(),
                };
                matches.then(|| hierarchy.mount.join(path.trim_start_matches('/')))
            });
            let Some(here) = here else { continue };
            let file = if hierarchy.v1_options.is_some() { "tasks" } else { "cgroup.procs" };
            write(&hierarchy.mount.join(&self.name).join("ns").join(file), "0")?;
            was.push(here.join(file));
        }
        Ok(was)
    }

    /// Moves the calling process back to where [`Cgroups::enter_self`] found it.
    pub fn return_self(was: &[PathBuf]) -> Result<(), CgroupError> {
        for file in was {
            write(file, "0")?;
        }
        Ok(())
    }

    /// Removes the cgroups, deepest first, retrying briefly while exiting tasks drain.
    /// Returns the directories that could not be removed.
    pub fn remove(&self) -> Vec<PathBuf> {
        let mut left = Vec::new();
        for (_, dir) in self.dirs() {
            if !dir.exists() {
                continue;
            }
            for attempt in 0..50 {
                if remove_tree(&dir).is_ok() {
                    break;
                }
                if attempt == 49 {
                    left.push(dir.clone());
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        left
    }

    /// [`Cgroups::remove`] at teardown: the node's base directory (`hearth`) goes too once its
    /// last container left (rmdir refuses while another container is in it).
    pub fn remove_all(&self) -> Vec<PathBuf> {
        let left = self.remove();
        for (hierarchy, dir) in self.dirs() {
            if let Some(base) = dir.parent().filter(|b| *b != hierarchy.mount) {
                let _ = fs::remove_dir(base);
            }
        }
        left
    }

    /// Memory charged to the container, in bytes.
    pub fn memory_usage(&self) -> Option<u64> {
        let h = self.layout.controller("memory")?;
        let file = if self.layout.is_pure_v2() { "memory.current" } else { "memory.usage_in_bytes" };
        read_u64(&h.mount.join(&self.name).join(file))
    }

    /// The host CPUs the container may run on (its cpuset's effective list).
    pub fn cpu_list(&self) -> Option<Vec<u32>> {
        let h = self.layout.controller("cpuset")?;
        let dir = h.mount.join(&self.name);
        let file = if self.layout.is_pure_v2() { "cpuset.cpus.effective" } else { "cpuset.effective_cpus" };
        let text = fs::read_to_string(dir.join(file)).or_else(|_| fs::read_to_string(dir.join("cpuset.cpus"))).ok()?;
        Some(parse_cpu_list(text.trim()))
    }

    /// Tasks in the container.
    pub fn pids_current(&self) -> Option<u64> {
        let h = self.layout.controller("pids")?;
        read_u64(&h.mount.join(&self.name).join("pids.current"))
    }

    /// CPU time used, in nanoseconds.
    pub fn cpu_time(&self) -> Option<u64> {
        if self.layout.is_pure_v2() {
            let h = self.layout.controller("cpu")?;
            let stat = fs::read_to_string(h.mount.join(&self.name).join("cpu.stat")).ok()?;
            let usec = stat.lines().find_map(|l| l.strip_prefix("usage_usec "))?.trim().parse::<u64>().ok()?;
            return Some(usec * 1000);
        }
        let h = self.layout.controller("cpuacct")?;
        read_u64(&h.mount.join(&self.name).join("cpuacct.usage"))
    }

    /// How often the memory limit was hit and the OOM killer ran (v1 `memory.oom_control`,
    /// v2 `memory.events`).
    pub fn oom_kills(&self) -> Option<u64> {
        let h = self.layout.controller("memory")?;
        let dir = h.mount.join(&self.name);
        let (file, key) =
            if self.layout.is_pure_v2() { ("memory.events", "oom_kill ") } else { ("memory.oom_control", "oom_kill ") };
        let text = fs::read_to_string(dir.join(file)).ok()?;
        text.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.trim().parse().ok())
    }
}

fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// v1 cpusets start empty: every level copies cpus and mems from its parent before it can
/// hold tasks.
fn create_cpuset(mount: &Path, dir: &Path) -> Result<(), CgroupError> {
    let relative = dir.strip_prefix(mount).unwrap_or(dir);
    let mut current = mount.to_owned();
    for component in relative.components() {
        let parent = current.clone();
        current.push(component);
        if !current.exists() {
            fs::create_dir(&current).map_err(io_at(&current))?;
        }
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let mine = current.join(file);
            let value = fs::read_to_string(&mine).map_err(io_at(&mine))?;
            if value.trim().is_empty() {
                let theirs = parent.join(file);
                let value = fs::read_to_string(&theirs).map_err(io_at(&theirs))?;
                write(&mine, value.trim())?;
            }
        }
    }
    Ok(())
}

/// On v2 a child can only use the controllers its parent lists in `cgroup.subtree_control`.
fn enable_v2_controllers(mount: &Path, dir: &Path) -> Result<(), CgroupError> {
    let relative = dir.strip_prefix(mount).unwrap_or(dir);
    let mut current = mount.to_owned();
    for component in relative.components() {
        let available = fs::read_to_string(current.join("cgroup.controllers")).unwrap_or_default();
        let wanted: Vec<String> = available
            .split_whitespace()
            .filter(|c| ["cpu", "cpuset", "memory", "pids", "io"].contains(c))
            .map(|c| format!("+{c}"))
            .collect();
        if !wanted.is_empty() {
            write(&current.join("cgroup.subtree_control"), &wanted.join(" "))?;
        }
        current.push(component);
    }
    Ok(())
}

fn chown_tree(dir: &Path, uid: u32, gid: u32) -> Result<(), CgroupError> {
    let own = |p: &Path| {
        nix::unistd::chown(p, Some(nix::unistd::Uid::from_raw(uid)), Some(nix::unistd::Gid::from_raw(gid)))
            .map_err(|e| CgroupError::Io { path: p.to_owned(), source: e.into() })
    };
    own(dir)?;
    // Only what delegation needs: creating children and moving tasks. Control files such as
    // freezer.state stay host root's, so the guest cannot freeze the runtime's exec helpers.
    for file in [
        "cgroup.procs",
        "tasks",
        "cgroup.subtree_control",
        "cgroup.threads",
        "cgroup.clone_children",
        "notify_on_release",
    ] {
        let path = dir.join(file);
        if path.exists() {
            own(&path)?;
        }
    }
    Ok(())
}

/// Removes a cgroup directory and the ones below it (only directories: the control files
/// go with them).
fn remove_tree(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_tree(&entry.path())?;
        }
    }
    match fs::remove_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// `0-3,6,8-9` → [0,1,2,3,6,8,9].
pub fn parse_cpu_list(list: &str) -> Vec<u32> {
    let mut cpus = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    cpus.extend(a..=b);
                }
            }
            None => cpus.extend(part.parse::<u32>().ok()),
        }
    }
    cpus
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 30 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
30 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
31 25 0:29 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
";

    #[test]
    fn hybrid_layout_is_read_from_mountinfo() {
        let layout = Layout::parse(HYBRID);
        assert!(!layout.is_pure_v2());
        let names: Vec<(String, Option<String>)> =
            layout.hierarchies.iter().map(|h| (h.dir_name(), h.v1_options.clone())).collect();
        assert_eq!(
            names,
            [
                ("unified".to_owned(), None),
                ("systemd".to_owned(), Some("name=systemd".to_owned())),
                ("cpu,cpuacct".to_owned(), Some("cpu,cpuacct".to_owned())),
                ("memory".to_owned(), Some("memory".to_owned())),
            ]
        );
        assert_eq!(layout.controller("cpuacct").unwrap().dir_name(), "cpu,cpuacct");
        assert!(layout.controller("pids").is_none());
    }

    /// The device program on the cgroup2 hierarchy: attached to `<name>`, effective for
    /// `<name>/ns`, and enforced by the kernel for a process that is only in the cgroup2
    /// cgroup (its v1 `devices` cgroup stays the host's root, which allows everything).
    #[test]
    fn the_device_program_confines_processes_on_cgroup2() {
        use nix::fcntl::OFlag;
        use nix::sys::stat::{Mode, SFlag};
        use std::os::fd::OwnedFd;

        let layout = Layout::detect().unwrap();
        let v2 = layout
            .hierarchies
            .iter()
            .find(|h| h.v1_options.is_none())
            .expect("a cgroup2 hierarchy (hybrid hosts mount it at /sys/fs/cgroup/unified)")
            .clone();
        let base = format!("hearth-devtest-{}", std::process::id());
        let cgroups = Cgroups::new(layout.clone(), &format!("{base}/ct"));
        cgroups.create(&Limits::default(), None, &devices::container_rules(false)).unwrap();
        let open = |p: &Path| -> OwnedFd {
            nix::fcntl::open(p, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty()).unwrap()
        };
        let ct = v2.mount.join(&base).join("ct");
        use hearth_sys::bpf::{F_QUERY_EFFECTIVE, query_cgroup_device};
        assert_eq!(query_cgroup_device(open(&ct).as_fd(), 0).unwrap().len(), 1, "attached to <ct>");
        let ns = ct.join("ns");
        assert!(query_cgroup_device(open(&ns).as_fd(), 0).unwrap().is_empty(), "nothing attached to <ct>/ns");
        assert_eq!(query_cgroup_device(open(&ns).as_fd(), F_QUERY_EFFECTIVE).unwrap().len(), 1, "runs for <ct>/ns");

        let nodes = tempfile::tempdir().unwrap();
        for (name, kind, major, minor) in
            [("null", SFlag::S_IFCHR, 1, 3), ("kmsg", SFlag::S_IFCHR, 1, 11), ("loop", SFlag::S_IFBLK, 7, 0)]
        {
            let dev = nix::sys::stat::makedev(major, minor);
            nix::sys::stat::mknod(&nodes.path().join(name), kind, Mode::from_bits_truncate(0o600), dev).unwrap();
        }
        // A shell moves itself into <ct>/ns, then opens the node.
        let open_inside = |name: &str| {
            let out = std::process::Command::new("sh")
                .args(["-c", "echo 0 > \"$1/cgroup.procs\" || exit 9; exec 3< \"$2\""])
                .arg("sh")
                .arg(&ns)
                .arg(nodes.path().join(name))
                .output()
                .unwrap();
            (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
        };
        assert_eq!(open_inside("null"), (Some(0), String::new()));
        for denied in ["kmsg", "loop"] {
            let (code, err) = open_inside(denied);
            assert_ne!(code, Some(9), "moving into the cgroup: {err}");
            assert!(code != Some(0) && err.contains("Operation not permitted"), "{denied}: {code:?} {err}");
        }
        // Outside the cgroup the kernel lets root open the same node.
        fs::File::open(nodes.path().join("kmsg")).expect("/dev/kmsg's node outside the container's cgroup");

        assert!(cgroups.remove().is_empty());
        for (_, dir) in Cgroups::new(layout, &base).dirs() {
            let _ = fs::remove_dir(&dir);
        }
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,6,8-9"), [0, 1, 2, 3, 6, 8, 9]);
        assert_eq!(parse_cpu_list("0"), [0]);
        assert!(parse_cpu_list("").is_empty());
    }

    #[test]
    fn limits_land_in_the_host_hierarchies() {
        let layout = Layout::detect().unwrap();
        let name = format!("hearth-test-{}/cg", std::process::id());
        let cgroups = Cgroups::new(layout.clone(), &name);
        let limits = Limits {
            memory: Some(64 << 20),
            swap: Some(0),
            cpulimit: Some(0.5),
            cpuunits: Some(512),
            cores: Some(1),
            pids: Some(100),
        };
        cgroups.create(&limits, Some((100_000, 100_000)), &devices::container_rules(false)).unwrap();
        let memory = layout.controller("memory").unwrap().mount.join(&name);
        let expect =
            if layout.is_pure_v2() { ("memory.max", "67108864") } else { ("memory.limit_in_bytes", "67108864") };
        assert_eq!(fs::read_to_string(memory.join(expect.0)).unwrap().trim(), expect.1);
        use std::os::unix::fs::MetadataExt;
        assert_eq!(fs::metadata(memory.join("ns")).unwrap().uid(), 100_000);
        assert_eq!(fs::metadata(memory.join("ns/cgroup.procs")).unwrap().uid(), 100_000);
        if !layout.is_pure_v2() {
            let devices = layout.controller("devices").unwrap().mount.join(&name);
            let list = fs::read_to_string(devices.join("devices.list")).unwrap();
            assert!(list.lines().any(|l| l == "c 1:3 rwm") && !list.contains("a *:*"), "{list}");
        }
        let too_many = Limits { cores: Some(100_000), ..Limits::default() };
        let err = cgroups.create(&too_many, None, &devices::container_rules(false)).unwrap_err();
        assert!(err.to_string().contains("cores: 100000"), "{err}");
        assert!(cgroups.remove().is_empty());
        for (_, dir) in Cgroups::new(layout, &format!("hearth-test-{}", std::process::id())).dirs() {
            let _ = fs::remove_dir(&dir);
            assert!(!dir.exists(), "{}", dir.display());
        }
    }
}
