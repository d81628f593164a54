//! Payments: the PaymentGateway port, the payment record, and retries of transient failures.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::checkout::model::stored_enum;
use crate::domain::primitives::Money;
use crate::ports::{Charge, ChargeRequest, GatewayError, PaymentGateway};

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

/// The key the gateway sees for a saga's attempt: asking again with it never charges twice, and
/// a new attempt (after a decline) is a new charge.
pub fn attempt_key(saga_id: &str, attempt: i32) -> String {
    format!("{saga_id}:{attempt}")
}

/// The key of the refund of a charge made under `charge_key`.
pub fn refund_key(charge_key: &str) -> String {
    format!("refund:{charge_key}")
}

/// Time a lease allows, past the gateway calls, to record what they answered.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

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

    /// How long a saga stays with whoever claimed it for charging: every call the retries may
    /// make (each up to the gateway's `longest_call`), the waits between them, and a margin for
    /// recording the outcome. Recovery leaves a saga alone until then, so it never races a
    /// charge that is still running.
    pub fn lease(&self, longest_call: Duration) -> chrono::Duration {
        let calls = longest_call.saturating_mul(u32::try_from(self.delays.len() + 1).unwrap_or(u32::MAX));
        let waits: Duration = self.delays.iter().sum();
        chrono::Duration::from_std(calls.saturating_add(waits).saturating_add(LEASE_MARGIN))
            .unwrap_or(chrono::Duration::MAX)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_attempt_and_its_refund_have_keys_of_their_own() {
        assert_eq!(attempt_key("saga-1", 1), "saga-1:1");
        assert_ne!(attempt_key("saga-1", 1), attempt_key("saga-1", 2), "a retry after a decline is a new charge");
        assert_eq!(refund_key(&attempt_key("saga-1", 2)), "refund:saga-1:2");
    }

    #[test]
    fn a_lease_outlasts_every_call_and_wait_a_charge_may_make() {
        let call = Duration::from_secs(30);
        assert_eq!(RetryPolicy { delays: Vec::new() }.lease(call), chrono::Duration::seconds(35));
        let retrying = RetryPolicy::parse("1000,2000,4000").expect("delays");
        assert_eq!(retrying.lease(call), chrono::Duration::seconds(4 * 30 + 7 + 5));
    }
}
