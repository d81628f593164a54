//! Checkout, payments and orders against a running server, on SQLite and PostgreSQL: all-or-
//! nothing reservations, exactly one charge per idempotency key under concurrency, no oversell
//! when 200 buyers race, expiry, declines that lose nothing, fraud review, the order state
//! machine with refunds and restock, live order events, and recovery after a crash mid-saga.

use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use shop::config::Config;
use shop::db::{Writes, inventory, orders};
use shop::domain::clock::ManualClock;
use shop::domain::orders::Order;
use shop::domain::payments::RetryPolicy;
use shop::payments::{LedgerEntry, TestGateway};

use crate::helpers::{
    Backend, ServerOptions, ShopProcess, Subscription, TestDatabase, TestServer, cart_line, error_code, gql,
    gql_response,
};
use crate::on_both_backends;

pub(crate) const P1: &str = "prod-0000001";
const P2: &str = "prod-0000002";

const SESSION: &str = "id status expiresAt items { product { id } quantity unitPrice { centAmount } } \
    subtotal { centAmount currencyCode } shipping { centAmount } tax { centAmount } total { centAmount }";
pub(crate) const ORDER: &str = "id status total { centAmount } items { product { id } quantity } \
    payment { id status amount { centAmount } gatewayReference } events { orderId type status at }";
const PLACE: &str = "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id status total { centAmount } \
    payment { id status amount { centAmount } gatewayReference } events { orderId type status at } } }";

/// Retries after transient failures are quick in tests.
fn fast_retries(config: &mut Config) {
    config.payment_retry = RetryPolicy { delays: vec![Duration::from_millis(10); 3] };
}

pub(crate) async fn shop(backend: Backend) -> TestServer {
    TestServer::start_with(backend, ServerOptions { seed_products: 20, tweak: fast_retries, ..Default::default() })
        .await
}

/// Puts `quantity` units of the product on sale at $15.00, so that orders stay under the fraud
/// rules' high-value mark (guests count as new accounts).
pub(crate) const OFFER: &str = "mutation($p: ID!, $q: Int!) { \
    adminUpsertProduct(input: { id: $p, title: \"Test Kazoo\", description: \"\", priceCents: 1500 }) { id } \
    adminSetStock(productId: $p, quantity: $q) { id } }";

pub(crate) async fn set_stock(server: &TestServer, product: &str, quantity: i32) {
    let admin = server.admin_token().await;
    server.data(OFFER, json!({ "p": product, "q": quantity }), Some(&admin)).await;
}

/// The store's stock of the product (not the browsing cache's), as (available, reserved).
pub(crate) async fn stock(server: &TestServer, product: &str) -> (i32, i32) {
    let ids = [product.to_owned()];
    let levels = server.app().db.with_conn(async |c| inventory::stock_levels(c, &ids).await).await.expect("stock");
    let level = levels.first().expect("inventory row");
    (level.available, level.reserved)
}

