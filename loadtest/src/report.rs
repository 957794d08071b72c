//! `report.json` and `report.md`: throughput of each stage, latency per request kind, errors
//! by kind, the invariant checks, fairness, and each stage as a ratio of the machine's limit
//! measured in the same run.

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use serde::Serialize;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    checker::{self, Verdict},
    costs, cpu,
    fairness::Fairness,
    flash::{DbTimes, SaleArgs, Settle},
    limits::{self, Limits},
    scenario::FanRecord,
    setup::Event,
};

pub struct Inputs<'a> {
    pub scenario: &'a str,
    pub run_id: &'a str,
    pub args: &'a SaleArgs,
    pub started: OffsetDateTime,
    pub base: &'a str,
    pub event: &'a Event,
    pub attack_started: OffsetDateTime,
    pub attack_secs: f64,
    pub records: &'a [FanRecord],
    pub metrics: &'a goose::metrics::GooseMetrics,
    pub errors: BTreeMap<String, u64>,
    pub settle: Settle,
    pub db_times: DbTimes,
    pub limits: Limits,
    pub verdict: Verdict,
    pub fairness: Option<Fairness>,
    pub loadavg_start: String,
    pub slot_waits: BTreeMap<&'static str, Vec<f32>>,
    pub cpu: Vec<cpu::Share>,
    pub costs: costs::Costs,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub request: String,
    pub count: usize,
    pub failed: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub status_codes: BTreeMap<u16, usize>,
}

