//! The `btrfs` backend: a directory on btrfs where every guest image is a subvolume, so
//! snapshots, rollbacks and linked clones are atomic and O(1), in Proxmox's BTRFSPlugin layout
//! with Hearth's flat volume names.
//!
//! Layout under the storage path:
//!
//! ```text
//! images/<vmid>/vm-100-disk-0/disk.raw     VM disk: a subvolume holding one raw file
//! images/<vmid>/subvol-100-disk-0/         container volume: the subvolume itself
//! images/<vmid>/base-100-disk-0/disk.raw   template disk: as a VM disk, read-only
//! images/<vmid>/vm-100-disk-0@<snap>/      read-only snapshot, beside its volume
//! images/<vmid>/.vm-101-disk-0.base        linked clone: the name of its base image
//! images/<vmid>/.tmp-<random>-<name>       work in progress, never listed
//! ```
//!
//! Non-image content (iso, vztmpl, backup, snippets, import) is laid out as on dir storages.
//!
//! A linked clone is a writable snapshot of its base and shares no data dependency with it;
//! the base's name is kept in a sidecar file outside the clone (never inside a container's
//! root, which the guest sees) so listings can name the clone `base-100-disk-0/vm-101-disk-0`
//! and bases with clones are not freed, as on Proxmox.
//!
//! # The `btrfs` stream format
//!
//! A volume together with its snapshots, as `btrfs send` streams in Hearth's own framing:
//!
//! ```text
//! stream = header record* final
//! header = "hearth-btrfs-stream v1 " ("raw" | "subvol") "\n"
//! record = u32 name length (1..=64), name (a snapshot name), chunk* end
//! final  = u32 0 (no name), chunk* end       the volume's current state; the stream ends here
//! chunk  = u64 length (> 0), that many bytes of one `btrfs send` stream
//! end    = u64 0
//! ```
//!
//! Integers are little-endian. Snapshot records come oldest first; the first carries a full
//! send stream, every later one (the final record included) a stream incremental against
//! the record before it (`btrfs send -p`). The final record is sent from a temporary
//! read-only snapshot of the live volume. A truncated stream never reaches the end of its
//! final record, so an import fails rather than creating a partial volume.
//!
//! Import receives each record with `btrfs receive --chroot` into a temporary directory beside
//! the volume and renames what arrived to `<image>@<snap>`. Once the stream is complete it
//! snapshots the received subvolumes under temporary names beside their final ones (read-only
//! for the snapshots, oldest first; writable for the final record, which becomes the live
//! volume) and renames them all into place; on failure the temporary directory and every
//! subvolume made so far are deleted.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use hearth_core::storage::{
    Content, Format, ImageName, ImagePrefix, StorageConfig, StorageType, StreamFormat, VolName, VolumeId,
    lowest_free_disk,
};
use hearth_core::{Value, Vmid};
use hearth_sys::btrfs as sys;

use self::send_stream::{read_record_name, read_stream_header, receive_record, send_record, write_error};
use crate::dir::{check_alloc_size, free_file};
use crate::files::{self, temp_name};
use crate::{Backend, NewImage, Result, Space, StorageError, VolumeInfo, stream};

mod send_stream;

/// The file inside a VM disk's subvolume that holds the disk.
const DISK_FILE: &str = "disk.raw";
/// The first line of a `btrfs` stream, before the volume format.
const STREAM_MAGIC: &str = "hearth-btrfs-stream v1 ";
/// Longest snapshot name, in a stream and on disk.
const MAX_SNAPSHOT_NAME: usize = 64;
/// Chunk size of the stream framing on export.
const CHUNK: usize = 1 << 20;

#[derive(Debug)]
pub struct BtrfsBackend {
    config: StorageConfig,
}

impl BtrfsBackend {
    pub fn new(config: StorageConfig) -> BtrfsBackend {
        BtrfsBackend { config }
    }

    fn images_dir(&self, vmid: Vmid) -> PathBuf {
        crate::guest_images_dir(&self.config, vmid)
    }

    /// The subvolume of an image.
    fn subvolume(&self, image: &ImageName) -> PathBuf {
        self.images_dir(image.vmid).join(image.to_string())
    }

    fn snapshot_path(&self, image: &ImageName, snap: &str) -> PathBuf {
        self.images_dir(image.vmid).join(format!("{image}@{snap}"))
    }

    /// Where a linked clone records its base.
    fn sidecar(&self, image: &ImageName) -> PathBuf {
        self.images_dir(image.vmid).join(format!(".{image}.base"))
    }

