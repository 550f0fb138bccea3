//! Hostile local users: a flood of idle and trickling connections, slow and oversized frames,
//! and mutated frames. hearthd refuses or closes them and keeps serving root, within bounded
//! memory; nothing it held for them stays behind.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hearth_proto::{
    ClientHello, ErrorKind, MAX_HELLO_FRAME, PROTOCOL_VERSION, Payload, Request, Response, TaskRequest, TaskState,
    VmRequest, read_frame, write_frame,
};
use hearth_test::{HearthdProcess, InProcessHearthd, temp_root};
use hearthd::ServeLimits;
use hearthd::admission::CONNECTIONS_PER_UID;

use crate::create_vm;

const NOBODY: u32 = 65534;

/// hearthd's resident memory, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("hearthd's /proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status");
    kib * 1024
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).expect("hearthd's /proc fd").count()
}

/// Raises this process's soft descriptor limit to at least `wanted` (its children, the hostile
/// client among them, inherit it).
fn raise_descriptor_limit(wanted: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    assert!(hard >= wanted, "this test needs {wanted} open files; raise the hard limit (ulimit -Hn, LimitNOFILE=)");
    if soft < wanted {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("raising the soft descriptor limit");
    }
}

/// The hostile client running as `nobody`, killed when dropped.
struct Hostile {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Hostile {
    fn start(args: &[&str]) -> Hostile {
        let mut child = Command::new(hearth_test::bin("hearth-hostile"))
            .args(args)
            .uid(NOBODY)
            .gid(NOBODY)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting hearth-hostile as nobody");
        let out = BufReader::new(child.stdout.take().expect("piped stdout"));
        Hostile { child, out }
    }

    fn report(&mut self) -> serde_json::Value {
        let mut line = String::new();
        self.out.read_line(&mut line).expect("reading hearth-hostile's report");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("hearth-hostile reported no JSON ({e}): {line:?}"))
    }

