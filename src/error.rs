//! The one place where domain errors become client-facing codes, for GraphQL (`extensions.code`)
//! and the REST facade alike. Internal failures are logged here with their context and reach
//! clients only as INTERNAL_SERVER_ERROR.

use async_graphql::{Enum, ErrorExtensions};
use serde_json::json;

use crate::domain::auth::AuthError;
use crate::domain::cart::{CartError, StockShortage};
use crate::domain::catalog::CatalogError;
use crate::domain::checkout::CheckoutError;
use crate::domain::flash::FlashSaleError;
use crate::domain::limits::{RateLimited, retry_after_seconds};
use crate::domain::orders::OrderError;
use crate::domain::recommend::RecommendError;
use crate::domain::search::SearchError;

/// Stable machine codes in `extensions.code`.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    BadUserInput,
    Unauthenticated,
    Forbidden,
    NotFound,
    Conflict,
    OutOfStock,
    ReservationExpired,
    PaymentDeclined,
    PaymentInProgress,
    SaleNotActive,
    RateLimited,
    QueryTooComplex,
    InternalServerError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadUserInput => "BAD_USER_INPUT",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::OutOfStock => "OUT_OF_STOCK",
            ErrorCode::ReservationExpired => "RESERVATION_EXPIRED",
            ErrorCode::PaymentDeclined => "PAYMENT_DECLINED",
            ErrorCode::PaymentInProgress => "PAYMENT_IN_PROGRESS",
            ErrorCode::SaleNotActive => "SALE_NOT_ACTIVE",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::QueryTooComplex => "QUERY_TOO_COMPLEX",
            ErrorCode::InternalServerError => "INTERNAL_SERVER_ERROR",
        }
    }

    /// The HTTP status the REST facade answers with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadUserInput | ErrorCode::QueryTooComplex => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict | ErrorCode::OutOfStock | ErrorCode::SaleNotActive => 409,
            ErrorCode::ReservationExpired => 410,
            ErrorCode::PaymentDeclined => 402,
            ErrorCode::PaymentInProgress => 409,
            ErrorCode::RateLimited => 429,
            ErrorCode::InternalServerError => 500,
        }
    }
}

/// An error as a client sees it: a code, a message meant for people, optional details
/// (e.g. the `field` that was wrong).
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<&'static str>,
    /// OUT_OF_STOCK: `[{productId, requested, available}]`.
    pub lines: Option<serde_json::Value>,
    /// RATE_LIMITED: when to try again (`Retry-After` over REST).
    pub retry_after_seconds: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), field: None, lines: None, retry_after_seconds: None }
    }

    fn invalid(field: &'static str, message: String) -> Self {
        Self { field: Some(field), ..Self::new(ErrorCode::BadUserInput, format!("{field}: {message}")) }
    }

    /// Logs the real cause with its context; the client learns nothing more than the code.
    pub fn internal(context: &str, cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(context, error = %cause, "internal error");
        Self::new(ErrorCode::InternalServerError, "internal server error")
    }

    /// The REST facade's error body.
    pub fn to_json(&self) -> serde_json::Value {
        let mut error = json!({ "code": self.code.as_str(), "message": self.message });
        if let Some(lines) = &self.lines {
            error["lines"] = lines.clone();
        }
        if let Some(seconds) = self.retry_after_seconds {
            error["retryAfterSeconds"] = json!(seconds);
        }
        json!({ "error": error })
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(err: ApiError) -> Self {
        async_graphql::Error::new(err.message).extend_with(|_, ext| {
            ext.set("code", err.code.as_str());
            if let Some(field) = err.field {
                ext.set("field", field);
            }
            if let Some(lines) = err.lines.clone().and_then(|l| async_graphql::Value::from_json(l).ok()) {
                ext.set("lines", lines);
            }
            if let Some(seconds) = err.retry_after_seconds {
                ext.set("retryAfterSeconds", seconds);
            }
        })
    }
}

