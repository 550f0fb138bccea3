//! The `dir` backend: any directory, in Proxmox's layout — `images/<vmid>/` for guest images
//! (raw, qcow2, vmdk files and `subvol-*.subvol` container directories), `template/iso/`,
//! `template/cache/`, `dump/`, `snippets/`, `import/`.
//!
//! Snapshots are qcow2 internal snapshots; linked clones are qcow2 overlays whose backing file
//! is the relative path `../<basevmid>/<base image>`, so the storage can move as a whole.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hearth_core::Vmid;
use hearth_core::storage::{
    Content, Format, ImageName, ImagePrefix, StorageConfig, StorageType, StreamFormat, VolName, VolumeId,
    lowest_free_disk,
};

use crate::files::{self, TempPath, temp_name};
use crate::qemu_img::{self, SnapshotOp};
use crate::{Backend, NewImage, Result, Space, StorageError, VolumeInfo, stream};

#[derive(Debug)]
pub struct DirBackend {
    config: StorageConfig,
}

impl DirBackend {
    pub fn new(config: StorageConfig) -> DirBackend {
        DirBackend { config }
    }

    fn images_dir(&self, vmid: Vmid) -> PathBuf {
        crate::guest_images_dir(&self.config, vmid)
    }

    fn image_path(&self, image: &ImageName) -> PathBuf {
        self.images_dir(image.vmid).join(image.to_string())
    }

