//! hearthd, Hearth's privileged helper: it serves the CLIs on `run/hearth/hearthd.sock`,
//! identifies callers by SO_PEERCRED, authorizes every request before any effect, owns the
//! configuration files and runs long operations as tasks.
//!
//! **Architecture invariant:** only hearthd changes configuration or the host. Guests outlive
//! it: stopping or restarting hearthd never stops a guest.
//!
//! The daemon is a library so tests and benchmarks can run it in-process: [`Daemon::open`] then
//! [`serve`] with a listener from [`bind`] and a shutdown future.

mod access;
pub mod admission;
mod agent;
mod backup;
mod chunks;
mod cloudinit;
mod conn;
pub mod containers;
mod credentials;
mod disks;
pub mod firewall;
mod guests;
mod hookscript;
mod hostpaths;
mod imports;
mod jobs;
mod lifecycle;
mod mail;
mod network;
mod node;
pub mod notify;
mod ovf;
mod pending;
pub mod permission_table;
mod referenced;
mod scan;
mod sdn;
mod snapshots;
pub mod storage;
pub mod store;
pub mod tasks;
mod users;
pub mod vms;

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Arg, Command, value_parser};
use hearth_core::GuestKind;
use hearth_core::runtime::{GuestRuntime, StartOptions};
use hearth_proto::{
    CtRequest, ErrorKind, ErrorReply, NodeRequest, Payload, Request, RestoreGuest, StorageRequest, TaskRequest,
    VmRequest,
};
use nix::fcntl::{Flock, FlockArg};
use tokio::net::UnixListener;

pub use access::Caller;
pub use admission::ServeLimits;
pub use credentials::{use_recovery_key, verify_password, verify_token, verify_totp};
use store::ConfigStore;
use tasks::TaskManager;

/// Everything a running hearthd holds.
#[derive(Debug)]
pub struct Daemon {
    pub root: PathBuf,
    pub node: String,
    pub store: ConfigStore,
    pub storages: storage::Storages,
    /// The QEMU engine, for what only VMs have (QMP, serial consoles).
    pub qemu: hearth_qemu::QemuRuntime,
    /// The container engine, for what only containers have (exec, consoles, mounts).
    pub ct: hearth_ct::CtRuntime,
    /// The runtime of each guest kind, through which guests are started and stopped.
    runtimes: Runtimes,
    pub access: access::AccessControl,
    pub tasks: Arc<TaskManager>,
    /// SDN edits and applies, and the apply that waits for confirmation.
    pub sdn: sdn::SdnState,
    pub firewall: firewall::Firewall,
}

impl Daemon {
    /// Opens the node state under `root`: directories, configuration store, task index, and
    /// the engines, which find the guests still running from before.
    /// Unreadable guest files are reported and skipped; the daemon still serves the others.
    pub fn open(root: &Path, node: &str) -> anyhow::Result<Arc<Daemon>> {
        let qemu = hearth_qemu::QemuRuntime::open(root).context("preparing run/hearth/qemu")?;
        let ct = hearth_ct::CtRuntime::open(root).context("preparing run/hearth/lxc")?;
        let runtimes = Runtimes { vm: Arc::new(qemu.clone()), ct: Arc::new(ct.clone()) };
        let daemon = Daemon::assemble(root, node, qemu, ct, runtimes)?;
        firewall::startup(&daemon);
        Ok(daemon)
    }

    fn assemble(
        root: &Path,
        node: &str,
        qemu: hearth_qemu::QemuRuntime,
        ct: hearth_ct::CtRuntime,
        runtimes: Runtimes,
    ) -> anyhow::Result<Arc<Daemon>> {
        let store = ConfigStore::open(root, node).context("opening the configuration store")?;
        for broken in store.broken_files() {
            tracing::error!("unreadable guest configuration: {broken}");
        }
        let storages = storage::Storages::open(root, node).context("opening etc/hearth/storage.toml")?;
        let access = access::AccessControl::open(root).context("loading etc/hearth/access.toml")?;
        // Guests outlive hearthd: those still running are watched again, leftovers removed.
        for runtime in [&runtimes.vm, &runtimes.ct] {
            runtime.adopt();
        }
        let tasks = TaskManager::open(root, node).map_err(|e| anyhow::anyhow!("opening the task index: {e}"))?;
        let daemon = Arc::new(Daemon {
            root: root.to_owned(),
            node: node.to_owned(),
            store,
            storages,
            qemu,
            ct,
            runtimes,
            access,
            tasks: Arc::new(tasks),
            sdn: sdn::SdnState::default(),
            firewall: firewall::Firewall::default(),
        });
        sdn::resume(&daemon);
        Ok(daemon)
    }

