//! What Hearth's command-line tools share beyond the connection: output formats, aligned tables,
//! JSON, the schema-generated `--<key> <value>` options, Proxmox's option syntax
//! ([`normalize_args`]), task following and exit codes.
//!
//! Exit codes are the same in every tool: 0 success, 1 the operation failed, 2 usage error;
//! a command that runs a program on the caller's behalf (`ctctl exec`) exits with the
//! program's status instead ([`ExitStatus`]).

use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use clap::builder::PossibleValue;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, ValueEnum};
use hearth_core::schema::{Kind, Schema, Scope};
use hearth_core::{GuestKind, Upid, Vmid};
use hearth_proto::{GuestConfigView, Payload, PendingItem, Request, TaskEvent, TaskInfo, TaskState};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::{Client, default_root};

mod getopt;
pub use getopt::normalize_args;
/// Unix seconds as `YYYY-MM-DD HH:MM:SS` in UTC, as every listing prints times.
pub use hearth_core::time::format_utc;

/// How a command prints its result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// Aligned tables and `key: value` lines for people.
    #[default]
    Text,
    /// One line of JSON for scripts.
    Json,
    /// Indented JSON.
    JsonPretty,
}

const OUTPUT_FORMAT: &str = "output-format";

impl ValueEnum for OutputFormat {
    fn value_variants<'a>() -> &'a [Self] {
        &[OutputFormat::Text, OutputFormat::Json, OutputFormat::JsonPretty]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            OutputFormat::Text => PossibleValue::new("text").help("aligned columns and key: value lines"),
            OutputFormat::Json => PossibleValue::new("json").help("compact JSON on one line"),
            OutputFormat::JsonPretty => PossibleValue::new("json-pretty").help("indented JSON"),
        })
    }
}

impl OutputFormat {
    /// The format chosen on the command line; global, so any level of matches knows it.
    pub fn from_matches(matches: &ArgMatches) -> OutputFormat {
        matches.try_get_one::<OutputFormat>(OUTPUT_FORMAT).ok().flatten().copied().unwrap_or_default()
    }

    pub fn is_json(self) -> bool {
        self != OutputFormat::Text
    }
}

/// `--output-format text|json|json-pretty`, accepted by every command of every tool.
pub fn output_format_arg() -> Arg {
    Arg::new(OUTPUT_FORMAT)
        .long(OUTPUT_FORMAT)
        .value_name("FORMAT")
        .value_parser(clap::builder::EnumValueParser::<OutputFormat>::new())
        .default_value("text")
        .global(true)
        .help("Output format")
        .long_help("Output format: 'text' for people, 'json' or 'json-pretty' for scripts; JSON output is stable.")
}

const TOKEN: &str = "token";

/// `--token user@realm!name=SECRET`, accepted by every command of every tool: act as that API
/// token (also `HEARTH_TOKEN`).
pub fn token_arg() -> Arg {
    Arg::new(TOKEN)
        .long(TOKEN)
        .value_name("TOKEN")
        .global(true)
        .help("Act as an API token: user@realm!name=SECRET")
        .long_help(
            "Authenticate as an API token, user@realm!name=SECRET, with the token's rights instead of \
             your own (also taken from HEARTH_TOKEN; prefer the variable, since command lines are \
             visible to other users).",
        )
}

/// Standard output went away (`vmctl list | head -1`); not a failure of the command.
#[derive(Debug, thiserror::Error)]
#[error("standard output is closed")]
struct StdoutClosed;

/// Ends a command with this exit status and no message: a program run on the caller's behalf
/// (`ctctl exec`) failed, and said why itself.
#[derive(Debug, thiserror::Error)]
#[error("the program exited with status {0}")]
pub struct ExitStatus(pub u8);

/// The outcome of a command whose exit status is that of a program it ran: `Ok` for 0, else
/// an [`ExitStatus`] error; a status outside 1..=255 becomes 255.
pub fn exit_with(code: i32) -> anyhow::Result<()> {
    if code == 0 {
        return Ok(());
    }
    Err(ExitStatus(u8::try_from(code).ok().filter(|&c| c != 0).unwrap_or(u8::MAX)).into())
}

