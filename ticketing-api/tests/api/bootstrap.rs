//! The bootstrap admin (`ADMIN_EMAIL` / `ADMIN_PASSWORD`): it is created when no account has
//! that address, and an existing account is never changed by it — no promotion of a fan who
//! signed up with the address first, no password reset, no lifted ban.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use shared::config::{AdminBootstrap, Secret};
use sqlx::PgPool;

use testkit::api::{
    ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, TestApp, assert_error, new_client, simple_config, spawn,
    spawn_with,
};

const OPERATOR_PASSWORD: &str = "the-operators-pass-1";

/// The app restarted on the same database with `ADMIN_EMAIL=email`.
async fn restart_with_admin(app: &TestApp, email: &str) -> TestApp {
    let mut config = simple_config();
    config.auth.admin = Some(AdminBootstrap {
        email: email.into(),
        password: Secret::new(OPERATOR_PASSWORD.into()),
    });
    spawn_with(app.db.clone(), config).await
}

async fn login(app: &TestApp, client: &Client, email: &str, password: &str) -> reqwest::Response {
    client
        .post(app.url("/api/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("sent")
}

async fn role_and_ban(app: &TestApp, email: &str) -> (String, bool) {
    sqlx::query_as("SELECT role, banned_at IS NOT NULL FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(&app.db)
        .await
        .expect("the account exists")
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_fan_who_took_the_admin_address_first_is_not_promoted_by_a_restart(db: PgPool) {
    let first = spawn(db).await;
    first.register("ops@example.test", "Squatter").await;
    // The squatter keeps a logged-in browser: its refresh cookie must not turn into admin rights.
    let squatter = new_client();
    let logged_in = login(&first, &squatter, "ops@example.test", PASSWORD).await;
    assert_eq!(logged_in.status(), StatusCode::OK);

    // The operator deploys with that address; the API still starts.
    let app = restart_with_admin(&first, "Ops@Example.test").await;

    assert_eq!(
        role_and_ban(&app, "ops@example.test").await,
        ("fan".to_string(), false)
    );
    let own = login(&app, &new_client(), "ops@example.test", PASSWORD).await;
    assert_eq!(own.status(), StatusCode::OK);
    let own: Value = own.json().await.expect("json");
    assert_eq!(own["user"]["role"], "fan");
    let operators = login(&app, &new_client(), "ops@example.test", OPERATOR_PASSWORD).await;
    assert_error(operators, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    let token = &testkit::api::refreshed_token(&app, &squatter).await;
    let me: Value = app.get_json_as("/api/me", token).await;
    assert_eq!(me["role"], "fan");
    let admin_page = app.get_as("/api/admin/users", token).await;
    assert_error(admin_page, StatusCode::FORBIDDEN, "forbidden").await;
    // Exactly one account has the address, and no admin was made from it.
    let (admins,): (i64,) = sqlx::query_as("SELECT count(*) FROM users WHERE role = 'admin'")
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(admins, 1, "only the first app's own admin");
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_banned_account_with_the_admin_address_stays_banned_after_a_restart(db: PgPool) {
    let first = spawn(db).await;
    let fan = first.register("ops@example.test", "Squatter").await;
    let id = fan["user"]["id"].as_str().expect("id");
    let admin = first.admin_token().await;
    let banned = first
        .post_as(
            &format!("/api/admin/users/{id}/ban"),
            &admin,
            &json!({"reason": "squatting the operator's address"}),
        )
        .await;
    assert_eq!(banned.status(), StatusCode::OK);

    let app = restart_with_admin(&first, "ops@example.test").await;

    assert_eq!(
        role_and_ban(&app, "ops@example.test").await,
        ("fan".to_string(), true)
    );
    let own = login(&app, &new_client(), "ops@example.test", PASSWORD).await;
    assert_error(own, StatusCode::FORBIDDEN, "banned").await;
    let operators = login(&app, &new_client(), "ops@example.test", OPERATOR_PASSWORD).await;
    assert_error(operators, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn an_existing_admin_keeps_its_password_and_its_ban_across_restarts(db: PgPool) {
    let first = spawn(db).await;
    // ADMIN_PASSWORD changed in the environment: it seeds, it does not reset.
    let app = restart_with_admin(&first, ADMIN_EMAIL).await;
    let old = login(&app, &new_client(), ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(old.status(), StatusCode::OK);
    let new = login(&app, &new_client(), ADMIN_EMAIL, OPERATOR_PASSWORD).await;
    assert_error(new, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    // An admin barred in the database (the API refuses to ban admins) stays barred.
    sqlx::query("UPDATE users SET banned_at = now() WHERE email = $1")
        .bind(ADMIN_EMAIL)
        .execute(&app.db)
        .await
        .expect("ban");
    let again = restart_with_admin(&app, ADMIN_EMAIL).await;
    assert_eq!(
        role_and_ban(&again, ADMIN_EMAIL).await,
        ("admin".to_string(), true)
    );
    let refused = login(&again, &new_client(), ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_error(refused, StatusCode::FORBIDDEN, "banned").await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_free_admin_address_gets_the_admin_with_the_configured_password(db: PgPool) {
    let first = spawn(db).await;
    let app = restart_with_admin(&first, "new-ops@example.test").await;
    assert_eq!(
        role_and_ban(&app, "new-ops@example.test").await,
        ("admin".to_string(), false)
    );
    let token = testkit::api::login_with(
        &new_client(),
        &app,
        "new-ops@example.test",
        OPERATOR_PASSWORD,
    )
    .await;
    let users = app.get_as("/api/admin/users", &token).await;
    assert_eq!(users.status(), StatusCode::OK);
}
