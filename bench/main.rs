//! Load scenarios against a real release server: `cargo bench --bench load -- <scenario> [options]`.
//!
//! Each run starts the `shop` binary on a fresh data dir (SQLite, or a fresh PostgreSQL
//! database with `--backend postgres`; `--redis` adds Redis), seeds a catalog, drives it over
//! loopback HTTP and websockets from this separate process, and prints a table plus one JSON
//! line (requests/s, p50/p95/p99, errors, server peak memory). Latencies go through HdrHistogram.
//! Rows of one request kind also give the server's CPU time per request (user and system, from
//! /proc): on this shared box it moves far less between runs than throughput does.
//!
//! Scenarios:
//! - `cart`: guest sessions add, update and read their carts (64 connections by default; with
//!   `--rate R` each connection paces itself so that all together offer R requests/s, and a
//!   request's latency counts from when it was due, so queueing is not hidden). Carts grow to
//!   90 lines (`--cart-lines N`), then removes take the place of adds.
//! - `sync`: devices of one user subscribe to `cartUpdated`; another device changes the cart;
//!   measures mutation-to-event latency on the subscribers.
//! - `idle`: opens many idle `cartUpdated` subscriptions and reports server memory per subscription.
//! - `search`: searchProducts with facets over a mix of distinct queries and filters (64
//!   connections; use `--products 100000` or `1000000` for the catalog sizes, and
//!   `--env SHOP_SEARCH_CACHE=false` to measure without the result cache).
//! - `product`: one product with its category and stock at a time, striding over the catalog.
//! - `ceiling`: `{__typename}` through the same client, the framework's ceiling on this box.
//! - `checkout`: complete purchases (guest session, add, initiateCheckout, placeOrder with the
//!   test gateway) per second with p99 per step, spread over 200 products, or all on one product
//!   with `--hot`; reports the units taken from stock beside the orders made.
//! - `recommend`: waits for the first training of the demo history, then productRecommendations
//!   (RELATED and COMPLEMENTARY in turn, striding over the catalog) and an anonymous caller's
//!   recommendedProducts, each for `--duration`.
//!
//! - `flash`: `--shoppers N` (10,000) guests join one flash sale of `--units U` (1,000) at once,
//!   admission unthrottled, over `--connections` (use 256): joins/s and their latency, how long
//!   until every shopper knows RESERVED or SOLD_OUT, holds with their checkout session, and the
//!   sale report (units sold, discrepancy). With `--subscribers S`, S more guests wait in a second
//!   sale let through one a second, each with its own `flashSaleEntryUpdated` websocket: server
//!   memory per subscriber, and how long one "now serving" tick takes to reach them all (the
//!   server needs `--env SHOP_WS_MAX_CONNECTIONS_PER_ADDRESS=…` above S; the box allows 20,000
//!   open files per process, so S stays below that).
//!
//! `--server PATH` drives another build of `shop` (say, main's before a change) with this bench.
//!
//! Every report ends with the ceiling measured in the same run (after the scenario, same
//! connections, 5 s) and gives each figure as a fraction of it, since absolute figures drift
//! between machines.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};
use shop::domain::catalog::generator::CatalogGenerator;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The server's allocator here too: with glibc's, allocating and freeing responses took the
/// load generator a quarter of its CPU, which it takes from the server it measures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ADMIN_EMAIL: &str = "bench-admin@example.com";
const PASSWORD: &str = "correct horse battery";
/// Products whose stock the cart scenario raises, so that adds measure the cart, not refusals.
const HOT_PRODUCTS: usize = 200;

struct Options {
    scenario: String,
    backend: String,
    redis: bool,
    products: u64,
    connections: usize,
    duration: Duration,
    devices: usize,
    /// Cart: lines a cart grows to before adds give way to removes.
    cart_lines: usize,
    changes: usize,
    idle: usize,
    /// Checkout: every purchase buys the same product.
    hot: bool,
    /// Flash: shoppers joining the sale, units on sale, and waiting-room subscribers.
    shoppers: usize,
    units: i32,
    subscribers: usize,
    /// Offered load in requests/s over all connections (open loop); unset: as fast as possible.
    rate: Option<f64>,
    /// Extra `KEY=VALUE` settings for the server (e.g. `SHOP_SEARCH_CACHE=false`).
    server_env: Vec<(String, String)>,
    /// The `shop` binary to drive: this build's by default, another build's to compare the two
    /// in one session.
    server: String,
}

impl Options {
    fn parse() -> anyhow::Result<Self> {
        let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
        let scenario = args.next().ok_or_else(|| {
            anyhow::anyhow!("usage: bench <ceiling|cart|sync|idle|search|product|checkout> [options]")
        })?;
        let mut options = Options {
            scenario,
            backend: "sqlite".to_owned(),
            redis: false,
            products: 10_000,
            connections: 64,
            duration: Duration::from_secs(20),
            devices: 8,
            cart_lines: 90,
            changes: 300,
            idle: 10_000,
            hot: false,
            shoppers: 10_000,
            units: 1_000,
            subscribers: 0,
            rate: None,
            server_env: Vec::new(),
            server: env!("CARGO_BIN_EXE_shop").to_owned(),
        };
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| anyhow::anyhow!("{flag} needs a value"));
            match flag.as_str() {
                "--backend" => options.backend = value()?,
                "--redis" => options.redis = true,
                "--hot" => options.hot = true,
                "--shoppers" => options.shoppers = value()?.parse()?,
                "--units" => options.units = value()?.parse()?,
                "--subscribers" => options.subscribers = value()?.parse()?,
                "--products" => options.products = value()?.parse()?,
                "--connections" => options.connections = value()?.parse()?,
                "--duration" => options.duration = Duration::from_secs(value()?.parse()?),
                "--devices" => options.devices = value()?.parse()?,
                "--cart-lines" => options.cart_lines = value()?.parse()?,
                "--changes" => options.changes = value()?.parse()?,
                "--idle" => options.idle = value()?.parse()?,
                "--rate" => options.rate = Some(value()?.parse()?),
                "--server" => options.server = value()?,
                "--env" => {
                    let setting = value()?;
                    let (key, val) = setting.split_once('=').ok_or_else(|| anyhow::anyhow!("--env takes KEY=VALUE"))?;
                    options.server_env.push((key.to_owned(), val.to_owned()));
                }
                other => anyhow::bail!("unknown option {other}"),
            }
        }
        Ok(options)
    }
}

