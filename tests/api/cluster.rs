//! Several instances behind a load balancer behave as one: two `shop` processes share
//! PostgreSQL and Redis; a subscription on one sees a change made on the other. And a Redis
//! outage degrades to the store without errors.

use std::time::Duration;

use serde_json::json;
use shop::config::Secret;

use crate::helpers::{
    Backend, ServerOptions, ShopProcess, Subscription, TestDatabase, TestServer, admin_token, gql, postgres_enabled,
    redis_url, unique_namespace,
};
use crate::on_both_backends;

/// An instance with a data dir of its own (each keeps its own search index beside it).
struct Instance {
    process: ShopProcess,
    _data_dir: tempfile::TempDir,
}

async fn launch(db: &TestDatabase, namespace: &str, seed: &str) -> Instance {
    let data_dir = tempfile::tempdir().expect("data dir");
    let mut env = db.env();
    for (name, value) in [
        ("SHOP_REDIS_URL", redis_url().as_str()),
        ("SHOP_REDIS_NAMESPACE", namespace),
        ("SHOP_JWT_SECRET", "a shared secret of at least thirty-two bytes"),
        ("SHOP_SEED_PRODUCTS", seed),
    ] {
        env.push((name.to_owned(), value.to_owned()));
    }
    let process = ShopProcess::launch(&env, data_dir.path()).await;
    Instance { process, _data_dir: data_dir }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgres_and_redis_behave_as_one() {
    if !postgres_enabled() {
        return;
    }
    let db = TestDatabase::new(Backend::Postgres).await;
    let namespace = unique_namespace();
    let a = launch(&db, &namespace, "20").await;
    let b = launch(&db, &namespace, "20").await;

    let admin = admin_token(&b.process.base).await;
    gql(
        &b.process.base,
        "mutation { adminSetStock(productId: \"prod-0000001\", quantity: 10) { id } }",
        json!({}),
        Some(&admin),
    )
    .await;
    let sign_up =
        "mutation { signUp(email: \"hal@example.com\", password: \"correct horse battery\", name: \"Hal\") { token } }";
    let user =
        gql(&a.process.base, sign_up, json!({}), None).await["signUp"]["token"].as_str().expect("token").to_owned();

    let ws_a = format!("{}/graphql/ws", a.process.base.replace("http://", "ws://"));
    let mut on_a = Subscription::start(&ws_a, &user, "subscription { cartUpdated { version totalQuantity } }").await;
    assert_eq!(on_a.next().await["cartUpdated"]["version"], 0);

    let add = "mutation { addCartItem(productId: \"prod-0000001\", quantity: 2) { version } }";
    for expected in 1..=3 {
        let written = gql(&b.process.base, add, json!({}), Some(&user)).await;
        assert_eq!(written["addCartItem"]["version"], expected);
        let pushed = on_a.next().await["cartUpdated"].clone();
        assert_eq!(
            (pushed["version"].as_i64(), pushed["totalQuantity"].as_i64()),
            (Some(expected), Some(2 * expected))
        );
        let read_on_a = gql(&a.process.base, "{ cart { version } }", json!({}), Some(&user)).await;
        assert_eq!(read_on_a["cart"]["version"], expected, "the shared cache never serves an older cart");
    }

    // A stock change made through B reaches A's catalog read cache within a second.
    let stock = "{ product(id: \"prod-0000001\") { availableQuantity } }";
    assert_eq!(gql(&a.process.base, stock, json!({}), None).await["product"]["availableQuantity"], 10);
    gql(
        &b.process.base,
        "mutation { adminSetStock(productId: \"prod-0000001\", quantity: 25) { id } }",
        json!({}),
        Some(&admin),
    )
    .await;
    let started = std::time::Instant::now();
    while gql(&a.process.base, stock, json!({}), None).await["product"]["availableQuantity"] != 25 {
        assert!(started.elapsed() < Duration::from_secs(1), "instance A kept serving the old stock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A view recorded through B reaches the picks A holds for the viewer within a second:
    // the product viewed leaves them.
    let picks = "{ recommendedProducts(first: 10) { id } }";
    // The picks appear once the first start's training reaches A.
    let started = std::time::Instant::now();
    let viewed = loop {
        let held = gql(&a.process.base, picks, json!({}), Some(&user)).await;
        if let Some(first) = held["recommendedProducts"][0]["id"].as_str() {
            break first.to_owned();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no picks: {held}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let view = "mutation($p: ID!) { recordProductView(productId: $p) }";
    gql(&b.process.base, view, json!({ "p": viewed }), Some(&user)).await;
    let started = std::time::Instant::now();
    loop {
        let now_on_a = gql(&a.process.base, picks, json!({}), Some(&user)).await;
        if !now_on_a["recommendedProducts"].as_array().expect("picks").iter().any(|pick| pick["id"] == viewed.as_str())
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(1), "instance A kept the picks from before the view");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A catalog change made through B reaches A's own search index.
    let upsert = "mutation { adminUpsertProduct(input: { id: \"kazoo-1\", title: \"Quartzline Kazoo\", description: \"\", priceCents: 499 }) { id } }";
    gql(&b.process.base, upsert, json!({}), Some(&admin)).await;
    let started = std::time::Instant::now();
    loop {
        let found =
            gql(&a.process.base, "{ searchProducts(query: \"quartzline kazoo\") { totalCount } }", json!({}), None)
                .await;
        if found["searchProducts"]["totalCount"] == 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(2), "instance A's index did not follow: {found}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn unreachable_redis(config: &mut shop::config::Config) {
    config.redis_url = Some(Secret("redis://127.0.0.1:1".to_owned()));
}

on_both_backends!(a_redis_outage_degrades_to_the_store, |backend: Backend| async move {
    let server = TestServer::start_with(
        backend,
        ServerOptions { seed_products: 5, tweak: unreachable_redis, ..Default::default() },
    )
    .await;
    let admin = server.admin_token().await;
    server
        .data("mutation { adminSetStock(productId: \"prod-0000001\", quantity: 5) { id } }", json!({}), Some(&admin))
        .await;
    let guest = server.guest_token().await;
    let added = server
        .data("mutation { addCartItem(productId: \"prod-0000001\", quantity: 2) { version } }", json!({}), Some(&guest))
        .await;
    assert_eq!(added["addCartItem"]["version"], 1);
    let read = server.data("{ cart { version totalQuantity } }", json!({}), Some(&guest)).await;
    assert_eq!(read["cart"], json!({ "version": 1, "totalQuantity": 2 }));
    let ready = server.client.get(server.url("/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status(), 200, "a degraded cache and bus do not make the instance unready");
    let states: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(states, json!({ "store": "up", "catalog": "ready", "search": "up", "redis": "down" }));
});

/// Two instances on one PostgreSQL and Redis share one flash-sale gate and one waiting room:
/// shoppers joining through either, let through by either's worker, get exactly the sale's
/// units, and a watcher on one instance hears of an admission the other made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_flash_sale_gate_and_queue() {
    if !postgres_enabled() {
        return;
    }
    let db = TestDatabase::new(Backend::Postgres).await;
    let namespace = unique_namespace();
    let a = launch(&db, &namespace, "20").await;
    let b = launch(&db, &namespace, "20").await;
    let bases = [a.process.base.clone(), b.process.base.clone()];
    let admin = admin_token(&bases[0]).await;
    let stock = "mutation { adminSetStock(productId: \"prod-0000003\", quantity: 60) { id } }";
    gql(&bases[0], stock, json!({}), Some(&admin)).await;
    let now = chrono::Utc::now();
    let create = "mutation($input: FlashSaleInput!) { adminCreateFlashSale(input: $input) { id } }";
    // 100 shoppers a second: the queue is let through over a few seconds by both workers.
    let input = json!({ "productId": "prod-0000003", "salePriceCents": 900, "quantity": 40,
        "startsAt": (now - chrono::Duration::seconds(1)).to_rfc3339(), "endsAt": (now + chrono::Duration::hours(1)).to_rfc3339(),
        "admissionPerMinute": 6000 });
    let sale = gql(&bases[1], create, json!({ "input": input }), Some(&admin)).await["adminCreateFlashSale"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mut guests = Vec::new();
    for i in 0..300 {
        let started = gql(&bases[i % 2], "mutation { startGuestSession { token } }", json!({}), None).await;
        guests.push(started["startGuestSession"]["token"].as_str().expect("token").to_owned());
    }
    let join = "mutation($s: ID!) { joinFlashSale(saleId: $s) { status } }";
    let joins: Vec<_> = guests
        .iter()
        .enumerate()
        .map(|(i, guest)| {
            let (base, guest, sale) = (bases[i % 2].clone(), guest.clone(), sale.clone());
            tokio::spawn(async move { gql(&base, join, json!({ "s": sale }), Some(&guest)).await })
        })
        .collect();
    for joined in joins {
        joined.await.expect("join");
    }
    // The last to join watches on the other instance from the one it joined through.
    let last = guests.last().expect("guests");
    let query = format!("subscription {{ flashSaleEntryUpdated(saleId: \"{sale}\") {{ status }} }}");
    let ws_url = format!("{}/graphql/ws", bases[0].replace("http://", "ws://"));
    let mut watcher = Subscription::start(&ws_url, last, &query).await;
    let mut status = watcher.next().await["flashSaleEntryUpdated"]["status"].clone();
    while status == "WAITING" {
        status = watcher.next().await["flashSaleEntryUpdated"]["status"].clone();
    }
    assert!(status == "RESERVED" || status == "SOLD_OUT", "{status}");

    let report = "query($s: ID!) { adminFlashSaleReport(saleId: $s) { joined reserved soldOut discrepancy sale { waiting remaining } } }";
    let mut settled = json!(null);
    for _ in 0..200 {
        settled = gql(&bases[0], report, json!({ "s": sale }), Some(&admin)).await["adminFlashSaleReport"].clone();
        if settled["sale"]["waiting"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        settled,
        json!({ "joined": 300, "reserved": 40, "soldOut": 260, "discrepancy": 0, "sale": { "waiting": 0, "remaining": 0 } }),
        "exactly the sale's units, whichever instance let them through"
    );
}