/// Waits (up to 5 s) until no sold units wait to leave reserved stock.
async fn wait_until_sales_settle(server: &TestServer) {
    let started = std::time::Instant::now();
    while server.app().db.with_conn(async |c| inventory::any_unsettled(c).await).await.expect("pending sales") {
        assert!(started.elapsed() < Duration::from_secs(5), "sold units were never settled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn add(server: &TestServer, token: &str, product: &str, quantity: i32) {
    server
        .data(
            "mutation($p: ID!, $q: Int!) { addCartItem(productId: $p, quantity: $q) { version } }",
            json!({ "p": product, "q": quantity }),
            Some(token),
        )
        .await;
}

pub(crate) async fn initiate(server: &TestServer, token: &str) -> Value {
    server.gql(&format!("mutation {{ initiateCheckout {{ {SESSION} }} }}"), json!({}), Some(token)).await
}

pub(crate) fn address(line1: &str) -> Value {
    json!({ "name": "Ada Lovelace", "line1": line1, "city": "Springfield", "postalCode": "12345", "country": "US" })
}

pub(crate) fn order_input(session: &str, method: &str, key: &str) -> Value {
    json!({ "checkoutSessionId": session, "paymentMethodId": method, "shippingAddress": address("1 Main St"), "idempotencyKey": key })
}

pub(crate) async fn place(server: &TestServer, token: &str, input: Value) -> Value {
    server.gql(PLACE, json!({ "input": input }), Some(token)).await
}

/// Charges and refunds the test gateway has recorded.
pub(crate) fn ledger(server: &TestServer) -> Vec<LedgerEntry> {
    TestGateway::read_ledger(&server.app().config.data_dir.join("test-gateway.jsonl")).expect("ledger")
}

pub(crate) fn charges(entries: &[LedgerEntry]) -> usize {
    entries.iter().filter(|e| matches!(e, LedgerEntry::Charge { .. })).count()
}

/// A guest with the given lines in the cart and a reserved checkout session; returns (token, session).
async fn reserved_guest(server: &TestServer, lines: &[(&str, i32)]) -> (String, Value) {
    let guest = server.guest_token().await;
    for (product, quantity) in lines {
        add(server, &guest, product, *quantity).await;
    }
    let response = initiate(server, &guest).await;
    assert!(response.get("errors").is_none(), "{response:#}");
    (guest, response["data"]["initiateCheckout"].clone())
}

on_both_backends!(a_checkout_reserves_prices_and_becomes_one_paid_order, |backend: Backend| async move {
    let server = shop(backend).await;
    set_stock(&server, P1, 5).await;
    set_stock(&server, P2, 5).await;
    let (guest, session) = reserved_guest(&server, &[(P1, 2), (P2, 1)]).await;
    assert_eq!(session["status"], "RESERVED");
    let subtotal = session["subtotal"]["centAmount"].as_i64().expect("subtotal");
    let lines: i64 = session["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["quantity"].as_i64().expect("q") * i["unitPrice"]["centAmount"].as_i64().expect("price"))
        .sum();
    assert_eq!(subtotal, lines);
    let shipping = if subtotal >= 5_000 { 0 } else { 499 };
    assert_eq!(session["shipping"]["centAmount"], shipping);
    assert_eq!(session["total"]["centAmount"], subtotal + shipping, "US tax is 0 by default");
    assert_eq!(stock(&server, P1).await, (3, 2), "reserved units leave available stock");

    let session_id = session["id"].as_str().expect("id").to_owned();
    let placed = place(&server, &guest, order_input(&session_id, "pm_card_visa", "key-1")).await;
    let order = placed["data"]["placeOrder"].clone();
    assert_eq!(order["status"], "PAID", "{placed:#}");
    assert_eq!(order["total"]["centAmount"], subtotal + shipping);
    assert_eq!(order["payment"]["status"], "COMPLETED");
    assert_eq!(order["payment"]["amount"]["centAmount"], subtotal + shipping);
    assert!(order["payment"]["gatewayReference"].as_str().is_some_and(|r| r.starts_with("pi_test_")));
    assert_eq!(order["events"].as_array().expect("events").len(), 1);
    assert_eq!(
        (order["events"][0]["type"].as_str(), order["events"][0]["status"].as_str()),
        (Some("PLACED"), Some("PAID"))
    );
    assert_eq!(stock(&server, P1).await, (3, 0), "sold units are neither available nor reserved");
    // The order wrote its sales as pending; the stock-sales worker, woken by it, settles them.
    wait_until_sales_settle(&server).await;
    assert_eq!(stock(&server, P1).await, (3, 0), "settled, the stock row itself holds the counts");

    let replay = place(&server, &guest, order_input(&session_id, "pm_card_visa", "key-1")).await;
    assert_eq!(replay["data"]["placeOrder"]["id"], order["id"], "a replayed key returns the same order");
    assert_eq!(charges(&ledger(&server)), 1, "one charge");
    let reused = place(&server, &guest, order_input(&session_id, "pm_card_mastercard", "key-1")).await;
    assert_eq!(error_code(&reused), "CONFLICT", "a reused key with other contents");
    let second_key = place(&server, &guest, order_input(&session_id, "pm_card_visa", "key-2")).await;
    assert_eq!(error_code(&second_key), "CONFLICT", "the session is paid");

    let after = server.data("{ cart { totalQuantity } }", json!({}), Some(&guest)).await;
    assert_eq!(after["cart"]["totalQuantity"], 0, "bought lines leave the cart");
    let seen = server
        .data("query($id: ID!) { checkoutSession(id: $id) { status } }", json!({ "id": session_id }), Some(&guest))
        .await;
    assert_eq!(seen["checkoutSession"]["status"], "COMPLETED");
    let listed =
        server.data("{ orders { edges { node { id } } pageInfo { hasNextPage } } }", json!({}), Some(&guest)).await;
    assert_eq!(listed["orders"]["edges"][0]["node"]["id"], order["id"]);

    // The order row is a projection: replaying its events rebuilds it exactly.
    let id = order["id"].as_str().expect("id").to_owned();
    let db = &server.app().db;
    let events = db.with_conn(async |c| orders::events_of(c, std::slice::from_ref(&id)).await).await.expect("events");
    let stored = db.with_conn(async |c| orders::by_ids(c, std::slice::from_ref(&id)).await).await.expect("order");
    assert_eq!(Order::replay(&events).as_ref(), stored.first());

    // The confirmation goes out through the notifier after commit.
    let log = server.app().config.data_dir.join("notifications.log");
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&log).unwrap_or_default().contains(&format!("Order {id} confirmed")) {
        assert!(started.elapsed() < Duration::from_secs(5), "no confirmation in {}", log.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
});

on_both_backends!(bought_lines_leave_a_cart_that_changed_behind_the_cache, |backend: Backend| async move {
    use diesel::prelude::*;
    use shop::db::schema::carts;

    let server = shop(backend).await;
    set_stock(&server, P1, 5).await;
    set_stock(&server, P2, 5).await;
    let (guest, session) = reserved_guest(&server, &[(P1, 2)]).await;
    add(&server, &guest, P2, 1).await;
    // Another instance changed the cart since this one cached it: the order's write of the cart
    // (at the cached version) misses, and the bought lines must still go.
    let cart = server.data("{ cart { id version } }", json!({}), Some(&guest)).await;
    let (id, version) = (cart["cart"]["id"].as_str().expect("id").to_owned(), cart["cart"]["version"].as_i64());
    let bumped = diesel::update(carts::table.find(id)).set(carts::version.eq(carts::version + 1));
    let db = &server.app().db;
    db.atomically(async |c| Writes::new(bumped).run(c, "changing a cart elsewhere").await).await.expect("bumped");

    let session_id = session["id"].as_str().expect("id");
    let placed = place(&server, &guest, order_input(session_id, "pm_card_visa", "key-1")).await;
    assert_eq!(placed["data"]["placeOrder"]["status"], "PAID", "{placed:#}");
    let after = server.data("{ cart { version items { product { id } quantity } } }", json!({}), Some(&guest)).await;
    assert_eq!(
        after["cart"]["items"],
        json!([{ "product": { "id": P2 }, "quantity": 1 }]),
        "only the line added later stays"
    );
    assert_eq!(after["cart"]["version"].as_i64(), version.map(|v| v + 2), "the other change, then the purchase's");
});

on_both_backends!(sales_another_process_left_are_settled_on_the_timer, |backend: Backend| async move {
    let server = shop(backend).await;
    set_stock(&server, P1, 5).await;
    // Another process (an instance that stopped before its worker ran, say) reserved and sold
    // two units: its writes wake no worker of this server.
    let elsewhere = shop::db::Pool::open(&server.app().config.store_url(), 1, std::sync::Arc::new(|_| ()))
        .await
        .expect("another process's pool");
    let sold = inventory::sell(Writes::new(inventory::reserve(P1, 2)), &[cart_line(P1, 2)]);
    elsewhere.atomically(async |c| sold.run(c, "another process's order").await).await.expect("sold");
    assert!(elsewhere.with_conn(async |c| inventory::any_unsettled(c).await).await.expect("look"), "pending");
    assert_eq!(stock(&server, P1).await, (3, 0), "pending sales are not counted as reserved");
    wait_until_sales_settle(&server).await;
    assert_eq!(stock(&server, P1).await, (3, 0), "settled into the stock row");
});

on_both_backends!(two_hundred_buyers_race_for_the_last_ten_units, |backend: Backend| async move {
    let server = shop(backend).await;
    set_stock(&server, P1, 10).await;
    let mut buyers = Vec::new();
    for _ in 0..200 {
        let guest = server.guest_token().await;
        add(&server, &guest, P1, 1).await;
        buyers.push(guest);
    }
    let tasks: Vec<_> = buyers
        .into_iter()
        .enumerate()
        .map(|(i, guest)| {
            let base = server.base.clone();
            tokio::spawn(async move {
                let started =
                    gql_response(&base, "mutation { initiateCheckout { id } }", json!({}), Some(&guest)).await;
                let Some(session) = started["data"]["initiateCheckout"]["id"].as_str() else { return started };
                let input = order_input(session, "pm_card_visa", &format!("race-{i}"));
                gql_response(
                    &base,
                    "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { status } }",
                    json!({ "input": input }),
                    Some(&guest),
                )
                .await
            })
        })
        .collect();
    let (mut paid, mut sold_out) = (0, 0);
    for task in tasks {
        let response = task.await.expect("buyer");
        if response["data"]["placeOrder"]["status"] == "PAID" {
            paid += 1;
        } else {
            assert_eq!(error_code(&response), "OUT_OF_STOCK", "{response:#}");
            let line = &response["errors"][0]["extensions"]["lines"][0];
            assert_eq!((line["productId"].as_str(), line["requested"].as_i64()), (Some(P1), Some(1)));
            sold_out += 1;
        }
    }
    assert_eq!((paid, sold_out), (10, 190));
    assert_eq!(stock(&server, P1).await, (0, 0), "nothing oversold, nothing left reserved");
    assert_eq!(charges(&ledger(&server)), 10);
});

on_both_backends!(fifty_concurrent_place_orders_with_one_key_charge_once, |backend: Backend| async move {
    let server = shop(backend).await;
    set_stock(&server, P1, 5).await;
    let (guest, session) = reserved_guest(&server, &[(P1, 1)]).await;
    let input = order_input(session["id"].as_str().expect("id"), "pm_card_visa", "one-key");
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (base, guest, input) = (server.base.clone(), guest.clone(), input.clone());
            tokio::spawn(async move { gql_response(&base, PLACE, json!({ "input": input }), Some(&guest)).await })
        })
        .collect();
    let mut order_ids = std::collections::HashSet::new();
    for task in tasks {
        let response = task.await.expect("request");
        match response["data"]["placeOrder"]["id"].as_str() {
            Some(id) => {
                order_ids.insert(id.to_owned());
            }
            None => assert_eq!(error_code(&response), "PAYMENT_IN_PROGRESS", "{response:#}"),
        }
    }
    let replay = place(&server, &guest, input).await;
    assert_eq!(replay["data"]["placeOrder"]["status"], "PAID", "{replay:#}");
    let id = replay["data"]["placeOrder"]["id"].as_str().expect("the order").to_owned();
    assert!(order_ids.iter().all(|o| *o == id), "one order: {order_ids:?} and {id}");
    assert_eq!(charges(&ledger(&server)), 1, "one charge");
    let orders = server.data("{ orders { edges { node { id } } } }", json!({}), Some(&guest)).await;
    assert_eq!(orders["orders"]["edges"].as_array().expect("edges").len(), 1);
    assert_eq!(stock(&server, P1).await, (4, 0));
});

on_both_backends!(expired_reservations_return_their_stock, |backend: Backend| async move {
    let clock = ManualClock::new(Utc::now());
    let server = TestServer::start_with(
        backend,
        ServerOptions { seed_products: 20, clock: Some(clock.clone()), ..Default::default() },
    )
    .await;
    set_stock(&server, P1, 3).await;
    let (guest, session) = reserved_guest(&server, &[(P1, 2)]).await;
    let id = session["id"].as_str().expect("id").to_owned();
    assert_eq!(stock(&server, P1).await, (1, 2));
    clock.advance(chrono::Duration::minutes(11));
    let late = place(&server, &guest, order_input(&id, "pm_card_visa", "late")).await;
    assert_eq!(error_code(&late), "RESERVATION_EXPIRED");
    let shown =
        server.data("query($id: ID!) { checkoutSession(id: $id) { status } }", json!({ "id": id }), Some(&guest)).await;
    assert_eq!(shown["checkoutSession"]["status"], "EXPIRED", "expired even before the sweeper ran");
    assert_eq!(server.app().checkout.expire_due().await.expect("sweep"), 1);
    assert_eq!(stock(&server, P1).await, (3, 0), "the sweeper returned the units");
    assert_eq!(server.app().checkout.expire_due().await.expect("sweep"), 0, "released once");
    assert_eq!(charges(&ledger(&server)), 0);
    let cart = server.data("{ cart { totalQuantity } }", json!({}), Some(&guest)).await;
    assert_eq!(cart["cart"]["totalQuantity"], 2, "the cart survives an expired checkout");
});

on_both_backends!(declines_lose_nothing_and_may_be_retried, |backend: Backend| async move {
    let server = shop(backend).await;
    set_stock(&server, P1, 5).await;
    let (guest, session) = reserved_guest(&server, &[(P1, 2)]).await;
    let id = session["id"].as_str().expect("id").to_owned();
    let unchanged = async |what: &str| {
        assert_eq!(stock(&server, P1).await, (3, 2), "{what}: the reservation holds");
        let query = "query($id: ID!) { checkoutSession(id: $id) { status } cart { totalQuantity } }";
        let seen = server.data(query, json!({ "id": id }), Some(&guest)).await;
        assert_eq!(
            seen,
            json!({ "checkoutSession": { "status": "RESERVED" }, "cart": { "totalQuantity": 2 } }),
            "{what}"
        );
    };
    let declined = place(&server, &guest, order_input(&id, "pm_card_chargeDeclined", "declined")).await;
    assert_eq!(error_code(&declined), "PAYMENT_DECLINED");
    unchanged("declined").await;
    // A processing error is retried (3 quick retries here), then fails.
    let transient = order_input(&id, "pm_card_chargeDeclinedProcessingError", "transient");
    assert_eq!(error_code(&place(&server, &guest, transient).await), "PAYMENT_DECLINED");
    unchanged("transient").await;
    assert_eq!(charges(&ledger(&server)), 0, "nothing charged");

    // A made-up payment method is bad input before the fraud rules could hold an order for it.
    let made_up = place(&server, &guest, order_input(&id, "pm_card_no_such_method", "made-up")).await;
    assert_eq!(error_code(&made_up), "BAD_USER_INPUT", "{made_up:#}");
    assert_eq!(made_up["errors"][0]["extensions"]["field"], "paymentMethodId");
    unchanged("made-up method").await;

    // Repeated failed payments score 0.5: the next order waits for review, uncharged.
    let held = place(&server, &guest, order_input(&id, "pm_card_visa", "visa")).await;
    assert_eq!(held["data"]["placeOrder"]["status"], "PENDING_PAYMENT", "{held:#}");
    assert_eq!(charges(&ledger(&server)), 0);
});

on_both_backends!(cancelling_a_checkout_returns_its_stock_at_once, |backend: Backend| async move {
    let server = shop(backend).await;
    set_stock(&server, P1, 4).await;
    let (guest, session) = reserved_guest(&server, &[(P1, 3)]).await;
    let id = session["id"].as_str().expect("id").to_owned();
    let cancel = "mutation($id: ID!) { cancelCheckout(checkoutSessionId: $id) { status } }";
    let cancelled = server.data(cancel, json!({ "id": id }), Some(&guest)).await;
    assert_eq!(cancelled["cancelCheckout"]["status"], "CANCELLED");
    assert_eq!(stock(&server, P1).await, (4, 0));
    let twice = server.data(cancel, json!({ "id": id }), Some(&guest)).await;
    assert_eq!(twice["cancelCheckout"]["status"], "CANCELLED", "cancelling again changes nothing");
    assert_eq!(stock(&server, P1).await, (4, 0));
    let pay = place(&server, &guest, order_input(&id, "pm_card_visa", "after-cancel")).await;
    assert_eq!(error_code(&pay), "CONFLICT");
    // A new checkout replaces an open one instead of holding the stock twice.
    let first = initiate(&server, &guest).await;
    let second = initiate(&server, &guest).await;
    assert!(second.get("errors").is_none(), "{second:#}");
    assert_eq!(stock(&server, P1).await, (1, 3));
    let first_id = first["data"]["initiateCheckout"]["id"].clone();
    let old = server
        .data("query($id: ID!) { checkoutSession(id: $id) { status } }", json!({ "id": first_id }), Some(&guest))
        .await;
    assert_eq!(old["checkoutSession"]["status"], "CANCELLED");
});

on_both_backends!(bad_checkout_input_gets_clear_codes, |backend: Backend| async move {
    let server = shop(backend).await;
    set_stock(&server, P1, 5).await;
    assert_eq!(
        error_code(&server.gql("mutation { initiateCheckout { id } }", json!({}), None).await),
        "UNAUTHENTICATED"
    );
    let empty = server.guest_token().await;
    assert_eq!(error_code(&initiate(&server, &empty).await), "BAD_USER_INPUT", "an empty cart");
    let (owner, session) = reserved_guest(&server, &[(P1, 1)]).await;
    let id = session["id"].as_str().expect("id").to_owned();
    let stranger = server.guest_token().await;
    let foreign =
        server.data("query($id: ID!) { checkoutSession(id: $id) { id } }", json!({ "id": id }), Some(&stranger)).await;
    assert_eq!(foreign["checkoutSession"], Value::Null);
    assert_eq!(error_code(&place(&server, &stranger, order_input(&id, "pm_card_visa", "k")).await), "NOT_FOUND");
    let cancel = server
        .gql(
            "mutation($id: ID!) { cancelCheckout(checkoutSessionId: $id) { id } }",
            json!({ "id": id }),
            Some(&stranger),
        )
        .await;
    assert_eq!(error_code(&cancel), "NOT_FOUND");
    assert_eq!(error_code(&place(&server, &owner, order_input("chk-unknown", "pm_card_visa", "k")).await), "NOT_FOUND");
    assert_eq!(
        error_code(&place(&server, &owner, order_input("bad id!", "pm_card_visa", "k")).await),
        "BAD_USER_INPUT"
    );
    let mut no_city = order_input(&id, "pm_card_visa", "k");
    no_city["shippingAddress"]["city"] = json!("  ");
    let response = place(&server, &owner, no_city).await;
    assert_eq!(error_code(&response), "BAD_USER_INPUT");
    assert_eq!(response["errors"][0]["extensions"]["field"], "shippingAddress");
    assert_eq!(error_code(&place(&server, &owner, order_input(&id, "pm card visa", "k")).await), "BAD_USER_INPUT");
    assert_eq!(error_code(&place(&server, &owner, order_input(&id, "pm_card_visa", "")).await), "BAD_USER_INPUT");
    assert_eq!(
        error_code(&server.gql("{ orders(first: 101) { edges { cursor } } }", json!({}), Some(&owner)).await),
        "BAD_USER_INPUT"
    );
    assert_eq!(
        error_code(&server.gql("{ orders(after: \"garbage\") { edges { cursor } } }", json!({}), Some(&owner)).await),
        "BAD_USER_INPUT"
    );
    // An unknown payment method is refused before anything is held; the key stays free.
    for _ in 0..2 {
        let unknown = place(&server, &owner, order_input(&id, "pm_card_unheard_of", "unknown")).await;
        assert_eq!(error_code(&unknown), "BAD_USER_INPUT", "{unknown:#}");
    }
    assert_eq!(stock(&server, P1).await, (4, 1), "nothing changed");
    assert_eq!(charges(&ledger(&server)), 0);
});

on_both_backends!(fraud_review_holds_the_order_until_an_admin_approves, |backend: Backend| async move {
    let server = shop(backend).await;
    set_stock(&server, P1, 5).await;
    let user = server.user_token().await;
    add(&server, &user, P1, 1).await;
    let session = initiate(&server, &user).await["data"]["initiateCheckout"]["id"].as_str().expect("id").to_owned();
    let mut input = order_input(&session, "pm_card_visa", "review-me");
    input["billingAddress"] = address("99 Elsewhere Rd");
    let held = place(&server, &user, input).await;
    let order = held["data"]["placeOrder"].clone();
    assert_eq!(order["status"], "PENDING_PAYMENT", "a first order billed elsewhere scores 0.3: {held:#}");
    assert_eq!(order["payment"], Value::Null);
    assert_eq!(charges(&ledger(&server)), 0, "no charge before review");
    assert_eq!(stock(&server, P1).await, (4, 0), "the held order keeps its unit");

    let update = format!(
        "mutation($id: ID!, $s: OrderStatus!) {{ adminUpdateOrderStatus(orderId: $id, status: $s) {{ {ORDER} }} }}"
    );
    let id = order["id"].clone();
    assert_eq!(error_code(&server.gql(&update, json!({ "id": id, "s": "PAID" }), Some(&user)).await), "FORBIDDEN");
    let admin = server.admin_token().await;
    let approved =
        server.data(&update, json!({ "id": id, "s": "PAID" }), Some(&admin)).await["adminUpdateOrderStatus"].clone();
    assert_eq!(
        (approved["status"].as_str(), approved["payment"]["status"].as_str()),
        (Some("PAID"), Some("COMPLETED"))
    );
    assert_eq!(charges(&ledger(&server)), 1);
    for status in ["FULFILLED", "SHIPPED", "DELIVERED"] {
        let moved = server.data(&update, json!({ "id": id, "s": status }), Some(&admin)).await;
        assert_eq!(moved["adminUpdateOrderStatus"]["status"], status);
    }
    let illegal = server.gql(&update, json!({ "id": id, "s": "CANCELLED" }), Some(&admin)).await;
    assert_eq!(error_code(&illegal), "CONFLICT", "no cancelling after delivery");
    let history = server
        .data("query($id: ID!) { order(id: $id) { events { type status } } }", json!({ "id": id }), Some(&user))
        .await;
    let kinds: Vec<&str> = history["order"]["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    assert_eq!(kinds, ["PLACED", "PAID", "FULFILLED", "SHIPPED", "DELIVERED"]);
});

on_both_backends!(cancelling_a_paid_order_refunds_restocks_and_is_pushed, |backend: Backend| async move {
    let server = shop(backend).await;
    set_stock(&server, P1, 5).await;
    let (guest, session) = reserved_guest(&server, &[(P1, 2)]).await;
    let placed = place(&server, &guest, order_input(session["id"].as_str().expect("id"), "pm_card_visa", "k")).await;
    let id = placed["data"]["placeOrder"]["id"].as_str().expect("order").to_owned();
    assert_eq!(stock(&server, P1).await, (3, 0));

    let watch = format!("subscription {{ orderUpdated(orderId: \"{id}\") {{ orderId type status }} }}");
    let mut updates = Subscription::start(&server.ws_url(), &guest, &watch).await;
    assert_eq!(updates.next().await["orderUpdated"]["status"], "PAID", "the latest event first");

    let admin = server.admin_token().await;
    let update = "mutation($id: ID!, $s: OrderStatus!) { adminUpdateOrderStatus(orderId: $id, status: $s) { status payment { status } } }";
    let fulfilled = server.data(update, json!({ "id": id, "s": "FULFILLED" }), Some(&admin)).await;
    assert_eq!(fulfilled["adminUpdateOrderStatus"]["status"], "FULFILLED");
    assert_eq!(
        updates.next().await["orderUpdated"],
        json!({ "orderId": id, "type": "FULFILLED", "status": "FULFILLED" })
    );
    let cancelled = server.data(update, json!({ "id": id, "s": "CANCELLED" }), Some(&admin)).await;
    assert_eq!(
        cancelled["adminUpdateOrderStatus"],
        json!({ "status": "CANCELLED", "payment": { "status": "REFUNDED" } })
    );
    assert_eq!(updates.next().await["orderUpdated"]["status"], "CANCELLED");
    assert_eq!(stock(&server, P1).await, (5, 0), "cancelled units are back on sale");
    let refunds = ledger(&server).iter().filter(|e| matches!(e, LedgerEntry::Refund { .. })).count();
    assert_eq!(refunds, 1);
    let stranger = server.guest_token().await;
    let foreign = server.data("query($id: ID!) { order(id: $id) { id } }", json!({ "id": id }), Some(&stranger)).await;
    assert_eq!(foreign["order"], Value::Null, "someone else's order is not there");
});

on_both_backends!(the_rest_facade_checks_out_with_the_same_rules, |backend: Backend| async move {
    let server = shop(backend).await;
    set_stock(&server, P1, 5).await;
    let guest = server.guest_token().await;
    add(&server, &guest, P1, 1).await;
    let session: Value = server
        .client
        .post(server.url("/checkout/initiate"))
        .bearer_auth(&guest)
        .send()
        .await
        .expect("initiate")
        .json()
        .await
        .expect("json");
    assert_eq!(session["status"], "RESERVED", "{session:#}");
    let input = order_input(session["id"].as_str().expect("id"), "pm_card_chargeDeclined", "rest-1");
    let declined =
        server.client.post(server.url("/checkout/payment")).bearer_auth(&guest).json(&input).send().await.expect("pay");
    assert_eq!(declined.status(), 402);
    let body: Value = declined.json().await.expect("json");
    assert_eq!(body["error"]["code"], "PAYMENT_DECLINED");
    let input = order_input(session["id"].as_str().expect("id"), "pm_card_visa", "rest-2");
    let order: Value = server
        .client
        .post(server.url("/checkout/payment"))
        .bearer_auth(&guest)
        .json(&input)
        .send()
        .await
        .expect("pay")
        .json()
        .await
        .expect("json");
    assert_eq!((order["status"].as_str(), order["payment"]["status"].as_str()), (Some("PAID"), Some("COMPLETED")));
});

/// The process aborts right after the gateway charged; the next start finishes the order, with
/// one charge and the stock sold exactly once.
async fn a_crash_after_the_charge_is_finished_at_restart(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let data_dir = tempfile::tempdir().expect("data dir");
    let mut env = db.env();
    env.push(("SHOP_SEED_PRODUCTS".to_owned(), "20".to_owned()));
    env.push(("SHOP_JWT_SECRET".to_owned(), "a shared secret of at least thirty-two bytes".to_owned()));
    let mut crashing_env = env.clone();
    crashing_env.push(("SHOP_FAULT_ABORT_AFTER_CHARGE".to_owned(), "true".to_owned()));
    let mut crashing = ShopProcess::launch(&crashing_env, data_dir.path()).await;
    let base = crashing.base.clone();
    let sign_in = "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token } }";
    let admin = gql(&base, sign_in, json!({ "e": crate::helpers::ADMIN_EMAIL, "p": crate::helpers::PASSWORD }), None)
        .await["signIn"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    gql(&base, OFFER, json!({ "p": P1, "q": 5 }), Some(&admin)).await;
    let guest =
        gql(&base, "mutation { startGuestSession { token } }", json!({}), None).await["startGuestSession"]["token"]
            .as_str()
            .expect("token")
            .to_owned();
    gql(
        &base,
        "mutation { addCartItem(productId: \"prod-0000001\", quantity: 2) { version } }",
        json!({}),
        Some(&guest),
    )
    .await;
    let session = gql(&base, "mutation { initiateCheckout { id } }", json!({}), Some(&guest)).await["initiateCheckout"]
        ["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let input = order_input(&session, "pm_card_visa", "crash-key");
    let request = reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .bearer_auth(&guest)
        .json(&json!({ "query": PLACE, "variables": { "input": input } }))
        .send()
        .await;
    if let Ok(response) = request {
        panic!("the process should have died mid-request: {:?}", response.text().await);
    }
    let status = crashing.child.wait().expect("exit status");
    assert!(!status.success(), "aborted: {status}");
    let ledger_path = data_dir.path().join("test-gateway.jsonl");
    assert_eq!(charges(&TestGateway::read_ledger(&ledger_path).expect("ledger")), 1, "charged before the crash");

    let restarted = ShopProcess::launch(&env, data_dir.path()).await;
    // The dead request's lease (6 s with the test gateway) runs out, then recovery finishes it.
    let list = format!("{{ orders {{ edges {{ node {{ {ORDER} }} }} }} }}");
    let mut orders = Value::Null;
    for _ in 0..100 {
        orders = gql(&restarted.base, &list, json!({}), Some(&guest)).await;
        if orders["orders"]["edges"][0]["node"]["status"] == "PAID" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let order = &orders["orders"]["edges"][0]["node"];
    assert_eq!(order["status"], "PAID", "{orders:#}");
    assert_eq!(order["payment"]["status"], "COMPLETED");
    let replay = gql(&restarted.base, PLACE, json!({ "input": input }), Some(&guest)).await;
    assert_eq!(replay["placeOrder"]["id"], order["id"], "the key answers with the recovered order");
    assert_eq!(charges(&TestGateway::read_ledger(&ledger_path).expect("ledger")), 1, "still one charge");
    let product =
        gql(&restarted.base, "{ product(id: \"prod-0000001\") { availableQuantity } }", json!({}), None).await;
    assert_eq!(product["product"]["availableQuantity"], 3);
}

on_both_backends!(crash_recovery, |backend: Backend| async move {
    a_crash_after_the_charge_is_finished_at_restart(backend).await;
});
