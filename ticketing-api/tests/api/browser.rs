//! What the browser is told (issue #13): the UI's hardening headers, nosniff on the API's own
//! answers, the refresh cookie's attributes, and the refusal to start in production with the
//! dev stack's settings.

use std::process::{Command, Stdio};

use reqwest::{Client, StatusCode, header};
use serde_json::json;
use sqlx::PgPool;
use ticketing_api::routes::web::CONTENT_SECURITY_POLICY;

use testkit::api::{PASSWORD, simple_config, spawn, spawn_with};

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn every_ui_response_carries_the_csp_and_the_other_hardening_headers(db: PgPool) {
    let app = spawn(db).await;
    for (path, content_type) in [
        ("/", "text/html"),
        ("/index.html", "text/html"),
        ("/events/a-client-side-route", "text/html"),
        ("/js/app.js", "javascript"),
        ("/js/pages/fan/login.js", "javascript"),
        ("/css/app.css", "text/css"),
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers();
        let value = |name: header::HeaderName| {
            headers
                .get(&name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{path} has no {name}"))
                .to_string()
        };
        assert!(value(header::CONTENT_TYPE).contains(content_type), "{path}");
        let csp = value(header::CONTENT_SECURITY_POLICY);
        assert_eq!(csp, CONTENT_SECURITY_POLICY, "{path}");
        let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "frame-ancestors 'none'",
            "form-action 'self'",
            "connect-src 'self'",
        ] {
            assert!(
                directives.contains(&directive),
                "{path}: {directive} in {csp}"
            );
        }
        assert!(!csp.contains("unsafe-"), "{path}: {csp}");
        assert_eq!(value(header::X_FRAME_OPTIONS), "DENY", "{path}");
        assert_eq!(value(header::X_CONTENT_TYPE_OPTIONS), "nosniff", "{path}");
        assert_eq!(value(header::REFERRER_POLICY), "same-origin", "{path}");
    }
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn the_apis_own_answers_are_nosniff_json_errors_included(db: PgPool) {
    let app = spawn(db).await;
    for path in [
        "/api/events",
        "/api/no-such-endpoint",
        "/api/me",
        "/healthz",
    ] {
        let response = app.get(path).await;
        assert_eq!(
            response
                .headers()
                .get(header::X_CONTENT_TYPE_OPTIONS)
                .and_then(|v| v.to_str().ok()),
            Some("nosniff"),
            "{path} ({})",
            response.status()
        );
    }
}

/// Logs `email` in on a cookie-less client and returns every `Set-Cookie` of the answer.
async fn login_cookie(base: &str, email: &str) -> String {
    let response = Client::new()
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("a refresh cookie")
        .to_string()
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn with_cookie_secure_the_refresh_cookie_is_secure_httponly_and_same_site_strict(db: PgPool) {
    let mut config = simple_config();
    config.auth.cookie_secure = true;
    let app = spawn_with(db, config).await;
    app.register("secure@example.test", "Secure Fan").await;
    let cookie = login_cookie(&app.base, "secure@example.test").await;
    let attributes: Vec<&str> = cookie.split(';').map(str::trim).collect();
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/api/auth"] {
        assert!(attributes.contains(&attribute), "{attribute} in {cookie}");
    }
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn the_plain_http_test_stack_says_cookie_secure_false_explicitly(db: PgPool) {
    // The test kit (like infra/dev) serves plain http, so it turns Secure off by name; the
    // attributes that do not depend on https stay.
    assert!(!simple_config().auth.cookie_secure);
    let app = spawn(db).await;
    app.register("plain@example.test", "Plain Fan").await;
    let cookie = login_cookie(&app.base, "plain@example.test").await;
    assert!(!cookie.contains("Secure"), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
}

/// The binary, with the dev stack's settings plus `extra`, and nothing else of this
/// process's environment: (exit status, stderr).
fn run_api(extra: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ticketing-api"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        // A database that does not exist: had the API got as far as connecting, it would
        // fail with a connection error, not with the refusal.
        .env(
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/no_such_database_app_env_test",
        )
        .env("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
        .env("KEYS_DIR", ".run/keys")
        .env("ADMIN_EMAIL", "admin@example.test")
        .env("ADMIN_PASSWORD", "admin-pass-123")
        .env("COOKIE_SECURE", "false")
        .env("TICKETING_API_ADDR", "127.0.0.1:0")
        .envs(extra.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let output = command.output().expect("the ticketing-api binary runs");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn with_app_env_production_the_api_refuses_to_start_with_the_dev_settings() {
    let (status, stderr) = run_api(&[("APP_ENV", "production")]);
    assert!(!status.success(), "it started: {stderr}");
    assert!(stderr.contains("APP_ENV=production"), "{stderr}");
    for variable in [
        "DATABASE_URL",
        "AMQP_URL",
        "KEYS_DIR",
        "COOKIE_SECURE",
        "ADMIN_PASSWORD",
    ] {
        assert!(
            stderr.contains(&format!("  - {variable}: ")),
            "{variable}: {stderr}"
        );
    }
    assert!(
        !stderr.contains("no_such_database"),
        "refused before connecting: {stderr}"
    );
    assert!(
        !stderr.contains("admin-pass-123"),
        "never prints the password"
    );

    // The default of COOKIE_SECURE is true: unset, it is not among the refusals.
    let (_, stderr) = run_api(&[("APP_ENV", "production"), ("COOKIE_SECURE", "")]);
    assert!(stderr.contains("  - KEYS_DIR: "), "{stderr}");
    assert!(!stderr.contains("COOKIE_SECURE"), "{stderr}");

    // In development the same settings pass the check (and the API goes on to the database).
    let (status, stderr) = run_api(&[("APP_ENV", "development")]);
    assert!(!status.success());
    assert!(!stderr.contains("APP_ENV=production"), "{stderr}");
    assert!(stderr.contains("connecting to Postgres"), "{stderr}");
}
