//! The wire protocol between Hearth's clients and hearthd.
//!
//! **Framing.** Every message is a frame: a `u32` big-endian length, then that many bytes of
//! JSON. A frame is at most [`MAX_FRAME`] bytes, the client's Hello at most [`MAX_HELLO_FRAME`];
//! a peer that announces more is disconnected. hearthd also bounds time and numbers: a whole
//! frame must arrive within seconds of its first byte, a connection without requests for
//! [`IDLE_TIMEOUT`] is closed, and each unprivileged uid may hold only so many connections (a
//! connection over a limit is answered with a `Busy` error instead of the Hello, then closed).
//!
//! **Conversation.** The client sends [`ClientHello`], the server answers [`ServerHello`] (or an
//! error and closes). Then the client sends [`Request`]s, one at a time; each is answered by
//! zero or more [`Response::Event`] frames (only for requests that follow a task) and exactly one
//! [`Response::Ok`] or [`Response::Error`].
//!
//! **Stability.** Variants and fields are only ever added, never renamed or reordered; new fields
//! carry `#[serde(default)]` so older peers keep working within one protocol version.
//!
//! Each request documents the ACL path and privileges it needs and the REST route the HTTP API
//! will give it.

mod frame;

pub use frame::{FrameError, IDLE_TIMEOUT, MAX_FRAME, MAX_HELLO_FRAME, decode, encode, read_frame, write_frame};

use std::collections::BTreeMap;

use hearth_core::{Upid, Vmid};
use serde::{Deserialize, Serialize};

/// hearthd's socket under a node root.
pub fn socket_path(root: &std::path::Path) -> std::path::PathBuf {
    root.join("run/hearth/hearthd.sock")
}

/// Bumped when a change would break older peers.
pub const PROTOCOL_VERSION: u32 = 1;

/// The client's first frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientHello {
    pub protocol_version: u32,
    /// Client program and version, for logs: `vmctl 0.1.0`.
    pub software: String,
    /// An API token, `user@realm!name=SECRET`: the connection then acts as that token, with
    /// the token's privileges, whoever the local caller is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// The server's first frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHello {
    pub protocol_version: u32,
    pub software: String,
    /// The node this hearthd manages.
    pub node: String,
    /// Who the server took the caller to be: `root@pam`.
    pub identity: String,
}

/// Everything a client can ask, grouped per domain. Every request enum names its variants
/// (`strum::VariantNames`), so hearthd's permission table can insist on a sample of each.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, strum::VariantNames, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    Vm(VmRequest),
    Ct(CtRequest),
    Task(TaskRequest),
    Storage(StorageRequest),
    Node(NodeRequest),
    Access(AccessRequest),
    Network(NetworkRequest),
}

/// The node's network configuration (`netctl`): edits are staged in `network.new.toml` and
/// take effect with `Apply`. Reading needs Sys.Audit on `/nodes/{node}`, everything else
/// Sys.Modify there, as Proxmox's network API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, strum::VariantNames, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
pub enum NetworkRequest {
    /// The staged configuration's interfaces (the running one when nothing is staged), each
    /// with whether it exists and is up in the kernel; `kind` filters by type.
    /// `/nodes/{node}`: Sys.Audit. REST: `GET /nodes/{node}/network`.
    List {
        #[serde(default)]
        kind: Option<String>,
    },
    /// One interface. `/nodes/{node}`: Sys.Audit. REST: `GET /nodes/{node}/network/{iface}`.
    Show { iface: String },
    /// Adds an interface to the staged configuration (`type` among the options).
    /// `/nodes/{node}`: Sys.Modify. REST: `POST /nodes/{node}/network`.
    Create { iface: String, options: Vec<(String, String)> },
    /// Changes keys of a staged interface and deletes others. `/nodes/{node}`: Sys.Modify.
    /// REST: `PUT /nodes/{node}/network/{iface}`.
    Set {
        iface: String,
        options: Vec<(String, String)>,
        #[serde(default)]
        delete: Vec<String>,
    },
    /// Removes an interface from the staged configuration; refused for a bridge a guest NIC
    /// names. `/nodes/{node}`: Sys.Modify. REST: `DELETE /nodes/{node}/network/{iface}`.
    Delete { iface: String },
    /// What apply would change: the staged configuration against the running kernel, per
    /// interface. `/nodes/{node}`: Sys.Audit.
    Pending,
    /// Makes the staged configuration the running one and changes the kernel to match, with an
    /// undo journal; unless `Confirm` arrives within `confirm_timeout` seconds (default 60, 0:
    /// no confirmation needed) the previous state is restored. `/nodes/{node}`: Sys.Modify.
    /// REST: `PUT /nodes/{node}/network`.
    Apply {
        #[serde(default)]
        confirm_timeout: Option<u64>,
    },
    /// Keeps an applied configuration. `/nodes/{node}`: Sys.Modify.
    Confirm,
    /// Drops the staged edits. `/nodes/{node}`: Sys.Modify. REST: `DELETE /nodes/{node}/network`.
    Revert,
    /// Replaces the staged configuration with a Proxmox `/etc/network/interfaces` text.
    /// `/nodes/{node}`: Sys.Modify.
    Import { text: String },
    /// The staged configuration (the running one when nothing is staged) as an
    /// `/etc/network/interfaces` text. `/nodes/{node}`: Sys.Audit.
    Export,
}

/// The node as a whole (`clusterctl node`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, strum::VariantNames, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
pub enum NodeRequest {
    /// Starts every guest with `onboot: 1`, in `startup: order=` order, waiting `up=` seconds
    /// after each; answers with the task. `/`: VM.PowerMgmt (Sys.PowerMgmt in Proxmox).
    /// REST: `POST /nodes/{node}/startall`.
    StartAll {
        /// Also start guests without `onboot: 1`.
        #[serde(default)]
        force: bool,
        /// Only these guests (`--vms 100,101`).
        #[serde(default)]
        vms: Option<Vec<Vmid>>,
    },
    /// Shuts every running guest down in reverse start order, each within its `down=` timeout
    /// (default 180 s), stopping those that do not power off. `/`: VM.PowerMgmt.
    /// REST: `POST /nodes/{node}/stopall`.
    StopAll {
        #[serde(default)]
        timeout: Option<u64>,
        /// Only these guests (`--vms 100,101`).
        #[serde(default)]
        vms: Option<Vec<Vmid>>,
    },
    /// The node's settings (`etc/hearth/nodes/<node>/config.toml`) as `key: value` pairs.
    /// `/nodes/{node}`: Sys.Audit. REST: `GET /nodes/{node}/config`.
    ConfigGet,
    /// Changes node settings (`description`, `startall-onboot-delay`, `wakeonlan`,
    /// `ballooning-target`, `acme`, `acmedomain0..5`) and deletes others. `/nodes/{node}`:
    /// Sys.Modify. REST: `PUT /nodes/{node}/config`.
    ConfigSet {
        options: Vec<(String, String)>,
        #[serde(default)]
        delete: Vec<String>,
    },
    /// Sends a Wake-on-LAN magic packet to the MAC address in a node's `wakeonlan` setting;
    /// answers the MAC. `/nodes/{node}`: Sys.PowerMgmt. REST: `POST /nodes/{node}/wakeonlan`.
    WakeOnLan { node: String },
}

impl Request {
    /// Requests that carry an open file: right after the request frame the client sends one
    /// byte with the descriptor attached (SCM_RIGHTS), and hearthd reads from or writes to it.
    pub fn carries_file(&self) -> bool {
        self.carried_files() > 0
    }

    /// How many descriptors follow the frame (all in one message): the caller's stdin, stdout
    /// and stderr for `exec`, one file for imports, exports, uploads, push and pull.
    pub fn carried_files(&self) -> usize {
        match self {
            Request::Storage(
                StorageRequest::Import(_)
                | StorageRequest::Export(_)
                | StorageRequest::Upload(_)
                | StorageRequest::BackupExtract { .. },
            )
            | Request::Vm(VmRequest::ImportDisk(_))
            | Request::Ct(CtRequest::Push { .. } | CtRequest::Pull { .. }) => 1,
            Request::Vm(VmRequest::Restore(r)) | Request::Ct(CtRequest::Restore(r))
                if r.archive == RestoreGuest::STDIN =>
            {
                1
            }
            Request::Storage(StorageRequest::BackupRun(r)) if r.options.stdout => 1,
            Request::Ct(CtRequest::Exec(_)) => 3,
            _ => 0,
        }
    }
}

/// The guest agent commands that only read (VM.GuestAgent.Audit), as `qm guest cmd` names them.
pub const AGENT_INFO_COMMANDS: &[&str] = &[
    "fsfreeze-status",
    "get-fsinfo",
    "get-host-name",
    "get-memory-block-info",
    "get-memory-blocks",
    "get-osinfo",
    "get-time",
    "get-timezone",
    "get-users",
    "get-vcpus",
    "info",
    "network-get-interfaces",
    "ping",
];

/// The guest agent commands that change something, as `qm guest cmd` names them.
pub const AGENT_ACTION_COMMANDS: &[&str] =
    &["fsfreeze-freeze", "fsfreeze-thaw", "fstrim", "shutdown", "suspend-disk", "suspend-hybrid", "suspend-ram"];

/// Every command [`VmRequest::Agent`] takes, sorted.
pub fn agent_commands() -> Vec<&'static str> {
    let mut all: Vec<&'static str> = AGENT_INFO_COMMANDS.iter().chain(AGENT_ACTION_COMMANDS).copied().collect();
    all.sort_unstable();
    all
}

