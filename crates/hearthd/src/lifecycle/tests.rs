//! hearthd's guest handlers over a recording fake runtime: which engine calls a request makes,
//! under which lock, how often it reads the configuration, and what errors it answers, without
//! starting a process.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_core::runtime::{
    GuestRuntime, Launch, ResolvedVolume, Resources, RuntimeError, RuntimeErrorKind, RuntimeStatus, StartOptions,
};
use hearth_core::{GuestConfig, GuestKind, Vmid};
use hearth_proto::{ErrorKind, Payload, TaskState};

use super::*;
use crate::{Caller, Daemon, Runtimes};

/// What a request asked of the runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Call {
    /// A start was prepared from these resources.
    Prepare {
        vmid: Vmid,
        volumes: Vec<(String, ResolvedVolume)>,
        resume_state: Option<String>,
    },
    Run(Vmid),
    Stop(Vmid),
    Shutdown(Vmid, Duration),
    Pause(Vmid),
    Resume(Vmid),
}

/// A runtime that runs nothing: it records each call and keeps a set of "running" guests.
#[derive(Debug)]
struct FakeRuntime {
    kind: GuestKind,
    calls: Arc<Mutex<Vec<Call>>>,
    running: Arc<Mutex<BTreeSet<Vmid>>>,
    ops: Mutex<HashMap<Vmid, Arc<Mutex<()>>>>,
    /// Whether the guest obeys a shutdown; else the shutdown times out.
    obeys_shutdown: bool,
}

impl FakeRuntime {
    fn new(kind: GuestKind) -> FakeRuntime {
        FakeRuntime {
            kind,
            calls: Arc::default(),
            running: Arc::default(),
            ops: Mutex::default(),
            obeys_shutdown: true,
        }
    }

    fn record(&self, call: Call) {
        self.calls.lock().unwrap().push(call);
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn set_running(&self, vmid: Vmid) {
        self.running.lock().unwrap().insert(vmid);
    }
}

struct FakeLaunch {
    vmid: Vmid,
    calls: Arc<Mutex<Vec<Call>>>,
    running: Arc<Mutex<BTreeSet<Vmid>>>,
    kind: GuestKind,
}

impl Launch for FakeLaunch {
    fn vmid(&self) -> Vmid {
        self.vmid
    }

    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }

    fn describe(&self, _pretty: bool) -> String {
        format!("fake {}", self.vmid)
    }

    fn run(self: Box<Self>, _log: &dyn Fn(String)) -> Result<u32, RuntimeError> {
        self.calls.lock().unwrap().push(Call::Run(self.vmid));
        if !self.running.lock().unwrap().insert(self.vmid) {
            return Err(RuntimeError::already_running(self.kind, self.vmid));
        }
        Ok(4242)
    }
}

impl GuestRuntime for FakeRuntime {
    fn kind(&self) -> GuestKind {
        self.kind
    }

    fn default_shutdown_timeout(&self) -> Duration {
        Duration::from_secs(7)
    }

    fn op_lock(&self, vmid: Vmid) -> Arc<Mutex<()>> {
        Arc::clone(self.ops.lock().unwrap().entry(vmid).or_default())
    }

    fn pid(&self, vmid: Vmid) -> Option<u32> {
        self.running.lock().unwrap().contains(&vmid).then_some(4242)
    }

    fn prepare(&self, resources: Resources, options: &StartOptions) -> Result<Box<dyn Launch>, RuntimeError> {
        self.record(Call::Prepare {
            vmid: resources.vmid,
            volumes: resources.volumes.into_iter().collect(),
            resume_state: options.resume_state.clone(),
        });
        Ok(Box::new(FakeLaunch {
            vmid: resources.vmid,
            calls: Arc::clone(&self.calls),
            running: Arc::clone(&self.running),
            kind: self.kind,
        }))
    }

    fn stop(&self, vmid: Vmid) -> Result<(), RuntimeError> {
        self.record(Call::Stop(vmid));
        if self.running.lock().unwrap().remove(&vmid) {
            Ok(())
        } else {
            Err(RuntimeError::not_running(self.kind, vmid))
        }
    }

