//! Spawning the app and talking to it.

use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    time::Duration,
};

use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use shared::{
    config::{
        AdminBootstrap, AuthConfig, HttpConfig, KeysConfig, LogFormat, PostgresConfig, RedisConfig,
        Secret,
    },
    tokens::KeySet,
};
use sqlx::PgPool;
use ticketing_api::{AppState, Application, Config};

pub const ADMIN_EMAIL: &str = "admin@example.test";
pub const ADMIN_PASSWORD: &str = "admin-pass-123";
pub const PASSWORD: &str = "a-good-password";

pub struct TestApp {
    pub base: String,
    pub db: PgPool,
    pub keys: KeySet,
    /// The app's own inventory and catalogs (same Redis prefix), for tests that need a hold
    /// shorter than the API allows.
    pub inventory: shared::inventory::Inventory,
    pub catalogs: shared::inventory::CatalogCache,
    /// A client with its own cookie jar (one "browser").
    pub client: Client,
    /// The app's private broker names (queued registrations).
    pub amqp: shared::config::AmqpConfig,
}

pub fn test_config() -> Config {
    Config {
        http: HttpConfig {
            addr: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
            body_limit_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(10),
            trust_forwarded_for: true,
        },
        postgres: PostgresConfig {
            url: Secret::new(String::new()),
            max_connections: 5,
            auto_migrate: false,
        },
        redis: RedisConfig {
            url: Secret::new(
                std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
            ),
            connections: 2,
            key_prefix: format!("test:{}:", uuid::Uuid::new_v4()),
        },
        // Private queue names; nothing is declared until a test queues a registration.
        amqp: shared::config::testing::amqp(),
        keys: KeysConfig {
            dir: "/nonexistent".into(),
        },
        auth: AuthConfig {
            access_token_ttl: Duration::from_secs(900),
            refresh_token_ttl: Duration::from_secs(3600),
            // The test app serves plain http (as infra/dev does, with COOKIE_SECURE=false):
            // turned off by name, the default being true.
            cookie_secure: false,
            limits: shared::config::testing::auth_limits(),
            admin: Some(AdminBootstrap {
                email: ADMIN_EMAIL.into(),
                password: Secret::new(ADMIN_PASSWORD.into()),
            }),
        },
        web_root: concat!(env!("CARGO_MANIFEST_DIR"), "/web").into(),
        log_format: LogFormat::Pretty,
    }
}

pub async fn spawn(db: PgPool) -> TestApp {
    spawn_with(db, test_config()).await
}

pub async fn spawn_with(db: PgPool, config: Config) -> TestApp {
    shared::telemetry::init_tracing(LogFormat::Pretty);
    let redis = shared::cache::connect(&config.redis).expect("redis pool");
    let keys = KeySet::generate();
    let publisher = shared::messaging::Publisher::lazy(&config.amqp, "ticketing-api-test");
    let state = AppState::new(config.clone(), db.clone(), redis, keys.clone(), publisher);
    let (inventory, catalogs) = (state.inventory.clone(), state.catalogs.clone());
    let app = Application::with_state(&config, state)
        .await
        .expect("app builds");
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until(std::future::pending()));
    TestApp {
        base,
        db,
        keys,
        inventory,
        catalogs,
        client: new_client(),
        amqp: config.amqp,
    }
}

