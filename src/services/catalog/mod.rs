//! The catalog: reads for the loaders, admin changes and bulk imports, each write one
//! transaction with the catalog event that keeps search current.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::db::outbox::{self, OutboxRow};
use crate::db::{Pool, catalog, inventory};
use crate::domain::catalog::CatalogError;
use crate::domain::catalog::model::{
    Category, Offer, Product, ProductDraft, ProductRecord, StockLevel, category_levels, parse_category_path,
    validate_id, validate_stock,
};
use crate::domain::primitives::Money;
use crate::ports::{Clock, StoreError, StoreResult};

mod read_cache;

pub use read_cache::CatalogReadCache;

pub type CatalogResult<T> = Result<T, CatalogError>;

/// Products per transaction when importing or seeding.
pub const IMPORT_BATCH: usize = 1_000;

#[derive(Clone)]
pub struct CatalogService {
    db: Pool,
    clock: Arc<dyn Clock>,
    default_currency: String,
    cache: Arc<CatalogReadCache>,
}

impl CatalogService {
    /// Registers the read cache with the pool, so that every committed catalog change drops
    /// its entries on this instance at once.
    pub fn new(db: Pool, clock: Arc<dyn Clock>, default_currency: String) -> Self {
        let cache = Arc::new(CatalogReadCache::default());
        let dropped = cache.clone();
        db.wakers().on_catalog_changed(Box::new(move |event| dropped.apply(event)));
        Self { db, clock, default_currency, cache }
    }

    /// The read cache, for the worker that drops what other instances changed.
    pub fn read_cache(&self) -> &CatalogReadCache {
        &self.cache
    }

    /// For browsing: up to a catalog event's delivery stale (see `read_cache`).
    pub async fn products_by_ids(&self, ids: &[String]) -> StoreResult<Vec<Arc<Product>>> {
        let load =
            async |missing: Vec<String>| self.db.with_conn(async |c| catalog::products_by_ids(c, &missing).await).await;
        self.cache.products(ids, load).await
    }

    pub async fn categories_by_ids(&self, ids: &[String]) -> StoreResult<Vec<Category>> {
        let load = async |missing: Vec<String>| {
            self.db.with_conn(async |c| catalog::categories_by_ids(c, &missing).await).await
        };
        self.cache.categories_by_ids(ids, load).await
    }

    pub async fn categories_by_paths(&self, paths: &[String]) -> StoreResult<Vec<Category>> {
        let load = async |missing: Vec<String>| {
            self.db.with_conn(async |c| catalog::categories_by_paths(c, &missing).await).await
        };
        self.cache.categories_by_paths(paths, load).await
    }

    pub async fn root_categories(&self) -> CatalogResult<Arc<Vec<Category>>> {
        Ok(self.cache.roots(async || self.db.with_conn(async |c| catalog::root_categories(c).await).await).await?)
    }

    /// The children of each parent, keyed by parent id; parents without children have none.
    pub async fn category_children(&self, parent_ids: &[String]) -> CatalogResult<HashMap<String, Arc<Vec<Category>>>> {
        let load = async |missing: Vec<String>| {
            let children = self.db.with_conn(async |c| catalog::category_children(c, &missing).await).await?;
            let mut by_parent: HashMap<String, Vec<Category>> = HashMap::new();
            for child in children {
                if let Some(parent) = child.parent_id.clone() {
                    by_parent.entry(parent).or_default().push(child);
                }
            }
            Ok::<_, StoreError>(by_parent)
        };
        Ok(self.cache.children(parent_ids, load).await?)
    }

    pub async fn stock_levels(&self, product_ids: &[String]) -> StoreResult<Vec<StockLevel>> {
        let load =
            async |missing: Vec<String>| self.db.with_conn(async |c| inventory::stock_levels(c, &missing).await).await;
        self.cache.stock_levels(product_ids, load).await
    }

    /// Today's price and available units of the products that exist, as browsing sees them:
    /// what a cart line shows. Checkout reads the store.
    pub async fn offers(&self, product_ids: &[String]) -> StoreResult<HashMap<String, Offer>> {
        let (products, stock) = futures::try_join!(self.products_by_ids(product_ids), self.stock_levels(product_ids))?;
        let available: HashMap<String, i32> = stock.into_iter().map(|s| (s.product_id, s.available)).collect();
        Ok(products
            .into_iter()
            .filter_map(|p| {
                let available = *available.get(&p.id)?;
                Some((p.id.clone(), Offer { price: p.price.clone(), available }))
            })
            .collect())
    }

    pub async fn product_count(&self) -> CatalogResult<u64> {
        Ok(self.db.with_conn(async |c| catalog::product_count(c).await).await?)
    }

    /// Creates a product, or replaces an existing one's descriptive fields while keeping what
    /// the shop has learnt about it (rating, reviews, popularity, creation time, stock).
    pub async fn upsert_product(&self, mut draft: ProductDraft) -> CatalogResult<Product> {
        draft.validate()?;
        let id = draft.id.clone().unwrap_or_else(|| format!("p-{}", uuid::Uuid::new_v4().simple()));
        let stored = self.db.with_conn(async |c| catalog::products_by_ids(c, std::slice::from_ref(&id)).await).await?;
        if let Some(existing) = stored.into_iter().next() {
            draft.rating = existing.rating;
            draft.review_count = existing.review_count;
            draft.popularity = existing.popularity;
            draft.created_at = Some(existing.created_at);
        }
        draft.id = Some(id.clone());
        self.write_drafts(vec![draft]).await?;
        let written = self.db.with_conn(async |c| catalog::products_by_ids(c, std::slice::from_ref(&id)).await).await?;
        written.into_iter().next().ok_or_else(|| CatalogError::NotFound(format!("product {id}")))
    }

