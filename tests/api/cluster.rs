//! Several instances behind a load balancer behave as one: two `shop` processes share
//! PostgreSQL and Redis; a subscription on one sees a change made on the other. And a Redis
//! outage degrades to the store without errors.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_EMAIL, Backend, PASSWORD, ServerOptions, Subscription, TestDatabase, TestServer, postgres_enabled, redis_url,
    unique_namespace,
};
use crate::on_both_backends;

struct Instance {
    base: String,
    child: Child,
    /// Each instance keeps its own search index beside it.
    _data_dir: tempfile::TempDir,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

async fn launch(db: &TestDatabase, namespace: &str, seed: &str) -> Instance {
    let port = free_port();
    let data_dir = tempfile::tempdir().expect("data dir");
    let child = Command::new(env!("CARGO_BIN_EXE_shop"))
        .arg("serve")
        .envs(db.env())
        .env("SHOP_DATA_DIR", data_dir.path())
        .env("SHOP_LISTEN", format!("127.0.0.1:{port}"))
        .env("SHOP_REDIS_URL", redis_url())
        .env("SHOP_REDIS_NAMESPACE", namespace)
        .env("SHOP_JWT_SECRET", "a shared secret of at least thirty-two bytes")
        .env("SHOP_SEED_PRODUCTS", seed)
        .env("SHOP_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("SHOP_ADMIN_PASSWORD", PASSWORD)
        .env("SHOP_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start shop");
    let instance = Instance { base: format!("http://127.0.0.1:{port}"), child, _data_dir: data_dir };
    let client = reqwest::Client::new();
    for _ in 0..400 {
        if client.get(format!("{}/readyz", instance.base)).send().await.is_ok_and(|r| r.status() == 200) {
            return instance;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("instance on port {port} never became ready");
}

async fn gql(base: &str, query: &str, variables: Value, token: Option<&str>) -> Value {
    let mut request =
        reqwest::Client::new().post(format!("{base}/graphql")).json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response: Value = request.send().await.expect("request").json().await.expect("json");
    assert!(response.get("errors").is_none(), "{response:#}");
    response["data"].clone()
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

    let sign_in = "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token } }";
    let admin = gql(&b.base, sign_in, json!({ "e": ADMIN_EMAIL, "p": PASSWORD }), None).await["signIn"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    gql(
        &b.base,
        "mutation { adminSetStock(productId: \"prod-0000001\", quantity: 10) { id } }",
        json!({}),
        Some(&admin),
    )
    .await;
    let sign_up =
        "mutation { signUp(email: \"hal@example.com\", password: \"correct horse battery\", name: \"Hal\") { token } }";
    let user = gql(&a.base, sign_up, json!({}), None).await["signUp"]["token"].as_str().expect("token").to_owned();

    let ws_a = format!("{}/graphql/ws", a.base.replace("http://", "ws://"));
    let mut on_a = Subscription::start(&ws_a, &user, "subscription { cartUpdated { version totalQuantity } }").await;
    assert_eq!(on_a.next().await["cartUpdated"]["version"], 0);

    let add = "mutation { addCartItem(productId: \"prod-0000001\", quantity: 2) { version } }";
    for expected in 1..=3 {
        let written = gql(&b.base, add, json!({}), Some(&user)).await;
        assert_eq!(written["addCartItem"]["version"], expected);
        let pushed = on_a.next().await["cartUpdated"].clone();
        assert_eq!(
            (pushed["version"].as_i64(), pushed["totalQuantity"].as_i64()),
            (Some(expected), Some(2 * expected))
        );
        let read_on_a = gql(&a.base, "{ cart { version } }", json!({}), Some(&user)).await;
        assert_eq!(read_on_a["cart"]["version"], expected, "the shared cache never serves an older cart");
    }

    // A catalog change made through B reaches A's own search index.
    let upsert = "mutation { adminUpsertProduct(input: { id: \"kazoo-1\", title: \"Quartzline Kazoo\", description: \"\", priceCents: 499 }) { id } }";
    gql(&b.base, upsert, json!({}), Some(&admin)).await;
    let started = std::time::Instant::now();
    loop {
        let found =
            gql(&a.base, "{ searchProducts(query: \"quartzline kazoo\") { totalCount } }", json!({}), None).await;
        if found["searchProducts"]["totalCount"] == 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(2), "instance A's index did not follow: {found}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn unreachable_redis(config: &mut shop::config::Config) {
    config.redis_url = Some("redis://127.0.0.1:1".to_owned());
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
});
