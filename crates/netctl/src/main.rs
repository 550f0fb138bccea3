//! The `netctl` binary; the command lives in the library so xtask and tests can use it.

fn main() -> std::process::ExitCode {
    netctl::main()
}