/// Writes text to standard output as is.
pub fn print_text(text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        other => other.context("writing to standard output"),
    }
}

/// Prints any value as JSON, compact or pretty, followed by a newline.
pub fn print_json<T: Serialize + ?Sized>(value: &T, format: OutputFormat) -> anyhow::Result<()> {
    let mut text = match format {
        OutputFormat::JsonPretty => serde_json::to_string_pretty(value),
        _ => serde_json::to_string(value),
    }
    .context("encoding JSON")?;
    text.push('\n');
    print_text(&text)
}

/// How a table column lines up its cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    /// For numbers.
    Right,
}

/// A text table: a header row, then rows, every column padded to its widest cell and separated by
/// one space, as `qm list` prints.
#[derive(Debug)]
pub struct Table {
    columns: Vec<(String, Align)>,
    rows: Vec<(Vec<String>, bool)>,
}

impl Table {
    pub fn new(columns: &[(&str, Align)]) -> Table {
        Table { columns: columns.iter().map(|(h, a)| ((*h).to_owned(), *a)).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push((cells, false));
    }

    /// A row whose last cell runs on over the remaining columns without widening them, for
    /// messages such as a guest whose configuration cannot be read.
    pub fn row_spanning(&mut self, cells: Vec<String>) {
        self.rows.push((cells, true));
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.columns.iter().map(|(h, _)| h.chars().count()).collect();
        for (cells, spanning) in &self.rows {
            let sized = if *spanning { &cells[..cells.len().saturating_sub(1)] } else { &cells[..] };
            for (width, cell) in widths.iter_mut().zip(sized) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let header: Vec<String> = self.columns.iter().map(|(h, _)| h.clone()).collect();
        // Every line written in place into one buffer: listings of thousands of guests.
        let line_len = widths.iter().sum::<usize>() + widths.len();
        let mut out = String::with_capacity(line_len * (self.rows.len() + 1));
        self.push_line(&mut out, &header, false, &widths);
        for (cells, spanning) in &self.rows {
            self.push_line(&mut out, cells, *spanning, &widths);
        }
        out
    }

    fn push_line(&self, out: &mut String, cells: &[String], spanning: bool, widths: &[usize]) {
        let start = out.len();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            let width = widths.get(i).copied().unwrap_or(0);
            let _ = match self.columns.get(i) {
                _ if spanning && i + 1 == cells.len() => write!(out, "{cell}"),
                Some((_, Align::Right)) => write!(out, "{cell:>width$}"),
                _ => write!(out, "{cell:<width$}"),
            };
        }
        let kept = out[start..].trim_end().len();
        out.truncate(start + kept);
        out.push('\n');
    }

    pub fn print(&self) -> anyhow::Result<()> {
        print_text(&self.render())
    }
}

/// One `--<key> <value>` option for every concrete user-settable key of the guest schema.
///
/// Indexed keys get one option per index; only index 0 is listed in help, naming the range.
pub fn guest_config_args(kind: GuestKind) -> Vec<Arg> {
    let mut args = schema_args(kind.schema());
    if kind == GuestKind::Vm {
        args.push(
            Arg::new("cdrom")
                .long("cdrom")
                .value_name("VOLUME")
                .help("An alias for --ide2 <VOLUME>,media=cdrom, as qm takes it")
                .help_heading("Configuration"),
        );
    }
    args
}

/// One `--<key> <value>` option for every user-settable key of `schema`.
pub fn schema_args(schema: &'static Schema) -> Vec<Arg> {
    let mut args = Vec::new();
    for def in schema.keys.iter().filter(|d| d.scope == Scope::User) {
        let mut help = format!("{} {}", def.help, def.value_hint());
        if let Some(max) = def.max_index {
            let _ = write!(help, " (--{0}0 to --{0}{max})", def.name);
        }
        for (i, name) in def.names().into_iter().enumerate() {
            let arg = Arg::new(name.clone())
                .long(name)
                .value_name("VALUE")
                .help(help.clone())
                .help_heading("Configuration")
                .hide(i > 0);
            args.push(match def.kind {
                // A switch as in Proxmox: `--onboot` alone means 1.
                Kind::Bool => arg.num_args(0..=1).default_missing_value("1"),
                // Values may start with '-' (`--args "-kernel …"`, negative numbers).
                _ => arg.allow_hyphen_values(true),
            });
        }
    }
    args
}

/// The configuration options given on the command line, in the order the user typed them.
/// Values are passed on untouched: hearthd validates them.
///
/// For VMs, qm's `--cdrom <volume>` becomes `ide2: <volume>,media=cdrom` where it was typed.
pub fn guest_config_options(kind: GuestKind, matches: &ArgMatches) -> Vec<(String, String)> {
    let mut options = schema_options(kind.schema(), matches);
    if kind != GuestKind::Vm {
        return options;
    }
    let cdrom = matches.try_get_one::<String>("cdrom").ok().flatten().zip(matches.index_of("cdrom"));
    if let Some((volume, index)) = cdrom {
        let before = options.iter().filter(|(key, _)| matches.index_of(key).is_some_and(|i| i < index)).count();
        options.insert(before, ("ide2".to_owned(), format!("{volume},media=cdrom")));
    }
    options
}

/// Reads the files qm's CLI takes in place of a VM key's value: `--sshkeys FILE` (also
/// `--sshkey`, a prefix) sends the public keys in the file, URL-encoded as Proxmox stores them.
pub fn read_vm_option_files(options: Vec<(String, String)>) -> anyhow::Result<Vec<(String, String)>> {
    options
        .into_iter()
        .map(|(key, value)| {
            if key != "sshkeys" {
                return Ok((key, value));
            }
            let text = std::fs::read_to_string(&value)
                .with_context(|| format!("--sshkeys: cannot read the public key file {value}"))?;
            Ok((key, hearth_core::cloudinit::uri_escape(&text)))
        })
        .collect()
}

/// The [`schema_args`] options given on the command line, in the order the user typed them.
pub fn schema_options(schema: &Schema, matches: &ArgMatches) -> Vec<(String, String)> {
    let mut given: Vec<(usize, String, String)> = matches
        .ids()
        .map(|id| id.as_str())
        .filter(|id| schema.user_key(id).is_ok())
        .filter(|id| matches.value_source(id) == Some(ValueSource::CommandLine))
        .filter_map(|id| {
            let index = matches.index_of(id)?;
            let value = matches.try_get_one::<String>(id).ok().flatten()?;
            Some((index, id.to_owned(), value.clone()))
        })
        .collect();
    given.sort_by_key(|(index, _, _)| *index);
    given.into_iter().map(|(_, key, value)| (key, value)).collect()
}

/// An option that is a switch in Proxmox's style: `--full` alone means 1, `--full 0` and
/// `--full 1` (and yes/no, true/false) are accepted too.
pub fn flag_arg(name: &'static str, help: impl clap::builder::IntoResettable<clap::builder::StyledStr>) -> Arg {
    Arg::new(name)
        .long(name)
        .value_name("0|1")
        .num_args(0..=1)
        .default_missing_value("1")
        .value_parser(clap::builder::BoolishValueParser::new())
        .help(help)
}

/// Whether a [`flag_arg`] was given and not as 0 (or no, false, off).
pub fn flag(matches: &ArgMatches, name: &str) -> bool {
    flag_value(matches, name).unwrap_or(false)
}

/// The value given to a [`flag_arg`], `None` if it was not given at all.
pub fn flag_value(matches: &ArgMatches, name: &str) -> Option<bool> {
    matches.try_get_one::<bool>(name).ok().flatten().copied()
}

/// An option taking configuration keys (`--delete`, `--revert`), repeatable, each value a list
/// separated by `,`, `;` or spaces.
pub fn key_list_arg(name: &'static str, help: &'static str) -> Arg {
    Arg::new(name).long(name).value_name("KEYS").action(ArgAction::Append).help(help)
}

/// The keys given to a [`key_list_arg`], split and in order.
pub fn key_list(matches: &ArgMatches, name: &str) -> Vec<String> {
    let values = matches.try_get_many::<String>(name).ok().flatten().into_iter().flatten();
    values
        .flat_map(|v| v.split(|c: char| c == ',' || c == ';' || c.is_whitespace()))
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A required positional guest id, checked while parsing (100..999999999).
pub fn vmid_arg(name: &'static str, help: &'static str) -> Arg {
    Arg::new(name)
        .value_name(name.to_ascii_uppercase())
        .required(true)
        .value_parser(|s: &str| s.parse::<Vmid>())
        .help(help)
}

/// The guest id parsed by a [`vmid_arg`] or an optional `--vmid`.
pub fn get_vmid(matches: &ArgMatches, name: &str) -> Option<Vmid> {
    matches.try_get_one::<Vmid>(name).ok().flatten().copied()
}

/// The guest id parsed by a [`vmid_arg`], which clap makes sure is there.
pub fn required_vmid(matches: &ArgMatches, name: &str) -> anyhow::Result<Vmid> {
    get_vmid(matches, name).with_context(|| format!("missing <{name}>"))
}

/// A required positional task id, checked while parsing.
pub fn upid_arg(name: &'static str, help: &'static str) -> Arg {
    Arg::new(name).value_name("UPID").required(true).value_parser(|s: &str| s.parse::<Upid>()).help(help)
}

/// The task id parsed by an [`upid_arg`].
pub fn get_upid(matches: &ArgMatches, name: &str) -> anyhow::Result<Upid> {
    matches.try_get_one::<Upid>(name).ok().flatten().cloned().with_context(|| format!("missing <{name}>"))
}

/// Connects to the hearthd of `$HEARTH_ROOT` (or `/`) as `<bin> <version>`.
pub fn connect(bin: &str) -> anyhow::Result<Client> {
    Ok(Client::connect(&default_root(), &format!("{bin} {}", env!("CARGO_PKG_VERSION")))?)
}

/// The error for an answer of the wrong type; a hearthd that does not match this client.
pub fn unexpected(payload: &Payload) -> anyhow::Error {
    anyhow!("unexpected answer from hearthd: {payload:?}")
}

/// Sends a request that starts a task and follows the task to its end.
pub fn run_task(client: &mut Client, request: &Request, format: OutputFormat) -> anyhow::Result<TaskInfo> {
    match client.call(request)? {
        Payload::Task(upid) => follow_task(client, &upid, format),
        other => Err(unexpected(&other)),
    }
}

/// Sends a request that runs as a task, or that hearthd does at once, and waits for the end:
/// a task's log is printed as it arrives (JSON: its final status); an immediate answer prints
/// nothing. `what` names the operation in errors ("starting CT 200").
pub fn run_request(
    bin: &str,
    request: &Request,
    format: OutputFormat,
    what: impl Fn() -> String,
) -> anyhow::Result<()> {
    let mut client = connect(bin)?;
    match client.call(request).with_context(&what)? {
        Payload::Task(upid) => follow_task(&mut client, &upid, format).with_context(what).map(drop),
        Payload::Empty => Ok(()),
        other => Err(unexpected(&other)),
    }
}

/// How a subcommand runs once clap has parsed its arguments.
pub type Run = fn(&ArgMatches, OutputFormat) -> anyhow::Result<()>;

/// One subcommand of a tool: how to build its clap `Command` and how to run it. Each tool
/// (and each group of subcommands, such as `vmctl disk`) keeps one table of these, which both
/// builds its command line ([`subcommands`]) and dispatches ([`dispatch`]), so the list of
/// subcommands and what runs them cannot disagree.
#[derive(Clone, Copy, Debug)]
pub struct Subcommand {
    /// The subcommand's name as its command has it: dispatch finds the entry by it without
    /// building every command again ([`check_table`] proves the two agree).
    pub name: &'static str,
    pub command: fn() -> Command,
    pub run: Run,
}

impl Subcommand {
    pub const fn new(name: &'static str, command: fn() -> Command, run: Run) -> Subcommand {
        Subcommand { name, command, run }
    }
}

/// Panics unless every entry of `table` is named as the command it builds, and no name is
/// taken twice: the check each CLI's tests run on its tables.
pub fn check_table(table: &[Subcommand]) {
    let mut seen = std::collections::BTreeSet::new();
    for entry in table {
        assert_eq!((entry.command)().get_name(), entry.name, "a table entry's name and its command's differ");
        assert!(seen.insert(entry.name), "'{}' is in the table twice", entry.name);
    }
}

/// The top-level command of a tool named `bin` with the subcommands of `table`: one is
/// required (no arguments print the help), and `--output-format` and `--token` are accepted
/// everywhere. The tool adds its version and help.
pub fn tool_command(bin: &'static str, table: &[Subcommand]) -> Command {
    // A command line naming its subcommand first builds only that one (see [`run_cli`]): the
    // other subcommands, hundreds of arguments among them, cost start-up time for nothing.
    let only = ONLY_SUBCOMMAND.with(|only| only.borrow_mut().take());
    let only = only.filter(|name| table.iter().any(|entry| entry.name == name));
    let entries = table.iter().filter(|entry| only.as_deref().is_none_or(|name| entry.name == name));
    Command::new(bin)
        .subcommand_required(true)
        .arg_required_else_help(true)
        .arg(output_format_arg())
        .arg(token_arg())
        .subcommands(entries.map(|entry| (entry.command)()))
}

thread_local! {
    /// The subcommand [`run_cli`] found first on the command line, for the next
    /// [`tool_command`] to build alone.
    static ONLY_SUBCOMMAND: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// The clap commands of a table, in its order (which is the order of the help).
pub fn subcommands(table: &[Subcommand]) -> impl Iterator<Item = Command> + '_ {
    table.iter().map(|entry| (entry.command)())
}

/// Runs the entry of `table` that `matches` selected. `usage` names the command whose help
/// lists the table ("vmctl", "vmctl disk"), for the error when none was given.
pub fn dispatch(table: &[Subcommand], usage: &str, matches: &ArgMatches) -> anyhow::Result<()> {
    let Some((name, sub)) = matches.subcommand() else { bail!("no command given; see `{usage} --help`") };
    // clap reports the subcommand's own name even when an alias was typed.
    let entry = table.iter().find(|entry| entry.name == name);
    let Some(entry) = entry else { bail!("unknown command '{name}'; see `{usage} --help`") };
    (entry.run)(sub, OutputFormat::from_matches(sub))
}

/// Follows a task. Text: log lines go to stdout as they arrive, with a progress bar (bytes and
/// throughput) on stderr if that is a terminal; without one, progress is not printed at all. JSON: nothing until the end, then the [`TaskInfo`]. A failed task fails
/// the command with the task's message; warnings do not.
pub fn follow_task(client: &mut Client, upid: &Upid, format: OutputFormat) -> anyhow::Result<TaskInfo> {
    follow_task_to(client, upid, format, LogTo::Stdout)
}

/// Where [`follow_task_to`] prints a task's log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogTo {
    Stdout,
    /// When standard output carries data (`storectl vzdump --stdout`).
    Stderr,
    /// Quiet (`--quiet`): only a failure is reported.
    Nowhere,
}

/// [`follow_task`], printing the log lines to `to`.
pub fn follow_task_to(client: &mut Client, upid: &Upid, format: OutputFormat, to: LogTo) -> anyhow::Result<TaskInfo> {
    let text = format == OutputFormat::Text && to != LogTo::Nowhere;
    let show_bar = text && io::stderr().is_terminal();
    let mut bar: Option<ProgressBar> = None;
    let info = client
        .follow(upid, |event| match event {
            TaskEvent::Log(line) if text => {
                // A closed stdout must not stop us from learning how the task ended.
                let print = || {
                    let _ = match to {
                        LogTo::Stderr => writeln!(io::stderr(), "{line}"),
                        _ => writeln!(io::stdout(), "{line}"),
                    };
                };
                match &bar {
                    Some(bar) => bar.suspend(print),
                    None => print(),
                }
            }
            TaskEvent::Progress { done, total } if show_bar => {
                let bar = bar.get_or_insert_with(|| progress_bar(*total));
                bar.set_length(*total);
                bar.set_position(*done);
            }
            _ => {}
        })
        .with_context(|| format!("following task {upid}"))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if format.is_json() {
        print_json(&info, format)?;
    }
    match &info.state {
        TaskState::Ok | TaskState::Warnings { .. } => Ok(info),
        TaskState::Error { message } => Err(anyhow!("{message}")),
        TaskState::Unknown => {
            bail!("task {upid} ended without a final status; see `clusterctl task log {upid}`")
        }
        TaskState::Running => {
            bail!("hearthd stopped reporting task {upid} while it was still running")
        }
    }
}

/// The bar of a task's progress, which tasks report in bytes (backups and restores): bytes done
/// of the total, throughput, percentage and time.
pub const PROGRESS_TEMPLATE: &str =
    "{wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {percent:>3}% {elapsed_precise}";

fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(PROGRESS_TEMPLATE) {
        bar.set_style(style);
    }
    bar
}

