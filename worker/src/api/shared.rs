//! Reads the API shares between requests: a backfill's status (a query,
//! which the worker answers one at a time per run), the inbox, the
//! schedules and the page's runs (visibility calls, which the Temporal
//! frontend limits per namespace: 10 a second by default, a client over
//! it waits a second or more for its retry). Concurrent requests for the
//! same read share one call, and its answer serves the requests that
//! arrive within `FRESH` of the call's start. Any request that changes
//! something (every method but GET and HEAD) forgets them all once it is
//! answered, so an operator reads their own change at once; a change made
//! elsewhere (the CLI, another API process) shows within `FRESH`, well
//! within the lag visibility has anyway. Failures are never kept.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

/// How long an answer serves later requests.
pub const FRESH: Duration = Duration::from_secs(1);

/// One kind of read, by key.
#[derive(Debug)]
pub struct Shared<V> {
    entries: Mutex<HashMap<String, Entry<V>>>,
}

#[derive(Debug)]
struct Entry<V> {
    asked: Instant,
    answer: Arc<OnceCell<V>>,
}

impl<V> Default for Shared<V> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<V: Clone> Shared<V> {
    /// The answer for `key`: the one in flight or asked within `FRESH`,
    /// else `fetch`'s. A failure goes to the requests waiting on it, and
    /// the next of them asks again.
    pub async fn get<E, F, Fut>(&self, key: &str, fetch: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let answer = {
            let mut entries = self.entries.lock().expect("shared reads");
            let now = Instant::now();
            entries.retain(|_, e| now.duration_since(e.asked) < FRESH);
            entries
                .entry(key.to_string())
                .or_insert_with(|| Entry {
                    asked: now,
                    answer: Arc::new(OnceCell::new()),
                })
                .answer
                .clone()
        };
        answer.get_or_try_init(fetch).await.cloned()
    }

    /// Forgets every answer: the next request asks again. Calls in flight
    /// still answer the requests already waiting on them.
    pub fn forget(&self) {
        self.entries.lock().expect("shared reads").clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn concurrent_requests_share_one_call_and_a_change_forgets_it() {
        let shared: Shared<u32> = Shared::default();
        let calls = AtomicU32::new(0);
        let fetch = || async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, ()>(n)
        };
        let (a, b, c) = tokio::join!(
            shared.get("k", fetch),
            shared.get("k", fetch),
            shared.get("k", fetch)
        );
        assert_eq!((a, b, c), (Ok(1), Ok(1), Ok(1)));
        assert_eq!(
            shared.get("k", fetch).await,
            Ok(1),
            "fresh: not asked again"
        );
        assert_eq!(shared.get("other", fetch).await, Ok(2), "keys apart");
        shared.forget();
        assert_eq!(
            shared.get("k", fetch).await,
            Ok(3),
            "forgotten: asked again"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_failure_is_not_kept_and_an_answer_goes_stale() {
        let shared: Shared<u32> = Shared::default();
        assert_eq!(
            shared.get("k", || async { Err::<u32, _>("down") }).await,
            Err("down")
        );
        assert_eq!(shared.get("k", || async { Ok::<_, &str>(7) }).await, Ok(7));
        tokio::time::sleep(FRESH + Duration::from_millis(50)).await;
        assert_eq!(shared.get("k", || async { Ok::<_, &str>(8) }).await, Ok(8));
    }
}
