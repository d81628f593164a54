//! Carts over GraphQL, websockets and REST: rules, ownership, concurrency, merge, live sync.

use chrono::{Duration, Utc};
use serde_json::{Value, json};
use shop::domain::clock::ManualClock;

use crate::helpers::{Backend, PASSWORD, ServerOptions, Subscription, TestServer, error_code};
use crate::on_both_backends;

const CART: &str = "{ cart { id version totalQuantity subtotal { centAmount currencyCode } items { product { id } quantity unitPrice { centAmount } lineTotal { centAmount } currentPrice { centAmount } priceChanged } } }";
const FIELDS: &str = "id version totalQuantity items { product { id } quantity unitPrice { centAmount } }";
const SUBSCRIBE: &str = "subscription { cartUpdated { version totalQuantity items { product { id } quantity } } }";

async fn shop(backend: Backend, options: ServerOptions) -> TestServer {
    TestServer::start_with(backend, ServerOptions { seed_products: 20, ..options }).await
}

async fn set_stock(server: &TestServer, product: &str, quantity: i32) {
    let admin = server.admin_token().await;
    server
        .data(
            "mutation($p: ID!, $q: Int!) { adminSetStock(productId: $p, quantity: $q) { id } }",
            json!({ "p": product, "q": quantity }),
            Some(&admin),
        )
        .await;
}

/// Runs `addCartItem` or `updateCartItem`; returns the whole response.
async fn change(server: &TestServer, token: &str, mutation: &str, product: &str, quantity: i32) -> Value {
    let query = format!("mutation($p: ID!, $q: Int!) {{ {mutation}(productId: $p, quantity: $q) {{ {FIELDS} }} }}");
    server.gql(&query, json!({ "p": product, "q": quantity }), Some(token)).await
}

async fn add(server: &TestServer, token: &str, product: &str, quantity: i32) -> Value {
    change(server, token, "addCartItem", product, quantity).await
}

async fn update(server: &TestServer, token: &str, product: &str, quantity: i32) -> Value {
    change(server, token, "updateCartItem", product, quantity).await
}

async fn cart(server: &TestServer, token: &str) -> Value {
    server.data(CART, json!({}), Some(token)).await["cart"].clone()
}