    /// A daemon whose guests run on the given runtimes instead of the real engines.
    #[cfg(test)]
    pub(crate) fn open_with_runtimes(root: &Path, node: &str, runtimes: Runtimes) -> anyhow::Result<Arc<Daemon>> {
        let qemu = hearth_qemu::QemuRuntime::open(root).context("preparing run/hearth/qemu")?;
        let ct = hearth_ct::CtRuntime::open(root).context("preparing run/hearth/lxc")?;
        Daemon::assemble(root, node, qemu, ct, runtimes)
    }
}

/// The runtime of each guest kind.
#[derive(Clone, Debug)]
pub(crate) struct Runtimes {
    pub vm: Arc<dyn GuestRuntime>,
    pub ct: Arc<dyn GuestRuntime>,
}

impl Daemon {
    /// The engine that runs guests of this kind: the one place that tells them apart.
    pub(crate) fn runtime(&self, kind: GuestKind) -> &dyn GuestRuntime {
        match kind {
            GuestKind::Vm => self.runtimes.vm.as_ref(),
            GuestKind::Ct => self.runtimes.ct.as_ref(),
        }
    }

    /// The lock that serialises starting, stopping and changing the disks of one guest.
    pub(crate) fn run_lock(&self, kind: GuestKind, vmid: hearth_core::Vmid) -> Arc<std::sync::Mutex<()>> {
        self.runtime(kind).op_lock(vmid)
    }

    /// Whether the guest runs now.
    pub(crate) fn guest_running(&self, kind: GuestKind, vmid: hearth_core::Vmid) -> bool {
        self.runtime(kind).running(vmid)
    }
}

