//! Abuse limits: rate limits per address, account and caller (contract note 17), in process and
//! in Redis shared by instances, and the query cost of note 18 as clients meet it.

use std::time::Duration;

use serde_json::{Value, json};
use shop::config::Config;
use shop::domain::limits::{Acquire, Admission, Quota};
use shop::kv::connect_redis;

use crate::helpers::{Backend, PASSWORD, ServerOptions, TestServer, error_code, redis_url, unique_namespace};
use crate::on_both_backends;

const SIGN_IN: &str = "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token } }";

/// Small quotas, so that a test reaches them in a few calls; the proxy on 127.0.0.1 is trusted.
fn small_limits(config: &mut Config) {
    config.rate_limits.enabled = true;
    config.rate_limits.sign_in_attempts = Quota::per_minute(4);
    config.rate_limits.failed_sign_ins = Quota::per_minute(2);
    config.rate_limits.guest_sessions = Quota::per_minute(2);
    config.rate_limits.shopper_writes = Quota::per_minute(3);
    config.trusted_proxies = vec!["127.0.0.1".parse().expect("address")];
}

async fn limited_server(backend: Backend, redis: bool) -> TestServer {
    let options = ServerOptions { seed_products: 5, tweak: small_limits, redis, ..Default::default() };
    TestServer::start_with(backend, options).await
}

/// A GraphQL request as if through the trusted proxy from `client`.
async fn gql_from(server: &TestServer, client: &str, query: &str, variables: Value, token: Option<&str>) -> Value {
    let mut request = server.client.post(server.url("/graphql")).header("x-forwarded-for", client).json(&json!({
        "query": query, "variables": variables
    }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("post").json().await.expect("json")
}

fn retry_after(response: &Value) -> u64 {
    response["errors"][0]["extensions"]["retryAfterSeconds"].as_u64().unwrap_or_else(|| panic!("{response:#}"))
}

on_both_backends!(sign_in_attempts_are_limited_per_client_address, |backend: Backend| async move {
    let server = limited_server(backend, false).await;
    // A new account each time, so that only the address's allowance runs out.
    let attempt = |client: &'static str| {
        let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
        gql_from(&server, client, SIGN_IN, json!({ "e": email, "p": "wrong password" }), None)
    };
    for _ in 0..4 {
        assert_eq!(error_code(&attempt("203.0.113.1").await), "UNAUTHENTICATED");
    }
    let refused = attempt("203.0.113.1").await;
    assert_eq!(error_code(&refused), "RATE_LIMITED", "{refused:#}");
    assert!((1..=60).contains(&retry_after(&refused)), "{refused:#}");
    assert_eq!(refused["errors"][0]["path"], json!(["signIn"]));
    assert_eq!(error_code(&attempt("203.0.113.2").await), "UNAUTHENTICATED", "another address has its own allowance");
});

on_both_backends!(failed_sign_ins_lock_the_account_and_not_the_address, |backend: Backend| async move {
    let server = limited_server(backend, false).await;
    server.sign_up("locked@example.com").await;
    server.sign_up("other@example.com").await;
    let sign_in = |client: &'static str, email: &'static str, password: &'static str| {
        gql_from(&server, client, SIGN_IN, json!({ "e": email, "p": password }), None)
    };
    assert_eq!(error_code(&sign_in("203.0.113.10", "locked@example.com", "wrong password").await), "UNAUTHENTICATED");
    assert_eq!(error_code(&sign_in("203.0.113.11", "locked@example.com", "wrong password").await), "UNAUTHENTICATED");
    let locked = sign_in("203.0.113.12", "LOCKED@example.com", PASSWORD).await;
    assert_eq!(error_code(&locked), "RATE_LIMITED", "even the right password waits: {locked:#}");
    assert!(retry_after(&locked) >= 1);
    let other = sign_in("203.0.113.10", "other@example.com", PASSWORD).await;
    assert!(other["data"]["signIn"]["token"].is_string(), "{other:#}");
});

on_both_backends!(aliased_guest_sessions_past_the_limit_fail_one_by_one, |backend: Backend| async move {
    let server = limited_server(backend, false).await;
    let aliased = "mutation { a: startGuestSession { token } b: startGuestSession { token } \
                   c: startGuestSession { token } }";
    let response = gql_from(&server, "198.51.100.7", aliased, json!({}), None).await;
    assert!(response["data"]["a"]["token"].is_string() && response["data"]["b"]["token"].is_string(), "{response:#}");
    let errors = response["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{response:#}");
    assert_eq!((errors[0]["extensions"]["code"].as_str(), &errors[0]["path"]), (Some("RATE_LIMITED"), &json!(["c"])));
});

on_both_backends!(cart_writes_are_limited_per_caller_over_graphql_and_rest, |backend: Backend| async move {
    let server = limited_server(backend, false).await;
    cart_writes_are_limited(&server).await;
});

