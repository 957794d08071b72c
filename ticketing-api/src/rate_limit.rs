//! Limits on logging in and signing up: guessing a password stays slow, while thousands of fans
//! behind one address (a carrier NAT, a campus) can still log in in the minute a sale opens.
//!
//! A limit per client address alone cannot do both: low enough to stop guessing, it locks out
//! a whole NAT; high enough for the NAT, it lets one machine guess hundreds of passwords a
//! minute. So guessing is limited per *account*, and the per-address limits are only sized to
//! keep one source from eating an instance's CPU (argon2 costs tens of milliseconds a try).
//!
//! | limit | counted | default | variables | where |
//! |---|---|---|---|---|
//! | login rate per address | every login attempt | 600/min, all at once | `LOGIN_RATE_PER_MINUTE`, `LOGIN_RATE_BURST` | this process (GCRA, governor) |
//! | failures per account and address | wrong passwords | 5 per 15 min | `LOGIN_FAILURES_PER_ADDRESS`, `LOGIN_FAILURE_WINDOW_SECS` | Redis, every instance |
//! | failures per account | wrong passwords, all addresses | 50 per 15 min, not applied at known addresses | `LOGIN_FAILURES_PER_ACCOUNT`, `LOGIN_FAILURE_WINDOW_SECS` | Redis, every instance |
//! | sign-up rate per address | every sign-up | 20/min, 10 at once | `REGISTER_RATE_PER_MINUTE`, `REGISTER_RATE_BURST` | this process |
//!
//! A refused attempt gets 429 `rate_limited` with `Retry-After`; it is refused before the
//! password is checked, since a 200 for the right password would confirm a guess.
//!
//! **Addresses.** IPv4 addresses count one by one; IPv6 addresses by their /64, which one
//! subscriber gets whole (otherwise moving inside it would escape every limit).
//!
//! **Why two failure counts, and how long an owner can be locked out.** Counting failures per
//! account alone would let anyone lock any fan out by typing wrong passwords; counting them per
//! (account, address) alone would let a botnet of N addresses make 5·N guesses per window. So:
//!
//! - per (account, address), strictly: 5 failures in the window and that address is refused
//!   for that account until the window ends. Only someone *at that address* can do this, so an
//!   attacker elsewhere can never lock the owner out this way; someone sharing the owner's NAT
//!   can, for at most one window (15 minutes) after their first failure — and must keep failing
//!   to do it again.
//! - per account, loosely: 50 failures from all addresses in the window, and the account is
//!   refused from every address where it has not logged in successfully within the refresh
//!   token's lifetime (`REFRESH_TOKEN_TTL_SECS`, 30 days). The owner at home, at work, on the
//!   phone's usual network is not affected at all. On a *new* address, the owner is refused
//!   while a distributed attack keeps the account over 50 failures per window, each refusal
//!   lasting at most the rest of the window (the `Retry-After`). That is the trade-off chosen:
//!   a botnet gets at most 50 guesses per account per 15 minutes (plus 5 per address at the
//!   owner's known addresses, which it would have to share), and the price is that the owner on
//!   an unfamiliar network waits out the attack.
//!
//! Logging in successfully clears that address's count for the account (a fan's typos do not
//! pile up) and marks the address as known. Unknown email addresses are counted exactly like
//! real ones: a limit that only existing accounts hit would tell which accounts exist.
//!
//! **Reserve, then settle.** A failure counted only after the password check would let a burst
//! of concurrent guesses all pass the check before the first one is counted. So one Lua script
//! checks both counts and, if the attempt may go on, counts it as a failure at once; an attempt
//! whose password turns out right takes its count back. Both counts are fixed windows
//! (`INCR`, and `PEXPIRE` on the first), so every key disappears by itself.
//!
//! **When Redis is down**, login answers 503: without the counts, the limits would be off.
//! The sign-up and per-address login rates are in-process and need nothing.

use std::{
    net::{IpAddr, Ipv6Addr},
    num::NonZeroU32,
    sync::{Arc, LazyLock},
    time::Duration,
};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};
use shared::{
    cache::{Redis, RedisKeys, redis},
    config::AuthLimits,
    domain::Email,
};

/// Checks both failure counts and, if the attempt may go on, counts it as a failure.
/// KEYS: failures of the account from this address, failures of the account, the address is
/// known. ARGV: per-address limit, per-account limit, window (ms).
/// Returns 0 when the attempt may go on, else the milliseconds until one may.
static BEGIN: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local function wait(key)
            local ms = redis.call('PTTL', key)
            if ms < 1 then return 1 end
            return ms
        end
        if tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(ARGV[1]) then
            return wait(KEYS[1])
        end
        if redis.call('EXISTS', KEYS[3]) == 0
            and tonumber(redis.call('GET', KEYS[2]) or '0') >= tonumber(ARGV[2]) then
            return wait(KEYS[2])
        end
        for i = 1, 2 do
            if redis.call('INCR', KEYS[i]) == 1 then
                redis.call('PEXPIRE', KEYS[i], ARGV[3])
            end
        end
        return 0
        ",
    )
});

/// Takes back the failure an attempt was counted as. On a successful login (ARGV[1], the
/// known-address lifetime in ms, above 0) it also clears the address's count and marks the
/// address as known. KEYS as for [`BEGIN`].
static SETTLE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        for i = 1, 2 do
            if tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then
                redis.call('DECR', KEYS[i])
            end
        end
        if tonumber(ARGV[1]) > 0 then
            redis.call('DEL', KEYS[1])
            redis.call('SET', KEYS[3], '1', 'PX', ARGV[1])
        end
        return 0
        ",
    )
});

