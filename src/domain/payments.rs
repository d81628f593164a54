//! Payments: the PaymentGateway port, the payment record, and retries of transient failures.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::catalog::Money;
use crate::domain::checkout::model::stored_enum;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    Processing,
    Completed,
    Failed,
    Refunded,
}

stored_enum!(PaymentStatus {
    Processing => "PROCESSING",
    Completed => "COMPLETED",
    Failed => "FAILED",
    Refunded => "REFUNDED",
});

/// One charge attempt. `idempotency_key` is what the gateway sees, so asking again with it
/// never charges twice.
#[derive(Debug, Clone, PartialEq)]
pub struct Payment {
    pub id: String,
    pub saga_id: String,
    pub attempt: i32,
    pub idempotency_key: String,
    pub status: PaymentStatus,
    pub amount: Money,
    pub payment_method: String,
    pub gateway_reference: Option<String>,
    pub failure: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct ChargeRequest {
    pub amount: Money,
    pub payment_method: String,
    pub idempotency_key: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// The card was refused; nothing was charged.
    #[error("declined: {0}")]
    Declined(String),
    #[error("unknown payment method {0}")]
    UnknownPaymentMethod(String),
    /// Worth retrying: the processor did not charge this time.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// The outcome is unknown (the processor did not answer); asking again with the same
    /// idempotency key tells.
    #[error("payment processor unavailable: {0}")]
    Unavailable(String),
    /// The gateway broke in a way a retry will not fix.
    #[error("{0}")]
    Failed(String),
}

#[async_trait]
pub trait PaymentGateway: Send + Sync {
    /// Charges once per idempotency key: asking again returns the first charge.
    async fn charge(&self, request: &ChargeRequest) -> Result<Charge, GatewayError>;
    /// Refunds a charge in full; idempotent per key as well.
    async fn refund(&self, reference: &str, idempotency_key: &str) -> Result<(), GatewayError>;
}

/// Waits between attempts after transient failures (1 s, 2 s, 4 s by default).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub delays: Vec<Duration>,
}

impl RetryPolicy {
    /// Parses milliseconds like `1000,2000,4000`; empty means no retries.
    pub fn parse(text: &str) -> Result<Self, String> {
        let delays = text
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| d.parse::<u64>().map(Duration::from_millis).map_err(|_| format!("`{d}` is not milliseconds")))
            .collect::<Result<_, _>>()?;
        Ok(Self { delays })
    }

    /// Charges, retrying transient failures after each delay in turn.
    pub async fn charge(&self, gateway: &dyn PaymentGateway, request: &ChargeRequest) -> Result<Charge, GatewayError> {
        let mut delays = self.delays.iter();
        loop {
            match gateway.charge(request).await {
                Err(err @ (GatewayError::Transient(_) | GatewayError::Unavailable(_))) => match delays.next() {
                    Some(delay) => {
                        tracing::info!(key = %request.idempotency_key, error = %err, ?delay, "payment failure worth retrying");
                        tokio::time::sleep(*delay).await;
                    }
                    None => return Err(err),
                },
                outcome => return outcome,
            }
        }
    }
}
