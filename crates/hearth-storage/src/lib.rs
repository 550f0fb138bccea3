//! Hearth's storage backends. A [`Backend`] turns volume names into files, directories and
//! subvolumes under one storage's path and performs the volume operations guests need:
//! allocate, free, resize, snapshot, rollback, clone, rename, import and export.
//!
//! Backends: [`dir::DirBackend`] (any directory; images through qemu-img) and
//! [`btrfs::BtrfsBackend`] (subvolumes, so snapshots and clones are atomic and O(1)).
//!
//! **Architecture invariants:**
//! - every path a backend touches comes from a parsed [`VolName`], whose characters and
//!   components were checked, joined under the storage path; nothing a user typed is used as a
//!   path directly;
//! - a backend never creates its storage path: a missing or unmounted path makes the storage
//!   inactive, so nothing is ever written to the root filesystem by mistake;
//! - operations that create something build it under a temporary name and rename it into
//!   place, removing the temporary on failure: a failed alloc, import or clone leaves nothing;
//! - callers serialise operations per storage (hearthd holds a lock per storage id).

pub mod btrfs;
pub mod chunkstore;
pub mod dir;
mod error;
mod files;
pub mod qemu_img;
pub mod stream;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use hearth_core::Vmid;
use hearth_core::storage::{Content, Format, StorageConfig, StorageType, StreamFormat, VolName, VolumeId};

pub use error::StorageError;
pub use files::{is_mount_point, temp_name};

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Space on a storage, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Space {
    pub total: u64,
    pub used: u64,
    pub available: u64,
}

/// One volume as `storectl list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeInfo {
    pub volid: VolumeId,
    pub volname: VolName,
    pub content: Content,
    /// `raw`, `qcow2`, `subvol`, `iso`, `tzst`, `vma.zst`, ….
    pub format: String,
    /// Virtual size for images, file size for other content.
    pub size: u64,
    /// Bytes the volume occupies on disk, when known.
    pub used: Option<u64>,
    pub vmid: Option<Vmid>,
    /// The base volume of a linked clone.
    pub parent: Option<VolumeId>,
    /// Seconds since the epoch of the last change.
    pub ctime: i64,
}

/// What a new image is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewImage {
    pub vmid: Vmid,
    /// A name following the rules (`vm-100-disk-5.qcow2` on dir, `vm-100-disk-5` on btrfs); by
    /// default the lowest free `disk-N`.
    pub name: Option<String>,
    pub format: Format,
    /// Bytes; for subvolumes 0 means unlimited.
    pub size: u64,
}

/// A storage backend: one storage's volumes.
pub trait Backend: Send + Sync + std::fmt::Debug {
    fn config(&self) -> &StorageConfig;

    /// Checks that the storage can be used now (path present, mounted, right filesystem) and
    /// creates the content directories inside it.
    fn activate(&self) -> Result<()>;

    fn space(&self) -> Result<Space>;

    /// Parses a volume name of this storage.
    fn parse(&self, name: &str) -> Result<VolName> {
        VolName::parse(self.config().storage_type, name).map_err(StorageError::Invalid)
    }

    /// The file or directory holding a volume.
    fn path(&self, vol: &VolName) -> Result<PathBuf>;

    /// Every volume, optionally only of one content type or one guest, images first.
    fn list(&self, content: Option<Content>, vmid: Option<Vmid>) -> Result<Vec<VolumeInfo>>;

    /// Creates an image and answers with its name.
    fn alloc(&self, new: &NewImage) -> Result<VolName>;

    /// Destroys a volume and its snapshots. Base images with linked clones are refused.
    fn free(&self, vol: &VolName) -> Result<()>;

    /// Grows an image to `size` bytes.
    fn resize(&self, vol: &VolName, size: u64) -> Result<()>;

    /// The virtual size and format of an image.
    fn image_info(&self, vol: &VolName) -> Result<(Format, u64)>;

    fn snapshot(&self, vol: &VolName, snap: &str) -> Result<()>;
    fn rollback(&self, vol: &VolName, snap: &str) -> Result<()>;
    fn delete_snapshot(&self, vol: &VolName, snap: &str) -> Result<()>;
    fn snapshots(&self, vol: &VolName) -> Result<Vec<String>>;

    /// Turns a guest's image into a template's base image (`vm-` → `base-`), read-only.
    fn create_base(&self, vol: &VolName) -> Result<VolName>;

    /// A linked clone of a base image for guest `vmid`: a qcow2 overlay (dir) or a writable
    /// snapshot (btrfs). O(1) in the size of the base.
    fn clone_linked(&self, base: &VolName, vmid: Vmid) -> Result<VolName>;

    /// Moves a volume to guest `vmid`, taking its lowest free disk name.
    fn rename(&self, vol: &VolName, vmid: Vmid) -> Result<VolName>;

    /// Stream formats `export` can write for this volume, preferred first.
    fn export_formats(&self, vol: &VolName) -> Result<Vec<StreamFormat>>;

