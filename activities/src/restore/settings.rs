//! `[restore]`: where backups go, how they are sealed and copied off-node,
//! where they are restored, and the targets a drill is held to.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::crypt;
use crate::dburl::DatabaseUrl;

/// `[restore]`: where backups go, how they are sealed and copied off-node,
/// where they are restored, and the targets a drill is held to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RestoreSettings {
    /// Backups and their manifests on this node; default `<data_dir>/backups`.
    pub backup_dir: Option<PathBuf>,
    /// Backups kept; older ones are removed after a verified drill.
    pub keep: usize,
    /// The age public key (`age1…`) every backup is encrypted to.
    pub recipient: Option<String>,
    /// The file with the matching private key (`AGE-SECRET-KEY-1…`), read
    /// only by the drill's restore step. Keep it off the worker's data
    /// folder.
    pub identity_file: Option<PathBuf>,
    /// Another host's storage (a mount): where each backup is copied, and
    /// what the drill restores from.
    pub offsite_dir: Option<PathBuf>,
    /// An argv command that makes the off-node copy instead of a plain
    /// copy (`{file}`: the backup, `{dir}`: `offsite_dir`).
    pub offsite_copy: Option<Vec<String>>,
    /// A PostgreSQL store's isolated target: an admin URL of another
    /// server or cluster, where a scratch database is made and dropped.
    pub target_url: Option<String>,
    /// A SQLite store's isolated target folder; default
    /// `<data_dir>/restore-target`.
    pub target_dir: Option<PathBuf>,
    /// RTO target: seconds from the start of the restore until the
    /// restored store answers its health queries.
    pub rto_seconds: f64,
    /// RPO target: the oldest a restored backup may be, in seconds.
    pub rpo_seconds: f64,
    /// The host whose workers take the backup and its off-node copy
    /// (`[worker] host`); unset: any worker. A SQLite store is a file on
    /// one host: pin its backups there.
    pub runs_on: Option<String>,
}

impl RestoreSettings {
    /// What a drill that takes a backup lacks, when it lacks something.
    pub fn unready(&self) -> Option<&'static str> {
        if self.recipient.is_none() {
            return Some(
                "restore drills write encrypted backups only: set [restore] recipient to an age \
                 public key (`steward restore-drill keygen --out FILE` makes a key pair)",
            );
        }
        if self.offsite_dir.is_none() {
            return Some(
                "set [restore] offsite_dir (another host's storage): the drill restores from the off-node copy",
            );
        }
        None
    }
}

impl Default for RestoreSettings {
    fn default() -> Self {
        Self {
            backup_dir: None,
            keep: 7,
            recipient: None,
            identity_file: None,
            offsite_dir: None,
            offsite_copy: None,
            target_url: None,
            target_dir: None,
            rto_seconds: 900.0,
            rpo_seconds: 26.0 * 3600.0,
            runs_on: None,
        }
    }
}

impl RestoreSettings {
    /// Checks values that parse but are invalid; returns (key, message).
    pub fn check(&self) -> Result<(), (String, String)> {
        if let Some(r) = &self.recipient {
            crypt::check_recipient(r).map_err(|m| ("recipient".to_string(), m))?;
        }
        if let Some(c) = &self.offsite_copy
            && c.first().is_none_or(|p| p.trim().is_empty())
        {
            return Err((
                "offsite_copy".into(),
                "must be a non-empty argv list".into(),
            ));
        }
        if let Some(u) = &self.target_url
            && !DatabaseUrl::parse(u).is_ok_and(|u| !u.is_sqlite())
        {
            return Err((
                "target_url".into(),
                "must be a postgres:// URL of another server".into(),
            ));
        }
        for (key, v) in [
            ("rto_seconds", self.rto_seconds),
            ("rpo_seconds", self.rpo_seconds),
        ] {
            if !v.is_finite() || v <= 0.0 {
                return Err((key.into(), "must be more than 0".into()));
            }
        }
        Ok(())
    }
}
