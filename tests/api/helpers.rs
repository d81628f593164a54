//! Test harness: a real server on a loopback port over a fresh store (a temp SQLite file, or a
//! PostgreSQL schema of its own that is dropped afterwards), and a small GraphQL client.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use shop::app::AppContext;
use shop::config::{Config, Secret};
use shop::db::Pool;
use shop::domain::cart::CartLine;
use shop::domain::clock::{ManualClock, SystemClock};
use shop::domain::primitives::Money;
use shop::ports::Clock;
use shop::server::{self, RunningServer};
use shop::services::catalog::CatalogService;

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const PASSWORD: &str = "correct horse battery";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs an async test body once per backend. PostgreSQL runs unless SHOP_TEST_POSTGRES=off,
/// which CI refuses: there it must fail, never skip, when PostgreSQL is unreachable.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)($crate::helpers::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::helpers::postgres_enabled() {
                    ($body)($crate::helpers::Backend::Postgres).await;
                }
            }
        }
    };
}

pub fn postgres_enabled() -> bool {
    let off = std::env::var("SHOP_TEST_POSTGRES").is_ok_and(|v| v == "off");
    let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    assert!(!(off && in_ci), "SHOP_TEST_POSTGRES=off is not allowed in CI: the PostgreSQL suite must run");
    if off {
        eprintln!("PostgreSQL tests skipped (SHOP_TEST_POSTGRES=off)");
    }
    !off
}

fn postgres_base_url() -> String {
    std::env::var("SHOP_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A fresh, empty store location that cleans up after itself.
pub struct TestDatabase {
    pub url: Option<String>,
    pub data_dir: tempfile::TempDir,
    schema: Option<String>,
}

impl TestDatabase {
    pub async fn new(backend: Backend) -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => Self { url: None, data_dir, schema: None },
            Backend::Postgres => {
                let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
                run_postgres(&format!("CREATE SCHEMA {schema}")).await;
                let base = postgres_base_url();
                let separator = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{separator}options=-csearch_path%3D{schema}");
                Self { url: Some(url), data_dir, schema: Some(schema) }
            }
        }
    }

    pub fn config(&self) -> Config {
        let mut vars: HashMap<String, String> = HashMap::from([
            ("SHOP_LISTEN".into(), "127.0.0.1:0".into()),
            ("SHOP_DATA_DIR".into(), self.data_dir.path().to_string_lossy().into_owned()),
            ("SHOP_SEED_PRODUCTS".into(), "0".into()),
            ("SHOP_DB_POOL_SIZE".into(), "8".into()),
            // Every test calls from 127.0.0.1; the limits have tests of their own.
            ("SHOP_RATE_LIMITS".into(), "off".into()),
        ]);
        if let Some(url) = &self.url {
            vars.insert("SHOP_DATABASE_URL".into(), url.clone());
        }
        Config::from_sources(vars).expect("test config")
    }

    /// `config` with five seeded products and the test admin, for tests that then change the
    /// config further and start with `TestServer::start_on`.
    pub fn seeded_config(&self) -> Config {
        let mut config = self.config();
        config.seed_products = 5;
        config.admin = Some((ADMIN_EMAIL.to_owned(), Secret(PASSWORD.to_owned())));
        config
    }

    /// Environment for running the `shop` binary against this store.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![("SHOP_DATA_DIR".to_owned(), self.data_dir.path().to_string_lossy().into_owned())];
        if let Some(url) = &self.url {
            env.push(("SHOP_DATABASE_URL".to_owned(), url.clone()));
        }
        env
    }

    /// The store itself, for repository tests.
    pub async fn pool(&self) -> Pool {
        Pool::open(&self.config().store_url(), 4, Arc::new(|_| ())).await.expect("open store")
    }

    /// The catalog service over this store, for tests that write or read the catalog directly.
    pub async fn catalog(&self) -> CatalogService {
        CatalogService::new(self.pool().await, Arc::new(SystemClock), "USD".to_owned())
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(schema) = self.schema.take() {
            // Drop runs inside the test's runtime; the cleanup gets a runtime of its own.
            let _ = std::thread::spawn(move || {
                if let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    runtime.block_on(run_postgres(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")));
                }
            })
            .join();
        }
    }
}

