//! vzdump-style single-file archives for file storages, without dedupe:
//! `vzdump-qemu-<vmid>-YYYY_MM_DD-HH_MM_SS.vma.zst` and `vzdump-lxc-….tar.zst`, each written as
//! `<archive>.dat` and renamed into place only when complete, with `<base>.log`, optional
//! `<archive>.notes` and `<archive>.protected` beside them.
//!
//! The VM stream format ("HVMA", Hearth's own; not Proxmox's VMA) is zstd-compressed as a
//! whole; inside, big endian:
//!
//! ```text
//! "HVMA" | u32 version = 1 | u32 n | n bytes of JSON {"config": "...", "disks": [{"name", "size"}], "ctime"}
//! then records, disks in order, extents of one disk in increasing offset:
//!   'E' | u8 disk | u64 offset | u32 len | len bytes      data; 64 KiB clusters that are all zero are left out
//!   'D' | u8 disk | 32-byte SHA-256 of the disk's whole content (zeros included)
//! 'T' | u32 number of disks                              trailer: the stream is complete
//! ```
//!
//! A container archive is a POSIX tar stream made with GNU tar (see [`crate::tree`]), the guest
//! configuration first as `./etc/vzdump/pct.conf`, as PVE does.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, IoContext};
use crate::time::vzdump_stamp;
use crate::tree::{TAR_CREATE_OPTIONS, TAR_EXTRACT_OPTIONS};

const MAGIC: &[u8; 4] = b"HVMA";
const VERSION: u32 = 1;
const CLUSTER: usize = 64 << 10;
const BLOCK: usize = 4 << 20;

/// The disks and configuration at the head of a VM archive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmaHeader {
    pub config: String,
    pub disks: Vec<VmaDisk>,
    pub ctime: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmaDisk {
    pub name: String,
    pub size: u64,
}

/// Where a finished archive and its side files are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VzdumpArchive {
    pub path: PathBuf,
    pub log: PathBuf,
    pub size: u64,
}

/// When and how to name an archive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArchiveOptions {
    /// Unix time of the backup.
    pub time: i64,
    /// Local time's offset from UTC in seconds (the name is in local time).
    pub utc_offset: i32,
    pub notes: Option<String>,
    pub protected: bool,
    /// zstd worker threads (0: compress on the calling thread).
    pub zstd_threads: u32,
    /// Container archives: tar exclusion patterns (see [`crate::tree::exclude_args`]).
    pub exclude: Vec<String>,
}

/// `vzdump-<qemu|lxc>-<vmid>-<stamp>` (without extension).
pub fn base_name(guest_type: &str, vmid: u32, options: &ArchiveOptions) -> String {
    format!("vzdump-{guest_type}-{vmid}-{}", vzdump_stamp(options.time, options.utc_offset))
}

/// Writes the archive through `<path>.dat` and renames it; on failure nothing is left.
fn write_archive(
    dir: &Path,
    base: &str,
    ext: &str,
    options: &ArchiveOptions,
    log: &mut String,
    body: impl FnOnce(&mut dyn Write, &mut String) -> Result<(), Error>,
) -> Result<VzdumpArchive, Error> {
    let path = dir.join(format!("{base}.{ext}"));
    let dat = dir.join(format!("{base}.{ext}.dat"));
    if path.exists() {
        return Err(Error::Invalid(format!("{} exists", path.display())));
    }
    let result = (|| {
        let file = File::create_new(&dat).at(&dat)?;
        let mut encoder = zstd::stream::write::Encoder::new(BufWriter::with_capacity(1 << 20, file), 1).at(&dat)?;
        if options.zstd_threads > 0 {
            encoder.multithread(options.zstd_threads).at(&dat)?;
        }
        let mut counted = CountingWriter { inner: encoder, count: 0 };
        body(&mut counted, log)?;
        let uncompressed = counted.count;
        let file = counted.inner.finish().at(&dat)?.into_inner().map_err(|e| Error::io(&dat, e.into_error()))?;
        file.sync_all().at(&dat)?;
        let size = file.metadata().at(&dat)?.len();
        log.push_str(&format!("archive size {size} bytes ({uncompressed} uncompressed)\n"));
        fs::rename(&dat, &path).at(&path)?;
        Ok(size)
    })();
    let size = match result {
        Ok(size) => size,
        Err(e) => {
            let _ = fs::remove_file(&dat);
            return Err(e);
        }
    };
    let log_path = dir.join(format!("{base}.log"));
    fs::write(&log_path, log.as_bytes()).at(&log_path)?;
    if let Some(notes) = &options.notes {
        let notes_path = dir.join(format!("{base}.{ext}.notes"));
        fs::write(&notes_path, notes).at(&notes_path)?;
    }
    if options.protected {
        let p = dir.join(format!("{base}.{ext}.protected"));
        fs::write(&p, b"").at(&p)?;
    }
    Ok(VzdumpArchive { path, log: log_path, size })
}

struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `vzdump-qemu-<vmid>-<stamp>.vma.zst` in `dir` from the VM's configuration and disks
/// (`(name, path)`, regular files or block devices).
pub fn write_vma(
    dir: &Path,
    vmid: u32,
    config: &str,
    disks: &[(&str, &Path)],
    options: &ArchiveOptions,
) -> Result<VzdumpArchive, Error> {
    write_vma_with(dir, vmid, config, disks, options, crate::meter::no_hook())
}

/// [`write_vma`], calling `hook` with every block read from the disks.
pub fn write_vma_with(
    dir: &Path,
    vmid: u32,
    config: &str,
    disks: &[(&str, &Path)],
    options: &ArchiveOptions,
    hook: crate::meter::ReadHook<'_>,
) -> Result<VzdumpArchive, Error> {
    let base = base_name("qemu", vmid, options);
    let (header, sources) = vma_sources(config, disks, options)?;
    let mut log = format!("backup of VM {vmid} started at {}\n", crate::time::rfc3339(options.time));
    let dat = dir.join(format!("{base}.vma.zst.dat"));
    write_archive(dir, &base, "vma.zst", options, &mut log, |out, log| {
        vma_body(out, &header, &sources, log, &dat, hook)
    })
}

/// Writes a VM archive as one zstd stream into `out` (`vzdump --stdout`); answers the bytes
/// written. `name` stands for `out` in errors.
pub fn stream_vma_with(
    out: &mut dyn Write,
    name: &Path,
    vmid: u32,
    config: &str,
    disks: &[(&str, &Path)],
    options: &ArchiveOptions,
    hook: crate::meter::ReadHook<'_>,
) -> Result<u64, Error> {
    let (header, sources) = vma_sources(config, disks, options)?;
    let mut log = format!("backup of VM {vmid} started at {}\n", crate::time::rfc3339(options.time));
    stream_archive(out, name, options, |out| vma_body(out, &header, &sources, &mut log, name, hook))
}

/// zstd-compresses what `body` writes into `out`; answers the compressed size.
fn stream_archive(
    out: &mut dyn Write,
    name: &Path,
    options: &ArchiveOptions,
    body: impl FnOnce(&mut dyn Write) -> Result<(), Error>,
) -> Result<u64, Error> {
    let counted = CountingWriter { inner: BufWriter::with_capacity(1 << 20, out), count: 0 };
    let mut encoder = zstd::stream::write::Encoder::new(counted, 1).at(name)?;
    if options.zstd_threads > 0 {
        encoder.multithread(options.zstd_threads).at(name)?;
    }
    body(&mut encoder)?;
    let mut counted = encoder.finish().at(name)?;
    counted.flush().at(name)?;
    Ok(counted.count)
}

type VmaSource<'a> = (File, &'a Path, u64);

