//! The OpenSearch adapter against a local stub cluster that answers in the shapes OpenSearch's
//! REST reference documents (`tests/fixtures/opensearch/` holds the longer answers): the index
//! it creates, the bulk batches it sends, the query DSL of a search and how the answer is read,
//! a rebuild that moves the alias in one step, and the server wired to it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use futures::StreamExt;
use serde_json::{Value, json};
use shop::config::{Config, Secret};
use shop::domain::catalog::Attribute;
use shop::domain::search::{
    FacetCount, SearchDocument, SearchError, SearchFilter, SearchRequest, SearchSort, Synonyms,
};
use shop::ports::SearchIndex;
use shop::search::OpenSearchIndex;

use crate::helpers::{Backend, ServerOptions, TestServer, serve_stub};
use crate::on_both_backends;

const ALIAS: &str = "shop-products";
const SEARCH_RESPONSE: &str = include_str!("../fixtures/opensearch/search_response.json");
const BULK_REJECTED: &str = include_str!("../fixtures/opensearch/bulk_rejected_response.json");

#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    path: String,
    query: String,
    body: String,
    authorization: Option<String>,
}

impl Recorded {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{} {}: {e}: {}", self.method, self.path, self.body))
    }

    /// A bulk body's lines.
    fn lines(&self) -> Vec<Value> {
        self.body.lines().map(|line| serde_json::from_str(line).expect("bulk line")).collect()
    }
}

#[derive(Default)]
struct Cluster {
    requests: Vec<Recorded>,
    /// Index name -> the body it was created with.
    indices: BTreeMap<String, Value>,
    /// The index the alias points at.
    aliased: Option<String>,
    documents: u64,
    reject_bulk: bool,
}

type Shared = Arc<Mutex<Cluster>>;

fn acknowledged() -> (StatusCode, Value) {
    (StatusCode::OK, json!({ "acknowledged": true }))
}

async fn answer(
    State(cluster): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> impl IntoResponse {
    let mut cluster = cluster.lock().expect("cluster");
    let path = uri.path().to_owned();
    cluster.requests.push(Recorded {
        method: method.clone(),
        path: path.clone(),
        query: uri.query().unwrap_or_default().to_owned(),
        body: body.clone(),
        authorization: headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned),
    });
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let parsed = || serde_json::from_str::<Value>(&body).unwrap_or(Value::Null);
    let (status, reply) = match (method.as_str(), segments.as_slice()) {
        ("GET", ["_alias", name]) => match &cluster.aliased {
            Some(index) => (StatusCode::OK, json!({ index: { "aliases": { *name: {} } } })),
            None => (StatusCode::NOT_FOUND, json!({ "error": format!("alias [{name}] missing"), "status": 404 })),
        },
        ("POST", ["_aliases"]) => {
            for action in parsed()["actions"].as_array().cloned().unwrap_or_default() {
                if let Some(index) = action["add"]["index"].as_str() {
                    cluster.aliased = Some(index.to_owned());
                }
            }
            acknowledged()
        }
        ("PUT", [index]) if cluster.indices.contains_key(*index) => (
            StatusCode::BAD_REQUEST,
            json!({ "error": { "type": "resource_already_exists_exception", "reason": format!("index [{index}] already exists") }, "status": 400 }),
        ),
        ("PUT", [index]) => {
            let definition = parsed();
            if definition["aliases"].get(ALIAS).is_some() {
                cluster.aliased = Some((*index).to_owned());
            }
            cluster.indices.insert((*index).to_owned(), definition);
            (StatusCode::OK, json!({ "acknowledged": true, "shards_acknowledged": true, "index": index }))
        }
        ("DELETE", [index]) => {
            for name in index.split(',') {
                cluster.indices.remove(name);
            }
            acknowledged()
        }
        ("POST" | "PUT", [target, "_bulk"]) if cluster.reject_bulk => {
            let _ = target;
            (StatusCode::OK, serde_json::from_str(BULK_REJECTED).expect("fixture"))
        }
        ("POST" | "PUT", [target, "_bulk"]) => {
            let items: Vec<Value> = body
                .lines()
                .step_by(2)
                .map(|line| {
                    let id = serde_json::from_str::<Value>(line).expect("action")["index"]["_id"].clone();
                    json!({ "index": { "_index": target, "_id": id, "_version": 1, "result": "created", "status": 201 } })
                })
                .collect();
            cluster.documents += items.len() as u64;
            (StatusCode::OK, json!({ "took": 2, "errors": false, "items": items }))
        }
        (_, [_, "_search"]) => (StatusCode::OK, serde_json::from_str(SEARCH_RESPONSE).expect("fixture")),
        (_, [_, "_count"]) => (
            StatusCode::OK,
            json!({ "count": cluster.documents, "_shards": { "total": 1, "successful": 1, "skipped": 0, "failed": 0 } }),
        ),
        ("PUT", [_, "_settings"]) => acknowledged(),
        ("GET" | "POST", [_, "_refresh"]) => {
            (StatusCode::OK, json!({ "_shards": { "total": 2, "successful": 1, "failed": 0 } }))
        }
        ("GET", [index, "_mapping"]) => {
            let mappings = cluster.indices.get(*index).map(|d| d["mappings"].clone()).unwrap_or_default();
            (StatusCode::OK, json!({ *index: { "mappings": mappings } }))
        }
        _ => (StatusCode::BAD_REQUEST, json!({ "error": format!("stub: no answer for {method} {path}") })),
    };
    (status, axum::Json(reply))
}

