//! Search: validates a shopper's request, answers it from the result cache or the index, and
//! keeps the index in step with the catalog (the search worker feeds it the catalog events).

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine;
use futures::StreamExt;

use crate::db::{Pool, catalog, outbox};
use crate::domain::search::SearchDocument;
use crate::domain::search::model::{
    MAX_PAGE, MAX_QUERY_CHARS, SearchError, SearchFilter, SearchHits, SearchRequest, SearchSort,
};
use crate::ports::{Cache, Delivery, SearchIndex, StoreError};
use crate::services::catalog::CatalogService;

pub type SearchResult<T> = Result<T, SearchError>;

/// Products read from the store per indexing batch.
const INDEX_BATCH: i64 = 5_000;
/// Identical searches within this time come from the result cache (unless the index changed).
const RESULT_TTL: Duration = Duration::from_secs(300);

pub struct SearchPage {
    pub hits: SearchHits,
    pub end_cursor: Option<String>,
    pub has_next_page: bool,
}

#[derive(Clone)]
pub struct SearchService {
    index: Arc<dyn SearchIndex>,
    db: Pool,
    catalog: CatalogService,
    /// Result cache; `None` when turned off.
    results: Option<Arc<dyn Cache>>,
    /// Called on every cache hit (feeds `shop_search_cache_hits_total`).
    on_cache_hit: Arc<dyn Fn() + Send + Sync>,
    /// Called when this process switches to a rebuilt index (`shop_search_index_swaps_total`).
    on_swap: Arc<dyn Fn() + Send + Sync>,
    indexed: Arc<Mutex<Indexed>>,
}

/// What this process last wrote to the live index for each product, so that a change search
/// cannot see (most sales only lower a stock that stays above zero) is not written again: each
/// write is an index commit, and every commit makes merges and empties the result cache.
#[derive(Default)]
struct Indexed {
    /// Switches to a rebuilt index so far: a fingerprint counts only for the index it went to.
    swaps: u64,
    /// A hash of the product's id, and its document's `searchable_fingerprint`.
    fingerprints: HashMap<u64, u64>,
}

impl Indexed {
    /// What a document is remembered by: a hash of its product id, and its fingerprint.
    fn mark(document: &SearchDocument) -> (u64, u64) {
        let mut hasher = std::hash::DefaultHasher::new();
        document.id.hash(&mut hasher);
        (hasher.finish(), document.searchable_fingerprint())
    }

    /// Whether the live index already holds a document so marked.
    fn holds(&self, (key, fingerprint): (u64, u64)) -> bool {
        self.fingerprints.get(&key) == Some(&fingerprint)
    }
}

impl SearchService {
    pub fn new(
        index: Arc<dyn SearchIndex>,
        db: Pool,
        catalog: CatalogService,
        results: Option<Arc<dyn Cache>>,
        on_cache_hit: Arc<dyn Fn() + Send + Sync>,
        on_swap: Arc<dyn Fn() + Send + Sync>,
    ) -> Self {
        Self { index, db, catalog, results, on_cache_hit, on_swap, indexed: Arc::default() }
    }

