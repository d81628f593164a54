//! The store adapter's aggregates and its `Writes`, each exercised on both backends.

use chrono::{Duration, TimeZone, Utc};
use shop::db::outbox::OutboxRow;
use shop::db::{Writes, carts, catalog, checkout, inventory, users};
use shop::domain::auth::User;
use shop::domain::auth::model::{NewRefreshToken, RefreshTokenUse};
use shop::domain::cart::Cart;
use shop::domain::catalog::model::{Category, ProductRecord, category_levels, parse_category_path};
use shop::domain::catalog::{Attribute, CatalogError, Product};
use shop::domain::checkout::{CheckoutSession, CheckoutStatus, Totals};
use shop::domain::primitives::{Money, Shopper};
use shop::ports::StoreError;

use crate::helpers::{Backend, TestDatabase, cart_line};
use crate::on_both_backends;

fn record(id: &str, category: Option<&Category>, stock: Option<i32>) -> ProductRecord {
    let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).single().expect("time");
    ProductRecord {
        product: Product {
            id: id.to_owned(),
            title: format!("Title of {id}"),
            description: "A description.".to_owned(),
            brand: Some("Brightwell".to_owned()),
            category_id: category.map(|c| c.id.clone()),
            price: Money { cents: 1999, currency: "USD".to_owned() },
            rating: Some(4.5),
            review_count: 12,
            popularity: 120,
            attributes: vec![Attribute { name: "color".to_owned(), value: "Red".to_owned() }],
            created_at: at,
            updated_at: at,
        },
        stock,
    }
}

fn levels(path: &str) -> Vec<Category> {
    category_levels(&parse_category_path(path).expect("path"))
}

fn user(email: &str, is_admin: bool) -> User {
    User {
        id: format!("u-{}", uuid::Uuid::new_v4().simple()),
        email: email.to_owned(),
        name: "Someone".to_owned(),
        password_hash: "hash".to_owned(),
        is_admin,
        created_at: Utc::now(),
    }
}

on_both_backends!(instances_starting_together_both_migrate_and_come_up, |backend: Backend| async move {
    let db = TestDatabase::new(backend).await;
    let (a, b, c) = tokio::join!(db.pool(), db.pool(), db.pool());
    for pool in [a, b, c] {
        pool.ping().await.expect("migrated and answering");
    }
});

on_both_backends!(catalog_upsert_and_reads, |backend: Backend| async move {
    let db = TestDatabase::new(backend).await;
    let store = db.catalog().await;
    assert_eq!(store.product_count().await.expect("count"), 0);

    let sofas = levels("Home/Furniture/Sofas");
    let leaf = sofas.last().cloned().expect("leaf");
    store
        .write_records(&sofas, &[record("p1", Some(&leaf), Some(5)), record("p2", Some(&leaf), None)])
        .await
        .expect("insert");
    assert_eq!(store.product_count().await.expect("count"), 2);

    let mut products = store.products_by_ids(&["p1".into(), "p2".into(), "nope".into()]).await.expect("load");
    products.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(products.len(), 2);
    assert_eq!(*products[0], record("p1", Some(&leaf), None).product, "a product survives the round trip exactly");

    let roots = store.root_categories().await.expect("roots");
    assert_eq!(roots.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(), ["Home"]);
    let children = store.category_children(&[roots[0].id.clone()]).await.expect("children");
    assert_eq!(children[&roots[0].id].iter().map(|c| c.path.as_str()).collect::<Vec<_>>(), ["Home/Furniture"]);
    let by_id = store.categories_by_ids(std::slice::from_ref(&leaf.id)).await.expect("by id");
    assert_eq!(by_id, vec![leaf.clone()]);
    let by_path = store.categories_by_paths(&["Home/Furniture/Sofas".into()]).await.expect("by path");
    assert_eq!(by_path, vec![leaf.clone()]);

    let mut stock = store.stock_levels(&["p1".into(), "p2".into()]).await.expect("stock");
    stock.sort_by(|a, b| a.product_id.cmp(&b.product_id));
    assert_eq!((stock[0].available, stock[0].version), (5, 0));
    assert_eq!((stock[1].available, stock[1].version), (0, 0), "no stock given: a new product has none");

    // Re-import: fields replaced, categories not duplicated; stock replaced only where given.
    let mut changed = record("p1", Some(&leaf), Some(9));
    changed.product.title = "New title".to_owned();
    let p2_again = record("p2", Some(&leaf), None);
    store.write_records(&sofas, &[changed, p2_again]).await.expect("update");
    assert_eq!(store.products_by_ids(&["p1".into()]).await.expect("load")[0].title, "New title");
    let mut stock = store.stock_levels(&["p1".into(), "p2".into()]).await.expect("stock");
    stock.sort_by(|a, b| a.product_id.cmp(&b.product_id));
    assert_eq!((stock[0].available, stock[0].version), (9, 1));
    assert_eq!((stock[1].available, stock[1].version), (0, 0));
    assert_eq!(store.category_children(&[roots[0].id.clone()]).await.expect("children").len(), 1);
});

