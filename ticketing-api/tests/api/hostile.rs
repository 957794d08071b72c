//! Malformed and hostile requests on every account endpoint: each gets a clear 4xx with the
//! contract's error body, and nothing changes.

use reqwest::{StatusCode, header};
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{PASSWORD, TestApp, assert_error, spawn};

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
