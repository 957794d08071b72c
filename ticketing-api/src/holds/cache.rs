//! The events' sale rules in memory: a hold and a registration read them without a Postgres
//! round trip, and a change reaches every instance as soon as it commits (invalidation, not a
//! time-to-live guess).
//!
//! **Where changes come from.** Triggers on `events` (update, delete, truncate) and
//! `ticket_classes` (insert, update, delete, truncate) notify the channel [`CHANNEL`] with the
//! event's id (migration `0007_sale_rules_notify.sql`). The database sends it, at commit and
//! with the change, so no writer can forget it: today's writers are the organizer's PATCH,
//! cancel and delete (`events::change`), the demand-mode switch (`gate::set_demand_mode`),
//! event creation (`events::store`, classes of a new event), and anyone with psql. Moving the
//! sale's opening also writes the waiting room's gate hash (`shared::gate::move_opening`), which
//! is Redis, not these rules; the PATCH that moves it changes `events` and is notified.
//! Each process listens on one connection of its own (application name [`APPLICATION_NAME`])
//! and forgets an event's rules when its id arrives; `*` forgets them all.
//!
//! **How fresh.** The instance that makes a change forgets the rules itself after its commit,
//! before it answers ([`RulesCache::forget`]), so the organizer's next request there sees the
//! change. Other instances see it once the notification arrives, well under a millisecond on
//! one host: a request they serve in between uses the old rules (one seat more than a new
//! maximum, the old price in a queued registration's quote, a hold without the gate just
//! switched on), just as a request that read the rules a moment before the commit always
//! could. Postgres stays the final word where it matters: a booking re-checks the event's
//! cancellation inside its own transaction.
//!
//! **What must never happen: stale rules kept for good.** Four rules see to it.
//! 1. *A load racing a change.* A miss reads the cache's generation, then loads from Postgres,
//!    then keeps the result only if the generation is unchanged. Every invalidation (an id, all,
//!    the listener lost or back) bumps it, under the same lock as the map. A load that read the
//!    rules before a change committed either ends before the change's notification is handled
//!    (it is kept, then the notification removes it) or after (the generation moved: it is
//!    served to its own request only).
//! 2. *A lost listener.* Notifications sent while the connection is down are gone for good, so
//!    the moment the listener sees its connection end (or a ping go unanswered) the cache is
//!    cleared and stops being trusted: every request reads Postgres. It is trusted again only
//!    after a fresh connection's `LISTEN` succeeded *and* the map was cleared once more, in that
//!    order, so no change slips between the two. A dead connection is seen when its socket
//!    closes (at once when Postgres ends it); one that goes silent (a network that drops
//!    packets) is caught by a ping after [`PING_AFTER`] without a message, answered within
//!    [`PING_TIMEOUT`], which bounds how long such a failure can serve old rules.
//! 3. *Before the first `LISTEN`,* nothing is cached: a process starts by reading Postgres.
//! 4. *Bounded memory.* At most [`MAX_EVENTS`] events; one more clears the map (events on sale
//!    at once are few; a map that big means something unusual, and starting over is cheap).
//!
//! Only the rules are kept, never a decision: whether the sale is open is decided at each
//! request against the clock (`SaleRules::check_open`), so a cached rule set still opens and
//! closes the sale on time. Unknown events are not cached (a new event needs no notification).
//!
//! Metrics: `sale_rules_cache_hits_total`, `sale_rules_cache_misses_total` (a load from
//! Postgres), `sale_rules_cache_invalidations_total{source}` (`notification`, `local`, `all`),
//! `sale_rules_listener_lost_total`.

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        Arc, PoisonError, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use shared::{backoff::Backoff, ids::EventId, shutdown::Shutdown};
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgListener, PgPoolOptions},
};

use super::{HoldError, SaleRules};

/// The channel the triggers of migration `0007_sale_rules_notify.sql` notify: the payload is
/// an event id, or `*` for every event.
pub const CHANNEL: &str = "sale_rules";

/// The listener connection's name in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "ticketing-api sale-rules listener";

/// At most this many events' rules are kept; one more starts the map over.
pub const MAX_EVENTS: usize = 1_024;

