//! Catalog reads and admin writes over GraphQL, and the batching that keeps lists from N+1.

use serde_json::{Value, json};

use crate::helpers::{Backend, ServerOptions, TestServer, error_code};
use crate::on_both_backends;

const PRODUCT: &str = "query($id: ID!) { product(id: $id) { id title brand description price { centAmount currencyCode } rating reviewCount inStock availableQuantity attributes { name value } category { id name path parent { path } } createdAt } }";

async fn seeded(backend: Backend, products: u64) -> TestServer {
    TestServer::start_with(backend, ServerOptions { seed_products: products, ..Default::default() }).await
}

on_both_backends!(a_seeded_product_has_every_contract_field, |backend: Backend| async move {
    let server = seeded(backend, 120).await;
    let product = server.data(PRODUCT, json!({ "id": "prod-0000001" }), None).await["product"].clone();
    assert_eq!(product["id"], "prod-0000001");
    assert!(product["title"].as_str().is_some_and(|t| t.len() > 10), "{product}");
    assert!(product["description"].as_str().is_some_and(|d| d.contains('.')));
    assert!(product["price"]["centAmount"].as_i64().is_some_and(|c| c > 0));
    assert_eq!(product["price"]["currencyCode"], "USD");
    assert!(!product["attributes"].as_array().expect("attributes").is_empty());
    let path = product["category"]["path"].as_str().expect("path");
    assert_eq!(path.split('/').count(), 3, "leaf categories are three levels deep");
    assert_eq!(product["category"]["parent"]["path"].as_str(), path.rsplit_once('/').map(|(parent, _)| parent));
    let available = product["availableQuantity"].as_i64().expect("quantity");
    assert_eq!(product["inStock"].as_bool(), Some(available > 0));
    assert!(product["createdAt"].as_str().is_some_and(|t| t.starts_with("202")));
});

on_both_backends!(unknown_ids_are_null_and_malformed_ids_are_bad_input, |backend: Backend| async move {
    let server = seeded(backend, 10).await;
    assert_eq!(server.data(PRODUCT, json!({ "id": "prod-9999999" }), None).await["product"], Value::Null);
    for malformed in ["", "has space", "x".repeat(65).as_str(), "semi;colon"] {
        let response = server.gql(PRODUCT, json!({ "id": malformed }), None).await;
        assert_eq!(error_code(&response), "BAD_USER_INPUT", "{malformed:?}: {response}");
    }
});

on_both_backends!(fifty_products_cost_a_constant_number_of_store_queries, |backend: Backend| async move {
    let server = seeded(backend, 200).await;
    let query = |count: usize| {
        let fields: String = (1..=count)
            .map(|i| format!("p{i}: product(id: \"prod-{i:07}\") {{ id inStock availableQuantity category {{ name parent {{ name }} }} }}\n"))
            .collect();
        format!("{{ {fields} }}")
    };
    let mut costs = Vec::new();
    for count in [5, 50] {
        // Background work (outbox, notifications) also queries now and then; it only adds, so
        // the least of three runs is the request's own cost.
        let mut least = f64::MAX;
        for _ in 0..3 {
            // The store's cost, not the read cache's.
            server.app().catalog.read_cache().drop_all();
            let before = server.statements(|_| true).await;
            let data = server.data(&query(count), json!({}), None).await;
            assert!(data["p1"]["category"]["parent"]["name"].is_string());
            assert_eq!(data.as_object().expect("object").len(), count);
            least = least.min(server.statements(|_| true).await - before);
        }
        costs.push(least);
    }
    // One query each for the products, their stock, their categories and those categories'
    // parents, however many products there are and however long resolving them takes.
    assert_eq!(costs[1], costs[0], "50 products took {} store queries, 5 took {}", costs[1], costs[0]);
    assert!(costs[0] <= 4.0, "5 products took {} store queries", costs[0]);
});

