//! `ctctl`, Hearth's `pct`: creates, configures, lists, runs, enters, snapshots, clones and
//! destroys system containers by asking hearthd. The binary is a thin `main`; xtask and tests use [`command`] and [`run`] directly.

mod cmd;

use std::process::ExitCode;

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, Subcommand};
use hearth_client::guest_subcommand;
use hearth_core::GuestKind;

/// The program name, for messages and the software string sent to hearthd.
const BIN: &str = "ctctl";

/// The subcommands, in the order of the help: how each is built and run. The guest commands
/// vmctl has too come from `hearth_client::guest`.
const COMMANDS: &[Subcommand] = &[
    Subcommand::new("create", cmd::create::command, cmd::create::run),
    guest_subcommand!(GuestKind::Ct, BIN, set),
    guest_subcommand!(GuestKind::Ct, BIN, config),
    guest_subcommand!(GuestKind::Ct, BIN, pending),
    guest_subcommand!(GuestKind::Ct, BIN, list),
    guest_subcommand!(GuestKind::Ct, BIN, destroy),
    guest_subcommand!(GuestKind::Ct, BIN, unlock),
    guest_subcommand!(GuestKind::Ct, BIN, start),
    guest_subcommand!(GuestKind::Ct, BIN, stop),
    guest_subcommand!(GuestKind::Ct, BIN, shutdown),
    guest_subcommand!(GuestKind::Ct, BIN, reboot),
    guest_subcommand!(GuestKind::Ct, BIN, status),
    Subcommand::new("console", cmd::console::command, cmd::console::run),
    Subcommand::new("enter", cmd::enter::command, cmd::enter::run),
    Subcommand::new("exec", cmd::exec::command, cmd::exec::run),
    Subcommand::new("push", cmd::push::command, cmd::push::run),
    Subcommand::new("pull", cmd::pull::command, cmd::pull::run),
    Subcommand::new("mount", cmd::mount::command, cmd::mount::run),
    Subcommand::new("unmount", cmd::unmount::command, cmd::unmount::run),
    Subcommand::new("df", cmd::df::command, cmd::df::run),
    guest_subcommand!(GuestKind::Ct, BIN, snapshot),
    guest_subcommand!(GuestKind::Ct, BIN, listsnapshot),
    guest_subcommand!(GuestKind::Ct, BIN, rollback),
    guest_subcommand!(GuestKind::Ct, BIN, delsnapshot),
    guest_subcommand!(GuestKind::Ct, BIN, template),
    guest_subcommand!(GuestKind::Ct, BIN, clone),
    guest_subcommand!(GuestKind::Ct, BIN, backup),
    guest_subcommand!(GuestKind::Ct, BIN, restore),
    guest_subcommand!(GuestKind::Ct, BIN, resize),
    Subcommand::new("move-volume", cmd::move_volume::command, cmd::move_volume::run),
    Subcommand::new("cpusets", cmd::cpusets::command, cmd::cpusets::run),
];

/// The whole command line of `ctctl`.
pub fn command() -> Command {
    cli::tool_command(BIN, COMMANDS)
        .version(env!("CARGO_PKG_VERSION"))
        .about("Manage Hearth system containers")
        .long_about(
            "Manage the system containers of a Hearth node, the way pct does on Proxmox VE.\n\n\
             ctctl is a thin client: it can run as any user and asks hearthd (through \
             $HEARTH_ROOT/run/hearth/hearthd.sock, default /run/hearth/hearthd.sock) to do the \
             work; hearthd checks the caller's permissions and validates every value. Long \
             operations run as tasks whose log ctctl prints while it waits. Containers share \
             their id space with virtual machines.\n\n\
             Exit status: 0 on success, 1 if the operation failed, 2 for a usage error; exec \
             and enter exit with the status of the command they ran.",
        )
}

/// Runs the subcommand that `matches` (from [`command`]) selected.
pub fn run(matches: &ArgMatches) -> anyhow::Result<()> {
    cli::dispatch(COMMANDS, BIN, matches)
}

