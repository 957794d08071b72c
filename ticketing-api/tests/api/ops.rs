//! Health, readiness, metrics, request ids, and the shape of errors the router makes itself.

use reqwest::StatusCode;
use serde_json::Value;
use shared::config::Secret;
use sqlx::PgPool;

use testkit::api::{assert_error, simple_config, spawn, spawn_with};

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn health_readiness_and_metrics_answer_directly_and_under_api(db: PgPool) {
    let app = spawn(db).await;
    for path in ["/healthz", "/api/healthz"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    let ready: Value = app.get_json("/readyz").await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["postgres"], true);
    assert_eq!(ready["checks"]["redis"], true);

    app.get("/api/me").await;
    let metrics = app.get("/metrics").await.text().await.expect("text");
    assert!(metrics.contains("http_requests_total"), "{metrics}");
    assert!(metrics.contains(r#"route="/api/me""#), "{metrics}");
    assert!(
        metrics.contains("http_request_duration_seconds_bucket"),
        "{metrics}"
    );
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn readiness_fails_when_redis_is_unreachable(db: PgPool) {
    let mut config = simple_config();
    config.redis.url = Secret::new("redis://127.0.0.1:1".into());
    let app = spawn_with(db, config).await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["checks"]["redis"], false);
    assert_eq!(body["checks"]["postgres"], true);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn every_response_carries_a_request_id_and_keeps_a_given_one(db: PgPool) {
    let app = spawn(db).await;
    let made = app.get("/healthz").await;
    let id = made.headers().get("x-request-id").expect("an id is made");
    assert!(uuid::Uuid::parse_str(id.to_str().expect("ascii")).is_ok());

    let given = app
        .client
        .get(app.url("/api/nope"))
        .header("x-request-id", "gateway-abc-123")
        .send()
        .await
        .expect("sent");
    assert_eq!(given.headers()["x-request-id"], "gateway-abc-123");
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn unknown_endpoints_and_wrong_methods_get_json_errors(db: PgPool) {
    let app = spawn(db).await;
    let missing = app.get("/api/nope").await;
    assert_error(missing, StatusCode::NOT_FOUND, "not_found").await;
    let wrong_method = app.get("/api/auth/login").await;
    assert_error(
        wrong_method,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn the_web_ui_is_served_when_running_without_the_gateway(db: PgPool) {
    let app = spawn(db).await;
    let page = app.get("/").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.expect("text").contains("<html"));
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn the_openapi_document_describes_every_account_endpoint(db: PgPool) {
    let app = spawn(db).await;
    let doc: Value = app.get_json("/api/openapi.json").await;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')));
    for (path, method) in [
        ("/api/auth/register", "post"),
        ("/api/auth/login", "post"),
        ("/api/auth/refresh", "post"),
        ("/api/auth/logout", "post"),
        ("/api/me", "get"),
        ("/api/organizer/applications", "post"),
        ("/api/admin/organizer-applications", "get"),
        ("/api/admin/organizers/{user_id}/approve", "post"),
        ("/api/admin/organizers/{user_id}/reject", "post"),
        ("/api/admin/users", "get"),
        ("/api/admin/users/{user_id}/ban", "post"),
        ("/api/admin/users/{user_id}/unban", "post"),
        ("/api/admin/audit-log", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is not documented"
        );
    }
    let schemas = &doc["components"]["schemas"];
    for schema in ["ErrorBody", "UserView", "RegisterBody", "SessionBody"] {
        assert!(schemas[schema].is_object(), "schema {schema} missing");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}