fn spawn_cluster() -> (String, Shared) {
    let shared: Shared = Arc::default();
    (serve_stub(Router::new().fallback(answer).with_state(shared.clone())), shared)
}

fn requests(cluster: &Shared) -> Vec<Recorded> {
    cluster.lock().expect("cluster").requests.clone()
}

fn document(n: usize) -> SearchDocument {
    SearchDocument {
        id: format!("prod-{n:07}"),
        title: format!("Red Leather Sofa {n}"),
        description: "Seats three".to_owned(),
        brand: Some("Nordworks".to_owned()),
        category_path: Some("home/furniture/sofas".to_owned()),
        price_cents: 64_900,
        rating: Some(4.5),
        popularity: 12,
        created_at: 1_700_000_000,
        available: 3,
        attributes: vec![Attribute { name: "color".to_owned(), value: "red".to_owned() }],
    }
}

async fn connect(url: &str) -> OpenSearchIndex {
    OpenSearchIndex::connect(url, ALIAS, Synonyms::parse("tv, television\nsofa, couch")).await.expect("connect")
}

#[tokio::test]
async fn the_first_instance_creates_one_index_with_analyzers_synonyms_and_the_alias() {
    let (url, cluster) = spawn_cluster();
    connect(&url).await;
    connect(&url).await;
    let created: Vec<Recorded> = requests(&cluster).into_iter().filter(|r| r.method == Method::PUT).collect();
    assert_eq!(created.len(), 1, "the second instance finds the alias and creates nothing");
    assert_eq!(created[0].path, format!("/{ALIAS}-initial"));
    let definition = created[0].json();
    assert_eq!(definition["aliases"], json!({ ALIAS: {} }));
    let analysis = &definition["settings"]["analysis"];
    assert_eq!(analysis["filter"]["shop_synonym_groups"]["synonyms"], json!(["sofa, couch", "tv, television"]));
    assert_eq!(analysis["filter"]["shop_stemmer"], json!({ "type": "stemmer", "language": "english" }));
    assert_eq!(analysis["analyzer"]["shop_synonyms"]["filter"][1], "shop_synonym_groups");
    let properties = &definition["mappings"]["properties"];
    assert_eq!(properties["title"], json!({ "type": "text", "analyzer": "shop_text" }));
    assert_eq!(properties["brand"], json!({ "type": "keyword" }));
    assert_eq!(properties["price"], json!({ "type": "long" }));
}

#[tokio::test]
async fn credentials_in_the_url_become_basic_auth() {
    use base64::Engine;
    let (url, cluster) = spawn_cluster();
    let with_credentials = url.replace("http://", "http://search-user:p%40ss@");
    OpenSearchIndex::connect(&with_credentials, ALIAS, Synonyms::default()).await.expect("connect");
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("search-user:p@ss"));
    let sent = requests(&cluster);
    assert!(!sent.is_empty() && sent.iter().all(|r| r.authorization.as_deref() == Some(expected.as_str())), "{sent:?}");
}

