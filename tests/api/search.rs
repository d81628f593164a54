//! Product search: relevance, filters, disjunctive facets, sorts, pagination, freshness, REST.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{Backend, ServerOptions, TestServer, error_code};
use crate::on_both_backends;

const SEARCH: &str = "query($q: String, $f: ProductFilter, $s: ProductSort, $n: Int, $a: String) { searchProducts(query: $q, filter: $f, sort: $s, first: $n, after: $a) { totalCount nodes { id title brand price { centAmount } rating inStock category { path } attributes { name value } } facets { name values { value count } } pageInfo { hasNextPage endCursor } } }";

async fn seeded(backend: Backend) -> TestServer {
    TestServer::start_with(backend, ServerOptions { seed_products: 400, ..Default::default() }).await
}

async fn search(server: &TestServer, variables: Value) -> Value {
    server.data(SEARCH, variables, None).await["searchProducts"].clone()
}

fn nodes(result: &Value) -> &Vec<Value> {
    result["nodes"].as_array().expect("nodes")
}

fn ids(result: &Value) -> Vec<String> {
    nodes(result).iter().map(|n| n["id"].as_str().expect("id").to_owned()).collect()
}

fn facet<'a>(result: &'a Value, name: &str) -> Vec<(&'a str, i64)> {
    result["facets"]
        .as_array()
        .expect("facets")
        .iter()
        .find(|f| f["name"] == name)
        .map(|f| {
            f["values"]
                .as_array()
                .expect("values")
                .iter()
                .map(|v| (v["value"].as_str().expect("value"), v["count"].as_i64().expect("count")))
                .collect()
        })
        .unwrap_or_default()
}

on_both_backends!(a_products_own_words_find_it_first, |backend: Backend| async move {
    let server = seeded(backend).await;
    let target =
        server.data("{ product(id: \"prod-0000123\") { title } }", json!({}), None).await["product"]["title"].clone();
    let found = search(&server, json!({ "q": target })).await;
    assert_eq!(nodes(&found)[0]["title"], target, "{found:#}");
    let typo = search(&server, json!({ "q": "lether sofaa" })).await;
    assert!(
        nodes(&typo).iter().any(|n| n["title"].as_str().is_some_and(|t| t.contains("Leather"))),
        "one edit away still matches: {typo:#}"
    );
    let prefix = search(&server, json!({ "q": "televi" })).await;
    assert!(
        nodes(&prefix).iter().all(|n| n["category"]["path"].as_str().is_some_and(|p| p.contains("Televisions"))),
        "{prefix:#}"
    );
    assert!(!nodes(&prefix).is_empty(), "the last word also matches as a prefix");
});

on_both_backends!(filters_narrow_and_facets_widen, |backend: Backend| async move {
    let server = seeded(backend).await;
    let all = search(&server, json!({ "n": 1 })).await;
    assert_eq!(all["totalCount"], 400, "an empty query browses the catalog");
    let (brand, brand_count) = facet(&all, "brand")[0];

    let by_brand = search(&server, json!({ "f": { "brands": [brand] }, "n": 100 })).await;
    assert_eq!(by_brand["totalCount"].as_i64(), Some(brand_count));
    assert!(nodes(&by_brand).iter().all(|n| n["brand"] == brand));
    assert!(facet(&by_brand, "brand").len() > 1, "the brand facet ignores the brand selection");
    let categories: i64 = facet(&by_brand, "category").iter().map(|(_, c)| c).sum();
    assert_eq!(categories, brand_count, "other facets honour it");

    let home = search(&server, json!({ "f": { "category": "Home" }, "n": 100 })).await;
    assert!(nodes(&home).iter().all(|n| n["category"]["path"].as_str().is_some_and(|p| p.starts_with("Home/"))));
    let by_id = search(&server, json!({ "f": { "category": "home" }, "n": 1 })).await;
    assert_eq!(by_id["totalCount"], home["totalCount"], "a category id works like its path");
    assert!(
        facet(&home, "category").iter().all(|(name, _)| ["Bath", "Bedding", "Decor", "Furniture"].contains(name)),
        "{home:#}"
    );

    let priced = search(
        &server,
        json!({ "f": { "minPrice": 5000, "maxPrice": 20000, "inStockOnly": true, "minRating": 4.0 }, "n": 100 }),
    )
    .await;
    for node in nodes(&priced) {
        let cents = node["price"]["centAmount"].as_i64().expect("price");
        assert!(
            (5000..=20000).contains(&cents)
                && node["inStock"] == true
                && node["rating"].as_f64().is_some_and(|r| r >= 4.0),
            "{node}"
        );
    }
    let red =
        search(&server, json!({ "f": { "attributes": [{ "name": "color", "values": ["Red"] }] }, "n": 100 })).await;
    assert!(nodes(&red).iter().all(|n| {
        n["attributes"].as_array().is_some_and(|a| a.iter().any(|x| x["name"] == "color" && x["value"] == "Red"))
    }));
    assert!(facet(&red, "color").len() > 1, "the color facet still offers other colours");
    let nowhere = search(&server, json!({ "f": { "category": "No/Such/Category" } })).await;
    assert_eq!(nowhere["totalCount"], 0, "an unknown category matches nothing");
});

