//! DataLoaders, built per request (or per websocket connection), so that every catalog read a
//! list can trigger is batched into one store query per kind.

mod categories;
mod inventory;
mod orders;
mod products;
mod related;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};

pub use categories::{CategoryChildrenLoader, CategoryLoader};
pub use inventory::StockLoader;
pub use orders::{OrderEventsLoader, PaymentLoader};
pub use products::ProductLoader;
pub use related::Related;

use crate::app::AppContext;

/// Keys per store query: well under SQLite's bound-parameter limit.
const MAX_BATCH: usize = 500;

pub struct Loaders {
    pub products: DataLoader<ProductLoader, HashMapCache>,
    pub categories: DataLoader<CategoryLoader, HashMapCache>,
    pub category_children: DataLoader<CategoryChildrenLoader, HashMapCache>,
    pub stock: DataLoader<StockLoader, HashMapCache>,
    pub order_events: DataLoader<OrderEventsLoader, HashMapCache>,
    pub payments: DataLoader<PaymentLoader, HashMapCache>,
}

impl Loaders {
    /// For one HTTP request.
    pub fn new(app: &AppContext) -> Self {
        // Cached for the request only: two fields asking for the same key (inStock and
        // availableQuantity) cost one lookup, and nothing stale outlives the request.
        fn loader<T: Loader<String>>(inner: T) -> DataLoader<T, HashMapCache> {
            DataLoader::with_cache(inner, tokio::spawn, HashMapCache::default()).max_batch_size(MAX_BATCH)
        }
        let catalog = &app.catalog;
        Self {
            products: loader(ProductLoader(catalog.clone())),
            categories: loader(CategoryLoader(catalog.clone())),
            category_children: loader(CategoryChildrenLoader(catalog.clone())),
            stock: loader(StockLoader(catalog.clone())),
            order_events: loader(OrderEventsLoader(app.orders.clone())),
            payments: loader(PaymentLoader(app.orders.clone())),
        }
    }

    /// For a websocket connection, which may live for hours: batching without caching, so
    /// every pushed update shows today's prices and stock.
    pub fn uncached(app: &AppContext) -> Self {
        let loaders = Self::new(app);
        loaders.products.enable_all_cache(false);
        loaders.categories.enable_all_cache(false);
        loaders.category_children.enable_all_cache(false);
        loaders.stock.enable_all_cache(false);
        loaders.order_events.enable_all_cache(false);
        loaders.payments.enable_all_cache(false);
        loaders
    }
}