/// Without a message for this long, the listener pings its connection.
pub const PING_AFTER: Duration = Duration::from_secs(5);

/// A ping unanswered for this long counts as a lost connection.
pub const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// How long connecting may take (connecting and `LISTEN` together, twice that) before the
/// attempt counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection that lasted this long was healthy: the next reconnection starts with the
/// shortest pause again.
const STEADY: Duration = Duration::from_secs(30);

/// The sale rules of each event, per process. Cheap to clone (one `Arc`).
#[derive(Debug, Clone, Default)]
pub struct RulesCache {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// A `RwLock` over a map (as `BanList` and `CatalogCache` do): every hold and registration
    /// reads it, a change or a miss writes it, and no await happens while it is held.
    state: RwLock<State>,
    loads: AtomicU64,
    invalidations: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    rules: HashMap<EventId, Arc<SaleRules>>,
    /// Bumped by every invalidation; a load keeps its result only if it did not move.
    generation: u64,
    /// The listener is listening, and the map was cleared since it last was not: only then is
    /// anything in the map served, or kept.
    listening: bool,
}

impl RulesCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The event's rules: from memory while the listener is up and they are there, otherwise
    /// from Postgres (and kept, when no change can have slipped by meanwhile).
    pub async fn get(&self, db: &PgPool, event: EventId) -> Result<Arc<SaleRules>, HoldError> {
        self.get_or_load(event, || SaleRules::load(db, event)).await
    }

    /// [`Self::get`] with the load given: what runs on a miss (the tests hold a load in
    /// flight while a change commits, to check rule 1).
    pub async fn get_or_load<F, Fut>(
        &self,
        event: EventId,
        load: F,
    ) -> Result<Arc<SaleRules>, HoldError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<SaleRules, HoldError>>,
    {
        let generation = {
            let state = self.read();
            if state.listening
                && let Some(rules) = state.rules.get(&event)
            {
                metrics::counter!("sale_rules_cache_hits_total").increment(1);
                return Ok(rules.clone());
            }
            state.listening.then_some(state.generation)
        };
        metrics::counter!("sale_rules_cache_misses_total").increment(1);
        self.inner.loads.fetch_add(1, Ordering::Relaxed);
        let rules = Arc::new(load().await?);
        if let Some(generation) = generation {
            let mut state = self.write();
            if state.listening && state.generation == generation {
                if state.rules.len() >= MAX_EVENTS && !state.rules.contains_key(&event) {
                    state.rules.clear();
                }
                state.rules.insert(event, rules.clone());
            }
        }
        Ok(rules)
    }

    /// Forgets the event's rules in this process at once: a writer calls it after its commit,
    /// so its own instance never answers with the old rules after the change's response.
    pub fn forget(&self, event: EventId) {
        self.invalidate(Some(event), "local");
    }

    /// Is the listener up (and so the cache in use)?
    pub fn is_listening(&self) -> bool {
        self.read().listening
    }

    /// Are the event's rules in memory now?
    pub fn is_cached(&self, event: EventId) -> bool {
        self.read().rules.contains_key(&event)
    }

    /// How many times this process read rules from Postgres.
    pub fn loads(&self) -> u64 {
        self.inner.loads.load(Ordering::Relaxed)
    }

    /// How many invalidations (an event's, or all) this process has handled.
    pub fn invalidations(&self) -> u64 {
        self.inner.invalidations.load(Ordering::Relaxed)
    }

    /// Listens for changes on a connection of its own (made like `db`'s) until `shutdown` or
    /// until `db` is closed, reconnecting when it is lost; the cache is in use only while it
    /// listens.
    pub fn spawn_listener(&self, db: &PgPool, shutdown: Shutdown) {
        tokio::spawn(listen(self.clone(), db.clone(), shutdown));
    }

    /// `None`: every event.
    fn invalidate(&self, event: Option<EventId>, source: &'static str) {
        {
            let mut state = self.write();
            state.generation += 1;
            match event {
                Some(event) => {
                    state.rules.remove(&event);
                }
                None => state.rules.clear(),
            }
        }
        self.inner.invalidations.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("sale_rules_cache_invalidations_total", "source" => source).increment(1);
    }

    /// A notification's payload: an event id, or anything else (`*`) for every event.
    fn notified(&self, payload: &str) {
        match payload.parse::<EventId>() {
            Ok(event) => self.invalidate(Some(event), "notification"),
            Err(_) => self.invalidate(None, "all"),
        }
    }

    /// The listener came up (after its `LISTEN`) or went down: either way the map starts
    /// empty, and no load begun before counts.
    fn set_listening(&self, listening: bool) {
        let mut state = self.write();
        state.generation += 1;
        state.rules.clear();
        state.listening = listening;
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Connects, listens and follows until `shutdown` (or until the app's pool `db` is closed: the
/// app is done with Postgres, as at the end of a test); a lost connection is replaced, after a
/// pause that doubles while attempts keep failing, and the cache is unused in between.
async fn listen(cache: RulesCache, db: PgPool, mut shutdown: Shutdown) {
    let options = (*db.connect_options())
        .clone()
        .application_name(APPLICATION_NAME);
    let stopped = async move {
        tokio::select! {
            () = shutdown.recv() => {}
            () = db.close_event() => {}
        }
    };
    tokio::pin!(stopped);
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        let connected = tokio::select! {
            () = &mut stopped => return,
            connected = connect(&options) => connected,
        };
        match connected {
            Ok(mut listener) => {
                // After the LISTEN: a change committed from now on is notified, and one
                // committed before is in Postgres for the loads that start after this clear.
                cache.set_listening(true);
                tracing::info!("listening for sale rule changes; keeping rules in memory");
                let since = Instant::now();
                let lost = tokio::select! {
                    () = &mut stopped => None,
                    lost = follow(&cache, &mut listener) => Some(lost),
                };
                cache.set_listening(false);
                drop(listener);
                let Some(lost) = lost else { return };
                metrics::counter!("sale_rules_listener_lost_total").increment(1);
                tracing::warn!(
                    error = format!("{lost:#}"),
                    "lost the sale rules listener; reading rules from Postgres until it is back"
                );
                if since.elapsed() >= STEADY {
                    backoff.reset();
                }
            }
            Err(err) => {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "cannot listen for sale rule changes; reading rules from Postgres"
                );
            }
        }
        tokio::select! {
            () = &mut stopped => return,
            () = tokio::time::sleep(backoff.next_pause()) => {}
        }
    }
}

