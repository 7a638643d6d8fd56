//! Resolves everything the config names relative to its own folder: the
//! data dir, repos, the sweep's external lock, evidence, alerts and backup
//! folders, the restore drill's key, off-node and target folders, a
//! backfill's SQLite file, an app's recipe repo, snapshot dir, volumes and
//! cold scratch folder. Absolute
//! paths and PostgreSQL URLs are left as written.

use std::path::{Path, PathBuf};

use super::Config;

fn against(base: &Path, p: &mut PathBuf) {
    if p.is_relative() {
        *p = base.join(&*p);
    }
}

/// Makes every relative path of `config` relative to `base`.
pub(super) fn resolve(config: &mut Config, base: &Path) {
    against(base, &mut config.data_dir);
    for repo in &mut config.repos {
        if repo.url.is_some() && repo.path.as_os_str().is_empty() {
            repo.path = config.data_dir.join("clones").join(&repo.name);
        } else {
            against(base, &mut repo.path);
        }
    }
    for dir in [
        &mut config.api.signing_key_file,
        &mut config.sweep.external_lock,
        &mut config.artifacts_dir,
        &mut config.alerts.dir,
        &mut config.restore.backup_dir,
        &mut config.restore.identity_file,
        &mut config.restore.offsite_dir,
        &mut config.restore.target_dir,
    ]
    .into_iter()
    .flatten()
    {
        against(base, dir);
    }
    for b in &mut config.backfills {
        if let Some(rest) = b.database_url.strip_prefix("sqlite://")
            && !rest.starts_with('/')
            && !rest.starts_with(':')
        {
            b.database_url = format!("sqlite://{}", base.join(rest).display());
        }
    }
    for a in &mut config.apps {
        against(base, &mut a.recipe_repo);
        against(base, &mut a.snapshot_dir);
        for v in &mut a.volumes {
            against(base, v);
        }
        if let Some(dir) = a.cold.as_mut().and_then(|c| c.scratch_dir.as_mut()) {
            against(base, dir);
        }
    }
}