async fn run_postgres(sql: &str) {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let url = postgres_base_url();
    let mut conn = AsyncPgConnection::establish(&url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} is needed for this test (SHOP_TEST_POSTGRES=off skips): {e}"));
    conn.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

pub struct ServerOptions {
    pub seed_products: u64,
    pub clock: Option<ManualClock>,
    pub admin: bool,
    /// Cache and pub/sub in Redis (under a namespace of the test's own) instead of in-process.
    pub redis: bool,
    pub tweak: fn(&mut Config),
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self { seed_products: 0, clock: None, admin: true, redis: false, tweak: |_| () }
    }
}

pub fn redis_url() -> String {
    std::env::var("SHOP_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

pub fn unique_namespace() -> String {
    format!("test-{}", uuid::Uuid::new_v4().simple())
}

pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    /// Held for the test's duration: the server task and the store it owns.
    _server: RunningServer,
    _db: TestDatabase,
}

/// In-process servers log internal errors (clients see only INTERNAL_SERVER_ERROR) to the test
/// output, so that a failing test shows their cause; `SHOP_TEST_LOG` sets another filter.
fn show_internal_errors() {
    let filter = std::env::var("SHOP_TEST_LOG").unwrap_or_else(|_| "error".to_owned());
    // Only the first call installs it; the others find one installed.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_test_writer()
        .try_init();
}

impl TestServer {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, ServerOptions::default()).await
    }

    pub async fn start_with(backend: Backend, options: ServerOptions) -> Self {
        let db = TestDatabase::new(backend).await;
        let mut config = db.config();
        config.seed_products = options.seed_products;
        if options.admin {
            config.admin = Some((ADMIN_EMAIL.to_owned(), Secret(PASSWORD.to_owned())));
        }
        if options.redis {
            config.redis_url = Some(Secret(redis_url()));
            config.redis_namespace = unique_namespace();
        }
        (options.tweak)(&mut config);
        let clock: Arc<dyn Clock> = match options.clock {
            Some(clock) => Arc::new(clock),
            None => Arc::new(SystemClock),
        };
        Self::start_on(db, config, clock).await
    }

    /// A seeded server whose Redis is `redis`, a test's own, which the test may kill.
    pub async fn start_on_redis(backend: Backend, redis: &RedisServer) -> Self {
        let db = TestDatabase::new(backend).await;
        let mut config = db.seeded_config();
        config.redis_url = Some(Secret(redis.url()));
        config.redis_namespace = unique_namespace();
        Self::start_on(db, config, Arc::new(SystemClock)).await
    }

    /// A server with this exact config over `db` (for tests that route the store elsewhere).
    pub async fn start_on(db: TestDatabase, config: Config, clock: Arc<dyn Clock>) -> Self {
        show_internal_errors();
        let app = AppContext::build(config, clock).await.expect("build app");
        let server = server::start(app).await.expect("start server");
        let test_server =
            Self { base: format!("http://{}", server.addr), client: reqwest::Client::new(), _server: server, _db: db };
        test_server.wait_ready().await;
        test_server
    }

    async fn wait_ready(&self) {
        for _ in 0..600 {
            if let Ok(response) = self.client.get(self.url("/readyz")).send().await
                && response.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server never became ready");
    }

    /// Shuts the server down as SIGTERM does, and waits until it has.
    pub async fn stop(self) {
        self._server.stop().await.expect("stopped cleanly");
    }

    pub fn app(&self) -> &AppContext {
        &self._server.app
    }

    /// Environment for running the `shop` binary against this server's store and data dir.
    pub fn env(&self) -> Vec<(String, String)> {
        self._db.env()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn ws_url(&self) -> String {
        format!("{}/graphql/ws", self.base.replace("http://", "ws://"))
    }

    /// POSTs a GraphQL request and returns the whole JSON response.
    pub async fn gql(&self, query: &str, variables: Value, token: Option<&str>) -> Value {
        gql_response(&self.base, query, variables, token).await
    }

    /// `data` of a response that must have no errors.
    pub async fn data(&self, query: &str, variables: Value, token: Option<&str>) -> Value {
        let response = self.gql(query, variables, token).await;
        assert!(response.get("errors").is_none(), "unexpected errors: {response:#}");
        response["data"].clone()
    }

    pub async fn guest_token(&self) -> String {
        let data = self.data("mutation { startGuestSession { token } }", json!({}), None).await;
        data["startGuestSession"]["token"].as_str().expect("token").to_owned()
    }

    /// Signs up a new user; returns (access token, refresh token).
    pub async fn sign_up(&self, email: &str) -> (String, String) {
        let data = self
            .data(
                "mutation($e: String!, $p: String!) { signUp(email: $e, password: $p, name: \"Test Shopper\") { token refreshToken } }",
                json!({ "e": email, "p": PASSWORD }),
                None,
            )
            .await;
        let payload = &data["signUp"];
        (
            payload["token"].as_str().expect("token").to_owned(),
            payload["refreshToken"].as_str().expect("refresh").to_owned(),
        )
    }

    pub async fn user_token(&self) -> String {
        self.sign_up(&format!("shopper-{}@example.com", uuid::Uuid::new_v4().simple())).await.0
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> Value {
        self.gql(
            "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token refreshToken user { email isAdmin } } }",
            json!({ "e": email, "p": password }),
            None,
        )
        .await
    }

    pub async fn admin_token(&self) -> String {
        admin_token(&self.base).await
    }

    /// Statements sent to the store so far under the scopes `counted` accepts (a GraphQL root
    /// field, `worker:<name>`, `other`).
    pub async fn statements(&self, counted: impl Fn(&str) -> bool) -> f64 {
        let text = self.client.get(self.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
        text.lines()
            .filter_map(|line| line.strip_prefix("shop_store_statements_total{scope=\""))
            .filter_map(|rest| rest.split_once("\"} "))
            .filter(|(scope, _)| counted(scope))
            .filter_map(|(_, count)| count.trim().parse::<f64>().ok())
            .sum()
    }

    /// The current value of a counter in /metrics.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.client.get(self.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
        text.lines()
            .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.trim().parse().ok()))
            .unwrap_or_else(|| panic!("metric {name} missing in:\n{text}"))
    }
}

