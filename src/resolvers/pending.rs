//! Contract operations whose capabilities have not landed yet. Each answers NOT_IMPLEMENTED (after
//! the same authentication checks the real operation will make), so clients and the black-box
//! suites see the whole contract and a clear, stable answer.

use async_graphql::{Context, ID, Object, Subscription};
use futures::stream::Empty;

use super::types::{FlashSale, FlashSaleEntry, FlashSaleInput, FlashSaleReport};
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

    /// Flash sales that are scheduled or running, soonest start first.
    async fn flash_sales(
        &self,
        #[graphql(name = "first", default = 20)] _first: Option<i32>,
    ) -> ApiResult<Vec<FlashSale>> {
        pending("flashSales")
    }

    /// The caller's entry in a sale; null when the caller has not joined it.
    async fn flash_sale_entry(&self, #[graphql(name = "saleId")] _sale_id: ID) -> ApiResult<Option<FlashSaleEntry>> {
        pending("flashSaleEntry")
    }

    /// Admin: counts and reconciliation of one sale.
    async fn admin_flash_sale_report(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "saleId")] _sale_id: ID,
    ) -> ApiResult<FlashSaleReport> {
        app(ctx).auth.require_admin(viewer(ctx))?;
        pending("adminFlashSaleReport")
    }
}

#[derive(Default)]
pub struct PendingMutation;

#[Object]
impl PendingMutation {
    /// Flash sales: enter the sale's queue; returns the caller's entry (position, or a 2-minute reservation).
    async fn join_flash_sale(
        &self,
        #[graphql(name = "saleId")] _sale_id: ID,
        #[graphql(name = "quantity", default = 1)] _quantity: Option<i32>,
    ) -> ApiResult<FlashSaleEntry> {
        pending("joinFlashSale")
    }

    /// Leaves the waiting room, or gives a held unit back at once.
    async fn leave_flash_sale(&self, #[graphql(name = "saleId")] _sale_id: ID) -> ApiResult<FlashSaleEntry> {
        pending("leaveFlashSale")
    }

    /// Ends the sale now: releases holds, returns unsold units to regular stock, reconciles.
    async fn admin_end_flash_sale(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "saleId")] _sale_id: ID,
    ) -> ApiResult<FlashSaleReport> {
        app(ctx).auth.require_admin(viewer(ctx))?;
        pending("adminEndFlashSale")
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

    /// Public state of a sale (remaining units, people waiting, status), pushed as it changes (at most a few times a second).
    async fn flash_sale_updated(
        &self,
        #[graphql(name = "saleId")] _sale_id: ID,
    ) -> async_graphql::Result<Empty<FlashSale>> {
        Ok(pending("flashSaleUpdated")?)
    }
}
