//! Starting, stopping, shutting down, rebooting, pausing and resuming guests, whatever engine
//! runs them: these handlers load and check a guest's configuration once, resolve its volumes
//! through the storages, and hand the result to the engine behind
//! [`GuestRuntime`](hearth_core::runtime::GuestRuntime) (hearth-qemu for VMs, hearth-ct for
//! containers). They run the long operations as tasks under the guest's operation lock.
//!
//! **Invariants:** nothing here names an engine. A start loads the configuration exactly once;
//! the engine gets it with every volume resolved and never reads a file of its own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hearth_core::runtime::{Launch, ResolvedVolume, Resources, RuntimeError, RuntimeErrorKind, StartOptions};
use hearth_core::storage::{Format, VolName};
use hearth_core::{GuestConfig, GuestKind, Value, Vmid};
use hearth_proto::{ErrorKind, ErrorReply, Payload};

use crate::hookscript::{self, Phase};
use crate::storage::to_reply;
use crate::{Caller, Daemon};

fn err(kind: ErrorKind, message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(kind, message)
}

/// A runtime failure as the protocol reports it.
pub(crate) fn runtime_reply(e: RuntimeError) -> ErrorReply {
    let kind = match e.kind {
        RuntimeErrorKind::NotRunning | RuntimeErrorKind::AlreadyRunning => ErrorKind::Conflict,
        RuntimeErrorKind::Invalid => ErrorKind::Invalid,
        RuntimeErrorKind::Unavailable => ErrorKind::Unavailable,
        RuntimeErrorKind::TimedOut | RuntimeErrorKind::Failed => ErrorKind::Internal,
    };
    err(kind, e.message)
}

/// One volume of a guest resolved through its storage; `None` for what needs nothing (an empty
/// CD-ROM `none`, the host's `cdrom`). A volume must exist and belong to this guest (or be a
/// base image, an ISO, a file).
pub(crate) fn resolve_volume(
    daemon: &Daemon,
    vmid: Vmid,
    key: &str,
    volume: &str,
) -> Result<Option<ResolvedVolume>, ErrorReply> {
    if volume == "none" || volume == "cdrom" {
        return Ok(None);
    }
    if volume.starts_with('/') {
        return Ok(Some(ResolvedVolume::HostPath(volume.into())));
    }
    let (backend, vol) = daemon.storages.volume(volume).map_err(|e| err(e.kind, format!("{key}: {}", e.message)))?;
    if let VolName::Image { image, .. } = &vol
        && image.vmid != vmid
    {
        return Err(err(
            ErrorKind::Invalid,
            format!("{key}: volume '{volume}' belongs to guest {}, not {vmid}", image.vmid),
        ));
    }
    let path = backend.path(&vol).map_err(to_reply)?;
    let meta = std::fs::metadata(&path)
        .map_err(|_| err(ErrorKind::NotFound, format!("{key}: volume '{volume}' does not exist")))?;
    if meta.is_dir() {
        return Ok(Some(ResolvedVolume::Storage { path, format: Format::Subvol, directory: true }));
    }
    let format = match &vol {
        VolName::Image { .. } => backend.image_info(&vol).map_err(to_reply)?.0,
        VolName::File { .. } => Format::Raw,
    };
    Ok(Some(ResolvedVolume::Storage { path, format, directory: false }))
}

/// The guest's current settings with every volume they name resolved.
pub(crate) fn resolve(daemon: &Daemon, vmid: Vmid, config: &GuestConfig) -> Result<Resources, ErrorReply> {
    let schema = config.kind.schema();
    let mut volumes = BTreeMap::new();
    for (key, value) in &config.current {
        if key.starts_with("unused") {
            continue;
        }
        let Some(props) = schema.property(key, value) else { continue };
        let Some(volume) = props.get("file").or_else(|| props.get("volume")) else { continue };
        if let Some(resolved) = resolve_volume(daemon, vmid, key, volume)? {
            volumes.insert(key.clone(), resolved);
        }
    }
    Ok(Resources { vmid, config: config.current.clone(), volumes })
}