impl From<RateLimited> for ApiError {
    fn from(err: RateLimited) -> Self {
        ApiError {
            retry_after_seconds: Some(retry_after_seconds(err.retry_after)),
            ..ApiError::new(ErrorCode::RateLimited, err.to_string())
        }
    }
}

impl From<CatalogError> for ApiError {
    fn from(err: CatalogError) -> Self {
        match err {
            CatalogError::InvalidInput { field, message } => ApiError::invalid(field, message),
            CatalogError::NotFound(what) => ApiError::new(ErrorCode::NotFound, format!("{what} not found")),
            CatalogError::Conflict(message) => ApiError::new(ErrorCode::Conflict, message),
            CatalogError::Store(cause) => ApiError::internal("catalog", &cause),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        let message = err.to_string();
        match err {
            AuthError::InvalidInput { field, message } => ApiError::invalid(field, message),
            AuthError::InvalidCredentials | AuthError::InvalidToken | AuthError::Unauthenticated => {
                ApiError::new(ErrorCode::Unauthenticated, message)
            }
            AuthError::Forbidden => ApiError::new(ErrorCode::Forbidden, message),
            AuthError::EmailTaken => ApiError::new(ErrorCode::Conflict, message),
            AuthError::Store(cause) => ApiError::internal("auth", &cause),
            AuthError::Hashing(cause) => ApiError::internal("auth: password hashing", &cause),
            AuthError::Cart(cause) => ApiError::from(cause),
            AuthError::RateLimited(limited) => ApiError::from(limited),
        }
    }
}

impl From<FlashSaleError> for ApiError {
    fn from(err: FlashSaleError) -> Self {
        let message = err.to_string();
        match err {
            FlashSaleError::InvalidInput { field, message } => ApiError::invalid(field, message),
            FlashSaleError::Unauthenticated => ApiError::new(ErrorCode::Unauthenticated, message),
            FlashSaleError::NotFound(_) => ApiError::new(ErrorCode::NotFound, message),
            FlashSaleError::OutOfStock { product_id, requested, available } => {
                out_of_stock(&[StockShortage { product_id, requested, available }])
            }
            FlashSaleError::SaleNotActive => ApiError::new(ErrorCode::SaleNotActive, message),
            FlashSaleError::RateLimited { retry_after } => ApiError::from(RateLimited { retry_after }),
            FlashSaleError::Store(cause) => ApiError::internal("flash sales", &cause),
            FlashSaleError::Gate(cause) => ApiError::internal("flash sales", &cause),
        }
    }
}

impl From<RecommendError> for ApiError {
    fn from(err: RecommendError) -> Self {
        let message = err.to_string();
        match err {
            RecommendError::InvalidInput { field, message } => ApiError::invalid(field, message),
            RecommendError::Unauthenticated => ApiError::new(ErrorCode::Unauthenticated, message),
            RecommendError::ProductNotFound(_) => ApiError::new(ErrorCode::NotFound, message),
            RecommendError::Store(cause) => ApiError::internal("recommendations", &cause),
        }
    }
}

impl From<SearchError> for ApiError {
    fn from(err: SearchError) -> Self {
        match err {
            SearchError::InvalidInput { field, message } => ApiError::invalid(field, message),
            SearchError::Index(cause) => ApiError::internal("search index", &cause),
            SearchError::Store(cause) => ApiError::internal("search", &cause),
        }
    }
}

/// OUT_OF_STOCK with `extensions.lines` naming every short line.
fn out_of_stock(shortages: &[StockShortage]) -> ApiError {
    let detail = shortages
        .iter()
        .map(|s| format!("{} has {} of the {} asked for", s.product_id, s.available, s.requested))
        .collect::<Vec<_>>()
        .join("; ");
    ApiError {
        lines: serde_json::to_value(shortages).ok(),
        ..ApiError::new(ErrorCode::OutOfStock, format!("not enough stock: {detail}"))
    }
}

impl From<CartError> for ApiError {
    fn from(err: CartError) -> Self {
        let message = err.to_string();
        match err {
            CartError::InvalidInput { field, message } => ApiError::invalid(field, message),
            CartError::ProductNotFound(_) => ApiError::new(ErrorCode::NotFound, message),
            CartError::OutOfStock(shortages) => out_of_stock(&shortages),
            CartError::Unauthenticated => ApiError::new(ErrorCode::Unauthenticated, message),
            CartError::Store(cause) => ApiError::internal("cart", &cause),
        }
    }
}

impl From<CheckoutError> for ApiError {
    fn from(err: CheckoutError) -> Self {
        let message = err.to_string();
        match err {
            CheckoutError::InvalidInput { field, message } => ApiError::invalid(field, message),
            CheckoutError::Unauthenticated => ApiError::new(ErrorCode::Unauthenticated, message),
            CheckoutError::NotFound(_) => ApiError::new(ErrorCode::NotFound, message),
            CheckoutError::OutOfStock(shortages) => out_of_stock(&shortages),
            CheckoutError::ReservationExpired => ApiError::new(ErrorCode::ReservationExpired, message),
            CheckoutError::Conflict(_) => ApiError::new(ErrorCode::Conflict, message),
            CheckoutError::PaymentDeclined(_) => ApiError::new(ErrorCode::PaymentDeclined, message),
            CheckoutError::PaymentInProgress => ApiError::new(ErrorCode::PaymentInProgress, message),
            CheckoutError::Gateway(cause) => ApiError::internal("checkout: payment gateway", &cause),
            CheckoutError::Store(cause) => ApiError::internal("checkout", &cause),
        }
    }
}

impl From<OrderError> for ApiError {
    fn from(err: OrderError) -> Self {
        let message = err.to_string();
        match err {
            OrderError::InvalidInput { field, message } => ApiError::invalid(field, message),
            OrderError::Unauthenticated => ApiError::new(ErrorCode::Unauthenticated, message),
            OrderError::Forbidden => ApiError::new(ErrorCode::Forbidden, message),
            OrderError::NotFound(_) => ApiError::new(ErrorCode::NotFound, message),
            OrderError::Conflict(_) => ApiError::new(ErrorCode::Conflict, message),
            OrderError::PaymentDeclined(_) => ApiError::new(ErrorCode::PaymentDeclined, message),
            OrderError::Gateway(cause) => ApiError::internal("orders: payment gateway", &cause),
            OrderError::Store(cause) => ApiError::internal("orders", &cause),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use async_graphql::{EnumType, Name, Pos};

    use super::*;

    /// The JSON a client receives for an error of each code, pinned.
    #[test]
    fn every_code_has_its_contract_name_and_json_shape() {
        for item in ErrorCode::items() {
            let code = item.value;
            assert_eq!(Name::new(item.name).as_str(), code.as_str());
            let error = async_graphql::Error::from(ApiError::new(code, "something happened"));
            let json = serde_json::to_value(error.into_server_error(Pos::default())).expect("serializable");
            assert_eq!(
                json,
                json!({ "message": "something happened", "locations": [{ "line": 0, "column": 0 }], "extensions": { "code": code.as_str() } })
            );
        }
        let invalid = async_graphql::Error::from(ApiError::from(CatalogError::invalid("title", "too long")));
        let json = serde_json::to_value(invalid.into_server_error(Pos::default())).expect("serializable");
        assert_eq!(json["extensions"], json!({ "code": "BAD_USER_INPUT", "field": "title" }));
        assert_eq!(json["message"], "title: too long");
    }

    #[test]
    fn internal_causes_never_reach_the_client() {
        let store_failure = crate::ports::StoreError::internal(
            "loading products",
            std::io::Error::other("connection to 10.0.0.7 refused, password=hunter2"),
        );
        let error = ApiError::from(CatalogError::Store(store_failure));
        assert_eq!((error.code, error.message.as_str()), (ErrorCode::InternalServerError, "internal server error"));
        assert_eq!(
            error.to_json(),
            json!({ "error": { "code": "INTERNAL_SERVER_ERROR", "message": "internal server error" } })
        );
    }
}
