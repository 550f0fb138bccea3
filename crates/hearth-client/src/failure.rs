//! How a command that failed says so: on standard error, a `<tool>: <error chain>` line for
//! people or, with `--output-format json|json-pretty`, one JSON object for scripts:
//!
//! ```json
//! {"error":{"kind":"not_found","message":"CT 100 does not exist"}}
//! ```
//!
//! `kind` is hearthd's error kind when hearthd refused or failed the request (`not_found`,
//! `permission_denied`, `conflict`, `invalid`, `locked`, `busy`, `unavailable`, `internal`,
//! `protocol`), `unavailable` when hearthd cannot be reached, `usage` for a command line the
//! tool rejected (exit 2) and `failed` for any other failure (exit 1).

use std::ffi::OsString;

use hearth_proto::ErrorKind;
use serde::Serialize;

use crate::ClientError;
use crate::cli::OutputFormat;

/// The kind of a command line the tool rejected.
pub const USAGE: &str = "usage";
/// The kind of a failure that is neither hearthd's answer nor a usage error.
pub const FAILED: &str = "failed";

#[derive(Serialize)]
struct ErrorDocument<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    kind: &'a str,
    message: &'a str,
}

/// The error document of one failure, compact or indented, without a trailing newline.
pub fn error_json(kind: &str, message: &str, format: OutputFormat) -> String {
    let document = ErrorDocument { error: ErrorBody { kind, message } };
    let text = match format {
        OutputFormat::JsonPretty => serde_json::to_string_pretty(&document),
        _ => serde_json::to_string(&document),
    };
    // Two strings always encode; the fallback keeps the output JSON regardless.
    text.unwrap_or_else(|_| format!("{{\"error\":{{\"kind\":\"{FAILED}\",\"message\":\"\"}}}}"))
}

/// Prints a failed command's error on standard error in the chosen format.
pub fn report(tool: &str, error: &anyhow::Error, format: OutputFormat) {
    let message = error_chain(error);
    if format.is_json() {
        eprintln!("{}", error_json(&kind_of(error), &message, format));
    } else {
        eprintln!("{tool}: {message}");
    }
}

/// Prints a usage error from clap: as clap renders it in text mode, as an error document with
/// kind `usage` and clap's one-line message when the arguments asked for JSON.
pub fn report_usage(error: &clap::Error, args: impl IntoIterator<Item = OsString>) {
    let format = requested_format(args);
    if !format.is_json() || !error.use_stderr() {
        let _ = error.print();
        return;
    }
    let rendered = error.render().to_string();
    let first = rendered.lines().next().unwrap_or_default();
    let message = first.strip_prefix("error: ").unwrap_or(first).trim();
    eprintln!("{}", error_json(USAGE, message, format));
}

/// The kind of a failure, as the error document names it.
pub fn kind_of(error: &anyhow::Error) -> String {
    let name = |kind: ErrorKind| match serde_json::to_value(kind) {
        Ok(serde_json::Value::String(name)) => name,
        _ => FAILED.to_owned(),
    };
    for cause in error.chain() {
        if let Some(reply) = cause.downcast_ref::<hearth_proto::ErrorReply>() {
            return name(reply.kind);
        }
        if let Some(client) = cause.downcast_ref::<ClientError>() {
            return name(match client {
                ClientError::Server(reply) => reply.kind,
                ClientError::Connect { .. } | ClientError::Closed => ErrorKind::Unavailable,
                ClientError::Frame(_) | ClientError::Version { .. } | ClientError::Unexpected(_) => ErrorKind::Protocol,
            });
        }
    }
    FAILED.to_owned()
}

/// The `--output-format` the raw arguments ask for, read without clap: for a command line clap
/// rejected. The last one wins; `--` ends the options; `-output-format` is accepted as Proxmox
/// accepts single-dash long options.
pub fn requested_format(args: impl IntoIterator<Item = OsString>) -> OutputFormat {
    let mut format = OutputFormat::Text;
    let mut args = args.into_iter().skip(1);
    while let Some(arg) = args.next() {
        let Some(arg) = arg.to_str() else { continue };
        if arg == "--" {
            break;
        }
        let Some(option) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else { continue };
        let value = match option.split_once('=') {
            Some(("output-format", value)) => value.to_owned(),
            None if option == "output-format" => {
                let Some(value) = args.next() else { break };
                value.to_string_lossy().into_owned()
            }
            _ => continue,
        };
        format = match value.as_str() {
            "json" => OutputFormat::Json,
            "json-pretty" => OutputFormat::JsonPretty,
            _ => OutputFormat::Text,
        };
    }
    format
}

/// The error and its causes joined by `: ` as `{:#}` does, leaving out a cause whose text a
/// message before it already includes.
pub(crate) fn error_chain(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        std::iter::once("tool").chain(list.iter().copied()).map(OsString::from).collect()
    }

    #[test]
    fn error_chain_skips_repeated_causes() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = anyhow::Error::new(io).context("connect: no such file").context("creating VM 100");
        assert_eq!(error_chain(&e), "creating VM 100: connect: no such file");
        assert_eq!(error_chain(&anyhow::anyhow!("a").context("b")), "b: a");
    }

    #[test]
    fn the_requested_format_is_read_from_raw_arguments() {
        let format = |list: &[&str]| requested_format(args(list));
        assert_eq!(format(&[]), OutputFormat::Text);
        assert_eq!(format(&["list", "--output-format", "json"]), OutputFormat::Json);
        assert_eq!(format(&["--output-format=json-pretty", "list"]), OutputFormat::JsonPretty);
        assert_eq!(format(&["-output-format", "json", "--bogus"]), OutputFormat::Json);
        assert_eq!(format(&["--output-format", "json", "--output-format", "text"]), OutputFormat::Text);
        assert_eq!(format(&["exec", "--", "--output-format", "json"]), OutputFormat::Text);
        assert_eq!(format(&["--output-format"]), OutputFormat::Text);
    }

    #[test]
    fn an_error_document_names_the_kind_and_message() {
        let refused: anyhow::Error =
            ClientError::Server(hearth_proto::ErrorReply::new(ErrorKind::PermissionDenied, "no")).into();
        assert_eq!(kind_of(&refused), "permission_denied");
        let wrapped = refused.context("reading VM 100");
        assert_eq!(kind_of(&wrapped), "permission_denied");
        assert_eq!(kind_of(&anyhow::anyhow!("bad file")), FAILED);
        assert_eq!(
            error_json("not_found", "CT 100 does not exist", OutputFormat::Json),
            r#"{"error":{"kind":"not_found","message":"CT 100 does not exist"}}"#
        );
    }
}