/// Virtual machines (`vmctl`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, strum::VariantNames, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
pub enum VmRequest {
    /// Creates a VM; answers with the task. `/vms/{vmid}`: VM.Allocate.
    /// REST: `POST /nodes/{node}/qemu`.
    Create(CreateGuest),
    /// Changes configuration keys. `/vms/{vmid}`: VM.Config.* for the keys touched.
    /// REST: `PUT /nodes/{node}/qemu/{vmid}/config`.
    Set(SetGuest),
    /// Reads the configuration. `/vms/{vmid}`: VM.Audit.
    /// REST: `GET /nodes/{node}/qemu/{vmid}/config`.
    Config(GetConfig),
    /// Lists pending changes. `/vms/{vmid}`: VM.Audit.
    /// REST: `GET /nodes/{node}/qemu/{vmid}/pending`.
    Pending { vmid: Vmid },
    /// Lists VMs the caller may audit. `/vms/{vmid}`: VM.Audit, per VM.
    /// REST: `GET /nodes/{node}/qemu`.
    List,
    /// Destroys a VM; answers with the task. `/vms/{vmid}`: VM.Allocate.
    /// REST: `DELETE /nodes/{node}/qemu/{vmid}`.
    Destroy(DestroyGuest),
    /// Reserves and returns the lowest free id. `/vms`: VM.Allocate.
    /// REST: `GET /cluster/nextid`.
    NextId,
    /// Removes a stale lock. Root only, as in Proxmox.
    /// REST: `PUT /nodes/{node}/qemu/{vmid}/config` with `delete=lock`.
    Unlock { vmid: Vmid },
    /// Starts the VM; answers with the task. `/vms/{vmid}`: VM.PowerMgmt.
    /// REST: `POST /nodes/{node}/qemu/{vmid}/status/start`.
    Start {
        vmid: Vmid,
        /// Seconds to wait for QEMU to come up (default 30).
        #[serde(default)]
        timeout: Option<u64>,
    },
    /// Stops the VM at once, like pulling the plug. `/vms/{vmid}`: VM.PowerMgmt; `skiplock` and
    /// `keep_active` are root@pam's. REST: `POST /nodes/{node}/qemu/{vmid}/status/stop`.
    Stop {
        vmid: Vmid,
        /// First abort a running shutdown task of the VM (`--overrule-shutdown`).
        #[serde(default)]
        overrule_shutdown: bool,
        /// Stop it even if it is locked.
        #[serde(default)]
        skiplock: bool,
        /// Leave its volumes activated (`--keepActive`; nothing to deactivate on Hearth's storages).
        #[serde(default)]
        keep_active: bool,
    },
    /// Powers the VM off through ACPI. `/vms/{vmid}`: VM.PowerMgmt.
    /// REST: `POST /nodes/{node}/qemu/{vmid}/status/shutdown`.
    Shutdown {
        vmid: Vmid,
        /// Seconds to wait (default 180).
        #[serde(default)]
        timeout: Option<u64>,
        /// Stop the VM when the time is up.
        #[serde(default)]
        force_stop: bool,
    },
    /// Shuts the VM down and starts it again. `/vms/{vmid}`: VM.PowerMgmt.
    /// REST: `POST /nodes/{node}/qemu/{vmid}/status/reboot`.
    Reboot {
        vmid: Vmid,
        #[serde(default)]
        timeout: Option<u64>,
    },
    /// Pauses the VM's CPUs, or with `todisk` saves its RAM to a `vmstate` volume and stops
    /// QEMU (lock `suspended`; the next start resumes from it). `/vms/{vmid}`: VM.PowerMgmt, and
    /// with `todisk` Datastore.AllocateSpace on the state's storage (checked by the handler).
    /// REST: `POST /nodes/{node}/qemu/{vmid}/status/suspend`.
    Suspend {
        vmid: Vmid,
        #[serde(default)]
        todisk: bool,
        /// Storage for the RAM state; default: `vmstatestorage`, else the first disk's, else
        /// `local`.
        #[serde(default)]
        statestorage: Option<String>,
    },
    /// Lets a paused VM run again. `/vms/{vmid}`: VM.PowerMgmt.
    /// REST: `POST /nodes/{node}/qemu/{vmid}/status/resume`.
    Resume { vmid: Vmid },
    /// The VM's run state and counters. `/vms/{vmid}`: VM.Audit.
    /// REST: `GET /nodes/{node}/qemu/{vmid}/status/current`.
    Status {
        vmid: Vmid,
        #[serde(default)]
        verbose: bool,
    },
    /// Hands the caller a connection to the VM's serial port: the answer is followed by one
    /// byte carrying the socket (SCM_RIGHTS). `/vms/{vmid}`: VM.Console.
    /// REST: `POST /nodes/{node}/qemu/{vmid}/termproxy`.
    Terminal {
        vmid: Vmid,
        /// `serial<N>`; 0 unless given.
        #[serde(default)]
        serial: u32,
    },
    /// Runs a human-monitor command. Root only. REST: `POST /nodes/{node}/qemu/{vmid}/monitor`.
    Monitor { vmid: Vmid, command: String },
    /// Takes a snapshot of every disk and the configuration; answers with the task.
    /// `/vms/{vmid}`: VM.Snapshot. REST: `POST /nodes/{node}/qemu/{vmid}/snapshot`.
    Snapshot {
        vmid: Vmid,
        name: String,
        #[serde(default)]
        description: Option<String>,
        /// Also save the running VM's memory, so a rollback resumes it where it was.
        #[serde(default)]
        vmstate: bool,
    },
    /// Lists snapshots with their parents and `current`. `/vms/{vmid}`: VM.Audit.
    /// REST: `GET /nodes/{node}/qemu/{vmid}/snapshot`.
    ListSnapshot { vmid: Vmid },
    /// Returns disks and configuration to a snapshot (VM stopped). `/vms/{vmid}`:
    /// VM.Snapshot.Rollback. REST: `POST /nodes/{node}/qemu/{vmid}/snapshot/{name}/rollback`.
    Rollback { vmid: Vmid, name: String },
    /// Deletes a snapshot. `/vms/{vmid}`: VM.Snapshot.
    /// REST: `DELETE /nodes/{node}/qemu/{vmid}/snapshot/{name}`.
    DelSnapshot { vmid: Vmid, name: String },
    /// Turns the VM into a template: its disks become base images. `/vms/{vmid}`: VM.Allocate.
    /// REST: `POST /nodes/{node}/qemu/{vmid}/template`.
    Template { vmid: Vmid },
    /// Clones the VM to a new id: linked from a template, full otherwise. `/vms/{vmid}`:
    /// VM.Clone, and VM.Allocate on the new id. REST: `POST /nodes/{node}/qemu/{vmid}/clone`.
    Clone(CloneGuest),
    /// Grows a disk to SIZE or by +SIZE. `/vms/{vmid}`: VM.Config.Disk.
    /// REST: `PUT /nodes/{node}/qemu/{vmid}/resize`.
    Resize { vmid: Vmid, disk: String, size: String },
    /// The QEMU command line a start would run. Root only, as qm showcmd.
    /// REST: none.
    ShowCmd {
        vmid: Vmid,
        #[serde(default)]
        pretty: bool,
    },
    /// Copies a disk of a stopped VM to another storage or format and points the configuration
    /// at the copy; the old volume becomes `unusedN`, or is freed with `delete`. Answers with
    /// the task (`qmmove`). `/vms/{vmid}`: VM.Config.Disk, and `/storage/{storage}`:
    /// Datastore.AllocateSpace on the target storage.
    /// REST: `POST /nodes/{node}/qemu/{vmid}/move_disk`.
    MoveDisk(MoveDisk),
    /// Imports the attached image file (raw, qcow2 or vmdk, probed) as a new volume on a
    /// storage, added as the lowest free `unusedN`; images that reach other files are refused.
    /// Answers with the task (`qmimport`). `/vms/{vmid}`: VM.Config.Disk, and
    /// `/storage/{storage}`: Datastore.AllocateSpace. REST: none (the CLI hands over the file; the
    /// API's equivalent is `import-from=` in `POST /nodes/{node}/qemu/{vmid}/config`).
    ImportDisk(ImportDisk),
    /// Removes disks from the configuration: each volume becomes `unusedN`, or with `force` is
    /// freed if the VM owns it; an `unusedN` in the list is always freed. Attached disks of a
    /// running VM are refused (no hot-unplug yet). Answers the new digest. `/vms/{vmid}`:
    /// VM.Config.Disk. REST: `PUT /nodes/{node}/qemu/{vmid}/unlink`.
    Unlink {
        vmid: Vmid,
        /// Disk keys: `scsi1`, `virtio2`, `unused0`.
        idlist: Vec<String>,
        #[serde(default)]
        force: bool,
    },
    /// Removes what a QEMU that is gone left behind (run files) and clears a stale `suspended`
    /// or `suspending` lock; refused while the VM runs. `/vms/{vmid}`: VM.PowerMgmt.
    /// REST: none (qm cleanup is qmeventd's).
    Cleanup { vmid: Vmid },
    /// Backs the VM up into a `vzdump-qemu-<vmid>-<time>.vma.zst` archive on a storage holding
    /// `backup` content; answers with the task (`vzdump`). `/vms/{vmid}`: VM.Backup (the
    /// handler also checks Datastore.AllocateSpace on the storage). REST: `POST
    /// /nodes/{node}/vzdump`.
    Backup(BackupGuest),
    /// Restores a VM archive to `vmid`: a new VM, or with `force` over a stopped one. Answers
    /// with the task (`qmrestore`). `/vms/{vmid}`: VM.Allocate (the handler also checks
    /// Datastore.AllocateSpace on the target storage and Datastore.Audit on the archive's).
    /// REST: `POST /nodes/{node}/qemu` with `archive`.
    Restore(RestoreGuest),
    /// The generated cloud-init configuration of one type (`user`, `network` or `meta`), as
    /// `qm cloudinit dump`; the password is masked unless the caller has VM.Config.Cloudinit.
    /// `/vms/{vmid}`: VM.Audit. REST: `GET /nodes/{node}/qemu/{vmid}/cloudinit/dump`.
    CloudinitDump {
        vmid: Vmid,
        #[serde(rename = "type")]
        config_type: String,
    },
    /// The cloud-init keys: the values the drive was last made from, and those changed since.
    /// `/vms/{vmid}`: VM.Audit. REST: `GET /nodes/{node}/qemu/{vmid}/cloudinit`.
    CloudinitPending { vmid: Vmid },
    /// Regenerates the cloud-init drive now (live on a running VM whose hotplug includes
    /// `cloudinit`). `/vms/{vmid}`: VM.Config.Cloudinit.
    /// REST: `PUT /nodes/{node}/qemu/{vmid}/cloudinit`.
    CloudinitUpdate { vmid: Vmid },
    /// Resets the VM like its reset button (QMP `system_reset`); answers with the task
    /// (`qmreset`). `/vms/{vmid}`: VM.PowerMgmt. REST: `POST /nodes/{node}/qemu/{vmid}/status/reset`.
    Reset {
        vmid: Vmid,
        #[serde(default)]
        skiplock: bool,
    },
    /// Presses keys on the VM's keyboard: qm's names joined by `-` (`ctrl-alt-delete`).
    /// `/vms/{vmid}`: VM.Console. REST: `PUT /nodes/{node}/qemu/{vmid}/sendkey`.
    SendKey {
        vmid: Vmid,
        key: String,
        #[serde(default)]
        skiplock: bool,
    },
    /// Runs one guest agent command without arguments (`ping`, `info`, `get-osinfo`, ...) and
    /// answers its `return` as JSON text. `/vms/{vmid}`: VM.GuestAgent.Audit for informational
    /// commands, VM.GuestAgent.FileSystemMgmt for freeze, thaw and trim, VM.PowerMgmt for
    /// shutdown and suspend; VM.GuestAgent.Unrestricted for any.
    /// REST: `POST|GET /nodes/{node}/qemu/{vmid}/agent/{command}`.
    Agent { vmid: Vmid, command: String },
    /// Starts a program in the guest through the agent (`guest-exec`, output captured); answers
    /// `{"pid": N}` as JSON text. `/vms/{vmid}`: VM.GuestAgent.Unrestricted.
    /// REST: `POST /nodes/{node}/qemu/{vmid}/agent/exec`.
    AgentExec {
        vmid: Vmid,
        /// The program and its arguments.
        command: Vec<String>,
        /// Given to the program on its standard input.
        #[serde(default)]
        input_data: Option<String>,
    },
    /// The state of a program started by [`VmRequest::AgentExec`], its output decoded, as JSON
    /// text. `/vms/{vmid}`: VM.GuestAgent.Unrestricted.
    /// REST: `GET /nodes/{node}/qemu/{vmid}/agent/exec-status`.
    AgentExecStatus { vmid: Vmid, pid: i64 },
    /// Sets a guest user's password through the agent. `/vms/{vmid}`:
    /// VM.GuestAgent.Unrestricted. REST: `POST /nodes/{node}/qemu/{vmid}/agent/set-user-password`.
    AgentPasswd {
        vmid: Vmid,
        username: String,
        password: Secret,
        /// The password is already crypt(3)-hashed.
        #[serde(default)]
        crypted: bool,
    },
    /// Adds volumes of a VM (of every VM without `vmid`) that its configuration does not name
    /// as `unusedN`; answers what it did as text. `/vms/{vmid}`: VM.Config.Disk; all VMs: root
    /// only. REST: none (`qm disk rescan` is the host's).
    Rescan {
        #[serde(default)]
        vmid: Option<Vmid>,
        #[serde(default)]
        dryrun: bool,
    },
    /// Creates a VM from an OVF manifest on the host and imports the disk files beside it to a
    /// storage; answers with the task (`qmimport`), or with `dryrun` the parsed settings as JSON
    /// text. Root only (a host path). REST: none.
    ImportOvf {
        vmid: Vmid,
        /// Absolute host path of the `.ovf` file.
        manifest: String,
        storage: String,
        #[serde(default)]
        format: Option<String>,
        #[serde(default)]
        dryrun: bool,
    },
}

