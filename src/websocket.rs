//! GraphQL over websockets (graphql-transport-ws and the legacy graphql-ws), with the limits of
//! contract note 19 around async-graphql's protocol handler:
//! - `connection_init` must come within the init timeout (a ping does not count), else 4408;
//! - at most `ws_max_subscriptions` operations run at once on a connection; the next `subscribe`
//!   gets an `error` message with RATE_LIMITED;
//! - the server pings every `ws_keepalive` and drops a connection silent for two rounds;
//! - the connection closes with 4401 when the token given at `connection_init` expires;
//! - one client address holds at most `ws_max_connections_per_address` sockets on an instance;
//! - at shutdown every socket closes with 1001 (going away), so clients reconnect elsewhere.
//!
//! The handler writes into a channel instead of the socket, so that one writer task can also
//! send pings and close frames, and watch which operations the server has completed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::watch;

use crate::domain::limits::address_subject;
use crate::error::{ApiError, ErrorCode};
use crate::http::{HttpState, request_data, request_error};
use crate::loaders::Loaders;
use crate::resolvers::ClientAddress;

const WS_BUFFER_BYTES: usize = 4096;
/// Messages the protocol handler may queue for the writer before it waits.
const OUTGOING_QUEUE: usize = 64;
const CLOSE_INIT_TIMEOUT: u16 = 4408;
const CLOSE_TOKEN_EXPIRED: u16 = 4401;
const CLOSE_GOING_AWAY: u16 = 1001;

/// Open sockets per client address on this instance.
#[derive(Default, Clone)]
pub(crate) struct OpenSockets(Arc<Mutex<HashMap<String, usize>>>);

/// One open socket, counted until dropped.
struct SocketPermit {
    counts: Arc<Mutex<HashMap<String, usize>>>,
    subject: String,
}

impl OpenSockets {
    fn open(&self, client: ClientAddress, most: usize) -> Option<SocketPermit> {
        let subject = address_subject(client.0);
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let open = counts.entry(subject.clone()).or_default();
        if *open >= most {
            return None;
        }
        *open += 1;
        Some(SocketPermit { counts: self.0.clone(), subject })
    }
}

impl Drop for SocketPermit {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = counts.get_mut(&self.subject) {
            *open -= 1;
            if *open == 0 {
                counts.remove(&self.subject);
            }
        }
    }
}

pub(crate) async fn graphql_ws(
    State(state): State<HttpState>,
    client: ClientAddress,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let config = state.app.config.clone();
    let Some(permit) = state.sockets.open(client, config.ws_max_connections_per_address) else {
        return request_error(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            "too many open websockets from this address",
        );
    };
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        // tungstenite's defaults (128 KiB buffers, 64 MiB messages) cost ~145 KiB per idle
        // subscription and accept huge frames; GraphQL messages are small.
        .read_buffer_size(WS_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_message_size(config.max_body_bytes)
        .max_frame_size(config.max_body_bytes)
        .on_upgrade(move |socket| async move {
            serve(state, client, protocol, socket).await;
            drop(permit);
        })
}

async fn serve(state: HttpState, client: ClientAddress, protocol: GraphQLProtocol, socket: WebSocket) {
    let config = state.app.config.clone();
    let (mut sink, mut incoming) = socket.split();
    // async-graphql waits forever for connection_init; wait only so long. Whatever comes first
    // (a protocol ping, say) waits with it and does not count.
    let init_timeout = config.ws_init_timeout.to_std().unwrap_or(Duration::from_secs(10));
    let mut early = Vec::new();
    let waiting_for_init = async {
        while let Some(Ok(message)) = incoming.next().await {
            let is_init = matches!(&message, Message::Text(text) if is_connection_init(text.as_str()));
            early.push(Ok(message));
            if is_init {
                return true;
            }
        }
        false
    };
    match tokio::time::timeout(init_timeout, waiting_for_init).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(_) => {
            let close = CloseFrame { code: CLOSE_INIT_TIMEOUT, reason: "Connection initialisation timeout".into() };
            let _ = sink.send(Message::Close(Some(close))).await;
            return;
        }
    }

    let (outgoing, queued) = mpsc::channel::<Message>(OUTGOING_QUEUE);
    let operations = Arc::new(Operations::new(config.ws_max_subscriptions));
    let (expiry_known, expiry) = watch::channel::<Option<DateTime<Utc>>>(None);
    let guarded = futures::stream::iter(early).chain(incoming).filter_map({
        let operations = operations.clone();
        let mut refusals = outgoing.clone();
        move |message| {
            let passed = match &message {
                Ok(Message::Text(text)) => match operations.admit(text.as_str()) {
                    Admitted::Yes => true,
                    Admitted::No(refusal) => {
                        // A full queue means the client is not reading; it gets no answer then.
                        let _ = refusals.try_send(Message::Text(refusal.into()));
                        false
                    }
                },
                _ => true,
            };
            operations.heard();
            futures::future::ready(passed.then_some(message))
        }
    });

    let app = state.app.clone();
    let handler = GraphQLWebSocket::new_with_pair(outgoing, guarded, state.executor.clone(), protocol)
        .on_connection_init(move |payload| async move {
            let authorization =
                ["Authorization", "authorization"].iter().find_map(|key| payload.get(*key).and_then(|v| v.as_str()));
            let session = app
                .auth
                .session_from_authorization(authorization)
                .map_err(|err| async_graphql::Error::from(ApiError::from(err)))?;
            let viewer = session.map(|(viewer, expires_at)| {
                let _ = expiry_known.send(Some(expires_at));
                viewer
            });
            Ok(request_data(viewer, client, Loaders::uncached(&app)))
        })
        .serve();
    let writer = write_out(state, sink, queued, operations, expiry);
    tokio::pin!(handler, writer);
    tokio::select! {
        // The writer stopped the connection (expired token, dead peer): stop serving it.
        () = &mut writer => {}
        // The client went away or the handler closed: send what it queued, then stop.
        () = &mut handler => writer.await,
    }
}

