//! Fairness of the FIFO phase: were fans who joined after the opening admitted in the order
//! they joined? Reported as Kendall's tau-b between join order and admission order (1: the
//! same order; 0: unrelated; -1: reversed).
//!
//! Join order is when each fan sent its join (the load test's clock: the true arrival order).
//! Admission order is the waiting room's own record when it keeps one (`<queue base>admitted`,
//! a list the admission tick appends each admitted fan to, in order); otherwise, the order in
//! which fans saw themselves admitted, which the polling interval blurs.

use std::collections::HashMap;

use serde::Serialize;
use uuid::Uuid;

use crate::scenario::FanRecord;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Fairness {
    /// `waiting room log` or `client observation`.
    pub admission_source: String,
    /// Fans who joined after the opening and were admitted.
    pub fifo_fans: usize,
    /// Kendall's tau-b of admission order vs join order over those fans.
    pub kendall_tau: Option<f64>,
    /// Fans admitted out of turn: admitted before someone who joined earlier, as a share of
    /// pairs (the discordant pairs / all pairs).
    pub discordant_share: Option<f64>,
    /// Fans who joined before the opening (pre-queue, shuffled on purpose).
    pub pre_queue_fans: usize,
    pub note: String,
}

pub async fn measure(
    redis: &shared::cache::Redis,
    keys: &shared::cache::RedisKeys,
    event: Uuid,
    records: &[FanRecord],
) -> Fairness {
    let key = format!(
        "{}admitted",
        keys.queue_base(shared::ids::EventId::from(event))
    );
    let mut conn = redis.conn();
    let logged: Vec<String> = redis::cmd("LRANGE")
        .arg(&key)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    compute(records, &logged)
}

/// `logged`: the waiting room's admission log (user ids in admission order), maybe empty.
pub fn compute(records: &[FanRecord], logged: &[String]) -> Fairness {
    let pre_queue_fans = records
        .iter()
        .filter(|r| r.joined_state.as_deref() == Some("pre_queue"))
        .count();
    let fifo: Vec<&FanRecord> = records
        .iter()
        .filter(|r| r.joined_state.as_deref() == Some("waiting") && r.join_sent.is_some())
        .collect();
    let (source, pairs): (&str, Vec<(f64, f64)>) = if logged.is_empty() {
        (
            "client observation",
            fifo.iter()
                .filter_map(|r| Some((r.join_sent?, r.admitted?)))
                .collect(),
        )
    } else {
        let rank: HashMap<&str, usize> = logged
            .iter()
            .enumerate()
            .map(|(i, u)| (u.as_str(), i))
            .collect();
        (
            "waiting room log",
            fifo.iter()
                .filter_map(|r| Some((r.join_sent?, *rank.get(r.user.as_str())? as f64)))
                .collect(),
        )
    };
    let (tau, discordant) = kendall_tau_b(&pairs);
    Fairness {
        admission_source: source.to_string(),
        fifo_fans: pairs.len(),
        kendall_tau: tau,
        discordant_share: discordant,
        pre_queue_fans,
        note: "join order: when each fan sent its join; only fans who joined after the opening"
            .to_string(),
    }
}

/// Kendall's tau-b of (x, y) pairs in O(n log n) (Knight's algorithm), and the share of
/// discordant pairs. None with fewer than two pairs or when either side is constant.
pub fn kendall_tau_b(pairs: &[(f64, f64)]) -> (Option<f64>, Option<f64>) {
    let n = pairs.len();
    if n < 2 {
        return (None, None);
    }
    let mut v: Vec<(f64, f64)> = pairs.to_vec();
    v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let pairs_of = |t: u64| t * t.saturating_sub(1) / 2;
    let n0 = pairs_of(n as u64);
    // Ties in x, and joint ties in (x, y).
    let (mut n1, mut n3) = (0u64, 0u64);
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j < n && v[j].0 == v[i].0 {
            j += 1;
        }
        n1 += pairs_of((j - i) as u64);
        let mut k = i;
        while k < j {
            let mut m = k;
            while m < j && v[m].1 == v[k].1 {
                m += 1;
            }
            n3 += pairs_of((m - k) as u64);
            k = m;
        }
        i = j;
    }
    // Swaps of a merge sort by y = discordant pairs.
    let mut ys: Vec<f64> = v.iter().map(|p| p.1).collect();
    let swaps = merge_count(&mut ys);
    let mut n2 = 0u64;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j < n && ys[j] == ys[i] {
            j += 1;
        }
        n2 += pairs_of((j - i) as u64);
        i = j;
    }
    let denominator = ((n0 - n1) as f64 * (n0 - n2) as f64).sqrt();
    if denominator == 0.0 {
        return (None, None);
    }
    let numerator = n0 as f64 - n1 as f64 - n2 as f64 + n3 as f64 - 2.0 * swaps as f64;
    (
        Some(numerator / denominator),
        Some(swaps as f64 / n0 as f64),
    )
}

