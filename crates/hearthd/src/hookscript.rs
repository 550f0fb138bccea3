//! Guest hook scripts (`hookscript: local:snippets/hook.pl`), run as Proxmox runs them:
//! `<script> <vmid> <phase>` for the phases pre-start, post-start, pre-stop and post-stop, as
//! root, with the script's output in the task log. A failing pre-start aborts the start; a
//! failure in any other phase is a warning in the log.
//!
//! The value must be an executable file of a storage's `snippets` content: checked when it is
//! set, and again before each run.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use hearth_core::storage::{Content, VolName};
use hearth_core::{GuestKind, Value, Vmid};
use hearth_proto::{ErrorKind, ErrorReply};

use crate::Daemon;

/// The moments a hook script is called at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    PreStart,
    PostStart,
    PreStop,
    PostStop,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::PreStart => "pre-start",
            Phase::PostStart => "post-start",
            Phase::PreStop => "pre-stop",
            Phase::PostStop => "post-stop",
        }
    }
}

/// The file of a hook script volume, checked: a snippet that exists and is executable.
pub fn script_path(daemon: &Daemon, volid: &str) -> Result<PathBuf, ErrorReply> {
    let invalid = |message: String| ErrorReply::new(ErrorKind::Invalid, format!("hookscript: {message}"));
    let (backend, vol) = daemon.storages.volume(volid).map_err(|e| invalid(e.message))?;
    if !matches!(&vol, VolName::File { content: Content::Snippets, .. }) {
        return Err(invalid(format!("'{volid}' is not a snippet volume (STORAGE:snippets/FILE)")));
    }
    if !backend.config().has_content(Content::Snippets) {
        return Err(invalid(format!("storage '{}' does not hold content 'snippets'", backend.config().id)));
    }
    let path = backend.path(&vol).map_err(|e| invalid(e.to_string()))?;
    let meta = std::fs::metadata(&path).map_err(|_| invalid(format!("script '{volid}' does not exist")))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(invalid(format!("script '{volid}' is not an executable file")));
    }
    Ok(path)
}

/// Refuses a `hookscript` value that is not a usable script (for `set` and `create`).
pub fn check(daemon: &Daemon, values: &[(String, Value)]) -> Result<(), ErrorReply> {
    for (key, value) in values {
        if key == "hookscript" {
            script_path(daemon, value.as_str().unwrap_or_default())?;
        }
    }
    Ok(())
}

/// The hook script of a guest's current configuration, if it has one.
pub fn of(daemon: &Daemon, kind: GuestKind, vmid: Vmid) -> Option<String> {
    let config = daemon.store.load(kind, vmid).ok()?.config;
    config.current.get("hookscript").and_then(Value::as_str).map(str::to_owned)
}

/// Runs `script` for one phase; its output lines go to `log`. An error says why it failed.
pub fn run(daemon: &Daemon, script: &str, vmid: Vmid, phase: Phase, log: &dyn Fn(String)) -> Result<(), String> {
    let path = script_path(daemon, script).map_err(|e| e.message)?;
    log(format!("running hook script {script} ({})", phase.as_str()));
    let output = Command::new(&path)
        .arg(vmid.to_string())
        .arg(phase.as_str())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("hookscript {script}: cannot run {}: {e}", path.display()))?;
    for line in String::from_utf8_lossy(&output.stdout).lines().chain(String::from_utf8_lossy(&output.stderr).lines()) {
        log(line.to_owned());
    }
    if !output.status.success() {
        return Err(format!("hookscript {script} failed in phase {}: {}", phase.as_str(), output.status));
    }
    Ok(())
}

/// [`run`] for a phase whose failure does not stop the operation: it becomes a warning.
pub fn run_or_warn(daemon: &Daemon, script: Option<&str>, vmid: Vmid, phase: Phase, log: &dyn Fn(String)) {
    if let Some(script) = script
        && let Err(e) = run(daemon, script, vmid, phase, log)
    {
        log(format!("WARN: {e}"));
    }
}