on_both_backends!(reads_come_from_the_read_cache_and_see_every_change_at_once, |backend: Backend| async move {
    let server = seeded(backend, 20).await;
    let admin = server.admin_token().await;
    let query = "{ product(id: \"prod-0000002\") { price { centAmount } availableQuantity category { path parent { path children { path } } } } }";
    let requests = |scope: &str| !scope.starts_with("worker:");
    let first = server.data(query, json!({}), None).await;
    let before = server.statements(requests).await;
    assert_eq!(server.data(query, json!({}), None).await, first);
    assert_eq!(server.statements(requests).await - before, 0.0, "a repeated read went to the store");

    // The instance that makes a change drops what it cached before answering anyone.
    let set_stock = "mutation { adminSetStock(productId: \"prod-0000002\", quantity: 4321) { availableQuantity } }";
    assert_eq!(server.data(set_stock, json!({}), Some(&admin)).await["adminSetStock"]["availableQuantity"], 4321);
    assert_eq!(server.data(query, json!({}), None).await["product"]["availableQuantity"], 4321);
    let reprice = "mutation { adminUpsertProduct(input: { id: \"prod-0000002\", title: \"Repriced\", description: \"\", priceCents: 777, categoryPath: \"Garden/Tools/Rakes\" }) { id } }";
    server.data(reprice, json!({}), Some(&admin)).await;
    let product = server.data(query, json!({}), None).await["product"].clone();
    assert_eq!(product["price"]["centAmount"], 777);
    assert_eq!(product["category"]["path"], "Garden/Tools/Rakes");
    let siblings = &product["category"]["parent"]["children"];
    assert_eq!(
        siblings,
        &json!([{ "path": "Garden/Tools/Rakes" }]),
        "a new category shows among its parent's children"
    );

    // A cart line is priced as browsing sees it, so it follows the change too.
    let guest = server.guest_token().await;
    let add = "mutation { addCartItem(productId: \"prod-0000002\", quantity: 1) { subtotal { centAmount } } }";
    assert_eq!(server.data(add, json!({}), Some(&guest)).await["addCartItem"]["subtotal"]["centAmount"], 777);
});

on_both_backends!(the_category_tree, |backend: Backend| async move {
    let server = seeded(backend, 300).await;
    let data = server
        .data(
            "{ categories { name path parent { id } children { path children { path parent { name } } } } }",
            json!({}),
            None,
        )
        .await;
    let roots = data["categories"].as_array().expect("roots");
    assert!(roots.len() >= 12, "{} roots", roots.len());
    let names: Vec<&str> = roots.iter().filter_map(|r| r["name"].as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "roots are in name order");
    for root in roots {
        assert!(root["parent"].is_null());
        for child in root["children"].as_array().expect("children") {
            assert!(
                child["path"]
                    .as_str()
                    .expect("path")
                    .starts_with(&format!("{}/", root["path"].as_str().expect("root path")))
            );
            for leaf in child["children"].as_array().expect("leaves") {
                assert_eq!(leaf["path"].as_str().map(|p| p.split('/').count()), Some(3));
            }
        }
    }
});

