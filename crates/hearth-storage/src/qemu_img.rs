//! qemu-img, the one tool that reads and writes every image format: create, resize, convert,
//! internal snapshots, and inspection. Listing reads qcow2 headers directly instead, so
//! thousands of volumes list without a process per image.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use hearth_core::storage::Format;
use serde::Deserialize;

use crate::files::run;
use crate::{Result, StorageError};

fn qemu_img() -> Command {
    Command::new("qemu-img")
}

/// Creates an image file that must not exist yet. `backing` is a path relative to the new
/// image's directory, with the backing image's format.
pub fn create(path: &Path, format: Format, size: u64, backing: Option<(&str, Format)>) -> Result<()> {
    let mut cmd = qemu_img();
    cmd.arg("create").arg("-q").arg("-f").arg(format.as_str());
    if format == Format::Qcow2 {
        // Preallocated metadata speeds up first writes; overlays cannot have it.
        let options = if backing.is_some() { "lazy_refcounts=on" } else { "preallocation=metadata,lazy_refcounts=on" };
        cmd.arg("-o").arg(options);
    }
    if let Some((file, fmt)) = backing {
        cmd.arg("-b").arg(file).arg("-F").arg(fmt.as_str());
    }
    cmd.arg(path);
    if backing.is_none() {
        cmd.arg(size.to_string());
    }
    run(&mut cmd)
}

/// What `qemu-img info --output=json` reports that Hearth needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImageInfo {
    pub format: String,
    #[serde(default)]
    pub filename: String,
    pub virtual_size: u64,
    #[serde(default)]
    pub actual_size: Option<u64>,
    #[serde(default)]
    pub backing_filename: Option<String>,
    #[serde(default)]
    pub full_backing_filename: Option<String>,
    #[serde(default)]
    pub snapshots: Vec<SnapshotEntry>,
    #[serde(default)]
    pub format_specific: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub struct SnapshotEntry {
    pub name: String,
}

