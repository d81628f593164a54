//! GraphQL over HTTP and websockets: content negotiation, method rules, limits, and the
//! operational endpoints.

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{Backend, PASSWORD, ServerOptions, TestServer, error_code};
use crate::on_both_backends;

const SIGN_UP: &str =
    r#"mutation { signUp(email: "csrf@example.com", password: "correct horse battery", name: "X") { token } }"#;

on_both_backends!(only_json_bodies_execute, |backend: Backend| async move {
    let server = TestServer::start(backend).await;
    let body = json!({ "query": SIGN_UP }).to_string();
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
        let response = server
            .client
            .post(server.url("/graphql"))
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 415, "{content_type}");
        assert_eq!(error_code(&response.json::<Value>().await.expect("json")), "BAD_USER_INPUT");
    }
    assert_eq!(
        error_code(&server.sign_in("csrf@example.com", PASSWORD).await),
        "UNAUTHENTICATED",
        "the mutation did not run"
    );

    let malformed = server
        .client
        .post(server.url("/graphql"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_eq!(malformed.status(), 400);
    let charset = server
        .client
        .post(server.url("/graphql"))
        .header("content-type", "application/json; charset=utf-8")
        .body(json!({ "query": "{ me { id } }" }).to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(charset.status(), 200);
});

on_both_backends!(get_runs_queries_but_never_mutations, |backend: Backend| async move {
    let server = TestServer::start(backend).await;
    let query = server
        .client
        .get(server.url("/graphql"))
        .query(&[("query", "{ categories { id } }")])
        .send()
        .await
        .expect("get");
    assert_eq!(query.status(), 200);
    assert!(query.json::<Value>().await.expect("json")["data"]["categories"].is_array());

    let mutation = server.client.get(server.url("/graphql")).query(&[("query", SIGN_UP)]).send().await.expect("get");
    assert_eq!(mutation.status(), 405);
    assert_eq!(mutation.headers()["allow"], "POST");
    let named = server
        .client
        .get(server.url("/graphql"))
        .query(&[("query", "query A { me { id } } mutation B { startGuestSession { token } }"), ("operationName", "B")])
        .send()
        .await
        .expect("get");
    assert_eq!(named.status(), 405);
    assert_eq!(error_code(&server.sign_in("csrf@example.com", PASSWORD).await), "UNAUTHENTICATED");

    let with_variables = server
        .client
        .get(server.url("/graphql"))
        .query(&[("query", "query($id: ID!) { product(id: $id) { id } }"), ("variables", r#"{"id":"nope"}"#)])
        .send()
        .await
        .expect("get");
    assert_eq!(with_variables.json::<Value>().await.expect("json")["data"]["product"], Value::Null);
});

on_both_backends!(responses_follow_the_accept_header, |backend: Backend| async move {
    let server = TestServer::start(backend).await;
    let post = |accept: Option<&'static str>, query: &'static str| {
        let mut request = server.client.post(server.url("/graphql")).json(&json!({ "query": query }));
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        request.send()
    };
    for accept in
        [None, Some("application/json"), Some("application/graphql-response+json, application/json;q=0.9"), Some("*/*")]
    {
        let response = post(accept, "{ me { id } }").await.expect("post");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json", "{accept:?}");
    }
    let modern = post(Some("application/graphql-response+json"), "{ me { id } }").await.expect("post");
    assert_eq!(modern.headers()["content-type"], "application/graphql-response+json");
    let invalid = post(Some("application/graphql-response+json"), "{ nope }").await.expect("post");
    assert_eq!(invalid.status(), 400, "a request error is a 400 under graphql-response+json");
    let body: Value = invalid.json().await.expect("json");
    assert!(body.get("data").is_none(), "nothing ran, so there is no data entry: {body}");
    let field_error = post(Some("application/graphql-response+json"), "{ cart { id } }").await.expect("post");
    assert_eq!(field_error.status(), 200, "an execution error is not a request error");
    let body: Value = field_error.json().await.expect("json");
    assert!(body.get("data").is_some() && body["errors"][0]["path"] == json!(["cart"]), "{body}");
    let legacy_invalid = post(Some("application/json"), "{ nope }").await.expect("post");
    assert_eq!(legacy_invalid.status(), 200);
    assert_eq!(error_code(&legacy_invalid.json::<Value>().await.expect("json")), "BAD_USER_INPUT");
    assert_eq!(post(Some("text/html"), "{ me { id } }").await.expect("post").status(), 406);
});

fn tiny_limits(config: &mut shop::config::Config) {
    config.max_query_depth = 4;
    config.max_query_cost = 30;
    config.max_body_bytes = 4096;
}

on_both_backends!(oversized_and_overdeep_queries_are_refused, |backend: Backend| async move {
    let server = TestServer::start_with(backend, ServerOptions { tweak: tiny_limits, ..Default::default() }).await;
    let deep = server
        .gql("{ product(id: \"p\") { category { parent { parent { parent { id } } } } } }", json!({}), None)
        .await;
    assert_eq!(error_code(&deep), "BAD_USER_INPUT");
    assert!(deep["errors"][0]["message"].as_str().is_some_and(|m| m.contains("nested too deep")), "{deep}");
    let wide: String = (0..40).map(|i| format!("a{i}: me {{ id }} ")).collect();
    let complex = server.gql(&format!("{{ {wide} }}"), json!({}), None).await;
    assert_eq!(error_code(&complex), "QUERY_TOO_COMPLEX");
    assert_eq!(complex["errors"][0]["message"], "query cost 80 exceeds the limit of 30", "{complex}");
    assert_eq!(complex["data"], Value::Null, "refused whole, before anything ran");
    let huge = json!({ "query": format!("{{ me {{ id }} }} # {}", "x".repeat(10_000)) });
    let response = server.client.post(server.url("/graphql")).json(&huge).send().await.expect("post");
    assert_eq!(response.status(), 413);
    let syntax = server.gql("{ me { ", json!({}), None).await;
    assert_eq!(error_code(&syntax), "BAD_USER_INPUT");
});

on_both_backends!(health_readiness_and_metrics, |backend: Backend| async move {
    let server = TestServer::start(backend).await;
    let get = |path: &'static str| server.client.get(server.url(path)).send();
    assert_eq!(get("/healthz").await.expect("healthz").status(), 200);
    assert_eq!(get("/readyz").await.expect("readyz").status(), 200);
    server.gql("{ me { id } }", json!({}), None).await;
    let metrics = get("/metrics").await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains(r#"shop_http_requests_total{method="POST",route="/graphql",status="200"}"#), "{metrics}");
    assert!(metrics.contains("shop_http_request_duration_seconds_bucket"));
    assert!(metrics.contains("shop_store_statements_total"));
});

on_both_backends!(websockets_need_a_subprotocol_and_a_valid_token, |backend: Backend| async move {
    let server = TestServer::start(backend).await;
    let connect = |protocol: Option<&'static str>| {
        let mut request = server.ws_url().into_client_request().expect("request");
        if let Some(protocol) = protocol {
            request.headers_mut().insert("sec-websocket-protocol", protocol.parse().expect("header"));
        }
        tokio_tungstenite::connect_async(request)
    };
    assert!(connect(None).await.is_err(), "no subprotocol: refused with 400");

    let token = server.guest_token().await;
    for protocol in ["graphql-transport-ws", "graphql-ws"] {
        let (mut socket, _) = connect(Some(protocol)).await.expect("connect");
        let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
        socket.send(Message::text(init.to_string())).await.expect("send");
        let ack = next_json(&mut socket).await;
        assert_eq!(ack["type"], "connection_ack", "{protocol}");
    }

    let (mut socket, _) = connect(Some("graphql-transport-ws")).await.expect("connect");
    let init = json!({ "type": "connection_init", "payload": { "Authorization": "Bearer forged" } });
    socket.send(Message::text(init.to_string())).await.expect("send");
    let refused = socket.next().await;
    assert!(
        matches!(refused, Some(Ok(Message::Close(Some(ref frame)))) if frame.reason.contains("invalid or expired")),
        "a bad token is refused at connection_init: {refused:?}"
    );
});

/// The next protocol message, skipping websocket pings.
pub async fn next_json<S>(socket: &mut S) -> Value
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(5), socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return serde_json::from_str(&text).expect("json"),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

fn quick_init_timeout(config: &mut shop::config::Config) {
    config.ws_init_timeout = chrono::Duration::seconds(1);
}

on_both_backends!(a_websocket_that_never_initialises_is_closed, |backend: Backend| async move {
    let server =
        TestServer::start_with(backend, ServerOptions { tweak: quick_init_timeout, ..Default::default() }).await;
    let mut request = server.ws_url().into_client_request().expect("request");
    request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().expect("header"));
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("connect");
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), socket.next()).await.expect("closed in time");
    assert!(
        matches!(closed, Some(Ok(Message::Close(Some(ref frame)))) if u16::from(frame.code) == 4408),
        "expected 4408, got {closed:?}"
    );
});

/// graphql-js's introspection query as GraphiQL sends it (TypeRef nests ofType nine deep).
const INTROSPECTION: &str = "query IntrospectionQuery { __schema { queryType { name } mutationType { name } subscriptionType { name } types { ...FullType } directives { name description locations args { ...InputValue } } } }
fragment FullType on __Type { kind name description fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason } inputFields { ...InputValue } interfaces { ...TypeRef } enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason } possibleTypes { ...TypeRef } }
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } } }";

