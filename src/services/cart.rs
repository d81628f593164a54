//! Carts: a change reads the cart (from the cache when it holds it) and the product's offer,
//! decides the new lines with the pure rules, and writes the next version with its event, if no
//! other change came first; otherwise it reads again and retries. Changes of many carts are
//! written together (`db::carts::rounds`): one statement, or one SQLite transaction, per round.
//! How the event reaches subscriptions depends on the bus (`Announce`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream};
use futures::{StreamExt, future};

use crate::db::carts::{Announce, CartChange, CartRounds};
use crate::db::outbox::OutboxRow;
use crate::db::{Pool, Writes, carts, inventory};
use crate::domain::auth::Viewer;
use crate::domain::cart::rules::{self, CartLimits};
use crate::domain::cart::{CappedLine, Cart, CartError, CartLine};
use crate::domain::catalog::Offer;
use crate::domain::catalog::model::validate_id;
use crate::domain::events::cart_topic;
use crate::domain::primitives::Shopper;
use crate::ports::{CartCache, Clock, Delivery, EventBus, StoreError};
use crate::services::catalog::CatalogService;

pub type CartResult<T> = Result<T, CartError>;

const CACHE_TTL: Duration = Duration::from_secs(3600);
/// Tries of a change that keeps meeting newer versions (another device's changes).
const ATTEMPTS: usize = 20;

#[derive(Clone)]
pub struct CartService {
    db: Pool,
    rounds: Arc<CartRounds>,
    cache: Arc<dyn CartCache>,
    bus: Arc<dyn EventBus>,
    announce: Announce,
    clock: Arc<dyn Clock>,
    catalog: CatalogService,
    limits: CartLimits,
}

fn too_busy() -> CartError {
    CartError::Store(StoreError::Conflict("the cart kept changing meanwhile; try again".to_owned()))
}

impl CartService {
    pub fn new(
        db: Pool,
        cache: Arc<dyn CartCache>,
        bus: Arc<dyn EventBus>,
        clock: Arc<dyn Clock>,
        catalog: CatalogService,
        limits: CartLimits,
    ) -> Self {
        let announce = Announce::of(bus.clone());
        let rounds = carts::rounds(db.clone(), announce.clone());
        Self { db, rounds, cache, bus, announce, clock, catalog, limits }
    }

    /// The viewer's cart; an empty one if there is none yet (or it expired).
    pub async fn cart(&self, viewer: Option<&Viewer>) -> CartResult<Arc<Cart>> {
        self.load(&Viewer::shopper_or(viewer, CartError::Unauthenticated)?).await
    }

    /// Adds `quantity` to the product's line, creating it at today's price.
    pub async fn add_item(&self, viewer: Option<&Viewer>, product_id: &str, quantity: i32) -> CartResult<Arc<Cart>> {
        let shopper = Viewer::shopper_or(viewer, CartError::Unauthenticated)?;
        validate_product(product_id)?;
        self.check_quantity(quantity, 1)?;
        self.change(&shopper, Some(product_id), |cart, offer, now| {
            let current = cart.line(product_id).map_or(0, |l| l.quantity);
            let offer = offer.ok_or_else(|| CartError::ProductNotFound(product_id.to_owned()))?;
            rules::with_quantity(cart, offer, product_id, current.saturating_add(quantity), now, &self.limits).map(Some)
        })
        .await
    }

    /// Sets the line's quantity; 0 removes it.
    pub async fn update_item(&self, viewer: Option<&Viewer>, product_id: &str, quantity: i32) -> CartResult<Arc<Cart>> {
        let shopper = Viewer::shopper_or(viewer, CartError::Unauthenticated)?;
        validate_product(product_id)?;
        self.check_quantity(quantity, 0)?;
        self.change(&shopper, Some(product_id), |cart, offer, now| {
            let offer = offer.ok_or_else(|| CartError::ProductNotFound(product_id.to_owned()))?;
            match quantity {
                0 => Ok(rules::without(cart, product_id)),
                wanted if cart.line(product_id).is_some_and(|l| l.quantity == wanted) => Ok(None),
                wanted => rules::with_quantity(cart, offer, product_id, wanted, now, &self.limits).map(Some),
            }
        })
        .await
    }

    /// Removes the line; removing a line that is not there changes nothing.
    pub async fn remove_item(&self, viewer: Option<&Viewer>, product_id: &str) -> CartResult<Arc<Cart>> {
        let shopper = Viewer::shopper_or(viewer, CartError::Unauthenticated)?;
        validate_product(product_id)?;
        self.change(&shopper, None, |cart, _, _| Ok(rules::without(cart, product_id))).await
    }

