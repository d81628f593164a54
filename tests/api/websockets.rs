//! Websocket limits (contract note 19): initialisation, subscriptions per connection, keepalive,
//! token expiry, sockets per address.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use shop::config::Config;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::graphql_http::next_json;
use crate::helpers::{Backend, ServerOptions, TestServer};
use crate::on_both_backends;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const CART_UPDATED: &str = "subscription { cartUpdated { totalQuantity } }";

fn tight(config: &mut Config) {
    config.ws_max_subscriptions = 2;
    config.ws_keepalive = chrono::Duration::seconds(1);
    config.ws_max_connections_per_address = 3;
    config.access_token_ttl = chrono::Duration::seconds(3);
}

fn tight_with_quick_init(config: &mut Config) {
    tight(config);
    config.ws_init_timeout = chrono::Duration::seconds(1);
}

async fn server(backend: Backend) -> TestServer {
    TestServer::start_with(backend, ServerOptions { tweak: tight, ..Default::default() }).await
}

async fn connect(server: &TestServer) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let mut request = server.ws_url().into_client_request().expect("request");
    request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().expect("header"));
    tokio_tungstenite::connect_async(request).await.map(|(socket, _)| socket)
}

async fn send(socket: &mut Socket, message: Value) {
    socket.send(Message::text(message.to_string())).await.expect("send");
}

async fn initialised(server: &TestServer, token: &str) -> Socket {
    let mut socket = connect(server).await.expect("connect");
    send(&mut socket, json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } }))
        .await;
    assert_eq!(next_json(&mut socket).await["type"], "connection_ack");
    socket
}

async fn subscribe(socket: &mut Socket, id: &str) {
    send(socket, json!({ "id": id, "type": "subscribe", "payload": { "query": CART_UPDATED } })).await;
}

/// How the socket ends: the close code, or none when it was dropped without one.
async fn end_of(socket: &mut Socket, within: Duration) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await.expect("the socket ended in time") {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

on_both_backends!(a_ping_does_not_count_as_initialisation, |backend: Backend| async move {
    let options = ServerOptions { tweak: tight_with_quick_init, ..Default::default() };
    let server = TestServer::start_with(backend, options).await;
    let mut socket = connect(&server).await.expect("connect");
    for _ in 0..3 {
        send(&mut socket, json!({ "type": "ping" })).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(end_of(&mut socket, Duration::from_secs(5)).await, Some(4408));
});

on_both_backends!(one_connection_runs_a_bounded_number_of_subscriptions, |backend: Backend| async move {
    let server = server(backend).await;
    let guest = server.guest_token().await;
    let mut socket = initialised(&server, &guest).await;
    for id in ["1", "2"] {
        subscribe(&mut socket, id).await;
        let first = next_json(&mut socket).await;
        assert_eq!((first["type"].as_str(), first["id"].as_str()), (Some("next"), Some(id)), "{first}");
    }
    subscribe(&mut socket, "3").await;
    let refused = next_json(&mut socket).await;
    assert_eq!((refused["type"].as_str(), refused["id"].as_str()), (Some("error"), Some("3")), "{refused}");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "RATE_LIMITED");

    send(&mut socket, json!({ "id": "1", "type": "complete" })).await;
    assert_eq!(next_json(&mut socket).await, json!({ "id": "1", "type": "complete" }));
    subscribe(&mut socket, "4").await;
    let admitted = next_json(&mut socket).await;
    assert_eq!((admitted["type"].as_str(), admitted["id"].as_str()), (Some("next"), Some("4")), "{admitted}");
});

on_both_backends!(the_socket_closes_with_4401_when_its_token_expires, |backend: Backend| async move {
    let server = server(backend).await;
    let (token, _) = server.sign_up("short-lived@example.com").await;
    let mut socket = initialised(&server, &token).await;
    subscribe(&mut socket, "1").await;
    assert_eq!(next_json(&mut socket).await["type"], "next");
    assert_eq!(end_of(&mut socket, Duration::from_secs(6)).await, Some(4401));
});

on_both_backends!(the_server_pings_and_drops_a_silent_peer, |backend: Backend| async move {
    let server = server(backend).await;
    let guest = server.guest_token().await;
    let mut socket = initialised(&server, &guest).await;
    let ping = tokio::time::timeout(Duration::from_secs(3), socket.next()).await.expect("pinged in time");
    assert!(matches!(ping, Some(Ok(Message::Ping(_)))), "{ping:?}");
    // A peer that answers pings (tungstenite does, while it reads) stays connected.
    let answered = tokio::time::timeout(Duration::from_millis(3_500), socket.next()).await;
    assert!(matches!(answered, Ok(Some(Ok(Message::Ping(_))))), "{answered:?}");
    // One that stops reading stops answering, and is dropped after two silent rounds.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(end_of(&mut socket, Duration::from_secs(5)).await, None);
});

on_both_backends!(one_address_holds_a_bounded_number_of_sockets, |backend: Backend| async move {
    let server = server(backend).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(connect(&server).await.expect("connect"));
    }
    match connect(&server).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 429),
        other => panic!("expected a 429, got {:?}", other.map(|_| "a socket")),
    }
    let mut closed = open.pop().expect("socket");
    closed.close(None).await.expect("close");
    let mut reopened = None;
    for _ in 0..50 {
        if let Ok(socket) = connect(&server).await {
            reopened = Some(socket);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reopened.is_some(), "a closed socket frees its place");
});

on_both_backends!(shutdown_closes_sockets_with_going_away, |backend: Backend| async move {
    let server = server(backend).await;
    let guest = server.guest_token().await;
    let mut socket = initialised(&server, &guest).await;
    subscribe(&mut socket, "1").await;
    assert_eq!(next_json(&mut socket).await["type"], "next");
    let stopping = tokio::spawn(server.stop());
    assert_eq!(end_of(&mut socket, Duration::from_secs(5)).await, Some(1001));
    tokio::time::timeout(Duration::from_secs(15), stopping).await.expect("stopped in time").expect("stop");
});