/// How long requests of one kind waited for one of the generator's slots before being sent.
#[derive(Debug, Clone, Serialize)]
pub struct SlotWait {
    pub request: String,
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    pub stage: String,
    pub count: u64,
    pub per_s: Option<f64>,
    pub limit: Option<String>,
    pub limit_per_s: Option<f64>,
    pub ratio: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub run_id: String,
    pub command: Option<String>,
    pub started: String,
    pub gateway: String,
    pub event_id: String,
    pub capacity: u64,
    pub parameters: SaleArgs,
    pub machine: Machine,
    pub attack_secs: f64,
    pub stages: Vec<Stage>,
    /// Seconds from the sale's opening to the last seat's ticket (None: not sold out).
    pub opening_to_sold_out_secs: Option<f64>,
    pub sold_out: bool,
    pub tickets: i64,
    pub confirmed_bookings: i64,
    pub rejected_bookings: i64,
    /// Milliseconds from 202 to the fan seeing `confirmed`, however it learnt it: p50/p95/p99.
    pub registration_to_confirmed_ms: Option<(f64, f64, f64)>,
    /// Milliseconds from 202 to the `booking.confirmed` push on the fan's socket: p50/p95/p99.
    pub registration_to_push_ms: Option<(f64, f64, f64)>,
    /// Queued bookings whose outcome (confirmed or rejected) the fan learnt by push, and by
    /// polling `GET /api/bookings/{id}` instead.
    pub learnt_by_push: u64,
    pub learnt_by_poll: u64,
    /// Why fans went without the push, by reason.
    pub push_fallbacks: BTreeMap<String, u64>,
    /// `GET /api/bookings/{id}` requests sent (goose's `booking`): the polling fallback's cost.
    pub booking_reads: usize,
    pub latency: Vec<Latency>,
    /// The generator's own lateness: time in its slot queue, which goose's latencies leave out.
    pub slot_waits: Vec<SlotWait>,
    /// CPU used by each process name over the attack (the generator is `loadtest`).
    pub cpu: Vec<cpu::Share>,
    /// What a ticket cost per process, store and broker, the attack and settling included.
    pub costs: costs::Costs,
    pub outcomes: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, u64>,
    pub settle: Settle,
    pub invariants: Verdict,
    pub oversold: u64,
    pub fairness: Option<Fairness>,
    pub limits: Limits,
    pub notes: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.invariants.ok
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    /// /proc/loadavg when the run started and when it ended (other work on the machine shows
    /// here).
    pub loadavg_start: String,
    pub loadavg_end: String,
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn span(times: impl Iterator<Item = f64>) -> (u64, Option<f64>) {
    let mut count = 0;
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for t in times {
        count += 1;
        lo = lo.min(t);
        hi = hi.max(t);
    }
    let rate = (count > 1 && hi > lo).then(|| count as f64 / (hi - lo));
    (count, rate)
}

fn secs(a: Option<OffsetDateTime>, b: Option<OffsetDateTime>) -> Option<f64> {
    Some((b? - a?).as_seconds_f64())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn build(i: Inputs<'_>) -> Report {
    let r = i.records;
    let mut notes = Vec::new();
    let (joins, joins_s) = span(r.iter().filter_map(|f| f.join_sent));
    let (holds, holds_s) = span(r.iter().filter_map(|f| f.held));
    let (regs, regs_s) = span(r.iter().filter_map(|f| f.registered));
    let status_reads: usize = i
        .metrics
        .requests
        .values()
        .filter(|a| a.path == "status")
        .map(|a| a.success_count + a.fail_count)
        .sum();
    let status_s = (i.attack_secs > 0.0).then(|| status_reads as f64 / i.attack_secs);
    let d = &i.db_times;
    let persisted_s = secs(d.first_ticket, d.last_ticket)
        .filter(|s| *s > 0.0)
        .map(|s| d.tickets as f64 / s);
    let confirmed_tickets = r
        .iter()
        .filter(|f| f.booking_status.as_deref() == Some("confirmed"))
        .map(|f| f.seats)
        .sum::<u64>();
    let end_to_end_s = secs(
        d.sale_opens_at.max(Some(i.attack_started)),
        d.last_confirmed,
    )
    .filter(|s| *s > 0.0)
    .map(|s| d.tickets as f64 / s);
    let sold_out = d.tickets >= d.capacity;
    let opening_to_sold_out_secs = if sold_out {
        secs(d.sale_opens_at.max(Some(i.attack_started)), d.last_ticket)
    } else {
        None
    };

    let l = &i.limits;
    let script = l.redis(limits::SCRIPT);
    let stage = |name: &str, count: u64, per_s: Option<f64>, limit: Option<(&str, Option<f64>)>| {
        let (limit_name, limit_per_s) = match limit {
            Some((n, v)) => (Some(n.to_string()), v),
            None => (None, None),
        };
        Stage {
            stage: name.to_string(),
            count,
            per_s,
            ratio: per_s.zip(limit_per_s).map(|(a, b)| a / b),
            limit: limit_name,
            limit_per_s,
        }
    };
    let script_limit = Some((limits::SCRIPT, script));
    let pg_limit = Some(("Postgres single-row inserts", l.postgres_inserts_per_s));
    let stages = vec![
        stage("joins", joins, joins_s, script_limit),
        stage("status reads", status_reads as u64, status_s, script_limit),
        stage("holds", holds, holds_s, script_limit),
        stage("registrations", regs, regs_s, script_limit),
        stage(
            "tickets persisted",
            d.tickets.max(0) as u64,
            persisted_s,
            pg_limit,
        ),
        stage(
            "tickets confirmed end to end (opening to last confirmation)",
            d.tickets.max(0) as u64,
            end_to_end_s,
            pg_limit,
        ),
    ];
    if confirmed_tickets != d.tickets.max(0) as u64 {
        notes.push(format!(
            "fans saw {confirmed_tickets} tickets confirmed; Postgres holds {} for the event",
            d.tickets
        ));
    }

    let confirmed = || {
        r.iter()
            .filter(|f| f.booking_status.as_deref() == Some("confirmed"))
    };
    let registration_to_confirmed_ms = percentiles(confirmed().filter_map(confirm_ms));
    let registration_to_push_ms = percentiles(
        confirmed()
            .filter(|f| f.learnt_by == Some("push"))
            .filter_map(confirm_ms),
    );
    let settled = || {
        r.iter()
            .filter(|f| matches!(f.booking_status.as_deref(), Some("confirmed" | "rejected")))
    };
    let learnt = |how| settled().filter(|f| f.learnt_by == Some(how)).count() as u64;
    let push_fallbacks = checker::tally(r.iter().filter_map(|f| f.push_fallback.as_deref()));
    let booking_reads = i
        .metrics
        .requests
        .values()
        .filter(|a| a.path == "booking")
        .map(|a| a.success_count + a.fail_count)
        .sum();

    let latency = latency(i.metrics);
    let slot_waits = i
        .slot_waits
        .into_iter()
        .map(|(request, waits)| {
            let mut sorted: Vec<f64> = waits.into_iter().map(f64::from).collect();
            sorted.sort_by(f64::total_cmp);
            SlotWait {
                request: request.to_string(),
                count: sorted.len(),
                p50_ms: percentile(&sorted, 0.5),
                p99_ms: percentile(&sorted, 0.99),
                max_ms: sorted.last().copied().unwrap_or(0.0),
            }
        })
        .collect();

    let mut errors = i.errors;
    errors.retain(|_, n| *n > 0);

    Report {
        scenario: i.scenario.to_string(),
        run_id: i.run_id.to_string(),
        command: i.args.command.clone(),
        started: i.started.format(&Rfc3339).unwrap_or_default(),
        gateway: i.base.to_string(),
        event_id: i.event.id.clone(),
        capacity: i.event.capacity,
        parameters: i.args.clone(),
        machine: Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            loadavg_start: i.loadavg_start,
            loadavg_end: loadavg(),
        },
        attack_secs: i.attack_secs,
        stages,
        opening_to_sold_out_secs,
        sold_out,
        tickets: d.tickets,
        confirmed_bookings: d.confirmed,
        rejected_bookings: d.rejected,
        registration_to_confirmed_ms,
        registration_to_push_ms,
        learnt_by_push: learnt("push"),
        learnt_by_poll: learnt("poll"),
        push_fallbacks,
        booking_reads,
        latency,
        slot_waits,
        cpu: i.cpu,
        costs: i.costs,
        outcomes: checker::tally(r.iter().map(|f| f.outcome.as_str())),
        errors,
        settle: i.settle,
        oversold: i.verdict.oversold,
        invariants: i.verdict,
        fairness: i.fairness,
        limits: i.limits,
        notes,
    }
}

/// Milliseconds from a fan's 202 to its outcome.
fn confirm_ms(f: &FanRecord) -> Option<f64> {
    Some((f.settled? - f.registered?) * 1000.0)
}

/// p50/p95/p99 of `values`, if any.
fn percentiles(values: impl Iterator<Item = f64>) -> Option<(f64, f64, f64)> {
    let mut sorted: Vec<f64> = values.collect();
    sorted.sort_by(f64::total_cmp);
    (!sorted.is_empty()).then(|| {
        (
            percentile(&sorted, 0.5),
            percentile(&sorted, 0.95),
            percentile(&sorted, 0.99),
        )
    })
}

/// Latency per request kind from goose's metrics.
pub fn latency(metrics: &goose::metrics::GooseMetrics) -> Vec<Latency> {
    let mut latency: Vec<Latency> = metrics
        .requests
        .values()
        .map(|a| Latency {
            request: format!("{} {}", a.method, a.path),
            count: a.success_count + a.fail_count,
            failed: a.fail_count,
            p50_ms: a.raw_data.percentile_us(0.50) as f64 / 1000.0,
            p95_ms: a.raw_data.percentile_us(0.95) as f64 / 1000.0,
            p99_ms: a.raw_data.percentile_us(0.99) as f64 / 1000.0,
            max_ms: a.raw_data.maximum_time_us as f64 / 1000.0,
            status_codes: a.status_code_counts.iter().map(|(k, v)| (*k, *v)).collect(),
        })
        .collect();
    latency.sort_by(|a, b| a.request.cmp(&b.request));
    latency
}

pub fn latency_table(m: &mut String, latency: &[Latency]) {
    let _ = writeln!(
        m,
        "| request | count | failed | p50 ms | p95 ms | p99 ms | max ms | statuses |"
    );
    let _ = writeln!(m, "|---|---:|---:|---:|---:|---:|---:|---|");
    for l in latency {
        let codes: Vec<String> = l
            .status_codes
            .iter()
            .map(|(k, v)| format!("{k}×{v}"))
            .collect();
        let _ = writeln!(
            m,
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
            l.request,
            l.count,
            l.failed,
            l.p50_ms,
            l.p95_ms,
            l.p99_ms,
            l.max_ms,
            codes.join(" ")
        );
    }
}

pub fn write(dir: &Path, report: &Report) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(report)?,
    )?;
    std::fs::write(dir.join("report.md"), markdown(report))?;
    Ok(())
}

