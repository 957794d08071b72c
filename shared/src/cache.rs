//! Redis: fast, shared, disposable state — queues, holds, admissions, counters.
//!
//! Every key family is built here and nowhere else. All keys of one event share a hash tag
//! (`{evt:ID}`) so multi-key Lua scripts keep working on Redis Cluster. A deployment-wide
//! prefix (`REDIS_KEY_PREFIX`) lets tests share one Redis without seeing each other.
//!
//! Nothing here is the final word on a sale: Postgres is. Losing Redis may lose holds and queue
//! places, never cause an oversell.

use std::{
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
pub use redis;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::{
    config::RedisConfig,
    ids::{EventId, HoldId, UserId},
};

/// The process's connections to Redis: a few multiplexed, self-reconnecting connections shared
/// by every task, handed out round-robin.
///
/// Multiplexing is the point: concurrent requests on one connection are written and read in
/// batches, so Redis spends its single core on commands instead of syscalls. Measured with
/// `cargo bench -p shared --bench holds`, holds went from ~23k/s (a pool checking out one
/// connection per request) to ~60k/s. Connections are made lazily, so a service starts (and
/// says so on `/readyz`) while Redis is down, and reconnects by itself when it is back.
#[derive(Clone)]
pub struct Redis {
    connections: Arc<[ConnectionManager]>,
    next: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("connections", &self.connections.len())
            .finish()
    }
}

impl Redis {
    /// A connection to use now (cheap: a clone of a shared one).
    pub fn conn(&self) -> ConnectionManager {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        self.connections[i].clone()
    }
}

/// `REDIS_URL` (or the dev default) under a fresh key prefix, for this crate's own unit tests
/// (every other test takes the test kit's, `testkit::config::redis`).
#[cfg(test)]
pub(crate) fn test_config() -> RedisConfig {
    RedisConfig {
        url: crate::config::Secret::new(
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        ),
        connections: 2,
        key_prefix: format!("test:{}:", uuid::Uuid::new_v4()),
    }
}

/// Prepares the connections; nothing is dialled until the first command.
pub fn connect(config: &RedisConfig) -> anyhow::Result<Redis> {
    let client = redis::Client::open(config.url.expose().as_str()).context("parsing REDIS_URL")?;
    let connections = (0..config.connections.max(1))
        .map(|_| {
            let settings = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(2)))
                // Long enough for an inventory build of a 200,000-seat event.
                .set_response_timeout(Some(Duration::from_secs(10)))
                .set_number_of_retries(3);
            ConnectionManager::new_lazy_with_config(client.clone(), settings)
        })
        .collect::<Result<Vec<_>, _>>()
        .context("preparing Redis connections")?;
    Ok(Redis {
        connections: connections.into(),
        next: Arc::new(AtomicUsize::new(0)),
    })
}

/// Is Redis answering? For `/readyz`.
pub async fn ping(redis: &Redis) -> bool {
    redis::cmd("PING")
        .query_async::<String>(&mut redis.conn())
        .await
        .is_ok()
}

/// The names of every Redis key the product uses.
#[derive(Debug, Clone, Default)]
pub struct RedisKeys {
    prefix: String,
}

