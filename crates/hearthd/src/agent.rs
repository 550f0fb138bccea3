//! The QEMU guest agent of a VM (`vmctl guest cmd|exec|exec-status|passwd`, as `qm guest`):
//! JSON commands over the VM's `<run>/<vmid>.qga` socket, which QEMU joins to the guest's
//! virtio-serial port `org.qemu.guest_agent.0` when the configuration has `agent: 1`.
//!
//! Every exchange starts with `guest-sync` and a fresh id, so an answer left over from an
//! earlier caller that gave up is never taken for this one's.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use hearth_core::{GuestKind, Vmid};
use hearth_proto::{ErrorKind, ErrorReply, Payload};
use serde_json::{Value, json};

use crate::Daemon;

pub use hearth_proto::{AGENT_ACTION_COMMANDS as ACTION_COMMANDS, AGENT_INFO_COMMANDS as INFO_COMMANDS};

/// Commands the agent does not answer when they succeed: the guest goes down instead.
const UNANSWERED: &[&str] = &["shutdown", "suspend-disk", "suspend-hybrid", "suspend-ram"];

/// How long an agent gets to answer `guest-sync`, and most commands.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Freezing and trimming file systems take longer (Proxmox allows an hour for both).
const SLOW_TIMEOUT: Duration = Duration::from_secs(3600);

fn err(kind: ErrorKind, message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(kind, message)
}

/// The VM exists, has its agent enabled and runs.
fn check_agent(daemon: &Daemon, vmid: Vmid) -> Result<(), ErrorReply> {
    let config = daemon.store.load(GuestKind::Vm, vmid)?.config;
    let enabled = config
        .current
        .get("agent")
        .and_then(|v| GuestKind::Vm.schema().property("agent", v))
        .and_then(|p| p.flag("enabled"))
        .unwrap_or(false);
    if !enabled {
        return Err(err(ErrorKind::Invalid, format!("no QEMU guest agent configured for VM {vmid} (set --agent 1)")));
    }
    if !daemon.guest_running(GuestKind::Vm, vmid) {
        return Err(err(ErrorKind::Conflict, format!("VM {vmid} is not running")));
    }
    Ok(())
}

/// One connection to a VM's agent socket.
struct Agent {
    vmid: Vmid,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Agent {
    fn connect(daemon: &Daemon, vmid: Vmid) -> Result<Agent, ErrorReply> {
        let path = daemon.qemu.paths(vmid).qga();
        let stream = UnixStream::connect(&path).map_err(|e| {
            err(
                ErrorKind::Unavailable,
                format!("VM {vmid}: cannot reach the guest agent socket (start the VM with agent: 1): {e}"),
            )
        })?;
        let writer = stream.try_clone().map_err(|e| err(ErrorKind::Internal, e.to_string()))?;
        let mut agent = Agent { vmid, reader: BufReader::new(stream), writer };
        agent.sync()?;
        Ok(agent)
    }

    fn not_running(&self) -> ErrorReply {
        err(ErrorKind::Unavailable, format!("QEMU guest agent is not running in VM {}", self.vmid))
    }

    fn send(&mut self, message: &Value) -> Result<(), ErrorReply> {
        let mut line = message.to_string().into_bytes();
        line.push(b'\n');
        self.writer.set_write_timeout(Some(TIMEOUT)).map_err(|e| err(ErrorKind::Internal, e.to_string()))?;
        self.writer.write_all(&line).map_err(|_| self.not_running())
    }

    /// The next JSON message before `deadline`; `None` when the time is up.
    fn receive(&mut self, deadline: Instant) -> Result<Option<Value>, ErrorReply> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.reader.get_ref().set_read_timeout(Some(left)).map_err(|e| err(ErrorKind::Internal, e.to_string()))?;
            let mut line = Vec::new();
            match self.reader.read_until(b'\n', &mut line) {
                Ok(0) => return Err(self.not_running()),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    return Ok(None);
                }
                Err(_) => return Err(self.not_running()),
            }
            // guest-sync-delimited and a restarting agent may put 0xff bytes before a message.
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_matches(|c: char| c == '\u{fffd}' || c.is_whitespace());
            if text.is_empty() {
                continue;
            }
            if let Ok(value) = serde_json::from_str::<Value>(text) {
                return Ok(Some(value));
            }
        }
    }

    /// `guest-sync` with a fresh id; skips whatever answers of earlier exchanges arrive first.
    fn sync(&mut self) -> Result<(), ErrorReply> {
        let mut id = [0u8; 4];
        getrandom::fill(&mut id).map_err(|e| err(ErrorKind::Internal, e.to_string()))?;
        let id = i64::from(u32::from_le_bytes(id) >> 1);
        self.send(&json!({"execute": "guest-sync", "arguments": {"id": id}}))?;
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.receive(deadline)? {
                None => return Err(self.not_running()),
                Some(answer) if answer.get("return").and_then(Value::as_i64) == Some(id) => return Ok(()),
                Some(_) => continue,
            }
        }
    }

    /// Runs `guest-<command>` and answers its `return`.
    fn execute(&mut self, command: &str, arguments: Option<Value>, timeout: Duration) -> Result<Value, ErrorReply> {
        let mut request = json!({"execute": format!("guest-{command}")});
        if let Some(arguments) = arguments {
            request["arguments"] = arguments;
        }
        self.send(&request)?;
        let Some(answer) = self.receive(Instant::now() + timeout)? else {
            return Err(err(
                ErrorKind::Unavailable,
                format!("VM {}: the guest agent did not answer '{command}' within {} s", self.vmid, timeout.as_secs()),
            ));
        };
        if let Some(error) = answer.get("error") {
            let desc = error.get("desc").and_then(Value::as_str).unwrap_or("unknown error");
            return Err(err(ErrorKind::Invalid, format!("guest agent command '{command}' failed: {desc}")));
        }
        Ok(answer.get("return").cloned().unwrap_or(Value::Null))
    }
}

