//! `/api/admin/dead-letters`: admins see the booking commands the workers gave up on, and
//! resolve them with an audited note. The rows are what a registration worker records (its own
//! tests write them from a real dead-letter queue); here they are inserted directly.

use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::domain::Role;
use sqlx::PgPool;

use testkit::api::{TestApp, assert_error, spawn};

/// A dead letter as the worker records it; returns its id.
async fn dead_letter(
    app: &TestApp,
    dedup: &str,
    booking: Option<uuid::Uuid>,
    payload: &str,
) -> i64 {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO dead_letters (dedup_key, booking_id, event_id, payload, reason, death_count)
         VALUES ($1, $2, NULL, $3, 'rejected: not a booking command', 1)
         RETURNING id",
    )
    .bind(dedup)
    .bind(booking)
    .bind(payload)
    .fetch_one(&app.db)
    .await
    .expect("dead letter");
    id
}

async fn page(app: &TestApp, token: &str, query: &str) -> Value {
    let response = app
        .get_as(&format!("/api/admin/dead-letters{query}"), token)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("json")
}

fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["id"].as_i64().expect("id"))
        .collect()
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn an_admin_sees_open_dead_letters_and_resolves_one_with_an_audited_note(db: PgPool) {
    let app = spawn(db).await;
    let admin = app.admin_token().await;
    let first = dead_letter(&app, "md5:a", None, "{\"not\": \"a command\"").await;
    let booking = uuid::Uuid::new_v4();
    let second = dead_letter(&app, "booking:x", Some(booking), "{\"booking_id\": 1}").await;
    let third = dead_letter(&app, "md5:c", None, "<binary>").await;

    let open = page(&app, &admin, "").await;
    assert_eq!(ids(&open), vec![third, second, first], "newest first");
    assert_eq!(open["total"], 3);
    let item = &open["items"][1];
    assert_eq!(item["booking_id"], booking.to_string());
    assert_eq!(item["payload"], "{\"booking_id\": 1}");
    assert_eq!(item["reason"], "rejected: not a booking command");
    assert_eq!(item["death_count"], 1);
    assert_eq!(item["resolved_at"], Value::Null);
    let paged = page(&app, &admin, "?page=2&per_page=1").await;
    assert_eq!(
        (ids(&paged), paged["total"].as_i64()),
        (vec![second], Some(3))
    );

    let audit_before = app.count("audit_log").await;
    let resolved = app
        .post_as(
            &format!("/api/admin/dead-letters/{second}/resolve"),
            &admin,
            &json!({"note": "  Replayed by hand; the fan was refunded.  "}),
        )
        .await;
    assert_eq!(resolved.status(), StatusCode::OK);
    let resolved: Value = resolved.json().await.expect("json");
    assert_eq!(resolved["id"], second);
    assert_eq!(resolved["note"], "Replayed by hand; the fan was refunded.");
    assert!(resolved["resolved_at"].is_string(), "{resolved}");
    let me: Value = app.get_json_as("/api/me", &admin).await;
    assert_eq!(resolved["resolved_by"], me["id"]);

    assert_eq!(
        ids(&page(&app, &admin, "?status=open").await),
        vec![third, first]
    );
    assert_eq!(
        ids(&page(&app, &admin, "?status=resolved").await),
        vec![second]
    );
    assert_eq!(
        ids(&page(&app, &admin, "?status=all").await),
        vec![third, second, first]
    );
    assert_eq!(app.count("audit_log").await, audit_before + 1);
    let log: Value = app.get_json_as("/api/admin/audit-log", &admin).await;
    let entry = &log["items"][0];
    assert_eq!(entry["action"], "dead_letter.resolve");
    assert_eq!(entry["target_type"], "dead_letter");
    assert_eq!(entry["target_id"], second.to_string());
    assert_eq!(
        entry["details"]["note"],
        "Replayed by hand; the fan was refunded."
    );
    assert_eq!(entry["actor_id"], me["id"]);

    // Once only: a second resolution is refused and changes nothing.
    let again = app
        .post_as(
            &format!("/api/admin/dead-letters/{second}/resolve"),
            &admin,
            &json!({"note": "again"}),
        )
        .await;
    assert_error(again, StatusCode::CONFLICT, "already_resolved").await;
    let (note,): (Option<String>,) = sqlx::query_as("SELECT note FROM dead_letters WHERE id = $1")
        .bind(second)
        .fetch_one(&app.db)
        .await
        .expect("note");
    assert_eq!(
        note.as_deref(),
        Some("Replayed by hand; the fan was refunded.")
    );
    assert_eq!(app.count("audit_log").await, audit_before + 1);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn dead_letters_are_for_admins_only_and_hostile_input_changes_nothing(db: PgPool) {
    let app = spawn(db).await;
    let admin = app.admin_token().await;
    let id = dead_letter(&app, "md5:a", None, "x").await;
    let audit_before = app.count("audit_log").await;
    let resolve = format!("/api/admin/dead-letters/{id}/resolve");
    let note = json!({"note": "fine"});

    // Nobody, a fan, an organizer.
    let anonymous = app
        .client
        .get(app.url("/api/admin/dead-letters"))
        .send()
        .await;
    assert_error(
        anonymous.expect("sent"),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let anonymous = app.post(&resolve, &note).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    for role in [Role::Fan, Role::Organizer] {
        let (_, token) = app.mint(role).await;
        let listed = app.get_as("/api/admin/dead-letters", &token).await;
        assert_error(listed, StatusCode::FORBIDDEN, "forbidden").await;
        let resolved = app.post_as(&resolve, &token, &note).await;
        assert_error(resolved, StatusCode::FORBIDDEN, "forbidden").await;
    }
    let forged = app.get_as("/api/admin/dead-letters", "not.a.token").await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);

    // Bad queries.
    for (query, status, code) in [
        (
            "?status=bogus",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_status",
        ),
        (
            "?status=open'%20OR%201=1%20--",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_status",
        ),
        (
            "?status=OPEN",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_status",
        ),
        (
            "?per_page=0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_pagination",
        ),
        (
            "?per_page=1000",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_pagination",
        ),
        (
            "?page=0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_pagination",
        ),
        ("?page=abc", StatusCode::BAD_REQUEST, "invalid_query"),
        (
            "?page=99999999999999999999999",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
    ] {
        let response = app
            .get_as(&format!("/api/admin/dead-letters{query}"), &admin)
            .await;
        assert_error(response, status, code).await;
    }

    // Bad ids and bodies.
    for (path, body, status, code) in [
        (
            "/api/admin/dead-letters/999999/resolve".to_string(),
            note.clone(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "/api/admin/dead-letters/-1/resolve".to_string(),
            note.clone(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "/api/admin/dead-letters/abc/resolve".to_string(),
            note.clone(),
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        (
            "/api/admin/dead-letters/1%20OR%201=1/resolve".to_string(),
            note.clone(),
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        (
            "/api/admin/dead-letters/99999999999999999999999/resolve".to_string(),
            note.clone(),
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        (
            resolve.clone(),
            json!({"note": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            resolve.clone(),
            json!({"note": "   "}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            resolve.clone(),
            json!({"note": "x".repeat(1001)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            resolve.clone(),
            json!({"note": "a\u{0}b"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_text",
        ),
        (
            resolve.clone(),
            json!({}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            resolve.clone(),
            json!({"note": 5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            resolve.clone(),
            json!([1, 2]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
    ] {
        let response = app.post_as(&path, &admin, &body).await;
        assert_error(response, status, code).await;
    }
    let malformed = app
        .client
        .post(app.url(&resolve))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{\"note\": ")
        .send()
        .await
        .expect("sent");
    assert_error(malformed, StatusCode::BAD_REQUEST, "malformed_json").await;
    let not_json = app
        .client
        .post(app.url(&resolve))
        .bearer_auth(&admin)
        .body("note=fine")
        .send()
        .await
        .expect("sent");
    assert_error(
        not_json,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;

    // None of it changed anything.
    let (resolved,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM dead_letters WHERE resolved_at IS NOT NULL")
            .fetch_one(&app.db)
            .await
            .expect("count");
    assert_eq!(resolved, 0);
    assert_eq!(app.count("audit_log").await, audit_before);

    // A hostile but valid note is kept as text, never run.
    let hostile = "'); DROP TABLE dead_letters; -- <script>alert(1)</script>";
    let response = app
        .post_as(&resolve, &admin, &json!({"note": hostile}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let listed = page(&app, &admin, "?status=resolved").await;
    assert_eq!(listed["items"][0]["note"], hostile);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn the_openapi_document_describes_the_dead_letter_endpoints(db: PgPool) {
    let app = spawn(db).await;
    let doc = app.get_json("/api/openapi.json").await;
    for (path, method) in [
        ("/api/admin/dead-letters", "get"),
        ("/api/admin/dead-letters/{id}/resolve", "post"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is not documented"
        );
    }
    assert!(
        doc["components"]["schemas"]["DeadLetterView"].is_object(),
        "schema DeadLetterView missing"
    );
}
