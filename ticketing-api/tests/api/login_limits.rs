//! The login limits: thousands of fans behind one address (carrier NAT, a campus) log in at an
//! on-sale, while guessing one account's password stays slow — per address and per account,
//! shared by every API instance through Redis — and sign-up floods stay limited per address.

use std::time::Duration;

use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
use futures_util::future::join_all;
use reqwest::{Response, StatusCode, header};
use serde_json::json;
use shared::config::AuthLimits;
use sqlx::PgPool;

use testkit::api::{PASSWORD, TestApp, assert_error, simple_config, spawn_with};

/// A login attempt as if from `address` (the gateway's `X-Forwarded-For`).
async fn login_from(app: &TestApp, address: &str, email: &str, password: &str) -> Response {
    app.client
        .post(app.url("/api/auth/login"))
        .header("x-forwarded-for", address)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("sent")
}

/// Asserts a 429 `rate_limited` whose Retry-After (seconds) is within `1..=max_secs`.
async fn assert_limited(response: Response, max_secs: u64) {
    let retry_after: u64 = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=max_secs).contains(&retry_after), "{retry_after}");
    assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

/// `n` fans whose password is [`PASSWORD`], written straight to the database with a cheap
/// argon2id hash (the stored hash carries its parameters), so that the test measures the
/// limits rather than this machine's hashing speed.
async fn fans(app: &TestApp, n: usize) -> Vec<String> {
    let params = Params::new(8, 1, 1, None).expect("params");
    let hash = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(PASSWORD.as_bytes())
        .expect("hash")
        .to_string();
    let emails: Vec<String> = (0..n).map(|i| format!("fan{i}@campus.test")).collect();
    sqlx::query(
        "INSERT INTO users (id, email, name, password_hash)
         SELECT gen_random_uuid(), email, 'Fan', $2 FROM unnest($1::text[]) AS email",
    )
    .bind(&emails)
    .bind(&hash)
    .execute(&app.db)
    .await
    .expect("fans");
    emails
}

