//! The HTTP surface: GraphQL over HTTP (a strict handler, see below), websockets (`websocket`), the offline
//! GraphiQL playground, health, readiness and metrics.
//!
//! async-graphql's stock axum handler executes mutations sent as `text/plain` (a CSRF hole, as
//! browsers send that cross-origin without preflight) and over GET, and ignores `Accept`. This
//! handler accepts only JSON bodies (415 otherwise), negotiates the response type (406 when
//! nothing acceptable), runs queries only over GET (405 for mutations) and answers
//! `application/json` whenever the client accepts it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::{Data, Executor};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{Any, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;

use crate::app::AppContext;
use crate::domain::auth::Viewer;
use crate::error::{ApiError, ErrorCode};
use crate::loaders::Loaders;
use crate::metrics::{HttpLabels, RouteLabels};
use crate::playground;
use crate::resolvers::{ClientAddress, ShopExecutor};
use crate::rest;
use crate::websocket::{self, OpenSockets};

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
const APPLICATION_JSON: &str = "application/json";

/// Cloned for every extractor of every request: all of it is shared behind pointers.
#[derive(Clone)]
pub(crate) struct HttpState {
    pub(crate) app: Arc<AppContext>,
    pub(crate) executor: ShopExecutor,
    pub(crate) sockets: OpenSockets,
    /// Cancelled at shutdown: websockets close with 1001.
    pub(crate) closing: CancellationToken,
}

pub fn router(app: AppContext, executor: ShopExecutor, closing: CancellationToken) -> Router {
    let body_limit = app.config.max_body_bytes;
    let state = HttpState { app: Arc::new(app), executor, sockets: OpenSockets::default(), closing };
    let cors = CorsLayer::new().allow_origin(Any).allow_methods([Method::GET, Method::POST]).allow_headers([
        header::AUTHORIZATION,
        header::CONTENT_TYPE,
        header::ACCEPT,
    ]);
    Router::new()
        .route("/", get(playground_page))
        .route("/playground/{asset}", get(playground_asset))
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/graphql/ws", get(websocket::graphql_ws))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(rest::routes())
        .layer(middleware::from_fn_with_state(state.clone(), read_body_in_time))
        .layer(middleware::from_fn_with_state(state.clone(), track_metrics))
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(cors)
        .with_state(state)
}

/// A GraphQL-shaped error response for failures before execution.
pub(crate) fn request_error(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code.as_str() } }] });
    (status, Json(body)).into_response()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum MediaType {
    Json,
    GraphqlResponseJson,
}

/// `application/json` whenever acceptable (legacy clients and the spec's MUST); otherwise
/// `application/graphql-response+json`; `None` if neither is acceptable.
fn negotiate(headers: &HeaderMap) -> Option<MediaType> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).filter(|a| !a.trim().is_empty())
    else {
        return Some(MediaType::Json);
    };
    let ranges: Vec<String> = accept
        .split(',')
        .map(|range| range.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .collect();
    if ranges.iter().any(|r| r == APPLICATION_JSON || r == "*/*" || r == "application/*") {
        Some(MediaType::Json)
    } else if ranges.iter().any(|r| r == GRAPHQL_RESPONSE_JSON) {
        Some(MediaType::GraphqlResponseJson)
    } else {
        None
    }
}

/// The viewer of a request; a present but bad token is an error, never an anonymous call.
pub(crate) fn viewer_of(app: &AppContext, headers: &HeaderMap) -> Result<Option<Viewer>, ApiError> {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    app.auth.viewer_from_authorization(authorization).map_err(ApiError::from)
}

