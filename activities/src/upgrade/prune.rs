//! What steward owns in an app's folders and no longer needs: temporary
//! snapshot folders a dead run left, restore leftovers beside the volumes,
//! scratch data of earlier cold runs. Never the last-known-good snapshot
//! or the records beside it.

use std::fs;
use std::path::{Path, PathBuf};

use super::AppSpec;
use super::disk::{human, size_of};
use super::snapshot;

fn remove(path: &Path, removed: &mut Vec<String>) -> Result<(), String> {
    if !path.exists() {
        return Ok(());
    }
    let bytes = size_of(&[path.to_path_buf()]).unwrap_or(0);
    let gone = if path.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    gone.map_err(|e| format!("removing {}: {e}", path.display()))?;
    removed.push(format!("{} ({})", path.display(), human(bytes)));
    Ok(())
}

/// Where steward records the scratch folders it made: one empty file per
/// run, named as the folder (outside it, so the app's data stays its own).
const MADE: &str = ".steward-made";

/// Makes run `run`'s scratch folder in `scratch` and records that steward
/// made it, so pruning removes it and only it.
pub fn make_scratch(scratch: &Path, run: &str) -> Result<PathBuf, String> {
    let folder = scratch.join(run);
    let record = scratch.join(MADE);
    fs::create_dir_all(&record)
        .and_then(|()| fs::write(record.join(run), b""))
        .and_then(|()| fs::create_dir_all(&folder))
        .map_err(|e| format!("creating {}: {e}", folder.display()))?;
    Ok(folder)
}

/// Removes run `run`'s scratch folder and the record of it; whether
/// there was a folder.
pub fn remove_scratch(scratch: &Path, run: &str) -> Result<bool, String> {
    let folder = scratch.join(run);
    let removed = match fs::remove_dir_all(&folder) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(format!("removing {}: {e}", folder.display())),
    };
    forget(scratch, run);
    Ok(removed)
}

/// Drops the record of `run`'s scratch folder, and the records' folder
/// with its last record.
fn forget(scratch: &Path, run: &str) {
    let _ = fs::remove_file(scratch.join(MADE).join(run));
    let _ = fs::remove_dir(scratch.join(MADE));
}

/// Whether `name` is a scratch folder steward recorded making. A folder
/// made by hand is not, whatever its name looks like, and stays.
fn made_by_steward(scratch: &Path, name: &str) -> bool {
    name != MADE && !name.contains('/') && scratch.join(MADE).join(name).is_file()
}

/// Removes what `app`'s earlier runs left behind, keeping the scratch
/// folder of run `keep` (the run that prunes); what was removed, with
/// sizes.
pub fn prune(app: &AppSpec, keep: &str) -> Result<Vec<String>, String> {
    let mut removed = Vec::new();
    let dir = &app.snapshot_dir;
    // A swap a crash interrupted is finished first: the previous snapshot
    // goes back into place when it is the only one.
    let lkg = snapshot::current(dir);
    let aside = dir.join("previous.swap");
    if !lkg.exists() && aside.exists() {
        snapshot::recover(dir).map_err(|e| e.to_string())?;
        removed.push(format!(
            "{} (put back as the last-known-good)",
            aside.display()
        ));
    }
    remove(&dir.join("incoming.tmp"), &mut removed)?;
    remove(&aside, &mut removed)?;
    for vol in &app.volumes {
        remove(&vol.with_extension("restore.tmp"), &mut removed)?;
        if vol.exists() {
            remove(&vol.with_extension("restore.old"), &mut removed)?;
        }
    }
    let scratch = app.scratch_dir();
    if let Ok(entries) = fs::read_dir(&scratch) {
        let mut stale: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n != keep && made_by_steward(&scratch, n))
            .collect();
        stale.sort();
        for name in stale {
            remove(&scratch.join(&name), &mut removed)?;
            forget(&scratch, &name);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_steward_s_leftovers_go_never_the_last_known_good() {
        let dir = tempfile::tempdir().unwrap();
        let snaps = dir.path().join("snaps");
        let vol = dir.path().join("data");
        fs::create_dir_all(snaps.join("last-known-good/volume-0")).unwrap();
        fs::write(snaps.join("last-known-good/volume-0/a"), b"keep").unwrap();
        fs::write(snaps.join("last_good"), b"1.0.0\n").unwrap();
        fs::create_dir_all(snaps.join("incoming.tmp/volume-0")).unwrap();
        fs::write(snaps.join("incoming.tmp/volume-0/a"), b"half").unwrap();
        fs::create_dir_all(&vol).unwrap();
        fs::create_dir_all(vol.with_extension("restore.tmp")).unwrap();
        let dead = "0195f3a2-0000-7000-8000-000000000001";
        let live = "0195f3a2-0000-7000-8000-000000000002";
        // Made by hand, with a name like a run id: not steward's.
        let lookalike = "0195f3a2-0000-7000-8000-000000000003";
        for run in [dead, live] {
            make_scratch(&snaps.join("cold"), run).unwrap();
        }
        for folder in [lookalike, "operator-notes"] {
            fs::create_dir_all(snaps.join("cold").join(folder)).unwrap();
        }
        let app: AppSpec = serde_json::from_value(serde_json::json!({
            "name": "a",
            "recipe_repo": "/r",
            "deploy": ["d"],
            "undeploy": ["u"],
            "health": { "command": ["true"] },
            "volumes": [vol],
            "snapshot_dir": snaps,
        }))
        .unwrap();
        let removed = prune(&app, live).unwrap();
        assert_eq!(removed.len(), 3, "{removed:?}");
        assert!(removed.iter().any(|r| r.contains("incoming.tmp")));
        assert!(removed.iter().any(|r| r.contains(dead)));
        assert!(snaps.join("last-known-good/volume-0/a").exists());
        assert!(snaps.join("last_good").exists());
        assert!(
            snaps.join("cold").join(live).exists(),
            "the pruning run's own scratch stays"
        );
        assert!(
            snaps.join("cold/operator-notes").exists(),
            "not steward's: stays"
        );
        assert!(
            snaps.join("cold").join(lookalike).exists(),
            "named like a run, made by hand: stays"
        );
        assert!(vol.exists());
        assert!(
            prune(&app, live).unwrap().is_empty(),
            "nothing left to prune"
        );
    }
}
