//! A hostile local client, for the tests that check hearthd survives one: the tests run it as
//! an unprivileged user (hearthd identifies peers by their credentials, so the connections must
//! come from a process of that user).
//!
//! `hearth-hostile flood SOCKET KIND:COUNT…` opens connections in the order given — `bare`
//! (connected, nothing sent), `idle` (Hello, then nothing), `trickle` (Hello, then a frame
//! announcing the maximum size whose body arrives one byte every 100 ms) — prints one JSON line
//! saying how many hearthd admitted and refused, keeps trickling until its standard input
//! closes, then prints a second line (how many trickling connections were still open) and
//! exits, closing everything.
//!
//! `hearth-hostile mutate SOCKET COUNT SEED` sends COUNT conversations whose Hello or requests
//! are mutated from valid ones (deterministically, from SEED), one connection each, and prints
//! a JSON line counting how hearthd answered.

use std::collections::BTreeMap;
use std::io::{BufRead, ErrorKind as IoErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_proto::{
    ClientHello, GetConfig, MAX_FRAME, PROTOCOL_VERSION, Request, Response, SetGuest, StorageRequest,
    StorageStatusFilter, TaskFilter, TaskRequest, VmRequest,
};

/// How long any single read waits for hearthd; far more than a local answer takes.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Time between two bytes of a trickling frame.
const TRICKLE_INTERVAL: Duration = Duration::from_millis(100);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("flood") if args.len() >= 3 => flood(Path::new(&args[1]), &args[2..]),
        Some("mutate") if args.len() == 4 => match (args[2].parse(), args[3].parse()) {
            (Ok(count), Ok(seed)) => mutate(Path::new(&args[1]), count, seed),
            _ => Err("COUNT and SEED are numbers".to_owned()),
        },
        _ => Err("usage: hearth-hostile flood SOCKET KIND:COUNT… | mutate SOCKET COUNT SEED".to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("hearth-hostile: {message}");
            ExitCode::FAILURE
        }
    }
}

fn connect(socket: &Path) -> Result<UnixStream, String> {
    let stream = UnixStream::connect(socket).map_err(|e| format!("connecting to {}: {e}", socket.display()))?;
    stream.set_read_timeout(Some(READ_TIMEOUT)).map_err(|e| e.to_string())?;
    Ok(stream)
}

fn hello_frame() -> Vec<u8> {
    hearth_proto::encode(&ClientHello { protocol_version: PROTOCOL_VERSION, software: "hostile".into(), token: None })
        .expect("a Hello encodes")
}

/// What became of one connection as hearthd first answered it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Admitted,
    /// Answered with a `Busy` error: over a limit.
    Refused,
    /// Answered with another error or closed.
    Closed,
}

/// Sends Hello and reads the answer: a ServerHello means admitted.
fn say_hello(stream: &mut UnixStream) -> (Fate, Option<String>) {
    // A refused connection may be closed before the Hello goes out; its answer is still there.
    let _ = stream.write_all(&hello_frame());
    match hearth_proto::read_frame::<serde_json::Value>(stream) {
        Ok(Some(value)) => answer_fate(value),
        _ => (Fate::Closed, None),
    }
}

fn answer_fate(value: serde_json::Value) -> (Fate, Option<String>) {
    match serde_json::from_value::<Response>(value) {
        Ok(Response::Error(e)) if e.kind == hearth_proto::ErrorKind::Busy => (Fate::Refused, Some(e.message)),
        Ok(Response::Error(e)) => (Fate::Closed, Some(e.message)),
        // Not a Response: the ServerHello.
        Err(_) => (Fate::Admitted, None),
        Ok(_) => (Fate::Closed, None),
    }
}

#[derive(Default)]
struct Tally {
    counts: BTreeMap<String, usize>,
    messages: BTreeMap<String, String>,
}

impl Tally {
    fn add(&mut self, kind: &str, fate: Fate, message: Option<String>) {
        let fate = match fate {
            Fate::Admitted => "admitted",
            Fate::Refused => "refused",
            Fate::Closed => "closed",
        };
        *self.counts.entry(format!("{kind}_{fate}")).or_default() += 1;
        if let Some(message) = message {
            self.messages.entry(format!("{kind}_{fate}")).or_insert(message);
        }
    }
}

