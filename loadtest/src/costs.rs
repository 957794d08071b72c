//! What one ticket cost, stage by stage: the CPU seconds of every process, and the calls the
//! stores and the broker served, between the attack's start and the moment every booking was
//! settled and mailed, divided by the tickets sold.
//!
//! Read before and after, as deltas of the servers' own counters:
//! - CPU: `/proc` of every process (see [`cpu`]), by name;
//! - Redis: `INFO commandstats` (calls and microseconds per command; a script's inner
//!   commands count as calls too, so `evalsha` is the round trips);
//! - Postgres: `pg_stat_statements` of the stack's database (preloaded by `infra/dev`; the
//!   report says so when it is not), leaving out the load test's own statements, which start
//!   with [`OWN`];
//! - RabbitMQ: the broker's global message counters (`rabbitmq_prometheus`, enabled by
//!   `infra/dev`): received (published), routed, delivered, acknowledged, confirmed.
//!
//! Redis, the broker and the machine's CPU are the whole server's: anything else running on
//! them during the run is counted too (the report gives the load average beside it).

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::PgPool;

use crate::{
    cpu,
    herd::redis_stats::{self, CommandStats},
};

/// The marker that starts every statement the load test itself runs during the window, so
/// that [`read`] can leave them out of the stack's.
pub const OWN: &str = "/* loadtest */";

/// The processes of the purchase path: hold, registration, publish, persist, relay, mail.
/// (`registration-wo` is the worker: Linux keeps 15 characters of a process's name.)
const PURCHASE: [&str; 5] = [
    "ticketing-api",
    "registration-wo",
    "postgres",
    "beam.smp",
    "notifier",
];

/// Every counter at one moment.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    cpu: cpu::Snapshot,
    redis: Option<CommandStats>,
    postgres: Option<BTreeMap<i64, Statement>>,
    broker: Option<BTreeMap<String, f64>>,
}

#[derive(Debug, Clone, Default)]
struct Statement {
    query: String,
    calls: i64,
    total_ms: f64,
}

/// Where the broker's counters are (`--broker-metrics-url`).
pub const BROKER_METRICS: &str = "http://127.0.0.1:15692/metrics";

/// Reads every counter now. A source that cannot be read is `None` (and said in the report).
pub async fn read(redis: &shared::cache::Redis, db: &PgPool, broker_metrics_url: &str) -> Counters {
    let mut conn = redis.conn();
    let (redis, postgres, broker) = tokio::join!(
        redis_stats::commandstats(&mut conn),
        statements(db),
        broker_counters(broker_metrics_url),
    );
    Counters {
        cpu: cpu::snapshot(),
        redis: redis
            .inspect_err(|err| eprintln!("costs: no Redis commandstats: {err:#}"))
            .ok(),
        postgres: postgres
            .inspect_err(|err| eprintln!("costs: no pg_stat_statements: {err:#}"))
            .ok(),
        broker: broker
            .inspect_err(|err| eprintln!("costs: no broker counters: {err:#}"))
            .ok(),
    }
}

async fn statements(db: &PgPool) -> anyhow::Result<BTreeMap<i64, Statement>> {
    sqlx::query(concat!(
        "/* loadtest */ ",
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
    ))
    .execute(db)
    .await?;
    let rows: Vec<(Option<i64>, String, i64, f64)> = sqlx::query_as(concat!(
        "/* loadtest */ ",
        "SELECT queryid, query, calls, total_exec_time FROM pg_stat_statements
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ))
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .filter(|(_, query, _, _)| !query.trim_start().starts_with(OWN))
        .filter_map(|(id, query, calls, total_ms)| {
            Some((
                id?,
                Statement {
                    query,
                    calls,
                    total_ms,
                },
            ))
        })
        .collect())
}

async fn broker_counters(url: &str) -> anyhow::Result<BTreeMap<String, f64>> {
    let text = reqwest::get(url).await?.error_for_status()?.text().await?;
    Ok(parse_broker_counters(&text))
}

/// Sums `rabbitmq_global_messages_<what>_total{...} N` over its labels, by `<what>`.
fn parse_broker_counters(text: &str) -> BTreeMap<String, f64> {
    let mut counters = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("rabbitmq_global_messages_") else {
            continue;
        };
        let (name, value) = match rest.split_once('{') {
            Some((name, labels)) => (name, labels.rsplit_once('}').map(|(_, v)| v)),
            None => match rest.split_once(' ') {
                Some((name, value)) => (name, Some(value)),
                None => continue,
            },
        };
        let (Some(what), Some(value)) = (name.strip_suffix("_total"), value) else {
            continue;
        };
        if let Ok(value) = value.trim().parse::<f64>() {
            *counters.entry(what.to_string()).or_default() += value;
        }
    }
    counters
}