/// Refuses a start the configuration or the guest's state forbids; `resuming` allows the
/// `suspended` lock of a VM suspended to disk.
fn check_startable(
    daemon: &Daemon,
    kind: GuestKind,
    vmid: Vmid,
    config: &GuestConfig,
    resuming: bool,
) -> Result<(), ErrorReply> {
    let noun = kind.noun();
    if let Some(lock) = config.lock.filter(|_| !resuming) {
        return Err(err(ErrorKind::Locked, format!("{noun} {vmid} is locked ({lock})")));
    }
    if config.current.get("template") == Some(&Value::Bool(true)) {
        return Err(err(
            ErrorKind::Invalid,
            format!("{noun} {vmid} is a template and cannot be started; clone it first"),
        ));
    }
    if daemon.runtime(kind).running(vmid) {
        return Err(runtime_reply(RuntimeError::already_running(kind, vmid)));
    }
    Ok(())
}

/// A start the engine has built, and the guest's hook script (from the same configuration).
pub(crate) struct Prepared {
    launch: Box<dyn Launch>,
    hookscript: Option<String>,
    /// The settings the start was built from: the cloud-init drive is written from them.
    settings: hearth_core::guest::Section,
    /// The VM resumes from a state suspended to disk.
    resuming: bool,
}

/// Loads the guest's configuration (once), checks that it may start, resolves its volumes and
/// lets the engine build the start. Answers the settings it was built from too, which the
/// cloud-init drive is written from, and whether it resumes a VM suspended to disk.
pub(crate) fn prepare(
    daemon: &Daemon,
    kind: GuestKind,
    vmid: Vmid,
    options: &StartOptions,
) -> Result<Prepared, ErrorReply> {
    let config = daemon.store.load(kind, vmid)?.config;
    let saved = crate::vms::saved_state(daemon, kind, vmid, &config)?;
    check_startable(daemon, kind, vmid, &config, saved.is_some())?;
    // Apply pending changes: a start runs the configuration with them.
    let config = crate::pending::apply_at_start(daemon, kind, vmid, config, &|line| tracing::info!(%vmid, "{line}"))?;
    crate::sdn::guest_starting(daemon, kind, vmid, &config.current)?;
    let resources = resolve(daemon, vmid, &config)?;
    let hookscript = config.current.get("hookscript").and_then(Value::as_str).map(str::to_owned);
    let resuming = saved.is_some();
    let options = StartOptions { incoming: saved, ..options.clone() };
    let launch = daemon.runtime(kind).prepare(resources, &options).map_err(runtime_reply)?;
    Ok(Prepared { launch, hookscript, settings: config.current, resuming })
}

/// Runs a prepared start; the caller holds the guest's operation lock.
fn launch(daemon: &Daemon, kind: GuestKind, prepared: Prepared, log: &dyn Fn(String)) -> Result<u32, String> {
    let Prepared { launch, hookscript: hook, settings, resuming } = prepared;
    let vmid = launch.vmid();
    for warning in launch.warnings() {
        log(format!("WARN: {warning}"));
    }
    // The hook script: pre-start may refuse the start, post-start only warns.
    if let Some(script) = &hook {
        hookscript::run(daemon, script, vmid, Phase::PreStart, log)?;
    }
    regenerate_cloudinit(daemon, kind, vmid, &settings, log)?;
    let pid = launch.run(log)?;
    crate::sdn::guest_started(daemon, kind, vmid, &settings, log);
    if resuming {
        crate::vms::forget_saved_state(daemon, kind, vmid, log);
    }
    log(format!("{} {vmid} started (pid {pid})", kind.noun()));
    hookscript::run_or_warn(daemon, hook.as_deref(), vmid, Phase::PostStart, log);
    Ok(pid)
}

/// Starts a stopped guest from today's configuration; the caller holds its operation lock.
pub(crate) fn start_locked(
    daemon: &Daemon,
    kind: GuestKind,
    vmid: Vmid,
    options: &StartOptions,
    log: &dyn Fn(String),
) -> Result<u32, String> {
    let prepared = prepare(daemon, kind, vmid, options).map_err(|e| e.message)?;
    launch(daemon, kind, prepared, log)
}

/// Writes a VM's cloud-init drive afresh from its configuration, as every start does; the
/// caller holds the guest's operation lock.
fn regenerate_cloudinit(
    daemon: &Daemon,
    kind: GuestKind,
    vmid: Vmid,
    settings: &hearth_core::guest::Section,
    log: &dyn Fn(String),
) -> Result<(), String> {
    if kind != GuestKind::Vm {
        return Ok(());
    }
    crate::cloudinit::regenerate(daemon, vmid, settings, log).map(|_| ())
}

/// [`start_locked`], taking the operation lock.
pub(crate) fn start_now(
    daemon: &Daemon,
    kind: GuestKind,
    vmid: Vmid,
    options: &StartOptions,
    log: &dyn Fn(String),
) -> Result<u32, String> {
    let lock = daemon.run_lock(kind, vmid);
    let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
    start_locked(daemon, kind, vmid, options, log)
}

