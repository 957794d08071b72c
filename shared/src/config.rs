//! Configuration, read once at start-up from environment variables.
//!
//! Every variable any service reads is listed here; the services take the sections they need.
//! Defaults suit the dev stack started by `infra/dev up`, except where a safe default costs the
//! dev stack one explicit line (`COOKIE_SECURE=false` in `infra/dev`, which serves plain http).
//!
//! With `APP_ENV=production` a service refuses to start while any section it reads still has a
//! development setting ([`refuse_dev_settings`], [`DevSettings`]): a passwordless
//! `DATABASE_URL`, RabbitMQ's `guest` user, the dev stack's generated keys under `.run/keys`,
//! `COOKIE_SECURE=false`, the dev admin password, the dev mail sink. The error names each
//! variable and what to set instead. (`infra/dev up` checks the same, and a few of its own,
//! before it starts anything.)
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `APP_ENV` | `development` | `production` refuses development settings at start-up (see above) |
//! | `DATABASE_URL` | `postgres://postgres@127.0.0.1:5432/ticketing` | Postgres, the system of record (secret) |
//! | `DATABASE_MAX_CONNECTIONS` | `20` | pool size per process |
//! | `DATABASE_AUTO_MIGRATE` | `true` | run the embedded migrations at start-up (advisory-locked, so concurrent starts are safe) |
//! | `REDIS_URL` | `redis://127.0.0.1:6379` | Redis (secret: may carry a password) |
//! | `REDIS_CONNECTIONS` | `4` | multiplexed connections per process (each carries many requests at once) |
//! | `REDIS_KEY_PREFIX` | empty | prepended to every key; tests use it to isolate themselves |
//! | `AMQP_URL` | `amqp://guest:guest@127.0.0.1:5672/%2f` | RabbitMQ (secret) |
//! | `AMQP_PREFIX` | empty | prepended to every exchange and queue name; tests use it to isolate themselves |
//! | `KEYS_DIR` | `.run/keys` | Ed25519 PEM keys: `access.key`/`access.pub`, `admission.key`/`admission.pub`, `ticket.key`/`ticket.pub`; a service loads a private key only if it signs that kind of token |
//! | `TICKETING_API_ADDR` | `127.0.0.1:8082` | listen address of the ticketing API |
//! | `WAITING_ROOM_ADDR` | `127.0.0.1:8081` | listen address of the waiting room |
//! | `NOTIFIER_ADDR` | `127.0.0.1:8083` | listen address of the notifier |
//! | `WORKER_ADDR` | `127.0.0.1:8084` | health/metrics address of the registration worker |
//! | `HTTP_BODY_LIMIT_BYTES` | `1048576` | larger request bodies get 413 |
//! | `HTTP_TIMEOUT_SECS` | `15` | requests running longer get 408 |
//! | `TRUST_FORWARDED_FOR` | `false` | take the client IP from `X-Forwarded-For` (only behind the gateway) |
//! | `ACCESS_TOKEN_TTL_SECS` | `900` | access-token lifetime; a ban takes effect within it (at most 15 minutes) |
//! | `REFRESH_TOKEN_TTL_SECS` | `2592000` | refresh-token lifetime (30 days) |
//! | `COOKIE_SECURE` | `true` | mark the refresh cookie `Secure` (sent over HTTPS only); `false` only for a plain-http dev stack |
//! | `LOGIN_RATE_PER_MINUTE` | `600` | login attempts per client address per minute, per API instance (an IPv6 address counts by its /64); sized for a carrier NAT or a campus at an on-sale |
//! | `LOGIN_RATE_BURST` | `600` | how many of those may come at once (an on-sale opens at one instant) |
//! | `LOGIN_FAILURES_PER_ADDRESS` | `5` | failed logins of one account from one client address per window; then that account is refused from that address until the window ends (429 with `Retry-After`) |
//! | `LOGIN_FAILURES_PER_ACCOUNT` | `50` | failed logins of one account from all addresses per window; then it is refused from every address where it has not logged in successfully within `REFRESH_TOKEN_TTL_SECS` |
//! | `LOGIN_FAILURE_WINDOW_SECS` | `900` | the window of both failure counts (fixed, from the first failure), so the longest any refusal lasts |
//! | `REGISTER_RATE_PER_MINUTE` | `20` | sign-ups per client address per minute, per API instance |
//! | `REGISTER_RATE_BURST` | `10` | how many of those may come at once |
//! | `ADMIN_EMAIL` / `ADMIN_PASSWORD` | unset | when both are set, the ticketing API makes sure this admin exists at start-up (password is secret) |
//! | `WEB_ROOT` | `ticketing-api/web` | the browser UI's static files |
//! | `SMTP_HOST` / `SMTP_PORT` | `127.0.0.1` / `1025` | the SMTP relay (the dev sink by default) |
//! | `SMTP_TLS` | `none` | `none`, `starttls` or `tls` |
//! | `SMTP_USERNAME` / `SMTP_PASSWORD` | unset | SMTP credentials (password is secret) |
//! | `SMTP_FROM` | `Tickets <tickets@example.test>` | the sender of ticket mail |
//! | `ADMISSION_TOKEN_TTL_SECS` | `600` | how long an admitted fan may shop (admission token lifetime and active-shopper expiry) |
//! | `QUEUE_TOKEN_TTL_SECS` | `21600` | lifetime of a queue token (a place in a waiting room) |
//! | `QUEUE_GRACE_SECS` | `60` | a waiting fan not seen (status poll, push stream) for this long is dropped when their turn comes |
//! | `QUEUE_TICK_MS` | `250` | how often each waiting-room instance runs the admission tick of every queue |
//! | `WS_MAX_PER_USER` | `8` | open WebSocket pushes one user may hold on one notifier instance (a phone, a laptop, a few tabs); the next upgrade gets 429 `too_many_connections` |
//! | `WS_MAX_SOCKETS` | `10000` | open WebSocket pushes one notifier instance holds in all; the next upgrade gets 503 `too_many_connections` |
//! | `LOG_FORMAT` | `pretty` | `pretty` for people, `json` for production log shipping |
//! | `RUST_LOG` | `info` | the tracing filter |

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

