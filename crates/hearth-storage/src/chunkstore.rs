//! The `chunkstore` storage type: a directory holding a hearth-backup chunk store. It holds
//! backups only; hearthd reads and writes them through hearth-backup, so this backend only
//! checks that the storage is usable and refuses every volume operation.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use hearth_core::Vmid;
use hearth_core::storage::{Content, Format, StorageConfig, StreamFormat, VolName};

use crate::files;
use crate::{Backend, NewImage, Result, Space, StorageError, VolumeInfo};

#[derive(Debug)]
pub struct ChunkstoreBackend {
    config: StorageConfig,
}

impl ChunkstoreBackend {
    pub fn new(config: StorageConfig) -> ChunkstoreBackend {
        ChunkstoreBackend { config }
    }

    fn unsupported<T>(&self, what: &str) -> Result<T> {
        Err(StorageError::Unsupported(format!(
            "storage '{}' is a chunk store: it holds backups only, not {what}",
            self.config.id
        )))
    }
}

impl Backend for ChunkstoreBackend {
    fn config(&self) -> &StorageConfig {
        &self.config
    }

    /// The path must exist (it is never created); the store inside it is created by hearthd
    /// on first use.
    fn activate(&self) -> Result<()> {
        files::check_active(&self.config)
    }

    fn space(&self) -> Result<Space> {
        files::space(Path::new(&self.config.path))
    }

    fn parse(&self, name: &str) -> Result<VolName> {
        self.unsupported(&format!("volume '{name}'"))
    }

    fn path(&self, _vol: &VolName) -> Result<PathBuf> {
        self.unsupported("volumes")
    }

    /// Backups of a chunk store are listed by hearthd (`storectl backup list`), not here.
    fn list(&self, _content: Option<Content>, _vmid: Option<Vmid>) -> Result<Vec<VolumeInfo>> {
        self.activate()?;
        Ok(Vec::new())
    }

    fn alloc(&self, _new: &NewImage) -> Result<VolName> {
        self.unsupported("images")
    }

    fn free(&self, _vol: &VolName) -> Result<()> {
        self.unsupported("volumes")
    }

    fn resize(&self, _vol: &VolName, _size: u64) -> Result<()> {
        self.unsupported("images")
    }

    fn image_info(&self, _vol: &VolName) -> Result<(Format, u64)> {
        self.unsupported("images")
    }

    fn snapshot(&self, _vol: &VolName, _snap: &str) -> Result<()> {
        self.unsupported("volume snapshots")
    }

    fn rollback(&self, _vol: &VolName, _snap: &str) -> Result<()> {
        self.unsupported("volume snapshots")
    }

    fn delete_snapshot(&self, _vol: &VolName, _snap: &str) -> Result<()> {
        self.unsupported("volume snapshots")
    }

    fn snapshots(&self, _vol: &VolName) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    fn create_base(&self, _vol: &VolName) -> Result<VolName> {
        self.unsupported("images")
    }

    fn clone_linked(&self, _base: &VolName, _vmid: Vmid) -> Result<VolName> {
        self.unsupported("images")
    }

    fn rename(&self, _vol: &VolName, _vmid: Vmid) -> Result<VolName> {
        self.unsupported("volumes")
    }

    fn export_formats(&self, _vol: &VolName) -> Result<Vec<StreamFormat>> {
        Ok(Vec::new())
    }

    fn export(&self, _vol: &VolName, _format: StreamFormat, _out: &mut dyn Write) -> Result<()> {
        self.unsupported("volumes")
    }

    fn import(&self, _vol: &VolName, _format: StreamFormat, _input: &mut dyn Read) -> Result<()> {
        self.unsupported("volumes")
    }
}
