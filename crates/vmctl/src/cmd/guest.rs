//! `vmctl guest`: the QEMU guest agent of a VM, as `qm guest cmd|exec|exec-status|passwd`.

use std::io::{IsTerminal, Read};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Arg, ArgAction, ArgMatches, Command, value_parser};
use hearth_client::cli::{self, OutputFormat, Subcommand};
use hearth_proto::{Payload, Request, VmRequest};
use serde_json::Value;

/// The guest subcommands, in the order of the help.
pub(crate) const COMMANDS: &[Subcommand] = &[
    Subcommand::new("cmd", cmd_command, cmd_run),
    Subcommand::new("exec", exec_command, exec_run),
    Subcommand::new("exec-status", exec_status_command, exec_status_run),
    Subcommand::new("passwd", passwd_command, passwd_run),
];

pub fn command() -> Command {
    Command::new("guest")
        .about("Use the QEMU guest agent of a virtual machine")
        .long_about(
            "Talk to the QEMU guest agent (qemu-guest-agent) inside a running virtual machine, as \
             qm guest does. The VM needs agent: 1 in its configuration (QEMU then gives it the \
             virtio-serial port org.qemu.guest_agent.0) and the agent running in the guest; an \
             agent that does not answer within 10 seconds is reported as not running.",
        )
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommands(cli::subcommands(COMMANDS))
}

pub fn run(matches: &ArgMatches, _format: OutputFormat) -> anyhow::Result<()> {
    cli::dispatch(COMMANDS, "vmctl guest", matches)
}

fn cmd_command() -> Command {
    Command::new("cmd")
        .about("Run a guest agent command")
        .long_about(
            "Run one guest agent command and print its answer as JSON, as qm guest cmd does. \
             Informational commands (ping, info, get-osinfo, network-get-interfaces, \
             fsfreeze-status, get-time, ...) need VM.GuestAgent.Audit on /vms/<vmid>; \
             fsfreeze-freeze, fsfreeze-thaw and fstrim need VM.GuestAgent.FileSystemMgmt; \
             shutdown and suspend-* need VM.PowerMgmt; VM.GuestAgent.Unrestricted allows all.",
        )
        .arg(cli::vmid_arg("vmid", "The VM whose agent to ask"))
        .arg(
            Arg::new("command")
                .value_name("COMMAND")
                .required(true)
                .value_parser(clap::builder::PossibleValuesParser::new(hearth_proto::agent_commands()))
                .help("The agent command"),
        )
}

/// Prints an agent's JSON answer as qm does: indented (compact with --output-format json).
fn print_answer(text: &str, format: OutputFormat) -> anyhow::Result<()> {
    let value: Value = serde_json::from_str(text).context("the agent's answer is not JSON")?;
    if value.is_null() {
        return Ok(());
    }
    let format = if format == OutputFormat::Json { OutputFormat::Json } else { OutputFormat::JsonPretty };
    cli::print_json(&value, format)
}

fn call_text(request: &Request, what: impl Fn() -> String) -> anyhow::Result<String> {
    let mut client = cli::connect(crate::BIN)?;
    match client.call(request).with_context(&what)? {
        Payload::Text(text) => Ok(text),
        other => Err(cli::unexpected(&other)),
    }
}

fn cmd_run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let command = matches.get_one::<String>("command").cloned().context("missing <command>")?;
    let request = Request::Vm(VmRequest::Agent { vmid, command: command.clone() });
    let text = call_text(&request, || format!("running '{command}' in VM {vmid}"))?;
    print_answer(&text, format)
}

fn exec_command() -> Command {
    Command::new("exec")
        .about("Run a program in the guest")
        .long_about(
            "Run a program inside the guest through the agent, as qm guest exec does: `vmctl \
             guest exec 100 -- ls -l /`. By default vmctl waits until the program has ended \
             (--synchronous 1) or --timeout seconds have passed (default 30) and prints its \
             exit code and output as JSON; with --synchronous 0 it prints the pid at once, for \
             `vmctl guest exec-status`. --pass-stdin 1 hands vmctl's standard input to the \
             program (at most 1 MiB). Needs VM.GuestAgent.Unrestricted on /vms/<vmid>.",
        )
        .arg(cli::vmid_arg("vmid", "The VM to run the program in"))
        .arg(
            Arg::new("synchronous")
                .long("synchronous")
                .value_name("0|1")
                .num_args(0..=1)
                .default_missing_value("1")
                .value_parser(clap::builder::BoolishValueParser::new())
                .help("Wait for the program to end [default: 1]"),
        )
        .arg(
            Arg::new("timeout")
                .long("timeout")
                .value_name("SECONDS")
                .value_parser(value_parser!(u64))
                .help("How long to wait with --synchronous 1 [default: 30]"),
        )
        .arg(cli::flag_arg("pass-stdin", "Give the program vmctl's standard input"))
        .arg(
            Arg::new("extra-args")
                .value_name("COMMAND")
                .num_args(1..)
                .action(ArgAction::Append)
                .required(true)
                .trailing_var_arg(true)
                .allow_hyphen_values(true)
                .help("The program and its arguments, after --"),
        )
}

