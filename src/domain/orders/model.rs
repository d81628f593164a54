use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::cart::CartLine;
use crate::domain::checkout::model::stored_enum;
use crate::domain::checkout::{Address, Totals};
use crate::domain::primitives::Shopper;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    PendingPayment,
    Paid,
    Fulfilled,
    Shipped,
    Delivered,
    Cancelled,
    Refunded,
}

stored_enum!(OrderStatus {
    PendingPayment => "PENDING_PAYMENT",
    Paid => "PAID",
    Fulfilled => "FULFILLED",
    Shipped => "SHIPPED",
    Delivered => "DELIVERED",
    Cancelled => "CANCELLED",
    Refunded => "REFUNDED",
});

/// What a status change does besides changing the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransitionEffects {
    /// Charge the held order (an approved review).
    pub charge: bool,
    pub refund: bool,
    /// Return the order's units to available stock.
    pub restock: bool,
}

impl OrderStatus {
    /// The state machine: PENDING_PAYMENT -> PAID -> FULFILLED -> SHIPPED -> DELIVERED;
    /// CANCELLED before shipping (refunding what was paid, restocking); REFUNDED after delivery
    /// (a return: the units come back through the warehouse, not through this path).
    pub fn transition(self, to: OrderStatus) -> Option<TransitionEffects> {
        use OrderStatus::*;
        let effects = |charge, refund, restock| Some(TransitionEffects { charge, refund, restock });
        match (self, to) {
            (PendingPayment, Paid) => effects(true, false, false),
            (PendingPayment, Cancelled) => effects(false, false, true),
            (Paid | Fulfilled, Cancelled) => effects(false, true, true),
            (Paid, Fulfilled) | (Fulfilled, Shipped) | (Shipped, Delivered) => effects(false, false, false),
            (Delivered, Refunded) => effects(false, true, false),
            _ => None,
        }
    }
}

/// The order as placed; the first event carries all of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacedOrder {
    pub id: String,
    pub owner: Shopper,
    pub lines: Vec<CartLine>,
    pub totals: Totals,
    pub shipping_address: Address,
    pub session_id: String,
    pub saga_id: String,
    pub created_at: DateTime<Utc>,
}

/// The projection of an order's events.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub placed: PlacedOrder,
    pub status: OrderStatus,
    pub payment_id: Option<String>,
    /// Events applied so far.
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

/// What an event adds to the order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct OrderEventData {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placed: Option<PlacedOrder>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
}

/// One entry of an order's append-only history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderEvent {
    pub order_id: String,
    pub seq: i64,
    /// PLACED, then the status it moved to (PAID, SHIPPED, …).
    pub kind: String,
    pub status: OrderStatus,
    pub data: OrderEventData,
    pub at: DateTime<Utc>,
}

impl Order {
    /// Builds the order from its events, oldest first; `None` if the first is not PLACED.
    pub fn replay(events: &[OrderEvent]) -> Option<Order> {
        let (first, rest) = events.split_first()?;
        let mut order = Order {
            placed: first.data.placed.clone()?,
            status: first.status,
            payment_id: first.data.payment_id.clone(),
            version: first.seq,
            updated_at: first.at,
        };
        for event in rest {
            order.apply(event);
        }
        Some(order)
    }

    pub fn apply(&mut self, event: &OrderEvent) {
        self.status = event.status;
        if let Some(payment_id) = &event.data.payment_id {
            self.payment_id = Some(payment_id.clone());
        }
        self.version = event.seq;
        self.updated_at = event.at;
    }

    /// The first event of a new order.
    pub fn placed_event(placed: PlacedOrder, status: OrderStatus, payment_id: Option<String>) -> OrderEvent {
        OrderEvent {
            order_id: placed.id.clone(),
            seq: 1,
            kind: "PLACED".to_owned(),
            status,
            at: placed.created_at,
            data: OrderEventData { placed: Some(placed), payment_id },
        }
    }

    /// The next event: a move to `status`.
    pub fn next_event(&self, status: OrderStatus, payment_id: Option<String>, at: DateTime<Utc>) -> OrderEvent {
        OrderEvent {
            order_id: self.placed.id.clone(),
            seq: self.version + 1,
            kind: status.as_str().to_owned(),
            status,
            data: OrderEventData { placed: None, payment_id },
            at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::*;

    #[test]
    fn the_state_machine_allows_the_forward_path_and_cancellation_before_shipping() {
        for (from, to) in [(PendingPayment, Paid), (Paid, Fulfilled), (Fulfilled, Shipped), (Shipped, Delivered)] {
            assert!(from.transition(to).is_some(), "{from:?} -> {to:?}");
        }
        for (from, to) in
            [(Paid, Shipped), (Shipped, Cancelled), (Delivered, Cancelled), (Cancelled, Paid), (Paid, Paid)]
        {
            assert!(from.transition(to).is_none(), "{from:?} -> {to:?}");
        }
        let cancel = Paid.transition(Cancelled).expect("allowed");
        assert!(cancel.refund && cancel.restock && !cancel.charge);
        assert!(PendingPayment.transition(Paid).expect("allowed").charge);
    }
}
