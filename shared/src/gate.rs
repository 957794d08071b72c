//! The gate hash: the contract between the ticketing API, which writes an event's demand mode,
//! admission rate, cap and sale opening whenever the organizer changes them, and the waiting
//! room, which reads them in `queue.lua` at every step (and writes them from Postgres when the
//! hash is missing). A HASH at [`RedisKeys::queue_gate`]; its field names are [`field`]'s, and
//! written only here.

use time::OffsetDateTime;

use crate::{
    cache::{Redis, RedisKeys},
    ids::EventId,
};

/// The hash's field names (`queue.lua` reads the first four, in this order, with one HMGET).
pub mod field {
    /// `"1"` while fans need an admission from the waiting room, `"0"` otherwise.
    pub const HIGH_DEMAND: &str = "high_demand";
    /// Fans admitted per minute.
    pub const ADMIT_PER_MINUTE: &str = "admit_per_minute";
    /// Fans shopping at once, at most.
    pub const MAX_ACTIVE: &str = "max_active";
    /// When the sale opens, Unix ms: the pre-queue is shuffled then.
    pub const SALE_OPENS_AT_MS: &str = "sale_opens_at_ms";
    /// When the hash was last written, Unix ms.
    pub const UPDATED_AT_MS: &str = "updated_at_ms";

    /// What `queue.lua`'s `read_gate` asks for, in its order.
    pub const READ_BY_THE_QUEUE: [&str; 4] =
        [HIGH_DEMAND, ADMIT_PER_MINUTE, MAX_ACTIVE, SALE_OPENS_AT_MS];
}

/// Everything the gate hash holds about one event (Postgres' `events` row is the truth).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateSettings {
    pub high_demand: bool,
    pub admit_per_minute: i32,
    pub max_active: i32,
    pub sale_opens_at: OffsetDateTime,
}

impl GateSettings {
    /// The fields and their values, `updated_at_ms` now.
    fn fields(&self) -> [(&'static str, String); 5] {
        [
            (
                field::HIGH_DEMAND,
                if self.high_demand { "1" } else { "0" }.to_string(),
            ),
            (field::ADMIT_PER_MINUTE, self.admit_per_minute.to_string()),
            (field::MAX_ACTIVE, self.max_active.to_string()),
            (
                field::SALE_OPENS_AT_MS,
                unix_ms(self.sale_opens_at).to_string(),
            ),
            (
                field::UPDATED_AT_MS,
                unix_ms(OffsetDateTime::now_utc()).to_string(),
            ),
        ]
    }

    /// Writes every field in one HSET: the organizer's change replaces what was there.
    pub async fn write(
        &self,
        redis: &Redis,
        keys: &RedisKeys,
        event: EventId,
    ) -> redis::RedisResult<()> {
        redis::cmd("HSET")
            .arg(keys.queue_gate(event))
            .arg(&self.fields())
            .query_async(&mut redis.conn())
            .await
    }

    /// Writes only the fields the hash lacks (HSETNX each, in one transaction): whatever the
    /// API wrote meanwhile is newer than this copy of Postgres and stays.
    pub async fn write_missing(
        &self,
        redis: &Redis,
        keys: &RedisKeys,
        event: EventId,
    ) -> redis::RedisResult<()> {
        let gate = keys.queue_gate(event);
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (name, value) in self.fields() {
            pipe.hset_nx(&gate, name, value);
        }
        pipe.query_async(&mut redis.conn()).await
    }
}

/// Moves the sale's opening (and `updated_at_ms`), leaving the other fields as they are.
pub async fn move_opening(
    redis: &Redis,
    keys: &RedisKeys,
    event: EventId,
    opens_at: OffsetDateTime,
) -> redis::RedisResult<()> {
    redis::cmd("HSET")
        .arg(keys.queue_gate(event))
        .arg(field::SALE_OPENS_AT_MS)
        .arg(unix_ms(opens_at))
        .arg(field::UPDATED_AT_MS)
        .arg(unix_ms(OffsetDateTime::now_utc()))
        .query_async(&mut redis.conn())
        .await
}

fn unix_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    async fn hash(redis: &Redis, keys: &RedisKeys, event: EventId) -> HashMap<String, String> {
        redis::cmd("HGETALL")
            .arg(keys.queue_gate(event))
            .query_async(&mut redis.conn())
            .await
            .expect("HGETALL")
    }

    #[tokio::test]
    async fn a_write_replaces_every_field_and_a_write_of_the_missing_ones_keeps_them() {
        let config = crate::cache::test_config();
        let redis = crate::cache::connect(&config).expect("redis");
        let keys = RedisKeys::new(config.key_prefix);
        let event = EventId::new();
        let opens = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("a time");
        let mut settings = GateSettings {
            high_demand: true,
            admit_per_minute: 120,
            max_active: 50,
            sale_opens_at: opens,
        };
        // The waiting room first (an empty hash): every field is written.
        settings
            .write_missing(&redis, &keys, event)
            .await
            .expect("written");
        let first = hash(&redis, &keys, event).await;
        assert_eq!(first[field::HIGH_DEMAND], "1");
        assert_eq!(first[field::ADMIT_PER_MINUTE], "120");
        assert_eq!(first[field::MAX_ACTIVE], "50");
        assert_eq!(first[field::SALE_OPENS_AT_MS], "1800000000000");
        assert!(first.contains_key(field::UPDATED_AT_MS));

        // An older copy of Postgres changes nothing; the organizer's write changes all.
        settings.high_demand = false;
        settings
            .write_missing(&redis, &keys, event)
            .await
            .expect("written");
        assert_eq!(hash(&redis, &keys, event).await[field::HIGH_DEMAND], "1");
        settings.max_active = 7;
        settings.write(&redis, &keys, event).await.expect("written");
        let written = hash(&redis, &keys, event).await;
        assert_eq!(written[field::HIGH_DEMAND], "0");
        assert_eq!(written[field::MAX_ACTIVE], "7");

        move_opening(&redis, &keys, event, opens + time::Duration::seconds(1))
            .await
            .expect("moved");
        let moved = hash(&redis, &keys, event).await;
        assert_eq!(moved[field::SALE_OPENS_AT_MS], "1800000001000");
        assert_eq!(moved[field::MAX_ACTIVE], "7");
        assert_eq!(moved.len(), 5);
        let _: i64 = redis::cmd("DEL")
            .arg(keys.queue_gate(event))
            .query_async(&mut redis.conn())
            .await
            .expect("DEL");
    }
}
