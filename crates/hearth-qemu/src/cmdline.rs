//! The `qemu-system-x86_64` command line for a VM configuration, built the way `qm showcmd`
//! builds it, from the merged configuration and what the caller resolved ([`Resolved`]).
//!
//! What follows qm: `-name <name>,debug-threads=on`, `-no-shutdown`, a QMP socket
//! `<run>/<vmid>.qmp`, the pidfile `<run>/<vmid>.pid`, `-daemonize`, `-nodefaults`,
//! `-boot menu=on,strict=on,reboot-timeout=1000`, `-smp <vcpus>,sockets=,cores=,maxcpus=`, the
//! CPU models and flags (`kvm64,enforce,+kvm_pv_eoi,+kvm_pv_unhalt,+lahf_lm,+sep`, the
//! `x86-64-v2-AES`… aliases), a balloon unless `balloon: 0`, disks as `-blockdev` nodes named
//! `drive-<key>` with one device per bus (controller and unit numbering as qm's
//! `print_drivedevice_full`), `bootindex=100…` from `boot: order=`, the default boot order of
//! qm (first disk, first CD-ROM, first NIC), NICs on `tap<vmid>i<n>`, serial ports on
//! `<run>/<vmid>.serialN` sockets, the guest agent on `<run>/<vmid>.qga`, VNC on a Unix socket.
//!
//! Where Hearth differs, and why:
//! - no `-id <vmid>`: that option comes from a pve-qemu patch and upstream QEMU refuses it; the
//!   vmid is in every socket and pidfile name instead;
//! - no fixed PCI addresses and no `-readconfig` bridge layout: QEMU assigns slots in the order
//!   of the devices, which this builder keeps stable;
//! - serial ports are `-device isa-serial,chardev=serialN,index=N` so `serial1` stays COM2 even
//!   without `serial0` (`-serial chardev:…` numbers ports by their order on the command line);
//! - `kvm: 1` on a host without usable KVM falls back to TCG with a warning instead of failing,
//!   and `cpu: host` becomes `max` under TCG;
//! - no qmeventd socket, no `aio=` unless configured (QEMU's default is `threads`), VNC without
//!   a password (the socket lives in a root-only directory);
//! - `args:` (raw QEMU arguments, root only as in Proxmox) is not read here: hearthd splits it
//!   into [`Resolved::extra`], which is appended as it is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use hearth_core::guest::Section;
use hearth_core::propstr::PropertyString;
use hearth_core::storage::Format;
use hearth_core::{Value, Vmid, vm};

mod devices;
mod drives;
mod hardware;

pub use hardware::HUGEPAGES_DIR;
#[cfg(test)]
mod tests;

/// The QEMU binary.
pub const PROGRAM: &str = "qemu-system-x86_64";
/// OVMF's code for `bios: ovmf` (Debian's `ovmf` package); read-only, shared by every VM.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
/// The template of a VM's EFI variables; each VM needs a writable copy ([`Resolved::efivars`]).
pub const OVMF_VARS_TEMPLATE: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// The variable store an `efidisk0` starts from, as Debian's ovmf package ships them: `efitype`
/// 2m (qm's default) or 4m, with Microsoft's and the distribution's Secure Boot keys enrolled
/// (`pre-enrolled-keys=1`) or empty.
pub fn ovmf_vars_template(efitype: Option<&str>, pre_enrolled_keys: bool) -> &'static str {
    match (efitype == Some("4m"), pre_enrolled_keys) {
        (true, true) => "/usr/share/OVMF/OVMF_VARS_4M.ms.fd",
        (true, false) => OVMF_VARS_TEMPLATE,
        (false, true) => "/usr/share/OVMF/OVMF_VARS.ms.fd",
        (false, false) => "/usr/share/OVMF/OVMF_VARS.fd",
    }
}

/// The OVMF code file (in [`Resolved::ovmf_code`]'s directory) matching an `efidisk0`, and
/// whether it is the Secure Boot build, which needs SMM and a secured pflash.
fn ovmf_code_name(efitype: Option<&str>, pre_enrolled_keys: bool) -> (&'static str, bool) {
    match (efitype == Some("4m"), pre_enrolled_keys) {
        (true, true) => ("OVMF_CODE_4M.secboot.fd", true),
        (true, false) => ("OVMF_CODE_4M.fd", false),
        (false, _) => ("OVMF_CODE.fd", false),
    }
}
/// `sun_path` holds 108 bytes including the terminating NUL.
const SOCKET_PATH_MAX: usize = 107;

