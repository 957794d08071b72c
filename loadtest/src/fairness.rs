//! Fairness of the FIFO phase: were fans who joined after the opening admitted in the order
//! they joined? Reported as Kendall's tau-b between join order and admission order (1: the
//! same order; 0: unrelated; -1: reversed).
//!
//! Join order is when the gateway received each fan's join: the moment the request entered the
//! system. Each join carries `X-Request-Id: join-<user id>`, which the gateway keeps and logs as
//! `rid=`, with `msec=` (when the request ended) and `rt=` (how long it took): received =
//! msec − rt, to the millisecond. Only the lines this run wrote are read (from the log's length
//! when the attack started). When the log is not there, cannot be read, or lacks one of the
//! fans, join order falls back to when each fan *sent* its join (the generator's clock), which
//! mixes the generator's own queueing into the figure; the report says which was used.
//!
//! Admission order is the waiting room's own record when it keeps one (`<queue base>admitted`,
//! a list the admission tick appends each admitted fan to, in order); otherwise, the order in
//! which fans saw themselves admitted, which the polling interval blurs.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Seek, SeekFrom},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use serde::Serialize;
use uuid::Uuid;

use crate::scenario::FanRecord;

/// The request id prefix of a fan's join (`join-<user id>`), set by the scenario.
pub const JOIN_REQUEST_ID_PREFIX: &str = "join-";

/// The two sources of join order, as the report names them.
pub const JOIN_SOURCE_GATEWAY: &str = "gateway receive time";
pub const JOIN_SOURCE_SENT: &str = "generator send time";

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
    /// [`JOIN_SOURCE_GATEWAY`] or [`JOIN_SOURCE_SENT`] (the fallback).
    pub join_source: String,
    /// FIFO fans whose join the gateway's access log holds (of `fifo_candidates`).
    pub join_matched: usize,
    /// Fans who joined after the opening (whether or not they were admitted).
    pub fifo_candidates: usize,
    /// The same tau with join order by send time, for comparison when the gateway's was used
    /// (the difference is the generator's own queueing).
    pub kendall_tau_by_send_time: Option<f64>,
    pub note: String,
}

/// Where the gateway's access log ended when the attack started: the report reads only what
/// this run wrote after it.
#[derive(Debug, Clone)]
pub struct AccessLogMark {
    pub path: PathBuf,
    pub offset: u64,
    /// The file's inode then: another file at the path (rotated) is read from its start.
    pub inode: Option<u64>,
}

impl AccessLogMark {
    /// The log's current length (0 when it does not exist yet: nginx creates it at start, so a
    /// missing log is reported when it is read).
    pub fn take(path: &Path) -> Self {
        let meta = std::fs::metadata(path).ok();
        Self {
            path: path.to_path_buf(),
            offset: meta.as_ref().map_or(0, |m| m.len()),
            inode: meta.map(|m| m.ino()),
        }
    }
}

/// When the gateway received each fan's join, by user id (Unix seconds), or why it is not known.
pub type JoinTimes = Result<HashMap<String, f64>, String>;

/// The joins this run wrote to the gateway's access log. A log rotated meanwhile (another
/// inode, or shorter than the mark: truncated) is read from its start. Several lines for one
/// fan keep the earliest.
pub fn read_joins(mark: Option<&AccessLogMark>) -> JoinTimes {
    let mark = mark.ok_or("GATEWAY_ACCESS_LOG is not set")?;
    let shown = mark.path.display();
    let mut file =
        std::fs::File::open(&mark.path).map_err(|err| format!("cannot open {shown}: {err}"))?;
    let meta = file
        .metadata()
        .map_err(|err| format!("cannot read {shown}: {err}"))?;
    let same_file = mark.inode == Some(meta.ino()) && meta.len() >= mark.offset;
    let offset = if same_file { mark.offset } else { 0 };
    file.seek(SeekFrom::Start(offset))
        .map_err(|err| format!("cannot read {shown}: {err}"))?;
    let mut joins = HashMap::new();
    // Lines are read as bytes: a user agent is not guaranteed to be UTF-8.
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(err) => return Err(format!("cannot read {shown}: {err}")),
        }
        if let Some(join) = parse_join_line(&String::from_utf8_lossy(&line)) {
            joins
                .entry(join.user)
                .and_modify(|t: &mut f64| *t = t.min(join.received))
                .or_insert(join.received);
        }
    }
    Ok(joins)
}

