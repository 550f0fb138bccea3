//! Placeholder until the setup module lands.

/// hearth-ctmon's `setup` mode.
pub fn helper_main(_args: &[String]) -> Result<std::process::ExitCode, String> {
    Err("not available".into())
}

/// Whether Hearth configures the guest's addresses from the host (it writes no network files
/// for this distribution).
pub fn needs_host_network_config(ostype: Option<&str>) -> bool {
    !matches!(ostype, Some("debian" | "ubuntu" | "devuan" | "alpine"))
}