    /// Runs a shopper's search. `category` is a category id or path; an unknown one matches
    /// nothing. `after` is a cursor from a previous page.
    pub async fn search(
        &self,
        text: Option<&str>,
        category: Option<&str>,
        mut filter: SearchFilter,
        sort: SearchSort,
        first: Option<i32>,
        after: Option<&str>,
    ) -> SearchResult<SearchPage> {
        let text = text.unwrap_or_default().trim().to_owned();
        if text.chars().count() > MAX_QUERY_CHARS {
            return Err(SearchError::invalid("query", format!("at most {MAX_QUERY_CHARS} characters")));
        }
        let limit = match first {
            None => 20,
            Some(n) if (1..=MAX_PAGE as i32).contains(&n) => n as usize,
            Some(_) => return Err(SearchError::invalid("first", format!("must be 1 to {MAX_PAGE}"))),
        };
        validate_filter(&filter)?;
        let cursor = after.map(Cursor::decode).transpose()?;
        if let Some(category) = category.map(str::trim).filter(|c| !c.is_empty()) {
            match self.category_path(category).await? {
                Some(path) => filter.category_path = Some(path),
                None => return Ok(SearchPage { hits: empty_hits(), end_cursor: None, has_next_page: false }),
            }
        }
        // A later page looks up to a page either side of where the previous one ended, and
        // continues after the last product the shopper saw: products added, removed or moved
        // ahead of it meanwhile neither repeat nor skip results.
        let (offset, slack) = match &cursor {
            Some(cursor) => (cursor.offset, cursor.offset.min(limit)),
            None => (0, 0),
        };
        let window_start = offset - slack;
        let window_limit = if cursor.is_some() { slack + 2 * limit } else { limit };
        let request = SearchRequest { text, filter, sort, limit: window_limit, offset: window_start };
        let mut hits = self.cached_search(&request).await?;
        let anchored = cursor
            .as_ref()
            .and_then(|cursor| hits.product_ids.iter().position(|id| *id == cursor.last_id))
            .map(|position| position + 1);
        let first = anchored.unwrap_or(slack).min(hits.product_ids.len());
        hits.product_ids = hits.product_ids.into_iter().skip(first).take(limit).collect();
        let end = window_start + first + hits.product_ids.len();
        Ok(SearchPage {
            end_cursor: hits
                .product_ids
                .last()
                .map(|last_id| Cursor { offset: end, last_id: last_id.clone() }.encode()),
            has_next_page: (end as u64) < hits.total,
            hits,
        })
    }

    /// Identical requests against the same index generation share one result. The cache is
    /// an accelerator only: when it fails, the index answers.
    async fn cached_search(&self, request: &SearchRequest) -> SearchResult<SearchHits> {
        let Some(cache) = &self.results else { return self.search_index(request).await };
        let generation = self.index.generation();
        let key = format!("search:{generation}:{}", serde_json::to_string(request).unwrap_or_default());
        if let Ok(Some(json)) = cache.get(&key).await
            && let Ok(hits) = serde_json::from_str::<SearchHits>(&json)
        {
            (self.on_cache_hit)();
            return Ok(hits);
        }
        let hits = self.search_index(request).await?;
        if let Ok(json) = serde_json::to_string(&hits)
            && let Err(err) = cache.put_versioned(&key, 0, &json, RESULT_TTL).await
        {
            tracing::debug!(error = %err, "search result cache unavailable");
        }
        Ok(hits)
    }

    async fn search_index(&self, request: &SearchRequest) -> SearchResult<SearchHits> {
        let mut hits = self.index.search(request).await?;
        keep_main_attribute_facets(&mut hits, &request.filter);
        Ok(hits)
    }

    /// Whether the index answers (readiness).
    pub async fn is_up(&self) -> bool {
        self.index.document_count().await.is_ok()
    }

    /// Re-reads the products from the store and replaces the documents that changed in what
    /// search reads.
    pub async fn index_products(&self, ids: &[String]) -> SearchResult<()> {
        let swaps = self.indexed().swaps;
        let documents = self.db.with_conn(async |c| catalog::search_documents_by_ids(c, ids).await).await?;
        let (documents, written): (Vec<SearchDocument>, Vec<(u64, u64)>) = {
            let indexed = self.indexed();
            documents
                .into_iter()
                .map(|document| {
                    let mark = Indexed::mark(&document);
                    (document, mark)
                })
                .filter(|(_, mark)| !indexed.holds(*mark))
                .unzip()
        };
        if documents.is_empty() {
            return Ok(());
        }
        self.index.upsert(documents).await?;
        let mut indexed = self.indexed();
        // Written to the index that was live when the documents were read, else unknown.
        if indexed.swaps == swaps {
            indexed.fingerprints.extend(written);
        }
        Ok(())
    }

    fn indexed(&self) -> std::sync::MutexGuard<'_, Indexed> {
        self.indexed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// After a switch to a rebuilt index: nothing is known of what it holds.
    fn swapped(&self) {
        let mut indexed = self.indexed();
        indexed.swaps += 1;
        indexed.fingerprints.clear();
        drop(indexed);
        (self.on_swap)();
    }

