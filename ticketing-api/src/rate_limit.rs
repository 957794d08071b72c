//! Per-client-IP limits on login and register, against credential stuffing and sign-up floods.
//!
//! governor's keyed GCRA limiter: no background refill task, one atomic per check, and
//! `retain_recent` every minute keeps memory bounded to recently seen addresses.

use std::{net::IpAddr, num::NonZeroU32, sync::Arc, time::Duration};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};

pub struct AuthLimiter {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

impl AuthLimiter {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: Arc::new(RateLimiter::keyed(
                Quota::per_minute(per_minute).allow_burst(burst),
            )),
        }
    }

    /// `Ok` if `ip` may try now, else how long it must wait.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        self.limiter.check_key(&ip).map_err(|not_until| {
            not_until.wait_time_from(governor::clock::DefaultClock::default().now())
        })
    }

    /// Forgets addresses that have not been seen for a while, once a minute.
    pub fn spawn_cleanup(&self) {
        let limiter = Arc::downgrade(&self.limiter);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let Some(limiter) = limiter.upgrade() else {
                    return;
                };
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        });
    }
}
