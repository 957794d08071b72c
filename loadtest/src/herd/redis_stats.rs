//! What the herd costs Redis: calls per second during a phase (`INFO commandstats` before and
//! after: every command's `calls`), the bytes the event's keys hold per waiting fan (`MEMORY
//! USAGE` of every key carrying the event's hash tag), and the exact place of a fan in line
//! (`ZSCORE` of the `waiting` ZSET gives the fan's number, `ZCOUNT -inf number` the place), to
//! check the positions the status endpoint answers.
//!
//! `INFO commandstats` counts the whole server: on a Redis other stacks use too, their calls
//! are in the figures (the report says which server it read).

use std::collections::BTreeMap;

use anyhow::Context;
use redis::aio::MultiplexedConnection;
use serde::Serialize;

/// One command's counters: calls, and the microseconds Redis spent in them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Command {
    pub calls: u64,
    pub usec: u64,
}

/// Counters per command, from one `INFO commandstats`.
pub type CommandStats = BTreeMap<String, Command>;

/// Parses `INFO commandstats`: lines `cmdstat_<name>:calls=N,usec=N,...`; subcommands
/// (`cmdstat_client|list`) keep their full name.
pub fn parse_commandstats(info: &str) -> CommandStats {
    info.lines()
        .filter_map(|line| {
            let (name, fields) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |key: &str| -> Option<u64> {
                fields
                    .split(',')
                    .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))?
                    .parse()
                    .ok()
            };
            let command = Command {
                calls: field("calls")?,
                usec: field("usec").unwrap_or(0),
            };
            Some((name.to_string(), command))
        })
        .collect()
}

/// Calls made between two readings, per second.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CallRate {
    pub total_per_s: f64,
    /// The busiest five commands, calls per second, busiest first.
    pub top: Vec<(String, f64)>,
}

/// The calls between `before` and `after` over `seconds`, leaving out the `INFO` call that
/// took `before` (Redis counts a call once it has answered, so `after`'s own is not in it).
pub fn call_rate(before: &CommandStats, after: &CommandStats, seconds: f64) -> CallRate {
    let mut deltas: Vec<(String, u64)> = after
        .iter()
        .map(|(name, now)| {
            let then = before.get(name).map_or(0, |c| c.calls);
            let mut delta = now.calls.saturating_sub(then);
            // Our own reading of the stats is not the herd's.
            if name == "info" {
                delta = delta.saturating_sub(1);
            }
            (name.clone(), delta)
        })
        .filter(|(_, d)| *d > 0)
        .collect();
    deltas.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let per_s = |n: u64| {
        if seconds > 0.0 {
            n as f64 / seconds
        } else {
            0.0
        }
    };
    CallRate {
        total_per_s: per_s(deltas.iter().map(|(_, d)| d).sum()),
        top: deltas
            .iter()
            .take(5)
            .map(|(name, d)| (name.clone(), per_s(*d)))
            .collect(),
    }
}

pub async fn commandstats(
    conn: &mut impl redis::aio::ConnectionLike,
) -> anyhow::Result<CommandStats> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .context("INFO commandstats")?;
    Ok(parse_commandstats(&info))
}

/// The event's keys (every key under `prefix` holding `{evt:<id>}`) and their bytes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Memory {
    pub keys: Vec<(String, u64)>,
    pub total_bytes: u64,
}

pub async fn event_memory(
    conn: &mut MultiplexedConnection,
    prefix: &str,
    event: &str,
) -> anyhow::Result<Memory> {
    let pattern = format!("{}*{{evt:{event}}}*", glob_escape(prefix));
    let mut cursor: u64 = 0;
    let mut names = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(10_000)
            .query_async(conn)
            .await
            .context("SCAN for the event's keys")?;
        names.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    names.sort();
    names.dedup();
    let mut memory = Memory::default();
    for name in names {
        // SAMPLES 0: every element, not an estimate from five.
        let bytes: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(&name)
            .arg("SAMPLES")
            .arg(0)
            .query_async(conn)
            .await
            .with_context(|| format!("MEMORY USAGE {name}"))?;
        let bytes = bytes.unwrap_or(0);
        memory.total_bytes += bytes;
        memory.keys.push((name, bytes));
    }
    memory.keys.sort_by_key(|k| std::cmp::Reverse(k.1));
    Ok(memory)
}

