//! After the claim: the charge, the order (one write with everything it changes), the
//! compensation of a charge that could not become an order, and recovery of sagas a crash left
//! CHARGING.

use chrono::{DateTime, Utc};

use super::{CheckoutResult, CheckoutService, new_id, release};
use crate::db::outbox::OutboxRow;
use crate::db::{Queue, Writes, carts, checkout, inventory, notifications, orders, payments};
use crate::domain::cart::rules::without_bought;
use crate::domain::checkout::{CheckoutError, CheckoutStatus, Saga, SagaStep};
use crate::domain::events::order_topic;
use crate::domain::notify::{self, Notification};
use crate::domain::orders::{Order, OrderStatus, PlacedOrder};
use crate::domain::payments::{self as payment_rules, Payment, PaymentStatus};
use crate::ports::{ChargeRequest, GatewayError, StoreError};
use crate::services::orders::recipient_of;

/// Sagas one recovery round takes; the rest wait for the next round.
const RECOVERY_BATCH: i64 = 100;

impl CheckoutService {
    /// Finishes sagas whose claimant is gone (a crash, a request cut off): those left CHARGING
    /// or REFUNDING with a lease that ran out before `now`. Each is taken under a new lease
    /// first, so two instances never work on one, and none works on a charge still running.
    /// A charge is asked again with the same idempotency key (so it happens at most once) and
    /// the saga completes or fails; a refund is finished.
    pub async fn recover(&self, now: DateTime<Utc>) -> CheckoutResult<usize> {
        let due = self.db.with_conn(async |c| payments::sagas_due(c, now, RECOVERY_BATCH).await).await?;
        let mut recovered = 0;
        for saga in due {
            let id = saga.id.clone();
            match self.settle(saga, now).await {
                Ok(true) => recovered += 1,
                Ok(false) => {}
                Err(err) => tracing::warn!(saga = %id, error = %err, "settling a checkout failed"),
            }
        }
        Ok(recovered)
    }

    /// Takes a saga whose lease has run out under a new lease and finishes it: a charge is
    /// asked again with its key and the saga completes or fails; a refund is finished. `false`
    /// when another instance or request took it first.
    pub(super) async fn settle(&self, saga: Saga, now: DateTime<Utc>) -> CheckoutResult<bool> {
        let lease_until = self.lease_from(now);
        let take = Writes::new(payments::take_lease(&saga.id, saga.step, now, lease_until));
        if self.db.write(async |c| take.run(c, "taking a saga's lease").await).await?[0] == 0 {
            return Ok(false);
        }
        let saga = Saga { lease_until, ..saga };
        if saga.step == SagaStep::Charging {
            tracing::info!(saga = %saga.id, "resuming an unfinished checkout");
            self.resume(&saga).await?;
            return Ok(true);
        }
        tracing::info!(saga = %saga.id, "finishing an intended refund");
        let payment = self.db.with_conn(async |c| payments::latest_payment(c, &saga.id).await).await?;
        match payment {
            Some(payment) if self.refund(&saga, &payment).await => Ok(true),
            // The refund's failure is logged; it stays REFUNDING for the next round.
            _ => Err(CheckoutError::PaymentInProgress),
        }
    }

    /// When the next charge or refund lease runs out, so that recovery can look then.
    pub async fn next_lease_end(&self) -> CheckoutResult<Option<DateTime<Utc>>> {
        Ok(self.db.with_conn(async |c| payments::next_lease_end(c).await).await?)
    }