/// A configuration value that must never be printed: its `Debug` and `Display` are redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself; call this only where the value is used, never to log it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A variable that is set but cannot be parsed.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    name: &'static str,
    value: String,
    reason: String,
}

/// Reads one variable, falling back to a default; an unparsable value is an error, not a default.
fn var<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => {
            value.trim().parse().map_err(|err: T::Err| ConfigError {
                name,
                value: if name.contains("PASSWORD") || name.ends_with("_URL") {
                    "[redacted]".into()
                } else {
                    value.clone()
                },
                reason: err.to_string(),
            })
        }
        _ => Ok(default),
    }
}

fn optional(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[derive(Debug, Clone)]
pub struct PostgresConfig {
    pub url: Secret<String>,
    pub max_connections: u32,
    pub auto_migrate: bool,
}

impl PostgresConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            url: Secret(var(
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/ticketing".to_string(),
            )?),
            max_connections: var("DATABASE_MAX_CONNECTIONS", 20)?,
            auto_migrate: var("DATABASE_AUTO_MIGRATE", true)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: Secret<String>,
    pub connections: usize,
    pub key_prefix: String,
}

impl RedisConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            url: Secret(var("REDIS_URL", "redis://127.0.0.1:6379".to_string())?),
            connections: var("REDIS_CONNECTIONS", 4)?,
            key_prefix: var("REDIS_KEY_PREFIX", String::new())?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct AmqpConfig {
    pub url: Secret<String>,
    pub prefix: String,
}

impl AmqpConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            url: Secret(var(
                "AMQP_URL",
                "amqp://guest:guest@127.0.0.1:5672/%2f".to_string(),
            )?),
            prefix: var("AMQP_PREFIX", String::new())?,
        })
    }
}

/// How a web service listens and which limits every request gets.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub addr: SocketAddr,
    pub body_limit_bytes: usize,
    pub request_timeout: Duration,
    pub trust_forwarded_for: bool,
}

impl HttpConfig {
    /// `addr_var` names the service's own address variable, e.g. `TICKETING_API_ADDR`.
    pub fn from_env(addr_var: &'static str, default_addr: SocketAddr) -> Result<Self, ConfigError> {
        Ok(Self {
            addr: var(addr_var, default_addr)?,
            body_limit_bytes: var("HTTP_BODY_LIMIT_BYTES", 1024 * 1024)?,
            request_timeout: Duration::from_secs(var("HTTP_TIMEOUT_SECS", 15)?),
            trust_forwarded_for: var("TRUST_FORWARDED_FOR", false)?,
        })
    }
}

