//! What each step of a purchase costs the store, read from `shop_store_statements_total`, which
//! counts every statement under the GraphQL root field (or background worker) that sent it.
//! PostgreSQL's budgets are the write path's targets; SQLite runs the same scripts with a few
//! more statements (writes one by one, and explicit transactions) inside one blocking call per
//! transaction, and its counts are pinned so that they cannot grow unnoticed.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{Backend, ServerOptions, TestServer};
use crate::on_both_backends;

const PRODUCT: &str = "prod-0000001";

/// Statements one purchase's steps may send (the payment gateway's call is not a statement).
struct Budget {
    add: f64,
    update: f64,
    initiate: f64,
    place: f64,
    /// Background work (outbox, notifications, search) per purchase, over concurrent purchases.
    background: f64,
}

fn budget(backend: Backend) -> Budget {
    match backend {
        Backend::Postgres => Budget { add: 4.0, update: 4.0, initiate: 6.0, place: 12.0, background: 6.0 },
        Backend::Sqlite => Budget { add: 6.0, update: 5.0, initiate: 8.0, place: 22.0, background: 6.0 },
    }
}

/// Statements counted so far under `scope` (0 before its first).
async fn statements(server: &TestServer, scope: &str) -> f64 {
    server.statements(|counted| counted == scope).await
}

/// Every background worker's statements so far, less the workers' idle looks (the outbox's,
/// the flash-sale worker's and the recommender's polls: work no purchase causes).
async fn background(server: &TestServer) -> f64 {
    server.statements(|scope| scope.starts_with("worker:") && !scope.ends_with("-idle")).await
}

/// The background count once the workers have gone quiet.
async fn settled_background(server: &TestServer) -> f64 {
    let mut last = background(server).await;
    loop {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let now = background(server).await;
        if now == last {
            return now;
        }
        last = now;
    }
}

/// Runs `step` and returns what it cost under `scope`.
async fn cost(server: &TestServer, scope: &str, step: impl Future<Output = ()>) -> f64 {
    let before = statements(server, scope).await;
    step.await;
    statements(server, scope).await - before
}

async fn purchase(server: &TestServer, key: String) -> [f64; 4] {
    let token = server.guest_token().await;
    // A shopper sees a product before adding it: its offer is in the catalog read cache then.
    server
        .data("query($p: ID!) { product(id: $p) { price { centAmount } inStock } }", json!({ "p": PRODUCT }), None)
        .await;
    let add = "mutation($p: ID!) { addCartItem(productId: $p, quantity: 1) { version } }";
    let update = "mutation($p: ID!) { updateCartItem(productId: $p, quantity: 2) { version } }";
    let add = cost(server, "addCartItem", async {
        server.data(add, json!({ "p": PRODUCT }), Some(&token)).await;
    })
    .await;
    let update = cost(server, "updateCartItem", async {
        server.data(update, json!({ "p": PRODUCT }), Some(&token)).await;
    })
    .await;
    let mut session = String::new();
    let initiate = cost(server, "initiateCheckout", async {
        let data = server.data("mutation { initiateCheckout { id } }", json!({}), Some(&token)).await;
        session = data["initiateCheckout"]["id"].as_str().expect("session").to_owned();
    })
    .await;
    let input = json!({ "checkoutSessionId": session, "paymentMethodId": "pm_card_visa", "idempotencyKey": key,
        "shippingAddress": { "name": "Ann", "line1": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US" } });
    let place = cost(server, "placeOrder", async {
        let data = server
            .data(
                "mutation($i: PlaceOrderInput!) { placeOrder(input: $i) { status } }",
                json!({ "i": input }),
                Some(&token),
            )
            .await;
        assert_eq!(data["placeOrder"]["status"], "PAID");
    })
    .await;
    [add, update, initiate, place]
}

on_both_backends!(a_purchase_stays_within_its_statement_budget, |backend: Backend| async move {
    let server = TestServer::start_with(backend, ServerOptions { seed_products: 5, ..Default::default() }).await;
    let admin = server.admin_token().await;
    // $15, so that a guest's order stays under the fraud rules' high-value mark.
    let offer = "mutation($p: ID!) { adminUpsertProduct(input: { id: $p, title: \"Kazoo\", description: \"\", priceCents: 1500 }) { id } adminSetStock(productId: $p, quantity: 1000) { id } }";
    server.data(offer, json!({ "p": PRODUCT }), Some(&admin)).await;
    let budget = budget(backend);

    let quiet = settled_background(&server).await;
    let [add, update, initiate, place] = purchase(&server, "budget-1".to_owned()).await;
    let alone = settled_background(&server).await - quiet;
    eprintln!("{backend:?}: add {add}, update {update}, initiate {initiate}, place {place}, background alone {alone}");
    assert!(add <= budget.add, "addCartItem sent {add} statements");
    assert!(update <= budget.update, "updateCartItem sent {update} statements");
    assert!(initiate <= budget.initiate, "initiateCheckout sent {initiate} statements");
    assert!(place <= budget.place, "placeOrder sent {place} statements");

    // Background work is shared by whatever is pending when a worker wakes: per purchase it is
    // measured over purchases made together, as under load.
    const TOGETHER: usize = 20;
    let before = settled_background(&server).await;
    let purchases: Vec<_> = (0..TOGETHER).map(|n| purchase(&server, format!("together-{n}"))).collect();
    futures::future::join_all(purchases).await;
    let per_purchase = (settled_background(&server).await - before) / TOGETHER as f64;
    eprintln!("{backend:?}: background per purchase over {TOGETHER} together: {per_purchase}");
    assert!(per_purchase <= budget.background, "background work sent {per_purchase} statements per purchase");
});
