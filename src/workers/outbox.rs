//! Publishes the outbox after commit: at once when a write wakes it, and on a short timer for
//! anything left over (a failed publish, another process's writes).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Round, next_round};
use crate::app::AppContext;
use chrono::{DateTime, Utc};

use crate::db::{Pool, Queue, outbox, scoped};
use crate::ports::{EventBus, StoreError};

const DISPATCH_BATCH: i64 = 500;
/// Writes of this process wake the worker; the timer finds what they do not: a failed
/// publish, another process's writes (`shop import`, another instance's crash).
const DISPATCH_POLL: Duration = Duration::from_secs(1);
/// A woken worker waits this long for more writes to publish them together: a round costs
/// three statements whatever it carries, and events follow each other closely under load.
const COALESCE: Duration = Duration::from_millis(5);
/// The timer's look at the outbox, counted apart from the work it finds.
const IDLE_SCOPE: &str = "worker:outbox-idle";

pub async fn run(app: AppContext, cancel: CancellationToken) {
    let wake = app.db.wakers().clone();
    while let Some(round) = next_round(&cancel, Some(wake.of(Queue::Outbox)), DISPATCH_POLL).await {
        if let Err(err) = dispatch(&app, round).await {
            tracing::warn!(error = %err, "publishing the outbox failed; retrying");
        }
    }
}

/// Dispatches what is pending; on the timer, only after one cheap look finds something.
async fn dispatch(app: &AppContext, round: Round) -> Result<usize, StoreError> {
    match round {
        Round::Woken => tokio::time::sleep(COALESCE).await,
        Round::Timer => {
            if !scoped(IDLE_SCOPE, app.db.with_conn(async |c| outbox::any_pending(c).await)).await? {
                return Ok(0);
            }
        }
    }
    dispatch_pending(&app.db, app.bus.as_ref(), app.clock.now()).await
}

/// Publishes everything pending; returns how many events went out. Each batch is claimed and
/// published in one transaction, so a batch whose publishing fails stays for the next try.
pub async fn dispatch_pending(db: &Pool, bus: &dyn EventBus, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let sent = db
            .transaction(async |c| {
                let events = outbox::claim(c, DISPATCH_BATCH, now).await?;
                if !events.is_empty() {
                    bus.publish(&events).await.map_err(|err| StoreError::internal("publishing events", err))?;
                }
                Ok::<_, StoreError>(events.len())
            })
            .await?;
        total += sent;
        if sent < DISPATCH_BATCH as usize {
            return Ok(total);
        }
    }
}
