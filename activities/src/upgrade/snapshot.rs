//! The last-known-good snapshot of an app's data volumes, and its
//! `last_good` record.
//!
//! A snapshot is copied (while the app is undeployed) into a temporary
//! folder, verified against the volumes (file count and content hash), then
//! swapped in by renames, so a crash never leaves a half-written
//! last-known-good and exactly one snapshot exists. Restore brings back the
//! exact bytes and checks them against the snapshot's manifest.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Snapshot errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The copy does not match its source, or a snapshot its manifest.
    #[error("snapshot verification failed: {0}")]
    Mismatch(String),
    /// No snapshot to restore.
    #[error("no last-known-good snapshot in {0}")]
    Missing(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What a snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Who took it (the upgrade run); taking it again with the same tag
    /// returns this snapshot instead of copying volumes that may have
    /// changed since.
    pub tag: String,
    /// Per volume: file count and content hash.
    pub volumes: Vec<VolumeDigest>,
}

/// File count and content hash of one volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeDigest {
    /// The volume folder.
    pub path: String,
    /// Regular files below it.
    pub files: u64,
    /// SHA-256 over sorted relative paths and file contents.
    pub sha256: String,
}

/// The folder of the current snapshot.
pub fn current(snapshot_dir: &Path) -> PathBuf {
    snapshot_dir.join("last-known-good")
}

/// File count and content hash of a folder (missing folder: 0 files).
pub fn digest(dir: &Path) -> Result<(u64, String), Error> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort();
    let mut h = Sha256::new();
    for rel in &files {
        let bytes = fs::read(dir.join(rel)).map_err(io(&dir.join(rel)))?;
        h.update(rel.as_bytes());
        h.update([0]);
        h.update(Sha256::digest(&bytes));
    }
    Ok((files.len() as u64, hex::encode(h.finalize())))
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), Error> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io(&path))?;
        if kind.is_dir() {
            collect(root, &path, out)?;
        } else if kind.is_file() {
            out.push(
                path.strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
    fs::create_dir_all(to).map_err(io(to))?;
    let entries = match fs::read_dir(from) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(from)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io(from))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let kind = entry.file_type().map_err(io(&src))?;
        if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else if kind.is_file() {
            fs::copy(&src, &dst).map_err(io(&src))?;
            // The copy keeps the source's mode, but for world-write: no
            // one else may change a snapshot, or the data restored from it.
            let mut perms = fs::metadata(&dst).map_err(io(&dst))?.permissions();
            if perms.mode() & 0o002 != 0 {
                perms.set_mode(perms.mode() & !0o002);
                fs::set_permissions(&dst, perms).map_err(io(&dst))?;
            }
        }
    }
    Ok(())
}

fn remove(path: &Path) -> Result<(), Error> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(path)(e)),
        _ => Ok(()),
    }
}

/// Finishes or undoes a swap a crash interrupted: if the current snapshot
/// is missing but a previous one was set aside, it is put back; leftovers
/// are removed. Afterwards at most one snapshot exists.
pub fn recover(snapshot_dir: &Path) -> Result<(), Error> {
    let cur = current(snapshot_dir);
    let old = snapshot_dir.join("previous.swap");
    if !cur.exists() && old.exists() {
        fs::rename(&old, &cur).map_err(io(&old))?;
    }
    remove(&old)?;
    remove(&snapshot_dir.join("incoming.tmp"))
}

fn read_manifest(dir: &Path) -> Result<Option<Manifest>, Error> {
    let path = dir.join("manifest.json");
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Mismatch(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path)(e)),
    }
}

/// The current snapshot's manifest, if any.
pub fn manifest(snapshot_dir: &Path) -> Result<Option<Manifest>, Error> {
    recover(snapshot_dir)?;
    read_manifest(&current(snapshot_dir))
}

/// Takes the snapshot of `volumes` as the new last-known-good. Idempotent
/// per `tag`: when the current snapshot already carries it, it is returned
/// as is.
pub fn take(volumes: &[PathBuf], snapshot_dir: &Path, tag: &str) -> Result<Manifest, Error> {
    recover(snapshot_dir)?;
    if let Some(m) = read_manifest(&current(snapshot_dir))?
        && m.tag == tag
    {
        return Ok(m);
    }
    let tmp = snapshot_dir.join("incoming.tmp");
    let mut manifest = Manifest {
        tag: tag.into(),
        volumes: Vec::new(),
    };
    for (i, vol) in volumes.iter().enumerate() {
        let dst = tmp.join(format!("volume-{i}"));
        copy_tree(vol, &dst)?;
        let (files, sha256) = digest(vol)?;
        let copied = digest(&dst)?;
        if copied != (files, sha256.clone()) {
            return Err(Error::Mismatch(format!(
                "{}: copy has {} files {}, volume has {files} files {sha256}",
                vol.display(),
                copied.0,
                copied.1
            )));
        }
        manifest.volumes.push(VolumeDigest {
            path: vol.display().to_string(),
            files,
            sha256,
        });
    }
    let bytes = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    crate::files::write_private(&tmp.join("manifest.json"), &bytes).map_err(io(&tmp))?;
    let cur = current(snapshot_dir);
    let old = snapshot_dir.join("previous.swap");
    if cur.exists() {
        fs::rename(&cur, &old).map_err(io(&cur))?;
    }
    fs::rename(&tmp, &cur).map_err(io(&tmp))?;
    remove(&old)?;
    Ok(manifest)
}