    fn image<'a>(&self, vol: &'a VolName) -> Result<(&'a ImageName, Option<&'a ImageName>)> {
        match vol {
            VolName::Image { image, base } => Ok((image, base.as_ref())),
            VolName::File { content, file } => {
                Err(StorageError::Invalid(format!("'{content}/{file}' is not a disk image")))
            }
        }
    }

    fn existing_image<'a>(&self, vol: &'a VolName) -> Result<(&'a ImageName, PathBuf)> {
        let (image, _) = self.image(vol)?;
        let path = self.image_path(image);
        if fs::symlink_metadata(&path).is_err() {
            return Err(StorageError::NotFound(format!(
                "volume '{}' does not exist",
                VolumeId::new(&self.config.id, &vol.render(StorageType::Dir))
            )));
        }
        Ok((image, path))
    }

    fn format_of(image: &ImageName) -> Format {
        image.format.unwrap_or(Format::Raw)
    }

    /// Disk indexes taken by any image of `vmid`, whatever its prefix or format.
    fn taken_indexes(&self, vmid: Vmid) -> Result<Vec<u32>> {
        let dir = self.images_dir(vmid);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StorageError::io("reading", &dir, e)),
        };
        let mut taken = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Ok(image) = ImageName::parse(name, true) {
                taken.extend(image.disk_index());
            }
        }
        Ok(taken)
    }

    /// The image a new volume of `vmid` gets: the requested name, checked, or the lowest
    /// free `disk-N`.
    fn new_image_name(&self, vmid: Vmid, requested: Option<&str>, format: Format) -> Result<ImageName> {
        let prefix = if format == Format::Subvol { ImagePrefix::Subvol } else { ImagePrefix::Vm };
        match requested {
            Some(name) => {
                let image = ImageName::parse(name, true).map_err(StorageError::Invalid)?;
                if image.vmid != vmid {
                    return Err(StorageError::Invalid(format!("image name '{name}' does not belong to VMID {vmid}")));
                }
                if image.format != Some(format) {
                    return Err(StorageError::Invalid(format!(
                        "image name '{name}' does not end in .{format}, the requested format"
                    )));
                }
                if image.prefix == ImagePrefix::Base {
                    return Err(StorageError::Invalid(format!("'{name}': base- images are made with 'template'")));
                }
                if let Some(n) = image.disk_index() {
                    if self.taken_indexes(vmid)?.contains(&n) {
                        return Err(StorageError::Conflict(format!("disk-{n} of VMID {vmid} already exists")));
                    }
                }
                Ok(image)
            }
            None => {
                let n = lowest_free_disk(self.taken_indexes(vmid)?).ok_or_else(|| {
                    StorageError::Conflict(format!(
                        "VMID {vmid} already has 1024 disks on storage '{}'",
                        self.config.id
                    ))
                })?;
                Ok(ImageName::disk(prefix, vmid, n, Some(format)))
            }
        }
    }

    fn check_format(&self, format: Format) -> Result<()> {
        if StorageType::Dir.formats().contains(&format) {
            Ok(())
        } else {
            Err(StorageError::Invalid(format!("dir storages cannot hold {format} volumes")))
        }
    }

    fn volume_info(&self, image: ImageName, path: &Path, meta: &fs::Metadata) -> VolumeInfo {
        let format = Self::format_of(&image);
        let mut size = meta.len();
        let mut base = None;
        match format {
            Format::Qcow2 => {
                let header = header_cache::get(path, meta, || {
                    let header = qemu_img::read_qcow2_header(&File::open(path)?)?;
                    Ok(header.map(|h| (h.virtual_size, h.backing_file.as_deref().and_then(parse_backing))))
                });
                if let Some((virtual_size, backing)) = header {
                    size = virtual_size;
                    base = backing;
                }
            }
            Format::Vmdk => {
                let header = header_cache::get(path, meta, || {
                    Ok(qemu_img::read_vmdk_capacity(&mut File::open(path)?)?.map(|capacity| (capacity, None)))
                });
                if let Some((capacity, _)) = header {
                    size = capacity;
                }
            }
            Format::Subvol => size = 0,
            Format::Raw => {}
        }
        let content = if format == Format::Subvol { Content::Rootdir } else { Content::Images };
        let vmid = image.vmid;
        let volname = VolName::Image { image, base: base.clone() };
        VolumeInfo {
            volid: VolumeId::new(&self.config.id, &volname.render(StorageType::Dir)),
            volname,
            content,
            format: format.to_string(),
            size,
            used: (format != Format::Subvol).then(|| meta.blocks() * 512),
            vmid: Some(vmid),
            parent: base.map(|b| {
                VolumeId::new(&self.config.id, &VolName::Image { image: b, base: None }.render(StorageType::Dir))
            }),
            ctime: files::mtime(meta),
        }
    }

    fn list_images(&self, vmid: Option<Vmid>, out: &mut Vec<VolumeInfo>) -> Result<()> {
        let root = crate::images_root(&self.config);
        let dirs: Vec<(Vmid, PathBuf)> = match vmid {
            Some(v) => vec![(v, self.images_dir(v))],
            None => match listing_cache::dirs(&self.config.id, &root) {
                Ok(dirs) => dirs,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(StorageError::io("reading", &root, e)),
            },
        };
        for (owner, dir) in dirs {
            if let Some(known) = listing_cache::volumes(&self.config.id, &dir, || self.read_images(owner, &dir)) {
                out.extend(known);
            }
        }
        Ok(())
    }

    /// The images in one guest's directory, by a directory read and a stat per file.
    fn read_images(&self, owner: Vmid, dir: &Path) -> Option<Vec<VolumeInfo>> {
        let entries = fs::read_dir(dir).ok()?;
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Ok(image) = ImageName::parse(name, true) else { continue };
            if image.vmid != owner {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            found.push(self.volume_info(image, &entry.path(), &meta));
        }
        Some(found)
    }

    /// Linked clones of the base image `base`, found by their qcow2 backing files.
    fn clones_of(&self, base: &ImageName) -> Result<Vec<VolumeId>> {
        let mut all = Vec::new();
        self.list_images(None, &mut all)?;
        Ok(all
            .into_iter()
            .filter(|v| matches!(&v.volname, VolName::Image { base: Some(b), .. } if b == base))
            .map(|v| v.volid)
            .collect())
    }

    fn snapshot_capable(&self, vol: &VolName) -> Result<PathBuf> {
        let (image, path) = self.existing_image(vol)?;
        if Self::format_of(image) != Format::Qcow2 {
            return Err(StorageError::Unsupported(format!(
                "snapshots on dir storage need qcow2 images; '{}' is {}",
                vol.render(StorageType::Dir),
                Self::format_of(image)
            )));
        }
        Ok(path)
    }

    fn render(&self, vol: &VolName) -> String {
        vol.render(StorageType::Dir)
    }
}

/// `../100/base-100-disk-0.qcow2` → the base image.
fn parse_backing(backing: &str) -> Option<ImageName> {
    let rest = backing.strip_prefix("../")?;
    let (dir, file) = rest.split_once('/')?;
    let image = ImageName::parse(file, true).ok()?;
    (dir == image.vmid.to_string() && image.prefix == ImagePrefix::Base).then_some(image)
}