fn quantities(cart: &Value) -> Vec<(String, i64)> {
    cart["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| (i["product"]["id"].as_str().expect("id").to_owned(), i["quantity"].as_i64().expect("quantity")))
        .collect()
}

const P1: &str = "prod-0000001";
const P2: &str = "prod-0000002";
const P3: &str = "prod-0000003";

on_both_backends!(a_cart_changes_one_version_at_a_time, |backend: Backend| async move {
    let server = shop(backend, ServerOptions::default()).await;
    set_stock(&server, P1, 50).await;
    set_stock(&server, P2, 50).await;
    let guest = server.guest_token().await;
    let empty = cart(&server, &guest).await;
    assert_eq!((empty["version"].as_i64(), empty["totalQuantity"].as_i64()), (Some(0), Some(0)));
    assert!(empty["id"].as_str().is_some_and(|id| id.starts_with("cart-")));

    add(&server, &guest, P1, 2).await;
    let after = add(&server, &guest, P1, 1).await["data"]["addCartItem"].clone();
    assert_eq!((after["version"].as_i64(), quantities(&after)), (Some(2), vec![(P1.to_owned(), 3)]));
    assert_eq!(after["id"], empty["id"], "the empty cart already showed the id it keeps");
    add(&server, &guest, P2, 1).await;
    let updated = update(&server, &guest, P1, 5).await["data"]["updateCartItem"].clone();
    assert_eq!(
        quantities(&updated),
        vec![(P1.to_owned(), 5), (P2.to_owned(), 1)],
        "lines stay in the order they were added"
    );
    let removed = update(&server, &guest, P1, 0).await["data"]["updateCartItem"].clone();
    assert_eq!((removed["version"].as_i64(), quantities(&removed)), (Some(5), vec![(P2.to_owned(), 1)]));
    let noop = server
        .data(&format!("mutation {{ removeCartItem(productId: \"{P3}\") {{ {FIELDS} }} }}"), json!({}), Some(&guest))
        .await;
    assert_eq!(noop["removeCartItem"]["version"], 5, "removing an absent line is a no-op");

    let full = cart(&server, &guest).await;
    let unit = full["items"][0]["unitPrice"]["centAmount"].as_i64().expect("price");
    assert_eq!(full["subtotal"]["centAmount"].as_i64(), Some(unit));
    assert_eq!(full["items"][0]["lineTotal"]["centAmount"].as_i64(), Some(unit));
});

on_both_backends!(prices_are_captured_when_added, |backend: Backend| async move {
    let server = shop(backend, ServerOptions::default()).await;
    let guest = server.guest_token().await;
    for product in [P2, P1, P3] {
        set_stock(&server, product, 10).await;
        add(&server, &guest, product, 2).await;
    }
    // The cart read keeps the three products in the read cache; repricing P1 drops it alone, so
    // the next read takes P2 and P3 from the cache and P1 from the store, and keeps line order.
    let before = cart(&server, &guest).await["items"][1].clone();
    assert_eq!(before["priceChanged"], false);
    let admin = server.admin_token().await;
    let upsert = "mutation($i: ProductInput!) { adminUpsertProduct(input: $i) { id } }";
    server
        .data(
            upsert,
            json!({ "i": { "id": P1, "title": "Repriced", "description": "", "priceCents": 123 } }),
            Some(&admin),
        )
        .await;
    let repriced = cart(&server, &guest).await;
    let in_order: Vec<String> = quantities(&repriced).into_iter().map(|(id, _)| id).collect();
    assert_eq!(in_order, [P2, P1, P3], "lines keep their order whichever products were cached");
    let after = repriced["items"][1].clone();
    assert_eq!(after["unitPrice"], before["unitPrice"]);
    assert_eq!(after["currentPrice"]["centAmount"], 123);
    assert_eq!(after["priceChanged"], true);
    for unchanged in [0, 2] {
        assert_eq!(repriced["items"][unchanged]["priceChanged"], false, "line {unchanged}");
    }
});

on_both_backends!(bad_cart_input_is_refused_and_changes_nothing, |backend: Backend| async move {
    let server = shop(backend, ServerOptions::default()).await;
    set_stock(&server, P1, 4).await;
    let guest = server.guest_token().await;
    add(&server, &guest, P1, 1).await;
    for quantity in [0, -1, 100, i32::MAX] {
        assert_eq!(error_code(&add(&server, &guest, P1, quantity).await), "BAD_USER_INPUT", "add {quantity}");
    }
    for quantity in [-1, 100] {
        assert_eq!(error_code(&update(&server, &guest, P1, quantity).await), "BAD_USER_INPUT", "update {quantity}");
    }
    assert_eq!(error_code(&add(&server, &guest, "prod-9999999", 1).await), "NOT_FOUND");
    assert_eq!(error_code(&add(&server, &guest, "not an id!", 1).await), "BAD_USER_INPUT");
    let short = add(&server, &guest, P1, 4).await;
    assert_eq!(error_code(&short), "OUT_OF_STOCK");
    assert_eq!(short["errors"][0]["extensions"]["lines"], json!([{ "productId": P1, "requested": 5, "available": 4 }]));
    assert_eq!(error_code(&update(&server, &guest, P1, 5).await), "OUT_OF_STOCK");
    let anonymous = server.gql(CART, json!({}), None).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
    let unchanged = cart(&server, &guest).await;
    assert_eq!((unchanged["version"].as_i64(), quantities(&unchanged)), (Some(1), vec![(P1.to_owned(), 1)]));
});

on_both_backends!(a_cart_total_past_the_largest_amount_is_refused, |backend: Backend| async move {
    let server = shop(backend, ServerOptions::default()).await;
    set_stock(&server, P1, 10).await;
    let admin = server.admin_token().await;
    // $15,000,000.00: two of them make more than a GraphQL Int (2,147,483,647) can carry.
    let reprice = json!({ "i": { "id": P1, "title": "Yacht", "description": "", "priceCents": 1_500_000_000 } });
    server.data("mutation($i: ProductInput!) { adminUpsertProduct(input: $i) { id } }", reprice, Some(&admin)).await;
    let guest = server.guest_token().await;
    add(&server, &guest, P1, 1).await;
    let refused = add(&server, &guest, P1, 1).await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT", "{refused}");
    assert_eq!(error_code(&update(&server, &guest, P1, 2).await), "BAD_USER_INPUT");
    let unchanged = cart(&server, &guest).await;
    assert_eq!(unchanged["subtotal"]["centAmount"], 1_500_000_000, "never clamped");
    assert_eq!((unchanged["version"].as_i64(), quantities(&unchanged)), (Some(1), vec![(P1.to_owned(), 1)]));
});

fn two_lines(config: &mut shop::config::Config) {
    config.cart_max_lines = 2;
}

on_both_backends!(a_cart_holds_a_limited_number_of_lines, |backend: Backend| async move {
    let server = shop(backend, ServerOptions { tweak: two_lines, ..Default::default() }).await;
    for product in [P1, P2, P3] {
        set_stock(&server, product, 5).await;
    }
    let guest = server.guest_token().await;
    add(&server, &guest, P1, 1).await;
    add(&server, &guest, P2, 1).await;
    let third = add(&server, &guest, P3, 1).await;
    assert_eq!(error_code(&third), "BAD_USER_INPUT");
    assert!(third["errors"][0]["message"].as_str().is_some_and(|m| m.contains("at most 2 lines")));
});

on_both_backends!(carts_are_private_and_shared_by_a_users_devices, |backend: Backend| async move {
    let server = shop(backend, ServerOptions::default()).await;
    set_stock(&server, P1, 10).await;
    let (phone, _) = server.sign_up("alice@example.com").await;
    let laptop = server.sign_in("alice@example.com", PASSWORD).await["data"]["signIn"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    add(&server, &phone, P1, 2).await;
    assert_eq!(quantities(&cart(&server, &laptop).await), vec![(P1.to_owned(), 2)]);
    let bob = server.user_token().await;
    let guest = server.guest_token().await;
    assert_eq!(cart(&server, &bob).await["totalQuantity"], 0);
    assert_eq!(cart(&server, &guest).await["totalQuantity"], 0);
    assert_ne!(cart(&server, &bob).await["id"], cart(&server, &phone).await["id"]);
});

on_both_backends!(concurrent_adds_from_two_devices_add_up_exactly, |backend: Backend| async move {
    let server = std::sync::Arc::new(shop(backend, ServerOptions::default()).await);
    set_stock(&server, P1, 1000).await;
    let (phone, _) = server.sign_up("carol@example.com").await;
    let laptop = server.sign_in("carol@example.com", PASSWORD).await["data"]["signIn"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let adds: Vec<_> = (0..20)
        .map(|i| {
            let server = server.clone();
            let token = if i % 2 == 0 { phone.clone() } else { laptop.clone() };
            tokio::spawn(async move { add(&server, &token, P1, 1).await })
        })
        .collect();
    let mut versions = Vec::new();
    for add in adds {
        let response = add.await.expect("task");
        versions.push(response["data"]["addCartItem"]["version"].as_i64().unwrap_or_else(|| panic!("{response}")));
    }
    versions.sort();
    assert_eq!(versions, (1..=20).collect::<Vec<_>>(), "each change got its own version");
    let final_cart = cart(&server, &phone).await;
    assert_eq!((final_cart["version"].as_i64(), quantities(&final_cart)), (Some(20), vec![(P1.to_owned(), 20)]));
});

// Changes of many carts at once are written together: each still gets its own version, and
// each owner is told of their own cart's changes and of nobody else's.
on_both_backends!(carts_changed_at_once_each_announce_their_own_change, |backend: Backend| async move {
    let server = std::sync::Arc::new(shop(backend, ServerOptions::default()).await);
    set_stock(&server, P1, 1000).await;
    let mut shoppers = Vec::new();
    for _ in 0..24 {
        let token = server.guest_token().await;
        let mut watch = Subscription::start(&server.ws_url(), &token, SUBSCRIBE).await;
        assert_eq!(watch.next().await["cartUpdated"]["version"], 0, "an empty cart first");
        shoppers.push((token, watch));
    }
    // Two rounds of changes: the first creates each cart, the second changes it.
    for quantity in [1, 2] {
        let changes: Vec<_> = shoppers
            .iter()
            .enumerate()
            .map(|(i, (token, _))| {
                let (server, token) = (server.clone(), token.clone());
                tokio::spawn(async move { update(&server, &token, P1, (quantity - 1) * 50 + 1 + i as i32).await })
            })
            .collect();
        for change in changes {
            let response = change.await.expect("task");
            assert_eq!(response["data"]["updateCartItem"]["version"], quantity, "{response}");
        }
    }
    for (i, (_, watch)) in shoppers.iter_mut().enumerate() {
        for quantity in [1, 2] {
            let pushed = watch.next().await["cartUpdated"].clone();
            let own = (quantity - 1) * 50 + 1 + i as i64;
            assert_eq!((pushed["version"].as_i64(), pushed["totalQuantity"].as_i64()), (Some(quantity), Some(own)));
        }
    }
});

on_both_backends!(signing_in_merges_the_guest_cart, |backend: Backend| async move {
    let server = shop(backend, ServerOptions::default()).await;
    set_stock(&server, P1, 10).await;
    set_stock(&server, P2, 2).await;
    let (earlier_session, _) = server.sign_up("dave@example.com").await;
    add(&server, &earlier_session, P1, 1).await;
    let mut other_device = Subscription::start(&server.ws_url(), &earlier_session, SUBSCRIBE).await;
    assert_eq!(other_device.next().await["cartUpdated"]["version"], 1);

    let guest = server.guest_token().await;
    add(&server, &guest, P1, 2).await;
    add(&server, &guest, P2, 2).await;
    set_stock(&server, P2, 1).await;
    let sign_in = "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token cappedCartLines { productId requested kept } } }";
    let signed_in = server.gql(sign_in, json!({ "e": "dave@example.com", "p": PASSWORD }), Some(&guest)).await;
    let payload = &signed_in["data"]["signIn"];
    assert_eq!(payload["cappedCartLines"], json!([{ "productId": P2, "requested": 2, "kept": 1 }]));
    let user = payload["token"].as_str().expect("token");
    let merged = cart(&server, user).await;
    assert_eq!(quantities(&merged), vec![(P1.to_owned(), 3), (P2.to_owned(), 1)]);
    assert_eq!(cart(&server, &guest).await["totalQuantity"], 0, "the guest token still works, its cart is empty");
    let pushed = other_device.next().await["cartUpdated"].clone();
    assert_eq!(
        (pushed["version"].as_i64(), pushed["totalQuantity"].as_i64()),
        (Some(2), Some(4)),
        "the merge is pushed too"
    );

    // Again with the same (now empty) guest cart, and without a guest token: nothing changes.
    let again = server.gql(sign_in, json!({ "e": "dave@example.com", "p": PASSWORD }), Some(&guest)).await;
    assert_eq!(again["data"]["signIn"]["cappedCartLines"], json!([]));
    server.gql(sign_in, json!({ "e": "dave@example.com", "p": PASSWORD }), None).await;
    assert_eq!(cart(&server, user).await["version"], merged["version"]);
});

on_both_backends!(signing_up_keeps_the_guest_cart, |backend: Backend| async move {
    let server = shop(backend, ServerOptions::default()).await;
    set_stock(&server, P1, 10).await;
    let guest = server.guest_token().await;
    add(&server, &guest, P1, 3).await;
    let sign_up = "mutation { signUp(email: \"erin@example.com\", password: \"correct horse battery\", name: \"Erin\") { token } }";
    let user =
        server.data(sign_up, json!({}), Some(&guest)).await["signUp"]["token"].as_str().expect("token").to_owned();
    assert_eq!(quantities(&cart(&server, &user).await), vec![(P1.to_owned(), 3)]);
    assert_eq!(cart(&server, &guest).await["totalQuantity"], 0);
});

async fn every_device_sees_every_change(backend: Backend, redis: bool) {
    let server = shop(backend, ServerOptions { redis, ..Default::default() }).await;
    set_stock(&server, P1, 100).await;
    let (phone, _) = server.sign_up("frank@example.com").await;
    let laptop = server.sign_in("frank@example.com", PASSWORD).await["data"]["signIn"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    add(&server, &phone, P1, 1).await;
    let mut on_phone = Subscription::start(&server.ws_url(), &phone, SUBSCRIBE).await;
    let mut on_laptop = Subscription::start(&server.ws_url(), &laptop, SUBSCRIBE).await;
    for device in [&mut on_phone, &mut on_laptop] {
        assert_eq!(device.next().await["cartUpdated"]["version"], 1, "the current cart comes first");
    }
    let tablet = server.sign_in("frank@example.com", PASSWORD).await["data"]["signIn"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    for quantity in 2..=6 {
        update(&server, &tablet, P1, quantity).await;
    }
    for device in [&mut on_phone, &mut on_laptop] {
        for version in 2..=6 {
            let pushed = device.next().await["cartUpdated"].clone();
            assert_eq!((pushed["version"].as_i64(), pushed["totalQuantity"].as_i64()), (Some(version), Some(version)));
        }
    }
    // Someone else's change is not pushed to this user.
    let stranger = server.user_token().await;
    add(&server, &stranger, P1, 1).await;
    update(&server, &tablet, P1, 7).await;
    assert_eq!(on_phone.next().await["cartUpdated"]["version"], 7);
    // A reconnecting device gets the current cart first.
    let mut again = Subscription::start(&server.ws_url(), &laptop, SUBSCRIBE).await;
    assert_eq!(again.next().await["cartUpdated"]["version"], 7);
}

on_both_backends!(every_device_sees_every_change_in_process, |backend: Backend| every_device_sees_every_change(
    backend, false
));
on_both_backends!(every_device_sees_every_change_through_redis, |backend: Backend| every_device_sees_every_change(
    backend, true
));

on_both_backends!(subscriptions_need_a_session, |backend: Backend| async move {
    let server = shop(backend, ServerOptions::default()).await;
    let guest = server.guest_token().await;
    let mut subscription = Subscription::start(&server.ws_url(), &guest, SUBSCRIBE).await;
    assert_eq!(subscription.next().await["cartUpdated"]["version"], 0, "guests subscribe to their cart too");
    let raw = Subscription::start_anonymous(&server.ws_url(), SUBSCRIBE).await.next_message().await;
    assert_eq!(raw["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{raw}");
});

fn long_lived_tokens(config: &mut shop::config::Config) {
    config.access_token_ttl = Duration::days(365);
    config.guest_token_ttl = Duration::days(365);
}

on_both_backends!(guest_carts_expire_a_day_after_their_last_change, |backend: Backend| async move {
    let clock = ManualClock::new(Utc::now());
    let server =
        shop(backend, ServerOptions { clock: Some(clock.clone()), tweak: long_lived_tokens, ..Default::default() })
            .await;
    set_stock(&server, P1, 10).await;
    let guest = server.guest_token().await;
    let (user, _) = server.sign_up("gina@example.com").await;
    add(&server, &guest, P1, 1).await;
    add(&server, &user, P1, 1).await;
    clock.advance(Duration::hours(23));
    assert_eq!(server.app().carts.sweep_expired().await.expect("sweep"), 0);
    clock.advance(Duration::hours(2));
    assert_eq!(cart(&server, &guest).await["totalQuantity"], 0, "an expired cart reads as empty at once");
    assert_eq!(server.app().carts.sweep_expired().await.expect("sweep"), 1, "only the guest cart");
    assert_eq!(cart(&server, &user).await["totalQuantity"], 1);
    clock.advance(Duration::days(91));
    assert_eq!(server.app().carts.sweep_expired().await.expect("sweep"), 1, "user carts go after 90 untouched days");
});

on_both_backends!(the_rest_facade_follows_the_same_rules, |backend: Backend| async move {
    let server = shop(backend, ServerOptions::default()).await;
    set_stock(&server, P1, 3).await;
    let guest = server.guest_token().await;
    let post = |body: Value, token: Option<String>| {
        let mut request = server.client.post(server.url("/cart/items")).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let added = post(json!({ "productId": P1, "quantity": 2 }), Some(guest.clone())).await.expect("post");
    assert_eq!(added.status(), 200);
    let body: Value = added.json().await.expect("json");
    assert_eq!((body["version"].as_i64(), body["items"][0]["quantity"].as_i64()), (Some(1), Some(2)));
    assert_eq!(body["items"][0]["product"]["id"], P1);

    let short = post(json!({ "productId": P1, "quantity": 2 }), Some(guest.clone())).await.expect("post");
    assert_eq!(short.status(), 409);
    let body: Value = short.json().await.expect("json");
    assert_eq!(body["error"]["code"], "OUT_OF_STOCK");
    assert_eq!(body["error"]["lines"], json!([{ "productId": P1, "requested": 4, "available": 3 }]));
    let malformed = post(json!({ "productId": P1 }), Some(guest.clone())).await.expect("post");
    assert_eq!(malformed.status(), 400);
    assert_eq!(malformed.json::<Value>().await.expect("json")["error"]["code"], "BAD_USER_INPUT");
    let anonymous = post(json!({ "productId": P1, "quantity": 1 }), None).await.expect("post");
    assert_eq!(anonymous.status(), 401);

    let current = server.client.get(server.url("/cart")).bearer_auth(&guest).send().await.expect("get");
    assert_eq!(current.json::<Value>().await.expect("json")["totalQuantity"], 2);
});