/// Where the Ed25519 token keys live.
#[derive(Debug, Clone)]
pub struct KeysConfig {
    pub dir: PathBuf,
}

impl KeysConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            dir: var("KEYS_DIR", PathBuf::from(".run/keys"))?,
        })
    }
}

/// Accounts: token lifetimes, the refresh cookie, the login and sign-up limits, the bootstrap
/// admin.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub cookie_secure: bool,
    pub limits: AuthLimits,
    pub admin: Option<AdminBootstrap>,
}

/// The limits on logging in and signing up (the variables are in the module's table; the
/// ticketing API's `rate_limit` module explains the design).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthLimits {
    /// `LOGIN_RATE_PER_MINUTE`: login attempts per client address per minute (per instance).
    pub login_per_minute: u32,
    /// `LOGIN_RATE_BURST`: how many of those may come at once.
    pub login_burst: u32,
    /// `LOGIN_FAILURES_PER_ADDRESS`: failed logins of one account from one address per window.
    pub failures_per_address: u32,
    /// `LOGIN_FAILURES_PER_ACCOUNT`: failed logins of one account from all addresses per window,
    /// beyond which addresses the account never logged in from are refused.
    pub failures_per_account: u32,
    /// `LOGIN_FAILURE_WINDOW_SECS`: the fixed window of both failure counts.
    pub failure_window: Duration,
    /// `REGISTER_RATE_PER_MINUTE`: sign-ups per client address per minute (per instance).
    pub register_per_minute: u32,
    /// `REGISTER_RATE_BURST`: how many of those may come at once.
    pub register_burst: u32,
}

impl Default for AuthLimits {
    /// The documented defaults.
    fn default() -> Self {
        Self {
            login_per_minute: 600,
            login_burst: 600,
            failures_per_address: 5,
            failures_per_account: 50,
            failure_window: Duration::from_secs(900),
            register_per_minute: 20,
            register_burst: 10,
        }
    }
}

impl AuthLimits {
    pub fn from_env() -> Result<Self, ConfigError> {
        // The old per-IP limit shared by login and sign-up is gone; a deployment that still
        // sets it would silently get other limits than it asked for.
        for old in ["AUTH_RATE_PER_MINUTE", "AUTH_RATE_BURST"] {
            if let Some(value) = optional(old) {
                return Err(ConfigError {
                    name: old,
                    value,
                    reason: "replaced by LOGIN_RATE_PER_MINUTE/LOGIN_RATE_BURST (per address), \
                             LOGIN_FAILURES_PER_ADDRESS/LOGIN_FAILURES_PER_ACCOUNT/\
                             LOGIN_FAILURE_WINDOW_SECS (per account) and \
                             REGISTER_RATE_PER_MINUTE/REGISTER_RATE_BURST (sign-ups)"
                        .into(),
                });
            }
        }
        let d = Self::default();
        Ok(Self {
            login_per_minute: var("LOGIN_RATE_PER_MINUTE", d.login_per_minute)?.max(1),
            login_burst: var("LOGIN_RATE_BURST", d.login_burst)?.max(1),
            failures_per_address: var("LOGIN_FAILURES_PER_ADDRESS", d.failures_per_address)?.max(1),
            failures_per_account: var("LOGIN_FAILURES_PER_ACCOUNT", d.failures_per_account)?.max(1),
            failure_window: Duration::from_secs(
                var("LOGIN_FAILURE_WINDOW_SECS", d.failure_window.as_secs())?.clamp(1, 86_400),
            ),
            register_per_minute: var("REGISTER_RATE_PER_MINUTE", d.register_per_minute)?.max(1),
            register_burst: var("REGISTER_RATE_BURST", d.register_burst)?.max(1),
        })
    }
}

#[derive(Debug, Clone)]
pub struct AdminBootstrap {
    pub email: String,
    pub password: Secret<String>,
}