/// Most input `--pass-stdin` hands on, as qm.
const MAX_INPUT: u64 = 1 << 20;

fn exec_status(vmid: hearth_core::Vmid, pid: i64) -> anyhow::Result<Value> {
    let request = Request::Vm(VmRequest::AgentExecStatus { vmid, pid });
    let text = call_text(&request, || format!("asking VM {vmid} about pid {pid}"))?;
    serde_json::from_str(&text).context("the agent's answer is not JSON")
}

fn exec_run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let command: Vec<String> = matches.get_many::<String>("extra-args").into_iter().flatten().cloned().collect();
    if command.is_empty() {
        bail!("no program given; write it after --, as in: vmctl guest exec {vmid} -- ls /");
    }
    let input_data = if cli::flag(matches, "pass-stdin") {
        if std::io::stdin().is_terminal() {
            eprintln!("enter the program's input, end with Ctrl+D");
        }
        let mut data = String::new();
        std::io::stdin().take(MAX_INPUT + 1).read_to_string(&mut data).context("reading standard input")?;
        if data.len() as u64 > MAX_INPUT {
            bail!("--pass-stdin: the input is larger than 1 MiB");
        }
        Some(data)
    } else {
        None
    };
    let synchronous = matches.get_one::<bool>("synchronous").copied().unwrap_or(true);
    let timeout = Duration::from_secs(matches.get_one::<u64>("timeout").copied().unwrap_or(30));
    let request = Request::Vm(VmRequest::AgentExec { vmid, command: command.clone(), input_data });
    let text = call_text(&request, || format!("running '{}' in VM {vmid}", command.join(" ")))?;
    if !synchronous {
        return print_answer(&text, format);
    }
    let started: Value = serde_json::from_str(&text).context("the agent's answer is not JSON")?;
    let pid = started.get("pid").and_then(Value::as_i64).context("the agent answered no pid")?;
    let deadline = Instant::now() + timeout;
    loop {
        let status = exec_status(vmid, pid)?;
        if status.get("exited").and_then(Value::as_i64) == Some(1) {
            return print_answer(&status.to_string(), format);
        }
        if Instant::now() >= deadline {
            // qm prints what it knows and says the program still runs.
            print_answer(&status.to_string(), format)?;
            bail!("timeout: pid {pid} is still running in VM {vmid} (see vmctl guest exec-status {vmid} {pid})");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn exec_status_command() -> Command {
    Command::new("exec-status")
        .about("Show the state of a program started by guest exec")
        .long_about(
            "Print whether a program started with `vmctl guest exec --synchronous 0` has ended, \
             its exit code and its output, as qm guest exec-status does. Needs \
             VM.GuestAgent.Unrestricted on /vms/<vmid>.",
        )
        .arg(cli::vmid_arg("vmid", "The VM the program runs in"))
        .arg(
            Arg::new("pid").value_name("PID").required(true).value_parser(value_parser!(i64)).help("The program's pid"),
        )
}

fn exec_status_run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let pid = matches.get_one::<i64>("pid").copied().context("missing <pid>")?;
    print_answer(&exec_status(vmid, pid)?.to_string(), format)
}

fn passwd_command() -> Command {
    Command::new("passwd")
        .about("Set a guest user's password")
        .long_about(
            "Set the password of a user inside the guest through the agent, as qm guest passwd \
             does: asked twice on a terminal, else read from the first line of standard input. \
             With --crypted 1 it is already crypt(3)-hashed. Needs VM.GuestAgent.Unrestricted on \
             /vms/<vmid>.",
        )
        .arg(cli::vmid_arg("vmid", "The VM"))
        .arg(Arg::new("username").value_name("USERNAME").required(true).help("The guest user"))
        .arg(cli::flag_arg("crypted", "The password is already crypt(3)-hashed"))
}

fn passwd_run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = cli::required_vmid(matches, "vmid")?;
    let username = matches.get_one::<String>("username").cloned().context("missing <username>")?;
    let password = hearth_client::password::read_new_password()?;
    let request = Request::Vm(VmRequest::AgentPasswd {
        vmid,
        username: username.clone(),
        password,
        crypted: cli::flag(matches, "crypted"),
    });
    cli::run_request(crate::BIN, &request, format, || format!("setting the password of '{username}' in VM {vmid}"))
}
