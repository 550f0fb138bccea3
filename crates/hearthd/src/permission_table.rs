//! The permission table as documentation and as a test: one sample request for every request
//! variant and for every kind of object a request can name, what hearthd requires of it
//! ([`crate::access::required`]), and the rule Proxmox VE documents for it, written here by hand.
//!
//! `cargo xtask gen` writes [`markdown`] to `docs/permissions.md`. The tests in `matrix` check, for
//! every sample, every built-in role and every grant path of the matrix, that hearthd's decision
//! for a user holding that one ACL entry is the rule's; a request variant without a sample
//! fails them.
//!
//! A rule is a small expression: `Priv@path` holds when the caller holds `Priv` on `path`
//! (`A,B@path`: both); `&` is and, `|` is or (`&` binds tighter), with parentheses; `root` is
//! root@pam alone and `-` anyone. Where Hearth deliberately differs from Proxmox, the rule is
//! Hearth's and the sample's note says why.

use hearth_core::{Upid, Vmid};
use hearth_proto::{
    AccessRequest, AddStorage, AllocVolume, BackupGuest, BackupJob, BackupOptions, BackupRun, CloneGuest, CreateGuest,
    CtCreate, CtRequest, DestroyGuest, ExecInCt, ExportVolume, GetConfig, ImportDisk, ImportVolume, ListVolumes,
    MoveDisk, NetworkRequest, NodeRequest, PruneBackups, Request, RestoreGuest, Secret, SetGuest, SetStorage,
    StorageRequest, StorageStatusFilter, TaskFilter, TaskRequest, TfaKind, UploadFile, VmRequest,
};

use crate::access::{Caller, required};

/// The node the samples run on.
pub const NODE: &str = "node1";

/// The caller of every sample: an ordinary user, so that what the table asks shows.
pub const CALLER: &str = "alice@pam";

/// The guest the caller works on; [`OTHER`] is somebody else's.
pub const OWN: u32 = 100;
pub const OTHER: u32 = 101;

/// One sample request.
#[derive(Debug)]
pub struct Sample {
    /// The request as typed, where a CLI sends it.
    pub cli: &'static str,
    pub request: Request,
    /// What Proxmox VE documents (or Hearth's rule, see `note`), in the notation of the module
    /// documentation, for [`CALLER`].
    pub rule: &'static str,
    /// Why Hearth differs from Proxmox here, or what the handler checks beyond the table.
    pub note: &'static str,
}

/// The caller every sample is asked for.
fn caller() -> Caller {
    Caller { uid: 1000, userid: CALLER.to_owned(), token: None }
}

fn sample(cli: &'static str, request: Request, rule: &'static str) -> Sample {
    Sample { cli, request, rule, note: "" }
}

impl Sample {
    fn note(self, note: &'static str) -> Sample {
        Sample { note, ..self }
    }
}

fn id(n: u32) -> Vmid {
    Vmid::new(n).expect("the samples use valid guest ids")
}