/// Lists iso, vztmpl, backup, snippets and import files of a storage with file-style layout.
pub(crate) fn list_file_content(
    config: &StorageConfig,
    content: Option<Content>,
    vmid: Option<Vmid>,
    out: &mut Vec<VolumeInfo>,
) -> Result<()> {
    for kind in [Content::Iso, Content::Vztmpl, Content::Backup, Content::Snippets, Content::Import] {
        if content.is_some_and(|c| c != kind) || !config.has_content(kind) {
            continue;
        }
        let dir = Path::new(&config.path).join(kind.subdir());
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') || hearth_core::storage::check_file_name(kind, name).is_err() {
                continue;
            }
            // The task log, notes and protection marker beside an archive are not volumes.
            if kind == Content::Backup && !hearth_core::storage::is_backup_archive(name) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let volname = VolName::File { content: kind, file: name.to_owned() };
            let owner = volname.owner();
            if vmid.is_some() && owner != vmid {
                continue;
            }
            out.push(VolumeInfo {
                volid: VolumeId::new(&config.id, &volname.render(config.storage_type)),
                volname,
                content: kind,
                format: file_format(kind, name),
                size: meta.len(),
                used: Some(meta.blocks() * 512),
                vmid: owner,
                parent: None,
                ctime: files::mtime(&meta),
            });
        }
    }
    Ok(())
}

/// The format column of non-image content, as pvesm prints it.
fn file_format(content: Content, name: &str) -> String {
    let ext = |pairs: &[(&str, &str)]| pairs.iter().find(|(e, _)| name.ends_with(e)).map(|(_, f)| (*f).to_owned());
    match content {
        Content::Iso => "iso".into(),
        Content::Vztmpl => ext(&[
            (".tar.zst", "tzst"),
            (".tar.xz", "txz"),
            (".tar.gz", "tgz"),
            (".tgz", "tgz"),
            (".tar.bz2", "tbz2"),
            (".tar", "tar"),
        ])
        .unwrap_or_default(),
        Content::Backup => ext(&[
            (".vma.zst", "vma.zst"),
            (".vma", "vma"),
            (".tar.zst", "tar.zst"),
            (".tar.gz", "tgz"),
            (".tar", "tar"),
        ])
        .unwrap_or_else(|| "backup".into()),
        Content::Snippets => "snippet".into(),
        _ => name.rsplit_once('.').map(|(_, e)| e.to_owned()).unwrap_or_default(),
    }
}

/// A listing of a file-layout storage: its images (from `list_images`) when the filter allows
/// them, then its other content, sorted as pvesm sorts.
pub(crate) fn list_volumes(
    config: &StorageConfig,
    content: Option<Content>,
    vmid: Option<Vmid>,
    list_images: impl FnOnce(&mut Vec<VolumeInfo>) -> Result<()>,
) -> Result<Vec<VolumeInfo>> {
    let mut out = Vec::new();
    let wants_images = content.is_none_or(|c| matches!(c, Content::Images | Content::Rootdir));
    if wants_images && (config.has_content(Content::Images) || config.has_content(Content::Rootdir)) {
        list_images(&mut out)?;
        if let Some(c) = content {
            // Raw images serve VMs and containers alike.
            out.retain(|v| v.content == c || (c == Content::Rootdir && v.format == "raw"));
        }
    }
    list_file_content(config, content, vmid, &mut out)?;
    sort_listing(&mut out);
    Ok(out)
}

/// Sorts a listing as pvesm does: volumes with a VMID first (by VMID, then name), then the rest
/// by format and name.
pub(crate) fn sort_listing(list: &mut [VolumeInfo]) {
    list.sort_by(|a, b| {
        (a.vmid.is_none(), a.vmid, a.format.as_str(), &a.volid).cmp(&(
            b.vmid.is_none(),
            b.vmid,
            b.format.as_str(),
            &b.volid,
        ))
    });
}

/// Removes a file of non-image content; protected backups are refused.
pub(crate) fn free_file(config: &StorageConfig, content: Content, file: &str) -> Result<()> {
    let path = crate::content_path(config, content, file);
    let protected = path.with_file_name(format!("{file}.protected"));
    if content == Content::Backup && protected.exists() {
        return Err(StorageError::Conflict(format!("backup '{file}' is protected; remove the protection first")));
    }
    fs::remove_file(&path).map_err(|e| StorageError::io("removing", &path, e))
}

/// Refuses to give a new image more than the storage holds.
pub(crate) fn check_alloc_size(config: &StorageConfig, new: &NewImage, space: &Space) -> Result<()> {
    if new.format == Format::Subvol && new.size == 0 {
        return Ok(());
    }
    files::check_size(new.size, space.available, &config.id)
}

impl Backend for DirBackend {
    fn config(&self) -> &StorageConfig {
        &self.config
    }

    fn activate(&self) -> Result<()> {
        files::activate(&self.config)
    }

    fn space(&self) -> Result<Space> {
        files::space(Path::new(&self.config.path))
    }