on_both_backends!(loading_more_products_than_a_statement_can_bind, |backend: Backend| async move {
    let db = TestDatabase::new(backend).await;
    let sofas = levels("Home/Furniture/Sofas");
    db.catalog().await.write_records(&sofas, &[record("p1", sofas.last(), Some(5))]).await.expect("insert");
    // Right after a big import the search indexer asks for every product it changed.
    let mut ids: Vec<String> = (0..70_000).map(|n| format!("missing-{n}")).collect();
    ids.push("p1".to_owned());
    let pool = db.pool().await;
    let documents = pool
        .with_conn(async |c| catalog::search_documents_by_ids(c, &ids).await)
        .await
        .expect("more ids than SQLite binds in one statement");
    assert_eq!(documents.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["p1"]);
});

on_both_backends!(stock_changes_bump_the_version_and_never_go_negative, |backend: Backend| async move {
    let db = TestDatabase::new(backend).await;
    let store = db.catalog().await;
    store.write_records(&[], &[record("p1", None, Some(3))]).await.expect("insert");
    store.set_stock("p1", 7).await.expect("set");
    assert_eq!(store.stock_levels(&["p1".into()]).await.expect("stock")[0].version, 1);
    assert!(matches!(store.set_stock("unknown", 7).await, Err(CatalogError::NotFound(_))));
    let pool = db.pool().await;
    let err = pool.with_conn(async |c| inventory::set_available(c, "p1", -1).await).await.expect_err("CHECK");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.stock_levels(&["p1".into()]).await.expect("stock")[0].available, 7);
});

on_both_backends!(a_batch_is_all_or_nothing, |backend: Backend| async move {
    let db = TestDatabase::new(backend).await;
    let store = db.catalog().await;
    // The second record names a category that does not exist: the foreign key fails the batch.
    let ghost = levels("Ghost").pop().expect("leaf");
    let err = store
        .write_records(&[], &[record("ok", None, Some(1)), record("bad", Some(&ghost), Some(1))])
        .await
        .expect_err("foreign key");
    assert!(matches!(err, CatalogError::Conflict(_)), "{err:?}");
    assert_eq!(store.product_count().await.expect("count"), 0, "nothing of the failed batch remains");
});

on_both_backends!(a_change_keeps_nothing_when_a_write_it_requires_changes_nothing, |backend: Backend| async move {
    let db = TestDatabase::new(backend).await;
    let store = db.catalog().await;
    store.write_records(&[], &[record("p1", None, Some(5)), record("p2", None, Some(5))]).await.expect("insert");
    let pool = db.pool().await;
    let now = Utc::now();
    let change = |wanted: i32| {
        Writes::new(inventory::reserve("p1", wanted))
            .require()
            .and(inventory::give_back("p2", 3, false))
            .event(OutboxRow::stock(&["p1".to_owned(), "p2".to_owned()], now).expect("event"))
    };
    let available = async || {
        let ids = ["p1".to_owned(), "p2".to_owned()];
        let levels = pool.with_conn(async |c| inventory::stock_levels(c, &ids).await).await.expect("stock");
        let mut available: Vec<_> = levels.iter().map(|l| (l.product_id.clone(), l.available)).collect();
        available.sort();
        available
    };
    // Claims what the outbox holds (so each look sees only what came since the last).
    let new_events = async || {
        let until = Utc::now() + Duration::hours(1);
        let claimed = pool.atomically(async |c| shop::db::outbox::claim(c, 500, Utc::now(), until).await);
        claimed.await.expect("outbox").len()
    };
    new_events().await;

    // Ten units are not there: the required reservation changes nothing, so neither does the rest.
    let refused = pool.atomically(async |c| change(10).run(c, "reserving").await).await;
    assert!(matches!(refused, Err(StoreError::Refused(_))), "{refused:?}");
    assert_eq!(available().await, [("p1".to_owned(), 5), ("p2".to_owned(), 5)]);
    assert_eq!(new_events().await, 0, "no event of a refused change");

    // The connection the refusal ran on serves the next change, which stands whole.
    let counts = pool.atomically(async |c| change(2).run(c, "reserving").await).await.expect("reserved");
    assert_eq!(counts, [1, 1]);
    assert_eq!(available().await, [("p1".to_owned(), 3), ("p2".to_owned(), 8)]);
    assert_eq!(new_events().await, 1, "the change's event");
});

