//! `placeOrder`: replay or claim the idempotency key, check the session and the fraud rules,
//! claim the session with the charge attempt in one write, then charge (`complete.rs`).

use super::{CheckoutResult, CheckoutService, new_id, validate_session_id};
use crate::db::{Queue, Writes, checkout, orders, payments, users};
use crate::domain::auth::Viewer;
use crate::domain::checkout::fraud::{self, FraudSignals, FraudVerdict, may_await_review};
use crate::domain::checkout::{
    Address, CheckoutError, CheckoutSession, CheckoutStatus, OrderRequest, Saga, SagaStep, Totals,
};
use crate::domain::orders::{Order, PlacedOrder};
use crate::domain::payments::{self as payment_rules, Payment, PaymentStatus};
use crate::domain::primitives::{Money, Shopper};
use crate::ports::{GatewayError, StoreError};

const MAX_KEY_LEN: usize = 200;
const MAX_PAYMENT_METHOD_LEN: usize = 100;

/// What `placeOrder` was asked, as the domain takes it.
#[derive(Debug, Clone)]
pub struct PlaceOrder {
    pub session_id: String,
    pub payment_method: String,
    pub shipping_address: Address,
    pub billing_address: Option<Address>,
    pub idempotency_key: String,
}

impl CheckoutService {
    /// Charges once per idempotency key and creates the order. A replay returns the first
    /// outcome's order; a key still being processed answers PAYMENT_IN_PROGRESS; a failed
    /// one may be retried.
    pub async fn place_order(&self, viewer: Option<&Viewer>, input: PlaceOrder) -> CheckoutResult<Order> {
        let owner = Viewer::shopper_or(viewer, CheckoutError::Unauthenticated)?;
        let request = validated(input.clone())?;
        let key = input.idempotency_key.trim().to_owned();
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(CheckoutError::invalid("idempotencyKey", format!("must be 1 to {MAX_KEY_LEN} characters")));
        }
        let hash = request.hash();
        let lookup = async || self.db.with_conn(async |c| payments::saga_by_key(c, &owner, &key).await).await;
        let mut existing = lookup().await?;
        let looked_at = self.clock.now();
        if let Some(saga) = existing.take_if(|saga| saga.lease_lapsed(looked_at)) {
            // Its claimant is gone (say the answer to its claim or its order write was lost):
            // this request finishes it, then answers as it ended.
            self.settle(saga, looked_at).await?;
            existing = lookup().await?;
        }
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
        let (verdict, recipient) = self.fraud_check(&owner, &request, &totals).await?;
        // An order that proceeds learns of a made-up method from the charge; one the rules would
        // hold or decline asks the processor first, so it is refused as bad input instead.
        if verdict != FraudVerdict::Proceed {
            self.check_payment_method(&request.payment_method).await?;
        }
        if verdict == FraudVerdict::Decline {
            return Err(CheckoutError::PaymentDeclined("the payment was refused by our risk checks".to_owned()));
        }
        if verdict == FraudVerdict::Review {
            let waiting = self.db.with_conn(async |c| orders::awaiting_review_of(c, &owner).await).await?;
            if !may_await_review(waiting) {
                return Err(CheckoutError::PaymentDeclined(format!(
                    "{waiting} of your orders already await review; wait for them before placing another"
                )));
            }
        }
        let is_new = existing.is_none();
        let saga = match existing {
            Some(saga) => Saga {
                step: SagaStep::Charging,
                failure: None,
                updated_at: now,
                lease_until: self.lease_from(now),
                ..saga
            },
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
                lease_until: self.lease_from(now),
            },
        };
        let payment = match verdict {
            // Held for review: nothing is charged until an admin approves.
            FraudVerdict::Review => None,
            _ => Some(Money { cents: totals.total, currency: totals.currency.clone() }),
        };
        let payment = match self.claim(&saga, is_new, payment).await {
            Ok(payment) => payment,
            // Another request took the key or the session first (or the session ran out): answer
            // as that request stands, or with why the session cannot be paid.
            Err(CheckoutError::Store(StoreError::Refused(_))) => {
                let session = self.own_session(viewer, &request.session_id).await?;
                let refusal = payable(&session, self.clock.now()).err().unwrap_or(CheckoutError::PaymentInProgress);
                return self.after_contention(&owner, &key, &hash, refusal).await;
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

    /// In one write: the session claimed for the saga, the saga recorded (new, or a FAILED one
    /// taken up again), and the charge attempt, if there is one. Refused (nothing kept) when
    /// another request holds the key or the session cannot be paid for now.
    async fn claim(&self, saga: &Saga, is_new: bool, amount: Option<Money>) -> CheckoutResult<Option<Payment>> {
        let now = saga.updated_at;
        // Two requests retrying the same FAILED saga at once count the same attempt; only one
        // of them takes the saga up again.
        let attempt =
            if is_new { 1 } else { self.db.with_conn(async |c| payments::attempts_of(c, &saga.id).await).await? + 1 };
        let payment = amount.map(|amount| Payment {
            id: new_id("pay"),
            saga_id: saga.id.clone(),
            attempt,
            idempotency_key: payment_rules::attempt_key(&saga.id, attempt),
            status: PaymentStatus::Processing,
            amount,
            payment_method: saga.request.payment_method.clone(),
            gateway_reference: None,
            failure: None,
            created_at: now,
        });
        let claimed = Writes::new(checkout::claim(&saga.request.session_id, &saga.owner, &saga.id, now)).require();
        let mut claimed = if is_new {
            claimed.and(payments::insert_saga(saga)?)
        } else {
            claimed.and(payments::advance_saga(
                &saga.id,
                (SagaStep::Failed, SagaStep::Charging),
                None,
                None,
                now,
                saga.lease_until,
            ))
        }
        .require()
        .wakes(Queue::SagaLeases);
        if let Some(payment) = &payment {
            claimed = claimed.and(payments::insert_payment(payment, &saga.owner));
        }
        self.db.durably(async |c| claimed.run(c, "claiming a checkout for payment").await).await?;
        Ok(payment)
    }

    /// What an existing saga answers to its key: its order, or an error; `None` to (re)try.
    pub(super) async fn replay(&self, saga: &Saga, hash: &str) -> CheckoutResult<Option<Order>> {
        if saga.request_hash != hash {
            return Err(CheckoutError::Conflict(
                "this idempotency key was used for a different order request".to_owned(),
            ));
        }
        match (saga.step, &saga.order_id) {
            (SagaStep::Completed | SagaStep::Review, Some(order_id)) => Ok(Some(self.order(order_id).await?)),
            (SagaStep::Failed, _) => Ok(None),
            (SagaStep::Refunding | SagaStep::Compensated, _) => Err(CheckoutError::Conflict(
                "this checkout was refunded because the order could not be created; start a new checkout".to_owned(),
            )),
            _ => Err(CheckoutError::PaymentInProgress),
        }
    }

    /// Another request may hold the key (or the session): answer as that request stands now,
    /// or with `otherwise` when the key has no outcome to share.
    pub(super) async fn after_contention(
        &self,
        owner: &Shopper,
        key: &str,
        hash: &str,
        otherwise: CheckoutError,
    ) -> CheckoutResult<Order> {
        match self.db.with_conn(async |c| payments::saga_by_key(c, owner, key).await).await? {
            Some(saga) => self.replay(&saga, hash).await?.ok_or(otherwise),
            None => Err(otherwise),
        }
    }

    /// A payment method the processor does not know is bad input. When the processor cannot
    /// say, the charge decides.
    async fn check_payment_method(&self, payment_method: &str) -> CheckoutResult<()> {
        match self.gateway.check_payment_method(payment_method).await {
            Err(GatewayError::UnknownPaymentMethod(_)) => {
                Err(CheckoutError::invalid("paymentMethodId", format!("unknown payment method `{payment_method}`")))
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not check a payment method; the charge will");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    /// The verdict of the fraud rules, and the signed-in shopper's email (the confirmation's
    /// recipient). One statement reads the shopper's history (two for a user).
    async fn fraud_check(
        &self,
        owner: &Shopper,
        request: &OrderRequest,
        totals: &Totals,
    ) -> CheckoutResult<(FraudVerdict, Option<String>)> {
        let now = self.clock.now();
        let (user, (previous_orders, recent_failed_payments)) = self
            .db
            .with_conn(async |c| {
                let user = match owner.user_id() {
                    Some(id) => users::user_by_id(c, id).await?,
                    None => None,
                };
                Ok::<_, CheckoutError>((
                    user,
                    payments::risk_history(c, owner, now - chrono::Duration::hours(24)).await?,
                ))
            })
            .await?;
        let signals = FraudSignals {
            shipping: &request.shipping_address,
            billing: request.billing_address.as_ref(),
            totals,
            previous_orders,
            new_account: user.as_ref().is_none_or(|u| now - u.created_at < chrono::Duration::hours(24)),
            recent_failed_payments,
            email: user.as_ref().map(|u| u.email.as_str()),
        };
        let score = fraud::score(&signals);
        let verdict = fraud::verdict(score);
        if verdict != FraudVerdict::Proceed {
            tracing::info!(%owner, score, ?verdict, "fraud rules flagged a checkout");
        }
        Ok((verdict, user.map(|u| u.email)))
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
fn payable(session: &CheckoutSession, now: chrono::DateTime<chrono::Utc>) -> CheckoutResult<()> {
    match session.status_at(now) {
        CheckoutStatus::Reserved if session.saga_id.is_some() => Err(CheckoutError::PaymentInProgress),
        CheckoutStatus::Reserved => Ok(()),
        CheckoutStatus::Expired => Err(CheckoutError::ReservationExpired),
        status => Err(CheckoutError::Conflict(format!("the checkout session is {}", status.as_str()))),
    }
}