    fn path(&self, vol: &VolName) -> Result<PathBuf> {
        Ok(match vol {
            VolName::Image { image, .. } => self.image_path(image),
            VolName::File { content, file } => crate::content_path(&self.config, *content, file),
        })
    }

    fn list(&self, content: Option<Content>, vmid: Option<Vmid>) -> Result<Vec<VolumeInfo>> {
        self.activate()?;
        list_volumes(&self.config, content, vmid, |out| self.list_images(vmid, out))
    }

    fn alloc(&self, new: &NewImage) -> Result<VolName> {
        let _changing = listing_cache::Changing;
        self.check_format(new.format)?;
        let needed = if new.format == Format::Subvol { Content::Rootdir } else { Content::Images };
        if !self.config.has_content(needed) && !self.config.has_content(Content::Rootdir) {
            return Err(StorageError::Invalid(format!(
                "storage '{}' does not hold content '{needed}' (it holds: {})",
                self.config.id,
                files::content_names(&self.config.content)
            )));
        }
        self.activate()?;
        check_alloc_size(&self.config, new, &self.space()?)?;
        let image = self.new_image_name(new.vmid, new.name.as_deref(), new.format)?;
        let dir = self.images_dir(new.vmid);
        let _guest_dir = files::GuestDir::create(dir.clone())?;
        let target = self.image_path(&image);
        let temp = TempPath::new(dir.join(temp_name(&image.to_string())));
        match new.format {
            Format::Subvol => stream::make_dir(temp.path())?,
            Format::Raw => {
                let file = File::options()
                    .write(true)
                    .create_new(true)
                    .open(temp.path())
                    .map_err(|e| StorageError::io("creating", temp.path(), e))?;
                file.set_len(new.size).map_err(|e| StorageError::io("sizing", temp.path(), e))?;
            }
            Format::Qcow2 | Format::Vmdk => qemu_img::create(temp.path(), new.format, new.size, None)?,
        }
        temp.persist(&target)?;
        Ok(VolName::Image { image, base: None })
    }

    fn free(&self, vol: &VolName) -> Result<()> {
        let _changing = listing_cache::Changing;
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
        let removed =
            if Self::format_of(image) == Format::Subvol { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
        removed.map_err(|e| StorageError::io("removing", &path, e))?;
        // The guest's directory goes with its last volume.
        let _ = fs::remove_dir(self.images_dir(image.vmid));
        Ok(())
    }

    fn resize(&self, vol: &VolName, size: u64) -> Result<()> {
        let _changing = listing_cache::Changing;
        let (image, path) = self.existing_image(vol)?;
        let format = Self::format_of(image);
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
        match format {
            Format::Subvol => Ok(()),
            Format::Raw => File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(size))
                .map_err(|e| StorageError::io("resizing", &path, e)),
            Format::Qcow2 | Format::Vmdk => qemu_img::resize(&path, format, size),
        }
    }

    fn image_info(&self, vol: &VolName) -> Result<(Format, u64)> {
        let (image, path) = self.existing_image(vol)?;
        let format = Self::format_of(image);
        let meta = fs::metadata(&path).map_err(|e| StorageError::io("reading", &path, e))?;
        let info = self.volume_info(image.clone(), &path, &meta);
        Ok((format, info.size))
    }

    fn snapshot(&self, vol: &VolName, snap: &str) -> Result<()> {
        let _changing = listing_cache::Changing;
        let path = self.snapshot_capable(vol)?;
        if self.snapshots(vol)?.iter().any(|s| s == snap) {
            return Err(StorageError::Conflict(format!("snapshot '{snap}' of '{}' already exists", self.render(vol))));
        }
        qemu_img::snapshot(&path, SnapshotOp::Create, snap)
    }

    fn rollback(&self, vol: &VolName, snap: &str) -> Result<()> {
        let _changing = listing_cache::Changing;
        let path = self.snapshot_capable(vol)?;
        self.require_snapshot(vol, snap)?;
        qemu_img::snapshot(&path, SnapshotOp::Apply, snap)
    }

    fn delete_snapshot(&self, vol: &VolName, snap: &str) -> Result<()> {
        let _changing = listing_cache::Changing;
        let path = self.snapshot_capable(vol)?;
        self.require_snapshot(vol, snap)?;
        qemu_img::snapshot(&path, SnapshotOp::Delete, snap)
    }

    fn snapshots(&self, vol: &VolName) -> Result<Vec<String>> {
        let (image, path) = self.existing_image(vol)?;
        if Self::format_of(image) != Format::Qcow2 {
            return Ok(Vec::new());
        }
        Ok(qemu_img::info(&path, Format::Qcow2)?.snapshots.into_iter().map(|s| s.name).collect())
    }

