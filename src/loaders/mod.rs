//! DataLoaders, built per request (or per websocket connection), so that every catalog read a
//! list can trigger is batched into one store query per kind.

mod categories;
mod inventory;
mod orders;
mod products;
mod related;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};

pub use categories::{CategoryChildrenLoader, CategoryLoader};
pub use inventory::StockLoader;
pub use orders::{OrderEventsLoader, PaymentLoader};
pub use products::ProductLoader;
pub use related::Related;

use crate::app::AppContext;
use crate::domain::catalog::{self as domain, Category, StockLevel};
use crate::error::{ApiError, ApiResult};
use crate::resolvers::types::Product;

/// Keys per store query: well under SQLite's bound-parameter limit.
const MAX_BATCH: usize = 500;
/// How long a loader waits for more keys before it loads: until the runtime's next timer tick
/// (under a millisecond; the default of 1 ms waits until the tick after). Keys asked for in one
/// pass over a query's fields (aliased products) still arrive together, and lists ask for all
/// of theirs at once (`Related`).
const BATCH_WINDOW: std::time::Duration = std::time::Duration::ZERO;

/// The loaders of one request, each made the first time a resolver asks for it: a product
/// page needs three of the six, and making and dropping a loader costs several allocations.
pub struct Loaders {
    app: Arc<AppContext>,
    /// Whether a loader keeps what it loaded for the rest of the request.
    cached: bool,
    products: OnceLock<DataLoader<ProductLoader, HashMapCache>>,
    categories: OnceLock<DataLoader<CategoryLoader, HashMapCache>>,
    category_children: OnceLock<DataLoader<CategoryChildrenLoader, HashMapCache>>,
    stock: OnceLock<DataLoader<StockLoader, HashMapCache>>,
    order_events: OnceLock<DataLoader<OrderEventsLoader, HashMapCache>>,
    payments: OnceLock<DataLoader<PaymentLoader, HashMapCache>>,
}

/// `loaders.name()`: the request's loader of that name, made on first use from the service it
/// reads.
macro_rules! loader {
    ($name:ident: $loader:ident($service:ident)) => {
        pub fn $name(&self) -> &DataLoader<$loader, HashMapCache> {
            self.made(&self.$name, |app| $loader(app.$service.clone()))
        }
    };
}

impl Loaders {
    /// For one HTTP request. Cached for the request only: two fields asking for the same key
    /// (inStock and availableQuantity) cost one lookup, and nothing stale outlives the request.
    pub fn new(app: &Arc<AppContext>) -> Self {
        Self::with_cache(app, true)
    }

    /// For a websocket connection, which may live for hours: batching without caching, so
    /// every pushed update shows today's prices and stock.
    pub fn uncached(app: &Arc<AppContext>) -> Self {
        Self::with_cache(app, false)
    }

    fn with_cache(app: &Arc<AppContext>, cached: bool) -> Self {
        Self {
            app: app.clone(),
            cached,
            products: OnceLock::new(),
            categories: OnceLock::new(),
            category_children: OnceLock::new(),
            stock: OnceLock::new(),
            order_events: OnceLock::new(),
            payments: OnceLock::new(),
        }
    }

    fn made<'a, T: Loader<String>>(
        &'a self,
        loader: &'a OnceLock<DataLoader<T, HashMapCache>>,
        inner: impl FnOnce(&AppContext) -> T,
    ) -> &'a DataLoader<T, HashMapCache> {
        loader.get_or_init(|| {
            let made = DataLoader::with_cache(inner(&self.app), tokio::spawn, HashMapCache::default())
                .max_batch_size(MAX_BATCH)
                .delay(BATCH_WINDOW);
            made.enable_all_cache(self.cached);
            made
        })
    }

    /// The product of each id, in the ids' order (`None` where there is none): those the
    /// catalog read cache holds at once, the rest through the loader. A loader first waits out
    /// its batching window (`BATCH_WINDOW`; twice on a product page: the product, then its
    /// stock), and it reads through the same cache anyway. In order rather than as a map: every
    /// caller wants them in order, and a cart read of 90 lines hashed and copied each id four
    /// times on its way through maps.
    pub async fn products_in_order(&self, ids: &[impl AsRef<str>]) -> ApiResult<Vec<Option<Product>>> {
        let cache = self.app.catalog.read_cache();
        let held: Vec<Option<Arc<domain::Product>>> = ids.iter().map(|id| cache.held_product(id.as_ref())).collect();
        let missing: Vec<String> =
            ids.iter().zip(&held).filter(|(_, held)| held.is_none()).map(|(id, _)| id.as_ref().to_owned()).collect();
        let loaded = if missing.is_empty() { HashMap::new() } else { self.products().load_many(missing).await? };
        let mut batched = Product::batch(held.iter().flatten().cloned().collect()).into_iter();
        let in_order = ids.iter().zip(held).map(|(id, held)| match held {
            Some(_) => batched.next(),
            None => loaded.get(id.as_ref()).cloned(),
        });
        Ok(in_order.collect())
    }

    /// Stock levels by product id, the read cache's at once (see `products_in_order`).
    pub async fn stock_levels(&self, product_ids: &[String]) -> ApiResult<HashMap<String, StockLevel>> {
        held_or_loaded(self.app.catalog.read_cache().held_stock_levels(product_ids), self.stock()).await
    }

    /// Categories by id, the read cache's at once (see `products_in_order`).
    pub async fn categories_by_ids(&self, ids: &[String]) -> ApiResult<HashMap<String, Category>> {
        held_or_loaded(self.app.catalog.read_cache().held_categories(ids), self.categories()).await
    }

    loader!(products: ProductLoader(catalog));
    loader!(categories: CategoryLoader(catalog));
    loader!(category_children: CategoryChildrenLoader(catalog));
    loader!(stock: StockLoader(catalog));
    loader!(order_events: OrderEventsLoader(orders));
    loader!(payments: PaymentLoader(orders));
}

/// `held` (what the read cache answered) with `loader`'s values for the `missing` keys.
async fn held_or_loaded<T: Loader<String, Error = ApiError>>(
    (mut held, missing): (HashMap<String, T::Value>, Vec<String>),
    loader: &DataLoader<T, HashMapCache>,
) -> ApiResult<HashMap<String, T::Value>> {
    if !missing.is_empty() {
        held.extend(loader.load_many(missing).await?);
    }
    Ok(held)
}