/// A listener on a connection of its own, listening on [`CHANNEL`].
async fn connect(options: &PgConnectOptions) -> anyhow::Result<PgListener> {
    // A pool of one, the listener's own: it keeps its connection for as long as it listens,
    // which the app's pool would lose to it, and it carries its own application name.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(CONNECT_TIMEOUT)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_lazy_with(options.clone());
    let listening = async {
        let mut listener = PgListener::connect_with(&pool).await?;
        // A lost connection is this module's to replace, clearing the cache in between; the
        // listener must not quietly reconnect behind its back.
        listener.eager_reconnect(false);
        listener.listen(CHANNEL).await?;
        Ok::<_, sqlx::Error>(listener)
    };
    tokio::time::timeout(CONNECT_TIMEOUT * 2, listening)
        .await
        .context("connecting took too long")?
        .context("connecting and listening")
}

/// Handles notifications until the connection is lost: why.
async fn follow(cache: &RulesCache, listener: &mut PgListener) -> anyhow::Error {
    loop {
        // `try_recv` may be cancelled (sqlx reads a whole message or none of it).
        match tokio::time::timeout(PING_AFTER, listener.try_recv()).await {
            Ok(Ok(Some(notification))) => cache.notified(notification.payload()),
            Ok(Ok(None)) => return anyhow::anyhow!("the connection closed"),
            Ok(Err(err)) => return anyhow::Error::new(err).context("receiving notifications"),
            Err(_quiet) => {
                // Quiet for a while: is the connection still there?
                let ping = sqlx::query("SELECT 1").execute(&mut *listener);
                match tokio::time::timeout(PING_TIMEOUT, ping).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => return anyhow::Error::new(err).context("pinging"),
                    Err(_) => return anyhow::anyhow!("a ping went unanswered"),
                }
            }
        }
    }
}
