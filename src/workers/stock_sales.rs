//! Settles sold units out of reserved stock. An order records what it sold as pending sales
//! (`inventory::sell`) instead of updating the stock row, which its durable commit would hold
//! locked until the log reached the disk: one hot product's orders queued behind each other's
//! flushes. This worker takes the pending sales out of reserved in batches, each in one
//! transaction that also deletes them, so a crash loses or repeats none; that transaction is
//! not durable (a lost one is simply done again), and it changes a hot product's row once per
//! batch rather than once per order.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Round, has_work, serve_queue};
use crate::app::AppContext;
use crate::db::{Queue, inventory};
use crate::ports::StoreError;

/// Orders of this process wake the worker; the timer finds what they do not: another
/// process's orders whose worker stopped, sales a crash left.
const SETTLE_POLL: Duration = Duration::from_secs(1);
/// A woken worker waits this long for more sales, so that a round settles many orders' (under
/// load, 10 rounds a second rather than 45 at 20 ms); reads subtract pending sales, so nobody
/// sees the wait.
const GATHER: Duration = Duration::from_millis(100);
/// The timer's look for pending sales, counted apart from the work it finds.
const IDLE_SCOPE: &str = "worker:stock-sales-idle";

pub async fn run(app: AppContext, cancel: CancellationToken) {
    serve_queue(app, cancel, (Queue::StockSales, SETTLE_POLL), "settling sales failed", settle).await;
}

/// Settles what is pending; on the timer, only after one cheap look finds something.
async fn settle(app: &AppContext, round: Round) -> Result<usize, StoreError> {
    if !has_work(round, GATHER, IDLE_SCOPE, app.db.with_conn(async |c| inventory::any_unsettled(c).await)).await? {
        return Ok(0);
    }
    app.db.transaction(async |c| inventory::settle_sales(c).await).await
}
