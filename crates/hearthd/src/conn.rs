//! One client connection: identify the peer, exchange Hello frames, then answer requests one
//! at a time. A malformed or oversized frame ends this connection only.

use std::sync::Arc;
use std::time::Duration;

use hearth_core::{GuestKind, Upid};
use hearth_proto::{
    ClientHello, CtRequest, ErrorKind, ErrorReply, MAX_FRAME, PROTOCOL_VERSION, Payload, Request, Response,
    ServerHello, TaskEvent, TaskRequest, VmRequest,
};
use std::os::fd::AsFd;

use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::UnixStream;

use crate::Daemon;
use crate::access::{self, Caller};

/// How long a client may take to say Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Protocol(String),
}

async fn read_frame(stream: &mut UnixStream) -> Result<Option<Vec<u8>>, ConnError> {
    let mut header = [0u8; 4];
    match stream.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(ConnError::Protocol(format!("frame of {len} bytes exceeds the limit of {MAX_FRAME} bytes")));
    }
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await?;
    Ok(Some(payload))
}

async fn send<T: serde::Serialize>(stream: &mut UnixStream, msg: &T) -> Result<(), ConnError> {
    let frame = hearth_proto::encode(msg).map_err(|e| ConnError::Protocol(e.to_string()))?;
    stream.write_all(&frame).await?;
    Ok(())
}

/// Serves one connection until the client leaves or breaks the protocol.
pub async fn serve_connection(daemon: Arc<Daemon>, mut stream: UnixStream) {
    let caller = match stream.peer_cred() {
        Ok(cred) => Caller::from_uid(cred.uid()),
        Err(e) => {
            tracing::warn!(error = %e, "cannot identify the peer; closing");
            return;
        }
    };
    match converse(&daemon, &caller, &mut stream).await {
        Ok(()) => {}
        Err(ConnError::Protocol(message)) => {
            tracing::warn!(user = %caller.userid, %message, "protocol violation; closing the connection");
            let reply = Response::Error(ErrorReply::new(ErrorKind::Protocol, message));
            let _ = send(&mut stream, &reply).await;
        }
        Err(ConnError::Io(e)) => tracing::debug!(user = %caller.userid, error = %e, "connection ended"),
    }
}

async fn converse(daemon: &Arc<Daemon>, peer: &Caller, stream: &mut UnixStream) -> Result<(), ConnError> {
    let hello = tokio::time::timeout(HELLO_TIMEOUT, read_frame(stream))
        .await
        .map_err(|_| ConnError::Protocol("no Hello within 10 seconds".into()))??;
    let Some(hello) = hello else { return Ok(()) };
    let hello: ClientHello =
        hearth_proto::decode(&hello).map_err(|_| ConnError::Protocol("the first frame must be a Hello".into()))?;
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

    while let Some(frame) = read_frame(stream).await? {
        let request: Request = hearth_proto::decode(&frame)
            .map_err(|e| ConnError::Protocol(format!("malformed request: {}", source_of(&e))))?;
        // The attached file travels right behind the frame; take it before anything else so
        // the stream stays in step even when the request is refused.
        let files = match request.carried_files() {
            0 => Vec::new(),
            count => {
                let received = tokio::time::timeout(
                    HELLO_TIMEOUT,
                    stream.async_io(Interest::READABLE, || hearth_sys::fdpass::recv_fds(stream.as_fd(), count)),
                )
                .await
                .map_err(|_| ConnError::Protocol("the request's files did not arrive within 10 seconds".into()))?;
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
