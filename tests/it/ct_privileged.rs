//! How far a container's root can reach the host's kernel through `/proc`, `/sys`, mounts and
//! device nodes: a privileged container (`--unprivileged 0`, container root is host root) is
//! confined as LXC's default profile confines one, and an unprivileged one cannot write the
//! host's sysctls even when it undoes its own read-only binds.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use hearth_test::HearthdProcess;

use crate::ct::{cgroup_dirs, create, ctid, exec, status, wait_until};
use crate::ok;

const CORE_PATTERN: &str = "/proc/sys/kernel/core_pattern";

/// The host's `kernel.core_pattern` as a test found it, put back when dropped should a
/// container have changed it (the test's own assertion reports that).
struct CorePattern(String);

impl CorePattern {
    fn save() -> CorePattern {
        CorePattern(Self::now())
    }

    fn now() -> String {
        std::fs::read_to_string(CORE_PATTERN).expect("reading the host's core_pattern")
    }
}

impl Drop for CorePattern {
    fn drop(&mut self) {
        if Self::now() != self.0 {
            let _ = std::fs::write(CORE_PATTERN, &self.0);
        }
    }
}

/// `sh -c script` inside the container.
fn sh(daemon: &HearthdProcess, id: &str, script: &str) -> (i32, String) {
    let (code, out, err) = exec(daemon, id, &["sh", "-c", script]);
    (code, format!("{out}{err}"))
}

/// Runs each `(what, script)` and asserts that it fails, with `Operation not permitted`,
/// `Read-only file system` or busybox mount's words for EPERM in its output.
fn refused(daemon: &HearthdProcess, id: &str, attempts: &[(&str, &str)]) {
    for (what, script) in attempts {
        let (code, out) = sh(daemon, id, script);
        assert_ne!(code, 0, "{what} succeeded: `{script}`: {out}");
        assert!(
            ["Operation not permitted", "Read-only file system", "permission denied (are you root?)"]
                .iter()
                .any(|m| out.contains(m)),
            "{what}: `{script}` failed for another reason: {out}"
        );
    }
}

/// Whether this kernel has the sysrq trigger (`CONFIG_MAGIC_SYSRQ`). Without it there is no
/// `/proc/sysrq-trigger` to protect, and the container must not have one either.
fn has_sysrq() -> bool {
    Path::new("/proc/sysrq-trigger").exists()
}

/// What a container's attempt to use the sysrq trigger must meet: a read-only file, or none.
fn check_sysrq(daemon: &HearthdProcess, id: &str) {
    if has_sysrq() {
        refused(daemon, id, &[("the sysrq trigger", "echo h > /proc/sysrq-trigger")]);
    } else {
        let (code, out) = sh(daemon, id, "test ! -e /proc/sysrq-trigger");
        assert_eq!(code, 0, "a sysrq trigger inside although the kernel has none: {out}");
    }
}

/// A block device of the host: the first disk in /sys/block (`major:minor`).
fn host_disk() -> (String, String) {
    let mut disks: Vec<PathBuf> = std::fs::read_dir("/sys/block")
        .expect("/sys/block")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            ["vd", "sd", "nvme", "xvd", "hd", "mmcblk"].iter().any(|prefix| name.starts_with(prefix))
        })
        .collect();
    disks.sort();
    let disk = disks.first().expect("the host has a disk in /sys/block (vd*, sd*, nvme*, …)");
    let dev = std::fs::read_to_string(disk.join("dev")).expect("the disk's dev file");
    let (major, minor) = dev.trim().split_once(':').expect("major:minor");
    (major.to_owned(), minor.to_owned())
}

