//! The pure rules of a cart change: quantities against stock and limits, merging a guest's
//! cart into the user's, and what a purchase leaves in the cart.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::model::{CappedLine, Cart, CartLine};
use super::{CartError, StockShortage};
use crate::domain::catalog::Offer;
use crate::domain::primitives::Money;

type CartResult<T> = Result<T, CartError>;

#[derive(Debug, Clone)]
pub struct CartLimits {
    pub max_lines: usize,
    pub max_line_quantity: i32,
    /// A guest cart expires this long after its last change.
    pub guest_ttl: chrono::Duration,
    /// Any cart untouched this long is deleted.
    pub retention: chrono::Duration,
}

/// The cart's lines with the product at `wanted` units, if stock and limits allow.
pub fn with_quantity(
    cart: &Cart,
    offer: &Offer,
    product_id: &str,
    wanted: i32,
    now: DateTime<Utc>,
    limits: &CartLimits,
) -> CartResult<Vec<CartLine>> {
    if wanted > limits.max_line_quantity {
        return Err(CartError::invalid("quantity", format!("at most {} per line", limits.max_line_quantity)));
    }
    if wanted > offer.available {
        let shortage =
            StockShortage { product_id: product_id.to_owned(), requested: wanted, available: offer.available };
        return Err(CartError::OutOfStock(vec![shortage]));
    }
    let mut lines = cart.lines.clone();
    if let Some(line) = lines.iter_mut().find(|l| l.product_id == product_id) {
        line.quantity = wanted;
        return within_max_total(lines);
    }
    if lines.len() >= limits.max_lines {
        return Err(CartError::invalid("productId", format!("a cart holds at most {} lines", limits.max_lines)));
    }
    if let Some(first) = lines.first()
        && first.unit_price.currency != offer.price.currency
    {
        return Err(CartError::invalid("productId", format!("this cart holds {} prices", first.unit_price.currency)));
    }
    lines.push(CartLine {
        product_id: product_id.to_owned(),
        quantity: wanted,
        unit_price: offer.price.clone(),
        added_at: now,
    });
    within_max_total(lines)
}

/// Refuses lines whose total the shop could not show or charge (`Money::MAX_CENTS`).
fn within_max_total(lines: Vec<CartLine>) -> CartResult<Vec<CartLine>> {
    let total: i64 = lines.iter().map(CartLine::total_cents).sum();
    if total > Money::MAX_CENTS {
        return Err(CartError::invalid(
            "quantity",
            format!("a cart's total is at most {} minor units", Money::MAX_CENTS),
        ));
    }
    Ok(lines)
}

pub fn without(cart: &Cart, product_id: &str) -> Option<Vec<CartLine>> {
    cart.line(product_id)?;
    Some(cart.lines.iter().filter(|l| l.product_id != product_id).cloned().collect())
}

/// The user's lines after taking in the guest's, and the guest lines that could not be kept whole.
pub fn merge_lines(
    guest: &Cart,
    user: &Cart,
    offers: &HashMap<String, Offer>,
    limits: &CartLimits,
) -> (Vec<CartLine>, Vec<CappedLine>) {
    let mut lines = user.lines.clone();
    let mut capped = Vec::new();
    for incoming in &guest.lines {
        let available = offers.get(&incoming.product_id).map_or(0, |o| o.available.max(0));
        let limit = limits.max_line_quantity.min(available);
        let (requested, kept) = match lines.iter_mut().find(|l| l.product_id == incoming.product_id) {
            Some(line) => {
                let requested = line.quantity + incoming.quantity;
                // Never take away what the user already had.
                line.quantity = requested.min(limit).max(line.quantity);
                (requested, line.quantity)
            }
            None => {
                let same_currency = lines.first().is_none_or(|l| l.unit_price.currency == incoming.unit_price.currency);
                let kept =
                    if lines.len() < limits.max_lines && same_currency { incoming.quantity.min(limit) } else { 0 };
                if kept > 0 {
                    lines.push(CartLine { quantity: kept, ..incoming.clone() });
                }
                (incoming.quantity, kept)
            }
        };
        if kept < requested {
            capped.push(CappedLine { product_id: incoming.product_id.clone(), requested, kept });
        }
    }
    (lines, capped)
}