fn vma_sources<'a>(
    config: &str,
    disks: &[(&str, &'a Path)],
    options: &ArchiveOptions,
) -> Result<(VmaHeader, Vec<VmaSource<'a>>), Error> {
    let mut sources = Vec::new();
    let mut header = VmaHeader { config: config.to_owned(), disks: Vec::new(), ctime: options.time };
    for (name, path) in disks {
        let file = File::open(path).at(*path)?;
        let size = io::Seek::seek(&mut &file, io::SeekFrom::End(0)).at(*path)?;
        header.disks.push(VmaDisk { name: (*name).to_owned(), size });
        sources.push((file, *path, size));
    }
    if header.disks.len() > 255 {
        return Err(Error::Invalid("a VM archive holds at most 255 disks".into()));
    }
    Ok((header, sources))
}

fn vma_body(
    out: &mut dyn Write,
    header: &VmaHeader,
    sources: &[VmaSource<'_>],
    log: &mut String,
    dat: &Path,
    hook: crate::meter::ReadHook<'_>,
) -> Result<(), Error> {
    let json = serde_json::to_vec(header).expect("a header serializes");
    let mut head = MAGIC.to_vec();
    head.extend_from_slice(&VERSION.to_be_bytes());
    head.extend_from_slice(&(json.len() as u32).to_be_bytes());
    head.extend_from_slice(&json);
    out.write_all(&head).at(dat)?;
    let mut buf = vec![0u8; BLOCK];
    for (disk, (file, path, size)) in sources.iter().enumerate() {
        let mut hash = Sha256::new();
        let mut stored = 0u64;
        let mut offset = 0u64;
        while offset < *size {
            let len = (*size - offset).min(BLOCK as u64) as usize;
            file.read_exact_at(&mut buf[..len], offset).at(*path)?;
            hook(len as u64);
            hash.update(&buf[..len]);
            // Runs of non-zero clusters become extents.
            let mut run: Option<usize> = None;
            for c in (0..len).step_by(CLUSTER).chain([len]) {
                let zero = c == len || crate::restore::is_zero(&buf[c..(c + CLUSTER).min(len)]);
                match (run, zero) {
                    (None, false) => run = Some(c),
                    (Some(from), true) => {
                        let mut rec = vec![b'E', disk as u8];
                        rec.extend_from_slice(&(offset + from as u64).to_be_bytes());
                        rec.extend_from_slice(&((c - from) as u32).to_be_bytes());
                        out.write_all(&rec).and_then(|()| out.write_all(&buf[from..c])).at(dat)?;
                        stored += (c - from) as u64;
                        run = None;
                    }
                    _ => {}
                }
            }
            offset += len as u64;
        }
        let mut rec = vec![b'D', disk as u8];
        rec.extend_from_slice(&hash.finalize());
        out.write_all(&rec).at(dat)?;
        log.push_str(&format!("disk {}: {size} bytes, {stored} bytes of data stored\n", header.disks[disk].name));
    }
    let mut trailer = vec![b'T'];
    trailer.extend_from_slice(&(header.disks.len() as u32).to_be_bytes());
    out.write_all(&trailer).at(dat)
}

fn read_exact_or_corrupt(r: &mut impl Read, buf: &mut [u8], path: &Path) -> Result<(), Error> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Error::corrupt(path, "archive truncated")
        } else {
            Error::io(path, e)
        }
    })
}

/// zstd's frame magic number, little-endian.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The archive's bytes: decompressed when it is zstd-compressed (as Hearth writes archives),
/// as they are otherwise (an archive stored uncompressed, as vzdump's `--compress 0` writes them).
fn decompressed<'a, R: BufRead + 'a>(mut inner: R, path: &Path) -> Result<Box<dyn Read + 'a>, Error> {
    let compressed = inner.fill_buf().at(path)?.starts_with(&ZSTD_MAGIC);
    if compressed {
        Ok(Box::new(zstd::stream::read::Decoder::with_buffer(inner).at(path)?))
    } else {
        Ok(Box::new(inner))
    }
}

