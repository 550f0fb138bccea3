//! A small blocking client for the QEMU Machine Protocol over a Unix socket: the greeting,
//! `qmp_capabilities`, commands matched to their answers by `id`, asynchronous events kept in a
//! buffer the caller drains, and typed helpers for what hearthd needs.
//!
//! Why not the `qapi` crate (0.15, looked up on docs.rs): it is maintained and offers a
//! blocking client as well as a tokio one, but its typed commands live in `qapi-qmp`, code
//! generated from a vendored copy of one QEMU release's whole schema (thousands of types, a
//! heavy build), while hearthd drives about a dozen commands against whatever QEMU the host has
//! (7.2 on Debian 12, 10.x elsewhere), whose answers gain fields from release to release. Its
//! async half adds tokio, futures and tower-service. The protocol itself is line-delimited JSON
//! with a greeting, so Hearth keeps its own client: untyped [`Qmp::execute`] for everything and
//! small serde structs, tolerant of extra fields, for the answers it reads.
//!
//! One connection serves one caller at a time; QEMU accepts a single client per QMP socket
//! (`server=on` without `wait`), so hearthd holds it for short exchanges and closes it.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// How long a command may take unless changed with [`Qmp::set_timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Events hearthd watches: guest power state and pause/resume.
pub const LIFECYCLE_EVENTS: &[&str] = &["SHUTDOWN", "POWERDOWN", "RESET", "STOP", "RESUME"];

/// What went wrong talking to QEMU.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("cannot connect to QMP socket {}", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("QMP connection failed")]
    Io(#[from] io::Error),
    #[error("no answer from QEMU to {waiting_for} within {timeout:?}")]
    Timeout { waiting_for: String, timeout: Duration },
    #[error("QEMU closed the QMP connection")]
    Closed,
    #[error("unexpected QMP message: {0}")]
    Protocol(String),
    /// QEMU refused a command; `class` is QMP's error class (`GenericError`, `CommandNotFound`,
    /// `DeviceNotFound`, …) and `desc` its explanation.
    #[error("{command} failed: {class}: {desc}")]
    Command { command: String, class: String, desc: String },
}

type Result<T, E = QmpError> = std::result::Result<T, E>;

/// QEMU's version from the greeting.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct QemuVersion {
    pub major: u32,
    pub minor: u32,
    pub micro: u32,
}

/// The greeting QEMU sends on connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Greeting {
    pub version: QemuVersion,
    /// The distribution's package version, e.g. `Debian 1:7.2+dfsg-7+deb12u18`.
    pub package: String,
    pub capabilities: Vec<String>,
}

/// An asynchronous event.
#[derive(Clone, Debug, PartialEq)]
pub struct QmpEvent {
    pub name: String,
    pub data: Value,
    /// Microseconds since the epoch, from QEMU's timestamp.
    pub timestamp_us: i64,
}

/// `query-status`: `prelaunch`, `running`, `paused`, `shutdown`, `inmigrate`, ….
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct VmStatus {
    pub status: String,
    pub running: bool,
}

/// One block backend from `query-block`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct BlockInfo {
    /// Empty for `-blockdev` drives; `qdev` names them.
    pub device: String,
    #[serde(default)]
    pub qdev: Option<String>,
    pub removable: bool,
    pub locked: bool,
    #[serde(default)]
    pub tray_open: Option<bool>,
    /// Absent for an empty CD-ROM.
    #[serde(default)]
    pub inserted: Option<BlockInserted>,
}

/// The medium of a block backend.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockInserted {
    pub file: String,
    #[serde(default)]
    pub node_name: Option<String>,
    pub ro: bool,
    pub drv: String,
    #[serde(default)]
    pub image: Option<ImageInfo>,
}

/// The image below a medium.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImageInfo {
    pub filename: String,
    pub format: String,
    pub virtual_size: u64,
    #[serde(default)]
    pub snapshots: Vec<ImageSnapshot>,
}

/// An internal snapshot of a qcow2 image.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImageSnapshot {
    pub id: String,
    pub name: String,
    pub vm_state_size: u64,
    pub date_sec: i64,
}

/// I/O counters of one block backend from `query-blockstats`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockStats {
    #[serde(default)]
    pub device: String,
    #[serde(default)]
    pub qdev: Option<String>,
    #[serde(default)]
    pub node_name: Option<String>,
    pub stats: BlockCounters,
}

/// Byte and operation counters.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct BlockCounters {
    pub rd_bytes: u64,
    pub wr_bytes: u64,
    pub rd_operations: u64,
    pub wr_operations: u64,
    pub flush_operations: u64,
    #[serde(default)]
    pub unmap_bytes: u64,
}

