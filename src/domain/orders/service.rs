use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream};
use futures::{StreamExt, future};
use tokio::sync::Notify;

use super::{Order, OrderEvent, OrderStatus};
use crate::domain::auth::Viewer;
use crate::domain::cart::CartOwner;
use crate::domain::catalog::Money;
use crate::domain::catalog::model::validate_id;
use crate::domain::clock::Clock;
use crate::domain::events::{Delivery, EventBus, order_topic};
use crate::domain::notify;
use crate::domain::payments::{ChargeRequest, GatewayError, Payment, PaymentGateway, PaymentStatus, RetryPolicy};
use crate::domain::ports::{NewPayment, OrderChange, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("{field}: {message}")]
    InvalidInput { field: &'static str, message: String },
    #[error("this operation needs a session token: send Authorization: Bearer <token>")]
    Unauthenticated,
    #[error("this operation is for admins")]
    Forbidden,
    #[error("order {0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("payment declined: {0}")]
    PaymentDeclined(String),
    #[error("payment gateway failure: {0}")]
    Gateway(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type OrderResult<T> = Result<T, OrderError>;

pub const MAX_PAGE: i32 = 100;

pub struct OrderPage {
    pub orders: Vec<Order>,
    pub has_next_page: bool,
}

#[derive(Clone)]
pub struct OrderService {
    store: Arc<dyn Store>,
    bus: Arc<dyn EventBus>,
    gateway: Arc<dyn PaymentGateway>,
    retry: RetryPolicy,
    clock: Arc<dyn Clock>,
    outbox_ready: Arc<Notify>,
    notifications_ready: Arc<Notify>,
}

fn owner_of(viewer: Option<&Viewer>) -> OrderResult<CartOwner> {
    viewer.map(CartOwner::of).ok_or(OrderError::Unauthenticated)
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
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn EventBus>,
        gateway: Arc<dyn PaymentGateway>,
        retry: RetryPolicy,
        clock: Arc<dyn Clock>,
        outbox_ready: Arc<Notify>,
        notifications_ready: Arc<Notify>,
    ) -> Self {
        Self { store, bus, gateway, retry, clock, outbox_ready, notifications_ready }
    }

    /// The viewer's order; `None` for an unknown or someone else's.
    pub async fn order(&self, viewer: Option<&Viewer>, id: &str) -> OrderResult<Option<Order>> {
        let owner = owner_of(viewer)?;
        validate_order_id(id)?;
        Ok(self.load(id).await?.filter(|o| o.placed.owner == owner))
    }

    pub async fn orders(&self, viewer: Option<&Viewer>, first: i32, after: Option<&str>) -> OrderResult<OrderPage> {
        let owner = owner_of(viewer)?;
        if !(0..=MAX_PAGE).contains(&first) {
            return Err(OrderError::InvalidInput { field: "first", message: format!("must be 0 to {MAX_PAGE}") });
        }
        let after = after.map(parse_cursor).transpose()?;
        let mut orders = self.store.orders_of(&owner, after, i64::from(first) + 1).await?;
        let has_next_page = orders.len() > usize::try_from(first).unwrap_or_default();
        orders.truncate(usize::try_from(first).unwrap_or_default());
        Ok(OrderPage { orders, has_next_page })
    }

    /// Events of the orders (for the batching loader).
    pub async fn events(&self, order_ids: &[String]) -> OrderResult<Vec<OrderEvent>> {
        Ok(self.store.order_events(order_ids).await?)
    }

    pub async fn payments(&self, ids: &[String]) -> OrderResult<Vec<Payment>> {
        Ok(self.store.payments_by_ids(ids).await?)
    }

    /// The order's latest event now (when one order is watched), then every change to the
    /// viewer's orders (or that one), from any instance.
    pub async fn watch(
        &self,
        viewer: Option<&Viewer>,
        order_id: Option<&str>,
    ) -> OrderResult<BoxStream<'static, OrderEvent>> {
        let owner = owner_of(viewer)?;
        let deliveries = self.bus.subscribe(&order_topic(&owner.0));
        let (current, last_seq) = match order_id {
            Some(id) => {
                let order = self.order(viewer, id).await?.ok_or_else(|| OrderError::NotFound(id.to_owned()))?;
                let latest = self.store.order_events(std::slice::from_ref(&order.placed.id)).await?.pop();
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

    /// Moves the order along its state machine, charging, refunding and restocking as the move
    /// requires. An illegal move is a CONFLICT.
    pub async fn update_status(&self, viewer: Option<&Viewer>, id: &str, status: OrderStatus) -> OrderResult<Order> {
        match viewer {
            None => return Err(OrderError::Unauthenticated),
            Some(v) if !v.is_admin() => return Err(OrderError::Forbidden),
            Some(_) => {}
        }
        validate_order_id(id)?;
        let order = self.load(id).await?.ok_or_else(|| OrderError::NotFound(id.to_owned()))?;
        let effects = order.status.transition(status).ok_or_else(|| {
            OrderError::Conflict(format!("an order cannot go from {} to {}", order.status.as_str(), status.as_str()))
        })?;
        let mut payment = None;
        let mut notification = None;
        if effects.charge {
            let charged = self.charge_held(&order).await?;
            notification = Some(notify::confirmation(
                &order.placed,
                &notify::recipient_of(self.store.as_ref(), &order.placed.owner).await?,
                format!("ntf-{}", uuid::Uuid::new_v4().simple()),
            ));
            payment = Some((charged.id, PaymentStatus::Completed, charged.gateway_reference));
        }
        if effects.refund
            && let Some(paid) = self.current_payment(&order).await?
        {
            let reference = paid.gateway_reference.clone().unwrap_or_default();
            self.gateway
                .refund(&reference, &format!("refund:{}", paid.idempotency_key))
                .await
                .map_err(|err| OrderError::Gateway(err.to_string()))?;
            payment = Some((paid.id, PaymentStatus::Refunded, paid.gateway_reference));
        }
        let now = self.clock.now();
        let event = order.next_event(status, payment.as_ref().map(|(id, _, _)| id.clone()), now);
        let change = OrderChange {
            owner: order.placed.owner.clone(),
            session_id: order.placed.session_id.clone(),
            event,
            restock: effects.restock,
            payment,
            notification,
        };
        if !self.store.change_order(&change).await? {
            return Err(OrderError::Conflict("the order changed meanwhile; read it and try again".to_owned()));
        }
        self.outbox_ready.notify_one();
        self.notifications_ready.notify_one();
        self.load(id).await?.ok_or_else(|| OrderError::NotFound(id.to_owned()))
    }

    /// Charges an approved held order, reusing an unfinished attempt's key so that a retried
    /// approval never charges twice.
    async fn charge_held(&self, order: &Order) -> OrderResult<Payment> {
        let saga_id = &order.placed.saga_id;
        let now = self.clock.now();
        let payment = match self.store.latest_payment(saga_id).await? {
            Some(p) if p.status == PaymentStatus::Processing => p,
            _ => {
                let method = self
                    .store
                    .saga(saga_id)
                    .await?
                    .map(|s| s.request.payment_method)
                    .ok_or_else(|| OrderError::Conflict("the order has no payment request to charge".to_owned()))?;
                let amount = Money { cents: order.placed.totals.total, currency: order.placed.totals.currency.clone() };
                let new =
                    NewPayment { id: format!("pay-{}", uuid::Uuid::new_v4().simple()), amount, payment_method: method };
                self.store.add_payment_attempt(saga_id, &new, now).await?
            }
        };
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
                self.store
                    .record_payment(&payment.id, PaymentStatus::Failed, Some(&err.to_string()), self.clock.now())
                    .await?;
                Err(match err {
                    GatewayError::Failed(reason) => OrderError::Gateway(reason),
                    other => OrderError::PaymentDeclined(other.to_string()),
                })
            }
        }
    }

    async fn current_payment(&self, order: &Order) -> OrderResult<Option<Payment>> {
        let Some(id) = &order.payment_id else { return Ok(None) };
        Ok(self.store.payments_by_ids(std::slice::from_ref(id)).await?.into_iter().next())
    }

    async fn load(&self, id: &str) -> OrderResult<Option<Order>> {
        Ok(self.store.orders_by_ids(&[id.to_owned()]).await?.into_iter().next())
    }
}