/// The address a limit counts: IPv4 as is, IPv6 by its /64 (an IPv4-mapped IPv6 address is
/// the IPv4 address it carries).
pub fn limited_address(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// Why a login was not even tried.
#[derive(Debug, thiserror::Error)]
pub enum LoginRefused {
    #[error("too many login attempts")]
    Limited(Duration),
    #[error("the login limits cannot be checked")]
    Unavailable(#[source] redis::RedisError),
}

/// Every login and sign-up limit of this process (see the module doc).
pub struct AuthLimiter {
    login: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    register: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    redis: Redis,
    keys: RedisKeys,
    limits: AuthLimits,
    /// How long an address where the account logged in stays known.
    known_for: Duration,
}

fn per_minute(rate: u32, burst: u32) -> Arc<DefaultKeyedRateLimiter<IpAddr>> {
    let rate = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Arc::new(RateLimiter::keyed(
        Quota::per_minute(rate).allow_burst(burst),
    ))
}

fn wait_time(not_until: governor::NotUntil<governor::clock::QuantaInstant>) -> Duration {
    not_until.wait_time_from(governor::clock::DefaultClock::default().now())
}

impl AuthLimiter {
    /// `known_for`: how long a successful login makes its address known to the account (the
    /// refresh token's lifetime).
    pub fn new(limits: AuthLimits, known_for: Duration, redis: Redis, keys: RedisKeys) -> Self {
        Self {
            login: per_minute(limits.login_per_minute, limits.login_burst),
            register: per_minute(limits.register_per_minute, limits.register_burst),
            redis,
            keys,
            limits,
            known_for,
        }
    }

    /// `Ok` if `ip` may sign up now, else how long it must wait.
    pub fn check_register(&self, ip: IpAddr) -> Result<(), Duration> {
        self.register
            .check_key(&limited_address(ip))
            .map_err(wait_time)
    }

    /// Checks every login limit for `email` from `ip` and counts the attempt as a failure until
    /// it is settled: call [`LoginAttempt::settle`] with whether the password was right.
    pub async fn begin_login(&self, email: &str, ip: IpAddr) -> Result<LoginAttempt, LoginRefused> {
        let address = limited_address(ip);
        self.login
            .check_key(&address)
            .map_err(|not_until| LoginRefused::Limited(wait_time(not_until)))?;
        // An address that is not an email matches no account: nothing to guess, nothing to count.
        let Ok(account) = Email::parse(email) else {
            return Ok(LoginAttempt { counted: None });
        };
        let account = account.as_str();
        let keys = [
            self.keys.login_failures_from(account, address),
            self.keys.login_failures(account),
            self.keys.login_known_address(account, address),
        ];
        let wait_ms: u64 = BEGIN
            .key(&keys[0])
            .key(&keys[1])
            .key(&keys[2])
            .arg(self.limits.failures_per_address)
            .arg(self.limits.failures_per_account)
            .arg(millis(self.limits.failure_window))
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(LoginRefused::Unavailable)?;
        if wait_ms > 0 {
            return Err(LoginRefused::Limited(Duration::from_millis(wait_ms)));
        }
        Ok(LoginAttempt {
            counted: Some(Counted {
                redis: self.redis.clone(),
                keys,
                known_for: self.known_for,
            }),
        })
    }

    /// Forgets addresses that have not been seen for a while, once a minute.
    pub fn spawn_cleanup(&self) {
        let limiters = [Arc::downgrade(&self.login), Arc::downgrade(&self.register)];
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                for limiter in &limiters {
                    let Some(limiter) = limiter.upgrade() else {
                        return;
                    };
                    limiter.retain_recent();
                    limiter.shrink_to_fit();
                }
            }
        });
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// A login attempt counted as a failure until it is settled.
#[must_use = "settle the attempt once the password has been checked"]
pub struct LoginAttempt {
    counted: Option<Counted>,
}

struct Counted {
    redis: Redis,
    keys: [String; 3],
    known_for: Duration,
}

/// How the password check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Logged in: the failure is taken back, the address's count cleared, the address known.
    LoggedIn,
    /// The password was wrong: the attempt stays counted.
    WrongPassword,
    /// Not a guess that failed (the password was right but the account is banned, or the check
    /// itself failed): the failure is taken back.
    NotAGuess,
}

impl LoginAttempt {
    /// Records the outcome. A Redis failure here is logged, not returned: the login has been
    /// decided, and at worst one attempt stays counted until the window ends.
    pub async fn settle(self, outcome: Outcome) {
        let Some(counted) = self.counted else {
            return;
        };
        let known_for = match outcome {
            Outcome::WrongPassword => return,
            Outcome::LoggedIn => millis(counted.known_for),
            Outcome::NotAGuess => 0,
        };
        let settled: Result<i64, _> = SETTLE
            .key(&counted.keys[0])
            .key(&counted.keys[1])
            .key(&counted.keys[2])
            .arg(known_for)
            .invoke_async(&mut counted.redis.conn())
            .await;
        if let Err(err) = settled {
            tracing::warn!(error = %err, "could not settle a login attempt's count");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(limited_address(ip("2001:db8:1:2::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            limited_address(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            ip("2001:db8:1:2::")
        );
        assert_ne!(limited_address(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
        assert_eq!(limited_address(ip("::ffff:203.0.113.9")), ip("203.0.113.9"));
        assert_eq!(limited_address(ip("203.0.113.9")), ip("203.0.113.9"));
    }
}
