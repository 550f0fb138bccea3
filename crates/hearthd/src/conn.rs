//! One client connection: exchange Hello frames, then answer requests one at a time. A
//! malformed, oversized or too slow frame ends this connection only.
//!
//! Frames are read in chunks into a buffer that grows with what arrived (reserved against the
//! connection's [`Ticket`] first), never allocated to the announced length up front; a frame
//! must be complete within [`ServeLimits::frame_timeout`] of its first byte, the Hello within
//! [`ServeLimits::hello_timeout`] of connecting, and the next request must start within
//! [`ServeLimits::idle_timeout`] of the last answer. Only that wait counts as idle: a request
//! being handled, a task being followed or a console being handed over are never timed out.

use std::sync::Arc;

use hearth_core::{GuestKind, Upid};
use hearth_proto::{
    ClientHello, CtRequest, ErrorKind, ErrorReply, MAX_FRAME, MAX_HELLO_FRAME, PROTOCOL_VERSION, Payload, Request,
    Response, ServerHello, TaskEvent, TaskRequest, VmRequest,
};
use std::os::fd::AsFd;

use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::UnixStream;
use tokio::time::{Duration, Instant};

use crate::Daemon;
use crate::access::{self, Caller};
use crate::admission::{Reservation, ServeLimits, Ticket};

/// A frame buffer's first size; it doubles from there as bytes arrive.
const READ_CHUNK: usize = 64 << 10;

/// How long hearthd tries to deliver its last word (the error that explains why it closes) to a
/// peer that may not be reading.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The peer broke the protocol: answered with a `Protocol` error, then closed.
    #[error("{0}")]
    Protocol(String),
    /// The peer reached a limit: answered with this error, then closed.
    #[error("{}", .0.message)]
    Refused(ErrorReply),
    /// Nothing arrived where the next frame should start.
    #[error("no frame arrived")]
    Idle,
    /// A frame started but did not finish in time.
    #[error("a frame did not arrive in time")]
    Slow,
}

/// A frame's bytes, with the reservation that accounts for them until they are dropped.
struct Frame {
    bytes: Vec<u8>,
    _held: Reservation,
}

/// Reads the next frame of at most `max` bytes. Its first byte must arrive by `first_byte_by`
/// (else [`ConnError::Idle`]), the whole frame by `done_by` or, without one, within the frame
/// timeout of its first byte (else [`ConnError::Slow`]). `Ok(None)` when the peer closed the
/// connection between frames.
async fn read_frame(
    stream: &mut UnixStream,
    ticket: &Ticket,
    max: usize,
    first_byte_by: Instant,
    done_by: Option<Instant>,
) -> Result<Option<Frame>, ConnError> {
    let mut header = [0u8; 4];
    let first = tokio::time::timeout_at(first_byte_by, stream.read(&mut header)).await.map_err(|_| ConnError::Idle)?;
    let got = first?;
    if got == 0 {
        return Ok(None);
    }
    let done_by = done_by.unwrap_or_else(|| Instant::now() + ticket.limits().frame_timeout);
    tokio::time::timeout_at(done_by, read_rest(stream, ticket, max, header, got))
        .await
        .map_err(|_| ConnError::Slow)?
        .map(Some)
}

/// The rest of a frame whose first `got` header bytes are in `header`.
async fn read_rest(
    stream: &mut UnixStream,
    ticket: &Ticket,
    max: usize,
    mut header: [u8; 4],
    got: usize,
) -> Result<Frame, ConnError> {
    let truncated =
        || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed in the middle of a frame");
    let mut got = got;
    while got < header.len() {
        match stream.read(&mut header[got..]).await? {
            0 => return Err(truncated().into()),
            n => got += n,
        }
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(ConnError::Protocol(format!("frame of {len} bytes exceeds the limit of {max} bytes")));
    }
    // `body` is zeroed up to what is reserved; `filled` of it arrived.
    let mut held = ticket.reservation();
    let mut body = Vec::new();
    let mut filled = 0;
    while filled < len {
        if filled == body.len() {
            // Full: double (so a large frame is copied O(log n) times), never past the
            // announced length, and only ever as far as twice what arrived (or one chunk).
            let target = (2 * filled).clamp(READ_CHUNK.min(len), len);
            held.grow(target - body.len()).map_err(ConnError::Refused)?;
            body.reserve_exact(target - body.len());
            body.resize(target, 0);
        }
        match stream.read(&mut body[filled..]).await? {
            0 => return Err(truncated().into()),
            n => filled += n,
        }
    }
    Ok(Frame { bytes: body, _held: held })
}

async fn send<T: serde::Serialize>(stream: &mut UnixStream, msg: &T) -> Result<(), ConnError> {
    let frame = hearth_proto::encode(msg).map_err(|e| ConnError::Protocol(e.to_string()))?;
    stream.write_all(&frame).await?;
    Ok(())
}

