//! Sessions, accounts, tokens and roles over GraphQL.

use chrono::{Duration, Utc};
use serde_json::json;
use shop::domain::clock::ManualClock;

use crate::helpers::{ADMIN_EMAIL, Backend, PASSWORD, ServerOptions, TestServer, error_code};
use crate::on_both_backends;

const ME: &str = "{ me { email name isAdmin } }";

on_both_backends!(guest_sessions_are_not_users, |backend: Backend| async move {
    let server = TestServer::start(backend).await;
    let data = server
        .data("mutation { startGuestSession { token refreshToken expiresAt user { id } } }", json!({}), None)
        .await;
    let session = &data["startGuestSession"];
    assert!(session["refreshToken"].is_null() && session["user"].is_null());
    let token = session["token"].as_str().expect("token");
    assert_eq!(server.data(ME, json!({}), Some(token)).await["me"], json!(null));
    assert_eq!(server.data(ME, json!({}), None).await["me"], json!(null));
});

on_both_backends!(sign_up_then_sign_in, |backend: Backend| async move {
    let server = TestServer::start(backend).await;
    let (token, _) = server.sign_up("Alice@Example.com").await;
    let me = server.data(ME, json!({}), Some(&token)).await;
    assert_eq!(me["me"], json!({ "email": "alice@example.com", "name": "Test Shopper", "isAdmin": false }));

    let signed_in = server.sign_in("ALICE@example.com", PASSWORD).await;
    assert_eq!(signed_in["data"]["signIn"]["user"]["email"], "alice@example.com", "emails are case-insensitive");

    let duplicate = server
        .gql(
            "mutation { signUp(email: \"alice@example.com\", password: \"another password\", name: \"A\") { token } }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(error_code(&duplicate), "CONFLICT");
});

on_both_backends!(wrong_credentials_are_unauthenticated_without_saying_which, |backend: Backend| async move {
    let server = TestServer::start(backend).await;
    server.sign_up("bob@example.com").await;
    let wrong_password = server.sign_in("bob@example.com", "not the password").await;
    let unknown_email = server.sign_in("nobody@example.com", PASSWORD).await;
    assert_eq!(error_code(&wrong_password), "UNAUTHENTICATED");
    assert_eq!(wrong_password["errors"][0]["message"], unknown_email["errors"][0]["message"]);
    assert!(wrong_password["data"].is_null());
});

on_both_backends!(bad_sign_up_input_writes_nothing, |backend: Backend| async move {
    let server = TestServer::start(backend).await;
    for (email, password, name, field) in [
        ("not-an-email", PASSWORD, "Name", "email"),
        ("carol@example.com", "short", "Name", "password"),
        ("carol@example.com", PASSWORD, "   ", "name"),
    ] {
        let response = server
            .gql(
                "mutation($e: String!, $p: String!, $n: String!) { signUp(email: $e, password: $p, name: $n) { token } }",
                json!({ "e": email, "p": password, "n": name }),
                None,
            )
            .await;
        assert_eq!(error_code(&response), "BAD_USER_INPUT");
        assert_eq!(response["errors"][0]["extensions"]["field"], field);
    }
    assert_eq!(error_code(&server.sign_in("carol@example.com", PASSWORD).await), "UNAUTHENTICATED");
});

on_both_backends!(refresh_tokens_rotate_and_replay_revokes_the_family, |backend: Backend| async move {
    let server = TestServer::start(backend).await;
    let (_, first_refresh) = server.sign_up("dave@example.com").await;
    let refresh = |token: String| {
        let server = &server;
        async move {
            server
                .gql(
                    "mutation($t: String!) { refreshSession(refreshToken: $t) { token refreshToken user { email } } }",
                    json!({ "t": token }),
                    None,
                )
                .await
        }
    };
    let rotated = refresh(first_refresh.clone()).await;
    let second_refresh =
        rotated["data"]["refreshSession"]["refreshToken"].as_str().expect("new refresh token").to_owned();
    assert_ne!(second_refresh, first_refresh);
    let access = rotated["data"]["refreshSession"]["token"].as_str().expect("token");
    assert_eq!(server.data(ME, json!({}), Some(access)).await["me"]["email"], "dave@example.com");

    // The first token was used: replaying it is refused and revokes the whole sign-in.
    assert_eq!(error_code(&refresh(first_refresh).await), "UNAUTHENTICATED");
    assert_eq!(error_code(&refresh(second_refresh).await), "UNAUTHENTICATED");
    assert_eq!(error_code(&refresh("rt_garbage".to_owned()).await), "UNAUTHENTICATED");
});

on_both_backends!(forged_and_malformed_tokens_are_refused, |backend: Backend| async move {
    let server = TestServer::start(backend).await;
    let token = server.guest_token().await;
    let mut forged = token.clone();
    forged.replace_range(forged.len() - 4.., "AAAA");
    for header in [format!("Bearer {forged}"), "Bearer not.a.jwt".to_owned(), format!("Basic {token}")] {
        let response = server
            .client
            .post(server.url("/graphql"))
            .header("authorization", header)
            .json(&json!({ "query": "{ me { id } }" }))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(error_code(&body), "UNAUTHENTICATED");
    }
});

on_both_backends!(access_tokens_expire, |backend: Backend| async move {
    let clock = ManualClock::new(Utc::now());
    let server =
        TestServer::start_with(backend, ServerOptions { clock: Some(clock.clone()), ..Default::default() }).await;
    let (token, refresh) = server.sign_up("erin@example.com").await;
    assert_eq!(server.data(ME, json!({}), Some(&token)).await["me"]["email"], "erin@example.com");
    clock.advance(Duration::minutes(16));
    let expired = server.gql(ME, json!({}), Some(&token)).await;
    assert_eq!(error_code(&expired), "UNAUTHENTICATED");
    // The refresh token outlives the access token.
    let renewed = server
        .gql("mutation($t: String!) { refreshSession(refreshToken: $t) { token } }", json!({ "t": refresh }), None)
        .await;
    let fresh = renewed["data"]["refreshSession"]["token"].as_str().expect("renewed token");
    assert_eq!(server.data(ME, json!({}), Some(fresh)).await["me"]["email"], "erin@example.com");
});

on_both_backends!(admin_operations_need_the_admin_role, |backend: Backend| async move {
    let server = TestServer::start(backend).await;
    let set_stock = "mutation { adminSetStock(productId: \"p1\", quantity: 3) { id } }";
    assert_eq!(error_code(&server.gql(set_stock, json!({}), None).await), "UNAUTHENTICATED");
    let guest = server.guest_token().await;
    assert_eq!(error_code(&server.gql(set_stock, json!({}), Some(&guest)).await), "FORBIDDEN");
    let user = server.user_token().await;
    assert_eq!(error_code(&server.gql(set_stock, json!({}), Some(&user)).await), "FORBIDDEN");
    let admin = server.admin_token().await;
    assert_eq!(error_code(&server.gql(set_stock, json!({}), Some(&admin)).await), "NOT_FOUND");
    let me = server.data(ME, json!({}), Some(&admin)).await;
    assert_eq!(me["me"], json!({ "email": ADMIN_EMAIL, "name": "admin", "isAdmin": true }));
});