/// A volume the caller resolved through its storage: where it is and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedDrive {
    /// An absolute path.
    pub path: PathBuf,
    pub format: Format,
    /// A block device (`host_device` driver) rather than a file.
    pub block_device: bool,
}

impl ResolvedDrive {
    /// An image file.
    pub fn file(path: impl Into<PathBuf>, format: Format) -> ResolvedDrive {
        ResolvedDrive { path: path.into(), format, block_device: false }
    }

    /// A block device such as an LVM volume.
    pub fn block_device(path: impl Into<PathBuf>, format: Format) -> ResolvedDrive {
        ResolvedDrive { path: path.into(), format, block_device: true }
    }
}

/// What the caller looked up for one start: volumes, taps, the run directory, the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// `<root>/run/hearth/qemu`: sockets and the pidfile go here. Absolute, because
    /// `-daemonize` changes QEMU's working directory to `/`.
    pub run_dir: PathBuf,
    /// Whether `/dev/kvm` can run guests; without it every VM runs under TCG.
    pub kvm_available: bool,
    /// The volume behind each drive key (`scsi0`, `ide2`, …). Empty CD-ROMs (`none`) and the
    /// host's `cdrom` need no entry.
    pub drives: BTreeMap<String, ResolvedDrive>,
    /// The tap device of each NIC key (`net0` → `tap100i0`, see [`tap_name`]).
    pub taps: BTreeMap<String, String>,
    /// A writable copy of [`OVMF_VARS_TEMPLATE`] for `bios: ovmf`.
    pub efivars: Option<ResolvedDrive>,
    /// OVMF's code, [`OVMF_CODE`] unless changed. Whether it exists is the caller's check.
    pub ovmf_code: PathBuf,
    /// Arguments appended as they are. For tests and bootstrapping only (direct kernel boot:
    /// `-kernel … -initrd … -append …`): hearth-core has no keys for it and `args:` is not
    /// supported, so nothing a user configures ends up here.
    pub extra: Vec<String>,
}

impl Resolved {
    pub fn new(run_dir: impl Into<PathBuf>, kvm_available: bool) -> Resolved {
        Resolved {
            run_dir: run_dir.into(),
            kvm_available,
            drives: BTreeMap::new(),
            taps: BTreeMap::new(),
            efivars: None,
            ovmf_code: PathBuf::from(OVMF_CODE),
            extra: Vec::new(),
        }
    }
}

/// The host tap device of NIC `net<index>`, as qm names it: `tap100i0`.
pub fn tap_name(vmid: Vmid, index: u32) -> String {
    format!("tap{vmid}i{index}")
}

/// The files a running VM has in the run directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunPaths {
    dir: PathBuf,
    vmid: Vmid,
}

impl RunPaths {
    pub fn new(run_dir: &Path, vmid: Vmid) -> RunPaths {
        RunPaths { dir: run_dir.to_owned(), vmid }
    }

    fn file(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!("{}.{suffix}", self.vmid))
    }

    /// The QMP socket, `<vmid>.qmp`.
    pub fn qmp(&self) -> PathBuf {
        self.file("qmp")
    }

    /// QEMU's pidfile, `<vmid>.pid`.
    pub fn pidfile(&self) -> PathBuf {
        self.file("pid")
    }

    /// The socket of `serial<index>: socket`, `<vmid>.serial<index>`.
    pub fn serial(&self, index: u32) -> PathBuf {
        self.file(&format!("serial{index}"))
    }

    /// The VNC socket, `<vmid>.vnc`.
    pub fn vnc(&self) -> PathBuf {
        self.file("vnc")
    }

    /// The guest agent's socket, `<vmid>.qga`.
    pub fn qga(&self) -> PathBuf {
        self.file("qga")
    }

    /// The control socket of the VM's swtpm (`tpmstate0`), `<vmid>.swtpm`.
    pub fn swtpm(&self) -> PathBuf {
        self.file("swtpm")
    }

    /// The swtpm's pidfile, `<vmid>.swtpm.pid`.
    pub fn swtpm_pidfile(&self) -> PathBuf {
        self.file("swtpm.pid")
    }
}