impl AuthConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let access_secs: u64 = var("ACCESS_TOKEN_TTL_SECS", 900)?;
        if !(1..=900).contains(&access_secs) {
            return Err(ConfigError {
                name: "ACCESS_TOKEN_TTL_SECS",
                value: access_secs.to_string(),
                reason: "must be 1..=900 so that a ban takes effect within 15 minutes".into(),
            });
        }
        let admin = match (optional("ADMIN_EMAIL"), optional("ADMIN_PASSWORD")) {
            (Some(email), Some(password)) => Some(AdminBootstrap {
                email,
                password: Secret(password),
            }),
            _ => None,
        };
        Ok(Self {
            access_token_ttl: Duration::from_secs(access_secs),
            refresh_token_ttl: Duration::from_secs(var("REFRESH_TOKEN_TTL_SECS", 30 * 24 * 3600)?),
            cookie_secure: var("COOKIE_SECURE", true)?,
            limits: AuthLimits::from_env()?,
            admin,
        })
    }
}

/// The waiting room: token lifetimes, the stale-fan grace and the admission tick.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub admission_token_ttl: Duration,
    pub queue_token_ttl: Duration,
    pub grace: Duration,
    pub tick: Duration,
}

impl QueueConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            admission_token_ttl: Duration::from_secs(var("ADMISSION_TOKEN_TTL_SECS", 600)?.max(1)),
            queue_token_ttl: Duration::from_secs(var("QUEUE_TOKEN_TTL_SECS", 6 * 3600)?.max(60)),
            grace: Duration::from_secs(var("QUEUE_GRACE_SECS", 60)?.max(1)),
            tick: Duration::from_millis(var("QUEUE_TICK_MS", 250)?.clamp(10, 5_000)),
        })
    }
}

/// The registration worker: how many consumers, how big and how patient a batch is, and how
/// often the outbox relay looks for new rows.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// `WORKER_CONCURRENCY` (default 2): consumers in this process, each with its own channel.
    pub concurrency: usize,
    /// `WORKER_BATCH_SIZE` (default 100): commands per Postgres transaction; also the prefetch.
    pub batch_size: u16,
    /// `WORKER_BATCH_WAIT_MS` (default 5): how long a batch waits to fill after its first command.
    pub batch_wait: Duration,
    /// `OUTBOX_RELAY` (default true): run the outbox relay in this process.
    pub relay: bool,
    /// `OUTBOX_POLL_MS` (default 50): the relay's sleep when the outbox is empty.
    pub outbox_poll: Duration,
}

impl WorkerConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            concurrency: var("WORKER_CONCURRENCY", 2usize)?.clamp(1, 64),
            batch_size: var("WORKER_BATCH_SIZE", 100u16)?.clamp(1, 5_000),
            batch_wait: Duration::from_millis(var("WORKER_BATCH_WAIT_MS", 5u64)?.min(1_000)),
            relay: var("OUTBOX_RELAY", true)?,
            outbox_poll: Duration::from_millis(var("OUTBOX_POLL_MS", 50u64)?.clamp(1, 10_000)),
        })
    }
}

/// The notifier's WebSocket pushes: how many sockets one instance holds, per user and in all
/// (each costs a task, two buffers and a file descriptor).
#[derive(Debug, Clone, Copy)]
pub struct PushConfig {
    /// `WS_MAX_PER_USER` (default 8).
    pub max_per_user: usize,
    /// `WS_MAX_SOCKETS` (default 10,000).
    pub max_sockets: usize,
}

impl PushConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            max_per_user: var("WS_MAX_PER_USER", 8usize)?.max(1),
            max_sockets: var("WS_MAX_SOCKETS", 10_000usize)?.max(1),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    None,
    StartTls,
    Tls,
}

impl FromStr for SmtpTls {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "starttls" => Ok(Self::StartTls),
            "tls" => Ok(Self::Tls),
            other => Err(format!("expected none, starttls or tls, got {other}")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret<String>>,
    pub from: String,
}

impl SmtpConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            host: var("SMTP_HOST", "127.0.0.1".to_string())?,
            port: var("SMTP_PORT", 1025)?,
            tls: var("SMTP_TLS", SmtpTls::None)?,
            username: optional("SMTP_USERNAME"),
            password: optional("SMTP_PASSWORD").map(Secret),
            from: var("SMTP_FROM", "Tickets <tickets@example.test>".to_string())?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pretty" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            other => Err(format!("expected pretty or json, got {other}")),
        }
    }
}