fn json_text(value: &Value) -> Payload {
    Payload::Text(value.to_string())
}

/// `vmctl guest cmd <vmid> <command>`.
pub fn command(daemon: &Daemon, vmid: Vmid, command: &str) -> Result<Payload, ErrorReply> {
    if !INFO_COMMANDS.contains(&command) && !ACTION_COMMANDS.contains(&command) {
        let mut known: Vec<&str> = INFO_COMMANDS.iter().chain(ACTION_COMMANDS).copied().collect();
        known.sort_unstable();
        return Err(err(
            ErrorKind::Invalid,
            format!("command: unknown guest agent command '{command}'; one of {}", known.join(", ")),
        ));
    }
    check_agent(daemon, vmid)?;
    let mut agent = Agent::connect(daemon, vmid)?;
    if UNANSWERED.contains(&command) {
        agent.send(&json!({"execute": format!("guest-{command}")}))?;
        return Ok(json_text(&Value::Null));
    }
    let timeout =
        if matches!(command, "fsfreeze-freeze" | "fsfreeze-thaw" | "fstrim") { SLOW_TIMEOUT } else { TIMEOUT };
    let answer = agent.execute(command, None, timeout)?;
    Ok(json_text(&answer))
}

/// `vmctl guest exec`: starts the program with its output captured; answers `{"pid": N}`.
pub fn exec(daemon: &Daemon, vmid: Vmid, command: &[String], input: Option<&str>) -> Result<Payload, ErrorReply> {
    let Some((path, args)) = command.split_first() else {
        return Err(err(ErrorKind::Invalid, "command: no program given"));
    };
    check_agent(daemon, vmid)?;
    let mut arguments = json!({"path": path, "arg": args, "capture-output": true});
    if let Some(input) = input {
        arguments["input-data"] = json!(hearth_core::base64::encode(input.as_bytes()));
    }
    let answer = Agent::connect(daemon, vmid)?.execute("exec", Some(arguments), TIMEOUT)?;
    Ok(json_text(&answer))
}

/// `vmctl guest exec-status`: whether the program ended, its exit code and its output,
/// decoded from the agent's base64 as Proxmox prints it.
pub fn exec_status(daemon: &Daemon, vmid: Vmid, pid: i64) -> Result<Payload, ErrorReply> {
    check_agent(daemon, vmid)?;
    let mut answer = Agent::connect(daemon, vmid)?.execute("exec-status", Some(json!({"pid": pid})), TIMEOUT)?;
    if let Some(fields) = answer.as_object_mut() {
        for key in ["out-data", "err-data"] {
            if let Some(coded) = fields.get(key).and_then(Value::as_str)
                && let Some(bytes) = hearth_core::base64::decode(coded)
            {
                fields.insert(key.to_owned(), json!(String::from_utf8_lossy(&bytes)));
            }
        }
        // Proxmox answers exited as 0|1.
        if let Some(exited) = fields.get("exited").and_then(Value::as_bool) {
            fields.insert("exited".to_owned(), json!(u8::from(exited)));
        }
    }
    Ok(json_text(&answer))
}

/// `vmctl guest passwd`: sets a guest user's password (crypt(3) hash with `crypted`).
pub fn passwd(
    daemon: &Daemon,
    vmid: Vmid,
    username: &str,
    password: &str,
    crypted: bool,
) -> Result<Payload, ErrorReply> {
    if username.is_empty() || username.contains(['\0', ':', '\n']) {
        return Err(err(ErrorKind::Invalid, format!("username: '{username}' is not a user name")));
    }
    if password.len() < 5 || password.len() > 1024 {
        return Err(err(ErrorKind::Invalid, "password: must be 5 to 1024 characters long"));
    }
    check_agent(daemon, vmid)?;
    let arguments = json!({
        "username": username,
        "password": hearth_core::base64::encode(password.as_bytes()),
        "crypted": crypted,
    });
    Agent::connect(daemon, vmid)?.execute("set-user-password", Some(arguments), TIMEOUT)?;
    Ok(Payload::Empty)
}
