//! Every playground operation is real: it runs without errors against a seeded server, and the
//! playground page offers it.

use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, ServerOptions, Subscription, TestServer};
use crate::on_both_backends;

on_both_backends!(every_playground_operation_runs, |backend: Backend| async move {
    let server = TestServer::start_with(backend, ServerOptions { seed_products: 50, ..Default::default() }).await;
    server.sign_up("shopper@example.com").await;
    let user =
        server.sign_in("shopper@example.com", PASSWORD).await["data"]["signIn"]["token"].as_str().map(str::to_owned);
    let guest = Some(server.guest_token().await);
    let admin = Some(server.admin_token().await);
    let mut ran = 0;
    // The flash-sale tabs ask for the id of the sale their first tab creates.
    let mut sale_id: Option<String> = None;
    for operation in shop::playground::operations() {
        let token = match operation.viewer() {
            "anonymous" => None,
            "guest" => guest.clone(),
            "user" => user.clone(),
            "admin" => admin.clone(),
            other => panic!("{}: unknown viewer {other}", operation.name),
        };
        let mut variables: Value = serde_json::from_str(operation.variables())
            .unwrap_or_else(|e| panic!("{}: variables: {e}", operation.name));
        for value in variables.as_object_mut().into_iter().flat_map(|v| v.values_mut()) {
            if value.as_str().is_some_and(|v| v.starts_with("paste the id")) {
                *value = json!(sale_id.clone().unwrap_or_else(|| panic!("{}: no sale created yet", operation.name)));
            }
        }
        let data = if operation.text.contains("\nsubscription ") {
            // Subscriptions run over the websocket; their first result is the current state.
            let token = token.as_deref().unwrap_or_else(|| panic!("{}: subscriptions need a viewer", operation.name));
            Subscription::start_with(&server.ws_url(), token, operation.text, variables).await.next().await
        } else {
            let response = server.gql(operation.text, variables, token.as_deref()).await;
            assert!(response.get("errors").is_none(), "{}: {response:#}", operation.name);
            response["data"].clone()
        };
        assert!(data.as_object().is_some_and(|d| d.values().all(|v| !v.is_null())), "{}: {data}", operation.name);
        if let Some(created) = data["adminCreateFlashSale"]["id"].as_str() {
            sale_id = Some(created.to_owned());
        }
        assert!(
            operation.text.trim_start().starts_with('#'),
            "{} starts with a comment saying what it does",
            operation.name
        );
        ran += 1;
    }
    assert!(ran >= 12, "only {ran} playground operations");
});

on_both_backends!(the_playground_page_offers_them_offline, |backend: Backend| async move {
    let server = TestServer::start(backend).await;
    let page = server.client.get(server.url("/")).send().await.expect("page").text().await.expect("text");
    for operation in shop::playground::operations() {
        // The page embeds each operation as a JSON string (with `</` escaped).
        let embedded = json!(operation.text).to_string().replace("</", "<\\/");
        assert!(page.contains(&embedded), "{} missing from the page", operation.name);
    }
    for asset in [
        "graphiql.min.js",
        "graphiql.min.css",
        "react.production.min.js",
        "react-dom.production.min.js",
        "graphql-ws.min.js",
    ] {
        assert!(page.contains(&format!("/playground/{asset}")));
        let response = server.client.get(server.url(&format!("/playground/{asset}"))).send().await.expect("asset");
        assert_eq!(response.status(), 200, "{asset}");
        assert!(response.bytes().await.expect("bytes").len() > 5_000, "{asset} is served from the binary");
    }
    assert_eq!(server.client.get(server.url("/playground/nope.js")).send().await.expect("asset").status(), 404);
});
