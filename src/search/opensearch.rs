//! The scale-out SearchIndex: an OpenSearch cluster that every instance shares.
//!
//! The same semantics as the tantivy adapter, in the query DSL: per word a `multi_match` over
//! title^3, brand^2, category path and attribute values^1.5 and description (exact and through the
//! synonym analyzer; `fuzziness: AUTO:4,8` gives one edit from 4 letters and two from 8; the last
//! word also as a prefix), all words required (all but one from three words), a title
//! `match_phrase` with slop 1 as the proximity boost, and a `script_score` that blends in
//! popularity and rating with the documented formula. Facet filters go in `post_filter`, and each
//! facet's aggregation applies every facet filter but its own.
//!
//! Writes and searches address an alias; a rebuild fills a fresh index and moves the alias in one
//! atomic `_aliases` call, so every instance switches at once and no search sees a partial index.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use opensearch::auth::Credentials;
use opensearch::http::Url;
use opensearch::http::request::JsonBody;
use opensearch::http::response::Response;
use opensearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use opensearch::indices::{
    IndicesCreateParts, IndicesDeleteParts, IndicesGetAliasParts, IndicesGetMappingParts, IndicesPutSettingsParts,
    IndicesRefreshParts,
};
use opensearch::params::Refresh;
use opensearch::{BulkParts, CountParts, OpenSearch, SearchParts};
use serde_json::{Value, json};

use crate::domain::search::model::{PRICE_BUCKETS, price_bucket};
use crate::domain::search::{
    FacetCount, SearchDocument, SearchError, SearchFilter, SearchHits, SearchRequest, SearchSort, Synonyms,
    allowed_edits, correct_spelling, edit_distance, sort_facet_counts,
};
use crate::ports::SearchIndex;

/// Documents per `_bulk` request.
const BULK_BATCH: usize = 1_000;
/// Text fields searched, with their boosts (as in the tantivy adapter).
const SEARCHED: [(&str, f32); 5] =
    [("title", 3.0), ("brand_text", 2.0), ("category_text", 1.5), ("attributes_text", 1.5), ("description", 1.0)];
const PHRASE_BOOST: f32 = 6.0;
const TEXT_ANALYZER: &str = "shop_text";
/// The text analyzer plus the synonym groups; used at search time only.
const SYNONYM_ANALYZER: &str = "shop_synonyms";
/// How many values a facet lists at most.
const FACET_SIZE: usize = 500;
const RELEVANCE_SCRIPT: &str = "_score * (1 + 0.1 * Math.log(1 + Math.max(doc['popularity'].value, 0))) \
                                * (0.8 + 0.04 * doc['rating'].value)";

#[derive(Clone)]
pub struct OpenSearchIndex {
    client: OpenSearch,
    alias: String,
    synonyms: Arc<Synonyms>,
    /// Bumped after every write this instance makes, so its cached results never outlive them.
    generation: Arc<AtomicU64>,
    instance: String,
    /// The index the alias named when this instance last looked.
    live_index: Arc<std::sync::Mutex<Option<String>>>,
}

impl OpenSearchIndex {
    /// Connects to the cluster at `url` (credentials may be given as `https://user:pass@host`)
    /// and creates the first index behind `alias` if there is none.
    pub async fn connect(url: &str, alias: &str, synonyms: Synonyms) -> Result<Self, SearchError> {
        let mut url = Url::parse(url).map_err(|err| SearchError::Index(format!("SHOP_OPENSEARCH_URL: {err}")))?;
        let credentials = (!url.username().is_empty()).then(|| {
            Credentials::Basic(percent_decoded(url.username()), percent_decoded(url.password().unwrap_or_default()))
        });
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let mut transport = TransportBuilder::new(SingleNodeConnectionPool::new(url)).timeout(Duration::from_secs(30));
        if let Some(credentials) = credentials {
            transport = transport.auth(credentials);
        }
        let index = Self {
            client: OpenSearch::new(transport.build().map_err(SearchError::index)?),
            alias: alias.to_owned(),
            synonyms: Arc::new(synonyms),
            generation: Arc::default(),
            instance: uuid::Uuid::new_v4().simple().to_string(),
            live_index: Arc::default(),
        };
        index.ensure_alias().await?;
        index.adopt_replacement().await?;
        Ok(index)
    }

