//! Flash sales: creating a sale (its units leave regular stock), joining and leaving it, and
//! `settle`, which moves a sale along as time passes: the early arrivals shuffled at the start,
//! tickets let through at the admission rate and given units (or SOLD_OUT), lapsed holds given
//! back to the sale, paid holds marked PURCHASED, and the end. Joins settle their own ticket at
//! once; the flash-sale worker settles every open sale several times a second.
//!
//! A join asks the sale's gate first (counters in process or in Redis, `ports::FlashGate`),
//! which counts the attempt, hands out tickets and takes units for tickets due at once. New
//! entries and holds are then written in rounds (`EntryRounds`). A hold's units are taken again
//! from the sale row's `remaining` by a conditional UPDATE, so any number of instances on one
//! store never hand out more units than the sale has, whatever the gate knows; each round of
//! `settle` sets the gate's units to the row's.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream};
use futures::{FutureExt, StreamExt, future};
use rand::seq::SliceRandom;

use crate::db::flash_sales::{self, EntryCounts};
use crate::db::outbox::{self, OutboxRow};
use crate::db::rounds::Rounds;
use crate::db::{Conn, Pool, Writes, catalog, checkout, inventory};
use crate::domain::auth::Viewer;
use crate::domain::cart::CartLine;
use crate::domain::catalog::model::validate_id;
use crate::domain::checkout::{CheckoutSession, CheckoutStatus, PricingRules};
use crate::domain::events::{flash_entry_topic, flash_sale_topic};
use crate::domain::flash::gate::{Attempt, GateAnswer};
use crate::domain::flash::{
    DEFAULT_ADMISSION_PER_MINUTE, DEFAULT_HOLD_SECONDS, Entry, EntryStatus, EntryView, FlashSale, FlashSaleError,
    NewSale, NowServing, SaleStatus, quantity_refusal,
};
use crate::domain::primitives::Money;
use crate::metrics::{Metrics, SaleLabels};
use crate::ports::{Clock, Delivery, Event, EventBus, FlashGate, GateError, StoreError, StoreResult};
use crate::services::checkout::close_session;

pub type FlashResult<T> = Result<T, FlashSaleError>;

/// A waiting shopper's new place is pushed at most this often (note 16).
const POSITION_UPDATES: Duration = Duration::from_secs(1);
/// Waiting shoppers let through per round of `settle`.
const ADMISSIONS_PER_ROUND: i64 = 500;
/// How long a join may use a sale read by an earlier one.
const RECENT_SALE: Duration = Duration::from_secs(1);
/// Sales kept read at most.
const RECENT_SALES_KEPT: u64 = 1024;

/// A sale with what its entries add up to now.
#[derive(Debug, Clone)]
pub struct SaleState {
    pub sale: FlashSale,
    pub status: SaleStatus,
    pub counts: EntryCounts,
}

/// Note 14's report: counts, and the reconciliation of the gate with the store.
#[derive(Debug, Clone)]
pub struct SaleReport {
    pub state: SaleState,
    pub conversion_rate: f64,
    /// The gate's units (left, or returned at the end) minus what the store says is neither
    /// sold nor held.
    pub discrepancy: i64,
    pub reconciled_at: Option<DateTime<Utc>>,
}

#[derive(Clone)]
pub struct FlashSaleService {
    db: Pool,
    gate: Arc<dyn FlashGate>,
    bus: Arc<dyn EventBus>,
    clock: Arc<dyn Clock>,
    pricing: PricingRules,
    metrics: Arc<Metrics>,
    /// What each sale's last tick told its watchers: a tick tells them only what changed.
    announced: Arc<Mutex<HashMap<String, NowServing>>>,
    /// Sales as read from the store within `RECENT_SALE` (`recent_sale`).
    recent: moka::sync::Cache<String, FlashSale>,
    rounds: Arc<EntryRounds>,
}

/// Any id format is allowed in; one that cannot exist is simply not found.
fn known_format(id: &str) -> bool {
    validate_id("saleId", id).is_ok()
}