    /// Moves the guest session's cart into the user's: quantities of the same product add up,
    /// capped by stock and the size limits; the guest cart is left empty. Says which lines were
    /// capped. An empty or absent guest cart changes nothing.
    pub async fn merge_guest_cart(&self, guest: &Viewer, user: &Viewer) -> CartResult<Vec<CappedLine>> {
        let (guest, user) = (guest.shopper(), user.shopper());
        if !guest.is_guest() {
            return Ok(Vec::new());
        }
        for _ in 0..ATTEMPTS {
            let now = self.clock.now();
            let merged = self
                .db
                .transaction(async |c| {
                    // A fixed lock order keeps two merges of the same carts from deadlocking.
                    let mut lock_order = [&guest, &user];
                    lock_order.sort_by_key(|s| s.cart_id());
                    let (mut guest_cart, mut user_cart) = (None, None);
                    for shopper in lock_order {
                        let locked = carts::lock(c, shopper).await?;
                        if shopper == &guest { guest_cart = locked } else { user_cart = locked }
                    }
                    let Some(guest_cart) = guest_cart.filter(|cart| !cart.lines.is_empty()) else {
                        return Ok((Vec::new(), Vec::new()));
                    };
                    let user_cart = user_cart.unwrap_or_else(|| Cart::empty(&user, now));
                    let products: Vec<String> = guest_cart.lines.iter().map(|l| l.product_id.clone()).collect();
                    let offers = inventory::offers(c, &products).await?;
                    let (lines, capped) = rules::merge_lines(&guest_cart, &user_cart, &offers, &self.limits);
                    let emptied = guest_cart.changed(Vec::new(), now, self.expiry(&guest, now));
                    let merged = user_cart.changed(lines, now, self.expiry(&user, now));
                    let ((emptied_write, emptied_event), (merged_write, merged_event)) =
                        (carts::save(&emptied)?, carts::save(&merged)?);
                    let writes = Writes::of(emptied_write).and_boxed(merged_write);
                    let writes = self.with_event(self.with_event(writes, emptied_event), merged_event);
                    let saved = writes.run(c, "merging carts").await?;
                    // A first change of the user's cart from another device came first: the
                    // error rolls the emptied guest cart back too, and the merge starts again.
                    if saved.contains(&0) {
                        return Err(too_busy());
                    }
                    Ok::<_, CartError>((vec![emptied, merged], capped))
                })
                .await;
            match merged {
                Ok((changed, capped)) => {
                    for cart in changed {
                        self.remember(cart).await;
                    }
                    return Ok(capped);
                }
                Err(CartError::Store(StoreError::Conflict(_))) => continue,
                Err(err) => return Err(err),
            }
        }
        Err(too_busy())
    }

