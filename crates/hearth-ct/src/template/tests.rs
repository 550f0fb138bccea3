//! Templates built here with the tar crate, extracted by the real hearth-ctmon. These run as
//! root (user namespaces, chown, chroot), as Hearth's tests do.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use super::*;

/// hearth-ctmon: cargo names it for integration tests only, so unit tests find it beside
/// their own executable (`target/debug/deps/..`); `cargo test -p hearth-ct` builds it.
pub(crate) fn ctmon() -> PathBuf {
    if let Some(path) = option_env!("CARGO_BIN_EXE_hearth-ctmon") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(Path::parent).unwrap().join("hearth-ctmon");
    assert!(path.exists(), "{} is missing: run `cargo build --workspace --bins` first", path.display());
    path
}

pub(crate) const MTIME: u64 = 1_600_000_000;

/// A tar archive written member by member, with names set byte for byte (the tar crate's
/// own setters refuse the malicious names tests need).
pub(crate) struct TemplateBuilder(tar::Builder<Vec<u8>>);

impl TemplateBuilder {
    pub(crate) fn new() -> Self {
        TemplateBuilder(tar::Builder::new(Vec::new()))
    }

    /// A plausible root file system: 10 members including `./sbin/` and a Debian marker.
    pub(crate) fn debian_like() -> Self {
        let mut b = Self::new();
        for dir in ["./", "./sbin/", "./bin/", "./etc/", "./usr/", "./var/", "./root/", "./dev/"] {
            b.dir(dir, if dir == "./root/" { 0o700 } else { 0o755 });
        }
        b.file("./etc/debian_version", 0o644, 0, 0, b"12.5\n");
        b.file("./etc/shadow", 0o640, 0, 42, b"root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n");
        b.file("./etc/hosts", 0o644, 0, 0, b"127.0.0.1\tlocalhost\n10.9.9.9 other\n");
        b
    }

    fn header(path: &str, kind: EntryType, mode: u32, uid: u64, gid: u64, size: u64) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(MTIME);
        h.set_size(size);
        let name = &mut h.as_gnu_mut().unwrap().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        h
    }

    fn append(&mut self, mut h: Header, data: &[u8]) -> &mut Self {
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    pub(crate) fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.append(Self::header(path, EntryType::Directory, mode, 0, 0, 0), b"")
    }

    pub(crate) fn file(&mut self, path: &str, mode: u32, uid: u64, gid: u64, data: &[u8]) -> &mut Self {
        self.append(Self::header(path, EntryType::Regular, mode, uid, gid, data.len() as u64), data)
    }

    pub(crate) fn link(&mut self, kind: EntryType, path: &str, target: &str) -> &mut Self {
        let mut h = Self::header(path, kind, 0o777, 0, 0, 0);
        let name = &mut h.as_gnu_mut().unwrap().linkname;
        name[..target.len()].copy_from_slice(target.as_bytes());
        self.append(h, b"")
    }

    pub(crate) fn node(&mut self, path: &str, kind: EntryType) -> &mut Self {
        let mut h = Self::header(path, kind, 0o666, 0, 0, 0);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        self.append(h, b"")
    }

    pub(crate) fn xattr(&mut self, name: &str, value: &[u8]) -> &mut Self {
        let key = format!("SCHILY.xattr.{name}");
        self.0.append_pax_extensions([(key.as_str(), value)]).unwrap();
        self
    }

    pub(crate) fn tar(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

pub(crate) fn zst(tar: &[u8]) -> Vec<u8> {
    zstd::encode_all(tar, 3).unwrap()
}

fn xz(tar: &[u8]) -> Vec<u8> {
    let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 6);
    encoder.write_all(tar).unwrap();
    encoder.finish().unwrap()
}

fn gz(tar: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(tar).unwrap();
    encoder.finish().unwrap()
}

pub(crate) fn unprivileged() -> IdMap {
    IdMap::unprivileged_default()
}

/// Writes `bytes` as an archive in `dir` and extracts it into a new `dir/<name>`.
pub(crate) fn extract_bytes(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    idmap: Option<&IdMap>,
) -> (PathBuf, Result<TemplateInfo, TemplateError>) {
    let archive = dir.join(format!("{name}.archive"));
    std::fs::write(&archive, bytes).unwrap();
    let target = dir.join(name);
    std::fs::create_dir(&target).unwrap();
    let result = extract(&ctmon(), &archive, &target, idmap);
    (target, result)
}

fn owner(path: &Path) -> (u32, u32) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    (meta.uid(), meta.gid())
}