    async fn resume(&self, saga: &Saga) -> CheckoutResult<()> {
        let (payment, session, recipient) = self
            .db
            .with_conn(async |c| {
                Ok::<_, CheckoutError>((
                    payments::latest_payment(c, &saga.id).await?,
                    checkout::by_id(c, &saga.request.session_id).await?,
                    recipient_of(c, &saga.owner).await?,
                ))
            })
            .await?;
        let Some(session) = session else {
            return Err(CheckoutError::NotFound(format!("checkout session {}", saga.request.session_id)));
        };
        let payment = match payment {
            Some(payment) if payment.status == PaymentStatus::Processing => payment,
            // Claimed but never charged (or a held order never written): let it go.
            other => {
                return self.fail(saga, other.as_ref().map(|p| p.id.as_str()), "interrupted before charging").await;
            }
        };
        let now = self.clock.now();
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
        match self.charge_and_finish(saga, payment, placed, Some(&recipient)).await {
            Ok(_) | Err(CheckoutError::PaymentDeclined(_) | CheckoutError::InvalidInput { .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }

    pub(super) async fn charge_and_finish(
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
                    // The store did not take the order (briefly down, say): the charge stands and
                    // the saga stays CHARGING, so recovery makes the order with the same key. A
                    // refund here could be followed by that completion: goods for money returned.
                    Err(CheckoutError::Store(err)) => {
                        tracing::warn!(saga = %saga.id, error = %err, "order not recorded after a charge; recovery completes it");
                        Err(CheckoutError::PaymentInProgress)
                    }
                    Err(err) => {
                        tracing::error!(saga = %saga.id, error = %err, "order cannot be created after a charge; refunding");
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
                self.fail(saga, Some(&payment.id), &err.to_string()).await?;
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

    /// The attempt failed: the payment and saga become FAILED and the session is free again,
    /// in one write.
    async fn fail(&self, saga: &Saga, payment_id: Option<&str>, failure: &str) -> CheckoutResult<()> {
        let now = self.clock.now();
        let mut writes = Writes::new(payments::advance_saga(
            &saga.id,
            (SagaStep::Charging, SagaStep::Failed),
            None,
            Some(failure),
            now,
            now,
        ))
        .and(checkout::free(&saga.request.session_id, &saga.id, now));
        if let Some(payment_id) = payment_id {
            writes = writes.and(payments::set_payment_status(payment_id, PaymentStatus::Failed, Some(failure), now));
        }
        self.db.atomically(async |c| writes.run(c, "recording a failed payment").await).await?;
        Ok(())
    }

    /// Creates the order (paid, or held for review when there is no charge): in one write the
    /// saga completes, the payment, the order and its first event are recorded, the reserved
    /// units are sold (as pending sales: no stock row is locked through the durable commit),
    /// the session completes, and the confirmation and events are queued; the same statement
    /// takes the bought lines out of the cart if it is still at the version read (a change that
    /// came between is followed by a change that takes them out). On PostgreSQL that is one
    /// statement with no transaction around it, so no row stays locked across a round trip.
    pub(super) async fn finish(
        &self,
        saga: &Saga,
        charge: Option<(String, String)>,
        placed: PlacedOrder,
        recipient: Option<&str>,
    ) -> CheckoutResult<Order> {
        let status = if charge.is_some() { OrderStatus::Paid } else { OrderStatus::PendingPayment };
        let step = if charge.is_some() { SagaStep::Completed } else { SagaStep::Review };
        let notification = charge.as_ref().map(|_| confirmation(&placed, recipient));
        let first = Order::placed_event(placed.clone(), status, charge.as_ref().map(|(id, _)| id.clone()));
        let order = Order::replay(std::slice::from_ref(&first))
            .ok_or_else(|| CheckoutError::Conflict("an order needs its PLACED event".to_owned()))?;
        let owner = &placed.owner;
        let cart = self.carts.load(owner).await?;
        let now = self.clock.now();
        // The saga's step first: if another request (or recovery) made the order meanwhile,
        // nothing of this one may stay.
        let mut writes =
            Writes::new(payments::advance_saga(&saga.id, (SagaStep::Charging, step), Some(&placed.id), None, now, now))
                .require()
                .and(orders::insert(&order)?)
                .and(orders::append(&first)?)
                .and(checkout::set_status(&placed.session_id, CheckoutStatus::Completed, now));
        if let Some((payment_id, reference)) = &charge {
            writes = writes.and(payments::complete_payment(payment_id, reference, now));
        }
        writes = inventory::sell(writes, &placed.lines);
        if let Some(notification) = &notification {
            writes = notifications::queue(writes, notification, now);
        }
        let made = writes
            .event(OutboxRow::new(order_topic(owner), &first, now)?)
            .event(OutboxRow::shopper_activity(owner, now)?);
        let remaining = without_bought(&cart.lines, &placed.lines);
        let cart_after = (remaining != cart.lines).then(|| cart.changed(remaining, now, cart.expires_at));
        // Cart first: the lock order of checkout and cart changes. An order locks no stock row.
        let mut changes = Vec::with_capacity(2);
        if let Some(changed) = &cart_after {
            let (write, event) = carts::save(changed)?;
            changes.push(self.carts.with_event(Writes::of(write), event));
        }
        changes.push(made);
        match self.db.durably(async |c| Writes::run_together(changes, c, "creating an order").await).await {
            Ok(counts) => {
                match cart_after {
                    Some(changed) if counts[0].first().is_some_and(|&n| n > 0) => self.carts.remember(changed).await,
                    Some(_) => {
                        if let Err(err) = self.carts.take_bought(owner, &placed.lines).await {
                            tracing::warn!(%owner, error = %err, "the order's lines stay in the cart");
                        }
                    }
                    None => {}
                }
                Ok(order)
            }
            Err(StoreError::Refused(_)) => {
                let saga =
                    self.db.with_conn(async |c| payments::saga_by_key(c, owner, &saga.idempotency_key).await).await?;
                match saga.and_then(|s| s.order_id) {
                    Some(order_id) => self.order(&order_id).await,
                    None => Err(CheckoutError::PaymentInProgress),
                }
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Refunds a charge whose order cannot be made. The intent (with the charge's reference) is
    /// recorded first; without it nothing is refunded and recovery completes the order instead.
    async fn compensate(&self, saga: &Saga, payment: &Payment, reference: &str, failure: &str) {
        let now = self.clock.now();
        let intent = Writes::new(payments::advance_saga(
            &saga.id,
            (SagaStep::Charging, SagaStep::Refunding),
            None,
            Some(failure),
            now,
            self.lease_from(now),
        ))
        .and(payments::complete_payment(&payment.id, reference, now))
        .wakes(Queue::SagaLeases);
        match self.db.durable_transaction(async |c| intent.run(c, "recording a refund intent").await).await {
            Ok(changed) if changed[0] > 0 => {}
            Ok(_) => return,
            Err(err) => {
                tracing::error!(saga = %saga.id, error = %err, "recording a refund intent failed; recovery completes the order");
                return;
            }
        }
        let payment = Payment { gateway_reference: Some(reference.to_owned()), ..payment.clone() };
        self.refund(saga, &payment).await;
    }

    /// Refunds an intended refund's charge, then records it: the saga COMPENSATED, the payment
    /// REFUNDED, the session FAILED and its units back on sale. If either step fails the saga
    /// stays REFUNDING and recovery tries again (the refund's key makes it happen once).
    async fn refund(&self, saga: &Saga, payment: &Payment) -> bool {
        let reference = payment.gateway_reference.clone().unwrap_or_default();
        if let Err(err) = self.gateway.refund(&reference, &payment_rules::refund_key(&payment.idempotency_key)).await {
            tracing::error!(saga = %saga.id, error = %err, "refund failed; recovery will retry");
            return false;
        }
        let now = self.clock.now();
        let failure = saga.failure.clone().unwrap_or_else(|| "the order could not be created".to_owned());
        let recorded = self
            .db
            .durable_transaction(async |c| {
                let compensated = Writes::new(payments::advance_saga(
                    &saga.id,
                    (SagaStep::Refunding, SagaStep::Compensated),
                    None,
                    Some(&failure),
                    now,
                    now,
                ))
                .and(payments::set_payment_status(&payment.id, PaymentStatus::Refunded, Some(&failure), now))
                .run(c, "recording a refund")
                .await?;
                if compensated[0] > 0
                    && let Some(session) =
                        checkout::close(c, &saga.request.session_id, CheckoutStatus::Failed, Some(&saga.id), now)
                            .await?
                {
                    release(c, &session, now).await?;
                }
                Ok::<_, CheckoutError>(())
            })
            .await;
        match recorded {
            Ok(()) => true,
            Err(err) => {
                tracing::error!(saga = %saga.id, error = %err, "recording a refund failed; recovery will retry");
                false
            }
        }
    }

    pub(super) async fn order(&self, id: &str) -> CheckoutResult<Order> {
        self.db
            .with_conn(async |c| orders::by_ids(c, &[id.to_owned()]).await)
            .await?
            .pop()
            .ok_or_else(|| CheckoutError::NotFound(format!("order {id}")))
    }
}

fn confirmation(placed: &PlacedOrder, recipient: Option<&str>) -> Notification {
    notify::confirmation(placed, recipient.unwrap_or(notify::GUEST_RECIPIENT), new_id("ntf"))
}