/// Parses the arguments in Proxmox's syntax ([`normalize_args`]), runs the command and turns
/// the outcome into an exit code: help and version 0, usage errors 2, failures 1 with the error
/// on stderr ([`crate::failure`]: a `<name>: <error chain>` line, or a JSON error document under
/// `--output-format json`), an [`ExitStatus`] its own status without a message.
pub fn run_cli(
    name: &str,
    command: impl FnOnce() -> Command,
    run: impl FnOnce(&ArgMatches) -> anyhow::Result<()>,
) -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `vmctl list …` needs only `list`'s arguments; a command line starting with an option
    // (`--output-format json list`, `--help`) or `help` gets the whole tree.
    let first = args.get(1).and_then(|a| a.to_str()).filter(|a| !a.starts_with('-') && *a != "help");
    ONLY_SUBCOMMAND.with(|only| *only.borrow_mut() = first.map(str::to_owned));
    let mut command = command();
    // Arguments in clap's own spelling parse at once; only one-dash long options, or a command
    // line clap does not know (a prefix such as `--mem`), pay for the rewrite.
    let parsed = if has_one_dash_long_option(&args) {
        normalize_args(&command, args).and_then(|args| command.try_get_matches_from_mut(args))
    } else {
        match command.try_get_matches_from_mut(args.clone()) {
            Err(e) if e.kind() == clap::error::ErrorKind::UnknownArgument => {
                normalize_args(&command, args).and_then(|args| command.try_get_matches_from_mut(args))
            }
            parsed => parsed,
        }
    };
    let matches = match parsed {
        Ok(matches) => matches,
        Err(e) => {
            crate::failure::report_usage(&e, std::env::args_os());
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    if let Ok(Some(token)) = matches.try_get_one::<String>(TOKEN) {
        crate::use_token(token);
    }
    match run(&matches) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<StdoutClosed>().is_some() => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<ExitStatus>().is_some() => {
            ExitCode::from(e.downcast_ref::<ExitStatus>().map_or(1, |status| status.0))
        }
        Err(e) => {
            crate::failure::report(name, &e, OutputFormat::from_matches(&matches));
            ExitCode::FAILURE
        }
    }
}