#[test]
fn unprivileged_extraction_shifts_owners_and_keeps_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = TemplateBuilder::debian_like();
    b.file("./bin/su", 0o4755, 0, 0, b"#!/bin/sh\n");
    b.file("./var/www", 0o640, 33, 33, b"www-data's\n");
    b.link(EntryType::Symlink, "./bin/sh", "/bin/su");
    b.link(EntryType::Link, "./bin/su-again", "./bin/su");
    b.xattr("user.test", b"kept");
    b.file("./etc/with-xattr", 0o644, 0, 0, b"x");
    b.xattr("trusted.secret", b"dropped");
    b.file("./etc/trusted", 0o644, 0, 0, b"x");
    b.append(TemplateBuilder::header("./var/fifo", EntryType::Fifo, 0o620, 0, 5, 0), b"");
    b.node("./dev/null", EntryType::Char);
    b.file("./dev/stray", 0o644, 0, 0, b"skipped like Proxmox's --exclude ./dev/*");
    let (target, result) = extract_bytes(tmp.path(), "zst", &zst(&b.tar()), Some(&unprivileged()));
    let info = result.unwrap();
    assert_eq!(info.ostype.as_deref(), Some("debian"));
    // 11 + su, www, sh, su-again, with-xattr, trusted, fifo; the two under dev/ skipped.
    assert_eq!(info.entries, 18);
    // debian_version, shadow, hosts, su, www, with-xattr, trusted.
    assert_eq!(info.bytes, 5 + 54 + 35 + 10 + 11 + 1 + 1);

    assert_eq!(owner(&target), (100_000, 100_000));
    assert_eq!(owner(&target.join("etc/debian_version")), (100_000, 100_000));
    assert_eq!(owner(&target.join("etc/shadow")), (100_000, 100_042));
    assert_eq!(owner(&target.join("var/www")), (100_033, 100_033));
    let su = std::fs::metadata(target.join("bin/su")).unwrap();
    assert_eq!(su.mode() & 0o7777, 0o4755, "setuid kept after the chown");
    assert_eq!(su.mtime(), MTIME as i64);
    assert_eq!(std::fs::metadata(target.join("root")).unwrap().mode() & 0o7777, 0o700);
    assert_eq!(std::fs::metadata(target.join("etc")).unwrap().mtime(), MTIME as i64, "directory mtimes set last");
    assert_eq!(std::fs::read_link(target.join("bin/sh")).unwrap(), Path::new("/bin/su"));
    assert_eq!(owner(&target.join("bin/sh")), (100_000, 100_000));
    assert_eq!(std::fs::metadata(target.join("bin/su-again")).unwrap().ino(), su.ino(), "hard link");
    assert_eq!(xattr::get(target.join("etc/with-xattr"), "user.test").unwrap().as_deref(), Some(&b"kept"[..]));
    assert_eq!(xattr::list(target.join("etc/trusted")).unwrap().count(), 0, "only user.* and security.capability");
    let fifo = std::fs::symlink_metadata(target.join("var/fifo")).unwrap();
    assert!(fifo.file_type().is_fifo());
    assert_eq!((fifo.mode() & 0o7777, fifo.gid()), (0o620, 100_005));
    assert!(std::fs::read_dir(target.join("dev")).unwrap().next().is_none(), "nothing under dev/");
}

#[test]
fn every_compression_is_recognised_by_its_magic() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = TemplateBuilder::debian_like().tar();
    for (name, bytes) in [("xz", xz(&tar)), ("gz", gz(&tar)), ("tar", tar.clone()), ("zst", zst(&tar))] {
        let (target, result) = extract_bytes(tmp.path(), name, &bytes, Some(&unprivileged()));
        let info = result.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((info.ostype.as_deref(), info.entries), (Some("debian"), 11), "{name}");
        assert_eq!(owner(&target.join("etc/hosts")), (100_000, 100_000), "{name}");
    }
}

#[test]
fn privileged_extraction_keeps_host_ids_and_creates_no_devices() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = TemplateBuilder::debian_like();
    b.file("./var/www", 0o640, 33, 33, b"w");
    b.node("./etc/console", EntryType::Char);
    let (target, result) = extract_bytes(tmp.path(), "privileged", &zst(&b.tar()), None);
    assert_eq!(result.unwrap().entries, 12);
    assert_eq!(owner(&target.join("var/www")), (33, 33));
    assert_eq!(owner(&target.join("etc/hosts")), (0, 0));
    assert!(!target.join("etc/console").exists());
}

