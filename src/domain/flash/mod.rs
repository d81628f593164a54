//! Flash sales: a sale's units, its waiting room and the entries of the shoppers who joined.
//! The rules here are pure: when a ticket is let through, what a sale and an entry read as,
//! and what a new sale must satisfy.

use chrono::{DateTime, TimeDelta, Utc};

use crate::domain::primitives::Money;

pub mod gate;

/// Calls to `joinFlashSale` one shopper may make for one sale per `ATTEMPT_WINDOW` (note 16).
pub const ATTEMPTS_PER_WINDOW: i32 = 5;
pub const ATTEMPT_WINDOW: TimeDelta = TimeDelta::seconds(60);
pub const DEFAULT_ADMISSION_PER_MINUTE: i32 = 6_000;
pub const DEFAULT_HOLD_SECONDS: i32 = 120;
pub const MIN_HOLD_SECONDS: i32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum FlashSaleError {
    #[error("{field}: {message}")]
    InvalidInput { field: &'static str, message: String },
    #[error("this operation needs a session token: send Authorization: Bearer <token>")]
    Unauthenticated,
    #[error("{0} not found")]
    NotFound(String),
    #[error("not enough stock: {product_id} has {available} of the {requested} asked for")]
    OutOfStock { product_id: String, requested: i32, available: i32 },
    #[error("the sale has ended")]
    SaleNotActive,
    #[error("too many attempts to join this sale; try again in a moment")]
    RateLimited { retry_after: std::time::Duration },
    #[error(transparent)]
    Store(#[from] crate::ports::StoreError),
    #[error(transparent)]
    Gate(#[from] crate::ports::GateError),
}

impl FlashSaleError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        FlashSaleError::InvalidInput { field, message: message.into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryStatus {
    Waiting,
    Reserved,
    Purchased,
    SoldOut,
    Expired,
}

impl EntryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryStatus::Waiting => "WAITING",
            EntryStatus::Reserved => "RESERVED",
            EntryStatus::Purchased => "PURCHASED",
            EntryStatus::SoldOut => "SOLD_OUT",
            EntryStatus::Expired => "EXPIRED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Waiting, Self::Reserved, Self::Purchased, Self::SoldOut, Self::Expired]
            .into_iter()
            .find(|status| status.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SaleStatus {
    Scheduled,
    Active,
    SoldOut,
    Ended,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FlashSale {
    pub id: String,
    pub product_id: String,
    pub sale_price: Money,
    pub quantity: i32,
    pub remaining: i32,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub per_user_limit: i32,
    pub admission_per_minute: i32,
    pub hold_seconds: i32,
    pub shuffled: bool,
    pub rate_limited: i32,
    pub returned_to_stock: i32,
    pub ended_at: Option<DateTime<Utc>>,
}

impl FlashSale {
    /// Over at `endsAt` or when an admin ended it; joining is refused from then on.
    pub fn is_over(&self, now: DateTime<Utc>) -> bool {
        self.ended_at.is_some() || now >= self.ends_at
    }

    /// A new entry asks for at least one unit and at most the sale's limit per shopper.
    pub fn check_quantity(&self, quantity: i32) -> Result<(), FlashSaleError> {
        quantity_refusal(self.per_user_limit, quantity).map_or(Ok(()), Err)
    }

    /// `held`: units of RESERVED entries.
    pub fn status(&self, now: DateTime<Utc>, held: i64) -> SaleStatus {
        if self.is_over(now) {
            SaleStatus::Ended
        } else if self.remaining == 0 && held == 0 {
            SaleStatus::SoldOut
        } else if now < self.starts_at {
            SaleStatus::Scheduled
        } else {
            SaleStatus::Active
        }
    }

    /// Tickets let through by `now`: the first at the start, then one every
    /// 60 / admissionPerMinute seconds, spread evenly rather than in bursts.
    pub fn admitted_tickets(&self, now: DateTime<Utc>) -> i64 {
        if now < self.starts_at {
            return 0;
        }
        let elapsed = (now - self.starts_at).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
        1 + (elapsed * f64::from(self.admission_per_minute) / 60.0) as i64
    }

    /// When `ticket` is let through.
    pub fn admission_time(&self, ticket: i64) -> DateTime<Utc> {
        let seconds = (ticket - 1).max(0) as f64 * 60.0 / f64::from(self.admission_per_minute.max(1));
        self.starts_at + TimeDelta::microseconds((seconds * 1e6) as i64)
    }

    pub fn hold(&self) -> TimeDelta {
        TimeDelta::seconds(i64::from(self.hold_seconds))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub sale_id: String,
    pub shopper: String,
    pub status: EntryStatus,
    pub quantity: i32,
    pub ticket: Option<i64>,
    pub checkout_session_id: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub admitted_at: Option<DateTime<Utc>>,
    pub joined_at: DateTime<Utc>,
}

/// An entry as its shopper sees it: its place among those still waiting, and the wait.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryView {
    pub entry: Entry,
    pub position: Option<i64>,
    pub estimated_wait_seconds: Option<i64>,
}

/// What a sale's watchers are told each tick of the flash-sale worker, once for all of them:
/// enough for a waiting shopper to work out its place, and for a sale page to show the sale,
/// without either reading the store.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NowServing {
    /// Tickets let through so far.
    pub admitted: i64,
    pub remaining: i32,
    pub waiting: i64,
    pub status: SaleStatus,
    /// The early arrivals have their tickets.
    pub shuffled: bool,
}

impl EntryView {
    /// This view carried forward to a tick, without the store: the line ahead has moved by the
    /// tickets let through since it was read (`admitted_then`), and a sale with nothing left,
    /// or over, has sold the waiting out. Status changes of the entry itself come from the
    /// store. `None` when only the store can tell: a ticket drawn for an early arrival.
    pub fn at_tick(
        &self,
        admitted_then: i64,
        serving: &NowServing,
        sale: &FlashSale,
        now: DateTime<Utc>,
    ) -> Option<Self> {
        if self.entry.status != EntryStatus::Waiting {
            return Some(self.clone());
        }
        if matches!(serving.status, SaleStatus::SoldOut | SaleStatus::Ended) {
            let entry = Entry { status: EntryStatus::SoldOut, ..self.entry.clone() };
            return Some(EntryView { entry, position: None, estimated_wait_seconds: None });
        }
        let wait_until = match self.entry.ticket {
            Some(ticket) => sale.admission_time(ticket),
            None if serving.shuffled => return None,
            None => sale.starts_at,
        };
        let moved = (serving.admitted - admitted_then).max(0);
        Some(EntryView {
            entry: self.entry.clone(),
            position: self.position.map(|position| (position - moved).max(1)),
            estimated_wait_seconds: Some((wait_until - now).num_seconds().max(0)),
        })
    }
}

/// A new sale as an admin asks for it.
#[derive(Debug, Clone)]
pub struct NewSale {
    pub product_id: String,
    pub sale_price_cents: i64,
    pub quantity: i32,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub per_user_limit: Option<i32>,
    pub admission_per_minute: Option<i32>,
    pub hold_seconds: Option<i32>,
}

impl NewSale {
    /// Note 14's rules.
    pub fn validate(&self) -> Result<(), FlashSaleError> {
        if self.starts_at >= self.ends_at {
            return Err(FlashSaleError::invalid("endsAt", "must be after startsAt"));
        }
        if self.sale_price_cents < 1 || self.sale_price_cents > Money::MAX_CENTS {
            return Err(FlashSaleError::invalid("salePriceCents", "must be at least 1"));
        }
        if self.quantity < 1 {
            return Err(FlashSaleError::invalid("quantity", "must be at least 1"));
        }
        if self.per_user_limit.is_some_and(|limit| limit < 1) {
            return Err(FlashSaleError::invalid("perUserLimit", "must be at least 1"));
        }
        if self.admission_per_minute.is_some_and(|rate| rate < 1) {
            return Err(FlashSaleError::invalid("admissionPerMinute", "must be at least 1"));
        }
        if self.hold_seconds.is_some_and(|hold| hold < MIN_HOLD_SECONDS) {
            return Err(FlashSaleError::invalid("holdSeconds", format!("must be at least {MIN_HOLD_SECONDS}")));
        }
        Ok(())
    }
}

/// Why a new entry may not ask for `quantity` units, if it may not.
pub fn quantity_refusal(per_user_limit: i32, quantity: i32) -> Option<FlashSaleError> {
    if quantity < 1 {
        return Some(FlashSaleError::invalid("quantity", "must be at least 1"));
    }
    if quantity > per_user_limit {
        return Some(FlashSaleError::invalid("quantity", format!("at most {per_user_limit} per shopper in this sale")));
    }
    None
}

/// The attempt window after one more `joinFlashSale` call at `now`: (attempts, window start),
/// or how long until the next call is allowed.
pub fn count_attempt(
    attempts: i32,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(i32, DateTime<Utc>), std::time::Duration> {
    if now - since >= ATTEMPT_WINDOW {
        return Ok((1, now));
    }
    if attempts >= ATTEMPTS_PER_WINDOW {
        return Err((since + ATTEMPT_WINDOW - now).to_std().unwrap_or_default());
    }
    Ok((attempts + 1, since))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_entry_asks_for_one_unit_up_to_the_limit() {
        let mut limited = sale(Utc::now(), 60);
        limited.per_user_limit = 2;
        assert!(limited.check_quantity(1).is_ok());
        assert!(limited.check_quantity(2).is_ok());
        for refused in [0, -1, 3] {
            assert!(
                matches!(limited.check_quantity(refused), Err(FlashSaleError::InvalidInput { field: "quantity", .. })),
                "{refused}"
            );
        }
    }

    fn sale(starts_at: DateTime<Utc>, per_minute: i32) -> FlashSale {
        FlashSale {
            id: "s".into(),
            product_id: "p".into(),
            sale_price: Money { cents: 100, currency: "USD".into() },
            quantity: 10,
            remaining: 10,
            starts_at,
            ends_at: starts_at + TimeDelta::hours(1),
            per_user_limit: 1,
            admission_per_minute: per_minute,
            hold_seconds: 120,
            shuffled: false,
            rate_limited: 0,
            returned_to_stock: 0,
            ended_at: None,
        }
    }

    #[test]
    fn admission_is_spread_evenly_from_the_start() {
        let start = Utc::now();
        let sale = sale(start, 60);
        assert_eq!(sale.admitted_tickets(start - TimeDelta::seconds(1)), 0);
        assert_eq!(sale.admitted_tickets(start), 1);
        assert_eq!(sale.admitted_tickets(start + TimeDelta::milliseconds(999)), 1);
        assert_eq!(sale.admitted_tickets(start + TimeDelta::seconds(10)), 11);
        assert_eq!(sale.admission_time(11), start + TimeDelta::seconds(10));
    }

    #[test]
    fn the_sixth_attempt_within_a_minute_waits_for_the_window() {
        let start = Utc::now();
        let mut window = (0, start - TimeDelta::hours(1));
        for _ in 0..5 {
            window = count_attempt(window.0, window.1, start).expect("allowed");
        }
        let wait = count_attempt(window.0, window.1, start + TimeDelta::seconds(20)).expect_err("sixth");
        assert_eq!(wait.as_secs(), 40);
        assert_eq!(
            count_attempt(window.0, window.1, start + TimeDelta::seconds(60)),
            Ok((1, start + TimeDelta::seconds(60)))
        );
    }

    #[test]
    fn a_sale_reads_sold_out_only_with_nothing_left_or_held_and_ended_after_its_end() {
        let start = Utc::now();
        let mut sale = sale(start, 60);
        assert_eq!(sale.status(start - TimeDelta::seconds(1), 0), SaleStatus::Scheduled);
        assert_eq!(sale.status(start, 0), SaleStatus::Active);
        sale.remaining = 0;
        assert_eq!(sale.status(start, 1), SaleStatus::Active);
        assert_eq!(sale.status(start, 0), SaleStatus::SoldOut);
        assert_eq!(sale.status(sale.ends_at, 0), SaleStatus::Ended);
    }

    fn waiting(ticket: Option<i64>, position: Option<i64>, joined_at: DateTime<Utc>) -> EntryView {
        let entry = Entry {
            sale_id: "s".into(),
            shopper: "guest:g".into(),
            status: EntryStatus::Waiting,
            quantity: 1,
            ticket,
            checkout_session_id: None,
            expires_at: None,
            admitted_at: None,
            joined_at,
        };
        EntryView { entry, position, estimated_wait_seconds: None }
    }

    fn serving(admitted: i64, status: SaleStatus, shuffled: bool) -> NowServing {
        NowServing { admitted, remaining: 5, waiting: 100, status, shuffled }
    }

    #[test]
    fn a_tick_moves_a_waiting_shopper_up_without_the_store() {
        let start = Utc::now();
        let sale = sale(start, 60);
        let read = waiting(Some(31), Some(20), start);
        let later = start + TimeDelta::seconds(15);
        let moved = read.at_tick(11, &serving(16, SaleStatus::Active, true), &sale, later).expect("computed");
        assert_eq!(moved.position, Some(15), "five tickets let through since the read");
        assert_eq!(moved.estimated_wait_seconds, Some(15), "ticket 31 goes through 30 s after the start");
        let passed = read.at_tick(11, &serving(40, SaleStatus::Active, true), &sale, later).expect("computed");
        assert_eq!(passed.position, Some(1), "never past the front: the admission itself is pushed");
    }

    #[test]
    fn a_tick_of_a_sold_out_sale_sells_the_waiting_out_and_leaves_holds_alone() {
        let start = Utc::now();
        let sale = sale(start, 60);
        let read = waiting(Some(31), Some(20), start);
        let gone = read.at_tick(11, &serving(16, SaleStatus::SoldOut, true), &sale, start).expect("computed");
        assert_eq!((gone.entry.status, gone.position), (EntryStatus::SoldOut, None));
        let mut held = read.clone();
        held.entry.status = EntryStatus::Reserved;
        assert_eq!(held.at_tick(11, &serving(16, SaleStatus::SoldOut, true), &sale, start), Some(held.clone()));
    }

    #[test]
    fn an_early_arrival_reads_its_ticket_from_the_store_once_drawn() {
        let start = Utc::now();
        let sale = sale(start, 60);
        let early = waiting(None, None, start - TimeDelta::minutes(5));
        let before = early.at_tick(0, &serving(0, SaleStatus::Scheduled, false), &sale, start - TimeDelta::seconds(30));
        assert_eq!(before.expect("computed").estimated_wait_seconds, Some(30));
        assert_eq!(early.at_tick(0, &serving(1, SaleStatus::Active, true), &sale, start), None);
    }
}
