//! Where the programs the tests and the benches start are found: the workspace's own
//! binaries, which cargo builds beside the test or bench executable ([`sibling_binary`]), and
//! the tools of the machine ([`on_path`]).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// The workspace binary `name` that cargo built beside this executable (`target/<profile>/`),
/// checked to exist; when it does not, the error says to run `build`.
pub fn sibling_binary(name: &str, build: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot tell where this executable is")?;
    let dir = binaries_dir(&exe)
        .with_context(|| format!("the executable {} has no parent directory", exe.display()))?;
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        bail!(
            "the {name} binary is missing at {}; build it first with `{build}`",
            path.display()
        );
    }
    Ok(path)
}

/// Where cargo puts the binaries beside `exe`: its directory for a binary
/// (`target/<profile>/bench`), the one above for a test (`target/<profile>/deps/<test>`).
fn binaries_dir(exe: &Path) -> Option<&Path> {
    let dir = exe.parent()?;
    if dir.file_name() == Some("deps".as_ref()) {
        dir.parent()
    } else {
        Some(dir)
    }
}

/// Whether `program` is found on `PATH` (or in the sbin directories, where root's tools live).
pub fn on_path(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|dir| dir.join(program).is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tests_and_binaries_find_the_same_directory() {
        let test = Path::new("/w/target/debug/deps/session-0123abcd");
        assert_eq!(binaries_dir(test), Some(Path::new("/w/target/debug")));
        let bench = Path::new("/w/target/release/bench");
        assert_eq!(binaries_dir(bench), Some(Path::new("/w/target/release")));
    }

    #[test]
    fn a_missing_binary_says_how_to_build_it() {
        let e = sibling_binary("no-such-binary", "cargo build --workspace").unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("the no-such-binary binary is missing at "),
            "{text}"
        );
        assert!(
            text.ends_with("build it first with `cargo build --workspace`"),
            "{text}"
        );
    }
}