/// Whether a word before `--` looks like a one-dash long option (`-onboot`), which clap alone
/// would read as short options (`-o -n …`, or `-h` for help).
fn has_one_dash_long_option(args: &[std::ffi::OsString]) -> bool {
    args.iter().skip(1).filter_map(|a| a.to_str()).take_while(|a| *a != "--").any(|a| {
        a.strip_prefix('-').is_some_and(|rest| rest.len() >= 2 && rest.bytes().take(2).all(|b| b.is_ascii_alphabetic()))
    })
}

/// Every field of `value` that its JSON form has, as `key: value` lines sorted by key, strings
/// unquoted: `qm status --verbose` and `pct status --verbose`. Fields left out of the JSON
/// (unset options) are left out here too.
pub fn render_fields<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<String> {
    let fields: std::collections::BTreeMap<String, serde_json::Value> =
        serde_json::from_value(serde_json::to_value(value).context("encoding JSON")?).context("encoding JSON")?;
    let mut out = String::new();
    for (key, value) in fields {
        let value = match value {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        let _ = writeln!(out, "{key}: {value}");
    }
    Ok(out)
}

/// Escapes text for one-line display as Proxmox does for descriptions: control characters,
/// bytes above ASCII, `:` and `%` become `%XX`.
pub fn encode_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if !(0x20..=0x7e).contains(&b) || b == b':' || b == b'%' {
            let _ = write!(out, "%{b:02X}");
        } else {
            out.push(char::from(b));
        }
    }
    out
}