on_both_backends!(graphiql_can_introspect_the_schema_under_the_default_limits, |backend: Backend| async move {
    let server = TestServer::start(backend).await;
    let data = server.data(INTROSPECTION, json!({}), None).await;
    let types = data["__schema"]["types"].as_array().expect("types");
    assert!(types.iter().any(|t| t["name"] == "ErrorCode"), "ErrorCode is registered for clients");
    assert_eq!(data["__schema"]["subscriptionType"]["name"], "Subscription");
});

fn impatient_server(config: &mut shop::config::Config) {
    config.http_header_timeout = chrono::Duration::seconds(1);
    config.http_body_timeout = chrono::Duration::seconds(1);
    config.http_idle_timeout = chrono::Duration::seconds(2);
    config.http_max_connections = 4;
}

/// What a raw socket reads until the server closes it (or 5 s pass: then the test fails).
async fn read_until_closed(socket: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt as _;
    let mut received = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(5), socket.read_to_end(&mut received))
        .await
        .expect("the server closes the connection")
        .expect("read");
    String::from_utf8_lossy(&received).into_owned()
}

/// Slowloris: clients that send headers slowly, bodies slowly, or nothing at all are cut off,
/// and while the connection cap is full a newcomer is told 503 instead of being left hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_cannot_hold_connections() {
    use tokio::io::AsyncWriteExt as _;
    let server =
        TestServer::start_with(Backend::Sqlite, ServerOptions { tweak: impatient_server, ..Default::default() }).await;
    let address = server.base.trim_start_matches("http://").to_owned();
    let connect = || tokio::net::TcpStream::connect(address.clone());

    let mut slow_head = connect().await.expect("connect");
    slow_head.write_all(b"GET /healthz HTTP/1.1\r\nhost: shop\r\n").await.expect("write");
    assert_eq!(read_until_closed(&mut slow_head).await, "", "closed without an answer: no head arrived");

    let mut slow_body = connect().await.expect("connect");
    let head = "POST /graphql HTTP/1.1\r\nhost: shop\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n";
    slow_body.write_all(format!("{head}{{\"query\":").as_bytes()).await.expect("write");
    let answer = read_until_closed(&mut slow_body).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("BAD_USER_INPUT") && answer.contains("did not arrive within 1 s"), "{answer}");

    // Each reading comes over a connection of its own, which it counts.
    let open = || async {
        let metrics = reqwest::Client::new().get(server.url("/metrics")).header("connection", "close").send();
        let text = metrics.await.expect("metrics").text().await.expect("text");
        let line = text.lines().find(|l| l.starts_with("shop_connections_open ")).expect("gauge").to_owned();
        line.trim_start_matches("shop_connections_open ").parse::<f64>().expect("number")
    };
    while open().await > 1.0 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The reading's own connection closes too.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(connect().await.expect("connect"));
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let turned_away = reqwest::Client::new().get(server.url("/healthz")).send().await.expect("an answer");
    assert_eq!(turned_away.status(), 503, "the cap of 4 is full of idle sockets");
    assert_eq!(turned_away.headers()["retry-after"], "1");
    for socket in &mut idle {
        assert_eq!(read_until_closed(socket).await, "", "silent sockets are closed at the header deadline");
    }
    let kept_alive = reqwest::Client::new();
    let served = kept_alive.get(server.url("/healthz")).send().await.expect("an answer");
    assert_eq!(served.status(), 200, "their places are free again");
    // An earlier reading's connection may still be closing on the server: read until it has.
    let mut counted = open().await;
    for _ in 0..10 {
        if counted <= 2.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        counted = open().await;
    }
    assert_eq!(counted, 2.0, "the kept-alive connection and the one asking");
    tokio::time::sleep(std::time::Duration::from_millis(3000)).await;
    assert_eq!(open().await, 1.0, "a kept-alive connection idle past its deadline is closed");
    let metrics = reqwest::Client::new().get(server.url("/metrics")).send().await.expect("metrics");
    let metrics = metrics.text().await.expect("text");
    assert!(metrics.contains("shop_connections_refused_total 1"), "{metrics}");
}

/// The GraphQL-over-HTTP audits of npm's graphql-http (vendored under `vendor/graphql-http`),
/// run by Node.js against a live server: every one passes, the MAYs and SHOULDs included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graphql_over_http_audits_all_pass() {
    let server = TestServer::start(Backend::Sqlite).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = tokio::process::Command::new("node")
        .arg(root.join("tests/fixtures/graphql-http-audit.js"))
        .arg(root.join("vendor/graphql-http/graphql-http-audits.js"))
        .arg(server.url("/graphql"))
        .output()
        .await
        .expect("Node.js (`node`) runs the graphql-http audits");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let audits: Vec<Value> = serde_json::from_slice(&output.stdout).expect("audit results");
    let failed: Vec<&Value> = audits.iter().filter(|audit| audit["status"] != "ok").collect();
    assert_eq!(audits.len(), 61, "the audits of graphql-http 1.23.1");
    assert!(failed.is_empty(), "{failed:#?}");
}
