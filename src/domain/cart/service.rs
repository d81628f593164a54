use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream};
use futures::{StreamExt, future};
use tokio::sync::Notify;

use super::model::{CappedLine, Cart, CartLine, CartOwner};
use super::{CartError, StockShortage};
use crate::domain::auth::Viewer;
use crate::domain::catalog::model::validate_id;
use crate::domain::clock::Clock;
use crate::domain::events::{Delivery, EventBus, cart_topic};
use crate::domain::ports::{Cache, CartDecision, CartKey, CartView, ProductOffer, Store};

pub type CartResult<T> = Result<T, CartError>;

const CACHE_TTL: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub struct CartLimits {
    pub max_lines: usize,
    pub max_line_quantity: i32,
    /// A guest cart expires this long after its last change.
    pub guest_ttl: chrono::Duration,
    /// Any cart untouched this long is deleted.
    pub retention: chrono::Duration,
}

#[derive(Clone)]
pub struct CartService {
    store: Arc<dyn Store>,
    cache: Arc<dyn Cache>,
    bus: Arc<dyn EventBus>,
    clock: Arc<dyn Clock>,
    limits: CartLimits,
    /// Woken after every change so the outbox dispatcher publishes at once.
    outbox_ready: Arc<Notify>,
}

fn owner_of(viewer: Option<&Viewer>) -> CartResult<CartOwner> {
    viewer.map(CartOwner::of).ok_or(CartError::Unauthenticated)
}

fn cache_key(owner: &CartOwner) -> String {
    format!("cart:{}", owner.0)
}

impl CartService {
    pub fn new(
        store: Arc<dyn Store>,
        cache: Arc<dyn Cache>,
        bus: Arc<dyn EventBus>,
        clock: Arc<dyn Clock>,
        limits: CartLimits,
        outbox_ready: Arc<Notify>,
    ) -> Self {
        Self { store, cache, bus, clock, limits, outbox_ready }
    }

    /// The viewer's cart; an empty one if there is none yet (or it expired).
    pub async fn cart(&self, viewer: Option<&Viewer>) -> CartResult<Cart> {
        self.load(&owner_of(viewer)?).await
    }

    /// Adds `quantity` to the product's line, creating it at today's price.
    pub async fn add_item(&self, viewer: Option<&Viewer>, product_id: &str, quantity: i32) -> CartResult<Cart> {
        let owner = owner_of(viewer)?;
        validate_product(product_id)?;
        self.check_quantity(quantity, 1)?;
        let (product_id, offer_ids) = (product_id.to_owned(), [product_id.to_owned()]);
        let (limits, now) = (self.limits.clone(), self.clock.now());
        self.change_one(&owner, &offer_ids, move |cart, offers| {
            let current = cart.line(&product_id).map_or(0, |l| l.quantity);
            let offer = offers.get(&product_id).ok_or_else(|| CartError::ProductNotFound(product_id.clone()))?;
            with_quantity(cart, offer, &product_id, current.saturating_add(quantity), now, &limits).map(Some)
        })
        .await
    }

    /// Sets the line's quantity; 0 removes it.
    pub async fn update_item(&self, viewer: Option<&Viewer>, product_id: &str, quantity: i32) -> CartResult<Cart> {
        let owner = owner_of(viewer)?;
        validate_product(product_id)?;
        self.check_quantity(quantity, 0)?;
        let (product_id, offer_ids) = (product_id.to_owned(), [product_id.to_owned()]);
        let (limits, now) = (self.limits.clone(), self.clock.now());
        self.change_one(&owner, &offer_ids, move |cart, offers| {
            let offer = offers.get(&product_id).ok_or_else(|| CartError::ProductNotFound(product_id.clone()))?;
            match quantity {
                0 => Ok(without(cart, &product_id)),
                wanted if cart.line(&product_id).is_some_and(|l| l.quantity == wanted) => Ok(None),
                wanted => with_quantity(cart, offer, &product_id, wanted, now, &limits).map(Some),
            }
        })
        .await
    }

    /// Removes the line; removing a line that is not there changes nothing.
    pub async fn remove_item(&self, viewer: Option<&Viewer>, product_id: &str) -> CartResult<Cart> {
        let owner = owner_of(viewer)?;
        validate_product(product_id)?;
        let product_id = product_id.to_owned();
        self.change_one(&owner, &[], move |cart, _| Ok(without(cart, &product_id))).await
    }