    /// Closes its standard input (it closes everything and exits), answering its last report.
    fn finish(mut self) -> serde_json::Value {
        drop(self.child.stdin.take());
        let report = self.report();
        let status = self.child.wait().expect("waiting for hearth-hostile");
        assert!(status.success(), "hearth-hostile failed: {status}");
        report
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn count(report: &serde_json::Value, key: &str) -> u64 {
    report["counts"][key].as_u64().unwrap_or(0)
}

#[test]
fn a_flood_from_nobody_leaves_root_served_and_memory_bounded() {
    raise_descriptor_limit(4096);
    let daemon = HearthdProcess::start();
    create_vm(&mut daemon.client(), 100, &[]);
    let pid = daemon.pid().expect("hearthd runs");
    let descriptors_before = open_descriptors(pid);
    let socket = hearth_client::socket_path(daemon.root());

    // 50 idle connections after Hello, 200 that announce a 16 MiB frame and trickle it, then
    // 1950 more idle ones, most without a Hello.
    let mut flood =
        Hostile::start(&["flood", socket.to_str().expect("utf-8"), "idle:50", "trickle:200", "idle:500", "bare:1450"]);
    let opened = flood.report();
    eprintln!("flood: {opened}");
    let trickling = CONNECTIONS_PER_UID as u64 - 50;
    assert_eq!(count(&opened, "idle_admitted"), 50, "{opened}");
    assert_eq!(count(&opened, "trickle_admitted"), trickling, "{opened}");
    assert_eq!(count(&opened, "trickle_refused"), 200 - trickling, "{opened}");
    assert_eq!(count(&opened, "idle_refused"), 500, "{opened}");
    assert_eq!(count(&opened, "bare_refused"), 1450, "{opened}");
    let refusal = opened["messages"]["bare_refused"].as_str().expect("a refusal message");
    assert!(refusal.contains(&format!("uid {NOBODY} already has {CONNECTIONS_PER_UID} connections")), "{refusal}");

    // While they are open and trickling, root is answered at once and memory stays small.
    let mut slowest = Duration::ZERO;
    let mut largest = 0;
    for _ in 0..5 {
        let started = Instant::now();
        let out = daemon.cli("vmctl", &["list"]);
        let took = started.elapsed();
        assert!(out.status.success(), "vmctl list: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("100"), "{out:?}");
        assert!(took < Duration::from_secs(1), "root's vmctl list took {took:?} during the flood");
        slowest = slowest.max(took);
        largest = largest.max(rss_bytes(pid));
        assert!(largest < 100 << 20, "hearthd's RSS reached {} MiB during the flood", largest >> 20);
        std::thread::sleep(Duration::from_millis(300));
    }
    eprintln!("during the flood: slowest vmctl list {slowest:?}, largest hearthd RSS {} KiB", largest >> 10);

    let finished = flood.finish();
    eprintln!("flood ended: {finished}");
    // Everything hearthd held for nobody is released once the connections are gone: its
    // descriptors, and nobody's count (nobody is admitted again).
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_descriptors(pid) > descriptors_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(open_descriptors(pid) <= descriptors_before, "hearthd holds descriptors of closed connections");
    let out = daemon
        .command("vmctl")
        .args(["list", "--output-format", "json"])
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .expect("run");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]", "nobody is served again: {out:?}");
}

fn raw(root: &std::path::Path) -> UnixStream {
    let stream = UnixStream::connect(hearth_client::socket_path(root)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    stream
}

fn hello(stream: &mut UnixStream) {
    write_frame(stream, &ClientHello { protocol_version: PROTOCOL_VERSION, software: "test".into(), token: None })
        .expect("hello");
    let reply: serde_json::Value = read_frame(stream).expect("read").expect("a reply");
    assert_eq!(reply["identity"], "root@pam", "{reply}");
}

/// Reads hearthd's last word on a connection it closes: an error, then the end (a reset when
/// hearthd left bytes of ours unread).
fn closing_error(stream: &mut UnixStream) -> (ErrorKind, String) {
    let reply: Response = read_frame(stream).expect("frame").expect("an error frame");
    let Response::Error(e) = reply else { panic!("expected an error, got {reply:?}") };
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "nothing follows the error"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    (e.kind, e.message)
}

#[test]
fn slow_idle_and_oversized_peers_are_closed_but_followers_are_not() {
    let root = temp_root();
    let second = Duration::from_secs(1);
    let limits = ServeLimits {
        connections_per_uid: 2,
        hello_timeout: second,
        idle_timeout: second,
        frame_timeout: second,
        ..ServeLimits::default()
    };
    let node = InProcessHearthd::start_with_limits(root.path(), limits).expect("hearthd");

    // Root is never limited, however many connections it holds.
    let clients: Vec<hearth_client::Client> =
        (0..10).map(|_| hearth_client::Client::connect(root.path(), "test").expect("root is admitted")).collect();
    drop(clients);

    let mut bare = raw(root.path());
    assert_eq!(closing_error(&mut bare), (ErrorKind::Protocol, "no Hello within 1 seconds".into()));

    let mut big_hello = raw(root.path());
    let announced = u32::try_from(MAX_HELLO_FRAME + 1).expect("fits").to_be_bytes();
    big_hello.write_all(&announced).expect("write");
    let (kind, message) = closing_error(&mut big_hello);
    assert_eq!(kind, ErrorKind::Protocol);
    assert!(message.contains(&format!("exceeds the limit of {MAX_HELLO_FRAME} bytes")), "{message}");

    let mut idle = raw(root.path());
    hello(&mut idle);
    let (kind, message) = closing_error(&mut idle);
    assert_eq!(kind, ErrorKind::Protocol);
    assert!(message.contains("no request for 1 s"), "{message}");

    // A frame whose bytes keep coming, too slowly, is cut all the same.
    let mut slow = raw(root.path());
    hello(&mut slow);
    slow.write_all(&100u32.to_be_bytes()).expect("write");
    for _ in 0..20 {
        if slow.write_all(b" ").is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (kind, message) = closing_error(&mut slow);
    assert_eq!(kind, ErrorKind::Protocol);
    assert!(message.contains("did not arrive within 1 s of its first byte"), "{message}");

    // Following a task that stays silent for longer than the idle timeout is not idleness.
    let upid = node
        .daemon
        .tasks
        .spawn("imgcopy", "100", "root@pam", |ctx| {
            let until = Instant::now() + Duration::from_secs(3);
            while Instant::now() < until {
                ctx.check_stop()?;
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(())
        })
        .expect("spawn");
    let mut client = hearth_client::Client::connect(root.path(), "follower").expect("connect");
    let info = client.follow(&upid, |_| {}).expect("the follower is not cut");
    assert_eq!(info.state, TaskState::Ok);
    // Idleness counts from the last answer, so the same connection still serves.
    let status = client.call(&Request::Task(TaskRequest::Status { upid })).expect("still connected");
    assert!(matches!(status, Payload::TaskStatus(_)), "{status:?}");
    let listed = client.call(&Request::Vm(VmRequest::List)).expect("still connected");
    assert!(matches!(listed, Payload::Guests(_)), "{listed:?}");
}

#[test]
fn mutated_frames_from_nobody_leave_hearthd_serving_root() {
    let daemon = HearthdProcess::start();
    create_vm(&mut daemon.client(), 100, &[]);
    let config = daemon.root().join("etc/hearth/nodes/test/qemu/100.toml");
    let before = std::fs::read(&config).expect("config");
    let socket = hearth_client::socket_path(daemon.root());

    let started = Instant::now();
    let mut hostile = Hostile::start(&["mutate", socket.to_str().expect("utf-8"), "3000", "20240611"]);
    let report = hostile.report();
    eprintln!("3000 mutated conversations in {:?}: {report}", started.elapsed());
    let answers = report["answers"].as_object().expect("answers");
    assert!(!answers.contains_key("hung"), "hearthd left a connection unanswered: {report}");
    assert!(!answers.contains_key("internal"), "a mutated frame hit an internal error: {report}");
    assert!(answers.contains_key("protocol"), "mutations reached the protocol checks: {report}");
    drop(hostile);

    assert!(daemon.pid().is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists()));
    let Payload::Guests(list) = daemon.client().call(&Request::Vm(VmRequest::List)).expect("root is served") else {
        panic!("a guest list")
    };
    assert_eq!(list.len(), 1);
    assert_eq!(std::fs::read(&config).expect("config"), before, "the mutated frames changed nothing");
}