/// The cart's lines less what was bought (a line added during checkout stays).
pub fn without_bought(lines: &[CartLine], bought: &[CartLine]) -> Vec<CartLine> {
    lines
        .iter()
        .filter_map(|line| {
            let sold = bought.iter().find(|b| b.product_id == line.product_id).map_or(0, |b| b.quantity);
            let quantity = line.quantity - sold;
            (quantity > 0).then(|| CartLine { quantity, ..line.clone() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::primitives::{Money, Shopper};

    fn line(product: &str, quantity: i32) -> CartLine {
        CartLine {
            product_id: product.to_owned(),
            quantity,
            unit_price: Money { cents: 100, currency: "USD".to_owned() },
            added_at: Utc::now(),
        }
    }

    fn cart(owner: &str, lines: Vec<CartLine>) -> Cart {
        Cart { lines, ..Cart::empty(&Shopper::parse(owner).expect("a shopper key"), Utc::now()) }
    }

    fn offers(stock: &[(&str, i32)]) -> HashMap<String, Offer> {
        stock
            .iter()
            .map(|(id, available)| {
                (id.to_string(), Offer { price: Money { cents: 100, currency: "USD".into() }, available: *available })
            })
            .collect()
    }

    const LIMITS: CartLimits = CartLimits {
        max_lines: 2,
        max_line_quantity: 5,
        guest_ttl: chrono::Duration::hours(24),
        retention: chrono::Duration::days(90),
    };

    #[test]
    fn merge_sums_lines_and_reports_what_it_capped() {
        let guest = cart("guest:g", vec![line("a", 3), line("b", 4), line("c", 1)]);
        let user = cart("user:u", vec![line("a", 4)]);
        let (lines, capped) = merge_lines(&guest, &user, &offers(&[("a", 100), ("b", 2), ("c", 9)]), &LIMITS);
        let quantities: Vec<(&str, i32)> = lines.iter().map(|l| (l.product_id.as_str(), l.quantity)).collect();
        assert_eq!(quantities, [("a", 5), ("b", 2)], "a capped by the line limit, b by stock, c by the line count");
        assert_eq!(
            capped,
            [
                CappedLine { product_id: "a".into(), requested: 7, kept: 5 },
                CappedLine { product_id: "b".into(), requested: 4, kept: 2 },
                CappedLine { product_id: "c".into(), requested: 1, kept: 0 },
            ]
        );
    }

    #[test]
    fn merge_never_shrinks_the_users_own_line() {
        let guest = cart("guest:g", vec![line("a", 1)]);
        let user = cart("user:u", vec![line("a", 4)]);
        let (lines, capped) = merge_lines(&guest, &user, &offers(&[("a", 2)]), &LIMITS);
        assert_eq!(lines[0].quantity, 4);
        assert_eq!(capped, [CappedLine { product_id: "a".into(), requested: 5, kept: 4 }]);
    }

    #[test]
    fn a_purchase_takes_what_it_bought_and_leaves_later_additions() {
        let bought = [line("a", 2), line("b", 1)];
        let left = without_bought(&[line("a", 3), line("b", 1), line("c", 4)], &bought);
        let quantities: Vec<(&str, i32)> = left.iter().map(|l| (l.product_id.as_str(), l.quantity)).collect();
        assert_eq!(quantities, [("a", 1), ("c", 4)]);
    }

    #[test]
    fn quantities_are_checked_against_stock_and_limits() {
        let now = Utc::now();
        let empty = cart("guest:g", vec![]);
        let offer = &offers(&[("a", 3)])["a"];
        assert!(
            matches!(with_quantity(&empty, offer, "a", 4, now, &LIMITS), Err(CartError::OutOfStock(s)) if s[0].available == 3)
        );
        assert!(matches!(with_quantity(&empty, offer, "a", 6, now, &LIMITS), Err(CartError::InvalidInput { .. })));
        let full = cart("guest:g", vec![line("x", 1), line("y", 1)]);
        assert!(matches!(
            with_quantity(&full, offer, "a", 1, now, &LIMITS),
            Err(CartError::InvalidInput { field: "productId", .. })
        ));
        assert_eq!(with_quantity(&full, offer, "x", 3, now, &LIMITS).expect("in stock")[0].quantity, 3);
    }

    #[test]
    fn a_cart_total_past_the_largest_amount_is_refused() {
        let now = Utc::now();
        let price = |cents| Offer { price: Money { cents, currency: "USD".into() }, available: 5 };
        let nearly_full =
            cart("guest:g", vec![CartLine { unit_price: price(Money::MAX_CENTS - 100).price, ..line("x", 1) }]);
        assert!(with_quantity(&nearly_full, &price(100), "a", 1, now, &LIMITS).is_ok(), "exactly the largest amount");
        assert!(matches!(
            with_quantity(&nearly_full, &price(101), "a", 1, now, &LIMITS),
            Err(CartError::InvalidInput { field: "quantity", .. })
        ));
        let pricey = cart("guest:g", vec![CartLine { unit_price: price(Money::MAX_CENTS / 2).price, ..line("a", 1) }]);
        assert!(
            with_quantity(&pricey, &price(Money::MAX_CENTS / 2), "a", 3, now, &LIMITS).is_err(),
            "a raised quantity too"
        );
    }
}
