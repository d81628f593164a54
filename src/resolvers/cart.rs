use super::rate_limits::RateLimited;
use crate::domain::limits::LimitedAction;
use async_graphql::{Context, ID, Object, Subscription};
use futures::{Stream, StreamExt};

use super::types::Cart;
use super::{app, viewer};
use crate::error::ApiResult;

#[derive(Default)]
pub struct CartQuery;

#[Object]
impl CartQuery {
    /// The caller's cart (guest session or signed-in user); empty cart if none yet.
    async fn cart(&self, ctx: &Context<'_>) -> ApiResult<Cart> {
        Ok(Cart(app(ctx).carts.cart(viewer(ctx)).await?))
    }
}

#[derive(Default)]
pub struct CartMutation;

#[Object]
impl CartMutation {
    /// Adds quantity to the line (creating it). Fails with OUT_OF_STOCK beyond available stock.
    #[graphql(guard = "RateLimited(LimitedAction::ShopperWrite)")]
    async fn add_cart_item(&self, ctx: &Context<'_>, product_id: ID, quantity: i32) -> ApiResult<Cart> {
        Ok(Cart(app(ctx).carts.add_item(viewer(ctx), &product_id, quantity).await?))
    }

    /// Sets the line's quantity; 0 removes it.
    #[graphql(guard = "RateLimited(LimitedAction::ShopperWrite)")]
    async fn update_cart_item(&self, ctx: &Context<'_>, product_id: ID, quantity: i32) -> ApiResult<Cart> {
        Ok(Cart(app(ctx).carts.update_item(viewer(ctx), &product_id, quantity).await?))
    }

    #[graphql(guard = "RateLimited(LimitedAction::ShopperWrite)")]
    async fn remove_cart_item(&self, ctx: &Context<'_>, product_id: ID) -> ApiResult<Cart> {
        Ok(Cart(app(ctx).carts.remove_item(viewer(ctx), &product_id).await?))
    }
}

#[derive(Default)]
pub struct CartSubscription;

#[Subscription]
impl CartSubscription {
    /// Every change to the caller's cart, from any device or session of the same user.
    async fn cart_updated(&self, ctx: &Context<'_>) -> async_graphql::Result<impl Stream<Item = Cart>> {
        let changes = app(ctx).carts.watch(viewer(ctx)).await.map_err(crate::error::ApiError::from)?;
        Ok(changes.map(Cart))
    }
}