fn unauthorized(err: &ApiError) -> Response {
    let mut response = request_error(StatusCode::UNAUTHORIZED, err.code, &err.message);
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Request-scoped data every resolver may rely on.
pub(crate) fn request_data(viewer: Option<Viewer>, client: ClientAddress, loaders: Loaders) -> Data {
    let mut data = Data::default();
    data.insert(loaders);
    data.insert(client);
    if let Some(viewer) = viewer {
        data.insert(viewer);
    }
    data
}

async fn execute(
    state: &HttpState,
    headers: &HeaderMap,
    client: ClientAddress,
    request: async_graphql::Request,
    media: MediaType,
) -> Response {
    // async-graphql reads a request without `query` as an empty document; the spec calls it
    // invalid parameters, whatever the client accepts.
    if request.query.is_empty() {
        return request_error(StatusCode::BAD_REQUEST, ErrorCode::BadUserInput, "the request has no `query`");
    }
    let viewer = match viewer_of(&state.app, headers) {
        Ok(viewer) => viewer,
        Err(err) => return unauthorized(&err),
    };
    let mut request = request;
    request.data = request_data(viewer, client, Loaders::new(&state.app));
    let response = state.executor.execute(request).await;
    // A request error (parse, validation, cost: refused before execution, so no error has a
    // path) has no `data` entry at all, and under graphql-response+json it is a 400.
    let refused = response.data == async_graphql::Value::Null
        && response.is_err()
        && response.errors.iter().all(|error| error.path.is_empty());
    let status =
        if refused && media == MediaType::GraphqlResponseJson { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let content_type = match media {
        MediaType::Json => APPLICATION_JSON,
        MediaType::GraphqlResponseJson => GRAPHQL_RESPONSE_JSON,
    };
    let body =
        if refused { serde_json::to_vec(&json!({ "errors": response.errors })) } else { serde_json::to_vec(&response) };
    match body {
        Ok(body) => (status, [(header::CONTENT_TYPE, content_type)], body).into_response(),
        Err(err) => {
            let err = ApiError::internal("serializing a GraphQL response", &err);
            request_error(StatusCode::INTERNAL_SERVER_ERROR, err.code, &err.message)
        }
    }
}

async fn graphql_post(
    State(state): State<HttpState>,
    client: ClientAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(media) = negotiate(&headers) else {
        return request_error(
            StatusCode::NOT_ACCEPTABLE,
            ErrorCode::BadUserInput,
            "accept application/json or application/graphql-response+json",
        );
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if essence != APPLICATION_JSON {
        return request_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::BadUserInput,
            "POST /graphql needs Content-Type: application/json",
        );
    }
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            return request_error(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadUserInput,
                &format!("malformed GraphQL request: {err}"),
            );
        }
    };
    execute(&state, &headers, client, request, media).await
}

/// GET parameters as the GraphQL-over-HTTP spec names them (async-graphql's own
/// `parse_query_string` expects `operation_name`, so `operationName` would be ignored).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetParams {
    #[serde(default)]
    query: String,
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

impl GetParams {
    fn into_request(self) -> Result<async_graphql::Request, String> {
        fn parse<T: serde::de::DeserializeOwned + Default>(text: Option<String>, what: &str) -> Result<T, String> {
            text.filter(|t| !t.is_empty())
                .map_or(Ok(T::default()), |t| serde_json::from_str(&t).map_err(|e| format!("{what}: {e}")))
        }
        let mut request = async_graphql::Request::new(self.query).variables(parse(self.variables, "variables")?);
        request.extensions = parse(self.extensions, "extensions")?;
        if let Some(name) = self.operation_name.filter(|n| !n.is_empty()) {
            request = request.operation_name(name);
        }
        Ok(request)
    }
}

async fn graphql_get(
    State(state): State<HttpState>,
    client: ClientAddress,
    headers: HeaderMap,
    params: Result<Query<GetParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(media) = negotiate(&headers) else {
        return request_error(
            StatusCode::NOT_ACCEPTABLE,
            ErrorCode::BadUserInput,
            "accept application/json or application/graphql-response+json",
        );
    };
    let request = match params.map_err(|e| e.body_text()).and_then(|Query(params)| params.into_request()) {
        Ok(request) => request,
        Err(err) => {
            return request_error(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadUserInput,
                &format!("malformed GraphQL request: {err}"),
            );
        }
    };
    if request.query.is_empty() {
        return request_error(StatusCode::BAD_REQUEST, ErrorCode::BadUserInput, "missing `query` parameter");
    }
    if !is_query_operation(&state.executor, &request) {
        let mut response = request_error(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::BadUserInput,
            "only queries may be sent with GET; use POST for mutations",
        );
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    execute(&state, &headers, client, request, media).await
}

/// Whether the operation a request selects is a query. Unparsable documents count as queries:
/// execution then reports the syntax error.
fn is_query_operation(executor: &ShopExecutor, request: &async_graphql::Request) -> bool {
    let Ok(document) = executor.document(&request.query) else { return true };
    let selected = match (&document.operations, request.operation_name.as_deref()) {
        (DocumentOperations::Single(operation), _) => Some(operation.node.ty),
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name).map(|op| op.node.ty),
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next().map(|op| op.node.ty)
        }
        (DocumentOperations::Multiple(_), None) => None,
    };
    selected.is_none_or(|ty| ty == OperationType::Query)
}

/// The handlers that need the caller's address (GraphQL, REST, websockets) extract it; other
/// routes pay nothing for it.
impl FromRequestParts<HttpState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &HttpState) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(peer)| peer.ip());
        Ok(ClientAddress(client_address(peer, &parts.headers, &state.app.config.trusted_proxies)))
    }
}

