//! What only VMs have, over the QEMU engine (hearth-qemu): their status report, the human
//! monitor, the serial console and `showcmd`. Starting, stopping and the rest of the lifecycle
//! are engine-agnostic and live in `lifecycle`.

use hearth_core::runtime::StartOptions;
use hearth_core::{GuestKind, Value, Vmid};
use hearth_proto::{ErrorKind, ErrorReply, Payload, VmStatusReport};

use crate::Daemon;
use crate::lifecycle::{resolve, runtime_reply};

fn err(kind: ErrorKind, message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(kind, message)
}

/// `vmctl showcmd`: the command line a start would run, one line or one option per line
/// (root only, by the table: it shows host paths).
pub fn show_command(daemon: &Daemon, vmid: Vmid, pretty: bool) -> Result<Payload, ErrorReply> {
    let config = daemon.store.load(GuestKind::Vm, vmid)?.config;
    let resources = resolve(daemon, vmid, &config).map_err(|e| err(ErrorKind::Invalid, e.message))?;
    let launch = daemon
        .runtime(GuestKind::Vm)
        .prepare(resources, &StartOptions::default())
        .map_err(|e| err(ErrorKind::Invalid, e.message))?;
    Ok(Payload::Text(launch.describe(pretty)))
}

fn require_running(daemon: &Daemon, vmid: Vmid) -> Result<(), ErrorReply> {
    if daemon.guest_running(GuestKind::Vm, vmid) {
        Ok(())
    } else {
        Err(runtime_reply(hearth_core::runtime::RuntimeError::not_running(GuestKind::Vm, vmid)))
    }
}

pub fn status(daemon: &Daemon, vmid: Vmid, verbose: bool) -> Result<Payload, ErrorReply> {
    let loaded = daemon.store.load(GuestKind::Vm, vmid)?;
    let config = &loaded.config.current;
    let mut report = VmStatusReport {
        vmid,
        status: "stopped".into(),
        name: config.get("name").and_then(Value::as_str).map(str::to_owned),
        lock: loaded.config.lock.map(|l| l.as_str().to_owned()),
        maxmem: config.get("memory").and_then(Value::as_int).map_or(512, |m| m.max(0) as u64) << 20,
        cpus: (config.get("sockets").and_then(Value::as_int).unwrap_or(1)
            * config.get("cores").and_then(Value::as_int).unwrap_or(1))
        .max(1) as u64,
        qmpstatus: None,
        pid: None,
        uptime: None,
        mem: None,
        diskread: 0,
        diskwrite: 0,
        netin: 0,
        netout: 0,
    };
    let run = daemon.runtime(GuestKind::Vm).status(vmid, verbose);
    if let Some(pid) = run.pid {
        report.status = "running".into();
        report.pid = Some(pid);
        report.uptime = run.uptime;
        report.qmpstatus = run.state;
        report.mem = run.mem;
        report.diskread = run.diskread;
        report.diskwrite = run.diskwrite;
        report.netin = run.netin;
        report.netout = run.netout;
    }
    Ok(Payload::VmStatus(report))
}

/// Runs a human-monitor command (root only, as qm monitor, by the table).
pub fn monitor(daemon: &Daemon, vmid: Vmid, command: &str) -> Result<Payload, ErrorReply> {
    daemon.store.load(GuestKind::Vm, vmid)?;
    require_running(daemon, vmid)?;
    let mut qmp = daemon.qemu.qmp(vmid).map_err(runtime_reply)?;
    let output = qmp
        .human_monitor_command(command)
        .map_err(|e| err(ErrorKind::Invalid, format!("monitor command failed: {e}")))?;
    Ok(Payload::Text(output))
}

/// Connects to the VM's serial console for `vmctl terminal`; the connection is handed to the
/// caller.
pub fn open_serial(daemon: &Daemon, vmid: Vmid, index: u32) -> Result<std::os::unix::net::UnixStream, ErrorReply> {
    let loaded = daemon.store.load(GuestKind::Vm, vmid)?;
    let key = format!("serial{index}");
    if loaded.config.current.get(&key).and_then(Value::as_str) != Some("socket") {
        return Err(err(
            ErrorKind::Invalid,
            format!("VM {vmid} has no {key}: socket (set it with: vmctl set {vmid} --{key} socket)"),
        ));
    }
    require_running(daemon, vmid)?;
    std::os::unix::net::UnixStream::connect(daemon.qemu.paths(vmid).serial(index))
        .map_err(|e| err(ErrorKind::Unavailable, format!("cannot open {key} of VM {vmid}: {e}")))
}