/// The server under test, stopped (and its database dropped) on drop.
struct Server {
    child: Child,
    base: String,
    _data_dir: tempfile::TempDir,
    postgres_db: Option<String>,
}

const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

async fn postgres(sql: &str) -> anyhow::Result<()> {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let mut conn = AsyncPgConnection::establish(POSTGRES_ADMIN_URL).await?;
    conn.batch_execute(sql).await?;
    Ok(())
}

impl Server {
    async fn start(options: &Options) -> anyhow::Result<Self> {
        let data_dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut command = Command::new(&options.server);
        command
            .arg("serve")
            .env("SHOP_DATA_DIR", data_dir.path())
            .env("SHOP_LISTEN", format!("127.0.0.1:{port}"))
            .env("SHOP_SEED_PRODUCTS", options.products.to_string())
            .env("SHOP_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("SHOP_ADMIN_PASSWORD", PASSWORD)
            .env("SHOP_LOG", "warn")
            .env("SHOP_RATE_LIMITS", "off")
            .envs(options.server_env.iter().cloned())
            .stdout(Stdio::null());
        let postgres_db = (options.backend == "postgres").then(|| format!("shop_bench_{}", std::process::id()));
        if let Some(db) = &postgres_db {
            postgres(&format!("DROP DATABASE IF EXISTS {db}")).await?;
            postgres(&format!("CREATE DATABASE {db}")).await?;
            command.env("SHOP_DATABASE_URL", format!("postgres://postgres@127.0.0.1:5432/{db}"));
        }
        if options.redis {
            command
                .env("SHOP_REDIS_URL", "redis://127.0.0.1:6379")
                .env("SHOP_REDIS_NAMESPACE", format!("bench-{port}"));
        }
        let started = Instant::now();
        let server = Server {
            child: command.spawn()?,
            base: format!("http://127.0.0.1:{port}"),
            _data_dir: data_dir,
            postgres_db,
        };
        let client = reqwest::Client::new();
        while !client.get(format!("{}/readyz", server.base)).send().await.is_ok_and(|r| r.status() == 200) {
            anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "server never became ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!("server ready in {:.1} s with {} products", started.elapsed().as_secs_f64(), options.products);
        Ok(server)
    }

    /// Peak and current resident memory of the server process, in MiB.
    fn memory_mib(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|kb| kb.parse::<f64>().ok())
                .map_or(0.0, |kb| kb / 1024.0)
        };
        (field("VmHWM:"), field("VmRSS:"))
    }

