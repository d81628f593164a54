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
