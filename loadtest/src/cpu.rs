//! Where the machine's CPU went during a run: user + system seconds of every process, summed by
//! its name (`waiting-room`, `nginx`, `postgres`, `loadtest` — the generator itself — ...),
//! read from `/proc` at the attack's start and end. Processes that start and end inside the run
//! (a short-lived Postgres backend) are missed; the long-lived ones are what matters.

use std::{collections::BTreeMap, fs};

use serde::Serialize;

/// Every process's name and CPU seconds at one moment, by pid (so a process counts only the
/// time it spent inside the window).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    by_pid: BTreeMap<u32, (String, f64)>,
}

/// One process name's share of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Share {
    pub process: String,
    pub cpu_seconds: f64,
    /// Cores it kept busy on average over the window.
    pub cores: f64,
}

/// The clock ticks per second of `/proc/<pid>/stat` (USER_HZ: 100 on every Linux that matters).
const TICKS_PER_SECOND: f64 = 100.0;

/// Parses the name and user + system ticks of one `/proc/<pid>/stat` line. The name is inside
/// parentheses and may itself contain spaces or parentheses: the last `)` ends it.
pub(crate) fn parse_stat(line: &str) -> Option<(String, f64)> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let name = line.get(open + 1..close)?.to_string();
    let fields: Vec<&str> = line.get(close + 2..)?.split_whitespace().collect();
    // After the name: state is field 3 of the line, utime 14, stime 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((name, (utime + stime) / TICKS_PER_SECOND))
}

/// Every process now: its pid and its `/proc` directory.
pub(crate) fn processes() -> impl Iterator<Item = (u32, std::path::PathBuf)> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((pid, entry.path()))
        })
}

/// Reads every process's CPU time now.
pub fn snapshot() -> Snapshot {
    let mut snap = Snapshot::default();
    for (pid, dir) in processes() {
        let Ok(line) = fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        if let Some((name, secs)) = parse_stat(&line) {
            snap.by_pid.insert(pid, (name, secs));
        }
    }
    snap
}

/// The CPU each process name used between `start` and `end` (`window` seconds long), busiest
/// first; names under 1 % of a core are left out.
pub fn shares(start: &Snapshot, end: &Snapshot, window: f64) -> Vec<Share> {
    let mut used: BTreeMap<&str, f64> = BTreeMap::new();
    for (pid, (name, secs)) in &end.by_pid {
        let before = match start.by_pid.get(pid) {
            Some((old_name, old)) if old_name == name => *old,
            _ => 0.0,
        };
        *used.entry(name).or_default() += (secs - before).max(0.0);
    }
    let mut shares: Vec<Share> = used
        .into_iter()
        .map(|(process, cpu_seconds)| Share {
            process: process.to_string(),
            cpu_seconds,
            cores: if window > 0.0 {
                cpu_seconds / window
            } else {
                0.0
            },
        })
        .filter(|s| s.cores >= 0.01)
        .collect();
    shares.sort_by(|a, b| b.cpu_seconds.total_cmp(&a.cpu_seconds));
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_the_name_and_cpu_seconds_even_with_odd_names() {
        let line =
            "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 1234 0 0";
        assert_eq!(parse_stat(line), Some(("tokio (rt) x".to_string(), 3.0)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn shares_count_only_the_window_and_new_processes_from_zero() {
        let snap = |rows: &[(u32, &str, f64)]| Snapshot {
            by_pid: rows
                .iter()
                .map(|(pid, name, secs)| (*pid, (name.to_string(), *secs)))
                .collect(),
        };
        let start = snap(&[(1, "nginx", 10.0), (2, "nginx", 5.0), (3, "postgres", 1.0)]);
        let end = snap(&[
            (1, "nginx", 30.0),
            (2, "nginx", 5.0),
            (4, "postgres", 4.0),
            (5, "idle", 0.01),
        ]);
        let shares = shares(&start, &end, 10.0);
        let got: Vec<(&str, f64, f64)> = shares
            .iter()
            .map(|s| (s.process.as_str(), s.cpu_seconds, s.cores))
            .collect();
        assert_eq!(got, vec![("nginx", 20.0, 2.0), ("postgres", 4.0, 0.4)]);
    }
}
