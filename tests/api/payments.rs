//! The Stripe adapter against a local stub that answers as Stripe's API reference documents
//! (PaymentIntents confirmed at creation, card_error declines, Idempotency-Key replays, refunds),
//! directly and through a whole checkout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{Value, json};
use shop::config::{Config, GatewayChoice};
use shop::domain::clock::SystemClock;
use shop::domain::primitives::Money;
use shop::payments::StripeGateway;
use shop::ports::{ChargeRequest, GatewayError, PaymentGateway};

use crate::checkout::{OFFER, P1, add, initiate, order_input, place};
use crate::helpers::{Backend, ServerOptions, TestDatabase, TestServer, serve_stub};
use crate::on_both_backends;

const SECRET: &str = "sk_test_stub";

#[derive(Default)]
struct Stub {
    /// Responses by Idempotency-Key: a replay gets the first answer, as on Stripe.
    replies: HashMap<String, (u16, Value)>,
    intents_created: usize,
    requests: usize,
    /// Reads of the processing intent: the bank settles it after the first.
    processing_reads: usize,
}

type Shared = Arc<Mutex<Stub>>;

fn card_error(code: &str, decline_code: Option<&str>) -> (u16, Value) {
    (
        402,
        json!({ "error": { "type": "card_error", "code": code, "decline_code": decline_code, "message": "Your card was declined." } }),
    )
}

async fn payment_intents(
    State(stub): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> impl IntoResponse {
    let mut stub = stub.lock().expect("stub");
    stub.requests += 1;
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {SECRET}")) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": { "type": "invalid_request_error", "message": "Invalid API Key provided" } })),
        );
    }
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (status, body) = match stub.replies.get(&key) {
        Some(reply) => reply.clone(),
        None => {
            let reply = match form.get("payment_method").map(String::as_str) {
                Some("pm_card_visa" | "pm_card_mastercard")
                    if form.get("confirm").map(String::as_str) == Some("true") =>
                {
                    stub.intents_created += 1;
                    let id = format!("pi_stub_{}", stub.intents_created);
                    (
                        200,
                        json!({ "id": id, "object": "payment_intent", "status": "succeeded", "amount": form["amount"].parse::<i64>().unwrap_or_default(), "currency": form["currency"] }),
                    )
                }
                Some("pm_card_chargeDeclined") => card_error("card_declined", Some("generic_decline")),
                // Stub-only methods for the answers Stripe gives under way: a payment the bank has
                // not settled, and a request racing another with the same key.
                Some("pm_stub_processing") => {
                    (200, json!({ "id": "pi_stub_processing", "object": "payment_intent", "status": "processing" }))
                }
                Some("pm_stub_concurrent") => (
                    409,
                    json!({ "error": { "type": "idempotency_error", "message": "There is currently another in-progress request using this Idempotent Key" } }),
                ),
                Some("pm_card_chargeDeclinedInsufficientFunds") => {
                    card_error("card_declined", Some("insufficient_funds"))
                }
                Some("pm_card_chargeDeclinedProcessingError") => card_error("processing_error", None),
                other => (
                    400,
                    json!({ "error": { "type": "invalid_request_error", "code": "resource_missing", "param": "payment_method", "message": format!("No such PaymentMethod: '{}'", other.unwrap_or_default()) } }),
                ),
            };
            stub.replies.insert(key, reply.clone());
            reply
        }
    };
    (StatusCode::from_u16(status).expect("status"), Json(body))
}

/// Reading an intent: the one the bank is settling succeeds from its second reading on.
async fn payment_intent(State(stub): State<Shared>, Path(id): Path<String>) -> Json<Value> {
    let mut stub = stub.lock().expect("stub");
    let status = match id.as_str() {
        "pi_stub_processing" => {
            stub.processing_reads += 1;
            if stub.processing_reads == 1 { "processing" } else { "succeeded" }
        }
        _ => "succeeded",
    };
    Json(json!({ "id": id, "object": "payment_intent", "status": status }))
}

async fn payment_methods(Path(id): Path<String>) -> impl IntoResponse {
    match id.as_str() {
        "pm_card_visa"
        | "pm_card_mastercard"
        | "pm_card_chargeDeclined"
        | "pm_card_chargeDeclinedInsufficientFunds"
        | "pm_card_chargeDeclinedProcessingError" => {
            (StatusCode::OK, Json(json!({ "id": id, "object": "payment_method", "type": "card" })))
        }
        _ => (
            StatusCode::NOT_FOUND,
            Json(
                json!({ "error": { "type": "invalid_request_error", "code": "resource_missing", "param": "id", "message": format!("No such PaymentMethod: '{id}'") } }),
            ),
        ),
    }
}

