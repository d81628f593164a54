//! DataLoaders, built per request (or per websocket connection), so that every catalog read a
//! list can trigger is batched into one store query per kind.

mod categories;
mod inventory;
mod products;

use async_graphql::dataloader::DataLoader;

pub use categories::{CategoryChildrenLoader, CategoryLoader};
pub use inventory::StockLoader;
pub use products::ProductLoader;

use crate::domain::catalog::CatalogService;

/// Keys per store query: well under SQLite's bound-parameter limit.
const MAX_BATCH: usize = 500;

pub struct Loaders {
    pub products: DataLoader<ProductLoader>,
    pub categories: DataLoader<CategoryLoader>,
    pub category_children: DataLoader<CategoryChildrenLoader>,
    pub stock: DataLoader<StockLoader>,
}

impl Loaders {
    pub fn new(catalog: &CatalogService) -> Self {
        fn loader<T: async_graphql::dataloader::Loader<String>>(inner: T) -> DataLoader<T> {
            DataLoader::new(inner, tokio::spawn).max_batch_size(MAX_BATCH)
        }
        Self {
            products: loader(ProductLoader(catalog.clone())),
            categories: loader(CategoryLoader(catalog.clone())),
            category_children: loader(CategoryChildrenLoader(catalog.clone())),
            stock: loader(StockLoader(catalog.clone())),
        }
    }
}