    fn create_base(&self, vol: &VolName) -> Result<VolName> {
        let _changing = listing_cache::Changing;
        let (image, path) = self.existing_image(vol)?;
        if image.prefix == ImagePrefix::Base {
            return Ok(vol.clone());
        }
        if image.prefix == ImagePrefix::Subvol {
            return Err(StorageError::Unsupported(format!(
                "'{}': container directories on dir storage cannot become base images",
                self.render(vol)
            )));
        }
        let base = image.with_prefix(ImagePrefix::Base);
        let target = self.image_path(&base);
        files::rename_noreplace(&path, &target)?;
        // Clones read the base through their overlays; nothing may write it any more.
        fs::set_permissions(&target, fs::Permissions::from_mode(0o444))
            .map_err(|e| StorageError::io("protecting", &target, e))?;
        Ok(VolName::Image { image: base, base: None })
    }

    fn clone_linked(&self, base: &VolName, vmid: Vmid) -> Result<VolName> {
        let _changing = listing_cache::Changing;
        let (base_image, _) = self.existing_image(base)?;
        if base_image.prefix != ImagePrefix::Base || Self::format_of(base_image) != Format::Qcow2 {
            return Err(StorageError::Invalid(format!(
                "'{}' is not a qcow2 base image; linked clones on dir storage need a template's qcow2 disk (convert the guest to a template first)",
                self.render(base)
            )));
        }
        if !self.config.has_content(Content::Images) {
            return Err(StorageError::Invalid(format!("storage '{}' does not hold content 'images'", self.config.id)));
        }
        let image = self.new_image_name(vmid, None, Format::Qcow2)?;
        let dir = self.images_dir(vmid);
        let _guest_dir = files::GuestDir::create(dir.clone())?;
        let temp = TempPath::new(dir.join(temp_name(&image.to_string())));
        let backing = format!("../{}/{base_image}", base_image.vmid);
        qemu_img::create(temp.path(), Format::Qcow2, 0, Some((&backing, Format::Qcow2)))?;
        temp.persist(&self.image_path(&image))?;
        Ok(VolName::Image { image, base: Some(base_image.clone()) })
    }

    fn rename(&self, vol: &VolName, vmid: Vmid) -> Result<VolName> {
        let _changing = listing_cache::Changing;
        let (image, path) = self.existing_image(vol)?;
        if image.prefix == ImagePrefix::Base {
            return Err(StorageError::Unsupported(format!("'{}': base images cannot be renamed", self.render(vol))));
        }
        let format = Self::format_of(image);
        let new = self.new_image_name(vmid, None, format)?;
        let dir = self.images_dir(vmid);
        let _guest_dir = files::GuestDir::create(dir.clone())?;
        files::rename_noreplace(&path, &self.image_path(&new))?;
        let _ = fs::remove_dir(self.images_dir(image.vmid));
        let base = match vol {
            VolName::Image { base, .. } => base.clone(),
            VolName::File { .. } => None,
        };
        Ok(VolName::Image { image: new, base })
    }

