//! The Store adapter's repository functions, each exercised on both backends.

use chrono::{Duration, TimeZone, Utc};
use shop::domain::auth::User;
use shop::domain::auth::model::{NewRefreshToken, RefreshTokenUse};
use shop::domain::catalog::model::{Category, ProductRecord, category_levels, parse_category_path};
use shop::domain::catalog::{Attribute, Money, Product};
use shop::domain::ports::{CatalogStore, Store, StoreError, UserStore};

use crate::helpers::{Backend, TestDatabase};
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

on_both_backends!(catalog_upsert_and_reads, |backend: Backend| async move {
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    assert_eq!(store.product_count().await.expect("count"), 0);

    let sofas = levels("Home/Furniture/Sofas");
    let leaf = sofas.last().cloned().expect("leaf");
    store
        .upsert_catalog(&sofas, &[record("p1", Some(&leaf), Some(5)), record("p2", Some(&leaf), None)])
        .await
        .expect("insert");
    assert_eq!(store.product_count().await.expect("count"), 2);

    let mut products = store.products_by_ids(&["p1".into(), "p2".into(), "nope".into()]).await.expect("load");
    products.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(products.len(), 2);
    assert_eq!(products[0], record("p1", Some(&leaf), None).product, "a product survives the round trip exactly");

    let roots = store.root_categories().await.expect("roots");
    assert_eq!(roots.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(), ["Home"]);
    let children = store.category_children(&[roots[0].id.clone()]).await.expect("children");
    assert_eq!(children.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(), ["Home/Furniture"]);
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
    store.upsert_catalog(&sofas, &[changed, p2_again]).await.expect("update");
    assert_eq!(store.products_by_ids(&["p1".into()]).await.expect("load")[0].title, "New title");
    let mut stock = store.stock_levels(&["p1".into(), "p2".into()]).await.expect("stock");
    stock.sort_by(|a, b| a.product_id.cmp(&b.product_id));
    assert_eq!((stock[0].available, stock[0].version), (9, 1));
    assert_eq!((stock[1].available, stock[1].version), (0, 0));
    assert_eq!(store.category_children(&[roots[0].id.clone()]).await.expect("children").len(), 1);
});

on_both_backends!(loading_more_products_than_a_statement_can_bind, |backend: Backend| async move {
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    let sofas = levels("Home/Furniture/Sofas");
    store.upsert_catalog(&sofas, &[record("p1", sofas.last(), Some(5))]).await.expect("insert");
    // Right after a big import the search indexer asks for every product it changed.
    let mut ids: Vec<String> = (0..70_000).map(|n| format!("missing-{n}")).collect();
    ids.push("p1".to_owned());
    let documents = store.search_documents_by_ids(&ids).await.expect("more ids than SQLite binds in one statement");
    assert_eq!(documents.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["p1"]);
});

on_both_backends!(stock_changes_bump_the_version_and_never_go_negative, |backend: Backend| async move {
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    store.upsert_catalog(&[], &[record("p1", None, Some(3))]).await.expect("insert");
    let level = store.set_stock("p1", 7).await.expect("set").expect("known product");
    assert_eq!((level.available, level.version), (7, 1));
    assert!(store.set_stock("unknown", 7).await.expect("set").is_none());
    let err = store.set_stock("p1", -1).await.expect_err("CHECK constraint");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.stock_levels(&["p1".into()]).await.expect("stock")[0].available, 7);
});

on_both_backends!(a_batch_is_all_or_nothing, |backend: Backend| async move {
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    // The second record names a category that does not exist: the foreign key fails the batch.
    let ghost = levels("Ghost").pop().expect("leaf");
    let err = store
        .upsert_catalog(&[], &[record("ok", None, Some(1)), record("bad", Some(&ghost), Some(1))])
        .await
        .expect_err("foreign key");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.product_count().await.expect("count"), 0, "nothing of the failed batch remains");
});

on_both_backends!(users_and_admins, |backend: Backend| async move {
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    let alice = store.insert_user(&user("alice@example.com", false)).await.expect("insert");
    let err = store.insert_user(&user("alice@example.com", false)).await.expect_err("duplicate email");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.user_by_email("alice@example.com").await.expect("by email"), Some(alice.clone()));
    assert_eq!(store.user_by_email("bob@example.com").await.expect("by email"), None);
    assert_eq!(store.users_by_ids(std::slice::from_ref(&alice.id)).await.expect("by id"), vec![alice.clone()]);

    let mut promotion = user("alice@example.com", true);
    promotion.password_hash = "new hash".to_owned();
    let promoted = store.upsert_admin(&promotion).await.expect("promote");
    assert_eq!(
        (promoted.id.as_str(), promoted.is_admin, promoted.password_hash.as_str()),
        (alice.id.as_str(), true, "new hash")
    );
    let created = store.upsert_admin(&user("root@example.com", true)).await.expect("create");
    assert!(created.is_admin);
});