pub fn new_client() -> Client {
    Client::builder()
        .cookie_store(true)
        .build()
        .expect("a client builds")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get_as(&self, path: &str, token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post_as(&self, path: &str, token: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn register(&self, email: &str, name: &str) -> Value {
        let response = self
            .post(
                "/api/auth/register",
                &json!({"email": email, "password": PASSWORD, "name": name}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.expect("json")
    }

    /// Logs in with this app's own client (its cookie jar keeps the refresh token).
    pub async fn login(&self, email: &str, password: &str) -> String {
        login_with(&self.client, self, email, password).await
    }

    /// Registers a fan and logs them in on a fresh client; returns (user id, token, client).
    pub async fn fan(&self, email: &str) -> (String, String, Client) {
        let user = self.register(email, "A Fan").await;
        let client = new_client();
        let token = login_with(&client, self, email, PASSWORD).await;
        let id = user["user"]["id"].as_str().expect("id").to_string();
        (id, token, client)
    }

    pub async fn admin_token(&self) -> String {
        login_with(&new_client(), self, ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// An anonymous GET, answered with JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
            .json()
            .await
            .expect("a JSON body")
    }

    /// A GET as `token`, answered with JSON.
    pub async fn get_json_as(&self, path: &str, token: &str) -> Value {
        self.get_as(path, token)
            .await
            .json()
            .await
            .expect("a JSON body")
    }

    /// A user of `role` written straight to the database, with a signed access token:
    /// hundreds of users without hundreds of password hashes.
    pub async fn mint(&self, role: shared::domain::Role) -> (shared::ids::UserId, String) {
        let id = shared::ids::UserId::new();
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, role)
             VALUES ($1, $2, 'Minted', 'not-a-hash', $3)",
        )
        .bind(id)
        .bind(format!("{id}@example.test"))
        .bind(role.as_str())
        .execute(&self.db)
        .await
        .expect("user");
        let token = self
            .keys
            .access
            .sign(
                shared::tokens::AccessClaims { sub: id, role },
                Duration::from_secs(900),
            )
            .expect("token");
        (id, token)
    }

    pub async fn count(&self, table: &str) -> i64 {
        let sql = match table {
            "users" => "SELECT count(*) FROM users",
            "refresh_tokens" => "SELECT count(*) FROM refresh_tokens",
            "organizer_applications" => "SELECT count(*) FROM organizer_applications",
            "audit_log" => "SELECT count(*) FROM audit_log",
            other => panic!("no count for {other}"),
        };
        let (n,): (i64,) = sqlx::query_as(sql)
            .fetch_one(&self.db)
            .await
            .expect("count");
        n
    }
}

pub async fn login_with(client: &Client, app: &TestApp, email: &str, password: &str) -> String {
    let response = client
        .post(app.url("/api/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), StatusCode::OK, "login of {email}");
    let body: Value = response.json().await.expect("json");
    body["access_token"].as_str().expect("token").to_string()
}

/// Asserts the status and the contract's error body, and returns the body.
pub async fn assert_error(response: Response, status: StatusCode, code: &str) -> Value {
    let actual = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "body: {text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    assert_eq!(body["error"], code, "body: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "no message: {body}"
    );
    body
}

// --- venues and events (tests/api/venues.rs, tests/api/events.rs) -------------------------

/// Any request with a bearer token; `body` is sent as JSON when given.
pub async fn send_as(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> Response {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.expect("request sent")
}

/// A fresh organizer: a fan who applied, was approved by the admin, and refreshed their
/// session to get a token with the new role. Returns (token, their client).
pub async fn organizer(app: &TestApp) -> (String, Client) {
    let email = format!("org-{}@example.test", uuid::Uuid::new_v4().simple());
    let (id, fan, client) = app.fan(&email).await;
    let applied = app
        .post_as(
            "/api/organizer/applications",
            &fan,
            &json!({"company": "Acme Live"}),
        )
        .await;
    assert_eq!(applied.status(), StatusCode::CREATED);
    let admin = app.admin_token().await;
    let approved = app
        .post_as(
            &format!("/api/admin/organizers/{id}/approve"),
            &admin,
            &json!({}),
        )
        .await;
    assert_eq!(approved.status(), StatusCode::OK);
    let token = refreshed_token(app, &client).await;
    (token, client)
}

/// A new access token from `browser`'s refresh cookie (`POST /api/auth/refresh`, 200).
pub async fn refreshed_token(app: &TestApp, browser: &Client) -> String {
    let response = browser
        .post(app.url("/api/auth/refresh"))
        .send()
        .await
        .expect("sent");
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"]
        .as_str()
        .expect("an access token")
        .to_string()
}

/// Creates a venue and returns the 201's body.
pub async fn create_venue(app: &TestApp, token: &str, body: &Value) -> Value {
    let response = app.post_as("/api/venues", token, body).await;
    let status = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(status, StatusCode::CREATED, "venue not created: {text}");
    serde_json::from_str(&text).expect("json")
}

/// Creates a grid venue of `(section, rows, seats_per_row)` and returns its id.
pub async fn grid_venue(app: &TestApp, token: &str, sections: &[(&str, i64, i64)]) -> String {
    let sections: Vec<Value> = sections
        .iter()
        .map(|(name, rows, seats)| json!({"name": name, "rows": rows, "seats_per_row": seats}))
        .collect();
    let venue = create_venue(
        app,
        token,
        &json!({"name": "Arena", "city": "Oslo",
                "layout": {"kind": "grid", "sections": sections}}),
    )
    .await;
    venue["id"].as_str().expect("id").to_string()
}

/// One number from a query such as `SELECT count(*) FROM seats`.
pub async fn scalar(app: &TestApp, sql: &'static str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql)
        .fetch_one(&app.db)
        .await
        .expect("scalar query");
    n
}

/// RFC 3339 for `now + offset`.
pub fn rfc3339_in(offset: time::Duration) -> String {
    (time::OffsetDateTime::now_utc() + offset)
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formats")
}

/// An event body on `venue_id`: on sale since an hour ago, starting in 30 days.
pub fn event_body(venue_id: &str, classes: Value) -> Value {
    json!({
        "title": "Band live",
        "venue_id": venue_id,
        "starts_at": rfc3339_in(time::Duration::days(30)),
        "sale_opens_at": rfc3339_in(-time::Duration::hours(1)),
        "classes": classes,
    })
}

/// Creates an event and returns the 201's body.
pub async fn create_event(app: &TestApp, token: &str, body: &Value) -> Value {
    let response = app.post_as("/api/events", token, body).await;
    let status = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(status, StatusCode::CREATED, "event not created: {text}");
    serde_json::from_str(&text).expect("json")
}
