//! Orders held for fraud review: they expire with the reservation time, one shopper may have
//! three waiting, and admin moves on one order that race cannot both act.

use chrono::Utc;
use serde_json::{Value, json};
use shop::db::{Writes, orders};
use shop::domain::clock::ManualClock;
use shop::payments::LedgerEntry;
use shop::ports::Clock;

use crate::checkout::{ORDER, P1, add, address, charges, initiate, ledger, order_input, place, set_stock, stock};
use crate::helpers::{Backend, ServerOptions, TestServer, error_code};
use crate::on_both_backends;

const UPDATE: &str =
    "mutation($id: ID!, $s: OrderStatus!) { adminUpdateOrderStatus(orderId: $id, status: $s) { id status } }";

/// A shopper's order for one unit of P1, billed elsewhere: a first order so billed scores 0.3
/// and waits for review, uncharged.
async fn order_held_for_review(server: &TestServer, token: &str, key: &str) -> Value {
    add(server, token, P1, 1).await;
    let session = initiate(server, token).await["data"]["initiateCheckout"]["id"].as_str().expect("id").to_owned();
    let mut input = order_input(&session, "pm_card_visa", key);
    input["billingAddress"] = address("99 Elsewhere Rd");
    let held = place(server, token, input).await;
    assert_eq!(held["data"]["placeOrder"]["status"], "PENDING_PAYMENT", "{held:#}");
    held["data"]["placeOrder"].clone()
}

async fn status_of(server: &TestServer, token: &str, id: &Value) -> Value {
    let query = format!("query($id: ID!) {{ order(id: $id) {{ {ORDER} }} }}");
    server.data(&query, json!({ "id": id }), Some(token)).await["order"]["status"].clone()
}

on_both_backends!(
    an_unreviewed_order_gives_its_stock_back_when_the_reservation_time_ends,
    |backend: Backend| async move {
        let clock = ManualClock::new(Utc::now());
        let options = ServerOptions { seed_products: 20, clock: Some(clock.clone()), ..Default::default() };
        let server = TestServer::start_with(backend, options).await;
        set_stock(&server, P1, 5).await;
        let (waiting, approved) = (server.user_token().await, server.user_token().await);
        let expiring = order_held_for_review(&server, &waiting, "waits").await;
        let kept = order_held_for_review(&server, &approved, "approved").await;
        assert_eq!(stock(&server, P1).await, (3, 0), "held orders keep their units");
        let admin = server.admin_token().await;
        server.data(UPDATE, json!({ "id": kept["id"], "s": "PAID" }), Some(&admin)).await;

        clock.advance(chrono::Duration::minutes(9));
        assert_eq!(server.app().orders.expire_reviews().await.expect("sweep"), 0, "not yet");
        clock.advance(chrono::Duration::minutes(2));
        assert_eq!(server.app().orders.expire_reviews().await.expect("sweep"), 1);
        assert_eq!(status_of(&server, &waiting, &expiring["id"]).await, "CANCELLED");
        assert_eq!(status_of(&server, &approved, &kept["id"]).await, "PAID", "an approved order stays");
        assert_eq!(stock(&server, P1).await, (4, 0), "the expired order's unit is on sale again");
        assert_eq!(server.app().orders.expire_reviews().await.expect("sweep"), 0, "cancelled once");
        let late = server.gql(UPDATE, json!({ "id": expiring["id"], "s": "PAID" }), Some(&admin)).await;
        assert_eq!(error_code(&late), "CONFLICT", "an expired order cannot be approved");
        assert_eq!(charges(&ledger(&server)), 1);
    }
);