fn open_vma(path: &Path) -> Result<(impl Read, VmaHeader), Error> {
    let file = File::open(path).at(path)?;
    let mut r = decompressed(BufReader::with_capacity(1 << 20, file), path)?;
    let mut head = [0u8; 12];
    read_exact_or_corrupt(&mut r, &mut head, path)?;
    if &head[..4] != MAGIC || u32::from_be_bytes(head[4..8].try_into().expect("4 bytes")) != VERSION {
        return Err(Error::corrupt(path, "not a Hearth VM archive (HVMA v1)"));
    }
    let len = u32::from_be_bytes(head[8..12].try_into().expect("4 bytes")) as usize;
    if len > 16 << 20 {
        return Err(Error::corrupt(path, "header too large"));
    }
    let mut json = vec![0u8; len];
    read_exact_or_corrupt(&mut r, &mut json, path)?;
    let header = serde_json::from_slice(&json).map_err(|e| Error::corrupt(path, format!("bad header: {e}")))?;
    Ok((r, header))
}

/// The configuration and disk list of a VM archive.
pub fn read_vma_header(path: &Path) -> Result<VmaHeader, Error> {
    open_vma(path).map(|(_, h)| h)
}

/// Restores every disk of a VM archive to `target(name)` (regular files, created sparse), and
/// checks each disk's SHA-256. Returns the header.
pub fn extract_vma(path: &Path, target: impl Fn(&str) -> PathBuf) -> Result<VmaHeader, Error> {
    extract_vma_with(path, target, crate::meter::no_hook())
}

/// [`extract_vma`], calling `hook` with the bytes of disk restored as the disks are written
/// (zero clusters count when they are passed), adding up to the disks' sizes.
pub fn extract_vma_with(
    path: &Path,
    target: impl Fn(&str) -> PathBuf,
    hook: crate::meter::ReadHook<'_>,
) -> Result<VmaHeader, Error> {
    let (mut r, header) = open_vma(path)?;
    let mut outputs = Vec::new();
    for disk in &header.disks {
        let out_path = target(&disk.name);
        let file = OpenOptions::new().write(true).create(true).truncate(true).open(&out_path).at(&out_path)?;
        file.set_len(disk.size).at(&out_path)?;
        outputs.push((file, out_path, Sha256::new(), 0u64, false));
    }
    let zeros = vec![0u8; BLOCK];
    let hash_zeros = |hash: &mut Sha256, mut n: u64| {
        while n > 0 {
            let k = n.min(BLOCK as u64) as usize;
            hash.update(&zeros[..k]);
            n -= k as u64;
        }
    };
    let mut data = vec![0u8; BLOCK];
    loop {
        let mut tag = [0u8; 1];
        read_exact_or_corrupt(&mut r, &mut tag, path)?;
        match tag[0] {
            b'E' => {
                let mut rec = [0u8; 13];
                read_exact_or_corrupt(&mut r, &mut rec, path)?;
                let disk = usize::from(rec[0]);
                let offset = u64::from_be_bytes(rec[1..9].try_into().expect("8 bytes"));
                let len = u32::from_be_bytes(rec[9..13].try_into().expect("4 bytes")) as usize;
                let (file, out_path, hash, pos, _) =
                    outputs.get_mut(disk).ok_or_else(|| Error::corrupt(path, "extent of an unknown disk"))?;
                if len > BLOCK || offset < *pos || offset + len as u64 > header.disks[disk].size {
                    return Err(Error::corrupt(path, "extent out of order or out of range"));
                }
                read_exact_or_corrupt(&mut r, &mut data[..len], path)?;
                hash_zeros(hash, offset - *pos);
                hash.update(&data[..len]);
                file.write_all_at(&data[..len], offset).at(&*out_path)?;
                hook(offset + len as u64 - *pos);
                *pos = offset + len as u64;
            }
            b'D' => {
                let mut rec = [0u8; 33];
                read_exact_or_corrupt(&mut r, &mut rec, path)?;
                let disk = usize::from(rec[0]);
                let (file, out_path, hash, pos, done) =
                    outputs.get_mut(disk).ok_or_else(|| Error::corrupt(path, "checksum of an unknown disk"))?;
                hash_zeros(hash, header.disks[disk].size - *pos);
                hook(header.disks[disk].size - *pos);
                *pos = header.disks[disk].size;
                let digest: [u8; 32] = std::mem::take(hash).finalize().into();
                if digest[..] != rec[1..] {
                    return Err(Error::corrupt(
                        path,
                        format!("disk {} does not match its checksum", header.disks[disk].name),
                    ));
                }
                file.sync_data().at(&*out_path)?;
                *done = true;
            }
            b'T' => {
                let mut rec = [0u8; 4];
                read_exact_or_corrupt(&mut r, &mut rec, path)?;
                if outputs.iter().any(|o| !o.4) || u32::from_be_bytes(rec) as usize != outputs.len() {
                    return Err(Error::corrupt(path, "trailer before every disk was complete"));
                }
                return Ok(header);
            }
            _ => return Err(Error::corrupt(path, "unknown record")),
        }
    }
}

