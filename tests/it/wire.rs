//! The wire format, pinned: a sample of every request (hearthd's permission table holds one of
//! each variant), every response and payload variant, every error kind, task event and task
//! state, and the Hello frames, serialized and compared with the golden files in `wire/`. A
//! change to the protocol's JSON shows up as a diff there and is made deliberately with
//! `UPDATE_EXPECT=1 cargo test -p hearth-tests --test it -- wire`. Each sample must also come
//! back unchanged from its JSON, and a variant without a sample fails the test.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{Debug, Write as _};

use expect_test::expect_file;
use hearth_core::Upid;
use hearth_proto::{
    AclInfo, BackupEntry, BackupFile, BackupJob, BackupJobInfo, BackupOptions, BackupRun, ClientHello, CtStatusReport,
    DfEntry, ErrorKind, ErrorReply, GroupInfo, GuestConfigView, GuestSummary, NewTfa, NewToken, PathPermissions,
    Payload, PendingItem, PoolInfo, PruneEntry, RealmInfo, Response, RoleInfo, ServerHello, SnapshotInfo,
    StorageConfigs, StorageDefinition, StorageStatus, TaskEvent, TaskInfo, TaskState, TfaInfo, TfaKind, TokenInfo,
    UserInfo, VmStatusReport, VolumeEntry,
};
use hearthd::permission_table::samples;
use serde::Serialize;
use serde::de::DeserializeOwned;
use strum::VariantNames;

use crate::vmid;

/// Appends `# label` and the compact JSON of `value` to `out`, after checking that the JSON
/// reads back as the same value.
fn render<T: Serialize + DeserializeOwned + PartialEq + Debug>(out: &mut String, label: &str, value: &T) {
    let json = serde_json::to_string(value).unwrap_or_else(|e| panic!("{label} does not serialize: {e}"));
    let back: T = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{label} does not read back ({e}): {json}"));
    assert_eq!(&back, value, "{label} changes on its way through JSON: {json}");
    writeln!(out, "# {label}\n{json}").expect("writing to a String");
}

/// Fails naming every variant of `names` that `covered` lacks.
fn assert_covered(what: &str, names: &[&str], covered: &BTreeSet<&str>) {
    let missing: Vec<&str> = names.iter().copied().filter(|n| !covered.contains(n)).collect();
    assert!(missing.is_empty(), "{what} variants without a sample in tests/it/wire.rs: {missing:?}");
}

#[test]
fn every_request_variant_has_a_golden_sample() {
    let samples = samples();
    let missing = hearthd::permission_table::unsampled_variants(&samples);
    assert!(missing.is_empty(), "request variants without a sample in hearthd's permission_table.rs: {missing:?}");

    let mut out = String::new();
    for sample in &samples {
        render(&mut out, sample.cli, &sample.request);
    }
    expect_file!["wire/requests.txt"].assert_eq(&out);
}

#[test]
fn hello_frames_are_golden() {
    let mut out = String::new();
    let client = ClientHello { protocol_version: 1, software: "vmctl 0.1.0".into(), token: None };
    render(&mut out, "ClientHello", &client);
    let with_token = ClientHello { token: Some("alice@pam!ci=00000000-0000-0000-0000-000000000000".into()), ..client };
    render(&mut out, "ClientHello with an API token", &with_token);
    let server = ServerHello {
        protocol_version: 1,
        software: "hearthd 0.1.0".into(),
        node: "node1".into(),
        identity: "root@pam".into(),
    };
    render(&mut out, "ServerHello", &server);
    // The framing itself: a big-endian u32 length, then the JSON.
    let frame = hearth_proto::encode(&server).expect("encoding");
    let (length, json) = frame.split_at(4);
    let hex: String = length.iter().map(|b| format!("{b:02x}")).collect();
    writeln!(
        out,
        "# ServerHello as a frame: length prefix in hex, then the JSON\n{hex} {}",
        String::from_utf8_lossy(json)
    )
    .expect("writing to a String");
    expect_file!["wire/hello.txt"].assert_eq(&out);
}