/// The peer, or when the peer is a trusted proxy, the nearest address in `X-Forwarded-For`
/// that is not a trusted proxy: everything left of it the client could have written itself.
fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|address| address.trim().parse().ok())
        .collect();
    forwarded.iter().rev().find(|address| !trusted.contains(address)).or(forwarded.first()).copied().unwrap_or(peer)
}

/// 200 once the store answers, the first-start catalog is in place and the search index
/// answers; 503 before. The body names each backend's state. Redis is reported, never a reason
/// to be unready: without it the cache and bus degrade to the store, which is the truth.
async fn readyz(State(state): State<HttpState>) -> Response {
    let app = &state.app;
    let store = match app.db.ping().await {
        Ok(()) => true,
        Err(err) => {
            tracing::warn!(error = %err, "readiness: store unreachable");
            false
        }
    };
    let catalog = app.catalog_ready.load(Ordering::Acquire);
    let search = app.search.is_up().await;
    let up = |ok: bool| if ok { "up" } else { "down" };
    let mut body = json!({
        "store": up(store),
        "catalog": if catalog { "ready" } else { "loading" },
        "search": up(search),
    });
    if let Some(redis) = &app.redis {
        body["redis"] = json!(up(redis.ping().await));
    }
    let status = if store && catalog && search { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<HttpState>) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.app.metrics.render())
        .into_response()
}

/// Reads the whole request body before the handler runs, within `http_body_timeout`: a client
/// trickling its body cannot hold a connection (and a handler) for ever, and a request that has
/// started executing is never cut off half-way through its writes.
async fn read_body_in_time(State(state): State<HttpState>, request: Request, next: Next) -> Response {
    use http_body::Body as _;
    if request.body().size_hint().exact() == Some(0) {
        return next.run(request).await;
    }
    let deadline = state.app.config.http_body_timeout;
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(deadline.to_std().unwrap_or_default(), axum::body::to_bytes(body, usize::MAX)).await {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, bytes.into())).await,
        Ok(Err(err)) if is_over_limit(&err) => request_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BadUserInput,
            &format!("the request body exceeds {} bytes", state.app.config.max_body_bytes),
        ),
        Ok(Err(_)) => request_error(StatusCode::BAD_REQUEST, ErrorCode::BadUserInput, "the request body was cut short"),
        Err(_) => request_error(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::BadUserInput,
            &format!("the request body did not arrive within {} s", deadline.num_seconds()),
        ),
    }
}

fn is_over_limit(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cause) = source {
        if cause.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = cause.source();
    }
    false
}

async fn track_metrics(State(state): State<HttpState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method()).to_owned();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let response = next.run(request).await;
    let metrics = &state.app.metrics;
    metrics
        .http_requests
        .get_or_create(&HttpLabels { method, route: route.clone(), status: response.status().as_u16() })
        .inc();
    metrics.http_duration.get_or_create(&RouteLabels { route }).observe(started.elapsed().as_secs_f64());
    response
}

/// The method as a metric label: the standard ones, else OTHER, so that made-up methods cannot
/// grow the label set without bound.
fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "OTHER",
    }
}

async fn playground_page() -> Html<String> {
    Html(playground::page())
}

async fn playground_asset(Path(asset): Path<String>) -> Response {
    match playground::asset(&asset) {
        Some((content_type, bytes)) => {
            ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=86400")], bytes)
                .into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_str(value).expect("header"));
        headers
    }

    #[test]
    fn made_up_methods_share_one_metric_label() {
        assert_eq!(method_label(&Method::POST), "POST");
        let made_up = Method::from_bytes(b"BREW").expect("method");
        assert_eq!(method_label(&made_up), "OTHER");
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let proxy = address("10.0.0.2");
        let headers = forwarded("203.0.113.7");
        assert_eq!(client_address(address("198.51.100.1"), &headers, &[proxy]), address("198.51.100.1"));
        assert_eq!(client_address(proxy, &headers, &[proxy]), address("203.0.113.7"));
    }

    #[test]
    fn a_client_cannot_forge_its_address_through_a_trusted_proxy() {
        let proxy = address("10.0.0.2");
        // The client sent `X-Forwarded-For: 1.2.3.4`; the proxy appended the address it saw.
        let headers = forwarded("1.2.3.4, 203.0.113.7");
        assert_eq!(client_address(proxy, &headers, &[proxy]), address("203.0.113.7"));
        assert_eq!(client_address(proxy, &HeaderMap::new(), &[proxy]), proxy);
    }
}