/// Writes `vzdump-lxc-<vmid>-<stamp>.tar.zst` in `dir` from the container's configuration and
/// its root file system tree.
pub fn write_lxc(
    dir: &Path,
    vmid: u32,
    config: &str,
    rootfs: &Path,
    options: &ArchiveOptions,
) -> Result<VzdumpArchive, Error> {
    write_lxc_with(dir, vmid, config, rootfs, &[], options, crate::meter::no_hook())
}

/// [`write_lxc`] with further trees `(path in the container, source)` archived under their
/// path (mount points), calling `hook` with every block of the tar stream.
pub fn write_lxc_with(
    dir: &Path,
    vmid: u32,
    config: &str,
    rootfs: &Path,
    mounts: &[(&str, &Path)],
    options: &ArchiveOptions,
    hook: crate::meter::ReadHook<'_>,
) -> Result<VzdumpArchive, Error> {
    let base = base_name("lxc", vmid, options);
    let staging = dir.join(format!(".{base}.tmp"));
    let mut log = format!("backup of CT {vmid} started at {}\n", crate::time::rfc3339(options.time));
    let dat = dir.join(format!("{base}.tar.zst.dat"));
    let result = stage_config(&staging, config).and_then(|()| {
        write_archive(dir, &base, "tar.zst", options, &mut log, |out, _| {
            lxc_body(out, &staging, rootfs, mounts, &options.exclude, &dat, hook)
        })
    });
    let _ = fs::remove_dir_all(&staging);
    result
}

/// Writes a container archive as one zstd stream into `out` (`vzdump --stdout`), staging its
/// configuration under `temp`; answers the bytes written. `name` stands for `out` in errors.
#[allow(clippy::too_many_arguments)] // One archive's whole context, as write_lxc_with's.
pub fn stream_lxc_with(
    out: &mut dyn Write,
    name: &Path,
    temp: &Path,
    config: &str,
    rootfs: &Path,
    mounts: &[(&str, &Path)],
    options: &ArchiveOptions,
    hook: crate::meter::ReadHook<'_>,
) -> Result<u64, Error> {
    let staging = temp.join(format!(".vzdump-stream-{}.tmp", std::process::id()));
    let result = stage_config(&staging, config).and_then(|()| {
        stream_archive(out, name, options, |out| lxc_body(out, &staging, rootfs, mounts, &options.exclude, name, hook))
    });
    let _ = fs::remove_dir_all(&staging);
    result
}

/// `<staging>/etc/vzdump/pct.conf`, the archive's first member.
fn stage_config(staging: &Path, config: &str) -> Result<(), Error> {
    let conf_dir = staging.join("etc/vzdump");
    fs::create_dir_all(&conf_dir).at(&conf_dir)?;
    let conf = conf_dir.join("pct.conf");
    fs::write(&conf, config).at(&conf)
}