    /// Moves the guest session's cart into the user's: quantities of the same product add up,
    /// capped by stock and the size limits; the guest cart is left empty. Says which lines were
    /// capped. An empty or absent guest cart changes nothing.
    pub async fn merge_guest_cart(&self, guest: &Viewer, user: &Viewer) -> CartResult<Vec<CappedLine>> {
        let (guest, user) = (CartOwner::of(guest), CartOwner::of(user));
        let guest_products: Vec<String> = match self.store.cart(&guest).await? {
            Some(cart) if guest.is_guest() && !cart.lines.is_empty() => {
                cart.lines.into_iter().map(|l| l.product_id).collect()
            }
            _ => return Ok(Vec::new()),
        };
        let capped = Arc::new(Mutex::new(Vec::new()));
        let report = capped.clone();
        let (limits, now) = (self.limits.clone(), self.clock.now());
        let keys = [self.key(&guest, now), self.key(&user, now)];
        let decide: CartDecision = Box::new(move |view: &CartView| {
            let [guest_cart, user_cart] = &view.carts[..] else { return Ok(vec![None, None]) };
            if guest_cart.lines.is_empty() {
                return Ok(vec![None, None]);
            }
            let (lines, capped_lines) = merge_lines(guest_cart, user_cart, &view.offers, &limits);
            *report.lock().unwrap_or_else(PoisonError::into_inner) = capped_lines;
            Ok(vec![Some(Vec::new()), Some(lines)])
        });
        let carts = self.store.change_carts(&keys, &guest_products, now, decide).await?;
        self.after_change(&carts).await;
        let capped = capped.lock().unwrap_or_else(PoisonError::into_inner).clone();
        Ok(capped)
    }

    /// The viewer's cart now, then every change to it, in increasing versions, from any device.
    pub async fn watch(&self, viewer: Option<&Viewer>) -> CartResult<BoxStream<'static, Cart>> {
        let owner = owner_of(viewer)?;
        // Subscribe before reading, so that no change between the two is missed.
        let deliveries = self.bus.subscribe(&cart_topic(&owner.0));
        let current = self.load(&owner).await?;
        let service = self.clone();
        let changes = stream::unfold(
            (deliveries, current.version, service, owner),
            |(mut deliveries, last, service, owner)| async move {
                loop {
                    let newer = match deliveries.next().await? {
                        Delivery::Event(event) => serde_json::from_str::<Cart>(&event.payload).ok(),
                        // Missed some: the current state says everything they would have.
                        Delivery::Lagged => service.load(&owner).await.ok(),
                    };
                    if let Some(cart) = newer.filter(|cart| cart.version > last) {
                        let version = cart.version;
                        return Some((cart, (deliveries, version, service, owner)));
                    }
                }
            },
        );
        Ok(stream::once(future::ready(current)).chain(changes).boxed())
    }

    /// Re-reads the owner's cart into the cache after another domain changed it in the store
    /// (checkout removes the bought lines).
    pub async fn refresh(&self, owner: &CartOwner) -> CartResult<()> {
        if let Some(cart) = self.store.cart(owner).await? {
            self.remember(&cart).await;
        }
        Ok(())
    }

    /// Deletes expired guest carts and carts untouched for the retention period.
    pub async fn sweep_expired(&self) -> CartResult<u64> {
        let now = self.clock.now();
        Ok(self.store.delete_expired_carts(now, now - self.limits.retention).await?)
    }

    async fn load(&self, owner: &CartOwner) -> CartResult<Cart> {
        let now = self.clock.now();
        let cached = match self.cache.get(&cache_key(owner)).await {
            Ok(hit) => hit.and_then(|json| serde_json::from_str::<Cart>(&json).ok()),
            Err(err) => {
                tracing::warn!(error = %err, "cart cache unavailable; reading the store");
                None
            }
        };
        let cart = match cached {
            Some(cart) => cart,
            None => {
                let cart = self.store.cart(owner).await?.unwrap_or_else(|| Cart::empty(owner, now));
                self.remember(&cart).await;
                cart
            }
        };
        Ok(if cart.is_expired(now) { Cart { lines: Vec::new(), ..cart } } else { cart })
    }

    async fn remember(&self, cart: &Cart) {
        let Ok(json) = serde_json::to_string(cart) else { return };
        if let Err(err) = self.cache.put_versioned(&cache_key(&cart.owner), cart.version, &json, CACHE_TTL).await {
            tracing::warn!(error = %err, "cart cache unavailable; the store stays the source of truth");
        }
    }

    fn key(&self, owner: &CartOwner, now: DateTime<Utc>) -> CartKey {
        CartKey { owner: owner.clone(), expires_at: owner.is_guest().then(|| now + self.limits.guest_ttl) }
    }

    fn check_quantity(&self, quantity: i32, min: i32) -> CartResult<()> {
        let max = self.limits.max_line_quantity;
        if (min..=max).contains(&quantity) {
            Ok(())
        } else {
            Err(CartError::invalid("quantity", format!("must be {min} to {max}")))
        }
    }

    /// Changes one cart with `decide(cart, offers)` (which returns its new lines, or `None`).
    async fn change_one<F>(&self, owner: &CartOwner, offer_ids: &[String], decide: F) -> CartResult<Cart>
    where
        F: FnOnce(&Cart, &std::collections::HashMap<String, ProductOffer>) -> CartResult<Option<Vec<CartLine>>>
            + Send
            + 'static,
    {
        let now = self.clock.now();
        let decide: CartDecision = Box::new(move |view: &CartView| {
            let cart = view.carts.first().ok_or(CartError::Unauthenticated)?;
            Ok(vec![decide(cart, &view.offers)?])
        });
        let carts = self.store.change_carts(&[self.key(owner, now)], offer_ids, now, decide).await?;
        self.after_change(&carts).await;
        carts.into_iter().next().ok_or(CartError::Unauthenticated)
    }

    async fn after_change(&self, carts: &[Cart]) {
        for cart in carts {
            self.remember(cart).await;
        }
        self.outbox_ready.notify_one();
    }
}

