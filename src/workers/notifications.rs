//! Sends order confirmations through the Notifier port: at once when an order wakes it, and on
//! a timer for retries, so a slow or broken mail path never blocks or fails an order.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::next_round;
use crate::app::AppContext;
use crate::db::{Queue, notifications};
use crate::domain::notify::MAX_ATTEMPTS;

/// Orders wake the worker at once; the timer only serves retries.
const POLL: Duration = Duration::from_secs(5);
/// A claimed notification is not handed to another worker for this long.
const LEASE: chrono::Duration = chrono::Duration::seconds(60);
const BATCH: i64 = 50;

pub async fn run(app: AppContext, cancel: CancellationToken) {
    let wake = app.db.wakers().clone();
    while next_round(&cancel, Some(wake.of(Queue::Notifications)), POLL).await.is_some() {
        send_due(&app).await;
    }
}

/// Sends what is due now; returns how many went out.
pub async fn send_due(app: &AppContext) -> usize {
    let now = app.clock.now();
    let due = match app.db.write(async |c| notifications::claim_due(c, now, now + LEASE, BATCH).await).await {
        Ok(due) => due,
        Err(err) => {
            tracing::warn!(error = %err, "loading notifications failed");
            return 0;
        }
    };
    let mut sent = Vec::new();
    for notification in due {
        let attempts = notification.attempts + 1;
        match app.notifier.send(&notification).await {
            Ok(()) => sent.push(notification.id),
            Err(err) => {
                let retry_at = (attempts < MAX_ATTEMPTS).then(|| backoff(app.clock.now(), attempts));
                if retry_at.is_none() {
                    tracing::error!(order = %notification.order_id, error = %err, "confirmation given up");
                } else {
                    tracing::warn!(order = %notification.order_id, error = %err, attempts, "confirmation failed; will retry");
                }
                // Given up: the attempt count alone keeps it out of the due list.
                let (attempts, retry_at) = match retry_at {
                    Some(at) => (attempts, at),
                    None => (attempts.max(MAX_ATTEMPTS), app.clock.now()),
                };
                let error = err.to_string();
                let recorded = app
                    .db
                    .write(async |c| notifications::mark_failed(c, &notification.id, attempts, retry_at, &error).await)
                    .await;
                if let Err(err) = recorded {
                    tracing::warn!(error = %err, "recording a failed notification failed");
                }
            }
        }
    }
    if !sent.is_empty() {
        let now = app.clock.now();
        if let Err(err) = app.db.write(async |c| notifications::mark_sent(c, &sent, now).await).await {
            tracing::warn!(error = %err, "recording sent notifications failed");
        }
    }
    sent.len()
}

/// 2, 4, 8, … seconds after the attempt.
fn backoff(now: DateTime<Utc>, attempts: i32) -> DateTime<Utc> {
    now + chrono::Duration::seconds(1 << attempts.clamp(1, 12))
}
