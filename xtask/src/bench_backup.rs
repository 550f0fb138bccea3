//! `cargo xtask bench backup`: Hearth's chunk store against restic and borg on one 2 GiB image
//! (30 % random, 70 % compressible text): first backup throughput, a second backup after
//! changing 5 % of it, restore throughput and repository size — medians of N runs (`--runs`,
//! default 3), with ratios against restic.
//!
//! Hearth runs as the release build of hearth-backup's `chunkstore` example, a process like
//! the others. restic always encrypts (AES-256 + Poly1305); borg uses `-e repokey` (encrypted,
//! its default lz4 compression); Hearth runs plain and with a key (AES-256-GCM).

use std::fs::{self, File};
use std::io::BufRead;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

use crate::cargo;

const MIB: u64 = 1 << 20;
const IMAGE_MIB: u64 = 2048;
const BLOCK_MIB: u64 = 4;

/// Builds the `chunkstore` example in release and returns its path.
fn build_chunkstore(root: &Path) -> anyhow::Result<PathBuf> {
    eprintln!("==> cargo build --release -p hearth-backup --example chunkstore");
    let mut child = cargo(root)
        .args([
            "build",
            "--release",
            "-p",
            "hearth-backup",
            "--example",
            "chunkstore",
            "--message-format=json-render-diagnostics",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run cargo build")?;
    let stdout = child.stdout.take().expect("stdout was piped");
    let mut exe = None;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line?;
        if let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) {
            if msg["target"]["name"] == "chunkstore" {
                if let Some(e) = msg["executable"].as_str() {
                    exe = Some(PathBuf::from(e));
                }
            }
        }
    }
    if !child.wait()?.success() {
        bail!("cargo build of the chunkstore example failed");
    }
    exe.context("cargo did not report the chunkstore executable")
}

/// Block `i` of the image; `variant` 1 is the changed version.
fn block(i: u64, variant: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity((BLOCK_MIB * MIB) as usize);
    if i % 10 < 3 {
        let mut x = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ variant.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1;
        while out.len() < (BLOCK_MIB * MIB) as usize {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(&x.to_le_bytes());
        }
    } else {
        let mut n = i * 100_000 + variant * 7;
        while out.len() < (BLOCK_MIB * MIB) as usize {
            out.extend_from_slice(
                format!(
                    "{n:>10} host=node{} status={} latency_ms={} path=/api2/json/nodes/{}/qemu\n",
                    n % 17,
                    n % 5,
                    n % 997,
                    n % 13
                )
                .as_bytes(),
            );
            n += 1;
        }
        out.truncate((BLOCK_MIB * MIB) as usize);
    }
    out
}

fn blocks() -> u64 {
    IMAGE_MIB / BLOCK_MIB
}

/// The 5 % of blocks the second backup sees changed.
fn changed(i: u64) -> bool {
    i % 20 == 7
}

fn write_image(path: &Path, second: bool) -> anyhow::Result<()> {
    let file = File::options().create(true).write(true).truncate(false).open(path)?;
    for i in 0..blocks() {
        if !second || changed(i) {
            file.write_all_at(&block(i, u64::from(second && changed(i))), i * BLOCK_MIB * MIB)?;
        }
    }
    file.sync_all()?;
    Ok(())
}

fn run(cmd: &mut Command) -> anyhow::Result<f64> {
    let started = Instant::now();
    let output =
        cmd.stdout(Stdio::null()).stderr(Stdio::piped()).output().with_context(|| format!("cannot run {cmd:?}"))?;
    if !output.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(started.elapsed().as_secs_f64())
}

fn du(path: &Path) -> anyhow::Result<u64> {
    let out = Command::new("du").arg("-sb").arg(path).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().next().and_then(|n| n.parse().ok()).context("du output")
}

#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    first_s: f64,
    second_s: f64,
    restore_s: f64,
    /// Hearth only: SHA-256 + zstd-1 over the image on every CPU, nothing written.
    pipeline_s: f64,
    /// `sync -f` of the restored file after the restore: what was still to be written.
    flush_s: f64,
    repo_bytes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tool {
    Hearth,
    HearthEncrypted,
    Restic,
    Borg,
}

