//! The alerts every workflow raised, newest first.

use super::{Error, Ops, Result};

/// The most alerts one read returns.
pub const MAX_ALERTS: usize = 1000;

impl Ops {
    /// The newest `limit` alerts.
    pub fn alerts(&self, limit: usize) -> Result<Vec<serde_json::Value>> {
        if !(1..=MAX_ALERTS).contains(&limit) {
            return Err(Error::BadRequest(format!(
                "limit must be 1 to {MAX_ALERTS}"
            )));
        }
        Ok(crate::serve::alert_sink(self.loaded())
            .list()
            .into_iter()
            .take(limit)
            .collect())
    }
}
