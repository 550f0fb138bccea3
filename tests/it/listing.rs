//! Listings come from hearthd's memory (parsed configurations and run state), so these tests
//! check that what it remembers follows every change at once: configuration files edited,
//! created and removed behind its back, and guests killed from outside.

use std::os::fd::AsFd;
use std::path::PathBuf;

use hearth_test::HearthdProcess;

use crate::ct::{create, ctid, exec, wait_until};
use crate::{json, ok, run};

fn vm_file(daemon: &HearthdProcess, id: &str) -> PathBuf {
    daemon.root().join(format!("etc/hearth/nodes/{}/qemu/{id}.toml", daemon.node))
}

/// `vmctl list --output-format json` as (vmid, name, status) rows.
fn vm_rows(daemon: &HearthdProcess) -> Vec<(u64, String, String)> {
    let listed = json(daemon, "vmctl", &["list"]);
    listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|g| {
            (
                g["vmid"].as_u64().expect("vmid"),
                g["name"].as_str().unwrap_or_default().to_owned(),
                g["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Kills a process and returns once it has exited (observed through a pidfd), without asking
/// hearthd anything: the next request is the first hearthd hears of it.
fn kill_and_wait(pid: u64) {
    let pid = i32::try_from(pid).expect("a pid");
    let pidfd = hearth_sys::process::pidfd_open(pid).expect("pidfd_open");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).expect("kill");
    let mut fds = [nix::poll::PollFd::new(pidfd.as_fd(), nix::poll::PollFlags::POLLIN)];
    let ready = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10_000u16)).expect("poll");
    assert_eq!(ready, 1, "process {pid} did not exit within 10 s of SIGKILL");
}

#[test]
fn configurations_changed_behind_hearthds_back_are_listed_at_once() {
    let daemon = HearthdProcess::start();
    ok(&daemon, "vmctl", &["create", "480", "--name", "first", "--memory", "64"]);
    ok(&daemon, "vmctl", &["create", "481", "--name", "second", "--memory", "64"]);
    assert_eq!(vm_rows(&daemon), [(480, "first".into(), "stopped".into()), (481, "second".into(), "stopped".into())]);

    // Edited in place (same inode), with a name of the same length: only the watch can tell.
    let path = vm_file(&daemon, "480");
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.contains("\"first\""), "{text}");
    std::fs::write(&path, text.replace("\"first\"", "\"fixed\"")).expect("write in place");
    assert_eq!(vm_rows(&daemon)[0].1, "fixed");
    assert!(ok(&daemon, "vmctl", &["config", "480"]).contains("name: fixed"));

    // Replaced through a rename, as editors and configuration tools do.
    let temp = path.with_extension("new");
    std::fs::write(&temp, text.replace("\"first\"", "\"renamed\"")).expect("write");
    std::fs::rename(&temp, &path).expect("rename");
    assert_eq!(vm_rows(&daemon)[0].1, "renamed");
    assert!(ok(&daemon, "vmctl", &["config", "480"]).contains("name: renamed"));
    // A change through hearthd is based on what is on disk now, not on what it remembered.
    ok(&daemon, "vmctl", &["set", "480", "--memory", "96"]);
    let config = ok(&daemon, "vmctl", &["config", "480"]);
    assert!(config.contains("name: renamed") && config.contains("memory: 96"), "{config}");

    // Copied in, and removed, behind its back.
    std::fs::copy(vm_file(&daemon, "481"), vm_file(&daemon, "482")).expect("copy");
    std::fs::remove_file(vm_file(&daemon, "481")).expect("remove");
    let ids: Vec<u64> = vm_rows(&daemon).into_iter().map(|r| r.0).collect();
    assert_eq!(ids, [480, 482]);
    let (code, _, err) = run(&daemon, "vmctl", &["config", "481"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("481"), "{err}");
    assert!(ok(&daemon, "vmctl", &["config", "482"]).contains("name: second"));

    // Broken behind its back: listed with the error, refused by config; fixed: listed again.
    std::fs::write(vm_file(&daemon, "482"), "memory = [").expect("write");
    let listed = json(&daemon, "vmctl", &["list"]);
    let broken = &listed.as_array().expect("a list")[1];
    assert_eq!(broken["vmid"], 482);
    assert!(broken["error"].as_str().is_some_and(|e| e.contains("482.toml")), "{broken}");
    let (code, _, err) = run(&daemon, "vmctl", &["config", "482"]);
    assert_eq!(code, 1, "{err}");
    std::fs::write(vm_file(&daemon, "482"), "memory = 128\nname = \"back\"\n").expect("write");
    assert_eq!(vm_rows(&daemon)[1], (482, "back".into(), "stopped".into()));

    // The whole directory replaced (restored from elsewhere): the table follows.
    let dir = path.parent().expect("a directory").to_owned();
    let moved = dir.with_file_name("qemu.old");
    std::fs::rename(&dir, &moved).expect("move the directory away");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::copy(moved.join("482.toml"), dir.join("483.toml")).expect("copy");
    let ids: Vec<u64> = vm_rows(&daemon).into_iter().map(|r| r.0).collect();
    assert_eq!(ids, [483]);
    std::fs::write(dir.join("484.toml"), "memory = 64\nname = \"later\"\n").expect("write");
    assert_eq!(vm_rows(&daemon)[1], (484, "later".into(), "stopped".into()));
    std::fs::remove_dir_all(&moved).expect("clean up");
}

#[test]
fn a_vm_killed_from_outside_is_listed_stopped_at_once() {
    let daemon = HearthdProcess::start();
    ok(&daemon, "vmctl", &["create", "485", "--memory", "64", "--kvm", "0", "--name", "victim"]);
    ok(&daemon, "vmctl", &["start", "485"]);
    // Listed running right after the start returned.
    assert_eq!(vm_rows(&daemon), [(485, "victim".into(), "running".into())]);
    let pid = json(&daemon, "vmctl", &["list"])[0]["pid"].as_u64().expect("a running VM has a pid");
    kill_and_wait(pid);
    assert_eq!(vm_rows(&daemon), [(485, "victim".into(), "stopped".into())]);
    // It starts again and is listed running with its new process.
    ok(&daemon, "vmctl", &["start", "485"]);
    let listed = json(&daemon, "vmctl", &["list"]);
    assert_eq!(listed[0]["status"], "running");
    assert_ne!(listed[0]["pid"].as_u64(), Some(pid));
    ok(&daemon, "vmctl", &["stop", "485"]);
    assert_eq!(vm_rows(&daemon)[0].2, "stopped");
}

#[test]
fn a_container_killed_from_outside_is_listed_stopped_at_once() {
    let daemon = HearthdProcess::start();
    let (a, b) = (ctid(7), ctid(8));
    create(&daemon, &a, &[]);
    create(&daemon, &b, &[]);
    ok(&daemon, "ctctl", &["start", &a]);
    ok(&daemon, "ctctl", &["start", &b]);
    let status_of = |id: &str| {
        let listed = json(&daemon, "ctctl", &["list"]);
        let row = listed.as_array().expect("a list").iter().find(|g| g["vmid"].as_u64() == id.parse().ok()).cloned();
        row.map(|g| g["status"].as_str().unwrap_or_default().to_owned()).expect("listed")
    };
    assert_eq!(status_of(&a), "running");
    assert_eq!(status_of(&b), "running");
    // Its init killed: stopped at the next listing.
    let init = json(&daemon, "ctctl", &["status", &a])["pid"].as_u64().expect("pid");
    kill_and_wait(init);
    assert_eq!(status_of(&a), "stopped");
    assert_eq!(status_of(&b), "running");
    // Its monitor killed: stopped too (the init dies with it).
    let monitor = json(&daemon, "ctctl", &["status", &b, "--verbose"])["monitor_pid"].as_u64().expect("pid");
    kill_and_wait(monitor);
    assert_eq!(status_of(&b), "stopped");
    // Started again: running. A reboot inside it replaces its init under the same monitor:
    // listed running with the new init once status sees it.
    ok(&daemon, "ctctl", &["start", &a]);
    assert_eq!(status_of(&a), "running");
    let before = json(&daemon, "ctctl", &["status", &a])["pid"].clone();
    exec(&daemon, &a, &["reboot"]);
    wait_until("the reboot", || {
        let now = json(&daemon, "ctctl", &["status", &a]);
        now["status"] == "running" && now["pid"] != before
    });
    let init = json(&daemon, "ctctl", &["status", &a])["pid"].clone();
    let listed = json(&daemon, "ctctl", &["list"]);
    let row = listed
        .as_array()
        .expect("a list")
        .iter()
        .find(|g| g["vmid"].as_u64() == a.parse().ok())
        .cloned()
        .expect("listed");
    assert_eq!((row["status"].as_str(), &row["pid"]), (Some("running"), &init), "{row}");
    // Stopped by ctctl: stopped.
    ok(&daemon, "ctctl", &["stop", &a]);
    assert_eq!(status_of(&a), "stopped");
}
