//! `cargo xtask bench storage`: linked clones of a 10 GiB image on dir and btrfs, full-clone
//! throughput against `cp --reflink=never` of the same file, and `storectl list` over 5000
//! volumes — each next to its goal, medians of repeated runs in one sitting.
//!
//! Clones run through hearth-storage in-process (the code hearthd runs for them); the listing
//! is the release `storectl` binary against a release hearthd, whole process.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hearth_core::Vmid;
use hearth_core::storage::{Format, StorageTable, StorageType};
use hearth_storage::{Backend, NewImage};
use hearth_test::BtrfsLoop;

use crate::node::Node;
use crate::{Profile, build_binaries};

const GIB: u64 = 1 << 30;
const CLONE_RUNS: usize = 15;
const COPY_RUNS: usize = 5;
const LIST_VOLUMES: u32 = 5000;
const LIST_RUNS: usize = 50;
/// Goals from the storage issue.
const GOAL_LINKED_CLONE_MS: f64 = 50.0;
const GOAL_LIST_MS: f64 = 35.0;

fn vmid(n: u32) -> anyhow::Result<Vmid> {
    Vmid::new(n).context("benchmark ids are in range")
}

fn median(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1000.0
}

fn backend(id: &str, storage_type: StorageType, path: &Path) -> anyhow::Result<Box<dyn Backend>> {
    let mut table = StorageTable::default();
    let path = path.to_str().context("benchmark paths are UTF-8")?;
    table
        .add(id, storage_type, &[("path".into(), path.into()), ("content".into(), "images,rootdir".into())])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let config = table.get(id).context("the storage reads back")?;
    let backend = hearth_storage::open(&config);
    backend.activate()?;
    Ok(backend)
}

/// Fills the first `bytes` of an image with incompressible data, so clones are not of an
/// empty file.
fn fill(path: &Path, format: Format, bytes: u64) -> anyhow::Result<()> {
    let status = if format == Format::Qcow2 {
        Command::new("qemu-io")
            .args(["-f", "qcow2", "-c", &format!("write -P 0x5a 0 {bytes}")])
            .arg(path)
            .stdout(Stdio::null())
            .status()?
    } else {
        Command::new("dd")
            .args(["if=/dev/urandom", "bs=1M", "conv=notrunc", "status=none"])
            .arg(format!("of={}", path.display()))
            .arg(format!("count={}", bytes >> 20))
            .status()?
    };
    if !status.success() {
        bail!("filling {} failed", path.display());
    }
    Ok(())
}

/// Median time of a linked clone of a 10 GiB base holding 1 GiB of data.
fn linked_clone(backend: &dyn Backend, format: Format) -> anyhow::Result<f64> {
    let disk = backend.alloc(&NewImage { vmid: vmid(900)?, name: None, format, size: 10 * GIB })?;
    fill(&backend.path(&disk)?, format, GIB)?;
    let base = backend.create_base(&disk)?;
    let mut samples = Vec::new();
    for _ in 0..CLONE_RUNS {
        let started = Instant::now();
        let clone = backend.clone_linked(&base, vmid(901)?)?;
        samples.push(started.elapsed());
        backend.free(&clone)?;
    }
    backend.free(&base)?;
    Ok(median(samples))
}

/// Full-clone throughput (MiB/s) of a 512 MiB raw image with hearth-storage and with
/// `cp --reflink=never`, alternating runs.
fn full_clone(backend: &dyn Backend) -> anyhow::Result<(f64, f64)> {
    let size = 512 << 20;
    let disk = backend.alloc(&NewImage { vmid: vmid(910)?, name: None, format: Format::Raw, size })?;
    let path = backend.path(&disk)?;
    fill(&path, Format::Raw, size)?;
    let cp_target = path.with_file_name("cp-target.raw");
    let (mut ours, mut cp) = (Vec::new(), Vec::new());
    for _ in 0..COPY_RUNS {
        let started = Instant::now();
        let clone = hearth_storage::clone_full(backend, &disk, backend, vmid(911)?, Some(Format::Raw))?;
        ours.push(started.elapsed());
        backend.free(&clone)?;

        let started = Instant::now();
        let status = Command::new("cp").arg("--reflink=never").arg(&path).arg(&cp_target).status()?;
        let sync = Command::new("sync").arg(&cp_target).status()?;
        cp.push(started.elapsed());
        if !status.success() || !sync.success() {
            bail!("cp --reflink=never failed");
        }
        fs::remove_file(&cp_target)?;
    }
    backend.free(&disk)?;
    let mib_s = |ms: f64| (size >> 20) as f64 / (ms / 1000.0);
    Ok((mib_s(median(ours)), mib_s(median(cp))))
}

