//! Recommendations against a running server, on SQLite and PostgreSQL, over a small catalog of
//! known categories: RELATED puts the same kind first, COMPLEMENTARY learns what is bought
//! together, a view changes the caller's picks at once, bought and out-of-stock products are
//! left out, and a guest's history follows it into the account.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::checkout::{add, initiate, order_input, place};
use crate::helpers::{Backend, TestServer, error_code};
use crate::on_both_backends;

/// (id, category): four kinds of product, four or five of each.
const CATALOG: [(&str, &str); 17] = [
    ("rec-phone-1", "Tech/Phones/Smartphones"),
    ("rec-phone-2", "Tech/Phones/Smartphones"),
    ("rec-phone-3", "Tech/Phones/Smartphones"),
    ("rec-phone-4", "Tech/Phones/Smartphones"),
    ("rec-phone-5", "Tech/Phones/Smartphones"),
    ("rec-case-1", "Tech/Phones/Cases"),
    ("rec-case-2", "Tech/Phones/Cases"),
    ("rec-case-3", "Tech/Phones/Cases"),
    ("rec-case-4", "Tech/Phones/Cases"),
    ("rec-kettle-1", "Home/Kitchen/Kettles"),
    ("rec-kettle-2", "Home/Kitchen/Kettles"),
    ("rec-kettle-3", "Home/Kitchen/Kettles"),
    ("rec-kettle-4", "Home/Kitchen/Kettles"),
    ("rec-hose-1", "Home/Garden/Hoses"),
    ("rec-hose-2", "Home/Garden/Hoses"),
    ("rec-hose-3", "Home/Garden/Hoses"),
    ("rec-hose-4", "Home/Garden/Hoses"),
];

const UPSERT: &str = "mutation($id: ID!, $c: String!) { \
    adminUpsertProduct(input: { id: $id, title: $id, description: \"\", categoryPath: $c, priceCents: 1500 }) { id } \
    adminSetStock(productId: $id, quantity: 50) { id } }";
const RELATED: &str = "query($p: ID!, $i: RecommendationIntent, $n: Int) { \
    productRecommendations(productId: $p, intent: $i, first: $n) { id inStock category { path } } }";
const PICKS: &str = "query($n: Int) { recommendedProducts(first: $n) { id inStock category { path } } }";
const VIEW: &str = "mutation($p: ID!) { recordProductView(productId: $p) }";

async fn shop(backend: Backend) -> TestServer {
    let server = TestServer::start(backend).await;
    let admin = server.admin_token().await;
    for (id, category) in CATALOG {
        server.data(UPSERT, json!({ "id": id, "c": category }), Some(&admin)).await;
    }
    server
}

fn category_of(id: &str) -> &'static str {
    CATALOG.iter().find(|(p, _)| *p == id).map(|(_, c)| *c).expect("catalog product")
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array().expect("list").iter().map(|p| p["id"].as_str().expect("id").to_owned()).collect()
}

async fn related(server: &TestServer, product: &str, intent: &str, first: i32) -> Vec<String> {
    let data = server.data(RELATED, json!({ "p": product, "i": intent, "n": first }), None).await;
    ids(&data["productRecommendations"])
}

async fn picks(server: &TestServer, token: Option<&str>, first: i32) -> Vec<String> {
    ids(&server.data(PICKS, json!({ "n": first }), token).await["recommendedProducts"])
}

async fn set_stock(server: &TestServer, product: &str, quantity: i32) {
    let admin = server.admin_token().await;
    let query = "mutation($p: ID!, $q: Int!) { adminSetStock(productId: $p, quantity: $q) { id } }";
    server.data(query, json!({ "p": product, "q": quantity }), Some(&admin)).await;
}

