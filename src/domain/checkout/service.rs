use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::fraud::{self, FraudSignals, FraudVerdict};
use super::{Address, CheckoutError, CheckoutSession, CheckoutStatus, OrderRequest, PricingRules, Saga, SagaStep};
use crate::domain::auth::Viewer;
use crate::domain::cart::{CartLine, CartOwner, CartService, StockShortage};
use crate::domain::catalog::Money;
use crate::domain::catalog::model::validate_id;
use crate::domain::clock::Clock;
use crate::domain::notify::{self, Notification};
use crate::domain::orders::{Order, OrderStatus, PlacedOrder};
use crate::domain::payments::{ChargeRequest, GatewayError, Payment, PaymentGateway, RetryPolicy};
use crate::domain::ports::{CheckoutCompletion, CheckoutDecision, NewCheckout, NewPayment, PaymentClaim, Store};

pub type CheckoutResult<T> = Result<T, CheckoutError>;

const MAX_KEY_LEN: usize = 200;
const MAX_PAYMENT_METHOD_LEN: usize = 100;

#[derive(Debug, Clone)]
pub struct CheckoutRules {
    pub reservation_ttl: chrono::Duration,
    pub pricing: PricingRules,
    pub retry: RetryPolicy,
    /// Fault injection for recovery tests: the process aborts right after a successful charge.
    pub abort_after_charge: bool,
}

/// What `placeOrder` was asked, as the domain takes it.
#[derive(Debug, Clone)]
pub struct PlaceOrder {
    pub session_id: String,
    pub payment_method: String,
    pub shipping_address: Address,
    pub billing_address: Option<Address>,
    pub idempotency_key: String,
}

#[derive(Clone)]
pub struct CheckoutService {
    store: Arc<dyn Store>,
    carts: CartService,
    gateway: Arc<dyn PaymentGateway>,
    clock: Arc<dyn Clock>,
    rules: CheckoutRules,
    /// Woken after each change, so the outbox and notifications go out at once.
    outbox_ready: Arc<Notify>,
    notifications_ready: Arc<Notify>,
}

fn owner_of(viewer: Option<&Viewer>) -> CheckoutResult<CartOwner> {
    viewer.map(CartOwner::of).ok_or(CheckoutError::Unauthenticated)
}