/// Answers a connection that was not admitted with `reply` and closes it. The socket is fresh,
/// so the small frame fits its buffer and the write never waits.
pub fn refuse(stream: UnixStream, reply: ErrorReply) {
    if let Ok(frame) = hearth_proto::encode(&Response::Error(reply)) {
        let _ = stream.try_write(&frame);
    }
}

/// Serves one admitted connection of `uid` until the client leaves, breaks the protocol or
/// reaches a limit.
pub async fn serve_connection(daemon: Arc<Daemon>, mut stream: UnixStream, uid: u32, ticket: Ticket) {
    let hello_by = Instant::now() + ticket.limits().hello_timeout;
    let caller = Caller::from_uid(uid);
    let ended = converse(&daemon, &caller, &mut stream, &ticket, hello_by).await;
    let limits = ticket.limits();
    let farewell = match ended {
        Ok(()) => return,
        Err(ConnError::Io(e)) => {
            tracing::debug!(user = %caller.userid, error = %e, "connection ended");
            return;
        }
        Err(ConnError::Idle) => {
            tracing::debug!(user = %caller.userid, "no request for {} s; closing the connection", limits.idle_timeout.as_secs());
            ErrorReply::new(
                ErrorKind::Protocol,
                format!("no request for {} s; hearthd closed the connection", limits.idle_timeout.as_secs()),
            )
        }
        Err(ConnError::Slow) => {
            let message =
                format!("a frame did not arrive within {} s of its first byte", limits.frame_timeout.as_secs());
            tracing::warn!(user = %caller.userid, %message, "closing the connection");
            ErrorReply::new(ErrorKind::Protocol, message)
        }
        Err(ConnError::Protocol(message)) => {
            tracing::warn!(user = %caller.userid, %message, "protocol violation; closing the connection");
            ErrorReply::new(ErrorKind::Protocol, message)
        }
        Err(ConnError::Refused(reply)) => {
            tracing::warn!(user = %caller.userid, message = %reply.message, "over a limit; closing the connection");
            reply
        }
    };
    let _ = tokio::time::timeout(FAREWELL_TIMEOUT, send(&mut stream, &Response::Error(farewell))).await;
}

async fn converse(
    daemon: &Arc<Daemon>,
    peer: &Caller,
    stream: &mut UnixStream,
    ticket: &Ticket,
    hello_by: Instant,
) -> Result<(), ConnError> {
    let limits: &ServeLimits = ticket.limits();
    let hello = match read_frame(stream, ticket, MAX_HELLO_FRAME, hello_by, Some(hello_by)).await {
        Err(ConnError::Idle | ConnError::Slow) => {
            return Err(ConnError::Protocol(format!("no Hello within {} seconds", limits.hello_timeout.as_secs())));
        }
        other => other?,
    };
    let Some(hello) = hello else { return Ok(()) };
    let hello: ClientHello = hearth_proto::decode(&hello.bytes)
        .map_err(|_| ConnError::Protocol("the first frame must be a Hello".into()))?;
    if hello.protocol_version != PROTOCOL_VERSION {
        return Err(ConnError::Protocol(format!(
            "protocol version {} is not supported; this hearthd speaks {PROTOCOL_VERSION}",
            hello.protocol_version
        )));
    }
    let token_caller = match &hello.token {
        Some(token) => match authenticate_token(daemon, peer, token) {
            Some(caller) => Some(caller),
            None => {
                daemon.access.audit(&peer.userid, "presented an invalid API token");
                return Err(ConnError::Protocol("invalid API token (expected user@realm!name=SECRET)".into()));
            }
        },
        None => None,
    };
    let caller = token_caller.as_ref().unwrap_or(peer);
    tracing::debug!(user = %caller.userid, software = %hello.software, "client connected");
    let server = ServerHello {
        protocol_version: PROTOCOL_VERSION,
        software: format!("hearthd {}", env!("CARGO_PKG_VERSION")),
        node: daemon.node.clone(),
        identity: caller.userid.clone(),
    };
    send(stream, &server).await?;

    // Idle is only this wait for the next request; handling, following and streaming are not.
    while let Some(frame) = read_frame(stream, ticket, MAX_FRAME, Instant::now() + limits.idle_timeout, None).await? {
        let mut request: Request = hearth_proto::decode(&frame.bytes)
            .map_err(|e| ConnError::Protocol(format!("malformed request: {}", source_of(&e))))?;
        drop(frame);
        // A storage's file given by its host path is that volume, for the rights too.
        crate::hostpaths::resolve(daemon, &mut request);
        // The attached file travels right behind the frame; take it before anything else so
        // the stream stays in step even when the request is refused.
        let files = match request.carried_files() {
            0 => Vec::new(),
            count => {
                let received = tokio::time::timeout(
                    limits.frame_timeout,
                    stream.async_io(Interest::READABLE, || hearth_sys::fdpass::recv_fds(stream.as_fd(), count)),
                )
                .await
                .map_err(|_| {
                    ConnError::Protocol(format!(
                        "the request's files did not arrive within {} seconds",
                        limits.frame_timeout.as_secs()
                    ))
                })?;
                received
                    .map_err(|e| ConnError::Protocol(format!("cannot receive the request's files: {e}")))?
                    .into_iter()
                    .map(std::fs::File::from)
                    .collect()
            }
        };
        if let Err(e) = access::authorize(&daemon.access, caller, &access::required(&request, &daemon.node, caller)) {
            // The request itself may hold secrets (passwords, keys): log what was refused, not it.
            tracing::warn!(user = %caller.userid, message = %e.message, "denied");
            send(stream, &Response::Error(e)).await?;
            continue;
        }
        let console = match request {
            Request::Vm(VmRequest::Terminal { vmid, serial }) => Some((GuestKind::Vm, vmid, serial)),
            Request::Ct(CtRequest::Console { vmid, tty }) => Some((GuestKind::Ct, vmid, tty.unwrap_or(0))),
            _ => None,
        };
        if let Some((kind, vmid, index)) = console {
            let worker = Arc::clone(daemon);
            let opened = tokio::task::spawn_blocking(move || match kind {
                GuestKind::Vm => crate::vms::open_serial(&worker, vmid, index),
                GuestKind::Ct => crate::containers::open_console(&worker, vmid, index),
            })
            .await
            .unwrap_or_else(|_| Err(ErrorReply::new(ErrorKind::Internal, "opening the console panicked")));
            match opened {
                Ok(console) => {
                    send(stream, &Response::Ok(Payload::Empty)).await?;
                    stream
                        .async_io(Interest::WRITABLE, || hearth_sys::fdpass::send_fd(stream.as_fd(), console.as_fd()))
                        .await?;
                }
                Err(e) => send(stream, &Response::Error(e)).await?,
            }
            continue;
        }
        if let Request::Task(TaskRequest::Follow { upid }) = request {
            follow(daemon, stream, &upid).await?;
            continue;
        }
        let worker = Arc::clone(daemon);
        let who = caller.clone();
        let result =
            tokio::task::spawn_blocking(move || crate::handle(&worker, &who, request, files)).await.unwrap_or_else(
                |_| Err(ErrorReply::new(ErrorKind::Internal, "internal error: the request handler panicked")),
            );
        let reply = match result {
            Ok(payload) => Response::Ok(payload),
            Err(e) => Response::Error(e),
        };
        send(stream, &reply).await?;
    }
    Ok(())
}

