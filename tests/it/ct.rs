//! System containers end to end: a real hearthd, the real ctctl, busybox containers in real
//! namespaces with real cgroups, veths and bridges.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use hearth_proto::{CtRequest, Request};
use hearth_test::HearthdProcess;

use crate::vm::Bridge;
use crate::{json, ok, run, template, vmid};

/// Container ids unique to this test process, so veths and cgroups of parallel tests differ.
pub(crate) fn ctid(n: u32) -> String {
    // 100 ids a process (each test runs in a process of its own): the ids, and with them the
    // cgroups, of tests running side by side never meet.
    assert!(n < 100, "ctid({n}): a test process has ids 0 to 99");
    (10_000 + (std::process::id() % 90_000) * 100 + n).to_string()
}

pub(crate) fn create(daemon: &HearthdProcess, id: &str, extra: &[&str]) {
    let template = template(daemon);
    let mut args = vec!["create", id, template.as_str(), "--rootfs", "local:0", "--hostname", "box", "--swap", "0"];
    if !extra.contains(&"--memory") {
        args.extend(["--memory", "64"]);
    }
    args.extend(extra);
    ok(daemon, "ctctl", &args);
}

pub(crate) fn status(daemon: &HearthdProcess, id: &str) -> serde_json::Value {
    json(daemon, "ctctl", &["status", id, "--verbose"])
}

pub(crate) fn exec(daemon: &HearthdProcess, id: &str, command: &[&str]) -> (i32, String, String) {
    let mut args = vec!["exec", id, "--"];
    args.extend(command);
    run(daemon, "ctctl", &args)
}

pub(crate) fn cgroup_dirs(id: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        for base in std::fs::read_dir(hierarchy.path()).into_iter().flatten().flatten() {
            if base.file_name().to_string_lossy().starts_with("hearth") && base.path().join(id).exists() {
                found.push(base.path().join(id));
            }
        }
    }
    found
}

pub(crate) fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_busybox_container_runs_commands_and_moves_files() {
    let daemon = HearthdProcess::start();
    let id = ctid(1);
    create(&daemon, &id, &[]);
    let config = json(&daemon, "ctctl", &["config", &id]);
    assert_eq!(config["hostname"], "box");
    ok(&daemon, "ctctl", &["start", &id]);
    let st = status(&daemon, &id);
    assert_eq!(st["status"], "running", "{st}");
    let init = st["pid"].as_u64().expect("init pid") as u32;

    // exec: output, exit status, the container's own view.
    let (code, out, err) = exec(&daemon, &id, &["hostname"]);
    assert_eq!((code, out.trim()), (0, "box"), "{err}");
    let (code, _, _) = exec(&daemon, &id, &["sh", "-c", "exit 7"]);
    assert_eq!(code, 7);
    let (code, out, _) = exec(&daemon, &id, &["id", "-u"]);
    assert_eq!((code, out.trim()), (0, "0"));
    let (code, _, err) = exec(&daemon, &id, &["/no/such/program"]);
    assert_eq!(code, 127, "{err}");
    // Unprivileged: container root is host uid 100000.
    let host_uid = std::fs::read_to_string(format!("/proc/{init}/status")).expect("status");
    assert!(host_uid.lines().any(|l| l.starts_with("Uid:") && l.contains("100000")), "{host_uid}");

    // push and pull.
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("in.txt");
    std::fs::write(&local, "pushed through hearthd\n").expect("write");
    ok(&daemon, "ctctl", &["push", &id, local.to_str().expect("utf-8"), "/root/file.txt", "--perms", "0600"]);
    let (_, out, _) = exec(&daemon, &id, &["stat", "-c", "%a %u %s", "/root/file.txt"]);
    assert_eq!(out.trim(), "600 0 23");
    let back = dir.path().join("out.txt");
    ok(&daemon, "ctctl", &["pull", &id, "/root/file.txt", back.to_str().expect("utf-8")]);
    assert_eq!(std::fs::read_to_string(&back).expect("pulled"), "pushed through hearthd\n");
    let (code, _, err) = run(&daemon, "ctctl", &["pull", &id, "/no/such/file", back.to_str().expect("utf-8")]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/no/such/file"), "{err}");

    // The console: output printed before attaching is replayed, input reaches the shell.
    let mut console = open_console(&daemon, &id);
    console.write_all(b"echo console-$((6*7))\n").expect("typing");
    expect(&mut console, "console-42");

    // stop tears everything down.
    ok(&daemon, "ctctl", &["stop", &id]);
    assert_eq!(status(&daemon, &id)["status"], "stopped");
    assert!(!Path::new(&format!("/proc/{init}")).exists(), "init is gone");
    wait_until("the cgroups to go", || cgroup_dirs(&id).is_empty());
    let (code, _, err) = exec(&daemon, &id, &["true"]);
    assert_eq!(code, 1);
    assert!(err.contains("not running"), "{err}");
    ok(&daemon, "ctctl", &["destroy", &id]);
}

fn open_console(daemon: &HearthdProcess, id: &str) -> std::os::unix::net::UnixStream {
    let mut client = daemon.client();
    let fd: OwnedFd = client
        .call_for_file(&Request::Ct(CtRequest::Console { vmid: vmid(id.parse().expect("id")), tty: None }))
        .expect("console");
    let stream = std::os::unix::net::UnixStream::from(fd);
    stream.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    stream
}

fn expect(console: &mut std::os::unix::net::UnixStream, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = console.read(&mut buf) {
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen);
            if text.contains(needle) {
                return text.into_owned();
            }
        }
    }
    panic!("'{needle}' not seen on the console: {}", String::from_utf8_lossy(&seen));
}