impl LogFormat {
    pub fn from_env() -> Result<Self, ConfigError> {
        var("LOG_FORMAT", Self::Pretty)
    }
}

/// The browser UI's static files (served by the gateway, and by the API itself when run alone).
pub fn web_root() -> Result<PathBuf, ConfigError> {
    var("WEB_ROOT", PathBuf::from("ticketing-api/web"))
}

/// `APP_ENV`: where a service runs. Only `production` changes anything: it makes
/// [`refuse_dev_settings`] refuse the development settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Production,
}

impl FromStr for AppEnv {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "development" => Ok(Self::Development),
            "production" => Ok(Self::Production),
            other => Err(format!("expected development or production, got {other}")),
        }
    }
}

impl AppEnv {
    pub fn from_env() -> Result<Self, ConfigError> {
        var("APP_ENV", Self::Development)
    }
}

/// A setting that suits a developer's machine and must not reach production: the variable,
/// what is wrong with its value, and what to set instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevSetting {
    pub variable: &'static str,
    pub problem: &'static str,
    pub instead: &'static str,
}

impl fmt::Display for DevSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}; {}", self.variable, self.problem, self.instead)
    }
}

/// A configuration section that knows which of its values are development settings.
pub trait DevSettings {
    fn dev_settings(&self) -> Vec<DevSetting>;
}

/// `APP_ENV=production` with development settings left in: every one of them, one per line.
#[derive(Debug, thiserror::Error)]
#[error(
    "APP_ENV=production, but the configuration still has development settings:\n{}",
    .0.iter().map(|s| format!("  - {s}")).collect::<Vec<_>>().join("\n")
)]
pub struct DevSettingsInProduction(pub Vec<DevSetting>);

/// Refuses the development settings of `sections` when `app_env` is production. Each service
/// calls it at start-up with the sections it reads, so a deployment that never runs
/// `infra/dev` (Kubernetes, compose) is held to the same rules.
pub fn refuse_dev_settings(
    app_env: AppEnv,
    sections: &[&dyn DevSettings],
) -> Result<(), DevSettingsInProduction> {
    if app_env != AppEnv::Production {
        return Ok(());
    }
    let found: Vec<DevSetting> = sections.iter().flat_map(|s| s.dev_settings()).collect();
    if found.is_empty() {
        Ok(())
    } else {
        Err(DevSettingsInProduction(found))
    }
}

/// The `user:password` of a URL (`scheme://user:password@host/...`), if it has one.
fn url_userinfo(url: &str) -> Option<(&str, Option<&str>)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let (userinfo, _host) = authority.rsplit_once('@')?;
    Some(match userinfo.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (userinfo, None),
    })
}

/// Whether Postgres would be reached with no secret at all: no password in the URL, none in
/// `PGPASSWORD` or a `PGPASSFILE`, and no client certificate (`sslcert=`).
fn postgres_passwordless(url: &str, password_from_env: bool) -> bool {
    let password = url_userinfo(url).and_then(|(_, p)| p).unwrap_or("");
    password.is_empty() && !password_from_env && !url.contains("sslcert=")
}

impl DevSettings for PostgresConfig {
    fn dev_settings(&self) -> Vec<DevSetting> {
        let from_env = optional("PGPASSWORD").is_some() || optional("PGPASSFILE").is_some();
        if postgres_passwordless(self.url.expose(), from_env) {
            vec![DevSetting {
                variable: "DATABASE_URL",
                problem: "connects without a password (the dev stack trusts localhost)",
                instead: "set DATABASE_URL=postgres://USER:PASSWORD@HOST:5432/DB (or PGPASSWORD, or a client certificate with sslcert=)",
            }]
        } else {
            vec![]
        }
    }
}

impl DevSettings for AmqpConfig {
    fn dev_settings(&self) -> Vec<DevSetting> {
        // No credentials in the URL means lapin logs in as guest:guest too.
        match url_userinfo(self.url.expose()) {
            Some((user, Some(_))) if user != "guest" => vec![],
            _ => vec![DevSetting {
                variable: "AMQP_URL",
                problem: "logs in to RabbitMQ as its default guest user",
                instead: "create a RabbitMQ user of your own and set AMQP_URL=amqp://USER:PASSWORD@HOST:5672/VHOST",
            }],
        }
    }
}