    /// Writes the volume (and, where the format carries them, its snapshots) to `out`.
    fn export(&self, vol: &VolName, format: StreamFormat, out: &mut dyn Write) -> Result<()>;

    /// Creates the volume `vol` from a stream. The name is taken as given; a volume of that
    /// name must not exist.
    fn import(&self, vol: &VolName, format: StreamFormat, input: &mut dyn Read) -> Result<()>;
}

/// The backend of a storage.
pub fn open(config: &StorageConfig) -> Box<dyn Backend> {
    match config.storage_type {
        StorageType::Dir => Box::new(dir::DirBackend::new(config.clone())),
        StorageType::Btrfs => Box::new(btrfs::BtrfsBackend::new(config.clone())),
        StorageType::Chunkstore => Box::new(chunkstore::ChunkstoreBackend::new(config.clone())),
    }
}

/// `<path>/images`: where every guest image of a storage lives.
pub(crate) fn images_root(config: &StorageConfig) -> PathBuf {
    Path::new(&config.path).join(Content::Images.subdir())
}

/// `<path>/images/<vmid>`: one guest's images.
pub(crate) fn guest_images_dir(config: &StorageConfig, vmid: Vmid) -> PathBuf {
    images_root(config).join(vmid.to_string())
}

/// Where a file of non-image content lives.
pub fn content_path(config: &StorageConfig, content: Content, file: &str) -> PathBuf {
    Path::new(&config.path).join(content.subdir()).join(file)
}

/// Stores a file of `content` (iso, vztmpl, snippets, import) read from `input`: written under
/// a temporary name, synced, then renamed; an existing file of that name is refused.
pub fn upload(backend: &dyn Backend, content: Content, file: &str, input: &mut dyn Read) -> Result<VolumeId> {
    let config = backend.config();
    if matches!(content, Content::Images | Content::Rootdir | Content::Backup) {
        return Err(StorageError::Invalid(format!(
            "content '{content}' cannot be uploaded (allowed: iso, vztmpl, snippets, import)"
        )));
    }
    if !config.has_content(content) {
        return Err(StorageError::Invalid(format!(
            "storage '{}' does not hold content '{content}' (it holds: {})",
            config.id,
            files::content_names(&config.content)
        )));
    }
    hearth_core::storage::check_file_name(content, file).map_err(StorageError::Invalid)?;
    backend.activate()?;
    let target = content_path(config, content, file);
    files::write_new_file(&target, input, backend.space()?.available)?;
    Ok(VolumeId::new(&config.id, &VolName::File { content, file: file.to_owned() }.render(config.storage_type)))
}

/// A full, independent copy of `source` as a new image of guest `vmid` on `target`, in
/// `format` (the target's default when `None`). Images are copied through `qemu-img convert`
/// (any format to any format, holes kept), raw to raw by copying data extents only with
/// copy_file_range (shared extents on btrfs); container directories with `cp -a`. A failed
/// copy frees the new volume.
pub fn clone_full(
    source: &dyn Backend,
    vol: &VolName,
    target: &dyn Backend,
    vmid: Vmid,
    format: Option<Format>,
) -> Result<VolName> {
    clone_full_limited(source, vol, target, vmid, format, None)
}

/// [`clone_full`], copying images at most `kib_per_sec` KiB/s (through qemu-img, raw to raw
/// too). Container directories are copied unthrottled.
pub fn clone_full_limited(
    source: &dyn Backend,
    vol: &VolName,
    target: &dyn Backend,
    vmid: Vmid,
    format: Option<Format>,
    kib_per_sec: Option<u64>,
) -> Result<VolName> {
    let limit = kib_per_sec.filter(|&k| k > 0);
    let (src_format, size) = source.image_info(vol)?;
    let src_path = source.path(vol)?;
    let format = match (src_format, format) {
        (_, Some(f)) => f,
        (Format::Subvol, None) => Format::Subvol,
        (_, None) => target.config().default_image_format(),
    };
    if (src_format == Format::Subvol) != (format == Format::Subvol) {
        return Err(StorageError::Invalid(format!(
            "cannot clone a {src_format} volume into {format}: container directories and disk images do not convert"
        )));
    }
    if !target.config().storage_type.formats().contains(&format) {
        return Err(StorageError::Invalid(format!(
            "storage '{}' ({}) cannot hold {format} volumes",
            target.config().id,
            target.config().storage_type
        )));
    }
    let new = target.alloc(&NewImage { vmid, name: None, format, size })?;
    let copied = (|| {
        let dst_path = target.path(&new)?;
        match format {
            Format::Subvol => files::copy_tree(&src_path, &dst_path),
            Format::Raw if src_format == Format::Raw && limit.is_none() => files::copy_raw(&src_path, &dst_path),
            _ => qemu_img::convert_limited(&src_path, src_format, &dst_path, format, limit),
        }
    })();
    match copied {
        Ok(()) => Ok(new),
        Err(e) => {
            if let Err(cleanup) = target.free(&new) {
                tracing::error!(volume = %new.render(target.config().storage_type), error = %cleanup, "cannot remove the failed clone");
            }
            Err(e)
        }
    }
}