on_both_backends!(a_shopper_may_have_three_orders_waiting_for_review, |backend: Backend| async move {
    let server = crate::checkout::shop(backend).await;
    // Over $1,000 from an account under a day old scores 0.4: each order waits for review.
    let admin = server.admin_token().await;
    let pricey = "mutation { adminUpsertProduct(input: { id: \"prod-0000001\", title: \"Grand Kazoo\", \
                  description: \"\", priceCents: 150000 }) { id } adminSetStock(productId: \"prod-0000001\", quantity: 10) { id } }";
    server.data(pricey, json!({}), Some(&admin)).await;
    let user = server.user_token().await;
    for key in ["first", "second", "third"] {
        add(&server, &user, P1, 1).await;
        let session = initiate(&server, &user).await["data"]["initiateCheckout"]["id"].clone();
        let held = place(&server, &user, order_input(session.as_str().expect("id"), "pm_card_visa", key)).await;
        assert_eq!(held["data"]["placeOrder"]["status"], "PENDING_PAYMENT", "{held:#}");
    }
    add(&server, &user, P1, 1).await;
    let session = initiate(&server, &user).await["data"]["initiateCheckout"]["id"].as_str().expect("id").to_owned();
    let fourth = place(&server, &user, order_input(&session, "pm_card_visa", "fourth")).await;
    assert_eq!(error_code(&fourth), "PAYMENT_DECLINED", "{fourth:#}");
    let shown = server
        .data("query($id: ID!) { checkoutSession(id: $id) { status } }", json!({ "id": session }), Some(&user))
        .await;
    assert_eq!(shown["checkoutSession"]["status"], "RESERVED", "a refused order leaves the session to retry or expire");
    assert_eq!(stock(&server, P1).await, (6, 1), "three units held by review orders, one by the session");
});

on_both_backends!(racing_approvals_charge_once, |backend: Backend| async move {
    let server = crate::checkout::shop(backend).await;
    set_stock(&server, P1, 5).await;
    let admin = server.admin_token().await;
    for round in 0..3 {
        let user = server.user_token().await;
        let order = order_held_for_review(&server, &user, &format!("race-{round}")).await;
        // Two admins press approve at once.
        let approve = || server.gql(UPDATE, json!({ "id": order["id"], "s": "PAID" }), Some(&admin));
        let (a, b) = tokio::join!(approve(), approve());
        let succeeded = [&a, &b].iter().filter(|r| r.get("errors").is_none()).count();
        assert_eq!(succeeded, 1, "{a:#} {b:#}");
        for response in [&a, &b].into_iter().filter(|r| r.get("errors").is_some()) {
            assert_eq!(error_code(response), "CONFLICT", "{response:#}");
        }
        assert_eq!(charges(&ledger(&server)), round + 1, "two approvals charge once");
    }
});

/// The refunds the test gateway has recorded.
fn refunds(server: &TestServer) -> usize {
    ledger(server).iter().filter(|entry| matches!(entry, LedgerEntry::Refund { .. })).count()
}

on_both_backends!(a_move_in_flight_holds_the_order_until_it_finishes_or_lapses, |backend: Backend| async move {
    let clock = ManualClock::new(Utc::now());
    let options = ServerOptions { seed_products: 20, clock: Some(clock.clone()), ..Default::default() };
    let server = TestServer::start_with(backend, options).await;
    set_stock(&server, P1, 5).await;
    let admin = server.admin_token().await;
    let user = server.user_token().await;
    let order = order_held_for_review(&server, &user, "in-flight").await;
    server.data(UPDATE, json!({ "id": order["id"], "s": "PAID" }), Some(&admin)).await;
    // Another instance is fulfilling it: its claim is in the store, its processor call under way.
    let id = order["id"].as_str().expect("id").to_owned();
    let db = &server.app().db;
    let paid = db.with_conn(async |c| orders::by_ids(c, std::slice::from_ref(&id)).await).await.expect("order");
    let now = clock.now();
    let claim = orders::claim_transition(&paid[0], now, now + chrono::Duration::minutes(5));
    assert_eq!(db.atomically(async |c| Writes::new(claim).run(c, "claim").await).await.expect("claim"), [1]);

    let cancel = server.gql(UPDATE, json!({ "id": id, "s": "CANCELLED" }), Some(&admin)).await;
    assert_eq!(error_code(&cancel), "CONFLICT", "{cancel:#}");
    assert_eq!(refunds(&server), 0, "the refused move called no processor");
    assert_eq!(status_of(&server, &user, &order["id"]).await, "PAID");

    // Its holder died: once the claim lapses the order can move again, and the move is whole.
    clock.advance(chrono::Duration::minutes(6));
    let cancelled = server.data(UPDATE, json!({ "id": id, "s": "CANCELLED" }), Some(&admin)).await;
    assert_eq!(cancelled["adminUpdateOrderStatus"]["status"], "CANCELLED");
    assert_eq!(refunds(&server), 1);
    assert_eq!(stock(&server, P1).await, (5, 0), "restocked");
});