on_both_backends!(users_and_admins, |backend: Backend| async move {
    let db = TestDatabase::new(backend).await;
    let pool = db.pool().await;
    let alice = pool.with_conn(async |c| users::insert_user(c, &user("alice@example.com", false)).await).await;
    let alice = alice.expect("insert");
    let err = pool
        .with_conn(async |c| users::insert_user(c, &user("alice@example.com", false)).await)
        .await
        .expect_err("duplicate email");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    pool.with_conn(async |c| {
        assert_eq!(users::user_by_email(c, "alice@example.com").await?, Some(alice.clone()));
        assert_eq!(users::user_by_email(c, "bob@example.com").await?, None);
        assert_eq!(users::users_by_ids(c, std::slice::from_ref(&alice.id)).await?, vec![alice.clone()]);

        let mut promotion = user("alice@example.com", true);
        promotion.password_hash = "new hash".to_owned();
        let promoted = users::upsert_admin(c, &promotion).await?;
        assert_eq!(
            (promoted.id.as_str(), promoted.is_admin, promoted.password_hash.as_str()),
            (alice.id.as_str(), true, "new hash")
        );
        assert!(users::upsert_admin(c, &user("root@example.com", true)).await?.is_admin);
        Ok::<_, StoreError>(())
    })
    .await
    .expect("users");
});

on_both_backends!(refresh_tokens_work_once_and_replay_is_detected, |backend: Backend| async move {
    let db = TestDatabase::new(backend).await;
    let pool = db.pool().await;
    pool.with_conn(async |c| {
        let alice = users::insert_user(c, &user("alice@example.com", false)).await?;
        let now = Utc::now();
        let token = |hash: &str, family: &str, expires_in: Duration| NewRefreshToken {
            token_hash: hash.to_owned(),
            user_id: alice.id.clone(),
            family_id: family.to_owned(),
            expires_at: now + expires_in,
            created_at: now,
        };
        users::insert_refresh_token(c, &token("h1", "f1", Duration::days(1))).await?;
        users::insert_refresh_token(c, &token("h2", "f1", Duration::days(1))).await?;
        users::insert_refresh_token(c, &token("old", "f2", Duration::seconds(-1))).await?;
        assert_eq!(
            users::use_refresh_token(c, "h1", now).await?,
            RefreshTokenUse::Fresh { user_id: alice.id.clone(), family_id: "f1".into() }
        );
        assert_eq!(users::use_refresh_token(c, "h1", now).await?, RefreshTokenUse::Replayed { family_id: "f1".into() });
        assert_eq!(users::use_refresh_token(c, "old", now).await?, RefreshTokenUse::Unknown, "expired");
        assert_eq!(users::use_refresh_token(c, "never", now).await?, RefreshTokenUse::Unknown);
        users::delete_refresh_family(c, "f1").await?;
        assert_eq!(users::use_refresh_token(c, "h2", now).await?, RefreshTokenUse::Unknown, "revoked with its family");
        Ok::<_, StoreError>(())
    })
    .await
    .expect("tokens");
    pool.ping().await.expect("ping");
});

