//! The QMP client against a scripted fake QEMU on a Unix socket: events, errors, stale
//! answers, timeouts and closed connections, which a real QEMU rarely produces on demand.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::{Value, json};

use super::{Qmp, QmpError};

/// The fake server's side of one connection.
struct Peer {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Peer {
    fn send(&mut self, message: Value) {
        let mut line = serde_json::to_vec(&message).expect("serialises");
        line.extend_from_slice(b"\r\n");
        self.writer.write_all(&line).expect("client reads");
    }

    /// Reads the next command and answers its name and id.
    fn recv(&mut self) -> (String, Value) {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("client writes");
        let message: Value = serde_json::from_str(&line).expect("client sends JSON");
        let command = message["execute"].as_str().expect("a command").to_owned();
        (command, message["id"].clone())
    }

    fn event(&mut self, name: &str, seconds: i64) {
        self.send(json!({ "event": name, "data": {}, "timestamp": { "seconds": seconds, "microseconds": 5 } }));
    }
}

/// Starts a fake QEMU that greets, accepts `qmp_capabilities`, then runs `script`.
fn fake_qemu(script: impl FnOnce(&mut Peer) + Send + 'static) -> (tempfile::TempDir, PathBuf, JoinHandle<()>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("100.qmp");
    let listener = UnixListener::bind(&path).expect("bind");
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let mut peer = Peer { reader: BufReader::new(stream.try_clone().expect("clone")), writer: stream };
        peer.send(json!({ "QMP": {
            "version": { "qemu": { "major": 7, "minor": 2, "micro": 22 }, "package": "Debian 1:7.2+dfsg-7 " },
            "capabilities": ["oob"],
        }}));
        let (command, id) = peer.recv();
        assert_eq!(command, "qmp_capabilities");
        peer.send(json!({ "return": {}, "id": id }));
        script(&mut peer);
    });
    (dir, path, server)
}

#[test]
fn events_arriving_before_an_answer_are_kept() {
    let (_dir, path, server) = fake_qemu(|peer| {
        let (command, id) = peer.recv();
        assert_eq!(command, "query-status");
        peer.event("STOP", 10);
        peer.event("RESUME", 11);
        peer.send(json!({ "return": { "status": "running", "running": true, "singlestep": false }, "id": id }));
        peer.event("POWERDOWN", 12);
        peer.event("SHUTDOWN", 13);
    });
    let mut qmp = Qmp::connect(&path).expect("connects");
    assert_eq!(qmp.greeting().version.minor, 2);
    assert_eq!(qmp.greeting().package, "Debian 1:7.2+dfsg-7");
    assert_eq!(qmp.greeting().capabilities, ["oob"]);
    let status = qmp.query_status().expect("answers");
    assert_eq!((status.status.as_str(), status.running), ("running", true));
    let shutdown = qmp.wait_event("SHUTDOWN", Duration::from_secs(5)).expect("event comes");
    assert_eq!(shutdown.timestamp_us, 13_000_005);
    let names: Vec<String> = qmp.take_events().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["STOP", "RESUME", "POWERDOWN"]);
    assert!(qmp.take_events().is_empty());
    server.join().expect("server ran");
}

#[test]
fn refused_commands_carry_class_and_description() {
    let (_dir, path, server) = fake_qemu(|peer| {
        let (_, id) = peer.recv();
        peer.send(json!({ "error": { "class": "CommandNotFound", "desc": "The command frobnicate has not been found" }, "id": id }));
    });
    let mut qmp = Qmp::connect(&path).expect("connects");
    let err = qmp.execute("frobnicate", None).expect_err("refused");
    assert!(matches!(&err, QmpError::Command { class, .. } if class == "CommandNotFound"));
    assert_eq!(err.to_string(), "frobnicate failed: CommandNotFound: The command frobnicate has not been found");
    server.join().expect("server ran");
}

#[test]
fn a_late_answer_to_a_timed_out_command_is_not_taken_for_the_next() {
    let (_dir, path, server) = fake_qemu(|peer| {
        let (_, slow) = peer.recv();
        let (_, next) = peer.recv();
        peer.send(json!({ "return": "late", "id": slow }));
        peer.send(json!({ "return": "right", "id": next }));
    });
    let mut qmp = Qmp::connect(&path).expect("connects");
    qmp.set_timeout(Duration::from_millis(200)).expect("sets timeout");
    let err = qmp.execute("slow-command", None).expect_err("times out");
    assert!(matches!(err, QmpError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().starts_with("no answer from QEMU to slow-command within"), "{err}");
    qmp.set_timeout(Duration::from_secs(5)).expect("sets timeout");
    assert_eq!(qmp.execute("next-command", None).expect("answers"), json!("right"));
    server.join().expect("server ran");
}

#[test]
fn quit_succeeds_when_qemu_closes_before_answering() {
    let (_dir, path, server) = fake_qemu(|peer| {
        let (command, _) = peer.recv();
        assert_eq!(command, "quit");
        peer.event("SHUTDOWN", 1);
    });
    let mut qmp = Qmp::connect(&path).expect("connects");
    qmp.quit().expect("quit counts as done");
    server.join().expect("server ran");
    assert!(matches!(qmp.query_status(), Err(QmpError::Closed | QmpError::Io(_))));
}

#[test]
fn a_socket_that_is_not_qmp_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("not-qmp.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        stream.write_all(b"{\"hello\": 1}\n").expect("client reads");
    });
    let err = Qmp::connect(&path).expect_err("not QMP");
    assert_eq!(err.to_string(), r#"unexpected QMP message: expected the QMP greeting, got {"hello":1}"#);
    server.join().expect("server ran");
    let missing = dir.path().join("missing.qmp");
    let err = Qmp::connect(&missing).expect_err("no socket");
    assert_eq!(err.to_string(), format!("cannot connect to QMP socket {}", missing.display()));
}