/// Median wall time of `storectl list` over [`LIST_VOLUMES`] volumes (nine raw images for
/// every qcow2 one), and of `ls -lR` of the same tree as a floor.
fn list(storectl: &Path, node: &Node, dir: &Path) -> anyhow::Result<(f64, f64)> {
    let store = backend("many", StorageType::Dir, dir)?;
    let template = dir.join("template.qcow2");
    hearth_storage::qemu_img::create(&template, Format::Qcow2, GIB, None)?;
    for i in 0..LIST_VOLUMES {
        let id = vmid(10_000 + i / 4)?;
        let images = dir.join("images").join(id.to_string());
        fs::create_dir_all(&images)?;
        if i % 10 == 0 {
            // The template is sparse (preallocated metadata); keep its copies sparse too.
            let copied = Command::new("cp")
                .arg("--sparse=always")
                .arg(&template)
                .arg(images.join(format!("vm-{id}-disk-{}.qcow2", i % 4)))
                .status()?;
            if !copied.success() {
                bail!("copying the qcow2 template failed");
            }
        } else {
            store.alloc(&NewImage {
                vmid: id,
                name: Some(format!("vm-{id}-disk-{}.raw", i % 4)),
                format: Format::Raw,
                // Listing cost does not depend on the size; small images keep the free-space
                // check out of the way on a crowded disk.
                size: 1 << 20,
            })?;
        }
    }
    let add = Command::new(storectl)
        .args(["add", "dir", "many", "--path"])
        .arg(dir)
        .args(["--content", "images,rootdir"])
        .env("HEARTH_ROOT", node.root())
        .status()?;
    if !add.success() {
        bail!("storectl add failed");
    }
    // storectl and its anchor alternate, so both see the same machine.
    let storectl_list = || -> anyhow::Result<Duration> {
        let started = Instant::now();
        let out = Command::new(storectl).args(["list", "many"]).env("HEARTH_ROOT", node.root()).output()?;
        let elapsed = started.elapsed();
        let lines = out.stdout.iter().filter(|b| **b == b'\n').count();
        if !out.status.success() || lines != LIST_VOLUMES as usize + 1 {
            bail!("storectl list printed {lines} lines: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(elapsed)
    };
    let ls_lr = || -> anyhow::Result<Duration> {
        let started = Instant::now();
        let out = Command::new("ls").arg("-lR").arg(dir.join("images")).output()?;
        let elapsed = started.elapsed();
        if !out.status.success() {
            bail!("ls -lR failed");
        }
        Ok(elapsed)
    };
    let (mut ours, mut ls) = (Vec::new(), Vec::new());
    for run in 0..LIST_RUNS + 5 {
        let (a, b) = (storectl_list()?, ls_lr()?);
        if run >= 5 {
            ours.push(a);
            ls.push(b);
        }
    }
    let (ours, ls) = (median(ours), median(ls));
    Ok((ours, ls))
}

pub fn run(root: &Path) -> anyhow::Result<()> {
    let binaries = build_binaries(root, Profile::Release)?;
    let node = Node::start(&binaries["hearthd"], "bench")?;
    let scratch = tempfile::Builder::new().prefix("hearth-bench-storage").tempdir_in("/var/tmp")?;
    let btrfs = BtrfsLoop::new(24 * GIB).context("making a btrfs file system on a loop device")?;

    let dir = backend("benchdir", StorageType::Dir, scratch.path())?;
    let brt = backend("benchbtrfs", StorageType::Btrfs, btrfs.path())?;
    eprintln!("linked clones of a 10 GiB image ({CLONE_RUNS} runs each)");
    let dir_clone = linked_clone(dir.as_ref(), Format::Qcow2)?;
    let btrfs_clone = linked_clone(brt.as_ref(), Format::Raw)?;
    eprintln!("full clones of a 512 MiB raw image against cp --reflink=never ({COPY_RUNS} runs each)");
    let (dir_full, dir_cp) = full_clone(dir.as_ref())?;
    let (btrfs_full, btrfs_cp) = full_clone(brt.as_ref())?;
    eprintln!("storectl list over {LIST_VOLUMES} volumes ({LIST_RUNS} runs)");
    let list_dir = scratch.path().join("many");
    fs::create_dir_all(&list_dir)?;
    let (list_ms, ls_ms) = list(&binaries["storectl"], &node, &list_dir)?;
    node.stop()?;

    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    let mut out = String::new();
    out.push_str(&format!(
        "\nHearth storage benchmark, release build, medians, {} CPU(s)\n\n",
        std::thread::available_parallelism().map_or(0, usize::from)
    ));
    for (name, ms) in [("dir (qcow2 overlay)", dir_clone), ("btrfs (subvolume snapshot)", btrfs_clone)] {
        out.push_str(&format!(
            "linked clone of a 10 GiB image, {name:<27} {ms:>8.2} ms   goal ≤ {GOAL_LINKED_CLONE_MS} ms: {}\n",
            verdict(ms <= GOAL_LINKED_CLONE_MS)
        ));
    }
    out.push('\n');
    for (name, ours, cp) in [("dir on ext4", dir_full, dir_cp), ("btrfs", btrfs_full, btrfs_cp)] {
        out.push_str(&format!(
            "full clone of 512 MiB raw, {name:<12} hearth {ours:>9.0} MiB/s   cp --reflink=never {cp:>7.0} MiB/s   ratio {:.2}×\n",
            ours / cp
        ));
    }
    out.push_str(&format!(
        "\nstorectl list over {LIST_VOLUMES} volumes (whole process)   {list_ms:>6.2} ms   goal ≤ {GOAL_LIST_MS} ms: {}\n\
         ls -lR of the same tree (floor)                  {ls_ms:>6.2} ms   ratio {:.2}×\n",
        verdict(list_ms <= GOAL_LIST_MS),
        list_ms / ls_ms
    ));
    out.push_str("\nanchor: pvesm needs a Proxmox VE host and is not measured here; cp and ls are the side-by-side references.\n");
    print!("{out}");
    Ok(())
}
