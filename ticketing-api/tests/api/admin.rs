//! Organizer applications, bans and the audit log; admins only.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::tokens::AccessClaims;
use sqlx::PgPool;

use testkit::api::{TestApp, assert_error, spawn};

async fn audit_actions(app: &TestApp, admin: &str) -> Vec<String> {
    let log: Value = app.get_json_as("/api/admin/audit-log", admin).await;
    log["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|entry| entry["action"].as_str().expect("action").to_string())
        .collect()
}

/// Has the audit log an entry of `action`?
async fn audited(app: &TestApp, admin: &str, action: &str) -> bool {
    audit_actions(app, admin)
        .await
        .iter()
        .any(|logged| logged == action)
}

/// `POST /api/organizer/applications` as `token`.
async fn apply(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    app.post_as("/api/organizer/applications", token, body)
        .await
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_fan_applies_an_admin_approves_and_the_next_token_says_organizer(db: PgPool) {
    let app = spawn(db).await;
    let (fan_id, fan, fan_client) = app.fan("org@example.test").await;

    let applied = apply(
        &app,
        &fan,
        &json!({"company": "Acme Live", "details": "We run 40 shows a year."}),
    )
    .await;
    assert_eq!(applied.status(), StatusCode::CREATED);
    let me: Value = app.get_json_as("/api/me", &fan).await;
    assert_eq!(me["organizer_status"], "pending");

    let twice = apply(&app, &fan, &json!({"company": "Acme"})).await;
    assert_error(twice, StatusCode::CONFLICT, "application_pending").await;

    let admin = app.admin_token().await;
    let pending: Value = app
        .get_json_as("/api/admin/organizer-applications", &admin)
        .await;
    assert_eq!(pending[0]["company"], "Acme Live");
    assert_eq!(pending[0]["user_id"], fan_id.as_str());
    // The admin sees who applied, not just an id.
    assert_eq!(pending[0]["applicant_email"], "org@example.test");
    assert!(pending[0]["applicant_name"].is_string(), "{pending}");

    let approved = app
        .post_as(
            &format!("/api/admin/organizers/{fan_id}/approve"),
            &admin,
            &json!({}),
        )
        .await;
    assert_eq!(approved.status(), StatusCode::OK);
    let approved: Value = approved.json().await.expect("json");
    assert_eq!(approved["role"], "organizer");
    assert_eq!(approved["organizer_status"], "approved");

    // Deciding twice finds nothing pending.
    let again = app
        .post_as(
            &format!("/api/admin/organizers/{fan_id}/approve"),
            &admin,
            &json!({}),
        )
        .await;
    assert_error(again, StatusCode::CONFLICT, "no_pending_application").await;

    // The fan's browser refreshes and gets a token that carries the new role.
    let token = &testkit::api::refreshed_token(&app, &fan_client).await;
    let claims = app
        .keys
        .access
        .verify::<AccessClaims>(token)
        .expect("valid")
        .claims;
    assert_eq!(claims.role, shared::domain::Role::Organizer);

    let organizer_again = apply(&app, token, &json!({"company": "Acme"})).await;
    assert_error(organizer_again, StatusCode::CONFLICT, "already_organizer").await;
    assert!(audited(&app, &admin, "organizer.approve").await);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_rejected_fan_stays_a_fan_and_may_apply_again(db: PgPool) {
    let app = spawn(db).await;
    let (fan_id, fan, _) = app.fan("hopeful@example.test").await;
    apply(&app, &fan, &json!({"company": "Tiny"})).await;
    let admin = app.admin_token().await;
    let rejected: Value = app
        .post_as(
            &format!("/api/admin/organizers/{fan_id}/reject"),
            &admin,
            &json!({}),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(rejected["role"], "fan");
    assert_eq!(rejected["organizer_status"], "rejected");
    let again = apply(&app, &fan, &json!({"company": "Tiny 2"})).await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert!(audited(&app, &admin, "organizer.reject").await);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn fans_and_organizers_cannot_use_admin_endpoints(db: PgPool) {
    let app = spawn(db).await;
    let (fan_id, fan, _) = app.fan("fan@example.test").await;
    let (other_id, _, _) = app.fan("other@example.test").await;
    let audit_before = app.count("audit_log").await;

    for path in [
        "/api/admin/users",
        "/api/admin/audit-log",
        "/api/admin/organizer-applications",
    ] {
        assert_error(
            app.get_as(path, &fan).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
    }
    for path in [
        format!("/api/admin/organizers/{fan_id}/approve"),
        format!("/api/admin/organizers/{fan_id}/reject"),
        format!("/api/admin/users/{other_id}/ban"),
        format!("/api/admin/users/{other_id}/unban"),
    ] {
        let response = app
            .post_as(&path, &fan, &json!({"reason": "because"}))
            .await;
        assert_error(response, StatusCode::FORBIDDEN, "forbidden").await;
    }
    let me: Value = app.get_json_as("/api/me", &fan).await;
    assert_eq!(me["role"], "fan");
    assert_eq!(app.count("audit_log").await, audit_before);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_banned_fan_is_locked_out_at_once_and_the_ban_is_audited(db: PgPool) {
    let app = spawn(db).await;
    let (fan_id, fan, fan_client) = app.fan("trouble@example.test").await;
    let admin = app.admin_token().await;

    let banned = app
        .post_as(
            &format!("/api/admin/users/{fan_id}/ban"),
            &admin,
            &json!({"reason": "ticket touting"}),
        )
        .await;
    assert_eq!(banned.status(), StatusCode::OK);

    // The live access token stops working now, not in 15 minutes.
    assert_error(
        app.get_as("/api/me", &fan).await,
        StatusCode::FORBIDDEN,
        "banned",
    )
    .await;
    // The refresh token was revoked.
    let refresh = fan_client
        .post(app.url("/api/auth/refresh"))
        .send()
        .await
        .expect("sent");
    assert_eq!(refresh.status(), StatusCode::UNAUTHORIZED);
    // And the right password no longer logs in.
    let login = app
        .post(
            "/api/auth/login",
            &json!({"email": "trouble@example.test", "password": testkit::api::PASSWORD}),
        )
        .await;
    assert_error(login, StatusCode::FORBIDDEN, "banned").await;

    let actions = audit_actions(&app, &admin).await;
    assert!(actions.contains(&"user.ban".to_string()), "{actions:?}");

    let unbanned = app
        .post_as(
            &format!("/api/admin/users/{fan_id}/unban"),
            &admin,
            &json!({}),
        )
        .await;
    assert_eq!(unbanned.status(), StatusCode::OK);
    app.login("trouble@example.test", testkit::api::PASSWORD)
        .await;
    assert!(audited(&app, &admin, "user.unban").await);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_ban_made_on_one_instance_reaches_another_within_seconds(db: PgPool) {
    let first = spawn(db.clone()).await;
    let second = spawn(db).await;
    let (fan_id, _, _) = first.fan("roaming@example.test").await;
    // Each test app has its own signing keys, so the fan logs in on the second one too.
    let fan_on_second = second
        .login("roaming@example.test", testkit::api::PASSWORD)
        .await;
    assert_eq!(
        second.get_as("/api/me", &fan_on_second).await.status(),
        StatusCode::OK
    );

    let admin = first.admin_token().await;
    let banned = first
        .post_as(
            &format!("/api/admin/users/{fan_id}/ban"),
            &admin,
            &json!({"reason": "bots"}),
        )
        .await;
    assert_eq!(banned.status(), StatusCode::OK);

    let started = Instant::now();
    loop {
        let status = second.get_as("/api/me", &fan_on_second).await.status();
        if status == StatusCode::FORBIDDEN {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still {status} after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn admins_cannot_be_banned_and_bans_need_a_reason(db: PgPool) {
    let app = spawn(db).await;
    let admin = app.admin_token().await;
    let me: Value = app.get_json_as("/api/me", &admin).await;
    let admin_id = me["id"].as_str().expect("id");
    let response = app
        .post_as(
            &format!("/api/admin/users/{admin_id}/ban"),
            &admin,
            &json!({"reason": "x"}),
        )
        .await;
    assert_error(response, StatusCode::CONFLICT, "cannot_ban_admin").await;

    let (fan_id, _, _) = app.fan("fan@example.test").await;
    for reason in [json!({"reason": "   "}), json!({"reason": "x".repeat(501)})] {
        let response = app
            .post_as(&format!("/api/admin/users/{fan_id}/ban"), &admin, &reason)
            .await;
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    }
    let unknown = app
        .post_as(
            &format!("/api/admin/users/{}/ban", uuid::Uuid::new_v4()),
            &admin,
            &json!({"reason": "ghost"}),
        )
        .await;
    assert_error(unknown, StatusCode::NOT_FOUND, "not_found").await;
    let (banned_at,): (Option<time::OffsetDateTime>,) =
        sqlx::query_as("SELECT banned_at FROM users WHERE email = 'fan@example.test'")
            .fetch_one(&app.db)
            .await
            .expect("row");
    assert!(banned_at.is_none());
    assert_eq!(app.count("audit_log").await, 0);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn admins_search_users_by_email_or_name_with_pagination(db: PgPool) {
    let app = spawn(db).await;
    for i in 0..25 {
        app.register(&format!("fan{i}@example.test"), &format!("Fan {i}"))
            .await;
    }
    app.register("zed@elsewhere.test", "Zed 100%").await;
    let admin = app.admin_token().await;

    let page: Value = app
        .get_json_as("/api/admin/users?q=example&page=2&per_page=10", &admin)
        .await;
    // 25 fans and the admin have "example" in their email.
    assert_eq!(page["total"], 26);
    assert_eq!(page["items"].as_array().expect("items").len(), 10);
    assert_eq!(page["page"], 2);

    // `%` is searched for literally, not as a wildcard.
    let literal: Value = app.get_json_as("/api/admin/users?q=100%25", &admin).await;
    assert_eq!(literal["total"], 1);
    assert_eq!(literal["items"][0]["email"], "zed@elsewhere.test");
}