/// What the tickets cost between two readings.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Costs {
    pub tickets: u64,
    pub window_secs: f64,
    /// Every process name's CPU, busiest first.
    pub processes: Vec<ProcessCost>,
    /// CPU ms per ticket of the purchase path's processes together ([`PURCHASE`]).
    pub purchase_ms_per_ticket: f64,
    pub postgres_ms_per_ticket: f64,
    pub redis: Option<Calls>,
    pub postgres: Option<Calls>,
    /// Broker messages per ticket, by counter (received, routed, delivered, acknowledged, ...).
    pub broker: Option<BTreeMap<String, f64>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessCost {
    pub process: String,
    pub cpu_seconds: f64,
    pub ms_per_ticket: f64,
    pub purchase_path: bool,
}

/// Calls of a store, per ticket, and its five costliest commands or statements.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Calls {
    pub calls: u64,
    pub per_ticket: f64,
    /// The server's own time in them, ms per ticket.
    pub ms_per_ticket: f64,
    pub top: Vec<Top>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Top {
    pub name: String,
    pub calls: u64,
    pub total_ms: f64,
    pub per_ticket: f64,
}

pub fn between(before: &Counters, after: &Counters, tickets: u64, window_secs: f64) -> Costs {
    let per = |x: f64| if tickets > 0 { x / tickets as f64 } else { 0.0 };
    let processes: Vec<ProcessCost> = cpu::shares(&before.cpu, &after.cpu, window_secs)
        .into_iter()
        .map(|share| ProcessCost {
            purchase_path: PURCHASE.contains(&share.process.as_str()),
            ms_per_ticket: per(share.cpu_seconds * 1000.0),
            process: share.process,
            cpu_seconds: share.cpu_seconds,
        })
        .collect();
    let ms_of = |wanted: &dyn Fn(&ProcessCost) -> bool| -> f64 {
        processes
            .iter()
            .filter(|p| wanted(p))
            .map(|p| p.ms_per_ticket)
            .sum()
    };
    let redis = before
        .redis
        .as_ref()
        .zip(after.redis.as_ref())
        .map(|(b, a)| {
            let deltas = a
                .iter()
                .filter(|(name, _)| *name != "info")
                .map(|(name, now)| {
                    let then = b.get(name).copied().unwrap_or_default();
                    let calls = now.calls.saturating_sub(then.calls);
                    let usec = now.usec.saturating_sub(then.usec);
                    (name.clone(), calls, usec as f64 / 1000.0)
                });
            calls(deltas, tickets)
        });
    let postgres = before
        .postgres
        .as_ref()
        .zip(after.postgres.as_ref())
        .map(|(b, a)| {
            let deltas = a.iter().map(|(id, now)| {
                let then = b.get(id).cloned().unwrap_or_default();
                let calls = u64::try_from(now.calls - then.calls).unwrap_or(0);
                (one_line(&now.query), calls, now.total_ms - then.total_ms)
            });
            calls(deltas, tickets)
        });
    let broker = before
        .broker
        .as_ref()
        .zip(after.broker.as_ref())
        .map(|(b, a)| {
            a.iter()
                .map(|(what, now)| (what.clone(), per(now - b.get(what).copied().unwrap_or(0.0))))
                .filter(|(_, n)| *n > 0.0)
                .collect()
        });
    Costs {
        tickets,
        window_secs,
        purchase_ms_per_ticket: ms_of(&|p| p.purchase_path),
        postgres_ms_per_ticket: ms_of(&|p| p.process == "postgres"),
        processes,
        redis,
        postgres,
        broker,
    }
}

/// Totals and the five costliest of (name, calls, total ms) deltas.
fn calls(deltas: impl Iterator<Item = (String, u64, f64)>, tickets: u64) -> Calls {
    let per = |x: f64| if tickets > 0 { x / tickets as f64 } else { 0.0 };
    let mut all: Vec<(String, u64, f64)> = deltas.filter(|(_, calls, _)| *calls > 0).collect();
    all.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    let total_calls: u64 = all.iter().map(|(_, calls, _)| calls).sum();
    let total_ms: f64 = all.iter().map(|(_, _, ms)| ms).sum();
    Calls {
        calls: total_calls,
        per_ticket: per(total_calls as f64),
        ms_per_ticket: per(total_ms),
        top: all
            .into_iter()
            .take(5)
            .map(|(name, calls, total_ms)| Top {
                per_ticket: per(calls as f64),
                name,
                calls,
                total_ms,
            })
            .collect(),
    }
}

