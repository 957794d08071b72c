//! The invariant checker, run after every load run.
//!
//! `gather` reads what the run left behind — Postgres (tickets, bookings, mail deliveries,
//! dead letters), Redis (the event's holds), RabbitMQ (the dead-letter queue) and the SMTP
//! sink's mail directory — into a [`Snapshot`]; `evaluate` turns a snapshot into checks, each
//! passed or failed with its evidence. Kept apart so the tests can feed `evaluate` a broken
//! state and see every violation named.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    io::BufRead,
    path::{Path, PathBuf},
};

use anyhow::Context;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// What the checker looks at.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// Seats with more than one ticket: (seat id, tickets).
    pub seats_sold_twice: Vec<(String, i64)>,
    /// Per class: (name, capacity, tickets sold).
    pub classes: Vec<(String, i64, i64)>,
    /// Booking ids the run got a 202 (or 201) for.
    pub accepted: Vec<String>,
    /// Status in Postgres of each booking of the event (id -> status).
    pub bookings: HashMap<String, String>,
    /// Mails seen in the SMTP sink per booking id (None: the sink's directory is unknown).
    pub mails: Option<HashMap<String, u32>>,
    /// Bookings with an `email_deliveries` row.
    pub delivery_rows: HashSet<String>,
    /// Holds still in Redis although they expired more than the sweep's slack ago.
    pub holds_lingering: u64,
    /// Live holds that expire later than the event's hold time allows.
    pub holds_too_long: u64,
    /// Confirmed bookings whose registration came after their hold had expired.
    pub sold_from_expired_holds: u64,
    /// Messages added to the dead-letter queue during the run (None: the queue is missing).
    pub dead_lettered: Option<i64>,
    /// Rows of the `dead_letters` table for the event: (booking id, explained), or None when
    /// the table does not exist.
    pub dead_letter_rows: Option<Vec<(String, bool)>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub violations: u64,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub checks: Vec<Check>,
    /// Tickets beyond what could be sold: duplicates of a seat plus sales over a class's capacity.
    pub oversold: u64,
    pub ok: bool,
}

fn check(name: &'static str, violations: u64, detail: String) -> Check {
    Check {
        name,
        ok: violations == 0,
        violations,
        detail,
    }
}