    /// Indexes the whole catalog when the index does not hold every product (first start, or
    /// a catalog loaded by `shop seed`/`shop import` while no server ran).
    pub async fn rebuild_if_stale(&self) -> SearchResult<u64> {
        if self.index.document_count().await? == self.db.with_conn(async |c| catalog::product_count(c).await).await? {
            return Ok(0);
        }
        self.reindex().await
    }

    /// Builds a fresh index of every product beside the live one and swaps it in (searches never
    /// see it half-built), then applies the catalog changes made while it was being built.
    pub async fn reindex(&self) -> SearchResult<u64> {
        // Earlier by a margin: catalog events carry the writing process's clock.
        let snapshot_started = chrono::Utc::now() - chrono::Duration::seconds(5);
        let db = self.db.clone();
        let pages = futures::stream::unfold(Some(String::new()), move |after| {
            let db = db.clone();
            async move {
                let after = after?;
                let page: Result<Vec<SearchDocument>, StoreError> =
                    db.with_conn(async |c| catalog::search_documents(c, &after, INDEX_BATCH).await).await;
                match page {
                    Ok(page) if page.is_empty() => None,
                    Ok(page) => {
                        let next = page.last().map(|d| d.id.clone());
                        Some((Ok(page), next))
                    }
                    Err(err) => Some((Err(SearchError::Store(err)), None)),
                }
            }
        })
        .boxed();
        // Last, the products changed while the pages were read (a page at a time: right after
        // a big import that is much of the catalog), so the new index goes live complete.
        let db = self.db.clone();
        let changed_meanwhile = futures::stream::try_unfold(None::<Vec<Vec<String>>>, move |chunks| {
            let db = db.clone();
            async move {
                let mut chunks = match chunks {
                    Some(chunks) => chunks,
                    None => {
                        let ids =
                            db.with_conn(async |c| outbox::products_changed_since(c, snapshot_started).await).await?;
                        ids.chunks(INDEX_BATCH as usize).rev().map(<[String]>::to_vec).collect()
                    }
                };
                let Some(ids) = chunks.pop() else { return Ok(None) };
                Ok(Some((db.with_conn(async |c| catalog::search_documents_by_ids(c, &ids).await).await?, Some(chunks))))
            }
        });
        self.index.replace_all(pages.chain(changed_meanwhile).boxed(), snapshot_started).await?;
        self.swapped();
        self.index.document_count().await
    }

    /// Re-indexes the products the catalog events since `since` name.
    async fn catch_up(&self, since: chrono::DateTime<chrono::Utc>) -> SearchResult<()> {
        let ids = self.db.with_conn(async |c| outbox::products_changed_since(c, since).await).await?;
        if ids.is_empty() { Ok(()) } else { self.index_products(&ids).await }
    }

    /// Adopts an index that `shop reindex` built in another process, if there is one, then
    /// applies the changes made since its snapshot (this process kept indexing them into the
    /// old one). True when it switched.
    pub async fn adopt_replacement(&self) -> SearchResult<bool> {
        let Some(since) = self.index.adopt_replacement().await? else { return Ok(false) };
        self.swapped();
        tracing::info!("switched to a rebuilt search index");
        self.catch_up(since).await?;
        Ok(true)
    }

    /// Indexes the products a batch of catalog events names; a lagged subscriber may have
    /// missed changes to any product's price or stock, so then the whole index is rebuilt.
    pub async fn apply_catalog_events(&self, batch: &[Delivery]) -> SearchResult<()> {
        if batch.contains(&Delivery::Lagged) {
            tracing::warn!("the search indexer fell behind the catalog events; rebuilding the index");
            return self.reindex().await.map(drop);
        }
        let ids: BTreeSet<String> = batch
            .iter()
            .filter_map(|d| match d {
                Delivery::Event(event) => serde_json::from_str::<Vec<String>>(&event.payload).ok(),
                Delivery::Lagged => None,
            })
            .flatten()
            .collect();
        self.index_products(&ids.into_iter().collect::<Vec<_>>()).await
    }

    async fn category_path(&self, id_or_path: &str) -> SearchResult<Option<String>> {
        if let Some(category) = self.catalog.categories_by_ids(&[id_or_path.to_owned()]).await?.pop() {
            return Ok(Some(category.path));
        }
        let path = id_or_path.split('/').map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>().join("/");
        Ok(self.catalog.categories_by_paths(&[path]).await?.pop().map(|c| c.path))
    }
}