#[tokio::test]
async fn changes_are_bulk_indexed_in_batches_of_a_thousand_and_visible_when_the_call_returns() {
    let (url, cluster) = spawn_cluster();
    let index = connect(&url).await;
    let generation = index.generation();
    index.upsert((1..=2_500).map(document).collect()).await.expect("upsert");
    assert_ne!(index.generation(), generation, "cached results of the older contents are not served");
    let bulks: Vec<Recorded> = requests(&cluster).into_iter().filter(|r| r.path.ends_with("/_bulk")).collect();
    assert_eq!(bulks.iter().map(|b| b.lines().len() / 2).collect::<Vec<_>>(), [1_000, 1_000, 500]);
    for bulk in &bulks {
        assert_eq!(bulk.path, format!("/{ALIAS}/_bulk"));
        assert_eq!(bulk.query, "refresh=wait_for");
    }
    let lines = bulks[0].lines();
    assert_eq!(lines[0], json!({ "index": { "_id": "prod-0000001" } }));
    let source = &lines[1];
    assert_eq!(source["category"], json!(["home", "home/furniture", "home/furniture/sofas"]));
    assert_eq!(source["attributes"], json!(["color=red"]));
    assert_eq!(source["price_bucket"], "50000-100000");
    assert_eq!(source["brand"], "Nordworks");
    assert_eq!(index.document_count().await.expect("count"), 2_500);
}

#[tokio::test]
async fn a_document_the_cluster_rejects_fails_the_write_with_its_reason() {
    let (url, cluster) = spawn_cluster();
    let index = connect(&url).await;
    cluster.lock().expect("cluster").reject_bulk = true;
    let generation = index.generation();
    match index.upsert(vec![document(1), document(2)]).await {
        Err(SearchError::Index(message)) => {
            assert!(message.contains("prod-0000002") && message.contains("mapper_parsing_exception"), "{message}");
        }
        other => panic!("expected an index error, got {other:?}"),
    }
    assert_eq!(index.generation(), generation);
}

fn red_leather_sofas() -> SearchRequest {
    SearchRequest {
        text: "Red lether sofa".to_owned(),
        filter: SearchFilter {
            brands: vec!["Nordworks".to_owned(), "Aalto".to_owned()],
            min_price: Some(50_000),
            max_price: Some(150_000),
            in_stock_only: true,
            attributes: vec![("color".to_owned(), vec!["red".to_owned()])],
            ..SearchFilter::default()
        },
        sort: SearchSort::Relevance,
        limit: 2,
        offset: 0,
    }
}

