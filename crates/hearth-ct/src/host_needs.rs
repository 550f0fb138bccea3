//! What the kernel-facing unit tests need from the host, asked for out loud: a test that lacks
//! root, a tool, a fixture or a kernel feature fails with what to install or how to run it,
//! and never passes without having run (`cargo xtask test`, as root, provides all of it).

use std::path::{Path, PathBuf};

/// Fails unless the test runs as root; `why` names what root is needed for.
pub(crate) fn root(why: &str) {
    assert!(nix::unistd::geteuid().is_root(), "needs root ({why}): run `cargo xtask test` as root");
}

/// Fails unless `program` is installed; `package` is the Debian package that has it.
pub(crate) fn tool(program: &str, package: &str) {
    let found = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"].iter().any(|dir| Path::new(dir).join(program).is_file());
    assert!(found, "needs {program}: install {package} (`cargo xtask test` installs it)");
}

/// `target/fixtures/<name>`, failing with the command that builds it when it is absent.
pub(crate) fn fixture(name: &str, build: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/fixtures").join(name);
    assert!(path.exists(), "{} is missing: run `{build}` (`cargo xtask test` does)", path.display());
    path
}
