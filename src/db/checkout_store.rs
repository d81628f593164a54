//! The checkout, order and notification ports over the same pool: each method is one
//! transaction (or one read), so every money-and-stock step is all or nothing.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::checkout_models::{
    CONFIRMED, CheckoutSessionRow, NotificationRow, OrderEventRow, OrderRow, PaymentRow, RELEASED, RESERVED,
    ReservationRow, SagaRow,
};
use super::models::NewOutboxRow;
use super::pool::Conn;
use super::repo::{carts, checkout, orders, outbox};
use super::store::{DbStore, catalog_event, load_carts, write_cart};
use crate::domain::cart::{CartError, CartLine, CartOwner, StockShortage};
use crate::domain::checkout::{CheckoutError, CheckoutSession, CheckoutStatus, Saga, SagaStep};
use crate::domain::events::order_topic;
use crate::domain::notify::Notification;
use crate::domain::orders::{Order, OrderEvent};
use crate::domain::payments::{Payment, PaymentStatus};
use crate::domain::ports::{
    CartKey, CheckoutCompletion, CheckoutDecision, CheckoutStore, NewCheckout, NewPayment, NotificationStore,
    OrderChange, OrderStore, PaymentClaim, ProductOffer, StoreError, StoreResult,
};

fn sagas(rows: Vec<SagaRow>) -> StoreResult<Vec<Saga>> {
    rows.into_iter().map(SagaRow::into_saga).collect()
}

fn payments(rows: Vec<PaymentRow>) -> StoreResult<Vec<Payment>> {
    rows.into_iter().map(PaymentRow::into_payment).collect()
}

/// Returns a session's units in `from` (RESERVED or CONFIRMED) to available stock and marks
/// them RELEASED; queues the catalog event that keeps search's stock current.
async fn release_units(c: &mut Conn<'_>, session_id: &str, from: &str, now: chrono::NaiveDateTime) -> StoreResult<()> {
    let held = checkout::reservations_of(c, session_id, from).await?;
    for r in &held {
        checkout::return_stock(c, &r.product_id, r.quantity, from == RESERVED).await?;
    }
    checkout::set_reservations_status(c, session_id, from, RELEASED).await?;
    if !held.is_empty() {
        outbox::insert(c, &[catalog_event(held.into_iter().map(|r| r.product_id).collect(), now)?]).await?;
    }
    Ok(())
}

fn order_event_row(owner: &CartOwner, event: &OrderEvent, now: chrono::NaiveDateTime) -> StoreResult<NewOutboxRow> {
    let payload =
        serde_json::to_string(event).map_err(|err| StoreError::internal("serializing an order event", err))?;
    Ok(NewOutboxRow { topic: order_topic(&owner.0), payload, created_at: now })
}