/// `vmctl move-disk <vmid> <disk> <storage> [--format] [--delete]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveDisk {
    pub vmid: Vmid,
    /// The disk key: `scsi0`, `virtio1`.
    pub disk: String,
    /// The target storage; empty when the disk goes to another VM (`target_vmid`).
    #[serde(default)]
    pub storage: String,
    /// `raw`, `qcow2` or `vmdk`; default: the disk's format if the target holds it, else the
    /// target's default.
    #[serde(default)]
    pub format: Option<String>,
    /// Free the old volume instead of keeping it as `unusedN`.
    #[serde(default)]
    pub delete: bool,
    /// Reassign the disk to this VM instead (`qm disk move --target-vmid`); the volume is
    /// renamed to its new owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_vmid: Option<Vmid>,
    /// The key the disk gets on `target_vmid` (default: the same key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_disk: Option<String>,
    /// Copy at most this many KiB/s (default: the storages' `bwlimit move=`; 0: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bwlimit: Option<u64>,
}

/// `vmctl disk import <vmid> <file> <storage> [--format]`; the file travels with the request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportDisk {
    pub vmid: Vmid,
    pub storage: String,
    /// Format of the new volume; default: the storage's.
    #[serde(default)]
    pub format: Option<String>,
    /// The file's name as the caller gave it, for the task log.
    #[serde(default)]
    pub source: String,
}

/// `vmctl clone <vmid> <newid> [--full] [--name] [--target]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloneGuest {
    pub vmid: Vmid,
    pub newid: Vmid,
    /// Copy the disks; default: linked for templates, full otherwise.
    #[serde(default)]
    pub full: Option<bool>,
    #[serde(default)]
    pub name: Option<String>,
    /// Storage for the copies (full clones only).
    #[serde(default)]
    pub target: Option<String>,
    /// Copy at most this many KiB/s (default: the storages' `bwlimit clone=`; 0: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bwlimit: Option<u64>,
}

/// One snapshot in `listsnapshot`; `current` stands for the running state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub name: String,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub snaptime: Option<i64>,
    #[serde(default)]
    pub description: Option<String>,
}