/// Answers one authorized request (everything but following a task). `files` are the open
/// files that requests which [carry some](Request::carried_files) came with, in order.
pub fn handle(
    daemon: &Arc<Daemon>,
    caller: &Caller,
    request: Request,
    files: Vec<std::fs::File>,
) -> Result<Payload, ErrorReply> {
    use GuestKind::{Ct, Vm};
    let mut files = files.into_iter();
    let mut attached =
        || files.next().ok_or_else(|| ErrorReply::new(ErrorKind::Protocol, "this request needs an attached file"));
    let guests_change = firewall::affects_guests(&request);
    let result = match request {
        Request::Vm(r) => match r {
            VmRequest::Create(req) => guests::create(daemon, caller, Vm, req),
            VmRequest::Set(req) => guests::set(daemon, Vm, req),
            VmRequest::Config(req) => guests::config(daemon, Vm, req),
            VmRequest::Pending { vmid } => guests::pending(daemon, Vm, vmid),
            VmRequest::List => guests::list(daemon, caller, Vm),
            VmRequest::Destroy(req) => guests::destroy(daemon, caller, Vm, req),
            VmRequest::NextId => guests::next_id(daemon),
            VmRequest::Unlock { vmid } => guests::unlock(daemon, Vm, vmid),
            VmRequest::Start { vmid, timeout } => {
                let options =
                    StartOptions { timeout: timeout.map(std::time::Duration::from_secs), ..StartOptions::default() };
                lifecycle::start(daemon, caller, Vm, vmid, options)
            }
            VmRequest::Stop { vmid, overrule_shutdown, skiplock, keep_active: _ } => {
                lifecycle::stop_vm(daemon, caller, vmid, overrule_shutdown, skiplock)
            }
            VmRequest::Shutdown { vmid, timeout, force_stop } => {
                lifecycle::shutdown(daemon, caller, Vm, vmid, timeout, force_stop)
            }
            VmRequest::Reboot { vmid, timeout } => lifecycle::reboot(daemon, caller, Vm, vmid, timeout),
            VmRequest::Suspend { vmid, todisk: true, statestorage } => {
                vms::suspend_to_disk(daemon, caller, vmid, statestorage.as_deref())
            }
            VmRequest::Suspend { vmid, .. } => lifecycle::pause(daemon, caller, Vm, vmid, false),
            // A VM suspended to disk resumes by starting from its saved state, as in qm.
            VmRequest::Resume { vmid } if vms::suspended_to_disk(daemon, vmid) => {
                lifecycle::start(daemon, caller, Vm, vmid, StartOptions::default())
            }
            VmRequest::Resume { vmid } => lifecycle::pause(daemon, caller, Vm, vmid, true),
            VmRequest::Status { vmid, verbose } => vms::status(daemon, vmid, verbose),
            VmRequest::Monitor { vmid, command } => vms::monitor(daemon, vmid, &command),
            VmRequest::Snapshot { vmid, name, description, vmstate } => {
                snapshots::snapshot(daemon, caller, Vm, vmid, name, description, vmstate)
            }
            VmRequest::ListSnapshot { vmid } => snapshots::list(daemon, Vm, vmid),
            VmRequest::Rollback { vmid, name } => snapshots::rollback(daemon, caller, Vm, vmid, name),
            VmRequest::DelSnapshot { vmid, name } => snapshots::delete(daemon, caller, Vm, vmid, name),
            VmRequest::Template { vmid } => snapshots::template(daemon, caller, Vm, vmid),
            VmRequest::Clone(req) => snapshots::clone(daemon, caller, Vm, req),
            VmRequest::Resize { vmid, disk, size } => snapshots::resize(daemon, caller, Vm, vmid, &disk, &size),
            VmRequest::ShowCmd { vmid, pretty } => vms::show_command(daemon, vmid, pretty),
            VmRequest::MoveDisk(req) => disks::move_disk(daemon, caller, req),
            VmRequest::ImportDisk(req) => disks::import(daemon, caller, req, attached()?),
            VmRequest::Unlink { vmid, idlist, force } => disks::unlink(daemon, vmid, &idlist, force),
            VmRequest::Cleanup { vmid } => disks::cleanup(daemon, vmid),
            VmRequest::Backup(req) => backup::backup(daemon, caller, Vm, req),
            VmRequest::Restore(req) => {
                let stream = if req.archive == RestoreGuest::STDIN { Some(attached()?) } else { None };
                backup::restore(daemon, caller, Vm, req, stream)
            }
            VmRequest::CloudinitDump { vmid, config_type } => cloudinit::dump(daemon, caller, vmid, &config_type),
            VmRequest::CloudinitPending { vmid } => cloudinit::pending(daemon, vmid),
            VmRequest::CloudinitUpdate { vmid } => cloudinit::update(daemon, vmid),
            VmRequest::Reset { vmid, skiplock } => vms::reset(daemon, caller, vmid, skiplock),
            VmRequest::SendKey { vmid, key, skiplock } => vms::send_key(daemon, vmid, &key, skiplock),
            VmRequest::Agent { vmid, command } => agent::command(daemon, vmid, &command),
            VmRequest::AgentExec { vmid, command, input_data } => {
                agent::exec(daemon, vmid, &command, input_data.as_deref())
            }
            VmRequest::AgentExecStatus { vmid, pid } => agent::exec_status(daemon, vmid, pid),
            VmRequest::AgentPasswd { vmid, username, password, crypted } => {
                agent::passwd(daemon, vmid, &username, password.expose(), crypted)
            }
            VmRequest::Rescan { vmid, dryrun } => ovf::rescan(daemon, vmid, dryrun),
            VmRequest::ImportOvf { vmid, manifest, storage, format, dryrun } => {
                ovf::import_ovf(daemon, caller, vmid, &manifest, &storage, format.as_deref(), dryrun)
            }
            // The console needs the connection; conn.rs answers Terminal before it gets here.
            VmRequest::Terminal { .. } => {
                Err(ErrorReply::new(ErrorKind::Protocol, "the terminal is opened on the connection"))
            }
        },
        Request::Ct(r) => match r {
            CtRequest::Create(req) => guests::create(daemon, caller, Ct, req),
            CtRequest::Set(req) => guests::set(daemon, Ct, req),
            CtRequest::Config(req) => guests::config(daemon, Ct, req),
            CtRequest::Pending { vmid } => guests::pending(daemon, Ct, vmid),
            CtRequest::List => guests::list(daemon, caller, Ct),
            CtRequest::Destroy(req) => guests::destroy(daemon, caller, Ct, req),
            CtRequest::Unlock { vmid } => guests::unlock(daemon, Ct, vmid),
            CtRequest::Start { vmid, debug } => {
                lifecycle::start(daemon, caller, Ct, vmid, StartOptions { debug, ..StartOptions::default() })
            }
            CtRequest::Stop { vmid } => lifecycle::stop(daemon, caller, Ct, vmid),
            CtRequest::Shutdown { vmid, timeout, force_stop } => {
                lifecycle::shutdown(daemon, caller, Ct, vmid, timeout, force_stop)
            }
            CtRequest::Reboot { vmid, timeout } => lifecycle::reboot(daemon, caller, Ct, vmid, timeout),
            CtRequest::Status { vmid, verbose } => containers::status(daemon, vmid, verbose),
            CtRequest::Exec(req) => {
                let stdio = [attached()?, attached()?, attached()?];
                containers::exec(daemon, req, stdio)
            }
            CtRequest::Push { vmid, path, user, group, perms } => {
                containers::push(daemon, vmid, &path, user, group, perms, attached()?)
            }
            CtRequest::Pull { vmid, path } => containers::pull(daemon, vmid, &path, attached()?),
            CtRequest::Mount { vmid } => containers::mount(daemon, vmid),
            CtRequest::Unmount { vmid } => containers::unmount(daemon, vmid),
            CtRequest::Df { vmid } => containers::df(daemon, vmid),
            CtRequest::Snapshot { vmid, name, description } => {
                snapshots::snapshot(daemon, caller, Ct, vmid, name, description, false)
            }
            CtRequest::ListSnapshot { vmid } => snapshots::list(daemon, Ct, vmid),
            CtRequest::Rollback { vmid, name } => snapshots::rollback(daemon, caller, Ct, vmid, name),
            CtRequest::DelSnapshot { vmid, name } => snapshots::delete(daemon, caller, Ct, vmid, name),
            CtRequest::Template { vmid } => snapshots::template(daemon, caller, Ct, vmid),
            CtRequest::Clone(req) => snapshots::clone(daemon, caller, Ct, req),
            CtRequest::Resize { vmid, disk, size } => snapshots::resize(daemon, caller, Ct, vmid, &disk, &size),
            CtRequest::Backup(req) => backup::backup(daemon, caller, Ct, req),
            CtRequest::Restore(req) => {
                let stream = if req.archive == RestoreGuest::STDIN { Some(attached()?) } else { None };
                backup::restore(daemon, caller, Ct, req, stream)
            }
            CtRequest::MoveVolume(req) => disks::move_volume(daemon, caller, Ct, req),
            CtRequest::CpuSets => containers::cpusets(daemon, caller),
            // The console needs the connection; conn.rs answers it before it gets here.
            CtRequest::Console { .. } => {
                Err(ErrorReply::new(ErrorKind::Protocol, "the console is opened on the connection"))
            }
        },
        Request::Task(r) => match r {
            TaskRequest::List(filter) => {
                let mut tasks = daemon.tasks.list(&filter);
                let node_path = hearth_core::access::AclPath::parse(&format!("/nodes/{}", daemon.node));
                let audits = node_path.is_ok_and(|p| {
                    daemon.access.privileges(caller, &p).contains(hearth_core::access::Privilege::SysAudit)
                });
                if !audits {
                    tasks.retain(|t| t.user == caller.userid);
                }
                Ok(Payload::Tasks(tasks))
            }
            TaskRequest::Log { upid, start } => daemon.tasks.log(&upid, start).map(Payload::TaskLog),
            TaskRequest::Status { upid } => daemon.tasks.status(&upid).map(Payload::TaskStatus),
            TaskRequest::Stop { upid } => daemon.tasks.stop(&upid).map(|()| Payload::Empty),
            // Streaming needs the connection; conn.rs answers Follow before it gets here.
            TaskRequest::Follow { upid } => daemon.tasks.status(&upid).map(Payload::TaskStatus),
        },
        Request::Node(r) => match r {
            NodeRequest::StartAll { force, vms } => lifecycle::start_all(daemon, caller, force, vms),
            NodeRequest::StopAll { timeout, vms } => lifecycle::stop_all(daemon, caller, timeout, vms),
            NodeRequest::ConfigGet => node::config_get(daemon),
            NodeRequest::ConfigSet { options, delete } => node::config_set(daemon, &options, &delete),
            NodeRequest::WakeOnLan { node } => node::wake_on_lan(daemon, &node),
        },
        Request::Storage(r) => match r {
            StorageRequest::Add(req) => storage::add(daemon, req),
            StorageRequest::Set(req) => storage::set(daemon, req),
            StorageRequest::Remove { storage } => storage::remove(daemon, &storage),
            StorageRequest::Config { storage } => storage::config(daemon, caller, storage.as_deref()),
            StorageRequest::Status(filter) => storage::status(daemon, caller, filter),
            StorageRequest::List(req) => storage::list(daemon, req),
            StorageRequest::Alloc(req) => storage::alloc(daemon, req),
            StorageRequest::Free { volid } => storage::free(daemon, &volid),
            StorageRequest::Path { volid } => storage::path(daemon, &volid),
            StorageRequest::Import(req) => storage::import(daemon, req, attached()?),
            StorageRequest::Export(req) => storage::export(daemon, req, attached()?),
            StorageRequest::Upload(req) => storage::upload(daemon, req, attached()?),
            StorageRequest::BackupRun(req) => {
                let stream = if req.options.stdout { Some(attached()?) } else { None };
                backup::run(daemon, caller, req, stream)
            }
            StorageRequest::BackupList { storage, vmid } => backup::list(daemon, caller, storage.as_deref(), vmid),
            StorageRequest::BackupPrune(req) => backup::prune_request(daemon, req),
            StorageRequest::BackupProtect { volid, protected } => backup::protect(daemon, &volid, protected),
            StorageRequest::BackupVerify { target } => chunks::verify(daemon, caller, &target),
            StorageRequest::BackupGc { storage } => chunks::gc(daemon, caller, &storage),
            StorageRequest::BackupLs { volid, path } => chunks::ls(daemon, &volid, &path),
            StorageRequest::BackupExtract { volid, path } => chunks::extract(daemon, &volid, &path, attached()?),
            StorageRequest::BackupJobAdd(job) => jobs::add(daemon, job),
            StorageRequest::BackupJobSet(job) => jobs::set(daemon, job),
            StorageRequest::BackupJobRemove { id } => jobs::remove(daemon, &id),
            StorageRequest::BackupJobList => jobs::list(daemon),
            StorageRequest::BackupJobRun { id } => jobs::run(daemon, &id),
            StorageRequest::BackupJobRunDue => jobs::run_due(daemon),
            StorageRequest::Scan { kind, target } => scan::scan(&kind, target.as_deref()),
            StorageRequest::ExtractConfig { volid } => backup::extract_config(daemon, &volid),
        },
        Request::Access(r) => users::handle(daemon, caller, r),
        Request::Network(r) => network::handle(daemon, caller, r),
        Request::Sdn(r) => sdn::handle(daemon, caller, r),
        Request::Firewall(r) => firewall::handle(daemon, r),
    };
    if guests_change && result.is_ok() {
        firewall::guests_changed(daemon);
    }
    result
}