fn pairs(options: &[(&str, &str)]) -> Vec<(String, String)> {
    options.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn create(options: &[(&str, &str)]) -> CreateGuest {
    CreateGuest { vmid: id(OWN), options: pairs(options), ct: None }
}

fn create_ct(options: &[(&str, &str)]) -> CreateGuest {
    let ct = CtCreate { ostemplate: TEMPLATE.to_owned(), password: None, ssh_public_keys: None, start: false };
    CreateGuest { ct: Some(ct), ..create(options) }
}

fn set(options: &[(&str, &str)]) -> SetGuest {
    SetGuest { vmid: id(OWN), options: pairs(options), delete: Vec::new(), revert: Vec::new(), digest: None }
}

fn delete(keys: &[&str]) -> SetGuest {
    SetGuest { delete: strings(keys), ..set(&[]) }
}

fn revert(keys: &[&str]) -> SetGuest {
    SetGuest { revert: strings(keys), ..set(&[]) }
}

fn config() -> GetConfig {
    GetConfig { vmid: id(OWN), current: false, snapshot: None }
}

fn clone(vmid: u32, newid: u32, target: Option<&str>) -> CloneGuest {
    CloneGuest {
        vmid: id(vmid),
        newid: id(newid),
        full: None,
        name: None,
        target: target.map(str::to_owned),
        bwlimit: None,
    }
}

fn backup(storage: Option<&str>, prune: Option<&str>) -> BackupGuest {
    let options = BackupOptions {
        storage: storage.map(str::to_owned),
        prune_backups: prune.map(str::to_owned),
        ..BackupOptions::default()
    };
    BackupGuest { vmid: id(OWN), options }
}

fn restore(archive: &str, storage: Option<&str>, unprivileged: Option<bool>) -> RestoreGuest {
    RestoreGuest {
        vmid: id(OWN),
        archive: archive.to_owned(),
        storage: storage.map(str::to_owned),
        force: false,
        unprivileged,
        rootfs: None,
        bwlimit: None,
    }
}

fn upid(user: &str) -> Upid {
    format!("UPID:{NODE}:00001234:00005678:65000000:qmstart:{OWN}:{user}:").parse().expect("a valid UPID")
}

fn run(vmids: &[u32], all: bool, storage: Option<&str>) -> BackupRun {
    BackupRun {
        vmids: vmids.iter().map(|v| id(*v)).collect(),
        all,
        exclude: Vec::new(),
        options: BackupOptions { storage: storage.map(str::to_owned), ..BackupOptions::default() },
        pool: None,
    }
}

fn job() -> BackupJob {
    BackupJob {
        id: "nightly".into(),
        schedule: "daily".into(),
        selection: run(&[OWN], false, None),
        ..BackupJob::default()
    }
}

const TEMPLATE: &str = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";
const OWN_BACKUP: &str = "local:backup/vzdump-qemu-100-2025_01_01-00_00_00.vma.zst";
const OTHER_BACKUP: &str = "local:backup/vzdump-qemu-101-2025_01_01-00_00_00.vma.zst";
const OWN_CT_BACKUP: &str = "local:backup/vzdump-lxc-100-2025_01_01-00_00_00.tar.zst";
const OTHER_CT_BACKUP: &str = "local:backup/vzdump-lxc-101-2025_01_01-00_00_00.tar.zst";
const CHUNK_SNAPSHOT: &str = "local:backup/ct/100/2025-01-01T00:00:00Z";

fn vm(r: VmRequest) -> Request {
    Request::Vm(r)
}

fn ct(r: CtRequest) -> Request {
    Request::Ct(r)
}

fn task(r: TaskRequest) -> Request {
    Request::Task(r)
}

fn storage(r: StorageRequest) -> Request {
    Request::Storage(r)
}

fn access(r: AccessRequest) -> Request {
    Request::Access(r)
}

/// Every sample, in the order the documentation lists them.
pub fn samples() -> Vec<Sample> {
    let mut all = vm_samples();
    all.extend(ct_samples());
    all.extend(task_and_node_samples());
    all.extend(storage_samples());
    all.extend(access_samples());
    all.extend(network_samples());
    all
}

fn network_samples() -> Vec<Sample> {
    let net = Request::Network;
    let opts = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    vec![
        sample("netctl list", net(NetworkRequest::List { kind: None }), "Sys.Audit@/nodes/node1"),
        sample("netctl show vmbr0", net(NetworkRequest::Show { iface: "vmbr0".into() }), "Sys.Audit@/nodes/node1"),
        sample(
            "netctl create vmbr1 --type bridge",
            net(NetworkRequest::Create { iface: "vmbr1".into(), options: opts(&[("type", "bridge")]) }),
            "Sys.Modify@/nodes/node1",
        ),
        sample(
            "netctl set vmbr1 --mtu 9000",
            net(NetworkRequest::Set { iface: "vmbr1".into(), options: opts(&[("mtu", "9000")]), delete: vec![] }),
            "Sys.Modify@/nodes/node1",
        ),
        sample("netctl delete vmbr1", net(NetworkRequest::Delete { iface: "vmbr1".into() }), "Sys.Modify@/nodes/node1"),
        sample("netctl pending", net(NetworkRequest::Pending), "Sys.Audit@/nodes/node1"),
        sample("netctl apply", net(NetworkRequest::Apply { confirm_timeout: None }), "Sys.Modify@/nodes/node1"),
        sample("netctl confirm", net(NetworkRequest::Confirm), "Sys.Modify@/nodes/node1"),
        sample("netctl revert", net(NetworkRequest::Revert), "Sys.Modify@/nodes/node1"),
        sample(
            "netctl import interfaces",
            net(NetworkRequest::Import { text: "auto lo\niface lo inet loopback\n".into() }),
            "Sys.Modify@/nodes/node1",
        ),
        sample("netctl export", net(NetworkRequest::Export), "Sys.Audit@/nodes/node1"),
    ]
}

fn vm_samples() -> Vec<Sample> {
    let v = id(OWN);
    vec![
        sample("vmctl create 100 --memory 512", vm(VmRequest::Create(create(&[("memory", "512")]))), "VM.Allocate@/vms/100"),
        sample(
            "vmctl create 100 --scsi0 local:4",
            vm(VmRequest::Create(create(&[("scsi0", "local:4")]))),
            "VM.Allocate@/vms/100 & Datastore.AllocateSpace@/storage/local",
        ),
        sample(
            "vmctl create 100 --ide2 local:iso/debian-12.iso,media=cdrom",
            vm(VmRequest::Create(create(&[("ide2", "local:iso/debian-12.iso,media=cdrom")]))),
            "VM.Allocate@/vms/100 & (Datastore.Allocate@/storage/local | Datastore.AllocateSpace@/storage/local \
             | Datastore.Audit@/storage/local)",
        ),
        sample(
            "vmctl create 100 --ide2 cdrom,media=cdrom",
            vm(VmRequest::Create(create(&[("ide2", "cdrom,media=cdrom")]))),
            "VM.Allocate@/vms/100 & Sys.Console@/",
        ),
        sample(
            "vmctl create 100 --scsi0 local:101/vm-101-disk-0.qcow2",
            vm(VmRequest::Create(create(&[("scsi0", "local:101/vm-101-disk-0.qcow2")]))),
            "VM.Allocate@/vms/100 & (Datastore.Allocate@/storage/local \
             | Datastore.Audit@/storage/local & VM.Config.Disk@/vms/101)",
        ),
        sample(
            "vmctl create 100 --net0 virtio,bridge=vmbr0",
            vm(VmRequest::Create(create(&[("net0", "virtio,bridge=vmbr0")]))),
            "VM.Allocate@/vms/100 & SDN.Use@/sdn/zones/localnetwork/vmbr0",
        ),
        sample("vmctl create 100 --args -S", vm(VmRequest::Create(create(&[("args", "-S")]))), "root"),
        sample("vmctl create 100 --scsi0 /dev/sdb", vm(VmRequest::Create(create(&[("scsi0", "/dev/sdb")]))), "root"),
        sample("vmctl set 100 --memory 512", vm(VmRequest::Set(set(&[("memory", "512")]))), "VM.Config.Memory@/vms/100"),
        sample("vmctl set 100 --cores 2", vm(VmRequest::Set(set(&[("cores", "2")]))), "VM.Config.CPU@/vms/100"),
        sample("vmctl set 100 --name web", vm(VmRequest::Set(set(&[("name", "web")]))), "VM.Config.Options@/vms/100"),
        sample("vmctl set 100 --vga std", vm(VmRequest::Set(set(&[("vga", "std")]))), "VM.Config.HWType@/vms/100"),
        sample(
            "vmctl set 100 --memory 512 --name web",
            vm(VmRequest::Set(set(&[("memory", "512"), ("name", "web")]))),
            "VM.Config.Memory,VM.Config.Options@/vms/100",
        ),
        sample(
            "vmctl set 100 --startup order=1",
            vm(VmRequest::Set(set(&[("startup", "order=1")]))),
            "VM.Config.Options@/vms/100 & Sys.Modify@/",
        ),
        sample(
            "vmctl set 100 --ide2 none,media=cdrom",
            vm(VmRequest::Set(set(&[("ide2", "none,media=cdrom")]))),
            "VM.Config.CDROM@/vms/100",
        ),
        sample(
            "vmctl set 100 --ide2 local:iso/debian-12.iso,media=cdrom",
            vm(VmRequest::Set(set(&[("ide2", "local:iso/debian-12.iso,media=cdrom")]))),
            "VM.Config.CDROM@/vms/100 & (Datastore.Allocate@/storage/local | Datastore.AllocateSpace@/storage/local \
             | Datastore.Audit@/storage/local)",
        ),
        sample(
            "vmctl set 100 --ide2 cdrom,media=cdrom",
            vm(VmRequest::Set(set(&[("ide2", "cdrom,media=cdrom")]))),
            "VM.Config.CDROM@/vms/100 & Sys.Console@/",
        ),
        sample(
            "vmctl set 100 --scsi1 local:4",
            vm(VmRequest::Set(set(&[("scsi1", "local:4")]))),
            "VM.Config.Disk@/vms/100 & Datastore.AllocateSpace@/storage/local",
        ),
        sample(
            "vmctl set 100 --scsi1 local:100/vm-100-disk-1.qcow2",
            vm(VmRequest::Set(set(&[("scsi1", "local:100/vm-100-disk-1.qcow2")]))),
            "VM.Config.Disk@/vms/100",
        ),
        sample(
            "vmctl set 100 --scsi1 local:101/vm-101-disk-0.qcow2",
            vm(VmRequest::Set(set(&[("scsi1", "local:101/vm-101-disk-0.qcow2")]))),
            "VM.Config.Disk@/vms/100 & (Datastore.Allocate@/storage/local \
             | Datastore.Audit@/storage/local & VM.Config.Disk@/vms/101)",
        ),
        sample(
            "vmctl set 100 --scsi1 local:backup/vzdump-qemu-101-2025_01_01-00_00_00.vma.zst",
            vm(VmRequest::Set(set(&[("scsi1", OTHER_BACKUP)]))),
            "VM.Config.Disk@/vms/100 & (Datastore.Allocate@/storage/local \
             | Datastore.AllocateSpace@/storage/local & VM.Backup@/vms/101)",
        )
        .note("Allowed by the table as Proxmox's check_volume_access allows reading the backup; the handler then refuses a backup as a disk's content."),
        sample("vmctl set 100 --scsi1 /dev/sdb", vm(VmRequest::Set(set(&[("scsi1", "/dev/sdb")]))), "root"),
        sample(
            "vmctl set 100 --net0 virtio,bridge=vmbr0",
            vm(VmRequest::Set(set(&[("net0", "virtio,bridge=vmbr0")]))),
            "VM.Config.Network@/vms/100 & SDN.Use@/sdn/zones/localnetwork/vmbr0",
        ),
        sample("vmctl set 100 --args -S", vm(VmRequest::Set(set(&[("args", "-S")]))), "root"),
        sample("vmctl set 100 --serial0 socket", vm(VmRequest::Set(set(&[("serial0", "socket")]))), "VM.Config.HWType@/vms/100"),
        sample("vmctl set 100 --serial0 /dev/ttyS0", vm(VmRequest::Set(set(&[("serial0", "/dev/ttyS0")]))), "root"),
        sample("vmctl set 100 --delete net0", vm(VmRequest::Set(delete(&["net0"]))), "VM.Config.Network@/vms/100"),
        sample("vmctl set 100 --delete ide2", vm(VmRequest::Set(delete(&["ide2"]))), "VM.Config.Disk@/vms/100").note(
            "The table does not know the old value: a deleted drive counts as a disk, where Proxmox asks VM.Config.CDROM for a CD-ROM drive.",
        ),
        sample("vmctl set 100 --revert memory", vm(VmRequest::Set(revert(&["memory"]))), "VM.Config.Memory@/vms/100"),
        sample("vmctl config 100", vm(VmRequest::Config(config())), "VM.Audit@/vms/100"),
        sample("vmctl pending 100", vm(VmRequest::Pending { vmid: v }), "VM.Audit@/vms/100"),
        sample("vmctl list", vm(VmRequest::List), "-").note("Lists only the VMs the caller may audit."),
        sample("vmctl destroy 100", vm(VmRequest::Destroy(DestroyGuest { vmid: v, purge: false, destroy_unreferenced_disks: None, skiplock: false })), "VM.Allocate@/vms/100"),
        sample(
            "vmctl destroy 100 --skiplock",
            vm(VmRequest::Destroy(DestroyGuest { vmid: v, purge: false, destroy_unreferenced_disks: None, skiplock: true })),
            "root",
        ),
        sample("vmctl set 100 --hookscript local:snippets/hook.pl", vm(VmRequest::Set(set(&[("hookscript", "local:snippets/hook.pl")]))), "root"),
        sample(
            "vmctl move-disk 100 scsi1 --target-vmid 101 --target-disk scsi3",
            vm(VmRequest::MoveDisk(MoveDisk {
                vmid: v,
                disk: "scsi1".into(),
                storage: String::new(),
                format: None,
                delete: false,
                target_vmid: Some(id(OTHER)),
                target_disk: Some("scsi3".into()),
                bwlimit: None,
            })),
            "VM.Config.Disk@/vms/100 & VM.Config.Disk@/vms/101",
        ),
        sample(
            "vmctl restore /mnt/backup/vzdump-qemu-100.vma 100",
            vm(VmRequest::Restore(restore("/mnt/backup/vzdump-qemu-100.vma", None, None))),
            "root",
        )
        .note("A path inside a storage is rewritten to its volume id before the table sees it."),
        sample("vmctl nextid", vm(VmRequest::NextId), "VM.Allocate@/vms").note(
            "Proxmox answers anyone; Hearth reserves the id for ten minutes, so it asks what creating a guest asks.",
        ),
        sample("vmctl unlock 100", vm(VmRequest::Unlock { vmid: v }), "root"),
        sample("vmctl start 100", vm(VmRequest::Start { vmid: v, timeout: None }), "VM.PowerMgmt@/vms/100"),
        sample(
            "vmctl stop 100 --overrule-shutdown 1",
            vm(VmRequest::Stop { vmid: v, overrule_shutdown: true, skiplock: false, keep_active: false }),
            "VM.PowerMgmt@/vms/100",
        ),
        sample(
            "vmctl stop 100 --skiplock",
            vm(VmRequest::Stop { vmid: v, overrule_shutdown: false, skiplock: true, keep_active: false }),
            "root",
        ),
        sample(
            "vmctl stop 100 --keepActive",
            vm(VmRequest::Stop { vmid: v, overrule_shutdown: false, skiplock: false, keep_active: true }),
            "root",
        ),
        sample(
            "vmctl shutdown 100",
            vm(VmRequest::Shutdown { vmid: v, timeout: None, force_stop: false }),
            "VM.PowerMgmt@/vms/100",
        ),
        sample("vmctl reboot 100", vm(VmRequest::Reboot { vmid: v, timeout: None }), "VM.PowerMgmt@/vms/100"),
        sample(
            "vmctl suspend 100",
            vm(VmRequest::Suspend { vmid: v, todisk: false, statestorage: None }),
            "VM.PowerMgmt@/vms/100",
        ),
        sample(
            "vmctl suspend 100 --todisk --statestorage local",
            vm(VmRequest::Suspend { vmid: v, todisk: true, statestorage: Some("local".into()) }),
            "VM.PowerMgmt@/vms/100",
        )
        .note("Datastore.AllocateSpace on the state's storage is checked by the handler, which picks the default storage."),
        sample("vmctl reset 100", vm(VmRequest::Reset { vmid: v, skiplock: false }), "VM.PowerMgmt@/vms/100"),
        sample("vmctl reset 100 --skiplock", vm(VmRequest::Reset { vmid: v, skiplock: true }), "root"),
        sample(
            "vmctl sendkey 100 ctrl-alt-delete",
            vm(VmRequest::SendKey { vmid: v, key: "ctrl-alt-delete".into(), skiplock: false }),
            "VM.Console@/vms/100",
        ),
        sample(
            "vmctl sendkey 100 ret --skiplock",
            vm(VmRequest::SendKey { vmid: v, key: "ret".into(), skiplock: true }),
            "root",
        ),
        sample(
            "vmctl guest cmd 100 network-get-interfaces",
            vm(VmRequest::Agent { vmid: v, command: "network-get-interfaces".into() }),
            "VM.GuestAgent.Audit@/vms/100 | VM.GuestAgent.Unrestricted@/vms/100",
        ),
        sample(
            "vmctl guest cmd 100 fsfreeze-freeze",
            vm(VmRequest::Agent { vmid: v, command: "fsfreeze-freeze".into() }),
            "VM.GuestAgent.FileSystemMgmt@/vms/100 | VM.GuestAgent.Unrestricted@/vms/100",
        ),
        sample(
            "vmctl guest cmd 100 shutdown",
            vm(VmRequest::Agent { vmid: v, command: "shutdown".into() }),
            "VM.PowerMgmt@/vms/100 | VM.GuestAgent.Unrestricted@/vms/100",
        ),
        sample(
            "vmctl guest exec 100 -- echo hi",
            vm(VmRequest::AgentExec { vmid: v, command: vec!["echo".into(), "hi".into()], input_data: None }),
            "VM.GuestAgent.Unrestricted@/vms/100",
        ),
        sample(
            "vmctl guest exec-status 100 42",
            vm(VmRequest::AgentExecStatus { vmid: v, pid: 42 }),
            "VM.GuestAgent.Unrestricted@/vms/100",
        ),
        sample(
            "vmctl guest passwd 100 root",
            vm(VmRequest::AgentPasswd {
                vmid: v,
                username: "root".into(),
                password: Secret::new("s3cret!"),
                crypted: false,
            }),
            "VM.GuestAgent.Unrestricted@/vms/100",
        ),
        sample(
            "vmctl disk rescan --vmid 100",
            vm(VmRequest::Rescan { vmid: Some(v), dryrun: false }),
            "VM.Config.Disk@/vms/100",
        )
        .note("Proxmox's qm disk rescan runs on the host as root; Hearth lets a VM's disk admin rescan that VM."),
        sample("vmctl disk rescan", vm(VmRequest::Rescan { vmid: None, dryrun: true }), "root"),
        sample(
            "vmctl importovf 100 /srv/x.ovf local",
            vm(VmRequest::ImportOvf {
                vmid: v,
                manifest: "/srv/x.ovf".into(),
                storage: "local".into(),
                format: None,
                dryrun: false,
            }),
            "root",
        ),
        sample("vmctl resume 100", vm(VmRequest::Resume { vmid: v }), "VM.PowerMgmt@/vms/100"),
        sample("vmctl status 100", vm(VmRequest::Status { vmid: v, verbose: false }), "VM.Audit@/vms/100"),
        sample("vmctl terminal 100", vm(VmRequest::Terminal { vmid: v, serial: 0 }), "VM.Console@/vms/100"),
        sample("vmctl monitor 100", vm(VmRequest::Monitor { vmid: v, command: "info status".into() }), "root").note(
            "Proxmox asks Sys.Modify on / for commands beyond `info`; Hearth keeps the monitor root's, as `qm monitor` on the host.",
        ),
        sample(
            "vmctl snapshot 100 s1",
            vm(VmRequest::Snapshot { vmid: v, name: "s1".into(), description: None, vmstate: false }),
            "VM.Snapshot@/vms/100",
        ),
        sample("vmctl listsnapshot 100", vm(VmRequest::ListSnapshot { vmid: v }), "VM.Audit@/vms/100"),
        sample("vmctl rollback 100 s1", vm(VmRequest::Rollback { vmid: v, name: "s1".into() }), "VM.Snapshot.Rollback@/vms/100")
            .note("Proxmox also accepts VM.Snapshot; Hearth asks the privilege named for it (every built-in role with VM.Snapshot holds both)."),
        sample("vmctl delsnapshot 100 s1", vm(VmRequest::DelSnapshot { vmid: v, name: "s1".into() }), "VM.Snapshot@/vms/100"),
        sample("vmctl template 100", vm(VmRequest::Template { vmid: v }), "VM.Allocate@/vms/100"),
        sample("vmctl clone 100 101", vm(VmRequest::Clone(clone(OWN, OTHER, None))), "VM.Clone@/vms/100 & VM.Allocate@/vms/101")
            .note("Datastore.AllocateSpace on the storages of the copies is checked by the handler, which knows the disks."),
        sample(
            "vmctl clone 101 100 --target local",
            vm(VmRequest::Clone(clone(OTHER, OWN, Some("local")))),
            "VM.Clone@/vms/101 & VM.Allocate@/vms/100 & Datastore.AllocateSpace@/storage/local",
        ),
        sample(
            "vmctl resize 100 scsi0 +1G",
            vm(VmRequest::Resize { vmid: v, disk: "scsi0".into(), size: "+1G".into() }),
            "VM.Config.Disk@/vms/100",
        )
        .note("The handler also asks Datastore.AllocateSpace on the disk's storage, which the table cannot see."),
        sample("vmctl showcmd 100", vm(VmRequest::ShowCmd { vmid: v, pretty: false }), "root"),
        sample(
            "vmctl move-disk 100 scsi0 local",
            vm(VmRequest::MoveDisk(MoveDisk {
                vmid: v,
                disk: "scsi0".into(),
                storage: "local".into(),
                format: None,
                delete: false,
                target_vmid: None,
                target_disk: None,
                bwlimit: None,
            })),
            "VM.Config.Disk@/vms/100 & Datastore.AllocateSpace@/storage/local",
        ),
        sample(
            "vmctl disk import 100 disk.qcow2 local",
            vm(VmRequest::ImportDisk(ImportDisk {
                vmid: v,
                storage: "local".into(),
                format: None,
                source: "disk.qcow2".into(),
            })),
            "VM.Config.Disk@/vms/100 & Datastore.AllocateSpace@/storage/local",
        )
        .note("`qm disk import` is root's in Proxmox; Hearth reads the image through the caller's own descriptor, so it asks what the API's `import-from` asks."),
        sample(
            "vmctl unlink 100 --idlist scsi1",
            vm(VmRequest::Unlink { vmid: v, idlist: strings(&["scsi1"]), force: false }),
            "VM.Config.Disk@/vms/100",
        ),
        sample("vmctl cleanup 100", vm(VmRequest::Cleanup { vmid: v }), "VM.PowerMgmt@/vms/100").note(
            "`qm cleanup` is run by root's qmeventd in Proxmox; Hearth lets whoever may stop the VM clear what a QEMU that is gone left behind.",
        ),
        sample(
            "vmctl cloudinit dump 100 user",
            vm(VmRequest::CloudinitDump { vmid: v, config_type: "user".into() }),
            "VM.Audit@/vms/100",
        )
        .note("The password shows masked unless the caller also has VM.Config.Cloudinit, as in Proxmox."),
        sample("vmctl cloudinit pending 100", vm(VmRequest::CloudinitPending { vmid: v }), "VM.Audit@/vms/100"),
        sample("vmctl cloudinit update 100", vm(VmRequest::CloudinitUpdate { vmid: v }), "VM.Config.Cloudinit@/vms/100"),
        sample(
            "vmctl set 100 --ide2 local:cloudinit",
            vm(VmRequest::Set(set(&[("ide2", "local:cloudinit")]))),
            "VM.Config.Cloudinit@/vms/100 & Datastore.AllocateSpace@/storage/local",
        )
        .note("Proxmox accepts VM.Config.CDROM too and asks nothing on the storage; Hearth asks for the space the drive takes."),
        sample(
            "vmctl set 100 --cicustom user=local:snippets/user.yaml",
            vm(VmRequest::Set(set(&[("cicustom", "user=local:snippets/user.yaml")]))),
            "VM.Config.Cloudinit@/vms/100 & Datastore.Allocate@/storage/local",
        )
        .note("Proxmox does not check the snippets; Hearth asks what using any snippet volume asks."),
        sample(
            "vmctl set 100 --scsi1 local:0,import-from=/srv/images/disk.qcow2",
            vm(VmRequest::Set(set(&[("scsi1", "local:0,import-from=/srv/images/disk.qcow2")]))),
            "root",
        ),
        sample(
            "vmctl set 100 --scsi1 local:0,import-from=local:import/disk.qcow2",
            vm(VmRequest::Set(set(&[("scsi1", "local:0,import-from=local:import/disk.qcow2")]))),
            "VM.Config.Disk@/vms/100 & Datastore.AllocateSpace@/storage/local & (Datastore.Allocate@/storage/local \
             | Datastore.AllocateSpace@/storage/local | Datastore.Audit@/storage/local)",
        ),
        sample(
            "vmctl set 100 --scsi1 local:0,import-from=local:101/vm-101-disk-0.qcow2",
            vm(VmRequest::Set(set(&[("scsi1", "local:0,import-from=local:101/vm-101-disk-0.qcow2")]))),
            "VM.Config.Disk@/vms/100 & Datastore.AllocateSpace@/storage/local & VM.Clone@/vms/101",
        ),
        sample("vmctl backup 100", vm(VmRequest::Backup(backup(None, None))), "VM.Backup@/vms/100")
            .note("Datastore.AllocateSpace on the default storage is checked by the handler once it is chosen."),
        sample(
            "vmctl backup 100 --storage local",
            vm(VmRequest::Backup(backup(Some("local"), None))),
            "VM.Backup@/vms/100 & Datastore.AllocateSpace@/storage/local",
        ),
        sample(
            "vmctl backup 100 --storage local --prune-backups keep-last=1",
            vm(VmRequest::Backup(backup(Some("local"), Some("keep-last=1")))),
            "VM.Backup@/vms/100 & Datastore.AllocateSpace,Datastore.Allocate@/storage/local",
        ),
        sample(
            "vmctl restore 100 local:backup/vzdump-qemu-100-2025_01_01-00_00_00.vma.zst",
            vm(VmRequest::Restore(restore(OWN_BACKUP, None, None))),
            "VM.Allocate@/vms/100 & (Datastore.Allocate@/storage/local \
             | Datastore.AllocateSpace@/storage/local & VM.Backup@/vms/100)",
        )
        .note("Proxmox reads a guest's own archive unchecked and lets VM.Backup alone restore over an existing guest; Hearth asks what reading any backup asks, and VM.Allocate. What the archive's configuration brings in is checked by the handler."),
        sample(
            "vmctl restore 100 local:backup/vzdump-qemu-101-2025_01_01-00_00_00.vma.zst",
            vm(VmRequest::Restore(restore(OTHER_BACKUP, None, None))),
            "VM.Allocate@/vms/100 & (Datastore.Allocate@/storage/local \
             | Datastore.AllocateSpace@/storage/local & VM.Backup@/vms/101)",
        ),
        sample(
            "vmctl restore 100 local:backup/vzdump-qemu-101-2025_01_01-00_00_00.vma.zst --storage local",
            vm(VmRequest::Restore(restore(OTHER_BACKUP, Some("local"), None))),
            "VM.Allocate@/vms/100 & Datastore.AllocateSpace@/storage/local & (Datastore.Allocate@/storage/local \
             | VM.Backup@/vms/101)",
        ),
    ]
}

fn ct_samples() -> Vec<Sample> {
    let v = id(OWN);
    vec![
        sample(
            "ctctl create 100 local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
            ct(CtRequest::Create(create_ct(&[]))),
            "VM.Allocate@/vms/100 & (Datastore.Allocate@/storage/local | Datastore.AllocateSpace@/storage/local \
             | Datastore.Audit@/storage/local) & Datastore.AllocateSpace@/storage/local",
        )
        .note("The root file system defaults to 4 GiB on `local`, as pct's."),
        sample(
            "ctctl create 100 local:vztmpl/… --rootfs local:8 --unprivileged 0",
            ct(CtRequest::Create(create_ct(&[("rootfs", "local:8"), ("unprivileged", "0")]))),
            "root",
        )
        .note("Proxmox asks Sys.Modify on / for a privileged container; Hearth keeps it root's, as the container's root is host root."),
        sample(
            "ctctl create 100 local:vztmpl/… --rootfs local:8 --net0 name=eth0,bridge=vmbr0",
            ct(CtRequest::Create(create_ct(&[("rootfs", "local:8"), ("net0", "name=eth0,bridge=vmbr0")]))),
            "VM.Allocate@/vms/100 & (Datastore.Allocate@/storage/local | Datastore.AllocateSpace@/storage/local \
             | Datastore.Audit@/storage/local) & Datastore.AllocateSpace@/storage/local \
             & SDN.Use@/sdn/zones/localnetwork/vmbr0",
        ),
        sample(
            "ctctl create 100 local:vztmpl/… --rootfs local:8 --mp0 /srv,mp=/data",
            ct(CtRequest::Create(create_ct(&[("rootfs", "local:8"), ("mp0", "/srv,mp=/data")]))),
            "root",
        ),
        sample(
            "ctctl create 100 local:vztmpl/… --rootfs local:8 --features keyctl=1",
            ct(CtRequest::Create(create_ct(&[("rootfs", "local:8"), ("features", "keyctl=1")]))),
            "root",
        ),
        sample("ctctl set 100 --memory 512", ct(CtRequest::Set(set(&[("memory", "512")]))), "VM.Config.Memory@/vms/100"),
        sample("ctctl set 100 --cores 2", ct(CtRequest::Set(set(&[("cores", "2")]))), "VM.Config.CPU@/vms/100"),
        sample("ctctl set 100 --hostname web", ct(CtRequest::Set(set(&[("hostname", "web")]))), "VM.Config.Network@/vms/100"),
        sample("ctctl set 100 --description x", ct(CtRequest::Set(set(&[("description", "x")]))), "VM.Config.Options@/vms/100"),
        sample(
            "ctctl set 100 --startup order=1",
            ct(CtRequest::Set(set(&[("startup", "order=1")]))),
            "VM.Config.Options@/vms/100 & Sys.Modify@/",
        )
        .note("Proxmox asks Sys.Modify on / for a VM's startup only; containers share Hearth's one start order with the VMs."),
        sample(
            "ctctl set 100 --net0 name=eth0,bridge=vmbr0",
            ct(CtRequest::Set(set(&[("net0", "name=eth0,bridge=vmbr0")]))),
            "VM.Config.Network@/vms/100 & SDN.Use@/sdn/zones/localnetwork/vmbr0",
        ),
        sample(
            "ctctl set 100 --mp0 local:4,mp=/data",
            ct(CtRequest::Set(set(&[("mp0", "local:4,mp=/data")]))),
            "VM.Config.Disk@/vms/100 & Datastore.AllocateSpace@/storage/local",
        ),
        sample(
            "ctctl set 100 --mp0 local:101/vm-101-disk-0.raw,mp=/data",
            ct(CtRequest::Set(set(&[("mp0", "local:101/vm-101-disk-0.raw,mp=/data")]))),
            "VM.Config.Disk@/vms/100 & (Datastore.Allocate@/storage/local \
             | Datastore.Audit@/storage/local & VM.Config.Disk@/vms/101)",
        ),
        sample("ctctl set 100 --mp0 /srv,mp=/data", ct(CtRequest::Set(set(&[("mp0", "/srv,mp=/data")]))), "root"),
        sample("ctctl set 100 --features nesting=1", ct(CtRequest::Set(set(&[("features", "nesting=1")]))), "VM.Allocate@/vms/100"),
        sample("ctctl set 100 --features keyctl=1", ct(CtRequest::Set(set(&[("features", "keyctl=1")]))), "root"),
        sample("ctctl set 100 --unprivileged 0", ct(CtRequest::Set(set(&[("unprivileged", "0")]))), "root"),
        sample("ctctl config 100", ct(CtRequest::Config(config())), "VM.Audit@/vms/100"),
        sample("ctctl pending 100", ct(CtRequest::Pending { vmid: v }), "VM.Audit@/vms/100"),
        sample("ctctl list", ct(CtRequest::List), "-").note("Lists only the containers the caller may audit."),
        sample("ctctl destroy 100", ct(CtRequest::Destroy(DestroyGuest { vmid: v, purge: false, destroy_unreferenced_disks: None, skiplock: false })), "VM.Allocate@/vms/100"),
        sample("ctctl unlock 100", ct(CtRequest::Unlock { vmid: v }), "root"),
        sample("ctctl start 100", ct(CtRequest::Start { vmid: v, debug: false }), "VM.PowerMgmt@/vms/100"),
        sample(
            "ctctl move-volume 100 rootfs fast",
            ct(CtRequest::MoveVolume(MoveDisk {
                vmid: v,
                disk: "rootfs".into(),
                storage: "fast".into(),
                format: None,
                delete: false,
                target_vmid: None,
                target_disk: None,
                bwlimit: None,
            })),
            "VM.Config.Disk@/vms/100 & Datastore.AllocateSpace@/storage/fast",
        ),
        sample("ctctl cpusets", ct(CtRequest::CpuSets), "-").note("Lists only the containers the caller may audit."),
        sample("ctctl stop 100", ct(CtRequest::Stop { vmid: v }), "VM.PowerMgmt@/vms/100"),
        sample(
            "ctctl shutdown 100",
            ct(CtRequest::Shutdown { vmid: v, timeout: None, force_stop: false }),
            "VM.PowerMgmt@/vms/100",
        ),
        sample("ctctl reboot 100", ct(CtRequest::Reboot { vmid: v, timeout: None }), "VM.PowerMgmt@/vms/100"),
        sample("ctctl status 100", ct(CtRequest::Status { vmid: v, verbose: false }), "VM.Audit@/vms/100"),
        sample("ctctl console 100", ct(CtRequest::Console { vmid: v, tty: None }), "VM.Console@/vms/100"),
        sample(
            "ctctl exec 100 -- id",
            ct(CtRequest::Exec(ExecInCt { vmid: v, command: strings(&["id"]), env: Vec::new(), term: None, winsize: None })),
            "VM.Allocate@/vms/100",
        )
        .note("`pct exec` is root's in Proxmox; Hearth lets whoever may destroy and recreate the container be root inside it."),
        sample(
            "ctctl push 100 file /root/file",
            ct(CtRequest::Push { vmid: v, path: "/root/file".into(), user: None, group: None, perms: None }),
            "VM.Allocate@/vms/100",
        )
        .note("As `ctctl exec`."),
        sample("ctctl pull 100 /etc/hostname file", ct(CtRequest::Pull { vmid: v, path: "/etc/hostname".into() }), "VM.Allocate@/vms/100")
            .note("As `ctctl exec`."),
        sample("ctctl mount 100", ct(CtRequest::Mount { vmid: v }), "root"),
        sample("ctctl unmount 100", ct(CtRequest::Unmount { vmid: v }), "root"),
        sample("ctctl df 100", ct(CtRequest::Df { vmid: v }), "VM.Audit@/vms/100")
            .note("`pct df` is root's in Proxmox; usage is what `status` already shows an auditor."),
        sample(
            "ctctl snapshot 100 s1",
            ct(CtRequest::Snapshot { vmid: v, name: "s1".into(), description: None }),
            "VM.Snapshot@/vms/100",
        ),
        sample("ctctl listsnapshot 100", ct(CtRequest::ListSnapshot { vmid: v }), "VM.Audit@/vms/100"),
        sample("ctctl rollback 100 s1", ct(CtRequest::Rollback { vmid: v, name: "s1".into() }), "VM.Snapshot.Rollback@/vms/100")
            .note("As `vmctl rollback`."),
        sample("ctctl delsnapshot 100 s1", ct(CtRequest::DelSnapshot { vmid: v, name: "s1".into() }), "VM.Snapshot@/vms/100"),
        sample("ctctl template 100", ct(CtRequest::Template { vmid: v }), "VM.Allocate@/vms/100"),
        sample(
            "ctctl clone 100 101 --target local",
            ct(CtRequest::Clone(clone(OWN, OTHER, Some("local")))),
            "VM.Clone@/vms/100 & VM.Allocate@/vms/101 & Datastore.AllocateSpace@/storage/local",
        ),
        sample(
            "ctctl resize 100 rootfs +1G",
            ct(CtRequest::Resize { vmid: v, disk: "rootfs".into(), size: "+1G".into() }),
            "VM.Config.Disk@/vms/100",
        )
        .note("As `vmctl resize`."),
        sample("ctctl backup 100", ct(CtRequest::Backup(backup(None, None))), "VM.Backup@/vms/100").note("As `vmctl backup`."),
        sample(
            "ctctl backup 100 --storage local",
            ct(CtRequest::Backup(backup(Some("local"), None))),
            "VM.Backup@/vms/100 & Datastore.AllocateSpace@/storage/local",
        ),
        sample(
            "ctctl restore 100 local:backup/vzdump-lxc-100-2025_01_01-00_00_00.tar.zst",
            ct(CtRequest::Restore(restore(OWN_CT_BACKUP, None, None))),
            "VM.Allocate@/vms/100 & (Datastore.Allocate@/storage/local \
             | Datastore.AllocateSpace@/storage/local & VM.Backup@/vms/100)",
        )
        .note("As `vmctl restore` of the guest's own archive."),
        sample(
            "ctctl restore 100 local:backup/vzdump-lxc-101-2025_01_01-00_00_00.tar.zst --storage local",
            ct(CtRequest::Restore(restore(OTHER_CT_BACKUP, Some("local"), None))),
            "VM.Allocate@/vms/100 & Datastore.AllocateSpace@/storage/local & (Datastore.Allocate@/storage/local \
             | VM.Backup@/vms/101)",
        ),
        sample(
            "ctctl restore 100 local:backup/vzdump-lxc-100-2025_01_01-00_00_00.tar.zst --unprivileged 0",
            ct(CtRequest::Restore(restore(OWN_CT_BACKUP, None, Some(false)))),
            "root",
        )
        .note("As `ctctl create --unprivileged 0`."),
    ]
}

fn task_and_node_samples() -> Vec<Sample> {
    let own = upid(CALLER);
    let other = upid("bob@pam");
    vec![
        sample("clusterctl task list", task(TaskRequest::List(TaskFilter::default())), "-")
            .note("Lists the caller's own tasks, and everyone's with Sys.Audit on /nodes/node1."),
        sample("clusterctl task log UPID:…:alice@pam:", task(TaskRequest::Log { upid: own.clone(), start: 0 }), "-"),
        sample(
            "clusterctl task log UPID:…:bob@pam:",
            task(TaskRequest::Log { upid: other.clone(), start: 0 }),
            "Sys.Audit@/nodes/node1",
        ),
        sample("clusterctl task status UPID:…:alice@pam:", task(TaskRequest::Status { upid: own.clone() }), "-"),
        sample(
            "clusterctl task status UPID:…:bob@pam:",
            task(TaskRequest::Status { upid: other.clone() }),
            "Sys.Audit@/nodes/node1",
        ),
        sample("(following a task) UPID:…:alice@pam:", task(TaskRequest::Follow { upid: own.clone() }), "-"),
        sample(
            "(following a task) UPID:…:bob@pam:",
            task(TaskRequest::Follow { upid: other.clone() }),
            "Sys.Audit@/nodes/node1",
        ),
        sample("clusterctl task stop UPID:…:alice@pam:", task(TaskRequest::Stop { upid: own }), "-"),
        sample(
            "clusterctl task stop UPID:…:bob@pam:",
            task(TaskRequest::Stop { upid: other }),
            "Sys.Modify@/nodes/node1",
        ),
        sample(
            "clusterctl node startall",
            Request::Node(NodeRequest::StartAll { force: false, vms: None }),
            "VM.PowerMgmt@/",
        ),
        sample(
            "clusterctl node stopall",
            Request::Node(NodeRequest::StopAll { timeout: None, vms: None }),
            "VM.PowerMgmt@/",
        ),
        sample("clusterctl node config get", Request::Node(NodeRequest::ConfigGet), "Sys.Audit@/nodes/node1"),
        sample(
            "clusterctl node config set --startall-onboot-delay 10",
            Request::Node(NodeRequest::ConfigSet {
                options: vec![("startall-onboot-delay".into(), "10".into())],
                delete: vec![],
            }),
            "Sys.Modify@/nodes/node1",
        ),
        sample(
            "clusterctl node wakeonlan node2",
            Request::Node(NodeRequest::WakeOnLan { node: "node2".into() }),
            "Sys.PowerMgmt@/nodes/node2",
        ),
    ]
}

fn storage_samples() -> Vec<Sample> {
    let volume = || "local:100/vm-100-disk-1.raw".to_owned();
    let pbs = "Proxmox Backup Server's own privileges have no Proxmox VE counterpart; Hearth asks Datastore.Allocate.";
    vec![
        sample(
            "storectl add dir nfs1 --path /srv",
            storage(StorageRequest::Add(AddStorage {
                storage: "nfs1".into(),
                storage_type: "dir".into(),
                options: pairs(&[("path", "/srv")]),
            })),
            "Datastore.Allocate@/storage",
        ),
        sample(
            "storectl add chunkstore store1 --path /srv --keyfile /etc/key",
            storage(StorageRequest::Add(AddStorage {
                storage: "store1".into(),
                storage_type: "chunkstore".into(),
                options: pairs(&[("path", "/srv"), ("keyfile", "/etc/key")]),
            })),
            "root",
        )
        .note("hearthd reads the key file as root."),
        sample(
            "storectl set local --content images",
            storage(StorageRequest::Set(SetStorage {
                storage: "local".into(),
                options: pairs(&[("content", "images")]),
                delete: Vec::new(),
                digest: None,
            })),
            "Datastore.Allocate@/storage",
        ),
        sample("storectl remove local", storage(StorageRequest::Remove { storage: "local".into() }), "Datastore.Allocate@/storage"),
        sample("storectl config local", storage(StorageRequest::Config { storage: Some("local".into()) }), "Datastore.Audit@/storage/local")
            .note("Proxmox asks Datastore.Allocate to read one definition but lists them all to Datastore.Audit; Hearth asks the listing's privilege."),
        sample("storectl config", storage(StorageRequest::Config { storage: None }), "-")
            .note("Lists only the storages the caller may audit."),
        sample(
            "storectl status --storage local",
            storage(StorageRequest::Status(StorageStatusFilter { storage: Some("local".into()), ..Default::default() })),
            "Datastore.Audit@/storage/local",
        )
        .note("Proxmox also accepts Datastore.AllocateSpace alone; no built-in role holds it without Datastore.Audit."),
        sample("storectl status", storage(StorageRequest::Status(StorageStatusFilter::default())), "-")
            .note("Lists only the storages the caller may audit."),
        sample(
            "storectl list local",
            storage(StorageRequest::List(ListVolumes { storage: "local".into(), content: None, vmid: None })),
            "Datastore.Audit@/storage/local",
        )
        .note("As `storectl status --storage`."),
        sample(
            "storectl alloc local 100 vm-100-disk-1 4G",
            storage(StorageRequest::Alloc(AllocVolume {
                storage: "local".into(),
                vmid: id(OWN),
                name: "vm-100-disk-1".into(),
                size: "4G".into(),
                format: None,
            })),
            "Datastore.AllocateSpace@/storage/local",
        ),
        sample("storectl free local:100/vm-100-disk-1.raw", storage(StorageRequest::Free { volid: volume() }), "Datastore.Allocate@/storage/local"),
        sample("storectl path local:100/vm-100-disk-1.raw", storage(StorageRequest::Path { volid: volume() }), "Datastore.Allocate@/storage/local")
            .note("`pvesm path` is root's in Proxmox; Hearth shows host paths to whoever may allocate the storage."),
        sample(
            "storectl import local:100/vm-100-disk-1.raw raw+size disk.raw",
            storage(StorageRequest::Import(ImportVolume { volid: volume(), format: "raw+size".into(), allow_rename: false })),
            "Datastore.Allocate@/storage/local",
        )
        .note("`pvesm import` is root's in Proxmox; Hearth reads the stream through the caller's own descriptor."),
        sample(
            "storectl export local:100/vm-100-disk-1.raw raw+size disk.raw",
            storage(StorageRequest::Export(ExportVolume { volid: volume(), format: "raw+size".into(), with_snapshots: None })),
            "Datastore.Allocate@/storage/local",
        )
        .note("As `storectl import`."),
        sample(
            "storectl upload local debian-12.iso --content iso",
            storage(StorageRequest::Upload(UploadFile {
                storage: "local".into(),
                content: "iso".into(),
                filename: "debian-12.iso".into(),
            })),
            "Datastore.AllocateTemplate@/storage/local",
        ),
        sample(
            "storectl backup run --vmid 100 --storage local",
            storage(StorageRequest::BackupRun(run(&[OWN], false, Some("local")))),
            "Datastore.AllocateSpace@/storage/local & VM.Backup@/vms/100",
        ),
        sample(
            "storectl backup run --vmid 100 --vmid 101 --storage local",
            storage(StorageRequest::BackupRun(run(&[OWN, OTHER], false, Some("local")))),
            "Datastore.AllocateSpace@/storage/local & VM.Backup@/vms/100 & VM.Backup@/vms/101",
        ),
        sample(
            "storectl backup run --all --storage local --prune-backups keep-last=1",
            storage(StorageRequest::BackupRun(BackupRun {
                options: BackupOptions {
                    storage: Some("local".into()),
                    prune_backups: Some("keep-last=1".into()),
                    ..BackupOptions::default()
                },
                ..run(&[], true, None)
            })),
            "Datastore.AllocateSpace,Datastore.Allocate@/storage/local",
        )
        .note("VM.Backup on each guest of `--all` is checked by the handler, which knows the guests."),
        sample(
            "storectl vzdump 100 --dumpdir /mnt/backup",
            storage(StorageRequest::BackupRun(BackupRun {
                options: BackupOptions { dumpdir: Some("/mnt/backup".into()), ..BackupOptions::default() },
                ..run(&[OWN], false, None)
            })),
            "root",
        ),
        sample(
            "storectl vzdump 100 --stdout",
            storage(StorageRequest::BackupRun(BackupRun {
                options: BackupOptions { stdout: true, ..BackupOptions::default() },
                ..run(&[OWN], false, None)
            })),
            "VM.Backup@/vms/100",
        ),
        sample(
            "storectl vzdump 100 --storage local --fleecing enabled=1,storage=fast",
            storage(StorageRequest::BackupRun(BackupRun {
                options: BackupOptions {
                    storage: Some("local".into()),
                    fleecing: Some("enabled=1,storage=fast".into()),
                    ..BackupOptions::default()
                },
                ..run(&[OWN], false, Some("local"))
            })),
            "Datastore.AllocateSpace@/storage/local & VM.Backup@/vms/100 & Datastore.AllocateSpace@/storage/fast",
        ),
        sample(
            "storectl backup run --vmid 100",
            storage(StorageRequest::BackupRun(run(&[OWN], false, None))),
            "Datastore.AllocateSpace@/storage & VM.Backup@/vms/100",
        )
        .note("The default storage is chosen later, so the table asks Datastore.AllocateSpace on all of /storage."),
        sample(
            "storectl backup list --storage local",
            storage(StorageRequest::BackupList { storage: Some("local".into()), vmid: None }),
            "Datastore.Audit@/storage/local",
        )
        .note("As `storectl list`."),
        sample("storectl backup list", storage(StorageRequest::BackupList { storage: None, vmid: None }), "-")
            .note("Lists only the storages the caller may audit."),
        sample(
            "storectl backup prune local --vmid 100 --keep-last 1",
            storage(StorageRequest::BackupPrune(PruneBackups {
                storage: "local".into(),
                vmid: Some(id(OWN)),
                guest_type: None,
                keep: "keep-last=1".into(),
                dry_run: false,
            })),
            "Datastore.Allocate@/storage/local",
        )
        .note("Proxmox also accepts Datastore.AllocateSpace and VM.Backup on the guest named; Hearth asks what removing any backup asks."),
        sample(
            "storectl backup protect local:backup/vzdump-qemu-100-…",
            storage(StorageRequest::BackupProtect { volid: OWN_BACKUP.into(), protected: true }),
            "Datastore.Allocate@/storage/local",
        )
        .note("Proxmox asks read access to the backup; Hearth asks what removing it asks, since protection decides whether prune removes it."),
        sample(
            "storectl backup verify local:backup/ct/100/…",
            storage(StorageRequest::BackupVerify { target: CHUNK_SNAPSHOT.into() }),
            "Datastore.Allocate@/storage/local",
        )
        .note(pbs),
        sample("storectl backup verify local", storage(StorageRequest::BackupVerify { target: "local".into() }), "Datastore.Allocate@/storage/local")
            .note(pbs),
        sample("storectl backup gc local", storage(StorageRequest::BackupGc { storage: "local".into() }), "Datastore.Allocate@/storage/local")
            .note(pbs),
        sample(
            "storectl backup ls local:backup/ct/100/… /etc",
            storage(StorageRequest::BackupLs { volid: CHUNK_SNAPSHOT.into(), path: "/etc".into() }),
            "Datastore.Allocate@/storage/local",
        )
        .note(pbs),
        sample(
            "storectl backup extract local:backup/ct/100/… /etc",
            storage(StorageRequest::BackupExtract { volid: CHUNK_SNAPSHOT.into(), path: "/etc".into() }),
            "Datastore.Allocate@/storage/local",
        )
        .note(pbs),
        sample("storectl backup job add nightly --schedule daily", storage(StorageRequest::BackupJobAdd(job())), "Sys.Modify@/"),
        sample("storectl backup job set nightly --schedule daily", storage(StorageRequest::BackupJobSet(job())), "Sys.Modify@/"),
        sample("storectl backup job remove nightly", storage(StorageRequest::BackupJobRemove { id: "nightly".into() }), "Sys.Modify@/"),
        sample("storectl backup job list", storage(StorageRequest::BackupJobList), "Sys.Audit@/"),
        sample("storectl backup job run nightly", storage(StorageRequest::BackupJobRun { id: "nightly".into() }), "Sys.Modify@/"),
        sample("storectl backup job run-due", storage(StorageRequest::BackupJobRunDue), "Sys.Modify@/"),
        sample(
            "storectl scan lvm",
            storage(StorageRequest::Scan { kind: "lvm".into(), target: None }),
            "Datastore.Allocate@/storage",
        ),
        sample(
            "storectl extractconfig local:backup/vzdump-qemu-100-….vma.zst",
            storage(StorageRequest::ExtractConfig { volid: OWN_BACKUP.into() }),
            "Datastore.Allocate@/storage/local | Datastore.AllocateSpace@/storage/local & VM.Backup@/vms/100",
        ),
    ]
}

fn access_samples() -> Vec<Sample> {
    let bob = || "bob@pam".to_owned();
    let me = || CALLER.to_owned();
    let pool = |pool: &str, vms: &[u32], storage: &[&str]| AccessRequest::PoolModify {
        pool: pool.into(),
        comment: None,
        vms: vms.iter().map(|v| id(*v)).collect(),
        storage: strings(storage),
        delete: false,
    };
    vec![
        sample(
            "userctl user add bob@pam",
            access(AccessRequest::UserAdd { userid: bob(), options: Vec::new() }),
            "Realm.AllocateUser@/access/realm/pam & User.Modify@/access/groups",
        ),
        sample(
            "userctl user add bob@pam --groups admins",
            access(AccessRequest::UserAdd { userid: bob(), options: pairs(&[("groups", "admins")]) }),
            "Realm.AllocateUser@/access/realm/pam & (User.Modify@/access/groups | User.Modify@/access/groups/admins)",
        )
        .note("As Proxmox. Membership carries the group's roles, so the handler also refuses a group whose ACL entries the caller could not grant itself."),
        sample(
            "userctl user modify bob@pam --email bob@example.com",
            access(AccessRequest::UserModify { userid: bob(), options: pairs(&[("email", "bob@example.com")]), append: false }),
            "User.Modify@/access/groups",
        ),
        sample(
            "userctl user modify bob@pam --groups admins",
            access(AccessRequest::UserModify { userid: bob(), options: pairs(&[("groups", "admins")]), append: false }),
            "User.Modify@/access/groups",
        )
        .note("Proxmox also accepts User.Modify on a group the user is in; Hearth asks for all users. Joining or leaving a group is checked as for `userctl user add --groups`."),
        sample(
            "userctl user delete bob@pam",
            access(AccessRequest::UserDelete { userid: bob() }),
            "Realm.AllocateUser@/access/realm/pam & User.Modify@/access/groups",
        ),
        sample("userctl user list", access(AccessRequest::UserList), "-")
            .note("Lists every user for Sys.Audit or User.Modify on /access/groups, the caller otherwise."),
        sample("userctl user permissions alice@pam", access(AccessRequest::UserPermissions { userid: me(), path: None }), "-"),
        sample(
            "userctl user permissions bob@pam",
            access(AccessRequest::UserPermissions { userid: bob(), path: None }),
            "Sys.Audit@/access",
        ),
        sample(
            "userctl group add admins",
            access(AccessRequest::GroupAdd { group: "admins".into(), comment: None }),
            "Group.Allocate@/access/groups",
        ),
        sample(
            "userctl group modify admins --comment x",
            access(AccessRequest::GroupModify { group: "admins".into(), comment: Some("x".into()) }),
            "Group.Allocate@/access/groups",
        ),
        sample("userctl group delete admins", access(AccessRequest::GroupDelete { group: "admins".into() }), "Group.Allocate@/access/groups"),
        sample("userctl group list", access(AccessRequest::GroupList), "-")
            .note("Lists every group for Sys.Audit or Group.Allocate on /access/groups, the caller's otherwise."),
        sample(
            "userctl role add Ops --privs VM.Audit",
            access(AccessRequest::RoleAdd { role: "Ops".into(), privs: "VM.Audit".into() }),
            "Sys.Modify@/access",
        ),
        sample(
            "userctl role modify Ops --privs VM.Audit",
            access(AccessRequest::RoleModify { role: "Ops".into(), privs: "VM.Audit".into(), append: false }),
            "Sys.Modify@/access",
        ),
        sample("userctl role delete Ops", access(AccessRequest::RoleDelete { role: "Ops".into() }), "Sys.Modify@/access"),
        sample("userctl role list", access(AccessRequest::RoleList), "-"),
        sample(
            "userctl acl modify /vms/100 --roles PVEVMUser --users bob@pam",
            access(AccessRequest::AclModify {
                path: "/vms/100".into(),
                roles: strings(&["PVEVMUser"]),
                users: strings(&["bob@pam"]),
                groups: Vec::new(),
                tokens: Vec::new(),
                propagate: true,
                delete: false,
            }),
            "-",
        )
        .note("Decided by the handler against the model: Permissions.Modify on the path, or VM.Allocate, Datastore.Allocate or Pool.Allocate there and every privilege of each role granted, as Proxmox's."),
        sample("userctl acl list", access(AccessRequest::AclList), "-")
            .note("Lists the entries on paths where the caller holds Sys.Audit or Permissions.Modify."),
        sample(
            "userctl pool add team2",
            access(AccessRequest::PoolAdd { pool: "team2".into(), comment: None, vms: Vec::new(), storage: Vec::new() }),
            "Pool.Allocate@/pool/team2",
        ),
        sample(
            "userctl pool add team2 --vms 100 --storage local",
            access(AccessRequest::PoolAdd {
                pool: "team2".into(),
                comment: None,
                vms: vec![id(OWN)],
                storage: strings(&["local"]),
            }),
            "Pool.Allocate@/pool/team2 & VM.Allocate@/vms/100 & Datastore.Allocate@/storage/local",
        ),
        sample(
            "userctl pool modify team --vms 101",
            access(pool("team", &[OTHER], &[])),
            "Pool.Allocate@/pool/team & VM.Allocate@/vms/101",
        ),
        sample("userctl pool delete team", access(AccessRequest::PoolDelete { pool: "team".into() }), "Pool.Allocate@/pool/team"),
        sample("userctl pool list", access(AccessRequest::PoolList), "-")
            .note("Lists the pools on which the caller holds Pool.Audit."),
        sample(
            "userctl token add alice@pam ci",
            access(AccessRequest::TokenAdd { userid: me(), tokenid: "ci".into(), privsep: true, expire: None, comment: None }),
            "-",
        ),
        sample(
            "userctl token add bob@pam ci",
            access(AccessRequest::TokenAdd { userid: bob(), tokenid: "ci".into(), privsep: true, expire: None, comment: None }),
            "root",
        )
        .note("Proxmox lets User.Modify manage anyone's tokens; a token acts with its user's rights, so Hearth keeps another user's tokens root's."),
        sample(
            "userctl token remove bob@pam ci",
            access(AccessRequest::TokenRemove { userid: bob(), tokenid: "ci".into() }),
            "root",
        )
        .note("As `userctl token add`."),
        sample("userctl token list alice@pam", access(AccessRequest::TokenList { userid: me() }), "-"),
        sample(
            "userctl token modify bob@pam ci --comment x",
            access(AccessRequest::TokenModify {
                userid: bob(),
                tokenid: "ci".into(),
                privsep: None,
                expire: None,
                comment: Some("x".into()),
            }),
            "root",
        )
        .note("As `userctl token add`."),
        sample("userctl passwd alice@pam", access(AccessRequest::Passwd { userid: me(), password: Secret::new("secret") }), "-"),
        sample(
            "userctl passwd bob@pve",
            access(AccessRequest::Passwd { userid: "bob@pve".into(), password: Secret::new("secret") }),
            "Realm.AllocateUser@/access/realm/pve & User.Modify@/access/groups",
        ),
        sample("userctl tfa add alice@pam --type totp", access(AccessRequest::TfaAdd { userid: me(), kind: TfaKind::Totp }), "-"),
        sample(
            "userctl tfa add bob@pam --type totp",
            access(AccessRequest::TfaAdd { userid: bob(), kind: TfaKind::Totp }),
            "User.Modify@/access/groups",
        ),
        sample("userctl tfa list", access(AccessRequest::TfaList { userid: None }), "-")
            .note("Lists everyone's factors for User.Modify on /access/groups, the caller's otherwise."),
        sample("userctl tfa list bob@pam", access(AccessRequest::TfaList { userid: Some(bob()) }), "User.Modify@/access/groups"),
        sample(
            "userctl tfa delete bob@pam totp0",
            access(AccessRequest::TfaDelete { userid: bob(), id: "totp0".into() }),
            "User.Modify@/access/groups",
        ),
        sample(
            "userctl user tfa unlock bob@pam",
            access(AccessRequest::TfaUnlock { userid: bob() }),
            "User.Modify@/access/groups",
        ),
        sample("userctl realm list", access(AccessRequest::RealmList), "-"),
        sample(
            "userctl realm add corp --type ldap --server1 ldap.example.com --base_dn dc=example,dc=com --user_attr uid",
            access(AccessRequest::RealmAdd {
                realm: "corp".into(),
                kind: "ldap".into(),
                options: vec![
                    ("server1".into(), "ldap.example.com".into()),
                    ("base_dn".into(), "dc=example,dc=com".into()),
                    ("user_attr".into(), "uid".into()),
                ],
            }),
            "Realm.Allocate@/access/realm",
        ),
        sample(
            "userctl realm modify corp --comment x",
            access(AccessRequest::RealmModify {
                realm: "corp".into(),
                options: vec![("comment".into(), "x".into())],
                delete: vec![],
            }),
            "Realm.Allocate@/access/realm",
        ),
        sample(
            "userctl realm delete corp",
            access(AccessRequest::RealmDelete { realm: "corp".into() }),
            "Realm.Allocate@/access/realm",
        ),
        sample(
            "userctl realm sync corp",
            access(AccessRequest::RealmSync { realm: "corp".into(), options: vec![] }),
            "Realm.AllocateUser@/access/realm/corp & User.Modify@/access/groups",
        ),
    ]
}

/// The domain and variant name of a request: `("Vm", "Set")`.
pub fn variant(request: &Request) -> (&'static str, &'static str) {
    let domain: &'static str = request.into();
    let name: &'static str = match request {
        Request::Vm(r) => r.into(),
        Request::Ct(r) => r.into(),
        Request::Task(r) => r.into(),
        Request::Storage(r) => r.into(),
        Request::Node(r) => r.into(),
        Request::Access(r) => r.into(),
        Request::Network(r) => r.into(),
    };
    (domain, name)
}

