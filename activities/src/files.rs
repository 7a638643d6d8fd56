//! Files the worker writes (alerts, evidence): written whole through a
//! temporary file and a rename, readable by the owner and group only. And
//! the one question asked of the programs it runs: can this one be run?

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::Path;

/// Writes `bytes` to `path` atomically with mode 0640, creating folders
/// (mode 0750) as needed.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(parent)
            .or_else(|e| if parent.is_dir() { Ok(()) } else { Err(e) })?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Creates (or truncates) `path` with mode 0600, creating folders (mode
/// 0700) as needed: for what only the worker may read (a decrypted backup,
/// a key).
pub fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .or_else(|e| if parent.is_dir() { Ok(()) } else { Err(e) })?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Makes `dir` (and its missing parents) a folder only its owner can
/// enter: created with mode 0700, or narrowed to it when it exists.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Makes `file` one only its owner can read: created empty with mode 0600
/// when missing, narrowed to 0600 when it exists (a database SQLite or the
/// dev server then opens as it is; their journals take its mode).
pub fn private_file(file: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(file)?;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
}

/// Whether `program` (an argv's first element) names an executable file:
/// a path (with a `/`) as given, a bare name on `PATH`, as `execvp` would
/// find it.
pub fn is_runnable(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.is_empty() {
        return false;
    }
    if program.contains('/') {
        return executable(Path::new(program));
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| executable(&dir.join(program))))
}

#[cfg(test)]
mod tests {
    use super::is_runnable;

    #[test]
    fn programs_are_found_as_execvp_would() {
        assert!(is_runnable("sh"), "on PATH");
        assert!(is_runnable("/bin/sh"), "a path");
        assert!(!is_runnable("steward-no-such-program"));
        assert!(!is_runnable("/nonexistent/deploy.sh"));
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("deploy.sh");
        super::write_private(&plain, b"#!/bin/sh\n").unwrap();
        assert!(!is_runnable(plain.to_str().unwrap()), "not executable");
        assert!(!is_runnable(dir.path().to_str().unwrap()), "a folder");
        assert!(!is_runnable(""));
    }
}