on_both_backends!(admins_create_and_update_products, |backend: Backend| async move {
    let server = seeded(backend, 5).await;
    let admin = server.admin_token().await;
    let upsert = "mutation($input: ProductInput!) { adminUpsertProduct(input: $input) { id title brand price { centAmount currencyCode } rating attributes { name value } availableQuantity category { id path parent { path } } } }";
    let input = json!({
        "id": "sku-123", "title": "Oakline Green Velvet Loveseat", "description": "Small and soft.",
        "brand": "Oakline", "categoryPath": " Home / Furniture / Loveseats ", "priceCents": 54900,
        "currencyCode": "EUR", "attributes": [{ "name": "color", "value": "Green" }]
    });
    let created = server.data(upsert, json!({ "input": input }), Some(&admin)).await["adminUpsertProduct"].clone();
    assert_eq!(created["id"], "sku-123");
    assert_eq!(created["category"]["path"], "Home/Furniture/Loveseats", "missing levels are created, names trimmed");
    assert_eq!(created["category"]["parent"]["path"], "Home/Furniture");
    assert_eq!(created["price"], json!({ "centAmount": 54900, "currencyCode": "EUR" }));
    assert_eq!(created["availableQuantity"], 0);

    let stocked = server
        .data(
            "mutation { adminSetStock(productId: \"sku-123\", quantity: 7) { inStock availableQuantity } }",
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(stocked["adminSetStock"], json!({ "inStock": true, "availableQuantity": 7 }));

    // An update replaces what the admin gave and keeps stock and the learnt fields.
    let mut update = input.clone();
    update["title"] = json!("Oakline Green Velvet Loveseat, 2-Seat");
    update["categoryPath"] = json!("Home/Furniture/Sofas");
    let updated = server.data(upsert, json!({ "input": update }), Some(&admin)).await["adminUpsertProduct"].clone();
    assert_eq!(updated["title"], "Oakline Green Velvet Loveseat, 2-Seat");
    assert_eq!(updated["category"]["path"], "Home/Furniture/Sofas");
    assert_eq!(updated["availableQuantity"], 7);

    let seeded_one = server.data(PRODUCT, json!({ "id": "prod-0000001" }), None).await["product"].clone();
    let mut rewrite = json!({ "id": "prod-0000001", "title": "Renamed", "description": "d", "priceCents": 100 });
    let renamed =
        server.data(upsert, json!({ "input": rewrite.take() }), Some(&admin)).await["adminUpsertProduct"].clone();
    assert_eq!(renamed["rating"], seeded_one["rating"], "rating survives an admin update");
    assert_eq!(renamed["availableQuantity"], seeded_one["availableQuantity"]);

    let generated = server
        .data(upsert, json!({ "input": { "title": "No id given", "description": "", "priceCents": 1 } }), Some(&admin))
        .await;
    assert!(generated["adminUpsertProduct"]["id"].as_str().is_some_and(|id| id.starts_with("p-")));
});

on_both_backends!(bad_product_input_is_rejected_and_writes_nothing, |backend: Backend| async move {
    let server = seeded(backend, 3).await;
    let admin = server.admin_token().await;
    let upsert = "mutation($input: ProductInput!) { adminUpsertProduct(input: $input) { id } }";
    let base = json!({ "id": "sku-bad", "title": "Fine title", "description": "d", "priceCents": 100 });
    for (field, value, expected_field) in [
        ("title", json!(""), "title"),
        ("priceCents", json!(-1), "priceCents"),
        ("currencyCode", json!("dollars"), "currencyCode"),
        ("categoryPath", json!(" / / "), "categoryPath"),
        ("id", json!("bad id!"), "id"),
    ] {
        let mut input = base.clone();
        input[field] = value;
        let response = server.gql(upsert, json!({ "input": input }), Some(&admin)).await;
        assert_eq!(error_code(&response), "BAD_USER_INPUT", "{field}: {response}");
        assert_eq!(response["errors"][0]["extensions"]["field"], expected_field);
    }
    assert_eq!(server.data(PRODUCT, json!({ "id": "sku-bad" }), None).await["product"], Value::Null);

    let before =
        server.data(PRODUCT, json!({ "id": "prod-0000001" }), None).await["product"]["availableQuantity"].clone();
    for quantity in [-1, 1_000_000_001] {
        let response = server
            .gql(
                "mutation($q: Int!) { adminSetStock(productId: \"prod-0000001\", quantity: $q) { id } }",
                json!({ "q": quantity }),
                Some(&admin),
            )
            .await;
        assert_eq!(error_code(&response), "BAD_USER_INPUT");
    }
    let after =
        server.data(PRODUCT, json!({ "id": "prod-0000001" }), None).await["product"]["availableQuantity"].clone();
    assert_eq!(before, after);
});

on_both_backends!(products_created_at_once_in_a_new_category_all_succeed, |backend: Backend| async move {
    let server = std::sync::Arc::new(TestServer::start(backend).await);
    let admin = server.admin_token().await;
    let upsert = "mutation($i: ProductInput!) { adminUpsertProduct(input: $i) { id category { path } } }";
    let writes: Vec<_> = (0..12)
        .map(|n| {
            let (server, admin) = (server.clone(), admin.clone());
            let input = json!({ "id": format!("rake-{n}"), "title": "Garden Rake", "description": "", "priceCents": 1999, "categoryPath": "Garden/Tools/Rakes" });
            tokio::spawn(async move { server.gql(upsert, json!({ "i": input }), Some(&admin)).await })
        })
        .collect();
    for write in writes {
        let response = write.await.expect("task");
        assert_eq!(response["data"]["adminUpsertProduct"]["category"]["path"], "Garden/Tools/Rakes", "{response}");
    }
    let roots = server.data("{ categories { path } }", json!({}), None).await;
    let gardens = roots["categories"].as_array().expect("roots").iter().filter(|c| c["path"] == "Garden").count();
    assert_eq!(gardens, 1, "{roots}");
});