/// Every request variant (`Vm::Set`) that no sample of `samples` is of: what the matrix and
/// the golden wire files insist is empty.
pub fn unsampled_variants(samples: &[Sample]) -> Vec<String> {
    use strum::VariantNames;
    let covered: std::collections::BTreeSet<(&str, &str)> = samples.iter().map(|s| variant(&s.request)).collect();
    let domains: [(&str, &[&str]); 7] = [
        ("Vm", VmRequest::VARIANTS),
        ("Ct", CtRequest::VARIANTS),
        ("Task", TaskRequest::VARIANTS),
        ("Storage", StorageRequest::VARIANTS),
        ("Node", NodeRequest::VARIANTS),
        ("Access", AccessRequest::VARIANTS),
        ("Network", NetworkRequest::VARIANTS),
    ];
    let mut missing: Vec<String> = domains
        .iter()
        .flat_map(|(domain, names)| names.iter().map(move |n| (*domain, *n)))
        .filter(|key| !covered.contains(key))
        .map(|(d, n)| format!("{d}::{n}"))
        .collect();
    if domains.len() != Request::VARIANTS.len() {
        missing.push("a new request domain: list its variants in unsampled_variants".into());
    }
    missing
}

/// What hearthd requires of a sample, as refusals and the table word it.
fn needs_text(request: &Request) -> String {
    let needs = required(request, NODE, &caller());
    let told: Vec<String> = needs.iter().filter(|n| !n.is_open()).map(|n| n.describe()).collect();
    if told.is_empty() { "anyone".to_owned() } else { told.join("; ") }
}

