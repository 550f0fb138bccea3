//! A minimal command line over the chunk store, used by `cargo xtask bench backup` to time
//! Hearth in a release build as its own process, like restic and borg.
//!
//! ```text
//! chunkstore init <store>
//! chunkstore keygen <keyfile>
//! chunkstore backup <store> <vmid> <unix-time> <image> [<keyfile>]
//! chunkstore restore <store> <vmid> <unix-time> <target> [<keyfile>]
//! chunkstore pipeline <image>
//! ```
//!
//! `pipeline` is the ingest limit of this machine for the image: every 4 MiB slot read (from
//! the page cache), hashed with SHA-256 and compressed with zstd level 1, on as many threads
//! as there are CPUs — the work a backup cannot avoid, without the store's writes.

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
        "pipeline" => pipeline(Path::new(arg(2))),
        _ => Err(hearth_backup::Error::Invalid("usage: chunkstore init|keygen|backup|restore|pipeline …".into())),
    }
}

fn pipeline(image: &Path) -> Result<(), hearth_backup::Error> {
    use std::os::unix::fs::FileExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    const SLOT: u64 = 4 << 20;
    let io = |e: std::io::Error| hearth_backup::Error::Invalid(format!("{}: {e}", image.display()));
    let file = std::fs::File::open(image).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let next = AtomicU64::new(0);
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    let sink = AtomicU64::new(0);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<(), hearth_backup::Error> {
                    let mut encoder = hearth_backup::blob::BlobEncoder::new();
                    let mut buf = vec![0u8; SLOT as usize];
                    loop {
                        let offset = next.fetch_add(SLOT, Ordering::Relaxed);
                        if offset >= size {
                            return Ok(());
                        }
                        let len = SLOT.min(size - offset) as usize;
                        file.read_exact_at(&mut buf[..len], offset).map_err(io)?;
                        let digest = hearth_backup::key::plain_digest(&buf[..len]);
                        let stored = encoder.encode(&buf[..len], None)?;
                        // Keeps both results alive so neither step is optimised away.
                        sink.fetch_add(u64::from(digest[0]) + stored.len() as u64, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().expect("pipeline workers do not panic"))
    })?;
    println!("pipeline {size} bytes ({} checksum)", sink.into_inner());
    Ok(())
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