on_both_backends!(each_sale_leaves_reserved_stock_once_whoever_settles_it, |backend: Backend| async move {
    let db = TestDatabase::new(backend).await;
    db.catalog()
        .await
        .write_records(&[], &[record("p1", None, Some(100)), record("p2", None, Some(100))])
        .await
        .expect("insert");
    let pool = db.pool().await;
    let reserved = async || {
        let ids = ["p1".to_owned(), "p2".to_owned()];
        let mut levels = pool.with_conn(async |c| inventory::stock_levels(c, &ids).await).await.expect("stock");
        levels.sort_by(|a, b| a.product_id.cmp(&b.product_id));
        levels.iter().map(|l| (l.available, l.reserved)).collect::<Vec<_>>()
    };
    // An order reserves its units and sells them, as a checkout and its order do.
    let order = async |n: i32| {
        let (product, quantity) = if n % 2 == 0 { ("p1", 1) } else { ("p2", 2) };
        let order =
            inventory::sell(Writes::new(inventory::reserve(product, quantity)), &[cart_line(product, quantity)]);
        pool.atomically(async |c| order.run(c, "an order").await).await.expect("order");
    };
    for n in 0..10 {
        order(n).await;
    }
    assert_eq!(reserved().await, [(95, 0), (90, 0)], "sold units are not reserved before they are settled");

    // Thirty more orders while four settlers take what is pending: each sale is taken by
    // exactly one of them.
    let ordering = std::sync::atomic::AtomicBool::new(true);
    let orders = async {
        for n in 10..40 {
            order(n).await;
            tokio::task::yield_now().await;
        }
        ordering.store(false, std::sync::atomic::Ordering::SeqCst);
    };
    let settler = async || {
        let mut settled = 0;
        loop {
            let last_round = !ordering.load(std::sync::atomic::Ordering::SeqCst);
            settled += pool.transaction(async |c| inventory::settle_sales(c).await).await.expect("settle");
            if last_round {
                return settled;
            }
            tokio::task::yield_now().await;
        }
    };
    let (_, settled) = futures::join!(orders, futures::future::join_all((0..4).map(|_| settler())));
    assert_eq!(settled.iter().sum::<usize>(), 40, "every sale settled once");
    assert!(!pool.with_conn(async |c| inventory::any_unsettled(c).await).await.expect("look"));
    // With nothing pending, the stock rows themselves hold these counts: a sale taken twice
    // would have broken the non-negative check, one deleted but not applied would show here.
    assert_eq!(reserved().await, [(80, 0), (60, 0)]);
});

mod carts_writes_and_outbox {
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use futures::StreamExt;
    use futures::stream::BoxStream;
    use shop::db::Pool;
    use shop::domain::auth::Viewer;
    use shop::domain::cart::CartLimits;
    use shop::domain::clock::SystemClock;
    use shop::domain::events::cart_topic;
    use shop::kv::{LocalBus, LocalCartCache};
    use shop::ports::{BusError, Delivery, Event, EventBus};
    use shop::services::cart::CartService;
    use shop::services::catalog::CatalogService;
    use shop::workers::dispatch_pending;

    use super::*;

    /// Records what it publishes; can be told to fail.
    #[derive(Default)]
    struct RecordingBus {
        published: Mutex<Vec<Event>>,
        failing: Mutex<bool>,
    }

    #[async_trait]
    impl EventBus for RecordingBus {
        async fn publish(&self, events: &[Event]) -> Result<(), BusError> {
            if *self.failing.lock().expect("lock") {
                return Err(BusError("down".to_owned()));
            }
            self.published.lock().expect("lock").extend_from_slice(events);
            Ok(())
        }

        fn subscribe(&self, _topic: &str) -> BoxStream<'static, Delivery> {
            Box::pin(futures::stream::empty())
        }

