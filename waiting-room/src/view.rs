//! This instance's view of each queue it serves: the summary of the last tick (published to
//! every push stream of the event), the numbers it saw since (written to Redis with the next
//! tick, once per fan and epoch), the pre-queue's shuffled order, and what it learnt of fans
//! the serving mark has reached. Nothing here is the truth: Redis is, and every piece is
//! refreshed by the tick or looked up again when it is missing.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::{Duration, Instant},
};

use shared::ids::EventId;
use tokio::sync::watch;

use crate::{
    queue::{QueueState, Standing, fisher_yates},
    summary::Summary,
};

/// How long an admission read from Redis is trusted: a registration may spend it meanwhile.
const ADMITTED_TRUST: Duration = Duration::from_secs(1);

/// The views of every queue this instance has served or ticked.
#[derive(Clone, Default)]
pub struct Views {
    // A read lock per request; the write lock only when an event is seen for the first time.
    inner: Arc<RwLock<HashMap<EventId, Arc<View>>>>,
}

impl std::fmt::Debug for Views {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Views").finish_non_exhaustive()
    }
}

impl Views {
    pub fn get(&self, event: EventId) -> Option<Arc<View>> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&event)
            .cloned()
    }

    pub fn get_or_insert(&self, event: EventId) -> Arc<View> {
        if let Some(view) = self.get(event) {
            return view;
        }
        self.inner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(event)
            .or_insert_with(|| Arc::new(View::new()))
            .clone()
    }

    pub fn remove(&self, event: EventId) {
        self.inner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&event);
    }
}

/// The numbers seen during one epoch, each written once.
#[derive(Debug, Default)]
struct Seen {
    epoch: u64,
    written: HashSet<u32>,
    pending: Vec<u32>,
}

/// The pre-queue's numbers in arrival order: `numbers[arrival - 1]` is the fan's shuffled index.
#[derive(Debug)]
struct PreOrder {
    seed: u64,
    shuffled: Vec<u32>,
}

/// What the serving mark's passing left a fan with.
#[derive(Debug, Clone, Copy)]
enum Reached {
    Admitted { until_ms: i64, read: Instant },
    Expired,
}