fn open_dir(path: &Path) -> OwnedFd {
    use nix::fcntl::OFlag;
    nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

#[test]
fn a_privileged_container_runs_but_cannot_undo_its_confinement() {
    let core = CorePattern::save();
    let daemon = HearthdProcess::start();
    let id = ctid(18);
    create(&daemon, &id, &["--unprivileged", "0"]);
    ok(&daemon, "ctctl", &["start", &id]);

    // It runs, as host root.
    let init = status(&daemon, &id)["pid"].as_u64().expect("pid");
    let host_status = std::fs::read_to_string(format!("/proc/{init}/status")).expect("status");
    assert!(host_status.lines().any(|l| l.starts_with("Uid:\t0\t")), "{host_status}");
    let (code, out, err) = exec(&daemon, &id, &["hostname"]);
    assert_eq!((code, out.trim()), (0, "box"), "{err}");
    let (_, out) = sh(&daemon, &id, "grep ^Seccomp: /proc/1/status /proc/self/status");
    assert_eq!(out.matches("Seccomp:\t2").count(), 2, "{out}");
    // Its view: /proc/sys read-only but the network namespace's part, /run and /run/lock
    // mounted for it, sysfs read-only.
    let (_, mounts) = sh(&daemon, &id, "cat /proc/mounts");
    let options = |target: &str| -> String {
        let line = mounts.lines().find(|l| l.split(' ').nth(1) == Some(target));
        line.unwrap_or_else(|| panic!("{target} is not mounted: {mounts}")).split(' ').nth(3).expect("options").into()
    };
    let mut readonly = vec!["/proc/sys", "/proc/irq", "/proc/bus", "/proc/fs", "/sys"];
    if has_sysrq() {
        readonly.push("/proc/sysrq-trigger");
    }
    if Path::new("/proc/mtrr").exists() {
        // A file, made read-only the same way as the sysrq trigger.
        readonly.push("/proc/mtrr");
    }
    for target in readonly {
        assert!(options(target).starts_with("ro,"), "{target}: {}", options(target));
    }
    assert!(options("/proc/sys/net").starts_with("rw,"));
    for target in ["/run", "/run/lock"] {
        assert!(options(target).contains("nodev"), "{target}: {}", options(target));
    }
    let (code, out) = sh(&daemon, &id, "echo 1 > /proc/sys/net/ipv4/ip_forward && cat /proc/sys/net/ipv4/ip_forward");
    assert_eq!((code, out.trim()), (0, "1"), "the container's own network sysctls stay writable");
    // What the filter lets through: propagation changes (systemd makes / shared at boot).
    for script in ["mount --make-rshared /", "mount --make-rslave /", "mount --make-private /proc"] {
        let (code, out) = sh(&daemon, &id, script);
        assert_eq!(code, 0, "`{script}`: {out}");
    }

    // Nothing undoes the read-only /proc/sys or reaches the host's kernel another way.
    let (major, minor) = host_disk();
    refused(
        &daemon,
        &id,
        &[
            ("writing core_pattern", "echo '|/bin/hearth-pwned %p' > /proc/sys/kernel/core_pattern"),
            ("a fresh procfs", "mkdir -p /mnt && mount -t proc proc /mnt"),
            ("a fresh sysfs", "mount -t sysfs sysfs /mnt"),
            ("a cgroup2 mount", "mount -t cgroup2 cgroup2 /mnt"),
            ("a tmpfs", "mount -t tmpfs tmpfs /mnt"),
            ("a plain bind of /proc, without its read-only /proc/sys", "mount -o bind /proc /mnt"),
            ("a recursive bind", "mount -o rbind /proc /mnt"),
            ("unmounting /proc/sys", "umount /proc/sys"),
            ("detaching /proc/sys", "umount -l /proc/sys"),
            ("remounting /proc/sys read-write", "mount -o remount,rw /proc/sys"),
            ("bind-remounting /proc/sys read-write", "mount -o remount,bind,rw /proc/sys"),
            ("bind-remounting /proc/sys read-only", "mount -o remount,bind,ro /proc/sys"),
            ("moving /proc/sys away", "mount -o move /proc/sys /mnt"),
            ("making /proc/sys unbindable", "mount --make-unbindable /proc/sys"),
            ("remounting sysfs read-write", "mount -o remount,rw /sys"),
            ("pivoting onto /proc/sys", "cd /proc/sys && pivot_root . kernel"),
            ("a host disk", &format!("mknod /dev/hostdisk b {major} {minor}; head -c 512 /dev/hostdisk > /dev/null")),
            ("/dev/mem", "mknod /dev/mem1 c 1 1; head -c 1 /dev/mem1 > /dev/null"),
            ("the host's console", "mknod /dev/hostconsole c 5 1; echo hearth-test > /dev/hostconsole"),
        ],
    );
    check_sysrq(&daemon, &id);
    assert_eq!(CorePattern::now(), core.0, "the host's core_pattern changed");
    let (code, out) = sh(&daemon, &id, "cat /proc/sys/kernel/core_pattern");
    assert_eq!((code, out.trim()), (0, core.0.trim()), "sysctls stay readable");

    // The device rules are twofold on this host: v1 devices.allow lines and an eBPF program on
    // the container's cgroup2 cgroup, out of the container's reach. Widening the v1 rules for
    // the disk leaves the program refusing it.
    let dirs = cgroup_dirs(&id);
    let unified = dirs.iter().find(|d| d.starts_with("/sys/fs/cgroup/unified")).expect("a cgroup2 cgroup");
    let attached = hearth_sys::bpf::query_cgroup_device(open_dir(unified).as_fd(), 0).expect("BPF_PROG_QUERY");
    assert_eq!(attached.len(), 1, "one device program on {}", unified.display());
    let effective =
        hearth_sys::bpf::query_cgroup_device(open_dir(&unified.join("ns")).as_fd(), hearth_sys::bpf::F_QUERY_EFFECTIVE)
            .expect("BPF_PROG_QUERY");
    assert_eq!(effective, attached, "the program runs for the container's own cgroups");
    let devices = dirs.iter().find(|d| d.starts_with("/sys/fs/cgroup/devices")).expect("a v1 devices cgroup");
    let rule = format!("b {major}:{minor} r");
    for dir in [devices.clone(), devices.join("ns")] {
        std::fs::write(dir.join("devices.allow"), &rule).expect("widening the v1 rules");
    }
    let list = std::fs::read_to_string(devices.join("ns/devices.list")).expect("devices.list");
    assert!(list.lines().any(|l| l == format!("b {major}:{minor} r")), "{list}");
    refused(&daemon, &id, &[("the host disk with v1 allowing it", "head -c 512 /dev/hostdisk > /dev/null")]);

    ok(&daemon, "ctctl", &["stop", &id]);
    wait_until("the cgroups to go", || cgroup_dirs(&id).is_empty());
    ok(&daemon, "ctctl", &["destroy", &id]);
}

/// Unprivileged containers get the same read-only `/proc/sys` and sysrq trigger. Their root
/// may remount or unmount its own binds (the kernel locks only mounts inherited from a more
/// privileged namespace), but every sysctl write is checked against the host's root.
#[test]
fn an_unprivileged_container_cannot_write_the_hosts_sysctls() {
    let core = CorePattern::save();
    let daemon = HearthdProcess::start();
    let id = ctid(19);
    create(&daemon, &id, &[]);
    ok(&daemon, "ctctl", &["start", &id]);
    let (_, mounts) = sh(&daemon, &id, "grep -E ' /proc/(sys|sysrq-trigger) ' /proc/mounts");
    let readonly = mounts.lines().filter(|l| l.split(' ').nth(3).is_some_and(|o| o.starts_with("ro,"))).count();
    assert_eq!(readonly, if has_sysrq() { 2 } else { 1 }, "{mounts}");
    refused(&daemon, &id, &[("writing core_pattern", "echo hearth-pwned > /proc/sys/kernel/core_pattern")]);
    check_sysrq(&daemon, &id);
    // Undone, the binds uncover files that are still not the container's to write.
    let (_, out) = sh(&daemon, &id, "umount -l /proc/sys; umount -l /proc/sysrq-trigger; true");
    eprintln!("unmounting inside the user namespace: {}", out.trim());
    for script in [
        "echo hearth-pwned > /proc/sys/kernel/core_pattern",
        "mkdir -p /mnt && mount -t proc proc /mnt && echo hearth-pwned > /mnt/sys/kernel/core_pattern",
        "echo h > /proc/sysrq-trigger",
    ] {
        let (code, out) = sh(&daemon, &id, script);
        assert_ne!(code, 0, "`{script}` succeeded: {out}");
    }
    assert_eq!(CorePattern::now(), core.0, "the host's core_pattern changed");
    ok(&daemon, "ctctl", &["stop", &id]);
    ok(&daemon, "ctctl", &["destroy", &id]);
}