fn lxc_body(
    out: &mut dyn Write,
    staging: &Path,
    rootfs: &Path,
    mounts: &[(&str, &Path)],
    exclude: &[String],
    dat: &Path,
    hook: crate::meter::ReadHook<'_>,
) -> Result<(), Error> {
    let mut command = Command::new("tar");
    command.args(TAR_CREATE_OPTIONS).arg("-C").arg(staging).arg("./etc/vzdump/pct.conf");
    command.args(crate::tree::exclude_args(exclude));
    command.args(crate::tree::tree_args(rootfs, mounts));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("tar", e))?;
    let stdout = child.stdout.take().expect("stdout was piped");
    let mut stdout = crate::meter::HookReader { inner: stdout, hook };
    let copied = io::copy(&mut stdout, out);
    drop(stdout);
    let output = child.wait_with_output().map_err(|e| Error::io("tar", e))?;
    copied.at(dat)?;
    if !output.status.success() {
        return Err(Error::Command {
            command: format!("tar --create -C {}", rootfs.display()),
            message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// Restores a container archive's tree into `dest` (leaving out `./etc/vzdump`) and returns
/// its configuration.
pub fn extract_lxc(path: &Path, dest: &Path) -> Result<String, Error> {
    extract_lxc_with(path, dest, crate::meter::no_hook())
}

/// [`extract_lxc`], calling `hook` with every block of the (compressed) archive read.
pub fn extract_lxc_with(path: &Path, dest: &Path, hook: crate::meter::ReadHook<'_>) -> Result<String, Error> {
    fs::create_dir_all(dest).at(dest)?;
    let mut config = None;
    let mut child = Command::new("tar")
        .args(TAR_EXTRACT_OPTIONS)
        .arg("--exclude=./etc/vzdump/pct.conf")
        .arg("-C")
        .arg(dest)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("tar", e))?;
    let mut stdin = child.stdin.take().expect("stdin was piped");
    let fed = (|| {
        let file = crate::meter::HookReader { inner: File::open(path).at(path)?, hook };
        let mut decoder = decompressed(BufReader::with_capacity(1 << 20, file), path)?;
        // The configuration is the first member; it is read from the head of the stream.
        let mut head = vec![0u8; 64 << 10];
        let mut filled = 0;
        while filled < head.len() {
            let n = decoder.read(&mut head[filled..]).at(path)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        head.truncate(filled);
        config = first_member_text(&head, "etc/vzdump/pct.conf");
        stdin.write_all(&head).at(dest)?;
        io::copy(&mut decoder, &mut stdin).at(dest)?;
        Ok::<(), Error>(())
    })();
    drop(stdin);
    let output = child.wait_with_output().map_err(|e| Error::io("tar", e))?;
    fed?;
    if !output.status.success() {
        return Err(Error::Command {
            command: format!("tar --extract -C {}", dest.display()),
            message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    config.ok_or_else(|| Error::corrupt(path, "no ./etc/vzdump/pct.conf at the start of the archive"))
}

/// The contents of the first regular member if it is `name` (after pax headers).
fn first_member_text(stream: &[u8], name: &str) -> Option<String> {
    let mut pos = 0;
    let mut path = None;
    while pos + 512 <= stream.len() {
        let h = &stream[pos..pos + 512];
        let size = usize::from_str_radix(String::from_utf8_lossy(&h[124..135]).trim_matches(['\0', ' ']), 8).ok()?;
        let data = stream.get(pos + 512..pos + 512 + size)?;
        match h[156] {
            b'x' => {
                let text = String::from_utf8_lossy(data);
                path = text.lines().find_map(|l| l.split_once(" path=").map(|(_, p)| p.to_owned()));
            }
            b'0' | b'\0' => {
                let header_name = String::from_utf8_lossy(&h[..100]).trim_end_matches('\0').to_owned();
                let member = path.unwrap_or(header_name);
                return (member.trim_start_matches("./") == name).then(|| String::from_utf8_lossy(data).into_owned());
            }
            _ => return None,
        }
        pos += 512 + size.div_ceil(512) * 512;
    }
    None
}
