//! The front of a sale's stock gate: counters that answer a `joinFlashSale` attempt without the
//! store. They count the attempt (note 16), refuse a second entry of one shopper, hand out the
//! next ticket, and take units for a ticket due at once, never below zero. Most of a flash
//! crowd is told SOLD_OUT here. The store stays exact behind them: a hold is written with a
//! conditional take of the sale row's `remaining`, so counters that lost their state (a Redis
//! restart) can cost a shopper a unit but can never sell one twice.
//!
//! `SaleGate` is the rule; the in-process adapter runs it under a lock, and the Redis adapter's
//! script (`kv::redis`) is the same steps in Lua.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{ATTEMPT_WINDOW, count_attempt, quantity_refusal};

/// One `joinFlashSale` call as the gate sees it.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub shopper: &'a str,
    pub quantity: i32,
    pub per_user_limit: i32,
    /// Tickets let through by now; `None` while the waiting room is not open (before the start,
    /// and until the early arrivals have their tickets).
    pub admitted: Option<i64>,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateAnswer {
    /// The gate holds nothing for this sale (a new instance, Redis restarted), or its waiting
    /// room is not open there yet: load it from the store and ask again. Nothing was counted.
    Unloaded,
    RateLimited(Duration),
    /// The shopper has an entry already (in the store, or about to be).
    Returning,
    /// `quantity` is outside 1..=perUserLimit: counted, nothing else.
    BadQuantity,
    /// Joined before the waiting room opened: waits without a ticket for the shuffle.
    Early,
    /// The next ticket is due at once and fewer units are left than it asks for.
    SoldOut,
    /// The shopper's ticket, let through later.
    Waiting(i64),
    /// The shopper's ticket was due at once and its units are taken.
    Admitted(i64),
}

/// One sale's counters.
#[derive(Debug, Default)]
pub struct SaleGate {
    pub units: i32,
    /// Tickets handed out; `None` until the waiting room is open here.
    pub tickets: Option<i64>,
    pub rate_limited: i64,
    entrants: HashSet<String>,
    /// Per shopper: attempts in the window, and when the window began.
    attempts: HashMap<String, (i32, DateTime<Utc>)>,
}

impl SaleGate {
    pub fn new(units: i32, tickets: Option<i64>) -> Self {
        SaleGate { units, tickets, ..SaleGate::default() }
    }

    pub fn enter(&mut self, attempt: &Attempt) -> GateAnswer {
        let tickets = match (attempt.admitted, self.tickets) {
            (Some(_), None) => return GateAnswer::Unloaded,
            (_, tickets) => tickets.unwrap_or_default(),
        };
        let window = self.attempts.get(attempt.shopper).copied().unwrap_or((0, attempt.now - ATTEMPT_WINDOW));
        match count_attempt(window.0, window.1, attempt.now) {
            Ok(counted) => self.attempts.insert(attempt.shopper.to_owned(), counted),
            Err(wait) => {
                self.rate_limited += 1;
                return GateAnswer::RateLimited(wait);
            }
        };
        if self.entrants.contains(attempt.shopper) {
            return GateAnswer::Returning;
        }
        if quantity_refusal(attempt.per_user_limit, attempt.quantity).is_some() {
            return GateAnswer::BadQuantity;
        }
        self.entrants.insert(attempt.shopper.to_owned());
        let Some(admitted) = attempt.admitted else { return GateAnswer::Early };
        let ticket = tickets + 1;
        if ticket > admitted {
            self.tickets = Some(ticket);
            return GateAnswer::Waiting(ticket);
        }
        if self.units < attempt.quantity {
            return GateAnswer::SoldOut;
        }
        self.units -= attempt.quantity;
        self.tickets = Some(ticket);
        GateAnswer::Admitted(ticket)
    }

    /// Undoes an entry the store did not take: its units come back and, when `shopper` is
    /// given, the shopper may enter again.
    pub fn put_back(&mut self, shopper: Option<&str>, units: i32) {
        self.units += units;
        if let Some(shopper) = shopper {
            self.entrants.remove(shopper);
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::domain::flash::ATTEMPTS_PER_WINDOW;

    fn attempt(shopper: &str, admitted: Option<i64>, now: DateTime<Utc>) -> Attempt<'_> {
        Attempt { shopper, quantity: 1, per_user_limit: 2, admitted, now }
    }

    #[test]
    fn due_tickets_take_units_until_too_few_are_left_and_never_below_zero() {
        let now = Utc::now();
        let mut gate = SaleGate::new(2, Some(0));
        let two = Attempt { quantity: 2, ..attempt("a", Some(100), now) };
        assert_eq!(gate.enter(&Attempt { quantity: 3, ..two }), GateAnswer::BadQuantity);
        assert_eq!(gate.enter(&attempt("b", Some(100), now)), GateAnswer::Admitted(1));
        assert_eq!(gate.enter(&two), GateAnswer::SoldOut, "two asked, one left");
        assert_eq!(gate.enter(&attempt("c", Some(100), now)), GateAnswer::Admitted(2));
        assert_eq!(gate.enter(&attempt("d", Some(100), now)), GateAnswer::SoldOut);
        assert_eq!(gate.units, 0);
        gate.put_back(None, 1);
        assert_eq!(gate.enter(&attempt("e", Some(100), now)), GateAnswer::Admitted(3), "given back, taken again");
    }

    #[test]
    fn tickets_not_yet_due_wait_and_take_nothing() {
        let now = Utc::now();
        let mut gate = SaleGate::new(5, Some(0));
        assert_eq!(gate.enter(&attempt("a", Some(1), now)), GateAnswer::Admitted(1));
        assert_eq!(gate.enter(&attempt("b", Some(1), now)), GateAnswer::Waiting(2));
        assert_eq!(gate.enter(&attempt("c", Some(1), now)), GateAnswer::Waiting(3));
        assert_eq!(gate.units, 4);
    }

    #[test]
    fn before_the_waiting_room_opens_arrivals_wait_without_a_ticket() {
        let now = Utc::now();
        let mut gate = SaleGate::new(5, None);
        assert_eq!(gate.enter(&attempt("a", None, now)), GateAnswer::Early);
        assert_eq!(
            gate.enter(&attempt("b", Some(10), now)),
            GateAnswer::Unloaded,
            "open only once the store opened it"
        );
        assert_eq!(gate.enter(&attempt("a", None, now)), GateAnswer::Returning);
    }

    #[test]
    fn a_shopper_enters_once_and_the_sixth_attempt_in_a_minute_is_refused() {
        let now = Utc::now();
        let mut gate = SaleGate::new(5, Some(0));
        assert_eq!(gate.enter(&attempt("a", Some(9), now)), GateAnswer::Admitted(1));
        for _ in 1..ATTEMPTS_PER_WINDOW {
            assert_eq!(gate.enter(&attempt("a", Some(9), now)), GateAnswer::Returning);
        }
        let later = now + TimeDelta::seconds(45);
        assert_eq!(gate.enter(&attempt("a", Some(9), later)), GateAnswer::RateLimited(Duration::from_secs(15)));
        assert_eq!(gate.rate_limited, 1);
        assert_eq!(gate.enter(&attempt("b", Some(9), later)), GateAnswer::Admitted(2), "others are not limited");
        assert_eq!(gate.enter(&attempt("a", Some(9), now + ATTEMPT_WINDOW)), GateAnswer::Returning, "a new window");
        gate.put_back(Some("b"), 1);
        assert_eq!(
            gate.enter(&attempt("b", Some(9), later)),
            GateAnswer::Admitted(3),
            "an undone entry may enter again"
        );
    }
}
