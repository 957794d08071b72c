//! Redis: fast, shared, disposable state — queues, holds, admissions, counters.
//!
//! Every key family is built here and nowhere else. All keys of one event share a hash tag
//! (`{evt:ID}`) so multi-key Lua scripts keep working on Redis Cluster. A deployment-wide
//! prefix (`REDIS_KEY_PREFIX`) lets tests share one Redis without seeing each other.
//!
//! Nothing here is the final word on a sale: Postgres is. Losing Redis may lose holds and queue
//! places, never cause an oversell.

use anyhow::Context;
use deadpool_redis::{Config, Pool, Runtime, redis};

use crate::{
    config::RedisConfig,
    ids::{EventId, HoldId},
};

/// Builds a connection pool (multiplexed connections underneath).
pub fn connect(config: &RedisConfig) -> anyhow::Result<Pool> {
    let mut cfg = Config::from_url(config.url.expose().clone());
    cfg.pool = Some(deadpool_redis::PoolConfig::new(config.pool_size));
    cfg.create_pool(Some(Runtime::Tokio1))
        .context("creating the Redis pool")
}

/// Is Redis answering? For `/readyz`.
pub async fn ping(pool: &Pool) -> bool {
    let Ok(mut conn) = pool.get().await else {
        return false;
    };
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
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

    /// Hash fan → number, which makes joining idempotent.
    pub fn queue_members(&self, event: EventId) -> String {
        self.event("wr", event, "members")
    }

    /// The serving mark: every number at or below it is admitted.
    pub fn queue_serving(&self, event: EventId) -> String {
        self.event("wr", event, "serving")
    }

    /// Sorted set of active shoppers scored by the expiry of their admission.
    pub fn queue_active(&self, event: EventId) -> String {
        self.event("wr", event, "active")
    }

    /// Sorted set of fans scored by when they were last seen (stale fans are dropped).
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

    /// Events with inventory loaded in Redis, for the periodic sweep of expired holds.
    pub fn active_events(&self) -> String {
        format!("{}inv:active-events", self.prefix)
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
            keys.queue_members(event),
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
}
