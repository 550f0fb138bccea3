//! Configuration round trips for VMs and containers through a real hearthd: create, set, config,
//! pending, list, destroy, unlock, and the refusals that must leave files untouched.

use hearth_client::Client;
use hearth_proto::{
    CtRequest, DestroyGuest, ErrorKind, GetConfig, GuestConfigView, Payload, PendingItem, Request, SetGuest, TaskState,
    VmRequest,
};
use hearth_test::HearthdProcess;
use serde_json::json;

use crate::{create_ct, create_vm, opts, vmid};

fn config(client: &mut Client, id: u32, current: bool) -> GuestConfigView {
    let req = Request::Vm(VmRequest::Config(GetConfig { vmid: vmid(id), current, snapshot: None }));
    match client.call(&req).expect("config") {
        Payload::Config(view) => view,
        other => panic!("unexpected {other:?}"),
    }
}

fn set(id: u32, options: &[(&str, &str)], delete: &[&str], digest: Option<String>) -> Request {
    Request::Vm(VmRequest::Set(SetGuest {
        vmid: vmid(id),
        options: opts(options),
        delete: delete.iter().map(|s| (*s).to_owned()).collect(),
        revert: vec![],
        digest,
    }))
}

fn file(daemon: &HearthdProcess, dir: &str, id: u32) -> std::path::PathBuf {
    daemon.root().join(format!("etc/hearth/nodes/test/{dir}/{id}.toml"))
}

#[test]
fn vm_create_set_config_destroy() {
    let daemon = HearthdProcess::start();
    let mut client = daemon.client();
    create_vm(
        &mut client,
        100,
        &[
            ("name", "web01"),
            ("memory", "2048"),
            ("net0", "virtio,bridge=vmbr0,firewall=1,tag=20"),
            ("onboot", "yes"),
            ("tags", "web prod"),
        ],
    );

    let view = config(&mut client, 100, false);
    assert_eq!(view.config["name"], json!("web01"));
    assert_eq!(view.config["memory"], json!(2048));
    assert_eq!(view.config["onboot"], json!(1));
    assert_eq!(view.config["tags"], json!("prod;web"));
    assert!(!view.config.contains_key("lock"), "the create lock is released when the task ends");
    let net0 = view.config["net0"].as_str().expect("net0 is a string");
    assert!(net0.starts_with("virtio=BC:24:11:") && net0.ends_with(",bridge=vmbr0,firewall=1,tag=20"), "{net0}");

    // set with the current digest applies; the file's digest changes.
    let Payload::Digest(new_digest) =
        client.call(&set(100, &[("cores", "4")], &["tags"], Some(view.digest.clone()))).expect("set")
    else {
        panic!("set answers with the new digest")
    };
    let after = config(&mut client, 100, false);
    assert_eq!(after.digest, new_digest);
    assert_eq!(after.config["cores"], json!(4));
    assert!(!after.config.contains_key("tags"));
    assert_eq!(after.config["net0"], json!(net0), "an existing MAC is kept");

    // A stale digest is a conflict and changes nothing.
    let before = std::fs::read(file(&daemon, "qemu", 100)).expect("config file");
    let err = client.call(&set(100, &[("cores", "8")], &[], Some(view.digest))).expect_err("stale digest");
    assert_eq!(err.kind(), Some(ErrorKind::Conflict), "{err}");
    assert_eq!(std::fs::read(file(&daemon, "qemu", 100)).expect("config file"), before);

    // Bad input names the key and changes nothing.
    for (options, needle) in [
        (&[("memroy", "512")][..], "memroy: unknown VM configuration key; did you mean 'memory'?"),
        (&[("memory", "8")][..], "memory: value 8 is below the minimum 16"),
        (&[("net1", "virtio,tag=5000")][..], "net1: tag: value 5000 is above the maximum 4094"),
        (&[("scsi0", "local:../../etc/passwd")][..], "scsi0: file: invalid volume name '../../etc/passwd'"),
        (&[("scsi0", "nostore:32")][..], "scsi0: storage 'nostore' does not exist"),
        (
            &[("scsi0", "local:100/vm-100-disk-7.qcow2")][..],
            "scsi0: volume 'local:100/vm-100-disk-7.qcow2' does not exist",
        ),
        (&[("scsi0", "local:101/vm-101-disk-0.qcow2")][..], "belongs to guest 101, not 100"),
        (&[("memory", "512"), ("balloon", "1024")][..], "balloon: 1024 MiB is more than the VM's memory (512 MiB)"),
    ] {
        let err = client.call(&set(100, options, &[], None)).expect_err("bad input is refused");
        assert!(err.to_string().contains(needle), "{err} does not contain {needle}");
        assert_eq!(
            std::fs::read(file(&daemon, "qemu", 100)).expect("config file"),
            before,
            "{options:?} changed the file"
        );
    }
    let err = client.call(&set(100, &[], &[], None)).expect_err("empty set");
    assert_eq!(err.kind(), Some(ErrorKind::Invalid));

    // List shows the VM with its memory.
    let Payload::Guests(guests) = client.call(&Request::Vm(VmRequest::List)).expect("list") else { panic!() };
    assert_eq!(guests.len(), 1);
    assert_eq!(
        (guests[0].vmid.get(), guests[0].name.as_str(), guests[0].maxmem_mib, guests[0].status.as_str()),
        (100, "web01", 2048, "stopped")
    );

    // Protection blocks destroy; clearing it allows it.
    client.call(&set(100, &[("protection", "1")], &[], None)).expect("set protection");
    let destroy = Request::Vm(VmRequest::Destroy(DestroyGuest {
        vmid: vmid(100),
        purge: true,
        destroy_unreferenced_disks: None,
        skiplock: false,
    }));
    let err = client.call(&destroy).expect_err("protected");
    assert_eq!(err.kind(), Some(ErrorKind::Conflict), "{err}");
    assert!(file(&daemon, "qemu", 100).exists());
    client.call(&set(100, &[("protection", "0")], &[], None)).expect("clear protection");
    let Payload::Task(upid) = client.call(&destroy).expect("destroy") else { panic!() };
    assert_eq!(client.follow(&upid, |_| {}).expect("follow").state, TaskState::Ok);
    assert!(!file(&daemon, "qemu", 100).exists());
    let err = client.call(&Request::Vm(VmRequest::Pending { vmid: vmid(100) })).expect_err("gone");
    assert_eq!(err.kind(), Some(ErrorKind::NotFound));
}

