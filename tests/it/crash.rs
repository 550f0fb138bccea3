//! hearthd killed with SIGKILL in the middle of a stream of writes leaves every configuration
//! file whole, and starts again on the same root.

use std::sync::atomic::{AtomicUsize, Ordering};

use hearth_core::{GuestConfig, GuestKind};
use hearth_proto::{Payload, Request, SetGuest, VmRequest};
use hearth_test::HearthdProcess;
use nix::sys::signal::Signal;

use crate::{create_vm, opts, vmid};

#[test]
fn kill_9_during_200_writes_leaves_every_file_parseable() {
    let mut daemon = HearthdProcess::start();
    for id in 100..104 {
        create_vm(&mut daemon.client(), id, &[("name", "w")]);
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(daemon.pid().expect("running")).expect("pid fits"));
    let done = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for writer in 0..4u32 {
            let daemon = &daemon;
            let done = &done;
            s.spawn(move || {
                let Ok(mut client) = std::panic::catch_unwind(|| daemon.client()) else { return };
                for n in 0..50 {
                    // A long description makes each write more than a page, so a torn write
                    // would show.
                    let description = format!("writer {writer} write {n} {}", "x".repeat(6000));
                    let set = Request::Vm(VmRequest::Set(SetGuest {
                        vmid: vmid(100 + writer),
                        options: opts(&[("description", &description), ("memory", &(512 + n).to_string())]),
                        delete: vec![],
                        revert: vec![],
                        digest: None,
                    }));
                    if client.call(&set).is_err() {
                        return;
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // Kill once a quarter of the 200 writes went through, while the rest are in flight.
        while done.load(Ordering::Relaxed) < 50 {
            std::thread::yield_now();
        }
        nix::sys::signal::kill(pid, Signal::SIGKILL).expect("kill -9 hearthd");
    });
    assert!(!daemon.wait().success());
    let written = done.load(Ordering::Relaxed);
    assert!((50..200).contains(&written), "the kill landed mid-stream ({written} writes done)");

    let dir = daemon.root().join("etc/hearth/nodes/test/qemu");
    for id in 100..104 {
        let path = dir.join(format!("{id}.toml"));
        let text = std::fs::read_to_string(&path).expect("every file is still there");
        let config = GuestConfig::parse(GuestKind::Vm, &text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(config.current.get("name").and_then(|v| v.as_str()), Some("w"));
        // Description and memory come from the same write, or both from none.
        let description = config.current.get("description").and_then(|v| v.as_str()).unwrap_or("");
        let memory = config.current.get("memory").and_then(|v| v.as_int());
        match description.split_whitespace().nth(3).and_then(|n| n.parse::<i64>().ok()) {
            Some(n) => assert_eq!(memory, Some(512 + n), "{}", path.display()),
            None => assert_eq!((description, memory), ("", None), "{}", path.display()),
        }
    }

    daemon.restart();
    let mut client = daemon.client();
    let Payload::Guests(list) = client.call(&Request::Vm(VmRequest::List)).expect("list") else { panic!() };
    assert_eq!(list.len(), 4);
    assert!(list.iter().all(|g| g.error.is_none()), "{list:?}");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "temporary files are cleaned at start: {leftovers:?}");
}
