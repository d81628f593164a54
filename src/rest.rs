//! The REST facade of the original design: JSON in and out, shaped like the GraphQL types. Each
//! endpoint runs one GraphQL operation, so both APIs share every rule, resolver and error.

use async_graphql::{EnumType, Executor, Variables};
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::error::{ApiError, ErrorCode};
use crate::http::{HttpState, request_data, viewer_of};
use crate::loaders::Loaders;
use crate::resolvers::ClientAddress;

const CART_FIELDS: &str = "fragment CartFields on Cart { id version updatedAt totalQuantity \
    subtotal { centAmount currencyCode } \
    items { quantity unitPrice { centAmount currencyCode } lineTotal { centAmount currencyCode } priceChanged \
    product { id title price { centAmount currencyCode } inStock availableQuantity } } }";

const CHECKOUT_FIELDS: &str = "fragment CheckoutFields on CheckoutSession { id status expiresAt \
    items { quantity unitPrice { centAmount currencyCode } lineTotal { centAmount currencyCode } product { id title } } \
    subtotal { centAmount currencyCode } shipping { centAmount currencyCode } tax { centAmount currencyCode } \
    total { centAmount currencyCode } }";

const ORDER_FIELDS: &str = "fragment OrderFields on Order { id status createdAt \
    items { quantity unitPrice { centAmount currencyCode } lineTotal { centAmount currencyCode } product { id title } } \
    subtotal { centAmount currencyCode } shipping { centAmount currencyCode } tax { centAmount currencyCode } \
    total { centAmount currencyCode } payment { id status amount { centAmount currencyCode } gatewayReference } \
    events { orderId type status at } }";

const SEARCH_FIELDS: &str = "fragment SearchFields on ProductSearchResult { totalCount correctedQuery \
    pageInfo { hasNextPage endCursor } facets { name values { value count } } \
    nodes { id title brand price { centAmount currencyCode } rating reviewCount inStock category { path } } }";

pub(crate) fn routes() -> Router<HttpState> {
    Router::new()
        .route("/products/search", get(search_products))
        .route("/cart", get(get_cart))
        .route("/cart/items", post(add_cart_item))
        .route("/checkout/initiate", post(initiate_checkout))
        .route("/checkout/payment", post(place_order))
}

fn error_response(err: &ApiError) -> Response {
    let status = StatusCode::from_u16(err.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Json(err.to_json())).into_response();
    if let Some(seconds) = err.retry_after_seconds {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Runs the GraphQL `document` as the caller and answers `data[field]`, or the first error in
/// REST form.
async fn run(
    state: &HttpState,
    headers: &HeaderMap,
    client: ClientAddress,
    document: String,
    variables: Value,
    field: &str,
) -> Response {
    let viewer = match viewer_of(&state.app, headers) {
        Ok(viewer) => viewer,
        Err(err) => return error_response(&err),
    };
    let mut request = async_graphql::Request::new(document).variables(Variables::from_json(variables));
    request.data = request_data(viewer, client, Loaders::new(&state.app));
    let mut response = state.executor.execute(request).await;
    if let Some(error) = response.errors.first() {
        let code = error
            .extensions
            .as_ref()
            .and_then(|ext| ext.get("code"))
            .and_then(|code| ErrorCode::items().iter().find(|item| async_graphql::Value::from(item.name) == *code))
            .map_or(ErrorCode::InternalServerError, |item| item.value);
        let mut api_error = ApiError::new(code, error.message.clone());
        let extension = |name: &str| error.extensions.as_ref().and_then(|ext| ext.get(name)).cloned();
        api_error.lines = extension("lines").and_then(|lines| lines.into_json().ok());
        api_error.retry_after_seconds = extension("retryAfterSeconds").and_then(|seconds| match seconds {
            async_graphql::Value::Number(n) => n.as_u64(),
            _ => None,
        });
        return error_response(&api_error);
    }
    let data = std::mem::take(&mut response.data).into_json().unwrap_or_default();
    Json(data[field].clone()).into_response()
}

async fn get_cart(State(state): State<HttpState>, client: ClientAddress, headers: HeaderMap) -> Response {
    run(&state, &headers, client, format!("query {{ cart {{ ...CartFields }} }} {CART_FIELDS}"), json!({}), "cart")
        .await
}

/// The JSON body, or the REST error that names what is wrong with it.
fn body_of<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(value)| value)
        .map_err(|rejection| ApiError::new(ErrorCode::BadUserInput, format!("body: {}", rejection.body_text())))
}