fn sample(items: &[String]) -> String {
    let shown: Vec<&str> = items.iter().take(5).map(String::as_str).collect();
    if items.len() > shown.len() {
        format!("{} …", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

pub fn evaluate(s: &Snapshot) -> Verdict {
    let mut checks = Vec::new();

    let duplicates: i64 = s.seats_sold_twice.iter().map(|(_, n)| n - 1).sum();
    let seats: Vec<String> = s
        .seats_sold_twice
        .iter()
        .map(|(seat, n)| format!("{seat} ×{n}"))
        .collect();
    checks.push(check(
        "no_seat_sold_twice",
        duplicates.max(0) as u64,
        if seats.is_empty() {
            "every sold seat has exactly one ticket".into()
        } else {
            format!("seats with several tickets: {}", sample(&seats))
        },
    ));

    let over: Vec<String> = s
        .classes
        .iter()
        .filter(|(_, capacity, sold)| sold > capacity)
        .map(|(name, capacity, sold)| format!("{name}: {sold} sold of {capacity}"))
        .collect();
    let over_count: i64 = s
        .classes
        .iter()
        .map(|(_, capacity, sold)| (sold - capacity).max(0))
        .sum();
    let per_class: Vec<String> = s
        .classes
        .iter()
        .map(|(name, capacity, sold)| format!("{name} {sold}/{capacity}"))
        .collect();
    checks.push(check(
        "sold_within_capacity",
        over_count as u64,
        if over.is_empty() {
            format!("sold/capacity per class: {}", per_class.join(", "))
        } else {
            format!("over capacity: {}", over.join("; "))
        },
    ));

    let mut lost = Vec::new();
    let mut stuck = Vec::new();
    for id in &s.accepted {
        match s.bookings.get(id).map(String::as_str) {
            Some("confirmed" | "rejected") => {}
            Some(other) => stuck.push(format!("{id} ({other})")),
            None => lost.push(id.clone()),
        }
    }
    checks.push(check(
        "every_accepted_booking_settled",
        (lost.len() + stuck.len()) as u64,
        if lost.is_empty() && stuck.is_empty() {
            format!(
                "{} accepted bookings, all confirmed or rejected",
                s.accepted.len()
            )
        } else {
            format!(
                "{} missing from Postgres ({}), {} not settled ({})",
                lost.len(),
                sample(&lost),
                stuck.len(),
                sample(&stuck)
            )
        },
    ));

    let confirmed: Vec<&String> = s
        .bookings
        .iter()
        .filter(|(_, status)| status.as_str() == "confirmed")
        .map(|(id, _)| id)
        .collect();
    let (mut missing, mut doubled, mut unrecorded) = (Vec::new(), Vec::new(), Vec::new());
    for id in &confirmed {
        if let Some(mails) = &s.mails {
            match mails.get(*id).copied().unwrap_or(0) {
                0 => missing.push((*id).clone()),
                1 => {}
                n => doubled.push(format!("{id} ×{n}")),
            }
        }
        if !s.delivery_rows.contains(*id) {
            unrecorded.push((*id).clone());
        }
    }
    let source = if s.mails.is_some() {
        "the SMTP sink"
    } else {
        "email_deliveries only (no mail directory)"
    };
    checks.push(check(
        "one_mail_per_confirmed_booking",
        (missing.len() + doubled.len() + unrecorded.len()) as u64,
        format!(
            "{} confirmed; checked against {source}: {} without mail ({}), {} mailed more than once ({}), {} without a delivery record ({})",
            confirmed.len(),
            missing.len(),
            sample(&missing),
            doubled.len(),
            sample(&doubled),
            unrecorded.len(),
            sample(&unrecorded)
        ),
    ));

    checks.push(check(
        "no_hold_outlived_its_ttl",
        s.holds_lingering + s.holds_too_long + s.sold_from_expired_holds,
        format!(
            "{} expired holds still in Redis after the sweep's slack, {} live holds longer than the event's hold time, {} bookings registered after their hold expired",
            s.holds_lingering, s.holds_too_long, s.sold_from_expired_holds
        ),
    ));

    let rows = s.dead_letter_rows.clone().unwrap_or_default();
    let explained = rows.iter().filter(|(_, ok)| *ok).count() as i64;
    let unexplained_rows: Vec<String> = rows
        .iter()
        .filter(|(_, ok)| !*ok)
        .map(|(id, _)| id.clone())
        .collect();
    let queued = s.dead_lettered.unwrap_or(0).max(0);
    let unexplained_queue = (queued - explained).max(0);
    checks.push(check(
        "no_unexplained_dead_letters",
        unexplained_rows.len() as u64 + unexplained_queue as u64,
        format!(
            "{} new in the dead-letter queue{}, {} dead_letters rows for the event{} ({} explained by a rejected booking; unexplained: {})",
            s.dead_lettered
                .map_or("?".to_string(), |n| n.to_string()),
            if s.dead_lettered.is_none() {
                " (queue not found)"
            } else {
                ""
            },
            rows.len(),
            if s.dead_letter_rows.is_none() {
                " (no dead_letters table)"
            } else {
                ""
            },
            explained,
            sample(&unexplained_rows)
        ),
    ));

    let oversold = duplicates.max(0) as u64 + over_count as u64;
    let ok = checks.iter().all(|c| c.ok);
    Verdict {
        checks,
        oversold,
        ok,
    }
}

/// Where to look.
pub struct Sources<'a> {
    pub db: &'a PgPool,
    pub redis: &'a shared::cache::Redis,
    pub redis_keys: &'a shared::cache::RedisKeys,
    pub amqp: &'a shared::config::AmqpConfig,
    pub mail_dir: Option<PathBuf>,
    /// When the run started: older files in the mail directory are earlier runs' mail.
    pub mail_since: std::time::SystemTime,
}

/// Gathers the snapshot of `event` after a run. `accepted`: the run's 202s (or 201s) with the
/// registration's time and the hold's expiry; `dead_letter_baseline`: the dead-letter queue's
/// depth before the run.
pub async fn gather(
    src: &Sources<'_>,
    event: Uuid,
    hold_seconds: u64,
    accepted: &[(
        String,
        Option<time::OffsetDateTime>,
        Option<time::OffsetDateTime>,
    )],
    dead_letter_baseline: Option<i64>,
) -> anyhow::Result<Snapshot> {
    let db = src.db;
    let seats_sold_twice: Vec<(String, i64)> = sqlx::query_as(
        "SELECT seat_id::text, count(*) FROM tickets WHERE event_id = $1
         GROUP BY seat_id HAVING count(*) > 1",
    )
    .bind(event)
    .fetch_all(db)
    .await
    .context("tickets per seat")?;
    let classes: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT c.name,
                (SELECT count(*) FROM seats s WHERE s.class_id = c.id),
                (SELECT count(*) FROM tickets t WHERE t.class_id = c.id)
         FROM ticket_classes c WHERE c.event_id = $1 ORDER BY c.position",
    )
    .bind(event)
    .fetch_all(db)
    .await
    .context("sold per class")?;
    let bookings: HashMap<String, String> = sqlx::query_as::<_, (String, String)>(
        "SELECT id::text, status FROM bookings WHERE event_id = $1",
    )
    .bind(event)
    .fetch_all(db)
    .await
    .context("bookings")?
    .into_iter()
    .collect();
    let delivery_rows: HashSet<String> = sqlx::query_scalar(
        "SELECT d.booking_id::text FROM email_deliveries d
         JOIN bookings b ON b.id = d.booking_id WHERE b.event_id = $1",
    )
    .bind(event)
    .fetch_all(db)
    .await
    .context("email deliveries")?
    .into_iter()
    .collect();

    let ids: HashSet<&String> = bookings.keys().collect();
    let mails = match &src.mail_dir {
        Some(dir) => Some(count_mails(dir, &ids, src.mail_since)?),
        None => None,
    };

    // Holds: the event's `holds` ZSET scores each hold by its expiry (ms). The sweeper runs every
    // second; 5 s of slack.
    let holds_key = format!(
        "{}holds",
        src.redis_keys.inventory(shared::ids::EventId::from(event))
    );
    let mut conn = src.redis.conn();
    let (now_s, now_us): (i64, i64) = redis::cmd("TIME")
        .query_async::<(String, String)>(&mut conn)
        .await
        .map(|(s, us)| (s.parse().unwrap_or(0), us.parse().unwrap_or(0)))?;
    let now_ms = now_s * 1000 + now_us / 1000;
    let holds_lingering: u64 = redis::cmd("ZCOUNT")
        .arg(&holds_key)
        .arg("-inf")
        .arg(now_ms - 5_000)
        .query_async(&mut conn)
        .await?;
    let holds_too_long: u64 = redis::cmd("ZCOUNT")
        .arg(&holds_key)
        .arg(format!(
            "({}",
            now_ms + (hold_seconds as i64) * 1000 + 5_000
        ))
        .arg("+inf")
        .query_async(&mut conn)
        .await?;
    let sold_from_expired_holds = accepted
        .iter()
        .filter(|(id, registered, expires)| {
            bookings.get(id).map(String::as_str) == Some("confirmed")
                && matches!((registered, expires), (Some(r), Some(e)) if *r > *e + time::Duration::seconds(1))
        })
        .count() as u64;

    let dead_lettered = match (
        dead_letter_queue_depth(src.amqp).await,
        dead_letter_baseline,
    ) {
        (Some(now), Some(before)) => Some(now - before),
        (Some(now), None) => Some(now),
        (None, _) => None,
    };
    let dead_letter_rows = dead_letter_rows(db, event).await;

    Ok(Snapshot {
        seats_sold_twice,
        classes,
        accepted: accepted.iter().map(|(id, _, _)| id.clone()).collect(),
        bookings,
        mails,
        delivery_rows,
        holds_lingering,
        holds_too_long,
        sold_from_expired_holds,
        dead_lettered,
        dead_letter_rows,
    })
}

/// Message count of the dead-letter queue (a passive declare), or None when it does not exist.
pub async fn dead_letter_queue_depth(amqp: &shared::config::AmqpConfig) -> Option<i64> {
    let names = shared::messaging::Names::new(amqp.prefix.clone());
    let connection = shared::messaging::connect(amqp, "loadtest-checker")
        .await
        .ok()?;
    let channel = connection.create_channel().await.ok()?;
    let queue = names.dead_letter_queue();
    let declared = channel
        .queue_declare(
            queue.as_str().into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .ok()?;
    let _ = connection.close(200, "done".into()).await;
    Some(i64::from(declared.message_count()))
}

/// Rows of `dead_letters` (migration 0005) for the event, if the table exists; a row is
/// explained when its booking ended `rejected` (the fan was told, no seat was sold).
async fn dead_letter_rows(db: &PgPool, event: Uuid) -> Option<Vec<(String, bool)>> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('dead_letters') IS NOT NULL")
        .fetch_one(db)
        .await
        .ok()?;
    if !exists {
        return None;
    }
    let rows: Result<Vec<(Option<String>, Option<String>)>, _> = sqlx::query_as(
        "SELECT d.booking_id::text, b.status FROM dead_letters d
         LEFT JOIN bookings b ON b.id = d.booking_id
         WHERE d.event_id = $1",
    )
    .bind(event)
    .fetch_all(db)
    .await;
    match rows {
        Ok(rows) => Some(
            rows.into_iter()
                .map(|(id, status)| {
                    (
                        id.unwrap_or_else(|| "?".into()),
                        status.as_deref() == Some("rejected"),
                    )
                })
                .collect(),
        ),
        // A table of another shape: every row unexplained would be a guess; report it as one.
        Err(err) => Some(vec![(format!("unreadable dead_letters: {err}"), false)]),
    }
}

/// Counts the mails in the sink's directory per booking id, from their `Message-ID`
/// (`<booking-ID@tickets.notifier>`, one per booking), for the bookings in `ids` only. Files
/// last written before `since` are not opened: a dev machine's sink keeps every earlier run's
/// mail (a hundred thousand files after a full run).
pub fn count_mails(
    dir: &Path,
    ids: &HashSet<&String>,
    since: std::time::SystemTime,
) -> anyhow::Result<HashMap<String, u32>> {
    let mut counts = HashMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(counts),
        Err(err) => return Err(err).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("eml") || written_before(&entry, since)
        {
            continue;
        }
        if let Some(id) = mail_booking(&path)
            && ids.contains(&id)
        {
            *counts.entry(id).or_insert(0) += 1;
        }
    }
    Ok(counts)
}