    /// The indices the alias points at (none when it does not exist).
    async fn aliased_indices(&self) -> Result<Vec<String>, SearchError> {
        let response = self
            .client
            .indices()
            .get_alias(IndicesGetAliasParts::Name(&[&self.alias]))
            .send()
            .await
            .map_err(SearchError::index)?;
        if response.status_code().as_u16() == 404 {
            return Ok(Vec::new());
        }
        let body = checked(response, "reading the alias").await?;
        Ok(body.as_object().map(|indices| indices.keys().cloned().collect()).unwrap_or_default())
    }

    /// A fixed first name, so instances starting together create one index, not one each.
    async fn ensure_alias(&self) -> Result<(), SearchError> {
        if !self.aliased_indices().await?.is_empty() {
            return Ok(());
        }
        let mut body = self.index_definition(None);
        body["aliases"] = json!({ &self.alias: {} });
        let name = format!("{}-initial", self.alias);
        let response = self
            .client
            .indices()
            .create(IndicesCreateParts::Index(&name))
            .body(body)
            .send()
            .await
            .map_err(SearchError::index)?;
        if response.status_code().as_u16() == 400 {
            let text = response.text().await.map_err(SearchError::index)?;
            if text.contains("resource_already_exists_exception") {
                return Ok(());
            }
            return Err(SearchError::Index(format!("creating the index: {text}")));
        }
        checked(response, "creating the index").await.map(drop)
    }

    /// Settings (analyzers, synonyms) and mappings. A rebuild (`snapshot_started` given) turns
    /// refreshes off until it is done, and records when its snapshot of the store began.
    fn index_definition(&self, snapshot_started: Option<DateTime<Utc>>) -> Value {
        let text = json!({ "type": "text", "analyzer": TEXT_ANALYZER });
        json!({
            "settings": {
                "index": { "refresh_interval": if snapshot_started.is_some() { "-1" } else { "1s" } },
                "analysis": {
                    "filter": {
                        "shop_possessive": { "type": "stemmer", "language": "possessive_english" },
                        "shop_stemmer": { "type": "stemmer", "language": "english" },
                        "shop_synonym_groups": { "type": "synonym_graph", "synonyms": self.synonyms.lines() }
                    },
                    "analyzer": {
                        TEXT_ANALYZER: {
                            "tokenizer": "standard",
                            "filter": ["lowercase", "shop_possessive", "shop_stemmer"]
                        },
                        SYNONYM_ANALYZER: {
                            "tokenizer": "standard",
                            "filter": ["lowercase", "shop_synonym_groups", "shop_possessive", "shop_stemmer"]
                        }
                    }
                }
            },
            "mappings": {
                "_meta": { "snapshot_started": snapshot_started.map(|t| t.to_rfc3339()) },
                "dynamic": "strict",
                "properties": {
                    "id": { "type": "keyword" },
                    "title": text,
                    "brand_text": text,
                    "category_text": text,
                    "attributes_text": text,
                    "description": text,
                    "spell": { "type": "text", "analyzer": "standard" },
                    "brand": { "type": "keyword" },
                    "category": { "type": "keyword" },
                    "attributes": { "type": "keyword" },
                    "price_bucket": { "type": "keyword" },
                    "price": { "type": "long" },
                    "rating": { "type": "double" },
                    "popularity": { "type": "long" },
                    "created_at": { "type": "long" },
                    "available": { "type": "integer" }
                }
            }
        })
    }

