//! `cargo xtask gen [--check]`: man pages and shell completions generated from the CLIs' clap
//! commands, checked into `man/` and `completions/` so reviewers see them and packagers need no
//! build step; and `docs/permissions.md`, hearthd's permission table with a sample of every
//! request.
//!
//! Ownership: every file in `completions/bash/` and `completions/zsh/`, and every section 1 and
//! section 8 page in `man/`, is generated; anything else there that is not generated counts as
//! extra. Other sections (say, hand-written `hearth.toml.5`) are left alone, and so is every
//! file in `docs/` but `permissions.md`.
//!
//! Output is deterministic: no dates; the version in the pages comes from Cargo, so a version
//! bump regenerates the pages in the same commit.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap_complete::Shell;

use crate::BINARIES;

/// The manual every page belongs to, shown in the page footer.
const MANUAL: &str = "Hearth Manual";

/// The page footer's source: the project and its Cargo version (xtask shares the workspace
/// version with every binary).
fn source() -> String {
    format!("Hearth {}", env!("CARGO_PKG_VERSION"))
}

/// Generated files, keyed by their path relative to the workspace root.
pub type Files = BTreeMap<PathBuf, Vec<u8>>;

pub fn run(root: &Path, check_only: bool) -> anyhow::Result<()> {
    if check_only {
        check(root)?;
        eprintln!("man pages, completions and docs/permissions.md are up to date");
    } else {
        let changed = write(root)?;
        if changed == 0 {
            eprintln!("man pages, completions and docs/permissions.md were already up to date");
        } else {
            eprintln!("updated {changed} generated file(s)");
        }
    }
    Ok(())
}

/// The permission table's page.
const PERMISSIONS: &str = "docs/permissions.md";

/// Renders every man page, completion script and the permission table in memory.
pub fn generate() -> anyhow::Result<Files> {
    let mut files = Files::new();
    files.insert(PathBuf::from(PERMISSIONS), hearthd::permission_table::markdown().into_bytes());
    for binary in BINARIES {
        let mut cmd = (binary.command)().disable_help_subcommand(true);
        // Building first propagates global options into subcommands and gives each subcommand
        // its display name (`vmctl-create`), which names its page.
        cmd.build();
        add_man_pages(&cmd, binary.man_section, &mut files)
            .with_context(|| format!("rendering the man pages of {}", binary.name))?;
        for (shell, path) in [
            (Shell::Bash, format!("completions/bash/{}", binary.name)),
            (Shell::Zsh, format!("completions/zsh/_{}", binary.name)),
        ] {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd.clone(), binary.name, &mut script);
            files.insert(PathBuf::from(path), script);
        }
    }
    Ok(files)
}

/// One page for `cmd` and one per visible subcommand, recursively.
fn add_man_pages(cmd: &clap::Command, section: &str, files: &mut Files) -> anyhow::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        add_man_pages(sub, section, files)?;
    }
    let man = clap_mangen::Man::new(cmd.clone()).section(section);
    let mut page = Vec::new();
    man.render(&mut page)?;
    let page = String::from_utf8(page).context("clap_mangen rendered invalid UTF-8")?;
    let title = cmd.get_display_name().unwrap_or_else(|| cmd.get_name());
    let page = with_title_line(&page, title, section)?;
    files.insert(Path::new("man").join(man.get_filename()), page.into_bytes());
    Ok(())
}

/// Replaces the page's `.TH` line with one that leaves the date empty but keeps the source and
/// manual in their places. clap_mangen writes an empty date as nothing at all, which shifts the
/// source into the date's slot and drops the manual name from the header; a real date would
/// make the output change every day.
fn with_title_line(page: &str, title: &str, section: &str) -> anyhow::Result<String> {
    let Some(th) = page.lines().find(|line| line.starts_with(".TH ")) else {
        bail!("the man page of {title} has no .TH line");
    };
    let fixed = format!(r#".TH {title} {section} "" "{}" "{MANUAL}""#, source());
    let mut page = page.replacen(th, &fixed, 1);
    // roff does not need it, but diffs and pagers prefer text files to end with a newline.
    if !page.ends_with('\n') {
        page.push('\n');
    }
    Ok(page)
}

/// What differs between the checked-in files and freshly generated ones.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drift {
    /// Present, with other contents.
    pub stale: Vec<PathBuf>,
    /// Generated but not present.
    pub missing: Vec<PathBuf>,
    /// Present in a generated directory but no longer generated.
    pub extra: Vec<PathBuf>,
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        self.stale.is_empty() && self.missing.is_empty() && self.extra.is_empty()
    }
}

/// Compares `generated` with what is on disk under `root`.
pub fn drift(root: &Path, generated: &Files) -> anyhow::Result<Drift> {
    let mut drift = Drift::default();
    for (path, contents) in generated {
        match fs::read(root.join(path)) {
            Ok(existing) if existing == *contents => {}
            Ok(_) => drift.stale.push(path.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => drift.missing.push(path.clone()),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", root.join(path).display()));
            }
        }
    }
    drift.extra = owned_files(root)?.into_iter().filter(|p| !generated.contains_key(p)).collect();
    Ok(drift)
}