#[async_trait]
impl CheckoutStore for DbStore {
    async fn reserve_checkout(
        &self,
        checkout: &NewCheckout,
        decide: CheckoutDecision,
    ) -> Result<CheckoutSession, CheckoutError> {
        let now = checkout.now.naive_utc();
        let owner = checkout.owner.clone();
        self.pool
            .transaction(async |c| {
                // The cart's lock serializes checkouts and cart changes of one owner.
                let cart_id = owner.cart_id();
                if !carts::lock_cart(c, &cart_id).await? {
                    return Err(CheckoutError::invalid("cart", "the cart is empty; add items before checking out"));
                }
                let cart = load_carts(c, &[cart_id]).await?.pop().ok_or(CheckoutError::Unauthenticated)?;
                for earlier in checkout::free_open_sessions_of(c, &owner.0).await? {
                    if checkout::close_free_session(c, &earlier, CheckoutStatus::Cancelled.as_str(), now).await? {
                        release_units(c, &earlier, RESERVED, now).await?;
                    }
                }
                let ids: Vec<String> = cart.lines.iter().map(|l| l.product_id.clone()).collect();
                let offers: HashMap<String, ProductOffer> = carts::offers(c, &ids)
                    .await?
                    .into_iter()
                    .map(|(id, cents, currency, available)| {
                        (id, ProductOffer { price: crate::domain::catalog::Money { cents, currency }, available })
                    })
                    .collect();
                let (lines, totals) = decide(&cart, &offers)?;
                let mut in_lock_order: Vec<&CartLine> = lines.iter().collect();
                in_lock_order.sort_by(|a, b| a.product_id.cmp(&b.product_id));
                let mut short = Vec::new();
                for line in in_lock_order {
                    if !checkout::reserve_stock(c, &line.product_id, line.quantity).await? {
                        let available = checkout::available_of(c, &line.product_id).await?;
                        short.push(StockShortage {
                            product_id: line.product_id.clone(),
                            requested: line.quantity,
                            available,
                        });
                    }
                }
                if !short.is_empty() {
                    return Err(CheckoutError::OutOfStock(short));
                }
                let session = CheckoutSession {
                    id: checkout.id.clone(),
                    owner: owner.clone(),
                    status: CheckoutStatus::Reserved,
                    lines,
                    totals,
                    saga_id: None,
                    expires_at: checkout.expires_at,
                    created_at: checkout.now,
                };
                checkout::insert_session(c, &CheckoutSessionRow::new(&session)?).await?;
                let reservations: Vec<ReservationRow> = session
                    .lines
                    .iter()
                    .map(|line| ReservationRow {
                        session_id: session.id.clone(),
                        product_id: line.product_id.clone(),
                        quantity: line.quantity,
                        owner: owner.0.clone(),
                        status: RESERVED.to_owned(),
                        expires_at: checkout.expires_at.naive_utc(),
                        created_at: now,
                    })
                    .collect();
                checkout::insert_reservations(c, &reservations).await?;
                outbox::insert(c, &[catalog_event(ids, now)?]).await?;
                Ok(session)
            })
            .await
    }

    async fn checkout_session(&self, id: &str) -> StoreResult<Option<CheckoutSession>> {
        let row = self.pool.with_conn(async |c| checkout::session_by_id(c, id).await).await?;
        row.map(CheckoutSessionRow::into_session).transpose()
    }

    async fn release_checkout(&self, id: &str, status: CheckoutStatus, now: DateTime<Utc>) -> StoreResult<bool> {
        let now = now.naive_utc();
        self.pool
            .transaction(async |c| -> StoreResult<bool> {
                if !checkout::close_free_session(c, id, status.as_str(), now).await? {
                    return Ok(false);
                }
                release_units(c, id, RESERVED, now).await?;
                Ok(true)
            })
            .await
    }