async fn initiate_checkout(State(state): State<HttpState>, client: ClientAddress, headers: HeaderMap) -> Response {
    let operation = format!("mutation {{ initiateCheckout {{ ...CheckoutFields }} }} {CHECKOUT_FIELDS}");
    run(&state, &headers, client, operation, json!({}), "initiateCheckout").await
}

/// `POST /checkout/payment` with a PlaceOrderInput as the body.
async fn place_order(
    State(state): State<HttpState>,
    client: ClientAddress,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    let input = match body_of(body) {
        Ok(input) => input,
        Err(err) => return error_response(&err),
    };
    let operation = format!(
        "mutation($input: PlaceOrderInput!) {{ placeOrder(input: $input) {{ ...OrderFields }} }} {ORDER_FIELDS}"
    );
    run(&state, &headers, client, operation, json!({ "input": input }), "placeOrder").await
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AddCartItem {
    product_id: String,
    quantity: i32,
}

async fn add_cart_item(
    State(state): State<HttpState>,
    client: ClientAddress,
    headers: HeaderMap,
    body: Result<Json<AddCartItem>, JsonRejection>,
) -> Response {
    let item: AddCartItem = match body_of(body) {
        Ok(item) => item,
        Err(err) => return error_response(&err),
    };
    let operation = "mutation($productId: ID!, $quantity: Int!) { addCartItem(productId: $productId, quantity: $quantity) { ...CartFields } }";
    let variables = json!({ "productId": item.product_id, "quantity": item.quantity });
    run(&state, &headers, client, format!("{operation} {CART_FIELDS}"), variables, "addCartItem").await
}

/// `GET /products/search?q=&category=&brand=…&minPrice=&maxPrice=&inStock=&sort=&limit=&cursor=`
/// (`brand` repeatable, `sort` lower-case ProductSort).
async fn search_products(
    State(state): State<HttpState>,
    client: ClientAddress,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let mut variables = json!({});
    let mut filter = json!({});
    let mut brands = Vec::new();
    let bad = |name: &str, value: &str| {
        error_response(&ApiError::new(ErrorCode::BadUserInput, format!("{name}: `{value}` is not valid")))
    };
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let int = || value.parse::<i32>().ok();
        match name.as_ref() {
            "q" => variables["query"] = json!(value),
            "category" => filter["category"] = json!(value),
            "brand" => brands.push(value.to_string()),
            "minPrice" | "maxPrice" => match int() {
                Some(cents) => filter[name.as_ref()] = json!(cents),
                None => return bad(&name, &value),
            },
            "inStock" => filter["inStockOnly"] = json!(value == "true" || value == "1"),
            "sort" => variables["sort"] = json!(value.to_uppercase()),
            "limit" => match int() {
                Some(limit) => variables["first"] = json!(limit),
                None => return bad(&name, &value),
            },
            "cursor" => variables["after"] = json!(value),
            _ => return error_response(&ApiError::new(ErrorCode::BadUserInput, format!("unknown parameter `{name}`"))),
        }
    }
    if !brands.is_empty() {
        filter["brands"] = json!(brands);
    }
    variables["filter"] = filter;
    let operation = "query($query: String, $filter: ProductFilter, $sort: ProductSort, $first: Int, $after: String) { \
        searchProducts(query: $query, filter: $filter, sort: $sort, first: $first, after: $after) { ...SearchFields } }";
    run(&state, &headers, client, format!("{operation} {SEARCH_FIELDS}"), variables, "searchProducts").await
}
