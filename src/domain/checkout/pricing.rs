//! Prices a checkout: subtotal, a flat shipping rate waived above a threshold, and tax by the
//! destination country.

use std::collections::HashMap;

use super::{CheckoutError, Totals};
use crate::domain::cart::CartLine;
use crate::domain::primitives::Money;

#[derive(Debug, Clone)]
pub struct PricingRules {
    pub shipping_cents: i64,
    /// Orders whose subtotal reaches this ship free.
    pub free_shipping_from_cents: i64,
    /// Tax rate per country, in basis points (1900 = 19%).
    pub tax_basis_points: HashMap<String, i64>,
    /// The destination assumed before the shopper gives an address.
    pub default_country: String,
}

impl PricingRules {
    /// Parses `US=0,DE=1900` (country=basis points).
    pub fn parse_tax_rates(text: &str) -> Result<HashMap<String, i64>, String> {
        text.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let (country, rate) =
                    entry.split_once('=').ok_or_else(|| format!("`{entry}` is not COUNTRY=BASIS_POINTS"))?;
                let country = country.trim().to_ascii_uppercase();
                let rate: i64 =
                    rate.trim().parse().map_err(|_| format!("`{entry}`: the rate is not a whole number"))?;
                if country.len() != 2 || !(0..=10_000).contains(&rate) {
                    return Err(format!("`{entry}`: expected a two-letter country and 0 to 10000 basis points"));
                }
                Ok((country, rate))
            })
            .collect()
    }

    pub fn price(&self, lines: &[CartLine], country: &str) -> Result<Totals, CheckoutError> {
        let currency = lines.first().map(|l| l.unit_price.currency.clone()).unwrap_or_default();
        if lines.iter().any(|l| l.unit_price.currency != currency) {
            return Err(CheckoutError::Conflict("the cart mixes currencies".to_owned()));
        }
        let subtotal: i64 = lines.iter().map(CartLine::total_cents).sum();
        let shipping = if subtotal >= self.free_shipping_from_cents { 0 } else { self.shipping_cents };
        let rate = self.tax_basis_points.get(country).copied().unwrap_or(0);
        // Tax on goods and shipping, rounded half up to the minor unit.
        let tax = ((subtotal + shipping) * rate + 5_000) / 10_000;
        let total = subtotal + shipping + tax;
        if total > Money::MAX_CENTS {
            return Err(CheckoutError::invalid(
                "cart",
                format!("an order's total is at most {} minor units", Money::MAX_CENTS),
            ));
        }
        Ok(Totals { subtotal, shipping, tax, total, currency })
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::domain::primitives::Money;

    fn line(cents: i64, quantity: i32) -> CartLine {
        CartLine {
            product_id: "p".to_owned(),
            quantity,
            unit_price: Money { cents, currency: "USD".to_owned() },
            added_at: Utc::now(),
        }
    }

    #[test]
    fn shipping_is_waived_at_the_threshold_and_tax_follows_the_country() {
        let rules = PricingRules {
            shipping_cents: 499,
            free_shipping_from_cents: 5_000,
            tax_basis_points: PricingRules::parse_tax_rates("US=0, de=1900").expect("valid"),
            default_country: "US".to_owned(),
        };
        let small = rules.price(&[line(1_000, 2)], "US").expect("priced");
        assert_eq!((small.subtotal, small.shipping, small.tax, small.total), (2_000, 499, 0, 2_499));
        let german = rules.price(&[line(1_000, 2)], "DE").expect("priced");
        assert_eq!((german.tax, german.total), (475, 2_974));
        let free = rules.price(&[line(2_500, 2)], "US").expect("priced");
        assert_eq!((free.shipping, free.total), (0, 5_000));
        assert!(PricingRules::parse_tax_rates("USA=5").is_err());
        assert!(PricingRules::parse_tax_rates("US=ten").is_err());
    }

    #[test]
    fn an_order_total_past_the_largest_amount_is_refused() {
        let rules = PricingRules {
            shipping_cents: 0,
            free_shipping_from_cents: 0,
            tax_basis_points: PricingRules::parse_tax_rates("DE=1900").expect("valid"),
            default_country: "US".to_owned(),
        };
        let largest = [line(Money::MAX_CENTS, 1)];
        assert_eq!(rules.price(&largest, "US").expect("priced").total, Money::MAX_CENTS);
        // The cart fits; its tax takes the order past what can be charged.
        assert!(matches!(rules.price(&largest, "DE"), Err(CheckoutError::InvalidInput { .. })));
    }
}