    async fn expired_checkouts(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<String>> {
        let now = now.naive_utc();
        self.pool.with_conn(async |c| checkout::expired_sessions(c, now, limit).await).await
    }

    async fn saga_by_key(&self, owner: &CartOwner, idempotency_key: &str) -> StoreResult<Option<Saga>> {
        let row = self.pool.with_conn(async |c| checkout::saga_by_key(c, &owner.0, idempotency_key).await).await?;
        row.map(SagaRow::into_saga).transpose()
    }

    async fn saga(&self, id: &str) -> StoreResult<Option<Saga>> {
        let row = self.pool.with_conn(async |c| checkout::saga_by_id(c, id).await).await?;
        row.map(SagaRow::into_saga).transpose()
    }

    async fn sagas_in_step(&self, step: SagaStep, updated_before: DateTime<Utc>) -> StoreResult<Vec<Saga>> {
        let before = updated_before.naive_utc();
        sagas(self.pool.with_conn(async |c| checkout::sagas_in_step(c, step.as_str(), before).await).await?)
    }

    async fn claim_payment(&self, claim: &PaymentClaim) -> Result<Option<Payment>, CheckoutError> {
        let now = claim.now.naive_utc();
        let saga = SagaRow::new(&claim.saga)?;
        self.pool
            .transaction(async |c| {
                let holds_key = if claim.is_new {
                    checkout::insert_saga_if_new(c, &saga).await?
                } else {
                    let (failed, charging) = (SagaStep::Failed.as_str(), SagaStep::Charging.as_str());
                    checkout::advance_saga(c, &saga.id, failed, charging, None, None, now).await?
                };
                if !holds_key {
                    return Err(CheckoutError::PaymentInProgress);
                }
                if !checkout::claim_session(c, &saga.session_id, &saga.owner, &saga.id, now).await? {
                    return Err(CheckoutError::Conflict("the checkout session cannot be paid now".to_owned()));
                }
                let Some(NewPayment { id, amount, payment_method }) = &claim.payment else { return Ok(None) };
                let attempt = checkout::attempts_of(c, &saga.id).await? + 1;
                let row = PaymentRow {
                    id: id.clone(),
                    saga_id: saga.id.clone(),
                    owner: saga.owner.clone(),
                    attempt,
                    idempotency_key: format!("{}:{attempt}", saga.id),
                    status: PaymentStatus::Processing.as_str().to_owned(),
                    amount_cents: amount.cents,
                    currency_code: amount.currency.clone(),
                    payment_method: payment_method.clone(),
                    gateway_reference: None,
                    failure: None,
                    created_at: now,
                    updated_at: now,
                };
                checkout::insert_payment(c, &row).await?;
                Ok(Some(row.into_payment()?))
            })
            .await
    }

    async fn latest_payment(&self, saga_id: &str) -> StoreResult<Option<Payment>> {
        let row = self.pool.with_conn(async |c| checkout::latest_payment(c, saga_id).await).await?;
        row.map(PaymentRow::into_payment).transpose()
    }

    async fn fail_payment(
        &self,
        saga_id: &str,
        payment_id: Option<&str>,
        failure: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let now = now.naive_utc();
        self.pool
            .transaction(async |c| -> StoreResult<()> {
                if let Some(payment_id) = payment_id {
                    checkout::set_payment_status(c, payment_id, PaymentStatus::Failed.as_str(), Some(failure), now)
                        .await?;
                }
                let (charging, failed) = (SagaStep::Charging.as_str(), SagaStep::Failed.as_str());
                checkout::advance_saga(c, saga_id, charging, failed, None, Some(failure), now).await?;
                if let Some(saga) = checkout::saga_by_id(c, saga_id).await? {
                    checkout::free_session(c, &saga.session_id, saga_id, now).await?;
                }
                Ok(())
            })
            .await
    }

    async fn complete_checkout(&self, completion: &CheckoutCompletion) -> StoreResult<Option<Order>> {
        let now = completion.now.naive_utc();
        let placed = &completion.order;
        let first = Order::placed_event(
            placed.clone(),
            completion.status,
            completion.payment.as_ref().map(|(id, _)| id.clone()),
        );
        let order = Order::replay(std::slice::from_ref(&first))
            .ok_or_else(|| StoreError::internal("creating an order", std::io::Error::other("no PLACED event")))?;
        let (order_row, event_row) = (OrderRow::new(&order)?, OrderEventRow::new(&first)?);
        let notice = order_event_row(&placed.owner, &first, now)?;
        let step = if completion.payment.is_some() { SagaStep::Completed } else { SagaStep::Review };
        self.pool
            .transaction(async |c| -> StoreResult<Option<Order>> {
                // Cart first: the lock order of checkout and cart changes (then stock rows).
                let cart_id = placed.owner.cart_id();
                carts::lock_cart(c, &cart_id).await?;
                let (charging, to) = (SagaStep::Charging.as_str(), step.as_str());
                if !checkout::advance_saga(c, &completion.saga_id, charging, to, Some(&placed.id), None, now).await? {
                    return Ok(None);
                }
                if let Some((payment_id, reference)) = &completion.payment {
                    checkout::complete_payment(c, payment_id, reference, now).await?;
                }
                orders::insert_order(c, &order_row).await?;
                orders::insert_event(c, &event_row).await?;
                for r in checkout::reservations_of(c, &placed.session_id, RESERVED).await? {
                    checkout::sell_reserved(c, &r.product_id, r.quantity).await?;
                }
                checkout::set_reservations_status(c, &placed.session_id, RESERVED, CONFIRMED).await?;
                checkout::set_session_status(c, &placed.session_id, CheckoutStatus::Completed.as_str(), now).await?;
                if let Some(cart) = load_carts(c, &[cart_id]).await?.pop() {
                    let remaining = without_bought(&cart.lines, &placed.lines);
                    if remaining != cart.lines {
                        let key = CartKey { owner: placed.owner.clone(), expires_at: cart.expires_at };
                        write_cart(c, &cart, remaining, &key, now).await.map_err(|err| match err {
                            CartError::Store(err) => err,
                            other => StoreError::internal("clearing the bought lines from the cart", other),
                        })?;
                    }
                }
                if let Some(notification) = &completion.notification {
                    orders::insert_notification(c, &NotificationRow::new(notification, now)).await?;
                }
                outbox::insert(c, &[notice]).await?;
                Ok(Some(order.clone()))
            })
            .await
    }

    async fn compensate_checkout(
        &self,
        saga_id: &str,
        payment_id: &str,
        failure: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let now = now.naive_utc();
        self.pool
            .transaction(async |c| -> StoreResult<()> {
                checkout::set_payment_status(c, payment_id, PaymentStatus::Refunded.as_str(), Some(failure), now)
                    .await?;
                let (charging, compensated) = (SagaStep::Charging.as_str(), SagaStep::Compensated.as_str());
                if !checkout::advance_saga(c, saga_id, charging, compensated, None, Some(failure), now).await? {
                    return Ok(());
                }
                if let Some(saga) = checkout::saga_by_id(c, saga_id).await? {
                    checkout::set_session_status(c, &saga.session_id, CheckoutStatus::Failed.as_str(), now).await?;
                    release_units(c, &saga.session_id, RESERVED, now).await?;
                }
                Ok(())
            })
            .await
    }

    async fn failed_payments_since(&self, owner: &CartOwner, since: DateTime<Utc>) -> StoreResult<u64> {
        let since = since.naive_utc();
        let count = self.pool.with_conn(async |c| checkout::failed_payments_since(c, &owner.0, since).await).await?;
        Ok(u64::try_from(count).unwrap_or_default())
    }
}

/// The cart's lines less what was bought (a line added during checkout stays).
fn without_bought(lines: &[CartLine], bought: &[CartLine]) -> Vec<CartLine> {
    lines
        .iter()
        .filter_map(|line| {
            let sold = bought.iter().find(|b| b.product_id == line.product_id).map_or(0, |b| b.quantity);
            let quantity = line.quantity - sold;
            (quantity > 0).then(|| CartLine { quantity, ..line.clone() })
        })
        .collect()
}

#[async_trait]
impl OrderStore for DbStore {
    async fn orders_by_ids(&self, ids: &[String]) -> StoreResult<Vec<Order>> {
        let rows = self.pool.with_conn(async |c| orders::orders_by_ids(c, ids).await).await?;
        rows.into_iter().map(OrderRow::into_order).collect()
    }

