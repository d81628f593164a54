//! Flash sales (contract notes 14 to 16).

use async_graphql::{Context, ID, Object, Subscription};
use futures::{Stream, StreamExt};

use super::types::{FlashSale, FlashSaleEntry, FlashSaleInput, FlashSaleReport};
use super::{app, viewer};
use crate::error::{ApiError, ApiResult};

#[derive(Default)]
pub struct FlashSaleQuery;

#[Object]
impl FlashSaleQuery {
    async fn flash_sale(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<FlashSale>> {
        Ok(app(ctx).flash_sales.sale(&id).await?.map(FlashSale::from))
    }

    /// Flash sales that are scheduled or running, soonest start first.
    async fn flash_sales(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
    ) -> ApiResult<Vec<FlashSale>> {
        let sales = app(ctx).flash_sales.upcoming(first.unwrap_or(20)).await?;
        Ok(sales.into_iter().map(FlashSale::from).collect())
    }

    /// The caller's entry in a sale; null when the caller has not joined it.
    async fn flash_sale_entry(&self, ctx: &Context<'_>, sale_id: ID) -> ApiResult<Option<FlashSaleEntry>> {
        Ok(app(ctx).flash_sales.entry(viewer(ctx), &sale_id).await?.map(FlashSaleEntry::from))
    }

    /// Admin: counts and reconciliation of one sale.
    async fn admin_flash_sale_report(&self, ctx: &Context<'_>, sale_id: ID) -> ApiResult<FlashSaleReport> {
        app(ctx).auth.require_admin(viewer(ctx))?;
        Ok(app(ctx).flash_sales.report(&sale_id).await?.into())
    }
}

#[derive(Default)]
pub struct FlashSaleMutation;

#[Object]
impl FlashSaleMutation {
    /// Flash sales: enter the sale's queue; returns the caller's entry (position, or a 2-minute reservation).
    async fn join_flash_sale(
        &self,
        ctx: &Context<'_>,
        sale_id: ID,
        #[graphql(default = 1)] quantity: Option<i32>,
    ) -> ApiResult<FlashSaleEntry> {
        Ok(app(ctx).flash_sales.join(viewer(ctx), &sale_id, quantity.unwrap_or(1)).await?.into())
    }

    /// Leaves the waiting room, or gives a held unit back at once.
    async fn leave_flash_sale(&self, ctx: &Context<'_>, sale_id: ID) -> ApiResult<FlashSaleEntry> {
        Ok(app(ctx).flash_sales.leave(viewer(ctx), &sale_id).await?.into())
    }

    async fn admin_create_flash_sale(&self, ctx: &Context<'_>, input: FlashSaleInput) -> ApiResult<FlashSale> {
        app(ctx).auth.require_admin(viewer(ctx))?;
        Ok(app(ctx).flash_sales.create(input.into()).await?.into())
    }

    /// Ends the sale now: releases holds, returns unsold units to regular stock, reconciles.
    async fn admin_end_flash_sale(&self, ctx: &Context<'_>, sale_id: ID) -> ApiResult<FlashSaleReport> {
        app(ctx).auth.require_admin(viewer(ctx))?;
        Ok(app(ctx).flash_sales.end(&sale_id).await?.into())
    }
}

#[derive(Default)]
pub struct FlashSaleSubscription;

#[Subscription]
impl FlashSaleSubscription {
    /// The caller's position/reservation in a flash sale, pushed as it changes.
    async fn flash_sale_entry_updated(
        &self,
        ctx: &Context<'_>,
        sale_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = FlashSaleEntry>> {
        let entries = app(ctx).flash_sales.watch_entry(viewer(ctx), &sale_id).await.map_err(ApiError::from)?;
        Ok(entries.map(FlashSaleEntry::from))
    }

    /// Public state of a sale (remaining units, people waiting, status), pushed as it changes (at most a few times a second).
    async fn flash_sale_updated(
        &self,
        ctx: &Context<'_>,
        sale_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = FlashSale>> {
        let states = app(ctx).flash_sales.watch_sale(&sale_id).await.map_err(ApiError::from)?;
        Ok(states.map(FlashSale::from))
    }
}