#[test]
fn limits_confine_a_memory_hog_and_shutdown_is_clean() {
    let daemon = HearthdProcess::start();
    let id = ctid(2);
    create(&daemon, &id, &["--memory", "32", "--cores", "1"]);
    ok(&daemon, "ctctl", &["start", &id]);
    let (code, _, _) = exec(&daemon, &id, &["sh", "-c", "x=$(tr '\\0' a < /dev/zero); echo never"]);
    assert_eq!(code, 128 + 9, "the hog is killed inside its cgroup");
    assert_eq!(status(&daemon, &id)["status"], "running", "the container survives its hog");
    let memory =
        cgroup_dirs(&id).into_iter().find(|d| d.to_string_lossy().contains("/memory/")).expect("memory cgroup");
    let limit = std::fs::read_to_string(memory.join("memory.limit_in_bytes")).expect("limit");
    assert_eq!(limit.trim(), (32u64 << 20).to_string());
    // shutdown asks busybox init with SIGPWR (it does not block SIGRTMIN+3) and waits.
    ok(&daemon, "ctctl", &["shutdown", &id, "--timeout", "20"]);
    let st = status(&daemon, &id);
    assert_eq!(st["status"], "stopped");
    assert_eq!(st["last_exit"], "halt", "{st}");
    // Limits the host cannot give are refused before anything runs.
    ok(&daemon, "ctctl", &["set", &id, "--cores", "4096"]);
    let (code, _, err) = run(&daemon, "ctctl", &["start", &id]);
    assert_eq!(code, 1);
    assert!(err.contains("cores: 4096"), "{err}");
    assert!(cgroup_dirs(&id).is_empty());
}

