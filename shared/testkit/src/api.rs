//! The ticketing API in process for tests (zero-to-production's `tests/api/helpers.rs`): the
//! real app bound on port 0 over the test's own database, Redis prefix and broker prefix,
//! spoken to over HTTP; users, venues, events and sales made through it.
//!
//! Every test app is built from one [`simple_config`]; a test that needs another setting
//! changes that field and hands the config to [`TestApp::init`]`().with_config(..)` (as
//! crates.io's `TestApp::init().with_config(..)` does), or [`spawn_with`].

use std::time::Duration;

use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};
use shared::{
    cache::{Redis, RedisKeys, redis},
    config::{AdminBootstrap, AuthConfig, LogFormat, PostgresConfig, Secret},
    domain::Role,
    ids::{EventId, UserId},
    messaging::Publisher,
    tokens::KeySet,
};
use sqlx::PgPool;
use ticketing_api::{AppState, Application, Config};

pub const ADMIN_EMAIL: &str = "admin@example.test";
/// The bootstrap admin's password in every test app (`shared::config::DEV_ADMIN_PASSWORD`).
pub const ADMIN_PASSWORD: &str = "admin-pass-123";
/// The password of every user a test signs up.
pub const PASSWORD: &str = "a-good-password";

/// The API's config for tests: port 0 behind a trusted proxy (tests of per-address limits send
/// `X-Forwarded-For`), a fresh Redis key prefix and broker prefix (nothing is declared until a
/// registration is queued), no auth rate limits, a bootstrap admin, plain-http cookies.
/// The database is the pool handed to [`TestApp`], not this URL.
pub fn simple_config() -> Config {
    Config {
        http: shared::config::HttpConfig {
            trust_forwarded_for: true,
            ..crate::config::http()
        },
        postgres: PostgresConfig {
            url: Secret::new(String::new()),
            max_connections: 5,
            auto_migrate: false,
        },
        redis: crate::config::redis(),
        amqp: crate::config::amqp(),
        keys: crate::config::no_keys_dir(),
        auth: AuthConfig {
            access_token_ttl: Duration::from_secs(900),
            refresh_token_ttl: Duration::from_secs(3600),
            // The test app serves plain http (as infra/dev does, with COOKIE_SECURE=false):
            // turned off by name, the default being true.
            cookie_secure: false,
            limits: crate::config::auth_limits(),
            admin: Some(AdminBootstrap {
                email: ADMIN_EMAIL.into(),
                password: Secret::new(ADMIN_PASSWORD.into()),
            }),
        },
        web_root: concat!(env!("CARGO_MANIFEST_DIR"), "/../../ticketing-api/web").into(),
        log_format: LogFormat::Pretty,
    }
}

/// The API running in this process.
pub struct TestApp {
    pub base: String,
    pub db: PgPool,
    pub keys: KeySet,
    /// The config it runs with (its Redis prefix and broker names among it).
    pub config: Config,
    /// The app's own Redis pool and key builder (same prefix).
    pub redis: Redis,
    pub redis_keys: RedisKeys,
    /// The app's own inventory and catalogs, for tests that need a hold shorter than the API
    /// allows or a look behind it.
    pub inventory: shared::inventory::Inventory,
    pub catalogs: shared::inventory::CatalogCache,
    /// The app's own sale rules cache: whether its listener is up, what it holds, how often
    /// it read Postgres.
    pub rules: ticketing_api::holds::RulesCache,
    /// A client with its own cookie jar (one "browser").
    pub client: Client,
}

/// How a [`TestApp`] is built: [`TestApp::init`], the changes, then [`Spawn::spawn`].
pub struct Spawn {
    config: Config,
    keys: Option<KeySet>,
    connect_broker: bool,
}