/// The socket and the lock that keeps a second hearthd off the same root.
#[derive(Debug)]
pub struct Bound {
    pub listener: UnixListener,
    pub socket: PathBuf,
    _lock: Flock<std::fs::File>,
}

impl Drop for Bound {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Takes the node lock and binds `run/hearth/hearthd.sock` under `root`, open to every local
/// user: hearthd decides per request who may do what. Must run inside a tokio runtime.
pub fn bind(root: &Path) -> anyhow::Result<Bound> {
    let run = root.join("run/hearth");
    std::fs::create_dir_all(&run).with_context(|| format!("creating {}", run.display()))?;
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("setting permissions of {}", run.display()))?;
    let lock_path = run.join("hearthd.lock");
    let file = std::fs::File::create(&lock_path).with_context(|| format!("opening {}", lock_path.display()))?;
    let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
        .map_err(|_| anyhow::anyhow!("another hearthd is already serving {}", root.display()))?;
    let socket = hearth_proto::socket_path(root);
    match std::fs::remove_file(&socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing the stale socket {}", socket.display())),
    }
    let listener = UnixListener::bind(&socket).with_context(|| format!("binding {}", socket.display()))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666))
        .with_context(|| format!("setting permissions of {}", socket.display()))?;
    Ok(Bound { listener, socket, _lock: lock })
}

