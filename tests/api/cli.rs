//! The `shop` binary's commands against a real store: seed, import, create-admin, and config
//! errors that name their key.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use serde_json::json;

use shop::db::users;

use crate::helpers::{Backend, TestDatabase, TestServer, error_code};
use crate::on_both_backends;

fn shop(db: &TestDatabase, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shop"))
        .args(args)
        .envs(db.env())
        .env("SHOP_LOG", "warn")
        .output()
        .expect("run shop")
}

fn ok(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "shop failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

on_both_backends!(seed_is_deterministic_and_idempotent, |backend: Backend| async move {
    let db = TestDatabase::new(backend).await;
    ok(&shop(&db, &["migrate"]));
    let report = ok(&shop(&db, &["seed", "--products", "1500"]));
    assert!(report.contains("seeded 1500 products"), "{report}");
    let catalog = db.catalog().await;
    assert_eq!(catalog.product_count().await.expect("count"), 1500);
    let first = catalog.products_by_ids(&["prod-0001500".into()]).await.expect("load");
    ok(&shop(&db, &["seed", "--products", "1500"]));
    assert_eq!(catalog.product_count().await.expect("count"), 1500, "re-seeding updates in place");
    let again = catalog.products_by_ids(&["prod-0001500".into()]).await.expect("load");
    assert_eq!(first[0].title, again[0].title);
    assert_eq!(first[0].price, again[0].price);
});

const CSV: &str = "id,title,description,brand,category,price_cents,currency,rating,review_count,popularity,stock,attributes,created_at
SKU-1,Oakline Red Leather Sofa,\"Deep, soft.\",Oakline,Home/Furniture/Sofas,129900,USD,4.6,31,400,7,color=Red;material=Leather,2025-03-01T10:00:00Z
sku_2,Plain Mug,,,Kitchen/Mugs,899,,,,,,,
";

const JSONL: &str = r#"{"id": "J-1", "title": "Brightwell Gel Pens", "price_cents": 799, "category": "Office/Supplies/Pens", "stock": 40, "attributes": {"color": "Blue"}}

{"id": "J-2", "title": "Brightwell Notebook", "price_cents": 499, "brand": "Brightwell"}
"#;

on_both_backends!(import_keeps_file_ids_and_rejects_bad_files_whole, |backend: Backend| async move {
    let db = TestDatabase::new(backend).await;
    let dir = db.data_dir.path();
    std::fs::write(dir.join("catalog.csv"), CSV).expect("write");
    std::fs::write(dir.join("catalog.jsonl"), JSONL).expect("write");
    let report = ok(&shop(&db, &["import", &dir.join("catalog.csv").to_string_lossy()]));
    assert!(report.contains("imported 2 products"), "{report}");
    ok(&shop(&db, &["import", &dir.join("catalog.jsonl").to_string_lossy()]));

    let catalog = db.catalog().await;
    let mut products =
        catalog.products_by_ids(&["SKU-1".into(), "sku_2".into(), "J-1".into(), "J-2".into()]).await.expect("load");
    products.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(products.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["J-1", "J-2", "SKU-1", "sku_2"]);
    let sofa = &products[2];
    assert_eq!((sofa.price.cents, sofa.rating, sofa.review_count), (129_900, Some(4.6), 31));
    assert_eq!(sofa.attributes.len(), 2);
    assert_eq!(sofa.created_at.to_rfc3339(), "2025-03-01T10:00:00+00:00");
    assert_eq!(products[0].attributes[0].value, "Blue");
    let stock = catalog.stock_levels(&["SKU-1".into(), "J-2".into()]).await.expect("stock");
    assert!(stock.iter().any(|s| s.product_id == "SKU-1" && s.available == 7));
    assert!(stock.iter().any(|s| s.product_id == "J-2" && s.available == 0));
    let sofas = catalog.categories_by_paths(&["Home/Furniture/Sofas".into()]).await.expect("categories");
    assert_eq!(sofas.len(), 1);

    // One bad line anywhere: the whole file is refused with its line number, nothing written.
    let bad = "id,title,price_cents\nOK-1,Fine,100\nOK-2,Negative,-5\n";
    std::fs::write(dir.join("bad.csv"), bad).expect("write");
    let output = shop(&db, &["import", &dir.join("bad.csv").to_string_lossy()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 3") && stderr.contains("priceCents"), "{stderr}");
    assert!(catalog.products_by_ids(&["OK-1".into()]).await.expect("load").is_empty());
    std::fs::write(dir.join("bad.jsonl"), "{\"id\": \"X\", \"title\": \"T\", \"price_cents\": 1, \"colour\": 2}\n")
        .expect("write");
    let output = shop(&db, &["import", &dir.join("bad.jsonl").to_string_lossy()]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown field `colour`"));
});

on_both_backends!(create_admin_creates_or_promotes, |backend: Backend| async move {
    let db = TestDatabase::new(backend).await;
    ok(&shop(&db, &["create-admin", "--email", "Boss@Example.com", "--password", "correct horse battery"]));
    let pool = db.pool().await;
    let admin = pool
        .with_conn(async |c| users::user_by_email(c, "boss@example.com").await)
        .await
        .expect("load")
        .expect("created");
    assert!(admin.is_admin);
    let output = shop(&db, &["create-admin", "--email", "boss@example.com", "--password", "short"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("password"));
});

on_both_backends!(promoting_a_shopper_ends_their_sign_ins, |backend: Backend| async move {
    let server = TestServer::start(backend).await;
    let (_, refresh) = server.sign_up("rising@example.com").await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_shop"))
        .args(["create-admin", "--email", "rising@example.com"])
        .envs(server.env())
        .env("SHOP_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run shop");
    child.stdin.take().expect("stdin").write_all(b"a new password from stdin\n").expect("write");
    ok(&child.wait_with_output().expect("wait"));
    let refresh_query = "mutation($t: String!) { refreshSession(refreshToken: $t) { token } }";
    let refused = server.gql(refresh_query, json!({ "t": refresh }), None).await;
    assert_eq!(error_code(&refused), "UNAUTHENTICATED", "a shopper's session does not become an admin's");
    let signed_in = server.sign_in("rising@example.com", "a new password from stdin").await;
    assert_eq!(signed_in["data"]["signIn"]["user"]["isAdmin"], true, "{signed_in:#}");
});

#[test]
fn a_bad_setting_stops_start_up_naming_the_variable() {
    let output =
        Command::new(env!("CARGO_BIN_EXE_shop")).arg("migrate").env("SHOP_DB_POOL_SIZE", "lots").output().expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SHOP_DB_POOL_SIZE"), "{stderr}");
}