fn validate_product(product_id: &str) -> CartResult<()> {
    validate_id("productId", product_id).map_err(|_| CartError::invalid("productId", "malformed product id"))
}

/// The cart's lines with the product at `wanted` units, if stock and limits allow.
fn with_quantity(
    cart: &Cart,
    offer: &ProductOffer,
    product_id: &str,
    wanted: i32,
    now: DateTime<Utc>,
    limits: &CartLimits,
) -> CartResult<Vec<CartLine>> {
    if wanted > limits.max_line_quantity {
        return Err(CartError::invalid("quantity", format!("at most {} per line", limits.max_line_quantity)));
    }
    if wanted > offer.available {
        let shortage =
            StockShortage { product_id: product_id.to_owned(), requested: wanted, available: offer.available };
        return Err(CartError::OutOfStock(vec![shortage]));
    }
    let mut lines = cart.lines.clone();
    if let Some(line) = lines.iter_mut().find(|l| l.product_id == product_id) {
        line.quantity = wanted;
        return Ok(lines);
    }
    if lines.len() >= limits.max_lines {
        return Err(CartError::invalid("productId", format!("a cart holds at most {} lines", limits.max_lines)));
    }
    if let Some(first) = lines.first()
        && first.unit_price.currency != offer.price.currency
    {
        return Err(CartError::invalid("productId", format!("this cart holds {} prices", first.unit_price.currency)));
    }
    lines.push(CartLine {
        product_id: product_id.to_owned(),
        quantity: wanted,
        unit_price: offer.price.clone(),
        added_at: now,
    });
    Ok(lines)
}

fn without(cart: &Cart, product_id: &str) -> Option<Vec<CartLine>> {
    cart.line(product_id)?;
    Some(cart.lines.iter().filter(|l| l.product_id != product_id).cloned().collect())
}