/// Trains as the background worker would; waits while the worker itself holds the lease.
async fn train(server: &TestServer) {
    for _ in 0..100 {
        if server.app().recommendations.train().await.expect("training").is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the training lease stayed taken");
}

/// A paid order of these products in one basket.
async fn buy(server: &TestServer, token: &str, products: &[&str], key: &str) {
    for product in products {
        add(server, token, product, 1).await;
    }
    let session = initiate(server, token).await["data"]["initiateCheckout"]["id"].as_str().expect("session").to_owned();
    let order = place(server, token, order_input(&session, "pm_card_visa", key)).await;
    assert_eq!(order["data"]["placeOrder"]["status"], "PAID", "{order:#}");
}

on_both_backends!(
    related_products_are_of_the_same_kind_first_never_itself_nor_out_of_stock,
    |backend: Backend| async move {
        let server = shop(backend).await;
        set_stock(&server, "rec-phone-4", 0).await;
        let list = related(&server, "rec-phone-1", "RELATED", 10).await;
        assert!(!list.contains(&"rec-phone-1".to_owned()), "never the product itself: {list:?}");
        assert!(!list.contains(&"rec-phone-4".to_owned()), "never out of stock: {list:?}");
        let same_kind: HashSet<&str> = ["rec-phone-2", "rec-phone-3", "rec-phone-5"].into();
        let first_three: HashSet<&str> = list.iter().take(3).map(String::as_str).collect();
        assert_eq!(first_three, same_kind, "the same kind first: {list:?}");
        assert_eq!(related(&server, "rec-phone-1", "RELATED", 2).await.len(), 2, "first is honoured");
        assert!(related(&server, "rec-nothing", "RELATED", 10).await.is_empty(), "unknown product: empty list");
        assert!(related(&server, "not a valid id!", "COMPLEMENTARY", 10).await.is_empty());
    }
);

on_both_backends!(
    a_new_product_joins_its_kinds_related_list_once_the_held_list_is_read_again,
    |backend: Backend| async move {
        let server = shop(backend).await;
        assert!(!related(&server, "rec-phone-1", "RELATED", 10).await.contains(&"rec-phone-6".to_owned()));
        let admin = server.admin_token().await;
        server.data(UPSERT, json!({ "id": "rec-phone-6", "c": "Tech/Phones/Smartphones" }), Some(&admin)).await;
        // The held list is used until it is 1-2 s old; the request that finds it so hands it to
        // the worker, and a later request sees the list the worker read.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let list = related(&server, "rec-phone-1", "RELATED", 10).await;
            if list.contains(&"rec-phone-6".to_owned()) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the new phone never joined: {list:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
);

on_both_backends!(complementary_lists_what_was_bought_together_once_trained, |backend: Backend| async move {
    let server = shop(backend).await;
    let before = related(&server, "rec-phone-2", "COMPLEMENTARY", 3).await;
    assert!(
        before.iter().all(|id| category_of(id) == "Tech/Phones/Smartphones"),
        "no history yet: RELATED instead, {before:?}"
    );
    for n in 0..3 {
        let shopper = server.user_token().await;
        buy(&server, &shopper, &["rec-phone-2", "rec-case-3"], &format!("basket-{n}")).await;
    }
    let other = server.user_token().await;
    buy(&server, &other, &["rec-phone-2", "rec-kettle-1"], "odd-basket").await;
    train(&server).await;
    let after = related(&server, "rec-phone-2", "COMPLEMENTARY", 3).await;
    assert_eq!(after[..2], ["rec-case-3".to_owned(), "rec-kettle-1".to_owned()], "most often bought with it first");
    let from_the_case = related(&server, "rec-case-3", "COMPLEMENTARY", 1).await;
    assert_eq!(from_the_case, ["rec-phone-2"], "in both directions");
});

on_both_backends!(a_view_changes_the_picks_at_once_and_bought_products_are_left_out, |backend: Backend| async move {
    let server = shop(backend).await;
    let shopper = server.user_token().await;
    server.data(VIEW, json!({ "p": "rec-kettle-1" }), Some(&shopper)).await;
    let before = picks(&server, Some(&shopper), 10).await;
    assert!(before.contains(&"rec-kettle-2".to_owned()), "the same kind as viewed: {before:?}");
    // The server now holds the caller's activity; the order's event must make it let go.
    buy(&server, &shopper, &["rec-kettle-2"], "kettle").await;
    let started = std::time::Instant::now();
    while picks(&server, Some(&shopper), 10).await.contains(&"rec-kettle-2".to_owned()) {
        assert!(started.elapsed() < Duration::from_secs(2), "a bought product stayed in the picks");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    set_stock(&server, "rec-kettle-4", 0).await;

    let after_view = picks(&server, Some(&shopper), 10).await;
    let kettles: Vec<&String> = after_view.iter().filter(|id| category_of(id) == "Home/Kitchen/Kettles").collect();
    assert_eq!(
        kettles,
        [&"rec-kettle-3".to_owned()],
        "the same kind as just viewed, less bought, out of stock and viewed: {after_view:?}"
    );
    assert_eq!(after_view.first().map(String::as_str), Some("rec-kettle-3"), "{after_view:?}");

    server.data(VIEW, json!({ "p": "rec-hose-2" }), Some(&shopper)).await;
    let after_second = picks(&server, Some(&shopper), 4).await;
    assert_eq!(after_second.len(), 4);
    assert!(
        after_second.iter().filter(|id| category_of(id) == "Home/Garden/Hoses").count() >= 2,
        "the latest view leads: {after_second:?}"
    );
    assert!(!after_second.contains(&"rec-kettle-2".to_owned()), "never what the caller bought: {after_second:?}");
});

on_both_backends!(newcomers_get_the_trending_products, |backend: Backend| async move {
    let server = shop(backend).await;
    // Asked before the model knows anything: the list kept for everyone without a session
    // must not outlive the model it came from.
    let untrained = picks(&server, None, 10).await;
    for product in ["rec-hose-1", "rec-hose-1", "rec-case-2", "rec-kettle-3"] {
        let guest = server.guest_token().await;
        server.data(VIEW, json!({ "p": product }), Some(&guest)).await;
    }
    train(&server).await;
    let anonymous = picks(&server, None, 10).await;
    assert_eq!(anonymous.first().map(String::as_str), Some("rec-hose-1"), "the most viewed first: {anonymous:?}");
    assert_eq!(anonymous.len(), 3, "only products with a signal: {anonymous:?}");
    assert_ne!(anonymous, untrained);
    let newcomer = server.guest_token().await;
    assert_eq!(picks(&server, Some(&newcomer), 10).await, anonymous, "a newcomer sees the same");
});

on_both_backends!(a_guests_views_follow_it_into_the_account, |backend: Backend| async move {
    let server = shop(backend).await;
    let guest = server.guest_token().await;
    server.data(VIEW, json!({ "p": "rec-case-1" }), Some(&guest)).await;
    let signed_up = server
        .data(
            "mutation { signUp(email: \"viewer@example.com\", password: \"correct horse battery\", name: \"V\") { token } }",
            json!({}),
            Some(&guest),
        )
        .await;
    let token = signed_up["signUp"]["token"].as_str().expect("token");
    let own = picks(&server, Some(token), 3).await;
    assert_eq!(own.len(), 3, "the guest's view shapes the account's picks: {own:?}");
    assert!(own.iter().all(|id| category_of(id) == "Tech/Phones/Cases"), "{own:?}");
    assert!(!own.contains(&"rec-case-1".to_owned()));
});

on_both_backends!(recording_a_view_needs_a_token_and_a_known_product, |backend: Backend| async move {
    let server = shop(backend).await;
    let guest = server.guest_token().await;
    let anonymous = server.gql(VIEW, json!({ "p": "rec-case-1" }), None).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
    assert_eq!(error_code(&server.gql(VIEW, json!({ "p": "rec-nothing" }), Some(&guest)).await), "NOT_FOUND");
    assert_eq!(error_code(&server.gql(VIEW, json!({ "p": "no spaces!" }), Some(&guest)).await), "BAD_USER_INPUT");
    let negative = server.gql(PICKS, json!({ "n": -1 }), Some(&guest)).await;
    assert_eq!(error_code(&negative), "BAD_USER_INPUT");
    assert_eq!(server.data(VIEW, json!({ "p": "rec-case-1" }), Some(&guest)).await["recordProductView"], true);
});