/// `start`: refuses at once what cannot start, then starts the guest in a task.
pub fn start(
    daemon: &Arc<Daemon>,
    caller: &Caller,
    kind: GuestKind,
    vmid: Vmid,
    options: StartOptions,
) -> Result<Payload, ErrorReply> {
    let prepared = prepare(daemon, kind, vmid, &options)?;
    let worker = Arc::clone(daemon);
    let upid = daemon.tasks.spawn(&kind.task_type("start"), &vmid.to_string(), &caller.userid, move |ctx| {
        if options.debug {
            ctx.log(format!("DEBUG: starting {} {vmid} with:", kind.noun()));
            for line in prepared.launch.describe(true).lines() {
                ctx.log(format!("DEBUG: {line}"));
            }
        }
        let lock = worker.run_lock(kind, vmid);
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        launch(&worker, kind, prepared, &|line| ctx.log(line)).map(|_| ())
    })?;
    Ok(Payload::Task(upid))
}

/// Runs a task on a running guest, holding its operation lock.
fn on_running(
    daemon: &Arc<Daemon>,
    caller: &Caller,
    kind: GuestKind,
    vmid: Vmid,
    operation: &str,
    work: impl FnOnce(&Daemon, &dyn Fn(String)) -> Result<(), String> + Send + 'static,
) -> Result<Payload, ErrorReply> {
    daemon.store.load(kind, vmid)?;
    if !daemon.runtime(kind).running(vmid) {
        return Err(runtime_reply(RuntimeError::not_running(kind, vmid)));
    }
    let worker = Arc::clone(daemon);
    let upid = daemon.tasks.spawn(&kind.task_type(operation), &vmid.to_string(), &caller.userid, move |ctx| {
        let lock = worker.run_lock(kind, vmid);
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        if !worker.runtime(kind).running(vmid) {
            return Err(RuntimeError::not_running(kind, vmid).message);
        }
        work(&worker, &|line| ctx.log(line))?;
        // A task asked to stop meanwhile (a shutdown overruled by a stop) ends as interrupted.
        ctx.check_stop()
    })?;
    Ok(Payload::Task(upid))
}

pub fn stop(daemon: &Arc<Daemon>, caller: &Caller, kind: GuestKind, vmid: Vmid) -> Result<Payload, ErrorReply> {
    on_running(daemon, caller, kind, vmid, "stop", move |d, log| stop_now(d, kind, vmid, log))
}

/// Runs `power_off` between the guest's pre-stop and post-stop hooks.
fn with_stop_hooks(
    daemon: &Daemon,
    kind: GuestKind,
    vmid: Vmid,
    log: &dyn Fn(String),
    power_off: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    let hook = hookscript::of(daemon, kind, vmid);
    hookscript::run_or_warn(daemon, hook.as_deref(), vmid, Phase::PreStop, log);
    power_off()?;
    hookscript::run_or_warn(daemon, hook.as_deref(), vmid, Phase::PostStop, log);
    Ok(())
}

/// Stops the guest at once, its hooks around it.
fn stop_now(daemon: &Daemon, kind: GuestKind, vmid: Vmid, log: &dyn Fn(String)) -> Result<(), String> {
    with_stop_hooks(daemon, kind, vmid, log, || {
        daemon.runtime(kind).stop(vmid)?;
        log(format!("{} {vmid} stopped", kind.noun()));
        Ok(())
    })
}