    /// Indexes documents into `target` in batches of [`BULK_BATCH`].
    async fn bulk(
        &self,
        target: &str,
        documents: &[SearchDocument],
        refresh: Option<Refresh>,
    ) -> Result<(), SearchError> {
        for batch in documents.chunks(BULK_BATCH) {
            let lines: Vec<JsonBody<Value>> = batch
                .iter()
                .flat_map(|document| [json!({ "index": { "_id": document.id } }), source(document)])
                .map(JsonBody::from)
                .collect();
            let mut request = self.client.bulk(BulkParts::Index(target)).body(lines);
            if let Some(refresh) = refresh {
                request = request.refresh(refresh);
            }
            let body = checked(request.send().await.map_err(SearchError::index)?, "bulk indexing").await?;
            if let Some(reason) = first_bulk_error(&body) {
                return Err(SearchError::Index(format!("bulk indexing: {reason}")));
            }
        }
        Ok(())
    }
}

/// A URL's user or password as typed before encoding (a password may hold `@` or `:` as `%40`
/// or `%3A`).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut position = 0;
    while position < bytes.len() {
        let escaped = (bytes[position] == b'%')
            .then(|| text.get(position + 1..position + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                position += 3;
            }
            None => {
                decoded.push(bytes[position]);
                position += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The indexed form of a product.
fn source(document: &SearchDocument) -> Value {
    let category_text = document.category_path.as_deref().map(|path| path.replace('/', " "));
    let attribute_values: Vec<&str> = document.attributes.iter().map(|a| a.value.as_str()).collect();
    let spell: Vec<&str> = [Some(document.title.as_str()), document.brand.as_deref(), category_text.as_deref()]
        .into_iter()
        .flatten()
        .chain(attribute_values.iter().copied())
        .collect();
    json!({
        "id": document.id,
        "title": document.title,
        "description": document.description,
        "brand_text": document.brand,
        "brand": document.brand,
        "category_text": category_text,
        "category": document.category_path.as_deref().map(category_ancestors).unwrap_or_default(),
        "attributes_text": attribute_values,
        "attributes": document.attributes.iter().map(|a| attribute_key(&a.name, &a.value)).collect::<Vec<_>>(),
        "spell": spell,
        "price_bucket": price_bucket(document.price_cents),
        "price": document.price_cents,
        "rating": document.rating.unwrap_or(0.0),
        "popularity": document.popularity,
        "created_at": document.created_at,
        "available": document.available,
    })
}

/// `a`, `a/b`, `a/b/c` for `a/b/c`: a category filter then matches descendants with one term.
fn category_ancestors(path: &str) -> Vec<String> {
    let segments: Vec<&str> = path.split('/').collect();
    (1..=segments.len()).map(|n| segments[..n].join("/")).collect()
}

fn attribute_key(name: &str, value: &str) -> String {
    format!("{name}={value}")
}

/// Lucene regular expressions take any character escaped with a backslash literally.
fn regex_literal(text: &str) -> String {
    text.chars().flat_map(|c| if c.is_alphanumeric() { vec![c] } else { vec!['\\', c] }).collect()
}

/// The response body, or an error naming what failed and the cluster's answer.
async fn checked(response: Response, what: &str) -> Result<Value, SearchError> {
    let status = response.status_code();
    if status.is_success() {
        return response.json::<Value>().await.map_err(SearchError::index);
    }
    let text = response.text().await.unwrap_or_default();
    Err(SearchError::Index(format!("{what}: HTTP {status}: {}", text.chars().take(500).collect::<String>())))
}

fn first_bulk_error(body: &Value) -> Option<String> {
    if body["errors"].as_bool() != Some(true) {
        return None;
    }
    body["items"].as_array()?.iter().find_map(|item| {
        let result = item.as_object()?.values().next()?;
        let error = result.get("error")?;
        Some(format!(
            "{} ({}): {}",
            result["_id"].as_str().unwrap_or_default(),
            error["type"].as_str().unwrap_or_default(),
            error["reason"].as_str().unwrap_or_default()
        ))
    })
}

/// Lower-cased words split on anything but letters and digits, as the tantivy adapter reads
/// queries.
fn query_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

fn boosted_fields(factor: f32, with_description: bool) -> Vec<String> {
    SEARCHED
        .iter()
        .filter(|(field, _)| with_description || *field != "description")
        .map(|(field, boost)| format!("{field}^{}", boost * factor))
        .collect()
}

/// Every word (all but one of three or more) must match some field: exactly or through a
/// synonym, at the allowed edits, or (the last word) as a prefix.
fn text_query(words: &[String]) -> Value {
    if words.is_empty() {
        return json!({ "match_all": {} });
    }
    let per_word: Vec<Value> = words
        .iter()
        .enumerate()
        .map(|(position, word)| {
            let mut variants = vec![json!({ "multi_match": {
                "query": word, "type": "most_fields", "fields": boosted_fields(1.0, true), "analyzer": SYNONYM_ANALYZER
            } })];
            // Typo tolerance is for the shopper's own word; synonyms match exactly.
            if allowed_edits(word) > 0 {
                variants.push(json!({ "multi_match": {
                    "query": word, "type": "most_fields", "fields": boosted_fields(0.5, false),
                    "analyzer": TEXT_ANALYZER, "fuzziness": "AUTO:4,8"
                } }));
            }
            if position + 1 == words.len() {
                variants.push(json!({ "multi_match": {
                    "query": word, "type": "phrase_prefix", "fields": boosted_fields(0.5, false)
                } }));
            }
            json!({ "bool": { "should": variants, "minimum_should_match": 1 } })
        })
        .collect();
    let required = if words.len() >= 3 { words.len() - 1 } else { words.len() };
    let all_words = json!({ "bool": { "should": per_word, "minimum_should_match": required } });
    // Proximity: titles holding the words in order, at most one word apart, rank higher.
    let phrase: Vec<Value> = (words.len() >= 2)
        .then(|| json!({ "match_phrase": { "title": { "query": words.join(" "), "slop": 1, "boost": PHRASE_BOOST } } }))
        .into_iter()
        .collect();
    json!({ "bool": { "must": [all_words], "should": phrase } })
}

/// Filters by facet name (`brand`, `category`, `price`, or an attribute name) and the others
/// (in stock, rating), which no facet widens.
fn filter_clauses(filter: &SearchFilter) -> (Vec<(String, Value)>, Vec<Value>) {
    let mut facets = Vec::new();
    if !filter.brands.is_empty() {
        facets.push(("brand".to_owned(), json!({ "terms": { "brand": filter.brands } })));
    }
    if let Some(path) = &filter.category_path {
        facets.push(("category".to_owned(), json!({ "term": { "category": path } })));
    }
    if filter.min_price.is_some() || filter.max_price.is_some() {
        let mut bounds = serde_json::Map::new();
        if let Some(min) = filter.min_price {
            bounds.insert("gte".to_owned(), json!(min));
        }
        if let Some(max) = filter.max_price {
            bounds.insert("lte".to_owned(), json!(max));
        }
        facets.push(("price".to_owned(), json!({ "range": { "price": bounds } })));
    }
    for (name, values) in &filter.attributes {
        let keys: Vec<String> = values.iter().map(|value| attribute_key(name, value)).collect();
        facets.push((name.clone(), json!({ "terms": { "attributes": keys } })));
    }
    let mut others = Vec::new();
    if filter.in_stock_only {
        others.push(json!({ "range": { "available": { "gte": 1 } } }));
    }
    if let Some(rating) = filter.min_rating {
        others.push(json!({ "range": { "rating": { "gte": rating } } }));
    }
    (facets, others)
}

fn sort_clauses(sort: SearchSort) -> Value {
    let (field, order) = match sort {
        SearchSort::Relevance => ("_score", "desc"),
        SearchSort::PriceAsc => ("price", "asc"),
        SearchSort::PriceDesc => ("price", "desc"),
        SearchSort::Rating => ("rating", "desc"),
        SearchSort::Newest => ("created_at", "desc"),
        SearchSort::Popularity => ("popularity", "desc"),
    };
    // The id breaks ties, so equal keys come back in the same order on every page.
    json!([{ field: order }, { "id": "asc" }])
}

/// The `_search` body for a request: hits, every facet, and spelling suggestions.
fn search_body(request: &SearchRequest) -> Value {
    let words = query_words(&request.text);
    let (facet_filters, other_filters) = filter_clauses(&request.filter);
    let all_but = |left_out: Option<&str>| -> Value {
        let kept: Vec<&Value> =
            facet_filters.iter().filter(|(name, _)| Some(name.as_str()) != left_out).map(|(_, f)| f).collect();
        json!({ "bool": { "filter": kept } })
    };
    let terms = |field: &str, include: Option<String>| -> Value {
        let mut terms = json!({ "field": field, "size": FACET_SIZE });
        if let Some(include) = include {
            terms["include"] = json!(include);
        }
        json!({ "terms": terms })
    };
    // The category facet lists the level below the selected category (the top level if none).
    let category_children = match &request.filter.category_path {
        Some(path) => format!("{}/[^/]+", regex_literal(path)),
        None => "[^/]+".to_owned(),
    };
    let mut aggs = json!({
        "brand": { "filter": all_but(Some("brand")), "aggs": { "values": terms("brand", None) } },
        "category": {
            "filter": all_but(Some("category")),
            "aggs": { "values": terms("category", Some(category_children)) }
        },
        "price": {
            "filter": all_but(Some("price")),
            "aggs": { "values": { "terms": { "field": "price_bucket", "size": PRICE_BUCKETS.len() } } }
        },
        "attributes": { "filter": all_but(None), "aggs": { "values": terms("attributes", None) } },
    });
    for (position, (name, _)) in request.filter.attributes.iter().enumerate() {
        let include = format!("{}=.*", regex_literal(name));
        aggs[format!("attribute_{position}")] =
            json!({ "filter": all_but(Some(name)), "aggs": { "values": terms("attributes", Some(include)) } });
    }
    if let Some(last) = words.last() {
        aggs["last_word_prefix"] = json!({ "filter": { "prefix": { "spell": last } } });
    }
    let matched = json!({ "bool": { "must": [text_query(&words)], "filter": other_filters } });
    let query = match request.sort {
        SearchSort::Relevance => {
            json!({ "script_score": { "query": matched, "script": { "source": RELEVANCE_SCRIPT } } })
        }
        _ => matched,
    };
    let mut body = json!({
        "from": request.offset,
        "size": request.limit,
        "track_total_hits": true,
        "_source": false,
        "query": query,
        "post_filter": all_but(None),
        "sort": sort_clauses(request.sort),
        "aggs": aggs,
    });
    if !words.is_empty() {
        body["suggest"] = json!({
            "text": words.join(" "),
            "spelling": { "term": {
                "field": "spell", "suggest_mode": "missing", "min_word_length": 4, "max_edits": 2, "prefix_length": 0
            } }
        });
    }
    body
}

fn buckets(aggregation: &Value) -> Vec<(String, u64)> {
    aggregation["values"]["buckets"]
        .as_array()
        .map(|buckets| {
            buckets.iter().filter_map(|b| Some((b["key"].as_str()?.to_owned(), b["doc_count"].as_u64()?))).collect()
        })
        .unwrap_or_default()
}

fn facet_counts(pairs: impl IntoIterator<Item = (String, u64)>) -> Vec<FacetCount> {
    let mut counts: Vec<FacetCount> = pairs.into_iter().map(|(value, count)| FacetCount { value, count }).collect();
    sort_facet_counts(&mut counts);
    counts
}

/// Reads a `_search` answer into hits, facets in the tantivy adapter's shape, and the corrected
/// query.
fn parse_search_response(request: &SearchRequest, body: &Value) -> Result<SearchHits, SearchError> {
    let hits =
        body["hits"]["hits"].as_array().ok_or_else(|| SearchError::Index("search answer without hits".to_owned()))?;
    let product_ids = hits.iter().filter_map(|hit| hit["_id"].as_str().map(str::to_owned)).collect();
    let total = body["hits"]["total"]["value"].as_u64().unwrap_or_default();
    let aggregations = &body["aggregations"];
    let last_segment = |path: String| path.rsplit('/').next().unwrap_or_default().to_owned();
    let mut facets = vec![
        ("brand".to_owned(), facet_counts(buckets(&aggregations["brand"]))),
        (
            "category".to_owned(),
            facet_counts(buckets(&aggregations["category"]).into_iter().map(|(path, n)| (last_segment(path), n))),
        ),
        ("price".to_owned(), facet_counts(buckets(&aggregations["price"]))),
    ];
    let mut by_name: std::collections::BTreeMap<String, Vec<(String, u64)>> = Default::default();
    for (key, count) in buckets(&aggregations["attributes"]) {
        if let Some((name, value)) = key.split_once('=') {
            by_name.entry(name.to_owned()).or_default().push((value.to_owned(), count));
        }
    }
    for (position, (name, _)) in request.filter.attributes.iter().enumerate() {
        let widened = buckets(&aggregations[format!("attribute_{position}")])
            .into_iter()
            .filter_map(|(key, count)| Some((key.split_once('=')?.1.to_owned(), count)))
            .collect();
        by_name.insert(name.clone(), widened);
    }
    facets.extend(by_name.into_iter().map(|(name, pairs)| (name, facet_counts(pairs))));
    let corrected_query = if total > 0 { corrected_query(&query_words(&request.text), body) } else { None };
    Ok(SearchHits { total, product_ids, facets, corrected_query })
}

/// The query with each unknown word replaced by the cluster's best suggestion within the
/// allowed edits; the last word is left alone while it begins a word of the matched products.
fn corrected_query(words: &[String], body: &Value) -> Option<String> {
    let suggestions = body["suggest"]["spelling"].as_array()?;
    let last_is_prefix = body["aggregations"]["last_word_prefix"]["doc_count"].as_u64().unwrap_or(0) > 0;
    correct_spelling(
        words,
        |_| last_is_prefix,
        |word, limit| {
            suggestions
                .iter()
                .filter(|entry| entry["text"].as_str() == Some(word))
                .flat_map(|entry| entry["options"].as_array().cloned().unwrap_or_default())
                .filter_map(|option| option["text"].as_str().map(str::to_owned))
                .find(|candidate| edit_distance(word, candidate) <= limit)
        },
    )
}

#[async_trait]
impl SearchIndex for OpenSearchIndex {
    async fn search(&self, request: &SearchRequest) -> Result<SearchHits, SearchError> {
        let response = self
            .client
            .search(SearchParts::Index(&[&self.alias]))
            .body(search_body(request))
            .send()
            .await
            .map_err(SearchError::index)?;
        parse_search_response(request, &checked(response, "searching").await?)
    }

    async fn upsert(&self, documents: Vec<SearchDocument>) -> Result<(), SearchError> {
        // wait_for: the call returns once the next refresh made the documents searchable.
        self.bulk(&self.alias, &documents, Some(Refresh::WaitFor)).await?;
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    async fn document_count(&self) -> Result<u64, SearchError> {
        let response = self.client.count(CountParts::Index(&[&self.alias])).send().await.map_err(SearchError::index)?;
        Ok(checked(response, "counting documents").await?["count"].as_u64().unwrap_or_default())
    }

    async fn replace_all(
        &self,
        mut pages: BoxStream<'_, Result<Vec<SearchDocument>, SearchError>>,
        snapshot_started: DateTime<Utc>,
    ) -> Result<(), SearchError> {
        let name = format!("{}-{}", self.alias, uuid::Uuid::new_v4().simple());
        let indices = self.client.indices();
        let created = indices
            .create(IndicesCreateParts::Index(&name))
            .body(self.index_definition(Some(snapshot_started)))
            .send()
            .await
            .map_err(SearchError::index)?;
        checked(created, "creating the new index").await?;
        let built = async {
            while let Some(page) = pages.next().await {
                self.bulk(&name, &page?, None).await?;
            }
            let settings = indices
                .put_settings(IndicesPutSettingsParts::Index(&[&name]))
                .body(json!({ "index": { "refresh_interval": "1s" } }))
                .send()
                .await
                .map_err(SearchError::index)?;
            checked(settings, "turning refreshes back on").await?;
            let refreshed =
                indices.refresh(IndicesRefreshParts::Index(&[&name])).send().await.map_err(SearchError::index)?;
            checked(refreshed, "refreshing the new index").await?;
            let previous = self.aliased_indices().await?;
            let mut actions: Vec<Value> =
                previous.iter().map(|index| json!({ "remove": { "index": index, "alias": self.alias } })).collect();
            actions.push(json!({ "add": { "index": name, "alias": self.alias } }));
            let swapped = indices
                .update_aliases()
                .body(json!({ "actions": actions }))
                .send()
                .await
                .map_err(SearchError::index)?;
            checked(swapped, "moving the alias").await?;
            Ok::<_, SearchError>(previous)
        }
        .await;
        // Whichever index is not live now goes: the old ones after a swap, the new one after a
        // failed build.
        let (stale, outcome) = match built {
            Ok(previous) => {
                // This instance already searches the new index: adopting it again would count
                // a second swap and re-apply the changes since the snapshot for nothing.
                *self.live_index.lock().unwrap_or_else(PoisonError::into_inner) = Some(name);
                self.generation.fetch_add(1, Ordering::Release);
                (previous, Ok(()))
            }
            Err(err) => (vec![name], Err(err)),
        };
        if !stale.is_empty() {
            let names: Vec<&str> = stale.iter().map(String::as_str).collect();
            if let Err(err) = indices.delete(IndicesDeleteParts::Index(&names)).send().await {
                tracing::warn!(error = %err, ?names, "removing old search indices failed");
            }
        }
        outcome
    }

    /// The cluster is shared, so every instance searches the new index as soon as the alias
    /// moves. Each instance that sees a move reports the rebuild's snapshot time, so that the
    /// changes written to the old index while the new one was filled get re-applied.
    async fn adopt_replacement(&self) -> Result<Option<DateTime<Utc>>, SearchError> {
        let Some(live) = self.aliased_indices().await?.into_iter().next() else { return Ok(None) };
        let previous = self.live_index.lock().unwrap_or_else(PoisonError::into_inner).replace(live.clone());
        if previous.is_none_or(|previous| previous == live) {
            return Ok(None);
        }
        self.generation.fetch_add(1, Ordering::Release);
        let response = self
            .client
            .indices()
            .get_mapping(IndicesGetMappingParts::Index(&[&live]))
            .send()
            .await
            .map_err(SearchError::index)?;
        let mapping = checked(response, "reading the new index's mapping").await?;
        let since = mapping[&live]["mappings"]["_meta"]["snapshot_started"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or_else(Utc::now, |t| t.with_timezone(&Utc));
        Ok(Some(since))
    }

    fn generation(&self) -> String {
        format!("os-{}-{}", self.instance, self.generation.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_the_url_are_percent_decoded() {
        assert_eq!(percent_decoded("p%40ss%3Aw%2Frd"), "p@ss:w/rd");
        assert_eq!(percent_decoded("plain"), "plain");
        assert_eq!(percent_decoded("100%"), "100%", "a lone % stays");
    }
}