impl FlashSaleService {
    pub fn new(
        db: Pool,
        gate: Arc<dyn FlashGate>,
        bus: Arc<dyn EventBus>,
        clock: Arc<dyn Clock>,
        pricing: PricingRules,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            gate,
            bus,
            clock,
            pricing,
            metrics,
            announced: Arc::default(),
            recent: moka::sync::Cache::builder().max_capacity(RECENT_SALES_KEPT).time_to_live(RECENT_SALE).build(),
            rounds: entry_rounds(db.clone()),
            db,
        }
    }

    pub async fn create(&self, input: NewSale) -> FlashResult<SaleState> {
        input.validate()?;
        let now = self.clock.now();
        let sale = self
            .db
            .transaction(async |c| {
                let product = catalog::products_by_ids(c, std::slice::from_ref(&input.product_id))
                    .await?
                    .pop()
                    .ok_or_else(|| FlashSaleError::invalid("productId", "no such product"))?;
                let withdrawn = Writes::new(inventory::withdraw(&product.id, input.quantity))
                    .run(c, "taking a sale's units")
                    .await?;
                if withdrawn[0] == 0 {
                    let available = inventory::available(c, std::slice::from_ref(&product.id)).await?;
                    return Err(FlashSaleError::OutOfStock {
                        product_id: product.id.clone(),
                        requested: input.quantity,
                        available: available.get(&product.id).copied().unwrap_or_default(),
                    });
                }
                let sale = FlashSale {
                    id: format!("sale-{}", uuid::Uuid::new_v4().simple()),
                    product_id: product.id,
                    sale_price: Money { cents: input.sale_price_cents, currency: product.price.currency },
                    quantity: input.quantity,
                    remaining: input.quantity,
                    starts_at: input.starts_at,
                    ends_at: input.ends_at,
                    per_user_limit: input.per_user_limit.unwrap_or(1),
                    admission_per_minute: input.admission_per_minute.unwrap_or(DEFAULT_ADMISSION_PER_MINUTE),
                    hold_seconds: input.hold_seconds.unwrap_or(DEFAULT_HOLD_SECONDS),
                    // A sale that has started has no early arrivals to shuffle.
                    shuffled: input.starts_at <= now,
                    rate_limited: 0,
                    returned_to_stock: 0,
                    ended_at: None,
                };
                flash_sales::insert_sale(c, &sale).await?;
                outbox::insert(c, vec![OutboxRow::stock(std::slice::from_ref(&sale.product_id), now)?]).await?;
                Ok::<_, FlashSaleError>(sale)
            })
            .await?;
        // Warmed now, so the first joins find it; a join loads it too, should this fail.
        let tickets = sale.shuffled.then_some(0);
        if let Err(err) = self.gate.load(&sale.id, sale.quantity, tickets, gate_ttl(&sale, now)).await {
            tracing::warn!(error = %err, sale = sale.id, "loading a new flash sale's gate failed");
        }
        Ok(self.states_of(vec![sale], now).await?.remove(0))
    }

    pub async fn sale(&self, id: &str) -> FlashResult<Option<SaleState>> {
        if !known_format(id) {
            return Ok(None);
        }
        let now = self.clock.now();
        let Some(sale) = self.db.with_conn(async |c| flash_sales::sale(c, id).await).await? else { return Ok(None) };
        Ok(self.states_of(vec![sale], now).await?.pop())
    }

    pub async fn upcoming(&self, first: i32) -> FlashResult<Vec<SaleState>> {
        let first = i64::from(first.clamp(0, 100));
        let now = self.clock.now();
        let sales = self.db.with_conn(async |c| flash_sales::upcoming(c, now, first).await).await?;
        Ok(self.states_of(sales, now).await?)
    }

    /// The sales with their entries' counts, read in one query.
    async fn states_of(&self, sales: Vec<FlashSale>, now: DateTime<Utc>) -> Result<Vec<SaleState>, StoreError> {
        let ids: Vec<String> = sales.iter().map(|sale| sale.id.clone()).collect();
        let mut counts = self.db.with_conn(async |c| flash_sales::counts_of(c, &ids).await).await?;
        Ok(sales
            .into_iter()
            .map(|sale| {
                let counts = counts.remove(&sale.id).unwrap_or_default();
                SaleState { status: sale.status(now, counts.held_units), sale, counts }
            })
            .collect())
    }

    /// The caller's entry (`None` if they never joined), settled to now.
    pub async fn entry(&self, viewer: Option<&Viewer>, sale_id: &str) -> FlashResult<Option<EntryView>> {
        let shopper = Viewer::shopper_or(viewer, FlashSaleError::Unauthenticated)?;
        if !known_format(sale_id) {
            return Ok(None);
        }
        let Some(sale) = self.db.with_conn(async |c| flash_sales::sale(c, sale_id).await).await? else {
            return Ok(None);
        };
        self.view(&sale, &shopper.key()).await
    }

    /// Note 15: joins the waiting room (or returns the caller's entry), and lets the caller
    /// through at once when their ticket is due. Every call counts towards note 16's limit.
    /// The gate answers first (`domain::flash::gate`): a refused or returning caller costs the
    /// store nothing, a new one a share of a round of `EntryRounds`. A hold's units are taken
    /// again from the sale row in its round, which stays exact whatever the gate knows.
    pub async fn join(&self, viewer: Option<&Viewer>, sale_id: &str, quantity: i32) -> FlashResult<EntryView> {
        let shopper = Viewer::shopper_or(viewer, FlashSaleError::Unauthenticated)?.key();
        let mut sale = self.recent_sale(sale_id).await?;
        let now = self.clock.now();
        self.metrics.flash("join", 1);
        if sale.is_over(now) {
            return Err(FlashSaleError::SaleNotActive);
        }
        // The early arrivals go first, even if the worker has not shuffled them in yet.
        if now >= sale.starts_at && !sale.shuffled {
            self.shuffle(&sale.id).await?;
            sale = self.fresh_sale(sale_id).await?;
        }
        let started = Instant::now();
        let mut answer = self.enter_gate(&mut sale, &shopper, quantity, now).await?;
        if answer == GateAnswer::Returning {
            if let Some(entry) = self.entry_once_written(&sale.id, &shopper).await? {
                return Ok(self.view_of(&sale, entry).await?);
            }
            // The gate knew the shopper, the store never got their entry (its undo was lost):
            // they enter anew.
            self.gate.put_back(&sale.id, Some(&shopper), 0).await?;
            answer = self.enter_gate(&mut sale, &shopper, quantity, now).await?;
        }
        let mut entry = Entry {
            sale_id: sale.id.clone(),
            shopper: shopper.clone(),
            status: EntryStatus::Waiting,
            quantity,
            ticket: None,
            checkout_session_id: None,
            expires_at: None,
            admitted_at: None,
            joined_at: now,
        };
        let taken = match answer {
            GateAnswer::RateLimited(retry_after) => return Err(FlashSaleError::RateLimited { retry_after }),
            GateAnswer::BadQuantity => {
                let refusal = quantity_refusal(sale.per_user_limit, quantity);
                return Err(refusal.unwrap_or_else(|| FlashSaleError::invalid("quantity", "refused")));
            }
            GateAnswer::Unloaded | GateAnswer::Returning => {
                return Err(FlashSaleError::Gate(GateError(format!("no answer for {shopper} in {}", sale.id))));
            }
            GateAnswer::SoldOut => {
                entry.status = EntryStatus::SoldOut;
                0
            }
            GateAnswer::Early => 0,
            GateAnswer::Waiting(ticket) => {
                entry.ticket = Some(ticket);
                0
            }
            GateAnswer::Admitted(ticket) => {
                entry.ticket = Some(ticket);
                quantity
            }
        };
        let written = self.write_entry(&sale, entry, taken, now).await;
        if let Err(err) = &written {
            // Nothing was written: the shopper may come again, and the units are the sale's.
            tracing::warn!(error = %err, sale = sale.id, "writing a flash sale entry failed; undoing its gate");
            self.gate.put_back(&sale.id, Some(&shopper), taken).await?;
        }
        let entry = match written? {
            Joined::Before(entry) => entry,
            Joined::Entered(entry, kind) => {
                if kind == "admission" {
                    self.metrics.flash_gate.observe(started.elapsed().as_secs_f64());
                }
                if kind != "wait" {
                    self.metrics.flash(kind, 1);
                }
                // Only a new entry is news to the shopper's watchers.
                self.nudge(&sale.id, [shopper.as_str()]).await;
                entry
            }
        };
        Ok(self.view_of(&sale, entry).await?)
    }

    /// Asks the gate about one attempt. A gate without the sale (new here, restarted, or
    /// closed because the sale ended) is loaded from a fresh read of the store, which `sale`
    /// becomes, and asked again.
    async fn enter_gate(
        &self,
        sale: &mut FlashSale,
        shopper: &str,
        quantity: i32,
        now: DateTime<Utc>,
    ) -> FlashResult<GateAnswer> {
        let answer = self.gate.enter(&sale.id, &attempt_at(sale, shopper, quantity, now), gate_ttl(sale, now)).await?;
        if answer != GateAnswer::Unloaded {
            return Ok(answer);
        }
        *sale = self.fresh_sale(&sale.id).await?;
        if sale.is_over(now) {
            return Err(FlashSaleError::SaleNotActive);
        }
        let attempt = attempt_at(sale, shopper, quantity, now);
        let counts =
            self.db.with_conn(async |c| flash_sales::counts_of(c, std::slice::from_ref(&sale.id)).await).await?;
        let last_ticket = counts.get(&sale.id).map(|counts| counts.last_ticket).unwrap_or_default();
        let tickets = attempt.admitted.map(|_| last_ticket);
        self.gate.load(&sale.id, sale.remaining, tickets, gate_ttl(sale, now)).await?;
        Ok(self.gate.enter(&sale.id, &attempt, gate_ttl(sale, now)).await?)
    }

    /// The sale as read from the store within the last `RECENT_SALE` (joins read it from here):
    /// only its `remaining` moves often, and the gate and the sale row decide on units.
    async fn recent_sale(&self, sale_id: &str) -> FlashResult<FlashSale> {
        match self.recent.get(sale_id) {
            Some(sale) => Ok(sale),
            None => self.fresh_sale(sale_id).await,
        }
    }

    /// The sale read from the store now, and kept for `recent_sale`.
    async fn fresh_sale(&self, sale_id: &str) -> FlashResult<FlashSale> {
        let sale = self.existing(sale_id).await?;
        self.recent.insert(sale.id.clone(), sale.clone());
        Ok(sale)
    }

    /// The shopper's entry as the store has it.
    async fn stored_entry(&self, sale_id: &str, shopper: &str) -> StoreResult<Option<Entry>> {
        self.db.with_conn(async |c| flash_sales::entry(c, sale_id, shopper).await).await
    }

    /// A returning shopper's entry; a first join of theirs still being written is waited for
    /// briefly.
    async fn entry_once_written(&self, sale_id: &str, shopper: &str) -> FlashResult<Option<Entry>> {
        for _ in 0..10 {
            if let Some(entry) = self.stored_entry(sale_id, shopper).await? {
                return Ok(Some(entry));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(None)
    }

    /// Writes a new entry as the gate answered it. A waiting entry of a sale with nothing left
    /// or held is SOLD_OUT. With `taken` units, the hold: the units taken from the sale row
    /// (SOLD_OUT if it has too few after all), reserved in stock, and the session at the sale
    /// price, in one transaction. A concurrent first join of the same shopper keeps its entry.
    async fn write_entry(&self, sale: &FlashSale, entry: Entry, taken: i32, now: DateTime<Utc>) -> FlashResult<Joined> {
        let session = if taken > 0 { Some(self.hold_session(sale, &entry, now)?) } else { None };
        let settled = entry.status == EntryStatus::SoldOut || sale.remaining > 0;
        let joined = match &session {
            // Written with the others queued at the same time: most of a flash crowd ends here.
            None if settled => match self.rounds.write((entry.clone(), None), ENTRIES).await? {
                Written::Added => Ok(Joined::Entered(entry.clone(), kind_of(&entry))),
                Written::Exists | Written::TooFewUnits => Err(StoreError::Conflict("joined already".to_owned())),
            },
            None => {
                self.db
                    .transaction(async |c| {
                        let mut entry = entry.clone();
                        // `sale` may be a second old: the row tells whether units came back.
                        let left = flash_sales::sale(c, &sale.id).await?.map_or(0, |sale| sale.remaining);
                        if left == 0 && !flash_sales::any_held(c, &sale.id).await? {
                            entry.status = EntryStatus::SoldOut;
                            entry.ticket = None;
                        }
                        insert_new(c, entry).await
                    })
                    .await
            }
            Some(session) => {
                let mut reserved = entry.clone();
                reserve(&mut reserved, session, now);
                match self.rounds.write((reserved.clone(), Some(session.clone())), ENTRIES).await? {
                    Written::Added => Ok(Joined::Entered(reserved, "admission")),
                    Written::Exists => Err(StoreError::Conflict("joined already".to_owned())),
                    // Another sale's shortage may have spoilt the round: this hold tries alone.
                    Written::TooFewUnits => {
                        self.db
                            .transaction(async |c| {
                                let joined = insert_new(c, reserved.clone()).await?;
                                hold_units(c, &[session]).await?;
                                Ok(joined)
                            })
                            .await
                    }
                }
            }
        };
        let Err(StoreError::Conflict(_)) = joined else { return Ok(joined?) };
        if taken > 0 {
            self.gate.put_back(&sale.id, None, taken).await?;
        }
        if let Some(theirs) = self.stored_entry(&sale.id, &entry.shopper).await? {
            return Ok(Joined::Before(theirs));
        }
        // The sale row had fewer units than the gate: SOLD_OUT after all, and the gate learns
        // the row's count.
        self.sync_gate(&sale.id).await;
        let sold_out = Entry { status: EntryStatus::SoldOut, ..entry };
        match self.db.write(async |c| insert_new(c, sold_out.clone()).await).await {
            // Theirs came between the two reads.
            Err(StoreError::Conflict(_)) => {
                let theirs = self.stored_entry(&sale.id, &sold_out.shopper).await?;
                theirs
                    .map(Joined::Before)
                    .ok_or_else(|| StoreError::Conflict("an entry came and went".to_owned()).into())
            }
            written => Ok(written?),
        }
    }

    /// Leaves the waiting room, or gives a hold back to the sale at once.
    pub async fn leave(&self, viewer: Option<&Viewer>, sale_id: &str) -> FlashResult<EntryView> {
        let shopper = Viewer::shopper_or(viewer, FlashSaleError::Unauthenticated)?.key();
        let now = self.clock.now();
        let not_found = || FlashSaleError::NotFound(format!("your entry in flash sale {sale_id}"));
        let sale = self.existing(sale_id).await?;
        let entry = self.stored_entry(sale_id, &shopper).await?.ok_or_else(not_found)?;
        match entry.status {
            EntryStatus::Waiting => {
                self.db
                    .atomically(async |c| {
                        flash_sales::move_entries(
                            c,
                            sale_id,
                            Some(&shopper),
                            EntryStatus::Waiting,
                            EntryStatus::Expired,
                        )
                        .await
                    })
                    .await?;
            }
            EntryStatus::Reserved => {
                if let Some(session_id) = &entry.checkout_session_id {
                    self.give_back(session_id, CheckoutStatus::Cancelled, now).await?;
                    self.sync_gate(sale_id).await;
                }
            }
            _ => {}
        }
        self.nudge(sale_id, [shopper.as_str()]).await;
        self.view(&sale, &shopper).await?.ok_or_else(not_found)
    }

    pub async fn report(&self, sale_id: &str) -> FlashResult<SaleReport> {
        let now = self.clock.now();
        let mut state =
            self.sale(sale_id).await?.ok_or_else(|| FlashSaleError::NotFound(format!("flash sale {sale_id}")))?;
        // An open sale's refused attempts are counted in its gate; an ended one's were kept.
        if state.sale.ended_at.is_none() {
            let refused = self.gate.rate_limited(sale_id).await?;
            state.sale.rate_limited = i32::try_from(refused).unwrap_or(i32::MAX);
        }
        let sale = &state.sale;
        let counts = &state.counts;
        let gate = i64::from(sale.remaining) + i64::from(sale.returned_to_stock);
        let store = i64::from(sale.quantity) - counts.purchased_units - counts.held_units;
        let conversion_rate =
            if counts.joined == 0 { 0.0 } else { counts.purchased_units as f64 / counts.joined as f64 };
        Ok(SaleReport { reconciled_at: sale.ended_at.or(Some(now)), discrepancy: gate - store, conversion_rate, state })
    }

    /// Ends the sale now: holds not being paid go back, and every unit neither sold nor held
    /// returns to regular stock, once.
    pub async fn end(&self, sale_id: &str) -> FlashResult<SaleReport> {
        let sale = self.existing(sale_id).await?;
        self.finish(&sale, self.clock.now()).await?;
        self.report(sale_id).await
    }

    async fn finish(&self, sale: &FlashSale, now: DateTime<Utc>) -> FlashResult<()> {
        let holds = self.db.with_conn(async |c| flash_sales::holds(c, &sale.id, None).await).await?;
        for hold in &holds {
            if let Some(session_id) = &hold.checkout_session_id {
                self.give_back(session_id, CheckoutStatus::Cancelled, now).await?;
            }
        }
        let refused = i32::try_from(self.gate.rate_limited(&sale.id).await?).unwrap_or(i32::MAX);
        let sold_out = self
            .db
            .transaction(async |c| {
                let sold_out =
                    flash_sales::move_entries(c, &sale.id, None, EntryStatus::Waiting, EntryStatus::SoldOut).await?;
                if let Some(returned) = flash_sales::end(c, sale, refused, now).await?.filter(|units| *units > 0) {
                    let stock_event = OutboxRow::stock(std::slice::from_ref(&sale.product_id), now)?;
                    Writes::new(inventory::give_back(&sale.product_id, returned, false))
                        .event(stock_event)
                        .run(c, "returning a sale's units to stock")
                        .await?;
                }
                Ok::<_, StoreError>(sold_out)
            })
            .await?;
        self.metrics.flash("sold_out", sold_out as u64);
        self.recent.invalidate(&sale.id);
        if let Err(err) = self.gate.close(&sale.id).await {
            tracing::warn!(error = %err, sale = sale.id, "forgetting an ended sale's gate failed; it expires");
        }
        self.nudge(&sale.id, holds.iter().map(|hold| hold.shopper.as_str())).await;
        self.announce(&sale.id).await;
        Ok(())
    }

    /// Sets the gate's units to the sale row's, which units given back (lapsed, left, cancelled
    /// or unpaid holds) reach first.
    async fn sync_gate(&self, sale_id: &str) {
        let synced = async {
            if let Some(sale) = self.db.with_conn(async |c| flash_sales::sale(c, sale_id).await).await? {
                self.gate.set_units(sale_id, sale.remaining).await?;
            }
            Ok::<_, FlashSaleError>(())
        };
        if let Err(err) = synced.await {
            tracing::warn!(error = %err, sale = sale_id, "setting a flash sale gate's units failed");
        }
    }

    /// Closes a hold's session and gives its units back to the sale; nothing if a payment
    /// holds it (it ends PURCHASED or comes back through the payment's compensation).
    async fn give_back(&self, session_id: &str, status: CheckoutStatus, now: DateTime<Utc>) -> Result<(), StoreError> {
        close_session(&self.db, session_id, status, None, now).await.map(drop)
    }

    /// The checkout session that holds an admitted entry's units at the sale price.
    fn hold_session(&self, sale: &FlashSale, entry: &Entry, now: DateTime<Utc>) -> Result<CheckoutSession, StoreError> {
        let line = CartLine {
            product_id: sale.product_id.clone(),
            quantity: entry.quantity,
            unit_price: sale.sale_price.clone(),
            added_at: now,
        };
        let totals = self
            .pricing
            .price(std::slice::from_ref(&line), &self.pricing.default_country)
            .map_err(|err| StoreError::internal("pricing a flash sale hold", std::io::Error::other(err.to_string())))?;
        Ok(CheckoutSession {
            id: format!("chk-{}", uuid::Uuid::new_v4().simple()),
            owner: crate::db::shopper(&entry.shopper)?,
            status: CheckoutStatus::Reserved,
            lines: vec![line],
            totals,
            saga_id: None,
            expires_at: now + sale.hold(),
            created_at: now,
            flash_sale_id: Some(sale.id.clone()),
        })
    }

    /// Lets one entry that came due while waiting through, in a transaction of its own.
    /// A round that let it through first, or too few units left, ends the transaction with
    /// `Conflict`; then it is SOLD_OUT unless it is no longer waiting.
    async fn admit_due(&self, sale: &FlashSale, entry: Entry, now: DateTime<Utc>) -> Result<(), StoreError> {
        let session = self.hold_session(sale, &entry, now)?;
        let started = Instant::now();
        let admitted = self
            .db
            .transaction(async |c| {
                if !flash_sales::admit(c, &entry, &session.id, session.expires_at, now).await? {
                    return Err(StoreError::Conflict("admitted already".to_owned()));
                }
                hold_units(c, &[&session]).await
            })
            .await;
        self.metrics.flash_gate.observe(started.elapsed().as_secs_f64());
        match admitted {
            Ok(()) => self.metrics.flash("admission", 1),
            Err(StoreError::Conflict(_)) => {
                let shopper = Some(entry.shopper.as_str());
                let sold_out = self
                    .db
                    .write(async |c| {
                        flash_sales::move_entries(c, &sale.id, shopper, EntryStatus::Waiting, EntryStatus::SoldOut)
                            .await
                    })
                    .await?;
                self.metrics.flash("sold_out", sold_out as u64);
            }
            Err(other) => return Err(other),
        }
        Ok(())
    }

    /// Moves one sale along to `now`; see the module's doc.
    pub async fn settle(&self, sale_id: &str) -> FlashResult<()> {
        let now = self.clock.now();
        let Some(sale) = self.db.with_conn(async |c| flash_sales::sale(c, sale_id).await).await? else { return Ok(()) };
        if sale.ended_at.is_some() {
            return Ok(());
        }
        if now >= sale.ends_at {
            return self.finish(&sale, now).await;
        }
        if now >= sale.starts_at && !sale.shuffled {
            self.shuffle(&sale.id).await?;
        }
        // Shoppers whose own entry changes this round; the waiting learn of their new place
        // (or of the sale selling out) from the one tick announced at the end.
        let mut changed = self.db.write(async |c| flash_sales::mark_purchased(c, &sale.id).await).await?;
        for lapsed in self.db.with_conn(async |c| flash_sales::holds(c, &sale.id, Some(now)).await).await? {
            if let Some(session_id) = &lapsed.checkout_session_id {
                self.give_back(session_id, CheckoutStatus::Expired, now).await?;
                self.metrics.flash("expiry", 1);
                changed.push(lapsed.shopper);
            }
        }
        let due_up_to = sale.admitted_tickets(now);
        for entry in
            self.db.with_conn(async |c| flash_sales::due(c, &sale.id, due_up_to, ADMISSIONS_PER_ROUND).await).await?
        {
            changed.push(entry.shopper.clone());
            self.admit_due(&sale, entry, now).await?;
        }
        self.sell_out_if_gone(&sale.id).await?;
        self.sync_gate(&sale.id).await;
        self.nudge(&sale.id, changed.iter().map(String::as_str)).await;
        self.announce(&sale.id).await;
        Ok(())
    }

    /// Once no unit is left and none is held, every waiting shopper is SOLD_OUT at once.
    async fn sell_out_if_gone(&self, sale_id: &str) -> Result<(), StoreError> {
        self.db
            .atomically(async |c| {
                let gone = flash_sales::sale(c, sale_id).await?.is_some_and(|sale| sale.remaining == 0)
                    && !flash_sales::any_held(c, sale_id).await?;
                if !gone {
                    return Ok(0);
                }
                flash_sales::move_entries(c, sale_id, None, EntryStatus::Waiting, EntryStatus::SoldOut).await
            })
            .await
            .map(|sold_out| self.metrics.flash("sold_out", sold_out as u64))
    }

    /// At the start, everyone who came early gets a ticket in a random order.
    async fn shuffle(&self, sale_id: &str) -> Result<bool, StoreError> {
        self.db.transaction(async |c| shuffle_early(c, sale_id).await).await
    }

    /// Every sale not yet ended, for the worker.
    pub async fn open_sales(&self) -> Result<Vec<String>, StoreError> {
        self.db.with_conn(async |c| flash_sales::unsettled(c).await).await
    }

    /// The shopper's entry as they see it, read from the store.
    async fn view(&self, sale: &FlashSale, shopper: &str) -> FlashResult<Option<EntryView>> {
        let Some(entry) = self.stored_entry(&sale.id, shopper).await? else {
            return Ok(None);
        };
        Ok(Some(self.view_of(sale, entry).await?))
    }

    /// `entry` as its shopper sees it: a waiting shopper's place is read from the store.
    async fn view_of(&self, sale: &FlashSale, entry: Entry) -> Result<EntryView, StoreError> {
        let now = self.clock.now();
        let (position, estimated_wait_seconds) = match (entry.status, entry.ticket) {
            (EntryStatus::Waiting, Some(ticket)) => {
                let position =
                    self.db.with_conn(async |c| flash_sales::waiting_up_to(c, &sale.id, ticket).await).await?;
                let wait = (sale.admission_time(ticket) - now).num_seconds().max(0);
                (Some(position), Some(wait))
            }
            (EntryStatus::Waiting, None) => (None, Some((sale.starts_at - now).num_seconds().max(0))),
            _ => (None, None),
        };
        Ok(EntryView { entry, position, estimated_wait_seconds })
    }

    /// Tells the watchers of these shoppers' entries, on every instance, to read them again.
    async fn nudge<'a>(&self, sale_id: &str, shoppers: impl IntoIterator<Item = &'a str>) {
        let events: Vec<Event> = shoppers
            .into_iter()
            .map(|shopper| Event { topic: flash_entry_topic(sale_id, shopper), payload: "{}".to_owned() })
            .collect();
        if !events.is_empty()
            && let Err(err) = self.bus.publish(&events).await
        {
            tracing::warn!(error = %err, sale = sale_id, "announcing flash sale entry changes failed");
        }
    }

    /// The sale's tick: what every watcher needs, sent once for all of them on every instance,
    /// and only when it differs from the last one.
    async fn announce(&self, sale_id: &str) {
        let now = self.clock.now();
        let state = match self.sale(sale_id).await {
            Ok(Some(state)) => state,
            Ok(None) => return,
            Err(err) => {
                tracing::warn!(error = %err, sale = sale_id, "reading a flash sale to announce it failed");
                return;
            }
        };
        let labels = SaleLabels { sale: sale_id.to_owned() };
        if state.status == SaleStatus::Ended {
            self.metrics.flash_waiting.remove(&labels);
        } else {
            self.metrics.flash_waiting.get_or_create(&labels).set(state.counts.waiting);
        }
        let serving = NowServing {
            // Not past the last ticket handed out: a drained queue's tick stays the same.
            admitted: state.sale.admitted_tickets(now).min(state.counts.last_ticket),
            remaining: state.sale.remaining,
            waiting: state.counts.waiting,
            status: state.status,
            shuffled: state.sale.shuffled,
        };
        if self.announced.lock().unwrap_or_else(PoisonError::into_inner).get(sale_id) == Some(&serving) {
            return;
        }
        let payload = match serde_json::to_string(&serving) {
            Ok(payload) => payload,
            Err(err) => return tracing::warn!(error = %err, "serializing a flash sale tick failed"),
        };
        match self.bus.publish(&[Event { topic: flash_sale_topic(sale_id), payload }]).await {
            Ok(()) => {
                self.announced.lock().unwrap_or_else(PoisonError::into_inner).insert(sale_id.to_owned(), serving);
            }
            Err(err) => tracing::warn!(error = %err, sale = sale_id, "announcing a flash sale tick failed"),
        }
    }

    /// The caller's entry now (once they have one), then each change: a new status at once,
    /// a new place in the queue at most once a second. The place moves with the sale's ticks,
    /// worked out here without reading the store; the store is read only when the entry itself
    /// changes (`nudge`), or when a tick cannot tell (an early arrival's ticket is drawn).
    pub async fn watch_entry(
        &self,
        viewer: Option<&Viewer>,
        sale_id: &str,
    ) -> FlashResult<BoxStream<'static, EntryView>> {
        let shopper = Viewer::shopper_or(viewer, FlashSaleError::Unauthenticated)?.key();
        let sale = self.existing(sale_id).await?;
        // Subscribe before reading, so that no change between the two is missed.
        let ticks = self.bus.subscribe(&flash_sale_topic(sale_id)).map(Nudge::Tick);
        let own = self.bus.subscribe(&flash_entry_topic(sale_id, &shopper)).map(|_| Nudge::Entry);
        let nudges = stream::select(ticks, own).boxed();
        let read = self.read_entry(&sale, &shopper).await?;
        let shown = read.as_ref().map(|(view, _)| view.clone());
        let watch =
            EntryWatch { service: self.clone(), sale, shopper, read, shown: shown.clone(), shown_at: Instant::now() };
        let changes = stream::unfold((nudges, watch), |(mut nudges, mut watch)| async move {
            loop {
                let nudge = nudges.next().await?;
                if let Some(view) = watch.next(nudge).await {
                    return Some((view, (nudges, watch)));
                }
            }
        });
        Ok(stream::iter(shown).chain(changes).boxed())
    }

    /// The entry from the store, with the tickets let through when it was read.
    async fn read_entry(&self, sale: &FlashSale, shopper: &str) -> FlashResult<Option<(EntryView, i64)>> {
        let admitted = sale.admitted_tickets(self.clock.now());
        Ok(self.view(sale, shopper).await?.map(|view| (view, admitted)))
    }

    /// The sale's public state now, then each change, carried forward by its ticks.
    pub async fn watch_sale(&self, sale_id: &str) -> FlashResult<BoxStream<'static, SaleState>> {
        self.existing(sale_id).await?;
        let ticks = self.bus.subscribe(&flash_sale_topic(sale_id));
        let current =
            self.sale(sale_id).await?.ok_or_else(|| FlashSaleError::NotFound(format!("flash sale {sale_id}")))?;
        let service = self.clone();
        let changes = stream::unfold(
            (ticks, current.clone(), service, sale_id.to_owned()),
            |(mut ticks, mut state, service, sale_id)| async move {
                loop {
                    let shown = Shown::of(&state);
                    match ticks.next().await? {
                        Delivery::Event(event) => match serde_json::from_str::<NowServing>(&event.payload) {
                            Ok(serving) => {
                                state.sale.remaining = serving.remaining;
                                state.counts.waiting = serving.waiting;
                                state.status = serving.status;
                            }
                            Err(err) => tracing::warn!(error = %err, "ignoring a malformed flash sale tick"),
                        },
                        // Ticks were missed: the store tells where the sale stands.
                        Delivery::Lagged => {
                            if let Ok(Some(read)) = service.sale(&sale_id).await {
                                state = read;
                            }
                        }
                    }
                    if Shown::of(&state) != shown {
                        return Some((state.clone(), (ticks, state, service, sale_id)));
                    }
                }
            },
        );
        Ok(stream::once(future::ready(current)).chain(changes).boxed())
    }

    async fn existing(&self, sale_id: &str) -> FlashResult<FlashSale> {
        let not_found = || FlashSaleError::NotFound(format!("flash sale {sale_id}"));
        if !known_format(sale_id) {
            return Err(not_found());
        }
        self.db.with_conn(async |c| flash_sales::sale(c, sale_id).await).await?.ok_or_else(not_found)
    }
}