impl Spawn {
    /// Runs with `config` instead of [`simple_config`].
    pub fn with_config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Signs and verifies with `keys` (those a worker process loads, those a notifier checks)
    /// instead of fresh ones.
    pub fn with_keys(mut self, keys: KeySet) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Connects to the broker (and declares the topology) at start, as production does, instead
    /// of on the first publish.
    pub fn with_broker_connected(mut self) -> Self {
        self.connect_broker = true;
        self
    }

    pub async fn spawn(self, db: PgPool) -> TestApp {
        let Self {
            config,
            keys,
            connect_broker,
        } = self;
        shared::telemetry::init_tracing(LogFormat::Pretty);
        let redis = shared::cache::connect(&config.redis).expect("redis pool");
        let keys = keys.unwrap_or_else(KeySet::generate);
        let publisher = if connect_broker {
            Publisher::connect(&config.amqp, "ticketing-api-test")
                .await
                .expect("the broker")
        } else {
            Publisher::lazy(&config.amqp, "ticketing-api-test")
        };
        let state = AppState::new(config.clone(), db.clone(), redis, keys.clone(), publisher);
        let (inventory, catalogs) = (state.inventory.clone(), state.catalogs.clone());
        let rules = state.rules.clone();
        let (redis, redis_keys) = (state.redis.clone(), state.redis_keys.clone());
        let app = Application::with_state(&config, state)
            .await
            .expect("app builds");
        let base = format!("http://{}", app.local_addr());
        tokio::spawn(app.run_until(std::future::pending()));
        TestApp {
            base,
            db,
            keys,
            config,
            redis,
            redis_keys,
            inventory,
            catalogs,
            rules,
            client: new_client(),
        }
    }
}

/// The app on [`simple_config`].
pub async fn spawn(db: PgPool) -> TestApp {
    TestApp::init().spawn(db).await
}

/// The app on `config`.
pub async fn spawn_with(db: PgPool, config: Config) -> TestApp {
    TestApp::init().with_config(config).spawn(db).await
}

/// A client with its own cookie jar.
pub fn new_client() -> Client {
    Client::builder()
        .cookie_store(true)
        .build()
        .expect("a client builds")
}

impl TestApp {
    /// An app on [`simple_config`] with fresh keys and a broker connected on first publish.
    pub fn init() -> Spawn {
        Spawn {
            config: simple_config(),
            keys: None,
            connect_broker: false,
        }
    }

    /// Another instance of the same platform, as the gateway balances several: its own process
    /// state (caches, listeners) and port, over the same database (and pool), Redis prefix,
    /// broker names and keys.
    pub async fn another_instance(&self) -> TestApp {
        TestApp::init()
            .with_config(self.config.clone())
            .with_keys(self.keys.clone())
            .spawn(self.db.clone())
            .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// An anonymous GET with this app's client.
    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
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
        send_as(self, Method::GET, path, token, None).await
    }

    pub async fn post_as(&self, path: &str, token: &str, body: &Value) -> Response {
        send_as(self, Method::POST, path, token, Some(body)).await
    }