impl DevSettings for KeysConfig {
    fn dev_settings(&self) -> Vec<DevSetting> {
        let components: Vec<_> = self.dir.components().map(|c| c.as_os_str()).collect();
        let dev_keys = components
            .windows(2)
            .any(|w| w[0] == ".run" && w[1] == "keys");
        if dev_keys {
            vec![DevSetting {
                variable: "KEYS_DIR",
                problem: "points at the dev stack's generated keys (.run/keys)",
                instead: "set KEYS_DIR to a directory of your own keys (openssl genpkey -algorithm ed25519 for access, admission and ticket), kept out of the checkout",
            }]
        } else {
            vec![]
        }
    }
}

/// The dev stack's admin password (`infra/dev`'s `ADMIN_PASSWORD`), printed in its summary.
pub const DEV_ADMIN_PASSWORD: &str = "admin-pass-123";

impl DevSettings for AuthConfig {
    fn dev_settings(&self) -> Vec<DevSetting> {
        let mut found = vec![];
        if !self.cookie_secure {
            found.push(DevSetting {
                variable: "COOKIE_SECURE",
                problem: "false: the refresh cookie would travel over plain http",
                instead: "unset COOKIE_SECURE (the default is true) and serve the site over HTTPS",
            });
        }
        if self
            .admin
            .as_ref()
            .is_some_and(|admin| admin.password.expose() == DEV_ADMIN_PASSWORD)
        {
            found.push(DevSetting {
                variable: "ADMIN_PASSWORD",
                problem: "is the dev stack's published admin password",
                instead: "set ADMIN_PASSWORD to a long random password of your own (or unset ADMIN_EMAIL and ADMIN_PASSWORD once the admin exists)",
            });
        }
        found
    }
}

impl DevSettings for SmtpConfig {
    fn dev_settings(&self) -> Vec<DevSetting> {
        let loopback = matches!(self.host.as_str(), "127.0.0.1" | "localhost" | "::1");
        if loopback && self.port == 1025 && self.tls == SmtpTls::None {
            vec![DevSetting {
                variable: "SMTP_HOST",
                problem: "is the dev mail sink (127.0.0.1:1025): no fan would get a ticket",
                instead: "set SMTP_HOST, SMTP_PORT, SMTP_TLS (starttls or tls) and SMTP_USERNAME/SMTP_PASSWORD to your mail relay",
            }]
        } else {
            vec![]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2".to_string());
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        let pg = PostgresConfig {
            url: Secret::new("postgres://u:pw@h/db".into()),
            max_connections: 1,
            auto_migrate: false,
        };
        assert!(!format!("{pg:?}").contains("pw"));
    }

    type Sections = (
        PostgresConfig,
        AmqpConfig,
        KeysConfig,
        AuthConfig,
        SmtpConfig,
    );

    /// A production configuration: nothing of the dev stack left.
    fn production() -> Sections {
        (
            PostgresConfig {
                url: Secret::new("postgres://tickets:s3cret@db.internal:5432/ticketing".into()),
                max_connections: 20,
                auto_migrate: true,
            },
            AmqpConfig {
                url: Secret::new("amqps://tickets:s3cret@mq.internal:5671/prod".into()),
                prefix: String::new(),
            },
            KeysConfig {
                dir: "/etc/ticketing/keys".into(),
            },
            AuthConfig {
                access_token_ttl: Duration::from_secs(900),
                refresh_token_ttl: Duration::from_secs(3600),
                cookie_secure: true,
                limits: AuthLimits::default(),
                admin: Some(AdminBootstrap {
                    email: "ops@tickets.example".into(),
                    password: Secret::new("a long random one".into()),
                }),
            },
            SmtpConfig {
                host: "smtp.example.com".into(),
                port: 587,
                tls: SmtpTls::StartTls,
                username: Some("tickets".into()),
                password: Some(Secret::new("s3cret".into())),
                from: "Tickets <tickets@tickets.example>".into(),
            },
        )
    }

    fn refused(app_env: AppEnv, (pg, amqp, keys, auth, smtp): &Sections) -> Vec<&'static str> {
        match refuse_dev_settings(app_env, &[pg, amqp, keys, auth, smtp]) {
            Ok(()) => vec![],
            Err(DevSettingsInProduction(found)) => found.iter().map(|s| s.variable).collect(),
        }
    }