impl Tool {
    fn label(self) -> &'static str {
        match self {
            Tool::Hearth => "hearth (plain)",
            Tool::HearthEncrypted => "hearth (AES-256-GCM)",
            Tool::Restic => "restic (encrypted)",
            Tool::Borg => "borg 1.2 (repokey)",
        }
    }
}

fn one_run(tool: Tool, chunkstore: &Path, scratch: &Path, image: &Path) -> anyhow::Result<Sample> {
    let repo = scratch.join("repo");
    let out = scratch.join("out");
    let _ = fs::remove_dir_all(&repo);
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out)?;
    write_image(image, false)?;
    let key = scratch.join("key.json");
    let env = |c: &mut Command| {
        c.env("RESTIC_PASSWORD", "x")
            .env("BORG_PASSPHRASE", "x")
            .env("RESTIC_CACHE_DIR", scratch.join("cache"))
            .env("BORG_BASE_DIR", scratch.join("borgbase"));
    };
    let cmd = |program: &Path| {
        let mut c = Command::new(program);
        env(&mut c);
        c
    };
    let t = "1725796801";
    let t2 = "1725796861";
    let mut sample = Sample::default();
    match tool {
        Tool::Hearth | Tool::HearthEncrypted => {
            run(cmd(chunkstore).arg("init").arg(&repo))?;
            let mut key_arg = Vec::new();
            if tool == Tool::HearthEncrypted {
                let _ = fs::remove_file(&key);
                run(cmd(chunkstore).arg("keygen").arg(&key))?;
                key_arg.push(key.clone());
            }
            // The pipeline limit on the same image, page cache as warm as for the backup.
            sample.pipeline_s = run(cmd(chunkstore).arg("pipeline").arg(image))?;
            sample.first_s = run(cmd(chunkstore).arg("backup").arg(&repo).args(["100", t]).arg(image).args(&key_arg))?;
            write_image(image, true)?;
            sample.second_s =
                run(cmd(chunkstore).arg("backup").arg(&repo).args(["100", t2]).arg(image).args(&key_arg))?;
            sample.repo_bytes = du(&repo)?;
            sample.restore_s = run(cmd(chunkstore)
                .arg("restore")
                .arg(&repo)
                .args(["100", t2])
                .arg(out.join("disk.raw"))
                .args(&key_arg))?;
        }
        Tool::Restic => {
            let restic = Path::new("restic");
            run(cmd(restic).arg("init").arg("-r").arg(&repo))?;
            sample.first_s = run(cmd(restic).arg("backup").arg("-r").arg(&repo).arg(image))?;
            write_image(image, true)?;
            sample.second_s = run(cmd(restic).arg("backup").arg("-r").arg(&repo).arg(image))?;
            sample.repo_bytes = du(&repo)?;
            sample.restore_s = run(cmd(restic).args(["restore", "latest", "-r"]).arg(&repo).arg("--target").arg(&out))?;
        }
        Tool::Borg => {
            let borg = Path::new("borg");
            run(cmd(borg).args(["init", "-e", "repokey"]).arg(&repo))?;
            sample.first_s = run(cmd(borg).arg("create").arg(format!("{}::a", repo.display())).arg(image))?;
            write_image(image, true)?;
            sample.second_s = run(cmd(borg).arg("create").arg(format!("{}::b", repo.display())).arg(image))?;
            sample.repo_bytes = du(&repo)?;
            sample.restore_s = run(cmd(borg).arg("extract").arg(format!("{}::b", repo.display())).current_dir(&out))?;
        }
    }
    // Hearth's restore fdatasyncs its file; restic and borg leave theirs in the page cache.
    // The flush of the one restored file makes the three comparable when durable.
    let restored = find_file(&out, "disk.raw")?;
    sample.flush_s = run(Command::new("sync").arg("-f").arg(&restored))?;
    let _ = fs::remove_dir_all(&out);
    Ok(sample)
}

/// The one file called `name` somewhere below `dir` (restic and borg restore full paths).
fn find_file(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            if let Ok(found) = find_file(&path, name) {
                return Ok(found);
            }
        } else if entry.file_name() == name {
            return Ok(path);
        }
    }
    bail!("no {name} below {}", dir.display())
}

