use async_graphql::{Context, ID, Object};

use super::types::{Category, Product};
use super::{app, loaders};
use crate::domain::catalog::model::validate_id;
use crate::error::ApiResult;

#[derive(Default)]
pub struct CatalogQuery;

#[Object]
impl CatalogQuery {
    async fn product(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Product>> {
        validate_id("id", &id)?;
        Ok(loaders(ctx).products_in_order(std::slice::from_ref(&id.0)).await?.pop().flatten())
    }

    /// Category tree roots.
    async fn categories(&self, ctx: &Context<'_>) -> ApiResult<Vec<Category>> {
        let roots = app(ctx).catalog.root_categories().await?;
        Ok(Category::batch(roots.to_vec()))
    }
}
