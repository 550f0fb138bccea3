//! Snapshots of the command line for representative configurations, and the combinations the
//! builder refuses. Update snapshots with `UPDATE_EXPECT=1 cargo test -p hearth-qemu`.

use std::path::PathBuf;

use expect_test::{Expect, expect};
use hearth_core::guest::{GuestConfig, Section};
use hearth_core::storage::Format;
use hearth_core::{GuestKind, Vmid, vm};

use super::{Resolved, ResolvedDrive, build, tap_name};

/// Keys that shape the command line.
const KEYS_USED: &[&str] = &[
    "name",
    "ostype",
    "memory",
    "balloon",
    "sockets",
    "cores",
    "vcpus",
    "numa",
    "cpu",
    "machine",
    "bios",
    "kvm",
    "acpi",
    "tablet",
    "localtime",
    "agent",
    "boot",
    "template",
    "scsihw",
    "vga",
    "ide",
    "sata",
    "scsi",
    "virtio",
    "net",
    "serial",
    "hugepages",
    "vmgenid",
    "smbios1",
    "arch",
    "keyboard",
    "startdate",
    "freeze",
    "reboot",
    "efidisk0",
    "tpmstate0",
    "rng0",
    "watchdog",
    "audio0",
    "ivshmem",
    "usb",
    "hostpci",
    "parallel",
    "virtiofs",
];
/// Keys that do not: metadata, policies hearthd applies, snapshot bookkeeping, and `hotplug`,
/// which only matters to live changes.
const KEYS_WITHOUT_EFFECT: &[&str] = &[
    // hearthd splits `args` into `Resolved::extra`.
    "args",
    "description",
    "tags",
    "onboot",
    "startup",
    "protection",
    "hotplug",
    "unused",
    "parent",
    "snaptime",
    "vmstate",
    "snapstate",
    // The runtime applies these around QEMU: cgroup CPU limits, taskset.
    "cpulimit",
    "cpuunits",
    "affinity",
    // For auto-ballooning, huge page bookkeeping and migration, none of which shape the
    // command line.
    "shares",
    "keephugepages",
    "migrate_downtime",
    "migrate_speed",
    // Accepted and stored; there is no SPICE display (the builder warns).
    "spice_enhancements",
    // hearthd runs the hook script around the start and stop, outside QEMU.
    "hookscript",
    // hearthd writes the cloud-init drive from these; the drive is an ordinary CD-ROM here.
    "ciuser",
    "cipassword",
    "sshkeys",
    "ipconfig",
    "nameserver",
    "searchdomain",
    "citype",
    "ciupgrade",
    "cicustom",
];

fn vmid() -> Vmid {
    Vmid::new(100).expect("100 is a valid vmid")
}

fn config(toml: &str) -> Section {
    GuestConfig::parse(GuestKind::Vm, toml).expect("test configuration is valid").merged()
}

/// Resolves every drive the way a dir storage at /var/lib/hearth would, and every NIC to qm's
/// tap name.
fn resolve(config: &Section, kvm_available: bool) -> Resolved {
    let mut resolved = Resolved::new("/run/hearth/qemu", kvm_available);
    for (key, value) in config {
        let Some(prop) = vm::SCHEMA.property(key, value) else { continue };
        if let Some(volume) = prop.get("file").and_then(|f| f.split_once(':')).map(|(_, name)| name) {
            let format = if volume.ends_with(".qcow2") { Format::Qcow2 } else { Format::Raw };
            let dir = if volume.starts_with("iso/") { "template/" } else { "images/" };
            resolved.drives.insert(key.clone(), ResolvedDrive::file(format!("/var/lib/hearth/{dir}{volume}"), format));
        }
        if let Some(index) = key.strip_prefix("net").and_then(|i| i.parse().ok()) {
            resolved.taps.insert(key.clone(), tap_name(vmid(), index));
        }
    }
    resolved
}

fn render(config: &Section, resolved: &Resolved) -> String {
    match build(vmid(), config, resolved) {
        Ok(command) => {
            let mut out = command.pretty();
            for warning in &command.warnings {
                out.push_str(&format!("\nwarning: {warning}"));
            }
            out
        }
        Err(e) => format!("error: {e}"),
    }
}