/// Whether a directory entry was last written before `since` (unknown: no).
pub fn written_before(entry: &std::fs::DirEntry, since: std::time::SystemTime) -> bool {
    entry
        .metadata()
        .and_then(|m| m.modified())
        .is_ok_and(|modified| modified < since)
}

/// The booking id in a mail's `Message-ID` header, read from the headers only.
fn mail_booking(path: &Path) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    for line in std::io::BufReader::new(file).lines() {
        let line = line.ok()?;
        if line.is_empty() {
            return None;
        }
        if line.len() > 11 && line[..11].eq_ignore_ascii_case("message-id:") {
            let value = line[11..].trim();
            let id = value.strip_prefix("<booking-")?.split('@').next()?;
            return Some(id.to_string());
        }
    }
    None
}

/// Counts per kind, for the report.
pub fn tally<'a>(items: impl Iterator<Item = &'a str>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for item in items {
        *out.entry(item.to_string()).or_default() += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Snapshot {
        let mut bookings = HashMap::new();
        bookings.insert("b1".to_string(), "confirmed".to_string());
        bookings.insert("b2".to_string(), "rejected".to_string());
        let mut mails = HashMap::new();
        mails.insert("b1".to_string(), 1);
        Snapshot {
            seats_sold_twice: vec![],
            classes: vec![("VIP".into(), 10, 10), ("Normal".into(), 90, 3)],
            accepted: vec!["b1".into(), "b2".into()],
            bookings,
            mails: Some(mails),
            delivery_rows: ["b1".to_string()].into_iter().collect(),
            dead_lettered: Some(0),
            dead_letter_rows: Some(vec![]),
            ..Snapshot::default()
        }
    }

    fn failed(verdict: &Verdict) -> Vec<&'static str> {
        verdict
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name)
            .collect()
    }

    #[test]
    fn a_healthy_state_passes_every_check() {
        let verdict = evaluate(&healthy());
        assert!(verdict.ok, "{:#?}", verdict.checks);
        assert_eq!(verdict.oversold, 0);
        assert_eq!(verdict.checks.len(), 6);
    }

    #[test]
    fn a_seat_sold_twice_is_a_violation_and_counts_as_oversold() {
        let mut s = healthy();
        s.seats_sold_twice = vec![("seat-1".into(), 2)];
        let verdict = evaluate(&s);
        assert_eq!(failed(&verdict), ["no_seat_sold_twice"]);
        assert_eq!(verdict.oversold, 1);
        assert!(!verdict.ok);
    }

    #[test]
    fn a_class_over_capacity_is_a_violation() {
        let mut s = healthy();
        s.classes[0].2 = 12;
        let verdict = evaluate(&s);
        assert_eq!(failed(&verdict), ["sold_within_capacity"]);
        assert_eq!(verdict.oversold, 2);
    }

    #[test]
    fn a_booking_stuck_pending_or_lost_is_a_violation() {
        let mut s = healthy();
        s.bookings.insert("b2".into(), "pending".into());
        let verdict = evaluate(&s);
        assert_eq!(failed(&verdict), ["every_accepted_booking_settled"]);
        assert!(verdict.checks[2].detail.contains("b2 (pending)"));

        let mut s = healthy();
        s.accepted.push("b3".into());
        let verdict = evaluate(&s);
        assert_eq!(failed(&verdict), ["every_accepted_booking_settled"]);
        assert!(
            verdict.checks[2]
                .detail
                .contains("1 missing from Postgres (b3)")
        );
    }

    #[test]
    fn a_missing_or_doubled_mail_is_a_violation() {
        let mut s = healthy();
        s.mails = Some(HashMap::new());
        let verdict = evaluate(&s);
        assert_eq!(failed(&verdict), ["one_mail_per_confirmed_booking"]);
        assert_eq!(verdict.checks[3].violations, 1);

        let mut s = healthy();
        s.mails.as_mut().map(|m| m.insert("b1".into(), 2));
        assert_eq!(failed(&evaluate(&s)), ["one_mail_per_confirmed_booking"]);

        let mut s = healthy();
        s.delivery_rows.clear();
        assert_eq!(failed(&evaluate(&s)), ["one_mail_per_confirmed_booking"]);
    }

    #[test]
    fn holds_past_their_ttl_are_violations() {
        for change in [
            |s: &mut Snapshot| s.holds_lingering = 1,
            |s: &mut Snapshot| s.holds_too_long = 1,
            |s: &mut Snapshot| s.sold_from_expired_holds = 1,
        ] {
            let mut s = healthy();
            change(&mut s);
            assert_eq!(failed(&evaluate(&s)), ["no_hold_outlived_its_ttl"]);
        }
    }

    #[test]
    fn dead_letters_are_violations_unless_explained() {
        let mut s = healthy();
        s.dead_lettered = Some(1);
        assert_eq!(failed(&evaluate(&s)), ["no_unexplained_dead_letters"]);

        // Explained: the dead-lettered booking ended rejected.
        s.dead_letter_rows = Some(vec![("b2".into(), true)]);
        assert!(evaluate(&s).ok);

        s.dead_letter_rows = Some(vec![("b9".into(), false)]);
        s.dead_lettered = Some(0);
        assert_eq!(failed(&evaluate(&s)), ["no_unexplained_dead_letters"]);
    }

    #[test]
    fn mails_are_counted_by_their_message_id() {
        let dir = std::env::temp_dir().join(format!("lt-mails-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mail = |name: &str, id: &str| {
            std::fs::write(
                dir.join(name),
                format!("From: t@example.test\r\nMessage-ID: <booking-{id}@tickets.notifier>\r\n\r\nbody Message-ID: <booking-zz@x>\r\n"),
            )
            .expect("write mail");
        };
        mail("1.eml", "b1");
        mail("2.eml", "b1");
        mail("3.eml", "b2");
        mail("4.eml", "other");
        std::fs::write(dir.join("5.txt"), "Message-ID: <booking-b2@x>\r\n").expect("write");
        let (b1, b2) = ("b1".to_string(), "b2".to_string());
        let ids: HashSet<&String> = [&b1, &b2].into_iter().collect();
        let long_ago = std::time::SystemTime::UNIX_EPOCH;
        let counts = count_mails(&dir, &ids, long_ago).expect("count");
        assert_eq!(counts.get("b1"), Some(&2));
        assert_eq!(counts.get("b2"), Some(&1));
        assert_eq!(counts.len(), 2);
        // Mail older than the run is an earlier run's: not counted.
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
        assert!(count_mails(&dir, &ids, later).expect("count").is_empty());
        std::fs::remove_dir_all(&dir).ok();
    }
}