on_both_backends!(sorts_and_pages, |backend: Backend| async move {
    let server = seeded(backend).await;
    let ascending = search(&server, json!({ "s": "PRICE_ASC", "n": 50 })).await;
    let prices: Vec<i64> =
        nodes(&ascending).iter().map(|n| n["price"]["centAmount"].as_i64().expect("price")).collect();
    assert!(prices.windows(2).all(|w| w[0] <= w[1]));
    let descending = search(&server, json!({ "s": "PRICE_DESC", "n": 50 })).await;
    let prices: Vec<i64> =
        nodes(&descending).iter().map(|n| n["price"]["centAmount"].as_i64().expect("price")).collect();
    assert!(prices.windows(2).all(|w| w[0] >= w[1]));
    let rated = search(&server, json!({ "s": "RATING", "n": 50 })).await;
    let ratings: Vec<f64> = nodes(&rated).iter().map(|n| n["rating"].as_f64().unwrap_or(0.0)).collect();
    assert!(ratings.windows(2).all(|w| w[0] >= w[1]));

    let mut seen = std::collections::BTreeSet::new();
    let mut after: Option<String> = None;
    loop {
        let page =
            search(&server, json!({ "f": { "category": "Electronics" }, "s": "NEWEST", "n": 7, "a": after })).await;
        for node in nodes(&page) {
            assert!(seen.insert(node["id"].as_str().expect("id").to_owned()), "no product twice");
        }
        if page["pageInfo"]["hasNextPage"] == false {
            assert_eq!(seen.len() as i64, page["totalCount"].as_i64().expect("total"));
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
});

on_both_backends!(
    pages_continue_after_the_last_product_seen_while_the_catalog_changes,
    |backend: Backend| async move {
        let server = seeded(backend).await;
        let admin = server.admin_token().await;
        let upsert = "mutation($i: ProductInput!) { adminUpsertProduct(input: $i) { id } }";
        // Products of their own, each at its own price, so that every move below is a price change.
        const SHELF: &str = "Test/Cursor/Pages";
        for n in 1..=15 {
            let input = json!({ "id": format!("shelf-{n:02}"), "title": format!("Shelf Item {n}"), "description": "", "priceCents": n * 1_000, "categoryPath": SHELF });
            server.data(upsert, json!({ "i": input }), Some(&admin)).await;
        }
        let on_shelf = |sort: &str, n: i64, after: Option<String>| json!({ "f": { "category": SHELF }, "s": sort, "n": n, "a": after });
        let cheapest_first = |after: Option<String>| on_shelf("PRICE_ASC", 5, after);
        let started = Instant::now();
        while search(&server, on_shelf("PRICE_ASC", 15, None)).await["totalCount"] != 15 {
            assert!(started.elapsed() < Duration::from_secs(2), "the shelf never showed up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let before = ids(&search(&server, on_shelf("PRICE_ASC", 15, None)).await);
        let first = search(&server, cheapest_first(None)).await;
        assert_eq!(ids(&first), before[..5]);

        // A new cheapest product lands ahead of the cursor: an offset would repeat page 1's last.
        let input = json!({ "id": "penny-1", "title": "Penny Whistle", "description": "", "priceCents": 1, "categoryPath": SHELF });
        server.data(upsert, json!({ "i": input }), Some(&admin)).await;
        let started = Instant::now();
        while ids(&search(&server, on_shelf("PRICE_ASC", 1, None)).await) != ["penny-1"] {
            assert!(started.elapsed() < Duration::from_secs(2), "the new product never showed up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let second = search(&server, cheapest_first(first["pageInfo"]["endCursor"].as_str().map(str::to_owned))).await;
        assert_eq!(ids(&second), before[5..10], "{second:#}");

        // Two products already seen move behind the cursor: an offset would skip two.
        for node in &nodes(&first)[..2] {
            let input = json!({ "id": node["id"], "title": node["title"], "description": "", "priceCents": 99_999_999, "categoryPath": SHELF });
            server.data(upsert, json!({ "i": input }), Some(&admin)).await;
        }
        let moved = nodes(&first)[0]["id"].as_str().expect("id").to_owned();
        let started = Instant::now();
        while ids(&search(&server, on_shelf("PRICE_DESC", 2, None)).await).iter().all(|id| *id != moved) {
            assert!(started.elapsed() < Duration::from_secs(2), "the price change never showed up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let third = search(&server, cheapest_first(second["pageInfo"]["endCursor"].as_str().map(str::to_owned))).await;
        assert_eq!(ids(&third), before[10..15], "{third:#}");
    }
);

on_both_backends!(products_of_one_price_keep_one_order_while_they_are_re_indexed, |backend: Backend| async move {
    let server = seeded(backend).await;
    let admin = server.admin_token().await;
    let upsert = "mutation($i: ProductInput!) { adminUpsertProduct(input: $i) { id } }";
    const SHELF: &str = "Test/Ties/Pages";
    let tied = |id: &str, title: &str| json!({ "i": { "id": id, "title": title, "description": "", "priceCents": 1_500, "categoryPath": SHELF } });
    for n in 1..=12 {
        server.data(upsert, tied(&format!("tie-{n:02}"), &format!("Tied Item {n}")), Some(&admin)).await;
    }
    let cheapest_first =
        |n: i64, after: Option<String>| json!({ "f": { "category": SHELF }, "s": "PRICE_ASC", "n": n, "a": after });
    let started = Instant::now();
    while search(&server, cheapest_first(12, None)).await["totalCount"] != 12 {
        assert!(started.elapsed() < Duration::from_secs(2), "the shelf never showed up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = ids(&search(&server, cheapest_first(12, None)).await);
    let first = search(&server, cheapest_first(4, None)).await;
    assert_eq!(ids(&first), before[..4]);

    // Every product is re-indexed, last first, each on its own: the index then holds them in
    // other places, which must not change their order.
    for id in before.iter().rev() {
        let title = format!("Retitled {id}");
        server.data(upsert, tied(id, &title), Some(&admin)).await;
        let started = Instant::now();
        while !nodes(&search(&server, cheapest_first(12, None)).await)
            .iter()
            .any(|n| n["id"] == *id && n["title"] == title)
        {
            assert!(started.elapsed() < Duration::from_secs(2), "{id} was never re-indexed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(ids(&search(&server, cheapest_first(12, None)).await), before, "equal prices changed order");
    let mut seen = ids(&first);
    let mut after = first["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    while let Some(cursor) = after {
        let page = search(&server, cheapest_first(4, Some(cursor))).await;
        seen.extend(ids(&page));
        after = page["pageInfo"]["endCursor"]
            .as_str()
            .filter(|_| page["pageInfo"]["hasNextPage"] == true)
            .map(str::to_owned);
    }
    assert_eq!(seen, before, "pages repeated or skipped products of equal price");
});

on_both_backends!(bad_search_input_is_refused_or_finds_nothing, |backend: Backend| async move {
    let server = seeded(backend).await;
    for (variables, field) in [
        (json!({ "n": 101 }), "first"),
        (json!({ "n": 0 }), "first"),
        (json!({ "f": { "minPrice": 500, "maxPrice": 100 } }), "minPrice"),
        (json!({ "q": "x".repeat(10_000) }), "query"),
        (json!({ "a": "garbage" }), "after"),
    ] {
        let response = server.gql(SEARCH, variables, None).await;
        assert_eq!(error_code(&response), "BAD_USER_INPUT", "{response}");
        assert_eq!(response["errors"][0]["extensions"]["field"], field);
    }
    for syntax in ["sofa AND (red OR", "title:\"tv", "*", "-", "\\\\"] {
        let response = server.gql(SEARCH, json!({ "q": syntax }), None).await;
        assert!(response.get("errors").is_none(), "{syntax}: {response}");
    }
});

on_both_backends!(catalog_changes_reach_search_within_a_second, |backend: Backend| async move {
    let server = seeded(backend).await;
    let admin = server.admin_token().await;
    let upsert = "mutation($i: ProductInput!) { adminUpsertProduct(input: $i) { id } }";
    let input = json!({ "id": "uke-1", "title": "Zebrawood Concert Ukulele", "description": "Warm tone.", "priceCents": 12900, "categoryPath": "Toys/Music/Ukuleles" });
    server.data(upsert, json!({ "i": input }), Some(&admin)).await;
    let wait_for = |query: Value, expected: i64| {
        let server = &server;
        async move {
            let started = Instant::now();
            loop {
                let found = search(server, query.clone()).await;
                if found["totalCount"] == expected {
                    return started.elapsed();
                }
                assert!(started.elapsed() < Duration::from_secs(1), "not visible within a second: {found}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(json!({ "q": "zebrawood ukulele" }), 1).await;
    server.data("mutation { adminSetStock(productId: \"uke-1\", quantity: 3) { id } }", json!({}), Some(&admin)).await;
    wait_for(json!({ "q": "zebrawood", "f": { "inStockOnly": true } }), 1).await;
    server.data("mutation { adminSetStock(productId: \"uke-1\", quantity: 0) { id } }", json!({}), Some(&admin)).await;
    wait_for(json!({ "q": "zebrawood", "f": { "inStockOnly": true } }), 0).await;
});

on_both_backends!(only_words_the_catalog_does_not_know_match_their_near_misses, |backend: Backend| async move {
    let server = seeded(backend).await;
    let admin = server.admin_token().await;
    let upsert = "mutation($i: ProductInput!) { adminUpsertProduct(input: $i) { id } }";
    for (id, title) in [("uke-1", "Zebrawood Concert Ukulele"), ("throw-1", "Zebrawool Travel Throw")] {
        let input = json!({ "id": id, "title": title, "description": "Soft.", "priceCents": 4900, "categoryPath": "Toys/Music/Ukuleles" });
        server.data(upsert, json!({ "i": input }), Some(&admin)).await;
    }
    // A word no product holds is within two edits of both titles' first words.
    let started = Instant::now();
    while ids(&search(&server, json!({ "q": "zebrawoood" })).await).len() < 2 {
        assert!(started.elapsed() < Duration::from_secs(2), "both products should be indexed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ids(&search(&server, json!({ "q": "zebrawood" })).await), ["uke-1"], "a known word is not widened");
    assert_eq!(ids(&search(&server, json!({ "q": "zebrawool" })).await), ["throw-1"], "a known word is not widened");
});

on_both_backends!(the_rest_search_facade, |backend: Backend| async move {
    let server = seeded(backend).await;
    let get = |query: &'static str| server.client.get(server.url(&format!("/products/search?{query}"))).send();
    let home = search(&server, json!({ "f": { "category": "Home" }, "n": 1 })).await;
    let brands: Vec<&str> = facet(&home, "brand").iter().take(2).map(|(brand, _)| *brand).collect();
    let url = format!(
        "/products/search?category=Home&brand={}&brand={}&minPrice=1000&inStock=true&sort=price_asc&limit=5",
        brands[0], brands[1]
    );
    let response = server.client.get(server.url(&url)).send().await.expect("get");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert!(body["totalCount"].as_i64().is_some_and(|n| n > 0) && body["facets"].is_array(), "{body}");
    let found = nodes(&body);
    assert!(found.len() <= 5);
    for node in found {
        assert!(node["category"]["path"].as_str().is_some_and(|p| p.starts_with("Home/")), "{node}");
        assert!(brands.contains(&node["brand"].as_str().unwrap_or_default()) && node["inStock"] == true, "{node}");
        assert!(node["price"]["centAmount"].as_i64().is_some_and(|c| c >= 1000), "{node}");
    }
    let prices: Vec<i64> = found.iter().filter_map(|n| n["price"]["centAmount"].as_i64()).collect();
    assert!(prices.windows(2).all(|w| w[0] <= w[1]), "sorted by price: {prices:?}");
    let plain: Value = get("q=sofa&limit=3").await.expect("get").json().await.expect("json");
    assert!(nodes(&plain).len() <= 3 && plain["pageInfo"]["hasNextPage"].is_boolean());
    let bad = get("limit=1000").await.expect("get");
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().await.expect("json")["error"]["code"], "BAD_USER_INPUT");
    assert_eq!(get("minPrice=cheap").await.expect("get").status(), 400);
});

on_both_backends!(identical_searches_come_from_the_cache_until_the_index_changes, |backend: Backend| async move {
    let server = seeded(backend).await;
    let hits = || server.metric("shop_search_cache_hits_total");
    let query = json!({ "q": "sofa", "f": { "category": "Home" }, "n": 5 });
    // The indexer may still be applying the seed's catalog events, and each commit rightly
    // retires cached results; a quiet moment comes within a few tries.
    let mut before = 0.0;
    for attempt in 1..=20 {
        let first = search(&server, query.clone()).await;
        before = hits().await;
        let second = search(&server, query.clone()).await;
        assert_eq!(first, second);
        if hits().await == before + 1.0 {
            break;
        }
        assert!(attempt < 20, "the repeat never came from the cache");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    search(&server, json!({ "q": "sofa", "f": { "category": "Home" }, "n": 6 })).await;
    assert_eq!(hits().await, before + 1.0, "a different request is not a hit");
});

on_both_backends!(
    a_stock_move_search_cannot_see_leaves_the_index_and_its_cached_results,
    |backend: Backend| async move {
        let server = seeded(backend).await;
        let admin = server.admin_token().await;
        let hits = || server.metric("shop_search_cache_hits_total");
        let query = json!({ "q": "sofa", "f": { "inStockOnly": true }, "n": 5 });
        let product = ids(&search(&server, query.clone()).await)[0].clone();
        // The index takes a catalog event within a second, and a write to it retires cached results.
        let settle = || tokio::time::sleep(Duration::from_millis(1_500));
        let repeat_is_a_hit = async || {
            let before = hits().await;
            search(&server, query.clone()).await;
            hits().await == before + 1.0
        };
        // First a quiet index: the seed's catalog events may still be arriving.
        for attempt in 1..=10 {
            search(&server, query.clone()).await;
            settle().await;
            if repeat_is_a_hit().await {
                break;
            }
            assert!(attempt < 10, "the index never went quiet");
        }
        let set_stock = "mutation($p: ID!, $q: Int!) { adminSetStock(productId: $p, quantity: $q) { id } }";
        // The product's first change since the index was built is written: what the build wrote
        // is not remembered.
        server.data(set_stock, json!({ "p": product, "q": 8 }), Some(&admin)).await;
        settle().await;
        search(&server, query.clone()).await;
        server.data(set_stock, json!({ "p": product, "q": 7 }), Some(&admin)).await;
        settle().await;
        assert!(repeat_is_a_hit().await, "a stock that stayed above zero rewrote the index");
        server.data(set_stock, json!({ "p": product, "q": 0 }), Some(&admin)).await;
        settle().await;
        assert!(!ids(&search(&server, query.clone()).await).contains(&product), "sold out, still found in stock");
    }
);

on_both_backends!(synonyms_and_spelling_corrections, |backend: Backend| async move {
    let server = seeded(backend).await;
    let query = "query($q: String) { searchProducts(query: $q, first: 50) { totalCount correctedQuery nodes { title category { path } } } }";
    let run = |q: &'static str| server.data(query, json!({ "q": q }), None);
    let settee = run("settee").await["searchProducts"].clone();
    assert!(
        settee["totalCount"].as_i64().is_some_and(|n| n > 0),
        "no product says settee; its synonym sofa does: {settee}"
    );
    let sofa_like = |n: &Value| {
        n["category"]["path"] == "Home/Furniture/Sofas" || n["title"].as_str().is_some_and(|t| t.contains("Sofa"))
    };
    assert!(settee["nodes"].as_array().expect("nodes").iter().all(sofa_like), "{settee}");

    let misspelt = run("lether sofaa").await["searchProducts"].clone();
    let corrected = misspelt["correctedQuery"].as_str().unwrap_or_default();
    assert!(corrected.starts_with("leather sofa"), "{misspelt}");
    assert_eq!(run("leather sofa").await["searchProducts"]["correctedQuery"], Value::Null, "nothing to correct");
    assert_eq!(run("televi").await["searchProducts"]["correctedQuery"], Value::Null, "type-ahead is not a typo");
});

on_both_backends!(shop_reindex_swaps_in_a_new_index_without_a_gap, |backend: Backend| async move {
    let server = TestServer::start_with(backend, ServerOptions { seed_products: 3_000, ..Default::default() }).await;
    let browse = "query($n: Int) { searchProducts(query: \"\", first: $n) { totalCount } }";
    let searching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let searcher = {
        let (base, searching) = (server.base.clone(), searching.clone());
        tokio::spawn(async move {
            let mut searches = 0;
            while searching.load(std::sync::atomic::Ordering::Relaxed) {
                // A different page size each time, so the result cache cannot answer for the index.
                let response =
                    crate::helpers::gql_response(&base, browse, json!({ "n": searches % 50 + 1 }), None).await;
                // 3,000 seeded, plus the product added meanwhile: never empty, never an error.
                let total = response["data"]["searchProducts"]["totalCount"].as_i64();
                assert!(matches!(total, Some(3_000 | 3_001)), "{response}");
                searches += 1;
            }
            searches
        })
    };
    let reindex = {
        let env = server.env();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_shop"))
                .arg("reindex")
                .envs(env)
                .env("SHOP_LOG", "warn")
                .output()
                .expect("run shop reindex")
        })
    };
    // A change while the new index is being built must be in it once it is live.
    let admin = server.admin_token().await;
    let upsert = "mutation { adminUpsertProduct(input: { id: \"kazoo-1\", title: \"Quartzline Kazoo\", description: \"\", priceCents: 499 }) { id } }";
    server.data(upsert, json!({}), Some(&admin)).await;
    let output = reindex.await.expect("reindex");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("indexed 300"), "{stdout}");

    let started = std::time::Instant::now();
    while server.metric("shop_search_index_swaps_total").await < 1.0 {
        assert!(started.elapsed() < Duration::from_secs(5), "the server never switched to the rebuilt index");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let current = std::fs::read_to_string(server.app().config.data_dir.join("search/CURRENT")).expect("CURRENT");
    assert!(current.starts_with("gen-") && !current.starts_with("gen-initial"), "{current}");
    let find = "{ searchProducts(query: \"quartzline kazoo\") { totalCount } }";
    let started = std::time::Instant::now();
    while server.data(find, json!({}), None).await["searchProducts"]["totalCount"] != 1 {
        assert!(started.elapsed() < Duration::from_secs(3), "the change made during the rebuild is missing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    searching.store(false, std::sync::atomic::Ordering::Relaxed);
    assert!(searcher.await.expect("searcher") > 0);
});

#[tokio::test]
async fn an_index_written_in_an_older_format_is_dropped_for_a_rebuild() {
    use shop::domain::search::Synonyms;
    use shop::ports::SearchIndex;
    let root = tempfile::tempdir().expect("dir");
    std::fs::write(root.path().join("FORMAT"), "2").expect("format");
    std::fs::write(root.path().join("CURRENT"), "gen-initial\n\n").expect("current");
    std::fs::create_dir_all(root.path().join("gen-initial")).expect("generation");
    std::fs::write(root.path().join("gen-initial").join("meta.json"), "{ compressed dictionaries }").expect("meta");
    let index = shop::search::TantivyIndex::open(root.path(), Synonyms::default()).expect("opens");
    assert_eq!(index.document_count().await.expect("count"), 0, "empty, so start-up rebuilds it from the store");
    assert_eq!(std::fs::read_to_string(root.path().join("FORMAT")).expect("format"), "3");
    assert_ne!(
        std::fs::read_to_string(root.path().join("gen-initial").join("meta.json")).ok().as_deref(),
        Some("{ compressed dictionaries }")
    );
    drop(index);
    std::fs::write(root.path().join("gen-initial").join("marker"), "kept").expect("marker");
    shop::search::TantivyIndex::open(root.path(), Synonyms::default()).expect("reopens");
    assert!(root.path().join("gen-initial").join("marker").exists(), "an index in this format is kept");
}
