//! The guest commands vmctl and ctctl share, one module per subcommand, each parameterized by
//! the kind of guest: `command(kind)` builds the clap `Command` with qm's or pct's options and
//! help, `run(kind, bin, matches, format)` sends the VM or CT request. Only what really differs
//! between the two tools (options, the Proxmox tool named, what a VM or a container does) is
//! chosen by kind; the rest is written once.
//!
//! [`guest_subcommand!`](crate::guest_subcommand) makes the [`Subcommand`](crate::cli::Subcommand)
//! table entry of one of them for a tool.

pub mod backup;
pub mod clone;
pub mod config;
pub mod delsnapshot;
pub mod destroy;
pub mod list;
pub mod listsnapshot;
pub mod pending;
pub mod reboot;
pub mod resize;
pub mod restore;
pub mod rollback;
pub mod set;
pub mod shutdown;
pub mod snapshot;
pub mod start;
pub mod status;
pub mod stop;
pub mod template;
pub mod unlock;

use anyhow::Context;
use clap::{Arg, ArgMatches};
use hearth_core::GuestKind;
use hearth_core::guest::check_snapshot_name;
use hearth_proto::{CtRequest, Request, VmRequest};

/// The [`Subcommand`](crate::cli::Subcommand) entry of a shared guest command for one tool:
/// `guest_subcommand!(GuestKind::Vm, "vmctl", set)` builds `hearth_client::guest::set` for VMs
/// and runs it as `vmctl`.
#[macro_export]
macro_rules! guest_subcommand {
    ($kind:expr, $bin:expr, $name:ident) => {
        $crate::cli::Subcommand::new(
            stringify!($name),
            || $crate::guest::$name::command($kind),
            |matches, format| $crate::guest::$name::run($kind, $bin, matches, format),
        )
    };
}

/// How the help and messages of one tool name its guests and itself.
struct Names {
    /// The positional id argument: `vmid` or `ctid`.
    id: &'static str,
    /// "virtual machine" or "container", in running text.
    noun: &'static str,
    /// "VM" or "container", in argument help ("The VM to change").
    guest: &'static str,
    /// The Proxmox VE tool the command follows: `qm` or `pct`.
    tool: &'static str,
    /// The Hearth tool: `vmctl` or `ctctl`, for cross references in the help.
    bin: &'static str,
}

fn names(kind: GuestKind) -> Names {
    match kind {
        GuestKind::Vm => Names { id: "vmid", noun: "virtual machine", guest: "VM", tool: "qm", bin: "vmctl" },
        GuestKind::Ct => Names { id: "ctid", noun: "container", guest: "container", tool: "pct", bin: "ctctl" },
    }
}

/// The positional guest id of every guest command: `<vmid>` or `<ctid>`.
fn id_arg(kind: GuestKind, help: String) -> Arg {
    crate::cli::vmid_arg(names(kind).id, "").help(help)
}

/// The guest id given to [`id_arg`].
fn id(kind: GuestKind, matches: &ArgMatches) -> anyhow::Result<hearth_core::Vmid> {
    crate::cli::required_vmid(matches, names(kind).id)
}

/// `--timeout <SECONDS>`, shared by the power commands that wait for the guest.
fn timeout_arg(help: &'static str) -> Arg {
    Arg::new("timeout").long("timeout").value_name("SECONDS").value_parser(clap::value_parser!(u64)).help(help)
}

/// The seconds given to a [`timeout_arg`]; `None` lets hearthd pick its default.
fn timeout(matches: &ArgMatches) -> Option<u64> {
    matches.try_get_one::<u64>("timeout").ok().flatten().copied()
}

/// The positional `<snapname>` of the snapshot commands, passed on as typed.
fn snapname_arg(help: &'static str) -> Arg {
    Arg::new("snapname").value_name("SNAPNAME").required(true).help(help)
}

/// A [`snapname_arg`] for a new snapshot, whose name is checked while parsing, as the
/// schemas of qm and pct do.
fn new_snapname_arg(help: &'static str) -> Arg {
    snapname_arg(help).value_parser(|s: &str| check_snapshot_name(s).map(|()| s.to_owned()).map_err(|e| e.message))
}

/// The name given to a [`snapname_arg`], which clap makes sure is there.
fn snapname(matches: &ArgMatches) -> anyhow::Result<String> {
    matches.try_get_one::<String>("snapname").ok().flatten().cloned().context("missing <snapname>")
}

/// The request for `kind`: `body` wrapped by `vm` for a VM, by `ct` for a container.
fn request<T>(kind: GuestKind, body: T, vm: impl FnOnce(T) -> VmRequest, ct: impl FnOnce(T) -> CtRequest) -> Request {
    match kind {
        GuestKind::Vm => Request::Vm(vm(body)),
        GuestKind::Ct => Request::Ct(ct(body)),
    }
}
