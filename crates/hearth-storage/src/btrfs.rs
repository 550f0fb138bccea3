//! The `btrfs` backend (being written).

use std::io::{Read, Write};
use std::path::PathBuf;

use hearth_core::Vmid;
use hearth_core::storage::{Content, Format, StorageConfig, StreamFormat, VolName};

use crate::{Backend, NewImage, Result, Space, StorageError, VolumeInfo};

#[derive(Debug)]
pub struct BtrfsBackend {
    config: StorageConfig,
}

impl BtrfsBackend {
    pub fn new(config: StorageConfig) -> BtrfsBackend {
        BtrfsBackend { config }
    }
}

fn todo() -> StorageError {
    StorageError::Unsupported("btrfs backend is not implemented".into())
}

impl Backend for BtrfsBackend {
    fn config(&self) -> &StorageConfig {
        &self.config
    }
    fn activate(&self) -> Result<()> {
        Err(todo())
    }
    fn space(&self) -> Result<Space> {
        Err(todo())
    }
    fn path(&self, _vol: &VolName) -> Result<PathBuf> {
        Err(todo())
    }
    fn list(&self, _content: Option<Content>, _vmid: Option<Vmid>) -> Result<Vec<VolumeInfo>> {
        Err(todo())
    }
    fn alloc(&self, _new: &NewImage) -> Result<VolName> {
        Err(todo())
    }
    fn free(&self, _vol: &VolName) -> Result<()> {
        Err(todo())
    }
    fn resize(&self, _vol: &VolName, _size: u64) -> Result<()> {
        Err(todo())
    }
    fn image_info(&self, _vol: &VolName) -> Result<(Format, u64)> {
        Err(todo())
    }
    fn snapshot(&self, _vol: &VolName, _snap: &str) -> Result<()> {
        Err(todo())
    }
    fn rollback(&self, _vol: &VolName, _snap: &str) -> Result<()> {
        Err(todo())
    }
    fn delete_snapshot(&self, _vol: &VolName, _snap: &str) -> Result<()> {
        Err(todo())
    }
    fn snapshots(&self, _vol: &VolName) -> Result<Vec<String>> {
        Err(todo())
    }
    fn create_base(&self, _vol: &VolName) -> Result<VolName> {
        Err(todo())
    }
    fn clone_linked(&self, _base: &VolName, _vmid: Vmid) -> Result<VolName> {
        Err(todo())
    }
    fn rename(&self, _vol: &VolName, _vmid: Vmid) -> Result<VolName> {
        Err(todo())
    }
    fn export_formats(&self, _vol: &VolName) -> Result<Vec<StreamFormat>> {
        Err(todo())
    }
    fn export(&self, _vol: &VolName, _format: StreamFormat, _out: &mut dyn Write) -> Result<()> {
        Err(todo())
    }
    fn import(&self, _vol: &VolName, _format: StreamFormat, _input: &mut dyn Read) -> Result<()> {
        Err(todo())
    }
}