/// Puts the snapshot's bytes back into `volumes` and verifies them.
/// Idempotent: restoring twice gives the same bytes.
pub fn restore(volumes: &[PathBuf], snapshot_dir: &Path) -> Result<Manifest, Error> {
    let m = manifest(snapshot_dir)?
        .ok_or_else(|| Error::Missing(snapshot_dir.display().to_string()))?;
    let cur = current(snapshot_dir);
    for (i, vd) in m.volumes.iter().enumerate() {
        let stored = cur.join(format!("volume-{i}"));
        if digest(&stored)? != (vd.files, vd.sha256.clone()) {
            return Err(Error::Mismatch(format!(
                "snapshot of {} does not match its manifest",
                vd.path
            )));
        }
    }
    for (i, vol) in volumes.iter().enumerate() {
        let vd = m.volumes.get(i).ok_or_else(|| {
            Error::Mismatch(format!("the snapshot has no copy of {}", vol.display()))
        })?;
        let incoming = vol.with_extension("restore.tmp");
        let aside = vol.with_extension("restore.old");
        remove(&incoming)?;
        remove(&aside)?;
        copy_tree(&cur.join(format!("volume-{i}")), &incoming)?;
        if vol.exists() {
            fs::rename(vol, &aside).map_err(io(vol))?;
        }
        fs::rename(&incoming, vol).map_err(io(&incoming))?;
        remove(&aside)?;
        if digest(vol)? != (vd.files, vd.sha256.clone()) {
            return Err(Error::Mismatch(format!(
                "{} differs from its snapshot after restore",
                vol.display()
            )));
        }
    }
    Ok(m)
}

/// The recorded last good version, if any.
pub fn last_good(snapshot_dir: &Path) -> Result<Option<String>, Error> {
    let path = snapshot_dir.join("last_good");
    match fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path)(e)),
    }
}

/// Records `version` as last good, atomically (temp file and rename).
pub fn set_last_good(snapshot_dir: &Path, version: &str) -> Result<(), Error> {
    let path = snapshot_dir.join("last_good");
    crate::files::write_private(&path, format!("{version}\n").as_bytes()).map_err(io(&path))
}

/// The version the canonical deployment runs: the `deployed` record, or,
/// for an app recorded before there was one, last good.
pub fn deployed(snapshot_dir: &Path) -> Result<Option<String>, Error> {
    let path = snapshot_dir.join("deployed");
    match fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => last_good(snapshot_dir),
        Err(e) => Err(io(&path)(e)),
    }
}

/// Records `version` as last good and as what the canonical deployment
/// runs (the `deployed` record is dropped: it exists only while the two
/// differ).
pub fn set_last_good_and_deployed(snapshot_dir: &Path, version: &str) -> Result<(), Error> {
    set_last_good(snapshot_dir, version)?;
    let path = snapshot_dir.join("deployed");
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(&path)(e)),
    }
}

/// Records what the canonical deployment runs (empty: nothing).
pub fn set_deployed(snapshot_dir: &Path, version: &str) -> Result<(), Error> {
    let path = snapshot_dir.join("deployed");
    crate::files::write_private(&path, format!("{version}\n").as_bytes()).map_err(io(&path))
}

/// The versions a cold run passed, oldest first.
pub fn cold_passed(snapshot_dir: &Path) -> Result<Vec<String>, Error> {
    let path = snapshot_dir.join("cold_passed");
    match fs::read_to_string(&path) {
        Ok(s) => Ok(s
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io(&path)(e)),
    }
}