async fn refunds(Form(form): Form<HashMap<String, String>>) -> Json<Value> {
    Json(
        json!({ "id": "re_stub_1", "object": "refund", "status": "succeeded", "payment_intent": form.get("payment_intent") }),
    )
}

/// One stub per test process, started on first use.
fn stub() -> &'static (String, Shared) {
    static STUB: OnceLock<(String, Shared)> = OnceLock::new();
    STUB.get_or_init(|| {
        let shared: Shared = Arc::default();
        let app = Router::new()
            .route("/v1/payment_intents", post(payment_intents))
            .route("/v1/payment_intents/{id}", get(payment_intent))
            .route("/v1/refunds", post(refunds))
            .route("/v1/payment_methods/{id}", get(payment_methods))
            .with_state(shared.clone());
        (serve_stub(app), shared)
    })
}

fn charge(method: &str, key: &str) -> ChargeRequest {
    ChargeRequest {
        amount: Money { cents: 2_500, currency: "USD".to_owned() },
        payment_method: method.to_owned(),
        idempotency_key: key.to_owned(),
        description: "test".to_owned(),
    }
}

#[tokio::test]
async fn the_stripe_adapter_speaks_stripe() {
    let (base, shared) = stub();
    let stripe = StripeGateway::new(base, SECRET).expect("client");
    let key = format!("direct-{}", uuid::Uuid::new_v4());
    let first = stripe.charge(&charge("pm_card_visa", &key)).await.expect("charged");
    let created = shared.lock().expect("stub").intents_created;
    assert_eq!(stripe.charge(&charge("pm_card_visa", &key)).await.expect("replayed"), first);
    assert_eq!(shared.lock().expect("stub").intents_created, created, "a replayed key creates nothing");
    let declined = stripe.charge(&charge("pm_card_chargeDeclinedInsufficientFunds", "d1")).await;
    assert_eq!(declined, Err(GatewayError::Declined("insufficient_funds".to_owned())));
    assert!(matches!(
        stripe.charge(&charge("pm_card_chargeDeclinedProcessingError", "d2")).await,
        Err(GatewayError::Transient(_))
    ));
    assert!(matches!(stripe.charge(&charge("pm_nope", "d3")).await, Err(GatewayError::UnknownPaymentMethod(_))));
    // Neither is a decline: the outcome is not known yet, so the saga keeps its key and waits.
    assert!(matches!(stripe.charge(&charge("pm_stub_processing", "d6")).await, Err(GatewayError::Unavailable(_))));
    let settled = stripe.charge(&charge("pm_stub_processing", "d6")).await;
    assert_eq!(
        settled.expect("the same key, once the bank settled: charged").reference,
        "pi_stub_processing",
        "the replayed answer still says processing; the intent read now says succeeded"
    );
    assert!(matches!(stripe.charge(&charge("pm_stub_concurrent", "d7")).await, Err(GatewayError::Unavailable(_))));
    assert_eq!(stripe.check_payment_method("pm_card_chargeDeclined").await, Ok(()));
    assert!(matches!(stripe.check_payment_method("pm_nope").await, Err(GatewayError::UnknownPaymentMethod(_))));
    stripe.refund(&first.reference, "refund-1").await.expect("refunded");
    let wrong_key = StripeGateway::new(base, "sk_test_wrong").expect("client");
    assert!(matches!(wrong_key.charge(&charge("pm_card_visa", "d4")).await, Err(GatewayError::Failed(_))));
    let nowhere = StripeGateway::new("http://127.0.0.1:1", SECRET).expect("client");
    assert!(matches!(nowhere.charge(&charge("pm_card_visa", "d5")).await, Err(GatewayError::Unavailable(_))));
}

fn through_the_stub(config: &mut Config) {
    config.payment_gateway = GatewayChoice::Stripe { api_base: stub().0.clone(), secret_key: SECRET.to_owned() };
}

