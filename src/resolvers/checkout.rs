use super::rate_limits::RateLimited;
use crate::domain::limits::LimitedAction;
use async_graphql::{Context, ID, Object};

use super::types::{CheckoutSession, Order, PlaceOrderInput};
use super::{app, viewer};
use crate::error::ApiResult;

#[derive(Default)]
pub struct CheckoutQuery;

#[Object]
impl CheckoutQuery {
    /// The caller's checkout session; null for anyone else's.
    async fn checkout_session(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<CheckoutSession>> {
        Ok(app(ctx).checkout.session(viewer(ctx), &id).await?.map(CheckoutSession))
    }
}

#[derive(Default)]
pub struct CheckoutMutation;

#[Object]
impl CheckoutMutation {
    /// Reserves every cart line (all or nothing) for 10 minutes and prices the order.
    #[graphql(guard = "RateLimited(LimitedAction::ShopperWrite)")]
    async fn initiate_checkout(&self, ctx: &Context<'_>) -> ApiResult<CheckoutSession> {
        Ok(CheckoutSession(app(ctx).checkout.initiate(viewer(ctx)).await?))
    }

    /// Charges the payment method and creates the order. Same idempotencyKey => same order, one charge.
    #[graphql(guard = "RateLimited(LimitedAction::ShopperWrite)")]
    async fn place_order(&self, ctx: &Context<'_>, input: PlaceOrderInput) -> ApiResult<Order> {
        Ok(Order(app(ctx).checkout.place_order(viewer(ctx), input.into()).await?))
    }

    /// Releases the session's reservations.
    #[graphql(guard = "RateLimited(LimitedAction::ShopperWrite)")]
    async fn cancel_checkout(&self, ctx: &Context<'_>, checkout_session_id: ID) -> ApiResult<CheckoutSession> {
        Ok(CheckoutSession(app(ctx).checkout.cancel(viewer(ctx), &checkout_session_id).await?))
    }
}
