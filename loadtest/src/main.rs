//! Load tests and checks against a running stack (`infra/dev up`).
//!
//! `smoke` walks the critical path through the gateway: every service's health and readiness;
//! a fan signs up, logs in, refreshes, reads `/api/me` and joins a waiting room; then a
//! high-demand sale end to end (queue, admission, hold, 202, the worker's confirmation). It exits
//! non-zero on the first failure, naming the step. `demo` makes the demo data `infra/dev up`
//! promises (idempotently). `herd` benchmarks the waiting room against its floors. The goose
//! flash-sale scenarios and the invariant checker come with the load-test issue.

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

/// mimalloc instead of glibc's malloc, whose bookkeeping took a fifth of a service's CPU
/// under a flash sale (`perf record` during `infra/dev loadtest`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod browse;
mod checker;
mod costs;
mod cpu;
mod demo;
mod fairness;
mod flash;
mod herd;
mod limits;
mod queued;
mod report;
mod scenario;
mod seat_map;
mod setup;
mod socket;

#[derive(Parser)]
#[command(
    about = "Load tests and smoke checks of a running ticketing stack",
    args_override_self = true
)]
struct Cli {
    /// The gateway's address.
    #[arg(long, env = "GATEWAY_URL", default_value = "http://127.0.0.1:8080")]
    base_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check every service through the gateway and walk the account flow once.
    Smoke,
    /// Time the seat map of a 100,000-seat event in every format (needs `infra/dev up`).
    SeatMap {
        /// The ticketing API's own address, to time it without the gateway.
        #[arg(long, default_value = "http://127.0.0.1:8082")]
        api_url: String,
        /// Sections of 100 × 100 seats.
        #[arg(long, default_value_t = 10)]
        sections: u32,
        #[arg(long, default_value_t = 10)]
        rounds: usize,
    },
    /// A flash sale (goose): a high-demand event, fans pre-queue and queue in the waiting room,
    /// hold best-available seats when admitted, register through the queued path (202) and
    /// follow their booking; then the invariant checker and report.json/report.md. Exits 1 on
    /// any invariant violation.
    FlashSale(flash::SaleArgs),
    /// A low-demand sale (goose) bought through the direct path (201), then the same checks.
    Simple(flash::SaleArgs),
    /// Browsing under load (goose): event lists and search, event pages, seat maps.
    Browse(browse::BrowseArgs),
    /// The waiting room alone against its floors: N fans waiting in one event, then status
    /// reads (direct and through the gateway) and push streams beside nginx `return 200`, nginx
    /// proxying to a bare 200 and `EVALSHA` in redis-benchmark; herd.md and herd.json.
    Herd(herd::HerdArgs),
    /// A bare 200 server (the herd's floor), run by `herd` as its own process.
    #[command(name = "bare-200", hide = true)]
    Bare200 {
        #[arg(long)]
        addr: std::net::SocketAddr,
    },
    /// Create the demo organizer, fan, venue and an on-sale event, unless they exist.
    Demo {
        #[arg(long, env = "ADMIN_EMAIL", default_value = "admin@example.test")]
        admin_email: String,
        #[arg(long, env = "ADMIN_PASSWORD", default_value = "admin-pass-123")]
        admin_password: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Smoke => smoke(cli.base_url.trim_end_matches('/')).await,
        Command::FlashSale(args) => sale(cli.base_url.trim_end_matches('/'), args, true).await,
        Command::Simple(args) => sale(cli.base_url.trim_end_matches('/'), args, false).await,
        Command::Herd(args) => herd::run(cli.base_url.trim_end_matches('/'), args).await,
        Command::Bare200 { addr } => herd::bare_200(addr).await,
        Command::Browse(args) => {
            if browse::run(cli.base_url.trim_end_matches('/'), args).await? {
                Ok(())
            } else {
                eprintln!("error: requests failed while browsing (see the report)");
                std::process::exit(1);
            }
        }
        Command::SeatMap {
            api_url,
            sections,
            rounds,
        } => {
            seat_map::run(
                cli.base_url.trim_end_matches('/'),
                api_url.trim_end_matches('/'),
                sections,
                rounds,
            )
            .await
        }
        Command::Demo {
            admin_email,
            admin_password,
        } => {
            demo::run(
                cli.base_url.trim_end_matches('/'),
                &admin_email,
                &admin_password,
            )
            .await
        }
    }
}

async fn sale(base: &str, args: flash::SaleArgs, queued: bool) -> anyhow::Result<()> {
    if flash::run(base, args, queued).await? {
        Ok(())
    } else {
        eprintln!("error: invariant violated (see the report)");
        std::process::exit(1);
    }
}

async fn smoke(base: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(10))
        .build()?;

    for path in [
        "/healthz",
        "/api/healthz",
        "/api/readyz",
        "/api/queue/readyz",
        "/ws/readyz",
    ] {
        let status = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .with_context(|| format!("GET {path}"))?
            .status();
        ensure!(status.is_success(), "GET {path} answered {status}");
        println!("ok  GET {path}");
    }

    let email = format!("smoke-{}@example.test", uuid::Uuid::new_v4().simple());
    let password = "smoke-test-password";
    let created = call(
        client
            .post(format!("{base}/api/auth/register"))
            .json(&json!({"email": email, "password": password, "name": "Smoke Test"})),
        201,
        "register",
    )
    .await?;
    let login = call(
        client
            .post(format!("{base}/api/auth/login"))
            .json(&json!({"email": email, "password": password})),
        200,
        "login",
    )
    .await?;
    let refreshed = call(
        client.post(format!("{base}/api/auth/refresh")),
        200,
        "refresh",
    )
    .await?;
    let token = refreshed["access_token"]
        .as_str()
        .context("refresh gave no access token")?;
    ensure!(
        login["access_token"].is_string(),
        "login gave no access token"
    );
    let me = call(
        client.get(format!("{base}/api/me")).bearer_auth(token),
        200,
        "me",
    )
    .await?;
    if me["id"] != created["user"]["id"] {
        bail!("/api/me names someone else: {me}");
    }

    // The waiting room, on the first listed event: a low-demand event admits at once.
    let events = call(client.get(format!("{base}/api/events")), 200, "events").await?;
    if let Some(event) = events["items"].get(0) {
        let id = event["id"].as_str().context("an event without id")?;
        let joined = call(
            client
                .post(format!("{base}/api/queue/{id}/join"))
                .bearer_auth(token),
            200,
            "queue join",
        )
        .await?;
        if event["high_demand"] == false {
            ensure!(
                joined["state"] == "admitted" && joined["admission_token"].is_string(),
                "a low-demand event should admit at once: {joined}"
            );
        }
        let queue_token = joined["queue_token"].as_str().context("no queue token")?;
        call(
            client
                .get(format!("{base}/api/queue/{id}/status"))
                .header("X-Queue-Token", queue_token),
            200,
            "queue status",
        )
        .await?;
    }
    queued::walk(base, &client, token, &email).await?;
    println!("smoke test passed");
    Ok(())
}

/// One step of the smoke walk: the request must answer `expected`; prints the step.
async fn call(
    request: reqwest::RequestBuilder,
    expected: u16,
    step: &str,
) -> anyhow::Result<Value> {
    let body = setup::expect(request, expected, step).await?;
    println!("ok  {step}");
    Ok(body)
}
