//! hearth-ctmon as a program: how it answers being started by hand or with bad arguments.

use std::process::Command;

#[test]
fn without_a_mode_it_explains_itself() {
    let output = Command::new(hearth_test::bin("hearth-ctmon")).output().expect("hearth-ctmon runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("started by hearthd"));
}

#[test]
fn helpers_refuse_unknown_arguments() {
    for mode in ["template", "setup"] {
        let output =
            Command::new(hearth_test::bin("hearth-ctmon")).args([mode, "--bogus"]).output().expect("hearth-ctmon runs");
        assert_eq!(output.status.code(), Some(1), "{mode}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("unexpected arguments"), "{mode}");
    }
}