/// One fan's join as the gateway logged it.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayJoin {
    pub user: String,
    /// When the gateway received the request: Unix seconds, ms precision.
    pub received: f64,
}

/// A line of the gateway's access log (`log_format gateway` in infra/nginx/nginx.conf.template)
/// when it is a fan's answered join (`POST /api/queue/ID/join`, 200, `rid=join-<user id>`);
/// None for every other line.
pub fn parse_join_line(line: &str) -> Option<GatewayJoin> {
    // The user agent is quoted and may hold spaces; msec= comes after it, the rest before.
    let (head, tail) = line.rsplit_once(" ua=\"")?;
    let msec: f64 = tail.rsplit_once(" msec=")?.1.trim().parse().ok()?;
    let (request, after) = head.split_once('"')?.1.split_once('"')?;
    let mut parts = request.split(' ');
    if parts.next()? != "POST" {
        return None;
    }
    let path = parts.next()?;
    if !(path.starts_with("/api/queue/") && path.ends_with("/join")) {
        return None;
    }
    let mut fields = after.split_whitespace();
    if fields.next()? != "200" {
        return None;
    }
    let (mut rt, mut user) = (None, None);
    for field in fields {
        if let Some(v) = field.strip_prefix("rt=") {
            rt = v.parse::<f64>().ok();
        } else if let Some(v) = field.strip_prefix("rid=") {
            user = v
                .strip_prefix(JOIN_REQUEST_ID_PREFIX)
                .and_then(|u| Uuid::parse_str(u).ok())
                .map(|u| u.to_string());
        }
    }
    Some(GatewayJoin {
        user: user?,
        // Both are written with three decimals: round away the float noise of the difference.
        received: ((msec - rt?) * 1000.0).round() / 1000.0,
    })
}

pub async fn measure(
    redis: &shared::cache::Redis,
    keys: &shared::cache::RedisKeys,
    event: Uuid,
    records: &[FanRecord],
    joins: &JoinTimes,
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
    compute(records, &logged, joins)
}