    /// Validates and writes a batch of drafts in one transaction; every draft needs its id.
    /// Used by the generator and file import alike.
    pub async fn import_batch(&self, drafts: Vec<ProductDraft>) -> CatalogResult<usize> {
        for draft in &drafts {
            if draft.id.is_none() {
                return Err(CatalogError::invalid("id", "every imported product needs an id"));
            }
            draft.validate()?;
        }
        let count = drafts.len();
        self.write_drafts(drafts).await?;
        Ok(count)
    }

    pub async fn set_stock(&self, product_id: &str, quantity: i32) -> CatalogResult<Product> {
        validate_id("productId", product_id)?;
        validate_stock(quantity)?;
        let now = self.clock.now();
        let product = self
            .db
            .transaction(async |c| {
                if inventory::set_available(c, product_id, quantity).await?.is_none() {
                    return Ok(None);
                }
                outbox::insert(c, vec![OutboxRow::stock(&[product_id.to_owned()], now)?]).await?;
                Ok::<_, StoreError>(catalog::products_by_ids(c, &[product_id.to_owned()]).await?.pop())
            })
            .await?;
        product.ok_or_else(|| CatalogError::NotFound(format!("product {product_id}")))
    }

    /// Writes drafts in batches of `IMPORT_BATCH` (one transaction each), reporting progress
    /// after each batch; used by `shop seed`, `shop import` and the first-start catalog.
    pub async fn import_all(
        &self,
        drafts: impl Iterator<Item = ProductDraft>,
        mut progress: impl FnMut(u64),
    ) -> CatalogResult<u64> {
        let mut written = 0u64;
        let mut batch = Vec::with_capacity(IMPORT_BATCH);
        for draft in drafts {
            batch.push(draft);
            if batch.len() == IMPORT_BATCH {
                written += self.import_batch(std::mem::take(&mut batch)).await? as u64;
                progress(written);
            }
        }
        if !batch.is_empty() {
            written += self.import_batch(batch).await? as u64;
            progress(written);
        }
        Ok(written)
    }

    async fn write_drafts(&self, drafts: Vec<ProductDraft>) -> CatalogResult<()> {
        let now = self.clock.now();
        let mut categories: BTreeMap<String, Category> = BTreeMap::new();
        let mut records = Vec::with_capacity(drafts.len());
        for draft in drafts {
            let category_id = match &draft.category_path {
                Some(path) => {
                    let levels = category_levels(&parse_category_path(path)?);
                    let leaf = levels.last().map(|c| c.id.clone());
                    for level in levels {
                        categories.entry(level.path.clone()).or_insert(level);
                    }
                    leaf
                }
                None => None,
            };
            records.push(self.record(draft, category_id, now));
        }
        let categories: Vec<Category> = categories.into_values().collect();
        self.write_records(&categories, &records).await
    }

    /// In one transaction: inserts the categories that do not exist yet (by path), inserts or
    /// updates the products, creates their stock rows, sets stock where a record gives it, and
    /// queues the catalog event naming the products.
    pub async fn write_records(&self, categories: &[Category], records: &[ProductRecord]) -> CatalogResult<()> {
        let now = self.clock.now();
        let products: Vec<&Product> = records.iter().map(|r| &r.product).collect();
        let ids: Vec<String> = products.iter().map(|p| p.id.clone()).collect();
        // Given stock replaces the stored count; a product without any keeps what it has.
        let level = |r: &ProductRecord| (r.product.id.clone(), r.stock.unwrap_or(0));
        let stocked: Vec<(String, i32)> = records.iter().filter(|r| r.stock.is_some()).map(level).collect();
        let unstocked: Vec<(String, i32)> = records.iter().filter(|r| r.stock.is_none()).map(level).collect();
        self.db
            .transaction(async |c| {
                catalog::insert_missing_categories(c, categories).await?;
                catalog::upsert_products(c, &products).await?;
                inventory::upsert(c, &stocked, true).await?;
                inventory::upsert(c, &unstocked, false).await?;
                outbox::insert(c, vec![OutboxRow::catalog(&ids, now)?]).await
            })
            .await?;
        Ok(())
    }

    fn record(&self, draft: ProductDraft, category_id: Option<String>, now: DateTime<Utc>) -> ProductRecord {
        ProductRecord {
            product: Product {
                id: draft.id.unwrap_or_default(),
                title: draft.title.trim().to_owned(),
                description: draft.description,
                brand: draft.brand.map(|b| b.trim().to_owned()),
                category_id,
                price: Money {
                    cents: draft.price_cents,
                    currency: draft.currency.unwrap_or_else(|| self.default_currency.clone()),
                },
                rating: draft.rating,
                review_count: draft.review_count,
                popularity: draft.popularity,
                attributes: draft.attributes,
                created_at: draft.created_at.unwrap_or(now),
                updated_at: now,
            },
            stock: draft.stock,
        }
    }
}