    /// Flat names carry no format: container volumes are `subvol-`, every other image a raw disk.
    fn format_of(image: &ImageName) -> Format {
        if image.prefix == ImagePrefix::Subvol { Format::Subvol } else { Format::Raw }
    }

    /// The file (VM disk) or directory (container) a guest uses.
    fn volume_path(&self, image: &ImageName) -> PathBuf {
        let subvolume = self.subvolume(image);
        match Self::format_of(image) {
            Format::Subvol => subvolume,
            _ => subvolume.join(DISK_FILE),
        }
    }

    fn render(&self, vol: &VolName) -> String {
        vol.render(StorageType::Btrfs)
    }

    fn volid(&self, vol: &VolName) -> VolumeId {
        VolumeId::new(&self.config.id, &self.render(vol))
    }

    fn nocow(&self) -> bool {
        self.config.section.get("nocow") == Some(&Value::Bool(true))
    }

    fn image<'a>(&self, vol: &'a VolName) -> Result<(&'a ImageName, Option<&'a ImageName>)> {
        match vol {
            VolName::Image { image, base } => {
                // `@` is legal in volume names but separates a volume from its snapshots here.
                if image.name.contains('@') || base.as_ref().is_some_and(|b| b.name.contains('@')) {
                    return Err(StorageError::Invalid(format!(
                        "invalid volume name '{}': '@' is reserved for snapshots on btrfs storages",
                        self.render(vol)
                    )));
                }
                Ok((image, base.as_ref()))
            }
            VolName::File { content, file } => {
                Err(StorageError::Invalid(format!("'{content}/{file}' is not a disk image")))
            }
        }
    }

    fn existing_image<'a>(&self, vol: &'a VolName) -> Result<(&'a ImageName, PathBuf)> {
        let (image, _) = self.image(vol)?;
        let path = self.subvolume(image);
        if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            return Err(StorageError::NotFound(format!("volume '{}' does not exist", self.volid(vol))));
        }
        Ok((image, path))
    }

    /// Disk indexes taken by any image of `vmid`, whatever its prefix. Snapshots count for
    /// their volume, so a new volume never inherits a leftover snapshot.
    fn taken_indexes(&self, vmid: Vmid) -> Result<Vec<u32>> {
        let dir = self.images_dir(vmid);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StorageError::io("reading", &dir, e)),
        };
        let mut taken = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') {
                continue;
            }
            let volume = name.split_once('@').map_or(name, |(volume, _)| volume);
            if let Ok(image) = ImageName::parse(volume, false) {
                taken.extend(image.disk_index());
            }
        }
        Ok(taken)
    }

    /// The image a new volume of `vmid` gets: the requested name, checked, or the lowest
    /// free `disk-N`.
    fn new_image_name(&self, vmid: Vmid, requested: Option<&str>, format: Format) -> Result<ImageName> {
        let prefix = if format == Format::Subvol { ImagePrefix::Subvol } else { ImagePrefix::Vm };
        let Some(name) = requested else {
            let n = lowest_free_disk(self.taken_indexes(vmid)?).ok_or_else(|| {
                StorageError::Conflict(format!("VMID {vmid} already has 1024 disks on storage '{}'", self.config.id))
            })?;
            return Ok(ImageName::disk(prefix, vmid, n, None));
        };
        let image = ImageName::parse(name, false).map_err(StorageError::Invalid)?;
        if image.vmid != vmid {
            return Err(StorageError::Invalid(format!("image name '{name}' does not belong to VMID {vmid}")));
        }
        if image.name.contains('@') {
            return Err(StorageError::Invalid(format!("image name '{name}': '@' is reserved for snapshots")));
        }
        if image.prefix == ImagePrefix::Base {
            return Err(StorageError::Invalid(format!("'{name}': base- images are made with 'template'")));
        }
        if image.prefix != prefix {
            return Err(StorageError::Invalid(format!(
                "image name '{name}' does not fit format {format}: {format} volumes are named {}-<vmid>-<name>",
                prefix.as_str()
            )));
        }
        if let Some(n) = image.disk_index() {
            if self.taken_indexes(vmid)?.contains(&n) {
                return Err(StorageError::Conflict(format!("disk-{n} of VMID {vmid} already exists")));
            }
        }
        if fs::symlink_metadata(self.subvolume(&image)).is_ok() {
            return Err(StorageError::Conflict(format!("volume '{name}' already exists")));
        }
        Ok(image)
    }

    fn check_format(&self, format: Format) -> Result<()> {
        if StorageType::Btrfs.formats().contains(&format) {
            Ok(())
        } else {
            Err(StorageError::Invalid(format!("btrfs storages cannot hold {format} volumes (allowed: raw, subvol)")))
        }
    }

    fn check_content(&self, format: Format) -> Result<()> {
        let needed = if format == Format::Subvol { Content::Rootdir } else { Content::Images };
        if !self.config.has_content(needed) && !self.config.has_content(Content::Rootdir) {
            return Err(StorageError::Invalid(format!(
                "storage '{}' does not hold content '{needed}' (it holds: {})",
                self.config.id,
                files::content_names(&self.config.content)
            )));
        }
        Ok(())
    }

    /// The base image a linked clone was made from, if `image` is one.
    fn base_of(&self, image: &ImageName) -> Option<ImageName> {
        let text = fs::read_to_string(self.sidecar(image)).ok()?;
        let base = ImageName::parse(text.trim(), false).ok()?;
        (base.prefix == ImagePrefix::Base && !base.name.contains('@')).then_some(base)
    }

    /// Records that `image` is a linked clone of `base` (replacing a stale record).
    fn write_sidecar(&self, image: &ImageName, base: &ImageName) -> Result<()> {
        let target = self.sidecar(image);
        let temp = files::TempPath::new(self.images_dir(image.vmid).join(temp_name(&format!("{image}.base"))));
        fs::write(temp.path(), format!("{base}\n")).map_err(|e| StorageError::io("writing", temp.path(), e))?;
        self.remove_sidecar(image)?;
        temp.persist(&target)
    }

    fn remove_sidecar(&self, image: &ImageName) -> Result<()> {
        let path = self.sidecar(image);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StorageError::io("removing", &path, e)),
            _ => Ok(()),
        }
    }

    fn volume_info(&self, image: ImageName) -> Option<VolumeInfo> {
        let format = Self::format_of(&image);
        let subvolume = self.subvolume(&image);
        let (size, used, meta) = match format {
            Format::Subvol => (0, None, fs::metadata(&subvolume).ok()?),
            _ => match fs::metadata(subvolume.join(DISK_FILE)) {
                Ok(m) => (m.len(), Some(m.blocks() * 512), m),
                // A disk subvolume without its file is broken; list it so it can be freed.
                Err(_) => (0, None, fs::metadata(&subvolume).ok()?),
            },
        };
        let content = if format == Format::Subvol { Content::Rootdir } else { Content::Images };
        let base = self.base_of(&image);
        let vmid = image.vmid;
        let volname = VolName::Image { image, base: base.clone() };
        Some(VolumeInfo {
            volid: self.volid(&volname),
            volname,
            content,
            format: format.to_string(),
            size,
            used,
            vmid: Some(vmid),
            parent: base.map(|b| self.volid(&VolName::Image { image: b, base: None })),
            ctime: files::mtime(&meta),
        })
    }

    fn list_images(&self, vmid: Option<Vmid>, out: &mut Vec<VolumeInfo>) -> Result<()> {
        let root = crate::images_root(&self.config);
        let dirs: Vec<(Vmid, PathBuf)> = match vmid {
            Some(v) => vec![(v, self.images_dir(v))],
            None => match fs::read_dir(&root) {
                Ok(entries) => entries
                    .flatten()
                    .filter_map(|e| {
                        let v: Vmid = e.file_name().to_str()?.parse().ok()?;
                        Some((v, e.path()))
                    })
                    .collect(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(StorageError::io("reading", &root, e)),
            },
        };
        for (owner, dir) in dirs {
            let Ok(entries) = fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                // Temporaries and sidecars start with '.', snapshots carry '@'.
                if name.starts_with('.') || name.contains('@') {
                    continue;
                }
                let Ok(image) = ImageName::parse(name, false) else { continue };
                if image.vmid != owner || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                out.extend(self.volume_info(image));
            }
        }
        Ok(())
    }

    /// Linked clones of the base image `base`, found by their sidecars.
    fn clones_of(&self, base: &ImageName) -> Result<Vec<VolumeId>> {
        let mut all = Vec::new();
        self.list_images(None, &mut all)?;
        Ok(all
            .into_iter()
            .filter(|v| matches!(&v.volname, VolName::Image { base: Some(b), .. } if b == base))
            .map(|v| v.volid)
            .collect())
    }

    /// The snapshots of `image` with their subvolumes, oldest first (by subvolume id, which
    /// grows with every subvolume the filesystem creates).
    fn snapshot_entries(&self, image: &ImageName) -> Result<Vec<(String, PathBuf)>> {
        let dir = self.images_dir(image.vmid);
        let prefix = format!("{image}@");
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StorageError::io("reading", &dir, e)),
        };
        let mut snaps = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(snap) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else { continue };
            if check_snapshot_name(snap).is_err() {
                continue;
            }
            let path = entry.path();
            let id = sys::subvolume_id(&path).unwrap_or(u64::MAX);
            snaps.push((id, snap.to_owned(), path));
        }
        snaps.sort();
        Ok(snaps.into_iter().map(|(_, snap, path)| (snap, path)).collect())
    }

    fn require_snapshot(&self, vol: &VolName, image: &ImageName, snap: &str) -> Result<PathBuf> {
        check_snapshot_name(snap)?;
        let path = self.snapshot_path(image, snap);
        if fs::symlink_metadata(&path).is_err() {
            return Err(StorageError::NotFound(format!("snapshot '{snap}' of '{}' does not exist", self.render(vol))));
        }
        Ok(path)
    }

    /// Images that may change: base images are read-only while clones may exist.
    fn writable_image<'a>(&self, vol: &'a VolName, what: &str) -> Result<(&'a ImageName, PathBuf)> {
        let (image, path) = self.existing_image(vol)?;
        if image.prefix == ImagePrefix::Base {
            return Err(StorageError::Unsupported(format!("'{}' is a read-only base image: {what}", self.render(vol))));
        }
        Ok((image, path))
    }

    /// The guest's image directory and the guard that removes it again if it stays empty.
    fn create_images_dir(&self, vmid: Vmid) -> Result<(PathBuf, files::GuestDir)> {
        let dir = self.images_dir(vmid);
        let guard = files::GuestDir::create(dir.clone())?;
        Ok((dir, guard))
    }

    /// Moves an image's snapshots, sidecar and subvolume to the name `to`, all or nothing.
    fn move_image(&self, from: &ImageName, to: &ImageName) -> Result<()> {
        let (dir, _guest_dir) = self.create_images_dir(to.vmid)?;
        // A sidecar without its volume is left from an interrupted free; it must not make the
        // moved volume a clone.
        self.remove_sidecar(to)?;
        // Read-only subvolumes cannot change directory (their `..` is read-only too), so the
        // snapshots are copied (O(1), oldest first to keep their order) and the old ones
        // deleted once the volume has moved.
        let old_snapshots = self.snapshot_entries(from)?;
        let mut staged = Vec::new();
        for (snap, path) in &old_snapshots {
            let temp = TempSubvolume::snapshot_of(path, dir.join(temp_name(&format!("{to}@{snap}"))), true)?;
            staged.push((temp, self.snapshot_path(to, snap)));
        }
        let mut moves: Vec<(PathBuf, PathBuf)> =
            staged.iter().map(|(temp, target)| (temp.path().to_owned(), target.clone())).collect();
        if fs::symlink_metadata(self.sidecar(from)).is_ok() {
            moves.push((self.sidecar(from), self.sidecar(to)));
        }
        moves.push((self.subvolume(from), self.subvolume(to)));
        rename_all(&moves)?;
        staged.into_iter().for_each(|(temp, _)| temp.disarm());
        for (_, path) in old_snapshots {
            if let Err(e) = sys::delete_subvolume(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot delete a moved volume's old snapshot");
            }
        }
        Ok(())
    }
}

