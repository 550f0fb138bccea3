//! Placeholder until the setup module lands.

/// hearth-ctmon's `setup` mode.
pub fn helper_main(_args: &[String]) -> Result<std::process::ExitCode, String> {
    Err("not available".into())
}
