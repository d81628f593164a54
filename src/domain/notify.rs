//! Order confirmations: rendered when the order is made, queued in the same transaction, and
//! sent afterwards through the Notifier port with retries, so a slow or broken mail path never
//! blocks or fails an order.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::cart::CartOwner;
use crate::domain::clock::Clock;
use crate::domain::orders::PlacedOrder;
use crate::domain::ports::{Store, StoreResult};

#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub id: String,
    pub order_id: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    /// Sends tried so far.
    pub attempts: i32,
}

#[derive(Debug, thiserror::Error)]
#[error("notifier: {0}")]
pub struct NotifyError(pub String);

#[async_trait]
pub trait Notifier: Send + Sync {
    async fn send(&self, notification: &Notification) -> Result<(), NotifyError>;
}

/// Where a guest's confirmation goes: guests leave no email.
pub const GUEST_RECIPIENT: &str = "guest checkout (no email on file)";

/// The email of the owner's account, or the guest marker.
pub async fn recipient_of(store: &dyn Store, owner: &CartOwner) -> StoreResult<String> {
    let email = match owner.0.strip_prefix("user:") {
        Some(user_id) => store.users_by_ids(&[user_id.to_owned()]).await?.into_iter().next().map(|u| u.email),
        None => None,
    };
    Ok(email.unwrap_or_else(|| GUEST_RECIPIENT.to_owned()))
}

/// Tries per notification before it is given up (and logged).
pub const MAX_ATTEMPTS: i32 = 8;

fn money(cents: i64, currency: &str) -> String {
    format!("{}.{:02} {currency}", cents / 100, cents % 100)
}

/// The confirmation message of a paid order.
pub fn confirmation(order: &PlacedOrder, recipient: &str, id: String) -> Notification {
    let t = &order.totals;
    let mut body = format!("Thank you for your order {}.\n\n", order.id);
    for line in &order.lines {
        body.push_str(&format!(
            "  {} x {} at {}\n",
            line.quantity,
            line.product_id,
            money(line.unit_price.cents, &line.unit_price.currency)
        ));
    }
    body.push_str(&format!(
        "\nSubtotal {}\nShipping {}\nTax {}\nTotal {}\n\nShipping to {}, {}, {} {}, {}\n",
        money(t.subtotal, &t.currency),
        money(t.shipping, &t.currency),
        money(t.tax, &t.currency),
        money(t.total, &t.currency),
        order.shipping_address.name,
        order.shipping_address.line1,
        order.shipping_address.postal_code,
        order.shipping_address.city,
        order.shipping_address.country,
    ));
    Notification {
        id,
        order_id: order.id.clone(),
        recipient: recipient.to_owned(),
        subject: format!("Order {} confirmed", order.id),
        body,
        attempts: 0,
    }
}

/// Sends due notifications: at once when an order wakes it, and on a timer for retries.
pub struct NotificationWorker {
    pub store: Arc<dyn Store>,
    pub notifier: Arc<dyn Notifier>,
    pub clock: Arc<dyn Clock>,
    pub wake: Arc<tokio::sync::Notify>,
}

/// Orders wake the worker at once; the timer only serves retries.
const POLL: Duration = Duration::from_secs(5);
/// A claimed notification is not handed to another worker for this long.
const LEASE: chrono::Duration = chrono::Duration::seconds(60);

impl NotificationWorker {
    /// Sends what is due now; returns how many went out.
    pub async fn send_due(&self) -> usize {
        let now = self.clock.now();
        let due = match self.store.claim_due_notifications(now, now + LEASE, 50).await {
            Ok(due) => due,
            Err(err) => {
                tracing::warn!(error = %err, "loading notifications failed");
                return 0;
            }
        };
        let mut sent = 0;
        for notification in due {
            let outcome = self.notifier.send(&notification).await;
            let attempts = notification.attempts + 1;
            let recorded = match outcome {
                Ok(()) => {
                    sent += 1;
                    self.store.notification_sent(&notification.id, self.clock.now()).await
                }
                Err(err) => {
                    let retry_at = (attempts < MAX_ATTEMPTS).then(|| backoff(self.clock.now(), attempts));
                    if retry_at.is_none() {
                        tracing::error!(order = %notification.order_id, error = %err, "confirmation given up");
                    } else {
                        tracing::warn!(order = %notification.order_id, error = %err, attempts, "confirmation failed; will retry");
                    }
                    self.store.notification_failed(&notification.id, attempts, retry_at, &err.to_string()).await
                }
            };
            if let Err(err) = recorded {
                tracing::warn!(error = %err, "recording a notification's outcome failed");
            }
        }
        sent
    }

    pub async fn run(self) {
        loop {
            let _ = tokio::time::timeout(POLL, self.wake.notified()).await;
            self.send_due().await;
        }
    }
}

/// 2, 4, 8, … seconds after the attempt.
fn backoff(now: DateTime<Utc>, attempts: i32) -> DateTime<Utc> {
    now + chrono::Duration::seconds(1 << attempts.clamp(1, 12))
}