/// One join as the gate sees it; tickets are let through once the early arrivals have theirs.
fn attempt_at<'a>(sale: &FlashSale, shopper: &'a str, quantity: i32, now: DateTime<Utc>) -> Attempt<'a> {
    let open = sale.shuffled && now >= sale.starts_at;
    Attempt {
        shopper,
        quantity,
        per_user_limit: sale.per_user_limit,
        admitted: open.then(|| sale.admitted_tickets(now)),
        now,
    }
}

/// How long a sale's gate keeps what it writes: past the sale's end, then it is forgotten
/// even if no instance closes it.
fn gate_ttl(sale: &FlashSale, now: DateTime<Utc>) -> Duration {
    (sale.ends_at - now + chrono::TimeDelta::hours(1)).to_std().unwrap_or(Duration::from_secs(3600))
}

/// What a join found or wrote.
enum Joined {
    /// The shopper's entry from before: nothing was written.
    Before(Entry),
    /// A new entry, and the metric kind of what became of it ("wait": none yet).
    Entered(Entry, &'static str),
}

/// At the start, everyone who came early gets a ticket in a random order, once; whether this
/// call did it.
async fn shuffle_early(c: &mut Conn<'_>, sale_id: &str) -> Result<bool, StoreError> {
    let mut early = flash_sales::unticketed(c, sale_id).await?;
    early.shuffle(&mut rand::rng());
    flash_sales::shuffle_in(c, sale_id, &early).await
}

/// Writes holds' sessions, reserves their units in stock and takes them from their sales'
/// rows, in the caller's transaction (one statement on PostgreSQL): the rows every hold of a
/// sale updates come last, so their locks are held only until the commit. `Conflict` when a
/// sale's row has too few units left, so that the caller's transaction undoes the rest.
async fn hold_units(c: &mut Conn<'_>, sessions: &[&CheckoutSession]) -> StoreResult<()> {
    // One write per row: on PostgreSQL the writes are one statement, where a row updated
    // twice keeps only one of the updates (two sales of one product may share a round).
    let mut per_product: HashMap<&str, i32> = HashMap::new();
    let mut per_sale: HashMap<&str, i32> = HashMap::new();
    for session in sessions {
        let sale = session.flash_sale_id.as_deref().unwrap_or_default();
        for line in &session.lines {
            *per_product.entry(line.product_id.as_str()).or_default() += line.quantity;
            *per_sale.entry(sale).or_default() += line.quantity;
        }
    }
    let mut writes = Writes::new(checkout::insert_all(sessions.iter().copied())?);
    for (product, &quantity) in &per_product {
        writes = writes.and(inventory::hold(product, quantity));
    }
    for (sale, &quantity) in &per_sale {
        writes = writes.and(flash_sales::take_units(sale, quantity));
    }
    let changed = writes.run(c, "holding flash sale units").await?;
    let takes = &changed[1 + per_product.len()..];
    if takes.contains(&0) {
        return Err(StoreError::Conflict("too few units left".to_owned()));
    }
    Ok(())
}

/// Inserts a new entry with the metric kind of what became of it; `Conflict` when the
/// shopper has one already, so that a transaction around it undoes its other writes.
async fn insert_new(c: &mut Conn<'_>, entry: Entry) -> StoreResult<Joined> {
    if !flash_sales::insert_entry(c, &entry).await? {
        return Err(StoreError::Conflict("joined already".to_owned()));
    }
    let kind = kind_of(&entry);
    Ok(Joined::Entered(entry, kind))
}

/// The metric kind of what became of a new entry.
fn kind_of(entry: &Entry) -> &'static str {
    match entry.status {
        EntryStatus::Reserved => "admission",
        EntryStatus::SoldOut => "sold_out",
        _ => "wait",
    }
}