    /// A request as `token` that must answer `expect`; its JSON body.
    pub async fn json_as(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
        expect: StatusCode,
    ) -> Value {
        let response = send_as(self, method, path, token, body).await;
        let status = response.status();
        let text = response.text().await.expect("body");
        assert_eq!(status, expect, "{path}: {text}");
        serde_json::from_str(&text).expect("json")
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
        self.get(path).await.json().await.expect("a JSON body")
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
    pub async fn mint(&self, role: Role) -> (UserId, String) {
        crate::users::mint(&self.db, &self.keys, role).await
    }

    pub async fn count(&self, table: &str) -> i64 {
        let sql = match table {
            "users" => "SELECT count(*) FROM users",
            "refresh_tokens" => "SELECT count(*) FROM refresh_tokens",
            "organizer_applications" => "SELECT count(*) FROM organizer_applications",
            "audit_log" => "SELECT count(*) FROM audit_log",
            other => panic!("no count for {other}"),
        };
        scalar(self, sql).await
    }

    /// An on-sale event by a minted organizer: one section "A" of 1 row × `seats`, one class
    /// "Normal" at 50.00 EUR. Returns (organizer token, event id).
    pub async fn on_sale(&self, seats: i64) -> (String, EventId) {
        let (_, organizer) = self.mint(Role::Organizer).await;
        let venue = grid_venue(self, &organizer, &[("A", 1, seats)]).await;
        let event = create_event(
            self,
            &organizer,
            &event_body(
                &venue,
                json!([{"name": "Normal", "price": 5000, "currency": "EUR"}]),
            ),
        )
        .await;
        (organizer, event_id(&event))
    }

    /// `POST /api/events/{event}/holds` as `token` for one "Normal" seat, best available; with
    /// the waiting room's admission token when given.
    pub async fn hold_one(
        &self,
        token: &str,
        event: impl std::fmt::Display,
        admission: Option<&str>,
    ) -> Response {
        let mut request = self
            .client
            .post(self.url(&format!("/api/events/{event}/holds")))
            .bearer_auth(token)
            .json(&json!({"class": "Normal", "quantity": 1}));
        if let Some(admission) = admission {
            request = request.header("X-Admission-Token", admission);
        }
        request.send().await.expect("sent")
    }

    /// The request `POST /api/events/{event}/registrations` of `hold_id` as `token`, with the
    /// waiting room's admission token when given (not sent yet: a test adds headers, or sends
    /// it from a task).
    pub fn registration(
        &self,
        token: &str,
        event: impl std::fmt::Display,
        hold_id: impl serde::Serialize,
        admission: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .client
            .post(self.url(&format!("/api/events/{event}/registrations")))
            .bearer_auth(token)
            .json(&json!({"hold_id": hold_id}));
        if let Some(admission) = admission {
            request = request.header("X-Admission-Token", admission);
        }
        request
    }

    /// Turns high-demand mode on for `event` (`PUT /demand-mode`, 200).
    pub async fn high_demand(
        &self,
        organizer: &str,
        event: EventId,
        admit_per_minute: u32,
        max_active: u32,
    ) {
        self.json_as(
            Method::PUT,
            &format!("/api/events/{event}/demand-mode"),
            organizer,
            Some(
                &json!({"high_demand": true, "admit_per_minute": admit_per_minute,
                         "max_active": max_active}),
            ),
            StatusCode::OK,
        )
        .await;
    }

    /// Lets `fan` in to `event` as the waiting room's admission tick would: in the active set
    /// for ten minutes.
    pub async fn let_in(&self, event: EventId, fan: UserId) {
        let until = time::OffsetDateTime::now_utc().unix_timestamp() * 1000 + 600_000;
        redis::cmd("ZADD")
            .arg(self.redis_keys.queue_active(event))
            .arg(until)
            .arg(fan.to_string())
            .query_async::<()>(&mut self.redis.conn())
            .await
            .expect("ZADD");
    }

    /// [`TestApp::let_in`], and the admission token the waiting room signs for it.
    pub async fn admit(&self, event: EventId, fan: UserId) -> String {
        self.let_in(event, fan).await;
        crate::users::admission_token(&self.keys.admission, fan, event)
    }
}

/// The id of an event the API answered with.
pub fn event_id(event: &Value) -> EventId {
    event["id"]
        .as_str()
        .expect("an id")
        .parse()
        .expect("an event id")
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

/// Any request with a bearer token; `body` is sent as JSON when given.
pub async fn send_as(
    app: &TestApp,
    method: Method,
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
    created(app.post_as("/api/venues", token, body).await, "venue").await
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
    created(app.post_as("/api/events", token, body).await, "event").await
}

/// The body of a 201 (`what` was not created otherwise).
pub async fn created(response: Response, what: &str) -> Value {
    let status = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(status, StatusCode::CREATED, "{what} not created: {text}");
    serde_json::from_str(&text).expect("json")
}
