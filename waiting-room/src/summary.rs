//! What a waiting-room instance knows of one queue between two ticks, and the standing of a fan
//! computed from it in memory: no Redis call per status read or push update.
//!
//! Every number up to `seq` belongs to a fan who is waiting, was reached by the tick (at or
//! below `serving`), or left the line (gone). So a waiting fan's place is their number minus
//! the serving mark minus the gone numbers between the two. The summary carries the gone
//! numbers exactly for the front of the line (a bitmap from the serving mark to the end of the
//! block [`FRONT`] numbers past it) and as counts per block of [`BLOCK`] numbers behind it:
//! positions are exact at the front, and behind it off by at most the departures of the fan's
//! own block that the count cannot place (spread evenly over the block).

use std::time::Instant;

use shared::reply::Reply;

use crate::queue::{QueueError, QueueState, Standing};

/// Numbers a departure block counts (`goneblk` in `queue.lua`).
pub const BLOCK: u64 = 512;
/// How far past the serving mark the gone bitmap itself travels (`queue.lua`'s FRONT).
pub const FRONT: u64 = 8192;

/// The phase of a queue (`meta.phase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before the opening: joins wait in the pre-queue.
    Pre,
    /// Opened, the pre-queue being shuffled into its numbers.
    Frozen,
    Open,
}

/// One queue as the last tick left it.
#[derive(Debug, Clone)]
pub struct Summary {
    pub phase: Phase,
    pub gate_on: bool,
    pub rate_per_minute: u64,
    pub opens_at_ms: i64,
    /// Smoothed admissions per second.
    pub outflow: f64,
    pub sold_out: bool,
    /// The number of the last fan the tick reached.
    pub serving: u64,
    /// The last number handed out.
    pub seq: u64,
    /// The pre-queue's numbers are `pre_base + 1 ..= pre_base + pre_count`.
    pub pre_base: u64,
    pub pre_count: u64,
    /// The shuffle's seed, once recorded.
    pub seed: Option<u64>,
    departures: Departures,
    pub fetched: Instant,
}

/// The gone numbers past the serving mark.
#[derive(Debug, Clone, Default)]
struct Departures {
    /// The bitmap's first number (a multiple of 8) and its last (the end of a block).
    front_first: u64,
    front_last: u64,
    front: Vec<u8>,
    /// `front_ones[i]`: set bits in `front[..i]`.
    front_ones: Vec<u32>,
    /// Blocks wholly past the front, in order: (block, departures, departures in the blocks
    /// before it in this list).
    blocks: Vec<(u64, u64, u64)>,
}

impl Departures {
    fn new(serving: u64, front: Vec<u8>, mut counts: Vec<(u64, u64)>) -> Self {
        let front_first = (serving + 1) / 8 * 8;
        let front_last = ((serving + FRONT) / BLOCK + 1) * BLOCK - 1;
        let mut front_ones = Vec::with_capacity(front.len() + 1);
        let mut ones = 0;
        front_ones.push(0);
        for byte in &front {
            ones += byte.count_ones();
            front_ones.push(ones);
        }
        counts.retain(|&(block, count)| block > front_last / BLOCK && count > 0);
        counts.sort_unstable();
        let mut before = 0;
        let blocks = counts
            .into_iter()
            .map(|(block, count)| {
                let entry = (block, count, before);
                before += count;
                entry
            })
            .collect();
        Self {
            front_first,
            front_last,
            front,
            front_ones,
            blocks,
        }
    }

    /// Set bits of the front bitmap for numbers `front_first ..= n` (n within the front).
    fn front_through(&self, n: u64) -> u64 {
        let byte = ((n - self.front_first) / 8) as usize;
        let Some(&value) = self.front.get(byte) else {
            return u64::from(*self.front_ones.last().unwrap_or(&0));
        };
        // Redis numbers a byte's bits from the top: keep bits 0 ..= n % 8.
        let mask = 0xFFu8 << (7 - n % 8);
        u64::from(self.front_ones[byte] + (value & mask).count_ones())
    }

