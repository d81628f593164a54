use std::collections::HashMap;

use async_graphql::dataloader::Loader;

use crate::domain::catalog::CatalogError;
use crate::error::ApiError;
use crate::resolvers::types::Product;
use crate::services::catalog::CatalogService;

/// Products of one batch load their stock and categories together (see `Related`).
pub struct ProductLoader(pub CatalogService);

impl Loader<String> for ProductLoader {
    type Value = Product;
    type Error = ApiError;

    async fn load(&self, ids: &[String]) -> Result<HashMap<String, Product>, ApiError> {
        let products = Product::batch(self.0.products_by_ids(ids).await.map_err(CatalogError::from)?);
        Ok(products.into_iter().map(|p| (p.record.id.clone(), p)).collect())
    }
}
