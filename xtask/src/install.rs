//! `cargo xtask install [--prefix DIR] [--destdir DIR]`: release binaries, man pages,
//! completions, the permission table (`share/doc/hearth`) and the systemd unit, laid out as a
//! Debian administrator expects them.
//!
//! `--destdir` stages the tree for packaging: files land under DESTDIR/PREFIX while paths
//! written into them (the unit's ExecStart) use PREFIX alone.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};

use crate::{BINARIES, BinDir, HELPER_PACKAGES, Profile, build_binaries, r#gen};

/// The unit template; `@SBINDIR@` becomes PREFIX/sbin.
const UNIT_TEMPLATE: &str = "crates/hearthd/hearthd.service";

pub fn run(root: &Path, prefix: &Path, destdir: Option<&Path>) -> anyhow::Result<()> {
    if !prefix.is_absolute() {
        bail!("--prefix must be an absolute path, not {}", prefix.display());
    }
    let layout = Layout::new(prefix);
    let stage = |path: &Path| staged(destdir, path);

    let executables = build_binaries(root, Profile::Release)?;
    for binary in BINARIES {
        let dir = match binary.dir {
            BinDir::Bin => &layout.bin,
            BinDir::Sbin => &layout.sbin,
        };
        let contents = fs::read(&executables[binary.name])
            .with_context(|| format!("cannot read {}", executables[binary.name].display()))?;
        install_file(&stage(&dir.join(binary.name)), &contents, 0o755)?;
    }

    // Helpers hearthd runs itself (hearth-ctmon): not commands, so under PREFIX/lib/hearth,
    // where hearthd looks for them (../lib/hearth from its own sbin).
    for (_, name) in HELPER_PACKAGES {
        let contents =
            fs::read(&executables[*name]).with_context(|| format!("cannot read {}", executables[*name].display()))?;
        install_file(&stage(&layout.helpers.join(name)), &contents, 0o755)?;
    }

    for (path, contents) in r#gen::generate()? {
        let name = path.file_name().context("generated files have names")?;
        let dir = match path.parent().and_then(Path::to_str) {
            Some("man") => layout.man_section(path.extension().and_then(|e| e.to_str()).unwrap_or("1")),
            Some("completions/bash") => layout.bash_completions.clone(),
            Some("completions/zsh") => layout.zsh_completions.clone(),
            Some("docs") => layout.docs.clone(),
            _ => bail!("do not know where to install {}", path.display()),
        };
        install_file(&stage(&dir.join(name)), &contents, 0o644)?;
    }

    let template_path = root.join(UNIT_TEMPLATE);
    let template =
        fs::read_to_string(&template_path).with_context(|| format!("cannot read {}", template_path.display()))?;
    let unit = render_unit(&template, &layout.sbin)?;
    install_file(&stage(&layout.systemd_units.join("hearthd.service")), unit.as_bytes(), 0o644)?;

    if destdir.is_none() {
        eprintln!(
            "\ninstalled under {}; to run hearthd as a service:\n  systemctl daemon-reload && systemctl enable --now hearthd",
            prefix.display()
        );
    }
    Ok(())
}

/// Where each kind of file goes under a prefix.
#[derive(Debug)]
struct Layout {
    bin: PathBuf,
    sbin: PathBuf,
    helpers: PathBuf,
    man: PathBuf,
    bash_completions: PathBuf,
    zsh_completions: PathBuf,
    /// Generated documentation: the permission table.
    docs: PathBuf,
    systemd_units: PathBuf,
}

impl Layout {
    fn new(prefix: &Path) -> Layout {
        Layout {
            bin: prefix.join("bin"),
            sbin: prefix.join("sbin"),
            helpers: prefix.join("lib/hearth"),
            man: prefix.join("share/man"),
            bash_completions: prefix.join("share/bash-completion/completions"),
            zsh_completions: prefix.join("share/zsh/vendor-completions"),
            docs: prefix.join("share/doc/hearth"),
            systemd_units: prefix.join("lib/systemd/system"),
        }
    }

    /// `share/man/man1` for commands, `share/man/man8` for the daemon.
    fn man_section(&self, section: &str) -> PathBuf {
        self.man.join(format!("man{section}"))
    }
}

/// `path` (absolute) moved under `destdir`, if any.
fn staged(destdir: Option<&Path>, path: &Path) -> PathBuf {
    match destdir {
        None => path.to_path_buf(),
        Some(destdir) => {
            destdir.join(path.components().filter(|c| !matches!(c, Component::RootDir)).collect::<PathBuf>())
        }
    }
}

/// The unit with its placeholders filled in.
fn render_unit(template: &str, sbindir: &Path) -> anyhow::Result<String> {
    let sbindir = sbindir.to_str().with_context(|| format!("{} is not UTF-8", sbindir.display()))?;
    if !template.contains("@SBINDIR@") {
        bail!("{UNIT_TEMPLATE} has no @SBINDIR@ placeholder");
    }
    Ok(template.replace("@SBINDIR@", sbindir))
}

/// Writes a file through a temporary name and renames it into place, so replacing a binary that
/// is running (hearthd) works and nobody sees half a file.
fn install_file(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let dir = path.parent().with_context(|| format!("{} has no parent directory", path.display()))?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = path.file_name().with_context(|| format!("{} has no file name", path.display()))?;
    let temp = dir.join(format!(".{}.xtask-install", name.to_string_lossy()));
    fs::write(&temp, contents).with_context(|| format!("cannot write {}", temp.display()))?;
    fs::set_permissions(&temp, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", temp.display()))?;
    fs::rename(&temp, path).with_context(|| format!("cannot move {} to {}", temp.display(), path.display()))?;
    eprintln!("installed {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destdir_stages_under_the_prefix() {
        assert_eq!(staged(None, Path::new("/usr/local/bin/vmctl")), PathBuf::from("/usr/local/bin/vmctl"));
        assert_eq!(
            staged(Some(Path::new("/tmp/pkg")), Path::new("/usr/bin/vmctl")),
            PathBuf::from("/tmp/pkg/usr/bin/vmctl")
        );
    }

    #[test]
    fn unit_points_into_the_prefix_and_leaves_guests_alone() {
        let template = fs::read_to_string(crate::project_root().join(UNIT_TEMPLATE)).expect("reading the unit");
        let unit = render_unit(&template, &Layout::new(Path::new("/opt/hearth")).sbin).expect("rendering");
        let lines: Vec<&str> = unit.lines().map(str::trim).collect();
        for wanted in ["ExecStart=/opt/hearth/sbin/hearthd", "Type=notify", "KillMode=process", "Restart=on-failure"] {
            assert!(lines.contains(&wanted), "{wanted} missing from the unit:\n{unit}");
        }
    }
}