fn check(toml: &str, expect: Expect) {
    let config = config(toml);
    expect.assert_eq(&render(&config, &resolve(&config, true)));
}

#[test]
fn q35_virtio_disk_virtio_net_serial_console() {
    check(
        r#"
        name = "web01"
        machine = "q35"
        ostype = "l26"
        memory = 2048
        cores = 2
        cpu = "x86-64-v2-AES"
        agent = "1"
        boot = "order=virtio0;net0"
        virtio0 = "local:100/vm-100-disk-0.qcow2,discard=on,iothread=1,size=32G"
        net0 = "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,firewall=1"
        serial0 = "socket"
        vga = "serial0"
        "#,
        expect![[r#"
            qemu-system-x86_64 \
              -name web01,debug-threads=on \
              -no-shutdown \
              -chardev socket,id=qmp,path=/run/hearth/qemu/100.qmp,server=on,wait=off \
              -mon chardev=qmp,mode=control \
              -pidfile /run/hearth/qemu/100.pid \
              -daemonize \
              -nodefaults \
              -boot menu=on,strict=on,reboot-timeout=1000 \
              -smp 2,sockets=1,cores=2,maxcpus=2 \
              -cpu qemu64,enforce,+kvm_pv_eoi,+kvm_pv_unhalt,+lahf_lm,+sep,+aes,+popcnt,+pni,+sse4.1,+sse4.2,+ssse3 \
              -m 2048 \
              -display none \
              -chardev socket,id=serial0,path=/run/hearth/qemu/100.serial0,server=on,wait=off \
              -device isa-serial,chardev=serial0,index=0 \
              -chardev socket,id=qga0,path=/run/hearth/qemu/100.qga,server=on,wait=off \
              -device virtio-serial,id=qga0 \
              -device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0 \
              -device virtio-balloon-pci,id=balloon0,free-page-reporting=on \
              -blockdev driver=file,node-name=file-virtio0,filename=/var/lib/hearth/images/100/vm-100-disk-0.qcow2,cache.direct=on,cache.no-flush=off,discard=unmap \
              -blockdev driver=qcow2,node-name=drive-virtio0,file=file-virtio0,cache.direct=on,cache.no-flush=off,discard=unmap,detect-zeroes=unmap \
              -object iothread,id=iothread-virtio0 \
              -device virtio-blk-pci,id=virtio0,iothread=iothread-virtio0,drive=drive-virtio0,bootindex=100 \
              -netdev tap,id=net0,ifname=tap100i0,script=no,downscript=no,vhost=on \
              -device virtio-net-pci,mac=BC:24:11:AA:BB:CC,netdev=net0,id=net0,bootindex=101 \
              -global kvm-pit.lost_tick_policy=discard \
              -machine type=q35,accel=kvm"#]],
    );
}

#[test]
fn pc_ide_cdrom_and_scsi_on_virtio_scsi_single_with_iothreads() {
    let config = config(
        r#"
        name = "db01"
        memory = 4096
        sockets = 2
        cores = 2
        vcpus = 2
        balloon = 0
        scsihw = "virtio-scsi-single"
        scsi0 = "local:100/vm-100-disk-0.raw,iothread=1,cache=writeback,ssd=1,serial=DB01-ROOT"
        scsi1 = "local:100/vm-100-disk-1.qcow2,iothread=1,ro=1,mbps=100,iops_rd=500"
        sata0 = "lvm:vm-100-disk-2,aio=native,detect_zeroes=0"
        ide2 = "local:iso/debian-12.iso,media=cdrom"
        ide3 = "none,media=cdrom"
        boot = "order=scsi0;ide2;net5"
        "#,
    );
    let mut resolved = resolve(&config, true);
    resolved.drives.insert("sata0".into(), ResolvedDrive::block_device("/dev/vg0/vm-100-disk-2", Format::Raw));
    expect![[r#"
        qemu-system-x86_64 \
          -name db01,debug-threads=on \
          -no-shutdown \
          -chardev socket,id=qmp,path=/run/hearth/qemu/100.qmp,server=on,wait=off \
          -mon chardev=qmp,mode=control \
          -pidfile /run/hearth/qemu/100.pid \
          -daemonize \
          -nodefaults \
          -boot menu=on,strict=on,reboot-timeout=1000 \
          -smp 2,sockets=2,cores=2,maxcpus=4 \
          -cpu kvm64,enforce,+kvm_pv_eoi,+kvm_pv_unhalt,+lahf_lm,+sep \
          -m 4096 \
          -device qemu-xhci,id=xhci \
          -device usb-tablet,id=tablet,bus=xhci.0,port=1 \
          -device VGA,id=vga \
          -vnc unix:/run/hearth/qemu/100.vnc,password=off \
          -blockdev driver=file,node-name=file-ide2,filename=/var/lib/hearth/template/iso/debian-12.iso,cache.direct=on,cache.no-flush=off,read-only=on \
          -blockdev driver=raw,node-name=drive-ide2,file=file-ide2,cache.direct=on,cache.no-flush=off,read-only=on \
          -device ide-cd,bus=ide.1,unit=0,id=ide2,drive=drive-ide2,bootindex=101 \
          -device ide-cd,bus=ide.1,unit=1,id=ide3 \
          -blockdev driver=host_device,node-name=file-sata0,filename=/dev/vg0/vm-100-disk-2,cache.direct=on,cache.no-flush=off,aio=native \
          -blockdev driver=raw,node-name=drive-sata0,file=file-sata0,cache.direct=on,cache.no-flush=off \
          -device ahci,id=ahci0 \
          -device ide-hd,bus=ahci0.0,id=sata0,drive=drive-sata0 \
          -blockdev driver=file,node-name=file-scsi0,filename=/var/lib/hearth/images/100/vm-100-disk-0.raw,cache.direct=off,cache.no-flush=off \
          -blockdev driver=raw,node-name=drive-scsi0,file=file-scsi0,cache.direct=off,cache.no-flush=off,detect-zeroes=on \
          -object iothread,id=iothread-scsi0 \
          -device virtio-scsi-pci,id=virtioscsi0,iothread=iothread-scsi0 \
          -device scsi-hd,bus=virtioscsi0.0,channel=0,scsi-id=0,lun=0,id=scsi0,drive=drive-scsi0,rotation_rate=1,serial=DB01-ROOT,bootindex=100 \
          -blockdev driver=file,node-name=file-scsi1,filename=/var/lib/hearth/images/100/vm-100-disk-1.qcow2,cache.direct=on,cache.no-flush=off,read-only=on \
          -blockdev driver=qcow2,node-name=fmt-scsi1,file=file-scsi1,cache.direct=on,cache.no-flush=off,read-only=on \
          -object throttle-group,id=throttle-scsi1,x-bps-total=104857600,x-iops-read=500 \
          -blockdev driver=throttle,node-name=drive-scsi1,throttle-group=throttle-scsi1,file=fmt-scsi1,read-only=on \
          -object iothread,id=iothread-scsi1 \
          -device virtio-scsi-pci,id=virtioscsi1,iothread=iothread-scsi1 \
          -device scsi-hd,bus=virtioscsi1.0,channel=0,scsi-id=0,lun=0,id=scsi1,drive=drive-scsi1 \
          -global kvm-pit.lost_tick_policy=discard \
          -machine type=pc,accel=kvm
        warning: boot: boot device net5 is not configured, skipping it"#]]
    .assert_eq(&render(&config, &resolved));
}

#[test]
fn ovmf_firmware() {
    let config = config(
        r#"
        machine = "q35"
        bios = "ovmf"
        vga = "virtio"
        "#,
    );
    let mut resolved = resolve(&config, true);
    resolved.efivars = Some(ResolvedDrive::file("/var/lib/hearth/images/100/vm-100-efivars.raw", Format::Raw));
    expect![[r#"
        qemu-system-x86_64 \
          -name vm100,debug-threads=on \
          -no-shutdown \
          -chardev socket,id=qmp,path=/run/hearth/qemu/100.qmp,server=on,wait=off \
          -mon chardev=qmp,mode=control \
          -pidfile /run/hearth/qemu/100.pid \
          -daemonize \
          -blockdev driver=file,node-name=pflash0-file,filename=/usr/share/OVMF/OVMF_CODE_4M.fd,read-only=on \
          -blockdev driver=raw,node-name=pflash0,file=pflash0-file,read-only=on \
          -blockdev driver=file,node-name=pflash1-file,filename=/var/lib/hearth/images/100/vm-100-efivars.raw \
          -blockdev driver=raw,node-name=pflash1,file=pflash1-file \
          -nodefaults \
          -boot menu=on,strict=on,reboot-timeout=1000 \
          -smp 1,sockets=1,cores=1,maxcpus=1 \
          -cpu kvm64,enforce,+kvm_pv_eoi,+kvm_pv_unhalt,+lahf_lm,+sep \
          -m 512 \
          -device qemu-xhci,id=xhci \
          -device usb-tablet,id=tablet,bus=xhci.0,port=1 \
          -device virtio-vga,id=vga \
          -vnc unix:/run/hearth/qemu/100.vnc,password=off \
          -device virtio-balloon-pci,id=balloon0,free-page-reporting=on \
          -global kvm-pit.lost_tick_policy=discard \
          -machine type=q35,pflash0=pflash0,pflash1=pflash1,accel=kvm"#]]
    .assert_eq(&render(&config, &resolved));
    resolved.efivars = None;
    expect!["error: bios: ovmf needs a writable copy of /usr/share/OVMF/OVMF_VARS_4M.fd for the EFI variables (Resolved::efivars)"].assert_eq(&render(&config, &resolved));
}

/// The accelerator and CPU model for each combination of configuration and host.
#[test]
fn tcg_and_kvm() {
    let cases = [
        ("", true),
        ("", false),
        ("kvm = false", true),
        (r#"cpu = "host""#, true),
        (r#"cpu = "host""#, false),
        (r#"cpu = "x86-64-v2-AES,flags=-pcid;+aes""#, false),
        (r#"cpu = "kvm64,hidden=1""#, true),
    ];
    let mut out = String::new();
    for (toml, kvm_available) in cases {
        let config = config(toml);
        let command = build(vmid(), &config, &resolve(&config, kvm_available)).expect("builds");
        let value = |option: &str| {
            let at = command.args.iter().position(|a| a == option).expect("option present");
            command.args[at + 1].clone()
        };
        let host = if kvm_available { "kvm host" } else { "no kvm" };
        let toml = if toml.is_empty() { "(defaults)" } else { toml };
        out.push_str(&format!("{toml} on {host}: -machine {} -cpu {}\n", value("-machine"), value("-cpu")));
        for warning in &command.warnings {
            out.push_str(&format!("  warning: {warning}\n"));
        }
        let kvm_only = command.args.iter().any(|a| a.contains("kvm-pit") || a.contains("vhost"));
        assert_eq!(kvm_only, value("-machine").contains("accel=kvm"));
    }
    expect![[r#"
        (defaults) on kvm host: -machine type=pc,accel=kvm -cpu kvm64,enforce,+kvm_pv_eoi,+kvm_pv_unhalt,+lahf_lm,+sep
        (defaults) on no kvm: -machine type=pc,accel=tcg -cpu qemu64,+lahf_lm,+sep
          warning: kvm: KVM is not available on this host, emulating with TCG (set kvm: 0 to silence this)
        kvm = false on kvm host: -machine type=pc,accel=tcg -cpu qemu64,+lahf_lm,+sep
        cpu = "host" on kvm host: -machine type=pc,accel=kvm -cpu host,+kvm_pv_eoi,+kvm_pv_unhalt
        cpu = "host" on no kvm: -machine type=pc,accel=tcg -cpu max
          warning: kvm: KVM is not available on this host, emulating with TCG (set kvm: 0 to silence this)
          warning: cpu: host needs KVM; using max under TCG
        cpu = "x86-64-v2-AES,flags=-pcid;+aes" on no kvm: -machine type=pc,accel=tcg -cpu qemu64,+lahf_lm,+sep,+aes,+popcnt,+pni,+sse4.1,+sse4.2,+ssse3,-pcid,+aes
          warning: kvm: KVM is not available on this host, emulating with TCG (set kvm: 0 to silence this)
        cpu = "kvm64,hidden=1" on kvm host: -machine type=pc,accel=kvm -cpu kvm64,enforce,kvm=off,+kvm_pv_eoi,+kvm_pv_unhalt,+lahf_lm,+sep
    "#]].assert_eq(&out);
}

/// Without `boot:`, qm boots the first disk, then the first CD-ROM, then the first NIC.
#[test]
fn default_boot_order() {
    let config = config(
        r#"
        ide2 = "local:iso/debian-12.iso,media=cdrom"
        scsi1 = "local:100/vm-100-disk-1.raw"
        virtio3 = "local:100/vm-100-disk-0.raw"
        net1 = "e1000=BC:24:11:00:00:01"
        net0 = "virtio=BC:24:11:00:00:00"
        "#,
    );
    let command = build(vmid(), &config, &resolve(&config, true)).expect("builds");
    let booting: Vec<&str> = command.args.iter().filter(|a| a.contains("bootindex")).map(String::as_str).collect();
    expect![[r#"
        ide-cd,bus=ide.1,unit=0,id=ide2,drive=drive-ide2,bootindex=101
        scsi-hd,bus=scsihw0.0,scsi-id=1,id=scsi1,drive=drive-scsi1,bootindex=100
        virtio-net-pci,mac=BC:24:11:00:00:00,netdev=net0,id=net0,bootindex=102"#]]
    .assert_eq(&booting.join("\n"));
}

#[test]
fn refused_combinations() {
    let cases = [
        r#"sata1 = "local:100/vm-100-disk-0.raw,ro=1""#,
        r#"net0 = "virtio,bridge=vmbr0""#,
        r#"scsi0 = "local:100/vm-100-disk-0.raw,format=qcow2""#,
        r#"virtio1 = "local:iso/x.iso,media=cdrom""#,
        r#"ide0 = "none""#,
        r#"scsi0 = "local:100/vm-100-disk-0.raw,aio=native,cache=writeback""#,
        r#"ide0 = "local:100/vm-100-disk-0.raw,iothread=1""#,
        r#"virtio0 = "local:100/vm-100-disk-0.raw,ssd=1""#,
        r#"scsi0 = "local:100/vm-100-disk-0.raw,snapshot=1""#,
        "sockets = 2\ncores = 2\nvcpus = 5",
        "memory = 1024\nballoon = 2048",
        "numa = true\nsockets = 2\nmemory = 1025",
        r#"machine = "microvm""#,
        r#"cpu = "custom-fast""#,
        "template = true",
        r#"vga = "serial1""#,
        r#"bios = "ovmf""#,
        r#"arch = "aarch64""#,
        r#"virtiofs0 = "share1""#,
        r#"audio0 = "device=AC97""#,
        r#"usb0 = "spice""#,
        r#"usb1 = "host=1234:abcd,mapping=dongle""#,
        r#"hostpci0 = "host=01:00.0,pcie=1""#,
        r#"vmgenid = "1""#,
        "bios = \"ovmf\"\nefidisk0 = \"local:100/vm-100-disk-1.raw,efitype=4m,pre-enrolled-keys=1\"",
        r#"smbios1 = "base64=1,manufacturer=bm90IGJhc2U2NA=!""#,
        r#"agent = "1,type=isa"
        serial0 = "socket"
        serial1 = "socket"
        serial2 = "socket"
        serial3 = "socket""#,
    ];
    let mut out = String::new();
    for toml in cases {
        let config = config(toml);
        out.push_str(&render(&config, &resolve(&config, true)));
        out.push('\n');
    }

    // What the caller resolved can be wrong too.
    let nic = config(r#"net0 = "virtio=BC:24:11:00:00:00""#);
    let mut resolved = resolve(&nic, true);
    resolved.taps.clear();
    out.push_str(&format!("{}\n", render(&nic, &resolved)));
    resolved.taps.insert("net0".into(), "tap-with-a-much-too-long-name".into());
    out.push_str(&format!("{}\n", render(&nic, &resolved)));
    let disk = config(r#"scsi0 = "local:100/vm-100-disk-0.raw""#);
    let mut resolved = resolve(&disk, true);
    resolved.drives.clear();
    out.push_str(&format!("{}\n", render(&disk, &resolved)));
    resolved.drives.insert("scsi0".into(), ResolvedDrive::file("/srv/subvol-100-disk-0", Format::Subvol));
    out.push_str(&format!("{}\n", render(&disk, &resolved)));
    resolved.drives.insert("scsi0".into(), ResolvedDrive::file("images/vm-100-disk-0.raw", Format::Raw));
    out.push_str(&format!("{}\n", render(&disk, &resolved)));
    let mut resolved = resolve(&disk, true);
    resolved.run_dir = PathBuf::from(format!("/{}", "deep/".repeat(20)));
    out.push_str(&render(&disk, &resolved));
    expect![[r#"
        error: sata1: ro=1 needs a virtio or scsi disk; IDE and SATA disks cannot be read-only
        error: net0: no MAC address (hearthd assigns one when the NIC is added)
        error: scsi0: format=qcow2 is configured, but volume 'local:100/vm-100-disk-0.raw' is raw
        error: virtio1: virtio drives cannot be CD-ROMs; use ide, sata or scsi
        error: ide0: file=none is only allowed with media=cdrom
        error: scsi0: aio=native needs cache=none or cache=directsync (O_DIRECT)
        error: ide0: iothread=1 is only supported on virtio and scsi drives
        error: virtio0: ssd=1 is not supported on virtio drives; use scsi, sata or ide
        error: scsi0: snapshot=1 (temporary snapshot mode) is not supported
        error: vcpus: 5 is more than sockets × cores = 2 × 2 = 4
        error: balloon: 2048 MiB is more than memory (1024 MiB)
        error: numa: memory (1025 MiB) must divide evenly among the 2 NUMA nodes (one per socket)
        error: machine: machine type 'microvm' is not supported (allowed: pc, q35, pc-i440fx-X.Y, pc-q35-X.Y)
        error: cpu: custom CPU model 'custom-fast' is not supported
        error: template: VM is a template and cannot be started; clone it first
        error: vga: serial1 needs serial1 to be configured
        error: bios: ovmf needs a writable copy of /usr/share/OVMF/OVMF_VARS_4M.fd for the EFI variables (Resolved::efivars)
        error: arch: aarch64 guests need qemu-system-aarch64, which Hearth does not run (allowed: x86_64)
        error: virtiofs0: virtiofs needs directory mappings (dirid=), which Hearth does not have yet; remove the key to start
        error: audio0: driver=spice (the default) needs a SPICE display, which Hearth does not provide; set driver=none
        error: usb0: spice needs a SPICE display, which Hearth does not provide
        error: usb1: resource mappings are not supported yet; give host= instead
        error: hostpci0: pcie=1 needs machine q35
        error: vmgenid: 1 asks hearthd for a UUID; set it with vmctl set
        error: efidisk0: Secure Boot firmware (efitype=4m,pre-enrolled-keys=1) needs machine q35 (its SMM)
        error: smbios1: manufacturer: 'bm90IGJhc2U2NA=!' is not valid base64
        error: agent: type=isa needs a free ISA serial port, but serial0 to serial3 are used
        error: net0: no tap device was resolved for this NIC
        error: net0: invalid tap device name 'tap-with-a-much-too-long-name': expected at most 15 letters, digits, '_', '-' or '.'
        error: scsi0: volume 'local:100/vm-100-disk-0.raw' was not resolved to a path
        error: scsi0: the volume is a subvolume, not a disk image
        error: scsi0: path 'images/vm-100-disk-0.raw' is not absolute
        error: run_dir: socket path /deep/deep/deep/deep/deep/deep/deep/deep/deep/deep/deep/deep/deep/deep/deep/deep/deep/deep/deep/deep/100.qmp is 108 bytes, more than the 107 a Unix socket allows"#]].assert_eq(&out);
}

/// Every key of the VM schema is either used by the builder or known to have no effect on
/// the command line, so a key added to hearth-core cannot be silently ignored.
#[test]
fn every_schema_key_is_accounted_for() {
    let mut unknown = Vec::new();
    for def in vm::SCHEMA.keys {
        if !KEYS_USED.contains(&def.name) && !KEYS_WITHOUT_EFFECT.contains(&def.name) {
            unknown.push(def.name);
        }
    }
    assert!(unknown.is_empty(), "keys not handled by the command-line builder: {unknown:?}");
    for key in KEYS_USED.iter().chain(KEYS_WITHOUT_EFFECT) {
        assert!(vm::SCHEMA.keys.iter().any(|d| d.name == *key), "{key} is not a VM key any more");
    }
}

#[test]
fn identity_and_small_devices() {
    check(
        r#"
        memory = 1024
        kvm = false
        vmgenid = "0f9d3c1e-5a1b-4c7e-9d2a-3b4c5d6e7f80"
        smbios1 = "base64=1,manufacturer=SGVhcnRoLCBJbmMu,uuid=1b2c3d4e-0000-4000-8000-000000000001"
        rng0 = "source=/dev/urandom,max_bytes=2048,period=500"
        watchdog = "model=ib700,action=poweroff"
        audio0 = "device=ich9-intel-hda,driver=none"
        ivshmem = "size=32,name=looking-glass"
        keyboard = "de-ch"
        startdate = "2006-06-17T16:01:21"
        freeze = true
        reboot = false
        vga = "std,memory=32,clipboard=vnc"
        hugepages = "2"
        tpmstate0 = "local:100/vm-100-disk-1.raw,version=v2.0"
        parallel0 = "/dev/parport0"
        usb0 = "host=1234:abcd"
        usb1 = "host=1-2.3"
        hostpci0 = "host=0000:01:00.0;0000:01:00.1,x-vga=1,rombar=0,vendor-id=0x8086"
        spice_enhancements = "foldersharing=1"
        "#,
        expect![[r#"
            qemu-system-x86_64 \
              -name vm100,debug-threads=on \
              -no-shutdown \
              -chardev socket,id=qmp,path=/run/hearth/qemu/100.qmp,server=on,wait=off \
              -mon chardev=qmp,mode=control \
              -pidfile /run/hearth/qemu/100.pid \
              -daemonize \
              -nodefaults \
              -boot menu=on,strict=on,reboot-timeout=1000 \
              -smp 1,sockets=1,cores=1,maxcpus=1 \
              -cpu qemu64,+lahf_lm,+sep \
              -m 1024 \
              -object memory-backend-file,mem-path=/run/hugepages/kvm/2048kB,share=on,prealloc=yes,id=ram-node0,size=1024M \
              -numa node,nodeid=0,cpus=0-0,memdev=ram-node0 \
              -device vmgenid,guid=0f9d3c1e-5a1b-4c7e-9d2a-3b4c5d6e7f80,id=vmgenid0 \
              -smbios 'type=1,manufacturer=Hearth,, Inc.,uuid=1b2c3d4e-0000-4000-8000-000000000001' \
              -device qemu-xhci,id=xhci \
              -device usb-tablet,id=tablet,bus=xhci.0,port=1 \
              -device VGA,id=vga,vgamem_mb=32 \
              -vnc unix:/run/hearth/qemu/100.vnc,password=off \
              -chardev qemu-vdagent,id=vdagent,name=vdagent,clipboard=on \
              -device virtio-serial,id=vdagent-serial \
              -device virtserialport,bus=vdagent-serial.0,chardev=vdagent,name=com.redhat.spice.0 \
              -object rng-random,filename=/dev/urandom,id=rng0 \
              -device virtio-rng-pci,rng=rng0,id=rng0,max-bytes=2048,period=500 \
              -device ib700,id=watchdog0 \
              -watchdog-action poweroff \
              -audiodev none,id=audiodev0-backend \
              -device ich9-intel-hda,id=audiodev0 \
              -device hda-micro,id=audiodev0-codec0,bus=audiodev0.0,cad=0,audiodev=audiodev0-backend \
              -device hda-duplex,id=audiodev0-codec1,bus=audiodev0.0,cad=1,audiodev=audiodev0-backend \
              -object memory-backend-file,id=ivshmem,share=on,mem-path=/dev/shm/pve-shm-looking-glass,size=32M \
              -device ivshmem-plain,memdev=ivshmem,id=ivshmem \
              -chardev socket,id=tpmchar,path=/run/hearth/qemu/100.swtpm \
              -tpmdev emulator,id=tpmdev,chardev=tpmchar \
              -device tpm-tis,tpmdev=tpmdev \
              -device qemu-xhci,p2=15,p3=15,id=xhci-host \
              -device usb-host,bus=xhci-host.0,vendorid=0x1234,productid=0xabcd,id=usb0 \
              -device usb-host,bus=xhci-host.0,hostbus=1,hostport=2.3,id=usb1 \
              -device vfio-pci,host=0000:01:00.0,id=hostpci0.0,x-vga=on,rombar=0,x-pci-vendor-id=0x8086 \
              -device vfio-pci,host=0000:01:00.1,id=hostpci0.1,rombar=0,x-pci-vendor-id=0x8086 \
              -chardev parallel,id=parallel0,path=/dev/parport0 \
              -device isa-parallel,chardev=parallel0,id=parallel0 \
              -device virtio-balloon-pci,id=balloon0,free-page-reporting=on \
              -k de-ch \
              -rtc base=2006-06-17T16:01:21 \
              -S \
              -no-reboot \
              -machine type=pc,accel=tcg
            warning: spice_enhancements: has no effect: Hearth's VMs have a VNC display, not SPICE"#]],
    );
}

#[test]
fn efidisk_selects_matching_firmware() {
    let mut out = String::new();
    for efidisk in [
        "local:100/vm-100-disk-1.raw",
        "local:100/vm-100-disk-1.qcow2,efitype=4m",
        "local:100/vm-100-disk-1.raw,efitype=4m,pre-enrolled-keys=1",
    ] {
        let config = config(&format!("bios = \"ovmf\"\nmachine = \"q35\"\nefidisk0 = \"{efidisk}\""));
        let command = build(vmid(), &config, &resolve(&config, false)).expect("builds");
        let args = command.args.join(" ");
        let flash: Vec<&str> = args
            .split(' ')
            .filter(|a| a.contains("pflash") || a.contains("secure") || a.starts_with("type="))
            .collect();
        out.push_str(&format!("{efidisk}\n  {}\n", flash.join("\n  ")));
    }
    expect![[r#"
        local:100/vm-100-disk-1.raw
          driver=file,node-name=pflash0-file,filename=/usr/share/OVMF/OVMF_CODE.fd,read-only=on
          driver=raw,node-name=pflash0,file=pflash0-file,read-only=on
          driver=file,node-name=pflash1-file,filename=/var/lib/hearth/images/100/vm-100-disk-1.raw
          driver=raw,node-name=pflash1,file=pflash1-file
          type=q35,pflash0=pflash0,pflash1=pflash1,accel=tcg
        local:100/vm-100-disk-1.qcow2,efitype=4m
          driver=file,node-name=pflash0-file,filename=/usr/share/OVMF/OVMF_CODE_4M.fd,read-only=on
          driver=raw,node-name=pflash0,file=pflash0-file,read-only=on
          driver=file,node-name=pflash1-file,filename=/var/lib/hearth/images/100/vm-100-disk-1.qcow2
          driver=qcow2,node-name=pflash1,file=pflash1-file
          type=q35,pflash0=pflash0,pflash1=pflash1,accel=tcg
        local:100/vm-100-disk-1.raw,efitype=4m,pre-enrolled-keys=1
          driver=file,node-name=pflash0-file,filename=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd,read-only=on
          driver=raw,node-name=pflash0,file=pflash0-file,read-only=on
          driver=file,node-name=pflash1-file,filename=/var/lib/hearth/images/100/vm-100-disk-1.raw
          driver=raw,node-name=pflash1,file=pflash1-file
          driver=cfi.pflash01,property=secure,value=on
          type=q35,pflash0=pflash0,pflash1=pflash1,smm=on,accel=tcg
    "#]]
    .assert_eq(&out);
    assert_eq!(super::ovmf_vars_template(Some("4m"), true), "/usr/share/OVMF/OVMF_VARS_4M.ms.fd");
    assert_eq!(super::ovmf_vars_template(None, false), "/usr/share/OVMF/OVMF_VARS.fd");
}

#[test]
fn one_line_form_quotes_for_the_shell() {
    let config = config(r#"name = "web01""#);
    let mut resolved = resolve(&config, false);
    resolved.extra = vec!["-append".into(), "console=ttyS0 quiet".into()];
    let command = build(vmid(), &config, &resolved).expect("builds");
    let line = command.to_string();
    assert!(line.starts_with("qemu-system-x86_64 -name web01,debug-threads=on -no-shutdown "), "{line}");
    assert!(line.ends_with(" -append 'console=ttyS0 quiet'"), "{line}");
}