/// New entries written together (`db::rounds`): a join queues its entry (with its hold's
/// session, if admitted). A round is one multi-row INSERT of entries and, when it holds units,
/// one `hold_units` for all its sessions, in one transaction. So a flash crowd costs the store a
/// few statements per round instead of a few per shopper.
type EntryRounds = Rounds<(Entry, Option<CheckoutSession>), Result<Written, String>>;

/// What became of a queued entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    Added,
    /// The shopper had an entry; nothing was written.
    Exists,
    /// A sale of the round had fewer units than its holds; nothing of this hold was written,
    /// so that it is tried alone.
    TooFewUnits,
}

const ENTRIES_PER_ROUND: usize = 500;
const ROUNDS_AT_ONCE: usize = 4;
/// What a failed round of entries is logged as.
const ENTRIES: &str = "writing flash sale entries";

fn entry_rounds(db: Pool) -> Arc<EntryRounds> {
    Rounds::new(ENTRIES_PER_ROUND, ROUNDS_AT_ONCE, move |round| {
        let db = db.clone();
        async move { write_entries(&db, round).await }.boxed()
    })
}

/// One round's entries; if a sale has too few units for the round's holds, the round again
/// without them.
async fn write_entries(db: &Pool, round: Vec<(Entry, Option<CheckoutSession>)>) -> Vec<Result<Written, String>> {
    let written = match write_round(db, &round).await {
        Err(StoreError::Conflict(_)) => {
            let others: Vec<_> = round.iter().filter(|(_, session)| session.is_none()).cloned().collect();
            let written = write_round(db, &others).await.map_err(|err| err.to_string());
            return round
                .iter()
                .map(|(entry, session)| match session {
                    Some(_) => Ok(Written::TooFewUnits),
                    None => outcome(entry, &written),
                })
                .collect();
        }
        written => written.map_err(|err| err.to_string()),
    };
    round.iter().map(|(entry, _)| outcome(entry, &written)).collect()
}

