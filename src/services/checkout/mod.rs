//! Checkout: reserving a cart (`initiate`), letting a reservation go (`cancel`, expiry), and
//! the payment saga (`place.rs`: claim and charge; `complete.rs`: the order, compensation and
//! recovery). Each method owns its transactions.

mod complete;
mod place;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::db::outbox::OutboxRow;
use crate::db::{Conn, Pool, Writes, carts, checkout, flash_sales, inventory};
use crate::domain::auth::Viewer;
use crate::domain::cart::CartLine;
use crate::domain::catalog::model::validate_id;
use crate::domain::checkout::{CheckoutError, CheckoutSession, CheckoutStatus, PricingRules, rules};
use crate::domain::payments::RetryPolicy;
use crate::ports::{Clock, PaymentGateway, StoreResult};
use crate::services::cart::CartService;

pub use place::PlaceOrder;

pub type CheckoutResult<T> = Result<T, CheckoutError>;

#[derive(Debug, Clone)]
pub struct CheckoutRules {
    pub reservation_ttl: chrono::Duration,
    pub pricing: PricingRules,
    pub retry: RetryPolicy,
    /// Fault injection for recovery tests: the process aborts right after a successful charge.
    pub abort_after_charge: bool,
}

#[derive(Clone)]
pub struct CheckoutService {
    db: Pool,
    carts: CartService,
    gateway: Arc<dyn PaymentGateway>,
    clock: Arc<dyn Clock>,
    rules: CheckoutRules,
}