    fn is_gone(&self, n: u64) -> bool {
        if n < self.front_first || n > self.front_last {
            return false;
        }
        let byte = ((n - self.front_first) / 8) as usize;
        self.front
            .get(byte)
            .is_some_and(|value| value & (0x80 >> (n % 8)) != 0)
    }

    /// Gone numbers in `serving + 1 ..= n`.
    fn between(&self, serving: u64, n: u64) -> u64 {
        let mut gone = 0;
        let upto = n.min(self.front_last);
        if upto > serving {
            let below = if serving + 1 > self.front_first {
                self.front_through(serving)
            } else {
                0
            };
            gone += self.front_through(upto) - below;
        }
        if n > self.front_last {
            let block = n / BLOCK;
            // Whole blocks between the front and the fan's own block.
            let whole = self.blocks.partition_point(|&(b, _, _)| b < block);
            gone += self.blocks[..whole].iter().map(|&(_, c, _)| c).sum::<u64>();
            // The fan's own block: as if its departures were spread evenly over it.
            if let Some(&(b, count, _)) = self.blocks.get(whole)
                && b == block
            {
                let into = n - block * BLOCK + 1;
                gone += (count * into).div_ceil(BLOCK).min(count);
            }
        }
        gone
    }
}

impl Summary {
    /// Parses the summary part of `queue.lua`'s answer.
    pub fn parse(reply: &mut Reply<'_>) -> Result<Self, QueueError> {
        let phase = match reply.text()?.as_str() {
            "pre" => Phase::Pre,
            "frozen" => Phase::Frozen,
            "open" => Phase::Open,
            other => return Err(reply.error(format!("unknown phase {other}")).into()),
        };
        let gate_on = reply.uint()? == 1;
        let rate_per_minute = reply.uint()?;
        let opens_at_ms = reply.int()?;
        let outflow = reply.text()?.parse().unwrap_or(0.0);
        let sold_out = reply.uint()? == 1;
        let serving = reply.uint()?;
        let seq = reply.uint()?;
        let pre_base = reply.uint()?;
        let pre_count = reply.uint()?;
        let seed = reply.text()?.parse().ok();
        let front = reply.bytes()?.to_vec();
        let mut flat = reply.list()?;
        let mut counts = Vec::new();
        while !flat.is_empty() {
            counts.push((flat.uint()?, flat.uint()?));
        }
        Ok(Self {
            phase,
            gate_on,
            rate_per_minute,
            opens_at_ms,
            outflow,
            sold_out,
            serving,
            seq,
            pre_base,
            pre_count,
            seed,
            departures: Departures::new(serving, front, counts),
            fetched: Instant::now(),
        })
    }

    /// Is the fan with number `n` known to have left the line? Exact at the front; behind it,
    /// the instance learns it from the tick's answer to its heartbeats.
    pub fn is_gone(&self, n: u64) -> bool {
        self.departures.is_gone(n)
    }

    /// 1-based place in line of the waiting fan with number `n` (`n > serving`).
    pub fn position(&self, n: u64) -> u64 {
        let ahead_or_self = n.saturating_sub(self.serving);
        ahead_or_self
            .saturating_sub(self.departures.between(self.serving, n))
            .max(1)
    }

    /// Fans admitted per second: the measured outflow once there is one, the rate before.
    fn per_second(&self) -> f64 {
        if self.outflow > 0.05 {
            self.outflow
        } else {
            self.rate_per_minute.max(1) as f64 / 60.0
        }
    }

    /// The standing of the waiting fan with number `n` (`n > serving`).
    pub fn waiting(&self, n: u64) -> Standing {
        let position = self.position(n);
        if self.sold_out {
            return Standing {
                state: QueueState::SoldOut,
                position,
                eta_seconds: 0,
                admitted_until_ms: None,
            };
        }
        let ahead = position.saturating_sub(1) as f64;
        Standing {
            state: QueueState::Waiting,
            position,
            eta_seconds: (ahead / self.per_second()).ceil() as u64,
            admitted_until_ms: None,
        }
    }