#[test]
fn container_round_trip_and_shared_ids() {
    let daemon = HearthdProcess::start();
    let mut client = daemon.client();
    create_ct(
        &mut client,
        200,
        &[
            ("hostname", "proxy"),
            ("memory", "512"),
            ("net0", "name=eth0,bridge=vmbr0,ip=10.0.0.5/24,gw=10.0.0.1"),
            ("mp0", "local:1,mp=/data"),
        ],
    );
    let req = Request::Ct(CtRequest::Config(GetConfig { vmid: vmid(200), current: false, snapshot: None }));
    let Payload::Config(view) = client.call(&req).expect("config") else { panic!() };
    assert_eq!(view.config["hostname"], json!("proxy"));
    assert_eq!(view.config["unprivileged"], json!(1), "containers are unprivileged unless asked");
    let net0 = view.config["net0"].as_str().expect("net0");
    assert!(net0.contains(",hwaddr=BC:24:11:") && net0.contains("ip=10.0.0.5/24,gw=10.0.0.1"), "{net0}");

    // The id is taken for VMs too, and VM requests for it say what it is.
    let err = client
        .call(&Request::Vm(VmRequest::Create(hearth_proto::CreateGuest { vmid: vmid(200), options: vec![], ct: None })))
        .expect_err("id in use");
    assert_eq!(err.kind(), Some(ErrorKind::Conflict));
    assert!(err.to_string().contains("CT 200 already exists"), "{err}");
    let err = client.call(&Request::Vm(VmRequest::Pending { vmid: vmid(200) })).expect_err("not a VM");
    assert!(err.to_string().contains("(200 is a CT)"), "{err}");
    assert!(!file(&daemon, "qemu", 200).exists());

    // pct-style errors.
    let bad = Request::Ct(CtRequest::Set(SetGuest {
        vmid: vmid(200),
        options: opts(&[("mp1", "local:0,mp=/data")]),
        delete: vec![],
        revert: vec![],
        digest: None,
    }));
    let err = client.call(&bad).expect_err("duplicate mount path");
    assert!(err.to_string().contains("mp1: mount path /data is already used by mp0"), "{err}");
    let bad = Request::Ct(CtRequest::Create(hearth_proto::CreateGuest {
        vmid: vmid(201),
        options: opts(&[("rootfs", "nostore:8")]),
        ct: None,
    }));
    let err = client.call(&bad).expect_err("no storage to allocate from");
    assert_eq!(err.kind(), Some(ErrorKind::NotFound), "{err}");
    assert!(!file(&daemon, "lxc", 201).exists(), "a refused create leaves no file");

    let before = std::fs::read(file(&daemon, "lxc", 200)).expect("file");
    let flip = Request::Ct(CtRequest::Set(SetGuest {
        vmid: vmid(200),
        options: opts(&[("unprivileged", "0")]),
        delete: vec![],
        revert: vec![],
        digest: None,
    }));
    let err = client.call(&flip).expect_err("unprivileged is fixed at creation");
    assert!(err.to_string().starts_with("unprivileged: cannot be changed after creation"), "{err}");
    // Unlocking an unlocked guest changes nothing, not even the file's digest.
    client.call(&Request::Ct(CtRequest::Unlock { vmid: vmid(200) })).expect("unlock");
    assert_eq!(std::fs::read(file(&daemon, "lxc", 200)).expect("file"), before);

    let Payload::Guests(list) = client.call(&Request::Ct(CtRequest::List)).expect("list") else { panic!() };
    assert_eq!(list.iter().map(|g| (g.vmid.get(), g.name.as_str())).collect::<Vec<_>>(), [(200, "proxy")]);
}