/// Three writes a minute per caller: the fourth is refused (GraphQL), the caller's REST call
/// answers 429 with `Retry-After`, and another caller is untouched.
async fn cart_writes_are_limited(server: &TestServer) {
    let add = "mutation { addCartItem(productId: \"prod-0000001\", quantity: 1) { totalQuantity } }";
    let mine = server.guest_token().await;
    for expected in 1..=3 {
        let data = server.data(add, json!({}), Some(&mine)).await;
        assert_eq!(data["addCartItem"]["totalQuantity"], expected);
    }
    let refused = server.gql(add, json!({}), Some(&mine)).await;
    assert_eq!(error_code(&refused), "RATE_LIMITED", "{refused:#}");
    let rest = server
        .client
        .post(server.url("/cart/items"))
        .bearer_auth(&mine)
        .json(&json!({ "productId": "prod-0000001", "quantity": 1 }))
        .send()
        .await
        .expect("post");
    assert_eq!(rest.status(), 429);
    let wait: u64 = rest.headers()["retry-after"].to_str().expect("header").parse().expect("seconds");
    assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    let body: Value = rest.json().await.expect("json");
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    let cart = server.data("{ cart { totalQuantity } }", json!({}), Some(&mine)).await;
    assert_eq!(cart["cart"]["totalQuantity"], 3, "refused writes changed nothing");
    let theirs = server.guest_token().await;
    assert_eq!(server.data(add, json!({}), Some(&theirs)).await["addCartItem"]["totalQuantity"], 1);
}

on_both_backends!(cart_writes_are_limited_through_redis, |backend: Backend| async move {
    let server = limited_server(backend, true).await;
    cart_writes_are_limited(&server).await;
});

/// Two instances (two Redis clients on one namespace) share each key's allowance exactly, however
/// the attempts interleave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_share_one_allowance_in_redis() {
    let namespace = unique_namespace();
    let a = connect_redis(&redis_url(), &namespace).await.expect("redis").rate_limiter();
    let b = connect_redis(&redis_url(), &namespace).await.expect("redis").rate_limiter();
    let quota = Quota::per_minute(20);
    let attempts = (0..60).map(|i| {
        let limiter = if i % 2 == 0 { a.clone() } else { b.clone() };
        tokio::spawn(async move { limiter.acquire("shared", quota, Acquire::Take).await })
    });
    let mut allowed = 0;
    let mut waits = Vec::new();
    for attempt in attempts {
        match attempt.await.expect("task").expect("acquire") {
            Admission::Allowed => allowed += 1,
            Admission::RetryAfter(wait) => waits.push(wait),
        }
    }
    assert_eq!(allowed, 20);
    assert!(waits.iter().all(|wait| *wait > Duration::ZERO && *wait <= Duration::from_secs(3)), "{waits:?}");
}

on_both_backends!(switched_off_limits_let_load_tests_through, |backend: Backend| async move {
    let server = TestServer::start(backend).await;
    for _ in 0..40 {
        server.guest_token().await;
    }
});

on_both_backends!(costly_queries_are_refused_whole_before_they_run, |backend: Backend| async move {
    let server = TestServer::start_with(backend, ServerOptions { seed_products: 5, ..Default::default() }).await;
    let nested = "{ categories { children { parent { children { parent { children { name } } } } } } }";
    let refused = server.gql(nested, json!({}), None).await;
    assert_eq!(error_code(&refused), "QUERY_TOO_COMPLEX", "{refused:#}");
    let message = refused["errors"][0]["message"].as_str().expect("message");
    assert!(message.contains("exceeds the limit of 25000"), "{message}");
    let menu = "{ categories { name children { name children { name } } } }";
    assert!(server.data(menu, json!({}), None).await["categories"].is_array());

    let guest = server.guest_token().await;
    let eleven: String =
        (0..11).map(|i| format!("a{i}: removeCartItem(productId: \"prod-0000001\") {{ id }} ")).collect();
    let refused = server.gql(&format!("mutation {{ {eleven} }}"), json!({}), Some(&guest)).await;
    assert_eq!(error_code(&refused), "QUERY_TOO_COMPLEX");
    assert_eq!(refused["data"], Value::Null, "nothing ran");

    let brands: Vec<String> = (0..2_000).map(|i| format!("brand {i}")).collect();
    let search = "query($f: ProductFilter) { searchProducts(filter: $f) { totalCount } }";
    let refused = server.gql(search, json!({ "f": { "brands": brands } }), None).await;
    assert_eq!(error_code(&refused), "QUERY_TOO_COMPLEX");
    assert!(refused["errors"][0]["message"].as_str().is_some_and(|m| m.contains("filter.brands")), "{refused:#}");
    let few = server.data(search, json!({ "f": { "brands": ["brand 1"] } }), None).await;
    assert!(few["searchProducts"]["totalCount"].is_number());
    // The same document again: kept parsed, its cost still depends on this request's variables.
    let refused = server.gql(search, json!({ "f": { "brands": brands } }), None).await;
    assert_eq!(error_code(&refused), "QUERY_TOO_COMPLEX");
});
