//! `vmctl`, Hearth's `qm`: creates, configures, lists, runs, snapshots, clones and destroys
//! virtual machines and moves, imports and unlinks their disks by asking hearthd. The binary is
//! a thin `main`; xtask and tests use [`command`] and [`run`] directly.

mod cmd;

use std::process::ExitCode;

use clap::{ArgMatches, Command};
use hearth_client::cli::{self, Subcommand};
use hearth_client::guest_subcommand;
use hearth_core::GuestKind;

/// The program name, for messages and the software string sent to hearthd.
const BIN: &str = "vmctl";

/// The subcommands, in the order of the help: how each is built and run. The guest commands
/// ctctl has too come from `hearth_client::guest`.
const COMMANDS: &[Subcommand] = &[
    Subcommand::new("create", cmd::create::command, cmd::create::run),
    guest_subcommand!(GuestKind::Vm, BIN, set),
    guest_subcommand!(GuestKind::Vm, BIN, config),
    guest_subcommand!(GuestKind::Vm, BIN, pending),
    guest_subcommand!(GuestKind::Vm, BIN, list),
    guest_subcommand!(GuestKind::Vm, BIN, destroy),
    Subcommand::new("nextid", cmd::nextid::command, cmd::nextid::run),
    guest_subcommand!(GuestKind::Vm, BIN, unlock),
    guest_subcommand!(GuestKind::Vm, BIN, start),
    guest_subcommand!(GuestKind::Vm, BIN, stop),
    guest_subcommand!(GuestKind::Vm, BIN, shutdown),
    guest_subcommand!(GuestKind::Vm, BIN, reboot),
    Subcommand::new("reset", cmd::reset::command, cmd::reset::run),
    Subcommand::new("wait", cmd::wait::command, cmd::wait::run),
    Subcommand::new("suspend", cmd::suspend::command, cmd::suspend::run),
    Subcommand::new("resume", cmd::resume::command, cmd::resume::run),
    guest_subcommand!(GuestKind::Vm, BIN, status),
    Subcommand::new("terminal", cmd::terminal::command, cmd::terminal::run),
    Subcommand::new("monitor", cmd::monitor::command, cmd::monitor::run),
    Subcommand::new("sendkey", cmd::sendkey::command, cmd::sendkey::run),
    Subcommand::new("guest", cmd::guest::command, cmd::guest::run),
    Subcommand::new("showcmd", cmd::showcmd::command, cmd::showcmd::run),
    guest_subcommand!(GuestKind::Vm, BIN, snapshot),
    guest_subcommand!(GuestKind::Vm, BIN, listsnapshot),
    guest_subcommand!(GuestKind::Vm, BIN, rollback),
    guest_subcommand!(GuestKind::Vm, BIN, delsnapshot),
    guest_subcommand!(GuestKind::Vm, BIN, template),
    guest_subcommand!(GuestKind::Vm, BIN, clone),
    guest_subcommand!(GuestKind::Vm, BIN, backup),
    guest_subcommand!(GuestKind::Vm, BIN, restore),
    guest_subcommand!(GuestKind::Vm, BIN, resize),
    Subcommand::new("move-disk", cmd::move_disk::command, cmd::move_disk::run),
    Subcommand::new("disk", cmd::disk::command, cmd::disk::run),
    // qm's old name of `disk import`, kept working but out of the help.
    Subcommand::new(
        "importdisk",
        || cmd::disk::import::command().name("importdisk").hide(true),
        cmd::disk::import::run,
    ),
    Subcommand::new("unlink", cmd::unlink::command, cmd::unlink::run),
    Subcommand::new("importovf", cmd::importovf::command, cmd::importovf::run),
    // qm's old name of `disk rescan`, kept working but out of the help.
    Subcommand::new("rescan", || cmd::disk::rescan::command().hide(true), cmd::disk::rescan::run),
    Subcommand::new("cleanup", cmd::cleanup::command, cmd::cleanup::run),
    Subcommand::new("cloudinit", cmd::cloudinit::command, cmd::cloudinit::run),
];

