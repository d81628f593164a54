//! Finishes checkouts whose claimant is gone (a crash, a request cut off): at start, then as
//! soon as the next charge or refund lease runs out. The next lease is looked up again at least
//! every sweep interval, since other instances claim sagas meanwhile.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::next_round;
use crate::app::AppContext;

/// The shortest wait between rounds, so that a saga recovery cannot settle yet is not spun on.
const MIN_WAIT: Duration = Duration::from_secs(1);

pub async fn run(app: AppContext, cancel: CancellationToken) {
    let period = app.config.sweep_interval.to_std().unwrap_or(Duration::from_secs(60));
    loop {
        let now = app.clock.now();
        match app.checkout.recover(now).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "unfinished checkouts settled"),
            Err(err) => tracing::warn!(error = %err, "settling unfinished checkouts failed"),
        }
        let wait = match app.checkout.next_lease_end().await {
            Ok(Some(end)) => (end - now).to_std().unwrap_or_default().clamp(MIN_WAIT, period),
            Ok(None) => period,
            Err(err) => {
                tracing::warn!(error = %err, "reading checkout leases failed");
                period
            }
        };
        if next_round(&cancel, None, wait).await.is_none() {
            return;
        }
    }
}