on_both_backends!(a_checkout_pays_through_stripe, |backend: Backend| async move {
    let server = TestServer::start_with(
        backend,
        ServerOptions { seed_products: 5, tweak: through_the_stub, ..Default::default() },
    )
    .await;
    let admin = server.admin_token().await;
    let offer = "mutation { adminUpsertProduct(input: { id: \"prod-0000001\", title: \"Kazoo\", description: \"\", priceCents: 1500 }) { id } adminSetStock(productId: \"prod-0000001\", quantity: 5) { id } }";
    server.data(offer, json!({}), Some(&admin)).await;
    let guest = server.guest_token().await;
    server
        .data("mutation { addCartItem(productId: \"prod-0000001\", quantity: 2) { version } }", json!({}), Some(&guest))
        .await;
    let session =
        server.data("mutation { initiateCheckout { id } }", json!({}), Some(&guest)).await["initiateCheckout"]["id"]
            .clone();
    let place = "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id status payment { status gatewayReference } } }";
    let input = json!({ "checkoutSessionId": session, "paymentMethodId": "pm_card_visa", "idempotencyKey": "stripe-1",
        "shippingAddress": { "name": "Ada", "line1": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US" } });
    let order = server.data(place, json!({ "input": input }), Some(&guest)).await["placeOrder"].clone();
    assert_eq!(order["status"], "PAID");
    assert!(order["payment"]["gatewayReference"].as_str().is_some_and(|r| r.starts_with("pi_stub_")), "{order}");
    let update =
        "mutation($id: ID!) { adminUpdateOrderStatus(orderId: $id, status: CANCELLED) { status payment { status } } }";
    let cancelled = server.data(update, json!({ "id": order["id"] }), Some(&admin)).await;
    assert_eq!(
        cancelled["adminUpdateOrderStatus"],
        json!({ "status": "CANCELLED", "payment": { "status": "REFUNDED" } })
    );
});

/// Every charge at this processor meets another request with the same key (Stripe's 409): the
/// outcome stays unknown, the saga CHARGING.
async fn always_in_flight(State(attempts): State<Arc<AtomicUsize>>) -> (StatusCode, Json<Value>) {
    attempts.fetch_add(1, Ordering::SeqCst);
    (
        StatusCode::CONFLICT,
        Json(json!({ "error": { "type": "idempotency_error", "message": "another in-progress request" } })),
    )
}

// Recovery takes a CHARGING saga only once its lease has run out, and only one of two
// instances recovering at the same moment asks the processor again.
on_both_backends!(recovery_waits_for_the_lease_and_takes_a_saga_once, |backend: Backend| async move {
    let attempts = Arc::new(AtomicUsize::new(0));
    let processor = serve_stub(
        Router::new()
            .route("/v1/payment_intents", post(always_in_flight))
            .route("/v1/payment_methods/{id}", get(payment_methods))
            .with_state(attempts.clone()),
    );
    let db = TestDatabase::new(backend).await;
    let mut config = db.seeded_config();
    config.payment_gateway = GatewayChoice::Stripe { api_base: processor, secret_key: SECRET.to_owned() };
    config.payment_retry = shop::domain::payments::RetryPolicy { delays: Vec::new() };
    let server = TestServer::start_on(db, config, Arc::new(SystemClock)).await;
    let admin = server.admin_token().await;
    server.data(OFFER, json!({ "p": P1, "q": 3 }), Some(&admin)).await;
    let guest = server.guest_token().await;
    add(&server, &guest, P1, 1).await;
    let session = initiate(&server, &guest).await["data"]["initiateCheckout"]["id"].as_str().expect("id").to_owned();
    let answered = place(&server, &guest, order_input(&session, "pm_card_visa", "lease")).await;
    assert_eq!(crate::helpers::error_code(&answered), "PAYMENT_IN_PROGRESS", "{answered:#}");
    assert_eq!(attempts.load(Ordering::SeqCst), 1);

    let checkout = &server.app().checkout;
    let now = server.app().clock.now();
    assert_eq!(checkout.recover(now).await.expect("recovery"), 0);
    assert_eq!(attempts.load(Ordering::SeqCst), 1, "a charge within its lease (35 s for Stripe) is left alone");
    let lapsed = now + chrono::Duration::seconds(36);
    let (first, second) = tokio::join!(checkout.recover(lapsed), checkout.recover(lapsed));
    first.expect("recovery");
    second.expect("recovery");
    assert_eq!(attempts.load(Ordering::SeqCst), 2, "two instances recovering: one asks the processor again");
    checkout.recover(lapsed).await.expect("recovery");
    assert_eq!(attempts.load(Ordering::SeqCst), 2, "the recovery that took it holds a new lease");
    let lease_end = checkout.next_lease_end().await.expect("leases").expect("a saga is still leased");
    assert!(lease_end > lapsed + chrono::Duration::seconds(30), "{lease_end} is the new lease's end");
});
