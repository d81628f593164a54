//! Order confirmations: rendered when the order is made, queued in the same transaction, and
//! sent afterwards by the notification worker through the Notifier port, with retries.

use crate::domain::orders::PlacedOrder;

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

/// Where a guest's confirmation goes: guests leave no email.
pub const GUEST_RECIPIENT: &str = "guest checkout (no email on file)";

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