on_both_backends!(refresh_tokens_work_once_and_replay_is_detected, |backend: Backend| async move {
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    let alice = store.insert_user(&user("alice@example.com", false)).await.expect("insert");
    let now = Utc::now();
    let token = |hash: &str, family: &str, expires_in: Duration| NewRefreshToken {
        token_hash: hash.to_owned(),
        user_id: alice.id.clone(),
        family_id: family.to_owned(),
        expires_at: now + expires_in,
        created_at: now,
    };
    store.insert_refresh_token(&token("h1", "f1", Duration::days(1))).await.expect("insert");
    store.insert_refresh_token(&token("h2", "f1", Duration::days(1))).await.expect("insert");
    store.insert_refresh_token(&token("old", "f2", Duration::seconds(-1))).await.expect("insert");

    assert_eq!(
        store.use_refresh_token("h1", now).await.expect("use"),
        RefreshTokenUse::Fresh { user_id: alice.id.clone(), family_id: "f1".into() }
    );
    assert_eq!(
        store.use_refresh_token("h1", now).await.expect("use"),
        RefreshTokenUse::Replayed { family_id: "f1".into() }
    );
    assert_eq!(store.use_refresh_token("old", now).await.expect("use"), RefreshTokenUse::Unknown, "expired");
    assert_eq!(store.use_refresh_token("never", now).await.expect("use"), RefreshTokenUse::Unknown);

    store.revoke_refresh_family("f1").await.expect("revoke");
    assert_eq!(
        store.use_refresh_token("h2", now).await.expect("use"),
        RefreshTokenUse::Unknown,
        "revoked with its family"
    );
    store.ping().await.expect("ping");
});

mod carts_and_outbox {
    use std::sync::{Arc, Mutex};

    use shop::domain::clock::{Clock, SystemClock};

