//! Faults on the money path with real components: a PostgreSQL reached through a proxy the test
//! cuts, and a payment processor speaking Stripe's API.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use shop::config::{GatewayChoice, Secret};
use shop::domain::clock::SystemClock;
use shop::ports::Clock;

use crate::checkout::{OFFER, P1, add, initiate, order_input, place};
use crate::helpers::{
    ADMIN_EMAIL, Backend, CuttableProxy, PASSWORD, TestDatabase, TestServer, postgres_enabled, serve_stub,
};

/// A processor that cuts the store the first time it charges, right before it answers: the
/// charge has happened, the order is not recorded yet.
#[derive(Clone)]
struct Processor {
    proxy: Arc<OnceLock<Arc<CuttableProxy>>>,
    charges: Arc<AtomicUsize>,
    refunds: Arc<AtomicUsize>,
}

async fn payment_method(Path(id): Path<String>) -> Json<Value> {
    Json(json!({ "id": id, "object": "payment_method" }))
}

async fn payment_intent(State(processor): State<Processor>) -> Json<Value> {
    if processor.charges.fetch_add(1, Ordering::SeqCst) == 0
        && let Some(proxy) = processor.proxy.get()
    {
        proxy.cut();
    }
    // Stripe answers a repeated idempotency key with the first charge.
    Json(json!({ "id": "pi_fault_1", "object": "payment_intent", "status": "succeeded" }))
}

async fn refund(State(processor): State<Processor>) -> Json<Value> {
    processor.refunds.fetch_add(1, Ordering::SeqCst);
    Json(json!({ "id": "re_fault_1", "object": "refund", "status": "succeeded" }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_after_the_charge_completes_the_order_later_and_never_refunds_it() {
    if !postgres_enabled() {
        return;
    }
    let processor = Processor { proxy: Arc::default(), charges: Arc::default(), refunds: Arc::default() };
    let stripe = serve_stub(
        Router::new()
            .route("/v1/payment_methods/{id}", get(payment_method))
            .route("/v1/payment_intents", post(payment_intent))
            .route("/v1/refunds", post(refund))
            .with_state(processor.clone()),
    );
    let db = TestDatabase::new(Backend::Postgres).await;
    let proxy = Arc::new(CuttableProxy::start("127.0.0.1:5432").await);
    let mut config = db.config();
    let direct = config.database_url.clone().expect("a PostgreSQL store");
    let through_proxy = direct.expose().replacen("127.0.0.1:5432", &proxy.address.to_string(), 1);
    config.database_url = Some(Secret(through_proxy));
    config.payment_gateway = GatewayChoice::Stripe { api_base: stripe, secret_key: "sk_test_fault".to_owned() };
    config.payment_retry = shop::domain::payments::RetryPolicy { delays: Vec::new() };
    config.seed_products = 5;
    config.admin = Some((ADMIN_EMAIL.to_owned(), Secret(PASSWORD.to_owned())));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let server = TestServer::start_on(db, config, clock.clone()).await;

    let admin = server.admin_token().await;
    server.data(OFFER, json!({ "p": P1, "q": 3 }), Some(&admin)).await;
    let guest = server.guest_token().await;
    add(&server, &guest, P1, 1).await;
    let session = initiate(&server, &guest).await["data"]["initiateCheckout"]["id"].as_str().expect("id").to_owned();
    processor.proxy.set(proxy.clone()).unwrap_or_else(|_| panic!("proxy set once"));

    let answered = place(&server, &guest, order_input(&session, "pm_card_visa", "outage")).await;
    assert_eq!(crate::helpers::error_code(&answered), "PAYMENT_IN_PROGRESS", "{answered:#}");
    assert_eq!(processor.refunds.load(Ordering::SeqCst), 0, "a charge whose order is merely late is not refunded");

    proxy.restore();
    // Pooled connections the cut closed fail once each and are replaced, as after any outage;
    // the sweeper would simply try again next round. Wait until the pool is whole again.
    let mut healthy_in_a_row = 0;
    for _ in 0..100 {
        healthy_in_a_row = if server.app().db.ping().await.is_ok() { healthy_in_a_row + 1 } else { 0 };
        if healthy_in_a_row > 8 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(healthy_in_a_row > 8, "the store is reachable again");
    // As the recovery worker would once the charge's lease (35 s for Stripe) has run out.
    let recovered = server.app().checkout.recover(clock.now() + chrono::Duration::seconds(36)).await;
    assert_eq!(recovered.expect("recovery"), 1);
    let replay = place(&server, &guest, order_input(&session, "pm_card_visa", "outage")).await;
    assert_eq!(replay["data"]["placeOrder"]["status"], "PAID", "{replay:#}");
    assert_eq!(processor.refunds.load(Ordering::SeqCst), 0, "paid, and never refunded");
    assert_eq!(processor.charges.load(Ordering::SeqCst), 2, "asked twice with one key: one charge at Stripe");
}