fn validate_session_id(id: &str) -> CheckoutResult<()> {
    validate_id("checkoutSessionId", id).map_err(|_| CheckoutError::invalid("checkoutSessionId", "malformed id"))
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Units of `lines` back to available stock (from reserved, or sold when `from_reserved` is
/// false), with the stock event that keeps search and browsing current.
fn stock_back(lines: &[CartLine], from_reserved: bool, now: DateTime<Utc>) -> StoreResult<Option<Writes>> {
    let back = lines.iter().map(|line| inventory::give_back(&line.product_id, line.quantity, from_reserved));
    let Some(writes) = Writes::each(back) else { return Ok(None) };
    let products: Vec<String> = lines.iter().map(|l| l.product_id.clone()).collect();
    Ok(Some(writes.event(OutboxRow::stock(&products, now)?)))
}

/// Writes `stock_back` if there is any.
pub(crate) async fn return_stock(
    conn: &mut Conn<'_>,
    lines: &[CartLine],
    from_reserved: bool,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    if let Some(writes) = stock_back(lines, from_reserved, now)? {
        writes.run(conn, "returning stock").await?;
    }
    Ok(())
}

/// Gives a closed session's units back: to its flash sale, or to regular stock.
pub(crate) async fn release(conn: &mut Conn<'_>, session: &CheckoutSession, now: DateTime<Utc>) -> StoreResult<()> {
    match &session.flash_sale_id {
        Some(sale_id) => flash_sales::release_hold(conn, sale_id, session).await,
        None => return_stock(conn, &session.lines, true, now).await,
    }
}

/// Moves a RESERVED session that no payment holds (or `saga` holds) to `status` and gives its
/// units back (`release`), in one transaction; `None` when it was not in that state.
pub(crate) async fn close_session(
    db: &Pool,
    id: &str,
    status: CheckoutStatus,
    saga: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<Option<CheckoutSession>> {
    db.transaction(async |c| {
        let Some(session) = checkout::close(c, id, status, saga, now).await? else { return Ok(None) };
        release(c, &session, now).await?;
        Ok(Some(session))
    })
    .await
}

impl CheckoutService {
    pub fn new(
        db: Pool,
        carts: CartService,
        gateway: Arc<dyn PaymentGateway>,
        clock: Arc<dyn Clock>,
        rules: CheckoutRules,
    ) -> Self {
        Self { db, carts, gateway, clock, rules }
    }

    /// How long a saga claimed for a charge (or a refund) is its claimant's.
    pub fn lease_length(&self) -> chrono::Duration {
        self.rules.retry.lease(self.gateway.longest_call())
    }

    fn lease_from(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + self.lease_length()
    }

    /// Reserves every line of the viewer's cart at today's prices, all or nothing, and prices
    /// the order for the default destination. An earlier open session of the viewer is
    /// released first, so one shopper never holds stock twice.
    pub async fn initiate(&self, viewer: Option<&Viewer>) -> CheckoutResult<CheckoutSession> {
        let owner = Viewer::shopper_or(viewer, CheckoutError::Unauthenticated)?;
        let now = self.clock.now();
        let empty = || CheckoutError::invalid("cart", "the cart is empty; add items before checking out");
        self.db
            .transaction(async |c| {
                // The cart's lock serializes checkouts and cart changes of one shopper.
                let cart = carts::lock(c, &owner).await?.filter(|cart| !cart.is_expired(now)).ok_or_else(empty)?;
                let mut released: Vec<CartLine> = Vec::new();
                for earlier in checkout::close_open_of(c, &owner, CheckoutStatus::Cancelled, now).await? {
                    released.extend(earlier.lines);
                }
                return_stock(c, &merged_by_product(released), true, now).await?;
                let products: Vec<String> = cart.lines.iter().map(|l| l.product_id.clone()).collect();
                let offers = inventory::offers(c, &products).await?;
                let lines = rules::priced_lines(&cart.lines, &offers)?;
                let totals = self.rules.pricing.price(&lines, &self.rules.pricing.default_country)?;
                let session = CheckoutSession {
                    id: new_id("chk"),
                    owner: owner.clone(),
                    status: CheckoutStatus::Reserved,
                    lines,
                    totals,
                    saga_id: None,
                    expires_at: now + self.rules.reservation_ttl,
                    created_at: now,
                    flash_sale_id: None,
                };
                let mut writes = Writes::new(checkout::insert(&session)?);
                for line in &session.lines {
                    writes = writes.and(inventory::reserve(&line.product_id, line.quantity));
                }
                let changed = writes.event(OutboxRow::stock(&products, now)?).run(c, "reserving stock").await?;
                let reserved = &changed[1..];
                if reserved.contains(&0) {
                    let available = inventory::available(c, &products).await?;
                    return Err(CheckoutError::OutOfStock(rules::shortages(&session.lines, reserved, &available)));
                }
                Ok(session)
            })
            .await
    }

    /// The viewer's session; `None` for an unknown or someone else's.
    pub async fn session(&self, viewer: Option<&Viewer>, id: &str) -> CheckoutResult<Option<CheckoutSession>> {
        let owner = Viewer::shopper_or(viewer, CheckoutError::Unauthenticated)?;
        validate_session_id(id)?;
        let session = self.db.with_conn(async |c| checkout::by_id(c, id).await).await?;
        Ok(session.filter(|s| s.owner == owner).map(|s| self.shown(s)))
    }

    /// Releases the session's stock at once. Cancelling a session that is already over is a
    /// no-op that returns it; a paid one is a CONFLICT.
    pub async fn cancel(&self, viewer: Option<&Viewer>, id: &str) -> CheckoutResult<CheckoutSession> {
        let session = self.own_session(viewer, id).await?;
        if session.status == CheckoutStatus::Reserved
            && self.close(id, CheckoutStatus::Cancelled, None).await?.is_none()
        {
            let current = self.own_session(viewer, id).await?;
            if current.status == CheckoutStatus::Reserved {
                return Err(CheckoutError::PaymentInProgress);
            }
        }
        let session = self.own_session(viewer, id).await?;
        match session.status {
            CheckoutStatus::Completed => {
                Err(CheckoutError::Conflict("the checkout is paid; cancel the order instead".to_owned()))
            }
            _ => Ok(session),
        }
    }

    /// Returns the stock of expired sessions; returns how many were expired.
    pub async fn expire_due(&self) -> CheckoutResult<usize> {
        let now = self.clock.now();
        let mut expired = 0;
        for id in self.db.with_conn(async |c| checkout::expired(c, now, 1_000).await).await? {
            if self.close(&id, CheckoutStatus::Expired, None).await?.is_some() {
                expired += 1;
            }
        }
        Ok(expired)
    }

    /// Moves a RESERVED session that no payment holds (or `saga` holds) to `status` and gives
    /// its units back; `None` when it was not in that state.
    async fn close(
        &self,
        id: &str,
        status: CheckoutStatus,
        saga: Option<&str>,
    ) -> CheckoutResult<Option<CheckoutSession>> {
        Ok(close_session(&self.db, id, status, saga, self.clock.now()).await?)
    }

    async fn own_session(&self, viewer: Option<&Viewer>, id: &str) -> CheckoutResult<CheckoutSession> {
        self.session(viewer, id).await?.ok_or_else(|| CheckoutError::NotFound(format!("checkout session {id}")))
    }

    fn shown(&self, session: CheckoutSession) -> CheckoutSession {
        let status = session.status_at(self.clock.now());
        CheckoutSession { status, ..session }
    }
}

/// One line per product (a product in two released sessions comes back once, summed): one
/// statement may update a stock row only once.
fn merged_by_product(lines: Vec<CartLine>) -> Vec<CartLine> {
    let mut merged: Vec<CartLine> = Vec::with_capacity(lines.len());
    for line in lines {
        match merged.iter_mut().find(|m| m.product_id == line.product_id) {
            Some(existing) => existing.quantity += line.quantity,
            None => merged.push(line),
        }
    }
    merged.sort_by(|a, b| a.product_id.cmp(&b.product_id));
    merged
}