#[test]
fn refused_archives_leave_nothing_and_name_the_member() {
    let tmp = tempfile::tempdir().unwrap();
    let with = |f: &dyn Fn(&mut TemplateBuilder)| {
        let mut b = TemplateBuilder::debian_like();
        f(&mut b);
        zst(&b.tar())
    };
    let few = {
        let mut b = TemplateBuilder::new();
        b.dir("./", 0o755).dir("./sbin/", 0o755);
        zst(&b.tar())
    };
    let no_sbin = {
        let mut b = TemplateBuilder::new();
        for i in 0..12 {
            b.file(&format!("./file{i}"), 0o644, 0, 0, b"x");
        }
        zst(&b.tar())
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("text", b"hello, this is not a template\n".repeat(40), "not a tar archive"),
        ("bzip2", b"BZh91AY&SY".repeat(60), "bzip2"),
        ("garbage-zstd", [&[0x28, 0xb5, 0x2f, 0xfd][..], &[0x55; 600]].concat(), "cannot be read"),
        (
            "dotdot",
            with(&|b| {
                b.file("./etc/../../escape", 0o644, 0, 0, b"x");
            }),
            "'./etc/../../escape'",
        ),
        (
            "absolute",
            with(&|b| {
                b.file("/etc/abs", 0o644, 0, 0, b"x");
            }),
            "'/etc/abs' has an absolute name",
        ),
        (
            "device",
            with(&|b| {
                b.node("./etc/sda", EntryType::Block);
            }),
            "'./etc/sda' is a device node",
        ),
        (
            "hardlink",
            with(&|b| {
                b.link(EntryType::Link, "./etc/pw", "../../etc/passwd");
            }),
            "'./etc/pw'",
        ),
        (
            "multivolume",
            with(&|b| {
                b.append(TemplateBuilder::header("./m", EntryType::new(b'M'), 0o644, 0, 0, 0), b"");
            }),
            "multi-volume",
        ),
        (
            "unmapped-uid",
            with(&|b| {
                b.file("./etc/big", 0o644, 70_000, 0, b"x");
            }),
            "'./etc/big' is owned by uid 70000",
        ),
        ("few", few, "2 members"),
        ("no-sbin", no_sbin, "no sbin"),
    ];
    for (name, bytes, expected) in cases {
        let (target, result) = extract_bytes(tmp.path(), name, &bytes, Some(&unprivileged()));
        match result {
            Err(TemplateError::Refused(message)) => assert!(message.contains(expected), "{name}: {message}"),
            other => panic!("{name}: expected a refusal, got {other:?}"),
        }
        assert!(std::fs::read_dir(&target).unwrap().next().is_none(), "{name}: the target is not empty");
    }
}

#[test]
fn a_symlink_to_slash_cannot_lead_out_of_the_target() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = format!("hearth-escape-{}", std::process::id());
    for (name, idmap) in [("unprivileged", Some(unprivileged())), ("privileged", None)] {
        let mut b = TemplateBuilder::new();
        for dir in ["./", "./sbin/", "./bin/", "./usr/", "./var/", "./root/", "./dev/", "./tmp/"] {
            b.dir(dir, 0o755);
        }
        b.link(EntryType::Symlink, "./etc", "/");
        b.file(&format!("./etc/{marker}"), 0o644, 0, 0, b"inside");
        if idmap.is_some() {
            b.file("./etc/passwd", 0o644, 0, 0, b"root::0:0::/:/bin/sh\n");
        }
        let (target, result) = extract_bytes(tmp.path(), name, &zst(&b.tar()), idmap.as_ref());
        result.unwrap();
        assert!(!Path::new("/").join(&marker).exists(), "{name}: wrote into the host's /");
        assert_eq!(std::fs::read_to_string(target.join(&marker)).unwrap(), "inside", "{name}");
        if idmap.is_some() {
            assert!(!std::fs::read_to_string("/etc/passwd").unwrap().contains("root::0:0::/:/bin/sh"));
            assert!(target.join("passwd").exists());
        }
    }
}

#[test]
fn the_busybox_fixture_extracts_unprivileged() {
    let path = crate::host_needs::fixture("busybox-template.tar.zst", "cargo xtask fixtures");
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("rootfs");
    std::fs::create_dir(&target).unwrap();
    let info = extract(&ctmon(), &path, &target, Some(&unprivileged())).unwrap();
    assert_eq!(info.ostype, None);
    assert!(info.entries > 100, "{info:?}");
    assert_eq!(owner(&target.join("bin/busybox")), (100_000, 100_000));
    assert!(std::fs::symlink_metadata(target.join("sbin")).is_ok());
}

#[test]
fn distributions_are_told_apart_like_proxmox() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    assert_eq!(detect_ostype(root), None);
    std::fs::create_dir(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/os-release"), "NAME=\"Some OS\"\nID=\"someos\"\n").unwrap();
    assert_eq!(detect_ostype(root).as_deref(), Some("someos"));
    std::fs::write(root.join("etc/alpine-release"), "3.20.0\n").unwrap();
    assert_eq!(detect_ostype(root).as_deref(), Some("alpine"));
    std::fs::write(root.join("etc/debian_version"), "12.5\n").unwrap();
    assert_eq!(detect_ostype(root).as_deref(), Some("debian"));
    std::fs::write(root.join("etc/lsb-release"), "DISTRIB_ID=Ubuntu\n").unwrap();
    assert_eq!(detect_ostype(root).as_deref(), Some("ubuntu"));
}
