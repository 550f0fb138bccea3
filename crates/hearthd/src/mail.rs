//! Mailing a backup run's log, as vzdump's `mailto`/`mailnotification`: the message goes to the
//! host's sendmail (`<root>/usr/sbin/sendmail`, so a test root can hold its own), which every
//! MTA (postfix, exim, msmtp-mta, nullmailer) installs. Without one the log says so; a failed
//! delivery is a line in the log, never a failed backup.

use std::io::Write;
use std::process::{Command, Stdio};

use hearth_proto::BackupOptions;

use crate::Daemon;

/// Where sendmail is expected under hearthd's root.
const SENDMAIL: &str = "usr/sbin/sendmail";

/// Whether a run that ended `ok` is mailed under `mailnotification` (`always`, the default, or
/// `failure`).
fn wanted(options: &BackupOptions, ok: bool) -> bool {
    !(ok && options.mailnotification.as_deref() == Some("failure"))
}

/// The message: headers as vzdump's, then the log.
fn message(node: &str, to: &[String], ok: bool, lines: &[String]) -> String {
    let status = if ok { "backup successful" } else { "backup failed" };
    let mut text = format!(
        "From: Hearth vzdump <root>\nTo: {}\nSubject: vzdump backup status ({node}): {status}\n\
         Content-Type: text/plain; charset=utf-8\n\n",
        to.join(", ")
    );
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// Mails the log of a run to `options.mailto` when `mailnotification` asks for it.
pub fn backup_log(daemon: &Daemon, options: &BackupOptions, ok: bool, lines: &[String], log: &dyn Fn(String)) {
    if options.mailto.is_empty() || !wanted(options, ok) {
        return;
    }
    let sendmail = daemon.root.join(SENDMAIL);
    if !sendmail.is_file() {
        log(format!(
            "not mailing the log to {}: no sendmail at {} (install a mail transfer agent)",
            options.mailto.join(", "),
            sendmail.display()
        ));
        return;
    }
    let text = message(&daemon.node, &options.mailto, ok, lines);
    let sent = Command::new(&sendmail)
        .args(["-f", "root", "--"])
        .args(&options.mailto)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(text.as_bytes())?;
            }
            child.wait_with_output()
        });
    match sent {
        Ok(output) if output.status.success() => log(format!("mailed the log to {}", options.mailto.join(", "))),
        Ok(output) => log(format!(
            "mailing the log failed: sendmail {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(e) => log(format!("mailing the log failed: {}: {e}", sendmail.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_only_mails_failures_and_the_subject_says_how_it_ended() {
        let mut options = BackupOptions { mailto: vec!["a@example.org".into()], ..BackupOptions::default() };
        assert!(wanted(&options, true) && wanted(&options, false));
        options.mailnotification = Some("failure".into());
        assert!(!wanted(&options, true) && wanted(&options, false));
        let text = message("pve1", &options.mailto, false, &["100: failed: x".into()]);
        assert!(text.contains("Subject: vzdump backup status (pve1): backup failed\n"), "{text}");
        assert!(text.ends_with("\n\n100: failed: x\n"), "{text}");
    }
}
