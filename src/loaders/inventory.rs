use std::collections::HashMap;

use async_graphql::dataloader::Loader;

use crate::domain::catalog::{CatalogError, StockLevel};
use crate::error::ApiError;
use crate::services::catalog::CatalogService;

/// Stock levels keyed by product id.
pub struct StockLoader(pub CatalogService);

impl Loader<String> for StockLoader {
    type Value = StockLevel;
    type Error = ApiError;

    async fn load(&self, product_ids: &[String]) -> Result<HashMap<String, StockLevel>, ApiError> {
        let levels = self.0.stock_levels(product_ids).await.map_err(CatalogError::from)?;
        Ok(levels.into_iter().map(|s| (s.product_id.clone(), s)).collect())
    }
}