    fn export_formats(&self, vol: &VolName) -> Result<Vec<StreamFormat>> {
        let (image, _) = self.existing_image(vol)?;
        Ok(match Self::format_of(image) {
            Format::Raw => vec![StreamFormat::RawSize],
            Format::Qcow2 => vec![StreamFormat::Qcow2Size],
            Format::Vmdk => vec![StreamFormat::VmdkSize],
            Format::Subvol => vec![StreamFormat::TarSize],
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
        let path = self.path(vol)?;
        if format == StreamFormat::TarSize {
            return stream::export_tree(&path, stream::tree_usage(&path), out);
        }
        if matches!(vol, VolName::Image { base: Some(_), .. }) {
            return Err(StorageError::Unsupported(format!(
                "'{}' is a linked clone; export its base first or make a full clone",
                self.render(vol)
            )));
        }
        stream::export_file(&path, out)
    }

    fn import(&self, vol: &VolName, format: StreamFormat, input: &mut dyn Read) -> Result<()> {
        let _changing = listing_cache::Changing;
        let (image, base) = self.image(vol)?;
        let volume_format = Self::format_of(image);
        if format.volume_format() != Some(volume_format) {
            return Err(StorageError::Invalid(format!(
                "a {format} stream cannot become the {volume_format} volume '{}'",
                self.render(vol)
            )));
        }
        if image.prefix == ImagePrefix::Base {
            return Err(StorageError::Invalid("base images are made with 'template', not imported".into()));
        }
        let target = self.image_path(image);
        if fs::symlink_metadata(&target).is_ok() {
            return Err(StorageError::Conflict(format!("volume '{}' already exists", self.render(vol))));
        }
        self.activate()?;
        let limit = self.space()?.available;
        let dir = self.images_dir(image.vmid);
        let _guest_dir = files::GuestDir::create(dir.clone())?;
        let temp = TempPath::new(dir.join(temp_name(&image.to_string())));
        if format == StreamFormat::TarSize {
            stream::make_dir(temp.path())?;
            stream::import_tree(input, temp.path())?;
        } else {
            stream::import_file(input, temp.path(), limit)?;
            if volume_format != Format::Raw {
                let images_root = crate::images_root(&self.config);
                let info = qemu_img::check_foreign_image(temp.path(), volume_format, &images_root)?;
                let declared = base.map(|b| format!("../{}/{b}", b.vmid));
                if info.backing_filename != declared {
                    return Err(StorageError::Invalid(format!(
                        "the image's backing file ({}) does not match the volume name (expected {})",
                        info.backing_filename.as_deref().unwrap_or("none"),
                        declared.as_deref().unwrap_or("none")
                    )));
                }
            }
        }
        temp.persist(&target)
    }
}

impl DirBackend {
    fn require_snapshot(&self, vol: &VolName, snap: &str) -> Result<()> {
        if self.snapshots(vol)?.iter().any(|s| s == snap) {
            Ok(())
        } else {
            Err(StorageError::NotFound(format!("snapshot '{snap}' of '{}' does not exist", self.render(vol))))
        }
    }
}

#[cfg(test)]
mod tests {
    use hearth_core::storage::StorageTable;

    use super::*;

    fn backend(dir: &Path) -> DirBackend {
        let table = StorageTable::fresh(dir.to_str().unwrap());
        DirBackend::new(table.get("local").unwrap())
    }

    fn vmid(n: u32) -> Vmid {
        n.to_string().parse().unwrap()
    }

    #[test]
    fn alloc_takes_the_lowest_free_disk_and_free_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let b = backend(dir.path());
        let new = |format| NewImage { vmid: vmid(100), name: None, format, size: 1 << 20 };
        let a = b.alloc(&new(Format::Raw)).unwrap();
        assert_eq!(a.render(StorageType::Dir), "100/vm-100-disk-0.raw");
        let q = b.alloc(&new(Format::Qcow2)).unwrap();
        assert_eq!(q.render(StorageType::Dir), "100/vm-100-disk-1.qcow2");
        b.free(&a).unwrap();
        let s = b.alloc(&new(Format::Subvol)).unwrap();
        assert_eq!(s.render(StorageType::Dir), "100/subvol-100-disk-0.subvol");
        let listed: Vec<_> = b.list(None, None).unwrap().into_iter().map(|v| (v.volid.to_string(), v.size)).collect();
        assert_eq!(
            listed,
            vec![("local:100/vm-100-disk-1.qcow2".into(), 1 << 20), ("local:100/subvol-100-disk-0.subvol".into(), 0)]
        );
        let e = b.alloc(&NewImage { size: 0, ..new(Format::Raw) }).unwrap_err();
        assert!(e.to_string().contains("greater than zero"), "{e}");
        let e = b.alloc(&NewImage { size: u64::MAX / 2, ..new(Format::Raw) }).unwrap_err();
        assert!(e.to_string().contains("exceeds"), "{e}");
        let names: Vec<_> =
            fs::read_dir(dir.path().join("images/100")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "no temporaries left: {names:?}");
    }

    #[test]
    fn remembered_listings_follow_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let b = backend(dir.path());
        // By volume id (a listing sorts by format first).
        let listed = |b: &DirBackend| -> Vec<(String, u64)> {
            let mut v: Vec<_> =
                b.list(None, None).unwrap().into_iter().map(|v| (v.volid.to_string(), v.size)).collect();
            v.sort();
            v
        };
        let new = |id, format| NewImage { vmid: vmid(id), name: None, format, size: 1 << 20 };
        let raw = b.alloc(&new(200, Format::Raw)).unwrap();
        let qcow2 = b.alloc(&new(200, Format::Qcow2)).unwrap();
        let mut expected = vec![
            ("local:200/vm-200-disk-0.raw".to_owned(), 1 << 20),
            ("local:200/vm-200-disk-1.qcow2".to_owned(), 1 << 20),
        ];
        assert_eq!(listed(&b), expected);
        assert_eq!(listed(&b), expected, "the remembered listing is the same");
        // Resized through the backend: the directory does not change, the listing does.
        b.resize(&qcow2, 2 << 20).unwrap();
        expected[1].1 = 2 << 20;
        assert_eq!(listed(&b), expected);
        // A file put in by another program, and one removed by it: the directory changed.
        fs::write(dir.path().join("images/200/vm-200-disk-2.raw"), [0u8; 512]).unwrap();
        expected.push(("local:200/vm-200-disk-2.raw".to_owned(), 512));
        assert_eq!(listed(&b), expected);
        fs::remove_file(b.path(&raw).unwrap()).unwrap();
        expected.remove(0);
        assert_eq!(listed(&b), expected);
        // A new guest directory appears in the storage's listing at once.
        b.alloc(&new(201, Format::Raw)).unwrap();
        fs::create_dir(dir.path().join("images/202")).unwrap();
        fs::write(dir.path().join("images/202/vm-202-disk-0.raw"), [0u8; 1024]).unwrap();
        expected.push(("local:201/vm-201-disk-0.raw".to_owned(), 1 << 20));
        expected.push(("local:202/vm-202-disk-0.raw".to_owned(), 1024));
        assert_eq!(listed(&b), expected);
        // Another storage on the same path lists its own volume ids.
        let mut table = StorageTable::default();
        let path = dir.path().to_str().unwrap();
        table
            .add("other", StorageType::Dir, &[("path".into(), path.into()), ("content".into(), "images".into())])
            .unwrap();
        let other = DirBackend::new(table.get("other").unwrap());
        assert!(listed(&other).iter().all(|(volid, _)| volid.starts_with("other:")));
    }

