//! Orders: reads of the projection and its events, the live feed, and admin moves along the
//! state machine (charging, refunding and restocking as a move requires).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream};
use futures::{StreamExt, future};

use crate::db::outbox::OutboxRow;
use crate::db::{Conn, Pool, Writes, notifications, orders, payments, users};
use crate::domain::auth::Viewer;
use crate::domain::catalog::model::validate_id;
use crate::domain::events::order_topic;
use crate::domain::notify;
use crate::domain::orders::{Order, OrderError, OrderEvent, OrderStatus, TransitionEffects};
use crate::domain::payments::{self as payment_rules, Payment, PaymentStatus, RetryPolicy};
use crate::domain::primitives::{Money, Shopper};
use crate::ports::{ChargeRequest, Clock, Delivery, EventBus, GatewayError, PaymentGateway, StoreResult};
use crate::services::checkout::return_stock;

pub type OrderResult<T> = Result<T, OrderError>;

pub const MAX_PAGE: i32 = 100;

/// How long an order move may hold its claim (the processor's retries included) before another
/// may take over.
const TRANSITION_LEASE: chrono::Duration = chrono::Duration::minutes(5);

pub struct OrderPage {
    pub orders: Vec<Order>,
    pub has_next_page: bool,
}

#[derive(Clone)]
pub struct OrderService {
    db: Pool,
    bus: Arc<dyn EventBus>,
    gateway: Arc<dyn PaymentGateway>,
    retry: RetryPolicy,
    clock: Arc<dyn Clock>,
    /// How long an order may wait for review before it is cancelled.
    review_ttl: chrono::Duration,
}

/// The email of the shopper's account, or the guest marker: where a confirmation goes.
pub async fn recipient_of(conn: &mut Conn<'_>, owner: &Shopper) -> StoreResult<String> {
    let email = match owner.user_id() {
        Some(user_id) => users::user_by_id(conn, user_id).await?.map(|u| u.email),
        None => None,
    };
    Ok(email.unwrap_or_else(|| notify::GUEST_RECIPIENT.to_owned()))
}

fn validate_order_id(id: &str) -> OrderResult<()> {
    validate_id("orderId", id)
        .map_err(|_| OrderError::InvalidInput { field: "orderId", message: "malformed id".to_owned() })
}

/// The opaque position of an order in its owner's list (newest first).
pub fn cursor_of(order: &Order) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", order.placed.created_at.timestamp_micros(), order.placed.id))
}

fn parse_cursor(cursor: &str) -> OrderResult<(DateTime<Utc>, String)> {
    let bad = || OrderError::InvalidInput { field: "after", message: "malformed cursor".to_owned() };
    let text = URL_SAFE_NO_PAD.decode(cursor).ok().and_then(|b| String::from_utf8(b).ok()).ok_or_else(bad)?;
    let (micros, id) = text.split_once(':').ok_or_else(bad)?;
    let at = micros.parse().ok().and_then(DateTime::<Utc>::from_timestamp_micros).ok_or_else(bad)?;
    Ok((at, id.to_owned()))
}

impl OrderService {
    pub fn new(
        db: Pool,
        bus: Arc<dyn EventBus>,
        gateway: Arc<dyn PaymentGateway>,
        retry: RetryPolicy,
        clock: Arc<dyn Clock>,
        review_ttl: chrono::Duration,
    ) -> Self {
        Self { db, bus, gateway, retry, clock, review_ttl }
    }

    /// The viewer's order; `None` for an unknown or someone else's.
    pub async fn order(&self, viewer: Option<&Viewer>, id: &str) -> OrderResult<Option<Order>> {
        let owner = Viewer::shopper_or(viewer, OrderError::Unauthenticated)?;
        validate_order_id(id)?;
        Ok(self.load(id).await?.filter(|o| o.placed.owner == owner))
    }

    pub async fn orders(&self, viewer: Option<&Viewer>, first: i32, after: Option<&str>) -> OrderResult<OrderPage> {
        let owner = Viewer::shopper_or(viewer, OrderError::Unauthenticated)?;
        if !(0..=MAX_PAGE).contains(&first) {
            return Err(OrderError::InvalidInput { field: "first", message: format!("must be 0 to {MAX_PAGE}") });
        }
        let after = after.map(parse_cursor).transpose()?;
        let limit = i64::from(first) + 1;
        let mut orders = self.db.with_conn(async |c| orders::of_shopper(c, &owner, after, limit).await).await?;
        let has_next_page = orders.len() > usize::try_from(first).unwrap_or_default();
        orders.truncate(usize::try_from(first).unwrap_or_default());
        Ok(OrderPage { orders, has_next_page })
    }

    /// Events of the orders (for the batching loader).
    pub async fn events(&self, order_ids: &[String]) -> OrderResult<Vec<OrderEvent>> {
        Ok(self.db.with_conn(async |c| orders::events_of(c, order_ids).await).await?)
    }

