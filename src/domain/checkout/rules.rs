//! Pure rules of reserving a cart: its lines at today's prices, and what a refused reservation
//! tells the shopper.

use std::collections::HashMap;

use super::CheckoutError;
use crate::domain::cart::{CartLine, StockShortage};
use crate::domain::catalog::Offer;

/// The cart's lines at today's prices, in product order (the order stock rows are locked in, so
/// that two checkouts never wait on each other crosswise). A product deleted since it was added
/// cannot be sold: OUT_OF_STOCK names it with nothing available.
pub fn priced_lines(lines: &[CartLine], offers: &HashMap<String, Offer>) -> Result<Vec<CartLine>, CheckoutError> {
    if lines.is_empty() {
        return Err(CheckoutError::invalid("cart", "the cart is empty; add items before checking out"));
    }
    let mut missing = Vec::new();
    let mut priced: Vec<CartLine> = lines
        .iter()
        .filter_map(|line| match offers.get(&line.product_id) {
            Some(offer) => Some(CartLine { unit_price: offer.price.clone(), ..line.clone() }),
            None => {
                missing.push(StockShortage {
                    product_id: line.product_id.clone(),
                    requested: line.quantity,
                    available: 0,
                });
                None
            }
        })
        .collect();
    if !missing.is_empty() {
        return Err(CheckoutError::OutOfStock(missing));
    }
    priced.sort_by(|a, b| a.product_id.cmp(&b.product_id));
    Ok(priced)
}

/// The lines whose reservation took nothing (`reserved[i]` rows changed for `lines[i]`), with
/// what is available of each.
pub fn shortages(lines: &[CartLine], reserved: &[usize], available: &HashMap<String, i32>) -> Vec<StockShortage> {
    lines
        .iter()
        .zip(reserved)
        .filter(|(_, changed)| **changed == 0)
        .map(|(line, _)| StockShortage {
            product_id: line.product_id.clone(),
            requested: line.quantity,
            available: available.get(&line.product_id).copied().unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::domain::primitives::Money;

    fn line(product: &str, quantity: i32, cents: i64) -> CartLine {
        CartLine {
            product_id: product.to_owned(),
            quantity,
            unit_price: Money { cents, currency: "USD".to_owned() },
            added_at: Utc::now(),
        }
    }

    fn offer(cents: i64, available: i32) -> Offer {
        Offer { price: Money { cents, currency: "USD".to_owned() }, available }
    }

    #[test]
    fn lines_take_todays_price_in_product_order() {
        let offers = HashMap::from([("b".to_owned(), offer(250, 9)), ("a".to_owned(), offer(100, 9))]);
        let priced = priced_lines(&[line("b", 1, 200), line("a", 2, 90)], &offers).expect("priced");
        let seen: Vec<(&str, i64)> = priced.iter().map(|l| (l.product_id.as_str(), l.unit_price.cents)).collect();
        assert_eq!(seen, [("a", 100), ("b", 250)]);
    }

    #[test]
    fn a_vanished_product_or_an_empty_cart_is_refused() {
        let offers = HashMap::from([("a".to_owned(), offer(100, 9))]);
        assert!(matches!(
            priced_lines(&[line("a", 1, 100), line("gone", 3, 100)], &offers),
            Err(CheckoutError::OutOfStock(s)) if s == [StockShortage { product_id: "gone".into(), requested: 3, available: 0 }]
        ));
        assert!(matches!(priced_lines(&[], &offers), Err(CheckoutError::InvalidInput { field: "cart", .. })));
    }

    #[test]
    fn shortages_name_the_lines_that_reserved_nothing() {
        let lines = [line("a", 2, 100), line("b", 5, 100)];
        let available = HashMap::from([("b".to_owned(), 3)]);
        assert_eq!(
            shortages(&lines, &[1, 0], &available),
            [StockShortage { product_id: "b".into(), requested: 5, available: 3 }]
        );
    }
}
