//! Publishes the outbox after commit: at once when a write wakes it, and on a short timer for
//! anything left over (a failed publish, another process's writes).

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::QueueWorker;
use crate::app::AppContext;
use crate::db::{Pool, Queue, Writes, outbox};
use crate::ports::{Event, EventBus, StoreError};

const DISPATCH_BATCH: i64 = 500;
/// Writes of this process wake the worker; the timer finds what they do not: a failed
/// publish, another process's writes (`shop import`, another instance's crash). A woken worker
/// waits 5 ms for more writes to publish them together: a round costs two statements whatever
/// it carries, and events follow each other closely under load.
const WORKER: QueueWorker = QueueWorker {
    queue: Queue::Outbox,
    poll: Duration::from_secs(1),
    coalesce: Duration::from_millis(5),
    idle_scope: "worker:outbox-idle",
    failed: "publishing the outbox failed",
};
/// How long a claimed batch is its dispatcher's before another may publish it again.
const CLAIM: chrono::Duration = chrono::Duration::seconds(30);

pub async fn run(app: AppContext, cancel: CancellationToken) {
    let pending = async |app: &AppContext| app.db.with_conn(async |c| outbox::any_pending(c).await).await;
    let dispatch = async |app: &AppContext| dispatch_pending(&app.db, app.bus.as_ref(), app.clock.now()).await;
    WORKER.serve(app, cancel, pending, dispatch).await;
}

/// Publishes everything pending; returns how many events went out. Each batch is claimed, then
/// published with no transaction open (on SQLite the writer is free meanwhile), then marked
/// published. A batch whose publishing fails is given back at once; one whose dispatcher dies
/// is claimed again when its claim lapses, so every event goes out at least once.
pub async fn dispatch_pending(db: &Pool, bus: &dyn EventBus, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let claimed = db.write(async |c| outbox::claim(c, DISPATCH_BATCH, now, now + CLAIM).await).await?;
        if claimed.is_empty() {
            return Ok(total);
        }
        let (ids, events): (Vec<i64>, Vec<Event>) = claimed.into_iter().unzip();
        if let Err(err) = bus.publish(&events).await {
            let given_back = Writes::new(outbox::unclaimed(&ids));
            if let Err(also) = db.write(async |c| given_back.run(c, "giving outbox events back").await).await {
                tracing::warn!(error = %also, "giving back unpublished events failed; their claim lapses");
            }
            return Err(StoreError::internal("publishing events", err));
        }
        let published = Writes::new(outbox::delivered(&ids)).and(outbox::published(&ids, now));
        db.write(async |c| published.run(c, "marking events published").await).await?;
        total += ids.len();
        if ids.len() < DISPATCH_BATCH as usize {
            return Ok(total);
        }
    }
}
