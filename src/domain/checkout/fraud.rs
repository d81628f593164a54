//! Fraud rules scored before any charge, as the original design weighs them: additive, capped
//! at 1.0. Below 0.3 the order proceeds, up to 0.7 it waits for review, above that it is declined.

use super::{Address, Totals};

/// "High value" starts here (minor units).
pub const HIGH_VALUE_CENTS: i64 = 100_000;

const DISPOSABLE_DOMAINS: &[&str] = &[
    "mailinator.com",
    "guerrillamail.com",
    "10minutemail.com",
    "tempmail.com",
    "temp-mail.org",
    "yopmail.com",
    "trashmail.com",
    "sharklasers.com",
    "dispostable.com",
    "getnada.com",
];

/// What the rules look at.
#[derive(Debug, Clone)]
pub struct FraudSignals<'a> {
    pub shipping: &'a Address,
    pub billing: Option<&'a Address>,
    pub totals: &'a Totals,
    pub previous_orders: u64,
    /// Under 24 hours old; guests count as new.
    pub new_account: bool,
    pub recent_failed_payments: u64,
    pub email: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FraudVerdict {
    Proceed,
    Review,
    Decline,
}

pub fn score(signals: &FraudSignals<'_>) -> f64 {
    let mut score = 0.0;
    if signals.previous_orders == 0 && signals.billing.is_some_and(|billing| !billing.same_place(signals.shipping)) {
        score += 0.3;
    }
    if signals.totals.total >= HIGH_VALUE_CENTS && signals.new_account {
        score += 0.4;
    }
    if signals.recent_failed_payments >= 2 {
        score += 0.5;
    }
    let domain = signals.email.and_then(|email| email.rsplit_once('@')).map(|(_, d)| d.to_ascii_lowercase());
    if domain.is_some_and(|d| DISPOSABLE_DOMAINS.contains(&d.as_str())) {
        score += 0.6;
    }
    f64::min(score, 1.0)
}

/// Orders one shopper may have waiting for review at once: each holds its stock until an admin
/// decides or the reservation time runs out, so a script could otherwise empty the catalog.
pub const MAX_ORDERS_AWAITING_REVIEW: i64 = 3;

/// Whether one more order may wait for review beside the shopper's `waiting` ones.
pub fn may_await_review(waiting: i64) -> bool {
    waiting < MAX_ORDERS_AWAITING_REVIEW
}

pub fn verdict(score: f64) -> FraudVerdict {
    // Scores are sums of tenths; the epsilon keeps 0.3 + 0.4 at "review", as written.
    const EPSILON: f64 = 1e-9;
    if score < 0.3 - EPSILON {
        FraudVerdict::Proceed
    } else if score <= 0.7 + EPSILON {
        FraudVerdict::Review
    } else {
        FraudVerdict::Decline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(line1: &str) -> Address {
        Address {
            name: "Ada".to_owned(),
            line1: line1.to_owned(),
            line2: None,
            city: "Springfield".to_owned(),
            postal_code: "12345".to_owned(),
            country: "US".to_owned(),
        }
    }

    #[test]
    fn three_orders_may_wait_for_review_at_once() {
        assert!(may_await_review(0) && may_await_review(2));
        assert!(!may_await_review(3));
    }

    #[test]
    fn rules_add_up_and_cap_at_one() {
        let (home, elsewhere) = (address("1 Main St"), address("9 Elm St"));
        let small = Totals { subtotal: 1_000, shipping: 0, tax: 0, total: 1_000, currency: "USD".to_owned() };
        let large = Totals { total: HIGH_VALUE_CENTS, ..small.clone() };
        let base = FraudSignals {
            shipping: &home,
            billing: None,
            totals: &small,
            previous_orders: 0,
            new_account: true,
            recent_failed_payments: 0,
            email: Some("ada@example.com"),
        };
        assert_eq!(verdict(score(&base)), FraudVerdict::Proceed);
        let same_place = FraudSignals { billing: Some(&address(" 1  main st")), ..base.clone() };
        assert_eq!(score(&same_place), 0.0);
        let mismatch = FraudSignals { billing: Some(&elsewhere), ..base.clone() };
        assert_eq!((score(&mismatch), verdict(score(&mismatch))), (0.3, FraudVerdict::Review));
        let returning = FraudSignals { previous_orders: 1, ..mismatch.clone() };
        assert_eq!(score(&returning), 0.0);
        let big_and_mismatched = FraudSignals { totals: &large, ..mismatch.clone() };
        assert_eq!(verdict(score(&big_and_mismatched)), FraudVerdict::Review);
        let disposable = FraudSignals { email: Some("x@Mailinator.com"), totals: &large, ..base.clone() };
        assert_eq!(verdict(score(&disposable)), FraudVerdict::Decline);
        let everything = FraudSignals { recent_failed_payments: 3, ..disposable.clone() };
        assert_eq!(score(&everything), 1.0);
    }
}
