//! Running containers: hearthd side of hearth-ct. Each running container has a hearth-ctmon
//! process that outlives hearthd; its state lives under `run/hearth/lxc/<ctid>`.

use std::fs::File;
use std::sync::Arc;

use hearth_core::Vmid;
use hearth_proto::{ErrorKind, ErrorReply, ExecInCt, Payload};

use crate::{Caller, Daemon};

fn unavailable() -> ErrorReply {
    ErrorReply::new(ErrorKind::Unavailable, "containers cannot run on this node yet")
}

pub fn start(_daemon: &Arc<Daemon>, _caller: &Caller, _vmid: Vmid) -> Result<Payload, ErrorReply> {
    Err(unavailable())
}
pub fn stop(_daemon: &Arc<Daemon>, _caller: &Caller, _vmid: Vmid) -> Result<Payload, ErrorReply> {
    Err(unavailable())
}
pub fn shutdown(
    _daemon: &Arc<Daemon>,
    _caller: &Caller,
    _vmid: Vmid,
    _timeout: Option<u64>,
    _force: bool,
) -> Result<Payload, ErrorReply> {
    Err(unavailable())
}
pub fn reboot(
    _daemon: &Arc<Daemon>,
    _caller: &Caller,
    _vmid: Vmid,
    _timeout: Option<u64>,
) -> Result<Payload, ErrorReply> {
    Err(unavailable())
}
pub fn status(_daemon: &Daemon, _vmid: Vmid, _verbose: bool) -> Result<Payload, ErrorReply> {
    Err(unavailable())
}
pub fn exec(_daemon: &Daemon, _req: ExecInCt, _stdio: [File; 3]) -> Result<Payload, ErrorReply> {
    Err(unavailable())
}
pub fn push(
    _daemon: &Daemon,
    _vmid: Vmid,
    _path: &str,
    _user: Option<String>,
    _group: Option<String>,
    _perms: Option<String>,
    _file: File,
) -> Result<Payload, ErrorReply> {
    Err(unavailable())
}
pub fn pull(_daemon: &Daemon, _vmid: Vmid, _path: &str, _file: File) -> Result<Payload, ErrorReply> {
    Err(unavailable())
}
pub fn mount(_daemon: &Daemon, _caller: &Caller, _vmid: Vmid) -> Result<Payload, ErrorReply> {
    Err(unavailable())
}
pub fn unmount(_daemon: &Daemon, _caller: &Caller, _vmid: Vmid) -> Result<Payload, ErrorReply> {
    Err(unavailable())
}
pub fn df(_daemon: &Daemon, _vmid: Vmid) -> Result<Payload, ErrorReply> {
    Err(unavailable())
}
pub fn open_console(_daemon: &Daemon, _vmid: Vmid, _tty: u32) -> Result<std::os::unix::net::UnixStream, ErrorReply> {
    Err(unavailable())
}
