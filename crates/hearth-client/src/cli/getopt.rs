//! Option syntax as Proxmox's command-line tools accept it (Perl's Getopt::Long): `-onboot 1`
//! as well as `--onboot 1`, and any unambiguous prefix of a long option (`--mem` for
//! `--memory`). clap knows neither, so the command line is rewritten into clap's syntax before
//! clap sees it, against the argument table of the (sub)command the positional words select.
//!
//! Only option names are rewritten: a token that is the value of an option (`--args -drive …`),
//! a negative number, anything after `--` and single-letter options (`-h`, `-V`) are kept as
//! typed. A one-dash word is always a long option, so `-hookscript` can never become `-h`
//! (help) followed by garbage.

use std::ffi::OsString;

use clap::error::ErrorKind;
use clap::{Arg, Command};

/// How many candidates an ambiguous-prefix error names before it says how many more there are.
const SHOWN_CANDIDATES: usize = 12;

/// Rewrites `args` (program name first) for `command`: `-name` and `--prefix` become
/// `--fullname`. An ambiguous prefix is a usage error naming the candidates.
pub fn normalize_args(
    command: &Command,
    args: impl IntoIterator<Item = impl Into<OsString>>,
) -> Result<Vec<OsString>, clap::Error> {
    // Building propagates global options (`--output-format`) and adds `--help` and
    // `--version`, so each subcommand's table is complete.
    let mut root = command.clone();
    root.build();
    let mut args = args.into_iter().map(Into::into);
    let mut out: Vec<OsString> = args.next().into_iter().collect();
    let mut current = &root;
    // Once a word is not a subcommand, later words are positionals too.
    let mut in_positionals = false;
    let mut args = args.peekable();
    while let Some(token) = args.next() {
        let Some(text) = token.to_str().map(str::to_owned) else {
            out.push(token);
            continue;
        };
        if text == "--" {
            out.push(token);
            out.extend(args);
            break;
        }
        let Some((name, inline_value)) = option_name(&text) else {
            if !in_positionals {
                match current.find_subcommand(&text) {
                    Some(sub) => current = sub,
                    None => in_positionals = true,
                }
            }
            out.push(token);
            continue;
        };
        let arg = match resolve(current, name) {
            Resolved::Arg(arg) => arg,
            Resolved::Ambiguous(candidates) => return Err(ambiguous(current, &text, &candidates)),
            Resolved::Unknown => {
                // Leave it to clap to report, but as a long option: a one-dash word is never a
                // bundle of short ones.
                out.push(format!("--{}", text.trim_start_matches('-')).into());
                continue;
            }
        };
        let long = arg.get_long().expect("resolve only returns arguments with a long name");
        out.push(match inline_value {
            Some(value) => format!("--{long}={value}").into(),
            None => format!("--{long}").into(),
        });
        if inline_value.is_some() || !arg.get_action().takes_values() {
            continue;
        }
        // The tokens the option takes as its values pass untouched, whatever they look like.
        let range = arg.get_num_args().unwrap_or_default();
        for _ in 0..range.min_values() {
            out.extend(args.next());
        }
        for _ in range.min_values()..range.max_values() {
            match args.peek().and_then(|next| next.to_str()) {
                Some(next) if !next.starts_with('-') || arg.is_allow_hyphen_values_set() => {
                    out.extend(args.next());
                }
                _ => break,
            }
        }
    }
    Ok(out)
}

/// The name of an option token and its `=value`, or `None` for a positional, a value such as
/// a negative number, or a single-letter option, which clap handles itself.
fn option_name(text: &str) -> Option<(&str, Option<&str>)> {
    let body = text.strip_prefix("--").or_else(|| text.strip_prefix('-'))?;
    if body.is_empty() || (!text.starts_with("--") && body.chars().count() == 1) {
        return None;
    }
    if body.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    Some(match body.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (body, None),
    })
}

enum Resolved<'a> {
    Arg(&'a Arg),
    /// The long names that begin with the prefix, sorted.
    Ambiguous(Vec<String>),
    Unknown,
}

/// The option `name` means in `command`: a long name or alias spelled out, else the only one
/// it is a prefix of.
fn resolve<'a>(command: &'a Command, name: &str) -> Resolved<'a> {
    let names = |arg: &'a Arg| arg.get_long().into_iter().chain(arg.get_all_aliases().unwrap_or_default());
    let with_long = || command.get_arguments().filter(|arg| arg.get_long().is_some());
    if let Some(arg) = with_long().find(|arg| names(arg).any(|n| n == name)) {
        return Resolved::Arg(arg);
    }
    let matching: Vec<&Arg> = with_long().filter(|arg| names(arg).any(|n| n.starts_with(name))).collect();
    match matching.as_slice() {
        [] => Resolved::Unknown,
        [arg] => Resolved::Arg(arg),
        several => {
            let mut candidates: Vec<String> =
                several.iter().filter_map(|arg| arg.get_long()).map(|long| format!("--{long}")).collect();
            candidates.sort();
            Resolved::Ambiguous(candidates)
        }
    }
}