#[test]
fn pending_locks_and_hand_edited_files() {
    let daemon = HearthdProcess::start();
    let mut client = daemon.client();
    create_vm(&mut client, 100, &[("memory", "1024"), ("name", "a")]);
    create_vm(&mut client, 101, &[("name", "b")]);

    // Pending changes written by hand (as a running guest would get them) show up merged.
    let path = file(&daemon, "qemu", 100);
    let text = std::fs::read_to_string(&path).expect("read") + "\n[pending]\nmemory = 4096\ndelete = [\"name\"]\n";
    std::fs::write(&path, text).expect("write");
    assert_eq!(config(&mut client, 100, false).config.get("memory"), Some(&json!(4096)));
    assert_eq!(config(&mut client, 100, true).config.get("memory"), Some(&json!(1024)));
    assert!(!config(&mut client, 100, false).config.contains_key("name"));
    let Payload::Pending(items) = client.call(&Request::Vm(VmRequest::Pending { vmid: vmid(100) })).expect("pending")
    else {
        panic!()
    };
    assert!(
        items.contains(&PendingItem {
            key: "memory".into(),
            value: Some(json!(1024)),
            pending: Some(json!(4096)),
            delete: false
        }),
        "{items:?}"
    );
    assert!(
        items.contains(&PendingItem { key: "name".into(), value: Some(json!("a")), pending: None, delete: true }),
        "{items:?}"
    );

    // A lock refuses changes until unlocked.
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, format!("lock = \"backup\"\n{text}")).expect("write");
    let err = client.call(&set(100, &[("cores", "2")], &[], None)).expect_err("locked");
    assert_eq!(err.kind(), Some(ErrorKind::Locked));
    assert_eq!(err.to_string(), "VM 100 is locked (backup)");
    assert_eq!(config(&mut client, 100, false).config["lock"], json!("backup"));
    client.call(&Request::Vm(VmRequest::Unlock { vmid: vmid(100) })).expect("unlock");
    client.call(&set(100, &[("cores", "2")], &[], None)).expect("set after unlock");

    // A file broken by hand is reported with file and line; the other guests are still served.
    let broken = file(&daemon, "qemu", 101);
    std::fs::write(&broken, "name = \"b\"\ncores = [\n").expect("write");
    let err = client
        .call(&Request::Vm(VmRequest::Config(GetConfig { vmid: vmid(101), current: false, snapshot: None })))
        .expect_err("broken");
    assert_eq!(err.kind(), Some(ErrorKind::Unavailable));
    assert!(err.to_string().contains("101.toml: line 2"), "{err}");
    let Payload::Guests(list) = client.call(&Request::Vm(VmRequest::List)).expect("list still works") else { panic!() };
    assert_eq!(list.len(), 2);
    assert!(list[0].error.is_none());
    assert!(list[1].error.as_deref().is_some_and(|e| e.contains("101.toml: line 2")), "{:?}", list[1]);
    assert_eq!(config(&mut client, 100, false).config["cores"], json!(2));
    std::fs::write(&broken, "name = \"b\"\nmemroy = 5\n").expect("write");
    let err = client.call(&set(101, &[("cores", "2")], &[], None)).expect_err("broken");
    assert!(err.to_string().contains("line 2: memroy: unknown VM configuration key"), "{err}");
}