#[tokio::test]
async fn a_search_sends_the_query_dsl_and_reads_hits_facets_and_the_correction() {
    let (url, cluster) = spawn_cluster();
    let index = connect(&url).await;
    let hits = index.search(&red_leather_sofas()).await.expect("search");

    let sent = requests(&cluster).into_iter().find(|r| r.path.ends_with("/_search")).expect("a search");
    assert_eq!(sent.path, format!("/{ALIAS}/_search"));
    let body = sent.json();
    assert_eq!(
        (body["from"].clone(), body["size"].clone(), body["track_total_hits"].clone()),
        (json!(0), json!(2), json!(true))
    );
    assert_eq!(body["sort"], json!([{ "_score": "desc" }, { "id": "asc" }]));
    let script = &body["query"]["script_score"];
    assert!(script["script"]["source"].as_str().expect("script").contains("Math.log(1 + Math.max(doc['popularity']"));
    let matched = &script["query"]["bool"];
    assert_eq!(matched["filter"], json!([{ "range": { "available": { "gte": 1 } } }]));
    let text = &matched["must"][0]["bool"];
    let words = &text["must"][0]["bool"];
    assert_eq!(words["minimum_should_match"], 2, "three words: all but one must match");
    let lether = &words["should"][1]["bool"]["should"];
    assert_eq!(lether[0]["multi_match"]["analyzer"], "shop_synonyms");
    assert_eq!(
        lether[0]["multi_match"]["fields"],
        json!(["title^3", "brand_text^2", "category_text^1.5", "attributes_text^1.5", "description^1"])
    );
    assert_eq!(lether[1]["multi_match"]["fuzziness"], "AUTO:4,8");
    assert_eq!(words["should"][0]["bool"]["should"].as_array().map(Vec::len), Some(1), "`red` is too short for typos");
    assert_eq!(words["should"][2]["bool"]["should"][2]["multi_match"]["type"], "phrase_prefix", "type-ahead");
    assert_eq!(
        text["should"][0],
        json!({ "match_phrase": { "title": { "query": "red lether sofa", "slop": 1, "boost": 6.0 } } })
    );
    let brand = json!({ "terms": { "brand": ["Nordworks", "Aalto"] } });
    let price = json!({ "range": { "price": { "gte": 50_000, "lte": 150_000 } } });
    let color = json!({ "terms": { "attributes": ["color=red"] } });
    assert_eq!(body["post_filter"], json!({ "bool": { "filter": [brand, price, color] } }));
    let aggs = &body["aggs"];
    assert_eq!(aggs["brand"]["filter"], json!({ "bool": { "filter": [price, color] } }), "brand counts widen brand");
    assert_eq!(aggs["price"]["filter"], json!({ "bool": { "filter": [brand, color] } }));
    assert_eq!(aggs["attribute_0"]["filter"], json!({ "bool": { "filter": [brand, price] } }));
    assert_eq!(aggs["attribute_0"]["aggs"]["values"]["terms"]["include"], "color=.*");
    assert_eq!(aggs["category"]["aggs"]["values"]["terms"]["include"], "[^/]+", "top-level categories");
    assert_eq!(body["suggest"]["text"], "red lether sofa");

    assert_eq!(hits.product_ids, ["prod-0000002", "prod-0000001"]);
    assert_eq!(hits.total, 3);
    assert_eq!(hits.corrected_query.as_deref(), Some("red leather sofa"));
    let facet = |name: &str| hits.facets.iter().find(|(n, _)| n == name).map(|(_, counts)| counts.clone());
    let counts = |pairs: &[(&str, u64)]| -> Vec<FacetCount> {
        pairs.iter().map(|(value, count)| FacetCount { value: (*value).to_owned(), count: *count }).collect()
    };
    assert_eq!(facet("brand"), Some(counts(&[("Aalto", 2), ("Nordworks", 2), ("Casa", 1)])));
    assert_eq!(facet("category"), Some(counts(&[("sofas", 3)])));
    assert_eq!(facet("price"), Some(counts(&[("50000-100000", 2), ("100000+", 1)])));
    assert_eq!(facet("color"), Some(counts(&[("blue", 4), ("red", 3)])), "widened without its own selection");
    assert_eq!(facet("material"), Some(counts(&[("leather", 2)])));
}

#[tokio::test]
async fn sorts_break_ties_by_id_and_a_category_lists_its_children() {
    let (url, cluster) = spawn_cluster();
    let index = connect(&url).await;
    let request = SearchRequest {
        text: String::new(),
        filter: SearchFilter { category_path: Some("home/furniture".to_owned()), ..SearchFilter::default() },
        sort: SearchSort::PriceAsc,
        limit: 20,
        offset: 40,
    };
    index.search(&request).await.expect("search");
    let body = requests(&cluster).into_iter().find(|r| r.path.ends_with("/_search")).expect("a search").json();
    assert_eq!(body["sort"], json!([{ "price": "asc" }, { "id": "asc" }]));
    assert_eq!(body["from"], 40);
    assert_eq!(body["query"]["bool"]["must"][0], json!({ "match_all": {} }), "an empty query browses");
    assert!(body.get("suggest").is_none());
    assert_eq!(body["post_filter"], json!({ "bool": { "filter": [{ "term": { "category": "home/furniture" } }] } }));
    assert_eq!(body["aggs"]["category"]["aggs"]["values"]["terms"]["include"], "home\\/furniture/[^/]+");
}