/// Files on disk that `gen` owns, relative to `root`.
fn owned_files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut owned = Vec::new();
    for (dir, is_owned) in [
        ("man", (|name: &str| name.ends_with(".1") || name.ends_with(".8")) as fn(&str) -> bool),
        ("completions/bash", |_: &str| true),
        ("completions/zsh", |_: &str| true),
    ] {
        let entries = match fs::read_dir(root.join(dir)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot list {}", root.join(dir).display()));
            }
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", root.join(dir).display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // Dotfiles such as .gitkeep are not ours to judge.
            if !name.starts_with('.') && is_owned(&name) {
                owned.push(Path::new(dir).join(name));
            }
        }
    }
    owned.sort();
    Ok(owned)
}

/// Fails, naming every differing file, unless the checked-in files are what `gen` would write.
pub fn check(root: &Path) -> anyhow::Result<()> {
    let drift = drift(root, &generate()?)?;
    if drift.is_empty() {
        return Ok(());
    }
    let mut report = String::from("generated files are out of date:");
    for (label, paths) in [("stale", &drift.stale), ("missing", &drift.missing), ("extra", &drift.extra)] {
        for path in paths {
            report.push_str(&format!("\n  {label:<8} {}", path.display()));
        }
    }
    report.push_str("\nrun `cargo xtask gen` to regenerate them, and commit the result");
    bail!(report)
}

/// Writes what differs and removes extra files; returns how many files changed.
pub fn write(root: &Path) -> anyhow::Result<usize> {
    let generated = generate()?;
    let drift = drift(root, &generated)?;
    for path in drift.stale.iter().chain(&drift.missing) {
        let full = root.join(path);
        if let Some(dir) = full.parent() {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        fs::write(&full, &generated[path]).with_context(|| format!("cannot write {}", full.display()))?;
        eprintln!("wrote   {}", path.display());
    }
    for path in &drift.extra {
        let full = root.join(path);
        fs::remove_file(&full).with_context(|| format!("cannot remove {}", full.display()))?;
        eprintln!("removed {}", path.display());
    }
    Ok(drift.stale.len() + drift.missing.len() + drift.extra.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cargo test --workspace` fails when a CLI changed without regenerating; set
    /// `UPDATE_GENERATED=1` to regenerate instead.
    #[test]
    fn generated_files_are_fresh() {
        let root = crate::project_root();
        if std::env::var_os("UPDATE_GENERATED").is_some() {
            write(&root).expect("regenerating the generated files");
        } else if let Err(e) = check(&root) {
            panic!("{e:#}");
        }
    }

    #[test]
    fn every_cli_is_well_formed() {
        for binary in BINARIES {
            (binary.command)().debug_assert();
        }
    }

    #[test]
    fn generation_is_deterministic_and_complete() {
        let first = generate().expect("generating");
        assert_eq!(first, generate().expect("generating"));
        for binary in BINARIES {
            let page = PathBuf::from(format!("man/{}.{}", binary.name, binary.man_section));
            assert!(first.contains_key(&page), "{} missing", page.display());
            assert!(first.contains_key(&PathBuf::from(format!("completions/bash/{}", binary.name))));
            assert!(first.contains_key(&PathBuf::from(format!("completions/zsh/_{}", binary.name))));
        }
        let permissions = String::from_utf8_lossy(&first[Path::new(PERMISSIONS)]).into_owned();
        assert!(
            permissions.contains("| `vmctl set 100 --memory 512` | VM.Config.Memory on /vms/100 |"),
            "{permissions}"
        );
        let create = String::from_utf8_lossy(&first[Path::new("man/vmctl-create.1")]).into_owned();
        let title = format!(r#".TH vmctl-create 1 "" "Hearth {}" "Hearth Manual""#, env!("CARGO_PKG_VERSION"));
        assert!(create.lines().any(|l| l == title), "{create}");
    }

    #[test]
    fn drift_names_stale_missing_and_extra_files() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let generated: Files = [
            (PathBuf::from("man/a.1"), b"new".to_vec()),
            (PathBuf::from("completions/bash/a"), b"same".to_vec()),
            (PathBuf::from("completions/zsh/_a"), b"z".to_vec()),
        ]
        .into();
        fs::create_dir_all(dir.path().join("man")).expect("preparing the fixture");
        fs::create_dir_all(dir.path().join("completions/bash")).expect("preparing the fixture");
        fs::write(dir.path().join("man/a.1"), "old").expect("preparing the fixture");
        fs::write(dir.path().join("man/old.1"), "gone").expect("preparing the fixture");
        fs::write(dir.path().join("man/hearth.toml.5"), "hand-written").expect("preparing the fixture");
        fs::write(dir.path().join("completions/bash/a"), "same").expect("preparing the fixture");
        fs::write(dir.path().join("completions/bash/.gitkeep"), "").expect("preparing the fixture");
        let found = drift(dir.path(), &generated).expect("comparing");
        assert_eq!(
            found,
            Drift {
                stale: vec![PathBuf::from("man/a.1")],
                missing: vec![PathBuf::from("completions/zsh/_a")],
                extra: vec![PathBuf::from("man/old.1")],
            }
        );
    }
}