/// Records that a cold run passed `version`, and (`moves`: the app
/// advances by cold runs) makes it last good. Before last good first moves,
/// what the canonical deployment runs is written down, so moving last good
/// never changes what `deployed` reads.
pub fn record_cold_pass(snapshot_dir: &Path, version: &str, moves: bool) -> Result<(), Error> {
    if moves && !snapshot_dir.join("deployed").exists() {
        let running = last_good(snapshot_dir)?.unwrap_or_default();
        set_deployed(snapshot_dir, &running)?;
    }
    let mut passed = cold_passed(snapshot_dir)?;
    if !passed.iter().any(|v| v == version) {
        passed.push(version.to_string());
        let path = snapshot_dir.join("cold_passed");
        crate::files::write_private(&path, format!("{}\n", passed.join("\n")).as_bytes())
            .map_err(io(&path))?;
    }
    if moves {
        set_last_good(snapshot_dir, version)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, bytes: &[u8]) {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, bytes).unwrap();
    }

    fn setup() -> (tempfile::TempDir, Vec<PathBuf>, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("vol-a");
        let b = dir.path().join("vol-b");
        write(&a, "db/data.bin", &[0, 1, 2, 255, 254]);
        write(&a, "marker.txt", b"written before the upgrade\n");
        write(&b, "providers/x.jar", b"jar");
        let snaps = dir.path().join("snapshots");
        (dir, vec![a, b], snaps)
    }

    #[test]
    fn a_cold_pass_moves_last_good_but_not_what_runs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(deployed(d).unwrap(), None, "a first run: nothing runs");
        set_last_good(d, "1.0.0").unwrap();
        assert_eq!(
            deployed(d).unwrap().as_deref(),
            Some("1.0.0"),
            "older records: what is last good runs"
        );
        record_cold_pass(d, "1.1.0", true).unwrap();
        record_cold_pass(d, "1.1.0", true).unwrap();
        assert_eq!(last_good(d).unwrap().as_deref(), Some("1.1.0"));
        assert_eq!(deployed(d).unwrap().as_deref(), Some("1.0.0"));
        assert_eq!(cold_passed(d).unwrap(), vec!["1.1.0".to_string()]);
        set_deployed(d, "1.1.0").unwrap();
        assert_eq!(deployed(d).unwrap().as_deref(), Some("1.1.0"));
    }

    #[test]
    fn restore_round_trips_the_exact_bytes() {
        let (_d, vols, snaps) = setup();
        let before: Vec<_> = vols.iter().map(|v| digest(v).unwrap()).collect();
        let m = take(&vols, &snaps, "run-1").unwrap();
        assert_eq!(m.volumes[0].files, 2);
        write(&vols[0], "marker.txt", b"corrupted by a bad version");
        write(&vols[0], "junk/new.tmp", b"x");
        fs::remove_file(vols[1].join("providers/x.jar")).unwrap();
        restore(&vols, &snaps).unwrap();
        let after: Vec<_> = vols.iter().map(|v| digest(v).unwrap()).collect();
        assert_eq!(before, after);
        assert_eq!(
            fs::read(vols[0].join("db/data.bin")).unwrap(),
            vec![0, 1, 2, 255, 254]
        );
        assert!(
            !vols[0].join("junk").exists(),
            "files the bad version added are gone"
        );
        restore(&vols, &snaps).unwrap();
        assert_eq!(
            vols.iter().map(|v| digest(v).unwrap()).collect::<Vec<_>>(),
            before,
            "restoring twice is the same"
        );
    }

    #[test]
    fn a_new_snapshot_replaces_the_old_one_and_a_retake_with_the_same_tag_copies_nothing() {
        let (_d, vols, snaps) = setup();
        take(&vols, &snaps, "run-1").unwrap();
        write(&vols[0], "marker.txt", b"v2 data");
        let m2 = take(&vols, &snaps, "run-2").unwrap();
        let entries: Vec<_> = fs::read_dir(&snaps)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries, vec!["last-known-good"], "exactly one snapshot");
        write(
            &vols[0],
            "marker.txt",
            b"changed after the snapshot (new version running)",
        );
        let again = take(&vols, &snaps, "run-2").unwrap();
        assert_eq!(
            again, m2,
            "a retried snapshot of the same run keeps the pre-deploy copy"
        );
        restore(&vols, &snaps).unwrap();
        assert_eq!(
            fs::read_to_string(vols[0].join("marker.txt")).unwrap(),
            "v2 data"
        );
    }

    #[test]
    fn a_crash_mid_swap_leaves_one_good_snapshot() {
        let (_d, vols, snaps) = setup();
        take(&vols, &snaps, "run-1").unwrap();
        // As if the process died after setting the old snapshot aside and
        // before renaming the new one in.
        fs::rename(current(&snaps), snaps.join("previous.swap")).unwrap();
        fs::create_dir_all(snaps.join("incoming.tmp/volume-0")).unwrap();
        assert_eq!(manifest(&snaps).unwrap().unwrap().tag, "run-1");
        let entries: Vec<_> = fs::read_dir(&snaps)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries, vec!["last-known-good"]);
    }

    #[test]
    fn a_damaged_snapshot_is_refused_and_the_volumes_are_left_alone() {
        let (_d, vols, snaps) = setup();
        take(&vols, &snaps, "run-1").unwrap();
        write(&current(&snaps), "volume-0/marker.txt", b"bit rot");
        write(&vols[0], "marker.txt", b"live data");
        let err = restore(&vols, &snaps).unwrap_err().to_string();
        assert!(err.contains("does not match its manifest"), "{err}");
        assert_eq!(
            fs::read_to_string(vols[0].join("marker.txt")).unwrap(),
            "live data"
        );
        assert!(matches!(
            restore(&vols, &snaps.join("none")),
            Err(Error::Missing(_))
        ));
    }

    #[test]
    fn last_good_is_written_atomically_and_read_back() {
        let (_d, _vols, snaps) = setup();
        assert_eq!(last_good(&snaps).unwrap(), None);
        set_last_good(&snaps, "10.7.9+26.6.2").unwrap();
        assert_eq!(last_good(&snaps).unwrap().as_deref(), Some("10.7.9+26.6.2"));
        set_last_good(&snaps, "10.7.10+26.6.2").unwrap();
        assert_eq!(
            last_good(&snaps).unwrap().as_deref(),
            Some("10.7.10+26.6.2")
        );
    }
}