        fn reaches_other_instances(&self) -> bool {
            true
        }
    }

    /// Stores `cart` if the store still holds the version before it; the rows it changed.
    async fn save(pool: &Pool, cart: &Cart) -> usize {
        let (write, event) = carts::save(cart).expect("save");
        pool.atomically(async |c| Writes::of(write).event(event).run(c, "saving a cart").await).await.expect("write")[0]
    }

    on_both_backends!(cart_saves_are_versioned_and_evented_once, |backend: Backend| async move {
        let db = TestDatabase::new(backend).await;
        db.catalog().await.write_records(&[], &[record("p1", None, Some(5))]).await.expect("catalog");
        let pool = db.pool().await;
        let owner = Shopper::User("u1".into());
        assert!(pool.with_conn(async |c| carts::of(c, &owner).await).await.expect("read").is_none());

        // Microseconds, as both backends store them.
        let now = shop::ports::Clock::now(&shop::domain::clock::SystemClock);
        let first = Cart::empty(&owner, now).changed(vec![cart_line("p1", 2)], now, None);
        assert_eq!(save(&pool, &first).await, 1);
        assert_eq!(pool.with_conn(async |c| carts::of(c, &owner).await).await.expect("read"), Some(first.clone()));
        assert_eq!(save(&pool, &first).await, 0, "a second writer of version 1 changes nothing");
        let second = first.changed(vec![cart_line("p1", 3)], now, None);
        assert_eq!(save(&pool, &second).await, 1);
        assert_eq!(save(&pool, &second).await, 0, "a stale version 2 changes nothing");

        let bus = RecordingBus::default();
        assert_eq!(dispatch_pending(&pool, &bus, now).await.expect("dispatch"), 3, "the catalog event and two carts'");
        assert_eq!(dispatch_pending(&pool, &bus, now).await.expect("dispatch"), 0, "claimed once");
        let published = bus.published.lock().expect("lock").clone();
        assert_eq!((published[0].topic.as_str(), published[0].payload.as_str()), ("catalog.products", r#"["p1"]"#));
        assert_eq!(published[1].topic, "cart.user:u1");
        assert!(published[1].payload.contains("\"version\":1") && published[2].payload.contains("\"version\":2"));
    });

    on_both_backends!(refused_writes_leave_nothing_behind, |backend: Backend| async move {
        let db = TestDatabase::new(backend).await;
        db.catalog().await.write_records(&[], &[record("p1", None, Some(2))]).await.expect("catalog");
        let pool = db.pool().await;
        let now = Utc::now();
        let session = CheckoutSession {
            id: "chk-1".into(),
            owner: Shopper::Guest("g".into()),
            status: CheckoutStatus::Reserved,
            lines: vec![cart_line("p1", 3)],
            totals: Totals { subtotal: 1, shipping: 0, tax: 0, total: 1, currency: "USD".into() },
            saga_id: None,
            expires_at: now + Duration::minutes(10),
            created_at: now,
            flash_sale_id: None,
        };
        // The conditional reservation takes nothing (3 asked, 2 there): the transaction that
        // refuses it takes the session and the event back with it.
        let refused = pool
            .transaction(async |c| {
                let changed = Writes::new(checkout::insert(&session)?)
                    .and(inventory::reserve("p1", 3))
                    .event(OutboxRow::catalog(&["p1".to_owned()], now)?)
                    .run(c, "reserving")
                    .await?;
                assert_eq!(changed, [1, 0], "the rows each write changed");
                Err::<(), _>(StoreError::Conflict("short".into()))
            })
            .await;
        assert!(refused.is_err());
        assert!(pool.with_conn(async |c| checkout::by_id(c, "chk-1").await).await.expect("read").is_none());
        let bus = RecordingBus::default();
        assert_eq!(dispatch_pending(&pool, &bus, now).await.expect("dispatch"), 1, "only the catalog load's event");
    });

    on_both_backends!(unpublished_events_survive_a_failing_bus, |backend: Backend| async move {
        let db = TestDatabase::new(backend).await;
        db.catalog().await.write_records(&[], &[record("p1", None, Some(5))]).await.expect("catalog");
        let pool = db.pool().await;
        let now = Utc::now();
        let mut cart = Cart::empty(&Shopper::Guest("g1".into()), now);
        for quantity in 1..=3 {
            cart = cart.changed(vec![cart_line("p1", quantity)], now, None);
            assert_eq!(save(&pool, &cart).await, 1);
        }
        let bus = RecordingBus::default();
        *bus.failing.lock().expect("lock") = true;
        assert!(dispatch_pending(&pool, &bus, now).await.is_err());
        *bus.failing.lock().expect("lock") = false;
        assert_eq!(dispatch_pending(&pool, &bus, now).await.expect("dispatch"), 4);
        let versions: Vec<bool> = bus
            .published
            .lock()
            .expect("lock")
            .iter()
            .filter(|e| e.topic.starts_with("cart."))
            .enumerate()
            .map(|(i, e)| e.payload.contains(&format!("\"version\":{}", i + 1)))
            .collect();
        assert_eq!(versions, [true, true, true], "oldest first");
        let cleaned = |before| {
            let pool = pool.clone();
            async move { pool.with_conn(async |c| shop::db::outbox::delete_published(c, before).await).await }
        };
        assert_eq!(cleaned(now - Duration::seconds(1)).await.expect("clean"), 0);
        // The cart events went when they were published; the catalog load's waits for the sweep.
        assert_eq!(cleaned(now + Duration::seconds(1)).await.expect("clean"), 1);
    });

    // A dispatcher that dies between claiming a batch and publishing it: nobody else publishes
    // the batch while the claim holds, and the next dispatcher does once it lapses.
    on_both_backends!(events_of_a_dead_dispatcher_go_out_when_its_claim_lapses, |backend: Backend| async move {
        let db = TestDatabase::new(backend).await;
        db.catalog().await.write_records(&[], &[record("p1", None, Some(5))]).await.expect("catalog");
        let pool = db.pool().await;
        let now = Utc::now();
        let held = pool
            .atomically(async |c| shop::db::outbox::claim(c, 500, now, now + Duration::seconds(30)).await)
            .await
            .expect("claim");
        assert_eq!(held.len(), 1, "the catalog load's event, claimed by a dispatcher that then dies");
        let bus = RecordingBus::default();
        assert_eq!(dispatch_pending(&pool, &bus, now + Duration::seconds(29)).await.expect("dispatch"), 0);
        assert_eq!(dispatch_pending(&pool, &bus, now + Duration::seconds(31)).await.expect("dispatch"), 1);
        assert_eq!(dispatch_pending(&pool, &bus, now + Duration::seconds(90)).await.expect("dispatch"), 0, "once");
        assert_eq!(bus.published.lock().expect("lock").len(), 1);
    });

    /// A cart service of its own (a device's instance: its own cache) over `pool` and `bus`.
    fn cart_service(pool: Pool, bus: Arc<dyn EventBus>) -> CartService {
        let limits = CartLimits {
            max_lines: 10,
            max_line_quantity: 99,
            guest_ttl: Duration::hours(24),
            retention: Duration::days(90),
        };
        let catalog = CatalogService::new(pool.clone(), Arc::new(SystemClock), "USD".to_owned());
        CartService::new(pool, Arc::new(LocalCartCache::new(100)), bus, Arc::new(SystemClock), catalog, limits)
    }

    on_both_backends!(concurrent_changes_of_one_cart_lose_none, |backend: Backend| async move {
        let db = TestDatabase::new(backend).await;
        db.catalog().await.write_records(&[], &[record("p1", None, Some(50))]).await.expect("catalog");
        let viewer = Viewer::Guest { session_id: "race".into() };
        // Every device has a cache of its own, so each one's first read may be stale.
        let mut changes = Vec::new();
        for _ in 0..8 {
            let carts = cart_service(db.pool().await, Arc::new(LocalBus::default()));
            let viewer = viewer.clone();
            changes.push(tokio::spawn(async move { carts.add_item(Some(&viewer), "p1", 1).await }));
        }
        for change in changes {
            change.await.expect("task").expect("change");
        }
        let pool = db.pool().await;
        let cart = pool.with_conn(async |c| carts::of(c, &viewer.shopper()).await).await.expect("read");
        let cart = cart.expect("one cart");
        assert_eq!((cart.version, cart.lines[0].quantity), (8, 8));
    });

    // Signing in merges the guest cart while another device makes the user's first cart: the
    // merge's insert meets that cart and changes nothing, and the merge must start again rather
    // than commit the emptied guest cart alone. PostgreSQL only: there the merge finds no user
    // cart to lock while the device's insert is uncommitted; SQLite's writer lock keeps it out.
    #[tokio::test]
    async fn a_merge_that_meets_another_device_s_first_cart_loses_no_line() {
        if !crate::helpers::postgres_enabled() {
            return;
        }
        let db = TestDatabase::new(Backend::Postgres).await;
        db.catalog().await.write_records(&[], &[record("p1", None, Some(50))]).await.expect("catalog");
        let pool = db.pool().await;
        let guest = Viewer::Guest { session_id: "g".into() };
        let user = Viewer::User { user_id: "u".into(), is_admin: false };
        let now = Utc::now();
        assert_eq!(
            save(&pool, &Cart::empty(&guest.shopper(), now).changed(vec![cart_line("p1", 2)], now, None)).await,
            1
        );

        // The other device's first cart: written, committed only when told.
        let (commit, told) = tokio::sync::oneshot::channel::<()>();
        let (write, _) =
            carts::save(&Cart::empty(&user.shopper(), now).changed(vec![cart_line("p1", 1)], now, None)).expect("save");
        let device_pool = db.pool().await;
        let device = tokio::spawn(async move {
            device_pool
                .transaction(async |c| {
                    Writes::of(write).run(c, "a device's first cart").await?;
                    let _ = told.await;
                    Ok::<_, StoreError>(())
                })
                .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let carts = cart_service(db.pool().await, Arc::new(LocalBus::default()));
        let (merging_guest, merging_user) = (guest.clone(), user.clone());
        let merge = tokio::spawn(async move { carts.merge_guest_cart(&merging_guest, &merging_user).await });
        // The merge's insert of the user's cart now waits for the device's.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        commit.send(()).expect("device waiting");
        device.await.expect("task").expect("device's cart");
        merge.await.expect("task").expect("merge");

        let stored = |shopper: Shopper| {
            let pool = pool.clone();
            async move { pool.with_conn(async |c| carts::of(c, &shopper).await).await.expect("read").expect("a cart") }
        };
        let user_cart = stored(user.shopper()).await;
        assert_eq!(
            user_cart.lines.iter().map(|l| (l.product_id.as_str(), l.quantity)).collect::<Vec<_>>(),
            [("p1", 3)],
            "the device's line and the guest's, added up"
        );
        assert!(stored(guest.shopper()).await.lines.is_empty());
    }

    // An in-process bus's subscribers die with the process, so a cart change is published at
    // commit and writes no outbox row; a bus that other instances hear gets it from the outbox,
    // so that it survives this instance dying right after the commit.
    on_both_backends!(cart_changes_go_through_the_outbox_only_for_other_instances, |backend: Backend| async move {
        let db = TestDatabase::new(backend).await;
        db.catalog().await.write_records(&[], &[record("p1", None, Some(50))]).await.expect("catalog");
        let pool = db.pool().await;
        let viewer = Viewer::Guest { session_id: "g1".into() };
        let outbox = RecordingBus::default();
        let pending = async || dispatch_pending(&pool, &outbox, Utc::now()).await.expect("dispatch");
        assert_eq!(pending().await, 1, "the catalog load's event");

        let local = Arc::new(LocalBus::default());
        let mut pushed = local.subscribe(&cart_topic(&viewer.shopper()));
        cart_service(pool.clone(), local).add_item(Some(&viewer), "p1", 1).await.expect("add");
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), pushed.next()).await;
        let Ok(Some(Delivery::Event(event))) = next else { panic!("no push within 5 s") };
        assert!(event.payload.contains("\"version\":1"), "{}", event.payload);
        assert_eq!(pending().await, 0, "no outbox row for an in-process bus");

        let shared = Arc::new(RecordingBus::default());
        cart_service(pool.clone(), shared.clone()).add_item(Some(&viewer), "p1", 1).await.expect("add");
        assert!(shared.published.lock().expect("lock").is_empty(), "published by the outbox worker, not at commit");
        assert_eq!(pending().await, 1);
        let published = outbox.published.lock().expect("lock").last().cloned().expect("published");
        assert_eq!(published.topic, cart_topic(&viewer.shopper()));
        assert!(published.payload.contains("\"version\":2"), "{}", published.payload);
    });

    on_both_backends!(expired_and_abandoned_carts_are_deleted, |backend: Backend| async move {
        let db = TestDatabase::new(backend).await;
        let pool = db.pool().await;
        let now = Utc::now();
        let guest = Cart::empty(&Shopper::Guest("g".into()), now).changed(vec![], now, Some(now + Duration::hours(24)));
        let user = Cart::empty(&Shopper::User("u".into()), now).changed(vec![], now, None);
        assert_eq!((save(&pool, &guest).await, save(&pool, &user).await), (1, 1));
        let sweep = |at, untouched_since| {
            let pool = pool.clone();
            async move { pool.with_conn(async |c| carts::delete_expired(c, at, untouched_since).await).await }
        };
        assert_eq!(sweep(now + Duration::hours(23), now - Duration::days(1)).await.expect("sweep"), 0);
        assert_eq!(sweep(now + Duration::hours(25), now - Duration::days(1)).await.expect("sweep"), 1);
        assert_eq!(sweep(now, now + Duration::seconds(1)).await.expect("sweep"), 1);
    });
}

/// One integer that `sql` (a SELECT naming it `value`) reads on a SQLite connection.
async fn sqlite_integer(c: &mut shop::db::Conn<'_>, sql: &str) -> Result<i32, StoreError> {
    use diesel::sql_types::Integer;
    use diesel_async::RunQueryDsl;
    use shop::db::pool::Backend as Connection;

    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Integer)]
        value: i32,
    }
    match &mut c.backend {
        Connection::Sqlite(sqlite) => diesel::sql_query(sql)
            .load::<Row>(&mut **sqlite)
            .await
            .map(|rows| rows[0].value)
            .map_err(|err| StoreError::internal("reading a SQLite setting", err)),
        Connection::Postgres(_) => unreachable!("a SQLite pool"),
    }
}