/// The user's lines after taking in the guest's, and the guest lines that could not be kept whole.
fn merge_lines(
    guest: &Cart,
    user: &Cart,
    offers: &std::collections::HashMap<String, ProductOffer>,
    limits: &CartLimits,
) -> (Vec<CartLine>, Vec<CappedLine>) {
    let mut lines = user.lines.clone();
    let mut capped = Vec::new();
    for incoming in &guest.lines {
        let available = offers.get(&incoming.product_id).map_or(0, |o| o.available.max(0));
        let limit = limits.max_line_quantity.min(available);
        let (requested, kept) = match lines.iter_mut().find(|l| l.product_id == incoming.product_id) {
            Some(line) => {
                let requested = line.quantity + incoming.quantity;
                // Never take away what the user already had.
                line.quantity = requested.min(limit).max(line.quantity);
                (requested, line.quantity)
            }
            None => {
                let same_currency = lines.first().is_none_or(|l| l.unit_price.currency == incoming.unit_price.currency);
                let kept =
                    if lines.len() < limits.max_lines && same_currency { incoming.quantity.min(limit) } else { 0 };
                if kept > 0 {
                    lines.push(CartLine { quantity: kept, ..incoming.clone() });
                }
                (incoming.quantity, kept)
            }
        };
        if kept < requested {
            capped.push(CappedLine { product_id: incoming.product_id.clone(), requested, kept });
        }
    }
    (lines, capped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::Money;

    fn line(product: &str, quantity: i32) -> CartLine {
        CartLine {
            product_id: product.to_owned(),
            quantity,
            unit_price: Money { cents: 100, currency: "USD".to_owned() },
            added_at: Utc::now(),
        }
    }

    fn cart(owner: &str, lines: Vec<CartLine>) -> Cart {
        Cart { lines, ..Cart::empty(&CartOwner(owner.to_owned()), Utc::now()) }
    }

    fn offers(stock: &[(&str, i32)]) -> std::collections::HashMap<String, ProductOffer> {
        stock
            .iter()
            .map(|(id, available)| {
                (
                    id.to_string(),
                    ProductOffer { price: Money { cents: 100, currency: "USD".into() }, available: *available },
                )
            })
            .collect()
    }

    const LIMITS: CartLimits = CartLimits {
        max_lines: 2,
        max_line_quantity: 5,
        guest_ttl: chrono::Duration::hours(24),
        retention: chrono::Duration::days(90),
    };

    #[test]
    fn merge_sums_lines_and_reports_what_it_capped() {
        let guest = cart("guest:g", vec![line("a", 3), line("b", 4), line("c", 1)]);
        let user = cart("user:u", vec![line("a", 4)]);
        let (lines, capped) = merge_lines(&guest, &user, &offers(&[("a", 100), ("b", 2), ("c", 9)]), &LIMITS);
        let quantities: Vec<(&str, i32)> = lines.iter().map(|l| (l.product_id.as_str(), l.quantity)).collect();
        assert_eq!(quantities, [("a", 5), ("b", 2)], "a capped by the line limit, b by stock, c by the line count");
        assert_eq!(
            capped,
            [
                CappedLine { product_id: "a".into(), requested: 7, kept: 5 },
                CappedLine { product_id: "b".into(), requested: 4, kept: 2 },
                CappedLine { product_id: "c".into(), requested: 1, kept: 0 },
            ]
        );
    }

    #[test]
    fn merge_never_shrinks_the_users_own_line() {
        let guest = cart("guest:g", vec![line("a", 1)]);
        let user = cart("user:u", vec![line("a", 4)]);
        let (lines, capped) = merge_lines(&guest, &user, &offers(&[("a", 2)]), &LIMITS);
        assert_eq!(lines[0].quantity, 4);
        assert_eq!(capped, [CappedLine { product_id: "a".into(), requested: 5, kept: 4 }]);
    }

    #[test]
    fn quantities_are_checked_against_stock_and_limits() {
        let now = Utc::now();
        let empty = cart("guest:g", vec![]);
        let offer = &offers(&[("a", 3)])["a"];
        assert!(
            matches!(with_quantity(&empty, offer, "a", 4, now, &LIMITS), Err(CartError::OutOfStock(s)) if s[0].available == 3)
        );
        assert!(matches!(with_quantity(&empty, offer, "a", 6, now, &LIMITS), Err(CartError::InvalidInput { .. })));
        let full = cart("guest:g", vec![line("x", 1), line("y", 1)]);
        assert!(matches!(
            with_quantity(&full, offer, "a", 1, now, &LIMITS),
            Err(CartError::InvalidInput { field: "productId", .. })
        ));
        assert_eq!(with_quantity(&full, offer, "x", 3, now, &LIMITS).expect("in stock")[0].quantity, 3);
    }
}