fn ambiguous(command: &Command, typed: &str, candidates: &[String]) -> clap::Error {
    let mut list = candidates.iter().take(SHOWN_CANDIDATES).cloned().collect::<Vec<_>>().join(", ");
    if candidates.len() > SHOWN_CANDIDATES {
        list.push_str(&format!(" and {} more", candidates.len() - SHOWN_CANDIDATES));
    }
    let mut command = command.clone();
    command.error(ErrorKind::UnknownArgument, format!("option '{typed}' is ambiguous: it could be {list}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;
    use crate::cli::{Subcommand, flag_arg, key_list_arg, schema_args, tool_command};
    use hearth_core::GuestKind;

    fn tool() -> Command {
        const TABLE: &[Subcommand] = &[
            Subcommand::new(
                "set",
                || {
                    Command::new("set")
                        .arg(Arg::new("vmid").required(true))
                        .arg(key_list_arg("delete", "keys"))
                        .args(schema_args(GuestKind::Vm.schema()))
                },
                |_, _| Ok(()),
            ),
            Subcommand::new(
                "status",
                || Command::new("status").arg(Arg::new("vmid").required(true)).arg(flag_arg("verbose", "more")),
                |_, _| Ok(()),
            ),
            Subcommand::new(
                "acl",
                || {
                    Command::new("acl").subcommand(
                        Command::new("modify")
                            .arg(Arg::new("path").required(true))
                            .arg(Arg::new("groups").long("groups").alias("group"))
                            .arg(Arg::new("users").long("users"))
                            .arg(Arg::new("roles").long("roles").alias("role"))
                            .arg(flag_arg("delete", "revoke")),
                    )
                },
                |_, _| Ok(()),
            ),
        ];
        tool_command("tool", TABLE)
    }

    /// `args` (after the program name) as the normaliser rewrites them, or its error.
    fn check(args: &str, expected: &str) {
        let argv = std::iter::once("tool").chain(args.split_whitespace());
        let got = match normalize_args(&tool(), argv) {
            Ok(out) => out[1..].iter().map(|s| s.to_str().unwrap()).collect::<Vec<_>>().join(" "),
            Err(e) => format!("error {}: {}", e.exit_code(), e.to_string().lines().next().unwrap()),
        };
        assert_eq!(got, expected, "for {args:?}");
    }

    #[test]
    fn options_are_rewritten_as_getopt_long_reads_them() {
        let cases = [
            // One dash, full names, for the subcommand's own options and global ones.
            ("set 101 -onboot 1", "set 101 --onboot 1"),
            ("set 101 -onboot=1", "set 101 --onboot=1"),
            ("set 101 -output-format json", "set 101 --output-format json"),
            ("-output-format json set 101", "--output-format json set 101"),
            ("acl modify / -group admin -role PVEAdmin", "acl modify / --groups admin --roles PVEAdmin"),
            // Unambiguous prefixes, with one dash or two.
            ("set 101 --mem 512", "set 101 --memory 512"),
            ("set 101 -mem=512", "set 101 --memory=512"),
            ("acl modify / -user a@pve", "acl modify / --users a@pve"),
            ("status 100 --verb", "status 100 --verbose"),
            ("status 100 -verbose 1", "status 100 --verbose 1"),
            ("status 100 --verbose 0", "status 100 --verbose 0"),
            // An 'h' word is never help; a word no option has is left to clap, as a long option.
            ("set 101 -hookscript local:snippets/x.pl", "set 101 --hookscript local:snippets/x.pl"),
            ("set 101 -hello", "set 101 --hello"),
            // Short options, help and version stay.
            ("set 101 -h", "set 101 -h"),
            ("set 101 --help", "set 101 --help"),
            ("-V", "-V"),
            // Values are never rewritten: negative numbers, hyphenated values, after `--`.
            ("set 101 --args -drive file=x", "set 101 --args -drive file=x"),
            ("set 101 -args -mem", "set 101 --args -mem"),
            ("set 101 --delete -onboot", "set 101 --delete -onboot"),
            ("set 101 -balloon -1", "set 101 --balloon -1"),
            ("set 101 -- -onboot", "set 101 -- -onboot"),
            ("status 100 --verbose -output-format json", "status 100 --verbose --output-format json"),
            // Positional words that are not subcommands stay the command's positionals.
            ("acl modify -path", "acl modify --path"),
            // Ambiguous prefixes are usage errors naming the candidates.
            ("acl modify / --r x", "acl modify / --roles x"),
            (
                "set 101 --t 1",
                "error 2: error: option '--t' is ambiguous: it could be --tablet, --tags, --template, --token, --tpmstate0",
            ),
            ("acl modify / -d", "acl modify / -d"),
            ("acl modify / -de", "acl modify / --delete"),
            (
                "set 101 -sc x",
                "error 2: error: option '-sc' is ambiguous: it could be --scsi0, --scsi1, --scsi10, --scsi11, \
                 --scsi12, --scsi13, --scsi14, --scsi15, --scsi16, --scsi17, --scsi18, --scsi19 and 20 more",
            ),
        ];
        for (args, expected) in cases {
            check(args, expected);
        }
    }
}