    #[test]
    fn linked_clones_share_their_base() {
        let dir = tempfile::tempdir().unwrap();
        let b = backend(dir.path());
        let disk = b.alloc(&NewImage { vmid: vmid(100), name: None, format: Format::Qcow2, size: 1 << 30 }).unwrap();
        let e = b.clone_linked(&disk, vmid(101)).unwrap_err();
        assert!(e.to_string().contains("not a qcow2 base image"), "{e}");
        let base = b.create_base(&disk).unwrap();
        assert_eq!(base.render(StorageType::Dir), "100/base-100-disk-0.qcow2");
        let clone = b.clone_linked(&base, vmid(101)).unwrap();
        assert_eq!(clone.render(StorageType::Dir), "100/base-100-disk-0.qcow2/101/vm-101-disk-0.qcow2");
        let listed = b.list(None, Some(vmid(101))).unwrap();
        assert_eq!(listed[0].volname, clone, "the listing recovers the base from the backing file");
        assert_eq!(listed[0].size, 1 << 30);
        let e = b.free(&base).unwrap_err();
        assert!(
            e.to_string()
                .contains("still used by linked clones: local:100/base-100-disk-0.qcow2/101/vm-101-disk-0.qcow2"),
            "{e}"
        );
        b.free(&clone).unwrap();
        b.free(&base).unwrap();
    }
}

/// What listings read from image headers (virtual size, backing file), remembered per file
/// until the file changes: its inode, size, mtime or ctime differ. Any change of a header
/// (resize, rebase, a new image under the same name) changes them, so a listing stays exact
/// while reading only the metadata it stats anyway.
mod header_cache {
    use std::collections::HashMap;
    use std::fs;
    use std::os::unix::fs::MetadataExt;
    use std::path::{Path, PathBuf};
    use std::sync::{Mutex, OnceLock};

    use hearth_core::storage::ImageName;

    /// Bound on remembered files; past it the cache starts over.
    const MAX_ENTRIES: usize = 100_000;

    type Stamp = (u64, u64, i64, i64, i64, i64);
    type Header = Option<(u64, Option<ImageName>)>;

    fn cache() -> &'static Mutex<HashMap<PathBuf, (Stamp, Header)>> {
        static CACHE: OnceLock<Mutex<HashMap<PathBuf, (Stamp, Header)>>> = OnceLock::new();
        CACHE.get_or_init(Mutex::default)
    }

    /// The header of the image at `path` (stat'ed as `meta`), read by `read` unless known.
    pub(super) fn get(path: &Path, meta: &fs::Metadata, read: impl FnOnce() -> std::io::Result<Header>) -> Header {
        let stamp = (meta.ino(), meta.size(), meta.mtime(), meta.mtime_nsec(), meta.ctime(), meta.ctime_nsec());
        if let Some((known, header)) = cache().lock().unwrap_or_else(|e| e.into_inner()).get(path) {
            if *known == stamp {
                return header.clone();
            }
        }
        // Unreadable headers are not remembered: the next listing tries again.
        let header = read().ok()?;
        let mut cache = cache().lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_ENTRIES {
            cache.clear();
        }
        cache.insert(path.to_owned(), (stamp, header.clone()));
        header
    }
}