/// The permission table as Markdown, for `docs/permissions.md`.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Permissions\n\n\
         <!-- Generated by `cargo xtask gen` from crates/hearthd/src/permission_table.rs; do not edit. -->\n\n\
         What hearthd requires of each request before it has any effect, for a caller other than \
         root@pam (who may do everything). Each row is a sample request as `alice@pam` sends it on \
         node `node1`; guest 100 is the one the request is about, 101 another. \"anyone\" means the \
         request needs no privilege (lists then show only what the caller may see). Requirements \
         joined by `;` are all needed. Notes say where Hearth differs from Proxmox VE and what a \
         handler checks beyond this table.\n\n\
         A test checks every row against Proxmox VE's documented rule for every built-in role \
         granted on `/`, `/vms/100`, `/vms/101`, `/storage/local`, a pool holding guest 100 and `local`, and \
         `/sdn/zones/localnetwork/vmbr0`.\n",
    );
    let mut domain = "";
    for s in samples() {
        let (d, _) = variant(&s.request);
        if d != domain {
            domain = d;
            let title = match d {
                "Vm" => "Virtual machines (`vmctl`)",
                "Ct" => "Containers (`ctctl`)",
                "Task" => "Tasks (`clusterctl task`)",
                "Node" => "The node (`clusterctl node`)",
                "Storage" => "Storage and backups (`storectl`)",
                _ => "Users and permissions (`userctl`)",
            };
            out.push_str(&format!("\n## {title}\n\n| Request | Needs | Note |\n|---|---|---|\n"));
        }
        out.push_str(&format!("| `{}` | {} | {} |\n", cell(s.cli), cell(&needs_text(&s.request)), cell(s.note)));
    }
    out
}

/// Text that is safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod matrix;