/// The documented defaults, which a real deployment runs with.
fn default_limits() -> ticketing_api::Config {
    let mut config = simple_config();
    config.auth.limits = AuthLimits::default();
    config
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn three_hundred_fans_behind_one_address_all_log_in_at_once(db: PgPool) {
    let app = spawn_with(db, default_limits()).await;
    let emails = fans(&app, 300).await;
    let started = std::time::Instant::now();
    let answers = join_all(
        emails
            .iter()
            .map(|email| login_from(&app, "198.51.100.77", email, PASSWORD)),
    )
    .await;
    let refused: Vec<StatusCode> = answers
        .iter()
        .map(Response::status)
        .filter(|status| *status != StatusCode::OK)
        .collect();
    assert!(refused.is_empty(), "refused: {refused:?}");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn guessing_one_accounts_password_is_limited_per_address_and_the_owner_elsewhere_logs_in(
    db: PgPool,
) {
    let app = spawn_with(db, default_limits()).await;
    let limits = AuthLimits::default();
    let window = limits.failure_window.as_secs();
    fans(&app, 2).await;
    let (victim, other) = ("fan0@campus.test", "fan1@campus.test");
    let attacker = "203.0.113.9";

    for _ in 0..limits.failures_per_address {
        let guess = login_from(&app, attacker, victim, "guess-guess").await;
        assert_error(guess, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    assert_limited(
        login_from(&app, attacker, victim, "guess-guess").await,
        window,
    )
    .await;
    // Even the right password is refused there: a 200 would confirm a guess.
    assert_limited(login_from(&app, attacker, victim, PASSWORD).await, window).await;

    // The owner, from their own address, is not locked out...
    let owner = login_from(&app, "192.0.2.44", victim, PASSWORD).await;
    assert_eq!(owner.status(), StatusCode::OK);
    // ...and other accounts are not limited from the attacker's address (a shared NAT).
    let neighbour = login_from(&app, attacker, other, PASSWORD).await;
    assert_eq!(neighbour.status(), StatusCode::OK);

    // A fan's typos do not pile up: a successful login clears their address's count (twice
    // the limit's worth of typos, a login between).
    for _round in 0..2 {
        for _ in 0..limits.failures_per_address - 1 {
            let typo = login_from(&app, "192.0.2.44", victim, "typo-typo").await;
            assert_eq!(typo.status(), StatusCode::UNAUTHORIZED);
        }
        assert_eq!(
            login_from(&app, "192.0.2.44", victim, PASSWORD)
                .await
                .status(),
            StatusCode::OK
        );
    }
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn concurrent_guesses_from_one_address_get_no_more_tries_than_the_limit(db: PgPool) {
    let app = spawn_with(db, default_limits()).await;
    let per_address = AuthLimits::default().failures_per_address;
    fans(&app, 1).await;
    let app = &app;
    let answers = join_all((0..50).map(|i| async move {
        let guess = format!("guess-{i:04}");
        login_from(app, "203.0.113.10", "fan0@campus.test", &guess).await
    }))
    .await;
    let tried = answers
        .iter()
        .filter(|answer| answer.status() == StatusCode::UNAUTHORIZED)
        .count();
    let limited = answers
        .iter()
        .filter(|answer| answer.status() == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(tried, per_address as usize, "passwords actually checked");
    assert_eq!(tried + limited, 50);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_guessing_botnet_locks_new_addresses_out_of_the_account_but_not_its_owners_known_one(
    db: PgPool,
) {
    let mut config = default_limits();
    config.auth.limits.failures_per_address = 2;
    config.auth.limits.failures_per_account = 6;
    let window = config.auth.limits.failure_window.as_secs();
    let app = spawn_with(db, config).await;
    fans(&app, 1).await;
    let victim = "fan0@campus.test";
    // The owner logged in from home before the attack.
    assert_eq!(
        login_from(&app, "192.0.2.10", victim, PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
    // Three bots, two guesses each: the account's budget for unknown addresses is spent.
    for bot in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        for _ in 0..2 {
            let guess = login_from(&app, bot, victim, "guess-guess").await;
            assert_eq!(guess.status(), StatusCode::UNAUTHORIZED);
        }
    }
    // A fourth bot, and the owner on a new network, are refused until the window ends...
    assert_limited(
        login_from(&app, "203.0.113.4", victim, "guess-guess").await,
        window,
    )
    .await;
    assert_limited(
        login_from(&app, "198.51.100.5", victim, PASSWORD).await,
        window,
    )
    .await;
    // ...but the owner at home is not.
    assert_eq!(
        login_from(&app, "192.0.2.10", victim, PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn two_api_instances_share_one_accounts_failure_count(db: PgPool) {
    let config = default_limits();
    let per_address = config.auth.limits.failures_per_address;
    let window = config.auth.limits.failure_window.as_secs();
    // Same database, same Redis prefix: two instances behind one gateway.
    let one = spawn_with(db.clone(), config.clone()).await;
    let mut second = config;
    second.auth.admin = None;
    let two = spawn_with(db, second).await;
    fans(&one, 1).await;
    for i in 0..per_address {
        let app = if i % 2 == 0 { &one } else { &two };
        let guess = login_from(app, "203.0.113.20", "fan0@campus.test", "guess-guess").await;
        assert_eq!(guess.status(), StatusCode::UNAUTHORIZED);
    }
    for app in [&one, &two] {
        assert_limited(
            login_from(app, "203.0.113.20", "fan0@campus.test", "guess-guess").await,
            window,
        )
        .await;
    }
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn logins_and_sign_ups_from_one_address_have_their_own_budgets(db: PgPool) {
    let mut config = simple_config();
    config.auth.limits.login_per_minute = 3;
    config.auth.limits.login_burst = 3;
    config.auth.limits.register_per_minute = 2;
    config.auth.limits.register_burst = 2;
    let app = spawn_with(db, config).await;
    fans(&app, 1).await;

    let register = |address: &'static str, i: u32| {
        app.client
            .post(app.url("/api/auth/register"))
            .header("x-forwarded-for", address)
            .json(&json!({"email": format!("new{i}@example.test"), "password": PASSWORD, "name": "N"}))
            .send()
    };
    for i in 0..2 {
        assert_eq!(
            register("203.0.113.30", i).await.expect("sent").status(),
            StatusCode::CREATED
        );
    }
    assert_limited(register("203.0.113.30", 2).await.expect("sent"), 60).await;
    assert_eq!(
        register("203.0.113.31", 3).await.expect("sent").status(),
        StatusCode::CREATED
    );

    // Sign-ups spent their budget; logins from that address have their own.
    for _ in 0..3 {
        let login = login_from(&app, "203.0.113.30", "fan0@campus.test", PASSWORD).await;
        assert_eq!(login.status(), StatusCode::OK);
    }
    assert_limited(
        login_from(&app, "203.0.113.30", "fan0@campus.test", PASSWORD).await,
        60,
    )
    .await;
    // An IPv6 client cannot escape its limit by moving inside its /64.
    for _ in 0..3 {
        login_from(&app, "2001:db8:1:2::1", "fan0@campus.test", PASSWORD).await;
    }
    assert_limited(
        login_from(&app, "2001:db8:1:2::ffff", "fan0@campus.test", PASSWORD).await,
        60,
    )
    .await;
    assert_eq!(
        login_from(&app, "2001:db8:1:3::1", "fan0@campus.test", PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(app.count("users").await, 1 + 1 + 3);
}