/// A configuration that cannot be turned into a command line. `key` names the configuration
/// key (or `run_dir`, `efivars`, … for what the caller resolved).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct CmdlineError {
    pub key: String,
    pub message: String,
}

impl CmdlineError {
    fn new(key: &str, message: impl Into<String>) -> CmdlineError {
        CmdlineError { key: key.to_owned(), message: message.into() }
    }
}

type Result<T, E = CmdlineError> = std::result::Result<T, E>;

/// A QEMU invocation and what the builder ignored on the way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuCommand {
    pub program: String,
    pub args: Vec<String>,
    /// Settings that had no effect (e.g. `iothread=1` on a shared SCSI controller), as qm warns.
    pub warnings: Vec<String>,
}

impl QemuCommand {
    /// A [`Command`] ready to spawn; QEMU daemonizes once its sockets listen.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        command
    }

    /// One option per line, shell-quoted, like `qm showcmd --pretty`.
    pub fn pretty(&self) -> String {
        let mut out = shell_quote(&self.program);
        let mut args = self.args.iter().peekable();
        while let Some(arg) = args.next() {
            out.push_str(" \\\n  ");
            out.push_str(&shell_quote(arg));
            if let Some(value) = args.next_if(|next| !next.starts_with('-')) {
                out.push(' ');
                out.push_str(&shell_quote(value));
            }
        }
        out
    }
}

impl std::fmt::Display for QemuCommand {
    /// One line, shell-quoted, like `qm showcmd`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&shell_quote(&self.program))?;
        for arg in &self.args {
            write!(f, " {}", shell_quote(arg))?;
        }
        Ok(())
    }
}

fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-./:=@%+,".contains(&b));
    if plain { s.to_owned() } else { format!("'{}'", s.replace('\'', r"'\''")) }
}

/// Escapes a value inside a QEMU option list, where `,` separates options.
fn esc(s: &str) -> String {
    s.replace(',', ",,")
}

/// An absolute, UTF-8 path for a QEMU option, escaped.
fn path_arg(key: &str, path: &Path) -> Result<String> {
    let text = path.to_str().ok_or_else(|| CmdlineError::new(key, format!("path {} is not UTF-8", path.display())))?;
    if !path.is_absolute() {
        return Err(CmdlineError::new(key, format!("path '{text}' is not absolute")));
    }
    Ok(esc(text))
}

/// A socket path, which must fit `sun_path`.
fn socket_arg(key: &str, path: &Path) -> Result<String> {
    let arg = path_arg(key, path)?;
    let len = path.as_os_str().len();
    if len > SOCKET_PATH_MAX {
        return Err(CmdlineError::new(
            key,
            format!(
                "socket path {} is {len} bytes, more than the {SOCKET_PATH_MAX} a Unix socket allows",
                path.display()
            ),
        ));
    }
    Ok(arg)
}

/// The board: i440fx (`pc`) or q35.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chipset {
    Pc,
    Q35,
}

/// The command line under construction.
struct Builder<'a> {
    vmid: Vmid,
    config: Section,
    resolved: &'a Resolved,
    paths: RunPaths,
    chipset: Chipset,
    kvm: bool,
    /// `bootindex` per device key.
    boot: BTreeMap<String, u32>,
    args: Vec<String>,
    warnings: Vec<String>,
}

/// Builds the QEMU command line for VM `vmid` from its merged configuration.
pub fn build(vmid: Vmid, config: &Section, resolved: &Resolved) -> Result<QemuCommand> {
    let mut checked = Section::new();
    for (key, value) in config {
        let value = vm::SCHEMA.check_stored(key, value, false).map_err(|e| CmdlineError::new(&e.key, e.message))?;
        checked.insert(key.clone(), value);
    }
    if checked.get("template") == Some(&Value::Bool(true)) {
        return Err(CmdlineError::new("template", "VM is a template and cannot be started; clone it first"));
    }
    let mut b = Builder {
        vmid,
        config: checked,
        resolved,
        paths: RunPaths::new(&resolved.run_dir, vmid),
        chipset: Chipset::Pc,
        kvm: false,
        boot: BTreeMap::new(),
        args: Vec::new(),
        warnings: Vec::new(),
    };
    b.build()?;
    Ok(QemuCommand { program: PROGRAM.to_owned(), args: b.args, warnings: b.warnings })
}