#[tokio::test]
async fn sqlite_is_built_to_keep_statements_that_bind_their_limit_compiled() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let pool = shop::db::Pool::open(&db.config().store_url(), 1, std::sync::Arc::new(|_| ())).await.expect("pool");
    // Without the planner's stability guarantee, SQLite compiles a statement with `LIMIT ?`
    // again every time a value is bound to it (`.first()` and every page send one).
    let used = "SELECT sqlite_compileoption_used('ENABLE_QPSG') AS value";
    let used = pool.with_conn(async |c| sqlite_integer(c, used).await).await.expect("compile options");
    assert_eq!(used, 1, "built with SQLITE_ENABLE_QPSG (.cargo/config.toml)");
}

/// A pool of one connection on a fresh PostgreSQL database (one connection, so that what it
/// keeps can be read back on it); `None` when the PostgreSQL suite is off.
async fn postgres_pool() -> Option<(TestDatabase, shop::db::Pool)> {
    if !crate::helpers::postgres_enabled() {
        return None;
    }
    let db = TestDatabase::new(Backend::Postgres).await;
    let pool =
        shop::db::Pool::open(db.url.as_deref().expect("url"), 1, std::sync::Arc::new(|_| ())).await.expect("pool");
    Some((db, pool))
}

/// The text `sql` selects, read on the pool's PostgreSQL connection.
async fn postgres_text(pool: &shop::db::Pool, sql: &str) -> String {
    pool.with_conn(async |c| postgres_text_on(c, sql).await).await.expect(sql)
}

