use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::CatalogError;
use super::model::{
    Category, Money, Product, ProductDraft, ProductRecord, StockLevel, category_levels, parse_category_path,
    validate_id, validate_stock,
};
use crate::domain::clock::Clock;
use crate::domain::ports::Store;

pub type CatalogResult<T> = Result<T, CatalogError>;

/// Products per transaction when importing or seeding.
pub const IMPORT_BATCH: usize = 1_000;

#[derive(Clone)]
pub struct CatalogService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    default_currency: String,
}

impl CatalogService {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, default_currency: String) -> Self {
        Self { store, clock, default_currency }
    }

    pub async fn products_by_ids(&self, ids: &[String]) -> CatalogResult<Vec<Product>> {
        Ok(self.store.products_by_ids(ids).await?)
    }

    pub async fn categories_by_ids(&self, ids: &[String]) -> CatalogResult<Vec<Category>> {
        Ok(self.store.categories_by_ids(ids).await?)
    }

    pub async fn root_categories(&self) -> CatalogResult<Vec<Category>> {
        Ok(self.store.root_categories().await?)
    }

    /// The children of each parent, keyed by parent id; parents without children are absent.
    pub async fn category_children(&self, parent_ids: &[String]) -> CatalogResult<HashMap<String, Vec<Category>>> {
        let children = self.store.category_children(parent_ids).await?;
        let mut by_parent: HashMap<String, Vec<Category>> = HashMap::new();
        for child in children {
            if let Some(parent) = child.parent_id.clone() {
                by_parent.entry(parent).or_default().push(child);
            }
        }
        Ok(by_parent)
    }

    pub async fn stock_levels(&self, product_ids: &[String]) -> CatalogResult<Vec<StockLevel>> {
        Ok(self.store.stock_levels(product_ids).await?)
    }

    pub async fn product_count(&self) -> CatalogResult<u64> {
        Ok(self.store.product_count().await?)
    }

    /// Creates a product, or replaces an existing one's descriptive fields while keeping what
    /// the shop has learnt about it (rating, reviews, popularity, creation time, stock).
    pub async fn upsert_product(&self, mut draft: ProductDraft) -> CatalogResult<Product> {
        draft.validate()?;
        let id = draft.id.clone().unwrap_or_else(|| format!("p-{}", uuid::Uuid::new_v4().simple()));
        if let Some(existing) = self.store.products_by_ids(std::slice::from_ref(&id)).await?.pop() {
            draft.rating = existing.rating;
            draft.review_count = existing.review_count;
            draft.popularity = existing.popularity;
            draft.created_at = Some(existing.created_at);
        }
        draft.id = Some(id.clone());
        self.write_drafts(vec![draft]).await?;
        self.store
            .products_by_ids(std::slice::from_ref(&id))
            .await?
            .pop()
            .ok_or_else(|| CatalogError::NotFound(format!("product {id}")))
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
        self.store
            .set_stock(product_id, quantity)
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("product {product_id}")))?;
        self.store
            .products_by_ids(&[product_id.to_owned()])
            .await?
            .pop()
            .ok_or_else(|| CatalogError::NotFound(format!("product {product_id}")))
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
        self.store.upsert_catalog(&categories, &records).await?;
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
