//! The built-in gateway for development and tests. It answers Stripe's documented test payment
//! methods the way Stripe does, charges once per idempotency key, and keeps its ledger in a
//! JSON-lines file so that a restarted process still knows what it charged (the crash-recovery
//! path depends on that, as it depends on Stripe's own idempotency in production).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::ports::{Charge, ChargeRequest, GatewayError, PaymentGateway};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum LedgerEntry {
    Charge { key: String, reference: String, amount: i64, currency: String, method: String },
    Refund { key: String, reference: String },
}

#[derive(Default)]
struct Ledger {
    charges: HashMap<String, String>,
    refunds: HashMap<String, String>,
}

pub struct TestGateway {
    path: PathBuf,
    ledger: Mutex<Ledger>,
}

impl TestGateway {
    /// Opens (or starts) the ledger file.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let mut ledger = Ledger::default();
        for entry in Self::read_ledger(path)? {
            match entry {
                LedgerEntry::Charge { key, reference, .. } => ledger.charges.insert(key, reference),
                LedgerEntry::Refund { key, reference } => ledger.refunds.insert(key, reference),
            };
        }
        Ok(Self { path: path.to_owned(), ledger: Mutex::new(ledger) })
    }

    /// Every entry written so far; a missing file is an empty ledger.
    pub fn read_ledger(path: &Path) -> std::io::Result<Vec<LedgerEntry>> {
        match std::fs::read_to_string(path) {
            Ok(text) => text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).map_err(std::io::Error::other))
                .collect(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(err) => Err(err),
        }
    }

    fn append(&self, entry: &LedgerEntry) -> Result<(), GatewayError> {
        let line = serde_json::to_string(entry).map_err(|e| GatewayError::Failed(e.to_string()))?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| GatewayError::Failed(format!("test gateway ledger: {e}")))?;
        writeln!(file, "{line}").map_err(|e| GatewayError::Failed(format!("test gateway ledger: {e}")))
    }
}

/// The Stripe test payment methods this gateway answers.
const TEST_PAYMENT_METHODS: [&str; 5] = [
    "pm_card_visa",
    "pm_card_mastercard",
    "pm_card_chargeDeclined",
    "pm_card_chargeDeclinedInsufficientFunds",
    "pm_card_chargeDeclinedProcessingError",
];

fn reference(prefix: &str) -> String {
    format!("{prefix}_test_{}", &uuid::Uuid::new_v4().simple().to_string()[..24])
}

#[async_trait]
impl PaymentGateway for TestGateway {
    async fn charge(&self, request: &ChargeRequest) -> Result<Charge, GatewayError> {
        match request.payment_method.as_str() {
            "pm_card_visa" | "pm_card_mastercard" => {}
            "pm_card_chargeDeclined" => return Err(GatewayError::Declined("card_declined".to_owned())),
            "pm_card_chargeDeclinedInsufficientFunds" => {
                return Err(GatewayError::Declined("insufficient_funds".to_owned()));
            }
            "pm_card_chargeDeclinedProcessingError" => {
                return Err(GatewayError::Transient("processing_error".to_owned()));
            }
            other => return Err(GatewayError::UnknownPaymentMethod(other.to_owned())),
        }
        let mut ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = ledger.charges.get(&request.idempotency_key) {
            return Ok(Charge { reference: existing.clone() });
        }
        let reference = reference("pi");
        self.append(&LedgerEntry::Charge {
            key: request.idempotency_key.clone(),
            reference: reference.clone(),
            amount: request.amount.cents,
            currency: request.amount.currency.clone(),
            method: request.payment_method.clone(),
        })?;
        ledger.charges.insert(request.idempotency_key.clone(), reference.clone());
        Ok(Charge { reference })
    }

    async fn check_payment_method(&self, payment_method: &str) -> Result<(), GatewayError> {
        if TEST_PAYMENT_METHODS.contains(&payment_method) {
            Ok(())
        } else {
            Err(GatewayError::UnknownPaymentMethod(payment_method.to_owned()))
        }
    }

    /// A local file append: a second is far more than it takes.
    fn longest_call(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }

    async fn refund(&self, reference: &str, idempotency_key: &str) -> Result<(), GatewayError> {
        let mut ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
        if ledger.refunds.contains_key(idempotency_key) {
            return Ok(());
        }
        if !ledger.charges.values().any(|r| r == reference) {
            return Err(GatewayError::Failed(format!("no charge {reference} to refund")));
        }
        self.append(&LedgerEntry::Refund { key: idempotency_key.to_owned(), reference: reference.to_owned() })?;
        ledger.refunds.insert(idempotency_key.to_owned(), reference.to_owned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::primitives::Money;

    fn request(method: &str, key: &str) -> ChargeRequest {
        ChargeRequest {
            amount: Money { cents: 1_000, currency: "USD".to_owned() },
            payment_method: method.to_owned(),
            idempotency_key: key.to_owned(),
            description: "test".to_owned(),
        }
    }

    #[tokio::test]
    async fn charges_once_per_key_and_remembers_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ledger.jsonl");
        let gateway = TestGateway::open(&path).expect("open");
        let first = gateway.charge(&request("pm_card_visa", "k1")).await.expect("charged");
        assert_eq!(gateway.charge(&request("pm_card_visa", "k1")).await.expect("replayed"), first);
        let reopened = TestGateway::open(&path).expect("reopen");
        assert_eq!(reopened.charge(&request("pm_card_visa", "k1")).await.expect("replayed"), first);
        assert_eq!(TestGateway::read_ledger(&path).expect("ledger").len(), 1);
        assert_eq!(
            gateway.charge(&request("pm_card_chargeDeclined", "k2")).await,
            Err(GatewayError::Declined("card_declined".to_owned()))
        );
        assert!(matches!(
            gateway.charge(&request("pm_card_chargeDeclinedProcessingError", "k3")).await,
            Err(GatewayError::Transient(_))
        ));
        assert!(matches!(gateway.charge(&request("pm_nope", "k4")).await, Err(GatewayError::UnknownPaymentMethod(_))));
        assert!(matches!(gateway.check_payment_method("pm_nope").await, Err(GatewayError::UnknownPaymentMethod(_))));
        assert_eq!(gateway.check_payment_method("pm_card_chargeDeclined").await, Ok(()));
        gateway.refund(&first.reference, "r1").await.expect("refunded");
        gateway.refund(&first.reference, "r1").await.expect("refund replayed");
        assert_eq!(TestGateway::read_ledger(&path).expect("ledger").len(), 2);
    }
}
