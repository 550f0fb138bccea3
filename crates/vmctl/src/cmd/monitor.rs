//! `vmctl monitor`: QEMU's human monitor of a running VM, line by line, as `qm monitor`.

use std::io::{self, BufRead, IsTerminal};
use std::time::Instant;

use anyhow::Context;
use clap::{ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_core::Vmid;
use hearth_proto::{ErrorKind, IDLE_TIMEOUT, Payload, Request, VmRequest};

/// The prompt qm shows; kept so muscle memory and expect scripts carry over.
const PROMPT: &str = "qm> ";

pub fn command() -> Command {
    Command::new("monitor")
        .about("Run QEMU monitor commands on a virtual machine (root only)")
        .long_about(
            "Run commands of QEMU's human monitor (info status, info block, sendkey ctrl-alt-delete, \
             ...) on a running virtual machine, as qm monitor does. Only root@pam may use it, \
             whatever the ACLs say: the monitor can read and change anything about the VM and \
             the files QEMU can reach.\n\n\
             Commands are read from standard input, one per line, and each answer is printed \
             as QEMU gives it (JSON output: one JSON string per command). On a terminal vmctl \
             prompts with 'qm> ' and reports a failed command without leaving; otherwise the \
             first failure ends vmctl with exit status 1. 'quit', 'exit' or the end of input \
             leave the monitor; the VM keeps running.",
        )
        .arg(cli::vmid_arg("vmid", "The VM whose monitor to use"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let interactive = io::stdin().is_terminal();
    let mut client = cli::connect(crate::BIN)?;
    let mut last_answer = Instant::now();
    if interactive {
        cli::print_text(&format!("Entering QEMU monitor for VM {vmid} - type 'help' for help, 'quit' to leave\n"))?;
    }
    let mut lines = io::stdin().lock().lines();
    loop {
        if interactive {
            cli::print_text(PROMPT)?;
        }
        let Some(line) = lines.next() else {
            if interactive {
                // Ctrl+D leaves the cursor after the prompt.
                cli::print_text("\n")?;
            }
            return Ok(());
        };
        let line = line.context("reading standard input")?;
        let command = line.trim();
        match command {
            "" => continue,
            "quit" | "exit" => return Ok(()),
            _ => {}
        }
        // hearthd closes a connection that stays without a request for IDLE_TIMEOUT; a person
        // at the prompt may well pause that long, so come back on a fresh one.
        if last_answer.elapsed() >= IDLE_TIMEOUT / 2 {
            client = cli::connect(crate::BIN)?;
        }
        let request = Request::Vm(VmRequest::Monitor { vmid, command: command.to_owned() });
        let answer = client.call(&request);
        last_answer = Instant::now();
        match answer {
            Ok(Payload::Text(text)) => print_answer(&text, format)?,
            Ok(other) => return Err(cli::unexpected(&other)),
            // At a terminal a mistyped command or a VM that stopped meanwhile should not end the
            // session; a refusal, or an error outside hearthd's answer, ends it anyway.
            Err(e) if interactive && e.kind().is_some_and(|kind| kind != ErrorKind::PermissionDenied) => {
                eprintln!("ERROR: {e}");
            }
            Err(e) => return Err(failed(e.into(), vmid, command)),
        }
    }
}

fn failed(error: anyhow::Error, vmid: Vmid, command: &str) -> anyhow::Error {
    error.context(format!("running '{command}' on the monitor of VM {vmid}"))
}

/// Prints a monitor answer: QEMU ends lines with CR LF, which scripts do not want.
fn print_answer(text: &str, format: OutputFormat) -> anyhow::Result<()> {
    let mut text = text.replace("\r\n", "\n");
    if format.is_json() {
        return cli::print_json(&text, format);
    }
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    cli::print_text(&text)
}