/// A cart line of `quantity` units of `product` at $19.99, added now: for writing stock moves
/// and carts straight to the store.
pub fn cart_line(product: &str, quantity: i32) -> CartLine {
    CartLine {
        product_id: product.to_owned(),
        quantity,
        unit_price: Money { cents: 1999, currency: "USD".to_owned() },
        added_at: chrono::Utc::now(),
    }
}

/// The `extensions.code` of the first error.
pub fn error_code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {response:#}"))
}

/// A graphql-transport-ws client running one subscription.
pub struct Subscription {
    socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

impl Subscription {
    pub async fn start(ws_url: &str, token: &str, query: &str) -> Self {
        Self::start_with(ws_url, token, query, json!({})).await
    }

    pub async fn start_with(ws_url: &str, token: &str, query: &str, variables: Value) -> Self {
        Self::connect(ws_url, json!({ "Authorization": format!("Bearer {token}") }), query, variables).await
    }

    pub async fn start_anonymous(ws_url: &str, query: &str) -> Self {
        Self::connect(ws_url, json!({}), query, json!({})).await
    }

    async fn connect(ws_url: &str, init_payload: Value, query: &str, variables: Value) -> Self {
        use futures::SinkExt;
        use tokio_tungstenite::tungstenite::Message;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = ws_url.into_client_request().expect("request");
        request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().expect("header"));
        let (socket, _) = tokio_tungstenite::connect_async(request).await.expect("connect");
        let mut subscription = Self { socket };
        let init = json!({ "type": "connection_init", "payload": init_payload });
        subscription.socket.send(Message::text(init.to_string())).await.expect("init");
        assert_eq!(subscription.message().await["type"], "connection_ack");
        let subscribe =
            json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": variables } });
        subscription.socket.send(Message::text(subscribe.to_string())).await.expect("subscribe");
        subscription
    }

    async fn message(&mut self) -> Value {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => return serde_json::from_str(&text).expect("json"),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }

    /// The `data` of the next pushed result; panics on errors or after 10 s of silence.
    pub async fn next(&mut self) -> Value {
        let message = self.message().await;
        assert_eq!(message["type"], "next", "{message}");
        assert!(message["payload"].get("errors").is_none(), "{message}");
        message["payload"]["data"].clone()
    }

