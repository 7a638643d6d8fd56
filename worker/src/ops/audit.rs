//! The audit archive of closed runs: its hash chain verified end to end,
//! and its runs for an auditor.

use steward_activities::store::archive::{self, Broken, Entry};

use super::{Error, Ops, Result, time};

/// The verdict on the archive's chain.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Verdict {
    /// Whether every entry is as it was appended.
    pub verified: bool,
    /// Entries read.
    pub entries: usize,
    /// The last entry's hash, when it verifies.
    pub last: Option<String>,
    /// The first entry changed, removed or reordered.
    #[schema(value_type = Option<Object>)]
    pub first_broken: Option<Broken>,
}

impl Ops {
    /// Recomputes the archive's hash chain.
    pub async fn verify_audit(&self) -> Result<Verdict> {
        let entries = self
            .store()
            .await?
            .archive_entries(None)
            .await
            .map_err(Error::store("reading the audit archive"))?;
        Ok(match archive::verify(&entries) {
            Ok(n) => Verdict {
                verified: true,
                entries: n,
                last: entries.last().map(|e| e.entry_sha256.clone()),
                first_broken: None,
            },
            Err(broken) => Verdict {
                verified: false,
                entries: entries.len(),
                last: None,
                first_broken: Some(broken),
            },
        })
    }

    /// The archived runs (chain order) that closed at or after `since`.
    pub async fn export_audit(&self, since: Option<&str>) -> Result<Vec<Entry>> {
        let since = time::since_ms(since, "since")?.map(steward_activities::time::millis_text);
        self.store()
            .await?
            .archive_entries(since.as_deref())
            .await
            .map_err(Error::store("reading the audit archive"))
    }
}
