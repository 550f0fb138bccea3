//! Concurrent callers: conflicting edits are refused rather than lost, reserved ids are unique,
//! and one VMID can be created once.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};

use hearth_proto::{CreateGuest, CtRequest, ErrorKind, GetConfig, Payload, Request, SetGuest, VmRequest};
use hearth_test::HearthdProcess;

use crate::{create_vm, opts, vmid};

#[test]
fn twenty_concurrent_sets_apply_or_conflict_and_none_is_lost() {
    let daemon = HearthdProcess::start();
    create_vm(&mut daemon.client(), 100, &[("name", "busy")]);
    let barrier = Arc::new(Barrier::new(20));
    let results: Vec<(usize, Result<Payload, hearth_client::ClientError>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let barrier = Arc::clone(&barrier);
                let daemon = &daemon;
                s.spawn(move || {
                    let mut client = daemon.client();
                    let get =
                        Request::Vm(VmRequest::Config(GetConfig { vmid: vmid(100), current: false, snapshot: None }));
                    let Payload::Config(view) = client.call(&get).expect("config") else { panic!() };
                    barrier.wait();
                    let set = Request::Vm(VmRequest::Set(SetGuest {
                        vmid: vmid(100),
                        options: opts(&[(&format!("net{i}"), "virtio,bridge=vmbr0")]),
                        delete: vec![],
                        revert: vec![],
                        digest: Some(view.digest),
                    }));
                    (i, client.call(&set))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    let applied: BTreeSet<String> = results.iter().filter(|(_, r)| r.is_ok()).map(|(i, _)| format!("net{i}")).collect();
    for (i, result) in &results {
        if let Err(e) = result {
            assert_eq!(e.kind(), Some(ErrorKind::Conflict), "set {i}: {e}");
        }
    }
    // Every caller read the same digest, so exactly one edit can be based on it.
    assert_eq!(applied.len(), 1, "{results:?}");
    let Payload::Config(view) = daemon
        .client()
        .call(&Request::Vm(VmRequest::Config(GetConfig { vmid: vmid(100), current: false, snapshot: None })))
        .expect("config")
    else {
        panic!()
    };
    let present: BTreeSet<String> = view.config.keys().filter(|k| k.starts_with("net")).cloned().collect();
    assert_eq!(present, applied, "every applied set is in the file, and nothing else");
}

#[test]
fn fifty_concurrent_nextids_are_distinct_and_free() {
    let daemon = HearthdProcess::start();
    create_vm(&mut daemon.client(), 100, &[]);
    create_vm(&mut daemon.client(), 102, &[]);
    let barrier = Arc::new(Barrier::new(50));
    let ids: Vec<u32> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|_| {
                let barrier = Arc::clone(&barrier);
                let daemon = &daemon;
                s.spawn(move || {
                    let mut client = daemon.client();
                    barrier.wait();
                    match client.call(&Request::Vm(VmRequest::NextId)).expect("nextid") {
                        Payload::NextId(id) => id.get(),
                        other => panic!("unexpected {other:?}"),
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    let distinct: BTreeSet<u32> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), 50, "{ids:?}");
    assert!(!distinct.contains(&100) && !distinct.contains(&102));
    assert_eq!(distinct.iter().next(), Some(&101), "the lowest free id is handed out first");
    // A reserved id can still be created by whoever holds it.
    create_vm(&mut daemon.client(), 101, &[]);
}

#[test]
fn one_id_is_created_once_across_vms_and_containers() {
    let daemon = HearthdProcess::start();
    let barrier = Arc::new(Barrier::new(8));
    let results: Vec<Result<Payload, hearth_client::ClientError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let barrier = Arc::clone(&barrier);
                let daemon = &daemon;
                s.spawn(move || {
                    let mut client = daemon.client();
                    let create = CreateGuest { vmid: vmid(300), options: vec![], ct: None };
                    let request = if i % 2 == 0 {
                        Request::Vm(VmRequest::Create(create))
                    } else {
                        Request::Ct(CtRequest::Create(create))
                    };
                    barrier.wait();
                    client.call(&request)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results.iter().filter_map(|r| r.as_ref().err()).all(|e| e.kind() == Some(ErrorKind::Conflict)));
    let vm = daemon.root().join("etc/hearth/nodes/test/qemu/300.toml").exists();
    let ct = daemon.root().join("etc/hearth/nodes/test/lxc/300.toml").exists();
    assert!(vm ^ ct, "exactly one file: vm={vm} ct={ct}");
}