    /// CPU seconds (user and system) the server process has used so far.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // The fields after the command name, which is in parentheses and may hold spaces;
        // utime and stime are the 14th and 15th fields, in clock ticks (100 a second).
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let ticks: f64 = after_name.split_whitespace().skip(11).take(2).filter_map(|t| t.parse::<f64>().ok()).sum();
        ticks / 100.0
    }

    /// The report row `name` of what `measure` (a closed loop) sent, with the server's CPU time
    /// per request while it ran.
    async fn measured_row(
        &self,
        name: &str,
        measure: impl Future<Output = anyhow::Result<(Histogram<u64>, u64, f64)>>,
    ) -> anyhow::Result<Value> {
        let before = self.cpu_seconds();
        let (latencies, errors, seconds) = measure.await?;
        Ok(with_cpu(row(name, &latencies, errors, seconds), self.cpu_seconds() - before))
    }

    fn ws_url(&self) -> String {
        format!("{}/graphql/ws", self.base.replace("http://", "ws://"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(db) = self.postgres_db.take() {
            let _ = std::thread::spawn(move || {
                if let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    let _ = runtime.block_on(postgres(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")));
                }
            })
            .join();
        }
    }
}

/// A GraphQL reply read only for its errors.
#[derive(Deserialize)]
struct Outcome {
    errors: Option<IgnoredAny>,
}

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    /// Parsed once: the load generator shares the box, so what it spends per request is taken
    /// from the server.
    graphql: reqwest::Url,
}

impl Client {
    fn new(base: &str) -> anyhow::Result<Self> {
        Ok(Client { http: reqwest::Client::new(), graphql: format!("{base}/graphql").parse()? })
    }

    fn request(&self, query: &str, variables: Value, token: Option<&str>) -> reqwest::RequestBuilder {
        let request = self.http.post(self.graphql.clone()).json(&json!({ "query": query, "variables": variables }));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn gql(&self, query: &str, variables: Value, token: Option<&str>) -> anyhow::Result<Value> {
        let mut response: Value = self.request(query, variables, token).send().await?.json().await?;
        anyhow::ensure!(response.get("errors").is_none(), "{response}");
        Ok(response["data"].take())
    }

    /// `gql` for a caller that needs to know only whether it succeeded: the data is skipped, not
    /// built. Building a cart's 90 lines into a `Value` was most of what a cart read cost this
    /// process, which takes its CPU from the server's.
    async fn send(&self, query: &str, variables: Value, token: Option<&str>) -> anyhow::Result<()> {
        let body = self.request(query, variables, token).send().await?.bytes().await?;
        let outcome: Outcome = serde_json::from_slice(&body)?;
        anyhow::ensure!(outcome.errors.is_none(), "{}", String::from_utf8_lossy(&body));
        Ok(())
    }

    async fn guest(&self) -> anyhow::Result<String> {
        let data = self.gql("mutation { startGuestSession { token } }", json!({}), None).await?;
        Ok(data["startGuestSession"]["token"].as_str().unwrap_or_default().to_owned())
    }

    async fn sign_in(&self, email: &str) -> anyhow::Result<String> {
        let query = "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token } }";
        let data = self.gql(query, json!({ "e": email, "p": PASSWORD }), None).await?;
        Ok(data["signIn"]["token"].as_str().unwrap_or_default().to_owned())
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// One row of the report: an operation's throughput and latency.
fn row(name: &str, histogram: &Histogram<u64>, errors: u64, seconds: f64) -> Value {
    json!({
        "operation": name,
        "requests": histogram.len(),
        "requests_per_s": (histogram.len() as f64 / seconds).round(),
        "p50_ms": ms(histogram.value_at_quantile(0.50)),
        "p95_ms": ms(histogram.value_at_quantile(0.95)),
        "p99_ms": ms(histogram.value_at_quantile(0.99)),
        "max_ms": ms(histogram.max()),
        "errors": errors,
    })
}

/// `row` with the server's CPU time per request, in microseconds.
fn with_cpu(mut row: Value, cpu_seconds: f64) -> Value {
    let requests = row["requests"].as_f64().unwrap_or_default().max(1.0);
    row["server_cpu_us"] = json!((cpu_seconds * 1e6 / requests).round());
    row
}

/// `{__typename}` as fast as `connections` clients can send it for `duration`.
async fn ceiling_row(server: &Server, connections: usize, duration: Duration) -> anyhow::Result<Value> {
    let client = Client::new(&server.base)?;
    server
        .measured_row(
            "ceiling {__typename}",
            closed_loop(&client, connections, duration, |_| ("{ __typename }", json!({}))),
        )
        .await
}

/// Each of `connections` clients sends the request `next` gives for its running count (each
/// client starts its count elsewhere), one after another, for `duration`: the latencies, the
/// errors and the seconds it took.
async fn closed_loop(
    client: &Client,
    connections: usize,
    duration: Duration,
    next: impl Fn(usize) -> (&'static str, Value) + Send + Sync + 'static,
) -> anyhow::Result<(Histogram<u64>, u64, f64)> {
    closed_loop_as(client, Arc::new(Vec::new()), connections, duration, next).await
}

/// `closed_loop` where connection `w` sends `tokens[w % tokens.len()]` (none if there are none).
async fn closed_loop_as(
    client: &Client,
    tokens: Arc<Vec<String>>,
    connections: usize,
    duration: Duration,
    next: impl Fn(usize) -> (&'static str, Value) + Send + Sync + 'static,
) -> anyhow::Result<(Histogram<u64>, u64, f64)> {
    let next = Arc::new(next);
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..connections {
        let (client, next) = (client.clone(), next.clone());
        let token = (!tokens.is_empty()).then(|| tokens[worker % tokens.len()].clone());
        workers.push(tokio::spawn(async move {
            let (mut latencies, mut errors) = (histogram(), 0u64);
            let mut count = worker * 7;
            while Instant::now() < deadline {
                let (query, variables) = next(count);
                let sent = Instant::now();
                match client.send(query, variables, token.as_deref()).await {
                    Ok(()) => {
                        let _ = latencies.record(sent.elapsed().as_micros() as u64);
                    }
                    Err(_) => errors += 1,
                }
                count += 1;
            }
            (latencies, errors)
        }));
    }
    let (mut all, mut errors) = (histogram(), 0);
    for worker in workers {
        let (latencies, worker_errors) = worker.await?;
        let _ = all.add(&latencies);
        errors += worker_errors;
    }
    Ok((all, errors, started.elapsed().as_secs_f64()))
}

/// How long the ceiling is measured after each scenario.
const CEILING_SECONDS: u64 = 5;

async fn ceiling_scenario(options: &Options, server: &Server) -> anyhow::Result<()> {
    report(options, server, Vec::new(), json!({ "connections": options.connections })).await
}

/// Prints the scenario's rows and the same run's ceiling, each throughput also as a fraction of
/// the ceiling's.
async fn report(options: &Options, server: &Server, mut rows: Vec<Value>, extra: Value) -> anyhow::Result<()> {
    let (peak, current) = server.memory_mib();
    let ceiling_time =
        if options.scenario == "ceiling" { options.duration } else { Duration::from_secs(CEILING_SECONDS) };
    let ceiling = ceiling_row(server, options.connections, ceiling_time).await?;
    let ceiling_rate = ceiling["requests_per_s"].as_f64().unwrap_or_default().max(1.0);
    rows.push(ceiling);
    for r in &mut rows {
        let fraction = r["requests_per_s"].as_f64().unwrap_or_default() / ceiling_rate;
        r["of_ceiling"] = json!((fraction * 10_000.0).round() / 10_000.0);
    }
    println!();
    println!(
        "scenario {} | backend {}{} | {} products",
        options.scenario,
        options.backend,
        if options.redis { " + redis" } else { "" },
        options.products
    );
    println!(
        "{:<22} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>10}",
        "operation", "requests", "req/s", "×ceiling", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors", "cpu µs/req"
    );
    for r in &rows {
        println!(
            "{:<22} {:>9} {:>10} {:>9.4} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>10}",
            r["operation"].as_str().unwrap_or_default(),
            r["requests"],
            r["requests_per_s"],
            r["of_ceiling"].as_f64().unwrap_or_default(),
            r["p50_ms"].as_f64().unwrap_or_default(),
            r["p95_ms"].as_f64().unwrap_or_default(),
            r["p99_ms"].as_f64().unwrap_or_default(),
            r["max_ms"].as_f64().unwrap_or_default(),
            r["errors"],
            r.get("server_cpu_us").map_or_else(String::new, Value::to_string),
        );
    }
    println!("server memory: peak {peak:.1} MiB, now {current:.1} MiB");
    if extra.as_object().is_some_and(|o| !o.is_empty()) {
        println!("{}", serde_json::to_string_pretty(&extra).unwrap_or_default());
    }
    let summary = json!({
        "scenario": options.scenario,
        "backend": options.backend,
        "redis": options.redis,
        "products": options.products,
        "rows": rows,
        "server_peak_mib": peak,
        "server_rss_mib": current,
        "extra": extra,
    });
    println!("JSON {summary}");
    Ok(())
}

/// The ids of the first `HOT_PRODUCTS` seeded products.
fn hot_products() -> Vec<String> {
    (0..HOT_PRODUCTS as u64).map(CatalogGenerator::product_id).collect()
}

/// The `count`th product of a stride through a catalog of `products`, so that clients spread
/// over it rather than follow each other.
fn strided_product(count: usize, products: usize) -> String {
    CatalogGenerator::product_id(((count * 7_919) % products) as u64)
}

/// Raises the stock of the first products so the cart scenario is not refused for stock.
async fn stock_hot_products(client: &Client) -> anyhow::Result<Vec<String>> {
    let admin = client.sign_in(ADMIN_EMAIL).await?;
    let ids = hot_products();
    for id in &ids {
        let query = "mutation($p: ID!) { adminSetStock(productId: $p, quantity: 100000000) { id } }";
        client.gql(query, json!({ "p": id }), Some(&admin)).await?;
    }
    Ok(ids)
}

async fn cart_scenario(options: &Options, server: &Server) -> anyhow::Result<()> {
    let client = Client::new(&server.base)?;
    let products = Arc::new(stock_hot_products(&client).await?);
    let deadline = Instant::now() + options.duration;
    let started = Instant::now();
    let cpu_before = server.cpu_seconds();
    let results = Arc::new(Mutex::new(HashMap::<&'static str, (Histogram<u64>, u64)>::new()));
    let mut workers = Vec::new();
    for worker in 0..options.connections {
        let (client, products, results) = (client.clone(), products.clone(), results.clone());
        let token = client.guest().await?;
        let pace = options.rate.map(|rate| Duration::from_secs_f64(options.connections as f64 / rate));
        let cart_lines = options.cart_lines;
        workers.push(tokio::spawn(async move {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(worker as u64);
            let mut due = Instant::now() + pace.map_or(Duration::ZERO, |p| p.mul_f64(rng.random_range(0.0..1.0)));
            let mut lines: Vec<String> = Vec::new();
            let mut local: HashMap<&'static str, (Histogram<u64>, u64)> = HashMap::new();
            while Instant::now() < deadline {
                let roll = rng.random_range(0..10);
                let (name, query, variables) = if roll < 4 || lines.is_empty() {
                    let product = products[rng.random_range(0..products.len())].clone();
                    if lines.len() >= cart_lines {
                        ("removeCartItem", "mutation($p: ID!) { removeCartItem(productId: $p) { version } }", json!({ "p": lines.swap_remove(0) }))
                    } else {
                        if !lines.contains(&product) {
                            lines.push(product.clone());
                        }
                        ("addCartItem", "mutation($p: ID!) { addCartItem(productId: $p, quantity: 1) { version totalQuantity } }", json!({ "p": product }))
                    }
                } else if roll < 7 {
                    let product = lines[rng.random_range(0..lines.len())].clone();
                    ("updateCartItem", "mutation($p: ID!, $q: Int!) { updateCartItem(productId: $p, quantity: $q) { version } }", json!({ "p": product, "q": rng.random_range(1..=5) }))
                } else {
                    ("cart", "{ cart { version totalQuantity subtotal { centAmount } items { quantity product { title price { centAmount } } } } }", json!({}))
                };
                // Open loop: latency counts from when the request was due, not when it went out.
                let sent = match pace {
                    Some(pace) => {
                        let scheduled = due;
                        tokio::time::sleep_until(scheduled.into()).await;
                        due += pace;
                        scheduled
                    }
                    None => Instant::now(),
                };
                let outcome = client.send(query, variables, Some(&token)).await;
                let entry = local.entry(name).or_insert_with(|| (histogram(), 0));
                match outcome {
                    Ok(()) => {
                        let _ = entry.0.record(sent.elapsed().as_micros() as u64);
                    }
                    Err(_) => entry.1 += 1,
                }
            }
            let mut results = results.lock().await;
            for (name, (histogram, errors)) in local {
                let entry = results.entry(name).or_insert_with(|| (self::histogram(), 0));
                let _ = entry.0.add(&histogram);
                entry.1 += errors;
            }
        }));
    }
    for worker in workers {
        worker.await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let results = results.lock().await;
    let mut all = histogram();
    let mut all_errors = 0;
    let mut rows = Vec::new();
    for name in ["addCartItem", "updateCartItem", "removeCartItem", "cart"] {
        if let Some((histogram, errors)) = results.get(name) {
            rows.push(row(name, histogram, *errors, seconds));
            let _ = all.add(histogram);
            all_errors += errors;
        }
    }
    rows.push(with_cpu(row("all", &all, all_errors, seconds), server.cpu_seconds() - cpu_before));
    report(
        options,
        server,
        rows,
        json!({ "connections": options.connections, "offered_rate": options.rate, "seconds": seconds }),
    )
    .await
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn subscribe(url: &str, token: &str) -> anyhow::Result<Socket> {
    watch(url, token, "subscription { cartUpdated { version } }").await.map(|(socket, _)| socket)
}

async fn sync_scenario(options: &Options, server: &Server) -> anyhow::Result<()> {
    let client = Client::new(&server.base)?;
    let products = stock_hot_products(&client).await?;
    let email = "bench-shopper@example.com";
    client
        .gql(
            "mutation($e: String!, $p: String!) { signUp(email: $e, password: $p, name: \"Bench\") { token } }",
            json!({ "e": email, "p": PASSWORD }),
            None,
        )
        .await?;
    let sent_at = Arc::new(Mutex::new(HashMap::<i64, Instant>::new()));
    let received = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(histogram()));
    let mut listeners = Vec::new();
    for _ in 0..options.devices {
        let token = client.sign_in(email).await?;
        let mut socket = subscribe(&server.ws_url(), &token).await?;
        let (sent_at, received, latencies, changes) =
            (sent_at.clone(), received.clone(), latencies.clone(), options.changes as i64);
        listeners.push(tokio::spawn(async move {
            while let Some(Ok(message)) = socket.next().await {
                let Message::Text(text) = message else { continue };
                let Ok(value) = serde_json::from_str::<Value>(&text) else { continue };
                let Some(version) = value["payload"]["data"]["cartUpdated"]["version"].as_i64() else { continue };
                let arrived = Instant::now();
                if let Some(sent) = sent_at.lock().await.get(&version) {
                    let _ = latencies.lock().await.record(arrived.duration_since(*sent).as_micros() as u64);
                    received.fetch_add(1, Ordering::Relaxed);
                }
                if version >= changes {
                    return;
                }
            }
        }));
    }
    let mutator = client.sign_in(email).await?;
    let mut mutation_latency = histogram();
    let started = Instant::now();
    for change in 1..=options.changes as i64 {
        // One line whose quantity moves every time: each change is a new version.
        let query = "mutation($p: ID!, $q: Int!) { updateCartItem(productId: $p, quantity: $q) { version } }";
        let sent = Instant::now();
        sent_at.lock().await.insert(change, sent);
        let quantity = 1 + change % 2;
        let data = client.gql(query, json!({ "p": products[0], "q": quantity }), Some(&mutator)).await?;
        let _ = mutation_latency.record(sent.elapsed().as_micros() as u64);
        anyhow::ensure!(data["updateCartItem"]["version"] == change, "unexpected version {data}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    for listener in listeners {
        let _ = tokio::time::timeout(Duration::from_secs(10), listener).await;
    }
    let expected = (options.changes * options.devices) as u64;
    let delivered = received.load(Ordering::Relaxed);
    let latencies = latencies.lock().await;
    let rows = vec![
        row("updateCartItem (mutator)", &mutation_latency, 0, seconds),
        row("event on other device", &latencies, expected - delivered.min(expected), seconds),
    ];
    report(
        options,
        server,
        rows,
        json!({ "devices": options.devices, "changes": options.changes, "events_expected": expected, "events_delivered": delivered }),
    ).await
}

async fn idle_scenario(options: &Options, server: &Server) -> anyhow::Result<()> {
    let client = Client::new(&server.base)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, before) = server.memory_mib();
    let mut sockets = Vec::with_capacity(options.idle);
    let started = Instant::now();
    let tokens = guests(&client, options.idle, 32).await;
    let url = server.ws_url();
    let mut opened = futures::stream::iter(tokens.iter()).map(|token| subscribe(&url, token)).buffer_unordered(64);
    let mut failures = 0u64;
    while let Some(socket) = opened.next().await {
        match socket {
            Ok(socket) => sockets.push(socket),
            Err(_) => failures += 1,
        }
    }
    let opening = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (peak, after) = server.memory_mib();
    let per_subscription_kib = (after - before) * 1024.0 / sockets.len().max(1) as f64;
    let per_gib = if per_subscription_kib > 0.0 { (1024.0 * 1024.0 / per_subscription_kib).round() } else { 0.0 };
    report(
        options,
        server,
        vec![],
        json!({
            "idle_subscriptions": sockets.len(),
            "failed": failures,
            "seconds_to_open": opening,
            "server_rss_before_mib": before,
            "server_rss_after_mib": after,
            "server_peak_mib": peak,
            "kib_per_subscription": per_subscription_kib,
            "subscriptions_per_gib": per_gib,
        }),
    )
    .await?;
    drop(sockets);
    Ok(())
}

/// Distinct searches a shopper would run: words, categories, price ranges, stock and sorts.
fn search_mix(count: usize) -> Vec<Value> {
    const WORDS: [&str; 24] = [
        "sofa",
        "leather sofa",
        "red",
        "tv",
        "4k tv",
        "headphones",
        "wireless headphones",
        "laptop",
        "coffee maker",
        "air fryer",
        "running shoes",
        "yoga mat",
        "tent",
        "board game",
        "moisturizer",
        "gas grill",
        "drill",
        "office chair",
        "notebook",
        "coffee",
        "bluetooth speaker",
        "rug",
        "dress",
        "",
    ];
    const CATEGORIES: [&str; 8] =
        ["", "Electronics", "Home", "Kitchen", "Fashion", "Sports", "Home/Furniture", "Electronics/Audio"];
    const SORTS: [&str; 4] = ["RELEVANCE", "PRICE_ASC", "RATING", "NEWEST"];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut seen = std::collections::HashSet::new();
    let mut mix = Vec::new();
    while mix.len() < count {
        let mut filter = json!({});
        let category = CATEGORIES[rng.random_range(0..CATEGORIES.len())];
        if !category.is_empty() {
            filter["category"] = json!(category);
        }
        if rng.random_bool(0.3) {
            let low = rng.random_range(0..20) * 1_000;
            filter["minPrice"] = json!(low);
            filter["maxPrice"] = json!(low + rng.random_range(1..50) * 1_000);
        }
        if rng.random_bool(0.3) {
            filter["inStockOnly"] = json!(true);
        }
        let variables = json!({
            "q": WORDS[rng.random_range(0..WORDS.len())],
            "f": filter,
            "s": SORTS[rng.random_range(0..SORTS.len())],
        });
        if seen.insert(variables.to_string()) {
            mix.push(variables);
        }
    }
    mix
}

async fn search_scenario(options: &Options, server: &Server) -> anyhow::Result<()> {
    let client = Client::new(&server.base)?;
    let mix = Arc::new(search_mix(300));
    const QUERY: &str = "query($q: String, $f: ProductFilter, $s: ProductSort) { searchProducts(query: $q, filter: $f, sort: $s, first: 20) { totalCount nodes { id title price { centAmount } inStock } facets { name values { value count } } pageInfo { endCursor } } }";
    let searches = mix.clone();
    let searched = closed_loop(&client, options.connections, options.duration, move |count| {
        (QUERY, searches[count % searches.len()].clone())
    });
    let searched = server.measured_row("searchProducts+facets", searched).await?;
    let cache = !options.server_env.iter().any(|(k, v)| k == "SHOP_SEARCH_CACHE" && v == "false");
    let extra = json!({ "distinct_searches": mix.len(), "connections": options.connections, "result_cache": cache });
    report(options, server, vec![searched], extra).await
}

/// One product page's data (with its category and stock) at a time, over the whole catalog.
async fn product_scenario(options: &Options, server: &Server) -> anyhow::Result<()> {
    let client = Client::new(&server.base)?;
    const QUERY: &str = "query($id: ID!) { product(id: $id) { id title price { centAmount currencyCode } inStock availableQuantity category { id name path } } }";
    let products = options.products.max(1) as usize;
    let pages = closed_loop(&client, options.connections, options.duration, move |count| {
        (QUERY, json!({ "id": strided_product(count, products) }))
    });
    let pages = server.measured_row("product+category+stock", pages).await?;
    let extra = json!({ "connections": options.connections });
    report(options, server, vec![pages], extra).await
}

/// Both recommendation lists over a trained demo catalog: productRecommendations for products
/// across the catalog (RELATED and COMPLEMENTARY in turn), and an anonymous caller's picks.
async fn recommend_scenario(options: &Options, server: &Server) -> anyhow::Result<()> {
    let client = Client::new(&server.base)?;
    const PICKS: &str = "{ recommendedProducts(first: 10) { id title price { centAmount } } }";
    let started = Instant::now();
    // The first start trains once the catalog is ready; the lists are measured on its model.
    while client.gql(PICKS, json!({}), None).await?["recommendedProducts"].as_array().is_none_or(Vec::is_empty) {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "the recommender never trained");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("recommendations trained {:.1} s after ready", started.elapsed().as_secs_f64());
    const RELATED: &str = "query($p: ID!, $i: RecommendationIntent) { productRecommendations(productId: $p, intent: $i, first: 10) { id title price { centAmount } } }";
    let products = options.products.max(1) as usize;
    let related = closed_loop(&client, options.connections, options.duration, move |count| {
        let intent = if count % 2 == 0 { "RELATED" } else { "COMPLEMENTARY" };
        (RELATED, json!({ "p": strided_product(count, products), "i": intent }))
    });
    let related = server.measured_row("productRecommendations", related).await?;
    let picks = closed_loop(&client, options.connections, options.duration, |_| (PICKS, json!({})));
    let picks = server.measured_row("recommendedProducts (anonymous)", picks).await?;
    // One guest per connection, each having just viewed three products: its picks are its own,
    // blended on every request from its activity (read from the store once, then held).
    const VIEW: &str = "mutation($p: ID!) { recordProductView(productId: $p) }";
    let tokens = guests(&client, options.connections, options.connections).await;
    for (guest, token) in tokens.iter().enumerate() {
        for view in 0..3 {
            let viewed = CatalogGenerator::product_id(((guest * 3 + view) * 104_729 % products) as u64);
            client.gql(VIEW, json!({ "p": viewed }), Some(token)).await?;
        }
    }
    let personal =
        closed_loop_as(&client, Arc::new(tokens), options.connections, options.duration, |_| (PICKS, json!({})));
    let personal = server.measured_row("recommendedProducts (guest, 3 views)", personal).await?;
    let rows = vec![related, picks, personal];
    report(options, server, rows, json!({ "connections": options.connections })).await
}

/// The steps of one purchase, in order.
const PURCHASE_STEPS: [&str; 4] = ["startGuestSession", "addCartItem", "initiateCheckout", "placeOrder"];

async fn checkout_scenario(options: &Options, server: &Server) -> anyhow::Result<()> {
    let client = Client::new(&server.base)?;
    let admin = client.sign_in(ADMIN_EMAIL).await?;
    let products = if options.hot { vec![CatalogGenerator::product_id(0)] } else { hot_products() };
    const STOCK: i32 = 100_000_000;
    // $15 each, so that guests' orders stay under the fraud rules' high-value mark.
    let offer = "mutation($p: ID!, $q: Int!) { adminUpsertProduct(input: { id: $p, title: \"Bench Kazoo\", description: \"\", priceCents: 1500 }) { id } adminSetStock(productId: $p, quantity: $q) { id } }";
    for id in &products {
        client.gql(offer, json!({ "p": id, "q": STOCK }), Some(&admin)).await?;
    }
    let products = Arc::new(products);
    let deadline = Instant::now() + options.duration;
    let started = Instant::now();
    let cpu_before = server.cpu_seconds();
    let mut workers = Vec::new();
    for worker in 0..options.connections {
        let (client, products) = (client.clone(), products.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(worker as u64);
            let mut steps: Vec<(Histogram<u64>, u64)> = PURCHASE_STEPS.iter().map(|_| (histogram(), 0)).collect();
            let mut purchases = histogram();
            let mut attempt = 0;
            while Instant::now() < deadline {
                attempt += 1;
                let begun = Instant::now();
                let product = products[rng.random_range(0..products.len())].clone();
                let mut token = String::new();
                let mut session = String::new();
                let mut completed = true;
                for (step, (latencies, errors)) in steps.iter_mut().enumerate() {
                    let sent = Instant::now();
                    let outcome = match step {
                        0 => client.gql("mutation { startGuestSession { token } }", json!({}), None).await,
                        1 => client.gql("mutation($p: ID!) { addCartItem(productId: $p, quantity: 1) { version } }", json!({ "p": product }), Some(&token)).await,
                        2 => client.gql("mutation { initiateCheckout { id } }", json!({}), Some(&token)).await,
                        _ => {
                            let input = json!({ "checkoutSessionId": session, "paymentMethodId": "pm_card_visa", "idempotencyKey": format!("bench-{worker}-{attempt}"),
                                "shippingAddress": { "name": "Bench", "line1": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US" } });
                            client.gql("mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id status } }", json!({ "input": input }), Some(&token)).await
                        }
                    };
                    match outcome {
                        Ok(data) => {
                            let _ = latencies.record(sent.elapsed().as_micros() as u64);
                            match step {
                                0 => token = data["startGuestSession"]["token"].as_str().unwrap_or_default().to_owned(),
                                2 => session = data["initiateCheckout"]["id"].as_str().unwrap_or_default().to_owned(),
                                3 if data["placeOrder"]["status"] != "PAID" => completed = false,
                                _ => {}
                            }
                        }
                        Err(_) => {
                            *errors += 1;
                            completed = false;
                        }
                    }
                    if !completed {
                        break;
                    }
                }
                if completed {
                    let _ = purchases.record(begun.elapsed().as_micros() as u64);
                }
            }
            (steps, purchases)
        }));
    }
    let mut steps: Vec<(Histogram<u64>, u64)> = PURCHASE_STEPS.iter().map(|_| (histogram(), 0)).collect();
    let mut purchases = histogram();
    for worker in workers {
        let (worker_steps, worker_purchases) = worker.await?;
        for (total, (latencies, errors)) in steps.iter_mut().zip(worker_steps) {
            let _ = total.0.add(&latencies);
            total.1 += errors;
        }
        let _ = purchases.add(&worker_purchases);
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut rows: Vec<Value> =
        PURCHASE_STEPS.iter().zip(&steps).map(|(name, (h, e))| row(name, h, *e, seconds)).collect();
    rows.push(with_cpu(row("completed purchase", &purchases, 0, seconds), server.cpu_seconds() - cpu_before));
    // Units out of available stock (sold, or held by a checkout cut off at the deadline).
    let mut stock_left = 0;
    for id in products.iter() {
        let data =
            client.gql("query($p: ID!) { product(id: $p) { availableQuantity } }", json!({ "p": id }), None).await?;
        stock_left += data["product"]["availableQuantity"].as_i64().unwrap_or_default();
    }
    let taken = i64::from(STOCK) * products.len() as i64 - stock_left;
    let extra = json!({ "connections": options.connections, "hot_product": options.hot, "orders": purchases.len(),
        "orders_per_s": (purchases.len() as f64 / seconds).round(), "units_taken": taken });
    report(options, server, rows, extra).await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse()?;
    let server = Server::start(&options).await?;
    match options.scenario.as_str() {
        "cart" => cart_scenario(&options, &server).await,
        "sync" => sync_scenario(&options, &server).await,
        "idle" => idle_scenario(&options, &server).await,
        "search" => search_scenario(&options, &server).await,
        "product" => product_scenario(&options, &server).await,
        "checkout" => checkout_scenario(&options, &server).await,
        "ceiling" => ceiling_scenario(&options, &server).await,
        "recommend" => recommend_scenario(&options, &server).await,
        "flash" => flash_scenario(&options, &server).await,
        other => anyhow::bail!(
            "unknown scenario {other}: ceiling, cart, sync, idle, search, product, checkout, recommend or flash"
        ),
    }
}

const JOIN: &str = "mutation($s: ID!) { joinFlashSale(saleId: $s, quantity: 1) { status position checkoutSessionId } }";
const ENTRY: &str = "query($s: ID!) { flashSaleEntry(saleId: $s) { status checkoutSessionId } }";

/// Creates a running sale of `units` units of `product` (stocked for it), letting `per_minute`
/// shoppers through a minute; returns its id.
async fn flash_sale(
    client: &Client,
    admin: &str,
    product: &str,
    units: i32,
    per_minute: i32,
) -> anyhow::Result<String> {
    let stock = "mutation($p: ID!, $q: Int!) { adminSetStock(productId: $p, quantity: $q) { id } }";
    client.gql(stock, json!({ "p": product, "q": units }), Some(admin)).await?;
    let now = chrono::Utc::now();
    let create = "mutation($input: FlashSaleInput!) { adminCreateFlashSale(input: $input) { id } }";
    let input = json!({ "productId": product, "salePriceCents": 999, "quantity": units,
        "startsAt": (now - chrono::Duration::seconds(1)).to_rfc3339(), "endsAt": (now + chrono::Duration::hours(1)).to_rfc3339(),
        "admissionPerMinute": per_minute, "holdSeconds": 120 });
    let created = client.gql(create, json!({ "input": input }), Some(admin)).await?;
    Ok(created["adminCreateFlashSale"]["id"].as_str().unwrap_or_default().to_owned())
}

/// `count` guest tokens, made `parallel` at a time.
async fn guests(client: &Client, count: usize, parallel: usize) -> Vec<String> {
    futures::stream::iter(0..count)
        .map(|_| client.guest())
        .buffer_unordered(parallel)
        .filter_map(|t| async { t.ok() })
        .collect()
        .await
}

async fn flash_scenario(options: &Options, server: &Server) -> anyhow::Result<()> {
    let client = Client::new(&server.base)?;
    let admin = client.sign_in(ADMIN_EMAIL).await?;
    let sale = flash_sale(&client, &admin, &CatalogGenerator::product_id(0), options.units, 1_000_000).await?;
    let tokens = Arc::new(guests(&client, options.shoppers, options.connections).await);
    eprintln!("{} shoppers ready for sale {sale}", tokens.len());

    // The storm: every shopper joins once, `connections` at a time.
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..options.connections {
        let (client, tokens, next, sale) = (client.clone(), tokens.clone(), next.clone(), sale.clone());
        workers.push(tokio::spawn(async move {
            let (mut joins, mut outcomes, mut errors) = (histogram(), histogram(), 0u64);
            let mut finals: Vec<Value> = Vec::new();
            loop {
                let shopper = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(token) = tokens.get(shopper) else { break };
                let sent = Instant::now();
                let Ok(data) = client.gql(JOIN, json!({ "s": sale }), Some(token)).await else {
                    errors += 1;
                    continue;
                };
                let _ = joins.record(sent.elapsed().as_micros() as u64);
                // A shopper still WAITING reads its entry until it knows, as a client would.
                let mut entry = data["joinFlashSale"].clone();
                while entry["status"] == "WAITING" && sent.elapsed() < Duration::from_secs(60) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if let Ok(read) = client.gql(ENTRY, json!({ "s": sale }), Some(token)).await {
                        entry = read["flashSaleEntry"].clone();
                    }
                }
                let _ = outcomes.record(sent.elapsed().as_micros() as u64);
                finals.push(entry);
            }
            (joins, outcomes, errors, finals)
        }));
    }
    let (mut joins, mut outcome, mut join_errors, mut finals) = (histogram(), histogram(), 0, Vec::new());
    for worker in workers {
        let (latencies, outcomes, errors, worker_finals) = worker.await?;
        let _ = joins.add(&latencies);
        let _ = outcome.add(&outcomes);
        join_errors += errors;
        finals.extend(worker_finals);
    }
    let storm_seconds = started.elapsed().as_secs_f64();

    let (mut reserved, mut sold_out, mut without_session) = (0, 0, 0);
    for entry in &finals {
        match entry["status"].as_str() {
            Some("RESERVED") => {
                reserved += 1;
                without_session += usize::from(entry["checkoutSessionId"].is_null());
            }
            Some("SOLD_OUT") => sold_out += 1,
            _ => {}
        }
    }
    let report_query = "query($s: ID!) { adminFlashSaleReport(saleId: $s) { reserved purchased soldOut discrepancy sale { remaining } } }";
    let sale_report =
        client.gql(report_query, json!({ "s": sale }), Some(&admin)).await?["adminFlashSaleReport"].clone();
    let mut rows = vec![
        row("joinFlashSale", &joins, join_errors, storm_seconds),
        row("outcome known", &outcome, 0, storm_seconds),
    ];
    let mut extra = json!({ "connections": options.connections, "shoppers": tokens.len(), "units": options.units,
        "reserved": reserved, "sold_out": sold_out, "holds_without_session": without_session, "report": sale_report,
        "storm_seconds": storm_seconds });
    if options.subscribers > 0 {
        let (tick_row, waiting) = waiting_room(options, server, &client, &admin).await?;
        rows.push(tick_row);
        extra["waiting_room"] = waiting;
    }
    report(options, server, rows, extra).await
}

/// S guests wait in a sale that lets one through a second, each watching its entry on a
/// websocket of its own: memory per subscriber, and how long each tick's pushes take to reach
/// every subscriber.
async fn waiting_room(
    options: &Options,
    server: &Server,
    client: &Client,
    admin: &str,
) -> anyhow::Result<(Value, Value)> {
    let sale = flash_sale(client, admin, &CatalogGenerator::product_id(1), 1_000, 60).await?;
    let tokens = guests(client, options.subscribers, 64).await;
    let joined: Vec<anyhow::Result<Value>> = futures::stream::iter(tokens.iter())
        .map(|token| client.gql(JOIN, json!({ "s": sale }), Some(token)))
        .buffer_unordered(64)
        .collect()
        .await;
    anyhow::ensure!(joined.iter().all(Result::is_ok), "every subscriber joins");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, before) = server.memory_mib();
    let url = server.ws_url();
    let query = format!("subscription {{ flashSaleEntryUpdated(saleId: \"{sale}\") {{ status position }} }}");
    let opened: Vec<anyhow::Result<(Socket, Value)>> = futures::stream::iter(tokens.iter())
        .map(|token| watch(&url, token, &query))
        .buffer_unordered(64)
        .collect()
        .await;
    // Those let through already get no ticks: their entry no longer moves with the queue.
    let sockets: Vec<Socket> = opened
        .into_iter()
        .filter_map(Result::ok)
        .filter(|(_, first)| first["payload"]["data"]["flashSaleEntryUpdated"]["status"] == "WAITING")
        .map(|(socket, _)| socket)
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, after) = server.memory_mib();
    // Each subscriber's pushes for 5 s: a tick's pushes all carry the same front of the queue,
    // so the spread of one position's arrivals is how long that tick took to reach everyone.
    let watching = Duration::from_secs(5);
    let arrivals: Vec<Vec<Instant>> = futures::future::join_all(sockets.into_iter().map(|mut socket| async move {
        let deadline = Instant::now() + watching;
        let mut seen = Vec::new();
        while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline.into(), socket.next()).await {
            if matches!(message, Message::Text(_)) {
                seen.push(Instant::now());
            }
        }
        seen
    }))
    .await;
    let subscribers = arrivals.len();
    let reached = arrivals.iter().filter(|a| !a.is_empty()).count();
    // The first push after watching began, per subscriber: one tick's broadcast.
    let firsts: Vec<Instant> = arrivals.iter().filter_map(|a| a.first().copied()).collect();
    let spread = match (firsts.iter().min(), firsts.iter().max()) {
        (Some(first), Some(last)) => last.duration_since(*first).as_secs_f64() * 1000.0,
        _ => 0.0,
    };
    let pushes: usize = arrivals.iter().map(Vec::len).sum();
    let mut spread_histogram = histogram();
    let _ = spread_histogram.record((spread * 1000.0) as u64);
    let tick_row = row("tick reaches all (ms)", &spread_histogram, (subscribers - reached) as u64, 1.0);
    let per_subscriber_kib = (after - before) * 1024.0 / subscribers.max(1) as f64;
    Ok((
        tick_row,
        json!({ "subscribers": subscribers, "reached_in_5s": reached, "pushes_in_5s": pushes,
            "first_tick_spread_ms": spread, "server_rss_before_mib": before, "server_rss_after_mib": after,
            "kib_per_subscriber": per_subscriber_kib, "mib_for_20000": per_subscriber_kib * 20_000.0 / 1024.0 }),
    ))
}

/// A websocket of `token`'s running `query`, past the ack and the first push (returned): it is
/// live.
async fn watch(url: &str, token: &str, query: &str) -> anyhow::Result<(Socket, Value)> {
    let mut request = url.into_client_request()?;
    request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
    socket.send(Message::text(init.to_string())).await?;
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": { "query": query } });
    socket.send(Message::text(subscribe.to_string())).await?;
    let mut seen = 0;
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) if seen == 1 => return Ok((socket, serde_json::from_str(&text)?)),
            Some(Ok(Message::Text(_))) => seen += 1,
            Some(Ok(_)) => {}
            other => anyhow::bail!("subscription failed: {other:?}"),
        }
    }
}