    use async_trait::async_trait;
    use futures::stream::BoxStream;
    use shop::domain::cart::{CartError, CartLine, CartOwner};
    use shop::domain::events::{BusError, Delivery, Event, EventBus};
    use shop::domain::ports::{CartDecision, CartKey, CartStore, OutboxStore};

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
    }

    fn key(owner: &str) -> CartKey {
        CartKey { owner: CartOwner(owner.to_owned()), expires_at: None }
    }

    fn set_quantity(product: &'static str, quantity: i32) -> CartDecision {
        Box::new(move |view| {
            let offer = view.offers.get(product).expect("offer loaded");
            let line = CartLine {
                product_id: product.to_owned(),
                quantity,
                unit_price: offer.price.clone(),
                added_at: SystemClock.now(),
            };
            Ok(vec![Some(vec![line])])
        })
    }

    on_both_backends!(cart_changes_are_atomic_versioned_and_evented, |backend: Backend| async move {
        let db = TestDatabase::new(backend).await;
        let store = db.store().await;
        store.upsert_catalog(&[], &[record("p1", None, Some(5))]).await.expect("catalog");
        let owner = CartOwner("user:u1".to_owned());
        assert!(store.cart(&owner).await.expect("read").is_none());

        let now = SystemClock.now();
        let carts =
            store.change_carts(&[key("user:u1")], &["p1".into()], now, set_quantity("p1", 2)).await.expect("change");
        assert_eq!((carts[0].version, carts[0].lines[0].quantity), (1, 2));
        assert_eq!(store.cart(&owner).await.expect("read"), Some(carts[0].clone()));

        // A refused decision rolls everything back: no version, no line, no event.
        let refuse: CartDecision = Box::new(|_| Err(CartError::invalid("quantity", "no")));
        assert!(store.change_carts(&[key("user:u1")], &[], now, refuse).await.is_err());
        let unchanged: CartDecision = Box::new(|_| Ok(vec![None]));
        let same = store.change_carts(&[key("user:u1")], &[], now, unchanged).await.expect("no-op");
        assert_eq!(same[0].version, 1);

        let bus = RecordingBus::default();
        assert_eq!(
            store.dispatch_outbox(10, now, &bus).await.expect("dispatch"),
            2,
            "the catalog write and the one cart change"
        );
        assert_eq!(store.dispatch_outbox(10, now, &bus).await.expect("dispatch"), 0, "claimed once");
        let published = bus.published.lock().expect("lock").clone();
        assert_eq!((published[0].topic.as_str(), published[0].payload.as_str()), ("catalog.products", r#"["p1"]"#));
        assert_eq!(published[1].topic, "cart.user:u1");
        assert!(published[1].payload.contains("\"version\":1"));
    });

    on_both_backends!(unpublished_events_survive_a_failing_bus, |backend: Backend| async move {
        let db = TestDatabase::new(backend).await;
        let store = db.store().await;
        store.upsert_catalog(&[], &[record("p1", None, Some(5))]).await.expect("catalog");
        let now = Utc::now();
        for quantity in 1..=3 {
            store
                .change_carts(&[key("guest:g1")], &["p1".into()], now, set_quantity("p1", quantity))
                .await
                .expect("change");
        }
        let bus = RecordingBus::default();
        *bus.failing.lock().expect("lock") = true;
        assert!(store.dispatch_outbox(10, now, &bus).await.is_err());
        *bus.failing.lock().expect("lock") = false;
        assert_eq!(store.dispatch_outbox(2, now, &bus).await.expect("dispatch"), 2, "limited batch");
        assert_eq!(store.dispatch_outbox(10, now, &bus).await.expect("dispatch"), 2);
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
        assert_eq!(store.delete_published_events(now - chrono::Duration::seconds(1)).await.expect("clean"), 0);
        assert_eq!(store.delete_published_events(now + chrono::Duration::seconds(1)).await.expect("clean"), 4);
    });

    on_both_backends!(concurrent_first_changes_create_one_cart, |backend: Backend| async move {
        let db = TestDatabase::new(backend).await;
        let store = Arc::new(db.store().await);
        store.upsert_catalog(&[], &[record("p1", None, Some(50))]).await.expect("catalog");
        let changes: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let add_one: CartDecision = Box::new(|view| {
                        let cart = &view.carts[0];
                        let offer = &view.offers["p1"];
                        let quantity = cart.line("p1").map_or(0, |l| l.quantity) + 1;
                        let line = CartLine {
                            product_id: "p1".into(),
                            quantity,
                            unit_price: offer.price.clone(),
                            added_at: Utc::now(),
                        };
                        Ok(vec![Some(vec![line])])
                    });
                    store.change_carts(&[key("guest:race")], &["p1".into()], Utc::now(), add_one).await
                })
            })
            .collect();
        for change in changes {
            change.await.expect("task").expect("change");
        }
        let cart = store.cart(&CartOwner("guest:race".into())).await.expect("read").expect("one cart");
        assert_eq!((cart.version, cart.lines[0].quantity), (8, 8));
    });

    on_both_backends!(expired_and_abandoned_carts_are_deleted, |backend: Backend| async move {
        let db = TestDatabase::new(backend).await;
        let store = db.store().await;
        let now = Utc::now();
        let guest = CartKey { owner: CartOwner("guest:g".into()), expires_at: Some(now + chrono::Duration::hours(24)) };
        let touch: fn() -> CartDecision = || Box::new(|_| Ok(vec![Some(vec![])]));
        store.change_carts(&[guest], &[], now, touch()).await.expect("guest cart");
        store.change_carts(&[key("user:u")], &[], now, touch()).await.expect("user cart");
        assert_eq!(
            store
                .delete_expired_carts(now + chrono::Duration::hours(23), now - chrono::Duration::days(1))
                .await
                .expect("sweep"),
            0
        );
        assert_eq!(
            store
                .delete_expired_carts(now + chrono::Duration::hours(25), now - chrono::Duration::days(1))
                .await
                .expect("sweep"),
            1
        );
        assert_eq!(store.delete_expired_carts(now, now + chrono::Duration::seconds(1)).await.expect("sweep"), 1);
    });
}

#[tokio::test]
async fn postgres_prepares_the_store_s_updates_once_per_connection() {
    use diesel::sql_types::BigInt;
    use diesel_async::RunQueryDsl;
    use shop::db::pool::Conn;
    use shop::db::{DbStore, Pool};

    if !crate::helpers::postgres_enabled() {
        return;
    }
    let db = TestDatabase::new(Backend::Postgres).await;
    // One connection, so that the statements it keeps prepared can be read back on it.
    let pool = Pool::open(db.url.as_deref().expect("url"), 1, std::sync::Arc::new(|| ())).await.expect("pool");
    let store = DbStore::new(pool.clone());
    for available in [3, 4, 5] {
        store.set_stock("p1", available).await.expect("set stock");
    }
    let kept = pool
        .with_conn(async |c| match c {
            Conn::Postgres(pg) => diesel::select(diesel::dsl::sql::<BigInt>(
                "(SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'UPDATE \"inventory\" SET \"available\"%')",
            ))
            .get_result::<i64>(&mut **pg)
            .await
            .map_err(|err| StoreError::internal("reading prepared statements", err)),
            Conn::Sqlite(_) => unreachable!("a PostgreSQL pool"),
        })
        .await
        .expect("prepared statements");
    assert_eq!(kept, 1, "prepared once and kept for the next calls (diesel alone prepares an UPDATE every time)");
}