/// Containers (`ctctl`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, strum::VariantNames, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
pub enum CtRequest {
    /// Creates a container; answers with the task. `/vms/{vmid}`: VM.Allocate.
    /// REST: `POST /nodes/{node}/lxc`.
    Create(CreateGuest),
    /// Changes configuration keys. `/vms/{vmid}`: VM.Config.* for the keys touched.
    /// REST: `PUT /nodes/{node}/lxc/{vmid}/config`.
    Set(SetGuest),
    /// Reads the configuration. `/vms/{vmid}`: VM.Audit.
    /// REST: `GET /nodes/{node}/lxc/{vmid}/config`.
    Config(GetConfig),
    /// Lists pending changes. `/vms/{vmid}`: VM.Audit.
    /// REST: `GET /nodes/{node}/lxc/{vmid}/pending`.
    Pending { vmid: Vmid },
    /// Lists containers the caller may audit. `/vms/{vmid}`: VM.Audit, per container.
    /// REST: `GET /nodes/{node}/lxc`.
    List,
    /// Destroys a container; answers with the task. `/vms/{vmid}`: VM.Allocate.
    /// REST: `DELETE /nodes/{node}/lxc/{vmid}`.
    Destroy(DestroyGuest),
    /// Removes a stale lock. Root only, as in Proxmox.
    /// REST: `PUT /nodes/{node}/lxc/{vmid}/config` with `delete=lock`.
    Unlock { vmid: Vmid },
    /// Starts the container and returns once its init runs. `/vms/{vmid}`: VM.PowerMgmt.
    /// REST: `POST /nodes/{node}/lxc/{vmid}/status/start`.
    Start {
        vmid: Vmid,
        /// Log each step of the start in the task (`--debug`).
        #[serde(default)]
        debug: bool,
    },
    /// Kills the container at once. `/vms/{vmid}`: VM.PowerMgmt.
    /// REST: `POST /nodes/{node}/lxc/{vmid}/status/stop`.
    Stop { vmid: Vmid },
    /// Asks init to power off (SIGRTMIN+3 when init blocks it, else SIGPWR) and waits.
    /// `/vms/{vmid}`: VM.PowerMgmt. REST: `POST /nodes/{node}/lxc/{vmid}/status/shutdown`.
    Shutdown {
        vmid: Vmid,
        /// Seconds to wait (default 60).
        #[serde(default)]
        timeout: Option<u64>,
        /// Kill the container when the time is up.
        #[serde(default)]
        force_stop: bool,
    },
    /// Shuts the container down and starts it again. `/vms/{vmid}`: VM.PowerMgmt.
    /// REST: `POST /nodes/{node}/lxc/{vmid}/status/reboot`.
    Reboot {
        vmid: Vmid,
        #[serde(default)]
        timeout: Option<u64>,
    },
    /// The container's run state and counters. `/vms/{vmid}`: VM.Audit.
    /// REST: `GET /nodes/{node}/lxc/{vmid}/status/current`.
    Status {
        vmid: Vmid,
        #[serde(default)]
        verbose: bool,
    },
    /// Hands the caller a connection to the container's console (or tty N): the answer is
    /// followed by one byte carrying the socket. Output since start is replayed first.
    /// `/vms/{vmid}`: VM.Console. REST: `POST /nodes/{node}/lxc/{vmid}/termproxy`.
    Console {
        vmid: Vmid,
        /// `None` for /dev/console, else the tty number (1..).
        #[serde(default)]
        tty: Option<u32>,
    },
    /// Runs a command inside the running container as its root, with the caller's stdin,
    /// stdout and stderr (three descriptors follow the frame); a terminal among them is never
    /// handed in: the command gets a fresh pty instead. Answers [`Payload::ExitStatus`].
    /// An empty command runs root's login shell (`enter`). `/vms/{vmid}`: VM.Allocate (whoever
    /// may recreate the container may be root in it). REST: none, as pct exec.
    Exec(ExecInCt),
    /// Writes the attached file (open for reading) to a path inside the running container.
    /// `/vms/{vmid}`: VM.Allocate. REST: none, as pct push.
    Push {
        vmid: Vmid,
        /// Absolute path inside the container.
        path: String,
        /// Owner inside the container (numeric uid or name; default 0).
        #[serde(default)]
        user: Option<String>,
        #[serde(default)]
        group: Option<String>,
        /// Octal mode; default 0644.
        #[serde(default)]
        perms: Option<String>,
    },
    /// Copies a file from inside the running container into the attached file (open for
    /// writing). `/vms/{vmid}`: VM.Allocate. REST: none, as pct pull.
    Pull { vmid: Vmid, path: String },
    /// Mounts the stopped container's volumes on the host and answers the path; the lock
    /// `mounted` keeps it from starting. Root only, as pct mount. REST: none.
    Mount { vmid: Vmid },
    /// Undoes [`CtRequest::Mount`]. Root only. REST: none.
    Unmount { vmid: Vmid },
    /// Usage of every mounted volume of the running container. `/vms/{vmid}`: VM.Audit.
    /// REST: none, as pct df.
    Df { vmid: Vmid },
    /// Snapshots every volume and the configuration; answers with the task.
    /// `/vms/{vmid}`: VM.Snapshot. REST: `POST /nodes/{node}/lxc/{vmid}/snapshot`.
    Snapshot {
        vmid: Vmid,
        name: String,
        #[serde(default)]
        description: Option<String>,
    },
    /// `/vms/{vmid}`: VM.Audit. REST: `GET /nodes/{node}/lxc/{vmid}/snapshot`.
    ListSnapshot { vmid: Vmid },
    /// `/vms/{vmid}`: VM.Snapshot.Rollback.
    /// REST: `POST /nodes/{node}/lxc/{vmid}/snapshot/{name}/rollback`.
    Rollback { vmid: Vmid, name: String },
    /// `/vms/{vmid}`: VM.Snapshot. REST: `DELETE /nodes/{node}/lxc/{vmid}/snapshot/{name}`.
    DelSnapshot { vmid: Vmid, name: String },
    /// Turns the stopped container into a template. `/vms/{vmid}`: VM.Allocate.
    /// REST: `POST /nodes/{node}/lxc/{vmid}/template`.
    Template { vmid: Vmid },
    /// Clones the container. `/vms/{vmid}`: VM.Clone. REST: `POST /nodes/{node}/lxc/{vmid}/clone`.
    Clone(CloneGuest),
    /// Grows a volume (`rootfs`, `mpN`) to SIZE or by +SIZE, and its file system with it.
    /// `/vms/{vmid}`: VM.Config.Disk. REST: `PUT /nodes/{node}/lxc/{vmid}/resize`.
    Resize { vmid: Vmid, disk: String, size: String },
    /// Backs the container up into a `vzdump-lxc-<vmid>-<time>.tar.zst` archive; answers with
    /// the task (`vzdump`). `/vms/{vmid}`: VM.Backup (the handler also checks
    /// Datastore.AllocateSpace on the storage). REST: `POST /nodes/{node}/vzdump`.
    Backup(BackupGuest),
    /// Restores a container archive to `vmid`: a new container, or with `force` over a stopped
    /// one. Answers with the task (`vzrestore`). `/vms/{vmid}`: VM.Allocate (the handler also
    /// checks Datastore.AllocateSpace on the target storage and Datastore.Audit on the
    /// archive's). REST: `POST /nodes/{node}/lxc` with `ostemplate` = the archive and `restore`.
    Restore(RestoreGuest),
    /// Copies a stopped container's `rootfs` or `mpN` volume to another storage and points the
    /// configuration at the copy; the old volume becomes `unusedN`, or is freed with `delete`.
    /// Answers with the task (`move_volume`). `/vms/{vmid}`: VM.Config.Disk, and
    /// `/storage/{storage}`: Datastore.AllocateSpace. REST: `POST /nodes/{node}/lxc/{vmid}/move_volume`.
    MoveVolume(MoveDisk),
    /// The host CPUs each running container's cpuset allows, as `{vmid: [cpus]}` JSON text.
    /// `/vms`: VM.Audit, per container (only those the caller may audit are listed).
    /// REST: none (`pct cpusets` is the host's).
    CpuSets,
}

/// `ctctl exec <ctid> -- cmd…` and `ctctl enter <ctid>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecInCt {
    pub vmid: Vmid,
    /// Program and arguments; empty for root's login shell.
    #[serde(default)]
    pub command: Vec<String>,
    /// Extra `NAME=value` variables; the environment is otherwise cleared (PATH, TERM, HOME set).
    #[serde(default)]
    pub env: Vec<String>,
    /// The caller's `TERM`, used when a pty is given to the command.
    #[serde(default)]
    pub term: Option<String>,
    /// Terminal size (rows, columns) for the pty.
    #[serde(default)]
    pub winsize: Option<(u16, u16)>,
}

/// Worker tasks (`clusterctl task`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, strum::VariantNames, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
pub enum TaskRequest {
    /// Lists tasks, newest first. `/nodes/{node}`: Sys.Audit (own tasks always visible).
    /// REST: `GET /nodes/{node}/tasks`.
    List(TaskFilter),
    /// Reads log lines from `start` on. Own task, or `/nodes/{node}`: Sys.Audit.
    /// REST: `GET /nodes/{node}/tasks/{upid}/log`.
    Log { upid: Upid, start: usize },
    /// Reads the state of one task. Own task, or `/nodes/{node}`: Sys.Audit.
    /// REST: `GET /nodes/{node}/tasks/{upid}/status`.
    Status { upid: Upid },
    /// Asks a running task to stop. Own task, or `/nodes/{node}`: Sys.Modify.
    /// REST: `DELETE /nodes/{node}/tasks/{upid}`.
    Stop { upid: Upid },
    /// Streams the task's log lines and progress as [`Response::Event`]s from the first line,
    /// then answers with its final [`TaskInfo`]. Same rights as `Log`.
    Follow { upid: Upid },
}