/// The whole command line of `vmctl`.
pub fn command() -> Command {
    cli::tool_command(BIN, COMMANDS)
        .version(env!("CARGO_PKG_VERSION"))
        .about("Manage Hearth virtual machines")
        .long_about(
            "Manage the virtual machines of a Hearth node, the way qm does on Proxmox VE.\n\n\
             vmctl is a thin client: it can run as any user and asks hearthd (through \
             $HEARTH_ROOT/run/hearth/hearthd.sock, default /run/hearth/hearthd.sock) to do the \
             work; hearthd checks the caller's permissions and validates every value. Long \
             operations run as tasks whose log vmctl prints while it waits.\n\n\
             Exit status: 0 on success, 1 if the operation failed, 2 for a usage error.",
        )
}

/// Runs the subcommand that `matches` (from [`command`]) selected.
pub fn run(matches: &ArgMatches) -> anyhow::Result<()> {
    cli::dispatch(COMMANDS, BIN, matches)
}

/// `vmctl`'s `main`: parse, run, exit 0, 1 or 2.
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
        cli::check_table(cmd::disk::COMMANDS);
        cli::check_table(cmd::cloudinit::COMMANDS);
        cli::check_table(cmd::guest::COMMANDS);
    }

    #[test]
    fn parses_wait_reset_sendkey_and_guest_command_lines() {
        assert_eq!(parse(&["wait", "300", "-timeout", "40"]).get_one::<u64>("timeout"), Some(&40));
        assert_eq!(parse(&["wait", "300"]).get_one::<u64>("timeout"), None);
        assert!(is_usage_error(&["wait", "300", "--timeout", "0"]));
        assert!(is_usage_error(&["wait"]));
        let m = parse(&["stop", "300", "--overrule-shutdown", "1", "--skiplock", "--keepActive", "0"]);
        assert!(cli::flag(&m, "overrule-shutdown") && cli::flag(&m, "skiplock") && !cli::flag(&m, "keepActive"));
        assert!(cli::flag(&parse(&["reset", "100", "--skiplock", "1"]), "skiplock"));
        assert_eq!(parse(&["sendkey", "100", "ctrl-alt-delete"]).get_one::<String>("key").unwrap(), "ctrl-alt-delete");
        assert!(is_usage_error(&["sendkey", "100"]));
        let m = parse(&["suspend", "100", "--todisk", "--statestorage", "local"]);
        assert!(cli::flag(&m, "todisk"));
        assert!(is_usage_error(&["suspend", "100", "--todisk", "--statestorage", "a/b"]));
        let m = command().try_get_matches_from(["vmctl", "guest", "exec", "100", "--", "ls", "-l", "/"]).unwrap();
        let (_, sub) = m.subcommand().unwrap().1.subcommand().unwrap();
        let args: Vec<&String> = sub.get_many::<String>("extra-args").unwrap().collect();
        assert_eq!(args, ["ls", "-l", "/"]);
        let m = command()
            .try_get_matches_from(["vmctl", "guest", "exec", "100", "--synchronous", "0", "--", "sleep", "1"])
            .unwrap();
        let (_, sub) = m.subcommand().unwrap().1.subcommand().unwrap();
        assert_eq!(sub.get_one::<bool>("synchronous"), Some(&false));
        for bad in [
            &["vmctl", "guest", "cmd", "100", "rm-rf"][..],
            &["vmctl", "guest", "exec-status", "100", "x"],
            &["vmctl", "guest", "passwd", "100"],
            &["vmctl", "guest"],
        ] {
            assert!(command().try_get_matches_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_qm_style_command_lines() {
        let m = command()
            .try_get_matches_from([
                "vmctl",
                "set",
                "100",
                "--memory",
                "2048",
                "--delete",
                "tags,onboot",
                "--output-format",
                "json",
            ])
            .unwrap();
        let (name, sub) = m.subcommand().unwrap();
        assert_eq!(name, "set");
        assert_eq!(OutputFormat::from_matches(sub), OutputFormat::Json);
        assert_eq!(cli::required_vmid(sub, "vmid").unwrap().get(), 100);
        assert_eq!(cli::key_list(sub, "delete"), ["tags", "onboot"]);
        // The format is global: it may come before the subcommand too.
        let m = command().try_get_matches_from(["vmctl", "--output-format", "json-pretty", "list"]).unwrap();
        assert_eq!(OutputFormat::from_matches(m.subcommand().unwrap().1), OutputFormat::JsonPretty);
        for bad in [&["vmctl", "config", "99"][..], &["vmctl", "create", "100", "--memroy", "1"], &["vmctl"]] {
            assert_eq!(command().try_get_matches_from(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
        assert_eq!(command().try_get_matches_from(["vmctl", "--version"]).unwrap_err().exit_code(), 0);
    }

    /// The command line as the binary parses it, in Proxmox's option syntax.
    fn try_parse(args: &[&str]) -> Result<ArgMatches, clap::Error> {
        let argv = cli::normalize_args(&command(), std::iter::once("vmctl").chain(args.iter().copied()))?;
        command().try_get_matches_from(argv)
    }

    fn parse(args: &[&str]) -> ArgMatches {
        try_parse(args).unwrap().subcommand().unwrap().1.clone()
    }

    fn is_usage_error(args: &[&str]) -> bool {
        try_parse(args).is_err_and(|e| e.exit_code() == 2)
    }

    #[test]
    fn accepts_proxmox_option_syntax() {
        let options = |args: &[&str]| cli::guest_config_options(GuestKind::Vm, &parse(args));
        let pairs = |p: &[(&str, &str)]| p.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<Vec<_>>();
        assert_eq!(options(&["set", "101", "-onboot", "1"]), pairs(&[("onboot", "1")]));
        assert_eq!(options(&["set", "101", "--onboot"]), pairs(&[("onboot", "1")]));
        assert_eq!(
            options(&["set", "101", "--mem", "512", "-ba=256"]),
            pairs(&[("memory", "512"), ("balloon", "256")])
        );
        assert_eq!(options(&["set", "101", "-args", "-drive file=x"]), pairs(&[("args", "-drive file=x")]));
        assert_eq!(options(&["set", "101", "--args", "-mem"]), pairs(&[("args", "-mem")]));
        assert!(cli::flag(&parse(&["status", "100", "-verbose", "1"]), "verbose"));
        assert!(!cli::flag(&parse(&["status", "100", "--verbose", "0"]), "verbose"));
        assert!(cli::flag(&parse(&["config", "100", "--current", "1"]), "current"));
        assert!(cli::flag(&parse(&["showcmd", "100", "-pretty", "yes"]), "pretty"));
        assert!(cli::flag(&parse(&["list", "--full", "1"]), "full"));
        // A word beginning with h is an option of its own, never -h (help, exit 0).
        assert_eq!(
            options(&["set", "101", "-hookscript", "local:snippets/x.pl"]),
            pairs(&[("hookscript", "local:snippets/x.pl")])
        );
        assert_eq!(try_parse(&["set", "101", "-h"]).unwrap_err().exit_code(), 0);
        assert_eq!(try_parse(&["set", "101", "--help"]).unwrap_err().exit_code(), 0);
        let ambiguous = try_parse(&["set", "101", "--t", "1"]).unwrap_err();
        assert_eq!(ambiguous.exit_code(), 2);
        assert!(ambiguous.to_string().contains("--tablet, --tags, --template"), "{ambiguous}");
    }

    #[test]
    fn parses_power_command_lines() {
        for name in ["start", "stop", "shutdown", "reboot", "suspend", "resume"] {
            assert_eq!(cli::required_vmid(&parse(&[name, "100"]), "vmid").unwrap().get(), 100);
            assert!(is_usage_error(&[name]), "{name} needs a vmid");
            assert!(is_usage_error(&[name, "99"]), "{name} checks the vmid");
        }
        for name in ["start", "shutdown", "reboot"] {
            assert_eq!(parse(&[name, "100", "--timeout", "60"]).get_one::<u64>("timeout"), Some(&60));
            assert_eq!(parse(&[name, "100"]).get_one::<u64>("timeout"), None);
            assert!(is_usage_error(&[name, "100", "--timeout", "soon"]));
            assert!(is_usage_error(&[name, "100", "--timeout", "-1"]));
        }
        for name in ["stop", "suspend", "resume"] {
            assert!(is_usage_error(&[name, "100", "--timeout", "60"]), "{name} has no timeout");
        }
        let force_stop = |args: &[&str]| parse(args).get_one::<bool>("forceStop").copied();
        assert_eq!(force_stop(&["shutdown", "100"]), None);
        assert_eq!(force_stop(&["shutdown", "100", "--forceStop", "1"]), Some(true));
        assert_eq!(force_stop(&["shutdown", "100", "--forceStop", "0", "--timeout", "5"]), Some(false));
        assert_eq!(force_stop(&["shutdown", "100", "--force-stop", "yes"]), Some(true));
        assert_eq!(force_stop(&["shutdown", "100", "--forceStop=off"]), Some(false));
        assert_eq!(force_stop(&["shutdown", "--forceStop", "1", "100"]), Some(true));
        // A bare boolean means 1, as in qm.
        assert_eq!(force_stop(&["shutdown", "100", "--forceStop"]), Some(true));
        assert!(is_usage_error(&["shutdown", "100", "--forceStop", "2"]));
        assert!(is_usage_error(&["shutdown", "100", "--forcestop", "1"]));
        assert!(is_usage_error(&["start", "100", "--forceStop", "1"]));
    }

    #[test]
    fn parses_status_terminal_and_monitor_command_lines() {
        assert!(!cli::flag(&parse(&["status", "100"]), "verbose"));
        let m = parse(&["status", "100", "--verbose", "--output-format", "json"]);
        assert!(cli::flag(&m, "verbose"));
        assert_eq!(OutputFormat::from_matches(&m), OutputFormat::Json);
        assert!(is_usage_error(&["status"]));
        assert!(cli::flag(&parse(&["status", "100", "--verbose", "1"]), "verbose"));

        let iface = |args: &[&str]| parse(args).get_one::<String>("iface").cloned().unwrap();
        assert_eq!(iface(&["terminal", "100"]), "serial0");
        assert_eq!(iface(&["terminal", "100", "--iface", "serial3"]), "serial3");
        for bad in ["serial4", "serial", "ttyS0", "0"] {
            assert!(is_usage_error(&["terminal", "100", "--iface", bad]), "{bad}");
        }
        assert!(is_usage_error(&["terminal"]));

        assert_eq!(cli::required_vmid(&parse(&["monitor", "100"]), "vmid").unwrap().get(), 100);
        assert!(is_usage_error(&["monitor"]));
        assert!(is_usage_error(&["monitor", "100", "info", "status"]));
    }

    #[test]
    fn parses_snapshot_command_lines() {
        let snapname = |args: &[&str]| parse(args).get_one::<String>("snapname").cloned().unwrap();
        let m = parse(&["snapshot", "100", "before-upgrade", "--description", "kernel 6.1, all updates"]);
        assert_eq!(cli::required_vmid(&m, "vmid").unwrap().get(), 100);
        assert_eq!(m.get_one::<String>("snapname").unwrap(), "before-upgrade");
        assert_eq!(m.get_one::<String>("description").unwrap(), "kernel 6.1, all updates");
        assert_eq!(parse(&["snapshot", "100", "s1"]).get_one::<String>("description"), None);
        // Names are checked while parsing, as qm's schema does.
        for bad in ["1st", "a", "has.dot", "current", "Pending", "vzdump", &"x".repeat(41)] {
            assert!(is_usage_error(&["snapshot", "100", bad]), "{bad}");
        }
        assert_eq!(snapname(&["snapshot", "100", &"x".repeat(40)]), "x".repeat(40));
        // RAM state: a flag, or qm's 0|1.
        for ok in [&["snapshot", "100", "s1", "--vmstate"][..], &["snapshot", "100", "s1", "--vmstate", "1"]] {
            assert_eq!(snapname(ok), "s1");
        }
        assert!(is_usage_error(&["snapshot", "100", "s1", "--vmstate", "maybe"]));
        assert!(is_usage_error(&["snapshot", "100"]));
        for name in ["rollback", "delsnapshot"] {
            assert_eq!(snapname(&[name, "100", "s1"]), "s1");
            assert!(is_usage_error(&[name, "100"]), "{name} needs a snapshot");
            assert!(is_usage_error(&[name, "99", "s1"]), "{name} checks the vmid");
        }
        assert!(is_usage_error(&["rollback", "100", "s1", "--start", "1"]));
        assert!(is_usage_error(&["delsnapshot", "100", "s1", "--force", "1"]));
        let m = parse(&["listsnapshot", "100", "--output-format", "json"]);
        assert_eq!(OutputFormat::from_matches(&m), OutputFormat::Json);
        assert!(is_usage_error(&["listsnapshot"]));
        assert!(is_usage_error(&["listsnapshot", "100", "s1"]));
        assert_eq!(cli::required_vmid(&parse(&["template", "100"]), "vmid").unwrap().get(), 100);
        assert!(is_usage_error(&["template"]));
    }

    #[test]
    fn parses_clone_resize_and_showcmd_command_lines() {
        let m = parse(&["clone", "9000", "123", "--name", "web02.example.com", "--target", "fast-ssd"]);
        assert_eq!(cli::required_vmid(&m, "vmid").unwrap().get(), 9000);
        assert_eq!(cli::required_vmid(&m, "newid").unwrap().get(), 123);
        assert_eq!(m.get_one::<String>("name").unwrap(), "web02.example.com");
        assert_eq!(m.get_one::<String>("target").unwrap(), "fast-ssd");
        // qm's spelling of the target storage.
        assert_eq!(parse(&["clone", "100", "101", "--storage", "local"]).get_one::<String>("target").unwrap(), "local");
        let full = |args: &[&str]| parse(args).get_one::<bool>("full").copied();
        assert_eq!(full(&["clone", "100", "101"]), None);
        assert_eq!(full(&["clone", "100", "101", "--full"]), Some(true));
        assert_eq!(full(&["clone", "100", "101", "--full", "1"]), Some(true));
        assert_eq!(full(&["clone", "100", "101", "--full", "0"]), Some(false));
        assert_eq!(full(&["clone", "100", "101", "--full=no", "--name", "x"]), Some(false));
        assert_eq!(full(&["clone", "100", "101", "--full", "--name", "x"]), Some(true));
        for bad in [
            &["clone", "100"][..],
            &["clone", "100", "99"],
            &["clone", "100", "101", "--full", "2"],
            &["clone", "100", "101", "--name", "not a name"],
            &["clone", "100", "101", "--name", "-web"],
            &["clone", "100", "101", "--target", "x"],
            &["clone", "100", "101", "--target", "local/../etc"],
        ] {
            assert!(is_usage_error(bad), "{bad:?}");
        }

        let size = |args: &[&str]| parse(args).get_one::<String>("size").cloned().unwrap();
        for good in ["64G", "+10G", "1.5T", "+512M", "4096K", "32GiB", "20"] {
            assert_eq!(size(&["resize", "100", "scsi0", good]), good);
        }
        assert_eq!(parse(&["resize", "100", "virtio1", "+1G"]).get_one::<String>("disk").unwrap(), "virtio1");
        for bad in ["", "+", "G", "-1G", "1.G", "12X", "++1G", "1e3", "99999999999999T"] {
            assert!(is_usage_error(&["resize", "100", "scsi0", bad]), "{bad:?}");
        }
        assert!(is_usage_error(&["resize", "100", "scsi0"]));

        assert!(!cli::flag(&parse(&["showcmd", "100"]), "pretty"));
        assert!(cli::flag(&parse(&["showcmd", "100", "--pretty"]), "pretty"));
        assert!(is_usage_error(&["showcmd"]));
        assert!(cli::flag(&parse(&["showcmd", "100", "--pretty", "1"]), "pretty"));
        assert!(is_usage_error(&["showcmd", "100", "--snapshot", "s1"]));
    }

    #[test]
    fn parses_disk_command_lines() {
        for args in [
            &["move-disk", "100", "scsi0", "fast"][..],
            &["move_disk", "100", "scsi0", "fast"],
            &["disk", "move", "100", "scsi0", "fast"],
        ] {
            let m = command().try_get_matches_from(std::iter::once("vmctl").chain(args.iter().copied())).unwrap();
            let (_, mut sub) = m.subcommand().unwrap();
            if let Some((_, inner)) = sub.subcommand() {
                sub = inner;
            }
            assert_eq!(cli::required_vmid(sub, "vmid").unwrap().get(), 100);
            assert_eq!(sub.get_one::<String>("disk").unwrap(), "scsi0");
            assert_eq!(sub.get_one::<String>("storage").unwrap(), "fast");
            assert_eq!(sub.get_one::<bool>("delete"), None);
        }
        let m = parse(&["move-disk", "100", "virtio1", "local", "--format", "qcow2", "--delete"]);
        assert_eq!(m.get_one::<String>("format").unwrap(), "qcow2");
        assert_eq!(m.get_one::<bool>("delete"), Some(&true));
        assert_eq!(
            parse(&["move-disk", "100", "scsi0", "local", "--delete", "0"]).get_one::<bool>("delete"),
            Some(&false)
        );
        for bad in [
            &["move-disk", "100", "scsi0"][..],
            &["move-disk", "100", "scsi0", "local", "--format", "qed"],
            &["move-disk", "100", "scsi0", "local/../x"],
            &["disk", "import", "100", "/tmp/x.qcow2"],
            &["disk", "import", "100", "/tmp/x.qcow2", "local", "--format", "subvol"],
            &["unlink", "100"],
            &["unlink", "100", "--idlist", "scsi1", "--force", "2"],
            &["cleanup"],
            &["cleanup", "100", "1", "0"],
            &["disk"],
        ] {
            assert!(is_usage_error(bad), "{bad:?}");
        }
        let m = command().try_get_matches_from(["vmctl", "disk", "import", "100", "x.vmdk", "local"]).unwrap();
        let (_, sub) = m.subcommand().unwrap().1.subcommand().unwrap();
        assert_eq!(sub.get_one::<String>("file").unwrap(), "x.vmdk");
        assert_eq!(
            parse(&["importdisk", "100", "x.raw", "local", "--format", "raw"]).get_one::<String>("format").unwrap(),
            "raw"
        );
        let m = parse(&["unlink", "100", "--idlist", "scsi1,virtio2", "--idlist", "unused0", "--force"]);
        assert_eq!(cli::key_list(&m, "idlist"), ["scsi1", "virtio2", "unused0"]);
        assert_eq!(m.get_one::<bool>("force"), Some(&true));
        assert_eq!(cli::required_vmid(&parse(&["cleanup", "100"]), "vmid").unwrap().get(), 100);
    }
}