/// The text `sql` selects, read on a PostgreSQL connection (in whatever transaction it is in).
async fn postgres_text_on(c: &mut shop::db::Conn<'_>, sql: &str) -> Result<String, StoreError> {
    use diesel_async::RunQueryDsl;
    use shop::db::pool::Backend as Connection;

    match &mut c.backend {
        Connection::Postgres(pg) => diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(sql))
            .get_result::<String>(&mut **pg)
            .await
            .map_err(|err| StoreError::internal("reading a PostgreSQL setting", err)),
        Connection::Sqlite(_) => unreachable!("a PostgreSQL pool"),
    }
}

#[tokio::test]
async fn postgres_waits_for_the_disk_only_on_the_money_path() {
    let Some((_db, pool)) = postgres_pool().await else { return };
    let setting = "current_setting('synchronous_commit')";
    let off_the_money_path = pool.transaction(async |c| postgres_text_on(c, setting).await).await.expect("read");
    let money_path = pool.durable_transaction(async |c| postgres_text_on(c, setting).await).await.expect("read");
    assert_eq!((off_the_money_path.as_str(), money_path.as_str()), ("off", "on"));
    // The setting ends with its transaction: a statement sent alone (a claim, an order) waits.
    assert_eq!(postgres_text(&pool, setting).await, "on");
}