/// Accepts connections until `shutdown` completes, with the default [`ServeLimits`]. In-flight
/// requests finish on their own threads; every write they make is atomic, so stopping here
/// never tears a file.
pub async fn serve(listener: &UnixListener, daemon: Arc<Daemon>, shutdown: impl Future<Output = ()>) {
    serve_with_limits(listener, daemon, ServeLimits::default(), shutdown).await;
}

/// [`serve`] with other limits. The total of unprivileged connections is further held to half
/// of this process's descriptor limit, so root can always connect.
pub async fn serve_with_limits(
    listener: &UnixListener,
    daemon: Arc<Daemon>,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()>,
) {
    let limits = limits.within_descriptors(descriptor_limit());
    tracing::debug!(?limits, "admission limits");
    let admission = admission::Admission::new(limits);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => admit(&daemon, &admission, stream),
                Err(e) => {
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// Serves a new connection if its peer is within the limits; refuses it with a `Busy` error
/// otherwise.
fn admit(daemon: &Arc<Daemon>, admission: &Arc<admission::Admission>, stream: tokio::net::UnixStream) {
    let uid = match stream.peer_cred() {
        Ok(cred) => cred.uid(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot identify the peer; closing");
            return;
        }
    };
    match admission.admit(uid) {
        Ok(ticket) => {
            tokio::spawn(conn::serve_connection(Arc::clone(daemon), stream, uid, ticket));
        }
        Err(reply) => conn::refuse(stream, reply),
    }
}

/// The soft limit on open descriptors (`RLIMIT_NOFILE`), or a conservative 1024 if unknown.
fn descriptor_limit() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft)
}

