//! The blocking client Hearth's command-line tools share: it connects to hearthd's socket,
//! exchanges Hello frames, sends requests and follows tasks. [`cli`] holds what the tools have
//! in common beyond the connection: output formats, tables, task progress, exit codes and the
//! subcommand tables; [`guest`] the commands vmctl and ctctl share, parameterized by guest
//! kind; [`terminal`] the console relay and raw mode of `vmctl terminal`, `ctctl console` and
//! `exec`.
//!
//! **Architecture invariant:** clients never touch `/etc/hearth` or run privileged commands;
//! everything goes through hearthd, which decides who may do what.

pub mod backups;
pub mod cli;
pub mod failure;
pub mod guest;
pub mod password;
pub mod snapshots;
pub mod terminal;

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use hearth_core::Upid;
use hearth_proto::{
    ClientHello, ErrorKind, ErrorReply, FrameError, PROTOCOL_VERSION, Payload, Request, Response, ServerHello,
    TaskEvent, TaskInfo, TaskRequest, read_frame, write_frame,
};

pub use hearth_proto::socket_path;

static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Makes every later connection of this process authenticate as the API token `token`
/// (`user@realm!name=SECRET`).
pub fn use_token(token: &str) {
    let _ = TOKEN.set(token.to_owned());
}

/// The node root clients use: `$HEARTH_ROOT`, or `/`.
pub fn default_root() -> PathBuf {
    std::env::var_os("HEARTH_ROOT").map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to hearthd at {}; is hearthd running?", path.display())]
    Connect { path: PathBuf, source: io::Error },
    #[error("hearthd closed the connection")]
    Closed,
    #[error("talking to hearthd")]
    Frame(#[from] FrameError),
    #[error("hearthd speaks protocol version {server}, this client speaks {PROTOCOL_VERSION}")]
    Version { server: u32 },
    #[error("unexpected answer from hearthd: {0}")]
    Unexpected(String),
    /// hearthd refused or failed the request.
    #[error(transparent)]
    Server(#[from] ErrorReply),
}

impl ClientError {
    /// The server's error kind, if the server answered with an error.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            ClientError::Server(reply) => Some(reply.kind),
            _ => None,
        }
    }
}

/// A connection to hearthd after a successful handshake.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    hello: ServerHello,
}

impl Client {
    /// Connects to the hearthd serving `root` and introduces itself as `software`.
    pub fn connect(root: &Path, software: &str) -> Result<Client, ClientError> {
        let path = socket_path(root);
        let mut stream = UnixStream::connect(&path).map_err(|source| ClientError::Connect { path, source })?;
        // `--token` or `HEARTH_TOKEN=user@realm!name=SECRET` authenticates as an API token.
        let token = TOKEN.get().cloned().or_else(|| std::env::var("HEARTH_TOKEN").ok()).filter(|t| !t.is_empty());
        let hello = ClientHello { protocol_version: PROTOCOL_VERSION, software: software.to_owned(), token };
        if let Err(e) = write_frame(&mut stream, &hello) {
            // hearthd answers a connection over its limits with the reason and closes it without
            // reading the Hello, so the Hello may not go out; the reason is still there to read.
            if let Ok(Some(Response::Error(reply))) = read_frame::<Response>(&mut stream) {
                return Err(ClientError::Server(reply));
            }
            return Err(e.into());
        }
        let reply: Response = match read_frame::<serde_json::Value>(&mut stream)? {
            None => return Err(ClientError::Closed),
            Some(value) => match serde_json::from_value::<ServerHello>(value.clone()) {
                Ok(hello) if hello.protocol_version != PROTOCOL_VERSION => {
                    return Err(ClientError::Version { server: hello.protocol_version });
                }
                Ok(hello) => return Ok(Client { stream, hello }),
                Err(_) => serde_json::from_value(value).map_err(|e| ClientError::Unexpected(e.to_string()))?,
            },
        };
        match reply {
            Response::Error(e) => Err(ClientError::Server(e)),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// What the server said about itself and the caller.
    pub fn hello(&self) -> &ServerHello {
        &self.hello
    }

    /// Sends one request and waits for its answer.
    pub fn call(&mut self, request: &Request) -> Result<Payload, ClientError> {
        write_frame(&mut self.stream, request)?;
        loop {
            match read_frame::<Response>(&mut self.stream)?.ok_or(ClientError::Closed)? {
                Response::Ok(payload) => return Ok(payload),
                Response::Error(e) => return Err(ClientError::Server(e)),
                // Events only belong to Follow; skip any that a newer server sends.
                Response::Event(_) => {}
            }
        }
    }

    /// Sends a request that [carries a file](Request::carries_file), then the file itself, and
    /// waits for the answer. hearthd reads from or writes to the file with the caller's access
    /// to it, never with its own. The descriptor is closed here once sent, so a pipe's end is
    /// held by hearthd alone and closes when hearthd is done with it.
    pub fn call_with_file(&mut self, request: &Request, file: OwnedFd) -> Result<Payload, ClientError> {
        self.send_with_files(request, &[file.as_fd()])?;
        drop(file);
        self.answer()
    }

    /// Like [`Client::call_with_file`] with several descriptors in one message, for requests
    /// that carry more than one (`exec` hands over stdin, stdout and stderr). The caller keeps
    /// its own copies.
    pub fn call_with_files(&mut self, request: &Request, files: &[BorrowedFd<'_>]) -> Result<Payload, ClientError> {
        self.send_with_files(request, files)?;
        self.answer()
    }

    fn send_with_files(&mut self, request: &Request, files: &[BorrowedFd<'_>]) -> Result<(), ClientError> {
        write_frame(&mut self.stream, request)?;
        hearth_sys::fdpass::send_fds(self.stream.as_fd(), files).map_err(|e| ClientError::Frame(FrameError::Io(e)))
    }

    fn answer(&mut self) -> Result<Payload, ClientError> {
        loop {
            match read_frame::<Response>(&mut self.stream)?.ok_or(ClientError::Closed)? {
                Response::Ok(payload) => return Ok(payload),
                Response::Error(e) => return Err(ClientError::Server(e)),
                Response::Event(_) => {}
            }
        }
    }

    /// Sends a request whose answer carries a file (`VmRequest::Terminal`) and returns that
    /// file: a connection to the guest's console, opened by hearthd.
    pub fn call_for_file(&mut self, request: &Request) -> Result<OwnedFd, ClientError> {
        self.call(request)?;
        hearth_sys::fdpass::recv_fd(self.stream.as_fd()).map_err(|e| ClientError::Frame(FrameError::Io(e)))
    }

    /// Follows a task from its first log line to its end, handing every event to `on_event`.
    pub fn follow(&mut self, upid: &Upid, mut on_event: impl FnMut(&TaskEvent)) -> Result<TaskInfo, ClientError> {
        write_frame(&mut self.stream, &Request::Task(TaskRequest::Follow { upid: upid.clone() }))?;
        loop {
            match read_frame::<Response>(&mut self.stream)?.ok_or(ClientError::Closed)? {
                Response::Event(event) => on_event(&event),
                Response::Ok(Payload::TaskStatus(info)) => return Ok(info),
                Response::Ok(other) => return Err(ClientError::Unexpected(format!("{other:?}"))),
                Response::Error(e) => return Err(ClientError::Server(e)),
            }
        }
    }

    /// Sends raw bytes; for tests of the server's frame handling.
    pub fn stream(&mut self) -> &mut UnixStream {
        &mut self.stream
    }
}
