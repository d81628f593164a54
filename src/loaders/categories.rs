use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;

use crate::domain::catalog::{CatalogError, Category};
use crate::error::ApiError;
use crate::services::catalog::CatalogService;

pub struct CategoryLoader(pub CatalogService);

impl Loader<String> for CategoryLoader {
    type Value = Category;
    type Error = ApiError;

    async fn load(&self, ids: &[String]) -> Result<HashMap<String, Category>, ApiError> {
        let categories = self.0.categories_by_ids(ids).await.map_err(CatalogError::from)?;
        Ok(categories.into_iter().map(|c| (c.id.clone(), c)).collect())
    }
}

/// Children keyed by parent id.
pub struct CategoryChildrenLoader(pub CatalogService);

impl Loader<String> for CategoryChildrenLoader {
    type Value = Arc<Vec<Category>>;
    type Error = ApiError;

    async fn load(&self, parent_ids: &[String]) -> Result<HashMap<String, Arc<Vec<Category>>>, ApiError> {
        Ok(self.0.category_children(parent_ids).await?)
    }
}
