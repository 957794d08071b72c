//! The waiting room in process for tests: the real server bound on port 0 over the test's own
//! database and Redis prefix, and the fan's two calls (join, status) over HTTP.
//!
//! Several instances of one test share a Redis prefix and keys: [`spawn_on`] the first one's.

use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::Value;
use shared::{
    cache::{RedisKeys, redis},
    config::{LogFormat, QueueConfig, RedisConfig},
    ids::{EventId, UserId},
    tokens::KeySet,
};
use sqlx::PgPool;
use time::OffsetDateTime;

/// The queue for tests: a 100 ms tick, fans dropped after `grace` without a poll.
pub fn queue_config(grace: Duration) -> QueueConfig {
    QueueConfig {
        admission_token_ttl: Duration::from_secs(600),
        queue_token_ttl: Duration::from_secs(3600),
        grace,
        tick: Duration::from_millis(100),
    }
}

/// A waiting room running in this process.
pub struct TestApp {
    pub base: String,
    pub keys: KeySet,
    pub redis_config: RedisConfig,
    pub client: Client,
}

/// An instance on a fresh Redis prefix and fresh keys, dropping fans after `grace`.
pub async fn spawn(db: &PgPool, grace: Duration) -> TestApp {
    spawn_on(
        db,
        crate::config::redis(),
        KeySet::generate(),
        queue_config(grace),
    )
    .await
}

/// An instance on `redis` (another instance's, for a test of several), signing with `keys`.
pub async fn spawn_on(
    db: &PgPool,
    redis: RedisConfig,
    keys: KeySet,
    queue: QueueConfig,
) -> TestApp {
    let config = waiting_room::Config {
        http: crate::config::http(),
        postgres: crate::config::postgres_for(db),
        redis: redis.clone(),
        keys: crate::config::no_keys_dir(),
        queue,
        log_format: LogFormat::Pretty,
    };
    let server = waiting_room::build_with_keys(&config, keys.clone())
        .await
        .expect("builds");
    let base = format!("http://{}", server.local_addr());
    tokio::spawn(server.run_until(std::future::pending()));
    TestApp {
        base,
        keys,
        redis_config: redis,
        client: Client::new(),
    }
}

/// The queue token in a join's answer.
pub fn queue_token(body: &Value) -> String {
    body["queue_token"]
        .as_str()
        .expect("a queue token")
        .to_string()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn redis_keys(&self) -> RedisKeys {
        RedisKeys::new(self.redis_config.key_prefix.clone())
    }

    /// A connection of the test's own to the instance's Redis.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis_config.url.expose().as_str())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis")
    }

    /// A fan's access token, signed with this instance's keys.
    pub fn access(&self, user: UserId) -> String {
        crate::users::fan_token(&self.keys.access, user)
    }

    /// `POST /api/queue/{event}/join` as `user`: the status and the JSON body.
    pub async fn join(&self, event: EventId, user: UserId) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(&format!("/api/queue/{event}/join")))
            .bearer_auth(self.access(user))
            .send()
            .await
            .expect("sent");
        let status = response.status();
        (status, response.json().await.expect("json"))
    }

    /// `GET /api/queue/{event}/status` with a queue token: the status and the JSON body.
    pub async fn status(&self, event: EventId, queue_token: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.url(&format!("/api/queue/{event}/status")))
            .header("X-Queue-Token", queue_token)
            .send()
            .await
            .expect("sent");
        let status = response.status();
        (status, response.json().await.expect("json"))
    }

    /// The status once it is `state`, which it must be within a few ticks (100 ms each).
    pub async fn status_within_a_tick(
        &self,
        event: EventId,
        queue_token: &str,
        state: &str,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(1_000);
        loop {
            let (status, body) = self.status(event, queue_token).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            if body["state"] == state {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not {state} in time: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fans admitted to `event` whose admission has not expired.
    pub async fn active_count(&self, event: EventId) -> u64 {
        let now = OffsetDateTime::now_utc().unix_timestamp() * 1000;
        redis::cmd("ZCOUNT")
            .arg(self.redis_keys().queue_active(event))
            .arg(now)
            .arg("+inf")
            .query_async(&mut self.conn().await)
            .await
            .expect("zcount")
    }
}
