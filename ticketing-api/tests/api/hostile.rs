//! Malformed and hostile requests on every account endpoint: each gets a clear 4xx with the
//! contract's error body, and nothing changes.

use reqwest::{StatusCode, header};
use serde_json::Value;
use serde_json::json;
use sqlx::PgPool;

use testkit::api::{
    PASSWORD, TestApp, assert_error, create_event, event_body, grid_venue, organizer, scalar, spawn,
};

/// Rows that a request could have touched; compared before and after.
async fn snapshot(app: &TestApp) -> [i64; 4] {
    [
        app.count("users").await,
        app.count("refresh_tokens").await,
        app.count("organizer_applications").await,
        app.count("audit_log").await,
    ]
}

async fn raw_post(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut request = app.client.post(app.url(path)).body(body);
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("sent")
}

/// A body that no JSON endpoint may accept, and the answer it must get.
struct Malformed {
    what: &'static str,
    content_type: Option<&'static str>,
    body: &'static [u8],
    status: StatusCode,
    code: &'static str,
}

const JSON: Option<&str> = Some("application/json");

const MALFORMED: [Malformed; 7] = [
    Malformed {
        what: "truncated",
        content_type: JSON,
        body: b"{\"email\": ",
        status: StatusCode::BAD_REQUEST,
        code: "malformed_json",
    },
    Malformed {
        what: "not json",
        content_type: JSON,
        body: b"email=a&password=b",
        status: StatusCode::BAD_REQUEST,
        code: "malformed_json",
    },
    Malformed {
        what: "an array",
        content_type: JSON,
        body: b"[1, 2, 3]",
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: "invalid_body",
    },
    Malformed {
        what: "empty object",
        content_type: JSON,
        body: b"{}",
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: "invalid_body",
    },
    Malformed {
        what: "wrong types",
        content_type: JSON,
        body: br#"{"email": 5, "password": [], "name": {}, "company": 7, "reason": false}"#,
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: "invalid_body",
    },
    Malformed {
        what: "null fields",
        content_type: JSON,
        body:
            br#"{"email": null, "password": null, "name": null, "company": null, "reason": null}"#,
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: "invalid_body",
    },
    Malformed {
        what: "no content type",
        content_type: None,
        body: br#"{"email": "a@b.test"}"#,
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        code: "unsupported_media_type",
    },
];

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn malformed_bodies_on_every_json_endpoint_change_nothing(db: PgPool) {
    let app = spawn(db).await;
    let (fan_id, fan, _) = app.fan("fan@example.test").await;
    let admin = app.admin_token().await;
    let before = snapshot(&app).await;
    let ban = format!("/api/admin/users/{fan_id}/ban");
    let endpoints: [(&str, Option<&str>); 4] = [
        ("/api/auth/register", None),
        ("/api/auth/login", None),
        ("/api/organizer/applications", Some(fan.as_str())),
        (ban.as_str(), Some(admin.as_str())),
    ];
    for (path, token) in endpoints {
        for case in MALFORMED {
            let response = raw_post(&app, path, token, case.content_type, case.body).await;
            assert_eq!(response.status(), case.status, "{} on {path}", case.what);
            assert_error(response, case.status, case.code).await;
        }
    }
    assert_eq!(snapshot(&app).await, before);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_three_megabyte_body_is_refused_with_413(db: PgPool) {
    let app = spawn(db).await;
    let before = snapshot(&app).await;
    let huge = json!({
        "email": "big@example.test",
        "password": PASSWORD,
        "name": "x".repeat(3 * 1024 * 1024),
    })
    .to_string();
    let response = raw_post(
        &app,
        "/api/auth/register",
        None,
        Some("application/json"),
        huge,
    )
    .await;
    // The server answers before the client has finished sending and then closes, so the body
    // may be cut off by the reset; the status and type arrive.
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");

    // The same without a Content-Length (chunked): the limit holds while streaming.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..48).map(|_| Ok(vec![b' '; 64 * 1024])).collect();
    let streamed = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let response = raw_post(
        &app,
        "/api/auth/register",
        None,
        Some("application/json"),
        streamed,
    )
    .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(snapshot(&app).await, before);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn bad_emails_short_passwords_and_bad_names_are_422(db: PgPool) {
    let app = spawn(db).await;
    let before = snapshot(&app).await;
    let long_local = format!("{}@example.test", "a".repeat(65));
    for email in [
        "",
        "plain",
        "@example.test",
        "fan@",
        "fan@localhost",
        "two@@example.test",
        "sp ace@example.test",
        "fan@exa mple.test",
        long_local.as_str(),
    ] {
        let response = app
            .post(
                "/api/auth/register",
                &json!({"email": email, "password": PASSWORD, "name": "N"}),
            )
            .await;
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_email").await;
    }
    for password in ["", "1234567", "short"] {
        let response = app
            .post(
                "/api/auth/register",
                &json!({"email": "ok@example.test", "password": password, "name": "N"}),
            )
            .await;
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "weak_password").await;
    }
    let too_long = "p".repeat(129);
    let response = app
        .post(
            "/api/auth/register",
            &json!({"email": "ok@example.test", "password": too_long, "name": "N"}),
        )
        .await;
    assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "weak_password").await;
    for name in ["", "   ", "bell\u{7}", &"n".repeat(201)] {
        let response = app
            .post(
                "/api/auth/register",
                &json!({"email": "ok@example.test", "password": PASSWORD, "name": name}),
            )
            .await;
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    }
    assert_eq!(snapshot(&app).await, before);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn bad_ids_and_bad_query_strings_are_4xx(db: PgPool) {
    let app = spawn(db).await;
    let admin = app.admin_token().await;
    let before = snapshot(&app).await;
    for id in [
        "not-a-uuid",
        "1",
        "%27%20OR%201%3D1--",
        "00000000-0000-0000-0000",
    ] {
        let response = app
            .post_as(
                &format!("/api/admin/users/{id}/ban"),
                &admin,
                &json!({"reason": "r"}),
            )
            .await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_path").await;
        let response = app
            .post_as(
                &format!("/api/admin/organizers/{id}/approve"),
                &admin,
                &json!({}),
            )
            .await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_path").await;
    }
    for query in ["page=abc", "per_page=-", "page=1e9999"] {
        let response = app
            .get_as(&format!("/api/admin/users?{query}"), &admin)
            .await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_query").await;
    }
    for query in ["page=0", "per_page=0", "per_page=1000", "page=-3"] {
        let response = app
            .get_as(&format!("/api/admin/users?{query}"), &admin)
            .await;
        assert_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_pagination",
        )
        .await;
    }
    let response = app
        .get_as(
            "/api/admin/organizer-applications?status=everything",
            &admin,
        )
        .await;
    assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_status").await;
    let response = app
        .get_as(&format!("/api/admin/users?q={}", "q".repeat(201)), &admin)
        .await;
    assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_query").await;
    assert_eq!(snapshot(&app).await, before);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn organizer_applications_are_validated(db: PgPool) {
    let app = spawn(db).await;
    let (_, fan, _) = app.fan("fan@example.test").await;
    let before = snapshot(&app).await;
    for body in [
        json!({"company": ""}),
        json!({"company": "   "}),
        json!({"company": "c".repeat(201)}),
        json!({"company": "Fine", "details": "d".repeat(5001)}),
    ] {
        let response = app
            .post_as("/api/organizer/applications", &fan, &body)
            .await;
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    }
    let anonymous = app
        .post("/api/organizer/applications", &json!({"company": "Anon"}))
        .await;
    assert_error(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_eq!(snapshot(&app).await, before);
}

/// Every row a text-taking endpoint could write, compared before and after.
async fn all_rows(app: &TestApp) -> Vec<i64> {
    let mut rows = snapshot(app).await.to_vec();
    for sql in [
        "SELECT count(*) FROM venues",
        "SELECT count(*) FROM events",
        "SELECT count(*) FROM ticket_classes",
        "SELECT count(*) FROM seats",
        "SELECT count(*) FROM bookings",
        "SELECT count(*) FROM users WHERE banned_at IS NOT NULL",
        "SELECT count(*) FROM events WHERE title <> 'Band live' OR description <> ''",
    ] {
        rows.push(scalar(app, sql).await);
    }
    rows
}

/// A text-taking request: method, path, token, a body that would be accepted, and the
/// pointers of its text fields.
type Case<'a> = (
    reqwest::Method,
    String,
    Option<&'a str>,
    Value,
    Vec<&'static str>,
);

/// `body` with a NUL character put into the middle of the string at `pointer`.
fn with_nul(body: &Value, pointer: &str) -> Value {
    let mut body = body.clone();
    let field = body
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer} is not in the body"));
    let text = field.as_str().expect("a string field").to_string();
    let middle = text.len() / 2;
    *field = json!(format!("{}\u{0}{}", &text[..middle], &text[middle..]));
    body
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_nul_character_in_any_text_field_or_query_is_422_and_changes_nothing(db: PgPool) {
    let app = spawn(db).await;
    let (fan_id, fan, _) = app.fan("fan@example.test").await;
    let admin = app.admin_token().await;
    let (organizer, _) = organizer(&app).await;
    let venue = grid_venue(&app, &organizer, &[("A", 2, 2)]).await;
    let classes = json!([{"name": "Normal", "price": 0, "currency": "EUR", "sections": ["A"]}]);
    let new_event = event_body(&venue, classes);
    let event = create_event(&app, &organizer, &new_event).await;
    let event = event["id"].as_str().expect("id").to_string();
    let svg = r#"<svg xmlns="http://www.w3.org/2000/svg"><rect width="9" height="9"/></svg>"#;

    // (method, path, token, a body that would be accepted, the text fields to spoil)
    let put = reqwest::Method::PUT;
    let post = reqwest::Method::POST;
    let patch = reqwest::Method::PATCH;
    let cases: Vec<Case> = vec![
        (
            post.clone(),
            "/api/auth/register".into(),
            None,
            json!({"email": "new@example.test", "password": PASSWORD, "name": "New Fan"}),
            vec!["/email", "/password", "/name"],
        ),
        (
            post.clone(),
            "/api/auth/login".into(),
            None,
            json!({"email": "fan@example.test", "password": PASSWORD}),
            vec!["/email", "/password"],
        ),
        (
            post.clone(),
            "/api/organizer/applications".into(),
            Some(&fan),
            json!({"company": "Acme Live", "details": "We run shows."}),
            vec!["/company", "/details"],
        ),
        (
            post.clone(),
            format!("/api/admin/users/{fan_id}/ban"),
            Some(&admin),
            json!({"reason": "spam"}),
            vec!["/reason"],
        ),
        (
            post.clone(),
            "/api/venues".into(),
            Some(&organizer),
            json!({"name": "Arena", "city": "Oslo",
                   "layout": {"kind": "grid",
                              "sections": [{"name": "A", "rows": 1, "seats_per_row": 2}]}}),
            vec!["/name", "/city", "/layout/kind", "/layout/sections/0/name"],
        ),
        (
            post.clone(),
            "/api/venues".into(),
            Some(&organizer),
            json!({"name": "Hall", "city": "Bergen",
                   "layout": {"kind": "svg", "svg": svg,
                              "seats": [{"label": "FLOOR-1-1", "x": 1, "y": 1}]}}),
            vec!["/layout/svg", "/layout/seats/0/label"],
        ),
        (
            post.clone(),
            "/api/events".into(),
            Some(&organizer),
            {
                let mut body = new_event.clone();
                body["description"] = json!("Loud.");
                body
            },
            vec![
                "/title",
                "/description",
                "/venue_id",
                "/starts_at",
                "/classes/0/name",
                "/classes/0/currency",
                "/classes/0/sections/0",
            ],
        ),
        (
            patch,
            format!("/api/events/{event}"),
            Some(&organizer),
            json!({"title": "Renamed", "description": "New date"}),
            vec!["/title", "/description"],
        ),
        (
            put,
            format!("/api/events/{event}/demand-mode"),
            Some(&organizer),
            json!({"high_demand": true, "admit_per_minute": 10, "max_active": 10,
                   "note": "ignored field"}),
            vec!["/note"],
        ),
        (
            post.clone(),
            format!("/api/events/{event}/holds"),
            Some(&fan),
            json!({"class": "Normal", "quantity": 1}),
            vec!["/class"],
        ),
        (
            post.clone(),
            format!("/api/events/{event}/registrations"),
            Some(&fan),
            json!({"hold_id": uuid::Uuid::new_v4()}),
            vec!["/hold_id"],
        ),
        (
            post.clone(),
            "/api/checkin".into(),
            Some(&organizer),
            json!({"code": "not-a-ticket"}),
            vec!["/code"],
        ),
        (
            post,
            "/api/admin/dead-letters/1/resolve".into(),
            Some(&admin),
            json!({"note": "replayed by hand"}),
            vec!["/note"],
        ),
    ];
    let before = all_rows(&app).await;
    // Every answer that is not 422 `invalid_text`, so that one run names them all.
    let mut wrong = Vec::new();
    for (method, path, token, body, fields) in &cases {
        for field in fields {
            let mut request = app
                .client
                .request(method.clone(), app.url(path))
                .json(&with_nul(body, field));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("sent");
            let status = response.status();
            let answer: Value = response.json().await.unwrap_or_default();
            if status != StatusCode::UNPROCESSABLE_ENTITY || answer["error"] != "invalid_text" {
                wrong.push(format!("{method} {path} {field}: {status} {answer}"));
            }
        }
    }
    // A NUL spelled in a key, and in a string that is not the only thing in the body.
    let response = raw_post(
        &app,
        "/api/organizer/applications",
        Some(&fan),
        JSON,
        r#"{"company": "Acme", "deta\u0000ils": "x"}"#,
    )
    .await;
    if response.status() != StatusCode::UNPROCESSABLE_ENTITY {
        wrong.push(format!("a NUL in a key: {}", response.status()));
    }

    // Query strings: search boxes, filters and formats.
    for path in [
        "/api/events?q=%00".to_string(),
        "/api/events?q=band%00live&page=1".to_string(),
        "/api/admin/users?q=%00".to_string(),
        "/api/admin/organizer-applications?status=pending%00".to_string(),
        "/api/admin/dead-letters?status=%00".to_string(),
        format!("/api/events/{event}/seats?format=compact%00"),
    ] {
        let response = app.get_as(&path, &admin).await;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or_default();
        if status != StatusCode::UNPROCESSABLE_ENTITY || answer["error"] != "invalid_text" {
            wrong.push(format!("GET {path}: {status} {answer}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "not 422 invalid_text:\n{}",
        wrong.join("\n")
    );
    assert_eq!(all_rows(&app).await, before);

    // The same requests without the NUL still work: the refusal is about the NUL alone.
    let response = app.get_as("/api/events?q=band", &admin).await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .post_as(
            "/api/organizer/applications",
            &fan,
            &json!({"company": "Acme Live", "details": "a \\u0000 that is only text"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

/// The safety net behind the extractors: text that reaches Postgres with a NUL (here straight
/// through the domain code, as a route that forgot the shared extractors would) answers 422,
/// not 500.
#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn postgres_refusing_a_nul_byte_is_a_422_not_a_500(db: PgPool) {
    use axum::response::IntoResponse;
    let err = sqlx::query("SELECT $1::text")
        .bind("a\u{0}b")
        .execute(&db)
        .await
        .expect_err("Postgres refuses a NUL in text");
    let response = ticketing_api::error::ApiError::from(err).into_response();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let err = sqlx::query("SELECT $1::jsonb")
        .bind(r#"{"reason": "a\u0000b"}"#)
        .execute(&db)
        .await
        .expect_err("Postgres refuses \\u0000 in jsonb");
    let wrapped = anyhow::Error::new(err).context("recording the audit");
    let response = ticketing_api::error::ApiError::Internal(wrapped).into_response();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
}