/// One vCPU from `query-cpus-fast`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CpuInfo {
    pub cpu_index: u32,
    pub qom_path: String,
    /// The host thread running the vCPU.
    pub thread_id: i64,
    pub target: String,
}

/// A negotiated QMP connection.
#[derive(Debug)]
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    greeting: Greeting,
    events: VecDeque<QmpEvent>,
    next_id: u64,
    timeout: Duration,
    /// A line read in part before a timeout; the rest follows on the next read.
    partial: Vec<u8>,
}

impl Qmp {
    /// Connects, reads the greeting and leaves capabilities negotiation mode.
    pub fn connect(path: &Path) -> Result<Qmp> {
        Qmp::connect_with_timeout(path, DEFAULT_TIMEOUT)
    }

    pub fn connect_with_timeout(path: &Path, timeout: Duration) -> Result<Qmp> {
        let stream = UnixStream::connect(path).map_err(|source| QmpError::Connect { path: path.to_owned(), source })?;
        let writer = stream.try_clone()?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
            greeting: Greeting {
                version: QemuVersion { major: 0, minor: 0, micro: 0 },
                package: String::new(),
                capabilities: vec![],
            },
            events: VecDeque::new(),
            next_id: 1,
            timeout,
            partial: Vec::new(),
        };
        qmp.set_timeout(timeout)?;
        let message = qmp.read_message("the QMP greeting", Instant::now() + timeout)?;
        qmp.greeting = parse_greeting(&message)?;
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    pub fn greeting(&self) -> &Greeting {
        &self.greeting
    }

    /// How long to wait for each answer.
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<()> {
        self.timeout = timeout;
        self.writer.set_write_timeout(Some(timeout))?;
        Ok(())
    }