impl Builder<'_> {
    fn push(&mut self, option: &str, value: impl Into<String>) {
        self.args.push(option.to_owned());
        self.args.push(value.into());
    }

    fn warn(&mut self, key: &str, message: impl std::fmt::Display) {
        self.warnings.push(format!("{key}: {message}"));
    }

    fn int(&self, key: &str, default: i64) -> i64 {
        self.config.get(key).and_then(Value::as_int).unwrap_or(default)
    }

    fn flag(&self, key: &str, default: bool) -> bool {
        match self.config.get(key) {
            Some(Value::Bool(b)) => *b,
            _ => default,
        }
    }

    fn text(&self, key: &str) -> Option<&str> {
        self.config.get(key).and_then(Value::as_str)
    }

    /// A property-string key; values were checked against the schema in [`build`].
    fn prop(&self, key: &str) -> Option<PropertyString> {
        self.config.get(key).and_then(|v| vm::SCHEMA.property(key, v))
    }

    fn build(&mut self) -> Result<()> {
        let machine = self.machine_type()?;
        let want_kvm = self.flag("kvm", true);
        self.kvm = want_kvm && self.resolved.kvm_available;
        if want_kvm && !self.kvm {
            self.warn("kvm", "KVM is not available on this host, emulating with TCG (set kvm: 0 to silence this)");
        }
        self.boot = self.boot_order();

        let name = self.text("name").map_or_else(|| format!("vm{}", self.vmid), str::to_owned);
        self.push("-name", format!("{},debug-threads=on", esc(&name)));
        self.args.push("-no-shutdown".into());
        let qmp = socket_arg("run_dir", &self.paths.qmp())?;
        self.push("-chardev", format!("socket,id=qmp,path={qmp},server=on,wait=off"));
        self.push("-mon", "chardev=qmp,mode=control");
        let pidfile = path_arg("run_dir", &self.paths.pidfile())?;
        self.push("-pidfile", pidfile);
        self.args.push("-daemonize".into());
        self.check_supported()?;
        let pflash = self.firmware()?;
        self.args.push("-nodefaults".into());
        self.push("-boot", "menu=on,strict=on,reboot-timeout=1000");
        self.cpus_and_memory()?;
        self.identity()?;
        self.display_and_usb()?;
        self.serial_ports()?;
        self.agent()?;
        self.small_devices()?;
        self.tpm()?;
        self.host_devices()?;
        if self.config.get("balloon").and_then(Value::as_int) != Some(0) {
            self.push("-device", "virtio-balloon-pci,id=balloon0,free-page-reporting=on");
        }
        self.drives()?;
        self.nics()?;
        self.clock_and_flags()?;
        if self.kvm {
            self.push("-global", "kvm-pit.lost_tick_policy=discard");
        }
        let mut machine = format!("type={machine}");
        if let Some(pflash) = pflash {
            machine.push_str(&pflash);
        }
        machine.push_str(if self.kvm { ",accel=kvm" } else { ",accel=tcg" });
        if !self.flag("acpi", true) {
            machine.push_str(",acpi=off");
        }
        self.push("-machine", machine);
        self.args.extend(self.resolved.extra.iter().cloned());
        Ok(())
    }

    /// The QEMU machine type; pve-qemu's `+pveN` revisions map to the upstream type.
    fn machine_type(&mut self) -> Result<String> {
        let configured = self.text("machine").unwrap_or("pc").to_owned();
        let machine = configured.split_once("+pve").map_or(configured.as_str(), |(base, _)| base);
        self.chipset = match machine {
            "pc" => Chipset::Pc,
            "q35" => Chipset::Q35,
            m if m.starts_with("pc-i440fx-") => Chipset::Pc,
            m if m.starts_with("pc-q35-") => Chipset::Q35,
            m => {
                return Err(CmdlineError::new(
                    "machine",
                    format!("machine type '{m}' is not supported (allowed: pc, q35, pc-i440fx-X.Y, pc-q35-X.Y)"),
                ));
            }
        };
        Ok(machine.to_owned())
    }

    /// The pflash drives of `bios: ovmf`, as `-machine` properties: the code read-only, the
    /// variables from `efidisk0` (its `efitype` choosing the matching code) or else from the
    /// caller's writable copy of [`OVMF_VARS_TEMPLATE`].
    fn firmware(&mut self) -> Result<Option<String>> {
        if self.text("bios") != Some("ovmf") {
            if self.config.contains_key("efidisk0") {
                self.warn("efidisk0", "has no effect without bios: ovmf");
            }
            return Ok(None);
        }
        let efidisk = self.prop("efidisk0");
        let (vars, code, secure) = match &efidisk {
            Some(disk) => {
                let vars = self
                    .resolved
                    .drives
                    .get("efidisk0")
                    .ok_or_else(|| CmdlineError::new("efidisk0", "the EFI variable volume was not resolved"))?;
                let (name, secure) = ovmf_code_name(disk.get("efitype"), disk.flag("pre-enrolled-keys") == Some(true));
                (vars, self.resolved.ovmf_code.with_file_name(name), secure)
            }
            None => {
                let vars = self.resolved.efivars.as_ref().ok_or_else(|| {
                    CmdlineError::new(
                        "bios",
                        format!(
                            "ovmf needs a writable copy of {OVMF_VARS_TEMPLATE} for the EFI variables (Resolved::efivars)"
                        ),
                    )
                })?;
                (vars, self.resolved.ovmf_code.clone(), false)
            }
        };
        if secure && self.chipset != Chipset::Q35 {
            return Err(CmdlineError::new(
                "efidisk0",
                "Secure Boot firmware (efitype=4m,pre-enrolled-keys=1) needs machine q35 (its SMM)",
            ));
        }
        let code = path_arg("ovmf_code", &code)?;
        self.push("-blockdev", format!("driver=file,node-name=pflash0-file,filename={code},read-only=on"));
        self.push("-blockdev", "driver=raw,node-name=pflash0,file=pflash0-file,read-only=on");
        let driver = drives::file_driver(vars);
        let key = if efidisk.is_some() { "efidisk0" } else { "efivars" };
        let path = path_arg(key, &vars.path)?;
        let format = drives::image_format(key, vars.format)?;
        self.push("-blockdev", format!("driver={driver},node-name=pflash1-file,filename={path}"));
        self.push("-blockdev", format!("driver={format},node-name=pflash1,file=pflash1-file"));
        if secure {
            self.push("-global", "driver=cfi.pflash01,property=secure,value=on");
            return Ok(Some(",pflash0=pflash0,pflash1=pflash1,smm=on".into()));
        }
        Ok(Some(",pflash0=pflash0,pflash1=pflash1".into()))
    }

    /// Device keys in boot order: `boot: order=…`, or qm's default of the first disk, the first
    /// CD-ROM and the first NIC.
    fn boot_order(&mut self) -> BTreeMap<String, u32> {
        let devices: Vec<String> = match self.prop("boot").as_ref().and_then(|p| p.get("order").map(str::to_owned)) {
            Some(order) => order.split(';').map(str::to_owned).collect(),
            None => {
                let first = |cdrom: bool| self.drive_keys().into_iter().find(|k| self.is_cdrom(k) == cdrom);
                let nic = (0..=31).map(|i| format!("net{i}")).find(|k| self.config.contains_key(k));
                [first(false), first(true), nic].into_iter().flatten().collect()
            }
        };
        let mut boot = BTreeMap::new();
        for (position, device) in devices.into_iter().enumerate() {
            if !self.config.contains_key(&device) {
                self.warn("boot", format!("boot device {device} is not configured, skipping it"));
                continue;
            }
            boot.insert(device, 100 + position as u32);
        }
        boot
    }

    /// Configured drive keys in qm's order: ide, sata, scsi, virtio, each by index.
    fn drive_keys(&self) -> Vec<String> {
        vm::DISK_BUSES
            .iter()
            .flat_map(|(bus, max)| (0..=*max).map(move |i| format!("{bus}{i}")))
            .filter(|key| self.config.contains_key(key))
            .collect()
    }

    fn is_cdrom(&self, key: &str) -> bool {
        self.prop(key).is_some_and(|p| p.get("media") == Some("cdrom"))
    }

    fn bootindex(&self, key: &str) -> String {
        self.boot.get(key).map(|i| format!(",bootindex={i}")).unwrap_or_default()
    }

    fn cpus_and_memory(&mut self) -> Result<()> {
        let sockets = self.int("sockets", 1);
        let cores = self.int("cores", 1);
        let total = sockets * cores;
        let vcpus = self.int("vcpus", total);
        if vcpus > total {
            return Err(CmdlineError::new(
                "vcpus",
                format!("{vcpus} is more than sockets × cores = {sockets} × {cores} = {total}"),
            ));
        }
        self.push("-smp", format!("{vcpus},sockets={sockets},cores={cores},maxcpus={total}"));
        let cpu = self.cpu_model()?;
        self.push("-cpu", cpu);
        let memory = self.int("memory", 512);
        if let Some(balloon) = self.config.get("balloon").and_then(Value::as_int) {
            if balloon > memory {
                return Err(CmdlineError::new("balloon", format!("{balloon} MiB is more than memory ({memory} MiB)")));
            }
        }
        self.push("-m", memory.to_string());
        let hugepages = self.hugepages_backend();
        if hugepages.is_some() && !self.flag("numa", false) {
            // Huge pages need a memory backend: one node holding all memory.
            let backend = hugepages.clone().unwrap_or_default();
            self.push("-object", format!("{backend},id=ram-node0,size={memory}M"));
            self.push("-numa", format!("node,nodeid=0,cpus=0-{},memdev=ram-node0", total - 1));
        }
        if self.flag("numa", false) {
            if memory % sockets != 0 {
                return Err(CmdlineError::new(
                    "numa",
                    format!("memory ({memory} MiB) must divide evenly among the {sockets} NUMA nodes (one per socket)"),
                ));
            }
            for node in 0..sockets {
                let size = memory / sockets;
                let (first, last) = (node * cores, node * cores + cores - 1);
                let backend = hugepages.clone().unwrap_or_else(|| "memory-backend-ram".into());
                self.push("-object", format!("{backend},id=ram-node{node},size={size}M"));
                self.push("-numa", format!("node,nodeid={node},cpus={first}-{last},memdev=ram-node{node}"));
            }
        }
        Ok(())
    }

    /// `-cpu`: the model, `enforce` and the paravirtual flags under KVM, the alias flags of
    /// Proxmox's `x86-64-vN` models, then the configured flags.
    fn cpu_model(&mut self) -> Result<String> {
        const V2: &str = "+popcnt;+pni;+sse4.1;+sse4.2;+ssse3";
        const V2_AES: &str = "+aes;+popcnt;+pni;+sse4.1;+sse4.2;+ssse3";
        const V3: &str =
            "+aes;+popcnt;+pni;+sse4.1;+sse4.2;+ssse3;+avx;+avx2;+bmi1;+bmi2;+f16c;+fma;+abm;+movbe;+xsave";
        const V4: &str = "+aes;+popcnt;+pni;+sse4.1;+sse4.2;+ssse3;+avx;+avx2;+bmi1;+bmi2;+f16c;+fma;+abm;+movbe;\
                          +xsave;+avx512f;+avx512bw;+avx512cd;+avx512dq;+avx512vl";
        let prop = self.prop("cpu");
        let configured =
            prop.as_ref().and_then(|p| p.get("cputype")).unwrap_or(if self.kvm { "kvm64" } else { "qemu64" });
        let (mut model, alias_flags) = match configured {
            "x86-64-v2" => ("qemu64", V2),
            "x86-64-v2-AES" => ("qemu64", V2_AES),
            "x86-64-v3" => ("qemu64", V3),
            "x86-64-v4" => ("qemu64", V4),
            m if m.starts_with("custom-") => {
                return Err(CmdlineError::new("cpu", format!("custom CPU model '{m}' is not supported")));
            }
            m => (m, ""),
        };
        if model == "host" && !self.kvm {
            self.warn("cpu", "host needs KVM; using max under TCG");
            model = "max";
        }
        let mut parts = vec![model.to_owned()];
        if self.kvm && model != "host" && model != "max" {
            parts.push("enforce".into());
        }
        if self.kvm && prop.as_ref().and_then(|p| p.flag("hidden")) == Some(true) {
            parts.push("kvm=off".into());
        }
        if self.kvm {
            parts.extend(["+kvm_pv_eoi", "+kvm_pv_unhalt"].map(String::from));
        }
        if matches!(model, "kvm64" | "qemu64") {
            parts.extend(["+lahf_lm", "+sep"].map(String::from));
        }
        let user_flags = prop.as_ref().and_then(|p| p.get("flags")).unwrap_or("");
        for flag in alias_flags.split(';').chain(user_flags.split(';')).filter(|f| !f.is_empty()) {
            parts.push(flag.to_owned());
        }
        Ok(parts.join(","))
    }
}
