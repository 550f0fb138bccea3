//! hearth-ctmon as a program. Besides checking its usage, this integration test makes
//! `cargo test -p hearth-ct` build the binary, which the unit tests of `template` and `setup`
//! run (they find it beside their own executable).

use std::process::Command;

#[test]
fn without_a_mode_it_explains_itself() {
    let output = Command::new(env!("CARGO_BIN_EXE_hearth-ctmon")).output().expect("hearth-ctmon runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("started by hearthd"));
}

#[test]
fn helpers_refuse_unknown_arguments() {
    for mode in ["template", "setup"] {
        let output = Command::new(env!("CARGO_BIN_EXE_hearth-ctmon"))
            .args([mode, "--bogus"])
            .output()
            .expect("hearth-ctmon runs");
        assert_eq!(output.status.code(), Some(1), "{mode}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("unexpected arguments"), "{mode}");
    }
}
