//! What runs beside the worker on a period (the guard, the archiver, the
//! disk probe).

use std::future::Future;

/// Runs `pass` every `every`, the first at once, until dropped: what runs
/// beside the worker (the guard, the archiver). A failed pass is logged as
/// `what` and tried again next time; a slow one delays the next.
pub async fn periodically<F, Fut>(every: std::time::Duration, what: &str, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = pass().await {
            tracing::warn!("{what} failed: {e:#}");
        }
    }
}
