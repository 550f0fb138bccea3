//! `userctl` against a real hearthd: users, groups, roles, ACL entries, pools and API tokens,
//! what lands in `access.toml`, the secrets file and the audit log, and that hearthd starts
//! again on what it wrote.

use std::os::unix::fs::PermissionsExt;

use hearth_test::HearthdProcess;

use crate::{json, ok, run};

/// Runs `userctl` expecting failure; answers stderr.
fn fails(daemon: &HearthdProcess, args: &[&str]) -> String {
    let (code, stdout, stderr) = run(daemon, "userctl", args);
    assert_eq!(code, 1, "userctl {args:?} should fail: {stdout}{stderr}");
    stderr
}

fn names(list: &serde_json::Value, key: &str) -> Vec<String> {
    list.as_array().expect("a JSON list").iter().map(|v| v[key].as_str().unwrap_or_default().to_owned()).collect()
}

#[test]
fn users_groups_roles_acl_pools_and_tokens() {
    let mut daemon = HearthdProcess::start();
    let d = &daemon;

    // Users.
    ok(d, "userctl", &["user", "add", "joe@pve", "--email", "joe@example.com", "--firstname", "Joe"]);
    ok(d, "userctl", &["user", "add", "ann@pam"]);
    let users = json(d, "userctl", &["user", "list"]);
    assert_eq!(names(&users, "userid"), ["ann@pam", "joe@pve", "root@pam"]);
    assert_eq!(users[1]["email"], "joe@example.com");
    assert!(fails(d, &["user", "add", "joe@pve"]).contains("user 'joe@pve' already exists"));
    assert!(fails(d, &["user", "add", "bob@nowhere"]).contains("unknown realm 'nowhere'"));
    assert!(fails(d, &["user", "modify", "joe@pve", "--groups", "nope"]).contains("unknown group 'nope'"));
    ok(d, "userctl", &["user", "delete", "ann@pam"]);
    assert!(fails(d, &["user", "delete", "ann@pam"]).contains("no such user 'ann@pam'"));
    assert!(ok(d, "userctl", &["user", "list"]).contains("joe@pve"));

    // Groups.
    ok(d, "userctl", &["group", "add", "ops", "--comment", "Operations"]);
    ok(d, "userctl", &["user", "modify", "joe@pve", "--groups", "ops", "--append"]);
    let groups = json(d, "userctl", &["group", "list"]);
    assert_eq!(groups[0]["group"], "ops");
    assert_eq!(groups[0]["members"], serde_json::json!(["joe@pve"]));

    // Roles: a bad privilege is named, with the right spelling.
    let bad = fails(d, &["role", "add", "Power", "--privs", "VM.Audit,VM.Powermgmt"]);
    assert!(bad.contains("unknown privilege 'VM.Powermgmt'; did you mean 'VM.PowerMgmt'?"), "{bad}");
    assert!(fails(d, &["role", "add", "PVEVMAdmin", "--privs", "VM.Audit"]).contains("built in"));
    ok(d, "userctl", &["role", "add", "Power", "--privs", "VM.Audit,VM.PowerMgmt"]);
    ok(d, "userctl", &["role", "modify", "Power", "--privs", "VM.Console", "--append"]);
    let roles = json(d, "userctl", &["role", "list"]);
    let power = roles.as_array().unwrap().iter().find(|r| r["roleid"] == "Power").expect("Power is listed").clone();
    assert_eq!(power["privs"], serde_json::json!(["VM.Audit", "VM.Console", "VM.PowerMgmt"]));
    assert_eq!(power["special"], false);
    assert!(ok(d, "userctl", &["role", "list"]).contains("Administrator"));

    // ACL entries.
    ok(d, "userctl", &["acl", "modify", "/", "--roles", "Administrator", "--users", "joe@pve"]);
    ok(d, "userctl", &["acl", "modify", "/vms/100", "--roles", "Power", "--groups", "ops", "--propagate", "0"]);
    assert!(
        fails(d, &["acl", "modify", "/vms/100", "--roles", "Nope", "--groups", "ops"]).contains("unknown role 'Nope'")
    );
    assert!(fails(d, &["acl", "modify", "/vms/1", "--roles", "Power", "--groups", "ops"]).contains("invalid ACL path"));
    let acl = json(d, "userctl", &["acl", "list"]);
    assert_eq!(names(&acl, "path"), ["/", "/vms/100"]);
    assert_eq!(acl[1]["type"], "group");
    assert_eq!(acl[1]["propagate"], false);
    let perms = json(d, "userctl", &["user", "permissions", "joe@pve", "--path", "/vms/100"]);
    // The deepest entry wins, as in Proxmox: the group's role on /vms/100 replaces Administrator.
    assert_eq!(perms[0]["privs"], serde_json::json!(["VM.Audit", "VM.Console", "VM.PowerMgmt"]));
    let perms = json(d, "userctl", &["user", "permissions", "joe@pve", "--path", "/"]);
    assert!(perms[0]["privs"].as_array().unwrap().len() > 40, "{perms}");

    // The last Administrator of / stays.
    let last = fails(d, &["acl", "modify", "/", "--roles", "Administrator", "--users", "joe@pve", "--delete"]);
    assert!(last.contains("last Administrator of /"), "{last}");
    assert!(fails(d, &["user", "delete", "joe@pve"]).contains("last Administrator of /"));

    // Revoking.
    ok(d, "userctl", &["acl", "modify", "/vms/100", "--roles", "Power", "--groups", "ops", "--delete"]);
    assert_eq!(names(&json(d, "userctl", &["acl", "list"]), "path"), ["/"]);

    // Pools.
    ok(d, "userctl", &["pool", "add", "prod", "--vms", "100,101", "--storage", "local", "--comment", "Production"]);
    ok(d, "userctl", &["pool", "modify", "prod", "--vms", "101", "--delete"]);
    let pools = json(d, "userctl", &["pool", "list"]);
    assert_eq!(pools[0]["pool"], "prod");
    assert_eq!(pools[0]["vms"], serde_json::json!([100]));
    assert!(fails(d, &["pool", "add", "prod"]).contains("already exists"));
    assert!(fails(d, &["pool", "delete", "prod"]).contains("not empty"));

    // Tokens: the secret is printed once and stored only hashed.
    let added = ok(d, "userctl", &["token", "add", "joe@pve", "ci", "--comment", "CI"]);
    let secret = added
        .lines()
        .find_map(|l| l.strip_prefix("value"))
        .map(str::trim)
        .expect("token add prints the secret")
        .to_owned();
    assert_eq!(secret.len(), 64, "{added}");
    assert!(fails(d, &["token", "add", "joe@pve", "ci"]).contains("already exists"));
    let listed = ok(d, "userctl", &["token", "list", "joe@pve"]);
    assert!(listed.contains("ci") && !listed.contains(&secret), "{listed}");
    let listed = json(d, "userctl", &["token", "list", "joe@pve"]);
    assert_eq!(names(&listed, "tokenid"), ["ci"]);
    assert!(!listed.to_string().contains(&secret));
    let secrets = d.root().join("etc/hearth/priv/tokens.toml");
    assert_eq!(std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(secrets.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    assert!(!std::fs::read_to_string(&secrets).unwrap().contains(&secret));
    let id = "joe@pve!ci".parse().unwrap();
    assert!(hearthd::verify_token(d.root(), &id, &secret));
    assert!(!hearthd::verify_token(d.root(), &id, "0000"));
    ok(d, "userctl", &["acl", "modify", "/vms", "--roles", "Power", "--tokens", "joe@pve!ci"]);
    let json_token = json(d, "userctl", &["token", "add", "joe@pve", "ro", "--privsep", "0"]);
    assert_eq!(json_token["full-tokenid"], "joe@pve!ro");
    assert_eq!(json_token["info"]["privsep"], false);
    ok(d, "userctl", &["token", "remove", "joe@pve", "ci"]);
    assert!(!hearthd::verify_token(d.root(), &id, &secret));
    assert_eq!(names(&json(d, "userctl", &["acl", "list"]), "path"), ["/"], "the token's entries went with it");
    assert!(fails(d, &["token", "remove", "joe@pve", "ci"]).contains("no such token"));

    // The file has it all, and hearthd starts again on it.
    let access = std::fs::read_to_string(d.root().join("etc/hearth/access.toml")).unwrap();
    for expected in ["[users.\"joe@pve\"]", "[groups.ops]", "Power = [", "[pools.prod]", "[tokens.\"joe@pve!ro\"]"] {
        assert!(access.contains(expected), "{expected} missing from access.toml:\n{access}");
    }
    assert!(!access.contains("ann@pam"));
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    daemon.restart();
    let d = &daemon;
    assert_eq!(names(&json(d, "userctl", &["user", "list"]), "userid"), ["joe@pve", "root@pam"]);
    assert_eq!(names(&json(d, "userctl", &["acl", "list"]), "ugid"), ["joe@pve"]);

    // Every change is audited, and no secret is.
    let audit = std::fs::read_to_string(d.root().join("var/log/hearth/audit.log")).unwrap();
    for expected in [
        "root@pam changed access: user add joe@pve",
        "changed access: user delete ann@pam",
        "changed access: group add ops",
        "changed access: role add Power",
        "changed access: acl modify / roles Administrator for joe@pve",
        "changed access: acl delete /vms/100 roles Power for @ops",
        "changed access: pool add prod",
        "changed access: token add joe@pve!ci",
        "changed access: token remove joe@pve!ci",
    ] {
        assert!(audit.contains(expected), "{expected} missing from the audit log:\n{audit}");
    }
    assert!(!audit.contains(&secret));
}

/// Runs `userctl` with `input` on its standard input; answers exit code, stdout and stderr.
fn with_stdin(daemon: &HearthdProcess, args: &[&str], input: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = daemon
        .command("userctl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("userctl starts");
    // userctl may refuse before it reads (a pam user's password): a closed pipe is fine then.
    let _ = child.stdin.take().expect("stdin is piped").write_all(input.as_bytes());
    let out = child.wait_with_output().expect("userctl ends");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn passwords_and_second_factors() {
    let daemon = HearthdProcess::start();
    let d = &daemon;
    let joe = "joe@pve".parse().unwrap();

    // Passwords: read from stdin when it is not a terminal, kept only as argon2id hashes.
    ok(d, "userctl", &["user", "add", "ann@pam"]);
    let (code, _, stderr) = with_stdin(d, &["user", "add", "joe@pve", "--password"], "first secret\n");
    assert_eq!(code, 0, "{stderr}");
    assert!(hearthd::verify_password(d.root(), &joe, "first secret"));
    let (code, _, stderr) = with_stdin(d, &["passwd", "joe@pve"], "s3cret pass\n");
    assert_eq!(code, 0, "{stderr}");
    let shadow = d.root().join("etc/hearth/priv/shadow.toml");
    assert_eq!(std::fs::metadata(&shadow).unwrap().permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&shadow).unwrap();
    assert!(text.contains("$argon2id$") && !text.contains("s3cret"), "{text}");
    assert!(hearthd::verify_password(d.root(), &joe, "s3cret pass"));
    assert!(!hearthd::verify_password(d.root(), &joe, "first secret"));
    let (code, _, stderr) = with_stdin(d, &["passwd", "ann@pam"], "whatever\n");
    assert_eq!(code, 1);
    assert!(stderr.contains("host account") && stderr.contains("passwd(1)"), "{stderr}");
    let (code, _, stderr) = with_stdin(d, &["passwd", "nobody@pve"], "whatever\n");
    assert_eq!(code, 1);
    assert!(stderr.contains("no such user 'nobody@pve'"), "{stderr}");
    let (code, _, stderr) = with_stdin(d, &["passwd", "joe@pve"], "abc\n");
    assert_eq!(code, 1);
    assert!(stderr.contains("password too short"), "{stderr}");

    // TOTP: the secret is printed once and never listed.
    let added = json(d, "userctl", &["tfa", "add", "joe@pve", "--type", "totp"]);
    let secret = added["secret"].as_str().expect("a base32 secret").to_owned();
    let id = added["info"]["id"].as_str().expect("an id").to_owned();
    assert!(added["uri"].as_str().unwrap().starts_with("otpauth://totp/Hearth:joe%40pve?secret="), "{added}");
    let tfa = std::fs::read_to_string(d.root().join("etc/hearth/priv/tfa.toml")).unwrap();
    assert_eq!(
        std::fs::metadata(d.root().join("etc/hearth/priv/tfa.toml")).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(tfa.contains(&id));
    let listed = ok(d, "userctl", &["tfa", "list", "joe@pve"]);
    assert!(listed.contains(&id) && listed.contains("totp") && !listed.contains(&secret), "{listed}");
    let listed = json(d, "userctl", &["tfa", "list"]);
    assert_eq!(names(&listed, "id"), [id.as_str()]);
    assert!(!listed.to_string().contains(&secret));

    // Recovery keys: ten, shown once, stored hashed, each usable once.
    let text = ok(d, "userctl", &["tfa", "add", "joe@pve", "--type", "recovery"]);
    let keys: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("recovery")).map(str::trim).collect();
    assert_eq!(keys.len(), 10, "{text}");
    let tfa = std::fs::read_to_string(d.root().join("etc/hearth/priv/tfa.toml")).unwrap();
    assert!(keys.iter().all(|k| !tfa.contains(k)), "{tfa}");
    assert!(hearthd::use_recovery_key(d.root(), &joe, keys[0]));
    assert!(!hearthd::use_recovery_key(d.root(), &joe, keys[0]));
    let listed = json(d, "userctl", &["tfa", "list", "joe@pve"]);
    assert_eq!(names(&listed, "id"), [id.as_str(), "recovery"]);
    assert_eq!(listed[1]["remaining"], 9);

    // Deleting a factor, and a user with everything priv/ holds for them.
    ok(d, "userctl", &["tfa", "delete", "joe@pve", &id]);
    assert!(fails(d, &["tfa", "delete", "joe@pve", &id]).contains("no second factor"));
    assert_eq!(names(&json(d, "userctl", &["tfa", "list"]), "id"), ["recovery"]);
    ok(d, "userctl", &["user", "delete", "joe@pve"]);
    assert!(!hearthd::verify_password(d.root(), &joe, "s3cret pass"));
    assert!(json(d, "userctl", &["tfa", "list"]).as_array().unwrap().is_empty());

    // Changes are audited; no secret is.
    let audit = std::fs::read_to_string(d.root().join("var/log/hearth/audit.log")).unwrap();
    for expected in ["changed the password of joe@pve", &format!("added second factor {id} of joe@pve")] {
        assert!(audit.contains(expected), "{expected} missing from the audit log:\n{audit}");
    }
    assert!(!audit.contains("s3cret") && !audit.contains(&secret) && !audit.contains(keys[1]));
}
