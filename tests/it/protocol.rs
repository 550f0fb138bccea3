//! The socket protocol under abuse: oversized and malformed frames, a wrong Hello, a client that
//! leaves mid-frame, and a caller that is not root. Each ends one connection, never the daemon.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;

use hearth_proto::{
    ClientHello, ErrorKind, PROTOCOL_VERSION, Payload, Request, Response, VmRequest, read_frame, write_frame,
};
use hearth_test::HearthdProcess;

use crate::create_vm;

fn raw(daemon: &HearthdProcess) -> UnixStream {
    UnixStream::connect(hearth_client::socket_path(daemon.root())).expect("connect")
}

fn hello(stream: &mut UnixStream, version: u32) -> serde_json::Value {
    write_frame(stream, &ClientHello { protocol_version: version, software: "test".into(), token: None })
        .expect("hello");
    read_frame(stream).expect("read").expect("a reply")
}

/// Reads the daemon's last word on a connection it closes: a protocol error, then EOF.
fn expect_protocol_error_and_close(stream: &mut UnixStream) -> String {
    let reply: Response = read_frame(stream).expect("frame").expect("an error frame");
    let Response::Error(e) = reply else { panic!("expected an error, got {reply:?}") };
    assert_eq!(e.kind, ErrorKind::Protocol);
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).expect("read to EOF");
    assert!(rest.is_empty(), "the connection is closed after the error");
    e.message
}

fn still_serves(daemon: &HearthdProcess) {
    let Payload::Guests(list) = daemon.client().call(&Request::Vm(VmRequest::List)).expect("daemon still serves")
    else {
        panic!()
    };
    assert_eq!(list.len(), 1);
}

#[test]
fn bad_frames_close_one_connection_only() {
    let daemon = HearthdProcess::start();
    create_vm(&mut daemon.client(), 100, &[]);
    let before = std::fs::read(daemon.root().join("etc/hearth/nodes/test/qemu/100.toml")).expect("file");

    // An open, idle connection is not disturbed by what happens to the others.
    let mut idle = daemon.client();

    let mut s = raw(&daemon);
    hello(&mut s, PROTOCOL_VERSION);
    s.write_all(&(16u32 * 1024 * 1024 + 1).to_be_bytes()).expect("write");
    assert!(expect_protocol_error_and_close(&mut s).contains("exceeds the limit"));

    let mut s = raw(&daemon);
    hello(&mut s, PROTOCOL_VERSION);
    s.write_all(&[0, 0, 0, 5, b'{', b'"', b'v', b'm', b'"']).expect("write");
    assert!(expect_protocol_error_and_close(&mut s).contains("malformed request"));

    let mut s = raw(&daemon);
    hello(&mut s, PROTOCOL_VERSION);
    write_frame(&mut s, &serde_json::json!({"vm": {"set": {"vmid": 99}}})).expect("write");
    assert!(expect_protocol_error_and_close(&mut s).contains("invalid vmid '99'"));

    let mut s = raw(&daemon);
    write_frame(&mut s, &serde_json::json!({"not": "a hello"})).expect("write");
    assert!(expect_protocol_error_and_close(&mut s).contains("Hello"));

    let mut s = raw(&daemon);
    let reply = hello(&mut s, PROTOCOL_VERSION + 1);
    assert_eq!(reply["error"]["kind"], "protocol", "{reply}");

    // A client that announces a request and leaves halfway: nothing happens.
    let mut s = raw(&daemon);
    hello(&mut s, PROTOCOL_VERSION);
    s.write_all(&200u32.to_be_bytes()).expect("write");
    s.write_all(br#"{"vm":{"set":{"vmid":100,"options":[["memory","#).expect("write");
    drop(s);

    still_serves(&daemon);
    let Payload::Guests(_) = idle.call(&Request::Vm(VmRequest::List)).expect("the idle connection still works") else {
        panic!()
    };
    assert_eq!(std::fs::read(daemon.root().join("etc/hearth/nodes/test/qemu/100.toml")).expect("file"), before);
}

#[test]
fn non_root_callers_are_refused_and_change_nothing() {
    let daemon = HearthdProcess::start();
    create_vm(&mut daemon.client(), 100, &[]);
    let nobody = 65534;
    // Lists answer everyone, with only what the caller may audit: nothing, here.
    let out = daemon
        .command("vmctl")
        .args(["list", "--output-format", "json"])
        .uid(nobody)
        .gid(nobody)
        .output()
        .expect("run");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]", "{out:?}");
    let out = daemon
        .command("clusterctl")
        .args(["task", "list", "--output-format", "json"])
        .uid(nobody)
        .gid(nobody)
        .output()
        .expect("run");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]", "root's tasks are not shown: {out:?}");
    for args in [&["config", "100"][..], &["set", "100", "--memory", "4096"], &["create", "101"], &["nextid"]] {
        let out = daemon.command("vmctl").args(args).uid(nobody).gid(nobody).output().expect("run vmctl as nobody");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "vmctl {args:?}: {stderr}");
        assert!(stderr.contains("permission denied: nobody@pam lacks"), "vmctl {args:?}: {stderr}");
    }
    assert!(!daemon.root().join("etc/hearth/nodes/test/qemu/101.toml").exists());
    let text = std::fs::read_to_string(daemon.root().join("etc/hearth/nodes/test/qemu/100.toml")).expect("file");
    assert!(!text.contains("memory"), "{text}");
    assert_eq!(daemon.client().hello().identity, "root@pam");
}