/// Storages and volumes (`storectl`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, strum::VariantNames, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
pub enum StorageRequest {
    /// Defines a storage. `/storage`: Datastore.Allocate. REST: `POST /storage`.
    Add(AddStorage),
    /// Changes a storage's keys. `/storage`: Datastore.Allocate (a `keyfile`: root only).
    /// REST: `PUT /storage/{storage}`.
    Set(SetStorage),
    /// Removes a storage definition; its data stays. `/storage`: Datastore.Allocate.
    /// REST: `DELETE /storage/{storage}`.
    Remove { storage: String },
    /// Reads storage definitions (all, or one). `/storage/{storage}`: Datastore.Audit, per
    /// storage. REST: `GET /storage[/{storage}]`.
    Config { storage: Option<String> },
    /// Space and state of the storages. `/storage/{storage}`: Datastore.Audit, per storage.
    /// REST: `GET /nodes/{node}/storage`.
    Status(StorageStatusFilter),
    /// Volumes of a storage. `/storage/{storage}`: Datastore.Audit.
    /// REST: `GET /nodes/{node}/storage/{storage}/content`.
    List(ListVolumes),
    /// Allocates an image for a guest. `/storage/{storage}`: Datastore.AllocateSpace.
    /// REST: `POST /nodes/{node}/storage/{storage}/content`.
    Alloc(AllocVolume),
    /// Destroys a volume. `/storage/{storage}`: Datastore.Allocate.
    /// REST: `DELETE /nodes/{node}/storage/{storage}/content/{volume}`.
    Free { volid: String },
    /// The file system path of a volume. `/storage/{storage}`: Datastore.Allocate.
    /// REST: `GET /nodes/{node}/storage/{storage}/content/{volume}` (`path` field).
    Path { volid: String },
    /// Creates a volume from a stream read from the attached file.
    /// `/storage/{storage}`: Datastore.Allocate. REST: none (node-to-node transfer).
    Import(ImportVolume),
    /// Writes a volume as a stream into the attached file. `/storage/{storage}`:
    /// Datastore.Allocate. REST: none (node-to-node transfer).
    Export(ExportVolume),
    /// Stores an ISO image, container template or snippet read from the attached file.
    /// `/storage/{storage}`: Datastore.AllocateTemplate.
    /// REST: `POST /nodes/{node}/storage/{storage}/upload`.
    Upload(UploadFile),
    /// Backs up several guests in one task (`vzdump`), one after the other, logging one summary
    /// line per guest; the task fails when any guest failed or was skipped. `/storage/{storage}`:
    /// Datastore.AllocateSpace (the handler also checks VM.Backup on each guest).
    /// REST: `POST /nodes/{node}/vzdump`.
    BackupRun(BackupRun),
    /// Backup archives on one storage or on every storage holding `backup` content.
    /// `/storage/{storage}`: Datastore.Audit (without a storage: the storages the caller may
    /// audit). REST: `GET /nodes/{node}/storage/{storage}/content?content=backup`.
    BackupList { storage: Option<String>, vmid: Option<Vmid> },
    /// Marks (and unless `dry_run`, removes) backups by `prune-backups` rules; protected
    /// backups are never removed. `/storage/{storage}`: Datastore.Allocate.
    /// REST: `DELETE /nodes/{node}/storage/{storage}/prunebackups`.
    BackupPrune(PruneBackups),
    /// Protects a backup from pruning and removal, or lifts the protection.
    /// `/storage/{storage}`: Datastore.Allocate. REST: `PUT
    /// /nodes/{node}/storage/{storage}/content/{volume}` with `protected`.
    BackupProtect { volid: String, protected: bool },
    /// Verifies chunk store backups: one (`target` a volume id) or every backup of a storage
    /// (`target` a storage id); re-hashes every chunk, moves bad ones aside so the next backup
    /// heals them. Answers with the task (`verify`), which fails when a backup is bad.
    /// `/storage/{storage}`: Datastore.Allocate. REST: PBS `POST /admin/datastore/{store}/verify`.
    BackupVerify { target: String },
    /// Garbage collection of a chunk store: removes chunks no backup references. Answers with
    /// the task (`gc`). `/storage/{storage}`: Datastore.Allocate.
    /// REST: PBS `POST /admin/datastore/{store}/gc`.
    BackupGc { storage: String },
    /// The entries directly inside `path` of a container backup in a chunk store.
    /// `/storage/{storage}`: Datastore.Allocate. REST: PBS `GET /admin/datastore/{store}/catalog`.
    BackupLs { volid: String, path: String },
    /// Writes the files under `path` of a container backup in a chunk store as a tar stream to
    /// the attached file (the caller unpacks it with their own rights).
    /// `/storage/{storage}`: Datastore.Allocate. REST: PBS `GET /admin/datastore/{store}/pxar-file-download`.
    BackupExtract { volid: String, path: String },
    /// Adds a scheduled backup job to `etc/hearth/jobs.toml`. `/`: Sys.Modify.
    /// REST: `POST /cluster/backup`.
    BackupJobAdd(BackupJob),
    /// Replaces a backup job's settings. `/`: Sys.Modify. REST: `PUT /cluster/backup/{id}`.
    BackupJobSet(BackupJob),
    /// Removes a backup job. `/`: Sys.Modify. REST: `DELETE /cluster/backup/{id}`.
    BackupJobRemove { id: String },
    /// Lists backup jobs with their last and next run. `/`: Sys.Audit. REST: `GET /cluster/backup`.
    BackupJobList,
    /// Runs a backup job now; answers with the task. `/`: Sys.Modify.
    /// REST: `POST /cluster/backup/{id}/run` (Proxmox: run-now).
    BackupJobRun { id: String },
    /// Starts every job that is due (cron calls this every minute); each due job runs exactly
    /// once even when calls overlap. Answers with the tasks started. `/`: Sys.Modify.
    /// REST: none (pvescheduler's).
    BackupJobRunDue,
    /// Lists what the host offers for a storage of `kind` (`lvm`, `lvmthin` with the volume
    /// group in `target`, `zfs`) as JSON text. `/storage`: Datastore.Allocate.
    /// REST: `GET /nodes/{node}/scan/{kind}`.
    Scan {
        kind: String,
        #[serde(default)]
        target: Option<String>,
    },
    /// The guest configuration a backup holds, in Proxmox's `key: value` form. The backup's
    /// access as `check_volume_access` (Datastore.AllocateSpace on its storage and VM.Backup on
    /// its guest, or Datastore.Allocate). REST: `GET /nodes/{node}/vzdump/extractconfig`.
    ExtractConfig { volid: String },
}

/// How to back up one guest (`vmctl backup`, `ctctl backup`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupGuest {
    pub vmid: Vmid,
    #[serde(default)]
    pub options: BackupOptions,
}

/// Options of a backup, as vzdump's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupOptions {
    /// The storage (default: the first active storage holding `backup` content).
    #[serde(default)]
    pub storage: Option<String>,
    /// `snapshot` (default), `suspend` or `stop`.
    #[serde(default)]
    pub mode: Option<String>,
    /// `zstd` (default; the only compression).
    #[serde(default)]
    pub compress: Option<String>,
    /// `{{guestname}}`, `{{vmid}}`, `{{node}}`, `{{cluster}}` are replaced.
    #[serde(default)]
    pub notes_template: Option<String>,
    #[serde(default)]
    pub protected: bool,
    /// `keep-last=3,…`: prune the guest's backups on the storage afterwards, which needs
    /// Datastore.Allocate on it.
    #[serde(default)]
    pub prune_backups: Option<String>,
    /// Read at most this many KiB/s from the guest's disks or tree (vzdump's `bwlimit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bwlimit: Option<u64>,
    /// Write the archive into this host directory instead of a storage (vzdump's `dumpdir`;
    /// root@pam only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dumpdir: Option<String>,
    /// Stream the archive into the file the request carries (vzdump's `stdout`; one guest).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stdout: bool,
    /// Containers: tar exclusion patterns; a leading `/` anchors at the container's root,
    /// anything else matches at any depth (vzdump's `exclude-path`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_path: Vec<String>,
    /// `enabled=1,storage=S`: where a VM's copy-before-write images go in snapshot mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleecing: Option<String>,
    /// Mail the task log to these addresses when the run ends (vzdump's `mailto`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mailto: Vec<String>,
    /// `always` (default) or `failure`: when to mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailnotification: Option<String>,
    /// Prune by `prune-backups` (or the storage's) after a backup; `Some(false)` never prunes
    /// (vzdump's `remove`, default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove: Option<bool>,
    /// zstd worker threads (vzdump's `zstd`; 0: half the cores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zstd: Option<u32>,
    /// Minutes to wait for a guest to shut down in stop mode (vzdump's `stopwait`, default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopwait: Option<u64>,
}

/// `storectl backup run`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRun {
    #[serde(default)]
    pub vmids: Vec<Vmid>,
    /// Every guest of the node but `exclude`.
    #[serde(default)]
    pub all: bool,
    #[serde(default)]
    pub exclude: Vec<Vmid>,
    #[serde(default)]
    pub options: BackupOptions,
    /// Every guest of this pool (vzdump's `pool`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
}

/// `vmctl restore`, `ctctl restore`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreGuest {
    pub vmid: Vmid,
    /// `storage:backup/vzdump-…`.
    pub archive: String,
    /// Where new volumes go (default: each disk's original storage).
    #[serde(default)]
    pub storage: Option<String>,
    #[serde(default)]
    pub force: bool,
    /// Containers: restore as unprivileged (1) or privileged (0) instead of as backed up.
    #[serde(default)]
    pub unprivileged: Option<bool>,
    /// Containers: the root file system as `storage:size` or a size in GiB (on `--storage`,
    /// or the storage it came from), instead of as backed up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<String>,
    /// Write restored data at most this many KiB/s (default: the storage's `bwlimit restore=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bwlimit: Option<u64>,
}

impl RestoreGuest {
    /// The archive name that stands for the stream the request carries (`qmrestore -`).
    pub const STDIN: &'static str = "-";
}

/// `storectl backup prune <storage> [--vmid] [--type] --keep-…`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneBackups {
    pub storage: String,
    #[serde(default)]
    pub vmid: Option<Vmid>,
    /// `qemu` or `lxc`.
    #[serde(default)]
    pub guest_type: Option<String>,
    /// `keep-last=3,keep-daily=7`; empty: the storage's `prune-backups`.
    #[serde(default)]
    pub keep: String,
    #[serde(default)]
    pub dry_run: bool,
}

/// A backup archive as `storectl backup list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupEntry {
    pub volid: String,
    pub vmid: Option<Vmid>,
    /// `qemu` or `lxc`.
    pub guest_type: String,
    pub format: String,
    pub size: u64,
    pub ctime: i64,
    pub protected: bool,
    #[serde(default)]
    pub notes: Option<String>,
    /// Why the backup cannot be restored as it is (an unreadable or truncated index, a
    /// missing file); `None` for a whole backup. Its size then counts only what could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damaged: Option<String>,
}

/// One entry of a container backup's file tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupFile {
    pub path: String,
    /// `d` directory, `f` file, `l` symbolic link, `h` hard link, `c`/`b` device, `p` FIFO.
    pub kind: String,
    pub size: u64,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// One backup and what prune does with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneEntry {
    pub volid: String,
    /// `qemu/100`.
    pub guest: String,
    pub ctime: i64,
    /// `keep`, `remove`, `protected` or `renamed`.
    pub mark: String,
}

/// A scheduled backup job (`jobs.toml`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupJob {
    pub id: String,
    /// A calendar event: `daily`, `mon..fri 02:00`, `*/15`.
    pub schedule: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Run a run missed while the host was down as soon as possible.
    #[serde(default)]
    pub repeat_missed: bool,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub selection: BackupRun,
}

