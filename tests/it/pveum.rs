//! The command-line examples of Proxmox VE's user management chapter (pveum.adoc, "Command-line
//! Tool" and "Real World Examples", and the realm and role examples before them), typed with
//! `userctl` instead of `pveum`, against a real hearthd: each must work as written and have its
//! effect; bad input must be refused with nothing changed.

use std::os::unix::fs::PermissionsExt;
use std::process::{Output, Stdio};

use hearth_test::HearthdProcess;

use crate::{json, ok, run};

/// Runs `userctl` with `input` on standard input; answers the exit code and stderr.
fn with_stdin(daemon: &HearthdProcess, args: &[&str], input: &str) -> (i32, String) {
    use std::io::Write;
    let mut child = daemon
        .command("userctl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("userctl starts");
    let _ = child.stdin.take().expect("stdin is piped").write_all(input.as_bytes());
    let out = child.wait_with_output().expect("userctl ends");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Runs `userctl` expecting exit status `code`; answers stderr.
fn refused(daemon: &HearthdProcess, code: i32, args: &[&str]) -> String {
    let (got, stdout, stderr) = run(daemon, "userctl", args);
    assert_eq!(got, code, "userctl {args:?} should fail with {code}: {stdout}{stderr}");
    stderr
}

/// The user entry of `userid` in `user list`.
fn user(daemon: &HearthdProcess, userid: &str) -> serde_json::Value {
    let users = json(daemon, "userctl", &["user", "list"]);
    users.as_array().expect("a list").iter().find(|u| u["userid"] == userid).cloned().unwrap_or_default()
}

/// The privileges `who` holds on `path`, from `user permissions` or `user token permissions`.
fn privs(daemon: &HearthdProcess, args: &[&str], path: &str) -> Vec<String> {
    let mut args = args.to_vec();
    args.extend(["--path", path]);
    let perms = json(daemon, "userctl", &args);
    let entry = perms.as_array().expect("a list").iter().find(|p| p["path"] == path).cloned().unwrap_or_default();
    entry["privs"].as_array().into_iter().flatten().filter_map(|p| p.as_str().map(str::to_owned)).collect()
}

fn acl_rows(daemon: &HearthdProcess) -> Vec<String> {
    let list = json(daemon, "userctl", &["acl", "list"]);
    list.as_array()
        .expect("a list")
        .iter()
        .map(|e| {
            format!("{} {}:{} {} {}", e["path"], e["type"], e["ugid"], e["roleid"], e["propagate"]).replace('"', "")
        })
        .collect()
}

/// `userctl` run as an API token.
fn as_token(daemon: &HearthdProcess, token: &str, args: &[&str]) -> Output {
    daemon.command("userctl").args(args).env("HEARTH_TOKEN", token).stdin(Stdio::null()).output().expect("userctl")
}

#[test]
fn the_pveum_examples_work_as_typed() {
    let daemon = HearthdProcess::start();
    let d = &daemon;

    // pveum help user add
    let help = ok(d, "userctl", &["help", "user", "add"]);
    assert!(help.contains("Usage: userctl user add") && help.contains("--comment"), "{help}");

    // pveum user add testuser@pve -comment "Just a test"
    ok(d, "userctl", &["user", "add", "testuser@pve", "-comment", "Just a test"]);
    assert_eq!(user(d, "testuser@pve")["comment"], "Just a test");

    // pveum passwd testuser@pve (the password from standard input, as a script gives it)
    let (code, stderr) = with_stdin(d, &["passwd", "testuser@pve"], "a long test password\n");
    assert_eq!(code, 0, "{stderr}");
    assert!(hearthd::verify_password(d.root(), &"testuser@pve".parse().unwrap(), "a long test password"));

    // pveum user modify testuser@pve -enable 0
    ok(d, "userctl", &["user", "modify", "testuser@pve", "-enable", "0"]);
    assert_eq!(user(d, "testuser@pve")["enable"], false);

    // pveum group add testgroup
    ok(d, "userctl", &["group", "add", "testgroup"]);

    // pveum role add VM_Power-only --privs "VM.PowerMgmt VM.Console" (and Sys_Power-only)
    ok(d, "userctl", &["role", "add", "VM_Power-only", "--privs", "VM.PowerMgmt VM.Console"]);
    ok(d, "userctl", &["role", "add", "Sys_Power-only", "-privs", "Sys.PowerMgmt Sys.Console"]);
    let roles = json(d, "userctl", &["role", "list"]);
    let role = |name: &str| roles.as_array().unwrap().iter().find(|r| r["roleid"] == name).cloned().unwrap_or_default();
    assert_eq!(role("VM_Power-only")["privs"], serde_json::json!(["VM.Console", "VM.PowerMgmt"]));
    assert_eq!(role("Sys_Power-only")["privs"], serde_json::json!(["Sys.Console", "Sys.PowerMgmt"]));
    assert_eq!(role("VM_Power-only")["special"], false);
    // The built-in roles are Proxmox's, under Proxmox's names.
    let builtin: Vec<&str> = roles
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["special"] == true)
        .filter_map(|r| r["roleid"].as_str())
        .collect();
    assert_eq!(
        builtin,
        [
            "Administrator",
            "NoAccess",
            "PVEAdmin",
            "PVEAuditor",
            "PVEDatastoreAdmin",
            "PVEDatastoreUser",
            "PVEMappingAdmin",
            "PVEMappingUser",
            "PVEPoolAdmin",
            "PVEPoolUser",
            "PVESDNAdmin",
            "PVESDNUser",
            "PVESysAdmin",
            "PVETemplateUser",
            "PVEUserAdmin",
            "PVEVMAdmin",
            "PVEVMUser",
        ]
    );
    // pveum role add PVE_Power-only …: Proxmox VE 8 and 9 refuse the reserved prefix, and so
    // does Hearth (pveum.adoc's own note: "Roles starting with PVE are always builtin").
    let before = std::fs::read_to_string(d.root().join("etc/hearth/access.toml")).unwrap();
    let err = refused(d, 1, &["role", "add", "PVE_Power-only", "-privs", "VM.PowerMgmt VM.Console"]);
    assert!(err.contains("names starting with 'PVE'") && err.contains("reserved"), "{err}");

    // Administrator group: pveum group add admin -comment "System Administrators"
    ok(d, "userctl", &["group", "add", "admin", "-comment", "System Administrators"]);
    // pveum acl modify / -group admin -role Administrator
    ok(d, "userctl", &["acl", "modify", "/", "-group", "admin", "-role", "Administrator"]);
    // pveum user modify testuser@pve -group admin: --groups replaces, unless --append
    ok(d, "userctl", &["user", "modify", "testuser@pve", "-group", "testgroup"]);
    ok(d, "userctl", &["user", "modify", "testuser@pve", "-group", "admin"]);
    assert_eq!(user(d, "testuser@pve")["groups"], serde_json::json!(["admin"]));
    ok(d, "userctl", &["user", "modify", "testuser@pve", "-group", "testgroup", "-append"]);
    assert_eq!(user(d, "testuser@pve")["groups"], serde_json::json!(["admin", "testgroup"]));
    let groups = json(d, "userctl", &["group", "list"]);
    let admin = groups.as_array().unwrap().iter().find(|g| g["group"] == "admin").cloned().unwrap();
    assert_eq!(
        (&admin["comment"], &admin["members"]),
        (&"System Administrators".into(), &serde_json::json!(["testuser@pve"]))
    );

    // Auditors.
    ok(d, "userctl", &["user", "add", "joe@pve"]);
    ok(d, "userctl", &["acl", "modify", "/", "-user", "joe@pve", "-role", "PVEAuditor"]);
    ok(d, "userctl", &["acl", "modify", "/vms", "-user", "joe@pve", "-role", "PVEAuditor"]);
    let auditor =
        ["Datastore.Audit", "Mapping.Audit", "Pool.Audit", "SDN.Audit", "Sys.Audit", "VM.Audit", "VM.GuestAgent.Audit"];
    assert_eq!(privs(d, &["user", "permissions", "joe@pve"], "/storage/local"), auditor);

    // Delegate user management.
    ok(d, "userctl", &["acl", "modify", "/access", "-user", "joe@pve", "-role", "PVEUserAdmin"]);
    ok(d, "userctl", &["acl", "modify", "/access/realm/pve", "-user", "joe@pve", "-role", "PVEUserAdmin"]);
    ok(d, "userctl", &["acl", "modify", "/access/groups/customers", "-user", "joe@pve", "-role", "PVEUserAdmin"]);
    let user_admin = ["Group.Allocate", "Realm.AllocateUser", "User.Modify"];
    assert_eq!(privs(d, &["user", "permissions", "joe@pve"], "/access/realm/pve"), user_admin);
    assert_eq!(privs(d, &["user", "permissions", "joe@pve"], "/access/groups/customers"), user_admin);

    // The note under it: a user admin delegated only realm pve and group customers adds users
    // to pve who are members of customers, and nothing else.
    ok(d, "userctl", &["group", "add", "customers"]);
    ok(d, "userctl", &["user", "add", "carl@pve"]);
    ok(d, "userctl", &["acl", "modify", "/access/realm/pve", "-user", "carl@pve", "-role", "PVEUserAdmin"]);
    ok(d, "userctl", &["acl", "modify", "/access/groups/customers", "-user", "carl@pve", "-role", "PVEUserAdmin"]);
    let carl = json(d, "userctl", &["user", "token", "add", "carl@pve", "cli", "-privsep", "0"]);
    let carl = format!("carl@pve!cli={}", carl["value"].as_str().unwrap());
    let out = as_token(d, &carl, &["user", "add", "customer1@pve", "-group", "customers"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(user(d, "customer1@pve")["groups"], serde_json::json!(["customers"]));
    for args in [
        &["user", "add", "loner@pve"][..],
        &["user", "add", "boss@pve", "-group", "admin"],
        &["user", "add", "customer2@pam", "-group", "customers"],
        &["user", "modify", "customer1@pve", "-group", "admin"],
    ] {
        let out = as_token(d, &carl, args);
        assert_eq!(out.status.code(), Some(1), "{args:?} was allowed");
        assert!(String::from_utf8_lossy(&out.stderr).contains("permission denied"), "{args:?}");
    }
    // Membership carries the group's roles: once customers holds a role carl could not grant
    // himself, carl can no longer add members to it.
    ok(d, "userctl", &["acl", "modify", "/vms", "-group", "customers", "-role", "PVEVMUser"]);
    let out = as_token(d, &carl, &["user", "add", "customer3@pve", "-group", "customers"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("group 'customers' holds role 'PVEVMUser' on /vms"), "{err}");
    assert_eq!(user(d, "customer3@pve"), serde_json::Value::Null);
    ok(d, "userctl", &["acl", "delete", "/vms", "-group", "customers", "-role", "PVEVMUser"]);

    // Limited API token for monitoring.
    ok(d, "userctl", &["acl", "modify", "/vms", "-user", "joe@pve", "-role", "PVEVMAdmin"]);
    let made = json(d, "userctl", &["user", "token", "add", "joe@pve", "monitoring", "-privsep", "1"]);
    assert_eq!(made["full-tokenid"], "joe@pve!monitoring");
    let secret = made["value"].as_str().expect("the secret is shown once").to_owned();
    ok(d, "userctl", &["acl", "modify", "/vms", "-token", "joe@pve!monitoring", "-role", "PVEAuditor"]);
    let text = ok(d, "userctl", &["user", "permissions", "joe@pve"]);
    assert!(text.lines().any(|l| l.starts_with("/vms ") && l.contains("VM.Allocate")), "{text}");
    let text = ok(d, "userctl", &["user", "token", "permissions", "joe@pve", "monitoring"]);
    assert!(text.contains("/vms") && text.contains("VM.Audit") && !text.contains("VM.Allocate"), "{text}");
    assert_eq!(privs(d, &["user", "token", "permissions", "joe@pve", "monitoring"], "/vms/100"), auditor);
    // The token acts with that: it may read, not change.
    let token = format!("joe@pve!monitoring={secret}");
    let out = as_token(d, &token, &["group", "add", "intruders"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("permission denied"));
    // A token without privilege separation acts as joe: PVEUserAdmin on /access and on
    // /access/realm/pve lets it add users to pve, Realm.Allocate (realm add) it lacks.
    let full = json(d, "userctl", &["user", "token", "add", "joe@pve", "full", "-privsep", "0"]);
    let full = format!("joe@pve!full={}", full["value"].as_str().unwrap());
    let out = as_token(d, &full, &["user", "add", "newbie@pve"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = as_token(
        d,
        &full,
        &["realm", "add", "corp", "--type", "openid", "--issuer-url", "https://id.example", "--client-id", "x"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Realm.Allocate"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Resource pools.
    ok(d, "userctl", &["group", "add", "developers", "-comment", "Our software developers"]);
    let (code, stderr) =
        with_stdin(d, &["user", "add", "developer1@pve", "-group", "developers", "-password"], "dev secret 1\n");
    assert_eq!(code, 0, "{stderr}");
    assert!(hearthd::verify_password(d.root(), &"developer1@pve".parse().unwrap(), "dev secret 1"));
    assert_eq!(user(d, "developer1@pve")["groups"], serde_json::json!(["developers"]));
    ok(d, "userctl", &["pool", "add", "dev-pool", "--comment", "IT development pool"]);
    ok(d, "userctl", &["acl", "modify", "/pool/dev-pool/", "-group", "developers", "-role", "PVEAdmin"]);
    let pools = json(d, "userctl", &["pool", "list"]);
    assert_eq!(pools[0]["comment"], "IT development pool");
    let pve_admin = privs(d, &["user", "permissions", "developer1@pve"], "/pool/dev-pool");
    assert!(pve_admin.contains(&"VM.Allocate".to_owned()) && !pve_admin.contains(&"Permissions.Modify".to_owned()));
    assert_eq!(
        acl_rows(d),
        [
            "/ group:admin Administrator true",
            "/ user:joe@pve PVEAuditor true",
            "/vms user:joe@pve PVEAuditor true",
            "/access user:joe@pve PVEUserAdmin true",
            "/access/realm/pve user:joe@pve PVEUserAdmin true",
            "/access/groups/customers user:joe@pve PVEUserAdmin true",
            "/access/realm/pve user:carl@pve PVEUserAdmin true",
            "/access/groups/customers user:carl@pve PVEUserAdmin true",
            "/vms user:joe@pve PVEVMAdmin true",
            "/vms token:joe@pve!monitoring PVEAuditor true",
            "/pool/dev-pool group:developers PVEAdmin true",
        ]
    );

    // pveum's old one-word commands and acl delete.
    ok(d, "userctl", &["aclmod", "/nodes/test", "-user", "joe@pve", "-role", "PVESysAdmin"]);
    assert!(privs(d, &["user", "permissions", "joe@pve"], "/nodes/test").contains(&"Sys.Console".to_owned()));
    ok(d, "userctl", &["acldel", "/nodes/test", "-user", "joe@pve", "-role", "PVESysAdmin"]);
    ok(d, "userctl", &["acl", "modify", "/sdn/zones/zone1", "-user", "joe@pve", "-role", "PVESDNUser"]);
    ok(d, "userctl", &["acl", "delete", "/sdn/zones/zone1", "-user", "joe@pve", "-role", "PVESDNUser"]);
    ok(d, "userctl", &["acl", "modify", "/mapping/pci/gpu0", "-user", "joe@pve", "-role", "PVEMappingUser"]);
    assert_eq!(privs(d, &["user", "permissions", "joe@pve"], "/mapping/pci/gpu0"), ["Mapping.Audit", "Mapping.Use"]);
    ok(d, "userctl", &["useradd", "ann@pve", "-comment", "old style"]);
    ok(d, "userctl", &["usermod", "ann@pve", "-email", "ann@example.invalid"]);
    assert_eq!(user(d, "ann@pve")["email"], "ann@example.invalid");
    ok(d, "userctl", &["userdel", "ann@pve"]);
    assert_eq!(user(d, "ann@pve"), serde_json::Value::Null);

    // Second factors under `user tfa`; unlock clears a lockout (Hearth locks nobody yet).
    json(d, "userctl", &["user", "tfa", "add", "joe@pve", "--type", "totp"]);
    let factors = json(d, "userctl", &["user", "tfa", "list", "joe@pve"]);
    assert_eq!(factors.as_array().unwrap().len(), 1);
    ok(d, "userctl", &["user", "tfa", "unlock", "joe@pve"]);
    ok(d, "userctl", &["user", "tfa", "delete", "joe@pve"]);
    assert_eq!(json(d, "userctl", &["user", "tfa", "list", "joe@pve"]), serde_json::json!([]));
    assert!(refused(d, 1, &["user", "tfa", "unlock", "nobody@pve"]).contains("no such user"));

    // The access file was written by all of this, and nothing wrote the refused role.
    assert!(!before.contains("PVE_Power-only"));
    let after = std::fs::read_to_string(d.root().join("etc/hearth/access.toml")).unwrap();
    assert!(!after.contains("PVE_Power-only"), "{after}");
}

#[test]
fn realms_as_pveum_configures_them() {
    let daemon = HearthdProcess::start();
    let d = &daemon;
    let listed = || json(d, "userctl", &["realm", "list"]);
    let names = |list: &serde_json::Value| -> Vec<String> {
        list.as_array().unwrap().iter().map(|r| format!("{}:{}", r["realm"], r["type"]).replace('"', "")).collect()
    };
    assert_eq!(names(&listed()), ["pam:pam", "pve:pve"]);

    // pveum.adoc:538 and :550, as typed.
    ok(
        d,
        "userctl",
        &[
            "realm",
            "add",
            "myrealm1",
            "--type",
            "openid",
            "--issuer-url",
            "https://accounts.google.com",
            "--client-id",
            "XXXX",
            "--client-key",
            "YYYY",
            "--username-claim",
            "email",
        ],
    );
    ok(
        d,
        "userctl",
        &[
            "realm",
            "add",
            "myrealm2",
            "--type",
            "openid",
            "--issuer-url",
            "https://your.server:8080/realms/your-realm",
            "--client-id",
            "XXX",
            "--username-claim",
            "username",
        ],
    );
    ok(
        d,
        "userctl",
        &[
            "realm",
            "add",
            "corp",
            "--type",
            "ldap",
            "--server1",
            "ldap.example.com",
            "--base_dn",
            "ou=People,dc=example,dc=com",
            "--user_attr",
            "uid",
            "--bind_dn",
            "cn=hearth,dc=example,dc=com",
            "--password",
            "bind-secret",
            "--mode",
            "ldaps",
        ],
    );
    let list = listed();
    assert_eq!(names(&list), ["corp:ldap", "myrealm1:openid", "myrealm2:openid", "pam:pam", "pve:pve"]);
    let realm1 = list.as_array().unwrap().iter().find(|r| r["realm"] == "myrealm1").cloned().unwrap();
    assert_eq!(realm1["options"]["issuer-url"], "https://accounts.google.com");
    assert_eq!(realm1["options"]["username-claim"], "email");
    assert_eq!(realm1["secrets"], serde_json::json!(["client-key"]));
    let text = ok(d, "userctl", &["realm", "list"]);
    assert!(text.contains("Proxmox VE authentication server") && text.contains("client-key=<set>"), "{text}");
    // Secrets are never listed, and kept apart, root only.
    for shown in [list.to_string(), text.clone()] {
        assert!(!shown.contains("YYYY") && !shown.contains("bind-secret"), "{shown}");
    }
    let domains = std::fs::read_to_string(d.root().join("etc/hearth/domains.toml")).unwrap();
    assert!(domains.contains("[realms.myrealm1]") && domains.contains("base_dn = \"ou=People,dc=example,dc=com\""));
    assert!(!domains.contains("YYYY") && !domains.contains("bind-secret"), "{domains}");
    let secrets = d.root().join("etc/hearth/priv/realms.toml");
    assert_eq!(std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&secrets).unwrap();
    assert!(text.contains("YYYY") && text.contains("bind-secret"));

    // Users may be created in configured realms; they have no Hearth password.
    ok(d, "userctl", &["user", "add", "alice@myrealm1"]);
    let (code, stderr) = with_stdin(d, &["passwd", "alice@myrealm1"], "some password\n");
    assert_eq!(code, 1);
    assert!(stderr.contains("not in the pve realm"), "{stderr}");
    let (code, stderr) = with_stdin(d, &["user", "add", "bob@myrealm1", "-password"], "some password\n");
    assert_eq!(code, 1);
    assert!(stderr.contains("not in the pve realm"), "{stderr}");
    assert_eq!(user(d, "bob@myrealm1"), serde_json::Value::Null, "nothing was created");

    // modify, --delete, and the built-ins' comment.
    ok(d, "userctl", &["realm", "modify", "myrealm1", "--comment", "Google", "--autocreate", "1"]);
    ok(d, "userctl", &["realm", "modify", "myrealm1", "--delete", "client-key"]);
    ok(d, "userctl", &["realm", "modify", "pve", "--comment", "Hearth's own", "--default", "1"]);
    let list = listed();
    let get = |name: &str| list.as_array().unwrap().iter().find(|r| r["realm"] == name).cloned().unwrap();
    assert_eq!(get("myrealm1")["options"]["autocreate"], "1");
    assert_eq!(get("myrealm1")["secrets"], serde_json::json!([]));
    assert_eq!(get("pve")["options"]["comment"], "Hearth's own");
    // One default realm, as Proxmox keeps it.
    ok(d, "userctl", &["realm", "modify", "myrealm2", "--default", "1"]);
    let list = listed();
    let get = |name: &str| list.as_array().unwrap().iter().find(|r| r["realm"] == name).cloned().unwrap();
    assert_eq!(get("myrealm2")["options"]["default"], "1");
    assert_eq!(get("pve")["options"].get("default"), None);
    assert!(!std::fs::read_to_string(&secrets).unwrap().contains("YYYY"));

    // Bad input: one clear error, nothing changes.
    let files = || {
        (
            std::fs::read_to_string(d.root().join("etc/hearth/domains.toml")).unwrap(),
            std::fs::read_to_string(&secrets).unwrap(),
        )
    };
    let before = files();
    let err = refused(d, 2, &["realm", "add", "krb", "--type", "kerberos"]);
    assert!(err.contains("kerberos") && err.contains("openid"), "{err}");
    assert!(refused(d, 1, &["realm", "add", "krb", "--type", "pam"]).contains("pam and pve are built in"));
    let err = refused(d, 1, &["realm", "add", "x1", "--type", "openid", "--client-id", "a"]);
    assert!(err.contains("needs --issuer-url"), "{err}");
    let err = refused(
        d,
        1,
        &[
            "realm",
            "add",
            "x1",
            "--type",
            "openid",
            "--issuer-url",
            "https://a.example",
            "--client-id",
            "a",
            "--base_dn",
            "dc=x",
        ],
    );
    assert!(err.contains("'base_dn' is not an option of realm type openid"), "{err}");
    let err = refused(d, 1, &["realm", "add", "x1", "--type", "openid", "--issuer-url", "ftp://a", "--client-id", "a"]);
    assert!(err.contains("invalid issuer-url 'ftp://a'"), "{err}");
    assert!(
        refused(
            d,
            1,
            &["realm", "add", "myrealm1", "--type", "ldap", "--server1", "h", "--base_dn", "b", "--user_attr", "u"]
        )
        .contains("already exists")
    );
    assert!(refused(d, 1, &["realm", "modify", "myrealm1", "--username-claim", "sub"]).contains("fixed"));
    for builtin in ["pam", "pve"] {
        assert!(refused(d, 1, &["realm", "delete", builtin]).contains("built in and cannot be deleted"));
    }
    assert!(refused(d, 1, &["realm", "delete", "nope"]).contains("no such realm"));
    assert!(refused(d, 1, &["user", "add", "bob@nope"]).contains("unknown realm 'nope'"));
    assert_eq!(files(), before);
    assert_eq!(names(&listed()), ["corp:ldap", "myrealm1:openid", "myrealm2:openid", "pam:pam", "pve:pve"]);

    // Sync: ldap and ad need a directory server; pam, pve and openid have nothing to sync.
    let err = refused(d, 1, &["realm", "sync", "corp", "--scope", "both"]);
    assert!(err.contains("directory server") && err.contains("userctl user add"), "{err}");
    assert!(refused(d, 1, &["realm", "sync", "pve"]).contains("nothing to sync"));
    assert!(refused(d, 1, &["realm", "sync", "myrealm2"]).contains("openid"));

    // Deleting a realm removes its secrets; its users stay, as in Proxmox.
    ok(d, "userctl", &["realm", "delete", "corp"]);
    assert!(!std::fs::read_to_string(&secrets).unwrap().contains("bind-secret"));
    assert_eq!(names(&listed()), ["myrealm1:openid", "myrealm2:openid", "pam:pam", "pve:pve"]);
    assert_eq!(user(d, "alice@myrealm1")["userid"], "alice@myrealm1");
}

#[test]
fn bad_access_input_changes_nothing() {
    let daemon = HearthdProcess::start();
    let d = &daemon;
    ok(d, "userctl", &["user", "add", "joe@pve"]);
    ok(d, "userctl", &["acl", "modify", "/vms", "-user", "joe@pve", "-role", "PVEAuditor"]);
    let access = || std::fs::read_to_string(d.root().join("etc/hearth/access.toml")).unwrap();
    let before = access();
    // An unknown role, a former Hearth name, a mistyped privilege, a bad path, a bad realm.
    let err = refused(d, 1, &["acl", "modify", "/vms", "-user", "joe@pve", "-role", "PVEVMAdmn"]);
    assert!(err.contains("unknown role 'PVEVMAdmn'; did you mean 'PVEVMAdmin'?"), "{err}");
    let err = refused(d, 1, &["acl", "modify", "/vms", "-user", "joe@pve", "-role", "VMAdmin"]);
    assert!(err.contains("did you mean 'PVEVMAdmin'?"), "{err}");
    let err = refused(d, 1, &["role", "add", "Ops", "--privs", "VM.PowerMgmt VM.Consol"]);
    assert!(err.contains("unknown privilege 'VM.Consol'; did you mean 'VM.Console'?"), "{err}");
    assert!(refused(d, 1, &["role", "add", "pvestuff", "--privs", "VM.Audit"]).contains("reserved"));
    assert!(refused(d, 1, &["role", "modify", "PVEAuditor", "--privs", "VM.Audit"]).contains("built in"));
    let err = refused(d, 1, &["acl", "modify", "/vm/100", "-user", "joe@pve", "-role", "PVEAuditor"]);
    assert!(err.contains("did you mean '/vms'?"), "{err}");
    assert!(refused(d, 1, &["user", "add", "bob@hearth"]).contains("unknown realm 'hearth'"));
    assert!(refused(d, 1, &["user", "token", "add", "nobody@pve", "t1"]).contains("nobody@pve"));
    assert_eq!(access(), before);
}
