//! The hearthd binary; everything lives in the library.

fn main() -> std::process::ExitCode {
    hearthd::main()
}