/// A backup job with its state, as `storectl backup job list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupJobInfo {
    pub job: BackupJob,
    /// When it last ran (or was created), unix time.
    pub last_run: Option<i64>,
    pub next_run: Option<i64>,
    #[serde(default)]
    pub last_upid: Option<String>,
}

/// `storectl add <type> <storage> --key value…`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddStorage {
    pub storage: String,
    #[serde(rename = "type")]
    pub storage_type: String,
    #[serde(default)]
    pub options: Vec<(String, String)>,
}

/// `storectl set <storage> --key value… --delete k1,k2 --digest D`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetStorage {
    pub storage: String,
    #[serde(default)]
    pub options: Vec<(String, String)>,
    #[serde(default)]
    pub delete: Vec<String>,
    #[serde(default)]
    pub digest: Option<String>,
}

/// Which storages `status` reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageStatusFilter {
    #[serde(default)]
    pub storage: Option<String>,
    /// Only storages holding this content type.
    #[serde(default)]
    pub content: Option<String>,
    /// Only enabled, active storages.
    #[serde(default)]
    pub enabled: bool,
}

/// `storectl list <storage> [--content] [--vmid]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListVolumes {
    pub storage: String,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub vmid: Option<Vmid>,
}

/// `storectl alloc <storage> <vmid> <name> <size> [--format]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocVolume {
    pub storage: String,
    pub vmid: Vmid,
    /// Empty for the lowest free `vm-<vmid>-disk-N`.
    #[serde(default)]
    pub name: String,
    /// `4G`, `512M`; a bare number is KiB, as pvesm takes it.
    pub size: String,
    #[serde(default)]
    pub format: Option<String>,
}

/// `storectl import <volid> <format> <file|->`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportVolume {
    pub volid: String,
    /// `raw+size`, `qcow2+size`, `vmdk+size`, `tar+size`, `btrfs`.
    pub format: String,
    /// Take the lowest free name when `volid` exists, instead of failing.
    #[serde(default)]
    pub allow_rename: bool,
}

/// `storectl export <volid> <format> <file|->`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportVolume {
    pub volid: String,
    pub format: String,
    /// `--with-snapshots`: whether the stream must carry the volume's snapshots (qcow2+size and
    /// btrfs do; the other formats cannot). `None`: as the format does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_snapshots: Option<bool>,
}

/// `storectl upload <storage> <file> --content iso|vztmpl|snippets|import`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadFile {
    pub storage: String,
    pub content: String,
    /// The name on the storage.
    pub filename: String,
}

/// A storage definition as `storectl config` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StorageDefinition {
    pub storage: String,
    pub config: BTreeMap<String, serde_json::Value>,
}

/// The storage table and its digest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StorageConfigs {
    pub digest: String,
    pub storages: Vec<StorageDefinition>,
}

/// One line of `storectl status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageStatus {
    pub storage: String,
    #[serde(rename = "type")]
    pub storage_type: String,
    /// `active`, `inactive` or `disabled`.
    pub status: String,
    pub content: String,
    pub shared: bool,
    /// Bytes; absent when the storage is not active.
    #[serde(default)]
    pub total: Option<u64>,
    #[serde(default)]
    pub used: Option<u64>,
    #[serde(default)]
    pub available: Option<u64>,
    /// Why the storage is inactive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One line of `storectl list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeEntry {
    pub volid: String,
    pub format: String,
    pub content: String,
    /// Bytes: virtual size of images, file size of other content.
    pub size: u64,
    #[serde(default)]
    pub used: Option<u64>,
    #[serde(default)]
    pub vmid: Option<Vmid>,
    /// The base volume of a linked clone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub ctime: i64,
}

/// A new guest: its id and `--key value` options as given on the command line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateGuest {
    pub vmid: Vmid,
    pub options: Vec<(String, String)>,
    /// What only a container's creation takes (`pct create`'s template and first-boot set-up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ct: Option<CtCreate>,
}

/// `ctctl create <ctid> <template> [--password] [--ssh-public-keys] [--start]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtCreate {
    /// The template volume, `local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst`.
    pub ostemplate: String,
    /// Root password inside the container; stored only as a hash in its /etc/shadow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Public keys for root's authorized_keys (the file's text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_public_keys: Option<String>,
    /// Start the container when it has been created.
    #[serde(default)]
    pub start: bool,
}

/// A configuration change, as `qm set`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetGuest {
    pub vmid: Vmid,
    #[serde(default)]
    pub options: Vec<(String, String)>,
    /// Keys to remove.
    #[serde(default)]
    pub delete: Vec<String>,
    /// Pending changes to drop.
    #[serde(default)]
    pub revert: Vec<String>,
    /// Refuse the change unless the file still has this digest.
    #[serde(default)]
    pub digest: Option<String>,
}

/// Which configuration to read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetConfig {
    pub vmid: Vmid,
    /// Ignore pending changes.
    #[serde(default)]
    pub current: bool,
    /// Read a snapshot's configuration instead.
    #[serde(default)]
    pub snapshot: Option<String>,
}

/// A guest to remove.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestroyGuest {
    pub vmid: Vmid,
    /// Also remove the guest from jobs and other references.
    #[serde(default)]
    pub purge: bool,
    /// Also free volumes named for the guest on every enabled storage that the configuration
    /// does not reference (Proxmox's default: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destroy_unreferenced_disks: Option<bool>,
    /// Destroy even if the guest is locked (root@pam only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skiplock: bool,
}

/// Which tasks to list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFilter {
    /// Only tasks of this type (`qmcreate`).
    #[serde(default)]
    pub typefilter: Option<String>,
    /// Only tasks about this guest.
    #[serde(default)]
    pub vmid: Option<Vmid>,
    /// Only failed tasks.
    #[serde(default)]
    pub errors: bool,
    /// Only running tasks.
    #[serde(default)]
    pub running: bool,
    /// At most this many (default 50).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// The server's answer to a request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, strum::VariantNames, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Ok(Payload),
    Error(ErrorReply),
    /// Something a followed task did; more frames follow.
    Event(TaskEvent),
}

/// What a successful request returns. Like the request enums, the answers name their variants
/// (`strum`), so the golden wire test can insist on a sample of each.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, strum::VariantNames, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    Empty,
    /// The digest of the file after a change.
    Digest(String),
    Config(GuestConfigView),
    Pending(Vec<PendingItem>),
    Guests(Vec<GuestSummary>),
    NextId(Vmid),
    /// A task was started.
    Task(Upid),
    Tasks(Vec<TaskInfo>),
    TaskLog(Vec<String>),
    TaskStatus(TaskInfo),
    StorageConfigs(StorageConfigs),
    StorageStatus(Vec<StorageStatus>),
    Volumes(Vec<VolumeEntry>),
    /// A volume id: what alloc, import and upload created.
    Volume(String),
    /// A file system path.
    Path(String),
    VmStatus(VmStatusReport),
    CtStatus(CtStatusReport),
    /// How a command run in a guest ended: its exit code, or 128 + the signal that killed it.
    ExitStatus(i32),
    /// Usage per volume, as pct df.
    Df(Vec<DfEntry>),
    Snapshots(Vec<SnapshotInfo>),
    /// Free text, such as monitor output.
    Text(String),
    Users(Vec<UserInfo>),
    Groups(Vec<GroupInfo>),
    Roles(Vec<RoleInfo>),
    Acl(Vec<AclInfo>),
    Pools(Vec<PoolInfo>),
    Tokens(Vec<TokenInfo>),
    /// A token that was just created, with its secret: the only time the secret is shown.
    NewToken(NewToken),
    /// Privileges per ACL path, as `userctl user permissions` shows them.
    Permissions(Vec<PathPermissions>),
    Tfa(Vec<TfaInfo>),
    /// A second factor that was just added, with its secrets: the only time they are shown.
    NewTfa(NewTfa),
    Backups(Vec<BackupEntry>),
    /// Entries of a directory in a container backup (`storectl backup ls`).
    BackupFiles(Vec<BackupFile>),
    Pruned(Vec<PruneEntry>),
    BackupJobs(Vec<BackupJobInfo>),
    /// Tasks that were started (`run-due`).
    TasksStarted(Vec<Upid>),
    /// Authentication realms, as `userctl realm list` shows them.
    Realms(Vec<RealmInfo>),
    /// Interfaces of the node's network configuration (`netctl list`, `show`).
    NetworkInterfaces(Vec<NetworkInterface>),
    /// What a network apply would change, per interface (`netctl pending`).
    NetworkPending(Vec<hearth_core::network::IfaceChange>),
}

/// An interface of the node's network configuration with its state in the kernel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInterface {
    #[serde(flatten)]
    pub config: hearth_core::network::Iface,
    /// The link exists in the kernel.
    #[serde(default)]
    pub exists: bool,
    /// The link is up.
    #[serde(default)]
    pub active: bool,
}

/// A VM's state, as `qm status --verbose` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmStatusReport {
    pub vmid: Vmid,
    /// `running` or `stopped`.
    pub status: String,
    /// QEMU's own state when running: `running`, `paused`, `shutdown`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qmpstatus: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Seconds since start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime: Option<u64>,
    pub cpus: u64,
    /// Configured memory in bytes.
    pub maxmem: u64,
    /// Resident memory of the QEMU process in bytes (verbose).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem: Option<u64>,
    #[serde(default)]
    pub diskread: u64,
    #[serde(default)]
    pub diskwrite: u64,
    #[serde(default)]
    pub netin: u64,
    #[serde(default)]
    pub netout: u64,
}

