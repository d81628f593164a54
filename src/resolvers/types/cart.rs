use std::sync::Arc;

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::{Money, Product, SerialList};
use crate::domain::cart as domain;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::resolvers::{app, loaders};

pub struct Cart(pub Arc<domain::Cart>);

// `serial`: fields resolve one after another, without the set of concurrent futures each
// object otherwise builds (a cart of 90 lines built 360 of them); none of these fields waits on
// anything but an already batched load.
#[Object(serial)]
impl Cart {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }

    async fn items(&self, ctx: &Context<'_>) -> ApiResult<SerialList<CartItem<'_>>> {
        CartItem::batch(ctx, &self.0.lines).await
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

/// A line of the cart, session or order being resolved, borrowed from it.
pub struct CartItem<'a> {
    line: &'a domain::CartLine,
    /// `None` if the product no longer exists.
    product: Option<Product>,
}

#[Object(serial)]
impl CartItem<'_> {
    async fn product(&self) -> ApiResult<&Product> {
        self.existing_product()
    }

    async fn quantity(&self) -> i32 {
        self.line.quantity
    }

    /// The price when the line was added.
    async fn unit_price(&self) -> Money {
        Money::from(&self.line.unit_price)
    }

    async fn line_total(&self) -> Money {
        Money::from(&self.line.total())
    }

    /// Today's price of the product.
    async fn current_price(&self) -> ApiResult<Money> {
        Ok(Money::from(&self.existing_product()?.record.price))
    }

    /// Whether today's price differs from the price the line was added at.
    async fn price_changed(&self) -> ApiResult<bool> {
        Ok(self.existing_product()?.record.price != self.line.unit_price)
    }
}

impl<'a> CartItem<'a> {
    /// Lines with their products, loaded in one batch (a cart may hold a hundred lines).
    pub async fn batch(ctx: &Context<'_>, lines: &'a [domain::CartLine]) -> ApiResult<SerialList<CartItem<'a>>> {
        let ids: Vec<&str> = lines.iter().map(|line| line.product_id.as_str()).collect();
        let products = loaders(ctx).products_in_order(&ids).await?;
        Ok(SerialList(lines.iter().zip(products).map(|(line, product)| CartItem { line, product }).collect()))
    }

    fn existing_product(&self) -> ApiResult<&Product> {
        self.product
            .as_ref()
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("product {} not found", self.line.product_id)))
    }
}
