//! Moving bytes between the caller's files and hearthd: the file itself is handed over
//! (SCM_RIGHTS) so hearthd reads and writes it with the caller's access. On a terminal the
//! data goes through a pipe instead, counted on its way for a progress bar.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::thread::JoinHandle;

use anyhow::Context;
use hearth_client::Client;
use hearth_proto::{Payload, Request};
use indicatif::{ProgressBar, ProgressStyle};

/// Where data comes from: a file or standard input (`-`).
pub fn open_source(path: &str) -> anyhow::Result<(OwnedFd, Option<u64>)> {
    if path == "-" {
        let fd = io::stdin().as_fd().try_clone_to_owned().context("duplicating standard input")?;
        return Ok((fd, None));
    }
    let file = File::open(path).with_context(|| format!("cannot open {path}"))?;
    let meta = file.metadata().with_context(|| format!("cannot read {path}"))?;
    let size = meta.is_file().then_some(meta.len());
    Ok((file.into(), size))
}

fn progress_bar(total: Option<u64>, message: &str) -> ProgressBar {
    let bar = match total {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{msg} {bytes} {binary_bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_message(message.to_owned());
    bar
}

/// Sends `request` with data read from `source`. With `progress`, the data passes through a
/// pipe and a progress bar on standard error counts it.
pub fn send(
    client: &mut Client,
    request: &Request,
    source: OwnedFd,
    size: Option<u64>,
    progress: Option<&str>,
) -> anyhow::Result<Payload> {
    let Some(message) = progress else {
        return Ok(client.call_with_file(request, source)?);
    };
    let (reader, mut writer) = io::pipe().context("creating a pipe")?;
    let bar = progress_bar(size, message);
    let pump_bar = bar.clone();
    let pump: JoinHandle<io::Result<u64>> = std::thread::spawn(move || {
        let mut input = File::from(source);
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0;
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                return Ok(total);
            }
            // hearthd closing its end early (it refused the data) ends the copy quietly.
            if let Err(e) = writer.write_all(&buf[..n]) {
                return if e.kind() == io::ErrorKind::BrokenPipe { Ok(total) } else { Err(e) };
            }
            total += n as u64;
            pump_bar.inc(n as u64);
        }
    });
    let result = client.call_with_file(request, reader.into());
    let pumped = pump.join().map_err(|_| anyhow::anyhow!("the copying thread panicked"))?;
    bar.finish_and_clear();
    let payload = result?;
    pumped.context("reading the input")?;
    Ok(payload)
}

/// Sends `request` with `target` for hearthd to write into. With `progress`, the data passes
/// through a pipe and a progress bar counts it.
pub fn receive(
    client: &mut Client,
    request: &Request,
    target: OwnedFd,
    progress: Option<&str>,
) -> anyhow::Result<Payload> {
    let Some(message) = progress else {
        return Ok(client.call_with_file(request, target)?);
    };
    let (mut reader, writer) = io::pipe().context("creating a pipe")?;
    let bar = progress_bar(None, message);
    let pump_bar = bar.clone();
    let pump: JoinHandle<io::Result<u64>> = std::thread::spawn(move || {
        let mut out = File::from(target);
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0;
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                out.flush()?;
                return Ok(total);
            }
            out.write_all(&buf[..n])?;
            total += n as u64;
            pump_bar.inc(n as u64);
        }
    });
    let result = client.call_with_file(request, writer.into());
    let pumped = pump.join().map_err(|_| anyhow::anyhow!("the copying thread panicked"))?;
    bar.finish_and_clear();
    let payload = result?;
    pumped.context("writing the output")?;
    Ok(payload)
}

/// Whether to draw progress: only for people, on a terminal.
pub fn wants_progress(json: bool) -> bool {
    !json && io::stderr().is_terminal()
}