fn flood(socket: &Path, spec: &[String]) -> Result<(), String> {
    let mut tally = Tally::default();
    let mut bare = Vec::new();
    let mut idle = Vec::new();
    let trickling: Arc<Mutex<Vec<UnixStream>>> = Arc::default();
    let announce = u32::try_from(MAX_FRAME).expect("the maximum frame fits the length prefix").to_be_bytes();
    for item in spec {
        let (kind, count) = item.split_once(':').ok_or_else(|| format!("'{item}' is not KIND:COUNT"))?;
        let count: usize = count.parse().map_err(|_| format!("'{item}': the count is not a number"))?;
        for _ in 0..count {
            let mut stream = connect(socket)?;
            match kind {
                "bare" => bare.push(stream),
                "idle" => {
                    let (fate, message) = say_hello(&mut stream);
                    tally.add("idle", fate, message);
                    idle.push(stream);
                }
                "trickle" => {
                    let (fate, message) = say_hello(&mut stream);
                    tally.add("trickle", fate, message);
                    if fate == Fate::Admitted {
                        stream.write_all(&announce).map_err(|e| format!("announcing a frame: {e}"))?;
                        stream.write_all(b"{").map_err(|e| format!("starting a frame: {e}"))?;
                        trickling.lock().expect("not poisoned").push(stream);
                    } else {
                        idle.push(stream);
                    }
                }
                other => return Err(format!("unknown connection kind '{other}' (bare, idle, trickle)")),
            }
        }
    }
    // Bare connections said nothing, so only a refusal is there to read.
    for stream in &mut bare {
        stream.set_read_timeout(Some(Duration::from_millis(200))).map_err(|e| e.to_string())?;
        match hearth_proto::read_frame::<serde_json::Value>(stream) {
            Ok(Some(value)) => {
                let (fate, message) = answer_fate(value);
                tally.add("bare", fate, message);
            }
            Err(hearth_proto::FrameError::Io(e))
                if matches!(e.kind(), IoErrorKind::WouldBlock | IoErrorKind::TimedOut) =>
            {
                tally.add("bare", Fate::Admitted, None);
            }
            _ => tally.add("bare", Fate::Closed, None),
        }
    }
    println!("{}", serde_json::json!({ "counts": tally.counts, "messages": tally.messages }));
    std::io::stdout().flush().map_err(|e| e.to_string())?;

    let stop = Arc::new(AtomicBool::new(false));
    let trickler = {
        let trickling = Arc::clone(&trickling);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // JSON allows any amount of whitespace: the frame never ends, it only grows.
                trickling.lock().expect("not poisoned").retain_mut(|s| s.write_all(b" ").is_ok());
                std::thread::sleep(TRICKLE_INTERVAL);
            }
        })
    };
    // Wait for the test to finish measuring: it closes our standard input.
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    trickler.join().map_err(|_| "the trickling thread panicked".to_owned())?;
    let still_open = trickling.lock().expect("not poisoned").len();
    println!("{}", serde_json::json!({ "trickling_open": still_open }));
    Ok(())
}

/// A small deterministic generator (xorshift64*), so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).expect("below a usize")
    }
}

/// Valid request payloads to mutate from.
fn seeds() -> Vec<Vec<u8>> {
    let vmid = hearth_core::Vmid::new(100).expect("100 is a VMID");
    let requests = [
        Request::Vm(VmRequest::List),
        Request::Vm(VmRequest::Config(GetConfig { vmid, current: false, snapshot: Some("before".into()) })),
        Request::Vm(VmRequest::Status { vmid, verbose: true }),
        Request::Vm(VmRequest::Set(SetGuest {
            vmid,
            options: vec![("memory".into(), "4096".into()), ("net0".into(), "virtio,bridge=vmbr0".into())],
            delete: vec!["description".into()],
            revert: Vec::new(),
            digest: Some("0123456789abcdef".into()),
        })),
        Request::Task(TaskRequest::List(TaskFilter::default())),
        Request::Storage(StorageRequest::Status(StorageStatusFilter::default())),
    ];
    requests.iter().map(|r| serde_json::to_vec(r).expect("a request encodes")).collect()
}