/// A container's state, as `pct status --verbose` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtStatusReport {
    pub vmid: Vmid,
    /// `running` or `stopped`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    /// Host pid of the container's init.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Host pid of its hearth-ctmon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor_pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime: Option<u64>,
    /// Configured CPUs (0 = all).
    pub cpus: u64,
    /// Memory limit in bytes.
    pub maxmem: u64,
    pub maxswap: u64,
    /// Memory charged to the container's cgroup (verbose).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem: Option<u64>,
    /// Processes in the container (verbose).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
    /// CPU time used, in nanoseconds (verbose).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cputime: Option<u64>,
    #[serde(default)]
    pub netin: u64,
    #[serde(default)]
    pub netout: u64,
    /// How the last run ended (`halt`, `reboot`, `killed by SIGKILL`, …), when stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<String>,
}

/// One line of `pct df`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DfEntry {
    /// `rootfs`, `mp0`, …
    pub key: String,
    pub volume: String,
    /// Mount path inside the container.
    pub path: String,
    pub total: u64,
    pub used: u64,
    pub avail: u64,
}

/// A failure, with a kind a script can branch on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ErrorReply {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, strum::VariantNames, strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The guest, task or key does not exist.
    NotFound,
    /// The caller lacks a privilege.
    PermissionDenied,
    /// Stale digest, id already used, or state changed underneath.
    Conflict,
    /// The request itself is wrong: unknown key, bad value.
    Invalid,
    /// The guest carries a lock.
    Locked,
    /// Someone else is working on it; try again.
    Busy,
    /// Something the request needs is missing or broken on this node.
    Unavailable,
    /// A bug or an unexpected system error.
    Internal,
    /// The peer broke the protocol.
    Protocol,
}

impl ErrorReply {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ErrorReply {
        ErrorReply { kind, message: message.into() }
    }
}

/// A guest's configuration as `config` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuestConfigView {
    pub vmid: Vmid,
    /// The file's digest, to pass back with `--digest`.
    pub digest: String,
    /// Keys and values; values keep their JSON type (numbers, booleans as 0/1 like Proxmox,
    /// strings).
    pub config: BTreeMap<String, serde_json::Value>,
}

/// One key of `pending` output, as Proxmox's `GET /nodes/{node}/qemu/{vmid}/pending` lists it:
/// `value` in effect, `pending` for the next start, `delete: 1` when the key goes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingItem {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not", with = "delete_flag")]
    pub delete: bool,
}

/// Proxmox's `delete` of a pending item is an integer (1 = delete, 2 = forced delete).
mod delete_flag {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(delete: &bool, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(u8::from(*delete))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Flag {
            Bool(bool),
            Int(u8),
        }
        Ok(match Flag::deserialize(d)? {
            Flag::Bool(b) => b,
            Flag::Int(n) => n != 0,
        })
    }
}

/// One line of `list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestSummary {
    pub vmid: Vmid,
    /// `qemu` or `lxc`.
    #[serde(rename = "type")]
    pub guest_type: String,
    pub name: String,
    /// `running` or `stopped`.
    pub status: String,
    #[serde(default)]
    pub lock: Option<String>,
    /// Configured memory in MiB.
    pub maxmem_mib: u64,
    /// Size of the boot disk (VMs) or root file system (containers) in bytes, if known.
    pub maxdisk: u64,
    #[serde(default)]
    pub pid: Option<u32>,
    #[serde(default)]
    pub tags: String,
    #[serde(default)]
    pub template: bool,
    /// Set when the configuration file cannot be read; the other fields are then defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Something a running task reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, strum::VariantNames, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
pub enum TaskEvent {
    /// A line of the task log.
    Log(String),
    /// Work done so far, in units of the task's choosing (bytes, guests).
    Progress { done: u64, total: u64 },
}

/// The state of a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, strum::VariantNames, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum TaskState {
    Running,
    Ok,
    Warnings {
        count: u32,
    },
    Error {
        message: String,
    },
    /// The task's process ended without writing a final status (e.g. hearthd was killed).
    Unknown,
}

impl TaskState {
    /// The status line Proxmox writes at the end of a task log, without `TASK `.
    pub fn status_text(&self) -> String {
        match self {
            TaskState::Running => "running".into(),
            TaskState::Ok => "OK".into(),
            TaskState::Warnings { count } => format!("WARNINGS: {count}"),
            TaskState::Error { message } => format!("ERROR: {message}"),
            TaskState::Unknown => "unexpected status".into(),
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self, TaskState::Running)
    }
}