/// Checks `user@realm!name=SECRET` against the token's stored digest (constant time) and the
/// model (the token exists, neither it nor its user expired or disabled).
fn authenticate_token(daemon: &Daemon, peer: &Caller, token: &str) -> Option<Caller> {
    let (id, secret) = token.split_once('=')?;
    let tokenid: hearth_core::access::TokenId = id.parse().ok()?;
    let model = daemon.access.model();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let user_active = tokenid.user().is_root() || model.users.get(tokenid.user()).is_some_and(|u| u.is_active(now));
    let valid = model.tokens.get(&tokenid).is_some_and(|t| !t.is_expired(now)) && user_active;
    (valid && crate::verify_token(&daemon.root, &tokenid, secret)).then(|| peer.as_token(tokenid))
}

fn source_of(e: &hearth_proto::FrameError) -> String {
    match e {
        hearth_proto::FrameError::Json(inner) => inner.to_string(),
        other => other.to_string(),
    }
}

/// Streams a task's log and progress, then its final state.
async fn follow(daemon: &Daemon, stream: &mut UnixStream, upid: &Upid) -> Result<(), ConnError> {
    let Some(task) = daemon.tasks.running(upid) else {
        // Already finished (or never existed): replay the log, then the status.
        let reply = match daemon.tasks.log(upid, 0).and_then(|lines| Ok((lines, daemon.tasks.status(upid)?))) {
            Ok((lines, info)) => {
                for line in lines {
                    send(stream, &Response::Event(TaskEvent::Log(line))).await?;
                }
                Response::Ok(Payload::TaskStatus(info))
            }
            Err(e) => Response::Error(e),
        };
        return send(stream, &reply).await;
    };
    let mut changes = task.subscribe();
    let mut sent = 0;
    let mut last_progress = None;
    loop {
        // Read the state before the lines: lines appended before the end are then never missed.
        let info = task.info();
        let progress = task.progress();
        if progress != last_progress {
            if let Some((done, total)) = progress {
                send(stream, &Response::Event(TaskEvent::Progress { done, total })).await?;
            }
            last_progress = progress;
        }
        for line in task.lines_since(sent) {
            sent += 1;
            send(stream, &Response::Event(TaskEvent::Log(line))).await?;
        }
        if !info.state.is_running() {
            return send(stream, &Response::Ok(Payload::TaskStatus(info))).await;
        }
        if changes.changed().await.is_err() {
            return send(stream, &Response::Ok(Payload::TaskStatus(task.info()))).await;
        }
    }
}
