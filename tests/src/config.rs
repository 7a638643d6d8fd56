//! `steward.toml` files for tests, each on its own task queue.

use std::path::{Path, PathBuf};

/// A repo entry for [`write_config`].
pub struct RepoEntry<'a> {
    /// Name.
    pub name: &'a str,
    /// Work tree.
    pub path: &'a Path,
    /// Remote name, if any.
    pub remote: Option<&'a str>,
    /// Push writebacks.
    pub push: bool,
}

/// Entries for local repos (no remote): `names[i]` at `paths[i]`.
pub fn local_repos<'a>(names: &'a [String], paths: &'a [PathBuf]) -> Vec<RepoEntry<'a>> {
    names
        .iter()
        .zip(paths)
        .map(|(name, path)| RepoEntry {
            name,
            path,
            remote: None,
            push: false,
        })
        .collect()
}

/// Writes a `steward.toml` under `dir` and returns its path.
pub fn write_config(
    dir: &Path,
    database_url: &str,
    task_queue: &str,
    repos: &[RepoEntry<'_>],
    extra: &str,
) -> PathBuf {
    let mut s = format!(
        "data_dir = \"{}\"\ndatabase_url = \"{database_url}\"\ntask_queue = \"{task_queue}\"\nschedules = []\n{extra}\n",
        dir.join("data").display()
    );
    for r in repos {
        s.push_str(&format!(
            "\n[[repos]]\nname = \"{}\"\npath = \"{}\"\n",
            r.name,
            r.path.display()
        ));
        if let Some(remote) = r.remote {
            s.push_str(&format!("remote = \"{remote}\"\npush = {}\n", r.push));
        }
    }
    let path = dir.join("steward.toml");
    std::fs::write(&path, s).unwrap();
    path
}

/// A unique task queue for one test.
pub fn task_queue(test: &str) -> String {
    format!("{test}-{}", uuid::Uuid::new_v4().simple())
}
