//! Moves every open flash sale along several times a second (`FlashSaleService::settle`): lets
//! the waiting room through at its rate, expires lapsed holds, marks paid ones, ends sales at
//! their end. Every instance runs it; the store's conditional writes make rounds that race
//! harmless.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::next_round;
use crate::app::AppContext;
use crate::db::scoped;

const ROUND: Duration = Duration::from_millis(250);
/// The round's look for open sales, counted apart from the work it finds.
const IDLE_SCOPE: &str = "worker:flash-sales-idle";

pub async fn run(app: AppContext, cancel: CancellationToken) {
    while next_round(&cancel, None, ROUND).await.is_some() {
        let sales = match scoped(IDLE_SCOPE, app.flash_sales.open_sales()).await {
            Ok(sales) => sales,
            Err(err) => {
                tracing::warn!(error = %err, "listing open flash sales failed; retrying");
                continue;
            }
        };
        for sale in sales {
            if let Err(err) = app.flash_sales.settle(&sale).await {
                tracing::warn!(error = %err, sale, "settling a flash sale failed; retrying");
            }
        }
    }
}
