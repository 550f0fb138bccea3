//! Placeholder until the template module lands.

/// hearth-ctmon's `template` mode.
pub fn helper_main(_args: &[String]) -> Result<std::process::ExitCode, String> {
    Err("not available".into())
}
