use async_graphql::{Context, ID, InputObject, Object};

use super::types::Product;
use super::{app, viewer};
use crate::domain::catalog::{Attribute, ProductDraft};
use crate::error::ApiResult;

#[derive(InputObject, Debug)]
pub struct ProductInput {
    pub id: Option<ID>,
    pub title: String,
    pub description: String,
    pub brand: Option<String>,
    pub category_path: Option<String>,
    pub price_cents: i32,
    pub currency_code: Option<String>,
    pub attributes: Option<Vec<AttributeInput>>,
}

#[derive(InputObject, Debug)]
pub struct AttributeInput {
    pub name: String,
    pub value: String,
}

impl From<ProductInput> for ProductDraft {
    fn from(input: ProductInput) -> Self {
        ProductDraft {
            id: input.id.map(|id| id.0),
            title: input.title,
            description: input.description,
            brand: input.brand,
            category_path: input.category_path,
            price_cents: i64::from(input.price_cents),
            currency: input.currency_code,
            attributes: input
                .attributes
                .unwrap_or_default()
                .into_iter()
                .map(|a| Attribute { name: a.name, value: a.value })
                .collect(),
            ..ProductDraft::default()
        }
    }
}

/// Admin operations: the token must carry the admin role (FORBIDDEN otherwise).
#[derive(Default)]
pub struct AdminMutation;

#[Object]
impl AdminMutation {
    /// Creates a product, or updates the one with `input.id`; missing category levels are created.
    async fn admin_upsert_product(&self, ctx: &Context<'_>, input: ProductInput) -> ApiResult<Product> {
        let app = app(ctx);
        app.auth.require_admin(viewer(ctx))?;
        Ok(Product::from(app.catalog.upsert_product(input.into()).await?))
    }

    /// Sets the units available to sell.
    async fn admin_set_stock(&self, ctx: &Context<'_>, product_id: ID, quantity: i32) -> ApiResult<Product> {
        let app = app(ctx);
        app.auth.require_admin(viewer(ctx))?;
        Ok(Product::from(app.catalog.set_stock(&product_id, quantity).await?))
    }
}