    /// The standing of a fan in the pre-queue.
    pub fn pre_queue(&self, now_ms: i64) -> Standing {
        Standing {
            state: QueueState::PreQueue,
            position: 0,
            eta_seconds: u64::try_from((self.opens_at_ms - now_ms).max(0) / 1000).unwrap_or(0),
            admitted_until_ms: None,
        }
    }

    /// Has the shuffle given the pre-queue its numbers?
    pub fn pre_queue_placed(&self) -> bool {
        self.phase == Phase::Open
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn summary(serving: u64, seq: u64, gone: &BTreeSet<u64>) -> Summary {
        // The bytes and counts queue.lua would send for these gone numbers.
        let first = (serving + 1) / 8 * 8;
        let last = ((serving + FRONT) / BLOCK + 1) * BLOCK - 1;
        let mut front = vec![0u8; ((last - first) / 8 + 1) as usize];
        let mut counts = std::collections::BTreeMap::new();
        for &n in gone {
            if (first..=last).contains(&n) {
                front[((n - first) / 8) as usize] |= 0x80 >> (n % 8);
            }
            *counts.entry(n / BLOCK).or_insert(0) += 1;
        }
        Summary {
            phase: Phase::Open,
            gate_on: true,
            rate_per_minute: 600,
            opens_at_ms: 0,
            outflow: 0.0,
            sold_out: false,
            serving,
            seq,
            pre_base: 0,
            pre_count: 0,
            seed: None,
            departures: Departures::new(serving, front, counts.into_iter().collect()),
            fetched: Instant::now(),
        }
    }

    #[test]
    fn with_nobody_gone_the_place_is_the_number_past_the_serving_mark() {
        let s = summary(1_000, 50_000, &BTreeSet::new());
        assert_eq!(s.position(1_001), 1);
        assert_eq!(s.position(41_000), 40_000);
        assert_eq!(s.waiting(1_601).eta_seconds, 60, "600 ahead at 10 a second");
    }

    #[test]
    fn positions_are_exact_at_the_front_and_within_a_percent_behind_it() {
        // A third of the line left, at random, and the serving mark sits inside a byte.
        let serving = 123_457;
        let seq = serving + 300_000;
        let mut rng_state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            rng_state ^= rng_state << 13;
            rng_state ^= rng_state >> 7;
            rng_state ^= rng_state << 17;
            rng_state
        };
        let gone: BTreeSet<u64> = (serving + 1..=seq).filter(|_| next() % 3 == 0).collect();
        let s = summary(serving, seq, &gone);
        let mut checked = 0;
        let mut want = 0; // the exact place: waiting numbers from serving + 1 to n
        for n in serving + 1..=seq {
            if gone.contains(&n) {
                assert!(n > s.departures.front_last || s.is_gone(n), "{n}");
                continue;
            }
            want += 1;
            let got = s.position(n);
            if want <= 1_000 || n <= s.departures.front_last {
                assert_eq!(got, want, "number {n}");
            } else {
                let error = got.abs_diff(want) as f64 / want as f64;
                assert!(error <= 0.01, "number {n}: {got} for {want}");
            }
            checked += 1;
        }
        assert!(checked > 190_000);
    }

    #[test]
    fn departures_the_serving_mark_passed_count_nobody() {
        let gone: BTreeSet<u64> = [3, 5, 7, 20, 2_000, 9_000].into();
        let s = summary(10, 10_000, &gone);
        let exact = |n: u64| (11..=n).filter(|k| !gone.contains(k)).count() as u64;
        assert_eq!(s.position(9_500), exact(9_500));
        assert_eq!(s.position(11), 1);
        assert_eq!(s.position(30), 19, "20 left");
        assert_eq!(s.position(9_500), 9_500 - 10 - 3);
        assert!(s.is_gone(20) && s.is_gone(2_000) && !s.is_gone(21));
    }
}