/// One round: the entries, and the holds' sessions and units; (sale, shopper) of the entries
/// added. `Conflict` (nothing written) when a sale has too few units for its holds.
async fn write_round(db: &Pool, round: &[(Entry, Option<CheckoutSession>)]) -> StoreResult<HashSet<(String, String)>> {
    let entries: Vec<&Entry> = round.iter().map(|(entry, _)| entry).collect();
    if round.iter().all(|(_, session)| session.is_none()) {
        let added = db.write(async |c| flash_sales::insert_entries(c, &entries).await).await?;
        return Ok(added.into_iter().collect());
    }
    db.transaction(async |c| {
        let added: HashSet<(String, String)> = flash_sales::insert_entries(c, &entries).await?.into_iter().collect();
        let sessions: Vec<&CheckoutSession> = round
            .iter()
            .filter(|(entry, _)| added.contains(&(entry.sale_id.clone(), entry.shopper.clone())))
            .filter_map(|(_, session)| session.as_ref())
            .collect();
        if !sessions.is_empty() {
            hold_units(c, &sessions).await?;
        }
        Ok(added)
    })
    .await
}

fn outcome(entry: &Entry, written: &Result<HashSet<(String, String)>, String>) -> Result<Written, String> {
    match written {
        Ok(added) if added.contains(&(entry.sale_id.clone(), entry.shopper.clone())) => Ok(Written::Added),
        Ok(_) => Ok(Written::Exists),
        Err(err) => Err(err.clone()),
    }
}