    fn shutdown(&self, vmid: Vmid, timeout: Duration, _log: &dyn Fn(String)) -> Result<(), RuntimeError> {
        self.record(Call::Shutdown(vmid, timeout));
        if !self.obeys_shutdown {
            return Err(RuntimeError::new(RuntimeErrorKind::TimedOut, format!("{vmid} did not power off")));
        }
        self.running.lock().unwrap().remove(&vmid);
        Ok(())
    }

    fn pause(&self, vmid: Vmid) -> Result<(), RuntimeError> {
        self.record(Call::Pause(vmid));
        Ok(())
    }

    fn resume(&self, vmid: Vmid) -> Result<(), RuntimeError> {
        self.record(Call::Resume(vmid));
        Ok(())
    }

    fn status(&self, vmid: Vmid, _verbose: bool) -> RuntimeStatus {
        RuntimeStatus { pid: self.pid(vmid), ..RuntimeStatus::default() }
    }

    fn adopt(&self) -> Vec<Vmid> {
        self.running.lock().unwrap().iter().copied().collect()
    }
}

struct Node {
    _dir: tempfile::TempDir,
    daemon: Arc<Daemon>,
    vm: Arc<FakeRuntime>,
    ct: Arc<FakeRuntime>,
}

fn node_with(vm: FakeRuntime, ct: FakeRuntime) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let (vm, ct) = (Arc::new(vm), Arc::new(ct));
    let runtimes = Runtimes { vm: Arc::clone(&vm) as Arc<dyn GuestRuntime>, ct: Arc::clone(&ct) as _ };
    let daemon = Daemon::open_with_runtimes(dir.path(), "node1", runtimes).unwrap();
    Node { _dir: dir, daemon, vm, ct }
}

fn node() -> Node {
    node_with(FakeRuntime::new(GuestKind::Vm), FakeRuntime::new(GuestKind::Ct))
}

fn root() -> Caller {
    Caller { uid: 0, userid: "root@pam".into(), token: None }
}

fn vmid(n: u32) -> Vmid {
    Vmid::new(n).unwrap()
}

impl Node {
    fn guest(&self, kind: GuestKind, id: u32, toml: &str) -> Vmid {
        let config = GuestConfig::parse(kind, toml).unwrap();
        self.daemon.store.create(kind, vmid(id), &config).unwrap();
        vmid(id)
    }

    fn fake(&self, kind: GuestKind) -> &FakeRuntime {
        match kind {
            GuestKind::Vm => &self.vm,
            GuestKind::Ct => &self.ct,
        }
    }
}

