//! Contract operations whose capabilities have not landed yet. Each answers NOT_IMPLEMENTED (after
//! the same authentication checks the real operation will make), so clients and the black-box
//! suites see the whole contract and a clear, stable answer.

use async_graphql::{Context, ID, Object, Subscription};
use futures::stream::Empty;

use super::types::{
    CheckoutSession, FlashSale, FlashSaleEntry, FlashSaleInput, Order, OrderConnection, OrderEvent, OrderStatus,
    PlaceOrderInput,
};
use super::{app, viewer};
use crate::error::{ApiError, ApiResult};

fn pending<T>(operation: &str) -> ApiResult<T> {
    Err(ApiError::not_implemented(operation))
}

#[derive(Default)]
pub struct PendingQuery;

#[Object]
impl PendingQuery {
    async fn checkout_session(&self, #[graphql(name = "id")] _id: ID) -> ApiResult<Option<CheckoutSession>> {
        pending("checkoutSession")
    }

    /// The caller's own order; null for anyone else's.
    async fn order(&self, #[graphql(name = "id")] _id: ID) -> ApiResult<Option<Order>> {
        pending("order")
    }

    async fn orders(
        &self,
        #[graphql(name = "first", default_with = "Some(20)")] _first: Option<i32>,
        #[graphql(name = "after")] _after: Option<String>,
    ) -> ApiResult<OrderConnection> {
        pending("orders")
    }

    async fn flash_sale(&self, #[graphql(name = "id")] _id: ID) -> ApiResult<Option<FlashSale>> {
        pending("flashSale")
    }
}

#[derive(Default)]
pub struct PendingMutation;

#[Object]
impl PendingMutation {
    /// Reserves every cart line (all or nothing) for 10 minutes and prices the order.
    async fn initiate_checkout(&self) -> ApiResult<CheckoutSession> {
        pending("initiateCheckout")
    }

    /// Charges the payment method and creates the order. Same idempotencyKey => same order, one charge.
    async fn place_order(&self, #[graphql(name = "input")] _input: PlaceOrderInput) -> ApiResult<Order> {
        pending("placeOrder")
    }

    /// Releases the session's reservations.
    async fn cancel_checkout(
        &self,
        #[graphql(name = "checkoutSessionId")] _checkout_session_id: ID,
    ) -> ApiResult<CheckoutSession> {
        pending("cancelCheckout")
    }

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

    async fn admin_update_order_status(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "orderId")] _order_id: ID,
        #[graphql(name = "status")] _status: OrderStatus,
    ) -> ApiResult<Order> {
        app(ctx).auth.require_admin(viewer(ctx))?;
        pending("adminUpdateOrderStatus")
    }
}

#[derive(Default)]
pub struct PendingSubscription;

#[Subscription]
impl PendingSubscription {
    /// Status changes of the caller's orders (one order if orderId is given).
    async fn order_updated(
        &self,
        #[graphql(name = "orderId")] _order_id: Option<ID>,
    ) -> async_graphql::Result<Empty<OrderEvent>> {
        Ok(pending("orderUpdated")?)
    }

    /// The caller's position/reservation in a flash sale, pushed as it changes.
    async fn flash_sale_entry_updated(
        &self,
        #[graphql(name = "saleId")] _sale_id: ID,
    ) -> async_graphql::Result<Empty<FlashSaleEntry>> {
        Ok(pending("flashSaleEntryUpdated")?)
    }
}
