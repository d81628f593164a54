//! Contract operations whose capabilities have not landed yet. Each answers NOT_IMPLEMENTED (after
//! the same authentication checks the real operation will make), so clients and the black-box
//! suites see the whole contract and a clear, stable answer.

use async_graphql::{Context, ID, Object, Subscription};
use futures::stream::Empty;

use super::types::{FlashSale, FlashSaleEntry, FlashSaleInput};
use super::{app, viewer};
use crate::error::{ApiError, ApiResult};

fn pending<T>(operation: &str) -> ApiResult<T> {
    Err(ApiError::not_implemented(operation))
}

#[derive(Default)]
pub struct PendingQuery;

#[Object]
impl PendingQuery {
    async fn flash_sale(&self, #[graphql(name = "id")] _id: ID) -> ApiResult<Option<FlashSale>> {
        pending("flashSale")
    }
}

#[derive(Default)]
pub struct PendingMutation;

#[Object]
impl PendingMutation {
    /// Flash sales: enter the sale's queue; returns the caller's entry (position, or a 2-minute reservation).
    async fn join_flash_sale(&self, #[graphql(name = "saleId")] _sale_id: ID) -> ApiResult<FlashSaleEntry> {
        pending("joinFlashSale")
    }

    async fn admin_create_flash_sale(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "input")] _input: FlashSaleInput,
    ) -> ApiResult<FlashSale> {
        app(ctx).auth.require_admin(viewer(ctx))?;
        pending("adminCreateFlashSale")
    }
}

#[derive(Default)]
pub struct PendingSubscription;

#[Subscription]
impl PendingSubscription {
    /// The caller's position/reservation in a flash sale, pushed as it changes.
    async fn flash_sale_entry_updated(
        &self,
        #[graphql(name = "saleId")] _sale_id: ID,
    ) -> async_graphql::Result<Empty<FlashSaleEntry>> {
        Ok(pending("flashSaleEntryUpdated")?)
    }
}
