use std::collections::HashMap;

use async_graphql::dataloader::Loader;

use crate::domain::catalog::{CatalogService, Product};
use crate::error::ApiError;

pub struct ProductLoader(pub CatalogService);

impl Loader<String> for ProductLoader {
    type Value = Product;
    type Error = ApiError;

    async fn load(&self, ids: &[String]) -> Result<HashMap<String, Product>, ApiError> {
        let products = self.0.products_by_ids(ids).await?;
        Ok(products.into_iter().map(|p| (p.id.clone(), p)).collect())
    }
}