/// `vmctl stop` with qm's options: a locked VM is refused unless `skiplock`, and with
/// `overrule_shutdown` a running shutdown task of the VM is aborted first and the VM stopped
/// without waiting for it.
pub fn stop_vm(
    daemon: &Arc<Daemon>,
    caller: &Caller,
    vmid: Vmid,
    overrule_shutdown: bool,
    skiplock: bool,
) -> Result<Payload, ErrorReply> {
    let kind = GuestKind::Vm;
    let config = daemon.store.load(kind, vmid)?.config;
    if let Some(lock) = config.lock.filter(|_| !skiplock) {
        return Err(err(ErrorKind::Locked, format!("VM {vmid} is locked ({lock})")));
    }
    let shutdowns: Vec<_> = if overrule_shutdown {
        let filter = hearth_proto::TaskFilter {
            typefilter: Some(kind.task_type("shutdown")),
            vmid: Some(vmid),
            running: true,
            ..hearth_proto::TaskFilter::default()
        };
        daemon.tasks.list(&filter).into_iter().map(|t| t.upid).collect()
    } else {
        Vec::new()
    };
    if shutdowns.is_empty() {
        return stop(daemon, caller, kind, vmid);
    }
    if !daemon.runtime(kind).running(vmid) {
        return Err(runtime_reply(RuntimeError::not_running(kind, vmid)));
    }
    let worker = Arc::clone(daemon);
    let upid = daemon.tasks.spawn(&kind.task_type("stop"), &vmid.to_string(), &caller.userid, move |ctx| {
        for upid in &shutdowns {
            if worker.tasks.stop(upid).is_ok() {
                ctx.log(format!("overruling the shutdown task {upid}"));
            }
        }
        // The shutdown task holds the operation lock while it waits; it sees the VM go and
        // ends as interrupted.
        stop_now(&worker, kind, vmid, &|line| ctx.log(line))
    })?;
    Ok(Payload::Task(upid))
}

/// Asks the guest to power off and waits; `force` stops it when the time is up. The caller
/// holds the operation lock.
pub(crate) fn shutdown_locked(
    daemon: &Daemon,
    kind: GuestKind,
    vmid: Vmid,
    timeout: Duration,
    force: bool,
    log: &dyn Fn(String),
) -> Result<(), String> {
    let runtime = daemon.runtime(kind);
    match runtime.shutdown(vmid, timeout, log) {
        Err(e) if e.kind == RuntimeErrorKind::TimedOut && force => {
            log(format!("{e}; stopping it"));
            Ok(runtime.stop(vmid)?)
        }
        Err(e) if e.kind == RuntimeErrorKind::TimedOut => Err(format!("{e} (use --forceStop 1 to stop it)")),
        other => Ok(other?),
    }
}

fn shutdown_timeout(daemon: &Daemon, kind: GuestKind, timeout: Option<u64>) -> Duration {
    timeout.map_or_else(|| daemon.runtime(kind).default_shutdown_timeout(), Duration::from_secs)
}

pub fn shutdown(
    daemon: &Arc<Daemon>,
    caller: &Caller,
    kind: GuestKind,
    vmid: Vmid,
    timeout: Option<u64>,
    force_stop: bool,
) -> Result<Payload, ErrorReply> {
    let timeout = shutdown_timeout(daemon, kind, timeout);
    on_running(daemon, caller, kind, vmid, "shutdown", move |d, log| {
        with_stop_hooks(d, kind, vmid, log, || shutdown_locked(d, kind, vmid, timeout, force_stop, log))
    })
}

/// A shutdown, then a fresh start that applies what changed in the configuration meanwhile.
pub fn reboot(
    daemon: &Arc<Daemon>,
    caller: &Caller,
    kind: GuestKind,
    vmid: Vmid,
    timeout: Option<u64>,
) -> Result<Payload, ErrorReply> {
    let timeout = shutdown_timeout(daemon, kind, timeout);
    on_running(daemon, caller, kind, vmid, "reboot", move |d, log| {
        // Loaded and resolved once, while the guest still runs; started after it is down.
        let config = d.store.load(kind, vmid).map_err(|e| e.to_string())?.config;
        if let Some(lock) = config.lock {
            return Err(format!("{} {vmid} is locked ({lock})", kind.noun()));
        }
        // Apply pending changes: the fresh start runs the configuration with them.
        let config = crate::pending::apply_at_start(d, kind, vmid, config, log).map_err(|e| e.message)?;
        let resources = resolve(d, vmid, &config).map_err(|e| e.message)?;
        let runtime = d.runtime(kind);
        let prepared = runtime.prepare(resources, &StartOptions::default())?;
        let pid = runtime.reboot(vmid, timeout, prepared, log)?;
        log(format!("{} {vmid} started again (pid {pid})", kind.noun()));
        Ok(())
    })
}

/// `suspend` and `resume`: the guest's processes are frozen, or go on.
pub fn pause(
    daemon: &Arc<Daemon>,
    caller: &Caller,
    kind: GuestKind,
    vmid: Vmid,
    resume: bool,
) -> Result<Payload, ErrorReply> {
    let operation = if resume { "resume" } else { "suspend" };
    on_running(daemon, caller, kind, vmid, operation, move |d, log| {
        let runtime = d.runtime(kind);
        if resume { runtime.resume(vmid) } else { runtime.pause(vmid) }?;
        log(format!("{} {vmid} {}", kind.noun(), if resume { "resumed" } else { "suspended" }));
        Ok(())
    })
}