    /// The next message, whatever it is (for errors).
    pub async fn next_message(&mut self) -> Value {
        self.message().await
    }
}

/// A `shop serve` process of the built binary (for tests that need several processes, or a
/// process that dies).
pub struct ShopProcess {
    pub base: String,
    pub child: std::process::Child,
}

impl Drop for ShopProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ShopProcess {
    /// Starts one on a free port with the admin configured, and waits until it is ready.
    pub async fn launch(env: &[(String, String)], data_dir: &std::path::Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_shop"))
            .arg("serve")
            .env("SHOP_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("SHOP_ADMIN_PASSWORD", PASSWORD)
            .env("SHOP_LOG", "warn")
            .env("SHOP_RATE_LIMITS", "off")
            .envs(env.iter().cloned())
            .env("SHOP_DATA_DIR", data_dir)
            .env("SHOP_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start shop");
        let process = Self { base: format!("http://127.0.0.1:{port}"), child };
        let client = reqwest::Client::new();
        for _ in 0..400 {
            if client.get(format!("{}/readyz", process.base)).send().await.is_ok_and(|r| r.status() == 200) {
                return process;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("shop on port {port} never became ready");
    }
}

/// `data` of a GraphQL request to any server, which must answer without errors.
pub async fn gql(base: &str, query: &str, variables: Value, token: Option<&str>) -> Value {
    let response = gql_response(base, query, variables, token).await;
    assert!(response.get("errors").is_none(), "{response:#}");
    response["data"].clone()
}

/// The configured admin's token, signed in on any server.
pub async fn admin_token(base: &str) -> String {
    let sign_in = "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token } }";
    let response = gql_response(base, sign_in, json!({ "e": ADMIN_EMAIL, "p": PASSWORD }), None).await;
    response["data"]["signIn"]["token"].as_str().unwrap_or_else(|| panic!("admin sign-in: {response}")).to_owned()
}

/// The whole response of a GraphQL request to any server.
pub async fn gql_response(base: &str, query: &str, variables: Value, token: Option<&str>) -> Value {
    let mut request =
        reqwest::Client::new().post(format!("{base}/graphql")).json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request").json().await.expect("json")
}

/// Serves a stub of an outside service (Stripe, OpenSearch) on its own thread, so that it
/// outlives any one test's runtime; returns its base URL.
pub fn serve_stub(app: axum::Router) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, app).await.expect("stub");
        });
    });
    address
}

/// A TCP proxy in front of a real server (PostgreSQL), which a test can cut (every open
/// connection dropped, new ones refused) and restore: a store that is briefly down.
pub struct CuttableProxy {
    pub address: std::net::SocketAddr,
    state: Arc<std::sync::Mutex<ProxyState>>,
}

struct ProxyState {
    refusing: bool,
    connections: tokio_util::sync::CancellationToken,
}

impl CuttableProxy {
    pub async fn start(target: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let address = listener.local_addr().expect("proxy address");
        let state = Arc::new(std::sync::Mutex::new(ProxyState {
            refusing: false,
            connections: tokio_util::sync::CancellationToken::new(),
        }));
        let shared = state.clone();
        let target = target.to_owned();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let (refusing, cut) = {
                    let state = shared.lock().expect("proxy state");
                    (state.refusing, state.connections.clone())
                };
                if refusing {
                    continue;
                }
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = cut.cancelled() => {}
                    }
                });
            }
        });
        Self { address, state }
    }

    /// Drops every open connection and refuses new ones until `restore`.
    pub fn cut(&self) {
        let mut state = self.state.lock().expect("proxy state");
        state.refusing = true;
        state.connections.cancel();
    }

    pub fn restore(&self) {
        let mut state = self.state.lock().expect("proxy state");
        state.refusing = false;
        state.connections = tokio_util::sync::CancellationToken::new();
    }
}

/// A `redis-server` of the test's own on a free port, which the test can kill and start again
/// on the same port.
pub struct RedisServer {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let mut server = Self { port, child: None };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) and waits until it answers.
    pub async fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is needed for this test");
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server on port {} never answered", self.port);
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
