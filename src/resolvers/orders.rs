use async_graphql::{Context, ID, Object, Subscription};
use futures::{Stream, StreamExt};

use super::types::{Order, OrderConnection, OrderEdge, OrderEvent, OrderStatus, PageInfo};
use super::{app, viewer};
use crate::error::{ApiError, ApiResult};
use crate::services::orders::cursor_of;

#[derive(Default)]
pub struct OrderQuery;

#[Object]
impl OrderQuery {
    /// The caller's own order; null for anyone else's.
    async fn order(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Order>> {
        Ok(app(ctx).orders.order(viewer(ctx), &id).await?.map(Order))
    }

    /// The caller's orders, newest first.
    async fn orders(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(20)")] first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<OrderConnection> {
        let page = app(ctx).orders.orders(viewer(ctx), first.unwrap_or(20), after.as_deref()).await?;
        let end_cursor = page.orders.last().map(cursor_of);
        Ok(OrderConnection {
            edges: page.orders.into_iter().map(OrderEdge).collect(),
            page_info: PageInfo { has_next_page: page.has_next_page, end_cursor },
        })
    }
}

#[derive(Default)]
pub struct OrderMutation;

#[Object]
impl OrderMutation {
    /// Moves an order along PENDING_PAYMENT -> PAID -> FULFILLED -> SHIPPED -> DELIVERED;
    /// CANCELLED before shipping refunds and restocks. Admins only.
    async fn admin_update_order_status(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
        status: OrderStatus,
    ) -> ApiResult<Order> {
        Ok(Order(app(ctx).orders.update_status(viewer(ctx), &order_id, status.into()).await?))
    }
}

#[derive(Default)]
pub struct OrderSubscription;

#[Subscription]
impl OrderSubscription {
    /// Status changes of the caller's orders (one order if orderId is given).
    async fn order_updated(
        &self,
        ctx: &Context<'_>,
        order_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = OrderEvent>> {
        let events = app(ctx)
            .orders
            .watch(viewer(ctx), order_id.as_ref().map(|id| id.as_str()))
            .await
            .map_err(ApiError::from)?;
        Ok(events.map(OrderEvent::from))
    }
}