impl RedisKeys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn event(&self, family: &str, event: EventId, leaf: &str) -> String {
        format!("{}{family}:{{evt:{event}}}:{leaf}", self.prefix)
    }

    // --- waiting room (`wr:{evt:ID}:...`) -------------------------------------------------

    /// The join sequence counter: each join takes the next number.
    pub fn queue_seq(&self, event: EventId) -> String {
        self.event("wr", event, "seq")
    }

    /// Sorted set of waiting fans scored by their number.
    pub fn queue_waiting(&self, event: EventId) -> String {
        self.event("wr", event, "waiting")
    }

    /// The base of every waiting-room key of the event (`wr:{evt:ID}:`); the waiting room's
    /// script derives the rest (`seq`, `waiting`, `pre`, `serving`, `seen`, `meta`, `dropped`,
    /// `active`, `gate`), so the builders here and the script agree by construction.
    pub fn queue_base(&self, event: EventId) -> String {
        self.event("wr", event, "")
    }

    /// Sorted set of pre-queue fans (joined before the sale opened), shuffled at opening.
    pub fn queue_pre(&self, event: EventId) -> String {
        self.event("wr", event, "pre")
    }

    /// Hash of the queue's own state: phase, shuffle seed, last tick, carried credit, outflow.
    pub fn queue_meta(&self, event: EventId) -> String {
        self.event("wr", event, "meta")
    }

    /// Set of fans dropped for not being seen within the grace period.
    pub fn queue_dropped(&self, event: EventId) -> String {
        self.event("wr", event, "dropped")
    }

    /// Events the admission loop ticks (any event someone joined the queue of).
    pub fn queue_events(&self) -> String {
        format!("{}wr:events", self.prefix)
    }

    /// The serving mark: every number at or below it is admitted.
    pub fn queue_serving(&self, event: EventId) -> String {
        self.event("wr", event, "serving")
    }

    /// Sorted set of active shoppers scored by the expiry of their admission.
    pub fn queue_active(&self, event: EventId) -> String {
        self.event("wr", event, "active")
    }

    /// Hashes fan → when they were last seen (stale fans are dropped); the script appends the
    /// bucket, `seen:<0..1023>`, so that each stays a compact listpack.
    pub fn queue_seen(&self, event: EventId) -> String {
        self.event("wr", event, "seen")
    }

    /// The admission state of the event: rate, cap, last tick (one admission step per slot).
    pub fn queue_gate(&self, event: EventId) -> String {
        self.event("wr", event, "gate")
    }

    // --- seats and holds (`inv:{evt:ID}:...`, see `inventory/inventory.lua`) ----------------

    /// The base of every inventory key of the event; the inventory script derives the rest.
    pub fn inventory(&self, event: EventId) -> String {
        self.event("inv", event, "")
    }

    /// Which event a hold belongs to, for `DELETE /api/holds/{id}` (which names no event).
    pub fn hold_event(&self, hold: HoldId) -> String {
        format!("{}inv:hold-event:{hold}", self.prefix)
    }

    // --- queued bookings (`bk:{fan:ID}:...`, see `booking/claim.lua`) ----------------------
    // One fan's keys share the fan's hash tag: the claim writes them in one script call.

    /// What the fan's queued registrations claimed: field `hold:<hold id>` or
    /// `key:<Idempotency-Key>` → the booking id made from it (one booking per hold, per key).
    pub fn booking_claims(&self, fan: UserId) -> String {
        format!("{}bk:{{fan:{fan}}}:claims", self.prefix)
    }

    /// The fan's queued bookings not yet written by a worker: booking id → its marker (JSON).
    pub fn bookings_pending(&self, fan: UserId) -> String {
        format!("{}bk:{{fan:{fan}}}:pending", self.prefix)
    }

    /// Events with inventory loaded in Redis, for the periodic sweep of expired holds.
    pub fn active_events(&self) -> String {
        format!("{}inv:active-events", self.prefix)
    }

    // --- login limits (`login:{acct:HASH}:...`, see the ticketing API's `rate_limit`) ----------

    /// The base of every login-limit key of one account (`account`: its normalized email).
    /// The address is hashed so that Redis holds no email addresses, and the hash is the hash
    /// tag, so the limit's script can use all of an account's keys on Redis Cluster.
    fn login(&self, account: &str) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, account.as_bytes());
        let tag: String = digest.as_ref()[..16]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        format!("{}login:{{acct:{tag}}}", self.prefix)
    }

    /// Failed logins of the account from every address, in the current window.
    pub fn login_failures(&self, account: &str) -> String {
        format!("{}:failures", self.login(account))
    }

    /// Failed logins of the account from one client address, in the current window.
    pub fn login_failures_from(&self, account: &str, address: IpAddr) -> String {
        format!("{}:failures:{address}", self.login(account))
    }

    /// Set while the account has logged in successfully from this address recently.
    pub fn login_known_address(&self, account: &str, address: IpAddr) -> String {
        format!("{}:known:{address}", self.login(account))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_one_event_shares_its_hash_tag() {
        let keys = RedisKeys::new("t1:");
        let event = EventId::new();
        let tag = format!("{{evt:{event}}}");
        for key in [
            keys.queue_seq(event),
            keys.queue_waiting(event),
            keys.queue_base(event),
            keys.queue_pre(event),
            keys.queue_meta(event),
            keys.queue_dropped(event),
            keys.queue_serving(event),
            keys.queue_active(event),
            keys.queue_seen(event),
            keys.queue_gate(event),
            keys.inventory(event),
        ] {
            assert!(key.starts_with("t1:"), "{key} lacks the prefix");
            assert!(key.contains(&tag), "{key} lacks the event's hash tag");
        }
    }

    #[test]
    fn an_accounts_login_keys_share_a_hash_tag_and_hold_no_email() {
        let keys = RedisKeys::new("t1:");
        let address: IpAddr = "203.0.113.9".parse().expect("ip");
        let all = [
            keys.login_failures("fan@example.test"),
            keys.login_failures_from("fan@example.test", address),
            keys.login_known_address("fan@example.test", address),
        ];
        let tag =
            |key: &str| key[key.find('{').expect("{")..=key.find('}').expect("}")].to_string();
        for key in &all {
            assert!(key.starts_with("t1:login:"), "{key}");
            assert!(!key.contains("example"), "{key} shows the email");
            assert_eq!(tag(key), tag(&all[0]));
        }
        assert_ne!(
            tag(&keys.login_failures("other@example.test")),
            tag(&all[0])
        );
        assert_ne!(all[1], all[2]);
    }
}