fn display_value(key: &str, value: &serde_json::Value) -> String {
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Bool(b) => u8::from(*b).to_string(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    if key == "description" { encode_text(&text) } else { text }
}

/// `config` as `qm config` prints it: `key: value` lines sorted by key, description first.
pub fn render_guest_config(view: &GuestConfigView) -> String {
    let description = view.config.get_key_value("description");
    let rest = view.config.iter().filter(|(k, _)| *k != "description");
    let mut out = String::new();
    for (key, value) in description.into_iter().chain(rest) {
        let _ = writeln!(out, "{key}: {}", display_value(key, value));
    }
    out
}

/// Prints a configuration; JSON is the keys plus `digest`, as the REST API will return it.
pub fn print_guest_config(view: &GuestConfigView, format: OutputFormat) -> anyhow::Result<()> {
    if !format.is_json() {
        return print_text(&render_guest_config(view));
    }
    let mut object: serde_json::Map<String, serde_json::Value> = view.config.clone().into_iter().collect();
    object.insert("digest".into(), view.digest.clone().into());
    print_json(&object, format)
}

/// `pending` as `qm pending` prints it: `cur`, `new` and `del` lines sorted by key.
pub fn render_pending(items: &[PendingItem]) -> String {
    let mut items: Vec<&PendingItem> = items.iter().collect();
    items.sort_by(|a, b| a.key.cmp(&b.key));
    let mut out = String::new();
    for item in items {
        let key = &item.key;
        let value = item.value.as_ref().map(|v| display_value(key, v));
        let pending = item.pending.as_ref().map(|v| display_value(key, v));
        match (value, pending) {
            (Some(v), _) if item.delete => {
                let _ = writeln!(out, "del {key}: {v}");
            }
            (Some(v), p) => {
                let _ = writeln!(out, "cur {key}: {v}");
                if let Some(p) = p {
                    let _ = writeln!(out, "new {key}: {p}");
                }
            }
            (None, Some(p)) => {
                let _ = writeln!(out, "new {key}: {p}");
            }
            (None, None) => {}
        }
    }
    out
}

/// Prints pending changes, as text or as the list of items.
pub fn print_pending(items: &[PendingItem], format: OutputFormat) -> anyhow::Result<()> {
    if format.is_json() { print_json(items, format) } else { print_text(&render_pending(items)) }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_one_dash_long_options_take_the_slow_path() {
        let has =
            |args: &[&str]| has_one_dash_long_option(&args.iter().map(std::ffi::OsString::from).collect::<Vec<_>>());
        assert!(has(&["vmctl", "set", "101", "-onboot", "1"]));
        assert!(has(&["ctctl", "set", "100", "-hookscript", "x"]));
        assert!(!has(&["vmctl", "set", "101", "--onboot", "1", "--balloon", "-1"]));
        assert!(!has(&["vmctl", "list", "-h"]));
        assert!(!has(&["ctctl", "exec", "100", "--", "ls", "-la"]));
    }

    #[test]
    fn one_table_builds_and_dispatches() {
        const TABLE: &[Subcommand] = &[
            Subcommand::new("first", || Command::new("first").visible_alias("one"), |_, _| bail!("ran first")),
            Subcommand::new("second", || Command::new("second"), |_, format| bail!("ran second as {format:?}")),
        ];
        let tool = || tool_command("tool", TABLE);
        tool().debug_assert();
        check_table(TABLE);
        let names: Vec<String> = tool().get_subcommands().map(|c| c.get_name().to_owned()).collect();
        assert_eq!(names, ["first", "second"]);
        let ran = |args: &[&str]| {
            let matches = tool().try_get_matches_from(std::iter::once("tool").chain(args.iter().copied())).unwrap();
            dispatch(TABLE, "tool", &matches).unwrap_err().to_string()
        };
        assert_eq!(ran(&["first"]), "ran first");
        assert_eq!(ran(&["one"]), "ran first");
        assert_eq!(ran(&["second", "--output-format", "json"]), "ran second as Json");
        assert_eq!(tool().try_get_matches_from(["tool"]).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn the_progress_bar_shows_bytes_and_throughput() {
        assert!(ProgressStyle::with_template(PROGRESS_TEMPLATE).is_ok());
        assert!(PROGRESS_TEMPLATE.contains("bytes_per_sec"));
        assert!(PROGRESS_TEMPLATE.contains("{binary_bytes}/{binary_total_bytes}"));
    }

    fn parse(kind: GuestKind, args: &[&str]) -> ArgMatches {
        Command::new("t")
            .arg(output_format_arg())
            .arg(key_list_arg("delete", "keys to delete"))
            .args(guest_config_args(kind))
            .try_get_matches_from(std::iter::once("t").chain(args.iter().copied()))
            .unwrap()
    }

    #[test]
    fn config_options_keep_command_line_order() {
        let m = parse(
            GuestKind::Vm,
            &["--scsi30", "local:8", "--memory", "2048", "--net0=virtio", "--delete", "a,b;c d", "--delete", "e"],
        );
        let expected = [("scsi30", "local:8"), ("memory", "2048"), ("net0", "virtio")];
        assert_eq!(guest_config_options(GuestKind::Vm, &m), expected.map(|(k, v)| (k.to_owned(), v.to_owned())));
        assert_eq!(key_list(&m, "delete"), ["a", "b", "c", "d", "e"]);
        assert_eq!(OutputFormat::from_matches(&m), OutputFormat::Text);
        let m = parse(GuestKind::Ct, &["--mp255", "x", "--output-format", "json-pretty"]);
        assert_eq!(guest_config_options(GuestKind::Ct, &m), [("mp255".to_owned(), "x".to_owned())]);
        assert_eq!(OutputFormat::from_matches(&m), OutputFormat::JsonPretty);
        // Internal keys are not options.
        let err =
            Command::new("t").args(guest_config_args(GuestKind::Vm)).try_get_matches_from(["t", "--unused0", "x"]);
        assert_eq!(err.unwrap_err().exit_code(), 2);
    }

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new(&[("VMID", Align::Right), ("NAME", Align::Left), ("MEM", Align::Right)]);
        t.row(vec!["100".into(), "web".into(), "2048".into()]);
        t.row(vec!["1000".into(), "database".into(), "512".into()]);
        t.row_spanning(vec!["101".into(), "error: a message far wider than the name column".into()]);
        assert_eq!(
            t.render(),
            "VMID NAME      MEM\n 100 web      2048\n1000 database  512\n 101 error: a message far wider than the name column\n"
        );
    }

    #[test]
    fn config_and_pending_text() {
        let view = GuestConfigView {
            vmid: Vmid::new(100).unwrap(),
            digest: "abc".into(),
            config: [("memory", json!(2048)), ("description", json!("two\nlines: 100%")), ("onboot", json!(true))]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        };
        assert_eq!(render_guest_config(&view), "description: two%0Alines%3A 100%25\nmemory: 2048\nonboot: 1\n");
        let item = |key: &str, value: Option<serde_json::Value>, pending: Option<serde_json::Value>, delete| {
            PendingItem { key: key.into(), value, pending, delete }
        };
        let items = [
            item("name", None, Some(json!("web")), false),
            item("cores", Some(json!(1)), Some(json!(2)), false),
            item("tags", Some(json!("a")), None, true),
            item("memory", Some(json!(512)), None, false),
        ];
        assert_eq!(render_pending(&items), "cur cores: 1\nnew cores: 2\ncur memory: 512\nnew name: web\ndel tags: a\n");
    }

    #[test]
    fn exit_statuses_pass_through() {
        assert!(exit_with(0).is_ok());
        let status = |code| exit_with(code).unwrap_err().downcast_ref::<ExitStatus>().unwrap().0;
        assert_eq!(status(1), 1);
        assert_eq!(status(2), 2);
        assert_eq!(status(137), 137);
        assert_eq!(status(255), 255);
        assert_eq!(status(256), 255);
        assert_eq!(status(-1), 255);
    }

    #[test]
    fn utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(format_utc(1_716_560_368), "2024-05-24 14:19:28");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(format_utc(-1), "1969-12-31 23:59:59");
    }

    #[test]
    fn vmid_errors_name_the_argument() {
        let cmd = Command::new("t").arg(vmid_arg("vmid", "the VM"));
        let err = cmd.try_get_matches_from(["t", "42"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(text.contains("<VMID>") && text.contains("100 to 999999999"), "{text}");
    }
}