/// Waits for the task to end and answers its final state and log.
fn finish(daemon: &Daemon, payload: Payload) -> (TaskState, Vec<String>) {
    let Payload::Task(upid) = payload else { panic!("not a task: {payload:?}") };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = daemon.tasks.status(&upid).unwrap();
        if info.state != TaskState::Running {
            return (info.state, daemon.tasks.log(&upid, 0).unwrap());
        }
        assert!(Instant::now() < deadline, "task {upid} does not end");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_start_loads_the_configuration_once_and_hands_resolved_volumes_to_the_engine() {
    let node = node();
    let id =
        node.guest(GuestKind::Vm, 100, "memory = 512\nscsi0 = \"/srv/disks/100.raw\"\nide2 = \"none,media=cdrom\"\n");
    let loads = node.daemon.store.loads();
    let task = start(&node.daemon, &root(), GuestKind::Vm, id, StartOptions::default()).unwrap();
    let (state, log) = finish(&node.daemon, task);
    assert_eq!(state, TaskState::Ok, "{log:?}");
    assert_eq!(node.daemon.store.loads() - loads, 1, "a start reads the configuration exactly once");
    assert_eq!(
        node.vm.calls(),
        [
            Call::Prepare {
                vmid: id,
                volumes: vec![("scsi0".into(), ResolvedVolume::HostPath("/srv/disks/100.raw".into()))],
                resume_state: None,
            },
            Call::Run(id),
        ]
    );
    assert!(log.iter().any(|l| l == "VM 100 started (pid 4242)"), "{log:?}");
    assert!(node.daemon.guest_running(GuestKind::Vm, id));
    assert!(node.ct.calls().is_empty(), "a VM start never reaches the container engine");
}

#[test]
fn the_same_handlers_start_a_container_on_its_own_engine() {
    let node = node();
    let id = node.guest(GuestKind::Ct, 200, "rootfs = \"/srv/ct/200\"\nmemory = 256\n");
    let loads = node.daemon.store.loads();
    let (state, _) =
        finish(&node.daemon, start(&node.daemon, &root(), GuestKind::Ct, id, StartOptions::default()).unwrap());
    assert_eq!(state, TaskState::Ok);
    assert_eq!(node.daemon.store.loads() - loads, 1);
    assert_eq!(
        node.ct.calls(),
        [
            Call::Prepare {
                vmid: id,
                volumes: vec![("rootfs".into(), ResolvedVolume::HostPath("/srv/ct/200".into()))],
                resume_state: None,
            },
            Call::Run(id),
        ]
    );
    assert!(node.vm.calls().is_empty());
}

#[test]
fn a_start_is_refused_before_any_task_or_engine_call() {
    let node = node();
    for kind in [GuestKind::Vm, GuestKind::Ct] {
        let base = if kind == GuestKind::Vm { 100 } else { 200 };
        let locked = node.guest(kind, base, "lock = \"backup\"\n");
        let e = start(&node.daemon, &root(), kind, locked, StartOptions::default()).unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::Locked, &*format!("{} {base} is locked (backup)", kind.noun()))
        );

        let template = node.guest(kind, base + 1, "template = true\n");
        let e = start(&node.daemon, &root(), kind, template, StartOptions::default()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid, "{e:?}");

        let running = node.guest(kind, base + 2, "");
        node.fake(kind).set_running(running);
        let e = start(&node.daemon, &root(), kind, running, StartOptions::default()).unwrap_err();
        assert_eq!((e.kind, e.message), (ErrorKind::Conflict, format!("{} {} already running", kind.noun(), base + 2)));

        let e = start(&node.daemon, &root(), kind, vmid(base + 50), StartOptions::default()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert!(node.fake(kind).calls().is_empty(), "{:?}", node.fake(kind).calls());
    }
    assert!(node.daemon.tasks.list(&Default::default()).is_empty(), "no task was spent");
}

#[test]
fn a_start_waits_for_the_operation_lock() {
    let node = node();
    let id = node.guest(GuestKind::Vm, 100, "");
    let lock = node.daemon.run_lock(GuestKind::Vm, id);
    let held = lock.lock().unwrap();
    let Payload::Task(upid) = start(&node.daemon, &root(), GuestKind::Vm, id, StartOptions::default()).unwrap() else {
        panic!("not a task")
    };
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(node.daemon.tasks.status(&upid).unwrap().state, TaskState::Running);
    assert!(!node.vm.calls().contains(&Call::Run(id)), "the engine runs nothing while the lock is held");
    drop(held);
    let (state, _) = finish(&node.daemon, Payload::Task(upid));
    assert_eq!(state, TaskState::Ok);
    assert!(node.vm.calls().contains(&Call::Run(id)));
}

#[test]
fn two_starts_at_once_run_one_guest() {
    let node = node();
    let id = node.guest(GuestKind::Ct, 200, "rootfs = \"/srv/ct/200\"\n");
    let lock = node.daemon.run_lock(GuestKind::Ct, id);
    let held = lock.lock().unwrap();
    let first = start(&node.daemon, &root(), GuestKind::Ct, id, StartOptions::default()).unwrap();
    let second = start(&node.daemon, &root(), GuestKind::Ct, id, StartOptions::default()).unwrap();
    drop(held);
    let mut states = [finish(&node.daemon, first).0, finish(&node.daemon, second).0];
    states.sort_by_key(|s| *s == TaskState::Ok);
    assert_eq!(states[1], TaskState::Ok);
    assert_eq!(states[0], TaskState::Error { message: "CT 200 already running".into() });
}