#[test]
fn every_response_variant_has_a_golden_sample() {
    let payloads = payload_samples();
    let covered: BTreeSet<&str> = payloads.iter().map(<&str>::from).collect();
    assert_covered("Payload", Payload::VARIANTS, &covered);

    let errors: Vec<ErrorReply> = [
        (ErrorKind::NotFound, "VM 100 does not exist"),
        (ErrorKind::PermissionDenied, "permission check failed (/vms/100, VM.Config.Memory)"),
        (ErrorKind::Conflict, "configuration file changed meanwhile (digest mismatch)"),
        (ErrorKind::Invalid, "memory: value '0' is below the minimum 16"),
        (ErrorKind::Locked, "VM 100 is locked (backup)"),
        (ErrorKind::Busy, "too many connections"),
        (ErrorKind::Unavailable, "storage 'nfs' is not online"),
        (ErrorKind::Internal, "writing /etc/hearth/qemu-server/100.conf: No space left on device"),
        (ErrorKind::Protocol, "frame is not valid JSON for this message"),
    ]
    .into_iter()
    .map(|(kind, message)| ErrorReply::new(kind, message))
    .collect();
    let covered: BTreeSet<&str> = errors.iter().map(|e| <&str>::from(e.kind)).collect();
    assert_covered("ErrorKind", ErrorKind::VARIANTS, &covered);

    let events = [
        TaskEvent::Log("creating volume local:100/vm-100-disk-0.raw".into()),
        TaskEvent::Progress { done: 1 << 30, total: 4 << 30 },
    ];
    let covered: BTreeSet<&str> = events.iter().map(<&str>::from).collect();
    assert_covered("TaskEvent", TaskEvent::VARIANTS, &covered);

    let responses: Vec<Response> = payloads
        .into_iter()
        .map(Response::Ok)
        .chain(errors.into_iter().map(Response::Error))
        .chain(events.into_iter().map(Response::Event))
        .collect();
    let covered: BTreeSet<&str> = responses.iter().map(<&str>::from).collect();
    assert_covered("Response", Response::VARIANTS, &covered);

    let mut out = String::new();
    for response in &responses {
        let label = match response {
            Response::Ok(payload) => format!("Ok {}", <&str>::from(payload)),
            Response::Error(e) => format!("Error {}", <&str>::from(e.kind)),
            Response::Event(event) => format!("Event {}", <&str>::from(event)),
        };
        render(&mut out, &label, response);
    }
    expect_file!["wire/responses.txt"].assert_eq(&out);
}

fn upid(worker: &str, id: &str) -> Upid {
    format!("UPID:node1:00001234:0000ABCD:67000000:{worker}:{id}:root@pam:").parse().expect("a valid UPID")
}

/// A task in each state, so every `TaskState` variant is on the wire.
fn task_infos() -> Vec<TaskInfo> {
    let states = [
        TaskState::Running,
        TaskState::Ok,
        TaskState::Warnings { count: 2 },
        TaskState::Error { message: "storage 'local' is full".into() },
        TaskState::Unknown,
    ];
    let covered: BTreeSet<&str> = states.iter().map(<&str>::from).collect();
    assert_covered("TaskState", TaskState::VARIANTS, &covered);
    states
        .into_iter()
        .map(|state| TaskInfo {
            upid: upid("qmstart", "100"),
            worker_type: "qmstart".into(),
            id: "100".into(),
            user: "root@pam".into(),
            starttime: 1_728_053_248,
            endtime: (!state.is_running()).then_some(1_728_053_250),
            state,
        })
        .collect()
}

fn config(pairs: &[(&str, serde_json::Value)]) -> BTreeMap<String, serde_json::Value> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