#[test]
fn two_containers_on_one_bridge_ping_each_other() {
    let daemon = HearthdProcess::start();
    let bridge = Bridge::new();
    let (a, b) = (ctid(3), ctid(4));
    for (id, ip) in [(&a, "10.98.0.1/24"), (&b, "10.98.0.2/24")] {
        let net0 = format!("name=eth0,bridge={},ip={ip}", bridge.0);
        create(&daemon, id, &["--net0", &net0]);
        ok(&daemon, "ctctl", &["start", id]);
    }
    let (code, out, err) = exec(&daemon, &a, &["ping", "-c", "1", "-W", "5", "10.98.0.2"]);
    assert_eq!(code, 0, "{out}{err}");
    let master = std::fs::read_link(format!("/sys/class/net/veth{a}i0/master")).expect("the veth is in the bridge");
    assert!(master.ends_with(&bridge.0), "{master:?}");
    // Killing the container's init: reported stopped, veth and cgroups gone.
    let init = status(&daemon, &b)["pid"].as_u64().expect("pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(init as i32), nix::sys::signal::Signal::SIGKILL).expect("kill");
    wait_until("the container to stop", || status(&daemon, &b)["status"] == "stopped");
    wait_until("the veth to go", || !Path::new(&format!("/sys/class/net/veth{b}i0")).exists());
    wait_until("the cgroups to go", || cgroup_dirs(&b).is_empty());
    // Killing the monitor: the container dies with it and hearthd cleans up.
    let monitor = status(&daemon, &a)["monitor_pid"].as_u64().expect("monitor pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(monitor as i32), nix::sys::signal::Signal::SIGKILL)
        .expect("kill");
    wait_until("the container to stop", || status(&daemon, &a)["status"] == "stopped");
    wait_until("the veth to go", || !Path::new(&format!("/sys/class/net/veth{a}i0")).exists());
    wait_until("the cgroups to go", || cgroup_dirs(&a).is_empty());
    // A bridge that does not exist is refused before anything starts.
    ok(&daemon, "ctctl", &["set", &a, "--net0", "name=eth0,bridge=nobr9"]);
    let (code, _, err) = run(&daemon, "ctctl", &["start", &a]);
    assert_eq!(code, 1);
    assert!(err.contains("nobr9"), "{err}");
}

#[test]
fn bad_templates_and_volumes_are_refused_and_leave_nothing() {
    let daemon = HearthdProcess::start();
    let id = ctid(5);
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk.tar.zst");
    std::fs::write(&junk, b"this is not an archive at all").expect("write");
    ok(&daemon, "storectl", &["upload", "local", junk.to_str().expect("utf-8"), "--content", "vztmpl"]);
    let (code, _, err) = run(&daemon, "ctctl", &["create", &id, "local:vztmpl/junk.tar.zst", "--rootfs", "local:0"]);
    assert_eq!(code, 1, "{err}");
    let (code, _, _) = run(&daemon, "ctctl", &["config", &id]);
    assert_eq!(code, 1, "no half-created container");
    let images = daemon.root().join("var/lib/hearth/images").join(&id);
    assert!(!images.exists() || std::fs::read_dir(&images).expect("dir").next().is_none(), "no volume left");
    // A rootfs volume of another guest.
    let other = ctid(6);
    create(&daemon, &other, &[]);
    let volume = json(&daemon, "ctctl", &["config", &other])["rootfs"].as_str().expect("rootfs").to_owned();
    ok(&daemon, "ctctl", &["create", &id, &template(&daemon), "--rootfs", "local:0"]);
    let (code, _, err) = run(&daemon, "ctctl", &["set", &id, "--rootfs", &volume]);
    assert_ne!(code, 0, "{err}");
    // An init that does not exist in the rootfs is named.
    let (_, _, _) = exec(&daemon, &id, &["true"]);
    ok(&daemon, "ctctl", &["start", &other]);
    exec(&daemon, &other, &["rm", "/sbin/init"]);
    ok(&daemon, "ctctl", &["stop", &other]);
    let (code, _, err) = run(&daemon, "ctctl", &["start", &other]);
    assert_eq!(code, 1);
    assert!(err.contains("init /sbin/init does not exist"), "{err}");
    assert!(cgroup_dirs(&other).is_empty());
}

#[test]
fn the_container_cannot_reach_the_host() {
    let daemon = HearthdProcess::start();
    let id = ctid(7);
    // A symlink planted at a mount point's target must not send the mount to the host: the
    // link `/mnt/data -> /etc` is followed inside the container's root only.
    create(&daemon, &id, &["--mp0", "local:0,mp=/mnt/data"]);
    let config = json(&daemon, "ctctl", &["config", &id]);
    let volume = |key: &str| config[key].as_str().expect("volume").split(',').next().expect("volid").to_owned();
    let rootfs = ok(&daemon, "storectl", &["path", &volume("rootfs")]);
    let mp0 = ok(&daemon, "storectl", &["path", &volume("mp0")]);
    let mnt = Path::new(rootfs.trim()).join("mnt");
    std::fs::create_dir_all(&mnt).expect("mnt");
    std::os::unix::fs::symlink("/etc", mnt.join("data")).expect("symlink");
    ok(&daemon, "ctctl", &["start", &id]);
    let marker = format!("hearth-marker-{}", std::process::id());
    let (_, out, _) = exec(&daemon, &id, &["sh", "-c", &format!("touch /mnt/data/{marker} && echo done")]);
    assert_eq!(out.trim(), "done");
    assert!(!Path::new("/etc").join(&marker).exists(), "the mount went to the host's /etc");
    assert!(Path::new(mp0.trim()).join(&marker).exists(), "the volume is mounted inside the container");

    // Root inside is an unprivileged host user: what it creates belongs to host uid 100000,
    // and its root is its own (/proc/1/root is the container's init's root, not the host's).
    let (_, map, _) = exec(&daemon, &id, &["cat", "/proc/self/uid_map"]);
    assert_eq!(map.split_whitespace().collect::<Vec<_>>(), ["0", "100000", "65536"]);
    exec(&daemon, &id, &["touch", "/root/made-inside"]);
    use std::os::unix::fs::MetadataExt;
    let made = std::fs::metadata(Path::new(rootfs.trim()).join("root/made-inside")).expect("made inside");
    assert_eq!(made.uid(), 100_000);
    exec(&daemon, &id, &["sh", "-c", "echo owned > /proc/1/root/etc/hearth-victim"]);
    assert!(!Path::new("/etc/hearth-victim").exists());

    // No host descriptor reaches the container: init and an exec'd command hold 0-2 only
    // (plus the directory ls itself opens).
    let (_, out, _) = exec(&daemon, &id, &["ls", "/proc/1/fd"]);
    let fds: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fds, ["0", "1", "2"], "init's descriptors");
    let (_, out, _) = exec(&daemon, &id, &["sh", "-c", "ls /proc/$$/fd; true"]);
    let fds: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fds, ["0", "1", "2"], "an exec'd command holds no other descriptor");
    // The seccomp filter is in place for init and for exec'd commands alike.
    let (_, out, _) = exec(&daemon, &id, &["grep", "^Seccomp:", "/proc/1/status", "/proc/self/status"]);
    assert_eq!(out.matches("Seccomp:\t2").count(), 2, "{out}");

    // The runtime binary cannot be overwritten from inside (CVE-2019-5736 class): no process in
    // the container shows it, and /proc/<pid>/exe of every process is not writable.
    let ctmon = hearth_test::bin("hearth-ctmon");
    let before = std::fs::read(&ctmon).expect("read");
    exec(&daemon, &id, &["sh", "-c", "for p in /proc/[0-9]*; do echo x >> $p/exe; done 2>/dev/null; true"]);
    assert_eq!(std::fs::read(&ctmon).expect("read"), before);

    // Init holds no capability outside the default set.
    let init = status(&daemon, &id)["pid"].as_u64().expect("pid");
    let text = std::fs::read_to_string(format!("/proc/{init}/status")).expect("status");
    let bounding = hearth_ct::caps::status_set(&text, "CapBnd").expect("CapBnd");
    assert!(bounding.is_subset(&hearth_ct::caps::default_set()), "{bounding:?}");
    for dropped in hearth_ct::caps::DROPPED {
        assert!(!bounding.contains(&dropped), "{dropped:?}");
    }
    assert_eq!(bounding, hearth_ct::caps::default_set(), "init keeps the rest of the default set");
    let (_, out, _) = exec(&daemon, &id, &["cat", "/proc/self/status"]);
    let exec_bounding = hearth_ct::caps::status_set(&out, "CapBnd").expect("CapBnd");
    assert_eq!(exec_bounding, bounding, "an exec'd command has init's bounding set");
    // The limits live on the level above what the container owns: it cannot raise them.
    let (code, _, _) = exec(&daemon, &id, &["sh", "-c", "echo -1 > /sys/fs/cgroup/memory/memory.limit_in_bytes"]);
    assert_ne!(code, 0, "the container's own limit file belongs to host root");
    ok(&daemon, "ctctl", &["stop", &id]);
}