fn reserve(entry: &mut Entry, session: &CheckoutSession, now: DateTime<Utc>) {
    entry.status = EntryStatus::Reserved;
    entry.checkout_session_id = Some(session.id.clone());
    entry.expires_at = Some(session.expires_at);
    entry.admitted_at = Some(now);
}

/// What wakes an entry's watcher.
enum Nudge {
    Tick(Delivery),
    Entry,
}

/// An entry's watcher: the entry as last read from the store (with the tickets let through
/// then), and what was last shown.
struct EntryWatch {
    service: FlashSaleService,
    sale: FlashSale,
    shopper: String,
    read: Option<(EntryView, i64)>,
    shown: Option<EntryView>,
    shown_at: Instant,
}

impl EntryWatch {
    /// What to push for this nudge, if anything: a new status at once, a new place at most
    /// once a second.
    async fn next(&mut self, nudge: Nudge) -> Option<EntryView> {
        let now = self.service.clock.now();
        let carried = match (&nudge, &self.read) {
            (Nudge::Tick(Delivery::Event(event)), Some((view, admitted_then))) => {
                serde_json::from_str::<NowServing>(&event.payload)
                    .ok()
                    .and_then(|serving| view.at_tick(*admitted_then, &serving, &self.sale, now))
            }
            // No entry yet: a tick says nothing about it (joining nudges the entry).
            (Nudge::Tick(Delivery::Event(_)), None) => return None,
            _ => None,
        };
        let current = match carried {
            Some(view) => view,
            None => {
                self.read = self.service.read_entry(&self.sale, &self.shopper).await.ok()?;
                self.read.as_ref()?.0.clone()
            }
        };
        let status_changed = self.shown.as_ref().is_none_or(|shown| shown.entry.status != current.entry.status);
        let moved = self.shown.as_ref() != Some(&current) && self.shown_at.elapsed() >= POSITION_UPDATES;
        if !(status_changed || moved) {
            return None;
        }
        self.shown = Some(current.clone());
        self.shown_at = Instant::now();
        Some(current)
    }
}

/// What `flashSaleUpdated` shows of a sale; a push only when it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shown {
    remaining: i32,
    waiting: i64,
    status: SaleStatus,
}

impl Shown {
    fn of(state: &SaleState) -> Self {
        Shown { remaining: state.sale.remaining, waiting: state.counts.waiting, status: state.status }
    }
}