/// Sends the handler's messages, pings, and the closing frame when the token expires; ends when
/// the handler is done, the socket fails, or the peer has been silent two keepalive rounds.
async fn write_out(
    state: HttpState,
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    mut queued: mpsc::Receiver<Message>,
    operations: Arc<Operations>,
    mut expiry: watch::Receiver<Option<DateTime<Utc>>>,
) {
    let keepalive = state.app.config.ws_keepalive.to_std().unwrap_or(Duration::from_secs(30));
    let mut pings = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
    let expires = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(expires);
    let mut watching_expiry = true;
    loop {
        tokio::select! {
            message = queued.next() => {
                let Some(message) = message else { return };
                if let Message::Text(text) = &message {
                    operations.sent(text.as_str());
                }
                if sink.send(message).await.is_err() {
                    return;
                }
            }
            _ = pings.tick() => {
                if operations.silent_for() > keepalive * 2 {
                    tracing::debug!("dropping a websocket whose peer stopped answering");
                    return;
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            changed = expiry.changed(), if watching_expiry => {
                // Sent once, at connection_init; the sender is gone after that.
                watching_expiry = changed.is_ok();
                if let Some(moment) = *expiry.borrow_and_update() {
                    expires.as_mut().reset(tokio::time::Instant::now() + state.app.auth.time_until(moment));
                }
            }
            () = &mut expires => {
                let close = CloseFrame { code: CLOSE_TOKEN_EXPIRED, reason: "Token expired".into() };
                let _ = sink.send(Message::Close(Some(close))).await;
                return;
            }
            () = state.closing.cancelled() => {
                let close = CloseFrame { code: CLOSE_GOING_AWAY, reason: "Server shutting down".into() };
                let _ = sink.send(Message::Close(Some(close))).await;
                return;
            }
        }
    }
}

fn is_connection_init(text: &str) -> bool {
    serde_json::from_str::<Envelope>(text).is_ok_and(|envelope| envelope.kind == "connection_init")
}

/// The operations running on one connection, and when the peer was last heard.
struct Operations {
    most: usize,
    running: Mutex<HashSet<String>>,
    last_heard: Mutex<Instant>,
}

enum Admitted {
    Yes,
    /// Refused, with the protocol's error message to send instead.
    No(String),
}

/// The fields of a protocol message this layer looks at.
#[derive(serde::Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: Option<String>,
}

impl Operations {
    fn new(most: usize) -> Self {
        Self { most, running: Mutex::default(), last_heard: Mutex::new(Instant::now()) }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn heard(&self) {
        *self.last_heard.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    fn silent_for(&self) -> Duration {
        self.last_heard.lock().unwrap_or_else(PoisonError::into_inner).elapsed()
    }

    /// A client message: a new operation (`subscribe`, legacy `start`) is let through while
    /// there is room; `complete` (legacy `stop`) frees its place.
    fn admit(&self, text: &str) -> Admitted {
        let Ok(Envelope { kind, id: Some(id) }) = serde_json::from_str::<Envelope>(text) else { return Admitted::Yes };
        match kind.as_str() {
            "subscribe" | "start" => {
                let mut running = self.running();
                if running.len() >= self.most && !running.contains(&id) {
                    let error = json!({
                        "message": format!("at most {} subscriptions may run on one connection", self.most),
                        "extensions": { "code": ErrorCode::RateLimited.as_str() },
                    });
                    // graphql-transport-ws sends a list of errors; the legacy protocol one error.
                    let payload = if kind == "subscribe" { json!([error]) } else { error };
                    return Admitted::No(json!({ "type": "error", "id": id, "payload": payload }).to_string());
                }
                running.insert(id);
            }
            "complete" | "stop" => {
                self.running().remove(&id);
            }
            _ => {}
        }
        Admitted::Yes
    }

    /// A server message: `complete` and `error` end their operation.
    fn sent(&self, text: &str) {
        if let Ok(Envelope { kind, id: Some(id) }) = serde_json::from_str::<Envelope>(text)
            && matches!(kind.as_str(), "complete" | "error")
        {
            self.running().remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_connection_refuses_the_next_subscription_until_one_completes() {
        let operations = Operations::new(2);
        let subscribe = |id: &str| json!({ "type": "subscribe", "id": id, "payload": {} }).to_string();
        assert!(matches!(operations.admit(&subscribe("1")), Admitted::Yes));
        assert!(matches!(operations.admit(&subscribe("2")), Admitted::Yes));
        let Admitted::No(refusal) = operations.admit(&subscribe("3")) else { panic!("admitted a third") };
        let refusal: serde_json::Value = serde_json::from_str(&refusal).expect("json");
        assert_eq!(refusal["id"], "3");
        assert_eq!(refusal["payload"][0]["extensions"]["code"], "RATE_LIMITED");
        operations.admit(&json!({ "type": "complete", "id": "1" }).to_string());
        assert!(matches!(operations.admit(&subscribe("3")), Admitted::Yes));
        operations.sent(&json!({ "type": "complete", "id": "2" }).to_string());
        assert!(matches!(operations.admit(&subscribe("4")), Admitted::Yes), "a server-completed one frees its place");
    }

    #[test]
    fn sockets_are_counted_per_address_until_closed() {
        let sockets = OpenSockets::default();
        let client = ClientAddress("192.0.2.1".parse().expect("address"));
        let first = sockets.open(client, 1).expect("first");
        assert!(sockets.open(client, 1).is_none());
        drop(first);
        assert!(sockets.open(client, 1).is_some());
    }
}
