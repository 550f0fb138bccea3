//! A minimal command line over the chunk store, used by `cargo xtask bench backup` to time
//! Hearth in a release build as its own process, like restic and borg.
//!
//! ```text
//! chunkstore init <store>
//! chunkstore keygen <keyfile>
//! chunkstore backup <store> <vmid> <unix-time> <image> [<keyfile>]
//! chunkstore restore <store> <vmid> <unix-time> <target> [<keyfile>]
//! ```

use std::path::Path;
use std::process::ExitCode;

use hearth_backup::{BackupType, BackupWriter, ChunkStore, KeyFile, SnapshotRef, restore};

fn run(args: &[String]) -> Result<(), hearth_backup::Error> {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
    let key = |i: usize| args.get(i).map(|p| KeyFile::load(Path::new(p))).transpose();
    let time = |i: usize| arg(i).parse::<i64>().map_err(|_| hearth_backup::Error::Invalid("bad time".into()));
    match arg(1) {
        "init" => ChunkStore::create(Path::new(arg(2))).map(|_| ()),
        "keygen" => KeyFile::generate(0)?.save(Path::new(arg(2))),
        "backup" => {
            let store = ChunkStore::open(Path::new(arg(2)))?;
            let key = key(6)?;
            let mut writer = BackupWriter::start(&store, BackupType::Vm, arg(3), time(4)?, key.as_ref())?;
            let stats = writer.add_image("drive-scsi0", Path::new(arg(5)), None)?;
            writer.finish(None)?;
            println!("chunks {} new {} stored {}", stats.chunks, stats.new_chunks, stats.stored_bytes);
            Ok(())
        }
        "restore" => {
            let store = ChunkStore::open(Path::new(arg(2)))?;
            let snap = SnapshotRef::new(BackupType::Vm, arg(3), time(4)?);
            let stats = restore::restore_image(&store, &snap, "drive-scsi0", key(6)?.as_ref(), Path::new(arg(5)))?;
            println!("restored {} bytes", stats.size);
            Ok(())
        }
        _ => Err(hearth_backup::Error::Invalid("usage: chunkstore init|keygen|backup|restore …".into())),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chunkstore: {e}");
            ExitCode::FAILURE
        }
    }
}