#[tokio::test]
async fn postgres_prepares_the_store_s_updates_once_per_connection() {
    let Some((_db, pool)) = postgres_pool().await else { return };
    for available in [3, 4, 5] {
        pool.with_conn(async |c| inventory::set_available(c, "p1", available).await).await.expect("set stock");
    }
    let kept = "(SELECT count(*)::text FROM pg_prepared_statements WHERE statement LIKE 'UPDATE \"inventory\" SET \"available\"%')";
    assert_eq!(
        postgres_text(&pool, kept).await,
        "1",
        "prepared once and kept for the next calls (diesel alone prepares an UPDATE every time)"
    );
}

#[tokio::test]
async fn postgres_plans_the_store_s_statements_once() {
    let Some((_db, pool)) = postgres_pool().await else { return };
    assert_eq!(postgres_text(&pool, "current_setting('plan_cache_mode')").await, "force_generic_plan");
}

#[tokio::test]
async fn postgres_compresses_cart_documents_with_lz4() {
    let Some((_db, pool)) = postgres_pool().await else { return };
    // 'l' is lz4; '' is the server's default (pglz).
    let methods = "(SELECT string_agg(attrelid::regclass::text || '.' || attname || '=' || attcompression::text, ',' ORDER BY attrelid::regclass::text) \
        FROM pg_attribute WHERE (attrelid, attname) IN (('carts'::regclass, 'lines'), ('outbox'::regclass, 'payload')))";
    assert_eq!(
        postgres_text(&pool, methods).await,
        "carts.lines=l,outbox.payload=l",
        "a whole cart is compressed with lz4, not pglz"
    );
}
