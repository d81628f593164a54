//! Settles sold units out of reserved stock. An order records what it sold as pending sales
//! (`inventory::sell`) instead of updating the stock row, which its durable commit would hold
//! locked until the log reached the disk: one hot product's orders queued behind each other's
//! flushes. This worker takes the pending sales out of reserved in batches, each in one
//! transaction that also deletes them, so a crash loses or repeats none; that transaction is
//! not durable (a lost one is simply done again), and it changes a hot product's row once per
//! batch rather than once per order.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::QueueWorker;
use crate::app::AppContext;
use crate::db::{Queue, inventory};

/// Orders of this process wake the worker; the timer finds what they do not: another
/// process's orders whose worker stopped, sales a crash left. A woken worker waits 100 ms for
/// more sales, so that a round settles many orders' (under load, 10 rounds a second rather than
/// 45 at 20 ms); reads subtract pending sales, so nobody sees the wait.
const WORKER: QueueWorker = QueueWorker {
    queue: Queue::StockSales,
    poll: Duration::from_secs(1),
    coalesce: Duration::from_millis(100),
    idle_scope: "worker:stock-sales-idle",
    failed: "settling sales failed",
};

pub async fn run(app: AppContext, cancel: CancellationToken) {
    let pending = async |app: &AppContext| app.db.with_conn(async |c| inventory::any_unsettled(c).await).await;
    let settle = async |app: &AppContext| app.db.transaction(async |c| inventory::settle_sales(c).await).await;
    WORKER.serve(app, cancel, pending, settle).await;
}
