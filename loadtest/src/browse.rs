//! `loadtest browse`: anonymous fans browsing under load — the event list (and its search),
//! event pages, and seat maps (the compact layout once, then the live state), for a while.
//! Reads only; writes goose's reports and `browse-report.json`/`browse-report.md`.

use std::{
    fmt::Write as _,
    path::PathBuf,
    sync::{
        OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, ensure};
use goose::prelude::*;
use serde::Serialize;

use crate::report::{self, Latency};

#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct BrowseArgs {
    /// Concurrent browsing users.
    #[arg(long, default_value_t = 200)]
    pub users: usize,
    /// Seconds to browse for.
    #[arg(long, default_value_t = 30)]
    pub run_time: u64,
    /// Users started per second.
    #[arg(long, default_value_t = 50)]
    pub increase_rate: u64,
    #[arg(long, env = "LOADTEST_REPORT_DIR", default_value = ".run/loadtest")]
    pub report_dir: PathBuf,
    #[arg(long, env = "LOADTEST_COMMAND")]
    pub command: Option<String>,
}

static EVENTS: OnceLock<Vec<String>> = OnceLock::new();
static NEXT: AtomicUsize = AtomicUsize::new(0);

fn pick() -> Option<String> {
    let events = EVENTS.get()?;
    (!events.is_empty())
        .then(|| events[NEXT.fetch_add(1, Ordering::Relaxed) % events.len()].clone())
}

async fn get(user: &mut GooseUser, path: &str, name: &str) -> TransactionResult {
    let request = GooseRequest::builder()
        .method(GooseMethod::Get)
        .path(path)
        .name(name)
        .expect_status_code(200)
        .build();
    let answered = user.request(request).await?;
    // Read the whole body: a seat map is only served once it is sent.
    if let Ok(response) = answered.response {
        let _ = response.bytes().await;
    }
    Ok(())
}

async fn event_list(user: &mut GooseUser) -> TransactionResult {
    get(user, "/api/events?page=1&per_page=20", "events").await
}

async fn event_search(user: &mut GooseUser) -> TransactionResult {
    get(user, "/api/events?q=load&per_page=20", "events?q").await
}

async fn event_page(user: &mut GooseUser) -> TransactionResult {
    let Some(id) = pick() else { return Ok(()) };
    get(user, &format!("/api/events/{id}"), "event").await
}

async fn seat_map(user: &mut GooseUser) -> TransactionResult {
    let Some(id) = pick() else { return Ok(()) };
    get(
        user,
        &format!("/api/events/{id}/seats?format=compact"),
        "seats compact",
    )
    .await
}

async fn seat_state(user: &mut GooseUser) -> TransactionResult {
    let Some(id) = pick() else { return Ok(()) };
    get(
        user,
        &format!("/api/events/{id}/seats?format=state"),
        "seats state",
    )
    .await
}

#[derive(Debug, Serialize)]
struct BrowseReport {
    scenario: &'static str,
    command: Option<String>,
    parameters: BrowseArgs,
    events: usize,
    duration_secs: usize,
    requests: usize,
    requests_per_s: f64,
    failed: usize,
    latency: Vec<Latency>,
    loadavg_end: String,
}

pub async fn run(base: &str, args: BrowseArgs) -> anyhow::Result<bool> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let list: serde_json::Value = client
        .get(format!("{base}/api/events?per_page=50"))
        .send()
        .await
        .context("listing events")?
        .json()
        .await?;
    let events: Vec<String> = list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|e| e["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    ensure!(
        !events.is_empty(),
        "no events to browse (infra/dev up creates a demo event)"
    );
    let count = events.len();
    EVENTS
        .set(events)
        .map_err(|_| anyhow::anyhow!("browse runs once per process"))?;

    std::fs::create_dir_all(&args.report_dir)?;
    let report = |ext: &str| {
        args.report_dir
            .join(format!("goose-browse.{ext}"))
            .display()
            .to_string()
    };
    let (html, json, md) = (report("html"), report("json"), report("md"));
    let (users, rate, time) = (
        args.users.to_string(),
        args.increase_rate.to_string(),
        format!("{}s", args.run_time),
    );
    let config = goose::config::GooseConfiguration::parse_args_default(&[
        "--host",
        base,
        "--users",
        &users,
        "--increase-rate",
        &rate,
        "--run-time",
        &time,
        "--no-reset-metrics",
        "--no-telnet",
        "--no-print-metrics",
        "--quiet",
        "--report-file",
        &html,
        "--report-file",
        &json,
        "--report-file",
        &md,
    ])
    .map_err(|err| anyhow::anyhow!("goose configuration: {err}"))?;
    let scenario = scenario!("Browse")
        .register_transaction(transaction!(event_list).set_weight(3)?)
        .register_transaction(transaction!(event_search).set_weight(1)?)
        .register_transaction(transaction!(event_page).set_weight(3)?)
        .register_transaction(transaction!(seat_map).set_weight(1)?)
        .register_transaction(transaction!(seat_state).set_weight(2)?);
    let client = goose::client::GooseClientBuilder::new()
        .without_cookies()
        .timeout(Duration::from_secs(30));
    let metrics = GooseAttack::initialize_with_config(config)
        .map_err(|err| anyhow::anyhow!("goose: {err:?}"))?
        .set_client_builder_without_cookies(client)
        .map_err(|err| anyhow::anyhow!("goose client: {err}"))?
        .register_scenario(scenario)
        .execute()
        .await
        .map_err(|err| anyhow::anyhow!("goose attack: {err:?}"))?;

    let latency = report::latency(&metrics);
    let requests: usize = latency.iter().map(|l| l.count).sum();
    let failed: usize = latency.iter().map(|l| l.failed).sum();
    let out = BrowseReport {
        scenario: "browse",
        command: args.command.clone(),
        parameters: args.clone(),
        events: count,
        duration_secs: metrics.duration,
        requests,
        requests_per_s: requests as f64 / metrics.duration.max(1) as f64,
        failed,
        latency,
        loadavg_end: report::loadavg(),
    };
    let mut m = String::new();
    let _ = writeln!(
        m,
        "# Load test `browse` — {}\n\n{} users over {} events for {} s: {} requests, {:.0}/s, {} failed; load average at the end {}.\n",
        if failed == 0 { "PASSED" } else { "FAILED" },
        args.users,
        count,
        out.duration_secs,
        requests,
        out.requests_per_s,
        failed,
        out.loadavg_end
    );
    report::latency_table(&mut m, &out.latency);
    std::fs::write(
        args.report_dir.join("browse-report.json"),
        serde_json::to_string_pretty(&out)?,
    )?;
    std::fs::write(args.report_dir.join("browse-report.md"), &m)?;
    print!("{m}");
    Ok(failed == 0)
}