/// A prefix as a literal in a SCAN MATCH pattern.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The fan's exact 1-based place among the waiting (None when not waiting).
pub async fn exact_position(
    conn: &mut MultiplexedConnection,
    waiting_key: &str,
    member: &[u8],
) -> anyhow::Result<Option<u64>> {
    let score: Option<f64> = redis::cmd("ZSCORE")
        .arg(waiting_key)
        .arg(member)
        .query_async(conn)
        .await
        .context("ZSCORE")?;
    let Some(score) = score else {
        return Ok(None);
    };
    let place: u64 = redis::cmd("ZCOUNT")
        .arg(waiting_key)
        .arg("-inf")
        .arg(score)
        .query_async(conn)
        .await
        .context("ZCOUNT")?;
    Ok(Some(place))
}

/// The first `n` members of the waiting ZSET (raw 16-byte fan ids), front first.
pub async fn front(
    conn: &mut MultiplexedConnection,
    waiting_key: &str,
    n: usize,
) -> anyhow::Result<Vec<Vec<u8>>> {
    redis::cmd("ZRANGE")
        .arg(waiting_key)
        .arg(0)
        .arg(n.saturating_sub(1))
        .query_async(conn)
        .await
        .context("ZRANGE of the waiting fans")
}

/// How the answered positions compare with the exact ones.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Accuracy {
    /// Fans compared in the first 1,000 places, and how many were answered exactly.
    pub front_checked: u64,
    pub front_exact: u64,
    /// Fans compared behind the first 1,000, and the largest |answered − exact| / exact.
    pub behind_checked: u64,
    pub behind_max_rel_error: f64,
    pub behind_exact: u64,
    /// Fans sampled who were no longer waiting (admitted, dropped) and so not compared.
    pub skipped: u64,
}

impl Accuracy {
    /// Adds one fan: `answered` by the status endpoint, `exact` from Redis.
    pub fn add(&mut self, answered: u64, exact: u64) {
        if exact <= 1000 {
            self.front_checked += 1;
            self.front_exact += u64::from(answered == exact);
        } else {
            self.behind_checked += 1;
            self.behind_exact += u64::from(answered == exact);
            let rel = (answered as f64 - exact as f64).abs() / exact as f64;
            self.behind_max_rel_error = self.behind_max_rel_error.max(rel);
        }
    }

    pub fn front_exact_share(&self) -> f64 {
        if self.front_checked == 0 {
            0.0
        } else {
            self.front_exact as f64 / self.front_checked as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Commandstats\r
cmdstat_evalsha:calls=9000,usec=450000,usec_per_call=50.00,rejected_calls=0,failed_calls=0\r
cmdstat_info:calls=3,usec=618,usec_per_call=206.00,rejected_calls=0,failed_calls=0\r
cmdstat_client|list:calls=1,usec=20,usec_per_call=20.00,rejected_calls=0,failed_calls=0\r
cmdstat_hset:calls=10,usec=10,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r
";

    #[test]
    fn commandstats_give_calls_and_time_per_command() {
        let stats = parse_commandstats(INFO);
        let calls = |name: &str| stats.get(name).map(|c| c.calls);
        assert_eq!(
            stats.get("evalsha"),
            Some(&Command {
                calls: 9000,
                usec: 450_000
            })
        );
        assert_eq!(calls("client|list"), Some(1));
        assert_eq!(calls("info"), Some(3));
        assert_eq!(stats.len(), 4);
        assert!(parse_commandstats("# Commandstats\r\n").is_empty());
    }

    #[test]
    fn call_rates_are_deltas_without_our_own_info_busiest_first() {
        let before = parse_commandstats(INFO);
        let mut after = before.clone();
        after.get_mut("evalsha").expect("in INFO").calls += 2000;
        after.get_mut("hset").expect("in INFO").calls += 20;
        after.get_mut("info").expect("in INFO").calls += 1;
        after.insert("zadd".into(), Command { calls: 4, usec: 8 });
        let rate = call_rate(&before, &after, 2.0);
        assert_eq!(rate.total_per_s, 1012.0);
        assert_eq!(
            rate.top,
            vec![
                ("evalsha".to_string(), 1000.0),
                ("hset".to_string(), 10.0),
                ("zadd".to_string(), 2.0)
            ]
        );
    }

    #[test]
    fn accuracy_counts_exact_front_and_worst_error_behind() {
        let mut a = Accuracy::default();
        a.add(1, 1);
        a.add(999, 1000);
        a.add(2000, 2000);
        a.add(10_100, 10_000);
        assert_eq!((a.front_checked, a.front_exact), (2, 1));
        assert_eq!(a.front_exact_share(), 0.5);
        assert_eq!((a.behind_checked, a.behind_exact), (2, 1));
        assert!((a.behind_max_rel_error - 0.01).abs() < 1e-12);
    }

    #[test]
    fn prefixes_are_literal_in_scan_patterns() {
        assert_eq!(glob_escape("herd:"), "herd:");
        assert_eq!(glob_escape("a*b[1]"), "a\\*b\\[1\\]");
    }
}
