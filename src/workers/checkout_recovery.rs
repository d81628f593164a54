//! Finishes checkouts whose claimant is gone (a crash, a request cut off, a store outage after
//! the charge): at start, then as soon as the next charge or refund lease runs out. A lease
//! claimed on this instance wakes the worker (`Queue::SagaLeases`), which then knows when it
//! ends without asking the store; leases of other instances are looked up every sweep interval.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::app::AppContext;
use crate::db::Queue;

/// How soon a round that could not reach the store is tried again.
const RETRY: Duration = Duration::from_secs(1);
/// The shortest wait between rounds, so that a saga recovery cannot settle yet is not spun on.
const MIN_WAIT: Duration = Duration::from_millis(100);

pub async fn run(app: AppContext, cancel: CancellationToken) {
    let period = app.config.sweep_interval.to_std().unwrap_or(Duration::from_secs(60));
    let lease = app.checkout.lease_length().to_std().unwrap_or(period);
    let wakers = app.db.wakers().clone();
    let claimed = wakers.of(Queue::SagaLeases);
    loop {
        let mut due = Instant::now() + round(&app).await.clamp(MIN_WAIT, period);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep_until(due) => break,
                // A lease claimed just now ends a lease length from now.
                () = claimed.notified() => due = due.min(Instant::now() + lease),
            }
        }
    }
}

/// Settles what is due and answers how long until the next lease ends.
async fn round(app: &AppContext) -> Duration {
    let now = app.clock.now();
    match app.checkout.recover(now).await {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, "unfinished checkouts settled"),
        Err(err) => {
            tracing::warn!(error = %err, "settling unfinished checkouts failed; retrying");
            return RETRY;
        }
    }
    match app.checkout.next_lease_end().await {
        Ok(Some(end)) => (end - now).to_std().unwrap_or_default(),
        Ok(None) => Duration::MAX,
        Err(err) => {
            tracing::warn!(error = %err, "reading checkout leases failed; retrying");
            RETRY
        }
    }
}
