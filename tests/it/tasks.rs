//! Tasks: ids, logs, progress events, stop, and an index that survives a restart.

use std::time::Duration;

use hearth_proto::{ErrorKind, Payload, Request, TaskEvent, TaskFilter, TaskRequest, TaskState};
use hearth_test::{HearthdProcess, InProcessHearthd, temp_root};
use nix::sys::signal::Signal;

use crate::{create_vm, vmid};

fn list(client: &mut hearth_client::Client, filter: TaskFilter) -> Vec<hearth_proto::TaskInfo> {
    match client.call(&Request::Task(TaskRequest::List(filter))).expect("task list") {
        Payload::Tasks(tasks) => tasks,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn running_task_streams_progress_and_stops_on_request() {
    let root = temp_root();
    let node = InProcessHearthd::start(root.path()).expect("hearthd");
    let upid = node
        .daemon
        .tasks
        .spawn("imgcopy", "100", "root@pam", |ctx| {
            for step in 0.. {
                ctx.progress(step, 1000);
                ctx.log(format!("step {step}"));
                ctx.check_stop()?;
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(())
        })
        .expect("spawn");
    assert_eq!(upid.node, "test");
    assert_eq!(upid.worker_type, "imgcopy");
    assert_eq!(upid.to_string().parse::<hearth_core::Upid>().expect("round trip"), upid);

    let mut client = hearth_client::Client::connect(root.path(), "test").expect("connect");
    let running = list(&mut client, TaskFilter { running: true, ..TaskFilter::default() });
    assert_eq!(running.iter().map(|t| &t.upid).collect::<Vec<_>>(), [&upid]);
    assert_eq!(running[0].state, TaskState::Running);

    // Follow on one connection, stop from another once some progress arrived.
    let follower = {
        let root = root.path().to_owned();
        let upid = upid.clone();
        std::thread::spawn(move || {
            let mut client = hearth_client::Client::connect(&root, "follower").expect("connect");
            let mut events = Vec::new();
            let info = client.follow(&upid, |e| events.push(e.clone())).expect("follow");
            (info, events)
        })
    };
    while !matches!(client.call(&Request::Task(TaskRequest::Log { upid: upid.clone(), start: 0 })), Ok(Payload::TaskLog(lines)) if lines.len() > 5)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    client.call(&Request::Task(TaskRequest::Stop { upid: upid.clone() })).expect("stop");
    let (info, events) = follower.join().expect("follower");
    assert_eq!(info.state, TaskState::Error { message: "interrupted by signal".into() });
    assert!(info.endtime.is_some());
    assert!(events.iter().any(|e| matches!(e, TaskEvent::Progress { total: 1000, .. })), "{events:?}");
    let first_line = events.iter().find_map(|e| if let TaskEvent::Log(l) = e { Some(l.as_str()) } else { None });
    assert_eq!(first_line, Some("step 0"), "the log is streamed from its first line");
    assert!(matches!(events.last(), Some(TaskEvent::Log(l)) if l == "TASK ERROR: interrupted by signal"), "{events:?}");

    let err = client.call(&Request::Task(TaskRequest::Stop { upid: upid.clone() })).expect_err("not running");
    assert_eq!(err.kind(), Some(ErrorKind::Conflict));
    let bogus: hearth_core::Upid = "UPID:test:00000001:00000001:00000001:qmstart:100:root@pam:".parse().expect("upid");
    let err = client.call(&Request::Task(TaskRequest::Status { upid: bogus })).expect_err("unknown task");
    assert_eq!(err.kind(), Some(ErrorKind::NotFound));
}

#[test]
fn task_logs_and_status_survive_a_restart() {
    let mut daemon = HearthdProcess::start();
    let mut client = daemon.client();
    create_vm(&mut client, 100, &[]);
    let destroy = Request::Vm(hearth_proto::VmRequest::Destroy(hearth_proto::DestroyGuest {
        vmid: vmid(100),
        purge: false,
        destroy_unreferenced_disks: None,
        skiplock: false,
    }));
    let Payload::Task(destroyed) = client.call(&destroy).expect("destroy") else { panic!() };
    client.follow(&destroyed, |_| {}).expect("follow");
    let before = list(&mut client, TaskFilter::default());
    assert_eq!(
        before.iter().map(|t| t.worker_type.as_str()).collect::<Vec<_>>(),
        ["qmdestroy", "qmcreate"],
        "newest first"
    );
    drop(client);

    assert!(daemon.signal(Signal::SIGTERM).success(), "SIGTERM stops hearthd cleanly");
    assert!(!hearth_client::socket_path(daemon.root()).exists(), "the socket is removed on shutdown");
    daemon.restart();

    let mut client = daemon.client();
    assert_eq!(list(&mut client, TaskFilter::default()), before);
    let filtered = list(
        &mut client,
        TaskFilter { typefilter: Some("qmcreate".into()), vmid: Some(vmid(100)), ..TaskFilter::default() },
    );
    assert_eq!(filtered.len(), 1);
    let Payload::TaskStatus(status) =
        client.call(&Request::Task(TaskRequest::Status { upid: destroyed.clone() })).expect("status")
    else {
        panic!()
    };
    assert_eq!(status.state, TaskState::Ok);
    let Payload::TaskLog(lines) =
        client.call(&Request::Task(TaskRequest::Log { upid: destroyed.clone(), start: 0 })).expect("log")
    else {
        panic!()
    };
    assert_eq!(lines, ["destroying VM 100", "VM 100 destroyed", "TASK OK"]);
    let Payload::TaskLog(tail) =
        client.call(&Request::Task(TaskRequest::Log { upid: destroyed.clone(), start: 2 })).expect("log")
    else {
        panic!()
    };
    assert_eq!(tail, ["TASK OK"]);
    let mut replay = Vec::new();
    let info = client.follow(&destroyed, |e| replay.push(e.clone())).expect("following a finished task replays it");
    assert_eq!((info.state, replay.len()), (TaskState::Ok, 3));
    let log_file = daemon.root().join(format!("var/log/hearth/tasks/{}/{destroyed}", destroyed.bucket()));
    assert!(log_file.exists(), "{}", log_file.display());
}