/// One queue, as this instance knows it.
#[derive(Debug)]
pub struct View {
    summary: watch::Sender<Option<Arc<Summary>>>,
    seen: Mutex<Seen>,
    order: Mutex<Option<Arc<PreOrder>>>,
    /// Numbers of fans the tick dropped, learnt from its answer to this instance's heartbeats.
    gone: Mutex<HashSet<u64>>,
    reached: Mutex<HashMap<u64, Reached>>,
    /// Set by every status read, so the tick prepares the pre-queue order only where needed.
    used: std::sync::atomic::AtomicBool,
    /// Held while a status read fetches a summary itself, so a burst of reads on a stale view
    /// makes one Redis call, not one each.
    pub refreshing: tokio::sync::Mutex<()>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl View {
    fn new() -> Self {
        Self {
            summary: watch::Sender::new(None),
            seen: Mutex::default(),
            order: Mutex::default(),
            gone: Mutex::default(),
            reached: Mutex::default(),
            used: false.into(),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// The last summary, if it is younger than `fresh`.
    pub fn summary(&self, fresh: Duration) -> Option<Arc<Summary>> {
        // Read before writing: every status read passes here, and a store on each would bounce
        // the cache line between cores.
        if !self.used.load(std::sync::atomic::Ordering::Relaxed) {
            self.used.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.summary
            .borrow()
            .as_ref()
            .filter(|s| s.fetched.elapsed() < fresh)
            .cloned()
    }

    pub fn publish(&self, summary: Summary) {
        self.summary.send_replace(Some(Arc::new(summary)));
    }

    /// A receiver that wakes with every new summary (for push streams).
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Summary>>> {
        self.summary.subscribe()
    }

    /// Notes that the fan with number `n` was seen in `epoch`; the next tick writes it.
    pub fn saw(&self, n: u64, epoch: u64) {
        let Ok(n) = u32::try_from(n) else { return };
        let mut seen = lock(&self.seen);
        if seen.epoch != epoch {
            seen.epoch = epoch;
            seen.written.clear();
        }
        if seen.written.insert(n) {
            seen.pending.push(n);
        }
    }

    /// The numbers to write with the next tick.
    pub fn take_seen(&self) -> Vec<u32> {
        std::mem::take(&mut lock(&self.seen).pending)
    }

    /// Puts back numbers a failed tick did not write.
    pub fn restore_seen(&self, numbers: Vec<u32>) {
        lock(&self.seen).pending.extend(numbers);
    }

    pub fn learn_gone(&self, numbers: impl IntoIterator<Item = u64>) {
        lock(&self.gone).extend(numbers);
    }

    pub fn is_gone(&self, n: u64) -> bool {
        lock(&self.gone).contains(&n)
    }

    /// The number of the pre-queue fan who arrived `arrival`-th, once the shuffle is known.
    pub fn pre_queue_number(&self, summary: &Summary, arrival: u64) -> Option<u64> {
        let order = lock(&self.order).clone()?;
        if Some(order.seed) != summary.seed {
            return None;
        }
        let index = usize::try_from(arrival.checked_sub(1)?).ok()?;
        let shuffled = *order.shuffled.get(index)?;
        Some(summary.pre_base + 1 + u64::from(shuffled))
    }

    /// Whether the tick should compute the pre-queue order now (seed and count known, the view
    /// in use, not computed yet): the parameters to compute it with.
    pub fn order_wanted(&self, summary: &Summary) -> Option<(u64, u64)> {
        let seed = summary.seed?;
        if !summary.pre_queue_placed()
            || summary.pre_count == 0
            || !self.used.load(std::sync::atomic::Ordering::Relaxed)
        {
            return None;
        }
        match lock(&self.order).as_ref() {
            Some(order) if order.seed == seed => None,
            _ => Some((seed, summary.pre_count)),
        }
    }

    pub fn set_order(&self, seed: u64, count: u64) {
        let shuffled = pre_queue_order(seed, count);
        *lock(&self.order) = Some(Arc::new(PreOrder { seed, shuffled }));
    }

    /// What is known of the reached fan with number `n`, if it is still to be trusted.
    pub fn reached(&self, n: u64) -> Option<Standing> {
        let reached = lock(&self.reached).get(&n).copied()?;
        match reached {
            Reached::Expired => Some(Standing::ended(QueueState::Expired)),
            Reached::Admitted { until_ms, read } if read.elapsed() < ADMITTED_TRUST => {
                Some(Standing {
                    state: QueueState::Admitted,
                    position: 0,
                    eta_seconds: 0,
                    admitted_until_ms: Some(until_ms),
                })
            }
            Reached::Admitted { .. } => None,
        }
    }

    pub fn remember_reached(&self, n: u64, standing: &Standing) {
        let reached = match (standing.state, standing.admitted_until_ms) {
            (QueueState::Admitted, Some(until_ms)) => Reached::Admitted {
                until_ms,
                read: Instant::now(),
            },
            (QueueState::Expired, _) => Reached::Expired,
            _ => return,
        };
        lock(&self.reached).insert(n, reached);
    }
}

/// For each pre-queue arrival (0-based), its place in the shuffled order: the inverse of the
/// permutation `Queues::shuffle` applies to the pre-queue read in arrival order.
pub fn pre_queue_order(seed: u64, count: u64) -> Vec<u32> {
    let count = u32::try_from(count).unwrap_or(u32::MAX);
    let mut placed: Vec<u32> = (0..count).collect();
    fisher_yates(&mut placed, seed);
    let mut shuffled = vec![0u32; placed.len()];
    for (index, arrival) in placed.iter().enumerate() {
        shuffled[*arrival as usize] = index as u32;
    }
    shuffled
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pre_queue_order_inverts_the_shuffle() {
        let mut fans: Vec<u32> = (0..500).collect();
        fisher_yates(&mut fans, 7);
        let shuffled = pre_queue_order(7, 500);
        for (index, fan) in fans.iter().enumerate() {
            assert_eq!(shuffled[*fan as usize] as usize, index);
        }
    }

    #[test]
    fn a_fan_seen_twice_in_an_epoch_is_written_once() {
        let view = View::new();
        view.saw(5, 1);
        view.saw(5, 1);
        view.saw(6, 1);
        assert_eq!(view.take_seen(), vec![5, 6]);
        view.saw(5, 1);
        assert!(view.take_seen().is_empty());
        view.saw(5, 2);
        assert_eq!(view.take_seen(), vec![5], "a new epoch writes it again");
    }
}
