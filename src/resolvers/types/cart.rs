use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::{Money, Product};
use crate::domain::cart as domain;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::resolvers::{app, loaders};

pub struct Cart(pub domain::Cart);

#[Object]
impl Cart {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }

    async fn items(&self) -> Vec<CartItem> {
        self.0.lines.iter().cloned().map(CartItem).collect()
    }

    async fn total_quantity(&self) -> i32 {
        self.0.total_quantity()
    }

    /// Sum of the lines at the prices they were added at.
    async fn subtotal(&self, ctx: &Context<'_>) -> Money {
        Money::from(&self.0.subtotal(&app(ctx).config.currency))
    }

    /// Increments on every change; clients use it to order pushed updates.
    async fn version(&self) -> i32 {
        i32::try_from(self.0.version).unwrap_or(i32::MAX)
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

pub struct CartItem(pub domain::CartLine);

#[Object]
impl CartItem {
    async fn product(&self, ctx: &Context<'_>) -> ApiResult<Product> {
        self.load_product(ctx).await
    }

    async fn quantity(&self) -> i32 {
        self.0.quantity
    }

    /// The price when the line was added.
    async fn unit_price(&self) -> Money {
        Money::from(&self.0.unit_price)
    }

    async fn line_total(&self) -> Money {
        Money::from(&self.0.total())
    }

    /// Today's price of the product.
    async fn current_price(&self, ctx: &Context<'_>) -> ApiResult<Money> {
        let product = self.load_product(ctx).await?;
        Ok(Money::from(&product.record.price))
    }

    /// Whether today's price differs from the price the line was added at.
    async fn price_changed(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        let product = self.load_product(ctx).await?;
        Ok(product.record.price != self.0.unit_price)
    }
}

impl CartItem {
    async fn load_product(&self, ctx: &Context<'_>) -> ApiResult<Product> {
        loaders(ctx)
            .products
            .load_one(self.0.product_id.clone())
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("product {} not found", self.0.product_id)))
    }
}