#[test]
fn stop_needs_a_running_guest() {
    let node = node();
    let id = node.guest(GuestKind::Vm, 100, "");
    let e = stop(&node.daemon, &root(), GuestKind::Vm, id).unwrap_err();
    assert_eq!((e.kind, e.message.as_str()), (ErrorKind::Conflict, "VM 100 is not running"));
    node.vm.set_running(id);
    let (state, log) = finish(&node.daemon, stop(&node.daemon, &root(), GuestKind::Vm, id).unwrap());
    assert_eq!(state, TaskState::Ok);
    assert_eq!(node.vm.calls(), [Call::Stop(id)]);
    assert!(log.iter().any(|l| l == "VM 100 stopped"), "{log:?}");
    assert!(!node.daemon.guest_running(GuestKind::Vm, id));
}

#[test]
fn shutdown_waits_the_engines_default_and_stops_only_when_forced() {
    let mut stubborn = FakeRuntime::new(GuestKind::Vm);
    stubborn.obeys_shutdown = false;
    let node = node_with(stubborn, FakeRuntime::new(GuestKind::Ct));
    let id = node.guest(GuestKind::Vm, 100, "");
    node.vm.set_running(id);
    let (state, _) = finish(&node.daemon, shutdown(&node.daemon, &root(), GuestKind::Vm, id, None, false).unwrap());
    assert_eq!(state, TaskState::Error { message: "100 did not power off (use --forceStop 1 to stop it)".into() });
    assert_eq!(node.vm.calls(), [Call::Shutdown(id, Duration::from_secs(7))]);
    assert!(node.daemon.guest_running(GuestKind::Vm, id), "not forced: it runs on");

    let (state, _) = finish(&node.daemon, shutdown(&node.daemon, &root(), GuestKind::Vm, id, Some(3), true).unwrap());
    assert_eq!(state, TaskState::Ok);
    assert_eq!(node.vm.calls()[1..], [Call::Shutdown(id, Duration::from_secs(3)), Call::Stop(id)]);
    assert!(!node.daemon.guest_running(GuestKind::Vm, id));
}

#[test]
fn reboot_shuts_down_then_starts_from_todays_configuration() {
    let node = node();
    let id = node.guest(GuestKind::Ct, 200, "rootfs = \"/srv/ct/200\"\n");
    node.ct.set_running(id);
    let loads = node.daemon.store.loads();
    let (state, log) = finish(&node.daemon, reboot(&node.daemon, &root(), GuestKind::Ct, id, Some(5)).unwrap());
    assert_eq!(state, TaskState::Ok, "{log:?}");
    assert_eq!(
        node.ct.calls(),
        [
            Call::Prepare {
                vmid: id,
                volumes: vec![("rootfs".into(), ResolvedVolume::HostPath("/srv/ct/200".into()))],
                resume_state: None,
            },
            Call::Shutdown(id, Duration::from_secs(5)),
            Call::Run(id),
        ]
    );
    // One load to refuse a guest that does not exist, one for the start in the task.
    assert_eq!(node.daemon.store.loads() - loads, 2);
    assert!(node.daemon.guest_running(GuestKind::Ct, id));
}

#[test]
fn suspend_and_resume_pause_the_guest_through_its_engine() {
    let node = node();
    let id = node.guest(GuestKind::Vm, 100, "");
    let e = pause(&node.daemon, &root(), GuestKind::Vm, id, false).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    node.vm.set_running(id);
    assert_eq!(finish(&node.daemon, pause(&node.daemon, &root(), GuestKind::Vm, id, false).unwrap()).0, TaskState::Ok);
    assert_eq!(finish(&node.daemon, pause(&node.daemon, &root(), GuestKind::Vm, id, true).unwrap()).0, TaskState::Ok);
    assert_eq!(node.vm.calls(), [Call::Pause(id), Call::Resume(id)]);
}