/// One sample of every `Payload` variant, with every optional field of its structures set
/// somewhere so that a renamed field shows.
fn payload_samples() -> Vec<Payload> {
    use serde_json::json;
    let tasks = task_infos();
    let token = TokenInfo {
        tokenid: "ci".into(),
        privsep: true,
        expire: Some(1_800_000_000),
        comment: Some("deployments".into()),
    };
    let totp = TfaInfo {
        userid: "alice@pve".into(),
        id: "totp0".into(),
        kind: TfaKind::Totp,
        created: 1_728_000_000,
        remaining: None,
    };
    vec![
        Payload::Empty,
        Payload::Digest("4c1a8f0e3d2b".into()),
        Payload::Config(GuestConfigView {
            vmid: vmid(100),
            digest: "4c1a8f0e3d2b".into(),
            config: config(&[("memory", json!(2048)), ("name", json!("web")), ("onboot", json!(1))]),
        }),
        Payload::Pending(vec![
            PendingItem { key: "memory".into(), value: Some(json!(2048)), pending: Some(json!(4096)), delete: false },
            PendingItem { key: "tags".into(), value: Some(json!("prod")), pending: None, delete: true },
        ]),
        Payload::Guests(vec![GuestSummary {
            vmid: vmid(100),
            guest_type: "qemu".into(),
            name: "web".into(),
            status: "running".into(),
            lock: Some("backup".into()),
            maxmem_mib: 2048,
            maxdisk: 34_359_738_368,
            pid: Some(4242),
            tags: "prod".into(),
            template: false,
            error: Some("cannot read /etc/hearth/qemu-server/100.conf".into()),
        }]),
        Payload::NextId(vmid(101)),
        Payload::Task(upid("qmcreate", "100")),
        Payload::Tasks(tasks.clone()),
        Payload::TaskLog(vec!["starting".into(), "TASK OK".into()]),
        Payload::TaskStatus(tasks[1].clone()),
        Payload::StorageConfigs(StorageConfigs {
            digest: "9e0d".into(),
            storages: vec![StorageDefinition {
                storage: "local".into(),
                config: config(&[("type", json!("dir")), ("path", json!("/var/lib/hearth")), ("shared", json!(0))]),
            }],
        }),
        Payload::StorageStatus(vec![StorageStatus {
            storage: "nfs".into(),
            storage_type: "dir".into(),
            status: "unavailable".into(),
            content: "images,rootdir".into(),
            shared: true,
            total: Some(100),
            used: Some(40),
            available: Some(60),
            error: Some("not mounted".into()),
        }]),
        Payload::Volumes(vec![VolumeEntry {
            volid: "local:100/vm-100-disk-0.qcow2".into(),
            format: "qcow2".into(),
            content: "images".into(),
            size: 4 << 30,
            used: Some(1 << 20),
            vmid: Some(vmid(100)),
            parent: Some("base-900-disk-0.qcow2".into()),
            ctime: 1_728_000_000,
        }]),
        Payload::Volume("local:100/vm-100-disk-1.raw".into()),
        Payload::Path("/var/lib/hearth/images/100/vm-100-disk-1.raw".into()),
        Payload::VmStatus(VmStatusReport {
            vmid: vmid(100),
            status: "running".into(),
            qmpstatus: Some("paused".into()),
            name: Some("web".into()),
            lock: Some("migrate".into()),
            pid: Some(4242),
            uptime: Some(3600),
            cpus: 2,
            maxmem: 2 << 30,
            mem: Some(1 << 30),
            diskread: 1,
            diskwrite: 2,
            netin: 3,
            netout: 4,
        }),
        Payload::CtStatus(CtStatusReport {
            vmid: vmid(200),
            status: "stopped".into(),
            name: Some("box".into()),
            lock: Some("snapshot".into()),
            pid: Some(5000),
            monitor_pid: Some(4999),
            uptime: Some(60),
            cpus: 0,
            maxmem: 512 << 20,
            maxswap: 0,
            mem: Some(10 << 20),
            pids: Some(7),
            cputime: Some(123_456_789),
            netin: 5,
            netout: 6,
            last_exit: Some("killed by SIGKILL".into()),
        }),
        Payload::ExitStatus(137),
        Payload::Df(vec![DfEntry {
            key: "rootfs".into(),
            volume: "local:200/vm-200-disk-0.raw".into(),
            path: "/".into(),
            total: 8 << 30,
            used: 1 << 30,
            avail: 7 << 30,
        }]),
        Payload::Snapshots(vec![SnapshotInfo {
            name: "before-upgrade".into(),
            parent: Some("fresh".into()),
            snaptime: Some(1_728_000_000),
            description: Some("apt full-upgrade next".into()),
        }]),
        Payload::Text("QEMU 9.2.0 monitor - type 'help' for more information".into()),
        Payload::Users(vec![UserInfo {
            userid: "alice@pve".into(),
            enable: true,
            expire: Some(1_800_000_000),
            firstname: Some("Alice".into()),
            lastname: Some("Liddell".into()),
            email: Some("alice@example.invalid".into()),
            comment: Some("operator".into()),
            groups: vec!["ops".into()],
            tokens: vec!["ci".into()],
        }]),
        Payload::Groups(vec![GroupInfo {
            group: "ops".into(),
            comment: Some("operators".into()),
            members: vec!["alice@pve".into()],
        }]),
        Payload::Roles(vec![RoleInfo {
            role: "PVEVMUser".into(),
            privs: vec!["VM.Audit".into(), "VM.PowerMgmt".into()],
            special: true,
        }]),
        Payload::Acl(vec![AclInfo {
            path: "/vms/100".into(),
            subject_type: "group".into(),
            ugid: "ops".into(),
            roleid: "PVEVMUser".into(),
            propagate: true,
        }]),
        Payload::Pools(vec![PoolInfo {
            pool: "web".into(),
            comment: Some("web servers".into()),
            vms: vec![vmid(100)],
            storage: vec!["local".into()],
        }]),
        Payload::Tokens(vec![token.clone()]),
        Payload::NewToken(NewToken {
            full_tokenid: "alice@pve!ci".into(),
            info: token,
            value: "00000000-0000-0000-0000-000000000000".into(),
        }),
        Payload::Permissions(vec![PathPermissions { path: "/vms/100".into(), privs: vec!["VM.Audit".into()] }]),
        Payload::Tfa(vec![
            totp.clone(),
            TfaInfo { id: "recovery".into(), kind: TfaKind::Recovery, remaining: Some(9), ..totp.clone() },
        ]),
        Payload::NewTfa(NewTfa {
            info: totp,
            secret: Some("JBSWY3DPEHPK3PXP".into()),
            uri: Some("otpauth://totp/Hearth:alice@pve?secret=JBSWY3DPEHPK3PXP&issuer=Hearth".into()),
            recovery: vec!["a1b2-c3d4".into()],
        }),
        Payload::Backups(vec![BackupEntry {
            volid: "local:backup/vzdump-qemu-100-2024_10_04-12_00_00.vma.zst".into(),
            vmid: Some(vmid(100)),
            guest_type: "qemu".into(),
            format: "vma.zst".into(),
            size: 1 << 30,
            ctime: 1_728_043_200,
            protected: true,
            notes: Some("before the upgrade".into()),
            damaged: Some("index.json is unreadable".into()),
        }]),
        Payload::BackupFiles(vec![BackupFile {
            path: "/etc/localtime".into(),
            kind: "symlink".into(),
            size: 0,
            mode: 0o777,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
            link: Some("/usr/share/zoneinfo/Etc/UTC".into()),
        }]),
        Payload::Pruned(vec![PruneEntry {
            volid: "local:backup/vzdump-lxc-200-2024_10_01-00_00_00.tar.zst".into(),
            guest: "200".into(),
            ctime: 1_727_740_800,
            mark: "remove".into(),
        }]),
        Payload::BackupJobs(vec![BackupJobInfo {
            job: BackupJob {
                id: "nightly".into(),
                schedule: "mon..fri 02:00".into(),
                enabled: true,
                repeat_missed: true,
                comment: Some("all guests".into()),
                selection: BackupRun {
                    vmids: vec![],
                    all: true,
                    exclude: vec![vmid(900)],
                    options: BackupOptions::default(),
                    pool: None,
                },
            },
            last_run: Some(1_728_000_000),
            next_run: Some(1_728_086_400),
            last_upid: Some(upid("vzdump", "").to_string()),
        }]),
        Payload::TasksStarted(vec![upid("vzdump", "")]),
        Payload::Realms(vec![
            RealmInfo {
                realm: "myrealm1".into(),
                kind: "openid".into(),
                builtin: false,
                options: [("issuer-url", "https://accounts.google.com"), ("client-id", "XXXX")]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                secrets: vec!["client-key".into()],
            },
            RealmInfo {
                realm: "pve".into(),
                kind: "pve".into(),
                builtin: true,
                options: [("comment".to_owned(), "Proxmox VE authentication server".to_owned())].into_iter().collect(),
                secrets: vec![],
            },
        ]),
        Payload::NetworkInterfaces(vec![hearth_proto::NetworkInterface {
            config: hearth_core::network::Iface {
                iface: "vmbr0".into(),
                kind: hearth_core::network::IfaceType::Bridge,
                autostart: true,
                cidr: Some("192.168.10.2/24".into()),
                gateway: Some("192.168.10.1".into()),
                bridge_ports: vec!["eno1".into()],
                bridge_stp: Some(false),
                bridge_fd: Some(0),
                priority: 3,
                ..Default::default()
            },
            exists: true,
            active: true,
        }]),
        Payload::NetworkPending(vec![hearth_core::network::IfaceChange {
            iface: "vmbr1".into(),
            action: "change".into(),
            changes: vec![hearth_core::network::KeyChange {
                key: "mtu".into(),
                current: Some("1500".into()),
                staged: Some("9000".into()),
            }],
        }]),
    ]
}
