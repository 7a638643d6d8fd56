//! The off-node copy of a backup: into a folder that stands for another
//! host's storage (a mount), by a plain copy or by the operator's argv
//! command (`rsync`, `rclone`, ...) with `{file}` and `{dir}` in it. The
//! drill then restores from that copy, never from the local file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::command::Command;

/// How long the copy command may run.
const COPY_TIMEOUT: Duration = Duration::from_secs(3600);

/// Copies `file` into `dir`; the copy's path.
pub async fn copy(file: &Path, dir: &Path, command: Option<&[String]>) -> Result<PathBuf, String> {
    let name = file
        .file_name()
        .ok_or_else(|| format!("{} has no file name", file.display()))?;
    let dest = dir.join(name);
    match command {
        Some(argv) => {
            let argv: Vec<String> = argv
                .iter()
                .map(|a| {
                    a.replace("{file}", &file.display().to_string())
                        .replace("{dir}", &dir.display().to_string())
                })
                .collect();
            Command::new(argv.clone())
                .timeout(COPY_TIMEOUT)
                .run()
                .await
                .map_err(|e| format!("the off-node copy command failed: {e}"))?;
            if !dest.exists() {
                return Err(format!(
                    "the off-node copy command `{}` ran, but {} is not there",
                    argv.join(" "),
                    dest.display()
                ));
            }
        }
        None => {
            let (from, to) = (file.to_path_buf(), dest.clone());
            let dir = dir.to_path_buf();
            tokio::task::spawn_blocking(move || -> Result<(), String> {
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let partial = to.with_extension("partial");
                std::fs::copy(&from, &partial)
                    .map_err(|e| format!("copying to {}: {e}", partial.display()))?;
                std::fs::File::open(&partial)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| format!("{}: {e}", partial.display()))?;
                std::fs::rename(&partial, &to).map_err(|e| format!("{}: {e}", to.display()))
            })
            .await
            .map_err(|e| format!("the off-node copy did not finish: {e}"))??;
        }
    }
    Ok(dest)
}