#[test]
fn start_all_and_stop_all_go_through_each_guests_engine_in_order() {
    let node = node();
    let vm = node.guest(GuestKind::Vm, 100, "onboot = true\nstartup = \"order=2\"\n");
    let ct = node.guest(GuestKind::Ct, 200, "onboot = true\nrootfs = \"/srv/ct/200\"\nstartup = \"order=1\"\n");
    node.guest(GuestKind::Vm, 101, "");
    assert_eq!(finish(&node.daemon, start_all(&node.daemon, &root(), false, None).unwrap()).0, TaskState::Ok);
    assert!(node.daemon.guest_running(GuestKind::Vm, vm) && node.daemon.guest_running(GuestKind::Ct, ct));
    assert!(!node.daemon.guest_running(GuestKind::Vm, vmid(101)), "not onboot");
    assert_eq!(finish(&node.daemon, stop_all(&node.daemon, &root(), Some(2), None).unwrap()).0, TaskState::Ok);
    assert_eq!(node.vm.calls().last(), Some(&Call::Shutdown(vm, Duration::from_secs(2))));
    assert_eq!(node.ct.calls().last(), Some(&Call::Shutdown(ct, Duration::from_secs(2))));
    assert!(!node.daemon.guest_running(GuestKind::Vm, vm) && !node.daemon.guest_running(GuestKind::Ct, ct));
}

#[test]
fn a_rollback_with_ram_resumes_the_saved_state_through_the_engine() {
    let node = node();
    let id = node.guest(GuestKind::Vm, 100, "memory = 512\n");
    let options = StartOptions { resume_state: Some("before".into()), ..StartOptions::default() };
    start_now(&node.daemon, GuestKind::Vm, id, &options, &|_| {}).unwrap();
    assert_eq!(
        node.vm.calls(),
        [Call::Prepare { vmid: id, volumes: vec![], resume_state: Some("before".into()) }, Call::Run(id)]
    );
}

#[test]
fn a_start_applies_pending_changes_first() {
    let node = node();
    let id = node.guest(
        GuestKind::Vm,
        103,
        "memory = 512\nname = \"a\"\nscsi0 = \"/srv/disks/old.raw\"\n\n[pending]\nmemory = 1024\nscsi0 = \"/srv/disks/new.raw\"\ndelete = [\"name\"]\n",
    );
    let (state, log) =
        finish(&node.daemon, start(&node.daemon, &root(), GuestKind::Vm, id, StartOptions::default()).unwrap());
    assert_eq!(state, TaskState::Ok, "{log:?}");
    let Call::Prepare { volumes, .. } = &node.vm.calls()[0] else { panic!("{:?}", node.vm.calls()) };
    assert_eq!(volumes, &[("scsi0".into(), ResolvedVolume::HostPath("/srv/disks/new.raw".into()))]);
    let config = node.daemon.store.load(GuestKind::Vm, id).unwrap().config;
    assert!(config.pending.is_empty(), "{config:?}");
    assert_eq!(config.current.get("memory"), Some(&Value::Int(1024)));
    assert!(!config.current.contains_key("name"));
}

#[test]
fn set_on_a_running_guest_pends_what_the_engine_cannot_apply_live() {
    let node = node();
    let id = node.guest(GuestKind::Vm, 104, "memory = 512\nname = \"a\"\n");
    node.vm.set_running(id);
    let set = |options: &[(&str, &str)], delete: &[&str], revert: &[&str]| {
        crate::guests::set(
            &node.daemon,
            GuestKind::Vm,
            hearth_proto::SetGuest {
                vmid: id,
                options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                delete: delete.iter().map(|k| k.to_string()).collect(),
                revert: revert.iter().map(|k| k.to_string()).collect(),
                digest: None,
            },
        )
        .unwrap()
    };
    // The fake engine makes nothing live: only the name applies at once.
    set(&[("memory", "1024"), ("name", "b"), ("bios", "ovmf")], &[], &[]);
    let config = node.daemon.store.load(GuestKind::Vm, id).unwrap().config;
    assert_eq!(config.current.get("name"), Some(&Value::Str("b".into())));
    assert_eq!(config.current.get("memory"), Some(&Value::Int(512)));
    assert_eq!(config.pending.values.keys().collect::<Vec<_>>(), ["bios", "memory"]);
    // A pending value equal to the current one disappears; --revert drops one.
    set(&[("memory", "512")], &[], &["bios"]);
    let config = node.daemon.store.load(GuestKind::Vm, id).unwrap().config;
    assert!(config.pending.is_empty(), "{config:?}");
    // Deleting on a running guest pends too.
    set(&[], &["memory"], &[]);
    let config = node.daemon.store.load(GuestKind::Vm, id).unwrap().config;
    assert!(config.pending.delete.contains("memory") && config.current.contains_key("memory"));
}