/// Listings of image directories, remembered per directory while it is unchanged: its inode,
/// mtime and ctime are the same (a file created, removed or renamed in it changes them), no
/// storage operation of this process ran since (each one marks every listing stale when it
/// ends: resizes, snapshots and imports change files, not directories), and the listing is at
/// most [`MAX_AGE`] old (what the guests write changes the `used` figure, and a header changed
/// by another program changes no directory). A listing then costs a stat per directory instead
/// of a directory read, a stat per file and a header read per qcow2 image.
pub(crate) mod listing_cache {
    use std::collections::HashMap;
    use std::fs;
    use std::os::unix::fs::MetadataExt;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Mutex, OnceLock};
    use std::time::{Duration, Instant};

    use hearth_core::Vmid;

    use crate::VolumeInfo;

    /// How long a remembered listing may serve at most.
    pub(crate) const MAX_AGE: Duration = Duration::from_secs(5);
    /// Bound on remembered directories; past it the cache starts over.
    const MAX_DIRS: usize = 50_000;

    /// Inode, mtime and ctime (seconds and ns) of a directory.
    type DirStamp = (u64, i64, i64, i64, i64);

    /// Bumped when a storage operation ends: what was remembered before is stale.
    static GENERATION: AtomicU64 = AtomicU64::new(0);

    struct Remembered<T> {
        stamp: DirStamp,
        generation: u64,
        at: Instant,
        value: T,
    }

    type Key = (String, PathBuf);

    #[derive(Default)]
    struct Cache {
        roots: HashMap<Key, Remembered<Vec<(Vmid, PathBuf)>>>,
        dirs: HashMap<Key, Remembered<Vec<VolumeInfo>>>,
    }

    fn cache() -> std::sync::MutexGuard<'static, Cache> {
        static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
        CACHE.get_or_init(Mutex::default).lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stamp_of(meta: &fs::Metadata) -> DirStamp {
        (meta.ino(), meta.mtime(), meta.mtime_nsec(), meta.ctime(), meta.ctime_nsec())
    }

    fn fresh<T>(r: &Remembered<T>, stamp: DirStamp, generation: u64) -> bool {
        r.stamp == stamp && r.generation == generation && r.at.elapsed() < MAX_AGE
    }

    /// Marks every remembered listing stale when dropped: held by each storage operation.
    #[derive(Debug)]
    pub(crate) struct Changing;

    impl Drop for Changing {
        fn drop(&mut self) {
            GENERATION.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The guest directories (`<vmid>/`) under a storage's `images/`.
    pub(crate) fn dirs(storage: &str, root: &Path) -> std::io::Result<Vec<(Vmid, PathBuf)>> {
        let generation = GENERATION.load(Ordering::SeqCst);
        let stamp = stamp_of(&fs::metadata(root)?);
        let key = (storage.to_owned(), root.to_owned());
        if let Some(r) = cache().roots.get(&key).filter(|r| fresh(r, stamp, generation)) {
            return Ok(r.value.clone());
        }
        let dirs: Vec<(Vmid, PathBuf)> = fs::read_dir(root)?
            .flatten()
            .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path())))
            .collect();
        let mut cache = cache();
        if cache.roots.len() >= MAX_DIRS {
            cache.roots.clear();
        }
        cache.roots.insert(key, Remembered { stamp, generation, at: Instant::now(), value: dirs.clone() });
        Ok(dirs)
    }

    /// The volumes of one guest directory, from memory or from `read`; `None` when the
    /// directory cannot be read.
    pub(crate) fn volumes(
        storage: &str,
        dir: &Path,
        read: impl FnOnce() -> Option<Vec<VolumeInfo>>,
    ) -> Option<Vec<VolumeInfo>> {
        let generation = GENERATION.load(Ordering::SeqCst);
        let stamp = stamp_of(&fs::metadata(dir).ok()?);
        let key = (storage.to_owned(), dir.to_owned());
        if let Some(r) = cache().dirs.get(&key).filter(|r| fresh(r, stamp, generation)) {
            return Some(r.value.clone());
        }
        let volumes = read()?;
        let mut cache = cache();
        if cache.dirs.len() >= MAX_DIRS {
            cache.dirs.clear();
        }
        cache.dirs.insert(key, Remembered { stamp, generation, at: Instant::now(), value: volumes.clone() });
        Some(volumes)
    }
}