#[tokio::test]
async fn a_rebuild_fills_a_new_index_then_moves_the_alias_in_one_call() {
    let (url, cluster) = spawn_cluster();
    let index = connect(&url).await;
    let other_instance = connect(&url).await;
    let snapshot = chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z").expect("time").to_utc();
    let before = requests(&cluster).len();
    let pages = futures::stream::iter(vec![Ok((1..=1_500).map(document).collect()), Ok(vec![document(1_501)])]);
    index.replace_all(pages.boxed(), snapshot).await.expect("rebuild");

    let made: Vec<Recorded> = requests(&cluster)[before..].to_vec();
    let new_index = made[0].path.trim_start_matches('/').to_owned();
    assert!(made[0].method == Method::PUT && new_index.starts_with(&format!("{ALIAS}-")), "{:?}", made[0]);
    let definition = made[0].json();
    assert_eq!(definition["settings"]["index"]["refresh_interval"], "-1", "no refreshes while filling");
    assert_eq!(definition["mappings"]["_meta"]["snapshot_started"], "2026-12-01T10:00:00+00:00");
    let bulks: Vec<&Recorded> = made.iter().filter(|r| r.path.ends_with("/_bulk")).collect();
    assert_eq!(bulks.iter().map(|b| b.lines().len() / 2).collect::<Vec<_>>(), [1_000, 500, 1]);
    assert!(bulks.iter().all(|b| b.path == format!("/{new_index}/_bulk") && b.query.is_empty()));
    let swap = made.iter().find(|r| r.path == "/_aliases").expect("alias move");
    assert_eq!(
        swap.json(),
        json!({ "actions": [
            { "remove": { "index": format!("{ALIAS}-initial"), "alias": ALIAS } },
            { "add": { "index": new_index, "alias": ALIAS } }
        ] })
    );
    let order: Vec<String> = made.iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    let position =
        |step: &str| order.iter().position(|o| o.ends_with(step)).unwrap_or_else(|| panic!("{step} in {order:?}"));
    assert!(position(&format!("PUT /{new_index}/_settings")) < position(&format!(" /{new_index}/_refresh")));
    assert!(position(&format!(" /{new_index}/_refresh")) < position("POST /_aliases"));
    assert!(position("POST /_aliases") < position(&format!("DELETE /{ALIAS}-initial")), "the old index goes last");

    assert_eq!(index.adopt_replacement().await.expect("adopt"), None, "the rebuilding instance already switched");
    assert_eq!(other_instance.adopt_replacement().await.expect("adopt"), Some(snapshot), "catch up from the snapshot");
    assert_eq!(other_instance.adopt_replacement().await.expect("adopt"), None, "reported once");
}

#[tokio::test]
async fn a_failed_rebuild_leaves_the_live_index_and_removes_the_partial_one() {
    let (url, cluster) = spawn_cluster();
    let index = connect(&url).await;
    let pages =
        futures::stream::iter(vec![Ok(vec![document(1)]), Err(SearchError::Index("the store went away".to_owned()))]);
    assert!(index.replace_all(pages.boxed(), chrono::Utc::now()).await.is_err());
    let cluster = cluster.lock().expect("cluster");
    assert_eq!(cluster.aliased.as_deref(), Some("shop-products-initial"));
    assert_eq!(cluster.indices.keys().collect::<Vec<_>>(), ["shop-products-initial"], "the partial index is deleted");
}

fn shared_cluster() -> &'static (String, Shared) {
    static CLUSTER: OnceLock<(String, Shared)> = OnceLock::new();
    CLUSTER.get_or_init(spawn_cluster)
}

fn on_the_stub_cluster(config: &mut Config) {
    config.opensearch_url = Some(Secret(shared_cluster().0.clone()));
}

on_both_backends!(the_server_searches_and_indexes_through_opensearch, |backend: Backend| async move {
    let server = TestServer::start_with(
        backend,
        ServerOptions { seed_products: 5, tweak: on_the_stub_cluster, ..Default::default() },
    )
    .await;
    let cluster = &shared_cluster().1;
    let query = "{ searchProducts(query: \"red lether sofa\", first: 2) { totalCount correctedQuery nodes { id title } facets { name values { value count } } } }";
    let found = server.data(query, json!({}), None).await["searchProducts"].clone();
    assert_eq!(found["totalCount"], 3);
    assert_eq!(found["correctedQuery"], "red leather sofa");
    let ids: Vec<&str> = found["nodes"].as_array().expect("nodes").iter().filter_map(|n| n["id"].as_str()).collect();
    assert_eq!(ids, ["prod-0000002", "prod-0000001"], "the cluster's order, products read from the store");
    assert!(found["nodes"][0]["title"].as_str().is_some_and(|t| !t.is_empty()));

    let admin = server.admin_token().await;
    let title = format!("Stub Sofa {}", uuid::Uuid::new_v4().simple());
    let upsert = "mutation($title: String!) { adminUpsertProduct(input: { id: \"prod-0000003\", title: $title, description: \"\", priceCents: 1500 }) { id } }";
    server.data(upsert, json!({ "title": title }), Some(&admin)).await;
    let indexed = async {
        loop {
            let sent =
                requests(cluster).into_iter().any(|r| r.path == format!("/{ALIAS}/_bulk") && r.body.contains(&title));
            if sent {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(1), indexed)
        .await
        .expect("the change reaches the cluster within a second");
});