/// The median: the middle value, or the mean of the middle two for an even count (with two
/// runs, the upper one would be the best ingest run, not a median).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

pub fn run_bench(root: &Path, runs: usize) -> anyhow::Result<()> {
    if runs < 3 {
        bail!("--runs must be at least 3: the report gives medians over runs");
    }
    for (tool, package) in [("restic", "restic"), ("borg", "borgbackup")] {
        if Command::new(tool).arg("--version").stdout(Stdio::null()).status().is_err() {
            bail!("{tool} is not installed; install it with `apt-get install {package}`");
        }
    }
    let chunkstore = build_chunkstore(root)?;
    let scratch = tempfile::Builder::new().prefix("hearth-bench-backup").tempdir_in("/var/tmp")?;
    let image = scratch.path().join("disk.raw");
    let tools = [Tool::Hearth, Tool::HearthEncrypted, Tool::Restic, Tool::Borg];
    let mut results: Vec<(Tool, Vec<Sample>)> = tools.iter().map(|t| (*t, Vec::new())).collect();
    for r in 0..runs {
        for (tool, samples) in &mut results {
            eprintln!("run {}/{runs}: {}", r + 1, tool.label());
            samples.push(one_run(*tool, &chunkstore, scratch.path(), &image)?);
        }
    }
    let size_mb = (IMAGE_MIB * MIB) as f64 / 1e6;
    let rows: Vec<(Tool, f64, f64, f64, f64, f64)> = results
        .iter()
        .map(|(tool, s)| {
            let first = median(s.iter().map(|x| size_mb / x.first_s).collect());
            let second = median(s.iter().map(|x| x.second_s).collect());
            let restore = median(s.iter().map(|x| size_mb / x.restore_s).collect());
            let durable = median(s.iter().map(|x| size_mb / (x.restore_s + x.flush_s)).collect());
            let repo = median(s.iter().map(|x| x.repo_bytes as f64 / MIB as f64).collect());
            (*tool, first, second, restore, durable, repo)
        })
        .collect();
    let hearth = &results.iter().find(|r| r.0 == Tool::Hearth).expect("hearth ran").1;
    let pipeline = median(hearth.iter().map(|x| size_mb / x.pipeline_s).collect());
    let restic = *rows.iter().find(|r| r.0 == Tool::Restic).expect("restic ran");
    let mut out = format!(
        "\nbackup benchmark: 2 GiB image (30 % random, 70 % text), second backup after changing 5 %, \
         medians of {runs} run(s), {} CPU(s), page cache warm\n\n",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    out.push_str(&format!(
        "{:<22} {:>12} {:>12} {:>13} {:>13} {:>10}   {:>8} {:>8} {:>8} {:>8}\n",
        "tool",
        "ingest MB/s",
        "2nd backup s",
        "restore MB/s",
        "durable MB/s",
        "repo MiB",
        "ingest×",
        "2nd×",
        "restore×",
        "durable×"
    ));
    for (tool, first, second, restore, durable, repo) in &rows {
        out.push_str(&format!(
            "{:<22} {first:>12.0} {second:>12.2} {restore:>13.0} {durable:>13.0} {repo:>10.0}   {:>7.2}× {:>7.2}× {:>7.2}× {:>7.2}×\n",
            tool.label(),
            first / restic.1,
            restic.2 / second,
            restore / restic.3,
            durable / restic.4
        ));
    }
    out.push_str(
        "\n× = ratio against restic (higher is better; 2nd× is restic's time over the tool's).\n\
         restore = the tool's own command (Hearth's fdatasyncs the restored file; restic's and borg's \
         leave it in the page cache); durable = restore plus `sync -f` of the restored file.\n",
    );
    let hearth_ingest = rows.iter().find(|r| r.0 == Tool::Hearth).expect("hearth ran").1;
    out.push_str(&format!(
        "pipeline limit (SHA-256 + zstd-1 over the same image on {} threads, nothing written): \
         {pipeline:.0} MB/s; Hearth's ingest is {:.0} % of it\n",
        std::thread::available_parallelism().map_or(0, usize::from),
        100.0 * hearth_ingest / pipeline
    ));
    print!("{out}");
    Ok(())
}