/// Attribute facets shown besides brand, category and price: the attributes most of the
/// matching products have, plus every attribute the shopper is filtering by.
const MAIN_ATTRIBUTE_FACETS: usize = 10;

/// Keeps the attribute facets covering the most matches (and the selected ones), in their
/// order: a catalog-wide browse otherwise lists dozens that apply to a few products each.
fn keep_main_attribute_facets(hits: &mut SearchHits, filter: &SearchFilter) {
    const FIXED: [&str; 3] = ["brand", "category", "price"];
    let mut coverage: Vec<(u64, &str)> = hits
        .facets
        .iter()
        .filter(|(name, _)| !FIXED.contains(&name.as_str()))
        .map(|(name, values)| (values.iter().map(|v| v.count).sum(), name.as_str()))
        .collect();
    coverage.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let main: BTreeSet<String> = coverage
        .into_iter()
        .take(MAIN_ATTRIBUTE_FACETS)
        .map(|(_, name)| name.to_owned())
        .chain(filter.attributes.iter().map(|(name, _)| name.clone()))
        .collect();
    hits.facets.retain(|(name, _)| FIXED.contains(&name.as_str()) || main.contains(name));
}

fn empty_hits() -> SearchHits {
    SearchHits { total: 0, product_ids: Vec::new(), facets: Vec::new(), corrected_query: None }
}

fn validate_filter(filter: &SearchFilter) -> SearchResult<()> {
    for (field, price) in [("minPrice", filter.min_price), ("maxPrice", filter.max_price)] {
        if price.is_some_and(|p| p < 0) {
            return Err(SearchError::invalid(field, "must not be negative"));
        }
    }
    if let (Some(min), Some(max)) = (filter.min_price, filter.max_price)
        && min > max
    {
        return Err(SearchError::invalid("minPrice", "must not exceed maxPrice"));
    }
    if filter.min_rating.is_some_and(|r| !(0.0..=5.0).contains(&r)) {
        return Err(SearchError::invalid("minRating", "must be between 0 and 5"));
    }
    Ok(())
}

/// Where a page ended: its position in the results and its last product.
struct Cursor {
    offset: usize,
    last_id: String,
}

const CURSOR_PREFIX: &str = "after:";
/// Pages deeper than this are refused; narrowing the search serves better.
const MAX_CURSOR_OFFSET: usize = 10_000;

impl Cursor {
    fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{CURSOR_PREFIX}{}:{}", self.offset, self.last_id))
    }

    fn decode(cursor: &str) -> SearchResult<Self> {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| {
                let (offset, last_id) = text.strip_prefix(CURSOR_PREFIX)?.split_once(':')?;
                Some(Cursor { offset: offset.parse().ok()?, last_id: last_id.to_owned() })
            })
            .filter(|cursor| cursor.offset <= MAX_CURSOR_OFFSET && !cursor.last_id.is_empty())
            .ok_or_else(|| SearchError::invalid("after", "malformed cursor"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::search::FacetCount;

    fn facet(name: &str, count: u64) -> (String, Vec<FacetCount>) {
        (name.to_owned(), vec![FacetCount { value: "x".to_owned(), count }])
    }

    #[test]
    fn only_the_main_attributes_and_the_selected_ones_stay_facets() {
        let mut facets = vec![facet("brand", 1), facet("category", 1), facet("price", 1)];
        facets.extend((1..=12).map(|n| facet(&format!("attribute {n:02}"), n)));
        let mut hits = SearchHits { total: 100, product_ids: Vec::new(), facets, corrected_query: None };
        let filter =
            SearchFilter { attributes: vec![("attribute 01".to_owned(), vec!["x".to_owned()])], ..Default::default() };
        keep_main_attribute_facets(&mut hits, &filter);
        let names: Vec<&str> = hits.facets.iter().map(|(name, _)| name.as_str()).collect();
        let mut expected = vec!["brand", "category", "price", "attribute 01"];
        let main: Vec<String> = (3..=12).map(|n| format!("attribute {n:02}")).collect();
        expected.extend(main.iter().map(String::as_str));
        assert_eq!(names, expected, "the 10 widest attributes and the selected one, in their order");
    }
}