/// `ctctl`'s `main`: parse, run, exit 0, 1 or 2, or with the status of what exec ran.
pub fn main() -> ExitCode {
    cli::run_cli(BIN, command, run)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;
    use hearth_client::cli::OutputFormat;

    #[test]
    fn command_is_consistent() {
        command().debug_assert();
        cli::check_table(COMMANDS);
    }

    #[test]
    fn parses_pct_style_command_lines() {
        let m = command()
            .try_get_matches_from([
                "ctctl",
                "create",
                "200",
                "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
                "--rootfs",
                "local:8",
                "--net0",
                "name=eth0,bridge=vmbr0",
                "--mp3",
                "local:4,mp=/srv",
            ])
            .unwrap();
        let (name, sub) = m.subcommand().unwrap();
        assert_eq!(name, "create");
        let options = cli::guest_config_options(GuestKind::Ct, sub);
        let keys: Vec<&str> = options.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["rootfs", "net0", "mp3"]);
        assert_eq!(
            sub.get_one::<String>("ostemplate").unwrap(),
            "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
        );
        assert_eq!(sub.get_one::<String>("password"), None);
        for bad in [
            &["ctctl", "config", "1000000000"][..],
            &["ctctl", "create", "200", "--rootfs", "local:8"],
            &["ctctl", "set", "200", "--scsi0", "x"],
            &["ctctl", "list", "--output-format", "yaml"],
        ] {
            assert_eq!(command().try_get_matches_from(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }

    fn parse(args: &[&str]) -> ArgMatches {
        let m = command().try_get_matches_from(std::iter::once("ctctl").chain(args.iter().copied())).unwrap();
        m.subcommand().unwrap().1.clone()
    }

    fn is_usage_error(args: &[&str]) -> bool {
        let parsed = command().try_get_matches_from(std::iter::once("ctctl").chain(args.iter().copied()));
        parsed.is_err_and(|e| e.exit_code() == 2)
    }

    fn strings(m: &ArgMatches, name: &str) -> Vec<String> {
        m.get_many::<String>(name).map(|v| v.cloned().collect()).unwrap_or_default()
    }

    #[test]
    fn parses_create_extras() {
        let template = "local:vztmpl/alpine-3.20-default_20240908_amd64.tar.xz";
        let password = |args: &[&str]| parse(args).get_one::<String>("password").cloned();
        // Without a value (or '-'), the password is asked for.
        assert_eq!(password(&["create", "200", template, "--password"]).as_deref(), Some("-"));
        assert_eq!(password(&["create", "200", template, "--password", "-"]).as_deref(), Some("-"));
        assert_eq!(password(&["create", "200", template, "--password", "s3cret"]).as_deref(), Some("s3cret"));
        assert_eq!(password(&["create", "200", template, "--password", "--memory", "512"]).as_deref(), Some("-"));
        let m = parse(&["create", "200", template, "--ssh-public-keys", "/root/.ssh/id_ed25519.pub", "--start"]);
        assert_eq!(m.get_one::<String>("ssh-public-keys").unwrap(), "/root/.ssh/id_ed25519.pub");
        assert_eq!(m.get_one::<bool>("start"), Some(&true));
        assert_eq!(parse(&["create", "200", template, "--start", "0"]).get_one::<bool>("start"), Some(&false));
        assert_eq!(parse(&["create", "200", template]).get_one::<bool>("start"), None);
        for bad in [
            &["create", "200"][..],
            &["create", template],
            &["create", "200", template, "--start", "maybe"],
            &["create", "200", template, "extra"],
            &["create", "200", template, "--ssh-public-keys"],
        ] {
            assert!(is_usage_error(bad), "{bad:?}");
        }
    }

    #[test]
    fn parses_power_and_status_command_lines() {
        for name in ["start", "stop", "shutdown", "reboot", "status", "console", "enter", "mount", "unmount", "df"] {
            assert_eq!(cli::required_vmid(&parse(&[name, "200"]), "ctid").unwrap().get(), 200);
            assert!(is_usage_error(&[name]), "{name} needs a ctid");
            assert!(is_usage_error(&[name, "99"]), "{name} checks the ctid");
            assert!(is_usage_error(&[name, "200", "extra"]), "{name} takes one ctid");
        }
        for name in ["shutdown", "reboot"] {
            assert_eq!(parse(&[name, "200", "--timeout", "30"]).get_one::<u64>("timeout"), Some(&30));
            assert_eq!(parse(&[name, "200"]).get_one::<u64>("timeout"), None);
            assert!(is_usage_error(&[name, "200", "--timeout", "-1"]));
        }
        for name in ["start", "stop", "status"] {
            assert!(is_usage_error(&[name, "200", "--timeout", "30"]), "{name} has no timeout");
        }
        let force_stop = |args: &[&str]| parse(args).get_one::<bool>("forceStop").copied();
        assert_eq!(force_stop(&["shutdown", "200"]), None);
        assert_eq!(force_stop(&["shutdown", "200", "--forceStop"]), Some(true));
        assert_eq!(force_stop(&["shutdown", "200", "--forceStop", "0"]), Some(false));
        assert_eq!(force_stop(&["shutdown", "200", "--force-stop", "1", "--timeout", "5"]), Some(true));
        assert!(is_usage_error(&["shutdown", "200", "--forceStop", "2"]));
        assert!(is_usage_error(&["reboot", "200", "--forceStop"]));

        assert!(!cli::flag(&parse(&["status", "200"]), "verbose"));
        let m = parse(&["status", "200", "--verbose", "--output-format", "json"]);
        assert!(cli::flag(&m, "verbose"));
        assert_eq!(OutputFormat::from_matches(&m), OutputFormat::Json);
        assert!(cli::flag(&parse(&["status", "200", "--verbose", "1"]), "verbose"));
        assert!(!cli::flag(&parse(&["status", "200", "--verbose", "0"]), "verbose"));

        assert_eq!(parse(&["console", "200"]).get_one::<u32>("tty"), None);
        assert_eq!(parse(&["console", "200", "--tty", "2"]).get_one::<u32>("tty"), Some(&2));
        for bad in ["0", "7", "tty1", "-1"] {
            assert!(is_usage_error(&["console", "200", "--tty", bad]), "{bad}");
        }
        assert_eq!(
            OutputFormat::from_matches(&parse(&["df", "200", "--output-format", "json-pretty"])),
            OutputFormat::JsonPretty
        );
    }

    #[test]
    fn exec_keeps_the_command_line_verbatim() {
        let m = parse(&["exec", "200", "--", "ls", "-la", "--color=never", "/"]);
        assert_eq!(cli::required_vmid(&m, "ctid").unwrap().get(), 200);
        assert_eq!(strings(&m, "command"), ["ls", "-la", "--color=never", "/"]);
        // Options of ctctl itself after -- belong to the command.
        let m =
            parse(&["exec", "200", "--env", "LANG=C", "--env", "A=b c", "--", "sh", "-c", "echo $A", "--env", "X=1"]);
        assert_eq!(strings(&m, "env"), ["LANG=C", "A=b c"]);
        assert_eq!(strings(&m, "command"), ["sh", "-c", "echo $A", "--env", "X=1"]);
        let m = parse(&["exec", "200", "--", "--output-format", "json", "--", "-x"]);
        assert_eq!(strings(&m, "command"), ["--output-format", "json", "--", "-x"]);
        assert_eq!(OutputFormat::from_matches(&m), OutputFormat::Text);
        // Without --, the command starts at the first argument that is not an option of exec.
        let m = parse(&["exec", "200", "uname", "-a", "--env", "A=1"]);
        assert_eq!(strings(&m, "command"), ["uname", "-a", "--env", "A=1"]);
        assert_eq!(strings(&m, "env"), Vec::<String>::new());
        // Empty arguments are arguments.
        assert_eq!(strings(&parse(&["exec", "200", "--", "printf", ""]), "command"), ["printf", ""]);
        for bad in [
            &["exec", "200"][..],
            &["exec", "200", "--"],
            &["exec", "--", "ls"],
            &["exec", "99", "--", "ls"],
            &["exec", "200", "--env", "NOVALUE", "--", "ls"],
            &["exec", "200", "--env", "1X=a", "--", "ls"],
        ] {
            assert!(is_usage_error(bad), "{bad:?}");
        }
        let m = parse(&["enter", "200", "--env", "TERM=vt100"]);
        assert_eq!(strings(&m, "env"), ["TERM=vt100"]);
        assert!(is_usage_error(&["enter", "200", "--", "ls"]));
    }

    #[test]
    fn parses_push_and_pull_command_lines() {
        let m =
            parse(&["push", "200", "./motd", "/etc/motd", "--user", "www-data", "--group", "33", "--perms", "0640"]);
        assert_eq!(strings(&m, "file"), ["./motd"]);
        assert_eq!(strings(&m, "destination"), ["/etc/motd"]);
        assert_eq!(strings(&m, "user"), ["www-data"]);
        assert_eq!(strings(&m, "group"), ["33"]);
        assert_eq!(strings(&m, "perms"), ["0640"]);
        assert_eq!(strings(&parse(&["push", "200", "a", "/b", "--perms", "0x1ed"]), "perms"), ["0x1ed"]);
        let m = parse(&["pull", "200", "/var/log/syslog", "syslog.200", "--perms", "600"]);
        assert_eq!(strings(&m, "path"), ["/var/log/syslog"]);
        assert_eq!(strings(&m, "destination"), ["syslog.200"]);
        for bad in [
            &["push", "200", "a"][..],
            &["push", "200", "a", "relative/b"],
            &["push", "200", "a", "/b", "--perms", "999"],
            &["push", "200", "a", "/b", "--perms", "rw-r--r--"],
            &["pull", "200", "etc/motd", "motd"],
            &["pull", "200", "/etc/motd"],
            &["pull", "200", "/etc/motd", "motd", "--perms", "0x"],
        ] {
            assert!(is_usage_error(bad), "{bad:?}");
        }
    }

    #[test]
    fn parses_snapshot_command_lines() {
        let snapname = |args: &[&str]| parse(args).get_one::<String>("snapname").cloned().unwrap();
        let m = parse(&["snapshot", "200", "before-upgrade", "--description", "all updates"]);
        assert_eq!(snapname(&["snapshot", "200", "before-upgrade"]), "before-upgrade");
        assert_eq!(m.get_one::<String>("description").unwrap(), "all updates");
        for bad in ["1st", "a", "has.dot", "current", "vzdump"] {
            assert!(is_usage_error(&["snapshot", "200", bad]), "{bad}");
        }
        assert!(is_usage_error(&["snapshot", "200", "s1", "--vmstate"]), "containers have no RAM state");
        for name in ["rollback", "delsnapshot"] {
            assert_eq!(snapname(&[name, "200", "s1"]), "s1");
            assert!(is_usage_error(&[name, "200"]), "{name} needs a snapshot");
        }
        assert_eq!(
            OutputFormat::from_matches(&parse(&["listsnapshot", "200", "--output-format", "json"])),
            OutputFormat::Json
        );
        assert!(is_usage_error(&["listsnapshot", "200", "s1"]));
        assert_eq!(cli::required_vmid(&parse(&["template", "200"]), "ctid").unwrap().get(), 200);
        assert!(is_usage_error(&["template"]));
    }

    #[test]
    fn parses_clone_and_resize_command_lines() {
        let m = parse(&["clone", "9000", "201", "--hostname", "web02.example.com", "--target", "fast"]);
        assert_eq!(cli::required_vmid(&m, "ctid").unwrap().get(), 9000);
        assert_eq!(cli::required_vmid(&m, "newid").unwrap().get(), 201);
        assert_eq!(m.get_one::<String>("hostname").unwrap(), "web02.example.com");
        assert_eq!(m.get_one::<String>("target").unwrap(), "fast");
        assert_eq!(strings(&parse(&["clone", "200", "201", "--storage", "local"]), "target"), ["local"]);
        let full = |args: &[&str]| parse(args).get_one::<bool>("full").copied();
        assert_eq!(full(&["clone", "200", "201"]), None);
        assert_eq!(full(&["clone", "200", "201", "--full"]), Some(true));
        assert_eq!(full(&["clone", "200", "201", "--full", "0"]), Some(false));
        for bad in [
            &["clone", "200"][..],
            &["clone", "200", "99"],
            &["clone", "200", "201", "--full", "2"],
            &["clone", "200", "201", "--hostname", "not a name"],
            &["clone", "200", "201", "--name", "web"],
            &["clone", "200", "201", "--target", "local/../etc"],
        ] {
            assert!(is_usage_error(bad), "{bad:?}");
        }

        for (disk, size) in [("rootfs", "+2G"), ("rootfs", "10G"), ("mp0", "1.5T"), ("mp255", "+512M"), ("mp10", "20")]
        {
            let m = parse(&["resize", "200", disk, size]);
            assert_eq!((strings(&m, "disk"), strings(&m, "size")), (vec![disk.to_owned()], vec![size.to_owned()]));
        }
        for bad_disk in ["scsi0", "mp256", "mp", "mp01", "rootfs0", "unused0"] {
            assert!(is_usage_error(&["resize", "200", bad_disk, "+1G"]), "{bad_disk}");
        }
        for bad_size in ["", "+", "G", "-1G", "12X", "++1G"] {
            assert!(is_usage_error(&["resize", "200", "rootfs", bad_size]), "{bad_size:?}");
        }
        assert!(is_usage_error(&["resize", "200", "rootfs"]));
    }
}
