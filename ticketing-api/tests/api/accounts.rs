//! Register, login, refresh rotation, logout, `/api/me`, forged tokens (the login limits are
//! in `login_limits.rs`).

use std::time::Duration;

use reqwest::{Client, StatusCode, header};
use serde_json::{Value, json};
use shared::{
    domain::Role,
    ids::{EventId, UserId},
    tokens::{AccessClaims, AdmissionClaims, KeyPurpose, TokenKeys},
};
use sqlx::PgPool;
use time::OffsetDateTime;

use testkit::api::{PASSWORD, TestApp, assert_error, spawn};

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_fan_registers_logs_in_and_sees_themselves(db: PgPool) {
    let app = spawn(db).await;
    let created = app.register("Fan@Example.test", "Ada Fan").await;
    assert_eq!(created["user"]["email"], "fan@example.test");
    assert_eq!(created["user"]["role"], "fan");

    let token = app.login("fan@example.test", PASSWORD).await;
    let me: Value = app.get_json_as("/api/me", &token).await;
    assert_eq!(me["id"], created["user"]["id"]);
    assert_eq!(me["name"], "Ada Fan");
    assert_eq!(me["role"], "fan");
    assert_eq!(me["organizer_status"], "none");
    assert!(me.get("password_hash").is_none());
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn an_email_can_hold_only_one_account_whatever_its_case(db: PgPool) {
    let app = spawn(db).await;
    app.register("taken@example.test", "First").await;
    let again = app
        .post(
            "/api/auth/register",
            &json!({"email": "TAKEN@example.test", "password": PASSWORD, "name": "Second"}),
        )
        .await;
    assert_error(again, StatusCode::CONFLICT, "email_taken").await;
    assert_eq!(
        app.count("users").await,
        2,
        "the admin and the first fan only"
    );
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_client_cannot_choose_its_own_role(db: PgPool) {
    let app = spawn(db).await;
    let response = app
        .post(
            "/api/auth/register",
            &json!({"email": "sneaky@example.test", "password": PASSWORD, "name": "S",
                    "role": "admin", "organizer_status": "approved"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["user"]["role"], "fan");
    assert_eq!(body["user"]["organizer_status"], "none");
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn wrong_passwords_and_unknown_emails_get_the_same_answer(db: PgPool) {
    let app = spawn(db).await;
    app.register("fan@example.test", "Fan").await;
    for (email, password) in [
        ("fan@example.test", "not-the-password"),
        ("nobody@example.test", PASSWORD),
        ("not an email", PASSWORD),
    ] {
        let response = app
            .post(
                "/api/auth/login",
                &json!({"email": email, "password": password}),
            )
            .await;
        assert!(response.headers().get(header::SET_COOKIE).is_none());
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    assert_eq!(app.count("refresh_tokens").await, 0);
}

/// Logs in on a cookie-less client and returns the refresh token from `Set-Cookie`.
async fn login_for_refresh_token(app: &TestApp, email: &str) -> String {
    let response = Client::new()
        .post(app.url("/api/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    refresh_cookie(&response)
}

fn refresh_cookie(response: &reqwest::Response) -> String {
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("a refresh cookie")
        .to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Path=/api/auth"), "{cookie}");
    cookie
        .split(';')
        .next()
        .and_then(|pair| pair.strip_prefix("refresh_token="))
        .expect("refresh_token=...")
        .to_string()
}

async fn refresh_with(app: &TestApp, token: &str) -> reqwest::Response {
    Client::new()
        .post(app.url("/api/auth/refresh"))
        .header(header::COOKIE, format!("refresh_token={token}"))
        .send()
        .await
        .expect("sent")
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn refresh_rotates_and_reusing_an_old_token_revokes_the_whole_family(db: PgPool) {
    let app = spawn(db).await;
    app.register("fan@example.test", "Fan").await;
    let first = login_for_refresh_token(&app, "fan@example.test").await;

    let response = refresh_with(&app, &first).await;
    assert_eq!(response.status(), StatusCode::OK);
    let second = refresh_cookie(&response);
    assert_ne!(first, second, "the refresh token rotates");
    let body: Value = response.json().await.expect("json");
    assert!(body["access_token"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(body["expires_in"], 900);

    // The first token was spent: presenting it again is theft, and the family dies.
    assert_error(
        refresh_with(&app, &first).await,
        StatusCode::UNAUTHORIZED,
        "refresh_token_reused",
    )
    .await;
    assert_error(
        refresh_with(&app, &second).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;

    // Another login (another family) is unaffected.
    let other = login_for_refresh_token(&app, "fan@example.test").await;
    assert_eq!(refresh_with(&app, &other).await.status(), StatusCode::OK);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn one_refresh_token_raced_by_twenty_requests_is_spent_once(db: PgPool) {
    let app = spawn(db).await;
    app.register("fan@example.test", "Fan").await;
    let token = login_for_refresh_token(&app, "fan@example.test").await;
    let attempts = (0..20).map(|_| refresh_with(&app, &token));
    let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|response| response.status())
        .collect();
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED)
    );
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn logout_ends_the_session_and_always_succeeds(db: PgPool) {
    let app = spawn(db).await;
    app.register("fan@example.test", "Fan").await;
    let token = login_for_refresh_token(&app, "fan@example.test").await;

    let response = Client::new()
        .post(app.url("/api/auth/logout"))
        .header(header::COOKIE, format!("refresh_token={token}"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let cleared = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("the cookie is cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_error(
        refresh_with(&app, &token).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;

    let anonymous = Client::new()
        .post(app.url("/api/auth/logout"))
        .send()
        .await
        .expect("sent");
    assert_eq!(anonymous.status(), StatusCode::NO_CONTENT);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn the_browser_flow_refreshes_with_its_cookie_jar(db: PgPool) {
    let app = spawn(db).await;
    app.register("fan@example.test", "Fan").await;
    app.login("fan@example.test", PASSWORD).await;
    let response = app.post("/api/auth/refresh", &json!({})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let refreshed = Client::new()
        .post(app.url("/api/auth/refresh"))
        .send()
        .await
        .expect("sent");
    assert_error(refreshed, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn forged_expired_and_foreign_tokens_are_refused(db: PgPool) {
    let app = spawn(db).await;
    let (id, good, _) = app.fan("fan@example.test").await;
    let sub: UserId = id.parse().expect("uuid");
    let admin_claims = AccessClaims {
        sub,
        role: Role::Admin,
    };
    let hour = Duration::from_secs(3600);

    let missing = app.get("/api/me").await;
    assert_error(missing, StatusCode::UNAUTHORIZED, "unauthorized").await;

    let not_bearer = app
        .client
        .get(app.url("/api/me"))
        .header(header::AUTHORIZATION, format!("Basic {good}"))
        .send()
        .await
        .expect("sent");
    assert_error(not_bearer, StatusCode::UNAUTHORIZED, "unauthorized").await;

    // Signed with a key the server does not trust.
    let stranger = TokenKeys::generate(KeyPurpose::Access)
        .sign(admin_claims.clone(), hour)
        .expect("signs");
    // The right key, but long expired.
    let expired = app
        .keys
        .access
        .sign_at(
            admin_claims.clone(),
            OffsetDateTime::now_utc() - time::Duration::hours(2),
            hour,
        )
        .expect("signs");
    // A real token whose payload was swapped for one that says admin.
    let parts: Vec<&str> = good.split('.').collect();
    let admin_payload = stranger.split('.').nth(1).expect("payload");
    let tampered = format!("{}.{admin_payload}.{}", parts[0], parts[2]);
    // `alg: none` with the real payload and no signature.
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]);
    // A token of another kind, signed with the very key of access tokens.
    let admission = app
        .keys
        .access
        .sign(
            AdmissionClaims {
                sub,
                evt: EventId::new(),
                jti: uuid::Uuid::new_v4(),
            },
            hour,
        )
        .expect("signs");

    for (what, token, code) in [
        ("stranger", stranger, "invalid_token"),
        ("expired", expired, "token_expired"),
        ("tampered", tampered, "invalid_token"),
        ("alg none", none, "invalid_token"),
        ("admission", admission, "invalid_token"),
        ("garbage", "not.a.token".to_string(), "invalid_token"),
    ] {
        let response = app.get_as("/api/me", &token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_error(response, StatusCode::UNAUTHORIZED, code).await;
        let admin = app.get_as("/api/admin/users", &token).await;
        assert_eq!(
            admin.status(),
            StatusCode::UNAUTHORIZED,
            "{what} on an admin route"
        );
    }
    assert_eq!(app.get_as("/api/me", &good).await.status(), StatusCode::OK);
}