    /// Runs a command and answers its `return` value. Events that arrive meanwhile are kept
    /// for [`Qmp::take_events`].
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let mut request = json!({ "execute": command, "id": id });
        if let Some(arguments) = arguments {
            request["arguments"] = arguments;
        }
        let mut line = serde_json::to_vec(&request).map_err(|e| QmpError::Protocol(e.to_string()))?;
        line.push(b'\n');
        self.writer.write_all(&line).map_err(|e| self.io_error(e, command))?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let mut message = self.read_message(command, deadline)?;
            if message.get("id").and_then(Value::as_u64) != Some(id) {
                // An answer to a command that timed out earlier: nobody waits for it any more.
                continue;
            }
            if let Some(ret) = message.get_mut("return") {
                return Ok(ret.take());
            }
            if let Some(error) = message.get("error") {
                let text = |k: &str| error.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
                return Err(QmpError::Command {
                    command: command.to_owned(),
                    class: text("class"),
                    desc: text("desc"),
                });
            }
            return Err(QmpError::Protocol(format!("answer to {command} has neither return nor error: {message}")));
        }
    }

    /// [`Qmp::execute`] with the answer deserialised.
    pub fn execute_as<T: DeserializeOwned>(&mut self, command: &str, arguments: Option<Value>) -> Result<T> {
        let value = self.execute(command, arguments)?;
        serde_json::from_value(value).map_err(|e| QmpError::Protocol(format!("answer to {command}: {e}")))
    }

    /// The events received so far, oldest first; the buffer is emptied.
    pub fn take_events(&mut self) -> Vec<QmpEvent> {
        self.events.drain(..).collect()
    }

    /// Waits for the event `name` (taking it from the buffer if it already came); other
    /// events stay buffered.
    pub fn wait_event(&mut self, name: &str, timeout: Duration) -> Result<QmpEvent> {
        let deadline = Instant::now() + timeout;
        let mut seen = 0;
        loop {
            if let Some(pos) = self.events.iter().skip(seen).position(|e| e.name == name) {
                return self.events.remove(seen + pos).ok_or(QmpError::Closed);
            }
            seen = self.events.len();
            // Answers to commands that timed out earlier are dropped here too.
            self.read_message(&format!("event {name}"), deadline)?;
        }
    }

    pub fn query_status(&mut self) -> Result<VmStatus> {
        self.execute_as("query-status", None)
    }

    /// Asks the guest to power off (ACPI), like pressing the power button.
    pub fn system_powerdown(&mut self) -> Result<()> {
        self.execute("system_powerdown", None).map(drop)
    }

    /// Resets the machine at once.
    pub fn system_reset(&mut self) -> Result<()> {
        self.execute("system_reset", None).map(drop)
    }

    /// Pauses the vCPUs.
    pub fn stop(&mut self) -> Result<()> {
        self.execute("stop", None).map(drop)
    }

    /// Starts or resumes the vCPUs (also after `-S`).
    pub fn cont(&mut self) -> Result<()> {
        self.execute("cont", None).map(drop)
    }

    /// Ends QEMU at once. QEMU may close the connection before its answer arrives; that counts
    /// as success.
    pub fn quit(&mut self) -> Result<()> {
        match self.execute("quit", None) {
            Ok(_) | Err(QmpError::Closed) => Ok(()),
            Err(QmpError::Io(e)) if e.kind() == io::ErrorKind::ConnectionReset => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub fn query_block(&mut self) -> Result<Vec<BlockInfo>> {
        self.execute_as("query-block", None)
    }

    pub fn query_blockstats(&mut self) -> Result<Vec<BlockStats>> {
        self.execute_as("query-blockstats", None)
    }

    pub fn query_cpus_fast(&mut self) -> Result<Vec<CpuInfo>> {
        self.execute_as("query-cpus-fast", None)
    }

    /// Runs a human monitor command (`info version`, `info block`) and answers its output,
    /// for `vmctl monitor`.
    pub fn human_monitor_command(&mut self, command_line: &str) -> Result<String> {
        self.execute_as("human-monitor-command", Some(json!({ "command-line": command_line })))
    }

    /// Sets a NIC's link state (`link_down=1`), by its device id (`net0`).
    pub fn set_link(&mut self, name: &str, up: bool) -> Result<()> {
        self.execute("set_link", Some(json!({ "name": name, "up": up }))).map(drop)
    }

    /// Takes an internal (qcow2) snapshot of one block node, e.g. `drive-scsi0`.
    pub fn blockdev_snapshot_internal_sync(&mut self, node: &str, name: &str) -> Result<()> {
        self.execute("blockdev-snapshot-internal-sync", Some(json!({ "device": node, "name": name }))).map(drop)
    }

    /// Deletes an internal snapshot of one block node.
    pub fn blockdev_snapshot_delete_internal_sync(&mut self, node: &str, name: &str) -> Result<()> {
        self.execute("blockdev-snapshot-delete-internal-sync", Some(json!({ "device": node, "name": name }))).map(drop)
    }

    fn io_error(&self, e: io::Error, waiting_for: &str) -> QmpError {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                QmpError::Timeout { waiting_for: waiting_for.to_owned(), timeout: self.timeout }
            }
            io::ErrorKind::BrokenPipe => QmpError::Closed,
            _ => QmpError::Io(e),
        }
    }

    /// Reads one message; events are buffered and also returned, so callers that wait for a
    /// command's answer skip them.
    fn read_message(&mut self, waiting_for: &str, deadline: Instant) -> Result<Value> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(QmpError::Timeout { waiting_for: waiting_for.to_owned(), timeout: self.timeout });
            }
            self.reader.get_ref().set_read_timeout(Some(left))?;
            match self.reader.read_until(b'\n', &mut self.partial) {
                Ok(0) => return Err(QmpError::Closed),
                Ok(_) if !self.partial.ends_with(b"\n") => return Err(QmpError::Closed),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_error(e, waiting_for)),
            }
            let line = std::mem::take(&mut self.partial);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let message: Value = serde_json::from_slice(&line)
                .map_err(|e| QmpError::Protocol(format!("{e}: {}", String::from_utf8_lossy(&line).trim_end())))?;
            if let Some(name) = message.get("event").and_then(Value::as_str) {
                let time = |k: &str| message.pointer(&format!("/timestamp/{k}")).and_then(Value::as_i64).unwrap_or(0);
                let event = QmpEvent {
                    name: name.to_owned(),
                    data: message.get("data").cloned().unwrap_or(Value::Null),
                    timestamp_us: time("seconds") * 1_000_000 + time("microseconds"),
                };
                self.events.push_back(event);
            }
            return Ok(message);
        }
    }
}

fn parse_greeting(message: &Value) -> Result<Greeting> {
    let bad = || QmpError::Protocol(format!("expected the QMP greeting, got {message}"));
    let qmp = message.get("QMP").ok_or_else(bad)?;
    let version: QemuVersion =
        serde_json::from_value(qmp.pointer("/version/qemu").cloned().ok_or_else(bad)?).map_err(|_| bad())?;
    let package = qmp.pointer("/version/package").and_then(Value::as_str).unwrap_or_default().trim().to_owned();
    let capabilities = qmp
        .get("capabilities")
        .and_then(Value::as_array)
        .map(|caps| caps.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    Ok(Greeting { version, package, capabilities })
}

#[cfg(test)]
mod tests;
