//! `vmctl template`, `ctctl template`: turn a guest into a template for linked clones, as
//! `qm template` and `pct template`.

use clap::{ArgMatches, Command};
use hearth_core::GuestKind;
use hearth_proto::{CtRequest, VmRequest};

use crate::cli::{self, OutputFormat};

pub fn command(kind: GuestKind) -> Command {
    let n = super::names(kind);
    let long_about = match kind {
        GuestKind::Vm => {
            "Turn a virtual machine into a template, as qm template does. Needs VM.Allocate on \
             /vms/<vmid>.\n\n\
             Every disk becomes a read-only base image (vm-<vmid>-disk-N is renamed \
             base-<vmid>-disk-N) that linked clones share, and the configuration gets \
             template: 1. A template cannot be started, only cloned (see `vmctl clone`). Refused \
             while the VM runs or is locked, if it is a template already, or if it has snapshots \
             (delete them first). Runs as a task (type qmtemplate) whose log vmctl prints; the \
             exit status is the task's."
        }
        GuestKind::Ct => {
            "Turn a stopped container into a template, as pct template does. ctctl asks \
             hearthd, which needs VM.Allocate on /vms/<ctid> from the caller.\n\n\
             Every volume becomes a read-only base volume that linked clones share, and the \
             configuration gets template: 1. A template cannot be started, only cloned (see \
             `ctctl clone`). Refused while the container runs or is locked, or if it is a \
             template already. Runs as a task (type vztemplate) whose log ctctl prints; the \
             exit status is the task's."
        }
    };
    Command::new("template")
        .about(format!("Turn a {} into a template", n.noun))
        .long_about(long_about)
        .arg(super::id_arg(kind, format!("The {} to turn into a template", n.guest)))
}

pub fn run(kind: GuestKind, bin: &str, matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let vmid = super::id(kind, matches)?;
    let request = super::request(kind, vmid, |vmid| VmRequest::Template { vmid }, |vmid| CtRequest::Template { vmid });
    cli::run_request(bin, &request, format, || format!("turning {} {vmid} into a template", kind.noun()))
}