/// `logged`: the waiting room's admission log (user ids in admission order), maybe empty.
/// `joins`: the gateway's receive time of each join, or why there is none.
pub fn compute(records: &[FanRecord], logged: &[String], joins: &JoinTimes) -> Fairness {
    let pre_queue_fans = records
        .iter()
        .filter(|r| r.joined_state.as_deref() == Some("pre_queue"))
        .count();
    let fifo: Vec<&FanRecord> = records
        .iter()
        .filter(|r| r.joined_state.as_deref() == Some("waiting") && r.join_sent.is_some())
        .collect();
    // The gateway's clock for every fan or for none: the two clocks do not order against each
    // other (the send time is on the generator's run clock, before its own queueing).
    let (join_matched, gateway, why_not) = match joins {
        Ok(received) => {
            let matched = fifo
                .iter()
                .filter(|r| received.contains_key(&r.user))
                .count();
            if matched == fifo.len() {
                (matched, Some(received), None)
            } else {
                let why = format!(
                    "the gateway's access log lacks {} of the {} fans",
                    fifo.len() - matched,
                    fifo.len()
                );
                (matched, None, Some(why))
            }
        }
        Err(why) => (0, None, Some(why.clone())),
    };
    let rank: HashMap<&str, usize> = logged
        .iter()
        .enumerate()
        .map(|(i, u)| (u.as_str(), i))
        .collect();
    let source = if logged.is_empty() {
        "client observation"
    } else {
        "waiting room log"
    };
    let admitted_at = |r: &FanRecord| -> Option<f64> {
        if logged.is_empty() {
            r.admitted
        } else {
            rank.get(r.user.as_str()).map(|&i| i as f64)
        }
    };
    let pairs_by = |join_time: &dyn Fn(&FanRecord) -> Option<f64>| -> Vec<(f64, f64)> {
        fifo.iter()
            .filter_map(|r| Some((join_time(r)?, admitted_at(r)?)))
            .collect()
    };
    let by_send_time = pairs_by(&|r| r.join_sent);
    let pairs = match gateway {
        Some(received) => pairs_by(&|r| received.get(&r.user).copied()),
        None => by_send_time.clone(),
    };
    let (tau, discordant) = kendall_tau_b(&pairs);
    let join_source = if gateway.is_some() {
        JOIN_SOURCE_GATEWAY
    } else {
        JOIN_SOURCE_SENT
    };
    let note = match why_not {
        None => format!(
            "join order: when the gateway received each join (its access log, ms; all {join_matched} fans found); only fans who joined after the opening"
        ),
        Some(why) => format!(
            "join order: when each fan sent its join (fallback: {why}; {join_matched} of {} fans found in the log), which includes the generator's own queueing; only fans who joined after the opening",
            fifo.len()
        ),
    };
    Fairness {
        admission_source: source.to_string(),
        fifo_fans: pairs.len(),
        kendall_tau: tau,
        discordant_share: discordant,
        pre_queue_fans,
        join_source: join_source.to_string(),
        join_matched,
        fifo_candidates: fifo.len(),
        kendall_tau_by_send_time: kendall_tau_b(&by_send_time).0,
        note,
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
        let no_log: JoinTimes = Err("GATEWAY_ACCESS_LOG is not set".into());
        let f = compute(&records, &log, &no_log);
        assert_eq!(f.admission_source, "waiting room log");
        assert_eq!(f.fifo_fans, 3);
        assert_eq!(f.pre_queue_fans, 1);
        assert_eq!(f.kendall_tau, Some(1.0));
        let f = compute(&records, &[], &no_log);
        assert_eq!(f.admission_source, "client observation");
        assert_eq!(f.kendall_tau, Some(-1.0));
    }

    const A: &str = "00000000-0000-4000-8000-00000000000a";
    const B: &str = "00000000-0000-4000-8000-00000000000b";
    const C: &str = "00000000-0000-4000-8000-00000000000c";

    fn line(method: &str, path: &str, status: u16, rt: &str, rid: &str, msec: &str) -> String {
        format!(
            "127.0.0.1 [2026-12-02T14:00:00+00:00] \"{method} {path} HTTP/1.1\" {status} 120 rt={rt} urt={rt} up=127.0.0.1:18081 rid={rid} ua=\"goose/0.19 (a \\x22quoted\\x22 agent msec=1) ua=\\x22\" msec={msec}\n"
        )
    }

    fn join(user: &str, msec: &str, rt: &str) -> String {
        line(
            "POST",
            "/api/queue/0f1e/join",
            200,
            rt,
            &format!("join-{user}"),
            msec,
        )
    }

    #[test]
    fn a_join_line_gives_the_fan_and_the_gateways_receive_time() {
        let parsed = parse_join_line(&join(A, "1764684000.250", "0.125")).expect("a join line");
        assert_eq!(parsed.user, A);
        assert_eq!(parsed.received, 1_764_684_000.125);
    }

    #[test]
    fn other_lines_are_not_joins() {
        let rid = format!("join-{A}");
        for other in [
            line("GET", "/api/queue/0f1e/status", 200, "0.001", &rid, "1.0"),
            line("POST", "/api/queue/0f1e/join", 429, "0.001", &rid, "1.0"),
            line(
                "POST",
                "/api/queue/0f1e/join",
                200,
                "0.001",
                "abc123",
                "1.0",
            ),
            line(
                "POST",
                "/api/queue/0f1e/join",
                200,
                "0.001",
                "join-x",
                "1.0",
            ),
            line("POST", "/api/holds", 200, "0.001", &rid, "1.0"),
            // A line of the format before msec= was added.
            line("POST", "/api/queue/0f1e/join", 200, "0.001", &rid, "1.0")
                .replace(" msec=1.0", ""),
            "garbage\n".to_string(),
        ] {
            assert_eq!(parse_join_line(&other), None, "{other}");
        }
    }

    fn fifo(user: &str, sent: f64) -> FanRecord {
        FanRecord {
            user: user.into(),
            joined_state: Some("waiting".into()),
            join_sent: Some(sent),
            ..FanRecord::default()
        }
    }

    #[test]
    fn receive_time_orders_the_joins_when_every_fan_is_in_the_log() {
        // Sent a, b, c; the generator's queueing delayed a, so the gateway got b, c, a; the
        // waiting room admitted in the order it received them.
        let records = vec![fifo(A, 1.0), fifo(B, 2.0), fifo(C, 3.0)];
        let admitted: Vec<String> = [B, C, A].iter().map(|s| s.to_string()).collect();
        let received: HashMap<String, f64> = [(A, 30.0), (B, 10.0), (C, 20.0)]
            .into_iter()
            .map(|(u, t)| (u.to_string(), t))
            .collect();
        let f = compute(&records, &admitted, &Ok(received.clone()));
        assert_eq!(f.join_source, JOIN_SOURCE_GATEWAY);
        assert_eq!((f.join_matched, f.fifo_candidates), (3, 3));
        assert_eq!(f.kendall_tau, Some(1.0));
        assert!(f.kendall_tau_by_send_time.expect("tau") < 1.0);

        // One fan missing from the log: send time for all, and the report says so.
        let mut partial = received;
        partial.remove(C);
        let f = compute(&records, &admitted, &Ok(partial));
        assert_eq!(f.join_source, JOIN_SOURCE_SENT);
        assert_eq!(f.join_matched, 2);
        assert!(f.note.contains("lacks 1 of the 3 fans"), "{}", f.note);
        assert!(f.kendall_tau.expect("tau") < 1.0);

        // No log at all.
        let f = compute(&records, &admitted, &Err("cannot open x: gone".into()));
        assert_eq!(f.join_source, JOIN_SOURCE_SENT);
        assert_eq!(f.join_matched, 0);
        assert!(f.note.contains("cannot open x"), "{}", f.note);
    }

    #[test]
    fn only_this_runs_lines_are_read_and_the_earliest_join_wins() {
        let dir = std::env::temp_dir().join(format!("fairness-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("nginx-access.log");
        // A join of fan A by an earlier run, before the mark.
        std::fs::write(&path, join(A, "100.000", "0.000")).expect("write");
        let mark = AccessLogMark::take(&path);
        let mut this_run = join(A, "205.500", "0.500");
        this_run += &line("GET", "/api/queue/0f1e/status", 200, "0.001", "x", "206.0");
        this_run += &join(B, "203.000", "0.000");
        this_run += &join(A, "210.000", "0.000");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, this_run.as_bytes()))
            .expect("append");
        let joins = read_joins(Some(&mark)).expect("readable");
        assert_eq!(joins.len(), 2);
        assert_eq!(joins[A], 205.0);
        assert_eq!(joins[B], 203.0);

        // Rotated (a new file at the path, longer than the mark): read from its start.
        std::fs::remove_file(&path).expect("rotate");
        std::fs::write(&path, join(C, "300.000", "0.000").repeat(9)).expect("write");
        let joins = read_joins(Some(&mark)).expect("readable");
        assert_eq!(joins.keys().collect::<Vec<_>>(), [C]);
        // Truncated in place (copytruncate), now shorter: from the start too.
        let mark = AccessLogMark::take(&path);
        std::fs::write(&path, join(B, "400.000", "0.000")).expect("write");
        let joins = read_joins(Some(&mark)).expect("readable");
        assert_eq!(joins.keys().collect::<Vec<_>>(), [B]);

        std::fs::remove_dir_all(&dir).expect("clean up");
        let err = read_joins(Some(&mark)).expect_err("gone");
        assert!(err.starts_with("cannot open"), "{err}");
        assert!(read_joins(None).is_err());
    }
}