/// Raises the soft limit on open descriptors to the hard limit: every connection, guest socket
/// and open image costs one, and the soft default (often 1024) is far below what a busy node
/// needs. The systemd unit raises the hard limit (`LimitNOFILE=`).
fn raise_descriptor_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::debug!(from = soft, to = hard, "raised the descriptor limit"),
            Err(e) => tracing::warn!(error = %e, soft, hard, "cannot raise the descriptor limit"),
        },
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the descriptor limit"),
    }
}

/// The host name up to its first dot: the default node name.
fn default_node() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .and_then(|h| h.split('.').next().map(str::to_owned))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn node_name(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-');
    if ok { Ok(s.to_owned()) } else { Err(format!("invalid node name '{s}': letters, digits and '-'")) }
}

/// hearthd's command line.
pub fn command() -> Command {
    Command::new("hearthd")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Hearth's privileged helper daemon")
        .long_about(
            "hearthd serves Hearth's command-line tools (vmctl, ctctl, clusterctl) on the Unix socket \
             run/hearth/hearthd.sock under its root. It identifies each caller by its Unix credentials, \
             authorizes every request, keeps the guest configuration files under etc/hearth/ and runs long \
             operations as tasks logged under var/log/hearth/tasks/. It runs in the foreground; SIGTERM or \
             SIGINT stop it cleanly. Guests keep running when hearthd stops.",
        )
        .arg(
            Arg::new("root")
                .long("root")
                .value_name("DIR")
                .value_parser(value_parser!(PathBuf))
                .default_value("/")
                .help("Directory all state hangs off (etc/hearth, var/lib/hearth, var/log/hearth, run/hearth)"),
        )
        .arg(
            Arg::new("node")
                .long("node")
                .value_name("NAME")
                .value_parser(node_name)
                .help("Name of this node [default: the host name up to its first dot]"),
        )
        .arg(
            Arg::new("netns")
                .long("netns")
                .value_name("PATH")
                .value_parser(value_parser!(PathBuf))
                .help("Join this network namespace (/run/netns/NAME) before serving")
                .long_help(
                    "Join the network namespace at PATH (/run/netns/NAME, /proc/PID/ns/net) before serving: \
                     the node's network (netctl), guest NICs and containers then live there. Tests use it \
                     to give each hearthd a private network.",
                ),
        )
}