    async fn orders_of(
        &self,
        owner: &CartOwner,
        after: Option<(DateTime<Utc>, String)>,
        limit: i64,
    ) -> StoreResult<Vec<Order>> {
        let after = after.map(|(at, id)| (at.naive_utc(), id));
        let rows = self.pool.with_conn(async |c| orders::orders_of(c, &owner.0, after, limit).await).await?;
        rows.into_iter().map(OrderRow::into_order).collect()
    }

    async fn order_count(&self, owner: &CartOwner) -> StoreResult<u64> {
        let count = self.pool.with_conn(async |c| orders::order_count(c, &owner.0).await).await?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn order_events(&self, order_ids: &[String]) -> StoreResult<Vec<OrderEvent>> {
        let rows = self.pool.with_conn(async |c| orders::events_of(c, order_ids).await).await?;
        rows.into_iter().map(OrderEventRow::into_event).collect()
    }

    async fn payments_by_ids(&self, ids: &[String]) -> StoreResult<Vec<Payment>> {
        payments(self.pool.with_conn(async |c| checkout::payments_by_ids(c, ids).await).await?)
    }

    async fn add_payment_attempt(
        &self,
        saga_id: &str,
        payment: &NewPayment,
        now: DateTime<Utc>,
    ) -> StoreResult<Payment> {
        let now = now.naive_utc();
        self.pool
            .transaction(async |c| -> StoreResult<Payment> {
                let saga = checkout::saga_by_id(c, saga_id)
                    .await?
                    .ok_or_else(|| StoreError::Conflict(format!("saga {saga_id} not found")))?;
                let attempt = checkout::attempts_of(c, saga_id).await? + 1;
                let row = PaymentRow {
                    id: payment.id.clone(),
                    saga_id: saga_id.to_owned(),
                    owner: saga.owner,
                    attempt,
                    idempotency_key: format!("{saga_id}:{attempt}"),
                    status: PaymentStatus::Processing.as_str().to_owned(),
                    amount_cents: payment.amount.cents,
                    currency_code: payment.amount.currency.clone(),
                    payment_method: payment.payment_method.clone(),
                    gateway_reference: None,
                    failure: None,
                    created_at: now,
                    updated_at: now,
                };
                checkout::insert_payment(c, &row).await?;
                row.into_payment()
            })
            .await
    }

    async fn record_payment(
        &self,
        payment_id: &str,
        status: PaymentStatus,
        failure: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let now = now.naive_utc();
        self.pool
            .with_conn(async |c| checkout::set_payment_status(c, payment_id, status.as_str(), failure, now).await)
            .await
    }

    async fn change_order(&self, change: &OrderChange) -> StoreResult<bool> {
        let event = OrderEventRow::new(&change.event)?;
        let now = event.at;
        let notice = order_event_row(&change.owner, &change.event, now)?;
        self.pool
            .transaction(async |c| -> StoreResult<bool> {
                let payment_id = change.event.data.payment_id.as_deref();
                if !orders::advance_order(c, &event, payment_id).await? {
                    return Ok(false);
                }
                orders::insert_event(c, &event).await?;
                if change.restock {
                    release_units(c, &change.session_id, CONFIRMED, now).await?;
                }
                match &change.payment {
                    Some((id, PaymentStatus::Completed, Some(reference))) => {
                        checkout::complete_payment(c, id, reference, now).await?;
                    }
                    Some((id, status, _)) => checkout::set_payment_status(c, id, status.as_str(), None, now).await?,
                    None => {}
                }
                if let Some(notification) = &change.notification {
                    orders::insert_notification(c, &NotificationRow::new(notification, now)).await?;
                }
                outbox::insert(c, &[notice]).await?;
                Ok(true)
            })
            .await
    }
}

#[async_trait]
impl NotificationStore for DbStore {
    async fn claim_due_notifications(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<Notification>> {
        let (now, until) = (now.naive_utc(), lease_until.naive_utc());
        self.pool
            .with_conn(async |c| {
                let mut claimed = Vec::new();
                for row in orders::due_notifications(c, now, limit).await? {
                    if orders::lease_notification(c, &row.id, now, until).await? {
                        claimed.push(Notification::from(row));
                    }
                }
                Ok(claimed)
            })
            .await
    }

    async fn notification_sent(&self, id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        let now = now.naive_utc();
        self.pool.with_conn(async |c| orders::mark_sent(c, id, now).await).await
    }

    async fn notification_failed(
        &self,
        id: &str,
        attempts: i32,
        retry_at: Option<DateTime<Utc>>,
        error: &str,
    ) -> StoreResult<()> {
        // Given up: the attempt count alone keeps it out of the due list.
        let (attempts, retry_at) = match retry_at {
            Some(at) => (attempts, at),
            None => (attempts.max(crate::domain::notify::MAX_ATTEMPTS), Utc::now()),
        };
        let retry_at = retry_at.naive_utc();
        self.pool.with_conn(async |c| orders::mark_failed(c, id, attempts, retry_at, error).await).await
    }
}
