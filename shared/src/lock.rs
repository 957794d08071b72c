//! An owner-checked lock in Redis: one process does a job (builds an event's inventory,
//! shuffles its pre-queue) while the others wait or skip it.
//!
//! Taken with `SET key token NX PX ttl`, the token random to each taking; released with a
//! compare-and-delete script, so a holder whose lock expired meanwhile, and was taken by another
//! process, never frees the other's lock. The TTL bounds how long a holder that died keeps the
//! others out; a job must finish well within it, or the lock is another's before it is done.

use std::{sync::LazyLock, time::Duration};

use redis::Script;

use crate::cache::Redis;

static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
         return 0",
    )
});

/// A held lock. Release it when done; dropped without a release, it lasts until its TTL.
#[derive(Debug)]
#[must_use = "release the lock when done, or it keeps the others out until its TTL"]
pub struct Lock {
    redis: Redis,
    key: String,
    token: String,
}

impl Lock {
    /// Takes the lock at `key` for `ttl`; `None` while someone else holds it.
    pub async fn acquire(
        redis: &Redis,
        key: impl Into<String>,
        ttl: Duration,
    ) -> Result<Option<Self>, redis::RedisError> {
        let key = key.into();
        let token = uuid::Uuid::new_v4().to_string();
        let taken: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
            .query_async(&mut redis.conn())
            .await?;
        Ok(taken.map(|_| Self {
            redis: redis.clone(),
            key,
            token,
        }))
    }

    /// Releases the lock if it is still this holder's; `false` when it had expired (and may
    /// now be someone else's, which stays theirs).
    pub async fn release(self) -> Result<bool, redis::RedisError> {
        let deleted: i64 = RELEASE
            .key(&self.key)
            .arg(&self.token)
            .invoke_async(&mut self.redis.conn())
            .await?;
        Ok(deleted == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis() -> (Redis, String) {
        let config = crate::cache::test_config();
        let redis = crate::cache::connect(&config).expect("redis");
        (redis, format!("{}lock", config.key_prefix))
    }

    async fn take(redis: &Redis, key: &str, ttl: Duration) -> Option<Lock> {
        Lock::acquire(redis, key, ttl).await.expect("redis")
    }

    async fn holder(redis: &Redis, key: &str) -> Option<String> {
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut redis.conn())
            .await
            .expect("GET")
    }

    #[tokio::test]
    async fn one_holder_at_a_time_and_a_release_lets_the_next_in() {
        let (redis, key) = redis();
        let a = take(&redis, &key, Duration::from_secs(10))
            .await
            .expect("free");
        assert!(
            take(&redis, &key, Duration::from_secs(10)).await.is_none(),
            "held by a"
        );
        assert!(a.release().await.expect("redis"));
        assert_eq!(holder(&redis, &key).await, None);
        let b = take(&redis, &key, Duration::from_secs(10))
            .await
            .expect("free again");
        assert!(b.release().await.expect("redis"));
    }

    #[tokio::test]
    async fn a_holder_whose_lock_expired_never_releases_the_next_holders() {
        let (redis, key) = redis();
        let a = take(&redis, &key, Duration::from_millis(50))
            .await
            .expect("free");
        tokio::time::sleep(Duration::from_millis(150)).await;
        let b = take(&redis, &key, Duration::from_secs(10))
            .await
            .expect("a's lock expired");
        assert!(!a.release().await.expect("redis"), "a's lock was gone");
        assert_eq!(
            holder(&redis, &key).await.as_deref(),
            Some(b.token.as_str()),
            "b still holds it"
        );
        assert!(b.release().await.expect("redis"));
        assert_eq!(holder(&redis, &key).await, None);
    }
}