/// Runs hearthd until SIGTERM or SIGINT.
pub fn main() -> ExitCode {
    let matches = command().get_matches();
    let filter = tracing_subscriber::EnvFilter::try_from_env("HEARTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let root = matches.get_one::<PathBuf>("root").cloned().unwrap_or_else(|| PathBuf::from("/"));
    let node = matches.get_one::<String>("node").cloned().unwrap_or_else(default_node);
    if let Some(path) = matches.get_one::<PathBuf>("netns") {
        // Before any thread exists, so the whole daemon lives in the namespace.
        if let Err(e) = join_netns(path) {
            eprintln!("hearthd: cannot join the network namespace {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    match run(&root, &node) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("hearthd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Joins the network namespace at `path` and, in a mount namespace of hearthd's own, mounts
/// that namespace's sysfs on /sys (as `ip netns exec` does) with the host's cgroup
/// hierarchies moved over onto it, so /sys/class/net shows the namespace's links.
fn join_netns(path: &Path) -> anyhow::Result<()> {
    use nix::mount::{MntFlags, MsFlags, mount, umount2};
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).context("unshare the mount namespace")?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>)
        .context("making / a slave mount")?;
    let cgroups = std::env::temp_dir().join(format!("hearthd-cgroup.{}", std::process::id()));
    std::fs::create_dir_all(&cgroups).with_context(|| format!("creating {}", cgroups.display()))?;
    let result = (|| -> anyhow::Result<()> {
        mount(Some("/sys/fs/cgroup"), &cgroups, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
            .context("keeping the cgroup hierarchies")?;
        mount(Some("sysfs"), "/sys", Some("sysfs"), MsFlags::empty(), None::<&str>)
            .context("mounting the namespace's sysfs")?;
        mount(Some(&cgroups), "/sys/fs/cgroup", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .context("moving the cgroup hierarchies onto the new /sys")?;
        Ok(())
    })();
    if result.is_err() {
        let _ = umount2(&cgroups, MntFlags::MNT_DETACH);
    }
    let _ = std::fs::remove_dir(&cgroups);
    result
}

fn run(root: &Path, node: &str) -> anyhow::Result<()> {
    raise_descriptor_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(32)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let bound = bind(root)?;
        let daemon = Daemon::open(root, node)?;
        network::recover(root);
        network::bring_up(root);
        let pid_file = root.join("run/hearth/hearthd.pid");
        std::fs::write(&pid_file, format!("{}\n", std::process::id()))
            .with_context(|| format!("writing {}", pid_file.display()))?;
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("SIGTERM handler")?;
        let mut int =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).context("SIGINT handler")?;
        tracing::info!(root = %root.display(), node, socket = %bound.socket.display(), "hearthd ready");
        // The socket listens and the state is loaded: a `Type=notify` unit is started now.
        // Failing to tell systemd is survivable (it times the start out and says so).
        if let Err(e) = notify::ready() {
            tracing::warn!(error = %e, "cannot tell the service manager that hearthd is ready");
        }
        let tasks = Arc::clone(&daemon.tasks);
        serve(&bound.listener, daemon, async {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
        .await;
        tracing::info!("shutting down");
        drop(bound);
        daemon_tasks_settle(&tasks);
        let _ = std::fs::remove_file(&pid_file);
        Ok(())
    })
}

/// How long shutdown waits for running tasks to end.
const TASK_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Waits for running tasks to finish, so none is cut off half-way; the socket is already
/// closed, so no new ones start.
fn daemon_tasks_settle(tasks: &TaskManager) {
    let deadline = std::time::Instant::now() + TASK_GRACE;
    while tasks.any_running() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    if tasks.any_running() {
        tracing::warn!("tasks still running after {} s; they will be recorded as unknown", TASK_GRACE.as_secs());
    }
}