/// A task as `task list` and `task status` show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInfo {
    pub upid: Upid,
    #[serde(rename = "type")]
    pub worker_type: String,
    pub id: String,
    pub user: String,
    pub starttime: u32,
    #[serde(default)]
    pub endtime: Option<u32>,
    #[serde(flatten)]
    pub state: TaskState,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_is_stable_json() {
        let req = Request::Vm(VmRequest::Set(SetGuest {
            vmid: Vmid::new(100).unwrap(),
            options: vec![("memory".into(), "2048".into())],
            delete: vec!["tags".into()],
            revert: vec![],
            digest: None,
        }));
        let json = serde_json::to_string(&req).unwrap();
        assert_eq!(
            json,
            r#"{"vm":{"set":{"vmid":100,"options":[["memory","2048"]],"delete":["tags"],"revert":[],"digest":null}}}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), req);
        // Older clients may leave out defaulted fields.
        let short: Request = serde_json::from_str(r#"{"vm":{"set":{"vmid":100}}}"#).unwrap();
        assert!(matches!(short, Request::Vm(VmRequest::Set(SetGuest { digest: None, .. }))));
        // Out-of-range ids are refused while decoding.
        assert!(serde_json::from_str::<Request>(r#"{"vm":{"pending":{"vmid":99}}}"#).is_err());
        let err = Response::Error(ErrorReply::new(ErrorKind::Conflict, "digest mismatch"));
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"error":{"kind":"conflict","message":"digest mismatch"}}"#
        );
    }

    #[test]
    fn task_state_flattens() {
        let info = TaskInfo {
            upid: "UPID:n1:00000001:00000002:00000003:qmcreate:100:root@pam:".parse().unwrap(),
            worker_type: "qmcreate".into(),
            id: "100".into(),
            user: "root@pam".into(),
            starttime: 3,
            endtime: Some(4),
            state: TaskState::Error { message: "boom".into() },
        };
        let json = serde_json::to_string(&info).unwrap();
        assert!(json.contains(r#""state":"error","message":"boom""#), "{json}");
        assert_eq!(serde_json::from_str::<TaskInfo>(&json).unwrap(), info);
    }
}

/// Users, groups, roles, ACL entries, pools and API tokens (`userctl`, Proxmox's `pveum`).
///
/// Ids travel as strings and are parsed by hearthd, so a bad one is answered with an error that
/// names it. A caller may always see their own permissions and manage their own tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, strum::VariantNames, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
pub enum AccessRequest {
    /// Creates a user in realm `pam` or `pve` (or a configured realm). Options: `email`, `firstname`, `lastname`,
    /// `comment`, `groups` (comma list), `enable` (0|1), `expire` (unix time, 0 = never).
    /// `/access/realm/{realm}`: Realm.AllocateUser, and `/access/groups`: User.Modify or, with
    /// `groups`, `/access/groups/{group}`: User.Modify for each; joining a group also needs the
    /// right to grant its ACL entries. REST: `POST /access/users`.
    UserAdd {
        userid: String,
        #[serde(default)]
        options: Vec<(String, String)>,
    },
    /// Changes a user's options; an empty value clears a text option. With `append`, `groups`
    /// adds to the user's groups instead of replacing them. `/access/groups`: User.Modify;
    /// joining or leaving a group also needs the right to grant its ACL entries.
    /// REST: `PUT /access/users/{userid}`.
    UserModify {
        userid: String,
        #[serde(default)]
        options: Vec<(String, String)>,
        #[serde(default)]
        append: bool,
    },
    /// Deletes a user with its tokens and ACL entries. `/access/realm/{realm}`:
    /// Realm.AllocateUser and `/access/groups`: User.Modify. REST: `DELETE /access/users/{userid}`.
    UserDelete { userid: String },
    /// The users the caller may audit (`/access/groups`: Sys.Audit or User.Modify), or only
    /// the caller. REST: `GET /access/users`.
    UserList,
    /// A user's privileges on every path where they hold any, or on `path`. The caller's own,
    /// or anyone's with `/access`: Sys.Audit. REST: `GET /access/permissions`.
    UserPermissions {
        userid: String,
        #[serde(default)]
        path: Option<String>,
    },
    /// Creates a group. `/access/groups`: Group.Allocate. REST: `POST /access/groups`.
    GroupAdd {
        group: String,
        #[serde(default)]
        comment: Option<String>,
    },
    /// Changes a group's comment. `/access/groups`: Group.Allocate.
    /// REST: `PUT /access/groups/{groupid}`.
    GroupModify {
        group: String,
        #[serde(default)]
        comment: Option<String>,
    },
    /// Deletes a group, its memberships and its ACL entries. `/access/groups`: Group.Allocate.
    /// REST: `DELETE /access/groups/{groupid}`.
    GroupDelete { group: String },
    /// The groups with their members, for callers with `/access/groups`: Sys.Audit or
    /// Group.Allocate; otherwise only the caller's own groups. REST: `GET /access/groups`.
    GroupList,
    /// Creates a custom role from privilege names separated by commas.
    /// `/access`: Sys.Modify. REST: `POST /access/roles`.
    RoleAdd { role: String, privs: String },
    /// Replaces a custom role's privileges, or adds to them with `append`.
    /// `/access`: Sys.Modify. REST: `PUT /access/roles/{roleid}`.
    RoleModify {
        role: String,
        privs: String,
        #[serde(default)]
        append: bool,
    },
    /// Deletes a custom role and the ACL entries granting it. `/access`: Sys.Modify.
    /// REST: `DELETE /access/roles/{roleid}`.
    RoleDelete { role: String },
    /// Built-in and custom roles with their privileges; anyone may list them.
    /// REST: `GET /access/roles`.
    RoleList,
    /// Grants (or with `delete` revokes) each role to each user, group and token on `path`.
    /// `{path}`: Permissions.Modify, or for `/vms/…`, `/storage/…` and `/pool/…` VM.Allocate,
    /// Datastore.Allocate or Pool.Allocate there and only roles whose privileges the caller
    /// holds there itself. REST: `PUT /access/acl`.
    AclModify {
        path: String,
        roles: Vec<String>,
        #[serde(default)]
        users: Vec<String>,
        #[serde(default)]
        groups: Vec<String>,
        #[serde(default)]
        tokens: Vec<String>,
        #[serde(default = "yes")]
        propagate: bool,
        #[serde(default)]
        delete: bool,
    },
    /// The ACL entries on paths where the caller holds Sys.Audit or Permissions.Modify.
    /// REST: `GET /access/acl`.
    AclList,
    /// Creates a pool, optionally with members. `/pool/{pool}`: Pool.Allocate, and VM.Allocate on
    /// each guest and Datastore.Allocate on each storage added. REST: `POST /pools`.
    PoolAdd {
        pool: String,
        #[serde(default)]
        comment: Option<String>,
        #[serde(default)]
        vms: Vec<Vmid>,
        #[serde(default)]
        storage: Vec<String>,
    },
    /// Adds guests and storages to a pool, or removes them with `delete`; sets the comment.
    /// `/pool/{pool}`: Pool.Allocate, and as `PoolAdd` on each member. REST: `PUT /pools/{poolid}`.
    PoolModify {
        pool: String,
        #[serde(default)]
        comment: Option<String>,
        #[serde(default)]
        vms: Vec<Vmid>,
        #[serde(default)]
        storage: Vec<String>,
        #[serde(default)]
        delete: bool,
    },
    /// Deletes an empty pool and the ACL entries on it. `/pool/{pool}`: Pool.Allocate.
    /// REST: `DELETE /pools/{poolid}`.
    PoolDelete { pool: String },
    /// The pools the caller may audit (`/pool/{pool}`: Pool.Audit). REST: `GET /pools`.
    PoolList,
    /// Creates an API token and answers with its secret, shown this once. The caller's own
    /// tokens, or anyone's for root@pam (a token holds its user's rights).
    /// REST: `POST /access/users/{userid}/token/{tokenid}`.
    TokenAdd {
        userid: String,
        tokenid: String,
        #[serde(default = "yes")]
        privsep: bool,
        /// Unix time; `None` or 0 is never.
        #[serde(default)]
        expire: Option<i64>,
        #[serde(default)]
        comment: Option<String>,
    },
    /// Deletes an API token, its secret and its ACL entries. Like `TokenAdd`.
    /// REST: `DELETE /access/users/{userid}/token/{tokenid}`.
    TokenRemove { userid: String, tokenid: String },
    /// A user's tokens, without secrets. Like `TokenAdd`.
    /// REST: `GET /access/users/{userid}/token`.
    TokenList { userid: String },
    /// Changes a token's privilege separation, expiry or comment; the secret stays. Like
    /// `TokenAdd`. REST: `PUT /access/users/{userid}/token/{tokenid}`.
    TokenModify {
        userid: String,
        tokenid: String,
        #[serde(default)]
        privsep: Option<bool>,
        /// Unix time; 0 is never.
        #[serde(default)]
        expire: Option<i64>,
        #[serde(default)]
        comment: Option<String>,
    },
    /// Sets the password of a `pve`-realm user; `pam` users change theirs with passwd(1).
    /// As in Proxmox, one's own password always, another user's with `/access/realm/{realm}`:
    /// Realm.AllocateUser and `/access/groups`: User.Modify. hearthd keeps only an argon2id
    /// hash. REST: `PUT /access/password`.
    Passwd { userid: String, password: Secret },
    /// Adds a second factor and answers with its secret, shown this once: a TOTP key, or ten
    /// single-use recovery keys (one set per user). One's own factors, or anyone's with
    /// `/access/groups`: User.Modify. REST: `POST /access/tfa/{userid}`.
    TfaAdd { userid: String, kind: TfaKind },
    /// The second factors of one user, or of every user the caller may see, without secrets.
    /// Like `TfaAdd`. REST: `GET /access/tfa[/{userid}]`.
    TfaList {
        #[serde(default)]
        userid: Option<String>,
    },
    /// Deletes one second factor. Like `TfaAdd`. REST: `DELETE /access/tfa/{userid}/{id}`.
    TfaDelete { userid: String, id: String },
    /// The realms: `pam` and `pve`, built in, and the configured ones, without secrets; anyone
    /// may list them. REST: `GET /access/domains`.
    RealmList,
    /// Configures a realm of type `openid`, `ldap` or `ad` with `domains.cfg` keys; secrets
    /// (`client-key`, `password`) are kept in `etc/hearth/priv/`. `/access/realm`:
    /// Realm.Allocate. REST: `POST /access/domains`.
    RealmAdd {
        realm: String,
        kind: String,
        #[serde(default)]
        options: Vec<(String, String)>,
    },
    /// Changes a realm's keys and removes those in `delete`. Like `RealmAdd`.
    /// REST: `PUT /access/domains/{realm}`.
    RealmModify {
        realm: String,
        #[serde(default)]
        options: Vec<(String, String)>,
        #[serde(default)]
        delete: Vec<String>,
    },
    /// Removes a configured realm and its secrets; `pam` and `pve` cannot be removed. Like
    /// `RealmAdd`. REST: `DELETE /access/domains/{realm}`.
    RealmDelete { realm: String },
    /// Syncs users and groups of an `ldap` or `ad` realm from its directory server.
    /// `/access/realm/{realm}`: Realm.AllocateUser and `/access/groups`: User.Modify.
    /// REST: `POST /access/domains/{realm}/sync`.
    RealmSync {
        realm: String,
        #[serde(default)]
        options: Vec<(String, String)>,
    },
    /// Lifts a user's second-factor lockout. `/access/groups`: User.Modify.
    /// REST: `PUT /access/users/{userid}/unlock-tfa`.
    TfaUnlock { userid: String },
}

/// A password or other secret in a request: serialised as the plain string, but never shown by
/// `Debug`, so logging a request cannot leak it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The kinds of second factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TfaKind {
    /// A time-based one-time password (RFC 6238: SHA-1, 30 s, 6 digits).
    Totp,
    /// Single-use recovery keys.
    Recovery,
}

impl TfaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TfaKind::Totp => "totp",
            TfaKind::Recovery => "recovery",
        }
    }
}

/// One line of `userctl realm list`; never a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealmInfo {
    pub realm: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `pam` and `pve`: always there, never removable.
    pub builtin: bool,
    /// The realm's `domains.cfg` keys other than secrets.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// The names of the secrets that are set (`client-key`, `password`), never their values.
    #[serde(default)]
    pub secrets: Vec<String>,
}

/// One line of `userctl tfa list`; never a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TfaInfo {
    pub userid: String,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: TfaKind,
    /// Unix time.
    pub created: i64,
    /// For recovery keys: how many are left unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<usize>,
}

/// A new second factor with its secrets, shown this once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTfa {
    pub info: TfaInfo,
    /// TOTP: the key in base32, for typing in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// TOTP: the `otpauth://totp/…` URI, for a QR code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Recovery: the keys; hearthd keeps only their SHA-256.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recovery: Vec<String>,
}

impl std::fmt::Debug for NewTfa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewTfa").field("info", &self.info).finish_non_exhaustive()
    }
}

fn yes() -> bool {
    true
}

/// One line of `userctl user list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub userid: String,
    pub enable: bool,
    /// Unix time; absent is never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firstname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lastname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// Token names (the part after `!`).
    #[serde(default)]
    pub tokens: Vec<String>,
}

/// One line of `userctl group list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default)]
    pub members: Vec<String>,
}

/// One line of `userctl role list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleInfo {
    /// Proxmox's field name (`pveum role list --output-format json`, `/access/roles`).
    #[serde(rename = "roleid")]
    pub role: String,
    pub privs: Vec<String>,
    /// Built in, and so neither changeable nor removable.
    pub special: bool,
}

/// One line of `userctl acl list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclInfo {
    pub path: String,
    /// `user`, `group` or `token`.
    #[serde(rename = "type")]
    pub subject_type: String,
    /// The user id, group name or token id.
    pub ugid: String,
    pub roleid: String,
    pub propagate: bool,
}

/// One line of `userctl pool list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolInfo {
    pub pool: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default)]
    pub vms: Vec<Vmid>,
    #[serde(default)]
    pub storage: Vec<String>,
}

/// One line of `userctl token list`; never the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// The token name (after `!`).
    pub tokenid: String,
    pub privsep: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A new token and its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewToken {
    /// `user@realm!name`.
    #[serde(rename = "full-tokenid")]
    pub full_tokenid: String,
    pub info: TokenInfo,
    /// The secret; hearthd keeps only its SHA-256.
    pub value: String,
}

/// A path and the privileges held on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathPermissions {
    pub path: String,
    pub privs: Vec<String>,
}