/// A statement on one line, at most 160 characters (for a table cell).
fn one_line(query: &str) -> String {
    let flat = query.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(160) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

/// The report's section.
pub fn markdown(m: &mut String, costs: &Costs, cpus: usize) {
    use std::fmt::Write;
    let _ = writeln!(
        m,
        "\n## What a ticket cost ({} tickets; from the attack's start until every booking was \
         settled and mailed, {:.0} s, {cpus} cores)\n",
        costs.tickets, costs.window_secs
    );
    let _ = writeln!(
        m,
        "**Purchase path** (API, worker, Postgres, RabbitMQ, notifier): **{:.2} ms CPU per \
         ticket**, of which Postgres {:.2} ms.\n",
        costs.purchase_ms_per_ticket, costs.postgres_ms_per_ticket
    );
    let _ = writeln!(
        m,
        "| process | CPU s | ms per ticket | purchase path |\n|---|---:|---:|---|"
    );
    for p in &costs.processes {
        let _ = writeln!(
            m,
            "| {} | {:.1} | {:.2} | {} |",
            p.process,
            p.cpu_seconds,
            p.ms_per_ticket,
            if p.purchase_path { "yes" } else { "" }
        );
    }
    let stores = [
        ("Redis", "command", &costs.redis),
        ("Postgres", "statement", &costs.postgres),
    ];
    for (store, kind, calls) in stores {
        let Some(calls) = calls else {
            let _ = writeln!(
                m,
                "\n{store}: no counters could be read (see the run's log)."
            );
            continue;
        };
        let _ = writeln!(
            m,
            "\n{store}: {} calls, **{:.1} per ticket**, {:.3} ms of the server's time per \
             ticket. The five costliest {kind}s:\n",
            calls.calls, calls.per_ticket, calls.ms_per_ticket
        );
        let _ = writeln!(
            m,
            "| {kind} | calls | per ticket | total ms |\n|---|---:|---:|---:|"
        );
        for top in &calls.top {
            let _ = writeln!(
                m,
                "| `{}` | {} | {:.2} | {:.0} |",
                top.name.replace('|', "\\|"),
                top.calls,
                top.per_ticket,
                top.total_ms
            );
        }
    }
    match &costs.broker {
        Some(broker) => {
            let counts: Vec<String> = broker.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
            let _ = writeln!(m, "\nRabbitMQ messages per ticket: {}.", counts.join(", "));
        }
        None => {
            let _ = writeln!(
                m,
                "\nRabbitMQ: no counters could be read (see the run's log)."
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_counters_are_summed_over_their_labels() {
        let text = "# TYPE rabbitmq_global_messages_received_total counter
rabbitmq_global_messages_received_total{protocol=\"amqp091\"} 12
rabbitmq_global_messages_delivered_total{protocol=\"amqp091\",queue_type=\"rabbit_classic_queue\"} 5
rabbitmq_global_messages_delivered_total{protocol=\"amqp091\",queue_type=\"rabbit_quorum_queue\"} 2
rabbitmq_global_messages_confirmed_total 3
rabbitmq_global_publishers 1
erlang_vm_memory_bytes_total{kind=\"system\"} 100
";
        let counters = parse_broker_counters(text);
        assert_eq!(
            counters,
            BTreeMap::from([
                ("confirmed".to_string(), 3.0),
                ("delivered".to_string(), 7.0),
                ("received".to_string(), 12.0),
            ])
        );
    }

    #[test]
    fn calls_are_totalled_per_ticket_and_the_costliest_come_first() {
        let deltas = [
            ("evalsha".to_string(), 300, 90.0),
            ("get".to_string(), 1000, 10.0),
            ("unused".to_string(), 0, 0.0),
            ("hset".to_string(), 100, 20.0),
        ];
        let calls = calls(deltas.into_iter(), 100);
        assert_eq!(calls.calls, 1400);
        assert_eq!(calls.per_ticket, 14.0);
        assert_eq!(calls.ms_per_ticket, 1.2);
        let order: Vec<&str> = calls.top.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(order, ["evalsha", "hset", "get"]);
    }

    #[test]
    fn a_long_statement_is_one_line_cut_at_160_characters() {
        let query = format!(
            "SELECT a,\n       b\n  FROM t WHERE x IN ({})",
            "1, ".repeat(100)
        );
        let line = one_line(&query);
        assert!(line.starts_with("SELECT a, b FROM t WHERE"));
        assert_eq!(line.chars().count(), 161);
        assert_eq!(one_line("SELECT 1"), "SELECT 1");
    }
}
