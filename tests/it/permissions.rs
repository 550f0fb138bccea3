//! The permission matrix: one real Unix user is granted each built-in role in turn and runs a
//! fixed list of CLI operations; each is allowed or refused exactly as Proxmox's rule says, the
//! expectation worked out here from the role's privileges and a plain table of what each
//! operation needs (not from hearthd's own table). Then propagation and `NoAccess`.

use std::process::Output;

use hearth_core::access::role::builtin;
use hearth_core::access::{PrivSet, Privilege};
use hearth_test::HearthdProcess;

use crate::{UnixUser, ok};

/// One operation of the matrix: its CLI, and the privilege it needs on `/vms/100` or
/// `/storage/local`, as Proxmox's API declares it.
struct Op {
    label: &'static str,
    program: &'static str,
    args: &'static [&'static str],
    needs: Needs,
}

#[derive(Clone, Copy)]
enum Needs {
    Vm(Privilege),
    Storage(Privilege),
    /// Nothing the grants under test give: `destroy 101` needs VM.Allocate on /vms/101.
    Never,
}

const OPS: &[Op] = &[
    Op { label: "config 100", program: "vmctl", args: &["config", "100"], needs: Needs::Vm(Privilege::VmAudit) },
    Op { label: "status 100", program: "vmctl", args: &["status", "100"], needs: Needs::Vm(Privilege::VmAudit) },
    Op {
        label: "set --memory",
        program: "vmctl",
        args: &["set", "100", "--memory", "96"],
        needs: Needs::Vm(Privilege::VmConfigMemory),
    },
    Op {
        label: "set --name",
        program: "vmctl",
        args: &["set", "100", "--name", "x"],
        needs: Needs::Vm(Privilege::VmConfigOptions),
    },
    Op {
        label: "snapshot",
        program: "vmctl",
        args: &["snapshot", "100", "s1"],
        needs: Needs::Vm(Privilege::VmSnapshot),
    },
    Op { label: "start 100", program: "vmctl", args: &["start", "100"], needs: Needs::Vm(Privilege::VmPowerMgmt) },
    Op { label: "stop 100", program: "vmctl", args: &["stop", "100"], needs: Needs::Vm(Privilege::VmPowerMgmt) },
    Op { label: "destroy 101", program: "vmctl", args: &["destroy", "101"], needs: Needs::Never },
    Op {
        label: "storectl list",
        program: "storectl",
        args: &["list", "local"],
        needs: Needs::Storage(Privilege::DatastoreAudit),
    },
    Op {
        label: "storectl alloc",
        program: "storectl",
        args: &["alloc", "local", "100", "", "1M"],
        needs: Needs::Storage(Privilege::DatastoreAllocateSpace),
    },
];

/// The roles of the matrix and where each is granted.
const ROLES: &[&str] =
    &["Administrator", "PVEVMAdmin", "PVEVMUser", "PVEAuditor", "NoAccess", "PVEDatastoreUser", "PVETemplateUser"];

fn acl_path(role: &str) -> &'static str {
    if role.starts_with("PVEDatastore") { "/storage/local" } else { "/vms/100" }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Whether the VM list the user sees holds 100.
fn lists_100(user: &UnixUser, daemon: &HearthdProcess) -> Result<bool, String> {
    let out = user.run(daemon, "vmctl", &["list", "--output-format", "json"]);
    if !out.status.success() {
        return Err(format!("list failed: {}", stderr(&out)));
    }
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("list: {e}"))?;
    let ids: Vec<u64> = list.as_array().into_iter().flatten().filter_map(|g| g["vmid"].as_u64()).collect();
    // Every grant of this test that covers 101 also covers 100.
    if ids.contains(&101) && !ids.contains(&100) {
        return Err(format!("list shows 101 without 100: {ids:?}"));
    }
    Ok(ids.contains(&100))
}