fn validate_session_id(id: &str) -> CheckoutResult<()> {
    validate_id("checkoutSessionId", id).map_err(|_| CheckoutError::invalid("checkoutSessionId", "malformed id"))
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

impl CheckoutService {
    pub fn new(
        store: Arc<dyn Store>,
        carts: CartService,
        gateway: Arc<dyn PaymentGateway>,
        clock: Arc<dyn Clock>,
        rules: CheckoutRules,
        outbox_ready: Arc<Notify>,
        notifications_ready: Arc<Notify>,
    ) -> Self {
        Self { store, carts, gateway, clock, rules, outbox_ready, notifications_ready }
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Reserves every line of the viewer's cart at today's prices, all or nothing, and prices
    /// the order for the default destination. An earlier open session of the viewer is
    /// released first, so one shopper never holds stock twice.
    pub async fn initiate(&self, viewer: Option<&Viewer>) -> CheckoutResult<CheckoutSession> {
        let owner = owner_of(viewer)?;
        let now = self.clock.now();
        let checkout = NewCheckout { id: new_id("chk"), owner, now, expires_at: now + self.rules.reservation_ttl };
        let pricing = self.rules.pricing.clone();
        let decide: CheckoutDecision = Box::new(move |cart, offers| {
            if cart.lines.is_empty() {
                return Err(CheckoutError::invalid("cart", "the cart is empty; add items before checking out"));
            }
            let mut missing = Vec::new();
            let lines: Vec<CartLine> = cart
                .lines
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
                // A product deleted since it was added cannot be sold.
                return Err(CheckoutError::OutOfStock(missing));
            }
            let totals = pricing.price(&lines, &pricing.default_country)?;
            Ok((lines, totals))
        });
        let session = self.store.reserve_checkout(&checkout, decide).await?;
        self.outbox_ready.notify_one();
        Ok(session)
    }

    /// The viewer's session; `None` for an unknown or someone else's.
    pub async fn session(&self, viewer: Option<&Viewer>, id: &str) -> CheckoutResult<Option<CheckoutSession>> {
        let owner = owner_of(viewer)?;
        validate_session_id(id)?;
        Ok(self.store.checkout_session(id).await?.filter(|s| s.owner == owner).map(|s| self.shown(s)))
    }

    /// Releases the session's stock at once. Cancelling a session that is already over is a
    /// no-op that returns it; a paid one is a CONFLICT.
    pub async fn cancel(&self, viewer: Option<&Viewer>, id: &str) -> CheckoutResult<CheckoutSession> {
        let session = self.own_session(viewer, id).await?;
        let now = self.clock.now();
        if session.status == CheckoutStatus::Reserved
            && !self.store.release_checkout(id, CheckoutStatus::Cancelled, now).await?
        {
            let current = self.own_session(viewer, id).await?;
            if current.status == CheckoutStatus::Reserved {
                return Err(CheckoutError::PaymentInProgress);
            }
        }
        self.outbox_ready.notify_one();
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
        for id in self.store.expired_checkouts(now, 1_000).await? {
            if self.store.release_checkout(&id, CheckoutStatus::Expired, now).await? {
                expired += 1;
            }
        }
        if expired > 0 {
            self.outbox_ready.notify_one();
        }
        Ok(expired)
    }

    /// Charges once per idempotency key and creates the order. A replay returns the first
    /// outcome's order; a key still being processed answers PAYMENT_IN_PROGRESS; a failed
    /// one may be retried.
    pub async fn place_order(&self, viewer: Option<&Viewer>, input: PlaceOrder) -> CheckoutResult<Order> {
        let owner = owner_of(viewer)?;
        let request = validated(input.clone())?;
        let key = input.idempotency_key.trim().to_owned();
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(CheckoutError::invalid("idempotencyKey", format!("must be 1 to {MAX_KEY_LEN} characters")));
        }
        let hash = request.hash();
        let existing = self.store.saga_by_key(&owner, &key).await?;
        if let Some(saga) = &existing
            && let Some(answer) = self.replay(saga, &hash).await?
        {
            return Ok(answer);
        }
        let now = self.clock.now();
        let session = self.own_session(viewer, &request.session_id).await?;
        if let Err(refusal) = payable(&session, now) {
            // A request with the same key may have taken the session (or even finished) since
            // the key was looked up: its answer is this request's answer too.
            return self.after_contention(&owner, &key, &hash, refusal).await;
        }
        let totals = self.rules.pricing.price(&session.lines, &request.shipping_address.country)?;
        let (verdict, recipient) = self.fraud_check(viewer, &owner, &request, &totals).await?;
        if verdict == FraudVerdict::Decline {
            return Err(CheckoutError::PaymentDeclined("the payment was refused by our risk checks".to_owned()));
        }
        let is_new = existing.is_none();
        let saga = match existing {
            Some(saga) => Saga { step: SagaStep::Charging, failure: None, updated_at: now, ..saga },
            None => Saga {
                id: new_id("saga"),
                owner: owner.clone(),
                idempotency_key: key.clone(),
                request_hash: hash.clone(),
                request: request.clone(),
                step: SagaStep::Charging,
                order_id: None,
                failure: None,
                updated_at: now,
            },
        };
        let review = verdict == FraudVerdict::Review;
        let amount = Money { cents: totals.total, currency: totals.currency.clone() };
        let claim = PaymentClaim {
            is_new,
            saga: saga.clone(),
            payment: (!review).then(|| NewPayment {
                id: new_id("pay"),
                amount,
                payment_method: request.payment_method.clone(),
            }),
            now,
        };
        let payment = match self.store.claim_payment(&claim).await {
            Ok(payment) => payment,
            Err(CheckoutError::PaymentInProgress) => {
                return self.after_contention(&owner, &key, &hash, CheckoutError::PaymentInProgress).await;
            }
            Err(CheckoutError::Conflict(_)) => {
                let session = self.own_session(viewer, &request.session_id).await?;
                payable(&session, self.clock.now())?;
                return Err(CheckoutError::PaymentInProgress);
            }
            Err(other) => return Err(other),
        };
        let placed = PlacedOrder {
            id: new_id("ord"),
            owner,
            lines: session.lines.clone(),
            totals,
            shipping_address: request.shipping_address.clone(),
            session_id: session.id.clone(),
            saga_id: saga.id.clone(),
            created_at: now,
        };
        match payment {
            None => self.finish(&saga, None, placed, recipient.as_deref()).await,
            Some(payment) => self.charge_and_finish(&saga, payment, placed, recipient.as_deref()).await,
        }
    }

    /// Finishes sagas a crash or a hung gateway left CHARGING: the charge is asked again with
    /// the same idempotency key (so it happens at most once) and the saga completes or fails.
    pub async fn recover(&self, updated_before: DateTime<Utc>) -> CheckoutResult<usize> {
        let mut recovered = 0;
        for saga in self.store.sagas_in_step(SagaStep::Charging, updated_before).await? {
            tracing::info!(saga = %saga.id, "resuming an unfinished checkout");
            match self.resume(&saga).await {
                Ok(()) => recovered += 1,
                Err(err) => tracing::warn!(saga = %saga.id, error = %err, "resuming a checkout failed"),
            }
        }
        Ok(recovered)
    }

    async fn resume(&self, saga: &Saga) -> CheckoutResult<()> {
        let now = self.clock.now();
        let payment = self.store.latest_payment(&saga.id).await?;
        let Some(session) = self.store.checkout_session(&saga.request.session_id).await? else {
            return Err(CheckoutError::NotFound(format!("checkout session {}", saga.request.session_id)));
        };
        let payment = match payment {
            Some(payment) if payment.status == crate::domain::payments::PaymentStatus::Processing => payment,
            // Claimed but never charged (or a held order never written): let it go.
            other => {
                self.store
                    .fail_payment(&saga.id, other.as_ref().map(|p| p.id.as_str()), "interrupted before charging", now)
                    .await?;
                return Ok(());
            }
        };
        let totals = self.rules.pricing.price(&session.lines, &saga.request.shipping_address.country)?;
        let placed = PlacedOrder {
            id: new_id("ord"),
            owner: saga.owner.clone(),
            lines: session.lines.clone(),
            totals,
            shipping_address: saga.request.shipping_address.clone(),
            session_id: session.id.clone(),
            saga_id: saga.id.clone(),
            created_at: now,
        };
        let recipient = Some(notify::recipient_of(self.store.as_ref(), &saga.owner).await?);
        match self.charge_and_finish(saga, payment, placed, recipient.as_deref()).await {
            Ok(_) | Err(CheckoutError::PaymentDeclined(_) | CheckoutError::InvalidInput { .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }

    async fn charge_and_finish(
        &self,
        saga: &Saga,
        payment: Payment,
        placed: PlacedOrder,
        recipient: Option<&str>,
    ) -> CheckoutResult<Order> {
        let request = ChargeRequest {
            amount: payment.amount.clone(),
            payment_method: payment.payment_method.clone(),
            idempotency_key: payment.idempotency_key.clone(),
            description: format!("order for checkout {}", placed.session_id),
        };
        match self.rules.retry.charge(self.gateway.as_ref(), &request).await {
            Ok(charge) => {
                if self.rules.abort_after_charge {
                    tracing::error!(saga = %saga.id, "fault injection: aborting right after the charge");
                    std::process::abort();
                }
                match self.finish(saga, Some((payment.id.clone(), charge.reference.clone())), placed, recipient).await {
                    Ok(order) => Ok(order),
                    Err(err) => {
                        tracing::error!(saga = %saga.id, error = %err, "order not created after a charge; refunding");
                        self.compensate(saga, &payment, &charge.reference, &err.to_string()).await;
                        Err(err)
                    }
                }
            }
            // Perhaps charged: the saga stays CHARGING and recovery asks again with the same key.
            Err(GatewayError::Unavailable(reason)) => {
                tracing::warn!(saga = %saga.id, %reason, "payment outcome unknown; recovery will settle it");
                Err(CheckoutError::PaymentInProgress)
            }
            Err(err) => {
                let now = self.clock.now();
                self.store.fail_payment(&saga.id, Some(&payment.id), &err.to_string(), now).await?;
                Err(match err {
                    GatewayError::Declined(reason) => CheckoutError::PaymentDeclined(reason),
                    GatewayError::UnknownPaymentMethod(method) => {
                        CheckoutError::invalid("paymentMethodId", format!("unknown payment method `{method}`"))
                    }
                    GatewayError::Transient(reason) => CheckoutError::PaymentDeclined(format!(
                        "the payment processor is unavailable ({reason}); nothing was charged, please try again"
                    )),
                    GatewayError::Failed(reason) | GatewayError::Unavailable(reason) => CheckoutError::Gateway(reason),
                })
            }
        }
    }

    /// Creates the order (paid, or held for review when there is no charge).
    async fn finish(
        &self,
        saga: &Saga,
        charge: Option<(String, String)>,
        placed: PlacedOrder,
        recipient: Option<&str>,
    ) -> CheckoutResult<Order> {
        let status = if charge.is_some() { OrderStatus::Paid } else { OrderStatus::PendingPayment };
        let notification = charge.as_ref().map(|_| confirmation(&placed, recipient));
        let completion = CheckoutCompletion {
            saga_id: saga.id.clone(),
            payment: charge,
            order: placed,
            status,
            notification,
            now: self.clock.now(),
        };
        let owner = completion.order.owner.clone();
        let completed = self.store.complete_checkout(&completion).await?;
        self.outbox_ready.notify_one();
        if let Err(err) = self.carts.refresh(&owner).await {
            // The versioned cache still yields to the next change; the order stands.
            tracing::warn!(error = %err, "refreshing the cart after checkout failed");
        }
        self.notifications_ready.notify_one();
        if let Some(order) = completed {
            return Ok(order);
        }
        // Another request (or recovery) completed the saga first: its order is the answer.
        let saga = self.store.saga_by_key(&saga.owner, &saga.idempotency_key).await?;
        match saga.and_then(|s| s.order_id) {
            Some(order_id) => self.order(&order_id).await,
            None => Err(CheckoutError::PaymentInProgress),
        }
    }

    async fn compensate(&self, saga: &Saga, payment: &Payment, reference: &str, failure: &str) {
        let refund_key = format!("refund:{}", payment.idempotency_key);
        if let Err(err) = self.gateway.refund(reference, &refund_key).await {
            // Left CHARGING: recovery retries the whole step later.
            tracing::error!(saga = %saga.id, error = %err, "refund failed; recovery will retry");
            return;
        }
        if let Err(err) = self.store.compensate_checkout(&saga.id, &payment.id, failure, self.clock.now()).await {
            tracing::error!(saga = %saga.id, error = %err, "recording a compensation failed");
        }
        self.outbox_ready.notify_one();
    }

    /// What an existing saga answers to its key: its order, or an error; `None` to (re)try.
    async fn replay(&self, saga: &Saga, hash: &str) -> CheckoutResult<Option<Order>> {
        if saga.request_hash != hash {
            return Err(CheckoutError::Conflict(
                "this idempotency key was used for a different order request".to_owned(),
            ));
        }
        match (saga.step, &saga.order_id) {
            (SagaStep::Completed | SagaStep::Review, Some(order_id)) => Ok(Some(self.order(order_id).await?)),
            (SagaStep::Failed, _) => Ok(None),
            (SagaStep::Compensated, _) => Err(CheckoutError::Conflict(
                "this checkout was refunded because the order could not be created; start a new checkout".to_owned(),
            )),
            _ => Err(CheckoutError::PaymentInProgress),
        }
    }

    /// Another request may hold the key (or the session): answer as that request stands now,
    /// or with `otherwise` when the key has no outcome to share.
    async fn after_contention(
        &self,
        owner: &CartOwner,
        key: &str,
        hash: &str,
        otherwise: CheckoutError,
    ) -> CheckoutResult<Order> {
        match self.store.saga_by_key(owner, key).await? {
            Some(saga) => self.replay(&saga, hash).await?.ok_or(otherwise),
            None => Err(otherwise),
        }
    }

    async fn fraud_check(
        &self,
        viewer: Option<&Viewer>,
        owner: &CartOwner,
        request: &OrderRequest,
        totals: &super::Totals,
    ) -> CheckoutResult<(FraudVerdict, Option<String>)> {
        let now = self.clock.now();
        let user = match viewer.and_then(Viewer::user_id) {
            Some(id) => self.store.users_by_ids(&[id.to_owned()]).await?.into_iter().next(),
            None => None,
        };
        let signals = FraudSignals {
            shipping: &request.shipping_address,
            billing: request.billing_address.as_ref(),
            totals,
            previous_orders: self.store.order_count(owner).await?,
            new_account: user.as_ref().is_none_or(|u| now - u.created_at < chrono::Duration::hours(24)),
            recent_failed_payments: self.store.failed_payments_since(owner, now - chrono::Duration::hours(24)).await?,
            email: user.as_ref().map(|u| u.email.as_str()),
        };
        let score = fraud::score(&signals);
        let verdict = fraud::verdict(score);
        if verdict != FraudVerdict::Proceed {
            tracing::info!(owner = %owner.0, score, ?verdict, "fraud rules flagged a checkout");
        }
        Ok((verdict, user.map(|u| u.email)))
    }

    async fn own_session(&self, viewer: Option<&Viewer>, id: &str) -> CheckoutResult<CheckoutSession> {
        self.session(viewer, id).await?.ok_or_else(|| CheckoutError::NotFound(format!("checkout session {id}")))
    }

    async fn order(&self, id: &str) -> CheckoutResult<Order> {
        self.store
            .orders_by_ids(&[id.to_owned()])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| CheckoutError::NotFound(format!("order {id}")))
    }

    fn shown(&self, session: CheckoutSession) -> CheckoutSession {
        let status = session.status_at(self.clock.now());
        CheckoutSession { status, ..session }
    }
}

/// Checks and normalizes the request.
fn validated(input: PlaceOrder) -> CheckoutResult<OrderRequest> {
    validate_session_id(&input.session_id)?;
    let method = input.payment_method.trim().to_owned();
    let well_formed = !method.is_empty()
        && method.len() <= MAX_PAYMENT_METHOD_LEN
        && method.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !well_formed {
        return Err(CheckoutError::invalid("paymentMethodId", "unknown payment method"));
    }
    Ok(OrderRequest {
        session_id: input.session_id,
        payment_method: method,
        shipping_address: input.shipping_address.validated("shippingAddress")?,
        billing_address: input.billing_address.map(|a| a.validated("billingAddress")).transpose()?,
    })
}

/// Why a session cannot be paid now, if it cannot.
fn payable(session: &CheckoutSession, now: DateTime<Utc>) -> CheckoutResult<()> {
    match session.status_at(now) {
        CheckoutStatus::Reserved if session.saga_id.is_some() => Err(CheckoutError::PaymentInProgress),
        CheckoutStatus::Reserved => Ok(()),
        CheckoutStatus::Expired => Err(CheckoutError::ReservationExpired),
        status => Err(CheckoutError::Conflict(format!("the checkout session is {}", status.as_str()))),
    }
}

fn confirmation(placed: &PlacedOrder, recipient: Option<&str>) -> Notification {
    notify::confirmation(placed, recipient.unwrap_or(notify::GUEST_RECIPIENT), new_id("ntf"))
}