/// Changes `payload` in one of several ways a broken or hostile client would.
fn mutate_payload(rng: &mut Rng, payload: &mut Vec<u8>) {
    const TOKENS: &[&[u8]] =
        &[b"{", b"}", b"[", b"]", b"\"", b":", b",", b"null", b"-1", b"4294967296", b"1e999", b"\\u0000", b"\xff"];
    let at = rng.below(payload.len() + 1);
    let byte = at.min(payload.len().saturating_sub(1));
    match rng.below(7) {
        0 if !payload.is_empty() => payload[byte] ^= 1 << rng.below(8),
        1 if !payload.is_empty() => payload[byte] = rng.next().to_le_bytes()[0],
        2 => payload.splice(at..at, TOKENS[rng.below(TOKENS.len())].iter().copied()).for_each(drop),
        3 if at < payload.len() => {
            let end = (at + 1 + rng.below(8)).min(payload.len());
            payload.drain(at..end);
        }
        4 => payload.truncate(at),
        5 if at < payload.len() => {
            let end = (at + 1 + rng.below(16)).min(payload.len());
            let copy: Vec<u8> = payload[at..end].to_vec();
            let into = rng.below(payload.len() + 1);
            payload.splice(into..into, copy).for_each(drop);
        }
        _ => {
            let deep = rng.below(64) + 1;
            payload.splice(at..at, std::iter::repeat_n(b'[', deep)).for_each(drop);
        }
    }
}

/// A frame for `payload`, its length prefix sometimes lying.
fn framed(rng: &mut Rng, payload: &[u8]) -> Vec<u8> {
    let true_len = u32::try_from(payload.len()).expect("small payloads");
    let len = match rng.below(10) {
        0 => true_len.saturating_add(1 + u32::try_from(rng.below(100)).expect("small")),
        1 => true_len.saturating_sub(1 + u32::try_from(rng.below(10)).expect("small")),
        2 => u32::MAX - u32::try_from(rng.below(3)).expect("small"),
        _ => true_len,
    };
    let mut frame = len.to_be_bytes().to_vec();
    frame.extend_from_slice(payload);
    frame
}

fn mutate(socket: &Path, count: usize, seed: u64) -> Result<(), String> {
    let mut rng = Rng(seed | 1);
    let seeds = seeds();
    let hello = hello_frame();
    let mut answers: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..count {
        let mut conversation = Vec::new();
        if rng.below(5) == 0 {
            let mut payload = hello[4..].to_vec();
            for _ in 0..=rng.below(3) {
                mutate_payload(&mut rng, &mut payload);
            }
            conversation.extend(framed(&mut rng, &payload));
        } else {
            conversation.extend_from_slice(&hello);
        }
        for _ in 0..=rng.below(2) {
            let mut payload = seeds[rng.below(seeds.len())].clone();
            for _ in 0..=rng.below(4) {
                mutate_payload(&mut rng, &mut payload);
            }
            conversation.extend(framed(&mut rng, &payload));
        }
        let mut stream = connect(socket)?;
        // hearthd may close before reading everything; what it answered is still there to read.
        let _ = stream.write_all(&conversation);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut reply = Vec::new();
        let outcome = match stream.read_to_end(&mut reply) {
            Ok(_) => classify(&reply),
            // A connection closed with unread bytes is reset after its data was read.
            Err(e) if e.kind() == IoErrorKind::ConnectionReset => classify(&reply),
            Err(e) if matches!(e.kind(), IoErrorKind::WouldBlock | IoErrorKind::TimedOut) => "hung".to_owned(),
            Err(e) => return Err(format!("reading hearthd's answer: {e}")),
        };
        *answers.entry(outcome).or_default() += 1;
    }
    println!("{}", serde_json::json!({ "answers": answers }));
    Ok(())
}

/// Names hearthd's last frame on a connection: `hello`, `ok`, or the error kind.
fn classify(mut bytes: &[u8]) -> String {
    let mut last = "nothing".to_owned();
    while let Ok(Some(value)) = hearth_proto::read_frame::<serde_json::Value>(&mut bytes) {
        last = match serde_json::from_value::<Response>(value) {
            Ok(Response::Ok(_)) => "ok".to_owned(),
            Ok(Response::Error(e)) => format!("{:?}", e.kind).to_lowercase(),
            Ok(Response::Event(_)) => "event".to_owned(),
            Err(_) => "hello".to_owned(),
        };
    }
    last
}