    pub async fn payments(&self, ids: &[String]) -> OrderResult<Vec<Payment>> {
        Ok(self.db.with_conn(async |c| payments::payments_by_ids(c, ids).await).await?)
    }

    /// The order's latest event now (when one order is watched), then every change to the
    /// viewer's orders (or that one), from any instance.
    pub async fn watch(
        &self,
        viewer: Option<&Viewer>,
        order_id: Option<&str>,
    ) -> OrderResult<BoxStream<'static, OrderEvent>> {
        let owner = Viewer::shopper_or(viewer, OrderError::Unauthenticated)?;
        let deliveries = self.bus.subscribe(&order_topic(&owner));
        let (current, last_seq) = match order_id {
            Some(id) => {
                let order = self.order(viewer, id).await?.ok_or_else(|| OrderError::NotFound(id.to_owned()))?;
                let latest = self.events(std::slice::from_ref(&order.placed.id)).await?.pop();
                let seq = latest.as_ref().map_or(0, |e| e.seq);
                (latest, seq)
            }
            None => (None, 0),
        };
        let wanted = order_id.map(str::to_owned);
        let changes = deliveries
            .filter_map(|delivery| {
                future::ready(match delivery {
                    Delivery::Event(event) => serde_json::from_str::<OrderEvent>(&event.payload).ok(),
                    // A lagging subscriber has missed changes it cannot recover one by one;
                    // the next change still arrives.
                    Delivery::Lagged => None,
                })
            })
            .filter(move |event| {
                future::ready(wanted.as_ref().is_none_or(|id| *id == event.order_id && event.seq > last_seq))
            });
        Ok(stream::iter(current).chain(changes).boxed())
    }

    /// An admin moves the order along its state machine.
    pub async fn update_status(&self, viewer: Option<&Viewer>, id: &str, status: OrderStatus) -> OrderResult<Order> {
        match viewer {
            None => return Err(OrderError::Unauthenticated),
            Some(v) if !v.is_admin() => return Err(OrderError::Forbidden),
            Some(_) => {}
        }
        validate_order_id(id)?;
        self.move_to(id, status).await
    }

    /// Cancels the orders that have waited for review longer than a reservation lasts: their
    /// units go back on sale. Returns how many were cancelled.
    pub async fn expire_reviews(&self) -> OrderResult<usize> {
        let cutoff = self.clock.now() - self.review_ttl;
        let due = self.db.with_conn(async |c| orders::awaiting_review_before(c, cutoff, 100).await).await?;
        let mut expired = 0;
        for id in due {
            match self.move_to(&id, OrderStatus::Cancelled).await {
                Ok(_) => expired += 1,
                // Approved or cancelled meanwhile.
                Err(OrderError::Conflict(_)) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(expired)
    }

    /// Moves the order along its state machine, charging, refunding and restocking as the move
    /// requires. The move claims the order before it calls the processor, so that a concurrent
    /// move (a cancel beside a fulfil, a second approval) answers CONFLICT instead of acting too.
    /// An illegal move is a CONFLICT.
    async fn move_to(&self, id: &str, status: OrderStatus) -> OrderResult<Order> {
        let order = self.load(id).await?.ok_or_else(|| OrderError::NotFound(id.to_owned()))?;
        let effects = order.status.transition(status).ok_or_else(|| {
            OrderError::Conflict(format!("an order cannot go from {} to {}", order.status.as_str(), status.as_str()))
        })?;
        let now = self.clock.now();
        let claim = orders::claim_transition(&order, now, now + TRANSITION_LEASE);
        if self.db.atomically(async |c| Writes::new(claim).run(c, "claiming an order move").await).await?[0] == 0 {
            return Err(OrderError::Conflict(
                "another change to this order is under way; read it and try again".to_owned(),
            ));
        }
        let moved = self.apply(&order, status, effects).await;
        if moved.is_err() {
            let release = orders::release_transition(&order);
            if let Err(err) =
                self.db.atomically(async |c| Writes::new(release).run(c, "releasing an order move").await).await
            {
                tracing::warn!(order = %order.placed.id, error = %err, "releasing a failed move's claim failed; it lapses");
            }
        }
        moved?;
        self.load(id).await?.ok_or_else(|| OrderError::NotFound(id.to_owned()))
    }

    /// The claimed move: the processor first, then the event, the payment, the notification
    /// and the restock in one transaction that also marks the claim finished.
    async fn apply(&self, order: &Order, status: OrderStatus, effects: TransitionEffects) -> OrderResult<()> {
        let mut payment = None;
        let mut notification = None;
        if effects.charge {
            let charged = self.charge_held(order).await?;
            let recipient = self.db.with_conn(async |c| recipient_of(c, &order.placed.owner).await).await?;
            let id = format!("ntf-{}", uuid::Uuid::new_v4().simple());
            notification = Some(notify::confirmation(&order.placed, &recipient, id));
            payment = Some((charged.id, PaymentStatus::Completed, charged.gateway_reference));
        }
        if effects.refund
            && let Some(paid) = self.current_payment(order).await?
        {
            let reference = paid.gateway_reference.clone().unwrap_or_default();
            self.gateway
                .refund(&reference, &payment_rules::refund_key(&paid.idempotency_key))
                .await
                .map_err(|err| OrderError::Gateway(err.to_string()))?;
            payment = Some((paid.id, PaymentStatus::Refunded, paid.gateway_reference));
        }
        let now = self.clock.now();
        let event = order.next_event(status, payment.as_ref().map(|(id, _, _)| id.clone()), now);
        let owner = &order.placed.owner;
        self.db
            .durable_transaction(async |c| {
                let advance = match &event.data.payment_id {
                    Some(payment_id) => Writes::new(orders::advance_paid(&event, payment_id)),
                    None => Writes::new(orders::advance(&event)),
                };
                let mut writes = advance.and(orders::append(&event)?).and(orders::finish_transition(order));
                match &payment {
                    Some((id, PaymentStatus::Completed, Some(reference))) => {
                        writes = writes.and(payments::complete_payment(id, reference, now));
                    }
                    Some((id, status, _)) => writes = writes.and(payments::set_payment_status(id, *status, None, now)),
                    None => {}
                }
                if let Some(notification) = &notification {
                    writes = notifications::queue(writes, notification, now);
                }
                let event_row = OutboxRow::new(order_topic(owner), &event, now)?;
                // A paid, refunded or cancelled order changes what the owner's picks leave out.
                let activity = OutboxRow::shopper_activity(owner, now)?;
                if writes.event(event_row).event(activity).run(c, "changing an order").await?[0] == 0 {
                    return Err(OrderError::Conflict("the order changed meanwhile; read it and try again".to_owned()));
                }
                if effects.restock {
                    return_stock(c, &order.placed.lines, false, now).await?;
                }
                Ok(())
            })
            .await
    }

    /// Charges an approved held order, reusing an unfinished attempt's key so that a retried
    /// approval never charges twice.
    async fn charge_held(&self, order: &Order) -> OrderResult<Payment> {
        let saga_id = &order.placed.saga_id;
        let now = self.clock.now();
        let payment = self
            .db
            .durable_transaction(async |c| {
                if let Some(unfinished) = payments::latest_payment(c, saga_id).await?
                    && unfinished.status == PaymentStatus::Processing
                {
                    return Ok(unfinished);
                }
                let saga = payments::saga(c, saga_id)
                    .await?
                    .ok_or_else(|| OrderError::Conflict("the order has no payment request to charge".to_owned()))?;
                let attempt = payments::attempts_of(c, saga_id).await? + 1;
                let payment = Payment {
                    id: format!("pay-{}", uuid::Uuid::new_v4().simple()),
                    saga_id: saga_id.clone(),
                    attempt,
                    idempotency_key: payment_rules::attempt_key(saga_id, attempt),
                    status: PaymentStatus::Processing,
                    amount: Money { cents: order.placed.totals.total, currency: order.placed.totals.currency.clone() },
                    payment_method: saga.request.payment_method,
                    gateway_reference: None,
                    failure: None,
                    created_at: now,
                };
                Writes::new(payments::insert_payment(&payment, &saga.owner))
                    .run(c, "recording a payment attempt")
                    .await?;
                Ok::<_, OrderError>(payment)
            })
            .await?;
        let request = ChargeRequest {
            amount: payment.amount.clone(),
            payment_method: payment.payment_method.clone(),
            idempotency_key: payment.idempotency_key.clone(),
            description: format!("order {}", order.placed.id),
        };
        match self.retry.charge(self.gateway.as_ref(), &request).await {
            Ok(charge) => {
                Ok(Payment { gateway_reference: Some(charge.reference), status: PaymentStatus::Completed, ..payment })
            }
            // Perhaps charged: the attempt stays PROCESSING, and approving again asks with its key.
            Err(GatewayError::Unavailable(reason)) => Err(OrderError::Gateway(reason)),
            Err(err) => {
                let failed = payments::set_payment_status(
                    &payment.id,
                    PaymentStatus::Failed,
                    Some(&err.to_string()),
                    self.clock.now(),
                );
                self.db.atomically(async |c| Writes::new(failed).run(c, "recording a failed payment").await).await?;
                Err(match err {
                    GatewayError::Failed(reason) => OrderError::Gateway(reason),
                    other => OrderError::PaymentDeclined(other.to_string()),
                })
            }
        }
    }

    async fn current_payment(&self, order: &Order) -> OrderResult<Option<Payment>> {
        let Some(id) = &order.payment_id else { return Ok(None) };
        Ok(self.payments(std::slice::from_ref(id)).await?.into_iter().next())
    }

    async fn load(&self, id: &str) -> OrderResult<Option<Order>> {
        Ok(self.db.with_conn(async |c| orders::by_ids(c, &[id.to_owned()]).await).await?.pop())
    }
}