/// Whether the VM list the user sees holds 101.
fn lists_101(user: &UnixUser, daemon: &HearthdProcess) -> bool {
    let out = user.run(daemon, "vmctl", &["list", "--output-format", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    list.as_array().into_iter().flatten().any(|g| g["vmid"].as_u64() == Some(101))
}

/// Checks one CLI run against the expectation; answers the mismatch, if any.
fn check(label: &str, out: &Output, allowed: bool) -> Option<String> {
    let code = out.status.code();
    let err = stderr(out);
    match (allowed, code) {
        (true, Some(0)) => None,
        (false, Some(1)) if err.contains("permission denied") => None,
        _ => Some(format!(
            "{label}: expected {}, got exit {code:?}: {}",
            if allowed { "allowed" } else { "refused" },
            err.trim()
        )),
    }
}

#[test]
fn each_builtin_role_allows_exactly_what_its_privileges_allow() {
    let daemon = HearthdProcess::start();
    ok(&daemon, "vmctl", &["create", "100", "--kvm", "0", "--memory", "64", "--serial0", "socket"]);
    ok(&daemon, "vmctl", &["create", "101", "--kvm", "0", "--memory", "64"]);
    let user = UnixUser::new("perm");
    let id = user.userid();
    ok(&daemon, "userctl", &["user", "add", &id]);

    let mut matrix = Vec::new();
    let mut mismatches = Vec::new();
    let mut previous: Option<(&str, &str)> = None;
    for &role in ROLES {
        if let Some((path, old)) = previous {
            ok(&daemon, "userctl", &["acl", "modify", path, "--roles", old, "--users", &id, "--delete"]);
        }
        let path = acl_path(role);
        ok(&daemon, "userctl", &["acl", "modify", path, "--roles", role, "--users", &id]);
        previous = Some((path, role));

        let privs = builtin(role).expect("a built-in role").privs;
        let (on_vm, on_storage) = if path == "/vms/100" { (privs, PrivSet::EMPTY) } else { (PrivSet::EMPTY, privs) };
        let mut row = vec![format!("{role:<14} on {path:<15}")];

        // Grants on /vms/100 or /storage/local never show 101.
        if lists_101(&user, &daemon) {
            mismatches.push(format!("{role}: list shows 101"));
        }
        let listed = lists_100(&user, &daemon);
        let want = on_vm.contains(Privilege::VmAudit);
        match listed {
            Ok(seen) if seen == want => row.push(format!("list:{}", if seen { "100" } else { "-" })),
            Ok(seen) => {
                mismatches.push(format!("{role}: list shows 100 = {seen}, expected {want}"));
                row.push("list:MISMATCH".into());
            }
            Err(e) => {
                mismatches.push(format!("{role}: {e}"));
                row.push("list:ERROR".into());
            }
        }

        for op in OPS {
            let allowed = match op.needs {
                Needs::Vm(p) => on_vm.contains(p),
                Needs::Storage(p) => on_storage.contains(p),
                Needs::Never => false,
            };
            let out = user.run(&daemon, op.program, op.args);
            let mismatch = check(&format!("{role}: {}", op.label), &out, allowed);
            row.push(format!(
                "{}:{}",
                op.label,
                match (&mismatch, out.status.success()) {
                    (Some(_), _) => "MISMATCH",
                    (None, true) => "ok",
                    (None, false) => "denied",
                }
            ));
            mismatches.extend(mismatch);
            // Keep the VM as it was for the next role.
            if op.label == "snapshot" && out.status.success() {
                ok(&daemon, "vmctl", &["delsnapshot", "100", "s1"]);
            }
        }
        // Whatever happened, the VM is stopped for the next role.
        let _ = daemon.cli("vmctl", &["stop", "100"]);
        matrix.push(row.join("  "));
    }

    // A custom role with only VM.Config.Memory: memory yes, name no.
    let (path, old) = previous.expect("a role was granted");
    ok(&daemon, "userctl", &["acl", "modify", path, "--roles", old, "--users", &id, "--delete"]);
    ok(&daemon, "userctl", &["role", "add", "MemoryOnly", "--privs", "VM.Config.Memory"]);
    ok(&daemon, "userctl", &["acl", "modify", "/vms/100", "--roles", "MemoryOnly", "--users", &id]);
    let out = user.run(&daemon, "vmctl", &["set", "100", "--memory", "80"]);
    mismatches.extend(check("MemoryOnly: set --memory", &out, true));
    let out = user.run(&daemon, "vmctl", &["set", "100", "--name", "y"]);
    mismatches.extend(check("MemoryOnly: set --name", &out, false));
    let out = user.run(&daemon, "vmctl", &["set", "100", "--memory", "72", "--name", "y"]);
    mismatches.extend(check("MemoryOnly: set --memory --name", &out, false));
    let out = user.run(&daemon, "vmctl", &["set", "100", "--delete", "name"]);
    mismatches.extend(check("MemoryOnly: set --delete name", &out, false));
    matrix.push(format!("{:<14} on {:<15}  set --memory:ok  set --name:denied", "MemoryOnly", "/vms/100"));
    ok(&daemon, "userctl", &["acl", "modify", "/vms/100", "--roles", "MemoryOnly", "--users", &id, "--delete"]);

    // Propagation: PVEVMUser on /vms reaches /vms/100 unless propagate is 0.
    ok(&daemon, "userctl", &["acl", "modify", "/vms", "--roles", "PVEVMUser", "--users", &id]);
    let out = user.run(&daemon, "vmctl", &["status", "100"]);
    mismatches.extend(check("PVEVMUser on /vms, propagate 1: status 100", &out, true));
    if lists_100(&user, &daemon) != Ok(true) {
        mismatches.push("PVEVMUser on /vms, propagate 1: list lacks 100".into());
    }
    ok(&daemon, "userctl", &["acl", "modify", "/vms", "--roles", "PVEVMUser", "--users", &id, "--propagate", "0"]);
    let out = user.run(&daemon, "vmctl", &["status", "100"]);
    mismatches.extend(check("PVEVMUser on /vms, propagate 0: status 100", &out, false));
    if lists_100(&user, &daemon) != Ok(false) {
        mismatches.push("PVEVMUser on /vms, propagate 0: list shows 100".into());
    }
    ok(&daemon, "userctl", &["acl", "modify", "/vms", "--roles", "PVEVMUser", "--users", &id, "--delete"]);

    // NoAccess on the VM beats Administrator on /, and only on that VM.
    ok(&daemon, "userctl", &["acl", "modify", "/", "--roles", "Administrator", "--users", &id]);
    ok(&daemon, "userctl", &["acl", "modify", "/vms/100", "--roles", "NoAccess", "--users", &id]);
    let out = user.run(&daemon, "vmctl", &["status", "100"]);
    mismatches.extend(check("NoAccess on /vms/100 + Administrator on /: status 100", &out, false));
    let out = user.run(&daemon, "vmctl", &["status", "101"]);
    mismatches.extend(check("NoAccess on /vms/100 + Administrator on /: status 101", &out, true));
    let out = user.run(&daemon, "vmctl", &["start", "100"]);
    mismatches.extend(check("NoAccess on /vms/100 + Administrator on /: start 100", &out, false));

    eprintln!("permission matrix:\n{}", matrix.join("\n"));
    assert!(mismatches.is_empty(), "hearthd disagrees with Proxmox's rule:\n{}", mismatches.join("\n"));
}