/// Inspects an image of a known format. `-U` reads images a running guest holds open.
pub fn info(path: &Path, format: Format) -> Result<ImageInfo> {
    let output = qemu_img()
        .args(["info", "-U", "--output=json", "-f", format.as_str()])
        .arg(path)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| StorageError::Unavailable(format!("cannot run qemu-img: {e}")))?;
    if !output.status.success() {
        return Err(StorageError::Command(format!(
            "qemu-img info {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| StorageError::Command(format!("cannot read qemu-img info for {}: {e}", path.display())))
}

/// Grows an image.
pub fn resize(path: &Path, format: Format, size: u64) -> Result<()> {
    run(qemu_img().args(["resize", "-q", "-f", format.as_str()]).arg(path).arg(size.to_string()))
}

/// Creates (`-c`), applies (`-a`) or deletes (`-d`) an internal qcow2 snapshot.
pub fn snapshot(path: &Path, op: SnapshotOp, name: &str) -> Result<()> {
    let flag = match op {
        SnapshotOp::Create => "-c",
        SnapshotOp::Apply => "-a",
        SnapshotOp::Delete => "-d",
    };
    // `snapshot` takes no `-f` before QEMU 8; --image-opts names the driver on every version,
    // so the format is never probed.
    let mut opts = std::ffi::OsString::from("driver=qcow2,file.filename=");
    opts.push(path.as_os_str().to_string_lossy().replace(',', ",,"));
    run(qemu_img().args(["snapshot", "-q", "--image-opts", flag, name]).arg(opts))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotOp {
    Create,
    Apply,
    Delete,
}

/// Copies an image into an existing target image of at least the same size.
pub fn convert(src: &Path, src_format: Format, dst: &Path, dst_format: Format) -> Result<()> {
    convert_limited(src, src_format, dst, dst_format, None)
}

/// [`convert`] at most `kib_per_sec` KiB/s (qemu-img's `-r`).
pub fn convert_limited(
    src: &Path,
    src_format: Format,
    dst: &Path,
    dst_format: Format,
    kib_per_sec: Option<u64>,
) -> Result<()> {
    let rate: Vec<String> = match kib_per_sec.filter(|&k| k > 0) {
        Some(kib) => vec!["-r".into(), format!("{}", kib.saturating_mul(1024))],
        None => Vec::new(),
    };
    run(qemu_img()
        .args(["convert", "-n", "-W", "-f", src_format.as_str(), "-O", dst_format.as_str(), "-t", "none", "-T", "none"])
        .args(&rate)
        .arg(src)
        .arg(dst))
    .or_else(|_| {
        // Filesystems without O_DIRECT (tmpfs) refuse cache=none; retry with the page cache.
        run(qemu_img()
            .args(["convert", "-n", "-W", "-f", src_format.as_str(), "-O", dst_format.as_str()])
            .args(&rate)
            .arg(src)
            .arg(dst))
    })
}

/// A qcow2 header's fields that listing needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Qcow2Header {
    pub virtual_size: u64,
    pub backing_file: Option<String>,
}

/// Reads a qcow2 header; `None` if the file is not qcow2.
pub fn read_qcow2_header(file: &File) -> std::io::Result<Option<Qcow2Header>> {
    let mut head = [0u8; 32];
    if file.read_at(&mut head, 0)? < 32 || head[..4] != *b"QFI\xfb" {
        return Ok(None);
    }
    let be64 = |at: usize| u64::from_be_bytes(head[at..at + 8].try_into().unwrap_or([0; 8]));
    let backing_offset = be64(8);
    let backing_len = u32::from_be_bytes(head[16..20].try_into().unwrap_or([0; 4])) as usize;
    let virtual_size = be64(24);
    let backing_file = if backing_offset != 0 && backing_len > 0 && backing_len <= 1023 {
        let mut name = vec![0u8; backing_len];
        file.read_exact_at(&mut name, backing_offset)?;
        Some(String::from_utf8_lossy(&name).into_owned())
    } else {
        None
    };
    Ok(Some(Qcow2Header { virtual_size, backing_file }))
}

/// The virtual size of a vmdk with a sparse header (`KDMV`); `None` for descriptor files.
pub fn read_vmdk_capacity(file: &mut File) -> std::io::Result<Option<u64>> {
    let mut head = [0u8; 20];
    if file.read(&mut head)? < 20 || head[..4] != *b"KDMV" {
        return Ok(None);
    }
    let sectors = u64::from_le_bytes(head[12..20].try_into().unwrap_or([0; 8]));
    Ok(Some(sectors * 512))
}

/// Refuses what would let an image reach other files: a qcow2 external data file, vmdk
/// extents other than the image file itself, vmdk layouts that are not monolithic.
fn check_self_contained(info: &ImageInfo) -> Result<()> {
    let Some(specific) = &info.format_specific else { return Ok(()) };
    if specific.pointer("/data/data-file").is_some() {
        return Err(StorageError::Invalid(
            "refusing a qcow2 image with an external data file: it could point at any file on the host".into(),
        ));
    }
    if let Some(extents) = specific.pointer("/data/extents").and_then(|e| e.as_array()) {
        // A monolithic vmdk lists itself as its one extent.
        let own = |e: &serde_json::Value| e.get("filename").and_then(|f| f.as_str()) == Some(info.filename.as_str());
        if !extents.iter().all(own) {
            return Err(StorageError::Invalid(
                "refusing a vmdk with separate extent files: only monolithic vmdk images can be imported".into(),
            ));
        }
    }
    if specific
        .pointer("/data/create-type")
        .and_then(|t| t.as_str())
        .is_some_and(|t| !matches!(t, "monolithicSparse" | "streamOptimized"))
    {
        return Err(StorageError::Invalid(
            "refusing a vmdk that is not monolithic (monolithicSparse or streamOptimized)".into(),
        ));
    }
    Ok(())
}

/// Checks an image that arrived from outside before it becomes a volume: the format must be
/// what was declared, and the image must not reach any file outside `allowed_base_dir`
/// (qcow2 backing files and external data files, vmdk extents). Answers the backing file.
pub fn check_foreign_image(path: &Path, format: Format, allowed_base_dir: &Path) -> Result<ImageInfo> {
    let info = info(path, format)?;
    if info.format != format.as_str() {
        return Err(StorageError::Invalid(format!("the image is {}, not {format}", info.format)));
    }
    check_self_contained(&info)?;
    if let Some(backing) = &info.backing_filename {
        let dir = path.parent().unwrap_or(Path::new("/"));
        let resolved = if backing.starts_with('/') { Path::new(backing).to_owned() } else { dir.join(backing) };
        let inside = std::fs::canonicalize(&resolved)
            .ok()
            .zip(std::fs::canonicalize(allowed_base_dir).ok())
            .is_some_and(|(r, base)| r.starts_with(base));
        if !inside || backing.contains("://") || backing.contains(':') && !backing.starts_with('.') {
            return Err(StorageError::Invalid(format!(
                "refusing an image whose backing file '{backing}' lies outside the storage"
            )));
        }
    }
    Ok(info)
}

/// qcow2's incompatible feature bit for an external data file.
const QCOW2_EXTERNAL_DATA_FILE: u64 = 1 << 2;

/// Refuses, from the first bytes alone, images that would make qemu-img open another file
/// while merely inspecting them: a qcow2 with an external data file, a vmdk descriptor file
/// naming its extents.
fn refuse_external_headers(path: &Path) -> Result<()> {
    let file = File::open(path).map_err(|e| StorageError::io("opening", path, e))?;
    let mut head = [0u8; 80];
    let mut read = 0;
    while read < head.len() {
        match file.read_at(&mut head[read..], read as u64) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(StorageError::io("reading", path, e)),
        }
    }
    let head = &head[..read];
    if head.len() >= 80 && head[..4] == *b"QFI\xfb" {
        let version = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        let incompatible = u64::from_be_bytes(head[72..80].try_into().unwrap_or([0; 8]));
        if version >= 3 && incompatible & QCOW2_EXTERNAL_DATA_FILE != 0 {
            return Err(StorageError::Invalid(
                "refusing a qcow2 image with an external data file: it could point at any file on the host".into(),
            ));
        }
    }
    if head.starts_with(b"# Disk DescriptorFile") {
        return Err(StorageError::Invalid(
            "refusing a vmdk descriptor file: its extents are separate files; only monolithic vmdk images can be imported"
                .into(),
        ));
    }
    Ok(())
}

/// The formats an image handed over by a user may have.
pub const IMPORTABLE: [Format; 3] = [Format::Raw, Format::Qcow2, Format::Vmdk];

/// Inspects an image of unknown format that a user handed over (`vmctl disk import`): its
/// format is probed, as qm does, and it must be self-contained. A backing file of any kind is
/// refused (the import would copy a file the user named, with hearthd's rights), and so are
/// qcow2 external data files and vmdk extents; those two are refused from the header before
/// qemu-img runs, so it never opens the file they name.
pub fn probe_foreign_image(path: &Path) -> Result<(Format, ImageInfo)> {
    refuse_external_headers(path)?;
    let output = qemu_img()
        .args(["info", "-U", "--output=json"])
        .arg(path)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| StorageError::Unavailable(format!("cannot run qemu-img: {e}")))?;
    if !output.status.success() {
        return Err(StorageError::Invalid(format!(
            "cannot read the image: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let info: ImageInfo = serde_json::from_slice(&output.stdout)
        .map_err(|e| StorageError::Command(format!("cannot read qemu-img info for {}: {e}", path.display())))?;
    let format = IMPORTABLE.into_iter().find(|f| f.as_str() == info.format).ok_or_else(|| {
        StorageError::Invalid(format!(
            "images in format '{}' cannot be imported (allowed: raw, qcow2, vmdk)",
            info.format
        ))
    })?;
    if let Some(backing) = &info.backing_filename {
        return Err(StorageError::Invalid(format!(
            "refusing an image with the backing file '{backing}': only self-contained images can be imported \
             (flatten it first with qemu-img convert)"
        )));
    }
    check_self_contained(&info)?;
    Ok((format, info))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has_qemu_img() -> bool {
        Command::new("qemu-img").arg("--version").output().is_ok_and(|o| o.status.success())
    }

    #[test]
    fn headers_read_without_qemu_img() {
        assert!(has_qemu_img(), "qemu-img is missing: install qemu-utils");
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.qcow2");
        create(&base, Format::Qcow2, 1 << 30, None).unwrap();
        let overlay = dir.path().join("overlay.qcow2");
        create(&overlay, Format::Qcow2, 0, Some(("base.qcow2", Format::Qcow2))).unwrap();
        let h = read_qcow2_header(&File::open(&base).unwrap()).unwrap().unwrap();
        assert_eq!(h, Qcow2Header { virtual_size: 1 << 30, backing_file: None });
        let h = read_qcow2_header(&File::open(&overlay).unwrap()).unwrap().unwrap();
        assert_eq!(h.backing_file.as_deref(), Some("base.qcow2"));
        assert_eq!(h.virtual_size, 1 << 30);
        let raw = dir.path().join("x.raw");
        std::fs::write(&raw, [0u8; 64]).unwrap();
        assert_eq!(read_qcow2_header(&File::open(&raw).unwrap()).unwrap(), None);

        assert!(check_foreign_image(&overlay, Format::Qcow2, dir.path()).is_ok());
        let elsewhere = tempfile::tempdir().unwrap();
        let e = check_foreign_image(&overlay, Format::Qcow2, elsewhere.path()).unwrap_err();
        assert!(e.to_string().contains("outside the storage"), "{e}");
        let e = check_foreign_image(&raw, Format::Qcow2, dir.path()).unwrap_err();
        assert!(e.to_string().contains("qemu-img info"), "{e}");
        // A monolithic vmdk names itself as its one extent.
        let vmdk = dir.path().join("x.vmdk");
        create(&vmdk, Format::Vmdk, 1 << 20, None).unwrap();
        assert!(check_foreign_image(&vmdk, Format::Vmdk, dir.path()).is_ok());
    }

    #[test]
    fn foreign_images_are_probed_and_must_stand_alone() {
        assert!(has_qemu_img(), "qemu-img is missing: install qemu-utils");
        let dir = tempfile::tempdir().unwrap();
        let probe = |name: &str| probe_foreign_image(&dir.path().join(name));
        let raw = dir.path().join("x.raw");
        std::fs::write(&raw, vec![7u8; 4096]).unwrap();
        let (format, info) = probe("x.raw").unwrap();
        assert_eq!((format, info.virtual_size), (Format::Raw, 4096));
        for (name, format) in [("x.qcow2", Format::Qcow2), ("x.vmdk", Format::Vmdk)] {
            create(&dir.path().join(name), format, 1 << 20, None).unwrap();
            let (probed, info) = probe(name).unwrap();
            assert_eq!((probed, info.virtual_size), (format, 1 << 20), "{name}");
        }
        // A backing file is refused even next to the image.
        create(&dir.path().join("overlay.qcow2"), Format::Qcow2, 0, Some(("x.qcow2", Format::Qcow2))).unwrap();
        let e = probe("overlay.qcow2").unwrap_err();
        assert!(e.to_string().contains("backing file 'x.qcow2'"), "{e}");
        // External data files and vmdk descriptors are refused before qemu-img opens them.
        let run_create = |args: &[&str]| {
            let ok = qemu_img().args(args).current_dir(dir.path()).status().unwrap().success();
            assert!(ok, "qemu-img {args:?}");
        };
        run_create(&["create", "-q", "-f", "qcow2", "-o", "data_file=data.raw", "external.qcow2", "1M"]);
        let e = probe("external.qcow2").unwrap_err();
        assert!(e.to_string().contains("external data file"), "{e}");
        run_create(&["create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", "flat.vmdk", "1M"]);
        let e = probe("flat.vmdk").unwrap_err();
        assert!(e.to_string().contains("vmdk descriptor"), "{e}");
        std::fs::write(dir.path().join("empty"), b"").unwrap();
        let (format, info) = probe("empty").unwrap();
        assert_eq!((format, info.virtual_size), (Format::Raw, 0));
    }
}