fn num(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
        None => "–".into(),
    }
}

pub fn markdown(r: &Report) -> String {
    let mut m = String::new();
    let _ = writeln!(
        m,
        "# Load test `{}` {} — {}\n",
        r.scenario,
        r.run_id,
        if r.ok() { "PASSED" } else { "FAILED" }
    );
    if let Some(command) = &r.command {
        let _ = writeln!(m, "Command: `{command}`\n");
    }
    let p = &r.parameters;
    let _ = writeln!(
        m,
        "Started {} against {}; event {} with {} seats; {} fans arriving over {} s, sale opening after {} s; admission {}/min, at most {} active; {} ticket(s) per fan; {} registration worker(s); {} waiting-room instance(s); {} CPUs, load average {} at the start, {} at the end.\n",
        r.started,
        r.gateway,
        r.event_id,
        r.capacity,
        p.fans,
        p.arrive_over,
        p.open_after,
        p.admit_per_minute,
        p.max_active,
        p.tickets_per_fan,
        p.workers,
        p.waiting_rooms,
        r.machine.cpus,
        r.machine.loadavg_start,
        r.machine.loadavg_end
    );
    let _ = writeln!(m, "## Throughput\n");
    let _ = writeln!(m, "| stage | count | per second | machine limit | ratio |");
    let _ = writeln!(m, "|---|---:|---:|---|---:|");
    for s in &r.stages {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} {} | {} |",
            s.stage,
            s.count,
            num(s.per_s),
            s.limit.as_deref().unwrap_or("–"),
            num(s.limit_per_s),
            s.ratio
                .map_or("–".to_string(), |r| format!("{:.1} %", r * 100.0))
        );
    }
    let _ = writeln!(
        m,
        "\nSold out: {} ({} tickets of {}; {} bookings confirmed, {} rejected). Opening to sold out: {} s. Attack {:.1} s; settling: bookings {:.1} s, mails {:.1} s after it.",
        if r.sold_out { "yes" } else { "no" },
        r.tickets,
        r.capacity,
        r.confirmed_bookings,
        r.rejected_bookings,
        num(r.opening_to_sold_out_secs),
        r.attack_secs,
        r.settle.bookings_secs,
        r.settle.mails_secs,
    );
    if r.learnt_by_push + r.learnt_by_poll > 0 {
        let _ = writeln!(
            m,
            "\nConfirmations (or rejections) by push: {}, by polling fallback: {} (fans' sockets to the notifier, opened before registering).",
            r.learnt_by_push, r.learnt_by_poll
        );
        if let Some((p50, p95, p99)) = r.registration_to_push_ms {
            let _ = writeln!(
                m,
                "202 to the push on the fan's socket: p50 {p50:.0} ms, p95 {p95:.0} ms, p99 {p99:.0} ms (from reading the 202: a push already waiting on the socket counts 0)."
            );
        }
        if !r.push_fallbacks.is_empty() {
            let reasons: Vec<String> = r
                .push_fallbacks
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = writeln!(m, "Fans without the push: {}.", reasons.join(", "));
        }
    }
    if let Some((p50, p95, p99)) = r.registration_to_confirmed_ms {
        let _ = writeln!(
            m,
            "202 to the fan seeing `confirmed`, push or poll: p50 {p50:.0} ms, p95 {p95:.0} ms, p99 {p99:.0} ms."
        );
    }
    let _ = writeln!(
        m,
        "`GET /api/bookings/{{id}}` requests (goose's `booking`): {}.",
        r.booking_reads
    );
    let _ = writeln!(m, "\n## Latency per request (goose)\n");
    latency_table(&mut m, &r.latency);
    if !r.slot_waits.is_empty() {
        let _ = writeln!(
            m,
            "\nBefore those, each request waited for a generator slot (not in goose's figures):\n"
        );
        let _ = writeln!(
            m,
            "| request | count | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|"
        );
        for w in &r.slot_waits {
            let _ = writeln!(
                m,
                "| {} | {} | {:.1} | {:.1} | {:.1} |",
                w.request, w.count, w.p50_ms, w.p99_ms, w.max_ms
            );
        }
    }
    if !r.cpu.is_empty() {
        let _ = writeln!(m, "\n## CPU during the attack ({} cores)\n", r.machine.cpus);
        let _ = writeln!(m, "| process | CPU seconds | cores busy |\n|---|---:|---:|");
        for c in &r.cpu {
            let _ = writeln!(
                m,
                "| {} | {:.1} | {:.2} |",
                c.process, c.cpu_seconds, c.cores
            );
        }
    }
    costs::markdown(&mut m, &r.costs, r.machine.cpus);
    let _ = writeln!(m, "\n## Outcomes and errors\n");
    let outcomes: Vec<String> = r.outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(m, "Fans: {}.\n", outcomes.join(", "));
    if r.errors.is_empty() {
        let _ = writeln!(m, "Errors: none.");
    } else {
        let _ = writeln!(m, "| error | count |\n|---|---:|");
        for (k, v) in &r.errors {
            let _ = writeln!(m, "| {k} | {v} |");
        }
    }
    let _ = writeln!(
        m,
        "\n## Invariants — {} (oversold: {})\n",
        if r.ok() { "all hold" } else { "VIOLATED" },
        r.oversold
    );
    let _ = writeln!(
        m,
        "| check | result | violations | evidence |\n|---|---|---:|---|"
    );
    for c in &r.invariants.checks {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} |",
            c.name,
            if c.ok { "ok" } else { "**FAIL**" },
            c.violations,
            c.detail.replace('|', "/")
        );
    }
    if let Some(f) = &r.fairness {
        let _ = writeln!(m, "\n## Fairness (FIFO phase)\n");
        let _ = writeln!(
            m,
            "Kendall tau-b of admission order vs join order: **{}** over {} fans who joined after the opening (discordant pairs {}); join order from the **{}** ({} of {} fans found in the gateway's access log; by the generator's send time instead: {}); admission order from the {}; {} fans joined the pre-queue (shuffled at opening by design). {}.",
            f.kendall_tau.map_or("–".into(), |t| format!("{t:.4}")),
            f.fifo_fans,
            f.discordant_share
                .map_or("–".into(), |d| format!("{:.3} %", d * 100.0)),
            f.join_source,
            f.join_matched,
            f.fifo_candidates,
            f.kendall_tau_by_send_time
                .map_or("–".into(), |t| format!("{t:.4}")),
            f.admission_source,
            f.pre_queue_fans,
            f.note
        );
    }
    let _ = writeln!(m, "\n## Machine limits (same run)\n");
    for (name, rps) in &r.limits.redis {
        let _ = writeln!(m, "- redis-benchmark -c 50 `{name}`: {rps:.0}/s");
    }
    if let Some(pg) = r.limits.postgres_inserts_per_s {
        let _ = writeln!(
            m,
            "- Postgres single-row autocommit inserts, {} connections: {pg:.0}/s",
            r.limits.pg_connections
        );
    }
    for note in r.limits.notes.iter().chain(&r.notes) {
        let _ = writeln!(m, "- note: {note}");
    }
    let _ = writeln!(
        m,
        "\nThe load generator shares one connection pool among the fans and keeps at most {} waiting-room requests and {} purchase requests in flight, and {} push streams open (fans asked to poll every second or two follow the waiting room's stream while one is free; `GET events` above is the time to the stream's head); goose times each request from when it is sent, so the slot waits are listed apart. Admitted fans of a queued sale open a WebSocket to the notifier (at most {} at once, `--max-active`) and learn their outcome by its push, polling `GET /api/bookings/{{id}}` every 500 ms only without one or after {} s without a push; the sockets go around goose and are not in its tables.",
        r.parameters.max_in_flight,
        r.parameters.max_in_flight_purchase,
        r.parameters.max_push,
        r.parameters.max_active,
        crate::scenario::PUSH_WAIT.as_secs()
    );
    let _ = writeln!(
        m,
        "\nFans are not signed up through the API: their user rows are inserted in bulk and their access tokens signed with the stack's access key (argon2 for every fan would dominate the run)."
    );
    m
}