/// `startup: order=,up=,down=` of a guest, and whether it starts with the node.
#[derive(Clone, Copy, Debug)]
struct Startup {
    kind: GuestKind,
    vmid: Vmid,
    onboot: bool,
    /// Guests without an order come last.
    order: i64,
    /// Seconds to wait after starting it.
    up: u64,
    /// Seconds it gets to shut down.
    down: Option<u64>,
}

/// Guests of this node, VMs and containers together, with their startup settings, in start
/// order (as Proxmox orders them across both kinds).
fn start_order(daemon: &Daemon) -> Result<Vec<Startup>, ErrorReply> {
    let mut guests = Vec::new();
    for kind in [GuestKind::Vm, GuestKind::Ct] {
        guests.extend(daemon.store.list(kind)?.into_iter().filter_map(|listed| {
            let config = listed.config.as_ref().as_ref().ok()?;
            let props = config.current.get("startup").and_then(|v| kind.schema().property("startup", v));
            let get = |k: &str| props.as_ref().and_then(|p| p.get(k)).and_then(|v| v.parse::<i64>().ok());
            Some(Startup {
                kind,
                vmid: listed.vmid,
                onboot: config.current.get("onboot") == Some(&Value::Bool(true)),
                order: get("order").unwrap_or(i64::MAX),
                up: get("up").unwrap_or(0).max(0) as u64,
                down: get("down").map(|d| d.max(0) as u64),
            })
        }));
    }
    guests.sort_by_key(|s| (s.order, s.vmid));
    Ok(guests)
}

/// Starts the node's `onboot` guests in order (all with `force`); one failing does not stop
/// the others, and the task ends with a warning for each.
pub fn start_all(
    daemon: &Arc<Daemon>,
    caller: &Caller,
    force: bool,
    vms: Option<Vec<Vmid>>,
) -> Result<Payload, ErrorReply> {
    let mut order = start_order(daemon)?;
    if let Some(vms) = &vms {
        order.retain(|s| vms.contains(&s.vmid));
    }
    let delay = crate::node::startall_delay(daemon);
    let worker = Arc::clone(daemon);
    let upid = daemon.tasks.spawn("startall", "", &caller.userid, move |ctx| {
        if delay > 0 {
            ctx.log(format!("Delaying on-boot 'startall' for {delay} second(s)."));
            for _ in 0..delay {
                std::thread::sleep(Duration::from_secs(1));
                ctx.check_stop()?;
            }
        }
        for Startup { kind, vmid, onboot, up, .. } in order {
            if !(onboot || force) || worker.guest_running(kind, vmid) {
                continue;
            }
            let log = |line: String| ctx.log(line);
            match start_now(&worker, kind, vmid, &StartOptions::default(), &log) {
                Ok(_) => {
                    if up > 0 {
                        ctx.log(format!("waiting {up} s (startup up=)"));
                        std::thread::sleep(Duration::from_secs(up));
                    }
                }
                Err(e) => ctx.warn(format!("{} {vmid}: {e}", kind.noun())),
            }
            ctx.check_stop()?;
        }
        Ok(())
    })?;
    Ok(Payload::Task(upid))
}

/// Shuts down every running guest in reverse start order.
pub fn stop_all(
    daemon: &Arc<Daemon>,
    caller: &Caller,
    timeout: Option<u64>,
    vms: Option<Vec<Vmid>>,
) -> Result<Payload, ErrorReply> {
    let mut order = start_order(daemon)?;
    if let Some(vms) = &vms {
        order.retain(|s| vms.contains(&s.vmid));
    }
    order.reverse();
    let worker = Arc::clone(daemon);
    let upid = daemon.tasks.spawn("stopall", "", &caller.userid, move |ctx| {
        for Startup { kind, vmid, down, .. } in order {
            if !worker.guest_running(kind, vmid) {
                continue;
            }
            let lock = worker.run_lock(kind, vmid);
            let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
            let log = |line: String| ctx.log(line);
            let limit = shutdown_timeout(&worker, kind, timeout.or(down));
            if let Err(e) = shutdown_locked(&worker, kind, vmid, limit, true, &log) {
                ctx.warn(format!("{} {vmid}: {e}", kind.noun()));
            }
        }
        Ok(())
    })?;
    Ok(Payload::Task(upid))
}

#[cfg(test)]
mod tests;