/// Snapshot names on disk and in streams: a letter or digit, then letters, digits, `_` and
/// `-`, at most 64 characters, so `<image>@<snap>` stays one safe path component.
fn check_snapshot_name(snap: &str) -> Result<()> {
    let b = snap.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= MAX_SNAPSHOT_NAME
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err(StorageError::Invalid(format!(
            "invalid snapshot name '{}': expected 1 to {MAX_SNAPSHOT_NAME} letters, digits, '_' or '-', starting with a letter or digit",
            snap.escape_debug()
        )))
    }
}

/// Renames several paths as one step: after the first failure the renames already done are
/// undone, so callers see all or nothing.
fn rename_all(moves: &[(PathBuf, PathBuf)]) -> Result<()> {
    for (i, (from, to)) in moves.iter().enumerate() {
        if let Err(e) = files::rename_noreplace(from, to) {
            for (from, to) in moves[..i].iter().rev() {
                if let Err(undo) = files::rename_noreplace(to, from) {
                    tracing::error!(from = %to.display(), to = %from.display(), error = %undo, "cannot undo a rename");
                }
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Deletes a subvolume, or a directory with the subvolumes directly inside it.
fn remove_subvolumes(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return fs::remove_file(path);
    }
    if sys::is_subvolume(path)? {
        return sys::delete_subvolume(path);
    }
    for entry in fs::read_dir(path)? {
        let entry = entry?.path();
        if sys::is_subvolume(&entry)? {
            sys::delete_subvolume(&entry)?;
        }
    }
    fs::remove_dir_all(path)
}

/// A temporary subvolume, or a temporary directory of subvolumes, deleted when dropped
/// unless persisted: what a failed operation created does not outlive it.
#[derive(Debug)]
struct TempSubvolume {
    path: PathBuf,
    keep: bool,
}

impl TempSubvolume {
    /// An empty subvolume.
    fn create(path: PathBuf) -> Result<TempSubvolume> {
        sys::create_subvolume(&path).map_err(|e| StorageError::io("creating the subvolume", &path, e))?;
        Ok(TempSubvolume { path, keep: false })
    }

    /// A snapshot of the subvolume `source`.
    fn snapshot_of(source: &Path, path: PathBuf, readonly: bool) -> Result<TempSubvolume> {
        sys::snapshot(source, &path, readonly).map_err(|e| StorageError::io("snapshotting", source, e))?;
        Ok(TempSubvolume { path, keep: false })
    }

    /// A plain directory that will receive subvolumes.
    fn directory(path: PathBuf) -> Result<TempSubvolume> {
        fs::create_dir(&path).map_err(|e| StorageError::io("creating", &path, e))?;
        Ok(TempSubvolume { path, keep: false })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the subvolume to `target`, which must not exist yet.
    fn persist(self, target: &Path) -> Result<()> {
        files::rename_noreplace(&self.path, target)?;
        self.disarm();
        Ok(())
    }

    /// Keeps the subvolume: it was moved into place by other means.
    fn disarm(mut self) {
        self.keep = true;
    }
}

impl Drop for TempSubvolume {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if let Err(e) = remove_subvolumes(&self.path) {
            tracing::error!(path = %self.path.display(), error = %e, "cannot delete a temporary subvolume");
        }
    }
}

impl Backend for BtrfsBackend {
    fn config(&self) -> &StorageConfig {
        &self.config
    }

    fn activate(&self) -> Result<()> {
        files::check_active(&self.config)?;
        let path = Path::new(&self.config.path);
        let on_btrfs = sys::is_btrfs(path).map_err(|e| StorageError::io("checking the filesystem of", path, e))?;
        if !on_btrfs {
            return Err(StorageError::Unavailable(format!(
                "storage '{}' is not active: {} is not on a btrfs filesystem",
                self.config.id, self.config.path
            )));
        }
        // Only now, on the right filesystem, is anything created.
        files::create_content_dirs(&self.config)
    }

    fn space(&self) -> Result<Space> {
        files::space(Path::new(&self.config.path))
    }

    fn path(&self, vol: &VolName) -> Result<PathBuf> {
        match vol {
            VolName::Image { .. } => {
                let (image, _) = self.image(vol)?;
                Ok(self.volume_path(image))
            }
            VolName::File { content, file } => Ok(crate::content_path(&self.config, *content, file)),
        }
    }

    fn list(&self, content: Option<Content>, vmid: Option<Vmid>) -> Result<Vec<VolumeInfo>> {
        self.activate()?;
        crate::dir::list_volumes(&self.config, content, vmid, |out| self.list_images(vmid, out))
    }

    fn alloc(&self, new: &NewImage) -> Result<VolName> {
        self.check_format(new.format)?;
        self.check_content(new.format)?;
        self.activate()?;
        check_alloc_size(&self.config, new, &self.space()?)?;
        let image = self.new_image_name(new.vmid, new.name.as_deref(), new.format)?;
        let (dir, _guest_dir) = self.create_images_dir(new.vmid)?;
        let temp = TempSubvolume::create(dir.join(temp_name(&image.to_string())))?;
        if new.format == Format::Raw {
            if self.nocow() {
                // Set on the directory, the flag is inherited by the file created next;
                // btrfs ignores it on files that already hold data.
                sys::set_nocow(temp.path()).map_err(|e| StorageError::io("setting nocow on", temp.path(), e))?;
            }
            let disk = temp.path().join(DISK_FILE);
            let file = File::options()
                .write(true)
                .create_new(true)
                .open(&disk)
                .map_err(|e| StorageError::io("creating", &disk, e))?;
            file.set_len(new.size).map_err(|e| StorageError::io("sizing", &disk, e))?;
        }
        self.remove_sidecar(&image)?;
        temp.persist(&self.subvolume(&image))?;
        Ok(VolName::Image { image, base: None })
    }

    fn free(&self, vol: &VolName) -> Result<()> {
        if let VolName::File { content, file } = vol {
            return free_file(&self.config, *content, file);
        }
        let (image, path) = self.existing_image(vol)?;
        if image.prefix == ImagePrefix::Base {
            let clones = self.clones_of(image)?;
            if !clones.is_empty() {
                let list = clones.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
                return Err(StorageError::Conflict(format!(
                    "base volume '{}' is still used by linked clones: {list}",
                    self.render(vol)
                )));
            }
        }
        for (_, snap) in self.snapshot_entries(image)? {
            sys::delete_subvolume(&snap).map_err(|e| StorageError::io("deleting the snapshot", &snap, e))?;
        }
        sys::delete_subvolume(&path).map_err(|e| StorageError::io("deleting the subvolume", &path, e))?;
        // The sidecar goes last: a clone that survives a failed free keeps its base.
        self.remove_sidecar(image)?;
        // The guest's directory goes with its last volume.
        let _ = fs::remove_dir(self.images_dir(image.vmid));
        Ok(())
    }

    fn resize(&self, vol: &VolName, size: u64) -> Result<()> {
        let (image, _) = self.writable_image(vol, "it cannot be resized")?;
        if Self::format_of(image) == Format::Subvol {
            // Subvolumes have no size of their own (no quota groups).
            return Ok(());
        }
        let (_, current) = self.image_info(vol)?;
        if size < current {
            return Err(StorageError::Invalid(format!(
                "shrinking '{}' from {} to {} is not supported",
                self.render(vol),
                hearth_core::size::format_size(current),
                hearth_core::size::format_size(size)
            )));
        }
        let space = self.space()?;
        files::check_size(size - current, space.available, &self.config.id)
            .or_else(|e| if size == current { Ok(()) } else { Err(e) })?;
        let disk = self.volume_path(image);
        File::options()
            .write(true)
            .open(&disk)
            .and_then(|f| f.set_len(size))
            .map_err(|e| StorageError::io("resizing", &disk, e))
    }

    fn image_info(&self, vol: &VolName) -> Result<(Format, u64)> {
        let (image, _) = self.existing_image(vol)?;
        match Self::format_of(image) {
            Format::Subvol => Ok((Format::Subvol, 0)),
            format => {
                let disk = self.volume_path(image);
                let meta = fs::metadata(&disk).map_err(|e| StorageError::io("reading", &disk, e))?;
                Ok((format, meta.len()))
            }
        }
    }

    fn snapshot(&self, vol: &VolName, snap: &str) -> Result<()> {
        check_snapshot_name(snap)?;
        let (image, path) = self.writable_image(vol, "templates have no snapshots")?;
        let target = self.snapshot_path(image, snap);
        if fs::symlink_metadata(&target).is_ok() {
            return Err(StorageError::Conflict(format!("snapshot '{snap}' of '{}' already exists", self.render(vol))));
        }
        // The ioctl creates the snapshot under its final name atomically: no temporary needed.
        sys::snapshot(&path, &target, true).map_err(|e| StorageError::io("snapshotting", &path, e))
    }

    fn rollback(&self, vol: &VolName, snap: &str) -> Result<()> {
        let (image, path) = self.writable_image(vol, "templates have no snapshots")?;
        let snapshot = self.require_snapshot(vol, image, snap)?;
        let temp = TempSubvolume::snapshot_of(
            &snapshot,
            self.images_dir(image.vmid).join(temp_name(&image.to_string())),
            false,
        )?;
        // Swapping the names is atomic: the volume is always either the old state or the
        // snapshot's, never missing. The temporary then holds the old state, which the guard
        // deletes.
        nix::fcntl::renameat2(
            nix::fcntl::AT_FDCWD,
            temp.path(),
            nix::fcntl::AT_FDCWD,
            &path,
            nix::fcntl::RenameFlags::RENAME_EXCHANGE,
        )
        .map_err(|e| StorageError::io("swapping in the snapshot at", &path, e.into()))?;
        drop(temp);
        Ok(())
    }

    fn delete_snapshot(&self, vol: &VolName, snap: &str) -> Result<()> {
        let (image, _) = self.existing_image(vol)?;
        let snapshot = self.require_snapshot(vol, image, snap)?;
        sys::delete_subvolume(&snapshot).map_err(|e| StorageError::io("deleting the snapshot", &snapshot, e))
    }

    fn snapshots(&self, vol: &VolName) -> Result<Vec<String>> {
        let (image, _) = self.existing_image(vol)?;
        Ok(self.snapshot_entries(image)?.into_iter().map(|(snap, _)| snap).collect())
    }

    fn create_base(&self, vol: &VolName) -> Result<VolName> {
        let (image, path) = self.existing_image(vol)?;
        if image.prefix == ImagePrefix::Base {
            return Ok(VolName::Image { image: image.clone(), base: None });
        }
        if image.prefix == ImagePrefix::Subvol {
            return Err(StorageError::Unsupported(format!(
                "'{}': container subvolumes cannot become base images (flat btrfs names cannot tell a base subvolume from a base disk)",
                self.render(vol)
            )));
        }
        if !self.snapshot_entries(image)?.is_empty() {
            return Err(StorageError::Conflict(format!(
                "'{}' has snapshots; delete them before making it a base image",
                self.render(vol)
            )));
        }
        let base = image.with_prefix(ImagePrefix::Base);
        let target = self.subvolume(&base);
        self.remove_sidecar(&base)?;
        files::rename_noreplace(&path, &target)?;
        // Clones are snapshots of the base; it must not change under the template.
        if let Err(e) = sys::set_readonly(&target, true) {
            if let Err(undo) = files::rename_noreplace(&target, &path) {
                tracing::error!(path = %target.display(), error = %undo, "cannot undo the rename to a base image");
            }
            return Err(StorageError::io("making read-only", &target, e));
        }
        // A clone turned template carries all its data; its origin no longer matters.
        self.remove_sidecar(image)?;
        Ok(VolName::Image { image: base, base: None })
    }

    fn clone_linked(&self, base: &VolName, vmid: Vmid) -> Result<VolName> {
        let (base_image, base_path) = self.existing_image(base)?;
        if base_image.prefix != ImagePrefix::Base {
            return Err(StorageError::Invalid(format!(
                "'{}' is not a base image; linked clones need a template's disk (convert the guest to a template first)",
                self.render(base)
            )));
        }
        self.check_content(Format::Raw)?;
        let image = self.new_image_name(vmid, None, Format::Raw)?;
        let (dir, _guest_dir) = self.create_images_dir(vmid)?;
        let temp = TempSubvolume::snapshot_of(&base_path, dir.join(temp_name(&image.to_string())), false)?;
        self.write_sidecar(&image, base_image)?;
        if let Err(e) = temp.persist(&self.subvolume(&image)) {
            let _ = self.remove_sidecar(&image);
            return Err(e);
        }
        Ok(VolName::Image { image, base: Some(base_image.clone()) })
    }

    fn rename(&self, vol: &VolName, vmid: Vmid) -> Result<VolName> {
        let (image, _) = self.existing_image(vol)?;
        if image.prefix == ImagePrefix::Base {
            return Err(StorageError::Unsupported(format!("'{}': base images cannot be renamed", self.render(vol))));
        }
        let new = self.new_image_name(vmid, None, Self::format_of(image))?;
        self.move_image(image, &new)?;
        let _ = fs::remove_dir(self.images_dir(image.vmid));
        let base = self.base_of(&new);
        Ok(VolName::Image { image: new, base })
    }

    fn export_formats(&self, vol: &VolName) -> Result<Vec<StreamFormat>> {
        let (image, _) = self.existing_image(vol)?;
        let plain =
            if Self::format_of(image) == Format::Subvol { StreamFormat::TarSize } else { StreamFormat::RawSize };
        // Only the btrfs stream carries snapshots, so it leads when there are any; otherwise
        // the plain stream, which every storage type can import.
        Ok(if self.snapshot_entries(image)?.is_empty() {
            vec![plain, StreamFormat::Btrfs]
        } else {
            vec![StreamFormat::Btrfs, plain]
        })
    }

    fn export(&self, vol: &VolName, format: StreamFormat, out: &mut dyn Write) -> Result<()> {
        let allowed = self.export_formats(vol)?;
        if !allowed.contains(&format) {
            return Err(StorageError::Invalid(format!(
                "volume '{}' exports as {}, not {format}",
                self.render(vol),
                allowed.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        let (image, subvolume) = self.existing_image(vol)?;
        // A linked clone holds all its data, so it exports like any volume.
        match format {
            StreamFormat::TarSize => stream::export_tree(&subvolume, stream::tree_usage(&subvolume), out),
            StreamFormat::Btrfs => self.export_btrfs(image, &subvolume, out),
            _ => stream::export_file(&self.volume_path(image), out),
        }
    }

    fn import(&self, vol: &VolName, format: StreamFormat, input: &mut dyn Read) -> Result<()> {
        let (image, base) = self.image(vol)?;
        let volume_format = Self::format_of(image);
        if format != StreamFormat::Btrfs && format.volume_format() != Some(volume_format) {
            return Err(StorageError::Invalid(format!(
                "a {format} stream cannot become the {volume_format} volume '{}'",
                self.render(vol)
            )));
        }
        if image.prefix == ImagePrefix::Base {
            return Err(StorageError::Invalid("base images are made with 'template', not imported".into()));
        }
        if base.is_some() {
            return Err(StorageError::Invalid(format!(
                "'{}' names a linked clone; import it as '{image}' (the stream holds all its data)",
                self.render(vol)
            )));
        }
        self.check_content(volume_format)?;
        self.activate()?;
        let target = self.subvolume(image);
        if fs::symlink_metadata(&target).is_ok() {
            return Err(StorageError::Conflict(format!("volume '{}' already exists", self.render(vol))));
        }
        if !self.snapshot_entries(image)?.is_empty() {
            return Err(StorageError::Conflict(format!(
                "snapshots of '{}' are left from an earlier volume; delete them first",
                self.render(vol)
            )));
        }
        let limit = self.space()?.available;
        let (dir, _guest_dir) = self.create_images_dir(image.vmid)?;
        if format == StreamFormat::Btrfs {
            return self.import_btrfs(image, volume_format, input);
        }
        let temp = TempSubvolume::create(dir.join(temp_name(&image.to_string())))?;
        if format == StreamFormat::TarSize {
            stream::import_tree(input, temp.path())?;
        } else {
            if self.nocow() {
                sys::set_nocow(temp.path()).map_err(|e| StorageError::io("setting nocow on", temp.path(), e))?;
            }
            stream::import_file(input, &temp.path().join(DISK_FILE), limit)?;
        }
        self.remove_sidecar(image)?;
        temp.persist(&target)
    }
}

/// The `btrfs` stream (see the module documentation).
impl BtrfsBackend {
    fn export_btrfs(&self, image: &ImageName, subvolume: &Path, out: &mut dyn Write) -> Result<()> {
        let snapshots = self.snapshot_entries(image)?;
        // `btrfs send` needs a read-only source; a snapshot also pins the state being sent.
        let current = TempSubvolume::snapshot_of(
            subvolume,
            self.images_dir(image.vmid).join(temp_name(&image.to_string())),
            true,
        )?;
        let header = format!("{STREAM_MAGIC}{}\n", Self::format_of(image));
        out.write_all(header.as_bytes()).map_err(write_error)?;
        let mut parent: Option<&Path> = None;
        for (snap, path) in &snapshots {
            send_record(out, snap, parent, path)?;
            parent = Some(path);
        }
        send_record(out, "", parent, current.path())?;
        out.flush().map_err(write_error)
    }

    fn import_btrfs(&self, image: &ImageName, format: Format, input: &mut dyn Read) -> Result<()> {
        read_stream_header(input, format)?;
        let dir = self.images_dir(image.vmid);
        let work = TempSubvolume::directory(dir.join(temp_name(&image.to_string())))?;
        let mut snapshots: Vec<String> = Vec::new();
        let received_live = work.path().join(format!("{image}@.received"));
        loop {
            let name = read_record_name(input)?;
            if !name.is_empty() {
                check_snapshot_name(&name)?;
                if snapshots.contains(&name) {
                    return Err(StorageError::Invalid(format!("the stream holds snapshot '{name}' twice")));
                }
            }
            let arrived = receive_record(input, work.path())?;
            // The sender chose the subvolume's name; ours replaces it at once.
            let target =
                if name.is_empty() { received_live.clone() } else { work.path().join(format!("{image}@{name}")) };
            files::rename_noreplace(&arrived, &target)?;
            if name.is_empty() {
                break;
            }
            snapshots.push(name);
        }
        if format == Format::Raw {
            let disk = received_live.join(DISK_FILE);
            if !fs::symlink_metadata(&disk).is_ok_and(|m| m.is_file()) {
                return Err(StorageError::Invalid(format!(
                    "the stream's volume holds no regular file {DISK_FILE}, so it is not a VM disk"
                )));
            }
        }
        // Received subvolumes are read-only and cannot leave the work directory (a read-only
        // directory's `..` cannot change), so the volume is made of snapshots of them, staged
        // beside their final names: read-only ones for the snapshots, oldest first so their
        // order survives, and a writable one for the live volume.
        let mut staged = Vec::new();
        for (received, readonly, target) in snapshots
            .iter()
            .map(|snap| (work.path().join(format!("{image}@{snap}")), true, self.snapshot_path(image, snap)))
            .chain([(received_live, false, self.subvolume(image))])
        {
            let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let temp = TempSubvolume::snapshot_of(&received, dir.join(temp_name(&name)), readonly)?;
            staged.push((temp, target));
        }
        let moves: Vec<(PathBuf, PathBuf)> =
            staged.iter().map(|(temp, target)| (temp.path().to_owned(), target.clone())).collect();
        self.remove_sidecar(image)?;
        rename_all(&moves)?;
        staged.into_iter().for_each(|(temp, _)| temp.disarm());
        // `work` is empty now; dropping it removes the directory.
        Ok(())
    }
}

#[cfg(test)]
mod tests;