    /// The viewer's cart now, then every change to it, in increasing versions, from any device.
    pub async fn watch(&self, viewer: Option<&Viewer>) -> CartResult<BoxStream<'static, Arc<Cart>>> {
        let shopper = Viewer::shopper_or(viewer, CartError::Unauthenticated)?;
        // Subscribe before reading, so that no change between the two is missed.
        let deliveries = self.bus.subscribe(&cart_topic(&shopper));
        let current = self.load(&shopper).await?;
        let service = self.clone();
        let changes = stream::unfold(
            (deliveries, current.version, service, shopper),
            |(mut deliveries, last, service, shopper)| async move {
                loop {
                    let newer = match deliveries.next().await? {
                        Delivery::Event(event) => serde_json::from_str::<Cart>(&event.payload).ok().map(Arc::new),
                        // Missed some: the current state says everything they would have.
                        Delivery::Lagged => service.load(&shopper).await.ok(),
                    };
                    if let Some(cart) = newer.filter(|cart| cart.version > last) {
                        let version = cart.version;
                        return Some((cart, (deliveries, version, service, shopper)));
                    }
                }
            },
        );
        Ok(stream::once(future::ready(current)).chain(changes).boxed())
    }

    /// Deletes expired guest carts and carts untouched for the retention period.
    pub async fn sweep_expired(&self) -> CartResult<u64> {
        let now = self.clock.now();
        Ok(self.db.atomically(async |c| carts::delete_expired(c, now, now - self.limits.retention).await).await?)
    }

    /// `writes` that store a cart change (here, or in checkout, which takes the bought lines),
    /// with the change's event.
    pub fn with_event(&self, writes: Writes, event: OutboxRow) -> Writes {
        self.announce.with_event(writes, event)
    }

    /// Takes an order's lines out of the shopper's cart: what a purchase leaves, when the cart
    /// changed between checkout's read and the order.
    pub async fn take_bought(&self, shopper: &Shopper, bought: &[CartLine]) -> CartResult<()> {
        self.change(shopper, None, |cart, _, _| {
            let remaining = rules::without_bought(&cart.lines, bought);
            Ok((remaining != cart.lines).then_some(remaining))
        })
        .await
        .map(drop)
    }

    /// Keeps a cart another service changed (checkout takes the bought lines) in the cache.
    pub async fn remember(&self, cart: Cart) {
        self.keep(&Arc::new(cart), None).await;
    }

    /// Keeps `cart` in the cache; `json` is the cart serialized, when there is one at hand.
    async fn keep(&self, cart: &Arc<Cart>, json: Option<&str>) {
        if let Err(err) = self.cache.put(cart, json, CACHE_TTL).await {
            tracing::warn!(error = %err, "cart cache unavailable; the store stays the source of truth");
        }
    }

    /// When a cart changed `now` expires: a guest's after the guest TTL, a user's never.
    pub fn expiry(&self, owner: &Shopper, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        owner.is_guest().then(|| now + self.limits.guest_ttl)
    }

    /// The shopper's cart as the cache (or else the store) has it; empty if there is none.
    pub async fn load(&self, shopper: &Shopper) -> CartResult<Arc<Cart>> {
        let cached = match self.cache.get(shopper).await {
            Ok(hit) => hit,
            Err(err) => {
                tracing::warn!(error = %err, "cart cache unavailable; reading the store");
                None
            }
        };
        match cached {
            Some(cart) => Ok(self.current(cart)),
            None => self.reload(shopper).await,
        }
    }

    async fn reload(&self, shopper: &Shopper) -> CartResult<Arc<Cart>> {
        let now = self.clock.now();
        let stored = self.db.with_conn(async |c| carts::of(c, shopper).await).await?;
        let cart = Arc::new(stored.unwrap_or_else(|| Cart::empty(shopper, now)));
        self.keep(&cart, None).await;
        Ok(self.current(cart))
    }

    /// An expired cart shows (and continues) empty, at its stored version.
    fn current(&self, cart: Arc<Cart>) -> Arc<Cart> {
        if cart.is_expired(self.clock.now()) {
            Arc::new(Cart { lines: Vec::new(), ..Cart::clone(&cart) })
        } else {
            cart
        }
    }

    fn check_quantity(&self, quantity: i32, min: i32) -> CartResult<()> {
        let max = self.limits.max_line_quantity;
        if (min..=max).contains(&quantity) {
            Ok(())
        } else {
            Err(CartError::invalid("quantity", format!("must be {min} to {max}")))
        }
    }

    /// The script of a cart change: read the cart and the product's offer (as browsing sees it;
    /// checkout checks the store's), let `decide` give the new lines (`None`: unchanged), write
    /// the next version with its event if the cart is still at the version read, else read again.
    async fn change<F>(&self, shopper: &Shopper, product_id: Option<&str>, decide: F) -> CartResult<Arc<Cart>>
    where
        F: Fn(&Cart, Option<&Offer>, DateTime<Utc>) -> CartResult<Option<Vec<CartLine>>>,
    {
        let mut cart = self.load(shopper).await?;
        for _ in 0..ATTEMPTS {
            let offer = match product_id {
                Some(id) => self.catalog.offers(&[id.to_owned()]).await?.remove(id),
                None => None,
            };
            let now = self.clock.now();
            let Some(lines) = decide(&cart, offer.as_ref(), now)? else { return Ok(cart) };
            let changed = Arc::new(cart.changed(lines, now, self.expiry(shopper, now)));
            let change = CartChange::of(&changed)?;
            // The event is the cart as the cache keeps it: serialized once.
            let json = change.document().to_owned();
            if self.rounds.write(change, "changing a cart").await.map_err(CartError::Store)? {
                self.keep(&changed, Some(&json)).await;
                return Ok(changed);
            }
            cart = self.reload(shopper).await?;
        }
        Err(too_busy())
    }
}

fn validate_product(product_id: &str) -> CartResult<()> {
    validate_id("productId", product_id).map_err(|_| CartError::invalid("productId", "malformed product id"))
}