#[test]
fn exec_never_hands_the_callers_terminal_to_the_container() {
    let daemon = HearthdProcess::start();
    let id = ctid(8);
    create(&daemon, &id, &[]);
    ok(&daemon, "ctctl", &["start", &id]);
    // Run ctctl exec on a terminal of the test's own: the command must see another one.
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let ours = nix::sys::stat::fstat(&pty.slave).expect("fstat").st_rdev;
    let slave = std::fs::File::from(pty.slave);
    let child = std::process::Command::new(hearth_test::bin("ctctl"))
        .args(["exec", &id, "--", "stat", "-L", "-c", "RDEV=%t:%T", "/proc/self/fd/0"])
        .env("HEARTH_ROOT", daemon.root())
        .stdin(slave.try_clone().expect("dup"))
        .stdout(slave.try_clone().expect("dup"))
        .stderr(slave)
        .spawn()
        .expect("ctctl");
    let mut master = std::fs::File::from(pty.master);
    let mut seen = Vec::new();
    let mut child = child;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline && !String::from_utf8_lossy(&seen).contains("RDEV=") {
        let mut fds = [nix::poll::PollFd::new(std::os::fd::AsFd::as_fd(&master), nix::poll::PollFlags::POLLIN)];
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(200u16)).unwrap_or(0) > 0 {
            match master.read(&mut buf) {
                Ok(n) if n > 0 => seen.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
    }
    let _ = child.wait();
    let text = String::from_utf8_lossy(&seen).into_owned();
    let line = text.lines().find_map(|l| l.trim().strip_prefix("RDEV=")).unwrap_or_else(|| panic!("no answer: {text}"));
    let (major, minor) = line.split_once(':').expect("major:minor");
    let theirs = nix::sys::stat::makedev(
        u64::from_str_radix(major, 16).expect("hex"),
        u64::from_str_radix(minor.trim(), 16).expect("hex"),
    );
    assert_ne!(theirs, ours, "the command got the caller's own terminal");
    ok(&daemon, "ctctl", &["stop", &id]);
}

/// The slow tests: a Debian 12 system container boots systemd to "running" (unprivileged
/// guests may report "degraded" for units a user namespace cannot have, privileged ones for
/// the mounts their seccomp filter refuses), is entered, and shuts down cleanly through
/// SIGRTMIN+3. They need the Debian template (`cargo xtask fixtures --debian`, which
/// `cargo xtask test` runs).
#[test]
fn a_debian_container_boots_systemd_and_shuts_down_cleanly() {
    boot_debian(&ctid(9), &[], None);
}

/// A privileged container's seccomp filter refuses every new mount: only the units that mount
/// hugetlbfs and fusectl (host-wide resources) may fail, the rest falls back as in any
/// container (credentials in plain directories, services without mount namespaces).
#[test]
fn a_privileged_debian_container_boots_systemd_and_shuts_down_cleanly() {
    let may_fail = ["dev-hugepages.mount", "sys-fs-fuse-connections.mount"];
    boot_debian(&ctid(20), &["--unprivileged", "0"], Some(&may_fail));
}

/// `may_fail`: the only units that may fail, when given.
fn boot_debian(id: &str, extra: &[&str], may_fail: Option<&[&str]>) {
    let file = hearth_test::fixtures::debian_template()
        .expect("the Debian template: build it with `cargo xtask fixtures --debian` (cargo xtask test does)");
    let daemon = HearthdProcess::start();
    ok(&daemon, "storectl", &["upload", "local", file.to_str().expect("utf-8"), "--content", "vztmpl"]);
    let name = file.file_name().expect("name").to_string_lossy().into_owned();
    let template = format!("local:vztmpl/{name}");
    let mut args = vec!["create", id, &template, "--rootfs", "local:0", "--hostname", "deb", "--memory", "512"];
    args.extend(extra);
    ok(&daemon, "ctctl", &args);
    assert_eq!(json(&daemon, "ctctl", &["config", id])["ostype"], "debian");
    ok(&daemon, "ctctl", &["start", id]);
    let init = status(&daemon, id)["pid"].as_u64().expect("pid");
    let exe = std::fs::read_link(format!("/proc/{init}/exe")).expect("exe");
    assert!(exe.ends_with("lib/systemd/systemd"), "init is {exe:?}");
    let mut state = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let (_, out, _) = exec(&daemon, id, &["systemctl", "is-system-running"]);
        state = out.trim().to_owned();
        if state == "running" || state == "degraded" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, failed, _) = exec(&daemon, id, &["systemctl", "--failed", "--no-legend", "--plain"]);
    assert!(state == "running" || state == "degraded", "systemd state '{state}'; failed units: {failed}");
    eprintln!("systemd: {state}; failed units: {}", failed.trim());
    if let Some(may_fail) = may_fail {
        for unit in failed.lines().filter_map(|l| l.split_whitespace().next()) {
            assert!(may_fail.contains(&unit), "{unit} failed: {failed}");
        }
    }
    // enter: root's login shell reading from a pipe.
    let mut child = std::process::Command::new(hearth_test::bin("ctctl"))
        .args(["enter", id])
        .env("HEARTH_ROOT", daemon.root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("ctctl enter");
    child.stdin.take().expect("stdin").write_all(b"echo \"in $(hostname) as $(id -un)\"\nexit\n").expect("typing");
    let out = child.wait_with_output().expect("enter");
    assert!(String::from_utf8_lossy(&out.stdout).contains("in deb as root"), "{out:?}");
    // A clean shutdown: systemd blocks SIGRTMIN+3 and powers off on it.
    ok(&daemon, "ctctl", &["shutdown", id, "--timeout", "30"]);
    let st = status(&daemon, id);
    assert_eq!(st["status"], "stopped");
    assert_eq!(st["last_exit"], "halt", "{st}");
    wait_until("the cgroups to go", || cgroup_dirs(id).is_empty());
}

#[test]
fn reboot_restart_clone_resize_mount_and_df() {
    let mut daemon = HearthdProcess::start();
    let id = ctid(10);
    // A raw ext4 image this time, as Proxmox allocates on directory storages.
    let template = template(&daemon);
    ok(&daemon, "ctctl", &["create", &id, &template, "--rootfs", "local:1", "--hostname", "img", "--memory", "64"]);
    ok(&daemon, "ctctl", &["start", &id]);
    let df = json(&daemon, "ctctl", &["df", &id]);
    let root = &df.as_array().expect("list")[0];
    assert_eq!(root["key"], "rootfs");
    assert!(root["total"].as_u64().expect("total") > 900 << 20, "{df}");

    // A reboot inside the container restarts it under the same monitor.
    let before = status(&daemon, &id);
    exec(&daemon, &id, &["reboot"]);
    wait_until("the reboot", || {
        let now = status(&daemon, &id);
        now["status"] == "running" && now["pid"] != before["pid"]
    });
    assert_eq!(status(&daemon, &id)["monitor_pid"], before["monitor_pid"]);

    // hearthd restarts without touching the container and finds it again.
    daemon.signal(nix::sys::signal::Signal::SIGKILL);
    daemon.restart();
    let after = status(&daemon, &id);
    assert_eq!(after["status"], "running");
    let (_, out, _) = exec(&daemon, &id, &["hostname"]);
    assert_eq!(out.trim(), "img");
    let (code, _, err) = run(&daemon, "ctctl", &["resize", &id, "rootfs", "+1G"]);
    assert_eq!(code, 1, "a running container's image does not grow: {err}");
    ok(&daemon, "ctctl", &["stop", &id]);

    // Offline: the image and its file system grow.
    ok(&daemon, "ctctl", &["resize", &id, "rootfs", "+1G"]);
    // pct mount: the rootfs on the host, locked while mounted.
    let out = ok(&daemon, "ctctl", &["mount", &id]);
    let path = out.split('\'').nth(1).unwrap_or(out.trim());
    assert!(Path::new(path).join("bin/busybox").exists(), "{path}");
    let (code, _, err) = run(&daemon, "ctctl", &["start", &id]);
    assert_eq!(code, 1, "a mounted container does not start: {err}");
    ok(&daemon, "ctctl", &["unmount", &id]);
    ok(&daemon, "ctctl", &["start", &id]);
    let df = json(&daemon, "ctctl", &["df", &id]);
    assert!(df[0]["total"].as_u64().expect("total") > 1900 << 20, "{df}");
    ok(&daemon, "ctctl", &["stop", &id]);

    // A full clone starts on its own.
    let copy = ctid(11);
    ok(&daemon, "ctctl", &["clone", &id, &copy, "--hostname", "copy", "--full"]);
    ok(&daemon, "ctctl", &["start", &copy]);
    let (_, out, _) = exec(&daemon, &copy, &["cat", "/etc/hostname"]);
    assert!(!out.trim().is_empty());
    ok(&daemon, "ctctl", &["stop", &copy]);
    ok(&daemon, "ctctl", &["destroy", &copy]);
    ok(&daemon, "ctctl", &["destroy", &id]);
}

#[test]
fn snapshots_on_btrfs_and_templates() {
    let fs = hearth_test::BtrfsLoop::new(2 << 30).expect("a btrfs loop mount (install btrfs-progs)");
    let daemon = HearthdProcess::start();
    let path = fs.path().to_str().expect("UTF-8 path");
    ok(&daemon, "storectl", &["add", "btrfs", "fast", "--path", path, "--content", "rootdir"]);
    let id = ctid(12);
    let template = template(&daemon);
    ok(&daemon, "ctctl", &["create", &id, &template, "--rootfs", "fast:1", "--hostname", "snap", "--memory", "64"]);
    ok(&daemon, "ctctl", &["start", &id]);
    exec(&daemon, &id, &["sh", "-c", "echo before > /root/state"]);
    ok(&daemon, "ctctl", &["snapshot", &id, "first"]);
    exec(&daemon, &id, &["sh", "-c", "echo after > /root/state"]);
    let listed = ok(&daemon, "ctctl", &["listsnapshot", &id]);
    assert!(listed.contains("first"), "{listed}");
    ok(&daemon, "ctctl", &["stop", &id]);
    ok(&daemon, "ctctl", &["rollback", &id, "first"]);
    ok(&daemon, "ctctl", &["start", &id]);
    let (_, out, _) = exec(&daemon, &id, &["cat", "/root/state"]);
    assert_eq!(out.trim(), "before");
    ok(&daemon, "ctctl", &["stop", &id]);
    ok(&daemon, "ctctl", &["delsnapshot", &id, "first"]);
    ok(&daemon, "ctctl", &["destroy", &id]);

    // A template (raw image on dir: its volume becomes a read-only base) does not start; a
    // full clone of it does.
    let base = ctid(13);
    ok(&daemon, "ctctl", &["create", &base, &template, "--rootfs", "local:1", "--hostname", "base", "--memory", "64"]);
    ok(&daemon, "ctctl", &["template", &base]);
    let (code, _, err) = run(&daemon, "ctctl", &["start", &base]);
    assert_eq!(code, 1, "a template does not start: {err}");
    assert!(err.contains("template"), "{err}");
    let clone = ctid(14);
    ok(&daemon, "ctctl", &["clone", &base, &clone, "--hostname", "copy", "--full"]);
    ok(&daemon, "ctctl", &["start", &clone]);
    let (_, out, _) = exec(&daemon, &clone, &["hostname"]);
    assert_eq!(out.trim(), "copy");
    ok(&daemon, "ctctl", &["stop", &clone]);
    ok(&daemon, "ctctl", &["destroy", &clone]);
    ok(&daemon, "ctctl", &["destroy", &base]);
}

#[test]
fn only_root_makes_privileged_containers() {
    let mut daemon = HearthdProcess::start();
    let user = crate::UnixUser::new("cp");
    let userid = user.userid();
    std::fs::write(
        daemon.root().join("etc/hearth/access.toml"),
        format!("[users.\"{userid}\"]\n\n[[acl]]\npath = \"/\"\nuser = \"{userid}\"\nrole = \"Administrator\"\n"),
    )
    .expect("access.toml");
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    daemon.restart();
    let template = template(&daemon);
    let id = ctid(15);
    let out = user.run(&daemon, "ctctl", &["create", &id, &template, "--rootfs", "local:0", "--unprivileged", "0"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unprivileged") && err.contains("root@pam"), "{err}");
    // Uploaded files are not container volumes, whoever asks.
    let out =
        user.run(&daemon, "ctctl", &["create", &id, &template, "--rootfs", "local:vztmpl/busybox-template.tar.zst"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let (code, _, _) = run(&daemon, "ctctl", &["config", &id]);
    assert_eq!(code, 1, "nothing was created");
}

#[test]
fn onboot_containers_start_and_stop_with_the_node() {
    let daemon = HearthdProcess::start();
    let (a, b) = (ctid(16), ctid(17));
    create(&daemon, &a, &["--onboot", "1", "--startup", "order=1"]);
    create(&daemon, &b, &[]);
    ok(&daemon, "clusterctl", &["node", "startall"]);
    assert_eq!(status(&daemon, &a)["status"], "running");
    assert_eq!(status(&daemon, &b)["status"], "stopped", "not onboot");
    ok(&daemon, "clusterctl", &["node", "stopall", "--timeout", "20"]);
    let st = status(&daemon, &a);
    assert_eq!(st["status"], "stopped");
    assert_eq!(st["last_exit"], "halt", "shut down cleanly: {st}");
}