    #[test]
    fn production_refuses_every_dev_setting_and_says_what_to_set_instead() {
        let mut config = production();
        assert_eq!(refused(AppEnv::Production, &config), Vec::<&str>::new());
        config.0.url = Secret::new("postgres://postgres@127.0.0.1:5432/ticketing".into());
        config.1.url = Secret::new("amqp://guest:guest@127.0.0.1:5672/%2f".into());
        config.2.dir = "/srv/app/.run/keys".into();
        config.3.cookie_secure = false;
        config.3.admin = Some(AdminBootstrap {
            email: "admin@example.test".into(),
            password: Secret::new(DEV_ADMIN_PASSWORD.into()),
        });
        config.4 = SmtpConfig {
            host: "127.0.0.1".into(),
            port: 1025,
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: "x@example.test".into(),
        };
        let expected = [
            "DATABASE_URL",
            "AMQP_URL",
            "KEYS_DIR",
            "COOKIE_SECURE",
            "ADMIN_PASSWORD",
            "SMTP_HOST",
        ];
        if optional("PGPASSWORD").is_none() && optional("PGPASSFILE").is_none() {
            assert_eq!(refused(AppEnv::Production, &config), expected);
        }
        // Development lets all of it through.
        assert_eq!(refused(AppEnv::Development, &config), Vec::<&str>::new());
        let (pg, amqp, keys, auth, smtp) = &config;
        let message = refuse_dev_settings(AppEnv::Production, &[pg, amqp, keys, auth, smtp])
            .expect_err("refused")
            .to_string();
        assert!(message.starts_with("APP_ENV=production"), "{message}");
        assert!(message.contains("COOKIE_SECURE: false"), "{message}");
        assert!(message.contains("unset COOKIE_SECURE"), "{message}");
        assert!(
            !message.contains(DEV_ADMIN_PASSWORD),
            "never prints the password: {message}"
        );
    }

    #[test]
    fn credentials_are_read_from_urls_as_a_url_parser_would() {
        assert!(postgres_passwordless(
            "postgres://postgres@127.0.0.1:5432/t",
            false
        ));
        assert!(postgres_passwordless(
            "postgres://postgres:@127.0.0.1/t",
            false
        ));
        assert!(postgres_passwordless(
            "postgres://127.0.0.1/t?user=postgres",
            false
        ));
        assert!(!postgres_passwordless(
            "postgres://postgres@127.0.0.1/t",
            true
        ));
        assert!(!postgres_passwordless("postgres://u:p@h/t", false));
        assert!(!postgres_passwordless(
            "postgres://u@h/t?sslmode=verify-full&sslcert=/c.pem",
            false
        ));
        // An '@' in the path is not the userinfo's.
        assert!(postgres_passwordless("postgres://h/db@x", false));
        let amqp = |url: &str| {
            AmqpConfig {
                url: Secret::new(url.into()),
                prefix: String::new(),
            }
            .dev_settings()
            .len()
        };
        assert_eq!(amqp("amqp://guest:guest@127.0.0.1:5672/%2f"), 1);
        assert_eq!(
            amqp("amqp://127.0.0.1:5672/%2f"),
            1,
            "lapin's default user is guest"
        );
        assert_eq!(amqp("amqp://guest:other@mq/%2f"), 1);
        assert_eq!(amqp("amqp://tickets:s3cret@mq/%2f"), 0);
        let keys = |dir: &str| KeysConfig { dir: dir.into() }.dev_settings().len();
        assert_eq!(keys(".run/keys"), 1);
        assert_eq!(keys("/home/dev/ticketing/.run/keys"), 1);
        assert_eq!(keys("/etc/ticketing/keys"), 0);
    }

    #[test]
    fn app_env_parses_strictly() {
        assert_eq!("production".parse::<AppEnv>(), Ok(AppEnv::Production));
        assert_eq!("development".parse::<AppEnv>(), Ok(AppEnv::Development));
        assert!("prod".parse::<AppEnv>().is_err());
    }

    #[test]
    fn tls_mode_and_log_format_parse_strictly() {
        assert_eq!("starttls".parse::<SmtpTls>(), Ok(SmtpTls::StartTls));
        assert!("STARTTLS".parse::<SmtpTls>().is_err());
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert!("xml".parse::<LogFormat>().is_err());
    }
}