/// Sorts `v` and returns the number of inversions (pairs i < j with v[i] > v[j]).
fn merge_count(v: &mut [f64]) -> u64 {
    let n = v.len();
    if n < 2 {
        return 0;
    }
    let mid = n / 2;
    let mut count = merge_count(&mut v[..mid]) + merge_count(&mut v[mid..]);
    let mut merged = Vec::with_capacity(n);
    let (mut i, mut j) = (0, mid);
    while i < mid && j < n {
        if v[j] < v[i] {
            merged.push(v[j]);
            count += (mid - i) as u64;
            j += 1;
        } else {
            merged.push(v[i]);
            i += 1;
        }
    }
    merged.extend_from_slice(&v[i..mid]);
    merged.extend_from_slice(&v[j..]);
    v.copy_from_slice(&merged);
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook O(n²) definition, to check the fast one against.
    fn naive(pairs: &[(f64, f64)]) -> f64 {
        let (mut c, mut d, mut tx, mut ty) = (0f64, 0f64, 0f64, 0f64);
        for i in 0..pairs.len() {
            for j in i + 1..pairs.len() {
                let dx = pairs[i].0 - pairs[j].0;
                let dy = pairs[i].1 - pairs[j].1;
                if dx == 0.0 && dy == 0.0 {
                } else if dx == 0.0 {
                    tx += 1.0;
                } else if dy == 0.0 {
                    ty += 1.0;
                } else if dx * dy > 0.0 {
                    c += 1.0;
                } else {
                    d += 1.0;
                }
            }
        }
        (c - d) / ((c + d + tx) * (c + d + ty)).sqrt()
    }

    #[test]
    fn same_order_is_one_and_reversed_is_minus_one() {
        let same: Vec<(f64, f64)> = (0..100).map(|i| (i as f64, i as f64 * 2.0)).collect();
        assert_eq!(kendall_tau_b(&same).0, Some(1.0));
        let reversed: Vec<(f64, f64)> = (0..100).map(|i| (i as f64, -(i as f64))).collect();
        assert_eq!(kendall_tau_b(&reversed).0, Some(-1.0));
        assert_eq!(kendall_tau_b(&reversed).1, Some(1.0));
        assert_eq!(kendall_tau_b(&[(1.0, 1.0)]).0, None);
    }

    #[test]
    fn agrees_with_the_definition_with_ties() {
        // A deterministic scramble with many ties on both sides.
        let pairs: Vec<(f64, f64)> = (0..300u64)
            .map(|i| {
                (
                    ((i * 7919) % 50) as f64,
                    ((i * 104_729 + i / 3) % 37) as f64,
                )
            })
            .collect();
        let (fast, _) = kendall_tau_b(&pairs);
        let fast = fast.expect("tau");
        assert!(
            (fast - naive(&pairs)).abs() < 1e-9,
            "{fast} vs {}",
            naive(&pairs)
        );
    }

    #[test]
    fn uses_the_waiting_room_log_for_fifo_fans_only() {
        let fan = |user: &str, state: &str, sent: f64, admitted: f64| FanRecord {
            user: user.into(),
            joined_state: Some(state.into()),
            join_sent: Some(sent),
            admitted: Some(admitted),
            ..FanRecord::default()
        };
        let records = vec![
            fan("a", "waiting", 1.0, 9.0),
            fan("b", "waiting", 2.0, 8.0),
            fan("c", "waiting", 3.0, 7.0),
            fan("p", "pre_queue", 0.5, 1.0),
        ];
        // The client saw them in reverse (polling), the log says a, b, c: the log wins.
        let log: Vec<String> = ["p", "a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let f = compute(&records, &log);
        assert_eq!(f.admission_source, "waiting room log");
        assert_eq!(f.fifo_fans, 3);
        assert_eq!(f.pre_queue_fans, 1);
        assert_eq!(f.kendall_tau, Some(1.0));
        let f = compute(&records, &[]);
        assert_eq!(f.admission_source, "client observation");
        assert_eq!(f.kendall_tau, Some(-1.0));
    }
}
